// pagelab: cflags=-pthread
// The rest of the userfaultfd ABI's errno cases (issue 11), found natively
// where the reference is silent, next to the tables of uffd_errno.c,
// shm_errno.c, htlb_uffd.c and pm_scan.c (none of their rows is repeated):
// * UFFDIO_API: every feature bit alone (17-63 summarised), the struct in a
//   read-only page or straddling an unmapped one, EPERM without
//   CAP_SYS_PTRACE (a child drops it with capset), /dev/userfaultfd;
// * ioctl numbers: every uffd ioctl with each direction and wrong sizes,
//   the unused numbers, generic ioctls (FIONBIO, FIOCLEX, FIONREAD, ...),
//   uffd ioctls on fds that are not uffds;
// * a range table: every range ioctl (REGISTER, UNREGISTER, WAKE,
//   WRITEPROTECT, COPY dst and src, ZEROPAGE, CONTINUE, POISON, MOVE dst and
//   src) against the same boundary ranges (len 0/1/4095/4097, unaligned
//   start, start+len wrapping, TASK_SIZE 0x7ffffffff000 and the last page
//   below it, mmap_min_addr, non-canonical, the whole user address space,
//   holes and PROT_NONE neighbours), each on a fresh uffd and fixture;
// * unknown mode bits of every ioctl (runs of bits with the same result);
// * the output field (ioctls/copy/zeropage/mapped/updated/move) in an
//   unreadable page: EFAULT after the work was done, or before;
// * a dead mm (the EVENT_FORK child's uffd after it exited): the ioctls
//   uffd_fork.c does not cover;
// * UFFDIO_POISON on private anon, memfd MAP_SHARED, memfd MAP_PRIVATE and
//   MAP_SHARED|MAP_ANONYMOUS: result, updated, the SIGBUS (si_code,
//   si_addr exact or page, si_addr_lsb), pagemap, PAGEMAP_SCAN categories,
//   kernel accesses (read/write/process_vm_readv/writev, /proc/self/mem,
//   MADV_POPULATE_*, mlock), mprotect, fork, mremap, DONTNEED, REMOVE,
//   PUNCH_HOLE, munmap+mmap, partial POISON, POISON on other registrations;
// * UFFDIO_MOVE's VMA matrix (protections, mlock, shared, overlap, zero
//   page, markers);
// * MAP_DROPPABLE (never uffd-capable);
// * PAGEMAP_SCAN argument boundaries pm_scan.c does not probe.
// Addresses never reach the transcript: pages are indexes relative to a base
// inside a PROT_NONE reservation, si_addr is printed as booleans, pagemap
// entries with the PFN masked out (non-present entries raw: a marker's bits).
#define _GNU_SOURCE
#include "thp.h"
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/capability.h>

#define F 1234
#define P4 UPAGE
#define TASK 0x7ffffffff000ull
#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#ifndef EHWPOISON
#define EHWPOISON 133
#endif
#define UFFD_FEATURE_SIGBUS_ (1 << 7)

typedef uint64_t u64;
/* The integer in a /proc file, or -errno. */
static long readl(const char *path) {
    char b[64] = "";
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    ssize_t n = read(fd, b, sizeof b - 1);
    close(fd);
    if (n <= 0) return -EIO;
    return strtol(b, NULL, 10);
}
typedef int64_t i64;

static const char *en(int e) {
    static char b[8][24];
    static int k;
    switch (e) {
    case EHWPOISON: return "EHWPOISON";
    case ENOTTY: return "ENOTTY";
    case EOVERFLOW: return "EOVERFLOW";
    case E2BIG: return "E2BIG";
    default: break;
    }
    const char *s = shm_err(e);
    if (strcmp(s, "E?")) return s;
    k = (k + 1) % 8;
    snprintf(b[k], sizeof b[k], "errno %d", e);
    return b[k];
}

/* ---- raw ioctls on u64 arguments: 0 or -errno ---------------------------- */
static int x(int fd, unsigned long cmd, void *a) {
    return ioctl(fd, cmd, a) < 0 ? -errno : 0;
}
static int r_register(int fd, u64 s, u64 l, u64 mode, u64 *io) {
    struct uffdio_register r = { { s, l }, mode, F };
    int e = x(fd, UFFDIO_REGISTER, &r);
    if (io) *io = r.ioctls;
    return e;
}
static int r_range(int fd, unsigned long cmd, u64 s, u64 l) {
    struct uffdio_range r = { s, l };
    return x(fd, cmd, &r);
}
static int r_wp(int fd, u64 s, u64 l, u64 mode) {
    struct uffdio_writeprotect w = { { s, l }, mode };
    return x(fd, UFFDIO_WRITEPROTECT, &w);
}
static int r_copy(int fd, u64 d, u64 s, u64 l, u64 mode, i64 *f) {
    struct uffdio_copy c = { d, s, l, mode, F };
    int e = x(fd, UFFDIO_COPY, &c);
    *f = c.copy;
    return e;
}
static int r_zero(int fd, u64 s, u64 l, u64 mode, i64 *f) {
    struct uffdio_zeropage z = { { s, l }, mode, F };
    int e = x(fd, UFFDIO_ZEROPAGE, &z);
    *f = z.zeropage;
    return e;
}
static int r_cont(int fd, u64 s, u64 l, u64 mode, i64 *f) {
    struct uffdio_continue c = { { s, l }, mode, F };
    int e = x(fd, UFFDIO_CONTINUE, &c);
    *f = c.mapped;
    return e;
}
static int r_poison(int fd, u64 s, u64 l, u64 mode, i64 *f) {
    struct pl_uffdio_poison c = { { s, l }, mode, F };
    int e = x(fd, PL_UFFDIO_POISON, &c);
    *f = c.updated;
    return e;
}
static int r_move(int fd, u64 d, u64 s, u64 l, u64 mode, i64 *f) {
    struct pl_uffdio_move m = { d, s, l, mode, F };
    int e = x(fd, PL_UFFDIO_MOVE, &m);
    *f = m.move;
    return e;
}
static u64 A(const void *p) {
    return (u64)(uintptr_t)p;
}

static void prow(const char *what, int e) {
    printf("%s: %s\n", what, en(-e));
}
static void frow(const char *what, int e, const char *field, i64 v) {
    printf("%s: %s %s %lld\n", what, en(-e), field, (long long)v);
}
static int fresh(u64 features) {
    return uffd_open(O_CLOEXEC | O_NONBLOCK, features);
}

/* The pagemap entry of p: flags (bits 55-63) and "pfn set/0" if present,
 * raw if not present (a marker's or swap entry's bits are not a frame). */
static const char *pmx(const void *p) {
    static char b[4][64];
    static int k;
    k = (k + 1) % 4;
    u64 e = uffd_pagemap(p);
    if (e == ~0ull) snprintf(b[k], 64, "unreadable");
    else if (e & PM_PRESENT) snprintf(b[k], 64, "0x%016llx pfn %s", (unsigned long long)(e & ~((1ull << 55) - 1)), PM_PFN(e) ? "set" : "0");
    else snprintf(b[k], 64, "0x%016llx", (unsigned long long)e);
    return b[k];
}

/* ---- a fixture: pages relative to a base in a PROT_NONE reservation ----- */
#define NRES 64
static char *B; /* the reservation, 2 MiB aligned */

