//! String instructions: MOVS STOS LODS CMPS SCAS in byte, word, dword and qword forms, with
//! the REP/REPE/REPNE prefixes and DF (SDM Vol. 2, "MOVS", "REP/REPE/REPZ/REPNE/REPNZ";
//! Vol. 1, 7.3.9).
//!
//! Invariants:
//! - A REP instruction commits RSI, RDI and RCX after every completed element, as hardware
//!   does, so a fault part-way leaves the registers describing exactly the work left and the
//!   instruction (RIP still points at it) restarts where it stopped.
//! - A long REP does not run unbounded inside one handler: after [`REP_BUDGET`] bytes of work
//!   the handler returns with RIP still at the instruction, the way hardware interrupts a REP
//!   between iterations, so the run loop's instruction budget keeps meaning something.
//! - REP MOVS and REP STOS with DF = 0 and 64-bit addressing move whole runs at a time (at
//!   most to the end of the current source or destination page), through `PhysMem`'s write
//!   functions so the decoded-instruction cache stays coherent. A MOVS whose destination lies
//!   just above its source in physical memory (the overlap that makes the element-by-element
//!   copy replicate a pattern) copies runs no longer than the distance, which gives the same
//!   bytes as the element-by-element loop.

use super::exec::{Exec, Handler, Stop};
use super::flags::{self, mask, ARITH, DF, ZF};
use super::reg::{RAX, RCX, RDI, RSI};
use super::Exception;
use iced_x86::{Code, Instruction, OpKind, Register};
use mmu::{AccessKind, PhysAddr};

/// Bytes of work (an element on the slow path counts as [`SLOW_ELEMENT_COST`]) one REP
/// handler call does before it yields with RIP at the instruction.
pub const REP_BUDGET: u64 = 4 << 20;
const SLOW_ELEMENT_COST: u64 = 16;

const MOVS: u8 = 0;
const STOS: u8 = 1;
const LODS: u8 = 2;
const CMPS: u8 = 3;
const SCAS: u8 = 4;

pub fn select(ins: &Instruction) -> Option<Handler> {
    use Code::*;
    Some(match ins.code() {
        Movsb_m8_m8 | Movsw_m16_m16 | Movsd_m32_m32 | Movsq_m64_m64 => string::<MOVS>,
        Stosb_m8_AL | Stosw_m16_AX | Stosd_m32_EAX | Stosq_m64_RAX => string::<STOS>,
        Lodsb_AL_m8 | Lodsw_AX_m16 | Lodsd_EAX_m32 | Lodsq_RAX_m64 => string::<LODS>,
        Cmpsb_m8_m8 | Cmpsw_m16_m16 | Cmpsd_m32_m32 | Cmpsq_m64_m64 => string::<CMPS>,
        Scasb_AL_m8 | Scasw_AX_m16 | Scasd_EAX_m32 | Scasq_RAX_m64 => string::<SCAS>,
        _ => return None,
    })
}

/// The fixed facts of one string instruction.
#[derive(Clone, Copy)]
struct Form {
    /// Element size in bytes.
    size: u32,
    /// Address-size override (0x67): ESI/EDI/ECX instead of RSI/RDI/RCX.
    a32: bool,
    /// Segment base of the DS:RSI operand (FS/GS overrides); ES:RDI always has base 0.
    src_base: u64,
    /// Per-element change of RSI/RDI (two's complement when DF = 1).
    step: u64,
}

impl Form {
    #[inline(always)]
    fn amask(self) -> u64 {
        if self.a32 {
            0xffff_ffff
        } else {
            u64::MAX
        }
    }
}

#[inline(always)]
fn seg_base(e: &Exec, seg: Register) -> u64 {
    match seg {
        Register::FS => e.s.fs_base,
        Register::GS => e.s.gs_base,
        _ => 0,
    }
}

/// Writes an address/count register with the instruction's address size (a 32-bit write
/// zero-extends, as every 32-bit register write in 64-bit mode does).
#[inline(always)]
fn set_areg(e: &mut Exec, f: Form, i: usize, v: u64) {
    e.s.gpr[i] = v & f.amask();
}

#[inline(always)]
fn areg(e: &Exec, f: Form, i: usize) -> u64 {
    e.s.gpr[i] & f.amask()
}

