// pagelab: cflags=-pthread
/* swap_uffd: uffd-wp on swapped-out anonymous pages (reference 5.3 do_swap_page, 5.8,
 * Appendix A SWAP-1). Needs swap configured natively.
 *
 * A WP-registered region is written, write-protected and paged out: its swap entries keep
 * the protection (pagemap bit 57). While swapped, UFFDIO_WRITEPROTECT toggles it. A read
 * swaps a protected page in still protected and raises no message; a later write raises
 * exactly one WP message. A write straight to a protected swapped page raises one message
 * too; to an un-protected one, none. fork without EVENT_FORK gives the child swap entries
 * without the bit (and writes that do not fault), while the parent keeps it; mremap
 * without EVENT_REMAP drops it from a moved swap entry; close() clears it from the swap
 * entries that remain. fork with EVENT_FORK keeps the bit in the child's swap entries.
 *
 * pagemap flags per page: p present, s swapped, x exclusively mapped, w uffd-wp, - none.
 * A handler thread logs each message (flags and page index) and un-protects that page.
 */
#define _GNU_SOURCE
#include "pl.h"
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096ul
#define N 6
static int pm = -1, uffd = -1;
static char *R;

static uint64_t pme(const void *p) {
    uint64_t v = 0;
    if (pread(pm, &v, 8, ((uintptr_t)p / PG) * 8) != 8) {
        printf("pagemap pread failed: %s\n", pl_errname(errno));
        exit(3);
    }
    return v;
}

static void show(const char *what) {
    printf("%-26s", what);
    for (int i = 0; i < N; i++) {
        uint64_t v = pme(R + i * PG);
        char f[8], *o = f;
        if (v >> 63 & 1) *o++ = 'p';
        if (v >> 62 & 1) *o++ = 's';
        if (v >> 56 & 1) *o++ = 'x';
        if (v >> 57 & 1) *o++ = 'w';
        if (o == f) *o++ = '-';
        *o = 0;
        printf(" %d:%s", i, f);
    }
    printf("\n");
}

static int wp(int first, int n, int on) {
    struct uffdio_writeprotect w = { .range = { (uintptr_t)(R + first * PG), n * PG }, .mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };
    return ioctl(uffd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

/* Messages the handler saw, in order. */
static struct { uint64_t flags; int page; } msgs[16];
static volatile int nmsgs, stop;

static void *handler(void *arg) {
    (void)arg;
    while (!stop) {
        struct pollfd p = { .fd = uffd, .events = POLLIN };
        int r = poll(&p, 1, 10);
        if (r <= 0) continue;
        struct uffd_msg m;
        if (read(uffd, &m, sizeof m) != sizeof m) continue;
        if (m.event != UFFD_EVENT_PAGEFAULT) continue;
        int page = (int)((m.arg.pagefault.address - (uintptr_t)R) / PG);
        if (nmsgs < 16) {
            msgs[nmsgs].flags = m.arg.pagefault.flags;
            msgs[nmsgs].page = page;
        }
        nmsgs++;
        struct uffdio_writeprotect w = { .range = { m.arg.pagefault.address & ~(PG - 1), PG }, .mode = 0 };
        if (ioctl(uffd, UFFDIO_WRITEPROTECT, &w)) printf("handler: resolve failed: %s\n", pl_errname(errno));
    }
    return NULL;
}

/* The first message on uffd, read by a thread (blocking in poll). */
static struct uffd_msg event;
static void *event_reader(void *arg) {
    (void)arg;
    struct pollfd p = { .fd = uffd, .events = POLLIN };
    while (poll(&p, 1, -1) != 1 || read(uffd, &event, sizeof event) != sizeof event) {
    }
    return NULL;
}

/* The VmFlags line of /proc/self/smaps for the VMA that contains R. (Containing, not
 * starting at: pagelab merges adjacent anonymous VMAs with equal flags more eagerly than
 * Linux, which also wants compatible anon_vmas and page offsets.) */
static void vmflags(const char *when) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    printf("VmFlags %s:", when);
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':'), *dash = strchr(line, '-');
        if (dash && (!colon || dash < colon) && line[0] != 'V') {
            uintptr_t lo = strtoul(line, NULL, 16), hi = strtoul(dash + 1, NULL, 16);
            in = lo <= (uintptr_t)R && (uintptr_t)R < hi;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) fputs(line + 8, stdout);
    }
    if (f) fclose(f);
}

static void messages(const char *after) {
    printf("messages after %s: %d", after, nmsgs);
    for (int i = 0; i < nmsgs && i < 16; i++)
        printf(" [page %d flags%s%s]", msgs[i].page, msgs[i].flags & UFFD_PAGEFAULT_FLAG_WRITE ? " WRITE" : "",
               msgs[i].flags & UFFD_PAGEFAULT_FLAG_WP ? " WP" : "");
    printf("\n");
    nmsgs = 0;
}

static int check(int i, char gen) {
    for (unsigned long o = 0; o < PG; o += 512)
        if (R[i * PG + o] != (char)(gen + i + o / 512)) return 0;
    return 1;
}
static void fill(int i, char gen) {
    for (unsigned long o = 0; o < PG; o += 512) R[i * PG + o] = (char)(gen + i + o / 512);
}

