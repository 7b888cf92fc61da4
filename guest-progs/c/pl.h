/* pl.h -- tiny shared runtime for pagelab guest programs.
 *
 * Header-only: static inline functions only, so every program stays a single
 * translation unit. Everything here is deterministic: no addresses, PIDs,
 * times or other run-dependent values ever reach the transcript.
 */
#ifndef PAGELAB_PL_H
#define PAGELAB_PL_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

/* xorshift64 (Marsaglia). The state must never be 0. */
typedef struct { uint64_t s; } pl_rng;

static inline pl_rng pl_rng_new(uint64_t seed) {
    pl_rng r = { seed ? seed : 0x9e3779b97f4a7c15ull };
    return r;
}

static inline uint64_t pl_rand(pl_rng *r) {
    uint64_t x = r->s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return r->s = x;
}

/* Uniform-ish value in [0, n) (n > 0). */
static inline uint64_t pl_rand_below(pl_rng *r, uint64_t n) {
    return pl_rand(r) % n;
}

/* FNV-1a, 64 bit, over a byte range; chainable through `h`. */
#define PL_FNV_INIT 0xcbf29ce484222325ull
static inline uint64_t pl_fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Mix one 64-bit word into a running checksum. */
static inline uint64_t pl_mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

/* Parse argv[i] as a non-negative integer, or return `def`. */
static inline long pl_arg_long(int argc, char **argv, int i, long def) {
    if (i >= argc) return def;
    char *end;
    long v = strtol(argv[i], &end, 0);
    if (*end != '\0' || v < 0) {
        fprintf(stderr, "bad numeric argument: %s\n", argv[i]);
        exit(2);
    }
    return v;
}

/* A check line: "name: ok" or "name: FAIL", counting failures. */
static int pl_failures __attribute__((unused));
static inline void pl_check(const char *what, int ok) {
    printf("%s: %s\n", what, ok ? "ok" : "FAIL");
    if (!ok) pl_failures++;
}

/* Symbolic name of the errno values the programs expect (never the message,
 * which is locale-dependent). */
static inline const char *pl_errname(int e) {
    switch (e) {
    case 0: return "0";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EBADF: return "EBADF";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    default: return "E?";
    }
}

/* Print everything so far before a deliberate crash: stdout is fully
 * buffered when it is a pipe, and a fatal signal does not flush it. */
static inline void pl_flush(void) {
    fflush(stdout);
    fflush(stderr);
}

/* End of a self-checking program: exit 0 iff every pl_check passed. */
static inline int pl_finish(void) {
    printf("failures: %d\n", pl_failures);
    return pl_failures ? 1 : 0;
}

#endif
