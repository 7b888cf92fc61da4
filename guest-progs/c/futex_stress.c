// pagelab: cflags=-pthread
// futex_stress: pthread mutex/condvar/barrier/rwlock/semaphore traffic between threads
// (deterministic totals whatever the interleaving), then raw futex(2) calls: WAIT/WAKE,
// BITSET, REQUEUE, CMP_REQUEUE, WAKE_OP, private vs shared keys, timeouts and the errno
// of each bad argument.
// usage: futex_stress [ITERS]   (per-thread iterations, default 20000)
#define _GNU_SOURCE
#include "pl.h"
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define NT 4
static long iters;

static long fx(void *u, int op, unsigned val, long t, void *u2, unsigned v3) {
    long r = syscall(SYS_futex, u, op, val, t, u2, v3);
    return r < 0 ? -errno : r;
}
static const char *err(long r) {
    static char buf[24];
    if (r >= 0) {
        snprintf(buf, sizeof buf, "%ld", r);
        return buf;
    }
    switch (-r) {
    case EAGAIN: return "EAGAIN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINTR: return "EINTR";
    default: return pl_errname((int)-r);
    }
}

/* --- mutex + condvar: a counter and a bounded queue ------------------------------ */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;
static long counter;
static long queue[8];
static int qhead, qlen;
static long consumed_sum, consumed_n;

