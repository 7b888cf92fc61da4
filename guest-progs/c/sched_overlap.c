// pagelab: cflags=-pthread
// sched_overlap: threads that should run at the same time on different vCPUs.
// usage: sched_overlap uffd N     a handler thread (poll + read + UFFDIO_COPY) answers the
//                                 MISSING faults of a worker that reads N fresh pages one
//                                 after another: one round trip per page
//        sched_overlap spawn N    the main thread starts a CPU-bound thread and computes
//                                 too (N iterations each), then joins it
//        sched_overlap timer N    a thread sleeps 100 us N times while the main thread
//                                 spins until it is done
//        sched_overlap causal N   a writer passes N CLOCK_MONOTONIC readings to a reader,
//                                 through a pipe and through a futex-guarded word; the
//                                 reader counts readings later than its own clock after
//                                 receiving them (time running backwards across threads)
// The transcript is the mode, N and check values, the same on every interleaving; the
// tests read the vCPUs and virtual times of a pagelab run from its trace.
#define _GNU_SOURCE
#include "uffd.h"
#include <linux/futex.h>
#include <stdatomic.h>
#include <time.h>

static char *src_page;

static void copy_handler(struct uffd_handler *h, const struct uffd_msg *m) {
    if (m->event != UFFD_EVENT_PAGEFAULT) {
        printf("handler: unexpected event %s\n", uffd_event_name(m->event));
        return;
    }
    uint64_t addr = m->arg.pagefault.address & ~(UPAGE - 1);
    long idx = uffd_pidx(h->base, addr);
    memset(src_page, (int)(idx & 0xff), UPAGE);
    int64_t copied = 0;
    int r = uffd_copy(h->fd, (void *)addr, src_page, UPAGE, 0, &copied);
    if (r < 0) printf("handler: copy of page %ld: %s\n", idx, uffd_err(-r));
}

static int mode_uffd(long n) {
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    if (fd < 0) {
        printf("userfaultfd: %s\n", uffd_err(-fd));
        return 1;
    }
    char *p = uffd_map((size_t)n);
    src_page = uffd_map(1);
    int r = uffd_register(fd, p, (size_t)n * UPAGE, UFFDIO_REGISTER_MODE_MISSING, NULL);
    if (r < 0) {
        printf("register: %s\n", uffd_err(-r));
        return 1;
    }
    struct uffd_handler h;
    uffd_handler_start(&h, fd, p, copy_handler, NULL);
    uint64_t sum = 0;
    for (long i = 0; i < n; i++) sum += (unsigned char)p[i * UPAGE + 7];
    uffd_handler_stop(&h);
    printf("uffd ping-pong %ld pages: %ld messages, sum %lu\n", n, h.nmsgs, (unsigned long)sum);
    close(fd);
    return 0;
}

static long iterations;

static uint64_t spin(uint64_t seed) {
    uint64_t x = seed;
    for (long i = 0; i < iterations; i++) x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

static void *spinner(void *arg) {
    *(uint64_t *)arg = spin(*(uint64_t *)arg);
    return NULL;
}

static int mode_spawn(long n) {
    iterations = n;
    uint64_t theirs = 1;
    pthread_t t;
    pthread_create(&t, NULL, spinner, &theirs);
    uint64_t mine = spin(2);
    pthread_join(t, NULL);
    printf("spawn %ld: %016lx %016lx\n", n, (unsigned long)mine, (unsigned long)theirs);
    return 0;
}

static _Atomic int sleeps_done;

static void *sleeper(void *arg) {
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        struct timespec ts = { 0, 100000 };
        nanosleep(&ts, NULL);
    }
    atomic_store(&sleeps_done, 1);
    return NULL;
}

static int mode_timer(long n) {
    pthread_t t;
    pthread_create(&t, NULL, sleeper, &n);
    uint64_t x = 1;
    while (!atomic_load(&sleeps_done)) x = x * 6364136223846793005ull + 1;
    pthread_join(t, NULL);
    printf("timer %ld: sleeps done%s\n", n, x ? "" : " ");
    return 0;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int pipefd[2];
static _Atomic uint32_t word_seq; /* futex word: readings published so far */
static _Atomic uint64_t word_val;
static _Atomic uint32_t word_ack;
static long rounds;

static void fwait(_Atomic uint32_t *w, uint32_t v) {
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}
static void fwake(_Atomic uint32_t *w) {
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *writer(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) {
        uint64_t t = now_ns();
        if (write(pipefd[1], &t, sizeof t) != sizeof t) printf("writer: pipe write failed\n");
    }
    for (uint32_t i = 1; i <= (uint32_t)rounds; i++) {
        atomic_store(&word_val, now_ns());
        atomic_store(&word_seq, i);
        fwake(&word_seq);
        while (atomic_load(&word_ack) != i) fwait(&word_ack, i - 1);
    }
    return NULL;
}

static int mode_causal(long n) {
    rounds = n;
    if (pipe(pipefd) < 0) return 1;
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    long pipe_late = 0, futex_late = 0;
    for (long i = 0; i < n; i++) {
        uint64_t sent;
        if (read(pipefd[0], &sent, sizeof sent) != sizeof sent) {
            printf("reader: pipe read failed\n");
            return 1;
        }
        if (now_ns() < sent) pipe_late++;
    }
    for (uint32_t i = 1; i <= (uint32_t)n; i++) {
        while (atomic_load(&word_seq) != i) fwait(&word_seq, i - 1);
        uint64_t sent = atomic_load(&word_val);
        if (now_ns() < sent) futex_late++;
        atomic_store(&word_ack, i);
        fwake(&word_ack);
    }
    pthread_join(t, NULL);
    printf("causal %ld: pipe readings from the future %ld, futex readings from the future %ld\n", n, pipe_late, futex_late);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "uffd";
    long n = pl_arg_long(argc, argv, 2, 64);
    if (strcmp(mode, "uffd") == 0) return mode_uffd(n);
    if (strcmp(mode, "spawn") == 0) return mode_spawn(n);
    if (strcmp(mode, "causal") == 0) return mode_causal(n);
    if (strcmp(mode, "timer") == 0) return mode_timer(n);
    printf("unknown mode %s\n", mode);
    return 2;
}
