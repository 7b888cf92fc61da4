//! A per-vCPU TLB (SDM 4.10): caches translations the way hardware may, including stale
//! ones, until software invalidates them.
//!
//! Layout. A direct-mapped array of [`SLOTS`] slots indexed by the low bits of the virtual
//! page number. A slot holds one 4 KiB *fragment* of a translation: a 2 MiB or 1 GiB
//! translation is cached 4 KiB at a time, each fragment remembering the size of the
//! translation it came from, so invalidating any address of a large page drops all of its
//! fragments (SDM 4.10.2.3). A large translation is also kept whole in a small array of
//! large-page slots (16 for 2 MiB, 16 for 1 GiB, direct-mapped by large page number), as
//! hardware keeps large pages in their own TLB: a miss in the main array that a large slot
//! covers installs that 4 KiB fragment and counts as a hit, with no walk. Every
//! invalidation applies to both arrays. The hot fields (tag, frame, PCID, rights, key) are packed in a
//! 24-byte `Slot`; the full [`Translation`] of each slot lives in a parallel cold array that
//! only fills and [`Tlb::entries`] touch.
//!
//! Rights are checked on every hit against the *current* control state (CPL, CR0.WP,
//! CR4.SMEP/SMAP, EFLAGS.AC, PKRU), which may change without any flush: the slot stores the
//! combined rights of the walk, and `required` turns an access into the rights it needs.
//! A hit that does not permit the access is treated as a miss and the caller walks: the SDM
//! lets the processor re-walk instead of faulting from a TLB entry, so a stale *stricter*
//! entry never produces a spurious #PF here, while a stale *more permissive* entry is used
//! until invalidated. A write through an entry whose leaf D is clear is a miss too, so the
//! walk sets D. Faults are never cached, and a #PF invalidates the faulting page in the
//! current PCID (SDM 4.10.4.1).
//!
//! Globals: G is cached only if CR4.PGE was 1 when the entry was filled; a global entry
//! matches any PCID. Toggling PGE flushes everything, so the cached flag never outlives the
//! mode it was computed under.
//!
//! Checking (`--check-tlb`, [`Tlb::set_checking`]). A checker must see every hit, but the
//! hit test is the emulator's hottest code and must not pay for a disabled checker. So
//! checking changes the *data*, not the code: slots filled while checking carry an extra
//! tag bit ([`CHECKED`]) that the hot test never matches, every lookup misses, and the
//! miss path ([`Tlb::translate_missed`], out of line) tries the checked tag before walking.
//! A hit found there is a hit in every respect (same entry, same physical address, counted
//! as a hit), and is first compared with a side-effect-free walk of the tables
//! ([`crate::walk::walk_peek`]): the cached entry must grant no more than the tables grant
//! now (see `stale_reason`). A stale hit is still served, as hardware would, and recorded
//! in [`Tlb::stale`] for the CPU to stop on.

use crate::addr::PageSize;
use crate::phys::PhysMem;
use crate::walk::{pkru_denies, walk, walk_peek, Access, AccessKind, ControlRegs, Path, PathEnd, Translation, WalkFault};

/// Number of slots (a power of two).
pub const SLOTS: usize = 1024;

/// Large-page slots: 2 MiB translations in the first half, 1 GiB ones in the second,
/// each half direct-mapped by the large page number.
const LARGE_SLOTS: usize = 32;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlbStats {
    /// Lookups answered from the TLB.
    pub hits: u64,
    /// Lookups that were not (absent, or not permitting the access).
    pub misses: u64,
    /// Page walks done on behalf of the TLB.
    pub walks: u64,
    /// Slots filled after a successful walk.
    pub fills: u64,
    /// Invalidation operations: INVLPG, CR3 writes, CR4 writes that flush, INVPCID, flushes,
    /// and page faults that dropped a cached entry.
    pub flushes: u64,
}

