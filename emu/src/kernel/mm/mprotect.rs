//! Protection changes (Linux: mm/mprotect.c do_mprotect_pkey → mprotect_fixup →
//! change_protection → change_pte_range).
//!
//! change_protection is a `pagewalk` walk whose `pte_entry` is change_pte_range's body;
//! its flushes go to the caller's `MmuGather` (do_mprotect_pkey's, or uffd_wp_range's).

use super::mmap::{page_align, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_WRITE};
use super::mmu_gather::MmuGather;
use super::pagewalk::{walk_page_range, MmWalkOps};
use super::pgtable::{self, linux::*, Slot};
use super::swapops::{pte_swp_clear_uffd_wp, pte_swp_mkuffd_wp, softleaf_from_pte, SoftLeaf};
use super::vma::{Vma, VmFlags};
use super::{Mm, TASK_SIZE};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use mmu::{Entry, PhysMem};
use std::convert::Infallible;
use std::ops::ControlFlow;

bitflags::bitflags! {
    /// What change_protection does besides applying the VMA's protection (Linux:
    /// include/linux/mm.h MM_CP_*, with Linux's values).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub struct MmCpFlags: u32 {
        /// MM_CP_TRY_CHANGE_WRITABLE: make a PTE writable where can_change_pte_writable
        /// allows, without waiting for the write fault.
        const TRY_CHANGE_WRITABLE = 1 << 0;
        /// MM_CP_PROT_NUMA: NUMA-hinting PROT_NONE (not used: no NUMA).
        const PROT_NUMA = 1 << 1;
        /// MM_CP_UFFD_WP: set the uffd-wp bit (UFFDIO_WRITEPROTECT with MODE_WP).
        const UFFD_WP = 1 << 2;
        /// MM_CP_UFFD_WP_RESOLVE: clear it (un-protect, unregister, close).
        const UFFD_WP_RESOLVE = 1 << 3;
    }
}
/// The flags under their Linux names, as the callers spell them.
pub const MM_CP_TRY_CHANGE_WRITABLE: MmCpFlags = MmCpFlags::TRY_CHANGE_WRITABLE;
pub const MM_CP_PROT_NUMA: MmCpFlags = MmCpFlags::PROT_NUMA;
pub const MM_CP_UFFD_WP: MmCpFlags = MmCpFlags::UFFD_WP;
pub const MM_CP_UFFD_WP_RESOLVE: MmCpFlags = MmCpFlags::UFFD_WP_RESOLVE;

/// Linux 6.18: can_change_pte_writable. A PTE may be made writable directly (without a
/// write fault) only in a writable VMA, when it is not PROT_NONE and not uffd-wp'd in a
/// VM_UFFD_WP VMA, and then: in a private VMA, for an exclusive anonymous page (so never
/// a COW-shared page or the zero page — exactly the pages do_wp_page would reuse); in a
/// shared VMA, when the PTE is dirty.
pub fn can_change_pte_writable(hw: &Hw, vma: &Vma, pte: Entry) -> bool {
    if !vma.writable() || matches!(softleaf_from_pte(pte), SoftLeaf::ProtNone) {
        return false;
    }
    if vma.flags.has(VmFlags::UFFD_WP) && pte.has(_PAGE_UFFD_WP) {
        return false;
    }
    if !vma.shared() {
        // vm_normal_page: special PTEs (the zero page) have none.
        if pte.has(_PAGE_SPECIAL) {
            return false;
        }
        let pa = pgtable::pte_pfn(pte);
        return !hw.pages.is_zero_page(pa) && hw.pages.meta(pa).anon_exclusive;
    }
    pte.is_dirty()
}

/// Linux: change_protection → change_pte_range over [start, end) of one VMA: every present
/// (or PROT_NONE) PTE gets the VMA's protection, keeping the `_PAGE_CHG_MASK` bits (the
/// frame, A, D, uffd-wp: pte_modify); MM_CP_UFFD_WP then sets uffd-wp (and clears R/W),
/// MM_CP_UFFD_WP_RESOLVE clears it, and MM_CP_TRY_CHANGE_WRITABLE makes the PTE writable
/// where `can_change_pte_writable` allows. Swap entries get their uffd-wp bit toggled
/// (`_PAGE_SWP_UFFD_WP`); markers and migration entries are left alone. The flushes go to
/// `tlb`; returns the number of PTEs visited (Linux's `pages`).
pub fn change_protection(tlb: &mut MmuGather, mm: &Mm, hw: &mut Hw, vma: &Vma, start: u64, end: u64, cp_flags: MmCpFlags) -> u64 {
    let mut cp = ChangeProt {
        hw,
        tlb,
        vma,
        prot: pgtable::vm_page_prot(vma.readable(), vma.writable(), vma.executable(), vma.shared()),
        cp_flags,
        uffd_wp: cp_flags.contains(MM_CP_UFFD_WP),
        uffd_wp_resolve: cp_flags.contains(MM_CP_UFFD_WP_RESOLVE),
        pages: 0,
    };
    let ControlFlow::Continue(()) = walk_page_range(mm.pml4, start, end, &mut cp);
    cp.pages
}

/// One change_protection walk: the VMA's new protection and what to do with uffd-wp.
struct ChangeProt<'a> {
    hw: &'a mut Hw,
    tlb: &'a mut MmuGather,
    vma: &'a Vma,
    prot: u64,
    cp_flags: MmCpFlags,
    uffd_wp: bool,
    uffd_wp_resolve: bool,
    pages: u64,
}

