// /proc/meminfo, the transparent-hugepage files under /sys/kernel/mm and the
// smaps of file memory, as a program sees them (issue 9).
//
// No argument: the transcript natively and under pagelab must be the same,
// so it prints only what holds on any Linux 6.18 host:
//   * the names of /proc/meminfo's lines in order (the config-dependent ones
//     left out), their layout, and relations between them;
//   * how Shmem, Cached and Mapped move when memfd, MAP_SHARED|MAP_ANONYMOUS,
//     /dev/shm and MAP_PRIVATE memfd pages come and go. Natively the counters
//     are folded from per-CPU deltas first (a write to
//     /proc/sys/vm/stat_refresh) and other processes move them too, so each
//     experiment is retried until its deltas are within a tolerance of the
//     expected ones, and the expected figure is what is printed;
//   * the format of the THP files (which choice is bracketed is the host's
//     own), their stat, open and getdents;
//   * smaps of memfd mappings (shared twice, private with a COW copy, pages
//     written through write(2) and fallocate) and smaps_rollup against the sum
//     of smaps.
// `values`: what only pagelab pins (proc_meminfo.values.pagelab.expected):
//   the THP files verbatim, the policies refusing writes, exact counter
//   deltas (AnonPages, MemFree, PageTables), the optional meminfo lines.
// `folio-dirty`: a page dirtied through one mapping's PTE shows dirty through
//   another once the first is unmapped (the PTE's dirty bit goes to the page
//   at the zap): proc_meminfo.folio-dirty.expected, Linux's transcript.
#define _GNU_SOURCE
#include "shm.h"
#include <dirent.h>

#define KB(pages) ((long)(pages) * 4)

/* Touches of page i of p, in program order (the order of faults matters). */
#define RD(p, i) ((void)*(volatile char *)((p) + (i) * UPAGE))
#define WR(p, i, v) (*(volatile char *)((p) + (i) * UPAGE) = (v))

/* ---- /proc/meminfo ------------------------------------------------------ */

/* Lines that exist only with some kernel configurations or CPUs. */
static const char *optional_fields[] = { "Zswap", "Zswapped", "HardwareCorrupted", "Balloon", "CmaTotal", "CmaFree",
                                         "Unaccepted", "DirectMap1G", "GPUActive", "GPUReclaim", NULL };

static int is_optional(const char *name) {
    for (int i = 0; optional_fields[i]; i++)
        if (!strcmp(name, optional_fields[i])) return 1;
    return 0;
}

static char mi_buf[16384];

/* Reads a whole file into buf (raw syscalls: no allocation); its length or -errno. */
static long slurp(const char *path, char *buf, size_t n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, n - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = 0;
    return (long)got;
}

/* Folds the per-CPU counter deltas (natively; pagelab's counters are exact). */
static void refresh(void) {
    int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY);
    if (fd >= 0) {
        if (write(fd, "1", 1) < 0) { /* not root: the counters may lag */ }
        close(fd);
    }
}

/* The value of a meminfo line (kB, or a count), -1 if absent. */
static long mi_get(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *l = text; *l; ) {
        if (!strncmp(l, name, n) && l[n] == ':') return strtol(l + n + 1, NULL, 10);
        const char *e = strchr(l, '\n');
        if (!e) break;
        l = e + 1;
    }
    return -1;
}

/* A snapshot of the counters the experiments look at. */
struct mi { long shmem, cached, mapped, anon, free, ptables; };

static struct mi mi_now(void) {
    refresh();
    slurp("/proc/meminfo", mi_buf, sizeof mi_buf);
    struct mi m = { mi_get(mi_buf, "Shmem"), mi_get(mi_buf, "Cached"), mi_get(mi_buf, "Mapped"),
                    mi_get(mi_buf, "AnonPages"), mi_get(mi_buf, "MemFree"), mi_get(mi_buf, "PageTables") };
    return m;
}

