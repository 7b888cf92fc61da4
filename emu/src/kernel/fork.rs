//! Creating tasks (Linux: kernel/fork.c): clone, clone3, fork and vfork all reach
//! `kernel_clone`, which validates the flags the way copy_process does, shares or copies
//! the address space, descriptor table and signal handlers, and queues the child.

use super::errno::{Errno, KResult};
use super::syscall::{ok, Args, Ret, Sys, SysResult};
use super::task::{Blocked, Process, Task, WaitKey, WaitWhat};
use std::cell::RefCell;
use std::rc::Rc;

pub const CSIGNAL: u64 = 0xff;
pub const CLONE_VM: u64 = 0x100;
pub const CLONE_FS: u64 = 0x200;
pub const CLONE_FILES: u64 = 0x400;
pub const CLONE_SIGHAND: u64 = 0x800;
pub const CLONE_PIDFD: u64 = 0x1000;
pub const CLONE_PTRACE: u64 = 0x2000;
pub const CLONE_VFORK: u64 = 0x4000;
pub const CLONE_PARENT: u64 = 0x8000;
pub const CLONE_THREAD: u64 = 0x10000;
pub const CLONE_NEWNS: u64 = 0x20000;
pub const CLONE_SYSVSEM: u64 = 0x40000;
pub const CLONE_SETTLS: u64 = 0x80000;
pub const CLONE_PARENT_SETTID: u64 = 0x100000;
pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
pub const CLONE_DETACHED: u64 = 0x400000;
pub const CLONE_UNTRACED: u64 = 0x800000;
pub const CLONE_CHILD_SETTID: u64 = 0x1000000;
pub const CLONE_NEWCGROUP: u64 = 0x2000000;
pub const CLONE_NEWUTS: u64 = 0x4000000;
pub const CLONE_NEWIPC: u64 = 0x8000000;
pub const CLONE_NEWUSER: u64 = 0x10000000;
pub const CLONE_NEWPID: u64 = 0x20000000;
pub const CLONE_NEWNET: u64 = 0x40000000;
pub const CLONE_IO: u64 = 0x80000000;
pub const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

const NAMESPACES: u64 = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;

/// struct kernel_clone_args, as clone and clone3 fill it.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
}

/// clone(flags, newsp, parent_tidptr, child_tidptr, tls) — the x86-64 argument order.
pub fn sys_clone(s: &mut Sys, a: Args) -> SysResult {
    let flags = a.u(0) & 0xffff_ffff;
    let args = CloneArgs {
        flags: flags & !CSIGNAL,
        pidfd: a.u(2),
        child_tid: a.u(3),
        parent_tid: a.u(2),
        exit_signal: flags & CSIGNAL,
        stack: a.u(1),
        stack_size: 0,
        tls: a.u(4),
    };
    // Legacy clone ignores CLONE_DETACHED; CLONE_PIDFD with PARENT_SETTID shares the slot.
    if args.flags & CLONE_PIDFD != 0 && args.flags & CLONE_PARENT_SETTID != 0 {
        return Err(Errno::EINVAL);
    }
    kernel_clone(s, args)
}

pub fn sys_fork(s: &mut Sys) -> SysResult {
    kernel_clone(s, CloneArgs { exit_signal: 17, ..Default::default() })
}

pub fn sys_vfork(s: &mut Sys) -> SysResult {
    kernel_clone(s, CloneArgs { flags: CLONE_VFORK | CLONE_VM, exit_signal: 17, ..Default::default() })
}

