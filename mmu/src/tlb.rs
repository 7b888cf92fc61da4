//! A per-vCPU TLB (SDM 4.10): caches translations the way hardware may, including stale
//! ones, until software invalidates them.
//!
//! CONTRACT (implemented by the mmu owner; signatures are fixed, bodies may change).

use crate::phys::PhysMem;
use crate::walk::{Access, ControlRegs, Translation, WalkFault};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlbStats {
    pub hits: u64,
    pub misses: u64,
    pub walks: u64,
    pub fills: u64,
    pub flushes: u64,
}

pub struct Tlb {
    pub stats: TlbStats,
    /// Incremented by every invalidation of any kind; lets callers cache a translation
    /// (e.g. the current code page) and know when it may have gone stale.
    pub generation: u64,
}

impl Default for Tlb {
    fn default() -> Self {
        Self::new()
    }
}

impl Tlb {
    pub fn new() -> Self {
        todo!("mmu owner")
    }

    /// Hot path: the physical address of `la` if a cached translation permits `acc` under `ctl`
    /// (including a write needing D already set in the cached leaf). No side effects but stats.
    #[inline]
    pub fn lookup(&mut self, ctl: &ControlRegs, la: u64, acc: Access) -> Option<u64> {
        let _ = (ctl, la, acc);
        todo!("mmu owner")
    }

    /// Lookup, and on a miss (or a write through a clean cached entry) a full walk that fills
    /// the TLB on success. Never caches a fault.
    pub fn translate(&mut self, mem: &mut PhysMem, ctl: &ControlRegs, la: u64, acc: Access) -> Result<u64, WalkFault> {
        let _ = (mem, ctl, la, acc);
        todo!("mmu owner")
    }

    /// Like `translate` but always walks (for tracing/tests), returning the full translation.
    pub fn translate_full(&mut self, mem: &mut PhysMem, ctl: &ControlRegs, la: u64, acc: Access) -> Result<Translation, WalkFault> {
        let _ = (mem, ctl, la, acc);
        todo!("mmu owner")
    }

    /// INVLPG: the page containing `la` in the current PCID, and global entries for it in any PCID.
    pub fn invlpg(&mut self, ctl: &ControlRegs, la: u64) {
        let _ = (ctl, la);
        todo!("mmu owner")
    }
    /// MOV to CR3 with `new_cr3` as the source operand (bit 63 honoured with PCIDE). Updates ctl.cr3.
    pub fn write_cr3(&mut self, ctl: &mut ControlRegs, new_cr3: u64) {
        let _ = (ctl, new_cr3);
        todo!("mmu owner")
    }
    /// MOV to CR4, flushing what the SDM says a change of PGE/PCIDE/SMEP/PAE flushes. Updates ctl.cr4.
    pub fn write_cr4(&mut self, ctl: &mut ControlRegs, new_cr4: u64) {
        let _ = (ctl, new_cr4);
        todo!("mmu owner")
    }
    /// INVPCID of type 0..=3.
    pub fn invpcid(&mut self, kind: u8, pcid: u16, la: u64) {
        let _ = (kind, pcid, la);
        todo!("mmu owner")
    }
    /// Everything, global entries included.
    pub fn flush_all(&mut self) {
        todo!("mmu owner")
    }
    /// Every cached translation for linear addresses in [start, end), any PCID, global included.
    pub fn flush_range(&mut self, start: u64, end: u64) {
        let _ = (start, end);
        todo!("mmu owner")
    }
    /// Every cached translation, as (linear page, pcid, cached leaf rights) for checkers.
    pub fn entries(&self) -> Vec<(u64, u16, Translation)> {
        todo!("mmu owner")
    }
}

/// A pending invalidation, returned by every entry write that may leave a stale TLB entry.
/// It must be applied to every TLB that may cache the old entry, or explicitly ignored with a
/// reason: forgetting a flush does not compile cleanly.
#[must_use = "a page-table change must be flushed from every TLB that may cache it"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flush {
    pub start: u64,
    pub end: u64,
}

impl Flush {
    pub const fn page(va: u64, size: crate::addr::PageSize) -> Self {
        let start = va & !(size.bytes() - 1);
        Self { start, end: start + size.bytes() }
    }
    pub const fn range(start: u64, end: u64) -> Self {
        Self { start, end }
    }
    /// The union's hull of two pending flushes.
    pub fn merge(self, other: Flush) -> Flush {
        Flush { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
    pub fn apply(self, tlb: &mut Tlb) {
        tlb.flush_range(self.start, self.end)
    }
    pub fn apply_all<'a>(self, tlbs: impl IntoIterator<Item = &'a mut Tlb>) {
        for t in tlbs {
            t.flush_range(self.start, self.end)
        }
    }
    /// Drops the flush. Only correct when the old entry could not be cached (it was not
    /// present, or had a reserved bit set): SDM 4.10.2.3.
    pub fn not_needed(self) {}
}

/// Writes `new` into the entry slot at `slot` and returns the flush the change needs.
pub fn write_entry(mem: &mut PhysMem, slot: crate::addr::PhysAddr, new: crate::entry::Entry, va: u64, size: crate::addr::PageSize) -> Flush {
    mem.write_u64(slot, new.raw());
    Flush::page(va, size)
}
