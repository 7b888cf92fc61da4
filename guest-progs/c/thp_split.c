// thp_split: which operations split the huge PMD of an anonymous THP and
// which keep it (issue 10; reference 5.7). Each case maps a fresh
// MADV_HUGEPAGE region at a 2 MiB-aligned base, writes every page (data
// generation g1: three bytes per page, thp.h), checks it is PMD-mapped, takes
// a snapshot of its frames, does one operation and prints the VMAs (smaps
// Rss, AnonHugePages), the pagemap flags in runs, the frames against the
// snapshot (kept: the same 4 KiB frame as before; new; -: not present) and
// the data that is left. Reads of dropped pages come last, as they fault.
//   * partial munmap (head, tail, middle) splits; munmap of a whole 2 MiB of a
//     4 MiB region leaves the other PMD;
//   * partial mprotect splits (and the VMA); mprotect of whole PMDs (READ,
//     NONE, back to RW) keeps them;
//   * partial MADV_DONTNEED splits and drops only the range; whole-PMD
//     DONTNEED drops the PMD (a read then maps the huge zero page, a write a
//     new THP);
//   * partial mremap splits; a whole PMD moved to an aligned address stays a
//     PMD, to a misaligned one it is split; shrinking in place splits.
// The argument "pageout" runs the MADV_PAGEOUT cases instead (natively on a
// host without swap: thp_split.pageout.expected; pagelab with --swap 0).
#define _GNU_SOURCE
#include "thp.h"
#include <sys/wait.h>

static void section(const char *s) {
    printf("== %s\n", s);
}

static const int G1[] = { 1 };
static const int G12[] = { 1, 2 };
static uint64_t snap[2 * THP_NR];

/* A fresh region of n THPs, every page written (g1), PMD-mapped; its frames
 * in snap. */
static char *fresh(size_t n) {
    char *p = thp_map(n * THP_NR, MADV_HUGEPAGE);
    thp_fill(p, 0, n * THP_NR, 1);
    thp_require(p, n * THP_NR, 2048 * (long)n);
    thp_pfns(p, n * THP_NR, snap);
    return p;
}

/* A fresh region of n THPs of which only pages 0-9 of each were written (g1),
 * PMD-mapped; its frames in snap. */
static char *sparse(size_t n) {
    char *p = thp_map(n * THP_NR, MADV_HUGEPAGE);
    for (size_t i = 0; i < n; i++) thp_fill(p, i * THP_NR, i * THP_NR + 10, 1);
    thp_require(p, n * THP_NR, 2048 * (long)n);
    thp_pfns(p, n * THP_NR, snap);
    return p;
}

/* smaps, pagemap and frames of pages [0, n) of p. */
static void state(const char *what, const char *p, size_t n) {
    char w[128];
    thp_smaps(what, p, 0, n);
    thp_pm(what, p, 0, n);
    snprintf(w, sizeof w, "%s frames", what);
    thp_frames_vs(w, p, n, snap);
}

static const char *res(int r) {
    return uffd_err(r ? errno : 0);
}

static void munmaps(void) {
    section("munmap pages 0-9 of a THP");
    char *p = fresh(1);
    printf("munmap: %s\n", res(munmap(p, 10 * UPAGE)));
    state("after", p, THP_NR);
    thp_data("data 10-511", p, 10, THP_NR, G1, 1);
    munmap(p, THP_SIZE);

    section("munmap pages 502-511 of a THP");
    p = fresh(1);
    printf("munmap: %s\n", res(munmap(p + 502 * UPAGE, 10 * UPAGE)));
    state("after", p, THP_NR);
    thp_data("data 0-501", p, 0, 502, G1, 1);
    munmap(p, THP_SIZE);

    section("munmap pages 100-109 of a THP");
    p = fresh(1);
    printf("munmap: %s\n", res(munmap(p + 100 * UPAGE, 10 * UPAGE)));
    state("after", p, THP_NR);
    thp_data("data 0-99", p, 0, 100, G1, 1);
    thp_data("data 110-511", p, 110, THP_NR, G1, 1);
    munmap(p, THP_SIZE);

    section("munmap pages 512-1023 of two THPs");
    p = fresh(2);
    printf("munmap: %s\n", res(munmap(p + THP_SIZE, THP_SIZE)));
    state("after", p, 2 * THP_NR);
    thp_data("data 0-511", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);
}

