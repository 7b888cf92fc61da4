//! The one gather of TLB flushes and freed pages (Linux: mm/mmu_gather.c and
//! include/asm-generic/tlb.h: struct mmu_gather, tlb_gather_mmu, tlb_remove_tlb_entry,
//! tlb_remove_page, tlb_flush_mmu, tlb_finish_mmu).
//!
//! An operation that changes many entries of one address space — zap, change_protection,
//! pageout, fork's write-protection of the parent, mremap — starts an [`MmuGather`], hands
//! it the `#[must_use]` [`Flush`] of every entry change that may leave a stale TLB entry
//! (the gather takes the token: a flush cannot be forgotten) and the pages whose mapping
//! it removed, and finishes it once.
//!
//! The ordering rule is the point: [`MmuGather::finish_mmu`] first invalidates the
//! gathered range on every vCPU that may cache it (`Hw::flush`: the current vCPU and a
//! shootdown to each other vCPU running the mm), and only then drops the references of
//! the gathered pages. Freed the other way round, a frame could be reused while another
//! vCPU still reaches it through a stale TLB entry. The page's map count is dropped at
//! the unmap itself (Linux removes the rmap at zap time and defers only the put), so the
//! counts read during the operation are already right.
//!
//! pagelab batches without limit: Linux flushes early when its batch of pages fills
//! (tlb_next_batch failing → tlb_flush_mmu); here one operation is one flush, which keeps
//! the flush and shootdown counts of `--stats` what they were before the gather existed.

use super::Mm;
use crate::kernel::hw::Hw;
use mmu::{Flush, PhysAddr};

/// Pending TLB invalidations and page frees of one operation on one address space.
#[must_use = "an mmu_gather must be finished (finish_mmu) to flush and free"]
pub struct MmuGather {
    /// The CR3 of the address space (the vCPUs that may cache its entries).
    cr3: u64,
    /// The hull of the pending invalidations (Linux: tlb->start, tlb->end).
    range: Option<Flush>,
    /// References to drop after the flush, in the order they were gathered.
    pages: Vec<PhysAddr>,
}

impl MmuGather {
    /// Linux: tlb_gather_mmu. A gather for `mm`.
    pub fn new(mm: &Mm) -> Self {
        Self::for_cr3(mm.pml4.as_u64())
    }

    /// A gather for the address space whose PML4 is at `cr3`.
    pub fn for_cr3(cr3: u64) -> Self {
        Self { cr3, range: None, pages: Vec::new() }
    }

    /// Takes the flush an entry change needs (Linux: tlb_remove_tlb_entry /
    /// tlb_flush_pte_range, which widen the pending range: __tlb_adjust_range).
    #[inline]
    pub fn flush_pte(&mut self, f: Flush) {
        self.range = Some(match self.range {
            Some(r) => r.merge(f),
            None => f,
        });
    }

    /// The reference a removed mapping held on `pa`, dropped once the TLBs no longer
    /// reach it (Linux: tlb_remove_page). The caller has already removed the mapping
    /// from the page's counts (`Pages::remove_rmap`).
    #[inline]
    pub fn remove_page(&mut self, pa: PhysAddr) {
        self.pages.push(pa);
    }

    /// Whether an invalidation is pending.
    pub fn needs_flush(&self) -> bool {
        self.range.is_some()
    }

    /// Linux: tlb_flush_mmu. Invalidates the pending range on every vCPU running the
    /// address space, then drops the gathered page references; the gather stays usable.
    pub fn flush_mmu(&mut self, hw: &mut Hw) {
        if let Some(f) = self.range.take() {
            hw.flush(f, self.cr3);
        }
        // Only now may a frame go back to the allocator: no TLB reaches it any more.
        for pa in self.pages.drain(..) {
            hw.pages.put(pa);
        }
    }

    /// Linux: tlb_finish_mmu. Flushes, frees, and ends the gather.
    pub fn finish_mmu(mut self, hw: &mut Hw) {
        self.flush_mmu(hw);
    }
}

impl Drop for MmuGather {
    fn drop(&mut self) {
        // An unfinished gather lost a flush (a stale TLB entry) or leaked pages.
        if !std::thread::panicking() {
            debug_assert!(self.range.is_none() && self.pages.is_empty(), "mmu_gather dropped with work pending: {:?}, {} pages", self.range, self.pages.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmu::PageSize;

    #[test]
    fn finish_flushes_every_vcpu_of_the_mm_then_frees() {
        let mut hw = Hw::new(16 << 20, 3);
        // vCPU 1 runs the same address space as the current vCPU 0; vCPU 2 another.
        let cr3 = 0x5000;
        hw.vcpus[0].state.ctl.cr3 = cr3;
        hw.vcpus[1].state.ctl.cr3 = cr3;
        hw.vcpus[2].state.ctl.cr3 = 0x9000;
        let a = hw.pages.alloc_zeroed(&mut hw.mem).unwrap();
        let b = hw.pages.alloc_zeroed(&mut hw.mem).unwrap();
        let allocated = hw.pages.allocated;
        let mut tlb = MmuGather::for_cr3(cr3);
        assert!(!tlb.needs_flush());
        tlb.flush_pte(Flush::page(0x40_0000, PageSize::Size4K));
        tlb.flush_pte(Flush::page(0x40_5000, PageSize::Size4K));
        tlb.remove_page(a);
        tlb.remove_page(b);
        assert!(tlb.needs_flush());
        // Nothing is freed before the finish.
        assert_eq!(hw.pages.allocated, allocated);
        tlb.finish_mmu(&mut hw);
        assert_eq!(hw.pages.allocated, allocated - 2);
        // One flush of the hull: one shootdown, to vCPU 1 only.
        assert_eq!(hw.shootdowns, 1);
    }

    #[test]
    fn an_empty_gather_flushes_nothing() {
        let mut hw = Hw::new(16 << 20, 2);
        hw.vcpus[1].state.ctl.cr3 = 0x5000;
        MmuGather::for_cr3(0x5000).finish_mmu(&mut hw);
        assert_eq!(hw.shootdowns, 0);
    }

    #[test]
    fn the_pending_range_is_the_hull() {
        let mut tlb = MmuGather::for_cr3(0);
        tlb.flush_pte(Flush::page(0x7000, PageSize::Size4K));
        tlb.flush_pte(Flush::page(0x2000, PageSize::Size4K));
        assert_eq!(tlb.range, Some(Flush::range(0x2000, 0x8000)));
        tlb.range = None;
    }
}
