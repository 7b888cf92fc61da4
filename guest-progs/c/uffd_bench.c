// pagelab: cflags=-pthread
// uffd_bench: the issue-4 benchmark kernels (userfaultfd on private anonymous 4 KiB pages).
// usage: uffd_bench [--time] wp-protect SIZE_MB [REPS]
//            populate SIZE_MB, register WP, then REPS times: UFFDIO_WRITEPROTECT protect of
//            the whole range (timed), un-protect (untimed, not after the last rep)
//        uffd_bench [--time] wp-unprotect SIZE_MB [REPS]
//            populate, register WP, protect (untimed), then REPS times: un-protect of the
//            whole range (timed), protect again (untimed, not after the last rep)
//        uffd_bench [--time] wp-fault PAGES [N]
//            populate PAGES pages, register WP, protect them all; a handler thread
//            (poll + read + UFFDIO_WRITEPROTECT un-protect of the page, which wakes the
//            worker) resolves N uffd-wp faults one after another while the worker writes
//            pages 0..N-1 (one round trip per page)
//        uffd_bench [--time] missing-copy PAGES [N]
//            register PAGES unpopulated pages MISSING; the handler answers each MISSING
//            fault with UFFDIO_COPY of a prepared page (which wakes the worker) while the
//            worker reads pages 0..N-1
// REPS defaults to 1 and N to PAGES; REPS = 0 or N = 0 does all the setup and teardown but
// not the measured operation, so the cost of the operation is the difference between a run
// with it and one without (pagelab-compare does this under pagelab, whose guest clock is
// virtual). Both threads are pinned to one CPU (the host figures of the issue are for a
// same-CPU handler). The transcript is counts and checksums; --time adds the time of the
// measured operations ("time:" lines): natively clock_gettime(CLOCK_MONOTONIC); under
// pagelab with its test hooks enabled, the host's clock read through the hook syscall
// (pagelab's guest clock is virtual), so the line is host time in both cases; "cpu" is CPU
// time (natively the process's, both threads; under pagelab the host thread's that runs
// every vCPU).
#define _GNU_SOURCE
#include "uffd.h"
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

/* One write per page: every page becomes a private, exclusive, writable anon page. */
static void populate(char *r, long pages) {
    for (long i = 0; i < pages; i++) r[i * UPAGE] = (char)(i + 1);
}

/* A checksum of the first byte of every page (and of byte 100, the worker's). */
static uint64_t checksum(const char *r, long pages) {
    uint64_t h = PL_FNV_INIT;
    for (long i = 0; i < pages; i++) {
        h = pl_fnv(h, r + i * UPAGE, 1);
        h = pl_fnv(h, r + i * UPAGE + 100, 1);
    }
    return h;
}

static void wp_range(int fd, char *r, long pages, int protect) {
    int e = uffd_wp(fd, r, pages * UPAGE, protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0);
    if (e) die(protect ? "protect" : "unprotect", -e);
}

