// fork_cow: copy-on-write after fork (heap, stack, .data, .bss, pages never written or only
// read before fork, many pages), writes on either side while the other lives, MAP_SHARED
// anonymous memory shared across fork (incl. pages first touched by a read), a
// process-shared pthread mutex and futex in shared memory, MADV_WIPEONFORK/DONTFORK.
// pagelab: cflags=-pthread
#define _GNU_SOURCE
#include "pl.h"
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096ul

static int data_var = 1;
static int bss_var;

static void *map(size_t len, int flags) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap failed: %s\n", pl_errname(errno));
        exit(1);
    }
    return p;
}

static void wait_child(pid_t pid, const char *what) {
    int st;
    pid_t r = waitpid(pid, &st, 0);
    if (r != pid) {
        printf("%s: waitpid failed: %s\n", what, pl_errname(errno));
        exit(1);
    }
    if (WIFEXITED(st))
        printf("%s: child exited %d\n", what, WEXITSTATUS(st));
    else
        printf("%s: child killed by signal %d\n", what, WTERMSIG(st));
}

static pid_t xfork(void) {
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
        printf("fork failed: %s\n", pl_errname(errno));
        exit(1);
    }
    return p;
}

static uint64_t sum(const unsigned char *p, size_t n) {
    return pl_fnv(PL_FNV_INIT, p, n);
}

static void futex_wait(atomic_int *w, int val) {
    syscall(SYS_futex, w, FUTEX_WAIT, val, NULL, NULL, 0);
}
static void futex_wake(atomic_int *w) {
    syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* A thread of the parent keeps writing while the main thread forks: the child's copy
 * must be frozen at fork (the writer's vCPU must lose its writable TLB entry). */
static atomic_int stop_writer;
static volatile long counter_page[512] __attribute__((aligned(4096)));

static void *writer(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_writer)) counter_page[0]++;
    return NULL;
}

static void fork_beside_a_writer(void) {
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    while (counter_page[0] < 1000) sched_yield();
    pid_t c = xfork();
    if (c == 0) {
        long a = counter_page[0];
        for (int i = 0; i < 200; i++) sched_yield();
        for (volatile int i = 0; i < 200000; i++) {
        }
        long b = counter_page[0];
        printf("child's copy frozen while the parent's thread writes: %s\n", a == b ? "yes" : "no");
        exit(0);
    }
    long a = counter_page[0];
    while (counter_page[0] == a) sched_yield();
    printf("parent's writer still writing: yes\n");
    atomic_store(&stop_writer, 1);
    pthread_join(t, NULL);
    wait_child(c, "writer");
}

