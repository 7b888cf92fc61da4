//! Creating and destroying mappings (Linux: mm/mmap.c do_mmap / do_vmi_munmap / brk,
//! mm/mremap.c, mm/madvise.c, and zap_page_range in mm/memory.c).
//!
//! Zap and move_ptes are `pagewalk` walks; their flushes and freed pages go through an
//! `MmuGather`, which flushes every vCPU running the mm before a page is freed.

use super::mmu_gather::MmuGather;
use super::pagewalk::{walk_page_vma, walk_page_range, Action, Hole, MmWalkOps};
use super::pgtable::{self, linux::*, Slot};
use super::swapops::{make_pte_marker, pte_swp_uffd_wp_any, softleaf_from_pte, PteMarker, SoftLeaf};
use super::vma::{Backing, Vma, VmFlags};
use super::{Mm, MMAP_BASE, MMAP_MIN_ADDR, TASK_SIZE};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use mmu::{Entry, PhysMem};
use std::convert::Infallible;
use std::ops::ControlFlow;

pub const PROT_READ: u32 = 1;
pub const PROT_WRITE: u32 = 2;
pub const PROT_EXEC: u32 = 4;
pub const PROT_GROWSDOWN: u32 = 0x0100_0000;
pub const PROT_GROWSUP: u32 = 0x0200_0000;

pub const MAP_SHARED: u32 = 0x01;
pub const MAP_PRIVATE: u32 = 0x02;
pub const MAP_SHARED_VALIDATE: u32 = 0x03;
pub const MAP_TYPE: u32 = 0x0f;
/// MAP_DROPPABLE (6.11): private anonymous memory the kernel may free under pressure.
pub const MAP_DROPPABLE: u32 = 0x08;

/// The mapping type shares its pages (MAP_SHARED, MAP_SHARED_VALIDATE).
pub const fn map_shared(flags: u32) -> bool {
    matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE)
}
pub const MAP_FIXED: u32 = 0x10;
pub const MAP_ANONYMOUS: u32 = 0x20;
pub const MAP_GROWSDOWN: u32 = 0x0100;
pub const MAP_DENYWRITE: u32 = 0x0800;
pub const MAP_EXECUTABLE: u32 = 0x1000;
pub const MAP_LOCKED: u32 = 0x2000;
pub const MAP_NORESERVE: u32 = 0x4000;
pub const MAP_POPULATE: u32 = 0x8000;
pub const MAP_NONBLOCK: u32 = 0x1_0000;
pub const MAP_STACK: u32 = 0x2_0000;
pub const MAP_HUGETLB: u32 = 0x4_0000;
pub const MAP_SYNC: u32 = 0x8_0000;
pub const MAP_FIXED_NOREPLACE: u32 = 0x10_0000;

pub const MREMAP_MAYMOVE: u32 = 1;
pub const MREMAP_FIXED: u32 = 2;
pub const MREMAP_DONTUNMAP: u32 = 4;

pub const MADV_NORMAL: u32 = 0;
pub const MADV_RANDOM: u32 = 1;
pub const MADV_SEQUENTIAL: u32 = 2;
pub const MADV_WILLNEED: u32 = 3;
pub const MADV_DONTNEED: u32 = 4;
pub const MADV_FREE: u32 = 8;
pub const MADV_REMOVE: u32 = 9;
pub const MADV_DONTFORK: u32 = 10;
pub const MADV_DOFORK: u32 = 11;
pub const MADV_MERGEABLE: u32 = 12;
pub const MADV_UNMERGEABLE: u32 = 13;
pub const MADV_HUGEPAGE: u32 = 14;
pub const MADV_NOHUGEPAGE: u32 = 15;
pub const MADV_DONTDUMP: u32 = 16;
pub const MADV_DODUMP: u32 = 17;
pub const MADV_WIPEONFORK: u32 = 18;
pub const MADV_KEEPONFORK: u32 = 19;
pub const MADV_POPULATE_READ: u32 = 22;
pub const MADV_POPULATE_WRITE: u32 = 23;
pub const MADV_COLD: u32 = 20;
pub const MADV_PAGEOUT: u32 = 21;
pub const MADV_COLLAPSE: u32 = 25;
pub const MADV_GUARD_INSTALL: u32 = 102;
pub const MADV_GUARD_REMOVE: u32 = 103;

pub const fn page_align(len: u64) -> Option<u64> {
    match len.checked_add(0xfff) {
        Some(v) => Some(v & !0xfff),
        None => None,
    }
}

/// Finds a free range of `len` bytes, top-down below MMAP_BASE (Linux:
/// vm_unmapped_area with the top-down allocator, no randomisation).
pub fn get_unmapped_area(mm: &Mm, len: u64) -> Option<u64> {
    let mut top = MMAP_BASE;
    for (_, v) in mm.vmas.range(..MMAP_BASE).rev() {
        if v.end <= top && top - v.end >= len {
            return Some(top - len);
        }
        top = top.min(v.start);
    }
    (top >= len && top - len >= MMAP_MIN_ADDR).then(|| top - len)
}

/// How a zap treats what it finds (Linux: struct zap_details).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZapDetails {
    /// Linux: zap_details.even_cows. Zap the anonymous pages too (and swap entries and
    /// poison markers, which only anonymous memory has): everything but a truncate's
    /// sibling, the hole punch, which leaves a private mapping's COW copies in place.
    pub even_cows: bool,
    /// Linux: ZAP_FLAG_DROP_MARKER. The VMA is going (munmap, exit): its uffd-wp and guard
    /// markers go too. Without it a file or shmem VMA registered WP keeps uffd-wp markers,
    /// and gets one for each uffd-wp'd entry it zaps (zap_install_uffd_wp_if_needed).
    pub drop_markers: bool,
}

impl ZapDetails {
    /// munmap and exit (Linux: unmap_vmas).
    pub const UNMAP: ZapDetails = ZapDetails { even_cows: true, drop_markers: true };
    /// MADV_DONTNEED, MADV_FREE and truncation (Linux: madvise_dontneed_single_vma, and
    /// unmap_mapping_range with even_cows).
    pub const KEEP_MARKERS: ZapDetails = ZapDetails { even_cows: true, drop_markers: false };
    /// A hole punch (fallocate PUNCH_HOLE, MADV_REMOVE: unmap_mapping_range without
    /// even_cows).
    pub const PUNCH: ZapDetails = ZapDetails { even_cows: false, drop_markers: false };
}

/// Removes the PTEs in [start, end) of `vma`, or of a range whose VMAs are already gone
/// when `vma` is None (which implies `ZapDetails::UNMAP`) (Linux: zap_page_range_single /
/// unmap_page_range → zap_pte_range). The flushes and the pages to free go to `tlb`; swap
/// slots are freed at once (no TLB can reach them).
///
/// A huge PMD the range covers whole goes at once (zap_huge_pmd); one it covers in part is
/// split first (__split_huge_pmd in zap_pmd_range), then zapped PTE by PTE.
pub fn zap_range(tlb: &mut MmuGather, mm: &mut Mm, hw: &mut Hw, vma: Option<&Vma>, start: u64, end: u64, details: ZapDetails) {
    debug_assert!(vma.is_some() || details == ZapDetails::UNMAP);
    let anon = vma.is_none_or(|v| v.is_anonymous());
    let pml4 = mm.pml4;
    let mut w = ZapWalk {
        hw,
        tlb,
        tables: &mut mm.table_frames,
        cr3: pml4.as_u64(),
        details,
        anon,
        // pte_install_uffd_wp_if_needed's test, once per VMA.
        install_markers: !details.drop_markers && !anon && vma.is_some_and(|v| v.flags.has(VmFlags::UFFD_WP)),
        hsize: vma.and_then(super::hugetlb::vma_hsize),
        vma,
    };
    let ControlFlow::Continue(()) = match vma {
        Some(v) => walk_page_vma(pml4, v, start, end, &mut w),
        None => walk_page_range(pml4, start, end, &mut w),
    };
}

struct ZapWalk<'a> {
    hw: &'a mut Hw,
    tlb: &'a mut MmuGather,
    /// The mm's page-table frames, for the table a split installs.
    tables: &'a mut Vec<mmu::PhysAddr>,
    cr3: u64,
    details: ZapDetails,
    /// The VMA is anonymous (or gone): it never keeps a marker.
    anon: bool,
    /// A file or shmem VMA registered WP, zapped without DROP_MARKER: a uffd-wp'd entry
    /// leaves a uffd-wp marker behind.
    install_markers: bool,
    /// The page size of a hugetlb VMA.
    hsize: Option<super::hugetlb::HugeSize>,
    /// The VMA zapped, if it still exists.
    vma: Option<&'a Vma>,
}

