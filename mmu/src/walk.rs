//! The 4-level page walk (SDM 4.5), permission checks (SDM 4.6), A/D updates (SDM 4.8) and
//! the #PF error code (SDM 4.7).
//!
//! The walk reads each entry once (PML4E, PDPTE, PDE, PTE), stops at the first not-present
//! entry (#PF with P=0) or the first present entry with a reserved bit (#PF with P=1 and
//! RSVD=1), and then checks the rights combined over all levels against the access
//! ([`check_access`], shared with the TLB's slow path).
//!
//! A/D policy. The SDM (4.8) says A is set in an entry when it is used for a translation;
//! whether a walk that ends in a permission fault leaves A set in the entries it read is
//! implementation-specific. We set A (in every entry of the walk) and D (in the leaf, for a
//! write) only when the translation succeeds, so a faulting access leaves the tables exactly
//! as they were. The updates are read-modify-write ORs of the entry in memory, as the
//! hardware's locked updates are, so a recursive mapping in which one slot serves two levels
//! keeps every bit set.

use crate::addr::{PageSize, PhysAddr, VirtAddr};
use crate::entry::{Entry, Level};
use crate::phys::PhysMem;

/// The control state a walk depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlRegs {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub pkru: u32,
    /// MAXPHYADDR, as CPUID 0x80000008 `EAX[7:0]` reports it.
    pub maxphyaddr: u8,
}

impl ControlRegs {
    pub const CR0_PE: u64 = 1 << 0;
    pub const CR0_WP: u64 = 1 << 16;
    pub const CR0_PG: u64 = 1 << 31;
    pub const CR4_PAE: u64 = 1 << 5;
    pub const CR4_PGE: u64 = 1 << 7;
    pub const CR4_PCIDE: u64 = 1 << 17;
    pub const CR4_SMEP: u64 = 1 << 20;
    pub const CR4_SMAP: u64 = 1 << 21;
    pub const CR4_PKE: u64 = 1 << 22;
    pub const EFER_LME: u64 = 1 << 8;
    pub const EFER_LMA: u64 = 1 << 10;
    pub const EFER_NXE: u64 = 1 << 11;

