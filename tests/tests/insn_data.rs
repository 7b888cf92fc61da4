//! Differential tests of data movement and control flow: MOV MOVZX MOVSX MOVSXD LEA XCHG
//! CMOVcc SETcc CBW..CQO PUSH POP, and Jcc/LOOP/JRCXZ/CALL/RET observed through the registers
//! a branch sets.

use iced_x86::code_asm::*;
use pagelab_tests::insn::reg::*;
use pagelab_tests::insn::*;

const N: usize = 100;

fn data_ptr(rng: &mut Rng, st: &mut State) {
    st.gpr[RSI] = DATA_VA + 0x100 + rng.below(0x3c00);
}

#[test]
fn moves() {
    for sn in [
        asm(|a| a.mov(rax, rbx)),
        asm(|a| a.mov(eax, ebx)),
        asm(|a| a.mov(ax, bx)),
        asm(|a| a.mov(ah, bl)),
        asm(|a| a.mov(r9b, sil)),
        asm(|a| a.mov(rax, 0x1234_5678_9abc_def0u64)),
        asm(|a| a.mov(ecx, -1)),
        asm(|a| a.mov(rcx, -1i64)),
        asm(|a| a.mov(qword_ptr(rsi), rdx)),
        asm(|a| a.mov(dword_ptr(rsi + 1), -5)),
        asm(|a| a.mov(dh, byte_ptr(rsi))),
        asm(|a| a.movzx(eax, bl)),
        asm(|a| a.movzx(eax, bh)),
        asm(|a| a.movzx(ax, cl)),
        asm(|a| a.movzx(r8d, word_ptr(rsi))),
        asm(|a| a.movsx(eax, bl)),
        asm(|a| a.movsx(eax, bh)),
        asm(|a| a.movsx(ax, cl)),
        asm(|a| a.movsx(r8, word_ptr(rsi))),
        asm(|a| a.movsxd(rax, ebx)),
        asm(|a| a.movsxd(r10, dword_ptr(rsi))),
        asm(|a| a.lea(rax, qword_ptr(rbx + rcx * 4 + 0x10))),
        asm(|a| a.lea(eax, qword_ptr(rbx + rcx * 8 - 1))),
        asm(|a| a.lea(ax, qword_ptr(rbx + rdx))),
        asm(|a| a.lea(rax, qword_ptr(ebx + ecx * 2 + 0x7000_0000))),
        asm(|a| a.lea(eax, qword_ptr(ebx - 1))),
        asm(|a| a.xchg(rax, rbx)),
        asm(|a| a.xchg(ecx, edx)),
        asm(|a| a.xchg(ah, bl)),
        asm(|a| a.xchg(qword_ptr(rsi), rdi)),
        asm(|a| a.xchg(word_ptr(rsi), di)),
        asm(|a| a.cbw()),
        asm(|a| a.cwde()),
        asm(|a| a.cdqe()),
        asm(|a| a.cwd()),
        asm(|a| a.cdq()),
        asm(|a| a.cqo()),
    ] {
        check_random(&sn, N, data_ptr);
    }
}

macro_rules! cond_forms {
    ($($cmov:ident $set:ident $j:ident),*) => {
        #[test]
        fn cmovcc_setcc_jcc() {
            $(
                for sn in [
                    asm(|a| a.$cmov(rax, rbx)),
                    asm(|a| a.$cmov(eax, ebx)),
                    asm(|a| a.$cmov(ax, bx)),
                    asm(|a| a.$cmov(ecx, dword_ptr(rsi))),
                    asm(|a| a.$set(al)),
                    asm(|a| a.$set(bh)),
                    asm(|a| a.$set(byte_ptr(rsi))),
                    asm(|a| {
                        let mut skip = a.create_label();
                        a.$j(skip)?;
                        a.mov(eax, 1)?;
                        a.set_label(&mut skip)?;
                        a.nop()
                    }),
                    asm(|a| {
                        // After a compare: the condition codes as compilers use them.
                        a.cmp(rbx, rcx)?;
                        a.$set(dl)?;
                        a.$cmov(rdi, rbx)
                    }),
                ] {
                    check_random(&sn, 64, data_ptr);
                }
            )*
        }
    };
}

cond_forms!(
    cmovo seto jo, cmovno setno jno, cmovb setb jb, cmovae setae jae, cmove sete je, cmovne setne jne,
    cmovbe setbe jbe, cmova seta ja, cmovs sets js, cmovns setns jns, cmovp setp jp, cmovnp setnp jnp,
    cmovl setl jl, cmovge setge jge, cmovle setle jle, cmovg setg jg
);

