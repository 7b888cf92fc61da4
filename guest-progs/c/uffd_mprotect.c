// pagelab: cflags=-pthread
// mprotect keeps the uffd-wp bit (it is in _PAGE_CHG_MASK): PROT_NONE -> RW
// and PROT_READ -> RW leave a protected page protected (pagemap bit 57), and
// the next write still gives a WP message; mprotect's writable upgrade never
// bypasses uffd-wp. Accesses that the VMA forbids raise SIGSEGV/SEGV_ACCERR
// before any uffd logic. Registering WP on a PROT_READ VMA is allowed;
// splitting a registered VMA with mprotect keeps both halves registered.
#define _GNU_SOURCE
#include "uffd.h"
#include <setjmp.h>
#include <signal.h>

static char *r;
static void *volatile cur_base; /* what the handler's page indexes are relative to */
static sigjmp_buf jb;
static volatile int seg_code;

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    seg_code = si->si_code;
    siglongjmp(jb, 1);
}

static void on_msg(struct uffd_handler *h, const struct uffd_msg *m) {
    char b[128];
    uffd_msg_str(m, cur_base, b, sizeof b);
    printf("handler: %s\n", b);
    if (m->event == UFFD_EVENT_PAGEFAULT) {
        int e = uffd_unprotect(h->fd, (void *)(uintptr_t)(m->arg.pagefault.address & ~(UPAGE - 1)), UPAGE);
        if (e) printf("handler: unprotect %s\n", uffd_err(-e));
    }
}

/* A write to r[page*UPAGE] that may die of SIGSEGV. */
static void try_write(const char *what, int page, char v) {
    seg_code = 0;
    if (sigsetjmp(jb, 1) == 0) {
        *(volatile char *)(r + page * UPAGE) = v;
        printf("%s: written, data %c\n", what, r[page * UPAGE]);
    } else {
        printf("%s: SIGSEGV code %d\n", what, seg_code);
    }
}

static void try_read(const char *what, int page) {
    seg_code = 0;
    if (sigsetjmp(jb, 1) == 0) {
        char v = *(volatile char *)(r + page * UPAGE);
        printf("%s: read %c\n", what, v);
    } else {
        printf("%s: SIGSEGV code %d\n", what, seg_code);
    }
}

static void pm(const char *what, int page) {
    uffd_pm_line(what, r + page * UPAGE);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    r = uffd_map(6);
    for (int i = 0; i < 6; i++) memset(r + i * UPAGE, 'a' + i, UPAGE);
    printf("register WP: %s\n", uffd_err(-uffd_register(fd, r, 6 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect pages 0-3: %s\n", uffd_err(-uffd_protect(fd, r, 4 * UPAGE)));
    struct uffd_handler h;
    cur_base = r;
    uffd_handler_start(&h, fd, r, on_msg, NULL);

    /* Page 0: PROT_NONE then RW. */
    printf("mprotect page 0 NONE: %d\n", mprotect(r, UPAGE, PROT_NONE));
    pm("page 0 NONE", 0);
    try_read("page 0 NONE read", 0);
    try_write("page 0 NONE write", 0, 'X');
    printf("mprotect page 0 RW: %d\n", mprotect(r, UPAGE, PROT_READ | PROT_WRITE));
    pm("page 0 RW", 0);
    try_write("page 0 RW write", 0, 'A');
    pm("page 0 after write", 0);

    /* Page 1: PROT_READ then RW. */
    printf("mprotect page 1 READ: %d\n", mprotect(r + UPAGE, UPAGE, PROT_READ));
    pm("page 1 READ", 1);
    try_read("page 1 READ read", 1);
    try_write("page 1 READ write", 1, 'X');
    printf("mprotect page 1 RW: %d\n", mprotect(r + UPAGE, UPAGE, PROT_READ | PROT_WRITE));
    pm("page 1 RW", 1);
    try_write("page 1 RW write", 1, 'B');

    /* Page 2: NONE, READ, RW in a row. */
    int m1 = mprotect(r + 2 * UPAGE, UPAGE, PROT_NONE);
    int m2 = mprotect(r + 2 * UPAGE, UPAGE, PROT_READ);
    int m3 = mprotect(r + 2 * UPAGE, UPAGE, PROT_READ | PROT_WRITE);
    printf("mprotect page 2 NONE/READ/RW: %d %d %d\n", m1, m2, m3);
    pm("page 2 RW", 2);
    try_write("page 2 write", 2, 'C');

    /* Page 3 protected, page 4 not: READ then RW of both (one split VMA). */
    m1 = mprotect(r + 3 * UPAGE, 2 * UPAGE, PROT_READ);
    m2 = mprotect(r + 3 * UPAGE, 2 * UPAGE, PROT_READ | PROT_WRITE);
    printf("mprotect pages 3-4 READ/RW: %d %d\n", m1, m2);
    pm("page 3", 3);
    pm("page 4", 4);
    try_write("page 4 write (never protected)", 4, 'E');
    try_write("page 3 write", 3, 'D');

    /* Protect after the splits: every part of the range is still registered. */
    printf("protect pages 0-5 again: %s\n", uffd_err(-uffd_protect(fd, r, 6 * UPAGE)));
    printf("mprotect page 5 READ: %d\n", mprotect(r + 5 * UPAGE, UPAGE, PROT_READ));
    printf("unprotect page 5 while READ: %s\n", uffd_err(-uffd_unprotect(fd, r + 5 * UPAGE, UPAGE)));
    pm("page 5 READ unprotected", 5);
    printf("mprotect page 5 RW: %d\n", mprotect(r + 5 * UPAGE, UPAGE, PROT_READ | PROT_WRITE));
    try_write("page 5 write (unprotected)", 5, 'F');
    try_write("page 4 write", 4, 'e');

    /* A PROT_READ VMA can be registered for WP; after RW its protected page faults. */
    char *ro = mmap(NULL, UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ro[0] = 'r';
    mprotect(ro, UPAGE, PROT_READ);
    printf("register WP on a PROT_READ VMA: %s\n", uffd_err(-uffd_register(fd, ro, UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("protect it: %s\n", uffd_err(-uffd_protect(fd, ro, UPAGE)));
    mprotect(ro, UPAGE, PROT_READ | PROT_WRITE);
    uffd_pm_line("read-only VMA page after RW", ro);
    long before = h.nmsgs;
    cur_base = ro;
    uffd_barrier();
    ro[0] = 's';
    printf("write: %ld message(s), data %c\n", h.nmsgs - before, ro[0]);

    uffd_handler_stop(&h);
    printf("messages: %ld\n", h.nmsgs);
    return 0;
}
