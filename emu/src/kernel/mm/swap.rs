//! Swap: the emulated swap device, and the swap-out (MADV_PAGEOUT) and swap-in
//! (do_swap_page) paths. The encoding of swap entries in non-present PTEs, and the
//! classification of every entry, are `mm::swapops`.
//!
//! | here                          | Linux                                              |
//! |-------------------------------|----------------------------------------------------|
//! | [`SwapDevice`]                | mm/swapfile.c (swap_info_struct, swap_map)         |
//! | [`madvise_pageout`]           | mm/madvise.c madvise_cold_or_pageout_pte_range + shrink_folio_list/try_to_unmap_one |
//! | [`do_swap_page`]              | mm/memory.c do_swap_page                           |
//!
//! ## Slots and references
//!
//! Each slot has a use count (Linux's swap_map): one per swap PTE naming it. Swap-out
//! allocates a slot with count 1 and copies the page there; fork's [`swap_duplicate`] adds
//! one; swap-in, zap and the fork undo path [`swap_free`] one. The slot and its contents go
//! with the last count. pagelab has no swap cache: swap-in always reads into a new frame
//! and drops the PTE's count at once (Linux keeps a clean page in the swap cache after a
//! read fault; that is invisible to a program except through the slot numbers pagemap
//! shows, which tests do not print).
//!
//! ## For the userfaultfd code (how to call this module)
//!
//! * change_protection visits swap PTEs (`SoftLeaf::Swap`): with MM_CP_UFFD_WP it writes
//!   `swapops::pte_swp_mkuffd_wp(pte)`, with MM_CP_UFFD_WP_RESOLVE
//!   `swapops::pte_swp_clear_uffd_wp(pte)`. The old entry was not present: no TLB flush is
//!   needed for it (`Flush::not_needed`).
//! * fork: `mm::fork::copy_page_range` calls [`copy_nonpresent_pte`] with `keep_uffd_wp` =
//!   the child VMA has VM_UFFD_WP.
//! * mremap moves swap entries unchanged in `move_ptes` (the slot reference moves with the
//!   entry); without EVENT_REMAP the uffd code then clears uffd-wp over the new range
//!   (`mm::userfaultfd::clear_uffd_wp_range`).
//!   `swapops::pte_clear_uffd_wp_any` is the same clearing for one entry of any kind
//!   (present, swap, marker).
//! * the fault path: a write fault on a swapped wp'd page arrives here first;
//!   [`do_swap_page`] maps the page read-only with `_PAGE_UFFD_WP` and returns `Handled`,
//!   so the retried write takes the present-PTE write-protect path (do_wp_page's uffd-wp
//!   check) and raises the one WP message.

use super::memory::{FaultFlags, FaultOutcome, VmFault};
use super::mmu_gather::MmuGather;
use super::pagewalk::{walk_page_range, MmWalkOps};
use super::huge_memory::{HPAGE_PMD_NR, HPAGE_PMD_SIZE};
use super::pgtable::{self, linux::*, Slot};
use super::swapops::{make_pte_marker, pte_swp_clear_exclusive, pte_swp_clear_uffd_wp, pte_swp_mkexclusive, pte_swp_mkuffd_wp, softleaf_from_pte, swp_entry, swp_entry_to_pte, PteMarker, SoftLeaf, SwpEntry};
use super::vma::{Backing, Vma, VmFlags};
use super::Mm;
use crate::kernel::hw::Hw;
use mmu::{Entry, PhysMem};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::ops::ControlFlow;

// ---- The device (mm/swapfile.c) ----

/// The type of pagelab's one swap device.
pub const SWAP_TYPE: u64 = 0;
/// The default device size (`--swap`).
pub const DEFAULT_SWAP_BYTES: u64 = 256 << 20;

