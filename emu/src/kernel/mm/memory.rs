//! The page-fault path below the arch entry (Linux: mm/memory.c handle_mm_fault →
//! handle_pte_fault → do_anonymous_page / do_wp_page, with lock_mm_and_find_vma and
//! expand_stack). The x86 entry that finds the VMA, checks the access and turns the
//! outcome into a signal or a userfaultfd message is `kernel::arch::fault`; kernel-mode
//! faults on user memory come from `kernel::uaccess`.

use super::pgtable::{self, linux::*};
use super::vma::{Backing, Vma, VmFlags};
use super::{Mm, STACK_LIMIT};
use crate::kernel::hw::Hw;
use mmu::Entry;

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
    pub fn vm_flag(self) -> u64 {
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
    /// VM_FAULT_SIGBUS (BUS_ADRERR): e.g. a PTE marker, or a file mapping beyond end of file.
    Bus,
    /// Guest memory exhausted (VM_FAULT_OOM).
    Oom,
    /// The fault needs the VMA's userfaultfd (Linux: handle_userfault, then
    /// VM_FAULT_RETRY): nothing was changed, and the caller — the arch entry for a user
    /// fault, the syscall entry for a kernel-mode one — hands the fault to `kernel::uffd`,
    /// which mm never calls.
    Userfault(UffdReason),
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

/// Linux: handle_mm_fault for `va` in `vma`, whose access the caller has checked
/// (access_error for a user fault, uaccess for a kernel-mode one).
pub fn handle_mm_fault(mm: &mut Mm, hw: &mut Hw, vma: &Vma, va: u64, flags: FaultFlags) -> FaultOutcome {
    let Some(slot) = pgtable::walk_alloc(&mut hw.mem, &mut hw.pages, &mut mm.table_frames, mm.pml4, va) else {
        return FaultOutcome::Oom;
    };
    let page_va = va & !0xfff;
    let pte = pgtable::get_entry(&hw.mem, slot);
    if pgtable::pte_none(pte) {
        if vma.flags.has(VmFlags::UFFD_MISSING) && vma.is_anonymous() {
            // do_anonymous_page: userfaultfd_missing(vma) → handle_userfault(VM_UFFD_MISSING),
            // for reads (before the zero page) and writes alike.
            tracing::trace!(target: "pagelab::fault", addr = format_args!("{page_va:#x}"), decision = "uffd_missing");
            return FaultOutcome::Userfault(UffdReason::Missing);
        }
        if let Backing::Shmem { obj, .. } = &vma.backing {
            return shmem_fault(hw, vma, obj, slot, page_va, flags);
        }
        return do_anonymous_page(hw, vma, slot, page_va, flags);
    }
    if super::swap::is_swap_pte(pte) {
        // Swap entries (mm::swap); PTE markers arrive with a later issue (SIGBUS there).
        return super::swap::do_swap_page(hw, vma, slot, page_va, pte, flags.contains(FaultFlags::WRITE));
    }
    if !pte.is_present() {
        return FaultOutcome::Bus;
    }
    if flags.contains(FaultFlags::WRITE) && !pte.is_writable() {
        return do_wp_page(mm, hw, vma, slot, page_va, pte);
    }
    // Spurious: the TLB held a stricter, stale entry (Linux: flush_tlb_fix_spurious_fault).
    hw.vcpus[hw.cur].tlb.flush_range(page_va, page_va + 4096);
    FaultOutcome::Handled
}

fn vma_prot(vma: &super::Vma) -> u64 {
    pgtable::vm_page_prot(vma.readable(), vma.writable(), vma.executable(), vma.shared())
}

/// Linux: do_anonymous_page. A read maps the shared zero page (private anonymous memory
/// only); a write allocates a zeroed frame mapped writable and dirty.
fn do_anonymous_page(hw: &mut Hw, vma: &super::Vma, slot: pgtable::Slot, va: u64, flags: FaultFlags) -> FaultOutcome {
    let prot = vma_prot(vma);
    let entry = if !flags.contains(FaultFlags::WRITE) && !vma.shared() && matches!(vma.backing, Backing::Anon | Backing::Heap | Backing::Stack) {
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
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = if entry.has(_PAGE_SPECIAL) { "zero_page" } else { "anon_page" }, pte = format_args!("{:#x}", entry.raw()));
    // The old entry was none: no TLB can hold it.
    pgtable::set_entry(&mut hw.mem, slot, va, entry).not_needed();
    FaultOutcome::Handled
}

/// Linux: shmem_fault + finish_fault for a MAP_SHARED anonymous VMA: the object's page at
/// this offset (allocated on first touch, reads included), mapped with the VMA's
/// protection — writable when the VMA is, since shmem needs no write notification — and
/// dirty on a write.
fn shmem_fault(hw: &mut Hw, vma: &super::Vma, obj: &super::shmem::Shmem, slot: pgtable::Slot, va: u64, flags: FaultFlags) -> FaultOutcome {
    let pgoff = vma.object_offset(va) >> 12;
    let Some(frame) = obj.get_page(&mut hw.pages, &mut hw.mem, pgoff) else {
        return FaultOutcome::Oom;
    };
    hw.pages.get(frame);
    hw.pages.map(frame);
    let mut e = pgtable::mk_pte(frame, vma_prot(vma));
    if flags.contains(FaultFlags::WRITE) {
        e = e.with(_PAGE_DIRTY);
    }
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = "shmem_page", pte = format_args!("{:#x}", e.raw()));
    // The old entry was none.
    pgtable::set_entry(&mut hw.mem, slot, va, e).not_needed();
    FaultOutcome::Handled
}

