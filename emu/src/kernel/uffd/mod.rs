//! userfaultfd, the file side (Linux: fs/userfaultfd.c). The memory side — filling pages
//! and write-protecting ranges — is `mm::userfaultfd` (Linux: mm/userfaultfd.c).
//!
//! A context ([`UffdCtx`], Linux's `struct userfaultfd_ctx`) belongs to one address space
//! (`mm`, held by id: the context outlives it, and its ioctls then answer ESRCH/ENOMEM).
//! VMAs registered with it hold an [`UffdRef`] (Linux: `vm_userfaultfd_ctx`); the file
//! holds another. Faults in a registered VMA that need the monitor (`handle_userfault`)
//! queue a [`Waiter`] carrying the 32-byte `uffd_msg` on `fault_pending` and park the
//! faulting thread on the waiter's own wait key; `read()` moves waiters to `fault_read`
//! (Linux refiles them from fault_pending_wqh to fault_wqh); a wake whose range covers the
//! waiter's address removes it and wakes the thread, which re-executes the faulting
//! instruction (Linux retries the whole fault after VM_FAULT_RETRY) — and faults again if
//! nothing was resolved.
//!
//! Release: dropping the last description (close, exit) queues the context on
//! `Kernel::uffd.released`; `process_released`, run after the exit that dropped it and so
//! before the closing thread returns to user mode (Linux's fput runs as task work on the
//! way out), clears every registration of the context, un-protecting uffd-wp ranges, and
//! wakes every waiter (userfaultfd_release).

use super::errno::{Errno, KResult};
use super::file::{Fd, File, FileKind, WaitQueue, EPOLLERR, EPOLLHUP, EPOLLIN};
use super::hw::Hw;
use super::mm::memory::{KernelFault, UffdReason};
use super::mm::{MmId, VmFlags, MMAP_MIN_ADDR, TASK_SIZE};
use super::syscall::{ok, Ret, Sys, SysResult};
use super::task::{Blocked, Tid, WaitKey, WaitWhat};
use super::Kernel;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::{Rc, Weak};

// ---- UAPI (include/uapi/linux/userfaultfd.h) ----

pub const UFFD_API: u64 = 0xAA;
pub const UFFD_USER_MODE_ONLY: u32 = 1;
const O_NONBLOCK: u32 = 0o4000;
const O_CLOEXEC: u32 = 0o2000000;

pub const UFFDIO_API: u32 = 0xC018_AA3F;
pub const UFFDIO_REGISTER: u32 = 0xC020_AA00;
pub const UFFDIO_UNREGISTER: u32 = 0x8010_AA01;
pub const UFFDIO_WAKE: u32 = 0x8010_AA02;
pub const UFFDIO_COPY: u32 = 0xC028_AA03;
pub const UFFDIO_ZEROPAGE: u32 = 0xC020_AA04;
pub const UFFDIO_MOVE: u32 = 0xC028_AA05;
pub const UFFDIO_WRITEPROTECT: u32 = 0xC018_AA06;
pub const UFFDIO_CONTINUE: u32 = 0xC020_AA07;
pub const UFFDIO_POISON: u32 = 0xC020_AA08;
/// On /dev/userfaultfd: `_IO(0xAA, 0x00)`.
pub const USERFAULTFD_IOC_NEW: u32 = 0xAA00;

pub const UFFD_FEATURE_PAGEFAULT_FLAG_WP: u64 = 1 << 0;
pub const UFFD_FEATURE_EVENT_FORK: u64 = 1 << 1;
pub const UFFD_FEATURE_EVENT_REMAP: u64 = 1 << 2;
pub const UFFD_FEATURE_EVENT_REMOVE: u64 = 1 << 3;
pub const UFFD_FEATURE_MISSING_HUGETLBFS: u64 = 1 << 4;
pub const UFFD_FEATURE_MISSING_SHMEM: u64 = 1 << 5;
pub const UFFD_FEATURE_EVENT_UNMAP: u64 = 1 << 6;
pub const UFFD_FEATURE_SIGBUS: u64 = 1 << 7;
pub const UFFD_FEATURE_THREAD_ID: u64 = 1 << 8;
pub const UFFD_FEATURE_MINOR_SHMEM: u64 = 1 << 10;
pub const UFFD_FEATURE_EXACT_ADDRESS: u64 = 1 << 11;
pub const UFFD_FEATURE_WP_HUGETLBFS_SHMEM: u64 = 1 << 12;
pub const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
pub const UFFD_FEATURE_POISON: u64 = 1 << 14;
pub const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
pub const UFFD_FEATURE_MOVE: u64 = 1 << 16;

