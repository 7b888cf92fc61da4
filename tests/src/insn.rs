//! The instruction-level differential harness: a snippet of code, assembled with iced-x86's
//! `CodeAssembler`, runs natively on the host and under pagelab's interpreter from the same
//! registers, flags and memory; the results must agree.
//!
//! Layout. Both runs use the same virtual addresses, all below 2 GiB so absolute `[disp32]`
//! operands work: a trampoline page, the snippet's code, a context page, a data area and a
//! stack (see the `*_VA` constants). Natively they are one fixed RWX mapping in the test
//! process; the trampoline (itself assembled with `CodeAssembler`) saves the host's
//! callee-saved registers and RSP, loads RFLAGS and all sixteen GPRs (RSP included) from the
//! context page, jumps to the snippet, and the snippet's appended `jmp` returns to an
//! epilogue that stores them back. Under pagelab the same pages are mapped by hand-made
//! 4-level page tables, the snippet is followed by `int3`, and the run ends at the
//! breakpoint. [`RO_VA`] is mapped read-only and [`UNMAPPED_VA`] not at all (emulated only),
//! for fault tests.
//!
//! Comparison: all GPRs, the data area and the stack, and the flags an instruction defines:
//! walking the snippet's instructions in order, a flag some instruction leaves undefined
//! (iced-x86 `rflags_undefined`) is masked until a later instruction writes it.
//!
//! What depends on the input (OF of a shift by CL, the destination of BSF of zero) or on
//! the vendor (MXCSR_MASK in FXSAVE, REP with 32-bit addressing and ECX = 0) is named by
//! the test as a [`VendorSpecific`] part with its reason. pagelab does there what Intel
//! does (`emu::cpu::model`), so it is compared when the host's CPUID vendor is
//! `model::VENDOR`, and masked on any other host, where the test says so on stderr
//! ("skipped on AuthenticAMD: ...") rather than pass silently.
//!
//! Native runs share the fixed mapping, so they are serialized by a process-wide lock; the
//! emulated runs are independent and run in parallel test threads.

use emu::cpu::{flags, CpuState, DecodeCache, Exception, Exit, Vcpu};
use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter, RflagsBits};
use mmu::{Entry, PhysAddr, PhysMem};
use std::sync::{Mutex, OnceLock};

/// Base of the harness's fixed virtual range.
pub const BASE: u64 = 0x5000_0000;
/// The native trampoline (entry at the start, epilogue at [`EPILOGUE_VA`]).
pub const TRAMPOLINE_VA: u64 = BASE;
pub const EPILOGUE_VA: u64 = BASE + 0x800;
/// Where snippets are assembled and run (two pages).
pub const SNIPPET_VA: u64 = BASE + 0x1000;
pub const SNIPPET_MAX: usize = 0x2000;
/// The context page: 16 GPRs, RFLAGS, the host RSP.
pub const CTX_VA: u64 = BASE + 0x3000;
/// The data area snippets address (16 KiB) and the stack right above it (8 KiB).
pub const DATA_VA: u64 = BASE + 0x4000;
pub const DATA_LEN: usize = 0x4000;
pub const STACK_VA: u64 = BASE + 0x8000;
pub const STACK_LEN: usize = 0x2000;
/// Initial RSP: inside the stack with room both ways.
pub const STACK_TOP: u64 = STACK_VA + 0x1000;
/// Emulated only: a read-only page and an unmapped page right after the stack.
pub const RO_VA: u64 = BASE + 0xa000;
pub const UNMAPPED_VA: u64 = BASE + 0xb000;
/// Pages of the range that are mapped natively (up to and including `RO_VA`).
const PAGES: u64 = 11;
/// Bytes compared after a run: the data area and the stack, contiguous from `DATA_VA`.
pub const MEM_LEN: usize = DATA_LEN + STACK_LEN;

const CTX_RFLAGS: u64 = CTX_VA + 16 * 8;
const CTX_HOST_RSP: u64 = CTX_VA + 17 * 8;

/// General-purpose register numbers (encoding order), re-exported for tests.
pub use emu::cpu::reg;

