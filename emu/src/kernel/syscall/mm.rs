//! Memory syscalls: mmap, munmap, mprotect, mremap, madvise, msync, brk.

use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::Errno;
use crate::kernel::mm::mmap::{self, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, MAP_SHARED_VALIDATE, MAP_TYPE};
use crate::kernel::mm::mprotect;
use crate::kernel::mm::vma::Backing;

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
    let (hw, mm) = s.hw_mm();
    mmap::do_munmap(mm, hw, a.u(0), a.u(1))?;
    ok(0)
}

pub fn sys_mprotect(s: &mut Sys, a: Args) -> SysResult {
    let (hw, mm) = s.hw_mm();
    mprotect::do_mprotect(mm, hw, a.u(0), a.u(1), a.u32(2))?;
    ok(0)
}

pub fn sys_mremap(s: &mut Sys, a: Args) -> SysResult {
    let (hw, mm) = s.hw_mm();
    ok(mmap::do_mremap(mm, hw, a.u(0), a.u(1), a.u(2), a.u32(3), a.u(4))?)
}

pub fn sys_madvise(s: &mut Sys, a: Args) -> SysResult {
    let (hw, mm) = s.hw_mm();
    mmap::do_madvise(mm, hw, a.u(0), a.u(1), a.u32(2))?;
    ok(0)
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
