//! The pagelab test-hook syscall: kernel operations a test needs and Linux has no call
//! for, enabled only by `Config::test_hooks` (the hidden CLI flag `--test-hooks`).
//! Natively, and without the option, the number is ENOSYS like any unknown syscall, so a
//! program can tell whether it runs under pagelab with hooks.
//!
//! `syscall(PAGELAB_HOOK, op, addr)`:
//! - [`HOOK_WRPROTECT_NO_FLUSH`] (1): clear R/W in the PTE mapping user address `addr`
//!   and *drop* the flush: a deliberate kernel bug, so that tests can see what a missing
//!   TLB invalidation does (a stale writable entry keeps serving writes, as on hardware)
//!   and that `--check-tlb` catches it.
//! - [`HOOK_WRPROTECT`] (2): the same with the flush applied (the control case): the next
//!   write faults, and since the VMA is writable the fault handler makes the PTE writable
//!   again (`do_wp_page` reusing the exclusive page), so the program just continues.
//!
//! - [`HOOK_NX_NO_FLUSH`] (3): set XD (NX) in the PTE mapping `addr` without a flush: a
//!   stale *code* translation, for the fetch side of `--check-tlb`.
//!
//! - [`HOOK_HOST_CLOCK`] (4): returns the host's monotonic clock in nanoseconds (since the
//!   first call in this process), `addr` ignored. The guest's own clock is virtual (one
//!   nanosecond per instruction), so this is how a benchmark (`uffd_bench --time`) times
//!   an operation in host time under pagelab.
//! - [`HOOK_HOST_CPU_CLOCK`] (5): the CPU time (ns) of the host thread running the machine
//!   (every vCPU is interpreted on that one thread): host time that other processes on a
//!   loaded machine do not inflate.
//!
//! Returns 0, or EINVAL for an unknown op, EFAULT when `addr` is not a user address
//! mapped by a present 4 KiB PTE.

use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::Errno;
use crate::kernel::mm::pgtable::{self, linux::_PAGE_NX, linux::_PAGE_RW};

/// The syscall number (outside Linux's table).
pub const PAGELAB_HOOK: u64 = 0x5041_4745; // "PAGE"

/// Write-protect a PTE without flushing the TLB (a deliberate missing flush).
pub const HOOK_WRPROTECT_NO_FLUSH: u64 = 1;
/// Write-protect a PTE and flush, as the kernel must.
pub const HOOK_WRPROTECT: u64 = 2;
/// Make a PTE no-execute without flushing the TLB (a deliberate missing flush).
pub const HOOK_NX_NO_FLUSH: u64 = 3;
/// Read the host's monotonic clock (ns): benchmarks time host work with it.
pub const HOOK_HOST_CLOCK: u64 = 4;
/// Read the CPU clock of the host thread running the machine (ns).
pub const HOOK_HOST_CPU_CLOCK: u64 = 5;

/// The origin of [`HOOK_HOST_CLOCK`].
static HOST_CLOCK_START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

pub fn sys_pagelab_hook(s: &mut Sys, a: Args) -> SysResult {
    let (op, addr) = (a.u(0), a.u(1));
    if op == HOOK_HOST_CLOCK {
        let ns = HOST_CLOCK_START.get_or_init(std::time::Instant::now).elapsed().as_nanos();
        return ok(ns.min(i64::MAX as u128) as u64);
    }
    if op == HOOK_HOST_CPU_CLOCK {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime only writes the timespec it is given.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
            return Err(Errno::EINVAL);
        }
        return ok((ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64).min(i64::MAX as u64));
    }
    if !matches!(op, HOOK_WRPROTECT_NO_FLUSH | HOOK_WRPROTECT | HOOK_NX_NO_FLUSH) {
        return Err(Errno::EINVAL);
    }
    if addr >= crate::kernel::mm::TASK_SIZE {
        return Err(Errno::EFAULT);
    }
    let (hw, mm) = s.hw_mm();
    let cr3 = mm.pml4.as_u64();
    let slot = pgtable::walk_lookup(&hw.mem, mm.pml4, addr).ok_or(Errno::EFAULT)?;
    let old = pgtable::get_entry(&hw.mem, slot);
    if slot.level != mmu::Level::Pt || !old.is_present() {
        return Err(Errno::EFAULT);
    }
    let new = if op == HOOK_NX_NO_FLUSH { old.with(_PAGE_NX) } else { old.without(_PAGE_RW) };
    let flush = pgtable::set_entry(&mut hw.mem, slot, addr, new);
    tracing::debug!(target: "pagelab::hook", op, addr = format_args!("{addr:#x}"), old = format_args!("{:#x}", old.raw()), "pte change");
    if op == HOOK_WRPROTECT {
        hw.flush(flush, cr3);
    } else {
        // Deliberately NOT applied: the old entry was present and writable (or executable),
        // so every TLB that cached it keeps granting writes (or fetches). This is the bug the hook exists to inject;
        // `Flush::not_needed` would claim the old entry could not be cached, which is false.
        let _stale_on_purpose = flush;
    }
    ok(0)
}
