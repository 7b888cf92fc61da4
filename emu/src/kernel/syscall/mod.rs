//! The system-call entry (Linux: arch/x86/entry/common.c do_syscall_64) and the x86-64
//! syscall table. Arguments arrive in RDI, RSI, RDX, R10, R8, R9; the result, or -errno,
//! goes to RAX. Unknown syscalls return ENOSYS and are reported once on stderr.

pub mod fs;
pub mod futex;
pub mod hooks;
mod mm;
pub mod process;
pub mod process_vm;
pub mod select;
pub mod signal;
pub mod time;
pub mod tmpfs;
pub mod wait;

use super::errno::{Errno, KResult};
use super::hw::Hw;
use super::task::UaccessProgress;
use super::Kernel;
use crate::cpu::reg::*;
use std::io::Write;

/// The six syscall arguments.
#[derive(Clone, Copy, Debug)]
pub struct Args(pub [u64; 6]);

impl Args {
    pub fn u(&self, i: usize) -> u64 {
        self.0[i]
    }
    pub fn i32(&self, i: usize) -> i32 {
        self.0[i] as i32
    }
    pub fn u32(&self, i: usize) -> u32 {
        self.0[i] as u32
    }
}

/// Context a handler works with.
pub struct Sys<'a> {
    pub k: &'a mut Kernel,
    pub hw: &'a mut Hw,
    pub tid: super::task::Tid,
    /// The syscall number and arguments of this call.
    pub nr: u64,
    pub args: Args,
    /// Set when this call is the re-execution of a wait that blocked (see `task`).
    pub restart: Option<super::task::Restart>,
}

impl Sys<'_> {
    /// The deadline of a wait with a relative timeout: kept from the first execution when
    /// this is a retry, so that retries do not extend it.
    pub fn deadline_after(&self, timeout_ns: u64) -> u64 {
        match self.restart {
            Some(r) if r.deadline.is_some() => r.deadline.unwrap(),
            _ => self.k.now_ns().saturating_add(timeout_ns),
        }
    }
    /// Why this retried wait was woken (None on the first execution).
    pub fn woken(&self) -> Option<super::task::WakeReason> {
        self.restart.and_then(|r| r.reason)
    }
    /// The wait's deadline has passed.
    pub fn timed_out(&self, deadline: Option<u64>) -> bool {
        deadline.is_some_and(|d| self.k.now_ns() >= d)
    }
    /// A signal the current thread does not block is pending.
    pub fn signal_pending(&self) -> bool {
        super::signal::signal_pending(self.k, self.tid)
    }
    /// Parks the caller; the call is re-executed when a key fires, the deadline passes or
    /// a signal arrives (the usual shape of a blocking syscall).
    pub fn block_retry(&self, on: Vec<super::task::WaitKey>, what: super::task::WaitWhat, deadline: Option<u64>) -> SysResult {
        Ok(Ret::Block(super::task::Blocked {
            on,
            what,
            deadline,
            interruptible: true,
            retry: true,
            on_signal: Errno::EINTR,
            seq: 0,
        }))
    }
    /// The current thread's descriptor table.
    pub fn files(&self) -> std::rc::Rc<std::cell::RefCell<super::file::FdTable>> {
        self.k.tasks[&self.tid].files.clone()
    }
    pub fn tgid(&self) -> super::task::Tid {
        self.k.tasks[&self.tid].tgid
    }
    pub fn mm(&mut self) -> &mut super::mm::Mm {
        let id = self.k.tasks[&self.tid].mm;
        self.k.mms[id].as_mut().expect("mm of a live task")
    }
    /// Split borrow of the hardware and the current mm.
    pub fn hw_mm(&mut self) -> (&mut Hw, &mut super::mm::Mm) {
        let id = self.k.tasks[&self.tid].mm;
        (self.hw, self.k.mms[id].as_mut().expect("mm of a live task"))
    }
    pub fn copy_to_user(&mut self, va: u64, buf: &[u8]) -> KResult<()> {
        let (hw, mm) = self.hw_mm();
        super::uaccess::copy_to_user(hw, mm, va, buf)
    }
    pub fn copy_from_user(&mut self, va: u64, buf: &mut [u8]) -> KResult<()> {
        let (hw, mm) = self.hw_mm();
        super::uaccess::copy_from_user(hw, mm, va, buf)
    }
    pub fn read_u64(&mut self, va: u64) -> KResult<u64> {
        let mut b = [0; 8];
        self.copy_from_user(va, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
    pub fn strncpy_from_user(&mut self, va: u64, max: usize) -> KResult<Vec<u8>> {
        let (hw, mm) = self.hw_mm();
        super::uaccess::strncpy_from_user(hw, mm, va, max)
    }
    pub fn regs(&mut self) -> &mut crate::cpu::CpuState {
        &mut self.hw.vcpus[self.hw.cur].state
    }
}

/// What a handler returns: a value for RAX, "do not touch RAX" (exit, rt_sigreturn), or
/// "park the caller" (see `task::Blocked`).
pub enum Ret {
    Val(u64),
    NoReturn,
    Block(super::task::Blocked),
}

pub type SysResult = KResult<Ret>;

pub fn ok(v: u64) -> SysResult {
    Ok(Ret::Val(v))
}

/// Linux's name of an x86-64 syscall number (for traces and ENOSYS reports).
pub fn syscall_name(nr: u64) -> &'static str {
    NAMES.iter().find(|(n, _)| *n == nr).map(|(_, s)| *s).unwrap_or("?")
}

