// hello: printf of strings, integers and doubles, a few string.h calls, argc/argv.
#include "pl.h"

#ifndef PL_VARIANT
#define PL_VARIANT "static"
#endif

static int sign(int v) { return (v > 0) - (v < 0); }

int main(int argc, char **argv) {
    printf("hello, world\n");
    printf("variant: %s\n", PL_VARIANT);

    /* integers */
    printf("ints: %d %d %u %i\n", 42, -7, 3000000000u, 0);
    printf("hex: %x %X %#x %08x %lx\n", 0xbeefu, 0xcafeu, 255u, 0x1234u, 0xdeadbeefcafeul);
    printf("long: %ld %lld %llu\n", -1234567890123l, 9223372036854775807ll, 18446744073709551615ull);
    printf("width: [%5d] [%-5d] [%+d] [%05d] [%c] [%s] [%.3s]\n", 42, 42, 42, -42, 'x', "str", "truncate");

    /* doubles; volatile so the formatting really happens at run time */
    volatile double pi = 3.14159265358979, tiny = 1e-5, avogadro = 6.02214076e23, third = 100.0 / 3;
    volatile double neg = -2.5, zero = 0.0;
    printf("f: %f %f %.3f %.0f\n", pi, neg, third, 2.5);
    printf("g: %g %g %g %g %g\n", pi, tiny, avogadro, third, zero);
    printf("e: %e %.2e %E\n", avogadro, tiny, neg);
    double acc = 0;
    for (int i = 1; i <= 100; i++) acc += 1.0 / ((double)i * i);
    printf("sum 1/i^2 (i<=100) = %.12f\n", acc);
    printf("int<->double: %d %ld %.1f\n", (int)(pi * 1000), (long)(avogadro / 1e20), (double)(1L << 40));

    /* string.h */
    char buf[64];
    const char *src = "pagelab paging emulator";
    size_t n = strlen(src);
    memcpy(buf, src, n + 1);
    printf("strlen=%zu copy=\"%s\"\n", n, buf);
    memset(buf + 7, '_', 8);
    printf("memset: %s\n", buf);
    printf("strcmp: %d %d %d\n", sign(strcmp("abc", "abd")), sign(strcmp("abc", "abc")), sign(strcmp("b", "abc")));
    printf("memcmp: %d strchr: %s strstr: %s\n", sign(memcmp(buf, src, 7)), strchr(src, 'e'), strstr(src, "emu"));
    char cat[64] = "page";
    strcat(cat, "lab");
    printf("strcat: %s (%zu)\n", cat, strlen(cat));
    char num[32];
    int w = snprintf(num, sizeof num, "%d-%s-%.2f", 7, "x", 0.125);
    printf("snprintf: %s (%d)\n", num, w);

    /* a longer memcpy/memmove across sizes the libc routines specialise on */
    static unsigned char big[8192], big2[8192];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 7 + 3);
    uint64_t h = PL_FNV_INIT;
    for (size_t len = 1; len <= 4096; len = len * 3 + 1) {
        memcpy(big2, big + (len & 15), len);
        memmove(big2 + 1, big2, len);
        h = pl_fnv(h, big2, len + 1);
    }
    printf("memcpy/memmove checksum: %016llx\n", (unsigned long long)h);

    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
    return 0;
}
