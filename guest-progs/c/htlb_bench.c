// htlb_bench: issue-10 benchmark kernels on hugetlb pages.
// usage: htlb_bench [--time] wp SIZE_MB [REPS]
//            SIZE_MB of MAP_HUGETLB 2 MiB pages, each written once, registered WP; REPS
//            times: UFFDIO_WRITEPROTECT protect then un-protect of the whole range (timed:
//            hugetlb_change_protection on every huge PTE, twice)
//        htlb_bench [--time] fault SIZE_MB
//            first-touch writes of SIZE_MB of MAP_HUGETLB memory, one per 2 MiB (timed:
//            hugetlb_fault allocating and zeroing a pool page each)
// The program sets the 2 MiB pool to SIZE_MB/2 pages and back to 0 (htlb.h). It prints
// counts and the pool; --time adds a "time:" line (natively CLOCK_MONOTONIC and the
// process CPU clock, under pagelab with --test-hooks the host's).
#include "bench.h"
#include "htlb.h"
#include <string.h>

int main(int argc, char **argv) {
    int timing = argc > 1 && !strcmp(argv[1], "--time");
    char **a = argv + timing;
    int n = argc - timing;
    if (n < 3 || (strcmp(a[1], "wp") && strcmp(a[1], "fault"))) {
        printf("usage: htlb_bench [--time] wp|fault SIZE_MB [REPS]\n");
        return 2;
    }
    int wp = !strcmp(a[1], "wp");
    long mb = atol(a[2]);
    long reps = n > 3 ? atol(a[3]) : 1;
    size_t len = (size_t)mb << 20, pages = len / HTLB_2M;
    htlb_setup((long)pages, 0);
    pin_one_cpu();
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap: %s\n", shm_err(errno));
        return 3;
    }
    long long t = 0, c = 0, ops = 0;
    if (wp) {
        for (size_t i = 0; i < pages; i++) p[i * HTLB_2M] = 1;
        int uffd = uffd_open(0, 0);
        struct uffdio_register r = { .range = { (unsigned long)p, len }, .mode = UFFDIO_REGISTER_MODE_WP };
        if (ioctl(uffd, UFFDIO_REGISTER, &r)) {
            printf("register: %s\n", shm_err(errno));
            return 3;
        }
        long long t0 = now_ns(), c0 = cpu_ns();
        for (long k = 0; k < reps; k++) {
            struct uffdio_writeprotect w = { .range = { (unsigned long)p, len }, .mode = UFFDIO_WRITEPROTECT_MODE_WP };
            if (ioctl(uffd, UFFDIO_WRITEPROTECT, &w)) printf("protect: %s\n", shm_err(errno));
            w.mode = 0;
            if (ioctl(uffd, UFFDIO_WRITEPROTECT, &w)) printf("un-protect: %s\n", shm_err(errno));
        }
        t = now_ns() - t0, c = cpu_ns() - c0, ops = reps * (long long)pages;
        printf("wp: %zu huge pages, %ld protect+un-protect pairs\n", pages, reps);
        close(uffd);
    } else {
        long long t0 = now_ns(), c0 = cpu_ns();
        for (size_t i = 0; i < pages; i++) p[i * HTLB_2M] = 1;
        t = now_ns() - t0, c = cpu_ns() - c0, ops = pages;
        printf("fault: %zu huge pages\n", pages);
    }
    htlb_pool("after");
    munmap(p, len);
    if (timing) printf("time: %lld ns total, cpu %lld ns, %.1f ns per 2 MiB\n", t, c, ops ? (double)c / ops : 0.0);
    htlb_finish();
    return 0;
}
