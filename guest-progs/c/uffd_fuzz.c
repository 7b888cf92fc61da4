// pagelab: cflags=-pthread
// uffd_fuzz SEED [NOPS]: a random mm + userfaultfd program (issue 11).
//
// SEED picks a few regions (anon private, anon MADV_HUGEPAGE 2 MiB-aligned,
// memfd MAP_SHARED, memfd MAP_PRIVATE, MAP_SHARED|MAP_ANONYMOUS), the uffd
// features, and a sequence of NOPS operations (default 60) over them:
// reads, writes, mmap, munmap, mremap, mprotect, madvise, fork (the child
// prints its view), UFFDIO_REGISTER/UNREGISTER/WRITEPROTECT/COPY/ZEROPAGE/
// CONTINUE from the main thread, pagemap and PAGEMAP_SCAN. The ops are drawn
// from the PRNG alone (never from results), so `SEED K` runs exactly the first
// K ops of `SEED N` for K <= N: the harness shrinks a failing seed that way.
//
// Only the main thread touches the regions. A handler thread polls the uffd
// and resolves every fault with a policy that is a function of (seed, region,
// page, messages so far in this op): COPY (maybe MODE_WP, maybe a 4-page
// block), ZEROPAGE, CONTINUE (maybe MODE_WP), un-protect; a failed resolution
// is logged and followed by UFFDIO_WAKE; more than 12 messages in a row for
// one page unregister the region and wake it (so nothing loops). Its lines go into a buffer the
// main thread prints after each op, once the handler is idle, so the
// transcript order is deterministic whatever the scheduling.
//
// Transcript: one line per op ("NN op rR args: result"), with page indexes
// relative to the region's 2 MiB-aligned slot (inside a PROT_NONE
// reservation), errno names, per-page data tokens (wK: written by op K, cK:
// COPY'd by the handler during op K, mK: COPY'd by op K, z: zero, torn: first
// and last word differ), SIGSEGV/SIGBUS with si_code, pagemap flags
// (p present, s swap, f file/shared, g guard, w uffd-wp, x exclusive; no PFN),
// PAGEMAP_SCAN regions. Runs of equal tokens are merged ("3-7:w12").
#define _GNU_SOURCE
#include "thp.h"
#include <sched.h>
#include <stdarg.h>
#include <sys/wait.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif
#define PM_GUARD (1ull << 58)

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_SCAN_WP_MATCHING 1ull
#define PM_SCAN_CHECK_WPASYNC 2ull
#define C_SOFT_DIRTY 0x80ull
#define C_ALL 0x1ffull
struct pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
        category_anyof_mask, return_mask;
};
struct page_region {
    uint64_t start, end, categories;
};

/* ---- PRNG -------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static pl_rng rng;
static uint64_t seed;
static long R(long n) { return (long)pl_rand_below(&rng, (uint64_t)n); }
static int chance(int pct) { return R(100) < pct; }

/* ---- regions ----------------------------------------------------------------- */

enum kind { K_ANON, K_THP, K_SHMEM, K_MEMPRIV, K_SHANON, NKIND };
static const char *kname[] = { "anon", "thp", "shmem", "memfd-private", "shared-anon" };

struct region {
    int kind;
    char *base;   /* slot page 0, 2 MiB-aligned */
    long pages;   /* initially mapped [0, pages); memfd size */
    long slot;    /* pages of the slot (2 * pages) */
    int fd;       /* memfd, or -1 */
};
#define MAXREG 4
static struct region reg[MAXREG];
static int nreg;

static int map_flags(const struct region *r) {
    switch (r->kind) {
    case K_SHMEM: return MAP_SHARED;
    case K_MEMPRIV: return MAP_PRIVATE;
    case K_SHANON: return MAP_SHARED | MAP_ANONYMOUS;
    default: return MAP_PRIVATE | MAP_ANONYMOUS;
    }
}

/* mmap MAP_FIXED of slot pages [lo, lo+n) with the region's backing
 * (memfd offset = lo pages); MADV_HUGEPAGE for THP. Returns 0 or -errno. */
static int map_range(struct region *r, long lo, long n, int prot) {
    void *p = mmap(r->base + lo * UPAGE, (size_t)n * UPAGE, prot, map_flags(r) | MAP_FIXED, r->fd,
                   r->fd >= 0 ? (off_t)lo * (off_t)UPAGE : 0);
    if (p == MAP_FAILED) return -errno;
    if (r->kind == K_THP && madvise(p, (size_t)n * UPAGE, MADV_HUGEPAGE) != 0) return -errno;
    return 0;
}

/* "r<i> p<page>" for an address, or "outside". */
static void addr_str(uint64_t a, char *b, size_t n) {
    for (int i = 0; i < nreg; i++) {
        uintptr_t lo = (uintptr_t)reg[i].base, hi = lo + (uintptr_t)reg[i].slot * UPAGE;
        if (a >= lo && a < hi) {
            snprintf(b, n, "r%d p%ld", i, (long)((a - lo) / UPAGE));
            return;
        }
    }
    snprintf(b, n, "outside");
}

