// pagelab: cflags=-pthread
// fork() over uffd-wp protected shmem (issue 9; reference 3.4, 5.13). The
// parent has a memfd mapped MAP_SHARED (page 0 present and protected, page 1
// cached but unmapped and protected: a marker, page 2 a protected hole: a
// marker, page 3 present and not protected) and a private anonymous region
// (page 0 present and protected, page 1 a marker: WP_UNPOPULATED).
// Without EVENT_FORK the child's VMAs lose their registration: the shmem
// PTEs are not copied at all (the child faults pages in from the page cache,
// without wp), the anonymous page is copied without wp and the marker
// dropped; the child's writes do not fault and reach the shared file. With
// EVENT_FORK the child keeps PTEs, wp bits and markers, shmem included; its
// writes fault on the child's uffd (read from the FORK message by the
// parent's handler thread) and the parent's main thread resolves them. The
// parent's own PTEs keep their protection in both cases. Last, without uffd:
// a MAP_PRIVATE memfd mapping with a COW page has all its PTEs copied (it has
// an anon_vma), so the child reads the parent's copy; one only read is not
// copied; a hole punch keeps the copy, MADV_DONTNEED drops it. pagemap rows: one character per page (shm.h).
#define _GNU_SOURCE
#include "shm.h"
#include <sys/wait.h>

static char *s, *a;
static int mfd;
static volatile int fork_ufd = -1;

static void on_msg(struct uffd_handler *h, const struct uffd_msg *m) {
    char b[128];
    uffd_msg_str(m, s, b, sizeof b);
    printf("handler: %s\n", b);
    if (m->event == UFFD_EVENT_FORK) {
        __atomic_store_n(&fork_ufd, (int)m->arg.fork.ufd, __ATOMIC_RELEASE);
    } else if (m->event == UFFD_EVENT_PAGEFAULT) {
        void *page = (void *)(uintptr_t)(m->arg.pagefault.address & ~(UPAGE - 1));
        printf("handler: unprotect\n"); /* before it wakes the writer */
        int e = uffd_unprotect(h->fd, page, UPAGE);
        if (e) printf("handler: unprotect failed %s\n", uffd_err(-e));
    }
}

static void rows(const char *who) {
    char w[64];
    snprintf(w, sizeof w, "%s shmem", who);
    shm_pm_print(w, s, 4);
    snprintf(w, sizeof w, "%s anon", who);
    shm_pm_print(w, a, 2);
}

static char file_byte(long i) {
    char c = '?';
    if (pread(mfd, &c, 1, i * (off_t)UPAGE) != 1) c = '!';
    return c ? c : '0';
}

