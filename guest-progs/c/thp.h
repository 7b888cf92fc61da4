/* thp.h -- helpers shared by the thp_*.c guest programs (issue 10:
 * anonymous transparent huge pages).
 *
 * Header-only (static inline) on top of shm.h and uffd.h, with their
 * conventions: page indexes relative to a 2 MiB-aligned base, never
 * addresses; pagemap flags, never frame numbers. Frames are only compared
 * with each other (thp_frames, thp_same_frames), which tells a PMD-mapped
 * 2 MiB frame from 4 KiB pages and the zero page without printing any.
 *
 * Regions are mapped MAP_FIXED inside a PROT_NONE reservation (shm_reserve),
 * so the base is 2 MiB-aligned in every run, natively and under pagelab, and
 * the region's VMAs never merge with anything else.
 *
 * Natively, khugepaged runs (max_ptes_none 511, every 10 s): it could
 * collapse a split range of a MADV_HUGEPAGE VMA back into a THP while a
 * program runs. Every program calls thp_khugepaged_settle first, which gets
 * khugepaged's scan of the new process over with before anything is
 * measured, and thp_khugepaged_check last, which prints a line if khugepaged
 * collapsed pages during the run anyway. Under pagelab, which has no
 * khugepaged (nor its sysfs files), neither does anything.
 */
#ifndef PAGELAB_THP_H
#define PAGELAB_THP_H

#include "shm.h"
#include <sys/prctl.h>

#define THP_SIZE (2ul << 20)
#define THP_NR 512ul

#ifndef MADV_HUGEPAGE
#define MADV_HUGEPAGE 14
#define MADV_NOHUGEPAGE 15
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef PR_SET_THP_DISABLE
#define PR_SET_THP_DISABLE 41
#define PR_GET_THP_DISABLE 42
#endif
#ifndef PR_THP_DISABLE_EXCEPT_ADVISED
#define PR_THP_DISABLE_EXCEPT_ADVISED (1 << 1)
#endif
#ifndef UFFD_FEATURE_EXACT_ADDRESS
#define UFFD_FEATURE_EXACT_ADDRESS (1 << 11)
#endif

/* No advice (thp_map). */
#define THP_NO_ADVICE (-1)

/* Maps `pages` private anonymous RW pages starting `off` pages after a fresh
 * 2 MiB-aligned base (returned in *base if given), then madvise(advice)
 * unless advice is THP_NO_ADVICE. Returns the start of the mapping, or
 * exit(3). */
static inline char *thp_map_at(size_t pages, size_t off, int advice, char **base) {
    char *b = shm_reserve((pages + off) * UPAGE);
    char *p = mmap(b + off * UPAGE, pages * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap failed: %s\n", uffd_err(errno));
        pl_flush();
        exit(3);
    }
    if (advice != THP_NO_ADVICE && madvise(p, pages * UPAGE, advice) != 0) {
        printf("madvise(%d) failed: %s\n", advice, uffd_err(errno));
        pl_flush();
        exit(3);
    }
    if (base) *base = b;
    return p;
}

/* `pages` pages at a 2 MiB-aligned address with `advice`. */
static inline char *thp_map(size_t pages, int advice) {
    return thp_map_at(pages, 0, advice, NULL);
}

/* ---- /proc/self/smaps ------------------------------------------------------ */

