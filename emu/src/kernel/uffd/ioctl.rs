//! The ioctls (Linux: fs/userfaultfd.c userfaultfd_ioctl): UFFDIO_API, REGISTER,
//! UNREGISTER, WAKE, COPY, ZEROPAGE, CONTINUE, POISON, MOVE and WRITEPROTECT. The memory
//! side of each is `mm::userfaultfd`.

use super::ctx::{mm_alive, vm_ctx, UffdCtx};
use super::fault::wake_userfault;
use super::uapi::*;
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use crate::kernel::mm::userfaultfd::{mfill_atomic, Mfill};
use crate::kernel::mm::{Mm, MmId, VmFlags, TASK_SIZE};
use crate::kernel::syscall::{ok, Ret, Sys, SysResult};
use crate::kernel::uaccess;
use crate::kernel::Kernel;
use std::mem::offset_of;
use std::rc::Rc;

/// copy_from_user of the first `len` bytes of a UAPI struct, in one guest copy; the rest
/// stays zero. The fill ioctls read their struct without its output field, REGISTER
/// without `ioctls`, as Linux does: a struct whose last field lies on an unmapped page
/// can still be read.
pub(super) fn copy_struct_from_user<T: Uapi>(s: &mut Sys, va: u64, len: usize) -> KResult<T> {
    let mut b = [0u8; 64];
    const { assert!(T::SIZE <= 64) };
    assert!(len <= T::SIZE);
    s.copy_from_user(va, &mut b[..len])?;
    Ok(T::read_from(&b))
}

/// copy_to_user of a UAPI struct, or put_user of one field, in one guest copy.
pub(super) fn copy_struct_to_user<T: Uapi>(s: &mut Sys, va: u64, v: &T) -> KResult<()> {
    let mut b = [0u8; 64];
    const { assert!(T::SIZE <= 64) };
    v.write_to(&mut b);
    s.copy_to_user(va, &b[..T::SIZE])
}

/// The VM_UFFD_* flags (Linux: __VM_UFFD_FLAGS).
pub const VM_UFFD_FLAGS: VmFlags = VmFlags::UFFD_MISSING.union(VmFlags::UFFD_WP).union(VmFlags::UFFD_MINOR);

