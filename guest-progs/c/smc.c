// smc: self-modifying code. Machine code is written into an mmap'd page and called;
// its bytes are then rewritten (from C, and by the generated code itself) and it is
// called again. An emulator that caches decoded instructions must notice every write.
#include "pl.h"
#include <sys/mman.h>

typedef int (*fn)(void);

static unsigned char *page;

static void emit(size_t off, const unsigned char *code, size_t n) {
    memcpy(page + off, code, n);
    __builtin___clear_cache((char *)page + off, (char *)page + off + n);
}

static void put32(size_t off, uint32_t v) {
    memcpy(page + off, &v, 4);
    __builtin___clear_cache((char *)page + off, (char *)page + off + 4);
}

static int call(size_t off) { return ((fn)(void *)(page + off))(); }

int main(void) {
    page = mmap(NULL, 8192, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        printf("mmap RWX failed: %s\n", pl_errname(errno));
        return 1;
    }

    /* 1. mov eax, imm32; ret -- patched from C between calls. */
    static const unsigned char f_const[] = {0xb8, 0x11, 0x11, 0x11, 0x11, 0xc3};
    emit(0, f_const, sizeof f_const);
    int a = call(0);
    put32(1, 0x2a);
    int b = call(0);
    put32(1, (uint32_t)-5);
    int c = call(0);
    printf("patched from C: %#x %d %d\n", a, b, c);

    /* 2. Rewrite the whole function with a different one at the same address:
     *    mov eax, 7; add eax, eax; ret  (returns 14)                     */
    static const unsigned char f_other[] = {0xb8, 0x07, 0x00, 0x00, 0x00, 0x01, 0xc0, 0xc3};
    emit(0, f_other, sizeof f_other);
    printf("rewritten function: %d\n", call(0));

    /* 3. Code that patches the very next instruction, in the same straight-line
     *    block it is executing:
     *      mov dword [rip+1], 0x22222222 ; overwrites the imm32 below
     *      mov eax, 0x33333333
     *      ret                                                           */
    static const unsigned char f_selfpatch[] = {
        0xc7, 0x05, 0x01, 0x00, 0x00, 0x00, 0x22, 0x22, 0x22, 0x22,
        0xb8, 0x33, 0x33, 0x33, 0x33, 0xc3};
    emit(64, f_selfpatch, sizeof f_selfpatch);
    int s1 = call(64);
    int s2 = call(64);
    printf("self-patching next instruction: %#x %#x\n", s1, s2);

    /* 4. A function that increments its own return value on every call:
     *      add dword [rip+1], 1 ; the imm32 of the mov below
     *      mov eax, 100
     *      ret                                                           */
    static const unsigned char f_selfinc[] = {
        0x83, 0x05, 0x01, 0x00, 0x00, 0x00, 0x01,
        0xb8, 0x64, 0x00, 0x00, 0x00, 0xc3};
    emit(128, f_selfinc, sizeof f_selfinc);
    printf("self-incrementing:");
    for (int i = 0; i < 5; i++) printf(" %d", call(128));
    printf("\n");

    /* 5. A loop whose body rewrites an instruction of the same body:
     *        xor edx, edx
     *        mov ecx, 10
     *   L:   mov eax, 5          ; imm32 bumped by 3 each iteration
     *        add edx, eax
     *        add dword [rip-13], 3   ; -> imm32 of the mov at L
     *        dec ecx
     *        jnz L
     *        mov eax, edx
     *        ret
     *    Expected: 5+8+...+32 = 185.                                     */
    static const unsigned char f_loop[] = {
        0x31, 0xd2,
        0xb9, 0x0a, 0x00, 0x00, 0x00,
        0xb8, 0x05, 0x00, 0x00, 0x00,
        0x01, 0xc2,
        0x83, 0x05, 0xf3, 0xff, 0xff, 0xff, 0x03,
        0xff, 0xc9,
        0x75, 0xee,
        0x89, 0xd0,
        0xc3};
    emit(192, f_loop, sizeof f_loop);
    int l1 = call(192);
    int l2 = call(192); /* the imm32 now starts at 35 */
    printf("self-modifying loop: %d %d\n", l1, l2);

    /* 6. Code on the second page patches a function on the first page:
     *      mov dword [rip+disp], 0x5a5a ; -> imm32 of f_const at offset 0
     *      ret                                                           */
    emit(0, f_const, sizeof f_const);
    unsigned char patcher[11] = {0xc7, 0x05, 0, 0, 0, 0, 0x5a, 0x5a, 0x00, 0x00, 0xc3};
    int32_t disp = (int32_t)(1 - (4096 + 10)); /* target offset 1, next rip 4096+10 */
    memcpy(patcher + 2, &disp, 4);
    emit(4096, patcher, sizeof patcher);
    int p1 = call(0);
    call(4096);
    int p2 = call(0);
    printf("cross-page patch: %#x %#x\n", p1, p2);

    /* 7. W^X discipline: write while RW, execute while RX, repeat. */
    if (mprotect(page, 8192, PROT_READ | PROT_EXEC) != 0) printf("mprotect RX failed\n");
    int w1 = call(0);
    if (mprotect(page, 8192, PROT_READ | PROT_WRITE) != 0) printf("mprotect RW failed\n");
    put32(1, 1234);
    if (mprotect(page, 8192, PROT_READ | PROT_EXEC) != 0) printf("mprotect RX failed\n");
    int w2 = call(0);
    printf("W^X patch: %#x %d\n", w1, w2);

    munmap(page, 8192);
    int ok = a == 0x11111111 && b == 42 && c == -5 && s1 == 0x22222222 && s2 == 0x22222222 &&
             l1 == 185 && l2 == 35 * 10 + 3 * 45 && p1 == 0x11111111 && p2 == 0x5a5a &&
             w1 == 0x5a5a && w2 == 1234;
    printf("all as expected: %s\n", ok ? "yes" : "no");
    return ok ? 0 : 1;
}
