//! The fault side (Linux: fs/userfaultfd.c handle_userfault, userfaultfd_wake_function,
//! wake_userfault): a fault in a registered VMA that needs the monitor queues a message
//! and parks the faulting thread until a wake covers its address.

use super::ctx::{vma_ctx, UffdCtx, Waiter};
use super::uapi::*;
use crate::kernel::errno::Errno;
use crate::kernel::file::EPOLLIN;
use crate::kernel::hw::Hw;
use crate::kernel::mm::memory::{KernelFault, UffdReason};
use crate::kernel::syscall::{Ret, Sys, SysResult};
use crate::kernel::task::{Blocked, Tid, WaitKey, WaitWhat};
use crate::kernel::Kernel;
use std::rc::Rc;

/// What handle_userfault decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Userfault {
    /// VM_FAULT_SIGBUS: SIGBUS for a user access, EFAULT for a kernel one.
    Sigbus,
    /// VM_FAULT_NOPAGE: just retry the access (released context).
    Retry,
    /// Queued; the waiter's key (the caller parks the thread on it).
    Queued(u64),
}

/// Linux: handle_userfault (fs/userfaultfd.c), up to the point where it sleeps: the
/// SIGBUS and USER_MODE_ONLY answers, the message (address page-aligned unless
/// EXACT_ADDRESS, ptid with THREAD_ID), the waiter queued and the readers woken. The
/// must_wait re-check (userfaultfd_must_wait) is trivially true here: nothing can run
/// between handle_mm_fault's decision and this point, the guest kernel being atomic
/// with respect to the guest.
pub fn handle_userfault(k: &mut Kernel, hw: &mut Hw, tid: Tid, addr: u64, write: bool, user: bool, reason: UffdReason) -> Userfault {
    let mm_id = k.tasks[&tid].mm;
    let _ = hw;
    let Some(vma) = k.mms[mm_id].as_ref().and_then(|m| m.find_vma(addr)) else {
        return Userfault::Sigbus;
    };
    // vmf->address: page-aligned, which for hugetlb means huge-page aligned
    // (hugetlb_handle_userfault).
    let page_mask = !(vma.page_size() - 1);
    let Some(ctx) = vma_ctx(vma) else {
        return Userfault::Sigbus;
    };
    let features = ctx.features();
    if features & UFFD_FEATURE_SIGBUS != 0 {
        return Userfault::Sigbus;
    }
    if !user && ctx.user_mode_only {
        return Userfault::Sigbus;
    }
    if ctx.st.borrow().released {
        return Userfault::Retry;
    }
    let address = if features & UFFD_FEATURE_EXACT_ADDRESS != 0 { addr } else { addr & page_mask };
    let mut flags = 0;
    if write {
        flags |= UFFD_PAGEFAULT_FLAG_WRITE;
    }
    match reason {
        UffdReason::Missing => {}
        UffdReason::Wp => flags |= UFFD_PAGEFAULT_FLAG_WP,
        UffdReason::Minor => flags |= UFFD_PAGEFAULT_FLAG_MINOR,
    }
    let ptid = if features & UFFD_FEATURE_THREAD_ID != 0 { tid as u32 } else { 0 };
    let mut msg = UffdMsg { event: UFFD_EVENT_PAGEFAULT, ..Default::default() };
    msg.arg.set(UffdMsgPagefault { flags, address, ptid, _pad: 0 });
    let key = k.new_obj_id();
    ctx.st.borrow_mut().fault_pending.push_back(Waiter { key, tid, msg, address });
    k.uffd.waiters.insert(key, Rc::downgrade(&ctx));
    tracing::debug!(target: "pagelab::uffd", uffd = ctx.id, tid, flags, address = format_args!("{address:#x}"), user, waiter = key, "message queued");
    ctx.wq.wake_up_poll(EPOLLIN);
    Userfault::Queued(key)
}

/// A user-mode fault that needs the monitor: queue the message and park the thread. The
/// wait is neither retried nor completed: the thread's RIP is still on the faulting
/// instruction, which simply runs again when it is woken (by a wake of its range, by
/// close, or by a signal, whose handler runs first). Returns true for SIGBUS.
pub fn user_fault(k: &mut Kernel, hw: &mut Hw, addr: u64, write: bool, reason: UffdReason) -> bool {
    let tid = k.current(hw);
    match handle_userfault(k, hw, tid, addr, write, true, reason) {
        Userfault::Sigbus => true,
        Userfault::Retry => false,
        Userfault::Queued(key) => {
            let b = Blocked {
                on: vec![WaitKey::Obj(key)],
                what: WaitWhat::Userfault { uffd: -1, addr },
                deadline: None,
                interruptible: true,
                retry: false,
                on_signal: Errno::EINTR,
                seq: 0,
            };
            k.block_current(hw, b, None);
            false
        }
    }
}

