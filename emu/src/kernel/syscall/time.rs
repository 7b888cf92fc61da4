//! Time syscalls (Linux: kernel/time/posix-timers.c, posix-cpu-timers.c, hrtimer.c), all
//! from the deterministic virtual clock: CLOCK_MONOTONIC and CLOCK_BOOTTIME are virtual
//! nanoseconds since boot (instructions retired plus idle jumps), CLOCK_REALTIME and
//! CLOCK_TAI add a fixed epoch, the coarse clocks round down to the tick, and the CPU-time
//! clocks count the user time of a thread or thread group (1 ns per instruction; a guest
//! never spends system time, the kernel runs as host code).
//!
//! Sleeps are retried waits on no key with a deadline: when every thread sleeps the run
//! loop jumps virtual time to the next deadline, so `sleep(10)` costs nothing. A signal
//! ends a relative sleep with ERESTART_RESTARTBLOCK after storing the remaining time, an
//! absolute one with ERESTARTNOHAND, as Linux's hrtimer_nanosleep does.

use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::task::WaitWhat;
use crate::kernel::REALTIME_BASE_SECS;
use std::io::Write;

pub const CLOCK_REALTIME: i32 = 0;
pub const CLOCK_MONOTONIC: i32 = 1;
pub const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
pub const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
pub const CLOCK_MONOTONIC_RAW: i32 = 4;
pub const CLOCK_REALTIME_COARSE: i32 = 5;
pub const CLOCK_MONOTONIC_COARSE: i32 = 6;
pub const CLOCK_BOOTTIME: i32 = 7;
pub const CLOCK_REALTIME_ALARM: i32 = 8;
pub const CLOCK_BOOTTIME_ALARM: i32 = 9;
pub const CLOCK_TAI: i32 = 11;
pub const TIMER_ABSTIME: i32 = 1;

const NSEC_PER_SEC: u64 = 1_000_000_000;
/// The tick of the coarse clocks: 4 ms, CONFIG_HZ=250 as on the reference host.
const TICK_NS: u64 = 4_000_000;
const REALTIME_BASE_NS: u64 = REALTIME_BASE_SECS * NSEC_PER_SEC;

/// A clock id, decoded (Linux: clockid_to_kclock and the CPUCLOCK_* macros).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// Offset from virtual monotonic time: REALTIME and TAI add the epoch.
    Wall { epoch: bool, coarse: bool },
    /// User time of a thread group (pid 0 = the caller's).
    Process(i32),
    /// User time of a thread of the caller's group (tid 0 = the caller).
    Thread(i32),
}

/// The clock `id` names, or EINVAL. The alarm clocks need an RTC, which the machine (like
/// the reference host) does not have: EINVAL, as Linux's alarmtimer answers then.
fn decode_clock(id: i32) -> KResult<Clock> {
    Ok(match id {
        CLOCK_REALTIME | CLOCK_TAI => Clock::Wall { epoch: true, coarse: false },
        CLOCK_REALTIME_COARSE => Clock::Wall { epoch: true, coarse: true },
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_BOOTTIME => Clock::Wall { epoch: false, coarse: false },
        CLOCK_MONOTONIC_COARSE => Clock::Wall { epoch: false, coarse: true },
        CLOCK_PROCESS_CPUTIME_ID => Clock::Process(0),
        CLOCK_THREAD_CPUTIME_ID => Clock::Thread(0),
        // A CPU clock of another thread or process (clock_getcpuclockid,
        // pthread_getcpuclockid): ~pid << 3 | perthread << 2 | which, which < 3.
        id if id < 0 => {
            if id & 3 == 3 {
                return Err(Errno::EINVAL);
            }
            let pid = !(id >> 3);
            if id & 4 != 0 {
                Clock::Thread(pid)
            } else {
                Clock::Process(pid)
            }
        }
        _ => return Err(Errno::EINVAL),
    })
}

/// The current value of `clock` in nanoseconds.
fn clock_now(s: &Sys, clock: Clock) -> KResult<u64> {
    match clock {
        Clock::Wall { epoch, coarse } => {
            let mut ns = s.k.now_ns();
            if coarse {
                ns -= ns % TICK_NS;
            }
            Ok(if epoch { ns + REALTIME_BASE_NS } else { ns })
        }
        Clock::Process(pid) => {
            let tgid = if pid == 0 { s.tgid() } else { pid };
            s.k.procs.get(&tgid).filter(|p| !p.zombie).map(|p| p.utime).ok_or(Errno::EINVAL)
        }
        Clock::Thread(tid) => {
            let tid = if tid == 0 { s.tid } else { tid };
            let me = s.tgid();
            s.k.tasks.get(&tid).filter(|t| t.tgid == me).map(|t| t.utime).ok_or(Errno::EINVAL)
        }
    }
}

fn timespec_bytes(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(ns / NSEC_PER_SEC).to_le_bytes());
    b[8..].copy_from_slice(&(ns % NSEC_PER_SEC).to_le_bytes());
    b
}