static int region_of(uint64_t a, long *page) {
    for (int i = 0; i < nreg; i++) {
        uintptr_t lo = (uintptr_t)reg[i].base, hi = lo + (uintptr_t)reg[i].slot * UPAGE;
        if (a >= lo && a < hi) {
            *page = (long)((a - lo) / UPAGE);
            return i;
        }
    }
    return -1;
}

/* ---- output --------------------------------------------------------------- */

static char line[1 << 16];
static size_t llen;
static char hbuf[1 << 16]; /* the handler's lines not printed yet */
static size_t hlen;

static const char *en(int e) { return shm_err(e); }

/* A line being built: line, llen (above on_alarm). */
static void lput(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void lput(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (llen < sizeof line) {
        int k = vsnprintf(line + llen, sizeof line - llen, fmt, ap);
        if (k > 0) llen += (size_t)k;
        if (llen >= sizeof line) llen = sizeof line - 1;
    }
    va_end(ap);
}
static void lend(void) {
    printf("%.*s\n", (int)llen, line);
    llen = 0;
}

/* Runs of equal tokens: " lo-hi:tok". */
static char run_tok[64];
static long run_lo, run_hi;
static void runs_begin(void) { run_lo = -1; }
static void runs_flush(void) {
    if (run_lo < 0) return;
    if (run_lo == run_hi) lput(" %ld:%s", run_lo, run_tok);
    else lput(" %ld-%ld:%s", run_lo, run_hi, run_tok);
    run_lo = -1;
}
static void runs_add(long i, const char *tok) {
    if (run_lo >= 0 && run_hi == i - 1 && strcmp(tok, run_tok) == 0) {
        run_hi = i;
        return;
    }
    runs_flush();
    snprintf(run_tok, sizeof run_tok, "%s", tok);
    run_lo = run_hi = i;
}

/* ---- the handler thread --------------------------------------------------------- */

static int ufd = -1;
static uint64_t features;
static int stop_pipe[2];
static volatile int hstate; /* 0: about to poll / polling, 1: handling */
static volatile int cur_op;
static volatile int op_msgs; /* messages in the current op */
static pthread_mutex_t hlock = PTHREAD_MUTEX_INITIALIZER;
static char copy_src[4 * 4096] __attribute__((aligned(4096)));

static void hput(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void hput(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&hlock);
    if (hlen < sizeof hbuf - 1) {
        int k = vsnprintf(hbuf + hlen, sizeof hbuf - hlen, fmt, ap);
        if (k > 0) hlen += (size_t)k;
        if (hlen >= sizeof hbuf) hlen = sizeof hbuf - 1;
    }
    pthread_mutex_unlock(&hlock);
    va_end(ap);
}

static void fill_words(char *p, size_t len, uint64_t v) {
    for (size_t i = 0; i < len; i += 8) *(uint64_t *)(p + i) = v;
}

#define V_WRITE 0x5700000000000000ull
#define V_HCOPY 0x4300000000000000ull
#define V_MCOPY 0x4d00000000000000ull

static void handle_fault(const struct uffd_msg *m) {
    uint64_t a = m->arg.pagefault.address, f = m->arg.pagefault.flags;
    long pg = 0;
    int ri = region_of(a, &pg);
    char w[48];
    addr_str(a, w, sizeof w);
    const char *type = (f & UFFD_PAGEFAULT_FLAG_WP) ? "wp" : (f & UFFD_PAGEFAULT_FLAG_MINOR) ? "minor" : "missing";
    hput("  uffd: fault %s %s %s", type, (f & UFFD_PAGEFAULT_FLAG_WRITE) ? "write" : "read", w);
    if (features & UFFD_FEATURE_EXACT_ADDRESS) hput(" off %lu", (unsigned long)(a % UPAGE));
    if (f & ~(uint64_t)(UFFD_PAGEFAULT_FLAG_WP | UFFD_PAGEFAULT_FLAG_MINOR | UFFD_PAGEFAULT_FLAG_WRITE))
        hput(" flags %#llx", (unsigned long long)f);
    int n = __atomic_add_fetch(&op_msgs, 1, __ATOMIC_SEQ_CST);
    /* Messages in a row for the same page (a resolution that keeps failing). */
    static uint64_t last_page;
    static int same;
    same = (a & ~(UPAGE - 1)) == last_page && n > 1 ? same + 1 : 1;
    last_page = a & ~(UPAGE - 1);
    char *page = (char *)(uintptr_t)(a & ~(UPAGE - 1));
    if (ri < 0) {
        hput(" -> wake %s\n", en(-uffd_wake(ufd, page, UPAGE)));
        return;
    }
    if (same > 12) {
        struct region *r = &reg[ri];
        hput(" -> too many messages: unregister r%d %s", ri, en(-uffd_unregister(ufd, r->base, (size_t)r->slot * UPAGE)));
        hput(", wake %s\n", en(-uffd_wake(ufd, page, UPAGE)));
        return;
    }
    uint64_t h = splitmix(seed ^ ((uint64_t)ri << 48) ^ ((uint64_t)pg << 20) ^ (uint64_t)n);
    /* A 4-page block around the page, clipped to the slot. */
    char *blk = page;
    size_t blen = UPAGE;
    if ((h >> 8) % 4 == 0) {
        long b0 = pg & ~3l;
        blk = reg[ri].base + b0 * UPAGE;
        blen = 4 * UPAGE;
    }
    int r;
    if (f & UFFD_PAGEFAULT_FLAG_WP) {
        r = uffd_wp(ufd, blk, blen, 0);
        hput(" -> unprotect %zu: %s", blen / UPAGE, en(-r));
    } else if (f & UFFD_PAGEFAULT_FLAG_MINOR) {
        uint64_t mode = (h & 2) ? UFFDIO_CONTINUE_MODE_WP : 0;
        int64_t mapped = -12345;
        r = uffd_continue(ufd, blk, blen, mode, &mapped);
        hput(" -> continue%s %zu: %s mapped %lld", mode ? " wp" : "", blen / UPAGE, en(-r), (long long)mapped);
    } else if (h % 5 == 3) {
        int64_t z = -12345;
        r = uffd_zeropage(ufd, blk, blen, 0, &z);
        hput(" -> zeropage %zu: %s zeropage %lld", blen / UPAGE, en(-r), (long long)z);
    } else {
        uint64_t mode = (h % 5 == 2) ? UFFDIO_COPY_MODE_WP : 0;
        fill_words(copy_src, blen, V_HCOPY | (uint64_t)cur_op);
        int64_t c = -12345;
        r = uffd_copy(ufd, blk, copy_src, blen, mode, &c);
        hput(" -> copy%s %zu: %s copied %lld", mode ? " wp" : "", blen / UPAGE, en(-r), (long long)c);
    }
    if (r < 0) hput(", wake %s", en(-uffd_wake(ufd, page, UPAGE)));
    hput("\n");
}

static void handle_msg(const struct uffd_msg *m) {
    char a[48], b[48];
    switch (m->event) {
    case UFFD_EVENT_PAGEFAULT:
        handle_fault(m);
        break;
    case UFFD_EVENT_REMAP:
        addr_str(m->arg.remap.from, a, sizeof a);
        addr_str(m->arg.remap.to, b, sizeof b);
        hput("  uffd: REMAP %s -> %s len %llu\n", a, b, (unsigned long long)(m->arg.remap.len / UPAGE));
        break;
    case UFFD_EVENT_REMOVE:
    case UFFD_EVENT_UNMAP:
        addr_str(m->arg.remove.start, a, sizeof a);
        hput("  uffd: %s %s len %lld\n", m->event == UFFD_EVENT_REMOVE ? "REMOVE" : "UNMAP", a,
             (long long)((int64_t)(m->arg.remove.end - m->arg.remove.start) / (int64_t)UPAGE));
        break;
    case UFFD_EVENT_FORK:
        hput("  uffd: FORK\n");
        close((int)m->arg.fork.ufd);
        break;
    default:
        hput("  uffd: event %#x\n", m->event);
    }
}

static void *handler_main(void *unused) {
    (void)unused;
    for (;;) {
        __atomic_store_n(&hstate, 0, __ATOMIC_SEQ_CST);
        struct pollfd p[2] = { { ufd, POLLIN, 0 }, { stop_pipe[0], POLLIN, 0 } };
        int n = poll(p, 2, -1);
        __atomic_store_n(&hstate, 1, __ATOMIC_SEQ_CST);
        if (n < 0) {
            if (errno == EINTR) continue;
            hput("  handler: poll %s\n", en(errno));
            break;
        }
        if (p[1].revents) break;
        if (p[0].revents & POLLIN) {
            struct uffd_msg m;
            ssize_t r = read(ufd, &m, sizeof m);
            if (r == (ssize_t)sizeof m) {
                handle_msg(&m);
                continue;
            }
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            hput("  handler: read %zd %s\n", r, r < 0 ? en(errno) : "");
            break;
        }
        if (p[0].revents) {
            hput("  handler: revents %#x\n", p[0].revents);
            break;
        }
    }
    __atomic_store_n(&hstate, 2, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Waits until the handler is idle (every message the op caused is logged),
 * then prints its lines. */
static void handler_sync(void) {
    for (long i = 0; __atomic_load_n(&hstate, __ATOMIC_SEQ_CST) == 1; i++) {
        if (i < 2000) sched_yield();
        else if (i < 22000) usleep(100);
        else {
            printf("  handler: stuck\n");
            break;
        }
    }
    pthread_mutex_lock(&hlock);
    if (hlen) fwrite(hbuf, 1, hlen, stdout);
    hlen = 0;
    pthread_mutex_unlock(&hlock);
}

/* ---- memory access with signals -------------------------------------------------- */

static sigjmp_buf jb;
static volatile int jb_armed;
static volatile int sig_no, sig_code;

static void on_fault(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    if (!jb_armed) {
        static const char msg[] = "unexpected signal\n";
        if (write(1, msg, sizeof msg - 1)) {}
        _exit(8);
    }
    sig_no = sig;
    sig_code = si->si_code;
    jb_armed = 0;
    siglongjmp(jb, 1);
}

/* A hang (a fault nobody resolves): print what there is, the op in progress
 * included, and leave. */
static void on_alarm(int sig) {
    (void)sig;
    if (ftrylockfile(stdout) == 0) {
        fflush_unlocked(stdout);
        funlockfile(stdout);
    }
    static const char msg[] = "ALARM: timeout in: ";
    if (write(1, msg, sizeof msg - 1)) {}
    if (write(1, line, llen < sizeof line ? llen : 0)) {}
    if (write(1, "\n", 1)) {}
    if (write(1, hbuf, hlen < sizeof hbuf ? hlen : 0)) {}
    _exit(9);
}

static void sig_tok(char *t, size_t n) {
    snprintf(t, n, "%s%d", sig_no == SIGSEGV ? "SEGV" : sig_no == SIGBUS ? "BUS" : "SIG", sig_code);
}

static void val_tok(uint64_t a, uint64_t b, char *t, size_t n) {
    if (a != b) {
        snprintf(t, n, "torn");
        return;
    }
    uint64_t tag = a & 0xff00000000000000ull, k = a & 0xffffffffull;
    if (a == 0) snprintf(t, n, "z");
    else if (tag == V_WRITE) snprintf(t, n, "w%llu", (unsigned long long)k);
    else if (tag == V_HCOPY) snprintf(t, n, "c%llu", (unsigned long long)k);
    else if (tag == V_MCOPY) snprintf(t, n, "m%llu", (unsigned long long)k);
    else snprintf(t, n, "?%llx", (unsigned long long)a);
}

/* Reads (or writes, value v) the first and last word of one page: its token. */
static __attribute__((noinline)) void touch(char *pg, int write, uint64_t v, char *t, size_t tn) {
    volatile uint64_t *p0 = (volatile uint64_t *)pg;
    volatile uint64_t *p1 = (volatile uint64_t *)(pg + UPAGE - 8);
    if (sigsetjmp(jb, 0) == 0) {
        jb_armed = 1;
        if (write) {
            *p0 = v;
            *p1 = v;
            jb_armed = 0;
            snprintf(t, tn, "ok");
        } else {
            uint64_t a = *p0, b = *p1;
            jb_armed = 0;
            val_tok(a, b, t, tn);
        }
    } else {
        sig_tok(t, tn);
    }
}

/* touch() on pages [lo, lo+n) of region r, one token per page. */
static void access_pages(struct region *r, long lo, long n, int write, uint64_t v) {
    runs_begin();
    for (long i = lo; i < lo + n; i++) {
        char t[32];
        touch(r->base + i * UPAGE, write, v, t, sizeof t);
        runs_add(i, t);
    }
    runs_flush();
}

/* ---- pagemap ------------------------------------------------------------------- */

static int pm_fd = -1;

static void pm_tok(uint64_t e, char *o) {
    char *q = o;
    if (e & PM_PRESENT) *q++ = 'p';
    if (e & PM_SWAP) *q++ = 's';
    if (e & PM_FILE) *q++ = 'f';
    if (e & PM_GUARD) *q++ = 'g';
    if (e & PM_UFFD_WP) *q++ = 'w';
    if (e & PM_EXCL) *q++ = 'x';
    if (q == o) *q++ = '-';
    *q = 0;
}

static void pagemap_runs(struct region *r) {
    static uint64_t e[4096];
    long n = r->slot;
    ssize_t got = pread(pm_fd, e, (size_t)n * 8, (off_t)((uintptr_t)r->base / UPAGE * 8));
    if (got != n * 8) {
        lput(" unreadable");
        return;
    }
    runs_begin();
    for (long i = 0; i < n; i++) {
        char t[16];
        pm_tok(e[i], t);
        runs_add(i, t);
    }
    runs_flush();
}

/* AnonHugePages + ShmemPmdMapped + FilePmdMapped (kB) of the VMAs in the slot. */
static void smaps_huge(struct region *r, long *anon, long *shm) {
    *anon = *shm = 0;
    char *s = thp_slurp("/proc/self/smaps");
    if (!s) {
        *anon = *shm = -1;
        return;
    }
    uintptr_t lo = (uintptr_t)r->base, hi = lo + (uintptr_t)r->slot * UPAGE;
    int in = 0;
    for (char *l = s; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        unsigned long a, b;
        char perms[8];
        if (thp_smaps_header(l, &a, &b, perms)) in = a < hi && b > lo;
        else if (in && strncmp(l, "AnonHugePages:", 14) == 0) *anon += strtol(l + 14, NULL, 10);
        else if (in && strncmp(l, "ShmemPmdMapped:", 15) == 0) *shm += strtol(l + 15, NULL, 10);
        else if (in && strncmp(l, "FilePmdMapped:", 14) == 0) *shm += strtol(l + 14, NULL, 10);
    }
    free(s);
}

/* Whether a VMA overlapping [p, p+len) is file-backed (shmem, memfd, shared
 * anon) and registered uffd-wp (VmFlags uw) or has a page with the uffd-wp
 * bit (a marker left by an earlier registration): Linux 6.18 livelocks in
 * MADV_GUARD_INSTALL there (the zap it retries keeps or leaves a uffd-wp
 * marker, which is not a guard marker, so it zaps again forever). */
static int guard_would_livelock(const char *p, size_t len) {
    char *s = thp_slurp("/proc/self/smaps");
    if (!s) return 0;
    uintptr_t lo = (uintptr_t)p, hi = lo + len;
    int in = 0, file = 0, hit = 0;
    for (char *l = s; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        unsigned long a, b, ino = 0;
        char perms[8], path[8] = "";
        if (thp_smaps_header(l, &a, &b, perms)) {
            sscanf(l, "%*s %*s %*s %*s %lu %7s", &ino, path);
            in = a < hi && b > lo;
            file = ino != 0 || path[0] == '/' || perms[3] == 's';
        } else if (in && file && strncmp(l, "VmFlags:", 8) == 0) {
            if (strstr(l, " uw")) hit = 1;
            /* A uffd-wp marker or bit left from an earlier registration. */
            uintptr_t x = a > lo ? a : lo, y = b < hi ? b : hi;
            for (; x < y && !hit; x += UPAGE)
                if (uffd_pagemap_pid(0, (void *)x) & PM_UFFD_WP) hit = 1;
        }
    }
    free(s);
    return hit;
}

/* ---- ops ------------------------------------------------------------------------ */

/* A range of slot pages of region r. */
static void gen_range(struct region *r, long *lo, long *n) {
    long k = R(16);
    if (k < 5) {
        *lo = R(r->pages);
        *n = 1;
    } else if (k < 9) {
        *lo = R(r->pages);
        *n = 1 + R(8);
    } else if (k < 11) {
        *lo = 0;
        *n = r->pages;
    } else if (k < 12) {
        *lo = 0;
        *n = r->slot;
    } else if (k < 14 && r->kind == K_THP) {
        *lo = 512 * R(r->slot / 512);
        *n = 512;
    } else {
        *lo = R(r->slot);
        *n = 1 + R(r->slot - *lo);
        if (*n > r->pages) *n = 1 + R(r->pages);
    }
    if (*lo + *n > r->slot) *n = r->slot - *lo;
}

enum op {
    OP_READ, OP_WRITE, OP_PAGEMAP, OP_PMSCAN, OP_MPROTECT, OP_MADVISE, OP_MUNMAP, OP_MMAP, OP_MREMAP,
    OP_REGISTER, OP_UNREGISTER, OP_WP, OP_COPY, OP_ZEROPAGE, OP_CONTINUE, OP_FORK, NOP
};
static const int weight[NOP] = { 14, 14, 6, 5, 5, 10, 3, 3, 4, 9, 3, 8, 3, 2, 3, 3 };
static int disabled[NOP];

static const char *prot_name(int p) {
    return p == PROT_NONE ? "none" : p == PROT_READ ? "r" : "rw";
}

static void op_fork(void) {
    long wr = R(nreg), wlo, wn;
    gen_range(&reg[wr], &wlo, &wn);
    int do_write = chance(50);
    lput("fork");
    lend();
    pl_flush();
    pid_t pid = fork();
    if (pid < 0) {
        printf("  fork: %s\n", en(errno));
        return;
    }
    if (pid == 0) {
        /* The pagemap first: what fork copied (after the reads it would show
         * fault-around, which is not deterministic natively). */
        for (int i = 0; i < nreg; i++) {
            lput("  child r%d pagemap:", i);
            pagemap_runs(&reg[i]);
            lend();
        }
        for (int i = 0; i < nreg; i++) {
            lput("  child r%d data:", i);
            access_pages(&reg[i], 0, reg[i].slot, 0, 0);
            lend();
        }
        if (do_write) {
            lput("  child write r%ld %ld+%ld:", wr, wlo, wn);
            access_pages(&reg[wr], wlo, wn, 1, V_WRITE | 0xffff);
            lend();
            lput("  child r%ld data:", wr);
            access_pages(&reg[wr], 0, reg[wr].slot, 0, 0);
            lend();
        }
        pl_flush();
        _exit(0);
    }
    int st = 0;
    pid_t w = waitpid(pid, &st, 0);
    if (w != pid) printf("  waitpid: %s\n", en(errno));
    else if (WIFEXITED(st)) printf("  child exit %d\n", WEXITSTATUS(st));
    else printf("  child signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
}

static void op_pmscan(struct region *r, int ri) {
    long lo, n;
    gen_range(r, &lo, &n);
    uint64_t flags = 0;
    long k = R(20);
    if (k >= 12 && k < 17) flags = PM_SCAN_WP_MATCHING;
    else if (k >= 17) flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
    uint64_t ret = C_ALL & ~C_SOFT_DIRTY;
    uint64_t mask = chance(50) ? 0 : (1ull << R(9)) & ~C_SOFT_DIRTY;
    uint64_t inv = chance(80) ? 0 : mask;
    uint64_t anyof = chance(70) ? 0 : ret;
    uint64_t maxp = chance(70) ? 0 : (uint64_t)(1 + R(8));
    static struct page_region vec[64];
    for (int i = 0; i < 64; i++) vec[i] = (struct page_region){ ~0ull, ~0ull, ~0ull };
    struct pm_scan_arg a = { .size = sizeof a, .flags = flags, .start = (uintptr_t)(r->base + lo * UPAGE),
                             .end = (uintptr_t)(r->base + (lo + n) * UPAGE), .walk_end = 0, .vec = (uintptr_t)vec,
                             .vec_len = 64, .max_pages = maxp, .category_inverted = inv, .category_mask = mask,
                             .category_anyof_mask = anyof, .return_mask = ret };
    lput("pmscan r%d %ld+%ld flags %#llx mask %#llx inv %#llx anyof %#llx max %llu: ", ri, lo, n,
         (unsigned long long)flags, (unsigned long long)mask, (unsigned long long)inv, (unsigned long long)anyof,
         (unsigned long long)maxp);
    long rv = ioctl(pm_fd, PAGEMAP_SCAN, &a);
    int e = errno;
    if (rv < 0) {
        lput("%s", en(e));
        lend();
        return;
    }
    lput("%ld walk_end %ld", rv, (long)(((int64_t)a.walk_end - (int64_t)(uintptr_t)r->base) / (int64_t)UPAGE));
    for (long i = 0; i < rv && i < 64; i++) {
        long s = (long)(((int64_t)vec[i].start - (int64_t)(uintptr_t)r->base) / (int64_t)UPAGE);
        long t = (long)(((int64_t)vec[i].end - (int64_t)(uintptr_t)r->base) / (int64_t)UPAGE);
        lput(" %ld-%ld:%#llx", s, t - 1, (unsigned long long)vec[i].categories);
    }
    lend();
}

static uint64_t gen_mode(void) {
    uint64_t mode = 0;
    while (!mode) {
        if (chance(50)) mode |= UFFDIO_REGISTER_MODE_MISSING;
        if (chance(60)) mode |= UFFDIO_REGISTER_MODE_WP;
        if (chance(35)) mode |= UFFDIO_REGISTER_MODE_MINOR;
    }
    return mode;
}

static void do_register(int ri, long lo, long n) {
    struct region *r = &reg[ri];
    uint64_t mode = gen_mode(), ioctls = 0;
    lput("register r%d %ld+%ld %s%s%s: ", ri, lo, n, mode & UFFDIO_REGISTER_MODE_MISSING ? "M" : "",
         mode & UFFDIO_REGISTER_MODE_WP ? "W" : "", mode & UFFDIO_REGISTER_MODE_MINOR ? "m" : "");
    int rv = uffd_register(ufd, r->base + lo * UPAGE, (size_t)n * UPAGE, mode, &ioctls);
    lput("%s", en(-rv));
    if (rv == 0) lput(" ioctls %#llx", (unsigned long long)ioctls);
}

static void run_op(int k) {
    int total = 0;
    for (int i = 0; i < NOP; i++) total += disabled[i] ? 0 : weight[i];
    long x = R(total);
    int op = 0;
    for (; op < NOP; op++) {
        if (disabled[op]) continue;
        if (x < weight[op]) break;
        x -= weight[op];
    }
    int ri = (int)R(nreg);
    struct region *r = &reg[ri];
    long lo, n;
    gen_range(r, &lo, &n);
    char *p = r->base + lo * UPAGE;
    size_t len = (size_t)n * UPAGE;
    cur_op = k;
    op_msgs = 0;
    lput("%02d ", k);
    switch (op) {
    case OP_READ:
        lput("read r%d %ld+%ld:", ri, lo, n);
        access_pages(r, lo, n, 0, 0);
        break;
    case OP_WRITE:
        lput("write r%d %ld+%ld w%d:", ri, lo, n, k);
        access_pages(r, lo, n, 1, V_WRITE | (uint64_t)k);
        break;
    case OP_PAGEMAP:
        lput("pagemap r%d:", ri);
        pagemap_runs(r);
        break;
    case OP_PMSCAN:
        op_pmscan(r, ri);
        handler_sync();
        return;
    case OP_MPROTECT: {
        long pr = R(10);
        int prot = pr < 2 ? PROT_NONE : pr < 5 ? PROT_READ : PROT_READ | PROT_WRITE;
        lput("mprotect r%d %ld+%ld %s: ", ri, lo, n, prot_name(prot));
        int rv = mprotect(p, len, prot) < 0 ? errno : 0;
        lput("%s", en(rv));
        break;
    }
    case OP_MADVISE: {
        static const int adv[] = { MADV_DONTNEED, MADV_DONTNEED, MADV_REMOVE, MADV_PAGEOUT, MADV_HUGEPAGE,
                                   MADV_NOHUGEPAGE, MADV_COLLAPSE, MADV_COLLAPSE, MADV_GUARD_INSTALL,
                                   MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_GUARD_REMOVE };
        static const char *an[] = { "dontneed", "dontneed", "remove", "pageout", "hugepage", "nohugepage",
                                    "collapse", "collapse", "guard-install", "guard-install", "guard-remove", "guard-remove" };
        int a = (int)R(12);
        if (a == 5 && chance(70)) a = 4;
        if ((a == 6 || a == 7) && r->kind == K_THP && chance(60)) {
            lo = 512 * R(r->slot / 512);
            n = 512;
            p = r->base + lo * UPAGE;
            len = (size_t)n * UPAGE;
        }
        lput("madvise r%d %ld+%ld %s: ", ri, lo, n, an[a]);
        if (adv[a] == MADV_GUARD_INSTALL && guard_would_livelock(p, len)) {
            lput("skipped (uffd-wp file VMA)");
            break;
        }
        int rv = madvise(p, len, adv[a]) < 0 ? errno : 0;
        lput("%s", en(rv));
        if (adv[a] == MADV_COLLAPSE) {
            handler_sync();
            long ah, sh;
            smaps_huge(r, &ah, &sh);
            lput(" AnonHugePages %ld PmdMapped %ld", ah, sh);
        }
        break;
    }
    case OP_MUNMAP: {
        lput("munmap r%d %ld+%ld: ", ri, lo, n);
        int rv = munmap(p, len) < 0 ? errno : 0;
        lput("%s", en(rv));
        break;
    }
    case OP_MMAP: {
        int prot = chance(80) ? PROT_READ | PROT_WRITE : PROT_READ;
        if (chance(50)) {
            lo = 0;
            n = r->pages;
        }
        lput("mmap r%d %ld+%ld %s: ", ri, lo, n, prot_name(prot));
        int rv = map_range(r, lo, n, prot);
        lput("%s", en(-rv));
        break;
    }
    case OP_MREMAP: {
        long v = R(10);
        void *q;
        if (v < 5) {
            long dst = R(r->slot - n + 1);
            int fl = MREMAP_MAYMOVE | MREMAP_FIXED;
            if (v == 4) fl |= MREMAP_DONTUNMAP;
            lput("mremap r%d %ld+%ld -> %ld%s: ", ri, lo, n, dst, v == 4 ? " dontunmap" : "");
            q = mremap(p, len, len, fl, r->base + dst * UPAGE);
        } else if (v < 7) {
            long nn = n > 1 ? n / 2 : 1;
            lput("mremap r%d %ld+%ld shrink %ld: ", ri, lo, n, nn);
            q = mremap(p, len, (size_t)nn * UPAGE, 0);
        } else {
            long nn = n + 1 + R(8);
            if (lo + nn > r->slot) nn = r->slot - lo;
            lput("mremap r%d %ld+%ld grow %ld: ", ri, lo, n, nn);
            q = mremap(p, len, (size_t)nn * UPAGE, 0);
        }
        if (q == MAP_FAILED) lput("%s", en(errno));
        else {
            long at = (long)(((int64_t)(uintptr_t)q - (int64_t)(uintptr_t)r->base) / (int64_t)UPAGE);
            lput("at %ld", at);
        }
        break;
    }
    case OP_REGISTER:
        if (chance(50)) {
            lo = 0;
            n = r->pages;
        }
        do_register(ri, lo, n);
        break;
    case OP_UNREGISTER: {
        lput("unregister r%d %ld+%ld: ", ri, lo, n);
        int rv = uffd_unregister(ufd, p, len);
        lput("%s", en(-rv));
        break;
    }
    case OP_WP: {
        int wp = chance(65);
        lput("writeprotect r%d %ld+%ld %s: ", ri, lo, n, wp ? "wp" : "unwp");
        int rv = uffd_wp(ufd, p, len, wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0);
        lput("%s", en(-rv));
        break;
    }
    case OP_COPY:
    case OP_ZEROPAGE:
    case OP_CONTINUE: {
        if (n > 16) n = 1 + R(16);
        len = (size_t)n * UPAGE;
        int wp = chance(30);
        int64_t c = -12345;
        int rv;
        if (op == OP_COPY) {
            static char src[16 * 4096] __attribute__((aligned(4096)));
            fill_words(src, len, V_MCOPY | (uint64_t)k);
            lput("copy r%d %ld+%ld%s: ", ri, lo, n, wp ? " wp" : "");
            rv = uffd_copy(ufd, p, src, len, wp ? UFFDIO_COPY_MODE_WP : 0, &c);
            lput("%s copied %lld", en(-rv), (long long)c);
        } else if (op == OP_ZEROPAGE) {
            lput("zeropage r%d %ld+%ld: ", ri, lo, n);
            rv = uffd_zeropage(ufd, p, len, 0, &c);
            lput("%s zeropage %lld", en(-rv), (long long)c);
        } else {
            lput("continue r%d %ld+%ld%s: ", ri, lo, n, wp ? " wp" : "");
            rv = uffd_continue(ufd, p, len, wp ? UFFDIO_CONTINUE_MODE_WP : 0, &c);
            lput("%s mapped %lld", en(-rv), (long long)c);
        }
        break;
    }
    case OP_FORK:
        op_fork();
        handler_sync();
        return;
    }
    handler_sync();
    lend();
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: uffd_fuzz SEED [NOPS] [-OPNUM ...]\n");
        return 2;
    }
    seed = (uint64_t)pl_arg_long(argc, argv, 1, 0);
    long nops = pl_arg_long(argc, argv, 2, 60);
#ifdef LINEBUF
    setvbuf(stdout, NULL, _IOLBF, 1 << 16);
#else
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
#endif
    rng = pl_rng_new(splitmix(seed));

    /* One CPU for both threads natively: the pages either thread faults in
     * then sit in the same per-CPU LRU batch, which MADV_PAGEOUT drains (a
     * page in another CPU's batch is not isolated, so not unmapped). */
    cpu_set_t cs;
    CPU_ZERO(&cs);
    int cpu = sched_getcpu();
    CPU_SET(cpu < 0 ? 0 : cpu, &cs);
    sched_setaffinity(0, sizeof cs, &cs);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    signal(SIGALRM, on_alarm);
    alarm(10);

    /* Regions. */
    nreg = 2 + (int)R(3);
    int have_thp = 0;
    for (int i = 0; i < nreg; i++) {
        struct region *r = &reg[i];
        r->kind = (int)R(NKIND);
        if (r->kind == K_THP && have_thp) r->kind = K_ANON;
        if (r->kind == K_THP) have_thp = 1;
        static const long sizes[] = { 8, 16, 32, 64 };
        r->pages = r->kind == K_THP ? 1024 : sizes[R(4)];
        r->slot = 2 * r->pages;
        r->fd = -1;
        if (r->kind == K_SHMEM || r->kind == K_MEMPRIV) r->fd = shm_memfd("fuzz", (size_t)r->pages);
        r->base = shm_reserve((size_t)r->slot * UPAGE);
        int rv = map_range(r, 0, r->pages, PROT_READ | PROT_WRITE);
        printf("r%d %s pages %ld slot %ld: %s\n", i, kname[r->kind], r->pages, r->slot, en(-rv));
        if (rv < 0) return 3;
    }
    if (have_thp) thp_khugepaged_settle();

    /* The uffd. */
    features = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
    if (chance(50)) features |= UFFD_FEATURE_EVENT_REMAP;
    if (chance(50)) features |= UFFD_FEATURE_EVENT_REMOVE;
    if (chance(40)) features |= UFFD_FEATURE_EVENT_UNMAP;
    if (chance(30)) features |= UFFD_FEATURE_EXACT_ADDRESS;
    if (chance(40)) features |= UFFD_FEATURE_WP_UNPOPULATED;
    if (chance(20)) features |= UFFD_FEATURE_WP_ASYNC;
    if (chance(8)) features |= UFFD_FEATURE_SIGBUS;
    ufd = uffd_open(O_CLOEXEC | O_NONBLOCK, features);
    printf("uffd features %#llx\n", (unsigned long long)features);
    pm_fd = open("/proc/self/pagemap", O_RDONLY);
    if (pipe(stop_pipe) < 0) return 3;
    pthread_t th;
    hstate = 1;
    if (pthread_create(&th, NULL, handler_main, NULL) != 0) return 3;

    /* Options: "-N" after NOPS disables op class N (see enum op). */
    for (int i = 3; i < argc; i++)
        if (argv[i][0] == '-') disabled[atoi(argv[i] + 1) % NOP] = 1;

    /* Most regions start registered as a whole. */
    for (int i = 0; i < nreg; i++) {
        if (!chance(65)) continue;
        lput("-- ");
        do_register(i, 0, reg[i].pages);
        handler_sync();
        lend();
    }

    for (long k = 0; k < nops; k++) run_op((int)k);

    char c = 0;
    if (write(stop_pipe[1], &c, 1) != 1) printf("stop failed\n");
    pthread_join(th, NULL);
    handler_sync();
    if (have_thp) thp_khugepaged_check();
    printf("end\n");
    return 0;
}
