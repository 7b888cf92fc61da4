/* files_misc: errno table for pipes, eventfd, epoll, poll/select, dup/fcntl and paths.
 * Prints only values Linux fixes (errnos, counts, masks), never fd numbers that
 * depend on the environment beyond 0..2. */
#define _GNU_SOURCE
#include "pl.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *en(long r) {
    static char buf[32];
    if (r >= 0) {
        snprintf(buf, sizeof buf, "%ld", r);
        return buf;
    }
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case EPIPE: return "EPIPE";
    case EMFILE: return "EMFILE";
    case ESPIPE: return "ESPIPE";
    case ENOTTY: return "ENOTTY";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ELOOP: return "ELOOP";
    case EXDEV: return "EXDEV";
    case EBUSY: return "EBUSY";
    case EINTR: return "EINTR";
    case ETXTBSY: return "ETXTBSY";
    case EISDIR: return "EISDIR";
    case ENOTDIR: return "ENOTDIR";
    case ENODEV: return "ENODEV";
    default: return pl_errname(errno);
    }
}

#define T(name, expr) do { errno = 0; long r_ = (long)(expr); printf("%-40s %s\n", name, en(r_)); } while (0)

static void pipes(void) {
    int p[2];
    T("pipe2 bad flags", pipe2(p, O_APPEND));
    T("pipe2 O_ASYNC", pipe2(p, O_ASYNC));
    T("pipe2 EFAULT", syscall(SYS_pipe2, 8, 0));
    T("pipe2 EFAULT leaves no fd", dup(0));
    close(3);
    T("pipe2 O_NOTIFICATION_PIPE", pipe2(p, O_EXCL) < 0 ? errno : 0);
    T("pipe2 ok", pipe2(p, O_CLOEXEC | O_NONBLOCK));
    printf("fds %d %d\n", p[0], p[1]);
    T("F_GETFL r", fcntl(p[0], F_GETFL));
    T("F_GETFL w", fcntl(p[1], F_GETFL));
    T("F_GETFD", fcntl(p[0], F_GETFD));
    T("F_GETPIPE_SZ", fcntl(p[0], F_GETPIPE_SZ));
    char b[8192];
    memset(b, 'x', sizeof b);
    T("read empty nonblock", read(p[0], b, 10));
    T("read on write end", read(p[1], b, 10));
    T("write on read end", write(p[0], b, 10));
    T("lseek pipe", lseek(p[0], 0, SEEK_SET));
    T("pread pipe", pread(p[0], b, 1, 0));
    T("pread pipe negative", pread(p[0], b, 1, -1));
    T("write 0", write(p[1], b, 0));
    T("read 0", read(p[0], b, 0));
    T("write EFAULT", syscall(SYS_write, p[1], 8, 10));
    T("write kernel addr", syscall(SYS_write, p[1], 0xffff800000000000ul, 10));
    /* fill with 100-byte writes: 40 per page, 16 pages */
    long total = 0, n;
    while ((n = write(p[1], b, 100)) > 0) total += n;
    printf("filled with 100-byte writes: %ld (%s)\n", total, en(n));
    T("FIONREAD", ({ int v = -1; ioctl(p[0], FIONREAD, &v) < 0 ? -1 : v; }));
    struct pollfd pf[2] = { { p[0], POLLIN | POLLOUT, 0 }, { p[1], POLLIN | POLLOUT, 0 } };
    T("poll full", poll(pf, 2, 0));
    printf("revents %#x %#x\n", pf[0].revents, pf[1].revents);
    T("read 50", read(p[0], b, 50));
    T("write 1 after partial read (merge)", write(p[1], b, 1));
    T("write 4096 (no slot)", write(p[1], b, 4096));
    T("read 4096", read(p[0], b, 4096));
    T("read 4096 again", read(p[0], b, 4096));
    T("write 4096 after freeing", write(p[1], b, 4096));
    T("F_SETPIPE_SZ 0 busy?", fcntl(p[1], F_SETPIPE_SZ, 0));
    /* drain */
    total = 0;
    while ((n = read(p[0], b, sizeof b)) > 0) total += n;
    printf("drained %ld (%s)\n", total, en(n));
    T("F_SETPIPE_SZ 0", fcntl(p[1], F_SETPIPE_SZ, 0));
    T("F_SETPIPE_SZ 5000", fcntl(p[1], F_SETPIPE_SZ, 5000));
    T("F_SETPIPE_SZ 3<<30", fcntl(p[1], F_SETPIPE_SZ, 3u << 30));
    T("F_GETPIPE_SZ", fcntl(p[0], F_GETPIPE_SZ));
    T("F_GETPIPE_SZ eventfd", fcntl(0, F_GETPIPE_SZ));
    /* large nonblocking write is partial */
    static char big[20000];
    T("write 20000 into 8192 pipe", write(p[1], big, sizeof big));
    T("write 1 when full", write(p[1], big, 1));
    T("readv 3 segs", ({ char x[10], y[5000], z[9000]; struct iovec iv[3] = {{x, 10}, {y, 5000}, {z, 9000}}; readv(p[0], iv, 3); }));
    T("readv bad count", ({ struct iovec iv[1]; syscall(SYS_readv, p[0], iv, 1025); }));
    T("readv negative len", ({ struct iovec iv[1] = {{b, (size_t)-1}}; readv(p[0], iv, 1); }));
    T("writev 2 segs", ({ struct iovec iv[2] = {{b, 3}, {b, 4}}; writev(p[1], iv, 2); }));
    T("read 100", read(p[0], b, 100));
    /* O_DIRECT: packet mode */
    T("F_SETFL O_DIRECT", fcntl(p[1], F_SETFL, O_DIRECT | O_NONBLOCK));
    T("F_GETFL w", fcntl(p[1], F_GETFL));
    T("write pkt 10", write(p[1], b, 10));
    T("write pkt 20", write(p[1], b, 20));
    T("read 5 (packet)", read(p[0], b, 5));
    T("read 100 (packet)", read(p[0], b, 100));
    T("read empty", read(p[0], b, 100));
    /* EOF and EPIPE */
    signal(SIGPIPE, SIG_IGN);
    int q[2];
    pipe(q);
    close(q[0]);
    T("write no reader", write(q[1], b, 1));
    struct pollfd wp = { q[1], POLLOUT, 0 };
    T("poll write end no reader", poll(&wp, 1, 0));
    printf("revents %#x\n", wp.revents);
    close(q[1]);
    pipe(q);
    write(q[1], "ab", 2);
    close(q[1]);
    struct pollfd rp = { q[0], POLLIN, 0 };
    T("poll read end no writer", poll(&rp, 1, 0));
    printf("revents %#x\n", rp.revents);
    T("read rest", read(q[0], b, 10));
    T("read eof", read(q[0], b, 10));
    T("poll eof", poll(&rp, 1, 0));
    printf("revents %#x\n", rp.revents);
    close(q[0]);
    /* dup keeps the pipe open: closing one of two write descriptors is no EOF */
    pipe2(q, O_NONBLOCK);
    int w2 = dup(q[1]);
    close(q[1]);
    T("read with dup'd writer", read(q[0], b, 10));
    close(w2);
    T("read after last writer", read(q[0], b, 10));
    close(q[0]);
    struct stat st;
    pipe(q);
    T("fstat pipe", fstat(q[0], &st));
    printf("S_ISFIFO %d size %ld mode %o\n", S_ISFIFO(st.st_mode), (long)st.st_size, st.st_mode & 0777);
    close(q[0]);
    close(q[1]);
    close(p[0]);
    close(p[1]);
}

