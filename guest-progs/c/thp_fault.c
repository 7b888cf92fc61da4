// thp_fault: the anonymous THP fault and its policy (issue 10; reference 5.3, 5.7).
// The host runs THP "enabled: madvise" (pagelab's default --thp madvise); the
// first lines print the policy files, so a host with another policy shows up
// there. Each section maps fresh private anonymous regions at a 2 MiB-aligned
// base (thp.h) and prints, after each access, the region's VMAs from
// /proc/self/smaps (Rss, AnonHugePages, THPeligible, VmFlags hg/nh), its
// pagemap flags per 4 KiB page in runs (p present, f file, w uffd-wp,
// x exclusively mapped, - none), how its frames relate (one 2 MiB frame: a PMD
// mapping or the huge zero page; one frame: the 4 KiB zero page) and the data.
//   * first-touch write in an aligned MADV_HUGEPAGE 2 MiB: one huge PMD;
//     4 MiB: each 2 MiB range faults on its own;
//   * controls: MADV_NOHUGEPAGE and no advice fault 4 KiB pages;
//   * a first read maps the huge zero page over the whole 2 MiB (not counted
//     in Rss or AnonHugePages), a later write replaces it by a THP; a read in
//     a 4 KiB region maps the 4 KiB zero page;
//   * fallbacks: a VMA too small, misaligned, one whose aligned middle is
//     eligible, a 2 MiB range that already has a page table, advice on half a
//     VMA; MADV_NOHUGEPAGE over a mapped THP keeps it;
//   * prctl(PR_SET_THP_DISABLE) (and PR_THP_DISABLE_EXCEPT_ADVISED).
#define _GNU_SOURCE
#include "thp.h"

static void section(const char *s) {
    printf("== %s\n", s);
}

static const int G1[] = { 1 };

static void show(const char *what, const char *p, size_t pages) {
    thp_smaps(what, p, 0, pages);
    thp_pm(what, p, 0, pages);
}

/* show() for a region that starts `off` pages after base. */
static void show_at(const char *what, const char *base, size_t off, size_t pages) {
    thp_smaps(what, base, off, off + pages);
    thp_pm(what, base, 0, off + pages);
}

static void aligned_write(void) {
    section("MADV_HUGEPAGE, 2 MiB aligned: first-touch write");
    char *p = thp_map(THP_NR, MADV_HUGEPAGE);
    show("untouched", p, THP_NR);
    thp_fill(p, 5, 6, 1);
    thp_require(p, THP_NR, 2048);
    show("after a write to page 5", p, THP_NR);
    printf("frames: %s\n", thp_frames(p, 0, THP_NR));
    thp_data("data", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);

    section("MADV_HUGEPAGE, 4 MiB aligned: each 2 MiB faults on its own");
    p = thp_map(2 * THP_NR, MADV_HUGEPAGE);
    thp_fill(p, 0, 1, 1);
    thp_require(p, 2 * THP_NR, 2048);
    show("after a write to page 0", p, 2 * THP_NR);
    thp_fill(p, 700, 701, 1);
    thp_require(p, 2 * THP_NR, 4096);
    show("after a write to page 700", p, 2 * THP_NR);
    printf("frames 0-511: %s, 512-1023: %s\n", thp_frames(p, 0, THP_NR), thp_frames(p, THP_NR, 2 * THP_NR));
    thp_data("data", p, 0, 2 * THP_NR, G1, 1);
    munmap(p, 2 * THP_SIZE);
}

static void controls(void) {
    section("controls: MADV_NOHUGEPAGE and no advice");
    char *p = thp_map(THP_NR, MADV_NOHUGEPAGE);
    show("nohugepage untouched", p, THP_NR);
    thp_fill(p, 5, 6, 1);
    thp_fill(p, 300, 301, 1);
    show("nohugepage after writes to pages 5 and 300", p, THP_NR);
    munmap(p, THP_SIZE);
    p = thp_map(THP_NR, THP_NO_ADVICE);
    show("no advice untouched", p, THP_NR);
    thp_fill(p, 5, 6, 1);
    show("no advice after a write to page 5", p, THP_NR);
    munmap(p, THP_SIZE);
}

