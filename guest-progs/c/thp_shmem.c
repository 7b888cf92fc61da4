// pagelab: cflags=-pthread
// thp_shmem: MADV_COLLAPSE of shmem (file-backed THP; issue 10, reference 5.7,
// THP-5, uffd-unit-tests "minor-collapse"), recorded with
// shmem_enabled "never" (the first lines print the policy). Each case maps a
// fresh memfd or MAP_SHARED|MAP_ANONYMOUS region at a 2 MiB-aligned base
// (thp.h), writes some pages with generation g1, snapshots the frames, calls
// madvise(MADV_COLLAPSE) and prints its result, the VMA's smaps fields (Rss,
// Shared_*/Private_*, ShmemPmdMapped, FilePmdMapped, AnonHugePages,
// THPeligible), the /proc/meminfo ShmemHugePages/ShmemPmdMapped deltas
// against the start of the program, pagemap flags in runs, the frames
// (against the snapshot, and whether they form one 2 MiB frame) and the data.
//   1. collapse: shared anonymous, memfd, MADV_NOHUGEPAGE, holes in the page
//      cache, a page cache with no PTEs, an empty file, a misaligned offset;
//   2. a second mapping of the same memfd: its PTEs after the collapse, and
//      a fault after munmap+mmap;
//   3. minor-collapse: MINOR faults answered by CONTINUE, then collapse of
//      the registered alias;
//   4. uffd-wp of a PMD-mapped shmem THP (whole 2 MiB, one 4 KiB page);
//   5. what ends the PMD mapping: mprotect, DONTNEED, munmap, fork,
//      pwrite, ftruncate, PUNCH_HOLE;
//   6. collapse refusals: uffd-wp'd PTEs or markers, MINOR/MISSING with holes.
#define _GNU_SOURCE
#include "thp.h"
#include <sys/wait.h>

static void section(const char *s) {
    printf("== %s\n", s);
}

static const int G1[] = { 1 };
static const int G12[] = { 1, 2 };
static uint64_t snap[THP_NR], snap2[THP_NR];

/* MADV_COLLAPSE, retried while it says EAGAIN (transient: a page in a per-CPU
 * LRU batch or locked); ENOMEM (no free 2 MiB page) stops the program with
 * "THP NOT AVAILABLE" (exit 4). */
static const char *collapse(char *p, size_t lo, size_t hi) {
    for (int tries = 0;; tries++) {
        int r = madvise(p + lo * UPAGE, (hi - lo) * UPAGE, MADV_COLLAPSE);
        if (!r) return "0";
        if (errno == ENOMEM) {
            printf("THP NOT AVAILABLE: MADV_COLLAPSE ENOMEM (no free 2 MiB page? see /proc/buddyinfo)\n");
            pl_flush();
            exit(4);
        }
        if (errno != EAGAIN || tries == 50) return shm_err(errno);
        usleep(2000);
    }
}

/* ---- smaps and meminfo ----------------------------------------------------- */

/* One line per VMA of pid (0: self) overlapping pages [0, n) of base:
 * "<what>: vma LO-HI PERMS Rss R SC/SD/PC/PD a/b/c/d ShmemPmdMapped S
 * FilePmdMapped F AnonHugePages A THPeligible E [flags]". */
