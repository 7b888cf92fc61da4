/* htlb.h -- helpers shared by the htlb_*.c guest programs (issue 10:
 * hugetlb, MAP_HUGETLB and MFD_HUGETLB memory).
 *
 * Header-only (static inline) on top of thp.h (and so shm.h, uffd.h), with
 * their conventions: page indexes relative to an aligned base inside a
 * PROT_NONE reservation, never addresses; pagemap flags, never frame numbers;
 * frames only compared with each other.
 *
 * The pool. Every program manages the host's (natively) or the guest
 * kernel's (under pagelab) hugetlb pool itself, the same way in both:
 * htlb_setup reads nr_hugepages and surplus_hugepages of both sizes (and
 * nr_overcommit_hugepages); if any is not 0 it prints "HUGETLB POOL NOT
 * EMPTY" (or "HUGETLB OVERCOMMIT NOT 0") and exits 4, since the transcript
 * counts pages from an empty pool (a file it cannot read: "HUGETLB POOL NOT
 * AVAILABLE", exit 4, after a line naming the file).
 * Otherwise it writes the count the program needs and checks it took (else
 * "HUGETLB POOL NOT AVAILABLE", exit 4: natively the host could not allocate
 * that many huge pages). The pool is put back to 0 by htlb_finish at the
 * normal end (which prints the state), and by an atexit handler on any other
 * exit of the process that set it up (never of a forked child: children
 * leave with _exit, or die of a planned signal, and the parent restores).
 * Natively the test harness holds an exclusive lock (tests/src/lib.rs,
 * run_native) so two programs never share the host pool.
 *
 * Pool state is printed by htlb_pool / htlb_pool_1g from /proc/meminfo
 * (HugePages_*, Hugetlb), /proc/sys/vm/nr_hugepages,
 * /sys/kernel/mm/hugepages/hugepages-<size>/ and /proc/self/status.
 */
#ifndef PAGELAB_HTLB_H
#define PAGELAB_HTLB_H

#include "thp.h"
#include <sys/wait.h>

#define HTLB_2M (2ul << 20)
#define HTLB_1G (1ul << 30)
#define HTLB_NR_2M 512ul          /* 4 KiB pages in a 2 MiB huge page */
#define HTLB_NR_1G 262144ul       /* 4 KiB pages in a 1 GiB huge page */

#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#define MAP_HUGE_1GB (30 << MAP_HUGE_SHIFT)
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21 << 26)
#define MFD_HUGE_1GB (30 << 26)
#endif
#ifndef UFFD_FEATURE_MISSING_HUGETLBFS
#define UFFD_FEATURE_MISSING_HUGETLBFS (1 << 4)
#endif
#ifndef UFFD_FEATURE_MINOR_HUGETLBFS
#define UFFD_FEATURE_MINOR_HUGETLBFS (1 << 9)
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif

#define HTLB_NR_PATH "/proc/sys/vm/nr_hugepages"
#define HTLB_OVC_PATH "/proc/sys/vm/nr_overcommit_hugepages"
#define HTLB_SYS_2M "/sys/kernel/mm/hugepages/hugepages-2048kB/"
#define HTLB_SYS_1G "/sys/kernel/mm/hugepages/hugepages-1048576kB/"

/* The integer in a /proc or /sys file, or -errno. */
static inline long htlb_read(const char *path) {
    char b[64] = "";
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    ssize_t n = read(fd, b, sizeof b - 1);
    int e = errno;
    close(fd);
    if (n < 0) return -e;
    b[n] = 0;
    char *end;
    long v = strtol(b, &end, 10);
    if (end == b) return -EINVAL;
    return v;
}

/* sysfs file `name` of the pool of huge pages of `size` bytes. */
static inline long htlb_sys(unsigned long size, const char *name) {
    char path[128];
    snprintf(path, sizeof path, "%s%s", size == HTLB_1G ? HTLB_SYS_1G : HTLB_SYS_2M, name);
    return htlb_read(path);
}

/* Writes "v\n" to a /proc or /sys file: 0, or -errno. */
static inline int htlb_write(const char *path, long v) {
    char b[32];
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -errno;
    int n = snprintf(b, sizeof b, "%ld\n", v);
    ssize_t r = write(fd, b, (size_t)n);
    int e = errno;
    close(fd);
    if (r < 0) return -e;
    return r == n ? 0 : -EIO;
}

