//! The context and its file (Linux: fs/userfaultfd.c — struct userfaultfd_ctx,
//! new_userfaultfd and the userfaultfd(2) syscall, /dev/userfaultfd, the file's poll,
//! fdinfo and release).

use super::fault::wake_userfault;
use super::ioctl::userfaultfd_clear_vma;
use super::uapi::*;
use crate::kernel::errno::Errno;
use crate::kernel::file::{Fd, File, FileKind, WaitQueue, EPOLLERR, EPOLLHUP, EPOLLIN};
use crate::kernel::hw::Hw;
use crate::kernel::mm::{MmId, UserfaultfdCtx, Vma, VmUserfaultfdCtx};
use crate::kernel::syscall::{ok, Sys, SysResult};
use crate::kernel::task::{Tid, WaitKey};
use crate::kernel::Kernel;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::{Rc, Weak};

/// UFFD_NONBLOCK and UFFD_CLOEXEC: the open flags' values.
pub(super) const O_NONBLOCK: u32 = 0o4000;
pub(super) const O_CLOEXEC: u32 = 0o2000000;

/// A fault waiting for the monitor (Linux: struct userfaultfd_wait_queue on the stack of
/// handle_userfault). The faulting thread sleeps on `WaitKey::Obj(key)`.
#[derive(Clone, Debug)]
pub struct Waiter {
    pub key: u64,
    pub tid: Tid,
    pub msg: UffdMsg,
    /// msg.arg.pagefault.address: what wake ranges are matched against.
    pub address: u64,
}

/// A non-cooperative event waiting to be read (Linux: userfaultfd_wait_queue on
/// event_wqh). The thread that caused it sleeps on `WaitKey::Obj(key)` until it is read.
pub struct EventWaiter {
    pub key: u64,
    pub tid: Tid,
    pub msg: UffdMsg,
    /// For UFFD_EVENT_FORK: the child's context, given a file and descriptor at read time.
    pub fork_ctx: Option<Rc<UffdCtx>>,
}

#[derive(Default)]
pub struct CtxState {
    /// UFFDIO_API succeeded (Linux: UFFD_FEATURE_INITIALIZED in ctx->features).
    pub initialized: bool,
    /// The requested features.
    pub features: u64,
    /// The file was released (userfaultfd_release ran or is about to).
    pub released: bool,
    /// Unread non-cooperative events (Linux: ctx->mmap_changing): fill and write-protect
    /// ioctls answer EAGAIN while it is non-zero.
    pub mmap_changing: u32,
    /// Faults not yet read, oldest first (fault_pending_wqh).
    pub fault_pending: VecDeque<Waiter>,
    /// Faults read and not yet woken (fault_wqh).
    pub fault_read: Vec<Waiter>,
    /// Events not yet read, oldest first (event_wqh).
    pub events: VecDeque<EventWaiter>,
}

/// Linux: struct userfaultfd_ctx.
pub struct UffdCtx {
    pub id: u64,
    /// fd_wqh: readers and pollers of the file.
    pub wq: WaitQueue,
    /// The address space whose faults this context receives (set after the fact for the
    /// child's context of a fork: its mm gets its id once copied).
    pub mm: std::cell::Cell<MmId>,
    /// UFFD_USER_MODE_ONLY: kernel-mode faults are not delivered (EFAULT for the access).
    pub user_mode_only: bool,
    released_q: Rc<RefCell<Vec<Rc<UffdCtx>>>>,
    pub st: RefCell<CtxState>,
}

impl UffdCtx {
    pub fn features(&self) -> u64 {
        self.st.borrow().features
    }

    /// Linux: userfaultfd_poll. POLLERR before the handshake and on a blocking file (poll
    /// cannot promise that read will not block: a fault can be woken before it is read);
    /// otherwise POLLIN while a fault or an event is pending.
    pub fn poll(&self, nonblock: bool) -> u32 {
        let st = self.st.borrow();
        if !st.initialized || !nonblock {
            return EPOLLERR;
        }
        if !st.fault_pending.is_empty() || !st.events.is_empty() {
            EPOLLIN
        } else {
            0
        }
    }

    /// Faults queued and not read, and all faults still waiting (fdinfo's pending/total).
    pub fn counts(&self) -> (usize, usize) {
        let st = self.st.borrow();
        (st.fault_pending.len(), st.fault_pending.len() + st.fault_read.len())
    }
}

