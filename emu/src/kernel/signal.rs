//! Signals, the generic part (Linux: kernel/signal.c): signals are generated, queued, and
//! taken on the way back to user mode — for a handler, which the x86 side runs through its
//! rt_sigframe (`kernel::arch::signal`), or for the default action (terminate, core,
//! ignore, stop, continue), which is applied here. Faults and exceptions reach
//! `force_sig_fault` from the arch entry (`kernel::arch::fault`, `kernel::arch::traps`);
//! interval timers are `kernel::itimer`.
//!
//! - Generation (`send_signal_locked`): `prepare_signal` applies the stop/continue side
//!   effects and drops ignored signals; the signal is queued on the thread's or the
//!   group's pending set (a standard signal only once, real-time signals each time);
//!   `complete_signal` picks a thread that does not block it, kills the whole group at once
//!   for an unhandled fatal signal, or wakes the thread when it is parked.
//! - Delivery (`get_signal`): the arch loop (`arch::signal::exit_to_user`, Linux's
//!   arch_do_signal_or_restart) takes signals one at a time from here; each handler gets a
//!   frame on top of the previous one, so the last one delivered runs first, as in Linux.
//!   Once a frame is written, `signal_delivered` installs the handler's mask.
//! - Syscall restart is the arch loop's (see `kernel::arch::signal`).

use super::hw::Hw;
use super::task::{SigAction, Task, TaskState, Tid, WaitKey, WakeReason};
use super::Kernel;
use crate::Outcome;

pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGQUIT: i32 = 3;
pub const SIGILL: i32 = 4;
pub const SIGTRAP: i32 = 5;
pub const SIGABRT: i32 = 6;
pub const SIGBUS: i32 = 7;
pub const SIGFPE: i32 = 8;
pub const SIGKILL: i32 = 9;
pub const SIGUSR1: i32 = 10;
pub const SIGSEGV: i32 = 11;
pub const SIGUSR2: i32 = 12;
pub const SIGPIPE: i32 = 13;
pub const SIGALRM: i32 = 14;
pub const SIGTERM: i32 = 15;
pub const SIGCHLD: i32 = 17;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;
pub const SIGTSTP: i32 = 20;
pub const SIGTTIN: i32 = 21;
pub const SIGTTOU: i32 = 22;
pub const SIGURG: i32 = 23;
pub const SIGXCPU: i32 = 24;
pub const SIGXFSZ: i32 = 25;
pub const SIGVTALRM: i32 = 26;
pub const SIGPROF: i32 = 27;
pub const SIGWINCH: i32 = 28;
pub const SIGIO: i32 = 29;
pub const SIGSYS: i32 = 31;
pub const SIGRTMIN: i32 = 32;
pub const NSIG: i32 = 64;

pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const BUS_ADRALN: i32 = 1;
pub const BUS_ADRERR: i32 = 2;
pub const ILL_ILLOPN: i32 = 2;
pub const FPE_INTDIV: i32 = 1;
pub const TRAP_BRKPT: i32 = 1;
pub const TRAP_TRACE: i32 = 2;
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_QUEUE: i32 = -1;
pub const SI_TIMER: i32 = -2;
pub const SI_TKILL: i32 = -6;

pub const SIG_DFL: u64 = 0;
pub const SIG_IGN: u64 = 1;
pub const SA_NOCLDSTOP: u64 = 1;
pub const SA_NOCLDWAIT: u64 = 2;
pub const SA_SIGINFO: u64 = 4;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;
/// The sa_flags rt_sigaction keeps (Linux: UAPI_SA_FLAGS, with SA_EXPOSE_TAGBITS and x86's
/// SA_RESTORER); unknown bits read back as clear, which is how programs probe for flags.
pub const UAPI_SA_FLAGS: u64 = SA_NOCLDSTOP | SA_NOCLDWAIT | SA_SIGINFO | SA_ONSTACK | SA_RESTART | SA_NODEFER | SA_RESETHAND | 0x800 | SA_RESTORER;

