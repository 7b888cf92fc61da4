// pagelab: cflags=-pthread
/* uffdcore_missing: MISSING faults on private anonymous memory. A handler
 * thread reads messages (flags, page index, ptid, exact address) and resolves
 * them with UFFDIO_COPY or UFFDIO_ZEROPAGE; several faults read at once (FIFO,
 * as many as fit); poll; UFFDIO_COPY/ZEROPAGE semantics (partial copies,
 * copy=-errno, early validation, unaligned src, foreign uffd); SIGBUS feature;
 * kernel-mode faults (read() from a pipe into a missing page) with and without
 * USER_MODE_ONLY; close() waking a blocked fault. */
#include "pl.h"
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PG 4096ul

static int uffd_new(int flags, uint64_t features) {
    int fd = (int)syscall(SYS_userfaultfd, flags);
    struct uffdio_api a = { .api = UFFD_API, .features = features };
    if (fd < 0 || ioctl(fd, UFFDIO_API, &a)) { printf("uffd setup failed %d\n", errno); exit(1); }
    return fd;
}
static void reg(int fd, void *p, uint64_t len, uint64_t mode) {
    struct uffdio_register r = { .range = { (uint64_t)p, len }, .mode = mode };
    if (ioctl(fd, UFFDIO_REGISTER, &r)) { printf("register failed %d\n", errno); exit(1); }
}
static long gettid_(void) { return syscall(SYS_gettid); }

static char *region;
static int ufd;
static volatile long worker_tid;

/* Handler: reads `n` messages one at a time (blocking read), resolves each. */
static void *handler(void *arg) {
    long n = (long)arg;
    char src[PG];
    for (long i = 0; i < n; i++) {
        struct uffd_msg msg;
        struct pollfd p = { ufd, POLLIN, 0 };
        if (poll(&p, 1, -1) != 1) { printf("poll failed\n"); exit(1); }
        ssize_t r = read(ufd, &msg, sizeof msg);
        if (r != sizeof msg) { printf("read %zd errno %d\n", r, errno); exit(1); }
        uint64_t a = msg.arg.pagefault.address;
        long pidx = (long)((a - (uint64_t)region) / PG);
        printf("  msg event=%#x flags=%#llx page=%ld off=%#lx ptid=%s\n", msg.event, (unsigned long long)msg.arg.pagefault.flags, pidx,
               (unsigned long)(a & (PG - 1)), msg.arg.pagefault.feat.ptid == 0 ? "0" : msg.arg.pagefault.feat.ptid == worker_tid ? "worker" : "other");
        uint64_t page = a & ~(PG - 1);
        if (pidx % 2 == 0) {
            memset(src, 'A' + (int)pidx, PG);
            struct uffdio_copy c = { .dst = page, .src = (uint64_t)src, .len = PG, .mode = 0 };
            if (ioctl(ufd, UFFDIO_COPY, &c)) printf("  copy failed %d copy=%lld\n", errno, (long long)c.copy);
        } else {
            struct uffdio_zeropage z = { .range = { page, PG }, .mode = 0 };
            if (ioctl(ufd, UFFDIO_ZEROPAGE, &z)) printf("  zeropage failed %d\n", errno);
        }
    }
    return NULL;
}

static void section_workflow(uint64_t features, const char *name) {
    printf("workflow %s\n", name);
    ufd = uffd_new(O_NONBLOCK, features);
    region = mmap(NULL, 6 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    reg(ufd, region, 6 * PG, UFFDIO_REGISTER_MODE_MISSING);
    worker_tid = gettid_();
    pthread_t t;
    pthread_create(&t, NULL, handler, (void *)4L);
    /* page 0 read, page 1 write at offset 0x123, page 2 write, page 3 read */
    volatile char *r = region;
    int v0 = r[0];
    r[PG + 0x123] = 'x';
    r[2 * PG + 5] = 'y';
    int v3 = r[3 * PG + 7];
    pthread_join(t, NULL);
    printf("  values: %c %d %c%c %d\n", v0, r[PG + 0x123], r[2 * PG], r[2 * PG + 5], v3);
    close(ufd);
    munmap(region, 6 * PG);
}

/* Several faulting threads; one read returns as many messages as fit. */
static void *toucher(void *arg) {
    volatile char *p = arg;
    (void)*p;
    return NULL;
}

static void section_multi(void) {
    printf("multi\n");
    ufd = uffd_new(O_NONBLOCK, 0);
    region = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    reg(ufd, region, 4 * PG, UFFDIO_REGISTER_MODE_MISSING);
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        pthread_create(&t[i], NULL, toucher, region + (uint64_t)i * PG);
        /* wait until its fault is queued, so the order is known */
        for (;;) {
            struct pollfd p = { ufd, POLLIN, 0 };
            poll(&p, 1, 10);
            struct uffd_msg m[4];
            (void)m;
            /* count pending by peeking: cannot peek; sleep a little instead */
            usleep(20000);
            break;
        }
    }
    struct uffd_msg m[4];
    ssize_t r = read(ufd, m, sizeof(struct uffd_msg) * 4 - 1);
    printf("  read 127 bytes -> %zd\n", r);
    for (int i = 0; i < (int)(r / 32); i++) printf("  page %ld\n", (long)((m[i].arg.pagefault.address - (uint64_t)region) / PG));
    r = read(ufd, m, sizeof m);
    printf("  read again -> %zd errno %d\n", r, errno);
    struct uffdio_zeropage z = { .range = { (uint64_t)region, 4 * PG }, .mode = 0 };
    int e = ioctl(ufd, UFFDIO_ZEROPAGE, &z);
    printf("  zeropage 4 pages -> %d zeropage=%lld\n", e, (long long)z.zeropage);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    close(ufd);
    munmap(region, 4 * PG);
}

