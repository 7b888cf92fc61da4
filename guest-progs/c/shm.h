/* shm.h -- helpers shared by the shm_*.c guest programs (issue 9: shmem,
 * memfd, file-backed memory, PTE markers, MINOR faults).
 *
 * Header-only (static inline) on top of uffd.h; the same conventions: -errno
 * returns, page indexes relative to a region, pagemap flags only.
 *
 * Regions are placed at an address aligned to SHM_ALIGN (2 MiB) inside a
 * PROT_NONE reservation, so fault-around windows (64 KiB, aligned by virtual
 * address) and page-table boundaries fall on the same page indexes in every
 * run, natively and under pagelab.
 */
#ifndef PAGELAB_SHM_H
#define PAGELAB_SHM_H

#include "uffd.h"
#include <signal.h>
#include <setjmp.h>
#include <sys/stat.h>

#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((uint64_t)1 << 1)
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#define MFD_EXEC 0x0010U
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

#define SHM_ALIGN (2ul << 20)

/* memfd_create(2) (x86-64 syscall 319): the fd or -errno. */
static inline int shm_memfd_raw(const char *name, unsigned flags) {
    long r = syscall(319, name, flags);
    return r < 0 ? -errno : (int)r;
}

/* A memfd of `pages` pages (ftruncate'd, no page allocated), or exit(3). */
static inline int shm_memfd(const char *name, size_t pages) {
    int fd = shm_memfd_raw(name, MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)(pages * UPAGE)) < 0) {
        printf("memfd %s: %s\n", name, uffd_err(fd < 0 ? -fd : errno));
        pl_flush();
        exit(3);
    }
    return fd;
}

/* Reserves 2 * SHM_ALIGN + len bytes PROT_NONE and returns an address
 * aligned to SHM_ALIGN inside it, followed by at least SHM_ALIGN of the
 * reservation (so a fixed mapping there has PROT_NONE neighbours and never
 * merges with anything else). */
static inline char *shm_reserve(size_t len) {
    size_t total = len + 2 * SHM_ALIGN;
    char *p = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        printf("reserve failed: %s\n", uffd_err(errno));
        pl_flush();
        exit(3);
    }
    return (char *)(((uintptr_t)p + SHM_ALIGN - 1) & ~(SHM_ALIGN - 1));
}

/* mmap(fd, off) of `pages` RW pages with `flags` (MAP_SHARED, MAP_PRIVATE,
 * ... ; MAP_FIXED is added) at a fresh SHM_ALIGN-aligned address, or exit(3). */
static inline char *shm_map_prot(int fd, size_t pages, int prot, int flags, off_t off) {
    char *at = shm_reserve(pages * UPAGE);
    void *p = mmap(at, pages * UPAGE, prot, flags | MAP_FIXED, fd, off);
    if (p == MAP_FAILED) {
        printf("mmap failed: %s\n", uffd_err(errno));
        pl_flush();
        exit(3);
    }
    return p;
}

static inline char *shm_map(int fd, size_t pages, int flags) {
    return shm_map_prot(fd, pages, PROT_READ | PROT_WRITE, flags, 0);
}

/* MAP_SHARED|MAP_ANONYMOUS of `pages` pages, aligned like shm_map. */
static inline char *shm_map_anon_shared(size_t pages) {
    return shm_map(-1, pages, MAP_SHARED | MAP_ANONYMOUS);
}

/* Private anonymous, aligned like shm_map. */
static inline char *shm_map_anon(size_t pages) {
    return shm_map(-1, pages, MAP_PRIVATE | MAP_ANONYMOUS);
}

/* One character per page of [p, p + pages): the pagemap state.
 *   '.' none   'P' present   'W' present+wp   'M' swap-style+wp (uffd-wp marker)
 *   'S' swap-style without wp (poison marker, swap)   '?' unreadable
 * Lower case 'p'/'w' for present pages that are not file/shmem (anonymous). */
static inline const char *shm_pm_row(const char *p, size_t pages, char *buf) {
    size_t i;
    for (i = 0; i < pages; i++) {
        uint64_t e = uffd_pagemap(p + i * UPAGE);
        char c;
        if (e == ~0ull) c = '?';
        else if (e & PM_PRESENT) {
            int wp = !!(e & PM_UFFD_WP);
            c = (e & PM_FILE) ? (wp ? 'W' : 'P') : (wp ? 'w' : 'p');
        } else if (e & PM_SWAP) c = (e & PM_UFFD_WP) ? 'M' : 'S';
        else c = (e & PM_UFFD_WP) ? '!' : '.';
        buf[i] = c;
    }
    buf[i] = 0;
    return buf;
}

/* Prints "<what>: <row>" for pages [0, pages) of p. */
static inline void shm_pm_print(const char *what, const char *p, size_t pages) {
    char b[1024];
    if (pages > sizeof b - 1) pages = sizeof b - 1;
    printf("%s: %s\n", what, shm_pm_row(p, pages, b));
}

/* Prints "<what> page <i>: <pagemap flags>" for one page (uffd_pm_str). */
static inline void shm_pm_page(const char *what, const char *base, long i) {
    char b[64], w[96];
    snprintf(w, sizeof w, "%s page %ld", what, i);
    printf("%s: %s\n", w, uffd_pm_str(uffd_pagemap(base + i * UPAGE), b, sizeof b));
}

