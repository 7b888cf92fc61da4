// pagelab: cflags=-pthread
// Signals and userfaults (reference 5.3 steps 8-10):
// * a signal to a thread blocked on a WP fault wakes it, its handler runs,
//   the write re-executes and faults again: a second, identical message;
// * a blocked signal does not interrupt the fault (no second message);
// * EXACT_ADDRESS keeps the in-page offset, THREAD_ID reports the TID;
// * UFFD_FEATURE_SIGBUS turns WP and MISSING faults into SIGBUS with si_code
//   BUS_ADRERR and the exact si_addr, and queues no message.
// argv[1] "kernel": a signal during a read() blocked on a kernel-mode WP fault.
#define _GNU_SOURCE
#include "uffd.h"
#include <setjmp.h>
#include <signal.h>

static char *r;
static volatile int usr1_count, worker_done;
static pid_t worker_tid;

static void on_usr1(int sig) {
    (void)sig;
    usr1_count++;
}

struct job {
    char *p;
    int block_usr1;
};

static void *worker(void *v) {
    struct job *j = v;
    if (j->block_usr1) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGUSR1);
        pthread_sigmask(SIG_BLOCK, &s, NULL);
    }
    __atomic_store_n(&worker_tid, gettid(), __ATOMIC_RELEASE);
    *(volatile char *)j->p = 'w';
    __atomic_store_n(&worker_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int read_msg(int fd, struct uffd_msg *m, const char *what) {
    char b[128];
    int got = uffd_read_msg(fd, m, -1);
    if (got == 1) uffd_msg_str(m, r, b, sizeof b);
    printf("%s: %s", what, got == 1 ? b : "no message");
    if (got == 1) printf(" ptid %s", m->arg.pagefault.feat.ptid == (uint32_t)worker_tid ? "worker" : "other");
    printf("\n");
    return got;
}

static sigjmp_buf jb;
static volatile int bus_code;
static void *volatile bus_addr;

static void on_bus(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    bus_code = si->si_code;
    bus_addr = si->si_addr;
    siglongjmp(jb, 1);
}

static void try_access(const char *what, char *p, int write) {
    bus_code = 0;
    bus_addr = NULL;
    if (sigsetjmp(jb, 1) == 0) {
        if (write) *(volatile char *)p = 'b';
        else (void)*(volatile char *)p;
        printf("%s: no signal\n", what);
    } else {
        printf("%s: SIGBUS code %d addr %s\n", what, bus_code, bus_addr == p ? "exact" : "other");
    }
}

/* argv[1] "kernel": a signal to a thread whose read() is blocked on a
 * kernel-mode WP fault (copying pipe data into a protected buffer). Linux
 * retries the kernel access: a duplicate message, and once the page is
 * un-protected the read() returns all its data; the handler runs once. */
struct krd {
    int fd;
    char *buf;
    volatile ssize_t ret;
    volatile int err, done;
};

static void *kreader(void *v) {
    struct krd *a = v;
    ssize_t n = read(a->fd, a->buf, 100);
    a->err = n < 0 ? errno : 0;
    a->ret = n;
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static int kernel_mode(int restart) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGUSR1, &sa, NULL);
    int p[2];
    if (pipe(p)) return 2;
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    r = uffd_map(1);
    memset(r, 'a', UPAGE);
    printf("%s: register WP: %s\n", restart ? "SA_RESTART" : "no SA_RESTART",
           uffd_err(-uffd_register(fd, r, UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect: %s\n", uffd_err(-uffd_protect(fd, r, UPAGE)));
    char data[100];
    memset(data, 'k', sizeof data);
    if (write(p[1], data, sizeof data) != (ssize_t)sizeof data) return 2;
    struct krd a = { p[0], r + 10, 0, 0, 0 };
    pthread_t t;
    usr1_count = 0;
    pthread_create(&t, NULL, kreader, &a);
    struct uffd_msg m1;
    char b[128];
    int got = uffd_read_msg(fd, &m1, -1);
    if (got == 1) uffd_msg_str(&m1, r, b, sizeof b);
    printf("read() into the protected page: %s\n", got == 1 ? b : "no message");
    printf("SIGUSR1 to the reader: %d\n", pthread_kill(t, SIGUSR1));
    /* The signal cannot be delivered inside the syscall: Linux retries the
     * kernel access (re-queuing the message, which is why the queue is not
     * looked at here) until the page is un-protected. */
    printf("reader done after 100 ms: %d\n", uffd_wait_flag(&a.done, 100));
    printf("unprotect: %s\n", uffd_err(-uffd_unprotect(fd, r, UPAGE)));
    pthread_join(t, NULL);
    printf("read returned %zd (%s), handler ran %d time(s), data %c%c\n", a.ret, uffd_err(a.err), usr1_count,
           r[10], r[109]);
    close(fd);
    close(p[0]);
    close(p[1]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "kernel") == 0) {
        kernel_mode(0);
        return kernel_mode(1);
    }
    signal(SIGUSR1, on_usr1);
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK,
                       UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EXACT_ADDRESS | UFFD_FEATURE_THREAD_ID);
    r = uffd_map(4);
    memset(r, 'a', 4 * UPAGE);
    printf("register WP: %s\n", uffd_err(-uffd_register(fd, r, 4 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect: %s\n", uffd_err(-uffd_protect(fd, r, 4 * UPAGE)));

    /* A handled signal: duplicate message. */
    struct job j = { r + 123, 0 };
    pthread_t t;
    pthread_create(&t, NULL, worker, &j);
    struct uffd_msg m1, m2;
    read_msg(fd, &m1, "first");
    printf("SIGUSR1 to the blocked worker: %d\n", pthread_kill(t, SIGUSR1));
    read_msg(fd, &m2, "second");
    printf("handler ran %d time(s), messages identical %s, worker done %d\n", usr1_count,
           memcmp(&m1, &m2, sizeof m1) == 0 ? "yes" : "no", worker_done);
    printf("unprotect: %s\n", uffd_err(-uffd_unprotect(fd, r, UPAGE)));
    pthread_join(t, NULL);
    printf("worker done %d, data %c, pending %d\n", worker_done, r[123], uffd_pending(fd, 0));

    /* A blocked signal: the fault stays asleep and sends nothing new. */
    worker_done = 0;
    usr1_count = 0;
    worker_tid = 0;
    struct job j2 = { r + UPAGE + 4095, 1 };
    pthread_create(&t, NULL, worker, &j2);
    read_msg(fd, &m1, "blocked-signal worker");
    printf("SIGUSR1 (blocked) to the worker: %d\n", pthread_kill(t, SIGUSR1));
    printf("after 100 ms: message %d, worker done %d\n", uffd_pending(fd, 100), uffd_wait_flag(&worker_done, 1));
    printf("unprotect: %s\n", uffd_err(-uffd_unprotect(fd, r + UPAGE, UPAGE)));
    pthread_join(t, NULL);
    printf("worker done %d, handler ran %d time(s), pending %d\n", worker_done, usr1_count, uffd_pending(fd, 0));
    close(fd);

    /* UFFD_FEATURE_SIGBUS: no messages, SIGBUS at the exact address. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, NULL);
    int bfd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_SIGBUS);
    char *s = uffd_map(4);
    memset(s, 's', 2 * UPAGE);
    printf("sigbus: register MISSING|WP: %s\n",
           uffd_err(-uffd_register(bfd, s, 4 * UPAGE, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("sigbus: protect page 0: %s\n", uffd_err(-uffd_protect(bfd, s, UPAGE)));
    try_access("sigbus: read page 0 (wp)", s + 7, 0);
    try_access("sigbus: write page 0 (wp)", s + 7, 1);
    try_access("sigbus: write page 1 (not wp)", s + UPAGE + 9, 1);
    try_access("sigbus: read page 2 (missing)", s + 2 * UPAGE + 11, 0);
    try_access("sigbus: write page 3 (missing)", s + 3 * UPAGE + 13, 1);
    printf("sigbus: pending %d\n", uffd_pending(bfd, 0));
    printf("sigbus: unprotect page 0: %s\n", uffd_err(-uffd_unprotect(bfd, s, UPAGE)));
    try_access("sigbus: write page 0 after unprotect", s + 7, 1);
    int64_t c = 0;
    printf("sigbus: ZEROPAGE page 2: %s\n", uffd_err(-uffd_zeropage(bfd, s + 2 * UPAGE, UPAGE, 0, &c)));
    try_access("sigbus: read page 2 after ZEROPAGE", s + 2 * UPAGE + 11, 0);
    return 0;
}
