//! The pagelab test-hook syscall: kernel operations a test needs and Linux has no call
//! for, enabled only by `Config::test_hooks` (natively, and without the option, the
//! number is ENOSYS like any unknown syscall).

use super::{Args, Sys, SysResult};
use crate::kernel::errno::Errno;

/// The syscall number (outside Linux's table).
pub const PAGELAB_HOOK: u64 = 0x5041_4745; // "PAGE"

pub fn sys_pagelab_hook(_s: &mut Sys, _a: Args) -> SysResult {
    Err(Errno::ENOSYS)
}