impl MmWalkOps for ZapWalk<'_> {
    type Break = Infallible;

    fn mem(&self) -> &PhysMem {
        &self.hw.mem
    }

    /// Linux: __unmap_hugepage_range, for one huge PTE the range covers (hugetlb ranges
    /// are huge-page aligned: the callers check or round).
    fn hugetlb_entry(&mut self, e: Entry, slot: Slot, addr: u64, next: u64) -> ControlFlow<Infallible> {
        let size = self.hsize.expect("a hugetlb VMA");
        debug_assert!(addr & !size.mask() == 0 && (next - addr == size.bytes()), "partial hugetlb zap [{addr:#x}, {next:#x})");
        let vma = self.vma.expect("a hugetlb VMA");
        super::hugetlb::zap_huge_pte(self.hw, self.tlb, vma, slot, addr & size.mask(), e, size, self.details.drop_markers);
        ControlFlow::Continue(())
    }

    /// Linux: zap_pmd_range's huge-PMD half.
    fn pmd_entry(&mut self, pmd: Entry, slot: Slot, addr: u64, next: u64) -> ControlFlow<Infallible, Action> {
        use super::huge_memory::{pmd_trans_huge, split_huge_pmd, zap_huge_pmd, HPAGE_PMD_SIZE};
        if !pmd_trans_huge(pmd) {
            return ControlFlow::Continue(Action::Subtree);
        }
        if next - addr == HPAGE_PMD_SIZE {
            // Without even_cows (a hole punch) an anonymous THP stays; a file folio goes.
            if self.details.even_cows || super::huge_memory::is_file_pmd(self.hw, pmd) {
                zap_huge_pmd(self.hw, self.tlb, slot, addr, pmd);
            }
            return ControlFlow::Continue(Action::Continue);
        }
        if split_huge_pmd(self.hw, self.tables, self.cr3, slot, addr & !(HPAGE_PMD_SIZE - 1)) {
            ControlFlow::Continue(Action::Again)
        } else {
            // Guest memory exhausted, so no table to split into (Linux deposits one at
            // fault time and never fails here): an unmap takes the whole PMD, since nothing
            // may stay mapped outside the VMAs; DONTNEED leaves it.
            if self.details == ZapDetails::UNMAP {
                zap_huge_pmd(self.hw, self.tlb, slot, addr, pmd);
            }
            ControlFlow::Continue(Action::Continue)
        }
    }

    /// Linux: zap_pte_range, for one PTE (zap_present_ptes, zap_nonpresent_ptes, then
    /// zap_install_uffd_wp_if_needed).
    fn pte_entry(&mut self, e: Entry, slot: Slot, va: u64) -> ControlFlow<Infallible> {
        let hw = &mut *self.hw;
        let even_cows = self.details.even_cows;
        match softleaf_from_pte(e) {
            SoftLeaf::None => return ControlFlow::Continue(()),
            SoftLeaf::Present | SoftLeaf::ProtNone => {
                let pa = pgtable::pte_pfn(e);
                let has_page = !e.has(_PAGE_SPECIAL) && !hw.pages.is_zero_page(pa);
                // should_zap_folio: without even_cows only page-cache pages go; the zero
                // page (no folio) always does.
                if !even_cows && has_page && !hw.pages.meta(pa).file {
                    return ControlFlow::Continue(());
                }
                let f = pgtable::set_entry(&mut hw.mem, slot, va, Entry::new(0));
                if e.is_present() {
                    self.tlb.flush_pte(f);
                } else {
                    // PROT_NONE: never cached.
                    f.not_needed();
                }
                if !e.has(_PAGE_SPECIAL) {
                    // zap_present_folio_ptes: a dirty PTE's page-cache page is dirty.
                    if e.is_dirty() && hw.pages.meta(pa).file {
                        hw.pages.mark_dirty(pa);
                    }
                    // The mapping goes now, the reference once no TLB reaches the page.
                    hw.pages.remove_rmap(pa);
                    self.tlb.remove_page(pa);
                }
            }
            SoftLeaf::Swap { entry, .. } => {
                if !even_cows {
                    return ControlFlow::Continue(());
                }
                pgtable::set_entry(&mut hw.mem, slot, va, Entry::new(0)).not_needed();
                // The slot reference the entry held (free_swap_and_cache).
                super::swap::swap_free(hw, entry);
            }
            SoftLeaf::Migration { .. } => {
                if !even_cows {
                    return ControlFlow::Continue(());
                }
                pgtable::set_entry(&mut hw.mem, slot, va, Entry::new(0)).not_needed();
            }
            SoftLeaf::Marker(m) => {
                let keep = if m.contains(PteMarker::UFFD_WP) {
                    // Anonymous memory always drops it; a file VMA only when asked to.
                    !self.anon && !self.details.drop_markers
                } else if m.contains(PteMarker::GUARD) {
                    !self.details.drop_markers
                } else {
                    // Poison.
                    !even_cows
                };
                if keep {
                    return ControlFlow::Continue(());
                }
                // A marker holds no reference: clearing it is all.
                pgtable::set_entry(&mut hw.mem, slot, va, Entry::new(0)).not_needed();
            }
        }
        // zap_install_uffd_wp_if_needed: the protection outlives the entry. The slot is
        // none now and was never cached as a marker.
        let uffd_wp_any = match softleaf_from_pte(e) {
            SoftLeaf::Present | SoftLeaf::ProtNone => e.has(_PAGE_UFFD_WP),
            _ => pte_swp_uffd_wp_any(e),
        };
        if self.install_markers && uffd_wp_any {
            pgtable::set_entry(&mut hw.mem, slot, va, make_pte_marker(PteMarker::UFFD_WP)).not_needed();
        }
        ControlFlow::Continue(())
    }
}

/// Zaps [start, end) of every VMA it overlaps with `details`, flushes, then frees (Linux:
/// zap_page_range_single's tlb_gather_mmu … tlb_finish_mmu, per VMA).
pub fn zap_vmas_and_flush(mm: &mut Mm, hw: &mut Hw, start: u64, end: u64, details: ZapDetails) {
    let mut tlb = MmuGather::new(mm);
    for k in mm.vmas_in(start, end) {
        let v = mm.vmas[&k].clone();
        zap_range(&mut tlb, mm, hw, Some(&v), start.max(v.start), end.min(v.end), details);
    }
    tlb.finish_mmu(hw);
    hw.pages.drain_deferred();
}

/// Zaps [start, end), whose VMAs are gone, flushes, then frees (Linux: unmap_region's
/// unmap_vmas with ZAP_FLAG_DROP_MARKER).
pub fn zap_and_flush(mm: &mut Mm, hw: &mut Hw, start: u64, end: u64) {
    let mut tlb = MmuGather::new(mm);
    zap_range(&mut tlb, mm, hw, None, start, end, ZapDetails::UNMAP);
    tlb.finish_mmu(hw);
    // A shared object whose last VMA went before this zap frees its pages now.
    hw.pages.drain_deferred();
}

/// Zaps, in every address space, the PTEs that map page offsets [first, last) of `obj`
/// (Linux: unmap_mapping_range, which walks the file's i_mmap tree; pagelab looks at each
/// address space's VMAs). Called before the page cache drops pages, so no PTE is left
/// pointing at a page the file no longer has. `details`: `ZapDetails::KEEP_MARKERS` for a
/// truncation (COW copies past the new end go too), `ZapDetails::PUNCH` for a hole punch.
pub fn unmap_mapping_range(mms: &mut [Option<Mm>], hw: &mut Hw, obj: &super::shmem::Shmem, first: u64, last: u64, details: ZapDetails) {
    for mm in mms.iter_mut().flatten() {
        let ranges: Vec<(u64, u64)> = mm
            .vmas
            .values()
            .filter_map(|v| match &v.backing {
                Backing::Shmem { obj: o, offset } if o == obj => {
                    let pg0 = offset >> 12;
                    let pages = (v.end - v.start) >> 12;
                    let (a, b) = (first.max(pg0), last.min(pg0 + pages));
                    (a < b).then(|| (v.start + ((a - pg0) << 12), v.start + ((b - pg0) << 12)))
                }
                _ => None,
            })
            .collect();
        for (a, b) in ranges {
            zap_vmas_and_flush(mm, hw, a, b, details);
        }
    }
}

/// Whether some address space maps `obj` shared and writable (Linux:
/// mapping_writably_mapped; F_SEAL_WRITE is refused then).
pub fn mapping_writably_mapped(mms: &[Option<Mm>], obj: &super::shmem::Shmem) -> bool {
    mms.iter().flatten().any(|mm| mm.vmas.values().any(|v| matches!(&v.backing, Backing::Shmem { obj: o, .. } if o == obj) && v.flags.has(VmFlags::SHARED) && v.flags.has(VmFlags::WRITE)))
}