/* The whole of a /proc file (NUL-terminated, malloc'd), or NULL. */
static inline char *thp_slurp(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (n + 4096 + 1 > cap) b = realloc(b, cap *= 2);
        ssize_t r = read(fd, b + n, cap - n - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    b[n] = 0;
    return b;
}

/* The value of "key:" in a smaps block [blk, end), or -1. */
static inline long thp_smaps_field(const char *blk, const char *end, const char *key) {
    size_t kl = strlen(key);
    for (const char *l = blk; l && l < end; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (strncmp(l, key, kl) == 0 && l[kl] == ':') return strtol(l + kl + 1, NULL, 10);
    }
    return -1;
}

/* Whether VmFlags of a smaps block contains the two-letter flag `f`. */
static inline int thp_smaps_flag(const char *blk, const char *end, const char *f) {
    const char *v = strstr(blk, "VmFlags:");
    if (!v || v >= end) return 0;
    const char *e = strchr(v, '\n');
    for (const char *q = v + 8; q && q + 2 <= (e ? e : end); q++) {
        if (q[0] == f[0] && q[1] == f[1] && q[-1] == ' ' && (q[2] == ' ' || q[2] == '\n' || q[2] == 0)) return 1;
    }
    return 0;
}

/* Whether line l of smaps is a VMA header ("start-end perms ..."). */
static inline int thp_smaps_header(const char *l, unsigned long *a, unsigned long *b, char *perms) {
    return strchr("0123456789abcdef", l[0]) && l[0] && sscanf(l, "%lx-%lx %7s", a, b, perms) == 3;
}

/* One line per VMA of `pid` (0: self) overlapping pages [lo, hi) of base:
 * "<what>: vma LO-HI PERMS Rss R AnonHugePages A THPeligible E [flags]"
 * with LO and HI the first and last page index relative to base, and flags
 * the VmFlags among hg nh uw um ui. */
static inline void thp_smaps_pid(int pid, const char *what, const char *base, size_t lo_page, size_t hi_page) {
    char path[64];
    if (pid) snprintf(path, sizeof path, "/proc/%d/smaps", pid);
    else snprintf(path, sizeof path, "/proc/self/smaps");
    char *s = thp_slurp(path);
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
        /* The block runs to the next header. */
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
            const char *names[] = { "hg", "nh", "uw", "um", "ui" };
            for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
                if (thp_smaps_flag(blk, end, names[i])) {
                    strcat(fl, " ");
                    strcat(fl, names[i]);
                }
            }
            printf("%s: vma %ld-%ld %s Rss %ld AnonHugePages %ld THPeligible %ld%s\n", what, ((long)a - lo) / (long)UPAGE,
                   ((long)b - lo) / (long)UPAGE - 1, perms, thp_smaps_field(blk, end, "Rss"),
                   thp_smaps_field(blk, end, "AnonHugePages"), thp_smaps_field(blk, end, "THPeligible"), fl);
        }
        l = end;
    }
    if (!any) printf("%s: no vma\n", what);
    free(s);
}

static inline void thp_smaps(const char *what, const char *base, size_t lo, size_t hi) {
    thp_smaps_pid(0, what, base, lo, hi);
}

/* AnonHugePages (kB) summed over the VMAs of self overlapping [base, +pages). */
static inline long thp_anon_huge_kb(const char *base, size_t pages) {
    char *s = thp_slurp("/proc/self/smaps");
    if (!s) return -1;
    uintptr_t lo = (uintptr_t)base, hi = lo + pages * UPAGE;
    long sum = 0;
    int in = 0;
    for (char *l = s; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        unsigned long a, b;
        if (strchr("0123456789abcdef", l[0]) && sscanf(l, "%lx-%lx ", &a, &b) == 2) in = a < hi && b > lo;
        else if (in && strncmp(l, "AnonHugePages:", 14) == 0) sum += strtol(l + 14, NULL, 10);
    }
    free(s);
    return sum;
}

/* After a first-touch write that should have mapped THPs over
 * [base, +pages): if AnonHugePages is short of want_kb, says so clearly and
 * exits 4 (natively: the host could not allocate a 2 MiB page, e.g. memory
 * too fragmented; see /proc/buddyinfo). */
static inline void thp_require(const char *base, size_t pages, long want_kb) {
    long got = thp_anon_huge_kb(base, pages);
    if (got < want_kb) {
        printf("THP NOT AVAILABLE: AnonHugePages %ld kB, expected %ld kB (no free 2 MiB page? see /proc/buddyinfo)\n", got, want_kb);
        pl_flush();
        exit(4);
    }
}

/* ---- /proc/self/pagemap ---------------------------------------------------- */

/* The raw entries of pages [lo, hi) of `base` in process pid (0: self), into
 * out[0 .. hi-lo); returns 0, or -1 if pagemap is unreadable. */
