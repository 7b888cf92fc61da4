// pagelab: cflags=-pthread
/* pipe_signals: blocking waits on pipes and eventfds meet signals and other processes.
 * - a blocking pipe read interrupted by SIGALRM: EINTR without SA_RESTART; with
 *   SA_RESTART it restarts and returns the data written later;
 * - a blocking write larger than the pipe, interrupted: the bytes written so far;
 * - poll, select, epoll_wait interrupted by a handler: EINTR even with SA_RESTART;
 * - ppoll with a temporary mask lets a blocked signal in, and the old mask is back after;
 * - an eventfd read blocks until another thread writes;
 * - a forked child reads what the parent writes; EOF when every writer is gone
 *   (the child's copy of the write end must be closed too);
 * - `sigpipe` argument: writing to a pipe without readers with SIGPIPE at its default
 *   action kills the process with SIGPIPE. */
#define _GNU_SOURCE
#include "pl.h"
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t hits;
static void on_sig(int s) { (void)s; hits++; }

static void set_handler(int sig, int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sa.sa_flags = flags;
    sigaction(sig, &sa, NULL);
}

/* SIGALRM after `ms` milliseconds of real time. */
static void alarm_ms(long ms) {
    struct itimerval it = { { 0, 0 }, { ms / 1000, (ms % 1000) * 1000 } };
    setitimer(ITIMER_REAL, &it, NULL);
}

static const char *res(long r) {
    static char b[32];
    if (r >= 0) { snprintf(b, sizeof b, "%ld", r); return b; }
    return errno == EINTR ? "EINTR" : errno == EPIPE ? "EPIPE" : pl_errname(errno);
}

static int wfd;
static void *late_writer(void *arg) {
    (void)arg;
    /* Long enough for SIGALRM (10 ms) to interrupt the reader first. */
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    if (write(wfd, "late", 4) != 4) exit(3);
    return NULL;
}

static int efd;
static void *efd_writer(void *arg) {
    (void)arg;
    struct timespec ts = { 0, 5 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    uint64_t v = 42;
    if (write(efd, &v, 8) != 8) exit(3);
    return NULL;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int p[2];
    char buf[128];
    if (argc > 1 && strcmp(argv[1], "sigpipe") == 0) {
        pipe(p);
        close(p[0]);
        printf("writing to a pipe without readers\n");
        pl_flush();
        write(p[1], "x", 1);
        printf("still alive\n");
        return 0;
    }

    /* 1. read interrupted, no SA_RESTART */
    pipe(p);
    set_handler(SIGALRM, 0);
    alarm_ms(10);
    errno = 0;
    long r = read(p[0], buf, sizeof buf);
    printf("read, no SA_RESTART: %s, handler ran %d\n", res(r), hits);

    /* 2. read with SA_RESTART: restarted, then gets the data */
    hits = 0;
    set_handler(SIGALRM, SA_RESTART);
    wfd = p[1];
    pthread_t t;
    pthread_create(&t, NULL, late_writer, NULL);
    alarm_ms(10);
    r = read(p[0], buf, sizeof buf);
    printf("read, SA_RESTART: %s (%.*s), handler ran %d\n", res(r), r > 0 ? (int)r : 0, buf, hits);
    pthread_join(t, NULL);

    /* 3. a blocking write bigger than the pipe: partial count when interrupted */
    hits = 0;
    static char big[100000];
    alarm_ms(10);
    r = write(p[1], big, sizeof big);
    printf("write 100000 into an empty 64 KiB pipe, interrupted: %s, handler ran %d\n", res(r), hits);
    close(p[0]);
    close(p[1]);

    /* 4. poll / select / epoll_wait: EINTR even with SA_RESTART */
    pipe(p);
    hits = 0;
    alarm_ms(10);
    struct pollfd pf = { p[0], POLLIN, 0 };
    r = poll(&pf, 1, -1);
    printf("poll: %s, handler ran %d\n", res(r), hits);
    alarm_ms(10);
    r = poll(&pf, 1, 5000);
    printf("poll with timeout: %s\n", res(r));
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    struct timeval tv = { 5, 0 };
    alarm_ms(10);
    r = select(p[0] + 1, &rs, NULL, NULL, &tv);
    printf("select: %s, timeval decreased %d, still > 4 s %d\n", res(r), tv.tv_sec < 5, tv.tv_sec >= 4);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN };
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    alarm_ms(10);
    r = epoll_wait(ep, &ev, 1, -1);
    printf("epoll_wait: %s, handler ran %d\n", res(r), hits);

    /* 5. ppoll's temporary mask */
    hits = 0;
    set_handler(SIGUSR1, 0);
    sigset_t block, empty, now;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigemptyset(&empty);
    sigprocmask(SIG_BLOCK, &block, NULL);
    raise(SIGUSR1);
    printf("SIGUSR1 blocked and pending, handler ran %d\n", hits);
    struct timespec ts = { 5, 0 };
    r = ppoll(&pf, 1, &ts, &empty);
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("ppoll with an empty mask: %s, handler ran %d, SIGUSR1 blocked again %d\n", res(r), hits, sigismember(&now, SIGUSR1));
    raise(SIGUSR1);
    r = ppoll(&pf, 1, &(struct timespec){ 0, 0 }, NULL);
    printf("ppoll without a mask: %s, handler ran %d\n", res(r), hits);
    r = epoll_pwait(ep, &ev, 1, 1000, &empty);
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("epoll_pwait with an empty mask: %s, handler ran %d, SIGUSR1 blocked again %d\n", res(r), hits, sigismember(&now, SIGUSR1));
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    close(ep);

    /* 6. eventfd read blocks until another thread writes */
    efd = eventfd(0, 0);
    pthread_create(&t, NULL, efd_writer, NULL);
    uint64_t v = 0;
    r = read(efd, &v, 8);
    printf("eventfd blocking read: %s value %llu\n", res(r), (unsigned long long)v);
    pthread_join(t, NULL);
    close(efd);
    close(p[0]);
    close(p[1]);

    /* 7. fork: the child reads the parent's messages, EOF after the last writer */
    pipe(p);
    pid_t c = fork();
    if (c == 0) {
        close(p[1]);
        long total = 0;
        while ((r = read(p[0], buf, sizeof buf)) > 0) total += r;
        printf("child read %ld bytes then %s\n", total, res(r));
        _exit(0);
    }
    close(p[0]);
    for (int i = 0; i < 100; i++) {
        memset(buf, 'a' + i % 26, sizeof buf);
        if (write(p[1], buf, sizeof buf) != (ssize_t)sizeof buf) return 1;
    }
    close(p[1]);
    int st;
    waitpid(c, &st, 0);
    printf("child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);

    /* 8. SIGPIPE ignored: EPIPE; caught: EPIPE after the handler */
    signal(SIGPIPE, SIG_IGN);
    pipe(p);
    close(p[0]);
    r = write(p[1], "x", 1);
    printf("write, no reader, SIGPIPE ignored: %s\n", res(r));
    hits = 0;
    set_handler(SIGPIPE, 0);
    r = write(p[1], "x", 1);
    printf("write, no reader, SIGPIPE caught: %s, handler ran %d\n", res(r), hits);
    close(p[1]);
    return 0;
}
