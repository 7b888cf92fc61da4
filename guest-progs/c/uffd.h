/* uffd.h -- userfaultfd helpers shared by the uffd_*.c guest programs.
 *
 * Header-only (static inline), like pl.h. Every wrapper returns 0 (or a
 * non-negative value) on success and -errno on failure, so transcripts can
 * print uffd_err(-r) without touching errno. Nothing here prints an
 * address: page indexes are relative to a region base (uffd_pidx), and
 * pagemap entries are printed as their flag bits only (no PFN, no swap
 * offset), see uffd_pm_str.
 *
 * The constants that Debian's <linux/userfaultfd.h> (6.1-era) lacks
 * (POISON, MOVE, WP_UNPOPULATED, WP_ASYNC) are defined here with the
 * values of Linux 6.18 (reference section 4.2 and 4.4).
 */
#ifndef PAGELAB_UFFD_H
#define PAGELAB_UFFD_H

#include "pl.h"
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define UPAGE 4096ul

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

/* UFFDIO_POISON and UFFDIO_MOVE (6.6 / 6.8), with their own struct names so
 * a newer system header cannot clash. */
struct pl_uffdio_poison {
    struct uffdio_range range;
    uint64_t mode;
    int64_t updated;
};
struct pl_uffdio_move {
    uint64_t dst, src, len, mode;
    int64_t move;
};
#define PL_UFFDIO_POISON _IOWR(UFFDIO, 0x08, struct pl_uffdio_poison)
#define PL_UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct pl_uffdio_move)
#define PL_UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES 2ull

/* pl_errname plus the errnos userfaultfd adds. */
static inline const char *uffd_err(int e) {
    switch (e) {
    case EAGAIN: return "EAGAIN";
    case ESRCH: return "ESRCH";
    case EBUSY: return "EBUSY";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENOTTY: return "ENOTTY";
    case ENOSPC: return "ENOSPC";
    default: return pl_errname(e);
    }
}

/* A compiler barrier: keeps a plain store to a watched page after the store
 * that tells the handler about it. */
#define uffd_barrier() __asm__ volatile("" ::: "memory")

/* ---- creation and handshake -------------------------------------------- */

/* userfaultfd(2) (x86-64 syscall 323): the fd or -errno. */
static inline int uffd_new(int flags) {
    long r = syscall(323, flags);
    return r < 0 ? -errno : (int)r;
}

/* UFFDIO_API with `features`; the struct the kernel wrote back in *out. */
static inline int uffd_api_raw(int fd, uint64_t api, uint64_t features, struct uffdio_api *out) {
    struct uffdio_api a = { .api = api, .features = features, .ioctls = 0 };
    int r = ioctl(fd, UFFDIO_API, &a) < 0 ? -errno : 0;
    if (out) *out = a;
    return r;
}

static inline int uffd_api(int fd, uint64_t features) {
    return uffd_api_raw(fd, UFFD_API, features, NULL);
}

/* A ready uffd (created with `flags`, handshake done with `features`); any
 * failure exits with status 3 after saying which step failed. */
static inline int uffd_open(int flags, uint64_t features) {
    int fd = uffd_new(flags);
    if (fd < 0) {
        printf("userfaultfd(%#x): %s\n", flags, uffd_err(-fd));
        pl_flush();
        exit(3);
    }
    int r = uffd_api(fd, features);
    if (r < 0) {
        printf("UFFDIO_API(%#lx): %s\n", (unsigned long)features, uffd_err(-r));
        pl_flush();
        exit(3);
    }
    return fd;
}

/* ---- range ioctls --------------------------------------------------------- */

static inline int uffd_register(int fd, void *p, size_t len, uint64_t mode, uint64_t *ioctls) {
    struct uffdio_register r = { .range = { (uintptr_t)p, len }, .mode = mode, .ioctls = 0 };
    int ret = ioctl(fd, UFFDIO_REGISTER, &r) < 0 ? -errno : 0;
    if (ioctls) *ioctls = r.ioctls;
    return ret;
}

static inline int uffd_unregister(int fd, void *p, size_t len) {
    struct uffdio_range r = { (uintptr_t)p, len };
    return ioctl(fd, UFFDIO_UNREGISTER, &r) < 0 ? -errno : 0;
}

static inline int uffd_wake(int fd, void *p, size_t len) {
    struct uffdio_range r = { (uintptr_t)p, len };
    return ioctl(fd, UFFDIO_WAKE, &r) < 0 ? -errno : 0;
}

/* UFFDIO_WRITEPROTECT with a raw mode (UFFDIO_WRITEPROTECT_MODE_WP|DONTWAKE). */
static inline int uffd_wp(int fd, void *p, size_t len, uint64_t mode) {
    struct uffdio_writeprotect w = { .range = { (uintptr_t)p, len }, .mode = mode };
    return ioctl(fd, UFFDIO_WRITEPROTECT, &w) < 0 ? -errno : 0;
}