/// The emulated swap device (Linux: a swap_info_struct for a swap file): `max` page slots,
/// slot 0 being the header as in a real swap area, so `max - 1` hold pages. Contents are
/// kept host-side.
pub struct SwapDevice {
    /// Slots including the header (Linux: si->max); 0 or 1: no swap.
    max: u64,
    /// Use counts of allocated slots (Linux: swap_map) and their contents.
    slots: BTreeMap<u64, (u32, Box<[u8; 4096]>)>,
    /// Freed slots below `high`, reused lowest first.
    free: BTreeSet<u64>,
    /// Slots 1..high have been handed out at some point.
    high: u64,
}

impl SwapDevice {
    /// A device of `bytes` (rounded down to pages); 0 means no swap configured.
    pub fn new(bytes: u64) -> Self {
        Self { max: bytes >> 12, slots: BTreeMap::new(), free: BTreeSet::new(), high: 1 }
    }
    /// Whether swap is configured (Linux: total_swap_pages != 0).
    pub fn enabled(&self) -> bool {
        self.max > 1
    }
    /// Slots in use (Linux: si->inuse_pages).
    pub fn inuse(&self) -> u64 {
        self.slots.len() as u64
    }
    /// Usable slots.
    pub fn pages(&self) -> u64 {
        self.max.saturating_sub(1)
    }
    /// Allocates a slot (lowest free: deterministic), count 1, holding `data`. None when
    /// the device is full or absent (Linux: folio_alloc_swap fails and the page stays).
    fn alloc(&mut self, data: Box<[u8; 4096]>) -> Option<SwpEntry> {
        let off = if let Some(o) = self.free.pop_first() {
            o
        } else if self.high < self.max {
            self.high += 1;
            self.high - 1
        } else {
            return None;
        };
        self.slots.insert(off, (1, data));
        Some(swp_entry(SWAP_TYPE, off))
    }
    /// The use count of a slot (0 if free).
    pub fn count(&self, e: SwpEntry) -> u32 {
        self.slots.get(&e.offset).map_or(0, |s| s.0)
    }
    fn data(&self, e: SwpEntry) -> Option<&[u8; 4096]> {
        self.slots.get(&e.offset).map(|s| &*s.1)
    }
}

/// Linux: swap_duplicate. One more PTE names the slot (fork).
pub fn swap_duplicate(hw: &mut Hw, e: SwpEntry) {
    if let Some(s) = hw.swap.slots.get_mut(&e.offset) {
        s.0 += 1;
    }
}

/// Linux: swap_free. A PTE naming the slot went; the last one frees the slot.
pub fn swap_free(hw: &mut Hw, e: SwpEntry) {
    debug_assert!(e.ty < super::swapops::MAX_SWAPFILES, "swap_free of a non-swap entry {e:?}");
    let dev = &mut hw.swap;
    if let Some(s) = dev.slots.get_mut(&e.offset) {
        s.0 -= 1;
        if s.0 == 0 {
            dev.slots.remove(&e.offset);
            dev.free.insert(e.offset);
        }
    }
}

/// Linux: mm/memory.c copy_pte_marker: the child's marker at fork, for a PTE or a huge
/// PTE. Poison and guard markers are always copied; uffd-wp only into a VMA registered WP
/// (`keep_uffd_wp`, EVENT_FORK). None when nothing is left.
pub fn copy_pte_marker(m: PteMarker, keep_uffd_wp: bool) -> Option<Entry> {
    let m = if keep_uffd_wp { m } else { m.difference(PteMarker::UFFD_WP) };
    (!m.is_empty()).then(|| make_pte_marker(m))
}

