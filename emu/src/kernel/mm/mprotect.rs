//! Protection changes (Linux: mm/mprotect.c do_mprotect_pkey → mprotect_fixup →
//! change_protection → change_pte_range).
//!
//! change_protection is a `pagewalk` walk whose `pte_entry` is change_pte_range's body;
//! its flushes go to the caller's `MmuGather` (do_mprotect_pkey's, or uffd_wp_range's).

use super::mmap::{page_align, PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_WRITE};
use super::mmu_gather::MmuGather;
use super::pagewalk::{walk_page_vma, Action, MmWalkOps};
use super::pgtable::{self, linux::*, Slot};
use super::pagewalk::Hole;
use super::swapops::{make_pte_marker, pte_swp_clear_uffd_wp, pte_swp_mkuffd_wp, softleaf_from_pte, PteMarker, SoftLeaf};
use super::vma::{Vma, VmFlags};
use super::{Mm, TASK_SIZE};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use mmu::{Entry, Level, PhysAddr, PhysMem};
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
/// (`_PAGE_SWP_UFFD_WP`); migration entries are left alone.
///
/// PTE markers: MM_CP_UFFD_WP in a VMA that uses markers (`userfaultfd_wp_use_markers`:
/// file and shmem VMAs, anonymous ones with WP_UNPOPULATED) puts a uffd-wp marker in every
/// none PTE, allocating the page tables the range lacks first (Linux: change_pmd_prepare
/// and change_prepare; seed patch 003), so the protection holds where nothing was ever
/// mapped. MM_CP_UFFD_WP_RESOLVE turns a uffd-wp marker back into none. Poison and guard
/// markers are never touched: any access to them fails anyway.
///
/// The flushes go to `tlb`; returns the number of entries changed (Linux's `pages`), or
/// ENOMEM when a page table could not be allocated (the entries before it stay changed).
pub fn change_protection(tlb: &mut MmuGather, mm: &mut Mm, hw: &mut Hw, vma: &Vma, start: u64, end: u64, cp_flags: MmCpFlags) -> KResult<u64> {
    let uffd_wp = cp_flags.contains(MM_CP_UFFD_WP);
    let pml4 = mm.pml4;
    let mut cp = ChangeProt {
        hw,
        tlb,
        vma,
        prot: vma.page_prot(),
        cp_flags,
        uffd_wp,
        uffd_wp_resolve: cp_flags.contains(MM_CP_UFFD_WP_RESOLVE),
        // Linux: userfaultfd_wp_use_markers, asked once per VMA.
        markers: uffd_wp && super::userfaultfd::userfaultfd_wp_use_markers(vma),
        tables: &mut mm.table_frames,
        cr3: pml4.as_u64(),
        pages: 0,
    };
    match walk_page_vma(pml4, vma, start, end, &mut cp) {
        ControlFlow::Continue(()) => Ok(cp.pages),
        ControlFlow::Break(e) => Err(e),
    }
}

/// Linux: pte_modify / pmd_modify / huge_pte_modify, then the uffd-wp step of
/// change_pte_range, change_huge_pmd and hugetlb_change_protection, for a present or
/// PROT_NONE leaf: the protection `prot` (the _PAGE_PROTNONE form for 0) keeping the
/// frame, bit 7 (PS of a huge leaf, PAT of a PTE, which _PAGE_CHG_MASK keeps anyway) and
/// the _PAGE_CHG_MASK bits, then uffd-wp set or cleared; a uffd-wp'd entry is never
/// writable.
#[inline]
pub fn modify_uffd(old: Entry, prot: u64, uffd_wp: bool, uffd_wp_resolve: bool) -> Entry {
    let keep = old.raw() & (_PAGE_CHG_MASK | _PAGE_PSE);
    let mut n = if prot == 0 { Entry::new(keep | _PAGE_PROTNONE | _PAGE_USER) } else { Entry::new(keep | prot) };
    if uffd_wp {
        n = n.with(_PAGE_UFFD_WP);
    } else if uffd_wp_resolve {
        n = n.without(_PAGE_UFFD_WP);
    }
    if n.has(_PAGE_UFFD_WP) {
        n = n.without(_PAGE_RW);
    }
    n
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
    /// The mm's table frames, when this walk installs markers: then every hole gets its
    /// page tables and every none PTE a marker.
    markers: bool,
    /// The mm's page-table frames: for the tables `markers` allocates and a split installs.
    tables: &'a mut Vec<PhysAddr>,
    cr3: u64,
    pages: u64,
}

