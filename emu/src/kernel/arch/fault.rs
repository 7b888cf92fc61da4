//! The x86 page-fault entry (Linux: arch/x86/mm/fault.c). A #PF exit of a vCPU running
//! user code becomes a call of the mm's fault handler, a userfaultfd message, or a signal.
//!
//! `exc_page_fault` → `do_user_addr_fault`: find the VMA (`mm::memory::lock_mm_and_find_vma`,
//! which grows a stack VMA down to the address: expand_stack), check the access against it
//! (`access_error`), then `mm::memory::handle_mm_fault`. What comes back decides the rest:
//!
//! - handled: nothing more; the vCPU re-executes the instruction (RIP is still on it);
//! - no VMA, or one that forbids the access: `bad_area_nosemaphore` / `bad_area_access_error`
//!   → `__bad_area_nosemaphore`, SIGSEGV with SEGV_MAPERR or SEGV_ACCERR;
//! - VM_FAULT_SIGBUS: `do_sigbus`, SIGBUS with BUS_ADRERR;
//! - VM_FAULT_OOM: `pagefault_out_of_memory`, the OOM killer's SIGKILL;
//! - the fault needs the VMA's userfaultfd: the mm changed nothing and returned the reason.
//!   Linux calls handle_userfault inside handle_mm_fault and gets VM_FAULT_RETRY back; here
//!   this layer calls it (`uffd::user_fault`), so that the mm never imports the
//!   userfaultfd file side. The thread parks with RIP on the instruction, or gets SIGBUS
//!   (UFFD_FEATURE_SIGBUS).
//!
//! Every signal raised here carries the fault's arch info first (`set_signal_archinfo`:
//! trap 14, the error code with X86_PF_USER, CR2), which the signal frame reports.
//!
//! Kernel-mode faults on user memory (copy_to_user and friends) do not come through here:
//! `kernel::uaccess` resolves them with the same mm calls and turns a failure into EFAULT,
//! the exception-table fixup.

use super::traps::X86_TRAP_PF;
use crate::kernel::hw::Hw;
use crate::kernel::mm::memory::{handle_mm_fault, lock_mm_and_find_vma, FaultFlags, FaultOutcome, UffdReason};
use crate::kernel::mm::{Mm, Vma};
use crate::kernel::signal::{force_sig_fault, FaultSignal, BUS_ADRERR, SEGV_ACCERR, SEGV_MAPERR, SIGBUS, SIGKILL, SIGSEGV, SI_KERNEL};
use crate::kernel::task::TrapInfo;
use crate::kernel::Kernel;
use mmu::PfErrorCode;

/// Linux's names for the #PF error-code bits (arch/x86/include/asm/trap_pf.h).
pub const X86_PF_PROT: PfErrorCode = PfErrorCode::P;
pub const X86_PF_WRITE: PfErrorCode = PfErrorCode::W;
pub const X86_PF_USER: PfErrorCode = PfErrorCode::U;
pub const X86_PF_RSVD: PfErrorCode = PfErrorCode::RSVD;
pub const X86_PF_INSTR: PfErrorCode = PfErrorCode::ID;
pub const X86_PF_PK: PfErrorCode = PfErrorCode::PK;

/// What `do_user_addr_fault` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Handled,
    SegvMaperr,
    SegvAccerr,
    Bus,
    Oom,
    Userfault(UffdReason),
    /// The owner's hugetlb copy-on-write must take the page from the other processes.
    HugetlbUnmapRefPrivate { obj: u64, offset: u64, head: mmu::PhysAddr },
}

/// The `outcome` of the `fault handled` trace event, as it has always read: the variant
/// name, and for a userfault the reason as its VM_UFFD_* value (`Userfault(512)`), so that
/// traces stay comparable across versions.
impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Userfault(reason) => write!(f, "Userfault({})", reason.vm_flag().bits()),
            d => write!(f, "{d:?}"),
        }
    }
}

/// Linux: exc_page_fault → handle_page_fault. Every #PF exit comes from user mode: the
/// vCPUs run only the guest's user code, the kernel being Rust code.
pub fn exc_page_fault(k: &mut Kernel, hw: &mut Hw, address: u64, error_code: PfErrorCode) {
    do_user_addr_fault(k, hw, error_code, address);
}

