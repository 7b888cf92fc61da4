//! Waiting for children (Linux: kernel/exit.c kernel_wait4, kernel_waitid, do_wait,
//! wait_consider_task, wait_task_zombie / _stopped / _continued), and the process-group
//! calls whose groups wait's selectors name (kernel/sys.c setpgid, getpgid, getsid,
//! setsid).
//!
//! A child is a thread group whose `Process::ppid` is the caller's tgid. Zombies stay in
//! `Kernel::procs` with their wait status until a wait reaps them (`exit::release_task`);
//! a stop or continue is reported once (`stop_reported`, `continued`) unless WNOWAIT.
//! Nothing ready and WNOHANG clear: the caller blocks on `WaitKey::Child(tgid)`, which the
//! exit (and stop/continue) paths raise, and re-executes the call when woken.

use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::exit::{CLD_CONTINUED, CLD_DUMPED, CLD_EXITED, CLD_KILLED, CLD_STOPPED};
use crate::kernel::signal::SIGCHLD;
use crate::kernel::task::{Tid, WaitKey, WaitWhat};

pub const WNOHANG: u32 = 1;
/// WUNTRACED for wait4, WSTOPPED for waitid: the same bit.
pub const WUNTRACED: u32 = 2;
pub const WSTOPPED: u32 = 2;
pub const WEXITED: u32 = 4;
pub const WCONTINUED: u32 = 8;
pub const WNOWAIT: u32 = 0x0100_0000;
pub const __WNOTHREAD: u32 = 0x2000_0000;
pub const __WALL: u32 = 0x4000_0000;
pub const __WCLONE: u32 = 0x8000_0000;

pub const P_ALL: u32 = 0;
pub const P_PID: u32 = 1;
pub const P_PGID: u32 = 2;
pub const P_PIDFD: u32 = 3;

const SIGCONT: i32 = 18;

/// Which children a wait is for (Linux: wo_type + wo_pid).
#[derive(Clone, Copy, Debug)]
enum Select {
    Any,
    Pid(Tid),
    Pgid(Tid),
}

/// A child state change a wait found.
#[derive(Clone, Copy, Debug)]
struct Found {
    pid: Tid,
    /// wait4's status word.
    status: i32,
    /// waitid's si_code (CLD_*) and si_status.
    cause: i32,
    info_status: i32,
    /// User time of the child and its reaped children (ns), for the rusage.
    ru: Rusage,
}

/// Linux: do_wait's scan of the caller's children. Ok(Some) = a child to report;
/// Ok(None) = eligible children exist but none is ready; Err(ECHILD) = none at all.
fn do_wait(s: &mut Sys, sel: Select, flags: u32) -> KResult<Option<Found>> {
    let me = s.tgid();
    let children: Vec<Tid> = s.k.procs.values().filter(|p| p.ppid == me).map(|p| p.tgid).collect();
    let mut notask = true;
    for c in children {
        let p = &s.k.procs[&c];
        let eligible_pid = match sel {
            Select::Any => true,
            Select::Pid(x) => c == x,
            Select::Pgid(g) => p.pgid == g,
        };
        if !eligible_pid {
            continue;
        }
        // eligible_child: without __WALL, __WCLONE selects exactly the children that
        // report with a signal other than SIGCHLD.
        if flags & __WALL == 0 && ((p.exit_signal != SIGCHLD) != (flags & __WCLONE != 0)) {
            continue;
        }
        let ru = Rusage::of_child(p);
        if p.zombie {
            // wait_task_zombie: without WEXITED a zombie is not even a candidate.
            if flags & WEXITED == 0 {
                continue;
            }
            let status = p.exit_status.unwrap_or(0);
            let (cause, info_status) = if status & 0x7f == 0 {
                (CLD_EXITED, (status >> 8) & 0xff)
            } else {
                (if status & 0x80 != 0 { CLD_DUMPED } else { CLD_KILLED }, status & 0x7f)
            };
            if flags & WNOWAIT == 0 {
                crate::kernel::exit::release_task(s.k, c);
            }
            return Ok(Some(Found { pid: c, status, cause, info_status, ru }));
        }
        // A live child will stop, continue or exit: there is something to wait for.
        notask = false;
        if flags & WSTOPPED != 0 {
            if let (Some(sig), false) = (p.stopped, p.stop_reported) {
                if flags & WNOWAIT == 0 {
                    s.k.procs.get_mut(&c).unwrap().stop_reported = true;
                }
                return Ok(Some(Found { pid: c, status: (sig << 8) | 0x7f, cause: CLD_STOPPED, info_status: sig, ru }));
            }
        }
        if flags & WCONTINUED != 0 && p.continued {
            if flags & WNOWAIT == 0 {
                s.k.procs.get_mut(&c).unwrap().continued = false;
            }
            return Ok(Some(Found { pid: c, status: 0xffff, cause: CLD_CONTINUED, info_status: SIGCONT, ru }));
        }
    }
    if notask {
        Err(Errno::ECHILD)
    } else {
        Ok(None)
    }
}

