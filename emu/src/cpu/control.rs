//! Control flow: JMP Jcc JRCXZ LOOP CALL RET LEAVE ENTER (SDM Vol. 2). Branch targets were
//! resolved to absolute addresses by the decoder.

use super::exec::{Exec, Handler, Stop};
use super::flags;
use super::reg::{RBP, RCX, RSP};
use iced_x86::{Instruction, Mnemonic, OpKind};
use mmu::AccessKind;

pub fn select(ins: &Instruction) -> Option<Handler> {
    let near64 = ins.op_count() >= 1 && ins.op0_kind() == OpKind::NearBranch64;
    Some(match ins.mnemonic() {
        // Specialised forms: direct 64-bit targets, a Jcc per condition, RET without imm16.
        Mnemonic::Jmp if near64 => jmp_near,
        Mnemonic::Call if near64 => call_near,
        Mnemonic::Ret if ins.op_count() == 0 => ret_near,
        _ if near64 && ins.is_jcc_short_or_near() => jcc_by_cc(ins.condition_code() as u8 - 1),
        Mnemonic::Jmp => jmp,
        Mnemonic::Call => call,
        Mnemonic::Ret => ret,
        Mnemonic::Leave => leave,
        Mnemonic::Enter => enter,
        Mnemonic::Jrcxz | Mnemonic::Jecxz => jrcxz,
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne => loop_,
        _ if ins.is_jcc_short_or_near() => jcc,
        _ => return None,
    })
}

/// The target of a branch: a near-branch immediate, or a register/memory operand.
#[inline(always)]
fn target(e: &mut Exec, ins: &Instruction) -> Result<u64, Stop> {
    Ok(match ins.op0_kind() {
        OpKind::NearBranch64 | OpKind::NearBranch32 | OpKind::NearBranch16 => ins.near_branch_target(),
        _ => e.read_op(ins, 0, 8)?,
    })
}

fn jmp(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    e.next_rip = target(e, ins)?;
    Ok(())
}

fn jcc(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    if flags::cond(ins.condition_code() as u8 - 1, e.s.rflags) {
        e.next_rip = ins.near_branch_target();
    }
    Ok(())
}

fn jrcxz(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let c = if ins.mnemonic() == Mnemonic::Jecxz { e.s.gpr[RCX] as u32 as u64 } else { e.s.gpr[RCX] };
    if c == 0 {
        e.next_rip = ins.near_branch_target();
    }
    Ok(())
}

fn loop_(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let c = e.s.gpr[RCX].wrapping_sub(1);
    e.s.gpr[RCX] = c;
    let zf = e.flag(flags::ZF);
    let take = c != 0
        && match ins.mnemonic() {
            Mnemonic::Loope => zf,
            Mnemonic::Loopne => !zf,
            _ => true,
        };
    if take {
        e.next_rip = ins.near_branch_target();
    }
    Ok(())
}

fn call(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let t = target(e, ins)?;
    let ret = e.next_rip;
    e.push(ret)?;
    e.next_rip = t;
    Ok(())
}

fn ret(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let sp = e.s.gpr[RSP];
    let t = e.read_u64(sp)?;
    let extra = if ins.op_count() > 0 { ins.immediate(0) } else { 0 };
    e.s.gpr[RSP] = sp.wrapping_add(8).wrapping_add(extra);
    e.next_rip = t;
    Ok(())
}

fn leave(e: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    let bp = e.s.gpr[RBP];
    let v = e.read_u64(bp)?;
    e.s.gpr[RSP] = bp.wrapping_add(8);
    e.s.gpr[RBP] = v;
    Ok(())
}

fn enter(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let alloc = ins.immediate(0) & 0xffff;
    let nesting = ins.immediate(1) & 0x1f;
    if nesting != 0 {
        return Err(Stop::Unimplemented);
    }
    let sp = e.s.gpr[RSP].wrapping_sub(8);
    e.write_u64(sp, e.s.gpr[RBP])?;
    e.s.gpr[RBP] = sp;
    e.s.gpr[RSP] = sp.wrapping_sub(alloc);
    Ok(())
}

// ---- specialised forms ----------------------------------------------------------------------

/// `jcc_cc::<CC>` for condition `cc` (0..=15, the low nibble of the opcode).
fn jcc_by_cc(cc: u8) -> Handler {
    macro_rules! by_cc {
        ($($c:literal)*) => {
            match cc {
                $($c => jcc_cc::<$c> as Handler,)*
                _ => jcc,
            }
        };
    }
    by_cc!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
}

/// Jcc with condition `CC` evaluated by a constant-folded `flags::cond`.
fn jcc_cc<const CC: u8>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    if flags::cond(CC, e.s.rflags) {
        e.next_rip = ins.near_branch64();
    }
    Ok(())
}

fn jmp_near(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    e.next_rip = ins.near_branch64();
    Ok(())
}

// CALL and RET try a TLB hit for the stack slot and otherwise run the generic handler.

fn call_near(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let sp = e.s.gpr[RSP].wrapping_sub(8);
    let Some(pa) = e.hit(sp, 8, AccessKind::Write) else { return call(e, ins) };
    e.store::<8>(pa, e.next_rip);
    e.s.gpr[RSP] = sp;
    e.next_rip = ins.near_branch64();
    Ok(())
}

fn ret_near(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let sp = e.s.gpr[RSP];
    let Some(pa) = e.hit(sp, 8, AccessKind::Read) else { return ret(e, ins) };
    let t = e.load::<8>(pa);
    e.s.gpr[RSP] = sp.wrapping_add(8);
    e.next_rip = t;
    Ok(())
}
