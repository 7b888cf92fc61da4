//! The walker as a specification table (SDM 4.5-4.7): one row per case, access × CPL ×
//! CR0.WP × EFER.NXE × CR4.SMEP/SMAP × EFLAGS.AC × PKRU × page size × reserved bits, each with
//! the translation or the exact #PF error code expected. Rows without a size run at all three
//! page sizes.

mod common;
use common::*;
use mmu::{walk, Access, AccessKind, ControlRegs, Level, PageSize, PfErrorCode, WalkFault};

use AccessKind::{Fetch, Read, Write};
use PageSize::{Size1G as G1, Size2M as M2, Size4K as K4};

/// Control-state switches of a row (on top of long mode, PGE, MAXPHYADDR 39).
const WP: u32 = 1;
const NXE: u32 = 2;
const SMEP: u32 = 4;
const SMAP: u32 = 8;
const PKE: u32 = 16;
/// What Linux runs with.
const LINUX: u32 = WP | NXE;

/// PKRU with AD (bit 2k) or WD (bit 2k+1) for key 3, the key the `K3` rows put in the leaf.
const AD3: u32 = 1 << 6;
const WD3: u32 = 1 << 7;
const AD5: u32 = 1 << 10;
const K3: u64 = 3 << 59;

const fn ur() -> Access { Access::user(Read) }
const fn uw() -> Access { Access::user(Write) }
const fn ux() -> Access { Access::user(Fetch) }
const fn sr() -> Access { Access::supervisor(Read) }
const fn sw() -> Access { Access::supervisor(Write) }
const fn sx() -> Access { Access::supervisor(Fetch) }
/// Supervisor with EFLAGS.AC=1 (explicit).
const fn sr_ac() -> Access { Access::supervisor(Read).with_ac(true) }
const fn sw_ac() -> Access { Access::supervisor(Write).with_ac(true) }
/// Implicit supervisor read (a descriptor-table access), with AC=1 to show it does not help.
const fn sr_imp() -> Access { Access::implicit(Read).with_ac(true) }

/// Expected outcome: a translation, or #PF with this error code.
const OK: Option<u32> = None;
const fn pf(code: u32) -> Option<u32> { Some(code) }
// Error-code bits, SDM 4.7.
const EP: u32 = PfErrorCode::P.bits();
const EW: u32 = PfErrorCode::W.bits();
const EU: u32 = PfErrorCode::U.bits();
const ER: u32 = PfErrorCode::RSVD.bits();
const EI: u32 = PfErrorCode::ID.bits();
const EK: u32 = PfErrorCode::PK.bits();

/// Upper-level flags: [PML4E, PDPTE, PDE] (entries below the leaf level are not used).
const UP: [u64; 3] = [PWU; 3];

struct Row {
    what: &'static str,
    sizes: &'static [PageSize],
    upper: [u64; 3],
    leaf: u64,
    ctl: u32,
    pkru: u32,
    acc: Access,
    expect: Option<u32>,
}

