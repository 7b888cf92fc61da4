// pagelab: cflags=-pthread
// Interrupted blocking syscalls: EINTR versus SA_RESTART (futex wait, pipe read), calls that
// always fail with EINTR under a handler (nanosleep with the time left, clock_nanosleep,
// futex with a timeout, pause, sigsuspend, sigtimedwait), an ignored signal that does not
// interrupt, a signal from another thread, and a stop/continue that restarts a read.
#define _GNU_SOURCE
#include "pl.h"
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *en(int e) { return e ? strerrorname_np(e) : "0"; }
static volatile int handled;
static int futex_word;
static int pipefd[2];
static volatile int handler_writes;

static void on_sig(int sig) {
    (void)sig;
    handled++;
    futex_word = 1;
    if (handler_writes) {
        char c = 'h';
        if (write(pipefd[1], &c, 1) != 1) _exit(9);
    }
}

static void set_alrm(int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sa.sa_flags = flags;
    sigaction(SIGALRM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

static void arm(long usec) {
    struct itimerval it = { { 0, 0 }, { usec / 1000000, usec % 1000000 } };
    setitimer(ITIMER_REAL, &it, NULL);
}

static long futex_wait(int *w, const struct timespec *ts) {
    return syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, 0, ts, NULL, 0);
}

static void show(const char *what, long r) {
    printf("%s: %ld %s, handler ran %d\n", what, r, r < 0 ? en(errno) : "", handled);
    handled = 0;
    futex_word = 0;
}

static void *kicker(void *arg) {
    pthread_t main_thread = *(pthread_t *)arg;
    struct timespec ts = { 0, 3000000 };
    nanosleep(&ts, NULL);
    pthread_kill(main_thread, SIGUSR1);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    long r;
    if (pipe(pipefd) != 0) { printf("pipe failed\n"); return 1; }

    set_alrm(0);
    arm(2000);
    r = futex_wait(&futex_word, NULL);
    show("futex wait, no SA_RESTART", r);
    set_alrm(SA_RESTART);
    arm(2000);
    r = futex_wait(&futex_word, NULL);
    show("futex wait, SA_RESTART (restarted, word changed by the handler)", r);
    struct timespec sec = { 1, 0 };
    arm(2000);
    r = futex_wait(&futex_word, &sec);
    show("futex wait with timeout, SA_RESTART", r);

    set_alrm(0);
    arm(2000);
    char c;
    r = read(pipefd[0], &c, 1);
    show("pipe read, no SA_RESTART", r);
    set_alrm(SA_RESTART);
    handler_writes = 1;
    arm(2000);
    r = read(pipefd[0], &c, 1);
    printf("pipe read, SA_RESTART: %ld byte %c, handler ran %d\n", r, r == 1 ? c : '-', handled);
    handled = 0;
    handler_writes = 0;

    struct timespec rem = { 0, 0 };
    arm(2000);
    r = nanosleep(&sec, &rem);
    printf("nanosleep, SA_RESTART: %ld %s, rem %s, handler ran %d\n", r, en(errno),
           rem.tv_sec == 0 && rem.tv_nsec > 900000000 ? "ok" : "wrong", handled);
    handled = 0;
    struct timespec abs;
    clock_gettime(CLOCK_MONOTONIC, &abs);
    abs.tv_sec += 1;
    arm(2000);
    r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs, NULL);
    printf("clock_nanosleep absolute, SA_RESTART: %s, handler ran %d\n", en((int)r), handled);
    handled = 0;
    arm(2000);
    r = pause();
    show("pause, SA_RESTART", r);
    sigset_t empty, usr2;
    sigemptyset(&empty);
    arm(2000);
    r = sigsuspend(&empty);
    show("sigsuspend, SA_RESTART", r);
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    sigprocmask(SIG_BLOCK, &usr2, NULL);
    arm(2000);
    r = sigtimedwait(&usr2, NULL, &sec);
    show("sigtimedwait, SA_RESTART", r);

    signal(SIGALRM, SIG_IGN);
    struct timespec ms20 = { 0, 20000000 };
    arm(2000);
    r = nanosleep(&ms20, NULL);
    show("nanosleep with SIGALRM ignored", r);

    set_alrm(0);
    pthread_t self = pthread_self(), th;
    pthread_create(&th, NULL, kicker, &self);
    r = futex_wait(&futex_word, NULL);
    show("futex wait, SIGUSR1 from another thread", r);
    pthread_join(th, NULL);

    /* A child stopped and continued in a blocking read: no handler, so the read restarts. */
    pid_t pid = fork();
    if (pid == 0) {
        char b[8];
        ssize_t n = read(pipefd[0], b, sizeof b);
        _exit(n == 3 ? 0 : 10 + (int)n);
    }
    struct timespec ms5 = { 0, 5000000 };
    nanosleep(&ms5, NULL);
    int st;
    kill(pid, SIGSTOP);
    r = waitpid(pid, &st, WUNTRACED);
    printf("child stopped: %d sig %d\n", r == pid && WIFSTOPPED(st), WSTOPSIG(st));
    kill(pid, SIGCONT);
    r = waitpid(pid, &st, WCONTINUED);
    printf("child continued: %d\n", r == pid && WIFCONTINUED(st));
    if (write(pipefd[1], "abc", 3) != 3) return 1;
    waitpid(pid, &st, 0);
    printf("child read after continue: exited %d status %d\n", WIFEXITED(st), WEXITSTATUS(st));
    printf("done\n");
    return 0;
}
