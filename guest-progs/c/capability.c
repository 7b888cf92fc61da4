// pagelab: cflags=-pthread
/* capability: capget(2)/capset(2) as root (Linux: kernel/capability.c, cap_capset in
 * security/commoncap.c) and the CAP_SYS_PTRACE checks of userfaultfd.
 * Root's sets differ between hosts (a container drops some capabilities from the
 * bounding set), so the transcript shows only facts every root has: the bits probed
 * (CAP_CHOWN 0, CAP_SETPCAP 8, CAP_SYS_PTRACE 19, CAP_SYSLOG 34), the upper word
 * (CAP_LAST_CAP 40: 0x1ff) and each change as the XOR with the sets before it. */
#define _GNU_SOURCE
#include "pl.h"
#include <linux/capability.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

typedef struct __user_cap_header_struct H;
typedef struct __user_cap_data_struct D;
#define V1 _LINUX_CAPABILITY_VERSION_1
#define V3 _LINUX_CAPABILITY_VERSION_3

static const char *en(long r) {
    if (r >= 0) return "0";
    switch (errno) {
    case ESRCH: return "ESRCH";
    default: return pl_errname(errno);
    }
}
static long cget(unsigned ver, int pid, D *d) {
    H h = { ver, pid };
    return syscall(SYS_capget, &h, d);
}
static long cset(unsigned ver, int pid, const D *d) {
    H h = { ver, pid };
    return syscall(SYS_capset, &h, d);
}
/* The calling thread's sets as 64-bit masks. */
struct caps { uint64_t e, p, i; };
static struct caps mine(void) {
    D d[2] = { { 0, 0, 0 }, { 0, 0, 0 } };
    if (cget(V3, 0, d)) printf("capget failed: %s\n", en(-1));
    return (struct caps){ d[0].effective | (uint64_t)d[1].effective << 32, d[0].permitted | (uint64_t)d[1].permitted << 32,
                          d[0].inheritable | (uint64_t)d[1].inheritable << 32 };
}
static long setc(struct caps c) {
    D d[2] = { { (uint32_t)c.e, (uint32_t)c.p, (uint32_t)c.i }, { (uint32_t)(c.e >> 32), (uint32_t)(c.p >> 32), (uint32_t)(c.i >> 32) } };
    return cset(V3, 0, d);
}
#define B(n) (1ull << (n))
/* The capabilities the rows change. */
#define PROBED (B(0) | B(8) | B(19) | B(34))
/* A capset row: the result, what changed (XOR) of the probed bits in each set, and
 * which sets are now equal. */
static void row(const char *what, struct caps want) {
    struct caps a = mine();
    long r = setc(want);
    const char *e = en(r);
    struct caps b = mine();
    printf("%-48s %-6s e^%#llx p^%#llx i^%#llx%s%s%s\n", what, e, (unsigned long long)((a.e ^ b.e) & PROBED), (unsigned long long)((a.p ^ b.p) & PROBED),
           (unsigned long long)((a.i ^ b.i) & PROBED), b.e == b.p ? ", e == p" : "", b.i == b.p ? ", i == p" : "", b.i == 0 ? ", i == 0" : "");
}
static void bits(const char *who, struct caps c) {
    printf("%s: chown %d setpcap %d sys_ptrace %d syslog %d, effective == permitted %d, inheritable %#llx, upper word %#llx\n", who,
           !!(c.e & B(0)), !!(c.e & B(8)), !!(c.e & B(19)), !!(c.e & B(34)), c.e == c.p, (unsigned long long)c.i,
           (unsigned long long)(c.p >> 32));
}
/* The CapInh/CapPrm/CapEff lines of /proc/self/status agree with capget. */
static void status_agrees(const char *who) {
    char buf[8192];
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)syscall(SYS_gettid));
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0) close(fd);
    buf[n > 0 ? n : 0] = 0;
    struct caps c = mine();
    unsigned long long v[3] = { ~0ull, ~0ull, ~0ull };
    const char *names[3] = { "CapInh:\t", "CapPrm:\t", "CapEff:\t" };
    for (int k = 0; k < 3; k++) {
        char *s = strstr(buf, names[k]);
        if (s) v[k] = strtoull(s + 8, NULL, 16);
    }
    printf("%s: /proc/TID/status CapInh %d CapPrm %d CapEff %d\n", who, v[0] == c.i, v[1] == c.p, v[2] == c.e);
}

