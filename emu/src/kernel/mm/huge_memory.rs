//! Transparent huge pages for anonymous memory (Linux: mm/huge_memory.c): the policy, the
//! huge-PMD fault (a 2 MiB folio, or the huge zero page for a read), the write-protect
//! fault on a huge PMD, and the PMD-level operations the range walkers use — zap, change
//! protection, copy at fork, move at mremap — with `split_huge_pmd` for every operation
//! that covers only part of a huge PMD.
//!
//! A huge PMD is a page-directory entry with PS set mapping a naturally aligned order-9
//! folio (`page::Pages::folio`). Splitting it installs a page table of 512 PTEs that keep
//! every bit of the PMD (R/W, dirty, young, uffd-wp, PROT_NONE) and map the folio's pages
//! one by one; the folio itself stays whole until its last reference goes (Linux defers
//! splitting the folio; pagelab never needs to). A split of the huge zero page maps the
//! 4 KiB zero page instead, as __split_huge_zero_page_pmd does.

use super::mmu_gather::MmuGather;
use super::pgtable::{self, linux::*, Slot};
use super::vma::{Vma, VmFlags};
use crate::kernel::hw::Hw;
use mmu::{Entry, Level, PhysAddr};

/// 2 MiB: what one huge PMD maps (Linux: HPAGE_PMD_SIZE).
pub const HPAGE_PMD_SIZE: u64 = 2 << 20;
/// Pages in a huge PMD (Linux: HPAGE_PMD_NR).
pub const HPAGE_PMD_NR: u64 = 512;

/// /sys/kernel/mm/transparent_hugepage/enabled (Linux: transparent_hugepage_flags), set
/// for a run by `--thp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ThpMode {
    /// Every eligible anonymous VMA.
    Always,
    /// Only VMAs with MADV_HUGEPAGE (VM_HUGEPAGE): this host's setting.
    #[default]
    Madvise,
    /// None.
    Never,
}

impl ThpMode {
    /// The word sysfs brackets.
    pub fn name(self) -> &'static str {
        match self {
            ThpMode::Always => "always",
            ThpMode::Madvise => "madvise",
            ThpMode::Never => "never",
        }
    }
}

/// Linux: thp_vma_allowable_order(vma, vm_flags, TVA_PAGEFAULT, PMD_ORDER) together with
/// thp_vma_suitable_order, for anonymous memory: a private anonymous VMA (shared
/// anonymous memory is shmem, whose shmem_enabled is "never"), not VM_NOHUGEPAGE, not
/// disabled for the mm (`thp_disable`, prctl: 1 always, 3 unless VM_HUGEPAGE), allowed
/// by the policy (always, or madvise and VM_HUGEPAGE), and covering the whole aligned
/// 2 MiB around `addr`.
pub fn thp_vma_allowable(hw: &Hw, thp_disable: u8, vma: &Vma, addr: u64) -> bool {
    if !vma.is_anonymous() || vma.shared() || vma.flags.has(VmFlags::NOHUGEPAGE) {
        return false;
    }
    match thp_disable {
        0 => {}
        3 if vma.flags.has(VmFlags::HUGEPAGE) => {}
        _ => return false,
    }
    let policy = match hw.thp {
        ThpMode::Always => true,
        ThpMode::Madvise => vma.flags.has(VmFlags::HUGEPAGE),
        ThpMode::Never => false,
    };
    let haddr = addr & !(HPAGE_PMD_SIZE - 1);
    policy && haddr >= vma.start && haddr + HPAGE_PMD_SIZE <= vma.end
}

/// Whether `pmd` is a huge leaf (present or PROT_NONE) (Linux: pmd_trans_huge).
pub fn pmd_trans_huge(pmd: Entry) -> bool {
    pmd.has(_PAGE_PSE) && (pmd.is_present() || pmd.has(_PAGE_PROTNONE))
}

