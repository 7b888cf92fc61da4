//! Virtual memory areas (Linux: struct vm_area_struct, VM_* flags in include/linux/mm.h).

use std::any::Any;
use std::fmt;
use std::rc::Rc;

/// VM_* flags (the subset pagelab models), a bitflags set with Linux's values. Every bit
/// is kept, named or not (`!` and `remove` act on all 64), as the raw `vm_flags` would.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, Default)]
pub struct VmFlags(u64);

bitflags::bitflags! {
    impl VmFlags: u64 {
        const READ = 0x1;
        const WRITE = 0x2;
        const EXEC = 0x4;
        const SHARED = 0x8;
        const MAYREAD = 0x10;
        const MAYWRITE = 0x20;
        const MAYEXEC = 0x40;
        const MAYSHARE = 0x80;
        const GROWSDOWN = 0x100;
        const UFFD_MISSING = 0x200;
        /// VM_MAYBE_GUARD (6.18): MADV_GUARD_INSTALL was used on the VMA (smaps "gu").
        /// Sticky (VM_STICKY): it does not keep VMAs from merging, and a merged VMA has it
        /// if either part had it (measured: a guarded VMA and an unguarded neighbour of
        /// the same flags otherwise become one again after an mprotect round trip).
        const MAYBE_GUARD = 0x800;
        /// The flags a merge keeps from either part and that never prevent one (Linux:
        /// VM_STICKY).
        const STICKY = Self::MAYBE_GUARD.bits();
        const UFFD_WP = 0x1000;
        const LOCKED = 0x2000;
        const DONTCOPY = 0x2_0000;
        const DONTEXPAND = 0x4_0000;
        /// MADV_WIPEONFORK: the child gets the range empty (zero-filled on demand).
        const WIPEONFORK = 0x200_0000;
        /// MADV_DONTDUMP (and MAP_DROPPABLE): left out of core dumps (smaps "dd").
        const DONTDUMP = 0x400_0000;
        const ACCOUNT = 0x10_0000;
        const NORESERVE = 0x20_0000;
        /// A hugetlb mapping (MAP_HUGETLB, an MFD_HUGETLB memfd).
        const HUGETLB = 0x40_0000;
        /// MADV_HUGEPAGE: THP wanted here (the "madvise" policy).
        const HUGEPAGE = 0x2000_0000;
        /// MADV_NOHUGEPAGE: never THP here.
        const NOHUGEPAGE = 0x4000_0000;
        /// MLOCK_ONFAULT: locked pages are faulted in on access, not at mlock time.
        const LOCKONFAULT = 0x8_0000;
        const UFFD_MINOR = 0x2_0000_0000;
        /// MAP_DROPPABLE: pages the kernel may drop under pressure; never uffd-capable,
        /// never locked (smaps "dp").
        const DROPPABLE = 0x100_0000_0000;
        const _ = !0;
    }
}

impl VmFlags {
    /// Any of `f` is set.
    pub const fn has(self, f: VmFlags) -> bool {
        self.0 & f.0 != 0
    }
    /// VM_READ/WRITE/EXEC from PROT_* bits (Linux: calc_vm_prot_bits).
    pub const fn from_prot(prot: u32) -> VmFlags {
        VmFlags((prot as u64) & (Self::READ.0 | Self::WRITE.0 | Self::EXEC.0))
    }
}

/// What mm asks of the userfaultfd context a VMA is registered with. The context — its
/// queues, its file, its features — is `kernel::uffd`'s, which implements this; mm keeps
/// the reference and compares it, and asks only this.
pub trait UserfaultfdCtx: Any + fmt::Debug {
    /// The context asked for UFFD_FEATURE_WP_UNPOPULATED (or WP_ASYNC, which implies
    /// it): write-protecting anonymous memory marks its none PTEs too.
    fn wp_unpopulated(&self) -> bool;
    /// The context asked for UFFD_FEATURE_WP_ASYNC: the kernel resolves a write to a
    /// uffd-wp'd page itself, without a message.
    fn wp_async(&self) -> bool;
}

/// Linux: struct vm_userfaultfd_ctx, a VMA's reference to the userfaultfd context it is
/// registered with. Equal when it names the same context, which is what vma_merge and
/// the EBUSY of a second context compare; what a context is, only its owner knows
/// (`downcast`).
#[derive(Clone)]
pub struct VmUserfaultfdCtx(Rc<dyn UserfaultfdCtx>);

