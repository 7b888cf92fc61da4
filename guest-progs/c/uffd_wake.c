// pagelab: cflags=-pthread
// Wake rules (reference 4.8, 4.9, 4.12, 5.3 step 11, 5.12):
// * un-protect with DONTWAKE leaves the faulting thread asleep (its PTE is
//   already writable) until a UFFDIO_WAKE that covers its address; a WAKE of
//   another range does not wake it;
// * a WAKE without a resolve makes the fault re-raise: a second message;
// * UNREGISTER un-protects but does not wake WP waiters; it wakes MISSING
//   waiters;
// * close() of the uffd wakes everyone and un-protects;
// * /proc/self/fdinfo counts pending (unread) and total (unresolved) faults
//   (printed only with argv[1] "fdinfo").
// argv[1] "foreign": wake rules across two uffds (see foreign()).
// argv[1] "exit": SIGKILL of a process waiting on a fault; exit() while a
// thread waits on one.
// "Still asleep" is observed as a completion flag still clear after 100 ms:
// the thread is blocked in the kernel, so this cannot race.
#define _GNU_SOURCE
#include "uffd.h"
#include <signal.h>
#include <sys/wait.h>

struct access {
    char *p;
    int write;
    char seen;
    volatile int done;
    pthread_t t;
};

static void *access_main(void *v) {
    struct access *a = v;
    if (a->write) *(volatile char *)a->p = 'w';
    else a->seen = *(volatile char *)a->p;
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void start(struct access *a, char *p, int write) {
    a->p = p;
    a->write = write;
    a->seen = 'x';
    a->done = 0;
    pthread_create(&a->t, NULL, access_main, a);
}

static char *r;

static void expect_msg(int fd, const char *what) {
    struct uffd_msg m;
    char b[128];
    int got = uffd_read_msg(fd, &m, -1);
    if (got == 1) uffd_msg_str(&m, r, b, sizeof b);
    printf("%s: %s\n", what, got == 1 ? b : "no message");
}

/* The pending/total/API lines of /proc/self/fdinfo/<fd>. */
static int with_fdinfo; /* argv[1] == "fdinfo" */

static void fdinfo(int fd, const char *what) {
    char path[64], line[128];
    if (!with_fdinfo) return;
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("%s: fdinfo unreadable\n", what);
        return;
    }
    printf("%s: fdinfo", what);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "pending:", 8) && strncmp(line, "total:", 6) && strncmp(line, "API:", 4)) continue;
        line[strcspn(line, "\n")] = 0;
        for (char *c = line; *c; c++)
            if (*c == '\t') *c = ' ';
        printf(" [%s]", line);
    }
    printf("\n");
    fclose(f);
}

static void asleep(struct access *a, const char *what) {
    printf("%s: done %d\n", what, uffd_wait_flag(&a->done, 100));
}

static void joined(struct access *a, const char *what) {
    pthread_join(a->t, NULL);
    printf("%s: done %d\n", what, a->done);
}

/* argv[1] "exit": a child whose only thread waits on a WP fault dies of
 * SIGKILL; a process exits (exit_group from main) while another of its
 * threads waits on a WP fault, and its uffd still has the message. */
