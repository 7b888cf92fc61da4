//! Memory statistics and knobs as a program reads them, generated from pagelab's own
//! state (never the host's): /proc/meminfo (Linux: fs/proc/meminfo.c), /proc/sys/vm/
//! stat_refresh (Linux: mm/vmstat.c) and the transparent-hugepage files under
//! /sys/kernel/mm/transparent_hugepage (Linux: mm/huge_memory.c). `procfs` resolves the
//! paths ([`super::procfs::GLOBAL_FILES`]) and calls the generators here.
//!
//! /proc/meminfo has the lines of the reference kernel (Linux 6.18, x86-64, with THP,
//! hugetlb, zswap and the memory balloon configured; without CMA, memory failure or
//! unaccepted memory), in its order and format. What each counts under pagelab:
//!
//! | line | pagelab |
//! |---|---|
//! | MemTotal, MemFree | the frame allocator's frames (guest memory less frame 0), free frames |
//! | MemAvailable | MemFree plus the page cache of host files (re-readable); pagelab has no watermarks or reserves |
//! | Cached | every page-cache page: shmem (MAP_SHARED anonymous, memfd, tmpfs) and host files |
//! | Shmem | the pages of shmem page caches |
//! | AnonPages, Mapped | anonymous and page-cache pages mapped by at least one PTE |
//! | Inactive(anon), Inactive(file) | the anonymous + shmem pages, the other page-cache pages; pagelab has no LRU and never ages a page, so every page is inactive and Active is 0 (an approximation) |
//! | Unevictable, Mlocked | the pages mapped in VM_LOCKED VMAs (MAP_LOCKED), each once; they leave the inactive lists |
//! | SwapTotal, SwapFree | the swap device's usable slots, those not in use (`--swap`) |
//! | PageTables | the page-table frames of every address space, PML4s included |
//! | CommitLimit | half of MemTotal plus SwapTotal (overcommit_ratio 50) |
//! | Committed_AS | the private writable mappings of every address space (those Linux accounts at mmap) plus the shmem pages (an approximation: Linux charges a MAP_SHARED anonymous mapping's whole size at mmap) |
//! | VmallocTotal | x86-64's 4-level vmalloc area, a constant |
//! | DirectMap4k/2M/1G | a split of guest memory as a kernel's direct map would use (the first 2 MiB in 4 KiB pages, 2 MiB pages up to the first 1 GiB boundary, 1 GiB pages then) — pagelab's kernel has no direct map |
//!
//! Every other line is 0: pagelab has no block devices (Buffers), no swap cache, no dirty
//! or writeback accounting of disk files (Dirty, Writeback: tmpfs pages are never counted
//! there, on Linux either), no zswap, no THP or hugetlb pages, and its kernel keeps slab,
//! kernel stacks, per-CPU and vmalloc memory outside guest memory. The values are exact at
//! every read (Linux folds per-CPU deltas into these counters about once a second, which
//! /proc/sys/vm/stat_refresh forces; here that write does nothing).

use super::errno::{Errno, KResult};
use super::mm::hugetlb::HugeSize;
use super::mm::pagewalk::{walk_page_range, MmWalkOps};
use super::mm::pgtable::Slot;
use super::mm::swapops::{softleaf_from_pte, SoftLeaf};
use super::procfs::Target;
use super::syscall::Sys;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::ops::ControlFlow;

/// What a page mapped in a VM_LOCKED VMA is, for the unevictable split.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LockedKind {
    /// Anonymous or shmem (Linux's anon LRU: swap-backed).
    SwapBacked,
    /// A host file's page-cache page.
    File,
}

/// Collects the frames present in VM_LOCKED VMAs.
struct LockedWalk<'a> {
    hw: &'a super::hw::Hw,
    shmem: bool,
    pages: BTreeMap<u64, LockedKind>,
}