impl VmUserfaultfdCtx {
    pub fn new<C: UserfaultfdCtx>(ctx: Rc<C>) -> Self {
        VmUserfaultfdCtx(ctx)
    }
    /// The context, as the type it was made from.
    pub fn downcast<C: UserfaultfdCtx>(&self) -> Option<Rc<C>> {
        let any: Rc<dyn Any> = self.0.clone();
        any.downcast().ok()
    }
    /// This names `ctx`.
    pub fn is<C: UserfaultfdCtx>(&self, ctx: &C) -> bool {
        std::ptr::addr_eq(Rc::as_ptr(&self.0), ctx as *const C)
    }
    pub fn wp_unpopulated(&self) -> bool {
        self.0.wp_unpopulated()
    }
    pub fn wp_async(&self) -> bool {
        self.0.wp_async()
    }
}

impl PartialEq for VmUserfaultfdCtx {
    fn eq(&self, o: &Self) -> bool {
        Rc::ptr_eq(&self.0, &o.0)
    }
}

impl Eq for VmUserfaultfdCtx {}

impl fmt::Debug for VmUserfaultfdCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What backs a VMA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Private or shared anonymous memory.
    Anon,
    /// The initial stack.
    Stack,
    /// The program break.
    Heap,
    /// A page-cache object, with the byte offset of `start` in it: MAP_SHARED|MAP_ANONYMOUS
    /// memory, a memfd or tmpfs file, or a read-only host file (`Shmem::is_shmem` tells).
    Shmem { obj: super::shmem::Shmem, offset: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub flags: VmFlags,
    pub backing: Backing,
    /// Identity of a MAP_SHARED anonymous object (shared across fork), if any.
    pub shared_id: Option<u64>,
    /// The userfaultfd this VMA is registered with (Linux: vm_userfaultfd_ctx); set
    /// exactly when one of the VM_UFFD_* flags is.
    pub userfaultfd_ctx: Option<VmUserfaultfdCtx>,
    /// Linux: vma->anon_vma: set once the private VMA has had a write fault or a uffd fill.
    /// A private file or shmem mapping then has anonymous (COW) pages, so fork must copy
    /// its page tables (vma_needs_copy; private anonymous VMAs are always copied); an
    /// anonymous one keeps its `pgoff` when mremap moves it; and two VMAs merge only if
    /// their anon_vmas allow it (`is_mergeable_anon_vma`).
    pub anon_vma: Option<AnonVma>,
    /// A private hugetlb mapping's reservations, held by the process that made them
    /// (Linux: the resv_map with HPAGE_RESV_OWNER; `hugetlb`); None for every other VMA.
    pub hugetlb_resv: Option<super::hugetlb::ResvMap>,
    /// Linux: HPAGE_RESV_UNMAPPED. The owner of the reservations took a page of this
    /// (private, non-owner) hugetlb mapping back to complete its own copy-on-write when
    /// the pool was empty (`hugetlb::unmap_ref_private`): a later fault on an empty slot
    /// here is SIGBUS.
    pub hugetlb_unmapped: bool,
    /// Linux: vm_pgoff of an anonymous VMA: the page index (address >> 12) its memory was
    /// created at, advanced by a split and kept by an mremap move of faulted memory (an
    /// unfaulted one takes its new address's), so two anonymous VMAs merge only at
    /// contiguous pgoffs (measured: a page moved next to its old neighbours stays its own
    /// VMA). File and shmem VMAs use `Backing::Shmem`'s offset instead.
    pub pgoff: u64,
}

/// Linux: mm/mmap.c accountable_mapping: a private writable mapping (not NORESERVE, not
/// hugetlb) is charged to the commit limit, and mmap gives it VM_ACCOUNT.
pub fn accountable_mapping(flags: VmFlags) -> bool {
    flags & (VmFlags::NORESERVE | VmFlags::SHARED | VmFlags::WRITE | VmFlags::HUGETLB) == VmFlags::WRITE
}

/// Linux: a VMA's anon_vma, by identity (unique within its mm: `Mm::new_anon_vma`), and
/// whether the VMA's anon_vma_chain also holds anon_vmas of a parent process (a fork
/// child's copy of a VMA that had one; Linux: vma_had_uncowed_parents).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnonVma {
    pub id: u64,
    pub forked: bool,
}

/// Linux: mm/vma.c is_mergeable_anon_vma (6.18): two VMAs merge if they share their
/// anon_vma, or if only one has one and it came with no parents (it is then used, or
/// duplicated, for the whole). Symmetric, whichever side is the target. Measured on
/// 6.18: two separately faulted neighbours stay apart, a never-faulted VMA merges with
/// a faulted one on either side, and a middle range merges with both sides only if
/// their anon_vmas are compatible with each other too (which the left-to-right merge
/// of `Mm::merge_around` checks, as the merged VMA carries the left's anon_vma).
pub fn is_mergeable_anon_vma(a: Option<AnonVma>, b: Option<AnonVma>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), None) | (None, Some(x)) => !x.forked,
        (Some(x), Some(y)) => x.id == y.id,
    }
}

