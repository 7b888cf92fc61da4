// pagelab: cflags=-pthread
// htlb_uffd: userfaultfd on 2 MiB hugetlb memory, private (MAP_PRIVATE |
// MAP_ANONYMOUS | MAP_HUGETLB) and shared (MAP_SHARED | MAP_HUGETLB, memfd
// MFD_HUGETLB) (issue 10; reference 4.7-4.13, 5.3, 5.11, 5.15, HTLB-1/2).
// The program sets up its own pool (htlb.h) and prints it where a fault or
// an ioctl allocates or frees a huge page. Regions are mapped at a 2 MiB-
// aligned base inside a PROT_NONE reservation; page indexes are 4 KiB pages
// from that base (a huge page is 512 of them), message addresses are printed
// as "page P off O" relative to the base; pagemap as flags in runs (p present,
// f file/shared, w uffd-wp, x exclusive, - none), raw flag bits where they
// matter (a hugetlb uffd-wp marker is 0x0200000000000000). A handler thread
// serves a non-blocking uffd: it prints each message and what it does, then
// does it (MISSING: COPY of the whole huge page, with COPY_MODE_WP if asked;
// WP: un-protect of the whole huge page; MINOR: CONTINUE of the whole huge
// page, with CONTINUE_MODE_WP if asked); the main thread prints the results
// once the handler is done with the message.
//   * UFFDIO_API: the hugetlb feature bits; REGISTER's ioctls per mode;
//   * ranges not huge-page aligned: REGISTER, UNREGISTER, WRITEPROTECT, COPY,
//     CONTINUE are EINVAL (the field -22 where there is one); ZEROPAGE is
//     always EINVAL; CONTINUE of a private page, COPY over a present page;
//   * MISSING: the message's address is the huge page's start (page 0 off 0),
//     exact with EXACT_ADDRESS; COPY of 2 MiB resolves it; with MISSING|WP and
//     COPY_MODE_WP the retried write gives a WP message;
//   * WRITEPROTECT of a populated page (all 512 subpages wp), a read does not
//     fault, a write gives one WP message at the huge page's start; after
//     un-protect the huge PTE stays read-only (the next write takes one minor
//     fault, no message);
//   * WRITEPROTECT of an unpopulated huge page: a marker (wp alone), a read
//     maps the page wp'd without a message, a write faults WP; un-protect
//     clears a marker;
//   * MADV_DONTNEED of a protected page leaves a marker: private data is gone,
//     shared data is kept;
//   * MINOR on a memfd with an alias mapping: CONTINUE, a second CONTINUE is
//     EEXIST, holes fault silently, CONTINUE_MODE_WP then a WP fault;
//   * fork without EVENT_FORK (the child has no wp: private pages are copied
//     without it, shared ones and markers not at all) and with it (wp and
//     markers kept, a FORK message);
//   * UNREGISTER and close clear wp bits and markers.
#define _GNU_SOURCE
#include "htlb.h"
#include <sys/resource.h>

#define HP (MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB)
#define HS (MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB)
#define NR HTLB_NR_2M
#define HPAGE HTLB_2M

static void section(const char *s) {
    printf("== %s\n", s);
}

static const int G13[] = { 1, 3 };
static const int G123[] = { 1, 2, 3 };
/* The source of UFFDIO_COPY: SRC_PAGES 4 KiB pages of generation 3 data, so
 * that a copy to huge page h of a region from src + h gives the region's
 * pages their own generation-3 pattern. */
#define SRC_PAGES (3 * NR)
static char *src;

/* ---- the handler ----------------------------------------------------------- */

#define MAXMSG 64
static char *volatile cur;                 /* the region messages are printed against */
static volatile uint64_t copy_mode, cont_mode; /* UFFDIO_COPY / CONTINUE modes the handler uses */
static volatile long h_done;
static long h_res[MAXMSG], h_field[MAXMSG];
static char h_what[MAXMSG][32];
static volatile int fork_ufd = -1;

