//! Signal syscalls (Linux: kernel/signal.c, kernel/time/itimer.c): actions and masks,
//! sending (kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo), waiting (pause,
//! rt_sigsuspend, rt_sigtimedwait), rt_sigreturn, sigaltstack, and the interval timers
//! (alarm, setitimer, getitimer). The machinery they drive is in `kernel::signal`.

use super::{ok, Args, Ret, Sys, SysResult};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::signal::{self as sig, SigInfo, KERNEL_ONLY_MASK, NSIG, SI_TKILL, SI_USER};
use crate::kernel::task::{SigAction, Tid, WaitWhat, WakeReason};

const SIGSET_SIZE: u64 = 8;

pub fn sys_rt_sigaction(s: &mut Sys, a: Args) -> SysResult {
    let (signo, act, oact, size) = (a.i32(0), a.u(1), a.u(2), a.u(3));
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let mut new = None;
    if act != 0 {
        let mut b = [0u8; 32];
        s.copy_from_user(act, &mut b)?;
        let w = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
        new = Some(SigAction { handler: w(0), flags: w(8) & sig::UAPI_SA_FLAGS, restorer: w(16), mask: w(24) & !KERNEL_ONLY_MASK });
    }
    // Linux: do_sigaction.
    if !(1..=NSIG).contains(&signo) || (new.is_some() && sig::sigmask(signo) & KERNEL_ONLY_MASK != 0) {
        return Err(Errno::EINVAL);
    }
    let i = (signo - 1) as usize;
    let table = s.k.tasks[&s.tid].sigactions.clone();
    let old = table.borrow()[i];
    if let Some(n) = new {
        table.borrow_mut()[i] = n;
        // POSIX: a pending signal whose action becomes "ignore" is discarded, blocked or not.
        if sig::sig_handler_ignored(n.handler, signo) {
            let tgid = s.tgid();
            let m = sig::sigmask(signo);
            if let Some(p) = s.k.procs.get_mut(&tgid) {
                p.shared_pending.flush(m);
                for t in p.threads.clone() {
                    if let Some(t) = s.k.tasks.get_mut(&t) {
                        t.pending.flush(m);
                    }
                }
            }
        }
    }
    if oact != 0 {
        let mut b = [0u8; 32];
        for (k, v) in [old.handler, old.flags, old.restorer, old.mask].iter().enumerate() {
            b[k * 8..k * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        s.copy_to_user(oact, &b)?;
    }
    ok(0)
}

pub fn sys_rt_sigprocmask(s: &mut Sys, a: Args) -> SysResult {
    let (how, set, oset, size) = (a.u32(0), a.u(1), a.u(2), a.u(3));
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let old = s.k.tasks[&s.tid].sigmask;
    if set != 0 {
        let v = s.read_u64(set)? & !KERNEL_ONLY_MASK;
        let new = match how {
            0 => old | v,
            1 => old & !v,
            2 => v,
            _ => return Err(Errno::EINVAL),
        };
        sig::set_current_blocked(s.k, s.tid, new);
    }
    if oset != 0 {
        s.copy_to_user(oset, &old.to_le_bytes())?;
    }
    ok(0)
}

pub fn sys_rt_sigpending(s: &mut Sys, a: Args) -> SysResult {
    let (set, size) = (a.u(0), a.u(1));
    if size > SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let t = &s.k.tasks[&s.tid];
    let shared = s.k.procs.get(&t.tgid).map_or(0, |p| p.shared_pending.set);
    let pending = (t.pending.set | shared) & t.sigmask;
    s.copy_to_user(set, &pending.to_le_bytes()[..size as usize])?;
    ok(0)
}

pub fn sys_rt_sigreturn(s: &mut Sys) -> SysResult {
    crate::kernel::arch::signal::sys_rt_sigreturn(s.k, s.hw, s.tid);
    Ok(Ret::NoReturn)
}

/// rt_sigsuspend: waits with a temporary mask until a signal is delivered; the handler's
/// frame saves the original mask, which comes back at rt_sigreturn (or on the way out when
/// no handler runs).
pub fn sys_rt_sigsuspend(s: &mut Sys, a: Args) -> SysResult {
    if a.u(1) != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let m = s.read_u64(a.u(0))?;
    if s.restart.is_none() {
        let t = s.k.tasks.get_mut(&s.tid).unwrap();
        t.saved_sigmask = Some(t.sigmask);
        sig::set_current_blocked(s.k, s.tid, m);
    }
    if s.signal_pending() {
        return Err(Errno::ERESTARTNOHAND);
    }
    s.block_retry(vec![], WaitWhat::SigSuspend, None)
}

pub fn sys_pause(s: &mut Sys) -> SysResult {
    if s.signal_pending() {
        return Err(Errno::ERESTARTNOHAND);
    }
    s.block_retry(vec![], WaitWhat::Other("pause"), None)
}

/// rt_sigtimedwait: takes a pending signal of the set, or waits for one with the set
/// unblocked (Linux keeps the old mask in real_blocked); EAGAIN on timeout, EINTR when
/// another signal interrupts the wait.
pub fn sys_rt_sigtimedwait(s: &mut Sys, a: Args) -> SysResult {
    let (uthese, uinfo, uts, size) = (a.u(0), a.u(1), a.u(2), a.u(3));
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let these = s.read_u64(uthese)? & !KERNEL_ONLY_MASK;
    let timeout = if uts != 0 { Some(super::futex::read_timespec(s, uts)?) } else { None };
    let parked = s.restart.is_some();
    if parked {
        let t = s.k.tasks.get_mut(&s.tid).unwrap();
        let m = std::mem::take(&mut t.real_blocked);
        sig::set_current_blocked(s.k, s.tid, m);
    }
    if let Some(info) = sig::dequeue_signal(s.k, s.tid, !these) {
        if uinfo != 0 {
            s.copy_to_user(uinfo, &sig::siginfo_bytes(&info))?;
        }
        return ok(info.signo as u64);
    }
    if timeout == Some(0) {
        return Err(Errno::EAGAIN);
    }
    let deadline = timeout.map(|t| s.deadline_after(t));
    if parked {
        match s.woken() {
            Some(WakeReason::Timeout) => return Err(Errno::EAGAIN),
            Some(WakeReason::Signal) => return Err(Errno::EINTR),
            _ => {}
        }
        if s.timed_out(deadline) {
            return Err(Errno::EAGAIN);
        }
    }
    if s.signal_pending() {
        return Err(Errno::EINTR);
    }
    let t = s.k.tasks.get_mut(&s.tid).unwrap();
    t.real_blocked = t.sigmask;
    t.sigmask &= !these;
    s.block_retry(vec![], WaitWhat::SigTimedWait, deadline)
}

pub fn sys_sigaltstack(s: &mut Sys, a: Args) -> SysResult {
    let (uss, uoss) = (a.u(0), a.u(1));
    let mut new = None;
    if uss != 0 {
        let mut b = [0u8; 24];
        s.copy_from_user(uss, &mut b)?;
        let sp = u64::from_le_bytes(b[0..8].try_into().unwrap());
        let flags = u32::from_le_bytes(b[8..12].try_into().unwrap());
        let size = u64::from_le_bytes(b[16..24].try_into().unwrap());
        new = Some((sp, flags, size));
    }
    let sp = s.regs().gpr[crate::cpu::reg::RSP];
    let (osp, oflags, osize) = sig::do_sigaltstack(s.k.tasks.get_mut(&s.tid).unwrap(), new, sp)?;
    if uoss != 0 {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&osp.to_le_bytes());
        b[8..12].copy_from_slice(&oflags.to_le_bytes());
        b[16..24].copy_from_slice(&osize.to_le_bytes());
        s.copy_to_user(uoss, &b)?;
    }
    ok(0)
}

// ---- Sending --------------------------------------------------------------------------------

fn valid_signal(signo: i32) -> bool {
    (0..=NSIG).contains(&signo)
}

/// Linux: group_send_sig_info to the thread group of task `t` (or a zombie group, which
/// takes the signal and drops it).
fn group_send_sig_info(s: &mut Sys, t: Option<Tid>, info: SigInfo) -> KResult<()> {
    if !valid_signal(info.signo) {
        return Err(Errno::EINVAL);
    }
    if info.signo != 0 {
        if let Some(t) = t {
            sig::send_signal_locked(s.k, s.hw, t, info, true);
        }
    }
    Ok(())
}

/// The task `pid` names for a process-directed signal: a live thread, or a thread group
/// whose named thread has exited (zombie leader) — `Some(None)` for a group with no live
/// thread.
fn find_pid(s: &Sys, pid: Tid) -> Option<Option<Tid>> {
    if s.k.tasks.contains_key(&pid) {
        return Some(Some(pid));
    }
    s.k.procs.get(&pid).map(|_| sig::group_target(s.k, pid))
}

fn kill_proc_info(s: &mut Sys, pid: Tid, info: SigInfo) -> SysResult {
    let t = find_pid(s, pid).ok_or(Errno::ESRCH)?;
    group_send_sig_info(s, t, info)?;
    ok(0)
}

/// Linux: kill_something_info — a process, the caller's process group (0), a process
/// group (-pgid), or every process but init and the caller (-1).
pub fn sys_kill(s: &mut Sys, a: Args) -> SysResult {
    let (pid, signo) = (a.i32(0), a.i32(1));
    let info = SigInfo::user(signo, SI_USER, s.tgid());
    if pid > 0 {
        return kill_proc_info(s, pid, info);
    }
    if pid == i32::MIN {
        return Err(Errno::ESRCH);
    }
    let me = s.tgid();
    let targets: Vec<Tid> = if pid != -1 {
        let pgrp = if pid == 0 { s.k.procs[&me].pgid } else { -pid };
        s.k.procs.values().filter(|p| p.pgid == pgrp).map(|p| p.tgid).collect()
    } else {
        s.k.procs.values().filter(|p| p.tgid > 1 && p.tgid != me).map(|p| p.tgid).collect()
    };
    let mut result = Err(Errno::ESRCH);
    let mut success = false;
    for tg in targets {
        let t = sig::group_target(s.k, tg);
        let r = group_send_sig_info(s, t, info);
        success |= r.is_ok();
        result = r;
    }
    if success {
        ok(0)
    } else {
        result.map(|_| Ret::Val(0))
    }
}

/// Linux: do_send_specific — a thread `pid`, of thread group `tgid` when `tgid` > 0.
fn do_send_specific(s: &mut Sys, tgid: Tid, pid: Tid, info: SigInfo) -> SysResult {
    let Some(t) = s.k.tasks.get(&pid) else { return Err(Errno::ESRCH) };
    if tgid > 0 && t.tgid != tgid {
        return Err(Errno::ESRCH);
    }
    if !valid_signal(info.signo) {
        return Err(Errno::EINVAL);
    }
    if info.signo != 0 {
        sig::send_signal_locked(s.k, s.hw, pid, info, false);
    }
    ok(0)
}

pub fn sys_tgkill(s: &mut Sys, a: Args) -> SysResult {
    let (tgid, pid, signo) = (a.i32(0), a.i32(1), a.i32(2));
    if pid <= 0 || tgid <= 0 {
        return Err(Errno::EINVAL);
    }
    let info = SigInfo::user(signo, SI_TKILL, s.tgid());
    do_send_specific(s, tgid, pid, info)
}

pub fn sys_tkill(s: &mut Sys, a: Args) -> SysResult {
    let (pid, signo) = (a.i32(0), a.i32(1));
    if pid <= 0 {
        return Err(Errno::EINVAL);
    }
    let info = SigInfo::user(signo, SI_TKILL, s.tgid());
    do_send_specific(s, 0, pid, info)
}

/// The siginfo a sigqueue caller supplies: its code, pid, uid and value are kept; a caller
/// may not pretend to be the kernel or kill()/tgkill() towards another process (EPERM).
fn user_siginfo(s: &mut Sys, signo: i32, uinfo: u64, target: Tid) -> KResult<SigInfo> {
    let mut b = [0u8; 128];
    s.copy_from_user(uinfo, &mut b)?;
    let r32 = |o: usize| i32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let code = r32(8);
    if (code >= 0 || code == SI_TKILL) && target != s.tid {
        return Err(Errno::EPERM);
    }
    Ok(SigInfo {
        signo,
        errno: r32(4),
        code,
        pid: r32(0x10),
        uid: r32(0x14) as u32,
        value: u64::from_le_bytes(b[0x18..0x20].try_into().unwrap()),
        ..Default::default()
    })
}

pub fn sys_rt_sigqueueinfo(s: &mut Sys, a: Args) -> SysResult {
    let (pid, signo, uinfo) = (a.i32(0), a.i32(1), a.u(2));
    let info = user_siginfo(s, signo, uinfo, pid)?;
    kill_proc_info(s, pid, info)
}

pub fn sys_rt_tgsigqueueinfo(s: &mut Sys, a: Args) -> SysResult {
    let (tgid, pid, signo, uinfo) = (a.i32(0), a.i32(1), a.i32(2), a.u(3));
    if pid <= 0 || tgid <= 0 {
        return Err(Errno::EINVAL);
    }
    let info = user_siginfo(s, signo, uinfo, pid)?;
    do_send_specific(s, tgid, pid, info)
}

// ---- Interval timers ------------------------------------------------------------------------

const ITIMER_REAL: u32 = 0;
const ITIMER_VIRTUAL: u32 = 1;
const ITIMER_PROF: u32 = 2;
const NSEC_PER_SEC: u64 = 1_000_000_000;

/// (value, interval) in ns of a `struct itimerval`; EINVAL for a negative or
/// out-of-range field (Linux: timespec64_valid after the usec→nsec conversion).
fn read_itimerval(s: &mut Sys, va: u64) -> KResult<(u64, u64)> {
    let mut b = [0u8; 32];
    s.copy_from_user(va, &mut b)?;
    let f = |o: usize| i64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let tv = |sec: i64, usec: i64| -> KResult<u64> {
        if sec < 0 || !(0..1_000_000).contains(&usec) {
            return Err(Errno::EINVAL);
        }
        Ok((sec as u64).saturating_mul(NSEC_PER_SEC).saturating_add(usec as u64 * 1000))
    };
    // struct itimerval is { it_interval, it_value }.
    let interval = tv(f(0), f(8));
    let value = tv(f(16), f(24));
    Ok((value?, interval?))
}

fn itimerval_bytes(value: u64, interval: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, ns) in [interval, value].iter().enumerate() {
        b[16 * i..16 * i + 8].copy_from_slice(&(ns / NSEC_PER_SEC).to_le_bytes());
        b[16 * i + 8..16 * i + 16].copy_from_slice(&((ns % NSEC_PER_SEC) / 1000).to_le_bytes());
    }
    b
}