static void dups(void) {
    int p[2];
    pipe(p);
    T("dup3 same", dup3(p[0], p[0], 0));
    T("dup3 bad flags", dup3(p[0], 50, O_NONBLOCK));
    T("dup3 bad old", dup3(77, 50, 0));
    T("dup3 new too big", dup3(p[0], 100000, 0));
    T("dup3 new negative", dup3(p[0], -1, 0));
    T("dup3 cloexec", dup3(p[0], 50, O_CLOEXEC));
    T("F_GETFD 50", fcntl(50, F_GETFD));
    T("dup2 same", dup2(p[0], p[0]));
    T("dup2 same bad", dup2(77, 77));
    T("dup2 over open", dup2(p[1], 50));
    T("F_GETFD 50", fcntl(50, F_GETFD));
    T("F_GETFL 50", fcntl(50, F_GETFL));
    T("dup bad", dup(-1));
    T("close bad", close(77));
    T("close 50", close(50));
    T("close 50 again", close(50));
    T("F_DUPFD 60", fcntl(p[0], F_DUPFD, 60));
    T("F_DUPFD_CLOEXEC 60", fcntl(p[0], F_DUPFD_CLOEXEC, 60));
    T("F_GETFD 61", fcntl(61, F_GETFD));
    T("F_DUPFD 1024", fcntl(p[0], F_DUPFD, 1024));
    T("F_DUPFD -1", fcntl(p[0], F_DUPFD, -1));
    T("F_SETFD", fcntl(60, F_SETFD, FD_CLOEXEC | 2));
    T("F_GETFD 60", fcntl(60, F_GETFD));
    T("F_SETFL all", fcntl(60, F_SETFL, O_APPEND | O_NONBLOCK | O_NOATIME | O_RDWR | O_CREAT | O_TRUNC));
    T("F_GETFL 60", fcntl(60, F_GETFL));
    T("F_GETFL via other fd", fcntl(p[0], F_GETFL));
    T("fcntl bad cmd", fcntl(60, 9999));
    T("fcntl bad fd", fcntl(77, F_GETFD));
    T("fcntl bad fd bad cmd", fcntl(77, 9999));
    close(60);
    close(61);
    close(p[0]);
    close(p[1]);
}

