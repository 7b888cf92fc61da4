// pagelab: cflags=-pthread
// The four-step COW + uffd-wp sequence after fork (reference 5.3 step 4):
// a page COW-shared between parent and child and write-protected in the
// parent.
//   1. the parent's write faults and sends a WP message, not a COW;
//   2. UFFDIO_WRITEPROTECT resolve (DONTWAKE here, so the state between
//      resolve and retry can be read) clears the bit but leaves the PTE
//      read-only: the page is still shared (pagemap: not exclusive);
//   3. after UFFDIO_WAKE the retried write faults again (no second message)
//   4. and takes the COW path: the write completes on a private copy.
// The child keeps the old data. The main thread is the monitor; a worker
// thread does the write; the child answers commands over a pipe so all
// output is sequenced.
#define _GNU_SOURCE
#include "uffd.h"
#include <sys/wait.h>

static char *region;
static volatile int worker_done;

static void *worker(void *arg) {
    (void)arg;
    region[0] = 'P';
    __atomic_store_n(&worker_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void child_loop(int cmd, int reply) {
    char c;
    while (read(cmd, &c, 1) == 1) {
        if (c == 'q') break;
        char b[64];
        printf("child: page 0 data %c, pagemap %s\n", region[0], uffd_pm_str(uffd_pagemap(region), b, sizeof b));
        printf("child: page 1 data %c, pagemap %s\n", region[UPAGE], uffd_pm_str(uffd_pagemap(region + UPAGE), b, sizeof b));
        pl_flush();
        if (write(reply, "k", 1) != 1) _exit(4);
    }
    _exit(0);
}

static void ask_child(int cmd, int reply) {
    char c;
    pl_flush();
    if (write(cmd, "r", 1) != 1 || read(reply, &c, 1) != 1) {
        printf("child pipe broken\n");
        exit(5);
    }
}

int main(void) {
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    region = uffd_map(2);
    memset(region, 'A', UPAGE);
    memset(region + UPAGE, 'B', UPAGE);
    printf("register WP: %s\n", uffd_err(-uffd_register(fd, region, 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    uffd_pm_line("parent before fork, page 0", region);

    int to_child[2], from_child[2];
    if (pipe(to_child) || pipe(from_child)) return 2;
    pl_flush();
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) child_loop(to_child[0], from_child[1]);

    uffd_pm_line("parent after fork, page 0", region);
    printf("protect page 0: %s\n", uffd_err(-uffd_protect(fd, region, UPAGE)));
    uffd_pm_line("parent after protect, page 0", region);
    ask_child(to_child[1], from_child[0]);

    /* Step 1: the write faults with a WP message; nothing is copied yet. */
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    struct uffd_msg m;
    int got = uffd_read_msg(fd, &m, -1);
    char b[128];
    if (got == 1) uffd_msg_str(&m, region, b, sizeof b);
    printf("step 1: %s\n", got == 1 ? b : "no message");
    printf("step 1: worker done %d, parent page 0 data %c\n", worker_done, region[0]);
    uffd_pm_line("step 1: parent page 0", region);

    /* Step 2: resolve without waking. The bit goes, the page stays shared. */
    printf("step 2: unprotect DONTWAKE: %s\n",
           uffd_err(-uffd_wp(fd, region, UPAGE, UFFDIO_WRITEPROTECT_MODE_DONTWAKE)));
    uffd_pm_line("step 2: parent page 0", region);
    printf("step 2: worker done %d (still asleep)\n", uffd_wait_flag(&worker_done, 100));

    /* Steps 3 and 4: the wake retries the write, which faults again and COWs. */
    printf("step 3: wake: %s\n", uffd_err(-uffd_wake(fd, region, UPAGE)));
    pthread_join(t, NULL);
    printf("step 4: worker done %d, parent page 0 data %c, messages pending %d\n", worker_done, region[0],
           uffd_pending(fd, 0));
    uffd_pm_line("step 4: parent page 0", region);
    ask_child(to_child[1], from_child[0]);

    /* A second write to the now-private page: no fault, no message. */
    region[1] = 'Q';
    printf("second write: messages pending %d\n", uffd_pending(fd, 0));

    /* Page 1 (shared, never protected): a write COWs silently. */
    region[UPAGE] = 'C';
    uffd_pm_line("parent page 1 after write", region + UPAGE);
    ask_child(to_child[1], from_child[0]);

    pl_flush();
    if (write(to_child[1], "q", 1) != 1) return 2;
    int st = 0;
    waitpid(pid, &st, 0);
    printf("child exit %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return 0;
}
