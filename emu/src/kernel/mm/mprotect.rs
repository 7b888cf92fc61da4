//! Protection changes (Linux: mm/mprotect.c do_mprotect_pkey → mprotect_fixup →
//! change_protection → change_pte_range).

use super::mmap::{page_align, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_WRITE};
use super::pgtable::{self, linux::*, Slot};
use super::vma::{Vma, VmFlags};
use super::{Mm, TASK_SIZE};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use mmu::{Entry, Flush};

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
    if !vma.writable() || is_protnone(pte) {
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
/// (`mm::swap::swp_entry_set_uffd_wp`). Returns the flush needed and the number of PTEs
/// visited (Linux's `pages`).
pub fn change_protection(mm: &mut Mm, hw: &mut Hw, vma: &Vma, start: u64, end: u64, cp_flags: MmCpFlags) -> (Option<Flush>, u64) {
    let prot = pgtable::vm_page_prot(vma.readable(), vma.writable(), vma.executable(), vma.shared());
    let uffd_wp = cp_flags.contains(MM_CP_UFFD_WP);
    let uffd_wp_resolve = cp_flags.contains(MM_CP_UFFD_WP_RESOLVE);
    let mut flush: Option<Flush> = None;
    let mut pages = 0u64;
    let mut va = start;
    // The PTE slot of `va` while it lies in the page table found by the last walk (Linux's
    // change_pte_range: one walk per page table, then the PTEs in order).
    let mut next: Option<Slot> = None;
    while va < end {
        let slot = match next.take() {
            Some(s) => s,
            None => match pgtable::walk_lookup(&hw.mem, mm.pml4, va) {
                Some(s) => s,
                None => {
                    va = (va | 0x1f_ffff) + 1;
                    continue;
                }
            },
        };
        if slot.level == mmu::Level::Pt && (va + 4096) & 0x1f_ffff != 0 {
            next = Some(Slot { pa: mmu::PhysAddr::new(slot.pa.as_u64() + 8), level: mmu::Level::Pt });
        }
        let old = pgtable::get_entry(&hw.mem, slot);
        if old.is_present() || is_protnone(old) {
            let new = if prot == 0 {
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
                let mut n = Entry::new((old.raw() & _PAGE_CHG_MASK) | prot);
                if uffd_wp {
                    n = n.with(_PAGE_UFFD_WP);
                } else if uffd_wp_resolve {
                    n = n.without(_PAGE_UFFD_WP);
                }
                if n.has(_PAGE_UFFD_WP) {
                    // pte_mkuffd_wp: never writable while protected.
                    n = n.without(_PAGE_RW);
                } else if cp_flags.contains(MM_CP_TRY_CHANGE_WRITABLE) && !n.is_writable() && can_change_pte_writable(hw, vma, n) {
                    n = n.with(_PAGE_RW);
                }
                n
            };
            pages += 1;
            if uffd_wp || uffd_wp_resolve {
                tracing::trace!(target: "pagelab::uffd", addr = format_args!("{va:#x}"), old = format_args!("{:#x}", old.raw()), new = format_args!("{:#x}", new.raw()), uffd_wp = new.has(_PAGE_UFFD_WP), writable = new.is_writable(), "change_pte");
            }
            if new != old {
                let f = pgtable::set_entry(&mut hw.mem, slot, va, new);
                if old.is_present() {
                    flush = Some(flush.map_or(f, |g| g.merge(f)));
                } else {
                    f.not_needed();
                }
            }
        } else if (uffd_wp || uffd_wp_resolve) && super::swap::is_swap_pte(old) && super::swap::swp_entry_set_uffd_wp(hw, slot, va, uffd_wp) {
            pages += 1;
        }
        va += 4096;
    }
    (flush, pages)
}

/// A PROT_NONE PTE (Linux: pte_protnone): not present, _PAGE_PROTNONE set, frame kept.
pub fn is_protnone(e: Entry) -> bool {
    !e.is_present() && e.has(_PAGE_PROTNONE)
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
    let mut flush: Option<Flush> = None;
    for k in mm.vmas_in(start, end) {
        let v = mm.vmas.get_mut(&k).unwrap();
        let keep = v.flags - (VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC);
        v.flags = keep | VmFlags::from_prot(prot & 7);
        let vma = v.clone();
        let cp = if super::userfaultfd::vma_wants_manual_pte_write_upgrade(&vma) { MM_CP_TRY_CHANGE_WRITABLE } else { MmCpFlags::empty() };
        if let (Some(f), _) = change_protection(mm, hw, &vma, vma.start, vma.end, cp) {
            flush = Some(flush.map_or(f, |g| g.merge(f)));
        }
    }
    if let Some(f) = flush {
        hw.flush(f, mm.pml4.as_u64());
    }
    mm.merge_around(start, end);
    Ok(())
}
