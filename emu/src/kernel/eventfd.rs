//! eventfd (Linux: fs/eventfd.c): a 64-bit counter. A write adds to it (sleeping while
//! the sum would reach 2^64-1), a read takes it all, or 1 in semaphore mode (sleeping
//! while it is zero). Reads and writes move exactly 8 bytes.

use super::errno::Errno;
use super::file::{UserIter, WaitQueue, EPOLLERR, EPOLLIN, EPOLLOUT};
use super::syscall::{ok, Sys, SysResult};
use super::task::WaitWhat;
use std::cell::Cell;

pub const EFD_SEMAPHORE: u32 = 1;

pub struct EventFd {
    pub wq: WaitQueue,
    pub count: Cell<u64>,
    pub semaphore: bool,
}

impl EventFd {
    pub fn new(k: &mut super::Kernel, initval: u64, semaphore: bool) -> Self {
        Self { wq: WaitQueue::new(k), count: Cell::new(initval), semaphore }
    }

    /// Linux: eventfd_poll. Writable while one more 1 fits; ERR once the counter
    /// saturated (only reachable through the kernel-internal eventfd_signal).
    pub fn poll(&self) -> u32 {
        let c = self.count.get();
        let mut mask = 0;
        if c > 0 {
            mask |= EPOLLIN;
        }
        if c == u64::MAX {
            mask |= EPOLLERR;
        }
        if u64::MAX - 1 > c {
            mask |= EPOLLOUT;
        }
        mask
    }
}

/// Linux: eventfd_read.
pub fn eventfd_read(s: &mut Sys, e: &EventFd, nonblock: bool, fd: i32, mut to: UserIter) -> SysResult {
    if to.count < 8 {
        return Err(Errno::EINVAL);
    }
    if e.count.get() == 0 {
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        if s.signal_pending() {
            return Err(Errno::ERESTARTSYS);
        }
        return s.block_retry(vec![e.wq.key()], WaitWhat::Read { fd }, None);
    }
    let ucnt = if e.semaphore { 1 } else { e.count.get() };
    // Linux consumes the counter, then copies, sleeping inside the copy on a userfault.
    // pagelab re-runs the whole call once such a fault is resolved, so the copy comes
    // first here and a userfault leaves the counter as it was: the re-run reads the same
    // value. Any other fault consumes it, as in Linux (EFAULT).
    let copied = to.copy_to(s, &ucnt.to_le_bytes());
    if copied != 8 && s.hw.uffd_kfault.is_some() {
        return Err(Errno::EFAULT);
    }
    e.count.set(e.count.get() - ucnt);
    e.wq.wake_up_poll(EPOLLOUT);
    if copied != 8 {
        return Err(Errno::EFAULT);
    }
    ok(8)
}

/// Linux: eventfd_write (one call per iovec segment for writev: eventfd has no
/// write_iter).
pub fn eventfd_write(s: &mut Sys, e: &EventFd, nonblock: bool, fd: i32, buf: u64, count: u64) -> SysResult {
    if count < 8 {
        return Err(Errno::EINVAL);
    }
    let ucnt = s.read_u64(buf)?;
    if ucnt == u64::MAX {
        return Err(Errno::EINVAL);
    }
    if u64::MAX - e.count.get() <= ucnt {
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        if s.signal_pending() {
            return Err(Errno::ERESTARTSYS);
        }
        return s.block_retry(vec![e.wq.key()], WaitWhat::Write { fd }, None);
    }
    e.count.set(e.count.get() + ucnt);
    e.wq.wake_up_poll(EPOLLIN);
    ok(8)
}
