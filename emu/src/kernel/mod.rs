//! The guest kernel, written in Rust and run as Rust code (not as emulated instructions).
//! It handles the exits the CPU returns — SYSCALL, page faults, other exceptions — the way
//! Linux handles the same events, with Linux's names for the functions that mirror it.
//!
//! Layout follows Linux: `arch/` (the x86 exception entries: page faults, traps), `mm/`
//! (VMAs, faults, mprotect, mmap), `syscall/` (the syscall table and its handlers), `task`
//! (threads), `file` (descriptors), `uaccess` (copy_{to,from}_user), `signal` (generation,
//! queueing and delivery).

pub mod arch;
pub mod capability;
pub mod errno;
pub mod eventfd;
pub mod eventpoll;
pub mod exit;
pub mod file;
pub mod fork;
pub mod hw;
pub mod itimer;
pub mod mm;
pub mod mmstat;
pub mod pagemap_scan;
pub mod pipe;
pub mod procfs;
pub mod sched;
pub mod shmemfs;
pub mod signal;
pub mod syscall;
pub mod task;
pub mod uaccess;
pub mod uffd;

use crate::cpu::{Exception, Exit};
use crate::Outcome;
use file::Streams;
use hw::Hw;
use mm::{Mm, MmId};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use task::{FutexKey, Process, Task, Tid, WaitKey};

/// Nanoseconds of virtual time per retired instruction (a 1 GHz virtual machine).
pub const NS_PER_INSTR: u64 = 1;
/// CLOCK_REALTIME at virtual time zero: 2026-01-01T00:00:00Z.
pub const REALTIME_BASE_SECS: u64 = 1_767_225_600;

/// Machine-wide switches the kernel honours.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelOptions {
    /// The pagelab test-hook syscall is available.
    pub test_hooks: bool,
}

pub struct Kernel {
    pub tasks: BTreeMap<Tid, Task>,
    /// Thread groups by tgid (zombies included until reaped).
    pub procs: BTreeMap<Tid, Process>,
    pub mms: Vec<Option<Mm>>,
    /// The task running on each vCPU.
    pub running: Vec<Option<Tid>>,
    /// Runnable tasks not on a vCPU, in FIFO order.
    pub runq: VecDeque<Tid>,
    /// Armed timers, by (deadline in virtual ns, sequence).
    pub timers: BTreeMap<(u64, u64), sched::Timer>,
    /// Futex wait queues, FIFO per key: (waiter, bitset).
    pub futexes: BTreeMap<FutexKey, VecDeque<(Tid, u32)>>,
    /// Wake keys raised where the kernel is not at hand (a pipe end dropped); drained by
    /// the run loop after every exit.
    pub deferred_wakes: Rc<RefCell<Vec<WaitKey>>>,
    pub streams: Streams,
    pub allow_paths: Vec<PathBuf>,
    pub opts: KernelOptions,
    /// Virtual time (ns) of the exit being handled, set by the run loop.
    pub now: u64,
    /// Total instructions retired by all vCPUs up to the last exit.
    pub retired: u64,
    /// Syscalls already reported as unimplemented.
    pub reported_enosys: BTreeSet<u64>,
    pub next_tid: Tid,
    /// Next id for kernel objects (pipes, eventfds, epoll instances, userfaultfds).
    pub next_obj: u64,
    /// Sequence numbers for blocks and timers.
    pub seq: u64,
    /// The initial process; its outcome is the run's outcome.
    pub init_tgid: Tid,
    /// Set when the initial process has ended.
    pub outcome: Option<Outcome>,
    /// Deterministic source for getrandom and AT_RANDOM.
    pub rng: u64,
    /// Context switches (a task put on a vCPU that ran another task).
    pub context_switches: u64,
    /// The current task asked to give up its vCPU (sched_yield) after this exit.
    pub resched: bool,
    /// userfaultfd contexts released and waiters queued (see `uffd`).
    pub uffd: uffd::UffdKernel,
    /// The tmpfs mounts at /tmp and /dev/shm (see `shmemfs`).
    pub tmpfs: shmemfs::Tmpfs,
    /// The page caches of mapped host files, by path, while a mapping holds one.
    pub host_pages: BTreeMap<PathBuf, mm::shmem::WeakShmem>,
}