impl MmWalkOps for LockedWalk<'_> {
    type Break = Infallible;

    fn mem(&self) -> &mmu::PhysMem {
        &self.hw.mem
    }

    fn pte_entry(&mut self, pte: mmu::Entry, _slot: Slot, _addr: u64) -> ControlFlow<Infallible> {
        use super::mm::pgtable::{self, linux::_PAGE_SPECIAL};
        if matches!(softleaf_from_pte(pte), SoftLeaf::Present | SoftLeaf::ProtNone) && !pte.has(_PAGE_SPECIAL) {
            let pa = pgtable::pte_pfn(pte);
            if !self.hw.pages.is_zero_page(pa) {
                let file = self.hw.pages.meta(pa).file;
                let kind = if file && !self.shmem { LockedKind::File } else { LockedKind::SwapBacked };
                self.pages.insert(pa.frame(), kind);
            }
        }
        ControlFlow::Continue(())
    }
}

/// The kB figures of /proc/meminfo, before formatting.
struct MemInfo {
    total: u64,
    free: u64,
    available: u64,
    cached: u64,
    inactive_anon: u64,
    inactive_file: u64,
    unevictable: u64,
    swap_total: u64,
    swap_free: u64,
    anon_pages: u64,
    anon_huge: u64,
    shmem_thps: u64,
    shmem_pmdmapped: u64,
    mapped: u64,
    shmem: u64,
    page_tables: u64,
    commit_limit: u64,
    committed_as: u64,
    direct_map: [u64; 3],
}

/// Gathers the figures (Linux: meminfo_proc_show's si_meminfo, si_swapinfo,
/// global_node_page_state reads). Deferred page frees are done first, so MemFree counts
/// every page nothing holds any more, as Linux's immediate frees would.
fn gather(s: &mut Sys) -> MemInfo {
    use super::mm::VmFlags;
    s.hw.pages.drain_deferred();
    let hw = &*s.hw;
    let st = &hw.pages.stat;
    let (total, free) = (hw.pages.alloc.total_frames(), hw.pages.alloc.free_frames());
    let (file_pages, shmem, anon, mapped) = (st.file_pages.get(), st.shmem.get(), st.anon_mapped.get(), st.file_mapped.get());
    let mut locked: BTreeMap<u64, LockedKind> = BTreeMap::new();
    let (mut page_tables, mut committed) = (0u64, 0u64);
    for mm in s.k.mms.iter().flatten() {
        page_tables += mm.table_frames.len() as u64;
        for v in mm.vmas.values() {
            let f = v.flags;
            if f.has(VmFlags::ACCOUNT) {
                committed += v.len() >> 12;
            }
            if f.has(VmFlags::LOCKED) {
                let mut w = LockedWalk { hw, shmem: v.is_shmem(), pages: std::mem::take(&mut locked) };
                let ControlFlow::Continue(()) = walk_page_range(mm.pml4, v.start, v.end, &mut w);
                locked = w.pages;
            }
        }
    }
    let unev_file = locked.values().filter(|k| **k == LockedKind::File).count() as u64;
    let unev_anon = locked.len() as u64 - unev_file;
    let file_lru = file_pages.saturating_sub(shmem).saturating_sub(unev_file);
    let swap_total = hw.swap.pages();
    let swap_free = swap_total - hw.swap.inuse().min(swap_total);
    let kb = |pages: u64| pages << 2;
    MemInfo {
        total: kb(total),
        free: kb(free),
        available: kb(free + file_pages.saturating_sub(shmem)),
        cached: kb(file_pages),
        inactive_anon: kb((anon + shmem).saturating_sub(unev_anon)),
        inactive_file: kb(file_lru),
        unevictable: kb(locked.len() as u64),
        swap_total: kb(swap_total),
        swap_free: kb(swap_free),
        anon_pages: kb(anon),
        anon_huge: kb(st.anon_thps.get()),
        shmem_thps: kb(st.shmem_thps.get()),
        shmem_pmdmapped: kb(st.shmem_pmdmapped.get()),
        mapped: kb(mapped),
        shmem: kb(shmem),
        page_tables: kb(page_tables),
        commit_limit: kb(total * 50 / 100 + swap_total),
        committed_as: kb(committed + shmem),
        direct_map: direct_map(hw.mem.size()),
    }
}

