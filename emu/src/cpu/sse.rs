//! SSE and SSE2 (SDM Vol. 1 ch. 10-11, Vol. 2): the legacy-encoded XMM instructions that
//! baseline x86-64 code uses — glibc's SSE2 string functions, gcc -O2 floating point and
//! integer vector code, printf/strtod — plus LDMXCSR/STMXCSR and FXSAVE/FXRSTOR.
//!
//! Invariants:
//! - Memory operands are read, or translated for write, before any register or memory
//!   changes, so a faulting instruction changes nothing (`Exec::write_u128` translates every
//!   page before writing).
//! - A 16-byte memory operand must be 16-byte aligned (#GP(0)) except for the explicitly
//!   unaligned moves (MOVUPS MOVUPD MOVDQU LDDQU); 8- and 4-byte operands never need it.
//! - Floating point goes through `fp`, which picks every NaN and honours MXCSR.RC. The
//!   exception flags are accumulated into MXCSR; an unmasked one raises #XM without writing
//!   the destination (the flags stay set, as on hardware).
//! - MMX forms (an MM register operand) are not implemented: `select` declines them.
//!
//! iced-x86 gives the string MOVSD/CMPSD and the SSE2 MOVSD/CMPSD the same mnemonic; this
//! family answers only for the XMM codes.

pub mod fp;

use super::exec::{xmm_index, Exec, Handler, Stop};
use super::flags::{mask, sext, ARITH};
use super::Exception;
use super::CpuState;
use fp::{Op, Prec, Rc};
use iced_x86::{Code, Instruction, Mnemonic, OpKind};

type R = Result<(), Stop>;

/// Wraps a handler body written as a closure into a `Handler`.
macro_rules! h {
    (|$e:ident, $i:ident| $body:expr) => {
        (|$e: &mut Exec, $i: &Instruction| -> R { $body }) as Handler
    };
}

