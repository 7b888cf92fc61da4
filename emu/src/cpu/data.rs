//! Data movement: MOV MOVZX MOVSX MOVSXD LEA XCHG CMOVcc SETcc PUSH POP, the sign
//! extensions (CBW CWDE CDQE CWD CDQ CQO), flag moves (LAHF SAHF PUSHF POPF CLC STC CMC CLD
//! STD) and the NOPs (SDM Vol. 2).
//!
//! MOV, MOVZX, MOVSX(D), LEA, and PUSH/POP of a 64-bit register get handlers specialised at
//! decode time by operand form and size (see `fast`); everything else takes the generic path.

use super::exec::{by_size, fast_form, gpr_num, imm, Exec, Form, Handler, Stop};
use super::flags::{self, mask, sext, CF, DF};
use super::reg::{RAX, RDX, RSP};
use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use mmu::AccessKind;

pub fn select(ins: &Instruction) -> Option<Handler> {
    if let Some(h) = fast(ins) {
        return Some(h);
    }
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
        Mnemonic::Nop | Mnemonic::Pause | Mnemonic::Prefetchnta | Mnemonic::Prefetcht0 | Mnemonic::Prefetcht1
        | Mnemonic::Prefetcht2 | Mnemonic::Prefetchw | Mnemonic::Prefetch => nop,
        // The hint-NOP space (0F 0D, 0F 18-1F): on a CPU whose CPUID reports no CET, MPX or
        // CLDEMOTE, as ours does (cpu::model), ENDBR, RDSSP (libgcc's unwinder reads the
        // shadow-stack pointer with it before every C++ throw or Rust panic), the BND*
        // encodings (decoded as reserved NOPs without DecoderOptions::MPX), CLDEMOTE and
        // PREFETCHIT execute as NOPs, leaving even RDSSP's destination alone.
        Mnemonic::Reservednop | Mnemonic::Endbr64 | Mnemonic::Endbr32 | Mnemonic::Rdsspd | Mnemonic::Rdsspq
        | Mnemonic::Cldemote | Mnemonic::Prefetchit0 | Mnemonic::Prefetchit1 => nop,
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

// ---- specialised forms ----------------------------------------------------------------------

/// The specialised handler for `ins`, if it has one.
fn fast(ins: &Instruction) -> Option<Handler> {
    match ins.mnemonic() {
        Mnemonic::Mov if ins.op_count() == 2 => Some(match (fast_form(ins, 0)?, fast_form(ins, 1)?) {
            (Form::Reg(s), Form::Reg(t)) if s == t => by_size!(s, mov_rr),
            (Form::Reg(s), Form::Imm { sx8: false }) => by_size!(s, mov_ri),
            (Form::Reg(s), Form::Mem(t)) if s == t => by_size!(s, mov_rm),
            (Form::Mem(s), Form::Reg(t)) if s == t => by_size!(s, mov_mr),
            (Form::Mem(s), Form::Imm { sx8: false }) => by_size!(s, mov_mi),
            _ => return None,
        }),
        Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd if ins.op_count() == 2 => {
            let sx = ins.mnemonic() != Mnemonic::Movzx;
            let Form::Reg(d) = fast_form(ins, 0)? else { return None };
            let (src_mem, s) = match fast_form(ins, 1)? {
                Form::Reg(s) => (false, s),
                Form::Mem(s) => (true, s),
                Form::Imm { .. } => return None,
            };
            macro_rules! ext {
                ($($d:literal, $s:literal);*) => {
                    match (d, s, src_mem, sx) {
                        $(
                            ($d, $s, false, false) => movx_r::<false, $d, $s> as Handler,
                            ($d, $s, false, true) => movx_r::<true, $d, $s> as Handler,
                            ($d, $s, true, false) => movx_m::<false, $d, $s> as Handler,
                            ($d, $s, true, true) => movx_m::<true, $d, $s> as Handler,
                        )*
                        _ => return None,
                    }
                };
            }
            Some(ext!(2, 1; 4, 1; 8, 1; 4, 2; 8, 2; 8, 4))
        }
        Mnemonic::Lea => {
            let is64 = |r: Register| r == Register::None || (r as usize).wrapping_sub(Register::RAX as usize) < 16;
            let base = ins.memory_base();
            if !(is64(base) || base == Register::RIP) || !is64(ins.memory_index()) {
                return None;
            }
            match fast_form(ins, 0)? {
                Form::Reg(4) => Some(lea_fast::<4>),
                Form::Reg(8) => Some(lea_fast::<8>),
                _ => None,
            }
        }
        Mnemonic::Push if ins.op_count() == 1 && fast_form(ins, 0)? == Form::Reg(8) => Some(push_r64),
        Mnemonic::Pop if ins.op_count() == 1 && fast_form(ins, 0)? == Form::Reg(8) => Some(pop_r64),
        _ => None,
    }
}

fn mov_rr<const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let v = e.gpr::<S>(gpr_num::<S>(ins.op1_register()));
    e.set_gpr::<S>(gpr_num::<S>(ins.op0_register()), v);
    Ok(())
}

