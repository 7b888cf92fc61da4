//! Physical pages as the kernel tracks them (Linux: struct page / folio): the frame
//! allocator, per-frame reference and map counts, and the shared zero page.
//!
//! `refcount` counts every reference (mappings, in-flight copies, swap cache later);
//! `mapcount` counts page-table entries mapping the frame. A frame is freed when its
//! refcount drops to zero. Copy-on-write decides reuse from these counts, as do_wp_page does.

use mmu::{FrameAllocator, PageSize, PhysAddr, PhysMem};

#[derive(Clone, Copy, Default, Debug)]
pub struct PageMeta {
    pub refcount: u32,
    pub mapcount: u32,
    /// Anonymous page that belongs to exactly one process (PageAnonExclusive).
    pub anon_exclusive: bool,
    /// A page-cache page (Linux: !PageAnon, folio->mapping set), for pagemap's file bit.
    pub file: bool,
    /// The folio order: 0 for a 4 KiB page (2 MiB folios come with THP).
    pub order: u8,
}

pub struct Pages {
    pub alloc: FrameAllocator,
    meta: Vec<PageMeta>,
    /// The shared zero page: always mapped read-only, never freed.
    pub zero_page: PhysAddr,
    pub allocated: u64,
    /// References dropped where the allocator is not at hand (a shared memory object
    /// freed when its last VMA went); `drain_deferred` puts them.
    pub deferred_put: std::rc::Rc<std::cell::RefCell<Vec<PhysAddr>>>,
}

impl Pages {
    pub fn new(mem: &mut PhysMem) -> Self {
        let frames = mem.size() >> 12;
        // Frame 0 stays unused so that physical address 0 is never a valid page.
        let mut alloc = FrameAllocator::new(PhysAddr::new(0x1000), PhysAddr::new(mem.size()));
        let zero_page = alloc.alloc(PageSize::Size4K).expect("guest memory too small for the zero page");
        mem.fill(zero_page, 4096, 0);
        let mut meta = vec![PageMeta::default(); frames as usize];
        meta[zero_page.frame() as usize].refcount = 1;
        Self { alloc, meta, zero_page, allocated: 0, deferred_put: Default::default() }
    }

    /// Puts the references in `deferred_put`.
    pub fn drain_deferred(&mut self) {
        let v: Vec<PhysAddr> = std::mem::take(&mut *self.deferred_put.borrow_mut());
        for pa in v {
            self.put(pa);
        }
    }

    /// A zeroed 4 KiB frame with refcount 1, or None when guest memory is exhausted.
    pub fn alloc_zeroed(&mut self, mem: &mut PhysMem) -> Option<PhysAddr> {
        let pa = self.alloc_frame()?;
        mem.fill(pa, 4096, 0);
        Some(pa)
    }

    /// A 4 KiB frame filled with `data` (exactly one page), refcount 1: for a caller that
    /// overwrites the whole page anyway (UFFDIO_COPY, like Linux's folio allocated without
    /// __GFP_ZERO in mfill_atomic_pte_copy), which then skips zeroing it first.
    pub fn alloc_copy(&mut self, mem: &mut PhysMem, data: &[u8; 4096]) -> Option<PhysAddr> {
        let pa = self.alloc_frame()?;
        mem.write(pa, data);
        Some(pa)
    }

    fn alloc_frame(&mut self) -> Option<PhysAddr> {
        if !self.deferred_put.borrow().is_empty() {
            self.drain_deferred();
        }
        let pa = self.alloc.alloc(PageSize::Size4K)?;
        self.meta[pa.frame() as usize] = PageMeta { refcount: 1, mapcount: 0, anon_exclusive: true, file: false, order: 0 };
        self.allocated += 1;
        Some(pa)
    }

    pub fn meta(&self, pa: PhysAddr) -> &PageMeta {
        &self.meta[pa.frame() as usize]
    }
    pub fn meta_mut(&mut self, pa: PhysAddr) -> &mut PageMeta {
        &mut self.meta[pa.frame() as usize]
    }
    pub fn is_zero_page(&self, pa: PhysAddr) -> bool {
        pa.frame() == self.zero_page.frame()
    }
    pub fn get(&mut self, pa: PhysAddr) {
        if !self.is_zero_page(pa) {
            self.meta[pa.frame() as usize].refcount += 1;
        }
    }
    /// Drops a reference; frees the frame when it was the last.
    pub fn put(&mut self, pa: PhysAddr) {
        if self.is_zero_page(pa) {
            return;
        }
        let m = &mut self.meta[pa.frame() as usize];
        debug_assert!(m.refcount > 0, "put of a free page {pa:?}");
        m.refcount = m.refcount.saturating_sub(1);
        if m.refcount == 0 {
            *m = PageMeta::default();
            self.alloc.free(pa, PageSize::Size4K);
            self.allocated -= 1;
        }
    }
    /// A new mapping of the frame (page_add_*_rmap): the mapcount. The reference the
    /// mapping holds is the caller's (a fresh frame's first, or one taken with `get`).
    pub fn map(&mut self, pa: PhysAddr) {
        if !self.is_zero_page(pa) {
            let m = &mut self.meta[pa.frame() as usize];
            m.mapcount += 1;
        }
    }
    /// A mapping removed (page_remove_rmap + put_page).
    pub fn unmap(&mut self, pa: PhysAddr) {
        self.remove_rmap(pa);
        self.put(pa);
    }
    /// A mapping removed from the counts, the reference it held kept for the caller to
    /// drop later (Linux: folio_remove_rmap_pte at zap, the put deferred to the
    /// mmu_gather until the TLBs are flushed).
    pub fn remove_rmap(&mut self, pa: PhysAddr) {
        if !self.is_zero_page(pa) {
            let m = &mut self.meta[pa.frame() as usize];
            m.mapcount = m.mapcount.saturating_sub(1);
        }
    }
}
