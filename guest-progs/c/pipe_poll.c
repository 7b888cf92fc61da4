// pagelab: cflags=-pthread
/* pipe_poll: a producer thread writes N messages of varying sizes (some larger than
 * PIPE_BUF, some larger than the pipe's capacity) into a blocking pipe; the consumer,
 * reading a nonblocking descriptor, waits with poll() and reads whatever is there. It prints the stream's
 * checksum, byte and message counts, and what poll reports after the writer closes:
 * nothing that depends on how the two threads interleave.
 *
 * argv[1]: number of messages (default 200). */
#define _GNU_SOURCE
#include "pl.h"
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

static int fds[2];
static long nmsg;

/* Message i: a 4-byte length header, then `len` bytes of a seeded pattern. */
static size_t msg_len(long i) {
    static const size_t sizes[] = { 1, 17, 4096, 4097, 100, 65536, 70000, 3, 8191, 200000, 0, 512 };
    return sizes[i % (sizeof sizes / sizeof sizes[0])] + (size_t)(i % 7);
}

static void *producer(void *arg) {
    (void)arg;
    pl_rng r = pl_rng_new(42);
    static unsigned char buf[200016];
    for (long i = 0; i < nmsg; i++) {
        uint32_t len = (uint32_t)msg_len(i);
        memcpy(buf, &len, 4);
        for (uint32_t j = 0; j < len; j++) buf[4 + j] = (unsigned char)pl_rand(&r);
        size_t total = 4 + len, done = 0;
        /* A blocking write moves everything (no signals here). */
        while (done < total) {
            ssize_t n = write(fds[1], buf + done, total - done);
            if (n < 0) {
                printf("write: %s\n", pl_errname(errno));
                exit(1);
            }
            if ((size_t)n != total - done) {
                printf("short blocking write\n");
                exit(1);
            }
            done += (size_t)n;
        }
    }
    close(fds[1]);
    return NULL;
}

int main(int argc, char **argv) {
    nmsg = pl_arg_long(argc, argv, 1, 200);
    if (pipe(fds) != 0) return 1;
    /* The reader end is nonblocking: poll decides when to read. */
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    pthread_t t;
    pthread_create(&t, NULL, producer, NULL);
    uint64_t h = PL_FNV_INIT;
    long bytes = 0, msgs = 0, eagain_after_pollin = 0;
    /* Parse the stream as it comes: header bytes, then payload. */
    unsigned char hdr[4];
    size_t hdr_have = 0, body_left = 0;
    int in_body = 0;
    static unsigned char buf[100000];
    for (;;) {
        struct pollfd pf = { fds[0], POLLIN, 0 };
        int r = poll(&pf, 1, -1);
        if (r != 1) {
            printf("poll returned %d (%s)\n", r, pl_errname(errno));
            return 1;
        }
        ssize_t n = read(fds[0], buf, sizeof buf);
        if (n < 0) {
            if (errno == EAGAIN) { eagain_after_pollin++; continue; }
            printf("read: %s\n", pl_errname(errno));
            return 1;
        }
        if (n == 0) {
            printf("EOF; last revents %#x\n", pf.revents & (POLLIN | POLLHUP | POLLERR));
            break;
        }
        h = pl_fnv(h, buf, (size_t)n);
        bytes += n;
        for (ssize_t i = 0; i < n;) {
            if (!in_body) {
                hdr[hdr_have++] = buf[i++];
                if (hdr_have == 4) {
                    uint32_t len;
                    memcpy(&len, hdr, 4);
                    body_left = len;
                    hdr_have = 0;
                    in_body = 1;
                }
            }
            if (in_body) {
                size_t take = (size_t)(n - i) < body_left ? (size_t)(n - i) : body_left;
                i += (ssize_t)take;
                body_left -= take;
                if (body_left == 0) { in_body = 0; msgs++; }
            }
        }
    }
    pthread_join(t, NULL);
    struct pollfd pf = { fds[0], POLLIN | POLLOUT, 0 };
    int r = poll(&pf, 1, 0);
    printf("after EOF: poll %d revents %#x\n", r, pf.revents);
    printf("messages %ld bytes %ld checksum %016llx\n", msgs, bytes, (unsigned long long)h);
    printf("spurious EAGAIN after POLLIN: %s\n", eagain_after_pollin ? "yes" : "no");
    return 0;
}
