//! The x87 FPU subset static glibc executes (SDM Vol. 1 ch. 8): loads and stores of
//! m32/m64/m80 and integers, the stack moves, FXAM/FUCOMI* (printf's long double path),
//! the control/status word instructions (strtod's rounding-mode query), FNSTENV/FLDENV
//! (soft-fp's exception raising) and the basic arithmetic.
//!
//! APPROXIMATION: `CpuState.x87.st` holds f64, not 80-bit extended values. FLD m80 rounds
//! to double (to nearest), FSTP m80 widens exactly, and arithmetic is done in double
//! precision under FCW.RC (precision control is ignored). Programs that only move long
//! doubles through the stack (printf's va_arg copies do FLDT/FSTPT) keep the value exactly
//! when it is representable as a double — every long double converted from a double is —
//! but a long double with more than 53 significant bits loses its low bits: that is the
//! known gap for `printf("%Lf")` of such values.
//!
//! Other simplifications: FIP/FDP/FOP are not tracked (stored as zero); an unmasked
//! exception sets FSW.ES/B but the #MF it would raise at the next waiting instruction is
//! not delivered; denormal-operand (DE) is reported only by loads of singles and doubles.
//!
//! Register numbering: `st[p]` is physical register p; ST(i) is `st[(top + i) & 7]`; `ftw`
//! is the abridged tag (bit p set = physical register p holds a value). `fsw` keeps TOP
//! out of bits 11-13; [`fsw_image`] puts it back.

use super::exec::{Exec, Handler, Stop};
use super::flags::{ARITH, CF, PF, ZF};
use super::sse::fp::{self, Cmp, Op, Prec, Rc};
use super::X87;
use iced_x86::{Instruction, MemorySize, Mnemonic, OpKind, Register};

type R = Result<(), Stop>;

/// FSW bits.
const SF: u16 = 1 << 6;
const ES: u16 = 1 << 7;
const C0: u16 = 1 << 8;
const C1: u16 = 1 << 9;
const C2: u16 = 1 << 10;
const C3: u16 = 1 << 14;
const B: u16 = 1 << 15;
const CC: u16 = C0 | C1 | C2 | C3;
/// IE..PE, the same bit positions as MXCSR's flags.
const IE: u16 = fp::IE as u16;
const INDEFINITE: u64 = 0xfff8_0000_0000_0000;

macro_rules! h {
    (|$e:ident, $i:ident| $body:expr) => {
        (|$e: &mut Exec, $i: &Instruction| -> R { $body }) as Handler
    };
}

