// mlock_basic: mlock(2), munlock(2), mlock2(2) and MAP_LOCKED as a program sees them:
// the results and errnos, the VMA's VmFlags (lo, lf) and Rss/Locked in smaps, the VMA
// split at the locked range's ends and merged back by munlock, fork dropping the lock,
// MADV_GUARD_INSTALL refusing a locked VMA. Regions are mapped at an aligned base inside
// a PROT_NONE reservation, so nothing depends on the address layout.
#define _GNU_SOURCE
#include "shm.h"
#include <sys/wait.h>
#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MCL_ONFAULT
#define MCL_ONFAULT 4
#endif

/* The smaps lines of the VMA starting at `p`: its range in pages from `base`, Rss,
 * Locked and VmFlags. */
static void vma_at(const char *what, const char *base, const char *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    char l[512];
    int in = 0;
    unsigned long lo, hi;
    while (f && fgets(l, sizeof l, f)) {
        if (sscanf(l, "%lx-%lx ", &lo, &hi) == 2 && strchr(l, ' ') && l[8] != ' ' && strchr(l, '-') < strchr(l, ' ')) {
            in = lo == (unsigned long)p;
            if (in) printf("%s: vma %ld-%ld", what, (long)((lo - (unsigned long)base) / UPAGE), (long)((hi - (unsigned long)base) / UPAGE - 1));
            continue;
        }
        if (!in) continue;
        long v;
        if (sscanf(l, "Rss: %ld", &v) == 1) printf(" Rss %ld", v);
        else if (sscanf(l, "Locked: %ld", &v) == 1) printf(" Locked %ld", v);
        else if (!strncmp(l, "VmFlags:", 8)) {
            l[strcspn(l, "\n")] = 0;
            printf(" %s\n", l);
        }
    }
    if (f) fclose(f);
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    char *base = shm_reserve(16 * UPAGE);
    char *p = mmap(base, 8 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) return 3;
    shm_row("mlock pages 2-3 (unaligned start)", mlock(p + 2 * UPAGE + 100, UPAGE));
    vma_at("after", base, p);
    vma_at("after", base, p + 2 * UPAGE);
    vma_at("after", base, p + 4 * UPAGE);
    shm_row("MADV_GUARD_INSTALL on the locked page 2", madvise(p + 2 * UPAGE, UPAGE, 102));
    shm_row("MADV_GUARD_INSTALL on unlocked page 0", madvise(p, UPAGE, 102));
    shm_row("MADV_GUARD_REMOVE page 0", madvise(p, UPAGE, 103));
    pl_flush();
    pid_t c = fork();
    if (c == 0) {
        vma_at("child", base, p + 2 * UPAGE);
        pl_flush();
        _exit(0);
    }
    waitpid(c, NULL, 0);
    shm_row("munlock pages 0-7", munlock(p, 8 * UPAGE));
    vma_at("after", base, p);
    shm_row("mlock2 pages 4-5 MLOCK_ONFAULT", syscall(SYS_mlock2, p + 4 * UPAGE, 2 * UPAGE, 1));
    vma_at("after", base, p + 4 * UPAGE);
    p[4 * UPAGE] = 1;
    vma_at("after touching page 4", base, p + 4 * UPAGE);
    shm_row("mlock2 flags 2", syscall(SYS_mlock2, p, UPAGE, 2));
    shm_row("mlock2 flags 0", syscall(SYS_mlock2, p + 6 * UPAGE, UPAGE, 0));
    vma_at("after", base, p + 6 * UPAGE);
    shm_row("munlock all", munlock(p, 8 * UPAGE));
    shm_row("munmap page 9 of the reservation", munmap(base + 9 * UPAGE, UPAGE));
    shm_row("mlock pages 8-10 (a hole at 9)", mlock(base + 8 * UPAGE, 3 * UPAGE));
    shm_row("mlock length 0", mlock(p, 0));
    shm_row("munlock length 0", munlock(p, 0));
    char *q = mmap(base + 12 * UPAGE, 2 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_LOCKED, -1, 0);
    printf("mmap MAP_LOCKED: %s\n", q == MAP_FAILED ? uffd_err(errno) : "ok");
    vma_at("after", base, q);

    /* mlockall(2)/munlockall(2): the flag checks, MCL_FUTURE locking new mappings (and
     * populating them unless MCL_ONFAULT), MCL_CURRENT the existing ones. */
    shm_row("mlockall 0", mlockall(0));
    shm_row("mlockall 8", mlockall(8));
    shm_row("mlockall MCL_ONFAULT alone", mlockall(MCL_ONFAULT));
    shm_row("mlockall MCL_FUTURE", mlockall(MCL_FUTURE));
    vma_at("existing VMA after MCL_FUTURE", base, p);
    char *r = mmap(base + 4 * UPAGE, 2 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("mmap under MCL_FUTURE: %s\n", r == MAP_FAILED ? uffd_err(errno) : "ok");
    vma_at("new VMA", base, r);
    char *d = mmap(base + 7 * UPAGE, UPAGE, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("MAP_DROPPABLE under MCL_FUTURE: %s\n", d == MAP_FAILED ? uffd_err(errno) : "ok");
    if (d != MAP_FAILED) vma_at("droppable VMA", base, d);
    shm_row("mlockall MCL_FUTURE|MCL_ONFAULT", mlockall(MCL_FUTURE | MCL_ONFAULT));
    r = mmap(base + 4 * UPAGE, 2 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    vma_at("new VMA, on fault", base, r);
    shm_row("munlockall", munlockall());
    vma_at("after munlockall", base, r);
    shm_row("mlockall MCL_CURRENT|MCL_ONFAULT", mlockall(MCL_CURRENT | MCL_ONFAULT));
    vma_at("existing VMA", base, r);
    r = mmap(base + 4 * UPAGE, 2 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    vma_at("new VMA after MCL_CURRENT", base, r);
    shm_row("munlockall", munlockall());
    pl_flush();
    c = fork();
    if (c == 0) {
        /* def_flags are not inherited. (Page 10 has no mergeable neighbour: a forked
         * VMA with pages never merges with a new one, which pagelab does not model.) */
        r = mmap(base + 10 * UPAGE, UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        vma_at("child's new VMA", base, r);
        pl_flush();
        _exit(0);
    }
    waitpid(c, NULL, 0);

    /* MAP_DROPPABLE (6.11): private anonymous only; never locked; not uffd-capable. */
    munmap(base + 7 * UPAGE, UPAGE);
    d = mmap(base + 7 * UPAGE, UPAGE, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("MAP_DROPPABLE: %s\n", d == MAP_FAILED ? uffd_err(errno) : "ok");
    vma_at("droppable", base, d);
    int mfd = memfd_create("dp", 0);
    ftruncate(mfd, UPAGE);
    char *e = mmap(NULL, UPAGE, PROT_READ, MAP_DROPPABLE, mfd, 0);
    printf("MAP_DROPPABLE of a memfd: %s\n", e == MAP_FAILED ? uffd_err(errno) : "ok");
    e = mmap(NULL, UPAGE, PROT_READ, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
    printf("MAP_DROPPABLE|MAP_LOCKED: %s\n", e == MAP_FAILED ? uffd_err(errno) : "ok");
    e = mmap(NULL, UPAGE, PROT_READ, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_GROWSDOWN, -1, 0);
    printf("MAP_DROPPABLE|MAP_GROWSDOWN: %s\n", e == MAP_FAILED ? uffd_err(errno) : "ok");
    e = mmap(NULL, UPAGE, PROT_READ, MAP_DROPPABLE | MAP_ANONYMOUS | MAP_SHARED, -1, 0);
    printf("MAP_DROPPABLE|MAP_SHARED: %s\n", e == MAP_FAILED ? uffd_err(errno) : "ok");
    shm_row("mlock the droppable page", mlock(d, UPAGE));
    vma_at("droppable", base, d);
    shm_row("MADV_KEEPONFORK on it", madvise(d, UPAGE, MADV_KEEPONFORK));
    shm_row("MADV_DODUMP on it", madvise(d, UPAGE, MADV_DODUMP));
    vma_at("droppable", base, d);
    shm_row("MADV_DONTDUMP on page 0", madvise(p, UPAGE, MADV_DONTDUMP));
    vma_at("page 0", base, p);
    shm_row("MADV_DODUMP on page 0", madvise(p, UPAGE, MADV_DODUMP));
    vma_at("page 0", base, p);
    d[0] = 7;
    pl_flush();
    c = fork();
    if (c == 0) {
        printf("child reads the droppable page: %d\n", d[0]);
        pl_flush();
        _exit(0);
    }
    waitpid(c, NULL, 0);
    printf("done\n");
    return 0;
}
