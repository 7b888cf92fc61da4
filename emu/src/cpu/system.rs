//! System-ish instructions user code executes: SYSCALL, CPUID, RDTSC(P), XGETBV, the
//! fences, INT3, UD*, HLT and the FS/GS base instructions (SDM Vol. 2).
//!
//! CPUID describes a deterministic baseline x86-64 CPU ("PagelabVirtCPU"): SSE/SSE2,
//! CMPXCHG16B-less, no AVX, no OSXSAVE, so glibc takes its SSE2 paths everywhere. Leaf
//! 0x80000008 reports MAXPHYADDR and 48-bit linear addresses.

use super::exec::{Exec, Handler, Stop};
use super::reg::{RAX, RBX, RCX, RDX, R11};
use super::{Exception, MAXPHYADDR};
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

/// Virtual TSC ticks per retired instruction: the TSC is a pure function of the work done.
pub const TSC_PER_INSTR: u64 = 1;

fn syscall(e: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    e.s.gpr[RCX] = e.next_rip;
    e.s.gpr[R11] = e.rflags() & !(1 << 16);
    Err(Stop::Syscall)
}

/// CPUID leaves of the virtual CPU.
pub fn cpuid_leaf(leaf: u32, sub: u32) -> [u32; 4] {
    const fn s(b: &[u8; 4]) -> u32 {
        u32::from_le_bytes(*b)
    }
    let _ = sub;
    match leaf {
        // Max basic leaf and the vendor string "GenuineIntel" so glibc's tuning code is happy.
        0 => [0xd, s(b"Genu"), s(b"ntel"), s(b"ineI")],
        // Family 6 model 0x3a stepping 9; EDX: FPU TSC CX8 CMOV FXSR SSE SSE2 ...; ECX: SSE3 SSSE3? no.
        1 => {
            let eax = 0x0003_06a9;
            let ebx = 0x0000_0800; // CLFLUSH line size 8*8 = 64
            let ecx = 1 << 13; // CMPXCHG16B; no SSE3/SSSE3/SSE4, so glibc stays on its SSE2 baseline
            let edx = 1 << 0 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 8 | 1 << 11 | 1 << 13 | 1 << 15 | 1 << 19 | 1 << 23 | 1 << 24 | 1 << 25 | 1 << 26;
            [eax, ebx, ecx, edx]
        }
        // Cache descriptors: none (leaf 4 answers).
        2 => [0x0000_0001, 0, 0, 0],
        4 => match sub {
            // L1d 32K 8-way, L1i 32K, L2 256K, L3 8M: type, level, ways, partitions, line, sets.
            0 => [0x121, 0x01c0_003f, 63, 0],
            1 => [0x122, 0x01c0_003f, 63, 0],
            2 => [0x143, 0x01c0_003f, 511, 0],
            3 => [0x163, 0x03c0_003f, 8191, 0x6],
            _ => [0; 4],
        },
        7 => [0, 0, 0, 0],
        0xd => [0; 4],
        0x8000_0000 => [0x8000_0008, 0, 0, 0],
        // LAHF/SAHF in 64-bit mode; SYSCALL, NX, 1 GiB pages, RDTSCP, LM.
        0x8000_0001 => [0, 0, 1 << 0, 1 << 11 | 1 << 20 | 1 << 26 | 1 << 27 | 1 << 29],
        0x8000_0002 => [s(b"Page"), s(b"labV"), s(b"irtC"), s(b"PU  ")],
        0x8000_0003 | 0x8000_0004 => [s(b"    "); 4],
        0x8000_0006 => [0, 0, 0x0100_6040, 0],
        0x8000_0008 => [(48 << 8) | MAXPHYADDR as u32, 0, 0, 0],
        _ => [0; 4],
    }
}

fn cpuid(e: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    let r = cpuid_leaf(e.s.gpr[RAX] as u32, e.s.gpr[RCX] as u32);
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
