//! Differential tests of the shift/rotate and bit family: SHL SHR SAR ROL ROR RCL RCR SHLD
//! SHRD, BT BTS BTR BTC (register, immediate and far memory bit offsets), BSF BSR TZCNT
//! LZCNT POPCNT, BSWAP, XADD, CMPXCHG, CMPXCHG8B, CMPXCHG16B (and its #GP), XLAT.

use iced_x86::code_asm::*;
use pagelab_tests::insn::reg::*;
use pagelab_tests::insn::*;

const N: usize = 150;

fn data_ptr(rng: &mut Rng, st: &mut State) {
    st.gpr[RSI] = DATA_VA + 0x1000 + rng.below(0x2000);
}

/// A shift count: mostly small (every interesting boundary), sometimes anything.
fn count(rng: &mut Rng, st: &mut State) {
    st.gpr[RCX] = if rng.below(4) == 0 { rng.next() } else { rng.below(70) };
}

const IMMS: [i32; 14] = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63];

macro_rules! shift {
    ($name:ident, $op:ident) => {
        #[test]
        fn $name() {
            for (sn, r) in [
                (asm(|a| a.$op(rax, cl)), RAX),
                (asm(|a| a.$op(edx, cl)), RDX),
                (asm(|a| a.$op(bx, cl)), RBX),
                (asm(|a| a.$op(al, cl)), RAX),
                (asm(|a| a.$op(ah, cl)), RAX),
                (asm(|a| a.$op(r9b, cl)), R9),
            ] {
                check_edges(&sn, r, RCX, 0, |_, _| {});
                check_random(&sn, N, count);
            }
            for imm in IMMS {
                for sn in [
                    asm(|a| a.$op(rax, imm)),
                    asm(|a| a.$op(edx, imm)),
                    asm(|a| a.$op(bx, imm)),
                    asm(|a| a.$op(al, imm)),
                    asm(|a| a.$op(ch, imm)),
                    asm(|a| a.$op(qword_ptr(rsi), imm)),
                    asm(|a| a.$op(word_ptr(rsi + 1), imm)),
                ] {
                    check_random(&sn, 40, data_ptr);
                }
            }
            for sn in [asm(|a| a.$op(dword_ptr(rsi), cl)), asm(|a| a.$op(byte_ptr(rsi + 7), cl))] {
                check_random(&sn, N, |r, s| {
                    data_ptr(r, s);
                    count(r, s)
                });
            }
        }
    };
}

shift!(shl, shl);
shift!(shr, shr);
shift!(sar, sar);
shift!(rol, rol);
shift!(ror, ror);
shift!(rcl, rcl);
shift!(rcr, rcr);

/// Back-to-back shifts by 1: OF of each is defined and feeds nothing, CF feeds RCL/RCR.
#[test]
fn shift_chain() {
    let sn = asm(|a| {
        a.shl(rax, 1)?;
        a.rcl(rbx, 1)?;
        a.rcr(ecx, 1)?;
        a.sar(dx, 1)?;
        a.shr(sil, 1)?;
        a.rol(r8d, 1)?;
        a.ror(r9w, 1)
    });
    check_random(&sn, 1000, |_, _| {});
}

macro_rules! double_shift {
    ($name:ident, $op:ident) => {
        #[test]
        fn $name() {
            for sn in [asm(|a| a.$op(rax, rbx, cl)), asm(|a| a.$op(edx, esi, cl)), asm(|a| a.$op(qword_ptr(rsi), rdi, cl))] {
                check_random(&sn, 2 * N, |r, s| {
                    data_ptr(r, s);
                    count(r, s)
                });
            }
            // 16-bit: counts above 16 give an undefined result; test 0..=16 only.
            for sn in [asm(|a| a.$op(ax, bx, cl)), asm(|a| a.$op(word_ptr(rsi), di, cl))] {
                check_random(&sn, 2 * N, |r, s| {
                    data_ptr(r, s);
                    s.gpr[RCX] = r.below(17) | (r.next() & !0x1f);
                });
            }
            for imm in IMMS {
                for sn in [asm(|a| a.$op(rax, rbx, imm)), asm(|a| a.$op(r10d, r11d, imm))] {
                    check_random(&sn, 40, |_, _| {});
                }
                if imm <= 16 {
                    check_random(&asm(|a| a.$op(cx, dx, imm)), 40, |_, _| {});
                }
            }
        }
    };
}

