// pagelab: cflags=-pthread
// Kernel-mode accesses to registered memory (reference 4.1, 5.3 step 8, 5.16):
// * read() from a pipe into a write-protected buffer raises a WP message
//   (flags WRITE|WP) and blocks the syscall until the page is un-protected;
//   then read() returns the data;
// * read() into a missing page of a MISSING range raises a MISSING message
//   (flags WRITE) and completes after UFFDIO_COPY;
// * write() from a protected buffer does not fault;
// * with UFFD_USER_MODE_ONLY the same read() fails with EFAULT, no message is
//   queued and the pipe keeps its data.
// argv[1] "vmwritev": the same with process_vm_writev into our own page;
// argv[1] "procmem": pwrite to /proc/self/mem at a protected page gives EIO.
// argv[1] "span": a pipe read and a memfd read that cross from a writable page into a
// protected one wait in the middle and return the full count; an eventfd read into a
// protected page returns the counter once the page is un-protected.
#define _GNU_SOURCE
#include "uffd.h"
#include <sys/uio.h>
#include <sys/eventfd.h>

static char *r;

struct rd {
    int fd;
    char *buf;
    size_t len;
    volatile ssize_t ret;
    volatile int err;
    volatile int done;
    pthread_t t;
};

static void *reader(void *v) {
    struct rd *a = v;
    ssize_t n = read(a->fd, a->buf, a->len);
    a->err = n < 0 ? errno : 0;
    a->ret = n;
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void expect_msg(int fd, const char *what) {
    struct uffd_msg m;
    char b[128];
    int got = uffd_read_msg(fd, &m, -1);
    if (got == 1) uffd_msg_str(&m, r, b, sizeof b);
    printf("%s: %s\n", what, got == 1 ? b : "no message");
}

static void fill_pipe(int w, char c, size_t n) {
    char buf[256];
    memset(buf, c, sizeof buf);
    if (write(w, buf, n) != (ssize_t)n) printf("pipe write failed\n");
}

/* process_vm_writev into our own protected page: a WP message, the syscall
 * waits until the page is un-protected; with USER_MODE_ONLY, EFAULT.
 * pwrite to /proc/self/mem at a protected page: EIO (FOLL_FORCE GUP cannot
 * retry), no message. */
struct pvw {
    char *dst;
    volatile ssize_t ret;
    volatile int err, done;
    pthread_t t;
};

static void *pvw_main(void *v) {
    struct pvw *a = v;
    static char data[32] = "process_vm_writev data";
    struct iovec l = { data, 22 }, rm = { a->dst, 22 };
    ssize_t n = process_vm_writev(getpid(), &l, 1, &rm, 1, 0);
    a->err = n < 0 ? errno : 0;
    a->ret = n;
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int other_modes(const char *mode) {
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    r = uffd_map(2);
    memset(r, 'a', 2 * UPAGE);
    printf("register WP: %s\n", uffd_err(-uffd_register(fd, r, 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect: %s\n", uffd_err(-uffd_protect(fd, r, 2 * UPAGE)));
    if (strcmp(mode, "vmwritev") == 0) {
        struct pvw a = { r + 7, 0, 0, 0, 0 };
        pthread_create(&a.t, NULL, pvw_main, &a);
        /* Wait for the message, or for a writer that did not fault at all. */
        while (!uffd_pending(fd, 10) && !__atomic_load_n(&a.done, __ATOMIC_ACQUIRE)) {}
        if (uffd_pending(fd, 0)) expect_msg(fd, "process_vm_writev into protected page 0");
        else printf("process_vm_writev into protected page 0: no message\n");
        printf("writer done %d (waiting)\n", uffd_wait_flag(&a.done, 100));
        printf("unprotect page 0: %s\n", uffd_err(-uffd_unprotect(fd, r, UPAGE)));
        pthread_join(a.t, NULL);
        printf("process_vm_writev returned %zd (%s), data %.22s\n", a.ret, uffd_err(a.err), r + 7);
        int ufd = uffd_open(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
        char *u = uffd_map(1);
        memset(u, 'u', UPAGE);
        uffd_register(ufd, u, UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
        printf("user-mode-only: protect: %s\n", uffd_err(-uffd_protect(ufd, u, UPAGE)));
        struct pvw b = { u, 0, 0, 0, 0 };
        pthread_create(&b.t, NULL, pvw_main, &b);
        pthread_join(b.t, NULL);
        printf("user-mode-only: process_vm_writev returned %zd (%s), pending %d, data %c\n", b.ret, uffd_err(b.err),
               uffd_pending(ufd, 0), u[0]);
    } else if (strcmp(mode, "procmem") == 0) {
        int mfd = open("/proc/self/mem", O_RDWR);
        if (mfd < 0) {
            printf("open /proc/self/mem: %s\n", uffd_err(errno));
            return 0;
        }
        ssize_t n = pwrite(mfd, "xyz", 3, (off_t)(uintptr_t)(r + UPAGE + 5));
        printf("pwrite /proc/self/mem at protected page 1: %zd %s, pending %d, data %c\n", n,
               uffd_err(n < 0 ? errno : 0), uffd_pending(fd, 0), r[UPAGE + 5]);
        char buf[4] = { 0 };
        n = pread(mfd, buf, 3, (off_t)(uintptr_t)(r + UPAGE + 5));
        printf("pread /proc/self/mem at protected page 1: %zd %.3s\n", n, buf);
        printf("unprotect page 1: %s\n", uffd_err(-uffd_unprotect(fd, r + UPAGE, UPAGE)));
        n = pwrite(mfd, "xyz", 3, (off_t)(uintptr_t)(r + UPAGE + 5));
        printf("pwrite after unprotect: %zd %s, data %.3s\n", n, uffd_err(n < 0 ? errno : 0), r + UPAGE + 5);
        close(mfd);
    } else if (strcmp(mode, "span") == 0) {
        /* Copies that cross from a writable page into a protected one: Linux faults
         * in the middle of the copy, waits there, and finishes with the full count. */
        int p[2];
        if (pipe(p)) return 2;
        printf("unprotect page 0: %s\n", uffd_err(-uffd_unprotect(fd, r, UPAGE)));
        fill_pipe(p[1], 'k', 200);
        struct rd a = { p[0], r + UPAGE - 100, 200, 0, 0, 0, 0 };
        pthread_create(&a.t, NULL, reader, &a);
        expect_msg(fd, "pipe read() across pages 0-1");
        printf("reader done %d (waiting)\n", uffd_wait_flag(&a.done, 100));
        printf("unprotect page 1: %s\n", uffd_err(-uffd_unprotect(fd, r + UPAGE, UPAGE)));
        pthread_join(a.t, NULL);
        printf("read returned %zd (%s), data %c%c%c\n", a.ret, uffd_err(a.err), r[UPAGE - 101], r[UPAGE - 100], r[UPAGE + 99]);
        printf("protect pages 0-1: %s\n", uffd_err(-uffd_protect(fd, r, 2 * UPAGE)));
        printf("unprotect page 0: %s\n", uffd_err(-uffd_unprotect(fd, r, UPAGE)));
        int mfd = memfd_create("span", 0);
        char fbuf[300];
        memset(fbuf, 'f', sizeof fbuf);
        if (write(mfd, fbuf, sizeof fbuf) != (ssize_t)sizeof fbuf) return 2;
        struct rd b = { mfd, r + UPAGE - 150, 300, 0, 0, 0, 0 };
        lseek(mfd, 0, SEEK_SET);
        pthread_create(&b.t, NULL, reader, &b);
        expect_msg(fd, "memfd read() across pages 0-1");
        printf("reader done %d (waiting)\n", uffd_wait_flag(&b.done, 100));
        printf("unprotect page 1: %s\n", uffd_err(-uffd_unprotect(fd, r + UPAGE, UPAGE)));
        pthread_join(b.t, NULL);
        printf("read returned %zd (%s), offset %ld, data %c%c\n", b.ret, uffd_err(b.err), (long)lseek(mfd, 0, SEEK_CUR), r[UPAGE - 150], r[UPAGE + 149]);
        /* eventfd: the counter is read once, into a protected page. */
        printf("protect page 1: %s\n", uffd_err(-uffd_protect(fd, r + UPAGE, UPAGE)));
        int efd = eventfd(5, 0);
        struct rd c = { efd, r + UPAGE + 8, 8, 0, 0, 0, 0 };
        pthread_create(&c.t, NULL, reader, &c);
        expect_msg(fd, "eventfd read() into protected page 1");
        printf("reader done %d (waiting)\n", uffd_wait_flag(&c.done, 100));
        printf("unprotect page 1: %s\n", uffd_err(-uffd_unprotect(fd, r + UPAGE, UPAGE)));
        pthread_join(c.t, NULL);
        uint64_t v;
        memcpy(&v, r + UPAGE + 8, 8);
        printf("eventfd read returned %zd (%s), value %llu\n", c.ret, uffd_err(c.err), (unsigned long long)v);
        int fl = fcntl(efd, F_GETFL);
        fcntl(efd, F_SETFL, fl | O_NONBLOCK);
        ssize_t n = read(efd, &v, 8);
        printf("eventfd after: %zd %s\n", n, uffd_err(n < 0 ? errno : 0));
    } else {
        printf("unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1) return other_modes(argv[1]);
    int p[2];
    if (pipe(p)) return 2;
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    r = uffd_map(4);
    memset(r, 'a', 2 * UPAGE);
    printf("register WP pages 0-1: %s\n", uffd_err(-uffd_register(fd, r, 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("register MISSING pages 2-3: %s\n",
           uffd_err(-uffd_register(fd, r + 2 * UPAGE, 2 * UPAGE, UFFDIO_REGISTER_MODE_MISSING, NULL)));
    printf("protect pages 0-1: %s\n", uffd_err(-uffd_protect(fd, r, 2 * UPAGE)));

    /* write() reads the protected buffer: no fault. */
    ssize_t n = write(p[1], r, 100);
    printf("write from protected buffer: %zd, pending %d\n", n, uffd_pending(fd, 0));
    char tmp[256];
    n = read(p[0], tmp, sizeof tmp);
    printf("drained %zd\n", n);

    /* read() into the protected buffer: WP message, the syscall waits. */
    fill_pipe(p[1], 'k', 100);
    struct rd a = { p[0], r + 10, 100, 0, 0, 0, 0 };
    pthread_create(&a.t, NULL, reader, &a);
    expect_msg(fd, "read() into protected page 0");
    printf("reader done %d (waiting)\n", uffd_wait_flag(&a.done, 100));
    uffd_pm_line("page 0 during the read", r);
    printf("unprotect page 0: %s\n", uffd_err(-uffd_unprotect(fd, r, UPAGE)));
    pthread_join(a.t, NULL);
    printf("read returned %zd (%s), data %c%c%c\n", a.ret, uffd_err(a.err), r[9], r[10], r[109]);

    /* read() into a missing page: MISSING message, completes after COPY. */
    fill_pipe(p[1], 'm', 50);
    struct rd b = { p[0], r + 2 * UPAGE + 5, 50, 0, 0, 0, 0 };
    pthread_create(&b.t, NULL, reader, &b);
    expect_msg(fd, "read() into missing page 2");
    char *src = uffd_map(1);
    memset(src, 'c', UPAGE);
    int64_t c = 0;
    int e = uffd_copy(fd, r + 2 * UPAGE, src, UPAGE, 0, &c);
    printf("COPY page 2: %s copy %lld\n", uffd_err(-e), (long long)c);
    pthread_join(b.t, NULL);
    printf("read returned %zd (%s), data %c%c%c\n", b.ret, uffd_err(b.err), r[2 * UPAGE + 4], r[2 * UPAGE + 5],
           r[2 * UPAGE + 55]);
    close(fd);

    /* UFFD_USER_MODE_ONLY: the kernel access fails with EFAULT instead. */
    int ufd = uffd_open(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    char *u = uffd_map(2);
    memset(u, 'u', UPAGE);
    printf("user-mode-only: register MISSING|WP: %s\n",
           uffd_err(-uffd_register(ufd, u, 2 * UPAGE, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("user-mode-only: protect page 0: %s\n", uffd_err(-uffd_protect(ufd, u, UPAGE)));
    fill_pipe(p[1], 'q', 64);
    errno = 0;
    n = read(p[0], u + 1, 64);
    printf("user-mode-only: read() into protected page: %zd %s, pending %d\n", n, uffd_err(n < 0 ? errno : 0),
           uffd_pending(ufd, 0));
    errno = 0;
    n = read(p[0], u + UPAGE + 1, 64);
    printf("user-mode-only: read() into missing page: %zd %s, pending %d\n", n, uffd_err(n < 0 ? errno : 0),
           uffd_pending(ufd, 0));
    n = read(p[0], tmp, sizeof tmp);
    printf("user-mode-only: the pipe still holds %zd bytes of %c\n", n, n > 0 ? tmp[0] : '-');
    printf("user-mode-only: page 0 data %c, pagemap wp %d\n", u[1], uffd_pm_wp(u));
    n = write(p[1], u, 10);
    printf("user-mode-only: write() from protected page: %zd\n", n);
    close(ufd);
    return 0;
}
