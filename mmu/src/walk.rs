//! The 4-level page walk (SDM 4.5), permission checks (SDM 4.6), A/D updates (SDM 4.8) and
//! the #PF error code (SDM 4.7).
//!
//! CONTRACT (implemented by the mmu owner; signatures are fixed, bodies may change).

use crate::addr::{PageSize, PhysAddr};
use crate::entry::Entry;
use crate::phys::PhysMem;

/// The control state a walk depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlRegs {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub pkru: u32,
    /// MAXPHYADDR, as CPUID 0x80000008 EAX[7:0] reports it.
    pub maxphyaddr: u8,
}

impl ControlRegs {
    pub const CR0_PE: u64 = 1 << 0;
    pub const CR0_WP: u64 = 1 << 16;
    pub const CR0_PG: u64 = 1 << 31;
    pub const CR4_PAE: u64 = 1 << 5;
    pub const CR4_PGE: u64 = 1 << 7;
    pub const CR4_PCIDE: u64 = 1 << 17;
    pub const CR4_SMEP: u64 = 1 << 20;
    pub const CR4_SMAP: u64 = 1 << 21;
    pub const CR4_PKE: u64 = 1 << 22;
    pub const EFER_LME: u64 = 1 << 8;
    pub const EFER_LMA: u64 = 1 << 10;
    pub const EFER_NXE: u64 = 1 << 11;

    /// The state Linux runs user code under: long mode, WP, PGE, NXE, and the given CR3.
    /// (SMEP/SMAP are off by default; tests turn them on.)
    pub fn linux_user(cr3: u64, maxphyaddr: u8) -> Self {
        Self {
            cr0: Self::CR0_PE | Self::CR0_PG | Self::CR0_WP,
            cr3,
            cr4: Self::CR4_PAE | Self::CR4_PGE,
            efer: Self::EFER_LME | Self::EFER_LMA | Self::EFER_NXE,
            pkru: 0,
            maxphyaddr,
        }
    }
    /// The PCID in use (0 unless CR4.PCIDE).
    pub fn pcid(&self) -> u16 {
        if self.cr4 & Self::CR4_PCIDE != 0 {
            (self.cr3 & 0xfff) as u16
        } else {
            0
        }
    }
    /// Physical address of the PML4 table.
    pub fn pml4(&self) -> PhysAddr {
        PhysAddr::new(self.cr3 & (((1u64 << self.maxphyaddr) - 1) & !0xfff))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum AccessKind {
    Read,
    Write,
    Fetch,
}

/// One memory access as the walk sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Access {
    pub kind: AccessKind,
    /// CPL = 3 (a user-mode access).
    pub user: bool,
    /// An implicit supervisor access (descriptor tables etc.): SMAP applies regardless of AC.
    pub implicit: bool,
    /// EFLAGS.AC at the time of the access (matters only for explicit supervisor accesses under SMAP).
    pub ac: bool,
}

impl Access {
    pub const fn user(kind: AccessKind) -> Self {
        Self { kind, user: true, implicit: false, ac: false }
    }
    pub const fn supervisor(kind: AccessKind) -> Self {
        Self { kind, user: false, implicit: false, ac: false }
    }
}

/// A #PF error code (SDM 4.7). Bit names follow the SDM; Linux calls them X86_PF_*.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PfErrorCode(pub u32);

impl PfErrorCode {
    pub const P: u32 = 1 << 0;
    pub const W: u32 = 1 << 1;
    pub const U: u32 = 1 << 2;
    pub const RSVD: u32 = 1 << 3;
    pub const ID: u32 = 1 << 4;
    pub const PK: u32 = 1 << 5;
    pub const fn bits(self) -> u32 {
        self.0
    }
    pub const fn has(self, b: u32) -> bool {
        self.0 & b != 0
    }
}

impl core::fmt::Debug for PfErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PfErrorCode({:#x}", self.0)?;
        for (b, n) in [(Self::P, "P"), (Self::W, "W"), (Self::U, "U"), (Self::RSVD, "RSVD"), (Self::ID, "I/D"), (Self::PK, "PK")] {
            if self.0 & b != 0 {
                write!(f, " {n}")?;
            }
        }
        write!(f, ")")
    }
}

/// Why a translation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum WalkFault {
    /// #PF with CR2 = `addr` (the full linear address) and the exact error code.
    PageFault { addr: u64, code: PfErrorCode },
    /// A non-canonical address: #GP(0) (or #SS for stack accesses, which the CPU decides).
    NonCanonical { addr: u64 },
}

/// A successful translation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Translation {
    /// The physical address of the accessed byte (frame base + offset).
    pub pa: PhysAddr,
    pub size: PageSize,
    /// The leaf entry as it is in memory after the A/D update.
    pub leaf: Entry,
    /// Rights combined over all levels.
    pub writable: bool,
    pub user: bool,
    pub nx: bool,
    pub global: bool,
    /// The entries used, PML4E first; `levels` of them are valid (4 for 4K, 3 for 2M, 2 for 1G).
    pub entries: [Entry; 4],
    pub levels: u8,
}

/// Walks the tables rooted at `ctl.cr3` for `la`, checking `acc` and updating A (every entry
/// used) and D (the leaf, only for a write that succeeds).
pub fn walk(mem: &mut PhysMem, ctl: &ControlRegs, la: u64, acc: Access) -> Result<Translation, WalkFault> {
    let _ = (mem, ctl, la, acc, PageSize::Size4K);
    todo!("mmu owner")
}
