//! Data movement: MOV MOVZX MOVSX MOVSXD LEA XCHG CMOVcc SETcc PUSH POP, the sign
//! extensions (CBW CWDE CDQE CWD CDQ CQO), flag moves (LAHF SAHF PUSHF POPF CLC STC CMC CLD
//! STD) and the NOPs (SDM Vol. 2).

use super::exec::{Exec, Handler, Stop};
use super::flags::{self, mask, sext, CF, DF};
use super::reg::{RAX, RDX};
use iced_x86::{Instruction, Mnemonic, OpKind};

pub fn select(ins: &Instruction) -> Option<Handler> {
    Some(match ins.mnemonic() {
        Mnemonic::Mov => mov,
        Mnemonic::Movzx => movzx,
        Mnemonic::Movsx | Mnemonic::Movsxd => movsx,
        Mnemonic::Lea => lea,
        Mnemonic::Xchg => xchg,
        Mnemonic::Push => push,
        Mnemonic::Pop => pop,
        Mnemonic::Cbw | Mnemonic::Cwde | Mnemonic::Cdqe => cbw,
        Mnemonic::Cwd | Mnemonic::Cdq | Mnemonic::Cqo => cwd,
        Mnemonic::Lahf => lahf,
        Mnemonic::Sahf => sahf,
        Mnemonic::Pushfq | Mnemonic::Pushf => pushf,
        Mnemonic::Popfq | Mnemonic::Popf => popf,
        Mnemonic::Clc => |e: &mut Exec, _: &Instruction| flag_op(e, CF, 0),
        Mnemonic::Stc => |e: &mut Exec, _: &Instruction| flag_op(e, CF, CF),
        Mnemonic::Cmc => |e: &mut Exec, _: &Instruction| flag_op(e, CF, !e.s.rflags & CF),
        Mnemonic::Cld => |e: &mut Exec, _: &Instruction| flag_op(e, DF, 0),
        Mnemonic::Std => |e: &mut Exec, _: &Instruction| flag_op(e, DF, DF),
        Mnemonic::Nop | Mnemonic::Endbr64 | Mnemonic::Endbr32 | Mnemonic::Pause | Mnemonic::Prefetchnta
        | Mnemonic::Prefetcht0 | Mnemonic::Prefetcht1 | Mnemonic::Prefetcht2 | Mnemonic::Prefetchw => nop,
        _ => {
            if ins.mnemonic() as u32 >= Mnemonic::Cmova as u32 && ins.mnemonic() as u32 <= Mnemonic::Cmovs as u32 {
                cmovcc
            } else if ins.mnemonic() as u32 >= Mnemonic::Seta as u32 && ins.mnemonic() as u32 <= Mnemonic::Sets as u32 {
                setcc
            } else {
                return None;
            }
        }
    })
}

fn nop(_: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    Ok(())
}

fn flag_op(e: &mut Exec, which: u64, v: u64) -> Result<(), Stop> {
    e.set_flags(which, v);
    Ok(())
}

fn mov(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let v = match ins.op1_kind() {
        OpKind::Register => {
            let r = ins.op1_register();
            if r.is_segment_register() {
                e.get_seg(r)
            } else {
                e.get_reg(r)
            }
        }
        _ => e.read_op(ins, 1, size)?,
    };
    if ins.op0_kind() == OpKind::Register && ins.op0_register().is_segment_register() {
        // Loading a segment register from user mode: only null selectors are harmless here.
        return Err(Stop::Unimplemented);
    }
    e.write_op(ins, 0, size, v)?;
    Ok(())
}

fn movzx(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let ssize = e.op_size(ins, 1);
    let v = e.read_op(ins, 1, ssize)?;
    let dsize = e.op_size(ins, 0);
    e.write_op(ins, 0, dsize, v)?;
    Ok(())
}

fn movsx(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let ssize = e.op_size(ins, 1);
    let v = sext(e.read_op(ins, 1, ssize)?, ssize);
    let dsize = e.op_size(ins, 0);
    e.write_op(ins, 0, dsize, v & mask(dsize))?;
    Ok(())
}