/// Linux: validate_unaligned_range (UFFDIO_COPY's source: no mmap_min_addr check, so a
/// NULL source is EFAULT from the copy, as natively).
pub fn validate_unaligned_range(start: u64, len: u64) -> KResult<()> {
    if len & 0xfff != 0 || len == 0 || start >= TASK_SIZE || len > TASK_SIZE - start {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Linux: validate_range (a page-aligned start, then the unaligned rules). 6.18 has no
/// mmap_min_addr check here (measured: WAKE at 0 succeeds, COPY to 0 is ENOENT); REGISTER
/// makes its own.
pub fn validate_range(start: u64, len: u64) -> KResult<()> {
    if start & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    validate_unaligned_range(start, len)
}

/// Linux: userfaultfd_ioctl. Every command but UFFDIO_API needs the handshake first.
pub fn userfaultfd_ioctl(s: &mut Sys, ctx: Rc<UffdCtx>, cmd: u32, arg: u64) -> SysResult {
    if cmd != UFFDIO_API && !ctx.st.borrow().initialized {
        return Err(Errno::EINVAL);
    }
    let r = match cmd {
        UFFDIO_API => userfaultfd_api(s, &ctx, arg),
        UFFDIO_REGISTER => userfaultfd_register(s, &ctx, arg),
        UFFDIO_UNREGISTER => userfaultfd_unregister(s, &ctx, arg),
        UFFDIO_WAKE => userfaultfd_wake(s, &ctx, arg),
        UFFDIO_COPY => userfaultfd_copy(s, &ctx, arg),
        UFFDIO_ZEROPAGE => userfaultfd_zeropage(s, &ctx, arg),
        UFFDIO_WRITEPROTECT => userfaultfd_writeprotect(s, &ctx, arg),
        UFFDIO_CONTINUE => userfaultfd_continue(s, &ctx, arg),
        UFFDIO_POISON => userfaultfd_poison(s, &ctx, arg),
        UFFDIO_MOVE => userfaultfd_move(s, &ctx, arg),
        _ => Err(Errno::EINVAL),
    };
    tracing::debug!(target: "pagelab::uffd", uffd = ctx.id, ioctl = ioctl_name(cmd), ret = match &r { Ok(Ret::Val(v)) => *v as i64, Err(e) => -(e.0 as i64), _ => 0 }, "ioctl");
    r
}

fn ioctl_name(cmd: u32) -> &'static str {
    match cmd {
        UFFDIO_API => "UFFDIO_API",
        UFFDIO_REGISTER => "UFFDIO_REGISTER",
        UFFDIO_UNREGISTER => "UFFDIO_UNREGISTER",
        UFFDIO_WAKE => "UFFDIO_WAKE",
        UFFDIO_COPY => "UFFDIO_COPY",
        UFFDIO_ZEROPAGE => "UFFDIO_ZEROPAGE",
        UFFDIO_WRITEPROTECT => "UFFDIO_WRITEPROTECT",
        UFFDIO_CONTINUE => "UFFDIO_CONTINUE",
        UFFDIO_POISON => "UFFDIO_POISON",
        UFFDIO_MOVE => "UFFDIO_MOVE",
        _ => "?",
    }
}

/// Linux: userfaultfd_api. Every failure after the struct was read zeroes it in user
/// memory; the context stays usable (a later, valid handshake succeeds) unless it was
/// already initialised, in which case the answer is EINVAL.
fn userfaultfd_api(s: &mut Sys, ctx: &UffdCtx, arg: u64) -> SysResult {
    let UffdioApi { api, mut features, .. } = copy_struct_from_user(s, arg, size_of::<UffdioApi>())?;
    let err = 'check: {
        if api != UFFD_API {
            break 'check Errno::EINVAL;
        }
        if features & UFFD_FEATURE_EVENT_FORK != 0 && !crate::kernel::capability::capable(s, crate::kernel::capability::CAP_SYS_PTRACE) {
            break 'check Errno::EPERM;
        }
        if features & UFFD_FEATURE_WP_ASYNC != 0 {
            features |= UFFD_FEATURE_WP_UNPOPULATED;
        }
        if features & !UFFD_API_FEATURES != 0 {
            break 'check Errno::EINVAL;
        }
        copy_struct_to_user(s, arg, &UffdioApi { api: UFFD_API, features: UFFD_API_FEATURES, ioctls: UFFD_API_IOCTLS })?;
        let mut st = ctx.st.borrow_mut();
        if st.initialized {
            drop(st);
            break 'check Errno::EINVAL;
        }
        st.initialized = true;
        st.features = features;
        return ok(0);
    };
    copy_struct_to_user(s, arg, &UffdioApi::default())?;
    Err(err)
}

/// Linux: vma_can_userfault for the modes in `vm_flags`: with WP_ASYNC (`wp_async`) and
/// exactly MODE_WP any VMA is capable (a host file's mapping, private or not); otherwise
/// anonymous, shmem and hugetlb VMAs are; MINOR needs shmem or hugetlb.
pub fn vma_can_userfault(v: &crate::kernel::mm::Vma, vm_flags: VmFlags, wp_async: bool) -> bool {
    let vm_flags = vm_flags & VM_UFFD_FLAGS;
    if v.flags.has(VmFlags::DROPPABLE) {
        return false;
    }
    if wp_async && vm_flags == VmFlags::UFFD_WP {
        return true;
    }
    let shmem = v.is_shmem() || v.is_hugetlb();
    if vm_flags.contains(VmFlags::UFFD_MINOR) && !shmem {
        return false;
    }
    v.is_anonymous() || shmem
}

