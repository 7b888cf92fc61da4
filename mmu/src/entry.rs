//! Page-table entries in their architectural format (SDM 4.5, tables 4-15 to 4-20).
//!
//! `Entry` is a *value* (Linux's `pte_t`): pure methods return new values. A location in
//! a table is a physical address (Linux's `ptep`); [`PhysMem::read_u64`](crate::PhysMem::read_u64) and
//! [`write_entry`](crate::tlb::write_entry) access it.
//! Writing an entry that may be cached in a TLB returns a `#[must_use]`
//! [`Flush`](crate::tlb::Flush) token.
//!
//! Bits that depend on the level (PS, PAT, G, D, the address field) have level-aware
//! accessors taking a [`Level`]. Software-available bits keep hardware names
//! (`SOFTW1..3` = bits 9..11, bits 52..58 via `softw_high`); Linux's meanings are aliases
//! defined in the guest kernel, never here.

use crate::addr::{PageSize, PhysAddr};

/// Paging-structure level: 4 = PML4, 3 = PDPT, 2 = PD, 1 = PT.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum Level {
    Pt = 1,
    Pd = 2,
    Pdpt = 3,
    Pml4 = 4,
}

impl Level {
    pub const fn number(self) -> u8 {
        self as u8
    }
    /// The page size a leaf at this level maps, if a leaf is possible here.
    pub const fn leaf_size(self) -> Option<PageSize> {
        match self {
            Level::Pt => Some(PageSize::Size4K),
            Level::Pd => Some(PageSize::Size2M),
            Level::Pdpt => Some(PageSize::Size1G),
            Level::Pml4 => None,
        }
    }
    pub const fn next_lower(self) -> Option<Level> {
        match self {
            Level::Pml4 => Some(Level::Pdpt),
            Level::Pdpt => Some(Level::Pd),
            Level::Pd => Some(Level::Pt),
            Level::Pt => None,
        }
    }
}

/// A 64-bit paging-structure entry at any level.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Entry(pub u64);

impl Entry {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const PWT: u64 = 1 << 3;
    pub const PCD: u64 = 1 << 4;
    pub const ACCESSED: u64 = 1 << 5;
    /// Dirty, in leaf entries only.
    pub const DIRTY: u64 = 1 << 6;
    /// Page size (PS) in PDPTEs and PDEs; reserved in PML4Es.
    pub const HUGE: u64 = 1 << 7;
    /// PAT in a 4 KiB PTE (same bit as `HUGE` at higher levels).
    pub const PAT_4K: u64 = 1 << 7;
    /// Global, in leaf entries only.
    pub const GLOBAL: u64 = 1 << 8;
    pub const SOFTW1: u64 = 1 << 9;
    pub const SOFTW2: u64 = 1 << 10;
    pub const SOFTW3: u64 = 1 << 11;
    /// PAT in a 2 MiB or 1 GiB leaf.
    pub const PAT_LARGE: u64 = 1 << 12;
    /// Execute-disable (XD / NX).
    pub const NX: u64 = 1 << 63;
    /// Protection key field, bits 62:59.
    pub const PKEY_SHIFT: u32 = 59;
    pub const PKEY_MASK: u64 = 0xf << 59;
    /// Software-available bits 58:52.
    pub const SOFTW_HIGH_MASK: u64 = 0x7f << 52;
    /// Bits 51:12, the widest physical-address field architecture allows.
    pub const ADDR_MASK_52: u64 = 0x000f_ffff_ffff_f000;