/// Linux: do_vmi_munmap. Unmaps [start, start+len).
pub fn do_munmap(mm: &mut Mm, hw: &mut Hw, start: u64, len: u64) -> KResult<()> {
    if start & 0xfff != 0 || start > TASK_SIZE || len > TASK_SIZE - start {
        return Err(Errno::EINVAL);
    }
    let Some(len) = page_align(len).filter(|&l| l != 0) else {
        return Err(Errno::EINVAL);
    };
    let end = start + len;
    if !mm.may_split(start) || !mm.may_split(end) {
        return Err(Errno::EINVAL);
    }
    mm.split_at(start);
    mm.split_at(end);
    let removed: Vec<Vma> = mm.vmas_in(start, end).into_iter().filter_map(|k| mm.vmas.remove(&k)).collect();
    unmap_hugetlb_vmas(mm, hw, &removed);
    // The VMAs' hold on their files goes before the final drain: a file whose last
    // mapping this was frees its pages now.
    drop(removed);
    zap_and_flush(mm, hw, start, end);
    free_pgtables(mm, hw, start, end);
    Ok(())
}

/// Linux: free_pgtables for [start, end), just unmapped: each page table whose whole
/// 2 MiB no VMA covers any more is freed and its PMD cleared (so a later mapping there
/// can take a huge PMD: a THP fault needs a none PMD). Tables shared with a
/// neighbouring VMA stay.
pub fn free_pgtables(mm: &mut Mm, hw: &mut Hw, start: u64, end: u64) {
    const PMD: u64 = 2 << 20;
    let mut freed = Vec::new();
    let mut haddr = start & !(PMD - 1);
    while haddr < end {
        let next = haddr + PMD;
        if mm.vmas_in(haddr, next).is_empty() {
            if let Some(slot) = super::hugetlb::hugetlb_walk(&hw.mem, mm.pml4, haddr, super::hugetlb::HugeSize::M2) {
                let pmd = pgtable::get_entry(&hw.mem, slot);
                if pmd.is_present() && !pmd.is_leaf(mmu::Level::Pd) {
                    let pt = pmd.addr(mmu::Level::Pd, 52);
                    // Every entry is none after the zap (markers of the gone VMAs included).
                    let f = pgtable::set_entry(&mut hw.mem, slot, haddr, Entry::new(0));
                    hw.flush(f, mm.pml4.as_u64());
                    freed.push(pt);
                }
            }
        }
        haddr = next;
    }
    if freed.is_empty() {
        return;
    }
    mm.table_frames.retain(|t| !freed.contains(t));
    for t in freed {
        hw.pages.put(t);
    }
}

/// The hugetlb VMAs among `vmas`, just removed from `mm`, lose their huge entries and
/// markers (Linux: unmap_vmas → __unmap_hugepage_range with ZAP_FLAG_DROP_MARKER, which
/// needs the VMA to know the page size) and then their reservations
/// (hugetlb_vm_op_close).
fn unmap_hugetlb_vmas(mm: &mut Mm, hw: &mut Hw, vmas: &[Vma]) {
    if !vmas.iter().any(Vma::is_hugetlb) {
        return;
    }
    let mut tlb = MmuGather::new(mm);
    for v in vmas.iter().filter(|v| v.is_hugetlb()) {
        zap_range(&mut tlb, mm, hw, Some(v), v.start, v.end, ZapDetails::UNMAP);
    }
    tlb.finish_mmu(hw);
    for v in vmas.iter().filter(|v| v.is_hugetlb()) {
        super::hugetlb::hugetlb_vm_op_close(hw, v);
    }
}

/// Linux: do_mmap for anonymous (and, read-only, file) mappings. Returns the address.
#[allow(clippy::too_many_arguments)]
pub fn do_mmap(mm: &mut Mm, hw: &mut Hw, addr: u64, len: u64, prot: u32, flags: u32, backing: Backing, shared_id: Option<u64>) -> KResult<u64> {
    do_mmap_file(mm, hw, addr, len, prot, flags, backing, shared_id, VmFlags::empty())
}

/// do_mmap with the VM_MAY* flags the file does not allow in `deny` (Linux: a MAP_SHARED
/// mapping of a file not open for writing has no VM_MAYWRITE, so mprotect cannot make it
/// writable).
#[allow(clippy::too_many_arguments)]
pub fn do_mmap_file(mm: &mut Mm, hw: &mut Hw, addr: u64, len: u64, prot: u32, flags: u32, backing: Backing, shared_id: Option<u64>, deny: VmFlags) -> KResult<u64> {
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_align(len).filter(|&l| l <= TASK_SIZE).ok_or(Errno::ENOMEM)?;
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    if fixed && addr & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    let start = if fixed {
        if addr > TASK_SIZE - len || addr < MMAP_MIN_ADDR {
            return Err(if addr < MMAP_MIN_ADDR { Errno::EPERM } else { Errno::ENOMEM });
        }
        if flags & MAP_FIXED_NOREPLACE != 0 && !mm.vmas_in(addr, addr + len).is_empty() {
            return Err(Errno::EEXIST);
        }
        do_munmap(mm, hw, addr, len)?;
        addr
    } else {
        // A hint is used when it is free.
        let hint = addr & !0xfff;
        if hint >= MMAP_MIN_ADDR && hint <= TASK_SIZE - len && mm.vmas_in(hint, hint + len).is_empty() {
            hint
        } else {
            get_unmapped_area(mm, len).ok_or(Errno::ENOMEM)?
        }
    };
    let mut vf = VmFlags::from_prot(prot) | VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC;
    if map_shared(flags) {
        vf |= VmFlags::SHARED | VmFlags::MAYSHARE;
    }
    if flags & MAP_TYPE == MAP_DROPPABLE {
        // Dropped under memory pressure (never, here), so not copied at fork, not
        // dumped, not reserved.
        vf |= VmFlags::DROPPABLE | VmFlags::WIPEONFORK | VmFlags::DONTDUMP | VmFlags::NORESERVE;
    }
    if flags & MAP_GROWSDOWN != 0 {
        vf |= VmFlags::GROWSDOWN;
    }
    if flags & MAP_NORESERVE != 0 {
        vf |= VmFlags::NORESERVE;
    }
    if flags & MAP_LOCKED != 0 {
        // mlock at mmap time (the caller populates).
        vf |= VmFlags::LOCKED;
    }
    vf |= mm.def_flags;
    if vf.has(VmFlags::DROPPABLE) {
        // mmap_region: never locked (populated all the same, measured).
        vf -= VmFlags::LOCKED | VmFlags::LOCKONFAULT;
    }
    vf -= deny;
    if super::vma::accountable_mapping(vf) {
        vf |= VmFlags::ACCOUNT;
    }
    // MAP_SHARED|MAP_ANONYMOUS is backed by a fresh shmem object (shmem_zero_setup).
    let backing = match (backing, shared_id) {
        // shmem_zero_setup: an object the size of the mapping.
        (Backing::Anon, Some(id)) if vf.contains(VmFlags::SHARED) => Backing::Shmem { obj: super::shmem::Shmem::with_size(id, &hw.pages, len), offset: 0 },
        (b, _) => b,
    };
    let vma = Vma { start, end: start + len, flags: vf, backing, shared_id, userfaultfd_ctx: None, anon_vma: None, hugetlb_resv: None, hugetlb_unmapped: false, pgoff: start >> 12 };
    mm.vmas.insert(start, vma);
    mm.merge_around(start, start + len);
    Ok(start)
}

/// Finds a free range of `len` bytes aligned to `align`, top-down below MMAP_BASE (Linux:
/// vm_unmapped_area with an align_mask, as hugetlb_get_unmapped_area asks).
pub fn get_unmapped_area_aligned(mm: &Mm, len: u64, align: u64) -> Option<u64> {
    let fits = |lo: u64, top: u64| top.checked_sub(len).map(|a| a & !(align - 1)).filter(|&a| a >= lo && a >= MMAP_MIN_ADDR);
    let mut top = MMAP_BASE;
    for (_, v) in mm.vmas.range(..MMAP_BASE).rev() {
        if v.end <= top {
            if let Some(a) = fits(v.end, top) {
                return Some(a);
            }
        }
        top = top.min(v.start);
    }
    fits(0, top)
}

