//! Copying an address space for fork (Linux: dup_mmap in kernel/fork.c — mm/mmap.c in
//! newer trees — and copy_page_range / copy_present_pte in mm/memory.c).
//!
//! The child gets its own PML4 and a copy of every VMA. Page tables are copied only where
//! a fault could not rebuild them (Linux's vma_needs_copy: VMAs with anonymous pages);
//! shared mappings are left for the child to fault in from their object. In a private
//! (copy-on-write) mapping a writable PTE loses R/W in *both* processes and the page
//! becomes shared: one more reference and mapping, and no longer PageAnonExclusive, so the
//! first write on either side goes through do_wp_page, which copies or — once the other
//! side is gone — reuses it.

use super::mmu_gather::MmuGather;
use super::pagewalk::{walk_page_vma, Action, MmWalkOps};
use super::pgtable::{self, linux::*, Slot};
use super::swapops::{softleaf_from_pte, SoftLeaf};
use super::vma::{Backing, Vma, VmFlags, VmUserfaultfdCtx};
use super::Mm;
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use mmu::{Entry, PhysAddr, PhysMem};
use std::ops::ControlFlow;
use std::collections::BTreeMap;

/// Linux: is_cow_mapping. Private mappings that may be written.
pub fn is_cow_mapping(flags: VmFlags) -> bool {
    flags & (VmFlags::SHARED | VmFlags::MAYWRITE) == VmFlags::MAYWRITE
}

/// Linux: vma_needs_copy. Page tables are copied when faults could not recreate them:
/// VMAs with anonymous pages (an anon_vma): private anonymous memory, and a private file
/// mapping once it has a COW page (all of its PTEs are copied then, the file's pages'
/// too). Shared mappings refault from their object; MADV_WIPEONFORK ranges start empty
/// in the child (dup_mmap does not call copy_page_range for them).
fn vma_needs_copy(v: &Vma) -> bool {
    if v.flags.has(VmFlags::WIPEONFORK) {
        return false;
    }
    // 6.18: a VMA that may hold guard markers (VM_MAYBE_GUARD) is copied too, so the
    // child keeps them (measured: a shared or file VMA's child gets SIGSEGV there).
    matches!(v.backing, Backing::Anon | Backing::Heap | Backing::Stack) && !v.shared() || v.anon_vma.is_some() || v.flags.has(VmFlags::MAYBE_GUARD)
}

/// Linux: mm_alloc_pgd (mm_init, called by dup_mm before dup_mmap): the child's PML4,
/// zeroed.
pub fn mm_alloc_pgd(hw: &mut Hw) -> KResult<PhysAddr> {
    hw.pages.alloc_zeroed(&mut hw.mem).ok_or(Errno::ENOMEM)
}

/// A copy of `src` for a child process, on the PML4 `pml4` (from `mm_alloc_pgd`, freed
/// with the child on failure): the VMAs, and page tables where private writable pages
/// are write-protected in both for copy-on-write. The parent's TLBs (on every vCPU
/// running it) are flushed once at the end, as dup_mmap's flush_tlb_mm does.
///
/// `fork_ctxs` are the (parent's, child's) userfaultfd contexts that dup_userfaultfd
/// made for the contexts with UFFD_FEATURE_EVENT_FORK (Linux calls it from here, for
/// each VMA; the process-level fork calls it before, as mm does not make contexts): a
/// VMA registered with one of them keeps its registration in the child, with the
/// child's context.
pub fn dup_mmap(src: &mut Mm, hw: &mut Hw, pml4: PhysAddr, fork_ctxs: &[(VmUserfaultfdCtx, VmUserfaultfdCtx)]) -> KResult<Mm> {
    let mut child = Mm {
        pml4,
        vmas: BTreeMap::new(),
        start_brk: src.start_brk,
        brk: src.brk,
        users: 1,
        arg_start: src.arg_start,
        arg_end: src.arg_end,
        exe: src.exe.clone(),
        table_frames: vec![pml4],
        thp_disable: src.thp_disable,
        // mm_init: only VM_INIT_DEF_MASK (VM_NOHUGEPAGE, not modelled here) is kept.
        def_flags: VmFlags::empty(),
        anon_vma_seq: 0,
    };
    // The parent's write-protections, flushed once at the end (dup_mmap's flush_tlb_mm).
    let mut tlb = MmuGather::new(src);
    let vmas: Vec<Vma> = src.vmas.values().cloned().collect();
    let mut result = Ok(());
    for v in vmas {
        if v.flags.has(VmFlags::DONTCOPY) {
            continue;
        }
        let mut cv = v.clone();
        // mlock is not inherited; userfaultfd registrations go unless the context asked
        // for fork events (dup_userfaultfd), in which case the child's VMA keeps its
        // modes with the child's new context.
        cv.flags.remove(VmFlags::LOCKED | VmFlags::LOCKONFAULT);
        // hugetlb_dup_vma_private: the child owns no reservation.
        cv.hugetlb_resv = None;
        cv.hugetlb_unmapped = false;
        let nctx = cv.userfaultfd_ctx.as_ref().and_then(|o| fork_ctxs.iter().find(|(a, _)| a == o).map(|(_, n)| n.clone()));
        match nctx {
            Some(n) => cv.userfaultfd_ctx = Some(n),
            None => {
                cv.flags.remove(VmFlags::UFFD_MISSING | VmFlags::UFFD_WP | VmFlags::UFFD_MINOR);
                cv.userfaultfd_ctx = None;
            }
        }
        // anon_vma_fork: the child's VMA gets an anon_vma of its own, chained to the
        // parent's (so it is not reusable or freely mergeable: `AnonVma::forked`).
        if v.anon_vma.is_some() {
            cv.anon_vma = Some(child.new_anon_vma(true));
        }
        let child_wp = cv.flags.has(VmFlags::UFFD_WP);
        child.vmas.insert(cv.start, cv);
        // vma_needs_copy: a child VMA with VM_UFFD_WP always gets the page tables (its
        // wp bits cannot be rebuilt by faults).
        if !vma_needs_copy(&v) && !child_wp {
            continue;
        }
        if let Err(e) = copy_page_range(&mut tlb, &mut child, src, hw, &v, child_wp) {
            result = Err(e);
            break;
        }
    }
    // On failure too: the entries write-protected so far must not stay writable in a TLB.
    tlb.finish_mmu(hw);
    if let Err(e) = result {
        // Out of memory for the child's tables: undo the copy (the parent keeps its
        // write-protected PTEs; their next write fault reuses the page).
        super::mmap::exit_mmap(&mut child, hw);
        return Err(e);
    }
    Ok(child)
}

