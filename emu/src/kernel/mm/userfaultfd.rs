//! userfaultfd, the memory side (Linux: mm/userfaultfd.c): filling missing pages
//! (mfill_atomic for UFFDIO_COPY, UFFDIO_ZEROPAGE, UFFDIO_CONTINUE), write-protecting
//! ranges (mwriteprotect_range → uffd_wp_range → change_protection with MM_CP_UFFD_WP or
//! MM_CP_UFFD_WP_RESOLVE), moving pages (UFFDIO_MOVE) and dropping uffd-wp after an
//! mremap without EVENT_REMAP (clear_uffd_wp_range). The file side is `kernel::uffd`.
//!
//! Invariant kept here (Linux 6.2, "always wr-protect pte in pte_mkuffd_wp"): a present
//! PTE with `_PAGE_UFFD_WP` never has R/W.

use super::mmu_gather::MmuGather;
use super::mprotect::{change_protection, MM_CP_TRY_CHANGE_WRITABLE, MM_CP_UFFD_WP, MM_CP_UFFD_WP_RESOLVE};
use super::pagewalk::{walk_page_range, MmWalkOps};
use super::pgtable::{self, linux::*, Slot};
use super::swapops::{self, softleaf_from_pte, PteMarker, SoftLeaf};
use super::vma::{Backing, Vma, VmFlags, VmUserfaultfdCtx};
use super::Mm;
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use mmu::{Entry, PhysMem};
use std::convert::Infallible;
use std::ops::ControlFlow;

/// What an mfill ioctl installs.
#[derive(Clone, Copy, Debug)]
pub enum Mfill {
    /// UFFDIO_COPY from `src` (in the caller's address space, read through the
    /// `CopyFromUser` given to `mfill_atomic`), uffd-wp'd with `wp`.
    Copy { src: u64, wp: bool },
    /// UFFDIO_ZEROPAGE: the shared zero page, never wp'd.
    Zeropage,
    /// UFFDIO_CONTINUE: map the page-cache page (shmem, hugetlb only).
    Continue { wp: bool },
    /// UFFDIO_POISON: a PTE_MARKER_POISONED marker (later accesses: SIGBUS).
    Poison,
}

/// Linux: vma_is_shmem.
fn vma_is_shmem(v: &Vma) -> bool {
    v.is_shmem()
}

/// UFFDIO_COPY's source: `(hw, dst_mm, va, page)` copies the page at user address `va`
/// of the calling task into `page` (Linux: the copy_from_user of mfill_atomic_pte_copy).
/// `dst_mm` is the address space being filled, which is also the caller's when it fills
/// its own context. The ioctl layer provides it: mm does not copy from user memory.
pub type CopyFromUser<'a> = dyn FnMut(&mut Hw, &mut Mm, u64, &mut [u8; 4096]) -> KResult<()> + 'a;

