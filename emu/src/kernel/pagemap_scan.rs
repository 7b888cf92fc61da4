//! PAGEMAP_SCAN, the ioctl on /proc/PID/pagemap (Linux: fs/proc/task_mmu.c
//! do_pagemap_scan and its walk ops): the categories of every page of a range, reported
//! as merged `page_region`s, optionally write-protecting what matched (PM_SCAN_WP_MATCHING)
//! in the same call — the reader of UFFD_FEATURE_WP_ASYNC dirty tracking (CRIU, Wine's
//! write watches).
//!
//! The scan runs in two steps over the target's address space: the page walker
//! (`walk_page_vma`, VMA by VMA) gives each run of pages its categories; the output step
//! applies the masks, merges adjacent runs, stops at vec_len regions or max_pages pages
//! (walk_end then says where), and collects the pages to protect, which
//! `uffd_wp_range` then protects. pagelab's kernel is atomic with respect to the guest,
//! so the two steps are as atomic as Linux's interleaved walk.

use super::errno::{Errno, KResult};
use super::hw::Hw;
use super::mm::pagewalk::{walk_page_vma, Action, Hole, MmWalkOps};
use super::mm::pgtable::{self, linux::*, Slot};
use super::mm::swapops::{pte_swp_uffd_wp_any, softleaf_from_pte, PteMarker, SoftLeaf};
use super::mm::{Mm, Vma};
use super::procfs::Target;
use super::syscall::{ok, Sys, SysResult};
use mmu::{Entry, Level, PhysMem};
use std::convert::Infallible;
use std::ops::ControlFlow;

/// _IOWR('f', 16, struct pm_scan_arg).
pub const PAGEMAP_SCAN: u32 = 0xC060_6610;

pub const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
pub const PM_SCAN_CHECK_WPASYNC: u64 = 1 << 1;
const PM_SCAN_FLAGS: u64 = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;

pub const PAGE_IS_WPALLOWED: u64 = 1 << 0;
pub const PAGE_IS_WRITTEN: u64 = 1 << 1;
pub const PAGE_IS_FILE: u64 = 1 << 2;
pub const PAGE_IS_PRESENT: u64 = 1 << 3;
pub const PAGE_IS_SWAPPED: u64 = 1 << 4;
pub const PAGE_IS_PFNZERO: u64 = 1 << 5;
pub const PAGE_IS_HUGE: u64 = 1 << 6;
pub const PAGE_IS_SOFT_DIRTY: u64 = 1 << 7;
pub const PAGE_IS_GUARD: u64 = 1 << 8;
const PM_SCAN_CATEGORIES: u64 = (1 << 9) - 1;

/// struct pm_scan_arg (96 bytes), as the ioctl reads it.
#[derive(Clone, Copy, Debug, Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

/// Offset of walk_end, the one field the ioctl writes back.
const WALK_END_OFFSET: u64 = 32;

impl PmScanArg {
    fn from_bytes(b: &[u8; 96]) -> Self {
        let f = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
        Self {
            size: f(0),
            flags: f(1),
            start: f(2),
            end: f(3),
            vec: f(5),
            vec_len: f(6),
            max_pages: f(7),
            category_inverted: f(8),
            category_mask: f(9),
            category_anyof_mask: f(10),
            return_mask: f(11),
        }
    }

    /// Linux: pagemap_scan_is_interesting_page.
    fn interesting(&self, categories: u64) -> bool {
        let c = categories ^ self.category_inverted;
        c & self.category_mask == self.category_mask && (self.category_anyof_mask == 0 || c & self.category_anyof_mask != 0)
    }
}

