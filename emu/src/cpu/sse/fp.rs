//! IEEE-754 arithmetic as SSE does it (SDM Vol. 1, 4.8 and 11.5): NaN propagation, the
//! default NaN, MXCSR rounding control and the MXCSR exception flags.
//!
//! Values travel as raw bits (`u64`, an f32 in the low 32 bits) tagged with a [`Prec`], so
//! every NaN payload is chosen here and never left to the host or to LLVM (which may swap
//! the operands of a commutative add and so change which NaN wins).
//!
//! Directed rounding without a soft-float library: the host computes the round-to-nearest
//! result `r` and the sign of `exact - r` (TwoSum for add/sub, an exact comparison of
//! integer significands for mul/div/sqrt). That sign is all directed rounding needs: round
//! down moves `r` one ulp down when the exact value lies below it, and so on. Single
//! precision is computed in double (exact for mul, correctly rounded for the rest, and
//! 53 >= 2*24+2 makes the second rounding innocuous) and rounded again with the same rule,
//! ties broken by the double-precision error.
//!
//! The residuals of mul/div/sqrt are found by comparing integer significands exactly (an
//! FMA residual would underflow for subnormal results). Known approximations: underflow
//! (UE) is detected on the rounded result; DAZ and FTZ are ignored.

use std::cmp::Ordering;

/// MXCSR exception flag bits (the masks are these shifted left by 7).
pub const IE: u32 = 1 << 0;
pub const DE: u32 = 1 << 1;
pub const ZE: u32 = 1 << 2;
pub const OE: u32 = 1 << 3;
pub const UE: u32 = 1 << 4;
pub const PE: u32 = 1 << 5;
pub const FLAGS: u32 = 0x3f;
/// MXCSR bits that exist: the model's choice (`cpu::model`).
pub use crate::cpu::model::MXCSR_MASK;

/// MXCSR.RC (bits 13-14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rc {
    Nearest,
    Down,
    Up,
    Zero,
}

impl Rc {
    pub fn of(mxcsr: u32) -> Rc {
        Rc::from_bits(mxcsr >> 13)
    }
    /// From the two-bit RC encoding shared by MXCSR and the x87 control word.
    pub fn from_bits(b: u32) -> Rc {
        match b & 3 {
            0 => Rc::Nearest,
            1 => Rc::Down,
            2 => Rc::Up,
            _ => Rc::Zero,
        }
    }
}

/// Operand precision: single (f32 in the low 32 bits) or double.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prec {
    S,
    D,
}

impl Prec {
    #[inline]
    pub fn is_nan(self, x: u64) -> bool {
        match self {
            Prec::S => f32::from_bits(x as u32).is_nan(),
            Prec::D => f64::from_bits(x).is_nan(),
        }
    }
    #[inline]
    fn quiet_bit(self) -> u64 {
        match self {
            Prec::S => 1 << 22,
            Prec::D => 1 << 51,
        }
    }
    #[inline]
    pub fn is_snan(self, x: u64) -> bool {
        self.is_nan(x) && x & self.quiet_bit() == 0
    }
    #[inline]
    pub fn quiet(self, x: u64) -> u64 {
        x | self.quiet_bit()
    }
    /// The QNaN floating-point indefinite.
    #[inline]
    pub fn default_nan(self) -> u64 {
        match self {
            Prec::S => 0xffc0_0000,
            Prec::D => 0xfff8_0000_0000_0000,
        }
    }
    #[inline]
    pub fn is_denormal(self, x: u64) -> bool {
        match self {
            Prec::S => f32::from_bits(x as u32).is_subnormal(),
            Prec::D => f64::from_bits(x).is_subnormal(),
        }
    }
    /// The value, widened exactly to f64 (not for NaNs, whose payload this does not keep).
    #[inline]
    pub fn to_f64(self, x: u64) -> f64 {
        match self {
            Prec::S => f32::from_bits(x as u32) as f64,
            Prec::D => f64::from_bits(x),
        }
    }
    fn min_normal(self) -> f64 {
        match self {
            Prec::S => f32::MIN_POSITIVE as f64,
            Prec::D => f64::MIN_POSITIVE,
        }
    }
}

#[inline]
fn sign_of(x: f64) -> i8 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

