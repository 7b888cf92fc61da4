// pagelab: cflags=-pthread
// thp_move: UFFDIO_MOVE with anonymous THPs (issue 10: uffd-unit-tests'
// move-pmd; reference MOVE-1). A source region (a fresh MADV_HUGEPAGE THP,
// every page written with generation g1, thp.h) is moved into a destination
// region registered MISSING on a uffd with UFFD_FEATURE_MOVE, both at
// 2 MiB-aligned bases. Each case prints the ioctl's result and `move` field,
// both regions' smaps (Rss, AnonHugePages) and pagemap flags in runs, the
// destination's frames against the source's snapshot (kept: the very frame
// moved) and its data.
//   * a whole PMD into an empty aligned destination moves the PMD itself;
//   * one 4 KiB page out of a THP splits the source;
//   * a whole PMD into a destination that already has a page table moves
//     4 KiB PTEs (the source is split);
//   * the huge zero PMD as a source; a uffd-wp'd source PMD (the
//     destination is not wp'd); a COW-shared THP (EBUSY); a hole after the
//     THP with and without ALLOW_SRC_HOLES.
#define _GNU_SOURCE
#include "thp.h"
#include <sys/wait.h>

static void section(const char *s) {
    printf("== %s\n", s);
}

static const int G1[] = { 1 };
static uint64_t snap[2 * THP_NR];
static int fd;

static int uffd_move(void *dst, void *src, size_t len, uint64_t mode, int64_t *moved) {
    struct pl_uffdio_move m = { .dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len, .mode = mode, .move = moved ? *moved : 0 };
    int r = ioctl(fd, PL_UFFDIO_MOVE, &m) < 0 ? -errno : 0;
    if (moved) *moved = m.move;
    return r;
}

static void move_line(const char *what, void *dst, void *src, size_t len, uint64_t mode) {
    int64_t moved = -1;
    int r = uffd_move(dst, src, len, mode, &moved);
    printf("%s: %s, move %ld\n", what, uffd_err(-r), (long)moved);
}

static char *thp_src(size_t n) {
    char *s = thp_map(n * THP_NR, MADV_HUGEPAGE);
    thp_fill(s, 0, n * THP_NR, 1);
    thp_require(s, n * THP_NR, 2048 * (long)n);
    thp_pfns(s, n * THP_NR, snap);
    return s;
}

static char *dst_region(size_t n) {
    char *d = thp_map(n * THP_NR, MADV_HUGEPAGE);
    int e = uffd_register(fd, d, n * THP_SIZE, UFFDIO_REGISTER_MODE_MISSING, NULL);
    if (e) printf("register: %s\n", uffd_err(-e));
    return d;
}

static void show(const char *what, const char *p, size_t n) {
    thp_smaps(what, p, 0, n);
    thp_pm(what, p, 0, n);
}

static void dst_frames(const char *d, size_t n) {
    thp_frames_vs("destination frames", d, n, snap);
}

static void whole(void) {
    section("move a whole THP into an empty aligned destination");
    char *s = thp_src(1), *d = dst_region(1);
    move_line("MOVE 2 MiB", d, s, THP_SIZE, 0);
    show("source", s, THP_NR);
    show("destination", d, THP_NR);
    dst_frames(d, THP_NR);
    printf("destination frames: %s\n", thp_frames(d, 0, THP_NR));
    thp_data("destination data", d, 0, THP_NR, G1, 1);
    munmap(s, THP_SIZE);
    munmap(d, THP_SIZE);

    section("move one 4 KiB page out of a THP");
    s = thp_src(1);
    d = dst_region(1);
    move_line("MOVE page 5", d + 5 * UPAGE, s + 5 * UPAGE, UPAGE, 0);
    show("source", s, THP_NR);
    show("destination", d, THP_NR);
    dst_frames(d, THP_NR);
    thp_data("source data", s, 0, 5, G1, 1);
    thp_data("source data", s, 6, THP_NR, G1, 1);
    thp_data("destination data", d, 5, 6, G1, 1);
    munmap(s, THP_SIZE);
    munmap(d, THP_SIZE);

    section("move a whole THP into a destination with a page table");
    s = thp_src(1);
    d = thp_map(THP_NR, MADV_NOHUGEPAGE);
    d[0] = 1;
    madvise(d, UPAGE, MADV_DONTNEED); /* the page table stays */
    madvise(d, THP_SIZE, MADV_HUGEPAGE);
    printf("register: %s\n", uffd_err(-uffd_register(fd, d, THP_SIZE, UFFDIO_REGISTER_MODE_MISSING, NULL)));
    move_line("MOVE 2 MiB", d, s, THP_SIZE, 0);
    show("source", s, THP_NR);
    show("destination", d, THP_NR);
    dst_frames(d, THP_NR);
    thp_data("destination data", d, 0, THP_NR, G1, 1);
    munmap(s, THP_SIZE);
    munmap(d, THP_SIZE);
}

