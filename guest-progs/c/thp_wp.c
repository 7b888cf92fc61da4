// pagelab: cflags=-pthread
// thp_wp: userfaultfd on anonymous THPs (issue 10; reference 5.3, 5.7, THP-1,
// THP-2). Each case maps a fresh MADV_HUGEPAGE region at a 2 MiB-aligned base,
// writes every page (generation g1, thp.h) so it is PMD-mapped, registers it on
// a non-blocking uffd served by a handler thread, and prints smaps (Rss,
// AnonHugePages, VmFlags uw/um), pagemap flags in runs (w: uffd-wp) and the
// frames against a snapshot taken before (kept/new). The main thread does the
// faulting accesses; the handler prints each message (pages relative to the
// region), says what it does, then does it; the main thread prints the
// handler's result once the handler has finished with the message.
//   * protect a whole THP: the PMD stays (AnonHugePages 2048, wp on all 512
//     pages); a write gives one WP message with the 4 KiB-aligned address;
//     un-protecting the whole 2 MiB keeps the PMD, un-protecting the 4 KiB
//     page splits it and leaves the other 511 protected;
//   * partial protect and partial un-protect split; a range covering one whole
//     PMD and part of the next keeps the first and splits the second;
//   * EXACT_ADDRESS gives the exact faulting byte;
//   * the huge zero page: protected whole it stays a huge zero PMD with wp; a
//     write faults WP, then becomes a THP; protected in part it splits into
//     4 KiB zero-page PTEs;
//   * UNREGISTER of part of a protected THP and close of the uffd;
//   * MISSING on an untouched THP-eligible range: the message comes before
//     anything is mapped (a read maps no huge zero page), COPY and ZEROPAGE
//     fill 4 KiB PTEs, even over the whole 2 MiB;
//   * WP on an untouched THP-eligible range: without WP_UNPOPULATED protect
//     does nothing and the write maps a THP silently; with it protect installs
//     512 markers and the write faults in a 4 KiB page.
// The argument "async" runs the UFFD_FEATURE_WP_ASYNC cases instead
// (thp_wp.async.expected): a write to a protected THP splits it and clears
// only the written page, no message.
#define _GNU_SOURCE
#include "thp.h"

static void section(const char *s) {
    printf("== %s\n", s);
}

static const int G12[] = { 1, 2 };
static const int G13[] = { 1, 3 };
static uint64_t snap[2 * THP_NR];
static char *src; /* 2 MiB of generation 3 data, the source of UFFDIO_COPY */

/* What the handler does with a PAGEFAULT message. */
enum { H_NOTHING, H_UNPROT_PMD, H_UNPROT_PAGE, H_COPY_PAGE, H_COPY_PMD, H_ZERO_PAGE, H_ZERO_PMD };
static volatile int hmode;
static char *volatile cur; /* the region messages are printed against */
static volatile long h_done, h_res, h_field;

static void on_msg(struct uffd_handler *h, const struct uffd_msg *m) {
    char b[128];
    uffd_msg_str(m, cur, b, sizeof b);
    printf("handler: %s\n", b);
    long r = 0;
    int64_t field = 0;
    if (m->event == UFFD_EVENT_PAGEFAULT) {
        uintptr_t a = m->arg.pagefault.address;
        char *page = (char *)(a & ~(UPAGE - 1)), *pmd = (char *)(a & ~(THP_SIZE - 1));
        long pi = uffd_pidx(cur, (uintptr_t)page), mi = uffd_pidx(cur, (uintptr_t)pmd);
        switch (hmode) {
        case H_UNPROT_PMD:
            printf("handler: unprotect pages %ld-%ld\n", mi, mi + (long)THP_NR - 1);
            r = uffd_unprotect(h->fd, pmd, THP_SIZE);
            break;
        case H_UNPROT_PAGE:
            printf("handler: unprotect page %ld\n", pi);
            r = uffd_unprotect(h->fd, page, UPAGE);
            break;
        case H_COPY_PAGE:
            printf("handler: copy page %ld\n", pi);
            field = -1;
            r = uffd_copy(h->fd, page, src + (size_t)pi % THP_NR * UPAGE, UPAGE, 0, &field);
            break;
        case H_COPY_PMD:
            printf("handler: copy pages %ld-%ld\n", mi, mi + (long)THP_NR - 1);
            field = -1;
            r = uffd_copy(h->fd, pmd, src, THP_SIZE, 0, &field);
            break;
        case H_ZERO_PAGE:
            printf("handler: zeropage page %ld\n", pi);
            field = -1;
            r = uffd_zeropage(h->fd, page, UPAGE, 0, &field);
            break;
        case H_ZERO_PMD:
            printf("handler: zeropage pages %ld-%ld\n", mi, mi + (long)THP_NR - 1);
            field = -1;
            r = uffd_zeropage(h->fd, pmd, THP_SIZE, 0, &field);
            break;
        default:
            printf("handler: nothing\n");
        }
    }
    h_res = r;
    h_field = field;
    __atomic_add_fetch(&h_done, 1, __ATOMIC_RELEASE);
}

