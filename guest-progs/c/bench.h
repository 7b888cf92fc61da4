/* Shared by the benchmark programs (uffd_bench, shm_bench, thp_bench): the clocks a
 * "time:" line is taken with, and pinning to one CPU. Natively CLOCK_MONOTONIC and the
 * process CPU clock; under pagelab (with --test-hooks) the host's clocks through the
 * test-hook syscall, since the guest clock is virtual. */
#ifndef PAGELAB_BENCH_H
#define PAGELAB_BENCH_H
#define _GNU_SOURCE
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

/* pagelab's test-hook syscall and its host-clock operations (ENOSYS natively). */
#define PAGELAB_HOOK 0x50414745
#define HOOK_HOST_CLOCK 4
#define HOOK_HOST_CPU_CLOCK 5

static inline long long now_ns(void) {
    long h = syscall(PAGELAB_HOOK, HOOK_HOST_CLOCK, 0);
    if (h >= 0) return h;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static inline long long cpu_ns(void) {
    long h = syscall(PAGELAB_HOOK, HOOK_HOST_CPU_CLOCK, 0);
    if (h >= 0) return h;
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* Pins the process to the first CPU it may run on; threads created later inherit it. */
static inline void pin_one_cpu(void) {
    cpu_set_t s;
    CPU_ZERO(&s);
    if (sched_getaffinity(0, sizeof s, &s) < 0) return;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &s)) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            sched_setaffinity(0, sizeof one, &one);
            return;
        }
    }
}
#endif
