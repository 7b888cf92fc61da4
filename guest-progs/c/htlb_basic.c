// htlb_basic: the hugetlb pool and 2 MiB hugetlb mappings (issue 10). The
// program manages the pool itself (htlb.h): it starts from an empty pool and
// prints the pool state after every step that could change it ("pool ...":
// HugePages_Total/Free/Rsvd/Surp and Hugetlb of /proc/meminfo,
// vm.nr_hugepages, the sysfs files of hugepages-2048kB, HugetlbPages of
// /proc/self/status). Mappings are placed at a 2 MiB-aligned base inside a
// PROT_NONE reservation; page indexes are 4 KiB pages from that base (a huge
// page is 512 of them); data is the thp.h pattern (three bytes per 4 KiB
// page); pagemap is printed as flags in runs (p present, f file/shared,
// x exclusively mapped, - none) and frames are only compared with each other.
//   * the pool files: listing and modes, writes through /proc/sys/vm and
//     sysfs, bad values (EINVAL), read-only files (EACCES), the meminfo lines;
//   * MAP_HUGETLB private and shared (and MAP_HUGE_2MB): mmap reserves
//     (Rsvd), the first touch (read or write) takes a page out of the
//     reservation (Free and Rsvd down), smaps (KernelPageSize, MMUPageSize,
//     Private_Hugetlb, Shared_Hugetlb, Rss 0), pagemap (512 subpages of one
//     frame: subpage i = head + i), munmap gives the pages back;
//   * reservations: ENOMEM when free minus reserved pages cannot cover a new
//     mapping, shrinking the pool below what is in use or reserved leaves
//     surplus pages (vm.nr_hugepages and sysfs nr_hugepages then differ);
//   * MAP_NORESERVE: no reservation, a fault with no free page is SIGBUS
//     (BUS_ADRERR, exact si_addr);
//   * sizes and alignment: lengths round up to 2 MiB, MAP_FIXED or offsets
//     not 2 MiB aligned, unsupported MAP_HUGE_* sizes; munmap, mprotect and
//     madvise of part of a huge page;
//   * MADV_DONTNEED (start must be aligned, the end is rounded down):
//     private pages are freed and read back as zeros, shared pages stay in
//     the page cache; MADV_REMOVE; the other advice;
//   * memfd_create(MFD_HUGETLB): fstat, ftruncate, mmap shared and private
//     (private COW from the page cache), read/write(2), fallocate, PUNCH_HOLE
//     (a partial punch zeroes, a whole one frees), seals, truncation SIGBUS;
//   * fork: private pages are COW-shared (the first writer copies, the last
//     one reuses), shared mappings are not copied (faulted in again); with an
//     exhausted pool the child's COW is SIGBUS, and the parent (the
//     reservation owner) takes the page away from the child, whose next
//     access is SIGBUS; a child killed by SIGBUS leaves the pool to the parent.
#define _GNU_SOURCE
#include "htlb.h"
#include <dirent.h>
#include <sys/resource.h>

#define HP (MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB)
#define HS (MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB)
#define NR HTLB_NR_2M

static void section(const char *s) {
    printf("== %s\n", s);
}

static const int G1[] = { 1 };
static const int G12[] = { 1, 2 };

/* "<what>: <r>" or "<what>: <errno name>" (r < 0, errno set by libc). */
static void row(const char *what, long r) {
    if (r < 0) printf("%s: %s\n", what, shm_err(errno));
    else printf("%s: %ld\n", what, r);
}

/* "<what>: ok" or the errno name of a -errno result. */
static void rowe(const char *what, int r) {
    printf("%s: %s\n", what, r < 0 ? shm_err(-r) : "ok");
}

static void pm(const char *what, const char *p, size_t pages) {
    thp_pm(what, p, 0, pages);
}

/* The lines of /proc/meminfo about hugetlb, as they are. */
static void meminfo_lines(void) {
    char *s = thp_slurp("/proc/meminfo");
    for (char *l = s; l && *l;) {
        char *e = strchr(l, '\n');
        if (!e) break;
        if (!strncmp(l, "HugePages_", 10) || !strncmp(l, "Hugepagesize:", 13) || !strncmp(l, "Hugetlb:", 8))
            printf("meminfo: %.*s\n", (int)(e - l), l);
        l = e + 1;
    }
    free(s);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of a directory, sorted, with their permission bits. */
static void list_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) {
        printf("%s: %s\n", path, shm_err(errno));
        return;
    }
    char *names[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64)
        if (de->d_name[0] != '.') names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    printf("%s:", path);
    for (int i = 0; i < n; i++) {
        char p[256];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", path, names[i]);
        if (stat(p, &st) == 0) printf(" %s(%s %03o)", names[i], S_ISDIR(st.st_mode) ? "dir" : "file", st.st_mode & 0777);
        else printf(" %s(?)", names[i]);
        free(names[i]);
    }
    printf("\n");
}

