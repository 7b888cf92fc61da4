//! Physical pages as the kernel tracks them (Linux: struct page / folio): the frame
//! allocator, per-frame reference and map counts, and the shared zero page.
//!
//! `refcount` counts every reference (mappings, in-flight copies, swap cache later);
//! `mapcount` counts page-table entries mapping the frame. A frame is freed when its
//! refcount drops to zero. Copy-on-write decides reuse from these counts, as do_wp_page does.
//!
//! [`NodeStat`] keeps the page counters /proc/meminfo shows (Linux: the node_stat_item
//! counters of include/linux/mmzone.h): mapped anonymous and file pages here, as the map
//! count of a page goes 0 → 1 and back (Linux: folio_add_*_rmap / folio_remove_rmap), and
//! the page-cache and shmem pages in `filemap::AddressSpace`. Unlike Linux's per-CPU
//! deltas they are exact at every moment.
//!
//! Folios: a 2 MiB transparent huge page is one order-9 folio, naturally aligned. Its
//! head frame's metadata holds the folio's `refcount` and `entire_mapcount` (the huge
//! PMDs mapping it whole, Linux's folio->_entire_mapcount); each of its 512 pages keeps
//! its own `mapcount` (PTEs mapping that page, once a PMD was split) and
//! `anon_exclusive`. `get`/`put` of any page of a folio act on the folio (`folio`), and
//! the folio is freed whole when its last reference goes.

use mmu::{FrameAllocator, PageSize, PhysAddr, PhysMem};

#[derive(Clone, Copy, Default, Debug)]
pub struct PageMeta {
    pub refcount: u32,
    pub mapcount: u32,
    /// Anonymous page that belongs to exactly one process (PageAnonExclusive).
    pub anon_exclusive: bool,
    /// A page-cache page (Linux: !PageAnon, folio->mapping set), for pagemap's file bit.
    pub file: bool,
    /// The folio order: 0 for a 4 KiB page, 9 for the head of a 2 MiB folio (its tail
    /// pages say 0 and are found through `Pages::folio`).
    pub order: u8,
    /// Huge PMDs mapping the whole folio (head only; Linux: folio->_entire_mapcount).
    pub entire_mapcount: u32,
    /// A page-cache page whose contents are newer than the file's backing store (Linux:
    /// PG_dirty, folio_mark_dirty): set by write(2), fallocate and a write fault in a
    /// shared mapping; smaps counts such a page dirty even through a clean PTE. Never set
    /// on anonymous pages, whose dirtiness is the PTE's.
    pub dirty: bool,
    /// A hugetlb folio (head only; Linux: folio_test_hugetlb): its last reference returns
    /// it to its pool (`hugetlb::free_huge_folio`), not to the allocator.
    pub hugetlb: bool,
    /// A hugetlb folio whose reservation comes back when it is freed (Linux:
    /// folio_test_hugetlb_restore_reserve): a private page the owner zapped.
    pub restore_reserve: bool,
}

/// Page counters for /proc/meminfo, in pages (Linux: the node_stat_item counters).
/// Shared (`Rc`) between [`Pages`] and every page cache.
#[derive(Default, Debug)]
pub struct NodeStat {
    /// Anonymous pages mapped by at least one PTE (Linux: NR_ANON_MAPPED, "AnonPages").
    pub anon_mapped: std::cell::Cell<u64>,
    /// Page-cache pages mapped by at least one PTE (Linux: NR_FILE_MAPPED, "Mapped").
    pub file_mapped: std::cell::Cell<u64>,
    /// Page-cache pages, shmem included (Linux: NR_FILE_PAGES, "Cached").
    pub file_pages: std::cell::Cell<u64>,
    /// Page-cache pages of shmem objects: MAP_SHARED anonymous memory, memfds and tmpfs
    /// files (Linux: NR_SHMEM, "Shmem").
    pub shmem: std::cell::Cell<u64>,
    /// Anonymous 2 MiB folios mapped by at least one huge PMD, in pages (Linux:
    /// NR_ANON_THPS, "AnonHugePages").
    pub anon_thps: std::cell::Cell<u64>,
    /// Pages of 2 MiB shmem folios in a page cache (Linux: NR_SHMEM_THPS,
    /// "ShmemHugePages"): what MADV_COLLAPSE of shmem makes.
    pub shmem_thps: std::cell::Cell<u64>,
    /// Pages of 2 MiB shmem folios mapped by at least one huge PMD (Linux:
    /// NR_SHMEM_PMDMAPPED, "ShmemPmdMapped").
    pub shmem_pmdmapped: std::cell::Cell<u64>,
}

