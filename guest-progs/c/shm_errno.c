// pagelab: cflags=-pthread
// The errno table of userfaultfd on shmem and file mappings (issue 9;
// reference 4.4, 4.7, 4.10-4.14, 3.3, Appendix A REG-1, CONT-1, POIS-1):
// which shmem features UFFDIO_API reports; UFFDIO_REGISTER of every mode on
// a memfd (MAP_SHARED and MAP_PRIVATE), MAP_SHARED|MAP_ANONYMOUS, a tmpfs
// file under /dev/shm (read-write, and read-only: no VM_MAYWRITE), and the
// program's own executable (not shmem: only WP with WP_ASYNC), with the
// ioctls mask returned; WRITEPROTECT/CONTINUE/COPY on the wrong
// registration or VMA type; UFFDIO_POISON on shmem and anon (the poison
// marker read raw from pagemap, the SIGBUS BUS_ADRERR an access raises,
// EEXIST over pages and markers, a poisoned page in the page cache, what
// MADV_DONTNEED and fork do with it), the raw pagemap entry of a uffd-wp
// marker. Output fields are pre-set to 1234 ("not written").
// With the argument "no-async" the WP_ASYNC rows are left out (a transcript
// for an implementation without UFFD_FEATURE_WP_ASYNC, which is issue 11).
#define _GNU_SOURCE
#include "shm.h"
#include <sys/wait.h>

#define F 1234

static void reg_modes(const char *what, int fd, char *p, size_t len) {
    static const struct {
        const char *name;
        uint64_t mode;
    } modes[] = {
        { "MISSING", UFFDIO_REGISTER_MODE_MISSING },
        { "WP", UFFDIO_REGISTER_MODE_WP },
        { "MISSING|WP", UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP },
        { "MINOR", UFFDIO_REGISTER_MODE_MINOR },
        { "MINOR|WP", UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP },
        { "MISSING|MINOR", UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR },
        { "MISSING|WP|MINOR", 7 },
    };
    printf("%s:", what);
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        uint64_t ioctls = F;
        int e = uffd_register(fd, p, len, modes[i].mode, &ioctls);
        if (e) printf(" %s=%s", modes[i].name, uffd_err(-e));
        else printf(" %s=%#llx", modes[i].name, (unsigned long long)ioctls);
        uffd_unregister(fd, p, len);
    }
    printf("\n");
}

static void api(void) {
    printf("== UFFDIO_API\n");
    int fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
    struct uffdio_api a;
    int e = uffd_api_raw(fd, UFFD_API, 0, &a);
    printf("features 0: %s\n", uffd_err(-e));
    static const struct {
        const char *name;
        uint64_t bit;
    } feats[] = {
        { "MISSING_SHMEM", UFFD_FEATURE_MISSING_SHMEM },
        { "MINOR_SHMEM", UFFD_FEATURE_MINOR_SHMEM },
        { "WP_HUGETLBFS_SHMEM", UFFD_FEATURE_WP_HUGETLBFS_SHMEM },
        { "WP_UNPOPULATED", UFFD_FEATURE_WP_UNPOPULATED },
        { "POISON", UFFD_FEATURE_POISON },
    };
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++) {
        printf("  reports %s: %s\n", feats[i].name, a.features & feats[i].bit ? "yes" : "no");
    }
    close(fd);
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++) {
        fd = uffd_new(O_CLOEXEC | O_NONBLOCK);
        e = uffd_api(fd, feats[i].bit);
        printf("request %s alone: %s\n", feats[i].name, uffd_err(-e));
        close(fd);
    }
}

static int no_async;

