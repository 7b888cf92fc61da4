// pagelab: cflags=-pthread
// uffd-wp on shmem and its PTE markers (issue 9; reference 2.5, 3.1-3.3,
// 5.11, 5.12). A memfd mapped MAP_SHARED, registered WP: UFFDIO_WRITEPROTECT
// over populated and unpopulated pages (pagemap: present pages "present file
// wp", none PTEs become uffd-wp markers, read as "swap wp", whether the page
// is in the page cache or a hole); a write to a marker installs the page
// write-protected and raises exactly one WRITE|WP message, the writer stays
// asleep until un-protect, then its write lands in the file; a read of a
// marker maps the page write-protected without a message; un-protect turns
// markers back into none PTEs; MADV_DONTNEED, MADV_REMOVE and fallocate
// PUNCH_HOLE on protected pages leave markers (the next write faults WP,
// the next read maps the page wp'd) but not on un-protected ones; UNREGISTER
// and close() clear markers and wp bits. On private anonymous memory (no
// WP_UNPOPULATED) protect skips none PTEs and MADV_DONTNEED drops the
// protection. Accesses that fault run in their own thread; the main thread
// is the monitor and prints each message before it resolves it.
#define _GNU_SOURCE
#include "shm.h"

#define N 8

static int fd;

static void row(const char *what, const char *r) {
    shm_pm_print(what, r, N);
}

/* A write of `val` to page i in a thread: one WP message, still asleep,
 * un-protect, then the write completes. */
static void write_faults(char *r, long i, char val) {
    char what[64];
    struct shm_access a;
    shm_access_start(&a, r + i * UPAGE, 1, val);
    snprintf(what, sizeof what, "write page %ld", i);
    shm_expect_msg(fd, r, what, NULL);
    shm_pm_page("  while blocked", r, i);
    printf("  writer done %d (asleep)\n", uffd_wait_flag(&a.done, 100));
    printf("  unprotect page %ld: %s\n", i, uffd_err(-uffd_unprotect(fd, r + i * UPAGE, UPAGE)));
    shm_access_join(&a);
    printf("  writer done %d, pending %d\n", a.done, uffd_pending(fd, 0));
    shm_pm_page("  after the write", r, i);
}

static char file_byte(int mfd, long i) {
    char c = '?';
    if (pread(mfd, &c, 1, i * (off_t)UPAGE) != 1) c = '!';
    return c ? c : '0';
}