static void on_msg(struct uffd_handler *h, const struct uffd_msg *m) {
    char b[128];
    long i = __atomic_load_n(&h_done, __ATOMIC_ACQUIRE) % MAXMSG;
    uffd_msg_str(m, cur, b, sizeof b);
    printf("handler: %s\n", b);
    long r = 0;
    int64_t field = 0;
    h_what[i][0] = 0;
    if (m->event == UFFD_EVENT_PAGEFAULT) {
        uint64_t f = m->arg.pagefault.flags;
        char *hp = (char *)(uintptr_t)(m->arg.pagefault.address & ~(HPAGE - 1));
        long hi = uffd_pidx(cur, (uintptr_t)hp);
        if (f & UFFD_PAGEFAULT_FLAG_WP) {
            printf("handler: unprotect pages %ld-%ld\n", hi, hi + (long)NR - 1);
            r = uffd_unprotect(h->fd, hp, HPAGE);
            snprintf(h_what[i], sizeof h_what[i], "unprotect");
        } else if (f & UFFD_PAGEFAULT_FLAG_MINOR) {
            printf("handler: continue pages %ld-%ld%s\n", hi, hi + (long)NR - 1, cont_mode ? " mode WP" : "");
            field = -1;
            r = uffd_continue(h->fd, hp, HPAGE, cont_mode, &field);
            snprintf(h_what[i], sizeof h_what[i], "continue");
        } else {
            printf("handler: copy pages %ld-%ld%s\n", hi, hi + (long)NR - 1, copy_mode ? " mode WP" : "");
            field = -1;
            r = uffd_copy(h->fd, hp, src + (size_t)hi % SRC_PAGES * UPAGE, HPAGE, copy_mode, &field);
            snprintf(h_what[i], sizeof h_what[i], "copy");
        }
    } else if (m->event == UFFD_EVENT_FORK) {
        __atomic_store_n(&fork_ufd, (int)m->arg.fork.ufd, __ATOMIC_RELEASE);
    }
    h_res[i] = r;
    h_field[i] = field;
    __atomic_add_fetch(&h_done, 1, __ATOMIC_RELEASE);
}

/* Waits until the handler has finished with `n` messages in all, then prints
 * the results of those after `from`. */
static void handler_results(long from, long n) {
    for (int i = 0; i < 5000 && __atomic_load_n(&h_done, __ATOMIC_ACQUIRE) < n; i++) usleep(1000);
    long done = __atomic_load_n(&h_done, __ATOMIC_ACQUIRE);
    if (done != n) {
        printf("handler: %ld messages handled, expected %ld\n", done, n);
        return;
    }
    for (long k = from; k < n; k++) {
        long i = k % MAXMSG;
        if (!strcmp(h_what[i], "copy") || !strcmp(h_what[i], "continue"))
            printf("handler result: %s %s, field %ld\n", h_what[i], uffd_err(-(int)h_res[i]), h_field[i]);
        else if (h_what[i][0]) printf("handler result: %s %s\n", h_what[i], uffd_err(-(int)h_res[i]));
    }
}

/* The main thread's accesses: print, then access (a fault waits for the
 * handler), then wait for `msgs` more messages to be handled. */
static void access_page(const char *verb, char *p, size_t page, size_t off, int write, int g, long msgs) {
    long before = __atomic_load_n(&h_done, __ATOMIC_ACQUIRE);
    printf("%s page %zu off %zu\n", verb, page, off);
    pl_flush();
    if (write) {
        *(volatile char *)(p + page * UPAGE + off) = thp_byte((long)page, g);
        uffd_barrier();
        thp_fill(p, page, page + 1, g);
    } else {
        char c = *(volatile char *)(p + page * UPAGE + off);
        printf("it reads %s\n", c == 0 ? "0" : c == thp_byte((long)page, 1) ? "g1" : c == thp_byte((long)page, 2) ? "g2" : c == thp_byte((long)page, 3) ? "g3" : "other");
    }
    handler_results(before, before + msgs);
}

static void wr(char *p, size_t page, size_t off, int g, long msgs) {
    access_page("write", p, page, off, 1, g, msgs);
}

static void rd(char *p, size_t page, size_t off, long msgs) {
    access_page("read", p, page, off, 0, 0, msgs);
}

/* ---- helpers ------------------------------------------------------------------ */

static long minflt(void) {
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return r.ru_minflt;
}

static const char *mode_name(uint64_t m) {
    static char b[32];
    b[0] = 0;
    if (m & UFFDIO_REGISTER_MODE_MISSING) strcat(b, "|MISSING");
    if (m & UFFDIO_REGISTER_MODE_WP) strcat(b, "|WP");
    if (m & UFFDIO_REGISTER_MODE_MINOR) strcat(b, "|MINOR");
    return b[0] ? b + 1 : "0";
}