static int bench_wp_range(int unprotect, long mb, long reps) {
    long pages = mb * (1 << 20) / (long)UPAGE;
    int fd = uffd_open(O_CLOEXEC, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    char *r = uffd_map(pages);
    populate(r, pages);
    int e = uffd_register(fd, r, pages * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    if (e) die("register WP", -e);
    if (unprotect) wp_range(fd, r, pages, 1);
    for (long i = 0; i < reps; i++) {
        long long c0 = cpu_ns(), t0 = now_ns();
        wp_range(fd, r, pages, !unprotect);
        t_total_ns += now_ns() - t0;
        t_cpu_ns += cpu_ns() - c0;
        if (i + 1 < reps) wp_range(fd, r, pages, unprotect);
    }
    int wp = pages ? uffd_pm_wp(r) : 0;
    printf("%s: %ld MiB, %ld pages, %ld reps, first page wp %d, checksum %016llx\n", unprotect ? "wp-unprotect" : "wp-protect", mb,
           pages, reps, wp, (unsigned long long)checksum(r, pages));
    if (timing && reps) {
        printf("time: %lld ns total, cpu %lld ns, %.2f ns/page\n", t_total_ns, t_cpu_ns, (double)t_total_ns / (double)(reps * pages));
    }
    close(fd);
    return 0;
}

/* The fault benchmarks' handler: exactly `todo` messages, each resolved at once. */
struct fault_handler {
    int fd;
    int missing; /* 1: answer with UFFDIO_COPY of src; 0: un-protect the page */
    const char *src;
    long todo;
    long done;
    long bad;
    pthread_t thread;
};

static void *fault_handler_main(void *v) {
    struct fault_handler *h = v;
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
        if (m.event != UFFD_EVENT_PAGEFAULT) {
            h->bad++;
            continue;
        }
        void *page = (void *)(uintptr_t)(m.arg.pagefault.address & ~(UPAGE - 1));
        int wp = (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) != 0;
        if (wp == h->missing) h->bad++;
        int e;
        if (h->missing) {
            e = uffd_copy(h->fd, page, h->src, UPAGE, 0, NULL);
        } else {
            e = uffd_unprotect(h->fd, page, UPAGE);
        }
        if (e) die(h->missing ? "handler copy" : "handler unprotect", -e);
        h->done++;
    }
    return NULL;
}

static int bench_fault(int missing, long pages, long n) {
    if (n > pages) n = pages;
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, missing ? 0 : UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    char *r = uffd_map(pages);
    char *src = uffd_map(1);
    memset(src, 0x5a, UPAGE);
    if (!missing) populate(r, pages);
    int e = uffd_register(fd, r, pages * UPAGE, missing ? UFFDIO_REGISTER_MODE_MISSING : UFFDIO_REGISTER_MODE_WP, NULL);
    if (e) die("register", -e);
    if (!missing) wp_range(fd, r, pages, 1);

    struct fault_handler h = { .fd = fd, .missing = missing, .src = src, .todo = n };
    if (pthread_create(&h.thread, NULL, fault_handler_main, &h) != 0) die("pthread_create", EAGAIN);
    long long c0 = cpu_ns(), t0 = now_ns();
    uint64_t sum = 0;
    for (long i = 0; i < n; i++) {
        if (missing) {
            sum += (unsigned char)((volatile char *)r)[i * UPAGE + 100];
        } else {
            ((volatile char *)r)[i * UPAGE + 100] = (char)(0x80 + i);
        }
    }
    t_total_ns = now_ns() - t0;
    t_cpu_ns = cpu_ns() - c0;
    pthread_join(h.thread, NULL);
    /* The pages past N were not faulted (MISSING: never read, so still unpopulated). */
    long tail = missing ? 0 : pages - n;
    printf("%s: %ld pages, %ld faults, %ld resolved, %ld unexpected, sum %llu, checksum %016llx\n",
           missing ? "missing-copy" : "wp-fault", pages, n, h.done, h.bad, (unsigned long long)sum,
           (unsigned long long)checksum(r, missing ? n : n + tail));
    if (timing && n) printf("time: %lld ns total, cpu %lld ns, %.1f ns/round trip\n", t_total_ns, t_cpu_ns, (double)t_total_ns / (double)n);
    close(fd);
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
    if (strcmp(mode, "wp-protect") == 0 || strcmp(mode, "wp-unprotect") == 0) {
        if (!sized) size = 16;
        return bench_wp_range(mode[3] == 'u', size, pl_arg_long(argc, argv, a + 2, 1));
    }
    if (strcmp(mode, "wp-fault") == 0 || strcmp(mode, "missing-copy") == 0) {
        if (!sized) size = 1000;
        return bench_fault(mode[0] == 'm', size, pl_arg_long(argc, argv, a + 2, size));
    }
    fprintf(stderr, "usage: uffd_bench [--time] wp-protect|wp-unprotect SIZE_MB [REPS] | wp-fault|missing-copy PAGES [N]\n");
    return 2;
}