/* The value of "key:" in /proc/meminfo, or -1. */
static inline long htlb_meminfo(const char *key) {
    char *s = thp_slurp("/proc/meminfo");
    if (!s) return -1;
    size_t kl = strlen(key);
    long v = -1;
    for (char *l = s; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (strncmp(l, key, kl) == 0 && l[kl] == ':') {
            v = strtol(l + kl + 1, NULL, 10);
            break;
        }
    free(s);
    return v;
}

/* HugetlbPages of /proc/self/status (kB), or -1. */
static inline long htlb_status_kb(void) {
    char *s = thp_slurp("/proc/self/status");
    if (!s) return -1;
    char *l = strstr(s, "HugetlbPages:");
    long v = l ? strtol(l + 13, NULL, 10) : -1;
    free(s);
    return v;
}

/* "pool <what>: Total T Free F Rsvd R Surp S Hugetlb K kB; vm.nr_hugepages
 * N; sysfs nr N free F resv R surplus S; self HugetlbPages K kB": the
 * default (2 MiB) pool from /proc/meminfo, /proc/sys/vm/nr_hugepages (the
 * persistent pool: surplus pages not counted, unlike sysfs nr_hugepages),
 * the sysfs files and this process's HugetlbPages. */
static inline void htlb_pool(const char *what) {
    printf("pool %s: Total %ld Free %ld Rsvd %ld Surp %ld Hugetlb %ld kB; vm.nr_hugepages %ld; sysfs nr %ld free %ld resv %ld surplus %ld; self HugetlbPages %ld kB\n",
           what, htlb_meminfo("HugePages_Total"), htlb_meminfo("HugePages_Free"), htlb_meminfo("HugePages_Rsvd"),
           htlb_meminfo("HugePages_Surp"), htlb_meminfo("Hugetlb"), htlb_read(HTLB_NR_PATH), htlb_sys(HTLB_2M, "nr_hugepages"),
           htlb_sys(HTLB_2M, "free_hugepages"), htlb_sys(HTLB_2M, "resv_hugepages"), htlb_sys(HTLB_2M, "surplus_hugepages"),
           htlb_status_kb());
}

/* "pool1g <what>: sysfs nr N free F resv R surplus S; Hugetlb K kB; self
 * HugetlbPages K kB": the 1 GiB pool (not in HugePages_*, which count the
 * default size only). */
static inline void htlb_pool_1g(const char *what) {
    printf("pool1g %s: sysfs nr %ld free %ld resv %ld surplus %ld; Hugetlb %ld kB; self HugetlbPages %ld kB\n", what,
           htlb_sys(HTLB_1G, "nr_hugepages"), htlb_sys(HTLB_1G, "free_hugepages"), htlb_sys(HTLB_1G, "resv_hugepages"),
           htlb_sys(HTLB_1G, "surplus_hugepages"), htlb_meminfo("Hugetlb"), htlb_status_kb());
}

/* ---- /proc/self/smaps ------------------------------------------------------ */

/* One line per VMA of self overlapping pages [lo, hi) of base:
 * "<what>: vma LO-HI PERMS NAME Size S KernelPageSize K MMUPageSize M Rss R
 * Shared_Hugetlb H Private_Hugetlb P [flags]", LO and HI page indexes
 * relative to base (4 KiB pages), NAME the mapping's path, flags the
 * VmFlags among ht sh uw um ui. */
static inline void htlb_smaps_opt(const char *what, const char *base, size_t lo_page, size_t hi_page, int sum_hugetlb);

static inline void htlb_smaps(const char *what, const char *base, size_t lo_page, size_t hi_page) {
    htlb_smaps_opt(what, base, lo_page, hi_page, 0);
}

/* htlb_smaps, with sum_hugetlb: "Hugetlb N" (Shared_Hugetlb + Private_Hugetlb)
 * instead of the two (see htlb_1g.c: which of the two a 1 GiB page is
 * counted in is not deterministic natively). */
static inline void htlb_smaps_opt(const char *what, const char *base, size_t lo_page, size_t hi_page, int sum_hugetlb) {
    char *s = thp_slurp("/proc/self/smaps");
    if (!s) {
        printf("%s: smaps unreadable\n", what);
        return;
    }
    long lo = (long)(uintptr_t)base, hi = lo + (long)(hi_page * UPAGE);
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
        /* The name: after the five fields address, perms, offset, dev, inode. */
        char line[256] = "", name[128] = "";
        size_t ll = (size_t)(next - l) < sizeof line - 1 ? (size_t)(next - l) : sizeof line - 1;
        memcpy(line, l, ll);
        line[ll] = 0;
        if (ll && line[ll - 1] == '\n') line[--ll] = 0;
        int n = 0;
        sscanf(line, "%*s %*s %*s %*s %*s %n", &n);
        if (n > 0) snprintf(name, sizeof name, "%s", line + n);
        char *blk = next, *end = next;
        while (*end) {
            unsigned long x, y;
            char q[8];
            if (thp_smaps_header(end, &x, &y, q)) break;
            char *n2 = strchr(end, '\n');
            end = n2 ? n2 + 1 : end + strlen(end);
        }
        if ((long)a < hi && (long)b > lo + (long)(lo_page * UPAGE)) {
            any = 1;
            char fl[32] = "";
            const char *names[] = { "ht", "sh", "uw", "um", "ui" };
            for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
                if (thp_smaps_flag(blk, end, names[i])) {
                    strcat(fl, " ");
                    strcat(fl, names[i]);
                }
            }
            printf("%s: vma %ld-%ld %s %s Size %ld KernelPageSize %ld MMUPageSize %ld Rss %ld", what, ((long)a - lo) / (long)UPAGE,
                   ((long)b - lo) / (long)UPAGE - 1, perms, name[0] ? name : "-", thp_smaps_field(blk, end, "Size"),
                   thp_smaps_field(blk, end, "KernelPageSize"), thp_smaps_field(blk, end, "MMUPageSize"), thp_smaps_field(blk, end, "Rss"));
            long sh = thp_smaps_field(blk, end, "Shared_Hugetlb"), pr = thp_smaps_field(blk, end, "Private_Hugetlb");
            if (sum_hugetlb) printf(" Shared_Hugetlb+Private_Hugetlb %ld%s\n", sh + pr, fl);
            else printf(" Shared_Hugetlb %ld Private_Hugetlb %ld%s\n", sh, pr, fl);
        }
        l = end;
    }
    if (!any) printf("%s: no vma\n", what);
    free(s);
}

