//! The execution context handed to instruction handlers, and operand access: registers by
//! iced-x86 `Register`, effective addresses, and the generic read/write of an operand.

use super::flags;
use super::mem::Loc;
use super::{CpuState, Exception};
use iced_x86::{Instruction, OpKind, Register};
use mmu::{AccessKind, PhysMem, Tlb};

/// What a handler works on: the registers, the TLB and physical memory of one vCPU.
pub struct Exec<'a> {
    pub s: &'a mut CpuState,
    pub tlb: &'a mut Tlb,
    pub mem: &'a mut PhysMem,
    /// RIP of the next instruction; control-flow handlers overwrite it.
    pub next_rip: u64,
    /// The vCPU's virtual time at this instruction (the virtual TSC's source).
    pub icount: u64,
}

/// Why a handler did not simply complete its instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// An exception. For faults nothing architecturally visible changed — except for REP
    /// string instructions, which commit completed iterations as hardware does.
    Fault(Exception),
    /// SYSCALL completed its user-side effects (RCX, R11); the kernel takes over.
    Syscall,
    /// The instruction is valid but pagelab does not implement it.
    Unimplemented,
}

impl From<Exception> for Stop {
    #[inline(always)]
    fn from(e: Exception) -> Self {
        Stop::Fault(e)
    }
}

/// A handler executes one decoded instruction.
pub type Handler = fn(&mut Exec, &Instruction) -> Result<(), Stop>;

/// A resolved operand: a register (index, size, high-byte), a memory place, or an immediate.
#[derive(Clone, Copy, Debug)]
pub enum Operand {
    Reg { idx: u8, size: u8, high: bool },
    Mem { va: u64, loc: Loc },
    Imm(u64),
}

/// Where a general-purpose register lives: index, size in bytes, and whether it is AH..BH.
#[inline(always)]
pub fn gpr_info(r: Register) -> (usize, u32, bool) {
    let n = r as u32;
    match n {
        1..=4 => ((n - 1) as usize, 1, false),
        5..=8 => ((n - 5) as usize, 1, true),
        9..=20 => ((n - 5) as usize, 1, false),
        21..=36 => ((n - 21) as usize, 2, false),
        37..=52 => ((n - 37) as usize, 4, false),
        53..=68 => ((n - 53) as usize, 8, false),
        _ => (usize::MAX, 0, false),
    }
}

/// Size in bytes of a general-purpose register.
#[inline(always)]
pub fn gpr_size(r: Register) -> u32 {
    gpr_info(r).1
}

/// XMM register number.
#[inline(always)]
pub fn xmm_index(r: Register) -> usize {
    (r as usize).wrapping_sub(Register::XMM0 as usize)
}

impl<'a> Exec<'a> {
    pub fn new(s: &'a mut CpuState, tlb: &'a mut Tlb, mem: &'a mut PhysMem) -> Self {
        let next_rip = s.rip;
        Self { s, tlb, mem, next_rip, icount: 0 }
    }

    /// The virtual time-stamp counter: a pure function of the vCPU's virtual time.
    pub fn tsc(&self) -> u64 {
        self.icount.wrapping_mul(super::system::TSC_PER_INSTR)
    }

    // ---- registers -------------------------------------------------------------------

    #[inline(always)]
    pub fn get_reg(&self, r: Register) -> u64 {
        let (i, size, high) = gpr_info(r);
        if high {
            return (self.s.gpr[i] >> 8) & 0xff;
        }
        match size {
            8 => self.s.gpr[i],
            4 => self.s.gpr[i] & 0xffff_ffff,
            2 => self.s.gpr[i] & 0xffff,
            1 => self.s.gpr[i] & 0xff,
            _ => self.get_special(r),
        }
    }

    #[cold]
    fn get_special(&self, r: Register) -> u64 {
        match r {
            Register::RIP => self.next_rip,
            Register::FS | Register::GS | Register::ES | Register::CS | Register::SS | Register::DS => self.get_seg(r),
            _ => 0,
        }
    }

