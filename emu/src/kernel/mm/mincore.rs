//! mincore(2) (Linux: mm/mincore.c): which pages of a range are resident, one byte per
//! page, through the one page-range walker. A present PTE or huge PMD is resident. A none
//! PTE or a marker (uffd-wp, guard: pte_none_mostly), and a range without a page table,
//! are resident when the VMA's object has the page up to date in its page cache (an
//! anonymous VMA: never). A swap entry is resident only while its page is in the swap
//! cache, which pagelab does not have; a migration entry counts as resident.

use super::pagewalk::{walk_page_vma, Action, Hole, MmWalkOps};
use super::pgtable::Slot;
use super::swapops::{softleaf_from_pte, SoftLeaf};
use super::vma::{Backing, Vma};
use super::Mm;
use crate::kernel::errno::Errno;
use crate::kernel::hw::Hw;
use mmu::{Entry, Level, PhysMem};
use std::convert::Infallible;
use std::ops::ControlFlow;

/// Linux: do_mincore: the residency of the pages from `addr` (page aligned) to the end of
/// its VMA or of `pages` pages, whichever comes first. ENOMEM when no VMA holds `addr`.
pub fn do_mincore(mm: &Mm, hw: &Hw, addr: u64, pages: u64) -> Result<Vec<u8>, Errno> {
    let vma = mm.find_vma(addr).ok_or(Errno::ENOMEM)?;
    let end = vma.end.min(addr.saturating_add(pages << 12));
    // can_do_mincore: an anonymous VMA, or a file the caller owns or may write; the guest
    // runs as root (CAP_FOWNER), so every VMA qualifies.
    let mut w = MincoreWalk { hw, vma, out: Vec::with_capacity(((end - addr) >> 12) as usize) };
    let _: ControlFlow<Infallible> = walk_page_vma(mm.pml4, vma, addr, end, &mut w);
    debug_assert_eq!(w.out.len() as u64, (end - addr) >> 12);
    Ok(w.out)
}

struct MincoreWalk<'a> {
    hw: &'a Hw,
    vma: &'a Vma,
    out: Vec<u8>,
}

impl MincoreWalk<'_> {
    /// Linux: __mincore_unmapped_range / mincore_page: the page cache's word on
    /// [addr, end) — a page present and up to date there is resident.
    fn unmapped(&mut self, addr: u64, end: u64) {
        match &self.vma.backing {
            Backing::Shmem { obj, .. } => {
                for va in (addr..end).step_by(4096) {
                    let cached = obj.find_uptodate_page(self.vma.object_offset(va) >> 12).is_some();
                    self.out.push(cached as u8);
                }
            }
            Backing::Anon | Backing::Heap | Backing::Stack => self.out.resize(self.out.len() + ((end - addr) >> 12) as usize, 0),
        }
    }
}

impl MmWalkOps for MincoreWalk<'_> {
    type Break = Infallible;

    fn mem(&self) -> &PhysMem {
        &self.hw.mem
    }

    fn pud_entry(&mut self, pud: Entry, _slot: Slot, addr: u64, next: u64) -> ControlFlow<Infallible, Action> {
        if !pud.is_leaf(Level::Pdpt) {
            return ControlFlow::Continue(Action::Subtree);
        }
        self.out.resize(self.out.len() + ((next - addr) >> 12) as usize, 1);
        ControlFlow::Continue(Action::Continue)
    }

    /// Linux: mincore_pte_range's pmd_trans_huge_lock part: a huge PMD is resident.
    fn pmd_entry(&mut self, pmd: Entry, _slot: Slot, addr: u64, next: u64) -> ControlFlow<Infallible, Action> {
        if !pmd.is_leaf(Level::Pd) {
            return ControlFlow::Continue(Action::Subtree);
        }
        self.out.resize(self.out.len() + ((next - addr) >> 12) as usize, 1);
        ControlFlow::Continue(Action::Continue)
    }

    /// Linux: mincore_pte_range, one PTE.
    fn pte_entry(&mut self, pte: Entry, _slot: Slot, addr: u64) -> ControlFlow<Infallible> {
        match softleaf_from_pte(pte) {
            SoftLeaf::None | SoftLeaf::Marker(_) => self.unmapped(addr, addr + 4096),
            SoftLeaf::Present | SoftLeaf::ProtNone | SoftLeaf::Migration { .. } => self.out.push(1),
            // mincore_swap: the swap cache's word, and pagelab has none.
            SoftLeaf::Swap { .. } => self.out.push(0),
        }
        ControlFlow::Continue(())
    }

    /// Linux: mincore_hugetlb: resident unless none or a marker (huge_pte_none_mostly).
    fn hugetlb_entry(&mut self, pte: Entry, _slot: Slot, addr: u64, next: u64) -> ControlFlow<Infallible> {
        let present = !matches!(softleaf_from_pte(pte), SoftLeaf::None | SoftLeaf::Marker(_));
        self.out.resize(self.out.len() + ((next - addr) >> 12) as usize, present as u8);
        ControlFlow::Continue(())
    }

    /// Linux: mincore_unmapped_range: no page table, the page cache decides.
    fn pte_hole(&mut self, addr: u64, next: u64, _level: Level, _slot: Slot) -> ControlFlow<Infallible, Hole> {
        if super::hugetlb::vma_hsize(self.vma).is_some() {
            // A hugetlb VMA's hole: hugetlb_entry was not called for it (no table).
            self.out.resize(self.out.len() + ((next - addr) >> 12) as usize, 0);
        } else {
            self.unmapped(addr, next);
        }
        ControlFlow::Continue(Hole::Skip)
    }
}