/* ---- setup and restore ----------------------------------------------------- */

static int htlb_owner;         /* the pid that set the pool up */
static int htlb_set_2m, htlb_set_1g; /* which pools it wrote */
static int htlb_restored;

/* Notes that the program wrote (or tried to write) the pool of `size`, so
 * htlb_restore puts it back to 0. */
static inline void htlb_mark(unsigned long size) {
    if (size == HTLB_1G) htlb_set_1g = 1;
    else htlb_set_2m = 1;
}

/* Writes the string s (as is) to a /proc or /sys file: 0, or -errno (of
 * open or write). */
static inline int htlb_write_str(const char *path, const char *str) {
    int fd = open(path, O_WRONLY);
    if (fd < 0) return -errno;
    ssize_t r = write(fd, str, strlen(str));
    int e = errno;
    close(fd);
    if (r < 0) return -e;
    return r == (ssize_t)strlen(str) ? 0 : -EIO;
}

/* Writes `n` pages to the pool of `size` through its usual file (2 MiB:
 * /proc/sys/vm/nr_hugepages, 1 GiB: the sysfs nr_hugepages): 0 or -errno. */
static inline int htlb_pool_write(unsigned long size, long n) {
    if (size == HTLB_1G) return htlb_write(HTLB_SYS_1G "nr_hugepages", n);
    return htlb_write(HTLB_NR_PATH, n);
}

/* Puts both pools the program wrote back to 0 (in the owner only). */
static inline void htlb_restore(void) {
    if (htlb_restored || getpid() != htlb_owner) return;
    htlb_restored = 1;
    if (htlb_set_2m) htlb_pool_write(HTLB_2M, 0);
    if (htlb_set_1g) htlb_pool_write(HTLB_1G, 0);
}

static inline void htlb_atexit(void) {
    htlb_restore();
}

static inline void htlb_bail(const char *msg) {
    printf("%s\n", msg);
    pl_flush();
    exit(4);
}

