// exit_code: exit(42) after printing; checks that atexit handlers run and stdio is flushed.
#include "pl.h"

static void bye(void) { printf("atexit handler ran\n"); }

int main(void) {
    atexit(bye);
    printf("exiting with 42\n");
    exit(42);
}
