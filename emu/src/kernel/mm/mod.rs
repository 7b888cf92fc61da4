//! Memory management: address spaces (`Mm`), VMAs, page tables in the hardware format,
//! the page-fault path and the mapping syscalls — split the way Linux splits mm/.
//!
//! | here          | Linux                                   |
//! |---------------|-----------------------------------------|
//! | `page`        | struct page/folio refcounts, zero page  |
//! | `vma`         | include/linux/mm_types.h vm_area_struct |
//! | `filemap`     | mm/filemap.c: the page cache (address_space) |
//! | `shmem`       | mm/shmem.c: shmem inodes (MAP_SHARED anonymous, memfd, tmpfs) |
//! | `fork`        | dup_mmap, copy_page_range               |
//! | `pgtable`     | arch/x86 pgtable helpers, pte_offset    |
//! | `pagewalk`    | mm/pagewalk.c walk_page_range           |
//! | `mmu_gather`  | mm/mmu_gather.c: flush, then free       |
//! | `memory`      | mm/memory.c (handle_mm_fault ...)       |
//! | `mmap`        | mm/mmap.c, mm/mremap.c, mm/madvise.c    |
//! | `mprotect`    | mm/mprotect.c                           |
//! | `userfaultfd` | mm/userfaultfd.c (fill, write-protect)  |
//! | `swap`        | mm/swapfile.c, do_swap_page, pageout    |
//! | `swapops`     | swapops.h / leafops.h: what an entry is |
//! | `huge_memory` | mm/huge_memory.c: anonymous THP, file PMDs |
//! | `khugepaged`  | mm/khugepaged.c: MADV_COLLAPSE of shmem  |
//! | `hugetlb`     | mm/hugetlb.c, fs/hugetlbfs: pools, faults |
//!
//! Invariant: page-table entries are only changed through `pgtable`, which returns a
//! `#[must_use]` [`mmu::Flush`] for every change that may leave a stale TLB entry.
//!
//! Three mechanisms do each job once (docs/mm-walk.md): `swapops::softleaf_from_pte` says
//! what an entry is, and every site acting on the kind matches its `SoftLeaf` without a
//! `_` arm; `pagewalk::walk_page_range` is the only loop over the entries of a range (zap,
//! change_protection, fork's copy, pageout, mremap, smaps, pagemap are its callers); an
//! `mmu_gather::MmuGather` owns the flushes and the freed pages of an operation and
//! flushes every vCPU before any page is freed.

pub mod filemap;
pub mod fork;
pub mod gup;
pub mod huge_memory;
pub mod khugepaged;
pub mod hugetlb;
pub mod memory;
pub mod mincore;
pub mod mmap;
pub mod mmu_gather;
pub mod mprotect;
pub mod page;
pub mod pagewalk;
pub mod pgtable;
pub mod shmem;
pub mod swap;
pub mod swapops;
pub mod userfaultfd;
pub mod vma;

pub use page::Pages;
pub use vma::{UserfaultfdCtx, Vma, VmFlags, VmUserfaultfdCtx};

use mmu::PhysAddr;
use std::collections::BTreeMap;

/// Index of an address space in the kernel's table.
pub type MmId = usize;

/// Top of the user address space (TASK_SIZE_MAX on x86-64 with 4-level paging).
pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;
/// Where the initial stack ends (no ASLR: runs must be deterministic).
pub const STACK_TOP: u64 = TASK_SIZE;
/// Stack rlimit (8 MiB, Linux's default); the stack VMA grows down to this size.
pub const STACK_LIMIT: u64 = 8 << 20;
/// Top of the mmap area: below the stack and its guard gap.
pub const MMAP_BASE: u64 = STACK_TOP - STACK_LIMIT - (128 << 20);
/// mmap_min_addr.
pub const MMAP_MIN_ADDR: u64 = 0x1000;

/// One address space (Linux's `struct mm_struct`).
pub struct Mm {
    /// Physical address of the PML4 (what CR3 holds).
    pub pml4: PhysAddr,
    /// VMAs keyed by start address; they never overlap.
    pub vmas: BTreeMap<u64, Vma>,
    pub start_brk: u64,
    pub brk: u64,
    /// Threads using this mm.
    pub users: u32,
    /// Where argv/envp strings live, for /proc.
    pub arg_start: u64,
    pub arg_end: u64,
    pub exe: std::path::PathBuf,
    /// Page-table frames, so the mm can free them on exit.
    pub table_frames: Vec<PhysAddr>,
    /// prctl(PR_SET_THP_DISABLE) (Linux: MMF_DISABLE_THP_COMPLETELY and
    /// MMF_DISABLE_THP_EXCEPT_ADVISED): 0, or what PR_GET_THP_DISABLE returns — 1 (no THP
    /// at all), 3 (THP only in MADV_HUGEPAGE VMAs). Inherited across fork.
    pub thp_disable: u8,
    /// Linux: mm->def_flags, the VM_LOCKED (and VM_LOCKONFAULT) of mlockall(MCL_FUTURE)
    /// that every new mapping gets. Not inherited across fork.
    pub def_flags: super::mm::vma::VmFlags,
    /// The last anon_vma identity handed out (`new_anon_vma`).
    pub anon_vma_seq: u64,
}