static void vma_pid(int pid, const char *what, const char *base, size_t n) {
    char path[64];
    if (pid) snprintf(path, sizeof path, "/proc/%d/smaps", pid);
    else snprintf(path, sizeof path, "/proc/self/smaps");
    char *s = thp_slurp(path);
    if (!s) {
        printf("%s: smaps unreadable\n", what);
        return;
    }
    long lo = (long)(uintptr_t)base, hi = lo + (long)(n * UPAGE);
    int any = 0;
    char *l = s;
    while (*l) {
        unsigned long a, b;
        char perms[8];
        char *nl = strchr(l, '\n');
        char *next = nl ? nl + 1 : l + strlen(l);
        if (!thp_smaps_header(l, &a, &b, perms)) {
            l = next;
            continue;
        }
        char *blk = next, *end = next;
        while (*end) {
            unsigned long x, y;
            char q[8];
            if (thp_smaps_header(end, &x, &y, q)) break;
            char *n2 = strchr(end, '\n');
            end = n2 ? n2 + 1 : end + strlen(end);
        }
        if ((long)a < hi && (long)b > lo) {
            any = 1;
            char fl[32] = "";
            const char *names[] = { "hg", "nh", "uw", "um", "ui" };
            for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
                if (thp_smaps_flag(blk, end, names[i])) {
                    strcat(fl, " ");
                    strcat(fl, names[i]);
                }
            }
            printf("%s: vma %ld-%ld %s Rss %ld SC/SD/PC/PD %ld/%ld/%ld/%ld ShmemPmdMapped %ld FilePmdMapped %ld AnonHugePages %ld THPeligible %ld%s\n",
                   what, ((long)a - lo) / (long)UPAGE, ((long)b - lo) / (long)UPAGE - 1, perms, thp_smaps_field(blk, end, "Rss"),
                   thp_smaps_field(blk, end, "Shared_Clean"), thp_smaps_field(blk, end, "Shared_Dirty"),
                   thp_smaps_field(blk, end, "Private_Clean"), thp_smaps_field(blk, end, "Private_Dirty"),
                   thp_smaps_field(blk, end, "ShmemPmdMapped"), thp_smaps_field(blk, end, "FilePmdMapped"),
                   thp_smaps_field(blk, end, "AnonHugePages"), thp_smaps_field(blk, end, "THPeligible"), fl);
        }
        l = end;
    }
    if (!any) printf("%s: no vma\n", what);
    free(s);
}

static void vma(const char *what, const char *base, size_t n) {
    vma_pid(0, what, base, n);
}

