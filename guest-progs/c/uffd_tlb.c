// pagelab: cflags=-pthread
// UFFDIO_WRITEPROTECT flushes the TLBs before it returns (reference 5.2):
// a writer thread increments a counter in a page as fast as it can (so,
// on another CPU, that CPU's TLB holds a writable entry for the page); the
// main thread protects the page and reads the counter right after the ioctl
// returned. No write may land after that point: the counter must still hold
// the same value when the writer's WP message arrives, and exactly one
// message comes per round. Then the page is un-protected (waking the writer)
// and the next round starts. argv[1]: rounds (default 20).
#define _GNU_SOURCE
#include "uffd.h"

static volatile uint64_t *counter;
static volatile int stop;

static void *writer(void *arg) {
    (void)arg;
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) (*counter)++;
    return NULL;
}

int main(int argc, char **argv) {
    long rounds = pl_arg_long(argc, argv, 1, 20);
    int fd = uffd_open(O_CLOEXEC | O_NONBLOCK, UFFD_FEATURE_PAGEFAULT_FLAG_WP);
    char *r = uffd_map(1);
    counter = (volatile uint64_t *)r;
    *counter = 0;
    printf("register WP: %s\n", uffd_err(-uffd_register(fd, r, UPAGE, UFFDIO_REGISTER_MODE_WP, NULL)));
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    long late_writes = 0, bad_msgs = 0, errors = 0;
    for (long i = 0; i < rounds; i++) {
        /* Let the writer run (and cache a writable translation). */
        uint64_t start = *counter;
        while (*counter - start < 1000) {}
        if (uffd_protect(fd, r, UPAGE)) errors++;
        uint64_t at_return = *counter;
        struct uffd_msg m;
        if (uffd_read_msg(fd, &m, -1) != 1 || m.event != UFFD_EVENT_PAGEFAULT || m.arg.pagefault.flags != 3 ||
            uffd_pidx(r, m.arg.pagefault.address) != 0)
            bad_msgs++;
        if (*counter != at_return) late_writes++;
        if (uffd_pending(fd, 0)) bad_msgs++;
        if (uffd_unprotect(fd, r, UPAGE)) errors++;
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    printf("rounds %ld: ioctl errors %ld, unexpected messages %ld, writes after protect returned %ld\n", rounds, errors,
           bad_msgs, late_writes);
    return 0;
}
