//! read(2) on a userfaultfd (Linux: fs/userfaultfd.c userfaultfd_read_iter,
//! userfaultfd_ctx_read, resolve_userfault_fork): the messages of pending faults, then of
//! events.

use super::ctx::{UffdCtx, UffdFile, O_NONBLOCK};
use super::ioctl::copy_struct_to_user;
use super::uapi::*;
use crate::kernel::errno::Errno;
use crate::kernel::file::{Fd, File, FileKind};
use crate::kernel::syscall::{ok, Sys, SysResult};
use crate::kernel::task::{WaitKey, WaitWhat};
use std::cell::RefCell;
use std::rc::Rc;

/// A read returns whole messages.
const MSG_SIZE: u64 = size_of::<UffdMsg>() as u64;

/// Linux: userfaultfd_read / userfaultfd_ctx_read. Whole messages, as many as fit;
/// pending faults before events, oldest first; blocks (retried wait) only for the first.
pub fn userfaultfd_read(s: &mut Sys, ctx: &Rc<UffdCtx>, nonblock: bool, fd: i32, buf: u64, count: u64) -> SysResult {
    if !ctx.st.borrow().initialized {
        return Err(Errno::EINVAL);
    }
    let mut done = 0u64;
    let mut no_wait = nonblock;
    loop {
        if count - done < MSG_SIZE {
            return if done > 0 { ok(done) } else { Err(Errno::EINVAL) };
        }
        match ctx_read_one(s, ctx) {
            Some((msg, fork)) => {
                let mut msg = msg;
                if let Some(nctx) = fork {
                    // resolve_userfault_fork: the child's context gets a file and a
                    // descriptor in the reader's table, with this file's flags.
                    let flags = s.files().borrow().get(fd).map(|f| f.file.borrow().flags).unwrap_or(0) & O_NONBLOCK;
                    let cloexec = s.files().borrow().get(fd).is_some_and(|f| f.cloexec);
                    let f = File::new(FileKind::Userfaultfd(UffdFile(nctx)), flags);
                    let nfd = Fd { file: Rc::new(RefCell::new(f)), cloexec };
                    match s.files().borrow_mut().install(nfd, 0) {
                        Some(n) => msg.arg.set(UffdMsgFork { ufd: n as u32 }),
                        None => return if done > 0 { ok(done) } else { Err(Errno::EMFILE) },
                    }
                }
                if copy_struct_to_user(s, buf + done, &msg).is_err() {
                    return if done > 0 { ok(done) } else { Err(Errno::EFAULT) };
                }
                // The first two words of the union, whatever the event.
                let pf: UffdMsgPagefault = msg.arg.get();
                tracing::debug!(target: "pagelab::uffd", uffd = ctx.id, event = msg.event as u64, flags = pf.flags, address = format_args!("{:#x}", pf.address), "message read");
                done += MSG_SIZE;
                no_wait = true;
            }
            None => {
                if done > 0 {
                    return ok(done);
                }
                if s.signal_pending() {
                    return Err(Errno::ERESTARTSYS);
                }
                if no_wait {
                    return Err(Errno::EAGAIN);
                }
                return s.block_retry(vec![ctx.wq.key()], WaitWhat::Read { fd }, None);
            }
        }
    }
}

/// One message: the oldest pending fault (refiled as read), else the oldest event (a
/// non-fork event completes: its thread is woken and mmap_changing drops).
fn ctx_read_one(s: &mut Sys, ctx: &Rc<UffdCtx>) -> Option<(UffdMsg, Option<Rc<UffdCtx>>)> {
    let mut st = ctx.st.borrow_mut();
    if let Some(w) = st.fault_pending.pop_front() {
        let msg = w.msg;
        st.fault_read.push(w);
        return Some((msg, None));
    }
    let e = st.events.pop_front()?;
    st.mmap_changing = st.mmap_changing.saturating_sub(1);
    drop(st);
    s.k.uffd.waiters.remove(&e.key);
    s.k.wake(WaitKey::Obj(e.key));
    Some((e.msg, e.fork_ctx))
}
