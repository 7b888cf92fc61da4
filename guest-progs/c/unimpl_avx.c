/* An AVX2 instruction: valid x86-64, but outside pagelab's CPU (which reports no AVX in
 * CPUID). pagelab must stop with a clear "unimplemented instruction" error naming it and
 * its RIP, never mis-execute it. Natively it runs (on an AVX2 host) and prints a sum. */
#include "pl.h"

int main(void) {
    int out[8];
    __asm__ volatile(
        "vpcmpeqd %%ymm0, %%ymm0, %%ymm0\n\t"
        "vpaddd %%ymm0, %%ymm0, %%ymm0\n\t"
        "vmovdqu %%ymm0, %0\n\t"
        "vzeroupper"
        : "=m"(out) : : "xmm0");
    long s = 0;
    for (int i = 0; i < 8; i++) s += out[i];
    printf("sum %ld\n", s);
    return 0;
}
