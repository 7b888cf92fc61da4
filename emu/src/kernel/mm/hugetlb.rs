//! hugetlb (Linux: mm/hugetlb.c and fs/hugetlbfs/inode.c): the pools of 2 MiB and 1 GiB
//! pages, their reservations, the hugetlb fault, and the huge-PTE operations the range
//! walkers use (zap, change protection, copy at fork, pagemap, smaps) and userfaultfd's
//! fills.
//!
//! **The pool** ([`Hstate`], one per size, in `Pages::hugetlb`): `nr` pages taken from
//! the frame allocator, `free` of them unused, `resv` of the free ones promised to
//! mappings, `surplus` of `nr` to be given back as soon as they are freed (what lowering
//! nr_hugepages below the pages in use leaves). /proc/sys/vm/nr_hugepages and the sysfs
//! files write [`set_max_huge_pages`]; `--hugepages N` and `--hugepages-1g N` do it at
//! boot. Overcommit (nr_overcommit_hugepages) is 0, as on the reference host: no surplus
//! page is ever allocated at fault or mmap time.
//!
//! **Reservations**, as Linux keeps them (hugetlb_reserve_pages): a mapping without
//! MAP_NORESERVE reserves at mmap time the pages it may fault, and fails with ENOMEM when
//! the free pages not yet reserved cannot cover them (hugetlb_acct_memory). A shared
//! mapping reserves in its file (the inode's reservation map, [`HugetlbInode`]): each
//! file page not yet in the page cache nor already reserved; the page's first fault uses
//! the reservation, and a hole punch, a truncation or the file's death gives back the
//! unused ones. A private mapping reserves for its VMA (the owner's map, [`ResvMap`]):
//! every page of the range; a fault uses the page's reservation once (a page faulted
//! again after MADV_DONTNEED does not get one back), and the unmap gives back the unused
//! ones (hugetlb_vm_op_close). A fork's child owns no reservation. An allocation without
//! a reservation may only take a free page nobody reserved; with none left, the fault is
//! SIGBUS.
//!
//! **Entries.** A hugetlb page is mapped by one huge "PTE", physically the PMD (2 MiB,
//! PS set) or PDPT entry (1 GiB), in the hardware format: Linux's bits on it are those
//! of a huge PMD (uffd-wp is bit 10). A non-present slot holds nothing, or a uffd-wp PTE
//! marker — the same encoding as at the PTE level — which keeps the protection of an
//! empty or zapped huge page (hugetlb always uses markers). The folio's head frame keeps
//! the refcount and the map count (hugetlb pages are not in AnonPages nor Mapped).

use super::filemap::AddressSpace;
use super::memory::{FaultFlags, FaultOutcome, UffdReason};
use super::mmu_gather::MmuGather;
use super::page::{PageMeta, Pages};
use super::pgtable::{self, linux::*, Slot};
use super::shmem::Shmem;
use super::swapops::{make_pte_marker, softleaf_from_pte, PteMarker, SoftLeaf};
use super::vma::{Backing, Vma, VmFlags};
use super::Mm;
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use mmu::{Entry, Level, PageSize, PhysAddr, PhysMem};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

/// A huge page size (Linux: struct hstate, of which x86-64 has these two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HugeSize {
    /// 2 MiB: mapped by a PMD.
    M2,
    /// 1 GiB: mapped by a PDPT entry (PUD).
    G1,
}

impl HugeSize {
    pub const ALL: [HugeSize; 2] = [HugeSize::M2, HugeSize::G1];

    pub const fn shift(self) -> u32 {
        match self {
            HugeSize::M2 => 21,
            HugeSize::G1 => 30,
        }
    }
    pub const fn bytes(self) -> u64 {
        1 << self.shift()
    }
    pub const fn mask(self) -> u64 {
        !(self.bytes() - 1)
    }
    /// 4 KiB pages in one.
    pub const fn nr_pages(self) -> u64 {
        self.bytes() >> 12
    }
    pub const fn kb(self) -> u64 {
        self.bytes() >> 10
    }
    /// The folio order (`PageMeta::order`).
    pub const fn order(self) -> u8 {
        (self.shift() - 12) as u8
    }
    /// The level of the slot that maps it.
    pub const fn level(self) -> Level {
        match self {
            HugeSize::M2 => Level::Pd,
            HugeSize::G1 => Level::Pdpt,
        }
    }
    pub const fn page_size(self) -> PageSize {
        match self {
            HugeSize::M2 => PageSize::Size2M,
            HugeSize::G1 => PageSize::Size1G,
        }
    }
    pub const fn idx(self) -> usize {
        match self {
            HugeSize::M2 => 0,
            HugeSize::G1 => 1,
        }
    }
    /// The size MAP_HUGETLB / MFD_HUGETLB flags name: bits 26..31 hold log2 of the size
    /// (MAP_HUGE_SHIFT), 0 for the default (2 MiB). None for a size x86-64 has not:
    /// mmap gives EINVAL (Linux: hstate_sizelog returning NULL).
    pub fn from_flags(flags: u32) -> Option<HugeSize> {
        match (flags >> 26) & 0x3f {
            0 | 21 => Some(HugeSize::M2),
            30 => Some(HugeSize::G1),
            _ => None,
        }
    }
}

/// One pool (Linux: struct hstate's counters). Invariant: `resv <= free.len()`.
#[derive(Debug, Default)]
pub struct Hstate {
    /// Pages the pool holds, surplus included (Linux: nr_huge_pages).
    pub nr: u64,
    /// The free pages, lowest first out (Linux: hugepage_freelists).
    pub free: BTreeSet<u64>,
    /// Free pages promised to mappings (Linux: resv_huge_pages).
    pub resv: u64,
    /// Pages to give back to the allocator when freed (Linux: surplus_huge_pages).
    pub surplus: u64,
}

impl Hstate {
    pub fn free_count(&self) -> u64 {
        self.free.len() as u64
    }
    /// What nr_hugepages reads (Linux: persistent_huge_pages).
    pub fn persistent(&self) -> u64 {
        self.nr - self.surplus
    }
}

