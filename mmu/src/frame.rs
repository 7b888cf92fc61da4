//! The guest-physical frame allocator: 4 KiB frames and naturally aligned 2 MiB (and 1 GiB)
//! frames.
//!
//! Memory is managed in 2 MiB *regions*, each with a 512-bit map of its free 4 KiB frames
//! and a free count. Two ordered sets index the regions: `whole` (every frame free) and
//! `partial` (some but not all free). A 4 KiB allocation takes the lowest free frame of the
//! lowest partial region, and breaks a whole region only when no partial one is left, so
//! 2 MiB frames stay available as long as possible. A 2 MiB allocation takes the lowest
//! whole region. Everything is ordered by address, so the same sequence of calls always
//! returns the same frames. Costs: O(log regions) per call.
//!
//! Frames of a region that lie outside [start, end) are permanently marked in use, so such a
//! region is never whole and never handed out as a 2 MiB frame.

use crate::addr::{PageSize, PhysAddr};
use std::collections::BTreeSet;

const FRAMES_PER_REGION: u32 = 512;
const REGION_SHIFT: u32 = 21;

/// One 2 MiB region: bit i of `free` set = 4 KiB frame i is free.
#[derive(Clone, Copy)]
struct Region {
    free: [u64; 8],
    count: u32,
}

pub struct FrameAllocator {
    /// Physical address of region 0.
    base: u64,
    regions: Vec<Region>,
    whole: BTreeSet<u32>,
    partial: BTreeSet<u32>,
    free: u64,
    total: u64,
}

impl FrameAllocator {
    /// Manages frames in [start, end): frames below `start` are reserved.
    pub fn new(start: PhysAddr, end: PhysAddr) -> Self {
        let first = start.as_u64().div_ceil(4096);
        let last = end.as_u64() / 4096; // exclusive
        let base = (first << 12) & !((1 << REGION_SHIFT) - 1);
        let nregions = if last > first { ((last << 12) - base).div_ceil(1 << REGION_SHIFT) } else { 0 };
        let mut a = Self {
            base,
            regions: vec![Region { free: [0; 8], count: 0 }; nregions as usize],
            whole: BTreeSet::new(),
            partial: BTreeSet::new(),
            free: last.saturating_sub(first),
            total: last.saturating_sub(first),
        };
        for r in 0..nregions as u32 {
            let lo = a.region_addr(r) >> 12;
            for f in first.max(lo)..last.min(lo + u64::from(FRAMES_PER_REGION)) {
                let i = (f - lo) as usize;
                a.regions[r as usize].free[i / 64] |= 1 << (i % 64);
            }
            a.regions[r as usize].count = a.regions[r as usize].free.iter().map(|w| w.count_ones()).sum();
            a.reindex(r);
        }
        a
    }

    /// (region, frame index within it) of a 4 KiB-aligned address.
    fn locate(&self, pa: u64) -> (u32, usize) {
        let off = pa.checked_sub(self.base).expect("frame below the allocator's range");
        ((off >> REGION_SHIFT) as u32, ((off >> 12) & 511) as usize)
    }
    fn region_addr(&self, r: u32) -> u64 {
        self.base + ((r as u64) << REGION_SHIFT)
    }
    /// Files region `r` in `whole`, `partial` or neither, from its count.
    fn reindex(&mut self, r: u32) {
        let c = self.regions[r as usize].count;
        self.whole.remove(&r);
        self.partial.remove(&r);
        if c == FRAMES_PER_REGION {
            self.whole.insert(r);
        } else if c > 0 {
            self.partial.insert(r);
        }
    }

    /// A free frame of `size`, naturally aligned, or None when memory is exhausted. Deterministic:
    /// the same sequence of calls gives the same frames. Does not zero it.
    /// The highest free 2 MiB frame: for a long-lived allocation that should stay out of
    /// the way of the lowest-first order everything else uses (the huge zero page).
    pub fn alloc_2m_high(&mut self) -> Option<PhysAddr> {
        let r = self.whole.pop_last()?;
        self.take_region(r);
        Some(PhysAddr::new(self.region_addr(r)))
    }

    pub fn alloc(&mut self, size: PageSize) -> Option<PhysAddr> {
        match size {
            PageSize::Size4K => {
                let r = match self.partial.first() {
                    Some(&r) => r,
                    None => *self.whole.first()?,
                };
                let reg = &mut self.regions[r as usize];
                let w = reg.free.iter().position(|&w| w != 0).expect("a listed region has a free frame");
                let i = reg.free[w].trailing_zeros() as usize;
                reg.free[w] &= !(1 << i);
                reg.count -= 1;
                self.reindex(r);
                self.free -= 1;
                Some(PhysAddr::new(self.region_addr(r) + (((w * 64 + i) as u64) << 12)))
            }
            PageSize::Size2M => {
                let r = self.whole.pop_first()?;
                self.take_region(r);
                Some(PhysAddr::new(self.region_addr(r)))
            }
            PageSize::Size1G => {
                // 512 whole regions starting at a 1 GiB-aligned address. Rare: a linear scan.
                let per = 1u32 << (30 - REGION_SHIFT);
                let first = self.whole.iter().copied().find(|&r| {
                    self.region_addr(r) & ((1 << 30) - 1) == 0 && (r..r + per).all(|x| self.whole.contains(&x))
                })?;
                for r in first..first + per {
                    self.whole.remove(&r);
                    self.take_region(r);
                }
                Some(PhysAddr::new(self.region_addr(first)))
            }
        }
    }