/// Rights bits of a slot: what the cached translation permits, before the current control
/// state is taken into account.
mod rights {
    /// R/W=1 at every level.
    pub const W: u8 = 1 << 0;
    /// A user-mode address (U/S=1 at every level).
    pub const U: u8 = 1 << 1;
    /// A supervisor-mode address (U/S=0 at some level), so "needs S" is also a mask test.
    pub const S: u8 = 1 << 2;
    /// XD=0 at every level.
    pub const X: u8 = 1 << 3;
    /// D=1 in the leaf.
    pub const D: u8 = 1 << 4;
    /// G=1 in the leaf with CR4.PGE=1 at fill time: matches any PCID.
    pub const G: u8 = 1 << 5;
}

/// A cached 4 KiB fragment. `tag` is the linear page with bit 0 set (0 = invalid), so a
/// non-canonical address can never hit: tags are only made from canonical ones.
#[derive(Clone, Copy, Default)]
struct Slot {
    tag: u64,
    /// Guest-physical base of the 4 KiB fragment.
    frame: u64,
    pcid: u16,
    /// 0 for a global entry (any PCID matches), all-ones otherwise: the PCID test on a hit
    /// is then one XOR-and-test, `(pcid ^ current) & pcid_mask == 0`.
    pcid_mask: u16,
    rights: u8,
    pkey: u8,
    /// log2 of the size of the original translation (12, 21 or 30).
    shift: u8,
}

const VALID: u64 = 1;
/// Tag bit of slots filled while checking: the hot hit test (`find::<VALID>`) never matches
/// them; only the checked lookup on the miss path does. Bit 1 is free (tags are pages with
/// bit 0 set) and shifted out by `covers` and masked by `entries`, so invalidation treats
/// checked slots exactly as others.
const CHECKED: u64 = 2;

impl Slot {
    /// True if this slot caches a translation whose page contains `la`.
    #[inline]
    fn covers(&self, la: u64) -> bool {
        self.tag != 0 && ((self.tag ^ la) >> self.shift) == 0
    }
    fn global(&self) -> bool {
        self.rights & rights::G != 0
    }
    /// The first byte after the original translation's page (saturating at the top).
    fn range(&self) -> (u64, u64) {
        let base = self.tag & !((1u64 << self.shift) - 1);
        (base, base.saturating_add(1 << self.shift))
    }
}

/// The rights a slot must have for `acc` under `ctl` (SDM 4.6), as a mask over `rights`.
/// Protection keys are checked separately (they need the slot's key).
#[inline(always)]
fn required(ctl: &ControlRegs, acc: Access) -> u8 {
    let mut req = match acc.kind {
        AccessKind::Read => 0,
        // D must already be set, else the walk must set it. Supervisor writes with CR0.WP=0
        // ignore R/W.
        AccessKind::Write if acc.user || ctl.wp() => rights::W | rights::D,
        AccessKind::Write => rights::D,
        AccessKind::Fetch if ctl.nxe() => rights::X,
        AccessKind::Fetch => 0,
    };
    if acc.user {
        req |= rights::U;
    } else if match acc.kind {
        AccessKind::Fetch => ctl.smep(),
        _ => ctl.smap() && (acc.implicit || !acc.ac),
    } {
        req |= rights::S;
    }
    req
}

pub struct Tlb {
    pub stats: TlbStats,
    /// Incremented by every invalidation of any kind; lets callers cache a translation
    /// (e.g. the current code page) and know when it may have gone stale.
    ///
    /// Every CR3 write counts, even one with bit 63 set that invalidates nothing, because it
    /// changes the PCID lookups use. Changes of CR0.WP, SMEP/SMAP, EFLAGS.AC or PKRU do not
    /// (the TLB is not told of them): callers caching rights must recheck those themselves.
    pub generation: u64,
    slots: Box<[Slot; SLOTS]>,
    /// The full translation behind each slot, for [`Tlb::entries`].
    cold: Box<[Option<(u16, Translation)>]>,
    /// Whole 2 MiB and 1 GiB translations (see the module documentation), with their full
    /// translations.
    large: [Slot; LARGE_SLOTS],
    large_cold: [Option<(u16, Translation)>; LARGE_SLOTS],
    /// Some slot may hold a large-page fragment: page invalidations must then scan every
    /// slot, since a large page's fragments are spread over the array. Cleared by full scans.
    any_large: bool,
    /// Hits are checked against the page tables (see the module documentation).
    checking: bool,
    /// The first stale hit found while checking; the CPU takes it and stops.
    pub stale: Option<StaleHit>,
}

