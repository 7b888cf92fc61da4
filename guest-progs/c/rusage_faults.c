// pagelab: cflags=-pthread
// getrusage(2) and wait4's rusage: the page-fault counts (deltas only, so
// start-up faults do not matter) and the errnos. One fault per first write of
// an anonymous page; a read maps the zero page and the write after it faults
// again; MAP_POPULATE's faults count to the caller; a shmem read fault maps
// 16 pages by fault-around with one fault; a shared VMA registered for
// uffd-wp maps a read fault read-only (the write after it faults once more);
// a MISSING fault resolved by UFFDIO_COPY counts one minor fault (its retry;
// on 6.18 no major one), a write to a uffd-wp marker two (the page mapped
// protected, then the retried write after the WP message); a child's faults reach RUSAGE_CHILDREN and wait4's
// rusage once it is reaped, and RUSAGE_THREAD counts only the caller.
#define _GNU_SOURCE
#include "shm.h"
#include <sys/resource.h>
#include <sys/wait.h>

static void counts(int who, long *mn, long *mj) {
    struct rusage r;
    if (getrusage(who, &r)) {
        printf("getrusage failed: %s\n", uffd_err(errno));
        *mn = *mj = -1;
        return;
    }
    *mn = r.ru_minflt;
    *mj = r.ru_majflt;
}

static long mn0, mj0;
static void mark(void) { counts(RUSAGE_THREAD, &mn0, &mj0); }
static void delta(const char *what) {
    long mn, mj;
    counts(RUSAGE_THREAD, &mn, &mj);
    printf("%s: minflt +%ld majflt +%ld\n", what, mn - mn0, mj - mj0);
}

static int ufd;
static char *rgn, *src;

/* The faulting thread: its own RUSAGE_THREAD deltas around one access. */
static void *missing_thread(void *arg) {
    (void)arg;
    mark();
    *(volatile char *)rgn = 1;
    delta("write to a MISSING page, resolved by COPY");
    return NULL;
}

static void *marker_thread(void *arg) {
    (void)arg;
    mark();
    *(volatile char *)rgn = 1;
    delta("write to a uffd-wp marker, resolved by un-protect");
    return NULL;
}

static void resolve_one(int copy) {
    struct uffd_msg m;
    if (uffd_read_msg(ufd, &m, -1) != 1) printf("  no message\n");
    printf("  message flags %#llx\n", (unsigned long long)m.arg.pagefault.flags);
    if (copy) {
        int64_t c = 0;
        uffd_copy(ufd, rgn, src, UPAGE, 0, &c);
    } else {
        uffd_unprotect(ufd, rgn, UPAGE);
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    struct rusage r;
    printf("getrusage(5): %s\n", getrusage(5, &r) ? uffd_err(errno) : "0");
    printf("getrusage(-2): %s\n", getrusage(-2, &r) ? uffd_err(errno) : "0");
    printf("getrusage(SELF, bad pointer): %s\n", syscall(SYS_getrusage, RUSAGE_SELF, (void *)8) ? uffd_err(errno) : "0");

    char *a = shm_map_anon(16);
    mark();
    for (int i = 0; i < 8; i++) a[i * UPAGE] = 1;
    delta("first writes of 8 anonymous pages");
    mark();
    (void)*(volatile char *)(a + 8 * UPAGE);
    a[8 * UPAGE] = 1;
    delta("read then write of an anonymous page");
    mark();
    for (int i = 0; i < 8; i++) a[i * UPAGE] = 2;
    delta("writes to the same 8 pages again");
    munmap(a, 16 * UPAGE);

    mark();
    char *pop = mmap(NULL, 8 * UPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    delta("MAP_POPULATE of 8 pages");
    mark();
    for (int i = 0; i < 8; i++) pop[i * UPAGE] = 1;
    delta("writes to the populated pages");
    munmap(pop, 8 * UPAGE);

    int mfd = shm_memfd("ru", 32);
    char buf[UPAGE];
    memset(buf, 'x', sizeof buf);
    for (int i = 0; i < 32; i++) if (pwrite(mfd, buf, UPAGE, i * (off_t)UPAGE) != UPAGE) printf("pwrite failed\n");
    char *s = shm_map(mfd, 32, MAP_SHARED);
    mark();
    for (int i = 0; i < 16; i++) (void)*(volatile char *)(s + i * UPAGE);
    delta("reads of 16 cached shmem pages (fault-around)");
    mark();
    for (int i = 0; i < 16; i++) s[i * UPAGE] = 'y';
    delta("writes to them");
    munmap(s, 32 * UPAGE);

    ufd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    s = shm_map(mfd, 32, MAP_SHARED);
    uffd_register(ufd, s, 32 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    mark();
    (void)*(volatile char *)s;
    delta("read fault in a shared VMA registered WP");
    mark();
    s[0] = 'z';
    delta("write after it");
    rgn = s + 4 * UPAGE;
    uffd_protect(ufd, rgn, UPAGE);
    pthread_t th;
    pthread_create(&th, NULL, marker_thread, NULL);
    resolve_one(0);
    pthread_join(th, NULL);
    munmap(s, 32 * UPAGE);
    close(ufd);

    ufd = uffd_open(O_CLOEXEC | O_NONBLOCK, 0);
    rgn = shm_map_anon(4);
    src = shm_map_anon(1);
    memset(src, 'c', UPAGE);
    uffd_register(ufd, rgn, 4 * UPAGE, UFFDIO_REGISTER_MODE_MISSING, NULL);
    pthread_create(&th, NULL, missing_thread, NULL);
    resolve_one(1);
    pthread_join(th, NULL);
    close(ufd);

    long cmn0, cmj0, cmn, cmj;
    counts(RUSAGE_CHILDREN, &cmn0, &cmj0);
    pid_t pid = fork();
    if (pid == 0) {
        char *c = shm_map_anon(32);
        for (int i = 0; i < 32; i++) c[i * UPAGE] = 1;
        _exit(0);
    }
    counts(RUSAGE_CHILDREN, &cmn, &cmj);
    printf("children before the wait: minflt +%ld\n", cmn - cmn0);
    int st;
    struct rusage wr;
    if (wait4(pid, &st, 0, &wr) != pid) printf("wait4 failed\n");
    counts(RUSAGE_CHILDREN, &cmn, &cmj);
    printf("child wrote 32 pages: RUSAGE_CHILDREN minflt >= 32: %d, wait4's rusage the same: %d, majflt %ld\n",
           cmn - cmn0 >= 32, wr.ru_minflt == cmn - cmn0, cmj - cmj0);
    long smn, smj;
    counts(RUSAGE_SELF, &smn, &smj);
    long tmn, tmj;
    counts(RUSAGE_THREAD, &tmn, &tmj);
    printf("RUSAGE_SELF counts the exited threads' 3 faults too: %d\n", smn >= tmn + 3);
    return 0;
}
