//! Page tables in guest physical memory, in the hardware format, with Linux's software
//! meanings layered on top (arch/x86/include/asm/pgtable_types.h).
//!
//! Every entry change goes through [`set_entry`], which returns the [`Flush`] the change
//! needs; the caller must apply it to every TLB that may cache the old entry, or declare
//! with `Flush::not_needed` that the old entry was not present.

use super::page::Pages;
use mmu::tlb::write_entry;
use mmu::{Entry, Flush, Level, PageSize, PhysAddr, PhysMem, VirtAddr};

/// Linux's names for the bits it uses (pgtable_types.h).
pub mod linux {
    use mmu::Entry;
    pub const _PAGE_PRESENT: u64 = Entry::PRESENT;
    pub const _PAGE_RW: u64 = Entry::WRITABLE;
    pub const _PAGE_USER: u64 = Entry::USER;
    pub const _PAGE_ACCESSED: u64 = Entry::ACCESSED;
    pub const _PAGE_DIRTY: u64 = Entry::DIRTY;
    pub const _PAGE_PSE: u64 = Entry::HUGE;
    pub const _PAGE_GLOBAL: u64 = Entry::GLOBAL;
    /// _PAGE_BIT_SOFTW1: _PAGE_SPECIAL.
    pub const _PAGE_SPECIAL: u64 = Entry::SOFTW1;
    /// _PAGE_BIT_SOFTW2: uffd-wp on present entries.
    pub const _PAGE_UFFD_WP: u64 = Entry::SOFTW2;
    /// _PAGE_BIT_SOFTW3: soft-dirty (unused: CONFIG_MEM_SOFT_DIRTY=n).
    pub const _PAGE_SOFT_DIRTY: u64 = Entry::SOFTW3;
    pub const _PAGE_NX: u64 = Entry::NX;
    /// _PAGE_PROTNONE: the GLOBAL bit, meaningful only with P clear (PROT_NONE pages).
    pub const _PAGE_PROTNONE: u64 = Entry::GLOBAL;
    /// The bits that survive a protection change (_PAGE_CHG_MASK): the frame, PCD/PWT/PAT,
    /// special, A, D, soft-dirty, uffd-wp.
    pub const _PAGE_CHG_MASK: u64 = Entry::ADDR_MASK_52
        | Entry::PWT
        | Entry::PCD
        | _PAGE_SPECIAL
        | _PAGE_ACCESSED
        | _PAGE_DIRTY
        | _PAGE_SOFT_DIRTY
        | _PAGE_UFFD_WP
        | Entry::PAT_4K;
    /// _PAGE_TABLE: what a non-leaf entry carries.
    pub const _PAGE_TABLE: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY;
}

use linux::*;

/// The PTE protection bits for a VMA (Linux: vm_get_page_prot / protection_map). Private
/// writable mappings are *not* writable here: write access is granted per page at fault
/// time (copy-on-write).
pub fn vm_page_prot(read: bool, write: bool, exec: bool, shared: bool) -> u64 {
    if !read && !write && !exec {
        // PROT_NONE: change_protection writes the _PAGE_PROTNONE form instead.
        return 0;
    }
    let mut p = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED;
    if write && shared {
        p |= _PAGE_RW;
    }
    if !exec {
        p |= _PAGE_NX;
    }
    p
}

/// Location of a leaf slot, and the level it is at.
#[derive(Clone, Copy, Debug)]
pub struct Slot {
    pub pa: PhysAddr,
    pub level: Level,
}

/// The slot of `va`'s entry in `table`, a table at `level` (Linux: pgd_offset,
/// pud_offset, pmd_offset, pte_offset_kernel).
pub fn index_slot(table: PhysAddr, va: u64, level: Level) -> PhysAddr {
    PhysAddr::new(table.as_u64() + 8 * VirtAddr::new_truncate(va).table_index(level.number()) as u64)
}