double_shift!(shld, shld);
double_shift!(shrd, shrd);

/// A register bit offset into memory: anywhere within +-2 KiB of RSI, negative included.
fn bit_offset(rng: &mut Rng, st: &mut State) {
    st.gpr[RSI] = DATA_VA + 0x2000;
    let bits = rng.below(2 * 0x800 * 8) as i64 - 0x800 * 8;
    st.gpr[RBX] = bits as u64;
}

macro_rules! bit_test {
    ($name:ident, $op:ident) => {
        #[test]
        fn $name() {
            for (sn, r) in [
                (asm(|a| a.$op(rax, rbx)), RAX),
                (asm(|a| a.$op(ecx, edx)), RCX),
                (asm(|a| a.$op(r9w, r10w)), R9),
            ] {
                check_edges(&sn, r, RBX, N, |_, _| {});
                check_edges(&sn, r, RDX, 0, |_, _| {});
                check_edges(&sn, r, R10, 0, |_, _| {});
            }
            for imm in [0, 1, 7, 15, 16, 31, 32, 63, 64, 100, 255] {
                for sn in [asm(|a| a.$op(rax, imm)), asm(|a| a.$op(esi, imm)), asm(|a| a.$op(di, imm)), asm(|a| a.$op(dword_ptr(rsi + 2), imm))] {
                    check_random(&sn, 30, data_ptr);
                }
            }
            for sn in [asm(|a| a.$op(qword_ptr(rsi), rbx)), asm(|a| a.$op(dword_ptr(rsi + 1), ebx)), asm(|a| a.$op(word_ptr(rsi - 3), bx))] {
                check_random(&sn, 2 * N, bit_offset);
            }
        }
    };
}

bit_test!(bt, bt);
bit_test!(bts, bts);
bit_test!(btr, btr);
bit_test!(btc, btc);

/// A source that is zero a third of the time, a single bit or an edge value otherwise.
fn scan_src(rng: &mut Rng, st: &mut State) {
    st.gpr[RBX] = match rng.below(3) {
        0 => 0,
        1 => 1 << rng.below(64),
        _ => rng.operand(),
    };
    if rng.below(4) == 0 {
        st.gpr[RBX] &= 0xffff_0000_0000_0000;
    }
    data_ptr(rng, st);
    if rng.below(3) == 0 {
        st.write_u64(st.gpr[RSI], 0);
    }
}

macro_rules! scan {
    ($name:ident, $op:ident) => {
        #[test]
        fn $name() {
            for sn in [
                asm(|a| a.$op(rax, rbx)),
                asm(|a| a.$op(eax, ebx)),
                asm(|a| a.$op(ax, bx)),
                asm(|a| a.$op(r8, qword_ptr(rsi))),
                asm(|a| a.$op(r8d, dword_ptr(rsi))),
                asm(|a| a.$op(r8w, word_ptr(rsi))),
            ] {
                check_random(&sn, 2 * N, scan_src);
            }
        }
    };
}

scan!(bsf, bsf);
scan!(bsr, bsr);
scan!(tzcnt, tzcnt);
scan!(lzcnt, lzcnt);
scan!(popcnt, popcnt);

#[test]
fn bswap() {
    for sn in [asm(|a| a.bswap(rax)), asm(|a| a.bswap(ecx)), asm(|a| a.bswap(r9)), asm(|a| a.bswap(r10d))] {
        check_random(&sn, N, |_, _| {});
    }
}