/// What mm asks of a registered VMA's context.
impl UserfaultfdCtx for UffdCtx {
    fn wp_unpopulated(&self) -> bool {
        self.features() & UFFD_FEATURE_WP_UNPOPULATED != 0
    }
    fn wp_async(&self) -> bool {
        self.features() & UFFD_FEATURE_WP_ASYNC != 0
    }
}

impl std::fmt::Debug for UffdCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uffd#{}", self.id)
    }
}

/// The reference a VMA registered with `ctx` holds (Linux: vm_userfaultfd_ctx).
pub fn vm_ctx(ctx: &Rc<UffdCtx>) -> VmUserfaultfdCtx {
    VmUserfaultfdCtx::new(ctx.clone())
}

/// The context a VMA is registered with.
pub fn vma_ctx(v: &Vma) -> Option<Rc<UffdCtx>> {
    v.userfaultfd_ctx.as_ref().map(|c| c.downcast().expect("a VMA's userfaultfd context is a UffdCtx"))
}

/// The file payload of a userfaultfd descriptor. Dropping it (the last description went)
/// queues the context for `process_released`.
pub struct UffdFile(pub Rc<UffdCtx>);

impl Drop for UffdFile {
    fn drop(&mut self) {
        self.0.st.borrow_mut().released = true;
        self.0.released_q.borrow_mut().push(self.0.clone());
    }
}

/// The kernel's userfaultfd bookkeeping.
#[derive(Default)]
pub struct UffdKernel {
    /// Contexts whose file was released, waiting for `process_released`.
    pub released: Rc<RefCell<Vec<Rc<UffdCtx>>>>,
    /// Every queued waiter (faults and events) by its wait key, so that a waiter woken
    /// by something else than its context (a signal) leaves its queue (handle_userfault's
    /// list_del after schedule()).
    pub waiters: BTreeMap<u64, Weak<UffdCtx>>,
    /// The number of tasks at the last exit (a change triggers `prune_dead_waiters`).
    pub tasks_seen: usize,
    /// (parent context, child context) pairs of the fork in progress (dup_userfaultfd).
    pub fork_pending: Vec<(Rc<UffdCtx>, Rc<UffdCtx>)>,
}

/// Linux: new_userfaultfd. The file is O_RDONLY (write is EBADF) with O_NONBLOCK kept in
/// its status flags; O_CLOEXEC goes to the descriptor.
pub fn new_userfaultfd(s: &mut Sys, flags: u32) -> SysResult {
    if flags & !(O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY) != 0 {
        return Err(Errno::EINVAL);
    }
    let mm = s.k.tasks[&s.tid].mm;
    let ctx = new_ctx(s.k, mm, flags & UFFD_USER_MODE_ONLY != 0);
    install_file(s, ctx, flags)
}

pub(super) fn new_ctx(k: &mut Kernel, mm: MmId, user_mode_only: bool) -> Rc<UffdCtx> {
    let id = k.new_obj_id();
    Rc::new(UffdCtx { id, wq: WaitQueue::new(k), mm: std::cell::Cell::new(mm), user_mode_only, released_q: k.uffd.released.clone(), st: RefCell::new(CtxState::default()) })
}

fn install_file(s: &mut Sys, ctx: Rc<UffdCtx>, flags: u32) -> SysResult {
    let f = File::new(FileKind::Userfaultfd(UffdFile(ctx)), flags & O_NONBLOCK);
    let fd = Fd { file: Rc::new(RefCell::new(f)), cloexec: flags & O_CLOEXEC != 0 };
    ok(s.files().borrow_mut().install(fd, 0).ok_or(Errno::EMFILE)? as u64)
}

/// userfaultfd(2) (Linux: userfaultfd_syscall_allowed, before the flags are checked):
/// without UFFD_USER_MODE_ONLY the context could handle kernel faults, which takes
/// CAP_SYS_PTRACE, vm.unprivileged_userfaultfd being 0: EPERM.
pub fn sys_userfaultfd(s: &mut Sys, flags: u32) -> SysResult {
    if flags & UFFD_USER_MODE_ONLY == 0 && !crate::kernel::capability::capable(s, crate::kernel::capability::CAP_SYS_PTRACE) {
        return Err(Errno::EPERM);
    }
    new_userfaultfd(s, flags)
}