/// Both pools, shared between `Pages` and the hugetlb files whose death gives their
/// reservations back.
#[derive(Debug, Default)]
pub struct HugetlbPool {
    pub hstates: [Hstate; 2],
}

pub type Pool = Rc<RefCell<HugetlbPool>>;

impl HugetlbPool {
    pub fn h(&self, size: HugeSize) -> &Hstate {
        &self.hstates[size.idx()]
    }
    pub fn h_mut(&mut self, size: HugeSize) -> &mut Hstate {
        &mut self.hstates[size.idx()]
    }
}

/// Linux: set_max_huge_pages. Grows the pool to `count` pages (as far as aligned free
/// memory allows) or shrinks it: free pages not needed by reservations go back, and pages
/// in use beyond `count` become surplus.
pub fn set_max_huge_pages(pages: &mut Pages, size: HugeSize, count: u64) {
    let pool = pages.hugetlb.clone();
    {
        // Surplus pages become persistent first (adjust_pool_surplus(-1)).
        let mut p = pool.borrow_mut();
        let h = p.h_mut(size);
        while h.surplus > 0 && count > h.persistent() {
            h.surplus -= 1;
        }
    }
    while count > pool.borrow().h(size).persistent() {
        if !pages.deferred_put.borrow().is_empty() {
            pages.drain_deferred();
        }
        let Some(pa) = pages.alloc.alloc(size.page_size()) else { break };
        pages.allocated += size.nr_pages();
        let mut p = pool.borrow_mut();
        let h = p.h_mut(size);
        h.nr += 1;
        h.free.insert(pa.as_u64());
    }
    let mut p = pool.borrow_mut();
    let h = p.h_mut(size);
    // Free pages go back, down to what reservations and the pages in use need
    // (try_to_free_low, remove_pool_hugetlb_folio: the highest first) ...
    let min_count = count.max(h.resv + h.nr - h.free_count());
    while min_count < h.persistent() {
        let Some(pa) = h.free.pop_last() else { break };
        h.nr -= 1;
        pages.alloc.free(PhysAddr::new(pa), size.page_size());
        pages.allocated -= size.nr_pages();
    }
    // ... and pages in use beyond `count` become surplus (adjust_pool_surplus(+1)).
    while count < h.persistent() && h.surplus < h.nr {
        h.surplus += 1;
    }
}

/// Linux: hugetlb_acct_memory (gather_surplus_pages without overcommit). Reserves `delta`
/// more free pages, or ENOMEM when the free pages nobody reserved are fewer.
fn hugetlb_acct_memory(pool: &Pool, size: HugeSize, delta: u64) -> KResult<()> {
    let mut p = pool.borrow_mut();
    let h = p.h_mut(size);
    if h.resv + delta > h.free_count() {
        return Err(Errno::ENOMEM);
    }
    h.resv += delta;
    Ok(())
}

/// Gives back `n` reservations.
fn hugetlb_unacct(pool: &Pool, size: HugeSize, n: u64) {
    let mut p = pool.borrow_mut();
    let h = p.h_mut(size);
    debug_assert!(h.resv >= n, "hugetlb reservations below zero");
    h.resv = h.resv.saturating_sub(n);
}

/// Linux: alloc_hugetlb_folio → dequeue_hugetlb_folio_vma. A free page of the pool, with
/// refcount 1, zeroed unless `zero` is false (the caller overwrites it). `reserved`: the
/// allocation uses a reservation made for it; otherwise it may only take a page nobody
/// reserved. None when there is none: the fault is SIGBUS.
pub fn alloc_hugetlb_folio(pages: &mut Pages, mem: &mut PhysMem, size: HugeSize, reserved: bool, zero: bool) -> Option<PhysAddr> {
    if !pages.deferred_put.borrow().is_empty() {
        pages.drain_deferred();
    }
    let pa = {
        let mut p = pages.hugetlb.borrow_mut();
        let h = p.h_mut(size);
        if !reserved && h.free_count() <= h.resv {
            return None;
        }
        let pa = h.free.pop_first()?;
        if reserved {
            h.resv = h.resv.saturating_sub(1);
        }
        PhysAddr::new(pa)
    };
    pages.init_hugetlb_folio(pa, size);
    if zero {
        mem.fill(pa, size.bytes(), 0);
    }
    Some(pa)
}

/// Linux: free_huge_folio, when the last reference to a hugetlb folio goes: back to the
/// free list, or to the allocator for a surplus page. Called by `Pages::put`.
pub fn free_huge_folio(pages: &mut Pages, head: PhysAddr, size: HugeSize, restore_reserve: bool) {
    let pool = pages.hugetlb.clone();
    let mut p = pool.borrow_mut();
    let h = p.h_mut(size);
    if restore_reserve {
        h.resv += 1;
    }
    if h.surplus > 0 {
        h.surplus -= 1;
        h.nr -= 1;
        pages.alloc.free(head, size.page_size());
        pages.allocated -= size.nr_pages();
    } else {
        h.free.insert(head.as_u64());
    }
}

/// A private mapping's reservation map (Linux: the resv_map of a VMA with
/// HPAGE_RESV_OWNER): the huge-page indexes whose reservation a fault has used. Shared by
/// the pieces of a split VMA; a fork's child has none.
#[derive(Clone, Default)]
pub struct ResvMap(Rc<RefCell<BTreeSet<u64>>>);

impl PartialEq for ResvMap {
    fn eq(&self, o: &Self) -> bool {
        Rc::ptr_eq(&self.0, &o.0)
    }
}
impl Eq for ResvMap {}
impl std::fmt::Debug for ResvMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResvMap({} used)", self.0.borrow().len())
    }
}

/// The hugetlbfs side of a file (Linux: struct hugetlbfs_inode_info with the inode's
/// resv_map): its page size and the file pages reserved and not yet allocated.
pub struct HugetlbInode {
    pub size: HugeSize,
    /// Huge-page indexes with an unused reservation.
    pending: BTreeSet<u64>,
    pool: Pool,
}

