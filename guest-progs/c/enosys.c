/* An unknown syscall number returns ENOSYS (and pagelab reports it once on stderr). */
#include "pl.h"
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(void) {
    for (int i = 0; i < 2; i++) {
        errno = 0;
        long r = syscall(499);
        printf("syscall(499) = %ld %s\n", r, pl_errname(errno));
    }
    return 0;
}
