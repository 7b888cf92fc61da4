//! Pipes (Linux: fs/pipe.c).
//!
//! A pipe is a ring of page-sized buffers, `max_usage` of them (16 by default, 64 KiB).
//! As in Linux, a write first tops up the last buffer with the write's sub-page tail
//! (`len % 4096` bytes, if they fit) and then fills fresh pages; so a write of at most
//! PIPE_BUF (4096) bytes never straddles two buffers and is atomic, and the capacity seen
//! by small nonblocking writes depends on how they pack into pages, exactly as on Linux.
//! Packet mode (O_DIRECT) buffers never merge and a read takes at most one packet.
//!
//! Readers and writers are counted per open file description: each `PipeEnd` lives in one
//! `File` and its `Drop` is the release (Linux: pipe_release), which wakes the other side
//! when the last reader or writer goes.
//!
//! Blocking: a reader with nothing to read parks on `rd_wait`, a writer short of space on
//! `wr_wait`. Parked calls are re-executed when woken (see `task`), so a blocking write
//! that already moved part of its data records that progress in `partial` and resumes
//! after it; a signal then ends it with the bytes written so far, or ERESTARTSYS.

use super::errno::Errno;
use super::file::{UserIter, WaitQueue, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDNORM, EPOLLWRNORM};
use super::signal::{SigInfo, SIGPIPE};
use super::syscall::{ok, Sys, SysResult};
use super::task::{Tid, WaitWhat};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

const PAGE_SIZE: usize = 4096;
/// Writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;
/// Default number of buffers (Linux: PIPE_DEF_BUFFERS).
pub const PIPE_DEF_BUFFERS: usize = 16;
/// fcntl commands.
pub const F_SETPIPE_SZ: u32 = 1031;
pub const F_GETPIPE_SZ: u32 = 1032;

/// One page of pipe data: bytes `offset..data.len()` are unread.
struct PipeBuffer {
    data: Vec<u8>,
    offset: usize,
    /// Written in packet mode (Linux: PIPE_BUF_FLAG_PACKET); otherwise it may merge.
    packet: bool,
}

impl PipeBuffer {
    fn len(&self) -> usize {
        self.data.len() - self.offset
    }
}

pub struct PipeInner {
    bufs: VecDeque<PipeBuffer>,
    /// Capacity in buffers (Linux: max_usage).
    max_usage: usize,
    pub readers: u32,
    pub writers: u32,
    /// Someone polled the pipe: every write then wakes epoll (Linux: poll_usage).
    poll_usage: bool,
    /// Blocking writes that parked part way: bytes each task already wrote.
    partial: Vec<(Tid, usize)>,
}

impl PipeInner {
    fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }
    fn is_full(&self) -> bool {
        self.bufs.len() >= self.max_usage
    }
    /// Unread bytes (FIONREAD).
    pub fn bytes(&self) -> usize {
        self.bufs.iter().map(|b| b.len()).sum()
    }
}

/// The shared pipe (Linux: struct pipe_inode_info).
pub struct Pipe {
    /// Readers sleep here; writes wake it with EPOLLIN.
    pub rd_wait: WaitQueue,
    /// Writers sleep here; reads that free a buffer wake it with EPOLLOUT.
    pub wr_wait: WaitQueue,
    pub inner: RefCell<PipeInner>,
    /// Inode number (fstat).
    pub ino: u64,
}

/// One end of a pipe, owned by its open file description.
pub struct PipeEnd {
    pub pipe: Rc<Pipe>,
    pub write: bool,
}

impl PipeEnd {
    pub fn wait_queue(&self) -> &WaitQueue {
        if self.write {
            &self.pipe.wr_wait
        } else {
            &self.pipe.rd_wait
        }
    }

    /// Linux: pipe_poll. The read end hangs up when no writer is left; the write end
    /// reports an error when no reader is left.
    pub fn poll(&self) -> u32 {
        let mut p = self.pipe.inner.borrow_mut();
        p.poll_usage = true;
        let mut mask = 0;
        if !self.write {
            if !p.is_empty() {
                mask |= EPOLLIN | EPOLLRDNORM;
            }
            if p.writers == 0 {
                mask |= EPOLLHUP;
            }
        } else {
            if !p.is_full() {
                mask |= EPOLLOUT | EPOLLWRNORM;
            }
            if p.readers == 0 {
                mask |= EPOLLERR;
            }
        }
        mask
    }
}

