// mem: brk/sbrk, malloc/free of many sizes, and mmap/munmap/mprotect/mremap/madvise on
// private anonymous memory. Prints only sizes, contents and error names, never addresses.
#define _GNU_SOURCE
#include "pl.h"
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096ul

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + seed);
}
static int check(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 31 + seed)) return 0;
    return 1;
}
static int all_zero(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}
static unsigned char *anon(size_t len, int prot) {
    void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap(%zu) failed: %s\n", len, pl_errname(errno));
        exit(1);
    }
    return p;
}

static void test_brk(void) {
    printf("== brk\n");
    char *b0 = sbrk(0);
    char *r = sbrk(1 << 20);
    pl_check("sbrk(+1MiB) returns old break", r == b0);
    char *b1 = sbrk(0);
    pl_check("break moved by 1MiB", b1 - b0 == (1 << 20));
    pl_check("new heap zeroed", all_zero((unsigned char *)b0, 1 << 20));
    fill((unsigned char *)b0, 1 << 20, 1);
    pl_check("new heap writable", check((unsigned char *)b0, 1 << 20, 1));
    sbrk(-(1 << 19));
    pl_check("shrink by 512KiB", (char *)sbrk(0) - b0 == (1 << 19));
    pl_check("kept half intact", check((unsigned char *)b0, 1 << 19, 1));
    sbrk(1 << 19);
    /* Linux zeroes pages that were released by shrinking brk and then regrown
     * (the first page may be partial: only check from the next page boundary). */
    unsigned char *regrown = (unsigned char *)(((uintptr_t)b0 + (1 << 19) + PG - 1) & ~(PG - 1));
    pl_check("regrown heap zeroed", all_zero(regrown, (unsigned char *)b0 + (1 << 20) - regrown));
    pl_check("brk(current) == 0", brk(sbrk(0)) == 0);
    sbrk(-(1 << 20));
    pl_check("back to the initial break", sbrk(0) == b0);
}

static void test_malloc(void) {
    printf("== malloc\n");
    enum { N = 1000, ROUNDS = 3 };
    static unsigned char *ptrs[N];
    static size_t sizes[N];
    pl_rng r = pl_rng_new(42);
    uint64_t h = PL_FNV_INIT;
    int bad = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < N; i++) {
            size_t sz;
            uint64_t k = pl_rand(&r) % 100;
            if (k < 60) sz = 1 + pl_rand(&r) % 128;          /* tcache/fastbin */
            else if (k < 90) sz = 129 + pl_rand(&r) % 4000;  /* small/large bins */
            else if (k < 99) sz = 4096 + pl_rand(&r) % 20000;
            else sz = 140000 + pl_rand(&r) % 100000;        /* above the mmap threshold */
            ptrs[i] = malloc(sz);
            sizes[i] = sz;
            if (!ptrs[i]) {
                bad++;
                continue;
            }
            fill(ptrs[i], sz, (unsigned)i);
        }
        /* free a random half, then realloc the survivors */
        for (int i = 0; i < N; i++) {
            if (pl_rand(&r) & 1) {
                if (ptrs[i] && !check(ptrs[i], sizes[i], (unsigned)i)) bad++;
                free(ptrs[i]);
                ptrs[i] = NULL;
            }
        }
        for (int i = 0; i < N; i++) {
            if (!ptrs[i]) continue;
            size_t nsz = sizes[i] * 2 + 1;
            unsigned char *q = realloc(ptrs[i], nsz);
            if (!q || !check(q, sizes[i], (unsigned)i)) bad++;
            fill(q, nsz, (unsigned)i + 7);
            h = pl_fnv(h, q, nsz < 64 ? nsz : 64);
            free(q);
        }
    }
    void *z = calloc(1000, 37);
    pl_check("calloc zeroed", z && all_zero(z, 37000));
    free(z);
    printf("malloc rounds: %d x %d allocations, errors: %d\n", ROUNDS, N, bad);
    printf("malloc checksum: %016llx\n", (unsigned long long)h);
    pl_check("malloc/realloc/free", bad == 0);
}

