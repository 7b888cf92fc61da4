//! Accessed/dirty updates (SDM 4.8) and TLB semantics (SDM 4.10): stale entries are used until
//! invalidated, globals survive CR3 writes, PCIDs and CR3 bit 63, INVPCID types 0-3, faults
//! are never cached, and a write through a clean entry walks and sets D.

mod common;
use common::*;
use mmu::{walk, Access, AccessKind, ControlRegs, Entry, Level, PageSize, Tlb, WalkFault};

const VA: u64 = 0x0000_7f00_0000_0000;
const VA2: u64 = VA + 0x1000;
const PA: u64 = 0x10_0000;
const PA2: u64 = 0x20_0000;

fn ur() -> Access {
    Access::user(AccessKind::Read)
}
fn uw() -> Access {
    Access::user(AccessKind::Write)
}
const LEVELS: [Level; 4] = [Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt];

// --- A/D ---------------------------------------------------------------------------------

#[test]
fn read_sets_a_everywhere_and_not_d() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU);
    let ctl = t.ctl();
    let tr = walk(&mut t.mem, &ctl, VA, ur()).unwrap();
    for l in LEVELS {
        assert!(t.entry(VA, l).is_accessed(), "{l:?}");
        assert!(!t.entry(VA, l).is_dirty(), "{l:?}");
    }
    assert_eq!(tr.leaf, t.entry(VA, Level::Pt));
    assert!(tr.entries[..4].iter().all(|e| e.is_accessed()));
}

#[test]
fn write_sets_d_in_the_leaf_only() {
    for (size, leaf_level) in [(PageSize::Size4K, Level::Pt), (PageSize::Size2M, Level::Pd), (PageSize::Size1G, Level::Pdpt)] {
        let mut t = Tables::new();
        t.map(VA, 0x4000_0000, size, PWU, [PWU; 3]);
        let ctl = t.ctl();
        walk(&mut t.mem, &ctl, VA, uw()).unwrap();
        for l in LEVELS.into_iter().take(5 - leaf_level.number() as usize) {
            let e = t.entry(VA, l);
            assert!(e.is_accessed(), "{size:?} {l:?}");
            assert_eq!(e.is_dirty(), l == leaf_level, "{size:?} {l:?}: D only in the leaf");
        }
    }
}

#[test]
fn faults_leave_a_and_d_clear() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, P | U); // read-only
    let ctl = t.ctl();
    assert!(walk(&mut t.mem, &ctl, VA, uw()).is_err());
    for l in LEVELS {
        assert_eq!(t.entry(VA, l).raw() & (A | D), 0, "{l:?}: a faulting walk changes nothing");
    }
    // A supervisor write with WP=0 succeeds through R/W=0 and sets D.
    let mut ctl = t.ctl();
    ctl.cr0 &= !ControlRegs::CR0_WP;
    walk(&mut t.mem, &ctl, VA, Access::supervisor(AccessKind::Write)).unwrap();
    assert!(t.entry(VA, Level::Pt).is_dirty());
}

#[test]
fn a_d_updates_keep_other_bits_and_are_idempotent() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU | Entry::SOFTW2 | 5 << 59);
    let ctl = t.ctl();
    walk(&mut t.mem, &ctl, VA, uw()).unwrap();
    let after = t.entry(VA, Level::Pt);
    assert_eq!(after.raw(), PA | PWU | Entry::SOFTW2 | 5 << 59 | A | D);
    walk(&mut t.mem, &ctl, VA, uw()).unwrap();
    assert_eq!(t.entry(VA, Level::Pt), after);
}

// --- TLB -----------------------------------------------------------------------------------

#[test]
fn stale_entry_is_used_until_invlpg() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU);
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA + 8, ur()), Ok(PA + 8));
    // Remap to another frame and make it not present elsewhere: the TLB does not see it.
    t.map_4k(VA, PA2, PWU);
    t.set(VA2, Level::Pt, Entry(0));
    assert_eq!(tlb.lookup(&ctl, VA + 8, ur()), Some(PA + 8));
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA + 8, ur()), Ok(PA + 8));
    let gen = tlb.generation;
    tlb.invlpg(&ctl, VA + 0x123);
    assert!(tlb.generation > gen);
    assert_eq!(tlb.lookup(&ctl, VA + 8, ur()), None);
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA + 8, ur()), Ok(PA2 + 8));
}

