// pagelab: cflags=-pthread
// uffd_abi.c's hugetlb rows (issue 11): UFFDIO_POISON on 2 MiB hugetlb
// memory (MAP_HUGETLB private and shared, MFD_HUGETLB memfd shared and
// private): the result and `updated` for 4 KiB and 2 MiB ranges, the pagemap
// entry (flags only), the SIGBUS an access raises (si_code, si_addr exact /
// 4 KiB / 2 MiB aligned, si_addr_lsb), kernel accesses, mprotect, fork,
// MADV_DONTNEED, PUNCH_HOLE, munmap+mmap and the pool; ranges across an
// anonymous and a hugetlb VMA (REG-6), MOVE and WAKE on hugetlb. Sets a pool
// of 6 pages itself (see htlb.h; the test harness serializes htlb_ programs).
#define _GNU_SOURCE
#include "htlb.h"
#include <sys/uio.h>

#define F 1234
#define H HTLB_2M
typedef uint64_t u64;
typedef int64_t i64;
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef EHWPOISON
#define EHWPOISON 133
#endif

static const char *en(int e) {
    if (e == EHWPOISON) return "EHWPOISON";
    return shm_err(e);
}
static u64 A(const void *p) {
    return (u64)(uintptr_t)p;
}
static int r_poison(int fd, u64 s, u64 l, u64 mode, i64 *f) {
    struct pl_uffdio_poison c = { { s, l }, mode, F };
    int e = ioctl(fd, PL_UFFDIO_POISON, &c) < 0 ? -errno : 0;
    *f = c.updated;
    return e;
}
static int r_move(int fd, u64 d, u64 s, u64 l, u64 mode, i64 *f) {
    struct pl_uffdio_move m = { d, s, l, mode, F };
    int e = ioctl(fd, PL_UFFDIO_MOVE, &m) < 0 ? -errno : 0;
    *f = m.move;
    return e;
}
static void frow(const char *what, int e, const char *field, i64 v) {
    printf("%s: %s %s %lld\n", what, en(-e), field, (long long)v);
}

static sigjmp_buf jb;
static volatile int sg, sc, slsb;
static volatile uintptr_t sa;
static void on_sig(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    sg = sig;
    sc = si->si_code;
    sa = (uintptr_t)si->si_addr;
    slsb = si->si_addr_lsb;
    siglongjmp(jb, 1);
}
static void probe(const char *what, char *p, int write, char v) {
    sg = 0;
    if (sigsetjmp(jb, 1) == 0) {
        char got;
        if (write) {
            *(volatile char *)p = v;
            got = v;
        } else got = *(volatile char *)p;
        printf("%s: ok %d\n", what, got);
    } else {
        uintptr_t pa = (uintptr_t)p;
        printf("%s: %s code %d addr exact %d 4k-aligned %d 2m-aligned %d lsb %d\n", what, shm_signame(sg), sc, sa == pa,
               sa == (pa & ~(UPAGE - 1)), sa == (pa & ~(H - 1)), slsb);
    }
}

static const char *pmx(const void *p) {
    static char b[4][64];
    static int k;
    k = (k + 1) % 4;
    u64 e = uffd_pagemap(p);
    if (e == ~0ull) snprintf(b[k], 64, "unreadable");
    else if (e & PM_PRESENT) snprintf(b[k], 64, "0x%016llx pfn set", (unsigned long long)(e & ~((1ull << 55) - 1)));
    else snprintf(b[k], 64, "0x%016llx", (unsigned long long)e);
    return b[k];
}

static int pipe_rw[2];

