// pagelab: cflags=-pthread
// UFFD_FEATURE_WP_UNPOPULATED on private anonymous memory (issue 9;
// reference 3.1, 3.3, 5.5, Appendix A UNP-1/UNP-2). With the feature,
// UFFDIO_WRITEPROTECT installs uffd-wp markers on none PTEs (pagemap "swap
// wp"), also where no page table existed; a write to a marker allocates a
// zeroed page write-protected and raises one WP message; a read maps the zero
// page write-protected without a message (a later write faults WP, then
// copies the zero page); un-protect and MADV_DONTNEED turn markers into none
// (the next write does not fault). With MISSING|WP registration a fault on a
// marker is a MISSING fault first: COPY with mode 0 replaces the marker with
// an unprotected page (no WP message), COPY_MODE_WP keeps it protected (a WP
// message follows); ZEROPAGE and POISON over a marker give EEXIST. pagemap
// rows: one character per page (shm.h: '.' none, 'p'/'w' present anonymous
// without/with wp, 'M' marker).
#define _GNU_SOURCE
#include "shm.h"

#define N 8
#define F 1234

static int fd;

static void row(const char *what, const char *r) {
    shm_pm_print(what, r, N);
}

static void copy_row(const char *what, char *dst, const char *src, uint64_t mode) {
    int64_t c = F;
    int e = uffd_copy(fd, dst, src, UPAGE, mode, &c);
    printf("%s: %s copy %lld\n", what, uffd_err(-e), (long long)c);
}

