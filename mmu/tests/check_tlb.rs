//! The TLB checker (`Tlb::set_checking`, `walk_peek`): a hit whose cached entry grants more
//! than the page tables grant now is served (as hardware would) and reported in
//! `Tlb::stale`; a stricter or equal cached entry is not; the check has no side effects on
//! the tables and leaves the statistics as they would be without checking.

mod common;
use common::*;
use mmu::{walk_peek, Access, AccessKind, Level, PageSize, PathEnd, Tlb};

const VA: u64 = 0x0000_7f00_0000_0000;
const PA: u64 = 0x10_0000;
const PA2: u64 = 0x20_0000;

fn acc(kind: AccessKind) -> Access {
    Access::user(kind)
}

/// Fills a checking TLB with `va` mapped `before` (by a write, so D is cached when the page
/// is writable, else a read), rewrites the leaf as `after` with no flush, and does one
/// `kind` access. Returns the stale report, if any.
fn check(before: u64, after: (u64, u64), kind: AccessKind) -> Option<String> {
    let mut t = Tables::new();
    t.map_4k(VA, PA, before);
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.set_checking(true);
    let fill = if before & W != 0 { AccessKind::Write } else { AccessKind::Read };
    tlb.translate(&mut t.mem, &ctl, VA, acc(fill)).expect("the fill succeeds");
    t.map_4k(VA, after.0, after.1);
    let _ = tlb.translate(&mut t.mem, &ctl, VA + 8, acc(kind));
    tlb.stale.take().map(|s| s.to_string())
}

/// One row: what changes, the leaf before, (frame, leaf) after, the access, the expected
/// reason (a substring) or None.
type Case = (&'static str, u64, (u64, u64), AccessKind, Option<&'static str>);

#[test]
fn what_is_stale() {
    use AccessKind::*;
    let rw = PWU | A | D;
    let cases: &[Case] = &[
        ("unchanged", rw, (PA, rw), Write, None),
        ("rights added", P | U | A | NX, (PA, rw), Read, None),
        ("W revoked, read", rw, (PA, P | U | A | D), Read, Some("write permission was revoked")),
        ("W revoked, write", rw, (PA, P | U | A | D), Write, Some("write permission was revoked")),
        ("unmapped", rw, (0, 0), Read, Some("not mapped any more")),
        ("other frame", rw, (PA2, rw), Read, Some("another frame")),
        ("U revoked", rw, (PA, P | W | A | D), Read, Some("user access was revoked")),
        ("NX set, fetch", PWU | A, (PA, PWU | A | NX), Fetch, Some("execute permission was revoked")),
        ("D cleared, write", rw, (PA, PWU | A), Write, Some("dirty bit was cleared")),
        ("D cleared, read: nothing lost", rw, (PA, PWU | A), Read, None),
        ("A cleared: never compared", rw, (PA, PWU | D), Write, None),
    ];
    for (what, before, after, kind, want) in cases {
        let got = check(*before, *after, *kind);
        match (want, &got) {
            (None, None) => {}
            (Some(w), Some(g)) => assert!(g.contains(w), "{what}: {g}"),
            _ => panic!("{what}: expected {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn the_report_names_address_cached_and_current_entry() {
    let r = check(PWU | A | D, (PA, P | U | A | D | NX), AccessKind::Write).unwrap();
    assert!(r.starts_with("write at 0x7f0000000008 hit a stale TLB entry (write permission was revoked)"), "{r}");
    assert!(r.contains("cached 4K translation to frame 0x100000, rights W,U,X,D"), "{r}");
    assert!(r.contains("PTE 0x8000000000100065 (present, frame 0x100000, read-only, user, no-execute, accessed, dirty)"), "{r}");
}

#[test]
fn a_stale_hit_is_served_like_hardware_and_counted_as_a_hit() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU);
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.set_checking(true);
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA, acc(AccessKind::Write)), Ok(PA));
    t.map_4k(VA, PA2, PWU); // remapped, no flush
    let before = t.entry(VA, Level::Pt);
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA, acc(AccessKind::Read)), Ok(PA), "the stale frame");
    assert_eq!(t.entry(VA, Level::Pt), before, "the check walk sets no A/D");
    assert!(tlb.stale.is_some());
    assert_eq!((tlb.stats.hits, tlb.stats.misses, tlb.stats.walks), (1, 1, 1));
}