pub const SS_ONSTACK: u32 = 1;
pub const SS_DISABLE: u32 = 2;
pub const SS_AUTODISARM: u32 = 1 << 31;
pub const MINSIGSTKSZ: u64 = 2048;

/// The bit of `sig` in a sigset.
pub const fn sigmask(sig: i32) -> u64 {
    1u64 << (sig - 1)
}
const fn mask_of(sigs: &[i32]) -> u64 {
    let mut m = 0;
    let mut i = 0;
    while i < sigs.len() {
        m |= sigmask(sigs[i]);
        i += 1;
    }
    m
}
/// Signals that can be neither caught, blocked nor ignored.
pub const KERNEL_ONLY_MASK: u64 = mask_of(&[SIGKILL, SIGSTOP]);
/// Default action: stop the group.
const STOP_MASK: u64 = mask_of(&[SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU]);
/// Default action: nothing (SIGCONT's continue happens at generation).
const IGNORE_MASK: u64 = mask_of(&[SIGCONT, SIGCHLD, SIGWINCH, SIGURG]);
/// Default action: terminate with a core dump (Linux: SIG_KERNEL_COREDUMP_MASK).
const COREDUMP_MASK: u64 = mask_of(&[SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ, SIGSYS]);
/// Dequeued before other signals (Linux: SYNCHRONOUS_MASK), so a fault is handled first.
const SYNCHRONOUS_MASK: u64 = mask_of(&[SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGSYS]);

/// A queued signal with what its siginfo reports (Linux: struct kernel_siginfo). The
/// fields used depend on `code` and `signo`, as in Linux's union (see `siginfo_bytes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigInfo {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    /// Sender pid (kill, tgkill, SIGCHLD) and uid.
    pub pid: i32,
    pub uid: u32,
    /// Fault address (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP).
    pub addr: u64,
    /// SIGCHLD: exit code or signal.
    pub status: i32,
    /// SIGCHLD: user and system time (clock ticks).
    pub utime: u64,
    pub stime: u64,
    /// sigqueue/timer value.
    pub value: u64,
    /// SIGPOLL band and fd; timer id and overrun.
    pub band: i64,
    pub fd: i32,
    /// Raised by a fault (force_sig_fault): a death by it reports `addr` as the fault
    /// address in the run's outcome.
    pub fault: bool,
}

impl SigInfo {
    /// A kill()-style siginfo: SI_USER (or SI_TKILL ...) from `pid`.
    pub fn user(signo: i32, code: i32, pid: Tid) -> Self {
        SigInfo { signo, code, pid, ..Default::default() }
    }
    /// Linux's SEND_SIG_PRIV: sent by the kernel (timers), SI_KERNEL.
    pub fn kernel(signo: i32) -> Self {
        SigInfo { signo, code: SI_KERNEL, ..Default::default() }
    }
}