/// Linux: do_mmap of a hugetlbfs file `obj` (a MAP_HUGETLB object made for the call, or
/// an MFD_HUGETLB memfd) at byte offset `offset`, `len` already rounded up to the huge
/// page size by the caller (ksys_mmap_pgoff): hugetlb_get_unmapped_area (a MAP_FIXED
/// address not huge-aligned is EINVAL; any other address is chosen huge-aligned) and
/// hugetlbfs_file_mmap (an offset not huge-aligned is EINVAL; the reservation, ENOMEM
/// when the pool cannot cover it; a writable mapping grows the file to its end). The VMA
/// is VM_HUGETLB|VM_DONTEXPAND, so it never merges; MAP_NORESERVE skips the reservation.
#[allow(clippy::too_many_arguments)]
pub fn do_mmap_hugetlb(mm: &mut Mm, hw: &mut Hw, addr: u64, len: u64, prot: u32, flags: u32, obj: super::shmem::Shmem, offset: u64, deny: VmFlags) -> KResult<u64> {
    let size = obj.hugetlb_size().expect("a hugetlb file");
    if len == 0 || len > TASK_SIZE {
        return Err(Errno::ENOMEM);
    }
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    if len & !size.mask() != 0 || (fixed && addr & !size.mask() != 0) {
        return Err(Errno::EINVAL);
    }
    let mut vf = VmFlags::from_prot(prot) | VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC | VmFlags::HUGETLB | VmFlags::DONTEXPAND;
    if flags & MAP_TYPE != MAP_PRIVATE {
        vf |= VmFlags::SHARED | VmFlags::MAYSHARE;
    }
    if flags & MAP_NORESERVE != 0 {
        vf |= VmFlags::NORESERVE;
    }
    vf -= deny;
    let start = if fixed {
        if addr > TASK_SIZE - len || addr < MMAP_MIN_ADDR {
            return Err(if addr < MMAP_MIN_ADDR { Errno::EPERM } else { Errno::ENOMEM });
        }
        if flags & MAP_FIXED_NOREPLACE != 0 && !mm.vmas_in(addr, addr + len).is_empty() {
            return Err(Errno::EEXIST);
        }
        addr
    } else {
        let hint = addr & size.mask();
        if addr != 0 && hint >= MMAP_MIN_ADDR && hint <= TASK_SIZE - len && mm.vmas_in(hint, hint + len).is_empty() {
            hint
        } else {
            get_unmapped_area_aligned(mm, len, size.bytes()).ok_or(Errno::ENOMEM)?
        }
    };
    if offset & !size.mask() != 0 {
        return Err(Errno::EINVAL);
    }
    let resv = super::hugetlb::hugetlb_reserve_pages(hw, &obj, offset, len, vf)?;
    if fixed {
        if let Err(e) = do_munmap(mm, hw, start, len) {
            if let Some(r) = &resv {
                let v = Vma { start, end: start + len, flags: vf, backing: Backing::Shmem { obj: obj.clone(), offset }, shared_id: None, userfaultfd_ctx: None, anon_vma: None, hugetlb_resv: Some(r.clone()), hugetlb_unmapped: false, pgoff: start >> 12 };
                super::hugetlb::hugetlb_vm_op_close(hw, &v);
            }
            return Err(e);
        }
    }
    if vf.has(VmFlags::WRITE) && obj.size() < offset + len {
        obj.inode_mut().size = offset + len;
    }
    let shared_id = vf.has(VmFlags::SHARED).then(|| obj.id());
    let vma = Vma { start, end: start + len, flags: vf, backing: Backing::Shmem { obj, offset }, shared_id, userfaultfd_ctx: None, anon_vma: None, hugetlb_resv: resv, hugetlb_unmapped: false, pgoff: start >> 12 };
    mm.vmas.insert(start, vma);
    Ok(start)
}

/// Linux: brk(2). Returns the new (or unchanged, on failure) break.
pub fn do_brk(mm: &mut Mm, hw: &mut Hw, new: u64) -> u64 {
    if new < mm.start_brk {
        return mm.brk;
    }
    let old_end = page_align(mm.brk).unwrap();
    let new_end = match page_align(new) {
        Some(e) if e <= MMAP_BASE => e,
        _ => return mm.brk,
    };
    if new_end < old_end {
        if do_munmap(mm, hw, new_end, old_end - new_end).is_err() {
            return mm.brk;
        }
    } else if new_end > old_end {
        if !mm.vmas_in(old_end, new_end).is_empty() {
            return mm.brk;
        }
        let vma = Vma {
            start: old_end,
            end: new_end,
            // do_brk_flags: VM_DATA_DEFAULT_FLAGS | VM_ACCOUNT.
            flags: VmFlags::READ | VmFlags::WRITE | VmFlags::MAYREAD | VmFlags::MAYWRITE | VmFlags::MAYEXEC | VmFlags::ACCOUNT | mm.def_flags,
            backing: Backing::Heap,
            shared_id: None,
            userfaultfd_ctx: None,
            anon_vma: None,
            hugetlb_resv: None,
            hugetlb_unmapped: false,
            pgoff: old_end >> 12,
        };
        mm.vmas.insert(old_end, vma);
        mm.merge_around(old_end, new_end);
    }
    mm.brk = new;
    mm.brk
}

/// Moves the PTEs of [old, old+len) to [new, new+len) (Linux: move_page_tables →
/// move_ptes). Destination tables are allocated where a source entry needs one; ENOMEM
/// when that fails, after flushing what was moved.
pub fn move_ptes(mm: &mut Mm, hw: &mut Hw, old: u64, new: u64, len: u64) -> KResult<()> {
    let mut tlb = MmuGather::new(mm);
    let pml4 = mm.pml4;
    let vma = mm.find_vma(old).cloned();
    let mut w = MovePtes { hw, tlb: &mut tlb, tables: &mut mm.table_frames, pml4, delta: new.wrapping_sub(old), hsize: vma.as_ref().and_then(super::hugetlb::vma_hsize) };
    let r = match &vma {
        Some(v) => walk_page_vma(pml4, v, old, old + len, &mut w),
        None => walk_page_range(pml4, old, old + len, &mut w),
    };
    // Flushed even when a table allocation failed: the entries moved so far must not stay
    // reachable at their old addresses (Linux flushes each moved page table's range).
    tlb.finish_mmu(hw);
    match r {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(e) => Err(e),
    }
}

struct MovePtes<'a> {
    hw: &'a mut Hw,
    tlb: &'a mut MmuGather,
    tables: &'a mut Vec<mmu::PhysAddr>,
    pml4: mmu::PhysAddr,
    /// new - old (wrapping).
    delta: u64,
    /// The page size of a hugetlb VMA.
    hsize: Option<super::hugetlb::HugeSize>,
}

impl MmWalkOps for MovePtes<'_> {
    type Break = Errno;

    fn mem(&self) -> &PhysMem {
        &self.hw.mem
    }

    /// Linux: move_hugetlb_page_tables, for one huge PTE (the addresses are huge-aligned:
    /// do_mremap checks).
    fn hugetlb_entry(&mut self, e: Entry, slot: Slot, addr: u64, _next: u64) -> ControlFlow<Errno> {
        if pgtable::pte_none(e) {
            return ControlFlow::Continue(());
        }
        let size = self.hsize.expect("a hugetlb VMA");
        let hw = &mut *self.hw;
        let dst_va = addr.wrapping_add(self.delta);
        let Some(dst) = super::hugetlb::huge_pte_alloc(&mut hw.mem, &mut hw.pages, self.tables, self.pml4, dst_va, size) else {
            return ControlFlow::Break(Errno::ENOMEM);
        };
        let f = pgtable::set_entry(&mut hw.mem, slot, addr, Entry::new(0));
        if e.is_present() {
            self.tlb.flush_pte(f);
        } else {
            f.not_needed();
        }
        pgtable::set_entry(&mut hw.mem, dst, dst_va, e).not_needed();
        ControlFlow::Continue(())
    }

    /// Linux: move_page_tables' huge-PMD case. A huge PMD moved whole to a 2 MiB-aligned
    /// destination moves as one entry (move_huge_pmd); otherwise it is split first and its
    /// PTEs move one by one.
    fn pmd_entry(&mut self, pmd: Entry, slot: Slot, addr: u64, next: u64) -> ControlFlow<Errno, Action> {
        use super::huge_memory::{pmd_trans_huge, split_huge_pmd, HPAGE_PMD_SIZE};
        if !pmd_trans_huge(pmd) {
            return ControlFlow::Continue(Action::Subtree);
        }
        let dst_va = addr.wrapping_add(self.delta);
        if next - addr == HPAGE_PMD_SIZE && dst_va & (HPAGE_PMD_SIZE - 1) == 0 {
            let hw = &mut *self.hw;
            let Some(dst) = pgtable::pmd_alloc(&mut hw.mem, &mut hw.pages, self.tables, self.pml4, dst_va) else {
                return ControlFlow::Break(Errno::ENOMEM);
            };
            if dst.level == mmu::Level::Pd && pgtable::pte_none(pgtable::get_entry(&hw.mem, dst)) {
                let f = pgtable::set_entry(&mut hw.mem, slot, addr, Entry::new(0));
                self.tlb.flush_pte(f);
                // The destination was empty: nothing cached for it.
                pgtable::set_entry(&mut hw.mem, dst, dst_va, pmd).not_needed();
                return ControlFlow::Continue(Action::Continue);
            }
        }
        if !split_huge_pmd(self.hw, self.tables, self.pml4.as_u64(), slot, addr & !(HPAGE_PMD_SIZE - 1)) {
            return ControlFlow::Break(Errno::ENOMEM);
        }
        ControlFlow::Continue(Action::Again)
    }

    /// Linux: move_ptes, for one PTE.
    fn pte_entry(&mut self, e: Entry, slot: Slot, src: u64) -> ControlFlow<Errno> {
        match softleaf_from_pte(e) {
            SoftLeaf::None => return ControlFlow::Continue(()),
            // Every kind moves as it is: a page keeps its counts, a swap entry its slot
            // reference (uffd-wp is cleared afterwards, by the uffd code, when it must be).
            SoftLeaf::Present | SoftLeaf::ProtNone | SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } | SoftLeaf::Marker(_) => {}
        }
        let hw = &mut *self.hw;
        let dst_va = src.wrapping_add(self.delta);
        let Some(dst) = pgtable::walk_alloc(&mut hw.mem, &mut hw.pages, self.tables, self.pml4, dst_va) else {
            return ControlFlow::Break(Errno::ENOMEM);
        };
        let f = pgtable::set_entry(&mut hw.mem, slot, src, Entry::new(0));
        self.tlb.flush_pte(f);
        // The destination was empty: nothing cached for it.
        pgtable::set_entry(&mut hw.mem, dst, dst_va, e).not_needed();
        ControlFlow::Continue(())
    }
}