static void meminfo_fields(void) {
    printf("== /proc/meminfo lines\n");
    long n = slurp("/proc/meminfo", mi_buf, sizeof mi_buf);
    if (n <= 0) {
        printf("read: %s\n", shm_err((int)-n));
        return;
    }
    int lines = 0, kb = 0, counts = 0, bad = 0;
    printf("fields:");
    for (char *l = mi_buf; *l; ) {
        char *e = strchr(l, '\n');
        if (!e) break;
        *e = 0;
        char name[64];
        unsigned long v;
        int len = 0;
        if (sscanf(l, "%63[^:]: %lu%n", name, &v, &len) != 2) {
            printf(" [unparsed line]");
            bad++;
        } else {
            /* Linux's layout: "Name:" padded to 16 columns, the value in 8, " kB";
             * the hugetlb counts: "Name:" in 16, three spaces, the count in 5. */
            char want[128], nm[80];
            snprintf(nm, sizeof nm, "%s:", name);
            int has_kb = !strcmp(l + len, " kB");
            if (has_kb) snprintf(want, sizeof want, "%-16s%8lu kB", nm, v);
            else snprintf(want, sizeof want, "%-16s   %5lu", nm, v);
            if (strcmp(want, l)) {
                printf(" [%s: layout]", name);
                bad++;
            }
            kb += has_kb;
            counts += !has_kb;
            if (!is_optional(name)) printf(" %s", name);
        }
        lines++;
        *e = '\n';
        l = e + 1;
    }
    printf("\nlayout: %s; unit kB except the %d hugetlb counts\n", bad ? "differs" : "as Linux pads it", counts);
    (void)lines;
    (void)kb;
    long total = mi_get(mi_buf, "MemTotal"), free = mi_get(mi_buf, "MemFree"), avail = mi_get(mi_buf, "MemAvailable");
    printf("MemFree <= MemAvailable <= MemTotal: %d\n", free <= avail && avail <= total);
    printf("Active = Active(anon) + Active(file): %d\n", mi_get(mi_buf, "Active") == mi_get(mi_buf, "Active(anon)") + mi_get(mi_buf, "Active(file)"));
    printf("Inactive = Inactive(anon) + Inactive(file): %d\n",
           mi_get(mi_buf, "Inactive") == mi_get(mi_buf, "Inactive(anon)") + mi_get(mi_buf, "Inactive(file)"));
    printf("SwapFree <= SwapTotal: %d\n", mi_get(mi_buf, "SwapFree") <= mi_get(mi_buf, "SwapTotal"));
    printf("Shmem <= Cached: %d\n", mi_get(mi_buf, "Shmem") <= mi_get(mi_buf, "Cached"));
    printf("Hugepagesize: %ld kB\n", mi_get(mi_buf, "Hugepagesize"));
    printf("AnonHugePages ShmemHugePages ShmemPmdMapped FileHugePages FilePmdMapped present: %d\n",
           mi_get(mi_buf, "AnonHugePages") >= 0 && mi_get(mi_buf, "ShmemHugePages") >= 0 && mi_get(mi_buf, "ShmemPmdMapped") >= 0 &&
               mi_get(mi_buf, "FileHugePages") >= 0 && mi_get(mi_buf, "FilePmdMapped") >= 0);
}

/* ---- counter experiments ------------------------------------------------ */

/* One expected delta: its name, the counter's offset in struct mi, the
 * expected change in kB and the tolerance natively. */
struct want { const char *what; size_t off; long kb, tol; };

#define F(field) offsetof(struct mi, field)
#define TOL_SHMEM 64
#define TOL_BUSY 2048 /* Cached and Mapped: other processes' files */

static long field(const struct mi *m, size_t off) {
    return *(const long *)((const char *)m + off);
}

/* Runs `exp` (which fills snapshots[0..steps]) until every delta
 * snapshots[w.step + 1] - snapshots[w.step] is within tolerance; prints each
 * step's expected deltas, or the measured ones of the last try. `exact`:
 * print the measured deltas (pagelab's values mode). */
struct step { const char *what; struct want w[4]; };

static void run_experiment(const char *title, void (*exp)(struct mi *), const struct step *steps, int nsteps, int exact) {
    struct mi s[8];
    int ok = 0;
    for (int attempt = 0; attempt < 8 && !ok; attempt++) {
        exp(s);
        ok = 1;
        for (int i = 0; i < nsteps; i++)
            for (const struct want *w = steps[i].w; w->what; w++) {
                long d = field(&s[i + 1], w->off) - field(&s[i], w->off);
                if (labs(d - w->kb) > w->tol) ok = 0;
            }
        if (exact) break;
    }
    printf("%s\n", title);
    for (int i = 0; i < nsteps; i++) {
        printf("  %s:", steps[i].what);
        for (const struct want *w = steps[i].w; w->what; w++) {
            long d = field(&s[i + 1], w->off) - field(&s[i], w->off);
            printf(" %s %+ld kB", w->what, exact || !ok ? d : w->kb);
        }
        printf("%s\n", ok || exact ? "" : "  (outside the tolerance)");
    }
}