/* Waits until the handler has finished with `n` messages in all, then prints
 * its result. */
static void handler_result(long n) {
    for (int i = 0; i < 5000 && __atomic_load_n(&h_done, __ATOMIC_ACQUIRE) < n; i++) usleep(1000);
    long done = __atomic_load_n(&h_done, __ATOMIC_ACQUIRE);
    if (done != n) {
        printf("handler result: %ld messages handled, expected %ld\n", done, n);
        return;
    }
    if (hmode == H_COPY_PAGE || hmode == H_COPY_PMD || hmode == H_ZERO_PAGE || hmode == H_ZERO_PMD)
        printf("handler result: %s, field %ld\n", uffd_err(-(int)h_res), h_field);
    else printf("handler result: %s\n", uffd_err(-(int)h_res));
}

/* A fresh region of n THPs, every page written (g1), PMD-mapped; frames in snap. */
static char *fresh(size_t n) {
    char *p = thp_map(n * THP_NR, MADV_HUGEPAGE);
    thp_fill(p, 0, n * THP_NR, 1);
    thp_require(p, n * THP_NR, 2048 * (long)n);
    thp_pfns(p, n * THP_NR, snap);
    cur = p;
    return p;
}

static void state(const char *what, const char *p, size_t n) {
    char w[128];
    thp_smaps(what, p, 0, n);
    thp_pm(what, p, 0, n);
    snprintf(w, sizeof w, "%s frames", what);
    thp_frames_vs(w, p, n, snap);
}

static void reg(int fd, char *p, size_t pages, uint64_t mode) {
    int e = uffd_register(fd, p, pages * UPAGE, mode, NULL);
    printf("register %s: %s\n", mode == UFFDIO_REGISTER_MODE_WP ? "WP" : mode == UFFDIO_REGISTER_MODE_MISSING ? "MISSING" : "?", uffd_err(-e));
}

static void protect(int fd, char *p, size_t lo, size_t hi) {
    printf("protect pages %zu-%zu: %s\n", lo, hi - 1, uffd_err(-uffd_protect(fd, p + lo * UPAGE, (hi - lo) * UPAGE)));
}

static void unprotect(int fd, char *p, size_t lo, size_t hi) {
    printf("unprotect pages %zu-%zu: %s\n", lo, hi - 1, uffd_err(-uffd_unprotect(fd, p + lo * UPAGE, (hi - lo) * UPAGE)));
}

/* Writes generation g into page i (a faulting write waits for the handler). */
static void write_page(char *p, size_t i, int g, size_t off) {
    printf("write page %zu off %zu\n", i, off);
    pl_flush();
    *(volatile char *)(p + i * UPAGE + off) = thp_byte((long)i, g);
    uffd_barrier();
    thp_fill(p, i, i + 1, g);
}

static void wp_whole(void) {
    section("protect a whole THP");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    struct uffd_handler h;
    char *p = fresh(1);
    h_done = 0;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_WP);
    state("registered", p, THP_NR);
    protect(fd, p, 0, THP_NR);
    state("protected", p, THP_NR);
    printf("read page 7: %s\n", *(volatile char *)(p + 7 * UPAGE) == thp_byte(7, 1) ? "g1" : "other");
    printf("messages so far: %ld\n", h.nmsgs);
    hmode = H_UNPROT_PMD;
    write_page(p, 7, 2, 100);
    handler_result(1);
    state("after the write", p, THP_NR);

    section("protect a whole THP again, resolve the 4 KiB page");
    protect(fd, p, 0, THP_NR);
    state("protected", p, THP_NR);
    hmode = H_UNPROT_PAGE;
    write_page(p, 9, 2, 4095);
    handler_result(2);
    state("after the write", p, THP_NR);
    write_page(p, 10, 2, 0);
    handler_result(3);
    state("after a write to page 10", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G12, 2);
    printf("messages: %ld\n", h.nmsgs);
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, THP_SIZE);
}