/// Everything a snippet reads and writes: GPRs, RFLAGS and the data area + stack.
#[derive(Clone, PartialEq, Eq)]
pub struct State {
    pub gpr: [u64; 16],
    pub rflags: u64,
    /// `MEM_LEN` bytes from `DATA_VA`.
    pub mem: Vec<u8>,
}

impl State {
    /// Reads `N` bytes of the data area at `va`.
    pub fn read<const N: usize>(&self, va: u64) -> [u8; N] {
        let o = (va - DATA_VA) as usize;
        self.mem[o..o + N].try_into().unwrap()
    }
    pub fn write(&mut self, va: u64, bytes: &[u8]) {
        let o = (va - DATA_VA) as usize;
        self.mem[o..o + bytes.len()].copy_from_slice(bytes);
    }
    pub fn write_u64(&mut self, va: u64, v: u64) {
        self.write(va, &v.to_le_bytes())
    }
    pub fn read_u64(&self, va: u64) -> u64 {
        u64::from_le_bytes(self.read(va))
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, n) in REG_NAMES.iter().enumerate() {
            write!(f, "{n}={:#x} ", self.gpr[i])?;
        }
        write!(f, "rflags={:#x}", self.rflags)
    }
}

pub const REG_NAMES: [&str; 16] = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"];

/// A snippet assembled at [`SNIPPET_VA`], and the flags it leaves defined.
pub struct Snippet {
    pub code: Vec<u8>,
    /// RFLAGS bits compared after a run.
    pub flag_mask: u64,
    pub text: String,
}

