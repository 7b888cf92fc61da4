//! poll, ppoll, select, pselect6 and the sigmask/timeout plumbing epoll_pwait shares
//! (Linux: fs/select.c).
//!
//! The waits follow do_poll/do_select: look at every file; if something is ready, or the
//! timeout is zero or has passed, return; if a signal is pending, return ERESTARTNOHAND
//! (restarted when no handler runs, EINTR otherwise); else sleep on the files' wait queues
//! and look again. Timeouts are virtual time. select, pselect6 and ppoll write the time
//! left back to the caller's timeout, as Linux does; poll keeps its deadline across a
//! restart (Linux: restart_block), here by leaving its `Restart` for the re-execution.

use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::Errno;
use crate::kernel::file::{File, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLNVAL, EPOLLOUT, EPOLLPRI, EPOLLRDBAND, EPOLLRDNORM, EPOLLWRBAND, EPOLLWRNORM, RLIMIT_NOFILE};
use crate::kernel::task::{WaitKey, WaitWhat};
use std::cell::RefCell;
use std::rc::Rc;

const NSEC_PER_SEC: u64 = 1_000_000_000;
const SIGKILL_STOP: u64 = (1 << 8) | (1 << 18);

/// Linux: set_user_sigmask. Installs the temporary mask of ppoll/pselect6/epoll_pwait
/// and remembers the old one in `saved_sigmask` (a re-executed wait keeps the first).
pub fn set_user_sigmask(s: &mut Sys, umask: u64, size: u64) -> Result<(), Errno> {
    if umask == 0 {
        return Ok(());
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let m = s.read_u64(umask)?;
    let t = s.k.tasks.get_mut(&s.tid).unwrap();
    if t.saved_sigmask.is_none() {
        t.saved_sigmask = Some(t.sigmask);
    }
    t.sigmask = m & !SIGKILL_STOP;
    Ok(())
}

/// Linux: restore_saved_sigmask_unless. An interrupted wait keeps the temporary mask
/// until the handler has been set up (signal delivery restores it); a parked one keeps it
/// while it sleeps.
pub fn restore_saved_sigmask_unless(s: &mut Sys, interrupted: bool) {
    if interrupted {
        return;
    }
    let t = s.k.tasks.get_mut(&s.tid).unwrap();
    if let Some(m) = t.saved_sigmask.take() {
        t.sigmask = m;
    }
}

/// Reads a timespec; EINVAL unless 0 <= tv_nsec < 1e9 and tv_sec >= 0 (Linux:
/// poll_select_set_timeout). Returns the relative timeout in ns (saturating).
pub fn timespec_timeout(s: &mut Sys, va: u64) -> Result<u64, Errno> {
    let sec = s.read_u64(va)? as i64;
    let nsec = s.read_u64(va + 8)? as i64;
    timeout_ns(sec, nsec)
}

fn timeout_ns(sec: i64, nsec: i64) -> Result<u64, Errno> {
    if sec < 0 || !(0..NSEC_PER_SEC as i64).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64).saturating_mul(NSEC_PER_SEC).saturating_add(nsec as u64))
}

/// Where the remaining time goes back to (Linux: poll_select_finish's pt_type).
#[derive(Clone, Copy, PartialEq, Eq)]
enum TimeType {
    Timeval,
    Timespec,
}

/// Linux: poll_select_finish. Restores the sigmask unless interrupted, and writes the time
/// left (never for a zero timeout); if that write faults, an ERESTARTNOHAND becomes EINTR
/// since the restart could not use the time left.
fn poll_select_finish(s: &mut Sys, deadline: Option<u64>, zero: bool, p: u64, tt: TimeType, ret: SysResult) -> SysResult {
    let interrupted = matches!(ret, Err(e) if e == Errno::ERESTARTNOHAND);
    if matches!(ret, Ok(super::Ret::Block(_))) {
        return ret;
    }
    restore_saved_sigmask_unless(s, interrupted);
    let (Some(d), false) = (deadline, p == 0 || zero) else { return ret };
    let left = d.saturating_sub(s.k.now_ns());
    let (sec, sub) = (left / NSEC_PER_SEC, left % NSEC_PER_SEC);
    let sub = if tt == TimeType::Timeval { sub / 1000 } else { sub };
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&sec.to_le_bytes());
    b[8..].copy_from_slice(&sub.to_le_bytes());
    if s.copy_to_user(p, &b).is_err() && interrupted {
        return Err(Errno::EINTR);
    }
    ret
}

