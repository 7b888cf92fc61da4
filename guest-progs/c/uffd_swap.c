// pagelab: cflags=-pthread
// uffd-wp across swap (reference 5.3 step 5, 5.8, Appendix A SWAP-1):
// MADV_PAGEOUT of protected private anonymous pages leaves swap entries that
// carry the uffd-wp bit (pagemap bits 62 and 57); a read swaps a page in
// still protected and sends nothing; a write then sends one WP message;
// WRITEPROTECT protect and un-protect toggle the bit while swapped; fork
// without EVENT_FORK drops it in the child; close() clears it.
// Natively this needs an active swap device: without one MADV_PAGEOUT leaves
// pages in memory, which a scratch page shows first; the program then says
// so on its only line and stops. The transcript with swap is committed as
// uffd_swap.expected and pagelab (which always has a swap device) is
// compared against it.
#define _GNU_SOURCE
#include "uffd.h"
#include <sched.h>
#include <sys/wait.h>

static char *r;

static void on_msg(struct uffd_handler *h, const struct uffd_msg *m) {
    char b[128];
    uffd_msg_str(m, r, b, sizeof b);
    printf("handler: %s\n", b);
    if (m->event == UFFD_EVENT_PAGEFAULT) {
        int e = uffd_unprotect(h->fd, (void *)(uintptr_t)(m->arg.pagefault.address & ~(UPAGE - 1)), UPAGE);
        if (e) printf("handler: unprotect %s\n", uffd_err(-e));
    }
}

static void pm(const char *what, int page) {
    char b[64];
    printf("%s: page %d %s\n", what, page, uffd_pm_str(uffd_pagemap(r + page * UPAGE), b, sizeof b));
}

/* MADV_PAGEOUT skips a page that is not on an LRU list yet (Linux batches
 * LRU additions per CPU), so the whole process runs on one CPU (set in main)
 * and the call is repeated, at most 100 times, until every page is swapped:
 * only the final state is printed. */
static void pageout(int first, int n) {
    int e = 0, all = 0;
    for (int k = 0; k < 100 && !all; k++) {
        if (k) usleep(1000);
        e = madvise(r + first * UPAGE, n * UPAGE, MADV_PAGEOUT);
        if (e) break;
        all = 1;
        for (int i = first; i < first + n; i++) all &= !!(uffd_pagemap(r + i * UPAGE) & PM_SWAP);
    }
    printf("MADV_PAGEOUT pages %d-%d: %s\n", first, first + n - 1, e ? uffd_err(errno) : "0");
}

/* Whether MADV_PAGEOUT swaps here: a scratch page is paged out (with the
 * retries of pageout()) and pagemap must then say "swapped". Decided by
 * behaviour, not by /proc/swaps, which pagelab need not provide. */
static int have_swap(void) {
    char *scratch = uffd_map(1);
    scratch[0] = 1;
    int ok = 0;
    for (int k = 0; k < 100 && !ok; k++) {
        if (k) usleep(1000);
        if (madvise(scratch, UPAGE, MADV_PAGEOUT)) break;
        ok = !!(uffd_pagemap(scratch) & PM_SWAP);
    }
    munmap(scratch, UPAGE);
    return ok;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one);
    if (!have_swap()) {
        printf("no swap device: MADV_PAGEOUT cannot swap here\n");
        return 0;
    }
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    r = uffd_map(6);
    for (int i = 0; i < 6; i++) memset(r + i * UPAGE, 'a' + i, UPAGE);
    printf("register WP: %s\n", uffd_err(-uffd_register(fd, r, 6 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect pages 0-2: %s\n", uffd_err(-uffd_protect(fd, r, 3 * UPAGE)));
    printf("protect page 4: %s\n", uffd_err(-uffd_protect(fd, r + 4 * UPAGE, UPAGE)));
    struct uffd_handler h;
    uffd_handler_start(&h, fd, r, on_msg, NULL);

    pageout(0, 6);
    for (int i = 0; i < 6; i++) pm("swapped", i);

    /* A read swaps page 0 in, still protected, without a message. */
    long before = h.nmsgs;
    printf("read page 0: %c, messages %ld\n", r[0], h.nmsgs - before);
    pm("after read", 0);
    /* ... and a write then sends one WP message. */
    r[0] = 'A';
    printf("write page 0: %c, messages %ld\n", r[0], h.nmsgs - before);
    pm("after write", 0);

    /* A write straight to a swapped protected page: one message. */
    before = h.nmsgs;
    r[UPAGE] = 'B';
    printf("write page 1 (swapped): %c, messages %ld\n", r[UPAGE], h.nmsgs - before);
    pm("after write", 1);

    /* Toggling the bit while swapped. */
    printf("unprotect page 2 while swapped: %s\n", uffd_err(-uffd_unprotect(fd, r + 2 * UPAGE, UPAGE)));
    pm("swapped, unprotected", 2);
    printf("protect page 3 while swapped: %s\n", uffd_err(-uffd_protect(fd, r + 3 * UPAGE, UPAGE)));
    pm("swapped, protected", 3);
    printf("protect page 2 again while swapped: %s\n", uffd_err(-uffd_protect(fd, r + 2 * UPAGE, UPAGE)));
    printf("unprotect page 2 again while swapped: %s\n", uffd_err(-uffd_unprotect(fd, r + 2 * UPAGE, UPAGE)));
    pm("swapped, toggled twice", 2);
    before = h.nmsgs;
    r[2 * UPAGE] = 'C';
    r[3 * UPAGE] = 'D';
    printf("write pages 2 and 3: %c%c, messages %ld\n", r[2 * UPAGE], r[3 * UPAGE], h.nmsgs - before);
    pm("after write", 2);
    pm("after write", 3);

    /* fork without EVENT_FORK: the child's swap entry loses the bit. */
    pm("parent before fork", 4);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        pm("child", 4);
        pm("child", 5);
        printf("child: page 4 data %c\n", r[4 * UPAGE]);
        pl_flush();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    pm("parent after fork", 4);

    /* Swap a protected page out again after a swap-in; close clears the bit. */
    pageout(0, 1);
    printf("protect page 0: %s\n", uffd_err(-uffd_protect(fd, r, UPAGE)));
    pm("protected, swapped", 0);
    pm("protected, swapped", 4);
    uffd_handler_stop(&h);
    printf("close: %d\n", close(fd));
    pm("after close", 0);
    pm("after close", 4);
    r[4 * UPAGE] = 'E';
    printf("write page 4 after close: %c\n", r[4 * UPAGE]);
    uint64_t sum = PL_FNV_INIT;
    for (int i = 0; i < 6; i++) sum = pl_fnv(sum, r + i * UPAGE, UPAGE);
    printf("checksum %016llx, messages %ld\n", (unsigned long long)sum, h.nmsgs);
    return 0;
}
