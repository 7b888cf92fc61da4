// pagelab: cflags=-pthread
// mremap and mprotect of uffd-wp protected shmem (issue 9; reference 5.9,
// 5.10). A memfd mapped MAP_SHARED, registered WP: page 0 present and
// protected, page 1 a marker over a cached page, page 2 a marker over a hole,
// page 3 present and not protected. mremap(MAYMOVE|FIXED) to a reserved
// address: without EVENT_REMAP the moved VMA loses its registration and the
// move drops the wp bits and the markers (WRITEPROTECT there gives ENOENT,
// writes do not fault); with EVENT_REMAP the VMA stays registered, PTEs,
// wp bits and markers move unchanged, the handler thread reads one REMAP
// message (from, to and len are printed against the old and new address),
// and writes fault WP at the new address. Moving part of the range splits it.
// In-place growth keeps the registration for the grown part. mprotect
// READ then READ|WRITE keeps wp bits and markers; the next write faults WP.
// A protected page made PROT_NONE loses its wp bit too when moved without
// EVENT_REMAP (pte_present holds for PROT_NONE), anonymous or shmem.
// pagemap rows: one character per page (shm.h).
#define _GNU_SOURCE
#include "shm.h"
#include <sys/mman.h>

static char *old_base, *new_base;
static int mfd;
static volatile int remaps; /* REMAP messages the handler has printed */

static void on_msg(struct uffd_handler *h, const struct uffd_msg *m) {
    if (m->event == UFFD_EVENT_REMAP) {
        printf("handler: REMAP from old+%ld to new+%ld len %llu\n", uffd_pidx(old_base, m->arg.remap.from),
               uffd_pidx(new_base, m->arg.remap.to), (unsigned long long)(m->arg.remap.len / UPAGE));
        __atomic_add_fetch(&remaps, 1, __ATOMIC_RELEASE);
    } else if (m->event == UFFD_EVENT_PAGEFAULT) {
        printf("handler: PAGEFAULT flags %#llx new+%ld\n", (unsigned long long)m->arg.pagefault.flags,
               uffd_pidx(new_base, m->arg.pagefault.address));
        printf("handler: unprotect\n");
        int e = uffd_unprotect(h->fd, (void *)(uintptr_t)(m->arg.pagefault.address & ~(UPAGE - 1)), UPAGE);
        if (e) printf("handler: unprotect failed %s\n", uffd_err(-e));
    } else {
        printf("handler: event %#x\n", m->event);
    }
}

static char file_byte(long i) {
    char c = '?';
    if (pread(mfd, &c, 1, i * (off_t)UPAGE) != 1) c = '!';
    return c ? c : '0';
}

/* The VmFlags of the VMA containing p: "uw" if registered WP, else "-". */
static const char *vm_uw(const void *p) {
    static char out[8];
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int in = 0;
    strcpy(out, "?");
    while (f && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (in && strncmp(line, "VmFlags:", 8) == 0) {
            strcpy(out, strstr(line, " uw") ? "uw" : "-");
            break;
        }
    }
    if (f) fclose(f);
    return out;
}