/// What getrusage and wait4 report (struct rusage): user time, page faults and the
/// maximum resident set; system time is zero (the guest kernel costs no guest time), and
/// so is what pagelab has no notion of (block I/O, context-switch counts, IPC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rusage {
    pub utime_ns: u64,
    pub maxrss_kb: u64,
    pub minflt: u64,
    pub majflt: u64,
}

impl Rusage {
    /// A reaped or reported child, its own reaped children included (Linux:
    /// wait_task_zombie's accounting).
    fn of_child(p: &crate::kernel::task::Process) -> Rusage {
        Rusage { utime_ns: (p.utime + p.cutime) * crate::kernel::NS_PER_INSTR, maxrss_kb: 0, minflt: p.min_flt + p.cmin_flt, majflt: p.maj_flt + p.cmaj_flt }
    }

    /// struct rusage, 144 bytes: ru_utime, ru_stime (timevals), then ru_maxrss,
    /// ru_ixrss, ru_idrss, ru_isrss, ru_minflt, ru_majflt and eight more longs.
    pub fn to_bytes(self) -> [u8; 144] {
        let mut b = [0u8; 144];
        b[0..8].copy_from_slice(&(self.utime_ns / 1_000_000_000).to_le_bytes());
        b[8..16].copy_from_slice(&((self.utime_ns % 1_000_000_000) / 1000).to_le_bytes());
        b[32..40].copy_from_slice(&self.maxrss_kb.to_le_bytes());
        b[64..72].copy_from_slice(&self.minflt.to_le_bytes());
        b[72..80].copy_from_slice(&self.majflt.to_le_bytes());
        b
    }
}

pub const RUSAGE_SELF: i32 = 0;
pub const RUSAGE_CHILDREN: i32 = -1;
pub const RUSAGE_THREAD: i32 = 1;

/// Linux: getrusage (kernel/sys.c). RUSAGE_SELF: the whole thread group; RUSAGE_THREAD:
/// the calling thread; RUSAGE_CHILDREN: the reaped children (and theirs). ru_maxrss is
/// the current resident set of the address space for SELF and THREAD (pagelab keeps no
/// high-water mark: a smaller figure than Linux's after memory was freed), 0 for
/// CHILDREN. EINVAL for another `who`, EFAULT for a bad buffer.
pub fn sys_getrusage(s: &mut Sys, a: Args) -> SysResult {
    let (who, ru) = (a.i32(0), a.u(1));
    if !matches!(who, RUSAGE_SELF | RUSAGE_THREAD | RUSAGE_CHILDREN) {
        return Err(Errno::EINVAL);
    }
    let maxrss_kb = if who == RUSAGE_CHILDREN { 0 } else { rss_kb(s) };
    let p = &s.k.procs[&s.tgid()];
    let t = &s.k.tasks[&s.tid];
    let r = match who {
        RUSAGE_SELF => Rusage { utime_ns: p.utime * crate::kernel::NS_PER_INSTR, maxrss_kb, minflt: p.min_flt, majflt: p.maj_flt },
        RUSAGE_THREAD => Rusage { utime_ns: t.utime * crate::kernel::NS_PER_INSTR, maxrss_kb, minflt: t.min_flt, majflt: t.maj_flt },
        _ => Rusage { utime_ns: p.cutime * crate::kernel::NS_PER_INSTR, maxrss_kb, minflt: p.cmin_flt, majflt: p.cmaj_flt },
    };
    s.copy_to_user(ru, &r.to_bytes())?;
    ok(0)
}