/// Linux: copy_nonpresent_pte for a swap PTE, migration entry or marker (`pte`,
/// classified as `leaf`) being copied to a child at fork. A swap entry takes one more slot
/// reference; `keep_uffd_wp` (the child VMA has VM_UFFD_WP) decides whether the child's
/// entry keeps `_PAGE_SWP_UFFD_WP`, and a uffd-wp marker, whose mask then becomes empty,
/// is not copied (None). The parent's entry loses `_PAGE_SWP_EXCLUSIVE` (the page is now
/// shared), and so does the child's. A migration entry is copied as it is.
/// Returns (the child's entry, the parent's new entry if it changed).
pub fn copy_nonpresent_pte(hw: &mut Hw, pte: Entry, leaf: SoftLeaf, keep_uffd_wp: bool) -> (Option<Entry>, Option<Entry>) {
    match leaf {
        SoftLeaf::Marker(m) => (copy_pte_marker(m, keep_uffd_wp), None),
        SoftLeaf::Migration { .. } => (Some(pte), None),
        SoftLeaf::Swap { entry, exclusive, .. } => {
            swap_duplicate(hw, entry);
            let parent = exclusive.then(|| pte_swp_clear_exclusive(pte));
            let mut child = pte_swp_clear_exclusive(pte);
            if !keep_uffd_wp {
                child = pte_swp_clear_uffd_wp(child);
            }
            (Some(child), parent)
        }
        SoftLeaf::None | SoftLeaf::Present | SoftLeaf::ProtNone => unreachable!("copy_nonpresent_pte of {leaf:?}"),
    }
}

// ---- Swap-out: MADV_PAGEOUT ----

/// Linux: madvise_cold and madvise_pageout over [start, end) of one VMA
/// (madvise_cold_or_pageout_pte_range; for MADV_PAGEOUT, `pageout`, then reclaim_pages →
/// shrink_folio_list → try_to_unmap_one, synchronously). MADV_COLD only splits the THPs
/// it covers in part (`huge_memory::split_anon_folio`); the LRU it moves pages on is not
/// modelled. MADV_PAGEOUT splits every THP it meets; then the pages that
/// are private anonymous and mapped exactly once go to swap: the PTE becomes a swap entry
/// carrying uffd-wp (`_PAGE_UFFD_WP` → `_PAGE_SWP_UFFD_WP`) and PageAnonExclusive
/// (`_PAGE_SWP_EXCLUSIVE`), and the frame is freed once `tlb` has flushed. Skipped, as in
/// Linux: the zero page (no struct page), pages mapped more than once (COW-shared after
/// fork), and everything when no swap is configured or the device is full. Shmem and
/// file VMAs go to `ShmemPageout`, which never writes to swap.
pub fn madvise_cold_or_pageout(tlb: &mut MmuGather, mm: &Mm, hw: &mut Hw, vma: &Vma, start: u64, end: u64, pageout: bool) {
    // VM_LOCKED pages are not reclaimed (can_madv_lru_vma: VM_LOCKED|VM_PFNMAP|VM_HUGETLB).
    if vma.flags.has(VmFlags::LOCKED) {
        return;
    }
    if let Backing::Shmem { obj, .. } = &vma.backing {
        if !pageout {
            return;
        }
        // Page-cache pages (shmem is swap-backed but not anonymous): shrink_folio_list
        // unmaps them (try_to_unmap) before the writeout, which without swap fails and
        // leaves a dirty page in the cache — measured: the PTE goes, the data stays.
        // pagelab does not write shmem to swap, so with a swap device it does the same.
        // A clean page needs no writeout: it leaves the cache (below).
        let _: ControlFlow<Infallible> = walk_page_range(mm.pml4, start, end, &mut ShmemPageout { hw, tlb, wp: vma.flags.has(VmFlags::UFFD_WP), vma, obj });
        return;
    }
    if !matches!(vma.backing, Backing::Anon | Backing::Heap | Backing::Stack) || vma.shared() {
        return;
    }
    let mut w = Pageout { hw, tlb, paged: 0, mm, vma, end, pageout, skip_to: 0 };
    // A break: the device is full, and the rest of the range stays resident.
    let _: ControlFlow<()> = walk_page_range(mm.pml4, start, end, &mut w);
    let (paged, hw) = (w.paged, w.hw);
    if paged > 0 {
        tracing::trace!(target: "pagelab::swap", start = format_args!("{start:#x}"), end = format_args!("{end:#x}"), paged, inuse = hw.swap.inuse(), "pageout");
    }
}

