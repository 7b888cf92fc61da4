//! Differential tests of MUL, IMUL (one-, two- and three-operand forms), DIV and IDIV in all
//! sizes, and #DE: inputs that would fault natively are run under pagelab only and must stop
//! with `DivideError`, changing nothing.

use emu::cpu::Exception;
use iced_x86::code_asm::*;
use pagelab_tests::insn::reg::*;
use pagelab_tests::insn::*;

const N: usize = 300;

fn data_ptr(rng: &mut Rng, st: &mut State) {
    st.gpr[RSI] = DATA_VA + 0x100 + rng.below(0x3c00);
}

#[test]
fn mul() {
    for (sn, r) in [
        (asm(|a| a.mul(rbx)), RBX),
        (asm(|a| a.mul(ebx)), RBX),
        (asm(|a| a.mul(bx)), RBX),
        (asm(|a| a.mul(bl)), RBX),
        (asm(|a| a.mul(ch)), RCX),
        (asm(|a| a.mul(r9)), R9),
    ] {
        check_edges(&sn, RAX, r, N, |_, _| {});
    }
    for sn in [asm(|a| a.mul(qword_ptr(rsi))), asm(|a| a.mul(dword_ptr(rsi))), asm(|a| a.mul(word_ptr(rsi))), asm(|a| a.mul(byte_ptr(rsi)))] {
        check_random(&sn, N, data_ptr);
    }
}

#[test]
fn imul() {
    for (sn, x, y) in [
        (asm(|a| a.imul(rbx)), RAX, RBX),
        (asm(|a| a.imul(ebx)), RAX, RBX),
        (asm(|a| a.imul(bx)), RAX, RBX),
        (asm(|a| a.imul(bl)), RAX, RBX),
        (asm(|a| a.imul(ah)), RAX, RBX),
        (asm(|a| a.imul_2(rcx, rdx)), RCX, RDX),
        (asm(|a| a.imul_2(ecx, edx)), RCX, RDX),
        (asm(|a| a.imul_2(cx, dx)), RCX, RDX),
        (asm(|a| a.imul_2(r10, r10)), R10, R11),
    ] {
        check_edges(&sn, x, y, N, |_, _| {});
    }
    for imm in [0, 1, -1, 2, 0x7f, -0x80, 0x7fff, -0x8000, 0x7fff_ffff, i32::MIN, 0x1234_5678] {
        for (sn, r) in [
            (asm(|a| a.imul_3(rcx, rdx, imm)), RDX),
            (asm(|a| a.imul_3(ecx, edx, imm)), RDX),
            (asm(|a| a.imul_3(cx, dx, imm as i16 as i32)), RDX),
            (asm(|a| a.imul_3(r8, qword_ptr(rsi), imm)), RSI),
        ] {
            let _ = r;
            check_random(&sn, 60, data_ptr);
        }
    }
    for sn in [asm(|a| a.imul(qword_ptr(rsi))), asm(|a| a.imul(byte_ptr(rsi))), asm(|a| a.imul_2(edi, dword_ptr(rsi))), asm(|a| a.imul_2(di, word_ptr(rsi)))] {
        check_random(&sn, N, data_ptr);
    }
}

/// Whether DIV/IDIV of rDX:rAX (AX for bytes) by `d` faults, computed independently of the
/// emulator from the SDM's definition.
fn div_faults(signed: bool, size: u32, st: &State, d: u64) -> bool {
    let bits = size * 8;
    let m = if size == 8 { u64::MAX } else { (1u64 << bits) - 1 };
    let d = d & m;
    if d == 0 {
        return true;
    }
    let (hi, lo) = if size == 1 { ((st.gpr[RAX] >> 8) & 0xff, st.gpr[RAX] & 0xff) } else { (st.gpr[RDX] & m, st.gpr[RAX] & m) };
    let n = ((hi as u128) << bits) | lo as u128;
    if !signed {
        return n / d as u128 > m as u128;
    }
    let sx = |v: u128, w: u32| ((v << (128 - w)) as i128) >> (128 - w);
    let (n, d) = (sx(n, 2 * bits), sx(d as u128, bits));
    if n == i128::MIN && d == -1 {
        return true;
    }
    let q = n / d;
    q < -(1i128 << (bits - 1)) || q >= (1i128 << (bits - 1))
}