impl ChangeProt<'_> {
    /// Linux: change_huge_pmd. The PMD gets the VMA's protection keeping the frame, PS, A,
    /// D and uffd-wp (pmd_modify), then uffd-wp set (and R/W cleared) or cleared, and R/W
    /// restored where can_change_pmd_writable allows (an exclusive anonymous folio, as for
    /// a PTE); PROT_NONE keeps the huge leaf in the _PAGE_PROTNONE form. 512 pages count.
    fn change_huge_pmd(&mut self, old: Entry, slot: Slot, haddr: u64) {
        let mut n = modify_uffd(old, self.prot, self.uffd_wp, self.uffd_wp_resolve);
        if self.prot != 0 && !n.has(_PAGE_UFFD_WP) && self.cp_flags.contains(MM_CP_TRY_CHANGE_WRITABLE) && !n.is_writable() && can_change_pte_writable(self.hw, self.vma, n) {
            n = n.with(_PAGE_RW);
        }
        self.pages += super::huge_memory::HPAGE_PMD_NR;
        if self.uffd_wp || self.uffd_wp_resolve {
            tracing::trace!(target: "pagelab::uffd", addr = format_args!("{haddr:#x}"), old = format_args!("{:#x}", old.raw()), new = format_args!("{:#x}", n.raw()), uffd_wp = n.has(_PAGE_UFFD_WP), writable = n.is_writable(), "change_huge_pmd");
        }
        if n != old {
            let f = pgtable::set_entry(&mut self.hw.mem, slot, haddr, n);
            if old.is_present() {
                self.tlb.flush_pte(f);
            } else {
                f.not_needed();
            }
        }
    }
}

