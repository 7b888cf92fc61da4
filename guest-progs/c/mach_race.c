// pagelab: cflags=-pthread
// mach_race: threads increment a shared counter and append to a shared log.
//
//   mach_race [THREADS [ITERS]]        under a mutex: the total is always THREADS*ITERS
//                                      (deterministic natively too)
//   mach_race race [THREADS [ITERS]]   without any lock: increments are lost and log slots
//                                      overwritten depending on the interleaving. Prints the
//                                      final count and a hash of the log's order, which
//                                      depend on the scheduler: under pagelab they are a
//                                      function of --sched and --seed.
#include "pl.h"
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static volatile long counter;
static volatile long next;
static unsigned char *logbuf;
static long iters;
static int racy;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg) {
    unsigned char id = (unsigned char)(long)arg;
    for (long i = 0; i < iters; i++) {
        if (!racy)
            pthread_mutex_lock(&lock);
        counter = counter + 1;
        long at = next;
        logbuf[at] = id;
        next = at + 1;
        if (!racy)
            pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(int argc, char **argv) {
    int i = 1;
    racy = argc > 1 && strcmp(argv[1], "race") == 0;
    if (racy)
        i++;
    long threads = pl_arg_long(argc, argv, i, 3);
    iters = pl_arg_long(argc, argv, i + 1, 100000);
    if (threads < 1 || threads > 16)
        threads = 3;
    logbuf = calloc((size_t)(threads * iters), 1);
    pthread_t t[16];
    for (long k = 0; k < threads; k++)
        pthread_create(&t[k], NULL, worker, (void *)(k + 1));
    for (long k = 0; k < threads; k++)
        pthread_join(t[k], NULL);
    printf("threads %ld x %ld increments: counter %ld\n", threads, iters, counter);
    if (racy) {
        uint64_t h = pl_fnv(PL_FNV_INIT, logbuf, (size_t)next);
        printf("log entries %ld, order hash %016llx\n", next, (unsigned long long)h);
    }
    return 0;
}