impl Kernel {
    pub fn new(streams: Streams, allow_paths: Vec<PathBuf>, nvcpus: usize) -> Self {
        Self {
            tasks: BTreeMap::new(),
            procs: BTreeMap::new(),
            mms: Vec::new(),
            running: vec![None; nvcpus],
            runq: VecDeque::new(),
            timers: BTreeMap::new(),
            futexes: BTreeMap::new(),
            deferred_wakes: Rc::new(RefCell::new(Vec::new())),
            streams,
            allow_paths,
            opts: KernelOptions::default(),
            now: 0,
            retired: 0,
            reported_enosys: BTreeSet::new(),
            next_tid: 1000,
            next_obj: 1,
            seq: 0,
            init_tgid: 0,
            outcome: None,
            rng: 0x9e37_79b9_7f4a_7c15,
            context_switches: 0,
            resched: false,
            uffd: Default::default(),
            // The mount roots' inode numbers (tmpfs roots are inode 1 on Linux; two mounts
            // here need two).
            host_pages: BTreeMap::new(),
            tmpfs: {
                let mut ino = 0;
                shmemfs::Tmpfs::new(move || {
                    ino += 1;
                    ino
                })
            },
        }
    }

    /// Virtual monotonic time in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.now
    }

    /// A fresh id for a kernel object (the `WaitKey::Obj` of pipes, eventfds ...).
    pub fn new_obj_id(&mut self) -> u64 {
        self.next_obj += 1;
        self.next_obj
    }

    pub fn alloc_tid(&mut self) -> Tid {
        let t = self.next_tid;
        self.next_tid += 1;
        t
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
    /// Counts one completed page fault of `tid` (major or minor) to the thread and its
    /// thread group (getrusage, /proc/PID/stat).
    pub fn account_fault(&mut self, tid: Tid, major: bool) {
        let Some(t) = self.tasks.get_mut(&tid) else { return };
        let tgid = t.tgid;
        if major {
            t.maj_flt += 1;
        } else {
            t.min_flt += 1;
        }
        if let Some(p) = self.procs.get_mut(&tgid) {
            if major {
                p.maj_flt += 1;
            } else {
                p.min_flt += 1;
            }
        }
    }

    pub fn current(&self, hw: &Hw) -> Tid {
        self.running[hw.cur].expect("no task on this vCPU")
    }

    /// Handles one exit of the current vCPU.
    pub fn handle_exit(&mut self, hw: &mut Hw, exit: Exit) -> Result<(), crate::Error> {
        let r = self.handle_exit_inner(hw, exit);
        // A userfaultfd whose last descriptor went in this exit (close, exit) clears its
        // registrations before anyone returns to user mode (userfaultfd_release).
        if !self.uffd.released.borrow().is_empty() {
            uffd::process_released(self, hw);
        }
        if !self.uffd.waiters.is_empty() && self.tasks.len() != self.uffd.tasks_seen {
            // A thread went (exit, kill): its queued faults go with it.
            uffd::prune_dead_waiters(self);
        }
        self.uffd.tasks_seen = self.tasks.len();
        r
    }

    fn handle_exit_inner(&mut self, hw: &mut Hw, exit: Exit) -> Result<(), crate::Error> {
        match exit {
            Exit::Syscall => syscall::do_syscall(self, hw),
            Exit::Exception(Exception::PageFault { addr, code }) => {
                arch::fault::exc_page_fault(self, hw, addr, mmu::PfErrorCode(code));
                Ok(())
            }
            Exit::Exception(e) => {
                arch::traps::do_trap(self, hw, e);
                Ok(())
            }
            Exit::Budget => Ok(()),
            Exit::Unimplemented { rip, mnemonic } => Err(crate::Error::Unimplemented { mnemonic, rip }),
            Exit::StaleTlb(r) => Err(crate::Error::StaleTlb(r)),
        }
    }

    /// Ends the thread group of `tid` (exit_group / fatal signal); see `exit`.
    pub fn exit_group(&mut self, hw: &mut Hw, tid: Tid, outcome: Outcome) {
        exit::do_group_exit(self, hw, tid, outcome);
    }
}

impl Kernel {
    /// Ends every thread group (instruction limit reached, deadlock).
    pub fn exit_group_all(&mut self, hw: &mut Hw, outcome: Outcome) {
        if self.outcome.is_none() {
            self.outcome = Some(outcome.clone());
        }
        let leaders: Vec<Tid> = self.procs.keys().copied().collect();
        for t in leaders {
            if let Some(&tid) = self.procs.get(&t).and_then(|p| p.threads.iter().find(|t| self.tasks.contains_key(t))) {
                exit::do_group_exit(self, hw, tid, outcome.clone());
            }
        }
        exit::reap_all(self, hw);
    }

    pub fn flush_streams(&mut self) -> std::io::Result<()> {
        self.streams.stdout.flush()?;
        self.streams.stderr.flush()
    }
}

use std::io::Write as _;