const NAMES: &[(u64, &str)] = &[
    (0, "read"), (1, "write"), (2, "open"), (3, "close"), (4, "stat"), (5, "fstat"), (6, "lstat"), (7, "poll"),
    (8, "lseek"), (9, "mmap"), (10, "mprotect"), (11, "munmap"), (12, "brk"), (13, "rt_sigaction"),
    (14, "rt_sigprocmask"), (15, "rt_sigreturn"), (16, "ioctl"), (17, "pread64"), (18, "pwrite64"), (19, "readv"),
    (20, "writev"), (21, "access"), (22, "pipe"), (23, "select"), (24, "sched_yield"), (25, "mremap"),
    (26, "msync"), (27, "mincore"), (28, "madvise"), (32, "dup"), (33, "dup2"), (35, "nanosleep"),
    (37, "alarm"), (39, "getpid"), (56, "clone"), (57, "fork"), (58, "vfork"), (59, "execve"), (60, "exit"),
    (61, "wait4"), (62, "kill"), (63, "uname"), (72, "fcntl"), (79, "getcwd"), (89, "readlink"),
    (96, "gettimeofday"), (97, "getrlimit"), (98, "getrusage"), (102, "getuid"), (104, "getgid"), (107, "geteuid"),
    (108, "getegid"), (109, "setpgid"), (110, "getppid"), (111, "getpgrp"), (112, "setsid"),
    (121, "getpgid"), (124, "getsid"), (125, "capget"), (126, "capset"), (131, "sigaltstack"), (157, "prctl"), (158, "arch_prctl"),
    (143, "sched_getparam"), (145, "sched_getscheduler"), (146, "sched_get_priority_max"),
    (147, "sched_get_priority_min"), (186, "gettid"), (201, "time"), (202, "futex"), (203, "sched_setaffinity"), (204, "sched_getaffinity"),
    (218, "set_tid_address"), (228, "clock_gettime"), (229, "clock_getres"), (230, "clock_nanosleep"),
    (231, "exit_group"), (234, "tgkill"), (247, "waitid"), (257, "openat"), (262, "newfstatat"), (267, "readlinkat"),
    (269, "faccessat"), (273, "set_robust_list"), (274, "get_robust_list"), (309, "getcpu"), (293, "pipe2"), (213, "epoll_create"), (232, "epoll_wait"), (233, "epoll_ctl"), (270, "pselect6"),
    (271, "ppoll"), (281, "epoll_pwait"), (284, "eventfd"), (290, "eventfd2"), (291, "epoll_create1"), (441, "epoll_pwait2"),
    (302, "prlimit64"), (318, "getrandom"),
    (323, "userfaultfd"), (310, "process_vm_readv"), (311, "process_vm_writev"), (332, "statx"), (334, "rseq"), (435, "clone3"), (439, "faccessat2"),
    (34, "pause"), (36, "getitimer"), (38, "setitimer"), (127, "rt_sigpending"), (128, "rt_sigtimedwait"),
    (129, "rt_sigqueueinfo"), (130, "rt_sigsuspend"), (200, "tkill"), (297, "rt_tgsigqueueinfo"),
];

/// Maximum bytes one read/write-like call moves (Linux: MAX_RW_COUNT).
pub fn fs_max_rw() -> u64 {
    0x7fff_f000
}

/// Syscalls whose ENOSYS is an answer, not a gap: rseq (glibc then does without); futex,
/// whose ENOSYS for unknown commands is Linux's answer (it reports its own gaps, the PI
/// commands).
const QUIET_ENOSYS: &[u64] = &[334, 202];

