//! Faults become signals (Linux: arch/x86/mm/fault.c and arch/x86/kernel/traps.c), and
//! fatal signals end the thread group. Handlers and signal frames arrive with the threads
//! and signals issue; until then every fault signal is fatal, with the status Linux gives.

use super::mm::fault::{handle_mm_fault, FaultAccess, FaultOutcome};
use super::Kernel;
use super::hw::Hw;
use crate::cpu::Exception;
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
pub const SIGSYS: i32 = 31;

pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;
pub const BUS_ADRERR: i32 = 2;
pub const ILL_ILLOPN: i32 = 2;
pub const FPE_INTDIV: i32 = 1;
pub const TRAP_BRKPT: i32 = 1;
pub const SI_KERNEL: i32 = 0x80;

/// A queued signal with what its siginfo reports (Linux: struct kernel_siginfo). The
/// fields used depend on `code` and `signo`, as in Linux's union.
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
}

/// Pending signals: a set, plus the queued siginfos (one per standard signal, several for
/// real-time signals).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigPending {
    pub set: u64,
    pub queue: std::collections::VecDeque<SigInfo>,
}

/// Signals whose default action dumps core (Linux: SIG_KERNEL_COREDUMP_MASK).
pub fn is_coredump_signal(sig: i32) -> bool {
    matches!(sig, SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGSYS | 24 | 25)
}

/// A signal forced on the current thread by a fault (Linux: force_sig_fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultSignal {
    pub sig: i32,
    pub code: i32,
    pub addr: Option<u64>,
}

/// #PF from user mode: handle_mm_fault, or a signal.
pub fn do_page_fault(k: &mut Kernel, hw: &mut Hw, addr: u64, code: u32) {
    let tid = k.current(hw);
    let mm_id = k.tasks[&tid].mm;
    let acc = FaultAccess::from_code(code);
    let rip = hw.vcpu().state.rip;
    tracing::debug!(target: "pagelab::fault", tid, addr = format_args!("{addr:#x}"), code = format_args!("{code:#x}"), rip = format_args!("{rip:#x}"), "page fault");
    let out = handle_mm_fault(k.mm_mut(mm_id), hw, addr, acc);
    tracing::debug!(target: "pagelab::fault", tid, addr = format_args!("{addr:#x}"), outcome = ?out, "fault handled");
    let sig = match out {
        FaultOutcome::Handled => return,
        FaultOutcome::SegvMaperr => FaultSignal { sig: SIGSEGV, code: SEGV_MAPERR, addr: Some(addr) },
        FaultOutcome::SegvAccerr => FaultSignal { sig: SIGSEGV, code: SEGV_ACCERR, addr: Some(addr) },
        FaultOutcome::Bus => FaultSignal { sig: SIGBUS, code: BUS_ADRERR, addr: Some(addr) },
        // The OOM killer's choice: SIGKILL.
        FaultOutcome::Oom => FaultSignal { sig: SIGKILL, code: SI_KERNEL, addr: None },
    };
    force_sig_fault(k, hw, sig);
}

/// Other exceptions (Linux: arch/x86/kernel/traps.c).
pub fn do_trap(k: &mut Kernel, hw: &mut Hw, e: Exception) {
    let rip = hw.vcpu().state.rip;
    let sig = match e {
        Exception::InvalidOpcode => FaultSignal { sig: SIGILL, code: ILL_ILLOPN, addr: Some(rip) },
        Exception::DivideError => FaultSignal { sig: SIGFPE, code: FPE_INTDIV, addr: Some(rip) },
        Exception::X87Fpe | Exception::SimdFpe => FaultSignal { sig: SIGFPE, code: 0, addr: Some(rip) },
        Exception::Breakpoint => FaultSignal { sig: SIGTRAP, code: SI_KERNEL, addr: None },
        Exception::Debug => FaultSignal { sig: SIGTRAP, code: 2, addr: None },
        Exception::AlignmentCheck => FaultSignal { sig: SIGBUS, code: 1, addr: None },
        Exception::GeneralProtection(_) | Exception::StackFault(_) | Exception::DeviceNotAvailable => {
            FaultSignal { sig: SIGSEGV, code: SI_KERNEL, addr: Some(0) }
        }
        Exception::PageFault { addr, code } => return do_page_fault(k, hw, addr, code),
    };
    force_sig_fault(k, hw, sig);
}

/// Delivers a fault signal to the current thread. Without handler support yet, the default
/// action applies: the thread group dies with that signal.
pub fn force_sig_fault(k: &mut Kernel, hw: &mut Hw, s: FaultSignal) {
    let tid = k.current(hw);
    let rip = hw.vcpu().state.rip;
    tracing::debug!(target: "pagelab::signal", tid, sig = s.sig, si_code = s.code, addr = ?s.addr, rip = format_args!("{rip:#x}"), "fatal signal");
    let outcome = Outcome::Signaled { sig: s.sig, core: is_coredump_signal(s.sig), fault_addr: s.addr, rip };
    k.exit_group(hw, tid, outcome);
}

// ---- Signal generation and delivery: the interface the rest of the kernel uses. ----

/// A signal the thread does not block is pending for it (thread or process set).
pub fn signal_pending(k: &Kernel, tid: super::task::Tid) -> bool {
    let Some(t) = k.tasks.get(&tid) else { return false };
    let shared = k.procs.get(&t.tgid).map_or(0, |p| p.shared_pending.set);
    (t.pending.set | shared) & !t.sigmask != 0
}

/// Sends a signal to one thread (tgkill, tkill, faults).
pub fn send_signal(_k: &mut Kernel, _hw: &mut Hw, _tid: super::task::Tid, _info: SigInfo) {}

/// Sends a signal to a thread group (kill, SIGCHLD, timers).
pub fn send_signal_process(_k: &mut Kernel, _hw: &mut Hw, _tgid: super::task::Tid, _info: SigInfo) {}

/// Before the current vCPU's task returns to user mode: deliver pending signals (run a
/// handler, apply the default action) and apply the syscall restart rules.
pub fn exit_to_user(_k: &mut Kernel, _hw: &mut Hw) {}

/// ITIMER_REAL expired for `tgid` (the timer armed with generation `gen`).
pub fn itimer_real_expired(_k: &mut Kernel, _hw: &mut Hw, _tgid: super::task::Tid, _gen: u64) {}

/// ITIMER_VIRTUAL / ITIMER_PROF of `tgid` against its user time.
pub fn check_cpu_timers(_k: &mut Kernel, _hw: &mut Hw, _tgid: super::task::Tid) {}

/// The process ignores SIGCHLD (SIG_IGN) or set SA_NOCLDWAIT: its children never become
/// zombies.
pub fn ignores_children(k: &Kernel, tgid: super::task::Tid) -> bool {
    let Some(t) = k.tasks.get(&tgid).or_else(|| k.procs.get(&tgid).and_then(|p| p.threads.iter().find_map(|t| k.tasks.get(t)))) else {
        return false;
    };
    let a = t.sigactions.borrow()[(SIGCHLD - 1) as usize];
    a.handler == 1 || a.flags & 2 != 0
}