static void eventfds(void) {
    uint64_t v;
    T("eventfd2 bad flags", eventfd(0, O_APPEND));
    int e = eventfd(3, EFD_NONBLOCK);
    T("eventfd F_GETFL", fcntl(e, F_GETFL));
    T("read 4 bytes", read(e, &v, 4));
    T("write 4 bytes", write(e, &v, 4));
    T("read", read(e, &v, 8));
    printf("value %llu\n", (unsigned long long)v);
    T("read zero nonblock", read(e, &v, 8));
    v = ~0ull;
    T("write max", write(e, &v, 8));
    v = ~0ull - 1;
    T("write max-1", write(e, &v, 8));
    struct pollfd pf = { e, POLLIN | POLLOUT, 0 };
    T("poll at max-1", poll(&pf, 1, 0));
    printf("revents %#x\n", pf.revents);
    v = 1;
    T("write 1 overflow", write(e, &v, 8));
    T("read 16", ({ uint64_t w[2]; read(e, w, 16); }));
    T("write EFAULT", syscall(SYS_write, e, 8, 8));
    T("lseek eventfd", lseek(e, 5, SEEK_SET));
    v = 0;
    T("write 0", write(e, &v, 8));
    T("read after 0", read(e, &v, 8));
    struct stat st;
    T("fstat eventfd", fstat(e, &st));
    printf("mode %o size %ld\n", st.st_mode, (long)st.st_size);
    close(e);
    e = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    T("sem read", (read(e, &v, 8), (long)v));
    T("sem read", (read(e, &v, 8), (long)v));
    T("sem read empty", read(e, &v, 8));
    v = 5;
    struct iovec iv[2] = { { &v, 8 }, { &v, 8 } };
    T("writev 2x8", writev(e, iv, 2));
    T("sem read", (read(e, &v, 8), (long)v));
    close(e);
}