const ALL: &[PageSize] = &[K4, M2, G1];
/// Sizes whose walk goes through a non-leaf PDPTE.
const K4_2M: &[PageSize] = &[K4, M2];
const fn row(what: &'static str, upper: [u64; 3], leaf: u64, ctl: u32, acc: Access, expect: Option<u32>) -> Row {
    Row { what, sizes: ALL, upper, leaf, ctl, pkru: 0, acc, expect }
}
const fn pk(what: &'static str, leaf: u64, ctl: u32, pkru: u32, acc: Access, expect: Option<u32>) -> Row {
    Row { what, sizes: ALL, upper: UP, leaf, ctl, pkru, acc, expect }
}
const fn sized(what: &'static str, sizes: &'static [PageSize], upper: [u64; 3], leaf: u64, ctl: u32, acc: Access, expect: Option<u32>) -> Row {
    Row { what, sizes, upper, leaf, ctl, pkru: 0, acc, expect }
}

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // --- not present (P=0 in the error code) ---------------------------------------------
    row("user read, leaf not present",            UP, 0,          LINUX, ur(), pf(EU)),
    row("user write, leaf not present",           UP, 0,          LINUX, uw(), pf(EW | EU)),
    row("user fetch, not present, NXE reports I/D", UP, 0,        LINUX, ux(), pf(EU | EI)),
    row("user fetch, not present, no NXE no SMEP: no I/D", UP, 0, WP,    ux(), pf(EU)),
    row("user fetch, not present, SMEP reports I/D", UP, 0,       WP | SMEP, ux(), pf(EU | EI)),
    row("supervisor read, not present",           UP, 0,          LINUX, sr(), pf(0)),
    row("PML4E not present",                      [W | U, PWU, PWU], PWU, LINUX, ur(), pf(EU)),
    sized("PDPTE not present", K4_2M,                      [PWU, W | U, PWU], PWU, LINUX, uw(), pf(EW | EU)),
    row("not-present leaf's other bits ignored",  UP, W | U | (1 << 45) | NX, 0, ur(), pf(EU)),

    // --- U/S ------------------------------------------------------------------------------
    row("user read of user page",                 UP, PWU,        LINUX, ur(), OK),
    row("user read, leaf U=0",                    UP, P | W,      LINUX, ur(), pf(EP | EU)),
    row("user write, leaf U=0",                   UP, P | W,      LINUX, uw(), pf(EP | EW | EU)),
    row("user fetch, leaf U=0",                   UP, P | W,      LINUX, ux(), pf(EP | EU | EI)),
    row("user read, PML4E U=0",                   [P | W, PWU, PWU], PWU, LINUX, ur(), pf(EP | EU)),
    sized("user read, PDPTE U=0", K4_2M,                   [PWU, P | W, PWU], PWU, LINUX, ur(), pf(EP | EU)),
    sized("user read, PDE U=0",                   &[K4], [PWU, PWU, P | W], PWU, LINUX, ur(), pf(EP | EU)),
    sized("user write, PDE R/W=0",                &[K4], [PWU, PWU, P | U], PWU, LINUX, uw(), pf(EP | EW | EU)),
    sized("user fetch, PDE XD",                   &[K4], [PWU, PWU, PWU | NX], PWU, LINUX, ux(), pf(EP | EU | EI)),
    sized("PDE not present",                      &[K4], [PWU, PWU, W | U], PWU, LINUX, ux(), pf(EU | EI)),
    sized("PDE (table) bit 39 reserved",          &[K4], [PWU, PWU, PWU | 1 << 39], PWU, LINUX, ur(), pf(EP | EU | ER)),
    row("supervisor read of supervisor page",     UP, P,          LINUX, sr(), OK),

    // --- R/W and CR0.WP ------------------------------------------------------------------
    row("user write of writable page",            UP, PWU,        LINUX, uw(), OK),
    row("user write, leaf R/W=0 (uffd-wp)",       UP, P | U,      LINUX, uw(), pf(EP | EW | EU)),
    row("user write, PML4E R/W=0",                [P | U, PWU, PWU], PWU, LINUX, uw(), pf(EP | EW | EU)),
    sized("user write, PDPTE R/W=0", K4_2M,                [PWU, P | U, PWU], PWU, LINUX, uw(), pf(EP | EW | EU)),
    row("user write, R/W=0, WP=0 irrelevant",     UP, P | U,      NXE,   uw(), pf(EP | EW | EU)),
    row("user read of read-only page",            UP, P | U,      LINUX, ur(), OK),
    row("supervisor write, R/W=0, WP=1",          UP, P,          LINUX, sw(), pf(EP | EW)),
    row("supervisor write, R/W=0, WP=0",          UP, P,          NXE,   sw(), OK),
    sized("supervisor write, PDPTE R/W=0, WP=1", K4_2M,    [PWU, P | U, PWU], P | W, LINUX, sw(), pf(EP | EW)),
    row("supervisor write user RO page, WP=0",    UP, P | U,      NXE,   sw(), OK),
    row("supervisor write user RO page, WP=1",    UP, P | U,      LINUX, sw(), pf(EP | EW)),

    // --- XD and EFER.NXE -----------------------------------------------------------------
    row("user fetch of executable page",          UP, PWU,        LINUX, ux(), OK),
    row("user fetch, leaf XD",                    UP, PWU | NX,   LINUX, ux(), pf(EP | EU | EI)),
    row("user read, leaf XD",                     UP, PWU | NX,   LINUX, ur(), OK),
    row("user fetch, PML4E XD",                   [PWU | NX, PWU, PWU], PWU, LINUX, ux(), pf(EP | EU | EI)),
    row("supervisor fetch, leaf XD",              UP, P | NX,     LINUX, sx(), pf(EP | EI)),
    row("XD with NXE=0 is reserved",              UP, PWU | NX,   WP,    ur(), pf(EP | EU | ER)),
    row("XD in PML4E with NXE=0 is reserved",     [PWU | NX, PWU, PWU], PWU, WP, sr(), pf(EP | ER)),
    row("fetch with NXE=0 and SMEP=0: no I/D",    UP, P,          WP,    ux(), pf(EP | EU)),

    // --- SMEP ----------------------------------------------------------------------------
    row("supervisor fetch of user page, SMEP=0",  UP, PWU,        LINUX, sx(), OK),
    row("supervisor fetch of user page, SMEP=1",  UP, PWU,        LINUX | SMEP, sx(), pf(EP | EI)),
    sized("SMEP, PDPTE U=0 makes it supervisor", K4_2M,    [PWU, P | W, PWU], PWU, LINUX | SMEP, sx(), OK),
    row("SMEP does not affect reads",             UP, PWU,        LINUX | SMEP, sr(), OK),
    row("SMEP reports I/D even without NXE",      UP, PWU,        WP | SMEP, sx(), pf(EP | EI)),

    // --- SMAP and EFLAGS.AC --------------------------------------------------------------
    row("supervisor read of user page, SMAP=0",   UP, PWU,        LINUX, sr(), OK),
    row("supervisor read of user page, SMAP AC=0", UP, PWU,       LINUX | SMAP, sr(), pf(EP)),
    row("supervisor read of user page, SMAP AC=1", UP, PWU,       LINUX | SMAP, sr_ac(), OK),
    row("implicit read of user page, SMAP AC=1",  UP, PWU,        LINUX | SMAP, sr_imp(), pf(EP)),
    row("supervisor write of user page, SMAP AC=0", UP, PWU,      LINUX | SMAP, sw(), pf(EP | EW)),
    row("supervisor write of user page, SMAP AC=1", UP, PWU,      LINUX | SMAP, sw_ac(), OK),
    row("supervisor write user RO, SMAP AC=1 WP=1", UP, P | U,    LINUX | SMAP, sw_ac(), pf(EP | EW)),
    row("supervisor write user RO, SMAP AC=1 WP=0", UP, P | U,    NXE | SMAP, sw_ac(), OK),
    row("SMAP does not affect fetches",           UP, PWU,        LINUX | SMAP, sx(), OK),
    row("SMAP does not affect supervisor pages",  UP, P | W,      LINUX | SMAP, sw(), OK),
    row("SMAP does not affect user mode",         UP, PWU,        LINUX | SMAP, ur(), OK),

    // --- reserved bits (P=1 and RSVD=1, also for reads) -----------------------------------
    row("leaf bit MAXPHYADDR (39) set",           UP, PWU | 1 << 39, LINUX, ur(), pf(EP | EU | ER)),
    row("leaf bit 51 set",                        UP, PWU | 1 << 51, LINUX, uw(), pf(EP | EW | EU | ER)),
    row("PML4E bit 45 set",                       [PWU | 1 << 45, PWU, PWU], PWU, LINUX, sr(), pf(EP | ER)),
    row("PS in PML4E",                            [PWU | 1 << 7, PWU, PWU], PWU, LINUX, ur(), pf(EP | EU | ER)),
    row("reserved beats a U/S violation",         UP, P | 1 << 40, LINUX, ur(), pf(EP | EU | ER)),
    row("reserved fetch reports I/D",             UP, PWU | 1 << 39, LINUX, ux(), pf(EP | EU | ER | EI)),
    row("ignored bits 9-11, 52-58 are free",      UP, PWU | 0xe00 | 0x7f << 52, LINUX, uw(), OK),
    row("key bits ignored without PKE",           UP, PWU | 0xf << 59, LINUX, uw(), OK),
    sized("PTE bit 7 is PAT, not reserved",       &[K4], UP, PWU | 1 << 7, LINUX, ur(), OK),
    sized("2M leaf bit 12 is PAT",                &[M2, G1], UP, PWU | 1 << 12, LINUX, ur(), OK),
    sized("2M leaf bit 13 reserved",              &[M2, G1], UP, PWU | 1 << 13, LINUX, ur(), pf(EP | EU | ER)),
    sized("2M leaf bit 20 reserved",              &[M2, G1], UP, PWU | 1 << 20, LINUX, ur(), pf(EP | EU | ER)),
    sized("1G leaf bit 21 reserved",              &[G1], UP, PWU | 1 << 21, LINUX, ur(), pf(EP | EU | ER)),
    sized("1G leaf bit 29 reserved",              &[G1], UP, PWU | 1 << 29, LINUX, sw(), pf(EP | EW | ER)),
    sized("PDE (table) bit 13 is address",        &[K4], UP, PWU, LINUX, ur(), OK),

    // --- protection keys (PKE=1, key 3 in the leaf) ---------------------------------------
    pk("user read, AD3",                          PWU | K3, LINUX | PKE, AD3, ur(), pf(EP | EU | EK)),
    pk("user write, AD3",                         PWU | K3, LINUX | PKE, AD3, uw(), pf(EP | EW | EU | EK)),
    pk("user read, WD3",                          PWU | K3, LINUX | PKE, WD3, ur(), OK),
    pk("user write, WD3",                         PWU | K3, LINUX | PKE, WD3, uw(), pf(EP | EW | EU | EK)),
    pk("user write, WD3, WP=0 (user anyway)",     PWU | K3, NXE | PKE, WD3, uw(), pf(EP | EW | EU | EK)),
    pk("user fetch, AD3: keys skip fetches",      PWU | K3, LINUX | PKE, AD3 | WD3, ux(), OK),
    pk("user read, AD on another key",            PWU | K3, LINUX | PKE, AD5, ur(), OK),
    pk("user write RO page, WD3: P and PK",       P | U | K3, LINUX | PKE, WD3, uw(), pf(EP | EW | EU | EK)),
    pk("user write RO page, no key fault",        P | U | K3, LINUX | PKE, AD5, uw(), pf(EP | EW | EU)),
    pk("supervisor read of user page, AD3",       PWU | K3, LINUX | PKE, AD3, sr(), pf(EP | EK)),
    pk("supervisor write of user page, WD3 WP=1", PWU | K3, LINUX | PKE, WD3, sw(), pf(EP | EW | EK)),
    pk("supervisor write of user page, WD3 WP=0", PWU | K3, NXE | PKE, WD3, sw(), OK),
    pk("supervisor page: keys do not apply",      P | W | K3, LINUX | PKE, AD3 | WD3, sw(), OK),
    pk("PKE=0: PKRU ignored",                     PWU | K3, LINUX, AD3, ur(), OK),
    pk("SMAP and AD3 together",                   PWU | K3, LINUX | PKE | SMAP, AD3, sr(), pf(EP | EK)),
];