/// Linux: access_error. Whether `vma` forbids the access: a write needs VM_WRITE, an
/// instruction fetch VM_EXEC, and a read any of VM_READ, VM_WRITE, VM_EXEC (x86 cannot
/// map a page writable or executable but not readable).
fn access_error(error_code: PfErrorCode, vma: &Vma) -> bool {
    let allowed = if error_code.contains(X86_PF_WRITE) {
        vma.writable()
    } else if error_code.contains(X86_PF_INSTR) {
        vma.executable()
    } else {
        vma.is_accessible()
    };
    !allowed
}

/// Linux: do_user_addr_fault for the current thread.
pub fn do_user_addr_fault(k: &mut Kernel, hw: &mut Hw, error_code: PfErrorCode, address: u64) {
    let tid = k.current(hw);
    let mm_id = k.tasks[&tid].mm;
    let rip = hw.vcpu().state.rip;
    tracing::debug!(target: "pagelab::fault", tid, addr = format_args!("{address:#x}"), code = format_args!("{:#x}", error_code.bits()), rip = format_args!("{rip:#x}"), "page fault");
    let mut decision = fault_in(k.mm_mut(mm_id), hw, error_code, address);
    if let Decision::HugetlbUnmapRefPrivate { obj, offset, head } = decision {
        // The owner takes the page back from the other processes, then the same fault
        // goes on (Linux: unmap_ref_private, retry_avoidcopy).
        crate::kernel::mm::hugetlb::unmap_ref_private(&mut k.mms, hw, obj, offset, head);
        decision = match fault_in(k.mm_mut(mm_id), hw, error_code, address) {
            Decision::HugetlbUnmapRefPrivate { .. } => Decision::Bus,
            d => d,
        };
    }
    tracing::debug!(target: "pagelab::fault", tid, addr = format_args!("{address:#x}"), outcome = %decision, "fault handled");
    mm_account_fault(k, tid, decision);
    match decision {
        Decision::Handled => {}
        Decision::SegvMaperr => bad_area_nosemaphore(k, hw, error_code, address),
        Decision::SegvAccerr => bad_area_access_error(k, hw, error_code, address),
        Decision::Bus | Decision::HugetlbUnmapRefPrivate { .. } => do_sigbus(k, hw, error_code, address),
        Decision::Oom => pagefault_out_of_memory(k, hw, error_code, address),
        // VM_FAULT_RETRY with the reason: the thread parks until the monitor wakes it
        // (it then re-executes the instruction), or SIGBUS (UFFD_FEATURE_SIGBUS).
        Decision::Userfault(reason) => {
            if crate::kernel::uffd::user_fault(k, hw, address, error_code.contains(X86_PF_WRITE), reason) {
                do_sigbus(k, hw, error_code, address);
            }
        }
    }
}

/// Linux: mm_account_fault. A completed fault counts to the thread and its group as a
/// minor fault (pagelab has no major ones: nothing is read from a disk). A fault that
/// goes to the monitor is not complete (VM_FAULT_RETRY): its retry counts once it
/// completes — measured on 6.18, as a minor fault (the retry runs under the mmap lock
/// after the per-VMA-lock attempt, without FAULT_FLAG_TRIED). A failed one is not counted.
fn mm_account_fault(k: &mut Kernel, tid: crate::kernel::task::Tid, decision: Decision) {
    let t = k.tasks.get_mut(&tid).expect("the faulting task");
    if matches!(decision, Decision::Userfault(_)) {
        return;
    }
    t.fault_retried = false;
    if decision == Decision::Handled {
        k.account_fault(tid, false);
    }
}

/// The fault flags of a user fault with this error code (Linux: FAULT_FLAG_DEFAULT plus
/// FAULT_FLAG_USER, then FAULT_FLAG_WRITE or FAULT_FLAG_INSTRUCTION from the error code).
fn fault_flags(error_code: PfErrorCode) -> FaultFlags {
    let mut flags = FaultFlags::USER;
    if error_code.contains(X86_PF_WRITE) {
        flags |= FaultFlags::WRITE;
    } else if error_code.contains(X86_PF_INSTR) {
        flags |= FaultFlags::INSTRUCTION;
    }
    flags
}