#define MEMFD_PAGES 4096

static void exp_memfd(struct mi *s) {
    int fd = shm_memfd("proc_meminfo", MEMFD_PAGES);
    s[0] = mi_now();
    char *p = mmap(NULL, MEMFD_PAGES * UPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    for (size_t i = 0; i < MEMFD_PAGES; i++) p[i * UPAGE] = 1;
    s[1] = mi_now();
    munmap(p, MEMFD_PAGES * UPAGE);
    s[2] = mi_now();
    if (ftruncate(fd, 0) < 0) printf("ftruncate: %s\n", shm_err(errno));
    s[3] = mi_now();
    close(fd);
}

static const struct step memfd_steps[] = {
    { "written through MAP_SHARED", { { "Shmem", F(shmem), KB(MEMFD_PAGES), TOL_SHMEM }, { "Cached", F(cached), KB(MEMFD_PAGES), TOL_BUSY },
                                      { "Mapped", F(mapped), KB(MEMFD_PAGES), TOL_BUSY }, { 0 } } },
    { "munmap", { { "Shmem", F(shmem), 0, TOL_SHMEM }, { "Mapped", F(mapped), -KB(MEMFD_PAGES), TOL_BUSY }, { 0 } } },
    { "ftruncate 0", { { "Shmem", F(shmem), -KB(MEMFD_PAGES), TOL_SHMEM }, { "Cached", F(cached), -KB(MEMFD_PAGES), TOL_BUSY }, { 0 } } },
};

static void exp_shared_anon(struct mi *s) {
    s[0] = mi_now();
    char *p = mmap(NULL, 256 * UPAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    volatile char c = 0;
    for (size_t i = 0; i < 256; i++) c += p[i * UPAGE];
    (void)c;
    s[1] = mi_now();
    munmap(p, 256 * UPAGE);
    s[2] = mi_now();
}

static const struct step shared_anon_steps[] = {
    { "read", { { "Shmem", F(shmem), KB(256), TOL_SHMEM }, { "Mapped", F(mapped), KB(256), TOL_BUSY }, { 0 } } },
    { "munmap", { { "Shmem", F(shmem), -KB(256), TOL_SHMEM }, { "Mapped", F(mapped), -KB(256), TOL_BUSY }, { 0 } } },
};

static char wbuf[64 * UPAGE];

static void exp_devshm(struct mi *s) {
    const char *path = "/dev/shm/proc_meminfo.tmp";
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    s[0] = mi_now();
    memset(wbuf, 'w', sizeof wbuf);
    if (write(fd, wbuf, sizeof wbuf) != (ssize_t)sizeof wbuf) printf("write: %s\n", shm_err(errno));
    s[1] = mi_now();
    unlink(path);
    s[2] = mi_now();
    close(fd);
    s[3] = mi_now();
}

static const struct step devshm_steps[] = {
    { "write 64 pages", { { "Shmem", F(shmem), KB(64), TOL_SHMEM }, { "Cached", F(cached), KB(64), TOL_BUSY }, { 0 } } },
    { "unlink while open", { { "Shmem", F(shmem), 0, TOL_SHMEM }, { 0 } } },
    { "close", { { "Shmem", F(shmem), -KB(64), TOL_SHMEM }, { 0 } } },
};

static void exp_fallocate(struct mi *s) {
    int fd = shm_memfd("proc_meminfo_falloc", 64);
    s[0] = mi_now();
    if (fallocate(fd, 0, 0, 64 * UPAGE) < 0) printf("fallocate: %s\n", shm_err(errno));
    s[1] = mi_now();
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 16 * UPAGE) < 0) printf("punch: %s\n", shm_err(errno));
    s[2] = mi_now();
    close(fd);
    s[3] = mi_now();
}

static const struct step fallocate_steps[] = {
    { "fallocate 64 pages", { { "Shmem", F(shmem), KB(64), TOL_SHMEM }, { "Mapped", F(mapped), 0, TOL_BUSY }, { 0 } } },
    { "punch 16", { { "Shmem", F(shmem), -KB(16), TOL_SHMEM }, { 0 } } },
    { "close", { { "Shmem", F(shmem), -KB(48), TOL_SHMEM }, { 0 } } },
};