static void reg(int fd, char *p, size_t pages, uint64_t mode) {
    uint64_t io = 0;
    int e = uffd_register(fd, p, pages * UPAGE, mode, &io);
    printf("register %s pages 0-%zu: %s", mode_name(mode), pages - 1, uffd_err(-e));
    if (!e) printf(", ioctls %#llx", (unsigned long long)io);
    printf("\n");
}

static void protect(int fd, char *p, size_t lo, size_t hi) {
    printf("protect pages %zu-%zu: %s\n", lo, hi - 1, uffd_err(-uffd_protect(fd, p + lo * UPAGE, (hi - lo) * UPAGE)));
}

static void unprotect(int fd, char *p, size_t lo, size_t hi) {
    printf("unprotect pages %zu-%zu: %s\n", lo, hi - 1, uffd_err(-uffd_unprotect(fd, p + lo * UPAGE, (hi - lo) * UPAGE)));
}

static void pm(const char *what, const char *p, size_t pages) {
    thp_pm(what, p, 0, pages);
}

static void smaps(const char *what, const char *p, size_t pages) {
    htlb_smaps(what, p, 0, pages);
}

static int open_uffd(uint64_t features) {
    return uffd_open(O_CLOEXEC | O_NONBLOCK, features);
}

/* A fresh hugetlb region of n huge pages; every page written (g1) if fill. */
static char *fresh(size_t n, int flags, int fill) {
    char *p = htlb_map(n * HPAGE, flags);
    if (fill) thp_fill(p, 0, n * NR, 1);
    cur = p;
    return p;
}

/* ---- sections ------------------------------------------------------------------ */

