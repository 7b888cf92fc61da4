/* The CPU a program sees: CPUID's vendor, features and brand, and the results of the
 * instructions whose outcome the SDM leaves open or the vendors define differently
 * (docs/cpu-model.md). Natively it prints the host's CPU, which varies from machine to
 * machine; under pagelab it must print the model, the same on every host
 * (cpu_model.pagelab.expected). */
#include "pl.h"
#include <cpuid.h>

static void leaf(unsigned l, unsigned s, unsigned r[4]) {
    __cpuid_count(l, s, r[0], r[1], r[2], r[3]);
}

int main(void) {
    unsigned r[4];
    char vendor[13] = {0};
    leaf(0, 0, r);
    memcpy(vendor, &r[1], 4);
    memcpy(vendor + 4, &r[3], 4);
    memcpy(vendor + 8, &r[2], 4);
    printf("vendor %s max leaf %#x\n", vendor, r[0]);
    leaf(1, 0, r);
    printf("leaf 1: eax %#x ecx %#x edx %#x\n", r[0], r[2], r[3]);
    leaf(7, 0, r);
    printf("leaf 7: ebx %#x ecx %#x edx %#x\n", r[1], r[2], r[3]);
    leaf(0x80000001, 0, r);
    printf("leaf 0x80000001: ecx %#x edx %#x\n", r[2], r[3]);
    char brand[49] = {0};
    for (unsigned i = 0; i < 3; i++) {
        leaf(0x80000002 + i, 0, r);
        memcpy(brand + 16 * i, r, 16);
    }
    printf("brand \"%s\"\n", brand);

    /* RCR AL, 9: a masked count of 9, a rotation by 0 mod 9. */
    uint64_t fl;
    __asm__ volatile("xor %%eax, %%eax\n\tmov $0x81, %%al\n\tstc\n\trcr $9, %%al\n\tpushfq\n\tpop %0" : "=r"(fl) : : "rax", "cc");
    printf("rcr al,9 of 0x81 with CF: OF=%d CF=%d\n", (int)(fl >> 11 & 1), (int)(fl & 1));
    /* SHL by 3: OF undefined for counts above 1. */
    __asm__ volatile("mov $0x60, %%eax\n\tshl $3, %%al\n\tpushfq\n\tpop %0" : "=r"(fl) : : "rax", "cc");
    printf("shl al,3 of 0x60: OF=%d\n", (int)(fl >> 11 & 1));
    /* BSF of zero: the destination. */
    uint64_t d = 0x1122334455667788ull, z = 0;
    __asm__ volatile("bsf %1, %0" : "+r"(d) : "r"(z) : "cc");
    printf("bsf of 0 keeps %#llx\n", (unsigned long long)d);
    /* REP MOVSB with 32-bit addressing and ECX = 0: the upper halves. */
    static char buf[16];
    uint64_t c = 0xabcd00000000ull, si = (uint64_t)buf | (0x1234ull << 32), di = (uint64_t)buf | (0x5678ull << 32);
    __asm__ volatile(".byte 0xf3, 0x67, 0xa4" : "+c"(c), "+S"(si), "+D"(di) : : "memory");
    printf("rep movsb a32 ecx=0: rcx>>32 %#llx rsi>>32 %#llx rdi>>32 %#llx\n", (unsigned long long)(c >> 32),
           (unsigned long long)(si >> 32), (unsigned long long)(di >> 32));
    /* FXSAVE's MXCSR_MASK. */
    static unsigned char img[512] __attribute__((aligned(16)));
    __asm__ volatile("fxsave64 %0" : "=m"(img));
    unsigned mask;
    memcpy(&mask, img + 28, 4);
    printf("mxcsr_mask %#x\n", mask);
    return 0;
}
