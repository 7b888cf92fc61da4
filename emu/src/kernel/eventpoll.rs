//! epoll (Linux: fs/eventpoll.c).
//!
//! An instance holds items keyed by (open file description, fd) and a ready list. An
//! item joins the ready list when the watched object wakes its wait queue with a matching
//! event (Linux: ep_poll_callback), or when EPOLL_CTL_ADD/MOD finds it ready. epoll_wait
//! re-polls each ready item: not ready any more → dropped; reported → kept on the list
//! when level-triggered, dropped when edge-triggered (EPOLLET), disabled when one-shot
//! (EPOLLONESHOT, until EPOLL_CTL_MOD re-arms it). So an edge-triggered item reports once
//! per wake-up of the object, which is what Linux does (e.g. every pipe write wakes
//! readers once an epoll watches the pipe).
//!
//! Items hold the file weakly: closing the last descriptor of a description removes its
//! items (Linux: eventpoll_release), lazily here, the next time the instance looks.

use super::errno::Errno;
use super::file::{File, FileKind, Watcher, WaitQueue, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, EPOLLRDNORM, EP_MAX_NESTS};
use super::syscall::{ok, Sys, SysResult};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

pub const EPOLL_CTL_ADD: i32 = 1;
pub const EPOLL_CTL_DEL: i32 = 2;
pub const EPOLL_CTL_MOD: i32 = 3;
pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
pub const EPOLLWAKEUP: u32 = 1 << 29;
pub const EPOLLONESHOT: u32 = 1 << 30;
pub const EPOLLET: u32 = 1 << 31;
/// Bits that are not events (Linux: EP_PRIVATE_BITS).
const EP_PRIVATE_BITS: u32 = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;
/// What EPOLLEXCLUSIVE may be combined with (Linux: EPOLLEXCLUSIVE_OK_BITS).
const EPOLLEXCLUSIVE_OK_BITS: u32 = EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE;
/// Linux: EP_MAX_EVENTS (INT_MAX / sizeof(struct epoll_event)).
pub const EP_MAX_EVENTS: i32 = i32::MAX / 12;

/// An item's identity for epoll_ctl: the open file description (by address; the item's
/// Weak keeps the allocation, so the address is not reused while the item exists) and the
/// fd. Wait queues and the ready list name items by a unique `id` instead, so that a stale
/// watcher never matches a later item.
pub type ItemKey = (usize, i32);

struct EpItem {
    id: u64,
    key: ItemKey,
    file: Weak<RefCell<File>>,
    events: u32,
    data: u64,
    /// On the ready list (Linux: ep_is_linked).
    ready: bool,
}

#[derive(Default)]
struct EpInner {
    items: Vec<EpItem>,
    ready: VecDeque<u64>,
    next_id: u64,
}

pub struct EventPoll {
    /// epoll_wait sleepers and instances watching this one.
    pub wq: WaitQueue,
    inner: RefCell<EpInner>,
    me: Weak<EventPoll>,
}

fn key_of(file: &Rc<RefCell<File>>, fd: i32) -> ItemKey {
    (Rc::as_ptr(file) as *const u8 as usize, fd)
}

impl EventPoll {
    pub fn new(k: &mut super::Kernel) -> Rc<Self> {
        let wq = WaitQueue::new(k);
        Rc::new_cyclic(|me| EventPoll { wq, inner: RefCell::new(EpInner::default()), me: me.clone() })
    }

    /// The watched object woke with `mask` (Linux: ep_poll_callback).
    pub fn poll_callback(&self, key: u64, mask: u32, depth: u32) {
        {
            let mut inner = self.inner.borrow_mut();
            let EpInner { items, ready, .. } = &mut *inner;
            let Some(it) = items.iter_mut().find(|i| i.id == key) else { return };
            // Disabled one-shot item, or a wake for events it does not want.
            if it.events & !EP_PRIVATE_BITS == 0 || (mask != 0 && mask & it.events == 0) {
                return;
            }
            if !it.ready {
                it.ready = true;
                ready.push_back(key);
            }
        }
        self.wq.wake_up_poll_nested(EPOLLIN, depth + 1);
    }

    /// An epoll file is readable when a ready item really is ready; stale entries leave
    /// the list (Linux: ep_eventpoll_poll / ep_read_events_proc).
    pub fn poll(&self, depth: u32) -> u32 {
        if depth > EP_MAX_NESTS {
            return 0;
        }
        let mut inner = self.inner.borrow_mut();
        let EpInner { items, ready, .. } = &mut *inner;
        let mut found = false;
        let mut keep = VecDeque::new();
        while let Some(key) = ready.pop_front() {
            if found {
                keep.push_back(key);
                continue;
            }
            let Some(it) = items.iter_mut().find(|i| i.id == key) else { continue };
            let revents = it.file.upgrade().map_or(0, |f| item_poll(&f.borrow(), depth + 1) & it.events);
            if revents != 0 {
                found = true;
                keep.push_back(key);
            } else {
                it.ready = false;
            }
        }
        *ready = keep;
        if found {
            EPOLLIN | EPOLLRDNORM
        } else {
            0
        }
    }

