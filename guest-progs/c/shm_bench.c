// pagelab: cflags=-pthread
// shm_bench: issue-9 benchmark kernels on shmem, shaped like uffd_bench.c.
// usage: shm_bench [--time] marker-protect SIZE_MB [REPS]
//            a memfd of SIZE_MB never touched (no page in the page cache, no page
//            table), mapped MAP_SHARED and registered WP; REPS times: UFFDIO_WRITEPROTECT
//            protect of the whole range (timed: allocates the page tables and writes a
//            uffd-wp marker into every PTE), un-protect (untimed, clears the markers; not
//            after the last rep)
//        shm_bench [--time] marker-unprotect SIZE_MB [REPS]
//            the same range protected once (untimed), then REPS times: un-protect of the
//            whole range (timed: every marker back to none), protect again (untimed, not
//            after the last rep)
//        shm_bench [--time] minor-continue PAGES [N]
//            a memfd of PAGES pages, all written with pwrite (in the page cache, no PTE),
//            mapped MAP_SHARED and registered MINOR; a handler thread (poll + read +
//            UFFDIO_CONTINUE of the page, which wakes the worker) resolves N MINOR faults
//            one after another while the worker reads pages 0..N-1 (one round trip per
//            page; MINOR registration turns fault-around off, so every page faults)
// REPS defaults to 1 and N to PAGES; REPS = 0 or N = 0 does all the setup and teardown but
// not the measured operation (the baseline to subtract). Both threads are pinned to one
// CPU. The transcript is counts, pagemap states and checksums; --time adds a "time:" line
// with the time of the measured operations, taken as uffd_bench takes it (natively
// clock_gettime(CLOCK_MONOTONIC) and the process CPU clock; under pagelab the host clocks
// through the test-hook syscall when enabled).
#define _GNU_SOURCE
#include "shm.h"
#include "bench.h"
#include <sched.h>
#include <time.h>

static int timing;
static long long t_total_ns, t_cpu_ns;

static void die(const char *what, int err) {
    printf("%s: %s\n", what, uffd_err(err));
    pl_flush();
    exit(3);
}

static void wp_range(int fd, char *r, long pages, int protect) {
    int e = uffd_wp(fd, r, pages * UPAGE, protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0);
    if (e) die(protect ? "protect" : "unprotect", -e);
}

static const char *pm_state(const char *p) {
    static char b[2][64];
    static int i;
    i ^= 1;
    return uffd_pm_str(uffd_pagemap(p), b[i], sizeof b[i]);
}

static int bench_markers(int unprotect, long mb, long reps) {
    long pages = mb * (1 << 20) / (long)UPAGE;
    int fd = uffd_open(O_CLOEXEC, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    int mfd = shm_memfd("shm_bench", (size_t)pages);
    char *r = pages ? shm_map(mfd, (size_t)pages, MAP_SHARED) : NULL;
    if (pages) {
        int e = uffd_register(fd, r, pages * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
        if (e) die("register WP", -e);
    }
    if (unprotect && pages) wp_range(fd, r, pages, 1);
    for (long i = 0; i < reps && pages; i++) {
        long long c0 = cpu_ns(), t0 = now_ns();
        wp_range(fd, r, pages, !unprotect);
        t_total_ns += now_ns() - t0;
        t_cpu_ns += cpu_ns() - c0;
        if (i + 1 < reps) wp_range(fd, r, pages, unprotect);
    }
    struct stat st;
    fstat(mfd, &st);
    printf("%s: %ld MiB, %ld pages, %ld reps, first page %s, last page %s, file blocks %lld\n",
           unprotect ? "marker-unprotect" : "marker-protect", mb, pages, reps, pages ? pm_state(r) : "-",
           pages ? pm_state(r + (pages - 1) * UPAGE) : "-", (long long)st.st_blocks);
    if (timing && reps && pages) {
        printf("time: %lld ns total, cpu %lld ns, %.2f ns/page\n", t_total_ns, t_cpu_ns, (double)t_total_ns / (double)(reps * pages));
    }
    close(fd);
    close(mfd);
    return 0;
}

/* The MINOR handler: exactly `todo` messages, each resolved with CONTINUE at once. */
struct minor_handler {
    int fd;
    long todo;
    long done;
    long bad;
    pthread_t thread;
};

static void *minor_handler_main(void *v) {
    struct minor_handler *h = v;
    while (h->done < h->todo) {
        struct pollfd p = { .fd = h->fd, .events = POLLIN, .revents = 0 };
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR) continue;
            die("handler poll", errno);
        }
        struct uffd_msg m;
        ssize_t n = read(h->fd, &m, sizeof m);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n != (ssize_t)sizeof m) die("handler read", n < 0 ? errno : EIO);
        if (m.event != UFFD_EVENT_PAGEFAULT || m.arg.pagefault.flags != UFFD_PAGEFAULT_FLAG_MINOR) {
            h->bad++;
            continue;
        }
        void *page = (void *)(uintptr_t)(m.arg.pagefault.address & ~(UPAGE - 1));
        int e = uffd_continue(h->fd, page, UPAGE, 0, NULL);
        if (e) die("handler continue", -e);
        h->done++;
    }
    return NULL;
}

