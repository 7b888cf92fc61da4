// mach_stale_tlb: a deliberately missing TLB flush, injected with the pagelab test hook.
//
//   mach_stale_tlb write-noflush  write a page (filling the TLB), clear R/W in its PTE
//                                 without a flush (hook op 1), write again
//   mach_stale_tlb write-flush    the same with the flush (hook op 2): the write faults and
//                                 the fault handler makes the page writable again
//   mach_stale_tlb exec-noflush   set NX in the PTE of the code page being executed without
//                                 a flush (hook op 3), and keep executing from it
//
// Natively (and under pagelab without --test-hooks) the hook is ENOSYS and every write
// simply succeeds. Under pagelab with --test-hooks the stale entry keeps serving the
// accesses, as a real TLB would, unless --check-tlb is on: then pagelab stops with a
// stale-TLB report naming the page (printed on stderr here, before the access).
#include "pl.h"
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGELAB_HOOK 0x50414745L

static long hook(long op, const volatile void *addr) {
    return syscall(PAGELAB_HOOK, op, (long)addr);
}

static void report(const char *what, long r) {
    if (r < 0)
        printf("%s: %s\n", what, pl_errname(errno));
    else
        printf("%s: %ld\n", what, r);
}

/* Runs on the page whose PTE the exec test makes NX. noinline + aligned: its own page. */
__attribute__((noinline, aligned(4096))) static long on_code_page(volatile long *x) {
    long r = hook(3, (const void *)on_code_page);
    *x += 1;
    return r;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "write-noflush";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (strcmp(mode, "exec-noflush") == 0) {
        volatile long x = 0;
        fprintf(stderr, "code page %p\n", (void *)on_code_page);
        long r = on_code_page(&x);
        report("hook", r);
        printf("executed on: x=%ld\n", x);
        return 0;
    }
    long op = strcmp(mode, "write-flush") == 0 ? 2 : 1;
    /* The hint keeps the page away from the TLB slots the stack and the code use (the
     * TLB is direct-mapped by the low bits of the page number), so that nothing evicts
     * its entry between the hook and the write. */
    volatile char *p = mmap((void *)0x10000200000L, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap: %s\n", pl_errname(errno));
        return 1;
    }
    p[0] = 1; /* faults the page in; the TLB caches it writable and dirty */
    p[1] = 2; /* a TLB hit */
    fprintf(stderr, "page %p\n", (void *)p);
    long r = hook(op, p);
    p[2] = 3; /* the write under test: through the stale entry when op 1 dropped the flush */
    report("hook", r);
    printf("after: %d %d %d\n", p[0], p[1], p[2]);
    return 0;
}