static void api(void) {
    section("UFFDIO_API: the hugetlb feature bits");
    int fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
    struct uffdio_api a;
    int e = uffd_api_raw(fd, UFFD_API, 0, &a);
    printf("UFFDIO_API(0): %s\n", uffd_err(-e));
    printf("MISSING_HUGETLBFS (0x10): %s\n", a.features & UFFD_FEATURE_MISSING_HUGETLBFS ? "set" : "clear");
    printf("MINOR_HUGETLBFS (0x200): %s\n", a.features & UFFD_FEATURE_MINOR_HUGETLBFS ? "set" : "clear");
    printf("WP_HUGETLBFS_SHMEM (0x1000): %s\n", a.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM ? "set" : "clear");
    close(fd);
    fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
    e = uffd_api(fd, UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_MINOR_HUGETLBFS | UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    printf("UFFDIO_API(the three): %s\n", uffd_err(-e));
    close(fd);
}

static void register_modes(void) {
    section("REGISTER: modes and ioctls");
    int fd = open_uffd(0);
    static const uint64_t modes[] = { 1, 2, 3, 4, 6, 5, 7 };
    const char *kinds[] = { "private", "shared", "memfd shared" };
    int mfd = htlb_memfd("reg", 0, 2 * HPAGE);
    for (int k = 0; k < 3; k++) {
        char *p = k == 0 ? htlb_map(2 * HPAGE, HP) : k == 1 ? htlb_map(2 * HPAGE, HS)
                                                        : htlb_mmap_at(2 * HPAGE, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
        printf("-- %s\n", kinds[k]);
        for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
            reg(fd, p, 2 * NR, modes[i]);
            printf("unregister: %s\n", uffd_err(-uffd_unregister(fd, p, 2 * HPAGE)));
        }
        munmap(p, 2 * HPAGE);
    }
    close(mfd);
    char *p = fresh(2, HP, 0);
    printf("-- ranges\n");
    uint64_t io;
    printf("register WP pages 1-512: %s\n", uffd_err(-uffd_register(fd, p + UPAGE, HPAGE, UFFDIO_REGISTER_MODE_WP, &io)));
    printf("register WP page 0: %s\n", uffd_err(-uffd_register(fd, p, UPAGE, UFFDIO_REGISTER_MODE_WP, &io)));
    printf("register WP pages 0-512: %s\n", uffd_err(-uffd_register(fd, p, HPAGE + UPAGE, UFFDIO_REGISTER_MODE_WP, &io)));
    printf("register WP pages 512-1023: %s\n", uffd_err(-uffd_register(fd, p + HPAGE, HPAGE, UFFDIO_REGISTER_MODE_WP, &io)));
    smaps("after", p, 2 * NR);
    printf("register MISSING|WP pages 0-1023: %s\n",
           uffd_err(-uffd_register(fd, p, 2 * HPAGE, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, &io)));
    smaps("after", p, 2 * NR);
    int64_t f = 1;
    int e = uffd_copy(fd, p + UPAGE, src, HPAGE, 0, &f);
    printf("copy pages 1-512 (across the end of the VMA): %s, field %ld\n", uffd_err(-e), (long)f);
    f = 1;
    e = uffd_copy(fd, p + HPAGE + UPAGE, src, UPAGE, 0, &f);
    printf("copy page 513: %s, field %ld\n", uffd_err(-e), (long)f);
    printf("unregister page 0: %s\n", uffd_err(-uffd_unregister(fd, p, UPAGE)));
    printf("unregister pages 1-512: %s\n", uffd_err(-uffd_unregister(fd, p + UPAGE, HPAGE)));
    printf("unregister pages 0-1023: %s\n", uffd_err(-uffd_unregister(fd, p, 2 * HPAGE)));
    smaps("after", p, 2 * NR);
    close(fd);
    munmap(p, 2 * HPAGE);
}

static void range_errors(void) {
    section("ioctls on ranges not huge-page aligned");
    int fd = open_uffd(0);
    char *p = fresh(2, HP, 0);
    reg(fd, p, 2 * NR, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
    htlb_pool("registered");
    protect(fd, p, 0, 1);
    protect(fd, p, 1, 513);
    protect(fd, p, 0, 513);
    unprotect(fd, p, 0, 1);
    unprotect(fd, p, 512, 513);
    int64_t f;
    struct { const char *what; size_t dst, len; } c[] = {
        { "copy page 0", 0, UPAGE }, { "copy pages 1-512", UPAGE, HPAGE }, { "copy pages 0-512", 0, HPAGE + UPAGE },
    };
    for (size_t i = 0; i < 3; i++) {
        f = 1;
        int e = uffd_copy(fd, p + c[i].dst, src, c[i].len, 0, &f);
        printf("%s: %s, field %ld\n", c[i].what, uffd_err(-e), (long)f);
    }
    f = 1;
    int e = uffd_zeropage(fd, p, HPAGE, 0, &f);
    printf("zeropage pages 0-511: %s, field %ld\n", uffd_err(-e), (long)f);
    f = 1;
    e = uffd_zeropage(fd, p, UPAGE, 0, &f);
    printf("zeropage page 0: %s, field %ld\n", uffd_err(-e), (long)f);
    f = 1;
    e = uffd_continue(fd, p, HPAGE, 0, &f);
    printf("continue pages 0-511 (private, missing): %s, field %ld\n", uffd_err(-e), (long)f);
    htlb_pool("after");
    pm("pagemap", p, 2 * NR);
    f = 1;
    e = uffd_copy(fd, p, src, HPAGE, 0, &f);
    printf("copy pages 0-511: %s, field %ld\n", uffd_err(-e), (long)f);
    htlb_pool("after");
    f = 1;
    e = uffd_copy(fd, p, src, HPAGE, 0, &f);
    printf("copy pages 0-511 again: %s, field %ld\n", uffd_err(-e), (long)f);
    f = 1;
    e = uffd_copy(fd, p, src, 2 * HPAGE, 0, &f);
    printf("copy pages 0-1023: %s, field %ld\n", uffd_err(-e), (long)f);
    f = 1;
    e = uffd_continue(fd, p, HPAGE, 0, &f);
    printf("continue pages 0-511 (private, present): %s, field %ld\n", uffd_err(-e), (long)f);
    f = 1;
    e = uffd_zeropage(fd, p + HPAGE, HPAGE, 0, &f);
    printf("zeropage pages 512-1023: %s, field %ld\n", uffd_err(-e), (long)f);
    f = 1;
    e = uffd_copy(fd, p + HPAGE, src, HPAGE, UFFDIO_COPY_MODE_WP, &f);
    printf("copy pages 512-1023 mode WP: %s, field %ld\n", uffd_err(-e), (long)f);
    htlb_pool("after");
    pm("pagemap", p, 2 * NR);
    thp_data("data", p, 0, 2 * NR, G13, 2);
    close(fd);
    munmap(p, 2 * HPAGE);
    htlb_pool("after munmap");

    section("ioctls on a shared mapping registered MINOR only");
    fd = open_uffd(0);
    p = fresh(2, HS, 0);
    reg(fd, p, 2 * NR, UFFDIO_REGISTER_MODE_MINOR);
    f = 1;
    e = uffd_continue(fd, p, UPAGE, 0, &f);
    printf("continue page 0: %s, field %ld\n", uffd_err(-e), (long)f);
    f = 1;
    e = uffd_continue(fd, p + UPAGE, HPAGE, 0, &f);
    printf("continue pages 1-512: %s, field %ld\n", uffd_err(-e), (long)f);
    f = 1;
    e = uffd_continue(fd, p, HPAGE, 0, &f);
    printf("continue pages 0-511 (not in the page cache): %s, field %ld\n", uffd_err(-e), (long)f);
    f = 1;
    e = uffd_continue(fd, p, HPAGE, UFFDIO_CONTINUE_MODE_WP, &f);
    printf("continue pages 0-511 mode WP (not registered WP): %s, field %ld\n", uffd_err(-e), (long)f);
    f = 1;
    e = uffd_copy(fd, p, src, HPAGE, 0, &f);
    printf("copy pages 0-511: %s, field %ld\n", uffd_err(-e), (long)f);
    htlb_pool("after");
    pm("pagemap", p, 2 * NR);
    f = 1;
    e = uffd_continue(fd, p, HPAGE, 0, &f);
    printf("continue pages 0-511 (mapped): %s, field %ld\n", uffd_err(-e), (long)f);
    printf("protect pages 0-511 (not registered WP): %s\n", uffd_err(-uffd_protect(fd, p, HPAGE)));
    close(fd);
    munmap(p, 2 * HPAGE);
    htlb_pool("after munmap");
}

static void missing(int shared, uint64_t features) {
    char t[128];
    snprintf(t, sizeof t, "MISSING, %s%s", shared ? "shared" : "private", features ? ", EXACT_ADDRESS" : "");
    section(t);
    int fd = open_uffd(features);
    struct uffd_handler h;
    char *p = fresh(2, shared ? HS : HP, 0);
    h_done = 0;
    copy_mode = 0;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, 2 * NR, UFFDIO_REGISTER_MODE_MISSING);
    htlb_pool("registered");
    wr(p, 5, 100, 1, 1);
    htlb_pool("after");
    pm("pagemap", p, 2 * NR);
    printf("frames 0-511: %s\n", htlb_frames(p, 0, NR, NR, 0));
    rd(p, 600, 2048, 1);
    htlb_pool("after");
    pm("pagemap", p, 2 * NR);
    thp_data("data", p, 0, 2 * NR, G13, 2);
    printf("messages: %ld\n", h.nmsgs);
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, 2 * HPAGE);
    htlb_pool("after munmap");
}