/* Writes str to path and prints the result (a newline in str shown as \n). */
static void write_show(const char *path, const char *str) {
    htlb_mark(HTLB_2M);
    char w[200], shown[32];
    size_t j = 0;
    for (size_t i = 0; str[i] && j + 3 < sizeof shown; i++) {
        if (str[i] == '\n') {
            shown[j++] = '\\';
            shown[j++] = 'n';
        } else shown[j++] = str[i];
    }
    shown[j] = 0;
    snprintf(w, sizeof w, "write \"%s\" to %s", shown, path);
    rowe(w, htlb_write_str(path, str));
}

static void pool_files(void) {
    section("the pool files");
    list_dir("/sys/kernel/mm/hugepages");
    list_dir("/sys/kernel/mm/hugepages/hugepages-2048kB");
    printf("nr_overcommit_hugepages: %ld, sysfs %ld\n", htlb_read(HTLB_OVC_PATH), htlb_sys(HTLB_2M, "nr_overcommit_hugepages"));
    printf("nr_hugepages_mempolicy: %ld\n", htlb_sys(HTLB_2M, "nr_hugepages_mempolicy"));
    meminfo_lines();
    htlb_pool("empty");
    write_show(HTLB_NR_PATH, "3\n");
    htlb_pool("after 3 to vm.nr_hugepages");
    meminfo_lines();
    write_show(HTLB_SYS_2M "nr_hugepages", "5");
    htlb_pool("after 5 to sysfs nr_hugepages");
    write_show(HTLB_NR_PATH, " 4");
    htlb_pool("after \" 4\"");
    write_show(HTLB_NR_PATH, "abc");
    write_show(HTLB_NR_PATH, "-1");
    write_show(HTLB_NR_PATH, "4x");
    write_show(HTLB_SYS_2M "free_hugepages", "1");
    write_show(HTLB_SYS_2M "resv_hugepages", "1");
    write_show(HTLB_SYS_2M "surplus_hugepages", "1");
    htlb_pool("after the bad writes");
}

static void private_map(void) {
    section("MAP_HUGETLB private: reservation, fault, pagemap, smaps");
    htlb_pool("before");
    char *p = htlb_map(2 * HTLB_2M, HP);
    htlb_pool("mmap of 2 huge pages");
    htlb_smaps("mapped", p, 0, 2 * NR);
    pm("mapped", p, 2 * NR);
    thp_fill(p, 5, 6, 1);
    htlb_pool("after a write to page 5");
    htlb_smaps("after the write", p, 0, 2 * NR);
    pm("after the write", p, 2 * NR);
    printf("frames 0-511: %s\n", htlb_frames(p, 0, NR, NR, 0));
    htlb_pm_raw("page 0 entry", p, 0);
    htlb_pm_raw("page 511 entry", p, 511);
    printf("read page 700: %d\n", *(volatile char *)(p + 700 * UPAGE));
    htlb_pool("after a read of page 700");
    pm("after the read", p, 2 * NR);
    printf("frames 512-1023: %s, the two huge pages %s\n", htlb_frames(p, NR, NR, NR, 0),
           htlb_pfn(p, 0) == htlb_pfn(p, NR) ? "share a frame" : "have different frames");
    thp_fill(p, 0, 2 * NR, 1);
    thp_data("data", p, 0, 2 * NR, G1, 1);
    row("munmap", munmap(p, 2 * HTLB_2M));
    htlb_pool("after munmap");

    section("MAP_HUGETLB | MAP_HUGE_2MB private");
    p = htlb_map(HTLB_2M, HP | MAP_HUGE_2MB);
    htlb_pool("mmap");
    htlb_smaps("mapped", p, 0, NR);
    thp_fill(p, 0, 1, 1);
    htlb_pool("after a write");
    row("munmap", munmap(p, HTLB_2M));
    htlb_pool("after munmap");
}