/// Linux: do_pagemap_scan, for the pagemap file of `t`.
pub fn pagemap_scan(s: &mut Sys, mm_id: usize, arg: u64) -> SysResult {
    let mut raw = [0u8; 96];
    s.copy_from_user(arg, &mut raw)?;
    let mut a = PmScanArg::from_bytes(&raw);
    // pagemap_scan_get_args, in its order.
    if a.size != 96 || a.flags & !PM_SCAN_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    if (a.category_inverted | a.category_mask | a.category_anyof_mask | a.return_mask) & !PM_SCAN_CATEGORIES != 0 {
        return Err(Errno::EINVAL);
    }
    if a.start & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    let top = super::mm::TASK_SIZE;
    if a.end < a.start || a.end > top {
        // access_ok(start, end - start): end before start, or past the user half.
        return Err(Errno::EFAULT);
    }
    if a.vec == 0 && a.vec_len != 0 {
        return Err(Errno::EINVAL);
    }
    if a.vec != 0 && a.vec_len.checked_mul(24).and_then(|n| n.checked_add(a.vec)).is_none_or(|e| e > top) {
        return Err(Errno::EFAULT);
    }
    a.end = (a.end + 0xfff) & !0xfff;
    if a.max_pages == 0 {
        a.max_pages = u64::MAX;
    }
    let (hw, mm) = (&mut *s.hw, s.k.mms[mm_id].as_mut().expect("the target's mm"));
    let outcome = scan(mm, hw, &a)?;
    // The regions found (before an EPERM too), then walk_end; a failed write of either is
    // EFAULT, which wins over the walk's EPERM (measured on 6.18).
    let mut out = Vec::with_capacity(outcome.regions.len() * 24);
    for (st, en, c) in &outcome.regions {
        for v in [st, en, c] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    let vec_ok = out.is_empty() || s.copy_to_user(a.vec, &out).is_ok();
    let arg_ok = s.copy_to_user(arg + WALK_END_OFFSET, &outcome.walk_end.to_le_bytes()).is_ok();
    if !vec_ok || !arg_ok {
        return Err(Errno::EFAULT);
    }
    if let Some(e) = outcome.err {
        return Err(e);
    }
    ok(outcome.regions.len() as u64)
}

struct ScanOutcome {
    regions: Vec<(u64, u64, u64)>,
    walk_end: u64,
    /// The walk stopped on a VMA PM_SCAN_CHECK_WPASYNC refuses (EPERM).
    err: Option<Errno>,
}

/// What a run of the walk is: PTEs, a huge PMD, or a range without a page table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunKind {
    Pte,
    Huge,
    Hole,
}

/// The walk, the output and the protection (see the module documentation).
fn scan(mm: &mut Mm, hw: &mut Hw, a: &PmScanArg) -> KResult<ScanOutcome> {
    let wp = a.flags & PM_SCAN_WP_MATCHING != 0;
    let mut regions: Vec<(u64, u64, u64)> = Vec::new();
    let mut found = 0u64;
    let mut to_protect: Vec<(u64, u64, u64)> = Vec::new(); // (vma start, start, end)
    // Huge PMDs split but then not protected (their pages no longer match).
    let mut to_split: Vec<u64> = Vec::new();
    let mut walk_end = a.end;
    let mut err = None;
    'vmas: for key in mm.vmas_in(a.start, a.end) {
        let vma = mm.vmas[&key].clone();
        // pagemap_scan_test_walk.
        let cur = if super::mm::userfaultfd::userfaultfd_wp_async(&vma) && super::mm::userfaultfd::userfaultfd_wp_use_markers(&vma) {
            PAGE_IS_WPALLOWED
        } else if a.flags & PM_SCAN_CHECK_WPASYNC != 0 {
            err = Some(Errno::EPERM);
            break;
        } else {
            0
        };
        if wp && cur & PAGE_IS_WPALLOWED == 0 {
            continue;
        }
        let (lo, hi) = (a.start.max(vma.start), a.end.min(vma.end));
        let mut w = CategoryWalk { mem: &hw.mem, pages: &hw.pages, vma: &vma, cur, runs: Vec::new() };
        let ControlFlow::Continue(()) = walk_page_vma(mm.pml4, &vma, lo, hi, &mut w);
        for (st, en, cats, kind) in w.runs {
            // pagemap_scan_thp_entry: a written huge PMD that WP_MATCHING would protect in
            // part is split first and its pages then looked at as PTEs (without HUGE),
            // against the masks again; one already protected stays whole.
            let truncated = a.vec_len != 0 && found.saturating_add((en - st) >> 12) > a.max_pages;
            let partial = en - st < super::mm::huge_memory::HPAGE_PMD_SIZE || truncated;
            let split = wp && kind == RunKind::Huge && !vma.is_hugetlb() && cats & PAGE_IS_WRITTEN != 0 && partial && a.interesting(cats);
            let (cats, kind) = if split { (cats & !PAGE_IS_HUGE, RunKind::Pte) } else { (cats, kind) };
            if split && !a.interesting(cats) {
                to_split.push(st);
            }
            if !a.interesting(cats) {
                // The fast path of a protect-only scan (no vector) write-protects every PTE
                // of the range, interesting or not (measured on 6.18); holes and huge PMDs
                // follow the masks.
                if wp && a.vec_len == 0 && kind == RunKind::Pte {
                    push_protect(&mut to_protect, vma.start, st, en);
                }
                continue;
            }
            let mut e2 = en;
            let mut full = false;
            if a.vec_len != 0 {
                let n = (en - st) >> 12;
                if found.saturating_add(n) > a.max_pages {
                    e2 = st + ((a.max_pages - found) << 12);
                    full = true;
                }
                let rc = cats & a.return_mask;
                if e2 > st {
                    let n_regions = regions.len() as u64;
                    match regions.last_mut() {
                        Some(last) if last.1 == st && last.2 == rc => last.1 = e2,
                        _ if n_regions >= a.vec_len => {
                            e2 = st;
                            full = true;
                        }
                        _ => regions.push((st, e2, rc)),
                    }
                }
                found += (e2 - st) >> 12;
            }
            if wp && e2 > st {
                push_protect(&mut to_protect, vma.start, st, e2);
            }
            if full {
                walk_end = e2;
                break 'vmas;
            }
        }
    }
    for addr in to_split {
        if let Some(slot) = pgtable::pmd_lookup(&hw.mem, mm.pml4, addr) {
            if super::mm::huge_memory::pmd_trans_huge(pgtable::get_entry(&hw.mem, slot)) {
                super::mm::huge_memory::split_huge_pmd(hw, &mut mm.table_frames, mm.pml4.as_u64(), slot, addr & !(super::mm::huge_memory::HPAGE_PMD_SIZE - 1));
            }
        }
    }
    for (vstart, st, en) in to_protect {
        let Some(vma) = mm.vmas.get(&vstart).cloned() else { continue };
        super::mm::userfaultfd::uffd_wp_range(mm, hw, &vma, st, en, true)?;
        // make_uffd_wp_pte sets the swap uffd-wp bit on any swap-style entry, a guard
        // marker included (change_protection leaves guards alone): 0x460000000000009f.
        let ControlFlow::Continue(()) = walk_page_vma(mm.pml4, &vma, st, en, &mut GuardWp { mem: &mut hw.mem });
    }
    if err.is_some() {
        walk_end = a.end;
    }
    Ok(ScanOutcome { regions, walk_end, err })
}

