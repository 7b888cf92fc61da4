//! Differential tests of the SSE/SSE2 family, natively and under pagelab: every
//! instruction glibc and gcc -O2 use, in register and memory forms, over floating-point edge
//! values (signed zeros, subnormals, infinities, quiet and signalling NaNs with payloads,
//! integer-conversion boundaries) crossed pairwise, then random operands under random
//! MXCSR rounding modes.
//!
//! The harness compares GPRs, flags and memory, so each snippet brings its XMM and MXCSR
//! state through memory: it loads MXCSR and XMM0-XMM2 from the data area, runs the
//! instruction under test, and stores XMM0/XMM1 and MXCSR (exception flags included) back.
//! It ends by reloading the default MXCSR, because the host's MXCSR control bits are
//! callee-saved.

use iced_x86::code_asm::*;
use pagelab_tests::insn::reg::*;
use pagelab_tests::insn::*;

/// Inputs: XMM0, XMM1, XMM2; outputs: XMM0, XMM1; MXCSR in, out and the default.
const A: u64 = DATA_VA;
const B: u64 = DATA_VA + 0x10;
const C: u64 = DATA_VA + 0x20;
const OUT0: u64 = DATA_VA + 0x30;
const OUT1: u64 = DATA_VA + 0x40;
const MX_IN: u64 = DATA_VA + 0x50;
const MX_OUT: u64 = DATA_VA + 0x54;
const MX_DEF: u64 = DATA_VA + 0x58;
/// A scratch area for stores (and a misaligned address in it).
const SCRATCH: u64 = DATA_VA + 0x100;

/// Random cases per form after the edge cross product.
const N: usize = 200;

/// Wraps `body` in the load/store of XMM0-2 and MXCSR described in the module comment.
fn xsn(body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Snippet {
    asm(|a| {
        a.ldmxcsr(dword_ptr(MX_IN))?;
        a.movdqu(xmm0, xmmword_ptr(A))?;
        a.movdqu(xmm1, xmmword_ptr(B))?;
        a.movdqu(xmm2, xmmword_ptr(C))?;
        body(a)?;
        a.movdqu(xmmword_ptr(OUT0), xmm0)?;
        a.movdqu(xmmword_ptr(OUT1), xmm1)?;
        a.stmxcsr(dword_ptr(MX_OUT))?;
        a.ldmxcsr(dword_ptr(MX_DEF))?;
        Ok(())
    })
}

/// What the lanes of the input registers hold.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    F32,
    F64,
    /// Integers of 1, 2, 4 or 8 bytes.
    Int(u32),
}

const F64_EDGES: &[u64] = &[
    0,
    0x8000_0000_0000_0000,
    0x3ff0_0000_0000_0000,         // 1
    0xbff0_0000_0000_0000,         // -1
    0x3ff8_0000_0000_0000,         // 1.5
    0x3fe0_0000_0000_0000,         // 0.5
    0x4004_0000_0000_0000,         // 2.5
    0xc00c_0000_0000_0000,         // -3.5
    0x3fb9_9999_9999_999a,         // 0.1
    0x3fd5_5555_5555_5555,         // 1/3
    0x4340_0000_0000_0001,         // 2^53 + 2
    0x7fef_ffff_ffff_ffff,         // MAX
    0xffef_ffff_ffff_ffff,         // -MAX
    0x7fe0_0000_0000_0000,         // 2^1023
    0x0010_0000_0000_0000,         // MIN_POSITIVE
    0x0000_0000_0000_0001,         // smallest subnormal
    0x000f_ffff_ffff_ffff,         // largest subnormal
    0x8000_0000_0000_0003,         // negative subnormal
    0x7ff0_0000_0000_0000,         // inf
    0xfff0_0000_0000_0000,         // -inf
    0x7ff8_0000_0000_0000,         // QNaN
    0xfff8_0000_0000_0000,         // the indefinite
    0x7ff8_0000_0000_1234,         // QNaN with payload
    0xfffc_0000_0000_beef,         // negative QNaN with payload
    0x7ff0_0000_0000_0001,         // SNaN
    0xfff4_0000_0000_5678,         // negative SNaN with payload
    0x41e0_0000_0000_0000,         // 2^31
    0xc1e0_0000_0000_0000,         // -2^31
    0x41df_ffff_ffe0_0000,         // 2^31 - 0.5
    0xc1e0_0000_0010_0000,         // -2^31 - 0.5
    0x43e0_0000_0000_0000,         // 2^63
    0xc3e0_0000_0000_0000,         // -2^63
    0x43df_ffff_ffff_ffff,         // largest double below 2^63
    0x47ef_ffff_e000_0000,         // f32::MAX as double
    0x47ef_ffff_f000_0000,         // f32::MAX + half an ulp (rounds to inf)
    0x36a0_0000_0000_0000,         // f32 smallest subnormal as double
    0x3690_0000_0000_0000,         // half of it
];