static void epolls(void) {
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 7 };
    T("epoll_create 0", epoll_create(0));
    T("epoll_create -1", epoll_create(-1));
    T("epoll_create1 bad", epoll_create1(1));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    T("F_GETFD ep", fcntl(ep, F_GETFD));
    T("F_GETFL ep", fcntl(ep, F_GETFL));
    int p[2];
    pipe2(p, O_NONBLOCK);
    T("ctl bad epfd", epoll_ctl(77, EPOLL_CTL_ADD, p[0], &ev));
    T("ctl bad fd", epoll_ctl(ep, EPOLL_CTL_ADD, 77, &ev));
    T("ctl epfd not epoll", epoll_ctl(p[1], EPOLL_CTL_ADD, p[0], &ev));
    T("ctl self", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
    T("ctl bad op", epoll_ctl(ep, 7, p[0], &ev));
    T("ctl EFAULT", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], (void *)8));
    T("ctl DEL EFAULT ok?", epoll_ctl(ep, EPOLL_CTL_DEL, p[0], (void *)8));
    T("ctl MOD missing", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
    T("ctl ADD", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    T("ctl ADD again", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    int d = dup(p[0]);
    T("ctl ADD dup fd", epoll_ctl(ep, EPOLL_CTL_ADD, d, &ev));
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    T("ctl MOD EXCLUSIVE", epoll_ctl(ep, EPOLL_CTL_MOD, d, &ev));
    ev.events = EPOLLIN | EPOLLONESHOT | EPOLLEXCLUSIVE;
    T("ctl ADD EXCLUSIVE|ONESHOT", epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev));
    T("ctl DEL dup", epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL));
    T("ctl DEL again", epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL));
    close(d);
    struct epoll_event out[8];
    T("wait maxevents 0", epoll_wait(ep, out, 0, 0));
    T("wait maxevents -1", syscall(SYS_epoll_wait, ep, out, -1, 0));
    T("wait bad epfd", epoll_wait(77, out, 8, 0));
    T("wait not epoll", epoll_wait(p[0], out, 8, 0));
    T("wait kernel buffer", syscall(SYS_epoll_wait, ep, 0xffff800000000000ul, 8, 0));
    T("wait nothing", epoll_wait(ep, out, 8, 0));
    T("pwait bad sigsetsize", syscall(SYS_epoll_pwait, ep, out, 8, 0, &(sigset_t){0}, 4));
    write(p[1], "abc", 3);
    T("wait LT", epoll_wait(ep, out, 8, 0));
    printf("ev %#x data %llu\n", out[0].events, (unsigned long long)out[0].data.u64);
    T("wait LT again", epoll_wait(ep, out, 8, 0));
    T("wait EFAULT with event", syscall(SYS_epoll_wait, ep, 8, 8, 0));
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = 9;
    T("MOD to ET", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
    T("wait ET", epoll_wait(ep, out, 8, 0));
    T("wait ET again", epoll_wait(ep, out, 8, 0));
    write(p[1], "d", 1);
    T("wait ET after write", epoll_wait(ep, out, 8, 0));
    char b[16];
    read(p[0], b, 2);
    T("wait ET after partial read", epoll_wait(ep, out, 8, 0));
    ev.events = EPOLLIN | EPOLLONESHOT;
    T("MOD to ONESHOT", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
    T("wait ONESHOT", epoll_wait(ep, out, 8, 0));
    write(p[1], "e", 1);
    T("wait ONESHOT disabled", epoll_wait(ep, out, 8, 0));
    T("MOD re-arm", epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev));
    T("wait re-armed", epoll_wait(ep, out, 8, 0));
    /* write end and hangups */
    ev.events = EPOLLOUT;
    ev.data.u64 = 11;
    T("ADD write end", epoll_ctl(ep, EPOLL_CTL_ADD, p[1], &ev));
    T("wait both", epoll_wait(ep, out, 8, 0));
    close(p[0]);
    T("wait after reader closed", epoll_wait(ep, out, 8, 0));
    printf("ev %#x data %llu\n", out[0].events, (unsigned long long)out[0].data.u64);
    close(p[1]);
    T("wait after all closed", epoll_wait(ep, out, 8, 0));
    T("DEL closed fd", epoll_ctl(ep, EPOLL_CTL_DEL, p[1], NULL));
    /* eventfd and nested epoll */
    int e = eventfd(0, EFD_NONBLOCK);
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = 21;
    T("ADD eventfd", epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev));
    T("wait eventfd", epoll_wait(ep, out, 8, 0));
    printf("ev %#x\n", out[0].events);
    int ep2 = epoll_create1(0);
    ev.events = EPOLLIN;
    T("nest ep in ep2", epoll_ctl(ep2, EPOLL_CTL_ADD, ep, &ev));
    T("loop ep2 in ep", epoll_ctl(ep, EPOLL_CTL_ADD, ep2, &ev));
    T("wait ep2", epoll_wait(ep2, out, 8, 0));
    printf("ev %#x\n", out[0].events);
    struct pollfd pf = { ep2, POLLIN, 0 };
    T("poll ep2", poll(&pf, 1, 0));
    T("timed wait 5ms", epoll_wait(ep2, out, 8, 5) >= 0);
    T("ADD stdin (/dev/null)", epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev));
    T("pwait2 bad timespec", syscall(SYS_epoll_pwait2, ep2, out, 8, &(struct timespec){ 0, -5 }, NULL, 8));
    T("pwait2 NULL timeout, ready", syscall(SYS_epoll_pwait2, ep2, out, 8, NULL, NULL, 8));
    T("pwait2 1us", syscall(SYS_epoll_pwait2, ep, out, 8, &(struct timespec){ 0, 1000 }, NULL, 8));
    int fd0 = open("/proc/self/exe", O_RDONLY);
    T("ADD regular file", epoll_ctl(ep, EPOLL_CTL_ADD, fd0, &ev));
    close(fd0);
    close(e);
    close(ep2);
    close(ep);
}