    /// The state Linux runs user code under: long mode, WP, PGE, NXE, and the given CR3.
    /// (SMEP/SMAP are off by default; tests turn them on.)
    pub fn linux_user(cr3: u64, maxphyaddr: u8) -> Self {
        Self {
            cr0: Self::CR0_PE | Self::CR0_PG | Self::CR0_WP,
            cr3,
            cr4: Self::CR4_PAE | Self::CR4_PGE,
            efer: Self::EFER_LME | Self::EFER_LMA | Self::EFER_NXE,
            pkru: 0,
            maxphyaddr,
        }
    }
    /// The PCID in use (0 unless CR4.PCIDE).
    #[inline]
    pub fn pcid(&self) -> u16 {
        if self.cr4 & Self::CR4_PCIDE != 0 {
            (self.cr3 & 0xfff) as u16
        } else {
            0
        }
    }
    #[inline]
    pub const fn wp(&self) -> bool {
        self.cr0 & Self::CR0_WP != 0
    }
    #[inline]
    pub const fn nxe(&self) -> bool {
        self.efer & Self::EFER_NXE != 0
    }
    #[inline]
    pub const fn smep(&self) -> bool {
        self.cr4 & Self::CR4_SMEP != 0
    }
    #[inline]
    pub const fn smap(&self) -> bool {
        self.cr4 & Self::CR4_SMAP != 0
    }
    #[inline]
    pub const fn pke(&self) -> bool {
        self.cr4 & Self::CR4_PKE != 0
    }
    #[inline]
    pub const fn pge(&self) -> bool {
        self.cr4 & Self::CR4_PGE != 0
    }
    /// Physical address of the PML4 table.
    pub fn pml4(&self) -> PhysAddr {
        PhysAddr::new(self.cr3 & (((1u64 << self.maxphyaddr) - 1) & !0xfff))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum AccessKind {
    Read,
    Write,
    Fetch,
}

/// One memory access as the walk sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Access {
    pub kind: AccessKind,
    /// CPL = 3 (a user-mode access).
    pub user: bool,
    /// An implicit supervisor access (descriptor tables etc.): SMAP applies regardless of AC.
    pub implicit: bool,
    /// EFLAGS.AC at the time of the access (matters only for explicit supervisor accesses under SMAP).
    pub ac: bool,
}

impl Access {
    pub const fn user(kind: AccessKind) -> Self {
        Self { kind, user: true, implicit: false, ac: false }
    }
    pub const fn supervisor(kind: AccessKind) -> Self {
        Self { kind, user: false, implicit: false, ac: false }
    }
    /// The same access with EFLAGS.AC as given.
    #[must_use]
    pub const fn with_ac(self, ac: bool) -> Self {
        Self { ac, ..self }
    }
    /// An implicit supervisor access (SDM 4.6: GDT, IDT, TSS ... even at CPL 3).
    pub const fn implicit(kind: AccessKind) -> Self {
        Self { kind, user: false, implicit: true, ac: false }
    }
    /// The error-code bits that describe the access itself (SDM 4.7): W/R, U/S, and I/D, which
    /// is reported only when EFER.NXE=1 or CR4.SMEP=1.
    pub const fn error_bits(self, ctl: &ControlRegs) -> u32 {
        let mut code = 0;
        if matches!(self.kind, AccessKind::Write) {
            code |= PfErrorCode::W.bits();
        }
        if self.user {
            code |= PfErrorCode::U.bits();
        }
        if matches!(self.kind, AccessKind::Fetch) && (ctl.nxe() || ctl.smep()) {
            code |= PfErrorCode::ID.bits();
        }
        code
    }
}

/// A #PF error code (SDM 4.7), a flag set with the SDM's bit names; Linux calls them
/// X86_PF_PROT, X86_PF_WRITE, X86_PF_USER, X86_PF_RSVD, X86_PF_INSTR, X86_PF_PK (the
/// guest kernel's arch layer spells those aliases out). Every bit is kept, named or not:
/// the hardware defines more (SS, HLAT, SGX) than the walker reports.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PfErrorCode(pub u32);

bitflags::bitflags! {
    impl PfErrorCode: u32 {
        /// The fault was a protection violation on a present page (clear: not present).
        const P = 1 << 0;
        /// The access was a write.
        const W = 1 << 1;
        /// The access was a user-mode access (CPL 3, not implicit).
        const U = 1 << 2;
        /// A reserved bit was set in a paging-structure entry.
        const RSVD = 1 << 3;
        /// The access was an instruction fetch (reported with EFER.NXE or CR4.SMEP).
        const ID = 1 << 4;
        /// A protection key denied the access.
        const PK = 1 << 5;
        const _ = !0;
    }
}

impl core::fmt::Debug for PfErrorCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PfErrorCode({:#x}", self.0)?;
        for (b, n) in [(Self::P, "P"), (Self::W, "W"), (Self::U, "U"), (Self::RSVD, "RSVD"), (Self::ID, "I/D"), (Self::PK, "PK")] {
            if self.intersects(b) {
                write!(f, " {n}")?;
            }
        }
        write!(f, ")")
    }
}

/// Why a translation failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum WalkFault {
    /// #PF with CR2 = `addr` (the full linear address) and the exact error code.
    PageFault { addr: u64, code: PfErrorCode },
    /// A non-canonical address: #GP(0) (or #SS for stack accesses, which the CPU decides).
    NonCanonical { addr: u64 },
}

/// A successful translation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Translation {
    /// The physical address of the accessed byte (frame base + offset).
    pub pa: PhysAddr,
    pub size: PageSize,
    /// The leaf entry as it is in memory after the A/D update.
    pub leaf: Entry,
    /// Rights combined over all levels (SDM 4.6.1): R/W=1 in every entry, U/S=1 in every
    /// entry (a user-mode address), XD=1 in any entry (only possible with EFER.NXE=1), and
    /// G=1 in the leaf with CR4.PGE=1.
    pub writable: bool,
    pub user: bool,
    pub nx: bool,
    pub global: bool,
    /// The entries used, PML4E first; `levels` of them are valid (4 for 4K, 3 for 2M, 2 for 1G).
    pub entries: [Entry; 4],
    pub levels: u8,
}

impl Translation {
    /// The leaf's protection key if CR4.PKE applies to it (SDM 4.6.2: user-mode addresses only).
    pub const fn pkey(&self, ctl: &ControlRegs) -> Option<u8> {
        if ctl.pke() && self.user {
            Some(self.leaf.pkey())
        } else {
            None
        }
    }
}