/// The mapping every row uses: 1 GiB-aligned virtual and physical bases (so the same row
/// works at every page size), accessed at an offset inside the first 4 KiB.
const VA: u64 = 0x0000_5555_4000_0000;
const PA: u64 = 0x4000_0000;
const OFF: u64 = 0x567;

fn control(bits: u32, pkru: u32, cr3: u64) -> ControlRegs {
    let mut c = ControlRegs::linux_user(cr3, MAXPHYADDR);
    c.cr0 &= !ControlRegs::CR0_WP;
    c.efer &= !ControlRegs::EFER_NXE;
    let on = |b: u32, v: u64| if bits & b != 0 { v } else { 0 };
    c.cr0 |= on(WP, ControlRegs::CR0_WP);
    c.efer |= on(NXE, ControlRegs::EFER_NXE);
    c.cr4 |= on(SMEP, ControlRegs::CR4_SMEP) | on(SMAP, ControlRegs::CR4_SMAP) | on(PKE, ControlRegs::CR4_PKE);
    c.pkru = pkru;
    c
}

#[test]
fn walk_table() {
    let mut failures = Vec::new();
    for r in ROWS {
        for &size in r.sizes {
            let mut t = Tables::new();
            t.map(VA, PA, size, r.leaf, r.upper);
            let ctl = control(r.ctl, r.pkru, t.pml4);
            let got = walk(&mut t.mem, &ctl, VA + OFF, r.acc);
            let ok = match (got, r.expect) {
                (Ok(tr), None) => tr.pa.as_u64() == PA + OFF && tr.size == size,
                (Err(WalkFault::PageFault { addr, code }), Some(want)) => addr == VA + OFF && code.bits() == want,
                _ => false,
            };
            if !ok {
                failures.push(format!("{:?} {}: expected {:?}, got {:?}", size, r.what, r.expect.map(PfErrorCode), got));
            }
        }
    }
    assert!(failures.is_empty(), "{} failing rows:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn non_canonical_is_not_a_page_fault() {
    let mut t = Tables::new();
    let ctl = t.ctl();
    for la in [0x0000_8000_0000_0000u64, 0xffff_7fff_ffff_ffff, 0x1234_0000_0000_0000] {
        assert_eq!(walk(&mut t.mem, &ctl, la, ur()), Err(WalkFault::NonCanonical { addr: la }));
    }
}

#[test]
fn large_page_offsets_and_frames() {
    for (size, level, la_off) in [(K4, Level::Pt, 0xabc), (M2, Level::Pd, 0x1f_fabc), (G1, Level::Pdpt, 0x3fff_fabc)] {
        let mut t = Tables::new();
        // PAT set in the leaf: bit 7 for 4 KiB, bit 12 for large leaves; never part of the address.
        let pat = if size == K4 { 1 << 7 } else { 1 << 12 };
        t.map(VA, PA, size, PWU | pat, UP);
        let ctl = t.ctl();
        let tr = walk(&mut t.mem, &ctl, VA + la_off, ur()).unwrap();
        assert_eq!(tr.pa.as_u64(), PA + la_off, "{size:?}");
        assert_eq!(tr.levels, 5 - level.number(), "{size:?}");
        assert_eq!(tr.leaf.addr(level, MAXPHYADDR).as_u64(), PA, "{size:?}");
        assert!(tr.leaf.pat(level), "{size:?}");
    }
}

#[test]
fn global_needs_pge() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU | G);
    let mut ctl = t.ctl();
    assert!(walk(&mut t.mem, &ctl, VA, ur()).unwrap().global);
    ctl.cr4 &= !ControlRegs::CR4_PGE;
    assert!(!walk(&mut t.mem, &ctl, VA, ur()).unwrap().global);
}

