// pagelab: cflags=-pthread
/* swap_basic: MADV_PAGEOUT of private anonymous memory and /proc/self/pagemap.
 *
 * Needs swap configured (natively: a swap area in /proc/swaps; pagelab: --swap, on by
 * default). Each step prints the pagemap flags of the pages of its region, by index:
 *   p present, s swapped, f file/shared-anon, x exclusively mapped, w uffd-wp, - none;
 * swapped entries also print their swap type (never the offset or a PFN, which depend on
 * the machine). Page contents are checked after every swap-in.
 *
 * Steps: pageout of written pages (the zero page and untouched pages stay as they are);
 * swap-in by read and by write; a second pageout; fork with swapped pages (the child reads
 * and writes its own copy, the parent keeps its data); a COW-shared page is not paged out;
 * mremap moves swap entries; MADV_DONTNEED and munmap drop them; a page another thread
 * keeps reading is paged out and read back (on several vCPUs the pageout's TLB flush must
 * reach the reader's vCPU); smaps counts (Rss, Pss, clean/dirty, shared/private, Swap,
 * SwapPss, VmFlags) through pageout, swap-in and fork; madvise and pagemap errors.
 */
#define _GNU_SOURCE
#include "pl.h"
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sched.h>
#include <unistd.h>

#define PG 4096ul
static int pm = -1;

static uint64_t pme(const void *p) {
    uint64_t v = 0;
    if (pread(pm, &v, 8, ((uintptr_t)p / PG) * 8) != 8) {
        printf("pagemap pread failed: %s\n", pl_errname(errno));
        exit(3);
    }
    return v;
}

/* "p x" style flags of one entry. */
static void flags(char *out, uint64_t v) {
    char *o = out;
    if (v >> 63 & 1) *o++ = 'p';
    if (v >> 62 & 1) *o++ = 's';
    if (v >> 61 & 1) *o++ = 'f';
    if (v >> 56 & 1) *o++ = 'x';
    if (v >> 57 & 1) *o++ = 'w';
    if (v >> 55 & 1) *o++ = 'd';
    if (o == out) *o++ = '-';
    if (v >> 62 & 1) {
        /* Swap type; whether the offset is non-zero (slot 0 is the swap header). */
        o += sprintf(o, "(t%lu%s)", (unsigned long)(v & 31), (v & ((1ull << 55) - 1)) >> 5 ? "" : ",off0");
    }
    *o = 0;
}

static void show(const char *what, char *base, int n) {
    printf("%-28s", what);
    for (int i = 0; i < n; i++) {
        char f[32];
        flags(f, pme(base + i * PG));
        printf(" %d:%s", i, f);
    }
    printf("\n");
}

static void fill(char *p, int idx, int gen) {
    for (unsigned long i = 0; i < PG; i += 64) p[i] = (char)(idx * 7 + gen + i / 64);
}

static int check(const char *p, int idx, int gen) {
    for (unsigned long i = 0; i < PG; i += 64)
        if (p[i] != (char)(idx * 7 + gen + i / 64)) return 0;
    return 1;
}

/* The VmSwap line of /proc/self/status: this process's swap entries. */
static void vmswap(const char *when) {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    char *l = strstr(buf, "VmSwap:");
    if (!l) {
        printf("%s: no VmSwap\n", when);
        return;
    }
    long kb = strtol(l + 7, NULL, 10);
    printf("VmSwap %s: %ld kB\n", when, kb);
}

/* A reader thread: sums page 0 of `shared_pg` until told to stop, counting bad reads. */
static char *shared_pg;
static volatile int reader_stop, reader_started;
static volatile long reader_bad, reader_rounds;
static void *reader(void *arg) {
    (void)arg;
    reader_started = 1;
    while (!reader_stop) {
        for (unsigned long i = 0; i < PG; i += 64)
            if (shared_pg[i] != (char)(0 * 7 + 1 + i / 64)) reader_bad++;
        reader_rounds++;
    }
    return NULL;
}

/* Selected /proc/self/smaps lines of the VMA that starts at `start`. */
static void smaps(const char *when, const void *start) {
    static const char *keep[] = { "Rss:", "Pss:", "Pss_Dirty:", "Shared_Clean:", "Shared_Dirty:", "Private_Clean:",
                                  "Private_Dirty:", "Anonymous:", "AnonHugePages:", "Swap:", "SwapPss:", "VmFlags:" };
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    printf("smaps %s:", when);
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':'), *dash = strchr(line, '-');
        if (dash && (!colon || dash < colon) && line[0] != 'V') {
            in = strtoul(line, NULL, 16) == (uintptr_t)start;
            continue;
        }
        if (!in) continue;
        for (unsigned i = 0; i < sizeof keep / sizeof keep[0]; i++) {
            if (strncmp(line, keep[i], strlen(keep[i])) == 0) {
                char *v = line + strlen(keep[i]);
                while (*v == ' ') v++;
                v[strcspn(v, "\n")] = 0;
                printf(" %.*s=%s", (int)strlen(keep[i]) - 1, keep[i], v);
            }
        }
    }
    if (f) fclose(f);
    printf("\n");
}