    /// Whether `target` is this instance or reachable from it through nested instances.
    fn reaches(&self, target: *const EventPoll, depth: u32) -> bool {
        if std::ptr::eq(self, target) {
            return true;
        }
        if depth > EP_MAX_NESTS {
            return true;
        }
        let inner = self.inner.borrow();
        inner.items.iter().any(|it| {
            it.file.upgrade().is_some_and(|f| match &f.borrow().kind {
                FileKind::Epoll(ep) => ep.reaches(target, depth + 1),
                _ => false,
            })
        })
    }

    /// Drops items whose file description is gone.
    fn prune(&self) {
        let mut inner = self.inner.borrow_mut();
        let EpInner { items, ready, .. } = &mut *inner;
        let dead: Vec<u64> = items.iter().filter(|i| i.file.strong_count() == 0).map(|i| i.id).collect();
        if !dead.is_empty() {
            items.retain(|i| !dead.contains(&i.id));
            ready.retain(|k| !dead.contains(k));
        }
    }
}

/// A file's ready mask, with nesting depth for epoll files.
fn item_poll(f: &File, depth: u32) -> u32 {
    match &f.kind {
        FileKind::Epoll(ep) => ep.poll(depth),
        _ => f.poll(),
    }
}

fn epoll_file(s: &Sys, fd: i32) -> Option<Rc<RefCell<File>>> {
    s.files().borrow().get(fd).map(|f| f.file.clone())
}

/// epoll_create1 (`size` None) and epoll_create.
pub fn sys_epoll_create(s: &mut Sys, flags: u32, size: Option<i32>) -> SysResult {
    if size.is_some_and(|n| n <= 0) {
        return Err(Errno::EINVAL);
    }
    const EPOLL_CLOEXEC: u32 = 0o2000000;
    if flags & !EPOLL_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let ep = EventPoll::new(s.k);
    let file = File::new(FileKind::Epoll(ep), 2);
    let fd = super::file::Fd { file: Rc::new(RefCell::new(file)), cloexec: flags & EPOLL_CLOEXEC != 0 };
    ok(s.files().borrow_mut().install(fd, 0).ok_or(Errno::EMFILE)? as u64)
}

/// Linux: do_epoll_ctl.
pub fn sys_epoll_ctl(s: &mut Sys, epfd: i32, op: i32, fd: i32, event: u64) -> SysResult {
    let (mut events, mut data) = (0u32, 0u64);
    if op != EPOLL_CTL_DEL {
        let mut b = [0u8; 12];
        s.copy_from_user(event, &mut b)?;
        events = u32::from_le_bytes(b[..4].try_into().unwrap());
        data = u64::from_le_bytes(b[4..].try_into().unwrap());
    }
    let f = epoll_file(s, epfd).ok_or(Errno::EBADF)?;
    let tf = epoll_file(s, fd).ok_or(Errno::EBADF)?;
    if !tf.borrow().can_poll(&s.k.streams.tty) {
        return Err(Errno::EPERM);
    }
    let ep = match &f.borrow().kind {
        FileKind::Epoll(ep) if !Rc::ptr_eq(&f, &tf) => ep.clone(),
        _ => return Err(Errno::EINVAL),
    };
    let target_ep = match &tf.borrow().kind {
        FileKind::Epoll(t) => Some(t.clone()),
        _ => None,
    };
    // EPOLLEXCLUSIVE only at ADD, not on epoll files, with few other events.
    if op != EPOLL_CTL_DEL
        && events & EPOLLEXCLUSIVE != 0
        && (op == EPOLL_CTL_MOD || (op == EPOLL_CTL_ADD && (target_ep.is_some() || events & !EPOLLEXCLUSIVE_OK_BITS != 0)))
    {
        return Err(Errno::EINVAL);
    }
    if op == EPOLL_CTL_ADD {
        if let Some(t) = &target_ep {
            if t.reaches(Rc::as_ptr(&ep), 0) {
                return Err(Errno::ELOOP);
            }
        }
    }
    ep.prune();
    let key = key_of(&tf, fd);
    let exists = ep.inner.borrow().items.iter().any(|i| i.key == key);
    match op {
        EPOLL_CTL_ADD => {
            if exists {
                return Err(Errno::EEXIST);
            }
            events |= EPOLLERR | EPOLLHUP;
            let id = {
                let mut inner = ep.inner.borrow_mut();
                inner.next_id += 1;
                let id = inner.next_id;
                inner.items.push(EpItem { id, key, file: Rc::downgrade(&tf), events, data, ready: false });
                id
            };
            for wq in tf.borrow().wait_queues() {
                wq.add_watcher(Watcher { ep: ep.me.clone(), key: id });
            }
        }
        EPOLL_CTL_MOD => {
            if !exists {
                return Err(Errno::ENOENT);
            }
            let mut inner = ep.inner.borrow_mut();
            let it = inner.items.iter_mut().find(|i| i.key == key).unwrap();
            if it.events & EPOLLEXCLUSIVE != 0 {
                return Err(Errno::EINVAL);
            }
            it.events = events | EPOLLERR | EPOLLHUP;
            it.data = data;
        }
        EPOLL_CTL_DEL => {
            if !exists {
                return Err(Errno::ENOENT);
            }
            let mut inner = ep.inner.borrow_mut();
            let id = inner.items.iter().find(|i| i.key == key).unwrap().id;
            inner.items.retain(|i| i.id != id);
            inner.ready.retain(|k| *k != id);
            for wq in tf.borrow().wait_queues() {
                wq.remove_watcher(&ep.me, id);
            }
            return ok(0);
        }
        _ => return Err(Errno::EINVAL),
    }
    // ADD and MOD: queue the item at once if it is ready now (Linux: ep_insert, ep_modify).
    let revents = item_poll(&tf.borrow(), 1);
    let queued = {
        let mut inner = ep.inner.borrow_mut();
        let EpInner { items, ready, .. } = &mut *inner;
        let it = items.iter_mut().find(|i| i.key == key).unwrap();
        if revents & it.events != 0 && !it.ready {
            it.ready = true;
            ready.push_back(it.id);
            true
        } else {
            false
        }
    };
    if queued {
        ep.wq.wake_up_poll(EPOLLIN);
    }
    ok(0)
}