/// Rounds a value given as (`r`, the nearest f64, and `err`, the sign of exact - r) to
/// `prec` under `rc`. Returns the bits and the PE/OE/UE flags. `finite_in` says whether the
/// operands were finite (an infinite result then means overflow).
///
/// Overflow means the result rounded with an unbounded exponent exceeds the largest finite
/// value: when rounding toward zero that needs |exact| >= 2^(emax+1), more than the nearest
/// result being infinite. `d_huge` tells, for a double result whose nearest rounding
/// overflowed, whether |exact| >= 2^1024 (the caller knows the operation).
pub fn round(prec: Prec, r: f64, err: i8, rc: Rc, finite_in: bool, d_huge: bool) -> (u64, u32) {
    // How the rounding direction relates to r's sign.
    let (nearest, inward) = match rc {
        Rc::Nearest => (true, false),
        Rc::Zero => (false, true),
        Rc::Down => (false, r > 0.0),
        Rc::Up => (false, r < 0.0),
    };
    let outward_err = err as f64 * r > 0.0;
    let overflow = finite_in
        && match prec {
            Prec::D if nearest => r.is_infinite(),
            Prec::D if inward => r.is_infinite() && d_huge,
            Prec::D => r.is_infinite() || (r.abs() == f64::MAX && outward_err),
            Prec::S => {
                const MAX: f64 = f32::MAX as f64;
                const T: f64 = 340282366920938463463374607431768211456.0; // 2^128
                if nearest {
                    (r as f32).is_infinite()
                } else if inward {
                    r.abs() > T || (r.abs() == T && err as f64 * r >= 0.0)
                } else {
                    r.abs() > MAX || (r.abs() == MAX && outward_err)
                }
            }
        };
    let (bits, inexact) = match prec {
        Prec::D => {
            let v = if err == 0 { r } else { adjust64(r, err, rc) };
            (v.to_bits(), err != 0)
        }
        Prec::S => {
            let n = r as f32;
            let (v, e) = if n as f64 == r {
                (n, err)
            } else {
                // r is not a single: the exact value lies strictly between the two singles
                // around r. Nearest: n, unless r is their midpoint, where err decides.
                let (lo, hi) = if (n as f64) < r { (n, n.next_up()) } else { (n.next_down(), n) };
                let tie = r - lo as f64 == hi as f64 - r;
                match rc {
                    Rc::Nearest if tie && err != 0 => (if err > 0 { hi } else { lo }, 0),
                    Rc::Nearest => (n, 0),
                    _ => {
                        // Directed: the exact value lies where r does, between lo and hi.
                        let toward_up = match rc {
                            Rc::Up => true,
                            Rc::Down => false,
                            _ => r < 0.0,
                        };
                        (if toward_up { hi } else { lo }, 0)
                    }
                }
            };
            let v = if e == 0 { v } else { adjust32(v, e, rc) };
            (v.to_bits() as u64, n as f64 != r || err != 0)
        }
    };
    let mut fl = 0;
    if inexact {
        fl |= PE;
    }
    let v = prec.to_f64(bits);
    if overflow {
        fl |= OE | PE;
    }
    if inexact && v.abs() < prec.min_normal() {
        fl |= UE;
    }
    (bits, fl)
}

/// Directed adjustment of a nearest result `r` whose exact value is on side `err` of it.
fn adjust64(r: f64, err: i8, rc: Rc) -> f64 {
    match rc {
        Rc::Nearest => r,
        Rc::Down if err < 0 => r.next_down(),
        Rc::Up if err > 0 => r.next_up(),
        Rc::Zero if r > 0.0 && err < 0 => r.next_down(),
        Rc::Zero if r < 0.0 && err > 0 => r.next_up(),
        _ => r,
    }
}

fn adjust32(r: f32, err: i8, rc: Rc) -> f32 {
    match rc {
        Rc::Nearest => r,
        Rc::Down if err < 0 => r.next_down(),
        Rc::Up if err > 0 => r.next_up(),
        Rc::Zero if r > 0.0 && err < 0 => r.next_down(),
        Rc::Zero if r < 0.0 && err > 0 => r.next_up(),
        _ => r,
    }
}

/// A finite nonzero double as (integer significand, exponent): |x| = m * 2^e.
fn decompose(x: f64) -> (u64, i32) {
    let b = x.to_bits();
    let exp = ((b >> 52) & 0x7ff) as i32;
    let frac = b & ((1 << 52) - 1);
    if exp == 0 {
        (frac, -1074)
    } else {
        (frac | 1 << 52, exp - 1075)
    }
}

/// Compares a * 2^x with b * 2^y exactly (a, b > 0).
fn cmp_scaled(a: u128, x: i32, b: u128, y: i32) -> Ordering {
    let la = 128 - a.leading_zeros() as i32 + x;
    let lb = 128 - b.leading_zeros() as i32 + y;
    if la != lb {
        return la.cmp(&lb);
    }
    (a << a.leading_zeros()).cmp(&(b << b.leading_zeros()))
}

