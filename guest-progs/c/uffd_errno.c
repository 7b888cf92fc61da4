// pagelab: cflags=-pthread
// The errno of every bad-argument case of userfaultfd(2) and the uffd ioctls
// on private anonymous memory (reference 4.1-4.17, Appendix A API-*, REG-*,
// UNREG-1, WAKE-1, WP-5..7, COPY-1, CONT-1, POIS-1, MOVE-1), one row each:
// "<case>: <errno>" plus the output field (copy/zeropage/mapped/updated/
// move) where the ioctl has one, pre-set to 1234 so "1234" means "not
// written". UFFDIO_API reports the features this kernel implements, which
// differ between Linux (0x1ffff) and pagelab, so only the required
// set is checked there; the ioctls mask is printed exactly.
// argv[1] "fdlink": the /proc/self/fd link of a uffd (anon_inode:[userfaultfd]).
// argv[1] "vmas": REGISTER/UNREGISTER split and merge VMAs (smaps VmFlags um/uw).
#define _GNU_SOURCE
#include "uffd.h"
#include <setjmp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#define REQUIRED_FEATURES                                                                                   \
    (UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |                  \
     UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID | \
     UFFD_FEATURE_EXACT_ADDRESS)

#define TASK_SIZE 0x7ffffffff000ull
#define F 1234 /* "field not written" */

static void row(const char *what, int e) {
    printf("%s: %s\n", what, uffd_err(-e));
}

static void rowf(const char *what, int e, const char *field, int64_t v) {
    printf("%s: %s %s %lld\n", what, uffd_err(-e), field, (long long)v);
}

static int raw_ioctl(int fd, unsigned long cmd, void *arg) {
    return ioctl(fd, cmd, arg) < 0 ? -errno : 0;
}

static int copy_row(const char *what, int fd, uint64_t dst, uint64_t src, uint64_t len, uint64_t mode) {
    struct uffdio_copy c = { dst, src, len, mode, F };
    int e = raw_ioctl(fd, UFFDIO_COPY, &c);
    rowf(what, e, "copy", c.copy);
    return e;
}

static int zp_row(const char *what, int fd, uint64_t dst, uint64_t len, uint64_t mode) {
    struct uffdio_zeropage z = { { dst, len }, mode, F };
    int e = raw_ioctl(fd, UFFDIO_ZEROPAGE, &z);
    rowf(what, e, "zeropage", z.zeropage);
    return e;
}

static void reg_row(const char *what, int fd, uint64_t start, uint64_t len, uint64_t mode) {
    struct uffdio_register r = { { start, len }, mode, F };
    int e = raw_ioctl(fd, UFFDIO_REGISTER, &r);
    if (e) row(what, e);
    else printf("%s: 0 ioctls %#llx\n", what, (unsigned long long)r.ioctls);
}

static void range_row(const char *what, int fd, unsigned long cmd, uint64_t start, uint64_t len) {
    struct uffdio_range r = { start, len };
    row(what, raw_ioctl(fd, cmd, &r));
}

static void wp_row(const char *what, int fd, uint64_t start, uint64_t len, uint64_t mode) {
    struct uffdio_writeprotect w = { { start, len }, mode };
    row(what, raw_ioctl(fd, UFFDIO_WRITEPROTECT, &w));
}

static void api_row(const char *what, int fd, uint64_t api, uint64_t features) {
    struct uffdio_api a = { api, features, F };
    int e = raw_ioctl(fd, UFFDIO_API, &a);
    if (e)
        printf("%s: %s api %#llx features %#llx ioctls %#llx\n", what, uffd_err(-e), (unsigned long long)a.api,
               (unsigned long long)a.features, (unsigned long long)a.ioctls);
    else
        printf("%s: 0 api %#llx required features %s ioctls %#llx\n", what, (unsigned long long)a.api,
               (a.features & REQUIRED_FEATURES) == REQUIRED_FEATURES ? "yes" : "no", (unsigned long long)a.ioctls);
}

/* The first byte of a page, or '-' if it is not present: a read of a missing
 * page in a MISSING range would wait forever for a monitor this program
 * does not have, so a fill that did not happen must not hang the table. */
static char peek(const char *p) {
    return uffd_pagemap(p) & PM_PRESENT ? *(volatile const char *)p : '-';
}