/// MOV reg, imm8/16/32 or imm32 sign-extended to 64 (not MOVABS with an imm64).
fn mov_ri<const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    e.set_gpr::<S>(gpr_num::<S>(ins.op0_register()), imm::<false>(ins) & mask(S));
    Ok(())
}

// The memory forms below try a TLB hit within one page and otherwise run the generic
// handler (which walks, splits or faults), having changed nothing.

fn mov_rm<const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let Some(pa) = e.hit(e.ea64(ins), S, AccessKind::Read) else { return mov(e, ins) };
    let v = e.load::<S>(pa);
    e.set_gpr::<S>(gpr_num::<S>(ins.op0_register()), v);
    Ok(())
}

fn mov_mr<const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let Some(pa) = e.hit(e.ea64(ins), S, AccessKind::Write) else { return mov(e, ins) };
    let v = e.gpr::<S>(gpr_num::<S>(ins.op1_register()));
    e.store::<S>(pa, v);
    Ok(())
}

fn mov_mi<const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let Some(pa) = e.hit(e.ea64(ins), S, AccessKind::Write) else { return mov(e, ins) };
    e.store::<S>(pa, imm::<false>(ins) & mask(S));
    Ok(())
}

/// MOVZX/MOVSX/MOVSXD reg(D bytes), reg(S bytes).
fn movx_r<const SX: bool, const D: u32, const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let v = e.gpr::<S>(gpr_num::<S>(ins.op1_register()));
    let v = if SX { sext(v, S) & mask(D) } else { v };
    e.set_gpr::<D>(gpr_num::<D>(ins.op0_register()), v);
    Ok(())
}

/// MOVZX/MOVSX/MOVSXD reg(D bytes), mem(S bytes).
fn movx_m<const SX: bool, const D: u32, const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let Some(pa) = e.hit(e.ea64(ins), S, AccessKind::Read) else {
        return if SX { movsx(e, ins) } else { movzx(e, ins) };
    };
    let v = e.load::<S>(pa);
    let v = if SX { sext(v, S) & mask(D) } else { v };
    e.set_gpr::<D>(gpr_num::<D>(ins.op0_register()), v);
    Ok(())
}

/// LEA with a 32- or 64-bit destination and 64-bit address registers.
fn lea_fast<const S: u32>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let a = e.ea64(ins);
    e.set_gpr::<S>(gpr_num::<S>(ins.op0_register()), a & mask(S));
    Ok(())
}

fn push_r64(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let sp = e.s.gpr[RSP].wrapping_sub(8);
    let Some(pa) = e.hit(sp, 8, AccessKind::Write) else { return push(e, ins) };
    e.store::<8>(pa, e.s.gpr[gpr_num::<8>(ins.op0_register())]);
    e.s.gpr[RSP] = sp;
    Ok(())
}

/// POP reg64; `pop rsp` loads RSP with the popped value, as the generic handler does.
fn pop_r64(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let sp = e.s.gpr[RSP];
    let Some(pa) = e.hit(sp, 8, AccessKind::Read) else { return pop(e, ins) };
    let v = e.load::<8>(pa);
    e.s.gpr[RSP] = sp.wrapping_add(8);
    e.s.gpr[gpr_num::<8>(ins.op0_register())] = v;
    Ok(())
}