static void shared_map(void) {
    section("MAP_HUGETLB shared");
    char *p = htlb_map(2 * HTLB_2M, HS);
    htlb_pool("mmap of 2 huge pages");
    htlb_smaps("mapped", p, 0, 2 * NR);
    thp_fill(p, 3, 4, 1);
    htlb_pool("after a write to page 3");
    htlb_smaps("after the write", p, 0, 2 * NR);
    pm("after the write", p, 2 * NR);
    printf("frames 0-511: %s\n", htlb_frames(p, 0, NR, NR, 0));
    htlb_pm_raw("page 3 entry", p, 3);
    printf("read page 512: %d\n", *(volatile char *)(p + NR * UPAGE));
    htlb_pool("after a read of page 512");
    row("munmap", munmap(p, 2 * HTLB_2M));
    htlb_pool("after munmap");

    section("MAP_HUGETLB | MAP_HUGE_2MB shared");
    p = htlb_map(HTLB_2M, HS | MAP_HUGE_2MB);
    htlb_pool("mmap");
    thp_fill(p, 0, 1, 1);
    htlb_pool("after a write");
    row("munmap", munmap(p, HTLB_2M));
    htlb_pool("after munmap");
}

/* mmap of `n` huge pages with flags at a fresh aligned base: prints
 * "<what>: ok" or the errno; returns the mapping or NULL. */
static char *try_map(const char *what, size_t len, int flags) {
    char *p = htlb_mmap_at(len, HTLB_2M, PROT_READ | PROT_WRITE, flags, -1, 0);
    printf("%s: %s\n", what, p ? "ok" : shm_err(errno));
    return p;
}

static void reservations(void) {
    section("reservations: ENOMEM at mmap");
    htlb_pool_set(HTLB_2M, 4);
    htlb_pool("4 pages");
    char *a = try_map("mmap private 5 huge pages", 5 * HTLB_2M, HP);
    char *b = try_map("mmap shared 5 huge pages", 5 * HTLB_2M, HS);
    a = try_map("mmap private 3 huge pages", 3 * HTLB_2M, HP);
    htlb_pool("after");
    b = try_map("mmap shared 2 huge pages", 2 * HTLB_2M, HS);
    b = try_map("mmap shared 1 huge page", HTLB_2M, HS);
    htlb_pool("after");
    char *c = try_map("mmap private 1 huge page", HTLB_2M, HP);
    thp_fill(a, 0, 1, 1);
    htlb_pool("after a write to the first private page");
    c = try_map("mmap private 1 huge page", HTLB_2M, HP);
    thp_fill(b, 0, 1, 1);
    htlb_pool("after a write to the shared page");
    row("munmap private", munmap(a, 3 * HTLB_2M));
    htlb_pool("after munmap of the private mapping");
    c = try_map("mmap private 3 huge pages", 3 * HTLB_2M, HP);
    htlb_pool("after");
    row("munmap", munmap(c, 3 * HTLB_2M));
    row("munmap", munmap(b, HTLB_2M));
    htlb_pool("after munmap");

    section("reservations: shrinking the pool under pages in use");
    a = htlb_map(2 * HTLB_2M, HP);
    thp_fill(a, 0, 1, 1);
    htlb_pool("one page in use, one reserved");
    write_show(HTLB_NR_PATH, "0");
    htlb_pool("after 0 to vm.nr_hugepages");
    thp_fill(a, NR, NR + 1, 1);
    htlb_pool("after a write to the reserved page");
    thp_data("data", a, 0, 2 * NR, G1, 1);
    write_show(HTLB_NR_PATH, "1");
    htlb_pool("after 1 to vm.nr_hugepages");
    row("munmap", munmap(a, 2 * HTLB_2M));
    htlb_pool("after munmap");
    write_show(HTLB_NR_PATH, "0");
    htlb_pool("after 0");
}

static void noreserve(void) {
    section("MAP_NORESERVE with an empty pool");
    htlb_pool("before");
    char *p = try_map("mmap private 2 huge pages", 2 * HTLB_2M, HP | MAP_NORESERVE);
    htlb_pool("after");
    try_map("mmap private without MAP_NORESERVE", HTLB_2M, HP);
    htlb_probe("write page 3 off 100", p, 3 * UPAGE + 100, 1, 'x');
    htlb_probe("read page 600 off 5", p, 600 * UPAGE + 5, 0, 0);
    htlb_pool("after the faults");
    pm("pagemap", p, 2 * NR);
    row("munmap", munmap(p, 2 * HTLB_2M));
    p = try_map("mmap shared 1 huge page", HTLB_2M, HS | MAP_NORESERVE);
    htlb_probe("write page 0 off 0", p, 0, 1, 'x');
    row("munmap", munmap(p, HTLB_2M));

    section("MAP_NORESERVE with one free page");
    htlb_pool_set(HTLB_2M, 1);
    p = try_map("mmap private 2 huge pages", 2 * HTLB_2M, HP | MAP_NORESERVE);
    htlb_pool("after");
    char *q = try_map("mmap private 1 huge page (reserving)", HTLB_2M, HP);
    htlb_pool("after");
    row("munmap", munmap(q, HTLB_2M));
    htlb_probe("write page 0", p, 0, 1, 'x');
    htlb_pool("after");
    htlb_probe("write page 512", p, NR * UPAGE, 1, 'y');
    q = try_map("mmap private 1 huge page (reserving)", HTLB_2M, HP);
    if (q) munmap(q, HTLB_2M);
    pm("pagemap", p, 2 * NR);
    row("munmap", munmap(p, 2 * HTLB_2M));
    htlb_pool("after munmap");
}