static void section_copy(void) {
    printf("copy semantics\n");
    ufd = uffd_new(O_NONBLOCK, 0);
    int wfd = uffd_new(O_NONBLOCK, 0);
    char *m = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *src = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(src, 's', 4 * PG);
    m[2 * PG] = 1; /* page 2 populated before registering */
    reg(ufd, m, 4 * PG, UFFDIO_REGISTER_MODE_MISSING);
    reg(wfd, m + 4 * PG, 2 * PG, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
    struct uffdio_copy c;
#define COPY(fd, d, s, l, md) (c = (struct uffdio_copy){ .dst = (uint64_t)(d), .src = (uint64_t)(s), .len = (l), .mode = (md), .copy = 777 }, ioctl(fd, UFFDIO_COPY, &c) ? errno : 0)
    int e;
    e = COPY(ufd, m, src, 3 * PG, 0);
    printf("  pages 0-2 with 2 populated: %d copy=%lld\n", e, (long long)c.copy);
    e = COPY(ufd, m + 2 * PG, src, PG, 0);
    printf("  onto populated: %d copy=%lld\n", e, (long long)c.copy);
    e = COPY(ufd, m + 1, src, PG, 0);
    printf("  dst unaligned: %d copy=%lld\n", e, (long long)c.copy);
    e = COPY(ufd, m + 3 * PG, src, 100, 0);
    printf("  len 100: %d copy=%lld\n", e, (long long)c.copy);
    e = COPY(ufd, m + 3 * PG, src, PG, 4);
    printf("  mode 4: %d copy=%lld\n", e, (long long)c.copy);
    e = COPY(ufd, m + 3 * PG, src, PG, UFFDIO_COPY_MODE_WP);
    printf("  MODE_WP without wp registration: %d copy=%lld\n", e, (long long)c.copy);
    e = COPY(ufd, m + 3 * PG, NULL, PG, 0);
    printf("  src NULL: %d copy=%lld\n", e, (long long)c.copy);
    e = COPY(ufd, m + 3 * PG, src + 8 * PG + 0x7000000, PG, 0);
    printf("  src unmapped: %d copy=%lld\n", e, (long long)c.copy);
    e = COPY(ufd, m + 3 * PG, src + 7, PG, UFFDIO_COPY_MODE_DONTWAKE);
    printf("  src unaligned: %d copy=%lld data=%c\n", e, (long long)c.copy, m[3 * PG]);
    e = COPY(ufd, m + 6 * PG, src, PG, 0);
    printf("  unregistered: %d copy=%lld\n", e, (long long)c.copy);
    e = COPY(ufd, m + 3 * PG, src, 2 * PG, 0);
    printf("  across VMA end: %d copy=%lld\n", e, (long long)c.copy);
    e = COPY(ufd, m + 4 * PG, src, PG, UFFDIO_COPY_MODE_WP);
    printf("  foreign uffd, MODE_WP: %d copy=%lld\n", e, (long long)c.copy);
    struct uffdio_writeprotect w = { .range = { (uint64_t)m + 4 * PG, PG }, .mode = 0 };
    printf("  foreign uffd un-protect: %d\n", ioctl(ufd, UFFDIO_WRITEPROTECT, &w) ? errno : 0);
    struct uffdio_zeropage z;
#define ZP(d, l, md) (z = (struct uffdio_zeropage){ .range = { (uint64_t)(d), (l) }, .mode = (md), .zeropage = 777 }, ioctl(ufd, UFFDIO_ZEROPAGE, &z) ? errno : 0)
    e = ZP(m + 5 * PG, PG, 0);
    printf("  zeropage foreign: %d zeropage=%lld read=%d\n", e, (long long)z.zeropage, m[5 * PG]);
    e = ZP(m + 5 * PG, PG, 0);
    printf("  zeropage populated: %d zeropage=%lld\n", e, (long long)z.zeropage);
    e = ZP(m + 5 * PG, PG, 2);
    printf("  zeropage mode 2: %d zeropage=%lld\n", e, (long long)z.zeropage);
    /* PROT_READ VMA */
    char *ro = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    reg(ufd, ro, PG, UFFDIO_REGISTER_MODE_MISSING);
    e = COPY(ufd, ro, src, PG, 0);
    printf("  into PROT_READ: %d copy=%lld data=%c\n", e, (long long)c.copy, ro[0]);
    struct uffdio_continue ct = { .range = { (uint64_t)m, PG }, .mode = 0, .mapped = 777 };
    e = ioctl(ufd, UFFDIO_CONTINUE, &ct) ? errno : 0;
    printf("  continue on anon: %d mapped=%lld\n", e, (long long)ct.mapped);
    close(ufd);
    close(wfd);
}

static void on_bus(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    printf("  SIGBUS sig=%d code=%d off=%#lx\n", sig, si->si_code, (unsigned long)((char *)si->si_addr - region));
    struct uffdio_zeropage z = { .range = { ((uint64_t)si->si_addr) & ~(PG - 1), PG }, .mode = 0 };
    ioctl(ufd, UFFDIO_ZEROPAGE, &z);
}

static void section_sigbus(void) {
    printf("sigbus\n");
    ufd = uffd_new(O_NONBLOCK, UFFD_FEATURE_SIGBUS);
    region = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    reg(ufd, region, PG, UFFDIO_REGISTER_MODE_MISSING);
    struct sigaction sa = { .sa_sigaction = on_bus, .sa_flags = SA_SIGINFO };
    sigaction(SIGBUS, &sa, NULL);
    volatile char *r = region;
    int v = r[0x321];
    printf("  after: %d\n", v);
    signal(SIGBUS, SIG_DFL);
    close(ufd);
}

/* Kernel-mode fault: read() from a pipe into a missing page. */
static void *kreader(void *arg) {
    int *p = arg;
    ssize_t r = read(p[0], region + 16, 8);
    printf("  kernel read -> %zd errno %d data=%.8s\n", r, r < 0 ? errno : 0, r > 0 ? region + 16 : "");
    return NULL;
}

static void section_kernel(int umo) {
    printf("kernel access%s\n", umo ? " USER_MODE_ONLY" : "");
    ufd = uffd_new(O_NONBLOCK | (umo ? UFFD_USER_MODE_ONLY : 0), 0);
    region = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    reg(ufd, region, PG, UFFDIO_REGISTER_MODE_MISSING);
    int p[2];
    pipe(p);
    write(p[1], "12345678", 8);
    pthread_t t;
    pthread_create(&t, NULL, kreader, p);
    if (!umo) {
        struct pollfd pf = { ufd, POLLIN, 0 };
        poll(&pf, 1, -1);
        struct uffd_msg msg;
        read(ufd, &msg, sizeof msg);
        printf("  msg flags=%#llx page=%ld\n", (unsigned long long)msg.arg.pagefault.flags, (long)((msg.arg.pagefault.address - (uint64_t)region) / PG));
        struct uffdio_zeropage z = { .range = { (uint64_t)region, PG }, .mode = 0 };
        ioctl(ufd, UFFDIO_ZEROPAGE, &z);
    }
    pthread_join(t, NULL);
    struct pollfd pf = { ufd, POLLIN, 0 };
    printf("  pending after: %d\n", poll(&pf, 1, 0));
    close(p[0]);
    close(p[1]);
    close(ufd);
}

/* close() wakes a blocked fault; the fault then completes normally. */
static void *blocked_toucher(void *arg) {
    (void)arg;
    volatile char *r = region;
    r[100] = 7;
    printf("  toucher done: %d\n", r[100]);
    return NULL;
}

static void section_close(void) {
    printf("close wakes\n");
    ufd = uffd_new(O_NONBLOCK, 0);
    region = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    reg(ufd, region, PG, UFFDIO_REGISTER_MODE_MISSING);
    pthread_t t;
    pthread_create(&t, NULL, blocked_toucher, NULL);
    struct pollfd pf = { ufd, POLLIN, 0 };
    poll(&pf, 1, -1);
    close(ufd);
    pthread_join(t, NULL);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    section_workflow(0, "plain");
    section_workflow(UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS, "thread_id+exact");
    section_multi();
    section_copy();
    section_sigbus();
    section_kernel(0);
    section_kernel(1);
    section_close();
    printf("done\n");
    return 0;
}