    /// Segment selector values as Linux x86-64 user mode has them.
    pub fn get_seg(&self, r: Register) -> u64 {
        match r {
            Register::CS => 0x33,
            Register::SS => 0x2b,
            _ => 0,
        }
    }

    /// Writes a GPR with x86-64 semantics: 32-bit writes zero the upper half, 8/16-bit
    /// writes keep the rest.
    #[inline(always)]
    pub fn set_reg(&mut self, r: Register, v: u64) {
        let (i, size, high) = gpr_info(r);
        if i >= 16 {
            return;
        }
        let old = self.s.gpr[i];
        self.s.gpr[i] = if high {
            (old & !0xff00) | ((v & 0xff) << 8)
        } else {
            match size {
                8 => v,
                4 => v & 0xffff_ffff,
                2 => (old & !0xffff) | (v & 0xffff),
                _ => (old & !0xff) | (v & 0xff),
            }
        };
    }

    /// Writes the low `size` bytes of GPR `i` with the same semantics as `set_reg`.
    #[inline(always)]
    pub fn set_gpr_sized(&mut self, i: usize, size: u32, v: u64) {
        let old = self.s.gpr[i];
        self.s.gpr[i] = match size {
            8 => v,
            4 => v & 0xffff_ffff,
            2 => (old & !0xffff) | (v & 0xffff),
            _ => (old & !0xff) | (v & 0xff),
        };
    }

    // ---- flags -----------------------------------------------------------------------

    #[inline(always)]
    pub fn set_flags(&mut self, which: u64, new: u64) {
        flags::set(&mut self.s.rflags, which, new)
    }
    #[inline(always)]
    pub fn flag(&self, f: u64) -> bool {
        self.s.rflags & f != 0
    }

    // ---- memory operands -------------------------------------------------------------

    /// The linear address of the instruction's memory operand (segment base included).
    #[inline(always)]
    pub fn ea(&self, ins: &Instruction) -> u64 {
        let base = ins.memory_base();
        let mut a = ins.memory_displacement64();
        if base != Register::None && base != Register::RIP {
            if base == Register::EIP {
                a = a as u32 as u64;
            } else {
                a = a.wrapping_add(self.get_reg(base));
            }
        }
        let index = ins.memory_index();
        if index != Register::None {
            a = a.wrapping_add(self.get_reg(index).wrapping_mul(ins.memory_index_scale() as u64));
        }
        if gpr_size(base) == 4 || gpr_size(index) == 4 {
            a &= 0xffff_ffff;
        }
        // Only an FS/GS prefix gives a nonzero segment base in 64-bit mode; `segment_prefix`
        // is a field read where `memory_segment` also works out the default segment.
        match ins.segment_prefix() {
            Register::FS => a.wrapping_add(self.s.fs_base),
            Register::GS => a.wrapping_add(self.s.gs_base),
            _ => a,
        }
    }

    /// The effective address of a memory operand `fast_form` accepted ([`Form::mem`]):
    /// 64-bit base (or none, or RIP, whose target iced-x86 put in the displacement) plus
    /// optional 64-bit index, no FS/GS base. LEA uses it too, since it ignores segments.
    #[inline(always)]
    pub fn ea64(&self, ins: &Instruction) -> u64 {
        let mut a = ins.memory_displacement64();
        let b = (ins.memory_base() as usize).wrapping_sub(Register::RAX as usize);
        if b < 16 {
            a = a.wrapping_add(self.s.gpr[b]);
        }
        let i = (ins.memory_index() as usize).wrapping_sub(Register::RAX as usize);
        if i < 16 {
            a = a.wrapping_add(self.s.gpr[i] << ins.memory_index_scale().trailing_zeros());
        }
        a
    }

    // ---- operands of a known form (see `Form`) ------------------------------------------

    /// Reads GPR `i` as an `S`-byte value (AL..R15B, never AH..BH).
    #[inline(always)]
    pub fn gpr<const S: u32>(&self, i: usize) -> u64 {
        self.s.gpr[i & 15] & flags::mask(S)
    }