#[test]
fn xadd() {
    for (sn, x, y) in [
        (asm(|a| a.xadd(rax, rbx)), RAX, RBX),
        (asm(|a| a.xadd(ecx, edx)), RCX, RDX),
        (asm(|a| a.xadd(si, di)), RSI, RDI),
        (asm(|a| a.xadd(ah, bl)), RAX, RBX),
        (asm(|a| a.xadd(r9, r9)), R9, R10),
    ] {
        check_edges(&sn, x, y, N, |_, _| {});
    }
    for sn in [asm(|a| a.xadd(qword_ptr(rsi), rax)), asm(|a| a.lock().xadd(dword_ptr(rsi + 4), ecx)), asm(|a| a.xadd(byte_ptr(rsi + 1), dh))] {
        check_random(&sn, N, data_ptr);
    }
}

/// Half the time the accumulator equals the destination, so both outcomes are covered.
fn cmpxchg_setup(rng: &mut Rng, st: &mut State) {
    data_ptr(rng, st);
    if rng.below(2) == 0 {
        st.gpr[RAX] = st.gpr[RDX];
    }
    if rng.below(2) == 0 {
        let m = st.read_u64(st.gpr[RSI]);
        st.gpr[RAX] = m;
    }
}

#[test]
fn cmpxchg() {
    for sn in [
        asm(|a| a.cmpxchg(rdx, rbx)),
        asm(|a| a.cmpxchg(edx, ebx)),
        asm(|a| a.cmpxchg(dx, bx)),
        asm(|a| a.cmpxchg(dl, bh)),
        asm(|a| a.cmpxchg(qword_ptr(rsi), rbx)),
        asm(|a| a.lock().cmpxchg(dword_ptr(rsi), ebx)),
        asm(|a| a.cmpxchg(word_ptr(rsi), bx)),
        asm(|a| a.lock().cmpxchg(byte_ptr(rsi), cl)),
    ] {
        check_random(&sn, 2 * N, cmpxchg_setup);
    }
}

#[test]
fn cmpxchg8b_16b() {
    let setup = |rng: &mut Rng, st: &mut State| {
        st.gpr[RSI] = DATA_VA + 0x1000 + rng.below(0x100) * 16;
        if rng.below(2) == 0 {
            st.gpr[RAX] = st.read_u64(st.gpr[RSI]) & if rng.below(2) == 0 { 0xffff_ffff } else { u64::MAX };
            st.gpr[RDX] = st.read_u64(st.gpr[RSI] + 8);
            if rng.below(2) == 0 {
                st.gpr[RDX] = st.read_u64(st.gpr[RSI]) >> 32;
            }
        }
    };
    for sn in [asm(|a| a.cmpxchg16b(xmmword_ptr(rsi))), asm(|a| a.lock().cmpxchg16b(xmmword_ptr(rsi))), asm(|a| a.cmpxchg8b(qword_ptr(rsi))), asm(|a| a.lock().cmpxchg8b(qword_ptr(rsi + 3)))] {
        check_random(&sn, 2 * N, setup);
    }
    // CMPXCHG16B needs a 16-byte aligned operand: #GP(0), nothing changed.
    let sn = asm(|a| a.lock().cmpxchg16b(xmmword_ptr(rsi + 8)));
    let mut emu = Emu::new(&sn);
    let mut rng = Rng::new(7);
    for _ in 0..20 {
        let mut st = random_state(&mut rng);
        setup(&mut rng, &mut st);
        expect_fault(&sn, &mut emu, &st, emu::cpu::Exception::GeneralProtection(0));
    }
}

#[test]
fn xlat() {
    let sn = asm(|a| a.xlatb());
    check_random(&sn, N, |rng, st| st.gpr[RBX] = DATA_VA + rng.below(0x3f00));
}
