//! Guest address types: `VirtAddr` (a canonical 48-bit linear address) and `PhysAddr`
//! (a guest-physical address), kept distinct so one can never be passed for the other.
//! SDM 4.5: 4-level paging translates 48-bit linear addresses; bits 63:48 must equal bit 47.

use core::fmt;

/// A canonical guest linear (virtual) address. Invariant: bits 63:48 equal bit 47.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtAddr(u64);

impl VirtAddr {
    /// The address, or `None` if it is not canonical.
    pub const fn new(addr: u64) -> Option<Self> {
        if Self::is_canonical(addr) {
            Some(Self(addr))
        } else {
            None
        }
    }
    /// Sign-extends bit 47, making any value canonical.
    pub const fn new_truncate(addr: u64) -> Self {
        Self(((addr << 16) as i64 >> 16) as u64)
    }
    pub const fn is_canonical(addr: u64) -> bool {
        ((addr << 16) as i64 >> 16) as u64 == addr
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    /// Offset within a 4 KiB page.
    pub const fn page_offset(self) -> u64 {
        self.0 & 0xfff
    }
    /// The table index used at `level` (4 = PML4 ... 1 = PT).
    pub const fn table_index(self, level: u8) -> usize {
        ((self.0 >> (12 + 9 * (level as u32 - 1))) & 0x1ff) as usize
    }
    pub const fn align_down(self, size: PageSize) -> Self {
        Self(self.0 & !(size.bytes() - 1))
    }
    pub fn checked_add(self, n: u64) -> Option<Self> {
        self.0.checked_add(n).and_then(Self::new)
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}

/// A guest-physical address.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PhysAddr(u64);

impl PhysAddr {
    pub const fn new(addr: u64) -> Self {
        Self(addr)
    }
    pub const fn as_u64(self) -> u64 {
        self.0
    }
    /// The 4 KiB frame number.
    pub const fn frame(self) -> u64 {
        self.0 >> 12
    }
    pub const fn is_aligned(self, size: PageSize) -> bool {
        self.0 & (size.bytes() - 1) == 0
    }
    pub fn checked_add(self, n: u64) -> Option<Self> {
        self.0.checked_add(n).map(Self)
    }
}

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysAddr({:#x})", self.0)
    }
}

/// The three page sizes of 4-level paging.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum PageSize {
    Size4K,
    Size2M,
    Size1G,
}

impl PageSize {
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << 12,
            PageSize::Size2M => 1 << 21,
            PageSize::Size1G => 1 << 30,
        }
    }
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Size4K => 12,
            PageSize::Size2M => 21,
            PageSize::Size1G => 30,
        }
    }
}
