// pagelab: cflags=-pthread
// MINOR faults and UFFDIO_CONTINUE on shmem (issue 9; reference 4.13, 5.14).
// A memfd (pages 0-4 written, 5 fallocated only, 6-7 holes) mapped MAP_SHARED
// twice: the registered view and an unregistered alias. With MINOR
// registration an access to a page that is in the page cache but has a none
// PTE raises a MINOR message (flags MINOR for a read, WRITE|MINOR for a
// write), the thread sleeps until UFFDIO_CONTINUE maps the page-cache page
// (changes made through the alias meanwhile are seen); holes fault in
// without a message; MADV_DONTNEED makes the next access MINOR again. The
// errnos of CONTINUE with its `mapped` field (pre-set to 1234: "not
// written"): EEXIST over a mapped page, EFAULT over a page-cache hole, EAGAIN
// with a positive count when a range stops at a mapped page, EINVAL for
// MODE_WP without WP registration and for bad modes/alignment, ENOENT outside
// a registered VMA. MINOR|WP: CONTINUE_MODE_WP maps the page write-protected,
// so a pending write takes two messages (MINOR, then WP); CONTINUE over a
// uffd-wp marker without MODE_WP drops the protection. MAP_PRIVATE: CONTINUE
// maps the page-cache page read-only, the write then copies on write (the
// file keeps its data).
#define _GNU_SOURCE
#include "shm.h"

#define N 8
#define F 1234

static int fd, mfd;

static char file_byte(long i) {
    char c = '?';
    if (pread(mfd, &c, 1, i * (off_t)UPAGE) != 1) c = '!';
    return c ? c : '0';
}

static void cont_row(const char *what, void *p, size_t len, uint64_t mode) {
    int64_t m = F;
    int e = uffd_continue(fd, p, len, mode, &m);
    printf("%s: %s mapped %lld\n", what, uffd_err(-e), (long long)m);
}

static void make_file(void) {
    mfd = shm_memfd("minor", N);
    for (int i = 0; i < 5; i++) {
        char c = (char)('a' + i);
        pwrite(mfd, &c, 1, (off_t)i * UPAGE);
    }
    fallocate(mfd, 0, 5 * UPAGE, UPAGE);
}