#[test]
fn stack() {
    for sn in [
        asm(|a| {
            a.push(rax)?;
            a.push(rbx)?;
            a.pop(rcx)?;
            a.pop(rdx)
        }),
        asm(|a| {
            a.push(-5)?;
            a.push(0x1234)?;
            a.pop(r8)?;
            a.pop(qword_ptr(rsi))
        }),
        asm(|a| {
            a.push(qword_ptr(rsi))?;
            a.push(word_ptr(rsi + 8))?;
            a.pop(ax)?;
            a.pop(r9)
        }),
        asm(|a| {
            a.pushfq()?;
            a.pop(rax)?;
            a.push(rbx)?;
            a.popfq()
        }),
        asm(|a| {
            a.push(rsp)?;
            a.pop(rax)?;
            a.lahf()?;
            a.mov(ebx, eax)?;
            a.sahf()
        }),
    ] {
        check_random(&sn, N, |rng, st| {
            data_ptr(rng, st);
            // POPF of random bits: keep TF, AC, ID and the reserved ones out of it.
            st.gpr[RBX] &= 0xcd5 | 0x400;
        });
    }
}

#[test]
fn control() {
    for sn in [
        // LOOP/JRCXZ counting RCX down while accumulating.
        asm(|a| {
            let mut top = a.create_label();
            let mut done = a.create_label();
            a.and(ecx, 31)?;
            a.jrcxz(done)?;
            a.set_label(&mut top)?;
            a.add(rax, rcx)?;
            a.loop_(top)?;
            a.set_label(&mut done)?;
            a.nop()
        }),
        // CALL/RET through the stack, and an indirect jump.
        asm(|a| {
            let mut f = a.create_label();
            let mut out = a.create_label();
            a.call(f)?;
            a.jmp(out)?;
            a.set_label(&mut f)?;
            a.mov(rdx, qword_ptr(rsp))?;
            a.add(rax, rbx)?;
            a.ret()?;
            a.set_label(&mut out)?;
            a.lea(rcx, qword_ptr(out))?;
            a.nop()
        }),
        // A compare-and-branch loop: count how many of 16 data words exceed RBX.
        asm(|a| {
            let mut top = a.create_label();
            let mut skip = a.create_label();
            a.xor(eax, eax)?;
            a.mov(ecx, 16)?;
            a.set_label(&mut top)?;
            a.cmp(qword_ptr(rsi + rcx * 8 - 8), rbx)?;
            a.jle(skip)?;
            a.inc(eax)?;
            a.set_label(&mut skip)?;
            a.dec(ecx)?;
            a.jnz(top)
        }),
    ] {
        check_random(&sn, N, data_ptr);
    }
}

/// The hint-NOP space (0F 0D, 0F 18-1F) executes as NOPs, memory operands untouched (a
/// wild pointer in RAX): prefetches, reserved NOPs, the BND* encodings, CLDEMOTE, ENDBR and
/// RDSSPD/RDSSPQ, which leave their destination as it was. Natively this needs shadow
/// stacks off for the process, which they are for the test binary (Linux enables them only
/// on request, arch_prctl ARCH_SHSTK_ENABLE), on Intel and AMD hosts alike; libgcc's
/// unwinder relies on it before every C++ throw or Rust panic.
#[test]
fn hint_nop_space() {
    let wild = |rng: &mut Rng, st: &mut State| {
        st.gpr[RAX] = 0xdead_0000_0000 + rng.below(0x1000) * 8;
    };
    for bytes in [
        &[0x0f, 0x0d, 0x08][..],             // prefetchw [rax]
        &[0x0f, 0x0d, 0x00],                 // prefetch [rax] (0F 0D /0)
        &[0x0f, 0x18, 0x00],                 // prefetchnta [rax]
        &[0x0f, 0x18, 0x20],                 // 0F 18 /4: reserved NOP
        &[0x0f, 0x19, 0x04, 0x20],           // 0F 19 with SIB
        &[0x0f, 0x1a, 0xc0],                 // 0F 1A (BNDLDX/BNDMOV without MPX)
        &[0x66, 0x0f, 0x1a, 0x00],           // 66 0F 1A (BNDMOV bnd, m)
        &[0xf3, 0x0f, 0x1b, 0x00],           // F3 0F 1B (BNDMK)
        &[0x0f, 0x1c, 0x00],                 // CLDEMOTE [rax]
        &[0x0f, 0x1d, 0xc1],                 // 0F 1D, register form
        &[0x0f, 0x1e, 0x08],                 // 0F 1E /1 without F3
        &[0xf3, 0x0f, 0x1e, 0xfa],           // ENDBR64
        &[0xf3, 0x0f, 0x1e, 0xfb],           // ENDBR32
        &[0xf3, 0x48, 0x0f, 0x1e, 0xc8],     // RDSSPQ rax
        &[0xf3, 0x49, 0x0f, 0x1e, 0xcb],     // RDSSPQ r11
        &[0xf3, 0x0f, 0x1e, 0xc9],           // RDSSPD ecx
        &[0x0f, 0x1f, 0x44, 0x00, 0x00],     // the long NOP
        &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0, 0, 0, 0],
    ] {
        check_random(&asm(|a| a.db(bytes)), 20, wild);
    }
}
