// pagelab: cflags=-pthread
// fork() of a process with uffd-wp protected pages, without and with
// UFFD_FEATURE_EVENT_FORK (reference 3.4, 5.13).
// Without EVENT_FORK the child's VMAs lose their uffd state and its PTEs the
// wp bit (pagemap bit 57 clear); its writes do not fault.
// With EVENT_FORK the parent's handler thread reads a FORK message whose ufd
// is installed in the parent at read time (flags copied from the parent
// uffd); the child keeps its bits, its write faults on the new uffd, which
// the parent's main thread serves. After the child exits the new uffd's mm is
// gone: WRITEPROTECT and COPY give ESRCH (copy untouched), REGISTER and
// UNREGISTER ENOMEM, poll 0. The parent's own page stays protected and COW-
// shared: its write gives a WP message first.
#define _GNU_SOURCE
#include "uffd.h"
#include <sys/wait.h>

static char *r;
static volatile int fork_ufd = -1;

static void on_msg(struct uffd_handler *h, const struct uffd_msg *m) {
    char b[128];
    uffd_msg_str(m, r, b, sizeof b);
    printf("handler: %s\n", b);
    if (m->event == UFFD_EVENT_FORK) {
        int ufd = (int)m->arg.fork.ufd;
        int fl = fcntl(ufd, F_GETFL), fdfl = fcntl(ufd, F_GETFD);
        printf("handler: ufd is fd %d, O_NONBLOCK %d, FD_CLOEXEC %d\n", ufd, !!(fl & O_NONBLOCK), !!(fdfl & FD_CLOEXEC));
        __atomic_store_n(&fork_ufd, ufd, __ATOMIC_RELEASE);
    } else if (m->event == UFFD_EVENT_PAGEFAULT) {
        void *page = (void *)(uintptr_t)(m->arg.pagefault.address & ~(UPAGE - 1));
        printf("handler: unprotect\n");
        int e = uffd_unprotect(h->fd, page, UPAGE);
        if (e) printf("handler: unprotect failed %s\n", uffd_err(-e));
    }
}

static void child_report(const char *who) {
    for (int i = 0; i < 2; i++) {
        char what[64];
        snprintf(what, sizeof what, "%s: child page %d", who, i);
        uffd_pm_line(what, r + i * UPAGE);
    }
}

static int wait_child(pid_t pid) {
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);

    /* --- without EVENT_FORK --- */
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    r = uffd_map(2);
    memset(r, 'a', 2 * UPAGE);
    printf("plain: register %s\n", uffd_err(-uffd_register(fd, r, 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("plain: protect %s\n", uffd_err(-uffd_protect(fd, r, 2 * UPAGE)));
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        child_report("plain");
        r[0] = 'c';
        printf("plain: child wrote page 0 without a fault: %c\n", r[0]);
        child_report("plain after write");
        pl_flush();
        _exit(0);
    }
    printf("plain: child exit %d, pending %d\n", wait_child(pid), uffd_pending(fd, 0));
    uffd_pm_line("plain: parent page 0", r);
    printf("plain: parent data %c\n", r[0]);
    close(fd);
    uffd_pm_line("plain: parent page 0 after close", r);
    munmap(r, 2 * UPAGE);

    /* --- with EVENT_FORK --- */
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_FORK);
    r = uffd_map(2);
    memset(r, 'b', 2 * UPAGE);
    printf("event: register %s\n", uffd_err(-uffd_register(fd, r, 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("event: protect %s\n", uffd_err(-uffd_protect(fd, r, 2 * UPAGE)));
    struct uffd_handler h;
    uffd_handler_start(&h, fd, r, on_msg, NULL);
    int go[2];
    if (pipe(go)) return 2;
    pl_flush();
    pid = fork();
    if (pid == 0) {
        char gc;
        if (read(go[0], &gc, 1) != 1) _exit(4); /* the parent has printed its part */
        child_report("event");
        pl_flush();
        r[0] = 'd'; /* faults on the child's uffd; the parent resolves it */
        printf("event: child wrote page 0: %c\n", r[0]);
        child_report("event after write");
        pl_flush();
        _exit(0);
    }
    /* fork returned: the handler has read the FORK event (its on_msg may
     * still be running: wait for it to publish the fd). */
    int ufd;
    while ((ufd = __atomic_load_n(&fork_ufd, __ATOMIC_ACQUIRE)) < 0) usleep(1000);
    printf("event: fork returned, ufd known %d\n", ufd >= 0);
    pl_flush();
    if (write(go[1], "g", 1) != 1) return 2;
    struct uffd_msg m;
    char b[128];
    int got = uffd_read_msg(ufd, &m, -1);
    if (got == 1) uffd_msg_str(&m, r, b, sizeof b);
    printf("event: on the child's uffd: %s\n", got == 1 ? b : "no message");
    pl_flush();
    int e = uffd_unprotect(ufd, r, UPAGE);
    int st = wait_child(pid);
    printf("event: unprotect via child's uffd %s\n", uffd_err(-e));
    printf("event: child exit %d\n", st);
    uffd_pm_line("event: parent page 0", r);
    printf("event: parent data %c\n", r[0]);

    /* The child's mm is gone. */
    int64_t c = 777;
    char src[16] = { 0 };
    printf("dead: WRITEPROTECT %s\n", uffd_err(-uffd_protect(ufd, r, UPAGE)));
    printf("dead: COPY %s", uffd_err(-uffd_copy(ufd, r, src, UPAGE, 0, &c)));
    printf(" copy %lld\n", (long long)c);
    printf("dead: REGISTER %s\n", uffd_err(-uffd_register(ufd, r, UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("dead: UNREGISTER %s\n", uffd_err(-uffd_unregister(ufd, r, UPAGE)));
    printf("dead: WAKE %s\n", uffd_err(-uffd_wake(ufd, r, UPAGE)));
    struct pollfd p = { ufd, POLLIN, 0 };
    int n = poll(&p, 1, 0);
    printf("dead: poll %d revents %#x\n", n, p.revents);
    close(ufd);

    /* The parent's page is protected and was COW-shared: WP message first. */
    pl_flush();
    r[UPAGE] = 'e';
    printf("event: parent wrote page 1: %c\n", r[UPAGE]);
    uffd_pm_line("event: parent page 1", r + UPAGE);
    uffd_handler_stop(&h);
    printf("messages on the parent's uffd: %ld\n", h.nmsgs);
    return 0;
}