/// The sign of exact - r, given how |exact| compares with |r|.
fn side(mag: Ordering, r: f64) -> i8 {
    let s = if r < 0.0 { -1 } else { 1 };
    match mag {
        Ordering::Less => -s,
        Ordering::Equal => 0,
        Ordering::Greater => s,
    }
}

/// The arithmetic operations with IEEE semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
    /// Unary: the result is sqrt(b); a is ignored.
    Sqrt,
    Min,
    Max,
}

/// `a op b` in precision `prec` under `mxcsr`: the result bits and the exception flags.
/// `a` is the first source (the destination register), `b` the second.
pub fn arith(prec: Prec, op: Op, a: u64, b: u64, mxcsr: u32) -> (u64, u32) {
    let denormal = |x: u64| prec.is_denormal(x);
    if op == Op::Sqrt {
        if prec.is_nan(b) {
            return (prec.quiet(b), if prec.is_snan(b) { IE } else { 0 });
        }
        let de = if denormal(b) { DE } else { 0 };
        let fb = prec.to_f64(b);
        if fb < 0.0 {
            return (prec.default_nan(), IE);
        }
        let r = fb.sqrt();
        let err = if r == 0.0 || r.is_infinite() {
            0
        } else {
            let (ma, ea) = decompose(fb);
            let (mr, er) = decompose(r);
            side(cmp_scaled(ma as u128, ea, mr as u128 * mr as u128, 2 * er), r)
        };
        let (v, fl) = round(prec, r, err, Rc::of(mxcsr), fb.is_finite(), false);
        return (v, fl | de);
    }
    if op == Op::Min || op == Op::Max {
        // MINSD/MAXSD: if either is a NaN (quiet or not) or both are zeros, the second
        // source is returned unchanged; QNaNs signal invalid too.
        if prec.is_nan(a) || prec.is_nan(b) {
            return (b, IE);
        }
        let de = if denormal(a) || denormal(b) { DE } else { 0 };
        let (fa, fb) = (prec.to_f64(a), prec.to_f64(b));
        let pick_a = if op == Op::Min { fa < fb } else { fa > fb };
        return (if pick_a { a } else { b }, de);
    }
    if prec.is_nan(a) || prec.is_nan(b) {
        let ie = if prec.is_snan(a) || prec.is_snan(b) { IE } else { 0 };
        return (if prec.is_nan(a) { prec.quiet(a) } else { prec.quiet(b) }, ie);
    }
    let de = if denormal(a) || denormal(b) { DE } else { 0 };
    let (fa, fb) = (prec.to_f64(a), prec.to_f64(b));
    let rc = Rc::of(mxcsr);
    let finite = fa.is_finite() && fb.is_finite();
    let invalid = match op {
        Op::Add => fa.is_infinite() && fb.is_infinite() && fa.is_sign_negative() != fb.is_sign_negative(),
        Op::Sub => fa.is_infinite() && fb.is_infinite() && fa.is_sign_negative() == fb.is_sign_negative(),
        Op::Mul => (fa == 0.0 && fb.is_infinite()) || (fa.is_infinite() && fb == 0.0),
        Op::Div => (fa == 0.0 && fb == 0.0) || (fa.is_infinite() && fb.is_infinite()),
        _ => false,
    };
    if invalid {
        return (prec.default_nan(), IE | de);
    }
    let (r, err, ze) = match op {
        Op::Add | Op::Sub => {
            let fb = if op == Op::Sub { -fb } else { fb };
            let mut r = fa + fb;
            let err = if !finite {
                0
            } else if r.is_infinite() {
                -sign_of(r)
            } else {
                // TwoSum: exact error of the rounded sum.
                let bb = r - fa;
                sign_of((fa - (r - bb)) + (fb - bb))
            };
            if r == 0.0 && err == 0 && fa.is_sign_negative() != fb.is_sign_negative() {
                // x + (-x) is +0, except when rounding down.
                r = if rc == Rc::Down { -0.0 } else { 0.0 };
            }
            (r, err, false)
        }
        Op::Mul => {
            let r = fa * fb;
            let err = if !finite || r == 0.0 {
                if finite && r == 0.0 && fa != 0.0 && fb != 0.0 {
                    // Underflowed to zero: the exact product has the sign of r.
                    if r.is_sign_negative() { -1 } else { 1 }
                } else {
                    0
                }
            } else if r.is_infinite() {
                -sign_of(r)
            } else {
                let (ma, ea) = decompose(fa);
                let (mb, eb) = decompose(fb);
                let (mr, er) = decompose(r);
                side(cmp_scaled(ma as u128 * mb as u128, ea + eb, mr as u128, er), r)
            };
            (r, err, false)
        }
        Op::Div => {
            let ze = fb == 0.0 && fa.is_finite();
            let r = fa / fb;
            let err = if !finite || fb == 0.0 {
                0
            } else if r.is_infinite() {
                -sign_of(r)
            } else if r == 0.0 {
                if fa != 0.0 {
                    if r.is_sign_negative() { -1 } else { 1 }
                } else {
                    0
                }
            } else {
                // |a/b| against |r| is |a| against |r*b|, compared exactly.
                let (ma, ea) = decompose(fa);
                let (mb, eb) = decompose(fb);
                let (mr, er) = decompose(r);
                side(cmp_scaled(ma as u128, ea, mr as u128 * mb as u128, er + eb), r)
            };
            (r, err, ze)
        }
        _ => unreachable!(),
    };
    if ze {
        // Division by zero reports ZE alone (no denormal-operand flag).
        let bits = match prec {
            Prec::S => (r as f32).to_bits() as u64,
            Prec::D => r.to_bits(),
        };
        return (bits, ZE);
    }
    let huge = prec == Prec::D && finite && r.is_infinite() && beyond_double(op, fa, fb);
    let (v, fl) = round(prec, r, err, rc, finite, huge);
    (v, fl | de)
}