impl Mm {
    /// The VMA containing `va`.
    pub fn find_vma(&self, va: u64) -> Option<&Vma> {
        self.vmas.range(..=va).next_back().map(|(_, v)| v).filter(|v| va < v.end)
    }
    pub fn find_vma_mut(&mut self, va: u64) -> Option<&mut Vma> {
        self.vmas.range_mut(..=va).next_back().map(|(_, v)| v).filter(|v| va < v.end)
    }
    /// VMAs intersecting [start, end), in address order (starts).
    pub fn vmas_in(&self, start: u64, end: u64) -> Vec<u64> {
        let mut out = Vec::new();
        if let Some((&s, v)) = self.vmas.range(..start).next_back() {
            if v.end > start {
                out.push(s);
            }
        }
        out.extend(self.vmas.range(start..end).map(|(&s, _)| s));
        out
    }
    /// True if VMAs cover every page of [start, end) without a hole (the check behind the
    /// ENOMEM of madvise, mprotect and msync).
    pub fn range_is_mapped(&self, start: u64, end: u64) -> bool {
        let mut cur = start;
        for k in self.vmas_in(start, end) {
            let v = &self.vmas[&k];
            if v.start > cur {
                return false;
            }
            cur = v.end;
        }
        cur >= end
    }
    /// Whether a VMA may be split at `addr` (Linux: __split_vma's vm_ops->may_split): a
    /// hugetlb VMA only at a huge-page boundary (else EINVAL).
    pub fn may_split(&self, addr: u64) -> bool {
        match self.find_vma(addr) {
            Some(v) if v.start != addr && v.is_hugetlb() => addr.is_multiple_of(v.page_size()),
            _ => true,
        }
    }
    /// Splits VMAs so that `addr` is a boundary (if it lies inside one).
    /// Splits the VMA containing `addr` there as Linux's __split_vma does: a huge PMD that
    /// maps across the new boundary is split first (vma_adjust_trans_huge: an anonymous
    /// THP into PTEs, the huge zero page into zero PTEs, a file THP's PMD zapped).
    /// `split_at` is the VMA half alone, for callers that rewrite the entries anyway.
    pub fn split_vma(&mut self, hw: &mut crate::kernel::hw::Hw, addr: u64) {
        huge_memory::split_huge_pmd_at_boundary(self, hw, addr);
        self.split_at(addr);
    }

    pub fn split_at(&mut self, addr: u64) {
        let key = match self.vmas.range(..addr).next_back() {
            Some((&s, v)) if v.end > addr => s,
            _ => return,
        };
        let v = self.vmas.get_mut(&key).unwrap();
        let mut hi = v.clone();
        v.end = addr;
        hi.start = addr;
        hi.pgoff += (addr - key) >> 12;
        if let vma::Backing::Shmem { offset, .. } = &mut hi.backing {
            *offset += addr - key;
        }
        self.vmas.insert(addr, hi);
    }

    /// A new anon_vma, never seen before in this mm.
    pub fn new_anon_vma(&mut self, forked: bool) -> vma::AnonVma {
        self.anon_vma_seq += 1;
        vma::AnonVma { id: self.anon_vma_seq, forked }
    }
    /// Linux: mm/rmap.c __anon_vma_prepare for the VMA starting at `start`: it now has
    /// anonymous pages (see `Vma::anon_vma`). find_mergeable_anon_vma: it takes the next
    /// VMA's anon_vma, else the previous one's, where that neighbour is
    /// `anon_vma_compatible` and its anon_vma has no parents (reusable_anon_vma); else a
    /// new one.
    pub fn anon_vma_prepare(&mut self, start: u64) {
        let Some(v) = self.vmas.get(&start) else { return };
        if v.anon_vma.is_some() {
            return;
        }
        let reusable = |n: &Vma| n.anon_vma.filter(|a| !a.forked);
        let next = self.vmas.get(&v.end).filter(|n| v.anon_vma_compatible(n)).and_then(reusable);
        let prev = || self.vmas.range(..start).next_back().map(|(_, p)| p).filter(|p| p.anon_vma_compatible(v)).and_then(reusable);
        let a = match next.or_else(prev) {
            Some(a) => a,
            None => self.new_anon_vma(false),
        };
        self.vmas.get_mut(&start).unwrap().anon_vma = Some(a);
    }
    /// Gives a private VMA found by `find_vma_mut` its anon_vma (Linux: vma_anon_prepare).
    pub fn anon_vma_prepare_at(&mut self, addr: u64) {
        if let Some(s) = self.find_vma(addr).map(|v| v.start) {
            self.anon_vma_prepare(s);
        }
    }

    /// Merges adjacent compatible VMAs around [start, end) (Linux: vma_merge).
    pub fn merge_around(&mut self, start: u64, end: u64) {
        let keys = self.vmas_in(start.saturating_sub(1), end.saturating_add(1));
        let mut prev: Option<u64> = None;
        for k in keys {
            if let Some(p) = prev {
                let (pe, can) = {
                    let a = &self.vmas[&p];
                    let b = &self.vmas[&k];
                    (a.end, a.end == b.start && a.can_merge(b))
                };
                if can && pe == k {
                    let b = self.vmas.remove(&k).unwrap();
                    let a = self.vmas.get_mut(&p).unwrap();
                    a.end = b.end;
                    a.flags |= b.flags & VmFlags::STICKY;
                    // is_mergeable_anon_vma: the merged VMA keeps the one anon_vma (Linux:
                    // dup_anon_vma when only the removed VMA had it).
                    a.anon_vma = a.anon_vma.or(b.anon_vma);
                    continue;
                }
            }
            prev = Some(k);
        }
    }
}
