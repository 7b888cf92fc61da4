// segv_null: dereferences a NULL pointer; must be killed by SIGSEGV.
#include "pl.h"

/* Loaded through a volatile object so gcc cannot see the NULL and turn the
 * dereference into a trap (ud2 -> SIGILL) or delete it. */
static int *volatile null_ptr = 0;

int main(void) {
    printf("dereferencing NULL...\n");
    pl_flush();
    int *p = null_ptr;
    *(volatile int *)p = 1; /* SIGSEGV (SEGV_MAPERR, addr 0) */
    printf("survived: BUG\n");
    return 3;
}
