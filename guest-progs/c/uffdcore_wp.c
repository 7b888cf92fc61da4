// pagelab: cflags=-pthread
/* uffdcore_wp: uffd-wp on private anonymous memory, one scenario per argument
 * (all by default):
 *   cow   the four-step sequence on a page COW-shared with a child: the write
 *         sends a WP message (no COW), the resolve leaves the PTE read-only, the
 *         retried write COWs; the child keeps the old data;
 *   excl  an exclusive page: after the resolve the retried write needs no COW;
 *   zero  the zero page: a read maps it unprotected, WRITEPROTECT protects it, a
 *         write sends a message, and after the resolve it still needs a COW;
 *   copywp  MISSING|WP: a write to a missing page resolved with COPY|MODE_WP gets
 *         a MISSING message then a WP message.
 * A handler thread reads each message, prints it and resolves it. */
#include "pl.h"
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096ul

static int ufd;
static char *region;
static long nmsgs;

static int pm_wp(void *p) {
    int fd = open("/proc/self/pagemap", O_RDONLY);
    uint64_t e = 0;
    if (fd < 0 || pread(fd, &e, 8, (off_t)((uintptr_t)p / PG * 8)) != 8) e = 0;
    close(fd);
    return (int)(e >> 57 & 1);
}

static void *handler(void *arg) {
    (void)arg;
    char src[PG];
    for (long i = 0; i < nmsgs; i++) {
        struct uffd_msg m;
        struct pollfd p = { ufd, POLLIN, 0 };
        poll(&p, 1, -1);
        if (read(ufd, &m, sizeof m) != sizeof m) { printf("read failed %d\n", errno); exit(1); }
        uint64_t a = m.arg.pagefault.address;
        printf("  msg flags=%#llx page=%ld\n", (unsigned long long)m.arg.pagefault.flags, (long)((a - (uint64_t)region) / PG));
        if (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
            struct uffdio_writeprotect w = { .range = { a & ~(PG - 1), PG }, .mode = 0 };
            if (ioctl(ufd, UFFDIO_WRITEPROTECT, &w)) printf("  resolve failed %d\n", errno);
        } else {
            memset(src, 'M', PG);
            struct uffdio_copy c = { .dst = a & ~(PG - 1), .src = (uint64_t)src, .len = PG, .mode = UFFDIO_COPY_MODE_WP };
            if (ioctl(ufd, UFFDIO_COPY, &c)) printf("  copy failed %d\n", errno);
        }
    }
    return NULL;
}

static void setup(uint64_t mode) {
    ufd = (int)syscall(SYS_userfaultfd, O_NONBLOCK | O_CLOEXEC);
    struct uffdio_api a = { .api = UFFD_API, .features = 0 };
    struct uffdio_register r = { .range = { (uint64_t)region, PG }, .mode = mode };
    if (ufd < 0 || ioctl(ufd, UFFDIO_API, &a) || ioctl(ufd, UFFDIO_REGISTER, &r)) { printf("setup failed %d\n", errno); exit(1); }
}

static void protect(void) {
    struct uffdio_writeprotect w = { .range = { (uint64_t)region, PG }, .mode = UFFDIO_WRITEPROTECT_MODE_WP };
    if (ioctl(ufd, UFFDIO_WRITEPROTECT, &w)) printf("protect failed %d\n", errno);
}

static void run_writer(long n, char v) {
    nmsgs = n;
    pthread_t t;
    pthread_create(&t, NULL, handler, NULL);
    region[0] = v;
    pthread_join(t, NULL);
}

static void cow(void) {
    printf("cow\n");
    region = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    region[0] = 'o';
    int p[2];
    pipe(p);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        read(p[0], &c, 1);
        printf("  child sees %c\n", region[0]);
        _exit(0);
    }
    setup(UFFDIO_REGISTER_MODE_WP);
    protect();
    printf("  wp before write: %d\n", pm_wp(region));
    run_writer(1, 'n');
    printf("  parent sees %c, wp %d\n", region[0], pm_wp(region));
    write(p[1], "x", 1);
    waitpid(pid, NULL, 0);
    close(ufd);
    munmap(region, PG);
}

static void excl(void) {
    printf("excl\n");
    region = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    region[0] = 'o';
    setup(UFFDIO_REGISTER_MODE_WP);
    protect();
    run_writer(1, 'n');
    printf("  sees %c, wp %d\n", region[0], pm_wp(region));
    close(ufd);
    munmap(region, PG);
}

static void zero(void) {
    printf("zero\n");
    region = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    setup(UFFDIO_REGISTER_MODE_WP);
    volatile char *r = region;
    printf("  read %d, wp %d\n", r[0], pm_wp(region));
    protect();
    printf("  after protect wp %d\n", pm_wp(region));
    run_writer(1, 'z');
    printf("  sees %c, wp %d\n", region[0], pm_wp(region));
    close(ufd);
    munmap(region, PG);
}

static void copywp(void) {
    printf("copywp\n");
    region = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    setup(UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
    run_writer(2, 'w');
    printf("  sees %c%c, wp %d\n", region[0], region[1], pm_wp(region));
    close(ufd);
    munmap(region, PG);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *m = argc > 1 ? argv[1] : "all";
    int all = !strcmp(m, "all");
    if (all || !strcmp(m, "cow")) cow();
    if (all || !strcmp(m, "excl")) excl();
    if (all || !strcmp(m, "zero")) zero();
    if (all || !strcmp(m, "copywp")) copywp();
    return 0;
}
