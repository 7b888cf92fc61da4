//! The hardware the kernel drives: guest physical memory, the page allocator, the decoded
//! code cache and the vCPUs (whose TLBs the kernel must flush).

use super::mm::Pages;
use crate::cpu::{DecodeCache, Vcpu};
use mmu::{Flush, PhysMem};

pub struct Hw {
    pub mem: PhysMem,
    pub pages: Pages,
    pub code: DecodeCache,
    pub vcpus: Vec<Vcpu>,
    /// The vCPU whose exit the kernel is handling.
    pub cur: usize,
    /// TLB invalidations sent to vCPUs other than the current one (modelled IPIs).
    pub shootdowns: u64,
    /// The address space each vCPU last loaded (lazy TLB: kept while the vCPU idles).
    pub vcpu_mm: Vec<Option<super::mm::MmId>>,
    /// The swap device (`Config::swap_bytes`; see `mm::swap`).
    pub swap: super::mm::swap::SwapDevice,
    /// A kernel-mode access of the running syscall that needs userfaultfd (set by
    /// uaccess, consumed by the syscall entry: `uffd::kernel_fault`).
    pub uffd_kfault: Option<super::mm::memory::KernelFault>,
    /// Faults the running syscall's user-memory accesses handled (uaccess), for the
    /// syscall entry to count as the caller's minor faults (Linux: mm_account_fault
    /// counts a GUP fault to current).
    pub uaccess_faults: u64,
    /// The THP policy (`--thp`; /sys/kernel/mm/transparent_hugepage/enabled).
    pub thp: super::mm::huge_memory::ThpMode,
}

impl Hw {
    /// The vCPUs that exist, as a mask, bit i = vCPU i (Linux: cpu_active_mask).
    pub fn online_mask(&self) -> u64 {
        u64::MAX >> (64 - self.vcpus.len().clamp(1, 64))
    }

    pub fn new(mem_bytes: u64, nvcpus: usize) -> Self {
        let mut mem = PhysMem::new(mem_bytes);
        let pages = Pages::new(&mut mem);
        let vcpus = (0..nvcpus).map(|_| Vcpu::new(crate::cpu::CpuState::new_user(0))).collect();
        Self { mem, pages, code: DecodeCache::new(), vcpus, cur: 0, shootdowns: 0, vcpu_mm: vec![None; nvcpus], swap: super::mm::swap::SwapDevice::new(super::mm::swap::DEFAULT_SWAP_BYTES), uffd_kfault: None, uaccess_faults: 0, thp: Default::default() }
    }

    /// Applies a pending invalidation to every vCPU running `cr3` (the current vCPU, plus a
    /// shootdown to each other vCPU using the same address space).
    pub fn flush(&mut self, f: Flush, cr3: u64) {
        for (i, v) in self.vcpus.iter_mut().enumerate() {
            if i == self.cur || v.state.ctl.cr3 == cr3 {
                f.apply(&mut v.tlb);
                if i != self.cur {
                    self.shootdowns += 1;
                }
            }
        }
    }

    pub fn vcpu(&mut self) -> &mut Vcpu {
        &mut self.vcpus[self.cur]
    }
}