/// MADV_PAGEOUT of the page-cache pages of a shmem VMA (see `madvise_pageout`).
struct ShmemPageout<'a> {
    hw: &'a mut Hw,
    tlb: &'a mut MmuGather,
    /// The VMA is registered for uffd-wp: an unmapped wp'd PTE leaves a marker.
    wp: bool,
    vma: &'a Vma,
    /// The VMA's object, whose page cache a clean page leaves.
    obj: &'a super::shmem::Shmem,
}

impl MmWalkOps for ShmemPageout<'_> {
    type Break = Infallible;

    fn mem(&self) -> &PhysMem {
        &self.hw.mem
    }

    /// Linux: madvise_cold_or_pageout_pte_range + try_to_unmap_one for a page-cache page
    /// this PTE alone maps (folio_maybe_mapped_shared skips the others; anonymous COW
    /// pages of a private mapping need swap, which shmem reclaim here never uses).
    fn pte_entry(&mut self, pte: Entry, slot: Slot, va: u64) -> ControlFlow<Infallible> {
        let hw = &mut *self.hw;
        // pte_present: a PROT_NONE PTE maps its page too, and is unmapped like the others.
        if !matches!(softleaf_from_pte(pte), SoftLeaf::Present | SoftLeaf::ProtNone) || pte.has(_PAGE_SPECIAL) {
            return ControlFlow::Continue(());
        }
        let pa = pgtable::pte_pfn(pte);
        let m = *hw.pages.meta(pa);
        if hw.pages.is_zero_page(pa) || !m.file || m.mapcount != 1 || hw.pages.is_huge(hw.pages.folio(pa)) {
            return ControlFlow::Continue(());
        }
        // pte_install_uffd_wp_if_needed: a wp'd page leaves its protection as a marker.
        let new = if self.wp && pte.has(_PAGE_UFFD_WP) { make_pte_marker(PteMarker::UFFD_WP) } else { Entry::new(0) };
        let f = pgtable::set_entry(&mut hw.mem, slot, va, new);
        self.tlb.flush_pte(f);
        if pte.is_dirty() {
            hw.pages.mark_dirty(pa);
        }
        hw.pages.remove_rmap(pa);
        // shrink_folio_list → __remove_mapping: a clean page that only the page cache and
        // this PTE held leaves the cache (its contents are the backing store's: zeros for
        // shmem, the file's bytes for a file), and is freed with the mapping's reference.
        // Measured on 6.18 without swap: after MADV_PAGEOUT of a memfd, mincore says 0 for
        // the pages only read and 1 for those written.
        let pgoff = self.vma.object_offset(va) >> 12;
        if !hw.pages.meta(pa).dirty && hw.pages.meta(pa).refcount == 2 && self.obj.find_page(pgoff) == Some(pa) {
            for cached in self.obj.remove_pages(pgoff, pgoff + 1) {
                hw.pages.put(cached);
            }
        }
        self.tlb.remove_page(pa);
        ControlFlow::Continue(())
    }
}

/// The walk of madvise_cold_or_pageout_pte_range over an anonymous VMA: MADV_COLD splits
/// the THPs the range covers in part; MADV_PAGEOUT (`pageout`) splits every THP it
/// meets (the reclaim of a large folio without a large swap slot splits it) and swaps
/// the pages out.
struct Pageout<'a> {
    hw: &'a mut Hw,
    tlb: &'a mut MmuGather,
    paged: u64,
    mm: &'a Mm,
    vma: &'a Vma,
    end: u64,
    pageout: bool,
    /// The end of a THP MADV_COLD met whole and left as it is.
    skip_to: u64,
}