pub fn select(ins: &Instruction) -> Option<Handler> {
    for i in 0..ins.op_count() {
        if ins.op_kind(i) == OpKind::Register && ins.op_register(i).is_mm() {
            return None;
        }
    }
    use Mnemonic as M;
    use Prec::{D, S};
    Some(match ins.mnemonic() {
        // ---- moves
        M::Movaps | M::Movups | M::Movapd | M::Movupd | M::Movdqa | M::Movdqu | M::Lddqu | M::Movntdq | M::Movntps
        | M::Movntpd => h!(|e, i| {
            let v = src(e, i, 1)?;
            store(e, i, v)
        }),
        M::Movnti => h!(|e, i| {
            let size = e.op_size(i, 1);
            let v = e.get_reg(i.op1_register());
            e.write_op(i, 0, size, v)?;
            Ok(())
        }),
        M::Movd => h!(|e, i| movdq(e, i, 4)),
        M::Movq => h!(|e, i| movdq(e, i, 8)),
        M::Movss => h!(|e, i| movs(e, i, 4)),
        M::Movsd if ins.code() != Code::Movsd_m32_m32 => h!(|e, i| movs(e, i, 8)),
        M::Movlps | M::Movlpd => h!(|e, i| movhl(e, i, false)),
        M::Movhps | M::Movhpd => h!(|e, i| movhl(e, i, true)),
        M::Movhlps => h!(|e, i| {
            let (d, b) = (dst(i), src(e, i, 1)?);
            e.s.xmm[d] = (e.s.xmm[d] & !LO64) | (b >> 64);
            Ok(())
        }),
        M::Movlhps => h!(|e, i| {
            let (d, b) = (dst(i), src(e, i, 1)?);
            e.s.xmm[d] = (e.s.xmm[d] & LO64) | (b << 64);
            Ok(())
        }),
        M::Movq2dq | M::Movdq2q => return None,

        // ---- logic
        M::Pand | M::Andps | M::Andpd => h!(|e, i| pk(e, i, |a, b| a & b)),
        M::Pandn | M::Andnps | M::Andnpd => h!(|e, i| pk(e, i, |a, b| !a & b)),
        M::Por | M::Orps | M::Orpd => h!(|e, i| pk(e, i, |a, b| a | b)),
        M::Pxor | M::Xorps | M::Xorpd => h!(|e, i| pk(e, i, |a, b| a ^ b)),

        // ---- integer arithmetic
        M::Paddb => h!(|e, i| lanes_op(e, i, 1, |a, b| a.wrapping_add(b))),
        M::Paddw => h!(|e, i| lanes_op(e, i, 2, |a, b| a.wrapping_add(b))),
        M::Paddd => h!(|e, i| lanes_op(e, i, 4, |a, b| a.wrapping_add(b))),
        M::Paddq => h!(|e, i| lanes_op(e, i, 8, |a, b| a.wrapping_add(b))),
        M::Psubb => h!(|e, i| lanes_op(e, i, 1, |a, b| a.wrapping_sub(b))),
        M::Psubw => h!(|e, i| lanes_op(e, i, 2, |a, b| a.wrapping_sub(b))),
        M::Psubd => h!(|e, i| lanes_op(e, i, 4, |a, b| a.wrapping_sub(b))),
        M::Psubq => h!(|e, i| lanes_op(e, i, 8, |a, b| a.wrapping_sub(b))),
        M::Paddsb => h!(|e, i| lanes_op(e, i, 1, |a, b| sat_s(s8(a) + s8(b), 1))),
        M::Paddsw => h!(|e, i| lanes_op(e, i, 2, |a, b| sat_s(s16(a) + s16(b), 2))),
        M::Psubsb => h!(|e, i| lanes_op(e, i, 1, |a, b| sat_s(s8(a) - s8(b), 1))),
        M::Psubsw => h!(|e, i| lanes_op(e, i, 2, |a, b| sat_s(s16(a) - s16(b), 2))),
        M::Paddusb => h!(|e, i| lanes_op(e, i, 1, |a, b| (a + b).min(0xff))),
        M::Paddusw => h!(|e, i| lanes_op(e, i, 2, |a, b| (a + b).min(0xffff))),
        M::Psubusb | M::Psubusw => h!(|e, i| {
            let w = if i.mnemonic() == Mnemonic::Psubusb { 1 } else { 2 };
            lanes_op(e, i, w, |a, b| a.saturating_sub(b))
        }),
        M::Pcmpeqb => h!(|e, i| lanes_op(e, i, 1, |a, b| all(a == b))),
        M::Pcmpeqw => h!(|e, i| lanes_op(e, i, 2, |a, b| all(a == b))),
        M::Pcmpeqd => h!(|e, i| lanes_op(e, i, 4, |a, b| all(a == b))),
        M::Pcmpgtb => h!(|e, i| lanes_op(e, i, 1, |a, b| all(s8(a) > s8(b)))),
        M::Pcmpgtw => h!(|e, i| lanes_op(e, i, 2, |a, b| all(s16(a) > s16(b)))),
        M::Pcmpgtd => h!(|e, i| lanes_op(e, i, 4, |a, b| all(s32(a) > s32(b)))),
        M::Pminub => h!(|e, i| lanes_op(e, i, 1, |a, b| a.min(b))),
        M::Pmaxub => h!(|e, i| lanes_op(e, i, 1, |a, b| a.max(b))),
        M::Pminsw => h!(|e, i| lanes_op(e, i, 2, |a, b| if s16(a) < s16(b) { a } else { b })),
        M::Pmaxsw => h!(|e, i| lanes_op(e, i, 2, |a, b| if s16(a) > s16(b) { a } else { b })),
        M::Pavgb => h!(|e, i| lanes_op(e, i, 1, |a, b| (a + b + 1) >> 1)),
        M::Pavgw => h!(|e, i| lanes_op(e, i, 2, |a, b| (a + b + 1) >> 1)),
        M::Pmullw => h!(|e, i| lanes_op(e, i, 2, |a, b| a.wrapping_mul(b))),
        M::Pmulhw => h!(|e, i| lanes_op(e, i, 2, |a, b| ((s16(a) * s16(b)) >> 16) as u64)),
        M::Pmulhuw => h!(|e, i| lanes_op(e, i, 2, |a, b| (a * b) >> 16)),
        M::Pmuludq => h!(|e, i| lanes_op(e, i, 8, |a, b| (a & 0xffff_ffff) * (b & 0xffff_ffff))),
        M::Pmaddwd => h!(|e, i| {
            pk(e, i, |a, b| {
                lanes(a, b, 4, |x, y| {
                    let lo = s16(x) * s16(y);
                    let hi = s16(x >> 16) * s16(y >> 16);
                    (lo + hi) as u64
                })
            })
        }),
        M::Psadbw => h!(|e, i| {
            pk(e, i, |a, b| {
                lanes(a, b, 8, |x, y| (0..8).map(|k| ((x >> (8 * k)) as u8).abs_diff((y >> (8 * k)) as u8) as u64).sum())
            })
        }),

        // ---- shifts
        M::Psllw => h!(|e, i| shift(e, i, 2, Shift::Left)),
        M::Pslld => h!(|e, i| shift(e, i, 4, Shift::Left)),
        M::Psllq => h!(|e, i| shift(e, i, 8, Shift::Left)),
        M::Psrlw => h!(|e, i| shift(e, i, 2, Shift::Right)),
        M::Psrld => h!(|e, i| shift(e, i, 4, Shift::Right)),
        M::Psrlq => h!(|e, i| shift(e, i, 8, Shift::Right)),
        M::Psraw => h!(|e, i| shift(e, i, 2, Shift::Arith)),
        M::Psrad => h!(|e, i| shift(e, i, 4, Shift::Arith)),
        M::Pslldq => h!(|e, i| {
            let n = i.immediate(1);
            pk(e, i, move |a, _| if n > 15 { 0 } else { a << (8 * n) })
        }),
        M::Psrldq => h!(|e, i| {
            let n = i.immediate(1);
            pk(e, i, move |a, _| if n > 15 { 0 } else { a >> (8 * n) })
        }),

        // ---- unpack, pack, shuffle
        M::Punpcklbw => h!(|e, i| pk(e, i, |a, b| interleave(a, b, 1, false))),
        M::Punpcklwd => h!(|e, i| pk(e, i, |a, b| interleave(a, b, 2, false))),
        M::Punpckldq | M::Unpcklps => h!(|e, i| pk(e, i, |a, b| interleave(a, b, 4, false))),
        M::Punpcklqdq | M::Unpcklpd => h!(|e, i| pk(e, i, |a, b| interleave(a, b, 8, false))),
        M::Punpckhbw => h!(|e, i| pk(e, i, |a, b| interleave(a, b, 1, true))),
        M::Punpckhwd => h!(|e, i| pk(e, i, |a, b| interleave(a, b, 2, true))),
        M::Punpckhdq | M::Unpckhps => h!(|e, i| pk(e, i, |a, b| interleave(a, b, 4, true))),
        M::Punpckhqdq | M::Unpckhpd => h!(|e, i| pk(e, i, |a, b| interleave(a, b, 8, true))),
        M::Packsswb => h!(|e, i| pk(e, i, |a, b| pack(a, b, 2, |x| sat_s(s16(x), 1)))),
        M::Packssdw => h!(|e, i| pk(e, i, |a, b| pack(a, b, 4, |x| sat_s(s32(x), 2)))),
        M::Packuswb => h!(|e, i| pk(e, i, |a, b| pack(a, b, 2, |x| s16(x).clamp(0, 0xff) as u64))),
        M::Pshufd => h!(|e, i| {
            let (n, b) = (i.immediate(2), src(e, i, 1)?);
            e.s.xmm[dst(i)] = (0..4).fold(0, |r, k| r | lane(b, 4, (n >> (2 * k)) & 3) << (32 * k));
            Ok(())
        }),
        M::Pshuflw | M::Pshufhw => h!(|e, i| {
            let (n, b) = (i.immediate(2), src(e, i, 1)?);
            let hi = i.mnemonic() == Mnemonic::Pshufhw;
            let base = if hi { 4 } else { 0 };
            let mut r = if hi { b & LO64 } else { b & !LO64 };
            for k in 0..4 {
                r |= lane(b, 2, base + ((n >> (2 * k)) & 3)) << (16 * (base + k));
            }
            e.s.xmm[dst(i)] = r;
            Ok(())
        }),
        M::Shufps => h!(|e, i| {
            let (n, d, b) = (i.immediate(2), dst(i), src(e, i, 1)?);
            let a = e.s.xmm[d];
            let pick = |k: u32| (n >> (2 * k)) & 3;
            e.s.xmm[d] = lane(a, 4, pick(0)) | lane(a, 4, pick(1)) << 32 | lane(b, 4, pick(2)) << 64 | lane(b, 4, pick(3)) << 96;
            Ok(())
        }),
        M::Shufpd => h!(|e, i| {
            let (n, d, b) = (i.immediate(2), dst(i), src(e, i, 1)?);
            let a = e.s.xmm[d];
            e.s.xmm[d] = lane(a, 8, n & 1) | lane(b, 8, (n >> 1) & 1) << 64;
            Ok(())
        }),
        M::Pmovmskb => h!(|e, i| movmsk(e, i, 1)),
        M::Movmskps => h!(|e, i| movmsk(e, i, 4)),
        M::Movmskpd => h!(|e, i| movmsk(e, i, 8)),
        M::Pextrw => h!(|e, i| {
            let (n, b) = (i.immediate(2), src(e, i, 1)?);
            let v = lane(b, 2, n & 7) as u64;
            e.write_op(i, 0, e.op_size(i, 0).max(2), v)?;
            Ok(())
        }),
        M::Pinsrw => h!(|e, i| {
            let (n, d, b) = (i.immediate(2) & 7, dst(i), src(e, i, 1)?);
            e.s.xmm[d] = (e.s.xmm[d] & !(0xffffu128 << (16 * n))) | ((b & 0xffff) << (16 * n));
            Ok(())
        }),

        // ---- floating point arithmetic
        M::Addss => h!(|e, i| fp_scalar(e, i, S, Op::Add)),
        M::Addsd => h!(|e, i| fp_scalar(e, i, D, Op::Add)),
        M::Addps => h!(|e, i| fp_packed(e, i, S, Op::Add)),
        M::Addpd => h!(|e, i| fp_packed(e, i, D, Op::Add)),
        M::Subss => h!(|e, i| fp_scalar(e, i, S, Op::Sub)),
        M::Subsd => h!(|e, i| fp_scalar(e, i, D, Op::Sub)),
        M::Subps => h!(|e, i| fp_packed(e, i, S, Op::Sub)),
        M::Subpd => h!(|e, i| fp_packed(e, i, D, Op::Sub)),
        M::Mulss => h!(|e, i| fp_scalar(e, i, S, Op::Mul)),
        M::Mulsd => h!(|e, i| fp_scalar(e, i, D, Op::Mul)),
        M::Mulps => h!(|e, i| fp_packed(e, i, S, Op::Mul)),
        M::Mulpd => h!(|e, i| fp_packed(e, i, D, Op::Mul)),
        M::Divss => h!(|e, i| fp_scalar(e, i, S, Op::Div)),
        M::Divsd => h!(|e, i| fp_scalar(e, i, D, Op::Div)),
        M::Divps => h!(|e, i| fp_packed(e, i, S, Op::Div)),
        M::Divpd => h!(|e, i| fp_packed(e, i, D, Op::Div)),
        M::Sqrtss => h!(|e, i| fp_scalar(e, i, S, Op::Sqrt)),
        M::Sqrtsd => h!(|e, i| fp_scalar(e, i, D, Op::Sqrt)),
        M::Sqrtps => h!(|e, i| fp_packed(e, i, S, Op::Sqrt)),
        M::Sqrtpd => h!(|e, i| fp_packed(e, i, D, Op::Sqrt)),
        M::Minss => h!(|e, i| fp_scalar(e, i, S, Op::Min)),
        M::Minsd => h!(|e, i| fp_scalar(e, i, D, Op::Min)),
        M::Minps => h!(|e, i| fp_packed(e, i, S, Op::Min)),
        M::Minpd => h!(|e, i| fp_packed(e, i, D, Op::Min)),
        M::Maxss => h!(|e, i| fp_scalar(e, i, S, Op::Max)),
        M::Maxsd => h!(|e, i| fp_scalar(e, i, D, Op::Max)),
        M::Maxps => h!(|e, i| fp_packed(e, i, S, Op::Max)),
        M::Maxpd => h!(|e, i| fp_packed(e, i, D, Op::Max)),

        // ---- floating point compares
        M::Ucomiss => h!(|e, i| comis(e, i, S, false)),
        M::Ucomisd => h!(|e, i| comis(e, i, D, false)),
        M::Comiss => h!(|e, i| comis(e, i, S, true)),
        M::Comisd => h!(|e, i| comis(e, i, D, true)),
        M::Cmpss => h!(|e, i| cmp(e, i, S, 1)),
        M::Cmpsd if ins.code() == Code::Cmpsd_xmm_xmmm64_imm8 => h!(|e, i| cmp(e, i, D, 1)),
        M::Cmpps => h!(|e, i| cmp(e, i, S, 4)),
        M::Cmppd => h!(|e, i| cmp(e, i, D, 2)),

        // ---- conversions
        M::Cvtsi2sd => h!(|e, i| cvtsi2f(e, i, D)),
        M::Cvtsi2ss => h!(|e, i| cvtsi2f(e, i, S)),
        M::Cvttsd2si => h!(|e, i| cvtf2si(e, i, D, true)),
        M::Cvtsd2si => h!(|e, i| cvtf2si(e, i, D, false)),
        M::Cvttss2si => h!(|e, i| cvtf2si(e, i, S, true)),
        M::Cvtss2si => h!(|e, i| cvtf2si(e, i, S, false)),
        M::Cvtsd2ss => h!(|e, i| {
            let (d, b) = (dst(i), src(e, i, 1)?);
            let (v, fl) = fp::d_to_s(b as u64, rc(e));
            raise(e, fl)?;
            e.s.xmm[d] = (e.s.xmm[d] & !LO32) | v as u128;
            Ok(())
        }),
        M::Cvtss2sd => h!(|e, i| {
            let (d, b) = (dst(i), src(e, i, 1)?);
            let (v, fl) = fp::s_to_d(b as u64);
            raise(e, fl)?;
            e.s.xmm[d] = (e.s.xmm[d] & !LO64) | v as u128;
            Ok(())
        }),
        M::Cvtdq2pd => h!(|e, i| {
            let b = src(e, i, 1)?;
            let f = |k| (s32(lane(b, 4, k) as u64) as f64).to_bits() as u128;
            e.s.xmm[dst(i)] = f(0) | f(1) << 64;
            Ok(())
        }),
        M::Cvtdq2ps => h!(|e, i| {
            let b = src(e, i, 1)?;
            let rc = rc(e);
            convert(e, i, 4, (0..4).map(|k| fp::from_int(Prec::S, s32(lane(b, 4, k) as u64), rc)))
        }),
        M::Cvttps2dq | M::Cvtps2dq => h!(|e, i| {
            let b = src(e, i, 1)?;
            let rc = if i.mnemonic() == Mnemonic::Cvttps2dq { Rc::Zero } else { rc(e) };
            convert(e, i, 4, (0..4).map(|k| fp::to_int(Prec::S, lane(b, 4, k) as u64, 4, rc)))
        }),
        M::Cvttpd2dq | M::Cvtpd2dq => h!(|e, i| {
            let b = src(e, i, 1)?;
            let rc = if i.mnemonic() == Mnemonic::Cvttpd2dq { Rc::Zero } else { rc(e) };
            convert(e, i, 4, (0..2).map(|k| fp::to_int(Prec::D, lane(b, 8, k) as u64, 4, rc)))
        }),
        M::Cvtps2pd => h!(|e, i| {
            let b = src(e, i, 1)?;
            convert(e, i, 8, (0..2).map(|k| fp::s_to_d(lane(b, 4, k) as u64)))
        }),
        M::Cvtpd2ps => h!(|e, i| {
            let b = src(e, i, 1)?;
            let rc = rc(e);
            convert(e, i, 4, (0..2).map(|k| fp::d_to_s(lane(b, 8, k) as u64, rc)))
        }),

        // ---- state
        M::Ldmxcsr => h!(|e, i| {
            let va = e.ea(i);
            let v = e.read_sized(va, 4)? as u32;
            if v & !fp::MXCSR_MASK != 0 {
                return Err(gp0());
            }
            e.s.mxcsr = v;
            Ok(())
        }),
        M::Stmxcsr => h!(|e, i| {
            let va = e.ea(i);
            let v = e.s.mxcsr as u64;
            e.write_sized(va, 4, v)?;
            Ok(())
        }),
        M::Fxsave | M::Fxsave64 => fxsave,
        M::Fxrstor | M::Fxrstor64 => fxrstor,
        _ => return None,
    })
}