static void res_reset(void) {
    if (mmap(B, NRES * P4, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED) {
        printf("reset failed\n");
        pl_flush();
        exit(3);
    }
}
/* Maps pages [lo, lo+n) of B with prot/flags/fd (MAP_FIXED added). */
static char *res_map(size_t lo, size_t n, int prot, int flags, int fd, off_t off) {
    void *p = mmap(B + lo * P4, n * P4, prot, flags | MAP_FIXED, fd, off);
    if (p == MAP_FAILED) {
        printf("res_map %zu+%zu: %s\n", lo, n, en(errno));
        pl_flush();
        exit(3);
    }
    return p;
}
static char *pg(size_t i) {
    return B + i * P4;
}

/* ---- signals ---------------------------------------------------------------- */
static sigjmp_buf ab_jb;
static volatile int ab_sig, ab_code, ab_lsb;
static volatile uintptr_t ab_addr;

static void ab_on_sig(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    ab_sig = sig;
    ab_code = si->si_code;
    ab_addr = (uintptr_t)si->si_addr;
    ab_lsb = si->si_addr_lsb;
    siglongjmp(ab_jb, 1);
}
static void ab_catch(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = ab_on_sig;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
}
/* Accesses the byte p (read, or write of v) and prints "what: ok <c>" or
 * "what: SIGBUS code C addr exact E page P lsb L". */
static void probe(const char *what, char *p, int write, char v) {
    ab_sig = 0;
    if (sigsetjmp(ab_jb, 1) == 0) {
        char got;
        if (write) {
            *(volatile char *)p = v;
            got = v;
        } else got = *(volatile char *)p;
        printf("%s: ok %c\n", what, got ? got : '0');
    } else {
        uintptr_t pa = (uintptr_t)p;
        printf("%s: %s code %d addr exact %d pagestart %d lsb %d\n", what, shm_signame(ab_sig), ab_code, ab_addr == pa,
               ab_addr == (pa & ~(P4 - 1)), ab_lsb);
    }
}

/* ---- PAGEMAP_SCAN ---------------------------------------------------------- */
struct ab_pm {
    u64 size, flags, start, end, walk_end, vec, vec_len, max_pages, inv, mask, anyof, ret;
};
struct ab_region {
    u64 start, end, cat;
};
#define AB_PAGEMAP_SCAN _IOWR('f', 16, struct ab_pm)
static int pm_fd = -1;

/* Prints "what: N walk_end W a-b:0xC ..." (pages relative to base). */
static void scan(const char *what, int fd, struct ab_pm *a, const char *base) {
    struct ab_region v[16];
    for (int i = 0; i < 16; i++) v[i] = (struct ab_region){ 7, 7, 7 };
    if (!a->vec && a->vec_len == 0xfeed) a->vec_len = 0;
    else if (!a->vec) {
        a->vec = A(v);
        if (!a->vec_len) a->vec_len = 16;
    }
    a->walk_end = 0x5a5a;
    long r = ioctl(fd, AB_PAGEMAP_SCAN, a);
    int e = errno;
    printf("%s: ", what);
    if (r < 0) printf("%s", en(e));
    else printf("%ld", r);
    if (a->walk_end == 0x5a5a) printf(" walk_end unwritten");
    else if (a->walk_end >= A(base) && a->walk_end <= A(base) + 2 * NRES * P4) printf(" walk_end %ld", (long)((a->walk_end - A(base)) / P4));
    else printf(" walk_end abs %#llx", (unsigned long long)a->walk_end);
    if (a->vec == A(v))
        for (int i = 0; i < 16 && i < (r < 0 ? 0 : r); i++)
            printf(" %ld-%ld:%#llx", (long)((v[i].start - A(base)) / P4), (long)((v[i].end - A(base)) / P4), (unsigned long long)v[i].cat);
    printf("\n");
}
static struct ab_pm pmarg(const void *lo, const void *hi) {
    struct ab_pm a = { 96, 0, A(lo), A(hi), 0, 0, 0, 0, 0, 0, 0, 0x1ff };
    return a;
}

/* ======================================================================== */

static void api(void) {
    printf("== UFFDIO_API\n");
    int fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
    struct uffdio_api a;
    int e = uffd_api_raw(fd, UFFD_API, 0, &a);
    printf("features 0: %s features %#llx ioctls %#llx\n", en(-e), (unsigned long long)a.features, (unsigned long long)a.ioctls);
    close(fd);
    static const int bits[] = { 4, 5, 9, 10, 12, 13, 14, 15, 16 };
    for (size_t i = 0; i < sizeof bits / sizeof *bits; i++) {
        fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
        e = uffd_api_raw(fd, UFFD_API, 1ull << bits[i], &a);
        printf("feature bit %d alone: %s features %#llx\n", bits[i], en(-e), (unsigned long long)a.features);
        close(fd);
    }
    fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
    e = uffd_api_raw(fd, UFFD_API, 0x1ffff, &a);
    printf("features 0x1ffff: %s features %#llx\n", en(-e), (unsigned long long)a.features);
    close(fd);
    int nbad = 0, nzero = 0;
    for (int b = 17; b < 64; b++) {
        fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
        e = uffd_api_raw(fd, UFFD_API, 1ull << b, &a);
        nbad += e == -EINVAL;
        nzero += !a.api && !a.features && !a.ioctls;
        close(fd);
    }
    printf("feature bits 17-63 alone: EINVAL %d of 47, struct zeroed %d\n", nbad, nzero);
    fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
    e = uffd_api_raw(fd, UFFD_API, 0x1ffff | (1ull << 31), &a);
    printf("features 0x1ffff|1<<31 (the internal init bit): %s\n", en(-e));
    e = uffd_api_raw(fd, 0, 0, &a);
    printf("  then api 0: %s\n", en(-e));
    e = uffd_api_raw(fd, 0xaa | (1ull << 32), 0, &a);
    printf("  then api 0x1000000aa: %s\n", en(-e));
    struct uffdio_api b2 = { UFFD_API, 0, 0xdead };
    e = x(fd, UFFDIO_API, &b2);
    printf("  then valid with ioctls 0xdead on input: %s ioctls %#llx\n", en(-e), (unsigned long long)b2.ioctls);
    close(fd);

    /* The struct in a read-only page, and straddling into a PROT_NONE one. */
    res_reset();
    char *ro = res_map(0, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct uffdio_api *ap = (struct uffdio_api *)ro;
    *ap = (struct uffdio_api){ UFFD_API, 0, 0 };
    mprotect(ro, P4, PROT_READ);
    fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
    e = x(fd, UFFDIO_API, ap);
    printf("struct read-only: %s api %#llx features %#llx\n", en(-e), (unsigned long long)ap->api, (unsigned long long)ap->features);
    e = uffd_api_raw(fd, UFFD_API, 0, &a);
    printf("  then a valid call: %s\n", en(-e));
    struct uffdio_register rr = { { A(pg(20)), P4 }, 1, 0 };
    e = x(fd, UFFDIO_REGISTER, &rr);
    printf("  then REGISTER of a hole: %s\n", en(-e));
    close(fd);
    *(volatile char *)ro; /* keep it mapped */
    mprotect(ro, P4, PROT_READ | PROT_WRITE);
    ap = (struct uffdio_api *)(ro + P4 - 16); /* ioctls in the PROT_NONE page 1 */
    ap->api = UFFD_API;
    ap->features = 0;
    fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
    e = x(fd, UFFDIO_API, ap);
    printf("struct straddling (ioctls unmapped): %s api %#llx\n", en(-e), (unsigned long long)ap->api);
    e = uffd_api_raw(fd, UFFD_API, 0, &a);
    printf("  then a valid call: %s\n", en(-e));
    close(fd);
    ap = (struct uffdio_api *)(ro + P4 - 8);
    ap->api = UFFD_API;
    fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
    e = x(fd, UFFDIO_API, ap);
    printf("struct straddling (features unmapped): %s api %#llx\n", en(-e), (unsigned long long)ap->api);
    e = uffd_api_raw(fd, UFFD_API, 0, &a);
    printf("  then a valid call: %s\n", en(-e));
    close(fd);
    res_reset();

    /* Without CAP_SYS_PTRACE (vm.unprivileged_userfaultfd 0 natively). */
    printf("vm.unprivileged_userfaultfd: %ld\n", (long)readl("/proc/sys/vm/unprivileged_userfaultfd"));
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct d[2];
        memset(d, 0, sizeof d);
        long r = syscall(SYS_capget, &h, d);
        printf("child: capget %s, CAP_SYS_PTRACE effective %d\n", r < 0 ? en(errno) : "0", !!(d[0].effective & (1u << CAP_SYS_PTRACE)));
        d[0].effective &= ~(1u << CAP_SYS_PTRACE);
        r = syscall(SYS_capset, &h, d);
        printf("child: capset without CAP_SYS_PTRACE %s\n", r < 0 ? en(errno) : "0");
        memset(d, 0, sizeof d);
        syscall(SYS_capget, &h, d);
        printf("child: CAP_SYS_PTRACE effective now %d\n", !!(d[0].effective & (1u << CAP_SYS_PTRACE)));
        int f0 = uffd_new(O_CLOEXEC);
        printf("child: userfaultfd(0): %s\n", f0 < 0 ? en(-f0) : "fd");
        int f1 = uffd_new(O_CLOEXEC | O_NONBLOCK | 1);
        printf("child: userfaultfd(USER_MODE_ONLY): %s\n", f1 < 0 ? en(-f1) : "fd");
        if (f1 >= 0) {
            e = uffd_api_raw(f1, UFFD_API, UFFD_FEATURE_EVENT_FORK, &a);
            printf("child:   API EVENT_FORK: %s api %#llx\n", en(-e), (unsigned long long)a.api);
            e = uffd_api_raw(f1, UFFD_API, UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP, &a);
            printf("child:   API EVENT_FORK|EVENT_REMAP: %s\n", en(-e));
            e = uffd_api_raw(f1, UFFD_API, (1ull << 20) | UFFD_FEATURE_EVENT_FORK, &a);
            printf("child:   API EVENT_FORK|bit 20: %s\n", en(-e));
            e = uffd_api_raw(f1, UFFD_API, UFFD_FEATURE_EVENT_REMAP, &a);
            printf("child:   API EVENT_REMAP: %s\n", en(-e));
            close(f1);
        }
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0) {
            int f2 = ioctl(dev, 0xAA00, O_CLOEXEC);
            printf("child: /dev/userfaultfd IOC_NEW(0): %s\n", f2 < 0 ? en(errno) : "fd");
            close(dev);
        } else printf("child: open /dev/userfaultfd: %s\n", en(errno));
        pl_flush();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    printf("open /dev/userfaultfd: %s\n", dev < 0 ? en(errno) : "fd");
    if (dev >= 0) {
        int f = ioctl(dev, 0xAA00, 0);
        printf("IOC_NEW(0): %s", f < 0 ? en(errno) : "fd");
        if (f >= 0) printf(" FD_CLOEXEC %d", !!(fcntl(f, F_GETFD) & FD_CLOEXEC)), close(f);
        printf("\n");
        f = ioctl(dev, 0xAA00, 1);
        printf("IOC_NEW(USER_MODE_ONLY): %s\n", f < 0 ? en(errno) : "fd");
        if (f >= 0) close(f);
        f = ioctl(dev, 0xAA00, 1u << 31);
        printf("IOC_NEW(1<<31): %s\n", f < 0 ? en(errno) : "fd");
        f = ioctl(dev, _IOW(0xAA, 0, int), 0);
        printf("IOC_NEW as _IOW size 4: %s\n", f < 0 ? en(errno) : "fd");
        f = ioctl(dev, UFFDIO_API, &a);
        printf("UFFDIO_API on the device: %s\n", f < 0 ? en(errno) : "0");
        char c;
        ssize_t n = read(dev, &c, 1);
        printf("read on the device: %s\n", n < 0 ? en(errno) : "data");
        close(dev);
    }
    int ro2 = open("/dev/userfaultfd", O_RDONLY | O_CLOEXEC);
    printf("open /dev/userfaultfd O_RDONLY: %s\n", ro2 < 0 ? en(errno) : "fd");
    if (ro2 >= 0) {
        int f = ioctl(ro2, 0xAA00, 0);
        printf("  IOC_NEW on it: %s\n", f < 0 ? en(errno) : "fd");
        if (f >= 0) close(f);
        close(ro2);
    }
}

/* ---- ioctl numbers and sizes ------------------------------------------------ */
static void numbers(void) {
    printf("== ioctl numbers\n");
    static const struct {
        const char *name;
        int nr, size;
        unsigned long real;
    } io[] = {
        { "API", 0x3f, 24, UFFDIO_API },
        { "REGISTER", 0x00, 32, UFFDIO_REGISTER },
        { "UNREGISTER", 0x01, 16, UFFDIO_UNREGISTER },
        { "WAKE", 0x02, 16, UFFDIO_WAKE },
        { "COPY", 0x03, 40, UFFDIO_COPY },
        { "ZEROPAGE", 0x04, 32, UFFDIO_ZEROPAGE },
        { "MOVE", 0x05, 40, PL_UFFDIO_MOVE },
        { "WRITEPROTECT", 0x06, 24, UFFDIO_WRITEPROTECT },
        { "CONTINUE", 0x07, 32, UFFDIO_CONTINUE },
        { "POISON", 0x08, 32, PL_UFFDIO_POISON },
    };
    int fd = fresh(0);
    res_reset();
    char *p = res_map(8, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(p, 'a', 2 * P4);
    uffd_register(fd, p, 2 * P4, UFFDIO_REGISTER_MODE_WP, NULL);
    /* A valid argument for each (a populated page: the real call fails EEXIST
     * or succeeds harmlessly), so a number that reaches the handler shows. */
    for (size_t i = 0; i < sizeof io / sizeof *io; i++) {
        u64 buf[8] = { A(p), P4, 0, 0, 0, 0, 0, 0 };
        if (io[i].nr == 0x3f) buf[0] = UFFD_API, buf[1] = 0;
        if (io[i].nr == 0x00) buf[2] = UFFDIO_REGISTER_MODE_WP;
        if (io[i].nr == 0x03 || io[i].nr == 0x05) buf[0] = A(p), buf[1] = A(p + P4), buf[2] = P4;
        unsigned long v[] = {
            _IOC(_IOC_NONE, 0xAA, io[i].nr, 0),
            _IOC(_IOC_READ, 0xAA, io[i].nr, io[i].size),
            _IOC(_IOC_WRITE, 0xAA, io[i].nr, io[i].size),
            _IOC(_IOC_READ | _IOC_WRITE, 0xAA, io[i].nr, io[i].size),
            _IOC(_IOC_READ | _IOC_WRITE, 0xAA, io[i].nr, io[i].size - 8),
            _IOC(_IOC_READ | _IOC_WRITE, 0xAA, io[i].nr, io[i].size + 8),
            _IOC(_IOC_READ, 0xAA, io[i].nr, io[i].size + 8),
        };
        static const char *vn[] = { "_IO", "_IOR", "_IOW", "_IOWR", "_IOWR-8", "_IOWR+8", "_IOR+8" };
        printf("%s (real %#lx):", io[i].name, io[i].real);
        for (int k = 0; k < 7; k++) {
            if (v[k] == io[i].real) {
                printf(" %s=real", vn[k]);
                continue;
            }
            u64 c[8];
            memcpy(c, buf, sizeof c);
            int e = x(fd, v[k], c);
            printf(" %s=%s", vn[k], en(-e));
        }
        printf("\n");
    }
    int n_einval = 0, n = 0;
    for (int nr = 0x09; nr < 0x3f; nr++) {
        u64 c[8] = { 0 };
        int e = x(fd, _IOWR(0xAA, nr, struct uffdio_register), c);
        n_einval += e == -EINVAL;
        n++;
        e = x(fd, _IO(0xAA, nr), NULL);
        n_einval += e == -EINVAL;
        n++;
    }
    printf("nr 0x09-0x3e, _IOWR 32 and _IO: EINVAL %d of %d\n", n_einval, n);
    for (int nr = 0x40; nr < 0x100; nr += 0x3f) {
        u64 c[8] = { 0 };
        char w[64];
        snprintf(w, sizeof w, "nr %#x _IOWR 24", nr);
        prow(w, x(fd, _IOWR(0xAA, nr, struct uffdio_api), c));
    }
    {
        u64 c[8] = { 0 };
        prow("type 0 nr 0x3f size 24", x(fd, _IOWR(0, 0x3f, struct uffdio_api), c));
        prow("type 0xff nr 0x3f size 24", x(fd, _IOWR(0xff, 0x3f, struct uffdio_api), c));
        prow("PAGEMAP_SCAN number on a uffd", x(fd, AB_PAGEMAP_SCAN, c));
        prow("cmd 0", x(fd, 0, c));
        prow("cmd ~0", x(fd, ~0ul, c));
        prow("cmd API | 1<<32 (upper bits ignored)", x(fd, UFFDIO_API | (1ul << 32), c));
    }
    /* Generic ioctls the VFS handles before the uffd's own. */
    int one = 1, zero = 0;
    int e = x(fd, FIONBIO, &zero);
    printf("FIONBIO 0: %s, O_NONBLOCK now %d\n", en(-e), !!(fcntl(fd, F_GETFL) & O_NONBLOCK));
    e = x(fd, FIONBIO, &one);
    printf("FIONBIO 1: %s, O_NONBLOCK now %d\n", en(-e), !!(fcntl(fd, F_GETFL) & O_NONBLOCK));
    e = x(fd, FIONCLEX, NULL);
    printf("FIONCLEX: %s, FD_CLOEXEC now %d\n", en(-e), !!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
    e = x(fd, FIOCLEX, NULL);
    printf("FIOCLEX: %s, FD_CLOEXEC now %d\n", en(-e), !!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
    int q = -1;
    e = x(fd, FIONREAD, &q);
    printf("FIONREAD: %s\n", en(-e));
    e = x(fd, FIOASYNC, &one);
    printf("FIOASYNC 1: %s, O_ASYNC now %d\n", en(-e), !!(fcntl(fd, F_GETFL) & O_ASYNC));
    e = fcntl(fd, F_SETFL, O_NONBLOCK | O_ASYNC) < 0 ? -errno : 0;
    printf("F_SETFL O_ASYNC: %s, O_ASYNC now %d\n", en(-e), !!(fcntl(fd, F_GETFL) & O_ASYNC));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    e = x(fd, TCGETS, &q);
    printf("TCGETS: %s\n", en(-e));
    e = fcntl(fd, F_SETFL, 0) < 0 ? -errno : 0;
    printf("F_SETFL 0: %s, O_NONBLOCK now %d\n", en(-e), !!(fcntl(fd, F_GETFL) & O_NONBLOCK));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    printf("lseek SEEK_END: %s\n", lseek(fd, 0, SEEK_END) < 0 ? en(errno) : "0");
    char c4[64];
    printf("pread 32: %s\n", pread(fd, c4, 32, 0) < 0 ? en(errno) : "data");
    struct stat sb;
    printf("fstat: %s", fstat(fd, &sb) < 0 ? en(errno) : "0");
    printf(" mode %#o size %lld\n", sb.st_mode & 0170777, (long long)sb.st_size);
    printf("ftruncate: %s\n", ftruncate(fd, 0) < 0 ? en(errno) : "0");
    printf("fsync: %s\n", fsync(fd) < 0 ? en(errno) : "0");
    void *mp = mmap(NULL, P4, PROT_READ, MAP_SHARED, fd, 0);
    printf("mmap of the uffd: %s\n", mp == MAP_FAILED ? en(errno) : "mapped");
    int d = dup(fd);
    prow("REGISTER through a dup of the fd (page 9, WP)", r_register(d, A(p + P4), P4, UFFDIO_REGISTER_MODE_WP, NULL));
    prow("UNREGISTER page 9 through the original", r_range(fd, UFFDIO_UNREGISTER, A(p + P4), P4));
    close(d);
    close(fd);

    /* uffd ioctls on fds that are not uffds. */
    int pfd[2];
    if (pipe(pfd)) exit(2);
    int mfd = shm_memfd("abi", 1);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    int efd = eventfd(0, EFD_CLOEXEC);
    int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    static const char *fn[] = { "pipe", "memfd", "/dev/null", "/proc/self/pagemap", "eventfd", "directory /", "closed fd 999" };
    int fds[] = { pfd[0], mfd, nul, pm, efd, dir, 999 };
    for (int i = 0; i < 7; i++) {
        struct uffdio_api a = { UFFD_API, 0, 0 };
        struct uffdio_register r = { { A(p), P4 }, 2, 0 };
        struct uffdio_range rg = { A(p), P4 };
        printf("on %s: API=%s REGISTER=%s WAKE=%s\n", fn[i], en(-x(fds[i], UFFDIO_API, &a)), en(-x(fds[i], UFFDIO_REGISTER, &r)),
               en(-x(fds[i], UFFDIO_WAKE, &rg)));
    }
    close(pfd[0]);
    close(pfd[1]);
    close(mfd);
    close(nul);
    close(pm);
    close(efd);
    close(dir);
    res_reset();
}

/* ---- the range table ---------------------------------------------------------- *
 * Fixture (pages of B): 7 PROT_NONE (the reservation), 8-11 RW anon
 * registered WP (8, 9, 11 empty, 10 populated), 12-15 a hole, 16-17 RW anon
 * populated unregistered (a source), 20-21 RW anon registered WP, empty (a
 * MOVE destination for source cases). A fresh uffd and fixture per row. */
static int fixture(void) {
    res_reset();
    int fd = fresh(UFFD_FEATURE_MOVE);
    char *p = res_map(8, 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[2 * P4] = 'p';
    munmap(pg(12), 4 * P4);
    char *s = res_map(16, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(s, 's', 2 * P4);
    char *d = res_map(20, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int e1 = uffd_register(fd, p, 4 * P4, UFFDIO_REGISTER_MODE_WP, NULL);
    int e2 = uffd_register(fd, d, 2 * P4, UFFDIO_REGISTER_MODE_WP, NULL);
    if (e1 || e2) {
        printf("fixture register: %s %s\n", en(-e1), en(-e2));
        pl_flush();
        exit(3);
    }
    return fd;
}

struct rcase {
    const char *name;
    int rel;  /* start relative to page 8 (1) or absolute (0) */
    u64 start, len;
};

static void range_table(void) {
    printf("== range table (pages 8-11 anon WP-registered, 10 populated; 12-15 hole; 16-17 source; 7 PROT_NONE)\n");
    const u64 P = 0; /* placeholder: relative starts are offsets from page 8 */
    (void)P;
    static const struct rcase cs[] = {
        { "page 8 len 0", 1, 0, 0 },
        { "page 8 len 1", 1, 0, 1 },
        { "page 8 len 4095", 1, 0, 4095 },
        { "page 8 len 4097", 1, 0, 4097 },
        { "page 8 +1 len 4096", 1, 1, 4096 },
        { "page 8 +4095 len 4096", 1, 4095, 4096 },
        { "page 8 len 2^64-4096 (wraps)", 1, 0, 0ull - 4096 },
        { "page 8 len 1<<47", 1, 0, 1ull << 47 },
        { "page 8 len 1<<63", 1, 0, 1ull << 63 },
        { "pages 8-9", 1, 0, 8192 },
        { "pages 11-12 (hole after)", 1, 3 * 4096, 8192 },
        { "pages 12-13 (hole only)", 1, 4 * 4096, 8192 },
        { "pages 7-8 (PROT_NONE before)", 1, (u64)-4096, 8192 },
        { "pages 11-16 (hole, unregistered after)", 1, 3 * 4096, 6 * 4096 },
        { "start 0 len 4096", 0, 0, 4096 },
        { "start 4096 (mmap_min_addr) len 4096", 0, 4096, 4096 },
        { "start TASK_SIZE-4096 len 4096", 0, TASK - 4096, 4096 },
        { "start TASK_SIZE-4096 len 8192", 0, TASK - 4096, 8192 },
        { "start TASK_SIZE len 4096", 0, TASK, 4096 },
        { "start 1<<47 len 4096", 0, 1ull << 47, 4096 },
        { "start 0xffff800000000000 len 4096", 0, 0xffff800000000000ull, 4096 },
        { "start 2^64-4096 len 4096", 0, 0ull - 4096, 4096 },
        { "start 4096 len TASK_SIZE-4096 (all user space)", 0, 4096, TASK - 4096 },
        { "start 4096 len TASK_SIZE (a page past)", 0, 4096, TASK },
    };
    static const char *ops[] = { "REGISTER WP", "UNREGISTER", "WAKE", "WRITEPROTECT", "unprotect", "COPY dst", "COPY src",
                                 "ZEROPAGE", "CONTINUE", "POISON", "MOVE dst", "MOVE src" };
    /* The last page below TASK_SIZE is mapped by the program itself (anon,
     * never registered); if something else is there (a stack at the very
     * top) the rows that would touch it are skipped. */
    char *top = (char *)(uintptr_t)(TASK - 4096);
    void *t = mmap(top, P4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | 0x100000 /* MAP_FIXED_NOREPLACE */, -1, 0);
    int own_top = t == top;
    printf("map the last page below TASK_SIZE (MAP_FIXED_NOREPLACE): %s\n", own_top ? "mapped" : t == MAP_FAILED ? en(errno) : "elsewhere");
    if (t != MAP_FAILED && !own_top) munmap(t, P4);
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        for (size_t o = 0; o < sizeof ops / sizeof *ops; o++) {
            int at_top = !cs[c].rel && cs[c].start == TASK - 4096;
            if (at_top && !own_top) {
                printf("%s: %s skipped (the page is not the program's)\n", cs[c].name, ops[o]);
                continue;
            }
            if (at_top) {
                munmap(top, P4);
                if (mmap(top, P4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != top) exit(3);
                top[0] = 't';
            }
            int fd = fixture();
            u64 s = cs[c].rel ? A(pg(8)) + cs[c].start : cs[c].start, l = cs[c].len;
            u64 src = A(pg(16)), mdst = A(pg(20));
            i64 f = F;
            u64 io = F;
            int e;
            const char *field = NULL;
            switch (o) {
            case 0: e = r_register(fd, s, l, UFFDIO_REGISTER_MODE_WP, &io); break;
            case 1: e = r_range(fd, UFFDIO_UNREGISTER, s, l); break;
            case 2: e = r_range(fd, UFFDIO_WAKE, s, l); break;
            case 3: e = r_wp(fd, s, l, UFFDIO_WRITEPROTECT_MODE_WP); break;
            case 4: e = r_wp(fd, s, l, 0); break;
            case 5: e = r_copy(fd, s, src, l, 0, &f), field = "copy"; break;
            case 6: e = r_copy(fd, A(pg(8)), s, l, 0, &f), field = "copy"; break;
            case 7: e = r_zero(fd, s, l, 0, &f), field = "zeropage"; break;
            case 8: e = r_cont(fd, s, l, 0, &f), field = "mapped"; break;
            case 9: e = r_poison(fd, s, l, 0, &f), field = "updated"; break;
            case 10: e = r_move(fd, s, src, l, 0, &f), field = "move"; break;
            default: e = r_move(fd, mdst, s, l, 0, &f), field = "move"; break;
            }
            printf("%s: %s %s", cs[c].name, ops[o], en(-e));
            if (field) printf(" %s %lld", field, (long long)f);
            if (o == 0 && !e) printf(" ioctls %#llx", (unsigned long long)io);
            /* What an op that succeeded did to the fixture. */
            if (!e || e == -EAGAIN) {
                char row[16];
                shm_pm_row(pg(7), 12, row);
                printf(" [pm 7-18 %s]", row);
                if (o == 0 || o == 1) {
                    int w8 = uffd_protect(fd, pg(8), P4), w9 = uffd_protect(fd, pg(9), P4);
                    printf(" [wp 8:%s 9:%s]", en(-w8), en(-w9));
                }
                if (at_top) printf(" [top page %s]", pmx(top));
            }
            printf("\n");
            close(fd);
        }
    }
    if (own_top) munmap(top, P4);
    res_reset();
}

/* ---- unknown mode bits --------------------------------------------------------- */
static void mode_bits(void) {
    printf("== unknown mode bits (each alone, on a valid range of the fixture)\n");
    static const struct {
        const char *name;
        u64 valid;
    } io[] = { { "REGISTER", 7 }, { "COPY", 3 }, { "ZEROPAGE", 1 }, { "WRITEPROTECT", 3 }, { "CONTINUE", 3 }, { "POISON", 1 }, { "MOVE", 3 } };
    for (size_t i = 0; i < sizeof io / sizeof *io; i++) {
        int prev_e = 1;
        i64 prev_f = 0;
        int run = -1;
        for (int b = 0; b <= 64; b++) {
            int e = 1;
            i64 f = 0;
            if (b < 64 && !(io[i].valid & (1ull << b))) {
                int fd = fixture();
                u64 m = 1ull << b, s = A(pg(8));
                switch (i) {
                case 0: e = r_register(fd, A(pg(16)), P4, m, NULL); break;
                case 1: e = r_copy(fd, s, A(pg(16)), P4, m, &f); break;
                case 2: e = r_zero(fd, s, P4, m, &f); break;
                case 3: e = r_wp(fd, s, P4, m); break;
                case 4: e = r_cont(fd, s, P4, m, &f); break;
                case 5: e = r_poison(fd, s, P4, m, &f); break;
                default: e = r_move(fd, s, A(pg(16)), P4, m, &f); break;
                }
                close(fd);
            }
            if (run >= 0 && (e != prev_e || f != prev_f || b == 64)) {
                printf("%s mode bits %d-%d: %s", io[i].name, run, b - 1, en(-prev_e));
                if (i != 0 && i != 3) printf(" field %lld", (long long)prev_f);
                printf("\n");
                run = -1;
            }
            if (b < 64 && e != 1 && run < 0) run = b, prev_e = e, prev_f = f;
        }
    }
    /* A valid bit together with an unknown one, and the WP|DONTWAKE pairs. */
    int fd = fixture();
    i64 f = F;
    { int e_ = r_copy(fd, A(pg(8)), A(pg(16)), P4, 1 | (1ull << 63), &f); frow("COPY DONTWAKE|1<<63", e_, "copy", f); }
    f = F;
    { int e_ = r_copy(fd, A(pg(8)), A(pg(16)), P4, 3, &f); frow("COPY WP|DONTWAKE (both valid)", e_, "copy", f); }
    printf("  page 8: %s\n", pmx(pg(8)));
    f = F;
    { int e_ = r_cont(fd, A(pg(9)), P4, 3, &f); frow("CONTINUE WP|DONTWAKE on anon", e_, "mapped", f); }
    f = F;
    { int e_ = r_move(fd, A(pg(9)), A(pg(17)), P4, 7, &f); frow("MOVE DONTWAKE|ALLOW_SRC_HOLES|4", e_, "move", f); }
    f = F;
    { int e_ = r_move(fd, A(pg(9)), A(pg(17)), P4, 3, &f); frow("MOVE DONTWAKE|ALLOW_SRC_HOLES", e_, "move", f); }
    prow("WRITEPROTECT DONTWAKE alone (un-protect, no wake)", r_wp(fd, A(pg(8)), P4, 2));
    printf("  page 8: %s\n", pmx(pg(8)));
    prow("REGISTER MISSING|1<<63", r_register(fd, A(pg(16)), P4, 1 | (1ull << 63), NULL));
    close(fd);
    res_reset();
}

/* ---- output fields in an unreadable page ----------------------------------------
 * The struct ends at the end of page 30 (RW), page 31 PROT_NONE: "out
 * unmapped" puts only the output field there; "input unmapped" the last
 * input field too. "read-only" puts the whole struct in a read-only page. */
static void *place(size_t size, size_t off_from_end, const void *content) {
    char *pp = pg(30);
    mprotect(pp, P4, PROT_READ | PROT_WRITE);
    void *at = pp + P4 - size + off_from_end;
    memcpy(at, content, size - off_from_end);
    return at;
}

static void out_fields(void) {
    printf("== output field unwritable\n");
    for (int k = 0; k < 3; k++) {
        static const char *kn[] = { "out field unmapped", "last input field unmapped too", "struct read-only" };
        size_t cut = k == 0 ? 8 : k == 1 ? 16 : 0;
        /* REGISTER */
        int fd = fixture();
        res_map(30, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        struct uffdio_register r = { { A(pg(16)), P4 }, UFFDIO_REGISTER_MODE_WP, F };
        void *at = place(sizeof r, cut, &r);
        if (k == 2) mprotect(pg(30), P4, PROT_READ);
        int e = x(fd, UFFDIO_REGISTER, at);
        printf("%s: REGISTER page 16 %s, then WRITEPROTECT page 16 %s\n", kn[k], en(-e), en(-uffd_protect(fd, pg(16), P4)));
        close(fd);
        /* COPY */
        fd = fixture();
        res_map(30, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        struct uffdio_copy c = { A(pg(8)), A(pg(16)), P4, 0, F };
        at = place(sizeof c, cut, &c);
        if (k == 2) mprotect(pg(30), P4, PROT_READ);
        e = x(fd, UFFDIO_COPY, at);
        printf("%s: COPY page 8 %s, page 8 %s\n", kn[k], en(-e), pmx(pg(8)));
        close(fd);
        /* ZEROPAGE */
        fd = fixture();
        res_map(30, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        struct uffdio_zeropage z = { { A(pg(8)), P4 }, 0, F };
        at = place(sizeof z, cut, &z);
        if (k == 2) mprotect(pg(30), P4, PROT_READ);
        e = x(fd, UFFDIO_ZEROPAGE, at);
        printf("%s: ZEROPAGE page 8 %s, page 8 %s\n", kn[k], en(-e), pmx(pg(8)));
        close(fd);
        /* POISON */
        fd = fixture();
        res_map(30, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        struct pl_uffdio_poison po = { { A(pg(8)), P4 }, 0, F };
        at = place(sizeof po, cut, &po);
        if (k == 2) mprotect(pg(30), P4, PROT_READ);
        e = x(fd, PL_UFFDIO_POISON, at);
        printf("%s: POISON page 8 %s, page 8 %s\n", kn[k], en(-e), pmx(pg(8)));
        close(fd);
        /* MOVE */
        fd = fixture();
        res_map(30, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        struct pl_uffdio_move mv = { A(pg(8)), A(pg(16)), P4, 0, F };
        at = place(sizeof mv, cut, &mv);
        if (k == 2) mprotect(pg(30), P4, PROT_READ);
        e = x(fd, PL_UFFDIO_MOVE, at);
        printf("%s: MOVE page 16 to 8 %s, page 8 %s, page 16 %s\n", kn[k], en(-e), pmx(pg(8)), pmx(pg(16)));
        close(fd);
        /* WRITEPROTECT / UNREGISTER / WAKE (no output field) */
        fd = fixture();
        res_map(30, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        struct uffdio_writeprotect w = { { A(pg(10)), P4 }, UFFDIO_WRITEPROTECT_MODE_WP };
        at = place(sizeof w, k == 2 ? 0 : 8, &w);
        if (k == 2) mprotect(pg(30), P4, PROT_READ);
        e = x(fd, UFFDIO_WRITEPROTECT, at);
        printf("%s: WRITEPROTECT (mode unmapped unless read-only) %s, page 10 %s\n", kn[k], en(-e), pmx(pg(10)));
        struct uffdio_range rg = { A(pg(8)), 4 * P4 };
        mprotect(pg(30), P4, PROT_READ | PROT_WRITE);
        at = place(sizeof rg, k == 2 ? 0 : 8, &rg);
        if (k == 2) mprotect(pg(30), P4, PROT_READ);
        e = x(fd, UFFDIO_UNREGISTER, at);
        printf("%s: UNREGISTER (len unmapped unless read-only) %s, then WRITEPROTECT page 8 %s\n", kn[k], en(-e), en(-uffd_protect(fd, pg(8), P4)));
        close(fd);
    }
    /* CONTINUE needs shmem. */
    for (int k = 0; k < 3; k++) {
        size_t cut = k == 0 ? 8 : k == 1 ? 16 : 0;
        res_reset();
        int fd = fresh(0);
        int mfd = shm_memfd("cont", 2);
        if (pwrite(mfd, "c", 1, 0) != 1) exit(2);
        char *p = res_map(8, 2, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        uffd_register(fd, p, 2 * P4, UFFDIO_REGISTER_MODE_MINOR, NULL);
        res_map(30, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        struct uffdio_continue c = { { A(p), P4 }, 0, F };
        void *at = place(sizeof c, cut, &c);
        if (k == 2) mprotect(pg(30), P4, PROT_READ);
        int e = x(fd, UFFDIO_CONTINUE, at);
        static const char *kn[] = { "out field unmapped", "last input field unmapped too", "struct read-only" };
        printf("%s: CONTINUE shmem page 8 %s, page 8 %s\n", kn[k], en(-e), pmx(p));
        close(fd);
        close(mfd);
    }
    res_reset();
}

/* ---- a dead mm ----------------------------------------------------------------- */
static volatile int dead_ufd = -1;
static void *fork_reader(void *v) {
    int fd = (int)(intptr_t)v;
    struct uffd_msg m;
    if (uffd_read_msg(fd, &m, -1) == 1 && m.event == UFFD_EVENT_FORK) __atomic_store_n(&dead_ufd, (int)m.arg.fork.ufd, __ATOMIC_RELEASE);
    else __atomic_store_n(&dead_ufd, -2, __ATOMIC_RELEASE);
    return NULL;
}

static void dead_mm(void) {
    printf("== a dead mm (the EVENT_FORK child's uffd after the child exited)\n");
    res_reset();
    int fd = fresh(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_MOVE);
    char *p = res_map(8, 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(p + 2 * P4, 'p', P4);
    uffd_register(fd, p, 4 * P4, UFFDIO_REGISTER_MODE_WP, NULL);
    pthread_t t;
    pthread_create(&t, NULL, fork_reader, (void *)(intptr_t)fd);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    pthread_join(t, NULL);
    int st;
    waitpid(pid, &st, 0);
    int u = dead_ufd;
    printf("fork event read: %s\n", u >= 0 ? "yes" : "no");
    if (u < 0) return;
    i64 f = F;
    { int e_ = r_zero(u, A(p), P4, 0, &f); frow("ZEROPAGE", e_, "zeropage", f); }
    f = F;
    { int e_ = r_zero(u, A(p), P4, 2, &f); frow("ZEROPAGE mode 2", e_, "zeropage", f); }
    f = F;
    { int e_ = r_zero(u, A(p), 0, 0, &f); frow("ZEROPAGE len 0", e_, "zeropage", f); }
    f = F;
    { int e_ = r_cont(u, A(p), P4, 0, &f); frow("CONTINUE", e_, "mapped", f); }
    f = F;
    { int e_ = r_poison(u, A(p), P4, 0, &f); frow("POISON", e_, "updated", f); }
    f = F;
    { int e_ = r_poison(u, A(p), P4, 2, &f); frow("POISON mode 2", e_, "updated", f); }
    f = F;
    { int e_ = r_move(u, A(p), A(p + 2 * P4), P4, 0, &f); frow("MOVE", e_, "move", f); }
    f = F;
    { int e_ = r_copy(u, A(p), A(p + 2 * P4), P4, 4, &f); frow("COPY mode 4", e_, "copy", f); }
    f = F;
    { int e_ = r_copy(u, A(p), A(p + 2 * P4), 0, 0, &f); frow("COPY len 0", e_, "copy", f); }
    prow("WRITEPROTECT mode 4", r_wp(u, A(p), P4, 4));
    prow("WRITEPROTECT len 0", r_wp(u, A(p), 0, 1));
    prow("REGISTER mode 0", r_register(u, A(p), P4, 0, NULL));
    prow("REGISTER len 0", r_register(u, A(p), 0, 2, NULL));
    prow("UNREGISTER len 0", r_range(u, UFFDIO_UNREGISTER, A(p), 0));
    prow("WAKE len 0", r_range(u, UFFDIO_WAKE, A(p), 0));
    struct uffdio_api a = { UFFD_API, 0, 0 };
    prow("API (the child's ctx is initialised)", x(u, UFFDIO_API, &a));
    char buf[64];
    ssize_t n = read(u, buf, sizeof buf);
    printf("read: %s\n", n < 0 ? en(errno) : "data");
    close(u);
    close(fd);
    res_reset();
}

/* ---- UFFDIO_POISON on every backing ------------------------------------------ */
static int pipe_rw[2];

static void kernel_accesses(const char *k, char *pp) {
    char w[128], buf[64];
    /* write(2) from the poisoned page into a pipe */
    ssize_t n = write(pipe_rw[1], pp + 8, 16);
    snprintf(w, sizeof w, "%s: write() from it", k);
    printf("%s: %s\n", w, n < 0 ? en(errno) : n == 16 ? "16" : "partial");
    if (n > 0) n = read(pipe_rw[0], buf, sizeof buf);
    /* read(2) from a pipe into the poisoned page */
    if (write(pipe_rw[1], "0123456789abcdef", 16) != 16) exit(2);
    n = read(pipe_rw[0], pp + 8, 16);
    int e = errno;
    ssize_t left = read(pipe_rw[0], buf, sizeof buf);
    printf("%s: read() into it: %s, left in the pipe %zd\n", k, n < 0 ? en(e) : n == 16 ? "16" : "partial", left < 0 ? 0 : left);
    struct iovec l = { buf, 16 }, r = { pp + 8, 16 };
    n = process_vm_readv(getpid(), &l, 1, &r, 1, 0);
    printf("%s: process_vm_readv from it: %s\n", k, n < 0 ? en(errno) : n == 16 ? "16" : "partial");
    n = process_vm_writev(getpid(), &l, 1, &r, 1, 0);
    printf("%s: process_vm_writev into it: %s\n", k, n < 0 ? en(errno) : n == 16 ? "16" : "partial");
    int mem = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    n = pread(mem, buf, 16, (off_t)(uintptr_t)(pp + 8));
    printf("%s: pread /proc/self/mem: %s\n", k, n < 0 ? en(errno) : n == 16 ? "16" : "partial");
    n = pwrite(mem, "x", 1, (off_t)(uintptr_t)(pp + 8));
    printf("%s: pwrite /proc/self/mem: %s\n", k, n < 0 ? en(errno) : n == 1 ? "1" : "partial");
    close(mem);
    printf("%s: MADV_POPULATE_READ: %s\n", k, madvise(pp, P4, MADV_POPULATE_READ) < 0 ? en(errno) : "0");
    printf("%s: MADV_POPULATE_WRITE: %s\n", k, madvise(pp, P4, MADV_POPULATE_WRITE) < 0 ? en(errno) : "0");
    printf("%s: mlock: %s", k, mlock(pp, P4) < 0 ? en(errno) : "0");
    printf(", munlock %s\n", munlock(pp, P4) < 0 ? en(errno) : "0");
    printf("%s: pagemap after the kernel accesses: %s\n", k, pmx(pp));
}

/* kind: 0 private anon, 1 memfd MAP_SHARED, 2 memfd MAP_PRIVATE, 3 MAP_SHARED|MAP_ANONYMOUS. */
static void poison_backing(int kind) {
    static const char *kn[] = { "anon", "memfd shared", "memfd private", "shared anon" };
    const char *k = kn[kind];
    char w[160];
    printf("-- %s\n", k);
    res_reset();
    int mfd = -1, flags;
    if (kind == 1 || kind == 2) {
        mfd = shm_memfd("poison", 8);
        for (int i = 0; i < 8; i++) {
            char c = (char)('a' + i);
            if (pwrite(mfd, &c, 1, i * P4) != 1) exit(2);
        }
    }
    flags = kind == 0 ? MAP_PRIVATE | MAP_ANONYMOUS : kind == 1 ? MAP_SHARED : kind == 2 ? MAP_PRIVATE : MAP_SHARED | MAP_ANONYMOUS;
    char *p = res_map(8, 8, PROT_READ | PROT_WRITE, flags, mfd, 0);
    /* Pages 0-3 of the region stay none; 4-7 are mapped by write faults (a
     * read fault of a memfd page would map its cached neighbours too). */
    for (int i = 4; i < 8; i++) p[i * P4] = (char)('a' + i);
    int fd = fresh(UFFD_FEATURE_POISON | UFFD_FEATURE_MOVE);
    int fd2 = fresh(0);
    memset(res_map(40, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), 'C', P4); /* a COPY source */
    /* Registration: pages 0-5 WP only, 6-7 MISSING|WP. */
    prow("register pages 0-5 WP", uffd_register(fd, p, 6 * P4, UFFDIO_REGISTER_MODE_WP, NULL));
    prow("register pages 6-7 MISSING|WP", uffd_register(fd, p + 6 * P4, 2 * P4, 3, NULL));
    i64 f = F;
    { int e_ = r_poison(fd, A(p), P4, 0, &f); frow("POISON page 0 (WP-only registration)", e_, "updated", f); }
    printf("  page 0: %s\n", pmx(p));
    f = F;
    { int e_ = r_poison(fd2, A(p + P4), P4, 0, &f); frow("POISON page 1 through fd2 (not the registering uffd)", e_, "updated", f); }
    printf("  page 1: %s\n", pmx(p + P4));
    f = F;
    { int e_ = r_poison(fd, A(p + 2 * P4), 3 * P4, 0, &f); frow("POISON pages 2-4 (4 populated)", e_, "updated", f); }
    f = F;
    { int e_ = r_poison(fd, A(p + 3 * P4), 2 * P4, 0, &f); frow("POISON pages 3-4 again (3 poisoned)", e_, "updated", f); }
    f = F;
    { int e_ = r_poison(fd, A(p + 5 * P4), 2 * P4, 0, &f); frow("POISON pages 5-6 (across two VMAs)", e_, "updated", f); }
    f = F;
    { int e_ = r_poison(fd, A(p + 8 * P4), P4, 0, &f); frow("POISON page 8 (past the mapping: PROT_NONE reservation)", e_, "updated", f); }
    /* PAGEMAP_SCAN categories */
    struct ab_pm a = pmarg(p, p + 8 * P4);
    scan("PAGEMAP_SCAN pages 0-7", pm_fd, &a, p);
    shm_pm_print("row", p, 8);

    /* Accesses */
    snprintf(w, sizeof w, "%s: read page 0 +100", k);
    probe(w, p + 100, 0, 0);
    snprintf(w, sizeof w, "%s: write page 0 +4095", k);
    probe(w, p + 4095, 1, 'w');
    snprintf(w, sizeof w, "%s: read page 1 +0", k);
    probe(w, p + P4, 0, 0);
    snprintf(w, sizeof w, "%s: exec page 2", k);
    {
        ab_sig = 0;
        if (sigsetjmp(ab_jb, 1) == 0) {
            mprotect(p + 2 * P4, P4, PROT_READ | PROT_WRITE | PROT_EXEC);
            ((void (*)(void))(p + 2 * P4))();
            printf("%s: returned\n", w);
        } else {
            uintptr_t pa = A(p + 2 * P4);
            printf("%s: %s code %d addr exact %d lsb %d\n", w, shm_signame(ab_sig), ab_code, ab_addr == pa, ab_lsb);
        }
        mprotect(p + 2 * P4, P4, PROT_READ | PROT_WRITE);
    }
    kernel_accesses(k, p);
    /* mprotect */
    mprotect(p, P4, PROT_READ);
    snprintf(w, sizeof w, "%s: PROT_READ, read page 0", k);
    probe(w, p + 5, 0, 0);
    snprintf(w, sizeof w, "%s: PROT_READ, write page 0", k);
    probe(w, p + 5, 1, 'z');
    mprotect(p, P4, PROT_NONE);
    snprintf(w, sizeof w, "%s: PROT_NONE, read page 0", k);
    probe(w, p + 5, 0, 0);
    mprotect(p, P4, PROT_READ | PROT_WRITE);
    printf("  page 0 after mprotect: %s\n", pmx(p));
    snprintf(w, sizeof w, "%s: RW again, read page 0", k);
    probe(w, p + 5, 0, 0);
    /* UFFDIO ioctls over the poison */
    f = F;
    { int e_ = r_zero(fd, A(p + P4), P4, 0, &f); frow("ZEROPAGE over poisoned page 1", e_, "zeropage", f); }
    f = F;
    if (kind == 0) {
        int e_ = r_move(fd, A(p + 6 * P4), A(p + P4), P4, 0, &f);
        frow("MOVE from poisoned page 1 to page 6", e_, "move", f);
    } else {
        int e_ = r_cont(fd, A(p + P4), P4, 0, &f);
        frow("CONTINUE over poisoned page 1", e_, "mapped", f);
    }
    prow("WRITEPROTECT poisoned pages 0-1", uffd_protect(fd, p, 2 * P4));
    printf("  page 0: %s\n", pmx(p));
    prow("unprotect pages 0-1", uffd_unprotect(fd, p, 2 * P4));
    /* fork */
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        snprintf(w, sizeof w, "%s: child read page 0", k);
        printf("  child page 0: %s\n", pmx(p));
        probe(w, p + 1, 0, 0);
        snprintf(w, sizeof w, "%s: child write page 1", k);
        probe(w, p + P4 + 1, 1, 'c');
        pl_flush();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    snprintf(w, sizeof w, "%s: parent read page 1 after the child", k);
    probe(w, p + P4 + 1, 0, 0);
    /* mremap the poisoned page 0 to page 24 of B */
    void *q = mremap(p, P4, P4, MREMAP_MAYMOVE | MREMAP_FIXED, pg(24));
    printf("%s: mremap page 0 away: %s\n", k, q == MAP_FAILED ? en(errno) : "moved");
    if (q != MAP_FAILED) {
        printf("  moved page: %s, old page 0: %s\n", pmx(q), pmx(p));
        snprintf(w, sizeof w, "%s: read the moved page", k);
        probe(w, (char *)q + 3, 0, 0);
        munmap(q, P4);
        if (mmap(p, P4, PROT_READ | PROT_WRITE, flags | MAP_FIXED, mfd, 0) == MAP_FAILED) exit(2);
    }
    /* DONTNEED, REMOVE, PUNCH_HOLE */
    { int r_ = madvise(p + P4, P4, MADV_DONTNEED); const char *s_ = r_ < 0 ? en(errno) : "0"; printf("%s: MADV_DONTNEED page 1: %s, page 1 %s\n", k, s_, pmx(p + P4)); }
    snprintf(w, sizeof w, "%s: read page 1 after DONTNEED", k);
    probe(w, p + P4 + 2, 0, 0);
    { int r_ = madvise(p + 2 * P4, P4, MADV_REMOVE); const char *s_ = r_ < 0 ? en(errno) : "0"; printf("%s: MADV_REMOVE page 2: %s, page 2 %s\n", k, s_, pmx(p + 2 * P4)); }
    snprintf(w, sizeof w, "%s: read page 2 after REMOVE", k);
    probe(w, p + 2 * P4 + 2, 0, 0);
    if (mfd >= 0) {
        int e = fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * P4, P4);
        printf("%s: PUNCH_HOLE page 3: %s, page 3 %s\n", k, e < 0 ? en(errno) : "0", pmx(p + 3 * P4));
        snprintf(w, sizeof w, "%s: read page 3 after PUNCH_HOLE", k);
        probe(w, p + 3 * P4 + 2, 0, 0);
    }
    { int r_ = madvise(p + 3 * P4, P4, MADV_FREE); const char *s_ = r_ < 0 ? en(errno) : "0"; printf("%s: MADV_FREE page 3: %s, page 3 %s\n", k, s_, pmx(p + 3 * P4)); }
    { int r_ = madvise(p + 3 * P4, P4, MADV_COLD); const char *s_ = r_ < 0 ? en(errno) : "0"; printf("%s: MADV_COLD page 3: %s, page 3 %s\n", k, s_, pmx(p + 3 * P4)); }
    { int r_ = madvise(p + 3 * P4, P4, MADV_PAGEOUT); const char *s_ = r_ < 0 ? en(errno) : "0"; printf("%s: MADV_PAGEOUT page 3: %s, page 3 %s\n", k, s_, pmx(p + 3 * P4)); }
    { int r_ = madvise(p + 3 * P4, P4, MADV_WILLNEED); const char *s_ = r_ < 0 ? en(errno) : "0"; printf("%s: MADV_WILLNEED page 3: %s, page 3 %s\n", k, s_, pmx(p + 3 * P4)); }
    /* COPY over the poison (page 0, re-mapped if mremap moved it) */
    f = F;
    if (A(p) && uffd_pagemap(p) & PM_SWAP) {
        { int e_ = r_copy(fd, A(p), A(pg(40)), P4, 0, &f); frow("COPY over poisoned page 0", e_, "copy", f); }
    } else {
        prow("register page 0 again", uffd_register(fd, p, P4, UFFDIO_REGISTER_MODE_WP, NULL));
        f = F;
        { int e_ = r_poison(fd, A(p), P4, 0, &f); frow("POISON page 0 again", e_, "updated", f); }
        f = F;
        { int e_ = r_copy(fd, A(p), A(pg(40)), P4, 0, &f); frow("COPY over poisoned page 0", e_, "copy", f); }
    }
    printf("  page 0: %s\n", pmx(p));
    /* close, munmap + mmap */
    close(fd);
    close(fd2);
    shm_pm_print("after close", p, 8);
    snprintf(w, sizeof w, "%s: read page 4 after close", k);
    probe(w, p + 4 * P4, 0, 0);
    munmap(p, 8 * P4);
    p = res_map(8, 8, PROT_READ | PROT_WRITE, flags, mfd, 0);
    shm_pm_print("munmap and mmap again", p, 8);
    snprintf(w, sizeof w, "%s: read page 4 after munmap+mmap", k);
    probe(w, p + 4 * P4, 0, 0);
    if (mfd >= 0) close(mfd);
    res_reset();
}

static void poison_regs(void) {
    printf("-- POISON on other registrations and VMAs\n");
    res_reset();
    int mfd = shm_memfd("pr", 4);
    char *p = res_map(8, 4, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    int fd = fresh(0);
    prow("register memfd MINOR", uffd_register(fd, p, 4 * P4, UFFDIO_REGISTER_MODE_MINOR, NULL));
    i64 f = F;
    { int e_ = r_poison(fd, A(p), P4, 0, &f); frow("POISON MINOR-only shmem page 0", e_, "updated", f); }
    printf("  page 0: %s\n", pmx(p));
    close(fd);
    fd = fresh(0);
    prow("register memfd MISSING", uffd_register(fd, p, 4 * P4, UFFDIO_REGISTER_MODE_MISSING, NULL));
    f = F;
    { int e_ = r_poison(fd, A(p + P4), P4, 0, &f); frow("POISON MISSING-only shmem page 1", e_, "updated", f); }
    f = F;
    { int e_ = r_poison(fd, A(p + 2 * P4), P4, 1, &f); frow("POISON DONTWAKE page 2", e_, "updated", f); }
    shm_pm_print("row", p, 4);
    close(fd);
    close(mfd);
    /* PROT_NONE and PROT_READ anon */
    fd = fresh(0);
    char *q = res_map(16, 2, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    prow("register PROT_NONE anon WP", uffd_register(fd, q, P4, UFFDIO_REGISTER_MODE_WP, NULL));
    f = F;
    { int e_ = r_poison(fd, A(q), P4, 0, &f); frow("POISON PROT_NONE anon", e_, "updated", f); }
    printf("  page: %s\n", pmx(q));
    f = F;
    char *src = res_map(40, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(src, 'S', P4);
    mprotect(q + P4, P4, PROT_READ);
    prow("register PROT_READ anon WP", uffd_register(fd, q + P4, P4, UFFDIO_REGISTER_MODE_WP, NULL));
    f = F;
    { int e_ = r_copy(fd, A(q + P4), A(src), P4, 0, &f); frow("COPY into PROT_READ anon", e_, "copy", f); }
    printf("  page: %s\n", pmx(q + P4));
    f = F;
    { int e_ = r_copy(fd, A(q), A(src), P4, 0, &f); frow("COPY into PROT_NONE anon (page is poisoned)", e_, "copy", f); }
    printf("  page: %s\n", pmx(q));
    mprotect(q, P4, PROT_READ);
    probe("PROT_READ now, read it", q + 9, 0, 0);
    close(fd);
    /* a file mapping registered WP with WP_ASYNC */
    fd = fresh(UFFD_FEATURE_WP_ASYNC);
    int xfd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    char *e = res_map(20, 2, PROT_READ, MAP_PRIVATE, xfd, 0);
    prow("register executable MAP_PRIVATE WP (WP_ASYNC)", uffd_register(fd, e, 2 * P4, UFFDIO_REGISTER_MODE_WP, NULL));
    f = F;
    { int e_ = r_poison(fd, A(e), P4, 0, &f); frow("POISON into it", e_, "updated", f); }
    f = F;
    { int e_ = r_zero(fd, A(e), P4, 0, &f); frow("ZEROPAGE into it", e_, "zeropage", f); }
    f = F;
    { int e_ = r_move(fd, A(e), A(src), P4, 0, &f); frow("MOVE into it", e_, "move", f); }
    close(fd);
    close(xfd);
    res_reset();
}

/* ---- UFFDIO_MOVE matrix ---------------------------------------------------------
 * dst page 8 (anon, registered WP, empty); src page 16 set up per row. */
static void move_one(const char *what, int sprot, int sflags, int dprot, int how) {
    res_reset();
    int fd = fresh(UFFD_FEATURE_MOVE | UFFD_FEATURE_WP_UNPOPULATED);
    char *d = res_map(8, 2, dprot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int mfd = -1;
    if (!(sflags & MAP_ANONYMOUS)) mfd = shm_memfd("mv", 2);
    char *s = res_map(16, 2, PROT_READ | PROT_WRITE, sflags, mfd, 0);
    if (mfd >= 0 && pwrite(mfd, "mm", 2, 0) != 2) exit(2);
    if (how != 1 && how != 5 && how != 11) memset(s, 'm', 2 * P4);
    if (how == 11) (void)*(volatile char *)s; /* the page-cache page, read-only */
    if (how == 1) (void)*(volatile char *)s; /* zero page */
    if (how == 2) mlock(s, 2 * P4);
    if (how == 3) mlock(d, 2 * P4);
    if (how == 6) madvise(s, 2 * P4, MADV_DONTFORK);
    if (sprot != (PROT_READ | PROT_WRITE)) mprotect(s, 2 * P4, sprot);
    int e0 = uffd_register(fd, d, 2 * P4, UFFDIO_REGISTER_MODE_WP, NULL);
    if (how == 4 || how == 5) {
        uffd_register(fd, s, 2 * P4, UFFDIO_REGISTER_MODE_WP, NULL);
        uffd_protect(fd, s, P4); /* 5: WP_UNPOPULATED, a marker on a none PTE */
    }
    if (how == 7) {
        i64 g = F;
        uffd_register(fd, s, 2 * P4, UFFDIO_REGISTER_MODE_WP, NULL);
        madvise(s, P4, MADV_DONTNEED);
        r_poison(fd, A(s), P4, 0, &g);
    }
    i64 f = F;
    int e;
    if (how == 8) e = r_move(fd, A(d), A(d), P4, 0, &f);
    else if (how == 9) e = r_move(fd, A(d), A(d + P4), 2 * P4, 0, &f);
    else if (how == 10) e = r_move(fd, A(d), A(s + P4), 2 * P4, 0, &f); /* src runs past the VMA */
    else e = r_move(fd, A(d), A(s), P4, 0, &f);
    printf("MOVE %s: %s move %lld", what, e0 ? "register failed" : en(-e), (long long)f);
    printf(" [dst %s src %s]\n", pmx(d), pmx(s));
    close(fd);
    if (mfd >= 0) close(mfd);
}

static void move_matrix(void) {
    printf("== UFFDIO_MOVE matrix (dst anon RW registered WP)\n");
    int RW = PROT_READ | PROT_WRITE, PA = MAP_PRIVATE | MAP_ANONYMOUS;
    move_one("src RW anon (baseline)", RW, PA, RW, 0);
    move_one("src PROT_READ", PROT_READ, PA, RW, 0);
    move_one("src PROT_READ, dst PROT_READ", PROT_READ, PA, PROT_READ, 0);
    move_one("src RWX", RW | PROT_EXEC, PA, RW, 0);
    move_one("dst PROT_READ", RW, PA, PROT_READ, 0);
    move_one("dst PROT_NONE", RW, PA, PROT_NONE, 0);
    move_one("src PROT_NONE, dst PROT_NONE", PROT_NONE, PA, PROT_NONE, 0);
    move_one("src zero page", RW, PA, RW, 1);
    move_one("src mlocked", RW, PA, RW, 2);
    move_one("dst mlocked", RW, PA, RW, 3);
    move_one("src MADV_DONTFORK", RW, PA, RW, 6);
    move_one("src MAP_SHARED|MAP_ANONYMOUS", RW, MAP_SHARED | MAP_ANONYMOUS, RW, 0);
    move_one("src memfd MAP_SHARED", RW, MAP_SHARED, RW, 0);
    move_one("src memfd MAP_PRIVATE (cache page, not COWed)", RW, MAP_PRIVATE, RW, 11);
    move_one("src memfd MAP_PRIVATE (COWed anon page)", RW, MAP_PRIVATE, RW, 0);
    move_one("src uffd-wp'd present page", RW, PA, RW, 4);
    move_one("src uffd-wp marker (WP_UNPOPULATED)", RW, PA, RW, 5);
    move_one("src poison marker", RW, PA, RW, 7);
    move_one("src == dst (an empty page)", RW, PA, RW, 8);
    move_one("src overlaps dst (pages 9-10 to 8-9)", RW, PA, RW, 9);
    move_one("src pages 17-18 (past the src VMA)", RW, PA, RW, 10);
    /* dst in shmem registered */
    res_reset();
    int fd = fresh(UFFD_FEATURE_MOVE);
    int mfd = shm_memfd("mvd", 2);
    char *d = res_map(8, 2, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    char *s = res_map(16, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    *s = 1;
    uffd_register(fd, d, 2 * P4, UFFDIO_REGISTER_MODE_MISSING, NULL);
    i64 f = F;
    { int e_ = r_move(fd, A(d), A(s), P4, 0, &f); frow("MOVE into memfd MAP_SHARED (MISSING)", e_, "move", f); }
    close(fd);
    close(mfd);
    /* the same mm's other uffd: ctx ownership (a uffd of this mm, not the registering one) */
    res_reset();
}

/* ---- MAP_DROPPABLE ----------------------------------------------------------------- */
static void vmflags(const char *what, const char *p) {
    char *s = thp_slurp("/proc/self/smaps");
    unsigned long a, b;
    char perms[8];
    const char *res = "no VMA";
    char out[128] = "";
    for (char *l = s; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (thp_smaps_header(l, &a, &b, perms) && a <= (uintptr_t)p && (uintptr_t)p < b) {
            char *v = strstr(l, "VmFlags:");
            if (v) {
                v += 8;
                while (*v == ' ') v++;
                size_t n = strcspn(v, "\n");
                if (n > sizeof out - 1) n = sizeof out - 1;
                memcpy(out, v, n);
                while (n && out[n - 1] == ' ') n--;
                out[n] = 0;
                res = out;
            }
            break;
        }
    }
    printf("%s: VmFlags %s\n", what, res);
    free(s);
}

static void droppable(void) {
    printf("== MAP_DROPPABLE\n");
    res_reset();
    void *r = mmap(pg(8), 4 * P4, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("mmap MAP_DROPPABLE|MAP_ANONYMOUS: %s\n", r == MAP_FAILED ? en(errno) : "mapped");
    int mfd = shm_memfd("dp", 1);
    void *r2 = mmap(NULL, P4, PROT_READ | PROT_WRITE, MAP_DROPPABLE, mfd, 0);
    printf("mmap MAP_DROPPABLE of a memfd: %s\n", r2 == MAP_FAILED ? en(errno) : "mapped");
    if (r2 != MAP_FAILED) munmap(r2, P4);
    r2 = mmap(NULL, P4, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    printf("mmap MAP_DROPPABLE|MAP_SHARED|MAP_ANONYMOUS: %s\n", r2 == MAP_FAILED ? en(errno) : "mapped");
    if (r2 != MAP_FAILED) munmap(r2, P4);
    r2 = mmap(NULL, P4, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap MAP_DROPPABLE|MAP_PRIVATE|MAP_ANONYMOUS: %s\n", r2 == MAP_FAILED ? en(errno) : "mapped");
    if (r2 != MAP_FAILED) munmap(r2, P4);
    r2 = mmap(NULL, P4, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
    printf("mmap MAP_DROPPABLE|MAP_GROWSDOWN: %s\n", r2 == MAP_FAILED ? en(errno) : "mapped");
    if (r2 != MAP_FAILED) munmap(r2, P4);
    close(mfd);
    if (r == MAP_FAILED) return;
    char *d = r;
    vmflags("droppable", d);
    d[0] = 'd';
    printf("write+read: %c\n", d[0]);
    printf("  page 0: %s\n", pmx(d));
    int fd = fresh(0);
    static const struct {
        const char *n;
        u64 m;
    } modes[] = { { "MISSING", 1 }, { "WP", 2 }, { "MISSING|WP", 3 }, { "MINOR", 4 }, { "MINOR|WP", 6 }, { "MISSING|WP|MINOR", 7 } };
    for (size_t i = 0; i < 6; i++) {
        char w[64];
        snprintf(w, sizeof w, "REGISTER %s", modes[i].n);
        prow(w, uffd_register(fd, d, 4 * P4, modes[i].m, NULL));
    }
    int fa = fresh(UFFD_FEATURE_WP_ASYNC);
    prow("REGISTER WP with WP_ASYNC", uffd_register(fa, d, 4 * P4, 2, NULL));
    close(fa);
    i64 f = F;
    { int e_ = r_copy(fd, A(d + P4), A(pg(40)), P4, 0, &f); frow("COPY into it", e_, "copy", f); }
    f = F;
    { int e_ = r_zero(fd, A(d + P4), P4, 0, &f); frow("ZEROPAGE into it", e_, "zeropage", f); }
    f = F;
    { int e_ = r_poison(fd, A(d + P4), P4, 0, &f); frow("POISON into it", e_, "updated", f); }
    prow("WRITEPROTECT it", uffd_protect(fd, d, P4));
    prow("UNREGISTER it", uffd_unregister(fd, d, 4 * P4));
    prow("WAKE it", uffd_wake(fd, d, 4 * P4));
    /* half droppable: anon pages 4-7 right after it */
    char *an = res_map(12, 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    an[0] = 'a';
    vmflags("anon after it", an);
    prow("REGISTER WP [droppable 0-3][anon 4-7]", uffd_register(fd, d, 8 * P4, 2, NULL));
    prow("  then WRITEPROTECT anon 4", uffd_protect(fd, an, P4));
    prow("REGISTER WP [droppable 3][anon 4]", uffd_register(fd, d + 3 * P4, 2 * P4, 2, NULL));
    prow("REGISTER WP [anon 4-7]", uffd_register(fd, an, 4 * P4, 2, NULL));
    prow("REGISTER WP [droppable 2-3][anon 4-5] (anon registered)", uffd_register(fd, d + 2 * P4, 4 * P4, 2, NULL));
    prow("UNREGISTER [droppable 3][anon 4]", uffd_unregister(fd, d + 3 * P4, 2 * P4));
    prow("  then WRITEPROTECT anon 4", uffd_protect(fd, an, P4));
    prow("WRITEPROTECT [droppable 3][anon 4]", uffd_protect(fd, d + 3 * P4, 2 * P4));
    prow("WRITEPROTECT [anon 4][hole 8]", uffd_protect(fd, an, 5 * P4));
    f = F;
    { int e_ = r_move(fd, A(an + P4), A(d), P4, 0, &f); frow("MOVE droppable page 0 into anon 5", e_, "move", f); }
    f = F;
    { int e_ = r_move(fd, A(d + P4), A(an), P4, 0, &f); frow("MOVE anon 4 into droppable 1", e_, "move", f); }
    /* a uffd-registered anon VMA turned droppable? mprotect/madvise cannot;
     * MAP_FIXED over a registered range replaces it. */
    void *r3 = mmap(an + 2 * P4, P4, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("MAP_FIXED droppable over registered anon 6: %s\n", r3 == MAP_FAILED ? en(errno) : "mapped");
    prow("  WRITEPROTECT anon 6", uffd_protect(fd, an + 2 * P4, P4));
    prow("  WRITEPROTECT anon 7", uffd_protect(fd, an + 3 * P4, P4));
    struct ab_pm a = pmarg(d, d + 8 * P4);
    scan("PAGEMAP_SCAN [droppable 0-3][anon 4-7]", pm_fd, &a, d);
    /* fork: the child sees droppable memory wiped? */
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        printf("child: droppable page 0 reads %d, anon 4 reads %c\n", d[0], an[0]);
        printf("child: droppable page 0 %s\n", pmx(d));
        pl_flush();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("mlock droppable: %s", mlock(d, P4) < 0 ? en(errno) : "0");
    vmflags(", then", d);
    munlock(d, P4);
    { int r_ = madvise(d, P4, MADV_DONTNEED); const char *s_ = r_ < 0 ? en(errno) : "0"; printf("MADV_DONTNEED droppable: %s, page 0 %s\n", s_, pmx(d)); }
    printf("MADV_WIPEONFORK droppable: %s\n", madvise(d, P4, MADV_WIPEONFORK) < 0 ? en(errno) : "0");
    printf("MADV_KEEPONFORK droppable: %s\n", madvise(d, P4, MADV_KEEPONFORK) < 0 ? en(errno) : "0");
    printf("MADV_DONTFORK droppable: %s\n", madvise(d, P4, MADV_DONTFORK) < 0 ? en(errno) : "0");
    close(fd);
    res_reset();
}

/* ---- PAGEMAP_SCAN boundaries ---------------------------------------------------- */
static void pm_bounds(void) {
    printf("== PAGEMAP_SCAN boundaries\n");
    res_reset();
    char *p = res_map(8, 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    p[0] = 1;
    p[2 * P4] = 1;
    struct ab_pm a;
    a = pmarg(p, p + 8 * P4);
    scan("baseline pages 0-7", pm_fd, &a, p);
    a = pmarg(p, p + 8 * P4);
    a.max_pages = ~0ull;
    scan("max_pages ~0", pm_fd, &a, p);
    a = pmarg(p, p + 8 * P4);
    a.max_pages = 1ull << 63;
    scan("max_pages 1<<63", pm_fd, &a, p);
    a = pmarg(p, p + 8 * P4);
    a.inv = 0x1ff, a.mask = 0, a.anyof = 0x1ff;
    scan("inverted 0x1ff anyof 0x1ff", pm_fd, &a, p);
    a = pmarg(p, p + 8 * P4);
    a.mask = 0x1ff;
    scan("mask 0x1ff", pm_fd, &a, p);
    a = pmarg(p, p + 8 * P4);
    a.anyof = 0x1ff;
    scan("anyof 0x1ff", pm_fd, &a, p);
    a = pmarg(p, p + 8 * P4);
    a.ret = 0x100;
    scan("return_mask GUARD only", pm_fd, &a, p);
    a = pmarg(p, p + 8 * P4);
    a.vec_len = 1ull << 32;
    {
        struct ab_region v[4];
        a.vec = A(v) + 1; /* misaligned vec */
        a.vec_len = 3;
        long r = ioctl(pm_fd, AB_PAGEMAP_SCAN, &a);
        printf("vec misaligned by 1: %s\n", r < 0 ? en(errno) : r == 3 ? "3" : "other");
    }
    a = pmarg(p, p + 8 * P4);
    {
        /* vec_len 3, the third entry in the PROT_NONE page 31 */
        res_map(30, 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        struct ab_region *v = (struct ab_region *)(pg(31) - 2 * sizeof(struct ab_region));
        v[0].start = v[1].start = 7;
        a.vec = A(v);
        a.vec_len = 3;
        a.walk_end = 0x5a5a;
        long r = ioctl(pm_fd, AB_PAGEMAP_SCAN, &a);
        int e = errno;
        printf("vec_len 3, entry 2 unmapped: %s walk_end %ld, entry 0 %ld-%ld entry 1 %ld-%ld\n", r < 0 ? en(e) : "ok",
               a.walk_end == 0x5a5a ? -1 : (long)((a.walk_end - A(p)) / P4), (long)((v[0].start - A(p)) / P4),
               (long)((v[0].end - A(p)) / P4), (long)((v[1].start - A(p)) / P4), (long)((v[1].end - A(p)) / P4));
        a = pmarg(p, p + 2 * P4);
        a.vec = A(v);
        a.vec_len = 3;
        r = ioctl(pm_fd, AB_PAGEMAP_SCAN, &a);
        printf("vec_len 3, entry 2 unmapped, two regions to report: %s\n", r < 0 ? en(errno) : r == 2 ? "2" : "other");
    }
    a = pmarg((void *)(uintptr_t)TASK, (void *)(uintptr_t)TASK);
    scan("start == end == TASK_SIZE", pm_fd, &a, p);
    a = pmarg((void *)(uintptr_t)(TASK - P4), (void *)(uintptr_t)TASK);
    scan("start TASK_SIZE-4096 end TASK_SIZE", pm_fd, &a, p);
    a = pmarg((void *)0, (void *)(uintptr_t)P4);
    scan("start 0 end 4096", pm_fd, &a, p);
    a = pmarg((void *)(uintptr_t)A(p), (void *)(uintptr_t)~0ull);
    scan("end ~0", pm_fd, &a, p);
    a = pmarg((void *)(uintptr_t)A(p), (void *)(uintptr_t)(A(p) + 8 * P4));
    a.size = 96 + 0x100000000ull;
    scan("size 96+1<<32", pm_fd, &a, p);
    a = pmarg(p, p + 8 * P4);
    a.flags = 1ull << 2;
    scan("flags 4", pm_fd, &a, p);
    a = pmarg(p, p + 8 * P4);
    a.vec = 0;
    a.vec_len = 0xfeed; /* becomes 0: vec NULL vec_len 0 */
    a.max_pages = 1;
    scan("vec NULL, vec_len 0, max_pages 1, flags 0", pm_fd, &a, p);
    {
        struct ab_pm z;
        memset(&z, 0, sizeof z);
        z.size = 96;
        long r = ioctl(pm_fd, AB_PAGEMAP_SCAN, &z);
        printf("all fields 0 but size: %s walk_end %llu\n", r < 0 ? en(errno) : "0", (unsigned long long)z.walk_end);
        r = ioctl(pm_fd, _IOR('f', 16, struct ab_pm), &z);
        printf("_IOR 'f' 16: %s\n", r < 0 ? en(errno) : "0");
        r = ioctl(pm_fd, _IO('f', 16), &z);
        printf("_IO 'f' 16: %s\n", r < 0 ? en(errno) : "0");
        r = ioctl(pm_fd, _IOWR('f', 16, struct ab_region), &z);
        printf("_IOWR 'f' 16 size 24: %s\n", r < 0 ? en(errno) : "0");
    }
    int wr = open("/proc/self/pagemap", O_WRONLY | O_CLOEXEC);
    printf("open pagemap O_WRONLY: %s\n", wr < 0 ? en(errno) : "fd");
    if (wr >= 0) {
        a = pmarg(p, p + 8 * P4);
        scan("  PAGEMAP_SCAN on it", wr, &a, p);
        close(wr);
    }
    /* a child's pagemap after the child exited */
    int go[2];
    if (pipe(go)) exit(2);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1) _exit(1);
        _exit(0);
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/pagemap", pid);
    int cfd = open(path, O_RDONLY | O_CLOEXEC);
    a = pmarg(p, p + 8 * P4);
    scan("live child's pagemap", cfd, &a, p);
    if (write(go[1], "g", 1) != 1) exit(2);
    int st;
    waitpid(pid, &st, 0);
    a = pmarg(p, p + 8 * P4);
    scan("exited child's pagemap", cfd, &a, p);
    u64 e;
    printf("  pread on it: %s\n", pread(cfd, &e, 8, (off_t)(A(p) / P4 * 8)) < 0 ? en(errno) : "data");
    close(cfd);
    close(go[0]);
    close(go[1]);
    res_reset();
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    B = shm_reserve(NRES * P4);
    ab_catch();
    if (pipe2(pipe_rw, O_NONBLOCK | O_CLOEXEC)) return 2;
    pm_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    printf("mmap_min_addr %ld\n", (long)readl("/proc/sys/vm/mmap_min_addr"));
    api();
    numbers();
    range_table();
    mode_bits();
    out_fields();
    dead_mm();
    printf("== UFFDIO_POISON on every backing\n");
    for (int k = 0; k < 4; k++) poison_backing(k);
    poison_regs();
    move_matrix();
    droppable();
    pm_bounds();
    printf("done\n");
    return 0;
}
