// qsort: hand-written recursive quicksort of N xorshift-generated ints.
// usage: qsort [N]   (default 5000000)
#include "pl.h"

static void insertion_sort(int *a, long n) {
    for (long i = 1; i < n; i++) {
        int v = a[i];
        long j = i - 1;
        while (j >= 0 && a[j] > v) {
            a[j + 1] = a[j];
            j--;
        }
        a[j + 1] = v;
    }
}

static inline void swap(int *a, int *b) {
    int t = *a;
    *a = *b;
    *b = t;
}

/* Hoare partition around a median-of-three pivot; recurse into the smaller
 * half and loop on the larger one so the stack stays O(log n). */
static void quicksort(int *a, long n) {
    while (n > 16) {
        long mid = n / 2;
        if (a[mid] < a[0]) swap(&a[mid], &a[0]);
        if (a[n - 1] < a[0]) swap(&a[n - 1], &a[0]);
        if (a[n - 1] < a[mid]) swap(&a[n - 1], &a[mid]);
        int pivot = a[mid];
        long i = -1, j = n;
        for (;;) {
            do i++; while (a[i] < pivot);
            do j--; while (a[j] > pivot);
            if (i >= j) break;
            swap(&a[i], &a[j]);
        }
        long left = j + 1; /* a[0..left) <= pivot <= a[left..n) */
        if (left < n - left) {
            quicksort(a, left);
            a += left;
            n -= left;
        } else {
            quicksort(a + left, n - left);
            n = left;
        }
    }
    insertion_sort(a, n);
}

int main(int argc, char **argv) {
    long n = pl_arg_long(argc, argv, 1, 5000000);
    int *a = malloc((n ? n : 1) * sizeof *a);
    if (!a) {
        printf("malloc failed\n");
        return 1;
    }
    pl_rng r = pl_rng_new(0x5eed1234abcdull);
    uint64_t before = 0;
    for (long i = 0; i < n; i++) {
        a[i] = (int)(pl_rand(&r) >> 33) - (1 << 30); /* both signs */
        if (i % 8 == 0) a[i] %= 1000;                 /* plenty of duplicates */
        before += (uint64_t)(int64_t)a[i];
    }
    quicksort(a, n);
    int sorted = 1;
    uint64_t after = 0, h = PL_FNV_INIT;
    for (long i = 0; i < n; i++) {
        if (i > 0 && a[i - 1] > a[i]) sorted = 0;
        after += (uint64_t)(int64_t)a[i];
        h = pl_mix(h, (uint64_t)(uint32_t)a[i] * (uint64_t)(i + 1));
    }
    printf("count: %ld\n", n);
    printf("sorted: %s\n", sorted ? "yes" : "no");
    printf("sum preserved: %s\n", before == after ? "yes" : "no");
    if (n > 0) printf("min: %d max: %d median: %d\n", a[0], a[n - 1], a[n / 2]);
    printf("checksum: %016llx\n", (unsigned long long)h);
    free(a);
    return sorted && before == after ? 0 : 1;
}
