// pagelab: cflags=-pthread
// PAGEMAP_SCAN (the ioctl on /proc/PID/pagemap, issue 11; reference 5.15)
// together with UFFD_FEATURE_WP_ASYNC: the errno table and its order of
// checks (what is written back on an error), the categories of every kind
// of page (async-WP anon: marker, none PTE, hole without a page table,
// present protected/written, zero page, THP, huge zero PMD; unregistered
// anon; shmem and private memfd; guard markers), how category_mask,
// category_inverted, category_anyof_mask and return_mask combine, merging,
// truncation by vec_len and max_pages (return value, walk_end), and
// PM_SCAN_WP_MATCHING (re-protects what it reports, holes get markers, a
// whole THP stays huge, a part splits it).
// Output: regions as "lo-hi:0xCATS" (page indexes relative to the 2 MiB-
// aligned base of the region under test), walk_end as a page index, errnos
// by name; walk_end pre-set to 1234 pages ("not written back"), vec entries
// pre-set to a sentinel (only entries the kernel wrote are printed).
#define _GNU_SOURCE
#include "thp.h"
#include <sys/wait.h>

/* The scan macros give defaults a case may override (the last initializer wins). */
#pragma GCC diagnostic ignored "-Woverride-init"

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING 1ull
#define PM_SCAN_CHECK_WPASYNC 2ull

#define C_WPALLOWED 0x1ull
#define C_WRITTEN 0x2ull
#define C_FILE 0x4ull
#define C_PRESENT 0x8ull
#define C_SWAPPED 0x10ull
#define C_PFNZERO 0x20ull
#define C_HUGE 0x40ull
#define C_SOFT_DIRTY 0x80ull
#define C_GUARD 0x100ull
#define C_ALL 0x1ffull

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif

struct pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
        category_anyof_mask, return_mask;
};
struct page_region {
    uint64_t start, end, categories;
};
_Static_assert(sizeof(struct pm_scan_arg) == 96, "pm_scan_arg");

#define NVEC 64
#define SENT 0x5e5e5e5e5e5e5e5eull
#define WSENT 1234

static int pfd;           /* /proc/self/pagemap */
static char *cur;         /* base of the region under test */
static struct page_region vec[NVEC];

struct q {
    uint64_t flags;
    long lo, hi;          /* pages relative to cur */
    uint64_t mask, inv, anyof, ret;
    uint64_t max_pages;
    long vec_len;         /* -1: NVEC */
    int vec_null;
};

static void pidx(uint64_t a) {
    long d = (long)((int64_t)(a - (uintptr_t)cur));
    /* The top of the user address space is printed as such: its distance from the
     * region depends on the address layout (pagelab maps just below the stack). */
    if (a == 0x7ffffffff000ull || a >= (1ull << 47)) printf("abs %#llx", (unsigned long long)a);
    else if (d % (long)UPAGE == 0 && d > -(1l << 32) && d < (1l << 32)) printf("%ld", d / (long)UPAGE);
    else if (a == WSENT * UPAGE + (uintptr_t)cur) printf("unwritten");
    else printf("abs %#llx", (unsigned long long)a);
}

/* Runs a scan on `fd` with an explicit struct and prints the outcome. */
static long run_arg(const char *what, int fd, struct pm_scan_arg *a, struct page_region *v, long nv) {
    for (long i = 0; i < nv; i++) v[i] = (struct page_region){ SENT, SENT, SENT };
    a->walk_end = (uintptr_t)cur + WSENT * UPAGE;
    long r = ioctl(fd, PAGEMAP_SCAN, a);
    int e = errno;
    printf("%s: ", what);
    if (r < 0) printf("%s", shm_err(e));
    else printf("%ld", r);
    printf(" walk_end ");
    if (a->walk_end == (uintptr_t)cur + WSENT * UPAGE) printf("unwritten");
    else pidx(a->walk_end);
    for (long i = 0; i < nv && v[i].start != SENT; i++) {
        printf(" ");
        pidx(v[i].start);
        printf("-");
        pidx(v[i].end);
        printf(":%#llx", (unsigned long long)v[i].categories);
    }
    printf("\n");
    return r < 0 ? -e : r;
}

static long scan_fd(const char *what, int fd, struct q q) {
    struct pm_scan_arg a = {
        .size = sizeof a, .flags = q.flags,
        .start = (uintptr_t)cur + q.lo * UPAGE, .end = (uintptr_t)cur + q.hi * UPAGE,
        .vec = q.vec_null ? 0 : (uintptr_t)vec,
        .vec_len = q.vec_len < 0 ? NVEC : (uint64_t)q.vec_len,
        .max_pages = q.max_pages, .category_inverted = q.inv, .category_mask = q.mask,
        .category_anyof_mask = q.anyof, .return_mask = q.ret,
    };
    return run_arg(what, fd, &a, vec, NVEC);
}

static long scan(const char *what, struct q q) {
    return scan_fd(what, pfd, q);
}

/* The whole of [lo, hi) with every category returned. */
static void full(const char *what, long lo, long hi) {
    scan(what, (struct q){ .lo = lo, .hi = hi, .ret = C_ALL, .vec_len = -1 });
}

static void section(const char *s) {
    printf("== %s\n", s);
}

