// shmem files without userfaultfd (issue 9): memfd_create (flags, name, the
// fd link, fstat), the file operations on it (write/read/pread/pwrite/lseek
// with SEEK_DATA/SEEK_HOLE, ftruncate, fallocate default and PUNCH_HOLE|
// KEEP_SIZE, st_size and st_blocks), seals (SHRINK, GROW, WRITE, SEAL and the
// errnos they cause to ftruncate, write, fallocate, mmap and mprotect),
// MAP_SHARED and MAP_PRIVATE mappings of it (shared writes reach the file,
// private writes copy on write; pagemap file bit), MAP_SHARED|MAP_ANONYMOUS,
// SIGBUS (BUS_ADRERR) past EOF of a mapping and after a truncation, and a
// tmpfs directory under /dev/shm (O_CREAT|O_EXCL, rename, mkdir, unlink,
// rmdir, a getdents64 listing sorted by the program, a mapping of an unlinked
// file, statfs). Nothing printed depends on addresses or the directory name.
#define _GNU_SOURCE
#include "shm.h"
#include <dirent.h>
#include <sys/statfs.h>

#ifndef SEEK_DATA
#define SEEK_DATA 3
#define SEEK_HOLE 4
#endif

static void stat_line(const char *what, int fd) {
    struct stat st;
    if (fstat(fd, &st) < 0) {
        printf("%s: fstat %s\n", what, shm_err(errno));
        return;
    }
    printf("%s: size %lld blocks %lld\n", what, (long long)st.st_size, (long long)st.st_blocks);
}

/* The /proc/self/maps line that contains p: its permissions and path only. */
static void maps_line(const char *what, const void *p) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    uintptr_t a = (uintptr_t)p;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        int n = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &n) < 3) continue;
        if (a < lo || a >= hi) continue;
        char *path = line + n;
        path[strcspn(path, "\n")] = 0;
        printf("%s: maps %s %s\n", what, perms, path);
        fclose(f);
        return;
    }
    if (f) fclose(f);
    printf("%s: not in maps\n", what);
}