    /// Writes the low `S` bytes of GPR `i` with x86-64 semantics (see `set_reg`).
    #[inline(always)]
    pub fn set_gpr<const S: u32>(&mut self, i: usize, v: u64) {
        self.set_gpr_sized(i & 15, S, v)
    }
}

/// GPR number of operand register `r`, which selection checked is a plain `S`-byte GPR.
#[inline(always)]
pub fn gpr_num<const S: u32>(r: Register) -> usize {
    let n = r as usize;
    (match S {
        8 => n.wrapping_sub(Register::RAX as usize),
        4 => n.wrapping_sub(Register::EAX as usize),
        2 => n.wrapping_sub(Register::AX as usize),
        // AL..BL, then SPL..R15L after the four high-byte registers.
        _ if n <= Register::BL as usize => n.wrapping_sub(Register::AL as usize),
        _ => n.wrapping_sub(Register::AL as usize + 4),
    }) & 15
}

/// Size of `r` if it is a GPR addressed without a high-byte quirk (not AH..BH), else None.
#[inline]
pub fn plain_gpr(r: Register) -> Option<u32> {
    match gpr_info(r) {
        (i, size, false) if i < 16 => Some(size),
        _ => None,
    }
}

/// An operand of a form with a specialised handler, as classified at decode time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// A plain GPR of the given size.
    Reg(u32),
    /// A memory operand [`Exec::ea64`] computes; the size is the instruction's memory size.
    Mem(u32),
    /// An immediate: `sx8` = stored as 8 bits to sign-extend, else as 32 bits to sign-extend
    /// (imm8/imm16/imm32 that are not extended come out right after masking to the size).
    Imm { sx8: bool },
}

impl Form {
    /// Memory size, when the form is `Mem`.
    pub fn mem(self) -> Option<u32> {
        match self {
            Form::Mem(s) => Some(s),
            _ => None,
        }
    }
}

/// Classifies operand `i` for the specialised handlers, or None if it needs the generic path
/// (segment or high-byte register, FS/GS or 32-bit addressing, imm64, ...).
pub fn fast_form(ins: &Instruction, i: u32) -> Option<Form> {
    let is64 = |r: Register| r == Register::None || (r as usize).wrapping_sub(Register::RAX as usize) < 16;
    match ins.op_kind(i) {
        OpKind::Register => plain_gpr(ins.op_register(i)).map(Form::Reg),
        OpKind::Memory => {
            let base = ins.memory_base();
            let seg = ins.segment_prefix();
            let ok = (is64(base) || base == Register::RIP)
                && is64(ins.memory_index())
                && seg != Register::FS
                && seg != Register::GS
                && ins.memory_index_scale().is_power_of_two();
            let size = ins.memory_size().size() as u32;
            (ok && matches!(size, 1 | 2 | 4 | 8)).then_some(Form::Mem(size))
        }
        OpKind::Immediate8to16 | OpKind::Immediate8to32 | OpKind::Immediate8to64 => Some(Form::Imm { sx8: true }),
        OpKind::Immediate8 | OpKind::Immediate16 | OpKind::Immediate32 | OpKind::Immediate32to64 => Some(Form::Imm { sx8: false }),
        _ => None,
    }
}

/// The immediate of a `Form::Imm { sx8 }` operand, sign-extended to 64 bits (callers mask).
#[inline(always)]
pub fn imm<const SX8: bool>(ins: &Instruction) -> u64 {
    if SX8 {
        ins.immediate8() as i8 as i64 as u64
    } else {
        ins.immediate32() as i32 as i64 as u64
    }
}

impl<'a> Exec<'a> {

    /// Size in bytes of operand `i` (register, memory or immediate).
    #[inline(always)]
    pub fn op_size(&self, ins: &Instruction, i: u32) -> u32 {
        match ins.op_kind(i) {
            OpKind::Register => gpr_size(ins.op_register(i)),
            OpKind::Memory => ins.memory_size().size() as u32,
            OpKind::Immediate8 => 1,
            OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
            OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
            _ => 8,
        }
    }

