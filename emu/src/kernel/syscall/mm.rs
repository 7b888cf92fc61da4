//! Memory syscalls: mmap, munmap, mprotect, mremap, madvise, msync, brk.

use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::mm::mmap::{self, MAP_ANONYMOUS, MAP_NONBLOCK, MAP_POPULATE, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, MAP_TYPE};
use crate::kernel::mm::mprotect;
use crate::kernel::mm::vma::{Backing, Vma};
use crate::kernel::uffd;

pub fn sys_mmap(s: &mut Sys, a: Args) -> SysResult {
    let (addr, len, prot, flags, fd, off) = (a.u(0), a.u(1), a.u32(2), a.u32(3), a.i32(4), a.u(5));
    if off & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    match flags & MAP_TYPE {
        MAP_PRIVATE | MAP_SHARED | MAP_SHARED_VALIDATE => {}
        // do_mmap: anonymous only, and never locked, hugetlb or a stack.
        mmap::MAP_DROPPABLE if flags & MAP_ANONYMOUS != 0 && flags & (mmap::MAP_LOCKED | mmap::MAP_HUGETLB | mmap::MAP_GROWSDOWN) == 0 => {}
        _ => return Err(Errno::EINVAL),
    }
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    // MAP_FIXED replaces what is there: UNMAP events for the registered VMAs it unmaps
    // (mmap_region's userfaultfd_unmap_prep), sent once the call has mapped.
    let mut ev = uffd::PendingEvents::default();
    if flags & mmap::MAP_FIXED != 0 && flags & mmap::MAP_FIXED_NOREPLACE == 0 {
        let hlen = if flags & mmap::MAP_HUGETLB != 0 { crate::kernel::mm::hugetlb::HugeSize::from_flags(flags).and_then(|h| len.checked_add(h.bytes() - 1).map(|l| l & h.mask())) } else { mmap::page_align(len) };
        if let Some(end) = hlen.and_then(|l| addr.checked_add(l)) {
            let mm = s.k.tasks[&s.tid].mm;
            uffd::unmap_prep(s.k, mm, addr, end, &mut ev);
        }
    }
    let at = if flags & (MAP_ANONYMOUS | mmap::MAP_HUGETLB) == MAP_ANONYMOUS | mmap::MAP_HUGETLB {
        // ksys_mmap_pgoff: a hugetlbfs file of the rounded-up length (hugetlb_file_setup).
        let size = crate::kernel::mm::hugetlb::HugeSize::from_flags(flags).ok_or(Errno::EINVAL)?;
        let len = len.checked_add(size.bytes() - 1).ok_or(Errno::ENOMEM)? & size.mask();
        let id = s.k.new_obj_id();
        let obj = crate::kernel::mm::shmem::Shmem::hugetlb(id, &s.hw.pages, len, size, b"/anon_hugepage (deleted)".to_vec());
        let (hw, mm) = s.hw_mm();
        // The offset is the new file's, so it must be huge-aligned (hugetlbfs_file_mmap).
        mmap::do_mmap_hugetlb(mm, hw, addr, len, prot, flags, obj, off, crate::kernel::mm::vma::VmFlags::empty())?
    } else if flags & MAP_ANONYMOUS != 0 {
        let shared_id = if mmap::map_shared(flags) { Some(s.k.new_obj_id()) } else { None };
        let (hw, mm) = s.hw_mm();
        mmap::do_mmap(mm, hw, addr, len, prot, flags, Backing::Anon, shared_id)?
    } else {
        mmap_file(s, addr, len, prot, flags, fd, off)?
    };
    // vm_mmap_pgoff → mm_populate: MAP_POPULATE without MAP_NONBLOCK faults the range in,
    // each fault counting to the caller (drained at the syscall's end).
    if flags & (MAP_POPULATE | MAP_NONBLOCK) == MAP_POPULATE || flags & mmap::MAP_LOCKED != 0 || s.mm().def_flags.has(crate::kernel::mm::vma::VmFlags::LOCKED) {
        let (hw, mm) = s.hw_mm();
        let (n, _) = crate::kernel::mm::gup::mm_populate(mm, hw, at, at + mmap::page_align(len).unwrap_or(0));
        s.hw.uaccess_faults += n;
    }
    uffd::events_complete(s, ev, at)
}