const F32_EDGES: &[u32] = &[
    0,
    0x8000_0000,
    0x3f80_0000, // 1
    0xbf80_0000, // -1
    0x3fc0_0000, // 1.5
    0x3f00_0000, // 0.5
    0x4020_0000, // 2.5
    0xc060_0000, // -3.5
    0x3dcc_cccd, // 0.1
    0x3eaa_aaab, // 1/3
    0x7f7f_ffff, // MAX
    0xff7f_ffff, // -MAX
    0x0080_0000, // MIN_POSITIVE
    0x0000_0001, // smallest subnormal
    0x007f_ffff, // largest subnormal
    0x8000_0005, // negative subnormal
    0x7f80_0000, // inf
    0xff80_0000, // -inf
    0x7fc0_0000, // QNaN
    0xffc0_0000, // the indefinite
    0x7fc0_1234, // QNaN with payload
    0xffe0_beef, // negative QNaN with payload
    0x7f80_0001, // SNaN
    0xffa0_5678, // negative SNaN with payload
    0x4f00_0000, // 2^31
    0xcf00_0000, // -2^31
    0x4eff_ffff, // largest below 2^31
    0xcf00_0001, // just below -2^31
    0x5f00_0000, // 2^63
    0xdf00_0000, // -2^63
    0x4b80_0001, // 2^24 + 2
];

fn edges(kind: Kind) -> Vec<u64> {
    match kind {
        Kind::F64 => F64_EDGES.to_vec(),
        Kind::F32 => F32_EDGES.iter().map(|&x| x as u64).collect(),
        Kind::Int(w) => {
            let m = if w == 8 { u64::MAX } else { (1u64 << (8 * w)) - 1 };
            let mut v: Vec<u64> = EDGES.iter().map(|&x| x & m).collect();
            v.dedup();
            v
        }
    }
}

/// A random lane value of `kind`: an edge, random bits, a "nice" number or a small one.
fn lane_value(rng: &mut Rng, kind: Kind) -> u64 {
    match kind {
        Kind::Int(w) => {
            let m = if w == 8 { u64::MAX } else { (1u64 << (8 * w)) - 1 };
            rng.operand() & m
        }
        Kind::F64 => match rng.below(4) {
            0 => F64_EDGES[rng.below(F64_EDGES.len() as u64) as usize],
            1 => rng.next(),
            2 => {
                // sign, an exponent near 1.0, a random mantissa
                let e = 1023 - 40 + rng.below(80);
                (rng.next() & (1 << 63)) | e << 52 | (rng.next() >> 12)
            }
            _ => ((rng.below(81) as i64 - 40) as f64 / 4.0).to_bits(),
        },
        Kind::F32 => match rng.below(4) {
            0 => F32_EDGES[rng.below(F32_EDGES.len() as u64) as usize] as u64,
            1 => rng.next() & 0xffff_ffff,
            2 => {
                let e = 127 - 20 + rng.below(40);
                ((rng.next() & (1 << 31)) | e << 23 | (rng.next() >> 41)) & 0xffff_ffff
            }
            _ => (((rng.below(81) as i64 - 40) as f32 / 4.0).to_bits()) as u64,
        },
    }
}

fn width(kind: Kind) -> u32 {
    match kind {
        Kind::F32 => 4,
        Kind::F64 => 8,
        Kind::Int(w) => w,
    }
}

/// A register image: lane 0 = `first` (if given), the other lanes random.
fn reg_image(rng: &mut Rng, kind: Kind, first: Option<u64>) -> [u8; 16] {
    let w = width(kind) as usize;
    let mut out = [0u8; 16];
    for k in 0..16 / w {
        let v = match (k, first) {
            (0, Some(f)) => f,
            _ => lane_value(rng, kind),
        };
        out[k * w..(k + 1) * w].copy_from_slice(&v.to_le_bytes()[..w]);
    }
    out
}

