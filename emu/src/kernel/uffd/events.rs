//! The non-cooperative events (Linux: fs/userfaultfd.c userfaultfd_event_wait_completion,
//! dup_userfaultfd, mremap_userfaultfd_prep/complete, userfaultfd_remove,
//! userfaultfd_unmap_prep/complete): FORK, REMAP, REMOVE and UNMAP, gathered before the
//! mm changes and sent after it; the thread that caused them waits until they are read.

use super::ctx::{new_ctx, vm_ctx, vma_ctx, EventWaiter, UffdCtx};
use super::ioctl::VM_UFFD_FLAGS;
use super::uapi::*;
use crate::kernel::errno::Errno;
use crate::kernel::file::EPOLLIN;
use crate::kernel::hw::Hw;
use crate::kernel::mm::{MmId, VmUserfaultfdCtx};
use crate::kernel::syscall::{ok, Ret, Sys, SysResult};
use crate::kernel::task::{Blocked, Tid, WaitKey, WaitWhat};
use crate::kernel::Kernel;
use std::rc::Rc;

/// Queues an event on `ctx` for the current thread (Linux: userfaultfd_event_wait_completion
/// up to its sleep): mmap_changing goes up until it is read. None if the context is gone.
fn queue_event(k: &mut Kernel, ctx: &Rc<UffdCtx>, tid: Tid, msg: UffdMsg, fork_ctx: Option<Rc<UffdCtx>>) -> Option<u64> {
    if ctx.st.borrow().released {
        return None;
    }
    let key = k.new_obj_id();
    {
        let mut st = ctx.st.borrow_mut();
        st.mmap_changing += 1;
        st.events.push_back(EventWaiter { key, tid, msg, fork_ctx });
    }
    k.uffd.waiters.insert(key, Rc::downgrade(ctx));
    tracing::debug!(target: "pagelab::uffd", uffd = ctx.id, tid, event = msg.event as u64, waiter = key, "event queued");
    ctx.wq.wake_up_poll(EPOLLIN);
    Some(key)
}

/// The wait of a thread whose events must be read before it goes on: uninterruptible
/// (Linux sleeps TASK_KILLABLE), completed by the reader (RAX was set by the caller).
/// Events are read in order, so waiting for the last one is waiting for all.
fn event_wait(keys: &[u64]) -> Option<Blocked> {
    let key = *keys.last()?;
    Some(Blocked { on: vec![WaitKey::Obj(key)], what: WaitWhat::Other("userfaultfd event"), deadline: None, interruptible: false, retry: false, on_signal: Errno::EINTR, seq: 0 })
}

/// Linux: dup_userfaultfd, for every context of the parent's VMAs that asked for
/// EVENT_FORK: a new, initialised context with the same features for the child. Returns
/// the (parent's, child's) pairs for dup_mmap, which gives the child's VMAs the child's
/// context.
pub fn dup_userfaultfd(k: &mut Kernel, parent: MmId) -> Vec<(VmUserfaultfdCtx, VmUserfaultfdCtx)> {
    let mut octxs: Vec<Rc<UffdCtx>> = Vec::new();
    if let Some(mm) = k.mms[parent].as_ref() {
        for v in mm.vmas.values() {
            if let Some(c) = vma_ctx(v) {
                if c.features() & UFFD_FEATURE_EVENT_FORK != 0 && !c.st.borrow().released && !octxs.iter().any(|o| Rc::ptr_eq(o, &c)) {
                    octxs.push(c);
                }
            }
        }
    }
    let mut out = Vec::new();
    for o in octxs {
        let n = new_ctx(k, parent, o.user_mode_only);
        {
            let mut st = n.st.borrow_mut();
            st.initialized = true;
            st.features = o.features();
        }
        out.push((o, n));
    }
    let pairs = out.iter().map(|(o, n)| (vm_ctx(o), vm_ctx(n))).collect();
    k.uffd.fork_pending = out;
    pairs
}