/// Assembles a snippet written with `CodeAssembler`.
pub fn asm(f: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Snippet {
    let mut a = CodeAssembler::new(64).unwrap();
    f(&mut a).expect("snippet does not assemble");
    let code = a.assemble(SNIPPET_VA).expect("snippet does not assemble");
    assert!(code.len() + 5 <= SNIPPET_MAX);
    let (flag_mask, text) = analyse(&code);
    Snippet { code, flag_mask, text }
}

/// The flags left defined by the snippet's instructions in order, and its disassembly.
fn analyse(code: &[u8]) -> (u64, String) {
    let to_rflags = |b: u32| {
        [(RflagsBits::OF, flags::OF), (RflagsBits::SF, flags::SF), (RflagsBits::ZF, flags::ZF), (RflagsBits::AF, flags::AF), (RflagsBits::CF, flags::CF), (RflagsBits::PF, flags::PF), (RflagsBits::DF, flags::DF)]
            .iter()
            .filter(|(i, _)| b & i != 0)
            .fold(0, |acc, (_, r)| acc | r)
    };
    let mut undef = 0u64;
    let mut text = String::new();
    let mut fmt = IntelFormatter::new();
    let mut dec = Decoder::with_ip(64, code, SNIPPET_VA, DecoderOptions::NONE);
    for ins in &mut dec {
        undef = (undef & !to_rflags(ins.rflags_modified())) | to_rflags(ins.rflags_undefined());
        let mut s = String::new();
        fmt.format(&ins, &mut s);
        text.push_str(&format!("  {:#x}: {s}\n", ins.ip()));
    }
    ((flags::ARITH | flags::DF) & !undef, text)
}

// ---- native ------------------------------------------------------------------------------

static NATIVE: Mutex<()> = Mutex::new(());
static NATIVE_MAP: OnceLock<()> = OnceLock::new();

/// The trampoline: entry at `TRAMPOLINE_VA`, epilogue at `EPILOGUE_VA`.
fn trampoline() -> (Vec<u8>, Vec<u8>) {
    let gprs = [rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15];
    let mut a = CodeAssembler::new(64).unwrap();
    for r in [rbx, rbp, r12, r13, r14, r15] {
        a.push(r).unwrap();
    }
    a.mov(qword_ptr(CTX_HOST_RSP), rsp).unwrap();
    a.push(qword_ptr(CTX_RFLAGS)).unwrap();
    a.popfq().unwrap();
    for (i, r) in gprs.iter().enumerate() {
        a.mov(*r, qword_ptr(CTX_VA + 8 * i as u64)).unwrap();
    }
    a.jmp(SNIPPET_VA).unwrap();
    let entry = a.assemble(TRAMPOLINE_VA).unwrap();

    let mut a = CodeAssembler::new(64).unwrap();
    for (i, r) in gprs.iter().enumerate() {
        a.mov(qword_ptr(CTX_VA + 8 * i as u64), *r).unwrap();
    }
    a.mov(rsp, qword_ptr(CTX_HOST_RSP)).unwrap();
    a.pushfq().unwrap();
    a.pop(qword_ptr(CTX_RFLAGS)).unwrap();
    a.cld().unwrap();
    for r in [r15, r14, r13, r12, rbp, rbx] {
        a.pop(r).unwrap();
    }
    a.ret().unwrap();
    let epilogue = a.assemble(EPILOGUE_VA).unwrap();
    (entry, epilogue)
}

fn native_map() {
    NATIVE_MAP.get_or_init(|| {
        // SAFETY: maps fresh anonymous memory at a fixed address nothing else uses
        // (MAP_FIXED_NOREPLACE fails rather than replace an existing mapping).
        let p = unsafe {
            libc::mmap(
                BASE as *mut libc::c_void,
                (PAGES * 4096) as usize,
                libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        assert_eq!(p as u64, BASE, "cannot map the harness range at {BASE:#x}");
        let (entry, epilogue) = trampoline();
        // SAFETY: both fit in the first page of the mapping just created.
        unsafe {
            std::ptr::copy_nonoverlapping(entry.as_ptr(), TRAMPOLINE_VA as *mut u8, entry.len());
            std::ptr::copy_nonoverlapping(epilogue.as_ptr(), EPILOGUE_VA as *mut u8, epilogue.len());
        }
    });
}

/// Runs the snippet natively from `input`.
pub fn run_native(sn: &Snippet, input: &State) -> State {
    native_map();
    let _g = NATIVE.lock().unwrap_or_else(|e| e.into_inner());
    let end = SNIPPET_VA + sn.code.len() as u64;
    let mut tail = vec![0xe9u8];
    tail.extend_from_slice(&((EPILOGUE_VA as i64 - (end as i64 + 5)) as i32).to_le_bytes());
    // SAFETY: the range is the harness mapping (RWX), owned by this process and guarded by
    // `NATIVE`; the trampoline follows the SysV ABI (callee-saved registers, RSP and DF are
    // restored before it returns), and the snippet only touches the harness range.
    unsafe {
        std::ptr::copy_nonoverlapping(sn.code.as_ptr(), SNIPPET_VA as *mut u8, sn.code.len());
        std::ptr::copy_nonoverlapping(tail.as_ptr(), end as *mut u8, tail.len());
        let ctx = CTX_VA as *mut u64;
        for i in 0..16 {
            ctx.add(i).write_volatile(input.gpr[i]);
        }
        ctx.add(16).write_volatile(input.rflags);
        std::ptr::copy_nonoverlapping(input.mem.as_ptr(), DATA_VA as *mut u8, MEM_LEN);
        let f: extern "sysv64" fn() = std::mem::transmute(TRAMPOLINE_VA as usize);
        f();
        let mut out = State { gpr: [0; 16], rflags: ctx.add(16).read_volatile(), mem: vec![0; MEM_LEN] };
        for i in 0..16 {
            out.gpr[i] = ctx.add(i).read_volatile();
        }
        std::ptr::copy_nonoverlapping(DATA_VA as *const u8, out.mem.as_mut_ptr(), MEM_LEN);
        out
    }
}

// ---- emulated ----------------------------------------------------------------------------

/// Physical layout: page tables at 0x1000..0x5000, page `i` of the range at FRAMES + i*4K.
const FRAMES: u64 = 0x10000;

/// A tiny machine holding one snippet: physical memory with the harness range mapped, and
/// the decoded-instruction cache for it.
pub struct Emu {
    pub mem: PhysMem,
    pub code: DecodeCache,
    /// Kept across runs so its TLB stays warm (the page tables never change).
    cpu: Vcpu,
    end: u64,
}

impl Emu {
    pub fn new(sn: &Snippet) -> Self {
        let mut mem = PhysMem::new(FRAMES + 0x10000);
        let (pml4, pdpt, pd, pt) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
        let table = Entry::PRESENT | Entry::WRITABLE | Entry::USER;
        let idx = |lvl: u32| (BASE >> (12 + 9 * lvl)) & 511;
        mem.write_u64(PhysAddr::new(pml4 + idx(3) * 8), pdpt | table);
        mem.write_u64(PhysAddr::new(pdpt + idx(2) * 8), pd | table);
        mem.write_u64(PhysAddr::new(pd + idx(1) * 8), pt | table);
        for i in 0..PAGES {
            let va = BASE + i * 4096;
            let flags = if va == RO_VA { Entry::PRESENT | Entry::USER } else { table };
            mem.write_u64(PhysAddr::new(pt + (idx(0) + i) * 8), (FRAMES + i * 4096) | flags);
        }
        let end = SNIPPET_VA + sn.code.len() as u64;
        let mut code = sn.code.clone();
        code.push(0xcc);
        mem.write(PhysAddr::new(Self::pa(SNIPPET_VA)), &code);
        Self { mem, code: DecodeCache::new(), cpu: Vcpu::new(CpuState::new_user(pml4)), end }
    }

    /// Physical address of a harness virtual address.
    pub fn pa(va: u64) -> u64 {
        FRAMES + (va - BASE)
    }

    /// Runs from `input` until the `int3` after the snippet or another exit; returns the
    /// exit and the state (RIP in `.2`).
    pub fn run(&mut self, input: &State) -> (Exit, State, u64) {
        self.mem.write(PhysAddr::new(Self::pa(DATA_VA)), &input.mem);
        let cpu = &mut self.cpu;
        cpu.state = CpuState::new_user(cpu.state.ctl.cr3);
        cpu.state.gpr = input.gpr;
        cpu.state.rflags = input.rflags;
        cpu.state.rip = SNIPPET_VA;
        let exit = cpu.run(&mut self.mem, &mut self.code, 10_000_000);
        let mut out = State { gpr: cpu.state.gpr, rflags: cpu.state.rflags, mem: vec![0; MEM_LEN] };
        self.mem.read(PhysAddr::new(Self::pa(DATA_VA)), &mut out.mem);
        (exit, out, cpu.state.rip)
    }

    /// Where the appended `int3` is.
    pub fn end(&self) -> u64 {
        self.end
    }
}

// ---- comparing ---------------------------------------------------------------------------

// ---- the host's vendor ------------------------------------------------------------------

/// The host CPU's vendor (CPUID leaf 0), e.g. "GenuineIntel" or "AuthenticAMD".
/// `PAGELAB_TEST_HOST_VENDOR` overrides it, to exercise the masking on any host.
pub fn host_vendor() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        if let Ok(v) = std::env::var("PAGELAB_TEST_HOST_VENDOR") {
            return v;
        }
        let r = std::arch::x86_64::__cpuid(0);
        let b: Vec<u8> = [r.ebx, r.edx, r.ecx].iter().flat_map(|w| w.to_le_bytes()).collect();
        String::from_utf8_lossy(&b).into_owned()
    })
}