/// For finite operands whose nearest result overflowed: is |a op b| >= 2^1024?
fn beyond_double(op: Op, fa: f64, fb: f64) -> bool {
    match op {
        Op::Add | Op::Sub => {
            // Both operands are huge here, so halving them is exact.
            let (x, y) = (fa * 0.5, if op == Op::Sub { -fb } else { fb } * 0.5);
            let h = x + y;
            let bb = h - x;
            let err = (x - (h - bb)) + (y - bb);
            const T: f64 = f64::from_bits(0x7fe0_0000_0000_0000); // 2^1023
            h.abs() > T || (h.abs() == T && err * h >= 0.0)
        }
        Op::Mul => {
            let ((ma, ea), (mb, eb)) = (decompose(fa), decompose(fb));
            cmp_scaled(ma as u128 * mb as u128, ea + eb, 1, 1024) != Ordering::Less
        }
        Op::Div => {
            let ((ma, ea), (mb, eb)) = (decompose(fa), decompose(fb));
            cmp_scaled(ma as u128, ea, mb as u128, eb + 1024) != Ordering::Less
        }
        _ => false,
    }
}

/// How two values compare, IEEE style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Less,
    Equal,
    Greater,
    Unordered,
}

impl Cmp {
    /// ZF, PF and CF as (U)COMIS* and FCOMI/FUCOMI report the comparison.
    pub fn eflags(self) -> u64 {
        use crate::cpu::flags::{CF, PF, ZF};
        match self {
            Cmp::Unordered => ZF | PF | CF,
            Cmp::Greater => 0,
            Cmp::Less => CF,
            Cmp::Equal => ZF,
        }
    }
}

/// Compares `a` with `b`. `signal_qnan`: a QNaN operand raises IE too (COMISD, CMPLTSD...);
/// otherwise only SNaNs do (UCOMISD, CMPEQSD...).
pub fn compare(prec: Prec, a: u64, b: u64, signal_qnan: bool) -> (Cmp, u32) {
    if prec.is_nan(a) || prec.is_nan(b) {
        let ie = signal_qnan || prec.is_snan(a) || prec.is_snan(b);
        return (Cmp::Unordered, if ie { IE } else { 0 });
    }
    let de = if prec.is_denormal(a) || prec.is_denormal(b) { DE } else { 0 };
    let c = match prec.to_f64(a).partial_cmp(&prec.to_f64(b)) {
        Some(Ordering::Less) => Cmp::Less,
        Some(Ordering::Equal) => Cmp::Equal,
        _ => Cmp::Greater,
    };
    (c, de)
}

/// CMPSD/CMPPS predicate `imm & 7` (EQ LT LE UNORD NEQ NLT NLE ORD) applied to `a`, `b`.
pub fn predicate(prec: Prec, imm: u8, a: u64, b: u64) -> (bool, u32) {
    let p = imm & 7;
    let signal = matches!(p, 1 | 2 | 5 | 6);
    let (c, fl) = compare(prec, a, b, signal);
    let t = match p {
        0 => c == Cmp::Equal,
        1 => c == Cmp::Less,
        2 => c == Cmp::Less || c == Cmp::Equal,
        3 => c == Cmp::Unordered,
        4 => c != Cmp::Equal,
        5 => !(c == Cmp::Less),
        6 => !(c == Cmp::Less || c == Cmp::Equal),
        _ => c != Cmp::Unordered,
    };
    (t, fl)
}