static void test_mmap(void) {
    printf("== mmap/munmap\n");
    errno = 0;
    pl_check("mmap(len 0) fails with EINVAL",
             mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL);
    unsigned char *p = anon(16 * PG, PROT_READ | PROT_WRITE);
    pl_check("fresh mapping zeroed", all_zero(p, 16 * PG));
    fill(p, 16 * PG, 3);
    pl_check("mapping writable", check(p, 16 * PG, 3));
    errno = 0;
    pl_check("munmap(unaligned) fails with EINVAL", munmap(p + 1, PG) == -1 && errno == EINVAL);
    pl_check("munmap middle page", munmap(p + 5 * PG, PG) == 0);
    pl_check("pages around the hole intact", check(p, 5 * PG, 3) && check(p + 6 * PG, 10 * PG, 3 + 6 * PG * 31));
    void *q = mmap(p + 5 * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    pl_check("hole can be mapped again (MAP_FIXED_NOREPLACE)", q == p + 5 * PG);
    pl_check("remapped hole is zero", q != MAP_FAILED && all_zero(q, PG));
    errno = 0;
    q = mmap(p + 2 * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    pl_check("MAP_FIXED_NOREPLACE over a mapping fails with EEXIST", q == MAP_FAILED && errno == EEXIST);
    q = mmap(p + 2 * PG, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    pl_check("MAP_FIXED replaces with zero pages", q == p + 2 * PG && all_zero(p + 2 * PG, 2 * PG) &&
                                                       check(p, 2 * PG, 3) && check(p + 4 * PG, PG, 3 + 4 * PG * 31));
    pl_check("munmap range spanning a hole", munmap(p, 16 * PG) == 0);
    pl_check("munmap of an unmapped range succeeds", munmap(p, 16 * PG) == 0);
}

static void test_mprotect(void) {
    printf("== mprotect\n");
    unsigned char *p = anon(4 * PG, PROT_READ | PROT_WRITE);
    fill(p, 4 * PG, 9);
    pl_check("mprotect RO", mprotect(p + PG, 2 * PG, PROT_READ) == 0);
    pl_check("RO pages still readable", check(p, 4 * PG, 9));
    p[0] = 0x55;
    p[3 * PG] = 0x66;
    pl_check("neighbours still writable", p[0] == 0x55 && p[3 * PG] == 0x66);
    pl_check("mprotect NONE", mprotect(p + PG, PG, PROT_NONE) == 0);
    pl_check("mprotect RW again", mprotect(p, 4 * PG, PROT_READ | PROT_WRITE) == 0);
    p[PG] = 0x77;
    p[2 * PG + 5] = 0x88;
    pl_check("data survived protection changes", p[PG] == 0x77 && p[2 * PG + 5] == 0x88 && check(p + PG + 1, 100, 9 + (PG + 1) * 31));
    errno = 0;
    pl_check("mprotect(unaligned) fails with EINVAL", mprotect(p + 1, PG, PROT_READ) == -1 && errno == EINVAL);
    munmap(p, 4 * PG);
    errno = 0;
    pl_check("mprotect(unmapped) fails with ENOMEM", mprotect(p, PG, PROT_READ) == -1 && errno == ENOMEM);
}

static void test_mremap(void) {
    printf("== mremap\n");
    /* A PROT_NONE reservation makes the layout deterministic: p = R[0..4) RW,
     * R[4..8) a hole, R[8..24) still reserved (PROT_NONE). */
    unsigned char *R = anon(24 * PG, PROT_NONE);
    munmap(R + 4 * PG, 4 * PG);
    unsigned char *p = mmap(R, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    pl_check("MAP_FIXED inside a reservation", p == R);
    fill(p, 4 * PG, 11);
    unsigned char *q = mremap(p, 4 * PG, 8 * PG, 0);
    pl_check("grow in place into the hole", q == p);
    pl_check("grown: old data kept", check(p, 4 * PG, 11));
    pl_check("grown: new pages zero", all_zero(p + 4 * PG, 4 * PG));

    /* R[8..) is mapped, so growing further in place is impossible */
    errno = 0;
    pl_check("blocked growth fails with ENOMEM", mremap(p, 8 * PG, 16 * PG, 0) == MAP_FAILED && errno == ENOMEM);
    q = mremap(p, 8 * PG, 16 * PG, MREMAP_MAYMOVE);
    pl_check("grow with MREMAP_MAYMOVE moves", q != MAP_FAILED && q != p);
    pl_check("moved: data kept, tail zero", q != MAP_FAILED && check(q, 4 * PG, 11) && all_zero(q + 4 * PG, 12 * PG));
    void *old = mmap(p, 8 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    pl_check("old range is free after the move", old == p);
    q[5 * PG] = 0xab;
    pl_check("moved mapping writable", q[5 * PG] == 0xab);

    /* move to a chosen address: the 16 reserved pages R[8..24) */
    unsigned char *s = mremap(q, 16 * PG, 16 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, R + 8 * PG);
    pl_check("MREMAP_FIXED moves onto the requested (mapped) range", s == R + 8 * PG);
    pl_check("fixed move: data kept", s != MAP_FAILED && check(s, 4 * PG, 11) && s[5 * PG] == 0xab);
    void *src = mmap(q, 16 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    pl_check("source range is free after the move", src == q);
    if (src != MAP_FAILED) munmap(src, 16 * PG);

    /* shrink in place; the tail becomes unmapped */
    unsigned char *t = mremap(s, 16 * PG, 2 * PG, 0);
    pl_check("shrink in place", t == s && check(t, 2 * PG, 11));
    void *freed = mmap(s + 2 * PG, 14 * PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    pl_check("shrunk tail is unmapped", freed == s + 2 * PG);
    munmap(R, 24 * PG);
}

static void test_madvise(void) {
    printf("== madvise\n");
    unsigned char *p = anon(8 * PG, PROT_READ | PROT_WRITE);
    fill(p, 8 * PG, 13);
    pl_check("MADV_DONTNEED", madvise(p + 2 * PG, 3 * PG, MADV_DONTNEED) == 0);
    pl_check("dropped pages read as zero", all_zero(p + 2 * PG, 3 * PG));
    pl_check("other pages intact", check(p, 2 * PG, 13) && check(p + 5 * PG, 3 * PG, 13 + 5 * PG * 31));
    fill(p + 2 * PG, PG, 1);
    pl_check("dropped pages writable again", check(p + 2 * PG, PG, 1));
    pl_check("MADV_WILLNEED/NORMAL accepted",
             madvise(p, 8 * PG, MADV_WILLNEED) == 0 && madvise(p, 8 * PG, MADV_NORMAL) == 0);
    errno = 0;
    pl_check("madvise(unaligned) fails with EINVAL", madvise(p + 1, PG, MADV_DONTNEED) == -1 && errno == EINVAL);
    munmap(p, 8 * PG);
}

int main(void) {
    test_brk();
    test_malloc();
    test_mmap();
    test_mprotect();
    test_mremap();
    test_madvise();
    return pl_finish();
}