static void missing_wp(int shared) {
    section(shared ? "MISSING|WP with COPY_MODE_WP, shared" : "MISSING|WP with COPY_MODE_WP, private");
    int fd = open_uffd(0);
    struct uffd_handler h;
    char *p = fresh(1, shared ? HS : HP, 0);
    h_done = 0;
    copy_mode = UFFDIO_COPY_MODE_WP;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, NR, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
    rd(p, 9, 0, 1);
    pm("after the read", p, NR);
    wr(p, 9, 0, 2, 1);
    pm("after the write", p, NR);
    htlb_pool("after");
    munmap(p, HPAGE);
    p = fresh(1, shared ? HS : HP, 0);
    reg(fd, p, NR, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
    wr(p, 300, 1, 2, 2);
    pm("after the write", p, NR);
    thp_data("data", p, 0, NR, G123, 3);
    printf("messages: %ld\n", h.nmsgs);
    copy_mode = 0;
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, HPAGE);
    htlb_pool("after munmap");
}

static void wp_populated(int shared) {
    section(shared ? "WRITEPROTECT of populated pages, shared" : "WRITEPROTECT of populated pages, private");
    int fd = open_uffd(0);
    struct uffd_handler h;
    char *p = fresh(2, shared ? HS : HP, 1);
    h_done = 0;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, 2 * NR, UFFDIO_REGISTER_MODE_WP);
    smaps("registered", p, 2 * NR);
    protect(fd, p, 0, NR);
    pm("protected", p, 2 * NR);
    htlb_pm_raw("page 0 entry", p, 0);
    htlb_pm_raw("page 511 entry", p, 511);
    printf("frames 0-511: %s\n", htlb_frames(p, 0, NR, NR, 0));
    rd(p, 20, 0, 0);
    printf("messages so far: %ld\n", h.nmsgs);
    wr(p, 600, 0, 2, 0);
    printf("messages so far: %ld\n", h.nmsgs);
    uint64_t f0 = htlb_pfn(p, 0);
    wr(p, 7, 3, 2, 1);
    pm("after the write", p, 2 * NR);
    printf("page 0 frame: %s\n", htlb_pfn(p, 0) == f0 ? "kept" : "new");
    wr(p, 8, 0, 2, 0);
    printf("messages so far: %ld\n", h.nmsgs);
    protect(fd, p, 0, 2 * NR);
    pm("protected", p, 2 * NR);
    unprotect(fd, p, 0, NR);
    pm("after un-protecting pages 0-511", p, 2 * NR);
    wr(p, 9, 0, 2, 0);
    wr(p, 700, 0, 2, 1);
    pm("after", p, 2 * NR);
    /* Un-protect leaves the huge PTE read-only: the next write takes a
     * (minor) fault, without a message, and keeps the frame. */
    protect(fd, p, 0, NR);
    unprotect(fd, p, 0, NR);
    f0 = htlb_pfn(p, 0);
    long m0 = minflt();
    *(volatile char *)(p + 11 * UPAGE) = thp_byte(11, 2);
    long m1 = minflt();
    *(volatile char *)(p + 12 * UPAGE) = thp_byte(12, 2);
    long m2 = minflt();
    printf("after protect and un-protect of pages 0-511: a write to page 11 takes %ld minor fault(s), then one to page 12 %ld; frame %s\n",
           m1 - m0, m2 - m1, htlb_pfn(p, 0) == f0 ? "kept" : "new");
    thp_fill(p, 11, 13, 2);
    thp_data("data", p, 0, 2 * NR, G123, 3);
    htlb_pool("after");
    printf("messages: %ld\n", h.nmsgs);
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, 2 * HPAGE);
}