/* A fresh memfd mapping registered WP on fd, in the protected state above. */
static char *setup(int fd) {
    mfd = shm_memfd("mremap", 4);
    char *s = shm_map(mfd, 4, MAP_SHARED);
    s[0] = 'a';
    pwrite(mfd, "b", 1, UPAGE);
    s[3 * UPAGE] = 'd';
    int e1 = uffd_register(fd, s, 4 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    int e2 = uffd_protect(fd, s, 3 * UPAGE);
    printf("register %s, protect pages 0-2 %s\n", uffd_err(-e1), uffd_err(-e2));
    shm_pm_print("before", s, 4);
    return s;
}

/* mremap(MAYMOVE|FIXED); with EVENT_REMAP (want_event) it returns once the
 * handler has read the REMAP message, and this waits until it printed it. */
static char *move(char *s, size_t pages, char *to, int want_event) {
    int before = __atomic_load_n(&remaps, __ATOMIC_ACQUIRE);
    void *p = mremap(s, pages * UPAGE, pages * UPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    while (want_event && p != MAP_FAILED && __atomic_load_n(&remaps, __ATOMIC_ACQUIRE) == before) usleep(1000);
    printf("mremap %zu pages: %s\n", pages, p == MAP_FAILED ? shm_err(errno) : p == to ? "moved" : "elsewhere?");
    return p == MAP_FAILED ? NULL : p;
}

static void without_event(void) {
    printf("== without EVENT_REMAP\n");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    char *s = setup(fd);
    old_base = s;
    new_base = shm_reserve(4 * UPAGE);
    char *d = move(s, 4, new_base, 0);
    shm_pm_print("at the new address", d, 4);
    shm_pm_print("at the old address", s, 4);
    printf("VmFlags: %s\n", vm_uw(d));
    printf("protect at the new address: %s\n", uffd_err(-uffd_protect(fd, d, 4 * UPAGE)));
    printf("read page 1: %c\n", *(volatile char *)(d + UPAGE));
    d[0] = 'A';
    d[2 * UPAGE] = 'C';
    printf("writes to pages 0 and 2 without a fault: %c %c, pending %d\n", file_byte(0), file_byte(2), uffd_pending(fd, 0));
    shm_pm_print("at the new address", d, 4);
    munmap(d, 4 * UPAGE);
    close(mfd);
    close(fd);
}

static void with_event(void) {
    printf("== with EVENT_REMAP\n");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_EVENT_REMAP);
    char *s = setup(fd);
    old_base = s;
    new_base = shm_reserve(8 * UPAGE);
    struct uffd_handler h;
    uffd_handler_start(&h, fd, s, on_msg, NULL);
    char *d = move(s, 4, new_base, 1);
    shm_pm_print("at the new address", d, 4);
    printf("VmFlags: %s\n", vm_uw(d));
    printf("read page 1: %c\n", *(volatile char *)(d + UPAGE));
    shm_pm_print("after the read", d, 4);
    d[0] = 'A';
    printf("wrote page 0: file %c\n", file_byte(0));
    d[2 * UPAGE] = 'C';
    printf("wrote page 2: file %c\n", file_byte(2));
    shm_pm_print("at the new address", d, 4);

    printf("-- partial move\n");
    printf("protect pages 0-3: %s\n", uffd_err(-uffd_protect(fd, d, 4 * UPAGE)));
    printf("MADV_DONTNEED page 2: %s\n", uffd_err(madvise(d + 2 * UPAGE, UPAGE, MADV_DONTNEED) ? errno : 0));
    shm_pm_print("before", d, 4);
    old_base = d;
    new_base = shm_reserve(2 * UPAGE);
    char *d2 = move(d + UPAGE, 2, new_base, 1);
    shm_pm_print("moved pages 1-2", d2, 2);
    shm_pm_print("left behind 0 and 3", d, 4);
    printf("VmFlags of the moved part: %s\n", vm_uw(d2));
    d2[UPAGE] = 'X';
    printf("wrote moved page 2: file %c\n", file_byte(2));

    printf("-- in-place growth\n");
    ftruncate(mfd, 8 * UPAGE);
    old_base = new_base = d2;
    munmap(d2 + 2 * UPAGE, 2 * UPAGE); /* free the reservation behind it */
    void *g = mremap(d2, 2 * UPAGE, 4 * UPAGE, 0);
    printf("mremap grow 2 -> 4 pages in place: %s\n", g == MAP_FAILED ? shm_err(errno) : g == d2 ? "ok" : "moved?");
    printf("VmFlags: %s\n", vm_uw(d2 + 3 * UPAGE));
    printf("protect grown pages 2-3: %s\n", uffd_err(-uffd_protect(fd, d2 + 2 * UPAGE, 2 * UPAGE)));
    shm_pm_print("grown", d2, 4);
    d2[3 * UPAGE] = 'Y';
    printf("wrote grown page 3: file page 4 %c\n", file_byte(4));
    munmap(d, 4 * UPAGE);
    munmap(d2, 4 * UPAGE);
    uffd_handler_stop(&h);
    printf("messages: %ld\n", h.nmsgs);
    close(mfd);
    close(fd);
}

static void with_mprotect(void) {
    printf("== mprotect\n");
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    char *s = setup(fd);
    old_base = new_base = s;
    struct uffd_handler h;
    uffd_handler_start(&h, fd, s, on_msg, NULL);
    printf("mprotect READ: %s\n", shm_err(mprotect(s, 4 * UPAGE, PROT_READ) ? errno : 0));
    shm_pm_print("read-only", s, 4);
    printf("mprotect READ|WRITE: %s\n", shm_err(mprotect(s, 4 * UPAGE, PROT_READ | PROT_WRITE) ? errno : 0));
    shm_pm_print("read-write", s, 4);
    printf("mprotect NONE page 1: %s\n", shm_err(mprotect(s + UPAGE, UPAGE, PROT_NONE) ? errno : 0));
    shm_pm_print("page 1 PROT_NONE", s, 4);
    printf("mprotect READ|WRITE page 1: %s\n", shm_err(mprotect(s + UPAGE, UPAGE, PROT_READ | PROT_WRITE) ? errno : 0));
    shm_pm_print("after", s, 4);
    printf("VmFlags: %s\n", vm_uw(s + UPAGE));
    s[0] = 'A';
    printf("wrote page 0: file %c\n", file_byte(0));
    s[UPAGE] = 'B';
    printf("wrote page 1: file %c\n", file_byte(1));
    s[3 * UPAGE] = 'D';
    printf("wrote page 3: file %c\n", file_byte(3));
    shm_pm_print("at end", s, 4);
    uffd_handler_stop(&h);
    printf("messages: %ld\n", h.nmsgs);
    munmap(s, 4 * UPAGE);
    close(mfd);
    close(fd);
}

/* A wp'd PROT_NONE page moved without EVENT_REMAP. */
static void prot_none_move(const char *what, char *r) {
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    uffd_register(fd, r, 2 * UPAGE, UFFDIO_REGISTER_MODE_WP, NULL);
    r[0] = 'x';
    uffd_protect(fd, r, UPAGE);
    printf("%s: mprotect PROT_NONE: %s\n", what, uffd_err(mprotect(r, 2 * UPAGE, PROT_NONE) ? errno : 0));
    shm_pm_print("  before the move", r, 2);
    char *to = shm_reserve(2 * UPAGE);
    char *d = mremap(r, 2 * UPAGE, 2 * UPAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to);
    printf("  mremap: %s\n", d == MAP_FAILED ? shm_err(errno) : d == to ? "moved" : "elsewhere?");
    if (d != MAP_FAILED) {
        shm_pm_print("  moved, PROT_NONE", d, 2);
        printf("  mprotect READ|WRITE: %s\n", uffd_err(mprotect(d, 2 * UPAGE, PROT_READ | PROT_WRITE) ? errno : 0));
        shm_pm_print("  moved, READ|WRITE", d, 2);
        d[0] = 'y';
        printf("  write without a fault: %c, pending %d\n", d[0], uffd_pending(fd, 0));
        munmap(d, 2 * UPAGE);
    }
    close(fd);
}

int main(void) {
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    without_event();
    with_event();
    with_mprotect();
    printf("== PROT_NONE, without EVENT_REMAP\n");
    prot_none_move("anon", shm_map_anon(2));
    int m = shm_memfd("pn", 2);
    prot_none_move("shmem", shm_map(m, 2, MAP_SHARED));
    close(m);
    return 0;
}
