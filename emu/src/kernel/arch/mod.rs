//! The x86-64 side of the kernel (Linux: arch/x86/): what turns a vCPU's exception exit
//! into kernel work, and what a task meets on its way back to user mode. `fault` is the
//! #PF entry (arch/x86/mm/fault.c), `traps` the other exceptions (arch/x86/kernel/traps.c),
//! `signal` signal delivery with the rt_sigframe and rt_sigreturn
//! (arch/x86/kernel/signal.c, signal_64.c).
//!
//! These modules sit at the top, beside the syscall entry: they may call the mm, the
//! signal code and userfaultfd; none of those calls back into them.

pub mod fault;
pub mod signal;
pub mod traps;
