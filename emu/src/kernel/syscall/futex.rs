//! futex(2) (Linux: kernel/futex/). Waiters queue FIFO per futex key in
//! `Kernel::futexes` and block with a completed wait: the waker writes their result.
//!
//! Keys: a PRIVATE futex, or one in private memory, is (mm, address); a futex in a
//! MAP_SHARED mapping is (shared object, offset), so processes sharing memory share it.

use super::{ok, Args, Ret, Sys, SysResult};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::mm::MmId;
use crate::kernel::task::{Blocked, FutexKey, Tid, WaitKey, WaitWhat};
use crate::kernel::Kernel;

pub const FUTEX_WAIT: u32 = 0;
pub const FUTEX_WAKE: u32 = 1;
pub const FUTEX_FD: u32 = 2;
pub const FUTEX_REQUEUE: u32 = 3;
pub const FUTEX_CMP_REQUEUE: u32 = 4;
pub const FUTEX_WAKE_OP: u32 = 5;
pub const FUTEX_WAIT_BITSET: u32 = 9;
pub const FUTEX_WAKE_BITSET: u32 = 10;
pub const FUTEX_PRIVATE_FLAG: u32 = 128;
pub const FUTEX_CLOCK_REALTIME: u32 = 256;
pub const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

/// The key of the futex word at `addr` in address space `mm`.
pub fn futex_key(k: &Kernel, mm: MmId, addr: u64, private: bool) -> FutexKey {
    if !private {
        if let Some(v) = k.mms[mm].as_ref().and_then(|m| m.find_vma(addr)) {
            if v.shared() {
                if let Some(obj) = v.shared_id {
                    return FutexKey::Shared { object: obj, offset: v.object_offset(addr) };
                }
            }
        }
    }
    FutexKey::Private { mm, addr }
}

/// Wakes up to `n` waiters on `key` whose bitset intersects `bitset`, in FIFO order.
/// Returns how many were woken.
pub fn futex_wake(k: &mut Kernel, key: FutexKey, n: u32, bitset: u32) -> u32 {
    let mut woken = Vec::new();
    if let Some(q) = k.futexes.get_mut(&key) {
        let mut i = 0;
        while i < q.len() && (woken.len() as u32) < n {
            if q[i].1 & bitset != 0 {
                woken.push(q.remove(i).unwrap().0);
            } else {
                i += 1;
            }
        }
        if q.is_empty() {
            k.futexes.remove(&key);
        }
    }
    for &t in &woken {
        k.complete(t, 0);
    }
    woken.len() as u32
}

/// Reads a `struct timespec` and validates it (EINVAL for a negative or out-of-range
/// field); returns nanoseconds.
pub fn read_timespec(s: &mut Sys, va: u64) -> KResult<u64> {
    let mut b = [0u8; 16];
    s.copy_from_user(va, &mut b)?;
    let sec = i64::from_le_bytes(b[..8].try_into().unwrap());
    let nsec = i64::from_le_bytes(b[8..].try_into().unwrap());
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64).saturating_mul(1_000_000_000).saturating_add(nsec as u64))
}

fn read_u32(s: &mut Sys, va: u64) -> KResult<u32> {
    let mut b = [0u8; 4];
    s.copy_from_user(va, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

pub fn sys_futex(s: &mut Sys, a: Args) -> SysResult {
    let (uaddr, op, val, utime, _uaddr2, val3) = (a.u(0), a.u32(1), a.u32(2), a.u(3), a.u(4), a.u32(5));
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    if op & FUTEX_CLOCK_REALTIME != 0 && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_WAIT {
        return Err(Errno::ENOSYS);
    }
    if uaddr & 3 != 0 {
        return Err(Errno::EINVAL);
    }
    let mm = s.k.tasks[&s.tid].mm;
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT { FUTEX_BITSET_MATCH_ANY } else { val3 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            // FUTEX_WAIT takes a relative timeout; WAIT_BITSET an absolute one on
            // CLOCK_MONOTONIC, or CLOCK_REALTIME with the flag.
            let deadline = if utime != 0 {
                let t = read_timespec(s, utime)?;
                Some(if cmd == FUTEX_WAIT {
                    s.k.now_ns().saturating_add(t)
                } else if op & FUTEX_CLOCK_REALTIME != 0 {
                    t.saturating_sub(crate::kernel::REALTIME_BASE_SECS * 1_000_000_000)
                } else {
                    t
                })
            } else {
                None
            };
            futex_wait(s, mm, uaddr, val, bitset, private, deadline)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { FUTEX_BITSET_MATCH_ANY } else { val3 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            let key = futex_key(s.k, mm, uaddr, private);
            ok(futex_wake(s.k, key, val, bitset) as u64)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// FUTEX_WAIT: sleep while *uaddr == val (EAGAIN when it differs).
pub fn futex_wait(s: &mut Sys, mm: MmId, uaddr: u64, val: u32, bitset: u32, private: bool, deadline: Option<u64>) -> SysResult {
    let cur = read_u32(s, uaddr)?;
    if cur != val {
        return Err(Errno::EAGAIN);
    }
    if deadline.is_some_and(|d| d <= s.k.now_ns()) {
        return Err(Errno::ETIMEDOUT);
    }
    let key = futex_key(s.k, mm, uaddr, private);
    s.k.futexes.entry(key).or_default().push_back((s.tid, bitset));
    let on_signal = if deadline.is_some() { Errno::ERESTART_RESTARTBLOCK } else { Errno::ERESTARTSYS };
    Ok(Ret::Block(Blocked {
        on: vec![WaitKey::Futex(key)],
        what: WaitWhat::Futex { uaddr },
        deadline,
        interruptible: true,
        retry: false,
        on_signal,
        seq: 0,
    }))
}

/// Waiters queued on `key` (for tests and reports).
pub fn waiters(k: &Kernel, key: &FutexKey) -> Vec<Tid> {
    k.futexes.get(key).map(|q| q.iter().map(|w| w.0).collect()).unwrap_or_default()
}