static void wr(char *p, long i) {
    *(volatile char *)(p + i * UPAGE) = 'w';
}
static void rd(char *p, long i) {
    (void)*(volatile char *)(p + i * UPAGE);
}

/* Pagemap bit 57 of pages [lo, hi) of cur as a row of 0/1. */
static void wprow(const char *what, long lo, long hi) {
    printf("%s wp:", what);
    for (long i = lo; i < hi; i++) printf("%d", uffd_pm_wp(cur + i * UPAGE));
    printf("\n");
}

static void raw(const char *what, long i) {
    uint64_t e = uffd_pagemap(cur + i * UPAGE);
    char b[64];
    if (e & PM_PRESENT) printf("%s: %s\n", what, uffd_pm_str(e, b, sizeof b));
    else printf("%s: raw %#llx\n", what, (unsigned long long)e);
}

static int async_fd(void) {
    return uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_WP_ASYNC);
}

static void reg_wp(int fd, char *p, long pages) {
    int e = uffd_register(fd, p, pages * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    if (e) printf("register: %s\n", uffd_err(-e));
}

static void prot(int fd, long lo, long hi) {
    int e = uffd_protect(fd, cur + lo * UPAGE, (hi - lo) * UPAGE);
    if (e) printf("protect %ld-%ld: %s\n", lo, hi, uffd_err(-e));
}

/* ---- 1. errnos --------------------------------------------------------- */

static void errnos(void) {
    section("errnos");
    int fd = async_fd();
    char *p = shm_map_anon(8);
    cur = p;
    reg_wp(fd, p, 8);
    wr(p, 0);
    wr(p, 1);
    prot(fd, 0, 8);
    wr(p, 1);
    struct pm_scan_arg base = { .size = 96, .start = (uintptr_t)p, .end = (uintptr_t)p + 8 * UPAGE,
                                .vec = (uintptr_t)vec, .vec_len = NVEC, .return_mask = C_ALL };
    struct pm_scan_arg a;
#define TRY(what, stmt)                                                                                  \
    do {                                                                                                 \
        a = base;                                                                                        \
        stmt;                                                                                            \
        run_arg(what, pfd, &a, vec, NVEC);                                                               \
    } while (0)
    TRY("valid", (void)0);
    TRY("size 0", a.size = 0);
    TRY("size 95", a.size = 95);
    TRY("size 97", a.size = 97);
    TRY("size 192", a.size = 192);
    TRY("flags 4", a.flags = 4);
    TRY("flags 1<<63", a.flags = 1ull << 63);
    TRY("flags 3 (both; re-protects page 1)", a.flags = 3);
    TRY("category_inverted 0x200", a.category_inverted = 0x200);
    TRY("category_mask 0x200", a.category_mask = 0x200);
    TRY("category_anyof_mask 0x200", a.category_anyof_mask = 0x200);
    TRY("return_mask 0x200", a.return_mask = 0x200);
    TRY("return_mask 1<<63", a.return_mask = 1ull << 63);
    TRY("return_mask 0", a.return_mask = 0);
    TRY("start +1", a.start += 1);
    TRY("start +2048", a.start += 2048);
    TRY("end +1 (page 8 + 1)", a.end += 1);
    TRY("end -1 (page 8 - 1)", a.end -= 1);
    TRY("end = start + 1", a.end = a.start + 1);
    TRY("end < start", a.end = a.start - UPAGE);
    TRY("end < start, start unaligned", (a.end = a.start - UPAGE, a.start += 1));
    TRY("start == end", a.end = a.start);
    TRY("start == end, vec NULL vec_len 1", (a.end = a.start, a.vec = 0, a.vec_len = 1));
    TRY("vec NULL vec_len 1", (a.vec = 0, a.vec_len = 1));
    TRY("vec NULL vec_len 0", (a.vec = 0, a.vec_len = 0));
    TRY("vec set vec_len 0", a.vec_len = 0);
    TRY("vec NULL vec_len 1, end < start", (a.vec = 0, a.vec_len = 1, a.end = a.start - UPAGE));
    TRY("vec NULL vec_len 1, size 95", (a.vec = 0, a.vec_len = 1, a.size = 95));
    TRY("vec NULL vec_len 1, flags 4", (a.vec = 0, a.vec_len = 1, a.flags = 4));
    TRY("vec unmapped (PROT_NONE), vec_len 4", (a.vec = (uintptr_t)p - UPAGE, a.vec_len = 4));
    TRY("vec unmapped, nothing to report", (a.vec = (uintptr_t)p - UPAGE, a.vec_len = 4, a.category_mask = C_HUGE));
    TRY("vec 1<<47", (a.vec = 1ull << 47, a.vec_len = 1));
    TRY("vec near 1<<47, vec_len huge", (a.vec = (1ull << 47) - UPAGE, a.vec_len = 1ull << 40));
    TRY("vec_len 1<<60", a.vec_len = 1ull << 60);
    TRY("vec_len ~0", a.vec_len = ~0ull);
    TRY("end (1<<47)-4096, vec NULL", (a.vec = 0, a.vec_len = 0, a.end = (1ull << 47) - UPAGE));
    TRY("end 1<<47, vec NULL", (a.vec = 0, a.vec_len = 0, a.end = 1ull << 47));
    TRY("end (1<<47)+4096, vec NULL", (a.vec = 0, a.vec_len = 0, a.end = (1ull << 47) + UPAGE));
    TRY("start (1<<47)-4096, end 1<<47", (a.start = (1ull << 47) - UPAGE, a.end = 1ull << 47));
    TRY("start 1<<47, end +4096", (a.start = 1ull << 47, a.end = (1ull << 47) + UPAGE));
    TRY("start 1<<63, end +4096", (a.start = 1ull << 63, a.end = (1ull << 63) + UPAGE));
    TRY("start 0, end page 0, mask WPALLOWED", (a.start = 0, a.category_mask = C_WPALLOWED, a.end = (uintptr_t)p));
    TRY("max_pages 0 (unlimited)", a.max_pages = 0);

    /* The arg pointer itself. */
    errno = 0;
    long r = ioctl(pfd, PAGEMAP_SCAN, NULL);
    printf("arg NULL: %s\n", r < 0 ? shm_err(errno) : "ok");
    r = ioctl(pfd, PAGEMAP_SCAN, p - UPAGE);
    printf("arg unmapped: %s\n", r < 0 ? shm_err(errno) : "ok");
    char *ro = shm_map_anon(1);
    memcpy(ro, &base, sizeof base);
    mprotect(ro, UPAGE, PROT_READ);
    for (long i = 0; i < NVEC; i++) vec[i] = (struct page_region){ SENT, SENT, SENT };
    r = ioctl(pfd, PAGEMAP_SCAN, ro);
    printf("arg read-only: %s, vec %s\n", r < 0 ? shm_err(errno) : "ok", vec[0].start == SENT ? "unwritten" : "written");
    /* Output vector read-only: access_ok passes, copy_to_user fails. */
    TRY("vec read-only", (a.vec = (uintptr_t)ro, a.vec_len = 4));
    munmap(ro, UPAGE);
    r = ioctl(pfd, _IOWR('f', 17, struct pm_scan_arg), &base);
    printf("ioctl 'f' 17: %s\n", r < 0 ? shm_err(errno) : "ok");
    r = ioctl(pfd, _IOW('f', 16, struct pm_scan_arg), &base);
    printf("ioctl _IOW 'f' 16: %s\n", r < 0 ? shm_err(errno) : "ok");
    int mfd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    r = ioctl(mfd, PAGEMAP_SCAN, &base);
    printf("PAGEMAP_SCAN on /proc/self/maps: %s\n", r < 0 ? shm_err(errno) : "ok");
    close(mfd);

    /* WP-async capability. */
    char *plain = shm_map_anon(4);
    wr(plain, 0);
    char *q = cur;
    cur = plain;
    struct pm_scan_arg pb = { .size = 96, .start = (uintptr_t)plain, .end = (uintptr_t)plain + 4 * UPAGE,
                              .vec = (uintptr_t)vec, .vec_len = NVEC, .return_mask = C_ALL };
    base = pb;
    TRY("unregistered: plain", (void)0);
    TRY("unregistered: CHECK_WPASYNC", a.flags = PM_SCAN_CHECK_WPASYNC);
    TRY("unregistered: WP_MATCHING", a.flags = PM_SCAN_WP_MATCHING);
    TRY("unregistered: WP_MATCHING|CHECK_WPASYNC", a.flags = 3);
    TRY("unregistered: CHECK_WPASYNC, vec unmapped", (a.flags = 2, a.vec = (uintptr_t)p - UPAGE));
    TRY("unregistered: CHECK_WPASYNC, start == end", (a.flags = 2, a.end = a.start));
    int sfd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    reg_wp(sfd, plain, 4);
    TRY("sync WP: plain", (void)0);
    TRY("sync WP: CHECK_WPASYNC", a.flags = PM_SCAN_CHECK_WPASYNC);
    TRY("sync WP: WP_MATCHING", a.flags = PM_SCAN_WP_MATCHING);
    close(sfd);
    int mfd2 = async_fd();
    int e = uffd_register(mfd2, plain, 4 * UPAGE, UFFDIO_REGISTER_MODE_MISSING, NULL);
    printf("async ctx, MISSING-only register: %s\n", uffd_err(-e));
    TRY("async MISSING-only: plain", (void)0);
    TRY("async MISSING-only: CHECK_WPASYNC", a.flags = PM_SCAN_CHECK_WPASYNC);
    close(mfd2);
    wprow("plain after WP_MATCHING scans", 0, 4);
    cur = q;

    /* A scan over [async VMA, unregistered VMA): the walk fails at the
     * second VMA; what has been found before is written out. */
    char *two = shm_reserve(16 * UPAGE);
    mmap(two, 8 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    mmap(two + 8 * UPAGE, 8 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    cur = two;
    reg_wp(fd, two, 4);
    prot(fd, 0, 4);
    wr(two, 1);
    wr(two, 6);
    base = (struct pm_scan_arg){ .size = 96, .start = (uintptr_t)two, .end = (uintptr_t)two + 8 * UPAGE,
                                 .vec = (uintptr_t)vec, .vec_len = NVEC, .return_mask = C_ALL };
    TRY("[async, unregistered): plain", (void)0);
    TRY("[async, unregistered): CHECK_WPASYNC", a.flags = 2);
    TRY("[async, unregistered): WP_MATCHING, mask WRITTEN", (a.flags = 1, a.category_mask = C_WRITTEN));
    TRY("[async, unregistered): CHECK_WPASYNC, vec unmapped", (a.flags = 2, a.vec = (uintptr_t)two - UPAGE));
    TRY("[async, unregistered): CHECK_WPASYNC, max_pages 1", (a.flags = 2, a.max_pages = 1));
    TRY("[async, unregistered): CHECK_WPASYNC, vec_len 1", (a.flags = 2, a.vec_len = 1));
    munmap(two, 16 * UPAGE);

    /* Another process's pagemap. */
    cur = p;
    int go[2], done[2];
    if (pipe(go) || pipe(done)) exit(3);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        wr(p, 3);
        if (write(done[1], "x", 1) != 1 || read(go[0], &c, 1) != 1) _exit(1);
        _exit(0);
    }
    char c;
    if (read(done[0], &c, 1) != 1) exit(3);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/pagemap", (int)pid);
    int cfd = open(path, O_RDONLY | O_CLOEXEC);
    scan_fd("child: plain", cfd, (struct q){ .lo = 0, .hi = 8, .ret = C_ALL, .vec_len = -1 });
    scan_fd("child: CHECK_WPASYNC", cfd, (struct q){ .flags = 2, .lo = 0, .hi = 8, .ret = C_ALL, .vec_len = -1 });
    scan_fd("child: WP_MATCHING", cfd, (struct q){ .flags = 1, .lo = 0, .hi = 8, .ret = C_ALL, .vec_len = -1 });
    full("parent (same range)", 0, 8);
    if (write(go[1], "x", 1) != 1) exit(3);
    int st;
    waitpid(pid, &st, 0);
    close(cfd);
    close(go[0]);
    close(go[1]);
    close(done[0]);
    close(done[1]);
    munmap(plain, 4 * UPAGE);
    munmap(p, 8 * UPAGE);
    close(fd);
#undef TRY
}

/* ---- 2. categories ------------------------------------------------------- */

/* A 3-PMD private anonymous region (no THP): PMD 0 protected with every kind
 * of 4 KiB page, PMD 1 a page table with one page, PMD 2 no page table. */
static char *anon_kinds(int fd) {
    char *p = thp_map(3 * THP_NR, MADV_NOHUGEPAGE);
    cur = p;
    if (fd >= 0) reg_wp(fd, p, 3 * THP_NR);
    wr(p, 0);  /* present, protected */
    wr(p, 2);  /* present, protected, written after */
    rd(p, 4);  /* zero page, protected */
    rd(p, 5);  /* zero page, protected, written after (COW) */
    wr(p, 6);  /* present, protected, then DONTNEED: none PTE */
    wr(p, 512 + 2);
    if (fd >= 0) prot(fd, 0, 512);
    wr(p, 2);
    wr(p, 5);
    madvise(p + 6 * UPAGE, UPAGE, MADV_DONTNEED);
    rd(p, 8);  /* a marker read: zero page, wp'd */
    rd(p, 9);  /* marker read then write */
    wr(p, 9);
    wr(p, 10); /* marker written */
    return p;
}

static void categories(void) {
    section("categories: async-WP private anonymous");
    printf("pages: 0 written+protected, 2 protected+written, 4 zero protected, 5 zero protected+written, "
           "6 DONTNEED after protect, 8 marker read, 9 marker read+written, 10 marker written, 11-511 markers; "
           "PMD 1 (protected: no) page 514 written; PMD 2 no table\n");
    int fd = async_fd();
    char *p = anon_kinds(fd);
    full("full", 0, 3 * 512);
    raw("page 6", 6);
    raw("page 11", 11);
    raw("page 513", 513);
    scan("fast path (mask=ret=WRITTEN)", (struct q){ .lo = 0, .hi = 3 * 512, .mask = C_WRITTEN, .ret = C_WRITTEN, .vec_len = -1 });
    scan("mask WRITTEN, ret WRITTEN|WPALLOWED", (struct q){ .lo = 0, .hi = 3 * 512, .mask = C_WRITTEN, .ret = C_WRITTEN | C_WPALLOWED, .vec_len = -1 });
    munmap(p, 3 * THP_SIZE);

    section("categories: unregistered private anonymous");
    p = anon_kinds(-1);
    full("full", 0, 3 * 512);
    munmap(p, 3 * THP_SIZE);

    section("categories: same kinds, registered, never protected");
    p = thp_map(3 * THP_NR, MADV_NOHUGEPAGE);
    cur = p;
    reg_wp(fd, p, 3 * THP_NR);
    wr(p, 0);
    rd(p, 1);
    wr(p, 512 + 2);
    full("full", 0, 3 * 512);
    munmap(p, 3 * THP_SIZE);

    section("categories: THP");
    p = thp_map(2 * THP_NR, MADV_HUGEPAGE);
    cur = p;
    reg_wp(fd, p, 2 * THP_NR);
    wr(p, 0);
    thp_require(p, THP_NR, 2048);
    rd(p, 512);
    full("written THP, huge zero PMD", 0, 1024);
    prot(fd, 0, 1024);
    full("both protected", 0, 1024);
    printf("AnonHugePages %ld kB\n", thp_anon_huge_kb(p, 1024));
    wr(p, 7);
    wr(p, 512 + 3);
    full("after writing pages 7 and 515", 0, 1024);
    printf("AnonHugePages %ld kB\n", thp_anon_huge_kb(p, 1024));
    munmap(p, 2 * THP_SIZE);
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    wr(p, 0);
    full("unregistered THP", 0, 512);
    full("unregistered THP, pages 3-10", 3, 10);
    munmap(p, THP_SIZE);

    section("categories: MAP_SHARED memfd, async WP");
    int mfd = shm_memfd("pmscan", 8);
    if (pwrite(mfd, "c", 1, 1 * UPAGE) != 1) printf("pwrite failed\n");
    p = shm_map(mfd, 8, MAP_SHARED);
    cur = p;
    reg_wp(fd, p, 8);
    printf("pages: 0 written+protected, 1 cached not mapped, 2 a hole, 3 protected+written, 4 protected+read (hole), 5 read+protected\n");
    wr(p, 0);
    rd(p, 5);
    prot(fd, 0, 8);
    wr(p, 3);
    rd(p, 4);
    full("full", 0, 8);
    scan("ret without FILE", (struct q){ .lo = 0, .hi = 8, .ret = C_ALL & ~C_FILE, .vec_len = -1 });
    scan("mask FILE", (struct q){ .lo = 0, .hi = 8, .mask = C_FILE, .ret = C_ALL, .vec_len = -1 });
    scan("inverted FILE, mask FILE", (struct q){ .lo = 0, .hi = 8, .inv = C_FILE, .mask = C_FILE, .ret = C_ALL, .vec_len = -1 });
    munmap(p, 8 * UPAGE);
    p = shm_map(mfd, 8, MAP_SHARED);
    cur = p;
    rd(p, 0);
    wr(p, 1);
    full("unregistered MAP_SHARED memfd, 0 read, 1 written", 0, 8);
    munmap(p, 8 * UPAGE);

    section("categories: MAP_PRIVATE memfd, async WP");
    p = shm_map(mfd, 8, MAP_PRIVATE);
    cur = p;
    int e = uffd_register(fd, p, 8 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    printf("register: %s\n", uffd_err(-e));
    printf("pages: 0 read (cache), 1 written (COW) before protect, 2 hole, 3 read after protect, 4 written after protect\n");
    rd(p, 0);
    wr(p, 1);
    prot(fd, 0, 8);
    rd(p, 3);
    wr(p, 4);
    full("full", 0, 8);
    munmap(p, 8 * UPAGE);
    close(mfd);
    close(fd);
}

/* ---- 3. masks ------------------------------------------------------------- */

static void masks(void) {
    section("masks");
    int fd = async_fd();
    char *p = thp_map(16, MADV_NOHUGEPAGE);
    cur = p;
    reg_wp(fd, p, 16);
    /* 0-1 protected present, 2-3 written, 4 zero wp, 5 marker, 6-7 written, 8 zero, 9-15 markers */
    wr(p, 0);
    wr(p, 1);
    rd(p, 4);
    prot(fd, 0, 16);
    wr(p, 2);
    wr(p, 3);
    wr(p, 6);
    wr(p, 7);
    rd(p, 8);
    full("all", 0, 16);
#define M(what, ...) scan(what, (struct q){ .lo = 0, .hi = 16, .vec_len = -1, __VA_ARGS__ })
    M("mask WRITTEN ret all", .mask = C_WRITTEN, .ret = C_ALL);
    M("inverted WRITTEN mask WRITTEN ret all", .inv = C_WRITTEN, .mask = C_WRITTEN, .ret = C_ALL);
    M("inverted WRITTEN mask 0 ret all", .inv = C_WRITTEN, .ret = C_ALL);
    M("inverted WRITTEN mask WRITTEN ret WRITTEN", .inv = C_WRITTEN, .mask = C_WRITTEN, .ret = C_WRITTEN);
    M("mask PRESENT ret PRESENT (merging)", .mask = C_PRESENT, .ret = C_PRESENT);
    M("mask PRESENT ret PRESENT|WRITTEN", .mask = C_PRESENT, .ret = C_PRESENT | C_WRITTEN);
    M("mask PRESENT|WRITTEN ret all", .mask = C_PRESENT | C_WRITTEN, .ret = C_ALL);
    M("anyof PFNZERO|SWAPPED ret all", .anyof = C_PFNZERO | C_SWAPPED, .ret = C_ALL);
    M("anyof PFNZERO|SWAPPED mask WRITTEN ret all", .anyof = C_PFNZERO | C_SWAPPED, .mask = C_WRITTEN, .ret = C_ALL);
    M("anyof PRESENT inverted PRESENT ret all", .anyof = C_PRESENT, .inv = C_PRESENT, .ret = C_ALL);
    M("anyof HUGE ret all", .anyof = C_HUGE, .ret = C_ALL);
    M("ret 0", .ret = 0);
    M("ret 0 mask PRESENT", .ret = 0, .mask = C_PRESENT);
    M("ret WPALLOWED", .ret = C_WPALLOWED);
    M("mask WPALLOWED ret all", .mask = C_WPALLOWED, .ret = C_ALL);
    M("inverted WPALLOWED mask WPALLOWED ret all", .inv = C_WPALLOWED, .mask = C_WPALLOWED, .ret = C_ALL);
    M("inverted all mask 0 ret all", .inv = C_ALL, .ret = C_ALL);
    M("inverted GUARD mask GUARD ret all", .inv = C_GUARD, .mask = C_GUARD, .ret = C_ALL);
    M("mask SOFT_DIRTY ret all", .mask = C_SOFT_DIRTY, .ret = C_ALL);
#undef M
    munmap(p, 16 * UPAGE);
    close(fd);
}

/* ---- 4. truncation -------------------------------------------------------- */

static void truncation(void) {
    section("truncation");
    int fd = async_fd();
    char *p = thp_map(16, MADV_NOHUGEPAGE);
    cur = p;
    reg_wp(fd, p, 16);
    prot(fd, 0, 16);
    /* runs: 0-1 marker, 1-4 written, 4-5 marker, 5-7 written, 7-16 markers */
    wr(p, 1);
    wr(p, 2);
    wr(p, 3);
    wr(p, 5);
    wr(p, 6);
    full("all", 0, 16);
#define T(what, ...) scan(what, (struct q){ .lo = 0, .hi = 16, __VA_ARGS__ })
    T("vec_len 1", .vec_len = 1, .ret = C_ALL);
    T("vec_len 2", .vec_len = 2, .ret = C_ALL);
    T("vec_len 5 (exactly enough)", .vec_len = 5, .ret = C_ALL);
    T("vec_len 1 mask WRITTEN", .vec_len = 1, .mask = C_WRITTEN, .ret = C_ALL);
    T("vec_len 1 fast path", .vec_len = 1, .mask = C_WRITTEN, .ret = C_WRITTEN);
    T("max_pages 1", .vec_len = -1, .max_pages = 1, .ret = C_ALL);
    T("max_pages 2", .vec_len = -1, .max_pages = 2, .ret = C_ALL);
    T("max_pages 3", .vec_len = -1, .max_pages = 3, .ret = C_ALL);
    T("max_pages 4 (ends a run)", .vec_len = -1, .max_pages = 4, .ret = C_ALL);
    T("max_pages 16 (all)", .vec_len = -1, .max_pages = 16, .ret = C_ALL);
    T("max_pages 17", .vec_len = -1, .max_pages = 17, .ret = C_ALL);
    T("max_pages 1 mask WRITTEN", .vec_len = -1, .max_pages = 1, .mask = C_WRITTEN, .ret = C_ALL);
    T("max_pages 3 mask WRITTEN (ends a run)", .vec_len = -1, .max_pages = 3, .mask = C_WRITTEN, .ret = C_ALL);
    T("max_pages 5 mask WRITTEN (ends the last match)", .vec_len = -1, .max_pages = 5, .mask = C_WRITTEN, .ret = C_ALL);
    T("max_pages 4 mask WRITTEN", .vec_len = -1, .max_pages = 4, .mask = C_WRITTEN, .ret = C_ALL);
    T("max_pages 3 fast path", .vec_len = -1, .max_pages = 3, .mask = C_WRITTEN, .ret = C_WRITTEN);
    T("max_pages 2 vec_len 1", .vec_len = 1, .max_pages = 2, .ret = C_ALL);
    T("max_pages 1 vec NULL", .vec_null = 1, .vec_len = 0, .max_pages = 1, .ret = C_ALL);
    T("max_pages 1 vec_len 0", .vec_len = 0, .max_pages = 1, .ret = C_ALL);
#undef T
    munmap(p, 16 * UPAGE);

    /* A THP cut by max_pages and by the range end (no WP_MATCHING). */
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    reg_wp(fd, p, THP_NR);
    wr(p, 0);
    thp_require(p, THP_NR, 2048);
    scan("THP max_pages 3", (struct q){ .lo = 0, .hi = 512, .ret = C_ALL, .vec_len = -1, .max_pages = 3 });
    scan("THP pages 5-9", (struct q){ .lo = 5, .hi = 9, .ret = C_ALL, .vec_len = -1 });
    printf("AnonHugePages %ld kB\n", thp_anon_huge_kb(p, THP_NR));
    munmap(p, THP_SIZE);

    /* More regions than the kernel's bounce buffer (512 entries). */
    p = thp_map(2048, MADV_NOHUGEPAGE);
    cur = p;
    reg_wp(fd, p, 2048);
    prot(fd, 0, 2048);
    for (long i = 0; i < 2048; i += 2) wr(p, i);
    static struct page_region big[1100];
    struct pm_scan_arg a = { .size = 96, .start = (uintptr_t)p, .end = (uintptr_t)p + 2048 * UPAGE,
                             .vec = (uintptr_t)big, .vec_len = 1100, .return_mask = C_ALL };
    for (long i = 0; i < 1100; i++) big[i] = (struct page_region){ SENT, SENT, SENT };
    long r = ioctl(pfd, PAGEMAP_SCAN, &a);
    long ok = 0, filled = 0;
    for (long i = 0; i < 1100; i++) {
        if (big[i].start == SENT) break;
        filled++;
        uint64_t want_c = i % 2 ? 0x11 : 0xb;
        if (big[i].start == (uintptr_t)p + i * UPAGE && big[i].end == big[i].start + UPAGE && big[i].categories == want_c) ok++;
    }
    printf("2048 alternating pages, vec_len 1100: %ld walk_end ", r);
    pidx(a.walk_end);
    printf(" filled %ld as expected %ld\n", filled, ok);
    munmap(p, 2048 * UPAGE);
    close(fd);
}

/* ---- 5. WP_MATCHING ------------------------------------------------------- */

static void wp_matching(void) {
    section("WP_MATCHING");
    int fd = async_fd();
    char *p = thp_map(16, MADV_NOHUGEPAGE);
    cur = p;
    reg_wp(fd, p, 16);
    for (long i = 0; i < 16; i++) wr(p, i);
    prot(fd, 0, 16);
    wr(p, 2);
    wr(p, 3);
    wr(p, 5);
    wprow("written 2,3,5", 0, 16);
#define W(what, ...) scan(what, (struct q){ .flags = PM_SCAN_WP_MATCHING, .lo = 0, .hi = 16, .vec_len = -1, __VA_ARGS__ })
    W("WP fast path", .mask = C_WRITTEN, .ret = C_WRITTEN);
    wprow("after", 0, 16);
    W("again", .mask = C_WRITTEN, .ret = C_WRITTEN);
    wr(p, 3);
    W("after writing 3", .mask = C_WRITTEN, .ret = C_WRITTEN);
    wr(p, 7);
    wr(p, 8);
    W("general path (ret all), 7,8 written", .mask = C_WRITTEN, .ret = C_ALL);
    wprow("after", 0, 16);
    wr(p, 1);
    wr(p, 2);
    wr(p, 4);
    W("max_pages 1, 1,2,4 written", .mask = C_WRITTEN, .ret = C_WRITTEN, .max_pages = 1);
    wprow("after", 0, 16);
    W("vec_len 1", .mask = C_WRITTEN, .ret = C_WRITTEN, .vec_len = 1);
    wprow("after", 0, 16);
    wr(p, 1);
    wr(p, 9);
    W("vec NULL vec_len 0", .mask = C_WRITTEN, .ret = C_WRITTEN, .vec_null = 1, .vec_len = 0);
    wprow("after", 0, 16);
    wr(p, 1);
    wr(p, 9);
    W("vec_len 0 (vec set)", .mask = C_WRITTEN, .ret = C_WRITTEN, .vec_len = 0);
    wprow("after", 0, 16);
    wr(p, 1);
    wr(p, 9);
    W("vec NULL, max_pages 1", .mask = C_WRITTEN, .ret = C_WRITTEN, .vec_null = 1, .vec_len = 0, .max_pages = 1);
    wprow("after", 0, 16);
    wr(p, 1);
    wr(p, 9);
    W("mask 0 ret all (protects every written page)", .ret = C_ALL);
    wprow("after", 0, 16);
    wr(p, 1);
    W("mask PRESENT|WRITTEN, inverted PRESENT (not present)", .mask = C_PRESENT | C_WRITTEN, .inv = C_PRESENT, .ret = C_ALL);
    wprow("after", 0, 16);
    madvise(p + 12 * UPAGE, UPAGE, MADV_DONTNEED);
    raw("page 12 after DONTNEED", 12);
    W("mask PRESENT ret all (page 12 a none PTE, 1 written)", .mask = C_PRESENT, .ret = C_ALL);
    wprow("after", 0, 16);
    raw("page 12", 12);
    W("vec NULL, mask PRESENT (none PTE 12)", .mask = C_PRESENT, .ret = C_ALL, .vec_null = 1, .vec_len = 0);
    wprow("after", 0, 16);
    raw("page 12", 12);
    madvise(p + 13 * UPAGE, UPAGE, MADV_DONTNEED);
    W("mask WRITTEN ret all (none PTE 13)", .mask = C_WRITTEN, .ret = C_ALL);
    raw("page 13", 13);
    W("CHECK_WPASYNC too", .flags = 3, .mask = C_WRITTEN, .ret = C_WRITTEN);
#undef W
    full("final", 0, 16);
    munmap(p, 16 * UPAGE);

    section("WP_MATCHING: holes");
    p = thp_map(3 * THP_NR, MADV_NOHUGEPAGE);
    cur = p;
    reg_wp(fd, p, 3 * THP_NR);
    wr(p, 512);
    full("before", 0, 1536);
    scan("WP_MATCHING mask WRITTEN ret WRITTEN, pages 0-8 (no table)", (struct q){ .flags = 1, .lo = 0, .hi = 8, .mask = C_WRITTEN, .ret = C_WRITTEN, .vec_len = -1 });
    raw("page 0", 0);
    raw("page 8", 8);
    full("after", 0, 1536);
    scan("WP_MATCHING vec NULL, pages 1024-1536 (no table)", (struct q){ .flags = 1, .lo = 1024, .hi = 1536, .mask = C_WRITTEN, .ret = C_WRITTEN, .vec_null = 1 });
    scan("WP_MATCHING ret all, pages 512-1024 (table, one page)", (struct q){ .flags = 1, .lo = 512, .hi = 1024, .mask = C_WRITTEN, .ret = C_ALL, .vec_len = -1 });
    full("after", 0, 1536);
    munmap(p, 3 * THP_SIZE);

    section("WP_MATCHING: THP");
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    reg_wp(fd, p, THP_NR);
    wr(p, 0);
    thp_require(p, THP_NR, 2048);
    scan("whole PMD", (struct q){ .flags = 1, .lo = 0, .hi = 512, .mask = C_WRITTEN, .ret = C_ALL, .vec_len = -1 });
    printf("AnonHugePages %ld kB\n", thp_anon_huge_kb(p, THP_NR));
    full("after", 0, 512);
    int e = uffd_unprotect(fd, p, THP_SIZE);
    if (e) printf("unprotect: %s\n", uffd_err(-e));
    full("unprotected", 0, 512);
    scan("pages 0-256", (struct q){ .flags = 1, .lo = 0, .hi = 256, .mask = C_WRITTEN, .ret = C_ALL, .vec_len = -1 });
    printf("AnonHugePages %ld kB\n", thp_anon_huge_kb(p, THP_NR));
    full("after", 0, 512);
    munmap(p, THP_SIZE);
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    reg_wp(fd, p, THP_NR);
    wr(p, 0);
    thp_require(p, THP_NR, 2048);
    scan("max_pages 3", (struct q){ .flags = 1, .lo = 0, .hi = 512, .mask = C_WRITTEN, .ret = C_ALL, .vec_len = -1, .max_pages = 3 });
    printf("AnonHugePages %ld kB\n", thp_anon_huge_kb(p, THP_NR));
    full("after", 0, 512);
    munmap(p, THP_SIZE);
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    reg_wp(fd, p, THP_NR);
    wr(p, 0);
    thp_require(p, THP_NR, 2048);
    scan("vec NULL, whole PMD", (struct q){ .flags = 1, .lo = 0, .hi = 512, .mask = C_WRITTEN, .ret = C_WRITTEN, .vec_null = 1 });
    printf("AnonHugePages %ld kB\n", thp_anon_huge_kb(p, THP_NR));
    full("after", 0, 512);
    munmap(p, THP_SIZE);
    close(fd);
}

/* ---- 6. guard markers ----------------------------------------------------- */

static void guard(void) {
    section("GUARD");
    int fd = async_fd();
    char *p = thp_map(8, MADV_NOHUGEPAGE);
    cur = p;
    wr(p, 1);
    int r = madvise(p + 2 * UPAGE, 2 * UPAGE, MADV_GUARD_INSTALL);
    printf("MADV_GUARD_INSTALL pages 2-3: %s\n", r ? shm_err(errno) : "ok");
    if (r) {
        munmap(p, 8 * UPAGE);
        close(fd);
        return;
    }
    raw("page 2", 2);
    full("unregistered", 0, 8);
    scan("mask GUARD", (struct q){ .lo = 0, .hi = 8, .mask = C_GUARD, .ret = C_ALL, .vec_len = -1 });
    reg_wp(fd, p, 8);
    full("registered", 0, 8);
    prot(fd, 0, 8);
    full("protected", 0, 8);
    raw("page 2", 2);
    munmap(p, 8 * UPAGE);

    p = thp_map(8, MADV_NOHUGEPAGE);
    cur = p;
    reg_wp(fd, p, 8);
    wr(p, 1);
    madvise(p + 2 * UPAGE, 2 * UPAGE, MADV_GUARD_INSTALL);
    full("registered, guard after register, not protected", 0, 8);
    scan("WP_MATCHING mask WRITTEN ret all", (struct q){ .flags = 1, .lo = 0, .hi = 8, .mask = C_WRITTEN, .ret = C_ALL, .vec_len = -1 });
    raw("page 2", 2);
    full("after", 0, 8);
    shm_catch(SIGSEGV);
    shm_catch(SIGBUS);
    shm_probe("read page 2", p, 2 * UPAGE, 0, 0);
    shm_probe("write page 3", p, 3 * UPAGE, 1, 'g');
    raw("page 3", 3);
    r = madvise(p + 2 * UPAGE, 2 * UPAGE, MADV_GUARD_REMOVE);
    printf("MADV_GUARD_REMOVE: %s\n", r ? shm_err(errno) : "ok");
    raw("page 2", 2);
    full("after remove", 0, 8);
    munmap(p, 8 * UPAGE);

    p = thp_map(8, MADV_NOHUGEPAGE);
    cur = p;
    reg_wp(fd, p, 8);
    madvise(p + 2 * UPAGE, 2 * UPAGE, MADV_GUARD_INSTALL);
    scan("WP_MATCHING fast path", (struct q){ .flags = 1, .lo = 0, .hi = 8, .mask = C_WRITTEN, .ret = C_WRITTEN, .vec_len = -1 });
    raw("page 2", 2);
    scan("WP_MATCHING vec NULL", (struct q){ .flags = 1, .lo = 0, .hi = 8, .mask = C_WRITTEN, .ret = C_WRITTEN, .vec_null = 1 });
    raw("page 3", 3);
    full("after", 0, 8);
    munmap(p, 8 * UPAGE);
    close(fd);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    thp_khugepaged_settle();
    pfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pfd < 0) {
        printf("open pagemap: %s\n", shm_err(errno));
        return 3;
    }
    errnos();
    categories();
    masks();
    truncation();
    wp_matching();
    guard();
    thp_khugepaged_check();
    printf("done\n");
    return 0;
}