/// Linux: userfaultfd_register.
fn userfaultfd_register(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    let UffdioRegister { range: UffdioRange { start, len }, mode, .. } = copy_struct_from_user(s, arg, offset_of!(UffdioRegister, ioctls))?;
    if mode == 0 || mode & !(UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP | UFFDIO_REGISTER_MODE_MINOR) != 0 {
        return Err(Errno::EINVAL);
    }
    let mut vm_flags = VmFlags::empty();
    if mode & UFFDIO_REGISTER_MODE_MISSING != 0 {
        vm_flags |= VmFlags::UFFD_MISSING;
    }
    if mode & UFFDIO_REGISTER_MODE_WP != 0 {
        vm_flags |= VmFlags::UFFD_WP;
    }
    if mode & UFFDIO_REGISTER_MODE_MINOR != 0 {
        vm_flags |= VmFlags::UFFD_MINOR;
    }
    validate_range(start, len)?;
    let end = start + len;
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ENOMEM);
    }
    let me = vm_ctx(ctx);
    let mm = s.k.mms[ctx.mm.get()].as_mut().unwrap();
    let keys = mm.vmas_in(start, end);
    if keys.is_empty() {
        return Err(Errno::EINVAL);
    }
    // A hugetlb first VMA: start huge-aligned; a hugetlb VMA holding the end: end too.
    if mm.vmas[&keys[0]].is_hugetlb() && start % mm.vmas[&keys[0]].page_size() != 0 {
        return Err(Errno::EINVAL);
    }
    let mut basic_ioctls = false;
    for k in &keys {
        let v = &mm.vmas[k];
        if v.is_hugetlb() {
            basic_ioctls = true;
            if end <= v.end && end > v.start && end % v.page_size() != 0 {
                return Err(Errno::EINVAL);
            }
        }
        if !vma_can_userfault(v, vm_flags, ctx.features() & UFFD_FEATURE_WP_ASYNC != 0) {
            return Err(Errno::EINVAL);
        }
        if !v.flags.has(VmFlags::MAYWRITE) {
            return Err(Errno::EPERM);
        }
        if v.userfaultfd_ctx.as_ref().is_some_and(|c| *c != me) {
            return Err(Errno::EBUSY);
        }
    }
    // userfaultfd_register_range: VMAs already registered here with a superset of the
    // modes stay as they are; the others get exactly the new modes (replacing the old).
    let change: Vec<(u64, u64)> = keys
        .iter()
        .filter_map(|k| {
            let v = &mm.vmas[k];
            let same = v.userfaultfd_ctx.as_ref() == Some(&me) && v.flags.contains(vm_flags);
            (!same).then(|| (v.start.max(start), v.end.min(end)))
        })
        .collect();
    for (a, z) in change {
        mm.split_vma(s.hw, a);
        mm.split_vma(s.hw, z);
        for k in mm.vmas_in(a, z) {
            let v = mm.vmas.get_mut(&k).unwrap();
            v.flags = (v.flags - VM_UFFD_FLAGS) | vm_flags;
            v.userfaultfd_ctx = Some(me.clone());
        }
        mm.merge_around(a, z);
    }
    let mut ioctls = if basic_ioctls { UFFD_API_RANGE_IOCTLS_BASIC } else { UFFD_API_RANGE_IOCTLS };
    if mode & UFFDIO_REGISTER_MODE_WP == 0 {
        ioctls &= !(1 << _UFFDIO_WRITEPROTECT);
    }
    if mode & UFFDIO_REGISTER_MODE_MINOR == 0 {
        ioctls &= !(1 << _UFFDIO_CONTINUE);
    }
    copy_struct_to_user(s, arg + offset_of!(UffdioRegister, ioctls) as u64, &ioctls)?;
    ok(0)
}