static int wait_child(pid_t pid) {
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Sets up both regions on a fresh uffd with `features`, protected. */
static int setup(uint64_t features) {
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED | features);
    mfd = shm_memfd("fork", 4);
    s = shm_map(mfd, 4, MAP_SHARED);
    a = shm_map_anon(2);
    s[0] = 'a';
    pwrite(mfd, "b", 1, UPAGE);
    s[3 * UPAGE] = 'd';
    a[0] = 'x';
    int e1 = uffd_register(fd, s, 4 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    int e2 = uffd_register(fd, a, 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    int e3 = uffd_protect(fd, s, 3 * UPAGE);
    int e4 = uffd_protect(fd, a, 2 * UPAGE);
    printf("register %s %s, protect %s %s\n", uffd_err(-e1), uffd_err(-e2), uffd_err(-e3), uffd_err(-e4));
    rows("parent");
    return fd;
}

static void teardown(int fd) {
    munmap(s, 4 * UPAGE);
    munmap(a, 2 * UPAGE);
    close(mfd);
    close(fd);
}

static void without_event(void) {
    printf("== without EVENT_FORK\n");
    int fd = setup(0);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        rows("child");
        s[0] = 'A';
        printf("child: read page 1: %c\n", *(volatile char *)(s + UPAGE));
        s[2 * UPAGE] = 'C';
        a[0] = 'X';
        a[UPAGE] = 'Y';
        printf("child: wrote shmem pages 0, 2 and anon pages 0, 1 without a fault\n");
        rows("child after");
        pl_flush();
        _exit(0);
    }
    int st = wait_child(pid);
    printf("child exit %d, pending %d\n", st, uffd_pending(fd, 0));
    printf("file: %c %c %c %c, parent anon page 0 %c\n", file_byte(0), file_byte(1), file_byte(2), file_byte(3), a[0]);
    rows("parent");
    teardown(fd);
}

static void with_event(void) {
    printf("== with EVENT_FORK\n");
    int fd = setup(UFFD_FEATURE_EVENT_FORK);
    struct uffd_handler h;
    uffd_handler_start(&h, fd, s, on_msg, NULL);
    int go[2], back[2];
    if (pipe(go) || pipe(back)) exit(2);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1) _exit(4);
        rows("child");
        pl_flush();
        s[0] = 'A'; /* faults on the child's uffd */
        printf("child: wrote shmem page 0\n");
        pl_flush();
        s[2 * UPAGE] = 'C'; /* a marker: installed wp, then the WP fault */
        printf("child: wrote shmem page 2\n");
        printf("child: read page 1: %c\n", *(volatile char *)(s + UPAGE));
        rows("child after");
        pl_flush();
        if (write(back[1], "d", 1) != 1) _exit(5);
        if (read(go[0], &c, 1) != 1) _exit(4);
        a[0] = 'X';
        printf("child: wrote anon page 0\n");
        pl_flush();
        _exit(0);
    }
    int ufd;
    while ((ufd = __atomic_load_n(&fork_ufd, __ATOMIC_ACQUIRE)) < 0) usleep(1000);
    printf("fork returned\n");
    pl_flush();
    if (write(go[1], "g", 1) != 1) exit(2);
    for (int i = 0; i < 2; i++) {
        struct uffd_msg m;
        char b[128];
        int got = uffd_read_msg(ufd, &m, -1);
        if (got == 1) uffd_msg_str(&m, s, b, sizeof b);
        printf("on the child's uffd: %s\n", got == 1 ? b : "no message");
        pl_flush();
        if (got == 1 && m.event == UFFD_EVENT_PAGEFAULT)
            uffd_unprotect(ufd, (void *)(uintptr_t)(m.arg.pagefault.address & ~(UPAGE - 1)), UPAGE);
    }
    char c;
    if (read(back[0], &c, 1) != 1) exit(2);
    printf("file: %c %c %c %c\n", file_byte(0), file_byte(1), file_byte(2), file_byte(3));
    rows("parent");
    pl_flush();
    if (write(go[1], "g", 1) != 1) exit(2);
    struct uffd_msg m;
    char b[128];
    int got = uffd_read_msg(ufd, &m, -1);
    if (got == 1) uffd_msg_str(&m, a, b, sizeof b);
    printf("on the child's uffd: %s (anon)\n", got == 1 ? b : "no message");
    pl_flush();
    int e = uffd_unprotect(ufd, a, UPAGE);
    printf("child exit %d\n", wait_child(pid));
    printf("unprotect via the child's uffd: %s\n", uffd_err(-e));
    close(ufd);
    s[0] = 'P'; /* the parent's PTE is still protected: its handler resolves */
    printf("parent wrote shmem page 0: file %c\n", file_byte(0));
    printf("parent anon page 0: %c\n", a[0]);
    uffd_handler_stop(&h);
    printf("messages on the parent's uffd: %ld\n", h.nmsgs);
    teardown(fd);
}

/* fork over MAP_PRIVATE file mappings (vma_needs_copy: anon_vma). */
static void private_cow(void) {
    int fd = shm_memfd("cow", 4);
    if (pwrite(fd, "ab", 1, 0) != 1 || pwrite(fd, "b", 1, UPAGE) != 1) printf("pwrite failed\n");
    char *p = shm_map(fd, 4, MAP_PRIVATE);
    char *q = shm_map(fd, 4, MAP_PRIVATE);
    p[0] = 'X';
    printf("== MAP_PRIVATE, no uffd\n");
    printf("parent reads p[0]=%c p[1]=%c q[0]=%c\n", p[0], *(volatile char *)(p + UPAGE), *(volatile char *)q);
    shm_pm_print("parent written", p, 4);
    shm_pm_print("parent read-only", q, 4);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        shm_pm_print("child written", p, 4);
        shm_pm_print("child read-only", q, 4);
        printf("child reads p[0]=%c p[1]=%c q[0]=%c\n", p[0], p[UPAGE], q[0]);
        pl_flush();
        _exit(0);
    }
    printf("child exit %d\n", wait_child(pid));
    char c = 0;
    if (pread(fd, &c, 1, 0) != 1) c = '!';
    printf("file page 0 still reads %c\n", c);
    /* A hole punch zaps the file's pages, not the private copy (even_cows = 0);
     * MADV_DONTNEED zaps both. */
    printf("punch pages 0-1: %s\n", uffd_err(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 2 * UPAGE) ? errno : 0));
    shm_pm_print("after the punch", p, 4);
    printf("reads p[0]=%c p[1]=%d\n", p[0], p[UPAGE]);
    printf("DONTNEED: %s\n", uffd_err(madvise(p, 4 * UPAGE, MADV_DONTNEED) ? errno : 0));
    shm_pm_print("after DONTNEED", p, 4);
    printf("reads p[0]=%d\n", p[0]);
    munmap(p, 4 * UPAGE);
    munmap(q, 4 * UPAGE);
    close(fd);
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    without_event();
    with_event();
    private_cow();
    return 0;
}