const LO32: u128 = 0xffff_ffff;
const LO64: u128 = u64::MAX as u128;

fn gp0() -> Stop {
    Stop::Fault(Exception::GeneralProtection(0))
}

/// The destination XMM register number.
#[inline(always)]
fn dst(ins: &Instruction) -> usize {
    xmm_index(ins.op0_register())
}

/// Legacy SSE demands 16-byte alignment of m128 operands, except for these.
fn unaligned_ok(m: Mnemonic) -> bool {
    matches!(m, Mnemonic::Movups | Mnemonic::Movupd | Mnemonic::Movdqu | Mnemonic::Lddqu)
}

#[inline(always)]
fn check_align(ins: &Instruction, va: u64, size: usize) -> R {
    if size == 16 && va & 15 != 0 && !unaligned_ok(ins.mnemonic()) {
        return Err(gp0());
    }
    Ok(())
}

/// Operand `i`: an XMM register, a GPR (zero-extended), memory of the instruction's memory
/// size (zero-extended), or an immediate.
#[inline(always)]
fn src(e: &mut Exec, ins: &Instruction, i: u32) -> Result<u128, Stop> {
    match ins.op_kind(i) {
        OpKind::Register => {
            let r = ins.op_register(i);
            Ok(if r.is_xmm() { e.s.xmm[xmm_index(r)] } else { e.get_reg(r) as u128 })
        }
        OpKind::Memory => {
            let va = e.ea(ins);
            let size = ins.memory_size().size();
            check_align(ins, va, size)?;
            Ok(match size {
                16 => e.read_u128(va)?,
                n => e.read_sized(va, n as u32)? as u128,
            })
        }
        _ => Ok(ins.immediate(i) as u128),
    }
}

