//! Integer arithmetic and logic: ADD ADC SUB SBB CMP AND OR XOR TEST INC DEC NEG NOT
//! (SDM Vol. 2). Every form goes through `binop`/`unop`: operand 0 is resolved for write
//! first (so a read-only page faults before anything changes), then flags and result are
//! committed together.

use super::exec::{Exec, Handler, Stop};
use super::flags::{self, mask, AF, ARITH, CF, OF};
use iced_x86::{Instruction, Mnemonic};

pub fn select(ins: &Instruction) -> Option<Handler> {
    Some(match ins.mnemonic() {
        Mnemonic::Add => add,
        Mnemonic::Adc => adc,
        Mnemonic::Sub => sub,
        Mnemonic::Sbb => sbb,
        Mnemonic::Cmp => cmp,
        Mnemonic::And => and,
        Mnemonic::Or => or,
        Mnemonic::Xor => xor,
        Mnemonic::Test => test,
        Mnemonic::Inc => inc,
        Mnemonic::Dec => dec,
        Mnemonic::Neg => neg,
        Mnemonic::Not => not,
        _ => return None,
    })
}

/// Operand 0 op= operand 1. `f(a, b, carry_in, size) -> (result, flags)`; `store` = false
/// for CMP/TEST.
#[inline(always)]
fn binop(e: &mut Exec, ins: &Instruction, store: bool, f: impl Fn(u64, u64, u64, u32) -> (u64, u64)) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let b = e.read_op(ins, 1, size)?;
    let (dst, a) = e.resolve_rmw(ins, 0, size, store)?;
    let (r, fl) = f(a, b, e.s.rflags & CF, size);
    if store {
        e.commit(dst, size, r & mask(size));
    }
    e.set_flags(ARITH, fl);
    Ok(())
}

fn add(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    binop(e, ins, true, |a, b, _, s| {
        let r = a.wrapping_add(b) & mask(s);
        (r, flags::add(a, b, 0, r, s))
    })
}
fn adc(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    binop(e, ins, true, |a, b, c, s| {
        let r = a.wrapping_add(b).wrapping_add(c) & mask(s);
        (r, flags::add(a, b, c, r, s))
    })
}
fn sub(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    binop(e, ins, true, |a, b, _, s| {
        let r = a.wrapping_sub(b) & mask(s);
        (r, flags::sub(a, b, 0, r, s))
    })
}
fn sbb(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    binop(e, ins, true, |a, b, c, s| {
        let r = a.wrapping_sub(b).wrapping_sub(c) & mask(s);
        (r, flags::sub(a, b, c, r, s))
    })
}
fn cmp(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    binop(e, ins, false, |a, b, _, s| {
        let r = a.wrapping_sub(b) & mask(s);
        (r, flags::sub(a, b, 0, r, s))
    })
}
fn and(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    binop(e, ins, true, |a, b, _, s| (a & b, flags::logic(a & b, s)))
}
fn or(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    binop(e, ins, true, |a, b, _, s| (a | b, flags::logic(a | b, s)))
}
fn xor(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    binop(e, ins, true, |a, b, _, s| ((a ^ b) & mask(s), flags::logic(a ^ b, s)))
}
fn test(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    binop(e, ins, false, |a, b, _, s| (a & b, flags::logic(a & b, s)))
}

/// Operand 0 = f(operand 0); `which` flags are replaced by f's flags.
#[inline(always)]
fn unop(e: &mut Exec, ins: &Instruction, which: u64, f: impl Fn(u64, u32) -> (u64, u64)) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let (dst, a) = e.resolve_rmw(ins, 0, size, true)?;
    let (r, fl) = f(a, size);
    e.commit(dst, size, r & mask(size));
    e.set_flags(which, fl);
    Ok(())
}

fn inc(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    unop(e, ins, ARITH & !CF, |a, s| {
        let r = a.wrapping_add(1) & mask(s);
        (r, flags::add(a, 1, 0, r, s))
    })
}
fn dec(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    unop(e, ins, ARITH & !CF, |a, s| {
        let r = a.wrapping_sub(1) & mask(s);
        (r, flags::sub(a, 1, 0, r, s))
    })
}
fn neg(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    unop(e, ins, ARITH, |a, s| {
        let r = 0u64.wrapping_sub(a) & mask(s);
        let mut f = flags::sub(0, a, 0, r, s);
        // CF = (source != 0); the subtraction above already gives that, and AF/OF likewise.
        f = (f & !(CF | AF | OF)) | (f & (AF | OF)) | if a & mask(s) != 0 { CF } else { 0 };
        (r, f)
    })
}
fn not(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    unop(e, ins, 0, |a, _| (!a, 0))
}