static int exits(void) {
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    r = uffd_map(2);
    memset(r, 'a', 2 * UPAGE);
    printf("register: %s\n", uffd_err(-uffd_register(fd, r, 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect: %s\n", uffd_err(-uffd_protect(fd, r, 2 * UPAGE)));
    /* A child with EVENT_FORK off has no uffd: make it fault on its own uffd. */
    pl_flush();
    int sync[2];
    if (pipe(sync)) return 2;
    pid_t pid = fork();
    if (pid == 0) {
        int cfd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
        uffd_register(cfd, r, UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
        uffd_protect(cfd, r, UPAGE);
        if (write(sync[1], "p", 1) != 1) _exit(4);
        r[0] = 'c'; /* nobody resolves this */
        _exit(5);
    }
    char c;
    if (read(sync[0], &c, 1) != 1) return 2;
    usleep(100 * 1000);
    printf("kill child: %d\n", kill(pid, SIGKILL));
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child: signaled %d sig %d\n", WIFSIGNALED(st), WIFSIGNALED(st) ? WTERMSIG(st) : 0);

    /* This process: a thread waits on a fault while main exits. */
    struct access a;
    start(&a, r + UPAGE, 1);
    expect_msg(fd, "thread write page 1");
    printf("exit with the thread still waiting\n");
    pl_flush();
    exit(0);
}

/* argv[1] "foreign": a uffd that did not register a range may protect and
 * un-protect it (no ownership check), but the fault's message goes to the
 * owner and a foreign un-protect or WAKE does not wake the owner's waiter:
 * only the owner's WAKE does. A read miss resolved with COPY|WP completes
 * without a second message (reads do not take WP faults). */
static int foreign(void) {
    int f1 = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    int f2 = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    r = uffd_map(2);
    r[0] = 'a';
    printf("f1 registers pages 0-1 MISSING|WP: %s\n",
           uffd_err(-uffd_register(f1, r, 2 * UPAGE, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("f2 protects page 0: %s\n", uffd_err(-uffd_protect(f2, r, UPAGE)));
    struct access a;
    start(&a, r, 1);
    expect_msg(f1, "f1 gets the write fault");
    printf("f2 pending %d\n", uffd_pending(f2, 0));
    printf("f2 un-protects page 0: %s\n", uffd_err(-uffd_unprotect(f2, r, UPAGE)));
    uffd_pm_line("page 0", r);
    asleep(&a, "writer");
    printf("f2 WAKE page 0: %s\n", uffd_err(-uffd_wake(f2, r, UPAGE)));
    asleep(&a, "writer");
    printf("f1 WAKE page 0: %s\n", uffd_err(-uffd_wake(f1, r, UPAGE)));
    joined(&a, "writer");
    printf("page 0 data %c\n", r[0]);

    start(&a, r + UPAGE, 0);
    expect_msg(f1, "read miss on page 1");
    char *src = uffd_map(1);
    memset(src, 's', UPAGE);
    int64_t c = 0;
    int e = uffd_copy(f1, r + UPAGE, src, UPAGE, UFFDIO_COPY_MODE_WP, &c);
    printf("COPY|WP page 1: %s copy %lld\n", uffd_err(-e), (long long)c);
    joined(&a, "reader");
    printf("read %c, pending %d\n", a.seen, uffd_pending(f1, 100));
    uffd_pm_line("page 1", r + UPAGE);
    char buf[96];
    ssize_t n = read(f1, buf, sizeof buf);
    printf("read(96) with nothing queued: %s\n", n < 0 ? uffd_err(errno) : "data");
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "exit") == 0) return exits();
    if (argc > 1 && strcmp(argv[1], "foreign") == 0) return foreign();
    with_fdinfo = argc > 1 && strcmp(argv[1], "fdinfo") == 0;
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    r = uffd_map(8);
    memset(r, 'a', 8 * UPAGE);
    printf("register WP pages 0-5: %s\n", uffd_err(-uffd_register(fd, r, 6 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("register MISSING pages 6-7: %s\n",
           uffd_err(-uffd_register(fd, r + 6 * UPAGE, 2 * UPAGE, UFFDIO_REGISTER_MODE_MISSING, NULL)));
    /* 6-7 were populated before registration: drop them so they are missing. */
    printf("DONTNEED pages 6-7: %d\n", madvise(r + 6 * UPAGE, 2 * UPAGE, MADV_DONTNEED));
    printf("protect pages 0-5: %s\n", uffd_err(-uffd_protect(fd, r, 6 * UPAGE)));
    struct access a;

    /* 1. DONTWAKE, a WAKE elsewhere, then a WAKE that covers the page. */
    start(&a, r, 1);
    expect_msg(fd, "1 write page 0");
    printf("1 unprotect DONTWAKE: %s\n", uffd_err(-uffd_wp(fd, r, UPAGE, UFFDIO_WRITEPROTECT_MODE_DONTWAKE)));
    uffd_pm_line("1 page 0", r);
    asleep(&a, "1 after DONTWAKE");
    printf("1 WAKE pages 1-3: %s\n", uffd_err(-uffd_wake(fd, r + UPAGE, 3 * UPAGE)));
    asleep(&a, "1 after WAKE elsewhere");
    printf("1 WAKE page 0: %s\n", uffd_err(-uffd_wake(fd, r, UPAGE)));
    joined(&a, "1 after WAKE");
    printf("1 pending %d\n", uffd_pending(fd, 0));

    /* 2. WAKE without a resolve: the fault re-raises. */
    start(&a, r + UPAGE, 1);
    expect_msg(fd, "2 write page 1");
    printf("2 WAKE pages 0-7 without resolve: %s\n", uffd_err(-uffd_wake(fd, r, 8 * UPAGE)));
    expect_msg(fd, "2 re-raised");
    asleep(&a, "2 still");
    printf("2 unprotect: %s\n", uffd_err(-uffd_unprotect(fd, r + UPAGE, UPAGE)));
    joined(&a, "2 after unprotect");

    /* 3. UNREGISTER does not wake a WP waiter (but un-protects). */
    start(&a, r + 2 * UPAGE, 1);
    expect_msg(fd, "3 write page 2");
    printf("3 UNREGISTER page 2: %s\n", uffd_err(-uffd_unregister(fd, r + 2 * UPAGE, UPAGE)));
    uffd_pm_line("3 page 2", r + 2 * UPAGE);
    asleep(&a, "3 after UNREGISTER");
    printf("3 WAKE page 2: %s\n", uffd_err(-uffd_wake(fd, r + 2 * UPAGE, UPAGE)));
    joined(&a, "3 after WAKE");
    printf("3 pending %d\n", uffd_pending(fd, 0));

    /* 4. UNREGISTER wakes a MISSING waiter, which then maps the zero page. */
    start(&a, r + 6 * UPAGE, 0);
    expect_msg(fd, "4 read page 6");
    asleep(&a, "4 before UNREGISTER");
    printf("4 UNREGISTER pages 6-7: %s\n", uffd_err(-uffd_unregister(fd, r + 6 * UPAGE, 2 * UPAGE)));
    joined(&a, "4 after UNREGISTER");
    printf("4 read value %d pending %d\n", a.seen, uffd_pending(fd, 0));

    /* 5. Two WP waiters; close() wakes both and un-protects. */
    struct access b;
    fdinfo(fd, "5 idle");
    start(&a, r + 3 * UPAGE, 1);
    expect_msg(fd, "5 write page 3");
    start(&b, r + 4 * UPAGE, 1);
    printf("5 second message pending %d\n", uffd_pending(fd, -1));
    fdinfo(fd, "5 one read, one pending");
    expect_msg(fd, "5 write page 4");
    fdinfo(fd, "5 both read");
    asleep(&a, "5 page 3 waiter");
    printf("5 close: %d\n", close(fd));
    joined(&a, "5 page 3 waiter after close");
    joined(&b, "5 page 4 waiter after close");
    uffd_pm_line("5 page 3", r + 3 * UPAGE);
    uffd_pm_line("5 page 5 (protected, never written)", r + 5 * UPAGE);
    r[5 * UPAGE] = 'z';
    printf("5 page 5 write after close: %c\n", r[5 * UPAGE]);
    return 0;
}