/// The 128-byte user siginfo_t for `info` (Linux: copy_siginfo_to_user with the layout
/// siginfo_layout picks: kill, rt/queue, timer, SIGCHLD, fault, SIGPOLL).
pub fn siginfo_bytes(info: &SigInfo) -> [u8; 128] {
    let mut b = [0u8; 128];
    b[0..4].copy_from_slice(&info.signo.to_le_bytes());
    b[4..8].copy_from_slice(&info.errno.to_le_bytes());
    b[8..12].copy_from_slice(&info.code.to_le_bytes());
    let (sig, code) = (info.signo, info.code);
    let kernel_code = code > 0 && code < SI_KERNEL;
    let put32 = |b: &mut [u8; 128], o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |b: &mut [u8; 128], o: usize, v: u64| b[o..o + 8].copy_from_slice(&v.to_le_bytes());
    if kernel_code && matches!(sig, SIGILL | SIGFPE | SIGSEGV | SIGBUS | SIGTRAP) {
        put64(&mut b, 0x10, info.addr);
    } else if kernel_code && sig == SIGCHLD {
        put32(&mut b, 0x10, info.pid as u32);
        put32(&mut b, 0x14, info.uid);
        put32(&mut b, 0x18, info.status as u32);
        put64(&mut b, 0x20, info.utime);
        put64(&mut b, 0x28, info.stime);
    } else if kernel_code && sig == SIGIO {
        put64(&mut b, 0x10, info.band as u64);
        put32(&mut b, 0x18, info.fd as u32);
    } else if code == SI_TIMER {
        put32(&mut b, 0x10, info.pid as u32);
        put32(&mut b, 0x14, info.fd as u32);
        put64(&mut b, 0x18, info.value);
    } else {
        // SIL_KILL and SIL_RT: pid, uid (and the sigqueue value).
        put32(&mut b, 0x10, info.pid as u32);
        put32(&mut b, 0x14, info.uid);
        put64(&mut b, 0x18, info.value);
    }
    b
}

/// Pending signals: a set, plus the queued siginfos (one per standard signal, several for
/// real-time signals), in arrival order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigPending {
    pub set: u64,
    pub queue: std::collections::VecDeque<SigInfo>,
}

impl SigPending {
    /// Queues `info`; a standard signal already pending is not queued again (Linux:
    /// legacy_queue). Returns whether it was queued.
    fn add(&mut self, info: SigInfo) -> bool {
        let bit = sigmask(info.signo);
        if info.signo < SIGRTMIN && self.set & bit != 0 {
            return false;
        }
        self.set |= bit;
        self.queue.push_back(info);
        true
    }
    /// Takes the first queued siginfo of `sig`; the bit stays while more are queued
    /// (Linux: collect_signal).
    fn collect(&mut self, sig: i32) -> SigInfo {
        let info = match self.queue.iter().position(|i| i.signo == sig) {
            Some(p) => self.queue.remove(p).unwrap(),
            None => SigInfo::user(sig, SI_USER, 0),
        };
        if !self.queue.iter().any(|i| i.signo == sig) {
            self.set &= !sigmask(sig);
        }
        info
    }
    /// Drops every pending signal in `mask` (Linux: flush_sigqueue_mask).
    pub fn flush(&mut self, mask: u64) {
        self.set &= !mask;
        self.queue.retain(|i| sigmask(i.signo) & mask == 0);
    }
    /// The next signal to dequeue among those not in `blocked`: synchronous ones first,
    /// then the lowest number (Linux: next_signal).
    fn next(&self, blocked: u64) -> Option<i32> {
        let x = self.set & !blocked;
        if x == 0 {
            return None;
        }
        let y = if x & SYNCHRONOUS_MASK != 0 { x & SYNCHRONOUS_MASK } else { x };
        Some(y.trailing_zeros() as i32 + 1)
    }
}

/// Signals whose default action dumps core (Linux: SIG_KERNEL_COREDUMP_MASK).
pub fn is_coredump_signal(sig: i32) -> bool {
    (1..=NSIG).contains(&sig) && COREDUMP_MASK & sigmask(sig) != 0
}

/// A handler of SIG_IGN, or SIG_DFL for a signal whose default is to ignore it (Linux:
/// sig_handler_ignored).
pub fn sig_handler_ignored(handler: u64, sig: i32) -> bool {
    handler == SIG_IGN || (handler == SIG_DFL && IGNORE_MASK & sigmask(sig) != 0)
}

/// A signal forced on the current thread by a fault (Linux: force_sig_fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultSignal {
    pub sig: i32,
    pub code: i32,
    pub addr: Option<u64>,
}