pub fn sys_clock_gettime(s: &mut Sys, a: Args) -> SysResult {
    let ns = clock_now(s, decode_clock(a.i32(0))?)?;
    s.copy_to_user(a.u(1), &timespec_bytes(ns))?;
    ok(0)
}

pub fn sys_clock_getres(s: &mut Sys, a: Args) -> SysResult {
    let clock = decode_clock(a.i32(0))?;
    clock_now(s, clock)?;
    let res = match clock {
        Clock::Wall { coarse: true, .. } => TICK_NS,
        _ => 1,
    };
    if a.u(1) != 0 {
        s.copy_to_user(a.u(1), &timespec_bytes(res))?;
    }
    ok(0)
}

pub fn sys_gettimeofday(s: &mut Sys, a: Args) -> SysResult {
    let ns = s.k.now_ns() + REALTIME_BASE_NS;
    if a.u(0) != 0 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(ns / NSEC_PER_SEC).to_le_bytes());
        b[8..].copy_from_slice(&(ns % NSEC_PER_SEC / 1000).to_le_bytes());
        s.copy_to_user(a.u(0), &b)?;
    }
    if a.u(1) != 0 {
        s.copy_to_user(a.u(1), &[0u8; 8])?;
    }
    ok(0)
}

pub fn sys_time(s: &mut Sys, a: Args) -> SysResult {
    let sec = (s.k.now_ns() + REALTIME_BASE_NS) / NSEC_PER_SEC;
    if a.u(0) != 0 {
        s.copy_to_user(a.u(0), &sec.to_le_bytes())?;
    }
    ok(sec)
}

/// nanosleep(req, rem): a relative sleep on CLOCK_MONOTONIC.
pub fn sys_nanosleep(s: &mut Sys, a: Args) -> SysResult {
    let t = super::futex::read_timespec(s, a.u(0))?;
    do_nanosleep(s, t, a.u(1))
}

/// clock_nanosleep(clock, flags, req, rem). The checks come in Linux's order: the clock
/// (EINVAL unknown, EOPNOTSUPP for clocks that cannot sleep), then the request (EFAULT,
/// EINVAL). Flags other than TIMER_ABSTIME are ignored.
pub fn sys_clock_nanosleep(s: &mut Sys, a: Args) -> SysResult {
    let (id, flags, req, rem) = (a.i32(0), a.i32(1), a.u(2), a.u(3));
    let epoch = match id {
        CLOCK_REALTIME | CLOCK_TAI => true,
        CLOCK_MONOTONIC | CLOCK_BOOTTIME => false,
        CLOCK_THREAD_CPUTIME_ID | CLOCK_MONOTONIC_RAW | CLOCK_REALTIME_COARSE | CLOCK_MONOTONIC_COARSE | CLOCK_REALTIME_ALARM
        | CLOCK_BOOTTIME_ALARM => return Err(Errno::EOPNOTSUPP),
        // Sleeping on the process's own CPU clock (posix_cpu_nsleep) is not modelled.
        CLOCK_PROCESS_CPUTIME_ID => {
            if s.k.reported_enosys.insert(u64::MAX - CLOCK_PROCESS_CPUTIME_ID as u64) {
                let _ = writeln!(s.k.streams.stderr, "pagelab: clock_nanosleep on CLOCK_PROCESS_CPUTIME_ID is not implemented; returns EOPNOTSUPP");
            }
            return Err(Errno::EOPNOTSUPP);
        }
        _ => return Err(Errno::EINVAL),
    };
    let t = super::futex::read_timespec(s, req)?;
    if flags & TIMER_ABSTIME != 0 {
        let deadline = if epoch { t.saturating_sub(REALTIME_BASE_NS) } else { t };
        return sleep_until(s, deadline, None);
    }
    do_nanosleep(s, t, rem)
}

/// A relative sleep of `t` ns; `rem` (if not NULL) gets the time left when a signal
/// interrupts it.
fn do_nanosleep(s: &mut Sys, t: u64, rem: u64) -> SysResult {
    let deadline = s.deadline_after(t);
    sleep_until(s, deadline, Some(rem))
}

/// Linux: do_nanosleep and hrtimer_nanosleep. An expired timer wins over a pending signal;
/// `rel_rem` is Some(rmtp) for a relative sleep.
fn sleep_until(s: &mut Sys, deadline: u64, rel_rem: Option<u64>) -> SysResult {
    let now = s.k.now_ns();
    if now >= deadline {
        return ok(0);
    }
    if s.signal_pending() {
        return match rel_rem {
            None => Err(Errno::ERESTARTNOHAND),
            Some(rmtp) => {
                if rmtp != 0 {
                    s.copy_to_user(rmtp, &timespec_bytes(deadline - now))?;
                }
                Err(Errno::ERESTART_RESTARTBLOCK)
            }
        };
    }
    s.block_retry(vec![], WaitWhat::Sleep, Some(deadline))
}