static void polls(void) {
    int p[2];
    pipe(p);
    struct pollfd pf[4] = { { p[0], POLLIN, 0 }, { 77, POLLIN, 0 }, { -1, POLLIN, 0 }, { p[1], POLLOUT | POLLIN, 0 } };
    T("poll bad fd", poll(pf, 4, 0));
    printf("revents %#x %#x %#x %#x\n", pf[0].revents, pf[1].revents, pf[2].revents, pf[3].revents);
    static struct pollfd many[1025];
    for (int i = 0; i < 1025; i++) many[i].fd = -1;
    T("poll nfds 1024", poll(many, 1024, 0));
    T("poll nfds > RLIMIT_NOFILE", poll(many, 1025, 0));
    T("poll EFAULT", syscall(SYS_poll, 8, 1, 0));
    struct pollfd std[2] = { { 0, POLLIN | POLLOUT, 0 }, { 1, POLLIN | POLLOUT, 0 } };
    T("poll stdin (/dev/null), stdout (a pipe)", poll(std, 2, 0));
    printf("revents %#x %#x\n", std[0].revents, std[1].revents);
    T("poll nothing 0", poll(NULL, 0, 0));
    T("poll nothing 3ms", poll(NULL, 0, 3));
    T("poll empty pipe 2ms", poll(pf, 1, 2));
    struct timespec ts = { 0, -1 };
    T("ppoll bad ts", ppoll(pf, 1, &ts, NULL));
    ts.tv_nsec = 0;
    T("ppoll bad sigsetsize", syscall(SYS_ppoll, pf, 1, &ts, &(sigset_t){0}, 4));
    T("ppoll 0", ppoll(pf, 1, &ts, NULL));
    printf("ts %ld %ld\n", (long)ts.tv_sec, ts.tv_nsec);
    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(p[0], &r);
    FD_SET(p[1], &w);
    struct timeval tv = { 0, 0 };
    T("select timeout 0", select(p[1] + 1, &r, &w, NULL, &tv));
    printf("r %d w %d tv %ld %ld\n", FD_ISSET(p[0], &r), FD_ISSET(p[1], &w), (long)tv.tv_sec, (long)tv.tv_usec);
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    T("select nothing ready 0", select(p[0] + 1, &r, NULL, NULL, &tv));
    printf("r %d\n", FD_ISSET(p[0], &r));
    /* (Descriptors below 64 only: the table size select clamps nfds to is inherited.) */
    FD_SET(40, &r);
    T("select bad fd", select(41, &r, NULL, NULL, &tv));
    T("select bad fd beyond nfds", select(p[0] + 1, &r, NULL, NULL, &tv));
    T("select n<0", select(-1, NULL, NULL, NULL, &tv));
    tv.tv_usec = -1;
    T("select bad tv", select(1, NULL, NULL, NULL, &tv));
    tv.tv_sec = 0;
    tv.tv_usec = 2000;
    T("select sleep 2ms", select(0, NULL, NULL, NULL, &tv));
    printf("tv %ld %ld\n", (long)tv.tv_sec, (long)tv.tv_usec);
    tv.tv_sec = 0;
    tv.tv_usec = 1500000;
    FD_ZERO(&w);
    FD_SET(1, &w);
    T("select stdout writable, usec>1s", select(2, NULL, &w, NULL, &tv));
    T("select EFAULT set", select(2, (void *)8, NULL, NULL, NULL));
    ts.tv_sec = 0;
    ts.tv_nsec = 1000000;
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    T("pselect 1ms", pselect(p[0] + 1, &r, NULL, NULL, &ts, NULL));
    sigset_t none;
    sigemptyset(&none);
    struct { void *ss; size_t len; } arg = { &none, 4 };
    ts.tv_nsec = 0;
    T("pselect6 bad sigsetsize", syscall(SYS_pselect6, 0, NULL, NULL, NULL, &ts, &arg));
    close(p[0]);
    close(p[1]);
}

