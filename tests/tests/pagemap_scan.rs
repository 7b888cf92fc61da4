//! PAGEMAP_SCAN (the ioctl on /proc/PID/pagemap) together with UFFD_FEATURE_WP_ASYNC, issue 11.
//! The guest program `guest-progs/c/pm_scan.c` pins what Linux does; its native transcript
//! (Linux 6.18.44, run as root, anon THP "madvise", use_zero_page 1, no swap) is committed as
//! `guest-progs/c/pm_scan.expected`, in the style of tests/tests/uffd_shmem.rs:
//! * `pm_scan_native` runs only the native side and checks it against the committed
//!   transcript, so a changed host kernel shows up here and not as an emulator bug;
//! * `pm_scan_pagelab` asserts pagelab prints the committed transcript on every machine
//!   shape.
//!
//! The transcript is deterministic by construction (verified natively 30 times or more, also
//! with a CPU hog on each core): page indexes relative to a 2 MiB-aligned base inside a
//! PROT_NONE reservation, never addresses; only entries the kernel wrote into the output
//! vector are printed (the rest hold a sentinel), walk_end "unwritten" when the arguments
//! were not written back. Natively the THP sections need a free 2 MiB page (exit 4 otherwise).

use emu::SchedPolicy;
use pagelab_tests::transcript::*;

/// Every guest program this file tests (checked by differential.rs).
const COVERED: &[&str] = &["pm_scan"];

/// The machine shapes of tests/tests/uffd.rs: (vCPUs, policy, seed, TLB checking).
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

#[test]
fn pm_scan_native() {
    native_matches_expected("pm_scan");
}

#[test]
fn pm_scan_pagelab() {
    pagelab_matches_expected("pm_scan", SHAPES);
}
