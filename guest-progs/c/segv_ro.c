// segv_ro: writes to a PROT_READ anonymous mapping; must be killed by SIGSEGV.
#include "pl.h"
#include <sys/mman.h>

int main(void) {
    volatile unsigned char *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap failed: %s\n", pl_errname(errno));
        return 1;
    }
    printf("read-only page reads %d\n", p[100]);
    printf("writing to it...\n");
    pl_flush();
    p[100] = 1; /* SIGSEGV (SEGV_ACCERR) */
    printf("survived the write: BUG\n");
    return 3;
}