static inline int thp_pagemap_pid(int pid, const char *base, size_t lo, size_t hi, uint64_t *out) {
    char path[64];
    if (pid) snprintf(path, sizeof path, "/proc/%d/pagemap", pid);
    else snprintf(path, sizeof path, "/proc/self/pagemap");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    size_t n = hi - lo, got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)out + got * 8, (n - got) * 8, (off_t)(((uintptr_t)base / UPAGE + lo + got) * 8));
        if (r <= 0) break;
        got += (size_t)r / 8;
    }
    close(fd);
    return got == n ? 0 : -1;
}

/* Letters for one entry: p present, s swap, f file/shared, w uffd-wp,
 * x exclusively mapped; "-" for none. */
static inline void thp_pm_letters(uint64_t e, char *o) {
    char *q = o;
    if (e & PM_PRESENT) *q++ = 'p';
    if (e & PM_SWAP) *q++ = 's';
    if (e & PM_FILE) *q++ = 'f';
    if (e & PM_UFFD_WP) *q++ = 'w';
    if (e & PM_EXCL) *q++ = 'x';
    if (q == o) *q++ = '-';
    *q = 0;
}

#define PM_FLAGS_MASK (PM_PRESENT | PM_SWAP | PM_FILE | PM_UFFD_WP | PM_EXCL | (1ull << 55))

/* "<what>: LO-HI:flags LO-HI:flags ..." over pages [lo, hi) of base (pid 0:
 * self), runs of equal flags merged. */