impl Default for Tlb {
    fn default() -> Self {
        Self::new()
    }
}

impl Tlb {
    pub fn new() -> Self {
        Self {
            stats: TlbStats::default(),
            generation: 0,
            slots: Box::new([Slot::default(); SLOTS]),
            cold: vec![None; SLOTS].into_boxed_slice(),
            large: [Slot::default(); LARGE_SLOTS],
            large_cold: [None; LARGE_SLOTS],
            any_large: false,
            checking: false,
            stale: None,
        }
    }

    #[inline(always)]
    fn index(la: u64) -> usize {
        (la >> 12) as usize & (SLOTS - 1)
    }

    /// Whether hits are checked (see the module documentation).
    pub fn checking(&self) -> bool {
        self.checking
    }

    /// Turns checking on or off. The TLB is emptied (without counting a flush), so that no
    /// slot filled in the other mode survives: an unchecked slot would hit unchecked.
    pub fn set_checking(&mut self, on: bool) {
        if on != self.checking {
            self.drop_where(|_| true);
            self.generation += 1;
            self.checking = on;
        }
    }

    /// Hot path: the physical address of `la` if a cached translation permits `acc` under `ctl`
    /// (including a write needing D already set in the cached leaf). No side effects but stats.
    #[inline(always)]
    pub fn lookup(&mut self, ctl: &ControlRegs, la: u64, acc: Access) -> Option<u64> {
        match self.find::<VALID>(ctl, la, acc) {
            Some(pa) => {
                self.stats.hits += 1;
                Some(pa)
            }
            None => {
                self.stats.misses += 1;
                None
            }
        }
    }

    /// Like [`Tlb::lookup`], but a miss is not counted: for callers that answer a miss by
    /// falling back to `lookup`/`translate`, which count it (so the stats read the same as
    /// if the caller had used them directly).
    #[inline(always)]
    pub fn probe(&mut self, ctl: &ControlRegs, la: u64, acc: Access) -> Option<u64> {
        let r = self.find::<VALID>(ctl, la, acc);
        if r.is_some() {
            self.stats.hits += 1;
        }
        r
    }

    /// The hit test shared by `lookup` and `probe` (`TAG` = `VALID`) and the checked lookup
    /// (`VALID | CHECKED`). The tag compare comes first, so a miss costs one load and
    /// compare; inlined, the rights mask folds for a constant access kind.
    #[inline(always)]
    fn find<const TAG: u64>(&self, ctl: &ControlRegs, la: u64, acc: Access) -> Option<u64> {
        let s = &self.slots[Self::index(la)];
        if s.tag == (la & !0xfff) | TAG
            && (s.pcid ^ ctl.pcid()) & s.pcid_mask == 0
            && s.rights & required(ctl, acc) == required(ctl, acc)
            && !(ctl.pke() && s.rights & rights::U != 0 && pkru_denies(ctl, acc, s.pkey))
        {
            Some(s.frame | (la & 0xfff))
        } else {
            None
        }
    }

    /// Lookup, and on a miss (or a write through a clean cached entry) a full walk that fills
    /// the TLB on success. Never caches a fault.
    pub fn translate(&mut self, mem: &mut PhysMem, ctl: &ControlRegs, la: u64, acc: Access) -> Result<u64, WalkFault> {
        if let Some(pa) = self.lookup(ctl, la, acc) {
            return Ok(pa);
        }
        self.translate_missed(mem, ctl, la, acc)
    }

    /// The rest of [`Tlb::translate`] for a caller whose own [`Tlb::lookup`] missed (and
    /// counted the miss): while checking, the checked lookup; then a walk that fills the TLB.
    pub fn translate_missed(&mut self, mem: &mut PhysMem, ctl: &ControlRegs, la: u64, acc: Access) -> Result<u64, WalkFault> {
        if self.checking {
            if let Some(pa) = self.checked_hit(mem, ctl, la, acc) {
                return Ok(pa);
            }
        }
        if let Some(pa) = self.large_hit(mem, ctl, la, acc) {
            return Ok(pa);
        }
        self.translate_full(mem, ctl, la, acc).map(|t| t.pa.as_u64())
    }