static void minor_only(void) {
    printf("== MINOR\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_MINOR_SHMEM);
    make_file();
    char *r = shm_map(mfd, N, MAP_SHARED);
    char *alias = shm_map(mfd, N, MAP_SHARED);
    uint64_t ioctls = 0;
    int e = uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MINOR, &ioctls);
    printf("register MINOR: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    shm_pm_print("registered view", r, N);

    struct shm_access a;
    shm_access_start(&a, r, 0, 0);
    shm_expect_msg(fd, r, "read page 0", NULL);
    printf("  reader done %d (asleep)\n", uffd_wait_flag(&a.done, 100));
    alias[0] = 'A'; /* the monitor updates the page through the alias */
    cont_row("  CONTINUE page 0", r, UPAGE, 0);
    shm_access_join(&a);
    printf("  reader got %c, pending %d\n", a.seen, uffd_pending(fd, 0));
    shm_pm_page("  registered view", r, 0);

    shm_access_start(&a, r + UPAGE, 1, 'B');
    shm_expect_msg(fd, r, "write page 1", NULL);
    printf("  writer done %d (asleep)\n", uffd_wait_flag(&a.done, 100));
    cont_row("  CONTINUE page 1", r + UPAGE, UPAGE, 0);
    shm_access_join(&a);
    printf("  writer done %d, file page 1 %c, pending %d\n", a.done, file_byte(1), uffd_pending(fd, 0));
    shm_pm_page("  registered view", r, 1);

    shm_access_start(&a, r + 5 * UPAGE, 0, 0);
    shm_expect_msg(fd, r, "read page 5 (fallocated, never written)", NULL);
    cont_row("  CONTINUE page 5", r + 5 * UPAGE, UPAGE, 0);
    shm_access_join(&a);
    printf("  reader got %d\n", a.seen);

    printf("read page 6 (a hole): %d, pending %d\n", *(volatile char *)(r + 6 * UPAGE), uffd_pending(fd, 0));
    shm_pm_page("  registered view", r, 6);
    r[7 * UPAGE] = 'h';
    printf("write page 7 (a hole): file %c, pending %d\n", file_byte(7), uffd_pending(fd, 0));
    shm_pm_print("registered view", r, N);

    printf("-- CONTINUE errnos\n");
    cont_row("page 0 (mapped)", r, UPAGE, 0);
    cont_row("page 3 (cached, no fault)", r + 3 * UPAGE, UPAGE, 0);
    cont_row("pages 2-4 (3 is mapped)", r + 2 * UPAGE, 3 * UPAGE, 0);
    shm_pm_print("registered view", r, N);
    cont_row("page 4", r + 4 * UPAGE, UPAGE, 0);
    munmap(r, N * UPAGE);
    r = shm_map(mfd, N, MAP_SHARED);
    uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MINOR, NULL);
    fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 6 * UPAGE, 2 * UPAGE);
    cont_row("fresh mapping, page 6 (a hole)", r + 6 * UPAGE, UPAGE, 0);
    cont_row("pages 4-6 (6 is a hole)", r + 4 * UPAGE, 3 * UPAGE, 0);
    cont_row("page 0 MODE_WP (no WP registration)", r, UPAGE, UFFDIO_CONTINUE_MODE_WP);
    cont_row("page 0 mode 4", r, UPAGE, 4);
    cont_row("page 0 DONTWAKE|WP|4", r, UPAGE, 7);
    cont_row("unaligned start", r + 1, UPAGE, 0);
    cont_row("len 0", r, 0, 0);
    cont_row("unregistered alias page 0", alias, UPAGE, 0);
    cont_row("pages 7-8 (past the VMA)", r + 7 * UPAGE, 2 * UPAGE, 0);
    cont_row("page 1 DONTWAKE", r + UPAGE, UPAGE, UFFDIO_CONTINUE_MODE_DONTWAKE);
    shm_pm_print("fresh mapping", r, N);

    printf("-- DONTNEED, REMOVE\n");
    printf("MADV_DONTNEED pages 0-1: %s\n", uffd_err(madvise(r, 2 * UPAGE, MADV_DONTNEED) ? errno : 0));
    shm_access_start(&a, r, 0, 0);
    shm_expect_msg(fd, r, "read page 0", NULL);
    cont_row("  CONTINUE pages 0-1", r, 2 * UPAGE, 0);
    shm_access_join(&a);
    printf("  reader got %c\n", a.seen);
    printf("MADV_REMOVE page 1: %s\n", uffd_err(madvise(r + UPAGE, UPAGE, MADV_REMOVE) ? errno : 0));
    printf("read page 1 (now a hole): %d, pending %d\n", *(volatile char *)(r + UPAGE), uffd_pending(fd, 0));
    /* COPY and ZEROPAGE in a MINOR-only VMA: fill holes of the page cache. */
    char *src = uffd_map(1);
    memset(src, 'S', UPAGE);
    int64_t c = F;
    e = uffd_copy(fd, r + 2 * UPAGE, src, UPAGE, 0, &c);
    printf("COPY over page 2 (mapped): %s copy %lld\n", uffd_err(-e), (long long)c);
    munmap(r + 3 * UPAGE, UPAGE); /* page 3's PTE is gone, its page stays cached */
    mmap(r + 3 * UPAGE, UPAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mfd, 3 * UPAGE);
    uffd_register(fd, r + 3 * UPAGE, UPAGE, UFFDIO_REGISTER_MODE_MINOR, NULL);
    c = F;
    e = uffd_copy(fd, r + 3 * UPAGE, src, UPAGE, 0, &c);
    printf("COPY over page 3 (cached, none PTE): %s copy %lld\n", uffd_err(-e), (long long)c);
    c = F;
    e = uffd_copy(fd, r + 6 * UPAGE, src, UPAGE, 0, &c);
    printf("COPY into page 6 (a hole): %s copy %lld, file %c\n", uffd_err(-e), (long long)c, file_byte(6));
    c = F;
    e = uffd_zeropage(fd, r + 7 * UPAGE, UPAGE, 0, &c);
    printf("ZEROPAGE page 7 (a hole): %s zeropage %lld, file %c\n", uffd_err(-e), (long long)c, file_byte(7));
    shm_pm_print("fresh mapping", r, N);
    printf("pending %d\n", uffd_pending(fd, 0));
    munmap(src, UPAGE);
    munmap(r, N * UPAGE);
    munmap(alias, N * UPAGE);
    close(mfd);
    close(fd);
}

