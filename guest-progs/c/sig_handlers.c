// Signal handlers and masks: SA_NODEFER, SA_RESETHAND, SA_ONSTACK with sigaltstack (incl.
// SS_AUTODISARM, EPERM on the stack, ENOMEM/EINVAL), blocking/pending/unblocking order,
// nested delivery, real-time queueing order, sigsuspend, sigtimedwait, kill/raise/tgkill
// siginfo, ignored signals, alarm and setitimer (ITIMER_REAL, ITIMER_VIRTUAL), and
// handlers for int3 (SIGTRAP), division by zero (SIGFPE) and ud2 (SIGILL).
#define _GNU_SOURCE
#include "pl.h"
#include <setjmp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)
#endif

static const char *en(int e) { return strerrorname_np(e); }

static void set_handler(int sig, void (*h)(int, siginfo_t *, void *), int flags, const sigset_t *mask) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = h;
    sa.sa_flags = flags | SA_SIGINFO;
    if (mask) sa.sa_mask = *mask;
    sigaction(sig, &sa, NULL);
}

static int blocked_now(int sig) {
    sigset_t m;
    sigprocmask(SIG_SETMASK, NULL, &m);
    return sigismember(&m, sig);
}

/* ---- SA_NODEFER / default deferral, nesting ---- */
static volatile int depth, max_depth, self_blocked, nest_runs;
static void on_nest(int sig, siginfo_t *si, void *uc) {
    (void)si; (void)uc;
    depth++;
    nest_runs++;
    if (depth > max_depth) max_depth = depth;
    self_blocked = blocked_now(sig);
    if (nest_runs == 1) raise(sig);
    depth--;
}

/* ---- delivery order ---- */
static int order[16];
static volatile int norder;
static int values[16];
static int codes[16];
static void on_record(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    if (norder < 16) {
        values[norder] = si->si_value.sival_int;
        codes[norder] = si->si_code;
        order[norder++] = sig;
    }
}
static void print_order(const char *what) {
    printf("%s:", what);
    for (int i = 0; i < norder; i++) printf(" %d", order[i] == SIGRTMIN ? 1000 : order[i] == SIGRTMIN + 1 ? 1001 : order[i]);
    printf("\n");
}

/* ---- altstack ---- */
static char altstack[65536] __attribute__((aligned(16)));
static volatile int on_alt, alt_flags, alt_eperm;
static void on_stack_check(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)si; (void)uc;
    char local;
    on_alt = &local > altstack && &local < altstack + sizeof altstack;
    stack_t o;
    sigaltstack(NULL, &o);
    alt_flags = o.ss_flags;
    stack_t n = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
    alt_eperm = sigaltstack(&n, NULL) == -1 ? errno : 0;
}

/* ---- info of kill/raise/tgkill ---- */
static volatile int info_code, info_pid_ok, info_sig;
static void on_info(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    info_sig = sig;
    info_code = si->si_code;
    info_pid_ok = si->si_pid == getpid() && si->si_uid == getuid();
}

/* ---- timers ---- */
static volatile int alarms, vtalarms;
static void on_alarm(int sig, siginfo_t *si, void *uc) { (void)uc; (void)si; if (sig == SIGALRM) alarms++; else vtalarms++; info_code = si->si_code; }

