// touch: mmap N MiB of anonymous memory, write one byte per 4 KiB page, read it all back.
// usage: touch [MiB]   (default 256)
#include "pl.h"
#include <sys/mman.h>

int main(int argc, char **argv) {
    long mib = pl_arg_long(argc, argv, 1, 256);
    size_t len = (size_t)mib << 20, pages = len / 4096;
    unsigned char *p = mmap(NULL, len ? len : 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap failed: %s\n", pl_errname(errno));
        return 1;
    }
    printf("mapped %ld MiB = %zu pages\n", mib, pages);

    /* untouched anonymous memory reads as zero (sample a few pages first) */
    int zero = 1;
    for (size_t i = 0; i < pages; i += 97) zero &= p[i * 4096 + (i % 4096)] == 0;
    printf("fresh pages zero: %s\n", zero ? "yes" : "no");

    for (size_t i = 0; i < pages; i++) p[i * 4096 + (i * 61) % 4096] = (unsigned char)(i * 131 + 7);

    uint64_t sum = 0, h = PL_FNV_INIT;
    size_t bad = 0;
    for (size_t i = 0; i < pages; i++) {
        unsigned char v = p[i * 4096 + (i * 61) % 4096];
        if (v != (unsigned char)(i * 131 + 7)) bad++;
        sum += v;
        h = pl_mix(h, v ^ (i << 8));
    }
    /* one whole-page scan of the first and last page: only the one byte is set */
    size_t nonzero = 0;
    for (size_t k = 0; k < 4096 && pages; k++) nonzero += (p[k] != 0) + (p[len - 4096 + k] != 0);
    printf("written pages: %zu mismatches: %zu\n", pages, bad);
    printf("byte sum: %llu\n", (unsigned long long)sum);
    printf("nonzero bytes in first+last page: %zu\n", nonzero);
    printf("checksum: %016llx\n", (unsigned long long)h);
    munmap(p, len ? len : 4096);
    return bad ? 1 : 0;
}
