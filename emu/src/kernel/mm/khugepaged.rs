//! MADV_COLLAPSE of shmem (Linux: mm/khugepaged.c hpage_collapse_scan_file,
//! collapse_file, retract_page_tables, collapse_pte_mapped_thp), synchronous, as
//! madvise_collapse runs them; there is no khugepaged thread. (The anonymous case is
//! `huge_memory::madvise_collapse`.)
//!
//! What it does to an aligned 2 MiB of a shmem file, as measured on 6.18 (whatever
//! shmem_enabled says — the policy is not asked):
//! * the page cache: the 512 pages become one new 2 MiB folio (`Pages::alloc_shmem_thp`)
//!   holding their data, holes filled with zeros (so the file has 512 pages after it);
//!   every PTE mapping an old page, in every address space, goes first (try_to_unmap; a
//!   uffd-wp'd one leaves a marker), and so does every page table left empty over the
//!   2 MiB (retract_page_tables), so the next fault there maps the folio with a PMD;
//! * the caller's mapping: the folio is mapped with one huge PMD at once
//!   (collapse_pte_mapped_thp with install_pmd), unless the VMA is registered uffd-wp:
//!   EINVAL then, with the page cache already collapsed.
//!
//! Refusals: no page of the 2 MiB cached (EINVAL); holes while some mapping of the file
//! there is registered MISSING, in any process (EBUSY, nothing changed); no aligned
//! 2 MiB free (ENOMEM). A 2 MiB already PMD-mapped is a success.

use super::mmap::{zap_vmas_and_flush, ZapDetails};
use super::pgtable::{self, linux::*, Slot};
use super::shmem::Shmem;
use super::swapops::{softleaf_from_pte, SoftLeaf};
use super::vma::{Backing, Vma, VmFlags};
use super::{Mm, MmId};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use mmu::{Entry, Level, PhysAddr};

const HPAGE: u64 = super::huge_memory::HPAGE_PMD_SIZE;
const NR: u64 = super::huge_memory::HPAGE_PMD_NR;

/// The [start, end) of each mapping of `obj`'s page offsets [first, first + NR) in `mm`:
/// (VMA start, address of page `first` there, whether the VMA covers all NR pages).
fn mappings_of(mm: &Mm, obj: &Shmem, first: u64) -> Vec<(u64, u64, bool)> {
    mm.vmas
        .values()
        .filter_map(|v| {
            let Backing::Shmem { obj: o, offset } = &v.backing else { return None };
            if o != obj {
                return None;
            }
            let (pg0, pages) = (offset >> 12, v.len() >> 12);
            if first + NR <= pg0 || first >= pg0 + pages {
                return None;
            }
            let whole = first >= pg0 && first + NR <= pg0 + pages;
            Some((v.start, v.start.wrapping_add((first.wrapping_sub(pg0)) << 12), whole))
        })
        .collect()
}

