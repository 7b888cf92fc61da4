// fork_wait: process exit and wait4/waitid — exit codes, deaths by signal (kill, SIGSEGV:
// WCOREDUMP as RLIMIT_CORE=0 gives it), WNOHANG, ECHILD, WNOWAIT, specific pids, process
// groups, __WCLONE/__WALL, SIGCHLD ignored, bad arguments; vfork; getppid; /proc/self and
// /proc/PID (existence, status, stat, cmdline, exe, maps); the main thread leaving with
// pthread_exit while another thread goes on and exits with a code. Prints no pid values,
// only comparisons.
// pagelab: cflags=-pthread
#define _GNU_SOURCE
#include "pl.h"
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int *gate; /* shared with children: 0 = wait, 1 = go */
static volatile uintptr_t null_addr = 8; /* a fault address the compiler cannot see */

/* An errno's name (every one, unlike pl_errname). */
static const char *en(int e) {
    const char *s = e ? strerrorname_np(e) : "0";
    return s ? s : "E?";
}

/* Prints a call's result and, when it failed, errno (read after the call). */
static void show(const char *what, long r) {
    if (r < 0)
        printf("%s: %ld %s\n", what, r, en(errno));
    else
        printf("%s: %ld\n", what, r);
}

static pid_t xfork(void) {
    fflush(stdout);
    pid_t p = fork();
    if (p < 0) {
        printf("fork failed: %s\n", pl_errname(errno));
        exit(1);
    }
    return p;
}

static void gate_wait(void) {
    while (atomic_load(gate) == 0) syscall(SYS_futex, gate, FUTEX_WAIT, 0, NULL, NULL, 0);
}
static void gate_open(void) {
    atomic_store(gate, 1);
    syscall(SYS_futex, gate, FUTEX_WAKE, 100, NULL, NULL, 0);
}

static void describe(const char *what, int st) {
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by %d core %d\n", what, WTERMSIG(st), WCOREDUMP(st) ? 1 : 0);
    else if (WIFSTOPPED(st))
        printf("%s: stopped by %d\n", what, WSTOPSIG(st));
    else if (WIFCONTINUED(st))
        printf("%s: continued\n", what);
    else
        printf("%s: status %#x\n", what, st);
}

static void reap(pid_t c, const char *what) {
    int st = 0;
    pid_t r = wait4(c, &st, 0, NULL);
    if (r != c) {
        printf("%s: wait4 -> %s\n", what, r < 0 ? en(errno) : "other pid");
        return;
    }
    describe(what, st);
}

static int path_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* The value of a "Key:\t..." line of a /proc status file, or "" */
static void status_field(const char *path, const char *key, char *out, size_t n) {
    out[0] = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(out, n, "<%s>", en(errno));
        return;
    }
    char buf[4096];
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len < 0) return;
    buf[len] = 0;
    size_t kl = strlen(key);
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, key, kl) == 0 && l[kl] == ':') {
            char *v = l + kl + 1;
            while (*v == '\t' || *v == ' ') v++;
            size_t i = 0;
            while (v[i] && v[i] != '\n' && i + 1 < n) {
                out[i] = v[i];
                i++;
            }
            out[i] = 0;
            return;
        }
    }
}

static long status_num(const char *path, const char *key) {
    char v[128];
    status_field(path, key, v, sizeof v);
    return atol(v);
}

static void exit_codes(void) {
    int codes[] = {0, 1, 255, 256 + 7};
    for (int i = 0; i < 4; i++) {
        pid_t c = xfork();
        if (c == 0) exit(codes[i]);
        char what[32];
        snprintf(what, sizeof what, "exit(%d)", codes[i]);
        reap(c, what);
    }
    pid_t c = xfork();
    if (c == 0) _exit(3);
    reap(c, "_exit(3)");
    c = xfork();
    if (c == 0) {
        *(volatile int *)(null_addr - 8) = 1;
        _exit(0);
    }
    reap(c, "SIGSEGV");
}