    pub const fn new(raw: u64) -> Self {
        Self(raw)
    }
    pub const fn raw(self) -> u64 {
        self.0
    }
    pub const fn has(self, bits: u64) -> bool {
        self.0 & bits == bits
    }
    #[must_use]
    pub const fn with(self, bits: u64) -> Self {
        Self(self.0 | bits)
    }
    #[must_use]
    pub const fn without(self, bits: u64) -> Self {
        Self(self.0 & !bits)
    }
    pub const fn is_present(self) -> bool {
        self.0 & Self::PRESENT != 0
    }
    pub const fn is_writable(self) -> bool {
        self.0 & Self::WRITABLE != 0
    }
    pub const fn is_user(self) -> bool {
        self.0 & Self::USER != 0
    }
    pub const fn is_accessed(self) -> bool {
        self.0 & Self::ACCESSED != 0
    }
    pub const fn is_dirty(self) -> bool {
        self.0 & Self::DIRTY != 0
    }
    pub const fn is_nx(self) -> bool {
        self.0 & Self::NX != 0
    }
    pub const fn is_global(self) -> bool {
        self.0 & Self::GLOBAL != 0
    }
    /// True if this entry maps a page at `level` (PS=1 at PD/PDPT, always at PT).
    pub const fn is_leaf(self, level: Level) -> bool {
        match level {
            Level::Pt => true,
            Level::Pd | Level::Pdpt => self.0 & Self::HUGE != 0,
            Level::Pml4 => false,
        }
    }
    pub const fn pkey(self) -> u8 {
        ((self.0 & Self::PKEY_MASK) >> Self::PKEY_SHIFT) as u8
    }
    #[must_use]
    pub const fn with_pkey(self, key: u8) -> Self {
        Self((self.0 & !Self::PKEY_MASK) | (((key & 0xf) as u64) << Self::PKEY_SHIFT))
    }
    /// Software-available high bits 58:52, as a 7-bit value.
    pub const fn softw_high(self) -> u8 {
        ((self.0 >> 52) & 0x7f) as u8
    }
    #[must_use]
    pub const fn with_softw_high(self, v: u8) -> Self {
        Self((self.0 & !Self::SOFTW_HIGH_MASK) | (((v & 0x7f) as u64) << 52))
    }
    /// The PAT bit of a leaf at `level` (bit 7 at PT, bit 12 for large leaves).
    pub const fn pat(self, level: Level) -> bool {
        match level {
            Level::Pt => self.0 & Self::PAT_4K != 0,
            _ => self.0 & Self::PAT_LARGE != 0,
        }
    }
    /// Sets or clears the PAT bit of a leaf at `level` (SDM 4.9.2).
    #[must_use]
    pub const fn with_pat(self, level: Level, pat: bool) -> Self {
        let bit = match level {
            Level::Pt => Self::PAT_4K,
            _ => Self::PAT_LARGE,
        };
        if pat {
            Self(self.0 | bit)
        } else {
            Self(self.0 & !bit)
        }
    }
    /// PAT index = PAT*4 + PCD*2 + PWT, for a leaf at `level`.
    pub const fn pat_index(self, level: Level) -> u8 {
        (self.pat(level) as u8) << 2 | ((self.0 & Self::PCD != 0) as u8) << 1 | (self.0 & Self::PWT != 0) as u8
    }
    /// The physical address this entry holds: the next table for a non-leaf, or the frame for
    /// a leaf of `level`'s size. Bits at and above `maxphyaddr` are not included (SDM 4.5.4:
    /// they are reserved, and [`Entry::reserved_bits`] reports them).
    pub const fn addr(self, level: Level, maxphyaddr: u8) -> PhysAddr {
        PhysAddr::new(self.0 & Self::phys_mask(maxphyaddr) & Self::frame_mask(self, level))
    }
    /// Replaces the address field: bits 51:12 for a table pointer or a 4 KiB page, 51:21 for a
    /// 2 MiB leaf and 51:30 for a 1 GiB leaf. For large leaves the low bits of `pa` are dropped,
    /// so bit 12 (PAT) and the reserved bits below the frame are kept as they were.
    #[must_use]
    pub const fn with_addr(self, pa: PhysAddr, level: Level) -> Self {
        let mask = Self::ADDR_MASK_52 & Self::frame_mask(self, level);
        Self((self.0 & !mask) | (pa.as_u64() & mask))
    }

    /// Bits M-1:12, the address bits MAXPHYADDR = `maxphyaddr` allows (SDM 4.1.4).
    pub const fn phys_mask(maxphyaddr: u8) -> u64 {
        if maxphyaddr >= 52 {
            Self::ADDR_MASK_52
        } else {
            ((1u64 << maxphyaddr) - 1) & !0xfff
        }
    }
    /// The alignment mask of the address this entry holds at `level`: page-size aligned for a
    /// large leaf, 4 KiB aligned otherwise.
    const fn frame_mask(self, level: Level) -> u64 {
        match level {
            Level::Pd if self.0 & Self::HUGE != 0 => !((1u64 << 21) - 1),
            Level::Pdpt if self.0 & Self::HUGE != 0 => !((1u64 << 30) - 1),
            _ => !0xfff,
        }
    }
    /// The reserved bits set in this entry, interpreted as a *present* entry at `level`
    /// (SDM 4.5.4, tables 4-15 to 4-20; 1 GiB pages are supported): bits 51:M, bit 63 when
    /// EFER.NXE=0, PS in a PML4E, and the address bits below a large frame (20:13 for 2 MiB,
    /// 29:13 for 1 GiB). Zero means the entry is well formed. Not-present entries have no
    /// reserved bits: the caller checks P first.
    pub const fn reserved_bits(self, level: Level, maxphyaddr: u8, nxe: bool) -> u64 {
        let mut rsvd = Self::ADDR_MASK_52 & !Self::phys_mask(maxphyaddr);
        if !nxe {
            rsvd |= Self::NX;
        }
        rsvd |= match level {
            Level::Pml4 => Self::HUGE,
            Level::Pdpt if self.0 & Self::HUGE != 0 => ((1u64 << 30) - 1) & !((1u64 << 13) - 1),
            Level::Pd if self.0 & Self::HUGE != 0 => ((1u64 << 21) - 1) & !((1u64 << 13) - 1),
            _ => 0,
        };
        self.0 & rsvd
    }
}

impl core::fmt::Debug for Entry {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Entry({:#018x}", self.0)?;
        for (bit, name) in [
            (Self::PRESENT, "P"),
            (Self::WRITABLE, "W"),
            (Self::USER, "U"),
            (Self::PWT, "PWT"),
            (Self::PCD, "PCD"),
            (Self::ACCESSED, "A"),
            (Self::DIRTY, "D"),
            (Self::HUGE, "PS/PAT"),
            (Self::GLOBAL, "G"),
            (Self::SOFTW1, "SW1"),
            (Self::SOFTW2, "SW2"),
            (Self::SOFTW3, "SW3"),
            (Self::NX, "NX"),
        ] {
            if self.0 & bit != 0 {
                write!(f, " {name}")?;
            }
        }
        write!(f, ")")
    }
}