impl MmWalkOps for ChangeProt<'_> {
    type Break = Errno;

    fn mem(&self) -> &PhysMem {
        &self.hw.mem
    }

    /// Linux: change_pmd_range handing a page table to change_pte_range, which pagelab
    /// does here in one pass over the table's entries: the two changes a uffd-wp walk makes
    /// most — a none PTE to a marker, a uffd-wp marker back to none — and the entries it
    /// leaves alone are done in place; any other entry goes to `pte_entry`. Same effect as
    /// the walker's PTE loop, at a fraction of the cost (UFFDIO_WRITEPROTECT over 1 GiB of
    /// unpopulated shmem is 262,144 such PTEs).
    ///
    /// A huge PMD: covered whole, it changes as one entry (change_huge_pmd); covered in
    /// part, it is split first (change_pmd_range's __split_huge_pmd).
    fn pmd_entry(&mut self, pmd: Entry, slot: Slot, addr: u64, next: u64) -> ControlFlow<Errno, Action> {
        use super::huge_memory::{pmd_trans_huge, split_huge_pmd, HPAGE_PMD_SIZE};
        if pmd_trans_huge(pmd) {
            // A file folio cannot be uffd-wp'd at the PMD level: change_huge_pmd splits
            // it (for shmem: zaps the PMD), and the PTE level then installs markers.
            let file_wp = self.uffd_wp && super::huge_memory::is_file_pmd(self.hw, pmd);
            if next - addr == HPAGE_PMD_SIZE && !file_wp {
                self.change_huge_pmd(pmd, slot, addr);
                return ControlFlow::Continue(Action::Continue);
            }
            if !split_huge_pmd(self.hw, self.tables, self.cr3, slot, addr & !(HPAGE_PMD_SIZE - 1)) {
                return ControlFlow::Break(Errno::ENOMEM);
            }
            return ControlFlow::Continue(Action::Again);
        }
        if !(self.uffd_wp || self.uffd_wp_resolve) {
            return ControlFlow::Continue(Action::Subtree);
        }
        let pt = pmd.addr(Level::Pd, 52);
        let marker = make_pte_marker(PteMarker::UFFD_WP).raw();
        let (install, resolve) = (self.markers, self.uffd_wp_resolve);
        let (mut i, last) = (((addr >> 12) & 511) as usize, (((next - 1) >> 12) & 511) as usize + 1);
        while i < last {
            if let Some(t) = self.hw.mem.table_mut(pt) {
                while i < last {
                    let e = t[i];
                    if e == 0 {
                        if install {
                            t[i] = marker;
                            self.pages += 1;
                        }
                    } else if e == marker {
                        if resolve {
                            t[i] = 0;
                            self.pages += 1;
                        }
                    } else {
                        break;
                    }
                    i += 1;
                }
            }
            if i < last {
                let slot = Slot { pa: PhysAddr::new(pt.as_u64() + 8 * i as u64), level: Level::Pt };
                let va = (addr & !0x1f_ffff) + ((i as u64) << 12);
                let e = pgtable::get_entry(&self.hw.mem, slot);
                self.pte_entry(e, slot, va)?;
                i += 1;
            }
        }
        ControlFlow::Continue(Action::Continue)
    }

    /// Linux: change_pmd_prepare / change_prepare: a walk that installs markers allocates
    /// the missing table and descends into it.
    /// Linux: hugetlb_change_protection, for one huge PTE.
    fn hugetlb_entry(&mut self, old: Entry, slot: Slot, addr: u64, _next: u64) -> ControlFlow<Errno> {
        let size = super::hugetlb::vma_hsize(self.vma).expect("a hugetlb VMA");
        let haddr = addr & size.mask();
        if let Some(f) = super::hugetlb::change_huge_pte(&mut self.hw.mem, slot, haddr, old, self.prot, self.uffd_wp, self.uffd_wp_resolve) {
            self.tlb.flush_pte(f);
        }
        if !pgtable::pte_none(old) || self.uffd_wp {
            self.pages += size.nr_pages();
        }
        ControlFlow::Continue(())
    }

    fn pte_hole(&mut self, addr: u64, _next: u64, _level: Level, slot: Slot) -> ControlFlow<Errno, Hole> {
        if !self.markers {
            return ControlFlow::Continue(Hole::Skip);
        }
        match pgtable::table_alloc(&mut self.hw.mem, &mut self.hw.pages, self.tables, slot, addr) {
            Some(_) => ControlFlow::Continue(Hole::Filled),
            None => ControlFlow::Break(Errno::ENOMEM),
        }
    }

    /// Linux: change_pte_range, for one PTE.
    #[inline]
    fn pte_entry(&mut self, old: Entry, slot: Slot, va: u64) -> ControlFlow<Errno> {
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
            SoftLeaf::None => {
                // Nothing but userfaultfd touches a none PTE here: a marker where the VMA
                // uses them. Not present before or after: nothing cached.
                if self.markers {
                    pgtable::set_entry(&mut self.hw.mem, slot, va, make_pte_marker(PteMarker::UFFD_WP)).not_needed();
                    self.pages += 1;
                }
                return ControlFlow::Continue(());
            }
            SoftLeaf::Marker(m) => {
                // Poison and guard markers stay; un-protecting drops a uffd-wp marker, and
                // the next fault there is an ordinary one.
                if uffd_wp_resolve && m == PteMarker::UFFD_WP {
                    pgtable::set_entry(&mut self.hw.mem, slot, va, Entry::new(0)).not_needed();
                    self.pages += 1;
                }
                return ControlFlow::Continue(());
            }
            SoftLeaf::Migration { .. } => return ControlFlow::Continue(()),
        };
        // PROT_NONE (prot 0) gives Linux's _PAGE_PROTNONE form: P clear, so the hardware
        // denies every access while the entry keeps its frame.
        let mut new = modify_uffd(old, self.prot, uffd_wp, uffd_wp_resolve);
        if self.prot != 0 && !new.has(_PAGE_UFFD_WP) && self.cp_flags.contains(MM_CP_TRY_CHANGE_WRITABLE) && !new.is_writable() && can_change_pte_writable(self.hw, self.vma, new) {
            new = new.with(_PAGE_RW);
        }
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
    // do_mprotect_pkey: the start must be mapped (ENOMEM); then VMA by VMA in order, each
    // changed before the next is looked at, so a hole (ENOMEM) or a VMA that may not
    // get the access (EACCES: a write without VM_MAYWRITE) stops the walk with the
    // earlier VMAs already changed, as on Linux. A VMA whose flags do not change is left
    // alone: not split, its entries untouched (mprotect_fixup's early return).
    if mm.find_vma(start).is_none() {
        return Err(Errno::ENOMEM);
    }
    // One gather for every VMA of the range: one flush at the end (Linux: mprotect_fixup
    // under the tlb_gather_mmu of do_mprotect_pkey).
    let mut tlb = MmuGather::new(mm);
    let mut tmp = start;
    let mut r = Ok(());
    while tmp < end {
        let Some(v) = mm.find_vma(tmp).cloned() else {
            r = Err(Errno::ENOMEM);
            break;
        };
        if prot & PROT_WRITE != 0 && !v.flags.has(VmFlags::MAYWRITE) {
            r = Err(Errno::EACCES);
            break;
        }
        let (a, b) = (tmp, end.min(v.end));
        let mut newflags = (v.flags - (VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC)) | VmFlags::from_prot(prot & 7);
        if newflags != v.flags {
            // mprotect_fixup's commit charge: a private mapping turning writable is
            // charged (VM_ACCOUNT) unless it already was or cannot be; an anonymous one
            // with no pages yet (no anon_vma) turning read-only gives the charge back.
            // The flag takes part in merging (measured: such a VMA stays apart from
            // read-only neighbours that kept theirs).
            if newflags.has(VmFlags::WRITE) {
                if !v.flags.intersects(VmFlags::ACCOUNT | VmFlags::WRITE | VmFlags::HUGETLB | VmFlags::SHARED | VmFlags::NORESERVE) {
                    newflags |= VmFlags::ACCOUNT;
                }
            } else if v.flags.has(VmFlags::ACCOUNT) && v.is_anonymous() && v.anon_vma.is_none() {
                newflags -= VmFlags::ACCOUNT;
            }
            if !mm.may_split(a) || !mm.may_split(b) {
                r = Err(Errno::EINVAL);
                break;
            }
            mm.split_vma(hw, a);
            mm.split_vma(hw, b);
            let v = mm.vmas.get_mut(&a).unwrap();
            v.flags = newflags;
            let vma = v.clone();
            let cp = if super::userfaultfd::vma_wants_manual_pte_write_upgrade(&vma) { MM_CP_TRY_CHANGE_WRITABLE } else { MmCpFlags::empty() };
            // Plain mprotect never allocates page tables: it cannot fail.
            let _ = change_protection(&mut tlb, mm, hw, &vma, vma.start, vma.end, cp);
        }
        tmp = b;
    }
    tlb.finish_mmu(hw);
    mm.merge_around(start, end);
    r
}