#[test]
fn stale_writable_entry_permits_writes_until_flushed() {
    // The uffd-wp case: write-protecting a dirty writable PTE needs a flush before it holds.
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU);
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.translate(&mut t.mem, &ctl, VA, uw()).unwrap();
    let wp = t.entry(VA, Level::Pt).without(W);
    t.set(VA, Level::Pt, wp);
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA, uw()), Ok(PA), "stale RW entry still used");
    mmu::tlb::Flush::page(VA, PageSize::Size4K).apply(&mut tlb);
    let err = tlb.translate(&mut t.mem, &ctl, VA, uw()).unwrap_err();
    assert_eq!(err, WalkFault::PageFault { addr: VA, code: mmu::PfErrorCode(0x7) });
}

#[test]
fn faults_are_not_cached() {
    let mut t = Tables::new();
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    assert!(tlb.translate(&mut t.mem, &ctl, VA, ur()).is_err());
    // Not-present -> present needs no invalidation (SDM 4.10.2.3).
    t.map_4k(VA, PA, PWU);
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA, ur()), Ok(PA));
    // Reserved-bit faults are not cached either.
    t.map_4k(VA2, PA2 | 1 << 45, PWU);
    assert!(tlb.translate(&mut t.mem, &ctl, VA2, ur()).is_err());
    t.map_4k(VA2, PA2, PWU);
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA2, ur()), Ok(PA2));
    assert!(tlb.entries().iter().all(|(_, _, tr)| tr.leaf.is_present()));
}

#[test]
fn write_through_clean_entry_walks_and_sets_d() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU);
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.translate(&mut t.mem, &ctl, VA, ur()).unwrap();
    assert_eq!(tlb.lookup(&ctl, VA, ur()), Some(PA));
    assert_eq!(tlb.lookup(&ctl, VA, uw()), None, "clean leaf: a write must walk");
    let walks = tlb.stats.walks;
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA, uw()), Ok(PA));
    assert_eq!(tlb.stats.walks, walks + 1);
    assert!(t.entry(VA, Level::Pt).is_dirty());
    assert_eq!(tlb.lookup(&ctl, VA, uw()), Some(PA), "now cached dirty");
    // Software clears D: the cached dirty entry keeps being used (SDM 4.8) until invalidated.
    let clean = t.entry(VA, Level::Pt).without(D);
    t.set(VA, Level::Pt, clean);
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA, uw()), Ok(PA));
    assert!(!t.entry(VA, Level::Pt).is_dirty());
}

#[test]
fn hits_check_current_rights() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU | 3 << 59);
    t.map_4k(VA2, PA2, P | W); // supervisor page
    let mut ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.translate(&mut t.mem, &ctl, VA, uw()).unwrap();
    tlb.translate(&mut t.mem, &ctl, VA2, Access::supervisor(AccessKind::Write)).unwrap();
    assert_eq!(tlb.lookup(&ctl, VA2, ur()), None, "user access to a supervisor page");
    // PKRU changes take effect without a flush.
    ctl.cr4 |= ControlRegs::CR4_PKE;
    ctl.pkru = 1 << 7; // WD3
    assert_eq!(tlb.lookup(&ctl, VA, ur()), Some(PA));
    assert_eq!(tlb.lookup(&ctl, VA, uw()), None);
    assert!(matches!(tlb.translate(&mut t.mem, &ctl, VA, uw()), Err(WalkFault::PageFault { code, .. }) if code.bits() == 0x27));
    // SMAP with AC.
    ctl.pkru = 0;
    tlb.translate(&mut t.mem, &ctl, VA, uw()).unwrap();
    ctl.cr4 |= ControlRegs::CR4_SMAP;
    let sr = Access::supervisor(AccessKind::Read);
    assert_eq!(tlb.lookup(&ctl, VA, sr), None);
    assert_eq!(tlb.lookup(&ctl, VA, sr.with_ac(true)), Some(PA));
    assert_eq!(tlb.lookup(&ctl, VA, Access::implicit(AccessKind::Read).with_ac(true)), None);
}

