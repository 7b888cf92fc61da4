//! The page-fault path below the arch entry (Linux: mm/memory.c): one fault context,
//! [`VmFault`] (struct vm_fault), carried from `handle_mm_fault` down to the handler that
//! fixes the PTE, each handler taking it as its one argument.
//!
//! ```text
//! handle_mm_fault                the caller found the VMA and checked the access
//! └ __handle_mm_fault            PDPT, page directory (pmd_alloc); the PMD hook
//!   │                            (huge_pmd_fault: THP, not yet); the page table
//!   └ handle_pte_fault           dispatch on orig_pte
//!     ├ none       → do_pte_missing → do_anonymous_page    anonymous VMA
//!     │                             → do_fault → do_read_fault / do_cow_fault /
//!     │                                          do_shared_fault (shmem's ->fault)
//!     ├ swap entry → do_swap_page (mm::swap) → handle_pte_marker for a PTE marker
//!     ├ PROT_NONE  → SIGBUS
//!     ├ write to a read-only PTE → do_wp_page → wp_page_reuse / wp_page_copy
//!     └ otherwise spurious: the stale TLB entry is flushed
//! ```
//!
//! Nothing here signals or talks to userfaultfd: the answer is a [`FaultOutcome`] (Linux's
//! vm_fault_t). A fault that needs the monitor changes nothing and returns
//! [`FaultOutcome::Userfault`] with the reason, for the caller to hand to `kernel::uffd`
//! (Linux calls handle_userfault from here and returns VM_FAULT_RETRY). The callers are
//! the x86 entry `kernel::arch::fault` (user faults: it finds the VMA with
//! `lock_mm_and_find_vma`, checks the access and turns the outcome into a signal or a
//! message) and `kernel::uaccess` (kernel-mode faults on user memory).

use super::swapops::{softleaf_from_pte, PteMarker, SoftLeaf};
use super::pgtable::{self, linux::*, Slot};
use super::vma::{Backing, Vma, VmFlags};
use super::{Mm, STACK_LIMIT};
use crate::kernel::hw::Hw;
use mmu::{Entry, PhysAddr};

bitflags::bitflags! {
    /// What kind of fault this is (Linux: enum fault_flag, include/linux/mm_types.h), as
    /// the callers of handle_mm_fault describe it; Linux's values, for the flags pagelab
    /// sets.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub struct FaultFlags: u32 {
        /// FAULT_FLAG_WRITE: the access is a write.
        const WRITE = 1 << 0;
        /// FAULT_FLAG_USER: the fault came from user mode (Linux: user_mode(regs)); clear
        /// for a kernel access to user memory.
        const USER = 1 << 6;
        /// FAULT_FLAG_REMOTE: the access goes through the page tables of an mm it names
        /// rather than the current vCPU (Linux: get_user_pages_remote).
        const REMOTE = 1 << 7;
        /// FAULT_FLAG_INSTRUCTION: the access is an instruction fetch.
        const INSTRUCTION = 1 << 8;
    }
}

/// Why a fault needs the VMA's userfaultfd (Linux: the `reason` handle_userfault takes,
/// VM_UFFD_MISSING, VM_UFFD_WP or VM_UFFD_MINOR).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UffdReason {
    /// A none PTE in a VM_UFFD_MISSING VMA.
    Missing,
    /// A write to a uffd-wp'd PTE in a VM_UFFD_WP VMA.
    Wp,
    /// A page-cache page not yet mapped in a VM_UFFD_MINOR VMA (shmem; not raised yet).
    Minor,
}

impl UffdReason {
    /// The VM_UFFD_* flag Linux passes as the reason.
    pub fn vm_flag(self) -> VmFlags {
        match self {
            UffdReason::Missing => VmFlags::UFFD_MISSING,
            UffdReason::Wp => VmFlags::UFFD_WP,
            UffdReason::Minor => VmFlags::UFFD_MINOR,
        }
    }
}

/// What handle_mm_fault answers (Linux: vm_fault_t).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// A page was installed or made writable (or the fault was spurious): retry.
    Handled,
    /// VM_FAULT_SIGBUS (BUS_ADRERR): e.g. a poison marker, or a file mapping beyond end of
    /// file.
    Bus,
    /// VM_FAULT_HWPOISON: a poison marker (UFFDIO_POISON). A user access gets SIGBUS as
    /// for `Bus` (this kernel has no MEMORY_FAILURE: BUS_ADRERR, measured); a GUP that
    /// asks (FOLL_HWPOISON: MADV_POPULATE_*) gets EHWPOISON, others EFAULT.
    HwPoison,
    /// VM_FAULT_SIGSEGV (SEGV_MAPERR): a guard marker.
    Segv,
    /// Guest memory exhausted (VM_FAULT_OOM).
    Oom,
    /// The fault needs the VMA's userfaultfd (Linux: handle_userfault, then
    /// VM_FAULT_RETRY): nothing was changed, and the caller — the arch entry for a user
    /// fault, the syscall entry for a kernel-mode one — hands the fault to `kernel::uffd`,
    /// which mm never calls.
    Userfault(UffdReason),
    /// The owner of a private hugetlb mapping's reservations must copy the huge page
    /// `head` (file offset `offset` of the object `obj`) and the pool is empty: the caller,
    /// who reaches every address space, takes the page from the other processes' private
    /// mappings (`hugetlb::unmap_ref_private`) and runs the fault again (Linux:
    /// hugetlb_wp's unmap_ref_private, then retry_avoidcopy).
    HugetlbUnmapRefPrivate { obj: u64, offset: u64, head: PhysAddr },
}