static void protect_and_fault(void) {
    printf("== protect over populated and unpopulated pages\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    int mfd = shm_memfd("markers", N);
    pwrite(mfd, "ax", 2, 0);         /* pages 0-1: in the page cache, not mapped */
    pwrite(mfd, "b", 1, UPAGE);
    char *r = shm_map(mfd, N, MAP_SHARED);
    r[2 * UPAGE] = 'c';              /* pages 2-3: mapped (writable) */
    r[3 * UPAGE] = 'd';
    row("before register", r);
    uint64_t ioctls = 0;
    int e = uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_WP, &ioctls);
    printf("register WP: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    row("after register", r);
    printf("protect pages 0-7: %s\n", uffd_err(-uffd_protect(fd, r, N * UPAGE)));
    row("after protect", r);
    shm_pm_page("cached, unmapped", r, 0);
    shm_pm_page("mapped", r, 2);
    shm_pm_page("hole", r, 4);
    printf("pending %d\n", uffd_pending(fd, 0));

    printf("-- write to a present wp page\n");
    write_faults(r, 2, 'C');
    printf("  file page 2: %c\n", file_byte(mfd, 2));
    printf("-- write to a marker over a hole\n");
    write_faults(r, 4, 'E');
    printf("  file page 4: %c\n", file_byte(mfd, 4));
    printf("-- write to a marker over a cached page\n");
    write_faults(r, 0, 'A');
    printf("  file page 0: %c, its byte 1 (kept from the page cache): %c\n", file_byte(mfd, 0), r[1]);

    printf("-- reads of markers: no message, the page is mapped wp\n");
    printf("read page 1: %c\n", *(volatile char *)(r + UPAGE));
    shm_pm_page("  after the read", r, 1);
    printf("read page 5 (a hole): %d\n", *(volatile char *)(r + 5 * UPAGE));
    shm_pm_page("  after the read", r, 5);
    struct stat st;
    fstat(mfd, &st);
    printf("  pending %d, file blocks %lld\n", uffd_pending(fd, 0), (long long)st.st_blocks);
    row("now", r);
    printf("-- the read-mapped page is wp: a write faults\n");
    write_faults(r, 5, 'F');
    printf("  file page 5: %c\n", file_byte(mfd, 5));

    printf("-- un-protect of markers\n");
    printf("unprotect pages 6-7: %s\n", uffd_err(-uffd_unprotect(fd, r + 6 * UPAGE, 2 * UPAGE)));
    row("after unprotect 6-7", r);
    r[6 * UPAGE] = 'G';
    printf("write page 6 without a fault: %c pending %d\n", file_byte(mfd, 6), uffd_pending(fd, 0));
    row("after the write", r);
    printf("protect pages 0-7 again: %s\n", uffd_err(-uffd_protect(fd, r, N * UPAGE)));
    row("after protect", r);
    printf("unregister: %s\n", uffd_err(-uffd_unregister(fd, r, N * UPAGE)));
    row("after unregister", r);
    r[7 * UPAGE] = 'H';
    r[1 * UPAGE] = 'B';
    printf("writes after unregister: %c %c pending %d\n", file_byte(mfd, 7), file_byte(mfd, 1), uffd_pending(fd, 0));
    munmap(r, N * UPAGE);
    close(mfd);
    close(fd);
}

/* DONTNEED, REMOVE and PUNCH_HOLE on protected and un-protected shmem pages. */
static void zaps(void) {
    printf("== zaps of protected shmem\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    int mfd = shm_memfd("zaps", N);
    char *r = shm_map(mfd, N, MAP_SHARED);
    for (int i = 0; i < N; i++) r[i * UPAGE] = (char)('a' + i);
    uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    printf("protect pages 0-5: %s\n", uffd_err(-uffd_protect(fd, r, 6 * UPAGE)));
    row("protected 0-5", r);
    printf("MADV_DONTNEED pages 0-1: %s\n", uffd_err(madvise(r, 2 * UPAGE, MADV_DONTNEED) ? errno : 0));
    printf("MADV_REMOVE pages 2-3: %s\n", uffd_err(madvise(r + 2 * UPAGE, 2 * UPAGE, MADV_REMOVE) ? errno : 0));
    printf("PUNCH_HOLE pages 4-5: %s\n",
           uffd_err(fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * UPAGE, 2 * UPAGE) ? errno : 0));
    printf("MADV_DONTNEED page 6 (not protected): %s\n", uffd_err(madvise(r + 6 * UPAGE, UPAGE, MADV_DONTNEED) ? errno : 0));
    printf("PUNCH_HOLE page 7 (not protected): %s\n",
           uffd_err(fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 7 * UPAGE, UPAGE) ? errno : 0));
    row("after the zaps", r);
    shm_pm_page("DONTNEED'd", r, 0);
    shm_pm_page("REMOVE'd", r, 2);
    shm_pm_page("punched", r, 4);
    shm_pm_page("DONTNEED'd, not protected", r, 6);
    printf("file: %c %c %c %c %c %c %c %c\n", file_byte(mfd, 0), file_byte(mfd, 1), file_byte(mfd, 2), file_byte(mfd, 3),
           file_byte(mfd, 4), file_byte(mfd, 5), file_byte(mfd, 6), file_byte(mfd, 7));
    printf("pending %d\n", uffd_pending(fd, 0));
    write_faults(r, 0, 'A');
    write_faults(r, 2, 'C');
    write_faults(r, 4, 'E');
    printf("read page 1: %c\n", *(volatile char *)(r + UPAGE));
    printf("read page 3: %d\n", *(volatile char *)(r + 3 * UPAGE));
    printf("read page 5: %d\n", *(volatile char *)(r + 5 * UPAGE));
    r[6 * UPAGE] = 'G';
    r[7 * UPAGE] = 'H';
    printf("writes to pages 6-7 without a fault, pending %d\n", uffd_pending(fd, 0));
    row("now", r);
    printf("file: %c %c %c %c %c %c %c %c\n", file_byte(mfd, 0), file_byte(mfd, 1), file_byte(mfd, 2), file_byte(mfd, 3),
           file_byte(mfd, 4), file_byte(mfd, 5), file_byte(mfd, 6), file_byte(mfd, 7));
    printf("protect pages 0-7: %s\n", uffd_err(-uffd_protect(fd, r, N * UPAGE)));
    printf("MADV_DONTNEED pages 0-7: %s\n", uffd_err(madvise(r, N * UPAGE, MADV_DONTNEED) ? errno : 0));
    row("protected, DONTNEED'd", r);
    printf("close(uffd): %s\n", uffd_err(close(fd) ? errno : 0));
    row("after close", r);
    r[0] = 'z';
    printf("write after close: %c\n", file_byte(mfd, 0));
    munmap(r, N * UPAGE);
    close(mfd);
}

/* Private anonymous memory: no markers without WP_UNPOPULATED, and a zap drops wp. */
static void anon(void) {
    printf("== private anonymous (no WP_UNPOPULATED)\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    char *r = shm_map_anon(N);
    r[0] = 'a';
    r[UPAGE] = 'b';
    uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    printf("protect pages 0-7: %s\n", uffd_err(-uffd_protect(fd, r, N * UPAGE)));
    row("after protect", r);
    printf("MADV_DONTNEED page 0: %s\n", uffd_err(madvise(r, UPAGE, MADV_DONTNEED) ? errno : 0));
    row("after DONTNEED", r);
    r[0] = 'A';
    r[2 * UPAGE] = 'C';
    printf("writes to pages 0 and 2 without a fault: %c %c pending %d\n", r[0], r[2 * UPAGE], uffd_pending(fd, 0));
    row("after the writes", r);
    write_faults(r, 1, 'B');
    munmap(r, N * UPAGE);
    close(fd);
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    protect_and_fault();
    zaps();
    anon();
    return 0;
}
