// pagelab: cflags=-pthread
// vma_merge: when Linux 6.18 merges anonymous VMAs, as /proc/self/maps shows it after
// mprotect and mmap round trips (anon_vma identity: two separately faulted VMAs stay
// apart, a never-faulted one joins a faulted neighbour; VM_ACCOUNT dropped by mprotect
// of a read-only VMA without pages), and what that does to mremap's UNMAP events: a
// never-faulted range moved next to the rest of its WP-registered VMA merges into it and
// loses the registration with it, so no UNMAP is sent for the source without
// EVENT_REMAP. A VMA that had guard pages installed still merges (VM_MAYBE_GUARD is
// sticky). Offsets are in pages from an aligned base inside a PROT_NONE reservation.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <linux/userfaultfd.h>
static char *base;
#define P 4096
static void show(const char *what) {
    FILE *f = fopen("/proc/self/maps", "r"); char l[512];
    printf("%-40s:", what);
    while (fgets(l, sizeof l, f)) {
        unsigned long s, e; char perm[8];
        sscanf(l, "%lx-%lx %7s", &s, &e, perm);
        if (e <= (unsigned long)base || s >= (unsigned long)base + 8 * P) continue;
        printf(" [%ld-%ld %s]", (long)(s - (unsigned long)base) / P, (long)(e - (unsigned long)base) / P, perm);
    }
    printf("\n"); fclose(f);
}
static void fresh(int n) {
    if (base) munmap(base - P, 10 * P);
    char *r = mmap(0, 10 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    base = mmap(r + P, n * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
}

static int U; static char *RR; static char buf[4096]; static volatile int stop;
static void *rd(void *x) { (void)x; struct uffd_msg m; struct pollfd p = { .fd = U, .events = POLLIN, .revents = 0 }; while (!stop) { if (poll(&p, 1, 50) <= 0) continue; if (read(U, &m, sizeof m) != sizeof m) continue; char *b = buf + strlen(buf);
 if (m.event == UFFD_EVENT_UNMAP) sprintf(b, " UNMAP %ld+%ld", (long)(m.arg.remove.start - (unsigned long)RR) / P - 1, (long)(m.arg.remove.end - m.arg.remove.start) / P);
 else if (m.event == UFFD_EVENT_REMAP) sprintf(b, " REMAP %ld->%ld len %ld", (long)(m.arg.remap.from - (unsigned long)RR) / P - 1, (long)(m.arg.remap.to - (unsigned long)RR) / P - 1, (long)m.arg.remap.len / P); else sprintf(b, " ev %d", m.event); } return 0; }
static void run(unsigned long feat, int grow, int fault, int whole) {
    int u = syscall(SYS_userfaultfd, O_NONBLOCK | O_CLOEXEC);
    struct uffdio_api api = { .api = UFFD_API, .features = feat };
    if (ioctl(u, UFFDIO_API, &api)) { perror("api"); exit(1); }
    char *r = mmap(0, 64 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *a = mmap(r + P, 16 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (fault) a[0] = 1;
    struct uffdio_register reg = { .range = { (unsigned long)a, 16 * P }, .mode = UFFDIO_REGISTER_MODE_WP };
    if (ioctl(u, UFFDIO_REGISTER, &reg)) perror("reg");
    U = u; RR = r; buf[0] = 0; stop = 0; pthread_t th; pthread_create(&th, 0, rd, 0);
    unsigned long len = 4 * P;
    char *to = r + (whole ? 11 : 32) * P;
    void *q = mremap(a, len, grow ? len + P : len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    printf("feat %#lx grow %d fault %d whole %d: mremap %s;", feat, grow, fault, whole, q == MAP_FAILED ? "FAIL" : "ok");
    stop = 1; pthread_join(th, 0); printf("%s\n", buf);
    close(u); munmap(r, 64 * P);
}
int main() {
    setvbuf(stdout, 0, _IONBF, 0);

    // 1: split after fault: all share A
    fresh(3); base[0] = 1; mprotect(base + P, P, PROT_READ); mprotect(base + P, P, PROT_READ | PROT_WRITE); show("1 fault0, mprot1 R,RW");
    // 2: split before fault, prev faulted, middle/next NULL
    fresh(3); mprotect(base + P, P, PROT_READ); base[0] = 1; mprotect(base + P, P, PROT_READ | PROT_WRITE); show("2 mprot1 R, fault0, mprot1 RW");
    // 3: split before, prev and next faulted separately (A, B), middle NULL
    fresh(3); mprotect(base + P, P, PROT_READ); base[0] = 1; base[2 * P] = 1; mprotect(base + P, P, PROT_READ | PROT_WRITE); show("3 mprot1 R, fault0,2, mprot1 RW");
    // 4: split before, next faulted only
    fresh(3); mprotect(base + P, P, PROT_READ); base[2 * P] = 1; mprotect(base + P, P, PROT_READ | PROT_WRITE); show("4 mprot1 R, fault2, mprot1 RW");
    // 5: prev faulted after split, middle faulted (RW then R), next NULL
    fresh(3); mprotect(base + P, 2*P, PROT_READ); mprotect(base + 2*P, P, PROT_READ|PROT_WRITE); show("5a"); mprotect(base + P, P, PROT_READ|PROT_WRITE); show("5b");
    // 6: middle faulted separately from prev
    fresh(3); mprotect(base + P, P, PROT_NONE); base[0] = 1; mprotect(base + P, P, PROT_READ|PROT_WRITE); show("6a"); base[P]=1; show("6b");
    mprotect(base + P, P, PROT_READ); show("6c"); mprotect(base+P,P,PROT_READ|PROT_WRITE); show("6d");
    // 7: three pieces: 0 faulted, 1 R faulted by write before?, 2 NULL
    fresh(3); mprotect(base + P, P, PROT_NONE); mprotect(base + 2*P, P, PROT_READ); base[P*0]=1; mprotect(base + P, P, PROT_READ|PROT_WRITE); base[P]=1; show("7a"); mprotect(base + 2*P, P, PROT_READ|PROT_WRITE); show("7b");
    // 8: middle written, prev and next NULL
    fresh(3); mprotect(base + P, P, PROT_READ); mprotect(base + P, P, PROT_READ|PROT_WRITE); show("8a");
    fresh(3); mprotect(base, P, PROT_READ); mprotect(base+2*P, P, PROT_READ); base[P]=1; mprotect(base, P, PROT_READ|PROT_WRITE); show("8b"); mprotect(base+2*P, P, PROT_READ|PROT_WRITE); show("8c");
    fresh(3); mprotect(base, P, PROT_READ); mprotect(base+2*P, P, PROT_READ); base[P]=1; mprotect(base, 3*P, PROT_READ|PROT_WRITE); show("8d");
    fresh(3); mprotect(base, P, PROT_READ); mprotect(base+2*P, P, PROT_READ); base[P]=1; mprotect(base+P, P, PROT_READ); show("8e"); mprotect(base, 3*P, PROT_READ|PROT_WRITE); show("8f");
    // 9: mmap adjacent to faulted
    fresh(1); base[0]=1; mmap(base+P, P, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0); show("9 mmap next to faulted");
    fresh(2); base[P]=1; munmap(base, P); mmap(base, P, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0); show("9b mmap before faulted");
    fresh(3); base[0]=1; base[2*P]=1; munmap(base+P,P); show("9c"); mmap(base+P, P, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0); show("9c mmap between two faulted(same A)");
    // 10: a guard page in one VMA (VM_MAYBE_GUARD is sticky: it does not prevent the merge)
    fresh(3); base[0]=1; mprotect(base + 2*P, P, PROT_READ); madvise(base + P, P, 102 /* MADV_GUARD_INSTALL */); show("10a guard in 0-2, 2 R"); mprotect(base + 2*P, P, PROT_READ|PROT_WRITE); show("10b 2 RW again: merged");
    fresh(1); base[0]=1; char *q = mmap(base+2*P, P, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0); q[0]=1; show("9d"); mmap(base+P, P, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0); show("9d between A and B");
        for (int f = 0; f < 2; f++) for (int fl = 0; fl < 2; fl++) for (int w = 0; w < 2; w++)
        run(UFFD_FEATURE_EVENT_UNMAP | (f ? UFFD_FEATURE_EVENT_REMAP : 0), 0, fl, w);
    return 0;
}