/* Sets the pool of `size` to n pages and checks it took; exit 4 if not. */
static inline void htlb_pool_set(unsigned long size, long n) {
    htlb_mark(size);
    int r = htlb_pool_write(size, n);
    long got = size == HTLB_1G ? htlb_sys(HTLB_1G, "nr_hugepages") : htlb_read(HTLB_NR_PATH);
    if (r < 0 || got != n) {
        printf("(writing %ld to the %s pool: %s, it has %ld)\n", n, size == HTLB_1G ? "1 GiB" : "2 MiB", uffd_err(-r), got);
        htlb_bail("HUGETLB POOL NOT AVAILABLE");
    }
}

/* Call first in main: checks both pools are empty, then sets the 2 MiB pool
 * to n2m pages and the 1 GiB pool to n1g (each only if not 0). */
static inline void htlb_setup(long n2m, long n1g) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    htlb_owner = getpid();
    static const char *files[] = { HTLB_NR_PATH, HTLB_SYS_2M "nr_hugepages", HTLB_SYS_2M "surplus_hugepages",
                                   HTLB_SYS_1G "nr_hugepages", HTLB_SYS_1G "surplus_hugepages", HTLB_OVC_PATH,
                                   HTLB_SYS_1G "nr_overcommit_hugepages" };
    long v[sizeof files / sizeof *files];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        v[i] = htlb_read(files[i]);
        if (v[i] < 0) {
            printf("(cannot read %s: %s)\n", files[i], uffd_err((int)-v[i]));
            htlb_bail("HUGETLB POOL NOT AVAILABLE");
        }
    }
    if (v[0] || v[1] || v[2] || v[3] || v[4]) htlb_bail("HUGETLB POOL NOT EMPTY");
    if (v[5] || v[6]) htlb_bail("HUGETLB OVERCOMMIT NOT 0");
    atexit(htlb_atexit);
    if (n2m) htlb_pool_set(HTLB_2M, n2m);
    if (n1g) htlb_pool_set(HTLB_1G, n1g);
}

/* Call at the normal end, after every hugetlb mapping is gone: restores the
 * pools and prints their state. */
static inline void htlb_finish(void) {
    htlb_restore();
    htlb_pool("at the end");
    if (htlb_set_1g) htlb_pool_1g("at the end");
}

/* ---- mappings -------------------------------------------------------------- */

/* mmap of `len` bytes at a fresh `align`-aligned address inside a PROT_NONE
 * reservation (MAP_FIXED added): the address, or NULL with errno set. */
static inline char *htlb_mmap_at(size_t len, size_t align, int prot, int flags, int fd, off_t off) {
    size_t total = len + 2 * align;
    char *r = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) {
        printf("reserve failed: %s\n", uffd_err(errno));
        pl_flush();
        exit(3);
    }
    char *at = (char *)(((uintptr_t)r + align - 1) & ~(align - 1));
    void *p = mmap(at, len, prot, flags | MAP_FIXED, fd, off);
    if (p == MAP_FAILED) return NULL;
    return p;
}

/* A hugetlb mapping of `len` bytes (RW, `flags` e.g. MAP_PRIVATE |
 * MAP_ANONYMOUS | MAP_HUGETLB) at a fresh 2 MiB-aligned base, or exit(3). */