/// clone3(struct clone_args *, size).
pub fn sys_clone3(s: &mut Sys, a: Args) -> SysResult {
    let (uargs, size) = (a.u(0), a.u(1));
    // CLONE_ARGS_SIZE_VER0 is 64 bytes; larger structs must be zero beyond what we know.
    if size < 64 {
        return Err(Errno::EINVAL);
    }
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    let mut b = vec![0u8; size as usize];
    s.copy_from_user(uargs, &mut b)?;
    let w = |i: usize| if i * 8 + 8 <= b.len() { u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap()) } else { 0 };
    if b.len() > 96 && b[96..].iter().any(|&x| x != 0) {
        return Err(Errno::E2BIG);
    }
    let args = CloneArgs {
        flags: w(0),
        pidfd: w(1),
        child_tid: w(2),
        parent_tid: w(3),
        exit_signal: w(4),
        stack: w(5),
        stack_size: w(6),
        tls: w(7),
    };
    let (set_tid, set_tid_size, cgroup) = (w(8), w(9), w(10));
    // Linux's clone3_args_valid.
    if args.flags & !(CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP | 0xffff_ffff) != 0 || args.flags & (CLONE_DETACHED | CSIGNAL) != 0 {
        return Err(Errno::EINVAL);
    }
    if (set_tid == 0) != (set_tid_size == 0) || set_tid_size > 32 {
        return Err(Errno::EINVAL);
    }
    if args.flags & CLONE_INTO_CGROUP == 0 && cgroup != 0 {
        return Err(Errno::EINVAL);
    }
    if args.exit_signal & !CSIGNAL != 0 || args.exit_signal > 64 {
        return Err(Errno::EINVAL);
    }
    if (args.stack == 0) != (args.stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    if args.flags & (CLONE_SIGHAND | CLONE_CLEAR_SIGHAND) == CLONE_SIGHAND | CLONE_CLEAR_SIGHAND {
        return Err(Errno::EINVAL);
    }
    if set_tid != 0 {
        // Choosing pids needs CAP_SYS_ADMIN in the pid namespace's owner; unsupported.
        return Err(Errno::EPERM);
    }
    let mut args = args;
    if args.stack != 0 {
        args.stack = args.stack.wrapping_add(args.stack_size);
    }
    kernel_clone(s, args)
}

/// Linux's copy_process flag checks, in its order.
fn check_flags(f: u64) -> KResult<()> {
    if f & (CLONE_NEWNS | CLONE_FS) == CLONE_NEWNS | CLONE_FS || f & (CLONE_NEWUSER | CLONE_FS) == CLONE_NEWUSER | CLONE_FS {
        return Err(Errno::EINVAL);
    }
    if f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0 {
        return Err(Errno::EINVAL);
    }
    if f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0 {
        return Err(Errno::EINVAL);
    }
    if f & NAMESPACES != 0 {
        // Namespaces are outside pagelab's machine.
        return Err(Errno::EINVAL);
    }
    Ok(())
}