static inline int uffd_protect(int fd, void *p, size_t len) {
    return uffd_wp(fd, p, len, UFFDIO_WRITEPROTECT_MODE_WP);
}

static inline int uffd_unprotect(int fd, void *p, size_t len) {
    return uffd_wp(fd, p, len, 0);
}

/* UFFDIO_COPY; *copied (if given) receives the `copy` field, which the
 * caller pre-sets to see whether the kernel wrote it. */
static inline int uffd_copy(int fd, void *dst, const void *src, size_t len, uint64_t mode, int64_t *copied) {
    struct uffdio_copy c = { .dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len, .mode = mode,
                             .copy = copied ? *copied : 0 };
    int r = ioctl(fd, UFFDIO_COPY, &c) < 0 ? -errno : 0;
    if (copied) *copied = c.copy;
    return r;
}

static inline int uffd_zeropage(int fd, void *dst, size_t len, uint64_t mode, int64_t *out) {
    struct uffdio_zeropage z = { .range = { (uintptr_t)dst, len }, .mode = mode, .zeropage = out ? *out : 0 };
    int r = ioctl(fd, UFFDIO_ZEROPAGE, &z) < 0 ? -errno : 0;
    if (out) *out = z.zeropage;
    return r;
}

/* ---- messages ------------------------------------------------------------ */

/* Waits up to timeout_ms (-1: forever) for a message on a NON-BLOCKING uffd
 * (poll on a blocking uffd always says POLLERR), then reads exactly one.
 * Returns 1 with *m filled, 0 on timeout, or -errno. */
static inline int uffd_read_msg(int fd, struct uffd_msg *m, int timeout_ms) {
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
        int n = poll(&p, 1, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) return 0;
        ssize_t r = read(fd, m, sizeof *m);
        if (r == (ssize_t)sizeof *m) return 1;
        if (r < 0 && errno == EAGAIN) continue;
        if (r < 0 && errno == EINTR) continue;
        return r < 0 ? -errno : -EIO;
    }
}

/* Whether a message is pending within timeout_ms (poll on a non-blocking uffd). */
static inline int uffd_pending(int fd, int timeout_ms) {
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    int n = poll(&p, 1, timeout_ms);
    return n > 0 && (p.revents & POLLIN);
}

/* Page index of `addr` relative to `base` (negative or huge values mean the
 * address is outside the region; callers print them as such). */
static inline long uffd_pidx(const void *base, uint64_t addr) {
    return (long)((int64_t)(addr - (uintptr_t)base) / (int64_t)UPAGE);
}

static inline const char *uffd_event_name(unsigned ev) {
    switch (ev) {
    case UFFD_EVENT_PAGEFAULT: return "PAGEFAULT";
    case UFFD_EVENT_FORK: return "FORK";
    case UFFD_EVENT_REMAP: return "REMAP";
    case UFFD_EVENT_REMOVE: return "REMOVE";
    case UFFD_EVENT_UNMAP: return "UNMAP";
    default: return "EVENT?";
    }
}

/* One line describing a message, addresses as page indexes relative to
 * `base`: "PAGEFAULT flags 0x3 page 5", "REMOVE pages 2..4", "REMAP from 0
 * to 16 len 4" (all in pages relative to base), "FORK ufd valid". */
static inline void uffd_msg_str(const struct uffd_msg *m, const void *base, char *buf, size_t n) {
    switch (m->event) {
    case UFFD_EVENT_PAGEFAULT:
        snprintf(buf, n, "PAGEFAULT flags %#llx page %ld off %llu", (unsigned long long)m->arg.pagefault.flags,
                 uffd_pidx(base, m->arg.pagefault.address),
                 (unsigned long long)(m->arg.pagefault.address % UPAGE));
        break;
    case UFFD_EVENT_FORK:
        snprintf(buf, n, "FORK ufd %s", fcntl((int)m->arg.fork.ufd, F_GETFD) >= 0 ? "valid" : "invalid");
        break;
    case UFFD_EVENT_REMAP:
        snprintf(buf, n, "REMAP from %ld to %ld len %llu", uffd_pidx(base, m->arg.remap.from),
                 uffd_pidx(base, m->arg.remap.to), (unsigned long long)(m->arg.remap.len / UPAGE));
        break;
    case UFFD_EVENT_REMOVE:
    case UFFD_EVENT_UNMAP:
        snprintf(buf, n, "%s pages %ld..%ld", uffd_event_name(m->event), uffd_pidx(base, m->arg.remove.start),
                 uffd_pidx(base, m->arg.remove.end));
        break;
    default:
        snprintf(buf, n, "event %#x", m->event);
    }
}

/* ---- /proc/self/pagemap -------------------------------------------------- */

#define PM_PRESENT (1ull << 63)
#define PM_SWAP (1ull << 62)
#define PM_FILE (1ull << 61)
#define PM_UFFD_WP (1ull << 57)
#define PM_EXCL (1ull << 56)