static void paths(void) {
    T("open nonexistent", open("/nonexistent/file", O_RDONLY));
    T("open relative nonexistent", open("no-such-file", O_RDONLY));
    int fd = open("/proc/self/exe", O_RDONLY);
    T("open /proc/self/exe", fd >= 0);
    T("exe F_GETFL", fcntl(fd, F_GETFL));
    T("write to read-only file", write(fd, "x", 1));
    T("poll regular", ({ struct pollfd pf = { fd, POLLIN | POLLOUT, 0 }; poll(&pf, 1, 0) == 1 ? pf.revents : -1; }));
    T("openat bad dirfd relative", openat(77, "x", O_RDONLY));
    T("openat file dirfd relative", openat(fd, "x", O_RDONLY));
    close(fd);
}

static void link_of(const char *what, int fd) {
    char p[64], l[256];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(p, l, sizeof l - 1);
    l[n > 0 ? n : 0] = 0;
    printf("%-40s %s\n", what, n > 0 ? l : en(n));
}

/* /dev/null (Linux: drivers/char/mem.c null_fops). */
static void devnull(void) {
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC), n = -1, on = 1;
    char b[16] = "abc";
    struct stat st;
    T("open /dev/null", fd >= 0);
    T("/dev/null read", read(fd, b, sizeof b));
    T("/dev/null write", write(fd, b, sizeof b));
    T("/dev/null write NULL buffer", syscall(SYS_write, fd, NULL, 16));
    T("/dev/null writev", ({ struct iovec v[2] = { { b, 3 }, { NULL, 5 } }; writev(fd, v, 2); }));
    T("/dev/null readv", ({ struct iovec v[2] = { { b, 3 }, { b, 5 } }; readv(fd, v, 2); }));
    T("/dev/null pread", pread(fd, b, sizeof b, 100));
    T("/dev/null pwrite", pwrite(fd, b, sizeof b, 100));
    T("/dev/null lseek SEEK_SET 100", lseek(fd, 100, SEEK_SET));
    T("/dev/null lseek SEEK_END 7", lseek(fd, 7, SEEK_END));
    T("/dev/null lseek SEEK_SET -7", lseek(fd, -7, SEEK_SET));
    T("/dev/null lseek SEEK_HOLE", lseek(fd, 5, SEEK_HOLE));
    T("/dev/null lseek whence 5", lseek(fd, 0, 5));
    T("/dev/null fstat", fstat(fd, &st));
    printf("%-40s %o %u:%u %lld\n", "/dev/null mode rdev size", st.st_mode, major(st.st_rdev), minor(st.st_rdev), (long long)st.st_size);
    T("/dev/null F_GETFL", fcntl(fd, F_GETFL));
    T("/dev/null F_SETFL O_DIRECT", fcntl(fd, F_SETFL, O_DIRECT));
    T("/dev/null FIONREAD", ioctl(fd, FIONREAD, &n));
    T("/dev/null TCGETS", ioctl(fd, TCGETS, b));
    T("/dev/null FIONBIO", ioctl(fd, FIONBIO, &on));
    T("/dev/null FIOASYNC on", ioctl(fd, FIOASYNC, &on));
    T("/dev/null poll", ({ struct pollfd pf = { fd, POLLIN | POLLOUT, 0 }; poll(&pf, 1, 0) == 1 ? pf.revents : -1; }));
    T("/dev/null epoll_ctl ADD", ({ int ep = epoll_create1(0); struct epoll_event ev = { EPOLLIN, { 0 } }; long r = epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev); int e = errno; close(ep); errno = e; r; }));
    T("/dev/null fsync", fsync(fd));
    T("/dev/null ftruncate", ftruncate(fd, 0));
    T("/dev/null mmap", mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED ? -1 : 0);
    T("/dev/null getdents64", syscall(SYS_getdents64, fd, b, sizeof b));
    link_of("/dev/null /proc/self/fd link", fd);
    close(fd);
    fd = open("/dev/null", O_RDONLY);
    T("/dev/null O_RDONLY write", write(fd, b, 1));
    close(fd);
    fd = open("/dev/null", O_WRONLY);
    T("/dev/null O_WRONLY read", read(fd, b, 1));
    close(fd);
    fd = open("/dev/null", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    T("/dev/null O_CREAT|O_TRUNC|O_APPEND", fd >= 0);
    T("  F_GETFL", fcntl(fd, F_GETFL));
    close(fd);
    T("/dev/null O_CREAT|O_EXCL", open("/dev/null", O_RDWR | O_CREAT | O_EXCL, 0644));
    T("/dev/null O_DIRECTORY", open("/dev/null", O_RDONLY | O_DIRECTORY));
    T("/dev/null O_DIRECT", open("/dev/null", O_RDWR | O_DIRECT));
    T("/dev/null/", open("/dev/null/", O_RDWR));
    T("/dev/null/.", open("/dev/null/.", O_RDONLY));
    fd = open("//dev/./null", O_RDWR);
    T("//dev/./null", fd >= 0);
    close(fd);
    T("stat /dev/null", stat("/dev/null", &st));
    printf("%-40s %o %u:%u\n", "  mode rdev", st.st_mode, major(st.st_rdev), minor(st.st_rdev));
    T("access /dev/null R_OK|W_OK", access("/dev/null", R_OK | W_OK));
}