/// Writes operand 0: a whole XMM register, a GPR, or memory of the memory size.
#[inline(always)]
fn store(e: &mut Exec, ins: &Instruction, v: u128) -> R {
    match ins.op0_kind() {
        OpKind::Register => {
            let r = ins.op0_register();
            if r.is_xmm() {
                e.s.xmm[xmm_index(r)] = v;
            } else {
                e.set_reg(r, v as u64);
            }
        }
        _ => {
            let va = e.ea(ins);
            let size = ins.memory_size().size();
            check_align(ins, va, size)?;
            match size {
                16 => e.write_u128(va, v)?,
                n => e.write_sized(va, n as u32, v as u64)?,
            }
        }
    }
    Ok(())
}

fn is_xmm_op(ins: &Instruction, i: u32) -> bool {
    ins.op_kind(i) == OpKind::Register && ins.op_register(i).is_xmm()
}

/// MOVD/MOVQ: into an XMM register the value is zero-extended to 128 bits; out of one,
/// the low `size` bytes are stored.
fn movdq(e: &mut Exec, ins: &Instruction, size: u32) -> R {
    let v = src(e, ins, 1)? & mask(size) as u128;
    if is_xmm_op(ins, 0) {
        e.s.xmm[dst(ins)] = v;
        Ok(())
    } else {
        store(e, ins, v)
    }
}