pub fn select(ins: &Instruction) -> Option<Handler> {
    use Mnemonic as M;
    Some(match ins.mnemonic() {
        M::Fninit => h!(|e, _i| {
            e.s.x87 = X87::default();
            Ok(())
        }),
        M::Wait => h!(|_e, _i| Ok(())),
        M::Fnclex => h!(|e, _i| {
            e.s.x87.fsw &= !(0x3f | SF | ES | B);
            Ok(())
        }),
        M::Fnstcw => h!(|e, i| store_int(e, i, e.s.x87.fcw as u64)),
        M::Fldcw => h!(|e, i| {
            let va = e.ea(i);
            e.s.x87.fcw = e.read_sized(va, 2)? as u16;
            Ok(())
        }),
        M::Fnstsw => h!(|e, i| {
            let v = fsw_image(&e.s.x87) as u64;
            if i.op0_kind() == OpKind::Register {
                e.set_reg(i.op0_register(), v);
                Ok(())
            } else {
                store_int(e, i, v)
            }
        }),
        M::Fnstenv => fnstenv,
        M::Fldenv => fldenv,
        M::Fld => fld,
        M::Fst | M::Fstp => fst,
        M::Fild => fild,
        M::Fist | M::Fistp | M::Fisttp => fist,
        M::Fldz => h!(|e, _i| push(e, 0.0)),
        M::Fld1 => h!(|e, _i| push(e, 1.0)),
        M::Fldpi => h!(|e, _i| push(e, std::f64::consts::PI)),
        M::Fldl2e => h!(|e, _i| push(e, std::f64::consts::LOG2_E)),
        M::Fldl2t => h!(|e, _i| push(e, std::f64::consts::LOG2_10)),
        M::Fldlg2 => h!(|e, _i| push(e, std::f64::consts::LOG10_2)),
        M::Fldln2 => h!(|e, _i| push(e, std::f64::consts::LN_2)),
        M::Fxch => h!(|e, i| {
            let j = if i.op_count() > 1 { sti(i.op1_register()) } else { 1 };
            let (a, b) = (phys(&e.s.x87, 0), phys(&e.s.x87, j));
            let x = &mut e.s.x87;
            if !valid(x, a) || !valid(x, b) {
                underflow(x);
            }
            x.st.swap(a, b);
            let (ta, tb) = (x.ftw >> a & 1, x.ftw >> b & 1);
            x.ftw = (x.ftw & !(1 << a) & !(1 << b)) | (ta << b) | (tb << a);
            x.fsw &= !C1;
            Ok(())
        }),
        M::Ffree => h!(|e, i| {
            let p = phys(&e.s.x87, sti(i.op0_register()));
            e.s.x87.ftw &= !(1 << p);
            Ok(())
        }),
        M::Fincstp => h!(|e, _i| {
            e.s.x87.top = (e.s.x87.top + 1) & 7;
            e.s.x87.fsw &= !C1;
            Ok(())
        }),
        M::Fdecstp => h!(|e, _i| {
            e.s.x87.top = (e.s.x87.top + 7) & 7;
            e.s.x87.fsw &= !C1;
            Ok(())
        }),
        M::Fchs => h!(|e, _i| unary(e, |v| -v)),
        M::Fabs => h!(|e, _i| unary(e, f64::abs)),
        M::Fsqrt => h!(|e, _i| {
            let a = st(e, 0);
            let (r, fl) = fp::arith(Prec::D, Op::Sqrt, 0, a.to_bits(), rc_mxcsr(e));
            flags(e, fl);
            set_st(e, 0, f64::from_bits(r));
            Ok(())
        }),
        M::Frndint => h!(|e, _i| {
            let a = st(e, 0);
            let r = if a.is_nan() { f64::from_bits(Prec::D.quiet(a.to_bits())) } else { fp::round_int(a, rc(e)) };
            if r != a && !a.is_nan() {
                flags(e, fp::PE);
            }
            set_st(e, 0, r);
            Ok(())
        }),
        M::Fxam => h!(|e, _i| {
            let x = &mut e.s.x87;
            let p = phys(x, 0);
            let v = x.st[p];
            // A double's subnormals are normal numbers in the extended format.
            let class = if !valid(x, p) {
                C3 | C0
            } else if v.is_nan() {
                C0
            } else if v.is_infinite() {
                C2 | C0
            } else if v == 0.0 {
                C3
            } else {
                C2
            };
            let sign = if v.is_sign_negative() { C1 } else { 0 };
            x.fsw = (x.fsw & !CC) | class | sign;
            Ok(())
        }),
        M::Ftst => h!(|e, _i| {
            let a = st(e, 0);
            fcom_cc(e, a, 0.0, true);
            Ok(())
        }),
        M::Fadd | M::Faddp => h!(|e, i| arith(e, i, Op::Add, false)),
        M::Fsub | M::Fsubp => h!(|e, i| arith(e, i, Op::Sub, false)),
        M::Fsubr | M::Fsubrp => h!(|e, i| arith(e, i, Op::Sub, true)),
        M::Fmul | M::Fmulp => h!(|e, i| arith(e, i, Op::Mul, false)),
        M::Fdiv | M::Fdivp => h!(|e, i| arith(e, i, Op::Div, false)),
        M::Fdivr | M::Fdivrp => h!(|e, i| arith(e, i, Op::Div, true)),
        M::Fiadd => h!(|e, i| arith(e, i, Op::Add, false)),
        M::Fisub => h!(|e, i| arith(e, i, Op::Sub, false)),
        M::Fisubr => h!(|e, i| arith(e, i, Op::Sub, true)),
        M::Fimul => h!(|e, i| arith(e, i, Op::Mul, false)),
        M::Fidiv => h!(|e, i| arith(e, i, Op::Div, false)),
        M::Fidivr => h!(|e, i| arith(e, i, Op::Div, true)),
        M::Fucomi | M::Fucomip | M::Fcomi | M::Fcomip => h!(|e, i| {
            let m = i.mnemonic();
            let a = st(e, 0);
            let b = st(e, sti(i.op1_register()));
            let (c, fl) = fp::compare(Prec::D, a.to_bits(), b.to_bits(), matches!(m, Mnemonic::Fcomi | Mnemonic::Fcomip));
            flags(e, fl & fp::IE);
            e.set_flags(ARITH, c.eflags());
            e.s.x87.fsw &= !C1;
            if matches!(m, Mnemonic::Fucomip | Mnemonic::Fcomip) {
                pop(e);
            }
            Ok(())
        }),
        M::Fucom | M::Fucomp | M::Fucompp | M::Fcom | M::Fcomp | M::Fcompp => h!(|e, i| {
            let m = i.mnemonic();
            let a = st(e, 0);
            let b = if i.op_count() == 0 {
                st(e, 1)
            } else if i.op0_kind() == OpKind::Memory {
                load_mem(e, i)?
            } else {
                st(e, sti(i.op_register(i.op_count() - 1)))
            };
            fcom_cc(e, a, b, matches!(m, Mnemonic::Fcom | Mnemonic::Fcomp | Mnemonic::Fcompp));
            match m {
                Mnemonic::Fucomp | Mnemonic::Fcomp => pop(e),
                Mnemonic::Fucompp | Mnemonic::Fcompp => {
                    pop(e);
                    pop(e)
                }
                _ => {}
            }
            Ok(())
        }),
        M::Fcmovb | M::Fcmove | M::Fcmovbe | M::Fcmovu | M::Fcmovnb | M::Fcmovne | M::Fcmovnbe | M::Fcmovnu => h!(|e, i| {
            let f = |b: u64| e.s.rflags & b != 0;
            let take = match i.mnemonic() {
                Mnemonic::Fcmovb => f(CF),
                Mnemonic::Fcmove => f(ZF),
                Mnemonic::Fcmovbe => f(CF) || f(ZF),
                Mnemonic::Fcmovu => f(PF),
                Mnemonic::Fcmovnb => !f(CF),
                Mnemonic::Fcmovne => !f(ZF),
                Mnemonic::Fcmovnbe => !(f(CF) || f(ZF)),
                _ => !f(PF),
            };
            if take {
                let v = st(e, sti(i.op1_register()));
                set_st(e, 0, v);
            }
            Ok(())
        }),
        _ => return None,
    })
}