static void alignment(void) {
    section("sizes and alignment");
    htlb_pool_set(HTLB_2M, 4);
    char *p = try_map("mmap length 4 KiB", UPAGE, HP);
    htlb_pool("after");
    htlb_smaps("4 KiB mapping", p, 0, NR);
    thp_fill(p, 511, 512, 1);
    printf("write page 511: ok\n");
    row("munmap length 4 KiB", munmap(p, UPAGE));
    row("munmap length 2 MiB", munmap(p, HTLB_2M));
    p = try_map("mmap length 2 MiB + 4 KiB", HTLB_2M + UPAGE, HS);
    htlb_pool("after");
    htlb_smaps("2 MiB + 4 KiB mapping", p, 0, 2 * NR);
    row("munmap length 2 MiB + 4 KiB", munmap(p, HTLB_2M + UPAGE));
    htlb_pool("after");
    row("munmap length 4 MiB", munmap(p, 2 * HTLB_2M));
    htlb_pool("after");
    char *r = shm_reserve(4 * HTLB_2M);
    void *q = mmap(r + UPAGE, HTLB_2M, PROT_READ | PROT_WRITE, HP | MAP_FIXED, -1, 0);
    printf("MAP_FIXED at 4 KiB past a 2 MiB boundary: %s\n", q == MAP_FAILED ? shm_err(errno) : "ok");
    q = mmap(r + UPAGE, HTLB_2M, PROT_READ | PROT_WRITE, HP | MAP_FIXED_NOREPLACE, -1, 0);
    printf("MAP_FIXED_NOREPLACE there: %s\n", q == MAP_FAILED ? shm_err(errno) : "ok");
    q = mmap(r + UPAGE, HTLB_2M, PROT_READ | PROT_WRITE, HP, -1, 0);
    printf("a hint there (no MAP_FIXED): %s, 2 MiB-aligned %s\n", q == MAP_FAILED ? shm_err(errno) : "ok",
           q != MAP_FAILED && (uintptr_t)q % HTLB_2M == 0 ? "yes" : "no");
    if (q != MAP_FAILED) munmap(q, HTLB_2M);
    q = mmap(r, HTLB_2M, PROT_READ | PROT_WRITE, HP | MAP_FIXED, -1, (off_t)UPAGE);
    printf("anonymous, offset 4 KiB: %s\n", q == MAP_FAILED ? shm_err(errno) : "ok");
    q = mmap(r, HTLB_2M, PROT_READ | PROT_WRITE, HP | MAP_FIXED | (22 << MAP_HUGE_SHIFT), -1, 0);
    printf("MAP_HUGE 4 MiB (log2 22): %s\n", q == MAP_FAILED ? shm_err(errno) : "ok");
    q = mmap(r, HTLB_2M, PROT_READ | PROT_WRITE, HP | MAP_FIXED | (12 << MAP_HUGE_SHIFT), -1, 0);
    printf("MAP_HUGE 4 KiB (log2 12): %s\n", q == MAP_FAILED ? shm_err(errno) : "ok");
    q = mmap(r, HTLB_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_HUGE_2MB, -1, 0);
    printf("MAP_HUGE_2MB without MAP_HUGETLB: %s\n", q == MAP_FAILED ? shm_err(errno) : "ok");
    htlb_smaps("that mapping", r, 0, NR);
    htlb_pool("after");
    munmap(r, 4 * HTLB_2M);

    section("munmap and mprotect of part of a huge page");
    p = htlb_map(2 * HTLB_2M, HP);
    thp_fill(p, 0, 2 * NR, 1);
    htlb_pool("2 huge pages written");
    row("munmap page 0", munmap(p, UPAGE));
    row("munmap page 1", munmap(p + UPAGE, UPAGE));
    row("munmap pages 0-512", munmap(p, HTLB_2M + UPAGE));
    row("munmap page 512", munmap(p + HTLB_2M, UPAGE));
    row("munmap pages 1-1023", munmap(p + UPAGE, 2 * HTLB_2M - UPAGE));
    row("mprotect page 0 read-only", mprotect(p, UPAGE, PROT_READ));
    row("mprotect pages 0-512 read-only", mprotect(p, HTLB_2M + UPAGE, PROT_READ));
    row("mprotect pages 0-511 read-only", mprotect(p, HTLB_2M, PROT_READ));
    htlb_smaps("after", p, 0, 2 * NR);
    htlb_probe("write page 10", p, 10 * UPAGE, 1, 'x');
    htlb_probe("write page 600", p, 600 * UPAGE, 1, thp_byte(600, 1));
    row("mprotect pages 0-511 read-write", mprotect(p, HTLB_2M, PROT_READ | PROT_WRITE));
    htlb_smaps("after", p, 0, 2 * NR);
    row("munmap pages 512-1023", munmap(p + HTLB_2M, HTLB_2M));
    htlb_pool("after");
    thp_data("data", p, 0, NR, G1, 1);
    row("munmap pages 0-511", munmap(p, HTLB_2M));
    htlb_pool("after");
}