fn fd_file(s: &Sys, fd: i32) -> Option<Rc<RefCell<File>>> {
    s.files().borrow().get(fd).map(|f| f.file.clone())
}

/// Adds the wait queues of `f` to `keys`.
fn add_keys(keys: &mut Vec<WaitKey>, f: &File) {
    for q in f.wait_queues() {
        if !keys.contains(&q.key()) {
            keys.push(q.key());
        }
    }
}

/// Linux: do_sys_poll + do_poll. `timeout_ns`: None = forever.
fn do_sys_poll(s: &mut Sys, ufds: u64, nfds: u64, deadline: Option<u64>, zero: bool) -> SysResult {
    if nfds > RLIMIT_NOFILE as u64 {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; nfds as usize * 8];
    s.copy_from_user(ufds, &mut raw)?;
    let mut count = 0u64;
    let mut keys = Vec::new();
    let mut fds = Vec::new();
    for e in raw.chunks_mut(8) {
        let fd = i32::from_le_bytes(e[..4].try_into().unwrap());
        let events = u16::from_le_bytes(e[4..6].try_into().unwrap()) as u32;
        let revents = if fd < 0 {
            0
        } else {
            match fd_file(s, fd) {
                None => EPOLLNVAL,
                Some(f) => {
                    let f = f.borrow();
                    add_keys(&mut keys, &f);
                    fds.push(fd);
                    f.poll() & (events | EPOLLERR | EPOLLHUP)
                }
            }
        };
        if revents != 0 {
            count += 1;
        }
        e[6..8].copy_from_slice(&(revents as u16).to_le_bytes());
    }
    let ret = if count > 0 {
        ok(count)
    } else if s.signal_pending() {
        Err(Errno::ERESTARTNOHAND)
    } else if zero || s.timed_out(deadline) {
        ok(0)
    } else {
        return s.block_retry(keys, WaitWhat::Poll { fds }, deadline);
    };
    for (i, e) in raw.chunks(8).enumerate() {
        s.copy_to_user(ufds + i as u64 * 8 + 6, &e[6..8])?;
    }
    ret
}

pub fn sys_poll(s: &mut Sys, a: Args) -> SysResult {
    let ms = a.i32(2);
    let deadline = (ms >= 0).then(|| s.deadline_after(ms as u64 * 1_000_000));
    let r = do_sys_poll(s, a.u(0), a.u(1), deadline, ms == 0);
    if matches!(r, Err(e) if e == Errno::ERESTARTNOHAND) && deadline.is_some() {
        // Linux restarts a timed poll through restart_block with the original end time:
        // leave the deadline for the re-execution (the next syscall takes it either way).
        let restart = crate::kernel::task::Restart { nr: s.nr, args: s.args.0, deadline, reason: None };
        s.k.tasks.get_mut(&s.tid).unwrap().restart = Some(restart);
    }
    r
}

pub fn sys_ppoll(s: &mut Sys, a: Args) -> SysResult {
    let (tsp, sigmask, size) = (a.u(2), a.u(3), a.u(4));
    let mut timeout = None;
    if tsp != 0 {
        timeout = Some(timespec_timeout(s, tsp)?);
    }
    set_user_sigmask(s, sigmask, size)?;
    let deadline = timeout.map(|t| s.deadline_after(t));
    let zero = timeout == Some(0);
    let r = do_sys_poll(s, a.u(0), a.u(1), deadline, zero);
    poll_select_finish(s, deadline, zero, tsp, TimeType::Timespec, r)
}

const POLLIN_SET: u32 = EPOLLRDNORM | EPOLLRDBAND | EPOLLIN | EPOLLHUP | EPOLLERR;
const POLLOUT_SET: u32 = EPOLLWRBAND | EPOLLWRNORM | EPOLLOUT | EPOLLERR;
const POLLEX_SET: u32 = EPOLLPRI;

