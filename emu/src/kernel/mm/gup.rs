//! Faulting pages in on behalf of the kernel (Linux: mm/gup.c), for MAP_POPULATE: the
//! pages of a range are faulted in as a kernel-mode access would fault them, and each
//! completed fault counts to the caller.

use super::memory::{handle_mm_fault, FaultFlags, FaultOutcome};
use super::pgtable;
use super::vma::VmFlags;
use super::Mm;
use crate::kernel::hw::Hw;

/// Linux: __mm_populate → populate_vma_page_range → __get_user_pages over [start, end):
/// every page of every VMA in the range that is accessible gets faulted in, for writing
/// in a private writable VMA (so its COW is broken and its pages are the process's own,
/// FOLL_WRITE) and for reading elsewhere; a page whose PTE already allows that access is
/// skipped (follow_page). Stops at the first fault that fails or needs a userfaultfd (the
/// mapping call succeeds all the same: Linux ignores populate's errors). Returns the
/// faults that completed, for the caller's fault counts.
pub fn mm_populate(mm: &mut Mm, hw: &mut Hw, start: u64, end: u64) -> u64 {
    let mut faults = 0;
    for key in mm.vmas_in(start, end) {
        let vma = mm.vmas[&key].clone();
        // populate_vma_page_range: an on-fault lock faults nothing in.
        if !vma.is_accessible() || vma.flags.has(VmFlags::LOCKONFAULT) {
            continue;
        }
        let write = vma.flags & (VmFlags::WRITE | VmFlags::SHARED) == VmFlags::WRITE;
        let flags = if write { FaultFlags::WRITE } else { FaultFlags::empty() };
        let mut va = start.max(vma.start);
        while va < end.min(vma.end) {
            let pte = pgtable::walk_lookup(&hw.mem, mm.pml4, va).map(|s| pgtable::get_entry(&hw.mem, s));
            let done = pte.is_some_and(|e| e.is_present() && (!write || e.is_writable()));
            if !done {
                match handle_mm_fault(mm, hw, &vma, va, flags) {
                    FaultOutcome::Handled => faults += 1,
                    _ => return faults,
                }
                continue;
            }
            va += 4096;
        }
    }
    faults
}