static void advice(void) {
    section("MADV_DONTNEED of private huge pages");
    char *p = htlb_map(2 * HTLB_2M, HP);
    thp_fill(p, 0, 2 * NR, 1);
    htlb_pool("2 huge pages written");
    row("DONTNEED page 0", madvise(p, UPAGE, MADV_DONTNEED));
    pm("after", p, 2 * NR);
    row("DONTNEED page 1", madvise(p + UPAGE, UPAGE, MADV_DONTNEED));
    row("DONTNEED pages 0-510", madvise(p, HTLB_2M - UPAGE, MADV_DONTNEED));
    htlb_pool("after");
    pm("after", p, 2 * NR);
    row("DONTNEED pages 0-512", madvise(p, HTLB_2M + UPAGE, MADV_DONTNEED));
    htlb_pool("after");
    pm("after", p, 2 * NR);
    thp_data("data", p, 0, 2 * NR, G1, 1);
    htlb_pool("after reading the data");
    thp_fill(p, 0, NR, 2);
    row("DONTNEED pages 0-1023", madvise(p, 2 * HTLB_2M, MADV_DONTNEED));
    htlb_pool("after");
    pm("after", p, 2 * NR);
    row("MADV_REMOVE", madvise(p, HTLB_2M, MADV_REMOVE));
    row("MADV_FREE", madvise(p, HTLB_2M, MADV_FREE));
    row("MADV_PAGEOUT", madvise(p, HTLB_2M, MADV_PAGEOUT));
    row("MADV_COLD", madvise(p, HTLB_2M, MADV_COLD));
    row("MADV_HUGEPAGE", madvise(p, HTLB_2M, MADV_HUGEPAGE));
    row("MADV_NOHUGEPAGE", madvise(p, HTLB_2M, MADV_NOHUGEPAGE));
    row("MADV_COLLAPSE", madvise(p, HTLB_2M, MADV_COLLAPSE));
    row("MADV_WILLNEED", madvise(p, HTLB_2M, MADV_WILLNEED));
    htlb_pool("after");
    row("munmap", munmap(p, 2 * HTLB_2M));
    htlb_pool("after munmap");

    section("MADV_DONTNEED and MADV_REMOVE of shared huge pages");
    p = htlb_map(2 * HTLB_2M, HS);
    thp_fill(p, 0, 2 * NR, 1);
    htlb_pool("2 huge pages written");
    row("DONTNEED pages 0-511", madvise(p, HTLB_2M, MADV_DONTNEED));
    htlb_pool("after");
    pm("after", p, 2 * NR);
    thp_data("data", p, 0, 2 * NR, G1, 1);
    pm("after reading the data", p, 2 * NR);
    row("MADV_REMOVE page 0", madvise(p, UPAGE, MADV_REMOVE));
    thp_data("data", p, 0, 2 * NR, G1, 1);
    row("MADV_REMOVE pages 0-511", madvise(p, HTLB_2M, MADV_REMOVE));
    htlb_pool("after");
    pm("after", p, 2 * NR);
    thp_data("data", p, 0, 2 * NR, G1, 1);
    htlb_pool("after reading the data");
    row("munmap", munmap(p, 2 * HTLB_2M));
    htlb_pool("after munmap");
}