/// Sends a fault signal to the current thread (Linux: force_sig_fault). A fault signal
/// the thread blocks or ignores cannot be left pending: it is unblocked and its action
/// reset to SIG_DFL, so a fault inside a handler that blocks it kills the process.
pub fn force_sig_fault(k: &mut Kernel, hw: &mut Hw, s: FaultSignal) {
    let tid = k.current(hw);
    tracing::debug!(target: "pagelab::signal", tid, sig = s.sig, si_code = s.code, addr = ?s.addr, rip = format_args!("{:#x}", hw.vcpu().state.rip), "fault signal");
    let info = SigInfo { signo: s.sig, code: s.code, addr: s.addr.unwrap_or(0), fault: s.addr.is_some(), ..Default::default() };
    force_sig_info(k, hw, tid, info, false);
}

/// Linux: force_sig_info_to_task. `to_default` (HANDLER_SIG_DFL, force_sigsegv) resets the
/// action even when the signal is handled.
pub fn force_sig_info(k: &mut Kernel, hw: &mut Hw, tid: Tid, info: SigInfo, to_default: bool) {
    let Some(t) = k.tasks.get_mut(&tid) else { return };
    let sig = info.signo;
    {
        let mut acts = t.sigactions.borrow_mut();
        let a = &mut acts[(sig - 1) as usize];
        let blocked = t.sigmask & sigmask(sig) != 0;
        if blocked || a.handler == SIG_IGN || to_default {
            a.handler = SIG_DFL;
        }
    }
    t.sigmask &= !sigmask(sig);
    send_signal_locked(k, hw, tid, info, false);
}

// ---- Generation ---------------------------------------------------------------------------

/// A signal the thread does not block is pending for it (thread or process set).
pub fn signal_pending(k: &Kernel, tid: Tid) -> bool {
    let Some(t) = k.tasks.get(&tid) else { return false };
    let shared = k.procs.get(&t.tgid).map_or(0, |p| p.shared_pending.set);
    (t.pending.set | shared) & !t.sigmask != 0
}

/// Sends a signal to one thread (tgkill, tkill, faults).
pub fn send_signal(k: &mut Kernel, hw: &mut Hw, tid: Tid, info: SigInfo) {
    send_signal_locked(k, hw, tid, info, false);
}

/// Sends a signal to a thread group (kill, SIGCHLD, timers): to its leader's queue slot
/// in the shared set, delivered by whichever thread takes it.
pub fn send_signal_process(k: &mut Kernel, hw: &mut Hw, tgid: Tid, info: SigInfo) {
    if let Some(t) = group_target(k, tgid) {
        send_signal_locked(k, hw, t, info, true);
    }
}

/// The task a process-directed signal names: the leader, or while it has exited, the
/// first live thread.
pub fn group_target(k: &Kernel, tgid: Tid) -> Option<Tid> {
    let p = k.procs.get(&tgid)?;
    if k.tasks.contains_key(&tgid) {
        return Some(tgid);
    }
    p.threads.iter().copied().find(|t| k.tasks.contains_key(t))
}

fn is_blocked(t: &Task, sig: i32) -> bool {
    t.sigmask & sigmask(sig) != 0
}

/// Linux: __send_signal_locked. `t` is the task the sender named; `group` queues on the
/// thread group's shared set.
pub fn send_signal_locked(k: &mut Kernel, hw: &mut Hw, t: Tid, info: SigInfo, group: bool) {
    let sig = info.signo;
    if !(1..=NSIG).contains(&sig) || !prepare_signal(k, hw, t, sig) {
        return;
    }
    let Some(task) = k.tasks.get_mut(&t) else { return };
    let tgid = task.tgid;
    let queued = if group { k.procs.get_mut(&tgid).is_some_and(|p| p.shared_pending.add(info)) } else { task.pending.add(info) };
    tracing::debug!(target: "pagelab::signal", to = t, sig, group, queued, "send");
    if queued {
        complete_signal(k, hw, t, sig, group);
    }
}

