//! System-ish instructions user code executes: SYSCALL, CPUID, RDTSC(P), XGETBV, the
//! fences, INT3, UD*, HLT and the FS/GS base instructions (SDM Vol. 2).
//!
//! CPUID answers from `model`, the one description of the CPU pagelab is.

use super::exec::{Exec, Handler, Stop};
use super::reg::{RAX, RBX, RCX, RDX, R11};
use super::Exception;
use iced_x86::{Instruction, Mnemonic};

pub fn select(ins: &Instruction) -> Option<Handler> {
    Some(match ins.mnemonic() {
        Mnemonic::Syscall => syscall,
        Mnemonic::Cpuid => cpuid,
        Mnemonic::Rdtsc => rdtsc,
        Mnemonic::Rdtscp => rdtscp,
        Mnemonic::Lfence | Mnemonic::Mfence | Mnemonic::Sfence => |_: &mut Exec, _: &Instruction| Ok(()),
        Mnemonic::Int3 => |_: &mut Exec, _: &Instruction| Err(Stop::Fault(Exception::Breakpoint)),
        Mnemonic::Ud0 | Mnemonic::Ud1 | Mnemonic::Ud2 => |_: &mut Exec, _: &Instruction| Err(Stop::Fault(Exception::InvalidOpcode)),
        // Privileged at CPL 3.
        Mnemonic::Hlt | Mnemonic::Cli | Mnemonic::Sti | Mnemonic::In | Mnemonic::Out | Mnemonic::Invlpg | Mnemonic::Wrmsr
        | Mnemonic::Rdmsr | Mnemonic::Lgdt | Mnemonic::Lidt | Mnemonic::Invpcid | Mnemonic::Int => {
            |_: &mut Exec, _: &Instruction| Err(Stop::Fault(Exception::GeneralProtection(0)))
        }
        Mnemonic::Rdfsbase | Mnemonic::Rdgsbase | Mnemonic::Wrfsbase | Mnemonic::Wrgsbase => fsgsbase,
        _ => return None,
    })
}

/// Virtual TSC ticks per ns of the vCPU's virtual time (one ns per instruction retired).
pub const TSC_PER_INSTR: u64 = 1;

fn syscall(e: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    e.s.gpr[RCX] = e.next_rip;
    e.s.gpr[R11] = e.rflags() & !(1 << 16);
    Err(Stop::Syscall)
}

fn cpuid(e: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    let r = super::model::cpuid(e.s.gpr[RAX] as u32, e.s.gpr[RCX] as u32);
    e.s.gpr[RAX] = r[0] as u64;
    e.s.gpr[RBX] = r[1] as u64;
    e.s.gpr[RCX] = r[2] as u64;
    e.s.gpr[RDX] = r[3] as u64;
    Ok(())
}

fn rdtsc(e: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    let t = e.tsc();
    e.s.gpr[RAX] = t & 0xffff_ffff;
    e.s.gpr[RDX] = t >> 32;
    Ok(())
}

fn rdtscp(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    rdtsc(e, ins)?;
    e.s.gpr[RCX] = 0;
    Ok(())
}

fn fsgsbase(e: &mut Exec, ins: &Instruction) -> Result<(), Stop> {
    // CR4.FSGSBASE is reported clear (CPUID.7:EBX[0] = 0), so these are #UD, as on Linux
    // with the feature off.
    let _ = (e, ins);
    Err(Stop::Fault(Exception::InvalidOpcode))
}
