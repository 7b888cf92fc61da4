//! The x86-64 side of the kernel (Linux: arch/x86/): what turns a vCPU's exception exit
//! into kernel work. `fault` is the #PF entry (arch/x86/mm/fault.c), `traps` the other
//! exceptions (arch/x86/kernel/traps.c).
//!
//! These modules sit at the top, beside the syscall entry: they may call the mm, the
//! signal code and userfaultfd; none of those calls back into them.

pub mod fault;
pub mod traps;