static void exp_private(struct mi *s) {
    int fd = shm_memfd("proc_meminfo_priv", 64);
    s[0] = mi_now();
    char *p = shm_map(fd, 64, MAP_PRIVATE);
    volatile char c = 0;
    for (size_t i = 0; i < 64; i++) c += p[i * UPAGE];
    (void)c;
    s[1] = mi_now();
    for (size_t i = 0; i < 32; i++) p[i * UPAGE] = 1;
    s[2] = mi_now();
    munmap(p, 64 * UPAGE);
    close(fd);
    s[3] = mi_now();
}

static const struct step private_steps[] = {
    { "read 64 pages", { { "Shmem", F(shmem), KB(64), TOL_SHMEM }, { "Mapped", F(mapped), KB(64), TOL_BUSY }, { 0 } } },
    { "write 32 (copies)", { { "Shmem", F(shmem), 0, TOL_SHMEM }, { "Mapped", F(mapped), -KB(32), TOL_BUSY }, { 0 } } },
    { "munmap, close", { { "Shmem", F(shmem), -KB(64), TOL_SHMEM }, { "Mapped", F(mapped), -KB(32), TOL_BUSY }, { 0 } } },
};

static void experiments(int exact) {
    printf("== counters\n");
    run_experiment("memfd of 4096 pages", exp_memfd, memfd_steps, 3, exact);
    run_experiment("MAP_SHARED|MAP_ANONYMOUS of 256 pages", exp_shared_anon, shared_anon_steps, 2, exact);
    run_experiment("/dev/shm file", exp_devshm, devshm_steps, 3, exact);
    run_experiment("memfd fallocate", exp_fallocate, fallocate_steps, 3, exact);
    run_experiment("MAP_PRIVATE memfd", exp_private, private_steps, 3, exact);
}

/* ---- THP files ------------------------------------------------------------ */

#define THP "/sys/kernel/mm/transparent_hugepage/"

/* Prints the choices of a policy file without brackets, and whether exactly
 * one is bracketed and the text ends in one newline. */
static void policy_file(const char *name) {
    char path[128], buf[256], words[256] = "";
    snprintf(path, sizeof path, THP "%s", name);
    long n = slurp(path, buf, sizeof buf);
    if (n < 0) {
        printf("%s: %s\n", name, shm_err((int)-n));
        return;
    }
    int nl = n > 0 && buf[n - 1] == '\n' && !strchr(buf, '\n')[1];
    int bracketed = 0;
    buf[strcspn(buf, "\n")] = 0;
    for (char *w = strtok(buf, " "); w; w = strtok(NULL, " ")) {
        size_t l = strlen(w);
        if (w[0] == '[' && l > 2 && w[l - 1] == ']') {
            bracketed++;
            w[l - 1] = 0;
            w++;
        }
        strcat(words, " ");
        strcat(words, w);
    }
    printf("%s:%s; bracketed %d; one line %d\n", name, words, bracketed, nl);
}

static const char *ftype(mode_t m) {
    return S_ISDIR(m) ? "directory" : S_ISREG(m) ? "regular" : "other";
}

static void stat_line(const char *path) {
    struct stat st;
    if (stat(path, &st) < 0) printf("stat %s: %s\n", path, shm_err(errno));
    else printf("stat %s: %s %04o size %lld\n", path, ftype(st.st_mode), st.st_mode & 07777, (long long)st.st_size);
}

static void open_line(const char *what, const char *path, int flags) {
    int fd = open(path, flags);
    printf("open %s: %s\n", what, fd >= 0 ? "ok" : shm_err(errno));
    if (fd >= 0) close(fd);
}

/* The names of a directory, sorted, one string. */
static void listing(const char *path, char *out, size_t n) {
    char names[64][64];
    int k = 0;
    DIR *d = opendir(path);
    struct dirent *e;
    out[0] = 0;
    if (!d) {
        snprintf(out, n, "%s", shm_err(errno));
        return;
    }
    while ((e = readdir(d)) && k < 64) snprintf(names[k++], 64, "%.60s%s", e->d_name, e->d_type == DT_DIR ? "/" : "");
    closedir(d);
    for (int i = 0; i < k; i++)
        for (int j = i + 1; j < k; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char t[64];
                memcpy(t, names[i], 64);
                memcpy(names[i], names[j], 64);
                memcpy(names[j], t, 64);
            }
    for (int i = 0; i < k; i++) {
        strncat(out, " ", n - strlen(out) - 1);
        strncat(out, names[i], n - strlen(out) - 1);
    }
}