#[test]
fn globals_survive_cr3_writes() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU | G);
    t.map_4k(VA2, PA2, PWU);
    let mut ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.translate(&mut t.mem, &ctl, VA, ur()).unwrap();
    tlb.translate(&mut t.mem, &ctl, VA2, ur()).unwrap();
    let cr3 = ctl.cr3;
    tlb.write_cr3(&mut ctl, cr3);
    assert_eq!(tlb.lookup(&ctl, VA, ur()), Some(PA), "global survives");
    assert_eq!(tlb.lookup(&ctl, VA2, ur()), None, "non-global flushed");
    // INVLPG removes a global entry.
    tlb.invlpg(&ctl, VA);
    assert_eq!(tlb.lookup(&ctl, VA, ur()), None);
    // Toggling PGE flushes globals.
    tlb.translate(&mut t.mem, &ctl, VA, ur()).unwrap();
    let cr4 = ctl.cr4;
    tlb.write_cr4(&mut ctl, cr4 & !ControlRegs::CR4_PGE);
    assert_eq!(tlb.lookup(&ctl, VA, ur()), None);
    // Without PGE, G is not honoured: a CR3 write flushes the entry.
    tlb.translate(&mut t.mem, &ctl, VA, ur()).unwrap();
    tlb.write_cr3(&mut ctl, cr3);
    assert_eq!(tlb.lookup(&ctl, VA, ur()), None);
}

/// CR4.PCIDE=1 over one set of tables mapping VA -> PA and VA2 -> PA2. PCID 1 caches VA, then
/// VA is remapped to PA2 (so PCID 1's entry is stale) and PCID 2 caches VA2. The TLB is
/// direct-mapped, so the two PCIDs use different pages to coexist. Returns both CR3 values.
fn two_pcids() -> (Tables, ControlRegs, Tlb, u64, u64) {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU);
    t.map_4k(VA2, PA2, PWU);
    let mut ctl = t.ctl();
    let mut tlb = Tlb::new();
    let cr4 = ctl.cr4 | ControlRegs::CR4_PCIDE;
    tlb.write_cr4(&mut ctl, cr4);
    let (cr3_a, cr3_b) = (t.cr3(1), t.cr3(2));
    tlb.write_cr3(&mut ctl, cr3_a);
    tlb.translate(&mut t.mem, &ctl, VA, ur()).unwrap();
    t.map_4k(VA, PA2, PWU);
    tlb.write_cr3(&mut ctl, cr3_b);
    tlb.translate(&mut t.mem, &ctl, VA2, ur()).unwrap();
    (t, ctl, tlb, cr3_a, cr3_b)
}

#[test]
fn pcid_tags_and_cr3_bit_63() {
    let (mut t, mut ctl, mut tlb, cr3_a, cr3_b) = two_pcids();
    // Back to PCID 1 without invalidating: its stale translation is still there, and PCID 2's
    // entry does not match PCID 1.
    tlb.write_cr3(&mut ctl, cr3_a | 1 << 63);
    assert_eq!(ctl.cr3, cr3_a, "bit 63 is not stored");
    assert_eq!(ctl.pcid(), 1);
    assert_eq!(tlb.lookup(&ctl, VA, ur()), Some(PA));
    assert_eq!(tlb.lookup(&ctl, VA2, ur()), None);
    // To PCID 2 with bit 63 clear: PCID 2's entries go, PCID 1's stay.
    tlb.write_cr3(&mut ctl, cr3_b);
    assert_eq!(tlb.lookup(&ctl, VA2, ur()), None);
    tlb.write_cr3(&mut ctl, cr3_a | 1 << 63);
    assert_eq!(tlb.lookup(&ctl, VA, ur()), Some(PA));
    // Writing CR3 for PCID 1 with bit 63 clear flushes PCID 1.
    tlb.write_cr3(&mut ctl, cr3_a);
    assert_eq!(tlb.lookup(&ctl, VA, ur()), None);
    // INVLPG only touches the current PCID.
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA, ur()), Ok(PA2));
    tlb.write_cr3(&mut ctl, cr3_b | 1 << 63);
    tlb.invlpg(&ctl, VA);
    tlb.write_cr3(&mut ctl, cr3_a | 1 << 63);
    assert_eq!(tlb.lookup(&ctl, VA, ur()), Some(PA2), "PCID 1 untouched by INVLPG in PCID 2");
    // Clearing PCIDE flushes everything.
    let cr4 = ctl.cr4;
    tlb.write_cr4(&mut ctl, cr4 & !ControlRegs::CR4_PCIDE);
    assert!(tlb.entries().is_empty());
}