/* kind: 0 MAP_HUGETLB private, 1 MAP_HUGETLB shared, 2 memfd shared, 3 memfd private */
static void poison_kind(int kind) {
    static const char *kn[] = { "hugetlb private", "hugetlb shared", "hugetlb memfd shared", "hugetlb memfd private" };
    const char *k = kn[kind];
    char w[160];
    printf("-- %s\n", k);
    int mfd = -1;
    int flags = kind == 0 ? MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB : kind == 1 ? MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB
                : kind == 2                                           ? MAP_SHARED
                                                                      : MAP_PRIVATE;
    if (kind >= 2) mfd = htlb_memfd("habi", 0, 2 * H);
    char *p = htlb_mmap_at(2 * H, H, PROT_READ | PROT_WRITE, flags, mfd, 0);
    if (!p) {
        printf("mmap: %s\n", en(errno));
        return;
    }
    p[H] = 'b'; /* huge page 1 populated, 0 not */
    htlb_pool("mapped");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    uint64_t io = 0;
    int e = uffd_register(fd, p, 2 * H, UFFDIO_REGISTER_MODE_WP, &io);
    printf("register WP: %s ioctls %#llx\n", en(-e), (unsigned long long)io);
    i64 f = F;
    e = r_poison(fd, A(p), UPAGE, 0, &f);
    frow("POISON 4 KiB of huge page 0", e, "updated", f);
    e = r_poison(fd, A(p) + UPAGE, H, 0, &f);
    frow("POISON 2 MiB at +4 KiB", e, "updated", f);
    e = r_poison(fd, A(p), H + UPAGE, 0, &f);
    frow("POISON 2 MiB + 4 KiB", e, "updated", f);
    e = r_poison(fd, A(p), 2 * H, 0, &f);
    frow("POISON huge pages 0-1 (1 populated)", e, "updated", f);
    printf("  page 0: %s, page 300: %s, page 511: %s, page 512: %s\n", pmx(p), pmx(p + 300 * UPAGE), pmx(p + 511 * UPAGE), pmx(p + H));
    e = r_poison(fd, A(p), H, 0, &f);
    frow("POISON huge page 0 again", e, "updated", f);
    e = r_poison(fd, A(p) + H, H, 0, &f);
    frow("POISON huge page 1 (populated)", e, "updated", f);
    e = r_poison(fd, A(p), H, 2, &f);
    frow("POISON mode 2", e, "updated", f);
    htlb_pool("poisoned");
    snprintf(w, sizeof w, "%s: read page 0 +100", k);
    probe(w, p + 100, 0, 0);
    snprintf(w, sizeof w, "%s: write page 300 +5", k);
    probe(w, p + 300 * UPAGE + 5, 1, 'w');
    snprintf(w, sizeof w, "%s: read last byte of huge page 0", k);
    probe(w, p + H - 1, 0, 0);
    /* kernel accesses */
    ssize_t n = write(pipe_rw[1], p + 8, 16);
    printf("%s: write() from it: %s\n", k, n < 0 ? en(errno) : "16");
    if (n > 0) {
        char b[64];
        n = read(pipe_rw[0], b, sizeof b);
    }
    if (write(pipe_rw[1], "0123456789abcdef", 16) != 16) exit(2);
    n = read(pipe_rw[0], p + 8, 16);
    int er = errno;
    char b[64];
    ssize_t left = read(pipe_rw[0], b, sizeof b);
    printf("%s: read() into it: %s, left %zd\n", k, n < 0 ? en(er) : "16", left < 0 ? 0 : left);
    struct iovec l = { b, 16 }, r = { p + 8, 16 };
    n = process_vm_readv(getpid(), &l, 1, &r, 1, 0);
    printf("%s: process_vm_readv from it: %s\n", k, n < 0 ? en(errno) : "16");
    int mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
    n = pread(mem, b, 16, (off_t)(uintptr_t)(p + 8));
    printf("%s: pread /proc/self/mem: %s\n", k, n < 0 ? en(errno) : "16");
    close(mem);
    e = madvise(p, H, MADV_POPULATE_READ) < 0 ? -errno : 0;
    printf("%s: MADV_POPULATE_READ: %s\n", k, en(-e));
    /* mprotect */
    e = mprotect(p, H, PROT_READ) < 0 ? -errno : 0;
    printf("%s: mprotect READ: %s, page 0 %s\n", k, en(-e), pmx(p));
    snprintf(w, sizeof w, "%s: PROT_READ, read page 0", k);
    probe(w, p + 7, 0, 0);
    mprotect(p, H, PROT_READ | PROT_WRITE);
    /* fork */
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        printf("  child page 0: %s\n", pmx(p));
        snprintf(w, sizeof w, "%s: child read page 0", k);
        probe(w, p + 1, 0, 0);
        snprintf(w, sizeof w, "%s: child read huge page 1", k);
        probe(w, p + H, 0, 0);
        pl_flush();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    close(fd);
    printf("after close: page 0 %s\n", pmx(p));
    snprintf(w, sizeof w, "%s: read page 0 after close", k);
    probe(w, p + 1, 0, 0);
    e = madvise(p, H, MADV_DONTNEED) < 0 ? -errno : 0;
    printf("%s: MADV_DONTNEED huge page 0: %s, page 0 %s\n", k, en(-e), pmx(p));
    snprintf(w, sizeof w, "%s: read page 0 after DONTNEED", k);
    probe(w, p + 1, 0, 0);
    htlb_pool("after DONTNEED and a read");
    if (mfd >= 0) {
        fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
        uffd_register(fd, p, 2 * H, UFFDIO_REGISTER_MODE_WP, NULL);
        madvise(p, H, MADV_DONTNEED);
        e = fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, H) < 0 ? -errno : 0;
        e = r_poison(fd, A(p), H, 0, &f);
        frow("POISON huge page 0 after PUNCH_HOLE", e, "updated", f);
        e = fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, H) < 0 ? -errno : 0;
        printf("%s: PUNCH_HOLE huge page 0: %s, page 0 %s\n", k, en(-e), pmx(p));
        snprintf(w, sizeof w, "%s: read page 0 after PUNCH_HOLE", k);
        probe(w, p + 1, 0, 0);
        close(fd);
    }
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    uffd_register(fd, p, 2 * H, UFFDIO_REGISTER_MODE_WP, NULL);
    madvise(p, H, MADV_DONTNEED);
    e = r_poison(fd, A(p), H, 0, &f);
    frow("POISON huge page 0 before munmap", e, "updated", f);
    close(fd);
    munmap(p, 2 * H);
    void *q = mmap(p, 2 * H, PROT_READ | PROT_WRITE, flags | MAP_FIXED, mfd, 0);
    printf("munmap and mmap again: %s, page 0 %s\n", q == MAP_FAILED ? en(errno) : "mapped", pmx(p));
    if (q != MAP_FAILED) {
        snprintf(w, sizeof w, "%s: read page 0 after munmap+mmap", k);
        probe(w, p + 1, 0, 0);
        snprintf(w, sizeof w, "%s: read huge page 1 after munmap+mmap", k);
        probe(w, p + H, 0, 0);
        munmap(p, 2 * H);
    }
    if (mfd >= 0) close(mfd);
    htlb_pool("unmapped");
}

