//! Process and thread syscalls: exit, exit_group, uname, arch_prctl, set_tid_address,
//! set_robust_list, prlimit64/getrlimit, getrandom, sched_getaffinity. The signal calls are
//! in `signal`.

use super::{ok, Args, Ret, Sys, SysResult};
use crate::kernel::errno::Errno;
use crate::Outcome;

pub fn sys_exit_group(s: &mut Sys, a: Args) -> SysResult {
    let status = a.i32(0) & 0xff;
    s.k.exit_group(s.hw, s.tid, Outcome::Exited(status));
    Ok(Ret::NoReturn)
}

/// exit(2): this thread; the group ends with its last thread.
pub fn sys_exit(s: &mut Sys, a: Args) -> SysResult {
    crate::kernel::exit::do_exit(s.k, s.hw, s.tid, a.i32(0) & 0xff);
    Ok(Ret::NoReturn)
}

/// sched_yield: to the back of the run queue when another task is waiting for a vCPU
/// (Linux: do_sched_yield; with nothing else runnable the caller simply goes on).
pub fn sys_sched_yield(s: &mut Sys) -> SysResult {
    s.k.resched = true;
    ok(0)
}

pub fn sys_uname(s: &mut Sys, a: Args) -> SysResult {
    let mut b = [0u8; 65 * 6];
    for (i, f) in ["Linux", "pagelab", "6.18.0-pagelab", "#1 SMP PREEMPT_DYNAMIC pagelab", "x86_64", "(none)"].iter().enumerate() {
        b[i * 65..i * 65 + f.len()].copy_from_slice(f.as_bytes());
    }
    s.copy_to_user(a.u(0), &b)?;
    ok(0)
}

const ARCH_SET_GS: u32 = 0x1001;
const ARCH_SET_FS: u32 = 0x1002;
const ARCH_GET_FS: u32 = 0x1003;
const ARCH_GET_GS: u32 = 0x1004;
const ARCH_GET_CPUID: u32 = 0x1011;
const ARCH_SET_CPUID: u32 = 0x1012;

pub const PR_SET_THP_DISABLE: u64 = 41;
pub const PR_GET_THP_DISABLE: u64 = 42;
pub const PR_THP_DISABLE_EXCEPT_ADVISED: u64 = 1 << 1;

/// Linux: prctl (kernel/sys.c), for the options pagelab models: PR_SET_THP_DISABLE
/// (arg2 on/off, arg3 0 or PR_THP_DISABLE_EXCEPT_ADVISED; EINVAL for other flags, for
/// EXCEPT_ADVISED when turning off, and for a nonzero arg4/arg5) and PR_GET_THP_DISABLE
/// (EINVAL with any argument; 1, or 3 with EXCEPT_ADVISED). Other options: ENOSYS, with
/// pagelab's report of an unimplemented call.
pub fn sys_prctl(s: &mut Sys, a: Args) -> SysResult {
    let (option, arg2, arg3, arg4, arg5) = (a.u(0), a.u(1), a.u(2), a.u(3), a.u(4));
    match option {
        PR_SET_THP_DISABLE => {
            if arg4 != 0 || arg5 != 0 || arg3 & !PR_THP_DISABLE_EXCEPT_ADVISED != 0 || (arg2 == 0 && arg3 != 0) {
                return Err(Errno::EINVAL);
            }
            s.mm().thp_disable = match (arg2 != 0, arg3 != 0) {
                (false, _) => 0,
                (true, false) => 1,
                (true, true) => 3,
            };
            ok(0)
        }
        PR_GET_THP_DISABLE => {
            if arg2 != 0 || arg3 != 0 || arg4 != 0 || arg5 != 0 {
                return Err(Errno::EINVAL);
            }
            ok(s.mm().thp_disable as u64)
        }
        _ => Err(Errno::ENOSYS),
    }
}