static inline char *htlb_map(size_t len, int flags) {
    char *p = htlb_mmap_at(len, HTLB_2M, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (!p) {
        printf("mmap failed: %s\n", uffd_err(errno));
        pl_flush();
        exit(3);
    }
    return p;
}

/* A MFD_HUGETLB memfd of `len` bytes (ftruncate'd), or exit(3). */
static inline int htlb_memfd(const char *name, unsigned flags, size_t len) {
    int fd = shm_memfd_raw(name, MFD_CLOEXEC | MFD_HUGETLB | flags);
    if (fd < 0 || ftruncate(fd, (off_t)len) < 0) {
        printf("memfd %s: %s\n", name, uffd_err(fd < 0 ? -fd : errno));
        pl_flush();
        exit(3);
    }
    return fd;
}

/* ---- guarded accesses -------------------------------------------------------- */

/* Reads (write == 0) or writes `val` at base + off and prints "<what>: ok"
 * (a write), "<what>: ok, reads N" (a read, N the byte as a number) or
 * "<what>: SIGBUS code C page P off O" (si_addr as a 4 KiB page index from
 * base and the offset in that page). SIGBUS and SIGSEGV must be caught
 * (shm_catch) first. */
static inline void htlb_probe(const char *what, char *base, size_t off, int write, char val) {
    shm_sig = 0;
    shm_sig_base = base;
    if (sigsetjmp(shm_jb, 1) == 0) {
        if (write) {
            *(volatile char *)(base + off) = val;
            printf("%s: ok\n", what);
        } else {
            char got = *(volatile char *)(base + off);
            printf("%s: ok, reads %d\n", what, got);
        }
    } else {
        printf("%s: %s code %d page %ld off %ld\n", what, shm_signame(shm_sig), shm_code, shm_sig_page, shm_sig_off);
    }
    shm_sig_base = NULL;
}

/* ---- pagemap of huge pages ----------------------------------------------- */

/* The next subpage htlb_frames checks after i: every one (sample 0), or 1,
 * then every `sample`-th, then the last. */
static inline size_t htlb_next_sub(size_t i, size_t per, size_t sample) {
    if (!sample) return i + 1;
    size_t n = i == 1 ? sample : i + sample;
    if (i == per - 1) return per;
    return n >= per ? per - 1 : n;
}

/* How the frames of pages [lo, lo + n) of base relate, n a multiple of
 * `per` (pages per huge page): "consecutive" (every huge page's subpage i
 * is its first's frame + i, the first frame aligned to `per`), "not
 * present" (some page is not present) or "other". With sample > 0 only
 * subpages 0, 1, every sample-th and the last of each huge page are read
 * (for 1 GiB pages). */
static inline const char *htlb_frames(const char *base, size_t lo, size_t n, size_t per, size_t sample) {
    for (size_t h = lo; h < lo + n; h += per) {
        uint64_t e0 = uffd_pagemap(base + h * UPAGE);
        if (e0 == ~0ull) return "unreadable";
        if (!(e0 & PM_PRESENT)) return "not present";
        if (PM_PFN(e0) % per) return "other";
        for (size_t i = 1; i < per; i = htlb_next_sub(i, per, sample)) {
            uint64_t e = uffd_pagemap(base + (h + i) * UPAGE);
            if (e == ~0ull) return "unreadable";
            if (!(e & PM_PRESENT)) return "not present";
            if (PM_PFN(e) != PM_PFN(e0) + i) return "other";
        }
    }
    return "consecutive";
}

/* The frame of page i of base (0 if not present). */
static inline uint64_t htlb_pfn(const char *base, size_t i) {
    uint64_t e = uffd_pagemap(base + i * UPAGE);
    return (e != ~0ull && (e & PM_PRESENT)) ? PM_PFN(e) : 0;
}

/* thp_pm (flags in runs over pages [lo, hi) of base) with the bits of
 * `ignore` (e.g. PM_EXCL) left out of every entry. */
static inline void htlb_pm_masked(const char *what, const char *base, size_t lo, size_t hi, uint64_t ignore) {
    uint64_t *e = malloc((hi - lo) * 8);
    if (thp_pagemap_pid(0, base, lo, hi, e) < 0) {
        printf("%s: pagemap unreadable\n", what);
        free(e);
        return;
    }
    for (size_t i = 0; i < hi - lo; i++) e[i] &= ~ignore;
    printf("%s:", what);
    size_t i = 0;
    while (i < hi - lo) {
        size_t j = i + 1;
        while (j < hi - lo && (e[j] & PM_FLAGS_MASK) == (e[i] & PM_FLAGS_MASK)) j++;
        char f[16];
        thp_pm_letters(e[i], f);
        if (j - i == 1) printf(" %zu:%s", lo + i, f);
        else printf(" %zu-%zu:%s", lo + i, lo + j - 1, f);
        i = j;
    }
    printf("\n");
    free(e);
}

/* "<what>: flags 0x...": the pagemap entry of page i of base with the PFN
 * field masked out (bits 55-63 as they are: 0x0200000000000000 is uffd-wp
 * alone), and "pfn 0" or "pfn set". */
static inline void htlb_pm_raw_masked(const char *what, const char *base, size_t i, uint64_t ignore) {
    uint64_t e = uffd_pagemap(base + i * UPAGE);
    if (e == ~0ull) {
        printf("%s: unreadable\n", what);
        return;
    }
    printf("%s: flags 0x%016llx pfn %s\n", what, (unsigned long long)(e & ~((1ull << 55) - 1) & ~ignore), PM_PFN(e) ? "set" : "0");
}

static inline void htlb_pm_raw(const char *what, const char *base, size_t i) {
    htlb_pm_raw_masked(what, base, i, 0);
}

#endif