static int uffd(int flags) {
    int fd = syscall(SYS_userfaultfd, flags | O_CLOEXEC | O_NONBLOCK);
    return fd < 0 ? -errno : fd;
}
static const char *api(int fd, uint64_t features) {
    struct uffdio_api a = { UFFD_API, features, 0 };
    return en(ioctl(fd, UFFDIO_API, &a));
}

static pthread_barrier_t bar;
static volatile pid_t thread_tid;
static struct caps creator;
static void *thread(void *arg) {
    (void)arg;
    struct caps c = mine();
    printf("thread: the creator's sets %d\n", c.e == creator.e && c.p == creator.p && c.i == creator.i);
    c.e &= ~B(0);
    printf("thread: drop effective CHOWN %s\n", en(setc(c)));
    status_agrees("thread");
    D d[2];
    memset(d, 0, sizeof d);
    printf("thread: capset pid = tgid (another thread) %s\n", en(cset(V3, getpid(), d)));
    struct caps l;
    memset(d, 0, sizeof d);
    long r = cget(V3, getpid(), d);
    l.e = d[0].effective | (uint64_t)d[1].effective << 32;
    printf("thread: capget pid = tgid %s, the leader's effective ^ mine %#llx\n", en(r), (unsigned long long)(l.e ^ mine().e));
    thread_tid = syscall(SYS_gettid);
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* ---- capget ---- */
    unsigned vers[] = { _LINUX_CAPABILITY_VERSION_1, _LINUX_CAPABILITY_VERSION_2, _LINUX_CAPABILITY_VERSION_3, 0, 0x20080523 };
    for (int k = 0; k < 5; k++) {
        H h = { vers[k], 0 };
        D d[2];
        memset(d, 0xee, sizeof d);
        long r = syscall(SYS_capget, &h, d);
        printf("capget version %#x: %s, header version %#x, first struct %s, second struct %s\n", vers[k], en(r), h.version,
               d[0].effective == 0xeeeeeeee ? "untouched" : "written", d[1].effective == 0xeeeeeeee ? "untouched" : "written");
        h.version = vers[k];
        r = syscall(SYS_capget, &h, NULL);
        printf("capget version %#x, data NULL: %s, header version %#x\n", vers[k], en(r), h.version);
    }
    struct caps root = mine();
    bits("root", root);
    D d[2];
    printf("capget header NULL: %s\n", en(syscall(SYS_capget, NULL, d)));
    printf("capget data unmapped: %s\n", en(cget(V3, 0, (D *)8)));
    char *pg = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(pg + 4096, 4096);
    D *edge = (D *)(pg + 4096 - sizeof(D));
    memset(edge, 0xee, sizeof *edge);
    long r = cget(V3, 0, edge);
    printf("capget _3 data straddling an unmapped page: %s, first struct %s\n", en(r), edge->effective == 0xeeeeeeee ? "untouched" : "written");
    printf("capget _1 data in the last 12 bytes: %s\n", en(cget(V1, 0, edge)));
    printf("capset _3 data straddling an unmapped page: %s\n", en(cset(V3, 0, edge)));
    H *ro = (H *)pg;
    ro->version = 7;
    ro->pid = 0;
    mprotect(pg, 4096, PROT_READ);
    printf("capget unknown version, header read-only: %s\n", en(syscall(SYS_capget, ro, d)));
    printf("capget unknown version, header read-only, data NULL: %s\n", en(syscall(SYS_capget, ro, NULL)));
    printf("capset unknown version, header read-only: %s\n", en(syscall(SYS_capset, ro, d)));
    munmap(pg, 4096);
    memset(d, 0, sizeof d);
    r = cget(V3, getpid(), d);
    printf("capget own pid: %s, same as pid 0 %d\n", en(r), d[0].effective == (uint32_t)root.e && d[1].permitted == (uint32_t)(root.p >> 32));
    printf("capget pid -1: %s\n", en(cget(V3, -1, d)));
    printf("capget pid INT_MIN: %s\n", en(cget(V3, (int)0x80000000, d)));
    {
        H h = { 0, -1 };
        printf("capget unknown version, pid -1: %s\n", en(syscall(SYS_capget, &h, d)));
    }

    /* ---- capset: the header ---- */
    {
        H h = { 0x1234, 0 };
        printf("capset unknown version: %s, header version %#x\n", en(syscall(SYS_capset, &h, d)), h.version);
        h.version = 0x1234;
        printf("capset unknown version, data NULL: %s\n", en(syscall(SYS_capset, &h, NULL)));
    }
    printf("capset data NULL: %s\n", en(cset(V3, 0, NULL)));
    printf("capset pid -1: %s\n", en(cset(V3, -1, d)));
    printf("capset pid 1: %s\n", en(cset(V3, 1, NULL)));
    printf("capset own pid: %s\n", en(cset(V3, getpid(), (D[]){ { (uint32_t)root.e, (uint32_t)root.p, 0 }, { (uint32_t)(root.e >> 32), (uint32_t)(root.p >> 32), 0 } })));

    /* ---- another process: alive, a zombie, reaped ---- */
    int go[2], ready[2];
    char x;
    if (pipe(go) || pipe(ready)) return 2;
    pl_flush();
    pid_t c = fork();
    if (c == 0) {
        struct caps k = mine();
        k.e &= ~B(34);
        setc(k);
        if (write(ready[1], "r", 1) != 1 || read(go[0], &x, 1) != 1) _exit(3);
        _exit(0);
    }
    close(go[0]);
    if (read(ready[0], &x, 1) != 1) return 2;
    memset(d, 0, sizeof d);
    r = cget(V3, c, d);
    printf("capget a live child: %s, its upper effective word ^ mine %#x\n", en(r), d[1].effective ^ (uint32_t)(root.e >> 32));
    printf("capset a live child: %s\n", en(cset(V3, c, d)));
    if (write(go[1], "x", 1) != 1) return 2;
    siginfo_t si;
    waitid(P_PID, c, &si, WEXITED | WNOWAIT);
    memset(d, 0, sizeof d);
    r = cget(V3, c, d);
    printf("capget the zombie child: %s, its upper effective word ^ mine %#x\n", en(r), d[1].effective ^ (uint32_t)(root.e >> 32));
    waitpid(c, NULL, 0);
    printf("capget the reaped child: %s\n", en(cget(V3, c, d)));

    /* ---- capset: the rules, in a child ---- */
    pl_flush();
    c = fork();
    if (c == 0) {
        struct caps o = mine();
        row("the same sets", o);
        row("bits above CAP_LAST_CAP in every set", (struct caps){ o.e | ~0ull << 41, o.p | ~0ull << 41, o.i | ~0ull << 41 });
        row("inheritable = permitted (CAP_SETPCAP)", (struct caps){ o.e, o.p, o.p });
        row("inheritable 0 again", (struct caps){ o.e, o.p, 0 });
        row("drop permitted CHOWN (and effective)", (struct caps){ o.e & ~B(0), o.p & ~B(0), 0 });
        row("effective CHOWN, not permitted", (struct caps){ o.e, o.p & ~B(0), 0 });
        row("regain permitted CHOWN", (struct caps){ o.e & ~B(0), o.p, 0 });
        row("inheritable CHOWN, not permitted (CAP_SETPCAP)", (struct caps){ o.e & ~B(0), o.p & ~B(0), B(0) });
        row("inheritable 0, drop effective SETPCAP", (struct caps){ o.e & ~B(0) & ~B(8), o.p & ~B(0), 0 });
        row("inheritable CHOWN, not permitted (no SETPCAP)", (struct caps){ o.e & ~B(0) & ~B(8), o.p & ~B(0), B(0) });
        row("inheritable = permitted (no SETPCAP)", (struct caps){ o.e & ~B(0) & ~B(8), o.p & ~B(0), o.p & ~B(0) });
        row("drop permitted SYSLOG, keep it inheritable", (struct caps){ o.e & ~B(0) & ~B(8) & ~B(34), o.p & ~B(0) & ~B(34), o.p & ~B(0) });
        row("effective SETPCAP again", (struct caps){ o.e & ~B(0) & ~B(34), o.p & ~B(0) & ~B(34), o.p & ~B(0) });
        struct caps n = mine();
        D one = { (uint32_t)n.e, (uint32_t)n.p, (uint32_t)n.i };
        r = cset(V1, 0, &one);
        struct caps m = mine();
        printf("capset _1 (the lower word): %s, upper words now e %#x p %#x i %#x, lower word unchanged %d\n", en(r), (unsigned)(m.e >> 32),
               (unsigned)(m.p >> 32), (unsigned)(m.i >> 32), (uint32_t)m.e == (uint32_t)n.e && (uint32_t)m.p == (uint32_t)n.p);
        status_agrees("after the rules");
        _exit(0);
    }
    waitpid(c, NULL, 0);

    /* ---- inheritance: threads and fork; per-thread sets ---- */
    pl_flush();
    c = fork();
    if (c == 0) {
        struct caps o = mine();
        o.e &= ~B(19);
        printf("child: drop effective SYS_PTRACE %s\n", en(setc(o)));
        status_agrees("child");
        pthread_t t;
        pthread_barrier_init(&bar, NULL, 2);
        creator = mine();
        pthread_create(&t, NULL, thread, NULL);
        pthread_barrier_wait(&bar);
        memset(d, 0, sizeof d);
        r = cget(V3, thread_tid, d);
        printf("child: capget the thread's tid: %s, its effective ^ mine %#llx\n", en(r), (unsigned long long)((d[0].effective | (uint64_t)d[1].effective << 32) ^ mine().e));
        printf("child: capset the thread's tid: %s\n", en(cset(V3, thread_tid, d)));
        pthread_barrier_wait(&bar);
        pthread_join(t, NULL);
        printf("child: my effective after the thread's capset ^ before %#llx\n", (unsigned long long)(mine().e ^ o.e));
        pl_flush();
        pid_t g = fork();
        if (g == 0) {
            printf("grandchild: sets ^ the child's e^%#llx p^%#llx i^%#llx\n", (unsigned long long)(mine().e ^ o.e), (unsigned long long)(mine().p ^ o.p),
                   (unsigned long long)(mine().i ^ o.i));
            _exit(0);
        }
        waitpid(g, NULL, 0);
        /* Without CAP_SYS_PTRACE effective (vm.unprivileged_userfaultfd 0). */
        int f0 = uffd(0);
        printf("child: userfaultfd(0) %s\n", f0 < 0 ? (errno = -f0, en(-1)) : "fd");
        int f1 = uffd(UFFD_USER_MODE_ONLY);
        printf("child: userfaultfd(UFFD_USER_MODE_ONLY) %s\n", f1 < 0 ? (errno = -f1, en(-1)) : "fd");
        if (f1 >= 0) {
            printf("child:   API EVENT_FORK %s\n", api(f1, UFFD_FEATURE_EVENT_FORK));
            printf("child:   API EVENT_FORK again %s\n", api(f1, UFFD_FEATURE_EVENT_FORK));
            printf("child:   API 0 then %s\n", api(f1, 0));
            close(f1);
        }
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        int f2 = dev < 0 ? -1 : ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        printf("child: /dev/userfaultfd USERFAULTFD_IOC_NEW(0) %s\n", f2 < 0 ? en(-1) : "fd");
        if (f2 >= 0) {
            printf("child:   its API EVENT_FORK %s\n", api(f2, UFFD_FEATURE_EVENT_FORK));
            close(f2);
        }
        o.e |= B(19);
        printf("child: effective SYS_PTRACE again %s\n", en(setc(o)));
        f0 = uffd(0);
        printf("child: userfaultfd(0) %s\n", f0 < 0 ? (errno = -f0, en(-1)) : "fd");
        if (f0 >= 0) printf("child:   API EVENT_FORK %s\n", api(f0, UFFD_FEATURE_EVENT_FORK));
        o.e &= ~B(19);
        o.p &= ~B(19);
        printf("child: drop permitted SYS_PTRACE %s\n", en(setc(o)));
        o.e |= B(19);
        printf("child: effective SYS_PTRACE, not permitted %s\n", en(setc(o)));
        _exit(0);
    }
    waitpid(c, NULL, 0);
    struct caps after = mine();
    printf("parent: sets unchanged by the children %d\n", after.e == root.e && after.p == root.p && after.i == root.i);
    status_agrees("parent");
    return 0;
}
