//! Swap: the emulated swap device, the swap-entry encoding of non-present PTEs, and the
//! swap-out (MADV_PAGEOUT) and swap-in (do_swap_page) paths.
//!
//! | here                          | Linux                                              |
//! |-------------------------------|----------------------------------------------------|
//! | [`SwpEntry`], [`swp_entry`]   | include/linux/swapops.h (arch-independent entry)   |
//! | [`__swp_entry`] ...           | arch/x86/include/asm/pgtable_64.h (PTE layout)     |
//! | [`SwapDevice`]                | mm/swapfile.c (swap_info_struct, swap_map)         |
//! | [`madvise_pageout`]           | mm/madvise.c madvise_cold_or_pageout_pte_range + shrink_folio_list/try_to_unmap_one |
//! | [`do_swap_page`]              | mm/memory.c do_swap_page                           |
//!
//! ## The non-present PTE space (x86-64, reference §2.3-2.5)
//!
//! A PTE that is neither none nor present (P clear and `_PAGE_PROTNONE` clear) is a
//! "swap-style" entry:
//!
//! ```text
//!  63    59 58                                   9 8 7 6 5 4 3 2 1 0
//! [ type  ][          ~offset (50 bits)           ][0|0|-|-|-|E|W|S|0]
//! ```
//!
//! * bits 63:59, the type: 0..MAX_SWAPFILES-1 are swap devices (pagelab has one, type 0);
//!   the special types are carved from the top, and [`SWP_PTE_MARKER`] (31) holds PTE
//!   markers (a later issue: their offset is the marker bitmask, [`PTE_MARKER_UFFD_WP`] ...);
//! * bits 58:9, the offset, stored inverted (L1TF: a non-present entry must never look
//!   like it points at real memory);
//! * bit 1 `_PAGE_SWP_SOFT_DIRTY` (unused, CONFIG_MEM_SOFT_DIRTY=n), bit 2
//!   [`_PAGE_SWP_UFFD_WP`], bit 3 [`_PAGE_SWP_EXCLUSIVE`]: flags kept in the PTE, not in the
//!   entry ([`pte_to_swp_entry`] strips them);
//! * bits 0 (P), 7 (PSE) and 8 (PROTNONE) are always clear, so `pte_present` and
//!   `pmd_present` are false.
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
//! * change_protection must visit swap PTEs: for each `is_swap_pte(pte)` in the range, with
//!   MM_CP_UFFD_WP write [`pte_swp_mkuffd_wp`]`(pte)`, with MM_CP_UFFD_WP_RESOLVE
//!   [`pte_swp_clear_uffd_wp`]`(pte)` (or call [`swp_entry_set_uffd_wp`] on the slot). The
//!   old entry was not present: no TLB flush is needed for it (`Flush::not_needed`).
//! * fork: `mm::fork::copy_page_range` calls [`copy_nonpresent_pte`] with `keep_uffd_wp` =
//!   the child VMA has VM_UFFD_WP.
//! * mremap moves swap entries unchanged in `move_ptes` (the slot reference moves with the
//!   entry); without EVENT_REMAP the uffd code then clears uffd-wp over the new range,
//!   swap entries through [`swp_entry_set_uffd_wp`]. [`pte_clear_uffd_wp_any`] is the
//!   same clearing for one entry of any kind (present, swap, marker).
//! * the fault path: a write fault on a swapped wp'd page arrives here first;
//!   [`do_swap_page`] maps the page read-only with `_PAGE_UFFD_WP` and returns `Handled`,
//!   so the retried write takes the present-PTE write-protect path (do_wp_page's uffd-wp
//!   check) and raises the one WP message.

use super::memory::{FaultFlags, FaultOutcome, VmFault};
use super::pgtable::{self, linux::*, Slot};
use super::vma::{Backing, Vma, VmFlags};
use super::Mm;
use crate::kernel::hw::Hw;
use mmu::{Entry, Flush, PhysAddr};
use std::collections::{BTreeMap, BTreeSet};

// ---- The x86-64 encoding (arch/x86/include/asm/pgtable_64.h, pgtable_64_types.h) ----