static void wp_markers(int shared) {
    section(shared ? "WRITEPROTECT of unpopulated pages (markers), shared" : "WRITEPROTECT of unpopulated pages (markers), private");
    int fd = open_uffd(0);
    struct uffd_handler h;
    char *p = fresh(3, shared ? HS : HP, 0);
    h_done = 0;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, 3 * NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, 3 * NR);
    pm("protected", p, 3 * NR);
    htlb_pm_raw("page 0 entry", p, 0);
    htlb_pm_raw("page 300 entry", p, 300);
    htlb_pool("protected");
    rd(p, 5, 0, 0);
    htlb_pool("after");
    pm("after the read", p, 3 * NR);
    htlb_pm_raw("page 0 entry", p, 0);
    printf("messages so far: %ld\n", h.nmsgs);
    wr(p, 6, 0, 2, 1);
    pm("after the write", p, 3 * NR);
    wr(p, 520, 0, 2, 1);
    htlb_pool("after");
    pm("after a write to page 520", p, 3 * NR);
    unprotect(fd, p, 2 * NR, 3 * NR);
    pm("after un-protecting pages 1024-1535", p, 3 * NR);
    htlb_pm_raw("page 1024 entry", p, 1024);
    wr(p, 1030, 0, 2, 0);
    pm("after a write to page 1030", p, 3 * NR);
    htlb_pool("after");
    printf("messages: %ld\n", h.nmsgs);
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, 3 * HPAGE);
    htlb_pool("after munmap");
}