static long meminfo_kb(const char *key) {
    char *s = thp_slurp("/proc/meminfo");
    if (!s) return -1;
    long v = -1;
    size_t kl = strlen(key);
    for (char *l = s; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (strncmp(l, key, kl) == 0 && l[kl] == ':') v = strtol(l + kl + 1, NULL, 10);
    free(s);
    return v;
}

static long mi_huge0, mi_pmd0;

/* "<what>: meminfo ShmemHugePages +H ShmemPmdMapped +P" (kB, against the start). */
static void meminfo(const char *what) {
    printf("%s: meminfo ShmemHugePages %+ld ShmemPmdMapped %+ld\n", what, meminfo_kb("ShmemHugePages") - mi_huge0,
           meminfo_kb("ShmemPmdMapped") - mi_pmd0);
}

/* smaps, meminfo, pagemap, frames against snap, one 2 MiB frame? */
static void state(const char *what, const char *p) {
    char w[128];
    vma(what, p, THP_NR);
    meminfo(what);
    thp_pm(what, p, 0, THP_NR);
    snprintf(w, sizeof w, "%s frames", what);
    thp_frames_vs(w, p, THP_NR, snap);
    printf("%s frames 0-511: %s\n", what, thp_frames(p, 0, THP_NR));
}

static long blocks(int fd) {
    struct stat st;
    return fstat(fd, &st) < 0 ? -1 : (long)st.st_blocks / 8;
}

/* pwrite of generation g's three bytes of page i (thp_fill's); the bytes written. */
static long pwrite_gen(int fd, size_t i, int g) {
    char c = thp_byte((long)i, g);
    long n = 0;
    const size_t offs[] = { 0, 2048, UPAGE - 1 };
    for (int k = 0; k < 3; k++) n += pwrite(fd, &c, 1, (off_t)(i * UPAGE + offs[k]));
    return n;
}

/* ---- regions --------------------------------------------------------------- */

/* A memfd of 512 pages mapped MAP_SHARED at a 2 MiB-aligned address. */
static char *memfd_region(int *fdp) {
    int fd = shm_memfd("thp", THP_NR);
    char *p = shm_map(fd, THP_NR, MAP_SHARED);
    *fdp = fd;
    return p;
}

/* A collapsed memfd region: all pages written (g1), collapsed, checked to be
 * PMD-mapped; frames in snap. */
static char *collapsed(int *fdp) {
    char *p = memfd_region(fdp);
    thp_fill(p, 0, THP_NR, 1);
    const char *r = collapse(p, 0, THP_NR);
    thp_pfns(p, THP_NR, snap);
    if (strcmp(r, "0") != 0 || strcmp(thp_frames(p, 0, THP_NR), "one 2 MiB frame") != 0) {
        printf("collapse for the setup failed: %s, frames %s\n", r, thp_frames(p, 0, THP_NR));
        pl_flush();
        exit(3);
    }
    return p;
}

static void done_region(char *p, int fd) {
    munmap(p, THP_SIZE);
    if (fd >= 0) close(fd);
}

/* ---- 1. collapse ----------------------------------------------------------- */

static void basic(void) {
    section("shared anonymous, 512 pages written");
    char *p = shm_map_anon_shared(THP_NR);
    thp_fill(p, 0, THP_NR, 1);
    thp_pfns(p, THP_NR, snap);
    state("before", p);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p);
    thp_data("data", p, 0, THP_NR, G1, 1);
    done_region(p, -1);
    meminfo("after munmap");

    section("shared anonymous, MADV_HUGEPAGE, 512 pages written");
    p = shm_map_anon_shared(THP_NR);
    madvise(p, THP_SIZE, MADV_HUGEPAGE);
    thp_fill(p, 0, THP_NR, 1);
    thp_pfns(p, THP_NR, snap);
    state("before", p);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p);
    thp_data("data", p, 0, THP_NR, G1, 1);
    done_region(p, -1);
    meminfo("after munmap");

    section("memfd, 512 pages written");
    int fd;
    p = memfd_region(&fd);
    thp_fill(p, 0, THP_NR, 1);
    thp_pfns(p, THP_NR, snap);
    state("before", p);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p);
    thp_data("data", p, 0, THP_NR, G1, 1);
    printf("MADV_COLLAPSE again: %s\n", collapse(p, 0, THP_NR));
    state("again", p);
    munmap(p, THP_SIZE);
    meminfo("after munmap, fd open");
    p = shm_map(fd, THP_NR, MAP_SHARED);
    (void)*(volatile char *)(p + 100 * UPAGE);
    vma("mmap again, read page 100", p, THP_NR);
    printf("frames 0-511: %s\n", thp_frames(p, 0, THP_NR));
    done_region(p, fd);
    meminfo("after close");

    section("memfd, MADV_NOHUGEPAGE");
    p = memfd_region(&fd);
    madvise(p, THP_SIZE, MADV_NOHUGEPAGE);
    thp_fill(p, 0, THP_NR, 1);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    vma("after", p, THP_NR);
    meminfo("after");
    done_region(p, fd);

    section("memfd, pages 0-9 written (holes 10-511)");
    p = memfd_region(&fd);
    thp_fill(p, 0, 10, 1);
    thp_pfns(p, THP_NR, snap);
    printf("file pages %ld\n", blocks(fd));
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p);
    printf("file pages %ld\n", blocks(fd));
    thp_data("data", p, 0, THP_NR, G1, 1);
    done_region(p, fd);

    section("memfd, pages 0-511 in the page cache (pwrite), none mapped");
    p = memfd_region(&fd);
    for (size_t i = 0; i < THP_NR; i++) {
        pwrite_gen(fd, i, 1);
    }
    thp_pfns(p, THP_NR, snap);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p);
    thp_data("data", p, 0, THP_NR, G1, 1);
    vma("after reading", p, THP_NR);
    done_region(p, fd);

    section("memfd, nothing in the page cache");
    p = memfd_region(&fd);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    vma("after", p, THP_NR);
    meminfo("after");
    thp_pm("after", p, 0, THP_NR);
    printf("file pages %ld\n", blocks(fd));
    done_region(p, fd);

    section("memfd, one page written (page 300)");
    p = memfd_region(&fd);
    thp_fill(p, 300, 301, 1);
    thp_pfns(p, THP_NR, snap);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p);
    printf("file pages %ld\n", blocks(fd));
    thp_data("data", p, 0, THP_NR, G1, 1);
    done_region(p, fd);

    section("memfd of 1024 pages mapped from offset 1 page (misaligned)");
    fd = shm_memfd("thp", 2 * THP_NR);
    p = shm_map_prot(fd, THP_NR, PROT_READ | PROT_WRITE, MAP_SHARED, UPAGE);
    thp_fill(p, 0, THP_NR, 1);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    vma("after", p, THP_NR);
    meminfo("after");
    done_region(p, fd);

    section("memfd, pages 0-9 of the range");
    p = memfd_region(&fd);
    thp_fill(p, 0, THP_NR, 1);
    printf("MADV_COLLAPSE pages 0-9: %s\n", collapse(p, 0, 10));
    vma("after", p, THP_NR);
    meminfo("after");
    done_region(p, fd);
}

