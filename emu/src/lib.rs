//! The pagelab machine: a CPU interpreter (`cpu`), a guest kernel written in Rust (`kernel`),
//! the ELF loader (`loader`), the run loop that ties them together (`machine`) and trace
//! events (`trace`). The CPU never calls the kernel: it returns an [`cpu::Exit`] to the run
//! loop, which hands it to the kernel, the way a vCPU exits to KVM.

use std::io::{Read, Write};
use std::path::PathBuf;

/// How a machine is configured.
pub struct Config {
    /// Guest physical memory, bytes.
    pub mem_bytes: u64,
    /// Stop after this many guest instructions (all vCPUs together).
    pub instr_limit: Option<u64>,
    /// Write trace events as JSON Lines here.
    pub trace: Option<Box<dyn Write + Send>>,
    /// Host paths, besides the program itself, the guest may open read-only.
    pub allow_paths: Vec<PathBuf>,
    /// Virtual CPUs (each with its own registers, CR3 and TLB).
    pub vcpus: usize,
    /// How threads are placed on vCPUs and preempted.
    pub sched: SchedPolicy,
    /// Seed of the random policy (and of nothing else: guest randomness is fixed).
    pub seed: u64,
    /// Instructions a vCPU runs before the next busy vCPU's turn (`--slice`; see
    /// `machine::DEFAULT_SLICE`).
    pub slice: u64,
    /// Check every TLB hit against the page tables and stop on a stale entry.
    pub check_tlb: bool,
    /// Enable the pagelab test-hook syscall (see `kernel::syscall::hooks`).
    pub test_hooks: bool,
    /// Size of the emulated swap device in bytes (`--swap`); 0: no swap, so MADV_PAGEOUT
    /// leaves pages resident as on a Linux without swap.
    pub swap_bytes: u64,
    /// The transparent-huge-page policy (`--thp`): madvise by default, as on the
    /// reference host.
    pub thp: ThpMode,
    /// The initial hugetlb pools (`--hugepages`, `--hugepages-1g`): 2 MiB and 1 GiB pages
    /// taken from guest memory at boot, as the kernel's hugepages= parameter does (as many
    /// as fit). 0 by default, as on the reference host; the guest may change them through
    /// /proc/sys/vm/nr_hugepages and /sys/kernel/mm/hugepages.
    pub hugepages: u64,
    pub hugepages_1g: u64,
}

/// Scheduling policy of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SchedPolicy {
    /// FIFO run queue, fixed quanta: one interleaving per program.
    #[default]
    RoundRobin,
    /// Seeded: random choice from the run queue and random quantum lengths.
    Random,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mem_bytes: 4 << 30,
            instr_limit: None,
            trace: None,
            allow_paths: Vec::new(),
            vcpus: 1,
            sched: SchedPolicy::RoundRobin,
            seed: 0,
            slice: machine::DEFAULT_SLICE,
            check_tlb: false,
            test_hooks: false,
            swap_bytes: kernel::mm::swap::DEFAULT_SWAP_BYTES,
            thp: ThpMode::Madvise,
            hugepages: 0,
            hugepages_1g: 0,
        }
    }
}

/// The guest's standard streams.
pub struct Io {
    pub stdin: Box<dyn Read + Send>,
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
}

impl Io {
    /// The host process's own stdin, stdout and stderr.
    pub fn inherit() -> Self {
        Self { stdin: Box::new(std::io::stdin()), stdout: Box::new(std::io::stdout()), stderr: Box::new(std::io::stderr()) }
    }
}

/// How the guest ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// exit_group(status) or exit of the last thread; `status` is the low 8 bits.
    Exited(i32),
    /// Killed by a signal.
    Signaled { sig: i32, core: bool, fault_addr: Option<u64>, rip: u64 },
    /// The instruction limit was reached.
    InstrLimit,
    /// Every thread is blocked and no timer is pending; the report names each thread.
    Deadlock { report: String },
}

/// Exit status of `pagelab run` for a deadlocked guest.
pub const DEADLOCK_STATUS: i32 = 123;

impl Outcome {
    /// The exit status the `pagelab` process uses: the guest's status, or 128+N for signal N.
    pub fn host_status(&self) -> i32 {
        match self {
            Outcome::Exited(s) => *s & 0xff,
            Outcome::Signaled { sig, .. } => 128 + sig,
            Outcome::InstrLimit => 124,
            Outcome::Deadlock { .. } => DEADLOCK_STATUS,
        }
    }
}

/// Host-side failures: malformed input the kernel has no errno for, or pagelab limits.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// cannot read the program
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// the program is not a loadable static x86-64 ELF executable
    #[error("{path}: not a loadable x86-64 static ELF executable: {why}")]
    BadElf { path: PathBuf, why: String },
    /// an instruction pagelab does not implement
    #[error("unimplemented instruction {mnemonic} at rip {rip:#x}")]
    Unimplemented { mnemonic: String, rip: u64 },
    /// the guest ran out of physical memory while the kernel had no errno to give
    #[error("guest physical memory exhausted: {0}")]
    OutOfMemory(String),
    /// a stale TLB entry found by `--check-tlb`: a missing flush in the kernel
    #[error("stale TLB entry: {0}")]
    StaleTlb(String),
}

/// Loads `prog` with `argv` (argv[0] included) and `envp`, and runs it to completion.
/// The guest sees its standard streams as pipes.
pub fn run_program(cfg: Config, prog: &std::path::Path, argv: &[String], envp: &[String], io: Io) -> Result<Outcome, Error> {
    machine::run(cfg, prog, argv, envp, io, [false; 3]).map(|(o, _)| o)
}

pub use kernel::mm::huge_memory::ThpMode;

pub mod cpu;
pub mod kernel;
pub mod loader;
pub mod machine;
pub mod trace;