/// MOVSS/MOVSD: register to register merges the low lane; a load zeroes the rest.
fn movs(e: &mut Exec, ins: &Instruction, size: u32) -> R {
    let m = mask(size) as u128;
    let v = src(e, ins, 1)? & m;
    if !is_xmm_op(ins, 0) {
        return store(e, ins, v);
    }
    let d = dst(ins);
    e.s.xmm[d] = if is_xmm_op(ins, 1) { (e.s.xmm[d] & !m) | v } else { v };
    Ok(())
}

/// MOVLPS/MOVLPD/MOVHPS/MOVHPD: a 64-bit half moves between memory and the register.
fn movhl(e: &mut Exec, ins: &Instruction, high: bool) -> R {
    let sh = if high { 64 } else { 0 };
    if is_xmm_op(ins, 0) {
        let v = src(e, ins, 1)? & LO64;
        let d = dst(ins);
        e.s.xmm[d] = (e.s.xmm[d] & !(LO64 << sh)) | (v << sh);
        Ok(())
    } else {
        let v = src(e, ins, 1)? >> sh;
        store(e, ins, v & LO64)
    }
}

/// dst = f(dst, src) on whole registers.
#[inline(always)]
fn pk(e: &mut Exec, ins: &Instruction, f: impl Fn(u128, u128) -> u128) -> R {
    let b = src(e, ins, 1)?;
    let d = dst(ins);
    e.s.xmm[d] = f(e.s.xmm[d], b);
    Ok(())
}