    /// The index of the large slot for `la` at page size `shift` (21 or 30).
    #[inline]
    fn large_index(la: u64, shift: u32) -> usize {
        let half = LARGE_SLOTS / 2;
        let base = if shift == 30 { half } else { 0 };
        base + ((la >> shift) as usize & (half - 1))
    }

    /// A miss in the main array answered by a cached whole large page: the 4 KiB fragment
    /// of `la` is installed in the main array (as a walk would have filled it) and the
    /// caller's counted miss becomes a hit — no walk. While checking, the fragment is first
    /// compared with the tables, as any checked hit is.
    #[cold]
    #[inline(never)]
    fn large_hit(&mut self, mem: &PhysMem, ctl: &ControlRegs, la: u64, acc: Access) -> Option<u64> {
        let tag_bits = VALID | if self.checking { CHECKED } else { 0 };
        for shift in [21u32, 30] {
            let i = Self::large_index(la, shift);
            let s = self.large[i];
            let req = required(ctl, acc);
            if s.tag != (la & !((1u64 << shift) - 1)) | tag_bits
                || (s.pcid ^ ctl.pcid()) & s.pcid_mask != 0
                || s.rights & req != req
                || (ctl.pke() && s.rights & rights::U != 0 && pkru_denies(ctl, acc, s.pkey))
            {
                continue;
            }
            let Some((pcid, t)) = self.large_cold[i] else { continue };
            let frag = Slot { tag: (la & !0xfff) | tag_bits, frame: s.frame + (la & ((1u64 << shift) - 1) & !0xfff), ..s };
            if self.checking && self.stale.is_none() {
                let now = walk_peek(mem, ctl, la).expect("a TLB tag is a canonical address");
                if let Some(reason) = stale_reason(ctl, &frag, &now, la, acc) {
                    self.stale = Some(StaleHit { la, kind: acc.kind, reason, frame: frag.frame, rights: frag.rights, pkey: frag.pkey, shift: frag.shift, now, maxphyaddr: ctl.maxphyaddr });
                }
            }
            let idx = Self::index(la);
            self.slots[idx] = frag;
            let mut ft = t;
            ft.pa = crate::addr::PhysAddr::new(frag.frame);
            self.cold[idx] = Some((pcid, ft));
            self.any_large = true;
            self.stats.misses -= 1;
            self.stats.hits += 1;
            return Some(frag.frame | (la & 0xfff));
        }
        None
    }

    /// The hit test of a checking TLB, and the check. The caller's lookup counted a miss;
    /// a hit here turns it back into a hit, so the statistics read as without checking.
    #[cold]
    #[inline(never)]
    fn checked_hit(&mut self, mem: &PhysMem, ctl: &ControlRegs, la: u64, acc: Access) -> Option<u64> {
        let pa = self.find::<{ VALID | CHECKED }>(ctl, la, acc)?;
        self.stats.misses -= 1;
        self.stats.hits += 1;
        if self.stale.is_none() {
            let slot = self.slots[Self::index(la)];
            let now = walk_peek(mem, ctl, la).expect("a TLB tag is a canonical address");
            if let Some(reason) = stale_reason(ctl, &slot, &now, la, acc) {
                self.stale = Some(StaleHit {
                    la,
                    kind: acc.kind,
                    reason,
                    frame: slot.frame,
                    rights: slot.rights,
                    pkey: slot.pkey,
                    shift: slot.shift,
                    now,
                    maxphyaddr: ctl.maxphyaddr,
                });
            }
        }
        Some(pa)
    }