impl HugetlbInode {
    pub fn new(size: HugeSize, pool: &Pool) -> Self {
        Self { size, pending: BTreeSet::new(), pool: pool.clone() }
    }
    /// Linux: hugetlb_unreserve_pages for a hole punch or truncation of [first, last)
    /// (huge-page indexes): their unused reservations go back.
    pub fn unreserve(&mut self, first: u64, last: u64) {
        let gone: Vec<u64> = self.pending.range(first..last).copied().collect();
        for i in &gone {
            self.pending.remove(i);
        }
        hugetlb_unacct(&self.pool, self.size, gone.len() as u64);
    }
}

impl Drop for HugetlbInode {
    fn drop(&mut self) {
        // hugetlbfs_evict_inode → resv_map_release.
        hugetlb_unacct(&self.pool, self.size, self.pending.len() as u64);
    }
}

impl std::fmt::Debug for HugetlbInode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HugetlbInode({:?}, {} reserved)", self.size, self.pending.len())
    }
}

/// An empty page cache for a hugetlb file: indexed by huge page, not counted in Cached
/// or Shmem.
pub fn hugetlb_address_space(pages: &Pages) -> AddressSpace {
    AddressSpace::new_uncounted(pages)
}

/// The huge-page size of a hugetlb VMA (Linux: hstate_vma), None for any other.
pub fn vma_hsize(vma: &Vma) -> Option<HugeSize> {
    match &vma.backing {
        Backing::Shmem { obj, .. } => obj.hugetlb_size(),
        _ => None,
    }
}

/// The huge-page index in the file of the huge page at `haddr` (Linux:
/// vma_hugecache_offset).
fn hugecache_offset(vma: &Vma, size: HugeSize, haddr: u64) -> u64 {
    vma.object_offset(haddr) >> size.shift()
}

/// Linux: hugetlb_reserve_pages, at mmap of [start, end) at file offset `offset`: see
/// the module doc. Returns the private mapping's reservation map (None: shared, or
/// MAP_NORESERVE), or ENOMEM.
pub fn hugetlb_reserve_pages(hw: &Hw, obj: &Shmem, offset: u64, len: u64, flags: VmFlags) -> KResult<Option<ResvMap>> {
    let size = obj.hugetlb_size().expect("a hugetlb file");
    if flags.has(VmFlags::NORESERVE) {
        return Ok(None);
    }
    let (from, to) = (offset >> size.shift(), (offset + len) >> size.shift());
    let pool = &hw.pages.hugetlb;
    if !flags.has(VmFlags::MAYSHARE) {
        hugetlb_acct_memory(pool, size, to - from)?;
        return Ok(Some(ResvMap::default()));
    }
    obj.with_hugetlb(|o, inode| {
        let chg: Vec<u64> = (from..to).filter(|i| o.get(*i).is_none() && !inode.pending.contains(i)).collect();
        hugetlb_acct_memory(pool, size, chg.len() as u64)?;
        inode.pending.extend(chg);
        Ok(None)
    })
}

/// Linux: hugetlb_vm_op_close. A private mapping's owner gives back the reservations of
/// [vma.start, vma.end) that no fault used.
pub fn hugetlb_vm_op_close(hw: &Hw, vma: &Vma) {
    let (Some(size), Some(map)) = (vma_hsize(vma), vma.hugetlb_resv.as_ref()) else { return };
    let (from, to) = (hugecache_offset(vma, size, vma.start), hugecache_offset(vma, size, vma.end));
    let used = map.0.borrow().range(from..to).count() as u64;
    hugetlb_unacct(&hw.pages.hugetlb, size, (to - from) - used);
}

/// Whether a reserved allocation for the huge page `idx` of `vma` is due (Linux:
/// vma_needs_reservation + vma_commit_reservation): a shared mapping uses the file's
/// pending reservation, a private owner its own once. Consumes it.
fn consume_reservation(vma: &Vma, obj: &Shmem, idx: u64) -> bool {
    if vma.flags.has(VmFlags::MAYSHARE) {
        return obj.with_hugetlb(|_, inode| inode.pending.remove(&idx));
    }
    match &vma.hugetlb_resv {
        Some(map) => map.0.borrow_mut().insert(idx),
        None => false,
    }
}

/// The slot mapping the huge page at `haddr`, if the tables down to its level exist
/// (Linux: hugetlb_walk).
pub fn hugetlb_walk(mem: &PhysMem, pml4: PhysAddr, haddr: u64, size: HugeSize) -> Option<Slot> {
    let mut table = pml4;
    let mut level = Level::Pml4;
    loop {
        let slot = pgtable::index_slot(table, haddr, level);
        if level == size.level() {
            return Some(Slot { pa: slot, level });
        }
        let e = Entry::new(mem.read_u64(slot));
        if !e.is_present() || e.is_leaf(level) {
            return None;
        }
        table = e.addr(level, 52);
        level = level.next_lower().unwrap();
    }
}

/// The slot for the huge page at `haddr`, allocating the tables above it (Linux:
/// huge_pte_alloc). None when memory for a table is exhausted.
pub fn huge_pte_alloc(mem: &mut PhysMem, pages: &mut Pages, tables: &mut Vec<PhysAddr>, pml4: PhysAddr, haddr: u64, size: HugeSize) -> Option<Slot> {
    let mut table = pml4;
    let mut level = Level::Pml4;
    loop {
        let slot = Slot { pa: pgtable::index_slot(table, haddr, level), level };
        if level == size.level() {
            return Some(slot);
        }
        let e = pgtable::get_entry(mem, slot);
        table = if e.is_present() { e.addr(level, 52) } else { pgtable::table_alloc(mem, pages, tables, slot, haddr)? };
        level = level.next_lower().unwrap();
    }
}

/// The frame a present huge PTE maps.
pub fn huge_pte_pfn(e: Entry, size: HugeSize) -> PhysAddr {
    e.addr(size.level(), 52)
}