static void wp_dontneed(int shared) {
    section(shared ? "MADV_DONTNEED of protected pages, shared" : "MADV_DONTNEED of protected pages, private");
    int fd = open_uffd(0);
    struct uffd_handler h;
    char *p = fresh(2, shared ? HS : HP, 1);
    h_done = 0;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, 2 * NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, NR);
    htlb_pool("protected pages 0-511");
    printf("DONTNEED pages 0-1023: %s\n", madvise(p, 2 * HPAGE, MADV_DONTNEED) ? shm_err(errno) : "0");
    htlb_pool("after");
    pm("after", p, 2 * NR);
    htlb_pm_raw("page 0 entry", p, 0);
    htlb_pm_raw("page 512 entry", p, 512);
    rd(p, 3, 0, 0);
    pm("after a read of page 3", p, 2 * NR);
    htlb_pool("after");
    thp_data("data", p, 0, 2 * NR, G123, 3);
    wr(p, 4, 0, 2, 1);
    pm("after a write to page 4", p, 2 * NR);
    wr(p, 513, 0, 2, 0);
    pm("after a write to page 513", p, 2 * NR);
    thp_data("data", p, 0, 2 * NR, G123, 3);
    htlb_pool("after");
    printf("messages: %ld\n", h.nmsgs);
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, 2 * HPAGE);
}

static void minor(int wp) {
    section(wp ? "MINOR|WP on a memfd with CONTINUE_MODE_WP" : "MINOR on a memfd");
    int mfd = htlb_memfd("minor", 0, 3 * HPAGE);
    char *alias = htlb_mmap_at(3 * HPAGE, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    char *p = htlb_mmap_at(3 * HPAGE, HPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (!alias || !p) {
        printf("mmap failed\n");
        pl_flush();
        exit(3);
    }
    cur = p;
    int fd = open_uffd(0);
    struct uffd_handler h;
    h_done = 0;
    cont_mode = wp ? UFFDIO_CONTINUE_MODE_WP : 0;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, 3 * NR, UFFDIO_REGISTER_MODE_MINOR | (wp ? UFFDIO_REGISTER_MODE_WP : 0));
    thp_fill(alias, 0, 2 * NR, 1);
    printf("wrote pages 0-1023 through the alias\n");
    htlb_pool("after");
    pm("alias", alias, 3 * NR);
    pm("registered", p, 3 * NR);
    rd(p, 5, 0, 1);
    pm("after the read", p, 3 * NR);
    int64_t f = 1;
    int e = uffd_continue(fd, p, HPAGE, 0, &f);
    printf("continue pages 0-511 again: %s, field %ld\n", uffd_err(-e), (long)f);
    printf("frames 0-511: %s, the alias's %s\n", htlb_frames(p, 0, NR, NR, 0), htlb_pfn(p, 0) == htlb_pfn(alias, 0) ? "same" : "different");
    if (wp) {
        wr(p, 6, 0, 2, 1);
        pm("after the write", p, 3 * NR);
    }
    wr(p, 600, 0, 2, wp ? 2 : 1);
    pm("after a write to page 600", p, 3 * NR);
    rd(p, 1100, 0, 0);
    htlb_pool("after a read of page 1100 (a hole)");
    pm("after", p, 3 * NR);
    thp_data("data", alias, 0, 3 * NR, G123, 3);
    printf("messages: %ld\n", h.nmsgs);
    cont_mode = 0;
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, 3 * HPAGE);
    munmap(alias, 3 * HPAGE);
    close(mfd);
    htlb_pool("after close");
}

