// pagelab: cflags=-pthread
// Fault-around (issue 9): a read fault in a file or shmem mapping also maps
// the neighbouring pages that are already in the page cache (and uptodate):
// the window is 64 KiB (16 pages) aligned by virtual address, clipped to the
// VMA and the page table, only for read faults (not for write faults, which
// map one page). Each case prints the pagemap of the region after accesses,
// one character per page (shm.h: '.' none, 'P' present file page, 'p'
// present anonymous). Regions start 2 MiB-aligned, so windows fall on page
// indexes 0-15, 16-31, ... Cases: a memfd fully cached, partly cached,
// fallocated pages (in the cache but not uptodate: never mapped around), a
// hole at the faulting page, VMA edges (mprotect split, mapping end, EOF),
// MAP_PRIVATE, MAP_SHARED|MAP_ANONYMOUS, the program's own executable read
// through /proc/self/exe (MAP_PRIVATE and MAP_SHARED read-only), and uffd:
// MISSING registration keeps fault-around (neighbours are mapped before the
// MISSING message for the hole), WP and MINOR disable it (one page), and
// un-registering restores it.
#define _GNU_SOURCE
#include "shm.h"

#define N 32

/* A memfd of N pages with the pages whose bit is set in `cached` written
 * through pwrite (page i holds 'a' + i). */
static int memfd_with(const char *name, uint32_t cached) {
    int fd = shm_memfd(name, N);
    for (int i = 0; i < N; i++) {
        if (cached & (1u << i)) {
            char c = (char)('a' + i);
            if (pwrite(fd, &c, 1, (off_t)i * UPAGE) != 1) printf("pwrite failed\n");
        }
    }
    return fd;
}

static char rd(const char *p) {
    return *(volatile const char *)p;
}

static void show(const char *what, const char *r, size_t pages) {
    shm_pm_print(what, r, pages);
}