impl NodeStat {
    /// Adds `delta` pages to `counter` (Linux: __mod_node_page_state).
    pub fn add(counter: &std::cell::Cell<u64>, delta: i64) {
        let v = counter.get().checked_add_signed(delta);
        debug_assert!(v.is_some(), "page counter below zero");
        counter.set(v.unwrap_or(0));
    }
}

pub struct Pages {
    pub alloc: FrameAllocator,
    meta: Vec<PageMeta>,
    /// The shared zero page: always mapped read-only, never freed.
    pub zero_page: PhysAddr,
    /// The huge zero page, a 2 MiB frame allocated on first use and then kept
    /// (`huge_memory::huge_zero_page`); never counted.
    pub huge_zero_page: Option<PhysAddr>,
    pub allocated: u64,
    /// References dropped where the allocator is not at hand (a shared memory object
    /// freed when its last VMA went); `drain_deferred` puts them.
    pub deferred_put: std::rc::Rc<std::cell::RefCell<Vec<PhysAddr>>>,
    /// The counters /proc/meminfo reads.
    pub stat: std::rc::Rc<NodeStat>,
    /// The hugetlb pools (`hugetlb`).
    pub hugetlb: super::hugetlb::Pool,
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
        Self { alloc, meta, zero_page, huge_zero_page: None, allocated: 0, deferred_put: Default::default(), stat: Default::default(), hugetlb: Default::default() }
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
        self.meta[pa.frame() as usize] = PageMeta { refcount: 1, anon_exclusive: true, ..PageMeta::default() };
        self.allocated += 1;
        Some(pa)
    }

    /// A zeroed 2 MiB folio (order 9, refcount 1, every page anonymous-exclusive), or None
    /// when no free, aligned 2 MiB is left (the caller falls back to 4 KiB pages).
    pub fn alloc_huge_zeroed(&mut self, mem: &mut PhysMem) -> Option<PhysAddr> {
        if !self.deferred_put.borrow().is_empty() {
            self.drain_deferred();
        }
        let pa = self.alloc.alloc(PageSize::Size2M)?;
        mem.fill(pa, 2 << 20, 0);
        let f = pa.frame() as usize;
        for m in &mut self.meta[f..f + 512] {
            *m = PageMeta { anon_exclusive: true, ..PageMeta::default() };
        }
        self.meta[f].refcount = 1;
        self.meta[f].order = 9;
        self.allocated += 512;
        Some(pa)
    }

    /// The head of the folio `pa` belongs to (Linux: page_folio): the 2 MiB-aligned frame
    /// below it when that is an order-9 head, the 1 GiB-aligned one when it is part of a
    /// 1 GiB hugetlb folio (whose every 2 MiB boundary says order 18), else `pa`'s own
    /// frame.
    #[inline]
    pub fn folio(&self, pa: PhysAddr) -> PhysAddr {
        let head = PhysAddr::new(pa.as_u64() & !((2 << 20) - 1));
        match self.meta[head.frame() as usize].order {
            9 => head,
            18 => PhysAddr::new(pa.as_u64() & !((1 << 30) - 1)),
            _ => PhysAddr::new(pa.as_u64() & !0xfff),
        }
    }

    /// The reference count of `pa`'s folio (Linux: folio_ref_count).
    pub fn folio_refcount(&self, pa: PhysAddr) -> u32 {
        self.meta[self.folio(pa).frame() as usize].refcount
    }

    /// Whether `pa` is the head of a 2 MiB folio (Linux: folio_test_pmd_mappable).
    pub fn is_huge(&self, pa: PhysAddr) -> bool {
        self.meta[pa.frame() as usize].order == 9
    }

    /// A huge PMD now maps the folio at `head` (Linux: folio_add_anon_rmap_pmd /
    /// folio_add_new_anon_rmap for a PMD): the entire map count, and the counters when it
    /// is the first. The reference is the caller's.
    pub fn map_pmd(&mut self, head: PhysAddr) {
        let m = &mut self.meta[head.frame() as usize];
        m.entire_mapcount += 1;
        if m.entire_mapcount == 1 {
            // A shmem folio counts as mapped file memory (folio_add_file_rmap_pmd).
            let (thps, mapped) = if m.file { (&self.stat.shmem_pmdmapped, &self.stat.file_mapped) } else { (&self.stat.anon_thps, &self.stat.anon_mapped) };
            NodeStat::add(thps, 512);
            NodeStat::add(mapped, 512);
        }
    }

    /// A huge PMD mapping the folio is gone (Linux: folio_remove_rmap_pmd); the reference
    /// stays the caller's to drop.
    pub fn remove_rmap_pmd(&mut self, head: PhysAddr) {
        let m = &mut self.meta[head.frame() as usize];
        if m.entire_mapcount == 1 {
            let (thps, mapped) = if m.file { (&self.stat.shmem_pmdmapped, &self.stat.file_mapped) } else { (&self.stat.anon_thps, &self.stat.anon_mapped) };
            NodeStat::add(thps, -512);
            NodeStat::add(mapped, -512);
        }
        m.entire_mapcount = m.entire_mapcount.saturating_sub(1);
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
    /// Takes a reference to `pa`'s folio.
    pub fn get(&mut self, pa: PhysAddr) {
        self.get_many(pa, 1);
    }
    /// Takes `n` references at once (Linux: folio_ref_add).
    pub fn get_many(&mut self, pa: PhysAddr, n: u32) {
        if !self.is_zero_page(pa) {
            let f = self.folio(pa);
            self.meta[f.frame() as usize].refcount += n;
        }
    }
    /// Drops a reference to `pa`'s folio; frees the folio when it was the last.
    pub fn put(&mut self, pa: PhysAddr) {
        if self.is_zero_page(pa) {
            return;
        }
        let f = self.folio(pa);
        let fi = f.frame() as usize;
        let m = &mut self.meta[fi];
        debug_assert!(m.refcount > 0, "put of a free page {pa:?}");
        m.refcount = m.refcount.saturating_sub(1);
        if m.refcount == 0 {
            if m.hugetlb {
                let size = if m.order == 18 { super::hugetlb::HugeSize::G1 } else { super::hugetlb::HugeSize::M2 };
                let restore_reserve = m.restore_reserve;
                *m = PageMeta::default();
                if size == super::hugetlb::HugeSize::G1 {
                    for i in 1..512 {
                        self.meta[fi + i * 512].order = 0;
                    }
                }
                super::hugetlb::free_huge_folio(self, f, size, restore_reserve);
            } else if m.order == 9 {
                if m.file {
                    // A shmem THP left its page cache whole (Linux: NR_SHMEM_THPS).
                    NodeStat::add(&self.stat.shmem_thps, -512);
                }
                self.meta[fi..fi + 512].fill(PageMeta::default());
                self.alloc.free(f, PageSize::Size2M);
                self.allocated -= 512;
            } else {
                *m = PageMeta::default();
                self.alloc.free(f, PageSize::Size4K);
                self.allocated -= 1;
            }
        }
    }
    /// A new mapping of the frame (page_add_*_rmap): the mapcount. The reference the
    /// mapping holds is the caller's (a fresh frame's first, or one taken with `get`).
    pub fn map(&mut self, pa: PhysAddr) {
        if !self.is_zero_page(pa) {
            let m = &mut self.meta[pa.frame() as usize];
            m.mapcount += 1;
            if m.mapcount == 1 {
                let c = if m.file { &self.stat.file_mapped } else { &self.stat.anon_mapped };
                NodeStat::add(c, 1);
            }
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
            if m.mapcount == 1 {
                let c = if m.file { &self.stat.file_mapped } else { &self.stat.anon_mapped };
                NodeStat::add(c, -1);
            }
            m.mapcount = m.mapcount.saturating_sub(1);
        }
    }

    /// A new shmem folio for the page cache: order 9, `refs` references (one per cache
    /// entry), every page a dirty file page (collapse_file marks the folio dirty).
    /// None when no aligned 2 MiB is free.
    pub fn alloc_shmem_thp(&mut self, mem: &mut PhysMem, refs: u32) -> Option<PhysAddr> {
        let head = self.alloc_huge_zeroed(mem)?;
        let f = head.frame() as usize;
        for m in &mut self.meta[f..f + 512] {
            m.anon_exclusive = false;
            m.file = true;
            m.dirty = true;
        }
        self.meta[f].refcount = refs;
        NodeStat::add(&self.stat.shmem_thps, 512);
        Some(head)
    }

    /// Splits the shmem folio at `head` into 512 pages (Linux: split_folio, for a
    /// truncation or hole punch that takes part of it): each page's references are
    /// `cached(i)` (the page cache's) plus its PTE mappings. The folio must not be
    /// PMD-mapped, and nothing else may hold a reference.
    pub fn split_shmem_thp(&mut self, head: PhysAddr, cached: impl Fn(u64) -> bool) {
        let f = head.frame() as usize;
        debug_assert!(self.meta[f].order == 9 && self.meta[f].entire_mapcount == 0, "split of a mapped or non-huge folio");
        let total = self.meta[f].refcount;
        let mut sum = 0;
        for i in 0..512usize {
            let m = &mut self.meta[f + i];
            m.order = 0;
            m.refcount = u32::from(cached(i as u64)) + m.mapcount;
            sum += m.refcount;
        }
        debug_assert_eq!(sum, total, "shmem THP split with references unaccounted for");
        NodeStat::add(&self.stat.shmem_thps, -512);
        // Pages nothing refers to any more go back now.
        for i in 0..512u64 {
            let pa = PhysAddr::new(head.as_u64() + (i << 12));
            if self.meta[f + i as usize].refcount == 0 {
                self.meta[f + i as usize] = PageMeta::default();
                self.alloc.free(pa, PageSize::Size4K);
                self.allocated -= 1;
            }
        }
    }

    /// Splits the anonymous 2 MiB folio at `head`, mapped only by PTEs now, into 512 pages
    /// (Linux: split_folio on the reclaim path, which swaps a THP out page by page): each
    /// page keeps the references of its own PTE mappings. False, and nothing changed,
    /// when a huge PMD still maps it or something besides its PTEs holds a reference (a
    /// pin, an in-flight copy).
    pub fn split_anon_folio(&mut self, head: PhysAddr) -> bool {
        let f = head.frame() as usize;
        let m = self.meta[f];
        if m.order != 9 || m.file || m.hugetlb || m.entire_mapcount != 0 {
            return false;
        }
        let sum: u32 = self.meta[f..f + 512].iter().map(|p| p.mapcount).sum();
        if sum != m.refcount {
            return false;
        }
        for i in 0..512 {
            let p = &mut self.meta[f + i];
            p.order = 0;
            p.refcount = p.mapcount;
        }
        for i in 0..512u64 {
            if self.meta[f + i as usize].refcount == 0 {
                self.meta[f + i as usize] = PageMeta::default();
                self.alloc.free(PhysAddr::new(head.as_u64() + (i << 12)), PageSize::Size4K);
                self.allocated -= 1;
            }
        }
        true
    }

    /// Marks every page of `pa`'s folio dirty (a dirty huge PMD unmapped).
    pub fn mark_folio_dirty(&mut self, pa: PhysAddr) {
        let head = self.folio(pa);
        let n = if self.meta[head.frame() as usize].order == 9 { 512 } else { 1 };
        for i in 0..n {
            self.meta[head.frame() as usize + i].dirty = true;
        }
    }

    /// Marks a page-cache page dirty (Linux: folio_mark_dirty).
    pub fn mark_dirty(&mut self, pa: PhysAddr) {
        if !self.is_zero_page(pa) {
            self.meta[pa.frame() as usize].dirty = true;
        }
    }

    /// The mapped-page counters recomputed from every frame's map count: what
    /// [`NodeStat`] must say (anonymous, file). For tests.
    pub fn count_mapped(&self) -> (u64, u64) {
        let mut r = (0, 0);
        for (i, m) in self.meta.iter().enumerate() {
            if m.refcount > 0 && m.mapcount > 0 && i as u64 != self.zero_page.frame() {
                if m.file {
                    r.1 += 1;
                } else {
                    r.0 += 1;
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::mm::shmem::Shmem;

    /// The meminfo counters follow map counts and page-cache membership.
    #[test]
    fn node_stat_counts_mapped_and_cached_pages() {
        let mut mem = PhysMem::new(16 << 20);
        let mut pages = Pages::new(&mut mem);
        let anon = pages.alloc_zeroed(&mut mem).unwrap();
        pages.map(anon);
        pages.map(anon);
        let obj = Shmem::new(7, &pages);
        let file = obj.get_page(&mut pages, &mut mem, 3).unwrap();
        assert_eq!((pages.stat.file_pages.get(), pages.stat.shmem.get()), (1, 1));
        pages.get(file);
        pages.map(file);
        assert_eq!((pages.stat.anon_mapped.get(), pages.stat.file_mapped.get()), (1, 1));
        assert_eq!(pages.count_mapped(), (1, 1));
        pages.remove_rmap(anon);
        assert_eq!(pages.stat.anon_mapped.get(), 1, "still mapped once");
        pages.unmap(anon);
        pages.unmap(file);
        assert_eq!((pages.stat.anon_mapped.get(), pages.stat.file_mapped.get()), (0, 0));
        assert_eq!(pages.count_mapped(), (0, 0));
        for pa in obj.remove_pages(0, u64::MAX) {
            pages.put(pa);
        }
        assert_eq!((pages.stat.file_pages.get(), pages.stat.shmem.get()), (0, 0));
        // A host file's cache counts as Cached only, and a dying cache gives its pages back.
        let host = Shmem::host_file(8, &pages, b"/x".to_vec(), std::sync::Arc::new(vec![1; 5000]));
        host.get_page(&mut pages, &mut mem, 0).unwrap();
        host.get_page(&mut pages, &mut mem, 1).unwrap();
        assert_eq!((pages.stat.file_pages.get(), pages.stat.shmem.get()), (2, 0));
        drop(host);
        assert_eq!(pages.stat.file_pages.get(), 0);
    }
}