/// A plausible direct-map split of `bytes` of memory, in kB (4 KiB, 2 MiB, 1 GiB pages):
/// the first 2 MiB in 4 KiB pages, then 2 MiB pages up to the first 1 GiB boundary, then
/// 1 GiB pages, the tail in 2 MiB and 4 KiB pages.
fn direct_map(bytes: u64) -> [u64; 3] {
    const M2: u64 = 2 << 20;
    const G1: u64 = 1 << 30;
    let first = bytes.min(M2);
    let to_1g = bytes.min(G1) - first;
    let big = (bytes - first - to_1g) / G1 * G1;
    let rest = bytes - first - to_1g - big;
    let rest_2m = rest / M2 * M2;
    let k4 = first + (to_1g - to_1g / M2 * M2) + (rest - rest_2m);
    [k4 >> 10, (to_1g / M2 * M2 + rest_2m) >> 10, big >> 10]
}

/// One "Name:   value kB" line (Linux: show_val_kb: the name padded to 16 columns, the
/// value right-aligned in 8).
fn kb_line(o: &mut String, name: &str, kb: u64) {
    let _ = writeln!(o, "{:<16}{kb:>8} kB", format!("{name}:"));
}

/// /proc/meminfo (Linux: meminfo_proc_show, with hugetlb_report_meminfo and x86's
/// arch_report_meminfo): see the module documentation for what each line counts.
pub fn meminfo_proc_show(s: &mut Sys, _t: Target) -> Vec<u8> {
    let m = gather(s);
    let mut o = String::new();
    let lines: [(&str, u64); 45] = [
        ("MemTotal", m.total),
        ("MemFree", m.free),
        ("MemAvailable", m.available),
        ("Buffers", 0),
        ("Cached", m.cached),
        ("SwapCached", 0),
        ("Active", 0),
        ("Inactive", m.inactive_anon + m.inactive_file),
        ("Active(anon)", 0),
        ("Inactive(anon)", m.inactive_anon),
        ("Active(file)", 0),
        ("Inactive(file)", m.inactive_file),
        ("Unevictable", m.unevictable),
        ("Mlocked", m.unevictable),
        ("SwapTotal", m.swap_total),
        ("SwapFree", m.swap_free),
        ("Zswap", 0),
        ("Zswapped", 0),
        ("Dirty", 0),
        ("Writeback", 0),
        ("AnonPages", m.anon_pages),
        ("Mapped", m.mapped),
        ("Shmem", m.shmem),
        ("KReclaimable", 0),
        ("Slab", 0),
        ("SReclaimable", 0),
        ("SUnreclaim", 0),
        ("KernelStack", 0),
        ("PageTables", m.page_tables),
        ("SecPageTables", 0),
        ("NFS_Unstable", 0),
        ("Bounce", 0),
        ("WritebackTmp", 0),
        ("CommitLimit", m.commit_limit),
        ("Committed_AS", m.committed_as),
        // (VMALLOC_END - VMALLOC_START) of x86-64 with 4-level paging, in kB.
        ("VmallocTotal", 34_359_738_367),
        ("VmallocUsed", 0),
        ("VmallocChunk", 0),
        ("Percpu", 0),
        ("AnonHugePages", m.anon_huge),
        ("ShmemHugePages", m.shmem_thps),
        ("ShmemPmdMapped", m.shmem_pmdmapped),
        ("FileHugePages", 0),
        ("FilePmdMapped", 0),
        ("Balloon", 0),
    ];
    for (name, v) in lines {
        kb_line(&mut o, name, v);
    }
    // hugetlb_report_meminfo: counts without a unit, the name in 16 columns, three spaces,
    // the count in 5.
    // The default size's pool (2 MiB), and Hugetlb: every pool's pages in kB.
    let (vals, hugetlb_kb) = {
        let p = s.hw.pages.hugetlb.borrow();
        let h = p.h(HugeSize::M2);
        let total: u64 = HugeSize::ALL.iter().map(|&z| p.h(z).nr * z.kb()).sum();
        ([h.nr, h.free_count(), h.resv, h.surplus], total)
    };
    for (name, v) in ["HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"].into_iter().zip(vals) {
        let _ = writeln!(o, "{:<16}   {:>5}", format!("{name}:"), v);
    }
    kb_line(&mut o, "Hugepagesize", 2048);
    kb_line(&mut o, "Hugetlb", hugetlb_kb);
    for (name, v) in ["DirectMap4k", "DirectMap2M", "DirectMap1G"].into_iter().zip(m.direct_map) {
        kb_line(&mut o, name, v);
    }
    o.into_bytes()
}

