//! Memory syscalls: mmap, munmap, mprotect, mremap, madvise, msync, brk.

use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::Errno;
use crate::kernel::mm::mmap::{self, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, MAP_TYPE};
use crate::kernel::mm::mprotect;
use crate::kernel::mm::vma::Backing;
use crate::kernel::uffd;

pub fn sys_mmap(s: &mut Sys, a: Args) -> SysResult {
    let (addr, len, prot, flags, fd, off) = (a.u(0), a.u(1), a.u32(2), a.u32(3), a.i32(4), a.u(5));
    if off & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    match flags & MAP_TYPE {
        MAP_PRIVATE | MAP_SHARED | MAP_SHARED_VALIDATE => {}
        _ => return Err(Errno::EINVAL),
    }
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    let backing = if flags & MAP_ANONYMOUS != 0 {
        Backing::Anon
    } else {
        // File mappings come with the file-backed memory issue; a valid fd that is not
        // mappable answers ENODEV as Linux does for such files.
        return Err(if s.k.tasks[&s.tid].files.borrow().get(fd).is_some() { Errno::ENODEV } else { Errno::EBADF });
    };
    let shared_id = if flags & MAP_TYPE != MAP_PRIVATE { Some(s.k.new_obj_id()) } else { None };
    let (hw, mm) = s.hw_mm();
    let r = mmap::do_mmap(mm, hw, addr, len, prot, flags, backing, shared_id)?;
    ok(r)
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
    let ctx = s.mm().find_vma(old).and_then(|v| v.userfaultfd_ctx.as_ref().map(|c| c.0.clone()));
    // MREMAP_FIXED unmaps the destination first (userfaultfd_unmap_prep on uf_unmap_early).
    let mut early = uffd::PendingEvents::default();
    if a.u32(3) & mmap::MREMAP_FIXED != 0 && a.u32(3) & mmap::MREMAP_MAYMOVE != 0 {
        if let Some(end) = a.u(4).checked_add(new_len) {
            uffd::unmap_prep(s.k, mm_id, a.u(4), end, &mut early);
        }
    }
    let (hw, mm) = s.hw_mm();
    let r = mmap::do_mremap(mm, hw, a.u(0), a.u(1), a.u(2), a.u32(3), a.u(4))?;
    let mut ev = uffd::PendingEvents::default();
    if r != old && a.u32(3) & mmap::MREMAP_DONTUNMAP == 0 {
        uffd::mremap_events(s.k, s.hw, mm_id, ctx, old, r, old_len, new_len, &mut ev);
    } else if r == old && new_len < old_len {
        if let Some(c) = ctx.filter(|c| c.features() & uffd::UFFD_FEATURE_EVENT_UNMAP != 0) {
            let _ = c;
            // The shrunk tail was unmapped: its VMA is gone, so name the range directly.
            uffd::unmap_prep_ctx(&mut ev, s.k, mm_id, old, old + new_len, old + old_len);
        }
    }
    uffd::events_complete(s, ev.mremap_order(early), r)
}

pub fn sys_madvise(s: &mut Sys, a: Args) -> SysResult {
    // userfaultfd_remove: REMOVE events for MADV_DONTNEED/MADV_FREE of registered VMAs.
    let mut ev = uffd::PendingEvents::default();
    if matches!(a.u32(2), mmap::MADV_DONTNEED | mmap::MADV_FREE) && a.u(0) & 0xfff == 0 {
        if let Some(end) = mmap::page_align(a.u(1)).and_then(|l| a.u(0).checked_add(l)) {
            let mm = s.k.tasks[&s.tid].mm;
            uffd::remove_prep(s.k, mm, a.u(0), end, &mut ev);
        }
    }
    let (hw, mm) = s.hw_mm();
    mmap::do_madvise(mm, hw, a.u(0), a.u(1), a.u32(2))?;
    uffd::events_complete(s, ev, 0)
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

pub fn sys_brk(s: &mut Sys, a: Args) -> SysResult {
    let (hw, mm) = s.hw_mm();
    ok(mmap::do_brk(mm, hw, a.u(0)))
}