static void *hammer(void *arg) {
    long id = (long)arg;
    for (long i = 0; i < iters; i++) {
        pthread_mutex_lock(&mu);
        counter += id + 1;
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static void *producer(void *arg) {
    long id = (long)arg;
    for (long i = 0; i < iters / 4; i++) {
        pthread_mutex_lock(&mu);
        while (qlen == 8) pthread_cond_wait(&not_full, &mu);
        queue[(qhead + qlen++) % 8] = id * 1000000 + i;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

static void *consumer(void *arg) {
    long n = (long)arg;
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&mu);
        while (qlen == 0) pthread_cond_wait(&not_empty, &mu);
        long v = queue[qhead];
        qhead = (qhead + 1) % 8;
        qlen--;
        consumed_sum += v;
        consumed_n++;
        pthread_cond_broadcast(&not_full);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

/* --- barrier -------------------------------------------------------------------- */
static pthread_barrier_t bar;
static long slots[NT];
static atomic_long barrier_errors, serial_count;

static void *barrier_worker(void *arg) {
    long id = (long)arg;
    for (long round = 0; round < 200; round++) {
        slots[id] = round * 10 + id;
        if (pthread_barrier_wait(&bar) == PTHREAD_BARRIER_SERIAL_THREAD) atomic_fetch_add(&serial_count, 1);
        long s = 0;
        for (int j = 0; j < NT; j++) s += slots[j];
        if (s != round * 10 * NT + NT * (NT - 1) / 2) atomic_fetch_add(&barrier_errors, 1);
        pthread_barrier_wait(&bar);
    }
    return NULL;
}

/* --- rwlock: writers keep a == b, readers check it ------------------------------- */
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static long ra, rb;
static atomic_long torn;
static void *rw_worker(void *arg) {
    long id = (long)arg;
    for (long i = 0; i < iters / 8; i++) {
        if ((i + id) % 4 == 0) {
            pthread_rwlock_wrlock(&rw);
            ra++;
            rb++;
            pthread_rwlock_unlock(&rw);
        } else {
            pthread_rwlock_rdlock(&rw);
            if (ra != rb) atomic_fetch_add(&torn, 1);
            pthread_rwlock_unlock(&rw);
        }
    }
    return NULL;
}

/* --- semaphores: a token ring --------------------------------------------------- */
static sem_t ring[NT];
static long ring_log[NT];
static void *ring_worker(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 100; i++) {
        sem_wait(&ring[id]);
        ring_log[id] += i;
        sem_post(&ring[(id + 1) % NT]);
    }
    return NULL;
}

/* --- raw futex helpers ---------------------------------------------------------- */
struct waiter {
    unsigned *word;
    int op;
    unsigned bitset;
    long result;
    atomic_int done;
};
static void *raw_wait(void *arg) {
    struct waiter *w = arg;
    w->result = fx(w->word, w->op, 0, 0, NULL, w->bitset);
    atomic_store(&w->done, 1);
    return NULL;
}
/* How many threads wait on `word` (private): requeueing a futex onto itself moves no one
 * and returns the number of waiters. */
static long nwaiters(unsigned *word, int priv) {
    return fx(word, FUTEX_REQUEUE | priv, 0, INT_MAX, word, 0);
}
static void until_waiting(unsigned *word, int priv, long n) {
    while (nwaiters(word, priv) != n) usleep(100);
}

static unsigned f1, f2, f3;

static void abs_in(struct timespec *t, clockid_t c, long ns) {
    clock_gettime(c, t);
    t->tv_nsec += ns;
    while (t->tv_nsec >= 1000000000) {
        t->tv_nsec -= 1000000000;
        t->tv_sec++;
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    iters = pl_arg_long(argc, argv, 1, 20000);
    pthread_t t[2 * NT];

    for (long i = 0; i < NT; i++) pthread_create(&t[i], NULL, hammer, (void *)i);
    for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
    printf("mutex counter: %ld (expected %ld)\n", counter, iters * (NT * (NT + 1) / 2));

    long per_consumer = (iters / 4) * 3 / 3;
    for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, producer, (void *)i);
    for (long i = 0; i < 3; i++) pthread_create(&t[3 + i], NULL, consumer, (void *)per_consumer);
    for (int i = 0; i < 6; i++) pthread_join(t[i], NULL);
    printf("condvar queue: consumed %ld items, sum %ld\n", consumed_n, consumed_sum);

    pthread_barrier_init(&bar, NULL, NT);
    for (long i = 0; i < NT; i++) pthread_create(&t[i], NULL, barrier_worker, (void *)i);
    for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
    printf("barrier: 200 rounds, %ld errors, %ld serial threads\n", atomic_load(&barrier_errors), atomic_load(&serial_count));

    for (long i = 0; i < NT; i++) pthread_create(&t[i], NULL, rw_worker, (void *)i);
    for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
    printf("rwlock: %ld writes, %ld torn reads\n", ra, atomic_load(&torn));

    for (int i = 0; i < NT; i++) sem_init(&ring[i], 0, i == 0);
    for (long i = 0; i < NT; i++) pthread_create(&t[i], NULL, ring_worker, (void *)i);
    for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
    int v;
    sem_getvalue(&ring[0], &v);
    printf("semaphore ring: logs %ld %ld %ld %ld, token back at 0: %d\n", ring_log[0], ring_log[1], ring_log[2], ring_log[3], v);

    /* Raw futex: wake counts with waiters in place. */
    const int P = FUTEX_PRIVATE_FLAG;
    struct waiter w[4];
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){&f1, FUTEX_WAIT | P, FUTEX_BITSET_MATCH_ANY, 99, 0};
        pthread_create(&t[i], NULL, raw_wait, &w[i]);
    }
    until_waiting(&f1, P, 3);
    printf("waiters on f1: %ld\n", nwaiters(&f1, P));
    printf("CMP_REQUEUE f1->f2 (wake 1, requeue 1, val3 mismatch): %s\n", err(fx(&f1, FUTEX_CMP_REQUEUE | P, 1, 1, &f2, 1)));
    printf("CMP_REQUEUE f1->f2 (wake 1, requeue 1): %s\n", err(fx(&f1, FUTEX_CMP_REQUEUE | P, 1, 1, &f2, 0)));
    printf("waiters: f1 %ld f2 %ld\n", nwaiters(&f1, P), nwaiters(&f2, P));
    printf("REQUEUE f1->f2 (wake 0, requeue all): %s\n", err(fx(&f1, FUTEX_REQUEUE | P, 0, INT_MAX, &f2, 0)));
    printf("waiters: f1 %ld f2 %ld\n", nwaiters(&f1, P), nwaiters(&f2, P));
    printf("WAKE f1: %s\n", err(fx(&f1, FUTEX_WAKE | P, INT_MAX, 0, NULL, 0)));
    printf("WAKE f2 (nr 0 wakes one): %s\n", err(fx(&f2, FUTEX_WAKE | P, 0, 0, NULL, 0)));
    printf("WAKE f2 (shared key, private waiter): %s\n", err(fx(&f2, FUTEX_WAKE, 1, 0, NULL, 0)));
    printf("WAKE f2: %s\n", err(fx(&f2, FUTEX_WAKE | P, 1, 0, NULL, 0)));
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    printf("waiters returned: %s %s %s\n", err(w[0].result), err(w[1].result), err(w[2].result));

    /* BITSET: only matching waiters wake. */
    w[0] = (struct waiter){&f3, FUTEX_WAIT_BITSET | P, 1, 99, 0};
    w[1] = (struct waiter){&f3, FUTEX_WAIT_BITSET | P, 2, 99, 0};
    w[2] = (struct waiter){&f3, FUTEX_WAIT_BITSET | P, 6, 99, 0};
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, raw_wait, &w[i]);
    until_waiting(&f3, P, 3);
    printf("WAKE_BITSET 2: %s\n", err(fx(&f3, FUTEX_WAKE_BITSET | P, INT_MAX, 0, NULL, 2)));
    printf("WAKE_BITSET 8: %s\n", err(fx(&f3, FUTEX_WAKE_BITSET | P, INT_MAX, 0, NULL, 8)));
    printf("WAKE_BITSET 1: %s\n", err(fx(&f3, FUTEX_WAKE_BITSET | P, INT_MAX, 0, NULL, 1)));
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    printf("bitset waiters woken: %d %d %d\n", w[0].done, w[1].done, w[2].done);

    /* WAKE_OP: op on *uaddr2, wake uaddr, conditionally uaddr2. */
    f1 = 0;
    f2 = 0;
    w[0] = (struct waiter){&f1, FUTEX_WAIT | P, 0, 99, 0};
    w[1] = (struct waiter){&f2, FUTEX_WAIT | P, 0, 99, 0};
    pthread_create(&t[0], NULL, raw_wait, &w[0]);
    pthread_create(&t[1], NULL, raw_wait, &w[1]);
    until_waiting(&f1, P, 1);
    until_waiting(&f2, P, 1);
    /* ADD 5 to f2, wake f2 if old value != 0: wakes f1's waiter only. */
    printf("WAKE_OP add 5, cmp ne 0: %s", err(fx(&f1, FUTEX_WAKE_OP | P, 1, 1, &f2, FUTEX_OP(FUTEX_OP_ADD, 5, FUTEX_OP_CMP_NE, 0))));
    printf(" f2=%u\n", f2);
    /* SET 7 with old value 5 > 4: wakes f2's waiter too (f1 has none left). */
    printf("WAKE_OP set 7, cmp gt 4: %s", err(fx(&f1, FUTEX_WAKE_OP | P, 1, 1, &f2, FUTEX_OP(FUTEX_OP_SET, 7, FUTEX_OP_CMP_GT, 4))));
    printf(" f2=%u\n", f2);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    printf("WAKE_OP waiters returned: %s %s\n", err(w[0].result), err(w[1].result));
    struct { int op, oparg, cmp, cmparg; } ops[] = {
        {FUTEX_OP_OR, 0x30, FUTEX_OP_CMP_EQ, 7},    {FUTEX_OP_ANDN, 0x10, FUTEX_OP_CMP_LT, 0},
        {FUTEX_OP_XOR, 0xff, FUTEX_OP_CMP_GE, 0x27}, {FUTEX_OP_ADD, -1, FUTEX_OP_CMP_LE, 0},
        {FUTEX_OP_SET | FUTEX_OP_OPARG_SHIFT, 4, FUTEX_OP_CMP_EQ, 0}, {FUTEX_OP_SET | FUTEX_OP_OPARG_SHIFT, 40, FUTEX_OP_CMP_EQ, 0},
        {FUTEX_OP_SET, -2048, FUTEX_OP_CMP_NE, 0}, {6, 1, FUTEX_OP_CMP_EQ, 0}, {FUTEX_OP_ADD, 1, 9, 0},
    };
    f2 = 7;
    for (unsigned i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        unsigned enc = ((ops[i].op & 0xf) << 28) | ((ops[i].cmp & 0xf) << 24) | ((ops[i].oparg & 0xfff) << 12) | (ops[i].cmparg & 0xfff);
        long r = fx(&f1, FUTEX_WAKE_OP | P, 1, 1, &f2, enc);
        printf("WAKE_OP op %d oparg %d cmp %d: %s f2=%#x\n", ops[i].op, ops[i].oparg, ops[i].cmp, err(r), f2);
    }

    /* Private and shared keys are different futexes. */
    f3 = 0;
    w[0] = (struct waiter){&f3, FUTEX_WAIT, 0, 99, 0};
    pthread_create(&t[0], NULL, raw_wait, &w[0]);
    until_waiting(&f3, 0, 1);
    printf("shared waiter: private wake %s, shared wake ", err(fx(&f3, FUTEX_WAKE | P, 1, 0, NULL, 0)));
    printf("%s\n", err(fx(&f3, FUTEX_WAKE, 1, 0, NULL, 0)));
    pthread_join(t[0], NULL);
    /* MAP_SHARED memory gives a shared key too. */
    unsigned *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    w[0] = (struct waiter){sh, FUTEX_WAIT, 0, 99, 0};
    pthread_create(&t[0], NULL, raw_wait, &w[0]);
    until_waiting(sh, 0, 1);
    printf("MAP_SHARED waiter: shared wake %s\n", err(fx(sh, FUTEX_WAKE, 1, 0, NULL, 0)));
    pthread_join(t[0], NULL);

    /* Timeouts: FUTEX_WAIT relative, WAIT_BITSET absolute on MONOTONIC or REALTIME. */
    struct timespec rel = {0, 2000000}, abs;
    f1 = 0;
    printf("WAIT 2ms: %s\n", err(fx(&f1, FUTEX_WAIT | P, 0, (long)&rel, NULL, 0)));
    abs_in(&abs, CLOCK_MONOTONIC, 3000000);
    printf("WAIT_BITSET abs MONOTONIC +3ms: %s\n", err(fx(&f1, FUTEX_WAIT_BITSET | P, 0, (long)&abs, NULL, ~0u)));
    abs_in(&abs, CLOCK_REALTIME, 3000000);
    printf("WAIT_BITSET|CLOCK_REALTIME abs +3ms: %s\n", err(fx(&f1, FUTEX_WAIT_BITSET | P | FUTEX_CLOCK_REALTIME, 0, (long)&abs, NULL, ~0u)));
    struct timespec zero = {0, 0};
    printf("WAIT_BITSET abs 0: %s\n", err(fx(&f1, FUTEX_WAIT_BITSET | P, 0, (long)&zero, NULL, ~0u)));
    printf("WAIT 0 timeout: %s\n", err(fx(&f1, FUTEX_WAIT | P, 0, (long)&zero, NULL, 0)));
    pthread_mutex_t tm = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&tm);
    abs_in(&abs, CLOCK_REALTIME, 5000000);
    printf("pthread_mutex_timedlock on a held mutex: %s\n", err(-pthread_mutex_timedlock(&tm, &abs)));
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    abs_in(&abs, CLOCK_REALTIME, 5000000);
    printf("pthread_cond_timedwait: %s\n", err(-pthread_cond_timedwait(&cv, &tm, &abs)));
    sem_t s0;
    sem_init(&s0, 0, 0);
    abs_in(&abs, CLOCK_REALTIME, 5000000);
    printf("sem_timedwait: %s\n", err(sem_timedwait(&s0, &abs) ? -errno : 0));

    /* The errno of each bad call. */
    struct timespec bad = {0, 1000000000}, neg = {-1, 0};
    f1 = 5;
    printf("WAIT value mismatch: %s\n", err(fx(&f1, FUTEX_WAIT | P, 6, 0, NULL, 0)));
    printf("WAIT mismatch, bad timeout: %s\n", err(fx(&f1, FUTEX_WAIT | P, 6, (long)&bad, NULL, 0)));
    printf("WAIT negative timeout: %s\n", err(fx(&f1, FUTEX_WAIT | P, 5, (long)&neg, NULL, 0)));
    printf("WAIT|CLOCK_REALTIME: %s\n", err(fx(&f1, FUTEX_WAIT | P | FUTEX_CLOCK_REALTIME, 6, 0, NULL, 0)));
    printf("WAKE|CLOCK_REALTIME: %s\n", err(fx(&f1, FUTEX_WAKE | P | FUTEX_CLOCK_REALTIME, 1, 0, NULL, 0)));
    printf("unknown op 99, bad timeout: %s\n", err(fx(&f1, 99, 1, (long)&bad, NULL, 0)));
    printf("FUTEX_FD: %s\n", err(fx(&f1, FUTEX_FD, 1, 0, NULL, 0)));
    printf("WAIT misaligned: %s\n", err(fx((char *)&f1 + 1, FUTEX_WAIT | P, 5, 0, NULL, 0)));
    printf("WAKE misaligned: %s\n", err(fx((char *)&f1 + 2, FUTEX_WAKE | P, 1, 0, NULL, 0)));
    printf("WAIT_BITSET bitset 0: %s\n", err(fx(&f1, FUTEX_WAIT_BITSET | P, 5, 0, NULL, 0)));
    printf("WAKE_BITSET bitset 0, misaligned: %s\n", err(fx((char *)&f1 + 1, FUTEX_WAKE_BITSET | P, 1, 0, NULL, 0)));
    printf("WAIT NULL private: %s\n", err(fx(NULL, FUTEX_WAIT | P, 0, 0, NULL, 0)));
    printf("WAKE NULL private: %s\n", err(fx(NULL, FUTEX_WAKE | P, 1, 0, NULL, 0)));
    printf("WAKE NULL shared: %s\n", err(fx(NULL, FUTEX_WAKE, 1, 0, NULL, 0)));
    printf("WAKE kernel address: %s\n", err(fx((void *)0xffff800000000000ul, FUTEX_WAKE | P, 1, 0, NULL, 0)));
    printf("WAKE no waiters: %s\n", err(fx(&f1, FUTEX_WAKE | P, 1, 0, NULL, 0)));
    printf("REQUEUE nr_requeue -1: %s\n", err(fx(&f1, FUTEX_REQUEUE | P, 1, -1, &f2, 0)));
    printf("REQUEUE nr_wake -1: %s\n", err(fx(&f1, FUTEX_REQUEUE | P, -1, 1, &f2, 0)));
    printf("REQUEUE onto itself: %s\n", err(fx(&f1, FUTEX_REQUEUE | P, 1, 1, &f1, 0)));
    printf("CMP_REQUEUE mismatch: %s\n", err(fx(&f1, FUTEX_CMP_REQUEUE | P, 1, 1, &f2, 4)));
    printf("CMP_REQUEUE misaligned uaddr2: %s\n", err(fx(&f1, FUTEX_CMP_REQUEUE | P, 1, 1, (char *)&f2 + 1, 5)));
    printf("CMP_REQUEUE NULL uaddr2 private: %s\n", err(fx(&f1, FUTEX_CMP_REQUEUE | P, 1, 1, NULL, 5)));
    printf("CMP_REQUEUE NULL uaddr2 shared: %s\n", err(fx(&f1, FUTEX_CMP_REQUEUE, 1, 1, NULL, 5)));
    printf("WAKE_OP NULL uaddr2: %s\n", err(fx(&f1, FUTEX_WAKE_OP | P, 1, 1, NULL, FUTEX_OP(FUTEX_OP_ADD, 1, 0, 0))));
    static const unsigned ro[2] = {1, 2};
    printf("WAKE_OP read-only uaddr2: %s\n", err(fx(&f1, FUTEX_WAKE_OP | P, 1, 1, (void *)ro, FUTEX_OP(FUTEX_OP_ADD, 1, 0, 0))));
    printf("WAKE_OP bad op, NULL uaddr2: %s\n", err(fx(&f1, FUTEX_WAKE_OP | P, 1, 1, NULL, 7u << 28)));
    unsigned *rop = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("WAIT shared on read-only anonymous memory: %s\n", err(fx(rop, FUTEX_WAIT, 0, 0, NULL, 0)));
    printf("WAKE private on read-only anonymous memory: %s\n", err(fx(rop, FUTEX_WAKE | P, 1, 0, NULL, 0)));
    munmap(rop, 4096);
    printf("WAKE shared on unmapped memory: %s\n", err(fx(rop, FUTEX_WAKE, 1, 0, NULL, 0)));
    return 0;
}