/// Linux: prepare_signal. A stop signal cancels pending SIGCONTs and SIGCONT cancels
/// pending stop signals and resumes a stopped group; then the signal is dropped when the
/// target ignores it (blocked signals are never ignored: the action may change before
/// they are unblocked).
fn prepare_signal(k: &mut Kernel, hw: &mut Hw, t: Tid, sig: i32) -> bool {
    let Some(task) = k.tasks.get(&t) else { return false };
    let tgid = task.tgid;
    let Some(p) = k.procs.get(&tgid) else { return false };
    if p.exit_status.is_some() {
        return false;
    }
    let threads = p.threads.clone();
    let flush = |k: &mut Kernel, m: u64| {
        k.procs.get_mut(&tgid).unwrap().shared_pending.flush(m);
        for th in &threads {
            if let Some(x) = k.tasks.get_mut(th) {
                x.pending.flush(m);
            }
        }
    };
    if STOP_MASK & sigmask(sig) != 0 {
        flush(k, sigmask(SIGCONT));
    } else if sig == SIGCONT {
        flush(k, STOP_MASK);
        do_continue(k, hw, tgid);
    }
    let task = &k.tasks[&t];
    if is_blocked(task, sig) || task.real_blocked & sigmask(sig) != 0 {
        return true;
    }
    let handler = task.sigactions.borrow()[(sig - 1) as usize].handler;
    !sig_handler_ignored(handler, sig)
}

/// Linux: wants_signal (without the load-balancing preference for idle threads).
fn wants_signal(k: &Kernel, t: Tid, sig: i32) -> bool {
    let Some(task) = k.tasks.get(&t) else { return false };
    if is_blocked(task, sig) || task.state == TaskState::Zombie {
        return false;
    }
    sig == SIGKILL || task.state != TaskState::Stopped
}

/// Linux: complete_signal. Picks the thread to handle the signal (the named one if it
/// does not block it, else for a group signal any thread that does not), ends the whole
/// group at once for a fatal signal nobody handles, and wakes the chosen thread when it
/// is parked. A thread running on another vCPU sees the signal at its next exit.
fn complete_signal(k: &mut Kernel, hw: &mut Hw, t: Tid, sig: i32, group: bool) {
    let tgid = k.tasks[&t].tgid;
    let chosen = if wants_signal(k, t, sig) {
        t
    } else if !group {
        return;
    } else {
        let threads = k.procs[&tgid].threads.clone();
        match threads.into_iter().find(|&x| wants_signal(k, x, sig)) {
            Some(x) => x,
            None => return,
        }
    };
    let handler = k.tasks[&chosen].sigactions.borrow()[(sig - 1) as usize].handler;
    let fatal = handler == SIG_DFL && (IGNORE_MASK | STOP_MASK) & sigmask(sig) == 0;
    if fatal && !is_coredump_signal(sig) || sig == SIGKILL {
        // Linux: the whole group gets SIGKILL now (SIGNAL_GROUP_EXIT).
        let rip = k.regs_mut(hw, chosen).rip;
        tracing::debug!(target: "pagelab::signal", tgid, sig, "fatal signal: group exit");
        k.exit_group(hw, chosen, Outcome::Signaled { sig, core: false, fault_addr: None, rip });
        return;
    }
    signal_wake_up(k, chosen);
}

/// Wakes a parked thread for a signal (an interruptible wait ends; the syscall decides
/// between restarting and EINTR).
fn signal_wake_up(k: &mut Kernel, tid: Tid) {
    if k.tasks.get(&tid).is_some_and(|t| t.state == TaskState::Blocked) {
        k.wake_task(tid, WakeReason::Signal);
    }
}