/// Fills the inputs: XMM0-2 images, MXCSR (all exceptions masked, rounding `rc`, sometimes
/// sticky flags already set), and RAX/RCX = the low quadwords of XMM0/XMM1.
fn setup(rng: &mut Rng, st: &mut State, kind: Kind, a0: Option<u64>, b0: Option<u64>, rc: u32) {
    let a = reg_image(rng, kind, a0);
    let b = reg_image(rng, kind, b0);
    let c = reg_image(rng, kind, None);
    st.write(A, &a);
    st.write(B, &b);
    st.write(C, &c);
    let sticky = if rng.below(8) == 0 { rng.below(64) as u32 } else { 0 };
    st.write(MX_IN, &(0x1f80 | rc << 13 | sticky).to_le_bytes());
    st.write(MX_DEF, &0x1f80u32.to_le_bytes());
    st.gpr[RAX] = st.read_u64(A);
    st.gpr[RCX] = st.read_u64(B);
    st.gpr[RSI] = SCRATCH;
}

/// Edge values crossed pairwise in lane 0 of XMM0 and XMM1 (round to nearest), then `n`
/// random cases under random rounding modes.
fn check_xmm(sn: &Snippet, kind: Kind, n: usize) {
    let mut emu = Emu::new(sn);
    let mut rng = Rng::new(sn.text.len() as u64 ^ sn.code.iter().fold(0u64, |h, &b| h.rotate_left(5) ^ b as u64));
    let ed = edges(kind);
    for &x in &ed {
        for &y in &ed {
            let mut st = random_state(&mut rng);
            setup(&mut rng, &mut st, kind, Some(x), Some(y), 0);
            check(sn, &mut emu, &st);
        }
    }
    for _ in 0..n {
        let mut st = random_state(&mut rng);
        let rc = if rng.below(2) == 0 { 0 } else { rng.below(4) as u32 };
        setup(&mut rng, &mut st, kind, None, None, rc);
        check(sn, &mut emu, &st);
    }
}

/// Each snippet over `kind` operands.
fn check_all(kind: Kind, sns: Vec<Snippet>) {
    for sn in &sns {
        check_xmm(sn, kind, N);
    }
}

// ---- moves -------------------------------------------------------------------------------

#[test]
fn moves_128() {
    check_all(
        Kind::Int(8),
        vec![
            xsn(|a| a.movaps(xmm0, xmm1)),
            xsn(|a| a.movapd(xmm1, xmm2)),
            xsn(|a| a.movdqa(xmm0, xmm2)),
            xsn(|a| a.movups(xmm0, xmmword_ptr(B))),
            xsn(|a| a.movupd(xmm0, xmmword_ptr(SCRATCH + 3))),
            xsn(|a| a.movdqu(xmm1, xmmword_ptr(SCRATCH + 9))),
            xsn(|a| a.movaps(xmm0, xmmword_ptr(C))),
            xsn(|a| a.movdqa(xmm0, xmmword_ptr(rsi + 0x20))),
            xsn(|a| a.movaps(xmmword_ptr(SCRATCH), xmm1)),
            xsn(|a| a.movdqa(xmmword_ptr(rsi + 0x10), xmm1)),
            xsn(|a| a.movups(xmmword_ptr(SCRATCH + 7), xmm1)),
            xsn(|a| a.movdqu(xmmword_ptr(SCRATCH + 1), xmm0)),
            xsn(|a| a.movntdq(xmmword_ptr(SCRATCH + 0x30), xmm0)),
            xsn(|a| a.movntps(xmmword_ptr(SCRATCH + 0x30), xmm1)),
            xsn(|a| a.movntpd(xmmword_ptr(SCRATCH + 0x30), xmm1)),
            xsn(|a| a.movnti(qword_ptr(SCRATCH + 3), rax)),
            xsn(|a| a.movnti(dword_ptr(SCRATCH + 5), ecx)),
        ],
    );
}