fn lea(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    // LEA computes the offset only: no segment base.
    let base = ins.memory_base();
    let mut a = ins.memory_displacement64();
    if base != iced_x86::Register::None && base != iced_x86::Register::RIP && base != iced_x86::Register::EIP {
        a = a.wrapping_add(e.get_reg(base));
    }
    if ins.memory_index() != iced_x86::Register::None {
        a = a.wrapping_add(e.get_reg(ins.memory_index()).wrapping_mul(ins.memory_index_scale() as u64));
    }
    // A 32-bit address size (0x67) wraps the address at 4 GiB before it is stored.
    if super::exec::gpr_size(base) == 4 || super::exec::gpr_size(ins.memory_index()) == 4 {
        a &= 0xffff_ffff;
    }
    let size = e.op_size(ins, 0);
    e.set_reg(ins.op0_register(), a & mask(size));
    Ok(())
}

fn xchg(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    // Memory (if any) is operand 0 or 1; resolve it for write first.
    let (mi, ri) = if ins.op1_kind() == OpKind::Memory { (1, 0) } else { (0, 1) };
    let (place, a) = e.resolve_rmw(ins, mi, size, true)?;
    let b = e.get_reg(ins.op_register(ri));
    e.commit(place, size, b);
    e.set_reg(ins.op_register(ri), a);
    Ok(())
}

fn push(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = match ins.op0_kind() {
        OpKind::Register => e.op_size(ins, 0),
        OpKind::Memory => ins.memory_size().size() as u32,
        _ => ins.stack_pointer_increment().unsigned_abs(),
    };
    let v = e.read_op(ins, 0, size.max(2))?;
    if size == 2 {
        let sp = e.s.gpr[4].wrapping_sub(2);
        e.write_sized(sp, 2, v)?;
        e.s.gpr[4] = sp;
    } else {
        let v = if matches!(ins.op0_kind(), OpKind::Register | OpKind::Memory) { v } else { ins.immediate(0) };
        e.push(v)?;
    }
    Ok(())
}

fn pop(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    let sp = e.s.gpr[4];
    let v = e.read_sized(sp, size)?;
    if ins.op0_kind() == OpKind::Memory {
        // The address of a POP destination is computed after RSP is incremented.
        e.s.gpr[4] = sp.wrapping_add(size as u64);
        if let Err(x) = e.write_op(ins, 0, size, v) {
            e.s.gpr[4] = sp;
            return Err(x.into());
        }
    } else {
        e.s.gpr[4] = sp.wrapping_add(size as u64);
        e.write_op(ins, 0, size, v)?;
    }
    Ok(())
}

fn cbw(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let dsize = e.op_size(ins, 0).max(match ins.mnemonic() {
        Mnemonic::Cbw => 2,
        Mnemonic::Cwde => 4,
        _ => 8,
    });
    let v = sext(e.s.gpr[RAX], dsize / 2);
    e.set_gpr_sized(RAX, dsize, v);
    Ok(())
}

fn cwd(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = match ins.mnemonic() {
        Mnemonic::Cwd => 2,
        Mnemonic::Cdq => 4,
        _ => 8,
    };
    let neg = e.s.gpr[RAX] & flags::sign_bit(size) != 0;
    e.set_gpr_sized(RDX, size, if neg { u64::MAX } else { 0 });
    Ok(())
}

fn lahf(e: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    let v = e.rflags() & 0xd5 | 2;
    e.s.gpr[RAX] = (e.s.gpr[RAX] & !0xff00) | (v << 8);
    Ok(())
}

fn sahf(e: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    let ah = (e.s.gpr[RAX] >> 8) & 0xff;
    e.set_flags(0xd5, ah);
    Ok(())
}

fn pushf(e: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    // RF and VM are cleared in the pushed image.
    let v = e.rflags() & !((1 << 16) | (1 << 17));
    e.push(v)?;
    Ok(())
}

fn popf(e: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    let v = e.pop()?;
    e.set_flags(flags::USER_WRITABLE, v);
    Ok(())
}

fn cmovcc(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = e.op_size(ins, 0);
    // The source is read (and may fault) whether or not the condition holds.
    let v = e.read_op(ins, 1, size)?;
    let cc = ins.condition_code() as u8 - 1;
    if flags::cond(cc, e.s.rflags) {
        e.set_reg(ins.op0_register(), v);
    } else if size == 4 {
        // A 32-bit CMOV always zero-extends its destination.
        let r = ins.op0_register();
        let cur = e.get_reg(r);
        e.set_reg(r, cur);
    }
    Ok(())
}

fn setcc(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let cc = ins.condition_code() as u8 - 1;
    e.write_op(ins, 0, 1, flags::cond(cc, e.s.rflags) as u64)?;
    Ok(())
}