/// Installs a new, empty table below the not-present entry in `slot` (an upper-level slot
/// covering `va`) and returns it (Linux: __pte_alloc / __pmd_alloc / __pud_alloc with
/// pmd_populate and friends). None when memory for the table is exhausted. The frame goes
/// on `tables`, so the mm frees it on exit.
pub fn table_alloc(mem: &mut PhysMem, pages: &mut Pages, tables: &mut Vec<PhysAddr>, slot: Slot, va: u64) -> Option<PhysAddr> {
    debug_assert!(slot.level != Level::Pt && !get_entry(mem, slot).is_present());
    let t = pages.alloc_zeroed(mem)?;
    tables.push(t);
    // The old entry was not present: nothing can be cached for it.
    write_entry(mem, slot.pa, Entry::new(_PAGE_TABLE).with_addr(t, slot.level), va, PageSize::Size4K).not_needed();
    Some(t)
}

/// Finds the PTE slot for `va`, allocating intermediate tables (Linux: pte_alloc and the
/// p?d_alloc family). Returns None when memory for a table is exhausted. Stops early at a
/// huge leaf, returning its slot.
pub fn walk_alloc(mem: &mut PhysMem, pages: &mut Pages, tables: &mut Vec<PhysAddr>, pml4: PhysAddr, va: u64) -> Option<Slot> {
    let pmd = pmd_alloc(mem, pages, tables, pml4, va)?;
    pte_alloc(mem, pages, tables, pmd, va)
}

/// Finds the PMD slot (the page-directory entry) for `va`, allocating the PDPT and the page
/// directory on the way (Linux: p4d_alloc, pud_alloc, pmd_alloc); the entry itself is not
/// read. Stops early at a 1 GiB leaf, returning its slot. None when memory for a table is
/// exhausted. The first half of `walk_alloc`, for the fault path, which looks at the PMD
/// before the page table.
pub fn pmd_alloc(mem: &mut PhysMem, pages: &mut Pages, tables: &mut Vec<PhysAddr>, pml4: PhysAddr, va: u64) -> Option<Slot> {
    let mut table = pml4;
    let mut level = Level::Pml4;
    loop {
        let slot = index_slot(table, va, level);
        if level == Level::Pd {
            return Some(Slot { pa: slot, level });
        }
        let e = Entry::new(mem.read_u64(slot));
        // A leaf, present or not (a PROT_NONE 1 GiB page, a hugetlb marker): only a none
        // entry gets a table (Linux: pud_alloc allocates for pud_none alone).
        if (e.is_present() && e.is_leaf(level)) || (!e.is_present() && e.raw() != 0) {
            return Some(Slot { pa: slot, level });
        }
        table = if e.is_present() { e.addr(level, 52) } else { table_alloc(mem, pages, tables, Slot { pa: slot, level }, va)? };
        level = level.next_lower().unwrap();
    }
}

/// Finds the PTE slot for `va` under the PMD slot `pmd` (from `pmd_alloc`), allocating the
/// page table when the PMD is not present (Linux: pte_alloc, pte_offset_map). A `pmd`
/// that is a huge leaf, or the 1 GiB leaf above, is returned as it is. None when memory
/// for the table is exhausted.
pub fn pte_alloc(mem: &mut PhysMem, pages: &mut Pages, tables: &mut Vec<PhysAddr>, pmd: Slot, va: u64) -> Option<Slot> {
    if pmd.level != Level::Pd {
        return Some(pmd);
    }
    let e = Entry::new(mem.read_u64(pmd.pa));
    // A huge leaf, present or PROT_NONE, or any other non-none entry (a hugetlb marker):
    // only pmd_none gets a page table (measured: a COPY under a PROT_NONE huge zero PMD
    // is EEXIST; allocating there overwrote the huge mapping).
    if (e.is_present() && e.is_leaf(Level::Pd)) || (!e.is_present() && e.raw() != 0) {
        return Some(pmd);
    }
    let table = if e.is_present() { e.addr(Level::Pd, 52) } else { table_alloc(mem, pages, tables, pmd, va)? };
    Some(Slot { pa: index_slot(table, va, Level::Pt), level: Level::Pt })
}