/// A kernel-mode access of the running syscall that needs userfaultfd: recorded by
/// uaccess in `Hw::uffd_kfault`, handed by the syscall entry to `uffd::kernel_fault`
/// (Linux sleeps in handle_userfault inside the copy instead; see `kernel::uffd`).
#[derive(Clone, Copy, Debug)]
pub struct KernelFault {
    pub addr: u64,
    pub write: bool,
    pub reason: UffdReason,
}

/// Linux: expand_stack. Grows a VM_GROWSDOWN VMA down to cover `va`, within the rlimit.
fn expand_stack(mm: &mut Mm, va: u64) -> bool {
    let next = mm.vmas.range(va..).next().map(|(&s, v)| (s, v.clone()));
    match next {
        Some((s, v)) if v.flags.has(VmFlags::GROWSDOWN) && v.end - (va & !0xfff) <= STACK_LIMIT => {
            let prev_end = mm.vmas.range(..s).next_back().map(|(_, p)| p.end).unwrap_or(0);
            let new_start = va & !0xfff;
            if new_start < prev_end + 4096 {
                return false;
            }
            let mut v = mm.vmas.remove(&s).unwrap();
            v.start = new_start;
            mm.vmas.insert(new_start, v);
            true
        }
        _ => false,
    }
}

/// Linux: lock_mm_and_find_vma. The VMA containing `va`, or the stack VMA just above it
/// grown down to cover it (expand_stack); None for an address no VMA can cover.
pub fn lock_mm_and_find_vma(mm: &mut Mm, va: u64) -> Option<&Vma> {
    if mm.find_vma(va).is_none() && !expand_stack(mm, va) {
        return None;
    }
    mm.find_vma(va)
}

/// One fault, as the handlers below see it (Linux: struct vm_fault): built by
/// `__handle_mm_fault` and passed down by reference, so each handler takes this one
/// argument.
pub struct VmFault<'a> {
    /// The machine: guest memory, the page allocator, the TLBs, the swap device (what
    /// Linux reaches through globals and per-CPU state).
    pub hw: &'a mut Hw,
    /// The VMA the address lies in, its access already checked.
    pub vma: &'a Vma,
    /// The faulting address, page-aligned (Linux: vmf->address).
    pub address: u64,
    /// The faulting address as the access gave it (Linux: vmf->real_address).
    pub real_address: u64,
    /// The page offset of `address` in the VMA's object (Linux: linear_page_index).
    pub pgoff: u64,
    pub flags: FaultFlags,
    /// The mm's PML4 (what CR3 holds for it): a flush this fault needs goes to every vCPU
    /// running it (Linux reaches the mm as vmf->vma->vm_mm).
    pub pml4: PhysAddr,
    /// The PMD slot over `address` (Linux: vmf->pmd): the page-directory entry, or a
    /// 1 GiB leaf above it.
    pub pmd: Slot,
    /// The PTE slot (Linux: vmf->pte), set once the page table exists; every handler
    /// below `handle_pte_fault` has it.
    pub pte: Option<Slot>,
    /// The PTE as it was when the fault was taken (Linux: vmf->orig_pte).
    pub orig_pte: Entry,
}

impl VmFault<'_> {
    /// The PTE slot, which `__handle_mm_fault` sets before `handle_pte_fault` runs.
    pub fn pte_slot(&self) -> Slot {
        self.pte.expect("VmFault::pte is set before handle_pte_fault")
    }

    /// Linux: vmf_orig_pte_uffd_wp. The fault found a uffd-wp marker: whatever it maps
    /// keeps the protection (`_PAGE_UFFD_WP`, so read-only), and a write then faults again
    /// into do_wp_page and the monitor.
    pub fn orig_pte_uffd_wp(&self) -> bool {
        matches!(softleaf_from_pte(self.orig_pte), SoftLeaf::Marker(m) if m.contains(PteMarker::UFFD_WP))
    }
}

/// Linux: pte_mkuffd_wp. The uffd-wp bit, and never writable with it.
pub fn pte_mkuffd_wp(e: Entry) -> Entry {
    e.with(_PAGE_UFFD_WP).without(_PAGE_RW)
}