/// The swap uffd-wp bit on the guard markers of a range WP_MATCHING protected.
struct GuardWp<'a> {
    mem: &'a mut PhysMem,
}

impl MmWalkOps for GuardWp<'_> {
    type Break = Infallible;

    fn mem(&self) -> &PhysMem {
        self.mem
    }

    fn pte_entry(&mut self, e: Entry, slot: Slot, va: u64) -> ControlFlow<Infallible> {
        if matches!(softleaf_from_pte(e), SoftLeaf::Marker(m) if m.contains(PteMarker::GUARD)) {
            // Not present before or after: nothing cached.
            pgtable::set_entry(self.mem, slot, va, super::mm::swapops::pte_swp_mkuffd_wp(e)).not_needed();
        }
        ControlFlow::Continue(())
    }
}

/// Adds [st, en) of the VMA at `vstart` to the ranges to write-protect, merged with the
/// previous one when adjacent.
fn push_protect(to_protect: &mut Vec<(u64, u64, u64)>, vstart: u64, st: u64, en: u64) {
    match to_protect.last_mut() {
        Some(l) if l.0 == vstart && l.2 == st => l.2 = en,
        _ => to_protect.push((vstart, st, en)),
    }
}

/// The walk of one VMA: runs of pages with their categories (Linux: pagemap_scan_ops,
/// pagemap_page_category / pagemap_thp_category / pagemap_hugetlb_category).
struct CategoryWalk<'a> {
    mem: &'a PhysMem,
    pages: &'a super::mm::Pages,
    vma: &'a Vma,
    /// The VMA's own category: WPALLOWED when registered WP in a WP_ASYNC context.
    cur: u64,
    runs: Vec<(u64, u64, u64, RunKind)>,
}

impl CategoryWalk<'_> {
    fn push(&mut self, start: u64, end: u64, categories: u64, kind: RunKind) {
        match self.runs.last_mut() {
            Some(l) if l.1 == start && l.2 == categories && l.3 == kind && kind != RunKind::Huge => l.1 = end,
            _ => self.runs.push((start, end, categories, kind)),
        }
    }
}

