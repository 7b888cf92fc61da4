//! The guest-physical frame allocator: 4 KiB frames and naturally aligned 2 MiB frames.
//!
//! CONTRACT (implemented by the mmu owner; signatures are fixed, bodies may change).

use crate::addr::{PageSize, PhysAddr};

pub struct FrameAllocator {
    _p: (),
}

impl FrameAllocator {
    /// Manages frames in [start, end): frames below `start` are reserved.
    pub fn new(start: PhysAddr, end: PhysAddr) -> Self {
        let _ = (start, end);
        todo!("mmu owner")
    }
    /// A free frame of `size`, naturally aligned, or None when memory is exhausted. Deterministic:
    /// the same sequence of calls gives the same frames. Does not zero it.
    pub fn alloc(&mut self, size: PageSize) -> Option<PhysAddr> {
        let _ = size;
        todo!("mmu owner")
    }
    pub fn free(&mut self, pa: PhysAddr, size: PageSize) {
        let _ = (pa, size);
        todo!("mmu owner")
    }
    pub fn free_frames(&self) -> u64 {
        todo!("mmu owner")
    }
    pub fn total_frames(&self) -> u64 {
        todo!("mmu owner")
    }
}
