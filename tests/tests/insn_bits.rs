//! Differential tests of the shift/rotate and bit family: SHL SHR SAR ROL ROR RCL RCR SHLD
//! SHRD, BT BTS BTR BTC (register, immediate and far memory bit offsets), BSF BSR TZCNT
//! LZCNT POPCNT, the BMI1 group (ANDN BEXTR BLSI BLSMSK BLSR), BSWAP, XADD, CMPXCHG,
//! CMPXCHG8B, CMPXCHG16B (and its #GP), XLAT. Flags and results the SDM leaves open for an
//! input (`shift_vs`, `double_shift_vs`, `scan_vs`) compare only on an Intel host.

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

/// What a shift or rotate of a `size`-byte operand by `count` leaves open (SDM Vol. 2,
/// SAL/SAR/SHL/SHR and RCL/RCR/ROL/ROR "Flags Affected"): OF for a masked count other than
/// 0 or 1 (Intel and AMD differ, e.g. `rcr al, 9`, a rotation by 0 mod 9: AMD writes OF,
/// Intel changes no flag), and CF of SHL/SHR when the count reaches the operand's width.
fn shift_vs(op: &str, size: u32, count: u64) -> VendorSpecific {
    let c = count & if size == 8 { 0x3f } else { 0x1f };
    let mut vs = VendorSpecific::new("OF of a shift or rotate by a masked count above 1, CF of SHL/SHR by the operand width or more (SDM: undefined)");
    if c > 1 {
        vs = vs.flags(emu::cpu::flags::OF);
    }
    if matches!(op, "shl" | "shr") && c >= 8 * size as u64 {
        vs = vs.flags(emu::cpu::flags::CF);
    }
    vs
}

