// SIGSEGV and SIGBUS with SA_SIGINFO handlers that recover with siglongjmp: si_code, si_addr,
// the sigcontext's trapno/err/cr2; a handler that skips the faulting instruction by changing
// REG_RIP and a register; FPU state fresh in the handler and restored by sigreturn; deaths by
// SIGSEGV in forked children (fault in a handler that blocks it, SIG_IGN, blocked, bad frame).
#define _GNU_SOURCE
#include "pl.h"
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

static sigjmp_buf jb;
static void *volatile expect_addr;
static volatile int got_sig, got_code, addr_ok, cr2_ok, pid_ok;
static volatile long got_trapno, got_err;

static void on_fault(int sig, siginfo_t *si, void *ucv) {
    ucontext_t *uc = ucv;
    got_sig = sig;
    got_code = si->si_code;
    addr_ok = si->si_addr == expect_addr;
    pid_ok = si->si_pid == getpid();
    got_trapno = uc->uc_mcontext.gregs[REG_TRAPNO];
    got_err = uc->uc_mcontext.gregs[REG_ERR];
    cr2_ok = uc->uc_mcontext.gregs[REG_CR2] == (greg_t)expect_addr;
    siglongjmp(jb, 1);
}

static void report(const char *what, int faulted) {
    printf("%s: %s sig %d code %d", what, faulted ? "faulted" : "no fault", got_sig, got_code);
    if (got_code > 0)
        printf(" addr %s", addr_ok ? "ok" : "wrong");
    if (got_sig == SIGSEGV && got_code > 0 && got_code < 128)
        printf(" trapno %ld err %#lx cr2 %s", got_trapno, got_err, cr2_ok ? "ok" : "wrong");
    if (got_code == 128)
        printf(" trapno %ld err %#lx", got_trapno, got_err);
    printf("\n");
    got_sig = got_code = 0;
}

#define TRY(what, addr, stmt)                 \
    do {                                      \
        expect_addr = (void *)(addr);         \
        int f_ = sigsetjmp(jb, 1);            \
        if (!f_) { stmt; }                    \
        report(what, f_);                     \
    } while (0)

/* The faulting store and the instruction after it, for the RIP-skipping handler. */
extern char skip_start[], skip_end[];
__attribute__((noinline)) static long skip_store(void) {
    long v;
    __asm__ volatile("xor %%ebx, %%ebx\n"
                     ".globl skip_start\nskip_start: movb $1, (%%rdx)\n"
                     ".globl skip_end\nskip_end:\n"
                     "mov %%rbx, %0\n"
                     : "=r"(v) : "d"(0) : "rbx", "memory");
    return v;
}
static volatile int skip_count;
static void on_skip(int sig, siginfo_t *si, void *ucv) {
    (void)sig; (void)si;
    ucontext_t *uc = ucv;
    if (uc->uc_mcontext.gregs[REG_RIP] == (greg_t)skip_start) {
        uc->uc_mcontext.gregs[REG_RIP] = (greg_t)skip_end;
        uc->uc_mcontext.gregs[REG_RBX] = 4242;
        skip_count++;
    }
}

/* FPU: set MXCSR and xmm8 before a ud2, look at them in the handler, clobber them there. */
static volatile unsigned handler_mxcsr, saved_mxcsr;
static volatile unsigned long long handler_xmm8;
static void on_ill(int sig, siginfo_t *si, void *ucv) {
    (void)sig; (void)si;
    ucontext_t *uc = ucv;
    unsigned m;
    unsigned long long x;
    __asm__ volatile("stmxcsr %0\nmovq %%xmm8, %1" : "=m"(m), "=r"(x));
    handler_mxcsr = m;
    handler_xmm8 = x;
    saved_mxcsr = uc->uc_mcontext.fpregs->mxcsr;
    unsigned clobber = 0x1f80 | (1 << 13);
    __asm__ volatile("ldmxcsr %0\nmovq %1, %%xmm8" :: "m"(clobber), "r"(0xdeadULL) : "xmm8");
    uc->uc_mcontext.gregs[REG_RIP] += 2;
}

static void child_report(const char *what, pid_t pid) {
    int st;
    if (waitpid(pid, &st, 0) != pid) { printf("%s: waitpid failed\n", what); return; }
    if (WIFSIGNALED(st)) printf("%s: child killed by signal %d\n", what, WTERMSIG(st));
    else printf("%s: child exited %d\n", what, WEXITSTATUS(st));
}

