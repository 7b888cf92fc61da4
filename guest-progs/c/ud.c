// ud: executes ud2; must be killed by SIGILL.
#include "pl.h"

int main(void) {
    printf("executing ud2...\n");
    pl_flush();
    __asm__ volatile("ud2");
    printf("survived: BUG\n");
    return 3;
}
