//! Time syscalls, all from the deterministic virtual clock: CLOCK_MONOTONIC is virtual
//! nanoseconds since boot (instructions retired plus sleeps), CLOCK_REALTIME adds a fixed
//! epoch, and CPU-time clocks count the same virtual time.

use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::Errno;
use crate::kernel::REALTIME_BASE_SECS;

/// (seconds, nanoseconds) of `clock` now.
fn clock_now(s: &Sys, clock: i32) -> Option<(u64, u64)> {
    let ns = s.k.now_ns();
    let (sec, nsec) = (ns / 1_000_000_000, ns % 1_000_000_000);
    match clock {
        // REALTIME, REALTIME_COARSE, TAI
        0 | 5 | 11 => Some((sec + REALTIME_BASE_SECS, nsec)),
        // MONOTONIC, PROCESS_CPUTIME, THREAD_CPUTIME, MONOTONIC_RAW, MONOTONIC_COARSE, BOOTTIME
        1 | 2 | 3 | 4 | 6 | 7 => Some((sec, nsec)),
        _ => None,
    }
}

pub fn sys_clock_gettime(s: &mut Sys, a: Args) -> SysResult {
    let (sec, nsec) = clock_now(s, a.i32(0)).ok_or(Errno::EINVAL)?;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&sec.to_le_bytes());
    b[8..].copy_from_slice(&nsec.to_le_bytes());
    s.copy_to_user(a.u(1), &b)?;
    ok(0)
}

pub fn sys_clock_getres(s: &mut Sys, a: Args) -> SysResult {
    clock_now(s, a.i32(0)).ok_or(Errno::EINVAL)?;
    if a.u(1) != 0 {
        let mut b = [0u8; 16];
        b[8..].copy_from_slice(&1u64.to_le_bytes());
        s.copy_to_user(a.u(1), &b)?;
    }
    ok(0)
}

pub fn sys_gettimeofday(s: &mut Sys, a: Args) -> SysResult {
    let (sec, nsec) = clock_now(s, 0).unwrap();
    if a.u(0) != 0 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&sec.to_le_bytes());
        b[8..].copy_from_slice(&(nsec / 1000).to_le_bytes());
        s.copy_to_user(a.u(0), &b)?;
    }
    if a.u(1) != 0 {
        s.copy_to_user(a.u(1), &[0u8; 8])?;
    }
    ok(0)
}

pub fn sys_time(s: &mut Sys, a: Args) -> SysResult {
    let (sec, _) = clock_now(s, 0).unwrap();
    if a.u(0) != 0 {
        s.copy_to_user(a.u(0), &sec.to_le_bytes())?;
    }
    ok(sec)
}

/// nanosleep: a relative sleep on CLOCK_MONOTONIC.
pub fn sys_nanosleep(s: &mut Sys, a: Args) -> SysResult {
    let req = super::futex::read_timespec(s, a.u(0))?;
    do_nanosleep(s, false, req, a.u(1))
}

/// clock_nanosleep: relative or TIMER_ABSTIME sleeps on the realtime, monotonic, boottime
/// and TAI clocks. The thread CPU clock is EINVAL and the raw/coarse clocks EOPNOTSUPP, as
/// in Linux; so is, here, the process CPU clock (Linux sleeps until the process has used
/// that much CPU time, which a process whose threads all sleep never does).
pub fn sys_clock_nanosleep(s: &mut Sys, a: Args) -> SysResult {
    let (clock, flags, req, rem) = (a.i32(0), a.u32(1), a.u(2), a.u(3));
    if !matches!(clock, 0 | 1 | 7 | 11) {
        return Err(if clock != 3 && clock_now(s, clock).is_some() { Errno::EOPNOTSUPP } else { Errno::EINVAL });
    }
    let t = super::futex::read_timespec(s, req)?;
    let abs = flags & 1 != 0;
    if abs {
        // The absolute time on `clock` as virtual monotonic ns.
        let base = if matches!(clock, 0 | 11) { REALTIME_BASE_SECS * 1_000_000_000 } else { 0 };
        return do_nanosleep(s, true, t.saturating_sub(base), 0);
    }
    do_nanosleep(s, false, t, rem)
}

/// The common sleep (Linux: hrtimer_nanosleep / do_nanosleep): parked until the deadline;
/// a signal ends it with the time left in `rem` and ERESTART_RESTARTBLOCK (EINTR when a
/// handler runs, a re-executed sleep otherwise), or ERESTARTNOHAND for absolute sleeps.
fn do_nanosleep(s: &mut Sys, abs: bool, t: u64, rem: u64) -> SysResult {
    let deadline = if abs { s.restart.and_then(|r| r.deadline).unwrap_or(t) } else { s.deadline_after(t) };
    let now = s.k.now_ns();
    if now >= deadline {
        return ok(0);
    }
    if s.signal_pending() {
        if abs {
            return Err(Errno::ERESTARTNOHAND);
        }
        if rem != 0 {
            let left = deadline - now;
            let mut b = [0u8; 16];
            b[..8].copy_from_slice(&(left / 1_000_000_000).to_le_bytes());
            b[8..].copy_from_slice(&(left % 1_000_000_000).to_le_bytes());
            s.copy_to_user(rem, &b)?;
        }
        return Err(Errno::ERESTART_RESTARTBLOCK);
    }
    s.block_retry(vec![], crate::kernel::task::WaitWhat::Sleep, Some(deadline))
}
