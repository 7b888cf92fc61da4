// pagelab: cflags=-pthread
// MISSING faults on shmem (issue 9; reference 4.10, 4.11, 5.14). A memfd
// (pages 0-1 written, the rest holes) mapped MAP_SHARED, registered MISSING,
// with an unregistered alias mapping and read() on the fd as other views.
// Only a page-cache hole raises a MISSING message (a cached page with a none
// PTE faults in silently); UFFDIO_COPY and UFFDIO_ZEROPAGE fill the page
// cache, so the alias and pread see the page and st_blocks grows; a hole
// filled through the alias or pwrite no longer faults; COPY/ZEROPAGE over a
// cached or mapped page give EEXIST; a MISSING-registered mapping past EOF
// still raises SIGBUS and COPY there EFAULT; MADV_REMOVE makes a page missing
// again. MISSING|WP with COPY_MODE_WP: the write takes a MISSING then a WP
// message. MAP_PRIVATE of a memfd: COPY installs a private anonymous page and
// ZEROPAGE the zero page, the file stays a hole. MAP_SHARED|MAP_ANONYMOUS is
// shmem too.
#define _GNU_SOURCE
#include "shm.h"

#define N 8
#define F 1234

static int fd, mfd;
static char *src;

static char file_byte(long i) {
    char c = '?';
    if (pread(mfd, &c, 1, i * (off_t)UPAGE) != 1) c = '!';
    return c ? c : '0';
}

static long blocks(void) {
    struct stat st;
    fstat(mfd, &st);
    return (long)st.st_blocks;
}

static void copy_row(const char *what, char *dst, uint64_t mode) {
    int64_t c = F;
    int e = uffd_copy(fd, dst, src, UPAGE, mode, &c);
    printf("%s: %s copy %lld\n", what, uffd_err(-e), (long long)c);
}

static void zp_row(const char *what, char *dst, uint64_t mode) {
    int64_t c = F;
    int e = uffd_zeropage(fd, dst, UPAGE, mode, &c);
    printf("%s: %s zeropage %lld\n", what, uffd_err(-e), (long long)c);
}