/// The mm's part of do_user_addr_fault: the VMA, the access check, handle_mm_fault.
fn fault_in(mm: &mut Mm, hw: &mut Hw, error_code: PfErrorCode, address: u64) -> Decision {
    let Some(vma) = lock_mm_and_find_vma(mm, address).cloned() else {
        return Decision::SegvMaperr;
    };
    if access_error(error_code, &vma) {
        return Decision::SegvAccerr;
    }
    match handle_mm_fault(mm, hw, &vma, address, fault_flags(error_code)) {
        FaultOutcome::Handled => Decision::Handled,
        FaultOutcome::Bus | FaultOutcome::HwPoison => Decision::Bus,
        // VM_FAULT_SIGSEGV: mm_fault_error → bad_area_nosemaphore.
        FaultOutcome::Segv => Decision::SegvMaperr,
        FaultOutcome::Oom => Decision::Oom,
        FaultOutcome::Userfault(reason) => Decision::Userfault(reason),
        FaultOutcome::HugetlbUnmapRefPrivate { obj, offset, head } => Decision::HugetlbUnmapRefPrivate { obj, offset, head },
    }
}

/// Linux: set_signal_archinfo. What the signal frame's sigcontext reports of the fault:
/// trap 14, CR2, and the error code, which always has X86_PF_USER (the fault is
/// reported as the user's, even one a kernel access took on its behalf).
fn set_signal_archinfo(k: &mut Kernel, hw: &Hw, address: u64, error_code: PfErrorCode) {
    let tid = k.current(hw);
    k.tasks.get_mut(&tid).unwrap().trap = TrapInfo { trap_nr: X86_TRAP_PF, error_code: (error_code | X86_PF_USER).bits() as u64, cr2: address };
}

/// Linux: __bad_area_nosemaphore for a user fault: SIGSEGV with `si_code` at `address`.
fn __bad_area_nosemaphore(k: &mut Kernel, hw: &mut Hw, error_code: PfErrorCode, address: u64, si_code: i32) {
    set_signal_archinfo(k, hw, address, error_code);
    force_sig_fault(k, hw, FaultSignal { sig: SIGSEGV, code: si_code, addr: Some(address) });
}

/// Linux: bad_area_nosemaphore. No VMA covers the address: SEGV_MAPERR.
fn bad_area_nosemaphore(k: &mut Kernel, hw: &mut Hw, error_code: PfErrorCode, address: u64) {
    __bad_area_nosemaphore(k, hw, error_code, address, SEGV_MAPERR);
}

/// Linux: bad_area_access_error. The VMA forbids the access: SEGV_ACCERR (protection
/// keys, which would give SEGV_PKUERR, are not modelled).
fn bad_area_access_error(k: &mut Kernel, hw: &mut Hw, error_code: PfErrorCode, address: u64) {
    __bad_area_nosemaphore(k, hw, error_code, address, SEGV_ACCERR);
}

/// Linux: do_sigbus. VM_FAULT_SIGBUS (or a userfaultfd with UFFD_FEATURE_SIGBUS): SIGBUS
/// with BUS_ADRERR at `address`.
fn do_sigbus(k: &mut Kernel, hw: &mut Hw, error_code: PfErrorCode, address: u64) {
    set_signal_archinfo(k, hw, address, error_code);
    force_sig_fault(k, hw, FaultSignal { sig: SIGBUS, code: BUS_ADRERR, addr: Some(address) });
}

/// Linux: pagefault_out_of_memory. Guest memory is exhausted: the OOM killer's choice is
/// the faulting process, SIGKILL.
fn pagefault_out_of_memory(k: &mut Kernel, hw: &mut Hw, error_code: PfErrorCode, address: u64) {
    set_signal_archinfo(k, hw, address, error_code);
    force_sig_fault(k, hw, FaultSignal { sig: SIGKILL, code: SI_KERNEL, addr: None });
}
