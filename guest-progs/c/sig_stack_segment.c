// Non-canonical addresses through the stack segment: a push with a non-canonical RSP and
// a load through a non-canonical RBP raise #SS(0), which Linux delivers as SIGBUS with
// si_code SI_KERNEL; the same address through DS raises #GP(0): SIGSEGV, SI_KERNEL.
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static sigjmp_buf jb;
static char altstack[65536];

static void handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    printf("  signal %d, si_code %#x, si_addr %s\n", sig, si->si_code, si->si_addr ? "nonzero" : "0");
    siglongjmp(jb, 1);
}

int main(void) {
    // The handlers run on an alternate stack: the faulting code breaks RSP/RBP.
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack };
    sigaltstack(&ss, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, 0);
    sigaction(SIGBUS, &sa, 0);

    printf("push with a non-canonical RSP:\n");
    if (!sigsetjmp(jb, 1))
        __asm__ volatile("mov %%rsp, %%rax; movabs $0x8000000000001000, %%rsp; push %%rax; mov %%rax, %%rsp" ::: "rax", "memory");
    printf("load through a non-canonical RBP:\n");
    if (!sigsetjmp(jb, 1))
        __asm__ volatile("mov %%rbp, %%rax; movabs $0x8000000000001000, %%rbp; mov (%%rbp), %%rcx; mov %%rax, %%rbp" ::: "rax", "rcx", "memory");
    printf("store through a non-canonical pointer (DS):\n");
    if (!sigsetjmp(jb, 1)) {
        volatile long *p = (volatile long *)0x8000000000001000ul;
        *p = 1;
    }
    printf("done\n");
    return 0;
}
