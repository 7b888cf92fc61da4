// pagelab: cflags=-pthread
// thp_collapse: MADV_COLLAPSE of anonymous memory, synchronous (issue 10;
// reference 5.7, THP-4). Each case maps a fresh region at a 2 MiB-aligned base
// (thp.h), populates some pages with generation g1, takes a snapshot of the
// frames, calls madvise(MADV_COLLAPSE) and prints its result, the VMA (smaps
// Rss, AnonHugePages), pagemap flags in runs, the frames (against the snapshot,
// and whether they form one 2 MiB frame) and the data.
//   * 512 4 KiB pages (no advice, MADV_HUGEPAGE), a range with none PTEs, an
//     empty range, a THP already PMD-mapped, a THP split to PTEs, zero pages;
//   * ranges that hold no aligned 2 MiB, a VMA too small, two THPs at once;
//   * refusals: MADV_NOHUGEPAGE, PR_SET_THP_DISABLE, COW-shared pages after
//     fork;
//   * uffd: a uffd-wp'd PTE refuses (EINVAL) until un-protected; none PTEs in
//     a uffd-armed VMA refuse (EBUSY) until the uffd is closed.
#define _GNU_SOURCE
#include "thp.h"
#include <sys/wait.h>

static void section(const char *s) {
    printf("== %s\n", s);
}

static const int G1[] = { 1 };
static uint64_t snap[2 * THP_NR];

/* MADV_COLLAPSE, retried while it says EAGAIN: Linux returns that for transient states
 * (a page still in a per-CPU LRU batch or locked: SCAN_PAGE_LRU, SCAN_PAGE_LOCK), which
 * a loaded host hits now and then right after an un-protect; the transcript records the
 * settled answer. */
static const char *collapse(char *p, size_t lo, size_t hi) {
    for (int tries = 0;; tries++) {
        int r = madvise(p + lo * UPAGE, (hi - lo) * UPAGE, MADV_COLLAPSE);
        if (!r) return "0";
        if (errno != EAGAIN || tries == 50) return shm_err(errno);
        usleep(2000);
    }
}

static void state(const char *what, const char *p, size_t n) {
    char w[128];
    thp_smaps(what, p, 0, n);
    thp_pm(what, p, 0, n);
    snprintf(w, sizeof w, "%s frames", what);
    thp_frames_vs(w, p, n, snap);
    for (size_t i = 0; i < n; i += THP_NR) printf("%s frames %zu-%zu: %s\n", what, i, i + THP_NR - 1, thp_frames(p, i, i + THP_NR));
}

/* A region of n 2 MiB with pages [lo, hi) written (g1); frames in snap. */
static char *region(size_t n, int advice, size_t lo, size_t hi) {
    char *p = thp_map(n * THP_NR, advice);
    thp_fill(p, lo, hi, 1);
    thp_pfns(p, n * THP_NR, snap);
    return p;
}

static void basic(void) {
    section("512 4 KiB pages, no advice");
    char *p = region(1, THP_NO_ADVICE, 0, THP_NR);
    state("before", p, THP_NR);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);

    section("pages 0-9 written, MADV_HUGEPAGE after the writes");
    p = region(1, THP_NO_ADVICE, 0, 10);
    madvise(p, THP_SIZE, MADV_HUGEPAGE);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);

    section("one page written");
    p = region(1, THP_NO_ADVICE, 300, 301);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);

    section("an empty range");
    p = region(1, THP_NO_ADVICE, 0, 0);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    thp_pm("after", p, 0, THP_NR);
    munmap(p, THP_SIZE);

    section("4 KiB zero pages only");
    p = region(1, MADV_NOHUGEPAGE, 0, 0);
    for (size_t i = 0; i < THP_NR; i++) (void)*(volatile char *)(p + i * UPAGE);
    madvise(p, THP_SIZE, MADV_HUGEPAGE);
    thp_pm("before", p, 0, THP_NR);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    thp_pm("after", p, 0, THP_NR);
    printf("frames: %s\n", thp_frames(p, 0, THP_NR));
    munmap(p, THP_SIZE);

    section("a PMD-mapped THP");
    p = region(1, MADV_HUGEPAGE, 0, THP_NR);
    thp_require(p, THP_NR, 2048);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);

    section("a THP split to PTEs (mprotect of pages 0-9 and back)");
    p = region(1, MADV_HUGEPAGE, 0, THP_NR);
    thp_require(p, THP_NR, 2048);
    mprotect(p, 10 * UPAGE, PROT_READ);
    mprotect(p, 10 * UPAGE, PROT_READ | PROT_WRITE);
    state("before", p, THP_NR);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);
}