#[test]
fn moves_partial() {
    check_all(
        Kind::Int(4),
        vec![
            xsn(|a| a.movd(xmm0, eax)),
            xsn(|a| a.movq(xmm0, rcx)),
            xsn(|a| a.movd(xmm1, dword_ptr(SCRATCH + 1))),
            xsn(|a| a.movq(xmm1, qword_ptr(SCRATCH + 2))),
            xsn(|a| a.movd(edx, xmm1)),
            xsn(|a| a.movq(rdx, xmm1)),
            xsn(|a| a.movd(dword_ptr(SCRATCH + 1), xmm1)),
            xsn(|a| a.movq(qword_ptr(SCRATCH + 3), xmm1)),
            xsn(|a| a.movq(xmm0, xmm1)),
            xsn(|a| a.movss(xmm0, xmm1)),
            xsn(|a| a.movss(xmm0, dword_ptr(B + 4))),
            xsn(|a| a.movss(dword_ptr(SCRATCH + 2), xmm1)),
            xsn(|a| a.movsd_2(xmm0, xmm1)),
            xsn(|a| a.movsd_2(xmm0, qword_ptr(B + 8))),
            xsn(|a| a.movsd_2(qword_ptr(SCRATCH + 6), xmm1)),
            xsn(|a| a.movlps(xmm0, qword_ptr(B + 8))),
            xsn(|a| a.movlpd(xmm0, qword_ptr(SCRATCH + 3))),
            xsn(|a| a.movhps(xmm0, qword_ptr(B))),
            xsn(|a| a.movhpd(xmm1, qword_ptr(SCRATCH + 1))),
            xsn(|a| a.movlps(qword_ptr(SCRATCH + 1), xmm1)),
            xsn(|a| a.movlpd(qword_ptr(SCRATCH), xmm1)),
            xsn(|a| a.movhps(qword_ptr(SCRATCH + 4), xmm1)),
            xsn(|a| a.movhpd(qword_ptr(SCRATCH), xmm1)),
            xsn(|a| a.movhlps(xmm0, xmm1)),
            xsn(|a| a.movlhps(xmm0, xmm1)),
            xsn(|a| a.pextrw(eax, xmm1, 0)),
            xsn(|a| a.pextrw(edx, xmm1, 5)),
            xsn(|a| a.pextrw(rdx, xmm1, 7)),
            xsn(|a| a.pinsrw(xmm0, ecx, 3)),
            xsn(|a| a.pinsrw(xmm0, word_ptr(SCRATCH + 1), 6)),
            xsn(|a| a.pmovmskb(eax, xmm1)),
            xsn(|a| a.pmovmskb(rax, xmm0)),
            xsn(|a| a.movmskps(ecx, xmm1)),
            xsn(|a| a.movmskpd(ecx, xmm1)),
        ],
    );
}

// ---- integer -----------------------------------------------------------------------------

/// A register and an aligned memory form of a two-operand integer instruction.
macro_rules! both {
    ($op:ident) => {
        [xsn(|a| a.$op(xmm0, xmm1)), xsn(|a| a.$op(xmm1, xmmword_ptr(C)))]
    };
}

#[test]
fn integer_logic() {
    let mut v = Vec::new();
    for pair in [both!(pand), both!(pandn), both!(por), both!(pxor), both!(andps), both!(andnps), both!(orps), both!(xorps)] {
        v.extend(pair);
    }
    for pair in [both!(andpd), both!(andnpd), both!(orpd), both!(xorpd)] {
        v.extend(pair);
    }
    v.push(xsn(|a| a.pxor(xmm0, xmm0)));
    check_all(Kind::Int(8), v);
}

#[test]
fn integer_bytes() {
    let mut v = Vec::new();
    for pair in [
        both!(paddb),
        both!(psubb),
        both!(paddsb),
        both!(psubsb),
        both!(paddusb),
        both!(psubusb),
        both!(pcmpeqb),
        both!(pcmpgtb),
        both!(pminub),
        both!(pmaxub),
        both!(pavgb),
        both!(psadbw),
        both!(punpcklbw),
        both!(punpckhbw),
        both!(packuswb),
        both!(packsswb),
    ] {
        v.extend(pair);
    }
    check_all(Kind::Int(1), v);
}

#[test]
fn integer_words() {
    let mut v = Vec::new();
    for pair in [
        both!(paddw),
        both!(psubw),
        both!(paddsw),
        both!(psubsw),
        both!(paddusw),
        both!(psubusw),
        both!(pcmpeqw),
        both!(pcmpgtw),
        both!(pminsw),
        both!(pmaxsw),
        both!(pavgw),
        both!(pmullw),
        both!(pmulhw),
        both!(pmulhuw),
        both!(pmaddwd),
        both!(punpcklwd),
        both!(punpckhwd),
        both!(packsswb),
        both!(packuswb),
        both!(packssdw),
    ] {
        v.extend(pair);
    }
    check_all(Kind::Int(2), v);
}

#[test]
fn integer_dwords_qwords() {
    let mut v = Vec::new();
    for pair in [
        both!(paddd),
        both!(psubd),
        both!(paddq),
        both!(psubq),
        both!(pcmpeqd),
        both!(pcmpgtd),
        both!(pmuludq),
        both!(punpckldq),
        both!(punpckhdq),
        both!(punpcklqdq),
        both!(punpckhqdq),
        both!(unpcklps),
        both!(unpckhps),
        both!(unpcklpd),
        both!(unpckhpd),
        both!(packssdw),
    ] {
        v.extend(pair);
    }
    check_all(Kind::Int(4), v);
    let mut v = Vec::new();
    for pair in [both!(paddq), both!(psubq), both!(pmuludq), both!(pcmpeqd)] {
        v.extend(pair);
    }
    check_all(Kind::Int(8), v);
}