/// Bits of the type field (MAX_SWAPFILES_SHIFT).
pub const SWP_TYPE_BITS: u32 = 5;
/// The first offset bit: `_PAGE_BIT_PROTNONE` + 1.
pub const SWP_OFFSET_FIRST_BIT: u32 = 9;
/// Shift that lines the inverted offset up before the type is removed again.
pub const SWP_OFFSET_SHIFT: u32 = SWP_OFFSET_FIRST_BIT + SWP_TYPE_BITS;
/// `_PAGE_SWP_SOFT_DIRTY` (bit 1, `_PAGE_RW`); unused: CONFIG_MEM_SOFT_DIRTY=n.
pub const _PAGE_SWP_SOFT_DIRTY: u64 = 1 << 1;
/// `_PAGE_SWP_UFFD_WP` (bit 2, `_PAGE_USER`): the swapped page was uffd-wp protected.
pub const _PAGE_SWP_UFFD_WP: u64 = 1 << 2;
/// `_PAGE_SWP_EXCLUSIVE` (bit 3, `_PAGE_PWT`): the page was PageAnonExclusive.
pub const _PAGE_SWP_EXCLUSIVE: u64 = 1 << 3;
/// The flag bits a swap PTE may carry besides the entry.
pub const _PAGE_SWP_FLAGS: u64 = _PAGE_SWP_SOFT_DIRTY | _PAGE_SWP_UFFD_WP | _PAGE_SWP_EXCLUSIVE;

/// Linux: __swp_entry. The arch PTE value of (type, offset), flags clear.
pub const fn __swp_entry(ty: u64, offset: u64) -> u64 {
    ((!offset) << SWP_OFFSET_SHIFT >> SWP_TYPE_BITS) | (ty << (64 - SWP_TYPE_BITS))
}
/// Linux: __swp_type.
pub const fn __swp_type(raw: u64) -> u64 {
    raw >> (64 - SWP_TYPE_BITS)
}
/// Linux: __swp_offset.
pub const fn __swp_offset(raw: u64) -> u64 {
    (!raw) << SWP_TYPE_BITS >> SWP_OFFSET_SHIFT
}

// ---- The arch-independent entry (include/linux/swapops.h) ----

/// MAX_SWAPFILES on the reference config (no MEMORY_FAILURE, no DEVICE_PRIVATE): 28.
/// Types 28-30 are the migration types, 31 the PTE marker.
pub const MAX_SWAPFILES: u64 = 28;
pub const SWP_MIGRATION_READ: u64 = 28;
pub const SWP_MIGRATION_READ_EXCLUSIVE: u64 = 29;
pub const SWP_MIGRATION_WRITE: u64 = 30;
/// The PTE-marker type (always 31 since v6.2).
pub const SWP_PTE_MARKER: u64 = 31;
/// PTE marker bits (the offset of a marker entry).
pub const PTE_MARKER_UFFD_WP: u64 = 1 << 0;
pub const PTE_MARKER_POISONED: u64 = 1 << 1;
pub const PTE_MARKER_GUARD: u64 = 1 << 2;
pub const PTE_MARKER_MASK: u64 = 0x7;
/// The offset field's width (50 bits).
pub const SWP_OFFSET_MASK: u64 = (1 << 50) - 1;

/// A swap entry (Linux: swp_entry_t): a type and an offset, without the PTE flag bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwpEntry {
    pub ty: u64,
    pub offset: u64,
}

/// Linux: swp_entry.
pub const fn swp_entry(ty: u64, offset: u64) -> SwpEntry {
    SwpEntry { ty, offset: offset & SWP_OFFSET_MASK }
}
impl SwpEntry {
    /// Linux: swp_type.
    pub const fn swp_type(self) -> u64 {
        self.ty
    }
    /// Linux: swp_offset.
    pub const fn swp_offset(self) -> u64 {
        self.offset
    }
    /// Linux: non_swap_entry (migration, hwpoison, device, marker).
    pub const fn non_swap_entry(self) -> bool {
        self.ty >= MAX_SWAPFILES
    }
    /// Linux: is_pte_marker_entry.
    pub const fn is_pte_marker_entry(self) -> bool {
        self.ty == SWP_PTE_MARKER
    }
    /// Linux: pte_marker_get (the marker bits of a marker entry).
    pub const fn pte_marker_get(self) -> u64 {
        self.offset & PTE_MARKER_MASK
    }
}

/// Linux: make_pte_marker_entry.
pub const fn make_pte_marker_entry(marker: u64) -> SwpEntry {
    swp_entry(SWP_PTE_MARKER, marker)
}