/// The calling process's resident set in KiB: present PTEs mapping a page (the zero page
/// excluded, as Linux's RSS counters do).
fn rss_kb(s: &mut Sys) -> u64 {
    use crate::kernel::mm::pagewalk::{walk_page_range, MmWalkOps};
    use crate::kernel::mm::pgtable::{linux::_PAGE_SPECIAL, Slot};
    struct Rss<'a>(&'a mmu::PhysMem, u64);
    impl MmWalkOps for Rss<'_> {
        type Break = std::convert::Infallible;
        fn mem(&self) -> &mmu::PhysMem {
            self.0
        }
        fn pte_entry(&mut self, pte: mmu::Entry, _slot: Slot, _addr: u64) -> std::ops::ControlFlow<Self::Break> {
            if pte.is_present() && !pte.has(_PAGE_SPECIAL) {
                self.1 += 1;
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let pml4 = s.mm().pml4;
    let mut w = Rss(&s.hw.mem, 0);
    let std::ops::ControlFlow::Continue(()) = walk_page_range(pml4, 0, crate::kernel::mm::TASK_SIZE & !0xfff, &mut w);
    w.1 * 4
}

/// What a wait does when nothing is ready: WNOHANG returns `nohang`; a pending signal
/// interrupts (ERESTARTSYS, restarted after a SA_RESTART handler); otherwise the caller
/// sleeps until a child changes state and re-executes the call.
fn wait_or_block(s: &mut Sys, flags: u32, pid: i32, nohang: SysResult) -> SysResult {
    if flags & WNOHANG != 0 {
        return nohang;
    }
    if s.signal_pending() {
        return Err(Errno::ERESTARTSYS);
    }
    let me = s.tgid();
    s.block_retry(vec![WaitKey::Child(me)], WaitWhat::Wait { pid }, None)
}

/// wait4(pid, wstatus, options, rusage).
pub fn sys_wait4(s: &mut Sys, a: Args) -> SysResult {
    let (upid, stat_addr, options, ru) = (a.i32(0), a.u(1), a.u32(2), a.u(3));
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WCLONE | __WALL) != 0 {
        return Err(Errno::EINVAL);
    }
    // -INT_MIN is not a pid.
    if upid == i32::MIN {
        return Err(Errno::ESRCH);
    }
    let sel = match upid {
        -1 => Select::Any,
        x if x < 0 => Select::Pgid(-x),
        0 => Select::Pgid(s.k.procs[&s.tgid()].pgid),
        x => Select::Pid(x),
    };
    let flags = options | WEXITED;
    match do_wait(s, sel, flags)? {
        Some(f) => {
            if stat_addr != 0 {
                s.copy_to_user(stat_addr, &f.status.to_le_bytes())?;
            }
            if ru != 0 {
                s.copy_to_user(ru, &f.ru.to_bytes())?;
            }
            ok(f.pid as u64)
        }
        None => wait_or_block(s, flags, upid, ok(0)),
    }
}