// ---- formats -----------------------------------------------------------------------------

/// The FSW as FNSTSW/FXSAVE store it: TOP in bits 11-13.
pub fn fsw_image(x: &X87) -> u16 {
    (x.fsw & !0x3800) | ((x.top as u16 & 7) << 11)
}

/// A double as an 80-bit extended value (exact: every double is representable).
pub fn f64_to_f80(v: f64) -> [u8; 10] {
    let b = v.to_bits();
    let sign = ((b >> 63) as u16) << 15;
    let exp = ((b >> 52) & 0x7ff) as i32;
    let frac = b & ((1 << 52) - 1);
    let (e80, mant): (u16, u64) = match exp {
        0 if frac == 0 => (0, 0),
        0 => {
            // Subnormal double: normalise (the extended exponent range holds it).
            let lz = frac.leading_zeros();
            ((-1011 - lz as i32 + 16383) as u16, frac << lz)
        }
        0x7ff => (0x7fff, 1 << 63 | frac << 11),
        _ => ((exp - 1023 + 16383) as u16, 1 << 63 | frac << 11),
    };
    let mut out = [0u8; 10];
    out[..8].copy_from_slice(&mant.to_le_bytes());
    out[8..].copy_from_slice(&(sign | e80).to_le_bytes());
    out
}