/// The timer's (remaining, interval) in ns. A timer due but not yet fired reports 1 µs
/// (Linux: itimer_get_remtime), so an armed timer never reads as disarmed.
fn get_itimer(s: &Sys, which: u32) -> KResult<(u64, u64)> {
    let p = &s.k.procs[&s.tgid()];
    let now = match which {
        ITIMER_REAL => s.k.now_ns(),
        ITIMER_VIRTUAL | ITIMER_PROF => p.utime * crate::kernel::NS_PER_INSTR,
        _ => return Err(Errno::EINVAL),
    };
    let it = p.itimers[which as usize];
    let rem = if it.value == 0 { 0 } else if it.value > now { it.value - now } else { 1000 };
    Ok((rem, it.interval))
}

/// Linux: do_setitimer. Returns the old (remaining, interval).
fn do_setitimer(s: &mut Sys, which: u32, value: u64, interval: u64) -> KResult<(u64, u64)> {
    let old = get_itimer(s, which)?;
    let tgid = s.tgid();
    match which {
        ITIMER_REAL => {
            let deadline = if value == 0 { 0 } else { s.k.now_ns().saturating_add(value) };
            crate::kernel::itimer::arm_itimer_real(s.k, tgid, deadline, interval);
        }
        _ => {
            let p = s.k.procs.get_mut(&tgid).unwrap();
            let now = p.utime * crate::kernel::NS_PER_INSTR;
            p.itimers[which as usize] = crate::kernel::task::ITimer { value: if value == 0 { 0 } else { now + value }, interval };
        }
    }
    Ok(old)
}