    /// Marks a whole region (already removed from `whole`) allocated.
    fn take_region(&mut self, r: u32) {
        self.regions[r as usize] = Region { free: [0; 8], count: 0 };
        self.free -= u64::from(FRAMES_PER_REGION);
    }

    /// Returns a frame of `size` to the allocator. Panics if it was not allocated (a double
    /// free or a foreign frame is an emulator bug).
    pub fn free(&mut self, pa: PhysAddr, size: PageSize) {
        assert!(pa.is_aligned(size), "freeing a misaligned {size:?} frame at {pa:?}");
        match size {
            PageSize::Size4K => {
                let (r, i) = self.locate(pa.as_u64());
                let reg = self.regions.get_mut(r as usize).expect("frame above the allocator's range");
                assert!(reg.free[i / 64] & (1 << (i % 64)) == 0, "double free of {pa:?}");
                reg.free[i / 64] |= 1 << (i % 64);
                reg.count += 1;
                self.free += 1;
                self.reindex(r);
            }
            PageSize::Size2M | PageSize::Size1G => {
                let (r, _) = self.locate(pa.as_u64());
                let n = (size.bytes() >> REGION_SHIFT) as u32;
                for r in r..r + n {
                    let reg = self.regions.get_mut(r as usize).expect("frame above the allocator's range");
                    assert!(reg.count == 0, "freeing a {size:?} frame at {pa:?} that is not wholly allocated");
                    *reg = Region { free: [!0; 8], count: FRAMES_PER_REGION };
                    self.free += u64::from(FRAMES_PER_REGION);
                    self.reindex(r);
                }
            }
        }
    }
    /// Free 4 KiB frames.
    pub fn free_frames(&self) -> u64 {
        self.free
    }
    /// 4 KiB frames in [start, end).
    pub fn total_frames(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn four_k_prefers_partial_regions() {
        let mut a = FrameAllocator::new(PhysAddr::new(MB), PhysAddr::new(8 * MB));
        assert_eq!(a.total_frames(), 7 * 256);
        // The first region [0, 2M) is partial (its low 1 MiB is reserved): 4K frames come from it.
        assert_eq!(a.alloc(PageSize::Size4K), Some(PhysAddr::new(MB)));
        assert_eq!(a.alloc(PageSize::Size2M), Some(PhysAddr::new(2 * MB)));
        assert_eq!(a.alloc(PageSize::Size4K), Some(PhysAddr::new(MB + 4096)));
        a.free(PhysAddr::new(MB), PageSize::Size4K);
        assert_eq!(a.alloc(PageSize::Size4K), Some(PhysAddr::new(MB)));
        assert_eq!(a.free_frames(), 7 * 256 - 2 - 512);
    }

    #[test]
    fn exhaustion_and_refill() {
        let mut a = FrameAllocator::new(PhysAddr::new(0), PhysAddr::new(4 * MB));
        assert_eq!(a.alloc(PageSize::Size2M), Some(PhysAddr::new(0)));
        let small: Vec<_> = (0..512).map(|_| a.alloc(PageSize::Size4K).unwrap()).collect();
        assert_eq!(small[0], PhysAddr::new(2 * MB));
        assert_eq!(a.alloc(PageSize::Size4K), None);
        assert_eq!(a.alloc(PageSize::Size2M), None);
        for f in small {
            a.free(f, PageSize::Size4K);
        }
        assert_eq!(a.alloc(PageSize::Size2M), Some(PhysAddr::new(2 * MB)));
        a.free(PhysAddr::new(0), PageSize::Size2M);
        a.free(PhysAddr::new(2 * MB), PageSize::Size2M);
        assert_eq!(a.free_frames(), a.total_frames());
        assert_eq!(a.alloc(PageSize::Size1G), None);
    }

    #[test]
    fn one_gib_frames() {
        let mut a = FrameAllocator::new(PhysAddr::new(4096), PhysAddr::new(2048 * MB));
        assert_eq!(a.alloc(PageSize::Size1G), Some(PhysAddr::new(1024 * MB)));
        assert_eq!(a.alloc(PageSize::Size1G), None);
        a.free(PhysAddr::new(1024 * MB), PageSize::Size1G);
        assert_eq!(a.free_frames(), a.total_frames());
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn double_free_panics() {
        let mut a = FrameAllocator::new(PhysAddr::new(0), PhysAddr::new(2 * MB));
        let f = a.alloc(PageSize::Size4K).unwrap();
        a.free(f, PageSize::Size4K);
        a.free(f, PageSize::Size4K);
    }
}