/// Linux: make_huge_pte. A huge PTE for `head` in `vma`: writable and dirty when
/// `try_mkwrite` and the VMA is writable, else read-only; young.
fn make_huge_pte(vma: &Vma, head: PhysAddr, size: HugeSize, try_mkwrite: bool) -> Entry {
    let base = pgtable::vm_page_prot(vma.readable() || vma.writable(), false, vma.executable(), vma.shared());
    let mut e = Entry::new(base | _PAGE_PSE | _PAGE_ACCESSED).with_addr(head, size.level());
    if try_mkwrite && vma.writable() {
        e = e.with(_PAGE_RW | _PAGE_DIRTY);
    }
    e
}

/// Linux: huge_pte_mkuffd_wp: uffd-wp, and never writable with it.
fn huge_pte_mkuffd_wp(e: Entry) -> Entry {
    e.with(_PAGE_UFFD_WP).without(_PAGE_RW)
}

/// Installs `e` in the empty (none or marker) `slot` and flushes nothing: nothing can
/// be cached for a non-present entry.
fn set_huge_pte_new(mem: &mut PhysMem, slot: Slot, haddr: u64, e: Entry) {
    pgtable::set_entry(mem, slot, haddr, e).not_needed();
}

/// Replaces the present huge PTE in `slot` and flushes it from every vCPU running `cr3`.
fn set_huge_pte_flush(hw: &mut Hw, cr3: u64, slot: Slot, haddr: u64, e: Entry) {
    let f = pgtable::set_entry(&mut hw.mem, slot, haddr, e);
    hw.flush(f, cr3);
}

/// Linux: hugetlb_fault, for `address` in the hugetlb VMA `vma` (access checked). A write
/// to a uffd-wp'd huge PTE asks the monitor first; a none slot or a marker goes to
/// `hugetlb_no_page`; a write to a read-only one to `hugetlb_wp`; anything else was
/// spurious.
pub fn hugetlb_fault(mm: &mut Mm, hw: &mut Hw, vma: &Vma, address: u64, flags: FaultFlags) -> FaultOutcome {
    let size = vma_hsize(vma).expect("a hugetlb VMA");
    let haddr = address & size.mask();
    let Some(slot) = huge_pte_alloc(&mut hw.mem, &mut hw.pages, &mut mm.table_frames, mm.pml4, haddr, size) else {
        return FaultOutcome::Oom;
    };
    let e = pgtable::get_entry(&hw.mem, slot);
    let write = flags.contains(FaultFlags::WRITE);
    let r = match softleaf_from_pte(e) {
        SoftLeaf::None => hugetlb_no_page(mm, hw, vma, size, slot, haddr, flags, false),
        SoftLeaf::Marker(m) if m.contains(PteMarker::POISONED) => FaultOutcome::HwPoison,
        SoftLeaf::Marker(m) if m.contains(PteMarker::UFFD_WP) => hugetlb_no_page(mm, hw, vma, size, slot, haddr, flags, true),
        SoftLeaf::Marker(_) => FaultOutcome::Bus,
        SoftLeaf::ProtNone | SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } => FaultOutcome::Bus,
        SoftLeaf::Present if write && !e.is_writable() => {
            let mut e = e;
            if vma.flags.has(VmFlags::UFFD_WP) && e.has(_PAGE_UFFD_WP) {
                if !super::userfaultfd::userfaultfd_wp_async(vma) {
                    tracing::trace!(target: "pagelab::fault", addr = format_args!("{address:#x}"), decision = "hugetlb_uffd_wp");
                    return FaultOutcome::Userfault(UffdReason::Wp);
                }
                // WP_ASYNC: the bit goes in place (still read-only), then the write fault.
                e = e.without(_PAGE_UFFD_WP);
                pgtable::set_entry(&mut hw.mem, slot, haddr, e).not_needed();
            }
            hugetlb_wp(mm, hw, vma, size, slot, haddr, e)
        }
        SoftLeaf::Present => {
            // Spurious: a stale, stricter TLB entry.
            hw.vcpus[hw.cur].tlb.flush_range(haddr, haddr + size.bytes());
            FaultOutcome::Handled
        }
    };
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{address:#x}"), hugetlb = size.kb(), outcome = ?r);
    r
}

/// Linux: hugetlb_no_page. A shared mapping maps the file's page, allocating it into the
/// page cache (MISSING first if registered; MINOR when the page is there); a private one
/// maps the file's page read-only if the cache has it (MINOR first), else a new private
/// page (MISSING first). A uffd-wp marker (`marker`) leaves the new entry wp'd. A private
/// write goes on to `hugetlb_wp` at once. No page for it: SIGBUS.
#[allow(clippy::too_many_arguments)]
fn hugetlb_no_page(mm: &mut Mm, hw: &mut Hw, vma: &Vma, size: HugeSize, slot: Slot, haddr: u64, flags: FaultFlags, marker: bool) -> FaultOutcome {
    let Backing::Shmem { obj, .. } = &vma.backing else { unreachable!("a hugetlb VMA maps a file") };
    let idx = hugecache_offset(vma, size, haddr);
    let write = flags.contains(FaultFlags::WRITE);
    if vma.object_offset(haddr) >= obj.size() {
        return FaultOutcome::Bus;
    }
    if vma.hugetlb_unmapped {
        // "We are forced to kill the process in the event the original mapper has
        // unmapped pages from the child due to a failed COW/unsharing."
        return FaultOutcome::Bus;
    }
    let cached = obj.cache_get(idx);
    let shared = vma.flags.has(VmFlags::MAYSHARE);
    let page = match cached {
        Some(p) => {
            if vma.flags.has(VmFlags::UFFD_MINOR) {
                return FaultOutcome::Userfault(UffdReason::Minor);
            }
            hw.pages.get(p);
            p
        }
        None => {
            if vma.flags.has(VmFlags::UFFD_MISSING) {
                return FaultOutcome::Userfault(UffdReason::Missing);
            }
            let reserved = consume_reservation(vma, obj, idx);
            let Some(p) = alloc_hugetlb_folio(&mut hw.pages, &mut hw.mem, size, reserved, true) else {
                if reserved {
                    // Cannot happen (a reservation is a free page), but keep the books.
                    give_back_reservation(vma, obj, idx, &hw.pages.hugetlb, size);
                }
                return FaultOutcome::Bus;
            };
            add_new_folio(mm, hw, vma, obj, idx, p);
            p
        }
    };
    hw.pages.meta_mut(page).mapcount += 1;
    let mut e = make_huge_pte(vma, page, size, shared);
    if marker {
        e = huge_pte_mkuffd_wp(e);
    }
    set_huge_pte_new(&mut hw.mem, slot, haddr, e);
    if write && !shared {
        // "Optimization, do the COW without a second fault": a new private page is reused,
        // a file page copied.
        return hugetlb_wp(mm, hw, vma, size, slot, haddr, e);
    }
    FaultOutcome::Handled
}