static void mprotects(void) {
    section("mprotect READ pages 0-9 of a THP");
    char *p = fresh(1);
    printf("mprotect: %s\n", res(mprotect(p, 10 * UPAGE, PROT_READ)));
    state("after", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G1, 1);
    thp_fill(p, 20, 21, 2);
    state("after a write to page 20", p, THP_NR);
    printf("mprotect RW pages 0-9: %s\n", res(mprotect(p, 10 * UPAGE, PROT_READ | PROT_WRITE)));
    thp_fill(p, 5, 6, 2);
    state("after RW and a write to page 5", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G12, 2);
    munmap(p, THP_SIZE);

    section("mprotect NONE pages 500-511 of a THP");
    p = fresh(1);
    printf("mprotect: %s\n", res(mprotect(p + 500 * UPAGE, 12 * UPAGE, PROT_NONE)));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);

    section("mprotect of a whole THP: READ, NONE, then RW");
    p = fresh(1);
    printf("mprotect READ: %s\n", res(mprotect(p, THP_SIZE, PROT_READ)));
    state("READ", p, THP_NR);
    printf("mprotect NONE: %s\n", res(mprotect(p, THP_SIZE, PROT_NONE)));
    state("NONE", p, THP_NR);
    printf("mprotect RW: %s\n", res(mprotect(p, THP_SIZE, PROT_READ | PROT_WRITE)));
    state("RW", p, THP_NR);
    thp_fill(p, 3, 4, 2);
    state("after a write to page 3", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G12, 2);
    munmap(p, THP_SIZE);

    section("mprotect READ pages 512-1023 of two THPs");
    p = fresh(2);
    printf("mprotect: %s\n", res(mprotect(p + THP_SIZE, THP_SIZE, PROT_READ)));
    state("after", p, 2 * THP_NR);
    munmap(p, 2 * THP_SIZE);
}

static void dontneeds(void) {
    section("MADV_DONTNEED pages 0-9 of a THP");
    char *p = fresh(1);
    printf("DONTNEED: %s\n", res(madvise(p, 10 * UPAGE, MADV_DONTNEED)));
    state("after", p, THP_NR);
    thp_data("data 10-511", p, 10, THP_NR, G1, 1);
    char c = *(volatile char *)p;
    printf("read page 0: %d\n", c);
    thp_fill(p, 1, 2, 2);
    state("after a read of page 0 and a write to page 1", p, THP_NR);
    printf("page 0: %s, page 1: %s\n", thp_zero_str(p, 0), thp_zero_str(p, 1));
    thp_data("data", p, 0, THP_NR, G12, 2);
    munmap(p, THP_SIZE);

    section("MADV_DONTNEED pages 256-767 of two THPs");
    p = fresh(2);
    printf("DONTNEED: %s\n", res(madvise(p + 256 * UPAGE, THP_SIZE, MADV_DONTNEED)));
    state("after", p, 2 * THP_NR);
    thp_data("data", p, 0, 2 * THP_NR, G1, 1);
    munmap(p, 2 * THP_SIZE);

    section("MADV_DONTNEED of a whole THP");
    p = fresh(1);
    printf("DONTNEED: %s\n", res(madvise(p, THP_SIZE, MADV_DONTNEED)));
    state("after", p, THP_NR);
    c = *(volatile char *)(p + 8 * UPAGE);
    printf("read page 8: %d\n", c);
    state("after a read", p, THP_NR);
    printf("frames: %s\n", thp_frames(p, 0, THP_NR));
    thp_fill(p, 9, 10, 2);
    thp_smaps("after a write to page 9", p, 0, THP_NR);
    thp_pm("after a write to page 9", p, 0, THP_NR);
    printf("frames: %s\n", thp_frames(p, 0, THP_NR));
    thp_data("data", p, 0, THP_NR, G12, 2);
    munmap(p, THP_SIZE);
}

/* A fresh 2 MiB-aligned place for `pages` pages (inside a reservation). */
static char *place(size_t pages) {
    return shm_reserve(pages * UPAGE);
}

static void mremap_to(const char *what, size_t from, size_t pages, size_t dst_off) {
    section(what);
    char *p = fresh(1);
    char *d = place(pages + dst_off);
    void *r = mremap(p + from * UPAGE, pages * UPAGE, pages * UPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, d + dst_off * UPAGE);
    printf("mremap: %s\n", r == MAP_FAILED ? uffd_err(errno) : r == d + dst_off * UPAGE ? "moved" : "elsewhere?");
    state("source", p, THP_NR);
    thp_smaps("destination", d, dst_off, dst_off + pages);
    thp_pm("destination", d, dst_off, dst_off + pages);
    /* Page i of the destination against page i + from - dst_off of the snapshot. */
    thp_frames_vs_pid(0, "destination frames", d + dst_off * UPAGE, pages, snap, (long)from);
    thp_data("destination data (source page indexes)", d + dst_off * UPAGE - from * UPAGE, from, from + pages, G1, 1);
    munmap(d + dst_off * UPAGE, pages * UPAGE);
    munmap(p, THP_SIZE);
}