static void thp_files(void) {
    printf("== %s\n", THP);
    policy_file("enabled");
    policy_file("defrag");
    policy_file("shmem_enabled");
    char buf[64];
    long n = slurp(THP "hpage_pmd_size", buf, sizeof buf);
    printf("hpage_pmd_size: %s", n > 0 ? buf : "unreadable\n");
    n = slurp(THP "use_zero_page", buf, sizeof buf);
    printf("use_zero_page 0 or 1: %d\n", n == 2 && (buf[0] == '0' || buf[0] == '1') && buf[1] == '\n');
    stat_line(THP "enabled");
    stat_line(THP "hpage_pmd_size");
    stat_line("/sys/kernel/mm/transparent_hugepage");
    stat_line(THP "nosuch");
    open_line("hpage_pmd_size O_WRONLY", THP "hpage_pmd_size", O_WRONLY);
    open_line("enabled O_DIRECTORY", THP "enabled", O_RDONLY | O_DIRECTORY);
    open_line("enabled/x", THP "enabled/x", O_RDONLY);
    open_line("the directory O_RDWR", THP, O_RDWR);
    char l[2048];
    listing(THP, l, sizeof l);
    printf("listing has . .. enabled defrag shmem_enabled hpage_pmd_size use_zero_page: %d\n",
           strstr(l, " ./") && strstr(l, " ../") && strstr(l, " enabled") && strstr(l, " defrag") && strstr(l, " shmem_enabled") &&
               strstr(l, " hpage_pmd_size") && strstr(l, " use_zero_page"));
    int fd = open(THP, O_RDONLY | O_DIRECTORY);
    printf("read of the directory: %s\n", fd >= 0 && read(fd, buf, 8) < 0 ? shm_err(errno) : "no error");
    if (fd >= 0) close(fd);
    printf("== /proc/meminfo and stat_refresh files\n");
    stat_line("/proc/meminfo");
    fd = open("/proc/meminfo", O_WRONLY);
    printf("open /proc/meminfo O_WRONLY: %s\n", fd >= 0 ? "ok" : shm_err(errno));
    if (fd >= 0) {
        printf("write: %s\n", write(fd, "x", 1) < 0 ? shm_err(errno) : "ok");
        close(fd);
    }
    stat_line("/proc/sys/vm/stat_refresh");
    fd = open("/proc/sys/vm/stat_refresh", O_RDWR);
    printf("stat_refresh read: %ld, write: %ld\n", fd >= 0 ? (long)read(fd, buf, 8) : -1L, fd >= 0 ? (long)write(fd, "1", 1) : -1L);
    if (fd >= 0) close(fd);
}

/* ---- smaps ------------------------------------------------------------------ */

static char sm_buf[256 * 1024], ro_buf[8192];

/* Prints the smaps fields of the VMA starting at p (all but ProtectionKey,
 * which depends on the CPU), from a copy read in one go. */
static void smaps_of(const char *what, const void *p) {
    slurp("/proc/self/smaps", sm_buf, sizeof sm_buf);
    int in = 0, col = 0;
    printf("smaps %s:\n ", what);
    for (char *l = sm_buf; *l; ) {
        char *e = strchr(l, '\n');
        if (!e) break;
        *e = 0;
        char *colon = strchr(l, ':'), *dash = strchr(l, '-');
        if (dash && (!colon || dash < colon) && strncmp(l, "VmFlags", 7)) in = strtoul(l, NULL, 16) == (uintptr_t)p;
        else if (in && strncmp(l, "ProtectionKey", 13)) {
            char name[32];
            char rest[64];
            if (sscanf(l, "%31[^:]:%63[^\n]", name, rest) == 2) {
                char *v = rest;
                while (*v == ' ') v++;
                char *kb = strstr(v, " kB");
                if (kb) *kb = 0;
                printf(" %s=%s", name, v);
                if (++col % 8 == 0) printf("\n ");
            }
        }
        *e = '\n';
        l = e + 1;
    }
    printf("\n");
}