/* ---- 2. a second mapping ----------------------------------------------------- */

static void second(void) {
    section("second mapping of the memfd, all pages read through it");
    int fd;
    char *a = memfd_region(&fd);
    char *b = shm_map(fd, THP_NR, MAP_SHARED);
    thp_fill(a, 0, THP_NR, 1);
    thp_data("b data", b, 0, THP_NR, G1, 1);
    thp_pfns(a, THP_NR, snap);
    thp_pfns(b, THP_NR, snap2);
    printf("MADV_COLLAPSE of a: %s\n", collapse(a, 0, THP_NR));
    state("a", a);
    vma("b", b, THP_NR);
    thp_pm("b", b, 0, THP_NR);
    thp_frames_vs("b frames", b, THP_NR, snap2);
    thp_data("b data", b, 0, THP_NR, G1, 1);
    vma("b after reading", b, THP_NR);
    thp_pm("b after reading", b, 0, THP_NR);
    printf("b frames 0-511: %s\n", thp_frames(b, 0, THP_NR));
    printf("b page 7 is a's page 7: %d\n", PM_PFN(uffd_pagemap(b + 7 * UPAGE)) == PM_PFN(uffd_pagemap(a + 7 * UPAGE)));
    meminfo("a and b");
    munmap(b, THP_SIZE);
    b = shm_map(fd, THP_NR, MAP_SHARED);
    printf("munmap b, mmap b again\n");
    thp_pm("b", b, 0, THP_NR);
    (void)*(volatile char *)(b + 5 * UPAGE);
    vma("b after reading page 5", b, THP_NR);
    thp_pm("b after reading page 5", b, 0, THP_NR);
    printf("b frames 0-511: %s\n", thp_frames(b, 0, THP_NR));
    meminfo("a and b");
    munmap(b, THP_SIZE);
    b = shm_map(fd, THP_NR, MAP_SHARED);
    b[9 * UPAGE] = thp_byte(9, 1);
    vma("b again, after writing page 9", b, THP_NR);
    munmap(b, THP_SIZE);
    b = shm_map(fd, THP_NR, MAP_SHARED);
    madvise(b, THP_SIZE, MADV_NOHUGEPAGE);
    (void)*(volatile char *)(b + 5 * UPAGE);
    vma("b again, MADV_NOHUGEPAGE, after reading page 5", b, THP_NR);
    thp_pm("b again, MADV_NOHUGEPAGE, after reading page 5", b, 0, THP_NR);
    munmap(b, THP_SIZE);
    b = shm_map_prot(fd, THP_NR, PROT_READ, MAP_PRIVATE, 0);
    (void)*(volatile char *)(b + 5 * UPAGE);
    vma("b MAP_PRIVATE read-only, after reading page 5", b, THP_NR);
    thp_pm("b MAP_PRIVATE read-only, after reading page 5", b, 0, THP_NR);
    munmap(b, THP_SIZE);
    done_region(a, fd);
    meminfo("after close");
}

/* ---- 3. minor-collapse -------------------------------------------------------- */

static volatile long minor_ok, minor_bad;

static void minor_fn(struct uffd_handler *h, const struct uffd_msg *m) {
    if (m->event != UFFD_EVENT_PAGEFAULT || !(m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR)) {
        minor_bad++;
        return;
    }
    int64_t mapped = 0;
    int e = uffd_continue(h->fd, (void *)(uintptr_t)(m->arg.pagefault.address & ~(UPAGE - 1)), UPAGE, 0, &mapped);
    if (e == 0 && mapped == (int64_t)UPAGE) minor_ok++;
    else minor_bad++;
}