/// waitid(idtype, id, infop, options, rusage). Returns 0; the child is reported in the
/// siginfo (si_signo SIGCHLD, si_code CLD_*, si_pid, si_uid, si_status). With WNOHANG and
/// nothing ready those same fields are written as zeros (kernel_waitid's zeroed
/// waitid_info), the rest of the siginfo untouched.
pub fn sys_waitid(s: &mut Sys, a: Args) -> SysResult {
    let (which, upid, infop, options, ru) = (a.u32(0), a.i32(1), a.u(2), a.u32(3), a.u(4));
    if options & !(WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | __WNOTHREAD | __WCLONE | __WALL) != 0 {
        return Err(Errno::EINVAL);
    }
    if options & (WEXITED | WSTOPPED | WCONTINUED) == 0 {
        return Err(Errno::EINVAL);
    }
    let sel = match which {
        P_ALL => Select::Any,
        P_PID if upid <= 0 => return Err(Errno::EINVAL),
        P_PID => Select::Pid(upid),
        P_PGID if upid < 0 => return Err(Errno::EINVAL),
        P_PGID if upid == 0 => Select::Pgid(s.k.procs[&s.tgid()].pgid),
        P_PGID => Select::Pgid(upid),
        // No pidfds exist in pagelab: any descriptor is not one.
        P_PIDFD => return Err(Errno::EBADF),
        _ => return Err(Errno::EINVAL),
    };
    let found = match do_wait(s, sel, options)? {
        Some(f) => f,
        None => {
            if options & WNOHANG == 0 {
                return wait_or_block(s, options, upid, ok(0));
            }
            Found { pid: 0, status: 0, cause: 0, info_status: 0, ru: Rusage::default() }
        }
    };
    let signo = if found.pid > 0 { SIGCHLD } else { 0 };
    if found.pid > 0 && ru != 0 {
        s.copy_to_user(ru, &found.ru.to_bytes())?;
    }
    if infop != 0 {
        // si_signo, si_errno, si_code at 0/4/8; si_pid, si_uid, si_status at 16/20/24.
        let mut b = [0u8; 28];
        b[0..4].copy_from_slice(&signo.to_le_bytes());
        b[8..12].copy_from_slice(&found.cause.to_le_bytes());
        b[16..20].copy_from_slice(&found.pid.to_le_bytes());
        b[24..28].copy_from_slice(&found.info_status.to_le_bytes());
        s.copy_to_user(infop, &b[0..12])?;
        s.copy_to_user(infop + 16, &b[16..28])?;
    }
    ok(0)
}

/// The thread group a pid argument names (0 = the caller's), live or zombie.
fn target(s: &Sys, pid: i32) -> KResult<Tid> {
    if pid == 0 {
        return Ok(s.tgid());
    }
    if pid < 0 {
        return Err(Errno::ESRCH);
    }
    s.k.procs.contains_key(&pid).then_some(pid).ok_or(Errno::ESRCH)
}

/// getpgid(pid).
pub fn sys_getpgid(s: &mut Sys, a: Args) -> SysResult {
    let t = target(s, a.i32(0))?;
    ok(s.k.procs[&t].pgid as u64)
}

/// getsid(pid).
pub fn sys_getsid(s: &mut Sys, a: Args) -> SysResult {
    let t = target(s, a.i32(0))?;
    ok(s.k.procs[&t].sid as u64)
}

/// setpgid(pid, pgid): the caller or one of its children, within the caller's session.
pub fn sys_setpgid(s: &mut Sys, a: Args) -> SysResult {
    let (pid, pgid) = (a.i32(0), a.i32(1));
    let me = s.tgid();
    let pid = if pid == 0 { me } else { pid };
    let pgid = if pgid == 0 { pid } else { pgid };
    if pgid < 0 {
        return Err(Errno::EINVAL);
    }
    let Some(p) = s.k.procs.get(&pid).filter(|p| !p.zombie) else {
        return Err(Errno::ESRCH);
    };
    let my_sid = s.k.procs[&me].sid;
    if pid != me {
        if p.ppid != me {
            return Err(Errno::ESRCH);
        }
        if p.sid != my_sid {
            return Err(Errno::EPERM);
        }
    }
    // A session leader cannot move.
    if p.sid == pid {
        return Err(Errno::EPERM);
    }
    // Joining another group: it must exist in the same session.
    if pgid != pid && !s.k.procs.values().any(|q| q.pgid == pgid && q.sid == my_sid && !q.zombie) {
        return Err(Errno::EPERM);
    }
    s.k.procs.get_mut(&pid).unwrap().pgid = pgid;
    ok(0)
}

/// setsid(): a new session and process group led by the caller, unless it leads a group.
pub fn sys_setsid(s: &mut Sys) -> SysResult {
    let me = s.tgid();
    if s.k.procs.values().any(|p| p.pgid == me) {
        return Err(Errno::EPERM);
    }
    let p = s.k.procs.get_mut(&me).unwrap();
    p.sid = me;
    p.pgid = me;
    ok(me as u64)
}