/// /proc/sys/vm/stat_refresh reads: nothing (Linux: the file is for writing).
pub fn stat_refresh_read(_s: &mut Sys, _t: Target, _pos: u64, _len: usize) -> KResult<Vec<u8>> {
    Ok(Vec::new())
}

/// /proc/sys/vm/stat_refresh writes (Linux: vmstat_refresh folds every CPU's deltas into
/// the global counters): pagelab's counters are always exact, so the write only succeeds.
pub fn stat_refresh_write(_s: &mut Sys, _t: Target, _pos: u64, data: &[u8]) -> KResult<usize> {
    Ok(data.len())
}


/// A policy file: every choice, the one in effect in brackets (Linux: the sysfs show
/// functions of mm/huge_memory.c).
fn choices(all: &[&str], on: &str) -> Vec<u8> {
    let words: Vec<String> = all.iter().map(|w| if *w == on { format!("[{w}]") } else { w.to_string() }).collect();
    format!("{}\n", words.join(" ")).into_bytes()
}

/// /sys/kernel/mm/transparent_hugepage/enabled (Linux: enabled_show).
/// The policy is `--thp`'s (madvise by default, as on the reference host).
pub fn thp_enabled_show(s: &mut Sys, _t: Target) -> Vec<u8> {
    choices(&["always", "madvise", "never"], s.hw.thp.name())
}

/// /sys/kernel/mm/transparent_hugepage/defrag (Linux: defrag_show): stall for direct
/// compaction only in MADV_HUGEPAGE regions, the reference host's setting.
pub fn thp_defrag_show(_s: &mut Sys, _t: Target) -> Vec<u8> {
    choices(&["always", "defer", "defer+madvise", "madvise", "never"], "madvise")
}

/// /sys/kernel/mm/transparent_hugepage/use_zero_page (Linux: use_zero_page_show).
pub fn thp_use_zero_page_show(_s: &mut Sys, _t: Target) -> Vec<u8> {
    b"1\n".to_vec()
}

/// /sys/kernel/mm/transparent_hugepage/hpage_pmd_size (Linux: hpage_pmd_size_show):
/// HPAGE_PMD_SIZE, 2 MiB on x86-64.
pub fn thp_hpage_pmd_size_show(_s: &mut Sys, _t: Target) -> Vec<u8> {
    b"2097152\n".to_vec()
}

/// /sys/kernel/mm/transparent_hugepage/shmem_enabled (Linux: shmem_enabled_show): shmem
/// never gets huge pages (the reference host's setting; "deny" and "force" are the
/// testing values).
pub fn thp_shmem_enabled_show(_s: &mut Sys, _t: Target) -> Vec<u8> {
    choices(&["always", "within_size", "advise", "never", "deny", "force"], "never")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_map_covers_memory() {
        for bytes in [512u64 << 20, 1 << 30, 4 << 30, (5 << 30) + (3 << 20) + 4096] {
            let [a, b, c] = direct_map(bytes);
            assert_eq!((a + b + c) << 10, bytes, "{bytes:#x}");
        }
        assert_eq!(direct_map(4 << 30), [2048, 1046528, 3145728]);
    }

    #[test]
    fn policy_files_bracket_one_choice() {
        assert_eq!(choices(&["always", "madvise", "never"], "madvise"), b"always [madvise] never\n");
    }
}


