//! Exceptions other than #PF (Linux: arch/x86/kernel/traps.c): each becomes the fault
//! signal Linux raises for it, with the trap number and error code the signal frame's
//! sigcontext reports.

use super::fault::exc_page_fault;
use crate::cpu::Exception;
use crate::kernel::hw::Hw;
use crate::kernel::signal::{force_sig_fault, FaultSignal, BUS_ADRALN, FPE_INTDIV, ILL_ILLOPN, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP, SI_KERNEL, TRAP_TRACE};
use crate::kernel::Kernel;
use mmu::PfErrorCode;

/// Exception vectors as the sigcontext's trapno reports them (Linux: enum x86_trap_nr).
pub const X86_TRAP_DE: u64 = 0;
pub const X86_TRAP_DB: u64 = 1;
pub const X86_TRAP_BP: u64 = 3;
pub const X86_TRAP_UD: u64 = 6;
pub const X86_TRAP_NM: u64 = 7;
pub const X86_TRAP_SS: u64 = 12;
pub const X86_TRAP_GP: u64 = 13;
pub const X86_TRAP_PF: u64 = 14;
pub const X86_TRAP_MF: u64 = 16;
pub const X86_TRAP_AC: u64 = 17;
pub const X86_TRAP_XF: u64 = 19;

/// An exception of the current vCPU's user code (Linux: the exc_* handlers of traps.c),
/// with the si_code and si_addr Linux gives: INT3 is SIGTRAP/SI_KERNEL with RIP after it,
/// #GP is SIGSEGV/SI_KERNEL at address 0, #SS is SIGBUS/SI_KERNEL. #PF goes to
/// `exc_page_fault`.
pub fn do_trap(k: &mut Kernel, hw: &mut Hw, e: Exception) {
    let rip = hw.vcpu().state.rip;
    let (trap_nr, error_code, sig) = match e {
        Exception::InvalidOpcode => (X86_TRAP_UD, 0, FaultSignal { sig: SIGILL, code: ILL_ILLOPN, addr: Some(rip) }),
        Exception::DivideError => (X86_TRAP_DE, 0, FaultSignal { sig: SIGFPE, code: FPE_INTDIV, addr: Some(rip) }),
        Exception::X87Fpe => (X86_TRAP_MF, 0, FaultSignal { sig: SIGFPE, code: 0, addr: Some(rip) }),
        Exception::SimdFpe => (X86_TRAP_XF, 0, FaultSignal { sig: SIGFPE, code: 0, addr: Some(rip) }),
        Exception::Breakpoint => (X86_TRAP_BP, 0, FaultSignal { sig: SIGTRAP, code: SI_KERNEL, addr: None }),
        Exception::Debug => (X86_TRAP_DB, 0, FaultSignal { sig: SIGTRAP, code: TRAP_TRACE, addr: Some(rip) }),
        Exception::AlignmentCheck => (X86_TRAP_AC, 0, FaultSignal { sig: SIGBUS, code: BUS_ADRALN, addr: None }),
        Exception::StackFault(c) => (X86_TRAP_SS, c as u64, FaultSignal { sig: SIGBUS, code: SI_KERNEL, addr: None }),
        Exception::GeneralProtection(c) => (X86_TRAP_GP, c as u64, FaultSignal { sig: SIGSEGV, code: SI_KERNEL, addr: Some(0) }),
        Exception::DeviceNotAvailable => (X86_TRAP_NM, 0, FaultSignal { sig: SIGSEGV, code: SI_KERNEL, addr: Some(0) }),
        Exception::PageFault { addr, code } => return exc_page_fault(k, hw, addr, PfErrorCode(code)),
    };
    let tid = k.current(hw);
    let t = k.tasks.get_mut(&tid).unwrap();
    t.trap.trap_nr = trap_nr;
    t.trap.error_code = error_code;
    force_sig_fault(k, hw, sig);
}