impl Drop for PipeEnd {
    /// Linux: pipe_release. When the last reader or the last writer goes (but not both),
    /// both sides wake: readers see EOF, writers EPIPE.
    fn drop(&mut self) {
        let wake = {
            let mut p = self.pipe.inner.borrow_mut();
            if self.write {
                p.writers -= 1;
            } else {
                p.readers -= 1;
            }
            (p.readers == 0) != (p.writers == 0)
        };
        if wake {
            self.pipe.rd_wait.wake_up_poll(0);
            self.pipe.wr_wait.wake_up_poll(0);
        }
    }
}

/// Creates a pipe: the read end and the write end (Linux: create_pipe_files).
pub fn create_pipe(k: &mut super::Kernel) -> (PipeEnd, PipeEnd) {
    let pipe = Rc::new(Pipe {
        rd_wait: WaitQueue::new(k),
        wr_wait: WaitQueue::new(k),
        inner: RefCell::new(PipeInner {
            bufs: VecDeque::new(),
            max_usage: PIPE_DEF_BUFFERS,
            readers: 1,
            writers: 1,
            poll_usage: false,
            partial: Vec::new(),
        }),
        ino: k.new_obj_id(),
    });
    (PipeEnd { pipe: pipe.clone(), write: false }, PipeEnd { pipe, write: true })
}

/// Linux: pipe_read. Returns what is there (at least one byte), 0 at EOF, EAGAIN when
/// empty and nonblocking, else sleeps until a writer writes or goes.
pub fn pipe_read(s: &mut Sys, pipe: &Rc<Pipe>, nonblock: bool, fd: i32, mut to: UserIter) -> SysResult {
    let mut total = to.count as usize;
    if total == 0 {
        return ok(0);
    }
    let mut p = pipe.inner.borrow_mut();
    let mut ret = 0usize;
    let mut wake_writer = false;
    let mut fault = false;
    'copy: {
        while let Some(buf) = p.bufs.front() {
            let chars = buf.len().min(total);
            let src = buf.data[buf.offset..buf.offset + chars].to_vec();
            let was_full = p.is_full();
            if to.copy_to(s, &src) < chars {
                fault = true;
                break 'copy;
            }
            ret += chars;
            let buf = p.bufs.front_mut().unwrap();
            buf.offset += chars;
            // A packet is read whole or its rest is dropped.
            if buf.packet {
                total = chars;
                buf.offset = buf.data.len();
            }
            if buf.len() == 0 {
                wake_writer |= was_full;
                p.bufs.pop_front();
            }
            total -= chars;
            if total == 0 {
                break 'copy;
            }
        }
        if p.writers == 0 || ret > 0 {
            break 'copy;
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        if s.signal_pending() {
            return Err(Errno::ERESTARTSYS);
        }
        drop(p);
        return s.block_retry(vec![pipe.rd_wait.key()], WaitWhat::Read { fd }, None);
    }
    // Only a reader that slept passes the wake on (Linux since 5.14: no wake per read, so
    // an edge-triggered epoll sees no event for data that was already there).
    let wake_next_reader = s.restart.is_some() && !p.is_empty();
    drop(p);
    if wake_writer {
        pipe.wr_wait.wake_up_poll(EPOLLOUT | EPOLLWRNORM);
    }
    if wake_next_reader {
        pipe.rd_wait.wake_up_poll(EPOLLIN | EPOLLRDNORM);
    }
    if ret == 0 && fault {
        return Err(Errno::EFAULT);
    }
    ok(ret as u64)
}

/// SIGPIPE to the writer (Linux: send_sig(SIGPIPE, current, 0)).
fn send_sigpipe(s: &mut Sys) {
    let info = SigInfo { signo: SIGPIPE, code: 0, pid: s.tgid(), ..SigInfo::default() };
    super::signal::send_signal(s.k, s.hw, s.tid, info);
}