/// An 80-bit extended value rounded to the nearest double (ties to even). NaNs keep their
/// top payload bits; unnormals become the indefinite; pseudo-denormals are read by their
/// value; finite values outside the double range saturate (see below).
pub fn f80_to_f64(b: [u8; 10]) -> f64 {
    let mant = u64::from_le_bytes(b[..8].try_into().unwrap());
    let se = u16::from_le_bytes([b[8], b[9]]);
    let sign = (se as u64 >> 15) << 63;
    let exp = (se & 0x7fff) as i32;
    if exp == 0x7fff && mant >> 63 == 0 {
        // Pseudo-infinity or pseudo-NaN: unsupported, like unnormals below.
        return f64::from_bits(INDEFINITE);
    }
    if exp == 0x7fff {
        let frac = (mant >> 11) & ((1 << 52) - 1);
        if mant << 1 == 0 {
            return f64::from_bits(sign | 0x7ff0_0000_0000_0000);
        }
        let frac = if frac == 0 { 1 << 51 } else { frac };
        return f64::from_bits(sign | 0x7ff0_0000_0000_0000 | frac);
    }
    if mant == 0 {
        return f64::from_bits(sign);
    }
    if exp != 0 && mant >> 63 == 0 {
        // An unnormal: unsupported since the 387; operations on it are invalid and give the
        // indefinite, which is what it becomes here (without the IE of its later use).
        return f64::from_bits(INDEFINITE);
    }
    let lz = mant.leading_zeros();
    let m = mant << lz;
    // value = m / 2^63 * 2^e
    let e = exp.max(1) - 16383 - lz as i32;
    // Finite values beyond the double range keep their class: they saturate to the largest
    // double or the smallest subnormal instead of becoming infinity or zero. (printf tells
    // infinities from finite long doubles by comparing with LDBL_MAX, and FXAM must not
    // call LDBL_MIN zero.)
    const MAX: u64 = 0x7fef_ffff_ffff_ffff;
    if e > 1023 {
        return f64::from_bits(sign | MAX);
    }
    // Keep `keep` bits of m (53 for normals, fewer for subnormals), round half to even.
    let drop: u32 = if e >= -1022 { 11 } else { (11 + (-1022 - e)) as u32 };
    if drop > 64 {
        return f64::from_bits(sign | 1);
    }
    let (mut q, rem, half) = if drop == 64 { (0u64, m, 1u64 << 63) } else { (m >> drop, m & ((1u64 << drop) - 1), 1u64 << (drop - 1)) };
    if rem > half || (rem == half && q & 1 == 1) {
        q += 1;
    }
    let bits = if e >= -1022 {
        // q has 53 bits (or 54 after a carry).
        let (q, e) = if q >> 53 != 0 { (q >> 1, e + 1) } else { (q, e) };
        if e > 1023 {
            return f64::from_bits(sign | MAX);
        }
        ((e + 1023) as u64) << 52 | (q & ((1 << 52) - 1))
    } else {
        // Subnormal: q counts units of 2^-1074; a carry into bit 52 is the smallest normal.
        q.max(1)
    };
    f64::from_bits(sign | bits)
}

// ---- the register stack ------------------------------------------------------------------

fn sti(r: Register) -> usize {
    (r as usize).wrapping_sub(Register::ST0 as usize) & 7
}
fn phys(x: &X87, i: usize) -> usize {
    (x.top as usize + i) & 7
}
fn valid(x: &X87, p: usize) -> bool {
    x.ftw >> p & 1 != 0
}

/// Stack underflow: IE and SF, C1 clear; the masked response is the indefinite.
fn underflow(x: &mut X87) {
    x.fsw = (x.fsw | IE | SF) & !C1;
    if x.fcw & 1 == 0 {
        x.fsw |= ES | B;
    }
}

