//! Test support: builds 4-level page tables in a `PhysMem`, one mapping at a time, with the
//! flags of every level under the test's control.
#![allow(dead_code)]

use mmu::{ControlRegs, Entry, Level, PageSize, PhysAddr, PhysMem, VirtAddr};

pub const P: u64 = Entry::PRESENT;
pub const W: u64 = Entry::WRITABLE;
pub const U: u64 = Entry::USER;
pub const A: u64 = Entry::ACCESSED;
pub const D: u64 = Entry::DIRTY;
pub const G: u64 = Entry::GLOBAL;
pub const NX: u64 = Entry::NX;
/// Present, writable, user: the most permissive entry.
pub const PWU: u64 = P | W | U;
pub const MAXPHYADDR: u8 = 39;

/// Page tables under construction. Tables are taken from a bump allocator starting at 4 KiB;
/// the PML4 is the first.
pub struct Tables {
    pub mem: PhysMem,
    next: u64,
    pub pml4: u64,
}

impl Default for Tables {
    fn default() -> Self {
        Self::new()
    }
}

impl Tables {
    pub fn new() -> Self {
        let mut t = Self { mem: PhysMem::new(8 << 20), next: 0x1000, pml4: 0 };
        t.pml4 = t.table();
        t
    }
    fn table(&mut self) -> u64 {
        let a = self.next;
        self.next += 0x1000;
        a
    }
    /// CR3 for these tables with PCID `pcid` (the caller sets CR4.PCIDE).
    pub fn cr3(&self, pcid: u16) -> u64 {
        self.pml4 | pcid as u64
    }
    /// Linux's user-mode control state over these tables, with MAXPHYADDR = 39.
    pub fn ctl(&self) -> ControlRegs {
        ControlRegs::linux_user(self.pml4, MAXPHYADDR)
    }

    /// Maps `va` to `pa` with a leaf of `size` carrying `leaf` (P is not implied, PS is), and
    /// upper entries (PML4E, PDPTE, PDE, as far as the walk goes) carrying `upper[i]`. Upper
    /// entries that already exist are rewritten with the new flags.
    pub fn map(&mut self, va: u64, pa: u64, size: PageSize, leaf: u64, upper: [u64; 3]) {
        let leaf_level = match size {
            PageSize::Size4K => Level::Pt,
            PageSize::Size2M => Level::Pd,
            PageSize::Size1G => Level::Pdpt,
        };
        let mut table = self.pml4;
        let mut level = Level::Pml4;
        let mut i = 0;
        while level != leaf_level {
            let slot = self.slot_in(table, va, level);
            let old = Entry(self.mem.read_u64(slot));
            let next = if old.0 & Entry::ADDR_MASK_52 != 0 { old.addr(level, 52).as_u64() } else { self.table() };
            self.mem.write_u64(slot, next | upper[i]);
            table = next;
            level = level.next_lower().unwrap();
            i += 1;
        }
        let ps = if leaf_level == Level::Pt { 0 } else { Entry::HUGE };
        let slot = self.slot_in(table, va, leaf_level);
        self.mem.write_u64(slot, pa | leaf | ps);
    }
    /// A 4 KiB user read/write mapping with fully permissive upper levels.
    pub fn map_4k(&mut self, va: u64, pa: u64, leaf: u64) {
        self.map(va, pa, PageSize::Size4K, leaf, [PWU; 3])
    }

    fn slot_in(&self, table: u64, va: u64, level: Level) -> PhysAddr {
        PhysAddr::new(table + 8 * VirtAddr::new_truncate(va).table_index(level.number()) as u64)
    }
    /// The slot of `va`'s entry at `level` (the tables down to it must exist).
    pub fn slot(&self, va: u64, level: Level) -> PhysAddr {
        let mut table = self.pml4;
        let mut l = Level::Pml4;
        while l != level {
            table = Entry(self.mem.read_u64(self.slot_in(table, va, l))).addr(l, 52).as_u64();
            l = l.next_lower().unwrap();
        }
        self.slot_in(table, va, level)
    }
    pub fn entry(&self, va: u64, level: Level) -> Entry {
        Entry(self.mem.read_u64(self.slot(va, level)))
    }
    pub fn set(&mut self, va: u64, level: Level, e: Entry) {
        let s = self.slot(va, level);
        self.mem.write_u64(s, e.0);
    }
}