impl MmWalkOps for CategoryWalk<'_> {
    type Break = Infallible;

    fn mem(&self) -> &PhysMem {
        self.mem
    }

    /// Linux: pagemap_scan_thp_entry. A huge PMD: present and huge for each page of it,
    /// written unless uffd-wp'd, the huge zero page PFNZERO, a shmem folio FILE.
    fn pmd_entry(&mut self, pmd: Entry, _slot: Slot, addr: u64, next: u64) -> ControlFlow<Infallible, Action> {
        use super::mm::huge_memory::{is_huge_zero_pmd_pages, pmd_pfn, pmd_trans_huge};
        if !pmd_trans_huge(pmd) {
            return ControlFlow::Continue(Action::Subtree);
        }
        let mut c = self.cur | PAGE_IS_PRESENT | PAGE_IS_HUGE;
        if !pmd.has(_PAGE_UFFD_WP) {
            c |= PAGE_IS_WRITTEN;
        }
        if is_huge_zero_pmd_pages(self.pages, pmd) {
            c |= PAGE_IS_PFNZERO;
        } else if self.pages.meta(pmd_pfn(pmd)).file {
            c |= PAGE_IS_FILE;
        }
        self.push(addr, next, c, RunKind::Huge);
        ControlFlow::Continue(Action::Continue)
    }

    /// Linux: pagemap_page_category for one PTE (a none PTE in a page table counts as
    /// written, as measured on 6.18).
    fn pte_entry(&mut self, pte: Entry, _slot: Slot, addr: u64) -> ControlFlow<Infallible> {
        let c = self.cur
            | match softleaf_from_pte(pte) {
                SoftLeaf::None => PAGE_IS_WRITTEN,
                SoftLeaf::Present | SoftLeaf::ProtNone => {
                    let mut c = PAGE_IS_PRESENT;
                    if !pte.has(_PAGE_UFFD_WP) {
                        c |= PAGE_IS_WRITTEN;
                    }
                    let pa = pgtable::pte_pfn(pte);
                    if self.pages.is_zero_page(pa) {
                        c |= PAGE_IS_PFNZERO;
                    } else if !pte.has(_PAGE_SPECIAL) && self.pages.meta(pa).file {
                        c |= PAGE_IS_FILE;
                    }
                    c
                }
                SoftLeaf::Marker(m) => {
                    let mut c = PAGE_IS_SWAPPED;
                    if !pte_swp_uffd_wp_any(pte) {
                        c |= PAGE_IS_WRITTEN;
                    }
                    if m.contains(PteMarker::GUARD) {
                        c |= PAGE_IS_GUARD;
                    }
                    c
                }
                SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } => {
                    let mut c = PAGE_IS_SWAPPED;
                    if !pte_swp_uffd_wp_any(pte) {
                        c |= PAGE_IS_WRITTEN;
                    }
                    c
                }
            };
        self.push(addr, addr + 4096, c, RunKind::Pte);
        ControlFlow::Continue(())
    }

    /// Linux: pagemap_hugetlb_category.
    fn hugetlb_entry(&mut self, e: Entry, _slot: Slot, addr: u64, next: u64) -> ControlFlow<Infallible> {
        let c = self.cur
            | match softleaf_from_pte(e) {
                SoftLeaf::None => 0,
                SoftLeaf::Present | SoftLeaf::ProtNone => {
                    let mut c = PAGE_IS_PRESENT;
                    if !e.has(_PAGE_UFFD_WP) {
                        c |= PAGE_IS_WRITTEN;
                    }
                    let size = super::mm::hugetlb::vma_hsize(self.vma).expect("a hugetlb VMA");
                    if self.pages.meta(super::mm::hugetlb::huge_pte_pfn(e, size)).file {
                        c |= PAGE_IS_FILE;
                    }
                    c
                }
                SoftLeaf::Marker(m) => PAGE_IS_SWAPPED | if m.contains(PteMarker::UFFD_WP) { 0 } else { PAGE_IS_WRITTEN },
                SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } => PAGE_IS_SWAPPED | if pte_swp_uffd_wp_any(e) { 0 } else { PAGE_IS_WRITTEN },
            };
        self.push(addr, next, c, RunKind::Huge);
        ControlFlow::Continue(())
    }

    /// Linux: pagemap_scan_pte_hole. No page table: the VMA's own category, written in a
    /// VMA registered for uffd-wp, async or not (6.18 with the "written state for PMD
    /// holes" fix; measured for anon, memfd shared and private, with and without
    /// WP_UNPOPULATED), nothing otherwise.
    fn pte_hole(&mut self, addr: u64, next: u64, _level: Level, _slot: Slot) -> ControlFlow<Infallible, Hole> {
        let c = if self.vma.flags.has(super::mm::VmFlags::UFFD_WP) { self.cur | PAGE_IS_WRITTEN } else { self.cur };
        self.push(addr, next, c, RunKind::Hole);
        ControlFlow::Continue(Hole::Skip)
    }
}

/// For `FileKind::ProcLive` ioctls: PAGEMAP_SCAN on a pagemap file of `t`.
pub fn proc_ioctl(s: &mut Sys, t: Target, path: &str, cmd: u32, arg: u64) -> SysResult {
    if !path.ends_with("/pagemap") {
        return Err(Errno::ENOTTY);
    }
    if cmd != PAGEMAP_SCAN {
        // do_pagemap_cmd: any other command on a pagemap file.
        return Err(Errno::EINVAL);
    }
    let Some(mm) = super::procfs::mm_of(s, t) else { return Err(Errno::ESRCH) };
    pagemap_scan(s, mm, arg)
}