/// ioctl on /dev/userfaultfd (Linux: userfaultfd_dev_ioctl): USERFAULTFD_IOC_NEW makes a
/// context with the flags given as the argument, with no capability check (opening the
/// device was the permission); anything else is EINVAL.
pub fn dev_ioctl(s: &mut Sys, cmd: u32, arg: u64) -> SysResult {
    if cmd != USERFAULTFD_IOC_NEW {
        return Err(Errno::EINVAL);
    }
    new_userfaultfd(s, arg as u32)
}

/// Opens /dev/userfaultfd (a misc character device; the caller is root).
pub fn open_dev(s: &mut Sys, flags: u32) -> SysResult {
    let f = File::new(FileKind::DevUserfaultfd, flags & (3 | O_NONBLOCK));
    let fd = Fd { file: Rc::new(RefCell::new(f)), cloexec: flags & O_CLOEXEC != 0 };
    ok(s.files().borrow_mut().install(fd, 0).ok_or(Errno::EMFILE)? as u64)
}

/// The context's address space is still alive (Linux: mmget_not_zero(ctx->mm)).
pub fn mm_alive(k: &Kernel, ctx: &UffdCtx) -> bool {
    k.mms.get(ctx.mm.get()).is_some_and(|m| m.as_ref().is_some_and(|m| m.users > 0))
}

/// `/proc/PID/fdinfo` lines for a userfaultfd (Linux: userfaultfd_show_fdinfo).
pub fn show_fdinfo(ctx: &UffdCtx) -> String {
    let (pending, total) = ctx.counts();
    let st = ctx.st.borrow();
    format!("pending:\t{pending}\ntotal:\t{total}\nAPI:\t{:x}:{:x}:{:x}\n", UFFD_API, st.features | if st.initialized { 1 << 31 } else { 0 }, UFFD_API_IOCTLS | UFFD_API_RANGE_IOCTLS)
}

/// Runs userfaultfd_release for every context whose file went since the last call.
pub fn process_released(k: &mut Kernel, hw: &mut Hw) {
    loop {
        let v: Vec<Rc<UffdCtx>> = std::mem::take(&mut *k.uffd.released.borrow_mut());
        if v.is_empty() {
            return;
        }
        for ctx in v {
            userfaultfd_release(k, hw, &ctx);
        }
    }
}

/// Linux: userfaultfd_release. Clears the registrations (un-protecting wp ranges), then
/// wakes every fault and event waiter and the pollers (EPOLLHUP).
fn userfaultfd_release(k: &mut Kernel, hw: &mut Hw, ctx: &Rc<UffdCtx>) {
    ctx.st.borrow_mut().released = true;
    tracing::debug!(target: "pagelab::uffd", uffd = ctx.id, "release");
    if mm_alive(k, ctx) {
        let ranges: Vec<(u64, u64)> = k.mms[ctx.mm.get()].as_ref().unwrap().vmas.values().filter(|v| v.userfaultfd_ctx.as_ref().is_some_and(|c| c.is(&**ctx))).map(|v| (v.start, v.end)).collect();
        for (a, z) in ranges {
            userfaultfd_clear_vma(k, hw, ctx.mm.get(), a, z);
        }
    }
    wake_userfault(k, ctx, 0, 0);
    let events: Vec<EventWaiter> = {
        let mut st = ctx.st.borrow_mut();
        st.mmap_changing = 0;
        st.events.drain(..).collect()
    };
    for e in events {
        k.uffd.waiters.remove(&e.key);
        k.wake(WaitKey::Obj(e.key));
        if let Some(n) = e.fork_ctx {
            // The child's context was never handed out: its registrations go too
            // (userfaultfd_event_wait_completion's release_new_ctx).
            let ranges: Vec<(u64, u64)> = k.mms.get(n.mm.get()).and_then(|m| m.as_ref()).map(|m| m.vmas.values().filter(|v| v.userfaultfd_ctx.as_ref().is_some_and(|c| c.is(&*n))).map(|v| (v.start, v.end)).collect()).unwrap_or_default();
            for (a, z) in ranges {
                userfaultfd_clear_vma(k, hw, n.mm.get(), a, z);
            }
        }
    }
    ctx.wq.wake_up_poll(EPOLLHUP);
}
