//! Decode once, execute many times: decoded instructions are cached per guest code page,
//! keyed by (physical frame, virtual page), and the fetch/execute loop runs from the cache.
//!
//! Keying by the physical frame makes the cache survive context switches and shared code;
//! adding the virtual page keeps RIP-relative operands and branch targets (which iced-x86
//! resolves to absolute addresses at decode time) right when one frame is mapped twice.
//!
//! Coherence: a cached frame is *watched* in `PhysMem`. Any write to it — a guest store
//! (self-modifying code), or the kernel reusing the frame — un-watches it and logs it; the
//! loop drains that log after every instruction and drops the frame's decoded code before the
//! next fetch. A change of mapping is caught through the TLB generation: the fetch path
//! re-translates RIP whenever any TLB invalidation happened since the last fetch.
//!
//! Instructions that straddle a page boundary are decoded on every execution and not cached
//! (their bytes live in two frames).
//!
//! `--check-tlb`: the memo of the current code page stands for a TLB hit on every fetch
//! from that page. Within one call of `run` nothing can change the page tables (only the
//! kernel does, between calls), so it is enough that a checking vCPU forgets the memo at
//! the start of each call (`Vcpu::run`): the first fetch then goes through the checked
//! TLB, and a stale code translation is caught even when the TLB generation did not move.

use super::dispatch::select;
use super::exec::{Exec, Handler, Stop};
use super::mem::fault_to_exception;
use super::{Exception, Exit, Vcpu};
use hashbrown::HashMap;
use iced_x86::{Code, Decoder, DecoderOptions, Instruction};
use mmu::{Access, AccessKind, PhysAddr, PhysMem};

/// One decoded instruction and the handler chosen for it.
#[derive(Clone)]
pub struct Decoded {
    pub ins: Instruction,
    pub handler: Handler,
}

/// Decoded code of one (frame, virtual page).
struct CodePage {
    frame: u64,
    /// Per byte offset: 0 = not decoded, n = `instrs[n - 1]`.
    index: Box<[u32; 4096]>,
    instrs: Vec<Decoded>,
}

/// The decoded-instruction cache shared by all vCPUs.
#[derive(Default)]
pub struct DecodeCache {
    pages: Vec<CodePage>,
    by_key: HashMap<(u64, u64), usize>,
    by_frame: HashMap<u64, Vec<usize>>,
    free: Vec<usize>,
    /// Bumped whenever any page is dropped, so fetch states re-validate.
    epoch: u64,
    pub stats: DecodeStats,
}

#[derive(Clone, Copy, Default, Debug)]
pub struct DecodeStats {
    pub decoded: u64,
    pub invalidated_pages: u64,
}

impl DecodeCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn page_for(&mut self, frame: u64, vpage: u64, mem: &mut PhysMem) -> usize {
        if let Some(&slot) = self.by_key.get(&(frame, vpage)) {
            return slot;
        }
        let page = CodePage { frame, index: Box::new([0; 4096]), instrs: Vec::new() };
        let slot = match self.free.pop() {
            Some(s) => {
                self.pages[s] = page;
                s
            }
            None => {
                self.pages.push(page);
                self.pages.len() - 1
            }
        };
        self.by_key.insert((frame, vpage), slot);
        self.by_frame.entry(frame).or_default().push(slot);
        mem.watch(frame);
        slot
    }

    /// Drops the decoded code of every frame `mem` reports written since the last call.
    pub fn sync(&mut self, mem: &mut PhysMem) {
        for frame in mem.drain_written_watched() {
            if let Some(slots) = self.by_frame.remove(&frame) {
                for slot in slots {
                    let p = &mut self.pages[slot];
                    self.by_key.retain(|_, s| *s != slot);
                    p.instrs = Vec::new();
                    p.index.fill(0);
                    p.frame = u64::MAX;
                    self.free.push(slot);
                    self.stats.invalidated_pages += 1;
                }
                self.epoch += 1;
            }
        }
    }
}