/// The TLB's hit-time check agrees with the walker on every row: after a fill that any
/// present, well-formed mapping allows (a supervisor write with WP, SMAP and PKE off, which
/// also sets D), a lookup under the row's control state hits exactly when the walk succeeds.
#[test]
fn tlb_hit_check_agrees_with_the_table() {
    let mut failures = Vec::new();
    for r in ROWS {
        for &size in r.sizes {
            let mut t = Tables::new();
            t.map(VA, PA, size, r.leaf, r.upper);
            let ctl = control(r.ctl, r.pkru, t.pml4);
            let fill_ctl = control(r.ctl & !(WP | SMAP | PKE), 0, t.pml4);
            let mut tlb = mmu::Tlb::new();
            if tlb.translate(&mut t.mem, &fill_ctl, VA + OFF, sw()).is_err() {
                continue; // not present or reserved: nothing can be cached
            }
            let hit = tlb.lookup(&ctl, VA + OFF, r.acc);
            let want = r.expect.is_none().then_some(PA + OFF);
            if hit != want {
                failures.push(format!("{:?} {}: walk says {:?}, TLB hit gives {:?}", size, r.what, r.expect.map(PfErrorCode), hit));
            }
        }
    }
    assert!(failures.is_empty(), "{} disagreeing rows:\n{}", failures.len(), failures.join("\n"));
}