/// Lane `k` of width `w` bytes.
#[inline(always)]
fn lane(v: u128, w: u32, k: u64) -> u128 {
    (v >> (k as u32 * w * 8)) & mask(w) as u128
}

/// Applies `f` to each pair of `w`-byte lanes (zero-extended; results truncated).
#[inline(always)]
fn lanes(a: u128, b: u128, w: u32, mut f: impl FnMut(u64, u64) -> u64) -> u128 {
    let m = mask(w);
    let mut r = 0u128;
    for k in 0..16 / w {
        let sh = k * w * 8;
        let x = (a >> sh) as u64 & m;
        let y = (b >> sh) as u64 & m;
        r |= ((f(x, y) & m) as u128) << sh;
    }
    r
}

#[inline(always)]
fn lanes_op(e: &mut Exec, ins: &Instruction, w: u32, f: impl Fn(u64, u64) -> u64 + Copy) -> R {
    pk(e, ins, move |a, b| lanes(a, b, w, f))
}

fn all(c: bool) -> u64 {
    if c {
        u64::MAX
    } else {
        0
    }
}
fn s8(x: u64) -> i64 {
    x as u8 as i8 as i64
}
fn s16(x: u64) -> i64 {
    x as u16 as i16 as i64
}
fn s32(x: u64) -> i64 {
    x as u32 as i32 as i64
}

/// Signed saturation of `v` to `w` bytes.
fn sat_s(v: i64, w: u32) -> u64 {
    let max = (1i64 << (w * 8 - 1)) - 1;
    v.clamp(-max - 1, max) as u64
}

/// Interleaves the low (or high) halves of `a` and `b`, `w`-byte lanes: a0 b0 a1 b1 ...
fn interleave(a: u128, b: u128, w: u32, high: bool) -> u128 {
    let n = 8 / w; // lanes taken from each
    let base = if high { n as u64 } else { 0 };
    let mut r = 0u128;
    for k in 0..n {
        r |= lane(a, w, base + k as u64) << (2 * k * w * 8);
        r |= lane(b, w, base + k as u64) << ((2 * k + 1) * w * 8);
    }
    r
}

/// Narrows the `w`-byte lanes of `a` then `b` to `w/2` bytes with `f`.
fn pack(a: u128, b: u128, w: u32, f: impl Fn(u64) -> u64) -> u128 {
    let n = 16 / w;
    let hw = w / 2;
    let mut r = 0u128;
    for k in 0..n {
        r |= ((f(lane(a, w, k as u64) as u64) & mask(hw)) as u128) << (k * hw * 8);
        r |= ((f(lane(b, w, k as u64) as u64) & mask(hw)) as u128) << ((k + n) * hw * 8);
    }
    r
}

enum Shift {
    Left,
    Right,
    Arith,
}

/// PSLL/PSRL/PSRA by an immediate or by the low 64 bits of an XMM/m128 operand. Counts
/// beyond the lane width give zero (or the sign, for arithmetic shifts).
fn shift(e: &mut Exec, ins: &Instruction, w: u32, kind: Shift) -> R {
    let count = src(e, ins, 1)? as u64;
    let bits = (w * 8) as u64;
    let d = dst(ins);
    e.s.xmm[d] = lanes(e.s.xmm[d], 0, w, |x, _| match kind {
        Shift::Left if count < bits => x << count,
        Shift::Right if count < bits => x >> count,
        Shift::Arith => (sext(x, w) as i64 >> count.min(bits - 1)) as u64,
        _ => 0,
    });
    Ok(())
}

