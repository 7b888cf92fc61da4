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

/// A task's time on a vCPU before a waiting task may take its place (round robin; the
/// random policy draws one in 1..=QUANTUM at each switch-in). Also the slice of a vCPU that
/// runs alone, when there is no other vCPU to interleave with.
pub const QUANTUM: u64 = 100_000;

/// The default `--slice`: instructions a vCPU runs before the next busy vCPU's turn, while
/// two or more have work. Small enough that a userfaultfd handler and its faulter overlap;
/// measured in docs/machine.md.
pub const DEFAULT_SLICE: u64 = 1_000;

#[derive(Clone, Debug, Default)]
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
    /// Instructions each vCPU retired.
    pub vcpu_instructions: Vec<u64>,
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
    /// `--slice`: see [`DEFAULT_SLICE`].
    pub slice: u64,
    /// Per vCPU: instructions its task has run since it was switched in, and the task's
    /// quantum (see [`QUANTUM`]).
    on_cpu: Vec<(u64, u64)>,
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
            slice: cfg.slice.max(1),
            on_cpu: vec![(0, QUANTUM); n],
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
    ///
    /// Each step puts queued tasks on idle vCPUs, then runs the busy vCPU whose clock is
    /// furthest behind for one slice, so that busy vCPUs advance together in virtual time
    /// (docs/machine.md).
    pub fn run(&mut self) -> Result<Outcome, Error> {
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
            self.place_queued();
            let Some(i) = self.pick_vcpu() else {
                // No vCPU has work (and, every vCPU being idle, nothing is queued).
                if let Some(d) = self.kernel.next_timer() {
                    // Every thread sleeps: virtual time jumps to the next timer.
                    self.kernel.now = self.kernel.now.max(d);
                    tracing::debug!(target: "pagelab::sched", to = self.kernel.now, "idle: time jumps");
                    self.kernel.fire_timers(&mut self.hw);
                    self.kernel.drain_deferred_wakes();
                    continue;
                }
                let report = self.kernel.deadlock_report();
                tracing::debug!(target: "pagelab::sched", "deadlock");
                let o = Outcome::Deadlock { report };
                self.kernel.exit_group_all(&mut self.hw, o.clone());
                return Ok(o);
            };
            let len = self.slice_len(i);
            self.run_slice(i, len)?;
            // Every busy vCPU has reached the earliest busy clock: kernel time may go there,
            // and the timers due by then fire.
            let n = self.hw.vcpus.len();
            if let Some(gvt) = (0..n).filter(|&j| self.kernel.running[j].is_some()).map(|j| self.hw.vcpus[j].clock).min() {
                self.kernel.now = self.kernel.now.max(gvt);
            }
            self.kernel.fire_timers(&mut self.hw);
            self.kernel.drain_deferred_wakes();
        }
    }

    /// The vCPUs `tid` may run on: its affinity among the online vCPUs (all of them, should
    /// that leave none).
    fn allowed(&self, tid: Tid) -> u64 {
        let online = self.hw.online_mask();
        let m = self.kernel.tasks.get(&tid).map_or(online, |t| t.cpus_allowed & online);
        if m == 0 {
            online
        } else {
            m
        }
    }

    /// The idle vCPUs, bit i = vCPU i.
    fn idle_mask(&self) -> u64 {
        self.kernel.running.iter().enumerate().filter(|(_, r)| r.is_none()).fold(0, |m, (i, _)| m | 1 << i)
    }

    /// Whether a queued task could start on an idle vCPU now.
    fn placeable(&self) -> bool {
        if self.kernel.runq.is_empty() {
            return false;
        }
        let idle = self.idle_mask();
        idle != 0 && self.kernel.runq.iter().any(|&t| self.allowed(t) & idle != 0)
    }

    /// Whether a queued task waits for vCPU `i`.
    fn waiting_for(&self, i: usize) -> bool {
        self.kernel.runq.iter().any(|&t| self.allowed(t) >> i & 1 != 0)
    }

    /// Puts queued tasks on the idle vCPUs that may run them: the first queued (round
    /// robin) or a random one, on the vCPU it last ran on if that is idle (round robin),
    /// else on the first idle one (round robin) or a random one.
    fn place_queued(&mut self) {
        while !self.kernel.runq.is_empty() {
            let idle = self.idle_mask();
            if idle == 0 {
                return;
            }
            let fits: Vec<usize> = (0..self.kernel.runq.len()).filter(|&k| self.allowed(self.kernel.runq[k]) & idle != 0).collect();
            if fits.is_empty() {
                return;
            }
            let k = match self.policy {
                SchedPolicy::RoundRobin => fits[0],
                SchedPolicy::Random => fits[(self.next_rand() % fits.len() as u64) as usize],
            };
            let tid = self.kernel.runq.remove(k).unwrap();
            let m = self.allowed(tid) & idle;
            let last = self.kernel.tasks.get(&tid).and_then(|t| t.last_vcpu);
            let j = match (self.policy, last) {
                (SchedPolicy::RoundRobin, Some(l)) if m >> l & 1 != 0 => l,
                (SchedPolicy::RoundRobin, _) => m.trailing_zeros() as usize,
                (SchedPolicy::Random, _) => {
                    let nth = self.next_rand() % m.count_ones() as u64;
                    (0..64).filter(|b| m >> b & 1 != 0).nth(nth as usize).unwrap()
                }
            };
            self.switch_in(j, tid);
        }
    }

    /// The busy vCPU to run next: the one furthest behind in virtual time (round robin:
    /// the first such), or a random one of those less than a slice ahead of it.
    fn pick_vcpu(&mut self) -> Option<usize> {
        let n = self.hw.vcpus.len();
        let busy = |j: &usize| self.kernel.running[*j].is_some();
        // Round robin: the first busy vCPU with the lowest clock.
        let first = (0..n).filter(busy).min_by_key(|&j| self.hw.vcpus[j].clock)?;
        if self.policy == SchedPolicy::RoundRobin {
            return Some(first);
        }
        let min = self.hw.vcpus[first].clock;
        let near: Vec<usize> = (0..n).filter(|j| busy(j) && self.hw.vcpus[*j].clock < min + self.slice).collect();
        Some(near[(self.next_rand() % near.len() as u64) as usize])
    }

    /// How long vCPU `i` runs now: a slice while another vCPU has work (random: drawn in
    /// 1..=2×slice), a quantum when it runs alone; never past the next timer, nor past its
    /// task's quantum when another task waits for this vCPU.
    fn slice_len(&mut self, i: usize) -> u64 {
        let busy = self.kernel.running.iter().filter(|r| r.is_some()).count();
        let mut len = if busy < 2 {
            QUANTUM
        } else {
            match self.policy {
                SchedPolicy::RoundRobin => self.slice,
                SchedPolicy::Random => 1 + self.next_rand() % (2 * self.slice),
            }
        };
        let clock = self.hw.vcpus[i].clock;
        if let Some(d) = self.kernel.next_timer() {
            if d > clock {
                len = len.min(d - clock);
            }
        }
        let (ran, quantum) = self.on_cpu[i];
        if ran < quantum && self.waiting_for(i) {
            len = len.min(quantum - ran);
        }
        len.max(1)
    }

    /// A kernel entry on vCPU `i`: kernel time and the vCPU's clock meet at the later of
    /// the two, and the timers due by then fire before the kernel acts.
    fn enter_kernel(&mut self, i: usize) {
        let v = &mut self.hw.vcpus[i];
        let t = v.clock.max(self.kernel.now);
        v.clock = t;
        self.kernel.now = t;
        crate::trace::set_now(t);
        if self.kernel.next_timer().is_some_and(|d| d <= t) {
            self.kernel.fire_timers(&mut self.hw);
        }
    }

    /// Runs vCPU `i` for up to `len` instructions of its task. The slice ends early when
    /// the task leaves the vCPU (blocks, exits, yields) or when a task becomes runnable
    /// that an idle vCPU may run, so that it starts there at once.
    fn run_slice(&mut self, i: usize, len: u64) -> Result<(), Error> {
        self.hw.cur = i;
        let mut used = 0u64;
        while used < len {
            let Some(tid) = self.kernel.running[i] else { break };
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
            self.on_cpu[i].0 += ran;
            self.kernel.retired += ran;
            let budget_out = exit == Exit::Budget;
            if budget_out {
                crate::trace::set_now(self.hw.vcpus[i].clock);
            } else {
                self.enter_kernel(i);
            }
            self.kernel.account(&mut self.hw, tid, ran);
            match &exit {
                Exit::Syscall => self.syscalls += 1,
                Exit::Exception(crate::cpu::Exception::PageFault { .. }) => self.page_faults += 1,
                Exit::StaleTlb(report) => return Err(Error::StaleTlb(format!("vCPU {i}, tid {tid}: {report}"))),
                _ => {}
            }
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
                && (self.waiting_for(i) || self.allowed(tid) >> i & 1 == 0)
            {
                self.preempt(i);
            }
            if budget_out || self.kernel.running[i] != Some(tid) || self.placeable() {
                break;
            }
        }
        // End of the slice: the task's quantum is up and another waits for this vCPU, or
        // another thread's sched_setaffinity has banned it from here.
        if let Some(tid) = self.kernel.running[i] {
            let (ran, quantum) = self.on_cpu[i];
            if self.allowed(tid) >> i & 1 == 0 || (ran >= quantum && self.waiting_for(i)) {
                self.preempt(i);
            }
        }
        Ok(())
    }

    /// Puts `tid` on vCPU `i`: its registers, and its address space (a CR3 write, which
    /// flushes the TLB, only when the vCPU last ran another mm). The vCPU's clock moves to
    /// the time the task became runnable if that is later, then meets kernel time.
    fn switch_in(&mut self, i: usize, tid: Tid) {
        let Some(t) = self.kernel.tasks.get_mut(&tid) else { return };
        t.last_vcpu = Some(i);
        let mm = t.mm;
        let rewound = t.restart.is_some();
        let ready = t.ready_at;
        self.hw.cur = i;
        let v = &mut self.hw.vcpus[i];
        v.state = t.regs.clone();
        v.clock = v.clock.max(ready);
        if self.hw.vcpu_mm[i] != Some(mm) {
            let cr3 = v.state.ctl.cr3;
            v.tlb.write_cr3(&mut v.state.ctl, cr3);
            self.hw.vcpu_mm[i] = Some(mm);
        }
        self.kernel.running[i] = Some(tid);
        self.kernel.context_switches += 1;
        let quantum = match self.policy {
            SchedPolicy::RoundRobin => QUANTUM,
            SchedPolicy::Random => 1 + self.next_rand() % QUANTUM,
        };
        self.on_cpu[i] = (0, quantum);
        self.enter_kernel(i);
        tracing::debug!(target: "pagelab::sched", tid, vcpu = i as u64, "switch in");
        if !rewound {
            crate::kernel::arch::signal::exit_to_user(&mut self.kernel, &mut self.hw);
        }
    }

    /// Takes the task off vCPU `i` and queues it, runnable from the vCPU's time on.
    fn preempt(&mut self, i: usize) {
        if let Some(tid) = self.kernel.running[i].take() {
            let at = self.hw.vcpus[i].clock.max(self.kernel.now);
            if let Some(t) = self.kernel.tasks.get_mut(&tid) {
                t.regs = self.hw.vcpus[i].state.clone();
                t.ready_at = at;
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
            vcpu_instructions: self.hw.vcpus.iter().map(|v| v.retired).collect(),
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