/* The sum of field `name` over every VMA of a smaps text. */
static long smaps_sum(const char *text, const char *name, int *vmas) {
    long sum = 0;
    size_t n = strlen(name);
    *vmas = 0;
    for (const char *l = text; *l; ) {
        if (!strncmp(l, name, n) && l[n] == ':') sum += strtol(l + n + 1, NULL, 10);
        if (!strncmp(l, "Size:", 5)) (*vmas)++;
        const char *e = strchr(l, '\n');
        if (!e) break;
        l = e + 1;
    }
    return sum;
}

static void rollup(void) {
    printf("== smaps_rollup\n");
    /* Both read before anything else can touch a new page: the buffers are
     * static and already written. */
    memset(sm_buf, 0, sizeof sm_buf);
    memset(ro_buf, 0, sizeof ro_buf);
    slurp("/proc/self/smaps", sm_buf, sizeof sm_buf);
    long n = slurp("/proc/self/smaps_rollup", ro_buf, sizeof ro_buf);
    if (n <= 0) {
        printf("read: %s\n", shm_err((int)-n));
        return;
    }
    char *nl = strchr(ro_buf, '\n');
    *nl = 0;
    int name_at = (int)(strstr(ro_buf, "[rollup]") - ro_buf);
    unsigned long lo = 0, hi = 0;
    char rest[64] = "";
    sscanf(ro_buf, "%lx-%lx %63[^[]", &lo, &hi, rest);
    for (size_t k = strlen(rest); k > 0 && rest[k - 1] == ' '; k--) rest[k - 1] = 0;
    /* The first and last VMA of smaps, the vsyscall page left out (it is no VMA
     * of the mm: smaps shows it, smaps_rollup does not count it). */
    unsigned long first = strtoul(sm_buf, NULL, 16), last = 0;
    for (char *l = sm_buf; *l; ) {
        unsigned long a, b;
        char *e = strchr(l, '\n');
        if (sscanf(l, "%lx-%lx ", &a, &b) == 2 && a != 0xffffffffff600000ul) last = b;
        if (!e) break;
        l = e + 1;
    }
    printf("header: %s [rollup] in column %d, from the first VMA's start %d to the last one's end %d\n", rest, name_at + 1, lo == first, hi == last);
    *nl = '\n';
    printf("fields:");
    for (char *l = nl + 1; *l; ) {
        char *e = strchr(l, '\n');
        if (!e) break;
        printf(" %.*s", (int)(strchr(l, ':') - l), l);
        l = e + 1;
    }
    printf("\n");
    int vmas;
    static const char *exact[] = { "Rss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", "Referenced", "Anonymous", "Swap", NULL };
    int all = 1;
    for (int i = 0; exact[i]; i++) all &= mi_get(nl + 1, exact[i]) == smaps_sum(sm_buf, exact[i], &vmas);
    printf("Rss, Shared_*, Private_*, Referenced, Anonymous, Swap are the sums over smaps: %d\n", all);
    long pss = mi_get(nl + 1, "Pss"), sum = smaps_sum(sm_buf, "Pss", &vmas);
    printf("Pss is the sum over smaps to within a kB per VMA: %d\n", pss >= sum && pss - sum <= vmas);
    long parts = mi_get(nl + 1, "Pss_Anon") + mi_get(nl + 1, "Pss_File") + mi_get(nl + 1, "Pss_Shmem");
    printf("Pss_Anon + Pss_File + Pss_Shmem is Pss to within 2 kB: %d\n", labs(parts - pss) <= 2);
    /* Each page's Pss summed over all its mappings is the page: 8 memfd pages. */
    long sh = mi_get(nl + 1, "Pss_Shmem");
    printf("Pss_Shmem is the 8 mapped memfd pages to within a kB: %d\n", sh >= 31 && sh <= 32);
}

