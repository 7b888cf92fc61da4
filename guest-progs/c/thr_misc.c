// pagelab: cflags=-pthread
// thr_misc: thread exit semantics and thread-related calls.
// usage: thr_misc            join values, many create/join cycles, detached threads, a
//                            robust mutex whose owner dies, sleeps, affinity, getcpu,
//                            scheduler queries, CPU-time clocks
//        thr_misc mainexit   main calls pthread_exit; the last thread's exit(2) code
//                            (5) becomes the process's status
//        thr_misc exitgroup  a non-main thread calls exit(3) while the others block
//        thr_misc sleep      two threads sleep 10 s and 5 s (instant under pagelab)
//        thr_misc ncpus      prints how many CPUs sched_getaffinity reports (host-dependent)
//        thr_misc eintr      SIGALRM handlers end nanosleep/clock_nanosleep with EINTR and
//                            the remaining time
#define _GNU_SOURCE
#include "pl.h"
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include <sys/syscall.h>

static long sys(long nr, long a, long b, long c, long d) {
    long r = syscall(nr, a, b, c, d);
    return r < 0 ? -errno : r;
}

static const char *err(long r) {
    static char buf[32];
    if (r >= 0) return "0";
    switch (-r) {
    case EINTR: return "EINTR";
    case ESRCH: return "ESRCH";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: snprintf(buf, sizeof buf, "%s", pl_errname((int)-r)); return buf;
    }
}

static void *square(void *arg) {
    long i = (long)arg;
    return (void *)(i * i);
}

static atomic_long counter;
static sem_t done;

static void *detached(void *arg) {
    atomic_fetch_add(&counter, (long)arg);
    sem_post(&done);
    return NULL;
}

static pthread_mutex_t robust;
static void *die_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL; /* exits without unlocking */
}