/// Per-vCPU memo of the code page RIP is executing from (`.0`) and the one it executed from
/// before (`.1`), so a call into another page and the return from it stay cheap.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FetchState(FetchEntry, FetchEntry);

#[derive(Clone, Copy, Debug)]
struct FetchEntry {
    vpage: u64,
    slot: usize,
    tlb_generation: u64,
    epoch: u64,
    cr3: u64,
}

impl Default for FetchEntry {
    fn default() -> Self {
        Self { vpage: u64::MAX, slot: usize::MAX, tlb_generation: u64::MAX, epoch: u64::MAX, cr3: u64::MAX }
    }
}

impl FetchState {
    /// True if the current entry still names the decoded code of `vpage`: same page, and no
    /// TLB invalidation, decode-cache drop or CR3 write since it was filled.
    #[inline(always)]
    fn valid(&self, vpage: u64, tlb_generation: u64, epoch: u64, cr3: u64) -> bool {
        let f = &self.0;
        f.vpage == vpage && f.tlb_generation == tlb_generation && f.epoch == epoch && f.cr3 == cr3
    }
}

fn invalid_opcode(_: &mut Exec, _: &Instruction) -> Result<(), Stop> {
    Err(Stop::Fault(Exception::InvalidOpcode))
}

/// Decodes the instruction at `rip` from `bytes` (up to 15 bytes of code).
fn decode_one(bytes: &[u8], rip: u64) -> Decoded {
    let mut dec = Decoder::with_ip(64, bytes, rip, DecoderOptions::NONE);
    let ins = dec.decode();
    let handler = if ins.code() == Code::INVALID { invalid_opcode as Handler } else { select(&ins) };
    Decoded { ins, handler }
}

/// Why the straight-line inner loop of [`run`] handed control back to the outer loop.
enum Leave {
    /// RIP left the current code page (or the budget is used up: the outer loop checks).
    Page,
    /// No decoded instruction at this offset yet.
    Miss,
    /// A store hit a watched code frame: drop stale decoded code before the next fetch.
    Sync,
    /// The instruction at `rip` stopped (exception, syscall, unimplemented).
    Stop(Stop, Code),
}