static void ranges(void) {
    printf("== anon and hugetlb VMAs side by side\n");
    /* [anon 4 KiB pages][hugetlb 2 MiB] and [hugetlb][anon] */
    char *r = htlb_mmap_at(4 * H, H, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    char *an = mmap(r + H - 2 * UPAGE, 2 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    char *hp = mmap(r + H, H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_FIXED, -1, 0);
    char *an2 = mmap(r + 2 * H, 2 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (an == MAP_FAILED || hp == MAP_FAILED || an2 == MAP_FAILED) {
        printf("mmap failed: %s\n", en(errno));
        return;
    }
    an[0] = an2[0] = 1;
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_MOVE);
    uint64_t io = 0;
    int e = uffd_register(fd, an, 2 * UPAGE + H, UFFDIO_REGISTER_MODE_WP, &io);
    printf("REGISTER WP [anon 2 pages][hugetlb]: %s\n", en(-e));
    printf("  then WRITEPROTECT anon: %s\n", en(-uffd_protect(fd, an, UPAGE)));
    e = uffd_register(fd, hp, H + 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, &io);
    printf("REGISTER WP [hugetlb][anon 2 pages]: %s ioctls %#llx\n", en(-e), (unsigned long long)io);
    e = uffd_register(fd, hp, H + UPAGE, UFFDIO_REGISTER_MODE_WP, &io);
    printf("REGISTER WP [hugetlb][anon 1 page]: %s ioctls %#llx\n", en(-e), (unsigned long long)io);
    e = uffd_register(fd, an, 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, &io);
    printf("REGISTER WP [anon 2 pages]: %s ioctls %#llx\n", en(-e), (unsigned long long)io);
    e = uffd_register(fd, an, 2 * UPAGE + H + 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, &io);
    printf("REGISTER WP [anon][hugetlb][anon] (all registered): %s ioctls %#llx\n", en(-e), (unsigned long long)io);
    printf("WRITEPROTECT [anon][hugetlb][anon]: %s\n", en(-uffd_protect(fd, an, 2 * UPAGE + H + 2 * UPAGE)));
    printf("WRITEPROTECT [hugetlb][anon]: %s\n", en(-uffd_protect(fd, hp, H + 2 * UPAGE)));
    printf("unprotect [hugetlb][anon 1 page]: %s\n", en(-uffd_unprotect(fd, hp, H + UPAGE)));
    printf("UNREGISTER [anon 1 page]: %s\n", en(-uffd_unregister(fd, an + UPAGE, UPAGE)));
    printf("UNREGISTER [anon 1 page][hugetlb]: %s\n", en(-uffd_unregister(fd, an + UPAGE, UPAGE + H)));
    printf("UNREGISTER [hugetlb][anon 1 page]: %s\n", en(-uffd_unregister(fd, hp, H + UPAGE)));
    printf("WAKE 4 KiB inside hugetlb: %s\n", en(-uffd_wake(fd, hp + UPAGE, UPAGE)));
    uffd_register(fd, hp, H, UFFDIO_REGISTER_MODE_WP, NULL);
    i64 f = F;
    e = r_move(fd, A(hp), A(an2), UPAGE, 0, &f);
    frow("MOVE anon page into hugetlb", e, "move", f);
    e = r_move(fd, A(hp), A(an2), H, 0, &f);
    frow("MOVE 2 MiB of anon into hugetlb", e, "move", f);
    hp[0] = 1;
    e = r_move(fd, A(an + UPAGE), A(hp), UPAGE, 0, &f);
    frow("MOVE hugetlb page into registered anon", e, "move", f);
    e = r_poison(fd, A(an + UPAGE) , UPAGE + H, 0, &f);
    frow("POISON [anon 1 page][hugetlb]", e, "updated", f);
    close(fd);
    munmap(r, 4 * H);
}

int main(void) {
    htlb_setup(6, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sig;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    if (pipe2(pipe_rw, O_NONBLOCK | O_CLOEXEC)) return 2;
    htlb_pool("start");
    printf("== UFFDIO_POISON on hugetlb\n");
    for (int k = 0; k < 4; k++) poison_kind(k);
    ranges();
    htlb_finish();
    return 0;
}
