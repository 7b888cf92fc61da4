// pagelab: cflags=-pthread
/* pipe_epoll: three producer threads each stream messages into their own pipe and then
 * add 1 to a shared eventfd; the main thread multiplexes everything with one epoll
 * instance: pipe 0 level-triggered, pipe 1 edge-triggered (read until EAGAIN), pipe 2
 * edge-triggered one-shot (re-armed with EPOLL_CTL_MOD), the eventfd level-triggered.
 * A pipe leaves the set at EOF. Printed: per-pipe byte counts and checksums, the eventfd
 * total, how pipe 0 ended -- nothing that depends on the interleaving.
 *
 * argv[1]: messages per producer (default 60). */
#define _GNU_SOURCE
#include "pl.h"
#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NP 3
static int pipes_[NP][2];
static int efd;
static long nmsg;

static void *producer(void *arg) {
    long k = (long)arg;
    pl_rng r = pl_rng_new(1000 + (uint64_t)k);
    static unsigned char bufs[NP][70000];
    unsigned char *buf = bufs[k];
    for (long i = 0; i < nmsg; i++) {
        size_t len = 1 + pl_rand_below(&r, i % 5 == 0 ? 70000 : 5000);
        for (size_t j = 0; j < len; j++) buf[j] = (unsigned char)pl_rand(&r);
        if (write(pipes_[k][1], buf, len) != (ssize_t)len) {
            printf("producer %ld: short write\n", k);
            exit(1);
        }
    }
    close(pipes_[k][1]);
    uint64_t one = 1;
    if (write(efd, &one, 8) != 8) exit(1);
    return NULL;
}

int main(int argc, char **argv) {
    nmsg = pl_arg_long(argc, argv, 1, 60);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const uint32_t mode[NP] = { 0, EPOLLET, EPOLLET | EPOLLONESHOT };
    for (int k = 0; k < NP; k++) {
        if (pipe2(pipes_[k], O_CLOEXEC) != 0) return 1;
        fcntl(pipes_[k][0], F_SETFL, O_NONBLOCK);
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | mode[k], .data.u64 = (uint64_t)k };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, pipes_[k][0], &ev) != 0) return 1;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 100 };
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    pthread_t t[NP];
    for (long k = 0; k < NP; k++) pthread_create(&t[k], NULL, producer, (void *)k);

    uint64_t h[NP], total[NP] = { 0 };
    int hup_seen[NP] = { 0 };
    for (int k = 0; k < NP; k++) h[k] = PL_FNV_INIT;
    uint64_t done = 0;
    int nopen = NP;
    static unsigned char buf[65536];
    while (nopen > 0 || done < NP) {
        struct epoll_event out[8];
        int n = epoll_wait(ep, out, 8, -1);
        if (n <= 0) {
            printf("epoll_wait %d (%s)\n", n, pl_errname(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            uint64_t id = out[i].data.u64;
            if (id == 100) {
                uint64_t v;
                if (read(efd, &v, 8) == 8) done += v;
                continue;
            }
            int k = (int)id;
            if (out[i].events & (EPOLLHUP | EPOLLRDHUP)) hup_seen[k] = 1;
            /* Level-triggered: one read per event is enough; edge-triggered: drain. */
            for (;;) {
                ssize_t m = read(pipes_[k][0], buf, k == 0 ? 1000 : sizeof buf);
                if (m > 0) {
                    h[k] = pl_fnv(h[k], buf, (size_t)m);
                    total[k] += (uint64_t)m;
                    if (k == 0) break;
                    continue;
                }
                if (m == 0) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, pipes_[k][0], NULL);
                    close(pipes_[k][0]);
                    nopen--;
                } else if (errno != EAGAIN) {
                    printf("read: %s\n", pl_errname(errno));
                    return 1;
                } else if (k == 2) {
                    struct epoll_event re = { .events = EPOLLIN | EPOLLRDHUP | mode[k], .data.u64 = 2 };
                    epoll_ctl(ep, EPOLL_CTL_MOD, pipes_[k][0], &re);
                }
                break;
            }
        }
    }
    for (int k = 0; k < NP; k++) pthread_join(t[k], NULL);
    for (int k = 0; k < NP; k++)
        printf("pipe %d: %llu bytes checksum %016llx\n", k, (unsigned long long)total[k], (unsigned long long)h[k]);
    /* Level-triggered pipe 0 reads 1000 bytes per event, so the event that finds EOF is
     * the hang-up itself; the edge-triggered drains may meet EOF first. */
    printf("pipe 0 EOF came with EPOLLHUP|EPOLLRDHUP: %d\n", hup_seen[0]);
    printf("eventfd total %llu\n", (unsigned long long)done);
    struct epoll_event out[8];
    printf("epoll_wait after all: %d\n", epoll_wait(ep, out, 8, 0));
    return 0;
}