static void minor_collapse(void) {
    section("minor-collapse: MINOR on an alias, CONTINUE per page, collapse of the alias");
    int ufd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_MINOR_SHMEM);
    int fd;
    char *area = memfd_region(&fd);
    char *alias = shm_map(fd, THP_NR, MAP_SHARED);
    printf("register MINOR on the alias: %s\n", uffd_err(-uffd_register(ufd, alias, THP_SIZE, UFFDIO_REGISTER_MODE_MINOR, NULL)));
    thp_fill(area, 0, THP_NR, 1);
    struct uffd_handler h;
    uffd_handler_start(&h, ufd, alias, minor_fn, NULL);
    thp_data("alias data", alias, 0, THP_NR, G1, 1);
    uffd_handler_stop(&h);
    printf("MINOR messages answered %ld, other %ld\n", minor_ok, minor_bad);
    thp_pfns(alias, THP_NR, snap);
    vma("alias", alias, THP_NR);
    thp_pm("alias", alias, 0, THP_NR);
    printf("MADV_COLLAPSE of the alias: %s\n", collapse(alias, 0, THP_NR));
    state("alias", alias);
    vma("area", area, THP_NR);
    thp_pm("area", area, 0, THP_NR);
    uffd_handler_start(&h, ufd, alias, minor_fn, NULL);
    minor_ok = minor_bad = 0;
    thp_data("alias data", alias, 0, THP_NR, G1, 1);
    thp_data("area data", area, 0, THP_NR, G1, 1);
    uffd_handler_stop(&h);
    printf("MINOR messages answered %ld, other %ld\n", minor_ok, minor_bad);
    vma("area after reading", area, THP_NR);
    close(ufd);
    munmap(alias, THP_SIZE);
    done_region(area, fd);
}

/* ---- 4. uffd-wp of a PMD-mapped shmem THP -------------------------------------- */

static void wp_write(int ufd, char *p, size_t page, char val) {
    struct shm_access a;
    shm_access_start(&a, p + page * UPAGE + 17, 1, val);
    struct uffd_msg m;
    char w[64];
    snprintf(w, sizeof w, "write page %zu", page);
    shm_expect_msg(ufd, p, w, &m);
    printf("  writer done %d (asleep)\n", uffd_wait_flag(&a.done, 100));
    printf("  unprotect page %zu: %s\n", page, uffd_err(-uffd_unprotect(ufd, p + page * UPAGE, UPAGE)));
    shm_access_join(&a);
    printf("  writer done %d, byte %d, pending %d\n", a.done, p[page * UPAGE + 17] == val, uffd_pending(ufd, 0));
}

