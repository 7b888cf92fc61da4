// pagelab: cflags=-pthread
// thr_pingpong: the costs the threads benchmark measures, one per mode.
// usage: thr_pingpong futex N   two threads hand a token back and forth N times through
//                               one futex word (FUTEX_WAIT / FUTEX_WAKE, every wake has
//                               a waiter once the pair is in step)
//        thr_pingpong yield N   two threads each call sched_yield N times
//        thr_pingpong wake N    N FUTEX_WAKEs of a futex nobody waits on
//        thr_pingpong getppid N N getppid calls (the bare syscall round trip)
// The transcript is the mode, N and a check value, the same on every interleaving.
#define _GNU_SOURCE
#include "pl.h"
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>
#include <sys/syscall.h>

static long rounds;
static _Atomic unsigned turn; /* 0: ping's move, 1: pong's move */
static long passes[2];

static void futex_wait(_Atomic unsigned *w, unsigned v) {
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}
static void futex_wake(_Atomic unsigned *w) {
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *player(void *arg) {
    unsigned me = (unsigned)(long)arg;
    for (long i = 0; i < rounds; i++) {
        while (atomic_load(&turn) != me) futex_wait(&turn, 1 - me);
        passes[me]++;
        atomic_store(&turn, 1 - me);
        futex_wake(&turn);
    }
    return NULL;
}

static void *yielder(void *arg) {
    long *n = arg;
    for (long i = 0; i < rounds; i++) {
        sched_yield();
        (*n)++;
    }
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "futex";
    rounds = pl_arg_long(argc, argv, 2, 10000);
    long check = 0;
    if (strcmp(mode, "futex") == 0) {
        pthread_t a, b;
        pthread_create(&a, NULL, player, (void *)0L);
        pthread_create(&b, NULL, player, (void *)1L);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        check = passes[0] + passes[1];
    } else if (strcmp(mode, "yield") == 0) {
        long n[2] = {0, 0};
        pthread_t a, b;
        pthread_create(&a, NULL, yielder, &n[0]);
        pthread_create(&b, NULL, yielder, &n[1]);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        check = n[0] + n[1];
    } else if (strcmp(mode, "wake") == 0) {
        static unsigned word;
        for (long i = 0; i < rounds; i++) check += syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    } else if (strcmp(mode, "getppid") == 0) {
        for (long i = 0; i < rounds; i++) check += getppid() > 0;
    } else {
        printf("unknown mode %s\n", mode);
        return 2;
    }
    printf("%s %ld: %ld\n", mode, rounds, check);
    return 0;
}