/// Linux: mremap(2) (mm/mremap.c do_mremap, 6.18): check_mremap_params — flags, the
/// alignment, a new length of 0 or past TASK_SIZE (EINVAL); with a new address
/// (MREMAP_FIXED, or MREMAP_DONTUNMAP, which always moves): its bounds and alignment,
/// MAYMOVE, DONTUNMAP only without resizing, and no overlap with the source (EINVAL) —
/// then the VMA at `old` (EFAULT), hugetlb's rounding, and check_prep_vma: a move or a
/// growth must stay in that VMA (EFAULT), except a pure move (FIXED, same size), which
/// since 6.17 may span several VMAs and gaps, none uffd-armed or hugetlb (EFAULT), each
/// VMA moving to the same offset. Without a new address a shrink (or the same size)
/// just unmaps the tail, across VMAs; a growth extends in place or moves (MAYMOVE, else
/// ENOMEM). DONTUNMAP leaves the source VMA in place, empty.
pub fn do_mremap(mm: &mut Mm, hw: &mut Hw, old: u64, old_len: u64, new_len: u64, flags: u32, new_addr: u64) -> KResult<Remapped> {
    if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 || old & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    let old_len = page_align(old_len).ok_or(Errno::EINVAL)?;
    let new_len = page_align(new_len).ok_or(Errno::EINVAL)?;
    if new_len == 0 || new_len > TASK_SIZE {
        return Err(Errno::EINVAL);
    }
    let dontunmap = flags & MREMAP_DONTUNMAP != 0;
    let implies_new = flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) != 0;
    if implies_new {
        if new_addr > TASK_SIZE - new_len || new_addr & 0xfff != 0 || flags & MREMAP_MAYMOVE == 0 || (dontunmap && old_len != new_len) {
            return Err(Errno::EINVAL);
        }
        if old.saturating_add(old_len) > new_addr && new_addr + new_len > old {
            return Err(Errno::EINVAL);
        }
    }
    let vma = mm.find_vma(old).cloned().ok_or(Errno::EFAULT)?;
    let (old_len, new_len) = if vma.is_hugetlb() {
        // hugetlb: lengths rounded up to the page size, huge-aligned addresses, and no
        // expansion (the reservation cannot be split).
        let ps = vma.page_size();
        let (ol, nl) = (old_len.div_ceil(ps) * ps, new_len.div_ceil(ps) * ps);
        if !old.is_multiple_of(ps) || (flags & MREMAP_FIXED != 0 && !new_addr.is_multiple_of(ps)) || nl > ol {
            return Err(Errno::EINVAL);
        }
        (ol, nl)
    } else {
        (old_len, new_len)
    };
    if !implies_new && new_len <= old_len {
        // mremap_at's shrink: the tail goes, whatever VMAs it covers.
        if new_len < old_len {
            do_munmap(mm, hw, old + new_len, old_len - new_len)?;
        }
        return Ok(Remapped::at(old));
    }
    if dontunmap && vma.flags.has(VmFlags::DONTEXPAND) {
        return Err(Errno::EINVAL);
    }
    // vrm_move_only: MREMAP_FIXED without resizing (DONTUNMAP or not).
    let move_only = flags & MREMAP_FIXED != 0 && old_len == new_len;
    if old_len != 0 && old + old_len > vma.end {
        if !move_only {
            return Err(Errno::EFAULT);
        }
        return remap_move_multi(mm, hw, old, old_len, new_addr, dontunmap).map(Remapped::at);
    }
    if implies_new {
        if flags & MREMAP_FIXED != 0 {
            do_munmap(mm, hw, new_addr, new_len)?;
        }
        let dst = if flags & MREMAP_FIXED != 0 { new_addr } else { get_unmapped_area(mm, new_len).ok_or(Errno::ENOMEM)? };
        return move_vma(mm, hw, &vma, old, old_len, dst, new_len, dontunmap);
    }
    // Grow in place when the VMA ends at old+old_len and the space after it is free.
    if old + old_len == vma.end && mm.vmas_in(vma.end, old + new_len).is_empty() && old + new_len <= MMAP_BASE {
        mm.find_vma_mut(old).unwrap().end = old + new_len;
        mm.merge_around(old, old + new_len);
        return Ok(Remapped::at(old));
    }
    if flags & MREMAP_MAYMOVE == 0 {
        return Err(Errno::ENOMEM);
    }
    let dst = get_unmapped_area(mm, new_len).ok_or(Errno::ENOMEM)?;
    move_vma(mm, hw, &vma, old, old_len, dst, new_len, false)
}

/// Linux: vma_multi_allowed, for a VMA that is one of several a pure move spans: not
/// uffd-armed (the notification would need the mmap lock dropped). pagelab also keeps
/// hugetlb VMAs out, which 6.18 allows (not modelled: its per-part alignment).
pub fn vma_multi_allowed(v: &Vma) -> bool {
    !v.is_hugetlb() && !v.flags.intersects(VmFlags::UFFD_MISSING | VmFlags::UFFD_WP | VmFlags::UFFD_MINOR)
}

/// The parts of a pure move of [old, old+len) spanning several VMAs that remap_move
/// moves before it stops: each VMA's part in order, up to the first one that
/// `vma_multi_allowed` refuses (none if the first is refused). Returns the parts and
/// whether it stopped (EFAULT).
pub fn remap_move_parts(mm: &Mm, old: u64, len: u64) -> (Vec<(u64, u64)>, bool) {
    let mut parts = Vec::new();
    for k in mm.vmas_in(old, old + len) {
        let v = &mm.vmas[&k];
        if !vma_multi_allowed(v) {
            return (parts, true);
        }
        parts.push((old.max(v.start), (old + len).min(v.end)));
    }
    (parts, false)
}

/// Linux: remap_move (6.17) for a pure move of [old, old+len) that spans several VMAs or
/// gaps: VMA by VMA, each part moves to `new` plus its offset, its destination unmapped
/// first; the gaps are left as they are at the destination. A VMA that may not take part
/// (`vma_multi_allowed`) stops it with EFAULT, the parts before it moved (measured: the
/// first part's destination UNMAP event, then EFAULT); MREMAP_DONTUNMAP of a
/// VM_DONTEXPAND part is EINVAL there (check_prep_vma).
fn remap_move_multi(mm: &mut Mm, hw: &mut Hw, old: u64, len: u64, new: u64, dontunmap: bool) -> KResult<u64> {
    let (parts, stopped) = remap_move_parts(mm, old, len);
    for (a, b) in parts {
        let v = mm.find_vma(a).cloned().ok_or(Errno::EFAULT)?;
        if dontunmap && v.flags.has(VmFlags::DONTEXPAND) {
            return Err(Errno::EINVAL);
        }
        let dst = new + (a - old);
        do_munmap(mm, hw, dst, b - a)?;
        let v = mm.find_vma(a).cloned().ok_or(Errno::EFAULT)?;
        move_vma(mm, hw, &v, a, b - a, dst, b - a, dontunmap)?;
    }
    if stopped {
        return Err(Errno::EFAULT);
    }
    Ok(new)
}