/// Linux: vma_adjust_trans_huge → split_huge_pmd_if_needed: a VMA boundary at `addr` not
/// on a 2 MiB boundary splits the huge PMD that maps `addr` (see `Mm::split_vma`).
pub fn split_huge_pmd_at_boundary(mm: &mut super::Mm, hw: &mut Hw, addr: u64) {
    if addr & (HPAGE_PMD_SIZE - 1) == 0 {
        return;
    }
    let Some(slot) = pgtable::pmd_lookup(&hw.mem, mm.pml4, addr) else { return };
    if pmd_trans_huge(pgtable::get_entry(&hw.mem, slot)) && mm.find_vma(addr).is_some_and(|v| !v.is_hugetlb()) {
        split_huge_pmd(hw, &mut mm.table_frames, mm.pml4.as_u64(), slot, addr & !(HPAGE_PMD_SIZE - 1));
    }
}

/// A huge PMD for the 2 MiB frame `frame` with protection `prot` (Linux: folio_mk_pmd).
/// The protection 0 of a PROT_NONE VMA gives the _PAGE_PROTNONE form (as `mk_pte`): a
/// MADV_COLLAPSE in a PROT_NONE VMA maps its THP that way.
pub fn mk_huge_pmd(frame: PhysAddr, prot: u64) -> Entry {
    let prot = if prot == 0 { _PAGE_PROTNONE | _PAGE_USER | _PAGE_ACCESSED } else { prot };
    Entry::new(prot | _PAGE_PSE).with_addr(frame, Level::Pd)
}

/// The frame a huge PMD maps.
pub fn pmd_pfn(pmd: Entry) -> PhysAddr {
    pmd.addr(Level::Pd, 52)
}

/// The huge zero page, allocated on first use and kept (Linux: get_huge_zero_folio, a
/// system-wide folio that outlives the process using it). It comes from the top of guest
/// memory, so it never takes the frame of a THP just freed (measured natively: a read
/// after a whole-THP DONTNEED maps frames unrelated to the THP's). None when no aligned
/// 2 MiB is free.
pub fn huge_zero_page(hw: &mut Hw) -> Option<PhysAddr> {
    if hw.pages.huge_zero_page.is_none() {
        let pa = hw.pages.alloc.alloc_2m_high()?;
        hw.mem.fill(pa, HPAGE_PMD_SIZE, 0);
        hw.pages.huge_zero_page = Some(pa);
    }
    hw.pages.huge_zero_page
}

/// Whether `pmd` maps the huge zero page (Linux: is_huge_zero_pmd).
pub fn is_huge_zero_pmd(hw: &Hw, pmd: Entry) -> bool {
    is_huge_zero_pmd_pages(&hw.pages, pmd)
}

/// [`is_huge_zero_pmd`] for a caller holding only the page metadata.
pub fn is_huge_zero_pmd_pages(pages: &super::Pages, pmd: Entry) -> bool {
    pages.huge_zero_page == Some(pmd_pfn(pmd))
}