static void nohang_and_errors(void) {
    int st = 0;
    errno = 0;
    show("wait with no children", wait(&st));
    show("waitpid(getpid())", waitpid(getpid(), &st, 0));
    show("wait4 bad options", wait4(-1, &st, 0x10, NULL));
    show("wait4 INT_MIN", syscall(SYS_wait4, -2147483647L - 1, &st, 0L, 0L));
    siginfo_t si;
    show("waitid no options", waitid(P_ALL, 0, &si, 0));
    show("waitid bad idtype", syscall(SYS_waitid, 7L, 0L, &si, (long)WEXITED, 0L));
    show("waitid P_PID 0", waitid(P_PID, 0, &si, WEXITED));
    show("waitid P_PGID -1", syscall(SYS_waitid, (long)P_PGID, -1L, &si, (long)WEXITED, 0L));
    show("waitid P_PIDFD bad fd", syscall(SYS_waitid, 3L, 77L, &si, (long)WEXITED, 0L));
    show("waitid no children", waitid(P_ALL, 0, &si, WEXITED));

    atomic_store(gate, 0);
    pid_t c = xfork();
    if (c == 0) {
        gate_wait();
        exit(4);
    }
    printf("WNOHANG, child running: %ld\n", (long)waitpid(c, &st, WNOHANG));
    memset(&si, 0xff, sizeof si);
    int r = waitid(P_PID, c, &si, WEXITED | WNOHANG);
    printf("waitid WNOHANG, child running: %d signo %d code %d pid %d status %d\n", r, si.si_signo, si.si_code, si.si_pid, si.si_status);
    show("waitid WSTOPPED only, running child", waitid(P_PID, c, &si, WSTOPPED | WNOHANG));
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", c);
    printf("/proc/<child> exists: %d\n", path_exists(path));
    snprintf(path, sizeof path, "/proc/%d/status", c);
    printf("child status PPid is me: %d\n", status_num(path, "PPid") == getpid());
    printf("child status Pid is child: %d\n", status_num(path, "Pid") == c);
    gate_open();
    /* WNOWAIT: report, leave the zombie. */
    memset(&si, 0, sizeof si);
    r = waitid(P_PID, c, &si, WEXITED | WNOWAIT);
    printf("waitid WNOWAIT: %d signo %d code %d pid is child %d status %d uid %d\n", r, si.si_signo, si.si_code, si.si_pid == c, si.si_status, (int)si.si_uid);
    char v[128];
    status_field(path, "State", v, sizeof v);
    printf("zombie State: %s\n", v);
    printf("zombie Threads: %ld\n", status_num(path, "Threads"));
    snprintf(path, sizeof path, "/proc/%d/cmdline", c);
    int fd = open(path, O_RDONLY);
    char buf[256];
    show("zombie cmdline bytes", fd < 0 ? -1 : read(fd, buf, sizeof buf));
    if (fd >= 0) close(fd);
    snprintf(path, sizeof path, "/proc/%d/exe", c);
    show("zombie exe readlink", readlink(path, buf, sizeof buf));
    snprintf(path, sizeof path, "/proc/%d", c);
    printf("/proc/<zombie> exists: %d\n", path_exists(path));
    show("WSTOPPED only, zombie child", waitid(P_PID, c, &si, WSTOPPED | WNOHANG));
    r = waitid(P_PID, c, &si, WEXITED | WNOWAIT | WNOHANG);
    printf("waitid WNOWAIT again: %d code %d status %d\n", r, si.si_code, si.si_status);
    reap(c, "after WNOWAIT");
    printf("/proc/<reaped> exists: %d\n", path_exists(path));
    show("reaped again", waitpid(c, &st, WNOHANG));
}