static void smaps_memfd(void) {
    printf("== smaps of memfd mappings\n");
    int fd = shm_memfd("proc_meminfo_smaps", 16);
    char *p = shm_map(fd, 16, MAP_SHARED);
    for (int i = 0; i < 4; i++) WR(p, i, 1); /* write faults: dirty */
    RD(p, 4);                                /* read faults: clean */
    RD(p, 5);
    if (pwrite(fd, "w", 1, 8 * UPAGE) != 1) printf("pwrite: %s\n", shm_err(errno));
    RD(p, 8); /* written by pwrite: dirty through a clean PTE */
    if (fallocate(fd, 0, 10 * UPAGE, 2 * UPAGE) < 0) printf("fallocate: %s\n", shm_err(errno));
    RD(p, 10); /* fallocated: dirty */
    smaps_of("one mapping", p);
    char *q = shm_map(fd, 16, MAP_SHARED);
    RD(q, 0);    /* fault-around maps the other cached, uptodate pages */
    WR(q, 5, 2); /* through a writable clean PTE: the PTE is dirty, not the page */
    smaps_of("first of two", p);
    smaps_of("second of two", q);
    char *r = shm_map(fd, 16, MAP_PRIVATE);
    RD(r, 0);
    WR(r, 1, 3); /* a private copy */
    smaps_of("private", r);
    rollup();
    munmap(p, 16 * UPAGE);
    munmap(q, 16 * UPAGE);
    munmap(r, 16 * UPAGE);
    close(fd);
}

/* ---- folio-dirty ------------------------------------------------------------ */

static void folio_dirty(void) {
    printf("== a PTE's dirty bit reaches the page at munmap\n");
    int fd = shm_memfd("proc_meminfo_dirty", 16);
    char *p = shm_map(fd, 16, MAP_SHARED);
    for (int i = 0; i < 4; i++) RD(p, i); /* clean pages */
    char *q = shm_map(fd, 16, MAP_SHARED);
    RD(q, 0);    /* maps pages 0-3 writable and clean (fault-around) */
    WR(q, 1, 1); /* dirties q's PTE only */
    smaps_of("p, q mapped", p);
    munmap(q, 16 * UPAGE);
    smaps_of("p, q unmapped", p);
    close(fd);
}

/* ---- values ------------------------------------------------------------------- */

static void values(void) {
    printf("== /proc/meminfo\n");
    slurp("/proc/meminfo", mi_buf, sizeof mi_buf);
    static const char *fixed[] = { "MemTotal", "SwapTotal", "CommitLimit", "VmallocTotal", "Hugepagesize", "DirectMap4k", "DirectMap2M", "DirectMap1G", NULL };
    for (int i = 0; fixed[i]; i++) printf("%s %ld\n", fixed[i], mi_get(mi_buf, fixed[i]));
    printf("optional lines present:");
    for (int i = 0; optional_fields[i]; i++)
        if (mi_get(mi_buf, optional_fields[i]) >= 0) printf(" %s", optional_fields[i]);
    printf("\n== THP files\n");
    static const char *files[] = { "enabled", "defrag", "shmem_enabled", "hpage_pmd_size", "use_zero_page", NULL };
    for (int i = 0; files[i]; i++) {
        char path[128], buf[256];
        snprintf(path, sizeof path, THP "%s", files[i]);
        long n = slurp(path, buf, sizeof buf);
        printf("%s: %s", files[i], n >= 0 ? buf : "unreadable\n");
    }
    char l[2048];
    listing(THP, l, sizeof l);
    printf("listing:%s\n", l);
    listing("/sys/kernel/mm", l, sizeof l);
    printf("/sys/kernel/mm:%s\n", l);
    listing("/sys", l, sizeof l);
    printf("/sys:%s\n", l);
    /* Opening for writing (nothing is written): root may on Linux, pagelab's
     * policy is fixed for the run. */
    open_line("enabled O_WRONLY", THP "enabled", O_WRONLY);
    open_line("defrag O_RDWR", THP "defrag", O_RDWR);
    open_line("shmem_enabled O_WRONLY", THP "shmem_enabled", O_WRONLY);
    printf("== exact deltas\n");
    struct mi a = mi_now();
    char *p = mmap(NULL, 4096 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (size_t i = 0; i < 4096; i++) p[i * UPAGE] = 1;
    struct mi b = mi_now();
    munmap(p, 4096 * UPAGE);
    struct mi c = mi_now();
    printf("4096 anonymous pages: AnonPages %+ld MemFree %+ld PageTables %+ld kB; munmap: AnonPages %+ld MemFree %+ld kB\n",
           b.anon - a.anon, b.free - a.free, b.ptables - a.ptables, c.anon - b.anon, c.free - b.free);
    experiments(1);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "values")) {
        values();
    } else if (!strcmp(mode, "folio-dirty")) {
        folio_dirty();
    } else {
        meminfo_fields();
        experiments(0);
        thp_files();
        smaps_memfd();
    }
    return pl_finish();
}
