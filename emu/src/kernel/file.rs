//! Open files and file-descriptor tables (Linux: struct file, struct files_struct), the
//! wait queues pollable objects wake (Linux: wait_queue_head_t with poll keys), and the
//! user-buffer iterator read/write paths copy through (Linux: struct iov_iter).
//!
//! An open file description is an `Rc<RefCell<File>>`: dup'd descriptors and descriptors
//! inherited over fork share it. Objects that count their open descriptions (a pipe's
//! readers and writers) do so in `Drop` of the `FileKind` payload, so the count follows
//! descriptions, not descriptors.
//!
//! Adding a pollable file kind: add a `FileKind` variant whose object embeds a
//! [`WaitQueue`], answer its ready mask in [`File::poll`] and its queue in
//! [`File::wait_queues`]; poll, select and epoll then work on it unchanged. The object
//! calls `WaitQueue::wake_up_poll(mask)` whenever its state changes.

use super::task::WaitKey;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::{Rc, Weak};

/// Poll bits (Linux: include/uapi/asm-generic/poll.h, eventpoll.h; the same values on x86).
pub const EPOLLIN: u32 = 0x001;
pub const EPOLLPRI: u32 = 0x002;
pub const EPOLLOUT: u32 = 0x004;
pub const EPOLLERR: u32 = 0x008;
pub const EPOLLHUP: u32 = 0x010;
pub const EPOLLNVAL: u32 = 0x020;
pub const EPOLLRDNORM: u32 = 0x040;
pub const EPOLLRDBAND: u32 = 0x080;
pub const EPOLLWRNORM: u32 = 0x100;
pub const EPOLLWRBAND: u32 = 0x200;
pub const EPOLLRDHUP: u32 = 0x2000;
/// What a file without a poll method reports (Linux: DEFAULT_POLLMASK).
pub const DEFAULT_POLLMASK: u32 = EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM;

/// What a descriptor refers to.
pub enum FileKind {
    /// The guest's standard input (the host's, or a test's).
    Stdin,
    /// Standard output or error (1 or 2 on the host side).
    Output(u8),
    /// A host file opened read-only, held in memory (read at open).
    HostFile { path: std::path::PathBuf, data: std::sync::Arc<Vec<u8>>, pos: u64 },
    /// One end of a pipe (see `pipe`).
    Pipe(super::pipe::PipeEnd),
    /// An eventfd counter (see `eventfd`).
    EventFd(Rc<super::eventfd::EventFd>),
    /// An epoll instance (see `eventpoll`).
    Epoll(Rc<super::eventpoll::EventPoll>),
    /// A /proc file generated at each read from live state (/proc/PID/pagemap; see
    /// `procfs::LiveFile`), unlike the snapshot `HostFile`s of the other /proc files.
    ProcLive(super::procfs::LiveFile),
    /// A userfaultfd (see `uffd`).
    Userfaultfd(super::uffd::UffdFile),
    /// /dev/userfaultfd (USERFAULTFD_IOC_NEW).
    DevUserfaultfd,
    /// A memfd or a tmpfs file (see `shmemfs`).
    Shmem(super::shmemfs::ShmemFile),
    /// A tmpfs directory (see `shmemfs`).
    TmpfsDir(super::shmemfs::TmpfsDir),
    /// A /proc or /sys directory, or the root directory: its listing (see
    /// `procfs::ProcDir`).
    ProcDir(super::procfs::ProcDir),
    /// /dev/null (Linux: drivers/char/mem.c null_fops).
    DevNull,
}

pub struct File {
    pub kind: FileKind,
    /// O_* status flags (access mode, O_NONBLOCK, O_APPEND ...), as F_GETFL reports them.
    pub flags: u32,
}

impl File {
    pub fn new(kind: FileKind, flags: u32) -> Self {
        Self { kind, flags }
    }

    /// The file's ready mask (Linux: vfs_poll). Files without a poll method (regular
    /// files) are always ready for reading and writing.
    pub fn poll(&self) -> u32 {
        match &self.kind {
            // Reads of the host's stdin do not sleep in the guest kernel: always ready.
            FileKind::Stdin | FileKind::HostFile { .. } | FileKind::ProcLive(_) | FileKind::Shmem(_) | FileKind::TmpfsDir(_) | FileKind::ProcDir(_) | FileKind::DevNull => DEFAULT_POLLMASK,
            FileKind::Output(_) => EPOLLOUT | EPOLLWRNORM,
            FileKind::Pipe(end) => end.poll(),
            FileKind::EventFd(e) => e.poll(),
            FileKind::Epoll(ep) => ep.poll(0),
            FileKind::Userfaultfd(u) => u.0.poll(self.flags & 0o4000 != 0),
            // A misc device without a poll method.
            FileKind::DevUserfaultfd => DEFAULT_POLLMASK,
        }
    }

