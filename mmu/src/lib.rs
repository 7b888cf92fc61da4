//! x86-64 paging as the hardware does it (Intel SDM Vol. 3A, chapter 4, and #PF in chapter 6).
//!
//! This crate knows nothing of Linux: it has addresses, page-table entries in their
//! architectural format, the 4-level walk with its permission rules and A/D updates, a
//! per-vCPU TLB, guest physical memory and a frame allocator. Linux's meanings (uffd-wp,
//! swap entries, markers) are layered on top by the guest kernel in `emu`.

pub mod addr;
pub mod entry;
pub mod frame;
pub mod phys;
pub mod tlb;
pub mod walk;

pub use addr::{PageSize, PhysAddr, VirtAddr};
pub use entry::{Entry, Level};
pub use frame::FrameAllocator;
pub use phys::PhysMem;
pub use tlb::{Flush, StaleHit, Tlb, TlbStats};
pub use walk::{check_access, walk, walk_peek, Access, AccessKind, ControlRegs, Path, PathEnd, PfErrorCode, Translation, WalkFault};