/// Linux: folio_pte_batch as madvise_folio_pte_batch uses it: how many PTEs from `slot`
/// (mapping `pa` at `va`) on map the following pages of the same 2 MiB folio, within one
/// page table and below `end`.
fn folio_pte_batch(mem: &PhysMem, slot: Slot, va: u64, end: u64, pa: mmu::PhysAddr) -> u64 {
    let first = (slot.pa.as_u64() & 0xfff) / 8;
    let mut k = 0;
    while k < HPAGE_PMD_NR && first + k < 512 && va + (k << 12) < end {
        let e = Entry::new(mem.read_u64(mmu::PhysAddr::new(slot.pa.as_u64() + 8 * k)));
        if !matches!(softleaf_from_pte(e), SoftLeaf::Present | SoftLeaf::ProtNone) || pgtable::pte_pfn(e).as_u64() != pa.as_u64() + (k << 12) {
            break;
        }
        k += 1;
    }
    k
}

impl MmWalkOps for Pageout<'_> {
    /// The swap device is full.
    type Break = ();

    fn mem(&self) -> &PhysMem {
        &self.hw.mem
    }

    /// Linux: madvise_cold_or_pageout_pte_range + try_to_unmap_one, for one PTE.
    fn pte_entry(&mut self, pte: Entry, slot: Slot, va: u64) -> ControlFlow<()> {
        let hw = &mut *self.hw;
        let protnone = match softleaf_from_pte(pte) {
            SoftLeaf::Present => false,
            SoftLeaf::ProtNone => true,
            // Already out, or nothing to reclaim.
            SoftLeaf::None | SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } | SoftLeaf::Marker(_) => return ControlFlow::Continue(()),
        };
        if pte.has(_PAGE_SPECIAL) {
            return ControlFlow::Continue(());
        }
        let pa = pgtable::pte_pfn(pte);
        // A page of a (PTE-mapped) THP another mm may map: left alone. Else MADV_COLD
        // splits it unless the range maps all of it from here on (madvise_folio_pte_batch),
        // and MADV_PAGEOUT's reclaim splits it and swaps its pages one by one (measured on
        // 6.18 with swap: 512 swap entries, each keeping uffd-wp).
        let head = hw.pages.folio(pa);
        if hw.pages.is_huge(head) {
            if super::huge_memory::folio_maybe_mapped_shared(&hw.pages, head) {
                return ControlFlow::Continue(());
            }
            if va < self.skip_to {
                return ControlFlow::Continue(());
            }
            if !self.pageout && head == pa && folio_pte_batch(&hw.mem, slot, va, self.end, pa) == HPAGE_PMD_NR {
                self.skip_to = va + HPAGE_PMD_SIZE;
                return ControlFlow::Continue(());
            }
            let index = super::huge_memory::anon_folio_index(self.vma, va, head, pa);
            if !super::huge_memory::split_anon_folio(self.mm, hw, self.tlb, head, index) || !self.pageout {
                return ControlFlow::Continue(());
            }
        } else if !self.pageout {
            return ControlFlow::Continue(());
        }
        // Without swap, reclaim keeps anonymous pages where they are.
        if !hw.swap.enabled() {
            return ControlFlow::Continue(());
        }
        // The split may have made this page the zero page.
        let pte = pgtable::get_entry(&hw.mem, slot);
        if pte.has(_PAGE_SPECIAL) {
            return ControlFlow::Continue(());
        }
        let m = *hw.pages.meta(pa);
        // folio_maybe_mapped_shared / folio_mapcount: only pages this PTE alone maps; an
        // extra reference (a pin, an in-flight copy) also keeps it (the reclaim path's
        // refcount freeze would fail).
        if hw.pages.is_zero_page(pa) || m.mapcount != 1 || m.refcount != 1 {
            return ControlFlow::Continue(());
        }
        let mut data = Box::new([0u8; 4096]);
        hw.mem.read(pa, &mut data[..]);
        let Some(e) = hw.swap.alloc(data) else { return ControlFlow::Break(()) };
        let mut swp = swp_entry_to_pte(e);
        if m.anon_exclusive {
            swp = pte_swp_mkexclusive(swp);
        }
        if pte.has(_PAGE_UFFD_WP) {
            swp = pte_swp_mkuffd_wp(swp);
        }
        let f = pgtable::set_entry(&mut hw.mem, slot, va, swp);
        if protnone {
            f.not_needed();
        } else {
            self.tlb.flush_pte(f);
        }
        // The mapping goes now; the frame once no TLB reaches it.
        hw.pages.remove_rmap(pa);
        self.tlb.remove_page(pa);
        self.paged += 1;
        ControlFlow::Continue(())
    }
}

