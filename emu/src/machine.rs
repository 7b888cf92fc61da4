//! The machine: hardware (memory, vCPUs) plus the guest kernel, and the run loop between
//! them. The loop runs a vCPU until it exits, hands the exit to the kernel, and repeats —
//! the shape of a KVM run loop.

use crate::cpu::{CpuState, Exit};
use crate::kernel::file::{Fd, File, FileKind, FdTable, Streams};
use crate::kernel::hw::Hw;
use crate::kernel::task::{SigAction, Task, TaskState};
use crate::kernel::Kernel;
use crate::{Config, Error, Io, Outcome};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

/// Instructions a vCPU runs before the loop looks around (scheduling, limits).
pub const QUANTUM: u64 = 200_000;

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
}

pub struct Machine {
    pub hw: Hw,
    pub kernel: Kernel,
    pub instr_limit: Option<u64>,
    pub page_faults: u64,
    pub syscalls: u64,
}

impl Machine {
    pub fn new(cfg: &Config, io: Io, tty: [bool; 3]) -> Self {
        let hw = Hw::new(cfg.mem_bytes, 1);
        let streams = Streams { stdin: io.stdin, stdout: io.stdout, stderr: io.stderr, tty };
        let kernel = Kernel::new(streams, cfg.allow_paths.clone(), 1);
        Self { hw, kernel, instr_limit: cfg.instr_limit, page_faults: 0, syscalls: 0 }
    }

    /// Loads the program as the initial process (pid 1000) on vCPU 0.
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
            files.install_at(Fd { file: Rc::new(RefCell::new(File { kind, flags })), cloexec: false }, n);
        }
        let tid = self.kernel.next_tid;
        self.kernel.next_tid += 1;
        let task = Task {
            tid,
            tgid: tid,
            ppid: 1,
            mm,
            regs: regs.clone(),
            state: TaskState::Runnable,
            files: Rc::new(RefCell::new(files)),
            sigactions: Rc::new(RefCell::new([SigAction::default(); 64])),
            sigmask: 0,
            clear_child_tid: 0,
            robust_list: (0, 0),
            exit_code: 0,
        };
        self.kernel.tasks.insert(tid, task);
        let v = &mut self.hw.vcpus[0];
        let ctl = v.state.ctl;
        v.state = regs;
        v.state.ctl = ctl;
        v.tlb.write_cr3(&mut v.state.ctl, cr3);
        self.kernel.running[0] = Some(tid);
        Ok(())
    }

    /// Runs until the initial process ends, the instruction limit is reached, or a
    /// host-side error stops the machine.
    pub fn run(&mut self) -> Result<Outcome, Error> {
        loop {
            if let Some(o) = self.kernel.outcome.clone() {
                return Ok(o);
            }
            let retired = self.retired();
            let mut budget = QUANTUM;
            if let Some(limit) = self.instr_limit {
                if retired >= limit {
                    self.kernel.exit_group_all(&mut self.hw, Outcome::InstrLimit);
                    return Ok(Outcome::InstrLimit);
                }
                budget = budget.min(limit - retired);
            }
            self.hw.cur = 0;
            let v = &mut self.hw.vcpus[0];
            let exit = v.run(&mut self.hw.mem, &mut self.hw.code, budget);
            self.kernel.retired = self.retired();
            crate::trace::set_now(self.kernel.retired);
            match &exit {
                Exit::Syscall => self.syscalls += 1,
                Exit::Exception(crate::cpu::Exception::PageFault { .. }) => self.page_faults += 1,
                _ => {}
            }
            self.kernel.handle_exit(&mut self.hw, exit)?;
        }
    }

    pub fn retired(&self) -> u64 {
        self.hw.vcpus.iter().map(|v| v.retired).sum()
    }

    pub fn stats(&self) -> Stats {
        let mut s = Stats { instructions: self.retired(), page_faults: self.page_faults, syscalls: self.syscalls, shootdowns: self.hw.shootdowns, decoded: self.hw.code.stats.decoded, ..Default::default() };
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