/// The file half of mmap: the object and its checks, then do_mmap_file.
fn mmap_file(s: &mut Sys, addr: u64, len: u64, prot: u32, flags: u32, fd: i32, off: u64) -> crate::kernel::errno::KResult<u64> {
    let (obj, deny) = file_mapping(s, fd, prot, flags)?;
    if let Some(size) = obj.hugetlb_size() {
        // A hugetlbfs file: the length rounded up to its page size (ksys_mmap_pgoff).
        let len = len.checked_add(size.bytes() - 1).ok_or(Errno::ENOMEM)? & size.mask();
        let (hw, mm) = s.hw_mm();
        return mmap::do_mmap_hugetlb(mm, hw, addr, len, prot, flags, obj, off, deny);
    }
    if flags & mmap::MAP_HUGETLB != 0 {
        return Err(Errno::EINVAL);
    }
    // The page offset must not wrap (Linux: EOVERFLOW).
    if (off >> 12).checked_add(mmap::page_align(len).ok_or(Errno::ENOMEM)? >> 12).is_none() {
        return Err(Errno::EOVERFLOW);
    }
    let shared_id = (flags & MAP_TYPE != MAP_PRIVATE).then(|| obj.id());
    let (hw, mm) = s.hw_mm();
    mmap::do_mmap_file(mm, hw, addr, len, prot, flags, Backing::Shmem { obj, offset: off }, shared_id, deny)
}

/// The page-cache object behind `fd` and the VM_MAY* flags its open mode denies (Linux:
/// do_mmap's file checks): EBADF for a bad descriptor, ENODEV for a file with no mmap,
/// EACCES without read access or, for a writable MAP_SHARED mapping, without write
/// access; EPERM for a writable shared mapping of a write-sealed memfd.
fn file_mapping(s: &mut Sys, fd: i32, prot: u32, flags: u32) -> KResult<(crate::kernel::mm::shmem::Shmem, crate::kernel::mm::vma::VmFlags)> {
    use crate::kernel::file::FileKind;
    use crate::kernel::mm::shmem::{F_SEAL_FUTURE_WRITE, F_SEAL_WRITE};
    use crate::kernel::mm::vma::VmFlags;
    let f = super::fs::file(s, fd)?;
    let fb = f.borrow();
    let shared = flags & MAP_TYPE != MAP_PRIVATE;
    let write = prot & 2 != 0;
    if !fb.readable() {
        return Err(Errno::EACCES);
    }
    let obj = match &fb.kind {
        FileKind::Shmem(sf) => sf.inode.clone(),
        FileKind::HostFile { path, data, .. } => {
            let (path, data) = (path.clone(), data.clone());
            drop(fb);
            let obj = host_page_cache(s, &path, data);
            return if shared && write { Err(Errno::EACCES) } else { Ok((obj, if shared { VmFlags::MAYWRITE } else { VmFlags::empty() })) };
        }
        _ => return Err(Errno::ENODEV),
    };
    if shared && write && !fb.writable() {
        return Err(Errno::EACCES);
    }
    if shared && write && obj.inode().seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0 {
        return Err(Errno::EPERM);
    }
    // No VM_MAYWRITE for a shared mapping of a file not open for writing, or of a
    // write-sealed memfd (Linux: memfd_check_seals_mmap clears it).
    let sealed = obj.inode().seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0;
    let deny = if shared && (!fb.writable() || sealed) { VmFlags::MAYWRITE } else { VmFlags::empty() };
    Ok((obj, deny))
}

/// The one page cache of a host file, shared by every mapping of it while one lives
/// (Linux: the inode's address_space).
fn host_page_cache(s: &mut Sys, path: &std::path::Path, data: std::sync::Arc<Vec<u8>>) -> crate::kernel::mm::shmem::Shmem {
    if let Some(obj) = s.k.host_pages.get(path).and_then(|w| w.upgrade()) {
        return obj;
    }
    let id = s.k.new_obj_id();
    let obj = crate::kernel::mm::shmem::Shmem::host_file(id, &s.hw.pages, path.as_os_str().as_encoded_bytes().to_vec(), data);
    s.k.host_pages.insert(path.to_path_buf(), obj.downgrade());
    obj
}

pub fn sys_munmap(s: &mut Sys, a: Args) -> SysResult {
    // userfaultfd_unmap_prep: UNMAP events for registered VMAs (sent once unmapped).
    let mut ev = uffd::PendingEvents::default();
    if let Some(end) = a.u(0).checked_add(mmap::page_align(a.u(1)).unwrap_or(0)) {
        let mm = s.k.tasks[&s.tid].mm;
        uffd::unmap_prep(s.k, mm, a.u(0), end, &mut ev);
    }
    let (hw, mm) = s.hw_mm();
    mmap::do_munmap(mm, hw, a.u(0), a.u(1))?;
    uffd::events_complete(s, ev, 0)
}