/// Linux: ep_send_events. Copies up to `maxevents` ready events to `uevents`; 0 when
/// none is ready.
fn ep_send_events(s: &mut Sys, ep: &EventPoll, uevents: u64, maxevents: usize) -> Result<usize, Errno> {
    ep.prune();
    let mut tx = std::mem::take(&mut ep.inner.borrow_mut().ready);
    let mut readd = Vec::new();
    let mut res = 0usize;
    let mut fault = false;
    while res < maxevents {
        let Some(key) = tx.pop_front() else { break };
        let (file, events, data) = {
            let inner = ep.inner.borrow();
            let Some(it) = inner.items.iter().find(|i| i.id == key) else { continue };
            (it.file.upgrade(), it.events, it.data)
        };
        let revents = file.map_or(0, |f| item_poll(&f.borrow(), 1) & events);
        let mut inner = ep.inner.borrow_mut();
        let it = inner.items.iter_mut().find(|i| i.id == key).unwrap();
        if revents == 0 {
            it.ready = false;
            continue;
        }
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&revents.to_le_bytes());
        b[4..].copy_from_slice(&data.to_le_bytes());
        drop(inner);
        if s.copy_to_user(uevents + res as u64 * 12, &b).is_err() {
            tx.push_front(key);
            fault = true;
            break;
        }
        res += 1;
        let mut inner = ep.inner.borrow_mut();
        let it = inner.items.iter_mut().find(|i| i.id == key).unwrap();
        if events & EPOLLONESHOT != 0 {
            it.events &= EP_PRIVATE_BITS;
            it.ready = false;
        } else if events & EPOLLET == 0 {
            // Level-triggered: stays queued for the next epoll_wait.
            readd.push(key);
        } else {
            it.ready = false;
        }
    }
    {
        let mut inner = ep.inner.borrow_mut();
        let newer = std::mem::take(&mut inner.ready);
        tx.extend(readd);
        tx.extend(newer);
        inner.ready = tx;
    }
    if res == 0 && fault {
        return Err(Errno::EFAULT);
    }
    Ok(res)
}

/// epoll_wait / epoll_pwait / epoll_pwait2 after the sigmask is in place (Linux:
/// do_epoll_wait, ep_poll). `timeout_ns`: None = forever.
pub fn do_epoll_wait(s: &mut Sys, epfd: i32, events: u64, maxevents: i32, timeout_ns: Option<u64>) -> SysResult {
    if maxevents <= 0 || maxevents > EP_MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    if !super::file::access_ok(events, maxevents as u64 * 12) {
        return Err(Errno::EFAULT);
    }
    let f = epoll_file(s, epfd).ok_or(Errno::EBADF)?;
    let ep = match &f.borrow().kind {
        FileKind::Epoll(ep) => ep.clone(),
        _ => return Err(Errno::EINVAL),
    };
    let n = ep_send_events(s, &ep, events, maxevents as usize)?;
    if n > 0 {
        return ok(n as u64);
    }
    let deadline = timeout_ns.map(|t| s.deadline_after(t));
    if timeout_ns == Some(0) || s.timed_out(deadline) {
        return ok(0);
    }
    if s.signal_pending() {
        return Err(Errno::EINTR);
    }
    s.block_retry(vec![ep.wq.key()], super::task::WaitWhat::Epoll { epfd }, deadline)
}