int main(void) {
    /* 1. Private memory diverges: the child writes, the parent still sees its values. */
    int *heap = malloc(64 * sizeof(int));
    heap[0] = 100;
    volatile int stack_var = 200;
    unsigned char *fresh = map(PG, MAP_PRIVATE);      /* never touched before fork */
    unsigned char *readonly = map(PG, MAP_PRIVATE);   /* only read before fork (zero page) */
    int r0 = readonly[100];
    printf("before fork: heap=%d stack=%d data=%d bss=%d fresh=%d read=%d\n", heap[0], stack_var, data_var, bss_var, fresh[5], r0);
    pid_t c = xfork();
    if (c == 0) {
        heap[0] = 101;
        stack_var = 201;
        data_var = 2;
        bss_var = 3;
        fresh[5] = 7;
        readonly[100] = 8;
        printf("child: heap=%d stack=%d data=%d bss=%d fresh=%d read=%d\n", heap[0], stack_var, data_var, bss_var, fresh[5], readonly[100]);
        exit(0);
    }
    wait_child(c, "private");
    printf("parent after child: heap=%d stack=%d data=%d bss=%d fresh=%d read=%d\n", heap[0], stack_var, data_var, bss_var, fresh[5], readonly[100]);
    heap[0] = 102;
    stack_var = 202;
    data_var = 4;
    fresh[5] = 9;
    printf("parent writes: heap=%d stack=%d data=%d fresh=%d\n", heap[0], stack_var, data_var, fresh[5]);

    /* 2. The parent writes while the child lives; the child still sees the old values. */
    unsigned char *big = map(64 * PG, MAP_PRIVATE);
    for (size_t i = 0; i < 64 * PG; i++) big[i] = (unsigned char)(i * 7);
    uint64_t big_sum = sum(big, 64 * PG);
    atomic_int *flag = map(PG, MAP_SHARED);
    c = xfork();
    if (c == 0) {
        while (atomic_load(flag) == 0) futex_wait(flag, 0);
        printf("child sees big unchanged: %s, heap=%d\n", sum(big, 64 * PG) == big_sum ? "yes" : "no", heap[0]);
        for (size_t i = 0; i < 64 * PG; i += 2 * PG) big[i] ^= 0xff; /* every other page */
        printf("child modified big: %s\n", sum(big, 64 * PG) != big_sum ? "yes" : "no");
        exit(3);
    }
    for (size_t i = PG; i < 64 * PG; i += 2 * PG) big[i] ^= 0x55; /* the other pages */
    heap[0] = 103;
    atomic_store(flag, 1);
    futex_wake(flag);
    wait_child(c, "parent writes first");
    for (size_t i = PG; i < 64 * PG; i += 2 * PG) big[i] ^= 0x55;
    printf("parent big restored: %s, heap=%d\n", sum(big, 64 * PG) == big_sum ? "yes" : "no", heap[0]);

    /* 3. MAP_SHARED anonymous memory is shared across fork. */
    char *shm = map(4 * PG, MAP_SHARED);
    strcpy(shm, "written before fork");
    volatile char r1 = shm[2 * PG]; /* a page first touched by a read */
    (void)r1;
    c = xfork();
    if (c == 0) {
        printf("child reads shared: %s\n", shm);
        strcpy(shm, "written by the child");
        strcpy(shm + 2 * PG, "read-faulted page written by the child");
        strcpy(shm + 3 * PG, "untouched page written by the child");
        exit(0);
    }
    wait_child(c, "shared");
    printf("parent reads shared: %s | %s | %s\n", shm, shm + 2 * PG, shm + 3 * PG);
    /* A shared mapping split by mprotect keeps sharing both halves. */
    mprotect(shm + PG, PG, PROT_READ);
    c = xfork();
    if (c == 0) {
        strcpy(shm + 3 * PG, "after the split");
        exit(0);
    }
    wait_child(c, "shared split");
    printf("parent reads split: %s\n", shm + 3 * PG);

    /* 4. A process-shared mutex and a counter in shared memory, two children. */
    struct counter {
        pthread_mutex_t m;
        long n;
    } *cnt = map(PG, MAP_SHARED);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&cnt->m, &ma);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = xfork();
        if (kids[k] == 0) {
            for (int i = 0; i < 2000; i++) {
                pthread_mutex_lock(&cnt->m);
                long v = cnt->n;
                if (i % 100 == 0) sched_yield();
                cnt->n = v + 1;
                pthread_mutex_unlock(&cnt->m);
            }
            exit(0);
        }
    }
    for (int k = 0; k < 2; k++) wait_child(kids[k], "mutex");
    printf("shared counter: %ld\n", cnt->n);

    /* 5. MADV_WIPEONFORK: the child gets zeros; MADV_DONTFORK: the child has no mapping. */
    unsigned char *wipe = map(2 * PG, MAP_PRIVATE);
    unsigned char *nofork = map(PG, MAP_PRIVATE);
    memset(wipe, 0x5a, 2 * PG);
    nofork[0] = 1;
    printf("madvise wipeonfork: %d, dontfork: %d\n", madvise(wipe, 2 * PG, MADV_WIPEONFORK), madvise(nofork, PG, MADV_DONTFORK));
    printf("madvise wipeonfork on shared: %s\n", madvise(shm, PG, MADV_WIPEONFORK) == 0 ? "ok" : pl_errname(errno));
    c = xfork();
    if (c == 0) {
        printf("child wiped: %d %d\n", wipe[0], wipe[2 * PG - 1]);
        fflush(stdout);
        nofork[0] = 2; /* no VMA here: SIGSEGV */
        exit(0);
    }
    wait_child(c, "dontfork");
    printf("parent keeps: %d %d\n", wipe[0], nofork[0]);

    /* 6. Fork while another thread of the parent writes. */
    fork_beside_a_writer();
    return 0;
}
