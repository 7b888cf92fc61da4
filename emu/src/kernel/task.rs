//! Tasks (Linux: struct task_struct) and thread groups (struct signal_struct). A thread's
//! registers live in its vCPU while it runs and in `regs` while it does not.
//!
//! A blocked task carries a [`Blocked`]: the wait keys that wake it, what it waits on (for
//! the deadlock report), an optional deadline in virtual time, and how it resumes. Most
//! blocking syscalls *retry*: the task is parked with RIP back on its SYSCALL instruction
//! and RAX = the syscall number, so a wake simply re-executes the call, which finds its
//! deadline and wake reason in [`Restart`]. A few waits (futex) are *completed* by the
//! waker instead, which writes the result into RAX.

use super::file::FdTable;
use super::mm::MmId;
use super::signal::{SigPending, SigInfo};
use crate::cpu::CpuState;
use std::cell::RefCell;
use std::rc::Rc;

pub type Tid = i32;

/// Linux's k_sigaction as rt_sigaction exchanges it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// On the run queue or on a vCPU.
    Runnable,
    /// Parked; see `Task::blocked`.
    Blocked,
    /// Stopped by SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU until SIGCONT.
    Stopped,
    /// Exited; the thread-group leader stays as a zombie until reaped.
    Zombie,
}

/// What wakes a blocked task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WaitKey {
    /// A futex word (see `syscall::futex`).
    Futex(FutexKey),
    /// A kernel object whose state changed (pipe, eventfd, epoll, userfaultfd ...), by id.
    Obj(u64),
    /// A child of this thread group changed state (wait4/waitid).
    Child(Tid),
    /// The vfork child with this tid exited or exec'd.
    VforkDone(Tid),
}

/// A futex's identity: (address space, address) for private mappings, (shared object,
/// offset) for MAP_SHARED memory, so that processes sharing memory share futexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FutexKey {
    /// A FUTEX_PRIVATE_FLAG futex.
    Private { mm: MmId, addr: u64 },
    /// A futex without FUTEX_PRIVATE_FLAG in private (anonymous or COW) memory. Linux keys
    /// it like a private one but with FUT_OFF_MMSHARED set, so a private waiter is not
    /// woken by a shared wake of the same word, nor the other way round.
    MmShared { mm: MmId, addr: u64 },
    Shared { object: u64, offset: u64 },
}

/// What a blocked task waits on, as the deadlock report names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitWhat {
    Futex { uaddr: u64 },
    Read { fd: i32 },
    Write { fd: i32 },
    Poll { fds: Vec<i32> },
    Epoll { epfd: i32 },
    Wait { pid: i32 },
    Sleep,
    SigSuspend,
    SigTimedWait,
    Vfork { child: Tid },
    Userfault { uffd: i32, addr: u64 },
    Other(&'static str),
}

impl std::fmt::Display for WaitWhat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitWhat::Futex { uaddr } => write!(f, "futex wait on {uaddr:#x}"),
            WaitWhat::Read { fd } => write!(f, "read on fd {fd}"),
            WaitWhat::Write { fd } => write!(f, "write on fd {fd}"),
            WaitWhat::Poll { fds } => write!(f, "poll on fds {fds:?}"),
            WaitWhat::Epoll { epfd } => write!(f, "epoll_wait on fd {epfd}"),
            WaitWhat::Wait { pid } => write!(f, "wait for child {pid}"),
            WaitWhat::Sleep => write!(f, "sleep"),
            WaitWhat::SigSuspend => write!(f, "sigsuspend"),
            WaitWhat::SigTimedWait => write!(f, "sigtimedwait"),
            WaitWhat::Vfork { child } => write!(f, "vfork until child {child} exits"),
            WaitWhat::Userfault { uffd, addr } => write!(f, "userfault on {addr:#x} (uffd {uffd})"),
            WaitWhat::Other(s) => write!(f, "{s}"),
        }
    }
}

/// Why a blocked task was woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeReason {
    /// One of its wait keys fired (or a waker completed it).
    Event,
    /// Its deadline passed.
    Timeout,
    /// A signal it does not block arrived.
    Signal,
}