/// Linux: __split_huge_pmd for the huge PMD in `slot` covering `haddr`: a new page table
/// (on `tables`) whose 512 PTEs map the folio's pages with the PMD's bits, then the PMD
/// pointing at it, flushed from every vCPU running the mm (`cr3`). The folio's one
/// PMD reference becomes 512 PTE references, and each page one PTE mapping. Returns false
/// when memory for the table is exhausted (nothing changed).
pub fn split_huge_pmd(hw: &mut Hw, tables: &mut Vec<PhysAddr>, cr3: u64, slot: Slot, haddr: u64) -> bool {
    let pmd = pgtable::get_entry(&hw.mem, slot);
    debug_assert!(pmd_trans_huge(pmd), "split of a PMD that is not huge: {:#x}", pmd.raw());
    if is_file_pmd(hw, pmd) {
        // __split_huge_pmd_locked for a file folio: the PMD is just zapped; the pages
        // refault from the page cache (measured on 6.18 for shmem: whatever split the
        // mapping, the whole PMD goes).
        zap_file_pmd(hw, cr3, slot, haddr, pmd);
        return true;
    }
    let Some(pt) = hw.pages.alloc_zeroed(&mut hw.mem) else {
        return false;
    };
    tables.push(pt);
    let head = pmd_pfn(pmd);
    // The PTE bits: everything but PS and the PMD's address field (its PAT is bit 12,
    // which pagelab never sets).
    let bits = pmd.raw() & !(_PAGE_PSE | Entry::ADDR_MASK_52);
    let zero = is_huge_zero_pmd(hw, pmd);
    for i in 0..HPAGE_PMD_NR {
        let e = if zero {
            // __split_huge_zero_page_pmd: the 4 KiB zero page, read-only and special.
            pgtable::mk_pte(hw.pages.zero_page, bits & !_PAGE_RW).with(_PAGE_SPECIAL)
        } else {
            let page = PhysAddr::new(head.as_u64() + (i << 12));
            hw.pages.map(page);
            pgtable::mk_pte(page, bits)
        };
        hw.mem.write_u64(PhysAddr::new(pt.as_u64() + 8 * i), e.raw());
    }
    if !zero {
        hw.pages.get_many(head, HPAGE_PMD_NR as u32 - 1);
        hw.pages.remove_rmap_pmd(head);
    }
    let f = pgtable::set_entry(&mut hw.mem, slot, haddr, Entry::new(_PAGE_TABLE).with_addr(pt, Level::Pd));
    hw.flush(f, cr3);
    tracing::trace!(target: "pagelab::thp", addr = format_args!("{haddr:#x}"), zero, "split_huge_pmd");
    true
}

/// Splits the huge PMDs [start, end) covers in part — or every one, with `whole` (Linux:
/// madvise_cold_or_pageout_pte_range, which splits a partly covered THP for MADV_COLD and
/// MADV_PAGEOUT, and whose reclaim splits a whole one for MADV_PAGEOUT). False when a
/// table could not be allocated.
pub fn split_huge_pmds(mm: &mut super::Mm, hw: &mut Hw, start: u64, end: u64, whole: bool) -> bool {
    use super::pagewalk::{walk_page_range, Action, MmWalkOps};
    use std::ops::ControlFlow;
    struct Split<'a> {
        hw: &'a mut Hw,
        tables: &'a mut Vec<PhysAddr>,
        cr3: u64,
        whole: bool,
    }
    impl MmWalkOps for Split<'_> {
        type Break = ();
        fn mem(&self) -> &mmu::PhysMem {
            &self.hw.mem
        }
        fn pmd_entry(&mut self, pmd: Entry, slot: Slot, addr: u64, next: u64) -> ControlFlow<(), Action> {
            if !pmd_trans_huge(pmd) || (!self.whole && next - addr == HPAGE_PMD_SIZE) {
                return ControlFlow::Continue(Action::Continue);
            }
            // The huge zero page is left alone, and so is a folio another mapping shares
            // (folio_maybe_mapped_shared; measured: a huge zero PMD stays after a
            // MADV_PAGEOUT of part of it, a THP a forked child maps stays PMD-mapped).
            // PROT_NONE ones are pmd_present and split.
            if is_huge_zero_pmd(self.hw, pmd) || folio_maybe_mapped_shared(&self.hw.pages, pmd_pfn(pmd)) {
                return ControlFlow::Continue(Action::Continue);
            }
            if !split_huge_pmd(self.hw, self.tables, self.cr3, slot, addr & !(HPAGE_PMD_SIZE - 1)) {
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(Action::Continue)
        }
        fn pte_entry(&mut self, _pte: Entry, _slot: Slot, _addr: u64) -> ControlFlow<()> {
            ControlFlow::Continue(())
        }
    }
    let pml4 = mm.pml4;
    let mut w = Split { hw, tables: &mut mm.table_frames, cr3: pml4.as_u64(), whole };
    walk_page_range(pml4, start, end, &mut w).is_continue()
}

