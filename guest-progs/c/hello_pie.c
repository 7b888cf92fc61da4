// pagelab: cflags=-static-pie
// hello_pie: hello.c built as a static position-independent executable (ET_DYN, self-relocating).
#define PL_VARIANT "static-pie"
#include "hello.c"