static void registration(void) {
    printf("== UFFDIO_REGISTER (features 0)\n");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    int mfd = shm_memfd("errno", 4);
    char *p = shm_map(mfd, 4, MAP_SHARED);
    reg_modes("memfd MAP_SHARED", fd, p, 4 * UPAGE);
    munmap(p, 4 * UPAGE);
    p = shm_map(mfd, 4, MAP_PRIVATE);
    reg_modes("memfd MAP_PRIVATE", fd, p, 4 * UPAGE);
    munmap(p, 4 * UPAGE);
    p = shm_map_anon_shared(4);
    reg_modes("MAP_SHARED|MAP_ANONYMOUS", fd, p, 4 * UPAGE);
    munmap(p, 4 * UPAGE);
    p = shm_map_anon(4);
    reg_modes("private anonymous", fd, p, 4 * UPAGE);
    munmap(p, 4 * UPAGE);
    p = shm_map_prot(mfd, 4, PROT_READ, MAP_SHARED, 0);
    reg_modes("memfd MAP_SHARED PROT_READ (O_RDWR fd)", fd, p, 4 * UPAGE);
    munmap(p, 4 * UPAGE);

    char path[] = "/dev/shm/pagelab-errno-XXXXXX";
    int tfd = mkstemp(path);
    if (tfd >= 0 && ftruncate(tfd, 4 * UPAGE) == 0) {
        p = shm_map(tfd, 4, MAP_SHARED);
        reg_modes("tmpfs file MAP_SHARED", fd, p, 4 * UPAGE);
        munmap(p, 4 * UPAGE);
        int rofd = open(path, O_RDONLY | O_CLOEXEC);
        p = shm_map_prot(rofd, 4, PROT_READ, MAP_SHARED, 0);
        reg_modes("tmpfs file O_RDONLY MAP_SHARED", fd, p, 4 * UPAGE);
        munmap(p, 4 * UPAGE);
        p = shm_map_prot(rofd, 4, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0);
        reg_modes("tmpfs file O_RDONLY MAP_PRIVATE", fd, p, 4 * UPAGE);
        munmap(p, 4 * UPAGE);
        close(rofd);
        unlink(path);
        close(tfd);
    } else {
        printf("tmpfs file: %s\n", shm_err(errno));
    }

    int xfd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    p = shm_map_prot(xfd, 4, PROT_READ, MAP_PRIVATE, 0);
    reg_modes("executable MAP_PRIVATE", fd, p, 4 * UPAGE);
    close(fd);
    if (no_async) {
        munmap(p, 4 * UPAGE);
        close(xfd);
        close(mfd);
        return;
    }
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_WP_ASYNC);
    reg_modes("executable MAP_PRIVATE, WP_ASYNC", fd, p, 4 * UPAGE);
    uffd_register(fd, p, 4 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    char *src = uffd_map(1);
    int64_t c = F;
    int e = uffd_copy(fd, p, src, UPAGE, 0, &c);
    printf("  COPY into it: %s copy %lld\n", uffd_err(-e), (long long)c);
    c = F;
    e = uffd_continue(fd, p, UPAGE, 0, &c);
    printf("  CONTINUE into it: %s mapped %lld\n", uffd_err(-e), (long long)c);
    munmap(p, 4 * UPAGE);
    p = shm_map_prot(xfd, 4, PROT_READ, MAP_SHARED, 0);
    reg_modes("executable MAP_SHARED (O_RDONLY), WP_ASYNC", fd, p, 4 * UPAGE);
    munmap(p, 4 * UPAGE);
    munmap(src, UPAGE);
    close(xfd);
    close(fd);
    close(mfd);
}