/// A new page for the huge page `idx` of `vma`: a shared mapping adds it to the file's
/// page cache (hugetlb_add_to_page_cache, the cache taking a reference of its own), a
/// private one makes it the process's own anonymous page (hugetlb_add_new_anon_rmap).
fn add_new_folio(mm: &mut Mm, hw: &mut Hw, vma: &Vma, obj: &Shmem, idx: u64, p: PhysAddr) {
    if vma.flags.has(VmFlags::MAYSHARE) {
        hw.pages.meta_mut(p).file = true;
        hw.pages.get(p);
        obj.cache_add(idx, p);
    } else {
        hw.pages.meta_mut(p).anon_exclusive = true;
        mm.anon_vma_prepare(vma.start);
    }
}

fn give_back_reservation(vma: &Vma, obj: &Shmem, idx: u64, pool: &Pool, size: HugeSize) {
    if vma.flags.has(VmFlags::MAYSHARE) {
        obj.with_hugetlb(|_, inode| inode.pending.insert(idx));
    } else if let Some(m) = &vma.hugetlb_resv {
        m.0.borrow_mut().remove(&idx);
    }
    let _ = (pool, size);
}

/// Linux: hugetlb_wp. A write to a read-only huge PTE: a shared mapping makes it
/// writable; a uffd-wp'd one is left for the monitor (never COW a protected page); a
/// private page this process alone maps is reused; anything else is copied to a new
/// page (without a reservation, unless it is the owner's first write over a file page).
#[allow(clippy::too_many_arguments)]
fn hugetlb_wp(mm: &mut Mm, hw: &mut Hw, vma: &Vma, size: HugeSize, slot: Slot, haddr: u64, e: Entry) -> FaultOutcome {
    let cr3 = mm.pml4.as_u64();
    if vma.flags.has(VmFlags::MAYSHARE) {
        set_huge_pte_flush(hw, cr3, slot, haddr, e.with(_PAGE_RW | _PAGE_DIRTY));
        return FaultOutcome::Handled;
    }
    if e.has(_PAGE_UFFD_WP) {
        return FaultOutcome::Handled;
    }
    let old = huge_pte_pfn(e, size);
    let m = *hw.pages.meta(old);
    if !m.file && (m.anon_exclusive || m.mapcount == 1) {
        hw.pages.meta_mut(old).anon_exclusive = true;
        set_huge_pte_flush(hw, cr3, slot, haddr, e.with(_PAGE_RW | _PAGE_DIRTY));
        return FaultOutcome::Handled;
    }
    let Backing::Shmem { obj, .. } = &vma.backing else { unreachable!() };
    let idx = hugecache_offset(vma, size, haddr);
    // outside_reserve: the owner copying a page of its own (after fork) has used its
    // reservation already; over the page-cache page it uses it now.
    let reserved = m.file && vma.hugetlb_resv.as_ref().is_some_and(|r| r.0.borrow_mut().insert(idx));
    let Some(new) = alloc_hugetlb_folio(&mut hw.pages, &mut hw.mem, size, reserved, false) else {
        if reserved {
            give_back_reservation(vma, obj, idx, &hw.pages.hugetlb, size);
        }
        // outside_reserve: the owner takes its page back from the children.
        if vma.hugetlb_resv.is_some() && !m.file {
            return FaultOutcome::HugetlbUnmapRefPrivate { obj: obj.id(), offset: vma.object_offset(haddr), head: old };
        }
        return FaultOutcome::Bus;
    };
    hw.mem.copy_within(old, new, size.bytes());
    {
        let nm = hw.pages.meta_mut(new);
        nm.anon_exclusive = true;
        nm.mapcount = 1;
    }
    mm.anon_vma_prepare(vma.start);
    let ne = make_huge_pte(vma, new, size, true);
    set_huge_pte_flush(hw, cr3, slot, haddr, ne);
    let om = hw.pages.meta_mut(old);
    om.mapcount = om.mapcount.saturating_sub(1);
    hw.pages.put(old);
    FaultOutcome::Handled
}

/// Linux: __unmap_hugepage_range for one huge PTE (a walker's hugetlb_entry): a present
/// page is unmapped (its reference dropped after the flush), leaving a uffd-wp marker
/// when it was wp'd and the zap keeps markers; a marker stays unless `drop_markers`.
///
/// A private page of the owner of the mapping's reservations gets its reservation back
/// when it is freed (no surplus pages: "otherwise the backing page could be stolen"), and
/// the page may use it again at its next fault.
#[allow(clippy::too_many_arguments)]
pub fn zap_huge_pte(hw: &mut Hw, tlb: &mut MmuGather, vma: &Vma, slot: Slot, haddr: u64, e: Entry, size: HugeSize, drop_markers: bool) {
    match softleaf_from_pte(e) {
        SoftLeaf::None => {}
        SoftLeaf::Marker(m) => {
            if drop_markers || !m.contains(PteMarker::UFFD_WP) {
                pgtable::set_entry(&mut hw.mem, slot, haddr, Entry::new(0)).not_needed();
            }
        }
        SoftLeaf::Present | SoftLeaf::ProtNone => {
            let f = pgtable::set_entry(&mut hw.mem, slot, haddr, Entry::new(0));
            if e.is_present() {
                tlb.flush_pte(f);
            } else {
                f.not_needed();
            }
            let head = huge_pte_pfn(e, size);
            if e.is_dirty() && hw.pages.meta(head).file {
                hw.pages.mark_dirty(head);
            }
            let no_surplus = hw.pages.hugetlb.borrow().h(size).surplus == 0;
            if let (Some(map), false, true) = (&vma.hugetlb_resv, hw.pages.meta(head).file, no_surplus) {
                if !vma.flags.has(VmFlags::MAYSHARE) {
                    hw.pages.meta_mut(head).restore_reserve = true;
                    map.0.borrow_mut().remove(&hugecache_offset(vma, size, haddr));
                }
            }
            let m = hw.pages.meta_mut(head);
            m.mapcount = m.mapcount.saturating_sub(1);
            tlb.remove_page(head);
            if e.has(_PAGE_UFFD_WP) && !drop_markers {
                pgtable::set_entry(&mut hw.mem, slot, haddr, make_pte_marker(PteMarker::UFFD_WP)).not_needed();
            }
        }
        SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } => {
            pgtable::set_entry(&mut hw.mem, slot, haddr, Entry::new(0)).not_needed();
        }
    }
}