static void wp(void) {
    section("uffd-wp: protect all 2 MiB of a PMD-mapped shmem THP");
    int fd;
    char *p = collapsed(&fd);
    int ufd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    printf("register WP: %s\n", uffd_err(-uffd_register(ufd, p, THP_SIZE, UFFDIO_REGISTER_MODE_WP, NULL)));
    vma("registered", p, THP_NR);
    thp_pm("registered", p, 0, THP_NR);
    printf("protect pages 0-511: %s\n", uffd_err(-uffd_protect(ufd, p, THP_SIZE)));
    vma("protected", p, THP_NR);
    meminfo("protected");
    thp_pm("protected", p, 0, THP_NR);
    char *q = shm_map(fd, THP_NR, MAP_SHARED);
    thp_data("data", q, 0, THP_NR, G1, 1);
    thp_frames_vs("new mapping frames", q, THP_NR, snap);
    munmap(q, THP_SIZE);
    wp_write(ufd, p, 7, 'x');
    thp_pm("after the write", p, 0, THP_NR);
    vma("after the write", p, THP_NR);
    (void)*(volatile char *)(p + 8 * UPAGE);
    thp_pm("after reading page 8", p, 0, 16);
    printf("unprotect pages 0-511: %s\n", uffd_err(-uffd_unprotect(ufd, p, THP_SIZE)));
    thp_pm("unprotected", p, 0, THP_NR);
    vma("unprotected", p, THP_NR);
    printf("MADV_COLLAPSE (still registered): %s\n", collapse(p, 0, THP_NR));
    vma("after", p, THP_NR);
    meminfo("after");
    thp_pm("after", p, 0, THP_NR);
    close(ufd);
    printf("close the uffd\n");
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    vma("after", p, THP_NR);
    thp_pm("after", p, 0, THP_NR);
    thp_frames_vs("after frames", p, THP_NR, snap);
    done_region(p, fd);

    section("uffd-wp: protect page 5 of a PMD-mapped shmem THP");
    p = collapsed(&fd);
    ufd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    printf("register WP: %s\n", uffd_err(-uffd_register(ufd, p, THP_SIZE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect page 5: %s\n", uffd_err(-uffd_protect(ufd, p + 5 * UPAGE, UPAGE)));
    vma("protected", p, THP_NR);
    meminfo("protected");
    thp_pm("protected", p, 0, THP_NR);
    wp_write(ufd, p, 5, 'y');
    thp_pm("after the write", p, 0, 16);
    (void)*(volatile char *)(p + 6 * UPAGE);
    p[300 * UPAGE] = thp_byte(300, 1);
    thp_pm("after reading page 6 and writing page 300", p, 0, THP_NR);
    vma("after", p, THP_NR);
    thp_frames_vs("after frames", p, THP_NR, snap);
    close(ufd);
    done_region(p, fd);
}

/* ---- 5. what ends the PMD mapping ---------------------------------------------- */

/* After an operation on a collapsed region: smaps, meminfo, pagemap, file
 * pages, then the data of pages [lo, hi) (reading faults them in) and again
 * smaps, pagemap and frames. Pages [mlo, mhi) were freed by the operation:
 * a read refills them with pages whose frames may or may not be the freed
 * ones (per-CPU free lists), so their frames are not compared ("-"), nor is
 * the whole range then checked to be one 2 MiB frame. */
static void after_op_masked(const char *what, char *p, int fd, size_t lo, size_t hi, size_t mlo, size_t mhi) {
    char w[128];
    vma(what, p, THP_NR);
    meminfo(what);
    thp_pm(what, p, 0, THP_NR);
    if (fd >= 0) printf("%s: file pages %ld\n", what, blocks(fd));
    snprintf(w, sizeof w, "%s data", what);
    thp_data(w, p, lo, hi, G12, 2);
    snprintf(w, sizeof w, "%s, read", what);
    vma(w, p, THP_NR);
    thp_pm(w, p, 0, THP_NR);
    for (size_t i = mlo; i < mhi; i++) snap[i] = 0;
    thp_frames_vs(w, p, THP_NR, snap);
    if (lo == 0 && hi == THP_NR && mlo == mhi) printf("%s frames 0-511: %s\n", w, thp_frames(p, 0, THP_NR));
}

static void after_op(const char *what, char *p, int fd, size_t lo, size_t hi) {
    after_op_masked(what, p, fd, lo, hi, 0, 0);
}

static void ends(void) {
    int fd;
    char *p;

    section("mprotect page 0 read-only");
    p = collapsed(&fd);
    printf("mprotect: %d\n", mprotect(p, UPAGE, PROT_READ));
    after_op("after", p, fd, 0, THP_NR);
    printf("mprotect back: %d\n", mprotect(p, UPAGE, PROT_READ | PROT_WRITE));
    vma("merged", p, THP_NR);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    vma("after", p, THP_NR);
    done_region(p, fd);

    section("mprotect all 2 MiB read-only");
    p = collapsed(&fd);
    printf("mprotect: %d\n", mprotect(p, THP_SIZE, PROT_READ));
    after_op("after", p, fd, 0, THP_NR);
    done_region(p, fd);

    section("MADV_DONTNEED page 0");
    p = collapsed(&fd);
    printf("MADV_DONTNEED: %d\n", madvise(p, UPAGE, MADV_DONTNEED));
    after_op("after", p, fd, 0, THP_NR);
    done_region(p, fd);

    section("MADV_DONTNEED all 2 MiB");
    p = collapsed(&fd);
    printf("MADV_DONTNEED: %d\n", madvise(p, THP_SIZE, MADV_DONTNEED));
    after_op("after", p, fd, 0, THP_NR);
    done_region(p, fd);

    section("munmap page 0");
    p = collapsed(&fd);
    printf("munmap: %d\n", munmap(p, UPAGE));
    after_op("after", p, fd, 1, THP_NR);
    done_region(p, fd);

    section("fork");
    p = collapsed(&fd);
    int go[2], back[2];
    if (pipe(go) || pipe(back)) exit(2);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1) _exit(4);
        (void)*(volatile char *)(p + 3 * UPAGE);
        if (write(back[1], "r", 1) != 1) _exit(4);
        if (read(go[0], &c, 1) != 1) _exit(4);
        thp_fill(p, 4, 5, 2);
        if (write(back[1], "w", 1) != 1) _exit(4);
        if (read(go[0], &c, 1) != 1) _exit(4);
        _exit(0);
    }
    char c;
    vma("parent", p, THP_NR);
    thp_pm("parent", p, 0, THP_NR);
    vma_pid(pid, "child", p, THP_NR);
    thp_pm_pid(pid, "child", p, 0, THP_NR);
    meminfo("after fork");
    if (write(go[1], "g", 1) != 1 || read(back[0], &c, 1) != 1) exit(2);
    vma_pid(pid, "child read page 3", p, THP_NR);
    thp_pm_pid(pid, "child read page 3", p, 0, THP_NR);
    printf("child frames 0-511: %s\n", thp_frames_pid(pid, p, 0, THP_NR));
    thp_frames_vs_pid(pid, "child frames", p, THP_NR, snap, 0);
    meminfo("child read page 3");
    if (write(go[1], "g", 1) != 1 || read(back[0], &c, 1) != 1) exit(2);
    vma_pid(pid, "child wrote page 4", p, THP_NR);
    thp_pm_pid(pid, "child wrote page 4", p, 0, THP_NR);
    if (write(go[1], "g", 1) != 1) exit(2);
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    vma("parent", p, THP_NR);
    thp_data("parent data", p, 0, THP_NR, G12, 2);
    meminfo("child gone");
    done_region(p, fd);

    section("pwrite of one byte into page 9");
    p = collapsed(&fd);
    printf("pwrite: %ld\n", pwrite_gen(fd, 9, 2));
    after_op("after", p, fd, 0, THP_NR);
    done_region(p, fd);

    section("write(2) of 3 pages at page 20");
    p = collapsed(&fd);
    {
        static char buf[3 * UPAGE];
        for (int i = 0; i < 3; i++) memset(buf + i * UPAGE, thp_byte(20 + i, 2), UPAGE);
        lseek(fd, 20 * UPAGE, SEEK_SET);
        printf("write: %zd\n", write(fd, buf, sizeof buf));
    }
    after_op("after", p, fd, 0, THP_NR);
    done_region(p, fd);

    section("ftruncate to 1 MiB");
    p = collapsed(&fd);
    printf("ftruncate: %d\n", ftruncate(fd, THP_SIZE / 2));
    after_op("after", p, fd, 0, THP_NR / 2);
    shm_catch(SIGBUS);
    shm_probe("read page 300", p, 300 * UPAGE, 0, 0);
    printf("ftruncate back to 2 MiB: %d\n", ftruncate(fd, THP_SIZE));
    thp_data("data", p, 0, THP_NR, G1, 1);
    vma("after", p, THP_NR);
    meminfo("after");
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    vma("after", p, THP_NR);
    meminfo("after");
    thp_data("data", p, 0, THP_NR, G1, 1);
    done_region(p, fd);

    section("fallocate PUNCH_HOLE of page 9");
    p = collapsed(&fd);
    printf("PUNCH_HOLE: %d\n", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 9 * UPAGE, UPAGE));
    after_op_masked("after", p, fd, 0, THP_NR, 9, 10);
    done_region(p, fd);

    section("fallocate PUNCH_HOLE of all 2 MiB");
    p = collapsed(&fd);
    printf("PUNCH_HOLE: %d\n", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, THP_SIZE));
    after_op_masked("after", p, fd, 0, THP_NR, 0, THP_NR);
    done_region(p, fd);

    section("MADV_REMOVE of page 9");
    p = collapsed(&fd);
    printf("MADV_REMOVE: %d\n", madvise(p + 9 * UPAGE, UPAGE, MADV_REMOVE));
    after_op_masked("after", p, fd, 0, THP_NR, 9, 10);
    done_region(p, fd);
}