static void zero_page(void) {
    section("first read: the huge zero page");
    char *p = thp_map(THP_NR, MADV_HUGEPAGE);
    char c = *(volatile char *)(p + 7 * UPAGE + 5);
    printf("read page 7: %d\n", c);
    show("after the read", p, THP_NR);
    printf("frames: %s\n", thp_frames(p, 0, THP_NR));
    uint64_t zero[THP_NR];
    thp_pfns(p, THP_NR, zero);
    c = *(volatile char *)(p + 300 * UPAGE);
    printf("read page 300: %d\n", c);
    thp_pm("after a second read", p, 0, THP_NR);
    /* A second region's read maps the same huge zero page. */
    char *q = thp_map(THP_NR, MADV_HUGEPAGE);
    c = *(volatile char *)q;
    thp_frames_vs("second region after a read, frames vs the first", q, THP_NR, zero);
    munmap(q, THP_SIZE);
    thp_fill(p, 9, 10, 1);
    show("after a write to page 9", p, THP_NR);
    printf("frames: %s\n", thp_frames(p, 0, THP_NR));
    thp_frames_vs("frames vs the huge zero page", p, THP_NR, zero);
    thp_data("data", p, 0, THP_NR, G1, 1);
    munmap(p, THP_SIZE);

    section("first read in a 4 KiB region: the 4 KiB zero page");
    p = thp_map(THP_NR, MADV_NOHUGEPAGE);
    for (int i = 7; i < 10; i++) c = *(volatile char *)(p + i * UPAGE);
    show("after reads of pages 7-9", p, THP_NR);
    printf("frames 7-9: %s\n", thp_frames(p, 7, 10));
    thp_fill(p, 8, 9, 1);
    thp_pm("after a write to page 8", p, 0, THP_NR);
    thp_data("data 6-10", p, 6, 11, G1, 1);
    munmap(p, THP_SIZE);
}

static void fallbacks(void) {
    section("fallback: a 1 MiB MADV_HUGEPAGE VMA");
    char *base;
    char *p = thp_map(256, MADV_HUGEPAGE);
    show("untouched", p, 256);
    thp_fill(p, 0, 1, 1);
    show("after a write to page 0", p, 256);
    munmap(p, 256 * UPAGE);

    section("fallback: 2 MiB MADV_HUGEPAGE starting one page after a 2 MiB boundary");
    p = thp_map_at(THP_NR, 1, MADV_HUGEPAGE, &base);
    show_at("untouched", base, 1, THP_NR);
    thp_fill(base, 1, 2, 1);
    thp_fill(base, 512, 513, 1);
    show_at("after writes to pages 1 and 512", base, 1, THP_NR);
    munmap(p, THP_SIZE);

    section("fallback: 4 MiB MADV_HUGEPAGE starting one page after a 2 MiB boundary");
    p = thp_map_at(2 * THP_NR, 1, MADV_HUGEPAGE, &base);
    show_at("untouched", base, 1, 2 * THP_NR);
    thp_fill(base, 1, 2, 1);
    show_at("after a write to page 1", base, 1, 2 * THP_NR);
    thp_fill(base, 600, 601, 1);
    show_at("after a write to page 600", base, 1, 2 * THP_NR);
    thp_fill(base, 1024, 1025, 1);
    show_at("after a write to page 1024", base, 1, 2 * THP_NR);
    printf("frames 512-1023: %s\n", thp_frames(base, THP_NR, 2 * THP_NR));
    munmap(p, 2 * THP_SIZE);

    section("fallback: a 2 MiB range that already has a page table");
    p = thp_map(THP_NR, THP_NO_ADVICE);
    thp_fill(p, 0, 1, 1);
    printf("madvise HUGEPAGE after a 4 KiB write: %s\n", uffd_err(madvise(p, THP_SIZE, MADV_HUGEPAGE) ? errno : 0));
    thp_fill(p, 5, 6, 1);
    show("after a write to page 5", p, THP_NR);
    munmap(p, THP_SIZE);

    section("MADV_HUGEPAGE on the second half of a 4 MiB VMA");
    p = thp_map(2 * THP_NR, THP_NO_ADVICE);
    printf("madvise HUGEPAGE pages 512-1023: %s\n", uffd_err(madvise(p + THP_SIZE, THP_SIZE, MADV_HUGEPAGE) ? errno : 0));
    thp_fill(p, 0, 1, 1);
    thp_fill(p, 600, 601, 1);
    show("after writes to pages 0 and 600", p, 2 * THP_NR);
    munmap(p, 2 * THP_SIZE);

    section("MADV_NOHUGEPAGE over a mapped THP");
    p = thp_map(2 * THP_NR, MADV_HUGEPAGE);
    thp_fill(p, 0, 1, 1);
    thp_require(p, 2 * THP_NR, 2048);
    printf("madvise NOHUGEPAGE: %s\n", uffd_err(madvise(p, 2 * THP_SIZE, MADV_NOHUGEPAGE) ? errno : 0));
    thp_fill(p, 600, 601, 1);
    show("after a write to page 600", p, 2 * THP_NR);
    thp_data("data 0-1", p, 0, 2, G1, 1);
    munmap(p, 2 * THP_SIZE);
}