/* The root directory: its mode, link count and listing are the host's, so only the
 * type and the entries every root has are shown. */
static void rootdir(void) {
    int d = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), n = -1;
    char b[4096];
    struct stat st;
    T("open / O_DIRECTORY", d >= 0);
    T("/ fstat S_ISDIR", fstat(d, &st) == 0 && S_ISDIR(st.st_mode));
    T("/ F_GETFL", fcntl(d, F_GETFL));
    T("/ read", read(d, b, 16));
    T("/ write", write(d, b, 16));
    T("/ lseek SEEK_SET 0", lseek(d, 0, SEEK_SET));
    T("/ FIONREAD", ioctl(d, FIONREAD, &n));
    T("/ fsync", fsync(d));
    link_of("/ /proc/self/fd link", d);
    long len = syscall(SYS_getdents64, d, b, sizeof b);
    int dot = 0, dotdot = 0, dev = 0, proc = 0, tmp = 0;
    for (long off = 0; off < len;) {
        struct { uint64_t ino; int64_t off; unsigned short reclen; unsigned char type; char name[]; } *e = (void *)(b + off);
        dot |= !strcmp(e->name, ".") && e->type == DT_DIR;
        dotdot |= !strcmp(e->name, "..") && e->type == DT_DIR;
        dev |= !strcmp(e->name, "dev");
        proc |= !strcmp(e->name, "proc");
        tmp |= !strcmp(e->name, "tmp");
        off += e->reclen;
    }
    printf("%-40s . %d .. %d dev %d proc %d tmp %d\n", "/ getdents64", dot, dotdot, dev, proc, tmp);
    int f = openat(d, "dev/null", O_RDWR);
    T("openat(/, dev/null)", f >= 0);
    T("  fstat S_ISCHR", fstat(f, &st) == 0 && S_ISCHR(st.st_mode));
    close(f);
    f = openat(d, "tmp", O_RDONLY | O_DIRECTORY);
    T("openat(/, tmp)", f >= 0);
    close(f);
    T("fstatat(/, dev/null) S_ISCHR", fstatat(d, "dev/null", &st, 0) == 0 && S_ISCHR(st.st_mode));
    close(d);
    d = open("/", O_RDONLY);
    T("open / O_RDONLY", d >= 0);
    T("  F_GETFL", fcntl(d, F_GETFL));
    close(d);
    T("open / O_RDWR", open("/", O_RDWR));
    T("open / O_WRONLY", open("/", O_WRONLY));
    T("open / O_CREAT", open("/", O_RDONLY | O_CREAT, 0644));
    T("open / O_CREAT|O_EXCL", open("/", O_RDONLY | O_CREAT | O_EXCL, 0644));
    T("open / O_TRUNC", open("/", O_RDONLY | O_TRUNC));
    T("open / O_DIRECTORY|O_CREAT", open("/", O_RDONLY | O_DIRECTORY | O_CREAT, 0644));
    T("open /nonexistent O_DIRECTORY|O_CREAT", open("/nonexistent", O_RDONLY | O_DIRECTORY | O_CREAT, 0644));
    const char *same[] = { "//", "/.", "/..", "/tmp/.." };
    for (int i = 0; i < 4; i++) {
        d = open(same[i], O_RDONLY);
        char w[64];
        snprintf(w, sizeof w, "open %s S_ISDIR", same[i]);
        T(w, d >= 0 && fstat(d, &st) == 0 && S_ISDIR(st.st_mode));
        close(d);
    }
    T("stat / S_ISDIR", stat("/", &st) == 0 && S_ISDIR(st.st_mode));
    T("access /", access("/", R_OK | X_OK));
}