static void shared(void) {
    printf("== MISSING on MAP_SHARED memfd\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_MISSING_SHMEM);
    mfd = shm_memfd("missing", N);
    pwrite(mfd, "a", 1, 0);
    pwrite(mfd, "b", 1, UPAGE);
    char *r = shm_map(mfd, N, MAP_SHARED);
    char *alias = shm_map(mfd, N, MAP_SHARED);
    uint64_t ioctls = 0;
    int e = uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
    printf("register MISSING: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    printf("blocks %ld\n", blocks());
    printf("read page 0 (cached): %c, pending %d\n", *(volatile char *)r, uffd_pending(fd, 0));
    shm_pm_print("registered view", r, N);

    struct shm_access a;
    shm_access_start(&a, r + 2 * UPAGE, 0, 0);
    shm_expect_msg(fd, r, "read page 2 (a hole)", NULL);
    printf("  reader done %d (asleep)\n", uffd_wait_flag(&a.done, 100));
    printf("  file page 2 %c, blocks %ld\n", file_byte(2), blocks());
    copy_row("  COPY page 2", r + 2 * UPAGE, 0);
    shm_access_join(&a);
    printf("  reader got %c; alias %c, file %c, blocks %ld\n", a.seen, alias[2 * UPAGE], file_byte(2), blocks());
    shm_pm_page("  registered view", r, 2);
    shm_pm_page("  alias", alias, 2);

    shm_access_start(&a, r + 3 * UPAGE, 1, 'W');
    shm_expect_msg(fd, r, "write page 3 (a hole)", NULL);
    zp_row("  ZEROPAGE page 3", r + 3 * UPAGE, 0);
    shm_access_join(&a);
    printf("  file page 3 %c (byte 1: %d), blocks %ld\n", file_byte(3), alias[3 * UPAGE + 1], blocks());
    shm_pm_page("  registered view", r, 3);

    alias[4 * UPAGE] = 'e';
    pwrite(mfd, "f", 1, 5 * UPAGE);
    printf("pages 4 and 5 filled through the alias and pwrite: read %c %c, pending %d\n", *(volatile char *)(r + 4 * UPAGE),
           *(volatile char *)(r + 5 * UPAGE), uffd_pending(fd, 0));
    shm_pm_print("registered view", r, N);

    printf("-- errnos\n");
    copy_row("COPY over page 0 (mapped)", r, 0);
    copy_row("COPY over page 1 (cached, none PTE)", r + UPAGE, 0);
    zp_row("ZEROPAGE over page 1", r + UPAGE, 0);
    copy_row("COPY|WP page 6 (no WP registration)", r + 6 * UPAGE, UFFDIO_COPY_MODE_WP);
    zp_row("ZEROPAGE mode 2", r + 6 * UPAGE, 2);
    copy_row("COPY into the alias (unregistered)", alias + 6 * UPAGE, 0);
    copy_row("COPY page 6 DONTWAKE (no waiter)", r + 6 * UPAGE, UFFDIO_COPY_MODE_DONTWAKE);
    printf("  file page 6 %c\n", file_byte(6));

    printf("-- past EOF\n");
    shm_catch(SIGBUS);
    ftruncate(mfd, 7 * UPAGE);
    copy_row("COPY page 7 (past EOF)", r + 7 * UPAGE, 0);
    zp_row("ZEROPAGE page 7 (past EOF)", r + 7 * UPAGE, 0);
    shm_probe("read page 7 (past EOF)", r, 7 * UPAGE, 0, 0);
    printf("  pending %d\n", uffd_pending(fd, 0));

    printf("-- MADV_REMOVE\n");
    printf("MADV_REMOVE page 2: %s\n", uffd_err(madvise(r + 2 * UPAGE, UPAGE, MADV_REMOVE) ? errno : 0));
    printf("  file page 2 %c, blocks %ld\n", file_byte(2), blocks());
    shm_access_start(&a, r + 2 * UPAGE, 0, 0);
    shm_expect_msg(fd, r, "read page 2 again", NULL);
    zp_row("  ZEROPAGE page 2", r + 2 * UPAGE, 0);
    shm_access_join(&a);
    printf("  reader got %d\n", a.seen);
    printf("MADV_DONTNEED page 3: %s\n", uffd_err(madvise(r + 3 * UPAGE, UPAGE, MADV_DONTNEED) ? errno : 0));
    printf("read page 3 (still cached): %c, pending %d\n", *(volatile char *)(r + 3 * UPAGE), uffd_pending(fd, 0));
    shm_pm_print("registered view", r, N);
    munmap(r, N * UPAGE);
    munmap(alias, N * UPAGE);
    close(mfd);
    close(fd);
}

static void missing_wp(void) {
    printf("== MISSING|WP with COPY_MODE_WP\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    mfd = shm_memfd("missing-wp", N);
    char *r = shm_map(mfd, N, MAP_SHARED);
    uint64_t ioctls = 0;
    int e = uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, &ioctls);
    printf("register MISSING|WP: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    struct shm_access a;
    shm_access_start(&a, r, 1, 'w');
    shm_expect_msg(fd, r, "write page 0", NULL);
    copy_row("  COPY|WP page 0", r, UFFDIO_COPY_MODE_WP);
    shm_expect_msg(fd, r, "  the retried write", NULL);
    shm_pm_page("  registered view", r, 0);
    printf("  writer done %d (asleep), file page 0 %c\n", uffd_wait_flag(&a.done, 100), file_byte(0));
    printf("  unprotect page 0: %s\n", uffd_err(-uffd_unprotect(fd, r, UPAGE)));
    shm_access_join(&a);
    printf("  file page 0 %c%c\n", file_byte(0), r[1]);
    shm_pm_page("  registered view", r, 0);

    shm_access_start(&a, r + UPAGE, 0, 0);
    shm_expect_msg(fd, r, "read page 1", NULL);
    copy_row("  COPY|WP page 1", r + UPAGE, UFFDIO_COPY_MODE_WP);
    shm_access_join(&a);
    printf("  reader got %c, pending %d\n", a.seen, uffd_pending(fd, 0));
    shm_pm_page("  registered view", r, 1);

    printf("protect pages 2-3: %s\n", uffd_err(-uffd_protect(fd, r + 2 * UPAGE, 2 * UPAGE)));
    shm_pm_print("registered view", r, N);
    shm_access_start(&a, r + 2 * UPAGE, 1, 'x');
    shm_expect_msg(fd, r, "write page 2 (a marker over a hole)", NULL);
    copy_row("  COPY page 2 (mode 0 over the marker)", r + 2 * UPAGE, 0);
    shm_access_join(&a);
    printf("  file page 2 %c, pending %d\n", file_byte(2), uffd_pending(fd, 0));
    shm_pm_page("  registered view", r, 2);
    zp_row("ZEROPAGE over page 3 (a marker)", r + 3 * UPAGE, 0);
    copy_row("COPY|WP over page 3 (a marker)", r + 3 * UPAGE, UFFDIO_COPY_MODE_WP);
    shm_pm_page("registered view", r, 3);
    printf("pending %d\n", uffd_pending(fd, 0));
    munmap(r, N * UPAGE);
    close(mfd);
    close(fd);
}

static void private_and_anon(void) {
    printf("== MISSING on MAP_PRIVATE memfd\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    mfd = shm_memfd("missing-private", N);
    pwrite(mfd, "a", 1, 0);
    char *r = shm_map(mfd, N, MAP_PRIVATE);
    uint64_t ioctls = 0;
    int e = uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
    printf("register MISSING: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    r[0] = 'A';
    printf("write page 0 (cached): private %c, file %c, pending %d\n", r[0], file_byte(0), uffd_pending(fd, 0));
    struct shm_access a;
    shm_access_start(&a, r + UPAGE, 1, 'B');
    shm_expect_msg(fd, r, "write page 1 (a hole)", NULL);
    copy_row("  COPY page 1", r + UPAGE, 0);
    shm_access_join(&a);
    printf("  private %c%c, file %c, blocks %ld\n", r[UPAGE], r[UPAGE + 1], file_byte(1), blocks());
    shm_pm_page("  private view", r, 1);
    shm_access_start(&a, r + 2 * UPAGE, 0, 0);
    shm_expect_msg(fd, r, "read page 2 (a hole)", NULL);
    zp_row("  ZEROPAGE page 2", r + 2 * UPAGE, 0);
    shm_access_join(&a);
    printf("  reader got %d\n", a.seen);
    shm_pm_page("  private view", r, 2);
    r[2 * UPAGE] = 'C';
    printf("write page 2 (zero page, COW): %c, pending %d\n", r[2 * UPAGE], uffd_pending(fd, 0));
    shm_pm_print("private view", r, N);
    munmap(r, N * UPAGE);
    close(mfd);

    printf("== MISSING on MAP_SHARED|MAP_ANONYMOUS\n");
    r = shm_map_anon_shared(N);
    e = uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
    printf("register MISSING: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    shm_access_start(&a, r, 0, 0);
    shm_expect_msg(fd, r, "read page 0", NULL);
    copy_row("  COPY page 0", r, 0);
    shm_access_join(&a);
    printf("  reader got %c\n", a.seen);
    shm_pm_page("  view", r, 0);
    printf("MADV_DONTNEED page 0: %s\n", uffd_err(madvise(r, UPAGE, MADV_DONTNEED) ? errno : 0));
    printf("read page 0 (still in the shmem object): %c, pending %d\n", *(volatile char *)r, uffd_pending(fd, 0));
    munmap(r, N * UPAGE);
    close(fd);
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    src = uffd_map(1);
    memset(src, 'S', UPAGE);
    shared();
    missing_wp();
    private_and_anon();
    return 0;
}
