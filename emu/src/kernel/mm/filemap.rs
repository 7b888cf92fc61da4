//! The page cache (Linux: struct address_space and mm/filemap.c): the pages of one file,
//! indexed by page offset. shmem objects (MAP_SHARED anonymous memory, memfds, tmpfs files)
//! and, later, mapped host files keep their pages here, so every kind of file memory is
//! looked up, filled and truncated the same way.
//!
//! Two lookups, as Linux has: [`AddressSpace::get`] never allocates (Linux:
//! filemap_get_folio; a MINOR fault and UFFDIO_CONTINUE need exactly that: "is the page
//! there?"), and the filesystem's own `get_page` allocates a missing page (Linux:
//! shmem_get_folio with SGP_CACHE).
//!
//! References: the cache holds one reference on each of its pages; a PTE mapping a page
//! holds another. Removing a page from the cache hands its reference back to the caller,
//! who puts it after the mappings are zapped (Linux: truncate_inode_pages_range after
//! unmap_mapping_range). When the cache itself dies (its last holder went), its references
//! go to the allocator's deferred list (`Pages::deferred_put`).
//!
//! Accounting: every page entering or leaving a cache moves the `Cached` and (for a shmem
//! cache) `Shmem` counters of /proc/meminfo (Linux: NR_FILE_PAGES and NR_SHMEM, updated
//! in __filemap_add_folio and page_cache_delete).

use super::page::{NodeStat, Pages};
use mmu::PhysAddr;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The pages of one file (Linux: struct address_space, i_pages).
pub struct AddressSpace {
    /// Each page with its uptodate flag (Linux: PG_uptodate): clear for a page fallocate
    /// reserved and nothing has written or faulted yet, which fault-around skips.
    pages: BTreeMap<u64, (PhysAddr, bool)>,
    /// Where the cache's references go when it dies.
    release: Rc<RefCell<Vec<PhysAddr>>>,
    /// The counters its pages count in.
    stat: Rc<NodeStat>,
    /// The cache of a shmem object (Linux: a swap-backed mapping, shmem_mapping), whose
    /// pages also count as Shmem; false for a host file's.
    shmem: bool,
    /// Its pages count in Cached (and Shmem): false for a hugetlbfs file, whose pages
    /// are the pool's (Linux: hugetlb folios are not in NR_FILE_PAGES).
    counted: bool,
}

impl AddressSpace {
    /// An empty cache of a shmem object.
    pub fn new(pages: &Pages) -> Self {
        Self { pages: BTreeMap::new(), release: pages.deferred_put.clone(), stat: pages.stat.clone(), shmem: true, counted: true }
    }

    /// An empty cache whose pages count nowhere (a hugetlbfs file's).
    pub fn new_uncounted(pages: &Pages) -> Self {
        let mut a = Self::new(pages);
        a.counted = false;
        a
    }

    /// An empty cache of a host file (not shmem).
    pub fn new_file(pages: &Pages) -> Self {
        let mut a = Self::new(pages);
        a.shmem = false;
        a
    }

    /// Moves the counters by `n` pages entering (n > 0) or leaving the cache.
    fn account(&self, n: i64) {
        if !self.counted {
            return;
        }
        NodeStat::add(&self.stat.file_pages, n);
        if self.shmem {
            NodeStat::add(&self.stat.shmem, n);
        }
    }

    /// The page at `pgoff`, if cached; never allocates (Linux: filemap_get_folio).
    pub fn get(&self, pgoff: u64) -> Option<PhysAddr> {
        self.pages.get(&pgoff).map(|p| p.0)
    }

    /// The page at `pgoff` if cached and up to date (what filemap_map_pages maps).
    pub fn get_uptodate(&self, pgoff: u64) -> Option<PhysAddr> {
        self.pages.get(&pgoff).filter(|p| p.1).map(|p| p.0)
    }

    /// Inserts `pa` at `pgoff`, taking over the caller's reference (Linux:
    /// filemap_add_folio). The slot must be empty.
    pub fn add(&mut self, pgoff: u64, pa: PhysAddr, uptodate: bool) {
        let old = self.pages.insert(pgoff, (pa, uptodate));
        debug_assert!(old.is_none(), "page cache slot {pgoff} was taken");
        self.account(1);
    }

    /// Marks the page at `pgoff` up to date (Linux: folio_mark_uptodate).
    pub fn set_uptodate(&mut self, pgoff: u64) {
        if let Some(p) = self.pages.get_mut(&pgoff) {
            p.1 = true;
        }
    }

    /// Removes the pages at page offsets [start, end), returning them with the cache's
    /// reference on each, for the caller to put once no PTE can reach them (Linux:
    /// truncate_inode_pages_range / delete_from_page_cache).
    pub fn remove_range(&mut self, start: u64, end: u64) -> Vec<PhysAddr> {
        if start >= end {
            return Vec::new();
        }
        let keys: Vec<u64> = self.pages.range(start..end).map(|(&k, _)| k).collect();
        let out: Vec<PhysAddr> = keys.iter().filter_map(|k| self.pages.remove(k).map(|p| p.0)).collect();
        self.account(-(out.len() as i64));
        out
    }

    /// Cached pages (Linux: mapping->nrpages).
    pub fn nr_pages(&self) -> usize {
        self.pages.len()
    }

    /// The first page offset at or after `pgoff` holding data: cached and up to date, as
    /// SEEK_DATA sees it (Linux: mapping_seek_hole_data, where a fallocated page not yet
    /// written is a hole).
    pub fn next_data(&self, pgoff: u64) -> Option<u64> {
        self.pages.range(pgoff..).find(|(_, p)| p.1).map(|(&k, _)| k)
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // The file is gone: its cache references go (the allocator drains them before its
        // next allocation, and after unmaps and exit).
        self.release.borrow_mut().extend(self.pages.values().map(|p| p.0));
        self.account(-(self.pages.len() as i64));
    }
}