/// Whether the host is the vendor pagelab models, so vendor-specific results compare.
pub fn host_is_model() -> bool {
    host_vendor() == emu::cpu::model::VENDOR
}

/// A CPUID feature the host must have for a test to run natively.
#[derive(Clone, Copy, Debug)]
pub enum HostFeature {
    Popcnt,
    Lzcnt,
    Bmi1,
}

/// Whether the host has `f` (CPUID); a test that needs it and finds it missing says so
/// on stderr with [`note_skipped`] and does not compare.
pub fn host_has(f: HostFeature) -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    // Leaves above the maximum answer zeros or the last leaf, so the maximum is checked first.
    match f {
        HostFeature::Popcnt => __cpuid(1).ecx & (1 << 23) != 0,
        HostFeature::Lzcnt => __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 5) != 0,
        HostFeature::Bmi1 => __cpuid(0).eax >= 7 && __cpuid_count(7, 0).ebx & (1 << 3) != 0,
    }
}

/// Says once per reason, on the test process's real stderr (not captured by the test
/// harness, so it shows in `cargo test` output), that a comparison was not made here.
pub fn note_skipped(why: &str) {
    use std::io::Write;
    static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
    if !said.iter().any(|w| w == why) {
        said.push(why.to_string());
        let _ = writeln!(std::io::stderr(), "skipped on {}: {why}", host_vendor());
    }
}

