// pagelab: cflags=-pthread
// mach_deadlock: two threads take two mutexes, then the main thread joins them.
//
//   mach_deadlock            both threads lock A then B: they finish (the control case,
//                            and what the native tests run)
//   mach_deadlock deadlock   thread 1 locks A then B, thread 2 locks B then A, with a
//                            barrier between the two locks so that each holds its first
//                            mutex before asking for the second: a certain deadlock. The
//                            main thread blocks in pthread_join. Natively this hangs for
//                            ever; pagelab sees every thread blocked with no timer pending
//                            and stops with a deadlock report (exit status 123).
#include "pl.h"
#include <pthread.h>
#include <string.h>

static pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t bar;
static int opposite;
static long shared;

static void *first(void *arg) {
    (void)arg;
    pthread_mutex_lock(&a);
    pthread_barrier_wait(&bar);
    pthread_mutex_lock(&b);
    shared += 1;
    pthread_mutex_unlock(&b);
    pthread_mutex_unlock(&a);
    return NULL;
}

static void *second(void *arg) {
    (void)arg;
    pthread_mutex_t *x = opposite ? &b : &a, *y = opposite ? &a : &b;
    if (!opposite)
        pthread_barrier_wait(&bar); /* after `first` holds A: it then gets B freely */
    pthread_mutex_lock(x);
    if (opposite)
        pthread_barrier_wait(&bar);
    pthread_mutex_lock(y);
    shared += 10;
    pthread_mutex_unlock(y);
    pthread_mutex_unlock(x);
    return NULL;
}

int main(int argc, char **argv) {
    opposite = argc > 1 && strcmp(argv[1], "deadlock") == 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t1, t2;
    printf("locking A,B and %s\n", opposite ? "B,A" : "A,B");
    pthread_create(&t1, NULL, first, NULL);
    pthread_create(&t2, NULL, second, NULL);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    printf("both done: %ld\n", shared);
    return 0;
}