/// Linux: mfill_atomic, on the context's address space `mm`; `mmap_changing` is the
/// context's (an unread non-cooperative event: EAGAIN). Returns the bytes filled, or the
/// error when none was: the caller turns a short count into EAGAIN. The destination must
/// lie in one VMA registered with *some* userfaultfd (there is no ownership check, as in
/// Linux: a foreign uffd may fill).
pub fn mfill_atomic(mm: &mut Mm, hw: &mut Hw, dst: u64, len: u64, mode: Mfill, mmap_changing: bool, copy_from_user: &mut CopyFromUser) -> KResult<u64> {
    let vma = {
        // uffd_mfill_lock / validate_dst_vma: ENOENT for no VMA, a range past its end,
        // or a VMA without a userfaultfd. The lookup (find_vma_and_prepare_anon) gives a
        // private VMA its anon_vma first, whatever the ioctl then does: fork copies its
        // page tables from then on (measured: a poison marker in a private hugetlb
        // mapping reaches the child).
        if mm.find_vma(dst).is_some_and(|v| !v.shared()) {
            mm.anon_vma_prepare_at(dst);
        }
        let v = mm.find_vma(dst).ok_or(Errno::ENOENT)?;
        if dst + len > v.end || v.userfaultfd_ctx.is_none() {
            return Err(Errno::ENOENT);
        }
        v.clone()
    };
    if mmap_changing {
        return Err(Errno::EAGAIN);
    }
    let wp = matches!(mode, Mfill::Copy { wp: true, .. } | Mfill::Continue { wp: true });
    if wp && !vma.flags.has(VmFlags::UFFD_WP) {
        return Err(Errno::EINVAL);
    }
    if vma.is_hugetlb() {
        return mfill_atomic_hugetlb(mm, hw, &vma, dst, len, mode, copy_from_user);
    }
    if !vma.is_anonymous() && !vma_is_shmem(&vma) {
        return Err(Errno::EINVAL);
    }
    if matches!(mode, Mfill::Continue { .. }) && !vma_is_shmem(&vma) {
        return Err(Errno::EINVAL);
    }
    let mut copied = 0u64;
    let mut err = None;
    // The source page (a stack buffer: a heap one was a calloc and a free per call).
    let mut page = [0u8; 4096];
    while copied < len {
        let va = dst + copied;
        if let Mfill::Copy { src, .. } = mode {
            // mfill_atomic_pte_copy reads the source first (EFAULT), then checks the PTE.
            if copy_from_user(hw, mm, src + copied, &mut page).is_err() {
                err = Some(Errno::EFAULT);
                break;
            }
        }
        match mfill_atomic_pte(mm, hw, &vma, va, mode, &page) {
            Ok(()) => copied += 4096,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    tracing::debug!(target: "pagelab::uffd", dst = format_args!("{dst:#x}"), len, mode = ?mode, copied, err = ?err, "mfill");
    match (copied, err) {
        (0, Some(e)) => Err(e),
        _ => Ok(copied),
    }
}

/// Linux: mfill_atomic_hugetlb: ZEROPAGE is EINVAL, so are a destination or
/// length not huge-page aligned; then huge page by huge page (hugetlb_mfill_atomic_pte),
/// the source of a COPY read 4 KiB at a time into the new page. Returns the bytes filled,
/// or the error when none was.
fn mfill_atomic_hugetlb(mm: &mut Mm, hw: &mut Hw, vma: &Vma, dst: u64, len: u64, mode: Mfill, copy_from_user: &mut CopyFromUser) -> KResult<u64> {
    let ps = vma.page_size();
    let (is_continue, wp, src) = match mode {
        Mfill::Copy { src, wp } => (false, wp, src),
        Mfill::Continue { wp } => (true, wp, 0),
        Mfill::Poison => (false, false, 0),
        Mfill::Zeropage => return Err(Errno::EINVAL),
    };
    if !dst.is_multiple_of(ps) || !len.is_multiple_of(ps) {
        return Err(Errno::EINVAL);
    }
    let mut copied = 0u64;
    let mut err = None;
    while copied < len {
        let from = src + copied;
        let mut fill = |hw: &mut Hw, mm: &mut Mm, page: mmu::PhysAddr| -> KResult<()> {
            let mut buf = [0u8; 4096];
            for off in (0..ps).step_by(4096) {
                copy_from_user(hw, mm, from + off, &mut buf).map_err(|_| Errno::EFAULT)?;
                hw.mem.write(mmu::PhysAddr::new(page.as_u64() + off), &buf);
            }
            Ok(())
        };
        let r = if matches!(mode, Mfill::Poison) {
            super::hugetlb::hugetlb_mfill_atomic_poison(mm, hw, vma, dst + copied)
        } else {
            super::hugetlb::hugetlb_mfill_atomic_pte(mm, hw, vma, dst + copied, is_continue, wp, &mut fill)
        };
        match r {
            Ok(()) => copied += ps,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    tracing::debug!(target: "pagelab::uffd", dst = format_args!("{dst:#x}"), len, mode = ?mode, copied, err = ?err, "mfill hugetlb");
    match (copied, err) {
        (0, Some(e)) => Err(e),
        _ => Ok(copied),
    }
}

/// Linux: mfill_atomic_pte for a private anonymous VMA: mfill_atomic_pte_copy +
/// mfill_atomic_install_pte, or mfill_atomic_pte_zeropage.
fn mfill_atomic_pte(mm: &mut Mm, hw: &mut Hw, vma: &Vma, va: u64, mode: Mfill, data: &[u8; 4096]) -> KResult<()> {
    let Some(slot) = pgtable::walk_alloc(&mut hw.mem, &mut hw.pages, &mut mm.table_frames, mm.pml4, va) else {
        return Err(Errno::ENOMEM);
    };
    if slot.level != mmu::Level::Pt {
        // A huge PMD: "just be strict".
        return Err(Errno::EEXIST);
    }
    let old = pgtable::get_entry(&hw.mem, slot);
    let prot = vma.page_prot();
    if let (Backing::Shmem { obj, .. }, true) = (&vma.backing, matches!(mode, Mfill::Continue { .. }) || (vma.shared() && matches!(mode, Mfill::Copy { .. } | Mfill::Zeropage))) {
        return shmem_mfill_atomic_pte(hw, vma, obj, slot, va, old, prot, mode, data);
    }
    let entry = match mode {
        Mfill::Copy { wp, .. } => {
            // pte_none_mostly: none, or a PTE marker (uffd-wp, poison), which COPY may
            // overwrite.
            match softleaf_from_pte(old) {
                SoftLeaf::None | SoftLeaf::Marker(_) => {}
                SoftLeaf::Present | SoftLeaf::ProtNone | SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } => return Err(Errno::EEXIST),
            }
            let frame = hw.pages.alloc_copy(&mut hw.mem, data).ok_or(Errno::ENOMEM)?;
            hw.pages.map(frame);
            let mut e = pgtable::mk_pte(frame, prot).with(_PAGE_DIRTY);
            if vma.writable() {
                e = e.with(_PAGE_RW);
            }
            if wp {
                e = e.with(_PAGE_UFFD_WP).without(_PAGE_RW);
            }
            e
        }
        Mfill::Zeropage => {
            if !pgtable::pte_none(old) {
                return Err(Errno::EEXIST);
            }
            pgtable::mk_pte(hw.pages.zero_page, prot & !_PAGE_RW).with(_PAGE_SPECIAL)
        }
        Mfill::Continue { .. } => return Err(Errno::EINVAL),
        Mfill::Poison => {
            // Refuses any non-none entry, a marker included.
            if !pgtable::pte_none(old) {
                return Err(Errno::EEXIST);
            }
            swapops::make_pte_marker(PteMarker::POISONED)
        }
    };
    tracing::trace!(target: "pagelab::uffd", addr = format_args!("{va:#x}"), pte = format_args!("{:#x}", entry.raw()), "fill pte");
    // The old entry was none (or a marker): no TLB can hold it.
    pgtable::set_entry(&mut hw.mem, slot, va, entry).not_needed();
    Ok(())
}

/// The page-cache side of a fill (Linux: shmem_mfill_atomic_pte for COPY and ZEROPAGE in
/// a shared shmem VMA, mfill_atomic_pte_continue for CONTINUE in any shmem VMA), then
/// mfill_atomic_install_pte. COPY/ZEROPAGE: EFAULT past the end of the file, EEXIST when
/// the page cache already has the page; the new page (the copy, or zeros) goes into the
/// cache. CONTINUE: EFAULT for a page-cache hole (or past the end). Either way EEXIST when
/// the PTE is not none (a marker may be overwritten). The PTE maps the cache page,
/// dirty, writable when the VMA is shared and writable, uffd-wp'd with a WP mode.
#[allow(clippy::too_many_arguments)]
fn shmem_mfill_atomic_pte(hw: &mut Hw, vma: &Vma, obj: &super::shmem::Shmem, slot: pgtable::Slot, va: u64, old: mmu::Entry, prot: u64, mode: Mfill, data: &[u8; 4096]) -> KResult<()> {
    let pgoff = vma.object_offset(va) >> 12;
    if pgoff >= obj.inode().size.div_ceil(4096) {
        return Err(Errno::EFAULT);
    }
    let none_mostly = matches!(softleaf_from_pte(old), SoftLeaf::None | SoftLeaf::Marker(_));
    let (page, wp) = match mode {
        Mfill::Continue { wp } => {
            let page = obj.find_page(pgoff).ok_or(Errno::EFAULT)?;
            if !none_mostly {
                return Err(Errno::EEXIST);
            }
            // A fallocated page is zero and now up to date.
            obj.inode_mut().mapping.set_uptodate(pgoff);
            (page, wp)
        }
        _ => {
            if obj.find_page(pgoff).is_some() {
                return Err(Errno::EEXIST);
            }
            if !none_mostly {
                return Err(Errno::EEXIST);
            }
            let page = obj.get_page(&mut hw.pages, &mut hw.mem, pgoff).ok_or(Errno::ENOMEM)?;
            if let Mfill::Copy { .. } = mode {
                hw.mem.write(page, data);
            }
            (page, matches!(mode, Mfill::Copy { wp: true, .. }))
        }
    };
    hw.pages.get(page);
    hw.pages.map(page);
    let mut e = pgtable::mk_pte(page, prot).with(_PAGE_DIRTY);
    if vma.shared() && vma.writable() {
        e = e.with(_PAGE_RW);
    } else {
        e = e.without(_PAGE_RW);
    }
    if wp {
        e = e.with(_PAGE_UFFD_WP).without(_PAGE_RW);
    }
    tracing::trace!(target: "pagelab::uffd", addr = format_args!("{va:#x}"), pte = format_args!("{:#x}", e.raw()), "fill pte");
    // The old entry was none or a marker: no TLB can hold it.
    pgtable::set_entry(&mut hw.mem, slot, va, e).not_needed();
    Ok(())
}

/// Linux: vma_wants_manual_pte_write_upgrade. Private writable VMAs get PTEs made
/// writable by change_protection where can_change_pte_writable allows. A shared VMA
/// would when it wants write notification, but Linux asks vma_wants_writenotify with the
/// VMA's current vm_page_prot, which for the one case pagelab has (a shared VMA registered
/// for uffd-wp, `Vma::page_prot`) is already write-protected and so fails its "did the
/// open routine change the protection" test: never. Measured on 6.18: a dirty shmem
/// page protected and un-protected is read-only, and the next write faults.
pub fn vma_wants_manual_pte_write_upgrade(v: &Vma) -> bool {
    !v.shared() && v.writable()
}

/// Linux: uffd_wp_range. Protect (MM_CP_UFFD_WP) or un-protect (MM_CP_UFFD_WP_RESOLVE,
/// trying to make PTEs writable again) [start, end) of one VMA, and flush the TLBs of
/// every vCPU running the mm before returning. Returns the pages changed, or ENOMEM when
/// protecting a VMA that uses markers could not allocate a page table.
pub fn uffd_wp_range(mm: &mut Mm, hw: &mut Hw, vma: &Vma, start: u64, end: u64, enable_wp: bool) -> KResult<u64> {
    let mut cp = if enable_wp { MM_CP_UFFD_WP } else { MM_CP_UFFD_WP_RESOLVE };
    if !enable_wp && vma_wants_manual_pte_write_upgrade(vma) {
        cp |= MM_CP_TRY_CHANGE_WRITABLE;
    }
    let mut tlb = MmuGather::new(mm);
    let pages = change_protection(&mut tlb, mm, hw, vma, start, end, cp);
    let before = hw.shootdowns;
    let flushed = tlb.needs_flush();
    // Flushed on failure too: the entries changed before it must not stay cached.
    tlb.finish_mmu(hw);
    match pages {
        Ok(changed) => tracing::debug!(target: "pagelab::uffd", start = format_args!("{start:#x}"), end = format_args!("{end:#x}"), wp = enable_wp, changed, flush = flushed, shootdowns = hw.shootdowns - before, "change_protection"),
        Err(e) => tracing::debug!(target: "pagelab::uffd", start = format_args!("{start:#x}"), end = format_args!("{end:#x}"), wp = enable_wp, err = ?e, flush = flushed, shootdowns = hw.shootdowns - before, "change_protection"),
    }
    pages
}

/// Linux: userfaultfd_wp_use_markers (include/linux/userfaultfd_k.h). Whether protecting
/// `vma` puts uffd-wp markers in its none PTEs: only with VM_UFFD_WP, always for a file or
/// shmem VMA (its data outlives the PTE, in the page cache), and for an anonymous VMA only
/// when its context asked for UFFD_FEATURE_WP_UNPOPULATED (or WP_ASYNC, which implies it).
pub fn userfaultfd_wp_use_markers(vma: &Vma) -> bool {
    if !vma.flags.has(VmFlags::UFFD_WP) {
        return false;
    }
    !vma.is_anonymous() || userfaultfd_wp_unpopulated(vma)
}

/// Linux: userfaultfd_wp_async. The VMA's context resolves uffd-wp faults itself.
pub fn userfaultfd_wp_async(vma: &Vma) -> bool {
    vma.userfaultfd_ctx.as_ref().is_some_and(|c| c.wp_async())
}

/// Linux: userfaultfd_wp_unpopulated.
pub fn userfaultfd_wp_unpopulated(vma: &Vma) -> bool {
    vma.userfaultfd_ctx.as_ref().is_some_and(|c| c.wp_unpopulated())
}

/// Drops every uffd-wp bit from [start, end) after an mremap without EVENT_REMAP (Linux:
/// move_ptes with need_clear_uffd_wp, the CVE-2025-21696 fix; done here as a pass over
/// the moved range): a present PTE loses `_PAGE_UFFD_WP` (and stays read-only: the next
/// write takes an ordinary write fault), a swap entry `_PAGE_SWP_UFFD_WP`, and a marker
/// with the uffd-wp bit goes. The flushes are applied before returning.
pub fn clear_uffd_wp_range(mm: &Mm, hw: &mut Hw, start: u64, end: u64) {
    let mut tlb = MmuGather::new(mm);
    let ControlFlow::Continue(()) = walk_page_range(mm.pml4, start, end, &mut ClearUffdWp { hw, tlb: &mut tlb });
    tlb.finish_mmu(hw);
}

struct ClearUffdWp<'a> {
    hw: &'a mut Hw,
    tlb: &'a mut MmuGather,
}

impl MmWalkOps for ClearUffdWp<'_> {
    type Break = Infallible;

    fn mem(&self) -> &PhysMem {
        &self.hw.mem
    }

    /// A huge PMD loses its uffd-wp bit whole (move_huge_pmd's clear).
    fn pmd_entry(&mut self, pmd: Entry, slot: Slot, addr: u64, _next: u64) -> ControlFlow<Infallible, super::pagewalk::Action> {
        if !super::huge_memory::pmd_trans_huge(pmd) {
            return ControlFlow::Continue(super::pagewalk::Action::Subtree);
        }
        if pmd.has(_PAGE_UFFD_WP) {
            let f = pgtable::set_entry(&mut self.hw.mem, slot, addr, pmd.without(_PAGE_UFFD_WP));
            if pmd.is_present() {
                self.tlb.flush_pte(f);
            } else {
                f.not_needed();
            }
        }
        ControlFlow::Continue(super::pagewalk::Action::Continue)
    }

    fn pte_entry(&mut self, e: Entry, slot: Slot, va: u64) -> ControlFlow<Infallible> {
        let mem = &mut self.hw.mem;
        match softleaf_from_pte(e) {
            SoftLeaf::Present if e.has(_PAGE_UFFD_WP) => {
                let f = pgtable::set_entry(mem, slot, va, e.without(_PAGE_UFFD_WP));
                self.tlb.flush_pte(f);
            }
            // pte_present is true for PROT_NONE too; never cached.
            SoftLeaf::ProtNone if e.has(_PAGE_UFFD_WP) => {
                pgtable::set_entry(mem, slot, va, e.without(_PAGE_UFFD_WP)).not_needed();
            }
            SoftLeaf::Marker(m) if m.contains(PteMarker::UFFD_WP) => {
                pgtable::set_entry(mem, slot, va, Entry::new(0)).not_needed();
            }
            SoftLeaf::Swap { uffd_wp: true, .. } => {
                // Not present: no TLB holds it.
                pgtable::set_entry(mem, slot, va, swapops::pte_swp_clear_uffd_wp(e)).not_needed();
            }
            // Migration entries do not occur.
            SoftLeaf::Present | SoftLeaf::Marker(_) | SoftLeaf::Swap { .. } | SoftLeaf::None | SoftLeaf::ProtNone | SoftLeaf::Migration { .. } => {}
        }
        ControlFlow::Continue(())
    }
}

/// Linux: mwriteprotect_range. VMAs in address order, holes skipped; a VMA without
/// VM_UFFD_WP (or no VMA at all) is ENOENT and stops the walk, leaving the VMAs before
/// it changed: the operation is not atomic. No ownership check.
pub fn mwriteprotect_range(mm: &mut Mm, hw: &mut Hw, start: u64, len: u64, enable_wp: bool) -> KResult<()> {
    let end = start + len;
    let mut r = Err(Errno::ENOENT);
    for k in mm.vmas_in(start, end) {
        let v = mm.vmas[&k].clone();
        if !v.flags.has(VmFlags::UFFD_WP) {
            return Err(Errno::ENOENT);
        }
        // hugetlb: the whole range in huge pages (start and len, as given).
        if v.is_hugetlb() && (!start.is_multiple_of(v.page_size()) || !len.is_multiple_of(v.page_size())) {
            return Err(Errno::EINVAL);
        }
        uffd_wp_range(mm, hw, &v, v.start.max(start), v.end.min(end), enable_wp)?;
        r = Ok(());
    }
    r
}

/// Linux: move_pages (UFFDIO_MOVE, anonymous memory only). Moves the pages of
/// [src, src+len) to [dst, dst+len) in the context's mm: both ranges within one
/// writable private anonymous VMA each, with the same access flags, and the destination
/// registered with *this* context, `ctx` (EINVAL otherwise — unlike the fills, MOVE
/// checks ownership). Per page: a populated destination is EEXIST, a source hole ENOENT
/// (or moved, with UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: `allow_src_holes`), a source page
/// that is not exclusive (COW-shared) EBUSY. The moved PTE is writable and never
/// uffd-wp'd. Returns the bytes moved, or the error when none was.
pub fn move_pages(mm: &mut Mm, hw: &mut Hw, ctx: &VmUserfaultfdCtx, dst: u64, src: u64, len: u64, allow_src_holes: bool) -> KResult<u64> {
    let (Some(dv), Some(sv)) = (mm.find_vma(dst).cloned(), mm.find_vma(src).cloned()) else {
        return Err(Errno::ENOENT);
    };
    if dst + len > dv.end || src + len > sv.end {
        return Err(Errno::EINVAL);
    }
    let acc = VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC;
    if dv.flags & acc != sv.flags & acc || dv.flags.has(VmFlags::LOCKED) != sv.flags.has(VmFlags::LOCKED) || !sv.writable() {
        return Err(Errno::EINVAL);
    }
    if dv.userfaultfd_ctx.as_ref() != Some(ctx) {
        return Err(Errno::EINVAL);
    }
    if !dv.is_anonymous() || !sv.is_anonymous() || dv.shared() || sv.shared() {
        return Err(Errno::EINVAL);
    }
    let cr3 = mm.pml4.as_u64();
    let mut moved = 0u64;
    let mut err = None;
    while moved < len {
        let (s, d) = (src + moved, dst + moved);
        // A huge PMD at the source (move_pages_huge_pmd): moved whole when the step is an
        // aligned 2 MiB on both sides and the destination has no page table there; split
        // otherwise, its pages then moving one by one.
        if let Some(ps) = pgtable::walk_lookup(&hw.mem, mm.pml4, s).filter(|sl| sl.level == mmu::Level::Pd) {
            use super::huge_memory::{is_huge_zero_pmd, mk_huge_pmd, pmd_pfn, split_huge_pmd, HPAGE_PMD_SIZE};
            let pmd = pgtable::get_entry(&hw.mem, ps);
            // A folio that is not exclusive cannot move, whole or in part: EBUSY before
            // any split (measured on 6.18, also once the other mapper exited).
            if !is_huge_zero_pmd(hw, pmd) && !hw.pages.meta(pmd_pfn(pmd)).anon_exclusive {
                err = Some(Errno::EBUSY);
                break;
            }
            let whole = s & (HPAGE_PMD_SIZE - 1) == 0 && d & (HPAGE_PMD_SIZE - 1) == 0 && len - moved >= HPAGE_PMD_SIZE;
            let dpd = if whole { pgtable::pmd_alloc(&mut hw.mem, &mut hw.pages, &mut mm.table_frames, mm.pml4, d) } else { None };
            if let Some(dpd) = dpd.filter(|sl| sl.level == mmu::Level::Pd && pgtable::pte_none(pgtable::get_entry(&hw.mem, *sl))) {
                let zero = is_huge_zero_pmd(hw, pmd);
                let head = pmd_pfn(pmd);
                let new = if zero {
                    pmd.without(_PAGE_UFFD_WP)
                } else {
                    let mut e = mk_huge_pmd(head, dv.page_prot()).with(_PAGE_DIRTY | _PAGE_ACCESSED);
                    if dv.writable() {
                        e = e.with(_PAGE_RW);
                    }
                    e
                };
                let f = pgtable::set_entry(&mut hw.mem, ps, s, mmu::Entry::new(0));
                hw.flush(f, cr3);
                // The destination was none: nothing cached.
                pgtable::set_entry(&mut hw.mem, dpd, d, new).not_needed();
                moved += HPAGE_PMD_SIZE;
                continue;
            }
            if !split_huge_pmd(hw, &mut mm.table_frames, cr3, ps, s & !(HPAGE_PMD_SIZE - 1)) {
                err = Some(Errno::ENOMEM);
                break;
            }
        }
        let dslot = match pgtable::walk_alloc(&mut hw.mem, &mut hw.pages, &mut mm.table_frames, mm.pml4, d) {
            Some(sl) if sl.level == mmu::Level::Pt => sl,
            Some(_) => {
                err = Some(Errno::EEXIST);
                break;
            }
            None => {
                err = Some(Errno::ENOMEM);
                break;
            }
        };
        if !pgtable::pte_none(pgtable::get_entry(&hw.mem, dslot)) {
            err = Some(Errno::EEXIST);
            break;
        }
        let sslot = pgtable::walk_lookup(&hw.mem, mm.pml4, s).filter(|sl| sl.level == mmu::Level::Pt);
        // move_pages_pte: an exclusive page of a THP splits the folio first (split_folio,
        // which maps the zero-filled pages to the zero page), then the PTE is read again.
        if let Some(sl) = sslot {
            let e = pgtable::get_entry(&hw.mem, sl);
            let pa = pgtable::pte_pfn(e);
            let present = softleaf_from_pte(e) == SoftLeaf::Present && !e.has(_PAGE_SPECIAL) && !hw.pages.is_zero_page(pa);
            let head = if present { hw.pages.folio(pa) } else { pa };
            if present && hw.pages.is_huge(head) && hw.pages.meta(pa).anon_exclusive && hw.pages.meta(pa).mapcount == 1 {
                let mut tlb = super::mmu_gather::MmuGather::new(mm);
                let index = super::huge_memory::anon_folio_index(&sv, s, head, pa);
                let split = super::huge_memory::split_anon_folio(mm, hw, &mut tlb, head, index);
                tlb.finish_mmu(hw);
                if !split {
                    err = Some(Errno::EAGAIN);
                    break;
                }
            }
        }
        let spte = sslot.map(|sl| pgtable::get_entry(&hw.mem, sl)).unwrap_or(mmu::Entry::new(0));
        let prot = pgtable::vm_page_prot(dv.readable(), dv.writable(), dv.executable(), false);
        let new = match softleaf_from_pte(spte) {
            SoftLeaf::None => {
                if allow_src_holes {
                    moved += 4096;
                    continue;
                }
                err = Some(Errno::ENOENT);
                break;
            }
            SoftLeaf::Present => {
                let pa = pgtable::pte_pfn(spte);
                let zero = spte.has(_PAGE_SPECIAL) || hw.pages.is_zero_page(pa);
                if zero {
                    pgtable::mk_pte(hw.pages.zero_page, prot & !_PAGE_RW).with(_PAGE_SPECIAL)
                } else {
                    if !hw.pages.meta(pa).anon_exclusive || hw.pages.meta(pa).mapcount > 1 {
                        err = Some(Errno::EBUSY);
                        break;
                    }
                    let mut e = pgtable::mk_pte(pa, prot).with(_PAGE_RW);
                    if spte.is_dirty() {
                        e = e.with(_PAGE_DIRTY);
                    }
                    e
                }
            }
            SoftLeaf::Swap { exclusive, .. } => {
                if !exclusive {
                    err = Some(Errno::EBUSY);
                    break;
                }
                swapops::pte_swp_clear_uffd_wp(spte)
            }
            // move_pages_pte: a non-swap entry that is not a migration entry (a marker:
            // uffd-wp, poison, guard) is EFAULT (measured).
            SoftLeaf::Marker(_) => {
                err = Some(Errno::EFAULT);
                break;
            }
            SoftLeaf::ProtNone | SoftLeaf::Migration { .. } => {
                err = Some(Errno::EBUSY);
                break;
            }
        };
        let sslot = sslot.expect("a non-none source entry has a slot");
        let f = pgtable::set_entry(&mut hw.mem, sslot, s, mmu::Entry::new(0));
        if spte.is_present() {
            hw.flush(f, cr3);
        } else {
            f.not_needed();
        }
        // The destination was none: nothing cached.
        pgtable::set_entry(&mut hw.mem, dslot, d, new).not_needed();
        moved += 4096;
    }
    tracing::debug!(target: "pagelab::uffd", dst = format_args!("{dst:#x}"), src = format_args!("{src:#x}"), len, moved, err = ?err, "move");
    match (moved, err) {
        (0, Some(e)) => Err(e),
        _ => Ok(moved),
    }
}