/// Linux: folio_maybe_mapped_shared, for the anonymous folio at `head`: whether another
/// address space may map it (an anonymous page is mapped at most once per mm, so any page
/// mapped twice, or a huge PMD besides another mapping, says so).
pub fn folio_maybe_mapped_shared(pages: &super::Pages, head: PhysAddr) -> bool {
    let m = pages.meta(head);
    if m.order != 9 {
        return m.mapcount > 1;
    }
    let subpages = (0..HPAGE_PMD_NR).map(|i| pages.meta(PhysAddr::new(head.as_u64() + (i << 12))).mapcount);
    let (most, any) = subpages.fold((0, false), |(mx, any), c| (mx.max(c), any || c > 0));
    m.entire_mapcount > 1 || most > 1 || (m.entire_mapcount == 1 && any)
}

/// The linear page index (Linux: folio->index) of the folio at `head` whose page `pa`
/// is mapped at `va` in the anonymous VMA `vma` (linear_page_index).
pub fn anon_folio_index(vma: &Vma, va: u64, head: PhysAddr, pa: PhysAddr) -> u64 {
    vma.pgoff + ((va - vma.start) >> 12) - ((pa.as_u64() - head.as_u64()) >> 12)
}

/// Linux: split_folio of an anonymous THP that only PTEs map, in `mm` alone (__folio_split,
/// then remap_page with RMP_USE_SHARED_ZEROPAGE, 6.12): the folio at `head`, of linear
/// index `index` (`anon_folio_index`), becomes 512 small pages, and every PTE — found as
/// the rmap finds it, through each VMA's pgoff — mapping a subpage that holds only zeros
/// is replaced by the shared zero page with the VMA's protection (keeping uffd-wp; not in
/// a VM_LOCKED VMA), the subpage freed once `tlb` has flushed. Measured on 6.18: after
/// MADV_PAGEOUT or MADV_COLD of part of a THP of which pages 0-9 were written, pagemap
/// says 0-9 present and exclusive and 10-511 present only (the zero page), Rss 40 kB,
/// pages moved away by mremap included. False, and nothing changed, if the folio is not
/// one the split takes (PMD-mapped, shared with another mm, or held by a pin).
pub fn split_anon_folio(mm: &super::Mm, hw: &mut Hw, tlb: &mut MmuGather, head: PhysAddr, index: u64) -> bool {
    use super::swapops::{softleaf_from_pte, SoftLeaf};
    if !hw.pages.is_huge(head) || hw.pages.meta(head).file || folio_maybe_mapped_shared(&hw.pages, head) {
        return false;
    }
    if !hw.pages.split_anon_folio(head) {
        return false;
    }
    let zero = [0u8; 4096];
    let mut buf = [0u8; 4096];
    for v in mm.vmas.values().filter(|v| v.is_anonymous() && !v.shared() && v.anon_vma.is_some()) {
        let pages = v.len() >> 12;
        for i in 0..HPAGE_PMD_NR {
            let Some(off) = (index + i).checked_sub(v.pgoff).filter(|&o| o < pages) else { continue };
            let (va, spa) = (v.start + (off << 12), PhysAddr::new(head.as_u64() + (i << 12)));
            let Some(slot) = pgtable::walk_lookup(&hw.mem, mm.pml4, va).filter(|s| s.level == Level::Pt) else { continue };
            let e = pgtable::get_entry(&hw.mem, slot);
            let present = match softleaf_from_pte(e) {
                SoftLeaf::Present => true,
                SoftLeaf::ProtNone => false,
                _ => continue,
            };
            if e.has(_PAGE_SPECIAL) || pgtable::pte_pfn(e) != spa || hw.pages.meta(spa).mapcount != 1 || v.flags.has(VmFlags::LOCKED) {
                continue;
            }
            hw.mem.read(spa, &mut buf);
            if buf != zero {
                continue;
            }
            let mut z = pgtable::mk_pte(hw.pages.zero_page, v.page_prot() & !_PAGE_RW).with(_PAGE_SPECIAL);
            if e.has(_PAGE_UFFD_WP) {
                z = z.with(_PAGE_UFFD_WP);
            }
            let f = pgtable::set_entry(&mut hw.mem, slot, va, z);
            if present {
                tlb.flush_pte(f);
            } else {
                f.not_needed();
            }
            hw.pages.remove_rmap(spa);
            tlb.remove_page(spa);
        }
    }
    tracing::trace!(target: "pagelab::thp", head = format_args!("{:#x}", head.as_u64()), "split_folio");
    true
}