#[test]
fn shuffles() {
    let mut v = Vec::new();
    for imm in [0u32, 0x1b, 0x4e, 0xb1, 0xff, 0x39, 0x80, 0x02] {
        v.push(xsn(move |a| a.pshufd(xmm0, xmm1, imm)));
        v.push(xsn(move |a| a.pshufd(xmm1, xmmword_ptr(C), imm)));
        v.push(xsn(move |a| a.pshuflw(xmm0, xmm1, imm)));
        v.push(xsn(move |a| a.pshufhw(xmm0, xmmword_ptr(C), imm)));
        v.push(xsn(move |a| a.shufps(xmm0, xmm1, imm)));
        v.push(xsn(move |a| a.shufps(xmm0, xmmword_ptr(C), imm)));
        v.push(xsn(move |a| a.shufpd(xmm0, xmm1, imm & 3)));
        v.push(xsn(move |a| a.shufpd(xmm1, xmmword_ptr(C), imm)));
    }
    for sn in &v {
        check_xmm(sn, Kind::Int(2), 20);
    }
}

#[test]
fn shifts() {
    let mut v = Vec::new();
    for imm in [0u32, 1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 100, 255] {
        v.push(xsn(move |a| a.psrldq(xmm0, imm)));
        v.push(xsn(move |a| a.pslldq(xmm0, imm)));
        v.push(xsn(move |a| a.psrlw(xmm0, imm)));
        v.push(xsn(move |a| a.psrld(xmm0, imm)));
        v.push(xsn(move |a| a.psrlq(xmm0, imm)));
        v.push(xsn(move |a| a.psllw(xmm0, imm)));
        v.push(xsn(move |a| a.pslld(xmm0, imm)));
        v.push(xsn(move |a| a.psllq(xmm0, imm)));
        v.push(xsn(move |a| a.psraw(xmm0, imm)));
        v.push(xsn(move |a| a.psrad(xmm0, imm)));
    }
    for sn in &v {
        check_xmm(sn, Kind::Int(2), 10);
    }
    // Counts from a register or memory: the whole low quadword counts.
    let mut v = Vec::new();
    for pair in [both!(psrlw), both!(psrld), both!(psrlq), both!(psllw), both!(pslld), both!(psllq), both!(psraw), both!(psrad)] {
        v.extend(pair);
    }
    let mut rng = Rng::new(7);
    for sn in &v {
        let mut emu = Emu::new(sn);
        for count in [0u64, 1, 5, 15, 16, 17, 31, 32, 63, 64, 65, 1 << 32, u64::MAX] {
            let mut st = random_state(&mut rng);
            setup(&mut rng, &mut st, Kind::Int(8), None, Some(count), 0);
            st.write(C, &count.to_le_bytes());
            check(sn, &mut emu, &st);
        }
    }
}

// ---- floating point ----------------------------------------------------------------------

/// Register and memory forms of a scalar and a packed instruction.
macro_rules! fp_forms {
    ($s:ident, $p:ident, $mem:ident) => {
        vec![
            xsn(|a| a.$s(xmm0, xmm1)),
            xsn(|a| a.$s(xmm0, $mem(B))),
            xsn(|a| a.$p(xmm0, xmm1)),
            xsn(|a| a.$p(xmm1, xmmword_ptr(A))),
        ]
    };
}

#[test]
fn double_arithmetic() {
    for sns in [
        fp_forms!(addsd, addpd, qword_ptr),
        fp_forms!(subsd, subpd, qword_ptr),
        fp_forms!(mulsd, mulpd, qword_ptr),
        fp_forms!(divsd, divpd, qword_ptr),
        fp_forms!(sqrtsd, sqrtpd, qword_ptr),
        fp_forms!(minsd, minpd, qword_ptr),
        fp_forms!(maxsd, maxpd, qword_ptr),
    ] {
        check_all(Kind::F64, sns);
    }
}

#[test]
fn single_arithmetic() {
    for sns in [
        fp_forms!(addss, addps, dword_ptr),
        fp_forms!(subss, subps, dword_ptr),
        fp_forms!(mulss, mulps, dword_ptr),
        fp_forms!(divss, divps, dword_ptr),
        fp_forms!(sqrtss, sqrtps, dword_ptr),
        fp_forms!(minss, minps, dword_ptr),
        fp_forms!(maxss, maxps, dword_ptr),
    ] {
        check_all(Kind::F32, sns);
    }
}