static void memfd(void) {
    section("memfd_create(MFD_HUGETLB)");
    int fd = shm_memfd_raw("htlb", MFD_CLOEXEC | MFD_HUGETLB);
    rowe("memfd_create", fd);
    struct stat st;
    fstat(fd, &st);
    printf("fstat: size %ld blksize %ld blocks %ld mode %o nlink %ld\n", (long)st.st_size, (long)st.st_blksize, (long)st.st_blocks,
           st.st_mode, (long)st.st_nlink);
    char link[128], path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    printf("fd link: %s\n", link);
    row("ftruncate 4 KiB", ftruncate(fd, UPAGE));
    row("ftruncate 2 MiB + 4 KiB", ftruncate(fd, HTLB_2M + UPAGE));
    row("ftruncate 4 MiB", ftruncate(fd, 2 * HTLB_2M));
    fstat(fd, &st);
    printf("fstat: size %ld blocks %ld\n", (long)st.st_size, (long)st.st_blocks);
    htlb_pool("after ftruncate");
    char *m = htlb_mmap_at(2 * HTLB_2M, HTLB_2M, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("mmap shared: %s\n", m ? "ok" : shm_err(errno));
    htlb_pool("after mmap");
    htlb_smaps("shared", m, 0, 2 * NR);
    void *q = mmap(NULL, HTLB_2M, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)UPAGE);
    printf("mmap offset 4 KiB: %s\n", q == MAP_FAILED ? shm_err(errno) : "ok");
    thp_fill(m, 0, 2 * NR, 1);
    htlb_pool("after writing both pages");
    fstat(fd, &st);
    printf("fstat: blocks %ld\n", (long)st.st_blocks);
    pm("pagemap", m, 2 * NR);
    char b[4] = { 0 };
    row("pread 1 byte at page 512", pread(fd, b, 1, (off_t)(NR * UPAGE)));
    printf("it reads %s\n", b[0] == thp_byte(NR, 1) ? "g1" : "other");
    row("pwrite 1 byte", pwrite(fd, b, 1, 0));
    row("write 1 byte", write(fd, b, 1));
    row("lseek SEEK_END", lseek(fd, 0, SEEK_END));

    char *pv = htlb_mmap_at(2 * HTLB_2M, HTLB_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("mmap private: %s\n", pv ? "ok" : shm_err(errno));
    htlb_pool("after");
    thp_data("private data", pv, 0, 2 * NR, G1, 1);
    htlb_pool("after reading it");
    pm("private pagemap", pv, 2 * NR);
    printf("private page 0 frame: %s\n", htlb_pfn(pv, 0) == htlb_pfn(m, 0) ? "the shared one" : "another");
    thp_fill(pv, 0, 1, 2);
    htlb_pool("after a write to private page 0");
    pm("private pagemap", pv, 2 * NR);
    printf("private page 0 frame: %s\n", htlb_pfn(pv, 0) == htlb_pfn(m, 0) ? "the shared one" : "another");
    thp_data("private data", pv, 0, 2 * NR, G12, 2);
    thp_data("shared data", m, 0, 2 * NR, G12, 2);
    row("munmap private", munmap(pv, 2 * HTLB_2M));
    htlb_pool("after");

    section("memfd: fallocate and PUNCH_HOLE");
    row("PUNCH_HOLE|KEEP_SIZE page 0", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)UPAGE));
    htlb_pool("after");
    thp_data("data", m, 0, 2 * NR, G1, 1);
    row("PUNCH_HOLE|KEEP_SIZE pages 510-513", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(510 * UPAGE), (off_t)(4 * UPAGE)));
    thp_data("data", m, 0, 2 * NR, G1, 1);
    htlb_pool("after");
    row("PUNCH_HOLE|KEEP_SIZE pages 0-511", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)HTLB_2M));
    htlb_pool("after");
    fstat(fd, &st);
    printf("fstat: size %ld blocks %ld\n", (long)st.st_size, (long)st.st_blocks);
    pm("pagemap", m, 2 * NR);
    thp_data("data", m, 0, 2 * NR, G1, 1);
    htlb_pool("after reading the data");
    row("PUNCH_HOLE without KEEP_SIZE", fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, (off_t)HTLB_2M));
    row("fallocate pages 0-0 (present)", fallocate(fd, 0, 0, (off_t)UPAGE));
    htlb_pool("after");
    row("fallocate pages 1024-1024 (past EOF)", fallocate(fd, 0, (off_t)(2 * HTLB_2M), (off_t)UPAGE));
    fstat(fd, &st);
    printf("fstat: size %ld blocks %ld\n", (long)st.st_size, (long)st.st_blocks);
    htlb_pool("after");
    row("fallocate KEEP_SIZE pages 1536-1536", fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)(3 * HTLB_2M), (off_t)UPAGE));
    fstat(fd, &st);
    printf("fstat: size %ld blocks %ld\n", (long)st.st_size, (long)st.st_blocks);
    htlb_pool("after");
    row("ftruncate 2 MiB", ftruncate(fd, HTLB_2M));
    fstat(fd, &st);
    printf("fstat: size %ld blocks %ld\n", (long)st.st_size, (long)st.st_blocks);
    htlb_pool("after");
    htlb_probe("read page 512 (past EOF)", m, NR * UPAGE, 0, 0);
    row("ftruncate 0", ftruncate(fd, 0));
    htlb_pool("after");
    htlb_probe("read page 0 (past EOF)", m, 0, 0, 0);
    row("munmap", munmap(m, 2 * HTLB_2M));
    close(fd);
    htlb_pool("after close");

    section("memfd: flags and seals");
    fd = shm_memfd_raw("s", MFD_CLOEXEC | MFD_HUGETLB | MFD_ALLOW_SEALING);
    rowe("MFD_HUGETLB|MFD_ALLOW_SEALING", fd);
    row("ftruncate 2 MiB", ftruncate(fd, HTLB_2M));
    row("F_ADD_SEALS SHRINK|GROW", fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
    row("F_GET_SEALS", fcntl(fd, F_GET_SEALS));
    row("ftruncate 0", ftruncate(fd, 0));
    row("ftruncate 4 MiB", ftruncate(fd, 2 * HTLB_2M));
    row("fallocate past EOF", fallocate(fd, 0, (off_t)HTLB_2M, (off_t)HTLB_2M));
    close(fd);
    fd = shm_memfd_raw("h", MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
    rowe("MFD_HUGETLB|MFD_HUGE_2MB", fd);
    if (fd >= 0) close(fd);
    fd = shm_memfd_raw("h", MFD_CLOEXEC | MFD_HUGETLB | (22u << 26));
    rowe("MFD_HUGETLB with a 4 MiB size", fd);
    if (fd >= 0) close(fd);
    fd = shm_memfd_raw("h", MFD_CLOEXEC | MFD_HUGE_2MB);
    rowe("MFD_HUGE_2MB without MFD_HUGETLB", fd);
    if (fd >= 0) close(fd);
    htlb_pool("after");
}

static int p2c[2], c2p[2];

static void tell(int fd) {
    char c = 0;
    if (write(fd, &c, 1) != 1) _exit(9);
}

static void await(int fd) {
    char c;
    if (read(fd, &c, 1) != 1) _exit(9);
}

static void child_done(pid_t pid) {
    int st;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st)) printf("child exited %d\n", WEXITSTATUS(st));
    else if (WIFSIGNALED(st)) printf("child killed by signal %d\n", WTERMSIG(st));
}

