//! The one page-range walker (Linux: mm/pagewalk.c walk_page_range, with the callbacks of
//! `struct mm_walk_ops` in include/linux/pagewalk.h).
//!
//! [`walk_page_range`] visits [start, end) of an address space in address order, one
//! table at a time, and hands each slot to a [`MmWalkOps`] implementation:
//!
//! * a not-present entry above the PTE level is a hole: [`MmWalkOps::pte_hole`] gets the
//!   whole range that entry covers, [addr, next) with `next` from `p?d_addr_end`
//!   arithmetic, in one call: a missing PML4 entry skips 512 GiB, a missing PDPT entry
//!   1 GiB, a missing PD entry 2 MiB. Nothing steps through a hole page by page;
//! * a present PDPT entry goes to [`MmWalkOps::pud_entry`], a present PD entry to
//!   [`MmWalkOps::pmd_entry`], before anything below it: a huge leaf is seen there, and
//!   the callback decides whether the walker descends ([`Action::Subtree`]), skips the
//!   range ([`Action::Continue`]) or reads the entry again ([`Action::Again`]);
//! * every PTE of a page table in the range, none ones included, goes to
//!   [`MmWalkOps::pte_entry`] with its value and its slot. The walker reads the PTEs of one
//!   table from consecutive slots, so the per-page cost is one read and the callback.
//!
//! The walker reads tables and never changes them. A callback that wants tables where
//! there are none — change_protection installing uffd-wp markers over unpopulated ranges,
//! Linux's `change_pmd_prepare` — fills the hole's slot in `pte_hole` (with
//! `pgtable::table_alloc`) and answers [`Hole::Filled`]; the walker then reads the slot
//! again and descends into the new table.
//!
//! A callback stops the walk by returning `ControlFlow::Break` (Linux: a non-zero return),
//! and the walk returns it. The ops own whatever state they need — the `Hw` they change,
//! the `MmuGather` collecting flushes and pages — and lend the walker guest memory through
//! [`MmWalkOps::mem`]; the walker holds no borrow across a callback, so a callback may
//! write any entry, the one it was handed included.
//!
//! Invariant: [start, end) is page aligned and lies in the lower half of the address
//! space (user addresses): the walker never looks at kernel-half PML4 entries.

use super::pgtable::{index_slot, Slot};
use mmu::{Entry, Level, PhysAddr, PhysMem};
use std::ops::ControlFlow;

/// What the walker does after `pud_entry` / `pmd_entry` (Linux: `walk->action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Walk the table below (Linux: ACTION_SUBTREE). A huge leaf has none: the walker
    /// skips it as with `Continue`.
    Subtree,
    /// Skip the entry's range: the callback has dealt with it (Linux: ACTION_CONTINUE).
    Continue,
    /// Read the entry again and decide anew: the callback changed it (Linux: ACTION_AGAIN).
    Again,
}

/// What the walker does after `pte_hole`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hole {
    /// Go on after the hole.
    Skip,
    /// The callback installed a table in the hole's slot: read it again and walk it.
    Filled,
}

/// The callbacks of a walk (Linux: struct mm_walk_ops, with the walk's private state in
/// the implementing type). Only `mem` and `pte_entry` are required.
pub trait MmWalkOps {
    /// What stops a walk early (Linux: the callback's non-zero return);
    /// `std::convert::Infallible` for a walk that always completes.
    type Break;

    /// The guest memory the page tables live in.
    fn mem(&self) -> &PhysMem;

    /// A present PDPT entry `pud` in `slot`, covering [addr, next) (Linux: pud_entry).
    /// The default walks a table and skips a 1 GiB leaf (there are no huge user mappings
    /// yet).
    #[inline]
    fn pud_entry(&mut self, pud: Entry, slot: Slot, addr: u64, next: u64) -> ControlFlow<Self::Break, Action> {
        let _ = (slot, addr, next);
        ControlFlow::Continue(if pud.is_leaf(Level::Pdpt) { Action::Continue } else { Action::Subtree })
    }

    /// A present PD entry `pmd` in `slot`, covering [addr, next), before its PTEs (Linux:
    /// pmd_entry, which sees a huge PMD first). The default walks a page table and skips a
    /// 2 MiB leaf (there are no huge user mappings yet).
    #[inline]
    fn pmd_entry(&mut self, pmd: Entry, slot: Slot, addr: u64, next: u64) -> ControlFlow<Self::Break, Action> {
        let _ = (slot, addr, next);
        ControlFlow::Continue(if pmd.is_leaf(Level::Pd) { Action::Continue } else { Action::Subtree })
    }

