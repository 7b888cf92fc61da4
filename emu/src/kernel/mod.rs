//! The guest kernel, written in Rust and run as Rust code (not as emulated instructions).
//! It handles the exits the CPU returns — SYSCALL, page faults, other exceptions — the way
//! Linux handles the same events, with Linux's names for the functions that mirror it.
//!
//! Layout follows Linux: `mm/` (VMAs, faults, mprotect, mmap), `syscall/` (the syscall
//! table and its handlers), `task` (threads), `file` (descriptors), `uaccess`
//! (copy_{to,from}_user), `signal` (fault→signal and fatal delivery).

pub mod errno;
pub mod file;
pub mod hw;
pub mod mm;
pub mod signal;
pub mod syscall;
pub mod task;
pub mod uaccess;

use crate::cpu::{Exception, Exit};
use crate::Outcome;
use file::Streams;
use hw::Hw;
use mm::{Mm, MmId};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use task::{Task, Tid};

/// Nanoseconds of virtual time per retired instruction (a 1 GHz virtual machine).
pub const NS_PER_INSTR: u64 = 1;
/// CLOCK_REALTIME at virtual time zero: 2026-01-01T00:00:00Z.
pub const REALTIME_BASE_SECS: u64 = 1_767_225_600;

pub struct Kernel {
    pub tasks: BTreeMap<Tid, Task>,
    pub mms: Vec<Option<Mm>>,
    /// The task running on each vCPU.
    pub running: Vec<Option<Tid>>,
    pub streams: Streams,
    pub allow_paths: Vec<PathBuf>,
    /// Virtual nanoseconds added by sleeps (time jumps when every thread sleeps).
    pub time_offset_ns: u64,
    /// Total instructions retired by all vCPUs up to the last exit.
    pub retired: u64,
    /// Syscalls already reported as unimplemented.
    pub reported_enosys: BTreeSet<u64>,
    pub next_tid: Tid,
    /// Set when the last thread of the initial process is gone.
    pub outcome: Option<Outcome>,
    /// Deterministic source for getrandom and AT_RANDOM.
    pub rng: u64,
}

impl Kernel {
    pub fn new(streams: Streams, allow_paths: Vec<PathBuf>, nvcpus: usize) -> Self {
        Self {
            tasks: BTreeMap::new(),
            mms: Vec::new(),
            running: vec![None; nvcpus],
            streams,
            allow_paths,
            time_offset_ns: 0,
            retired: 0,
            reported_enosys: BTreeSet::new(),
            next_tid: 1000,
            outcome: None,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Virtual monotonic time in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.retired * NS_PER_INSTR + self.time_offset_ns
    }

    pub fn next_random(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn add_mm(&mut self, mm: Mm) -> MmId {
        self.mms.push(Some(mm));
        self.mms.len() - 1
    }

    pub fn mm_mut(&mut self, id: MmId) -> &mut Mm {
        self.mms[id].as_mut().expect("task uses a freed mm")
    }

    /// The task on the current vCPU.
    pub fn current(&self, hw: &Hw) -> Tid {
        self.running[hw.cur].expect("no task on this vCPU")
    }

    /// Handles one exit of the current vCPU.
    pub fn handle_exit(&mut self, hw: &mut Hw, exit: Exit) -> Result<(), crate::Error> {
        match exit {
            Exit::Syscall => syscall::do_syscall(self, hw),
            Exit::Exception(Exception::PageFault { addr, code }) => {
                signal::do_page_fault(self, hw, addr, code);
                Ok(())
            }
            Exit::Exception(e) => {
                signal::do_trap(self, hw, e);
                Ok(())
            }
            Exit::Budget => Ok(()),
            Exit::Unimplemented { rip, mnemonic } => Err(crate::Error::Unimplemented { mnemonic, rip }),
        }
    }

    /// Ends the thread group of `tid` (exit_group / fatal signal): every thread goes, the
    /// address space is torn down, and the outcome is recorded if it was the initial process.
    pub fn exit_group(&mut self, hw: &mut Hw, tid: Tid, outcome: Outcome) {
        let tgid = self.tasks[&tid].tgid;
        let members: Vec<Tid> = self.tasks.values().filter(|t| t.tgid == tgid).map(|t| t.tid).collect();
        let mm_id = self.tasks[&tid].mm;
        for t in members {
            self.tasks.remove(&t);
            for r in self.running.iter_mut() {
                if *r == Some(t) {
                    *r = None;
                }
            }
        }
        if let Some(mut mm) = self.mms[mm_id].take() {
            mm::mmap::exit_mmap(&mut mm, hw);
        }
        let _ = self.streams.stdout.flush();
        let _ = self.streams.stderr.flush();
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
    }
}

impl Kernel {
    /// Ends every thread group (instruction limit reached).
    pub fn exit_group_all(&mut self, hw: &mut Hw, outcome: Outcome) {
        let tids: Vec<Tid> = self.tasks.keys().copied().collect();
        for t in tids {
            if self.tasks.contains_key(&t) {
                self.exit_group(hw, t, outcome.clone());
            }
        }
        if self.outcome.is_none() {
            self.outcome = Some(outcome);
        }
    }

    pub fn flush_streams(&mut self) -> std::io::Result<()> {
        self.streams.stdout.flush()?;
        self.streams.stderr.flush()
    }
}

use std::io::Write as _;
