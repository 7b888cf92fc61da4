//! futex(2) (Linux: kernel/futex/syscalls.c, core.c, waitwake.c, requeue.c). Waiters
//! queue FIFO per futex key in `Kernel::futexes` (Linux's plist with equal priorities) and
//! block with a completed wait: the waker writes their result (0) into RAX, a timeout
//! writes -ETIMEDOUT and a signal ERESTARTSYS (ERESTART_RESTARTBLOCK with a timeout).
//!
//! Keys (Linux: get_futex_key): a FUTEX_PRIVATE_FLAG futex is (mm, address) without
//! looking at memory; a shared one needs a mapping behind the address (EFAULT otherwise)
//! and is (shared object, offset) in MAP_SHARED memory, else (mm, address) marked shared,
//! which Linux keeps apart from the private key of the same word.
//!
//! The order of the checks is Linux's, because it decides which errno a call with
//! several faults gets: the timeout is validated first (only for the commands that take
//! one), then FUTEX_CLOCK_REALTIME against the command, then the command's own checks.

use super::{ok, Args, Ret, Sys, SysResult};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use crate::kernel::mm::{MmId, TASK_SIZE};
use crate::kernel::task::{Blocked, FutexKey, TaskState, Tid, WaitKey, WaitWhat};
use crate::kernel::Kernel;
use std::io::Write;

pub const FUTEX_WAIT: u32 = 0;
pub const FUTEX_WAKE: u32 = 1;
pub const FUTEX_FD: u32 = 2;
pub const FUTEX_REQUEUE: u32 = 3;
pub const FUTEX_CMP_REQUEUE: u32 = 4;
pub const FUTEX_WAKE_OP: u32 = 5;
pub const FUTEX_LOCK_PI: u32 = 6;
pub const FUTEX_WAIT_BITSET: u32 = 9;
pub const FUTEX_WAKE_BITSET: u32 = 10;
pub const FUTEX_WAIT_REQUEUE_PI: u32 = 11;
pub const FUTEX_LOCK_PI2: u32 = 13;
pub const FUTEX_PRIVATE_FLAG: u32 = 128;
pub const FUTEX_CLOCK_REALTIME: u32 = 256;
pub const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;

/// Robust-futex word bits (Linux: include/uapi/linux/futex.h).
pub const FUTEX_WAITERS: u32 = 0x8000_0000;
pub const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
pub const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Linux stops walking a robust list after this many entries (a loop in user memory).
const ROBUST_LIST_LIMIT: u32 = 2048;

/// Whether a key is taken for reading the word or for writing it (WAKE_OP's second
/// word): a shared key on read-only anonymous memory is EFAULT either way, because such a
/// page "will never change" (Linux's comment), and a write needs a writable mapping.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FutexAccess {
    Read,
    Write,
}

/// The key of the futex word at `addr` in address space `mm` (Linux: get_futex_key).
/// EINVAL when misaligned, EFAULT outside user space or, for a shared futex, when no
/// usable mapping is behind it.
pub fn get_futex_key(k: &Kernel, mm: MmId, addr: u64, private: bool, rw: FutexAccess) -> KResult<FutexKey> {
    if addr & 3 != 0 {
        return Err(Errno::EINVAL);
    }
    if addr > TASK_SIZE - 4 {
        return Err(Errno::EFAULT);
    }
    if private {
        return Ok(FutexKey::Private { mm, addr });
    }
    let vma = k.mms[mm].as_ref().and_then(|m| m.find_vma(addr)).filter(|v| v.start <= addr).ok_or(Errno::EFAULT)?;
    if !vma.readable() || (rw == FutexAccess::Write && !vma.writable()) {
        return Err(Errno::EFAULT);
    }
    if vma.shared() {
        if let Some(object) = vma.shared_id {
            return Ok(FutexKey::Shared { object, offset: vma.object_offset(addr) });
        }
    } else if vma.is_anonymous() && !vma.writable() {
        return Err(Errno::EFAULT);
    }
    Ok(FutexKey::MmShared { mm, addr })
}

/// The key for the kernel's own wakes (CLEARTID at thread exit, robust lists): a
/// shared futex, as Linux's do_futex(FUTEX_WAKE) from mm_release; None if unusable.
pub fn futex_key(k: &Kernel, mm: MmId, addr: u64, private: bool) -> FutexKey {
    get_futex_key(k, mm, addr, private, FutexAccess::Read).unwrap_or(FutexKey::MmShared { mm, addr })
}