    /// The PTE `pte`, in `slot`, of the page at `addr` (Linux: pte_entry). Called for
    /// every PTE of every page table in the range, none ones included.
    fn pte_entry(&mut self, pte: Entry, slot: Slot, addr: u64) -> ControlFlow<Self::Break>;

    /// The huge PTE `pte` in `slot` (a PD entry for 2 MiB, a PDPT entry for 1 GiB) of the
    /// hugetlb page covering [addr, next), none or not (Linux: hugetlb_entry). Called by
    /// [`walk_page_vma`] for a hugetlb VMA only. Default: nothing.
    #[inline]
    fn hugetlb_entry(&mut self, pte: Entry, slot: Slot, addr: u64, next: u64) -> ControlFlow<Self::Break> {
        let _ = (pte, slot, addr, next);
        ControlFlow::Continue(())
    }

    /// [addr, next) has no table at `level`: the entry in `slot` (a table at `level`) is
    /// not present (Linux: pte_hole, whose depth is our level). Default: skip it.
    #[inline]
    fn pte_hole(&mut self, addr: u64, next: u64, level: Level, slot: Slot) -> ControlFlow<Self::Break, Hole> {
        let _ = (addr, next, level, slot);
        ControlFlow::Continue(Hole::Skip)
    }
}

/// The end of the range an entry at `level` covers from `addr`, or `end` if that comes
/// first (Linux: pgd_addr_end, pud_addr_end, pmd_addr_end). Safe at the top of the address
/// space: a boundary that wraps to 0 yields `end`.
#[inline]
pub fn addr_end(addr: u64, end: u64, level: Level) -> u64 {
    // An entry at level N maps 2^(12 + 9(N-1)) bytes: 4 KiB, 2 MiB, 1 GiB, 512 GiB.
    let size = 1u64 << (12 + 9 * (level.number() as u32 - 1));
    let boundary = (addr & !(size - 1)).wrapping_add(size);
    if boundary.wrapping_sub(1) < end.wrapping_sub(1) {
        boundary
    } else {
        end
    }
}

/// Walks [start, end) of the address space whose PML4 is `pml4` (Linux: walk_page_range,
/// without its VMA iteration: callers pass one VMA's range, or a range they know).
pub fn walk_page_range<W: MmWalkOps>(pml4: PhysAddr, start: u64, end: u64, ops: &mut W) -> ControlFlow<W::Break> {
    debug_assert!(start & 0xfff == 0 && end & 0xfff == 0, "unaligned walk [{start:#x}, {end:#x})");
    debug_assert!(end <= 1 << 47, "walk into the kernel half: [{start:#x}, {end:#x})");
    let mut addr = start;
    while addr < end {
        let next = addr_end(addr, end, Level::Pml4);
        let slot = Slot { pa: index_slot(pml4, addr, Level::Pml4), level: Level::Pml4 };
        let mut e = read(ops, slot);
        if !e.is_present() {
            match ops.pte_hole(addr, next, Level::Pml4, slot)? {
                Hole::Skip => {
                    addr = next;
                    continue;
                }
                Hole::Filled => e = read(ops, slot),
            }
        }
        if e.is_present() {
            walk_pud_range(e.addr(Level::Pml4, 52), addr, next, ops)?;
        }
        addr = next;
    }
    ControlFlow::Continue(())
}

/// Walks [start, end) of `vma` (Linux: walk_page_range's per-VMA step): a hugetlb VMA
/// goes huge page by huge page to `hugetlb_entry` (walk_hugetlb_range; a missing table
/// above a huge slot is a `pte_hole` of the whole huge page, which may fill it), any other
/// through `walk_page_range`.
pub fn walk_page_vma<W: MmWalkOps>(pml4: PhysAddr, vma: &super::Vma, start: u64, end: u64, ops: &mut W) -> ControlFlow<W::Break> {
    let Some(size) = super::hugetlb::vma_hsize(vma) else {
        return walk_page_range(pml4, start, end, ops);
    };
    let mut addr = start;
    while addr < end {
        let haddr = addr & size.mask();
        let next = (haddr + size.bytes()).min(end);
        loop {
            match hugetlb_slot(ops.mem(), pml4, haddr, size.level()) {
                Ok(slot) => {
                    let e = read(ops, slot);
                    ops.hugetlb_entry(e, slot, addr, next)?;
                }
                Err(hole) => {
                    if let Hole::Filled = ops.pte_hole(addr, next, hole.level, hole)? {
                        if hugetlb_slot(ops.mem(), pml4, haddr, size.level()).is_ok() {
                            continue;
                        }
                    }
                }
            }
            break;
        }
        addr = next;
    }
    ControlFlow::Continue(())
}

