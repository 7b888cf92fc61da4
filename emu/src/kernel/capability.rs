//! Capabilities (Linux: kernel/capability.c, security/commoncap.c): each thread's
//! effective, permitted and inheritable sets (Linux: struct cred), capget(2), capset(2),
//! and `capable`, which the checks that need a capability ask.
//!
//! The guest's tasks are root: every capability of 6.18 (CAP_LAST_CAP 40) effective and
//! permitted, none inheritable, the bounding set full and the ambient set empty (neither
//! is tracked: nothing here changes them). A thread inherits its creator's sets (fork,
//! clone, threads); there is no execve to transform them.

use super::errno::{Errno, KResult};
use super::syscall::{ok, Args, Sys, SysResult};
use super::task::Tid;

pub const CAP_SETPCAP: u32 = 8;
pub const CAP_SYS_PTRACE: u32 = 19;
/// The highest capability of Linux 6.18 (CAP_CHECKPOINT_RESTORE).
pub const CAP_LAST_CAP: u32 = 40;
/// Every valid capability bit (Linux: CAP_VALID_MASK); capset drops the others.
pub const CAP_VALID_MASK: u64 = (1 << (CAP_LAST_CAP + 1)) - 1;

const LINUX_CAPABILITY_VERSION_1: u32 = 0x1998_0330;
const LINUX_CAPABILITY_VERSION_2: u32 = 0x2007_1026;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// A thread's capability sets (Linux: cred's cap_effective, cap_permitted,
/// cap_inheritable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

impl Caps {
    /// Root's: everything effective and permitted, nothing inheritable.
    pub const ROOT: Caps = Caps { effective: CAP_VALID_MASK, permitted: CAP_VALID_MASK, inheritable: 0 };
}

impl Default for Caps {
    fn default() -> Self {
        Caps::ROOT
    }
}

/// Whether the calling thread has `cap` in its effective set (Linux: capable, for the
/// initial user namespace, the only one).
pub fn capable(s: &Sys, cap: u32) -> bool {
    s.k.tasks[&s.tid].caps.effective & (1 << cap) != 0
}

/// Linux: cap_validate_magic. The number of data structs the version exchanges; an
/// unknown version gets the preferred one (_3) written back, and EINVAL.
fn validate_magic(s: &mut Sys, header: u64) -> KResult<usize> {
    let mut v = [0u8; 4];
    s.copy_from_user(header, &mut v)?;
    match u32::from_le_bytes(v) {
        LINUX_CAPABILITY_VERSION_1 => Ok(1),
        LINUX_CAPABILITY_VERSION_2 | LINUX_CAPABILITY_VERSION_3 => Ok(2),
        _ => {
            s.copy_to_user(header, &LINUX_CAPABILITY_VERSION_3.to_le_bytes())?;
            Err(Errno::EINVAL)
        }
    }
}

fn header_pid(s: &mut Sys, header: u64) -> KResult<i32> {
    let mut p = [0u8; 4];
    s.copy_from_user(header.wrapping_add(4), &mut p)?;
    Ok(i32::from_le_bytes(p))
}

/// The sets of the thread `pid` (Linux: cap_get_target_pid with find_task_by_vpid): a live
/// thread, or a thread-group leader that is a zombie (it keeps its pid until reaped, and
/// its credentials); ESRCH for any other.
fn target_caps(s: &Sys, pid: Tid) -> KResult<Caps> {
    if let Some(t) = s.k.tasks.get(&pid) {
        return Ok(t.caps);
    }
    s.k.procs.get(&pid).map(|p| p.leader_caps).ok_or(Errno::ESRCH)
}

/// capget(2) (Linux: kernel/capability.c). A NULL data pointer only probes the version:
/// 0 for a valid one and, after writing _3 back, for an unknown one too.
pub fn sys_capget(s: &mut Sys, a: Args) -> SysResult {
    let (header, data) = (a.u(0), a.u(1));
    let tocopy = match validate_magic(s, header) {
        Ok(_) | Err(Errno::EINVAL) if data == 0 => return ok(0),
        r => r?,
    };
    let pid = header_pid(s, header)?;
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let c = if pid == 0 || pid == s.tid { s.k.tasks[&s.tid].caps } else { target_caps(s, pid)? };
    let mut out = Vec::with_capacity(24);
    for i in 0..tocopy {
        for set in [c.effective, c.permitted, c.inheritable] {
            out.extend_from_slice(&((set >> (32 * i)) as u32).to_le_bytes());
        }
    }
    s.copy_to_user(data, &out)?;
    ok(0)
}

/// capset(2) (Linux: kernel/capability.c and cap_capset in security/commoncap.c): only
/// the calling thread's sets (pid 0 or its own tid, else EPERM). The new sets, less the
/// bits past CAP_LAST_CAP (and the upper word for _1, which is not passed), must keep
/// permitted within the old permitted, effective within the new permitted, and
/// inheritable within the old inheritable and the bounding set (all) — and, without
/// CAP_SETPCAP effective, within the old inheritable and permitted: EPERM otherwise.
pub fn sys_capset(s: &mut Sys, a: Args) -> SysResult {
    let (header, data) = (a.u(0), a.u(1));
    let tocopy = validate_magic(s, header)?;
    let pid = header_pid(s, header)?;
    if pid != 0 && pid != s.tid {
        return Err(Errno::EPERM);
    }
    let mut raw = [0u8; 24];
    s.copy_from_user(data, &mut raw[..12 * tocopy])?;
    let word = |i: usize, j: usize| u32::from_le_bytes(raw[12 * i + 4 * j..12 * i + 4 * j + 4].try_into().unwrap()) as u64;
    let set = |j: usize| (word(0, j) | word(1, j) << 32) & CAP_VALID_MASK;
    let new = Caps { effective: set(0), permitted: set(1), inheritable: set(2) };
    let old = s.k.tasks[&s.tid].caps;
    let subset = |a: u64, b: u64| a & !b == 0;
    let inh_capped = old.effective & (1 << CAP_SETPCAP) == 0;
    if inh_capped && !subset(new.inheritable, old.inheritable | old.permitted) {
        return Err(Errno::EPERM);
    }
    // The bounding set is full: `old.inheritable | cap_bset` is every valid bit.
    if !subset(new.permitted, old.permitted) || !subset(new.effective, new.permitted) {
        return Err(Errno::EPERM);
    }
    s.k.tasks.get_mut(&s.tid).unwrap().caps = new;
    ok(0)
}