static void wp_only(void) {
    printf("== WP + WP_UNPOPULATED\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED);
    char *r = shm_map_anon(N);
    r[0] = 'a';
    printf("read page 1: %d\n", *(volatile char *)(r + UPAGE));
    uint64_t ioctls = 0;
    int e = uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_WP, &ioctls);
    printf("register WP: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    row("before protect", r);
    printf("protect pages 0-7: %s\n", uffd_err(-uffd_protect(fd, r, N * UPAGE)));
    row("after protect", r);
    shm_pm_page("written", r, 0);
    shm_pm_page("zero page", r, 1);
    shm_pm_page("none", r, 2);

    struct shm_access a;
    shm_access_start(&a, r + 2 * UPAGE, 1, 'c');
    shm_expect_msg(fd, r, "write page 2 (a marker)", NULL);
    shm_pm_page("  while blocked", r, 2);
    printf("  writer done %d (asleep)\n", uffd_wait_flag(&a.done, 100));
    printf("  unprotect page 2: %s\n", uffd_err(-uffd_unprotect(fd, r + 2 * UPAGE, UPAGE)));
    shm_access_join(&a);
    printf("  data %c%d, pending %d\n", r[2 * UPAGE], r[2 * UPAGE + 1], uffd_pending(fd, 0));
    shm_pm_page("  after the write", r, 2);

    printf("read page 3 (a marker): %d, pending %d\n", *(volatile char *)(r + 3 * UPAGE), uffd_pending(fd, 0));
    shm_pm_page("  after the read", r, 3);
    shm_access_start(&a, r + 3 * UPAGE, 1, 'd');
    shm_expect_msg(fd, r, "write page 3 (wp zero page)", NULL);
    printf("  unprotect page 3: %s\n", uffd_err(-uffd_unprotect(fd, r + 3 * UPAGE, UPAGE)));
    shm_access_join(&a);
    printf("  data %c, pending %d\n", r[3 * UPAGE], uffd_pending(fd, 0));
    shm_pm_page("  after the write", r, 3);

    printf("unprotect page 4: %s\n", uffd_err(-uffd_unprotect(fd, r + 4 * UPAGE, UPAGE)));
    printf("MADV_DONTNEED page 5: %s\n", uffd_err(madvise(r + 5 * UPAGE, UPAGE, MADV_DONTNEED) ? errno : 0));
    row("after unprotect 4, DONTNEED 5", r);
    r[4 * UPAGE] = 'e';
    r[5 * UPAGE] = 'f';
    printf("writes to pages 4-5 without a fault: %c%c, pending %d\n", r[4 * UPAGE], r[5 * UPAGE], uffd_pending(fd, 0));
    printf("MADV_DONTNEED pages 0-1 (protected): %s\n", uffd_err(madvise(r, 2 * UPAGE, MADV_DONTNEED) ? errno : 0));
    row("after DONTNEED 0-1", r);
    r[0] = 'A';
    printf("write page 0 without a fault: %c, pending %d\n", r[0], uffd_pending(fd, 0));
    row("now", r);
    printf("unregister: %s\n", uffd_err(-uffd_unregister(fd, r, N * UPAGE)));
    row("after unregister", r);
    munmap(r, N * UPAGE);

    r = shm_map_anon(N);
    uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    printf("fresh region (no page table), protect pages 2-5: %s\n", uffd_err(-uffd_protect(fd, r + 2 * UPAGE, 4 * UPAGE)));
    row("fresh region", r);
    printf("close(uffd): %s\n", uffd_err(close(fd) ? errno : 0));
    row("after close", r);
    r[2 * UPAGE] = 'x';
    printf("write after close: %c\n", r[2 * UPAGE]);
    munmap(r, N * UPAGE);
}

static void missing_wp(void) {
    printf("== MISSING|WP + WP_UNPOPULATED\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_UNPOPULATED);
    char *r = shm_map_anon(N);
    char *src = uffd_map(1);
    memset(src, 'S', UPAGE);
    uint64_t ioctls = 0;
    int e = uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, &ioctls);
    printf("register MISSING|WP: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    printf("protect pages 0-7: %s\n", uffd_err(-uffd_protect(fd, r, N * UPAGE)));
    row("after protect", r);

    struct shm_access a;
    shm_access_start(&a, r, 1, 'a');
    shm_expect_msg(fd, r, "write page 0 (a marker)", NULL);
    copy_row("  COPY page 0 mode 0", r, src, 0);
    shm_access_join(&a);
    printf("  data %c%c, pending %d\n", r[0], r[1], uffd_pending(fd, 0));
    shm_pm_page("  after the write", r, 0);

    shm_access_start(&a, r + UPAGE, 1, 'b');
    shm_expect_msg(fd, r, "write page 1 (a marker)", NULL);
    copy_row("  COPY|WP page 1", r + UPAGE, src, UFFDIO_COPY_MODE_WP);
    shm_expect_msg(fd, r, "  the retried write", NULL);
    shm_pm_page("  while blocked", r, 1);
    printf("  unprotect page 1: %s\n", uffd_err(-uffd_unprotect(fd, r + UPAGE, UPAGE)));
    shm_access_join(&a);
    printf("  data %c%c, pending %d\n", r[UPAGE], r[UPAGE + 1], uffd_pending(fd, 0));

    shm_access_start(&a, r + 2 * UPAGE, 0, 0);
    shm_expect_msg(fd, r, "read page 2 (a marker)", NULL);
    int64_t z = F;
    e = uffd_zeropage(fd, r + 2 * UPAGE, UPAGE, 0, &z);
    printf("  ZEROPAGE page 2: %s zeropage %lld\n", uffd_err(-e), (long long)z);
    printf("  reader done %d (asleep)\n", uffd_wait_flag(&a.done, 100));
    z = F;
    e = uffd_poison(fd, r + 2 * UPAGE, UPAGE, 0, &z);
    printf("  POISON page 2: %s updated %lld\n", uffd_err(-e), (long long)z);
    copy_row("  COPY page 2", r + 2 * UPAGE, src, 0);
    shm_access_join(&a);
    printf("  reader got %c, pending %d\n", a.seen, uffd_pending(fd, 0));
    row("now", r);
    printf("unprotect pages 3-7: %s\n", uffd_err(-uffd_unprotect(fd, r + 3 * UPAGE, 5 * UPAGE)));
    row("after unprotect", r);
    shm_access_start(&a, r + 3 * UPAGE, 1, 'd');
    shm_expect_msg(fd, r, "write page 3 (none)", NULL);
    z = F;
    e = uffd_zeropage(fd, r + 3 * UPAGE, UPAGE, 0, &z);
    printf("  ZEROPAGE page 3: %s zeropage %lld\n", uffd_err(-e), (long long)z);
    shm_access_join(&a);
    printf("  data %c, pending %d\n", r[3 * UPAGE], uffd_pending(fd, 0));
    row("at end", r);
    munmap(r, N * UPAGE);
    munmap(src, UPAGE);
    close(fd);
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    wp_only();
    missing_wp();
    return 0;
}