/// The fetch/decode/execute loop (see the module comment).
///
/// Two nested loops: the outer one validates the code page RIP is in (the four-field check
/// below, against a two-entry memo); the inner one runs instructions from that page's decoded
/// code until RIP leaves the page. The inner loop need not re-validate anything: while `run`
/// executes user code nothing can invalidate the TLB or write CR3 (only the kernel does, and
/// it runs between calls to `run`), and the decode-cache epoch only moves in `code.sync`,
/// after which the inner loop is left.
pub(crate) fn run(cpu: &mut Vcpu, phys: &mut PhysMem, code: &mut DecodeCache, budget: u64) -> Exit {
    let Vcpu { state, tlb, retired, clock, fetch, .. } = cpu;
    let start = *clock;
    // Whether tracing is on is sampled once per quantum; a trace installed mid-quantum starts
    // stamping at the next call.
    let tracing = crate::trace::on();
    let mut done = 0u64;
    let mut ex = Exec::new(state, tlb, phys);
    let exit = loop {
        if done >= budget {
            break Exit::Budget;
        }
        let rip = ex.s.rip;
        let vpage = rip & !0xfff;
        if !fetch.valid(vpage, ex.tlb.generation, code.epoch, ex.s.ctl.cr3) {
            // The previously used page (a call into, and return from, another page)?
            core::mem::swap(&mut fetch.0, &mut fetch.1);
            if !fetch.valid(vpage, ex.tlb.generation, code.epoch, ex.s.ctl.cr3) {
                // Slow path: (re)translate the code page.
                let pa = match fetch_translate(&mut ex, rip) {
                    Ok(pa) => pa,
                    Err(e) => break stop_exit(&mut ex, e),
                };
                let slot = code.page_for(pa >> 12, vpage, ex.mem);
                fetch.0 = FetchEntry { vpage, slot, tlb_generation: ex.tlb.generation, epoch: code.epoch, cr3: ex.s.ctl.cr3 };
            }
        }
        let slot = fetch.0.slot;
        let page = &code.pages[slot];
        let mut rip = rip;
        let leave = loop {
            let idx = page.index[(rip & 0xfff) as usize];
            if idx == 0 {
                break Leave::Miss;
            }
            let d = &page.instrs[idx as usize - 1];
            if tracing {
                crate::trace::set_now(start + done);
            }
            ex.next_rip = d.ins.next_ip();
            ex.icount = start + done;
            if let Err(stop) = (d.handler)(&mut ex, &d.ins) {
                break Leave::Stop(stop, d.ins.code());
            }
            rip = ex.next_rip;
            ex.s.rip = rip;
            done += 1;
            if ex.mem.has_written_watched() {
                break Leave::Sync;
            }
            if rip & !0xfff != vpage || done >= budget {
                break Leave::Page;
            }
        };
        match leave {
            Leave::Page => continue,
            Leave::Sync => {
                code.sync(ex.mem);
                continue;
            }
            Leave::Miss => {}
            Leave::Stop(stop, c) => break finish(&mut ex, code, stop, rip, c, &mut done),
        }
        // Decode the instruction at RIP (it starts in the validated page).
        let off = (rip & 0xfff) as usize;
        let straddler = match fetch_and_decode(&mut ex, rip) {
            Ok((d, cacheable)) => {
                code.stats.decoded += 1;
                if cacheable {
                    let p = &mut code.pages[slot];
                    p.instrs.push(d);
                    p.index[off] = p.instrs.len() as u32;
                    // Execute it through the inner loop.
                    continue;
                }
                d
            }
            Err(e) => break stop_exit(&mut ex, e),
        };
        // An instruction straddling a page boundary: decoded every time, never cached.
        if tracing {
            crate::trace::set_now(start + done);
        }
        ex.next_rip = straddler.ins.next_ip();
        ex.icount = start + done;
        match (straddler.handler)(&mut ex, &straddler.ins) {
            Ok(()) => {
                ex.s.rip = ex.next_rip;
                done += 1;
                if ex.mem.has_written_watched() {
                    code.sync(ex.mem);
                }
            }
            Err(stop) => break finish(&mut ex, code, stop, rip, straddler.ins.code(), &mut done),
        }
    };
    *retired += done;
    *clock += done;
    exit
}

/// The exit for an instruction at `rip` (code `c`) that stopped with `stop`.
#[cold]
fn finish(ex: &mut Exec, code: &mut DecodeCache, stop: Stop, rip: u64, c: Code, done: &mut u64) -> Exit {
    if ex.mem.has_written_watched() {
        code.sync(ex.mem);
    }
    let next = ex.next_rip;
    match stop {
        Stop::Syscall => {
            ex.s.rip = next;
            *done += 1;
            Exit::Syscall
        }
        // INT3 is a trap: RIP points after it.
        Stop::Fault(Exception::Breakpoint) => {
            ex.s.rip = next;
            *done += 1;
            Exit::Exception(Exception::Breakpoint)
        }
        // A non-canonical address reached through SS (RSP/RBP-based operands, push, pop,
        // call, ret) is #SS(0), not #GP(0) (SDM Vol. 3A 6.15, interrupt 12); Linux answers
        // it with SIGBUS. Decided here, off the hot path, by decoding the instruction again.
        Stop::Fault(Exception::GeneralProtection(0)) if ex.tlb.stale.is_none() => {
            let e = match fetch_and_decode(ex, rip) {
                Ok((d, _)) if stack_segment_noncanonical(ex, &d.ins) => Exception::StackFault(0),
                _ => Exception::GeneralProtection(0),
            };
            stop_exit(ex, e)
        }
        Stop::Fault(e) => stop_exit(ex, e),
        Stop::Unimplemented => Exit::Unimplemented { rip, mnemonic: format!("{c:?}") },
    }
}