#[test]
fn invpcid_types() {
    let cached = |tlb: &Tlb| {
        let mut v: Vec<_> = tlb.entries().iter().map(|(la, pcid, tr)| (*la, *pcid, tr.global)).collect();
        v.sort();
        v
    };
    // PCID 1: VA (non-global), VA2 (global); PCID 2: VA.
    let setup = || {
        let mut t = Tables::new();
        t.map_4k(VA, PA, PWU);
        t.map_4k(VA2, PA2, PWU | G);
        let mut ctl = t.ctl();
        let mut tlb = Tlb::new();
        let cr4 = ctl.cr4 | ControlRegs::CR4_PCIDE;
    tlb.write_cr4(&mut ctl, cr4);
        for pcid in [1, 2] {
            tlb.write_cr3(&mut ctl, t.cr3(pcid));
            tlb.translate(&mut t.mem, &ctl, VA, ur()).unwrap();
        }
        tlb.write_cr3(&mut ctl, t.cr3(1) | 1 << 63);
        tlb.translate(&mut t.mem, &ctl, VA2, ur()).unwrap();
        tlb
    };
    // Direct-mapped: VA's slot holds one PCID at a time, so the PCID-2 fill replaced PCID 1's.
    let all = cached(&setup());
    assert_eq!(all, vec![(VA, 2, false), (VA2, 1, true)]);

    let mut tlb = setup();
    tlb.invpcid(0, 2, VA);
    assert_eq!(cached(&tlb), vec![(VA2, 1, true)], "type 0: one address, one PCID");
    let mut tlb = setup();
    tlb.invpcid(0, 1, VA2);
    assert_eq!(cached(&tlb), all, "type 0 spares globals");
    let mut tlb = setup();
    tlb.invpcid(1, 2, 0);
    assert_eq!(cached(&tlb), vec![(VA2, 1, true)], "type 1: one PCID");
    let mut tlb = setup();
    tlb.invpcid(1, 1, 0);
    assert_eq!(cached(&tlb), all, "type 1 spares globals");
    let mut tlb = setup();
    tlb.invpcid(2, 0, 0);
    assert_eq!(cached(&tlb), vec![], "type 2: everything");
    let mut tlb = setup();
    tlb.invpcid(3, 0, 0);
    assert_eq!(cached(&tlb), vec![(VA2, 1, true)], "type 3: all but globals");
}

#[test]
fn large_page_invalidation_drops_every_fragment() {
    let mut t = Tables::new();
    t.map(VA, 0x4000_0000, PageSize::Size2M, PWU, [PWU; 3]);
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    for off in [0u64, 0x1000, 0x10_0000, 0x1f_f000] {
        assert_eq!(tlb.translate(&mut t.mem, &ctl, VA + off, ur()), Ok(0x4000_0000 + off));
    }
    assert_eq!(tlb.entries().len(), 4);
    assert!(tlb.entries().iter().all(|(_, _, tr)| tr.size == PageSize::Size2M));
    tlb.invlpg(&ctl, VA + 0x5000);
    assert!(tlb.entries().is_empty(), "INVLPG anywhere in a 2 MiB page drops all its fragments");
    for off in [0u64, 0x10_0000] {
        tlb.translate(&mut t.mem, &ctl, VA + off, ur()).unwrap();
    }
    tlb.flush_range(VA + 0x3000, VA + 0x4000);
    assert!(tlb.entries().is_empty(), "a flush of part of a large page drops all of it");
}

