//! Swap and /proc/PID/pagemap: MADV_PAGEOUT, swap PTEs in the x86-64 encoding, swap-in,
//! uffd-wp on swap entries, and the accounting of frames and swap slots.
//!
//! The transcripts of `swap_basic` and `swap_uffd` are compared with Linux. MADV_PAGEOUT
//! only swaps natively when the host has swap configured, so each program's transcript was
//! recorded natively (Linux 6.18.44, with a 64 MiB swap file enabled for the recording) and
//! is committed next to it (`guest-progs/c/<name>.expected`). pagelab must print exactly
//! that; when the host running the tests has swap (a device in /proc/swaps), the native
//! run must print it too, so a changed host kernel shows up as a native mismatch.
//! Nothing in the transcripts depends on where Linux puts a page in swap: they print the
//! swap type (0) but never the offset, and never a PFN.
//!
//! One behaviour the programs avoid on purpose: Linux may keep a page it has only just
//! swapped in resident on the next MADV_PAGEOUT (the folio is not on an LRU list yet; a
//! sleep of a few hundred milliseconds changes the answer), while pagelab always pages it
//! out again. Every pageout in the programs is of pages never swapped in before.

use emu::kernel::mm::swapops::{self, softleaf_from_pte, swp_entry, PteMarker, SoftLeaf};
use emu::machine::Machine;
use emu::{Config, Io, Outcome, SchedPolicy};
use mmu::Entry;
use pagelab_tests::*;

/// Every guest program this file tests (checked by differential.rs).
const COVERED: &[&str] = &["swap_basic", "swap_stress", "swap_uffd"];

#[test]
fn covered_programs_exist() {
    for p in COVERED {
        assert!(guest_progs::meta(p).expect == guest_progs::Expect::Exit(0), "{p}");
    }
}