    /// Whether the file has a poll method (Linux: file_can_poll); epoll refuses the others
    /// with EPERM. Standard input is treated as /dev/null unless it is a terminal.
    pub fn can_poll(&self, tty: &[bool; 3]) -> bool {
        match &self.kind {
            FileKind::Stdin => tty[0],
            FileKind::HostFile { .. } | FileKind::ProcLive(_) | FileKind::DevUserfaultfd | FileKind::Shmem(_) | FileKind::TmpfsDir(_) | FileKind::ProcDir(_) | FileKind::DevNull => false,
            _ => true,
        }
    }

    /// The wait queues a poller sleeps on (Linux: the heads poll_wait registers).
    pub fn wait_queues(&self) -> Vec<&WaitQueue> {
        match &self.kind {
            FileKind::Pipe(end) => vec![end.wait_queue()],
            FileKind::EventFd(e) => vec![&e.wq],
            FileKind::Epoll(ep) => vec![&ep.wq],
            FileKind::Userfaultfd(u) => vec![&u.0.wq],
            _ => Vec::new(),
        }
    }

    /// The access mode allows reading (Linux: FMODE_READ).
    pub fn readable(&self) -> bool {
        self.flags & 3 != 1
    }
    /// The access mode allows writing (Linux: FMODE_WRITE).
    pub fn writable(&self) -> bool {
        self.flags & 3 != 0
    }
}

/// An epoll instance's interest in a wait queue: which item of which instance.
#[derive(Clone)]
pub struct Watcher {
    pub ep: Weak<super::eventpoll::EventPoll>,
    /// The item's id within the instance.
    pub key: u64,
}

/// A wait queue (Linux: wait_queue_head_t). Tasks sleep on `WaitKey::Obj(id)`; epoll
/// items watching the object are `watchers`. Wakes go through `k.deferred_wakes` so that
/// objects can wake from places the kernel is not at hand (Drop of a pipe end).
pub struct WaitQueue {
    pub id: u64,
    deferred: Rc<RefCell<Vec<WaitKey>>>,
    watchers: RefCell<Vec<Watcher>>,
}

/// How deep epoll instances may nest (Linux: EP_MAX_NESTS), also bounding wake recursion.
pub const EP_MAX_NESTS: u32 = 4;

impl WaitQueue {
    pub fn new(k: &mut super::Kernel) -> Self {
        Self { id: k.new_obj_id(), deferred: k.deferred_wakes.clone(), watchers: RefCell::new(Vec::new()) }
    }

    pub fn key(&self) -> WaitKey {
        WaitKey::Obj(self.id)
    }

    /// Wakes every task sleeping on the queue and tells the watching epoll items that the
    /// object changed with events `mask` (0: any event, as Linux's wake_up_all).
    pub fn wake_up_poll(&self, mask: u32) {
        self.wake_up_poll_nested(mask, 0);
    }

    pub(crate) fn wake_up_poll_nested(&self, mask: u32, depth: u32) {
        self.deferred.borrow_mut().push(self.key());
        if depth > EP_MAX_NESTS {
            return;
        }
        // Clone first: a callback wakes other queues and may prune this list.
        let ws = self.watchers.borrow().clone();
        let mut dead = false;
        for w in ws {
            match w.ep.upgrade() {
                Some(ep) => ep.poll_callback(w.key, mask, depth),
                None => dead = true,
            }
        }
        if dead {
            self.watchers.borrow_mut().retain(|w| w.ep.strong_count() > 0);
        }
    }

    /// Wakes the sleeping tasks only (no epoll event): they re-check their condition.
    pub fn wake_tasks(&self) {
        self.deferred.borrow_mut().push(self.key());
    }

    pub fn add_watcher(&self, w: Watcher) {
        self.watchers.borrow_mut().push(w);
    }

    pub fn remove_watcher(&self, ep: &Weak<super::eventpoll::EventPoll>, key: u64) {
        self.watchers.borrow_mut().retain(|w| !(w.key == key && Weak::ptr_eq(&w.ep, ep)));
    }
}

/// A descriptor slot: the open file (shared between dup'ed descriptors) and FD_CLOEXEC.
#[derive(Clone)]
pub struct Fd {
    pub file: Rc<RefCell<File>>,
    pub cloexec: bool,
}

#[derive(Clone, Default)]
pub struct FdTable {
    pub fds: Vec<Option<Fd>>,
}

pub const RLIMIT_NOFILE: usize = 1024;