/// Linux: hugetlb_change_protection for one huge PTE: the VMA's protection `prot`
/// (vm_page_prot; PROT_NONE when 0) keeping the frame and the _PAGE_CHG_MASK bits, then
/// uffd-wp set (and R/W cleared) or cleared; a none slot gets a uffd-wp marker when
/// protecting, a uffd-wp marker goes when un-protecting. hugetlb has no writable upgrade.
/// Returns whether the entry changed and the flush it needs.
pub fn change_huge_pte(mem: &mut PhysMem, slot: Slot, haddr: u64, old: Entry, prot: u64, uffd_wp: bool, uffd_wp_resolve: bool) -> Option<mmu::Flush> {
    let new = match softleaf_from_pte(old) {
        SoftLeaf::None if uffd_wp => make_pte_marker(PteMarker::UFFD_WP),
        SoftLeaf::None => return None,
        SoftLeaf::Marker(m) if m.contains(PteMarker::UFFD_WP) && uffd_wp_resolve => Entry::new(0),
        SoftLeaf::Marker(_) | SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } => return None,
        SoftLeaf::Present | SoftLeaf::ProtNone => super::mprotect::modify_uffd(old, prot, uffd_wp, uffd_wp_resolve),
    };
    if new == old {
        return None;
    }
    let f = pgtable::set_entry(mem, slot, haddr, new);
    if old.is_present() {
        Some(f)
    } else {
        f.not_needed();
        None
    }
}

/// Linux: copy_hugetlb_page_range for one huge PTE of the parent (`e` in `src_slot`):
/// the child's entry (none to leave it empty). A private (COW) mapping write-protects
/// both and shares the page, which stops being exclusive; a shared one copies the entry.
/// The child keeps uffd-wp only when its VMA is registered WP (EVENT_FORK); a poison
/// marker is always copied (measured: the child of a private mapping gets SIGBUS).
#[allow(clippy::too_many_arguments)]
pub fn copy_huge_pte(hw: &mut Hw, tlb: &mut MmuGather, src_slot: Slot, haddr: u64, e: Entry, size: HugeSize, cow: bool, dst_wp: bool) -> Option<Entry> {
    match softleaf_from_pte(e) {
        SoftLeaf::None => None,
        SoftLeaf::Marker(m) => super::swap::copy_pte_marker(m, dst_wp),
        SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } => None,
        SoftLeaf::Present | SoftLeaf::ProtNone => {
            let head = huge_pte_pfn(e, size);
            hw.pages.get(head);
            let m = hw.pages.meta_mut(head);
            m.mapcount += 1;
            let mut child = e;
            if cow {
                m.anon_exclusive = false;
                if e.is_present() && e.is_writable() {
                    // huge_ptep_set_wrprotect in the parent.
                    let f = pgtable::set_entry(&mut hw.mem, src_slot, haddr, e.without(_PAGE_RW));
                    tlb.flush_pte(f);
                }
                child = child.without(_PAGE_RW);
            }
            if !dst_wp {
                child = child.without(_PAGE_UFFD_WP);
            }
            Some(child)
        }
    }
}

/// pagemap's view of one huge PTE (Linux: pagemap_hugetlb_range): per 4 KiB page, the
/// present bit with the frame, file for a page-cache page, exclusive when mapped once,
/// uffd-wp; a uffd-wp marker is uffd-wp alone (no swap bit).
pub fn pagemap_huge_pte(pages: &Pages, e: Entry, size: HugeSize) -> HugePagemap {
    match softleaf_from_pte(e) {
        SoftLeaf::Present => {
            let head = huge_pte_pfn(e, size);
            let m = pages.meta(head);
            HugePagemap::Present { head, file: m.file, exclusive: m.mapcount == 1, uffd_wp: e.has(_PAGE_UFFD_WP) }
        }
        SoftLeaf::Marker(m) if m.contains(PteMarker::UFFD_WP) => HugePagemap::UffdWp,
        _ => HugePagemap::None,
    }
}

/// What `pagemap_huge_pte` found.
#[derive(Clone, Copy, Debug)]
pub enum HugePagemap {
    None,
    UffdWp,
    Present { head: PhysAddr, file: bool, exclusive: bool, uffd_wp: bool },
}

/// smaps of a hugetlb VMA (Linux: smaps_hugetlb_range): bytes mapped privately (map
/// count 1) and shared.
pub fn smaps_huge_pte(pages: &Pages, e: Entry, size: HugeSize) -> (u64, u64) {
    if !e.is_present() {
        return (0, 0);
    }
    let m = pages.meta(huge_pte_pfn(e, size));
    if m.mapcount >= 2 {
        (0, size.bytes())
    } else {
        (size.bytes(), 0)
    }
}