/// A hugetlb pool counter (Linux: the attributes of /sys/kernel/mm/hugepages/hugepages-*
/// and /proc/sys/vm/nr_hugepages).
#[derive(Clone, Copy)]
enum PoolCounter {
    /// /proc/sys/vm/nr_hugepages: the persistent pages (Linux: persistent_huge_pages).
    Nr,
    /// sysfs nr_hugepages: every page, surplus included (Linux: nr_huge_pages).
    Total,
    Free,
    Resv,
    Surplus,
    /// nr_overcommit_hugepages: always 0 here.
    Overcommit,
}

fn pool_show(s: &mut Sys, size: HugeSize, c: PoolCounter) -> Vec<u8> {
    // Deferred frees first, as meminfo does: Linux frees at once.
    s.hw.pages.drain_deferred();
    let p = s.hw.pages.hugetlb.borrow();
    let h = p.h(size);
    let v = match c {
        PoolCounter::Nr => h.persistent(),
        PoolCounter::Total => h.nr,
        PoolCounter::Free => h.free_count(),
        PoolCounter::Resv => h.resv,
        PoolCounter::Surplus => h.surplus,
        PoolCounter::Overcommit => 0,
    };
    format!("{v}\n").into_bytes()
}

/// A write of nr_hugepages (Linux: __nr_hugepages_store_common): a decimal count, with
/// surrounding white space allowed; anything else is EINVAL.
fn pool_store(s: &mut Sys, size: HugeSize, data: &[u8]) -> KResult<usize> {
    let text = std::str::from_utf8(data).map_err(|_| Errno::EINVAL)?;
    let count: u64 = text.trim().parse().map_err(|_| Errno::EINVAL)?;
    crate::kernel::mm::hugetlb::set_max_huge_pages(&mut s.hw.pages, size, count);
    Ok(data.len())
}

/// The part of `content` at `pos` (the read of a file shown whole).
fn slice_at(content: Vec<u8>, pos: u64, len: usize) -> Vec<u8> {
    let from = (pos as usize).min(content.len());
    content[from..(from + len).min(content.len())].to_vec()
}

macro_rules! pool_files {
    ($($read:ident, $write:ident, $size:expr, $c:expr);* $(;)?) => {$(
        pub fn $read(s: &mut Sys, _t: Target, pos: u64, len: usize) -> KResult<Vec<u8>> {
            Ok(slice_at(pool_show(s, $size, $c), pos, len))
        }
        pub fn $write(s: &mut Sys, _t: Target, _pos: u64, data: &[u8]) -> KResult<usize> {
            pool_store(s, $size, data)
        }
    )*};
}

pool_files! {
    proc_nr_hugepages_read, proc_nr_hugepages_write, HugeSize::M2, PoolCounter::Nr;
    nr_hugepages_2m_read, nr_hugepages_2m_write, HugeSize::M2, PoolCounter::Total;
    nr_hugepages_1g_read, nr_hugepages_1g_write, HugeSize::G1, PoolCounter::Total;
}

macro_rules! pool_counter_files {
    ($($name:ident, $size:expr, $c:expr);* $(;)?) => {$(
        pub fn $name(s: &mut Sys, _t: Target) -> Vec<u8> {
            pool_show(s, $size, $c)
        }
    )*};
}

pool_counter_files! {
    free_hugepages_2m_show, HugeSize::M2, PoolCounter::Free;
    resv_hugepages_2m_show, HugeSize::M2, PoolCounter::Resv;
    surplus_hugepages_2m_show, HugeSize::M2, PoolCounter::Surplus;
    nr_overcommit_hugepages_2m_show, HugeSize::M2, PoolCounter::Overcommit;
    free_hugepages_1g_show, HugeSize::G1, PoolCounter::Free;
    resv_hugepages_1g_show, HugeSize::G1, PoolCounter::Resv;
    surplus_hugepages_1g_show, HugeSize::G1, PoolCounter::Surplus;
    nr_overcommit_hugepages_1g_show, HugeSize::G1, PoolCounter::Overcommit;
}

/// /sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled (Linux:
/// thpsize_shmem_enabled_show): the PMD size follows the top-level shmem_enabled.
pub fn thp_2m_shmem_enabled_show(_s: &mut Sys, _t: Target) -> Vec<u8> {
    choices(&["always", "inherit", "within_size", "advise", "never"], "inherit")
}