#[test]
fn flushed_entries_are_not_checked_and_unchecked_mode_reports_nothing() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU);
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.set_checking(true);
    tlb.translate(&mut t.mem, &ctl, VA, acc(AccessKind::Write)).unwrap();
    t.map_4k(VA, PA, P | U);
    tlb.invlpg(&ctl, VA);
    assert!(tlb.translate(&mut t.mem, &ctl, VA, acc(AccessKind::Write)).is_err(), "the walk faults");
    assert!(tlb.stale.is_none());

    let mut plain = Tlb::new();
    t.map_4k(VA, PA, PWU);
    plain.translate(&mut t.mem, &ctl, VA, acc(AccessKind::Write)).unwrap();
    t.map_4k(VA, PA, P | U);
    assert_eq!(plain.translate(&mut t.mem, &ctl, VA, acc(AccessKind::Write)), Ok(PA), "stale, unchecked");
    assert!(plain.stale.is_none());
}

#[test]
fn large_page_fragments_compare_their_own_frame() {
    let mut t = Tables::new();
    t.map(VA, 0x4000_0000, PageSize::Size2M, PWU | A | D, [PWU; 3]);
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.set_checking(true);
    let la = VA + 0x5_3008;
    assert_eq!(tlb.translate(&mut t.mem, &ctl, la, acc(AccessKind::Write)), Ok(0x4005_3008));
    assert_eq!(tlb.translate(&mut t.mem, &ctl, la, acc(AccessKind::Read)), Ok(0x4005_3008));
    assert!(tlb.stale.is_none(), "{:?}", tlb.stale.as_ref().map(|s| s.to_string()));
}

#[test]
fn walk_peek_reads_without_side_effects() {
    let mut t = Tables::new();
    t.map_4k(VA, PA, PWU);
    let ctl = t.ctl();
    let p = walk_peek(&t.mem, &ctl, VA).unwrap();
    assert_eq!(p.end, PathEnd::Leaf);
    assert_eq!((p.used, p.writable, p.user, p.nx), (4, true, true, false));
    assert_eq!(p.last().raw() & (A | D), 0, "no A/D set");
    assert_eq!(walk_peek(&t.mem, &ctl, VA + (1 << 30)).unwrap().end, PathEnd::NotPresent);
    assert!(walk_peek(&t.mem, &ctl, 0x8000_0000_0000).is_none(), "non-canonical");
}

/// A stale large page is caught on a fragment it never cached: the checker compares the
/// fragment a large-page hit installs with the tables too.
#[test]
fn stale_large_page_caught_on_another_fragment() {
    let mut t = Tables::new();
    t.map(VA, 0x4000_0000, PageSize::Size2M, PWU | A | D, [PWU; 3]);
    let ctl = t.ctl();
    let mut tlb = Tlb::new();
    tlb.set_checking(true);
    tlb.translate(&mut t.mem, &ctl, VA, acc(AccessKind::Write)).unwrap();
    // Remapped to another 2 MiB without a flush.
    t.map(VA, 0x6000_0000, PageSize::Size2M, PWU | A | D, [PWU; 3]);
    assert_eq!(tlb.translate(&mut t.mem, &ctl, VA + 0x3000, acc(AccessKind::Read)), Ok(0x4000_3000), "the stale entry is served");
    let s = tlb.stale.take().expect("reported").to_string();
    assert!(s.contains("another frame"), "{s}");
    assert_eq!(tlb.stats.walks, 1, "the checker's walk is not counted");
}