pub fn sys_mprotect(s: &mut Sys, a: Args) -> SysResult {
    let (hw, mm) = s.hw_mm();
    mprotect::do_mprotect(mm, hw, a.u(0), a.u(1), a.u32(2))?;
    ok(0)
}

pub fn sys_mremap(s: &mut Sys, a: Args) -> SysResult {
    let (old, old_len, new_len) = (a.u(0), mmap::page_align(a.u(1)).unwrap_or(0), mmap::page_align(a.u(2)).unwrap_or(0));
    let mm_id = s.k.tasks[&s.tid].mm;
    let ctx = s.mm().find_vma(old).and_then(uffd::vma_ctx);
    // MREMAP_FIXED unmaps the destination first (userfaultfd_unmap_prep on uf_unmap_early).
    let mut early = uffd::PendingEvents::default();
    let mut stops_part_way = false;
    if a.u32(3) & mmap::MREMAP_FIXED != 0 && a.u32(3) & mmap::MREMAP_MAYMOVE != 0 {
        let spans = s.mm().find_vma(old).is_some_and(|v| old_len != 0 && old + old_len > v.end);
        if spans && old_len == new_len {
            // A move of several VMAs (6.17) unmaps each one's destination on its own:
            // one UNMAP per destination part, for the parts it gets to.
            let (parts, stopped) = mmap::remap_move_parts(s.mm(), old, old_len);
            stops_part_way = stopped && !parts.is_empty();
            for (pa, pb) in parts {
                let to = a.u(4).wrapping_add(pa - old);
                uffd::unmap_prep(s.k, mm_id, to, to + (pb - pa), &mut early);
            }
        } else if let Some(end) = a.u(4).checked_add(new_len) {
            uffd::unmap_prep(s.k, mm_id, a.u(4), end, &mut early);
        }
    }
    // A shrink in place unmaps the tail (its VMAs' UNMAP events, gathered before).
    let mut ev = uffd::PendingEvents::default();
    let flags = a.u32(3);
    let moves = flags & (mmap::MREMAP_FIXED | mmap::MREMAP_DONTUNMAP) != 0;
    if !moves && new_len < old_len {
        uffd::unmap_prep(s.k, mm_id, old + new_len, old + old_len, &mut ev);
    }
    let (hw, mm) = s.hw_mm();
    let m = match mmap::do_mremap(mm, hw, a.u(0), a.u(1), a.u(2), flags, a.u(4)) {
        Ok(m) => m,
        // A multi-VMA move that stopped part-way still sends the UNMAP events of the
        // destinations it unmapped.
        Err(e) if e == Errno::EFAULT && stops_part_way => return uffd::events_complete(s, early, (-(e.0 as i64)) as u64),
        Err(e) => return Err(e),
    };
    let r = m.addr;
    if r != old {
        // DONTUNMAP leaves the source mapped: no UNMAP for it.
        uffd::mremap_events(s.k, s.hw, mm_id, ctx, old, r, old_len, new_len, flags & mmap::MREMAP_DONTUNMAP == 0, m.merged_into_source, &mut ev);
    }
    uffd::events_complete(s, ev.mremap_order(early), r)
}

pub fn sys_madvise(s: &mut Sys, a: Args) -> SysResult {
    if a.u32(2) == super::tmpfs::MADV_REMOVE {
        return super::tmpfs::madvise_remove(s, a.u(0), a.u(1));
    }
    // MADV_DONTNEED and MADV_FREE: VMA by VMA, the REMOVE event (userfaultfd_remove) and
    // its wait before the zap.
    let advice = a.u32(2);
    if matches!(advice, mmap::MADV_DONTNEED | mmap::MADV_FREE) && a.u(0) & 0xfff == 0 {
        if let Some(end) = mmap::page_align(a.u(1)).and_then(|l| a.u(0).checked_add(l)).filter(|&e| e > a.u(0)) {
            return madvise_walk_remove(
                s,
                a.u(0),
                end,
                &|v, from| if mmap::madvise_dontneed_free_valid_vma(v, from, advice) { Ok(()) } else { Err(Errno::EINVAL) },
                &mut |s, _, from, to| {
                    let (hw, mm) = s.hw_mm();
                    mmap::do_madvise(mm, hw, from, to - from, advice)
                },
            );
        }
    }
    if matches!(a.u32(2), mmap::MADV_POPULATE_READ | mmap::MADV_POPULATE_WRITE) {
        return madvise_populate(s, a.u(0), a.u(1), a.u32(2) == mmap::MADV_POPULATE_WRITE);
    }
    if a.u32(2) == mmap::MADV_COLLAPSE {
        let me = s.k.tasks[&s.tid].mm;
        mmap::do_madvise_collapse(&mut s.k.mms, me, s.hw, a.u(0), a.u(1))?;
        return ok(0);
    }
    let (hw, mm) = s.hw_mm();
    mmap::do_madvise(mm, hw, a.u(0), a.u(1), a.u32(2))?;
    ok(0)
}

