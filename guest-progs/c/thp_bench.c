// thp_bench: issue-10 benchmark kernels on anonymous THPs.
// usage: thp_bench [--time] wp SIZE_MB [REPS]
//            SIZE_MB of MADV_HUGEPAGE memory, every 2 MiB written once (one huge PMD
//            each), registered WP; REPS times: UFFDIO_WRITEPROTECT protect then
//            un-protect of the whole range (timed: change_huge_pmd on every PMD, twice)
//        thp_bench [--time] fault SIZE_MB
//            first-touch writes of SIZE_MB of MADV_HUGEPAGE memory, one per 2 MiB (timed:
//            one huge-PMD fault each, a zeroed 2 MiB folio)
// REPS defaults to 1; 0 does the setup without the measured operation. The transcript is
// counts and smaps' AnonHugePages; --time adds a "time:" line (natively CLOCK_MONOTONIC
// and the process CPU clock; under pagelab the host clocks through the test hook).
#define _GNU_SOURCE
#include "shm.h"
#include "bench.h"
#include <time.h>

static long anon_huge_kb(void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[256];
    long v = -1;
    int in = 0;
    unsigned long a = (unsigned long)p;
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {
            in = a >= s && a < e;
            continue;
        }
        if (in && !strncmp(line, "AnonHugePages:", 14)) sscanf(line + 14, "%ld", &v);
    }
    fclose(f);
    return v;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    int timing = argc > 1 && !strcmp(argv[1], "--time");
    argv += timing;
    argc -= timing;
    if (argc < 3) {
        printf("usage: thp_bench [--time] wp|fault SIZE_MB [REPS]\n");
        return 2;
    }
    long mb = atol(argv[2]), reps = argc > 3 ? atol(argv[3]) : 1;
    size_t len = (size_t)mb << 20;
    char *r = shm_reserve(len);
    char *p = mmap(r, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED || madvise(p, len, MADV_HUGEPAGE)) {
        printf("setup failed: %s\n", uffd_err(errno));
        return 3;
    }
    long long t0 = 0, c0 = 0, t = 0, c = 0;
    long ops = 0;
    if (!strcmp(argv[1], "fault")) {
        t0 = now_ns(), c0 = cpu_ns();
        for (size_t off = 0; off < len; off += 2 << 20) p[off] = 1;
        t = now_ns() - t0, c = cpu_ns() - c0;
        ops = (long)(len >> 21);
        printf("fault: %ld huge pages, AnonHugePages %ld kB\n", ops, anon_huge_kb(p));
    } else {
        for (size_t off = 0; off < len; off += 2 << 20) p[off] = 1;
        int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
        uffd_register(fd, p, len, UFFDIO_REGISTER_MODE_WP, NULL);
        t0 = now_ns(), c0 = cpu_ns();
        for (long i = 0; i < reps; i++) {
            uffd_protect(fd, p, len);
            uffd_unprotect(fd, p, len);
        }
        t = now_ns() - t0, c = cpu_ns() - c0;
        ops = reps * (long)(len >> 21);
        printf("wp: %ld protect+unprotect pairs of %ld huge PMDs, AnonHugePages %ld kB\n", reps, (long)(len >> 21), anon_huge_kb(p));
        close(fd);
    }
    if (timing) printf("time: %lld ns total, cpu %lld ns, %.1f ns per 2 MiB\n", t, c, ops ? (double)c / ops : 0.0);
    return 0;
}