/// Linux: hugetlb_mfill_atomic_pte, one huge page of UFFDIO_COPY or UFFDIO_CONTINUE at
/// `haddr`. COPY: the slot must be none or a marker (EEXIST), and for a shared mapping
/// the file page absent (EEXIST); a new page gets the data (`fill` writes it) and is
/// mapped writable unless `wp`. CONTINUE: the file page must be cached (EFAULT) and the
/// slot empty (EEXIST); it is mapped writable only in a shared mapping. No page: ENOMEM.
pub fn hugetlb_mfill_atomic_pte(mm: &mut Mm, hw: &mut Hw, vma: &Vma, haddr: u64, is_continue: bool, wp: bool, fill: &mut dyn FnMut(&mut Hw, &mut Mm, PhysAddr) -> KResult<()>) -> KResult<()> {
    let size = vma_hsize(vma).expect("a hugetlb VMA");
    let Backing::Shmem { obj, .. } = &vma.backing else { unreachable!() };
    let Some(slot) = huge_pte_alloc(&mut hw.mem, &mut hw.pages, &mut mm.table_frames, mm.pml4, haddr, size) else {
        return Err(Errno::ENOMEM);
    };
    let old = pgtable::get_entry(&hw.mem, slot);
    let empty = matches!(softleaf_from_pte(old), SoftLeaf::None | SoftLeaf::Marker(_));
    let idx = hugecache_offset(vma, size, haddr);
    let shared = vma.flags.has(VmFlags::MAYSHARE);
    let page = if is_continue {
        // The page-cache lookup comes first: a private page (never in the cache) is
        // EFAULT even where it is mapped.
        let p = obj.cache_get(idx).ok_or(Errno::EFAULT)?;
        if !empty {
            return Err(Errno::EEXIST);
        }
        hw.pages.get(p);
        p
    } else {
        if !empty {
            return Err(Errno::EEXIST);
        }
        if shared && obj.cache_get(idx).is_some() {
            return Err(Errno::EEXIST);
        }
        if vma.object_offset(haddr) >= obj.size() {
            return Err(Errno::EFAULT);
        }
        let reserved = consume_reservation(vma, obj, idx);
        let Some(p) = alloc_hugetlb_folio(&mut hw.pages, &mut hw.mem, size, reserved, false) else {
            if reserved {
                give_back_reservation(vma, obj, idx, &hw.pages.hugetlb, size);
            }
            return Err(Errno::ENOMEM);
        };
        if let Err(e) = fill(hw, mm, p) {
            hw.pages.put(p);
            if reserved {
                give_back_reservation(vma, obj, idx, &hw.pages.hugetlb, size);
                let pool = hw.pages.hugetlb.clone();
                pool.borrow_mut().h_mut(size).resv += 1;
            }
            return Err(e);
        }
        add_new_folio(mm, hw, vma, obj, idx, p);
        p
    };
    hw.pages.meta_mut(page).mapcount += 1;
    let writable = !wp && (!is_continue || shared);
    let mut e = make_huge_pte(vma, page, size, writable).with(_PAGE_DIRTY);
    if wp {
        e = huge_pte_mkuffd_wp(e);
    }
    set_huge_pte_new(&mut hw.mem, slot, haddr, e);
    Ok(())
}

/// Linux: hugetlb_mfill_atomic_pte for UFFDIO_POISON: a poison marker in the none slot
/// (any other entry, a marker included, is EEXIST). No page and no reservation is used;
/// a later access gets SIGBUS, a zap removes the marker, fork copies it.
pub fn hugetlb_mfill_atomic_poison(mm: &mut Mm, hw: &mut Hw, vma: &Vma, haddr: u64) -> KResult<()> {
    let size = vma_hsize(vma).expect("a hugetlb VMA");
    let Some(slot) = huge_pte_alloc(&mut hw.mem, &mut hw.pages, &mut mm.table_frames, mm.pml4, haddr, size) else {
        return Err(Errno::ENOMEM);
    };
    if softleaf_from_pte(pgtable::get_entry(&hw.mem, slot)) != SoftLeaf::None {
        return Err(Errno::EEXIST);
    }
    set_huge_pte_new(&mut hw.mem, slot, haddr, make_pte_marker(PteMarker::POISONED));
    Ok(())
}

impl Pages {
    /// Sets up the metadata of the hugetlb folio at `head` as just allocated: refcount 1,
    /// unmapped, its order on the head (and, for 1 GiB, on every 2 MiB boundary inside
    /// it, so `folio` finds the head in one look).
    pub fn init_hugetlb_folio(&mut self, head: PhysAddr, size: HugeSize) {
        *self.meta_mut(head) = PageMeta { refcount: 1, order: size.order(), hugetlb: true, ..PageMeta::default() };
        if size == HugeSize::G1 {
            for i in 1..512u64 {
                self.meta_mut(PhysAddr::new(head.as_u64() + (i << 21))).order = size.order();
            }
        }
    }
}

/// read(2) of a hugetlbfs file (Linux: hugetlbfs_read_iter): its pages' bytes up to the
/// file size, zeros in holes.
pub fn hugetlbfs_read(mem: &PhysMem, obj: &Shmem, pos: u64, len: usize) -> Vec<u8> {
    let size = obj.hugetlb_size().expect("a hugetlb file");
    let end = pos.saturating_add(len as u64).min(obj.size());
    if pos >= end {
        return Vec::new();
    }
    let mut out = vec![0u8; (end - pos) as usize];
    let mut p = pos;
    while p < end {
        let within = p & !size.mask();
        let n = (size.bytes() - within).min(end - p) as usize;
        if let Some(pa) = obj.cache_get(p >> size.shift()) {
            let o = (p - pos) as usize;
            mem.read(PhysAddr::new(pa.as_u64() + within), &mut out[o..o + n]);
        }
        p += n as u64;
    }
    out
}

/// ftruncate of a hugetlbfs file (Linux: hugetlbfs_setattr → hugetlb_vmtruncate): a size
/// that is not a whole number of huge pages is EINVAL; the seals' EPERM; shrinking drops
/// the pages past the end and their reservations. Returns the dropped pages (the cache's
/// references) for the caller to put after unmapping them.
pub fn hugetlbfs_truncate(obj: &Shmem, new: u64) -> KResult<Vec<PhysAddr>> {
    use super::shmem::{F_SEAL_GROW, F_SEAL_SHRINK};
    let size = obj.hugetlb_size().expect("a hugetlb file");
    if new & !size.mask() != 0 {
        return Err(Errno::EINVAL);
    }
    let (old, seals) = {
        let i = obj.inode();
        (i.size, i.seals)
    };
    if (new < old && seals & F_SEAL_SHRINK != 0) || (new > old && seals & F_SEAL_GROW != 0) {
        return Err(Errno::EPERM);
    }
    obj.inode_mut().size = new;
    let first = new >> size.shift();
    Ok(obj.with_hugetlb(|m, inode| {
        inode.unreserve(first, u64::MAX);
        m.remove_range(first, u64::MAX)
    }))
}