/// Linux: handle_mm_fault for `address` in `vma`, whose access the caller has checked
/// (access_error for a user fault, uaccess for a kernel-mode one). Linux's own checks
/// here have nothing to check in pagelab: arch_vma_access_permitted (no protection keys
/// on VMAs) and sanitize_fault_flags (nothing asks for FAULT_FLAG_UNSHARE).
///
/// A write fault handled in a private mapping left an anonymous page there (do_anonymous_page,
/// do_cow_fault, wp_page_copy), and so did any huge PMD fault of anonymous memory, the huge
/// zero page included (do_huge_pmd_anonymous_page prepares first): the VMA gets its
/// anon_vma (Linux: anon_vma_prepare). A 4 KiB read fault maps the zero page without one.
pub fn handle_mm_fault(mm: &mut Mm, hw: &mut Hw, vma: &Vma, address: u64, flags: FaultFlags) -> FaultOutcome {
    if vma.is_hugetlb() {
        return super::hugetlb::hugetlb_fault(mm, hw, vma, address, flags);
    }
    let r = __handle_mm_fault(mm, hw, vma, address, flags);
    // A write to a none PTE prepares the anon_vma before it asks the monitor: do_anonymous_page
    // and do_cow_fault call vmf_anon_prepare before handle_userfault (MISSING, or MINOR from
    // the object's fault), so a write answered by a message or SIGBUS leaves one too.
    let asked_first = flags.contains(FaultFlags::WRITE) && matches!(r, FaultOutcome::Userfault(UffdReason::Missing | UffdReason::Minor));
    if (r == FaultOutcome::Handled || asked_first) && !vma.shared() && vma.anon_vma.is_none() {
        let huge = || vma.is_anonymous() && pgtable::walk_lookup(&hw.mem, mm.pml4, address).is_some_and(|s| s.level == mmu::Level::Pd);
        if flags.contains(FaultFlags::WRITE) || huge() {
            mm.anon_vma_prepare(vma.start);
        }
    }
    r
}

/// Linux: __handle_mm_fault. Walks down to the PMD, allocating the PDPT and page directory
/// (p4d_alloc, pud_alloc, pmd_alloc); gives the PMD level its chance (`huge_pmd_fault`);
/// allocates the page table (pte_alloc) and reads the PTE into the fault context for
/// `handle_pte_fault`. The page table is allocated here, before the PTE is looked at, where
/// Linux does it in do_anonymous_page and do_fault: the order pagelab has always had,
/// which frame numbers depend on.
fn __handle_mm_fault(mm: &mut Mm, hw: &mut Hw, vma: &Vma, address: u64, flags: FaultFlags) -> FaultOutcome {
    let Some(pmd) = pgtable::pmd_alloc(&mut hw.mem, &mut hw.pages, &mut mm.table_frames, mm.pml4, address) else {
        return FaultOutcome::Oom;
    };
    let page = address & !0xfff;
    let mut vmf = VmFault { hw, vma, address: page, real_address: address, pgoff: vma.object_offset(page) >> 12, flags, pml4: mm.pml4, pmd, pte: None, orig_pte: Entry::new(0) };
    if let Some(r) = huge_pmd_fault(&mut vmf, &mut mm.table_frames, mm.thp_disable) {
        return r;
    }
    let hw = &mut *vmf.hw;
    let new_table = pmd.level == mmu::Level::Pd && pgtable::get_entry(&hw.mem, pmd).raw() == 0;
    let Some(pte) = pgtable::pte_alloc(&mut hw.mem, &mut hw.pages, &mut mm.table_frames, pmd, address) else {
        return FaultOutcome::Oom;
    };
    vmf.orig_pte = pgtable::get_entry(&hw.mem, pte);
    vmf.pte = Some(pte);
    let r = handle_pte_fault(&mut vmf);
    // An object's fault installs the page table only once it maps something (Linux:
    // do_fault preallocates it, and finish_fault or filemap_map_pages installs it): one
    // that ended in a userfault, SIGBUS or an error leaves the PMD none (measured: a
    // PAGEMAP_SCAN there reports a hole, category 0, not an unwritten pte_none). An
    // anonymous fault installs it first (do_anonymous_page), so it stays.
    if new_table && r != FaultOutcome::Handled && !vma.is_anonymous() {
        pgtable::free_pte_table_if_empty(mm, vmf.hw, pmd, address);
    }
    r
}

/// The PMD level of a fault (Linux: __handle_mm_fault between pmd_alloc and
/// handle_pte_fault). A none PMD in a THP-eligible VMA (`thp_vma_allowable`) gets a huge
/// PMD (create_huge_pmd → do_huge_pmd_anonymous_page); a present huge PMD takes a write
/// to its read-only mapping in `do_huge_pmd_wp_page`, and any other fault on it was
/// spurious. None means VM_FAULT_FALLBACK: the fault goes on at the page table (after a
/// split, for a huge PMD that must become PTEs).
fn huge_pmd_fault(vmf: &mut VmFault, tables: &mut Vec<PhysAddr>, thp_disable: u8) -> Option<FaultOutcome> {
    use super::huge_memory::{pmd_trans_huge, thp_vma_allowable};
    if vmf.pmd.level != mmu::Level::Pd {
        // A 1 GiB leaf above: no huge user mappings of that size yet.
        return None;
    }
    let pmd = pgtable::get_entry(&vmf.hw.mem, vmf.pmd);
    if pgtable::pte_none(pmd) {
        if thp_vma_allowable(vmf.hw, thp_disable, vmf.vma, vmf.address) {
            return do_huge_pmd_anonymous_page(vmf);
        }
        // A shmem VMA over a 2 MiB folio of its page cache (finish_fault's do_set_pmd).
        if super::huge_memory::do_set_pmd(vmf.hw, thp_disable, vmf.vma, vmf.pmd, vmf.address, vmf.flags.contains(FaultFlags::WRITE)) {
            return Some(FaultOutcome::Handled);
        }
        return None;
    }
    if !pmd_trans_huge(pmd) {
        return None;
    }
    if !pmd.is_present() {
        // A PROT_NONE huge PMD (NUMA hinting, which pagelab has not): as for a PTE.
        return Some(FaultOutcome::Bus);
    }
    if vmf.flags.contains(FaultFlags::WRITE) && !pmd.is_writable() {
        return do_huge_pmd_wp_page(vmf, tables, pmd);
    }
    // Spurious (huge_pmd_set_accessed): the TLB held a stricter, stale entry.
    let hw = &mut *vmf.hw;
    let haddr = vmf.address & !(super::huge_memory::HPAGE_PMD_SIZE - 1);
    hw.vcpus[hw.cur].tlb.flush_range(haddr, haddr + super::huge_memory::HPAGE_PMD_SIZE);
    Some(FaultOutcome::Handled)
}