/// The features pagelab implements, which UFFDIO_API reports (Linux reports 0x1FFFF on
/// 6.18; MISSING_HUGETLBFS, MINOR_HUGETLBFS and WP_ASYNC are not here yet, and asking for
/// one is EINVAL as for any unsupported feature). WP_HUGETLBFS_SHMEM stands for the shmem
/// half only until hugetlbfs exists.
pub const UFFD_API_FEATURES: u64 = UFFD_FEATURE_PAGEFAULT_FLAG_WP
    | UFFD_FEATURE_MISSING_SHMEM
    | UFFD_FEATURE_MINOR_SHMEM
    | UFFD_FEATURE_WP_HUGETLBFS_SHMEM
    | UFFD_FEATURE_WP_UNPOPULATED
    | UFFD_FEATURE_EVENT_FORK
    | UFFD_FEATURE_EVENT_REMAP
    | UFFD_FEATURE_EVENT_REMOVE
    | UFFD_FEATURE_EVENT_UNMAP
    | UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS | UFFD_FEATURE_POISON | UFFD_FEATURE_MOVE;

pub const _UFFDIO_REGISTER: u64 = 0;
pub const _UFFDIO_UNREGISTER: u64 = 1;
pub const _UFFDIO_WAKE: u64 = 2;
pub const _UFFDIO_COPY: u64 = 3;
pub const _UFFDIO_ZEROPAGE: u64 = 4;
pub const _UFFDIO_MOVE: u64 = 5;
pub const _UFFDIO_WRITEPROTECT: u64 = 6;
pub const _UFFDIO_CONTINUE: u64 = 7;
pub const _UFFDIO_POISON: u64 = 8;
pub const _UFFDIO_API: u64 = 63;
/// What UFFDIO_API returns in `ioctls`: 0x8000000000000003.
pub const UFFD_API_IOCTLS: u64 = 1 << _UFFDIO_REGISTER | 1 << _UFFDIO_UNREGISTER | 1 << _UFFDIO_API;
pub const UFFD_API_RANGE_IOCTLS: u64 =
    1 << _UFFDIO_WAKE | 1 << _UFFDIO_COPY | 1 << _UFFDIO_ZEROPAGE | 1 << _UFFDIO_MOVE | 1 << _UFFDIO_WRITEPROTECT | 1 << _UFFDIO_CONTINUE | 1 << _UFFDIO_POISON;
/// For ranges that contain hugetlb (not modelled yet, kept for the mask's definition).
pub const UFFD_API_RANGE_IOCTLS_BASIC: u64 = 1 << _UFFDIO_WAKE | 1 << _UFFDIO_COPY | 1 << _UFFDIO_WRITEPROTECT | 1 << _UFFDIO_CONTINUE | 1 << _UFFDIO_POISON;

pub const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
pub const UFFDIO_REGISTER_MODE_WP: u64 = 2;
pub const UFFDIO_REGISTER_MODE_MINOR: u64 = 4;
pub const UFFDIO_COPY_MODE_DONTWAKE: u64 = 1;
pub const UFFDIO_COPY_MODE_WP: u64 = 2;
pub const UFFDIO_ZEROPAGE_MODE_DONTWAKE: u64 = 1;
pub const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1;
pub const UFFDIO_WRITEPROTECT_MODE_DONTWAKE: u64 = 2;
pub const UFFDIO_CONTINUE_MODE_DONTWAKE: u64 = 1;
pub const UFFDIO_CONTINUE_MODE_WP: u64 = 2;
pub const UFFDIO_POISON_MODE_DONTWAKE: u64 = 1;
pub const UFFDIO_MOVE_MODE_DONTWAKE: u64 = 1;

pub const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
pub const UFFD_EVENT_FORK: u8 = 0x13;
pub const UFFD_EVENT_REMAP: u8 = 0x14;
pub const UFFD_EVENT_REMOVE: u8 = 0x15;
pub const UFFD_EVENT_UNMAP: u8 = 0x16;

pub const UFFD_PAGEFAULT_FLAG_WRITE: u64 = 1;
pub const UFFD_PAGEFAULT_FLAG_WP: u64 = 2;
pub const UFFD_PAGEFAULT_FLAG_MINOR: u64 = 4;

/// The VM_UFFD_* flags (Linux: __VM_UFFD_FLAGS).
pub const VM_UFFD_FLAGS: VmFlags = VmFlags::UFFD_MISSING.union(VmFlags::UFFD_WP).union(VmFlags::UFFD_MINOR);

/// A `struct uffd_msg`: 32 bytes, zero-filled before use (msg_init).
pub type Msg = [u8; 32];

// ---- The context ----