static void specific_pids(void) {
    pid_t a = xfork();
    if (a == 0) exit(11);
    pid_t b = xfork();
    if (b == 0) exit(22);
    reap(b, "second child first");
    int st;
    pid_t r = waitpid(-1, &st, 0);
    printf("then any: is first %d, ", r == a);
    describe("status", st);
    /* waitid reports through the siginfo and returns 0. */
    pid_t c = xfork();
    if (c == 0) exit(33);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    int x = waitid(P_ALL, 0, &si, WEXITED);
    printf("waitid P_ALL: %d signo %d code %d pid is child %d status %d\n", x, si.si_signo, si.si_code, si.si_pid == c, si.si_status);
    c = xfork();
    if (c == 0) *(volatile int *)null_addr = 0;
    memset(&si, 0, sizeof si);
    x = waitid(P_PID, c, &si, WEXITED);
    printf("waitid SIGSEGV: %d code %d status %d\n", x, si.si_code, si.si_status);
    struct rusage ru;
    c = xfork();
    if (c == 0) exit(44);
    r = wait4(c, &st, 0, &ru);
    printf("wait4 with rusage: is child %d, ", r == c);
    describe("status", st);
}

static void groups(void) {
    atomic_store(gate, 0);
    pid_t c = xfork();
    if (c == 0) {
        setpgid(0, 0);
        gate_wait();
        exit(55);
    }
    setpgid(c, c); /* both sides, as shells do */
    int st;
    printf("getpgid(child) is child: %d\n", getpgid(c) == c);
    printf("getsid(child) is mine: %d\n", getsid(c) == getsid(0));
    show("getpgid(bad)", getpgid(999999));
    show("waitpid(0) WNOHANG, only child elsewhere", waitpid(0, &st, WNOHANG));
    show("waitpid(-pgid) WNOHANG", waitpid(-c, &st, WNOHANG));
    gate_open();
    pid_t r = waitpid(-c, &st, 0);
    printf("waitpid(-pgid): is child %d, ", r == c);
    describe("status", st);
    show("setpgid(bad)", setpgid(999999, 0));
    show("setpgid(-1)", setpgid(0, -1));
    show("getsid(bad)", getsid(999999));
}

static int clone_child(void) {
    /* A child that reports with no signal (exit_signal 0): a "clone" child for wait. */
    fflush(stdout);
    long r = syscall(SYS_clone, 0L, 0L, 0L, 0L, 0L);
    if (r == 0) _exit(9);
    return (int)r;
}

static void clone_children(void) {
    int st;
    pid_t c = clone_child();
    show("clone child, plain wait", waitpid(c, &st, 0));
    pid_t r = waitpid(c, &st, __WCLONE);
    printf("__WCLONE: is child %d, ", r == c);
    describe("status", st);
    c = clone_child();
    r = waitpid(-1, &st, __WALL);
    printf("__WALL: is child %d, ", r == c);
    describe("status", st);
    c = xfork();
    if (c == 0) _exit(1);
    show("__WCLONE skips fork children", waitpid(-1, &st, __WCLONE));
    reap(c, "fork child");
}

static void ignored_sigchld(void) {
    signal(SIGCHLD, SIG_IGN);
    pid_t c = xfork();
    if (c == 0) exit(5);
    int st;
    show("SIGCHLD ignored: wait", waitpid(c, &st, 0));
    signal(SIGCHLD, SIG_DFL);
}

static int vfork_shared;

static void vfork_and_ppid(void) {
    pid_t me = getpid();
    pid_t c = vfork();
    if (c == 0) {
        vfork_shared = 42;
        _exit(getppid() == me ? 7 : 8);
    }
    printf("vfork: child wrote %d before the parent ran\n", vfork_shared);
    reap(c, "vfork child (7 = getppid matched)");
    c = xfork();
    if (c == 0) {
        char p[64], self[64];
        snprintf(p, sizeof p, "/proc/%d", getppid());
        ssize_t n = readlink("/proc/self", self, sizeof self - 1);
        self[n > 0 ? n : 0] = 0;
        printf("child: getppid is parent %d, /proc/<ppid> %d, /proc/self -> own pid %d\n", getppid() == me, path_exists(p), atoi(self) == getpid());
        exit(0);
    }
    reap(c, "ppid child");
}