/// Float to signed integer of `size` (4 or 8) bytes, truncating or under `rc`. NaNs and
/// out-of-range values give the integer indefinite (the sign bit alone) and IE.
pub fn to_int(prec: Prec, x: u64, size: u32, rc: Rc) -> (u64, u32) {
    let indefinite = 1u64 << (size * 8 - 1);
    if prec.is_nan(x) {
        return (indefinite, IE);
    }
    // Conversions to integers report no denormal-operand exception.
    let f = prec.to_f64(x);
    let r = round_int(f, rc);
    let lim = indefinite as f64; // 2^31 or 2^63, exact
    if !(r >= -lim && r < lim) {
        return (indefinite, IE);
    }
    let v = (r as i64) as u64 & super::super::flags::mask(size);
    (v, if r != f { PE } else { 0 })
}

/// `f` rounded to an integral value under `rc`.
pub fn round_int(f: f64, rc: Rc) -> f64 {
    match rc {
        Rc::Nearest => f.round_ties_even(),
        Rc::Down => f.floor(),
        Rc::Up => f.ceil(),
        Rc::Zero => f.trunc(),
    }
}

/// Signed integer to float under `rc`.
pub fn from_int(prec: Prec, v: i64, rc: Rc) -> (u64, u32) {
    let r = v as f64;
    let exact = r as i128; // exact: r is integral and |r| <= 2^63
    let err = match (v as i128).cmp(&exact) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    };
    let (bits, fl) = round(prec, r, err, rc, true, false);
    (bits, fl & PE)
}

/// CVTSD2SS: double to single under `rc`; NaNs keep sign and top payload bits, quieted.
pub fn d_to_s(x: u64, rc: Rc) -> (u64, u32) {
    let d = Prec::D;
    if d.is_nan(x) {
        let s = ((x >> 63) << 31) as u32 | 0x7fc0_0000 | ((x >> 29) as u32 & 0x003f_ffff);
        return (s as u64, if d.is_snan(x) { IE } else { 0 });
    }
    let de = if d.is_denormal(x) { DE } else { 0 };
    let f = f64::from_bits(x);
    let (v, fl) = round(Prec::S, f, 0, rc, f.is_finite(), false);
    (v, fl | de)
}

/// CVTSS2SD: single to double, exact; NaNs keep sign and payload, quieted.
pub fn s_to_d(x: u64) -> (u64, u32) {
    let s = Prec::S;
    let x = x as u32 as u64;
    if s.is_nan(x) {
        let d = ((x >> 31) << 63) | 0x7ff8_0000_0000_0000 | ((x & 0x003f_ffff) << 29);
        return (d, if s.is_snan(x) { IE } else { 0 });
    }
    let de = if s.is_denormal(x) { DE } else { 0 };
    ((f32::from_bits(x as u32) as f64).to_bits(), de)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directed_rounding_of_one_third() {
        let one = 1.0f64.to_bits();
        let three = 3.0f64.to_bits();
        let (n, fl) = arith(Prec::D, Op::Div, one, three, 0x1f80);
        assert_eq!(f64::from_bits(n), 1.0 / 3.0);
        assert_eq!(fl, PE);
        let (d, _) = arith(Prec::D, Op::Div, one, three, 0x1f80 | 1 << 13);
        let (u, _) = arith(Prec::D, Op::Div, one, three, 0x1f80 | 2 << 13);
        assert_eq!(u - d, 1);
        assert!(f64::from_bits(d) < 1.0 / 3.0 || f64::from_bits(u) > 1.0 / 3.0);
    }

    #[test]
    fn int_to_single_double_rounding_tie() {
        // 2^60 + 2^36 + 1 rounds to 2^60 + 2^36 in double, a tie in single.
        let v = (1i64 << 60) + (1 << 36) + 1;
        let (s, _) = from_int(Prec::S, v, Rc::Nearest);
        assert_eq!(f32::from_bits(s as u32), v as f32);
    }

    #[test]
    fn invalid_gives_default_nan() {
        let z = 0.0f64.to_bits();
        assert_eq!(arith(Prec::D, Op::Div, z, z, 0x1f80), (0xfff8_0000_0000_0000, IE));
        let m1 = (-1.0f64).to_bits();
        assert_eq!(arith(Prec::D, Op::Sqrt, 0, m1, 0x1f80), (0xfff8_0000_0000_0000, IE));
    }
}
