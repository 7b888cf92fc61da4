/* swap_stress: seeded random operations on a private anonymous region, checked against a
 * shadow model: writes, reads, MADV_PAGEOUT and MADV_DONTNEED of random ranges, fork (the
 * child checks every page, writes its own copy and exits), mremap moves, mprotect
 * round trips. Prints one line per 500 operations (page errors found, a checksum of the
 * region) — nothing that depends on which pages are in swap at a given moment, so the
 * transcript is the same with or without swap, natively and under pagelab.
 *
 * argv: [OPS] [SEED]
 */
#define _GNU_SOURCE
#include "pl.h"
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096ul
#define NP 64

static uint32_t ver[NP]; /* 0: never written since the last zap (reads as zeroes) */
static char *R;

static void fill(int i) {
    uint64_t *p = (uint64_t *)(R + i * PG);
    for (unsigned k = 0; k < PG / 8; k += 16) p[k] = ((uint64_t)ver[i] << 32) | (uint64_t)(i * 977 + k);
}

static int ok_page(int i) {
    const uint64_t *p = (const uint64_t *)(R + i * PG);
    for (unsigned k = 0; k < PG / 8; k += 16) {
        uint64_t want = ver[i] ? (((uint64_t)ver[i] << 32) | (uint64_t)(i * 977 + k)) : 0;
        if (p[k] != want) return 0;
    }
    return 1;
}

static int check_all(void) {
    int bad = 0;
    for (int i = 0; i < NP; i++) bad += !ok_page(i);
    return bad;
}

int main(int argc, char **argv) {
    long ops = pl_arg_long(argc, argv, 1, 3000);
    pl_rng rng = pl_rng_new((uint64_t)pl_arg_long(argc, argv, 2, 7));
    R = mmap(NULL, NP * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (R == MAP_FAILED) return 3;
    int errors = 0, forks = 0, moves = 0;
    uint64_t sum = PL_FNV_INIT;
    for (long n = 1; n <= ops; n++) {
        int op = (int)pl_rand_below(&rng, 100);
        int i = (int)pl_rand_below(&rng, NP);
        int len = 1 + (int)pl_rand_below(&rng, 8);
        if (i + len > NP) len = NP - i;
        if (op < 35) {
            ver[i]++;
            fill(i);
        } else if (op < 60) {
            errors += !ok_page(i);
            sum = pl_mix(sum, (uint64_t)R[i * PG + 8 * 16]);
        } else if (op < 80) {
            if (madvise(R + i * PG, len * PG, MADV_PAGEOUT)) errors++;
        } else if (op < 86) {
            if (madvise(R + i * PG, len * PG, MADV_DONTNEED)) errors++;
            for (int k = i; k < i + len; k++) ver[k] = 0;
        } else if (op < 90) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                int bad = check_all();
                for (int k = 0; k < NP; k += 3) {
                    ver[k] += 1000;
                    fill(k);
                }
                bad += check_all();
                _exit(bad ? 1 : 0);
            }
            int st = 0;
            waitpid(pid, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) errors++;
            forks++;
        } else if (op < 94) {
            /* Move the region: grow it by one page, which cannot happen in place when
             * something else follows it, then shrink it back. */
            char *blocker = mmap(R + NP * PG, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
            char *m = mremap(R, NP * PG, (NP + 1) * PG, MREMAP_MAYMOVE);
            if (m == MAP_FAILED) {
                errors++;
            } else {
                R = m;
                if (mremap(R, (NP + 1) * PG, NP * PG, 0) != R) errors++;
                moves++;
            }
            if (blocker != MAP_FAILED) munmap(blocker, PG);
        } else {
            if (mprotect(R + i * PG, len * PG, PROT_READ)) errors++;
            errors += !ok_page(i);
            if (mprotect(R + i * PG, len * PG, PROT_READ | PROT_WRITE)) errors++;
        }
        if (n % 500 == 0 || n == ops) {
            errors += check_all();
            for (int k = 0; k < NP; k++) sum = pl_fnv(sum, R + k * PG, 64);
            printf("after %ld ops: errors %d forks %d moves %d checksum %016llx\n", n, errors, forks, moves, (unsigned long long)sum);
        }
    }
    return errors ? 1 : 0;
}