static void memfd_basics(void) {
    printf("== memfd_create\n");
    int fd = shm_memfd_raw("shm_memfd", MFD_CLOEXEC);
    printf("MFD_CLOEXEC: %s\n", fd >= 0 ? "ok" : shm_err(-fd));
    printf("  FD_CLOEXEC %d, O_RDWR %d\n", fcntl(fd, F_GETFD) & FD_CLOEXEC, (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
    char link[128] = { 0 }, path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    printf("  fd link: %s\n", n > 0 ? link : shm_err(errno));
    struct stat st;
    fstat(fd, &st);
    printf("  S_ISREG %d mode %04o nlink %ld size %lld blocks %lld\n", S_ISREG(st.st_mode), st.st_mode & 07777,
           (long)st.st_nlink, (long long)st.st_size, (long long)st.st_blocks);
    shm_row("  F_GET_SEALS without ALLOW_SEALING", fcntl(fd, F_GET_SEALS));
    shm_row("  F_ADD_SEALS without ALLOW_SEALING", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    close(fd);
    int e = shm_memfd_raw("x", 0x100);
    printf("flags 0x100: %s\n", e >= 0 ? "ok" : shm_err(-e));
    e = shm_memfd_raw("x", MFD_EXEC | MFD_NOEXEC_SEAL);
    printf("flags EXEC|NOEXEC_SEAL: %s\n", e >= 0 ? "ok" : shm_err(-e));
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    e = shm_memfd_raw(longname, 0);
    printf("name of 299 bytes: %s\n", e >= 0 ? "ok" : shm_err(-e));
    longname[249] = 0;
    e = shm_memfd_raw(longname, MFD_CLOEXEC);
    printf("name of 249 bytes: %s\n", e >= 0 ? "ok" : shm_err(-e));
    if (e >= 0) close(e);
    e = shm_memfd_raw(NULL, 0);
    printf("NULL name: %s\n", e >= 0 ? "ok" : shm_err(-e));
    e = shm_memfd_raw("", MFD_CLOEXEC);
    printf("empty name: %s\n", e >= 0 ? "ok" : shm_err(-e));
    if (e >= 0) close(e);
    e = shm_memfd_raw("noexec", MFD_CLOEXEC | MFD_NOEXEC_SEAL);
    if (e >= 0) {
        fstat(e, &st);
        printf("MFD_NOEXEC_SEAL: mode %04o seals %#x\n", st.st_mode & 07777, fcntl(e, F_GET_SEALS));
        close(e);
    } else printf("MFD_NOEXEC_SEAL: %s\n", shm_err(-e));
}

static void file_ops(void) {
    printf("== file operations\n");
    int fd = shm_memfd_raw("ops", MFD_CLOEXEC);
    stat_line("new", fd);
    shm_row("write 5", write(fd, "hello", 5));
    stat_line("after write", fd);
    shm_row("lseek CUR", lseek(fd, 0, SEEK_CUR));
    shm_row("lseek END", lseek(fd, 0, SEEK_END));
    shm_row("lseek SET -1", lseek(fd, -1, SEEK_SET));
    char b[16] = { 0 };
    shm_row("read at end", read(fd, b, sizeof b));
    shm_row("pread 0", pread(fd, b, 16, 0));
    printf("  data %.5s\n", b);
    shm_row("pwrite at 8", pwrite(fd, "XY", 2, 8));
    memset(b, '-', sizeof b);
    shm_row("pread 10 at 0", pread(fd, b, 10, 0));
    printf("  bytes:");
    for (int i = 0; i < 10; i++) printf(" %02x", (unsigned char)b[i]);
    printf("\n");
    shm_row("pread past EOF", pread(fd, b, 4, 100));
    shm_row("ftruncate 16 pages", ftruncate(fd, 16 * UPAGE));
    stat_line("after ftruncate", fd);
    shm_row("fallocate 0 pages 0-3", fallocate(fd, 0, 0, 4 * UPAGE));
    stat_line("after fallocate", fd);
    shm_row("pwrite page 6", pwrite(fd, "six", 3, 6 * UPAGE));
    stat_line("after pwrite page 6", fd);
    shm_row("SEEK_DATA from 0", lseek(fd, 0, SEEK_DATA));
    shm_row("SEEK_HOLE from 0 (pages)", lseek(fd, 0, SEEK_HOLE) / (long)UPAGE);
    shm_row("SEEK_DATA from page 4 (pages)", lseek(fd, 4 * UPAGE, SEEK_DATA) / (long)UPAGE);
    shm_row("SEEK_HOLE from page 6 (pages)", lseek(fd, 6 * UPAGE, SEEK_HOLE) / (long)UPAGE);
    shm_row("SEEK_DATA from page 7", lseek(fd, 7 * UPAGE, SEEK_DATA));
    shm_row("SEEK_DATA past EOF", lseek(fd, 20 * UPAGE, SEEK_DATA));
    shm_row("PUNCH_HOLE|KEEP_SIZE pages 1-2", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, UPAGE, 2 * UPAGE));
    stat_line("after punch", fd);
    shm_row("SEEK_HOLE from 0 (pages)", lseek(fd, 0, SEEK_HOLE) / (long)UPAGE);
    shm_row("SEEK_DATA from page 1 (pages)", lseek(fd, UPAGE, SEEK_DATA) / (long)UPAGE);
    shm_row("PUNCH_HOLE partial page 0 bytes 1-2", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1, 2));
    memset(b, '-', sizeof b);
    shm_row("pread 5 at 0", pread(fd, b, 5, 0));
    printf("  bytes: %02x %02x %02x %02x %02x\n", b[0], b[1], b[2], b[3], b[4]);
    stat_line("after partial punch", fd);
    shm_row("PUNCH_HOLE without KEEP_SIZE", fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, UPAGE));
    shm_row("fallocate mode 0x100", fallocate(fd, 0x100, 0, UPAGE));
    shm_row("fallocate len 0", fallocate(fd, 0, 0, 0));
    shm_row("fallocate KEEP_SIZE past EOF", fallocate(fd, FALLOC_FL_KEEP_SIZE, 16 * UPAGE, 2 * UPAGE));
    stat_line("after KEEP_SIZE past EOF", fd);
    shm_row("fallocate past EOF", fallocate(fd, 0, 18 * UPAGE, UPAGE));
    stat_line("after fallocate past EOF", fd);
    shm_row("ftruncate 1 page", ftruncate(fd, UPAGE));
    stat_line("after shrink", fd);
    shm_row("ftruncate -1", ftruncate(fd, -1));
    shm_row("write at offset past EOF (lseek 3 pages)", lseek(fd, 3 * UPAGE, SEEK_SET));
    shm_row("write 1", write(fd, "z", 1));
    stat_line("after sparse write", fd);
    close(fd);
}