    /// Like `translate` but always walks (for tracing/tests), returning the full translation.
    pub fn translate_full(&mut self, mem: &mut PhysMem, ctl: &ControlRegs, la: u64, acc: Access) -> Result<Translation, WalkFault> {
        self.stats.walks += 1;
        match walk(mem, ctl, la, acc) {
            Ok(t) => {
                self.fill(ctl, la, &t);
                Ok(t)
            }
            Err(f @ WalkFault::PageFault { .. }) => {
                // SDM 4.10.4.1: a #PF invalidates the faulting page's entries in the current PCID.
                let pcid = ctl.pcid();
                let n = self.invalidate_page(la, |s| s.pcid == pcid);
                if n > 0 {
                    self.note_flush("page-fault", n);
                }
                Err(f)
            }
            Err(f) => Err(f),
        }
    }

    #[cold]
    fn fill(&mut self, ctl: &ControlRegs, la: u64, t: &Translation) {
        let mut r = 0;
        for (have, bit) in [
            (t.writable, rights::W),
            (t.user, rights::U),
            (!t.user, rights::S),
            (!t.nx, rights::X),
            (t.leaf.is_dirty(), rights::D),
            (t.global, rights::G),
        ] {
            if have {
                r |= bit;
            }
        }
        let page = la & !0xfff;
        let idx = Self::index(la);
        let pcid = ctl.pcid();
        self.slots[idx] = Slot {
            tag: page | VALID | if self.checking { CHECKED } else { 0 },
            frame: t.pa.as_u64() & !0xfff,
            pcid,
            pcid_mask: if t.global { 0 } else { !0 },
            rights: r,
            pkey: t.leaf.pkey(),
            shift: t.size.shift() as u8,
        };
        let mut frag = *t;
        frag.pa = crate::addr::PhysAddr::new(t.pa.as_u64() & !0xfff);
        self.cold[idx] = Some((pcid, frag));
        self.any_large |= t.size != PageSize::Size4K;
        if t.size != PageSize::Size4K {
            // The whole large page too: its other fragments then need no walk.
            let shift = t.size.shift();
            let mask = (1u64 << shift) - 1;
            let li = Self::large_index(la, shift);
            self.large[li] = Slot { tag: (la & !mask) | (self.slots[idx].tag & (VALID | CHECKED)), frame: (t.pa.as_u64() & !0xfff) - (la & mask & !0xfff), ..self.slots[idx] };
            self.large_cold[li] = Some((pcid, *t));
        }
        self.stats.fills += 1;
        tracing::trace!(target: "pagelab::tlb", op = "fill", la = format_args!("{page:#x}"), pcid,
            pa = format_args!("{:#x}", t.pa.as_u64() & !0xfff), size = ?t.size, rights = r);
    }

    /// Drops every valid slot for which `drop` is true, scanning the whole array. Returns how many.
    fn drop_where(&mut self, mut drop: impl FnMut(&Slot) -> bool) -> usize {
        let mut n = self.drop_large_where(&mut drop);
        let mut large = false;
        for (s, c) in self.slots.iter_mut().zip(self.cold.iter_mut()) {
            if s.tag != 0 && drop(s) {
                *s = Slot::default();
                *c = None;
                n += 1;
            }
            large |= s.tag != 0 && s.shift != 12;
        }
        self.any_large = large;
        n
    }

    /// Drops the large slots for which `drop` is true. Returns how many.
    fn drop_large_where(&mut self, mut drop: impl FnMut(&Slot) -> bool) -> usize {
        let mut n = 0;
        for (s, c) in self.large.iter_mut().zip(self.large_cold.iter_mut()) {
            if s.tag != 0 && drop(s) {
                *s = Slot::default();
                *c = None;
                n += 1;
            }
        }
        n
    }

    /// Drops the slots whose translation contains `la` and that satisfy `pred`: the slot `la`
    /// indexes, plus, if large pages may be cached, every fragment of a large page containing it
    /// (and the large page's own slot).
    fn invalidate_page(&mut self, la: u64, pred: impl Fn(&Slot) -> bool) -> usize {
        if self.any_large {
            return self.drop_where(|s| s.covers(la) && pred(s));
        }
        let n = self.drop_large_where(|s| s.covers(la) && pred(s));
        if n > 0 {
            return n + self.drop_where(|s| s.covers(la) && pred(s));
        }
        let idx = Self::index(la);
        let s = &self.slots[idx];
        if s.covers(la) && pred(s) {
            self.slots[idx] = Slot::default();
            self.cold[idx] = None;
            1
        } else {
            0
        }
    }