/// Checks `acc` against rights combined over a walk (SDM 4.6). `user_addr`: U/S=1 at every
/// level; `writable`: R/W=1 at every level; `nx`: XD=1 at some level; `pkey`: the leaf's
/// protection key. Returns the error-code bits beyond those describing the access: 0 if the
/// access is allowed, else P, plus PK when PKRU forbids it (SDM 4.7: PK is reported whenever
/// the key forbids the access, whether or not another rule also does).
#[inline]
pub fn check_access(ctl: &ControlRegs, acc: Access, user_addr: bool, writable: bool, nx: bool, pkey: u8) -> u32 {
    let write = matches!(acc.kind, AccessKind::Write);
    let fetch = matches!(acc.kind, AccessKind::Fetch);
    let denied = if acc.user {
        // CPL 3: user-mode addresses only; writes need R/W everywhere, whatever CR0.WP says.
        !user_addr || (write && !writable) || (fetch && nx)
    } else {
        // Supervisor (CPL < 3, or implicit). SMAP: explicit accesses with EFLAGS.AC=1 may touch
        // user data; implicit ones never may. SMEP: no fetches from user-mode addresses.
        let smap_denies = user_addr && !fetch && ctl.smap() && (acc.implicit || !acc.ac);
        let smep_denies = user_addr && fetch && ctl.smep();
        smap_denies || smep_denies || (write && ctl.wp() && !writable) || (fetch && nx)
    };
    let key_denies = ctl.pke() && user_addr && pkru_denies(ctl, acc, pkey);
    match (denied, key_denies) {
        (false, false) => 0,
        (true, false) => PfErrorCode::P.bits(),
        (_, true) => PfErrorCode::P.bits() | PfErrorCode::PK.bits(),
    }
}

/// PKRU's verdict on an access to a user-mode address whose leaf has key `pkey`, with
/// CR4.PKE=1 (SDM 4.6.2): keys govern data accesses only; AD forbids any data access, WD
/// forbids user writes, and supervisor writes when CR0.WP=1.
#[inline(always)]
pub(crate) const fn pkru_denies(ctl: &ControlRegs, acc: Access, pkey: u8) -> bool {
    let bits = ctl.pkru >> (2 * (pkey as u32 & 0xf));
    match acc.kind {
        AccessKind::Fetch => false,
        AccessKind::Read => bits & 1 != 0,
        AccessKind::Write => bits & 1 != 0 || (bits & 2 != 0 && (acc.user || ctl.wp())),
    }
}

const LEVELS: [Level; 4] = [Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt];

/// How the entries read for one linear address end (see [`read_path`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PathEnd {
    /// A present leaf with no reserved bit: a translation exists (rights not yet checked).
    Leaf,
    /// The last entry read is not present.
    NotPresent,
    /// The last entry read is present with a reserved bit set.
    Reserved,
}

/// The entries the walk reads for one linear address, and the rights they combine to: the
/// part of the walk that has no side effects, shared by [`walk`] and [`walk_peek`].
#[derive(Clone, Copy, Debug)]
pub struct Path {
    /// The entries read, PML4E first; `used` of them are valid.
    pub entries: [Entry; 4],
    /// Where each entry lives.
    pub slots: [PhysAddr; 4],
    pub used: usize,
    /// Rights combined over the entries read (SDM 4.6.1); meaningful for `PathEnd::Leaf`.
    pub writable: bool,
    pub user: bool,
    pub nx: bool,
    pub end: PathEnd,
}

impl Path {
    /// The level of the last entry read.
    pub fn level(&self) -> Level {
        LEVELS[self.used - 1]
    }
    /// The last entry read (the leaf, for `PathEnd::Leaf`).
    pub fn last(&self) -> Entry {
        self.entries[self.used - 1]
    }
}

/// Reads the entries for canonical `la` from the tables rooted at `ctl.cr3`, stopping at
/// the first not-present entry, the first entry with a reserved bit, or the leaf. Reads
/// only: no A/D update, no trace event.
#[inline(always)]
pub fn read_path(mem: &PhysMem, ctl: &ControlRegs, la: u64) -> Path {
    let nxe = ctl.nxe();
    let mut p = Path {
        entries: [Entry(0); 4],
        slots: [PhysAddr::new(0); 4],
        used: 0,
        writable: true,
        user: true,
        nx: false,
        end: PathEnd::Leaf,
    };
    let mut table = ctl.pml4();
    for level in LEVELS {
        let slot = PhysAddr::new(table.as_u64() | (VirtAddr::new_truncate(la).table_index(level.number()) as u64 * 8));
        let e = Entry(mem.read_u64(slot));
        p.entries[p.used] = e;
        p.slots[p.used] = slot;
        p.used += 1;
        if !e.is_present() {
            p.end = PathEnd::NotPresent;
            return p;
        }
        if e.reserved_bits(level, ctl.maxphyaddr, nxe) != 0 {
            p.end = PathEnd::Reserved;
            return p;
        }
        p.writable &= e.is_writable();
        p.user &= e.is_user();
        p.nx |= e.is_nx();
        if e.is_leaf(level) {
            break;
        }
        table = e.addr(level, ctl.maxphyaddr);
    }
    p
}