/// Linux: is_swap_pte: neither none nor present (PROT_NONE entries are present to Linux).
pub fn is_swap_pte(pte: Entry) -> bool {
    !pgtable::pte_none(pte) && !pte.is_present() && !pte.has(_PAGE_PROTNONE)
}
/// Linux: pte_to_swp_entry (the flag bits are stripped first: pte_swp_clear_flags).
pub fn pte_to_swp_entry(pte: Entry) -> SwpEntry {
    let raw = pte.raw() & !_PAGE_SWP_FLAGS;
    swp_entry(__swp_type(raw), __swp_offset(raw))
}
/// Linux: swp_entry_to_pte (no flag bits; add them with the pte_swp_mk* helpers).
pub fn swp_entry_to_pte(e: SwpEntry) -> Entry {
    Entry::new(__swp_entry(e.ty, e.offset))
}
/// Linux: pte_swp_uffd_wp.
pub fn pte_swp_uffd_wp(pte: Entry) -> bool {
    pte.has(_PAGE_SWP_UFFD_WP)
}
/// Linux: pte_swp_mkuffd_wp.
pub fn pte_swp_mkuffd_wp(pte: Entry) -> Entry {
    pte.with(_PAGE_SWP_UFFD_WP)
}
/// Linux: pte_swp_clear_uffd_wp.
pub fn pte_swp_clear_uffd_wp(pte: Entry) -> Entry {
    pte.without(_PAGE_SWP_UFFD_WP)
}
/// Linux: pte_swp_exclusive.
pub fn pte_swp_exclusive(pte: Entry) -> bool {
    pte.has(_PAGE_SWP_EXCLUSIVE)
}
/// Linux: pte_swp_mkexclusive.
pub fn pte_swp_mkexclusive(pte: Entry) -> Entry {
    pte.with(_PAGE_SWP_EXCLUSIVE)
}
/// Linux: pte_swp_clear_exclusive.
pub fn pte_swp_clear_exclusive(pte: Entry) -> Entry {
    pte.without(_PAGE_SWP_EXCLUSIVE)
}
/// Linux: pte_swp_uffd_wp_any: a swap entry with bit 2, or a uffd-wp marker.
pub fn pte_swp_uffd_wp_any(pte: Entry) -> bool {
    if !is_swap_pte(pte) {
        return false;
    }
    if pte_swp_uffd_wp(pte) {
        return true;
    }
    let e = pte_to_swp_entry(pte);
    e.is_pte_marker_entry() && e.pte_marker_get() & PTE_MARKER_UFFD_WP != 0
}

/// Any PTE without uffd-wp in any form (mremap without EVENT_REMAP, the CVE-2025-21696
/// fix "mm: clear uffd-wp PTE/PMD state on mremap()"): a present or PROT_NONE PTE loses `_PAGE_UFFD_WP` (R/W stays clear: the next
/// write takes an ordinary write fault), a swap entry loses `_PAGE_SWP_UFFD_WP`, a marker
/// loses `PTE_MARKER_UFFD_WP` and becomes none when nothing else is left.
pub fn pte_clear_uffd_wp_any(pte: Entry) -> Entry {
    if pgtable::pte_none(pte) {
        return pte;
    }
    if !is_swap_pte(pte) {
        return pte.without(_PAGE_UFFD_WP);
    }
    let e = pte_to_swp_entry(pte);
    if e.is_pte_marker_entry() {
        let mask = e.pte_marker_get() & !PTE_MARKER_UFFD_WP;
        return if mask == 0 { Entry::new(0) } else { swp_entry_to_pte(make_pte_marker_entry(mask)) };
    }
    pte_swp_clear_uffd_wp(pte)
}

/// Sets or clears the uffd-wp bit of the swap PTE in `slot` (change_protection's swap arm
/// for MM_CP_UFFD_WP / MM_CP_UFFD_WP_RESOLVE). Returns whether the entry changed. The
/// entry is not present, so no TLB can hold it: nothing to flush.
pub fn swp_entry_set_uffd_wp(hw: &mut Hw, slot: Slot, va: u64, wp: bool) -> bool {
    let pte = pgtable::get_entry(&hw.mem, slot);
    if !is_swap_pte(pte) || pte_to_swp_entry(pte).non_swap_entry() {
        return false;
    }
    let new = if wp { pte_swp_mkuffd_wp(pte) } else { pte_swp_clear_uffd_wp(pte) };
    if new == pte {
        return false;
    }
    pgtable::set_entry(&mut hw.mem, slot, va, new).not_needed();
    true
}

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
    if e.non_swap_entry() {
        return;
    }
    let dev = &mut hw.swap;
    if let Some(s) = dev.slots.get_mut(&e.offset) {
        s.0 -= 1;
        if s.0 == 0 {
            dev.slots.remove(&e.offset);
            dev.free.insert(e.offset);
        }
    }
}

/// Linux: free_swap_and_cache, for zap: drops the reference a swap PTE held (markers and
/// other non-swap entries hold none).
pub fn zap_swap_pte(hw: &mut Hw, pte: Entry) {
    if is_swap_pte(pte) {
        swap_free(hw, pte_to_swp_entry(pte));
    }
}