static void mremaps(void) {
    mremap_to("mremap pages 0-9 of a THP elsewhere", 0, 10, 0);
    mremap_to("mremap pages 100-109 of a THP elsewhere", 100, 10, 0);
    mremap_to("mremap a whole THP to a 2 MiB-aligned address", 0, THP_NR, 0);
    mremap_to("mremap a whole THP to one page after a 2 MiB boundary", 0, THP_NR, 1);

    section("mremap shrinks a THP to 1 MiB in place");
    char *p = fresh(1);
    void *r = mremap(p, THP_SIZE, THP_SIZE / 2, 0);
    printf("mremap: %s\n", r == MAP_FAILED ? uffd_err(errno) : r == p ? "in place" : "moved?");
    state("after", p, THP_NR);
    thp_data("data 0-255", p, 0, 256, G1, 1);
    munmap(p, THP_SIZE / 2);
}

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#define MADV_COLD 20
#endif

static void pageouts(void) {
    section("MADV_PAGEOUT pages 0-9 of a THP (no swap)");
    char *p = fresh(1);
    printf("PAGEOUT: %s\n", res(madvise(p, 10 * UPAGE, MADV_PAGEOUT)));
    state("after", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);

    section("MADV_PAGEOUT of a whole THP (no swap)");
    p = fresh(1);
    printf("PAGEOUT: %s\n", res(madvise(p, THP_SIZE, MADV_PAGEOUT)));
    state("after", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);

    section("MADV_COLD of pages 0-9 of a THP");
    p = fresh(1);
    printf("COLD: %s\n", res(madvise(p, 10 * UPAGE, MADV_COLD)));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);

    section("MADV_COLD of a whole THP");
    p = fresh(1);
    printf("COLD: %s\n", res(madvise(p, THP_SIZE, MADV_COLD)));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);

    /* A THP of which only pages 0-9 hold data: splitting the folio maps each zero-filled
     * subpage to the shared zero page (remap_page with RMP_USE_SHARED_ZEROPAGE). */
    section("MADV_PAGEOUT of a whole THP, pages 0-9 written (no swap)");
    p = sparse(1);
    printf("PAGEOUT: %s\n", res(madvise(p, THP_SIZE, MADV_PAGEOUT)));
    state("after", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);

    section("MADV_PAGEOUT pages 100-109 of a THP, pages 0-9 written (no swap)");
    p = sparse(1);
    printf("PAGEOUT: %s\n", res(madvise(p + 100 * UPAGE, 10 * UPAGE, MADV_PAGEOUT)));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);

    section("MADV_COLD pages 100-109 of a THP, pages 0-9 written");
    p = sparse(1);
    printf("COLD: %s\n", res(madvise(p + 100 * UPAGE, 10 * UPAGE, MADV_COLD)));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);

    section("MADV_COLD of a whole THP, pages 0-9 written");
    p = sparse(1);
    printf("COLD: %s\n", res(madvise(p, THP_SIZE, MADV_COLD)));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);

    /* Pages 600-601 of the second 2 MiB's THP moved to pages 10-11, below it: the
     * PAGEOUT of the whole range meets the folio there first. */
    section("MADV_PAGEOUT of a THP whose pages 600-601 moved to 10-11 (no swap)");
    p = sparse(2);
    madvise(p, THP_SIZE, MADV_DONTNEED);
    printf("mremap: %s\n", mremap(p + 600 * UPAGE, 2 * UPAGE, 2 * UPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, p + 10 * UPAGE) == p + 10 * UPAGE ? "0" : res(-1));
    state("before", p, 2 * THP_NR);
    printf("PAGEOUT: %s\n", res(madvise(p, 2 * THP_SIZE, MADV_PAGEOUT)));
    state("after", p, 2 * THP_NR);
    munmap(p, 2 * THP_SIZE);

    section("MADV_PAGEOUT of a THP a child also maps, pages 0-9 written (no swap)");
    p = sparse(1);
    int go[2];
    if (pipe(go)) exit(2);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1) _exit(4);
        _exit(0);
    }
    printf("PAGEOUT: %s\n", res(madvise(p, THP_SIZE, MADV_PAGEOUT)));
    state("after", p, THP_NR);
    if (write(go[1], "g", 1) != 1) exit(2);
    waitpid(pid, NULL, 0);
    state("after the child's exit", p, THP_NR);
    printf("PAGEOUT: %s\n", res(madvise(p, THP_SIZE, MADV_PAGEOUT)));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);
}

int main(int argc, char **argv) {
    thp_khugepaged_settle();
    if (argc > 1 && strcmp(argv[1], "pageout") == 0) {
        pageouts();
    } else {
        munmaps();
        mprotects();
        dontneeds();
        mremaps();
    }
    thp_khugepaged_check();
    printf("done\n");
    return 0;
}