impl FdTable {
    pub fn get(&self, fd: i32) -> Option<&Fd> {
        usize::try_from(fd).ok().and_then(|i| self.fds.get(i)).and_then(|f| f.as_ref())
    }
    /// Installs at the lowest free descriptor >= `min`.
    pub fn install(&mut self, fd: Fd, min: usize) -> Option<i32> {
        let i = self.lowest_free(min)?;
        self.install_at(fd, i);
        Some(i as i32)
    }
    /// The lowest free descriptor >= `min` (Linux: alloc_fd's search).
    pub fn lowest_free(&self, min: usize) -> Option<usize> {
        (min..RLIMIT_NOFILE).find(|&i| self.fds.get(i).is_none_or(|s| s.is_none()))
    }
    pub fn install_at(&mut self, fd: Fd, i: usize) {
        if self.fds.len() <= i {
            self.fds.resize(i + 1, None);
        }
        self.fds[i] = Some(fd);
    }
    pub fn close(&mut self, fd: i32) -> Option<Fd> {
        usize::try_from(fd).ok().and_then(|i| self.fds.get_mut(i)).and_then(|s| s.take())
    }
    /// The descriptor table's size as select sees it (Linux: fdtable->max_fds): 64 slots,
    /// grown to a power-of-two multiple of 128 when a higher descriptor is used.
    pub fn max_fds(&self) -> usize {
        let n = self.fds.len();
        if n <= 64 {
            64
        } else {
            ((n - 1) / 128 + 1).next_power_of_two() * 128
        }
    }
}

/// The host side of the guest's standard streams.
pub struct Streams {
    pub stdin: Box<dyn Read + Send>,
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
    /// Whether each of 0, 1, 2 should look like a terminal to the guest.
    pub tty: [bool; 3],
}

/// Highest user address + 1 (Linux: TASK_SIZE_MAX on x86-64 with 4-level paging).
pub const TASK_SIZE_MAX: u64 = 0x7fff_ffff_f000;

/// Linux's access_ok: the range lies below TASK_SIZE_MAX (mapping is checked on copy).
pub fn access_ok(va: u64, len: u64) -> bool {
    va.checked_add(len).is_some_and(|end| end <= TASK_SIZE_MAX)
}

/// A user buffer as a list of segments (Linux: iov_iter over an iovec array), consumed
/// front to back. Copies stop short at the first page that faults, as Linux's do.
pub struct UserIter {
    segs: Vec<(u64, u64)>,
    idx: usize,
    off: u64,
    /// Bytes left.
    pub count: u64,
}

impl UserIter {
    pub fn new(segs: Vec<(u64, u64)>) -> Self {
        let count = segs.iter().map(|s| s.1).sum();
        Self { segs, idx: 0, off: 0, count }
    }

    pub fn single(va: u64, len: u64) -> Self {
        Self::new(vec![(va, len)])
    }

    /// The first segment (address, length): for files that read whole records into one
    /// buffer (userfaultfd has no read_iter of its own beyond the first iovec... Linux's
    /// userfaultfd_read_iter copies message by message; one segment covers read(2)).
    pub fn first_segment(&self) -> (u64, u64) {
        self.segs.get(self.idx).map(|&(b, l)| (b + self.off, l - self.off)).unwrap_or((0, 0))
    }

    /// Advances without copying.
    pub fn advance(&mut self, mut n: u64) {
        n = n.min(self.count);
        self.count -= n;
        while n > 0 {
            let left = self.segs[self.idx].1 - self.off;
            let t = left.min(n);
            self.off += t;
            n -= t;
            if self.off == self.segs[self.idx].1 {
                self.idx += 1;
                self.off = 0;
            }
        }
    }

    /// The next contiguous piece of at most `max` bytes that does not cross a page.
    fn next_piece(&mut self, max: u64) -> Option<(u64, u64)> {
        while self.idx < self.segs.len() && self.off == self.segs[self.idx].1 {
            self.idx += 1;
            self.off = 0;
        }
        let (base, len) = *self.segs.get(self.idx)?;
        let va = base.wrapping_add(self.off);
        let n = (len - self.off).min(max).min(4096 - (va & 0xfff));
        Some((va, n))
    }

    /// Copies `data` to the user buffer; returns how many bytes made it (short on a fault).
    pub fn copy_to(&mut self, s: &mut super::syscall::Sys, data: &[u8]) -> usize {
        let mut done = 0usize;
        while done < data.len() {
            let Some((va, n)) = self.next_piece((data.len() - done) as u64) else { break };
            if s.copy_to_user(va, &data[done..done + n as usize]).is_err() {
                break;
            }
            done += n as usize;
            self.advance(n);
        }
        done
    }

    /// Copies up to `n` bytes from the user buffer (short on a fault or at the end).
    pub fn copy_from(&mut self, s: &mut super::syscall::Sys, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n.min(self.count as usize));
        while out.len() < n {
            let Some((va, m)) = self.next_piece((n - out.len()) as u64) else { break };
            let start = out.len();
            out.resize(start + m as usize, 0);
            if s.copy_from_user(va, &mut out[start..]).is_err() {
                out.truncate(start);
                break;
            }
            self.advance(m);
        }
        out
    }
}
