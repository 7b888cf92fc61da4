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

/// Per-vCPU memo of the page RIP is executing from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FetchState {
    vpage: u64,
    slot: usize,
    tlb_generation: u64,
    epoch: u64,
    cr3: u64,
}

impl Default for FetchState {
    fn default() -> Self {
        Self { vpage: u64::MAX, slot: usize::MAX, tlb_generation: u64::MAX, epoch: u64::MAX, cr3: u64::MAX }
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

/// The fetch/decode/execute loop (see the module comment).
pub(crate) fn run(cpu: &mut Vcpu, phys: &mut PhysMem, code: &mut DecodeCache, budget: u64) -> Exit {
    let mut done = 0u64;
    let exit = loop {
        if done >= budget {
            break Exit::Budget;
        }
        let rip = cpu.state.rip;
        let vpage = rip & !0xfff;
        let f = cpu.fetch;
        if f.vpage != vpage || f.tlb_generation != cpu.tlb.generation || f.epoch != code.epoch || f.cr3 != cpu.state.ctl.cr3 {
            // Slow path: (re)translate the code page.
            let acc = Access { kind: AccessKind::Fetch, user: cpu.state.cpl == 3, implicit: false, ac: false };
            let pa = match cpu.tlb.translate(phys, &cpu.state.ctl, rip, acc) {
                Ok(pa) => pa,
                Err(e) => break Exit::Exception(fault_to_exception(e)),
            };
            let slot = code.page_for(pa >> 12, vpage, phys);
            cpu.fetch = FetchState { vpage, slot, tlb_generation: cpu.tlb.generation, epoch: code.epoch, cr3: cpu.state.ctl.cr3 };
        }
        let slot = cpu.fetch.slot;
        let off = (rip & 0xfff) as usize;
        let mut idx = code.pages[slot].index[off];
        let straddler;
        if idx == 0 {
            match fetch_and_decode(cpu, phys, rip) {
                Ok((d, cacheable)) => {
                    code.stats.decoded += 1;
                    if cacheable {
                        let p = &mut code.pages[slot];
                        p.instrs.push(d);
                        idx = p.instrs.len() as u32;
                        p.index[off] = idx;
                        straddler = None;
                    } else {
                        straddler = Some(d);
                    }
                }
                Err(e) => break Exit::Exception(e),
            }
        } else {
            straddler = None;
        }
        let d = match &straddler {
            Some(d) => d,
            None => &code.pages[slot].instrs[idx as usize - 1],
        };
        if crate::trace::on() {
            crate::trace::set_now(cpu.retired + done);
        }
        let mut ex = Exec::new(&mut cpu.state, &mut cpu.tlb, phys);
        ex.next_rip = d.ins.next_ip();
        ex.icount = cpu.retired + done;
        let r = (d.handler)(&mut ex, &d.ins);
        let next = ex.next_rip;
        let stop = match r {
            Ok(()) => {
                cpu.state.rip = next;
                done += 1;
                if phys.has_written_watched() {
                    code.sync(phys);
                }
                continue;
            }
            Err(stop) => stop,
        };
        let unimplemented = match stop {
            Stop::Unimplemented => Some(format!("{:?}", d.ins.code())),
            _ => None,
        };
        if phys.has_written_watched() {
            code.sync(phys);
        }
        break match stop {
            Stop::Syscall => {
                cpu.state.rip = next;
                done += 1;
                Exit::Syscall
            }
            // INT3 is a trap: RIP points after it.
            Stop::Fault(Exception::Breakpoint) => {
                cpu.state.rip = next;
                done += 1;
                Exit::Exception(Exception::Breakpoint)
            }
            Stop::Fault(e) => Exit::Exception(e),
            Stop::Unimplemented => Exit::Unimplemented { rip, mnemonic: unimplemented.unwrap_or_default() },
        };
    };
    cpu.retired += done;
    exit
}

/// Reads up to 15 code bytes at `rip` (stopping at an unmapped second page) and decodes.
/// Returns whether the instruction lies within one page and may be cached.
fn fetch_and_decode(cpu: &mut Vcpu, phys: &mut PhysMem, rip: u64) -> Result<(Decoded, bool), Exception> {
    let acc = Access { kind: AccessKind::Fetch, user: cpu.state.cpl == 3, implicit: false, ac: false };
    let first = cpu.tlb.translate(phys, &cpu.state.ctl, rip, acc).map_err(fault_to_exception)?;
    let in_page = (4096 - (rip & 0xfff)) as usize;
    let mut buf = [0u8; 15];
    let n1 = in_page.min(15);
    phys.read(PhysAddr::new(first), &mut buf[..n1]);
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
    let second = cpu.tlb.translate(phys, &cpu.state.ctl, next, acc).map_err(fault_to_exception)?;
    phys.read(PhysAddr::new(second), &mut buf[n1..]);
    let d = decode_one(&buf, rip);
    let fits = d.ins.len() <= n1;
    Ok((d, fits))
}