static int64_t ns(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static volatile uint64_t sink;
static void spin(long n) {
    for (long i = 0; i < n; i++) sink += i;
}

static void *mainexit_last(void *arg) {
    (void)arg;
    usleep(20000);
    printf("last thread: exiting with 5\n");
    fflush(stdout);
    syscall(SYS_exit, 5);
    return NULL;
}

static pthread_mutex_t never = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_cv = PTHREAD_COND_INITIALIZER;
static void *block_forever(void *arg) {
    (void)arg;
    pthread_mutex_lock(&never);
    for (;;) pthread_cond_wait(&never_cv, &never);
    return NULL;
}
static void *exit_three(void *arg) {
    (void)arg;
    usleep(10000);
    printf("exit_group from a thread\n");
    fflush(stdout);
    exit(3);
}

static void *sleep5(void *arg) {
    (void)arg;
    sleep(5);
    printf("thread: slept 5 s\n");
    return NULL;
}

static atomic_int pinned;
static void *wander(void *arg) {
    (void)arg;
    while (!atomic_load(&pinned)) sched_yield();
    unsigned cpu = 99;
    long spins = 0;
    for (;;) {
        syscall(SYS_getcpu, &cpu, NULL, NULL);
        if (cpu == 0) break;
        spin(1000);
        spins++;
    }
    return (void *)(long)cpu;
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig) {
    (void)sig;
    alarms++;
}

static void eintr_mode(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct timespec req = {5, 0}, rem = {0, 0};
    alarm(1);
    long r = sys(SYS_nanosleep, (long)&req, (long)&rem, 0, 0);
    printf("nanosleep 5 s, SIGALRM after 1 s: %s, handler ran %d\n", err(r), alarms);
    int64_t left = (int64_t)rem.tv_sec * 1000000000 + rem.tv_nsec;
    printf("  remaining about 4 s: %s\n", left > 3900000000 && left < 4100000000 ? "yes" : "no");
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    alarm(1);
    r = sys(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, (long)&req, 0);
    printf("clock_nanosleep 5 s, SA_RESTART handler: %s, handler ran %d\n", err(r), alarms);
    int64_t target = ns(CLOCK_MONOTONIC) + 5000000000;
    struct timespec abs_t = {target / 1000000000, target % 1000000000};
    alarm(1);
    r = sys(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, (long)&abs_t, (long)&rem);
    printf("clock_nanosleep absolute +5 s: %s, handler ran %d\n", err(r), alarms);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "sleep") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, sleep5, NULL);
        int64_t t0 = ns(CLOCK_MONOTONIC);
        sleep(10);
        pthread_join(t, NULL);
        int64_t dt = ns(CLOCK_MONOTONIC) - t0;
        printf("main: slept 10 s: %s\n", dt >= 10000000000 && dt < 11000000000 ? "yes" : "no");
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "ncpus") == 0) {
        cpu_set_t s;
        sched_getaffinity(0, sizeof s, &s);
        printf("cpus: %d\n", CPU_COUNT(&s));
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "eintr") == 0) {
        eintr_mode();
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "mainexit") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, mainexit_last, NULL);
        printf("main: pthread_exit\n");
        fflush(stdout);
        pthread_exit(NULL);
    }
    if (argc > 1 && strcmp(argv[1], "exitgroup") == 0) {
        pthread_t t[4];
        for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, block_forever, NULL);
        pthread_create(&t[3], NULL, exit_three, NULL);
        for (;;) pause();
    }

    /* Join values. */
    pthread_t th[8];
    for (long i = 0; i < 8; i++) pthread_create(&th[i], NULL, square, (void *)i);
    long sum = 0;
    for (int i = 0; i < 8; i++) {
        void *v;
        pthread_join(th[i], &v);
        sum += (long)v;
    }
    printf("join values: sum of squares %ld\n", sum);

    /* Many short-lived threads: CLEARTID and the futex wake behind pthread_join. */
    long total = 0;
    for (long i = 0; i < 200; i++) {
        pthread_t t;
        void *v;
        pthread_create(&t, NULL, square, (void *)(i % 10));
        pthread_join(t, &v);
        total += (long)v;
    }
    printf("200 create/join cycles: total %ld\n", total);

    /* Detached threads. */
    sem_init(&done, 0, 0);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    for (long i = 1; i <= 16; i++) {
        pthread_t t;
        pthread_create(&t, &at, detached, (void *)i);
    }
    for (int i = 0; i < 16; i++) sem_wait(&done);
    printf("detached threads: counter %ld\n", atomic_load(&counter));

    /* A robust mutex whose owner dies: the kernel's robust-list walk at thread exit. */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &ma);
    pthread_t t;
    pthread_create(&t, NULL, die_holding, NULL);
    pthread_join(t, NULL);
    int r = pthread_mutex_lock(&robust);
    printf("robust mutex after owner died: %s\n", r == EOWNERDEAD ? "EOWNERDEAD" : r == 0 ? "0" : "other");
    printf("pthread_mutex_consistent: %d\n", pthread_mutex_consistent(&robust));
    pthread_mutex_unlock(&robust);
    printf("relock: %d\n", pthread_mutex_lock(&robust));
    pthread_mutex_unlock(&robust);

    /* get_robust_list: glibc registered the thread's list head. */
    void *head = NULL;
    size_t len = 0;
    long rr = sys(SYS_get_robust_list, 0, (long)&head, (long)&len, 0);
    printf("get_robust_list: %s len %zu head %s\n", err(rr), len, head ? "set" : "null");
    printf("get_robust_list(bad pid): %s\n", err(sys(SYS_get_robust_list, 999999, (long)&head, (long)&len, 0)));
    printf("set_robust_list(len 23): %s\n", err(sys(SYS_set_robust_list, (long)head, 23, 0, 0)));

    /* Sleeps on the (virtual) clock: never shorter than asked. */
    int64_t t0 = ns(CLOCK_MONOTONIC);
    struct timespec req = {0, 30 * 1000000}, rem = {7, 7};
    printf("nanosleep 30ms: %s\n", err(sys(SYS_nanosleep, (long)&req, (long)&rem, 0, 0)));
    printf("  slept long enough: %s\n", ns(CLOCK_MONOTONIC) - t0 >= 30000000 ? "yes" : "no");
    t0 = ns(CLOCK_MONOTONIC);
    printf("clock_nanosleep MONOTONIC 20ms: %d\n", clock_nanosleep(CLOCK_MONOTONIC, 0, &(struct timespec){0, 20000000}, NULL));
    printf("  slept long enough: %s\n", ns(CLOCK_MONOTONIC) - t0 >= 20000000 ? "yes" : "no");
    int64_t target = ns(CLOCK_REALTIME) + 25000000;
    struct timespec abs_rt = {target / 1000000000, target % 1000000000};
    printf("clock_nanosleep REALTIME abs +25ms: %d\n", clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &abs_rt, NULL));
    printf("  reached the target: %s\n", ns(CLOCK_REALTIME) >= target ? "yes" : "no");
    target = ns(CLOCK_MONOTONIC) + 15000000;
    struct timespec abs_mono = {target / 1000000000, target % 1000000000};
    printf("clock_nanosleep MONOTONIC abs +15ms: %d\n", clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs_mono, NULL));
    printf("  reached the target: %s\n", ns(CLOCK_MONOTONIC) >= target ? "yes" : "no");
    struct timespec past = {0, 1};
    printf("clock_nanosleep abs in the past: %d\n", clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past, NULL));
    printf("clock_nanosleep BOOTTIME 1ms: %s\n", err(sys(SYS_clock_nanosleep, CLOCK_BOOTTIME, 0, (long)&(struct timespec){0, 1000000}, 0)));
    printf("clock_nanosleep TAI 1ms: %s\n", err(sys(SYS_clock_nanosleep, CLOCK_TAI, 0, (long)&(struct timespec){0, 1000000}, 0)));
    printf("nanosleep 0: %s\n", err(sys(SYS_nanosleep, (long)&(struct timespec){0, 0}, 0, 0, 0)));
    struct timespec bad_ns = {0, 1000000000}, neg = {-1, 0};
    printf("nanosleep tv_nsec 1e9: %s\n", err(sys(SYS_nanosleep, (long)&bad_ns, 0, 0, 0)));
    printf("nanosleep tv_sec -1: %s\n", err(sys(SYS_nanosleep, (long)&neg, 0, 0, 0)));
    printf("nanosleep NULL: %s\n", err(sys(SYS_nanosleep, 0, 0, 0, 0)));
    long cn[] = {CLOCK_THREAD_CPUTIME_ID, CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, 10, 12, 99, -1};
    for (unsigned i = 0; i < sizeof cn / sizeof cn[0]; i++)
        printf("clock_nanosleep(clock %ld): %s\n", cn[i], err(sys(SYS_clock_nanosleep, cn[i], 0, (long)&req, 0)));
    printf("clock_nanosleep(THREAD_CPUTIME, NULL): %s\n", err(sys(SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, 0, 0)));
    printf("clock_nanosleep(99, bad ts): %s\n", err(sys(SYS_clock_nanosleep, 99, 0, (long)&bad_ns, 0)));
    printf("clock_nanosleep(MONOTONIC, bad ts): %s\n", err(sys(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, (long)&bad_ns, 0)));
    printf("clock_nanosleep(MONOTONIC, abs, tv_sec -1): %s\n", err(sys(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, (long)&neg, 0)));
    printf("clock_nanosleep(MONOTONIC, flags 2): %s\n", err(sys(SYS_clock_nanosleep, CLOCK_MONOTONIC, 2, (long)&(struct timespec){0, 1000}, 0)));
    printf("glibc clock_nanosleep(THREAD_CPUTIME): %s\n", err(-clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &req, NULL)));

    /* Clocks. */
    struct timespec res;
    long ids[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID, CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME, CLOCK_TAI, 10, 12};
    for (unsigned i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        long r1 = sys(SYS_clock_getres, ids[i], (long)&res, 0, 0);
        long r2 = sys(SYS_clock_gettime, ids[i], (long)&res, 0, 0);
        printf("clock %ld: getres %s gettime %s\n", ids[i], err(r1), err(r2));
    }
    sys(SYS_clock_getres, CLOCK_MONOTONIC, (long)&res, 0, 0);
    printf("MONOTONIC resolution: %ld.%09ld\n", (long)res.tv_sec, res.tv_nsec);
    printf("clock_getres(NULL): %s\n", err(sys(SYS_clock_getres, CLOCK_MONOTONIC, 0, 0, 0)));
    printf("clock_gettime(NULL): %s\n", err(sys(SYS_clock_gettime, CLOCK_MONOTONIC, 0, 0, 0)));
    int64_t c0 = ns(CLOCK_THREAD_CPUTIME_ID), p0 = ns(CLOCK_PROCESS_CPUTIME_ID);
    spin(2000000);
    int64_t c1 = ns(CLOCK_THREAD_CPUTIME_ID), p1 = ns(CLOCK_PROCESS_CPUTIME_ID);
    printf("thread CPU clock advances with work: %s\n", c1 > c0 ? "yes" : "no");
    printf("process CPU clock >= thread CPU clock: %s\n", p1 >= c1 && p1 > p0 ? "yes" : "no");
    clockid_t pc;
    pthread_getcpuclockid(pthread_self(), &pc);
    printf("pthread_getcpuclockid clock readable: %s\n", clock_gettime(pc, &res) == 0 ? "yes" : "no");
    clock_getcpuclockid(0, &pc);
    printf("clock_getcpuclockid clock readable: %s\n", clock_gettime(pc, &res) == 0 ? "yes" : "no");
    /* The thread CPU clock counts only this thread: sleeping costs none. */
    c0 = ns(CLOCK_THREAD_CPUTIME_ID);
    usleep(50000);
    c1 = ns(CLOCK_THREAD_CPUTIME_ID);
    printf("50ms asleep costs under 5ms of CPU: %s\n", c1 - c0 < 5000000 ? "yes" : "no");

    /* Affinity and getcpu. */
    cpu_set_t set;
    CPU_ZERO(&set);
    printf("sched_getaffinity: %s\n", sched_getaffinity(0, sizeof set, &set) == 0 ? "0" : "fail");
    printf("  at least one CPU: %s\n", CPU_COUNT(&set) >= 1 ? "yes" : "no");
    cpu_set_t all = set;
    unsigned cpu = 99, node = 99;
    printf("getcpu: %s\n", err(sys(SYS_getcpu, (long)&cpu, (long)&node, 0, 0)));
    printf("  cpu in our mask: %s, node %u\n", CPU_ISSET(cpu, &set) ? "yes" : "no", node);
    printf("getcpu(NULL, NULL): %s\n", err(sys(SYS_getcpu, 0, 0, 0, 0)));
    printf("getcpu(bad pointer): %s\n", err(sys(SYS_getcpu, 1, 0, 0, 0)));
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    printf("sched_setaffinity({0}): %d\n", sched_setaffinity(0, sizeof set, &set));
    sys(SYS_getcpu, (long)&cpu, 0, 0, 0);
    printf("  now on cpu %u\n", cpu);
    CPU_ZERO(&set);
    sched_getaffinity(0, sizeof set, &set);
    printf("  mask has %d CPU, cpu 0: %s\n", CPU_COUNT(&set), CPU_ISSET(0, &set) ? "yes" : "no");
    for (int i = 0; i < 3; i++) {
        sched_yield();
        sys(SYS_getcpu, (long)&cpu, 0, 0, 0);
        printf("  after yield still on cpu %u\n", cpu);
    }
    sched_setaffinity(0, sizeof all, &all);
    /* Another thread's affinity: it leaves a vCPU it may no longer use. */
    pthread_t w;
    pthread_create(&w, NULL, wander, NULL);
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    printf("pthread_setaffinity_np(other thread, {0}): %d\n", pthread_setaffinity_np(w, sizeof set, &set));
    atomic_store(&pinned, 1);
    void *wcpu;
    pthread_join(w, &wcpu);
    printf("  the other thread ends up on cpu %ld\n", (long)wcpu);
    unsigned long m[16] = {0};
    printf("sched_setaffinity(empty): %s\n", err(sys(SYS_sched_setaffinity, 0, 8, (long)m, 0)));
    printf("sched_setaffinity(len 0): %s\n", err(sys(SYS_sched_setaffinity, 0, 0, (long)m, 0)));
    m[1] = 1; /* CPU 64 only */
    printf("sched_setaffinity(cpu 64 only): %s\n", err(sys(SYS_sched_setaffinity, 0, 16, (long)m, 0)));
    printf("sched_setaffinity(bad pid): %s\n", err(sys(SYS_sched_setaffinity, 999999, 8, (long)&all, 0)));
    printf("sched_setaffinity(bad pointer): %s\n", err(sys(SYS_sched_setaffinity, 0, 8, 1, 0)));
    printf("sched_getaffinity(len 4): %s\n", err(sys(SYS_sched_getaffinity, 0, 4, (long)m, 0)));
    printf("sched_getaffinity(len 12): %s\n", err(sys(SYS_sched_getaffinity, 0, 12, (long)m, 0)));
    printf("sched_getaffinity(len 0): %s\n", err(sys(SYS_sched_getaffinity, 0, 0, (long)m, 0)));
    printf("sched_getaffinity(bad pid): %s\n", err(sys(SYS_sched_getaffinity, 999999, 128, (long)m, 0)));
    printf("sched_getaffinity(bad pointer): %s\n", err(sys(SYS_sched_getaffinity, 0, 128, 1, 0)));

    /* Scheduler queries. */
    struct sched_param sp = {7};
    printf("sched_getscheduler: %d\n", sched_getscheduler(0));
    printf("sched_getscheduler(-1): %s\n", err(sys(SYS_sched_getscheduler, -1, 0, 0, 0)));
    printf("sched_getscheduler(bad pid): %s\n", err(sys(SYS_sched_getscheduler, 999999, 0, 0, 0)));
    int gp = sched_getparam(0, &sp);
    printf("sched_getparam: %d prio %d\n", gp, sp.sched_priority);
    printf("sched_getparam(NULL): %s\n", err(sys(SYS_sched_getparam, 0, 0, 0, 0)));
    printf("priority range FIFO %d..%d RR %d..%d OTHER %d..%d\n", sched_get_priority_min(SCHED_FIFO), sched_get_priority_max(SCHED_FIFO),
           sched_get_priority_min(SCHED_RR), sched_get_priority_max(SCHED_RR), sched_get_priority_min(SCHED_OTHER),
           sched_get_priority_max(SCHED_OTHER));
    printf("sched_get_priority_max(77): %s\n", err(sys(SYS_sched_get_priority_max, 77, 0, 0, 0)));
    printf("sched_yield: %d\n", sched_yield());
    printf("gettid == getpid in main: %s\n", gettid() == getpid() ? "yes" : "no");
    return 0;
}