/* UFFDIO_CONTINUE; *mapped (if given) pre-set by the caller, receives `mapped`. */
static inline int uffd_continue(int fd, void *p, size_t len, uint64_t mode, int64_t *mapped) {
    struct uffdio_continue c = { .range = { (uintptr_t)p, len }, .mode = mode, .mapped = mapped ? *mapped : 0 };
    int r = ioctl(fd, UFFDIO_CONTINUE, &c) < 0 ? -errno : 0;
    if (mapped) *mapped = c.mapped;
    return r;
}

/* UFFDIO_POISON; *updated (if given) pre-set by the caller. */
static inline int uffd_poison(int fd, void *p, size_t len, uint64_t mode, int64_t *updated) {
    struct pl_uffdio_poison c = { .range = { (uintptr_t)p, len }, .mode = mode, .updated = updated ? *updated : 0 };
    int r = ioctl(fd, PL_UFFDIO_POISON, &c) < 0 ? -errno : 0;
    if (updated) *updated = c.updated;
    return r;
}

/* uffd_err plus the errnos of files and seals. */
static inline const char *shm_err(int e) {
    switch (e) {
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOTEMPTY: return "ENOTEMPTY";
    case EISDIR: return "EISDIR";
    case ENOTDIR: return "ENOTDIR";
    case EFBIG: return "EFBIG";
    case ESPIPE: return "ESPIPE";
    case ENXIO: return "ENXIO";
    case ETXTBSY: return "ETXTBSY";
    case EROFS: return "EROFS";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENODEV: return "ENODEV";
    case EXDEV: return "EXDEV";
    default: return uffd_err(e);
    }
}

/* Prints "<what>: <r>" for a libc call's result r >= 0, or "<what>: <errno
 * name>" for r < 0 (read from errno). */
static inline void shm_row(const char *what, long r) {
    if (r < 0) printf("%s: %s\n", what, shm_err(errno));
    else printf("%s: %ld\n", what, r);
}

/* ---- one access in its own thread ------------------------------------------
 * The faulting thread never prints: the main thread prints after joining it
 * (or after seeing `done` still clear while the thread is blocked). */
struct shm_access {
    volatile char *p;
    int write;
    char val;
    char seen;
    volatile int done;
    pthread_t t;
};

static inline void *shm_access_main(void *v) {
    struct shm_access *a = v;
    if (a->write) *a->p = a->val;
    else a->seen = *a->p;
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static inline void shm_access_start(struct shm_access *a, char *p, int write, char val) {
    a->p = p;
    a->write = write;
    a->val = val;
    a->seen = 0;
    a->done = 0;
    if (pthread_create(&a->t, NULL, shm_access_main, a) != 0) {
        printf("pthread_create failed\n");
        pl_flush();
        exit(3);
    }
}

static inline void shm_access_join(struct shm_access *a) {
    pthread_join(a->t, NULL);
}

/* Reads one message on the non-blocking uffd `fd` (waiting as long as needed)
 * and prints "<what>: <message>" with pages relative to base. Returns the
 * message's pagefault flags (or -1). */
static inline long shm_expect_msg(int fd, const void *base, const char *what, struct uffd_msg *out) {
    struct uffd_msg m;
    char b[128];
    int got = uffd_read_msg(fd, &m, -1);
    if (got == 1) uffd_msg_str(&m, base, b, sizeof b);
    printf("%s: %s\n", what, got == 1 ? b : "no message");
    if (out && got == 1) *out = m;
    return got == 1 && m.event == UFFD_EVENT_PAGEFAULT ? (long)m.arg.pagefault.flags : -1;
}

/* ---- a guarded access: which signal (with si_code) it raised, if any ----- */
static sigjmp_buf shm_jb;
static volatile int shm_sig, shm_code;
static volatile long shm_sig_page, shm_sig_off;
static const char *volatile shm_sig_base;

static inline void shm_on_sig(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    shm_sig = sig;
    shm_code = si->si_code;
    shm_sig_page = shm_sig_base ? uffd_pidx(shm_sig_base, (uintptr_t)si->si_addr) : -1;
    shm_sig_off = (long)((uintptr_t)si->si_addr % UPAGE);
    siglongjmp(shm_jb, 1);
}

static inline void shm_catch(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = shm_on_sig;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(sig, &sa, NULL);
}

static inline const char *shm_signame(int s) {
    switch (s) {
    case SIGBUS: return "SIGBUS";
    case SIGSEGV: return "SIGSEGV";
    default: return "signal?";
    }
}

/* Reads (write == 0) or writes the byte at base + off and prints
 * "<what>: ok <byte>" ('0' for a zero byte) or "<what>: SIGBUS code <n> page <i>
 * off <o>" with si_addr as a page index relative to base and offset in the page. SIGBUS and SIGSEGV
 * must be caught (shm_catch) first. */
static inline void shm_probe(const char *what, char *base, size_t off, int write, char val) {
    shm_sig = 0;
    shm_sig_base = base;
    if (sigsetjmp(shm_jb, 1) == 0) {
        char got;
        if (write) {
            *(volatile char *)(base + off) = val;
            got = val;
        } else got = *(volatile char *)(base + off);
        printf("%s: ok %c\n", what, got ? got : '0');
    } else {
        printf("%s: %s code %d page %ld off %ld\n", what, shm_signame(shm_sig), shm_code, shm_sig_page, shm_sig_off);
    }
    shm_sig_base = NULL;
}

#endif
