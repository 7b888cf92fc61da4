//! Faulting pages in on behalf of the kernel (Linux: mm/gup.c), for MAP_POPULATE, mlock and
//! MADV_POPULATE_(READ|WRITE): the pages of a range are faulted in as a kernel-mode access
//! would fault them, and each completed fault counts to the caller.

use super::memory::{handle_mm_fault, FaultFlags, FaultOutcome};
use super::pgtable;
use super::vma::VmFlags;
use super::vma::Vma;
use super::Mm;
use crate::kernel::errno::Errno;
use crate::kernel::hw::Hw;

/// Linux: __get_user_pages over [start, end) of `vma`: each page whose PTE does not allow
/// the access (`write`: for writing, breaking COW) is faulted in. Returns the completed
/// faults, and the outcome that stopped the walk (None: the whole range is in).
fn faultin_vma_range(mm: &mut Mm, hw: &mut Hw, vma: &Vma, start: u64, end: u64, write: bool) -> (u64, Option<(u64, FaultOutcome)>) {
    let flags = if write { FaultFlags::WRITE } else { FaultFlags::empty() };
    let mut faults = 0;
    let mut va = start;
    while va < end {
        let pte = pgtable::walk_lookup(&hw.mem, mm.pml4, va).map(|s| pgtable::get_entry(&hw.mem, s));
        if pte.is_some_and(|e| e.is_present() && (!write || e.is_writable())) {
            va += 4096;
            continue;
        }
        match handle_mm_fault(mm, hw, vma, va, flags) {
            FaultOutcome::Handled => faults += 1,
            o => return (faults, Some((va, o))),
        }
    }
    (faults, None)
}

/// Linux: __mm_populate → populate_vma_page_range over [start, end): every page of every
/// VMA in the range that is accessible, and not locked on fault, gets faulted in, for
/// writing in a private writable VMA (so its COW is broken and its pages are the
/// process's own, FOLL_WRITE) and for reading elsewhere; a page whose PTE already allows
/// that access is skipped (follow_page). Stops at the first fault that fails or needs a
/// userfaultfd. Returns the faults that completed, for the caller's fault counts, and
/// the outcome that stopped it: MAP_POPULATE ignores it, mlock reports it.
pub fn mm_populate(mm: &mut Mm, hw: &mut Hw, start: u64, end: u64) -> (u64, Option<FaultOutcome>) {
    let mut faults = 0;
    for key in mm.vmas_in(start, end) {
        let vma = mm.vmas[&key].clone();
        // populate_vma_page_range: an on-fault lock faults nothing in.
        if !vma.is_accessible() || vma.flags.has(VmFlags::LOCKONFAULT) {
            continue;
        }
        let write = vma.flags & (VmFlags::WRITE | VmFlags::SHARED) == VmFlags::WRITE;
        let (n, stop) = faultin_vma_range(mm, hw, &vma, start.max(vma.start), end.min(vma.end), write);
        faults += n;
        if let Some((_, o)) = stop {
            return (faults, Some(o));
        }
    }
    (faults, None)
}

/// Linux: madvise_populate → faultin_page_range (FOLL_HWPOISON | FOLL_MADV_POPULATE) for
/// MADV_POPULATE_READ/WRITE of [start, end): VMA by VMA, a hole ENOMEM, a VMA without
/// VM_WRITE for a write or VM_READ for a read EINVAL, a poisoned page EHWPOISON, a SIGBUS or
/// SIGSEGV fault EFAULT, no memory ENOMEM. A fault that needs a userfaultfd is returned
/// as `Err(uffd fault)`: the caller waits for it and runs the call again (FOLL_UNLOCKABLE
/// lets Linux wait). Returns the completed faults either way.
pub fn faultin_page_range(mm: &mut Mm, hw: &mut Hw, start: u64, end: u64, write: bool) -> (u64, Result<(), PopulateStop>) {
    let mut faults = 0;
    let mut va = start;
    while va < end {
        let Some(vma) = mm.find_vma(va).cloned() else {
            return (faults, Err(PopulateStop::Errno(Errno::ENOMEM)));
        };
        // check_vma_flags: a write needs VM_WRITE, a read VM_READ.
        if if write { !vma.writable() } else { !vma.flags.has(VmFlags::READ) } {
            return (faults, Err(PopulateStop::Errno(Errno::EINVAL)));
        }
        let (n, stop) = faultin_vma_range(mm, hw, &vma, va, end.min(vma.end), write);
        faults += n;
        match stop {
            None => va = end.min(vma.end),
            Some((at, o)) => {
                let e = match o {
                    FaultOutcome::HwPoison => Errno::EHWPOISON,
                    FaultOutcome::Bus | FaultOutcome::Segv => Errno::EFAULT,
                    FaultOutcome::Userfault(reason) => return (faults, Err(PopulateStop::Userfault { addr: at, write, reason })),
                    FaultOutcome::Oom | FaultOutcome::HugetlbUnmapRefPrivate { .. } | FaultOutcome::Handled => Errno::ENOMEM,
                };
                return (faults, Err(PopulateStop::Errno(e)));
            }
        }
    }
    (faults, Ok(()))
}

/// Why `faultin_page_range` stopped.
#[derive(Clone, Copy, Debug)]
pub enum PopulateStop {
    Errno(Errno),
    /// The page at `addr` needs the VMA's userfaultfd.
    Userfault { addr: u64, write: bool, reason: super::memory::UffdReason },
}