/// What `madvise_walk_remove` does to the part [from, to) of a VMA once its REMOVE event,
/// if any, has been read.
pub type DropPart<'a> = dyn FnMut(&mut Sys, &Vma, u64, u64) -> Result<(), Errno> + 'a;

/// Linux: madvise_walk_vmas for the advice that drops memory (MADV_DONTNEED, MADV_FREE,
/// MADV_REMOVE) over the page-aligned, non-empty [start, end): VMA by VMA, `check` (its
/// errno stops the walk), then `uffd::userfaultfd_remove` — which may send a REMOVE event
/// and make the call wait for it to be read; re-executed, the call drops that part
/// without a second event — then `drop` of the part in the VMA. Parts done before an
/// error stay done. A hole anywhere is ENOMEM at the end; no VMA at all ENOMEM at once.
pub fn madvise_walk_remove(s: &mut Sys, start: u64, end: u64, check: &dyn Fn(&Vma, u64) -> Result<(), Errno>, drop: &mut DropPart) -> SysResult {
    let args = s.args.0;
    let prog = s.k.tasks.get_mut(&s.tid).unwrap().madvise_progress.take().filter(|p| p.args == args);
    let mut cur = prog.map_or(start, |p| p.at);
    let mut event_read_at = prog.map(|p| p.at);
    if s.mm().vmas_in(start, end).is_empty() {
        return Err(Errno::ENOMEM);
    }
    while cur < end {
        let Some(&k) = s.mm().vmas_in(cur, end).first() else { break };
        let v = s.mm().vmas[&k].clone();
        let (from, to) = (cur.max(v.start), end.min(v.end));
        check(&v, from)?;
        if event_read_at != Some(from) {
            if let Some(b) = uffd::userfaultfd_remove(s, &v, from, to) {
                s.k.tasks.get_mut(&s.tid).unwrap().madvise_progress = Some(crate::kernel::task::MadviseProgress { args, at: from });
                return Ok(super::Ret::Block(b));
            }
        }
        event_read_at = None;
        drop(s, &v, from, to)?;
        cur = to;
    }
    if s.mm().range_is_mapped(start, end) {
        ok(0)
    } else {
        Err(Errno::ENOMEM)
    }
}

/// Linux: madvise_populate (MADV_POPULATE_READ 22, MADV_POPULATE_WRITE 23): the range
/// faulted in for reading or writing (`gup::faultin_page_range` has the errnos). A page
/// that needs a userfaultfd is waited for like a kernel-mode access's, then the call runs
/// again (what is in stays in).
fn madvise_populate(s: &mut Sys, start: u64, len: u64, write: bool) -> SysResult {
    if start & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    let end = mmap::page_align(len).and_then(|l| start.checked_add(l)).ok_or(Errno::EINVAL)?;
    let (hw, mm) = s.hw_mm();
    let (n, r) = crate::kernel::mm::gup::faultin_page_range(mm, hw, start, end, write);
    s.hw.uaccess_faults += n;
    match r {
        Ok(()) => ok(0),
        Err(crate::kernel::mm::gup::PopulateStop::Errno(e)) => Err(e),
        Err(crate::kernel::mm::gup::PopulateStop::Userfault { addr, write, reason }) => {
            s.hw.uffd_kfault = Some(crate::kernel::mm::memory::KernelFault { addr, write, reason });
            Err(Errno::EFAULT)
        }
    }
}

pub fn sys_msync(s: &mut Sys, a: Args) -> SysResult {
    let (start, len, flags) = (a.u(0), a.u(1), a.u32(2));
    // MS_ASYNC 1, MS_INVALIDATE 2, MS_SYNC 4; ASYNC and SYNC together are EINVAL.
    if start & 0xfff != 0 || flags & !7 != 0 || (flags & 1 != 0 && flags & 4 != 0) {
        return Err(Errno::EINVAL);
    }
    let end = start.checked_add(mmap::page_align(len).ok_or(Errno::ENOMEM)?).ok_or(Errno::ENOMEM)?;
    if !s.mm().range_is_mapped(start, end) {
        return Err(Errno::ENOMEM);
    }
    ok(0)
}