static inline void thp_pm_pid(int pid, const char *what, const char *base, size_t lo, size_t hi) {
    uint64_t *e = malloc((hi - lo) * 8);
    if (thp_pagemap_pid(pid, base, lo, hi, e) < 0) {
        printf("%s: pagemap unreadable\n", what);
        free(e);
        return;
    }
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

static inline void thp_pm(const char *what, const char *base, size_t lo, size_t hi) {
    thp_pm_pid(0, what, base, lo, hi);
}

#define PM_PFN(e) ((e) & ((1ull << 55) - 1))

/* How the present pages [lo, hi) of base (pid 0: self) are backed, from
 * their frame numbers: "one 2 MiB frame" (hi - lo == 512, lo 512-aligned,
 * frame = first + i, first frame 512-aligned: a PMD mapping or the huge zero
 * page), "one frame" (every page the same frame: the 4 KiB zero page),
 * "not present" (some page is not present), else "other". Only meaningful
 * where the kernel's choice makes it deterministic. */
static inline const char *thp_frames_pid(int pid, const char *base, size_t lo, size_t hi) {
    uint64_t *e = malloc((hi - lo) * 8);
    const char *r;
    if (thp_pagemap_pid(pid, base, lo, hi, e) < 0) {
        r = "unreadable";
        goto out;
    }
    for (size_t i = 0; i < hi - lo; i++)
        if (!(e[i] & PM_PRESENT)) {
            r = "not present";
            goto out;
        }
    int same = 1, seq = 1;
    for (size_t i = 1; i < hi - lo; i++) {
        if (PM_PFN(e[i]) != PM_PFN(e[0])) same = 0;
        if (PM_PFN(e[i]) != PM_PFN(e[0]) + i) seq = 0;
    }
    if (hi - lo > 1 && same) r = "one frame";
    else if (seq && hi - lo == THP_NR && lo % THP_NR == 0 && PM_PFN(e[0]) % THP_NR == 0) r = "one 2 MiB frame";
    else r = "other";
out:
    free(e);
    return r;
}

static inline const char *thp_frames(const char *base, size_t lo, size_t hi) {
    return thp_frames_pid(0, base, lo, hi);
}

/* The frame of the 4 KiB zero page (read through a fresh MADV_NOHUGEPAGE
 * page), or 0. */
static inline uint64_t thp_zero_pfn(void) {
    static uint64_t z;
    if (!z) {
        char *p = mmap(NULL, UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 0;
        madvise(p, UPAGE, MADV_NOHUGEPAGE);
        (void)*(volatile char *)p;
        uint64_t e = uffd_pagemap(p);
        z = (e != ~0ull && (e & PM_PRESENT)) ? PM_PFN(e) : 0;
        munmap(p, UPAGE);
    }
    return z;
}

/* "zero page", "not present" or "not the zero page" for page i of base. */
static inline const char *thp_zero_str(const char *base, size_t i) {
    uint64_t e = uffd_pagemap(base + i * UPAGE);
    if (e == ~0ull) return "unreadable";
    if (!(e & PM_PRESENT)) return "not present";
    return PM_PFN(e) == thp_zero_pfn() ? "the zero page" : "not the zero page";
}

/* Snapshot of the frames of pages [0, n) of base (0 where not present). */
static inline void thp_pfns_pid(int pid, const char *base, size_t n, uint64_t *pfn) {
    if (thp_pagemap_pid(pid, base, 0, n, pfn) < 0) memset(pfn, 0xff, n * 8);
    for (size_t i = 0; i < n; i++) pfn[i] = (pfn[i] & PM_PRESENT) ? PM_PFN(pfn[i]) : 0;
}

static inline void thp_pfns(const char *base, size_t n, uint64_t *pfn) {
    thp_pfns_pid(0, base, n, pfn);
}

/* "<what>: frames kept LO-HI, new LO-HI, ..." comparing pages [0, n) of base
 * now (pid 0: self) with an earlier snapshot `then` of `then_base`'s frames
 * (page i of base against page i + shift of the snapshot): runs of pages
 * whose frame is the same ("kept"), a different one ("new"), or that are
 * not present now or were not then ("-"). */
static inline void thp_frames_vs_pid(int pid, const char *what, const char *base, size_t n, const uint64_t *then, long shift) {
    uint64_t *now = malloc(n * 8);
    thp_pfns_pid(pid, base, n, now);
    printf("%s:", what);
    size_t i = 0;
    while (i < n) {
        int k0;
        const char *names[] = { "-", "kept", "new" };
#define THP_KIND(x) (!now[x] || !then[(long)(x) + shift] ? 0 : now[x] == then[(long)(x) + shift] ? 1 : 2)
        k0 = THP_KIND(i);
        size_t j = i + 1;
        while (j < n && THP_KIND(j) == k0) j++;
#undef THP_KIND
        if (j - i == 1) printf(" %zu:%s", i, names[k0]);
        else printf(" %zu-%zu:%s", i, j - 1, names[k0]);
        i = j;
    }
    printf("\n");
    free(now);
}

static inline void thp_frames_vs(const char *what, const char *base, size_t n, const uint64_t *then) {
    thp_frames_vs_pid(0, what, base, n, then, 0);
}

/* ---- data ------------------------------------------------------------------ */

/* The byte page i carries in generation g (never 0). */
static inline char thp_byte(long i, int g) {
    return (char)(1 + (i * 7 + g * 31) % 251);
}

/* Writes the pattern of generation g into pages [lo, hi) of base: the first,
 * a middle and the last byte of each page. */
static inline void thp_fill(char *base, size_t lo, size_t hi, int g) {
    for (size_t i = lo; i < hi; i++) {
        char c = thp_byte((long)i, g);
        base[i * UPAGE] = c;
        base[i * UPAGE + 2048] = c;
        base[i * UPAGE + UPAGE - 1] = c;
    }
}

/* "<what>: data LO-HI:gG|zero|other ..." for pages [lo, hi) of base: runs of
 * pages holding generation g's pattern (any of gens[0..ngen)), all three
 * sampled bytes zero, or something else. Reading faults pages in. */
static inline void thp_data(const char *what, const char *base, size_t lo, size_t hi, const int *gens, int ngen) {
    printf("%s:", what);
    size_t i = lo;
    int prev = -3;
    size_t start = lo;
    for (; i <= hi; i++) {
        int k = -3;
        if (i < hi) {
            volatile const char *p = base + i * UPAGE;
            char a = p[0], b = p[2048], c = p[UPAGE - 1];
            k = -2;
            if (!a && !b && !c) k = -1;
            for (int g = 0; g < ngen && k == -2; g++) {
                char w = thp_byte((long)i, gens[g]);
                if (a == w && b == w && c == w) k = gens[g];
            }
        }
        if (i == lo) prev = k;
        if (k != prev) {
            char t[16];
            if (prev == -1) snprintf(t, sizeof t, "zero");
            else if (prev == -2) snprintf(t, sizeof t, "other");
            else snprintf(t, sizeof t, "g%d", prev);
            if (i - start == 1) printf(" %zu:%s", start, t);
            else printf(" %zu-%zu:%s", start, i - 1, t);
            start = i;
            prev = k;
        }
    }
    printf("\n");
}

/* ---- policy ---------------------------------------------------------------- */

/* "<name>: <first line of /sys/kernel/mm/transparent_hugepage/<name>>". */
static inline void thp_sysfs_line(const char *name) {
    char path[128], buf[256] = "";
    snprintf(path, sizeof path, "/sys/kernel/mm/transparent_hugepage/%s", name);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0) close(fd);
    if (n < 0) {
        printf("%s: unreadable\n", name);
        return;
    }
    buf[n] = 0;
    char *nl = strchr(buf, '\n');
    if (nl) *nl = 0;
    printf("%s: %s\n", name, buf);
}

/* The "THP_enabled:" value of /proc/self/status, or -1. */
static inline long thp_status_enabled(void) {
    char *s = thp_slurp("/proc/self/status");
    if (!s) return -1;
    char *l = strstr(s, "THP_enabled:");
    long v = l ? strtol(l + 12, NULL, 10) : -1;
    free(s);
    return v;
}

/* ---- khugepaged ------------------------------------------------------------ */

static long thp_collapsed_at_start = -2;

/* A counter of /sys/kernel/mm/transparent_hugepage/khugepaged, or -1. */
static inline long thp_khugepaged_counter(const char *name) {
    char path[128], buf[64] = "";
    snprintf(path, sizeof path, "/sys/kernel/mm/transparent_hugepage/khugepaged/%s", name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    return strtol(buf, NULL, 10);
}

/* Call first thing in main. Natively (where the khugepaged files exist) it
 * gets khugepaged's first scan of this process over with before the program
 * starts: the first THP fault registers the mm with khugepaged, and when no
 * other mm is registered that wakes khugepaged at once, to scan the new mm
 * while the program goes on (it would collapse a split range of a
 * MADV_HUGEPAGE VMA). So a throw-away THP is faulted here and the call
 * waits, at most 50 ms, for that pass to end (full_scans moves: it takes
 * 2-12 ms on the reference host, also with a CPU hog on each core);
 * khugepaged then sleeps scan_sleep_millisecs (10 s), far longer than a
 * program runs. If khugepaged was not idle (busy with other processes, or
 * still in its 10 s sleep after an earlier program) the wait times out and
 * the program goes on: khugepaged's next pass then comes at a moment nobody
 * knows, which thp_khugepaged_check reports if it collapsed anything. Prints nothing; under pagelab (no khugepaged files) it
 * does nothing but note the counter. */
static inline void thp_khugepaged_settle(void) {
    thp_collapsed_at_start = thp_khugepaged_counter("pages_collapsed");
    long scans = thp_khugepaged_counter("full_scans");
    if (scans < 0) return;
    char *r = mmap(NULL, 2 * THP_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) return;
    char *d = (char *)(((uintptr_t)r + THP_SIZE - 1) & ~(THP_SIZE - 1));
    madvise(d, THP_SIZE, MADV_HUGEPAGE);
    *(volatile char *)d = 1;
    for (int i = 0; i < 50 && thp_khugepaged_counter("full_scans") == scans; i++) usleep(1000);
    munmap(r, 2 * THP_SIZE);
}

/* Call last: prints a line if khugepaged collapsed pages during the run
 * (natively; never under pagelab, which has no khugepaged). */
static inline void thp_khugepaged_check(void) {
    long now = thp_khugepaged_counter("pages_collapsed");
    if (now >= 0 && thp_collapsed_at_start >= 0 && now != thp_collapsed_at_start)
        printf("WARNING: khugepaged collapsed %ld pages during the run; the transcript may show it\n", now - thp_collapsed_at_start);
}

#endif
