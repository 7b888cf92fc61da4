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
//   mach_deadlock pipe       read from an empty pipe whose only write end the reader holds
//   mach_deadlock wait       fork; the child reads from such a pipe, the parent waits for
//                            the child in wait4
#include "pl.h"
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
    const char *mode = argc > 1 ? argv[1] : "";
    opposite = strcmp(mode, "deadlock") == 0;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (strcmp(mode, "pipe") == 0 || strcmp(mode, "wait") == 0) {
        int fds[2];
        char c;
        if (pipe(fds) != 0) {
            printf("pipe: %s\n", pl_errname(errno));
            return 1;
        }
        if (strcmp(mode, "pipe") == 0) {
            printf("reading an empty pipe whose write end we hold\n");
            long n = read(fds[0], &c, 1);
            printf("read returned %ld\n", n);
            return 0;
        }
        pid_t pid = fork();
        if (pid == 0) {
            long n = read(fds[0], &c, 1);
            _exit(n == 1 ? 0 : 1);
        }
        printf("waiting for a child that reads an empty pipe\n");
        int st;
        waitpid(pid, &st, 0);
        printf("child ended\n");
        return 0;
    }
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
