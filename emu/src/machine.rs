//! The machine: hardware (memory, vCPUs) plus the guest kernel, and the run loop between
//! them. The loop runs a vCPU until it exits, hands the exit to the kernel, and repeats —
//! the shape of a KVM run loop.

use crate::cpu::{CpuState, Exit};
use crate::kernel::file::{Fd, File, FileKind, FdTable, Streams};
use crate::kernel::hw::Hw;
use crate::kernel::task::{Process, Task, Tid};
use crate::kernel::Kernel;
use crate::{Config, Error, Io, Outcome, SchedPolicy};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

/// Instructions per vCPU per round of the run loop (the round-robin quantum); timers
/// fire at round boundaries.
pub const QUANTUM: u64 = 100_000;

#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub instructions: u64,
    pub page_faults: u64,
    pub syscalls: u64,
    pub tlb_hits: u64,
    pub tlb_misses: u64,
    pub walks: u64,
    pub tlb_flushes: u64,
    pub shootdowns: u64,
    pub decoded: u64,
    pub context_switches: u64,
    pub vcpus: usize,
}

pub struct Machine {
    pub hw: Hw,
    pub kernel: Kernel,
    pub instr_limit: Option<u64>,
    pub page_faults: u64,
    pub syscalls: u64,
    pub policy: SchedPolicy,
    /// State of the seeded random policy.
    rng: u64,
    /// Virtual time (ns) at the start of the current round.
    pub clock: u64,
    /// Verify TLB hits against the page tables (`--check-tlb`).
    pub check_tlb: bool,
}

impl Machine {
    pub fn new(cfg: &Config, io: Io, tty: [bool; 3]) -> Self {
        let n = cfg.vcpus.max(1);
        let mut hw = Hw::new(cfg.mem_bytes, n);
        hw.swap = crate::kernel::mm::swap::SwapDevice::new(cfg.swap_bytes);
        hw.thp = cfg.thp;
        // hugepages= at boot: the 1 GiB pool first, as gigantic pages need the most
        // contiguous memory.
        use crate::kernel::mm::hugetlb::{set_max_huge_pages, HugeSize};
        set_max_huge_pages(&mut hw.pages, HugeSize::G1, cfg.hugepages_1g);
        set_max_huge_pages(&mut hw.pages, HugeSize::M2, cfg.hugepages);
        let streams = Streams { stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, tty };
        let mut kernel = Kernel::new(streams, cfg.allow_paths.clone(), n);
        kernel.opts.test_hooks = cfg.test_hooks;
        let mut m = Self {
            hw,
            kernel,
            instr_limit: cfg.instr_limit,
            page_faults: 0,
            syscalls: 0,
            policy: cfg.sched,
            rng: cfg.seed ^ 0x853c_49e6_748f_ea9b,
            clock: 0,
            check_tlb: cfg.check_tlb,
        };
        for v in m.hw.vcpus.iter_mut() {
            v.check_tlb = cfg.check_tlb;
        }
        m.next_rand();
        m
    }

    /// Loads the program as the initial process (pid 1000), ready to run.
    pub fn load(&mut self, prog: &Path, argv: &[String], envp: &[String]) -> Result<(), Error> {
        let mut random = [0u8; 16];
        for c in random.chunks_mut(8) {
            c.copy_from_slice(&self.kernel.next_random().to_le_bytes());
        }
        self.hw.cur = 0;
        let loaded = crate::loader::load_elf(&mut self.hw, prog, argv, envp, random)?;
        let cr3 = loaded.mm.pml4.as_u64();
        let mm = self.kernel.add_mm(loaded.mm);
        let mut regs = CpuState::new_user(cr3);
        regs.rip = loaded.entry;
        regs.gpr[crate::cpu::reg::RSP] = loaded.sp;
        // RDX = 0: no exit handler for the program to register (x86-64 ABI).
        regs.gpr[crate::cpu::reg::RDX] = 0;
        let mut files = FdTable::default();
        for (n, kind) in [(0, FileKind::Stdin), (1, FileKind::Output(1)), (2, FileKind::Output(2))] {
            let flags = if n == 0 { 0 } else { 1 };
            files.install_at(Fd { file: Rc::new(RefCell::new(File::new(kind, flags))), cloexec: false }, n);
        }
        let tid = self.kernel.alloc_tid();
        let mut task = Task::new(tid, tid, mm, regs);
        task.files = Rc::new(RefCell::new(files));
        self.kernel.tasks.insert(tid, task);
        self.kernel.procs.insert(tid, Process::new(tid, 1));
        self.kernel.init_tgid = tid;
        self.kernel.enqueue(tid);
        Ok(())
    }