fn expected(prog: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../guest-progs/c/{prog}.expected"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Whether the host has swap configured (a line after the header of /proc/swaps).
fn host_has_swap() -> bool {
    std::fs::read_to_string("/proc/swaps").is_ok_and(|s| s.lines().count() > 1)
}

fn check_against_linux(prog: &str) {
    let want = expected(prog);
    if host_has_swap() {
        let native = run_native(prog, &[]);
        assert_eq!(native.outcome, Outcome::Exited(0), "{prog} natively: {}", native.stderr_str());
        assert!(native.stdout_str() == want, "{prog}: the native run differs from the committed transcript\n{}", first_difference(want.as_bytes(), &native.stdout));
    } else {
        eprintln!("{prog}: no swap on this host; comparing with the committed native transcript only");
    }
    let emu = run_pagelab(prog, &[]);
    assert!(emu.stdout_str() == want, "{prog} under pagelab\n{}\n--- stderr:\n{}", first_difference(want.as_bytes(), &emu.stdout), emu.stderr_str());
    assert_eq!(emu.outcome, Outcome::Exited(0));
}

#[test]
fn swap_basic_matches_linux() {
    check_against_linux("swap_basic");
}

#[test]
fn swap_uffd_matches_linux() {
    check_against_linux("swap_uffd");
}

#[test]
fn swap_basic_on_several_vcpus_with_tlb_checking() {
    on_several_vcpus_with_tlb_checking("swap_basic");
}

#[test]
fn swap_uffd_on_several_vcpus_with_tlb_checking() {
    on_several_vcpus_with_tlb_checking("swap_uffd");
}

fn on_several_vcpus_with_tlb_checking(prog: &str) {
    {
        let want = expected(prog);
        for (vcpus, seed) in [(2, 1), (3, 7)] {
            let cfg = Config { vcpus, sched: SchedPolicy::Random, seed, check_tlb: true, ..test_config() };
            let r = try_run_pagelab_with(cfg, prog, &[]).unwrap_or_else(|e| panic!("{prog} on {vcpus} vCPUs: {e}"));
            assert!(r.stdout_str() == want, "{prog} on {vcpus} vCPUs seed {seed}\n{}", first_difference(want.as_bytes(), &r.stdout));
        }
    }
}

/// swap_stress prints nothing that depends on where pages are, so it is compared with a
/// native run directly (with or without host swap), then under several machines: 2-3
/// vCPUs with random schedules and TLB checking, no swap, and a device of three slots that
/// is full most of the time. Every frame and slot comes back at exit.
#[test]
fn swap_stress_matches_linux_on_every_machine() {
    let (native, _) = assert_same("swap_stress", &["3000", "7"]);
    for seed in [1, 2] {
        let cfg = Config { vcpus: 2 + seed as usize % 2, sched: SchedPolicy::Random, seed, check_tlb: true, ..test_config() };
        let r = try_run_pagelab_with(cfg, "swap_stress", &["3000", "7"]).unwrap();
        assert!(r.stdout == native.stdout, "seed {seed}\n{}", first_difference(&native.stdout, &r.stdout));
    }
    for swap_bytes in [0, 4 << 12] {
        let r = try_run_pagelab_with(Config { swap_bytes, ..test_config() }, "swap_stress", &["3000", "7"]).unwrap();
        assert!(r.stdout == native.stdout, "swap {swap_bytes}\n{}", first_difference(&native.stdout, &r.stdout));
    }
    for (swap_bytes, vcpus) in [(256 << 20, 1), (4 << 12, 2)] {
        let mut m = machine(swap_bytes, vcpus);
        let argv: Vec<String> = ["swap_stress", "3000", "7"].iter().map(|s| s.to_string()).collect();
        m.load(&guest_progs::path("swap_stress"), &argv, &["LANG=C".to_string()]).expect("load");
        m.run().expect("run");
        assert_eq!(m.kernel.outcome, Some(Outcome::Exited(0)));
        assert_eq!(m.hw.pages.allocated, 0, "swap_stress leaked {} frames", m.hw.pages.allocated);
        assert_eq!(m.hw.swap.inuse(), 0, "swap_stress leaked {} swap slots", m.hw.swap.inuse());
    }
}

/// The trace of swap_uffd's page 0 shows the swap sequence step by step: paged out while
/// protected; a read faults (code 4) and swaps it in with `_PAGE_UFFD_WP` and R/W clear,
/// without a message; the write then faults (code 7), do_wp_page decides `uffd_wp`, one
/// message is queued (flags WRITE|WP) and read, and the handler's resolve makes it
/// writable.
#[test]
fn trace_shows_swap_in_then_one_wp_message() {
    let buf = SharedBuf::new();
    let cfg = Config { trace: Some(Box::new(buf.clone())), ..test_config() };
    let r = try_run_pagelab_with(cfg, "swap_uffd", &[]).unwrap();
    assert!(r.stdout_str().contains("messages after the write of 0: 1 [page 0 flags WRITE WP]"), "{}", r.stdout_str());
    let trace = String::from_utf8(buf.contents()).unwrap();
    let pageout = trace.lines().find(|l| l.contains(r#""kind":"swap""#)).expect("a pageout event");
    let start = pageout.split(r#""start":""#).nth(1).and_then(|x| x.split('"').next()).unwrap().to_string();
    let page: Vec<&str> = trace.lines().filter(|l| l.contains(&start) && !l.contains(r#""kind":"walk""#) && !l.contains(r#""kind":"tlb""#)).collect();
    let pte_of = |l: &str| u64::from_str_radix(l.split(r#""pte":"0x"#).nth(1).unwrap().split('"').next().unwrap(), 16).unwrap();
    let find = |from: usize, pat: &str| page[from..].iter().position(|l| l.contains(pat)).map(|i| i + from).unwrap_or_else(|| panic!("no {pat} after line {from} in\n{}", page.join("\n")));
    let a = find(0, r#""message":"pageout""#);
    let b = find(a, r#""code":"0x4""#);
    let c = find(b, r#""decision":"swap_in""#);
    let pte = pte_of(page[c]);
    assert!(pte & 0x400 != 0 && pte & 0x2 == 0, "swap-in PTE {pte:#x}: uffd-wp set, R/W clear");
    let d = find(c, r#""code":"0x7""#);
    assert!(!page[c..d].iter().any(|l| l.contains("message queued")), "a read raised a message");
    let e = find(d, r#""decision":"uffd_wp""#);
    let f = find(e, r#""message":"message queued""#);
    assert!(page[f].contains(r#""flags":3"#), "{}", page[f]);
    let g = find(f, r#""message":"message read""#);
    let h = find(g, r#""message":"change_pte""#);
    assert!(page[h].contains(r#""uffd_wp":false"#) && page[h].contains(r#""writable":true"#), "{}", page[h]);
    assert_eq!(page[..h].iter().filter(|l| l.contains("message queued")).count(), 1);
}

/// Without swap (`--swap 0`), MADV_PAGEOUT succeeds and leaves the pages resident, as on
/// Linux without a swap device (checked natively before a swap file was enabled).
#[test]
fn without_swap_pageout_leaves_pages_resident() {
    let r = try_run_pagelab_with(Config { swap_bytes: 0, ..test_config() }, "swap_basic", &[]).unwrap();
    let out = r.stdout_str();
    assert!(out.contains("pageout: ok\nafter pageout                0:px 1:px 2:px 3:px 4:px 5:p 6:- 7:-\n"), "{out}");
}

fn machine(swap_bytes: u64, vcpus: usize) -> Machine {
    let io = Io { stdin: Box::new(std::io::empty()), stdout: Box::new(std::io::sink()), stderr: Box::new(std::io::sink()) };
    Machine::new(&Config { mem_bytes: 512 << 20, swap_bytes, vcpus, ..Config::default() }, io, [false; 3])
}

fn run_machine(mut m: Machine, prog: &str) -> Machine {
    m.load(&guest_progs::path(prog), &[prog.to_string()], &["LANG=C".to_string()]).expect("load");
    m.run().expect("run");
    m
}

/// Every frame and every swap slot is returned when the processes exit: swap entries
/// left in the page tables (the parent's and a forked child's, sharing a slot), moved by
/// mremap, zapped by DONTNEED and munmap. Also with a device that fills up after three
/// pages (the rest of each pageout stays resident).
#[test]
fn frames_and_swap_slots_are_freed_at_exit() {
    frames_and_slots_freed("swap_basic");
}

#[test]
fn frames_and_swap_slots_are_freed_at_exit_with_uffd() {
    frames_and_slots_freed("swap_uffd");
}

fn frames_and_slots_freed(prog: &str) {
    {
        for (swap_bytes, vcpus) in [(256 << 20, 1), (256 << 20, 2), (4 << 12, 1)] {
            let m = run_machine(machine(swap_bytes, vcpus), prog);
            assert!(matches!(m.kernel.outcome, Some(Outcome::Exited(_))), "{prog}: {:?}", m.kernel.outcome);
            assert_eq!(m.hw.pages.allocated, 0, "{prog} (swap {swap_bytes}) leaked {} frames", m.hw.pages.allocated);
            assert_eq!(m.hw.swap.inuse(), 0, "{prog} (swap {swap_bytes}) leaked {} swap slots", m.hw.swap.inuse());
        }
    }
}

// ---- The encoding (reference §2.3-2.5) ----

#[test]
fn swap_pte_encoding_is_linux_x86_64() {
    // type 0, offset 8: ~8 in bits 58:9.
    let pte = swapops::swp_entry_to_pte(swp_entry(0, 8));
    assert_eq!(pte.raw(), 0x07FF_FFFF_FFFF_EE00);
    assert_eq!(swapops::pte_swp_mkuffd_wp(pte).raw(), 0x07FF_FFFF_FFFF_EE04);
    assert_eq!(swapops::pte_swp_mkexclusive(pte).raw(), 0x07FF_FFFF_FFFF_EE08);
    // The flag bits do not change the entry.
    let both = swapops::pte_swp_mkexclusive(swapops::pte_swp_mkuffd_wp(pte));
    assert_eq!(softleaf_from_pte(both), SoftLeaf::Swap { entry: swp_entry(0, 8), uffd_wp: true, exclusive: true });
    assert_eq!(swapops::pte_swp_clear_uffd_wp(both), swapops::pte_swp_mkexclusive(pte));
    // Not present, not PROT_NONE, not a huge PMD: bits 0, 7 and 8 clear.
    assert_eq!(pte.raw() & 0x181, 0);
    assert_eq!(softleaf_from_pte(Entry::new(0)), SoftLeaf::None);
    // PROT_NONE entries are present to Linux, not swap entries.
    assert_eq!(softleaf_from_pte(Entry::new(0x100 | 0x4 | 0x1234_5000)), SoftLeaf::ProtNone);
    // Round trips over the whole type and offset range: swap devices, migration, markers.
    for ty in [0, 1, 27, 28, 30, 31] {
        for off in [0, 1, 0x5, 0x1234, (1 << 50) - 2] {
            let e = swp_entry(ty, off);
            let pte = swapops::swp_entry_to_pte(e);
            let expect = match ty {
                0..28 => SoftLeaf::Swap { entry: e, uffd_wp: false, exclusive: false },
                28..31 => SoftLeaf::Migration { entry: e, uffd_wp: false },
                _ => SoftLeaf::Marker(PteMarker::from_bits_truncate(off)),
            };
            assert_eq!(softleaf_from_pte(pte), expect, "type {ty} offset {off:#x}");
            assert_eq!(pte.raw() >> 59, ty);
        }
    }
}

#[test]
fn pte_markers_fit_the_same_space() {
    assert_eq!(swapops::make_pte_marker(PteMarker::UFFD_WP).raw(), 0xFFFF_FFFF_FFFF_FC00);
    assert_eq!(swapops::make_pte_marker(PteMarker::POISONED).raw(), 0xFFFF_FFFF_FFFF_FA00);
    assert_eq!(swapops::make_pte_marker(PteMarker::GUARD).raw(), 0xFFFF_FFFF_FFFF_F600);
    let m = swapops::make_pte_marker(PteMarker::UFFD_WP);
    assert_eq!(softleaf_from_pte(m), SoftLeaf::Marker(PteMarker::UFFD_WP));
    assert_eq!(swapops::make_pte_marker_entry(PteMarker::UFFD_WP), swp_entry(swapops::SWP_PTE_MARKER, 1));
    // uffd-wp "in any form": bit 2 of a swap entry, or the marker bit (never bit 2).
    assert!(swapops::pte_swp_uffd_wp_any(m));
    assert_eq!(m.raw() & swapops::_PAGE_SWP_UFFD_WP, 0);
    assert!(swapops::pte_swp_uffd_wp_any(swapops::pte_swp_mkuffd_wp(swapops::swp_entry_to_pte(swp_entry(0, 1)))));
    assert!(!swapops::pte_swp_uffd_wp_any(swapops::swp_entry_to_pte(swp_entry(0, 1))));
    // Clearing uffd-wp in any form (mremap without EVENT_REMAP).
    assert_eq!(swapops::pte_clear_uffd_wp_any(m).raw(), 0);
    let wp_swap = swapops::pte_swp_mkuffd_wp(swapops::swp_entry_to_pte(swp_entry(0, 1)));
    assert_eq!(swapops::pte_clear_uffd_wp_any(wp_swap), swapops::swp_entry_to_pte(swp_entry(0, 1)));
    let poison_wp = swapops::make_pte_marker(PteMarker::POISONED | PteMarker::UFFD_WP);
    assert_eq!(swapops::pte_clear_uffd_wp_any(poison_wp).raw(), 0xFFFF_FFFF_FFFF_FA00);
    assert_eq!(swapops::pte_clear_uffd_wp_any(Entry::new(0x8000_0000_0012_3425)).raw(), 0x8000_0000_0012_3025);
}