// ---- Swap-in ----

/// Linux: do_swap_page for a fault on a swap PTE (`pte`, in `slot`). The page is read
/// into a new frame and mapped with the VMA's protection; the uffd-wp bit comes back from
/// `_PAGE_SWP_UFFD_WP` (and with it R/W clear); the page is mapped writable up front only
/// if it was exclusive, the VMA is writable and the PTE is not uffd-wp in a VM_UFFD_WP VMA
/// (then a write fault also marks it dirty). A write fault that leaves the PTE read-only
/// returns Handled: the retried write takes do_wp_page (the uffd-wp message, or COW).
/// The slot reference is dropped. A PTE marker goes to `handle_pte_marker`; migration
/// entries do not exist yet (SIGBUS).
pub fn do_swap_page(vmf: &mut VmFault) -> FaultOutcome {
    let (vma, slot, va, pte, write) = (vmf.vma, vmf.pte_slot(), vmf.address, vmf.orig_pte, vmf.flags.contains(FaultFlags::WRITE));
    let (e, swp_uffd_wp, swp_exclusive) = match softleaf_from_pte(pte) {
        SoftLeaf::Swap { entry, uffd_wp, exclusive } => (entry, uffd_wp, exclusive),
        SoftLeaf::Marker(_) => return super::memory::handle_pte_marker(vmf),
        // Migration entries arrive with later issues.
        SoftLeaf::Migration { .. } => return FaultOutcome::Bus,
        // handle_pte_fault classified the entry as swap-style already.
        SoftLeaf::None | SoftLeaf::Present | SoftLeaf::ProtNone => return FaultOutcome::Bus,
    };
    let hw = &mut *vmf.hw;
    let Some(data) = hw.swap.data(e).map(|d| Box::new(*d)) else {
        // A swap entry naming a free slot cannot happen; Linux answers a swap-in error
        // with a poison marker and SIGBUS.
        return FaultOutcome::Bus;
    };
    let Some(frame) = hw.pages.alloc_zeroed(&mut hw.mem) else {
        return FaultOutcome::Oom;
    };
    hw.mem.write(frame, &data[..]);
    hw.pages.map(frame);
    let exclusive = swp_exclusive || hw.swap.count(e) == 1;
    let prot = vma.page_prot();
    let mut new = pgtable::mk_pte(frame, prot);
    if swp_uffd_wp {
        // pte_mkuffd_wp: the bit, and R/W clear.
        new = new.with(_PAGE_UFFD_WP).without(_PAGE_RW);
    }
    let uffd_wp = vma.flags.has(VmFlags::UFFD_WP) && new.has(_PAGE_UFFD_WP);
    hw.pages.meta_mut(frame).anon_exclusive = exclusive;
    if exclusive && vma.writable() && !uffd_wp {
        new = new.with(_PAGE_RW);
        if write {
            new = new.with(_PAGE_DIRTY);
        }
    }
    swap_free(hw, e);
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = "swap_in", offset = e.offset, pte = format_args!("{:#x}", new.raw()));
    // The old entry was not present: no TLB holds it.
    pgtable::set_entry(&mut hw.mem, slot, va, new).not_needed();
    FaultOutcome::Handled
}