/// A part of a snippet's result that the SDM leaves undefined or the vendors define
/// differently, for one input: compared only on a host of pagelab's vendor.
#[derive(Clone, Debug, Default)]
pub struct VendorSpecific {
    /// Why the part is open, as the skip note prints it.
    pub why: &'static str,
    /// RFLAGS bits.
    pub flags: u64,
    /// Bits of each GPR.
    pub gpr: [u64; 16],
    /// Byte ranges of the data area and stack: (virtual address, length).
    pub mem: Vec<(u64, usize)>,
}

impl VendorSpecific {
    /// Nothing vendor-specific.
    pub fn none() -> Self {
        Self::default()
    }
    pub fn new(why: &'static str) -> Self {
        Self { why, ..Self::default() }
    }
    pub fn flags(mut self, f: u64) -> Self {
        self.flags |= f;
        self
    }
    pub fn gpr(mut self, r: usize, bits: u64) -> Self {
        self.gpr[r] |= bits;
        self
    }
    pub fn mem(mut self, va: u64, len: usize) -> Self {
        self.mem.push((va, len));
        self
    }
    pub fn is_empty(&self) -> bool {
        self.flags == 0 && self.gpr.iter().all(|&g| g == 0) && self.mem.is_empty()
    }
}

// ---- comparing ---------------------------------------------------------------------------

/// Compares a native and an emulated result. `masked` holds what is not compared: the
/// flags outside `flag_mask` and, on a host of another vendor, a [`VendorSpecific`] part.
/// Returns the differences found, one line each.
pub fn differences(native: &State, got: &State, flag_mask: u64, masked: Option<&VendorSpecific>) -> Vec<String> {
    let none = VendorSpecific::none();
    let vs = masked.unwrap_or(&none);
    let mut diffs = Vec::new();
    for (i, name) in REG_NAMES.iter().enumerate() {
        if (native.gpr[i] ^ got.gpr[i]) & !vs.gpr[i] != 0 {
            diffs.push(format!("{name}: native {:#x} pagelab {:#x}", native.gpr[i], got.gpr[i]));
        }
    }
    let m = flag_mask & !vs.flags;
    if (native.rflags ^ got.rflags) & m != 0 {
        diffs.push(format!("flags (mask {m:#x}): native {} pagelab {}", flag_str(native.rflags & m), flag_str(got.rflags & m)));
    }
    let in_masked = |o: usize| vs.mem.iter().any(|&(va, len)| (va - DATA_VA) as usize <= o && o < (va - DATA_VA) as usize + len);
    if let Some(o) = (0..MEM_LEN).find(|&o| native.mem[o] != got.mem[o] && !in_masked(o)) {
        let end = (o + 16).min(MEM_LEN);
        diffs.push(format!("memory at {:#x}: native {:02x?} pagelab {:02x?}", DATA_VA + o as u64, &native.mem[o..end], &got.mem[o..end]));
    }
    diffs
}