/// Handles the SYSCALL exit of the current vCPU.
pub fn do_syscall(k: &mut Kernel, hw: &mut Hw) -> Result<(), crate::Error> {
    let tid = k.current(hw);
    let st = &hw.vcpus[hw.cur].state;
    let nr = st.gpr[RAX];
    let args = Args([st.gpr[RDI], st.gpr[RSI], st.gpr[RDX], st.gpr[R10], st.gpr[R8], st.gpr[R9]]);
    tracing::debug!(target: "pagelab::syscall", tid, nr, name = syscall_name(nr), a0 = args.0[0], a1 = args.0[1], a2 = args.0[2], "enter");
    // The access retried after a resolved userfault completed without faulting again:
    // that retry was the fault's completion (mm_account_fault).
    if std::mem::take(&mut k.tasks.get_mut(&tid).unwrap().fault_retried) {
        k.account_fault(tid, false);
    }
    let restart = {
        let t = k.tasks.get_mut(&tid).unwrap();
        t.orig_rax = nr;
        t.restart.take().filter(|r| r.nr == nr && r.args == args.0)
    };
    // A read or write resumed after a userfault stopped its copy: the rest of the buffer.
    let progress = k.tasks.get_mut(&tid).unwrap().uaccess_progress.take().filter(|p| p.nr == nr && p.args == args.0);
    let dargs = progress.map_or(args, |p| resume_args(nr, args, p.done));
    let mut s = Sys { k, hw, tid, nr, args: dargs, restart };
    s.hw.uffd_kfault = None;
    s.hw.uaccess_faults = 0;
    let r = dispatch(&mut s, nr, dargs);
    for _ in 0..std::mem::take(&mut s.hw.uaccess_faults) {
        s.k.account_fault(s.tid, false);
    }
    let done = progress.map_or(0, |p| p.done);
    let r = match (s.hw.uffd_kfault.take(), r) {
        // The copy moved `v` bytes and stopped at a userfault: wait for it like a copy
        // that moved nothing, then go on from there.
        (Some(f), Ok(Ret::Val(v))) if RESUMABLE.contains(&nr) && v as i64 > 0 => match super::uffd::kernel_fault(&mut s, f, Ok(Ret::Val(0))) {
            Ok(Ret::Block(b)) => {
                s.k.tasks.get_mut(&tid).unwrap().uaccess_progress = Some(UaccessProgress { nr, args: args.0, done: done + v });
                Ok(Ret::Block(b))
            }
            _ => Ok(Ret::Val(v)),
        },
        (Some(f), r) => match super::uffd::kernel_fault(&mut s, f, r) {
            Ok(Ret::Block(b)) if done > 0 => {
                s.k.tasks.get_mut(&tid).unwrap().uaccess_progress = progress;
                Ok(Ret::Block(b))
            }
            r => r,
        },
        (None, r) => r,
    };
    // What a resumed call moved before adds to its result; a later error returns the
    // bytes moved, as a short copy does.
    let r = match r {
        Ok(Ret::Val(v)) if done > 0 => Ok(Ret::Val(done + v)),
        Err(_) if done > 0 => Ok(Ret::Val(done)),
        r => r,
    };
    let r = match r {
        Err(e) if e == Errno::ENOSYS => {
            if !QUIET_ENOSYS.contains(&nr) && s.k.reported_enosys.insert(nr) {
                let _ = writeln!(s.k.streams.stderr, "pagelab: unimplemented syscall {nr} ({}) returns ENOSYS", syscall_name(nr));
            }
            Err(e)
        }
        r => r,
    };
    let ret = match r {
        Ok(Ret::Val(v)) => v,
        Ok(Ret::NoReturn) => return Ok(()),
        Ok(Ret::Block(b)) => {
            let restart = b.retry.then(|| super::task::Restart { nr, args: args.0, deadline: b.deadline, reason: None });
            s.k.block_current(s.hw, b, restart);
            return Ok(());
        }
        Err(e) => (-(e.0 as i64)) as u64,
    };
    tracing::debug!(target: "pagelab::syscall", tid, nr, name = syscall_name(nr), ret = ret as i64, "exit");
    if let Some(v) = s.hw.vcpus.get_mut(s.hw.cur) {
        if s.k.running[s.hw.cur] == Some(tid) {
            v.state.gpr[RAX] = ret;
        }
    }
    Ok(())
}

