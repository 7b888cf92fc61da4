// pagelab: cflags=-pthread
// thp_fork: fork of anonymous THPs and copy-on-write after it (issue 10;
// reference 3.4, 5.7, 5.13). The parent maps a fresh MADV_HUGEPAGE region at
// a 2 MiB-aligned base, writes every page (generation g1, thp.h) so it is
// PMD-mapped, takes a snapshot of its frames and forks. The child only obeys
// commands from a pipe (write a page, print its data, exit) and acknowledges
// each; the parent prints both processes' state from /proc/PID/smaps (Rss,
// AnonHugePages, VmFlags uw) and /proc/PID/pagemap (flags in runs; frames
// against the snapshot: kept = the parent's frame before the fork, new).
//   * fork shares the PMD (AnonHugePages 2048 in both, no page exclusive);
//   * COW: the first writer splits its own PMD and copies one 4 KiB page, the
//     other keeps its PMD; then the second writer splits too (the folio is
//     still mapped by the first's PTEs). Both orders;
//   * after the child exits, the parent's PMD is exclusive again and a write
//     reuses it (no split, no copy); writes to a split THP after the other
//     process exited reuse its 4 KiB pages;
//   * the huge zero PMD is shared by fork; each side's write maps its own THP;
//   * uffd-wp: without EVENT_FORK the child's PMD has no wp and its write does
//     not fault; with EVENT_FORK the child's PMD keeps wp, its write faults on
//     the child's uffd (4 KiB-aligned address), un-protecting its whole 2 MiB
//     keeps its PMD and the retried write splits it (COW). The parent's PMD
//     stays protected in both cases; its write gives a WP message first, then
//     COW.
#define _GNU_SOURCE
#include "thp.h"
#include <sys/wait.h>

static void section(const char *s) {
    printf("== %s\n", s);
}

static const int G123[] = { 1, 2, 3 };
static uint64_t snap[THP_NR];
static char *p;
static pid_t child;
static int to_child[2], from_child[2];

struct cmd {
    char op; /* 'w' write, 'd' data, 'x' exit */
    int page, gen;
};

static void child_loop(void) {
    for (;;) {
        struct cmd c;
        if (read(to_child[0], &c, sizeof c) != sizeof c) _exit(4);
        if (c.op == 'w') {
            *(volatile char *)(p + (size_t)c.page * UPAGE) = thp_byte(c.page, c.gen);
            uffd_barrier();
            thp_fill(p, (size_t)c.page, (size_t)c.page + 1, c.gen);
        } else if (c.op == 'd') {
            thp_data("child data", p, 0, THP_NR, G123, 3);
            pl_flush();
        } else if (c.op == 'x') {
            _exit(0);
        }
        if (write(from_child[1], "k", 1) != 1) _exit(5);
    }
}

static void send_cmd(char op, int page, int gen) {
    struct cmd c = { op, page, gen };
    pl_flush();
    if (write(to_child[1], &c, sizeof c) != sizeof c) exit(2);
}

static void wait_ack(void) {
    char k;
    if (read(from_child[0], &k, 1) != 1) {
        printf("child did not answer\n");
        pl_flush();
        exit(2);
    }
}

static void cmd(char op, int page, int gen) {
    if (op == 'w') printf("child writes page %d\n", page);
    send_cmd(op, page, gen);
    wait_ack();
}

/* Forks; the child runs child_loop. Flushes stdout first. */
static void do_fork(void) {
    if (pipe(to_child) || pipe(from_child)) exit(2);
    pl_flush();
    child = fork();
    if (child < 0) {
        printf("fork failed\n");
        exit(2);
    }
    if (child == 0) child_loop();
}

static void end_child(void) {
    send_cmd('x', 0, 0);
    int st = 0;
    waitpid(child, &st, 0);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    close(to_child[0]);
    close(to_child[1]);
    close(from_child[0]);
    close(from_child[1]);
    child = 0;
}

static void state_of(const char *who, int pid) {
    char w[64];
    thp_smaps_pid(pid, who, p, 0, THP_NR);
    thp_pm_pid(pid, who, p, 0, THP_NR);
    snprintf(w, sizeof w, "%s frames", who);
    thp_frames_vs_pid(pid, w, p, THP_NR, snap, 0);
}

static void states(const char *when) {
    printf("-- %s\n", when);
    state_of("parent", 0);
    if (child) state_of("child", child);
}

static void pwrite_page(int page, int gen) {
    printf("parent writes page %d\n", page);
    pl_flush();
    *(volatile char *)(p + (size_t)page * UPAGE) = thp_byte(page, gen);
    uffd_barrier();
    thp_fill(p, (size_t)page, (size_t)page + 1, gen);
}

static void fresh(void) {
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    thp_fill(p, 0, THP_NR, 1);
    thp_require(p, THP_NR, 2048);
    thp_pfns(p, THP_NR, snap);
}