pub fn sys_arch_prctl(s: &mut Sys, a: Args) -> SysResult {
    let (code, addr) = (a.u32(0), a.u(1));
    match code {
        ARCH_SET_FS | ARCH_SET_GS => {
            if addr >= crate::kernel::mm::TASK_SIZE {
                return Err(Errno::EPERM);
            }
            let r = s.regs();
            if code == ARCH_SET_FS {
                r.fs_base = addr;
            } else {
                r.gs_base = addr;
            }
            ok(0)
        }
        ARCH_GET_FS | ARCH_GET_GS => {
            let v = if code == ARCH_GET_FS { s.regs().fs_base } else { s.regs().gs_base };
            s.copy_to_user(addr, &v.to_le_bytes())?;
            ok(0)
        }
        ARCH_GET_CPUID => ok(1),
        ARCH_SET_CPUID => Err(Errno::ENODEV),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sys_set_tid_address(s: &mut Sys, a: Args) -> SysResult {
    s.k.tasks.get_mut(&s.tid).unwrap().clear_child_tid = a.u(0);
    ok(s.tid as u64)
}

pub fn sys_set_robust_list(s: &mut Sys, a: Args) -> SysResult {
    // sizeof(struct robust_list_head) is 24.
    if a.u(1) != 24 {
        return Err(Errno::EINVAL);
    }
    s.k.tasks.get_mut(&s.tid).unwrap().robust_list = (a.u(0), a.u(1));
    ok(0)
}

const RLIM_INFINITY: u64 = u64::MAX;

/// The limits a fresh Linux login shell has (RLIMIT_CORE 0 so no core files).
fn rlimit(res: u32) -> Option<(u64, u64)> {
    Some(match res {
        0 => (RLIM_INFINITY, RLIM_INFINITY),                           // CPU
        1 => (RLIM_INFINITY, RLIM_INFINITY),                           // FSIZE
        2 => (RLIM_INFINITY, RLIM_INFINITY),                           // DATA
        3 => (crate::kernel::mm::STACK_LIMIT, RLIM_INFINITY),          // STACK
        4 => (0, RLIM_INFINITY),                                       // CORE
        5 => (RLIM_INFINITY, RLIM_INFINITY),                           // RSS
        6 => (63_704, 63_704),                                         // NPROC
        7 => (crate::kernel::file::RLIMIT_NOFILE as u64, 1 << 20),     // NOFILE
        8 => (8 << 20, 8 << 20),                                       // MEMLOCK
        9 => (RLIM_INFINITY, RLIM_INFINITY),                           // AS
        10 => (RLIM_INFINITY, RLIM_INFINITY),                          // LOCKS
        11 => (63_704, 63_704),                                        // SIGPENDING
        12 => (819_200, 819_200),                                      // MSGQUEUE
        13 => (0, 0),                                                  // NICE
        14 => (0, 0),                                                  // RTPRIO
        15 => (RLIM_INFINITY, RLIM_INFINITY),                          // RTTIME
        _ => return None,
    })
}

pub fn sys_getrlimit(s: &mut Sys, a: Args) -> SysResult {
    let (cur, max) = rlimit(a.u32(0)).ok_or(Errno::EINVAL)?;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&cur.to_le_bytes());
    b[8..].copy_from_slice(&max.to_le_bytes());
    s.copy_to_user(a.u(1), &b)?;
    ok(0)
}

pub fn sys_prlimit64(s: &mut Sys, a: Args) -> SysResult {
    let (pid, res, new, old) = (a.i32(0), a.u32(1), a.u(2), a.u(3));
    if pid != 0 && !s.k.tasks.contains_key(&pid) {
        return Err(Errno::ESRCH);
    }
    let (cur, max) = rlimit(res).ok_or(Errno::EINVAL)?;
    if old != 0 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&cur.to_le_bytes());
        b[8..].copy_from_slice(&max.to_le_bytes());
        s.copy_to_user(old, &b)?;
    }
    if new != 0 {
        let mut b = [0u8; 16];
        s.copy_from_user(new, &mut b)?;
        let (c, m) = (u64::from_le_bytes(b[..8].try_into().unwrap()), u64::from_le_bytes(b[8..].try_into().unwrap()));
        if c > m {
            return Err(Errno::EINVAL);
        }
    }
    ok(0)
}

pub fn sys_getrandom(s: &mut Sys, a: Args) -> SysResult {
    let (buf, len, flags) = (a.u(0), a.u(1), a.u32(2));
    // GRND_NONBLOCK 1, GRND_RANDOM 2, GRND_INSECURE 4; INSECURE with RANDOM is EINVAL.
    if flags & !7 != 0 || (flags & 4 != 0 && flags & 2 != 0) {
        return Err(Errno::EINVAL);
    }
    let len = len.min(crate::kernel::syscall::fs_max_rw()) as usize;
    let mut b = vec![0u8; len];
    for c in b.chunks_mut(8) {
        let r = s.k.next_random().to_le_bytes();
        c.copy_from_slice(&r[..c.len()]);
    }
    s.copy_to_user(buf, &b)?;
    ok(len as u64)
}

