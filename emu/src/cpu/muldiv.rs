//! Multiplication and division: MUL, IMUL (one-, two- and three-operand forms), DIV, IDIV
//! (SDM Vol. 2).
//!
//! Products and dividends are computed in 128-bit arithmetic, so every operand size uses the
//! same code. Division checks for #DE (a zero divisor, or a quotient that does not fit the
//! destination) before anything is written, so a faulting DIV changes nothing.
//!
//! Flags: MUL/IMUL define CF and OF (set when the product does not fit the low half / the
//! destination); SF, ZF, AF and PF are undefined and set here as SF/ZF/PF of the low half
//! with AF clear. DIV/IDIV leave all six undefined; they are left unchanged here.

use super::exec::{Exec, Handler, Stop};
use super::flags::{self, mask, sext, AF, ARITH, CF, OF, PF, SF, ZF};
use super::reg::{RAX, RDX};
use super::Exception;
use iced_x86::{Instruction, Mnemonic};

pub fn select(ins: &Instruction) -> Option<Handler> {
    Some(match ins.mnemonic() {
        Mnemonic::Mul => mul,
        Mnemonic::Imul if ins.op_count() == 1 => imul1,
        Mnemonic::Imul => imul,
        Mnemonic::Div => div,
        Mnemonic::Idiv => idiv,
        _ => return None,
    })
}

/// The implicit high/low result registers: AH:AL for bytes, else rDX:rAX.
#[inline(always)]
fn write_pair(e: &mut Exec, size: u32, lo: u64, hi: u64) {
    if size == 1 {
        e.set_gpr_sized(RAX, 2, (lo & 0xff) | ((hi & 0xff) << 8));
    } else {
        e.set_gpr_sized(RAX, size, lo);
        e.set_gpr_sized(RDX, size, hi);
    }
}

/// The implicit dividend: AX for bytes, else rDX:rAX, zero-extended to 128 bits.
#[inline(always)]
fn dividend(e: &Exec, size: u32) -> u128 {
    if size == 1 {
        (e.s.gpr[RAX] & 0xffff) as u128
    } else {
        ((e.s.gpr[RDX] & mask(size)) as u128) << (size * 8) | (e.s.gpr[RAX] & mask(size)) as u128
    }
}

#[inline(always)]
fn mul_flags(lo: u64, size: u32, overflow: bool) -> u64 {
    let f = flags::szp(lo, size) & (SF | ZF | PF);
    if overflow {
        f | CF | OF
    } else {
        f
    }
}

fn mul(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let b = e.read_op(ins, 0, size)? & mask(size);
    let a = e.s.gpr[RAX] & mask(size);
    let p = a as u128 * b as u128;
    let lo = p as u64 & mask(size);
    let hi = (p >> (size * 8)) as u64 & mask(size);
    write_pair(e, size, lo, hi);
    e.set_flags(ARITH, mul_flags(lo, size, hi != 0) & !AF);
    Ok(())
}

/// Signed product of two `size`-byte values, and whether it overflows `size` bytes.
#[inline(always)]
fn smul(a: u64, b: u64, size: u32) -> (i128, bool) {
    let p = sext(a, size) as i64 as i128 * sext(b, size) as i64 as i128;
    let lo = p as u64 & mask(size);
    (p, sext(lo, size) as i64 as i128 != p)
}

fn imul1(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let b = e.read_op(ins, 0, size)?;
    let (p, ov) = smul(e.s.gpr[RAX], b, size);
    let lo = p as u64 & mask(size);
    let hi = (p >> (size * 8)) as u64 & mask(size);
    write_pair(e, size, lo, hi);
    e.set_flags(ARITH, mul_flags(lo, size, ov));
    Ok(())
}

/// IMUL r, r/m and IMUL r, r/m, imm: the product truncated to the destination.
fn imul(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let a = e.read_op(ins, 1, size)?;
    let b = if ins.op_count() == 3 { e.read_op(ins, 2, size)? } else { e.get_reg(ins.op0_register()) };
    let (p, ov) = smul(a, b, size);
    let lo = p as u64 & mask(size);
    e.set_reg(ins.op0_register(), lo);
    e.set_flags(ARITH, mul_flags(lo, size, ov));
    Ok(())
}

fn div(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let d = e.read_op(ins, 0, size)? & mask(size);
    if d == 0 {
        return Err(Exception::DivideError.into());
    }
    let n = dividend(e, size);
    let q = n / d as u128;
    let r = n % d as u128;
    if q > mask(size) as u128 {
        return Err(Exception::DivideError.into());
    }
    write_pair(e, size, q as u64, r as u64);
    Ok(())
}

fn idiv(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let d = sext(e.read_op(ins, 0, size)?, size) as i64 as i128;
    if d == 0 {
        return Err(Exception::DivideError.into());
    }
    let bits = size * 16;
    // Sign-extend the 2*size-byte dividend to i128.
    let n = ((dividend(e, size) << (128 - bits)) as i128) >> (128 - bits);
    let (Some(q), Some(r)) = (n.checked_div(d), n.checked_rem(d)) else {
        return Err(Exception::DivideError.into());
    };
    let lim = 1i128 << (size * 8 - 1);
    if q < -lim || q >= lim {
        return Err(Exception::DivideError.into());
    }
    write_pair(e, size, q as u64 & mask(size), r as u64 & mask(size));
    Ok(())
}