/// Linux: do_huge_pmd_anonymous_page. A read maps the huge zero page read-only
/// (transparent_hugepage_use_zero_page; a MISSING VMA asks the monitor first); a write
/// maps a new zeroed 2 MiB folio, writable and dirty (a MISSING VMA asks first, as
/// __do_huge_pmd_anonymous_page does). No aligned 2 MiB free: VM_FAULT_FALLBACK.
fn do_huge_pmd_anonymous_page(vmf: &mut VmFault) -> Option<FaultOutcome> {
    use super::huge_memory::{huge_zero_page, mk_huge_pmd};
    let (vma, haddr) = (vmf.vma, vmf.address & !(super::huge_memory::HPAGE_PMD_SIZE - 1));
    if vma.flags.has(VmFlags::UFFD_MISSING) {
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{:#x}", vmf.address), decision = "uffd_missing");
        return Some(FaultOutcome::Userfault(UffdReason::Missing));
    }
    let prot = vma_prot(vma);
    let hw = &mut *vmf.hw;
    let (entry, decision) = if !vmf.flags.contains(FaultFlags::WRITE) {
        let zero = huge_zero_page(hw)?;
        (mk_huge_pmd(zero, prot & !_PAGE_RW).with(_PAGE_SPECIAL), "huge_zero_page")
    } else {
        let folio = hw.pages.alloc_huge_zeroed(&mut hw.mem)?;
        hw.pages.map_pmd(folio);
        let mut e = mk_huge_pmd(folio, prot).with(_PAGE_DIRTY);
        if vma.writable() {
            e = e.with(_PAGE_RW);
        }
        (e, "thp_page")
    };
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{:#x}", vmf.address), decision, pmd = format_args!("{:#x}", entry.raw()));
    // The old entry was none: no TLB can hold it.
    pgtable::set_entry(&mut hw.mem, vmf.pmd, haddr, entry).not_needed();
    Some(FaultOutcome::Handled)
}

/// Linux: do_huge_pmd_wp_page. A write to a read-only huge PMD: uffd-wp first
/// (userfaultfd_huge_pmd_wp: the WP message, for the faulting 4 KiB page); the huge zero
/// page is replaced by a new zeroed folio (do_huge_zero_wp_pmd, measured on 6.18); a
/// folio this process owns alone (PageAnonExclusive, or its only reference) is reused,
/// the PMD made writable; anything else — a folio shared after fork, or no 2 MiB free for
/// the zero page's copy — is split (__split_huge_pmd) and the fault falls back to the PTE
/// it now has, which copies one 4 KiB page.
fn do_huge_pmd_wp_page(vmf: &mut VmFault, tables: &mut Vec<PhysAddr>, pmd: Entry) -> Option<FaultOutcome> {
    use super::huge_memory::{is_huge_zero_pmd, pmd_pfn, split_huge_pmd, HPAGE_PMD_SIZE};
    let (vma, haddr) = (vmf.vma, vmf.address & !(HPAGE_PMD_SIZE - 1));
    if vma.flags.has(VmFlags::UFFD_WP) && pmd.has(_PAGE_UFFD_WP) {
        if super::userfaultfd::userfaultfd_wp_async(vma) {
            // WP_ASYNC: split, and the PTE level resolves the written page alone.
            if !split_huge_pmd(vmf.hw, tables, vmf.pml4.as_u64(), vmf.pmd, haddr) {
                return Some(FaultOutcome::Oom);
            }
            return None;
        }
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{:#x}", vmf.address), decision = "uffd_wp", pmd = format_args!("{:#x}", pmd.raw()));
        return Some(FaultOutcome::Userfault(UffdReason::Wp));
    }
    if super::huge_memory::is_file_pmd(vmf.hw, pmd) {
        // A file folio: the PMD goes and the write faults on a PTE (copying a 4 KiB page
        // in a private mapping).
        super::huge_memory::zap_file_pmd(vmf.hw, vmf.pml4.as_u64(), vmf.pmd, haddr, pmd);
        let _ = tables;
        return None;
    }
    let hw = &mut *vmf.hw;
    if is_huge_zero_pmd(hw, pmd) {
        if let Some(folio) = hw.pages.alloc_huge_zeroed(&mut hw.mem) {
            hw.pages.map_pmd(folio);
            let e = super::huge_memory::mk_huge_pmd(folio, vma_prot(vma)).with(_PAGE_RW | _PAGE_DIRTY);
            let f = pgtable::set_entry(&mut hw.mem, vmf.pmd, haddr, e);
            hw.flush(f, vmf.pml4.as_u64());
            tracing::trace!(target: "pagelab::fault", addr = format_args!("{:#x}", vmf.address), decision = "thp_zero_wp");
            return Some(FaultOutcome::Handled);
        }
    } else {
        let head = pmd_pfn(pmd);
        if hw.pages.meta(head).anon_exclusive || hw.pages.folio_refcount(head) == 1 {
            for i in 0..512 {
                hw.pages.meta_mut(PhysAddr::new(head.as_u64() + (i << 12))).anon_exclusive = true;
            }
            let f = pgtable::set_entry(&mut hw.mem, vmf.pmd, haddr, pmd.with(_PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED));
            hw.flush(f, vmf.pml4.as_u64());
            tracing::trace!(target: "pagelab::fault", addr = format_args!("{:#x}", vmf.address), decision = "thp_reuse");
            return Some(FaultOutcome::Handled);
        }
    }
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{:#x}", vmf.address), decision = "thp_split");
    if !split_huge_pmd(hw, tables, vmf.pml4.as_u64(), vmf.pmd, haddr) {
        return Some(FaultOutcome::Oom);
    }
    None
}

/// Linux: handle_pte_fault. Dispatches on the PTE the fault found:
/// none → `do_pte_missing`; a swap entry or PTE marker → `do_swap_page`; PROT_NONE →
/// SIGBUS (Linux's do_numa_page: pagelab has no NUMA hinting, and an access to a PROT_NONE
/// VMA was refused before); a write to a read-only PTE → `do_wp_page`; otherwise the fault
/// was spurious.
fn handle_pte_fault(vmf: &mut VmFault) -> FaultOutcome {
    let pte = vmf.orig_pte;
    match softleaf_from_pte(pte) {
        SoftLeaf::None => return do_pte_missing(vmf),
        // Swap entries (mm::swap) and PTE markers (do_swap_page hands them to
        // handle_pte_marker); migration entries are never made yet.
        SoftLeaf::Swap { .. } | SoftLeaf::Migration { .. } | SoftLeaf::Marker(_) => return super::swap::do_swap_page(vmf),
        SoftLeaf::ProtNone => return FaultOutcome::Bus,
        SoftLeaf::Present => {}
    }
    if vmf.flags.contains(FaultFlags::WRITE) && !pte.is_writable() {
        return do_wp_page(vmf);
    }
    // Spurious: the TLB held a stricter, stale entry (Linux: flush_tlb_fix_spurious_fault).
    let hw = &mut *vmf.hw;
    hw.vcpus[hw.cur].tlb.flush_range(vmf.address, vmf.address + 4096);
    FaultOutcome::Handled
}

/// Linux: do_pte_missing. A none PTE: an anonymous VMA gets a page of its own
/// (`do_anonymous_page`), one backed by an object asks the object (`do_fault`).
fn do_pte_missing(vmf: &mut VmFault) -> FaultOutcome {
    if vmf.vma.is_anonymous() {
        do_anonymous_page(vmf)
    } else {
        do_fault(vmf)
    }
}

fn vma_prot(vma: &Vma) -> u64 {
    vma.page_prot()
}

/// Linux: do_anonymous_page. A VM_UFFD_MISSING VMA sends every none-PTE fault to the
/// monitor first (userfaultfd_missing → handle_userfault(VM_UFFD_MISSING)), reads (before
/// the zero page) and writes alike. Otherwise a read maps the shared zero page (private
/// anonymous memory only); a write allocates a zeroed frame mapped writable and dirty.
/// In place of a uffd-wp marker (WP_UNPOPULATED) either is mapped uffd-wp'd.
fn do_anonymous_page(vmf: &mut VmFault) -> FaultOutcome {
    let (vma, va) = (vmf.vma, vmf.address);
    if vma.flags.has(VmFlags::UFFD_MISSING) {
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = "uffd_missing");
        return FaultOutcome::Userfault(UffdReason::Missing);
    }
    let slot = vmf.pte_slot();
    let uffd_wp = vmf.orig_pte_uffd_wp();
    let hw = &mut *vmf.hw;
    let prot = vma_prot(vma);
    let entry = if !vmf.flags.contains(FaultFlags::WRITE) && !vma.shared() && matches!(vma.backing, Backing::Anon | Backing::Heap | Backing::Stack) {
        // pte_mkspecial(pfn_pte(my_zero_pfn(addr), vma->vm_page_prot))
        pgtable::mk_pte(hw.pages.zero_page, prot & !_PAGE_RW).with(_PAGE_SPECIAL)
    } else {
        let Some(frame) = hw.pages.alloc_zeroed(&mut hw.mem) else {
            return FaultOutcome::Oom;
        };
        hw.pages.map(frame);
        let mut e = pgtable::mk_pte(frame, prot);
        if vma.writable() {
            e = e.with(_PAGE_RW | _PAGE_DIRTY);
        }
        e
    };
    let entry = if uffd_wp { pte_mkuffd_wp(entry) } else { entry };
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = if entry.has(_PAGE_SPECIAL) { "zero_page" } else { "anon_page" }, pte = format_args!("{:#x}", entry.raw()));
    // The old entry was none: no TLB can hold it.
    pgtable::set_entry(&mut hw.mem, slot, va, entry).not_needed();
    FaultOutcome::Handled
}

/// Linux: do_fault. A none PTE in a VMA backed by an object: a read maps the object's
/// page (`do_read_fault`), a write to a private mapping maps a private copy
/// (`do_cow_fault`), a write to a shared mapping the object's page (`do_shared_fault`).
/// Every such object has a page cache (`Backing::Shmem`: shmem, memfd, tmpfs, host files).
fn do_fault(vmf: &mut VmFault) -> FaultOutcome {
    if !vmf.flags.contains(FaultFlags::WRITE) {
        do_read_fault(vmf)
    } else if !vmf.vma.shared() {
        do_cow_fault(vmf)
    } else {
        do_shared_fault(vmf)
    }
}

/// Linux: __do_fault. The VMA's ->fault: the object's page at `vmf.pgoff`, with a
/// reference the caller keeps for the mapping (or drops, for a COW copy).
fn __do_fault(vmf: &mut VmFault) -> Result<PhysAddr, FaultOutcome> {
    let vma = vmf.vma;
    match &vma.backing {
        Backing::Shmem { obj, .. } => super::shmem::shmem_fault(vmf, obj),
        // No ->fault: VM_FAULT_SIGBUS (do_fault sends no such VMA here).
        _ => Err(FaultOutcome::Bus),
    }
}

/// Pages fault-around maps (Linux: fault_around_bytes, 64 KiB).
const FAULT_AROUND_PAGES: u64 = 16;

/// Linux: do_read_fault. First fault-around maps the neighbours already in the page cache
/// (and the faulting page itself when it is there); the object's ->fault supplies the
/// page otherwise, mapped with the VMA's protection.
fn do_read_fault(vmf: &mut VmFault) -> FaultOutcome {
    // uffd_disable_fault_around: a WP or MINOR monitor must see every page faulted in.
    if !vmf.vma.flags.intersects(VmFlags::UFFD_WP | VmFlags::UFFD_MINOR) && do_fault_around(vmf) {
        return FaultOutcome::Handled;
    }
    match __do_fault(vmf) {
        Ok(page) => finish_fault(vmf, page),
        Err(r) => r,
    }
}

/// Linux: do_fault_around → filemap_map_pages. The window: 16 pages from the aligned
/// 64 KiB boundary below the address, but never before the VMA's start (then it starts
/// there and still spans 16 pages: measured on 6.18), clipped to the VMA, the page table
/// and the end of the file. Every page in it that is in the page cache and up to date, with
/// a none PTE, is mapped (read-only for a private mapping, the VMA's protection for a
/// shared one), clean. Returns whether the faulting address got mapped.
fn do_fault_around(vmf: &mut VmFault) -> bool {
    let Backing::Shmem { obj, .. } = &vmf.vma.backing else {
        return false;
    };
    let vma = vmf.vma;
    let slot = vmf.pte_slot();
    let pte_off = (vmf.address >> 12) & 511;
    let vma_off = (vmf.address - vma.start) >> 12;
    let mut from = (pte_off & !(FAULT_AROUND_PAGES - 1)).max(pte_off - pte_off.min(vma_off));
    let vma_pages = (vma.end - vma.start) >> 12;
    let mut to = (from + FAULT_AROUND_PAGES).min(512).min(pte_off + vma_pages - vma_off);
    // A 2 MiB shmem folio that lies whole in the VMA and this page table is mapped whole
    // (measured on 6.18: one read maps all 512 PTEs where no PMD may map it).
    if let Some(p) = obj.find_page(vmf.pgoff) {
        let hw = &*vmf.hw;
        let head = hw.pages.folio(p);
        let start = vmf.address - ((p.as_u64() - head.as_u64()) & !0xfff);
        if hw.pages.is_huge(head) && start & 0x1f_ffff == 0 && start >= vma.start && start + (2 << 20) <= vma.end {
            (from, to) = (0, 512);
        }
    }
    let eof_pages = obj.inode().size.div_ceil(4096);
    let prot = vma_prot(vma);
    let hw = &mut *vmf.hw;
    let mut mapped_fault = false;
    for idx in from..to {
        let pgoff = vmf.pgoff + idx - pte_off;
        if pgoff >= eof_pages {
            break;
        }
        // A host file's pages are all readable from its contents: the readahead that
        // brings them into Linux's page cache is modelled by reading them in here.
        if obj.inode().source.is_some() && obj.find_page(pgoff).is_none() && obj.get_page(&mut hw.pages, &mut hw.mem, pgoff).is_none() {
            break;
        }
        let Some(page) = obj.inode().mapping.get_uptodate(pgoff) else {
            continue;
        };
        let pte_pa = PhysAddr::new(slot.pa.as_u64() - 8 * pte_off + 8 * idx);
        let pslot = Slot { pa: pte_pa, level: slot.level };
        if !pgtable::pte_none(pgtable::get_entry(&hw.mem, pslot)) {
            continue;
        }
        let va = vmf.address - (pte_off << 12) + (idx << 12);
        hw.pages.get(page);
        hw.pages.map(page);
        // The old entry was none: no TLB holds it.
        pgtable::set_entry(&mut hw.mem, pslot, va, pgtable::mk_pte(page, prot)).not_needed();
        mapped_fault |= idx == pte_off;
    }
    if mapped_fault {
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{:#x}", vmf.address), decision = "fault_around");
    }
    mapped_fault
}

/// Linux: do_shared_fault. A write to a shared mapping maps the object's page writable
/// and dirty: shmem needs no write notification (no page_mkwrite), and the dirty PTE is
/// its dirty accounting.
fn do_shared_fault(vmf: &mut VmFault) -> FaultOutcome {
    match __do_fault(vmf) {
        Ok(page) => finish_fault(vmf, page),
        Err(r) => r,
    }
}

/// Linux: do_cow_fault. A write to a private mapping of an object: the object's page is
/// copied into a new anonymous page, which is mapped writable; the object keeps its own.
fn do_cow_fault(vmf: &mut VmFault) -> FaultOutcome {
    let hw = &mut *vmf.hw;
    let Some(cow_page) = hw.pages.alloc_zeroed(&mut hw.mem) else {
        return FaultOutcome::Oom;
    };
    let page = match __do_fault(vmf) {
        Ok(page) => page,
        Err(r) => {
            vmf.hw.pages.put(cow_page);
            return r;
        }
    };
    vmf.hw.mem.copy_within(page, cow_page, 4096);
    let r = finish_fault(vmf, cow_page);
    // The object's page was only read: drop the reference __do_fault took.
    vmf.hw.pages.put(page);
    r
}

/// Linux: finish_fault → set_pte_range. Maps `page` (the object's, or the private copy
/// of a COW fault) with the VMA's protection — writable when the VMA is shared and
/// writable, shmem needing no write notification; a write also makes it dirty (and
/// writable: maybe_mkwrite). The old entry was none, or a uffd-wp marker, whose
/// protection the new PTE keeps (set_pte_range's uffd_wp).
fn finish_fault(vmf: &mut VmFault, page: PhysAddr) -> FaultOutcome {
    let (vma, va) = (vmf.vma, vmf.address);
    let (write, slot, uffd_wp) = (vmf.flags.contains(FaultFlags::WRITE), vmf.pte_slot(), vmf.orig_pte_uffd_wp());
    let hw = &mut *vmf.hw;
    hw.pages.map(page);
    let mut e = pgtable::mk_pte(page, vma_prot(vma));
    if write {
        e = e.with(_PAGE_DIRTY);
        if vma.writable() {
            e = e.with(_PAGE_RW);
        }
    }
    if uffd_wp {
        e = pte_mkuffd_wp(e);
    }
    let cow = write && !vma.shared();
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = if cow { "cow_page" } else { "shmem_page" }, pte = format_args!("{:#x}", e.raw()));
    pgtable::set_entry(&mut hw.mem, slot, va, e).not_needed();
    FaultOutcome::Handled
}

/// Linux: handle_pte_marker, from `do_swap_page` for a PTE marker (a swap-type entry of
/// type SWP_PTE_MARKER, `mm::swap`). Poison comes first: SIGBUS (Linux: VM_FAULT_HWPOISON;
/// see docs/file-memory.md for the si_code); then a guard marker, SIGSEGV; then uffd-wp
/// (`pte_marker_handle_uffd_wp`). A marker with no known bit is SIGBUS.
pub fn handle_pte_marker(vmf: &mut VmFault) -> FaultOutcome {
    let SoftLeaf::Marker(marker) = softleaf_from_pte(vmf.orig_pte) else {
        unreachable!("handle_pte_marker on a PTE that is not a marker");
    };
    if marker.contains(PteMarker::POISONED) {
        return FaultOutcome::HwPoison;
    }
    if marker.contains(PteMarker::GUARD) {
        return FaultOutcome::Segv;
    }
    if marker.contains(PteMarker::UFFD_WP) {
        return pte_marker_handle_uffd_wp(vmf);
    }
    FaultOutcome::Bus
}

/// Linux: pte_marker_handle_uffd_wp. In a VMA still registered for WP the marker stands for
/// a none PTE that keeps its protection: the fault is the none PTE's (`do_pte_missing`,
/// MISSING first when registered), and what it maps is uffd-wp'd (`orig_pte_uffd_wp`). So
/// a read maps the page protected without a message, and a write completes only after a
/// second fault, the WP one. A marker left behind in a VMA no longer registered is cleared
/// (pte_marker_clear) and the access retried.
fn pte_marker_handle_uffd_wp(vmf: &mut VmFault) -> FaultOutcome {
    if !vmf.vma.flags.has(VmFlags::UFFD_WP) {
        let slot = vmf.pte_slot();
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{:#x}", vmf.address), decision = "marker_clear");
        // Not present before or after: nothing cached.
        pgtable::set_entry(&mut vmf.hw.mem, slot, vmf.address, Entry::new(0)).not_needed();
        return FaultOutcome::Handled;
    }
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{:#x}", vmf.address), decision = "uffd_wp_marker");
    do_pte_missing(vmf)
}

/// Linux: do_wp_page. A write to a present, read-only PTE. uffd-wp comes first
/// (userfaultfd_pte_wp): a write to a PTE carrying `_PAGE_UFFD_WP` in a VM_UFFD_WP VMA
/// goes to the monitor, before any copy-on-write; once the monitor has resolved it (the
/// bit gone, the PTE still read-only if the page is shared), the retried write comes back
/// here and takes the COW path.
///
/// Then: a shared mapping's PTE is made writable again (wp_page_shared: e.g. after
/// mprotect); an anonymous page this process owns is reused — PageAnonExclusive, or
/// (wp_can_reuse_anon_folio) no other reference: after fork, once the other side has
/// copied or exited; anything else is copied (the zero page always is).
///
/// With UFFD_FEATURE_WP_ASYNC the kernel resolves the uffd-wp fault itself: the bit is
/// cleared in place (the PTE stays read-only, so no TLB can hold more than it grants) and
/// the write goes on as any write fault.
pub fn do_wp_page(vmf: &mut VmFault) -> FaultOutcome {
    let (vma, va, mut pte) = (vmf.vma, vmf.address, vmf.orig_pte);
    if vma.flags.has(VmFlags::UFFD_WP) && pte.has(_PAGE_UFFD_WP) {
        if !super::userfaultfd::userfaultfd_wp_async(vma) {
            tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = "uffd_wp", pte = format_args!("{:#x}", pte.raw()));
            return FaultOutcome::Userfault(UffdReason::Wp);
        }
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = "uffd_wp_async", pte = format_args!("{:#x}", pte.raw()));
        pte = pte.without(_PAGE_UFFD_WP);
        // Read-only before and after: the rights a TLB may cache are unchanged.
        let slot = vmf.pte_slot();
        pgtable::set_entry(&mut vmf.hw.mem, slot, va, pte).not_needed();
        vmf.orig_pte = pte;
    }
    if vma.shared() {
        // Linux: wp_page_shared (shmem has no page_mkwrite), whose
        // fault_dirty_shared_page marks the page dirty.
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = "wp_shared");
        let pa = pgtable::pte_pfn(pte);
        if !pte.has(_PAGE_SPECIAL) && vmf.hw.pages.meta(pa).file {
            vmf.hw.pages.mark_dirty(pa);
        }
        return wp_page_reuse(vmf);
    }
    let old = pgtable::pte_pfn(pte);
    let hw = &mut *vmf.hw;
    let zero = hw.pages.is_zero_page(old);
    let m = *hw.pages.meta(old);
    let folio = hw.pages.folio(old);
    let sole = if hw.pages.is_huge(folio) { large_folio_reusable(hw, folio) } else { m.refcount == 1 };
    if !zero && (m.anon_exclusive || sole) {
        // A page reused by the refcount test becomes exclusive again.
        hw.pages.meta_mut(old).anon_exclusive = true;
        let r = wp_page_reuse(vmf);
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = "wp_reuse");
        return r;
    }
    wp_page_copy(vmf, old, zero)
}