/// ST(i), or the indefinite (with a stack underflow) when it is empty.
fn st(e: &mut Exec, i: usize) -> f64 {
    let x = &mut e.s.x87;
    let p = phys(x, i);
    if !valid(x, p) {
        underflow(x);
        return f64::from_bits(INDEFINITE);
    }
    x.st[p]
}

fn set_st(e: &mut Exec, i: usize, v: f64) {
    let x = &mut e.s.x87;
    let p = phys(x, i);
    x.st[p] = v;
    x.ftw |= 1 << p;
}

fn push(e: &mut Exec, v: f64) -> R {
    let x = &mut e.s.x87;
    let top = (x.top + 7) & 7;
    let v = if valid(x, top as usize) {
        // Stack overflow: IE, SF and C1 set; the masked response pushes the indefinite.
        x.fsw |= IE | SF | C1;
        if x.fcw & 1 == 0 {
            x.fsw |= ES | B;
        }
        f64::from_bits(INDEFINITE)
    } else {
        x.fsw &= !C1;
        v
    };
    x.top = top;
    x.st[top as usize] = v;
    x.ftw |= 1 << top;
    Ok(())
}

fn pop(e: &mut Exec) {
    let x = &mut e.s.x87;
    x.ftw &= !(1 << x.top);
    x.top = (x.top + 1) & 7;
}

fn rc(e: &Exec) -> Rc {
    Rc::from_bits(e.s.x87.fcw as u32 >> 10)
}

/// An MXCSR value with FCW's rounding control, for the shared arithmetic in `fp`.
fn rc_mxcsr(e: &Exec) -> u32 {
    ((e.s.x87.fcw as u32 >> 10) & 3) << 13 | 0x1f80
}

/// Records exception flags (IE..PE) in FSW; unmasked ones set ES and B.
fn flags(e: &mut Exec, fl: u32) {
    let x = &mut e.s.x87;
    let fl = (fl & 0x3f) as u16;
    x.fsw |= fl;
    if fl & !x.fcw & 0x3f != 0 {
        x.fsw |= ES | B;
    }
}

fn unary(e: &mut Exec, f: impl Fn(f64) -> f64) -> R {
    let a = st(e, 0);
    set_st(e, 0, f(a));
    e.s.x87.fsw &= !C1;
    Ok(())
}

/// FCOM/FUCOM/FTST condition codes: C3 C2 C0 = 000 greater, 001 less, 100 equal, 111
/// unordered.
fn fcom_cc(e: &mut Exec, a: f64, b: f64, signal: bool) {
    let (c, fl) = fp::compare(Prec::D, a.to_bits(), b.to_bits(), signal);
    flags(e, fl & fp::IE);
    let cc = match c {
        Cmp::Unordered => C3 | C2 | C0,
        Cmp::Greater => 0,
        Cmp::Less => C0,
        Cmp::Equal => C3,
    };
    e.s.x87.fsw = (e.s.x87.fsw & !CC) | cc;
}

// ---- memory forms ------------------------------------------------------------------------

/// Loads the memory operand as a double: m32/m64/m80 reals, m16/m32/m64 integers.
fn load_mem(e: &mut Exec, ins: &Instruction) -> Result<f64, Stop> {
    let va = e.ea(ins);
    let ms = ins.memory_size();
    Ok(match ms {
        // Loading a single or double reports SNaNs (IE, quieted) and denormals (DE).
        MemorySize::Float32 => {
            let v = e.read_sized(va, 4)?;
            let (d, fl) = fp::s_to_d(v);
            flags(e, fl);
            f64::from_bits(d)
        }
        MemorySize::Float64 => {
            let v = e.read_sized(va, 8)?;
            if Prec::D.is_snan(v) {
                flags(e, fp::IE);
                f64::from_bits(Prec::D.quiet(v))
            } else {
                if Prec::D.is_denormal(v) {
                    flags(e, fp::DE);
                }
                f64::from_bits(v)
            }
        }
        MemorySize::Float80 => {
            let mut b = [0u8; 10];
            e.read_bytes(va, &mut b)?;
            f80_to_f64(b)
        }
        MemorySize::Int16 => e.read_sized(va, 2)? as u16 as i16 as f64,
        MemorySize::Int32 => e.read_sized(va, 4)? as u32 as i32 as f64,
        MemorySize::Int64 => e.read_sized(va, 8)? as i64 as f64,
        _ => return Err(Stop::Unimplemented),
    })
}