/// Sets the current thread's mask (Linux: set_current_blocked; SIGKILL and SIGSTOP are
/// never blocked). Group signals pending that the thread now blocks are passed to a
/// thread that can take them (Linux: retarget_shared_pending).
pub fn set_current_blocked(k: &mut Kernel, tid: Tid, new: u64) {
    let new = new & !KERNEL_ONLY_MASK;
    let Some(t) = k.tasks.get_mut(&tid) else { return };
    let newly = new & !t.sigmask;
    t.sigmask = new;
    let tgid = t.tgid;
    let Some(p) = k.procs.get(&tgid) else { return };
    let mut retarget = p.shared_pending.set & newly;
    if retarget == 0 {
        return;
    }
    for th in p.threads.clone() {
        if th == tid {
            continue;
        }
        let Some(x) = k.tasks.get(&th) else { continue };
        let wants = retarget & !x.sigmask;
        if wants == 0 || x.state == TaskState::Stopped {
            continue;
        }
        retarget &= !wants;
        signal_wake_up(k, th);
        if retarget == 0 {
            break;
        }
    }
}

/// SIGCONT: a stopped group resumes and its parent is told (CLD_CONTINUED).
fn do_continue(k: &mut Kernel, hw: &mut Hw, tgid: Tid) {
    let Some(p) = k.procs.get_mut(&tgid) else { return };
    if p.stopped.is_none() {
        return;
    }
    p.stopped = None;
    p.stop_reported = false;
    p.continued = true;
    let threads = p.threads.clone();
    for t in threads {
        if let Some(x) = k.tasks.get_mut(&t) {
            if x.state == TaskState::Stopped {
                x.state = TaskState::Runnable;
                k.enqueue(t);
            }
        }
    }
    tracing::debug!(target: "pagelab::signal", tgid, "group continued");
    do_notify_parent_cldstop(k, hw, tgid, super::exit::CLD_CONTINUED, SIGCONT);
}

/// Tells the parent that the group stopped or continued: SIGCHLD unless it ignores
/// SIGCHLD or set SA_NOCLDSTOP, and a wake of its wait4/waitid (Linux:
/// do_notify_parent_cldstop).
fn do_notify_parent_cldstop(k: &mut Kernel, hw: &mut Hw, tgid: Tid, why: i32, status: i32) {
    let Some(p) = k.procs.get(&tgid) else { return };
    let (ppid, utime) = (p.ppid, p.utime);
    let info = SigInfo { signo: SIGCHLD, code: why, pid: tgid, status, utime: utime / 10_000_000, ..Default::default() };
    if let Some(pt) = group_target(k, ppid) {
        let a = k.tasks[&pt].sigactions.borrow()[(SIGCHLD - 1) as usize];
        if a.handler != SIG_IGN && a.flags & SA_NOCLDSTOP == 0 {
            send_signal_process(k, hw, ppid, info);
        }
    }
    k.wake(WaitKey::Child(ppid));
}

/// The default action of a stop signal (Linux: do_signal_stop): every thread of the group
/// stops — the current one now, queued ones at once, ones on other vCPUs at their next
/// exit, parked ones when they next return to user mode — and the parent is told.
pub fn do_signal_stop(k: &mut Kernel, hw: &mut Hw, sig: i32) {
    let tid = k.current(hw);
    let tgid = k.tasks[&tid].tgid;
    let p = k.procs.get_mut(&tgid).unwrap();
    let first = p.stopped.is_none();
    p.stopped = Some(sig);
    if first {
        p.stop_reported = false;
        p.continued = false;
    }
    let threads = p.threads.clone();
    for t in threads {
        if t != tid && k.runq.contains(&t) {
            k.runq.retain(|&x| x != t);
            k.tasks.get_mut(&t).unwrap().state = TaskState::Stopped;
        }
    }
    stop_current(k, hw);
    tracing::debug!(target: "pagelab::signal", tgid, sig, "group stop");
    if first {
        do_notify_parent_cldstop(k, hw, tgid, super::exit::CLD_STOPPED, sig);
    }
}