#[test]
fn flush_range_and_all() {
    let mut t = Tables::new();
    for i in 0..8 {
        t.map_4k(VA + i * 0x1000, PA + i * 0x1000, PWU | G);
    }
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    for i in 0..8 {
        tlb.translate(&mut t.mem, &ctl, VA + i * 0x1000, ur()).unwrap();
    }
    // Unaligned bounds: every page the range touches goes.
    tlb.flush_range(VA + 0x2800, VA + 0x3801);
    let mut left: Vec<_> = tlb.entries().iter().map(|e| (e.0 - VA) >> 12).collect();
    left.sort();
    assert_eq!(left, vec![0, 1, 4, 5, 6, 7]);
    tlb.flush_range(VA + 0x5000, VA + 0x5000);
    assert_eq!(tlb.entries().len(), 6, "an empty range flushes nothing");
    let f = tlb.stats.flushes;
    tlb.flush_all();
    assert!(tlb.entries().is_empty());
    assert_eq!(tlb.stats.flushes, f + 1);
}

#[test]
fn cr4_smep_set_flushes_current_pcid() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU);
    let mut ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.translate(&mut t.mem, &ctl, VA, ur()).unwrap();
    let cr4 = ctl.cr4;
    tlb.write_cr4(&mut ctl, cr4 | ControlRegs::CR4_SMAP);
    assert_eq!(tlb.entries().len(), 1, "SMAP changes flush nothing");
    tlb.write_cr4(&mut ctl, cr4 | ControlRegs::CR4_SMEP);
    assert!(tlb.entries().is_empty());
}

#[test]
fn stats_count() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU);
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.translate(&mut t.mem, &ctl, VA, ur()).unwrap();
    tlb.translate(&mut t.mem, &ctl, VA, ur()).unwrap();
    let s = tlb.stats;
    assert_eq!((s.hits, s.misses, s.walks, s.fills), (1, 1, 1, 1));
}

#[test]
fn non_canonical_never_hits() {
    let mut t = Tables::new();
    t.map_4k(0x0000_7fff_ffff_f000, PA, PWU);
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.translate(&mut t.mem, &ctl, 0x0000_7fff_ffff_f000, ur()).unwrap();
    assert_eq!(tlb.lookup(&ctl, 0x0000_8000_0000_0000, ur()), None);
    assert_eq!(tlb.translate(&mut t.mem, &ctl, 0x8000_0000_0000, ur()), Err(WalkFault::NonCanonical { addr: 0x8000_0000_0000 }));
}

/// A large page is cached whole as well: after one walk, every other 4 KiB of it is a hit
/// (its fragment installed without a walk), until an invalidation of any part of it.
#[test]
fn large_page_fragments_hit_without_walks() {
    for (size, pa) in [(PageSize::Size2M, 0x4000_0000u64), (PageSize::Size1G, 0x8000_0000)] {
        let mut t = Tables::new();
        t.map(VA, pa, size, PWU, [PWU; 3]);
        let ctl = t.ctl();
        let mut tlb = Tlb::new();
        let offs = [0u64, 0x1000, 0x10_0000, size.bytes() - 0x1000];
        for off in offs {
            assert_eq!(tlb.translate(&mut t.mem, &ctl, VA + off, ur()), Ok(pa + off), "{size:?} {off:#x}");
        }
        let s = tlb.stats;
        assert_eq!((s.walks, s.misses, s.hits), (1, 1, 3), "{size:?}: one walk for the whole page");
        assert_eq!(tlb.entries().len(), 4, "{size:?}: a fragment per 4 KiB used");
        tlb.invlpg(&ctl, VA + 0x5000);
        assert!(tlb.entries().is_empty());
        assert_eq!(tlb.translate(&mut t.mem, &ctl, VA + 0x2000, ur()), Ok(pa + 0x2000));
        assert_eq!(tlb.stats.walks, 2, "{size:?}: INVLPG dropped the whole large page");
        tlb.flush_range(VA + 0x3000, VA + 0x4000);
        tlb.translate(&mut t.mem, &ctl, VA + 0x7000, ur()).unwrap();
        assert_eq!(tlb.stats.walks, 3, "{size:?}: a flush of part of it drops it whole");
        // A write through a clean large page walks (to set D), then hits.
        tlb.translate(&mut t.mem, &ctl, VA + 0x9000, uw()).unwrap();
        assert_eq!(tlb.stats.walks, 4);
        tlb.translate(&mut t.mem, &ctl, VA + 0xa000, uw()).unwrap();
        assert_eq!(tlb.stats.walks, 4, "{size:?}: D is set now for the whole page");
    }
}