/// The bytes of a CPU mask the kernel exchanges (Linux: cpumask_size(), with nr_cpu_ids
/// CPUs rounded up to longs; pagelab has at most 64 vCPUs).
const CPUMASK_SIZE: u64 = 8;

/// The task a scheduler call names: 0 is the caller, else any thread (ESRCH).
fn sched_task(s: &Sys, pid: i32) -> Result<crate::kernel::task::Tid, Errno> {
    match pid {
        0 => Ok(s.tid),
        p if s.k.tasks.contains_key(&p) => Ok(p),
        _ => Err(Errno::ESRCH),
    }
}

/// sched_getaffinity (Linux: kernel/sched/syscalls.c): EINVAL for a buffer shorter than
/// nr_cpu_ids bits or not a whole number of longs, then ESRCH; returns the bytes written.
pub fn sys_sched_getaffinity(s: &mut Sys, a: Args) -> SysResult {
    let (pid, len, mask) = (a.i32(0), a.u(1), a.u(2));
    if len.saturating_mul(8) < s.hw.vcpus.len() as u64 || len & 7 != 0 {
        return Err(Errno::EINVAL);
    }
    let tid = sched_task(s, pid)?;
    let m = s.k.tasks[&tid].cpus_allowed & s.hw.online_mask();
    let n = len.min(CPUMASK_SIZE);
    s.copy_to_user(mask, &m.to_le_bytes()[..n as usize])?;
    ok(n)
}

/// sched_setaffinity: the mask is read first (a short one is zero-extended, a long one
/// truncated: EFAULT), then the task looked up (ESRCH); a mask without an existing vCPU
/// is EINVAL. A thread that may no longer run on its vCPU leaves it at once.
pub fn sys_sched_setaffinity(s: &mut Sys, a: Args) -> SysResult {
    let (pid, len, ptr) = (a.i32(0), a.u(1), a.u(2));
    let mut b = [0u8; 8];
    let n = len.min(CPUMASK_SIZE) as usize;
    s.copy_from_user(ptr, &mut b[..n])?;
    let tid = sched_task(s, pid)?;
    let m = u64::from_le_bytes(b) & s.hw.online_mask();
    if m == 0 {
        return Err(Errno::EINVAL);
    }
    s.k.tasks.get_mut(&tid).unwrap().cpus_allowed = m;
    if tid == s.tid && m & (1 << s.hw.cur) == 0 {
        s.k.resched = true;
    }
    ok(0)
}

/// getcpu(cpu, node, cache): the vCPU the caller runs on, node 0.
pub fn sys_getcpu(s: &mut Sys, a: Args) -> SysResult {
    let cpu = s.hw.cur as u32;
    if a.u(0) != 0 {
        s.copy_to_user(a.u(0), &cpu.to_le_bytes())?;
    }
    if a.u(1) != 0 {
        s.copy_to_user(a.u(1), &0u32.to_le_bytes())?;
    }
    ok(0)
}

/// sched_getscheduler: every thread is SCHED_OTHER.
pub fn sys_sched_getscheduler(s: &mut Sys, a: Args) -> SysResult {
    if a.i32(0) < 0 {
        return Err(Errno::EINVAL);
    }
    sched_task(s, a.i32(0))?;
    ok(0)
}

/// sched_getparam: priority 0 (SCHED_OTHER).
pub fn sys_sched_getparam(s: &mut Sys, a: Args) -> SysResult {
    if a.u(1) == 0 || a.i32(0) < 0 {
        return Err(Errno::EINVAL);
    }
    sched_task(s, a.i32(0))?;
    s.copy_to_user(a.u(1), &0i32.to_le_bytes())?;
    ok(0)
}

/// sched_get_priority_max / _min: 1..99 for SCHED_FIFO and SCHED_RR, 0 for the others.
pub fn sys_sched_get_priority(a: Args, max: bool) -> SysResult {
    match a.i32(0) {
        1 | 2 => ok(if max { 99 } else { 1 }),
        0 | 3 | 5 | 6 => ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// get_robust_list(pid, head_ptr, len_ptr): the length is stored first, then the head.
pub fn sys_get_robust_list(s: &mut Sys, a: Args) -> SysResult {
    let tid = sched_task(s, a.i32(0))?;
    let head = s.k.tasks[&tid].robust_list.0;
    s.copy_to_user(a.u(2), &24u64.to_le_bytes())?;
    s.copy_to_user(a.u(1), &head.to_le_bytes())?;
    ok(0)
}
