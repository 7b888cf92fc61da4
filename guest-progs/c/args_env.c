// args_env: prints argv, selected auxv entries (no addresses or random bytes) and environment.
#include "pl.h"
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;

static void aux_value(const char *name, unsigned long type) {
    errno = 0;
    unsigned long v = getauxval(type);
    printf("%s=%lu%s\n", name, v, errno == ENOENT ? " (absent)" : "");
}

static void aux_present(const char *name, unsigned long type) {
    errno = 0;
    unsigned long v = getauxval(type);
    printf("%s present: %s\n", name, v != 0 && errno != ENOENT ? "yes" : "no");
}

int main(int argc, char **argv, char **envp) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d]=\"%s\" (len %zu)\n", i, argv[i], strlen(argv[i]));
    printf("argv[argc] is NULL: %s\n", argv[argc] == NULL ? "yes" : "no");

    aux_value("AT_PAGESZ", AT_PAGESZ);
    aux_value("AT_CLKTCK", AT_CLKTCK);
    aux_value("AT_SECURE", AT_SECURE);
    aux_value("AT_PHENT", AT_PHENT);
    aux_present("AT_PHDR", AT_PHDR);
    aux_present("AT_PHNUM", AT_PHNUM);
    aux_present("AT_ENTRY", AT_ENTRY);
    aux_present("AT_RANDOM", AT_RANDOM);
    printf("sysconf(_SC_PAGESIZE)=%ld\n", sysconf(_SC_PAGESIZE));
    printf("getpagesize()=%d\n", getpagesize());

    /* AT_RANDOM points at 16 readable bytes; read them, print nothing about them. */
    const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
    if (rnd) {
        unsigned x = 0;
        for (int i = 0; i < 16; i++) x |= rnd[i];
        printf("AT_RANDOM bytes readable: yes\n");
        (void)x;
    }

    int n = 0;
    for (char **e = envp; *e; e++) n++;
    printf("envc=%d environ==envp: %s\n", n, environ == envp ? "yes" : "no");
    for (char **e = envp; *e; e++) printf("env: %s\n", *e);
    const char *names[] = {"PAGELAB_TEST", "LANG", "HOME", "PATH"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        printf("getenv(%s)=%s\n", names[i], v ? v : "(unset)");
    }
    return 0;
}
