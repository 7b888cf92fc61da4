//! Integer arithmetic and logic: ADD ADC SUB SBB CMP AND OR XOR TEST INC DEC NEG NOT
//! (SDM Vol. 2). The generic forms go through `binop`/`unop`: operand 0 is resolved for
//! write first (so a read-only page faults before anything changes), then flags and result
//! are committed together.
//!
//! The two-operand forms that dominate compiled code (register, immediate, and simple
//! memory operands of 1, 2, 4 or 8 bytes) get handlers specialised at decode time by
//! operation, form and size (`alu_rr` .. `alu_mi`), so executing them involves no operand-kind
//! or size dispatch; they compute exactly what `binop` does.

use super::exec::{by_size, fast_form, gpr_num, imm, Exec, Form, Handler, Stop};
use super::flags::{self, mask, AF, ARITH, CF, OF};
use iced_x86::{Instruction, Mnemonic};
use mmu::AccessKind;

pub fn select(ins: &Instruction) -> Option<Handler> {
    let fast = match ins.mnemonic() {
        Mnemonic::Add => fast::<ADD>(ins),
        Mnemonic::Adc => fast::<ADC>(ins),
        Mnemonic::Sub => fast::<SUB>(ins),
        Mnemonic::Sbb => fast::<SBB>(ins),
        Mnemonic::Cmp => fast::<CMP>(ins),
        Mnemonic::And => fast::<AND>(ins),
        Mnemonic::Or => fast::<OR>(ins),
        Mnemonic::Xor => fast::<XOR>(ins),
        Mnemonic::Test => fast::<TEST>(ins),
        _ => None,
    };
    if fast.is_some() {
        return fast;
    }
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

// ---- specialised two-operand forms ---------------------------------------------------------

const ADD: u8 = 0;
const ADC: u8 = 1;
const SUB: u8 = 2;
const SBB: u8 = 3;
const CMP: u8 = 4;
const AND: u8 = 5;
const OR: u8 = 6;
const XOR: u8 = 7;
const TEST: u8 = 8;

/// Whether operation `OP` writes its result (CMP and TEST only set flags).
const fn stores(op: u8) -> bool {
    op != CMP && op != TEST
}

/// The specialised handler for `ins` under operation `OP`, if its operands have a fast form.
fn fast<const OP: u8>(ins: &Instruction) -> Option<Handler> {
    if ins.op_count() != 2 {
        return None;
    }
    Some(match (fast_form(ins, 0)?, fast_form(ins, 1)?) {
        (Form::Reg(s), Form::Reg(t)) if s == t => by_size!(s, alu_rr[OP]),
        (Form::Reg(s), Form::Imm { sx8: true }) => by_size!(s, alu_ri[OP, true]),
        (Form::Reg(s), Form::Imm { sx8: false }) => by_size!(s, alu_ri[OP, false]),
        (Form::Reg(s), Form::Mem(t)) if s == t => by_size!(s, alu_rm[OP]),
        (Form::Mem(s), Form::Reg(t)) if s == t => by_size!(s, alu_mr[OP]),
        (Form::Mem(s), Form::Imm { sx8: true }) => by_size!(s, alu_mi[OP, true]),
        (Form::Mem(s), Form::Imm { sx8: false }) => by_size!(s, alu_mi[OP, false]),
        _ => return None,
    })
}

/// `a OP b` on `S`-byte operands (masked): the result (masked) and the six status flags,
/// exactly as the generic handlers compute them.
#[inline(always)]
fn compute<const OP: u8, const S: u32>(a: u64, b: u64, cf: u64) -> (u64, u64) {
    let m = mask(S);
    match OP {
        ADD => {
            let r = a.wrapping_add(b) & m;
            (r, flags::add(a, b, 0, r, S))
        }
        ADC => {
            let r = a.wrapping_add(b).wrapping_add(cf) & m;
            (r, flags::add(a, b, cf, r, S))
        }
        SUB | CMP => {
            let r = a.wrapping_sub(b) & m;
            (r, flags::sub(a, b, 0, r, S))
        }
        SBB => {
            let r = a.wrapping_sub(b).wrapping_sub(cf) & m;
            (r, flags::sub(a, b, cf, r, S))
        }
        AND | TEST => (a & b, flags::logic(a & b, S)),
        OR => (a | b, flags::logic(a | b, S)),
        _ => ((a ^ b) & m, flags::logic(a ^ b, S)),
    }
}

/// reg OP= reg.
fn alu_rr<const OP: u8, const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let d = gpr_num::<S>(ins.op0_register());
    let b = e.gpr::<S>(gpr_num::<S>(ins.op1_register()));
    let (r, f) = compute::<OP, S>(e.gpr::<S>(d), b, e.s.rflags & CF);
    if stores(OP) {
        e.set_gpr::<S>(d, r);
    }
    e.set_flags(ARITH, f);
    Ok(())
}

/// reg OP= imm.
fn alu_ri<const OP: u8, const SX8: bool, const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let d = gpr_num::<S>(ins.op0_register());
    let (r, f) = compute::<OP, S>(e.gpr::<S>(d), imm::<SX8>(ins) & mask(S), e.s.rflags & CF);
    if stores(OP) {
        e.set_gpr::<S>(d, r);
    }
    e.set_flags(ARITH, f);
    Ok(())
}

/// The generic handler of operation `OP`: what a specialised handler falls back to when its
/// fast path does not apply (a TLB miss, a page-straddling access), before changing anything.
#[inline(always)]
fn generic<const OP: u8>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    match OP {
        ADD => add(e, ins),
        ADC => adc(e, ins),
        SUB => sub(e, ins),
        SBB => sbb(e, ins),
        CMP => cmp(e, ins),
        AND => and(e, ins),
        OR => or(e, ins),
        XOR => xor(e, ins),
        _ => test(e, ins),
    }
}

/// reg OP= mem.
fn alu_rm<const OP: u8, const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let Some(pa) = e.hit(e.ea64(ins), S, AccessKind::Read) else {
        return generic::<OP>(e, ins);
    };
    let d = gpr_num::<S>(ins.op0_register());
    let (r, f) = compute::<OP, S>(e.gpr::<S>(d), e.load::<S>(pa), e.s.rflags & CF);
    if stores(OP) {
        e.set_gpr::<S>(d, r);
    }
    e.set_flags(ARITH, f);
    Ok(())
}

/// mem OP= `b`: translated for write when the result is stored, as `binop` does.
#[inline(always)]
fn alu_mem<const OP: u8, const S: u32>(e: &mut Exec, ins: &Instruction, b: u64) -> Result<(), Stop> {
    let kind = if stores(OP) { AccessKind::Write } else { AccessKind::Read };
    let Some(pa) = e.hit(e.ea64(ins), S, kind) else {
        return generic::<OP>(e, ins);
    };
    let (r, f) = compute::<OP, S>(e.load::<S>(pa), b, e.s.rflags & CF);
    if stores(OP) {
        e.store::<S>(pa, r);
    }
    e.set_flags(ARITH, f);
    Ok(())
}

/// mem OP= reg.
fn alu_mr<const OP: u8, const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let b = e.gpr::<S>(gpr_num::<S>(ins.op1_register()));
    alu_mem::<OP, S>(e, ins, b)
}

/// mem OP= imm.
fn alu_mi<const OP: u8, const SX8: bool, const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    alu_mem::<OP, S>(e, ins, imm::<SX8>(ins) & mask(S))
}