/// The syscalls whose copy may stop at a userfault after moving some bytes and resume
/// (`Task::uaccess_progress`): read, write, pread64, pwrite64.
const RESUMABLE: &[u64] = &[0, 1, 17, 18];

/// The arguments of a RESUMABLE call `done` bytes on: the buffer and count advanced, and
/// the file offset of pread64/pwrite64.
fn resume_args(nr: u64, a: Args, done: u64) -> Args {
    let mut r = a.0;
    r[1] += done;
    r[2] -= done;
    if nr == 17 || nr == 18 {
        r[3] += done;
    }
    Args(r)
}

fn dispatch(s: &mut Sys, nr: u64, a: Args) -> SysResult {
    match nr {
        0 => fs::sys_read(s, a),
        1 => fs::sys_write(s, a),
        2 => fs::sys_open(s, a.u(0), a.u32(1), -100),
        3 => fs::sys_close(s, a),
        4 | 6 => fs::sys_stat_path(s, a.u(0), a.u(1)),
        5 => fs::sys_fstat(s, a.i32(0), a.u(1)),
        8 => fs::sys_lseek(s, a),
        9 => mm::sys_mmap(s, a),
        10 => mm::sys_mprotect(s, a),
        11 => mm::sys_munmap(s, a),
        12 => mm::sys_brk(s, a),
        13 => signal::sys_rt_sigaction(s, a),
        14 => signal::sys_rt_sigprocmask(s, a),
        15 => signal::sys_rt_sigreturn(s),
        34 => signal::sys_pause(s),
        35 => time::sys_nanosleep(s, a),
        36 => signal::sys_getitimer(s, a),
        37 => signal::sys_alarm(s, a),
        38 => signal::sys_setitimer(s, a),
        62 => signal::sys_kill(s, a),
        127 => signal::sys_rt_sigpending(s, a),
        128 => signal::sys_rt_sigtimedwait(s, a),
        129 => signal::sys_rt_sigqueueinfo(s, a),
        130 => signal::sys_rt_sigsuspend(s, a),
        200 => signal::sys_tkill(s, a),
        234 => signal::sys_tgkill(s, a),
        297 => signal::sys_rt_tgsigqueueinfo(s, a),
        16 => fs::sys_ioctl(s, a),
        17 => fs::sys_pread(s, a),
        74 | 75 => fs::sys_fsync(s, a),
        18 => fs::sys_pwrite(s, a),
        19 => fs::sys_readv(s, a),
        20 => fs::sys_writev(s, a),
        21 => fs::sys_access(s, a.u(0)),
        24 => process::sys_sched_yield(s),
        25 => mm::sys_mremap(s, a),
        26 => mm::sys_msync(s, a),
        27 => mm::sys_mincore(s, a),
        28 => mm::sys_madvise(s, a),
        149 => mm::sys_mlock(s, a),
        150 => mm::sys_munlock(s, a),
        325 => mm::sys_mlock2(s, a),
        151 => mm::sys_mlockall(s, a),
        152 => mm::sys_munlockall(s, a),
        32 => fs::sys_dup(s, a),
        33 => fs::sys_dup3(s, a.i32(0), a.i32(1), 0, true),
        39 => ok(s.tgid() as u64),
        56 => crate::kernel::fork::sys_clone(s, a),
        57 => crate::kernel::fork::sys_fork(s),
        58 => crate::kernel::fork::sys_vfork(s),
        60 => process::sys_exit(s, a),
        61 => wait::sys_wait4(s, a),
        98 => wait::sys_getrusage(s, a),
        63 => process::sys_uname(s, a),
        72 => fs::sys_fcntl(s, a),
        79 => fs::sys_getcwd(s, a),
        89 => fs::sys_readlink(s, a.u(0), a.u(1), a.u(2)),
        96 => time::sys_gettimeofday(s, a),
        97 => process::sys_getrlimit(s, a),
        102 | 104 | 107 | 108 => ok(0),
        109 => wait::sys_setpgid(s, a),
        110 => ok(s.k.procs[&s.tgid()].ppid as u64),
        112 => wait::sys_setsid(s),
        121 => wait::sys_getpgid(s, a),
        124 => wait::sys_getsid(s, a),
        111 => ok(s.k.procs[&s.tgid()].pgid as u64),
        125 => crate::kernel::capability::sys_capget(s, a),
        126 => crate::kernel::capability::sys_capset(s, a),
        131 => signal::sys_sigaltstack(s, a),
        157 => process::sys_prctl(s, a),
        158 => process::sys_arch_prctl(s, a),
        186 => ok(s.tid as u64),
        202 => futex::sys_futex(s, a),
        201 => time::sys_time(s, a),
        203 => process::sys_sched_setaffinity(s, a),
        143 => process::sys_sched_getparam(s, a),
        145 => process::sys_sched_getscheduler(s, a),
        146 => process::sys_sched_get_priority(a, true),
        147 => process::sys_sched_get_priority(a, false),
        274 => process::sys_get_robust_list(s, a),
        309 => process::sys_getcpu(s, a),
        204 => process::sys_sched_getaffinity(s, a),
        218 => process::sys_set_tid_address(s, a),
        228 => time::sys_clock_gettime(s, a),
        230 => time::sys_clock_nanosleep(s, a),
        229 => time::sys_clock_getres(s, a),
        231 => process::sys_exit_group(s, a),
        247 => wait::sys_waitid(s, a),
        257 => fs::sys_open(s, a.u(1), a.u32(2), a.i32(0)),
        262 => fs::sys_newfstatat(s, a),
        267 => fs::sys_readlink(s, a.u(1), a.u(2), a.u(3)),
        269 | 439 => fs::sys_access(s, a.u(1)),
        273 => process::sys_set_robust_list(s, a),
        292 => fs::sys_dup3(s, a.i32(0), a.i32(1), a.u32(2), false),
        302 => process::sys_prlimit64(s, a),
        318 => process::sys_getrandom(s, a),
        323 => crate::kernel::uffd::sys_userfaultfd(s, a.u32(0)),
        319 => tmpfs::sys_memfd_create(s, a),
        76 => tmpfs::sys_truncate(s, a),
        77 => tmpfs::sys_ftruncate(s, a),
        285 => tmpfs::sys_fallocate(s, a),
        83 => tmpfs::sys_mkdirat(s, fs::AT_FDCWD, a.u(0)),
        258 => tmpfs::sys_mkdirat(s, a.i32(0), a.u(1)),
        84 => tmpfs::sys_unlinkat(s, fs::AT_FDCWD, a.u(0), 0x200),
        87 => tmpfs::sys_unlinkat(s, fs::AT_FDCWD, a.u(0), 0),
        263 => tmpfs::sys_unlinkat(s, a.i32(0), a.u(1), a.u32(2)),
        82 => tmpfs::sys_renameat2(s, fs::AT_FDCWD, a.u(0), fs::AT_FDCWD, a.u(1), 0),
        264 => tmpfs::sys_renameat2(s, a.i32(0), a.u(1), a.i32(2), a.u(3), 0),
        316 => tmpfs::sys_renameat2(s, a.i32(0), a.u(1), a.i32(2), a.u(3), a.u32(4)),
        217 => tmpfs::sys_getdents64(s, a),
        137 => tmpfs::sys_statfs(s, a),
        138 => tmpfs::sys_fstatfs(s, a),
        310 => process_vm::sys_process_vm_rw(s, a, false),
        311 => process_vm::sys_process_vm_rw(s, a, true),
        // rseq: glibc treats ENOSYS as "not available" and carries on.
        334 => Err(Errno::ENOSYS),
        435 => crate::kernel::fork::sys_clone3(s, a),
        7 => select::sys_poll(s, a),
        22 => fs::sys_pipe2(s, a.u(0), 0),
        23 => select::sys_select(s, a),
        213 => crate::kernel::eventpoll::sys_epoll_create(s, 0, Some(a.i32(0))),
        232 => select::sys_epoll_pwait(s, a, false, false),
        233 => crate::kernel::eventpoll::sys_epoll_ctl(s, a.i32(0), a.i32(1), a.i32(2), a.u(3)),
        270 => select::sys_pselect6(s, a),
        271 => select::sys_ppoll(s, a),
        281 => select::sys_epoll_pwait(s, a, true, false),
        284 => fs::sys_eventfd2(s, a.u32(0), 0),
        290 => fs::sys_eventfd2(s, a.u32(0), a.u32(1)),
        291 => crate::kernel::eventpoll::sys_epoll_create(s, a.u32(0), None),
        293 => fs::sys_pipe2(s, a.u(0), a.u32(1)),
        441 => select::sys_epoll_pwait(s, a, true, true),
        hooks::PAGELAB_HOOK if s.k.opts.test_hooks => hooks::sys_pagelab_hook(s, a),
        _ => Err(Errno::ENOSYS),
    }
}