    /// Book-keeping common to every invalidation operation.
    fn note_flush(&mut self, op: &'static str, dropped: usize) {
        self.stats.flushes += 1;
        self.generation += 1;
        tracing::trace!(target: "pagelab::tlb", op, dropped);
    }

    /// INVLPG: the page containing `la` in the current PCID, and global entries for it in any PCID.
    /// For a large-page translation the whole large page goes (SDM 4.10.4.1, "INVLPG").
    pub fn invlpg(&mut self, ctl: &ControlRegs, la: u64) {
        let pcid = ctl.pcid();
        let n = self.invalidate_page(la, |s| s.pcid == pcid || s.global());
        self.note_flush("invlpg", n);
    }
    /// MOV to CR3 with `new_cr3` as the source operand (bit 63 honoured with PCIDE). Updates ctl.cr3.
    ///
    /// SDM 4.10.4.1: with PCIDE=0, the non-global entries of PCID 000H go; with PCIDE=1, those
    /// of the new PCID, unless source bit 63 is 1 (which is not stored in CR3). Global entries
    /// always stay.
    pub fn write_cr3(&mut self, ctl: &mut ControlRegs, new_cr3: u64) {
        let pcide = ctl.cr4 & ControlRegs::CR4_PCIDE != 0;
        let keep = pcide && new_cr3 & (1 << 63) != 0;
        ctl.cr3 = if pcide { new_cr3 & !(1 << 63) } else { new_cr3 };
        let pcid = ctl.pcid();
        let n = if keep { 0 } else { self.drop_where(|s| s.pcid == pcid && !s.global()) };
        self.note_flush("mov-cr3", n);
    }
    /// MOV to CR4, flushing what the SDM says a change of PGE/PCIDE/SMEP/PAE flushes. Updates ctl.cr4.
    ///
    /// SDM 4.10.4.1: toggling PGE, or clearing PCIDE, flushes everything including globals;
    /// changing PAE or setting SMEP flushes the current PCID (globals tagged with it too).
    pub fn write_cr4(&mut self, ctl: &mut ControlRegs, new_cr4: u64) {
        let old = ctl.cr4;
        ctl.cr4 = new_cr4;
        let changed = old ^ new_cr4;
        let n = if changed & ControlRegs::CR4_PGE != 0 || (changed & old & ControlRegs::CR4_PCIDE != 0) {
            self.drop_where(|_| true)
        } else if changed & ControlRegs::CR4_PAE != 0 || (changed & new_cr4 & ControlRegs::CR4_SMEP != 0) {
            let pcid = if old & ControlRegs::CR4_PCIDE != 0 { (ctl.cr3 & 0xfff) as u16 } else { 0 };
            self.drop_where(|s| s.pcid == pcid)
        } else {
            return;
        };
        self.note_flush("mov-cr4", n);
    }
    /// INVPCID of type 0..=3 (SDM Vol. 2, INVPCID): 0 = one address in `pcid`, non-global;
    /// 1 = all of `pcid`, non-global; 2 = everything including globals; 3 = everything but
    /// globals. Other types are #GP in the CPU and are ignored here.
    pub fn invpcid(&mut self, kind: u8, pcid: u16, la: u64) {
        let n = match kind {
            0 => self.invalidate_page(la, |s| s.pcid == pcid && !s.global()),
            1 => self.drop_where(|s| s.pcid == pcid && !s.global()),
            2 => self.drop_where(|_| true),
            3 => self.drop_where(|s| !s.global()),
            _ => return,
        };
        self.note_flush("invpcid", n);
    }
    /// Everything, global entries included.
    pub fn flush_all(&mut self) {
        let n = self.drop_where(|_| true);
        self.note_flush("flush-all", n);
    }
    /// Every cached translation for linear addresses in [start, end), any PCID, global included.
    /// A translation is dropped if its page (the whole large page, for a fragment) overlaps.
    pub fn flush_range(&mut self, start: u64, end: u64) {
        let first = start & !0xfff;
        let pages = end.saturating_sub(first).div_ceil(4096);
        let n = if !self.any_large && pages < SLOTS as u64 {
            let mut n = self.drop_large_where(|s| {
                let (b, e) = s.range();
                b < end && start < e
            });
            for p in 0..pages {
                n += self.invalidate_page(first + (p << 12), |_| true);
            }
            n
        } else {
            self.drop_where(|s| {
                let (b, e) = s.range();
                b < end && start < e
            })
        };
        self.note_flush("flush-range", n);
    }
    /// Every cached translation, as (linear page, pcid, cached leaf rights) for checkers.
    ///
    /// One item per cached 4 KiB fragment: a large page appears once per fragment cached,
    /// with `pa` the fragment's frame and `size` the original page size.
    pub fn entries(&self) -> Vec<(u64, u16, Translation)> {
        self.slots
            .iter()
            .zip(self.cold.iter())
            .filter_map(|(s, c)| c.filter(|_| s.tag != 0).map(|(pcid, t)| (s.tag & !0xfff, pcid, t)))
            .collect()
    }
}