/* ---- 6. refusals ------------------------------------------------------------------ */

static void refusals(void) {
    section("uffd-wp: one protected PTE");
    int fd;
    char *p = memfd_region(&fd);
    int ufd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    thp_fill(p, 0, THP_NR, 1);
    thp_pfns(p, THP_NR, snap);
    printf("register WP: %s\n", uffd_err(-uffd_register(ufd, p, THP_SIZE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect page 5: %s\n", uffd_err(-uffd_protect(ufd, p + 5 * UPAGE, UPAGE)));
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p);
    printf("unprotect page 5: %s\n", uffd_err(-uffd_unprotect(ufd, p + 5 * UPAGE, UPAGE)));
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p);
    close(ufd);
    printf("close the uffd\n");
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p);
    thp_data("data", p, 0, THP_NR, G1, 1);
    done_region(p, fd);

    section("uffd-wp: a marker (page 5 protected, its PTE zapped)");
    p = memfd_region(&fd);
    ufd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    thp_fill(p, 0, THP_NR, 1);
    thp_pfns(p, THP_NR, snap);
    printf("register WP: %s\n", uffd_err(-uffd_register(ufd, p, THP_SIZE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect page 5: %s\n", uffd_err(-uffd_protect(ufd, p + 5 * UPAGE, UPAGE)));
    printf("MADV_DONTNEED page 5: %d\n", madvise(p + 5 * UPAGE, UPAGE, MADV_DONTNEED));
    thp_pm("before", p, 0, 16);
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p);
    close(ufd);
    done_region(p, fd);

    section("uffd-wp registered, nothing protected");
    p = memfd_region(&fd);
    ufd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    thp_fill(p, 0, THP_NR, 1);
    thp_pfns(p, THP_NR, snap);
    printf("register WP: %s\n", uffd_err(-uffd_register(ufd, p, THP_SIZE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
    state("after", p);
    close(ufd);
    done_region(p, fd);

    const struct {
        const char *name;
        uint64_t mode, feat;
    } modes[] = {
        { "MINOR", UFFDIO_REGISTER_MODE_MINOR, UFFD_FEATURE_MINOR_SHMEM },
        { "MISSING", UFFDIO_REGISTER_MODE_MISSING, 0 },
        { "WP", UFFDIO_REGISTER_MODE_WP, UFFD_FEATURE_WP_HUGETLBFS_SHMEM },
    };
    for (size_t k = 0; k < sizeof modes / sizeof *modes; k++) {
        char s[96];
        snprintf(s, sizeof s, "%s registered, pages 0-9 written (holes 10-511)", modes[k].name);
        section(s);
        p = memfd_region(&fd);
        ufd = uffd_open(O_CLOEXEC | O_NONBLOCK, modes[k].feat);
        thp_fill(p, 0, 10, 1);
        thp_pfns(p, THP_NR, snap);
        printf("register %s: %s\n", modes[k].name, uffd_err(-uffd_register(ufd, p, THP_SIZE, modes[k].mode, NULL)));
        printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
        vma("after", p, THP_NR);
        meminfo("after");
        thp_pm("after", p, 0, THP_NR);
        printf("file pages %ld\n", blocks(fd));
        close(ufd);
        printf("close the uffd\n");
        printf("MADV_COLLAPSE: %s\n", collapse(p, 0, THP_NR));
        state("after", p);
        done_region(p, fd);
    }

    section("MISSING registered on a second mapping, pages 0-9 written (holes 10-511)");
    p = memfd_region(&fd);
    char *b = shm_map(fd, THP_NR, MAP_SHARED);
    ufd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    thp_fill(p, 0, 10, 1);
    printf("register MISSING on b: %s\n", uffd_err(-uffd_register(ufd, b, THP_SIZE, UFFDIO_REGISTER_MODE_MISSING, NULL)));
    printf("MADV_COLLAPSE of a: %s\n", collapse(p, 0, THP_NR));
    vma("a", p, THP_NR);
    meminfo("a");
    close(ufd);
    munmap(b, THP_SIZE);
    done_region(p, fd);
}

int main(void) {
    thp_khugepaged_settle();
    thp_sysfs_line("enabled");
    thp_sysfs_line("shmem_enabled");
    thp_sysfs_line("hugepages-2048kB/shmem_enabled");
    mi_huge0 = meminfo_kb("ShmemHugePages");
    mi_pmd0 = meminfo_kb("ShmemPmdMapped");
    basic();
    second();
    minor_collapse();
    wp();
    ends();
    refusals();
    meminfo("end");
    thp_khugepaged_check();
    printf("done\n");
    return 0;
}