impl MmWalkOps for ChangeProt<'_> {
    type Break = Infallible;

    fn mem(&self) -> &PhysMem {
        &self.hw.mem
    }

    /// Linux: change_pte_range, for one PTE.
    #[inline]
    fn pte_entry(&mut self, old: Entry, slot: Slot, va: u64) -> ControlFlow<Infallible> {
        let (uffd_wp, uffd_wp_resolve) = (self.uffd_wp, self.uffd_wp_resolve);
        let present = match softleaf_from_pte(old) {
            SoftLeaf::Present => true,
            SoftLeaf::ProtNone => false,
            SoftLeaf::Swap { uffd_wp: was_wp, .. } => {
                // Only uffd-wp changes; the entry is not present, so no TLB holds it.
                if (uffd_wp || uffd_wp_resolve) && was_wp != uffd_wp {
                    let new = if uffd_wp { pte_swp_mkuffd_wp(old) } else { pte_swp_clear_uffd_wp(old) };
                    pgtable::set_entry(&mut self.hw.mem, slot, va, new).not_needed();
                    self.pages += 1;
                }
                return ControlFlow::Continue(());
            }
            SoftLeaf::None | SoftLeaf::Migration { .. } | SoftLeaf::Marker(_) => return ControlFlow::Continue(()),
        };
        let new = if self.prot == 0 {
            // PROT_NONE: Linux's _PAGE_PROTNONE form, P clear so the hardware denies
            // every access while the entry keeps its frame.
            let mut n = Entry::new((old.raw() & _PAGE_CHG_MASK) | _PAGE_PROTNONE | _PAGE_USER);
            if uffd_wp {
                n = n.with(_PAGE_UFFD_WP);
            } else if uffd_wp_resolve {
                n = n.without(_PAGE_UFFD_WP);
            }
            n
        } else {
            let mut n = Entry::new((old.raw() & _PAGE_CHG_MASK) | self.prot);
            if uffd_wp {
                n = n.with(_PAGE_UFFD_WP);
            } else if uffd_wp_resolve {
                n = n.without(_PAGE_UFFD_WP);
            }
            if n.has(_PAGE_UFFD_WP) {
                // pte_mkuffd_wp: never writable while protected.
                n = n.without(_PAGE_RW);
            } else if self.cp_flags.contains(MM_CP_TRY_CHANGE_WRITABLE) && !n.is_writable() && can_change_pte_writable(self.hw, self.vma, n) {
                n = n.with(_PAGE_RW);
            }
            n
        };
        self.pages += 1;
        if uffd_wp || uffd_wp_resolve {
            tracing::trace!(target: "pagelab::uffd", addr = format_args!("{va:#x}"), old = format_args!("{:#x}", old.raw()), new = format_args!("{:#x}", new.raw()), uffd_wp = new.has(_PAGE_UFFD_WP), writable = new.is_writable(), "change_pte");
        }
        if new != old {
            let f = pgtable::set_entry(&mut self.hw.mem, slot, va, new);
            if present {
                self.tlb.flush_pte(f);
            } else {
                // PROT_NONE before: not present to the hardware, never cached.
                f.not_needed();
            }
        }
        ControlFlow::Continue(())
    }
}

/// Linux: do_mprotect_pkey (pkey = -1).
pub fn do_mprotect(mm: &mut Mm, hw: &mut Hw, start: u64, len: u64, prot: u32) -> KResult<()> {
    if start & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_GROWSDOWN | PROT_GROWSUP) != 0 {
        return Err(Errno::EINVAL);
    }
    if prot & PROT_GROWSDOWN != 0 && prot & PROT_GROWSUP != 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_align(len).ok_or(Errno::ENOMEM)?;
    let end = start.checked_add(len).filter(|&e| e <= TASK_SIZE).ok_or(Errno::ENOMEM)?;
    if len == 0 {
        return Ok(());
    }
    // The whole range must be mapped, without holes (ENOMEM otherwise).
    if !mm.range_is_mapped(start, end) {
        return Err(Errno::ENOMEM);
    }
    // A mapping can only become writable if it may be written (VM_MAYWRITE).
    if prot & PROT_WRITE != 0 && mm.vmas_in(start, end).iter().any(|k| !mm.vmas[k].flags.has(VmFlags::MAYWRITE)) {
        return Err(Errno::EACCES);
    }
    mm.split_at(start);
    mm.split_at(end);
    // One gather for every VMA of the range: one flush at the end (Linux: mprotect_fixup
    // under the tlb_gather_mmu of do_mprotect_pkey).
    let mut tlb = MmuGather::new(mm);
    for k in mm.vmas_in(start, end) {
        let v = mm.vmas.get_mut(&k).unwrap();
        let keep = v.flags - (VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC);
        v.flags = keep | VmFlags::from_prot(prot & 7);
        let vma = v.clone();
        let cp = if super::userfaultfd::vma_wants_manual_pte_write_upgrade(&vma) { MM_CP_TRY_CHANGE_WRITABLE } else { MmCpFlags::empty() };
        change_protection(&mut tlb, mm, hw, &vma, vma.start, vma.end, cp);
    }
    tlb.finish_mmu(hw);
    mm.merge_around(start, end);
    Ok(())
}
