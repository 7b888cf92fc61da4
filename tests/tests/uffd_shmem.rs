//! The issue-9 suite: file-backed memory, shmem/memfd, PTE markers, MINOR faults and
//! UFFDIO_CONTINUE, UFFD_FEATURE_WP_UNPOPULATED and fault-around. Guest programs
//! `guest-progs/c/shm_*.c` and `uffd_unpopulated.c` pin what Linux does; their native
//! transcripts (Linux 6.18.44, run as root, /dev/shm a tmpfs) are committed next to them as
//! `guest-progs/c/<name>.expected`, in the style of tests/tests/uffd.rs:
//! * `<name>_native` runs only the native side and checks it against the committed
//!   transcript, so a changed host kernel shows up here and not as an emulator bug;
//! * `<name>_pagelab` asserts pagelab prints the committed transcript on every machine shape.
//!   The full `shm_errno` table includes the WP_ASYNC registrations (any file mapping
//!   with exactly MODE_WP); `shm_errno no-async` leaves those rows out.
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
    (3, SchedPolicy::Random, 5, true),
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
fn shm_markers_pagelab() {
    pagelab_matches_expected("shm_markers", SHAPES);
}

#[test]
fn shm_minor_pagelab() {
    pagelab_matches_expected("shm_minor", SHAPES);
}

#[test]
fn shm_missing_pagelab() {
    pagelab_matches_expected("shm_missing", SHAPES);
}

#[test]
fn uffd_unpopulated_pagelab() {
    pagelab_matches_expected("uffd_unpopulated", SHAPES);
}

#[test]
fn shm_fork_pagelab() {
    pagelab_matches_expected("shm_fork", SHAPES);
}

#[test]
fn shm_mremap_pagelab() {
    pagelab_matches_expected("shm_mremap", SHAPES);
}

/// Seed patch 003's path, pinned from the trace: a write to a uffd-wp marker over a
/// page-cache hole (`shm_markers`' second message, "write to a marker over a hole") faults
/// the page in write-protected (do_shared_fault → finish_fault keeping the marker's
/// protection), the retried write faults again and do_wp_page raises the WP message; the
/// writer blocks; the monitor reads it and un-protects (the PTE stays read-only: a shared
/// VMA gets no writable upgrade); the writer is woken, its write faults once more and
/// wp_page_shared makes the PTE writable; the write lands (the transcript shows it in the
/// file).
#[test]
fn golden_trace_write_to_marker() {
    let t = pagelab_tests::golden::tokens("shm_markers", &[], 1);
    let from = t.iter().position(|x| x == "decision=uffd_wp_marker").expect("a fault on the marker") - 1;
    let expect = [
        "fault code=0x6",
        "decision=uffd_wp_marker",
        "decision=shmem_page",
        "fault code=0x7",
        "decision=uffd_wp",
        "queued flags=3",
        "block userfault",
        "read flags=3",
        "pte uffd_wp=false writable=false",
        "change_protection wp=false changed=1 flush=true",
        "uffd wake",
        "woken Event",
        "fault code=0x7",
        "decision=wp_shared",
    ];
    assert_eq!(&t[from..from + expect.len()], &expect, "tokens: {t:#?}");
}

/// The errno table without its WP_ASYNC rows (`shm_errno no-async`, recorded natively
/// too): everything issue 9 covers.
#[test]
fn shm_errno_native_no_async() {
    native_matches_expected_with("shm_errno", &["no-async"]);
}

#[test]
fn shm_errno_pagelab_no_async() {
    pagelab_matches_expected_with("shm_errno", &["no-async"], SHAPES);
}

/// The whole table, WP_ASYNC registrations included.
#[test]
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
fn shm_bench_pagelab() {
    for args in BENCH_CASES {
        pagelab_matches_expected_with("shm_bench", args, &SHAPES[..3]);
    }
}
