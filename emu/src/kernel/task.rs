//! Tasks (Linux: struct task_struct): one per guest thread. A thread's registers live in
//! its vCPU while it runs and in `regs` while it does not.

use super::file::FdTable;
use super::mm::MmId;
use crate::cpu::CpuState;
use std::cell::RefCell;
use std::rc::Rc;

pub type Tid = i32;

/// Linux's k_sigaction as rt_sigaction exchanges it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Runnable,
    /// Exited; waiting to be reaped.
    Zombie,
}

pub struct Task {
    pub tid: Tid,
    /// Thread-group (process) id.
    pub tgid: Tid,
    pub ppid: Tid,
    pub mm: MmId,
    pub regs: CpuState,
    pub state: TaskState,
    pub files: Rc<RefCell<FdTable>>,
    pub sigactions: Rc<RefCell<[SigAction; 64]>>,
    pub sigmask: u64,
    pub clear_child_tid: u64,
    pub robust_list: (u64, u64),
    pub exit_code: i32,
}