/// Linux: copy_page_range over one VMA: a walk of the parent's tables, each non-none PTE
/// copied into the child's (allocated as needed: ENOMEM when that fails). The parent's
/// write-protection flushes go to `tlb`.
fn copy_page_range(tlb: &mut MmuGather, dst: &mut Mm, src: &Mm, hw: &mut Hw, vma: &Vma, child_wp: bool) -> KResult<()> {
    // The child keeps uffd-wp on swap entries and markers only if its VMA has VM_UFFD_WP.
    let keep_wp = dst.vmas.get(&vma.start).is_some_and(|c| c.flags.has(VmFlags::UFFD_WP));
    let mut w = CopyPtes { hw, tlb, dst, cow: is_cow_mapping(vma.flags), shared: vma.shared(), child_wp, keep_wp, hsize: super::hugetlb::vma_hsize(vma) };
    match walk_page_vma(src.pml4, vma, vma.start, vma.end, &mut w) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

struct CopyPtes<'a> {
    hw: &'a mut Hw,
    tlb: &'a mut MmuGather,
    dst: &'a mut Mm,
    cow: bool,
    shared: bool,
    child_wp: bool,
    keep_wp: bool,
    hsize: Option<super::hugetlb::HugeSize>,
}

impl MmWalkOps for CopyPtes<'_> {
    type Break = Errno;

    fn mem(&self) -> &PhysMem {
        &self.hw.mem
    }

    /// Linux: copy_hugetlb_page_range, for one huge PTE.
    fn hugetlb_entry(&mut self, e: Entry, sslot: Slot, addr: u64, _next: u64) -> ControlFlow<Errno> {
        let size = self.hsize.expect("a hugetlb VMA");
        let haddr = addr & size.mask();
        let hw = &mut *self.hw;
        let Some(child) = super::hugetlb::copy_huge_pte(hw, self.tlb, sslot, haddr, e, size, self.cow, self.keep_wp) else {
            return ControlFlow::Continue(());
        };
        let Some(dslot) = super::hugetlb::huge_pte_alloc(&mut hw.mem, &mut hw.pages, &mut self.dst.table_frames, self.dst.pml4, haddr, size) else {
            return ControlFlow::Break(Errno::ENOMEM);
        };
        // The child's tables are new: nothing cached.
        pgtable::set_entry(&mut hw.mem, dslot, haddr, child).not_needed();
        ControlFlow::Continue(())
    }

    /// Linux: copy_pmd_range's huge half, copy_huge_pmd: the child maps the same folio
    /// with a huge PMD (one more reference and entire mapping, no page of it exclusive any
    /// more), both sides write-protected and the child's PMD old; uffd-wp stays only if the
    /// child's VMA has VM_UFFD_WP. The huge zero page is simply mapped again.
    fn pmd_entry(&mut self, pmd: Entry, sslot: Slot, addr: u64, _next: u64) -> ControlFlow<Errno, Action> {
        use super::huge_memory::{is_huge_zero_pmd, pmd_pfn, pmd_trans_huge};
        if !pmd_trans_huge(pmd) {
            return ControlFlow::Continue(Action::Subtree);
        }
        if super::huge_memory::is_file_pmd(self.hw, pmd) {
            // copy_huge_pmd: a file folio is not copied; the child refaults it.
            return ControlFlow::Continue(Action::Continue);
        }
        let hw = &mut *self.hw;
        let Some(dslot) = pgtable::pmd_alloc(&mut hw.mem, &mut hw.pages, &mut self.dst.table_frames, self.dst.pml4, addr) else {
            return ControlFlow::Break(Errno::ENOMEM);
        };
        let mut child = pmd;
        if !is_huge_zero_pmd(hw, pmd) {
            let head = pmd_pfn(pmd);
            hw.pages.get(head);
            hw.pages.map_pmd(head);
            // folio_try_dup_anon_rmap_pmd.
            for i in 0..512 {
                hw.pages.meta_mut(mmu::PhysAddr::new(head.as_u64() + (i << 12))).anon_exclusive = false;
            }
            if pmd.is_present() && pmd.is_writable() {
                // pmdp_set_wrprotect in the parent.
                let f = pgtable::set_entry(&mut hw.mem, sslot, addr, pmd.without(_PAGE_RW));
                self.tlb.flush_pte(f);
            }
            child = child.without(_PAGE_RW);
        }
        child = child.without(_PAGE_ACCESSED);
        if !self.child_wp {
            child = child.without(_PAGE_UFFD_WP);
        }
        // The child's tables are new: nothing cached.
        pgtable::set_entry(&mut hw.mem, dslot, addr, child).not_needed();
        ControlFlow::Continue(Action::Continue)
    }

    /// Linux: copy_pte_range, for one PTE.
    fn pte_entry(&mut self, pte: Entry, sslot: Slot, va: u64) -> ControlFlow<Errno> {
        let leaf = softleaf_from_pte(pte);
        if leaf == SoftLeaf::None {
            return ControlFlow::Continue(());
        }
        let hw = &mut *self.hw;
        let Some(dslot) = pgtable::walk_alloc(&mut hw.mem, &mut hw.pages, &mut self.dst.table_frames, self.dst.pml4, va) else {
            return ControlFlow::Break(Errno::ENOMEM);
        };
        let child_pte = match leaf {
            SoftLeaf::Present | SoftLeaf::ProtNone => copy_present_pte(hw, self.tlb, sslot, va, pte, self.cow, self.shared, self.child_wp),
            SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } | SoftLeaf::Marker(_) => {
                // mm::swap::copy_nonpresent_pte: a swap slot gets one more reference.
                let (child, parent) = super::swap::copy_nonpresent_pte(hw, pte, leaf, self.keep_wp);
                if let Some(p) = parent {
                    // Not present before or after: nothing cached.
                    pgtable::set_entry(&mut hw.mem, sslot, va, p).not_needed();
                }
                let Some(child) = child else {
                    return ControlFlow::Continue(());
                };
                child
            }
            SoftLeaf::None => unreachable!("none entries are skipped above"),
        };
        // The child's tables are new: nothing can be cached for them.
        pgtable::set_entry(&mut hw.mem, dslot, va, child_pte).not_needed();
        ControlFlow::Continue(())
    }
}