static long thp_get(void) {
    long r = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0);
    return r < 0 ? -errno : r;
}

static const char *prctl_res(long r) {
    static char b[32];
    if (r < 0) return uffd_err(errno);
    snprintf(b, sizeof b, "%ld", r);
    return b;
}

static void thp_prctl(void) {
    section("prctl(PR_SET_THP_DISABLE)");
    char *old = thp_map(2 * THP_NR, MADV_HUGEPAGE);
    thp_fill(old, 0, 1, 1);
    thp_require(old, 2 * THP_NR, 2048);
    printf("PR_GET_THP_DISABLE: %ld, status THP_enabled %ld\n", thp_get(), thp_status_enabled());
    printf("PR_SET_THP_DISABLE 1: %s\n", prctl_res(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)));
    printf("PR_GET_THP_DISABLE: %ld, status THP_enabled %ld\n", thp_get(), thp_status_enabled());
    char *p = thp_map(THP_NR, MADV_HUGEPAGE);
    thp_fill(p, 5, 6, 1);
    show("disabled: new region after a write to page 5", p, THP_NR);
    thp_fill(old, 600, 601, 1);
    show("disabled: region mapped before, after a write to page 600", old, 2 * THP_NR);
    munmap(p, THP_SIZE);
    printf("PR_SET_THP_DISABLE 0: %s\n", prctl_res(prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0)));
    printf("PR_GET_THP_DISABLE: %ld, status THP_enabled %ld\n", thp_get(), thp_status_enabled());
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    thp_fill(p, 5, 6, 1);
    show("enabled again: new region after a write to page 5", p, THP_NR);
    munmap(p, THP_SIZE);
    munmap(old, 2 * THP_SIZE);

    section("prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED)");
    printf("PR_SET_THP_DISABLE 1 EXCEPT_ADVISED: %s\n", prctl_res(prctl(PR_SET_THP_DISABLE, 1, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0)));
    printf("PR_GET_THP_DISABLE: %ld, status THP_enabled %ld\n", thp_get(), thp_status_enabled());
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    thp_fill(p, 5, 6, 1);
    show("except advised: MADV_HUGEPAGE region after a write to page 5", p, THP_NR);
    munmap(p, THP_SIZE);
    p = thp_map(THP_NR, THP_NO_ADVICE);
    thp_fill(p, 5, 6, 1);
    show("except advised: no-advice region after a write to page 5", p, THP_NR);
    munmap(p, THP_SIZE);
    printf("PR_SET_THP_DISABLE 0 EXCEPT_ADVISED: %s\n", prctl_res(prctl(PR_SET_THP_DISABLE, 0, PR_THP_DISABLE_EXCEPT_ADVISED, 0, 0)));
    printf("PR_SET_THP_DISABLE 1 flag 4: %s\n", prctl_res(prctl(PR_SET_THP_DISABLE, 1, 4, 0, 0)));
    printf("PR_SET_THP_DISABLE 1 0 1: %s\n", prctl_res(prctl(PR_SET_THP_DISABLE, 1, 0, 1, 0)));
    printf("PR_GET_THP_DISABLE 1: %s\n", prctl_res(prctl(PR_GET_THP_DISABLE, 1, 0, 0, 0)));
    printf("PR_SET_THP_DISABLE 0: %s\n", prctl_res(prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0)));
    printf("PR_GET_THP_DISABLE: %ld, status THP_enabled %ld\n", thp_get(), thp_status_enabled());
}

int main(void) {
    thp_khugepaged_settle();
    section("policy");
    thp_sysfs_line("enabled");
    thp_sysfs_line("defrag");
    thp_sysfs_line("use_zero_page");
    thp_sysfs_line("hpage_pmd_size");
    aligned_write();
    controls();
    zero_page();
    fallbacks();
    thp_prctl();
    thp_khugepaged_check();
    printf("done\n");
    return 0;
}