static void proc_self(int argc, char **argv) {
    char v[256];
    status_field("/proc/self/status", "Name", v, sizeof v);
    printf("Name: %s\n", v);
    status_field("/proc/self/status", "State", v, sizeof v);
    printf("State: %s\n", v);
    printf("Tgid/Pid are getpid: %d %d\n", status_num("/proc/self/status", "Tgid") == getpid(), status_num("/proc/self/status", "Pid") == getpid());
    printf("PPid is getppid: %d\n", status_num("/proc/self/status", "PPid") == getppid());
    printf("Threads: %ld\n", status_num("/proc/self/status", "Threads"));
    char buf[4096];
    int fd = open("/proc/self/stat", O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    int pid, ppid, pgrp, sess;
    char comm[64], st;
    int got = sscanf(buf, "%d %63s %c %d %d %d", &pid, comm, &st, &ppid, &pgrp, &sess);
    printf("stat: %d fields, pid ok %d, comm %s, state %c, ppid ok %d, pgrp ok %d, sid ok %d\n", got, pid == getpid(), comm, st, ppid == getppid(), pgrp == getpgrp(), sess == getsid(0));
    int fields = 1;
    for (char *p = buf; *p; p++) fields += *p == ' ';
    printf("stat field count: %d\n", fields);
    fd = open("/proc/self/cmdline", O_RDONLY);
    n = read(fd, buf, sizeof buf);
    close(fd);
    size_t want = 0;
    for (int i = 0; i < argc; i++) want += strlen(argv[i]) + 1;
    printf("cmdline: %zd bytes, matches argv %d\n", n, n == (ssize_t)want && memcmp(buf, argv[0], strlen(argv[0]) + 1) == 0);
    n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    char *slash = strrchr(buf, '/');
    printf("exe basename: %s\n", slash ? slash + 1 : buf);
    fd = open("/proc/self/maps", O_RDONLY);
    static char maps[65536];
    n = 0;
    ssize_t k;
    while ((k = read(fd, maps + n, sizeof maps - 1 - n)) > 0) n += k;
    close(fd);
    maps[n] = 0;
    void *shm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    printf("maps: [stack] %d, [heap] %d\n", strstr(maps, "[stack]") != NULL, strstr(maps, "[heap]") != NULL);
    fd = open("/proc/self/maps", O_RDONLY);
    n = 0;
    while ((k = read(fd, maps + n, sizeof maps - 1 - n)) > 0) n += k;
    close(fd);
    maps[n] = 0;
    char needle[64];
    snprintf(needle, sizeof needle, "%lx-", (unsigned long)shm);
    char *line = strstr(maps, needle);
    char perms[8] = "?";
    if (line) sscanf(strchr(line, ' ') + 1, "%4s", perms);
    printf("shared mapping: perms %s, /dev/zero %d\n", perms, line && strstr(line, "/dev/zero (deleted)") && strstr(line, "/dev/zero (deleted)") < strchr(line, '\n'));
    munmap(shm, 4096);
    struct stat sb;
    show("stat /proc/self", stat("/proc/self", &sb));
    printf("  dir %d\n", S_ISDIR(sb.st_mode));
    show("lstat /proc/self", lstat("/proc/self", &sb));
    printf("  link %d\n", S_ISLNK(sb.st_mode));
    show("stat /proc/self/status", stat("/proc/self/status", &sb));
    printf("  reg %d mode %o\n", S_ISREG(sb.st_mode), sb.st_mode & 0777);
    show("stat /proc/999999", stat("/proc/999999", &sb));
    show("stat /proc/0", stat("/proc/0", &sb));
    show("open /proc/self/nosuch", open("/proc/self/nosuch", O_RDONLY));
    show("open /proc/self/status/x", open("/proc/self/status/x", O_RDONLY));
    int wfd = open("/proc/self/status", O_WRONLY);
    show("open /proc/self/status for writing (root)", wfd >= 0 ? 0 : -1);
    if (wfd >= 0) close(wfd);
    show("access /proc/self/status", access("/proc/self/status", R_OK));
    show("readlink /proc/self/status", readlink("/proc/self/status", buf, sizeof buf));
}

/* The main thread leaves with pthread_exit; another thread goes on and ends the process. */
static pid_t leader_pid;
static pthread_t leader;

static void *survivor(void *arg) {
    (void)arg;
    pthread_join(leader, NULL); /* the leader's tid word is cleared at its exit */
    char v[128];
    for (int i = 0; i < 100000; i++) {
        status_field("/proc/self/status", "State", v, sizeof v);
        if (v[0] == 'Z') break;
        sched_yield();
    }
    printf("survivor: getpid unchanged %d, leader State %s, Threads %ld\n", getpid() == leader_pid, v, status_num("/proc/self/status", "Threads"));
    fflush(stdout);
    exit(42);
}

static void leader_exits(void) {
    pid_t c = xfork();
    if (c == 0) {
        leader_pid = getpid();
        leader = pthread_self();
        pthread_t t;
        pthread_create(&t, NULL, survivor, NULL);
        pthread_exit(NULL);
    }
    reap(c, "leader pthread_exit, thread exit(42)");
}

static void killed(void) {
    pid_t a = xfork();
    if (a == 0) abort();
    reap(a, "abort");
    int sigs[] = {SIGKILL, SIGTERM};
    for (int i = 0; i < 2; i++) {
        atomic_store(gate, 0);
        pid_t c = xfork();
        if (c == 0) {
            atomic_store(gate, 1);
            for (;;) pause();
        }
        while (atomic_load(gate) == 0) sched_yield();
        kill(c, sigs[i]);
        reap(c, sigs[i] == SIGKILL ? "kill SIGKILL" : "kill SIGTERM");
    }
    /* Stopped and continued children (WUNTRACED, WCONTINUED). */
    atomic_store(gate, 0);
    pid_t c = xfork();
    if (c == 0) {
        atomic_store(gate, 1);
        for (;;) pause();
    }
    while (atomic_load(gate) == 0) sched_yield();
    int st;
    kill(c, SIGSTOP);
    pid_t r = waitpid(c, &st, WUNTRACED);
    printf("WUNTRACED: is child %d, ", r == c);
    describe("status", st);
    printf("stop reported once: %ld\n", (long)waitpid(c, &st, WUNTRACED | WNOHANG));
    kill(c, SIGCONT);
    r = waitpid(c, &st, WCONTINUED);
    printf("WCONTINUED: is child %d, ", r == c);
    describe("status", st);
    kill(c, SIGKILL);
    reap(c, "then SIGKILL");
}

/* SIGCHLD reaches the parent, with the child's pid, si_code and status. */
static volatile int chld_count, chld_code, chld_status, chld_pid;

static void on_chld(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    chld_count++;
    chld_code = si->si_code;
    chld_status = si->si_status;
    chld_pid = si->si_pid;
}

static void *spin(void *arg) {
    (void)arg;
    for (;;) sched_yield();
    return NULL;
}

static void sigchld_and_group_exit(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    pid_t c = xfork();
    if (c == 0) {
        /* exit_group while another thread of the process runs */
        pthread_t t;
        pthread_create(&t, NULL, spin, NULL);
        sched_yield();
        _exit(6);
    }
    reap(c, "_exit(6) with a running thread");
    printf("SIGCHLD: count %d code %d status %d pid is child %d\n", chld_count, chld_code, chld_status, chld_pid == c);
    signal(SIGCHLD, SIG_DFL);
}

int main(int argc, char **argv) {
    gate = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    exit_codes();
    nohang_and_errors();
    specific_pids();
    groups();
    clone_children();
    ignored_sigchld();
    vfork_and_ppid();
    proc_self(argc, argv);
    leader_exits();
    if (argc < 2 || strcmp(argv[1], "nokill") != 0) {
        sigchld_and_group_exit();
        killed();
    }
    printf("done\n");
    return 0;
}
