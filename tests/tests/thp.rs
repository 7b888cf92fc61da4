//! The issue-10 THP suite: anonymous transparent huge pages. Guest programs
//! `guest-progs/c/thp_*.c` pin what Linux does; their native transcripts (Linux 6.18.44,
//! run as root, THP `enabled: madvise`, `defrag: madvise`, `use_zero_page: 1`, mTHP sizes
//! off, no swap) are committed next to them as `guest-progs/c/<name>.expected`, in the style
//! of tests/tests/uffd_shmem.rs:
//! * `<name>_native` runs only the native side and checks it against the committed
//!   transcript, so a changed host kernel or THP policy shows up here and not as an
//!   emulator bug (the first lines of `thp_fault` print the policy files);
//! * `<name>_pagelab` asserts pagelab prints the committed transcript on every machine
//!   shape (2 and 3 vCPUs with `--check-tlb` among them: a stale 2 MiB TLB entry is the
//!   classic bug here). `thp_wp async` covers WP_ASYNC on a THP.
//!
//! The transcripts are deterministic by construction (each program verified natively 200
//! times or more, half of them with a CPU hog on each core, back to back and in a loop of
//! all eight variants): regions are mapped at a 2 MiB-aligned base inside a PROT_NONE
//! reservation, page indexes are relative to it, pagemap entries are printed as flags and
//! frames only compared with each other (thp.h); a handler thread prints a message and what
//! it will do before it resolves the fault, and the main thread prints the handler's result
//! only once the handler is done with the message. Natively a THP allocation could fail on
//! a fragmented host: the programs then stop with a line "THP NOT AVAILABLE" (exit 4)
//! instead of printing a different transcript. khugepaged (max_ptes_none 511) would collapse
//! a split range of a MADV_HUGEPAGE VMA back: a new process's first THP fault wakes an idle
//! khugepaged to scan it at once, so each program first faults a throw-away THP and waits
//! (up to 50 ms) for that pass to end (thp_khugepaged_settle), after which khugepaged sleeps
//! 10 s; if a pass still collapsed something during the run, a last line "WARNING:
//! khugepaged collapsed" says so. Under pagelab (no khugepaged) neither does anything.
//! `thp_shmem` (shmem/file THPs through MADV_COLLAPSE) was recorded with `shmem_enabled:
//! never` and `hugepages-2048kB/shmem_enabled: inherit` (its first lines), 70 times natively
//! (30 with a CPU hog on each core); its `/proc/meminfo` ShmemHugePages/ShmemPmdMapped lines
//! are deltas against the program's start, so another process collapsing shmem meanwhile
//! would show.
//! `thp_split pageout` was recorded without swap (the native test is skipped on a host with
//! swap; pagelab runs it with `--swap 0`).

use emu::SchedPolicy;
use pagelab_tests::transcript::*;

/// Every guest program this file tests (checked by differential.rs).
const COVERED: &[&str] = &["thp_fault", "thp_split", "thp_wp", "thp_fork", "thp_collapse", "thp_move", "thp_bench", "thp_shmem"];

/// The machine shapes of tests/tests/uffd_shmem.rs: (vCPUs, policy, seed, TLB checking).
const SHAPES: &[Shape] = &[
    (1, SchedPolicy::RoundRobin, 0, false),
    (2, SchedPolicy::RoundRobin, 0, false),
    (2, SchedPolicy::Random, 7, false),
    (1, SchedPolicy::Random, 3, false),
    (2, SchedPolicy::Random, 11, true),
    (3, SchedPolicy::Random, 5, true),
];

#[test]
fn covered_programs_exist_and_have_transcripts() {
    for p in COVERED {
        let m = guest_progs::meta(p);
        assert_eq!(m.expect, guest_progs::Expect::Exit(0), "{p}");
        assert!(!expected_for(p, m.test_args).is_empty(), "{p}");
    }
}

macro_rules! native_test {
    ($name:ident, $prog:literal) => {
        #[test]
        fn $name() {
            native_matches_expected($prog);
        }
    };
}

native_test!(thp_fault_native, "thp_fault");
native_test!(thp_split_native, "thp_split");
native_test!(thp_wp_native, "thp_wp");
native_test!(thp_fork_native, "thp_fork");
native_test!(thp_collapse_native, "thp_collapse");
native_test!(thp_move_native, "thp_move");
native_test!(thp_shmem_native, "thp_shmem");

#[test]
fn thp_fault_pagelab() {
    pagelab_matches_expected("thp_fault", SHAPES);
}

#[test]
fn thp_split_pagelab() {
    pagelab_matches_expected("thp_split", SHAPES);
}

/// MADV_PAGEOUT and MADV_COLD of THPs, recorded on a host without swap; pagelab runs with
/// `--swap 0` to match (with swap it would page the THP out).
#[test]
fn thp_split_native_pageout() {
    if host_has_swap() {
        eprintln!("skipped: thp_split.pageout.expected was recorded on a host without swap");
        return;
    }
    native_matches_expected_with("thp_split", &["pageout"]);
}

#[test]
fn thp_split_pagelab_pageout() {
    let want = expected_for("thp_split", &["pageout"]);
    for &(vcpus, sched, seed, check_tlb) in SHAPES {
        let what = format!("thp_split pageout on {vcpus} vCPU(s), {sched:?} seed {seed}, check_tlb {check_tlb}");
        let cfg = pagelab_tests::Config { vcpus, sched, seed, check_tlb, swap_bytes: 0, ..pagelab_tests::test_config() };
        let emu = pagelab_tests::try_run_pagelab_with(cfg, "thp_split", &["pageout"]).unwrap_or_else(|e| panic!("{what}: {e}"));
        if emu.stdout_str() != want {
            panic!("{what}: stdout differs from Linux's\n{}\n--- pagelab stderr:\n{}", pagelab_tests::first_difference(want.as_bytes(), &emu.stdout), emu.stderr_str());
        }
        assert_eq!(emu.outcome, pagelab_tests::Outcome::Exited(0), "{what}: outcome; stderr:\n{}", emu.stderr_str());
    }
}

#[test]
fn thp_wp_pagelab() {
    pagelab_matches_expected("thp_wp", SHAPES);
}

/// WP_ASYNC on THPs, recorded natively.
#[test]
fn thp_wp_native_async() {
    native_matches_expected_with("thp_wp", &["async"]);
}

#[test]
fn thp_wp_pagelab_async() {
    pagelab_matches_expected_with("thp_wp", &["async"], SHAPES);
}

#[test]
fn thp_fork_pagelab() {
    pagelab_matches_expected("thp_fork", SHAPES);
}

#[test]
fn thp_collapse_pagelab() {
    pagelab_matches_expected("thp_collapse", SHAPES);
}

#[test]
fn thp_move_pagelab() {
    pagelab_matches_expected("thp_move", SHAPES);
}

/// MADV_COLLAPSE of shmem, recorded with shmem_enabled `never` (the transcript's first
/// lines): the oracle for file THPs in pagelab.
#[test]
fn thp_shmem_pagelab() {
    pagelab_matches_expected("thp_shmem", SHAPES);
}

/// The benchmark kernels at small sizes, against their native transcripts
/// (`thp_bench.<args>.expected`): what the README's figures measure.
#[test]
fn thp_bench_native() {
    for args in [&["wp", "8", "2"][..], &["fault", "8"][..]] {
        native_matches_expected_with("thp_bench", args);
    }
}

#[test]
fn thp_bench_pagelab() {
    for args in [&["wp", "8", "2"][..], &["fault", "8"][..]] {
        pagelab_matches_expected_with("thp_bench", args, &SHAPES[..2]);
    }
}