static void special(void) {
    section("move a huge zero PMD");
    char *s = thp_map(THP_NR, MADV_HUGEPAGE), *d = dst_region(1);
    printf("read source page 0: %d\n", *(volatile char *)s);
    thp_pfns(s, THP_NR, snap);
    move_line("MOVE 2 MiB", d, s, THP_SIZE, 0);
    show("source", s, THP_NR);
    show("destination", d, THP_NR);
    dst_frames(d, THP_NR);
    munmap(s, THP_SIZE);
    munmap(d, THP_SIZE);

    section("move a uffd-wp'd THP");
    s = thp_src(1);
    d = dst_region(1);
    printf("register source WP: %s\n", uffd_err(-uffd_register(fd, s, THP_SIZE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect source: %s\n", uffd_err(-uffd_protect(fd, s, THP_SIZE)));
    thp_pm("source", s, 0, THP_NR);
    move_line("MOVE 2 MiB", d, s, THP_SIZE, 0);
    show("source", s, THP_NR);
    show("destination", d, THP_NR);
    dst_frames(d, THP_NR);
    d[UPAGE] = 2; /* not wp'd: no message */
    printf("wrote destination page 1, pending %d\n", uffd_pending(fd, 0));
    munmap(s, THP_SIZE);
    munmap(d, THP_SIZE);

    section("move a COW-shared THP");
    s = thp_src(1);
    d = dst_region(1);
    int go[2];
    if (pipe(go)) exit(2);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1) _exit(4);
        _exit(0);
    }
    move_line("MOVE 2 MiB", d, s, THP_SIZE, 0);
    move_line("MOVE page 5", d + 5 * UPAGE, s + 5 * UPAGE, UPAGE, 0);
    show("source", s, THP_NR);
    show("destination", d, THP_NR);
    if (write(go[1], "g", 1) != 1) exit(2);
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    move_line("MOVE 2 MiB after the child exited", d, s, THP_SIZE, 0);
    show("source", s, THP_NR);
    show("destination", d, THP_NR);
    munmap(s, THP_SIZE);
    munmap(d, THP_SIZE);
    close(go[0]);
    close(go[1]);

    section("move a THP and the hole after it");
    s = thp_map(2 * THP_NR, MADV_HUGEPAGE);
    thp_fill(s, 0, THP_NR, 1);
    thp_require(s, 2 * THP_NR, 2048);
    thp_pfns(s, 2 * THP_NR, snap);
    d = dst_region(2);
    move_line("MOVE 4 MiB", d, s, 2 * THP_SIZE, 0);
    show("source", s, 2 * THP_NR);
    show("destination", d, 2 * THP_NR);
    move_line("MOVE 4 MiB back with ALLOW_SRC_HOLES", s, d, 2 * THP_SIZE, PL_UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
    printf("register source MISSING: %s\n", uffd_err(-uffd_register(fd, s, 2 * THP_SIZE, UFFDIO_REGISTER_MODE_MISSING, NULL)));
    move_line("MOVE 4 MiB back with ALLOW_SRC_HOLES", s, d, 2 * THP_SIZE, PL_UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
    show("source", s, 2 * THP_NR);
    show("destination", d, 2 * THP_NR);
    thp_frames_vs("source frames", s, 2 * THP_NR, snap);
    munmap(s, 2 * THP_SIZE);
    munmap(d, 2 * THP_SIZE);
}

int main(void) {
    thp_khugepaged_settle();
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_MOVE);
    whole();
    special();
    close(fd);
    thp_khugepaged_check();
    printf("done\n");
    return 0;
}