static void shmem_cases(void) {
    printf("== memfd MAP_SHARED\n");
    int fd = memfd_with("all", 0xffffffffu);
    char *r = shm_map(fd, N, MAP_SHARED);
    show("untouched", r, N);
    printf("read page 5: %c\n", rd(r + 5 * UPAGE));
    show("after read page 5", r, N);
    printf("read page 20: %c\n", rd(r + 20 * UPAGE));
    show("after read page 20", r, N);
    munmap(r, N * UPAGE);

    r = shm_map(fd, N, MAP_SHARED);
    r[5 * UPAGE] = 'W';
    show("write page 5 (no fault-around)", r, N);
    printf("read page 6 (mapped around, no fault): %c\n", rd(r + 6 * UPAGE));
    show("after read page 6", r, N);
    munmap(r, N * UPAGE);

    r = shm_map(fd, N, MAP_PRIVATE);
    printf("MAP_PRIVATE read page 9: %c\n", rd(r + 9 * UPAGE));
    show("MAP_PRIVATE after read page 9", r, N);
    r[10 * UPAGE] = 'C';
    show("MAP_PRIVATE after write page 10 (COW)", r, N);
    munmap(r, N * UPAGE);
    r = shm_map(fd, N, MAP_PRIVATE);
    r[3 * UPAGE] = 'C';
    show("MAP_PRIVATE write page 3 first", r, N);
    munmap(r, N * UPAGE);

    /* VMA edges: mprotect splits pages 0-2 off; a mapping of 20 pages. */
    r = shm_map(fd, N, MAP_SHARED);
    mprotect(r, 3 * UPAGE, PROT_READ);
    printf("pages 0-2 read-only (own VMA), read page 5: %c\n", rd(r + 5 * UPAGE));
    show("after read page 5", r, N);
    printf("read page 1: %c\n", rd(r + 1 * UPAGE));
    show("after read page 1", r, N);
    munmap(r, N * UPAGE);
    r = shm_map(fd, 20, MAP_SHARED);
    printf("20-page mapping, read page 17: %c\n", rd(r + 17 * UPAGE));
    show("after read page 17", r, 20);
    munmap(r, 20 * UPAGE);
    /* A mapping at file offset 8 pages: the window is by address, not offset. */
    r = shm_map_prot(fd, 16, PROT_READ | PROT_WRITE, MAP_SHARED, 8 * UPAGE);
    printf("mapping of file pages 8-23, read its page 3: %c\n", rd(r + 3 * UPAGE));
    show("after read", r, 16);
    munmap(r, 16 * UPAGE);
    close(fd);

    printf("== partly cached\n");
    fd = memfd_with("even", 0x55555555u);
    r = shm_map(fd, N, MAP_SHARED);
    printf("even pages cached, read page 6: %c\n", rd(r + 6 * UPAGE));
    show("after read page 6", r, N);
    printf("read page 7 (a hole: allocated, neighbours mapped): %d\n", rd(r + 7 * UPAGE));
    show("after read page 7", r, N);
    printf("read page 17 (a hole): %d\n", rd(r + 17 * UPAGE));
    show("after read page 17", r, N);
    munmap(r, N * UPAGE);
    close(fd);

    fd = shm_memfd("falloc", N);
    fallocate(fd, 0, 0, 16 * UPAGE);
    pwrite(fd, "b", 1, 1 * UPAGE);
    pwrite(fd, "d", 1, 3 * UPAGE);
    r = shm_map(fd, N, MAP_SHARED);
    printf("pages 0-15 fallocated, 1 and 3 written; read page 2: %d\n", rd(r + 2 * UPAGE));
    show("after read page 2", r, N);
    printf("read page 8: %d\n", rd(r + 8 * UPAGE));
    show("after read page 8", r, N);
    munmap(r, N * UPAGE);
    close(fd);

    fd = memfd_with("eof", 0x3ffu);
    ftruncate(fd, 10 * UPAGE);
    r = shm_map(fd, 16, MAP_SHARED);
    printf("10-page file in a 16-page mapping, read page 2: %c\n", rd(r + 2 * UPAGE));
    show("after read page 2", r, 16);
    munmap(r, 16 * UPAGE);
    close(fd);

    printf("== MAP_SHARED|MAP_ANONYMOUS\n");
    r = shm_map_anon_shared(N);
    for (int i = 0; i < N; i++) r[i * UPAGE] = (char)('A' + i);
    show("all written", r, N);
    madvise(r, N * UPAGE, MADV_DONTNEED);
    show("after MADV_DONTNEED", r, N);
    printf("read page 18: %c\n", rd(r + 18 * UPAGE));
    show("after read page 18", r, N);
    munmap(r, N * UPAGE);
}

static void file_cases(void) {
    printf("== /proc/self/exe\n");
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct stat st;
    fstat(fd, &st);
    printf("open: %s, at least 48 pages: %d\n", fd >= 0 ? "ok" : shm_err(errno), st.st_size >= 48 * (off_t)UPAGE);
    /* Reading the whole file puts every page in the page cache. */
    static char buf[1 << 16];
    off_t off = 0;
    ssize_t n;
    while ((n = pread(fd, buf, sizeof buf, off)) > 0) off += n;
    printf("read to EOF: %d\n", off == st.st_size);
    char *r = shm_map_prot(fd, N, PROT_READ, MAP_PRIVATE, 0);
    char c0 = rd(r + 5 * UPAGE);
    pread(fd, buf, 1, 5 * UPAGE);
    printf("MAP_PRIVATE read page 5 same as the file: %d\n", c0 == buf[0]);
    show("after read page 5", r, N);
    munmap(r, N * UPAGE);
    r = shm_map_prot(fd, N, PROT_READ, MAP_SHARED, 16 * UPAGE);
    c0 = rd(r + 27 * UPAGE);
    pread(fd, buf, 1, (16 + 27) * UPAGE);
    printf("MAP_SHARED (read-only fd) of pages 16-47, read page 27 same as the file: %d\n", c0 == buf[0]);
    show("after read page 27", r, N);
    munmap(r, N * UPAGE);
    r = shm_map_prot(fd, N, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0);
    r[12 * UPAGE] = 1;
    show("MAP_PRIVATE RW, write page 12", r, N);
    c0 = rd(r + 13 * UPAGE);
    show("then read page 13", r, N);
    munmap(r, N * UPAGE);
    close(fd);
}