/* ---- traps ---- */
static sigjmp_buf jb;
static volatile int trap_code;
static volatile int trap_addr_ok;
static void *volatile trap_expect;
extern char int3_after[], div_insn[], ud2_insn[];
static void on_trap(int sig, siginfo_t *si, void *ucv) {
    ucontext_t *uc = ucv;
    trap_code = si->si_code;
    if (sig == SIGTRAP) {
        trap_addr_ok = uc->uc_mcontext.gregs[REG_RIP] == (greg_t)int3_after && si->si_addr == NULL;
        return; /* resume after the int3 */
    }
    trap_addr_ok = si->si_addr == trap_expect && uc->uc_mcontext.gregs[REG_RIP] == (greg_t)trap_expect;
    siglongjmp(jb, sig);
}
__attribute__((noinline)) static void do_int3(void) { __asm__ volatile("int3\n.globl int3_after\nint3_after:"); }
__attribute__((noinline)) static int do_div(int a, int b) {
    int q;
    __asm__ volatile("cltd\n.globl div_insn\ndiv_insn: idivl %2" : "=a"(q) : "a"(a), "r"(b) : "rdx");
    return q;
}
__attribute__((noinline)) static void do_ud2(void) { __asm__ volatile(".globl ud2_insn\nud2_insn: ud2"); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    sigset_t empty, m;
    int r;
    sigemptyset(&empty);

    /* Deferral. */
    set_handler(SIGUSR1, on_nest, 0, NULL);
    raise(SIGUSR1);
    printf("default: self blocked in handler %d, max depth %d, runs %d\n", self_blocked, max_depth, nest_runs);
    max_depth = nest_runs = 0;
    set_handler(SIGUSR1, on_nest, SA_NODEFER, NULL);
    raise(SIGUSR1);
    printf("SA_NODEFER: self blocked in handler %d, max depth %d, runs %d\n", self_blocked, max_depth, nest_runs);
    printf("mask after handlers: usr1 blocked %d\n", blocked_now(SIGUSR1));

    /* SA_RESETHAND. */
    max_depth = 0;
    set_handler(SIGUSR2, on_nest, SA_RESETHAND, NULL);
    struct sigaction o;
    signal(SIGURG, SIG_DFL);
    sigaction(SIGUSR2, NULL, &o);
    printf("before: SA_RESETHAND set %d\n", !!(o.sa_flags & SA_RESETHAND));
    sigprocmask(SIG_BLOCK, NULL, NULL);
    sigemptyset(&m);
    sigaddset(&m, SIGUSR2);
    /* A handled delivery resets the action; its nested raise stays pending (blocked) and
       then would kill us, so ignore it before the handler returns: instead check the
       action from a second signal's view. */
    set_handler(SIGUSR2, on_record, SA_RESETHAND, NULL);
    norder = 0;
    raise(SIGUSR2);
    sigaction(SIGUSR2, NULL, &o);
    printf("SA_RESETHAND: ran %d, now %s, SA_RESETHAND still in flags %d, SA_SIGINFO %d\n", norder,
           o.sa_handler == SIG_DFL ? "SIG_DFL" : "handler", !!(o.sa_flags & SA_RESETHAND), !!(o.sa_flags & SA_SIGINFO));

    /* Alternate stack. */
    stack_t ss = { .ss_sp = altstack, .ss_size = 1024, .ss_flags = 0 };
    r = sigaltstack(&ss, NULL);
    printf("sigaltstack too small: %d %s\n", r, en(errno));
    ss.ss_size = sizeof altstack;
    ss.ss_flags = 5;
    r = sigaltstack(&ss, NULL);
    printf("sigaltstack bad flags: %d %s\n", r, en(errno));
    ss.ss_flags = 0;
    printf("sigaltstack: %d\n", sigaltstack(&ss, NULL));
    stack_t cur;
    sigaltstack(NULL, &cur);
    printf("query: flags %d size %zu sp %s\n", cur.ss_flags, cur.ss_size, cur.ss_sp == altstack ? "ok" : "wrong");
    set_handler(SIGUSR1, on_stack_check, SA_ONSTACK, NULL);
    raise(SIGUSR1);
    printf("SA_ONSTACK: on alt stack %s, ss_flags in handler %d, sigaltstack in handler %s\n", on_alt ? "yes" : "no", alt_flags, en(alt_eperm));
    set_handler(SIGUSR1, on_stack_check, 0, NULL);
    raise(SIGUSR1);
    printf("no SA_ONSTACK: on alt stack %s, ss_flags in handler %d\n", on_alt ? "yes" : "no", alt_flags);
    ss.ss_flags = SS_AUTODISARM;
    sigaltstack(&ss, NULL);
    set_handler(SIGUSR1, on_stack_check, SA_ONSTACK, NULL);
    raise(SIGUSR1);
    sigaltstack(NULL, &cur);
    printf("SS_AUTODISARM: on alt stack %s, ss_flags in handler %#x, after %#x\n", on_alt ? "yes" : "no", alt_flags, cur.ss_flags);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    sigaltstack(NULL, &cur);
    printf("disabled: flags %d size %zu\n", cur.ss_flags, cur.ss_size);

    /* Blocking, pending, unblocking. */
    set_handler(SIGUSR1, on_record, 0, NULL);
    set_handler(SIGUSR2, on_record, 0, NULL);
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigaddset(&m, SIGUSR2);
    sigprocmask(SIG_BLOCK, &m, NULL);
    norder = 0;
    raise(SIGUSR2);
    raise(SIGUSR1);
    raise(SIGUSR1);
    sigset_t pend;
    sigpending(&pend);
    printf("pending: usr1 %d usr2 %d, delivered %d\n", sigismember(&pend, SIGUSR1), sigismember(&pend, SIGUSR2), norder);
    sigprocmask(SIG_UNBLOCK, &m, NULL);
    print_order("unblocked together (nested: the later frame runs first)");
    set_handler(SIGUSR1, on_record, 0, &m);
    set_handler(SIGUSR2, on_record, 0, &m);
    sigprocmask(SIG_BLOCK, &m, NULL);
    norder = 0;
    raise(SIGUSR2);
    raise(SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &m, NULL);
    print_order("unblocked together with sa_mask (one after the other)");

    /* Real-time signals queue; standard ones do not. */
    sigset_t all;
    sigfillset(&all);
    set_handler(SIGRTMIN, on_record, 0, &all);
    set_handler(SIGRTMIN + 1, on_record, 0, &all);
    set_handler(SIGUSR1, on_record, 0, &all);
    sigaddset(&m, SIGRTMIN);
    sigaddset(&m, SIGRTMIN + 1);
    sigprocmask(SIG_BLOCK, &m, NULL);
    norder = 0;
    for (int i = 1; i <= 3; i++) sigqueue(getpid(), SIGRTMIN + 1, (union sigval){ .sival_int = i });
    sigqueue(getpid(), SIGRTMIN, (union sigval){ .sival_int = 9 });
    sigqueue(getpid(), SIGUSR1, (union sigval){ .sival_int = 7 });
    sigqueue(getpid(), SIGUSR1, (union sigval){ .sival_int = 8 });
    sigprocmask(SIG_UNBLOCK, &m, NULL);
    print_order("rt order");
    printf("values:");
    for (int i = 0; i < norder; i++) printf(" %d/%d", values[i], codes[i]);
    printf("\n");

    /* kill / raise / tgkill to self. */
    set_handler(SIGUSR1, on_info, 0, NULL);
    kill(getpid(), SIGUSR1);
    printf("kill: sig %d code %d sender %s\n", info_sig, info_code, info_pid_ok ? "ok" : "wrong");
    raise(SIGUSR1);
    printf("raise: code %d sender %s\n", info_code, info_pid_ok ? "ok" : "wrong");
    syscall(SYS_tgkill, getpid(), gettid(), SIGUSR1);
    printf("tgkill: code %d sender %s\n", info_code, info_pid_ok ? "ok" : "wrong");
    printf("kill(0, 0) %ld, tkill(gettid, 0) %ld\n", (long)kill(0, 0), syscall(SYS_tkill, gettid(), 0));

    /* Ignored signals. */
    raise(SIGCHLD);
    raise(SIGURG);
    raise(SIGWINCH);
    printf("default-ignored signals: still alive\n");
    signal(SIGUSR2, SIG_IGN);
    raise(SIGUSR2);
    sigpending(&pend);
    printf("SIG_IGN: pending %d\n", sigismember(&pend, SIGUSR2));
    sigemptyset(&m);
    sigaddset(&m, SIGUSR2);
    sigprocmask(SIG_BLOCK, &m, NULL);
    raise(SIGUSR2);
    sigpending(&pend);
    printf("SIG_IGN but blocked: pending %d\n", sigismember(&pend, SIGUSR2));
    signal(SIGUSR2, SIG_IGN);
    sigpending(&pend);
    printf("after sigaction(SIG_IGN) again: pending %d\n", sigismember(&pend, SIGUSR2));
    sigprocmask(SIG_UNBLOCK, &m, NULL);

    /* sigsuspend: the temporary mask lets a pending signal in; the old mask comes back. */
    set_handler(SIGUSR1, on_record, 0, NULL);
    sigemptyset(&m);
    sigaddset(&m, SIGUSR1);
    sigprocmask(SIG_BLOCK, &m, NULL);
    raise(SIGUSR1);
    norder = 0;
    r = sigsuspend(&empty);
    printf("sigsuspend: %d %s, handled %d, usr1 blocked after %d\n", r, en(errno), norder, blocked_now(SIGUSR1));

    /* sigtimedwait. */
    sigemptyset(&m);
    sigaddset(&m, SIGUSR2);
    sigprocmask(SIG_BLOCK, &m, NULL);
    signal(SIGUSR2, SIG_DFL);
    raise(SIGUSR2);
    siginfo_t si;
    struct timespec zero = { 0, 0 }, short_ts = { 0, 2000000 };
    r = sigtimedwait(&m, &si, &zero);
    printf("sigtimedwait pending: %d code %d pid %s\n", r, si.si_code, si.si_pid == getpid() ? "ok" : "wrong");
    r = sigtimedwait(&m, &si, &zero);
    printf("sigtimedwait none, zero timeout: %d %s\n", r, en(errno));
    r = sigtimedwait(&m, &si, &short_ts);
    printf("sigtimedwait none, 2 ms: %d %s\n", r, en(errno));
    sigqueue(getpid(), SIGUSR2, (union sigval){ .sival_int = 55 });
    r = sigwaitinfo(&m, &si);
    printf("sigwaitinfo: %d code %d value %d\n", r, si.si_code, si.si_value.sival_int);
    signal(SIGCHLD, SIG_DFL);
    sigaddset(&m, SIGCHLD);
    sigprocmask(SIG_BLOCK, &m, NULL);
    raise(SIGCHLD);
    r = sigtimedwait(&m, &si, &zero);
    printf("sigtimedwait for blocked default-ignored SIGCHLD: %d\n", r);
    sigprocmask(SIG_UNBLOCK, &m, NULL);

    /* alarm and setitimer. */
    set_handler(SIGALRM, on_alarm, 0, NULL);
    set_handler(SIGVTALRM, on_alarm, 0, NULL);
    alarm(5);
    printf("alarm left: %u\n", alarm(0));
    struct itimerval it = { { 0, 0 }, { 0, 20000 } }, old;
    setitimer(ITIMER_REAL, &it, NULL);
    r = pause();
    printf("pause: %d %s, alarms %d, code %d\n", r, en(errno), alarms, info_code);
    it.it_interval.tv_usec = 5000;
    it.it_value.tv_usec = 5000;
    setitimer(ITIMER_REAL, &it, NULL);
    while (alarms < 4) sigsuspend(&empty);
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, &old);
    printf("interval timer: alarms %d, old interval %ld us\n", alarms, (long)old.it_interval.tv_usec);
    getitimer(ITIMER_REAL, &old);
    printf("disarmed: %ld %ld\n", (long)old.it_value.tv_sec, (long)old.it_value.tv_usec);
    it.it_value.tv_usec = 2000;
    setitimer(ITIMER_VIRTUAL, &it, NULL);
    volatile unsigned long spin = 0;
    while (!vtalarms) spin++;
    printf("ITIMER_VIRTUAL fired %d\n", vtalarms);
    it.it_value.tv_usec = 1000000;
    r = setitimer(ITIMER_REAL, &it, NULL);
    printf("setitimer bad usec: %d %s\n", r, en(errno));
    it.it_value.tv_usec = 1000;
    r = setitimer(7, &it, NULL);
    printf("setitimer bad which: %d %s\n", r, en(errno));

    /* Traps. */
    set_handler(SIGTRAP, on_trap, 0, NULL);
    set_handler(SIGFPE, on_trap, 0, NULL);
    set_handler(SIGILL, on_trap, 0, NULL);
    do_int3();
    printf("int3: code %d rip after int3 %s\n", trap_code, trap_addr_ok ? "yes" : "no");
    trap_expect = div_insn;
    if ((r = sigsetjmp(jb, 1)) == 0) printf("div: %d\n", do_div(1, 0));
    printf("div by zero: sig %d code %d addr %s\n", r, trap_code, trap_addr_ok ? "ok" : "wrong");
    trap_expect = ud2_insn;
    if ((r = sigsetjmp(jb, 1)) == 0) do_ud2();
    printf("ud2: sig %d code %d addr %s\n", r, trap_code, trap_addr_ok ? "ok" : "wrong");
    printf("done\n");
    return 0;
}