/// Linux: copy_present_pte (a PROT_NONE entry is "present" to Linux too). Takes a
/// reference and a mapping of the page, drops PageAnonExclusive, write-protects a COW
/// page in the parent, and returns the child's entry: write-protected like the parent's,
/// clean for a shared mapping, old (A clear), with uffd-wp only if the child's VMA has
/// VM_UFFD_WP (EVENT_FORK).
#[allow(clippy::too_many_arguments)]
fn copy_present_pte(hw: &mut Hw, tlb: &mut MmuGather, sslot: Slot, va: u64, pte: Entry, cow: bool, shared: bool, child_wp: bool) -> Entry {
    let mut child = pte;
    if !pte.has(_PAGE_SPECIAL) {
        let pa = pgtable::pte_pfn(pte);
        if !hw.pages.is_zero_page(pa) {
            hw.pages.get(pa);
            hw.pages.map(pa);
            // folio_try_dup_anon_rmap_pte: the page is now shared by two processes.
            hw.pages.meta_mut(pa).anon_exclusive = false;
        }
    }
    if cow && pte.is_present() && pte.is_writable() {
        // ptep_set_wrprotect in the parent: a stale writable TLB entry would let the
        // parent write the page the child now shares.
        let f = pgtable::set_entry(&mut hw.mem, sslot, va, pte.without(_PAGE_RW));
        tlb.flush_pte(f);
        child = child.without(_PAGE_RW);
    }
    if shared {
        child = child.without(_PAGE_DIRTY);
    }
    if child_wp {
        child.without(_PAGE_ACCESSED)
    } else {
        child.without(_PAGE_ACCESSED | _PAGE_UFFD_WP)
    }
}
