//! Shared anonymous memory (Linux: mm/shmem.c). `mmap(MAP_SHARED|MAP_ANONYMOUS)` is backed
//! by an unnamed shmem object (shmem_zero_setup): a page cache indexed by page offset. Every
//! VMA that maps the object — the original, the pieces a split leaves, the copies fork
//! makes — holds a [`Shmem`] handle, so the object lives exactly as long as some mapping
//! of it does; then its pages go back to the allocator.
//!
//! Faults in such a VMA reach `shmem_fault` (the VMA's ->fault) through `mm::memory`'s
//! do_fault → do_read_fault / do_shared_fault → __do_fault: it finds or allocates the page
//! in the object, reads included (shmem never maps the zero page), and finish_fault maps
//! it, writable when the VMA is: there is no copy-on-write in a shared mapping.
//!
//! Page references: the object holds one reference on each of its pages; each PTE mapping
//! a page holds another (`Pages::get` + `Pages::map`), dropped by zap like any mapping.

use super::memory::{FaultOutcome, VmFault};
use super::page::Pages;
use mmu::PhysAddr;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The object behind one MAP_SHARED anonymous mapping (Linux: the shmem inode and its
/// address_space).
pub struct ShmemObject {
    /// Identity for futex keys (`FutexKey::Shared`) and /proc/PID/maps.
    pub id: u64,
    /// Resident pages by page offset.
    pages: BTreeMap<u64, PhysAddr>,
    /// Where the object's page references go when it dies (see `Pages::deferred_put`).
    release: Rc<RefCell<Vec<PhysAddr>>>,
}

impl Drop for ShmemObject {
    fn drop(&mut self) {
        // The last VMA mapping the object is gone: its page-cache references go (the
        // allocator drains them before its next allocation, and after unmaps and exit).
        self.release.borrow_mut().extend(self.pages.values().copied());
    }
}

/// A VMA's reference to a shared object. Cloning the VMA (split, fork) clones the handle.
#[derive(Clone)]
pub struct Shmem(Rc<RefCell<ShmemObject>>);

impl Shmem {
    /// A new, empty object (Linux: shmem_zero_setup).
    pub fn new(id: u64, pages: &Pages) -> Self {
        Shmem(Rc::new(RefCell::new(ShmemObject { id, pages: BTreeMap::new(), release: pages.deferred_put.clone() })))
    }

    pub fn id(&self) -> u64 {
        self.0.borrow().id
    }

    /// Number of VMAs that map the object.
    pub fn mappers(&self) -> usize {
        Rc::strong_count(&self.0)
    }

    /// Resident pages.
    pub fn nr_pages(&self) -> usize {
        self.0.borrow().pages.len()
    }

    /// The page at page offset `pgoff`, allocated (zeroed) on first use (Linux:
    /// shmem_get_folio with SGP_CACHE). None when guest memory is exhausted.
    pub fn get_page(&self, pages: &mut Pages, mem: &mut mmu::PhysMem, pgoff: u64) -> Option<PhysAddr> {
        let mut o = self.0.borrow_mut();
        if let Some(&pa) = o.pages.get(&pgoff) {
            return Some(pa);
        }
        let pa = pages.alloc_zeroed(mem)?;
        // A page-cache page is never exclusive to one process.
        pages.meta_mut(pa).anon_exclusive = false;
        o.pages.insert(pgoff, pa);
        Some(pa)
    }
}

/// Linux: shmem_fault, the ->fault of a shmem VMA (`obj` is its object): the page at
/// `vmf.pgoff`, allocated on first touch, with a reference taken for the caller (the
/// mapping finish_fault makes, or the copy of a COW fault).
pub fn shmem_fault(vmf: &mut VmFault, obj: &Shmem) -> Result<PhysAddr, FaultOutcome> {
    let hw = &mut *vmf.hw;
    let page = obj.get_page(&mut hw.pages, &mut hw.mem, vmf.pgoff).ok_or(FaultOutcome::Oom)?;
    hw.pages.get(page);
    Ok(page)
}

impl std::fmt::Debug for Shmem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = self.0.borrow();
        write!(f, "Shmem {{ id: {}, pages: {}, mappers: {} }}", o.id, o.pages.len(), Rc::strong_count(&self.0))
    }
}

/// Two handles are equal when they name the same object.
impl PartialEq for Shmem {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Shmem {}