/// Wakes up to `nr_wake` waiters on `key` whose bitset intersects `bitset`, in FIFO
/// order. As in Linux (`++ret >= nr_wake`), a count of zero or less still wakes one.
/// Returns how many were woken.
pub fn futex_wake(k: &mut Kernel, key: FutexKey, nr_wake: u32, bitset: u32) -> u32 {
    let limit = (nr_wake as i32).max(1) as u32;
    let mut woken = Vec::new();
    if let Some(q) = k.futexes.get_mut(&key) {
        let mut i = 0;
        while i < q.len() && (woken.len() as u32) < limit {
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
/// field, Linux's timespec64_valid); returns nanoseconds.
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

/// Linux: futex_cmd_has_timeout.
fn cmd_has_timeout(cmd: u32) -> bool {
    matches!(cmd, FUTEX_WAIT | FUTEX_LOCK_PI | FUTEX_LOCK_PI2 | FUTEX_WAIT_BITSET | FUTEX_WAIT_REQUEUE_PI)
}

/// Linux: SYSCALL_DEFINE6(futex) and do_futex.
pub fn sys_futex(s: &mut Sys, a: Args) -> SysResult {
    let (uaddr, op, val, utime, uaddr2, val3) = (a.u(0), a.u32(1), a.u32(2), a.u(3), a.u(4), a.u32(5));
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    let realtime = op & FUTEX_CLOCK_REALTIME != 0;
    // futex_init_timeout: FUTEX_WAIT's timeout is relative to CLOCK_MONOTONIC, the others
    // are absolute on CLOCK_MONOTONIC, or on CLOCK_REALTIME with the flag.
    let mut deadline = None;
    if utime != 0 && cmd_has_timeout(cmd) {
        let t = read_timespec(s, utime)?;
        deadline = Some(if cmd == FUTEX_WAIT {
            s.k.now_ns().saturating_add(t)
        } else if realtime {
            t.saturating_sub(crate::kernel::REALTIME_BASE_SECS * 1_000_000_000)
        } else {
            t
        });
    }
    // Since Linux 6.7 FUTEX_WAIT no longer accepts FUTEX_CLOCK_REALTIME.
    if realtime && !matches!(cmd, FUTEX_WAIT_BITSET | FUTEX_WAIT_REQUEUE_PI | FUTEX_LOCK_PI2) {
        return Err(Errno::ENOSYS);
    }
    let mm = s.k.tasks[&s.tid].mm;
    // REQUEUE and WAKE_OP take their second count from the timeout argument.
    let val2 = utime as u32 as i32;
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT { FUTEX_BITSET_MATCH_ANY } else { val3 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            futex_wait(s, mm, uaddr, val, bitset, private, deadline)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { FUTEX_BITSET_MATCH_ANY } else { val3 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            let key = get_futex_key(s.k, mm, uaddr, private, FutexAccess::Read)?;
            ok(futex_wake(s.k, key, val, bitset) as u64)
        }
        FUTEX_REQUEUE => futex_requeue(s, mm, uaddr, uaddr2, private, val as i32, val2, None),
        FUTEX_CMP_REQUEUE => futex_requeue(s, mm, uaddr, uaddr2, private, val as i32, val2, Some(val3)),
        FUTEX_WAKE_OP => futex_wake_op(s, mm, uaddr, uaddr2, private, val as i32, val2, val3),
        // PI futexes: not modelled (glibc uses them only for PTHREAD_PRIO_INHERIT
        // mutexes); said once on stderr, as other unimplemented calls are.
        6..=8 | 11..=13 => {
            if s.k.reported_enosys.insert(u64::MAX - 202) {
                let _ = writeln!(s.k.streams.stderr, "pagelab: PI futex operations are not implemented; futex({cmd}) returns ENOSYS");
            }
            Err(Errno::ENOSYS)
        }
        // FUTEX_FD (gone since 2.6.26) and unknown commands: Linux's answer.
        _ => Err(Errno::ENOSYS),
    }
}

/// FUTEX_WAIT / FUTEX_WAIT_BITSET (Linux: futex_wait): sleep while *uaddr == val.
/// EAGAIN when the word differs, checked before the timeout, as Linux reads the word
/// before arming its timer.
pub fn futex_wait(s: &mut Sys, mm: MmId, uaddr: u64, val: u32, bitset: u32, private: bool, deadline: Option<u64>) -> SysResult {
    let key = get_futex_key(s.k, mm, uaddr, private, FutexAccess::Read)?;
    let cur = read_u32(s, uaddr)?;
    if cur != val {
        return Err(Errno::EAGAIN);
    }
    if deadline.is_some_and(|d| d <= s.k.now_ns()) {
        return Err(Errno::ETIMEDOUT);
    }
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

/// FUTEX_REQUEUE / FUTEX_CMP_REQUEUE (Linux: futex_requeue without PI): wake `nr_wake`
/// waiters of `uaddr`, move up to `nr_requeue` more to `uaddr2`; returns how many were
/// woken plus requeued. CMP_REQUEUE first checks *uaddr == cmpval (EAGAIN). Requeueing
/// onto the same futex is allowed (only the PI variant refuses it).
#[allow(clippy::too_many_arguments)]
fn futex_requeue(s: &mut Sys, mm: MmId, uaddr: u64, uaddr2: u64, private: bool, nr_wake: i32, nr_requeue: i32, cmpval: Option<u32>) -> SysResult {
    if nr_wake < 0 || nr_requeue < 0 {
        return Err(Errno::EINVAL);
    }
    let key1 = get_futex_key(s.k, mm, uaddr, private, FutexAccess::Read)?;
    let key2 = get_futex_key(s.k, mm, uaddr2, private, FutexAccess::Read)?;
    if let Some(cmp) = cmpval {
        if read_u32(s, uaddr)? != cmp {
            return Err(Errno::EAGAIN);
        }
    }
    let waiters: Vec<(Tid, u32)> = s.k.futexes.get(&key1).map(|q| q.iter().copied().collect()).unwrap_or_default();
    let mut count = 0i64;
    for (tid, bitset) in waiters {
        if count - nr_wake as i64 >= nr_requeue as i64 {
            break;
        }
        count += 1;
        if count <= nr_wake as i64 {
            if let Some(q) = s.k.futexes.get_mut(&key1) {
                q.retain(|w| w.0 != tid);
            }
            s.k.complete(tid, 0);
        } else if key1 != key2 {
            // requeue_futex: the waiter now sleeps on key2 (and reports uaddr2).
            if let Some(q) = s.k.futexes.get_mut(&key1) {
                q.retain(|w| w.0 != tid);
            }
            s.k.futexes.entry(key2).or_default().push_back((tid, bitset));
            if let Some(b) = s.k.tasks.get_mut(&tid).and_then(|t| t.blocked.as_mut()) {
                b.on = vec![WaitKey::Futex(key2)];
                b.what = WaitWhat::Futex { uaddr: uaddr2 };
            }
        }
    }
    if s.k.futexes.get(&key1).is_some_and(|q| q.is_empty()) {
        s.k.futexes.remove(&key1);
    }
    ok(count as u64)
}

const FUTEX_OP_SET: u32 = 0;
const FUTEX_OP_ADD: u32 = 1;
const FUTEX_OP_OR: u32 = 2;
const FUTEX_OP_ANDN: u32 = 3;
const FUTEX_OP_XOR: u32 = 4;

const FUTEX_OP_OPARG_SHIFT: u32 = 8;

/// Sign-extends the low 12 bits.
fn sext12(v: u32) -> i32 {
    ((v << 20) as i32) >> 20
}

/// FUTEX_WAKE_OP (Linux: futex_wake_op and futex_atomic_op_inuser): atomically apply the
/// operation encoded in `encoded_op` to *uaddr2, wake `nr_wake` waiters of `uaddr` (any
/// bitset) and, if the old value of *uaddr2 passes the encoded comparison, `nr_wake2`
/// waiters of `uaddr2`. An unknown operation is ENOSYS before the write; an unknown
/// comparison is ENOSYS after it (the word has changed, nobody is woken). A shift
/// argument outside 0..=31 is masked, as Linux does after its rate-limited complaint.
#[allow(clippy::too_many_arguments)]
fn futex_wake_op(s: &mut Sys, mm: MmId, uaddr: u64, uaddr2: u64, private: bool, nr_wake: i32, nr_wake2: i32, encoded_op: u32) -> SysResult {
    let key1 = get_futex_key(s.k, mm, uaddr, private, FutexAccess::Read)?;
    let key2 = get_futex_key(s.k, mm, uaddr2, private, FutexAccess::Write)?;
    let op = (encoded_op & 0x7000_0000) >> 28;
    let cmp = (encoded_op & 0x0f00_0000) >> 24;
    let mut oparg = sext12((encoded_op & 0x00ff_f000) >> 12);
    let cmparg = sext12(encoded_op & 0xfff);
    if encoded_op & (FUTEX_OP_OPARG_SHIFT << 28) != 0 {
        oparg = 1i32.wrapping_shl((oparg & 31) as u32);
    }
    // x86's arch_futex_atomic_op_inuser rejects an unknown op before touching memory.
    if op > FUTEX_OP_XOR {
        return Err(Errno::ENOSYS);
    }
    let old = read_u32(s, uaddr2)?;
    let oparg = oparg as u32;
    let new = match op {
        FUTEX_OP_SET => oparg,
        FUTEX_OP_ADD => old.wrapping_add(oparg),
        FUTEX_OP_OR => old | oparg,
        FUTEX_OP_ANDN => old & !oparg,
        _ => old ^ oparg,
    };
    // A read-only word faults here (Linux: fault_in_user_writeable fails): EFAULT.
    s.copy_to_user(uaddr2, &new.to_le_bytes())?;
    let old = old as i32;
    // FUTEX_OP_CMP_EQ, NE, LT, LE, GT, GE.
    let wake2 = match cmp {
        0 => old == cmparg,
        1 => old != cmparg,
        2 => old < cmparg,
        3 => old <= cmparg,
        4 => old > cmparg,
        5 => old >= cmparg,
        _ => return Err(Errno::ENOSYS),
    };
    let mut n = futex_wake(s.k, key1, nr_wake as u32, FUTEX_BITSET_MATCH_ANY);
    if wake2 {
        n += futex_wake(s.k, key2, nr_wake2 as u32, FUTEX_BITSET_MATCH_ANY);
    }
    ok(n as u64)
}

/// Marks one robust futex of a dying thread (Linux: handle_futex_death): if the word
/// names `tid` as owner, set FUTEX_OWNER_DIED (keeping FUTEX_WAITERS) and wake one
/// waiter, so that the next locker gets EOWNERDEAD instead of waiting forever.
fn handle_futex_death(k: &mut Kernel, hw: &mut Hw, mm: MmId, uaddr: u64, tid: Tid, pending_op: bool) {
    if uaddr & 3 != 0 {
        return;
    }
    let Some(m) = k.mms[mm].as_mut() else { return };
    let mut b = [0u8; 4];
    if crate::kernel::uaccess::copy_from_user_mm(hw, m, uaddr, &mut b).is_err() {
        return;
    }
    let word = u32::from_le_bytes(b);
    let owner = word & FUTEX_TID_MASK;
    // A pending unlock that already cleared the word still wakes a waiter, so that the
    // wake the dying thread was about to do is not lost (Linux's pending_op case).
    if pending_op && word == 0 {
        let key = futex_key(k, mm, uaddr, false);
        futex_wake(k, key, 1, FUTEX_BITSET_MATCH_ANY);
        return;
    }
    if owner != tid as u32 {
        return;
    }
    let new = (word & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
    if crate::kernel::uaccess::copy_to_user_mm(hw, m, uaddr, &new.to_le_bytes()).is_err() {
        return;
    }
    if word & FUTEX_WAITERS != 0 {
        let key = futex_key(k, mm, uaddr, false);
        futex_wake(k, key, 1, FUTEX_BITSET_MATCH_ANY);
    }
}

/// Walks the robust-futex list a thread registered with set_robust_list when it exits
/// (Linux: exit_robust_list). The head is { next, futex_offset, list_op_pending }; each
/// entry's futex word lies at entry + futex_offset, bit 0 of a pointer flags a PI futex.
/// Bad user memory just ends the walk.
pub fn exit_robust_list(k: &mut Kernel, hw: &mut Hw, tid: Tid) {
    let Some(t) = k.tasks.get(&tid) else { return };
    let (head, mm) = (t.robust_list.0, t.mm);
    if head == 0 || t.state == TaskState::Zombie {
        return;
    }
    let read = |k: &mut Kernel, hw: &mut Hw, va: u64| -> Option<u64> {
        let m = k.mms[mm].as_mut()?;
        let mut b = [0u8; 8];
        crate::kernel::uaccess::copy_from_user_mm(hw, m, va, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    };
    let Some(mut entry) = read(k, hw, head) else { return };
    let Some(offset) = read(k, hw, head + 8) else { return };
    let Some(pending) = read(k, hw, head + 16) else { return };
    let offset = offset as i64;
    let pending_addr = pending & !1;
    let mut limit = ROBUST_LIST_LIMIT;
    while entry & !1 != head {
        let Some(next) = read(k, hw, entry & !1) else { return };
        // The entry being locked or unlocked is handled last, as a pending op.
        if entry & !1 != pending_addr && entry & 1 == 0 {
            handle_futex_death(k, hw, mm, (entry & !1).wrapping_add(offset as u64), tid, false);
        }
        entry = next;
        limit -= 1;
        if limit == 0 {
            break;
        }
    }
    if pending_addr != 0 && pending & 1 == 0 {
        handle_futex_death(k, hw, mm, pending_addr.wrapping_add(offset as u64), tid, true);
    }
}