static sigjmp_buf jb;
static volatile int sig_got, sig_code;
static void on_sig(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    sig_got = sig;
    sig_code = si->si_code;
    siglongjmp(jb, 1);
}

static void access_row(const char *what, char *p) {
    sig_got = 0;
    if (sigsetjmp(jb, 1) == 0) {
        (void)*(volatile char *)p;
        printf("%s: no signal\n", what);
    } else {
        printf("%s: signal %d code %d\n", what, sig_got, sig_code);
    }
}

static void creation_and_api(void) {
    printf("== userfaultfd(2)\n");
    row("flags 2", uffd_new(2));
    row("flags O_RDWR", uffd_new(O_RDWR));
    row("flags O_APPEND", uffd_new(O_APPEND));
    int all = uffd_new(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    row("flags CLOEXEC|NONBLOCK|USER_MODE_ONLY", all < 0 ? all : 0);
    if (all >= 0) {
        int fl = fcntl(all, F_GETFL), fdfl = fcntl(all, F_GETFD);
        printf("  F_GETFL accmode %d nonblock %d, FD_CLOEXEC %d\n", fl & O_ACCMODE, !!(fl & O_NONBLOCK), fdfl & FD_CLOEXEC);
        close(all);
    }
    int fd = uffd_new(O_CLOEXEC);
    printf("flags O_CLOEXEC: %s\n", fd >= 0 ? "ok" : uffd_err(-fd));
    int fl = fcntl(fd, F_GETFL);
    printf("  F_GETFL nonblock %d\n", !!(fl & O_NONBLOCK));

    printf("== before UFFDIO_API\n");
    char *m = uffd_map(1);
    reg_row("REGISTER", fd, (uintptr_t)m, UPAGE, UFFDIO_REGISTER_MODE_WP);
    range_row("WAKE", fd, UFFDIO_WAKE, (uintptr_t)m, UPAGE);
    char buf[64];
    ssize_t n = read(fd, buf, 32);
    printf("read: %s\n", n < 0 ? uffd_err(errno) : "data");
    struct pollfd p = { fd, POLLIN, 0 };
    int pn = poll(&p, 1, 0);
    printf("poll: %d revents %#x\n", pn, p.revents);
    n = write(fd, buf, 8);
    printf("write: %s\n", n < 0 ? uffd_err(errno) : "ok");

    printf("== UFFDIO_API\n");
    api_row("api 0xab", fd, 0xab, 0);
    api_row("feature bit 17", fd, UFFD_API, 1ull << 17);
    api_row("feature bit 63", fd, UFFD_API, 1ull << 63);
    row("NULL argument", raw_ioctl(fd, UFFDIO_API, NULL));
    row("API nr with REGISTER size", raw_ioctl(fd, _IOWR(UFFDIO, _UFFDIO_API, struct uffdio_register), buf));
    api_row("valid after failures", fd, UFFD_API, 0);
    api_row("second handshake", fd, UFFD_API, 0);
    close(fd);
    for (int b = 0; b < 17; b++) {
        if (!((1ull << b) & REQUIRED_FEATURES)) continue;
        fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
        char what[64];
        snprintf(what, sizeof what, "feature bit %d alone", b);
        api_row(what, fd, UFFD_API, 1ull << b);
        close(fd);
    }
    fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
    api_row("all required features", fd, UFFD_API, REQUIRED_FEATURES);
    p.fd = fd;
    pn = poll(&p, 1, 0);
    printf("poll, non-blocking, empty: %d revents %#x\n", pn, p.revents);
    n = read(fd, buf, 31);
    printf("read 31 bytes: %s\n", n < 0 ? uffd_err(errno) : "data");
    n = read(fd, buf, 64);
    printf("read 64 bytes, empty: %s\n", n < 0 ? uffd_err(errno) : "data");
    row("unknown ioctl nr 0x3e", raw_ioctl(fd, _IOWR(UFFDIO, 0x3e, struct uffdio_api), buf));
    row("unknown ioctl nr 0x09", raw_ioctl(fd, _IOWR(UFFDIO, 0x09, struct uffdio_range), buf));
    row("ioctl type 0xab", raw_ioctl(fd, _IOWR(0xab, _UFFDIO_REGISTER, struct uffdio_register), buf));
    row("REGISTER nr with API size", raw_ioctl(fd, _IOWR(UFFDIO, _UFFDIO_REGISTER, struct uffdio_api), buf));
    close(fd);
    int blk = uffd_new(O_CLOEXEC);
    uffd_api(blk, 0);
    p.fd = blk;
    pn = poll(&p, 1, 0);
    printf("poll, blocking fd after API: %d revents %#x\n", pn, p.revents);
    close(blk);
    munmap(m, UPAGE);

    /* epoll agrees with poll: EPOLLERR before the handshake and on a blocking
     * fd, nothing on an idle non-blocking one. */
    printf("== epoll\n");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int e_pre = uffd_new(O_CLOEXEC | O_NONBLOCK);
    int e_blk = uffd_new(O_CLOEXEC);
    int e_nb = uffd_new(O_CLOEXEC | O_NONBLOCK);
    uffd_api(e_blk, 0);
    uffd_api(e_nb, 0);
    int fds[3] = { e_pre, e_blk, e_nb };
    const char *names[3] = { "non-blocking before API", "blocking after API", "non-blocking idle" };
    for (int i = 0; i < 3; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data = { .u32 = (uint32_t)i } };
        int rc = epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
        struct epoll_event out[4];
        int k = epoll_wait(ep, out, 4, 0);
        printf("%s: ctl %d, epoll_wait %d events %#x\n", names[i], rc, k, k > 0 ? out[0].events : 0);
        epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
        close(fds[i]);
    }
    close(ep);

    printf("== /dev/userfaultfd\n");
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0) {
        printf("open: %s\n", uffd_err(errno));
        return;
    }
    int nfd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    printf("IOC_NEW(CLOEXEC|NONBLOCK): %s\n", nfd >= 0 ? "fd" : uffd_err(errno));
    if (nfd >= 0) {
        api_row("  API on it", nfd, UFFD_API, 0);
        close(nfd);
    }
    row("IOC_NEW(2)", ioctl(dev, USERFAULTFD_IOC_NEW, 2) < 0 ? -errno : 0);
    row("IOC_NEW(O_RDWR)", ioctl(dev, USERFAULTFD_IOC_NEW, O_RDWR) < 0 ? -errno : 0);
    row("other ioctl 0xaa01", ioctl(dev, _IO(0xaa, 0x01), 0) < 0 ? -errno : 0);
    close(dev);
}