/// Whether `ins` (which stopped with #GP(0), registers unchanged) makes a stack-segment
/// access to a non-canonical address: a memory operand whose segment is SS, or the
/// implicit stack access of an instruction that moves RSP.
fn stack_segment_noncanonical(ex: &Exec, ins: &iced_x86::Instruction) -> bool {
    use mmu::VirtAddr;
    let has_mem = (0..ins.op_count()).any(|i| ins.op_kind(i) == iced_x86::OpKind::Memory);
    if has_mem && ins.memory_segment() == iced_x86::Register::SS && !VirtAddr::is_canonical(ex.ea(ins)) {
        return true;
    }
    let inc = ins.stack_pointer_increment();
    if inc != 0 {
        // The bytes accessed: [rsp+inc, rsp) for a push, [rsp, rsp+inc) for a pop.
        let rsp = ex.s.gpr[super::reg::RSP];
        let (lo, hi) = if inc < 0 { (rsp.wrapping_add(inc as i64 as u64), rsp.wrapping_sub(1)) } else { (rsp, rsp.wrapping_add(inc as u64 - 1)) };
        return !VirtAddr::is_canonical(lo) || !VirtAddr::is_canonical(hi);
    }
    false
}

/// The exit for an exception `e` at the current instruction: `Exit::StaleTlb` if the
/// instruction stopped because it hit a stale TLB entry under `--check-tlb` (the exception
/// is then `mem::STALE_TLB`, a carrier only), else the exception.
#[cold]
fn stop_exit(ex: &mut Exec, e: Exception) -> Exit {
    match ex.tlb.stale.take() {
        Some(hit) => Exit::StaleTlb(format!("{hit}; rip {:#x}", ex.s.rip)),
        None => Exit::Exception(e),
    }
}

/// Translates a code address for a fetch (the TLB, else a walk), stopping on a stale TLB
/// hit under `--check-tlb` like a data access does.
fn fetch_translate(ex: &mut Exec, la: u64) -> Result<u64, Exception> {
    let acc = Access { kind: AccessKind::Fetch, user: ex.s.cpl == 3, implicit: false, ac: false };
    let pa = ex.tlb.translate(ex.mem, &ex.s.ctl, la, acc).map_err(fault_to_exception)?;
    if ex.tlb.stale.is_some() {
        return Err(super::mem::STALE_TLB);
    }
    Ok(pa)
}

/// Reads up to 15 code bytes at `rip` (stopping at an unmapped second page) and decodes.
/// Returns whether the instruction lies within one page and may be cached.
fn fetch_and_decode(ex: &mut Exec, rip: u64) -> Result<(Decoded, bool), Exception> {
    let first = fetch_translate(ex, rip)?;
    let in_page = (4096 - (rip & 0xfff)) as usize;
    let mut buf = [0u8; 15];
    let n1 = in_page.min(15);
    ex.mem.read(PhysAddr::new(first), &mut buf[..n1]);
    let d = decode_one(&buf[..n1], rip);
    let len = d.ins.len();
    if d.ins.code() != Code::INVALID && len <= n1 {
        return Ok((d, true));
    }
    if n1 == 15 {
        return Ok((d, true));
    }
    // The instruction may continue on the next page: fetch it (a fault there is the
    // instruction's fault, with CR2 in the second page).
    let next = rip.wrapping_add(n1 as u64);
    let second = fetch_translate(ex, next)?;
    ex.mem.read(PhysAddr::new(second), &mut buf[n1..]);
    let d = decode_one(&buf, rip);
    let fits = d.ins.len() <= n1;
    Ok((d, fits))
}