/// Takes the current task off its vCPU in the stopped state.
pub fn stop_current(k: &mut Kernel, hw: &mut Hw) {
    let tid = k.current(hw);
    let t = k.tasks.get_mut(&tid).unwrap();
    t.regs = hw.vcpus[hw.cur].state.clone();
    t.state = TaskState::Stopped;
    k.running[hw.cur] = None;
}

// ---- Delivery -----------------------------------------------------------------------------

/// Dequeues the next signal not in `blocked`: the thread's own first, then the group's
/// (Linux: dequeue_signal).
pub fn dequeue_signal(k: &mut Kernel, tid: Tid, blocked: u64) -> Option<SigInfo> {
    let t = k.tasks.get_mut(&tid)?;
    if let Some(sig) = t.pending.next(blocked) {
        return Some(t.pending.collect(sig));
    }
    let p = k.procs.get_mut(&t.tgid)?;
    let sig = p.shared_pending.next(blocked)?;
    Some(p.shared_pending.collect(sig))
}

/// What `get_signal` found for a thread about to return to user mode.
#[derive(Clone, Copy, Debug)]
pub enum Delivery {
    /// Nothing to deliver: no pending signal it does not block.
    None,
    /// A signal was taken and needs nothing more: ignored, or its default is to ignore.
    Ignored,
    /// Run this handler for this signal (Linux: get_signal's filled ksignal).
    Handler(SigInfo, SigAction),
    /// The thread must stop: by this stop signal's default action, or (None) because its
    /// group was stopped while it ran elsewhere. The caller applies the syscall restart
    /// rules first, then `do_signal_stop` or `stop_current`.
    Stop(Option<i32>),
    /// A fatal signal's default action ended the thread group.
    Exited,
}

/// Linux: get_signal, one signal at a time: the next signal the thread does not block
/// (synchronous ones first), its action (SA_RESETHAND applied), and the default action
/// when it has no handler — nothing for an ignored one, a stop, or the end of the group
/// (with a core for the core-dumping signals). The arch loop calls it again after each
/// handler frame, so nested handlers stack.
pub fn get_signal(k: &mut Kernel, hw: &mut Hw, tid: Tid) -> Delivery {
    let t = &k.tasks[&tid];
    if k.procs.get(&t.tgid).is_some_and(|p| p.stopped.is_some()) {
        // The group stopped while this thread ran elsewhere.
        return Delivery::Stop(None);
    }
    let blocked = t.sigmask;
    let Some(info) = dequeue_signal(k, tid, blocked) else { return Delivery::None };
    let sig = info.signo;
    let acts = k.tasks[&tid].sigactions.clone();
    let act = {
        let mut a = acts.borrow_mut();
        let act = a[(sig - 1) as usize];
        if act.handler > SIG_IGN && act.flags & SA_RESETHAND != 0 {
            a[(sig - 1) as usize].handler = SIG_DFL;
        }
        act
    };
    tracing::debug!(target: "pagelab::signal", tid, sig, code = info.code, handler = format_args!("{:#x}", act.handler), "deliver");
    if act.handler == SIG_IGN {
        return Delivery::Ignored;
    }
    if act.handler != SIG_DFL {
        return Delivery::Handler(info, act);
    }
    if IGNORE_MASK & sigmask(sig) != 0 {
        return Delivery::Ignored;
    }
    if STOP_MASK & sigmask(sig) != 0 {
        return Delivery::Stop(Some(sig));
    }
    let rip = hw.vcpus[hw.cur].state.rip;
    let fault_addr = info.fault.then_some(info.addr);
    tracing::debug!(target: "pagelab::signal", tid, sig, rip = format_args!("{rip:#x}"), "fatal signal");
    k.exit_group(hw, tid, Outcome::Signaled { sig, core: is_coredump_signal(sig), fault_addr, rip });
    Delivery::Exited
}