/* argv[1] "fdlink": only the /proc/self/fd link of a uffd. */
static int fd_link(void) {
    int fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
    char path[64], link[64] = { 0 };
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    printf("link %s\n", n > 0 ? link : "unreadable");
    return 0;
}

/* The VMAs of /proc/self/smaps that lie inside [base, base+pages), as page
 * ranges relative to base with their uffd VmFlags ("um", "uw"). */
static void print_vmas(const char *what, char *base, int pages) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) {
        printf("%s: smaps unreadable\n", what);
        return;
    }
    printf("%s:", what);
    char line[512];
    long cur_lo = -1, cur_hi = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            if (lo >= (uintptr_t)base && hi <= (uintptr_t)base + pages * UPAGE) {
                cur_lo = uffd_pidx(base, lo);
                cur_hi = uffd_pidx(base, hi);
            } else {
                cur_lo = -1;
            }
        } else if (cur_lo >= 0 && strncmp(line, "VmFlags:", 8) == 0) {
            printf(" [%ld-%ld%s%s]", cur_lo, cur_hi - 1, strstr(line, " um") ? " um" : "", strstr(line, " uw") ? " uw" : "");
            cur_lo = -1;
        }
    }
    printf("\n");
    fclose(f);
}

/* argv[1] "vmas": registration splits and merges VMAs. */
static int vmas(void) {
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    /* PROT_NONE guard pages on both sides keep the area from merging with a
     * neighbouring mapping. */
    char *g = mmap(NULL, 10 * UPAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *a = g + UPAGE;
    if (g == MAP_FAILED || mprotect(a, 8 * UPAGE, PROT_READ | PROT_WRITE)) return 2;
    memset(a, 1, 8 * UPAGE);
    print_vmas("mapped", a, 8);
    row("register WP pages 2-5", uffd_register(fd, a + 2 * UPAGE, 4 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL));
    print_vmas("  vmas", a, 8);
    row("register MISSING pages 4-5", uffd_register(fd, a + 4 * UPAGE, 2 * UPAGE, UFFDIO_REGISTER_MODE_MISSING, NULL));
    print_vmas("  vmas", a, 8);
    row("register MISSING|WP pages 3-4", uffd_register(fd, a + 3 * UPAGE, 2 * UPAGE,
                                                       UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, NULL));
    print_vmas("  vmas", a, 8);
    row("register WP pages 0-7", uffd_register(fd, a, 8 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL));
    print_vmas("  vmas", a, 8);
    row("unregister pages 0-1", uffd_unregister(fd, a, 2 * UPAGE));
    print_vmas("  vmas", a, 8);
    row("unregister pages 1-7", uffd_unregister(fd, a + UPAGE, 7 * UPAGE));
    print_vmas("  vmas", a, 8);
    row("register WP pages 6-7", uffd_register(fd, a + 6 * UPAGE, 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL));
    print_vmas("  vmas", a, 8);
    printf("close: %d\n", close(fd));
    print_vmas("  vmas after close", a, 8);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "fdlink") == 0) return fd_link();
    if (argc > 1 && strcmp(argv[1], "vmas") == 0) return vmas();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sig;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);

    creation_and_api();

    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    int fd2 = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    /* A 16-page area: 0-3 MISSING|WP, 4-5 WP, 6 hole, 7-8 WP, 9 unregistered,
     * 10-11 MISSING only, 12-13 registered to fd2, 14-15 unregistered. */
    char *a = mmap(NULL, 16 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t A = (uintptr_t)a;
#define P(i) (A + (uint64_t)(i) * UPAGE)
    munmap(a + 6 * UPAGE, UPAGE);
    for (int i = 4; i < 16; i++)
        if (i != 6) a[i * UPAGE] = (char)i;
    char *src = uffd_map(3);
    memset(src, 's', 3 * UPAGE);
    munmap(src + 2 * UPAGE, UPAGE); /* src page 2 unmapped */
    uint64_t S = (uintptr_t)src;

    printf("== UFFDIO_REGISTER\n");
    reg_row("mode 0", fd, P(0), UPAGE, 0);
    reg_row("mode 8", fd, P(0), UPAGE, 8);
    reg_row("mode MINOR (anon)", fd, P(0), UPAGE, UFFDIO_REGISTER_MODE_MINOR);
    reg_row("mode MINOR|WP (anon)", fd, P(0), UPAGE, UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP);
    reg_row("unaligned start", fd, P(0) + 8, UPAGE, 2);
    reg_row("unaligned len", fd, P(0), UPAGE + 8, 2);
    reg_row("len 0", fd, P(0), 0, 2);
    reg_row("start 0", fd, 0, UPAGE, 2);
    reg_row("start below mmap_min_addr", fd, UPAGE, UPAGE, 2);
    reg_row("start at TASK_SIZE", fd, TASK_SIZE, UPAGE, 2);
    reg_row("len past TASK_SIZE", fd, P(0), TASK_SIZE, 2);
    reg_row("range entirely unmapped", fd, P(6), UPAGE, 2);
    row("NULL argument", raw_ioctl(fd, UFFDIO_REGISTER, NULL));
    reg_row("MISSING pages 0-3", fd, P(0), 4 * UPAGE, UFFDIO_REGISTER_MODE_MISSING);
    reg_row("MISSING|WP pages 0-3 (superset)", fd, P(0), 4 * UPAGE, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
    reg_row("WP pages 4-8 (hole at 6)", fd, P(4), 5 * UPAGE, UFFDIO_REGISTER_MODE_WP);
    reg_row("MISSING pages 10-11", fd, P(10), 2 * UPAGE, UFFDIO_REGISTER_MODE_MISSING);
    reg_row("fd2: WP pages 12-13", fd2, P(12), 2 * UPAGE, UFFDIO_REGISTER_MODE_WP);
    reg_row("fd2: pages 11-12 (11 is fd's)", fd2, P(11), 2 * UPAGE, UFFDIO_REGISTER_MODE_WP);
    reg_row("pages 13-14 (13 is fd2's)", fd, P(13), 2 * UPAGE, UFFDIO_REGISTER_MODE_WP);
    reg_row("hole at start: pages 6-7", fd, P(6), 2 * UPAGE, UFFDIO_REGISTER_MODE_WP);
    reg_row("WP page 14", fd, P(14), UPAGE, UFFDIO_REGISTER_MODE_WP);
    reg_row("MISSING over WP page 14 (replaces)", fd, P(14), UPAGE, UFFDIO_REGISTER_MODE_MISSING);
    wp_row("  WRITEPROTECT page 14 after the replace", fd, P(14), UPAGE, UFFDIO_WRITEPROTECT_MODE_WP);
    range_row("  UNREGISTER page 14", fd, UFFDIO_UNREGISTER, P(14), UPAGE);

    printf("== UFFDIO_UNREGISTER\n");
    range_row("len 0", fd, UFFDIO_UNREGISTER, P(0), 0);
    range_row("unaligned start", fd, UFFDIO_UNREGISTER, P(0) + 1, UPAGE);
    range_row("unaligned len", fd, UFFDIO_UNREGISTER, P(0), 100);
    range_row("start at TASK_SIZE", fd, UFFDIO_UNREGISTER, TASK_SIZE, UPAGE);
    range_row("unmapped range", fd, UFFDIO_UNREGISTER, P(6), UPAGE);
    range_row("never registered page 15", fd, UFFDIO_UNREGISTER, P(15), UPAGE);
    range_row("fd2's pages 12-13 via fd", fd, UFFDIO_UNREGISTER, P(12), 2 * UPAGE);
    range_row("start 0 len 0", fd, UFFDIO_UNREGISTER, 0, 0);
    row("NULL pointer", raw_ioctl(fd, UFFDIO_UNREGISTER, NULL));

    printf("== UFFDIO_WAKE\n");
    range_row("len 0", fd, UFFDIO_WAKE, P(0), 0);
    range_row("unaligned start", fd, UFFDIO_WAKE, P(0) + 1, UPAGE);
    range_row("unaligned len", fd, UFFDIO_WAKE, P(0), 1);
    range_row("past TASK_SIZE", fd, UFFDIO_WAKE, TASK_SIZE - UPAGE, 2 * UPAGE);
    range_row("unmapped range", fd, UFFDIO_WAKE, P(6), UPAGE);
    range_row("registered range", fd, UFFDIO_WAKE, P(0), 4 * UPAGE);

    printf("== UFFDIO_COPY\n");
    copy_row("len 0", fd, P(0), S, 0, 0);
    copy_row("unaligned dst", fd, P(0) + 8, S, UPAGE, 0);
    copy_row("unaligned len", fd, P(0), S, 100, 0);
    copy_row("mode 4", fd, P(0), S, UPAGE, 4);
    copy_row("mode DONTWAKE|WP|4", fd, P(0), S, UPAGE, 7);
    copy_row("src 0", fd, P(0), 0, UPAGE, 0);
    copy_row("src past TASK_SIZE", fd, P(0), TASK_SIZE - UPAGE, 2 * UPAGE, 0);
    copy_row("dst at TASK_SIZE", fd, TASK_SIZE, S, UPAGE, 0);
    copy_row("dst unmapped", fd, P(6), S, UPAGE, 0);
    copy_row("dst unregistered page 15", fd, P(15), S, UPAGE, 0);
    copy_row("dst page 14 (registered then unregistered)", fd, P(14), S, UPAGE, 0);
    copy_row("dst page 5 populated", fd, P(5), S, UPAGE, 0);
    copy_row("MODE_WP into MISSING-only page 10", fd, P(10), S, UPAGE, UFFDIO_COPY_MODE_WP);
    copy_row("src unmapped", fd, P(0), S + 2 * UPAGE, UPAGE, 0);
    copy_row("pages 0-1, src page 1 unmapped: partial", fd, P(0), S + UPAGE, 2 * UPAGE, 0);
    copy_row("page 1, unaligned src", fd, P(1), S + 1, UPAGE, 0);
    copy_row("pages 1-2 (1 populated)", fd, P(1), S, 2 * UPAGE, 0);
    copy_row("page 3 DONTWAKE", fd, P(3), S, UPAGE, UFFDIO_COPY_MODE_DONTWAKE);
    copy_row("fd2 into fd's pages 2-3 (foreign uffd; 3 populated): partial", fd2, P(2), S, 2 * UPAGE, 0);
    copy_row("pages 3-4 (cross a VMA boundary)", fd, P(3), S, 2 * UPAGE, 0);
    copy_row("MODE_WP page 11 (populated, MISSING-only)", fd, P(11), S, UPAGE, UFFDIO_COPY_MODE_WP);
    row("NULL argument", raw_ioctl(fd, UFFDIO_COPY, NULL));
    printf("  pages 0-3: %c %c %c %c\n", peek(a), peek(a + UPAGE + 1), peek(a + 2 * UPAGE), peek(a + 3 * UPAGE));

    printf("== UFFDIO_ZEROPAGE\n");
    zp_row("len 0", fd, P(10), 0, 0);
    zp_row("unaligned dst", fd, P(10) + 1, UPAGE, 0);
    zp_row("mode 2", fd, P(10), UPAGE, 2);
    zp_row("mode 4", fd, P(10), UPAGE, 4);
    zp_row("dst unmapped", fd, P(6), UPAGE, 0);
    zp_row("dst unregistered", fd, P(15), UPAGE, 0);
    zp_row("dst populated page 4", fd, P(4), UPAGE, 0);
    zp_row("dst page 10 (populated before registration)", fd, P(10), UPAGE, 0);
    printf("  DONTNEED pages 10-11: %d\n", madvise(a + 10 * UPAGE, 2 * UPAGE, MADV_DONTNEED));
    zp_row("pages 10-11 empty", fd, P(10), 2 * UPAGE, 0);
    printf("  DONTNEED page 10: %d\n", madvise(a + 10 * UPAGE, UPAGE, MADV_DONTNEED));
    zp_row("pages 10-11 (11 populated): partial", fd, P(10), 2 * UPAGE, 0);
    zp_row("fd2 into fd's page 0 (populated)", fd2, P(0), UPAGE, 0);
    row("NULL argument", raw_ioctl(fd, UFFDIO_ZEROPAGE, NULL));

    printf("== UFFDIO_WRITEPROTECT\n");
    wp_row("mode WP|DONTWAKE", fd, P(4), UPAGE, 3);
    wp_row("mode 4", fd, P(4), UPAGE, 4);
    wp_row("unaligned start", fd, P(4) + 1, UPAGE, 1);
    wp_row("len 0", fd, P(4), 0, 1);
    wp_row("past TASK_SIZE", fd, TASK_SIZE - UPAGE, 2 * UPAGE, 1);
    wp_row("unregistered page 15", fd, P(15), UPAGE, 1);
    wp_row("hole only (page 6)", fd, P(6), UPAGE, 1);
    wp_row("MISSING-only page 10", fd, P(10), UPAGE, 1);
    wp_row("pages 4-8 ([WP][hole][WP])", fd, P(4), 5 * UPAGE, 1);
    printf("  wp: page 4 %d, page 8 %d\n", uffd_pm_wp(a + 4 * UPAGE), uffd_pm_wp(a + 8 * UPAGE));
    wp_row("unprotect pages 4-8", fd, P(4), 5 * UPAGE, 0);
    printf("  wp: page 4 %d, page 8 %d\n", uffd_pm_wp(a + 4 * UPAGE), uffd_pm_wp(a + 8 * UPAGE));
    wp_row("pages 8-12 ([WP][unregistered][MISSING][fd2 WP])", fd, P(8), 5 * UPAGE, 1);
    printf("  wp: page 8 %d, page 12 %d\n", uffd_pm_wp(a + 8 * UPAGE), uffd_pm_wp(a + 12 * UPAGE));
    wp_row("pages 7-9 (past the VMA into an unregistered one)", fd, P(7), 3 * UPAGE, 0);
    printf("  wp: page 7 %d, page 8 %d\n", uffd_pm_wp(a + 7 * UPAGE), uffd_pm_wp(a + 8 * UPAGE));
    wp_row("fd protects fd2's pages 12-13 (foreign uffd)", fd, P(12), 2 * UPAGE, 1);
    printf("  wp: page 12 %d\n", uffd_pm_wp(a + 12 * UPAGE));
    wp_row("fd unprotects fd2's pages 12-13", fd, P(12), 2 * UPAGE, 0);
    printf("  wp: page 12 %d\n", uffd_pm_wp(a + 12 * UPAGE));
    wp_row("pages 0-3 (MISSING|WP)", fd, P(0), 4 * UPAGE, 1);
    printf("  wp: page 0 %d page 1 %d\n", uffd_pm_wp(a), uffd_pm_wp(a + UPAGE));
    row("NULL argument", raw_ioctl(fd, UFFDIO_WRITEPROTECT, NULL));

    printf("== UFFDIO_CONTINUE (anon)\n");
    {
        struct uffdio_continue c = { { P(2), UPAGE }, 0, F };
        int e = raw_ioctl(fd, UFFDIO_CONTINUE, &c);
        rowf("anon page 2", e, "mapped", c.mapped);
        struct uffdio_continue c2 = { { P(2), UPAGE }, 4, F };
        e = raw_ioctl(fd, UFFDIO_CONTINUE, &c2);
        rowf("mode 4", e, "mapped", c2.mapped);
        struct uffdio_continue c3 = { { P(2), 0 }, 0, F };
        e = raw_ioctl(fd, UFFDIO_CONTINUE, &c3);
        rowf("len 0", e, "mapped", c3.mapped);
    }

    printf("== UFFDIO_POISON (anon)\n");
    {
        /* Page 3 again empty. */
        madvise(a + 3 * UPAGE, UPAGE, MADV_DONTNEED);
        struct pl_uffdio_poison po = { { P(3), UPAGE }, 2, F };
        int e = raw_ioctl(fd, PL_UFFDIO_POISON, &po);
        rowf("mode 2", e, "updated", po.updated);
        struct pl_uffdio_poison p1 = { { P(4), UPAGE }, 0, F };
        e = raw_ioctl(fd, PL_UFFDIO_POISON, &p1);
        rowf("populated page 4", e, "updated", p1.updated);
        struct pl_uffdio_poison p2 = { { P(15), UPAGE }, 0, F };
        e = raw_ioctl(fd, PL_UFFDIO_POISON, &p2);
        rowf("unregistered page 15", e, "updated", p2.updated);
        struct pl_uffdio_poison p3 = { { P(3), UPAGE }, 0, F };
        e = raw_ioctl(fd, PL_UFFDIO_POISON, &p3);
        rowf("empty page 3", e, "updated", p3.updated);
        char b[64];
        printf("  page 3 pagemap %s\n", uffd_pm_str(uffd_pagemap(a + 3 * UPAGE), b, sizeof b));
        if (e == 0) access_row("  read page 3", a + 3 * UPAGE);
        copy_row("COPY over the poisoned page 3", fd, P(3), S, UPAGE, 0);
        printf("  DONTNEED page 3: %d\n", madvise(a + 3 * UPAGE, UPAGE, MADV_DONTNEED));
        printf("  page 3 pagemap %s\n", uffd_pm_str(uffd_pagemap(a + 3 * UPAGE), b, sizeof b));
    }

    printf("== UFFDIO_MOVE (anon)\n");
    {
        char *ms = uffd_map(4);
        memset(ms, 'm', 2 * UPAGE);
        uint64_t M = (uintptr_t)ms;
        madvise(a + 3 * UPAGE, UPAGE, MADV_DONTNEED);
        struct pl_uffdio_move mv;
#define MOVE(what, f, d, s_, l, md)                       \
    do {                                                  \
        mv = (struct pl_uffdio_move){ d, s_, l, md, F };  \
        int e_ = raw_ioctl(f, PL_UFFDIO_MOVE, &mv);       \
        rowf(what, e_, "move", mv.move);                  \
    } while (0)
        MOVE("mode 4", fd, P(3), M, UPAGE, 4);
        MOVE("unaligned src", fd, P(3), M + 1, UPAGE, 0);
        MOVE("len 0", fd, P(3), M, 0, 0);
        MOVE("dst unregistered page 15", fd, P(15), M, UPAGE, 0);
        MOVE("foreign uffd fd2 into fd's page 3", fd2, P(3), M, UPAGE, 0);
        MOVE("dst populated page 4", fd, P(4), M, UPAGE, 0);
        MOVE("src hole", fd, P(3), M + 3 * UPAGE, UPAGE, 0);
        MOVE("src hole, ALLOW_SRC_HOLES", fd, P(3), M + 3 * UPAGE, UPAGE, PL_UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
        MOVE("src page 0 into page 3", fd, P(3), M, UPAGE, 0);
        printf("  page 3 %c, src page 0 pagemap %s\n", peek(a + 3 * UPAGE), uffd_pm_wp(ms) ? "wp" : "-");
        char b[64];
        printf("  src page 0: %s\n", uffd_pm_str(uffd_pagemap(ms), b, sizeof b));
    }
    printf("== close\n");
    printf("close fd: %d, fd2: %d\n", close(fd), close(fd2));
    return 0;
}