/// Whether a huge PMD maps a page-cache (shmem) folio rather than an anonymous one or
/// the huge zero page.
pub fn is_file_pmd(hw: &Hw, pmd: Entry) -> bool {
    !is_huge_zero_pmd(hw, pmd) && hw.pages.meta(pmd_pfn(pmd)).file
}

/// Removes the huge PMD mapping a shmem folio and flushes it from every vCPU running
/// `cr3`; the folio stays in its page cache.
pub fn zap_file_pmd(hw: &mut Hw, cr3: u64, slot: Slot, haddr: u64, pmd: Entry) {
    let f = pgtable::set_entry(&mut hw.mem, slot, haddr, Entry::new(0));
    if pmd.is_present() {
        hw.flush(f, cr3);
    } else {
        f.not_needed();
    }
    let head = pmd_pfn(pmd);
    if pmd.is_dirty() {
        hw.pages.mark_folio_dirty(head);
    }
    hw.pages.remove_rmap_pmd(head);
    hw.pages.put(head);
}

/// Linux: do_set_pmd, from finish_fault / filemap_map_pmd: a fault on a none PMD of a
/// shmem VMA whose page cache holds a 2 MiB folio for the aligned 2 MiB around `addr`
/// maps it with one huge PMD (read-only unless the VMA's protection is writable) — but not
/// with VM_NOHUGEPAGE or PR_SET_THP_DISABLE, not where the VMA or the file offset does not
/// cover the aligned 2 MiB, not in a MINOR-registered VMA (the fault goes to the monitor
/// page by page), and not for a write to a private mapping (which copies a 4 KiB page).
pub fn do_set_pmd(hw: &mut Hw, thp_disable: u8, vma: &Vma, slot: Slot, addr: u64, write: bool) -> bool {
    let haddr = addr & !(HPAGE_PMD_SIZE - 1);
    let super::vma::Backing::Shmem { obj, .. } = &vma.backing else { return false };
    if !vma.is_shmem() || vma.flags.has(VmFlags::NOHUGEPAGE | VmFlags::UFFD_MINOR) || (write && !vma.shared()) {
        return false;
    }
    if thp_disable == 1 || (thp_disable == 3 && !vma.flags.has(VmFlags::HUGEPAGE)) {
        return false;
    }
    if haddr < vma.start || haddr + HPAGE_PMD_SIZE > vma.end {
        return false;
    }
    let off = vma.object_offset(haddr);
    if off & (HPAGE_PMD_SIZE - 1) != 0 || off + HPAGE_PMD_SIZE > obj.size() {
        return false;
    }
    let Some(first) = obj.find_page(off >> 12) else { return false };
    let head = hw.pages.folio(first);
    if head != first || !hw.pages.is_huge(head) {
        return false;
    }
    hw.pages.get(head);
    hw.pages.map_pmd(head);
    let mut e = mk_huge_pmd(head, vma.page_prot()).with(_PAGE_ACCESSED);
    if write {
        e = e.with(_PAGE_DIRTY);
    }
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{addr:#x}"), decision = "do_set_pmd", pmd = format_args!("{:#x}", e.raw()));
    // The old entry was none.
    pgtable::set_entry(&mut hw.mem, slot, haddr, e).not_needed();
    true
}

/// Linux: zap_huge_pmd: the PMD cleared and its flush gathered; the folio loses the PMD
/// mapping now and the reference once no TLB reaches it. The huge zero page holds none.
pub fn zap_huge_pmd(hw: &mut Hw, tlb: &mut MmuGather, slot: Slot, haddr: u64, pmd: Entry) {
    let f = pgtable::set_entry(&mut hw.mem, slot, haddr, Entry::new(0));
    if pmd.is_present() {
        tlb.flush_pte(f);
    } else {
        f.not_needed();
    }
    if !is_huge_zero_pmd(hw, pmd) {
        let head = pmd_pfn(pmd);
        if pmd.is_dirty() && hw.pages.meta(head).file {
            hw.pages.mark_folio_dirty(head);
        }
        hw.pages.remove_rmap_pmd(head);
        tlb.remove_page(head);
    }
}

/// Linux: madvise_collapse (mm/khugepaged.c) over [start, end) of one VMA: every aligned
/// 2 MiB inside the range that page tables map with PTEs becomes one new folio mapped by a
/// huge PMD, whatever the sysfs policy (TVA_FORCED_COLLAPSE) — but EINVAL for a VMA that
/// cannot have one (not private anonymous, VM_NOHUGEPAGE, PR_SET_THP_DISABLE, no aligned
/// 2 MiB inside). Per 2 MiB (hpage_collapse_scan_pmd's results, as measured on 6.18): a
/// huge PMD already (PROT_NONE too) is a success; no page table is EINVAL and ends the
/// call; a uffd-wp'd PTE or swap entry is EINVAL; a none or zero-page PTE in a VMA
/// registered with a userfaultfd is EBUSY and ends the call; PROT_NONE PTEs collapse like
/// present ones; after the scan, a guard marker is EINVAL and ends the call, a swap entry
/// (pagelab does not swap it in) is EAGAIN. The ranges are tried in order while none ended
/// the call; it succeeds only when all did, else it returns the last failure. The new folio holds the
/// pages' data (zeros for none and zero-page PTEs) and is mapped writable and dirty; the
/// old pages lose this mapping (COW-shared ones stay the other process's), and the page
/// table is freed.
pub fn madvise_collapse(mm: &mut super::Mm, hw: &mut Hw, vma: &Vma, start: u64, end: u64) -> crate::kernel::errno::KResult<()> {
    use super::swapops::{pte_swp_uffd_wp_any, softleaf_from_pte, SoftLeaf};
    use crate::kernel::errno::Errno;
    let suitable = vma.len() >= HPAGE_PMD_SIZE && {
        let h = (vma.end - HPAGE_PMD_SIZE) & !(HPAGE_PMD_SIZE - 1);
        h >= vma.start
    };
    if !vma.is_anonymous() || vma.shared() || vma.flags.has(VmFlags::NOHUGEPAGE) || mm.thp_disable == 1 || !suitable {
        return Err(Errno::EINVAL);
    }
    let (hstart, hend) = ((start + HPAGE_PMD_SIZE - 1) & !(HPAGE_PMD_SIZE - 1), end & !(HPAGE_PMD_SIZE - 1));
    let armed = vma.flags.intersects(VmFlags::UFFD_MISSING | VmFlags::UFFD_WP | VmFlags::UFFD_MINOR);
    let mut last_fail = None;
    let mut haddr = hstart;
    while haddr < hend {
        // Err((errno, whether madvise_collapse stops there: only SCAN_PMD_NULL,
        // SCAN_PTE_NON_PRESENT and SCAN_PTE_UFFD_WP let it go on to the next 2 MiB).
        let r = (|| -> Result<(), (Errno, bool)> {
            // The PD slot over haddr and its entry.
            let Some(pd) = pgtable::pmd_lookup(&hw.mem, mm.pml4, haddr) else { return Err((Errno::EINVAL, true)) };
            let pmd = pgtable::get_entry(&hw.mem, pd);
            if pmd_trans_huge(pmd) {
                // A huge PMD, PROT_NONE ones included: already collapsed (SCAN_PMD_MAPPED).
                return Ok(());
            }
            if !pmd.is_present() {
                // No page table (SCAN_PMD_NONE, not one of the results madvise_collapse
                // goes on after: EINVAL, the end of the call; measured).
                return Err((Errno::EINVAL, true));
            }
            let pt = pmd.addr(Level::Pd, 52);
            // Pages with data (for the trace).
            let mut present = 0;
            // hpage_collapse_scan_pmd, PTE by PTE. Entries that are not present (swap
            // entries, markers) pass the scan and fail later, in the swap-in
            // (__collapse_huge_page_swapin): after the whole scan.
            let mut swapin_fail = None;
            for i in 0..HPAGE_PMD_NR {
                let e = Entry::new(hw.mem.read_u64(PhysAddr::new(pt.as_u64() + 8 * i)));
                match softleaf_from_pte(e) {
                    // pte_none_or_zero: in a uffd-armed VMA any none or zero-page PTE is
                    // SCAN_EXCEED_NONE_PTE (EBUSY, the end of the call; measured).
                    SoftLeaf::None if armed => return Err((Errno::EBUSY, true)),
                    SoftLeaf::None => {}
                    // pte_present: PROT_NONE PTEs too (measured: they collapse).
                    SoftLeaf::Present | SoftLeaf::ProtNone => {
                        let zero = e.has(_PAGE_SPECIAL) || hw.pages.is_zero_page(pgtable::pte_pfn(e));
                        if zero && armed {
                            return Err((Errno::EBUSY, true));
                        }
                        if e.has(_PAGE_UFFD_WP) {
                            return Err((Errno::EINVAL, false));
                        }
                        present += !zero as u32;
                    }
                    // SCAN_PTE_UFFD_WP: a uffd-wp swap entry or marker, at once.
                    _ if pte_swp_uffd_wp_any(e) => return Err((Errno::EINVAL, false)),
                    // pagelab does not swap in here: EAGAIN (a marker's failure wins).
                    SoftLeaf::Swap { .. } => {
                        swapin_fail.get_or_insert((Errno::EAGAIN, false));
                    }
                    // do_swap_page of a guard marker is SIGSEGV: SCAN_FAIL, EINVAL, the
                    // end of the call (measured: EINVAL, the page table kept).
                    SoftLeaf::Migration { .. } | SoftLeaf::Marker(_) => swapin_fail = Some((Errno::EINVAL, true)),
                }
            }
            if let Some(f) = swapin_fail {
                return Err(f);
            }
            // Only none and zero-page PTEs collapse too, into a zeroed folio (measured on
            // 6.18: a page table of 512 none PTEs, or a split huge zero page with one page
            // zapped, become a THP; read-only PTEs with data as well). The VMA must have an
            // anon_vma (the caller's `never_faulted`).
            let folio = hw.pages.alloc_huge_zeroed(&mut hw.mem).ok_or((Errno::ENOMEM, true))?;
            let mut tlb = MmuGather::new(mm);
            for i in 0..HPAGE_PMD_NR {
                let e = Entry::new(hw.mem.read_u64(PhysAddr::new(pt.as_u64() + 8 * i)));
                if !matches!(softleaf_from_pte(e), SoftLeaf::Present | SoftLeaf::ProtNone) || e.has(_PAGE_SPECIAL) {
                    continue;
                }
                let pa = pgtable::pte_pfn(e);
                if hw.pages.is_zero_page(pa) {
                    continue;
                }
                hw.mem.copy_within(pa, PhysAddr::new(folio.as_u64() + (i << 12)), 4096);
                hw.pages.remove_rmap(pa);
                tlb.remove_page(pa);
            }
            hw.pages.map_pmd(folio);
            let mut e = mk_huge_pmd(folio, vma.page_prot()).with(_PAGE_DIRTY);
            if vma.writable() {
                e = e.with(_PAGE_RW);
            }
            let f = pgtable::set_entry(&mut hw.mem, pd, haddr, e);
            tlb.flush_pte(f);
            tlb.finish_mmu(hw);
            // The page table goes (pte_free after the flush).
            if let Some(i) = mm.table_frames.iter().position(|&t| t == pt) {
                mm.table_frames.swap_remove(i);
                hw.pages.put(pt);
            }
            tracing::trace!(target: "pagelab::thp", addr = format_args!("{haddr:#x}"), present, "collapse");
            Ok(())
        })();
        if let Err((e, stop)) = r {
            last_fail = Some(e);
            if stop {
                break;
            }
        }
        haddr += HPAGE_PMD_SIZE;
    }
    match last_fail {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