/// What the page tables say about `la` *now*, read without side effects (no A/D update,
/// no trace event, no TLB): for checkers comparing a cached translation with the tables.
/// `None` for a non-canonical address.
pub fn walk_peek(mem: &PhysMem, ctl: &ControlRegs, la: u64) -> Option<Path> {
    VirtAddr::is_canonical(la).then(|| read_path(mem, ctl, la))
}

/// Walks the tables rooted at `ctl.cr3` for `la`, checking `acc` and updating A (every entry
/// used) and D (the leaf, only for a write that succeeds).
///
/// SDM 4.5 (the walk), 4.6 (rights), 4.7 (the error code), 4.8 (A/D). 1 GiB pages are always
/// supported (CPUID Page1GB). A/D are set only when the translation succeeds (see the module
/// documentation).
pub fn walk(mem: &mut PhysMem, ctl: &ControlRegs, la: u64, acc: Access) -> Result<Translation, WalkFault> {
    if !VirtAddr::is_canonical(la) {
        trace_walk(la, &[Entry(0); 4], 0, "non-canonical", 0);
        return Err(WalkFault::NonCanonical { addr: la });
    }
    let fault = |code: u32, entries: &[Entry; 4], used: usize, what: &'static str| {
        let code = PfErrorCode(code | acc.error_bits(ctl));
        trace_walk(la, entries, used, what, code.0);
        Err(WalkFault::PageFault { addr: la, code })
    };
    let Path { mut entries, slots, used, writable, user, nx, end } = read_path(mem, ctl, la);
    match end {
        PathEnd::Leaf => {}
        PathEnd::NotPresent => return fault(0, &entries, used, "not-present"),
        PathEnd::Reserved => return fault(PfErrorCode::P.bits() | PfErrorCode::RSVD.bits(), &entries, used, "reserved"),
    }
    let level = LEVELS[used - 1];
    let leaf = entries[used - 1];
    let denied = check_access(ctl, acc, user, writable, nx, leaf.pkey());
    if denied != 0 {
        return fault(denied, &entries, used, "protection");
    }
    // The access is allowed: set A everywhere, and D in the leaf for a write (SDM 4.8).
    for i in 0..used {
        let mut bits = Entry::ACCESSED;
        if i == used - 1 && matches!(acc.kind, AccessKind::Write) {
            bits |= Entry::DIRTY;
        }
        if !entries[i].has(bits) {
            let now = mem.read_u64(slots[i]) | bits;
            mem.write_u64(slots[i], now);
            entries[i] = Entry(now);
        }
    }
    let leaf = entries[used - 1];
    let size = level.leaf_size().expect("a walk ends at a PDPTE, PDE or PTE");
    let frame = leaf.addr(level, ctl.maxphyaddr);
    trace_walk(la, &entries, used, "ok", 0);
    Ok(Translation {
        pa: PhysAddr::new(frame.as_u64() | (la & (size.bytes() - 1))),
        size,
        leaf,
        writable,
        user,
        nx,
        global: leaf.is_global() && ctl.pge(),
        entries,
        levels: used as u8,
    })
}

/// One trace event per walk: the linear address, the raw entries read (PML4E first; levels
/// not reached are `-`) and the outcome. Inline, this is one load and compare of tracing's
/// global level filter; the event itself is built out of line.
#[inline(always)]
fn trace_walk(la: u64, entries: &[Entry; 4], used: usize, outcome: &'static str, code: u32) {
    if tracing::level_enabled!(tracing::Level::TRACE) {
        trace_walk_event(la, entries, used, outcome, code)
    }
}

#[cold]
#[inline(never)]
fn trace_walk_event(la: u64, entries: &[Entry; 4], used: usize, outcome: &'static str, code: u32) {
    tracing::trace!(
        target: "pagelab::walk",
        la = format_args!("{la:#x}"),
        pml4e = format_args!("{}", Raw(entries, used, 0)),
        pdpte = format_args!("{}", Raw(entries, used, 1)),
        pde = format_args!("{}", Raw(entries, used, 2)),
        pte = format_args!("{}", Raw(entries, used, 3)),
        outcome,
        code = format_args!("{code:#x}"),
    );
}

/// Formats entry `.2` of a walk, or `-` if the walk did not reach it.
struct Raw<'a>(&'a [Entry; 4], usize, usize);

impl core::fmt::Display for Raw<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.2 < self.1 {
            write!(f, "{:#x}", self.0[self.2].0)
        } else {
            f.write_str("-")
        }
    }
}
