//! process_vm_readv / process_vm_writev (Linux: mm/process_vm_access.c): copies between
//! the caller's iovecs and another process's (or its own) address space.
//!
//! Kernel-mode accesses: a write into a uffd-wp'd (or missing) page of the caller's own
//! address space raises the userfault and the call re-executes once it is resolved (see
//! `uffd::kernel_fault`); in another process's address space the access just fails
//! (EFAULT, or a short count), a difference from Linux, whose remote GUP waits too.

use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::{Errno, KResult};

/// Reads an iovec array without the access_ok check (the remote side's addresses are
/// another address space's): EINVAL for too many entries or a negative length.
fn read_iovecs(s: &mut Sys, va: u64, cnt: u64) -> KResult<Vec<(u64, u64)>> {
    if cnt > 1024 {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; cnt as usize * 16];
    s.copy_from_user(va, &mut raw)?;
    let mut v = Vec::with_capacity(cnt as usize);
    for c in raw.chunks(16) {
        let base = u64::from_le_bytes(c[..8].try_into().unwrap());
        let len = u64::from_le_bytes(c[8..].try_into().unwrap());
        if (len as i64) < 0 {
            return Err(Errno::EINVAL);
        }
        v.push((base, len));
    }
    Ok(v)
}

/// Linux: process_vm_rw.
pub fn sys_process_vm_rw(s: &mut Sys, a: Args, write: bool) -> SysResult {
    let (pid, lvec, liovcnt, rvec, riovcnt, flags) = (a.i32(0), a.u(1), a.u(2), a.u(3), a.u(4), a.u(5));
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let local = read_iovecs(s, lvec, liovcnt)?;
    let remote = read_iovecs(s, rvec, riovcnt)?;
    for &(b, l) in &local {
        if !crate::kernel::file::access_ok(b, l) {
            return Err(Errno::EFAULT);
        }
    }
    let total: u64 = local.iter().map(|v| v.1).sum::<u64>().min(remote.iter().map(|v| v.1).sum());
    if total == 0 {
        return ok(0);
    }
    let target = if pid == 0 { None } else { s.k.tasks.get(&pid).map(|t| t.mm).or_else(|| s.k.procs.get(&pid).and_then(|p| p.threads.iter().find_map(|t| s.k.tasks.get(t).map(|t| t.mm)))) };
    let Some(mm_id) = target.filter(|&m| s.k.mms[m].is_some()) else {
        return Err(Errno::ESRCH);
    };
    let own = mm_id == s.k.tasks[&s.tid].mm;
    // Walk both lists in step, a piece at a time (never crossing a page on either side).
    let (mut li, mut lo, mut ri, mut ro) = (0usize, 0u64, 0usize, 0u64);
    let mut done = 0u64;
    let mut buf = [0u8; 4096];
    while done < total && li < local.len() && ri < remote.len() {
        let (lb, ll) = local[li];
        let (rb, rl) = remote[ri];
        if lo == ll {
            li += 1;
            lo = 0;
            continue;
        }
        if ro == rl {
            ri += 1;
            ro = 0;
            continue;
        }
        let (la, ra) = (lb + lo, rb + ro);
        let n = (ll - lo).min(rl - ro).min(4096 - (la & 0xfff)).min(4096 - (ra & 0xfff)) as usize;
        let r = if write {
            s.copy_from_user(la, &mut buf[..n]).and_then(|_| remote_copy(s, mm_id, own, ra, &mut buf[..n], true))
        } else {
            remote_copy(s, mm_id, own, ra, &mut buf[..n], false).and_then(|_| s.copy_to_user(la, &buf[..n]))
        };
        if r.is_err() {
            break;
        }
        done += n as u64;
        lo += n as u64;
        ro += n as u64;
    }
    if done == 0 {
        return Err(Errno::EFAULT);
    }
    ok(done)
}

fn remote_copy(s: &mut Sys, mm_id: usize, own: bool, va: u64, buf: &mut [u8], write: bool) -> KResult<()> {
    if own {
        return if write { s.copy_to_user(va, buf) } else { s.copy_from_user(va, buf) };
    }
    let mm = s.k.mms[mm_id].as_mut().ok_or(Errno::EFAULT)?;
    if write {
        crate::kernel::uaccess::copy_to_user_mm(s.hw, mm, va, buf)
    } else {
        crate::kernel::uaccess::copy_from_user_mm(s.hw, mm, va, buf)
    }
}
