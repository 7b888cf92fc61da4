//! The CPU interpreter: architectural state, the fetch/decode/execute loop, and the exits it
//! returns to the machine (SDM Vol. 1 ch. 3, Vol. 3A ch. 6).
//!
//! The CPU never calls the kernel. `Vcpu::run` executes until something the kernel must see
//! happens — SYSCALL, an exception such as #PF, the end of the quantum — and returns it as
//! an [`Exit`], the way a vCPU exits to KVM. A faulting instruction leaves registers and
//! memory exactly as they were (RIP points at it), so the kernel can fix the cause and
//! resume.
//!
//! Instruction handlers live in one file per family (`alu`, `data`, `control`, `string`,
//! `muldiv`, `bits`, `sse`, `system`); each family offers `select(&Instruction)` and the
//! decoder picks a handler once per decoded instruction (`dispatch`).

pub mod decode;
pub mod dispatch;
pub mod exec;
pub mod flags;
pub mod mem;
pub mod model;

pub mod alu;
pub mod bits;
pub mod control;
pub mod data;
pub mod muldiv;
pub mod sse;
pub mod string;
pub mod system;
pub mod x87;

pub use decode::DecodeCache;
pub use exec::Exec;

use mmu::{ControlRegs, Tlb};

/// Guest-visible MAXPHYADDR (CPUID 0x80000008 EAX[7:0]).
pub const MAXPHYADDR: u8 = 46;

/// General-purpose register numbers, in encoding order.
pub mod reg {
    pub const RAX: usize = 0;
    pub const RCX: usize = 1;
    pub const RDX: usize = 2;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RBP: usize = 5;
    pub const RSI: usize = 6;
    pub const RDI: usize = 7;
    pub const R8: usize = 8;
    pub const R9: usize = 9;
    pub const R10: usize = 10;
    pub const R11: usize = 11;
    pub const R12: usize = 12;
    pub const R13: usize = 13;
    pub const R14: usize = 14;
    pub const R15: usize = 15;
}

/// x87 state, kept as the FXSAVE image needs it. Values are held as f64 (see `x87`).
#[derive(Clone, Debug, PartialEq)]
pub struct X87 {
    pub fcw: u16,
    pub fsw: u16,
    /// Abridged tag word as FXSAVE stores it: bit i set = ST register i (physical) valid.
    pub ftw: u8,
    pub st: [f64; 8],
    pub top: u8,
}

impl Default for X87 {
    fn default() -> Self {
        Self { fcw: 0x037f, fsw: 0, ftw: 0, st: [0.0; 8], top: 0 }
    }
}

/// The architectural state of one logical processor, as user code and the kernel see it.
#[derive(Clone, Debug)]
pub struct CpuState {
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub xmm: [u128; 16],
    pub mxcsr: u32,
    pub x87: X87,
    /// Current privilege level (3 for guest user code).
    pub cpl: u8,
    pub ctl: ControlRegs,
}

impl CpuState {
    /// A user-mode CPU with Linux's control-register settings and the given CR3.
    pub fn new_user(cr3: u64) -> Self {
        Self {
            gpr: [0; 16],
            rip: 0,
            rflags: flags::RESERVED1 | flags::IF,
            fs_base: 0,
            gs_base: 0,
            xmm: [0; 16],
            mxcsr: 0x1f80,
            x87: X87::default(),
            cpl: 3,
            ctl: ControlRegs::linux_user(cr3, MAXPHYADDR),
        }
    }
}

/// Architectural exceptions (SDM Vol. 3A, 6.15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exception {
    /// #DE: divide error.
    DivideError,
    /// #DB after a single step (TF).
    Debug,
    /// #BP from INT3; reported with RIP after the instruction, as a trap.
    Breakpoint,
    /// #UD.
    InvalidOpcode,
    /// #NM.
    DeviceNotAvailable,
    /// #GP(error code).
    GeneralProtection(u32),
    /// #SS(error code): a non-canonical stack access.
    StackFault(u32),
    /// #PF: CR2 and the error code.
    PageFault { addr: u64, code: u32 },
    /// #MF: x87 floating-point error.
    X87Fpe,
    /// #AC.
    AlignmentCheck,
    /// #XM: SIMD floating-point exception.
    SimdFpe,
}

/// Why `Vcpu::run` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// SYSCALL executed: RIP is past it, RCX and R11 hold the return RIP and RFLAGS.
    Syscall,
    /// An exception; for faults RIP is the faulting instruction.
    Exception(Exception),
    /// The instruction budget given to `run` is used up.
    Budget,
    /// An instruction pagelab does not implement (not an architecturally undefined one).
    Unimplemented { rip: u64, mnemonic: String },
    /// `--check-tlb` found a TLB hit granting more than the page tables do now.
    StaleTlb(String),
}

/// One virtual CPU: its registers, its TLB and its fetch state.
pub struct Vcpu {
    pub state: CpuState,
    pub tlb: Tlb,
    /// Instructions retired by this vCPU.
    pub retired: u64,
    /// This vCPU's virtual time in ns: one per instruction it retires, plus the time it
    /// spent idle or was brought forward to kernel time (see `machine`). Trace stamps and
    /// the TSC read it.
    pub clock: u64,
    pub(crate) fetch: decode::FetchState,
    /// Verify every TLB hit against the page tables (`--check-tlb`).
    pub check_tlb: bool,
}

impl Vcpu {
    pub fn new(state: CpuState) -> Self {
        Self { state, tlb: Tlb::new(), retired: 0, clock: 0, fetch: decode::FetchState::default(), check_tlb: false }
    }

    /// Runs up to `budget` instructions. Returns why it stopped.
    pub fn run(&mut self, phys: &mut mmu::PhysMem, code: &mut DecodeCache, budget: u64) -> Exit {
        if self.check_tlb || self.tlb.checking() {
            self.start_checking();
        }
        decode::run(self, phys, code, budget)
    }

    /// `--check-tlb`, once per call of `run`: the TLB in checking mode, and the code-page
    /// memo forgotten so the first fetch is a checked TLB hit (see `decode`).
    #[cold]
    fn start_checking(&mut self) {
        self.tlb.set_checking(self.check_tlb);
        self.fetch = decode::FetchState::default();
    }
}