static void fork_private(void) {
    section("fork of a private mapping: the child writes first");
    htlb_pool_set(HTLB_2M, 4);
    char *p = htlb_map(HTLB_2M, HP);
    thp_fill(p, 0, NR, 1);
    htlb_pool("parent wrote the page");
    uint64_t f0 = htlb_pfn(p, 0);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        pm("child pagemap", p, NR);
        htlb_pool("child after fork");
        thp_data("child data", p, 0, NR, G1, 1);
        thp_fill(p, 0, 1, 2);
        htlb_pool("child after its write");
        pm("child pagemap", p, NR);
        printf("child frames: %s, %s\n", htlb_frames(p, 0, NR, NR, 0), htlb_pfn(p, 0) == f0 ? "the parent's" : "a new one");
        thp_data("child data", p, 0, NR, G12, 2);
        pl_flush();
        tell(c2p[1]);
        await(p2c[0]);
        _exit(0);
    }
    await(c2p[0]);
    pm("parent pagemap", p, NR);
    thp_data("parent data", p, 0, NR, G12, 2);
    thp_fill(p, 1, 2, 2);
    printf("parent wrote page 1: frame %s\n", htlb_pfn(p, 0) == f0 ? "kept" : "new");
    htlb_pool("after the parent's write");
    tell(p2c[1]);
    child_done(pid);
    htlb_pool("after the child exited");
    row("munmap", munmap(p, HTLB_2M));

    section("fork of a private mapping: the parent writes first");
    p = htlb_map(HTLB_2M, HP);
    thp_fill(p, 0, NR, 1);
    f0 = htlb_pfn(p, 0);
    pl_flush();
    pid = fork();
    if (pid == 0) {
        await(p2c[0]);
        htlb_pool("child after the parent's write");
        printf("child frame: %s\n", htlb_pfn(p, 0) == f0 ? "the old one" : "another");
        pm("child pagemap", p, NR);
        thp_fill(p, 0, 1, 2);
        printf("child wrote page 0: frame %s\n", htlb_pfn(p, 0) == f0 ? "the old one" : "another");
        htlb_pool("child after its write");
        thp_data("child data", p, 0, NR, G12, 2);
        pl_flush();
        _exit(0);
    }
    thp_fill(p, 1, 2, 2);
    printf("parent wrote page 1: frame %s\n", htlb_pfn(p, 0) == f0 ? "kept" : "new");
    htlb_pool("after the parent's write");
    pm("parent pagemap", p, NR);
    pl_flush();
    tell(p2c[1]);
    child_done(pid);
    htlb_pool("after the child exited");
    thp_data("parent data", p, 0, NR, G12, 2);
    row("munmap", munmap(p, HTLB_2M));
    htlb_pool("after munmap");
}

