//! shmem objects (Linux: mm/shmem.c): the memory behind `mmap(MAP_SHARED|MAP_ANONYMOUS)`
//! (an unnamed object, shmem_zero_setup), memfds and tmpfs files (`kernel::shmemfs`), each
//! a [`ShmemObject`] with its page cache (`filemap::AddressSpace`). Every VMA that maps
//! the object and every open file of it holds a [`Shmem`] handle, so the object lives
//! exactly as long as something refers to it; then its pages go back to the allocator.
//!
//! Faults in such a VMA reach `shmem_fault` (the VMA's ->fault) through `mm::memory`'s
//! do_fault → do_read_fault / do_shared_fault → __do_fault: it finds or allocates the page
//! in the object, reads included (shmem never maps the zero page), and finish_fault maps
//! it, writable when the VMA is: there is no copy-on-write in a shared mapping.
//!
//! Page references: the object holds one reference on each of its pages; each PTE mapping
//! a page holds another (`Pages::get` + `Pages::map`), dropped by zap like any mapping.

use super::filemap::AddressSpace;
use super::memory::{FaultOutcome, UffdReason, VmFault};
use super::vma::VmFlags;
use super::page::Pages;
use mmu::PhysAddr;
use std::cell::RefCell;
use std::rc::Rc;

/// F_SEAL_* (Linux: include/uapi/linux/fcntl.h).
pub const F_SEAL_SEAL: u32 = 0x1;
pub const F_SEAL_SHRINK: u32 = 0x2;
pub const F_SEAL_GROW: u32 = 0x4;
pub const F_SEAL_WRITE: u32 = 0x8;
pub const F_SEAL_FUTURE_WRITE: u32 = 0x10;
pub const F_SEAL_EXEC: u32 = 0x20;

/// A shmem inode: the object behind a MAP_SHARED anonymous mapping, a memfd or a tmpfs
/// file (Linux: struct shmem_inode_info with its inode and address_space).
pub struct ShmemObject {
    /// Identity: the inode number, futex keys (`FutexKey::Shared`), /proc/PID/maps.
    pub id: u64,
    /// The page cache.
    pub mapping: AddressSpace,
    /// The file size in bytes (Linux: i_size).
    pub size: u64,
    /// F_SEAL_* (Linux: shmem_inode_info.seals). A memfd created without
    /// MFD_ALLOW_SEALING and every other shmem file start with F_SEAL_SEAL.
    pub seals: u32,
    /// Permission bits of st_mode.
    pub mode: u32,
    /// Hard links from a tmpfs directory (0 for memfds and anonymous shared memory).
    pub nlink: u32,
    /// What /proc/PID/maps names a mapping of it ("/dev/zero (deleted)", "/memfd:x
    /// (deleted)", a tmpfs or host path).
    pub name: Vec<u8>,
    /// A host file's contents: the page cache of a read-only host file is filled from
    /// them on first touch (Linux: filemap_fault reading the page); None for shmem.
    pub source: Option<std::sync::Arc<Vec<u8>>>,
    /// A hugetlbfs file (MAP_HUGETLB memory, MFD_HUGETLB memfds): its page size and
    /// reservations; the page cache is then indexed by huge page.
    pub huge: Option<super::hugetlb::HugetlbInode>,
}

/// A handle on a shmem object: each VMA that maps it (the original, the pieces a split
/// leaves, the copies fork makes) and each open file holds one, so the object lives
/// exactly as long as something refers to it; then its pages go back to the allocator.
#[derive(Clone)]
pub struct Shmem(Rc<RefCell<ShmemObject>>);

/// A reference that does not keep the object alive (the kernel's table of host files'
/// page caches).
pub struct WeakShmem(std::rc::Weak<RefCell<ShmemObject>>);

impl WeakShmem {
    pub fn upgrade(&self) -> Option<Shmem> {
        self.0.upgrade().map(Shmem)
    }
}

impl Shmem {
    pub fn downgrade(&self) -> WeakShmem {
        WeakShmem(Rc::downgrade(&self.0))
    }

    /// A new, empty object of `size` bytes (Linux: shmem_zero_setup for MAP_SHARED
    /// anonymous memory, shmem_file_setup for memfds).
    pub fn new(id: u64, pages: &Pages) -> Self {
        Self::with_size(id, pages, u64::MAX)
    }

