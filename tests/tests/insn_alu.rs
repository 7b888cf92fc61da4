//! Differential tests of the ALU family: ADD ADC SUB SBB CMP AND OR XOR TEST INC DEC NEG
//! NOT, in 8/16/32/64-bit register forms (high-byte registers included), with immediates
//! and with memory operands, natively and under pagelab.

use iced_x86::code_asm::*;
use pagelab_tests::insn::reg::*;
use pagelab_tests::insn::*;

/// Random cases per form after the edge-value cross product.
const N: usize = 100;

fn data_ptr(rng: &mut Rng, st: &mut State) {
    st.gpr[RSI] = DATA_VA + 0x100 + rng.below(0x3c00);
}

macro_rules! binop {
    ($name:ident, $op:ident) => {
        #[test]
        fn $name() {
            let regs: Vec<(Snippet, usize, usize)> = vec![
                (asm(|a| a.$op(rax, rbx)), RAX, RBX),
                (asm(|a| a.$op(eax, ecx)), RAX, RCX),
                (asm(|a| a.$op(dx, si)), RDX, RSI),
                (asm(|a| a.$op(al, bl)), RAX, RBX),
                (asm(|a| a.$op(ah, bh)), RAX, RBX),
                (asm(|a| a.$op(ch, dl)), RCX, RDX),
                (asm(|a| a.$op(r9b, sil)), R9, RSI),
                (asm(|a| a.$op(r10w, r11w)), R10, R11),
                (asm(|a| a.$op(r12d, r13d)), R12, R13),
                (asm(|a| a.$op(r14, r15)), R14, R15),
                (asm(|a| a.$op(rdi, rdi)), RDI, RAX),
            ];
            for (sn, x, y) in &regs {
                check_edges(sn, *x, *y, N, |_, _| {});
            }
            for imm in [0i32, 1, -1, 0x7f, -0x80, 0x7fff_ffff, i32::MIN, 0x1234_5678, -2] {
                for sn in [
                    asm(|a| a.$op(rax, imm)),
                    asm(|a| a.$op(ecx, imm)),
                    asm(|a| a.$op(dx, imm as i16 as i32)),
                    asm(|a| a.$op(bl, imm as i8 as i32)),
                    asm(|a| a.$op(ah, imm as i8 as i32)),
                    asm(|a| a.$op(r8, imm)),
                    asm(|a| a.$op(qword_ptr(rsi + 8), imm)),
                    asm(|a| a.$op(byte_ptr(rsi), imm as i8 as i32)),
                ] {
                    check_random(&sn, 30, data_ptr);
                }
            }
            for sn in [
                asm(|a| a.$op(qword_ptr(rsi), rax)),
                asm(|a| a.$op(dword_ptr(rsi + 3), ecx)),
                asm(|a| a.$op(word_ptr(rsi - 1), dx)),
                asm(|a| a.$op(byte_ptr(rsi), bh)),
            ] {
                check_random(&sn, N, data_ptr);
            }
        }
    };
}

macro_rules! reg_mem {
    ($name:ident, $op:ident) => {
        #[test]
        fn $name() {
            for sn in [
                asm(|a| a.$op(rax, qword_ptr(rsi))),
                asm(|a| a.$op(ecx, dword_ptr(rsi + 1))),
                asm(|a| a.$op(r9w, word_ptr(rsi + 2))),
                asm(|a| a.$op(ah, byte_ptr(rsi - 5))),
            ] {
                check_random(&sn, N, data_ptr);
            }
        }
    };
}

binop!(add, add);
binop!(adc, adc);
binop!(sub, sub);
binop!(sbb, sbb);
binop!(cmp, cmp);
binop!(and, and);
binop!(or, or);
binop!(xor, xor);
binop!(test, test);
reg_mem!(add_reg_mem, add);
reg_mem!(adc_reg_mem, adc);
reg_mem!(sub_reg_mem, sub);
reg_mem!(sbb_reg_mem, sbb);
reg_mem!(cmp_reg_mem, cmp);
reg_mem!(and_reg_mem, and);
reg_mem!(or_reg_mem, or);
reg_mem!(xor_reg_mem, xor);

macro_rules! unop {
    ($name:ident, $op:ident) => {
        #[test]
        fn $name() {
            for (sn, r) in [
                (asm(|a| a.$op(rax)), RAX),
                (asm(|a| a.$op(ecx)), RCX),
                (asm(|a| a.$op(dx)), RDX),
                (asm(|a| a.$op(bl)), RBX),
                (asm(|a| a.$op(ah)), RAX),
                (asm(|a| a.$op(r9b)), R9),
                (asm(|a| a.$op(r13)), R13),
            ] {
                check_edges(&sn, r, RDI, 20, |_, _| {});
            }
            for sn in [
                asm(|a| a.$op(qword_ptr(rsi))),
                asm(|a| a.$op(dword_ptr(rsi + 1))),
                asm(|a| a.$op(word_ptr(rsi + 2))),
                asm(|a| a.$op(byte_ptr(rsi + 3))),
            ] {
                check_random(&sn, N, data_ptr);
            }
        }
    };
}

unop!(inc, inc);
unop!(dec, dec);
unop!(neg, neg);
unop!(not, not);

/// Flags flow between instructions: a carry chain and a compare-and-branch.
#[test]
fn carry_chain() {
    let sn = asm(|a| {
        a.add(rax, rbx)?;
        a.adc(rcx, rdx)?;
        a.sbb(r8, r9)?;
        a.adc(r10d, r11d)?;
        a.sbb(r12b, r13b)
    });
    check_random(&sn, 500, |_, _| {});
}