/// PMOVMSKB/MOVMSKPS/MOVMSKPD: the sign bits of the `w`-byte lanes into a GPR.
fn movmsk(e: &mut Exec, ins: &Instruction, w: u32) -> R {
    let b = src(e, ins, 1)?;
    let mut m = 0u64;
    for k in 0..16 / w {
        m |= (((b >> ((k + 1) * w * 8 - 1)) & 1) as u64) << k;
    }
    e.set_reg(ins.op0_register(), m);
    Ok(())
}

// ---- floating point ----------------------------------------------------------------------

#[inline(always)]
fn rc(e: &Exec) -> Rc {
    Rc::of(e.s.mxcsr)
}

/// Records exception flags in MXCSR; an unmasked one raises #XM.
#[inline(always)]
fn raise(e: &mut Exec, fl: u32) -> R {
    if fl == 0 {
        return Ok(());
    }
    e.s.mxcsr |= fl;
    if fl & !(e.s.mxcsr >> 7) & fp::FLAGS != 0 {
        return Err(Stop::Fault(Exception::SimdFpe));
    }
    Ok(())
}

fn width(p: Prec) -> u32 {
    match p {
        Prec::S => 4,
        Prec::D => 8,
    }
}

/// ADDSD and friends: the low lane computed, the rest of the destination kept.
fn fp_scalar(e: &mut Exec, ins: &Instruction, p: Prec, op: Op) -> R {
    let (d, b) = (dst(ins), src(e, ins, 1)?);
    let m = mask(width(p)) as u128;
    let a = e.s.xmm[d];
    let (v, fl) = fp::arith(p, op, (a & m) as u64, (b & m) as u64, e.s.mxcsr);
    raise(e, fl)?;
    e.s.xmm[d] = (a & !m) | v as u128;
    Ok(())
}

/// ADDPD and friends: every lane, flags of all lanes together.
fn fp_packed(e: &mut Exec, ins: &Instruction, p: Prec, op: Op) -> R {
    let (d, b) = (dst(ins), src(e, ins, 1)?);
    let a = e.s.xmm[d];
    let w = width(p);
    let mut fl = 0;
    let mxcsr = e.s.mxcsr;
    let r = lanes(a, b, w, |x, y| {
        let (v, f) = fp::arith(p, op, x, y, mxcsr);
        fl |= f;
        v
    });
    raise(e, fl)?;
    e.s.xmm[d] = r;
    Ok(())
}

/// UCOMIS*/COMIS*: ZF PF CF = 111 unordered, 000 greater, 001 less, 100 equal; OF SF AF 0.
fn comis(e: &mut Exec, ins: &Instruction, p: Prec, signal: bool) -> R {
    let (a, b) = (e.s.xmm[dst(ins)], src(e, ins, 1)?);
    let m = mask(width(p)) as u128;
    let (c, fl) = fp::compare(p, (a & m) as u64, (b & m) as u64, signal);
    raise(e, fl)?;
    e.set_flags(ARITH, c.eflags());
    Ok(())
}

/// CMPSS/CMPSD (`lanes_n` = 1: the low lane, the rest kept) and CMPPS/CMPPD: all-ones
/// where the predicate holds.
fn cmp(e: &mut Exec, ins: &Instruction, p: Prec, lanes_n: u32) -> R {
    let (d, b) = (dst(ins), src(e, ins, 1)?);
    let imm = ins.immediate(2) as u8;
    let a = e.s.xmm[d];
    let w = width(p);
    let mut fl = 0;
    let r = lanes(a, b, w, |x, y| {
        let (t, f) = fp::predicate(p, imm, x, y);
        fl |= f;
        all(t)
    });
    let lanes_m = if lanes_n * w == 16 { u128::MAX } else { mask(lanes_n * w) as u128 };
    // Scalar forms only look at lane 0; flags of the other lanes must not count.
    if lanes_n == 1 {
        fl = fp::predicate(p, imm, (a & lanes_m) as u64, (b & lanes_m) as u64).1;
    }
    raise(e, fl)?;
    e.s.xmm[d] = (a & !lanes_m) | (r & lanes_m);
    Ok(())
}

/// CVTSI2SD/CVTSI2SS from a 32- or 64-bit integer register or memory.
fn cvtsi2f(e: &mut Exec, ins: &Instruction, p: Prec) -> R {
    let size = match ins.op1_kind() {
        OpKind::Register => e.op_size(ins, 1),
        _ => ins.memory_size().size() as u32,
    };
    let v = sext(src(e, ins, 1)? as u64, size) as i64;
    let (r, fl) = fp::from_int(p, v, rc(e));
    raise(e, fl)?;
    let d = dst(ins);
    let m = mask(width(p)) as u128;
    e.s.xmm[d] = (e.s.xmm[d] & !m) | r as u128;
    Ok(())
}