static void wrong_mode(void) {
    printf("== ioctls on the wrong registration\n");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    int mfd = shm_memfd("wrong", 4);
    pwrite(mfd, "a", 1, 0);
    char *p = shm_map(mfd, 4, MAP_SHARED);
    uffd_register(fd, p, 2 * UPAGE, UFFDIO_REGISTER_MODE_MISSING, NULL);
    uffd_register(fd, p + 2 * UPAGE, 2 * UPAGE, UFFDIO_REGISTER_MODE_MINOR, NULL);
    printf("WRITEPROTECT MISSING-only shmem: %s\n", uffd_err(-uffd_protect(fd, p, UPAGE)));
    printf("WRITEPROTECT MINOR-only shmem: %s\n", uffd_err(-uffd_protect(fd, p + 2 * UPAGE, UPAGE)));
    int64_t c = F;
    int e = uffd_continue(fd, p, 2 * UPAGE, 0, &c);
    printf("CONTINUE MISSING-only shmem, pages 0-1 (0 cached, 1 a hole): %s mapped %lld\n", uffd_err(-e), (long long)c);
    c = F;
    e = uffd_continue(fd, p, UPAGE, 0, &c);
    printf("CONTINUE MISSING-only shmem, page 0 again: %s mapped %lld\n", uffd_err(-e), (long long)c);
    c = F;
    e = uffd_continue(fd, p + UPAGE, 2 * UPAGE, 0, &c);
    printf("CONTINUE across the two VMAs: %s mapped %lld\n", uffd_err(-e), (long long)c);
    char *anon = shm_map_anon(1);
    anon[0] = 1;
    uffd_register(fd, anon, UPAGE, UFFDIO_REGISTER_MODE_MISSING, NULL);
    c = F;
    e = uffd_continue(fd, anon, UPAGE, 0, &c);
    printf("CONTINUE anon: %s mapped %lld\n", uffd_err(-e), (long long)c);
    munmap(anon, UPAGE);
    char *sa = shm_map_anon_shared(2);
    sa[0] = 's';
    madvise(sa, UPAGE, MADV_DONTNEED);
    uffd_register(fd, sa, 2 * UPAGE, UFFDIO_REGISTER_MODE_MINOR, NULL);
    c = F;
    e = uffd_continue(fd, sa, UPAGE, 0, &c);
    printf("CONTINUE MAP_SHARED|MAP_ANONYMOUS page in the object: %s mapped %lld, reads %c\n", uffd_err(-e), (long long)c, sa[0]);
    c = F;
    e = uffd_continue(fd, sa + UPAGE, UPAGE, 0, &c);
    printf("CONTINUE MAP_SHARED|MAP_ANONYMOUS hole: %s mapped %lld\n", uffd_err(-e), (long long)c);
    munmap(sa, 2 * UPAGE);
    munmap(p, 4 * UPAGE);
    close(mfd);
    close(fd);
}

static void print_raw(const char *what, const void *p) {
    uint64_t e = uffd_pagemap(p);
    char b[64];
    if (e & PM_PRESENT) printf("%s: %s\n", what, uffd_pm_str(e, b, sizeof b));
    else printf("%s: %s, raw %#llx\n", what, uffd_pm_str(e, b, sizeof b), (unsigned long long)e);
}