static void fork_wp(int event) {
    section(event ? "fork with EVENT_FORK" : "fork without EVENT_FORK");
    int fd = open_uffd(event ? UFFD_FEATURE_EVENT_FORK : 0);
    struct uffd_handler h;
    char *p = fresh(2, HP, 0);
    thp_fill(p, 0, NR, 1);
    char *s = htlb_map(2 * HPAGE, HS);
    thp_fill(s, 0, NR, 1);
    h_done = 0;
    fork_ufd = -1;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    reg(fd, p, 2 * NR, UFFDIO_REGISTER_MODE_WP);
    reg(fd, s, 2 * NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, 2 * NR);
    protect(fd, s, 0, 2 * NR);
    pm("private", p, 2 * NR);
    pm("shared", s, 2 * NR);
    htlb_pool("before fork");
    int go[2], back[2];
    if (pipe(go) || pipe(back)) exit(3);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1) _exit(5);
        /* A write to the private populated page: without EVENT_FORK it
         * copies silently (the child's VMA has no uffd). */
        if (c == 'w') {
            *(volatile char *)(p + 3 * UPAGE) = thp_byte(3, 2);
            thp_fill(p, 3, 4, 2);
        }
        if (write(back[1], "k", 1) != 1) _exit(5);
        if (read(go[0], &c, 1) != 1) _exit(5);
        _exit(0);
    }
    if (event) {
        handler_results(0, 1);
        printf("fork ufd: %s\n", fork_ufd >= 0 ? "received" : "none");
    }
    thp_pm_pid(pid, "child private", p, 0, 2 * NR);
    thp_pm_pid(pid, "child shared", s, 0, 2 * NR);
    htlb_pool("after fork");
    if (!event) {
        printf("child writes page 3\n");
        pl_flush();
        if (write(go[1], "w", 1) != 1) exit(3);
        char k;
        if (read(back[0], &k, 1) != 1) exit(3);
        thp_pm_pid(pid, "child private", p, 0, 2 * NR);
        htlb_pool("after the child's write");
    } else {
        if (write(go[1], "n", 1) != 1) exit(3);
        char k;
        if (read(back[0], &k, 1) != 1) exit(3);
    }
    pm("parent private", p, 2 * NR);
    pm("parent shared", s, 2 * NR);
    uint64_t f0 = htlb_pfn(p, 0);
    wr(p, 10, 0, 2, 1);
    pm("parent private", p, 2 * NR);
    printf("parent page 0 frame: %s\n", htlb_pfn(p, 0) == f0 ? "kept" : "new");
    htlb_pool("after the parent's write");
    thp_pm_pid(pid, "child private", p, 0, 2 * NR);
    if (write(go[1], "x", 1) != 1) exit(3);
    int st;
    waitpid(pid, &st, 0);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    if (fork_ufd >= 0) close(fork_ufd);
    htlb_pool("after the child exited");
    thp_data("parent private data", p, 0, NR, G123, 3);
    printf("messages: %ld\n", h.nmsgs);
    uffd_handler_stop(&h);
    close(fd);
    munmap(p, 2 * HPAGE);
    munmap(s, 2 * HPAGE);
    htlb_pool("after munmap");
}

static void unregister_close(void) {
    section("UNREGISTER and close clear wp bits and markers");
    int fd = open_uffd(0);
    char *p = fresh(2, HP, 0);
    thp_fill(p, 0, NR, 1);
    char *s = htlb_map(2 * HPAGE, HS);
    thp_fill(s, 0, NR, 1);
    reg(fd, p, 2 * NR, UFFDIO_REGISTER_MODE_WP);
    reg(fd, s, 2 * NR, UFFDIO_REGISTER_MODE_WP);
    protect(fd, p, 0, 2 * NR);
    protect(fd, s, 0, 2 * NR);
    pm("private", p, 2 * NR);
    pm("shared", s, 2 * NR);
    printf("unregister private pages 0-1023: %s\n", uffd_err(-uffd_unregister(fd, p, 2 * HPAGE)));
    pm("private", p, 2 * NR);
    smaps("private", p, 2 * NR);
    printf("close\n");
    close(fd);
    pm("shared", s, 2 * NR);
    smaps("shared", s, 2 * NR);
    thp_fill(p, 0, 2 * NR, 2);
    thp_fill(s, 0, 2 * NR, 2);
    printf("wrote every page of both\n");
    htlb_pool("after");
    munmap(p, 2 * HPAGE);
    munmap(s, 2 * HPAGE);
    htlb_pool("after munmap");
}

int main(void) {
    htlb_setup(8, 0);
    htlb_pool("start");
    src = thp_map(SRC_PAGES, MADV_NOHUGEPAGE);
    thp_fill(src, 0, SRC_PAGES, 3);
    api();
    register_modes();
    range_errors();
    missing(0, 0);
    missing(1, 0);
    missing(0, UFFD_FEATURE_EXACT_ADDRESS);
    missing(1, UFFD_FEATURE_EXACT_ADDRESS);
    missing_wp(0);
    missing_wp(1);
    wp_populated(0);
    wp_populated(1);
    wp_markers(0);
    wp_markers(1);
    wp_dontneed(0);
    wp_dontneed(1);
    minor(0);
    minor(1);
    fork_wp(0);
    fork_wp(1);
    unregister_close();
    htlb_finish();
    printf("done\n");
    return 0;
}