    fn next_rand(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Runs until every task has exited, the instruction limit is reached, the guest
    /// deadlocks, or a host-side error stops the machine.
    pub fn run(&mut self) -> Result<Outcome, Error> {
        let n = self.hw.vcpus.len();
        let mut order: Vec<usize> = (0..n).collect();
        loop {
            if self.kernel.tasks.is_empty() {
                return Ok(self.kernel.outcome.clone().unwrap_or(Outcome::Exited(0)));
            }
            if let Some(limit) = self.instr_limit {
                if self.retired() >= limit {
                    self.kernel.exit_group_all(&mut self.hw, Outcome::InstrLimit);
                    return Ok(Outcome::InstrLimit);
                }
            }
            if self.policy == SchedPolicy::Random {
                for i in (1..n).rev() {
                    let j = (self.next_rand() % (i as u64 + 1)) as usize;
                    order.swap(i, j);
                }
            }
            for idx in 0..n {
                let i = order[idx];
                let len = match self.policy {
                    SchedPolicy::RoundRobin => QUANTUM,
                    SchedPolicy::Random => 1 + self.next_rand() % QUANTUM,
                };
                self.run_vcpu(i, len)?;
                if self.kernel.tasks.is_empty() {
                    break;
                }
            }
            self.clock += QUANTUM;
            self.kernel.now = self.kernel.now.max(self.clock);
            self.kernel.fire_timers(&mut self.hw);
            self.kernel.drain_deferred_wakes();
            if !self.kernel.tasks.is_empty() && !self.kernel.anything_runnable() {
                match self.kernel.next_timer() {
                    Some(d) => {
                        // Every thread sleeps: virtual time jumps to the next timer.
                        self.clock = self.clock.max(d);
                        self.kernel.now = self.kernel.now.max(self.clock);
                        tracing::debug!(target: "pagelab::sched", to = self.clock, "idle: time jumps");
                        self.kernel.fire_timers(&mut self.hw);
                        self.kernel.drain_deferred_wakes();
                    }
                    None => {
                        let report = self.kernel.deadlock_report();
                        tracing::debug!(target: "pagelab::sched", "deadlock");
                        let o = Outcome::Deadlock { report };
                        self.kernel.exit_group_all(&mut self.hw, o.clone());
                        return Ok(o);
                    }
                }
            }
        }
    }

    /// Runs vCPU `i` for up to `len` instructions of this round: its task, and when that
    /// blocks or exits, whatever the run queue offers.
    fn run_vcpu(&mut self, i: usize, len: u64) -> Result<(), Error> {
        self.hw.cur = i;
        let mut used = 0u64;
        while used < len {
            if self.kernel.tasks.is_empty() {
                return Ok(());
            }
            self.kernel.now = self.kernel.now.max(self.clock + used);
            if self.kernel.running[i].is_none() {
                let Some(t) = self.pick_next(i) else { break };
                self.switch_in(i, t);
                continue;
            }
            let tid = self.kernel.running[i].unwrap();
            let mut budget = len - used;
            if let Some(limit) = self.instr_limit {
                let r = self.retired();
                if r >= limit {
                    return Ok(());
                }
                budget = budget.min(limit - r);
            }
            let v = &mut self.hw.vcpus[i];
            let before = v.retired;
            let exit = v.run(&mut self.hw.mem, &mut self.hw.code, budget);
            let ran = self.hw.vcpus[i].retired - before;
            used += ran;
            self.kernel.retired += ran;
            self.kernel.now = self.kernel.now.max(self.clock + used);
            crate::trace::set_now(self.kernel.retired);
            self.kernel.account(&mut self.hw, tid, ran);
            match &exit {
                Exit::Syscall => self.syscalls += 1,
                Exit::Exception(crate::cpu::Exception::PageFault { .. }) => self.page_faults += 1,
                Exit::StaleTlb(report) => return Err(Error::StaleTlb(format!("vCPU {i}, tid {tid}: {report}"))),
                _ => {}
            }
            let budget_out = exit == Exit::Budget;
            self.kernel.handle_exit(&mut self.hw, exit)?;
            if let Some(hit) = self.hw.vcpus[i].tlb.stale.take() {
                // `--check-tlb`: a kernel access to user memory (copy_to_user ...) went
                // through a stale entry of this vCPU's TLB.
                return Err(Error::StaleTlb(format!("vCPU {i}, tid {tid}: kernel access: {hit}")));
            }
            if self.kernel.running[i] == Some(tid) {
                crate::kernel::arch::signal::exit_to_user(&mut self.kernel, &mut self.hw);
            }
            self.kernel.drain_deferred_wakes();
            // sched_yield gives the vCPU to a queued task; sched_setaffinity may have
            // forbidden this vCPU to its task.
            if std::mem::take(&mut self.kernel.resched)
                && self.kernel.running[i] == Some(tid)
                && (!self.kernel.runq.is_empty() || self.kernel.tasks.get(&tid).is_some_and(|t| t.cpus_allowed >> i & 1 == 0))
            {
                self.preempt(i);
            }
            if budget_out {
                break;
            }
        }
        // End of this vCPU's quantum: let a waiting task have it, and move a task that
        // another thread's sched_setaffinity has banned from this vCPU.
        if let Some(tid) = self.kernel.running[i] {
            let banned = self.kernel.tasks.get(&tid).is_some_and(|t| t.cpus_allowed >> i & 1 == 0);
            if banned || !self.kernel.runq.is_empty() {
                self.preempt(i);
            }
        }
        Ok(())
    }

    /// The next queued task for vCPU `i`: the first (round robin) or a random one of those
    /// whose affinity allows vCPU `i`.
    fn pick_next(&mut self, i: usize) -> Option<Tid> {
        let k = &self.kernel;
        let allowed = |t: &Tid| k.tasks.get(t).is_none_or(|t| t.cpus_allowed >> i & 1 != 0);
        let idx = match self.policy {
            SchedPolicy::RoundRobin => k.runq.iter().position(allowed)?,
            SchedPolicy::Random => {
                let n = k.runq.iter().filter(|t| allowed(t)).count();
                if n == 0 {
                    return None;
                }
                let nth = (self.next_rand() % n as u64) as usize;
                let k = &self.kernel;
                let allowed = |t: &Tid| k.tasks.get(t).is_none_or(|t| t.cpus_allowed >> i & 1 != 0);
                k.runq.iter().enumerate().filter(|(_, t)| allowed(t)).nth(nth)?.0
            }
        };
        self.kernel.runq.remove(idx)
    }

    /// Puts `tid` on vCPU `i`: its registers, and its address space (a CR3 write, which
    /// flushes the TLB, only when the vCPU last ran another mm).
    fn switch_in(&mut self, i: usize, tid: Tid) {
        let Some(t) = self.kernel.tasks.get(&tid) else { return };
        let mm = t.mm;
        let rewound = t.restart.is_some();
        let v = &mut self.hw.vcpus[i];
        v.state = t.regs.clone();
        if self.hw.vcpu_mm[i] != Some(mm) {
            let cr3 = v.state.ctl.cr3;
            v.tlb.write_cr3(&mut v.state.ctl, cr3);
            self.hw.vcpu_mm[i] = Some(mm);
        }
        self.kernel.running[i] = Some(tid);
        self.kernel.context_switches += 1;
        tracing::debug!(target: "pagelab::sched", tid, vcpu = i as u64, "switch in");
        if !rewound {
            crate::kernel::arch::signal::exit_to_user(&mut self.kernel, &mut self.hw);
        }
    }

    /// Takes the task off vCPU `i` and queues it.
    fn preempt(&mut self, i: usize) {
        if let Some(tid) = self.kernel.running[i].take() {
            if let Some(t) = self.kernel.tasks.get_mut(&tid) {
                t.regs = self.hw.vcpus[i].state.clone();
                self.kernel.runq.push_back(tid);
            }
        }
    }

    pub fn retired(&self) -> u64 {
        self.hw.vcpus.iter().map(|v| v.retired).sum()
    }

    pub fn stats(&self) -> Stats {
        let mut s = Stats {
            instructions: self.retired(),
            page_faults: self.page_faults,
            syscalls: self.syscalls,
            shootdowns: self.hw.shootdowns,
            decoded: self.hw.code.stats.decoded,
            context_switches: self.kernel.context_switches,
            vcpus: self.hw.vcpus.len(),
            ..Default::default()
        };
        for v in &self.hw.vcpus {
            s.tlb_hits += v.tlb.stats.hits;
            s.tlb_misses += v.tlb.stats.misses;
            s.walks += v.tlb.stats.walks;
            s.tlb_flushes += v.tlb.stats.flushes;
        }
        s
    }
}

/// Loads and runs a program (see [`crate::run_program`]).
pub fn run(cfg: Config, prog: &Path, argv: &[String], envp: &[String], io: Io, tty: [bool; 3]) -> Result<(Outcome, Stats), Error> {
    let mut cfg = cfg;
    let guard = cfg.trace.take().map(crate::trace::install);
    let mut m = Machine::new(&cfg, io, tty);
    m.load(prog, argv, envp)?;
    let r = m.run();
    let stats = m.stats();
    let _ = m.kernel.flush_streams();
    drop(guard);
    r.map(|o| (o, stats))
}
