//! Protection changes (Linux: mm/mprotect.c do_mprotect_pkey → mprotect_fixup →
//! change_protection → change_pte_range).

use super::mmap::{page_align, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_WRITE};
use super::pgtable::{self, linux::*};
use super::vma::{Vma, VmFlags};
use super::{Mm, TASK_SIZE};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use mmu::{Entry, Flush};

/// Linux: can_change_pte_writable. A PTE may be made writable directly (without a write
/// fault) only for an exclusive anonymous page in a writable private VMA whose PTE is dirty,
/// or in a writable shared VMA.
pub fn can_change_pte_writable(hw: &Hw, vma: &Vma, pte: Entry) -> bool {
    if !vma.writable() {
        return false;
    }
    if vma.shared() {
        return true;
    }
    if pte.has(_PAGE_SPECIAL) {
        return false;
    }
    let pa = pgtable::pte_pfn(pte);
    let m = hw.pages.meta(pa);
    !hw.pages.is_zero_page(pa) && m.anon_exclusive && m.refcount == 1 && pte.is_dirty()
}

/// Linux: change_pte_range over [start, end) for a VMA: applies the VMA's protection to
/// every present PTE, keeping `_PAGE_CHG_MASK` bits (A, D, uffd-wp, the frame).
pub fn change_protection(mm: &mut Mm, hw: &mut Hw, vma: &Vma, start: u64, end: u64) -> Option<Flush> {
    let prot = pgtable::vm_page_prot(vma.readable(), vma.writable(), vma.executable(), vma.shared());
    let mut flush: Option<Flush> = None;
    let mut va = start;
    while va < end {
        let Some(slot) = pgtable::walk_lookup(&hw.mem, mm.pml4, va) else {
            va = (va | 0x1f_ffff) + 1;
            continue;
        };
        let old = pgtable::get_entry(&hw.mem, slot);
        if old.is_present() || is_protnone(old) {
            let new = if prot == 0 {
                // PROT_NONE: Linux's _PAGE_PROTNONE form, P clear so the hardware denies
                // every access while the entry keeps its frame.
                Entry::new((old.raw() & _PAGE_CHG_MASK) | _PAGE_PROTNONE | _PAGE_USER)
            } else {
                let mut n = Entry::new((old.raw() & _PAGE_CHG_MASK) | prot);
                if n.has(_PAGE_UFFD_WP) {
                    n = n.without(_PAGE_RW);
                } else if !n.is_writable() && can_change_pte_writable(hw, vma, old) {
                    n = n.with(_PAGE_RW);
                }
                n
            };
            if new != old {
                let f = pgtable::set_entry(&mut hw.mem, slot, va, new);
                if old.is_present() {
                    flush = Some(flush.map_or(f, |g| g.merge(f)));
                } else {
                    f.not_needed();
                }
            }
        }
        va += 4096;
    }
    flush
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
        let keep = v.flags.0 & !(VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC);
        v.flags = VmFlags(keep | VmFlags::from_prot(prot & 7));
        let vma = v.clone();
        if let Some(f) = change_protection(mm, hw, &vma, vma.start, vma.end) {
            flush = Some(flush.map_or(f, |g| g.merge(f)));
        }
    }
    if let Some(f) = flush {
        hw.flush(f, mm.pml4.as_u64());
    }
    mm.merge_around(start, end);
    Ok(())
}