/// A pending invalidation, returned by every entry write that may leave a stale TLB entry.
/// It must be applied to every TLB that may cache the old entry, or explicitly ignored with a
/// reason: forgetting a flush does not compile cleanly.
#[must_use = "a page-table change must be flushed from every TLB that may cache it"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flush {
    pub start: u64,
    pub end: u64,
}

impl Flush {
    pub const fn page(va: u64, size: crate::addr::PageSize) -> Self {
        let start = va & !(size.bytes() - 1);
        Self { start, end: start.saturating_add(size.bytes()) }
    }
    pub const fn range(start: u64, end: u64) -> Self {
        Self { start, end }
    }
    /// The union's hull of two pending flushes.
    pub fn merge(self, other: Flush) -> Flush {
        Flush { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
    pub fn apply(self, tlb: &mut Tlb) {
        tlb.flush_range(self.start, self.end)
    }
    pub fn apply_all<'a>(self, tlbs: impl IntoIterator<Item = &'a mut Tlb>) {
        for t in tlbs {
            t.flush_range(self.start, self.end)
        }
    }
    /// Drops the flush. Only correct when the old entry could not be cached (it was not
    /// present, or had a reserved bit set): SDM 4.10.2.3.
    pub fn not_needed(self) {}
}

/// Writes `new` into the entry slot at `slot` and returns the flush the change needs.
pub fn write_entry(mem: &mut PhysMem, slot: crate::addr::PhysAddr, new: crate::entry::Entry, va: u64, size: crate::addr::PageSize) -> Flush {
    mem.write_u64(slot, new.raw());
    Flush::page(va, size)
}

/// Why a cached translation grants more than the page tables do now, if it does: the
/// checker's rule, SDM 4.10.2 (what a TLB entry caches) and 4.10.4.3 (what software may
/// leave uninvalidated). `now` is a side-effect-free walk of `la`.
///
/// Stale: the page is no longer mapped, or mapped to another frame; or a right the entry
/// caches (R/W, U/S, execute, the protection key) is gone from the tables. A *stricter*
/// cached entry is fine: the SDM lets software skip the flush after granting rights (a
/// "spurious" #PF at most, which our TLB turns into a re-walk).
///
/// The dirty bit. A TLB entry caches D; after software clears D in the PTE without a flush,
/// a write through the cached entry does not set D again, and "software cannot interpret
/// the bit being clear as an indication that such a write has not occurred" (SDM
/// 4.10.4.3). That is not a wrong translation, but it is a lost write for any kernel that
/// trusts D (writeback, MADV_FREE, soft-dirty), which is why Linux flushes whenever it
/// cleans a PTE. So a *write* hit through a cached D=1 over a PTE with D=0 is reported;
/// a read or fetch through it is not (nothing is lost). A is never compared: it is not
/// cached here, and Linux clears A without flushing on purpose (x86
/// ptep_clear_flush_young), accepting that a hot page may look idle.
fn stale_reason(ctl: &ControlRegs, slot: &Slot, now: &Path, la: u64, acc: Access) -> Option<&'static str> {
    let (frame, r, pkey) = (slot.frame, slot.rights, slot.pkey);
    match now.end {
        PathEnd::NotPresent => return Some("the page is not mapped any more"),
        PathEnd::Reserved => return Some("the page-table entry has reserved bits set now"),
        PathEnd::Leaf => {}
    }
    let leaf = now.last();
    let size = now.level().leaf_size().expect("a leaf");
    let frame_now = leaf.addr(now.level(), ctl.maxphyaddr).as_u64() | (la & (size.bytes() - 1) & !0xfff);
    if frame_now != frame {
        return Some("the page is mapped to another frame now");
    }
    if r & rights::W != 0 && !now.writable {
        return Some("write permission was revoked");
    }
    if r & rights::U != 0 && !now.user {
        return Some("user access was revoked");
    }
    if r & rights::X != 0 && now.nx && ctl.nxe() {
        return Some("execute permission was revoked");
    }
    if ctl.pke() && r & rights::U != 0 && pkey != leaf.pkey() {
        return Some("the protection key changed");
    }
    if acc.kind == AccessKind::Write && r & rights::D != 0 && !leaf.is_dirty() {
        return Some("the dirty bit was cleared without a flush (this write would not set it)");
    }
    None
}