/// A parked task.
#[derive(Clone, Debug)]
pub struct Blocked {
    pub on: Vec<WaitKey>,
    pub what: WaitWhat,
    /// Virtual-time deadline (ns), if the wait has a timeout.
    pub deadline: Option<u64>,
    /// Signals wake the task (TASK_INTERRUPTIBLE); false for uninterruptible waits.
    pub interruptible: bool,
    /// Re-execute the syscall on wake (see the module doc); false: the waker completes it.
    pub retry: bool,
    /// For completed waits: the errno RAX gets when a signal interrupts the wait
    /// (ERESTARTSYS for futex).
    pub on_signal: super::errno::Errno,
    /// Sequence number, so a stale timer does not wake a later wait.
    pub seq: u64,
}

/// See `Task::uaccess_progress`: the syscall (number and original arguments) and the bytes
/// it had moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UaccessProgress {
    pub nr: u64,
    pub args: [u64; 6],
    pub done: u64,
}

/// See `Task::madvise_progress`: the call's arguments and where its REMOVE event was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadviseProgress {
    pub args: [u64; 6],
    pub at: u64,
}

/// Handed to a re-executed syscall: the deadline it computed the first time and why it
/// was woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restart {
    pub nr: u64,
    pub args: [u64; 6],
    pub deadline: Option<u64>,
    pub reason: Option<WakeReason>,
}

/// An alternate signal stack (sigaltstack).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AltStack {
    pub sp: u64,
    pub flags: u32,
    pub size: u64,
}

/// The last exception's trap number, error code and CR2 (Linux: thread_struct's trap_nr,
/// error_code, cr2), which a signal frame's sigcontext reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    pub trap_nr: u64,
    pub error_code: u64,
    pub cr2: u64,
}

pub struct Task {
    pub tid: Tid,
    /// Thread-group (process) id.
    pub tgid: Tid,
    pub mm: MmId,
    pub regs: CpuState,
    pub state: TaskState,
    pub blocked: Option<Blocked>,
    pub restart: Option<Restart>,
    pub files: Rc<RefCell<FdTable>>,
    pub sigactions: Rc<RefCell<[SigAction; 64]>>,
    pub sigmask: u64,
    /// The mask to restore after a handler run from sigsuspend/pselect/ppoll/epoll_pwait
    /// (Linux: saved_sigmask with TIF_RESTORE_SIGMASK).
    pub saved_sigmask: Option<u64>,
    /// The mask before rt_sigtimedwait unblocked the signals it waits for (Linux:
    /// real_blocked); 0 when not waiting. Signals in it are never dropped as ignored.
    pub real_blocked: u64,
    /// Signals sent to this thread.
    pub pending: SigPending,
    pub altstack: AltStack,
    pub clear_child_tid: u64,
    pub robust_list: (u64, u64),
    pub exit_code: i32,
    /// The syscall number at entry (orig_rax), for restarts.
    pub orig_rax: u64,
    /// vfork parent to release when this task exits (CLONE_VFORK).
    pub vfork_parent: Option<Tid>,
    /// Guest instructions this thread retired (user time).
    pub utime: u64,
    /// Page faults this thread took that completed (Linux: min_flt, maj_flt, counted by
    /// mm_account_fault); pagelab's are all minor (nothing comes from a disk).
    pub min_flt: u64,
    pub maj_flt: u64,
    /// Woken from a resolved userfault wait: the faulting access is being retried, and
    /// its completion counts as a fault — at its next fault, or at its next system call if
    /// the retried access no longer faults.
    pub fault_retried: bool,
    /// A read or write whose copy stopped at a userfault after moving `done` bytes: it is
    /// re-executed from where it stopped once the fault is resolved, and returns the sum
    /// (Linux sleeps inside the copy and finishes it).
    pub uaccess_progress: Option<UaccessProgress>,
    /// An madvise that drops memory (DONTNEED, FREE, REMOVE) waiting for the REMOVE event
    /// of the VMA part starting at `at`: re-executed, it drops that part (without a second
    /// event) and goes on (`syscall::mm::madvise_walk_remove`).
    pub madvise_progress: Option<MadviseProgress>,
    /// The vCPUs this thread may run on (sched_setaffinity), bit i = vCPU i.
    pub cpus_allowed: u64,
    /// Kernel time when it last became runnable: it starts on a vCPU no earlier.
    pub ready_at: u64,
    /// The vCPU it last ran on (a wake-up prefers it when it is idle, as Linux's
    /// select_idle_sibling prefers the previous CPU).
    pub last_vcpu: Option<usize>,
    /// For the sigcontext of the next signal frame.
    pub trap: TrapInfo,
    /// Its capability sets (Linux: the cred's; see `capability`).
    pub caps: super::capability::Caps,
}