/// A fault waiting for the monitor (Linux: struct userfaultfd_wait_queue on the stack of
/// handle_userfault). The faulting thread sleeps on `WaitKey::Obj(key)`.
#[derive(Clone, Debug)]
pub struct Waiter {
    pub key: u64,
    pub tid: Tid,
    pub msg: Msg,
    /// msg.arg.pagefault.address: what wake ranges are matched against.
    pub address: u64,
}

/// A non-cooperative event waiting to be read (Linux: userfaultfd_wait_queue on
/// event_wqh). The thread that caused it sleeps on `WaitKey::Obj(key)` until it is read.
pub struct EventWaiter {
    pub key: u64,
    pub tid: Tid,
    pub msg: Msg,
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

/// A VMA's (or the file's) reference to a context. Equal when it names the same context,
/// which is what vma_merge and the EBUSY check compare.
#[derive(Clone)]
pub struct UffdRef(pub Rc<UffdCtx>);

impl PartialEq for UffdRef {
    fn eq(&self, o: &Self) -> bool {
        Rc::ptr_eq(&self.0, &o.0)
    }
}
impl Eq for UffdRef {}
impl std::fmt::Debug for UffdRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uffd#{}", self.0.id)
    }
}
impl std::ops::Deref for UffdRef {
    type Target = UffdCtx;
    fn deref(&self) -> &UffdCtx {
        &self.0
    }
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

fn put_u64(m: &mut [u8], off: usize, v: u64) {
    m[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

// ---- Creation ----

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

fn new_ctx(k: &mut Kernel, mm: MmId, user_mode_only: bool) -> Rc<UffdCtx> {
    let id = k.new_obj_id();
    Rc::new(UffdCtx { id, wq: WaitQueue::new(k), mm: std::cell::Cell::new(mm), user_mode_only, released_q: k.uffd.released.clone(), st: RefCell::new(CtxState::default()) })
}

fn install_file(s: &mut Sys, ctx: Rc<UffdCtx>, flags: u32) -> SysResult {
    let f = File::new(FileKind::Userfaultfd(UffdFile(ctx)), flags & O_NONBLOCK);
    let fd = Fd { file: Rc::new(RefCell::new(f)), cloexec: flags & O_CLOEXEC != 0 };
    ok(s.files().borrow_mut().install(fd, 0).ok_or(Errno::EMFILE)? as u64)
}

/// userfaultfd(2). The caller is root (CAP_SYS_PTRACE), so the unprivileged_userfaultfd
/// check passes.
pub fn sys_userfaultfd(s: &mut Sys, flags: u32) -> SysResult {
    new_userfaultfd(s, flags)
}

/// ioctl on /dev/userfaultfd (Linux: userfaultfd_dev_ioctl): USERFAULTFD_IOC_NEW makes a
/// context with the flags given as the argument; anything else is EINVAL.
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

// ---- ioctl ----

/// Linux: validate_unaligned_range (UFFDIO_COPY's source: no mmap_min_addr check, so a
/// NULL source is EFAULT from the copy, as natively).
pub fn validate_unaligned_range(start: u64, len: u64) -> KResult<()> {
    if len & 0xfff != 0 || len == 0 || start >= TASK_SIZE || len > TASK_SIZE - start {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// Linux: validate_range (page-aligned start at or above mmap_min_addr, then the
/// unaligned rules).
pub fn validate_range(start: u64, len: u64) -> KResult<()> {
    if start & 0xfff != 0 || start < MMAP_MIN_ADDR {
        return Err(Errno::EINVAL);
    }
    validate_unaligned_range(start, len)
}

/// The context's address space is still alive (Linux: mmget_not_zero(ctx->mm)).
pub fn mm_alive(k: &Kernel, ctx: &UffdCtx) -> bool {
    k.mms.get(ctx.mm.get()).is_some_and(|m| m.as_ref().is_some_and(|m| m.users > 0))
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
    let mut b = [0u8; 24];
    s.copy_from_user(arg, &mut b)?;
    let api = get_u64(&b, 0);
    let mut features = get_u64(&b, 8);
    let err = 'check: {
        if api != UFFD_API {
            break 'check Errno::EINVAL;
        }
        // EVENT_FORK needs CAP_SYS_PTRACE: the guest runs as root.
        if features & UFFD_FEATURE_WP_ASYNC != 0 {
            features |= UFFD_FEATURE_WP_UNPOPULATED;
        }
        if features & !UFFD_API_FEATURES != 0 {
            break 'check Errno::EINVAL;
        }
        let mut out = [0u8; 24];
        put_u64(&mut out, 0, UFFD_API);
        put_u64(&mut out, 8, UFFD_API_FEATURES);
        put_u64(&mut out, 16, UFFD_API_IOCTLS);
        s.copy_to_user(arg, &out)?;
        let mut st = ctx.st.borrow_mut();
        if st.initialized {
            drop(st);
            break 'check Errno::EINVAL;
        }
        st.initialized = true;
        st.features = features;
        return ok(0);
    };
    s.copy_to_user(arg, &[0u8; 24])?;
    Err(err)
}

/// Linux: vma_can_userfault for the modes in `vm_flags` (no WP_ASYNC: pagelab does not
/// offer it). Anonymous and shmem VMAs are capable; MINOR needs shmem (or hugetlb).
pub fn vma_can_userfault(v: &super::mm::Vma, vm_flags: VmFlags) -> bool {
    let vm_flags = vm_flags & VM_UFFD_FLAGS;
    let shmem = v.is_shmem();
    if vm_flags.contains(VmFlags::UFFD_MINOR) && !shmem {
        return false;
    }
    v.is_anonymous() || shmem
}

/// Linux: userfaultfd_register.
fn userfaultfd_register(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    let mut b = [0u8; 24];
    s.copy_from_user(arg, &mut b)?;
    let (start, len, mode) = (get_u64(&b, 0), get_u64(&b, 8), get_u64(&b, 16));
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
    let me = UffdRef(ctx.clone());
    let mm = s.k.mms[ctx.mm.get()].as_mut().unwrap();
    let keys = mm.vmas_in(start, end);
    if keys.is_empty() {
        return Err(Errno::EINVAL);
    }
    for k in &keys {
        let v = &mm.vmas[k];
        if !vma_can_userfault(v, vm_flags) {
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
        mm.split_at(a);
        mm.split_at(z);
        for k in mm.vmas_in(a, z) {
            let v = mm.vmas.get_mut(&k).unwrap();
            v.flags = (v.flags - VM_UFFD_FLAGS) | vm_flags;
            v.userfaultfd_ctx = Some(me.clone());
        }
        mm.merge_around(a, z);
    }
    let mut ioctls = UFFD_API_RANGE_IOCTLS;
    if mode & UFFDIO_REGISTER_MODE_WP == 0 {
        ioctls &= !(1 << _UFFDIO_WRITEPROTECT);
    }
    if mode & UFFDIO_REGISTER_MODE_MINOR == 0 {
        ioctls &= !(1 << _UFFDIO_CONTINUE);
    }
    s.copy_to_user(arg + 24, &ioctls.to_le_bytes())?;
    ok(0)
}

/// Linux: userfaultfd_unregister.
fn userfaultfd_unregister(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    let mut b = [0u8; 16];
    s.copy_from_user(arg, &mut b)?;
    let (start, len) = (get_u64(&b, 0), get_u64(&b, 8));
    validate_range(start, len)?;
    let end = start + len;
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ENOMEM);
    }
    let me = UffdRef(ctx.clone());
    let mm = s.k.mms[ctx.mm.get()].as_ref().unwrap();
    let keys = mm.vmas_in(start, end);
    if keys.is_empty() {
        return Err(Errno::EINVAL);
    }
    for k in &keys {
        let v = &mm.vmas[k];
        // "userfaultfd: prevent unregistering VMAs through a different userfaultfd".
        if v.userfaultfd_ctx.as_ref().is_some_and(|c| *c != me) {
            return Err(Errno::EINVAL);
        }
        if !vma_can_userfault(v, v.flags) {
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
    mm.split_at(start);
    mm.split_at(end);
    for key in mm.vmas_in(start, end) {
        let v = mm.vmas[&key].clone();
        if v.flags.has(VmFlags::UFFD_WP) {
            // Un-protecting allocates nothing: it cannot fail.
            let _ = super::mm::userfaultfd::uffd_wp_range(mm, hw, &v, v.start, v.end, false);
        }
        let v = mm.vmas.get_mut(&key).unwrap();
        v.flags.remove(VM_UFFD_FLAGS);
        v.userfaultfd_ctx = None;
    }
    mm.merge_around(start, end);
}

/// Linux: userfaultfd_wake.
fn userfaultfd_wake(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    let mut b = [0u8; 16];
    s.copy_from_user(arg, &mut b)?;
    let (start, len) = (get_u64(&b, 0), get_u64(&b, 8));
    validate_range(start, len)?;
    wake_userfault(s.k, ctx, start, len);
    ok(0)
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

/// The result of an mfill ioctl with its output field (`copy`, `zeropage`, `mapped`):
/// Linux's put_user(ret, ...) then the return value.
fn mfill_result(s: &mut Sys, ctx: &UffdCtx, out_va: u64, res: KResult<u64>, dst: u64, len: u64, dontwake: bool) -> SysResult {
    let v: i64 = match res {
        Ok(n) => n as i64,
        Err(e) => -(e.0 as i64),
    };
    s.copy_to_user(out_va, &v.to_le_bytes())?;
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

/// EAGAIN while a non-cooperative event is unread, written to the output field too.
fn mmap_changing(s: &mut Sys, ctx: &UffdCtx, out_va: Option<u64>) -> KResult<()> {
    if ctx.st.borrow().mmap_changing == 0 {
        return Ok(());
    }
    if let Some(va) = out_va {
        s.copy_to_user(va, &(-(Errno::EAGAIN.0 as i64)).to_le_bytes())?;
    }
    Err(Errno::EAGAIN)
}

/// Linux: userfaultfd_copy.
fn userfaultfd_copy(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    mmap_changing(s, ctx, Some(arg + 32))?;
    let mut b = [0u8; 32];
    s.copy_from_user(arg, &mut b)?;
    let (dst, src, len, mode) = (get_u64(&b, 0), get_u64(&b, 8), get_u64(&b, 16), get_u64(&b, 24));
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
    let res = super::mm::userfaultfd::mfill_atomic(s, ctx, dst, len, super::mm::userfaultfd::Mfill::Copy { src, wp });
    mfill_result(s, ctx, arg + 32, res, dst, len, mode & UFFDIO_COPY_MODE_DONTWAKE != 0)
}

/// Linux: userfaultfd_zeropage.
fn userfaultfd_zeropage(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    mmap_changing(s, ctx, Some(arg + 24))?;
    let mut b = [0u8; 24];
    s.copy_from_user(arg, &mut b)?;
    let (dst, len, mode) = (get_u64(&b, 0), get_u64(&b, 8), get_u64(&b, 16));
    validate_range(dst, len)?;
    if mode & !UFFDIO_ZEROPAGE_MODE_DONTWAKE != 0 {
        return Err(Errno::EINVAL);
    }
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ESRCH);
    }
    let res = super::mm::userfaultfd::mfill_atomic(s, ctx, dst, len, super::mm::userfaultfd::Mfill::Zeropage);
    mfill_result(s, ctx, arg + 24, res, dst, len, mode & UFFDIO_ZEROPAGE_MODE_DONTWAKE != 0)
}

/// Linux: userfaultfd_continue. Only shmem and hugetlb have a page cache to map from;
/// pagelab's registered VMAs that are not anonymous are shmem, which has no MINOR
/// support yet, so a registered destination answers EINVAL (as anonymous memory does).
fn userfaultfd_continue(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    mmap_changing(s, ctx, Some(arg + 24))?;
    let mut b = [0u8; 24];
    s.copy_from_user(arg, &mut b)?;
    let (dst, len, mode) = (get_u64(&b, 0), get_u64(&b, 8), get_u64(&b, 16));
    validate_range(dst, len)?;
    if mode & !(UFFDIO_CONTINUE_MODE_DONTWAKE | UFFDIO_CONTINUE_MODE_WP) != 0 {
        return Err(Errno::EINVAL);
    }
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ESRCH);
    }
    let wp = mode & UFFDIO_CONTINUE_MODE_WP != 0;
    let res = super::mm::userfaultfd::mfill_atomic(s, ctx, dst, len, super::mm::userfaultfd::Mfill::Continue { wp });
    mfill_result(s, ctx, arg + 24, res, dst, len, mode & UFFDIO_CONTINUE_MODE_DONTWAKE != 0)
}

/// Linux: userfaultfd_poison.
fn userfaultfd_poison(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    mmap_changing(s, ctx, Some(arg + 24))?;
    let mut b = [0u8; 24];
    s.copy_from_user(arg, &mut b)?;
    let (dst, len, mode) = (get_u64(&b, 0), get_u64(&b, 8), get_u64(&b, 16));
    validate_range(dst, len)?;
    if mode & !UFFDIO_POISON_MODE_DONTWAKE != 0 {
        return Err(Errno::EINVAL);
    }
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ESRCH);
    }
    let res = super::mm::userfaultfd::mfill_atomic(s, ctx, dst, len, super::mm::userfaultfd::Mfill::Poison);
    mfill_result(s, ctx, arg + 24, res, dst, len, mode & UFFDIO_POISON_MODE_DONTWAKE != 0)
}

/// Linux: userfaultfd_move.
fn userfaultfd_move(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    mmap_changing(s, ctx, Some(arg + 32))?;
    let mut b = [0u8; 32];
    s.copy_from_user(arg, &mut b)?;
    let (dst, src, len, mode) = (get_u64(&b, 0), get_u64(&b, 8), get_u64(&b, 16), get_u64(&b, 24));
    validate_range(dst, len)?;
    validate_range(src, len)?;
    if mode & !(UFFDIO_MOVE_MODE_DONTWAKE | super::mm::userfaultfd::UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES) != 0 {
        return Err(Errno::EINVAL);
    }
    if !mm_alive(s.k, ctx) {
        return Err(Errno::ESRCH);
    }
    let mm = s.k.mms[ctx.mm.get()].as_mut().unwrap();
    let res = super::mm::userfaultfd::move_pages(mm, s.hw, ctx, dst, src, len, mode);
    mfill_result(s, ctx, arg + 32, res, dst, len, mode & UFFDIO_MOVE_MODE_DONTWAKE != 0)
}

/// Linux: userfaultfd_writeprotect.
fn userfaultfd_writeprotect(s: &mut Sys, ctx: &Rc<UffdCtx>, arg: u64) -> SysResult {
    mmap_changing(s, ctx, None)?;
    let mut b = [0u8; 24];
    s.copy_from_user(arg, &mut b)?;
    let (start, len, mode) = (get_u64(&b, 0), get_u64(&b, 8), get_u64(&b, 16));
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
    super::mm::userfaultfd::mwriteprotect_range(mm, s.hw, start, len, mode_wp)?;
    if !mode_wp && !dontwake {
        wake_userfault(s.k, ctx, start, len);
    }
    ok(0)
}

// ---- read ----

/// Linux: userfaultfd_read / userfaultfd_ctx_read. Whole messages, as many as fit;
/// pending faults before events, oldest first; blocks (retried wait) only for the first.
pub fn userfaultfd_read(s: &mut Sys, ctx: &Rc<UffdCtx>, nonblock: bool, fd: i32, buf: u64, count: u64) -> SysResult {
    if !ctx.st.borrow().initialized {
        return Err(Errno::EINVAL);
    }
    let mut done = 0u64;
    let mut no_wait = nonblock;
    loop {
        if count - done < 32 {
            return if done > 0 { ok(done) } else { Err(Errno::EINVAL) };
        }
        match ctx_read_one(s, ctx) {
            Some((msg, fork)) => {
                let mut msg = msg;
                if let Some(nctx) = fork {
                    // resolve_userfault_fork: the child's context gets a file and a
                    // descriptor in the reader's table, with this file's flags.
                    let flags = s.files().borrow().get(fd).map(|f| f.file.borrow().flags).unwrap_or(0) & O_NONBLOCK;
                    let cloexec = s.files().borrow().get(fd).is_some_and(|f| f.cloexec);
                    let f = File::new(FileKind::Userfaultfd(UffdFile(nctx)), flags);
                    let nfd = Fd { file: Rc::new(RefCell::new(f)), cloexec };
                    match s.files().borrow_mut().install(nfd, 0) {
                        Some(n) => msg[8..12].copy_from_slice(&(n as u32).to_le_bytes()),
                        None => return if done > 0 { ok(done) } else { Err(Errno::EMFILE) },
                    }
                }
                if s.copy_to_user(buf + done, &msg).is_err() {
                    return if done > 0 { ok(done) } else { Err(Errno::EFAULT) };
                }
                tracing::debug!(target: "pagelab::uffd", uffd = ctx.id, event = msg[0] as u64, flags = get_u64(&msg, 8), address = format_args!("{:#x}", get_u64(&msg, 16)), "message read");
                done += 32;
                no_wait = true;
            }
            None => {
                if done > 0 {
                    return ok(done);
                }
                if s.signal_pending() {
                    return Err(Errno::ERESTARTSYS);
                }
                if no_wait {
                    return Err(Errno::EAGAIN);
                }
                return s.block_retry(vec![ctx.wq.key()], WaitWhat::Read { fd }, None);
            }
        }
    }
}

/// One message: the oldest pending fault (refiled as read), else the oldest event (a
/// non-fork event completes: its thread is woken and mmap_changing drops).
fn ctx_read_one(s: &mut Sys, ctx: &Rc<UffdCtx>) -> Option<(Msg, Option<Rc<UffdCtx>>)> {
    let mut st = ctx.st.borrow_mut();
    if let Some(w) = st.fault_pending.pop_front() {
        let msg = w.msg;
        st.fault_read.push(w);
        return Some((msg, None));
    }
    let e = st.events.pop_front()?;
    st.mmap_changing = st.mmap_changing.saturating_sub(1);
    drop(st);
    s.k.uffd.waiters.remove(&e.key);
    s.k.wake(WaitKey::Obj(e.key));
    Some((e.msg, e.fork_ctx))
}

// ---- release ----

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
        let me = UffdRef(ctx.clone());
        let ranges: Vec<(u64, u64)> = k.mms[ctx.mm.get()].as_ref().unwrap().vmas.values().filter(|v| v.userfaultfd_ctx.as_ref() == Some(&me)).map(|v| (v.start, v.end)).collect();
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
            let ranges: Vec<(u64, u64)> = k.mms.get(n.mm.get()).and_then(|m| m.as_ref()).map(|m| m.vmas.values().filter(|v| v.userfaultfd_ctx.as_ref().is_some_and(|c| Rc::ptr_eq(&c.0, &n))).map(|v| (v.start, v.end)).collect()).unwrap_or_default();
            for (a, z) in ranges {
                userfaultfd_clear_vma(k, hw, n.mm.get(), a, z);
            }
        }
    }
    ctx.wq.wake_up_poll(EPOLLHUP);
}