    /// Reads operand `i` as a `size`-byte value (immediates sign-extended to `size`).
    #[inline(always)]
    pub fn read_op(&mut self, ins: &Instruction, i: u32, size: u32) -> Result<u64, Exception> {
        match ins.op_kind(i) {
            OpKind::Register => Ok(self.get_reg(ins.op_register(i))),
            OpKind::Memory => {
                let va = self.ea(ins);
                self.read_sized(va, size)
            }
            _ => Ok(ins.immediate(i) & flags::mask(size)),
        }
    }

    /// Writes operand `i` (register or memory) with `size` bytes.
    #[inline(always)]
    pub fn write_op(&mut self, ins: &Instruction, i: u32, size: u32, v: u64) -> Result<(), Exception> {
        match ins.op_kind(i) {
            OpKind::Register => {
                self.set_reg(ins.op_register(i), v);
                Ok(())
            }
            _ => {
                let va = self.ea(ins);
                self.write_sized(va, size, v)
            }
        }
    }

    /// Resolves operand `i` for a read-modify-write: memory is translated for write first,
    /// so the read and the later write cannot fault separately.
    #[inline(always)]
    pub fn resolve_rmw(&mut self, ins: &Instruction, i: u32, size: u32, write: bool) -> Result<(Operand, u64), Exception> {
        match ins.op_kind(i) {
            OpKind::Register => {
                let r = ins.op_register(i);
                let (idx, sz, high) = gpr_info(r);
                Ok((Operand::Reg { idx: idx as u8, size: sz as u8, high }, self.get_reg(r)))
            }
            OpKind::Memory => {
                let va = self.ea(ins);
                let loc = self.locate(va, size, if write { AccessKind::Write } else { AccessKind::Read })?;
                Ok((Operand::Mem { va, loc }, self.read_loc_sized(loc, size)))
            }
            _ => Ok((Operand::Imm(0), ins.immediate(i) & flags::mask(size))),
        }
    }

    /// Completes a read-modify-write started by `resolve_rmw`.
    #[inline(always)]
    pub fn commit(&mut self, op: Operand, size: u32, v: u64) {
        match op {
            Operand::Reg { idx, high, .. } => {
                let i = idx as usize;
                if high {
                    self.s.gpr[i] = (self.s.gpr[i] & !0xff00) | ((v & 0xff) << 8);
                } else {
                    self.set_gpr_sized(i, size, v);
                }
            }
            Operand::Mem { loc, .. } => self.write_loc_sized(loc, size, v),
            Operand::Imm(_) => {}
        }
    }

    // ---- stack -----------------------------------------------------------------------

    #[inline(always)]
    pub fn push(&mut self, v: u64) -> Result<(), Exception> {
        let sp = self.s.gpr[super::reg::RSP].wrapping_sub(8);
        self.write_u64(sp, v)?;
        self.s.gpr[super::reg::RSP] = sp;
        Ok(())
    }

    #[inline(always)]
    pub fn pop(&mut self) -> Result<u64, Exception> {
        let sp = self.s.gpr[super::reg::RSP];
        let v = self.read_u64(sp)?;
        self.s.gpr[super::reg::RSP] = sp.wrapping_add(8);
        Ok(v)
    }

    /// Full RFLAGS as PUSHF sees it.
    pub fn rflags(&self) -> u64 {
        self.s.rflags | flags::RESERVED1
    }
}

/// `by_size!(size, h[P, ..])` is the handler `h::<P, .., S>` for the operand size `S` among
/// 1, 2, 4, 8 that `size` names (the selection code has checked it is one of them).
macro_rules! by_size {
    ($size:expr, $h:ident) => {
        $crate::cpu::exec::by_size!($size, $h[])
    };
    ($size:expr, $h:ident [ $($p:tt),* ]) => {
        match $size {
            1 => $h::<$($p,)* 1> as $crate::cpu::exec::Handler,
            2 => $h::<$($p,)* 2> as $crate::cpu::exec::Handler,
            4 => $h::<$($p,)* 4> as $crate::cpu::exec::Handler,
            _ => $h::<$($p,)* 8> as $crate::cpu::exec::Handler,
        }
    };
}
pub(crate) use by_size;