impl Vma {
    pub fn readable(&self) -> bool {
        self.flags.has(VmFlags::READ)
    }
    pub fn writable(&self) -> bool {
        self.flags.has(VmFlags::WRITE)
    }
    pub fn executable(&self) -> bool {
        self.flags.has(VmFlags::EXEC)
    }
    /// Linux: vma_is_accessible. Any access at all is allowed (not PROT_NONE).
    pub fn is_accessible(&self) -> bool {
        self.flags.has(VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC)
    }
    pub fn shared(&self) -> bool {
        self.flags.has(VmFlags::SHARED)
    }
    /// Linux's vma_is_anonymous: no file or shmem object behind it.
    pub fn is_anonymous(&self) -> bool {
        !matches!(self.backing, Backing::Shmem { .. })
    }
    /// Backed by shmem (anonymous shared memory, memfd, tmpfs), not by a host file's page
    /// cache (Linux: vma_is_shmem).
    pub fn is_shmem(&self) -> bool {
        matches!(&self.backing, Backing::Shmem { obj, .. } if obj.is_shmem())
    }
    /// Linux: is_vm_hugetlb_page.
    pub fn is_hugetlb(&self) -> bool {
        self.flags.has(VmFlags::HUGETLB)
    }
    /// The size of the pages that map it (Linux: vma_kernel_pagesize).
    pub fn page_size(&self) -> u64 {
        super::hugetlb::vma_hsize(self).map_or(4096, |h| h.bytes())
    }
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    /// Linux: vma->vm_page_prot, as vma_set_page_prot computes it from the flags: the
    /// protection a fault maps a page with. A shared, writable VMA registered for uffd-wp
    /// wants write notification (vma_wants_writenotify: "write faults for uffd-wp
    /// tracking"), so its pages are mapped read-only and the first write to each takes a
    /// fault (wp_page_shared, or the monitor's WP message). Measured on 6.18: a read fault
    /// in such a VMA maps the page read-only, and a write after it faults once more.
    pub fn page_prot(&self) -> u64 {
        let write = self.writable() && !(self.shared() && self.flags.has(VmFlags::UFFD_WP));
        // Write implies read on x86: a write-only VMA stays accessible without its R/W.
        super::pgtable::vm_page_prot(self.readable() || self.writable(), write, self.executable(), self.shared())
    }
    /// Offset of `addr` within the object this VMA maps (file or shared anonymous object).
    pub fn object_offset(&self, addr: u64) -> u64 {
        let base = match &self.backing {
            Backing::Shmem { offset, .. } => *offset,
            _ => 0,
        };
        base + (addr - self.start)
    }
    /// Linux merges VMAs with identical flags and compatible backing.
    pub fn can_merge(&self, next: &Vma) -> bool {
        // VM_SPECIAL (hugetlb mappings are VM_DONTEXPAND) never merges.
        !self.flags.has(VmFlags::DONTEXPAND)
            && (self.flags ^ next.flags) - VmFlags::STICKY == VmFlags::empty()
            && self.userfaultfd_ctx == next.userfaultfd_ctx
            && self.shared_id == next.shared_id
            && is_mergeable_anon_vma(self.anon_vma, next.anon_vma)
            && self.continues_into(next)
    }
    /// `next` maps what follows this VMA's memory: anonymous memory at contiguous
    /// pgoffs, or the same object at contiguous offsets (Linux: vm_file equal and
    /// vma_pgoff + pages == next's pgoff).
    fn continues_into(&self, next: &Vma) -> bool {
        match (&self.backing, &next.backing) {
            (Backing::Anon, Backing::Anon) | (Backing::Heap, Backing::Heap) => self.shared_id.is_none() && self.pgoff + (self.len() >> 12) == next.pgoff,
            (Backing::Shmem { obj: a, offset: oa }, Backing::Shmem { obj: b, offset: ob }) => a == b && oa + self.len() == *ob,
            _ => false,
        }
    }
    /// Linux: mm/rmap.c anon_vma_compatible: `next` directly follows this VMA, maps what
    /// follows its memory, and their flags differ at most in the access bits, so a first
    /// fault in one may use the other's anon_vma (`Mm::anon_vma_prepare`).
    pub fn anon_vma_compatible(&self, next: &Vma) -> bool {
        self.end == next.start
            && (self.flags ^ next.flags) - (VmFlags::READ | VmFlags::WRITE | VmFlags::EXEC) == VmFlags::empty()
            && self.continues_into(next)
    }
}
