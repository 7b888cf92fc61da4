// pagelab: cflags=-pthread
// Non-cooperative events (reference 4.16, 5.10, 5.11): REMOVE for
// MADV_DONTNEED and MADV_FREE, UNMAP for munmap and for the source of an
// mremap when EVENT_REMAP is off, REMAP(from, to, len) for mremap moves, in
// Linux's order; the thread that causes an event blocks until the monitor
// reads it, and meanwhile COPY, ZEROPAGE and WRITEPROTECT fail with EAGAIN
// (mmap_changing) while WAKE and REGISTER work. Each operation runs in a
// worker thread; the main thread reads the events one by one. Page indexes
// are relative to one reserved 64-page area.
// argv[1] "none": the same operations on a uffd without event features.
// argv[1] "remove-order": a REMOVE per VMA, each sent before its VMA is zapped.
#define _GNU_SOURCE
#include "uffd.h"

static char *base;
static int fd;

enum op_kind { OP_DONTNEED, OP_FREE, OP_MUNMAP, OP_MREMAP };

struct op {
    enum op_kind kind;
    long page, pages, to;
    volatile long ret;
    volatile int done;
    pthread_t t;
};

static void *op_main(void *v) {
    struct op *o = v;
    char *p = base + o->page * UPAGE;
    long ret = 0;
    switch (o->kind) {
    case OP_DONTNEED: ret = madvise(p, o->pages * UPAGE, MADV_DONTNEED); break;
    case OP_FREE: ret = madvise(p, o->pages * UPAGE, MADV_FREE); break;
    case OP_MUNMAP: ret = munmap(p, o->pages * UPAGE); break;
    case OP_MREMAP: {
        void *q = mremap(p, o->pages * UPAGE, o->pages * UPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, base + o->to * UPAGE);
        ret = q == MAP_FAILED ? -errno : uffd_pidx(base, (uintptr_t)q);
        break;
    }
    }
    o->ret = ret;
    __atomic_store_n(&o->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Runs the op in a worker and prints every event it causes, in order. With
 * `probe`, the mmap_changing checks run while the first event is unread. */
static void run(const char *what, enum op_kind kind, long page, long pages, long to, int probe) {
    struct op o = { kind, page, pages, to, 0, 0, 0 };
    printf("%s:\n", what);
    pthread_create(&o.t, NULL, op_main, &o);
    int first = 1;
    for (;;) {
        if (uffd_pending(fd, 20)) {
            if (first && probe) {
                static char src[UPAGE] __attribute__((aligned(4096)));
                int64_t c = 0;
                int e = uffd_copy(fd, base + 1 * UPAGE, src, UPAGE, 0, &c);
                printf("  while unread: COPY %s copy %lld\n", uffd_err(-e), (long long)c);
                c = 0;
                e = uffd_zeropage(fd, base + 1 * UPAGE, UPAGE, 0, &c);
                printf("  while unread: ZEROPAGE %s zeropage %lld\n", uffd_err(-e), (long long)c);
                printf("  while unread: WRITEPROTECT %s\n", uffd_err(-uffd_protect(fd, base, UPAGE)));
                printf("  while unread: unprotect %s\n", uffd_err(-uffd_unprotect(fd, base, UPAGE)));
                printf("  while unread: WAKE %s\n", uffd_err(-uffd_wake(fd, base, UPAGE)));
                printf("  while unread: REGISTER %s\n",
                       uffd_err(-uffd_register(fd, base + 30 * UPAGE, UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
                printf("  while unread: worker done %d\n", o.done);
            }
            first = 0;
            struct uffd_msg m;
            char b[128];
            if (read(fd, &m, sizeof m) != sizeof m) {
                printf("  read failed\n");
                break;
            }
            uffd_msg_str(&m, base, b, sizeof b);
            printf("  event %s\n", b);
        } else if (__atomic_load_n(&o.done, __ATOMIC_ACQUIRE)) {
            break;
        }
    }
    pthread_join(o.t, NULL);
    printf("  op returned %ld\n", o.ret);
}

/* No event features at all: the same operations complete without messages;
 * DONTNEED drops the protection silently, an mremap move clears the wp bits
 * and unregisters the moved range, in-place growth keeps the registration. */
static int no_events(void) {
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    base = mmap(NULL, 64 * UPAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED || mprotect(base, 8 * UPAGE, PROT_READ | PROT_WRITE)) return 2;
    for (int i = 0; i < 8; i++) base[i * UPAGE] = (char)('A' + i);
    printf("register pages 0-7: %s\n", uffd_err(-uffd_register(fd, base, 8 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect pages 0-7: %s\n", uffd_err(-uffd_protect(fd, base, 8 * UPAGE)));
    printf("MADV_DONTNEED pages 0-1: %d, pending %d\n", madvise(base, 2 * UPAGE, MADV_DONTNEED), uffd_pending(fd, 0));
    uffd_pm_line("page 0 after DONTNEED", base);
    base[0] = 'x';
    printf("write page 0: %c, pending %d\n", base[0], uffd_pending(fd, 0));
    uffd_pm_line("page 0 after write", base);
    printf("munmap page 2: %d, pending %d\n", munmap(base + 2 * UPAGE, UPAGE), uffd_pending(fd, 0));
    void *q = mremap(base + 3 * UPAGE, 2 * UPAGE, 2 * UPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, base + 40 * UPAGE);
    printf("mremap pages 3-4 to 40: %ld, pending %d\n", q == MAP_FAILED ? -1l : uffd_pidx(base, (uintptr_t)q),
           uffd_pending(fd, 0));
    uffd_pm_line("page 40 after the move", base + 40 * UPAGE);
    printf("page 40 data %c\n", base[40 * UPAGE]);
    printf("protect page 40: %s\n", uffd_err(-uffd_protect(fd, base + 40 * UPAGE, UPAGE)));
    base[40 * UPAGE] = 'y';
    printf("write page 40: %c, pending %d\n", base[40 * UPAGE], uffd_pending(fd, 0));
    printf("unregister page 40: %s\n", uffd_err(-uffd_unregister(fd, base + 40 * UPAGE, UPAGE)));
    /* Growth in place: pages 6-7 grow into 8-9 (the PROT_NONE reservation is
     * unmapped there first so the VMA can grow). */
    munmap(base + 8 * UPAGE, 2 * UPAGE);
    q = mremap(base + 6 * UPAGE, 2 * UPAGE, 4 * UPAGE, 0);
    printf("mremap grow pages 6-7 to 6-9 in place: %ld, pending %d\n", q == MAP_FAILED ? -1l : uffd_pidx(base, (uintptr_t)q),
           uffd_pending(fd, 0));
    uffd_pm_line("page 6 after growth", base + 6 * UPAGE);
    base[9 * UPAGE] = 'g';
    printf("protect page 9 (grown part): %s\n", uffd_err(-uffd_protect(fd, base + 9 * UPAGE, UPAGE)));
    uffd_pm_line("page 9", base + 9 * UPAGE);
    printf("pending at end %d\n", uffd_pending(fd, 0));
    return 0;
}

/* "remove-order": MADV_DONTNEED over two registered VMAs sends one REMOVE per VMA,
 * each before that VMA is zapped: while the first is unread both VMAs still hold their
 * data; after it is read the first is zapped and the second still holds its data until
 * its own event is read. A 4-message read returns one event at a time. */
static int remove_order(void) {
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_REMOVE);
    base = mmap(NULL, 64 * UPAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED || mprotect(base, 4 * UPAGE, PROT_READ | PROT_WRITE)) return 2;
    /* Pages 0-1 and 2-3 are two VMAs (2-3 also executable). */
    if (mprotect(base + 2 * UPAGE, 2 * UPAGE, PROT_READ | PROT_WRITE | PROT_EXEC)) return 2;
    for (int i = 0; i < 4; i++) base[i * UPAGE] = (char)('A' + i);
    printf("register pages 0-3: %s\n", uffd_err(-uffd_register(fd, base, 4 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    struct op o = { OP_DONTNEED, 0, 4, 0, 0, 0, 0 };
    pthread_create(&o.t, NULL, op_main, &o);
    for (int ev = 0; ev < 2; ev++) {
        while (!uffd_pending(fd, 20)) {}
        /* Only the PTEs of a zapped VMA are compared: Linux flushes the TLBs once, at
         * the end of the whole madvise, so a read of page 0 here may still hit its
         * old translation. Page 2 is not zapped before its own event is read. */
        int done = __atomic_load_n(&o.done, __ATOMIC_ACQUIRE);
        char c2 = base[2 * UPAGE];
        if (ev == 0) printf("event 0 pending: page 0 %c page 2 %c, done %d\n", base[0], c2, done);
        else printf("event 1 pending: page 2 %c, done %d\n", c2, done);
        uffd_pm_line("  page 0", base);
        uffd_pm_line("  page 2", base + 2 * UPAGE);
        struct uffd_msg m[4];
        ssize_t n = read(fd, m, sizeof m);
        char b[128];
        if (n > 0) uffd_msg_str(&m[0], base, b, sizeof b);
        printf("  read: %zd bytes, %s\n", n, n > 0 ? b : uffd_err(errno));
    }
    pthread_join(o.t, NULL);
    printf("DONTNEED returned %ld: page 0 %c page 2 %c, pending %d\n", o.ret, base[0] ? base[0] : '0', base[2 * UPAGE] ? base[2 * UPAGE] : '0', uffd_pending(fd, 0));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "none") == 0) return no_events();
    if (argc > 1 && strcmp(argv[1], "remove-order") == 0) return remove_order();
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_REMOVE |
                                               UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP);
    base = mmap(NULL, 64 * UPAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) return 2;
    /* Pages 0-23 RW and registered WP; 24-63 reserved PROT_NONE. */
    if (mprotect(base, 24 * UPAGE, PROT_READ | PROT_WRITE)) return 2;
    for (int i = 0; i < 24; i++) base[i * UPAGE] = (char)('A' + i);
    printf("register pages 0-23: %s\n", uffd_err(-uffd_register(fd, base, 24 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect pages 0-23: %s\n", uffd_err(-uffd_protect(fd, base, 24 * UPAGE)));

    run("MADV_DONTNEED pages 2-4", OP_DONTNEED, 2, 3, 0, 1);
    uffd_pm_line("page 2 after DONTNEED", base + 2 * UPAGE);
    base[2 * UPAGE] = 'x';
    printf("write page 2: data %c pending %d\n", base[2 * UPAGE], uffd_pending(fd, 0));
    int64_t c = 0;
    int e = uffd_zeropage(fd, base + 3 * UPAGE, UPAGE, 0, &c);
    printf("ZEROPAGE page 3 after the event was read: %s zeropage %lld\n", uffd_err(-e), (long long)c);

    run("MADV_FREE pages 5-6", OP_FREE, 5, 2, 0, 0);
    run("MADV_DONTNEED pages 22-25 (24-25 unregistered PROT_NONE)", OP_DONTNEED, 22, 4, 0, 0);
    run("munmap pages 10-11", OP_MUNMAP, 10, 2, 0, 1);
    run("munmap pages 8-13 (10-11 already gone)", OP_MUNMAP, 8, 6, 0, 0);
    run("mremap pages 14-15 to 40 (target PROT_NONE, unregistered)", OP_MREMAP, 14, 2, 40, 1);
    uffd_pm_line("page 40 after the move", base + 40 * UPAGE);
    printf("page 40 data %c\n", base[40 * UPAGE]);
    printf("unprotect page 40: %s\n", uffd_err(-uffd_unprotect(fd, base + 40 * UPAGE, UPAGE)));
    run("mremap pages 16-17 to 20 (target registered)", OP_MREMAP, 16, 2, 20, 0);
    uffd_pm_line("page 20 after the move", base + 20 * UPAGE);
    printf("page 20 data %c\n", base[20 * UPAGE]);

    /* A second uffd with EVENT_UNMAP but not EVENT_REMAP: a move clears wp
     * and unregisters, and the source gets an UNMAP event. */
    close(fd);
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_UNMAP);
    printf("no-REMAP uffd: register pages 0-1: %s\n",
           uffd_err(-uffd_register(fd, base, 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("no-REMAP uffd: protect: %s\n", uffd_err(-uffd_protect(fd, base, 2 * UPAGE)));
    run("no-REMAP uffd: mremap pages 0-1 to 50", OP_MREMAP, 0, 2, 50, 0);
    uffd_pm_line("page 50 after the move", base + 50 * UPAGE);
    printf("page 50 data %c\n", base[50 * UPAGE]);
    printf("protect page 50: %s\n", uffd_err(-uffd_protect(fd, base + 50 * UPAGE, UPAGE)));
    base[50 * UPAGE] = 'y';
    printf("write page 50: data %c pending %d\n", base[50 * UPAGE], uffd_pending(fd, 0));
    return 0;
}