/* A fresh private anonymous region of n pages, pages [0, w) written (generation 1). */
static char *region(int n, int w) {
    char *a = mmap(NULL, n * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) {
        printf("mmap failed\n");
        exit(3);
    }
    for (int i = 0; i < w; i++) fill(a + i * PG, i, 1);
    return a;
}

/* Linux can keep a page it has just swapped in resident on the next MADV_PAGEOUT (the
 * folio is not on an LRU list yet), so every pageout below is of pages that were never
 * swapped in: a fresh region each time. */
int main(void) {
    pm = open("/proc/self/pagemap", O_RDONLY);
    pl_check("open pagemap", pm >= 0);
    const int N = 8;
    char *a = region(N, 5);
    volatile char c = a[5 * PG]; /* page 5: the zero page */
    (void)c;
    show("populated", a, N);
    vmswap("before pageout");
    pl_check("pageout", madvise(a, N * PG, MADV_PAGEOUT) == 0);
    show("after pageout", a, N);
    vmswap("after pageout");

    /* Swap-in by read keeps the data; by write too. */
    pl_check("page 0 data after swap-in (read)", check(a, 0, 1));
    show("after read of 0", a, 2);
    a[1 * PG + 1] = 'x';
    pl_check("page 1 written after swap-in", a[1 * PG + 1] == 'x' && a[1 * PG] == (char)(7 + 1));
    show("after write of 1", a, 3);
    for (int i = 2; i < 5; i++) pl_check("data after swap-in", check(a + i * PG, i, 1));
    show("after reading all", a, N);
    vmswap("after reading all");

    /* fork with swapped pages: the child sees the data and writes its own copy. */
    char *f = region(5, 5);
    pl_check("pageout before fork", madvise(f + PG, 4 * PG, MADV_PAGEOUT) == 0);
    show("before fork", f, 5);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* The inherited descriptor still reads the parent's page tables (the mm is
         * pinned at open); a fresh open reads the child's. */
        show("parent's, via the old fd", f, 5);
        close(pm);
        pm = open("/proc/self/pagemap", O_RDONLY);
        show("child after fork", f, 5);
        pl_check("child: page 2 data", check(f + 2 * PG, 2, 1));
        fill(f + 3 * PG, 3, 9);
        pl_check("child: page 3 own copy", check(f + 3 * PG, 3, 9));
        show("child after access", f, 5);
        fflush(stdout);
        _exit(pl_failures);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    pl_check("child exit 0", WIFEXITED(st) && WEXITSTATUS(st) == 0);
    show("parent after child", f, 5);
    pl_check("parent: page 3 unchanged", check(f + 3 * PG, 3, 1));
    pl_check("parent: page 2 data", check(f + 2 * PG, 2, 1));
    show("parent after reads", f, 5);

    /* A page shared with a live child (COW) is not paged out; an exclusive one is. */
    char *s2 = region(3, 2);
    int p2c[2];
    pl_check("pipe", pipe(p2c) == 0);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        char b;
        close(p2c[1]);
        (void)!read(p2c[0], &b, 1);
        _exit(check(s2, 0, 1) && check(s2 + PG, 1, 1) ? 0 : 1);
    }
    close(p2c[0]);
    fill(s2 + PG, 1, 1); /* the parent's own copy of page 1 */
    s2[2 * PG] = 0;      /* page 2: a new exclusive page */
    show("COW-shared before pageout", s2, 3);
    pl_check("pageout of COW-shared", madvise(s2, 3 * PG, MADV_PAGEOUT) == 0);
    show("COW-shared after pageout", s2, 3);
    (void)!write(p2c[1], "g", 1);
    close(p2c[1]);
    waitpid(pid, &st, 0);
    pl_check("second child exit 0", WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* mremap moves swap entries. */
    char *m = region(N, 5);
    pl_check("pageout before mremap", madvise(m, N * PG, MADV_PAGEOUT) == 0);
    char *b = mremap(m, N * PG, 2 * N * PG, MREMAP_MAYMOVE);
    pl_check("mremap moved", b != MAP_FAILED && b != m);
    show("moved", b, N);
    pl_check("moved page 4 data", check(b + 4 * PG, 4, 1));
    show("moved after read of 4", b, N);

    /* DONTNEED and munmap drop swap entries. */
    pl_check("dontneed", madvise(b, 2 * PG, MADV_DONTNEED) == 0);
    show("after dontneed 0-1", b, 4);
    pl_check("page 0 reads zero", b[0] == 0 && b[PG - 1] == 0);
    pl_check("munmap 2-3", munmap(b + 2 * PG, 2 * PG) == 0);
    show("after munmap 2-3", b, 5);

    /* Paging out a page another thread keeps reading. */
    shared_pg = region(1, 1);
    pthread_t th;
    pl_check("reader thread", pthread_create(&th, NULL, reader, NULL) == 0);
    while (!reader_started) sched_yield();
    for (int i = 0; i < 20; i++) {
        long r0 = reader_rounds;
        madvise(shared_pg, PG, MADV_PAGEOUT);
        while (reader_rounds < r0 + 2) sched_yield();
    }
    reader_stop = 1;
    pthread_join(th, NULL);
    pl_check("reader saw the data every time", reader_bad == 0);

    /* smaps: resident, swapped, clean after a read swap-in, shared with a child. */
    /* Its own VMA: PROT_NONE guard pages on both sides keep it from merging. */
    char *g = mmap(NULL, 8 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *q = mmap(g + PG, 6 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    pl_check("smaps region", q == g + PG);
    for (int i = 0; i < 4; i++) fill(q + i * PG, i, 1);
    c = q[4 * PG]; /* the zero page: not in Rss */
    smaps("written", q);
    pl_check("pageout 2-3", madvise(q + 2 * PG, 2 * PG, MADV_PAGEOUT) == 0);
    smaps("2 swapped", q);
    pl_check("read of 3", check(q + 3 * PG, 3, 1));
    smaps("3 read back", q);
    int c2p[2];
    pl_check("pipes", pipe(p2c) == 0 && pipe(c2p) == 0);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        char b;
        (void)!write(c2p[1], "r", 1);
        (void)!read(p2c[0], &b, 1);
        _exit(0);
    }
    char rb;
    (void)!read(c2p[0], &rb, 1);
    smaps("with a child", q);
    (void)!write(p2c[1], "g", 1);
    waitpid(pid, &st, 0);
    smaps("child gone", q);
    close(p2c[0]);
    close(p2c[1]);
    close(c2p[0]);
    close(c2p[1]);

    /* madvise errors; a failing pageout still pages out the mapped part before the hole. */
    char *e = region(4, 4);
    pl_check("munmap page 2", munmap(e + 2 * PG, PG) == 0);
    errno = 0;
    pl_check("pageout unaligned: EINVAL", madvise(e + 1, PG, MADV_PAGEOUT) == -1 && errno == EINVAL);
    errno = 0;
    pl_check("pageout bad advice: EINVAL", madvise(e, PG, 99) == -1 && errno == EINVAL);
    show("after EINVAL", e, 4);
    pl_check("pageout len 0", madvise(e, 0, MADV_PAGEOUT) == 0);
    errno = 0;
    pl_check("pageout over a hole: ENOMEM", madvise(e, 4 * PG, MADV_PAGEOUT) == -1 && errno == ENOMEM);
    show("after ENOMEM", e, 4);
    for (int i = 0; i < 4; i++)
        if (i != 2) pl_check("data after the failed pageout", check(e + i * PG, i, 1));

    /* pagemap read rules. */
    uint64_t v[2];
    errno = 0;
    pl_check("pagemap count 4: EINVAL", pread(pm, v, 4, 0) == -1 && errno == EINVAL);
    errno = 0;
    pl_check("pagemap offset 3: EINVAL", pread(pm, v, 8, 3) == -1 && errno == EINVAL);
    pl_check("pagemap at TASK_SIZE: 0", pread(pm, v, 8, (0x7ffffffff000ul / PG) * 8) == 0);
    pl_check("pagemap last page: 8", pread(pm, v, 16, (0x7fffffffe000ul / PG) * 8) == 8);
    off_t at = (off_t)(((uintptr_t)e / PG) * 8);
    pl_check("pagemap lseek+read", lseek(pm, at, SEEK_SET) == at && read(pm, v, 16) == 16 && (v[0] >> 63) == 1 &&
                                       read(pm, v, 16) == 16 && v[0] == 0 && (v[1] >> 63) == 1);
    errno = 0;
    pl_check("pagemap lseek SEEK_END: EINVAL", lseek(pm, 0, SEEK_END) == -1 && errno == EINVAL);
    errno = 0;
    pl_check("pagemap write: EBADF", write(pm, v, 8) == -1 && errno == EBADF);
    return pl_finish();
}