/// fallocate of a hugetlbfs file (Linux: hugetlbfs_fallocate): PUNCH_HOLE|KEEP_SIZE zeroes
/// the partial huge pages at the edges and drops the whole ones with their reservations
/// (hugetlbfs_punch_hole; EPERM under F_SEAL_WRITE); mode 0 or KEEP_SIZE allocates every
/// huge page the range touches (a reserved one with its reservation, otherwise a free page
/// nobody reserved, else ENOSPC) and grows the file unless KEEP_SIZE. Returns the dropped
/// pages, and the range of the hole in bytes.
pub fn hugetlbfs_fallocate(pages: &mut Pages, mem: &mut PhysMem, obj: &Shmem, mode: u32, off: u64, len: u64) -> KResult<(Vec<PhysAddr>, u64, u64)> {
    use super::shmem::{F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_WRITE};
    const KEEP_SIZE: u32 = 1;
    const PUNCH_HOLE: u32 = 2;
    let size = obj.hugetlb_size().expect("a hugetlb file");
    // vfs_fallocate: PUNCH_HOLE only with KEEP_SIZE; hugetlbfs knows no other mode.
    if mode & !(KEEP_SIZE | PUNCH_HOLE) != 0 || mode & (PUNCH_HOLE | KEEP_SIZE) == PUNCH_HOLE {
        return Err(Errno::EOPNOTSUPP);
    }
    let end = off.checked_add(len).ok_or(Errno::EFBIG)?;
    let seals = obj.inode().seals;
    if mode & PUNCH_HOLE != 0 {
        let (hs, he) = ((off + size.bytes() - 1) & size.mask(), end & size.mask());
        if hs < he && seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0 {
            return Err(Errno::EPERM);
        }
        // hugetlbfs_zero_partial_page at either edge.
        for (a, b) in [(off, end.min(hs)), (he.max(off), end)] {
            if a < b {
                if let Some(pa) = obj.cache_get(a >> size.shift()) {
                    mem.fill(PhysAddr::new(pa.as_u64() + (a & !size.mask())), b - a, 0);
                }
            }
        }
        if hs >= he {
            return Ok((Vec::new(), hs, hs));
        }
        let (first, last) = (hs >> size.shift(), he >> size.shift());
        let dropped = obj.with_hugetlb(|m, inode| {
            inode.unreserve(first, last);
            m.remove_range(first, last)
        });
        return Ok((dropped, hs, he));
    }
    if seals & F_SEAL_GROW != 0 && end > obj.size() {
        return Err(Errno::EPERM);
    }
    for idx in (off >> size.shift())..end.div_ceil(size.bytes()) {
        if obj.cache_get(idx).is_some() {
            continue;
        }
        let reserved = obj.with_hugetlb(|_, inode| inode.pending.remove(&idx));
        let Some(p) = alloc_hugetlb_folio(pages, mem, size, reserved, true) else {
            if reserved {
                obj.with_hugetlb(|_, inode| inode.pending.insert(idx));
            }
            return Err(Errno::ENOSPC);
        };
        pages.meta_mut(p).file = true;
        obj.cache_add(idx, p);
    }
    if mode & KEEP_SIZE == 0 && end > obj.size() {
        obj.inode_mut().size = end;
    }
    Ok((Vec::new(), 0, 0))
}

/// The bytes of hugetlb pages `mm` maps (Linux: mm->hugetlb_usage, /proc/PID/status
/// HugetlbPages).
pub fn hugetlb_usage(mem: &PhysMem, mm: &Mm) -> u64 {
    let mut n = 0;
    for v in mm.vmas.values() {
        let Some(size) = vma_hsize(v) else { continue };
        for haddr in (v.start..v.end).step_by(size.bytes() as usize) {
            if hugetlb_walk(mem, mm.pml4, haddr, size).is_some_and(|slot| pgtable::get_entry(mem, slot).is_present()) {
                n += size.bytes();
            }
        }
    }
    n
}

/// Linux: unmap_ref_private. The owner of a private mapping's reservations could not copy
/// the huge page `head` at file offset `offset` of the object `obj`: every other private
/// mapping of it there (a fork's child, which owns no reservation) loses the page and is
/// marked so that its next fault there is SIGBUS (HPAGE_RESV_UNMAPPED). The owner then
/// maps the page alone and reuses it.
pub fn unmap_ref_private(mms: &mut [Option<Mm>], hw: &mut Hw, obj: u64, offset: u64, head: PhysAddr) {
    for mm in mms.iter_mut().flatten() {
        let hits: Vec<(u64, u64)> = mm
            .vmas
            .values()
            .filter_map(|v| {
                let (Backing::Shmem { obj: o, offset: off }, Some(size)) = (&v.backing, vma_hsize(v)) else { return None };
                if o.id() != obj || v.flags.has(VmFlags::MAYSHARE) || v.hugetlb_resv.is_some() || offset < *off || offset - off >= v.len() {
                    return None;
                }
                let addr = v.start + (offset - off);
                let slot = hugetlb_walk(&hw.mem, mm.pml4, addr, size)?;
                let e = pgtable::get_entry(&hw.mem, slot);
                (e.is_present() && huge_pte_pfn(e, size) == head).then_some((v.start, addr))
            })
            .collect();
        for (start, addr) in hits {
            let v = mm.vmas[&start].clone();
            let mut tlb = MmuGather::new(mm);
            super::mmap::zap_range(&mut tlb, mm, hw, Some(&v), addr, addr + v.page_size(), super::mmap::ZapDetails::KEEP_MARKERS);
            tlb.finish_mmu(hw);
            if let Some(v) = mm.vmas.get_mut(&start) {
                v.hugetlb_unmapped = true;
            }
        }
    }
}