/// The slot at `level` over `va`, or the not-present entry above it (Linux: hugetlb_walk).
fn hugetlb_slot(mem: &PhysMem, pml4: PhysAddr, va: u64, level: Level) -> Result<Slot, Slot> {
    let mut table = pml4;
    let mut l = Level::Pml4;
    loop {
        let slot = Slot { pa: index_slot(table, va, l), level: l };
        if l == level {
            return Ok(slot);
        }
        let e = Entry::new(mem.read_u64(slot.pa));
        if !e.is_present() || e.is_leaf(l) {
            return Err(slot);
        }
        table = e.addr(l, 52);
        l = l.next_lower().unwrap();
    }
}

/// Linux: pmd_present, which is true for a PROT_NONE huge PMD too (P clear, PS and
/// _PAGE_PROTNONE set): such a PMD is a huge leaf for `pmd_entry`, not a hole.
#[inline(always)]
fn pmd_present(e: Entry) -> bool {
    use super::pgtable::linux::{_PAGE_PROTNONE, _PAGE_PSE};
    e.is_present() || (e.has(_PAGE_PSE) && e.has(_PAGE_PROTNONE))
}

#[inline(always)]
fn read<W: MmWalkOps>(ops: &W, slot: Slot) -> Entry {
    Entry::new(ops.mem().read_u64(slot.pa))
}

/// Linux: walk_pud_range. [addr, end) within one PDPT.
fn walk_pud_range<W: MmWalkOps>(pdpt: PhysAddr, mut addr: u64, end: u64, ops: &mut W) -> ControlFlow<W::Break> {
    while addr < end {
        let next = addr_end(addr, end, Level::Pdpt);
        let slot = Slot { pa: index_slot(pdpt, addr, Level::Pdpt), level: Level::Pdpt };
        loop {
            let e = read(ops, slot);
            if !e.is_present() {
                match ops.pte_hole(addr, next, Level::Pdpt, slot)? {
                    Hole::Skip => break,
                    // Read it again; a callback that claims a fill and leaves the slot empty
                    // gets the hole skipped rather than a loop.
                    Hole::Filled if read(ops, slot).is_present() => continue,
                    Hole::Filled => break,
                }
            }
            match ops.pud_entry(e, slot, addr, next)? {
                Action::Again => continue,
                Action::Continue => break,
                Action::Subtree if e.is_leaf(Level::Pdpt) => break,
                Action::Subtree => {
                    walk_pmd_range(e.addr(Level::Pdpt, 52), addr, next, ops)?;
                    break;
                }
            }
        }
        addr = next;
    }
    ControlFlow::Continue(())
}

/// Linux: walk_pmd_range. [addr, end) within one PD.
fn walk_pmd_range<W: MmWalkOps>(pd: PhysAddr, mut addr: u64, end: u64, ops: &mut W) -> ControlFlow<W::Break> {
    while addr < end {
        let next = addr_end(addr, end, Level::Pd);
        let slot = Slot { pa: index_slot(pd, addr, Level::Pd), level: Level::Pd };
        loop {
            let e = read(ops, slot);
            if !pmd_present(e) {
                match ops.pte_hole(addr, next, Level::Pd, slot)? {
                    Hole::Skip => break,
                    Hole::Filled if pmd_present(read(ops, slot)) => continue,
                    Hole::Filled => break,
                }
            }
            match ops.pmd_entry(e, slot, addr, next)? {
                Action::Again => continue,
                Action::Continue => break,
                Action::Subtree if e.is_leaf(Level::Pd) => break,
                Action::Subtree => {
                    walk_pte_range(e.addr(Level::Pd, 52), addr, next, ops)?;
                    break;
                }
            }
        }
        addr = next;
    }
    ControlFlow::Continue(())
}