int main(void) {
    pm = open("/proc/self/pagemap", O_RDONLY);
    uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    pl_check("userfaultfd", uffd >= 0);
    struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP };
    pl_check("UFFDIO_API", ioctl(uffd, UFFDIO_API, &api) == 0);
    R = mmap(NULL, N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct uffdio_register reg = { .range = { (uintptr_t)R, N * PG }, .mode = UFFDIO_REGISTER_MODE_WP };
    pl_check("register WP", ioctl(uffd, UFFDIO_REGISTER, &reg) == 0);
    vmflags("registered");
    for (int i = 0; i < N; i++) fill(i, 1);
    pl_check("protect all", wp(0, N, 1) == 0);
    show("protected");
    pl_check("pageout", madvise(R, N * PG, MADV_PAGEOUT) == 0);
    show("paged out");

    /* While swapped: un-protect and protect toggle the swap entry's bit. */
    pl_check("un-protect 1 (swapped)", wp(1, 1, 0) == 0);
    pl_check("un-protect 5 (swapped)", wp(5, 1, 0) == 0);
    show("un-protected 1 and 5");
    pl_check("protect 1 again", wp(1, 1, 1) == 0);
    show("protected 1 again");

    pthread_t th;
    pl_check("handler thread", pthread_create(&th, NULL, handler, NULL) == 0);

    /* A read swaps page 0 in, protected, without a message; the write then raises one. */
    pl_check("read of 0: data", check(0, 1));
    show("after read of 0");
    messages("the read");
    fill(0, 2);
    pl_check("write of 0: data", check(0, 2));
    show("after write of 0");
    messages("the write of 0");

    /* A write straight to a protected swapped page: one message. */
    fill(2, 2);
    pl_check("write of 2: data", check(2, 2));
    show("after write of 2");
    messages("the write of 2");
    pl_check("read of 1: data", check(1, 1));
    show("after read of 1");
    messages("the read of 1");

    /* An un-protected swapped page: no message. */
    fill(5, 2);
    pl_check("write of 5: data", check(5, 2));
    messages("the write of 5");

    /* fork without EVENT_FORK: the child's swap entries lose the bit. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* A fresh open: the inherited descriptor reads the parent's page tables. */
        close(pm);
        pm = open("/proc/self/pagemap", O_RDONLY);
        show("child");
        vmflags("child");
        pl_check("child: page 3 data", check(3, 1));
        fill(4, 3);
        pl_check("child: page 4 written", check(4, 3));
        show("child after access");
        fflush(stdout);
        _exit(pl_failures);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    pl_check("child exit 0", WIFEXITED(st) && WEXITSTATUS(st) == 0);
    show("parent after child");
    messages("the child");

    stop = 1;
    pthread_join(th, NULL);

    /* mremap without EVENT_REMAP: the moved swap entry loses the bit (and the VMA its
     * registration). Page 4 moves onto the middle page of a PROT_NONE placeholder, whose
     * other pages keep it from merging with its neighbours (Linux merges anonymous VMAs
     * only with contiguous page offsets, which pagelab does not track). */
    char *dst = mmap(NULL, 3 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) + PG;
    char *moved = mremap(R + 4 * PG, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
    pl_check("mremap page 4", moved == dst);
    uint64_t mv = pme(moved);
    printf("moved page 4: present %d swapped %d uffd-wp %d\n", (int)(mv >> 63 & 1), (int)(mv >> 62 & 1), (int)(mv >> 57 & 1));
    show("after mremap");
    pl_check("moved page 4 data", moved[0] == (char)(1 + 4) && moved[512] == (char)(1 + 4 + 1));
    mv = pme(moved);
    printf("moved page 4 after read: present %d swapped %d uffd-wp %d\n", (int)(mv >> 63 & 1), (int)(mv >> 62 & 1), (int)(mv >> 57 & 1));

    /* close() un-protects the registered range, swap entries included. */
    pl_check("close", close(uffd) == 0);
    show("after close");
    vmflags("after close");
    fill(3, 4);
    pl_check("page 3 written", check(3, 4));
    show("after writes");

    /* fork WITH EVENT_FORK: the child's VMA stays registered (with a new context) and its
     * swap entries keep the bit; a read in the child swaps in still protected. */
    uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    struct uffdio_api api2 = { .api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_FORK };
    pl_check("UFFDIO_API with EVENT_FORK", ioctl(uffd, UFFDIO_API, &api2) == 0);
    R = mmap(NULL, N * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct uffdio_register reg2 = { .range = { (uintptr_t)R, N * PG }, .mode = UFFDIO_REGISTER_MODE_WP };
    pl_check("register WP (2)", ioctl(uffd, UFFDIO_REGISTER, &reg2) == 0);
    for (int i = 0; i < 3; i++) fill(i, 1);
    pl_check("protect 0-1", wp(0, 2, 1) == 0);
    pl_check("pageout 0-2", madvise(R, 3 * PG, MADV_PAGEOUT) == 0);
    show("second region paged out");
    int evfd = -1;
    /* fork() waits until the FORK event is read: a thread reads it. */
    pl_check("event thread", pthread_create(&th, NULL, event_reader, NULL) == 0);
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        close(pm);
        pm = open("/proc/self/pagemap", O_RDONLY);
        show("child (EVENT_FORK)");
        vmflags("child (EVENT_FORK)");
        pl_check("child: page 0 data", check(0, 1));
        show("child after read of 0");
        fflush(stdout);
        _exit(pl_failures);
    }
    pthread_join(th, NULL);
    pl_check("fork event read", event.event == UFFD_EVENT_FORK);
    evfd = (int)event.arg.fork.ufd;
    waitpid(pid, &st, 0);
    pl_check("child exit 0 (EVENT_FORK)", WIFEXITED(st) && WEXITSTATUS(st) == 0);
    show("parent (EVENT_FORK)");
    close(evfd);
    close(uffd);
    return pl_finish();
}