/// Linux: userfaultfd_unregister.
fn userfaultfd_unregister(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    let UffdioRange { start, len } = copy_struct_from_user(s, arg, size_of::<UffdioRange>())?;
    validate_range(start, len)?;
    let end = start + len;
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ENOMEM);
    }
    let me = vm_ctx(ctx);
    let mm = s.k.mms[ctx.mm.get()].as_ref().unwrap();
    let keys = mm.vmas_in(start, end);
    if keys.is_empty() {
        return Err(Errno::EINVAL);
    }
    // The hugetlb alignment rules of REGISTER.
    if mm.vmas[&keys[0]].is_hugetlb() && start % mm.vmas[&keys[0]].page_size() != 0 {
        return Err(Errno::EINVAL);
    }
    for k in &keys {
        let v = &mm.vmas[k];
        if v.is_hugetlb() && end <= v.end && end > v.start && end % v.page_size() != 0 {
            return Err(Errno::EINVAL);
        }
        // "userfaultfd: prevent unregistering VMAs through a different userfaultfd".
        if v.userfaultfd_ctx.as_ref().is_some_and(|c| *c != me) {
            return Err(Errno::EINVAL);
        }
        if !vma_can_userfault(v, v.flags, ctx.features() & UFFD_FEATURE_WP_ASYNC != 0) {
            return Err(Errno::EINVAL);
        }
    }
    let ranges: Vec<(u64, u64, VmFlags)> = keys
        .iter()
        .filter_map(|k| {
            let v = &mm.vmas[k];
            v.userfaultfd_ctx.is_some().then(|| (v.start.max(start), v.end.min(end), v.flags))
        })
        .collect();
    for (a, z, flags) in ranges {
        if flags.contains(VmFlags::UFFD_MISSING) {
            // Wake the faults pending in the range so they do not hang (WP waiters are
            // left alone, as in Linux: only UFFDIO_WAKE or close wakes them).
            wake_userfault(s.k, ctx, a, z - a);
        }
        userfaultfd_clear_vma(s.k, s.hw, ctx.mm.get(), a, z);
    }
    ok(0)
}

/// Linux: userfaultfd_clear_vma over [start, end) of one registered VMA: un-protect what
/// is wp'd (uffd_wp_range with enable_wp false), drop the flags and the context, merge.
pub fn userfaultfd_clear_vma(k: &mut Kernel, hw: &mut Hw, mm_id: MmId, start: u64, end: u64) {
    let Some(mm) = k.mms.get_mut(mm_id).and_then(|m| m.as_mut()) else { return };
    mm.split_vma(hw, start);
    mm.split_vma(hw, end);
    for key in mm.vmas_in(start, end) {
        let v = mm.vmas[&key].clone();
        if v.flags.has(VmFlags::UFFD_WP) {
            // Un-protecting allocates nothing: it cannot fail.
            let _ = crate::kernel::mm::userfaultfd::uffd_wp_range(mm, hw, &v, v.start, v.end, false);
        }
        let v = mm.vmas.get_mut(&key).unwrap();
        v.flags.remove(VM_UFFD_FLAGS);
        v.userfaultfd_ctx = None;
    }
    mm.merge_around(start, end);
}

/// Linux: userfaultfd_wake.
fn userfaultfd_wake(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    let UffdioRange { start, len } = copy_struct_from_user(s, arg, size_of::<UffdioRange>())?;
    validate_range(start, len)?;
    wake_userfault(s.k, ctx, start, len);
    ok(0)
}

/// The result of an mfill ioctl with its output field (`copy`, `zeropage`, `mapped`):
/// Linux's put_user(ret, ...) then the return value.
fn mfill_result(s: &mut Sys, ctx: &UffdCtx, out_va: u64, res: KResult<u64>, dst: u64, len: u64, dontwake: bool) -> SysResult {
    let v: i64 = match res {
        Ok(n) => n as i64,
        Err(e) => -(e.0 as i64),
    };
    copy_struct_to_user(s, out_va, &v)?;
    let n = res?;
    if !dontwake {
        wake_userfault(s.k, ctx, dst, n);
    }
    if n == len {
        ok(0)
    } else {
        Err(Errno::EAGAIN)
    }
}