/// Linux: copy_nonpresent_pte for a swap PTE or marker being copied to a child at fork.
/// A swap entry takes one more slot reference; `keep_uffd_wp` (the child VMA has
/// VM_UFFD_WP) decides whether the child's entry keeps `_PAGE_SWP_UFFD_WP`, and a uffd-wp
/// marker, whose mask then becomes empty, is not copied (None). The parent's entry loses
/// `_PAGE_SWP_EXCLUSIVE` (the page is now shared), and so does the child's.
/// Returns (the child's entry, the parent's new entry if it changed).
pub fn copy_nonpresent_pte(hw: &mut Hw, pte: Entry, keep_uffd_wp: bool) -> (Option<Entry>, Option<Entry>) {
    let e = pte_to_swp_entry(pte);
    if e.is_pte_marker_entry() {
        let mut mask = e.pte_marker_get();
        if !keep_uffd_wp {
            mask &= !PTE_MARKER_UFFD_WP;
        }
        return ((mask != 0).then(|| swp_entry_to_pte(make_pte_marker_entry(mask))), None);
    }
    if e.non_swap_entry() {
        return (Some(pte), None);
    }
    swap_duplicate(hw, e);
    let parent = pte_swp_exclusive(pte).then(|| pte_swp_clear_exclusive(pte));
    let mut child = pte_swp_clear_exclusive(pte);
    if !keep_uffd_wp {
        child = pte_swp_clear_uffd_wp(child);
    }
    (Some(child), parent)
}

// ---- Swap-out: MADV_PAGEOUT ----

/// Linux: madvise_pageout over [start, end) of one VMA (madvise_cold_or_pageout_pte_range,
/// then reclaim_pages → shrink_folio_list → try_to_unmap_one, synchronously). Pages that
/// are private anonymous and mapped exactly once go to swap: the PTE becomes a swap entry
/// carrying uffd-wp (`_PAGE_UFFD_WP` → `_PAGE_SWP_UFFD_WP`) and PageAnonExclusive
/// (`_PAGE_SWP_EXCLUSIVE`), and the frame is freed. Skipped, as in Linux: the zero page
/// (no struct page), pages mapped more than once (COW-shared after fork), shmem and file
/// VMAs (shmem swap comes with a later issue), and everything when no swap is configured
/// or the device is full. Returns the flush the unmapped entries need.
pub fn madvise_pageout(mm: &mut Mm, hw: &mut Hw, vma: &Vma, start: u64, end: u64) -> Option<Flush> {
    if !hw.swap.enabled() || !matches!(vma.backing, Backing::Anon | Backing::Heap | Backing::Stack) || vma.shared() {
        return None;
    }
    // VM_LOCKED pages are not reclaimed (can_madv_lru_vma: VM_LOCKED|VM_PFNMAP|VM_HUGETLB).
    if vma.flags.has(VmFlags::LOCKED) {
        return None;
    }
    let mut flush: Option<Flush> = None;
    let mut va = start;
    let mut paged = 0u64;
    while va < end {
        let Some(slot) = pgtable::walk_lookup(&hw.mem, mm.pml4, va) else {
            va = (va | 0x1f_ffff) + 1;
            continue;
        };
        if slot.level != mmu::Level::Pt {
            va = (va | 0x1f_ffff) + 1;
            continue;
        }
        let pte = pgtable::get_entry(&hw.mem, slot);
        let protnone = super::mprotect::is_protnone(pte);
        if (pte.is_present() || protnone) && !pte.has(_PAGE_SPECIAL) {
            let pa = pgtable::pte_pfn(pte);
            let m = *hw.pages.meta(pa);
            // folio_maybe_mapped_shared / folio_mapcount: only pages this PTE alone maps;
            // an extra reference (a pin, an in-flight copy) also keeps it (the reclaim
            // path's refcount freeze would fail).
            if !hw.pages.is_zero_page(pa) && m.mapcount == 1 && m.refcount == 1 {
                let mut data = Box::new([0u8; 4096]);
                hw.mem.read(pa, &mut data[..]);
                let Some(e) = hw.swap.alloc(data) else { break };
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
                    flush = Some(flush.map_or(f, |g| g.merge(f)));
                }
                hw.pages.unmap(pa);
                paged += 1;
            }
        }
        va += 4096;
    }
    if paged > 0 {
        tracing::trace!(target: "pagelab::swap", start = format_args!("{start:#x}"), end = format_args!("{end:#x}"), paged, inuse = hw.swap.inuse(), "pageout");
    }
    flush
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
    let e = pte_to_swp_entry(pte);
    if e.non_swap_entry() {
        if e.is_pte_marker_entry() {
            return super::memory::handle_pte_marker(vmf);
        }
        // Migration entries arrive with later issues.
        return FaultOutcome::Bus;
    }
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
    let exclusive = pte_swp_exclusive(pte) || hw.swap.count(e) == 1;
    let prot = pgtable::vm_page_prot(vma.readable(), vma.writable(), vma.executable(), vma.shared());
    let mut new = pgtable::mk_pte(frame, prot);
    if pte_swp_uffd_wp(pte) {
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

/// Frame of a present PTE or of a PROT_NONE one (pagemap).
pub fn present_pfn(pte: Entry) -> PhysAddr {
    pgtable::pte_pfn(pte)
}