/// Runs `sn` natively and emulated from `input`; panics with a readable report if they
/// differ in a GPR, a defined flag (`sn.flag_mask & !extra_undef`) or memory, outside
/// `vs` when the host is not of pagelab's vendor.
pub fn check_vendor(sn: &Snippet, emu: &mut Emu, input: &State, extra_undef: u64, vs: &VendorSpecific) {
    let native = run_native(sn, input);
    let (exit, got, rip) = emu.run(input);
    let report = |what: String| -> ! {
        panic!("{what}\nsnippet:\n{}input : {input:?}\nnative: {native:?}\npagelab: {got:?}", sn.text)
    };
    if exit != Exit::Exception(Exception::Breakpoint) || rip != emu.end() + 1 {
        report(format!("pagelab stopped with {exit:?} at rip {rip:#x}, expected the final int3"));
    }
    let masked = if vs.is_empty() || host_is_model() {
        None
    } else {
        note_skipped(vs.why);
        Some(vs)
    };
    let diffs = differences(&native, &got, sn.flag_mask & !extra_undef, masked);
    if !diffs.is_empty() {
        let why = if host_is_model() && !vs.is_empty() { format!("\n(vendor-specific here, compared on {}: {})", host_vendor(), vs.why) } else { String::new() };
        report(diffs.join("\n") + &why);
    }
}

/// Runs `sn` natively and emulated from `input`; panics with a readable report if they
/// differ in a GPR, a defined flag (`sn.flag_mask & !extra_undef`) or memory.
pub fn check_with(sn: &Snippet, emu: &mut Emu, input: &State, extra_undef: u64) {
    check_vendor(sn, emu, input, extra_undef, &VendorSpecific::none())
}

pub fn check(sn: &Snippet, emu: &mut Emu, input: &State) {
    check_with(sn, emu, input, 0)
}

/// Runs `sn` emulated only and asserts it stops with `want` and changes nothing (RIP at the
/// first instruction, which must be the faulting one).
pub fn expect_fault(sn: &Snippet, emu: &mut Emu, input: &State, want: Exception) {
    let (exit, got, rip) = emu.run(input);
    assert_eq!(exit, Exit::Exception(want), "snippet:\n{}input: {input:?}", sn.text);
    assert_eq!(rip, SNIPPET_VA, "RIP must stay at the faulting instruction\n{}", sn.text);
    assert_eq!(got.gpr, input.gpr, "a faulting instruction changed registers\n{}", sn.text);
    assert_eq!(got.rflags, input.rflags, "a faulting instruction changed flags\n{}", sn.text);
    assert!(got.mem == input.mem, "a faulting instruction changed memory\n{}", sn.text);
}

/// Flags as letters (upper case = set), for reports.
pub fn flag_str(f: u64) -> String {
    [(flags::OF, 'o'), (flags::DF, 'd'), (flags::SF, 's'), (flags::ZF, 'z'), (flags::AF, 'a'), (flags::PF, 'p'), (flags::CF, 'c')]
        .iter()
        .map(|&(b, c)| if f & b != 0 { c.to_ascii_uppercase() } else { c })
        .collect()
}

// ---- inputs ------------------------------------------------------------------------------

/// Operand values that find the usual bugs: zero, one, all-ones, and both sides of every
/// sign boundary and shift width.
pub const EDGES: &[u64] = &[
    0,
    1,
    2,
    u64::MAX,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_ffff_ff80,
    0xffff_ffff_8000_0000,
    31,
    32,
    63,
    64,
    0x5555_5555_5555_5555,
    0xaaaa_aaaa_aaaa_aaaa,
];

/// A seeded xorshift64* generator: the same inputs on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// An operand: an edge value, a random value, a small value, or an edge value's
    /// neighbour, roughly equally often.
    pub fn operand(&mut self) -> u64 {
        match self.below(5) {
            0 | 1 => EDGES[self.below(EDGES.len() as u64) as usize],
            2 => self.next(),
            3 => self.below(70),
            _ => EDGES[self.below(EDGES.len() as u64) as usize].wrapping_add(self.below(3)).wrapping_sub(1),
        }
    }
    /// Random arithmetic flags (and DF clear), with the always-one bit and IF.
    pub fn rflags(&mut self) -> u64 {
        (self.next() & flags::ARITH) | flags::RESERVED1 | flags::IF
    }
}