#[test]
fn compares() {
    check_all(
        Kind::F64,
        vec![
            xsn(|a| a.ucomisd(xmm0, xmm1)),
            xsn(|a| a.ucomisd(xmm0, qword_ptr(B))),
            xsn(|a| a.comisd(xmm0, xmm1)),
            xsn(|a| a.comisd(xmm1, qword_ptr(A))),
        ],
    );
    check_all(
        Kind::F32,
        vec![
            xsn(|a| a.ucomiss(xmm0, xmm1)),
            xsn(|a| a.ucomiss(xmm0, dword_ptr(B))),
            xsn(|a| a.comiss(xmm0, xmm1)),
            xsn(|a| a.comiss(xmm1, dword_ptr(A))),
        ],
    );
    for p in 0..8u32 {
        check_all(
            Kind::F64,
            vec![
                xsn(move |a| a.cmpsd_3(xmm0, xmm1, p)),
                xsn(move |a| a.cmpsd_3(xmm0, qword_ptr(B), p)),
                xsn(move |a| a.cmppd(xmm0, xmm1, p)),
                xsn(move |a| a.cmppd(xmm1, xmmword_ptr(A), p)),
            ],
        );
        check_all(
            Kind::F32,
            vec![
                xsn(move |a| a.cmpss(xmm0, xmm1, p)),
                xsn(move |a| a.cmpss(xmm0, dword_ptr(B), p)),
                xsn(move |a| a.cmpps(xmm0, xmm1, p)),
                xsn(move |a| a.cmpps(xmm1, xmmword_ptr(A), p)),
            ],
        );
    }
}

#[test]
fn conversions_from_double() {
    check_all(
        Kind::F64,
        vec![
            xsn(|a| a.cvttsd2si(eax, xmm1)),
            xsn(|a| a.cvttsd2si(rax, xmm1)),
            xsn(|a| a.cvtsd2si(edx, xmm1)),
            xsn(|a| a.cvtsd2si(rdx, qword_ptr(B))),
            xsn(|a| a.cvttsd2si(r9, qword_ptr(A))),
            xsn(|a| a.cvtsd2ss(xmm0, xmm1)),
            xsn(|a| a.cvtsd2ss(xmm0, qword_ptr(B))),
            xsn(|a| a.cvtpd2ps(xmm0, xmm1)),
            xsn(|a| a.cvtpd2ps(xmm0, xmmword_ptr(B))),
            xsn(|a| a.cvttpd2dq(xmm0, xmm1)),
            xsn(|a| a.cvtpd2dq(xmm0, xmm1)),
            xsn(|a| a.cvtpd2dq(xmm1, xmmword_ptr(A))),
        ],
    );
}

#[test]
fn conversions_from_single() {
    check_all(
        Kind::F32,
        vec![
            xsn(|a| a.cvttss2si(eax, xmm1)),
            xsn(|a| a.cvttss2si(rax, xmm1)),
            xsn(|a| a.cvtss2si(edx, xmm1)),
            xsn(|a| a.cvtss2si(rdx, dword_ptr(B))),
            xsn(|a| a.cvtss2sd(xmm0, xmm1)),
            xsn(|a| a.cvtss2sd(xmm0, dword_ptr(B))),
            xsn(|a| a.cvtps2pd(xmm0, xmm1)),
            xsn(|a| a.cvtps2pd(xmm0, qword_ptr(B))),
            xsn(|a| a.cvttps2dq(xmm0, xmm1)),
            xsn(|a| a.cvtps2dq(xmm0, xmm1)),
            xsn(|a| a.cvtps2dq(xmm1, xmmword_ptr(A))),
        ],
    );
}

#[test]
fn conversions_from_integers() {
    let sns = vec![
        xsn(|a| a.cvtsi2sd(xmm0, eax)),
        xsn(|a| a.cvtsi2sd(xmm0, rcx)),
        xsn(|a| a.cvtsi2sd(xmm0, dword_ptr(B))),
        xsn(|a| a.cvtsi2sd(xmm0, qword_ptr(B))),
        xsn(|a| a.cvtsi2ss(xmm0, eax)),
        xsn(|a| a.cvtsi2ss(xmm0, rcx)),
        xsn(|a| a.cvtsi2ss(xmm0, dword_ptr(B))),
        xsn(|a| a.cvtsi2ss(xmm0, qword_ptr(B))),
        xsn(|a| a.cvtdq2pd(xmm0, xmm1)),
        xsn(|a| a.cvtdq2pd(xmm0, qword_ptr(B))),
        xsn(|a| a.cvtdq2ps(xmm0, xmm1)),
        xsn(|a| a.cvtdq2ps(xmm0, xmmword_ptr(B))),
    ];
    for sn in &sns {
        check_xmm(sn, Kind::Int(8), N);
        check_xmm(sn, Kind::Int(4), N);
    }
    // Integers just around the points where single and double rounding tie.
    let mut rng = Rng::new(11);
    for sn in &sns[..8] {
        let mut emu = Emu::new(sn);
        for base in [(1i64 << 60) + (1 << 36), (1 << 53) + 1, -(1 << 62) - (1 << 38), 1 << 24 | 1, 0x7fff_ffff] {
            for d in -2..=2i64 {
                for rc in 0..4 {
                    let v = (base + d) as u64;
                    let mut st = random_state(&mut rng);
                    setup(&mut rng, &mut st, Kind::Int(8), Some(v), Some(v), rc);
                    check(sn, &mut emu, &st);
                }
            }
        }
    }
}