/// Runs a one-instruction DIV/IDIV over random and edge inputs: the differential check where
/// it does not fault, `expect_fault(DivideError)` where it does. Both outcomes must occur.
fn div_form(sn: &Snippet, signed: bool, size: u32, divisor: impl Fn(&State) -> u64, setup: impl Fn(&mut Rng, &mut State)) {
    let mut emu = Emu::new(sn);
    let mut rng = Rng::new(size as u64 * 2 + signed as u64);
    let (mut faults, mut ok) = (0, 0);
    for i in 0..3 * N {
        let mut st = random_state(&mut rng);
        // Small high halves make most divisions fit; edge values make many not.
        match i % 4 {
            0 => st.gpr[RDX] = 0,
            1 => st.gpr[RDX] = if signed && st.gpr[RAX] >> 63 != 0 { u64::MAX } else { 0 },
            _ => {}
        }
        setup(&mut rng, &mut st);
        if div_faults(signed, size, &st, divisor(&st)) {
            faults += 1;
            expect_fault(sn, &mut emu, &st, Exception::DivideError);
        } else {
            ok += 1;
            check(sn, &mut emu, &st);
        }
    }
    assert!(faults > 0 && ok > 0, "{}: {faults} faulting and {ok} completing cases", sn.text);
}

#[test]
fn div() {
    div_form(&asm(|a| a.div(rbx)), false, 8, |s| s.gpr[RBX], |_, _| {});
    div_form(&asm(|a| a.div(ebx)), false, 4, |s| s.gpr[RBX], |_, _| {});
    div_form(&asm(|a| a.div(bx)), false, 2, |s| s.gpr[RBX], |_, _| {});
    div_form(&asm(|a| a.div(bl)), false, 1, |s| s.gpr[RBX], |_, _| {});
    div_form(&asm(|a| a.div(bh)), false, 1, |s| s.gpr[RBX] >> 8, |_, _| {});
    div_form(&asm(|a| a.div(qword_ptr(rsi))), false, 8, |s| s.read_u64(s.gpr[RSI]), data_ptr);
    div_form(&asm(|a| a.div(byte_ptr(rsi))), false, 1, |s| s.read_u64(s.gpr[RSI]), data_ptr);
}

#[test]
fn idiv() {
    div_form(&asm(|a| a.idiv(rbx)), true, 8, |s| s.gpr[RBX], |_, _| {});
    div_form(&asm(|a| a.idiv(ebx)), true, 4, |s| s.gpr[RBX], |_, _| {});
    div_form(&asm(|a| a.idiv(bx)), true, 2, |s| s.gpr[RBX], |_, _| {});
    div_form(&asm(|a| a.idiv(bl)), true, 1, |s| s.gpr[RBX], |_, _| {});
    div_form(&asm(|a| a.idiv(dword_ptr(rsi))), true, 4, |s| s.read_u64(s.gpr[RSI]), data_ptr);
    div_form(&asm(|a| a.idiv(word_ptr(rsi))), true, 2, |s| s.read_u64(s.gpr[RSI]), data_ptr);
}

/// The classic IDIV overflow: the most negative dividend by -1.
#[test]
fn idiv_most_negative_by_minus_one() {
    let sn = asm(|a| a.idiv(rcx));
    let mut emu = Emu::new(&sn);
    let mut st = random_state(&mut Rng::new(1));
    st.gpr[RAX] = 0;
    st.gpr[RDX] = 0x8000_0000_0000_0000;
    st.gpr[RCX] = u64::MAX;
    expect_fault(&sn, &mut emu, &st, Exception::DivideError);
    st.gpr[RAX] = 0x8000_0000_0000_0000;
    st.gpr[RDX] = u64::MAX;
    expect_fault(&sn, &mut emu, &st, Exception::DivideError);
    st.gpr[RCX] = 1;
    check(&sn, &mut emu, &st);
}