    pub fn with_size(id: u64, pages: &Pages, size: u64) -> Self {
        Shmem(Rc::new(RefCell::new(ShmemObject { id, mapping: AddressSpace::new(pages), size, seals: F_SEAL_SEAL, mode: 0o600, nlink: 0, name: b"/dev/zero (deleted)".to_vec(), source: None, huge: None })))
    }

    /// The page cache of a read-only host file: `data` is its contents.
    pub fn host_file(id: u64, pages: &Pages, name: Vec<u8>, data: std::sync::Arc<Vec<u8>>) -> Self {
        let f = Self::with_size(id, pages, data.len() as u64);
        {
            let mut i = f.inode_mut();
            // Its pages are Cached but not Shmem.
            i.mapping = AddressSpace::new_file(pages);
            i.name = name;
            i.mode = 0o755;
            i.source = Some(data);
        }
        f
    }

    /// A shmem object (anonymous shared memory, memfd, tmpfs), not a host file's cache
    /// nor a hugetlbfs file (Linux: shmem_mapping).
    pub fn is_shmem(&self) -> bool {
        let o = self.0.borrow();
        o.source.is_none() && o.huge.is_none()
    }

    /// A hugetlbfs file of `size` bytes with pages of `hsize` (Linux: hugetlb_file_setup
    /// for MAP_HUGETLB, hugetlbfs_file_setup for memfd_create(MFD_HUGETLB)).
    pub fn hugetlb(id: u64, pages: &Pages, size: u64, hsize: super::hugetlb::HugeSize, name: Vec<u8>) -> Self {
        let f = Self::with_size(id, pages, size);
        {
            let mut i = f.inode_mut();
            i.mapping = super::hugetlb::hugetlb_address_space(pages);
            i.name = name;
            i.huge = Some(super::hugetlb::HugetlbInode::new(hsize, &pages.hugetlb));
        }
        f
    }

    /// The huge-page size of a hugetlbfs file, None for any other.
    pub fn hugetlb_size(&self) -> Option<super::hugetlb::HugeSize> {
        self.0.borrow().huge.as_ref().map(|h| h.size)
    }

    /// Runs `f` on the page cache and the hugetlbfs inode of a hugetlb file.
    pub fn with_hugetlb<R>(&self, f: impl FnOnce(&mut AddressSpace, &mut super::hugetlb::HugetlbInode) -> R) -> R {
        let mut o = self.0.borrow_mut();
        let o = &mut *o;
        f(&mut o.mapping, o.huge.as_mut().expect("a hugetlb file"))
    }

    /// The file size (Linux: i_size).
    pub fn size(&self) -> u64 {
        self.0.borrow().size
    }

    /// The cached page at index `idx` (a huge-page index in a hugetlb file).
    pub fn cache_get(&self, idx: u64) -> Option<PhysAddr> {
        self.0.borrow().mapping.get(idx)
    }

    /// Adds `pa` at index `idx`, with the caller's reference becoming the cache's.
    pub fn cache_add(&self, idx: u64, pa: PhysAddr) {
        self.0.borrow_mut().mapping.add(idx, pa, true);
    }

    pub fn id(&self) -> u64 {
        self.0.borrow().id
    }

    /// Resident pages.
    pub fn nr_pages(&self) -> usize {
        self.0.borrow().mapping.nr_pages()
    }