/// Finds the leaf slot for `va` without allocating.
pub fn walk_lookup(mem: &PhysMem, pml4: PhysAddr, va: u64) -> Option<Slot> {
    lookup_to(mem, pml4, va, Level::Pt)
}

/// The PD slot over `va`, if the tables above it exist (no allocation).
pub fn pmd_lookup(mem: &PhysMem, pml4: PhysAddr, va: u64) -> Option<Slot> {
    lookup_to(mem, pml4, va, Level::Pd).filter(|s| s.level == Level::Pd)
}

/// The slot at `stop` over `va`, or the leaf above it, or None where a table is missing.
fn lookup_to(mem: &PhysMem, pml4: PhysAddr, va: u64, stop: Level) -> Option<Slot> {
    let mut table = pml4;
    let mut level = Level::Pml4;
    loop {
        let slot = index_slot(table, va, level);
        if level == stop {
            return Some(Slot { pa: slot, level });
        }
        let e = Entry::new(mem.read_u64(slot));
        if !e.is_present() {
            return None;
        }
        if e.is_leaf(level) {
            return Some(Slot { pa: slot, level });
        }
        table = e.addr(level, 52);
        level = level.next_lower().unwrap();
    }
}

pub fn get_entry(mem: &PhysMem, slot: Slot) -> Entry {
    Entry::new(mem.read_u64(slot.pa))
}

/// Writes an entry (Linux: set_pte_at / ptep_modify_prot_commit).
pub fn set_entry(mem: &mut PhysMem, slot: Slot, va: u64, new: Entry) -> Flush {
    let size = slot.level.leaf_size().unwrap_or(PageSize::Size4K);
    write_entry(mem, slot.pa, new, va, size)
}

/// A present PTE for `frame` with protection bits `prot`.
///
/// The protection 0 of a PROT_NONE VMA (`vm_page_prot`) gives the _PAGE_PROTNONE form, as
/// Linux's PAGE_NONE: a UFFDIO_COPY into a PROT_NONE VMA maps its page not present.
pub fn mk_pte(frame: PhysAddr, prot: u64) -> Entry {
    let prot = if prot == 0 { _PAGE_PROTNONE | _PAGE_USER | _PAGE_ACCESSED } else { prot };
    Entry::new(prot).with_addr(frame, mmu::Level::Pt)
}

/// Frees the page table under the PMD slot `pmd` (over `va`) if all its entries are
/// none, leaving the PMD none: a table a fault allocated and did not use.
pub fn free_pte_table_if_empty(mm: &mut super::Mm, hw: &mut crate::kernel::hw::Hw, pmd: Slot, va: u64) {
    let e = get_entry(&hw.mem, pmd);
    if !e.is_present() || e.is_leaf(Level::Pd) {
        return;
    }
    let table = e.addr(Level::Pd, 52);
    if !pte_table_is_empty(&hw.mem, table) {
        return;
    }
    let f = set_entry(&mut hw.mem, pmd, va & !0x1f_ffff, Entry::new(0));
    hw.flush(f, mm.pml4.as_u64());
    mm.table_frames.retain(|&t| t != table);
    hw.pages.put(table);
}

/// Whether every entry of the page table at `table` is none (markers are not).
pub fn pte_table_is_empty(mem: &PhysMem, table: PhysAddr) -> bool {
    (0..512).all(|i| pte_none(Entry::new(mem.read_u64(PhysAddr::new(table.as_u64() + 8 * i)))))
}

pub fn pte_none(e: Entry) -> bool {
    // The A/D bits may be set by hardware in not-present entries on some parts (Knights
    // Landing erratum); Linux ignores them in pte_none.
    e.raw() & !(Entry::ACCESSED | Entry::DIRTY) == 0
}

pub fn pte_pfn(e: Entry) -> PhysAddr {
    e.addr(Level::Pt, 52)
}