/// Linux: core_sys_select + do_select.
fn core_sys_select(s: &mut Sys, n: i32, sets: [u64; 3], deadline: Option<u64>, zero: bool) -> SysResult {
    if n < 0 {
        return Err(Errno::EINVAL);
    }
    let n = (n as usize).min(s.files().borrow().max_fds());
    let bytes = n.div_ceil(64) * 8;
    let mut inp = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    for (i, &p) in sets.iter().enumerate() {
        if p != 0 {
            s.copy_from_user(p, &mut inp[i])?;
        }
    }
    let bit = |v: &Vec<u8>, fd: usize| v[fd / 8] >> (fd % 8) & 1 != 0;
    // Every descriptor named in a set must be open (Linux: max_select_fd).
    let mut files = Vec::new();
    for fd in 0..n {
        if inp.iter().any(|v| bit(v, fd)) {
            files.push((fd, fd_file(s, fd as i32).ok_or(Errno::EBADF)?));
        }
    }
    let mut res = [vec![0u8; bytes], vec![0u8; bytes], vec![0u8; bytes]];
    let mut count = 0u64;
    let mut keys = Vec::new();
    for (fd, f) in &files {
        let f = f.borrow();
        add_keys(&mut keys, &f);
        let mask = f.poll();
        for (i, set) in [POLLIN_SET, POLLOUT_SET, POLLEX_SET].into_iter().enumerate() {
            if bit(&inp[i], *fd) && mask & set != 0 {
                res[i][fd / 8] |= 1 << (fd % 8);
                count += 1;
            }
        }
    }
    if count == 0 {
        if s.signal_pending() {
            return Err(Errno::ERESTARTNOHAND);
        }
        if !(zero || s.timed_out(deadline)) {
            let fds = files.iter().map(|(fd, _)| *fd as i32).collect();
            return s.block_retry(keys, WaitWhat::Poll { fds }, deadline);
        }
    }
    for (i, &p) in sets.iter().enumerate() {
        if p != 0 {
            s.copy_to_user(p, &res[i])?;
        }
    }
    ok(count)
}

/// Reads select's timeval: tv_usec may exceed a second (it carries into tv_sec); the sum
/// must be a valid timespec.
fn timeval_timeout(s: &mut Sys, va: u64) -> Result<u64, Errno> {
    let sec = s.read_u64(va)? as i64;
    let usec = s.read_u64(va + 8)? as i64;
    timeout_ns(sec.wrapping_add(usec / 1_000_000), (usec % 1_000_000) * 1000)
}

pub fn sys_select(s: &mut Sys, a: Args) -> SysResult {
    let tvp = a.u(4);
    let mut timeout = None;
    if tvp != 0 {
        let mut b = [0u8; 16];
        s.copy_from_user(tvp, &mut b)?;
        timeout = Some(timeval_timeout(s, tvp)?);
    }
    let deadline = timeout.map(|t| s.deadline_after(t));
    let zero = timeout == Some(0);
    let r = core_sys_select(s, a.i32(0), [a.u(1), a.u(2), a.u(3)], deadline, zero);
    poll_select_finish(s, deadline, zero, tvp, TimeType::Timeval, r)
}

/// pselect6: the sixth argument points to { const sigset_t *ss; size_t ss_len }.
pub fn sys_pselect6(s: &mut Sys, a: Args) -> SysResult {
    let (tsp, sig) = (a.u(4), a.u(5));
    let mut timeout = None;
    if tsp != 0 {
        timeout = Some(timespec_timeout(s, tsp)?);
    }
    let (mut ss, mut ss_len) = (0, 0);
    if sig != 0 {
        ss = s.read_u64(sig)?;
        ss_len = s.read_u64(sig + 8)?;
    }
    set_user_sigmask(s, ss, ss_len)?;
    let deadline = timeout.map(|t| s.deadline_after(t));
    let zero = timeout == Some(0);
    let r = core_sys_select(s, a.i32(0), [a.u(1), a.u(2), a.u(3)], deadline, zero);
    poll_select_finish(s, deadline, zero, tsp, TimeType::Timespec, r)
}

/// epoll_wait (no mask), epoll_pwait and epoll_pwait2 (`ts`: timespec timeout).
pub fn sys_epoll_pwait(s: &mut Sys, a: Args, with_mask: bool, ts: bool) -> SysResult {
    let timeout = if ts {
        match a.u(3) {
            0 => None,
            p => Some(timespec_timeout(s, p)?),
        }
    } else {
        let ms = a.i32(3);
        (ms >= 0).then_some(ms as u64 * 1_000_000)
    };
    if with_mask {
        set_user_sigmask(s, a.u(4), a.u(5))?;
    }
    let r = crate::kernel::eventpoll::do_epoll_wait(s, a.i32(0), a.u(1), a.i32(2), timeout);
    if with_mask && !matches!(r, Ok(super::Ret::Block(_))) {
        restore_saved_sigmask_unless(s, matches!(r, Err(e) if e == Errno::EINTR));
    }
    r
}