macro_rules! shift {
    ($name:ident, $op:ident) => {
        #[test]
        fn $name() {
            let op = stringify!($op);
            for (sn, r, size) in [
                (asm(|a| a.$op(rax, cl)), RAX, 8),
                (asm(|a| a.$op(edx, cl)), RDX, 4),
                (asm(|a| a.$op(bx, cl)), RBX, 2),
                (asm(|a| a.$op(al, cl)), RAX, 1),
                (asm(|a| a.$op(ah, cl)), RAX, 1),
                (asm(|a| a.$op(r9b, cl)), R9, 1),
            ] {
                let vs = |st: &State| shift_vs(op, size, st.gpr[RCX]);
                check_edges_vs(&sn, r, RCX, 0, |_, _| {}, vs);
                check_random_vs(&sn, N, count, vs);
            }
            for imm in IMMS {
                for (sn, size) in [
                    (asm(|a| a.$op(rax, imm)), 8),
                    (asm(|a| a.$op(edx, imm)), 4),
                    (asm(|a| a.$op(bx, imm)), 2),
                    (asm(|a| a.$op(al, imm)), 1),
                    (asm(|a| a.$op(ch, imm)), 1),
                    (asm(|a| a.$op(qword_ptr(rsi), imm)), 8),
                    (asm(|a| a.$op(word_ptr(rsi + 1), imm)), 2),
                ] {
                    check_random_vs(&sn, 40, data_ptr, |_| shift_vs(op, size, imm as u64));
                }
            }
            for (sn, size) in [(asm(|a| a.$op(dword_ptr(rsi), cl)), 4), (asm(|a| a.$op(byte_ptr(rsi + 7), cl)), 1)] {
                let setup = |r: &mut Rng, s: &mut State| {
                    data_ptr(r, s);
                    count(r, s)
                };
                check_random_vs(&sn, N, setup, |st| shift_vs(op, size, st.gpr[RCX]));
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

/// SHLD/SHRD leave OF undefined for a masked count above 1 (SDM Vol. 2 SHLD "Flags
/// Affected").
fn double_shift_vs(size: u32, count: u64) -> VendorSpecific {
    let c = count & if size == 8 { 0x3f } else { 0x1f };
    let vs = VendorSpecific::new("OF of SHLD/SHRD by a masked count above 1 (SDM: undefined)");
    if c > 1 {
        vs.flags(emu::cpu::flags::OF)
    } else {
        vs
    }
}

macro_rules! double_shift {
    ($name:ident, $op:ident) => {
        #[test]
        fn $name() {
            let setup = |r: &mut Rng, s: &mut State| {
                data_ptr(r, s);
                count(r, s)
            };
            for (sn, size) in [(asm(|a| a.$op(rax, rbx, cl)), 8), (asm(|a| a.$op(edx, esi, cl)), 4), (asm(|a| a.$op(qword_ptr(rsi), rdi, cl)), 8)] {
                check_random_vs(&sn, 2 * N, setup, |st| double_shift_vs(size, st.gpr[RCX]));
            }
            // 16-bit: counts above 16 give an undefined result; test 0..=16 only.
            for sn in [asm(|a| a.$op(ax, bx, cl)), asm(|a| a.$op(word_ptr(rsi), di, cl))] {
                let setup16 = |r: &mut Rng, s: &mut State| {
                    data_ptr(r, s);
                    s.gpr[RCX] = r.below(17) | (r.next() & !0x1f);
                };
                check_random_vs(&sn, 2 * N, setup16, |st| double_shift_vs(2, st.gpr[RCX]));
            }
            for imm in IMMS {
                for (sn, size) in [(asm(|a| a.$op(rax, rbx, imm)), 8), (asm(|a| a.$op(r10d, r11d, imm)), 4)] {
                    check_random_vs(&sn, 40, |_, _| {}, |_| double_shift_vs(size, imm as u64));
                }
                if imm <= 16 {
                    check_random_vs(&asm(|a| a.$op(cx, dx, imm)), 40, |_, _| {}, |_| double_shift_vs(2, imm as u64));
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

/// BSF/BSR of a zero source leave the destination undefined (SDM); Intel and AMD both
/// leave it unchanged, which is the model's choice, but only the vendor's own word counts.
fn scan_vs(op: &str, size: u32, dst: usize, src: u64) -> VendorSpecific {
    let vs = VendorSpecific::new("the destination of BSF/BSR with a zero source (SDM: undefined)");
    if matches!(op, "bsf" | "bsr") && src & if size == 8 { u64::MAX } else { (1 << (8 * size)) - 1 } == 0 {
        vs.gpr(dst, u64::MAX)
    } else {
        vs
    }
}

/// The host CPUID feature a scan instruction needs natively (without it, TZCNT and LZCNT
/// run as BSF and BSR and POPCNT is #UD).
fn scan_feature(op: &str) -> Option<HostFeature> {
    match op {
        "tzcnt" => Some(HostFeature::Bmi1),
        "lzcnt" => Some(HostFeature::Lzcnt),
        "popcnt" => Some(HostFeature::Popcnt),
        _ => None,
    }
}

macro_rules! scan {
    ($name:ident, $op:ident) => {
        #[test]
        fn $name() {
            let op = stringify!($op);
            if let Some(f) = scan_feature(op) {
                if !host_has(f) {
                    note_skipped(&format!("{op}: the host CPU lacks {f:?}"));
                    return;
                }
            }
            for (sn, size, dst) in [
                (asm(|a| a.$op(rax, rbx)), 8, RAX),
                (asm(|a| a.$op(eax, ebx)), 4, RAX),
                (asm(|a| a.$op(ax, bx)), 2, RAX),
                (asm(|a| a.$op(r8, qword_ptr(rsi))), 8, R8),
                (asm(|a| a.$op(r8d, dword_ptr(rsi))), 4, R8),
                (asm(|a| a.$op(r8w, word_ptr(rsi))), 2, R8),
            ] {
                check_random_vs(&sn, 2 * N, scan_src, |st| {
                    let src = if dst == R8 { st.read_u64(st.gpr[RSI]) } else { st.gpr[RBX] };
                    scan_vs(op, size, dst, src)
                });
            }
        }
    };
}

scan!(bsf, bsf);
scan!(bsr, bsr);
scan!(tzcnt, tzcnt);
scan!(lzcnt, lzcnt);
scan!(popcnt, popcnt);

/// The BMI1 group (reported in pagelab's CPUID): register and memory forms, 32 and 64 bits.
#[test]
fn bmi1() {
    if !host_has(HostFeature::Bmi1) {
        note_skipped("ANDN BEXTR BLSI BLSMSK BLSR: the host CPU lacks BMI1");
        return;
    }
    for (sn, x, y) in [
        (asm(|a| a.andn(rax, rbx, rcx)), RBX, RCX),
        (asm(|a| a.andn(r9d, r10d, r11d)), R10, R11),
        (asm(|a| a.blsi(rax, rbx)), RBX, RAX),
        (asm(|a| a.blsi(ecx, edx)), RDX, RCX),
        (asm(|a| a.blsmsk(rax, rbx)), RBX, RAX),
        (asm(|a| a.blsmsk(r8d, r9d)), R9, R8),
        (asm(|a| a.blsr(rax, rbx)), RBX, RAX),
        (asm(|a| a.blsr(esi, edi)), RDI, RSI),
    ] {
        check_edges(&sn, x, y, N, |_, _| {});
    }
    // BEXTR: start and length anywhere in 0..=255, mostly inside the operand.
    let ctl = |rng: &mut Rng, st: &mut State| {
        let (start, len) = if rng.below(4) == 0 { (rng.below(256), rng.below(256)) } else { (rng.below(70), rng.below(70)) };
        st.gpr[RCX] = (rng.next() & !0xffff) | len << 8 | start;
        data_ptr(rng, st);
    };
    for sn in [asm(|a| a.bextr(rax, rbx, rcx)), asm(|a| a.bextr(edx, ebx, ecx)), asm(|a| a.bextr(rax, qword_ptr(rsi), rcx)), asm(|a| a.bextr(edi, dword_ptr(rsi + 3), ecx))] {
        check_random(&sn, 4 * N, ctl);
    }
    for sn in [asm(|a| a.andn(rax, rbx, qword_ptr(rsi))), asm(|a| a.blsr(eax, dword_ptr(rsi))), asm(|a| a.blsi(rax, qword_ptr(rsi + 1)))] {
        check_random(&sn, N, data_ptr);
    }
}

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