/// Linux: move_vma: the page tables of [old, old+old_len) move to `new`, then the VMA;
/// the source goes, unless `dontunmap` (MREMAP_DONTUNMAP), which leaves it in place,
/// empty and unlocked.
#[allow(clippy::too_many_arguments)]
fn move_vma(mm: &mut Mm, hw: &mut Hw, vma: &Vma, old: u64, old_len: u64, new: u64, new_len: u64, dontunmap: bool) -> KResult<Remapped> {
    let moved = old_len.min(new_len);
    move_ptes(mm, hw, old, new, moved)?;
    let mut nv = vma.clone();
    nv.start = new;
    nv.end = new + new_len;
    // copy_vma: the pgoff of the moved part, or, for anonymous memory never faulted (no
    // anon_vma), the new address's (so it may merge there).
    nv.pgoff = if vma.is_anonymous() && vma.anon_vma.is_none() { new >> 12 } else { vma.pgoff + ((old - vma.start) >> 12) };
    if let Backing::Shmem { offset, .. } = &mut nv.backing {
        *offset += old - vma.start;
    }
    // Linux's copy_vma runs before the source is unmapped: a new range next to the
    // source's VMA as it is now (the moved range itself included, when the new range
    // touches it) that can merge with it merges into that VMA (pagelab merges after the
    // source is gone; the layout is the same).
    let source = mm.find_vma(old).map(|v| (v.start, v.end));
    let merged_into_source = source.filter(|&(s, e)| {
        let v = &mm.vmas[&s];
        (e == new && v.can_merge(&nv)) || (s == new + new_len && nv.can_merge(v))
    });
    mm.split_at(old);
    mm.split_at(old + old_len);
    for k in mm.vmas_in(old, old + old_len) {
        if dontunmap {
            mm.vmas.get_mut(&k).unwrap().flags -= VmFlags::LOCKED | VmFlags::LOCKONFAULT;
        } else {
            mm.vmas.remove(&k);
        }
    }
    if dontunmap {
        mm.merge_around(old, old + old_len);
    }
    mm.vmas.insert(new, nv);
    mm.merge_around(new, new + new_len);
    Ok(Remapped { addr: new, merged_into_source })
}

/// What a successful mremap did.
#[derive(Clone, Copy, Debug)]
pub struct Remapped {
    /// The address of the mapping now.
    pub addr: u64,
    /// A move whose new VMA merged with what is left of the source's VMA, with that VMA's
    /// extent before the move: Linux's copy_vma then returns the source VMA itself,
    /// extended, so what happens to the new VMA (mremap_userfaultfd_prep dropping the
    /// registration) happens to the whole source VMA, the part that stays included.
    pub merged_into_source: Option<(u64, u64)>,
}

impl Remapped {
    fn at(addr: u64) -> Self {
        Remapped { addr, merged_into_source: None }
    }
}

/// Linux: madvise(2) for the advice pagelab models.
pub fn do_madvise(mm: &mut Mm, hw: &mut Hw, start: u64, len: u64, advice: u32) -> KResult<()> {
    if start & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_align(len).ok_or(Errno::EINVAL)?;
    let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
    match advice {
        MADV_DONTFORK | MADV_DOFORK | MADV_WIPEONFORK | MADV_KEEPONFORK => {}
        MADV_HUGEPAGE | MADV_NOHUGEPAGE => {}
        MADV_NORMAL | MADV_RANDOM | MADV_SEQUENTIAL | MADV_WILLNEED
        | MADV_DONTDUMP | MADV_DODUMP | MADV_COLD | MADV_PAGEOUT | MADV_MERGEABLE | MADV_UNMERGEABLE => {}
        MADV_DONTNEED | MADV_FREE | MADV_COLLAPSE => {}
        MADV_GUARD_INSTALL | MADV_GUARD_REMOVE => {}
        _ => return Err(Errno::EINVAL),
    }
    if len == 0 {
        return Ok(());
    }
    // madvise_walk_vmas: the advice applies to the mapped parts of the range, and a hole
    // anywhere makes the call return ENOMEM afterwards (no VMA at all: ENOMEM at once).
    if mm.vmas_in(start, end).is_empty() {
        return Err(Errno::ENOMEM);
    }
    let unmapped_error = if mm.range_is_mapped(start, end) { Ok(()) } else { Err(Errno::ENOMEM) };
    if matches!(advice, MADV_DONTNEED | MADV_FREE) {
        // madvise_dontneed_free_valid_vma: in a hugetlb VMA only DONTNEED, from a
        // huge-page boundary (else EINVAL), and the end rounded down to one.
        let mut tlb = MmuGather::new(mm);
        let mut r = Ok(());
        let mut reclaim = Vec::new();
        for k in mm.vmas_in(start, end) {
            let v = mm.vmas[&k].clone();
            let (mut s, mut e) = (start.max(v.start), end.min(v.end));
            if !madvise_dontneed_free_valid_vma(&v, s, advice) {
                r = Err(Errno::EINVAL);
                break;
            }
            if v.is_hugetlb() {
                let ps = v.page_size();
                e &= !(ps - 1);
                s = s.min(e);
            }
            if advice == MADV_FREE {
                madvise_free(&mut tlb, mm, hw, s, e);
            } else {
                zap_range(&mut tlb, mm, hw, Some(&v), s, e, ZapDetails::KEEP_MARKERS);
                if !v.is_hugetlb() {
                    reclaim.push((s, e));
                }
            }
        }
        tlb.finish_mmu(hw);
        hw.pages.drain_deferred();
        // Linux: mm/pt_reclaim.c (zap_details.reclaim_pt, set by MADV_DONTNEED): a page
        // table whose whole 2 MiB the zap covered, and that holds only none entries now
        // (no markers), is freed (measured on 6.18: MADV_COLLAPSE then finds no table,
        // EINVAL, where a DONTNEED of one page leaves an empty table that collapses).
        for (s, e) in reclaim {
            let mut h = s.next_multiple_of(1 << 21);
            while h + (1 << 21) <= e {
                if let Some(pmd) = pgtable::pmd_lookup(&hw.mem, mm.pml4, h) {
                    pgtable::free_pte_table_if_empty(mm, hw, pmd, h);
                }
                h += 1 << 21;
            }
        }
        r?;
    }
    if matches!(advice, MADV_GUARD_INSTALL | MADV_GUARD_REMOVE) {
        return madvise_guard(mm, hw, start, end, advice == MADV_GUARD_INSTALL).and(unmapped_error);
    }
    if matches!(advice, MADV_COLD | MADV_PAGEOUT | MADV_COLLAPSE) && mm.vmas_in(start, end).iter().any(|k| mm.vmas[k].is_hugetlb()) {
        // can_madv_lru_vma / thp_vma_allowable: never hugetlb.
        return Err(Errno::EINVAL);
    }
    if matches!(advice, MADV_COLD | MADV_PAGEOUT) {
        // A THP covered in part is split (both); a whole one too for PAGEOUT, whose
        // reclaim splits it (measured on 6.18: AnonHugePages drops even without swap).
        super::huge_memory::split_huge_pmds(mm, hw, start, end, advice == MADV_PAGEOUT);
    }
    if matches!(advice, MADV_COLD | MADV_PAGEOUT) {
        madvise_cold_or_pageout(mm, hw, start, end, advice == MADV_PAGEOUT);
    }
    if matches!(advice, MADV_DONTFORK | MADV_DOFORK | MADV_WIPEONFORK | MADV_KEEPONFORK | MADV_DONTDUMP | MADV_DODUMP | MADV_HUGEPAGE | MADV_NOHUGEPAGE) {
        madvise_vma_flags(mm, hw, start, end, advice)?;
    }
    unmapped_error
}

