//! Copying an address space for fork (Linux: dup_mmap and copy_page_range in
//! kernel/fork.c and mm/memory.c).

use super::Mm;
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::hw::Hw;
use crate::kernel::mm::MmId;
use crate::kernel::Kernel;

/// A copy of `parent` for a child process: the VMAs, and page tables where private
/// writable pages are write-protected in both for copy-on-write.
pub fn dup_mmap(_k: &mut Kernel, _hw: &mut Hw, _parent: MmId) -> KResult<Mm> {
    Err(Errno::ENOSYS)
}