/* The pagemap entry of the page at `p` in process `pid` (0: self). */
static inline uint64_t uffd_pagemap_pid(int pid, const void *p) {
    char path[64];
    if (pid) snprintf(path, sizeof path, "/proc/%d/pagemap", pid);
    else snprintf(path, sizeof path, "/proc/self/pagemap");
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ~0ull;
    uint64_t e = 0;
    ssize_t r = pread(fd, &e, 8, (off_t)((uintptr_t)p / UPAGE * 8));
    close(fd);
    return r == 8 ? e : ~0ull;
}

static inline uint64_t uffd_pagemap(const void *p) {
    return uffd_pagemap_pid(0, p);
}

/* The flag bits of a pagemap entry, never the PFN or swap slot:
 * "present wp excl", "swap wp", "none", ... */
static inline const char *uffd_pm_str(uint64_t e, char *buf, size_t n) {
    if (e == ~0ull) {
        snprintf(buf, n, "unreadable");
        return buf;
    }
    snprintf(buf, n, "%s%s%s%s%s", e & PM_PRESENT ? "present" : e & PM_SWAP ? "swap" : "none",
             (e & PM_PRESENT) && (e & PM_SWAP) ? "+swap?" : "", e & PM_FILE ? " file" : "",
             e & PM_UFFD_WP ? " wp" : "", e & PM_EXCL ? " excl" : "");
    return buf;
}

/* Prints "<what>: <pagemap flags of p>". */
static inline void uffd_pm_line(const char *what, const void *p) {
    char b[64];
    printf("%s: %s\n", what, uffd_pm_str(uffd_pagemap(p), b, sizeof b));
}

/* Bit 57 of the page at p: 1, 0, or -1 if pagemap is unreadable. */
static inline int uffd_pm_wp(const void *p) {
    uint64_t e = uffd_pagemap(p);
    return e == ~0ull ? -1 : !!(e & PM_UFFD_WP);
}

/* ---- a handler thread skeleton --------------------------------------------
 *
 * uffd_handler_start runs `fn(h, msg)` for every message read from h->fd (a
 * NON-BLOCKING uffd) until uffd_handler_stop. The stop request goes through a
 * pipe polled together with the uffd, so no timeout decides anything.
 */
struct uffd_handler;
typedef void (*uffd_msg_fn)(struct uffd_handler *h, const struct uffd_msg *m);

struct uffd_handler {
    int fd;
    void *base;
    uffd_msg_fn fn;
    void *arg;
    int stop_pipe[2];
    volatile long nmsgs;
    pthread_t thread;
};

static inline void *uffd_handler_main(void *v) {
    struct uffd_handler *h = v;
    for (;;) {
        struct pollfd p[2] = { { h->fd, POLLIN, 0 }, { h->stop_pipe[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            printf("handler: poll %s\n", uffd_err(errno));
            break;
        }
        if (p[0].revents & POLLIN) {
            struct uffd_msg m;
            ssize_t r = read(h->fd, &m, sizeof m);
            if (r == (ssize_t)sizeof m) {
                h->nmsgs++;
                h->fn(h, &m);
                continue;
            }
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            printf("handler: read %zd %s\n", r, r < 0 ? uffd_err(errno) : "");
            break;
        }
        if (p[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            printf("handler: uffd revents %#x\n", p[0].revents);
            break;
        }
        if (p[1].revents) break;
    }
    return NULL;
}

static inline void uffd_handler_start(struct uffd_handler *h, int fd, void *base, uffd_msg_fn fn, void *arg) {
    h->fd = fd;
    h->base = base;
    h->fn = fn;
    h->arg = arg;
    h->nmsgs = 0;
    if (pipe(h->stop_pipe) < 0 || pthread_create(&h->thread, NULL, uffd_handler_main, h) != 0) {
        printf("handler: cannot start\n");
        pl_flush();
        exit(3);
    }
}

static inline void uffd_handler_stop(struct uffd_handler *h) {
    char c = 0;
    if (write(h->stop_pipe[1], &c, 1) != 1) printf("handler: stop write failed\n");
    pthread_join(h->thread, NULL);
    close(h->stop_pipe[0]);
    close(h->stop_pipe[1]);
}

/* An anonymous private RW mapping of n pages, or exit(3). */
static inline char *uffd_map(size_t pages) {
    void *p = mmap(NULL, pages * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap failed: %s\n", uffd_err(errno));
        pl_flush();
        exit(3);
    }
    return p;
}

/* Busy-free wait for *flag to become nonzero, sleeping 1 ms per check, at most
 * `ms` milliseconds; returns the final value. */
static inline int uffd_wait_flag(volatile int *flag, int ms) {
    for (int i = 0; i < ms && !__atomic_load_n(flag, __ATOMIC_ACQUIRE); i++) usleep(1000);
    return __atomic_load_n(flag, __ATOMIC_ACQUIRE);
}

#endif