/// mincore(2) (Linux: the mincore syscall of mm/mincore.c): a byte per page of
/// [start, start + len), bit 0 set when resident (`mm::mincore`). EINVAL for an unaligned
/// start, ENOMEM for a range outside user space or with a hole (the bytes of the VMAs
/// before the hole are already written), EFAULT for a bad vector. The vector is written
/// VMA by VMA, at most 4,096 pages at a time, as Linux does through its bounce page.
pub fn sys_mincore(s: &mut Sys, a: Args) -> SysResult {
    let (mut start, len, mut vec) = (a.u(0), a.u(1), a.u(2));
    if start & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    // access_ok of the range, then of the vector (a byte per page, the last one partial).
    const TASK_SIZE: u64 = (1 << 47) - 4096;
    if len > TASK_SIZE || start > TASK_SIZE - len {
        return Err(Errno::ENOMEM);
    }
    let mut pages = (len >> 12) + (len & 0xfff != 0) as u64;
    if pages > TASK_SIZE || vec > TASK_SIZE - pages {
        return Err(Errno::EFAULT);
    }
    while pages > 0 {
        let v = {
            let (hw, mm) = s.hw_mm();
            crate::kernel::mm::mincore::do_mincore(mm, hw, start, pages.min(4096))?
        };
        s.copy_to_user(vec, &v)?;
        let n = v.len() as u64;
        pages -= n;
        vec += n;
        start += n << 12;
    }
    ok(0)
}

pub fn sys_brk(s: &mut Sys, a: Args) -> SysResult {
    let (hw, mm) = s.hw_mm();
    ok(mmap::do_brk(mm, hw, a.u(0)))
}

/// mlock(2), munlock(2) and mlock2(2) (Linux: mm/mlock.c): see `mmap::do_mlock`; mlock2
/// takes MLOCK_ONFAULT (1) and nothing else (EINVAL). A locked range is faulted in.
fn mlock_common(s: &mut Sys, start: u64, len: u64, lock: bool, onfault: bool) -> SysResult {
    let (hw, mm) = s.hw_mm();
    let (a, b) = mmap::do_mlock(mm, hw, start, len, lock, onfault)?;
    if lock && !onfault {
        let (n, stop) = crate::kernel::mm::gup::mm_populate(mm, hw, a, b);
        s.hw.uaccess_faults += n;
        // __mlock_posix_error_return: a fault that failed (SIGBUS, poison: EFAULT) is
        // ENOMEM, no memory EAGAIN. The range stays locked.
        use crate::kernel::mm::memory::FaultOutcome;
        match stop {
            Some(FaultOutcome::Bus | FaultOutcome::HwPoison | FaultOutcome::Segv) => return Err(Errno::ENOMEM),
            Some(FaultOutcome::Oom) => return Err(Errno::EAGAIN),
            _ => {}
        }
    }
    ok(0)
}

pub fn sys_mlock(s: &mut Sys, a: Args) -> SysResult {
    mlock_common(s, a.u(0), a.u(1), true, false)
}

pub fn sys_munlock(s: &mut Sys, a: Args) -> SysResult {
    mlock_common(s, a.u(0), a.u(1), false, false)
}

/// mlockall(2): `flags` a non-empty subset of MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT, not
/// MCL_ONFAULT alone (EINVAL); MCL_CURRENT without MCL_ONFAULT faults everything in.
pub fn sys_mlockall(s: &mut Sys, a: Args) -> SysResult {
    let flags = a.u32(0);
    if flags == 0 || flags & !7 != 0 || flags == 4 {
        return Err(Errno::EINVAL);
    }
    let (hw, mm) = s.hw_mm();
    mmap::apply_mlockall_flags(mm, flags);
    if flags & 5 == 1 {
        let (n, _) = crate::kernel::mm::gup::mm_populate(mm, hw, 0, crate::kernel::mm::TASK_SIZE);
        s.hw.uaccess_faults += n;
    }
    ok(0)
}

pub fn sys_munlockall(s: &mut Sys, _a: Args) -> SysResult {
    mmap::apply_mlockall_flags(s.mm(), 0);
    ok(0)
}

pub fn sys_mlock2(s: &mut Sys, a: Args) -> SysResult {
    let flags = a.u32(2);
    if flags & !1 != 0 {
        return Err(Errno::EINVAL);
    }
    mlock_common(s, a.u(0), a.u(1), true, flags & 1 != 0)
}