/* ---- uffd ---------------------------------------------------------------- */

static void uffd_cases(void) {
    printf("== uffd MISSING\n");
    int mfd = memfd_with("uffd", 0xffffffffu & ~(1u << 5));
    char *r = shm_map(mfd, N, MAP_SHARED);
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    uint64_t ioctls;
    printf("register MISSING: %s\n", uffd_err(-uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MISSING, &ioctls)));
    printf("read page 4: %c\n", rd(r + 4 * UPAGE));
    show("after read page 4 (page 5 is a hole)", r, N);
    munmap(r, N * UPAGE);
    r = shm_map(mfd, N, MAP_SHARED);
    uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MISSING, NULL);
    struct shm_access a;
    shm_access_start(&a, r + 5 * UPAGE, 0, 0);
    shm_expect_msg(fd, r, "read page 5 (the hole)", NULL);
    show("while the reader waits", r, N);
    int64_t z = 0;
    int e = uffd_zeropage(fd, r + 5 * UPAGE, UPAGE, 0, &z);
    printf("ZEROPAGE page 5: %s zeropage %lld\n", uffd_err(-e), (long long)z);
    shm_access_join(&a);
    printf("reader got %d\n", a.seen);
    show("after ZEROPAGE", r, N);
    munmap(r, N * UPAGE);

    printf("== uffd WP\n");
    r = shm_map(mfd, N, MAP_SHARED);
    close(fd);
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    printf("register WP: %s\n", uffd_err(-uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    printf("read page 4: %c\n", rd(r + 4 * UPAGE));
    show("after read page 4", r, N);
    printf("read page 6: %c\n", rd(r + 6 * UPAGE));
    show("after read page 6", r, N);
    printf("unregister: %s\n", uffd_err(-uffd_unregister(fd, r, N * UPAGE)));
    printf("read page 20: %c\n", rd(r + 20 * UPAGE));
    show("after unregister, read page 20", r, N);
    printf("pending: %d\n", uffd_pending(fd, 0));
    munmap(r, N * UPAGE);

    printf("== uffd MINOR\n");
    close(fd);
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_MINOR_SHMEM);
    r = shm_map(mfd, N, MAP_SHARED);
    printf("register MINOR: %s\n", uffd_err(-uffd_register(fd, r, N * UPAGE, UFFDIO_REGISTER_MODE_MINOR, NULL)));
    shm_access_start(&a, r + 4 * UPAGE, 0, 0);
    shm_expect_msg(fd, r, "read page 4", NULL);
    show("while the reader waits", r, N);
    int64_t m = 0;
    e = uffd_continue(fd, r + 4 * UPAGE, UPAGE, 0, &m);
    printf("CONTINUE page 4: %s mapped %lld\n", uffd_err(-e), (long long)m);
    shm_access_join(&a);
    printf("reader got %c\n", a.seen);
    show("after CONTINUE", r, N);
    m = 0;
    e = uffd_continue(fd, r + 8 * UPAGE, 4 * UPAGE, 0, &m);
    printf("CONTINUE pages 8-11 without a fault: %s mapped %lld\n", uffd_err(-e), (long long)m);
    show("after CONTINUE 8-11", r, N);
    printf("unregister: %s\n", uffd_err(-uffd_unregister(fd, r, N * UPAGE)));
    printf("read page 20: %c\n", rd(r + 20 * UPAGE));
    show("after unregister, read page 20", r, N);
    printf("pending: %d\n", uffd_pending(fd, 0));
    munmap(r, N * UPAGE);
    close(fd);
    close(mfd);
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    shmem_cases();
    file_cases();
    uffd_cases();
    return 0;
}