    pub fn inode(&self) -> std::cell::Ref<'_, ShmemObject> {
        self.0.borrow()
    }

    pub fn inode_mut(&self) -> std::cell::RefMut<'_, ShmemObject> {
        self.0.borrow_mut()
    }

    /// The page at page offset `pgoff` if it is in the page cache; never allocates
    /// (Linux: shmem_get_folio with SGP_NOALLOC / filemap_get_folio).
    pub fn find_page(&self, pgoff: u64) -> Option<PhysAddr> {
        self.0.borrow().mapping.get(pgoff)
    }

    /// The page at page offset `pgoff` if it is in the page cache and up to date (Linux:
    /// mincore_page's filemap_get_entry + folio_test_uptodate).
    pub fn find_uptodate_page(&self, pgoff: u64) -> Option<PhysAddr> {
        self.0.borrow().mapping.get_uptodate(pgoff)
    }

    /// The page at page offset `pgoff`, allocated (zeroed) on first use (Linux:
    /// shmem_get_folio with SGP_CACHE). None when guest memory is exhausted.
    pub fn get_page(&self, pages: &mut Pages, mem: &mut mmu::PhysMem, pgoff: u64) -> Option<PhysAddr> {
        self.get_page_as(pages, mem, pgoff, true)
    }

    /// fallocate's page (Linux: shmem_get_folio with SGP_FALLOC): allocated but not up to
    /// date until written or faulted, so fault-around leaves it alone.
    /// The page is marked dirty, a cached one too (Linux: shmem_fallocate marks every page
    /// of the range dirty so that reclaim swaps rather than drops it).
    pub fn falloc_page(&self, pages: &mut Pages, mem: &mut mmu::PhysMem, pgoff: u64) -> Option<PhysAddr> {
        let pa = self.get_page_as(pages, mem, pgoff, false)?;
        pages.mark_dirty(pa);
        Some(pa)
    }

    fn get_page_as(&self, pages: &mut Pages, mem: &mut mmu::PhysMem, pgoff: u64, uptodate: bool) -> Option<PhysAddr> {
        let mut o = self.0.borrow_mut();
        if let Some(pa) = o.mapping.get(pgoff) {
            if uptodate {
                o.mapping.set_uptodate(pgoff);
            }
            return Some(pa);
        }
        let pa = pages.alloc_zeroed(mem)?;
        // A page-cache page is never exclusive to one process.
        pages.meta_mut(pa).anon_exclusive = false;
        pages.meta_mut(pa).file = true;
        if let Some(data) = &o.source {
            // A host file's page: its bytes, zeros past the end of the file.
            let from = ((pgoff << 12) as usize).min(data.len());
            let to = (from + 4096).min(data.len());
            mem.write(pa, &data[from..to]);
        }
        o.mapping.add(pgoff, pa, uptodate);
        Some(pa)
    }

    /// Drops the pages at page offsets [start, end) from the page cache, returning the
    /// cache's references for the caller to put after zapping the mappings (Linux:
    /// shmem_truncate_range's page-cache half).
    pub fn remove_pages(&self, start: u64, end: u64) -> Vec<PhysAddr> {
        self.0.borrow_mut().mapping.remove_range(start, end)
    }
}

/// Linux: shmem_fault, the ->fault of a shmem VMA (`obj` is its object): the page at
/// `vmf.pgoff`, allocated on first touch, with a reference taken for the caller (the
/// mapping finish_fault makes, or the copy of a COW fault).
pub fn shmem_fault(vmf: &mut VmFault, obj: &Shmem) -> Result<PhysAddr, FaultOutcome> {
    // Past the end of the file: SIGBUS (BUS_ADRERR), as shmem_fault and filemap_fault.
    if vmf.pgoff >= obj.inode().size.div_ceil(4096) {
        return Err(FaultOutcome::Bus);
    }
    // shmem_get_folio_gfp: a cached page in a VM_UFFD_MINOR VMA goes to the monitor
    // (MINOR), a hole in a VM_UFFD_MISSING one too (MISSING); nothing is changed.
    let cached = obj.find_page(vmf.pgoff).is_some();
    if cached && vmf.vma.flags.contains(VmFlags::UFFD_MINOR) {
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{:#x}", vmf.address), decision = "uffd_minor");
        return Err(FaultOutcome::Userfault(UffdReason::Minor));
    }
    if !cached && vmf.vma.flags.contains(VmFlags::UFFD_MISSING) {
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{:#x}", vmf.address), decision = "uffd_missing");
        return Err(FaultOutcome::Userfault(UffdReason::Missing));
    }
    let hw = &mut *vmf.hw;
    let page = obj.get_page(&mut hw.pages, &mut hw.mem, vmf.pgoff).ok_or(FaultOutcome::Oom)?;
    hw.pages.get(page);
    // A write through a shared mapping dirties the page (Linux: do_shared_fault →
    // fault_dirty_shared_page, right after ->fault; done here, where every shared write
    // fault on file memory passes, and before finish_fault maps the page dirty).
    if vmf.flags.contains(super::memory::FaultFlags::WRITE) && vmf.vma.shared() {
        hw.pages.mark_dirty(page);
    }
    Ok(page)
}

impl std::fmt::Debug for Shmem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = self.0.borrow();
        write!(f, "Shmem {{ id: {}, pages: {}, mappers: {} }}", o.id, o.mapping.nr_pages(), Rc::strong_count(&self.0))
    }
}

/// Two handles are equal when they name the same object.
impl PartialEq for Shmem {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for Shmem {}