/// MADV_COLLAPSE (Linux: madvise_collapse through madvise_walk_vmas) of [start,
/// start+len) in the address space `me` of `mms`: VMA by VMA, the first failure ending
/// the call — anonymous memory in `huge_memory::madvise_collapse`, shmem in
/// `khugepaged::madvise_collapse_file` (which reaches every address space mapping the
/// file); hugetlb and other files are EINVAL. A hole in the range is ENOMEM at the end,
/// as for any advice.
pub fn do_madvise_collapse(mms: &mut [Option<Mm>], me: super::MmId, hw: &mut Hw, start: u64, len: u64) -> KResult<()> {
    if start & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_align(len).ok_or(Errno::EINVAL)?;
    let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
    if len == 0 {
        return Ok(());
    }
    let mm = mms[me].as_ref().expect("the caller's mm");
    let keys = mm.vmas_in(start, end);
    if keys.is_empty() {
        return Err(Errno::ENOMEM);
    }
    let unmapped_error = if mm.range_is_mapped(start, end) { Ok(()) } else { Err(Errno::ENOMEM) };
    if keys.iter().any(|k| mm.vmas[k].is_hugetlb()) {
        return Err(Errno::EINVAL);
    }
    for k in keys {
        let Some(v) = mms[me].as_ref().and_then(|m| m.vmas.get(&k)).cloned() else { continue };
        let (a, b) = (start.max(v.start), end.min(v.end));
        // madvise_collapse: a VMA with no aligned 2 MiB in it is not THP-capable
        // (thp_vma_suitable_order), and a part inside one 2 MiB that does not start on
        // its boundary (hstart > hend) fails the final count with SCAN_FAIL: EINVAL both
        // (measured; an aligned start with less than 2 MiB collapses nothing, 0).
        let h = super::huge_memory::HPAGE_PMD_SIZE;
        let suitable = v.len() >= h && (v.end - h) & !(h - 1) >= v.start;
        // Anonymous memory never faulted (no anon_vma) is EINVAL too (measured).
        let never_faulted = v.is_anonymous() && !v.shared() && v.anon_vma.is_none();
        if !suitable || never_faulted || a.next_multiple_of(h) > b & !(h - 1) {
            return Err(Errno::EINVAL);
        }
        if v.is_shmem() {
            super::khugepaged::madvise_collapse_file(mms, me, hw, &v, a, b)?;
        } else {
            super::huge_memory::madvise_collapse(mms[me].as_mut().unwrap(), hw, &v, a, b)?;
        }
    }
    unmapped_error
}

/// Linux: madvise_guard_install / madvise_guard_remove (6.13). Install: every page of
/// the range becomes a guard marker — whatever is mapped there is zapped first (a huge
/// PMD split), page tables are allocated as needed — and any access to it then raises
/// SIGSEGV; guard markers survive MADV_DONTNEED and fork, and go with munmap. Remove:
/// the range's guard markers become none again. EINVAL for a VMA that cannot have them:
/// hugetlb, VM_DONTEXPAND|VM_PFNMAP-style special mappings, and (install only) VM_LOCKED.
fn madvise_guard(mm: &mut Mm, hw: &mut Hw, start: u64, end: u64, install: bool) -> KResult<()> {
    for k in mm.vmas_in(start, end) {
        let v = &mm.vmas[&k];
        if v.is_hugetlb() || v.flags.has(VmFlags::DONTEXPAND) || (install && v.flags.has(VmFlags::LOCKED)) {
            return Err(Errno::EINVAL);
        }
    }
    for k in mm.vmas_in(start, end) {
        if install {
            mm.vmas.get_mut(&k).unwrap().flags |= VmFlags::MAYBE_GUARD;
            // An anonymous VMA whose page tables get markers has an anon_vma (measured:
            // an mremap of its never-faulted pages then keeps their pgoff, no merge).
            if mm.vmas[&k].is_anonymous() {
                mm.anon_vma_prepare(k);
            }
        }
        let v = mm.vmas[&k].clone();
        let (a, b) = (start.max(v.start), end.min(v.end));
        if install {
            // zap_page_range_single first: nothing mapped may stay under a guard.
            let mut tlb = MmuGather::new(mm);
            zap_range(&mut tlb, mm, hw, Some(&v), a, b, ZapDetails::KEEP_MARKERS);
            tlb.finish_mmu(hw);
            hw.pages.drain_deferred();
        }
        let pml4 = mm.pml4;
        let mut w = GuardWalk { hw, tables: &mut mm.table_frames, install };
        if let ControlFlow::Break(e) = walk_page_range(pml4, a, b, &mut w) {
            return Err(e);
        }
    }
    Ok(())
}

/// The walk of madvise_guard_install / _remove (Linux: guard_install_walk_ops and
/// guard_remove_walk_ops): installing allocates the page tables a hole lacks and puts a
/// guard marker in every none PTE (the range was zapped: a uffd-wp marker is replaced);
/// removing turns guard markers back into none.
struct GuardWalk<'a> {
    hw: &'a mut Hw,
    tables: &'a mut Vec<mmu::PhysAddr>,
    install: bool,
}

impl MmWalkOps for GuardWalk<'_> {
    type Break = Errno;

    fn mem(&self) -> &PhysMem {
        &self.hw.mem
    }

    fn pte_entry(&mut self, e: Entry, slot: Slot, va: u64) -> ControlFlow<Errno> {
        let guard = matches!(softleaf_from_pte(e), SoftLeaf::Marker(m) if m.contains(PteMarker::GUARD));
        // Not present before or after (the range was zapped): nothing cached.
        if self.install && !guard {
            pgtable::set_entry(&mut self.hw.mem, slot, va, make_pte_marker(PteMarker::GUARD)).not_needed();
        } else if !self.install && guard {
            pgtable::set_entry(&mut self.hw.mem, slot, va, Entry::new(0)).not_needed();
        }
        ControlFlow::Continue(())
    }

    fn pte_hole(&mut self, addr: u64, _next: u64, _level: mmu::Level, slot: Slot) -> ControlFlow<Errno, Hole> {
        if !self.install {
            return ControlFlow::Continue(Hole::Skip);
        }
        match pgtable::table_alloc(&mut self.hw.mem, &mut self.hw.pages, self.tables, slot, addr) {
            Some(_) => ControlFlow::Continue(Hole::Filled),
            None => ControlFlow::Break(Errno::ENOMEM),
        }
    }
}

/// Linux: do_mlock / munlock (mm/mlock.c) for [start, start+len), the start rounded down
/// and the length up to pages: VM_LOCKED (and VM_LOCKONFAULT for MLOCK_ONFAULT) set on
/// every VMA of the range, split at its ends, or cleared (`lock` false); ENOMEM when the
/// range has a hole or runs past the user space. The caller populates a locked range
/// (mm_populate) unless it is on-fault. Root has no RLIMIT_MEMLOCK.
pub fn do_mlock(mm: &mut Mm, hw: &mut Hw, start: u64, len: u64, lock: bool, onfault: bool) -> KResult<(u64, u64)> {
    let end = start.checked_add(len).and_then(page_align).ok_or(Errno::ENOMEM)?;
    let start = start & !0xfff;
    if end > TASK_SIZE {
        return Err(Errno::ENOMEM);
    }
    if end == start {
        return Ok((start, end));
    }
    if !mm.range_is_mapped(start, end) {
        return Err(Errno::ENOMEM);
    }
    // mlock_fixup leaves VM_SPECIAL, hugetlb and droppable VMAs as they are (not split,
    // not locked, no error).
    let skipped = |v: &Vma| v.flags.has(VmFlags::DONTEXPAND | VmFlags::HUGETLB | VmFlags::DROPPABLE);
    for at in [start, end] {
        if mm.find_vma(at).is_some_and(|v| !skipped(v)) {
            if !mm.may_split(at) {
                return Err(Errno::EINVAL);
            }
            mm.split_vma(hw, at);
        }
    }
    for k in mm.vmas_in(start, end) {
        let v = mm.vmas.get_mut(&k).unwrap();
        if skipped(v) {
            continue;
        }
        v.flags.remove(VmFlags::LOCKED | VmFlags::LOCKONFAULT);
        if lock {
            v.flags |= VmFlags::LOCKED;
            if onfault {
                v.flags |= VmFlags::LOCKONFAULT;
            }
        }
    }
    mm.merge_around(start, end);
    Ok((start, end))
}

/// Linux: apply_mlockall_flags (mm/mlock.c) for mlockall(`flags`), munlockall with 0:
/// MCL_FUTURE (2) sets the address space's def_flags (VM_LOCKED, and VM_LOCKONFAULT with
/// MCL_ONFAULT, 4), which are cleared otherwise; unless it is MCL_FUTURE alone, every VMA
/// loses its lock and gets it again with MCL_CURRENT (1), skipping the VMAs mlock_fixup
/// skips. The caller checks the flags and populates.
pub fn apply_mlockall_flags(mm: &mut Mm, flags: u32) {
    let onfault = flags & 4 != 0;
    mm.def_flags -= VmFlags::LOCKED | VmFlags::LOCKONFAULT;
    if flags & 2 != 0 {
        mm.def_flags |= VmFlags::LOCKED;
        if onfault {
            mm.def_flags |= VmFlags::LOCKONFAULT;
        }
        if flags & 1 == 0 {
            return;
        }
    }
    for v in mm.vmas.values_mut() {
        if v.flags.has(VmFlags::DONTEXPAND | VmFlags::HUGETLB | VmFlags::DROPPABLE) {
            continue;
        }
        v.flags -= VmFlags::LOCKED | VmFlags::LOCKONFAULT;
        if flags & 1 != 0 {
            v.flags |= VmFlags::LOCKED;
            if onfault {
                v.flags |= VmFlags::LOCKONFAULT;
            }
        }
    }
    mm.merge_around(0, TASK_SIZE);
}