impl Task {
    pub fn new(tid: Tid, tgid: Tid, mm: MmId, regs: CpuState) -> Self {
        Self {
            tid,
            tgid,
            mm,
            regs,
            state: TaskState::Runnable,
            blocked: None,
            restart: None,
            files: Rc::new(RefCell::new(FdTable::default())),
            sigactions: Rc::new(RefCell::new([SigAction::default(); 64])),
            sigmask: 0,
            saved_sigmask: None,
            real_blocked: 0,
            pending: SigPending::default(),
            altstack: AltStack { sp: 0, flags: 2, size: 0 },
            clear_child_tid: 0,
            robust_list: (0, 0),
            exit_code: 0,
            orig_rax: 0,
            vfork_parent: None,
            utime: 0,
            min_flt: 0,
            maj_flt: 0,
            fault_retried: false,
            uaccess_progress: None,
            madvise_progress: None,
            cpus_allowed: u64::MAX,
            ready_at: 0,
            last_vcpu: None,
            trap: TrapInfo::default(),
            caps: super::capability::Caps::ROOT,
        }
    }
}

/// An interval timer (setitimer/alarm): the next expiry and the reload interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ITimer {
    /// ITIMER_REAL: absolute virtual ns; ITIMER_VIRTUAL/PROF: process user time (ns) at
    /// which it fires. 0 = disarmed.
    pub value: u64,
    pub interval: u64,
}

/// A thread group (Linux: struct signal_struct plus the process parts of task_struct).
pub struct Process {
    pub tgid: Tid,
    pub ppid: Tid,
    pub pgid: Tid,
    pub sid: Tid,
    /// Live and zombie threads, in creation order; the leader first.
    pub threads: Vec<Tid>,
    /// Process-directed signals (kill).
    pub shared_pending: SigPending,
    /// Set once the group is exiting or has exited: the wait status word (Linux's
    /// encoding: code << 8, or signal | 0x80 for a core dump).
    pub exit_status: Option<i32>,
    /// Exited and not yet reaped.
    pub zombie: bool,
    /// Group stop in effect (SIGSTOP) and whether the parent has been told (WUNTRACED).
    pub stopped: Option<i32>,
    pub stop_reported: bool,
    /// SIGCONT happened and the parent has not seen it (WCONTINUED).
    pub continued: bool,
    /// ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF.
    pub itimers: [ITimer; 3],
    /// Instructions retired by the group's threads (user time), reaped children included
    /// in `cutime`.
    pub utime: u64,
    pub cutime: u64,
    /// Page faults of the group's threads, live and exited (Linux: the sum getrusage
    /// makes of signal->min_flt and each thread's), and of reaped children
    /// (signal->cmin_flt, cmaj_flt).
    pub min_flt: u64,
    pub maj_flt: u64,
    pub cmin_flt: u64,
    pub cmaj_flt: u64,
    /// The signal the parent gets when this process exits (SIGCHLD for fork).
    pub exit_signal: i32,
    /// Pending siginfo for waitid, etc., kept by the exit path.
    pub last_siginfo: Option<SigInfo>,
    /// The leader's capability sets once it exited: a zombie leader keeps its pid, and
    /// capget still finds its credentials, until reaped.
    pub leader_caps: super::capability::Caps,
}

impl Process {
    pub fn new(tgid: Tid, ppid: Tid) -> Self {
        Self {
            tgid,
            ppid,
            pgid: tgid,
            sid: tgid,
            threads: vec![tgid],
            shared_pending: SigPending::default(),
            exit_status: None,
            zombie: false,
            stopped: None,
            stop_reported: false,
            continued: false,
            itimers: [ITimer::default(); 3],
            utime: 0,
            cutime: 0,
            min_flt: 0,
            maj_flt: 0,
            cmin_flt: 0,
            cmaj_flt: 0,
            exit_signal: 17,
            last_siginfo: None,
            leader_caps: super::capability::Caps::ROOT,
        }
    }
}