static void wp_partial(void) {
    section("partial protect of a THP");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    struct uffd_handler h;
    char *p = fresh(1);
    h_done = 0;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, 10);
    state("protected", p, THP_NR);
    hmode = H_UNPROT_PAGE;
    write_page(p, 20, 2, 0);
    printf("messages so far: %ld\n", h.nmsgs);
    write_page(p, 5, 2, 0);
    handler_result(1);
    state("after writes to pages 20 and 5", p, THP_NR);
    munmap(p, THP_SIZE);

    section("partial un-protect of a protected THP");
    p = fresh(1);
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, THP_NR);
    unprotect(fd, p, 500, THP_NR);
    state("after", p, THP_NR);
    write_page(p, 505, 2, 0);
    printf("messages so far: %ld\n", h.nmsgs);
    munmap(p, THP_SIZE);

    section("protect pages 0-600 of two THPs");
    p = fresh(2);
    reg(fd, p, 2 * THP_NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, 601);
    state("protected", p, 2 * THP_NR);
    write_page(p, 700, 2, 0);
    printf("messages so far: %ld\n", h.nmsgs);
    hmode = H_UNPROT_PMD;
    write_page(p, 0, 2, 0);
    handler_result(2);
    state("after writes to pages 700 and 0", p, 2 * THP_NR);
    thp_data("data", p, 0, 2 * THP_NR, G12, 2);
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, 2 * THP_SIZE);
}

static void wp_exact(void) {
    section("EXACT_ADDRESS");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_EXACT_ADDRESS);
    struct uffd_handler h;
    char *p = fresh(1);
    h_done = 0;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, THP_NR);
    hmode = H_UNPROT_PMD;
    write_page(p, 3, 2, 0x123);
    handler_result(1);
    state("after the write", p, THP_NR);
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, THP_SIZE);
}

static void wp_zero(void) {
    section("protect a whole huge zero PMD");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    struct uffd_handler h;
    char *p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    h_done = 0;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    printf("read page 0: %d\n", *(volatile char *)p);
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, THP_NR);
    thp_smaps("protected", p, 0, THP_NR);
    thp_pm("protected", p, 0, THP_NR);
    printf("frames: %s\n", thp_frames(p, 0, THP_NR));
    hmode = H_UNPROT_PMD;
    write_page(p, 4, 2, 0);
    handler_result(1);
    thp_smaps("after the write", p, 0, THP_NR);
    thp_pm("after the write", p, 0, THP_NR);
    printf("frames: %s\n", thp_frames(p, 0, THP_NR));
    thp_data("data", p, 0, THP_NR, G12, 2);
    munmap(p, THP_SIZE);

    section("protect part of a huge zero PMD");
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    printf("read page 0: %d\n", *(volatile char *)p);
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, 10);
    thp_smaps("protected", p, 0, THP_NR);
    thp_pm("protected", p, 0, THP_NR);
    printf("frames: %s, page 0 is %s\n", thp_frames(p, 0, THP_NR), thp_zero_str(p, 0));
    hmode = H_UNPROT_PAGE;
    write_page(p, 5, 2, 0);
    handler_result(2);
    thp_pm("after the write", p, 0, THP_NR);
    printf("page 5 is %s, page 6 is %s\n", thp_zero_str(p, 5), thp_zero_str(p, 6));
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, THP_SIZE);
}

static void wp_unregister(void) {
    section("UNREGISTER part of a protected THP, then close");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    char *p = fresh(2);
    reg(fd, p, 2 * THP_NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, 2 * THP_NR);
    state("protected", p, 2 * THP_NR);
    printf("unregister pages 0-9: %s\n", uffd_err(-uffd_unregister(fd, p, 10 * UPAGE)));
    state("after", p, 2 * THP_NR);
    printf("close\n");
    close(fd);
    state("after close", p, 2 * THP_NR);
    munmap(p, 2 * THP_SIZE);
}