/// Linux: signal_delivered. The handler's frame is written: the mask sigsuspend saved is
/// dropped (the frame holds it), the handler runs with its sa_mask and, without
/// SA_NODEFER, its own signal blocked, and an SS_AUTODISARM alternate stack is given up.
pub fn signal_delivered(k: &mut Kernel, tid: Tid, sig: i32, act: &SigAction) {
    let t = k.tasks.get_mut(&tid).unwrap();
    t.saved_sigmask = None;
    let mut blocked = t.sigmask | act.mask;
    if act.flags & SA_NODEFER == 0 {
        blocked |= sigmask(sig);
    }
    if t.altstack.flags & SS_AUTODISARM != 0 {
        t.altstack = super::task::AltStack { sp: 0, flags: SS_DISABLE, size: 0 };
    }
    set_current_blocked(k, tid, blocked);
}

/// Linux: force_sigsegv. SIGSEGV for a thread whose handler frame for `sig` could not be
/// written; when `sig` was SIGSEGV itself its action goes back to SIG_DFL, so the thread
/// dies rather than loop.
pub fn force_sigsegv(k: &mut Kernel, hw: &mut Hw, tid: Tid, sig: i32) {
    force_sig_info(k, hw, tid, SigInfo::kernel(SIGSEGV), sig == SIGSEGV);
}

/// sp is on the alternate stack (Linux: on_sig_stack; never with SS_AUTODISARM, whose
/// stack was given up when the handler started).
pub fn on_sig_stack(t: &Task, sp: u64) -> bool {
    t.altstack.flags & SS_AUTODISARM == 0 && on_sig_stack_raw(t, sp)
}
/// sp lies in the alternate stack, whatever its flags (Linux: __on_sig_stack).
pub fn on_sig_stack_raw(t: &Task, sp: u64) -> bool {
    sp > t.altstack.sp && sp - t.altstack.sp <= t.altstack.size
}
/// Linux: sas_ss_flags.
pub fn sas_ss_flags(t: &Task, sp: u64) -> u32 {
    if t.altstack.size == 0 {
        SS_DISABLE
    } else if on_sig_stack(t, sp) {
        SS_ONSTACK
    } else {
        0
    }
}

/// sigaltstack's core (Linux: do_sigaltstack): returns the old (sp, flags, size) as the
/// caller sees them, and installs `new` unless the thread runs on the alternate stack
/// (EPERM), the mode is unknown (EINVAL) or the stack is too small (ENOMEM).
pub fn do_sigaltstack(t: &mut Task, new: Option<(u64, u32, u64)>, sp: u64) -> super::errno::KResult<(u64, u32, u64)> {
    use super::errno::Errno;
    let old = (t.altstack.sp, sas_ss_flags(t, sp) | (t.altstack.flags & SS_AUTODISARM), t.altstack.size);
    if let Some((mut ss_sp, flags, mut ss_size)) = new {
        if on_sig_stack(t, sp) {
            return Err(Errno::EPERM);
        }
        let mode = flags & !SS_AUTODISARM;
        if mode != SS_DISABLE && mode != SS_ONSTACK && mode != 0 {
            return Err(Errno::EINVAL);
        }
        if mode == SS_DISABLE {
            ss_size = 0;
            ss_sp = 0;
        } else if ss_size < MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        }
        t.altstack = super::task::AltStack { sp: ss_sp, flags, size: ss_size };
    }
    Ok(old)
}

/// The process ignores SIGCHLD (SIG_IGN) or set SA_NOCLDWAIT: its children never become
/// zombies.
pub fn ignores_children(k: &Kernel, tgid: Tid) -> bool {
    let Some(t) = k.tasks.get(&tgid).or_else(|| k.procs.get(&tgid).and_then(|p| p.threads.iter().find_map(|t| k.tasks.get(t)))) else {
        return false;
    };
    let a = t.sigactions.borrow()[(SIGCHLD - 1) as usize];
    a.handler == SIG_IGN || a.flags & SA_NOCLDWAIT != 0
}
