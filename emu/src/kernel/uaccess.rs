//! Kernel accesses to user memory (Linux: copy_to_user / copy_from_user / strncpy_from_user
//! with the exception-table fixup). They go through the current vCPU's TLB as supervisor
//! accesses with CR0.WP=1, so a write to a read-only user page faults exactly as it does in
//! Linux; the fault is handled by handle_mm_fault and the copy retried, or the syscall
//! fails with EFAULT.
//!
//! Such a fault is a kernel-mode #PF on a user address: Linux takes it through
//! do_user_addr_fault without X86_PF_USER and fixes a failure up into EFAULT from the
//! exception table. Here `fault_in_user` makes the same mm calls the arch entry does
//! (`kernel::arch::fault`), with the access check of a kernel access (no fetch), and never
//! signals: a fault that needs userfaultfd is recorded for the syscall entry instead.

use super::errno::{Errno, KResult};
use super::hw::Hw;
use super::mm::memory::{handle_mm_fault, lock_mm_and_find_vma, FaultFlags, FaultOutcome, KernelFault};
use super::mm::Mm;
use mmu::{Access, AccessKind, PhysAddr, WalkFault};

/// A kernel-mode fault on user address `va` (Linux: do_user_addr_fault without
/// X86_PF_USER): the VMA (growing the stack as for a user fault), the access check — a
/// write needs VM_WRITE, a read any access at all — and handle_mm_fault. No VMA, or one
/// forbidding the access, is EFAULT (where a user fault gets SIGSEGV).
fn fault_in_user(hw: &mut Hw, mm: &mut Mm, va: u64, flags: FaultFlags) -> KResult<FaultOutcome> {
    let vma = lock_mm_and_find_vma(mm, va).cloned().ok_or(Errno::EFAULT)?;
    let allowed = if flags.contains(FaultFlags::WRITE) { vma.writable() } else { vma.is_accessible() };
    if !allowed {
        return Err(Errno::EFAULT);
    }
    let r = handle_mm_fault(mm, hw, &vma, va, flags);
    if r == FaultOutcome::Handled {
        hw.uaccess_faults += 1;
    }
    Ok(r)
}

/// FAULT_FLAG_WRITE for a write.
fn write_flag(write: bool) -> FaultFlags {
    if write {
        FaultFlags::WRITE
    } else {
        FaultFlags::empty()
    }
}

/// Translates one user address for a kernel access, faulting pages in as needed.
pub fn user_translate(hw: &mut Hw, mm: &mut Mm, va: u64, write: bool) -> KResult<u64> {
    if va >= super::mm::TASK_SIZE {
        return Err(Errno::EFAULT);
    }
    let acc = Access::supervisor(if write { AccessKind::Write } else { AccessKind::Read });
    for _ in 0..4 {
        let v = &mut hw.vcpus[hw.cur];
        match v.tlb.translate(&mut hw.mem, &v.state.ctl, va, acc) {
            Ok(pa) => return Ok(pa),
            Err(WalkFault::NonCanonical { .. }) => return Err(Errno::EFAULT),
            Err(WalkFault::PageFault { .. }) => {
                match fault_in_user(hw, mm, va, write_flag(write))? {
                    FaultOutcome::Handled => continue,
                    FaultOutcome::Userfault(reason) => {
                        // The access fails; the syscall layer raises the userfault and
                        // re-executes the call once it is resolved (uffd::kernel_fault).
                        hw.uffd_kfault = Some(KernelFault { addr: va, write, reason });
                        return Err(Errno::EFAULT);
                    }
                    _ => return Err(Errno::EFAULT),
                }
            }
        }
    }
    Err(Errno::EFAULT)
}

pub fn copy_from_user(hw: &mut Hw, mm: &mut Mm, va: u64, buf: &mut [u8]) -> KResult<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let a = va.checked_add(done as u64).ok_or(Errno::EFAULT)?;
        let n = ((4096 - (a & 0xfff)) as usize).min(buf.len() - done);
        let pa = user_translate(hw, mm, a, false)?;
        hw.mem.read(PhysAddr::new(pa), &mut buf[done..done + n]);
        done += n;
    }
    Ok(())
}