/// Linux: wp_can_reuse_anon_folio for a large folio mapped by PTEs: every reference is a
/// mapping and the folio is not mapped shared — no huge PMD maps it any more and no page
/// of it is mapped twice (pagelab has no per-mm folio owner as Linux's folio->_mm_id, so
/// two processes each mapping different pages of one folio would be taken as one).
fn large_folio_reusable(hw: &Hw, head: PhysAddr) -> bool {
    let h = hw.pages.meta(head);
    if h.entire_mapcount != 0 {
        return false;
    }
    let mut maps = 0u64;
    for i in 0..512 {
        let c = hw.pages.meta(PhysAddr::new(head.as_u64() + (i << 12))).mapcount;
        if c > 1 {
            return false;
        }
        maps += c as u64;
    }
    maps == h.refcount as u64
}

/// Linux: wp_page_reuse. The PTE becomes writable, dirty and young in place; the old,
/// read-only entry may be cached, so every vCPU running the mm flushes it.
fn wp_page_reuse(vmf: &mut VmFault) -> FaultOutcome {
    let slot = vmf.pte_slot();
    let hw = &mut *vmf.hw;
    let f = pgtable::set_entry(&mut hw.mem, slot, vmf.address, vmf.orig_pte.with(_PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED));
    hw.flush(f, vmf.pml4.as_u64());
    FaultOutcome::Handled
}

/// Linux: wp_page_copy. A new page with the contents of `old` (zeroed when `old` is the
/// zero page), mapped writable and dirty in place of the read-only PTE, which is flushed
/// everywhere the mm runs before `old` loses this mapping.
fn wp_page_copy(vmf: &mut VmFault, old: PhysAddr, zero: bool) -> FaultOutcome {
    let (vma, va, slot) = (vmf.vma, vmf.address, vmf.pte_slot());
    let hw = &mut *vmf.hw;
    let Some(new) = hw.pages.alloc_zeroed(&mut hw.mem) else {
        return FaultOutcome::Oom;
    };
    if !zero {
        hw.mem.copy_within(old, new, 4096);
    }
    hw.pages.map(new);
    let entry = pgtable::mk_pte(new, vma_prot(vma)).with(_PAGE_RW | _PAGE_DIRTY);
    let f = pgtable::set_entry(&mut hw.mem, slot, va, entry);
    hw.flush(f, vmf.pml4.as_u64());
    if !zero {
        hw.pages.unmap(old);
    }
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = if zero { "wp_copy_zero" } else { "wp_copy" }, pte = format_args!("{:#x}", entry.raw()));
    FaultOutcome::Handled
}