/// A fault a syscall took on user memory that needs the monitor (recorded by uaccess in
/// `Hw::uffd_kfault`). pagelab cannot sleep inside a copy, so the syscall is re-executed
/// once the fault is resolved: the result `r` is dropped and the caller parked as a
/// retried wait on the waiter's key. A call that already transferred something keeps
/// its (short) result instead. With USER_MODE_ONLY or the SIGBUS feature the access
/// simply fails (EFAULT), as in Linux.
pub fn kernel_fault(s: &mut Sys, f: KernelFault, r: SysResult) -> SysResult {
    if let Ok(Ret::Val(v)) = &r {
        if (*v as i64) > 0 {
            return r;
        }
    }
    if !matches!(r, Err(_) | Ok(Ret::Val(_))) {
        return r;
    }
    // The wait is killable only (Linux: userfaultfd_get_blocking_state gives
    // TASK_INTERRUPTIBLE to user faults alone): a signal does not end it, it is delivered
    // when the syscall, re-executed after the resolve, has completed.
    match handle_userfault(s.k, s.hw, s.tid, f.addr, f.write, false, f.reason) {
        Userfault::Sigbus | Userfault::Retry => r,
        Userfault::Queued(key) => Ok(Ret::Block(Blocked {
            on: vec![WaitKey::Obj(key)],
            what: WaitWhat::Userfault { uffd: -1, addr: f.addr },
            deadline: None,
            interruptible: false,
            retry: true,
            on_signal: Errno::EINTR,
            seq: 0,
        })),
    }
}

/// Linux: wake_userfault / userfaultfd_wake_function. Wakes every fault of the context
/// (read or not) whose address lies in [start, start+len); len 0 wakes all. Woken waiters
/// leave the queues: if their fault is not resolved they fault again and queue a new
/// message.
pub fn wake_userfault(k: &mut Kernel, ctx: &UffdCtx, start: u64, len: u64) {
    let hit = |w: &Waiter| len == 0 || (w.address >= start && w.address - start < len);
    let mut woken = Vec::new();
    {
        let mut st = ctx.st.borrow_mut();
        st.fault_pending.retain(|w| {
            let h = hit(w);
            if h {
                woken.push(w.key);
            }
            !h
        });
        st.fault_read.retain(|w| {
            let h = hit(w);
            if h {
                woken.push(w.key);
            }
            !h
        });
    }
    for key in woken {
        k.uffd.waiters.remove(&key);
        tracing::debug!(target: "pagelab::uffd", uffd = ctx.id, waiter = key, "wake");
        k.wake(WaitKey::Obj(key));
    }
}

/// Removes a waiter whose thread was woken by something else than its context (a
/// signal): the fault will be re-raised, with a new message (Linux: the list_del at the
/// end of handle_userfault). Called by the scheduler's wake_task for userfault waits.
pub fn waiter_woken(k: &mut Kernel, keys: &[WaitKey]) {
    for key in keys {
        let WaitKey::Obj(id) = key else { continue };
        let Some(ctx) = k.uffd.waiters.remove(id).and_then(|w| w.upgrade()) else { continue };
        let mut st = ctx.st.borrow_mut();
        st.fault_pending.retain(|w| w.key != *id);
        st.fault_read.retain(|w| w.key != *id);
        // An event waiter (never interruptible except by death) leaves too.
        st.events.retain(|e| e.key != *id);
    }
}

/// Drops the waiters whose thread is gone (killed or exited while blocked: Linux's
/// handle_userfault removes its entry when the dying task wakes), so that read and poll
/// never report a fault nobody waits for.
pub fn prune_dead_waiters(k: &mut Kernel) {
    let dead: Vec<u64> = k
        .uffd
        .waiters
        .keys()
        .copied()
        .filter(|key| !k.tasks.values().any(|t| t.blocked.as_ref().is_some_and(|b| b.on.contains(&WaitKey::Obj(*key)))))
        .collect();
    for key in dead {
        waiter_woken(k, &[WaitKey::Obj(key)]);
    }
}