/// Linux: madvise_dontneed_free_valid_vma (and madvise_free_single_vma's check), for the
/// part of `v` from `start`: in a hugetlb VMA only DONTNEED, from a huge-page boundary;
/// never a locked VMA; MADV_FREE only private anonymous memory (measured: a memfd
/// mapping is EINVAL).
pub fn madvise_dontneed_free_valid_vma(v: &Vma, start: u64, advice: u32) -> bool {
    if v.is_hugetlb() {
        return advice == MADV_DONTNEED && start.is_multiple_of(v.page_size());
    }
    !v.flags.has(VmFlags::LOCKED) && (advice != MADV_FREE || (v.is_anonymous() && !v.shared()))
}

/// Linux: madvise_free_single_vma → madvise_free_pte_range / madvise_free_huge_pmd over
/// [start, end) of a private anonymous VMA: the pages stay mapped and keep their data
/// (only reclaim, which never runs here, would drop them), made clean and old when the
/// process is their only mapper; a THP covered in part is split first, a whole one just
/// cleaned. A swap entry is freed and cleared, and so is a poison marker; uffd-wp and
/// guard markers and the zero page are left alone.
fn madvise_free(tlb: &mut MmuGather, mm: &mut Mm, hw: &mut Hw, start: u64, end: u64) {
    super::huge_memory::split_huge_pmds(mm, hw, start, end, false);
    let _: ControlFlow<Infallible> = walk_page_range(mm.pml4, start, end, &mut MadvFree { hw, tlb });
}

/// The walker of `madvise_free`.
struct MadvFree<'a> {
    hw: &'a mut Hw,
    tlb: &'a mut MmuGather,
}

impl MadvFree<'_> {
    /// Replaces the entry `e` in `slot` (mapping `addr`) by `new`, flushing a present one.
    fn set(&mut self, slot: Slot, addr: u64, e: Entry, new: Entry) {
        if new == e {
            return;
        }
        let f = pgtable::set_entry(&mut self.hw.mem, slot, addr, new);
        if e.is_present() {
            self.tlb.flush_pte(f);
        } else {
            f.not_needed();
        }
    }
}

impl MmWalkOps for MadvFree<'_> {
    type Break = Infallible;

    fn mem(&self) -> &PhysMem {
        &self.hw.mem
    }

    /// Linux: madvise_free_huge_pmd for a whole THP of the range (a partial one was split
    /// before the walk): cleaned and made old when the process alone maps it.
    fn pmd_entry(&mut self, pmd: Entry, slot: Slot, addr: u64, _next: u64) -> ControlFlow<Infallible, Action> {
        if !pmd.is_leaf(mmu::Level::Pd) {
            return ControlFlow::Continue(Action::Subtree);
        }
        let head = super::huge_memory::pmd_pfn(pmd);
        if !super::huge_memory::is_huge_zero_pmd(self.hw, pmd) && self.hw.pages.meta(head).anon_exclusive {
            self.set(slot, addr, pmd, pmd.without(_PAGE_DIRTY | _PAGE_ACCESSED));
        }
        ControlFlow::Continue(Action::Continue)
    }

    /// Linux: madvise_free_pte_range for one PTE.
    fn pte_entry(&mut self, e: Entry, slot: Slot, va: u64) -> ControlFlow<Infallible> {
        let hw = &mut *self.hw;
        let new = match softleaf_from_pte(e) {
            SoftLeaf::Present => {
                let pa = pgtable::pte_pfn(e);
                let exclusive = !e.has(_PAGE_SPECIAL) && !hw.pages.is_zero_page(pa) && hw.pages.meta(pa).mapcount <= 1;
                exclusive.then(|| e.without(_PAGE_DIRTY | _PAGE_ACCESSED))
            }
            SoftLeaf::Swap { entry, .. } => {
                super::swap::swap_free(hw, entry);
                Some(Entry::new(0))
            }
            SoftLeaf::Marker(m) if m.contains(PteMarker::POISONED) => Some(Entry::new(0)),
            _ => None,
        };
        if let Some(n) = new {
            self.set(slot, va, e, n);
        }
        ControlFlow::Continue(())
    }
}

/// MADV_COLD or MADV_PAGEOUT over every VMA of [start, end)
/// (mm::swap::madvise_cold_or_pageout): one gather, so one flush, and the frames freed
/// after it.
fn madvise_cold_or_pageout(mm: &mut Mm, hw: &mut Hw, start: u64, end: u64, pageout: bool) {
    let mut tlb = MmuGather::new(mm);
    for k in mm.vmas_in(start, end) {
        let v = mm.vmas[&k].clone();
        super::swap::madvise_cold_or_pageout(&mut tlb, mm, hw, &v, start.max(v.start), end.min(v.end), pageout);
    }
    tlb.finish_mmu(hw);
}

/// The advice that only sets VMA flags (Linux: madvise_vma_behavior → madvise_update_vma):
/// VM_DONTCOPY for MADV_DONTFORK, VM_WIPEONFORK (private anonymous memory only, else
/// EINVAL) for MADV_WIPEONFORK, and their inverses; VM_HUGEPAGE for MADV_HUGEPAGE and
/// VM_NOHUGEPAGE for MADV_NOHUGEPAGE, each clearing the other (hugepage_madvise). VMAs are
/// split to the range and merged after.
fn madvise_vma_flags(mm: &mut Mm, hw: &mut Hw, start: u64, end: u64, advice: u32) -> KResult<()> {
    // madvise_walk_vmas → madvise_update_vma, VMA by VMA: an error stops the walk with the
    // earlier VMAs changed; a VMA whose flags do not change is not split (so a huge PMD
    // across the range's ends stays whole).
    let mut r = Ok(());
    for k in mm.vmas_in(start, end) {
        let Some(v) = mm.vmas.get(&k) else { continue };
        let f = v.flags;
        let new = match advice {
            MADV_DONTFORK => f | VmFlags::DONTCOPY,
            MADV_DOFORK => f - VmFlags::DONTCOPY,
            MADV_WIPEONFORK if v.shared() || !v.is_anonymous() => {
                r = Err(Errno::EINVAL);
                break;
            }
            MADV_WIPEONFORK => f | VmFlags::WIPEONFORK,
            MADV_KEEPONFORK if f.has(VmFlags::DROPPABLE) => {
                r = Err(Errno::EINVAL);
                break;
            }
            MADV_KEEPONFORK => f - VmFlags::WIPEONFORK,
            MADV_DONTDUMP => f | VmFlags::DONTDUMP,
            MADV_DODUMP if (!v.is_hugetlb() && f.has(VmFlags::DONTEXPAND)) || f.has(VmFlags::DROPPABLE) => {
                r = Err(Errno::EINVAL);
                break;
            }
            MADV_DODUMP => f - VmFlags::DONTDUMP,
            MADV_HUGEPAGE => (f - VmFlags::NOHUGEPAGE) | VmFlags::HUGEPAGE,
            MADV_NOHUGEPAGE => (f - VmFlags::HUGEPAGE) | VmFlags::NOHUGEPAGE,
            _ => unreachable!("advice {advice} sets no VMA flag"),
        };
        if new == f {
            continue;
        }
        let (a, b) = (start.max(v.start), end.min(v.end));
        if !mm.may_split(a) || !mm.may_split(b) {
            r = Err(Errno::EINVAL);
            break;
        }
        mm.split_vma(hw, a);
        mm.split_vma(hw, b);
        mm.vmas.get_mut(&a).unwrap().flags = new;
    }
    mm.merge_around(start, end);
    r
}

/// Frees every page of an address space and its tables (exit_mmap).
pub fn exit_mmap(mm: &mut Mm, hw: &mut Hw) {
    let ranges: Vec<(u64, u64)> = mm.vmas.values().filter(|v| !v.is_hugetlb()).map(|v| (v.start, v.end)).collect();
    let huge: Vec<Vma> = mm.vmas.values().filter(|v| v.is_hugetlb()).cloned().collect();
    unmap_hugetlb_vmas(mm, hw, &huge);
    for (s, e) in ranges {
        zap_and_flush(mm, hw, s, e);
    }
    mm.vmas.clear();
    for t in std::mem::take(&mut mm.table_frames) {
        hw.pages.put(t);
    }
    hw.pages.drain_deferred();
}