fn store_int(e: &mut Exec, ins: &Instruction, v: u64) -> R {
    let va = e.ea(ins);
    let size = ins.memory_size().size() as u32;
    e.write_sized(va, size, v)?;
    Ok(())
}

fn fld(e: &mut Exec, ins: &Instruction) -> R {
    let v = match ins.op0_kind() {
        OpKind::Memory => load_mem(e, ins)?,
        _ => st(e, sti(ins.op0_register())),
    };
    push(e, v)
}

fn fild(e: &mut Exec, ins: &Instruction) -> R {
    let v = load_mem(e, ins)?;
    push(e, v)
}

fn fst(e: &mut Exec, ins: &Instruction) -> R {
    let v = st(e, 0);
    match ins.op0_kind() {
        OpKind::Memory => {
            let va = e.ea(ins);
            match ins.memory_size() {
                MemorySize::Float32 => {
                    let (s, fl) = fp::d_to_s(v.to_bits(), rc(e));
                    // Translate for write before touching FSW.
                    e.write_sized(va, 4, s)?;
                    flags(e, fl);
                }
                MemorySize::Float64 => e.write_sized(va, 8, v.to_bits())?,
                MemorySize::Float80 => e.write_bytes(va, &f64_to_f80(v))?,
                _ => return Err(Stop::Unimplemented),
            }
        }
        _ => set_st(e, sti(ins.op0_register()), v),
    }
    e.s.x87.fsw &= !C1;
    if ins.mnemonic() == Mnemonic::Fstp {
        pop(e);
    }
    Ok(())
}

fn fist(e: &mut Exec, ins: &Instruction) -> R {
    let v = st(e, 0);
    let size = ins.memory_size().size() as u32;
    let rc = if ins.mnemonic() == Mnemonic::Fisttp { Rc::Zero } else { rc(e) };
    let indefinite = 1u64 << (size * 8 - 1);
    let (r, fl) = if v.is_nan() {
        (indefinite, fp::IE)
    } else {
        let r = fp::round_int(v, rc);
        let lim = indefinite as f64;
        if !(r >= -lim && r < lim) {
            (indefinite, fp::IE)
        } else {
            ((r as i64) as u64 & super::flags::mask(size), if r != v { fp::PE } else { 0 })
        }
    };
    let va = e.ea(ins);
    e.write_sized(va, size, r)?;
    flags(e, fl);
    e.s.x87.fsw &= !C1;
    if ins.mnemonic() != Mnemonic::Fist {
        pop(e);
    }
    Ok(())
}

/// FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR, their P forms and the FI (integer operand) forms.
/// `reverse`: the result is src op dest.
fn arith(e: &mut Exec, ins: &Instruction, op: Op, reverse: bool) -> R {
    let (dest, b) = if ins.op0_kind() == OpKind::Memory {
        (0, load_mem(e, ins)?)
    } else if ins.op_count() == 2 {
        (sti(ins.op0_register()), st(e, sti(ins.op1_register())))
    } else {
        (1, st(e, 0))
    };
    let a = st(e, dest);
    let (x, y) = if reverse { (b, a) } else { (a, b) };
    let (r, fl) = fp::arith(Prec::D, op, x.to_bits(), y.to_bits(), rc_mxcsr(e));
    flags(e, fl & !fp::DE);
    set_st(e, dest, f64::from_bits(r));
    e.s.x87.fsw &= !C1;
    if matches!(ins.mnemonic(), Mnemonic::Faddp | Mnemonic::Fsubp | Mnemonic::Fsubrp | Mnemonic::Fmulp | Mnemonic::Fdivp | Mnemonic::Fdivrp) {
        pop(e);
    }
    Ok(())
}