/// CVT(T)SD2SI/CVT(T)SS2SI into a 32- or 64-bit register.
fn cvtf2si(e: &mut Exec, ins: &Instruction, p: Prec, truncate: bool) -> R {
    let x = src(e, ins, 1)? as u64 & mask(width(p));
    let size = e.op_size(ins, 0);
    let (v, fl) = fp::to_int(p, x, size, if truncate { Rc::Zero } else { rc(e) });
    raise(e, fl)?;
    e.set_reg(ins.op0_register(), v);
    Ok(())
}

/// Packed conversions: the results, `w` bytes each, fill the destination from lane 0; the
/// lanes beyond them are zeroed.
fn convert(e: &mut Exec, ins: &Instruction, w: u32, results: impl Iterator<Item = (u64, u32)>) -> R {
    let mut r = 0u128;
    let mut fl = 0;
    for (k, (v, f)) in results.enumerate() {
        r |= ((v & mask(w)) as u128) << (k as u32 * w * 8);
        fl |= f;
    }
    raise(e, fl)?;
    e.s.xmm[dst(ins)] = r;
    Ok(())
}

// ---- FXSAVE / FXRSTOR --------------------------------------------------------------------

/// The FXSAVE image of `s` (SDM Vol. 1, 10.5.1, 64-bit layout): bytes 0-415. FIP/FDP/FOP
/// are stored as zero: pagelab does not track the last x87 instruction. Bytes 416-511 are
/// zero here; the instruction leaves them as they were in memory (hardware does not write
/// them), and the kernel's signal frame writes its own. Shared by FXSAVE and the signal
/// frame's fpstate (Linux: copy_fpstate_to_sigframe).
pub fn fxsave_image(s: &CpuState) -> [u8; 512] {
    let mut img = [0u8; 512];
    let x = &s.x87;
    img[0..2].copy_from_slice(&x.fcw.to_le_bytes());
    img[2..4].copy_from_slice(&super::x87::fsw_image(x).to_le_bytes());
    img[4] = x.ftw;
    img[24..28].copy_from_slice(&s.mxcsr.to_le_bytes());
    img[28..32].copy_from_slice(&fp::MXCSR_MASK.to_le_bytes());
    for i in 0..8 {
        let slot = 32 + 16 * i;
        let v = x.st[(x.top as usize + i) & 7];
        img[slot..slot + 10].copy_from_slice(&super::x87::f64_to_f80(v));
    }
    for (i, r) in s.xmm.iter().enumerate() {
        img[160 + 16 * i..176 + 16 * i].copy_from_slice(&r.to_le_bytes());
    }
    img
}

/// Loads an FXSAVE image into `s`, as FXRSTOR does; FXRSTOR's #GP(0) when MXCSR has
/// reserved bits set, leaving `s` unchanged. Shared by FXRSTOR and rt_sigreturn.
pub fn fxrstor_image(s: &mut CpuState, img: &[u8; 512]) -> Result<(), Exception> {
    let mxcsr = u32::from_le_bytes(img[24..28].try_into().unwrap());
    if mxcsr & !fp::MXCSR_MASK != 0 {
        return Err(Exception::GeneralProtection(0));
    }
    s.mxcsr = mxcsr;
    let x = &mut s.x87;
    x.fcw = u16::from_le_bytes([img[0], img[1]]);
    let fsw = u16::from_le_bytes([img[2], img[3]]);
    x.top = ((fsw >> 11) & 7) as u8;
    x.fsw = fsw & !0x3800;
    x.ftw = img[4];
    for i in 0..8 {
        let slot = 32 + 16 * i;
        let v = super::x87::f80_to_f64(img[slot..slot + 10].try_into().unwrap());
        x.st[(x.top as usize + i) & 7] = v;
    }
    for i in 0..16 {
        s.xmm[i] = u128::from_le_bytes(img[160 + 16 * i..176 + 16 * i].try_into().unwrap());
    }
    Ok(())
}

fn fxsave(e: &mut Exec, ins: &Instruction) -> R {
    let va = e.ea(ins);
    if va & 15 != 0 {
        return Err(gp0());
    }
    let mut img = [0u8; 512];
    // Read first so the tail keeps its contents; write_bytes translates every page for
    // write before writing anything.
    e.read_bytes(va, &mut img)?;
    img[..416].copy_from_slice(&fxsave_image(e.s)[..416]);
    e.write_bytes(va, &img)?;
    Ok(())
}

fn fxrstor(e: &mut Exec, ins: &Instruction) -> R {
    let va = e.ea(ins);
    if va & 15 != 0 {
        return Err(gp0());
    }
    let mut img = [0u8; 512];
    e.read_bytes(va, &mut img)?;
    fxrstor_image(e.s, &img).map_err(Stop::Fault)
}
