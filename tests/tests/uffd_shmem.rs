//! The issue-9 suite: file-backed memory, shmem/memfd, PTE markers, MINOR faults and
//! UFFDIO_CONTINUE, UFFD_FEATURE_WP_UNPOPULATED and fault-around. Guest programs
//! `guest-progs/c/shm_*.c` and `uffd_unpopulated.c` pin what Linux does; their native
//! transcripts (Linux 6.18.44, run as root, /dev/shm a tmpfs) are committed next to them as
//! `guest-progs/c/<name>.expected`, in the style of tests/tests/uffd.rs:
//! * `<name>_native` runs only the native side and checks it against the committed
//!   transcript, so a changed host kernel shows up here and not as an emulator bug;
//! * `<name>_pagelab` asserts pagelab prints the committed transcript on every machine shape.
//!   pagelab does not implement these features yet: each such test carries
//!   `#[ignore = "issue 9: needs <feature>"]` until it does.
//!
//! The transcripts are deterministic by construction (each verified natively 25 times or
//! more, also with a CPU hog on each core): page indexes relative to a region, never
//! addresses; regions start 2 MiB-aligned (so fault-around windows land on the same page
//! indexes); a monitor prints a message before it resolves the fault, a faulting thread's
//! result is printed only after its access completed; "asleep" is a completion flag still
//! clear after 100 ms while the thread is blocked in the kernel. Natively the programs need
//! /dev/shm to be a tmpfs (`shm_memfd`, `shm_errno`) and read /proc/self/exe (`shm_faultaround`,
//! `shm_errno`).

use emu::SchedPolicy;
use pagelab_tests::transcript::*;

/// Every guest program this file tests (checked by differential.rs).
const COVERED: &[&str] = &[
    "shm_memfd",
    "shm_faultaround",
    "shm_markers",
    "shm_minor",
    "shm_missing",
    "uffd_unpopulated",
    "shm_fork",
    "shm_mremap",
    "shm_errno",
    "shm_bench",
];

/// The machine shapes of tests/tests/uffd.rs: (vCPUs, policy, seed, TLB checking).
const SHAPES: &[Shape] = &[
    (1, SchedPolicy::RoundRobin, 0, false),
    (2, SchedPolicy::RoundRobin, 0, false),
    (2, SchedPolicy::Random, 7, false),
    (1, SchedPolicy::Random, 3, false),
    (2, SchedPolicy::Random, 11, true),
];

/// `shm_bench` runs with small sizes, each with a committed transcript
/// (`shm_bench.<args joined by '_'>.expected`): the measured operation, and the REPS = 0 /
/// N = 0 baselines a timing comparison subtracts.
const BENCH_CASES: &[&[&str]] = &[
    &["marker-protect", "4"],
    &["marker-protect", "4", "0"],
    &["marker-unprotect", "4", "2"],
    &["minor-continue", "64"],
    &["minor-continue", "64", "10"],
    &["minor-continue", "16", "0"],
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

native_test!(shm_memfd_native, "shm_memfd");
native_test!(shm_faultaround_native, "shm_faultaround");
native_test!(shm_markers_native, "shm_markers");
native_test!(shm_minor_native, "shm_minor");
native_test!(shm_missing_native, "shm_missing");
native_test!(uffd_unpopulated_native, "uffd_unpopulated");
native_test!(shm_fork_native, "shm_fork");
native_test!(shm_mremap_native, "shm_mremap");
native_test!(shm_errno_native, "shm_errno");

#[test]
fn shm_memfd_pagelab() {
    pagelab_matches_expected("shm_memfd", SHAPES);
}

#[test]
fn shm_faultaround_pagelab() {
    pagelab_matches_expected("shm_faultaround", SHAPES);
}

#[test]
#[ignore = "issue 9: needs uffd-wp on shmem (PTE markers)"]
fn shm_markers_pagelab() {
    pagelab_matches_expected("shm_markers", SHAPES);
}

#[test]
#[ignore = "issue 9: needs uffd-wp on shmem for CONTINUE_MODE_WP (MINOR and CONTINUE work)"]
fn shm_minor_pagelab() {
    pagelab_matches_expected("shm_minor", SHAPES);
}

#[test]
#[ignore = "issue 9: needs uffd-wp markers on shmem (MISSING, COPY and ZEROPAGE into the page cache work)"]
fn shm_missing_pagelab() {
    pagelab_matches_expected("shm_missing", SHAPES);
}

#[test]
#[ignore = "issue 9: needs UFFD_FEATURE_WP_UNPOPULATED"]
fn uffd_unpopulated_pagelab() {
    pagelab_matches_expected("uffd_unpopulated", SHAPES);
}

#[test]
#[ignore = "issue 9: needs uffd-wp on shmem across fork (markers, EVENT_FORK)"]
fn shm_fork_pagelab() {
    pagelab_matches_expected("shm_fork", SHAPES);
}

#[test]
#[ignore = "issue 9: needs uffd-wp on shmem across mremap and mprotect"]
fn shm_mremap_pagelab() {
    pagelab_matches_expected("shm_mremap", SHAPES);
}

#[test]
#[ignore = "issue 9: needs shmem and file registration, UFFDIO_CONTINUE and UFFDIO_POISON"]
fn shm_errno_pagelab() {
    pagelab_matches_expected("shm_errno", SHAPES);
}

#[test]
fn shm_bench_native() {
    for args in BENCH_CASES {
        native_matches_expected_with("shm_bench", args);
    }
}

#[test]
#[ignore = "issue 9: needs uffd-wp markers on shmem and MINOR faults with UFFDIO_CONTINUE"]
fn shm_bench_pagelab() {
    for args in BENCH_CASES {
        pagelab_matches_expected_with("shm_bench", args, &SHAPES[..3]);
    }
}
