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