/// Copies to user memory page by page; on a fault, the bytes before the faulting page have
/// been written (as with Linux's copy_to_user).
pub fn copy_to_user(hw: &mut Hw, mm: &mut Mm, va: u64, buf: &[u8]) -> KResult<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let a = va.checked_add(done as u64).ok_or(Errno::EFAULT)?;
        let n = ((4096 - (a & 0xfff)) as usize).min(buf.len() - done);
        let pa = user_translate(hw, mm, a, true)?;
        hw.mem.write(PhysAddr::new(pa), &buf[done..done + n]);
        done += n;
    }
    Ok(())
}

pub fn read_u64(hw: &mut Hw, mm: &mut Mm, va: u64) -> KResult<u64> {
    let mut b = [0u8; 8];
    copy_from_user(hw, mm, va, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

pub fn write_u64(hw: &mut Hw, mm: &mut Mm, va: u64, v: u64) -> KResult<()> {
    copy_to_user(hw, mm, va, &v.to_le_bytes())
}

pub fn write_u32(hw: &mut Hw, mm: &mut Mm, va: u64, v: u32) -> KResult<()> {
    copy_to_user(hw, mm, va, &v.to_le_bytes())
}

/// Reads a NUL-terminated string of at most `max` bytes (ENAMETOOLONG beyond).
pub fn strncpy_from_user(hw: &mut Hw, mm: &mut Mm, va: u64, max: usize) -> KResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut a = va;
    loop {
        let pa = user_translate(hw, mm, a, false)?;
        let n = (4096 - (a & 0xfff)) as usize;
        let chunk = hw.mem.slice(PhysAddr::new(pa), n).ok_or(Errno::EFAULT)?;
        if let Some(z) = chunk.iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..z]);
            return if out.len() >= max { Err(Errno::ENAMETOOLONG) } else { Ok(out) };
        }
        out.extend_from_slice(chunk);
        if out.len() >= max {
            return Err(Errno::ENAMETOOLONG);
        }
        a += n as u64;
    }
}

/// Writes into the user memory of an address space that may not be the current vCPU's
/// (a fork child's CLONE_CHILD_SETTID, another process's memory): a walk of its page
/// tables, no TLB, faulting pages in as needed.
pub fn copy_to_user_mm(hw: &mut Hw, mm: &mut Mm, va: u64, buf: &[u8]) -> KResult<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let a = va.checked_add(done as u64).ok_or(Errno::EFAULT)?;
        let n = ((4096 - (a & 0xfff)) as usize).min(buf.len() - done);
        let pa = translate_mm(hw, mm, a, true)?;
        hw.mem.write(PhysAddr::new(pa), &buf[done..done + n]);
        done += n;
    }
    Ok(())
}

/// Reads from the user memory of any address space (see `copy_to_user_mm`).
pub fn copy_from_user_mm(hw: &mut Hw, mm: &mut Mm, va: u64, buf: &mut [u8]) -> KResult<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let a = va.checked_add(done as u64).ok_or(Errno::EFAULT)?;
        let n = ((4096 - (a & 0xfff)) as usize).min(buf.len() - done);
        let pa = translate_mm(hw, mm, a, false)?;
        hw.mem.read(PhysAddr::new(pa), &mut buf[done..done + n]);
        done += n;
    }
    Ok(())
}

fn translate_mm(hw: &mut Hw, mm: &mut Mm, va: u64, write: bool) -> KResult<u64> {
    if va >= super::mm::TASK_SIZE {
        return Err(Errno::EFAULT);
    }
    let ctl = mmu::ControlRegs::linux_user(mm.pml4.as_u64(), crate::cpu::MAXPHYADDR);
    let acc = Access::supervisor(if write { AccessKind::Write } else { AccessKind::Read });
    for _ in 0..4 {
        match mmu::walk(&mut hw.mem, &ctl, va, acc) {
            Ok(t) => return Ok(t.pa.as_u64()),
            Err(WalkFault::NonCanonical { .. }) => return Err(Errno::EFAULT),
            Err(WalkFault::PageFault { .. }) => {
                match fault_in_user(hw, mm, va, write_flag(write) | FaultFlags::REMOTE)? {
                    FaultOutcome::Handled => continue,
                    _ => return Err(Errno::EFAULT),
                }
            }
        }
    }
    Err(Errno::EFAULT)
}