/// The child's mm got its id: the child's contexts receive its faults.
pub fn dup_userfaultfd_set_mm(k: &mut Kernel, child: MmId) {
    for (_, n) in &k.uffd.fork_pending {
        n.mm.set(child);
    }
}

/// Linux: dup_userfaultfd_complete. One FORK event per parent context; the forking
/// thread waits until the monitor has read them (the child's descriptor is made then).
pub fn dup_userfaultfd_complete(s: &mut Sys) -> Option<Blocked> {
    let pending = std::mem::take(&mut s.k.uffd.fork_pending);
    let mut keys = Vec::new();
    for (o, n) in pending {
        // The descriptor (arg.fork.ufd) is made when the event is read.
        let msg = UffdMsg { event: UFFD_EVENT_FORK, ..Default::default() };
        if let Some(k) = queue_event(s.k, &o, s.tid, msg, Some(n)) {
            keys.push(k);
        }
    }
    event_wait(&keys)
}

/// A VMA's context if it asked for `feature`.
fn ctx_with(v: &crate::kernel::mm::Vma, feature: u64) -> Option<Rc<UffdCtx>> {
    vma_ctx(v).filter(|c| c.features() & feature != 0 && !c.st.borrow().released)
}

/// A REMOVE or UNMAP message (both use arg.remove).
fn remove_msg(event: u8, start: u64, end: u64) -> UffdMsg {
    let mut msg = UffdMsg { event, ..Default::default() };
    msg.arg.set(UffdMsgRemove { start, end });
    msg
}

/// A REMAP message.
fn remap_msg(from: u64, to: u64, len: u64) -> UffdMsg {
    let mut msg = UffdMsg { event: UFFD_EVENT_REMAP, ..Default::default() };
    msg.arg.set(UffdMsgRemap { from, to, len });
    msg
}

/// Events gathered before an mm change and sent after it.
#[derive(Default)]
pub struct PendingEvents(pub Vec<(Rc<UffdCtx>, UffdMsg)>);

impl PendingEvents {
    /// The mremap order seen natively: the UNMAP of `early` (the MREMAP_FIXED
    /// destination, unmapped first), then REMAP, then the UNMAP of the source.
    pub fn mremap_order(self, early: PendingEvents) -> PendingEvents {
        let (remap, rest): (Vec<_>, Vec<_>) = self.0.into_iter().partition(|(_, m)| m.event == UFFD_EVENT_REMAP);
        PendingEvents(early.0.into_iter().chain(remap).chain(rest).collect())
    }
}

/// Linux: userfaultfd_unmap_prep over [start, end): one UNMAP event per context with
/// EVENT_UNMAP among the VMAs there (the range is the whole unmap request).
pub fn unmap_prep(k: &Kernel, mm: MmId, start: u64, end: u64, ev: &mut PendingEvents) {
    let Some(m) = k.mms[mm].as_ref() else { return };
    for key in m.vmas_in(start, end) {
        if let Some(c) = ctx_with(&m.vmas[&key], UFFD_FEATURE_EVENT_UNMAP) {
            if !ev.0.iter().any(|(o, msg)| Rc::ptr_eq(o, &c) && msg.event == UFFD_EVENT_UNMAP && msg.arg.get::<UffdMsgRemove>() == UffdMsgRemove { start, end }) {
                ev.0.push((c, remove_msg(UFFD_EVENT_UNMAP, start, end)));
            }
        }
    }
}

/// Linux: userfaultfd_remove, for the part [start, end) of the VMA `v` that MADV_DONTNEED,
/// MADV_FREE or MADV_REMOVE is about to drop: with a context that asked for EVENT_REMOVE,
/// the REMOVE event is queued before anything is dropped (mmap_changing set) and the
/// caller must wait until it is read — the returned wait, which re-executes the call
/// (Linux waits with mmap_lock dropped, then looks the VMA up again and drops it).
pub fn userfaultfd_remove(s: &mut Sys, v: &crate::kernel::mm::Vma, start: u64, end: u64) -> Option<Blocked> {
    let c = ctx_with(v, UFFD_FEATURE_EVENT_REMOVE)?;
    let key = queue_event(s.k, &c, s.tid, remove_msg(UFFD_EVENT_REMOVE, start, end), None)?;
    event_wait(&[key]).map(|b| Blocked { retry: true, ..b })
}