/// Linux: pipe_write. Writes of at most PIPE_BUF bytes go into one buffer; a blocking
/// write returns once everything is written (or the readers are gone, or a signal
/// interrupts it after some bytes); a nonblocking one writes what fits, or EAGAIN.
pub fn pipe_write(s: &mut Sys, pipe: &Rc<Pipe>, nonblock: bool, packet: bool, fd: i32, mut from: UserIter) -> SysResult {
    let mut p = pipe.inner.borrow_mut();
    if from.count == 0 {
        return ok(0);
    }
    // A re-executed write that parked part way resumes after what it wrote.
    let resumed = match p.partial.iter().position(|(t, _)| *t == s.tid) {
        Some(i) => {
            let (_, done) = p.partial.swap_remove(i);
            s.restart.is_some().then_some(done)
        }
        None => None,
    };
    let mut ret = resumed.unwrap_or(0);
    from.advance(ret as u64);
    let was_empty = p.is_empty();
    let mut wake_next_writer = false;
    let mut err = None;
    let mut block = false;
    if resumed.is_none() {
        if p.readers == 0 {
            drop(p);
            send_sigpipe(s);
            return Err(Errno::EPIPE);
        }
        // Top up the last buffer with the sub-page tail of the write.
        let chars = from.count as usize & (PAGE_SIZE - 1);
        if chars > 0 && !was_empty {
            let last = p.bufs.back().unwrap();
            if !last.packet && last.data.len() + chars <= PAGE_SIZE {
                let data = from.copy_from(s, chars);
                if data.len() < chars {
                    return Err(Errno::EFAULT);
                }
                p.bufs.back_mut().unwrap().data.extend_from_slice(&data);
                ret += chars;
            }
        }
    } else {
        wake_next_writer = true;
    }
    while from.count > 0 {
        if p.readers == 0 {
            drop(p);
            send_sigpipe(s);
            p = pipe.inner.borrow_mut();
            if ret == 0 {
                err = Some(Errno::EPIPE);
            }
            break;
        }
        if !p.is_full() {
            let want = PAGE_SIZE.min(from.count as usize);
            let data = from.copy_from(s, want);
            if data.len() < want {
                if !data.is_empty() {
                    ret += data.len();
                    p.bufs.push_back(PipeBuffer { data, offset: 0, packet });
                } else if ret == 0 {
                    err = Some(Errno::EFAULT);
                }
                break;
            }
            ret += data.len();
            p.bufs.push_back(PipeBuffer { data, offset: 0, packet });
            continue;
        }
        if nonblock {
            if ret == 0 {
                err = Some(Errno::EAGAIN);
            }
            break;
        }
        if s.signal_pending() {
            if ret == 0 {
                err = Some(Errno::ERESTARTSYS);
            }
            break;
        }
        block = true;
        break;
    }
    if block {
        // Sleep for space; what was written so far is remembered for the re-execution.
        p.partial.push((s.tid, ret));
        drop(p);
        if was_empty {
            pipe.rd_wait.wake_up_poll(EPOLLIN | EPOLLRDNORM);
        } else {
            pipe.rd_wait.wake_tasks();
        }
        return s.block_retry(vec![pipe.wr_wait.key()], WaitWhat::Write { fd }, None);
    }
    if p.is_full() {
        wake_next_writer = false;
    }
    let poll_usage = p.poll_usage;
    drop(p);
    if was_empty || poll_usage {
        pipe.rd_wait.wake_up_poll(EPOLLIN | EPOLLRDNORM);
    } else if ret > 0 {
        // Linux wakes readers only when the pipe was empty (no sleeping reader otherwise);
        // tasks here also re-check on spurious wakes, so waking them costs nothing wrong.
        pipe.rd_wait.wake_tasks();
    }
    if wake_next_writer {
        pipe.wr_wait.wake_up_poll(EPOLLOUT | EPOLLWRNORM);
    }
    match err {
        Some(e) => Err(e),
        None => ok(ret as u64),
    }
}

/// F_GETPIPE_SZ / F_SETPIPE_SZ (Linux: pipe_fcntl, pipe_set_size).
pub fn pipe_fcntl(pipe: &Pipe, cmd: u32, arg: u64) -> SysResult {
    let mut p = pipe.inner.borrow_mut();
    match cmd {
        F_GETPIPE_SZ => ok((p.max_usage * PAGE_SIZE) as u64),
        _ => {
            // The argument is an unsigned int (Linux: pipe_fcntl's prototype).
            let arg = arg as u32;
            let size: u64 = if arg > 1 << 31 {
                0
            } else if (arg as usize) < PAGE_SIZE {
                PAGE_SIZE as u64
            } else {
                (arg as u64).next_power_of_two()
            };
            let nr_slots = (size as usize) / PAGE_SIZE;
            if nr_slots == 0 {
                return Err(Errno::EINVAL);
            }
            if nr_slots < p.bufs.len() {
                return Err(Errno::EBUSY);
            }
            p.max_usage = nr_slots;
            drop(p);
            // More room may let writers on.
            pipe.wr_wait.wake_up_poll(EPOLLOUT | EPOLLWRNORM);
            ok((nr_slots * PAGE_SIZE) as u64)
        }
    }
}