static void minor_wp(void) {
    printf("== MINOR|WP\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    make_file();
    char *r = shm_map(mfd, N, MAP_SHARED);
    uint64_t ioctls = 0;
    int e = uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP, &ioctls);
    printf("register MINOR|WP: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);

    struct shm_access a;
    shm_access_start(&a, r + 2 * UPAGE, 1, 'C');
    shm_expect_msg(fd, r, "write page 2", NULL);
    cont_row("  CONTINUE|WP page 2", r + 2 * UPAGE, UPAGE, UFFDIO_CONTINUE_MODE_WP);
    shm_expect_msg(fd, r, "  the retried write", NULL);
    shm_pm_page("  registered view", r, 2);
    printf("  writer done %d (asleep)\n", uffd_wait_flag(&a.done, 100));
    printf("  unprotect page 2: %s\n", uffd_err(-uffd_unprotect(fd, r + 2 * UPAGE, UPAGE)));
    shm_access_join(&a);
    printf("  writer done %d, file page 2 %c, pending %d\n", a.done, file_byte(2), uffd_pending(fd, 0));
    shm_pm_page("  registered view", r, 2);

    shm_access_start(&a, r + 3 * UPAGE, 0, 0);
    shm_expect_msg(fd, r, "read page 3", NULL);
    cont_row("  CONTINUE|WP page 3", r + 3 * UPAGE, UPAGE, UFFDIO_CONTINUE_MODE_WP);
    shm_access_join(&a);
    printf("  reader got %c, pending %d\n", a.seen, uffd_pending(fd, 0));
    shm_pm_page("  registered view", r, 3);

    printf("protect pages 0-1: %s\n", uffd_err(-uffd_protect(fd, r, 2 * UPAGE)));
    printf("protect pages 4-7: %s\n", uffd_err(-uffd_protect(fd, r + 4 * UPAGE, 4 * UPAGE)));
    shm_pm_print("registered view", r, N);
    shm_access_start(&a, r, 0, 0);
    shm_expect_msg(fd, r, "read page 0 (a marker, page cached)", NULL);
    cont_row("  CONTINUE page 0 (no MODE_WP)", r, UPAGE, 0);
    shm_access_join(&a);
    printf("  reader got %c\n", a.seen);
    shm_pm_page("  registered view", r, 0);
    r[0] = 'A';
    printf("write page 0 without a fault: file %c, pending %d\n", file_byte(0), uffd_pending(fd, 0));
    shm_access_start(&a, r + UPAGE, 1, 'B');
    shm_expect_msg(fd, r, "write page 1 (a marker, page cached)", NULL);
    cont_row("  CONTINUE|WP page 1", r + UPAGE, UPAGE, UFFDIO_CONTINUE_MODE_WP);
    shm_expect_msg(fd, r, "  the retried write", NULL);
    printf("  unprotect page 1: %s\n", uffd_err(-uffd_unprotect(fd, r + UPAGE, UPAGE)));
    shm_access_join(&a);
    printf("  file page 1 %c\n", file_byte(1));
    shm_access_start(&a, r + 6 * UPAGE, 1, 'G');
    shm_expect_msg(fd, r, "write page 6 (a marker over a hole)", NULL);
    shm_pm_page("  registered view", r, 6);
    printf("  unprotect page 6: %s\n", uffd_err(-uffd_unprotect(fd, r + 6 * UPAGE, UPAGE)));
    shm_access_join(&a);
    printf("  file page 6 %c\n", file_byte(6));
    cont_row("CONTINUE page 5 (a marker, fallocated page)", r + 5 * UPAGE, UPAGE, 0);
    cont_row("CONTINUE page 7 (a marker over a hole)", r + 7 * UPAGE, UPAGE, 0);
    shm_pm_print("registered view", r, N);
    printf("pending %d\n", uffd_pending(fd, 0));
    munmap(r, N * UPAGE);
    close(mfd);
    close(fd);
}

static void minor_private(void) {
    printf("== MINOR on MAP_PRIVATE\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_MINOR_SHMEM);
    make_file();
    char *r = shm_map(mfd, N, MAP_PRIVATE);
    uint64_t ioctls = 0;
    int e = uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MINOR, &ioctls);
    printf("register MINOR: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    struct shm_access a;
    shm_access_start(&a, r, 1, 'P');
    shm_expect_msg(fd, r, "write page 0", NULL);
    cont_row("  CONTINUE page 0", r, UPAGE, 0);
    shm_access_join(&a);
    printf("  private page 0 %c, file page 0 %c, pending %d\n", r[0], file_byte(0), uffd_pending(fd, 0));
    shm_pm_page("  private view", r, 0);
    shm_access_start(&a, r + UPAGE, 0, 0);
    shm_expect_msg(fd, r, "read page 1", NULL);
    cont_row("  CONTINUE page 1", r + UPAGE, UPAGE, 0);
    shm_access_join(&a);
    printf("  reader got %c\n", a.seen);
    shm_pm_page("  private view", r, 1);
    r[UPAGE] = 'Q';
    printf("write page 1 (mapped read-only): private %c, file %c, pending %d\n", r[UPAGE], file_byte(1), uffd_pending(fd, 0));
    shm_pm_page("  private view", r, 1);
    r[6 * UPAGE] = 'h';
    printf("write page 6 (a hole): private %c, file %c, pending %d\n", r[6 * UPAGE], file_byte(6), uffd_pending(fd, 0));
    shm_pm_print("private view", r, N);
    munmap(r, N * UPAGE);
    close(mfd);
    close(fd);
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    minor_only();
    minor_wp();
    minor_private();
    return 0;
}