static void fault_again(int sig) { (void)sig; *(volatile int *)0 = 1; }
static void ill_handler(int sig) { (void)sig; printf("SIGILL handler ran\n"); _exit(3); }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);

    char *p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p + 4096, 4096);
    mprotect(p + 2 * 4096, 4096, PROT_READ);
    mprotect(p + 3 * 4096, 4096, PROT_NONE);
    volatile char *v = p;
    TRY("write unmapped", p + 4096 + 8, v[4096 + 8] = 1);
    TRY("read unmapped", p + 4096 + 9, (void)v[4096 + 9]);
    TRY("write read-only (untouched)", p + 2 * 4096, v[2 * 4096] = 1);
    (void)v[2 * 4096 + 1];
    TRY("write read-only (touched)", p + 2 * 4096 + 1, v[2 * 4096 + 1] = 1);
    TRY("read PROT_NONE", p + 3 * 4096 + 5, (void)v[3 * 4096 + 5]);
    TRY("NULL read", 0, (void)*(volatile int *)0);
    TRY("non-canonical write", 0, *(volatile long *)0x8000000000000000ull = 1);
    v[0] = (char)0xc3; /* ret, in a page without PROT_EXEC */
    TRY("execute non-exec page", p, ((void (*)(void))p)());
    TRY("no fault", 0, v[1] = 2);
    TRY("kill SIGBUS", 0, kill(getpid(), SIGBUS));
    printf("kill SIGBUS sender pid %s\n", pid_ok ? "ok" : "wrong");
    TRY("raise SIGBUS", 0, raise(SIGBUS));
    TRY("raise SIGSEGV", 0, raise(SIGSEGV));

    /* A handler that moves RIP past the faulting store and sets RBX. */
    sa.sa_sigaction = on_skip;
    sigaction(SIGSEGV, &sa, NULL);
    long r = skip_store();
    printf("skip: rbx %ld, handler ran %d\n", r, skip_count);

    /* FPU state: fresh in the handler, restored after it. */
    sa.sa_sigaction = on_ill;
    sigaction(SIGILL, &sa, NULL);
    unsigned rz = 0x1f80 | (3 << 13), after_mxcsr;
    unsigned long long out;
    __asm__ volatile("ldmxcsr %2\nmovq %3, %%xmm8\nud2\nmovq %%xmm8, %0\nstmxcsr %1"
                     : "=r"(out), "=m"(after_mxcsr) : "m"(rz), "r"(0x1234ULL) : "xmm8");
    printf("fpu: handler mxcsr %#x xmm8 %#llx, frame mxcsr %#x, after mxcsr %#x xmm8 %#llx\n",
           handler_mxcsr, handler_xmm8, saved_mxcsr, after_mxcsr, out);
    unsigned def = 0x1f80;
    __asm__ volatile("ldmxcsr %0" :: "m"(def));

    /* Deaths, each in a child. */
    pid_t c = fork();
    if (c == 0) { signal(SIGSEGV, fault_again); *(volatile int *)0 = 1; _exit(0); }
    child_report("fault inside its own handler", c);
    c = fork();
    if (c == 0) { signal(SIGSEGV, SIG_IGN); *(volatile int *)0 = 1; _exit(0); }
    child_report("fault with SIGSEGV ignored", c);
    c = fork();
    if (c == 0) {
        sigset_t m;
        sigemptyset(&m);
        sigaddset(&m, SIGSEGV);
        sigprocmask(SIG_BLOCK, &m, NULL);
        signal(SIGSEGV, fault_again);
        *(volatile int *)0 = 1;
        _exit(0);
    }
    child_report("fault with SIGSEGV blocked", c);
    c = fork();
    if (c == 0) {
        signal(SIGILL, ill_handler);
        __asm__ volatile("mov $0x1000, %%rsp\nud2" ::: "memory");
        _exit(0);
    }
    child_report("SIGILL with an unwritable stack", c);
    c = fork();
    if (c == 0) { signal(SIGSEGV, SIG_DFL); raise(SIGSEGV); _exit(0); }
    child_report("raise SIGSEGV default", c);
    printf("done\n");
    return 0;
}