/* `files_misc paths DIR`: the host-file rules under pagelab (not compared with Linux,
 * where everything is open to root): DIR is allowed and holds data.txt ("hello\n") and
 * a symlink `escape` to a file outside it. */
static int host_paths(const char *dir) {
    char p[4096];
    snprintf(p, sizeof p, "%s/data.txt", dir);
    int fd = open(p, O_RDONLY);
    char b[64];
    T("open allowed O_RDONLY", fd >= 0);
    T("read allowed", read(fd, b, sizeof b));
    T("write allowed read-only fd", write(fd, b, 1));
    close(fd);
    T("open allowed O_WRONLY", open(p, O_WRONLY));
    T("open allowed O_RDWR", open(p, O_RDWR));
    T("open allowed O_CREAT", open(p, O_RDONLY | O_CREAT, 0644));
    T("open allowed O_TRUNC", open(p, O_RDONLY | O_TRUNC));
    snprintf(p, sizeof p, "%s/new.txt", dir);
    T("create in allowed dir", open(p, O_WRONLY | O_CREAT, 0644));
    T("open missing in allowed dir", open(p, O_RDONLY));
    snprintf(p, sizeof p, "%s/../../../../etc/passwd", dir);
    T("open dir/../etc/passwd", open(p, O_RDONLY));
    snprintf(p, sizeof p, "%s/escape", dir);
    T("open symlink out of dir", open(p, O_RDONLY));
    T("open /etc/passwd", open("/etc/passwd", O_RDONLY));
    T("open /etc/passwd O_WRONLY", open("/etc/passwd", O_WRONLY));
    T("open / ", open("/", O_RDONLY) >= 0);
    T("access /etc/passwd", access("/etc/passwd", R_OK));
    struct stat st;
    T("stat /etc/passwd", stat("/etc/passwd", &st));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 2 && strcmp(argv[1], "paths") == 0) return host_paths(argv[2]);
    /* The limit the table checks depend on (pagelab's is fixed at 1024). */
    struct rlimit rl = { 1024, 1024 };
    setrlimit(RLIMIT_NOFILE, &rl);
    pipes();
    dups();
    eventfds();
    epolls();
    polls();
    paths();
    devnull();
    rootdir();
    return 0;
}