// ---- environment -------------------------------------------------------------------------

/// The full two-bit tag word FNSTENV stores: 00 valid, 01 zero, 10 special, 11 empty.
fn full_tag(x: &X87) -> u16 {
    let mut t = 0u16;
    for p in 0..8 {
        let tag = if !valid(x, p) {
            3
        } else {
            let v = x.st[p];
            if v == 0.0 {
                1
            } else if v.is_finite() {
                0
            } else {
                2
            }
        };
        t |= tag << (2 * p);
    }
    t
}

/// FNSTENV m28 (32-bit format in 64-bit mode): FCW FSW FTW and zeroed pointers; then all
/// exceptions are masked.
fn fnstenv(e: &mut Exec, ins: &Instruction) -> R {
    let va = e.ea(ins);
    let x = &e.s.x87;
    let mut img = [0u8; 28];
    img[0..2].copy_from_slice(&x.fcw.to_le_bytes());
    img[2..4].fill(0xff);
    img[4..6].copy_from_slice(&fsw_image(x).to_le_bytes());
    img[6..8].fill(0xff);
    img[8..10].copy_from_slice(&full_tag(x).to_le_bytes());
    img[10..12].fill(0xff);
    e.write_bytes(va, &img)?;
    e.s.x87.fcw |= 0x3f;
    Ok(())
}

fn fldenv(e: &mut Exec, ins: &Instruction) -> R {
    let va = e.ea(ins);
    let mut img = [0u8; 28];
    e.read_bytes(va, &mut img)?;
    let x = &mut e.s.x87;
    x.fcw = u16::from_le_bytes([img[0], img[1]]);
    let fsw = u16::from_le_bytes([img[4], img[5]]);
    x.top = ((fsw >> 11) & 7) as u8;
    x.fsw = fsw & !0x3800;
    let tag = u16::from_le_bytes([img[8], img[9]]);
    x.ftw = (0..8).fold(0u8, |t, p| if (tag >> (2 * p)) & 3 != 3 { t | 1 << p } else { t });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f80_round_trips_every_kind_of_double() {
        for v in [0.0, -0.0, 1.0, -2.5, f64::MAX, f64::MIN_POSITIVE, 5e-324, 1.5e-310, f64::INFINITY, f64::NEG_INFINITY, 1.0 / 3.0] {
            assert_eq!(f80_to_f64(f64_to_f80(v)).to_bits(), v.to_bits(), "{v}");
        }
        let nan = f64::from_bits(0x7ff8_0000_0000_1234);
        assert_eq!(f80_to_f64(f64_to_f80(nan)).to_bits(), nan.to_bits());
    }

    #[test]
    fn f80_known_encodings() {
        // 1.0 = 3fff 8000000000000000
        assert_eq!(f64_to_f80(1.0), [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
        // 1 + 2^-63 rounds to 1.0; 1 + 2^-52 + 2^-53 (a tie, odd) rounds up.
        let mut b = f64_to_f80(1.0);
        b[0] = 1;
        assert_eq!(f80_to_f64(b), 1.0);
        let m: u64 = 1 << 63 | 1 << 11 | 1 << 10;
        b[..8].copy_from_slice(&m.to_le_bytes());
        assert_eq!(f80_to_f64(b), 1.0 + 2.0 * f64::EPSILON);
        // LDBL_MAX stays finite, LDBL_TRUE_MIN stays nonzero, infinity stays infinite.
        assert_eq!(f80_to_f64([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0x7f]), f64::MAX);
        assert_eq!(f80_to_f64([1, 0, 0, 0, 0, 0, 0, 0, 0, 0x80]), -5e-324);
        assert_eq!(f80_to_f64(f64_to_f80(f64::INFINITY)), f64::INFINITY);
    }
}