static void seals(void) {
    printf("== seals\n");
    int fd = shm_memfd_raw("seals", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    shm_row("F_GET_SEALS", fcntl(fd, F_GET_SEALS));
    shm_row("ftruncate 4 pages", ftruncate(fd, 4 * UPAGE));
    shm_row("F_ADD_SEALS SHRINK", fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK));
    shm_row("F_GET_SEALS", fcntl(fd, F_GET_SEALS));
    shm_row("  ftruncate 2 pages", ftruncate(fd, 2 * UPAGE));
    shm_row("  ftruncate 6 pages", ftruncate(fd, 6 * UPAGE));
    shm_row("  PUNCH_HOLE page 0", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, UPAGE));
    shm_row("F_ADD_SEALS GROW", fcntl(fd, F_ADD_SEALS, F_SEAL_GROW));
    shm_row("  ftruncate 7 pages", ftruncate(fd, 7 * UPAGE));
    shm_row("  ftruncate 6 pages (same size)", ftruncate(fd, 6 * UPAGE));
    shm_row("  pwrite at EOF", pwrite(fd, "g", 1, 6 * UPAGE));
    shm_row("  pwrite 2 bytes across EOF", pwrite(fd, "gg", 2, 6 * UPAGE - 1));
    shm_row("  pwrite inside", pwrite(fd, "in", 2, UPAGE));
    shm_row("  fallocate past EOF", fallocate(fd, 0, 6 * UPAGE, UPAGE));
    shm_row("  fallocate KEEP_SIZE past EOF", fallocate(fd, FALLOC_FL_KEEP_SIZE, 6 * UPAGE, UPAGE));
    shm_row("  fallocate inside", fallocate(fd, 0, 0, UPAGE));
    char *w = mmap(NULL, UPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("  shared writable mapping: %s\n", w == MAP_FAILED ? shm_err(errno) : "ok");
    shm_row("F_ADD_SEALS WRITE with a shared writable mapping", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    munmap(w, UPAGE);
    shm_row("F_ADD_SEALS WRITE after munmap", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    shm_row("F_GET_SEALS", fcntl(fd, F_GET_SEALS));
    shm_row("  write", pwrite(fd, "w", 1, 0));
    shm_row("  write 0 bytes", pwrite(fd, "w", 0, 0));
    shm_row("  PUNCH_HOLE", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, UPAGE));
    char b[2] = { 0 };
    shm_row("  pread", pread(fd, b, 2, UPAGE));
    printf("  data %.2s\n", b);
    w = mmap(NULL, UPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    printf("  mmap SHARED RW: %s\n", w == MAP_FAILED ? shm_err(errno) : "ok");
    char *r = mmap(NULL, UPAGE, PROT_READ, MAP_SHARED, fd, 0);
    printf("  mmap SHARED R: %s\n", r == MAP_FAILED ? shm_err(errno) : "ok");
    shm_row("  mprotect it RW", mprotect(r, UPAGE, PROT_READ | PROT_WRITE));
    munmap(r, UPAGE);
    char *pv = mmap(NULL, 2 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    printf("  mmap PRIVATE RW: %s\n", pv == MAP_FAILED ? shm_err(errno) : "ok");
    if (pv != MAP_FAILED) {
        pv[UPAGE] = 'P';
        shm_row("  pread after a private write", pread(fd, b, 2, UPAGE));
        printf("  data %.2s, private copy %c%c\n", b, pv[UPAGE], pv[UPAGE + 1]);
        munmap(pv, 2 * UPAGE);
    }
    shm_row("F_ADD_SEALS SEAL", fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL));
    shm_row("F_ADD_SEALS SHRINK again", fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK));
    shm_row("F_ADD_SEALS 0", fcntl(fd, F_ADD_SEALS, 0));
    shm_row("F_GET_SEALS", fcntl(fd, F_GET_SEALS));
    close(fd);

    fd = shm_memfd_raw("seals2", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    shm_row("new memfd: F_ADD_SEALS 0x10000", fcntl(fd, F_ADD_SEALS, 0x10000));
    shm_row("F_ADD_SEALS SEAL", fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL));
    shm_row("F_ADD_SEALS WRITE after SEAL", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
    close(fd);
    int p[2];
    if (pipe(p) == 0) {
        shm_row("F_GET_SEALS on a pipe", fcntl(p[0], F_GET_SEALS));
        shm_row("F_ADD_SEALS on a pipe", fcntl(p[0], F_ADD_SEALS, F_SEAL_SEAL));
        close(p[0]);
        close(p[1]);
    }
}

static void mappings(void) {
    printf("== mappings\n");
    int fd = shm_memfd("maps", 4);
    pwrite(fd, "file0", 5, 0);
    pwrite(fd, "file1", 5, UPAGE);
    char *s = shm_map(fd, 4, MAP_SHARED);
    char *p = shm_map(fd, 4, MAP_PRIVATE);
    maps_line("shared", s);
    maps_line("private", p);
    shm_pm_page("shared before access", s, 0);
    printf("shared page 0 reads %.5s, private page 0 reads %.5s\n", s, p);
    shm_pm_page("shared after read", s, 0);
    shm_pm_page("private after read", p, 0);
    s[0] = 'S';
    char b[8] = { 0 };
    pread(fd, b, 5, 0);
    printf("after shared write: fd reads %.5s, private reads %.5s\n", b, p);
    p[UPAGE] = 'Q';
    pread(fd, b, 5, UPAGE);
    printf("after private write page 1: fd reads %.5s, shared reads %.5s, private reads %.5s\n", b, s + UPAGE, p + UPAGE);
    shm_pm_page("private after write", p, 1);
    shm_pm_page("shared", s, 1);
    pwrite(fd, "FILE", 4, UPAGE);
    pwrite(fd, "FILE", 4, 0);
    printf("after pwrite: shared %.5s %.5s, private %.5s (page-cache page) %.5s (its copy)\n", s, s + UPAGE, p, p + UPAGE);
    p[2 * UPAGE] = 'n';
    pread(fd, b, 1, 2 * UPAGE);
    printf("private write to a hole: fd reads %02x, private %c\n", b[0], p[2 * UPAGE]);
    shm_pm_page("private written hole", p, 2);
    stat_line("after private write to a hole", fd);
    shm_row("MADV_DONTNEED private page 1", madvise(p + UPAGE, UPAGE, MADV_DONTNEED));
    printf("private page 1 now reads %.5s\n", p + UPAGE);
    shm_row("MADV_DONTNEED shared page 0", madvise(s, UPAGE, MADV_DONTNEED));
    shm_pm_page("shared after DONTNEED", s, 0);
    printf("shared page 0 still reads %.5s\n", s);
    shm_row("MADV_REMOVE shared page 0", madvise(s, UPAGE, MADV_REMOVE));
    printf("after MADV_REMOVE: shared page 0 reads %02x\n", s[0]);
    stat_line("after MADV_REMOVE", fd);
    shm_row("MADV_REMOVE on the private mapping", madvise(p + 3 * UPAGE, UPAGE, MADV_REMOVE));
    munmap(s, 4 * UPAGE);
    munmap(p, 4 * UPAGE);
    close(fd);

    char *a = shm_map_anon_shared(2);
    maps_line("MAP_SHARED|MAP_ANONYMOUS", a);
    shm_pm_page("shared anon untouched", a, 0);
    printf("shared anon reads %02x\n", a[0]);
    shm_pm_page("shared anon after read", a, 0);
    a[UPAGE] = 'a';
    shm_pm_page("shared anon after write", a, 1);
    shm_row("MADV_DONTNEED shared anon page 1", madvise(a + UPAGE, UPAGE, MADV_DONTNEED));
    printf("shared anon page 1 still reads %c\n", a[UPAGE]);
    shm_row("MADV_REMOVE shared anon page 1", madvise(a + UPAGE, UPAGE, MADV_REMOVE));
    printf("shared anon page 1 reads %02x after MADV_REMOVE\n", a[UPAGE]);
    munmap(a, 2 * UPAGE);
}

static void sigbus(void) {
    printf("== SIGBUS past EOF\n");
    shm_catch(SIGBUS);
    shm_catch(SIGSEGV);
    int fd = shm_memfd("eof", 0);
    shm_row("ftruncate 2 pages + 100", ftruncate(fd, 2 * UPAGE + 100));
    char *s = shm_map(fd, 4, MAP_SHARED);
    char *p = shm_map(fd, 4, MAP_PRIVATE);
    shm_probe("shared read page 1", s, UPAGE, 0, 0);
    shm_probe("shared read page 2 off 50", s, 2 * UPAGE + 50, 0, 0);
    shm_probe("shared read page 2 off 200 (past EOF, same page)", s, 2 * UPAGE + 200, 0, 0);
    shm_probe("shared write page 2 off 200", s, 2 * UPAGE + 200, 1, 'e');
    stat_line("  size stays", fd);
    char b[1] = { 0 };
    shm_row("  pread at 2 pages + 200", pread(fd, b, 1, 2 * UPAGE + 200));
    shm_probe("shared read page 3", s, 3 * UPAGE + 8, 0, 0);
    shm_probe("shared write page 3", s, 3 * UPAGE + 9, 1, 'x');
    shm_probe("private read page 3", p, 3 * UPAGE + 10, 0, 0);
    shm_probe("private write page 3", p, 3 * UPAGE + 11, 1, 'x');
    shm_probe("private write page 2", p, 2 * UPAGE, 1, 'p');
    shm_row("ftruncate 4 pages", ftruncate(fd, 4 * UPAGE));
    shm_probe("shared read page 3 after growth", s, 3 * UPAGE, 0, 0);
    shm_probe("shared write page 3 after growth", s, 3 * UPAGE, 1, 'g');
    shm_probe("shared read page 2 off 200 after growth", s, 2 * UPAGE + 200, 0, 0);
    shm_row("ftruncate 1 page", ftruncate(fd, UPAGE));
    shm_pm_print("  shared pagemap after shrink", s, 4);
    shm_pm_print("  private pagemap after shrink", p, 4);
    shm_probe("shared read page 3 after shrink", s, 3 * UPAGE, 0, 0);
    shm_probe("shared read page 1 after shrink", s, UPAGE + 1, 0, 0);
    shm_probe("private read page 2 (its own copy) after shrink", p, 2 * UPAGE, 0, 0);
    shm_probe("shared read page 0", s, 0, 0, 0);
    munmap(s, 4 * UPAGE);
    munmap(p, 4 * UPAGE);
    close(fd);
    int z = shm_memfd("empty", 0);
    char *e = mmap(NULL, UPAGE, PROT_READ, MAP_SHARED, z, 0);
    printf("mmap of an empty memfd: %s\n", e == MAP_FAILED ? shm_err(errno) : "ok");
    if (e != MAP_FAILED) {
        shm_probe("read it", e, 0, 0, 0);
        munmap(e, UPAGE);
    }
    close(z);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* getdents64 of dir, printed sorted as "name(type)" ('.' and '..' included). */
static void list_dir(const char *what, const char *dir) {
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0) {
        printf("%s: open %s\n", what, shm_err(errno));
        return;
    }
    char buf[4096];
    char *names[64];
    int n = 0;
    for (;;) {
        long r = syscall(SYS_getdents64, d, buf, sizeof buf);
        if (r <= 0) {
            if (r < 0) printf("%s: getdents64 %s\n", what, shm_err(errno));
            break;
        }
        for (long off = 0; off < r;) {
            struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *de = (void *)(buf + off);
            if (n < 64) {
                char *s = malloc(strlen(de->name) + 8);
                sprintf(s, "%s(%s)", de->name, de->type == DT_DIR ? "d" : de->type == DT_REG ? "f" : "?");
                names[n++] = s;
            }
            off += de->reclen;
        }
    }
    close(d);
    qsort(names, n, sizeof names[0], cmp_str);
    printf("%s:", what);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

static void tmpfs_dir(void) {
    printf("== tmpfs directory\n");
    char dir[] = "/dev/shm/pagelab-shm-XXXXXX";
    if (!mkdtemp(dir)) {
        printf("mkdtemp: %s\n", shm_err(errno));
        return;
    }
    struct statfs sf;
    shm_row("statfs", statfs(dir, &sf));
    printf("  f_type tmpfs %d, f_bsize %ld\n", sf.f_type == 0x01021994, (long)sf.f_bsize);
    char a[96], b[96], sub[96], c[96];
    snprintf(a, sizeof a, "%s/alpha", dir);
    snprintf(b, sizeof b, "%s/beta", dir);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(c, sizeof c, "%s/sub/gamma", dir);
    int fa = open(a, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    printf("open alpha O_CREAT|O_EXCL: %s\n", fa >= 0 ? "ok" : shm_err(errno));
    int again = open(a, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    printf("again: %s\n", again >= 0 ? "ok" : shm_err(errno));
    shm_row("write alpha", write(fa, "alpha data", 10));
    struct stat st;
    fstat(fa, &st);
    printf("  alpha: S_ISREG %d mode %04o nlink %ld size %lld blocks %lld\n", S_ISREG(st.st_mode), st.st_mode & 07777,
           (long)st.st_nlink, (long long)st.st_size, (long long)st.st_blocks);
    shm_row("mkdir sub", mkdir(sub, 0700));
    shm_row("mkdir sub again", mkdir(sub, 0700));
    int fc = open(c, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    shm_row("create sub/gamma", fc < 0 ? -1 : 0);
    close(fc);
    list_dir("listing", dir);
    list_dir("sub listing", sub);
    shm_row("rename alpha -> beta", rename(a, b));
    shm_row("open alpha", open(a, O_RDONLY));
    list_dir("listing after rename", dir);
    int fb = open(b, O_RDONLY | O_CLOEXEC);
    char buf[16] = { 0 };
    shm_row("read beta", read(fb, buf, sizeof buf));
    printf("  data %s\n", buf);
    close(fb);
    shm_row("rmdir sub (not empty)", rmdir(sub));
    shm_row("unlink sub (a directory)", unlink(sub));
    shm_row("open sub O_WRONLY", open(sub, O_WRONLY));
    shm_row("open beta O_DIRECTORY", open(b, O_RDONLY | O_DIRECTORY));
    shm_row("rename beta over sub", rename(b, sub));
    shm_row("ftruncate beta (fd) 3 pages", ftruncate(fa, 3 * UPAGE));
    char *m = mmap(NULL, 3 * UPAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fa, 0);
    shm_row("unlink beta", unlink(b));
    fstat(fa, &st);
    printf("  unlinked: nlink %ld size %lld\n", (long)st.st_nlink, (long long)st.st_size);
    if (m != MAP_FAILED) {
        printf("  mapping of the unlinked file reads %.10s\n", m);
        m[2 * UPAGE] = 'u';
        pread(fa, buf, 1, 2 * UPAGE);
        printf("  a write through it reaches the file: %c\n", buf[0]);
        shm_pm_page("  its page", m, 2);
        munmap(m, 3 * UPAGE);
    }
    close(fa);
    shm_row("open beta", open(b, O_RDONLY));
    shm_row("unlink sub/gamma", unlink(c));
    shm_row("rmdir sub", rmdir(sub));
    list_dir("listing at end", dir);
    shm_row("rmdir dir", rmdir(dir));
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    memfd_basics();
    file_ops();
    seals();
    mappings();
    sigbus();
    tmpfs_dir();
    return 0;
}