fn string<const OP: u8>(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    let size = ins.memory_size().size() as u32;
    let a32 = [ins.op0_kind(), ins.op1_kind()].iter().any(|k| matches!(k, OpKind::MemoryESEDI | OpKind::MemorySegESI));
    let src_base = if matches!(OP, MOVS | LODS | CMPS) { seg_base(e, ins.memory_segment()) } else { 0 };
    let step = if e.flag(DF) { (size as u64).wrapping_neg() } else { size as u64 };
    let f = Form { size, a32, src_base, step };
    if !(ins.has_rep_prefix() || ins.has_repne_prefix()) {
        return Ok(element::<OP>(e, f)?);
    }
    if a32 && super::model::REP_A32_ZERO_COUNT_WRITES_BACK {
        // With 32-bit addressing, ECX is written back zero-extended even when it is 0 and no
        // iteration runs, and so are ESI/EDI for MOVS and STOS (the model's choice, Intel's).
        for (i, used) in [(RCX, true), (RSI, OP == MOVS), (RDI, matches!(OP, MOVS | STOS))] {
            if used {
                let v = areg(e, f, i);
                set_areg(e, f, i, v);
            }
        }
    }
    let bulk = matches!(OP, MOVS | STOS) && step == size as u64 && !a32;
    let mut budget = REP_BUDGET;
    loop {
        let count = areg(e, f, RCX);
        if count == 0 {
            return Ok(());
        }
        if bulk {
            let n = bulk_run::<OP>(e, f, count.min(budget / size as u64).max(1))?;
            if n > 0 {
                set_areg(e, f, RCX, count - n);
                budget = budget.saturating_sub(n * size as u64);
                if budget == 0 && count - n != 0 {
                    e.next_rip = ins.ip();
                    return Ok(());
                }
                continue;
            }
        }
        element::<OP>(e, f)?;
        set_areg(e, f, RCX, count - 1);
        if OP == CMPS || OP == SCAS {
            // F3 = REPE: go on while equal; F2 = REPNE: go on while different.
            let zf = e.flag(ZF);
            if ins.has_repe_prefix() != zf {
                return Ok(());
            }
        }
        budget = budget.saturating_sub(SLOW_ELEMENT_COST);
        if budget == 0 && count - 1 != 0 {
            e.next_rip = ins.ip();
            return Ok(());
        }
    }
}

/// One element of the string operation, registers committed only when it completed.
#[inline(always)]
fn element<const OP: u8>(e: &mut Exec, f: Form) -> Result<(), Exception> {
    let rsi = areg(e, f, RSI);
    let rdi = areg(e, f, RDI);
    let src = f.src_base.wrapping_add(rsi);
    match OP {
        MOVS => {
            let v = e.read_sized(src, f.size)?;
            e.write_sized(rdi, f.size, v)?;
            set_areg(e, f, RSI, rsi.wrapping_add(f.step));
            set_areg(e, f, RDI, rdi.wrapping_add(f.step));
        }
        STOS => {
            e.write_sized(rdi, f.size, e.s.gpr[RAX])?;
            set_areg(e, f, RDI, rdi.wrapping_add(f.step));
        }
        LODS => {
            let v = e.read_sized(src, f.size)?;
            e.set_gpr_sized(RAX, f.size, v);
            set_areg(e, f, RSI, rsi.wrapping_add(f.step));
        }
        CMPS => {
            let a = e.read_sized(src, f.size)?;
            let b = e.read_sized(rdi, f.size)?;
            let r = a.wrapping_sub(b) & mask(f.size);
            e.set_flags(ARITH, flags::sub(a, b, 0, r, f.size));
            set_areg(e, f, RSI, rsi.wrapping_add(f.step));
            set_areg(e, f, RDI, rdi.wrapping_add(f.step));
        }
        _ => {
            let a = e.s.gpr[RAX] & mask(f.size);
            let b = e.read_sized(rdi, f.size)?;
            let r = a.wrapping_sub(b) & mask(f.size);
            e.set_flags(ARITH, flags::sub(a, b, 0, r, f.size));
            set_areg(e, f, RDI, rdi.wrapping_add(f.step));
        }
    }
    Ok(())
}

/// Moves or stores as many whole elements (at most `max`) as fit before the next page end of
/// the source or destination, in one physical run. Returns the elements done (0: the next
/// element straddles a page or overlaps too closely; the caller does it element-wise) and
/// commits RSI/RDI; the caller commits RCX.
#[inline]
fn bulk_run<const OP: u8>(e: &mut Exec, f: Form, max: u64) -> Result<u64, Exception> {
    let size = f.size as u64;
    let rdi = e.s.gpr[RDI];
    let mut n = max.saturating_mul(size).min(4096 - (rdi & 0xfff));
    if OP == MOVS {
        let rsi = e.s.gpr[RSI];
        let src = f.src_base.wrapping_add(rsi);
        n = n.min(4096 - (src & 0xfff)) / size * size;
        if n == 0 {
            return Ok(0);
        }
        // Source first: the element-by-element order reads before it writes.
        let ps = e.translate(src, AccessKind::Read)?;
        let pd = e.translate(rdi, AccessKind::Write)?;
        if pd > ps && pd < ps + n {
            n = (pd - ps) / size * size;
            if n == 0 {
                return Ok(0);
            }
        }
        e.mem.copy_within(PhysAddr::new(ps), PhysAddr::new(pd), n);
        e.s.gpr[RSI] = rsi.wrapping_add(n);
    } else {
        n = n / size * size;
        if n == 0 {
            return Ok(0);
        }
        let pd = e.translate(rdi, AccessKind::Write)?;
        let v = e.s.gpr[RAX];
        if size == 1 {
            e.mem.fill(PhysAddr::new(pd), n, v as u8);
        } else {
            let mut buf = [0u8; 4096];
            let pat = v.to_le_bytes();
            for (i, b) in buf[..n as usize].iter_mut().enumerate() {
                *b = pat[i % size as usize];
            }
            e.mem.write(PhysAddr::new(pd), &buf[..n as usize]);
        }
    }
    e.s.gpr[RDI] = rdi.wrapping_add(n);
    Ok(n / size)
}