static void cow(int child_first) {
    section(child_first ? "fork, then the child writes first" : "fork, then the parent writes first");
    fresh();
    do_fork();
    states("after fork");
    if (child_first) {
        cmd('w', 5, 2);
        states("after the child's write");
        pwrite_page(6, 3);
        states("after the parent's write");
    } else {
        pwrite_page(5, 2);
        states("after the parent's write");
        cmd('w', 6, 3);
        states("after the child's write");
    }
    cmd('d', 0, 0);
    thp_data("parent data", p, 0, THP_NR, G123, 3);
    end_child();
    states("after the child exited");
    pwrite_page(7, 3);
    pwrite_page(child_first ? 5 : 6, 3);
    states(child_first ? "after parent writes to pages 7 and 5" : "after parent writes to pages 7 and 6");
    thp_data("parent data", p, 0, THP_NR, G123, 3);
    munmap(p, THP_SIZE);
}

static void child_exits(void) {
    section("fork, the child exits, then the parent writes");
    fresh();
    do_fork();
    states("after fork");
    end_child();
    states("after the child exited");
    pwrite_page(5, 2);
    states("after the parent's write");
    thp_data("parent data", p, 0, THP_NR, G123, 3);
    munmap(p, THP_SIZE);
}

static void zero(void) {
    section("fork of a huge zero PMD");
    p = thp_map(THP_NR, MADV_HUGEPAGE);
    printf("parent reads page 0: %d\n", *(volatile char *)p);
    thp_pfns(p, THP_NR, snap);
    do_fork();
    states("after fork");
    printf("child frames: %s\n", thp_frames_pid(child, p, 0, THP_NR));
    cmd('w', 5, 2);
    states("after the child's write");
    printf("child frames: %s, parent frames: %s\n", thp_frames_pid(child, p, 0, THP_NR), thp_frames(p, 0, THP_NR));
    pwrite_page(6, 3);
    states("after the parent's write");
    printf("parent frames: %s\n", thp_frames(p, 0, THP_NR));
    cmd('d', 0, 0);
    thp_data("parent data", p, 0, THP_NR, G123, 3);
    end_child();
    munmap(p, THP_SIZE);
}

/* ---- uffd-wp ---- */

static volatile int fork_ufd = -1;

static void on_msg(struct uffd_handler *h, const struct uffd_msg *m) {
    char b[128];
    uffd_msg_str(m, p, b, sizeof b);
    printf("handler: %s\n", b);
    if (m->event == UFFD_EVENT_FORK) {
        __atomic_store_n(&fork_ufd, (int)m->arg.fork.ufd, __ATOMIC_RELEASE);
    } else if (m->event == UFFD_EVENT_PAGEFAULT) {
        printf("handler: unprotect pages 0-511\n"); /* before it wakes the writer */
        int e = uffd_unprotect(h->fd, p, THP_SIZE);
        if (e) printf("handler: unprotect failed %s\n", uffd_err(-e));
    }
}

static void wp_fork(int event) {
    section(event ? "uffd-wp, fork with EVENT_FORK" : "uffd-wp, fork without EVENT_FORK");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, event ? UFFD_FEATURE_EVENT_FORK : 0);
    fresh();
    struct uffd_handler h;
    fork_ufd = -1;
    uffd_handler_start(&h, fd, p, on_msg, NULL);
    printf("register: %s\n", uffd_err(-uffd_register(fd, p, THP_SIZE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect: %s\n", uffd_err(-uffd_protect(fd, p, THP_SIZE)));
    do_fork();
    int ufd = -1;
    if (event) {
        while ((ufd = __atomic_load_n(&fork_ufd, __ATOMIC_ACQUIRE)) < 0) usleep(1000);
        printf("fork returned\n");
    }
    states("after fork");
    if (event) {
        printf("child writes page 5\n");
        send_cmd('w', 5, 2);
        struct uffd_msg m;
        char b[128];
        int got = uffd_read_msg(ufd, &m, -1);
        if (got == 1) uffd_msg_str(&m, p, b, sizeof b);
        printf("on the child's uffd: %s\n", got == 1 ? b : "no message");
        pl_flush();
        /* The child is blocked in its fault: its PMD as it is now. */
        state_of("child while blocked", child);
        printf("unprotect pages 0-511 via the child's uffd\n");
        pl_flush();
        int e = uffd_unprotect(ufd, p, THP_SIZE);
        wait_ack();
        printf("unprotect: %s\n", uffd_err(-e));
    } else {
        cmd('w', 5, 2);
    }
    printf("messages on the parent's uffd: %ld\n", h.nmsgs);
    states("after the child's write");
    pwrite_page(6, 3);
    states("after the parent's write");
    cmd('d', 0, 0);
    thp_data("parent data", p, 0, THP_NR, G123, 3);
    end_child();
    if (event) {
        printf("child's uffd after exit: protect %s, pending %d\n", uffd_err(-uffd_protect(ufd, p, THP_SIZE)), uffd_pending(ufd, 0));
        close(ufd);
    }
    uffd_handler_stop(&h);
    printf("messages on the parent's uffd: %ld\n", h.nmsgs);
    close(fd);
    munmap(p, THP_SIZE);
}

int main(void) {
    thp_khugepaged_settle();
    cow(1);
    cow(0);
    child_exits();
    zero();
    wp_fork(0);
    wp_fork(1);
    thp_khugepaged_check();
    printf("done\n");
    return 0;
}