static int bench_minor(long pages, long n) {
    if (n > pages) n = pages;
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_MINOR_SHMEM);
    int mfd = shm_memfd("shm_bench", (size_t)pages);
    for (long i = 0; i < pages; i++) {
        char b[2] = { (char)(i * 7 + 1), (char)(i + 3) };
        if (pwrite(mfd, b, 2, i * (off_t)UPAGE + 100) != 2) die("pwrite", errno);
    }
    char *r = pages ? shm_map(mfd, (size_t)pages, MAP_SHARED) : NULL;
    if (pages) {
        int e = uffd_register(fd, r, pages * UPAGE, UFFDIO_REGISTER_MODE_MINOR, NULL);
        if (e) die("register MINOR", -e);
    }
    struct minor_handler h = { .fd = fd, .todo = n };
    if (pthread_create(&h.thread, NULL, minor_handler_main, &h) != 0) die("pthread_create", EAGAIN);
    long long c0 = cpu_ns(), t0 = now_ns();
    uint64_t sum = PL_FNV_INIT;
    for (long i = 0; i < n; i++) {
        char c = ((volatile char *)r)[i * UPAGE + 100];
        sum = pl_fnv(sum, &c, 1);
    }
    t_total_ns = now_ns() - t0;
    t_cpu_ns = cpu_ns() - c0;
    pthread_join(h.thread, NULL);
    long mapped = 0;
    for (long i = 0; i < pages; i++) mapped += (uffd_pagemap(r + i * UPAGE) & PM_PRESENT) != 0;
    printf("minor-continue: %ld pages, %ld faults, %ld resolved, %ld unexpected, %ld mapped, checksum %016llx\n", pages, n, h.done,
           h.bad, mapped, (unsigned long long)sum);
    if (timing && n) printf("time: %lld ns total, cpu %lld ns, %.1f ns/round trip\n", t_total_ns, t_cpu_ns, (double)t_total_ns / (double)n);
    close(fd);
    close(mfd);
    return h.bad != 0;
}

int main(int argc, char **argv) {
    int a = 1;
    if (a < argc && strcmp(argv[a], "--time") == 0) {
        timing = 1;
        a++;
    }
    const char *mode = a < argc ? argv[a] : "";
    int sized = a + 1 < argc;
    long size = pl_arg_long(argc, argv, a + 1, 0);
    pin_one_cpu();
    if (strcmp(mode, "marker-protect") == 0 || strcmp(mode, "marker-unprotect") == 0) {
        if (!sized) size = 16;
        return bench_markers(mode[7] == 'u', size, pl_arg_long(argc, argv, a + 2, 1));
    }
    if (strcmp(mode, "minor-continue") == 0) {
        if (!sized) size = 1000;
        return bench_minor(size, pl_arg_long(argc, argv, a + 2, size));
    }
    fprintf(stderr, "usage: shm_bench [--time] marker-protect|marker-unprotect SIZE_MB [REPS] | minor-continue PAGES [N]\n");
    return 2;
}