#[test]
fn mxcsr_round_trip() {
    let sn = asm(|a| {
        a.ldmxcsr(dword_ptr(MX_IN))?;
        a.stmxcsr(dword_ptr(MX_OUT))?;
        a.ldmxcsr(dword_ptr(MX_DEF))
    });
    let mut emu = Emu::new(&sn);
    let mut rng = Rng::new(3);
    for _ in 0..200 {
        let mut st = random_state(&mut rng);
        setup(&mut rng, &mut st, Kind::Int(8), None, None, 0);
        // Any control/status bits except unmasked exceptions (which would trap later) and
        // the reserved bits.
        let v = (rng.next() as u32 & 0xffff) | 0x1f80;
        st.write(MX_IN, &v.to_le_bytes());
        check(&sn, &mut emu, &st);
    }
}

// ---- FXSAVE / FXRSTOR --------------------------------------------------------------------

const IMG: u64 = DATA_VA + 0x400;
const IMG2: u64 = DATA_VA + 0x800;

/// The vendor-specific bytes of an FXSAVE image at `img` (SDM Vol. 1 10.5.1; AMD APM
/// FXSAVE): MXCSR_MASK (Intel 0xFFFF, AMD adds bit 17, MM), FOP/FIP/FDP (AMD saves them
/// only while an exception is pending, and FXRSTOR restores them only then), and every
/// reserved byte, whose writing the SDM leaves to the processor.
fn fxsave_vs(vs: VendorSpecific, img: u64) -> VendorSpecific {
    let mut vs = vs.mem(img + 5, 1).mem(img + 6, 18).mem(img + 28, 4).mem(img + 416, 96);
    for i in 0..8 {
        vs = vs.mem(img + 32 + 16 * i + 10, 6);
    }
    vs
}

/// [`fxsave_vs`] for the images the FXSAVE tests write.
fn fxsave_images_vs(imgs: &[u64]) -> VendorSpecific {
    let vs = VendorSpecific::new("MXCSR_MASK, FOP/FIP/FDP and the reserved bytes of an FXSAVE image (vendors differ)");
    imgs.iter().fold(vs, |vs, &img| fxsave_vs(vs, img))
}

/// Loads all sixteen XMM registers from the data area, fills the x87 stack with eight
/// doubles, saves; then empties the x87 stack again (the host ABI wants it empty).
#[test]
fn fxsave_image() {
    let sn = asm(|a| {
        a.ldmxcsr(dword_ptr(MX_IN))?;
        a.fninit()?;
        let regs = [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15];
        for (i, r) in regs.iter().enumerate() {
            a.movdqu(*r, xmmword_ptr(SCRATCH + 16 * i as u64))?;
        }
        for i in 0..7u64 {
            a.fld(qword_ptr(A + 8 * (i % 6)))?;
        }
        a.fldz()?;
        a.fxsave64(ptr(IMG))?;
        a.fxsave(ptr(IMG2))?;
        // FOP, FIP and FDP (bytes 6-23) name the last x87 instruction natively; pagelab
        // does not track them and stores zeros.
        for img in [IMG, IMG2] {
            a.mov(word_ptr(img + 6), 0)?;
            a.mov(qword_ptr(img + 8), 0)?;
            a.mov(qword_ptr(img + 16), 0)?;
        }
        a.fninit()?;
        a.ldmxcsr(dword_ptr(MX_DEF))
    });
    let mut emu = Emu::new(&sn);
    let mut rng = Rng::new(5);
    for _ in 0..100 {
        let mut st = random_state(&mut rng);
        let rc = rng.below(4) as u32;
        setup(&mut rng, &mut st, Kind::F64, None, None, rc);
        for w in [A, B, C] {
            for k in 0..2 {
                // Doubles the x87 can hold exactly and its FXSAVE shows identically: no NaNs
                // (FLD m64 of an SNaN quiets it on both, but keep it simple).
                let mut v = lane_value(&mut rng, Kind::F64);
                if f64::from_bits(v).is_nan() {
                    v = 0x4000_0000_0000_0000;
                }
                st.write_u64(w + 8 * k, v);
            }
        }
        check_vendor(&sn, &mut emu, &st, 0, &fxsave_images_vs(&[IMG, IMG2]));
    }
}

