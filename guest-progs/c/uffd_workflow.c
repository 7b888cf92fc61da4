// pagelab: cflags=-pthread
// The userfaultfd-wp worker + handler workflow. The main thread (the worker)
// writes page after page of a write-protected region; a handler thread reads
// each message, logs it (event, flags, page index, whether ptid is the
// worker's TID) and un-protects exactly that page (UFFDIO_WRITEPROTECT mode
// 0), which wakes the worker. The log is deterministic by construction: the
// handler prints before it resolves, and the worker prints only after its
// write completed. Then: a second pass over the same pages takes no fault,
// never-populated pages take no message (no WP_UNPOPULATED), a zero-page PTE
// protected after a read faults once and ends on a private page. argv[1]: pages (default 16).
#define _GNU_SOURCE
#include "uffd.h"

static pid_t worker_tid;
/* The region the transcript's page indexes are relative to (set by the worker
 * before it faults in a new region; the fault orders the store before the
 * handler's read). */
static void *volatile cur_base;

static void on_msg(struct uffd_handler *h, const struct uffd_msg *m) {
    char b[128];
    (void)h;
    uffd_msg_str(m, cur_base, b, sizeof b);
    printf("handler: %s ptid %s\n", b, m->arg.pagefault.feat.ptid == (uint32_t)worker_tid ? "worker" : "other");
    if (m->event == UFFD_EVENT_PAGEFAULT) {
        void *page = (void *)(uintptr_t)(m->arg.pagefault.address & ~(UPAGE - 1));
        int r = uffd_unprotect(h->fd, page, UPAGE);
        if (r) printf("handler: unprotect %s\n", uffd_err(-r));
    }
}

int main(int argc, char **argv) {
    long n = pl_arg_long(argc, argv, 1, 16);
    worker_tid = gettid();
    setvbuf(stdout, NULL, _IOLBF, 0);

    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_THREAD_ID);
    char *r = uffd_map(n);
    for (long i = 0; i < n; i++) memset(r + i * UPAGE, (int)i, UPAGE);
    uint64_t ioctls = 0;
    int e = uffd_register(fd, r, n * UPAGE, UFFDIO_REGISTER_MODE_WP, &ioctls);
    printf("register WP: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    printf("protect: %s\n", uffd_err(-uffd_protect(fd, r, n * UPAGE)));
    int wp_all = 1;
    for (long i = 0; i < n; i++) wp_all &= uffd_pm_wp(r + i * UPAGE) == 1;
    printf("pagemap wp on every page: %s\n", wp_all ? "yes" : "no");

    /* Reads never fault. */
    uint64_t h0 = PL_FNV_INIT;
    for (long i = 0; i < n; i++) h0 = pl_fnv(h0, r + i * UPAGE, UPAGE);
    printf("read pass: %016llx\n", (unsigned long long)h0);

    struct uffd_handler h;
    cur_base = r;
    uffd_handler_start(&h, fd, r, on_msg, NULL);
    for (long i = 0; i < n; i++) {
        /* A write in the middle of the page: the message is page-aligned. */
        r[i * UPAGE + 100] = (char)(0x80 + i);
        printf("worker: wrote page %ld, wp now %d\n", i, uffd_pm_wp(r + i * UPAGE));
    }
    long before = h.nmsgs;
    for (long i = 0; i < n; i++) r[i * UPAGE + 200] = (char)(0x40 + i);
    printf("second pass: %ld new messages\n", h.nmsgs - before);

    /* Never-populated pages: WRITEPROTECT skips none PTEs, writes do not fault. */
    char *u = uffd_map(4);
    printf("register unpopulated: %s\n", uffd_err(-uffd_register(fd, u, 4 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect unpopulated: %s\n", uffd_err(-uffd_protect(fd, u, 4 * UPAGE)));
    uffd_pm_line("unpopulated page after protect", u);
    before = h.nmsgs;
    for (int i = 0; i < 4; i++) u[i * UPAGE] = 1;
    printf("writes to unpopulated: %ld messages\n", h.nmsgs - before);
    uffd_pm_line("unpopulated page after write", u);

    /* The zero page: a read maps it unprotected, WRITEPROTECT protects it, a
     * write faults once and, after resolve, COWs to a private page. */
    char *z = uffd_map(1);
    printf("register zero: %s\n", uffd_err(-uffd_register(fd, z, UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    volatile char rd = z[5];
    (void)rd;
    uffd_pm_line("zero page after read", z);
    printf("protect zero: %s\n", uffd_err(-uffd_protect(fd, z, UPAGE)));
    uffd_pm_line("zero page after protect", z);
    before = h.nmsgs;
    cur_base = z;
    uffd_barrier();
    z[5] = 9;
    printf("write to zero page: %ld messages, byte %d\n", h.nmsgs - before, z[5]);
    uffd_pm_line("zero page after write", z);

    uffd_handler_stop(&h);

    uint64_t sum = PL_FNV_INIT;
    for (long i = 0; i < n; i++) sum = pl_fnv(sum, r + i * UPAGE, UPAGE);
    printf("checksum: %016llx\n", (unsigned long long)sum);

    printf("close: %s\n", close(fd) ? uffd_err(errno) : "0");
    return 0;
}