/// mfill_atomic on the context's address space (Linux: what mfill_atomic does with its
/// ctx — ctx->mm, ctx->mmap_changing — and the copy_from_user of mfill_atomic_pte_copy,
/// which reads UFFDIO_COPY's source from the calling task's memory, page by page as each
/// is filled). The context's mm may be another process's (a monitor filling a forked
/// child's faults).
fn mfill_atomic_ctx(s: &mut Sys, ctx: &UffdCtx, dst: u64, len: u64, mode: Mfill) -> KResult<u64> {
    let (target, caller) = (ctx.mm.get(), s.k.tasks[&s.tid].mm);
    let mmap_changing = ctx.st.borrow().mmap_changing != 0;
    let (mm, mut caller_mm) = if target == caller {
        (s.k.mms[target].as_mut().ok_or(Errno::ESRCH)?, None)
    } else {
        let [t, c] = s.k.mms.get_disjoint_mut([target, caller]).expect("two live mm ids");
        (t.as_mut().ok_or(Errno::ESRCH)?, Some(c.as_mut().expect("mm of a live task")))
    };
    let mut copy_from_user = |hw: &mut Hw, dst_mm: &mut Mm, va: u64, page: &mut [u8; 4096]| uaccess::copy_from_user(hw, caller_mm.as_deref_mut().unwrap_or(dst_mm), va, page);
    mfill_atomic(mm, s.hw, dst, len, mode, mmap_changing, &mut copy_from_user)
}

/// EAGAIN while a non-cooperative event is unread, written to the output field too.
fn mmap_changing(s: &mut Sys, ctx: &UffdCtx, out_va: Option<u64>) -> KResult<()> {
    if ctx.st.borrow().mmap_changing == 0 {
        return Ok(());
    }
    if let Some(va) = out_va {
        copy_struct_to_user(s, va, &-(Errno::EAGAIN.0 as i64))?;
    }
    Err(Errno::EAGAIN)
}

/// Linux: userfaultfd_copy.
fn userfaultfd_copy(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    let out = arg + offset_of!(UffdioCopy, copy) as u64;
    mmap_changing(s, ctx, Some(out))?;
    let UffdioCopy { dst, src, len, mode, .. } = copy_struct_from_user(s, arg, offset_of!(UffdioCopy, copy))?;
    // The order seen natively on 6.18: the destination and the mode, then ESRCH for a
    // dead mm (before the source's range: a source running past TASK_SIZE on a dead
    // context is ESRCH), then the source (page-multiple length, below TASK_SIZE; no
    // mmap_min_addr check: a NULL source is EFAULT from the copy).
    if len & 0xfff != 0 || len == 0 {
        return Err(Errno::EINVAL);
    }
    validate_range(dst, len)?;
    if mode & !(UFFDIO_COPY_MODE_DONTWAKE | UFFDIO_COPY_MODE_WP) != 0 {
        return Err(Errno::EINVAL);
    }
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ESRCH);
    }
    validate_unaligned_range(src, len)?;
    let wp = mode & UFFDIO_COPY_MODE_WP != 0;
    let res = mfill_atomic_ctx(s, ctx, dst, len, Mfill::Copy { src, wp });
    mfill_result(s, ctx, out, res, dst, len, mode & UFFDIO_COPY_MODE_DONTWAKE != 0)
}

/// Linux: userfaultfd_zeropage.
fn userfaultfd_zeropage(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    let out = arg + offset_of!(UffdioZeropage, zeropage) as u64;
    mmap_changing(s, ctx, Some(out))?;
    let UffdioZeropage { range: UffdioRange { start: dst, len }, mode, .. } = copy_struct_from_user(s, arg, offset_of!(UffdioZeropage, zeropage))?;
    validate_range(dst, len)?;
    if mode & !UFFDIO_ZEROPAGE_MODE_DONTWAKE != 0 {
        return Err(Errno::EINVAL);
    }
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ESRCH);
    }
    let res = mfill_atomic_ctx(s, ctx, dst, len, Mfill::Zeropage);
    mfill_result(s, ctx, out, res, dst, len, mode & UFFDIO_ZEROPAGE_MODE_DONTWAKE != 0)
}