/// Linux: do_wp_page. Reuse an anonymous page this process owns — PageAnonExclusive, or
/// (wp_can_reuse_anon_folio) no other reference: after fork, once the other side has
/// copied or exited — otherwise copy it (the zero page is always copied).
///
/// uffd-wp comes first (userfaultfd_pte_wp): a write to a PTE carrying `_PAGE_UFFD_WP` in
/// a VM_UFFD_WP VMA goes to the monitor, before any copy-on-write; once the monitor has
/// resolved it (the bit gone, the PTE still read-only if the page is shared), the retried
/// write comes back here and takes the COW path.
pub fn do_wp_page(mm: &mut Mm, hw: &mut Hw, vma: &super::Vma, slot: pgtable::Slot, va: u64, pte: Entry) -> FaultOutcome {
    if vma.flags.has(VmFlags::UFFD_WP) && pte.has(_PAGE_UFFD_WP) {
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = "uffd_wp", pte = format_args!("{:#x}", pte.raw()));
        return FaultOutcome::Userfault(UffdReason::Wp);
    }
    let old = pgtable::pte_pfn(pte);
    let cr3 = mm.pml4.as_u64();
    if vma.shared() {
        // A shared writable mapping whose PTE lost RW (e.g. after mprotect): make it writable.
        let f = pgtable::set_entry(&mut hw.mem, slot, va, pte.with(_PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED));
        hw.flush(f, cr3);
        return FaultOutcome::Handled;
    }
    let zero = hw.pages.is_zero_page(old);
    let m = *hw.pages.meta(old);
    if !zero && (m.anon_exclusive || m.refcount == 1) {
        // wp_page_reuse; a page reused by the refcount test becomes exclusive again.
        hw.pages.meta_mut(old).anon_exclusive = true;
        let f = pgtable::set_entry(&mut hw.mem, slot, va, pte.with(_PAGE_RW | _PAGE_DIRTY | _PAGE_ACCESSED));
        hw.flush(f, cr3);
        tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = "wp_reuse");
        return FaultOutcome::Handled;
    }
    // wp_page_copy
    let Some(new) = hw.pages.alloc_zeroed(&mut hw.mem) else {
        return FaultOutcome::Oom;
    };
    if !zero {
        hw.mem.copy_within(old, new, 4096);
    }
    hw.pages.map(new);
    let entry = pgtable::mk_pte(new, vma_prot(vma)).with(_PAGE_RW | _PAGE_DIRTY);
    let f = pgtable::set_entry(&mut hw.mem, slot, va, entry);
    hw.flush(f, cr3);
    if !zero {
        hw.pages.unmap(old);
    }
    tracing::trace!(target: "pagelab::fault", addr = format_args!("{va:#x}"), decision = if zero { "wp_copy_zero" } else { "wp_copy" }, pte = format_args!("{:#x}", entry.raw()));
    FaultOutcome::Handled
}