pub fn kernel_clone(s: &mut Sys, args: CloneArgs) -> SysResult {
    let f = args.flags;
    check_flags(f)?;
    let parent_tid = s.tid;
    let (parent_tgid, parent_mm) = {
        let t = &s.k.tasks[&parent_tid];
        (t.tgid, t.mm)
    };
    // The address space: shared (threads, vfork) or copied for copy-on-write.
    let mm = if f & CLONE_VM != 0 {
        s.k.mm_mut(parent_mm).users += 1;
        parent_mm
    } else {
        // Linux: dup_mm, mm_init (the PML4) then dup_mmap, whose dup_userfaultfd gives a
        // context with UFFD_FEATURE_EVENT_FORK a new context for the child (announced
        // by a FORK event once the fork is done). mm does not make contexts: uffd makes
        // them here, between the two, and dup_mmap hands them to the child's VMAs.
        let pml4 = super::mm::fork::mm_alloc_pgd(s.hw)?;
        let fork_ctxs = super::uffd::dup_userfaultfd(s.k, parent_mm);
        let new = super::mm::fork::dup_mmap(s.k.mms[parent_mm].as_mut().expect("fork from a freed mm"), s.hw, pml4, &fork_ctxs)?;
        let id = s.k.add_mm(new);
        super::uffd::dup_userfaultfd_set_mm(s.k, id);
        id
    };
    let tid = s.k.alloc_tid();
    let mut regs = s.hw.vcpus[s.hw.cur].state.clone();
    regs.gpr[crate::cpu::reg::RAX] = 0;
    if args.stack != 0 {
        regs.gpr[crate::cpu::reg::RSP] = args.stack;
    }
    if f & CLONE_SETTLS != 0 {
        regs.fs_base = args.tls;
    }
    let cr3 = s.k.mms[mm].as_ref().unwrap().pml4.as_u64();
    regs.ctl.cr3 = cr3;
    let parent = &s.k.tasks[&parent_tid];
    let mut child = Task::new(tid, if f & CLONE_THREAD != 0 { parent_tgid } else { tid }, mm, regs);
    child.files = if f & CLONE_FILES != 0 { parent.files.clone() } else { Rc::new(RefCell::new(parent.files.borrow().clone())) };
    child.sigactions = if f & CLONE_SIGHAND != 0 {
        parent.sigactions.clone()
    } else {
        let mut table = *parent.sigactions.borrow();
        if f & CLONE_CLEAR_SIGHAND != 0 {
            // Handlers go back to SIG_DFL; SIG_IGN stays.
            for a in table.iter_mut() {
                if a.handler > 1 {
                    *a = Default::default();
                }
            }
        }
        Rc::new(RefCell::new(table))
    };
    child.sigmask = parent.sigmask;
    child.cpus_allowed = parent.cpus_allowed;
    child.caps = parent.caps;
    // A thread sharing the mm (but not vfork) starts without the alternate stack.
    child.altstack = if f & (CLONE_VM | CLONE_VFORK) == CLONE_VM { super::task::AltStack { sp: 0, flags: 2, size: 0 } } else { parent.altstack };
    if f & CLONE_CHILD_CLEARTID != 0 {
        child.clear_child_tid = args.child_tid;
    }
    if f & CLONE_VFORK != 0 {
        child.vfork_parent = Some(parent_tid);
    }
    s.k.tasks.insert(tid, child);
    if f & CLONE_THREAD != 0 {
        s.k.procs.get_mut(&parent_tgid).unwrap().threads.push(tid);
    } else {
        // CLONE_PARENT: a sibling, which tells the common parent with the caller's own
        // exit signal (copy_process).
        let pp = &s.k.procs[&parent_tgid];
        let (ppid, exit_signal) = if f & CLONE_PARENT != 0 { (pp.ppid, pp.exit_signal) } else { (parent_tgid, args.exit_signal as i32) };
        let mut p = Process::new(tid, ppid);
        p.pgid = pp.pgid;
        p.sid = pp.sid;
        p.exit_signal = exit_signal;
        s.k.procs.insert(tid, p);
    }
    if f & CLONE_PARENT_SETTID != 0 {
        s.copy_to_user(args.parent_tid, &(tid as u32).to_le_bytes())?;
    }
    if f & CLONE_CHILD_SETTID != 0 {
        let m = s.k.mms[mm].as_mut().unwrap();
        // In the child's address space (the parent's for threads).
        let _ = super::uaccess::copy_to_user_mm(s.hw, m, args.child_tid, &(tid as u32).to_le_bytes());
    }
    tracing::debug!(target: "pagelab::sched", parent = parent_tid, child = tid, flags = format_args!("{f:#x}"), "clone");
    s.k.enqueue(tid);
    if f & CLONE_VFORK != 0 {
        // The parent sleeps until the child exits (or execs): uninterruptible here, as
        // Linux's wait_for_vfork_done is killable only.
        s.regs().gpr[crate::cpu::reg::RAX] = tid as u64;
        return Ok(Ret::Block(Blocked {
            on: vec![WaitKey::VforkDone(tid)],
            what: WaitWhat::Vfork { child: tid },
            deadline: None,
            interruptible: false,
            retry: false,
            on_signal: Errno::EINTR,
            seq: 0,
        }));
    }
    // dup_userfaultfd_complete: FORK events; the parent waits until they are read.
    if let Some(b) = super::uffd::dup_userfaultfd_complete(s) {
        s.regs().gpr[crate::cpu::reg::RAX] = tid as u64;
        return Ok(Ret::Block(b));
    }
    ok(tid as u64)
}
