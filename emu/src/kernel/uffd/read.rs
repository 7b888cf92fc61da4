//! read(2) on a userfaultfd (Linux: fs/userfaultfd.c userfaultfd_read_iter,
//! userfaultfd_ctx_read, resolve_userfault_fork): the messages of pending faults, then of
//! events.

use super::ctx::{UffdCtx, UffdFile, O_NONBLOCK};
use super::uapi::*;
use crate::kernel::errno::Errno;
use crate::kernel::file::{Fd, File, FileKind};
use crate::kernel::syscall::{ok, Sys, SysResult};
use crate::kernel::task::{WaitKey, WaitWhat};
use std::cell::RefCell;
use std::rc::Rc;

/// Linux: userfaultfd_read / userfaultfd_ctx_read. Whole messages, as many as fit;
/// pending faults before events, oldest first; blocks (retried wait) only for the first.
pub fn userfaultfd_read(s: &mut Sys, ctx: &Rc<UffdCtx>, nonblock: bool, fd: i32, buf: u64, count: u64) -> SysResult {
    if !ctx.st.borrow().initialized {
        return Err(Errno::EINVAL);
    }
    let mut done = 0u64;
    let mut no_wait = nonblock;
    loop {
        if count - done < 32 {
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
                        Some(n) => msg[8..12].copy_from_slice(&(n as u32).to_le_bytes()),
                        None => return if done > 0 { ok(done) } else { Err(Errno::EMFILE) },
                    }
                }
                if s.copy_to_user(buf + done, &msg).is_err() {
                    return if done > 0 { ok(done) } else { Err(Errno::EFAULT) };
                }
                tracing::debug!(target: "pagelab::uffd", uffd = ctx.id, event = msg[0] as u64, flags = get_u64(&msg, 8), address = format_args!("{:#x}", get_u64(&msg, 16)), "message read");
                done += 32;
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
fn ctx_read_one(s: &mut Sys, ctx: &Rc<UffdCtx>) -> Option<(Msg, Option<Rc<UffdCtx>>)> {
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