static void fork_shared(void) {
    section("fork of a shared mapping");
    char *p = htlb_map(HTLB_2M, HS);
    thp_fill(p, 0, NR, 1);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        pm("child pagemap", p, NR);
        htlb_pool("child after fork");
        thp_data("child data", p, 0, NR, G1, 1);
        pm("child pagemap after the read", p, NR);
        htlb_smaps("child", p, 0, NR);
        thp_fill(p, 7, 8, 2);
        pl_flush();
        tell(c2p[1]);
        await(p2c[0]);
        _exit(0);
    }
    await(c2p[0]);
    htlb_smaps("parent", p, 0, NR);
    pm("parent pagemap", p, NR);
    tell(p2c[1]);
    child_done(pid);
    thp_data("parent data", p, 0, NR, G12, 2);
    htlb_smaps("parent", p, 0, NR);
    pm("parent pagemap", p, NR);
    row("munmap", munmap(p, HTLB_2M));
    htlb_pool("after munmap");
}

static void fork_exhausted(void) {
    section("fork of a private mapping with no free page: the child's COW fails");
    htlb_pool_set(HTLB_2M, 1);
    char *p = htlb_map(HTLB_2M, HP);
    thp_fill(p, 0, NR, 1);
    htlb_pool("parent wrote the only page");
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        htlb_probe("child writes page 3", p, 3 * UPAGE, 1, 'x');
        htlb_pool("child after");
        pm("child pagemap", p, NR);
        thp_data("child data", p, 0, NR, G1, 1);
        pl_flush();
        tell(c2p[1]);
        await(p2c[0]);
        pm("child pagemap after the parent's write", p, NR);
        htlb_probe("child reads page 4", p, 4 * UPAGE, 0, 0);
        htlb_probe("child writes page 4", p, 4 * UPAGE, 1, 'x');
        htlb_smaps("child", p, 0, NR);
        pl_flush();
        _exit(0);
    }
    await(c2p[0]);
    uint64_t f0 = htlb_pfn(p, 0);
    thp_fill(p, 1, 2, 2);
    printf("parent wrote page 1: frame %s\n", htlb_pfn(p, 0) == f0 ? "kept" : "new");
    htlb_pool("after the parent's write");
    pm("parent pagemap", p, NR);
    pl_flush();
    tell(p2c[1]);
    child_done(pid);
    thp_data("parent data", p, 0, NR, G12, 2);
    row("munmap", munmap(p, HTLB_2M));
    htlb_pool("after munmap");

    section("fork with no free page: the parent writes first, the child dies of SIGBUS");
    p = htlb_map(HTLB_2M, HP);
    thp_fill(p, 0, NR, 1);
    pl_flush();
    pid = fork();
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        signal(SIGBUS, SIG_DFL);
        await(p2c[0]);
        printf("child reads page 0\n");
        pl_flush();
        (void)*(volatile char *)p;
        printf("child read it\n");
        pl_flush();
        _exit(0);
    }
    f0 = htlb_pfn(p, 0);
    thp_fill(p, 1, 2, 2);
    printf("parent wrote page 1: frame %s\n", htlb_pfn(p, 0) == f0 ? "kept" : "new");
    htlb_pool("after the parent's write");
    pl_flush();
    tell(p2c[1]);
    child_done(pid);
    htlb_pool("after the child died");
    row("munmap", munmap(p, HTLB_2M));
    htlb_pool("after munmap");
}

int main(void) {
    htlb_setup(0, 0);
    shm_catch(SIGBUS);
    shm_catch(SIGSEGV);
    if (pipe(p2c) < 0 || pipe(c2p) < 0) return 3;
    pool_files();
    private_map();
    shared_map();
    reservations();
    noreserve();
    alignment();
    advice();
    memfd();
    fork_private();
    fork_shared();
    fork_exhausted();
    htlb_finish();
    printf("done\n");
    return 0;
}
