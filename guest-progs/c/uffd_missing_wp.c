// pagelab: cflags=-pthread
// MISSING and WP registered together on private anonymous memory.
// A write to a missing page gives a MISSING message (flags WRITE); resolving
// it with UFFDIO_COPY + COPY_MODE_WP installs the page write-protected, so
// the retried write gives a WP message (flags WRITE|WP) for the same page.
// Read misses give flags 0; ZEROPAGE resolves them with the zero page, never
// write-protected; ZEROPAGE DONTWAKE leaves the reader asleep until WAKE;
// ZEROPAGE/COPY over a present page give EEXIST; COPY|WP into a MISSING-only
// range gives EINVAL; WRITEPROTECT there ENOENT. Each access runs in its own
// thread; the main thread is the monitor, one message at a time.
#define _GNU_SOURCE
#include "uffd.h"

struct access {
    char *p;
    int write;
    char val;
    char seen;
    volatile int done;
    pthread_t t;
};

static void *access_main(void *v) {
    struct access *a = v;
    if (a->write) *(volatile char *)a->p = a->val;
    else a->seen = *(volatile char *)a->p;
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void start(struct access *a, char *p, int write, char val) {
    a->p = p;
    a->write = write;
    a->val = val;
    a->seen = 0;
    a->done = 0;
    pthread_create(&a->t, NULL, access_main, a);
}

static int fd;
static char *r;

/* Reads one message (waiting as long as needed) and prints it. */
static void expect_msg(const char *what) {
    struct uffd_msg m;
    char b[128];
    int got = uffd_read_msg(fd, &m, -1);
    if (got == 1) uffd_msg_str(&m, r, b, sizeof b);
    printf("%s: %s\n", what, got == 1 ? b : "no message");
}

int main(void) {
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    r = uffd_map(8);
    char *src = uffd_map(3); /* never on the stack: a COPY's src must stay readable */
    memset(src, 'X', 3 * UPAGE);
    uint64_t ioctls = 0;
    int e = uffd_register(fd, r, 6 * UPAGE, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, &ioctls);
    printf("register MISSING|WP: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    e = uffd_register(fd, r + 6 * UPAGE, 2 * UPAGE, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
    printf("register MISSING (pages 6-7): %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);

    /* Page 0: write miss, COPY|WP, then the WP fault of the same write. */
    struct access a;
    start(&a, r, 1, 'w');
    expect_msg("page 0 write");
    int64_t c = 0;
    e = uffd_copy(fd, r, src, UPAGE, UFFDIO_COPY_MODE_WP, &c);
    printf("COPY|WP page 0: %s copy %lld\n", uffd_err(-e), (long long)c);
    expect_msg("page 0 retried write");
    uffd_pm_line("page 0 after COPY|WP", r);
    printf("page 0 done %d data %c\n", a.done, r[0]);
    printf("unprotect page 0: %s\n", uffd_err(-uffd_unprotect(fd, r, UPAGE)));
    pthread_join(a.t, NULL);
    printf("page 0 done %d data %c%c\n", a.done, r[0], r[1]);
    uffd_pm_line("page 0 after write", r);

    /* Page 1: read miss, ZEROPAGE: the zero page, not write-protected, so a
     * later write COWs without a message. */
    start(&a, r + UPAGE, 0, 0);
    expect_msg("page 1 read");
    c = 0;
    e = uffd_zeropage(fd, r + UPAGE, UPAGE, 0, &c);
    printf("ZEROPAGE page 1: %s zeropage %lld\n", uffd_err(-e), (long long)c);
    pthread_join(a.t, NULL);
    printf("page 1 read value %d\n", a.seen);
    uffd_pm_line("page 1 after ZEROPAGE", r + UPAGE);
    r[UPAGE] = 'z';
    printf("page 1 write: pending %d\n", uffd_pending(fd, 0));
    uffd_pm_line("page 1 after write", r + UPAGE);

    /* Page 2: read miss, ZEROPAGE DONTWAKE keeps the reader asleep until WAKE. */
    start(&a, r + 2 * UPAGE, 0, 0);
    expect_msg("page 2 read");
    c = 0;
    e = uffd_zeropage(fd, r + 2 * UPAGE, UPAGE, UFFDIO_ZEROPAGE_MODE_DONTWAKE, &c);
    printf("ZEROPAGE DONTWAKE page 2: %s zeropage %lld\n", uffd_err(-e), (long long)c);
    printf("page 2 reader done %d (asleep)\n", uffd_wait_flag(&a.done, 100));
    printf("WAKE page 2: %s\n", uffd_err(-uffd_wake(fd, r + 2 * UPAGE, UPAGE)));
    pthread_join(a.t, NULL);
    printf("page 2 reader done %d pending %d\n", a.done, uffd_pending(fd, 0));

    /* Page 3: COPY without WP for a write miss: the write completes at once. */
    start(&a, r + 3 * UPAGE, 1, 'v');
    expect_msg("page 3 write");
    c = 0;
    e = uffd_copy(fd, r + 3 * UPAGE, src + 5, UPAGE, 0, &c); /* src need not be aligned */
    printf("COPY page 3 (unaligned src): %s copy %lld\n", uffd_err(-e), (long long)c);
    pthread_join(a.t, NULL);
    printf("page 3 data %c%c pending %d\n", r[3 * UPAGE], r[3 * UPAGE + 1], uffd_pending(fd, 0));
    uffd_pm_line("page 3", r + 3 * UPAGE);

    /* EEXIST over present pages (the zero page counts as present). */
    c = 1234;
    e = uffd_zeropage(fd, r, UPAGE, 0, &c);
    printf("ZEROPAGE over page 0: %s zeropage %lld\n", uffd_err(-e), (long long)c);
    c = 1234;
    e = uffd_copy(fd, r + 2 * UPAGE, src, UPAGE, 0, &c);
    printf("COPY over page 2 (zero page): %s copy %lld\n", uffd_err(-e), (long long)c);
    c = 1234;
    e = uffd_zeropage(fd, r + 4 * UPAGE, UPAGE, UFFDIO_COPY_MODE_WP, &c);
    printf("ZEROPAGE mode 2: %s zeropage %lld\n", uffd_err(-e), (long long)c);
    /* ZEROPAGE without a fault, then WRITEPROTECT of the zero page. */
    c = 0;
    e = uffd_zeropage(fd, r + 4 * UPAGE, UPAGE, 0, &c);
    printf("ZEROPAGE page 4 (no waiter): %s zeropage %lld\n", uffd_err(-e), (long long)c);
    uffd_pm_line("page 4", r + 4 * UPAGE);
    printf("protect page 4: %s\n", uffd_err(-uffd_protect(fd, r + 4 * UPAGE, UPAGE)));
    uffd_pm_line("page 4 after protect", r + 4 * UPAGE);
    start(&a, r + 4 * UPAGE, 1, 'u');
    expect_msg("page 4 write");
    printf("unprotect page 4: %s\n", uffd_err(-uffd_unprotect(fd, r + 4 * UPAGE, UPAGE)));
    pthread_join(a.t, NULL);
    uffd_pm_line("page 4 after write", r + 4 * UPAGE);

    /* Page 5: a COPY|WP spanning into the MISSING-only VMA stops there. */
    c = 1234;
    e = uffd_copy(fd, r + 5 * UPAGE, src, 2 * UPAGE, UFFDIO_COPY_MODE_WP, &c);
    printf("COPY|WP pages 5-6 (6 is MISSING-only): %s copy %lld\n", uffd_err(-e), (long long)c);
    c = 1234;
    e = uffd_copy(fd, r + 6 * UPAGE, src, UPAGE, UFFDIO_COPY_MODE_WP, &c);
    printf("COPY|WP page 6: %s copy %lld\n", uffd_err(-e), (long long)c);
    c = 1234;
    e = uffd_copy(fd, r + 6 * UPAGE, src, 2 * UPAGE, 0, &c);
    printf("COPY pages 6-7: %s copy %lld\n", uffd_err(-e), (long long)c);
    printf("protect page 6: %s\n", uffd_err(-uffd_protect(fd, r + 6 * UPAGE, UPAGE)));
    uffd_pm_line("page 5", r + 5 * UPAGE);
    uffd_pm_line("page 6", r + 6 * UPAGE);
    printf("pending at end: %d\n", uffd_pending(fd, 0));
    return 0;
}
