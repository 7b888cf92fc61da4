// pagelab: cflags=-pthread
// qsort4: the qsort program's quicksort of N xorshift ints, shared by 4 threads: a range
// above a cutoff is partitioned and one half pushed onto a work stack (mutex + condvar)
// for whichever thread is idle. The transcript equals qsort's for the same N, plus the
// thread count.
// usage: qsort4 [N] [THREADS]   (defaults 5000000 and 4)
#include "pl.h"
#include <pthread.h>

#define CUTOFF 16384
#define MAXTHREADS 16

static void insertion_sort(int *a, long n) {
    for (long i = 1; i < n; i++) {
        int v = a[i];
        long j = i - 1;
        while (j >= 0 && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

static inline void swap(int *a, int *b) {
    int t = *a;
    *a = *b;
    *b = t;
}

/* Hoare partition around a median-of-three pivot: a[0..left) <= pivot <= a[left..n). */
static long partition(int *a, long n) {
    long mid = n / 2;
    if (a[mid] < a[0]) swap(&a[mid], &a[0]);
    if (a[n - 1] < a[0]) swap(&a[n - 1], &a[0]);
    if (a[n - 1] < a[mid]) swap(&a[n - 1], &a[mid]);
    int pivot = a[mid];
    long i = -1, j = n;
    for (;;) {
        do i++; while (a[i] < pivot);
        do j--; while (a[j] > pivot);
        if (i >= j) break;
        swap(&a[i], &a[j]);
    }
    return j + 1;
}

static void quicksort(int *a, long n) {
    while (n > 16) {
        long left = partition(a, n);
        if (left < n - left) {
            quicksort(a, left);
            a += left;
            n -= left;
        } else {
            quicksort(a + left, n - left);
            n = left;
        }
    }
    insertion_sort(a, n);
}

/* The work stack. */
struct range {
    int *a;
    long n;
};
static struct range stack[4096];
static int top, active;
static long pushed;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void push(int *a, long n) {
    pthread_mutex_lock(&mu);
    stack[top++] = (struct range){a, n};
    pushed++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
}

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&mu);
        while (top == 0 && active > 0) pthread_cond_wait(&cv, &mu);
        if (top == 0) {
            pthread_cond_broadcast(&cv);
            pthread_mutex_unlock(&mu);
            return NULL;
        }
        struct range r = stack[--top];
        active++;
        pthread_mutex_unlock(&mu);
        /* Partition big ranges, handing the smaller half to another thread. */
        while (r.n > CUTOFF) {
            long left = partition(r.a, r.n);
            if (left < r.n - left) {
                push(r.a, left);
                r.a += left;
                r.n -= left;
            } else {
                push(r.a + left, r.n - left);
                r.n = left;
            }
        }
        quicksort(r.a, r.n);
        pthread_mutex_lock(&mu);
        active--;
        if (top == 0 && active == 0) pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
    }
}

int main(int argc, char **argv) {
    long n = pl_arg_long(argc, argv, 1, 5000000);
    long nt = pl_arg_long(argc, argv, 2, 4);
    if (nt < 1 || nt > MAXTHREADS) nt = 4;
    int *a = malloc((n ? n : 1) * sizeof *a);
    if (!a) {
        printf("malloc failed\n");
        return 1;
    }
    pl_rng r = pl_rng_new(0x5eed1234abcdull);
    uint64_t before = 0;
    for (long i = 0; i < n; i++) {
        a[i] = (int)(pl_rand(&r) >> 33) - (1 << 30); /* both signs */
        if (i % 8 == 0) a[i] %= 1000;                 /* plenty of duplicates */
        before += (uint64_t)(int64_t)a[i];
    }
    stack[top++] = (struct range){a, n};
    pthread_t th[MAXTHREADS];
    for (long i = 0; i < nt; i++) pthread_create(&th[i], NULL, worker, NULL);
    for (long i = 0; i < nt; i++) pthread_join(th[i], NULL);
    int sorted = 1;
    uint64_t after = 0, h = PL_FNV_INIT;
    for (long i = 0; i < n; i++) {
        if (i > 0 && a[i - 1] > a[i]) sorted = 0;
        after += (uint64_t)(int64_t)a[i];
        h = pl_mix(h, (uint64_t)(uint32_t)a[i] * (uint64_t)(i + 1));
    }
    printf("threads: %ld\n", nt);
    printf("count: %ld\n", n);
    printf("sorted: %s\n", sorted ? "yes" : "no");
    printf("sum preserved: %s\n", before == after ? "yes" : "no");
    if (n > 0) printf("min: %d max: %d median: %d\n", a[0], a[n - 1], a[n / 2]);
    printf("checksum: %016llx\n", (unsigned long long)h);
    free(a);
    return sorted && before == after ? 0 : 1;
}