// ---- handle_userfault ----

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
    let Some(ctx) = k.mms[mm_id].as_ref().and_then(|m| m.find_vma(addr)).and_then(|v| v.userfaultfd_ctx.clone()) else {
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
    let address = if features & UFFD_FEATURE_EXACT_ADDRESS != 0 { addr } else { addr & !0xfff };
    let mut msg: Msg = [0; 32];
    msg[0] = UFFD_EVENT_PAGEFAULT;
    let mut flags = 0;
    if write {
        flags |= UFFD_PAGEFAULT_FLAG_WRITE;
    }
    match reason {
        UffdReason::Missing => {}
        UffdReason::Wp => flags |= UFFD_PAGEFAULT_FLAG_WP,
        UffdReason::Minor => flags |= UFFD_PAGEFAULT_FLAG_MINOR,
    }
    put_u64(&mut msg, 8, flags);
    put_u64(&mut msg, 16, address);
    if features & UFFD_FEATURE_THREAD_ID != 0 {
        msg[24..28].copy_from_slice(&(tid as u32).to_le_bytes());
    }
    let key = k.new_obj_id();
    ctx.st.borrow_mut().fault_pending.push_back(Waiter { key, tid, msg, address });
    k.uffd.waiters.insert(key, Rc::downgrade(&ctx.0));
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

/// `/proc/PID/fdinfo` lines for a userfaultfd (Linux: userfaultfd_show_fdinfo).
pub fn show_fdinfo(ctx: &UffdCtx) -> String {
    let (pending, total) = ctx.counts();
    let st = ctx.st.borrow();
    format!("pending:\t{pending}\ntotal:\t{total}\nAPI:\t{:x}:{:x}:{:x}\n", UFFD_API, st.features | if st.initialized { 1 << 31 } else { 0 }, UFFD_API_IOCTLS | UFFD_API_RANGE_IOCTLS)
}

// ---- Non-cooperative events ----

/// Queues an event on `ctx` for the current thread (Linux: userfaultfd_event_wait_completion
/// up to its sleep): mmap_changing goes up until it is read. None if the context is gone.
fn queue_event(k: &mut Kernel, ctx: &Rc<UffdCtx>, tid: Tid, msg: Msg, fork_ctx: Option<Rc<UffdCtx>>) -> Option<u64> {
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
    tracing::debug!(target: "pagelab::uffd", uffd = ctx.id, tid, event = msg[0] as u64, waiter = key, "event queued");
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
/// EVENT_FORK: a new, initialised context with the same features for the child.
pub fn dup_userfaultfd(k: &mut Kernel, parent: MmId) -> Vec<(Rc<UffdCtx>, Rc<UffdCtx>)> {
    let mut octxs: Vec<Rc<UffdCtx>> = Vec::new();
    if let Some(mm) = k.mms[parent].as_ref() {
        for v in mm.vmas.values() {
            if let Some(c) = &v.userfaultfd_ctx {
                if c.features() & UFFD_FEATURE_EVENT_FORK != 0 && !c.st.borrow().released && !octxs.iter().any(|o| Rc::ptr_eq(o, &c.0)) {
                    octxs.push(c.0.clone());
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
    k.uffd.fork_pending = out.clone();
    out
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
        let mut msg: Msg = [0; 32];
        msg[0] = UFFD_EVENT_FORK;
        if let Some(k) = queue_event(s.k, &o, s.tid, msg, Some(n)) {
            keys.push(k);
        }
    }
    event_wait(&keys)
}

/// A VMA's context if it asked for `feature`.
fn ctx_with(v: &super::mm::Vma, feature: u64) -> Option<Rc<UffdCtx>> {
    v.userfaultfd_ctx.as_ref().filter(|c| c.features() & feature != 0 && !c.st.borrow().released).map(|c| c.0.clone())
}

fn range_msg(event: u8, a: u64, b: u64, c: u64) -> Msg {
    let mut msg: Msg = [0; 32];
    msg[0] = event;
    put_u64(&mut msg, 8, a);
    put_u64(&mut msg, 16, b);
    put_u64(&mut msg, 24, c);
    msg
}

/// Events gathered before an mm change and sent after it.
#[derive(Default)]
pub struct PendingEvents(Vec<(Rc<UffdCtx>, Msg)>);

impl PendingEvents {
    /// The mremap order seen natively: the UNMAP of `early` (the MREMAP_FIXED
    /// destination, unmapped first), then REMAP, then the UNMAP of the source.
    pub fn mremap_order(self, early: PendingEvents) -> PendingEvents {
        let (remap, rest): (Vec<_>, Vec<_>) = self.0.into_iter().partition(|(_, m)| m[0] == UFFD_EVENT_REMAP);
        PendingEvents(early.0.into_iter().chain(remap).chain(rest).collect())
    }
}

/// Linux: userfaultfd_unmap_prep over [start, end): one UNMAP event per context with
/// EVENT_UNMAP among the VMAs there (the range is the whole unmap request).
pub fn unmap_prep(k: &Kernel, mm: MmId, start: u64, end: u64, ev: &mut PendingEvents) {
    let Some(m) = k.mms[mm].as_ref() else { return };
    for key in m.vmas_in(start, end) {
        if let Some(c) = ctx_with(&m.vmas[&key], UFFD_FEATURE_EVENT_UNMAP) {
            if !ev.0.iter().any(|(o, msg)| Rc::ptr_eq(o, &c) && msg[0] == UFFD_EVENT_UNMAP && get_u64(msg, 8) == start && get_u64(msg, 16) == end) {
                ev.0.push((c, range_msg(UFFD_EVENT_UNMAP, start, end, 0)));
            }
        }
    }
}

/// Linux: userfaultfd_remove for MADV_DONTNEED / MADV_FREE: a REMOVE event per VMA of a
/// context with EVENT_REMOVE, for the part of [start, end) in it. (Linux sends it before
/// the zap and zaps once it is read; here the zap happens first and the caller then
/// waits: the monitor sees the same event, the same order, the same waiting.)
pub fn remove_prep(k: &Kernel, mm: MmId, start: u64, end: u64, ev: &mut PendingEvents) {
    let Some(m) = k.mms[mm].as_ref() else { return };
    for key in m.vmas_in(start, end) {
        let v = &m.vmas[&key];
        if let Some(c) = ctx_with(v, UFFD_FEATURE_EVENT_REMOVE) {
            ev.0.push((c, range_msg(UFFD_EVENT_REMOVE, v.start.max(start), v.end.min(end), 0)));
        }
    }
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
/// a context with EVENT_UNMAP.
#[allow(clippy::too_many_arguments)]
pub fn mremap_events(k: &mut Kernel, hw: &mut Hw, mm: MmId, ctx: Option<Rc<UffdCtx>>, from: u64, to: u64, old_len: u64, new_len: u64, ev: &mut PendingEvents) {
    let Some(c) = ctx else { return };
    if c.features() & UFFD_FEATURE_EVENT_REMAP != 0 && !c.st.borrow().released {
        ev.0.push((c.clone(), range_msg(UFFD_EVENT_REMAP, from, to, old_len)));
    } else {
        clear_after_move(k, hw, mm, to, to + new_len);
    }
    if c.features() & UFFD_FEATURE_EVENT_UNMAP != 0 && !c.st.borrow().released {
        ev.0.push((c, range_msg(UFFD_EVENT_UNMAP, from, from + old_len, 0)));
    }
}

/// Drops uffd-wp state and registrations from a moved range (move_ptes with
/// need_clear_uffd_wp, then userfaultfd_reset_ctx).
fn clear_after_move(k: &mut Kernel, hw: &mut Hw, mm_id: MmId, start: u64, end: u64) {
    let Some(mm) = k.mms.get_mut(mm_id).and_then(|m| m.as_mut()) else { return };
    super::mm::userfaultfd::clear_uffd_wp_range(mm, hw, start, end);
    mm.split_at(start);
    mm.split_at(end);
    for key in mm.vmas_in(start, end) {
        let v = mm.vmas.get_mut(&key).unwrap();
        v.flags.remove(VM_UFFD_FLAGS);
        v.userfaultfd_ctx = None;
    }
    mm.merge_around(start, end);
}

/// An UNMAP event for [start, end) on behalf of the context that had the VMA at `at`
/// (used for an mremap that shrinks in place; the VMA at `at` keeps the context).
pub fn unmap_prep_ctx(ev: &mut PendingEvents, k: &Kernel, mm: MmId, at: u64, start: u64, end: u64) {
    let Some(m) = k.mms[mm].as_ref() else { return };
    if let Some(c) = m.find_vma(at).and_then(|v| ctx_with(v, UFFD_FEATURE_EVENT_UNMAP)) {
        ev.0.push((c, range_msg(UFFD_EVENT_UNMAP, start, end, 0)));
    }
}
