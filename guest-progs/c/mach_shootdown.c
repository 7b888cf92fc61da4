// pagelab: cflags=-pthread
// mach_shootdown: one thread changes a mapping another thread is using, so the kernel
// must invalidate the other thread's TLB (a shootdown when the threads run on two CPUs).
//
// The reader caches a translation of page P by reading it in a loop. The writer then
//   1. mprotects P read-only and back (each change flushes every CPU using the mm),
//   2. maps a fresh zero page over P with MAP_FIXED (the old frame, holding 42, goes),
//   3. munmaps a second page Q the reader also touched.
// The reader must see 0 in P afterwards: a stale TLB entry would still show 42.
#include "pl.h"
#include <pthread.h>
#include <sys/mman.h>

static volatile int *p;
static volatile int *q;
static volatile int stage;
static volatile long sink;

static void *reader(void *arg) {
    (void)arg;
    while (stage < 1) /* wait for the pages */
        ;
    long n = 0;
    while (stage < 2) { /* keep P and Q in this CPU's TLB */
        sink += *p + *q;
        n++;
        if (n == 1000)
            stage = 2;
    }
    while (stage < 3)
        sink += *p;
    printf("reader sees %d after the remap\n", *p);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        printf("mmap: %s\n", pl_errname(errno));
        return 1;
    }
    p = (volatile int *)m;
    q = (volatile int *)(m + 4096);
    *p = 42;
    *q = 7;
    pthread_t t;
    pthread_create(&t, NULL, reader, NULL);
    stage = 1;
    while (stage < 2)
        ;
    printf("mprotect read-only: %d\n", mprotect(m, 4096, PROT_READ));
    printf("mprotect read-write: %d\n", mprotect(m, 4096, PROT_READ | PROT_WRITE));
    void *r = mmap(m, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("remapped in place: %s\n", r == m ? "yes" : "no");
    printf("munmap second page: %d\n", munmap(m + 4096, 4096));
    stage = 3;
    pthread_join(t, NULL);
    printf("writer sees %d\n", *p);
    return 0;
}
