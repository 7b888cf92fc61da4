// mincore_basic: mincore(2), a byte per page (bit 0: resident), on anonymous memory, a
// memfd shared and private, markers (guard, uffd-wp) and a THP, and its errnos. The shmem
// rows show what MADV_PAGEOUT does to the page cache without swap: a page only read (clean)
// leaves it, a written (dirty) one stays.
#define _GNU_SOURCE
#include "uffd.h"
#include <sys/mman.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

static unsigned char vec[1024];

/* mincore of n pages at p, printed as digits ("-" for a byte that is neither 0 nor 1). */
static void row(const char *what, void *p, size_t n) {
    memset(vec, 0xee, sizeof vec);
    int r = mincore(p, n * UPAGE, vec);
    printf("%-40s ", what);
    if (r < 0) {
        printf("%s\n", uffd_err(errno));
        return;
    }
    for (size_t i = 0; i < n; i++) putchar(vec[i] == 0 ? '0' : vec[i] == 1 ? '1' : '-');
    putchar('\n');
}

static void err(const char *what, void *p, size_t len, void *v) {
    memset(vec, 0xee, sizeof vec);
    int r = mincore(p, len, v);
    printf("%-40s %s", what, r < 0 ? uffd_err(errno) : "0");
    if (v == vec) printf(" (vec[0] %s)", vec[0] == 0xee ? "untouched" : vec[0] == 1 ? "1" : "0");
    putchar('\n');
}

static volatile char sink;

int main(void) {
    /* Anonymous memory. */
    char *a = uffd_map(8);
    sink = a[1 * UPAGE];
    a[2 * UPAGE] = 1;
    a[3 * UPAGE] = 1;
    madvise(a + 3 * UPAGE, UPAGE, MADV_DONTNEED);
    a[4 * UPAGE] = 1;
    mprotect(a + 4 * UPAGE, UPAGE, PROT_NONE);
    row("anon: -, read, written, dontneed, prot_none", a, 5);
    mprotect(a + 4 * UPAGE, UPAGE, PROT_READ | PROT_WRITE);

    /* A memfd, shared: read pages 0 and 2, write 1 and 3, then MADV_PAGEOUT. */
    int fd = memfd_create("mincore", 0);
    if (fd < 0 || ftruncate(fd, 16 * UPAGE) < 0) return 1;
    char *m = mmap(NULL, 16 * UPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    row("memfd: untouched", m, 6);
    sink = m[0];
    m[1 * UPAGE] = 1;
    sink = m[2 * UPAGE];
    m[3 * UPAGE] = 1;
    row("memfd: read, written, read, written", m, 6);
    int r = madvise(m, 6 * UPAGE, MADV_PAGEOUT);
    printf("madvise(MADV_PAGEOUT) %s\n", r < 0 ? uffd_err(errno) : "0");
    row("memfd after pageout", m, 6);
    char *m2 = mmap(NULL, 16 * UPAGE, PROT_READ, MAP_SHARED, fd, 0);
    row("memfd, a second mapping, never touched", m2, 6);
    char c = 7;
    if (pwrite(fd, &c, 1, 5 * UPAGE) != 1) printf("pwrite failed\n");
    if (fallocate(fd, 0, 6 * UPAGE, UPAGE) < 0) printf("fallocate %s\n", uffd_err(errno));
    row("memfd pages 4-7: -, pwrite, fallocate, -", m + 4 * UPAGE, 4);
    sink = m[0];
    madvise(m, UPAGE, MADV_PAGEOUT);
    row("memfd page 0 read again, paged out again", m, 1);
    m[0] = 2;
    madvise(m, UPAGE, MADV_PAGEOUT);
    row("memfd page 0 written, paged out", m, 1);
    printf("memfd page 0 reads %d, page 2 reads %d\n", m[0], m[2 * UPAGE]);

    /* The same memfd, private: page-cache pages show through until COW. */
    char *pv = mmap(NULL, 8 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    sink = pv[1 * UPAGE];
    pv[3 * UPAGE] = 9;
    row("private memfd: -, read, -, cow, -, pwrite", pv, 6);
    madvise(pv, 6 * UPAGE, MADV_DONTNEED);
    row("private memfd after dontneed", pv, 6);

    /* Markers: a guard page, and uffd-wp markers on the memfd. */
    r = madvise(a + 2 * UPAGE, UPAGE, MADV_GUARD_INSTALL);
    printf("guard install on anon %s\n", r < 0 ? uffd_err(errno) : "0");
    row("anon: guard over a written page", a + 2 * UPAGE, 1);
    r = madvise(m + 1 * UPAGE, UPAGE, MADV_GUARD_INSTALL);
    printf("guard install on memfd %s\n", r < 0 ? uffd_err(errno) : "0");
    row("memfd: guard over a cached page", m + UPAGE, 1);
    int u = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    if (u >= 0) {
        char *w = mmap(NULL, 4 * UPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 8 * UPAGE);
        w[0] = 1;
        sink = w[UPAGE];
        r = uffd_register(u, w, 4 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
        if (r == 0) r = uffd_protect(u, w, 4 * UPAGE);
        printf("uffd-wp register + protect %s\n", r < 0 ? uffd_err(-r) : "0");
        madvise(w, 4 * UPAGE, MADV_PAGEOUT);
        row("wp'd memfd after pageout: dirty, clean", w, 2);
        madvise(w, 4 * UPAGE, MADV_DONTNEED);
        row("wp'd memfd after dontneed (markers)", w, 2);
        close(u);
    }

    /* A THP: a huge PMD is resident as a whole. */
    char *raw = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *h = (char *)(((uintptr_t)raw + (2 << 20) - 1) & ~((uintptr_t)(2 << 20) - 1));
    if (madvise(h, 2 << 20, MADV_HUGEPAGE) == 0) {
        h[0] = 1;
        memset(vec, 0xee, sizeof vec);
        long ones = 0;
        if (mincore(h, 512 * UPAGE, vec) == 0)
            for (int i = 0; i < 512; i++) ones += vec[i] == 1;
        printf("thp: %ld of 512 pages resident\n", ones);
    }

    /* Errnos. */
    err("unaligned start", a + 1, UPAGE, vec);
    err("len 0", a, 0, vec);
    err("len 1 (one page)", a + 2 * UPAGE, 1, vec);
    err("unmapped range", (void *)0x10000, UPAGE, vec);
    char *t = uffd_map(4);
    munmap(t + 2 * UPAGE, 2 * UPAGE);
    err("a VMA, then a hole", t + UPAGE, 2 * UPAGE, vec);
    munmap(a + 6 * UPAGE, UPAGE);
    err("a hole in the middle", a + 5 * UPAGE, 3 * UPAGE, vec);
    err("start in the kernel half", (void *)0xffff800000000000ul, UPAGE, vec);
    err("len past the top", a, (size_t)-4096, vec);
    err("vec NULL", a, UPAGE, NULL);
    err("vec in the kernel half", a, UPAGE, (void *)0xffff800000000000ul);
    char *ro = mmap(NULL, UPAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    err("vec read-only", a, UPAGE, ro);
    err("range unmapped, vec NULL", (void *)0x10000, UPAGE, NULL);
    err("unaligned start, vec NULL", a + 1, UPAGE, NULL);
    return 0;
}