/// A stale TLB hit found while checking: the access, the cached entry and what the page
/// tables say now. Its `Display` is the checker's report.
#[derive(Clone, Debug)]
pub struct StaleHit {
    pub la: u64,
    pub kind: AccessKind,
    pub reason: &'static str,
    /// The cached 4 KiB fragment's frame, rights (`rights::*` bits), key and page size.
    pub frame: u64,
    pub rights: u8,
    pub pkey: u8,
    pub shift: u8,
    /// The side-effect-free walk done by the check.
    pub now: Path,
    pub maxphyaddr: u8,
}

impl core::fmt::Display for StaleHit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = match self.kind {
            AccessKind::Read => "read",
            AccessKind::Write => "write",
            AccessKind::Fetch => "instruction fetch",
        };
        let size = match self.shift {
            12 => "4K",
            21 => "2M",
            _ => "1G",
        };
        write!(f, "{kind} at {:#x} hit a stale TLB entry ({}): cached {size} translation to frame {:#x}, rights ", self.la, self.reason, self.frame)?;
        let mut sep = "";
        for (bit, name) in [(rights::W, "W"), (rights::U, "U"), (rights::S, "S"), (rights::X, "X"), (rights::D, "D"), (rights::G, "G")] {
            if self.rights & bit != 0 {
                write!(f, "{sep}{name}")?;
                sep = ",";
            }
        }
        if self.pkey != 0 {
            write!(f, ", pkey {}", self.pkey)?;
        }
        let now = &self.now;
        let level = match now.level() {
            crate::entry::Level::Pml4 => "PML4E",
            crate::entry::Level::Pdpt => "PDPTE",
            crate::entry::Level::Pd => "PDE",
            crate::entry::Level::Pt => "PTE",
        };
        let e = now.last();
        write!(f, "; the page tables now have {level} {:#x} (", e.raw())?;
        match now.end {
            PathEnd::NotPresent => write!(f, "not present")?,
            PathEnd::Reserved => write!(f, "reserved bits set")?,
            PathEnd::Leaf => {
                write!(
                    f,
                    "present, frame {:#x}, {}, {}, {}",
                    e.addr(now.level(), self.maxphyaddr).as_u64(),
                    if now.writable { "writable" } else { "read-only" },
                    if now.user { "user" } else { "supervisor" },
                    if now.nx { "no-execute" } else { "executable" },
                )?;
                if e.is_accessed() {
                    write!(f, ", accessed")?;
                }
                if e.is_dirty() {
                    write!(f, ", dirty")?;
                }
                if e.pkey() != 0 {
                    write!(f, ", pkey {}", e.pkey())?;
                }
                if now.level() != crate::entry::Level::Pt {
                    write!(f, ", {} page", if now.level() == crate::entry::Level::Pd { "2M" } else { "1G" })?;
                }
            }
        }
        write!(f, ")")
    }
}