/// Sends the gathered events and returns the wait for them to be read (the syscall's
/// result `rax` is set in the caller's registers first).
pub fn events_complete(s: &mut Sys, ev: PendingEvents, rax: u64) -> SysResult {
    let mut keys = Vec::new();
    for (c, msg) in ev.0 {
        if let Some(k) = queue_event(s.k, &c, s.tid, msg, None) {
            keys.push(k);
        }
    }
    match event_wait(&keys) {
        Some(b) => {
            s.regs().gpr[crate::cpu::reg::RAX] = rax;
            Ok(Ret::Block(b))
        }
        None => ok(rax),
    }
}

/// mremap of a registered VMA (Linux: mremap_userfaultfd_prep/complete and the
/// CVE-2025-21696 fix): after the move, with EVENT_REMAP a REMAP(from, to, old_len)
/// event; without it the moved range loses its registration and every uffd-wp bit
/// (present PTEs, swap entries; markers dropped). Then UNMAP of the vacated source for
/// a context with EVENT_UNMAP, when it was unmapped (`unmapped`: not with MREMAP_DONTUNMAP).
#[allow(clippy::too_many_arguments)]
pub fn mremap_events(k: &mut Kernel, hw: &mut Hw, mm: MmId, ctx: Option<Rc<UffdCtx>>, from: u64, to: u64, old_len: u64, new_len: u64, mut unmapped: bool, merged_into_source: Option<(u64, u64)>, ev: &mut PendingEvents) {
    let Some(c) = ctx else { return };
    if c.features() & UFFD_FEATURE_EVENT_REMAP != 0 && !c.st.borrow().released {
        ev.0.push((c.clone(), remap_msg(from, to, old_len)));
    } else {
        clear_after_move(k, hw, mm, to, to + new_len);
        // The registration went from the source's VMA before its unmap when the new VMA
        // merged into it (measured: a never-faulted range moved next to the rest of its
        // VMA gets no UNMAP, a faulted one, whose pgoff keeps it apart, does), and from
        // the part of that VMA that stays (its PTEs keep their uffd-wp bits:
        // userfaultfd_reset_ctx touches the VMA only).
        if let Some((vs, ve)) = merged_into_source {
            unmapped = false;
            if let Some(m) = k.mms.get_mut(mm).and_then(|m| m.as_mut()) {
                for key in m.vmas_in(vs, ve) {
                    let v = m.vmas.get_mut(&key).unwrap();
                    if vma_ctx(v).is_some_and(|x| Rc::ptr_eq(&x, &c)) {
                        v.flags.remove(VM_UFFD_FLAGS);
                        v.userfaultfd_ctx = None;
                    }
                }
            }
        }
    }
    if unmapped && c.features() & UFFD_FEATURE_EVENT_UNMAP != 0 && !c.st.borrow().released {
        ev.0.push((c, remove_msg(UFFD_EVENT_UNMAP, from, from + old_len)));
    }
}

/// Drops uffd-wp state from a moved range (move_ptes with need_clear_uffd_wp) and the
/// registration of the VMA it is now part of (mremap_userfaultfd_prep on the new VMA,
/// which copy_vma may have merged with registered neighbours at the destination: the
/// whole merged VMA loses it, measured with a MREMAP_DONTUNMAP move inside one VMA).
fn clear_after_move(k: &mut Kernel, hw: &mut Hw, mm_id: MmId, start: u64, end: u64) {
    let Some(mm) = k.mms.get_mut(mm_id).and_then(|m| m.as_mut()) else { return };
    crate::kernel::mm::userfaultfd::clear_uffd_wp_range(mm, hw, start, end);
    for key in mm.vmas_in(start, end) {
        let v = mm.vmas.get_mut(&key).unwrap();
        v.flags.remove(VM_UFFD_FLAGS);
        v.userfaultfd_ctx = None;
    }
}