static void ranges(void) {
    section("pages 0-9 of a 2 MiB VMA of 4 KiB pages");
    char *p = region(1, THP_NO_ADVICE, 0, THP_NR);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, 10));
    thp_smaps("after", p, 0, THP_NR);
    printf("MADV_COLLAPSE pages 1-511: %s\n", collapse(p, 1, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    printf("MADV_COLLAPSE pages 0-510: %s\n", collapse(p, 0, THP_NR - 1));
    thp_smaps("after", p, 0, THP_NR);
    munmap(p, THP_SIZE);

    section("a 1 MiB VMA");
    p = region(1, THP_NO_ADVICE, 0, 0);
    munmap(p + THP_SIZE / 2, THP_SIZE / 2);
    thp_fill(p, 0, 256, 1);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, 256));
    thp_smaps("after", p, 0, 256);
    munmap(p, THP_SIZE / 2);

    section("two 2 MiB ranges of 4 KiB pages, pages 100-900 written");
    p = region(2, THP_NO_ADVICE, 100, 901);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, 2 * THP_NR));
    state("after", p, 2 * THP_NR);
    thp_data("data", p, 0, 2 * THP_NR, G1, 1);
    munmap(p, 2 * THP_SIZE);

    section("a range running past the VMA");
    p = region(1, THP_NO_ADVICE, 0, THP_NR);
    printf("MADV_COLLAPSE pages 0-1023: %s\n", collapse(p, 0, 2 * THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    munmap(p, THP_SIZE);
}

static void refusals(void) {
    section("MADV_NOHUGEPAGE");
    char *p = region(1, MADV_NOHUGEPAGE, 0, THP_NR);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    munmap(p, THP_SIZE);

    section("PR_SET_THP_DISABLE");
    p = region(1, THP_NO_ADVICE, 0, THP_NR);
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
    printf("MADV_COLLAPSE after PR_SET_THP_DISABLE 0: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    munmap(p, THP_SIZE);

    section("COW-shared 4 KiB pages after fork");
    p = region(1, THP_NO_ADVICE, 0, THP_NR);
    int go[2], back[2];
    if (pipe(go) || pipe(back)) exit(2);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1) _exit(4);
        _exit(0);
    }
    printf("MADV_COLLAPSE in the parent: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("parent", p, 0, THP_NR);
    thp_pm("parent", p, 0, THP_NR);
    thp_smaps_pid(pid, "child", p, 0, THP_NR);
    thp_pm_pid(pid, "child", p, 0, THP_NR);
    thp_frames_vs_pid(pid, "child frames", p, THP_NR, snap, 0);
    if (write(go[1], "g", 1) != 1) exit(2);
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    thp_data("parent data", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);
}

static void uffd(void) {
    section("uffd-wp: one protected PTE");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    char *p = region(1, THP_NO_ADVICE, 0, THP_NR);
    printf("register WP: %s\n", uffd_err(-uffd_register(fd, p, THP_SIZE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect page 5: %s\n", uffd_err(-uffd_protect(fd, p + 5 * UPAGE, UPAGE)));
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    printf("unprotect page 5: %s\n", uffd_err(-uffd_unprotect(fd, p + 5 * UPAGE, UPAGE)));
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    printf("protect pages 0-511: %s\n", uffd_err(-uffd_protect(fd, p, THP_SIZE)));
    thp_smaps("protected", p, 0, THP_NR);
    thp_pm("protected", p, 0, THP_NR);
    printf("MADV_COLLAPSE of the protected PMD: %s\n", collapse(p, 0, THP_NR));
    thp_pm("after", p, 0, THP_NR);
    close(fd);
    munmap(p, THP_SIZE);

    section("uffd-wp: none PTEs in a registered VMA");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    p = region(1, THP_NO_ADVICE, 0, 10);
    printf("register WP: %s\n", uffd_err(-uffd_register(fd, p, THP_SIZE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    printf("close the uffd\n");
    close(fd);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);

    section("MISSING: none PTEs in a registered VMA");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    p = region(1, THP_NO_ADVICE, 0, 10);
    printf("register MISSING: %s\n", uffd_err(-uffd_register(fd, p, THP_SIZE, UFFDIO_REGISTER_MODE_MISSING, NULL)));
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    close(fd);
    munmap(p, THP_SIZE);
}

/* Only none and zero-page PTEs: EINVAL in a VMA without advice; in a MADV_HUGEPAGE one
 * they collapse into a zeroed THP once the VMA has an anon_vma (a write, or the huge zero
 * page, gave it one); 4 KiB zero pages only (no anon_vma) are EINVAL. Read-only PTEs with
 * data collapse too. */
static void zero_and_none(void) {
    volatile char c;
    section("only none and zero-page PTEs");
    char *p = region(1, THP_NO_ADVICE, 0, 1);
    madvise(p, UPAGE, MADV_DONTNEED);
    printf("a page table of none PTEs (after a write): %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);
    p = region(1, THP_NO_ADVICE, 0, 1);
    madvise(p, THP_SIZE, MADV_DONTNEED);
    printf("MADV_DONTNEED of the whole 2 MiB first: %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);
    p = region(1, THP_NO_ADVICE, 0, 0);
    madvise(p, THP_SIZE, MADV_HUGEPAGE);
    c = p[0];
    madvise(p + UPAGE, UPAGE, MADV_DONTNEED);
    printf("a split huge zero page, one page zapped: %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);
    p = region(1, THP_NO_ADVICE, 0, 0);
    for (size_t i = 0; i < THP_NR; i++) c = p[i * UPAGE];
    printf("512 zero-page PTEs, no anon_vma: %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);
    p = region(1, THP_NO_ADVICE, 0, 4);
    mprotect(p, THP_SIZE, PROT_READ);
    printf("4 written pages, then read-only: %s\n", collapse(p, 0, THP_NR));
    state("after", p, THP_NR);
    munmap(p, THP_SIZE);
    (void)c;
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* A region of n 2 MiB whose first 2 MiB has no page table (a page written, then the whole
 * 2 MiB zapped: its page table goes). */
static char *region_no_table(size_t n) {
    char *p = region(n, THP_NO_ADVICE, 0, 1);
    madvise(p, THP_SIZE, MADV_DONTNEED);
    return p;
}

/* Ranges where one 2 MiB stops MADV_COLLAPSE before the next, and PTEs Linux counts as
 * present though the hardware does not (PROT_NONE), and guard markers (found by the
 * random programs of issue 11). */
static void mixed(void) {
    volatile char c;
    section("no page table, then 4 KiB pages");
    char *p = region_no_table(2);
    thp_fill(p, THP_NR, 2 * THP_NR, 1);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, 2 * THP_NR));
    thp_smaps("after", p, 0, 2 * THP_NR);
    munmap(p, 2 * THP_SIZE);

    section("4 KiB pages, then no page table");
    p = region(2, THP_NO_ADVICE, 0, THP_NR);
    thp_fill(p, THP_NR, THP_NR + 1, 1);
    madvise(p + THP_SIZE, THP_SIZE, MADV_DONTNEED);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, 2 * THP_NR));
    thp_smaps("after", p, 0, 2 * THP_NR);
    munmap(p, 2 * THP_SIZE);

    section("MISSING: no page table, then none PTEs");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    p = region_no_table(2);
    thp_fill(p, THP_NR, THP_NR + 8, 1);
    printf("register MISSING: %s\n", uffd_err(-uffd_register(fd, p, 2 * THP_SIZE, UFFDIO_REGISTER_MODE_MISSING, NULL)));
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, 2 * THP_NR));
    thp_smaps("after", p, 0, 2 * THP_NR);
    close(fd);
    munmap(p, 2 * THP_SIZE);

    section("PROT_NONE 4 KiB pages");
    p = region(1, THP_NO_ADVICE, 0, THP_NR);
    mprotect(p, THP_SIZE, PROT_NONE);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    thp_pm("after", p, 0, THP_NR);
    mprotect(p, THP_SIZE, PROT_READ | PROT_WRITE);
    thp_frames_vs("after frames", p, THP_NR, snap);
    thp_data("data", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);

    section("PROT_NONE zero-page PTEs and one page");
    p = region(1, THP_NO_ADVICE, 0, 1);
    for (size_t i = 1; i < THP_NR; i++) c = p[i * UPAGE];
    mprotect(p, THP_SIZE, PROT_NONE);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    munmap(p, THP_SIZE);

    section("MISSING: PROT_NONE zero-page PTEs, then a guard page");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    p = region(1, THP_NO_ADVICE, 0, 1);
    for (size_t i = 1; i < THP_NR; i++) c = p[i * UPAGE];
    madvise(p + 400 * UPAGE, UPAGE, MADV_GUARD_INSTALL);
    mprotect(p, THP_SIZE, PROT_NONE);
    printf("register MISSING: %s\n", uffd_err(-uffd_register(fd, p, THP_SIZE, UFFDIO_REGISTER_MODE_MISSING, NULL)));
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    close(fd);
    munmap(p, THP_SIZE);

    section("a guard page among 4 KiB pages");
    p = region(1, THP_NO_ADVICE, 0, THP_NR);
    printf("guard page 5: %s\n", madvise(p + 5 * UPAGE, UPAGE, MADV_GUARD_INSTALL) ? shm_err(errno) : "0");
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    thp_smaps("after", p, 0, THP_NR);
    thp_pm("after", p, 0, THP_NR);
    munmap(p, THP_SIZE);

    section("a PROT_NONE PMD-mapped THP, then 4 KiB pages");
    p = region(2, MADV_HUGEPAGE, 0, THP_NR);
    madvise(p + THP_SIZE, THP_SIZE, MADV_NOHUGEPAGE);
    thp_fill(p, THP_NR, 2 * THP_NR, 1);
    madvise(p + THP_SIZE, THP_SIZE, MADV_HUGEPAGE);
    mprotect(p, 2 * THP_SIZE, PROT_NONE);
    thp_smaps("before", p, 0, 2 * THP_NR);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, 2 * THP_NR));
    thp_smaps("after", p, 0, 2 * THP_NR);
    mprotect(p, 2 * THP_SIZE, PROT_READ | PROT_WRITE);
    thp_data("data", p, 0, 2 * THP_NR, G1, 1);
    munmap(p, 2 * THP_SIZE);
    (void)c;
}

int main(void) {
    thp_khugepaged_settle();
    basic();
    ranges();
    refusals();
    uffd();
    zero_and_none();
    mixed();
    thp_khugepaged_check();
    printf("done\n");
    return 0;
}