pub fn sys_setitimer(s: &mut Sys, a: Args) -> SysResult {
    let (which, new, old) = (a.u32(0), a.u(1), a.u(2));
    let (value, interval) = if new != 0 { read_itimerval(s, new)? } else { (0, 0) };
    let (ov, oi) = do_setitimer(s, which, value, interval)?;
    if old != 0 {
        s.copy_to_user(old, &itimerval_bytes(ov, oi))?;
    }
    ok(0)
}

pub fn sys_getitimer(s: &mut Sys, a: Args) -> SysResult {
    let (v, i) = get_itimer(s, a.u32(0))?;
    s.copy_to_user(a.u(1), &itimerval_bytes(v, i))?;
    ok(0)
}

/// alarm: ITIMER_REAL for whole seconds; returns the seconds left on the previous alarm,
/// rounded to nearest and never 0 for a pending one (Linux: alarm_setitimer).
pub fn sys_alarm(s: &mut Sys, a: Args) -> SysResult {
    let secs = a.u32(0) as u64;
    let (rem, _) = do_setitimer(s, ITIMER_REAL, secs * NSEC_PER_SEC, 0)?;
    let (mut sec, nsec) = (rem / NSEC_PER_SEC, rem % NSEC_PER_SEC);
    if (sec == 0 && nsec != 0) || nsec >= NSEC_PER_SEC / 2 {
        sec += 1;
    }
    ok(sec)
}