static void poison(void) {
    printf("== UFFDIO_POISON\n");
    shm_catch(SIGBUS);
    shm_catch(SIGSEGV);
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    int mfd = shm_memfd("poison", 8);
    pwrite(mfd, "b", 1, UPAGE);
    char *p = shm_map(mfd, 8, MAP_SHARED);
    p[2 * UPAGE] = 'c';
    uint64_t ioctls = 0;
    int e = uffd_register(fd, p, 8 * UPAGE, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP, &ioctls);
    printf("register MISSING|WP: %s ioctls %#llx\n", uffd_err(-e), (unsigned long long)ioctls);
    int64_t u = F;
    e = uffd_poison(fd, p, UPAGE, 0, &u);
    printf("POISON page 0 (a hole): %s updated %lld\n", uffd_err(-e), (long long)u);
    u = F;
    e = uffd_poison(fd, p + UPAGE, UPAGE, 0, &u);
    printf("POISON page 1 (cached, none PTE): %s updated %lld\n", uffd_err(-e), (long long)u);
    u = F;
    e = uffd_poison(fd, p + 2 * UPAGE, UPAGE, 0, &u);
    printf("POISON page 2 (mapped): %s updated %lld\n", uffd_err(-e), (long long)u);
    printf("protect page 3: %s\n", uffd_err(-uffd_protect(fd, p + 3 * UPAGE, UPAGE)));
    print_raw("  page 3", p + 3 * UPAGE);
    u = F;
    e = uffd_poison(fd, p + 3 * UPAGE, UPAGE, 0, &u);
    printf("POISON page 3 (a uffd-wp marker): %s updated %lld\n", uffd_err(-e), (long long)u);
    u = F;
    e = uffd_poison(fd, p + 4 * UPAGE, UPAGE, 2, &u);
    printf("POISON mode 2: %s updated %lld\n", uffd_err(-e), (long long)u);
    u = F;
    e = uffd_poison(fd, p + 4 * UPAGE, 2 * UPAGE, UFFDIO_COPY_MODE_DONTWAKE, &u);
    printf("POISON pages 4-5 DONTWAKE: %s updated %lld\n", uffd_err(-e), (long long)u);
    u = F;
    e = uffd_poison(fd, p + 5 * UPAGE, 2 * UPAGE, 0, &u);
    printf("POISON pages 5-6 (5 is poisoned): %s updated %lld\n", uffd_err(-e), (long long)u);
    print_raw("  page 0", p);
    print_raw("  page 1", p + UPAGE);
    printf("protect page 0 (poisoned): %s\n", uffd_err(-uffd_protect(fd, p, UPAGE)));
    print_raw("  page 0", p);
    printf("unprotect pages 0-7: %s\n", uffd_err(-uffd_unprotect(fd, p, 8 * UPAGE)));
    shm_pm_print("row", p, 8);
    shm_probe("read page 0", p, 0, 0, 0);
    shm_probe("write page 0", p, 17, 1, 'x');
    shm_probe("read page 1 (its page is in the cache)", p, UPAGE + 5, 0, 0);
    char b = 0;
    ssize_t n = pread(mfd, &b, 1, UPAGE);
    printf("pread page 1: %zd %c\n", n, b);
    int64_t c = F;
    char *src = uffd_map(1);
    e = uffd_copy(fd, p + 4 * UPAGE, src, UPAGE, 0, &c);
    printf("COPY over page 4 (poisoned): %s copy %lld\n", uffd_err(-e), (long long)c);
    c = F;
    e = uffd_zeropage(fd, p + 4 * UPAGE, UPAGE, 0, &c);
    printf("ZEROPAGE over page 4 (poisoned): %s zeropage %lld\n", uffd_err(-e), (long long)c);
    pl_flush();
    pid_t pid = fork();
    if (pid == 0) {
        /* The shared VMA's PTEs are not copied: the child sees the file. */
        shm_pm_print("child row", p, 8);
        shm_probe("child read page 0", p, 0, 0, 0);
        shm_probe("child read page 1", p, UPAGE, 0, 0);
        pl_flush();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("MADV_DONTNEED page 0: %s\n", uffd_err(madvise(p, UPAGE, MADV_DONTNEED) ? errno : 0));
    print_raw("  page 0", p);
    printf("MADV_REMOVE page 1: %s\n", uffd_err(madvise(p + UPAGE, UPAGE, MADV_REMOVE) ? errno : 0));
    print_raw("  page 1", p + UPAGE);
    printf("PUNCH_HOLE page 4: %s\n",
           uffd_err(fallocate(mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * UPAGE, UPAGE) ? errno : 0));
    print_raw("  page 4", p + 4 * UPAGE);
    printf("unregister: %s\n", uffd_err(-uffd_unregister(fd, p, 8 * UPAGE)));
    shm_pm_print("row", p, 8);
    shm_probe("read page 5 after unregister", p, 5 * UPAGE, 0, 0);
    close(fd);
    shm_probe("read page 5 after close", p, 5 * UPAGE, 0, 0);
    munmap(p, 8 * UPAGE);
    printf("munmap and mmap again: ");
    p = shm_map(mfd, 8, MAP_SHARED);
    shm_probe("read page 5", p, 5 * UPAGE, 0, 0);
    munmap(p, 8 * UPAGE);
    close(mfd);

    printf("-- anon\n");
    fd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    char *a = shm_map_anon(2);
    uffd_register(fd, a, 2 * UPAGE, UFFDIO_REGISTER_MODE_MISSING, NULL);
    u = F;
    e = uffd_poison(fd, a, UPAGE, 0, &u);
    printf("POISON anon page 0: %s updated %lld\n", uffd_err(-e), (long long)u);
    print_raw("  page 0", a);
    pl_flush();
    pid = fork();
    if (pid == 0) {
        shm_probe("child read anon page 0", a, 0, 0, 0);
        pl_flush();
        _exit(0);
    }
    waitpid(pid, &st, 0);
    printf("MADV_DONTNEED anon page 0: %s\n", uffd_err(madvise(a, UPAGE, MADV_DONTNEED) ? errno : 0));
    print_raw("  page 0", a);
    munmap(a, 2 * UPAGE);
    munmap(src, UPAGE);
    close(fd);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    no_async = argc > 1 && !strcmp(argv[1], "no-async");
    api();
    registration();
    wrong_mode();
    poison();
    return 0;
}