/// A random starting state: every GPR an [`Rng::operand`] except RSP = [`STACK_TOP`], random
/// arithmetic flags, random memory.
pub fn random_state(rng: &mut Rng) -> State {
    let mut gpr = [0u64; 16];
    for (i, g) in gpr.iter_mut().enumerate() {
        *g = if i == reg::RSP { STACK_TOP } else { rng.operand() };
    }
    // Memory: a window at a random offset into a fixed pool of random bytes (generating
    // 24 KiB afresh per case would cost more than running the case).
    let pool = random_pool();
    let off = rng.below((pool.len() - MEM_LEN) as u64) as usize;
    State { gpr, rflags: rng.rflags(), mem: pool[off..off + MEM_LEN].to_vec() }
}

fn random_pool() -> &'static [u8] {
    static POOL: OnceLock<Vec<u8>> = OnceLock::new();
    POOL.get_or_init(|| {
        let mut rng = Rng::new(0x5eed);
        (0..4 * MEM_LEN / 8).flat_map(|_| rng.next().to_le_bytes()).collect()
    })
}

/// Checks `sn` on `n` random states (seeded by the snippet text), each adjusted by `setup`.
pub fn check_random(sn: &Snippet, n: usize, setup: impl Fn(&mut Rng, &mut State)) {
    check_random_vs(sn, n, setup, |_| VendorSpecific::none())
}

/// [`check_random`], with the vendor-specific part of each input's result given by `vs`.
pub fn check_random_vs(sn: &Snippet, n: usize, setup: impl Fn(&mut Rng, &mut State), vs: impl Fn(&State) -> VendorSpecific) {
    let mut emu = Emu::new(sn);
    let mut rng = Rng::new(seed_of(&sn.text));
    for _ in 0..n {
        let mut st = random_state(&mut rng);
        setup(&mut rng, &mut st);
        check_vendor(sn, &mut emu, &st, 0, &vs(&st));
    }
}

/// Checks `sn` with registers `a` and `b` over every pair of [`EDGES`] (other registers
/// random), then on `n` random states; `setup` runs last on each.
pub fn check_edges(sn: &Snippet, a: usize, b: usize, n: usize, setup: impl Fn(&mut Rng, &mut State)) {
    check_edges_vs(sn, a, b, n, setup, |_| VendorSpecific::none())
}

/// [`check_edges`], with the vendor-specific part of each input's result given by `vs`.
pub fn check_edges_vs(sn: &Snippet, a: usize, b: usize, n: usize, setup: impl Fn(&mut Rng, &mut State), vs: impl Fn(&State) -> VendorSpecific) {
    let mut emu = Emu::new(sn);
    let mut rng = Rng::new(seed_of(&sn.text));
    for &x in EDGES {
        for &y in EDGES {
            let mut st = random_state(&mut rng);
            st.gpr[a] = x;
            st.gpr[b] = y;
            setup(&mut rng, &mut st);
            check_vendor(sn, &mut emu, &st, 0, &vs(&st));
        }
    }
    for _ in 0..n {
        let mut st = random_state(&mut rng);
        setup(&mut rng, &mut st);
        check_vendor(sn, &mut emu, &st, 0, &vs(&st));
    }
}

fn seed_of(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State { gpr: [7; 16], rflags: flags::RESERVED1, mem: vec![0; MEM_LEN] }
    }

    /// A difference inside the vendor-specific part counts only where the part is not
    /// masked; one outside it always counts.
    #[test]
    fn vendor_specific_parts_are_masked_only_when_asked() {
        let vs = VendorSpecific::new("test").flags(flags::OF).gpr(reg::RCX, 0xffff_ffff_0000_0000).mem(DATA_VA + 28, 4);
        let native = state();
        let mut got = state();
        got.rflags |= flags::OF;
        got.gpr[reg::RCX] = 0x1234_0000_0007;
        got.mem[29] = 1;
        assert_eq!(differences(&native, &got, flags::ARITH, None).len(), 3);
        assert!(differences(&native, &got, flags::ARITH, Some(&vs)).is_empty());
        got.gpr[reg::RCX] = 8;
        got.mem[32] = 1;
        got.rflags |= flags::CF;
        assert_eq!(differences(&native, &got, flags::ARITH, Some(&vs)).len(), 3);
    }
}