static void missing(void) {
    section("MISSING on an untouched THP-eligible range: write, COPY one page");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    struct uffd_handler h;
    char *p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    h_done = 0;
    memset(snap, 0, sizeof snap);
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_MISSING);
    hmode = H_COPY_PAGE;
    printf("write page 5 off 16\n");
    pl_flush();
    p[5 * UPAGE + 16] = 'x';
    handler_result(1);
    thp_smaps("after", p, 0, THP_NR);
    thp_pm("after", p, 0, THP_NR);
    hmode = H_ZERO_PAGE;
    printf("read page 6: %d\n", *(volatile char *)(p + 6 * UPAGE));
    handler_result(2);
    thp_pm("after a read of page 6", p, 0, THP_NR);
    printf("page 6 is %s\n", thp_zero_str(p, 6));
    p[5 * UPAGE + 16] = thp_byte(5, 3);
    thp_data("data 5-6", p, 5, 7, G13, 2);
    munmap(p, THP_SIZE);

    section("MISSING: write, COPY of the whole 2 MiB");
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_MISSING);
    hmode = H_COPY_PMD;
    printf("write page 5 off 16\n");
    pl_flush();
    p[5 * UPAGE + 16] = 'x';
    handler_result(3);
    thp_smaps("after", p, 0, THP_NR);
    thp_pm("after", p, 0, THP_NR);
    p[5 * UPAGE + 16] = thp_byte(5, 3);
    thp_data("data", p, 0, THP_NR, G13, 2);
    munmap(p, THP_SIZE);

    section("MISSING: read, ZEROPAGE of the whole 2 MiB");
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_MISSING);
    hmode = H_ZERO_PMD;
    printf("read page 7: %d\n", *(volatile char *)(p + 7 * UPAGE));
    handler_result(4);
    thp_smaps("after", p, 0, THP_NR);
    thp_pm("after", p, 0, THP_NR);
    printf("frames: %s, page 0 is %s\n", thp_frames(p, 0, THP_NR), thp_zero_str(p, 0));
    thp_fill(p, 8, 9, 2);
    thp_pm("after a write to page 8", p, 0, THP_NR);
    printf("messages: %ld\n", h.nmsgs);
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, THP_SIZE);
}

static void wp_untouched(void) {
    section("WP on an untouched THP-eligible range, without WP_UNPOPULATED");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    struct uffd_handler h;
    char *p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    h_done = 0;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, THP_NR);
    thp_pm("protected", p, 0, THP_NR);
    hmode = H_UNPROT_PAGE;
    write_page(p, 5, 2, 0);
    printf("messages so far: %ld\n", h.nmsgs);
    thp_smaps("after the write", p, 0, THP_NR);
    thp_pm("after the write", p, 0, THP_NR);
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, THP_SIZE);

    section("WP on an untouched THP-eligible range, with WP_UNPOPULATED");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_WP_UNPOPULATED);
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    h_done = 0;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, THP_NR);
    thp_smaps("protected", p, 0, THP_NR);
    thp_pm("protected", p, 0, THP_NR);
    hmode = H_UNPROT_PAGE;
    write_page(p, 5, 2, 0);
    handler_result(1);
    thp_smaps("after the write", p, 0, THP_NR);
    thp_pm("after the write", p, 0, THP_NR);
    printf("read page 6: %d\n", *(volatile char *)(p + 6 * UPAGE));
    thp_pm("after a read of page 6", p, 0, THP_NR);
    printf("messages: %ld\n", h.nmsgs);
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, THP_SIZE);
}

/* UFFD_FEATURE_WP_ASYNC (issue 11 for pagelab): the kernel resolves the
 * fault itself, no message. */
static void wp_async(void) {
    section("WP_ASYNC: a write to a protected THP");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_WP_ASYNC);
    char *p = fresh(1);
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, THP_NR);
    state("protected", p, THP_NR);
    write_page(p, 7, 2, 0);
    printf("pending: %d\n", uffd_pending(fd, 0));
    state("after the write", p, THP_NR);
    thp_data("data", p, 0, THP_NR, G12, 2);
    munmap(p, THP_SIZE);

    section("WP_ASYNC: a write to a protected huge zero PMD");
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    cur = p;
    printf("read page 0: %d\n", *(volatile char *)p);
    reg(fd, p, THP_NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, THP_NR);
    thp_pm("protected", p, 0, THP_NR);
    write_page(p, 7, 2, 0);
    printf("pending: %d\n", uffd_pending(fd, 0));
    thp_smaps("after the write", p, 0, THP_NR);
    thp_pm("after the write", p, 0, THP_NR);
    printf("page 6 is %s, page 7 is %s\n", thp_zero_str(p, 6), thp_zero_str(p, 7));
    close(fd);
    munmap(p, THP_SIZE);
}

int main(int argc, char **argv) {
    thp_khugepaged_settle();
    src = thp_map(THP_NR, MADV_NOHUGEPAGE);
    thp_fill(src, 0, THP_NR, 3);
    if (argc > 1 && strcmp(argv[1], "async") == 0) {
        wp_async();
        thp_khugepaged_check();
        printf("done\n");
        return 0;
    }
    wp_whole();
    wp_partial();
    wp_exact();
    wp_zero();
    wp_unregister();
    missing();
    wp_untouched();
    thp_khugepaged_check();
    printf("done\n");
    return 0;
}