#[test]
fn fxrstor_then_fxsave() {
    let sn = asm(|a| {
        a.fxrstor64(ptr(IMG))?;
        a.fxsave64(ptr(IMG2))?;
        a.movdqu(xmmword_ptr(OUT0), xmm7)?;
        a.movdqu(xmmword_ptr(OUT1), xmm15)?;
        a.stmxcsr(dword_ptr(MX_OUT))?;
        a.fninit()?;
        a.ldmxcsr(dword_ptr(MX_DEF))
    });
    let mut emu = Emu::new(&sn);
    let mut rng = Rng::new(9);
    for _ in 0..100 {
        let mut st = random_state(&mut rng);
        setup(&mut rng, &mut st, Kind::Int(8), None, None, 0);
        let mut img = [0u8; 512];
        img[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        let top = rng.below(8) as u16;
        img[2..4].copy_from_slice(&(top << 11).to_le_bytes());
        img[4] = rng.next() as u8;
        let mx = 0x1f80 | (rng.below(4) as u32) << 13 | rng.below(64) as u32;
        img[24..28].copy_from_slice(&mx.to_le_bytes());
        img[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
        for i in 0..8 {
            let mut v = lane_value(&mut rng, Kind::F64);
            if f64::from_bits(v).is_nan() {
                v = 0xc000_0000_0000_0000;
            }
            img[32 + 16 * i..42 + 16 * i].copy_from_slice(&emu::cpu::x87::f64_to_f80(f64::from_bits(v)));
        }
        for b in &mut img[160..416] {
            *b = rng.next() as u8;
        }
        st.write(IMG, &img);
        check_vendor(&sn, &mut emu, &st, 0, &fxsave_images_vs(&[IMG2]));
    }
}

// ---- faults ------------------------------------------------------------------------------

#[test]
fn misaligned_m128_is_gp0() {
    let gp = emu::cpu::Exception::GeneralProtection(0);
    let mut rng = Rng::new(1);
    for sn in [
        asm(|a| a.movaps(xmm0, xmmword_ptr(SCRATCH + 8))),
        asm(|a| a.movdqa(xmmword_ptr(SCRATCH + 1), xmm0)),
        asm(|a| a.movntdq(xmmword_ptr(SCRATCH + 4), xmm0)),
        asm(|a| a.paddb(xmm0, xmmword_ptr(SCRATCH + 2))),
        asm(|a| a.pcmpeqb(xmm0, xmmword_ptr(rsi + 1))),
        asm(|a| a.addpd(xmm0, xmmword_ptr(SCRATCH + 8))),
        asm(|a| a.pshufd(xmm0, xmmword_ptr(SCRATCH + 8), 0)),
        asm(|a| a.fxsave64(ptr(SCRATCH + 8))),
        asm(|a| a.fxrstor64(ptr(SCRATCH + 8))),
        // Misaligned and unmapped: #GP wins over #PF.
        asm(|a| a.movaps(xmm0, xmmword_ptr(UNMAPPED_VA + 8))),
    ] {
        let mut emu = Emu::new(&sn);
        let mut st = random_state(&mut rng);
        st.gpr[RSI] = SCRATCH;
        expect_fault(&sn, &mut emu, &st, gp);
    }
}

#[test]
fn faulting_stores_change_nothing() {
    let mut rng = Rng::new(2);
    let pf = |addr: u64, code: u32| emu::cpu::Exception::PageFault { addr, code };
    for (sn, want) in [
        (asm(|a| a.movaps(xmmword_ptr(RO_VA), xmm0)), pf(RO_VA, 7)),
        (asm(|a| a.movups(xmmword_ptr(RO_VA - 8), xmm0)), pf(RO_VA, 7)),
        (asm(|a| a.movdqu(xmm0, xmmword_ptr(UNMAPPED_VA - 8))), pf(UNMAPPED_VA, 4)),
        (asm(|a| a.movq(qword_ptr(RO_VA - 4), xmm0)), pf(RO_VA, 7)),
    ] {
        let mut emu = Emu::new(&sn);
        let st = random_state(&mut rng);
        expect_fault(&sn, &mut emu, &st, want);
    }
}