/// Linux: madvise_collapse for one shmem VMA of the mm `me`, [start, end) within it.
pub fn madvise_collapse_file(mms: &mut [Option<Mm>], me: MmId, hw: &mut Hw, vma: &Vma, start: u64, end: u64) -> KResult<()> {
    let Backing::Shmem { obj, .. } = &vma.backing else { return Err(Errno::EINVAL) };
    let thp_disable = mms[me].as_ref().map_or(0, |m| m.thp_disable);
    // thp_vma_allowable_order(TVA_FORCED_COLLAPSE): not VM_NOHUGEPAGE, not disabled for
    // the mm, and the file offset congruent with the address modulo 2 MiB.
    if vma.flags.has(VmFlags::NOHUGEPAGE) || thp_disable == 1 || (thp_disable == 3 && !vma.flags.has(VmFlags::HUGEPAGE)) {
        return Err(Errno::EINVAL);
    }
    if (vma.object_offset(vma.start) >> 12) % NR != (vma.start >> 12) % NR {
        return Err(Errno::EINVAL);
    }
    let (hstart, hend) = ((start + HPAGE - 1) & !(HPAGE - 1), end & !(HPAGE - 1));
    let mut last_fail = None;
    let mut haddr = hstart;
    while haddr < hend {
        if let Err(e) = collapse_one(mms, me, hw, vma, obj, haddr) {
            last_fail = Some(e);
        }
        haddr += HPAGE;
    }
    match last_fail {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One aligned 2 MiB at `haddr` of `vma`: the page cache collapsed if it is not yet one
/// folio there (collapse_file), then the caller's PMD (collapse_pte_mapped_thp).
fn collapse_one(mms: &mut [Option<Mm>], me: MmId, hw: &mut Hw, vma: &Vma, obj: &Shmem, haddr: u64) -> KResult<()> {
    let first = vma.object_offset(haddr) >> 12;
    let mm = mms[me].as_ref().expect("the caller's mm");
    // SCAN_PMD_MAPPED: already mapped by a huge PMD.
    if let Some(slot) = pmd_slot(hw, mm.pml4, haddr) {
        let pmd = pgtable::get_entry(&hw.mem, slot);
        if super::huge_memory::pmd_trans_huge(pmd) {
            return Ok(());
        }
    }
    let cached = obj.find_page(first);
    let already = cached.is_some_and(|p| hw.pages.folio(p) == p && hw.pages.is_huge(p));
    if !already {
        collapse_file(mms, hw, obj, first)?;
    }
    retract_page_tables(mms, hw, obj, first);
    collapse_pte_mapped_thp(mms[me].as_mut().expect("the caller's mm"), hw, vma, obj, haddr, first)
}

/// The PMD slot over `va` if the tables down to it exist.
fn pmd_slot(hw: &Hw, pml4: PhysAddr, va: u64) -> Option<Slot> {
    super::hugetlb::hugetlb_walk(&hw.mem, pml4, va, super::hugetlb::HugeSize::M2)
}

/// Linux: hpage_collapse_scan_file + collapse_file for page offsets [first, first + NR)
/// of `obj`.
fn collapse_file(mms: &mut [Option<Mm>], hw: &mut Hw, obj: &Shmem, first: u64) -> KResult<()> {
    let present: Vec<u64> = (first..first + NR).filter(|&i| obj.find_page(i).is_some()).collect();
    if present.is_empty() || (first + NR) * 4096 > obj.size().div_ceil(4096) * 4096 {
        // Nothing cached, or the 2 MiB runs past the end of the file.
        return Err(Errno::EINVAL);
    }
    // try_to_unmap of every old page, in every address space (a wp'd PTE leaves a
    // marker; a private COW copy is not the file's and stays).
    for mm in mms.iter_mut().flatten() {
        for (_, a, _) in mappings_of(mm, obj, first) {
            let (lo, hi) = (a, a.wrapping_add(HPAGE));
            zap_vmas_and_flush(mm, hw, lo, hi, ZapDetails::PUNCH);
        }
    }
    if present.len() as u64 != NR {
        // Holes would be filled: not while a mapping there waits for MISSING faults (the
        // rollback leaves the page cache as it was, but the PTEs are gone, as measured).
        let missing = mms.iter().flatten().any(|mm| {
            mappings_of(mm, obj, first).iter().any(|(s, _, _)| mm.vmas[s].flags.has(VmFlags::UFFD_MISSING))
        });
        if missing {
            return Err(Errno::EBUSY);
        }
    }
    if !hw.pages.deferred_put.borrow().is_empty() {
        hw.pages.drain_deferred();
    }
    let Some(head) = hw.pages.alloc_shmem_thp(&mut hw.mem, NR as u32) else {
        return Err(Errno::ENOMEM);
    };
    // The data moves into the new folio, holes stay zero; the old pages leave the cache.
    for i in 0..NR {
        if let Some(old) = obj.find_page(first + i) {
            hw.mem.copy_within(old, PhysAddr::new(head.as_u64() + (i << 12)), 4096);
        }
    }
    let old = obj.remove_pages(first, first + NR);
    {
        let mut o = obj.inode_mut();
        for i in 0..NR {
            o.mapping.add(first + i, PhysAddr::new(head.as_u64() + (i << 12)), true);
        }
    }
    for pa in old {
        hw.pages.put(pa);
    }
    tracing::trace!(target: "pagelab::thp", first, filled = NR - present.len() as u64, "collapse_file");
    Ok(())
}

/// Linux: retract_page_tables. Every mapping of the 2 MiB that covers it whole, at an
/// aligned address, whose page table is now empty loses the table (the PMD is cleared and
/// flushed), so its next fault can map the folio with a PMD. A table with anything in it
/// (a marker, a private copy) stays. The table frame itself is freed with the mm.
fn retract_page_tables(mms: &mut [Option<Mm>], hw: &mut Hw, obj: &Shmem, first: u64) {
    for mm in mms.iter_mut().flatten() {
        for (_, a, whole) in mappings_of(mm, obj, first) {
            if !whole || a & (HPAGE - 1) != 0 {
                continue;
            }
            let Some(slot) = pmd_slot(hw, mm.pml4, a) else { continue };
            let pmd = pgtable::get_entry(&hw.mem, slot);
            if !pmd.is_present() || pmd.is_leaf(Level::Pd) {
                continue;
            }
            let pt = pmd.addr(Level::Pd, 52);
            if pgtable::pte_table_is_empty(&hw.mem, pt) {
                let f = pgtable::set_entry(&mut hw.mem, slot, a, Entry::new(0));
                hw.flush(f, mm.pml4.as_u64());
            }
        }
    }
}

/// Linux: collapse_pte_mapped_thp with install_pmd, in the caller's mm: a VMA registered
/// uffd-wp refuses (EINVAL); a none PMD gets the folio; a page table still holding
/// entries (markers, private copies) refuses (EINVAL).
fn collapse_pte_mapped_thp(mm: &mut Mm, hw: &mut Hw, vma: &Vma, obj: &Shmem, haddr: u64, first: u64) -> KResult<()> {
    if vma.flags.has(VmFlags::UFFD_WP) {
        return Err(Errno::EINVAL);
    }
    let head = obj.find_page(first).ok_or(Errno::EINVAL)?;
    if haddr < vma.start || haddr + HPAGE > vma.end {
        return Err(Errno::EINVAL);
    }
    let Some(slot) = pgtable::pmd_alloc(&mut hw.mem, &mut hw.pages, &mut mm.table_frames, mm.pml4, haddr) else {
        return Err(Errno::ENOMEM);
    };
    if slot.level != Level::Pd {
        return Err(Errno::EINVAL);
    }
    let pmd = pgtable::get_entry(&hw.mem, slot);
    if !pgtable::pte_none(pmd) {
        if super::huge_memory::pmd_trans_huge(pmd) {
            return Ok(());
        }
        // A page table: each entry must be none or map the folio's own page there (a
        // PTE-mapped THP); anything else (a marker, a private copy) refuses.
        let pt = pmd.addr(Level::Pd, 52);
        let ptes: Vec<Entry> = (0..512u64).map(|i| Entry::new(hw.mem.read_u64(PhysAddr::new(pt.as_u64() + 8 * i)))).collect();
        for (i, e) in ptes.iter().enumerate() {
            match softleaf_from_pte(*e) {
                SoftLeaf::None => {}
                SoftLeaf::Present if pgtable::pte_pfn(*e).as_u64() == head.as_u64() + ((i as u64) << 12) => {}
                _ => return Err(Errno::EINVAL),
            }
        }
        let f = pgtable::set_entry(&mut hw.mem, slot, haddr, Entry::new(0));
        hw.flush(f, mm.pml4.as_u64());
        // The PTE mappings are gone with the table (flushed above).
        for e in ptes.iter().filter(|e| e.is_present()) {
            let pa = pgtable::pte_pfn(*e);
            if e.is_dirty() {
                hw.pages.mark_dirty(pa);
            }
            hw.pages.unmap(pa);
        }
    }
    hw.pages.get(head);
    hw.pages.map_pmd(head);
    let e = super::huge_memory::mk_huge_pmd(head, vma.page_prot()).with(_PAGE_ACCESSED);
    // The slot was none (or just cleared and flushed).
    pgtable::set_entry(&mut hw.mem, slot, haddr, e).not_needed();
    tracing::trace!(target: "pagelab::thp", addr = format_args!("{haddr:#x}"), "collapse_pte_mapped_thp");
    Ok(())
}