/// Linux: userfaultfd_continue. Only shmem and hugetlb have a page cache to map from;
/// pagelab's registered VMAs that are not anonymous are shmem, which has no MINOR
/// support yet, so a registered destination answers EINVAL (as anonymous memory does).
fn userfaultfd_continue(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    let out = arg + offset_of!(UffdioContinue, mapped) as u64;
    mmap_changing(s, ctx, Some(out))?;
    let UffdioContinue { range: UffdioRange { start: dst, len }, mode, .. } = copy_struct_from_user(s, arg, offset_of!(UffdioContinue, mapped))?;
    validate_range(dst, len)?;
    if mode & !(UFFDIO_CONTINUE_MODE_DONTWAKE | UFFDIO_CONTINUE_MODE_WP) != 0 {
        return Err(Errno::EINVAL);
    }
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ESRCH);
    }
    let wp = mode & UFFDIO_CONTINUE_MODE_WP != 0;
    let res = mfill_atomic_ctx(s, ctx, dst, len, Mfill::Continue { wp });
    mfill_result(s, ctx, out, res, dst, len, mode & UFFDIO_CONTINUE_MODE_DONTWAKE != 0)
}

/// Linux: userfaultfd_poison.
fn userfaultfd_poison(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    let out = arg + offset_of!(UffdioPoison, updated) as u64;
    mmap_changing(s, ctx, Some(out))?;
    let UffdioPoison { range: UffdioRange { start: dst, len }, mode, .. } = copy_struct_from_user(s, arg, offset_of!(UffdioPoison, updated))?;
    validate_range(dst, len)?;
    if mode & !UFFDIO_POISON_MODE_DONTWAKE != 0 {
        return Err(Errno::EINVAL);
    }
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ESRCH);
    }
    let res = mfill_atomic_ctx(s, ctx, dst, len, Mfill::Poison);
    mfill_result(s, ctx, out, res, dst, len, mode & UFFDIO_POISON_MODE_DONTWAKE != 0)
}

/// Linux: userfaultfd_move.
fn userfaultfd_move(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    let out = arg + offset_of!(UffdioMove, r#move) as u64;
    mmap_changing(s, ctx, Some(out))?;
    let UffdioMove { dst, src, len, mode, .. } = copy_struct_from_user(s, arg, offset_of!(UffdioMove, r#move))?;
    // No cross-mm moves: a context of another (or a dead) address space is EINVAL.
    if ctx.mm.get() != s.k.tasks[&s.tid].mm || !mm_alive(s.k, ctx) {
        return Err(Errno::EINVAL);
    }
    validate_range(dst, len)?;
    validate_range(src, len)?;
    if mode & !(UFFDIO_MOVE_MODE_DONTWAKE | UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES) != 0 {
        return Err(Errno::EINVAL);
    }
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ESRCH);
    }
    let mm = s.k.mms[ctx.mm.get()].as_mut().unwrap();
    let res = crate::kernel::mm::userfaultfd::move_pages(mm, s.hw, &vm_ctx(ctx), dst, src, len, mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES != 0);
    mfill_result(s, ctx, out, res, dst, len, mode & UFFDIO_MOVE_MODE_DONTWAKE != 0)
}

/// Linux: userfaultfd_writeprotect.
fn userfaultfd_writeprotect(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    mmap_changing(s, ctx, None)?;
    let UffdioWriteprotect { range: UffdioRange { start, len }, mode } = copy_struct_from_user(s, arg, size_of::<UffdioWriteprotect>())?;
    validate_range(start, len)?;
    if mode & !(UFFDIO_WRITEPROTECT_MODE_DONTWAKE | UFFDIO_WRITEPROTECT_MODE_WP) != 0 {
        return Err(Errno::EINVAL);
    }
    let mode_wp = mode & UFFDIO_WRITEPROTECT_MODE_WP != 0;
    let dontwake = mode & UFFDIO_WRITEPROTECT_MODE_DONTWAKE != 0;
    if mode_wp && dontwake {
        return Err(Errno::EINVAL);
    }
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ESRCH);
    }
    let mm = s.k.mms[ctx.mm.get()].as_mut().unwrap();
    crate::kernel::mm::userfaultfd::mwriteprotect_range(mm, s.hw, start, len, mode_wp)?;
    if !mode_wp && !dontwake {
        wake_userfault(s.k, ctx, start, len);
    }
    ok(0)
}