/// Linux: walk_pte_range. [addr, end) within one page table: consecutive slots.
#[inline]
fn walk_pte_range<W: MmWalkOps>(pt: PhysAddr, mut addr: u64, end: u64, ops: &mut W) -> ControlFlow<W::Break> {
    let mut pa = index_slot(pt, addr, Level::Pt).as_u64();
    while addr < end {
        let slot = Slot { pa: PhysAddr::new(pa), level: Level::Pt };
        let pte = read(ops, slot);
        ops.pte_entry(pte, slot, addr)?;
        addr += 4096;
        pa += 8;
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::mm::pgtable::{self, linux::*};
    use crate::kernel::mm::Pages;
    use proptest::prelude::*;

    /// An address space in a small guest memory.
    struct Space {
        mem: PhysMem,
        pages: Pages,
        tables: Vec<PhysAddr>,
        pml4: PhysAddr,
    }

    impl Space {
        fn new() -> Self {
            let mut mem = PhysMem::new(16 << 20);
            let mut pages = Pages::new(&mut mem);
            let pml4 = pages.alloc_zeroed(&mut mem).unwrap();
            Self { mem, pages, tables: vec![pml4], pml4 }
        }
        /// Maps `va` (a marker value in the PTE: its own address, present).
        fn map(&mut self, va: u64) {
            let slot = pgtable::walk_alloc(&mut self.mem, &mut self.pages, &mut self.tables, self.pml4, va).unwrap();
            pgtable::set_entry(&mut self.mem, slot, va, Entry::new(va | _PAGE_PRESENT)).not_needed();
        }
    }

    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Call {
        Hole { addr: u64, next: u64, level: Level },
        Pud { addr: u64, next: u64 },
        Pmd { addr: u64, next: u64, huge: bool },
        Pte { addr: u64, raw: u64 },
    }

    /// Records every callback; optionally stops at a PTE address, or fills holes.
    struct Recorder<'a> {
        space: &'a mut Space,
        calls: Vec<Call>,
        stop_at: Option<u64>,
        fill: bool,
    }

    impl<'a> Recorder<'a> {
        fn new(space: &'a mut Space) -> Self {
            Self { space, calls: Vec::new(), stop_at: None, fill: false }
        }
    }

    impl MmWalkOps for Recorder<'_> {
        type Break = u64;
        fn mem(&self) -> &PhysMem {
            &self.space.mem
        }
        fn pud_entry(&mut self, _pud: Entry, _slot: Slot, addr: u64, next: u64) -> ControlFlow<u64, Action> {
            self.calls.push(Call::Pud { addr, next });
            ControlFlow::Continue(Action::Subtree)
        }
        fn pmd_entry(&mut self, pmd: Entry, _slot: Slot, addr: u64, next: u64) -> ControlFlow<u64, Action> {
            let huge = pmd.is_leaf(Level::Pd);
            self.calls.push(Call::Pmd { addr, next, huge });
            ControlFlow::Continue(if huge { Action::Continue } else { Action::Subtree })
        }
        fn pte_entry(&mut self, pte: Entry, slot: Slot, addr: u64) -> ControlFlow<u64> {
            assert_eq!(slot.level, Level::Pt);
            assert_eq!(pte.raw(), self.space.mem.read_u64(slot.pa), "the value handed over is the slot's");
            self.calls.push(Call::Pte { addr, raw: pte.raw() });
            match self.stop_at {
                Some(a) if a == addr => ControlFlow::Break(addr),
                _ => ControlFlow::Continue(()),
            }
        }
        fn pte_hole(&mut self, addr: u64, next: u64, level: Level, slot: Slot) -> ControlFlow<u64, Hole> {
            assert_eq!(slot.level, level);
            self.calls.push(Call::Hole { addr, next, level });
            if self.fill {
                let s = &mut *self.space;
                pgtable::table_alloc(&mut s.mem, &mut s.pages, &mut s.tables, slot, addr).unwrap();
                return ControlFlow::Continue(Hole::Filled);
            }
            ControlFlow::Continue(Hole::Skip)
        }
    }

    const G: u64 = 1 << 30;
    const M2: u64 = 1 << 21;
    const T512: u64 = 1 << 39;

    #[test]
    fn addr_end_is_the_next_boundary_or_end() {
        // (addr, end, level) -> next
        let table: &[(u64, u64, Level, u64)] = &[
            (0x1000, 0x7fff_ffff_f000, Level::Pml4, T512),
            (T512, 0x7fff_ffff_f000, Level::Pml4, 2 * T512),
            (0x1000, 0x3000, Level::Pml4, 0x3000),
            (0x1000, 0x7fff_ffff_f000, Level::Pdpt, G),
            (0x20_0000, 0x7fff_ffff_f000, Level::Pd, 0x40_0000),
            (0x20_1000, 0x7fff_ffff_f000, Level::Pd, 0x40_0000),
            (0x3f_f000, 0x40_0000, Level::Pd, 0x40_0000),
            // The top of the address space: the boundary wraps to 0, so end wins.
            (0xffff_ff80_0000_0000, 0xffff_ffff_ffff_f000, Level::Pml4, 0xffff_ffff_ffff_f000),
            (0xffff_ffff_ffe0_0000, 0, Level::Pd, 0),
        ];
        for &(addr, end, level, next) in table {
            assert_eq!(addr_end(addr, end, level), next, "addr_end({addr:#x}, {end:#x}, {level:?})");
        }
    }

    #[test]
    fn an_empty_space_is_one_hole_per_pml4_entry() {
        let mut s = Space::new();
        let pml4 = s.pml4;
        let mut r = Recorder::new(&mut s);
        assert_eq!(walk_page_range(pml4, 0x1000, 0x7fff_ffff_f000, &mut r), ControlFlow::Continue(()));
        assert_eq!(r.calls.len(), 256);
        assert_eq!(r.calls[0], Call::Hole { addr: 0x1000, next: T512, level: Level::Pml4 });
        assert_eq!(r.calls[255], Call::Hole { addr: 255 * T512, next: 0x7fff_ffff_f000, level: Level::Pml4 });
    }

    #[test]
    fn one_mapped_page_descends_once_and_skips_the_rest_by_level() {
        let mut s = Space::new();
        let va = G + 3 * M2 + 0x5000;
        s.map(va);
        let pml4 = s.pml4;
        let mut r = Recorder::new(&mut s);
        let (start, end) = (G + 3 * M2 - 0x2000, 3 * G);
        let _ = walk_page_range(pml4, start, end, &mut r);
        // The walk starts in the second GiB, whose PD has one page table: PD entry 2 is a
        // hole (its last 8 KiB are in the range), entry 3 the page table, entries 4..511
        // holes; then the third GiB has no PD at all. The present PML4 entry has no callback.
        let mut expect = vec![Call::Pud { addr: start, next: 2 * G }];
        expect.push(Call::Hole { addr: start, next: G + 3 * M2, level: Level::Pd });
        expect.push(Call::Pmd { addr: G + 3 * M2, next: G + 4 * M2, huge: false });
        for i in 0..512u64 {
            let a = G + 3 * M2 + i * 4096;
            expect.push(Call::Pte { addr: a, raw: if a == va { va | _PAGE_PRESENT } else { 0 } });
        }
        for i in 4..512u64 {
            expect.push(Call::Hole { addr: G + i * M2, next: G + (i + 1) * M2, level: Level::Pd });
        }
        expect.push(Call::Hole { addr: 2 * G, next: 3 * G, level: Level::Pdpt });
        assert_eq!(r.calls, expect);
    }

    #[test]
    fn a_range_inside_one_table_visits_exactly_its_ptes() {
        let mut s = Space::new();
        s.map(0x40_0000);
        let pml4 = s.pml4;
        let mut r = Recorder::new(&mut s);
        let _ = walk_page_range(pml4, 0x40_3000, 0x40_6000, &mut r);
        let ptes: Vec<u64> = r.calls.iter().filter_map(|c| if let Call::Pte { addr, .. } = c { Some(*addr) } else { None }).collect();
        assert_eq!(ptes, [0x40_3000, 0x40_4000, 0x40_5000]);
        // An empty range visits nothing.
        let mut r = Recorder::new(&mut s);
        let _ = walk_page_range(pml4, 0x40_3000, 0x40_3000, &mut r);
        assert!(r.calls.is_empty());
    }

    #[test]
    fn a_break_stops_the_walk_and_is_returned() {
        let mut s = Space::new();
        s.map(0x40_0000);
        s.map(0x80_0000);
        let pml4 = s.pml4;
        let mut r = Recorder::new(&mut s);
        r.stop_at = Some(0x40_2000);
        assert_eq!(walk_page_range(pml4, 0x40_0000, 0x100_0000, &mut r), ControlFlow::Break(0x40_2000));
        assert_eq!(r.calls.last(), Some(&Call::Pte { addr: 0x40_2000, raw: 0 }));
        assert!(!r.calls.iter().any(|c| matches!(c, Call::Pte { addr, .. } if *addr >= 0x80_0000)));
    }

    #[test]
    fn a_huge_pmd_is_seen_by_pmd_entry_and_not_descended() {
        let mut s = Space::new();
        s.map(0x40_0000);
        // Turn the PD entry of [6 MiB, 8 MiB) into a 2 MiB leaf by hand.
        let pdpt = Entry::new(s.mem.read_u64(index_slot(s.pml4, 0, Level::Pml4))).addr(Level::Pml4, 52);
        let pd = Entry::new(s.mem.read_u64(index_slot(pdpt, 0, Level::Pdpt))).addr(Level::Pdpt, 52);
        let slot = index_slot(pd, 0x60_0000, Level::Pd);
        s.mem.write_u64(slot, 0x6000_0000 | _PAGE_PRESENT | _PAGE_PSE);
        let pml4 = s.pml4;
        let mut r = Recorder::new(&mut s);
        let _ = walk_page_range(pml4, 0x40_0000, 0x80_0000, &mut r);
        assert!(r.calls.contains(&Call::Pmd { addr: 0x60_0000, next: 0x80_0000, huge: true }));
        assert!(!r.calls.iter().any(|c| matches!(c, Call::Pte { addr, .. } if *addr >= 0x60_0000)));
    }

    #[test]
    fn a_filled_hole_is_walked() {
        // The allocating mode's hook: pte_hole installs tables down to the PTEs.
        let mut s = Space::new();
        let pml4 = s.pml4;
        let before = s.tables.len();
        let mut r = Recorder::new(&mut s);
        r.fill = true;
        let _ = walk_page_range(pml4, 0x40_0000, 0x40_3000, &mut r);
        assert_eq!(
            r.calls,
            [
                Call::Hole { addr: 0x40_0000, next: 0x40_3000, level: Level::Pml4 },
                Call::Hole { addr: 0x40_0000, next: 0x40_3000, level: Level::Pdpt },
                Call::Pud { addr: 0x40_0000, next: 0x40_3000 },
                Call::Hole { addr: 0x40_0000, next: 0x40_3000, level: Level::Pd },
                Call::Pmd { addr: 0x40_0000, next: 0x40_3000, huge: false },
                Call::Pte { addr: 0x40_0000, raw: 0 },
                Call::Pte { addr: 0x40_1000, raw: 0 },
                Call::Pte { addr: 0x40_2000, raw: 0 },
            ]
        );
        assert_eq!(s.tables.len(), before + 3);
    }

    proptest! {
        /// Whatever is mapped, the calls tile [start, end) in address order: holes and
        /// skipped huge entries by their ranges, PTEs by their pages, each PTE exactly
        /// where a page table exists, and never a PTE call inside a hole.
        #[test]
        fn the_calls_tile_the_range(pages in proptest::collection::vec(0u64..((4 * G) >> 12), 0..12), lo in 0u64..((4 * G) >> 12), len in 0u64..((8 * G) >> 12)) {
            let mut s = Space::new();
            for p in &pages {
                s.map(p << 12);
            }
            let (start, end) = (lo << 12, ((lo + len) << 12).min(1 << 47));
            let pml4 = s.pml4;
            let mut r = Recorder::new(&mut s);
            prop_assert_eq!(walk_page_range(pml4, start, end, &mut r), ControlFlow::Continue(()));
            let mut cur = start;
            for c in &r.calls {
                match *c {
                    Call::Hole { addr, next, .. } => {
                        prop_assert_eq!(addr, cur);
                        prop_assert!(next > addr && next <= end);
                        cur = next;
                    }
                    Call::Pte { addr, raw } => {
                        prop_assert_eq!(addr, cur);
                        let mapped = pages.contains(&(addr >> 12));
                        prop_assert_eq!(raw, if mapped { addr | _PAGE_PRESENT } else { 0 });
                        cur = addr + 4096;
                    }
                    // Upper entries announce the range the calls below them cover.
                    Call::Pud { addr, next } | Call::Pmd { addr, next, .. } => {
                        prop_assert_eq!(addr, cur);
                        prop_assert!(next > addr && next <= end);
                    }
                }
            }
            prop_assert_eq!(cur, end.max(start));
            // Every mapped page in the range was seen.
            for p in &pages {
                let a = p << 12;
                if a >= start && a < end {
                    let seen = Call::Pte { addr: a, raw: a | _PAGE_PRESENT };
                    prop_assert!(r.calls.contains(&seen), "{:#x} not visited", a);
                }
            }
        }
    }
}
