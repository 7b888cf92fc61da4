//! The issue-10 hugetlb suite: MAP_HUGETLB / MFD_HUGETLB memory and its pool. Guest programs
//! `guest-progs/c/htlb_*.c` pin what Linux does; their native transcripts (Linux 6.18.44,
//! run as root, every uffd feature, default huge page size 2 MiB, 1 GiB pages available,
//! `nr_overcommit_hugepages` 0) are committed next to them as
//! `guest-progs/c/<name>.expected`, in the style of tests/tests/thp.rs:
//! * `htlb_basic`: the pool files and reservations, 2 MiB mappings private and shared,
//!   errnos of sizes and alignment, madvise, memfd, fork;
//! * `htlb_uffd`: userfaultfd on 2 MiB hugetlb memory (MISSING, WP, markers, MINOR, fork);
//! * `htlb_1g`: 1 GiB pages, with uffd-wp.
//!
//! The pool. Each program manages the hugetlb pool itself, the same way natively (the host's)
//! and under pagelab (the guest kernel's, whose /proc/sys/vm/nr_hugepages and
//! /sys/kernel/mm/hugepages files it writes): it reads the initial counts and stops with
//! "HUGETLB POOL NOT EMPTY" (exit 4) if a pool is not empty, writes the count it needs and
//! stops with "HUGETLB POOL NOT AVAILABLE" (exit 4) if it did not take, prints the pool
//! state (HugePages_* and Hugetlb of /proc/meminfo, vm.nr_hugepages, the sysfs files,
//! HugetlbPages of /proc/self/status) as it changes, and writes 0 back at the end (and from
//! an atexit handler on any other exit; forked children never do). Natively two programs
//! must never use the host's pool at once, so `run_native` holds an exclusive lock on
//! `/tmp/pagelab-hugetlb.lock` (`pagelab_tests::HUGETLB_LOCK`) for the whole run of an
//! `htlb_*` program, from every test thread and test binary alike (native.rs runs them too),
//! and checks, still under the lock, that the pool is back to empty afterwards (resetting
//! it to 0 and failing if not). The `<name>_native` tests below check that snapshot too.
//!
//! The transcripts are deterministic by construction (each program verified natively 30+
//! times, some runs with a CPU hog on each core): regions are mapped at an aligned base
//! inside a PROT_NONE reservation, page indexes are 4 KiB pages relative to it, pagemap
//! entries are printed as flags and frames only compared with each other, a handler thread
//! prints a message and what it will do before it resolves the fault and the main thread
//! prints the results only once the handler is done, forked children are driven through
//! pipes. `<name>_pagelab` asserts pagelab prints the committed transcript on every machine
//! shape (with `--check-tlb` on 2 and 3 vCPUs among them: a stale huge TLB entry is the
//! classic bug here). `htlb_1g` needs a
//! 1 GiB pool page: its pagelab run uses a guest of 4 GiB instead of `test_config()`'s 1 GiB.

use emu::SchedPolicy;
use pagelab_tests::transcript::*;
use pagelab_tests::{first_difference, hugetlb_pool_is_empty, run_native_hugetlb, Outcome};

/// Every guest program this file tests (checked by differential.rs).
const COVERED: &[&str] = &["htlb_basic", "htlb_uffd", "htlb_1g", "htlb_bench"];

/// The machine shapes of tests/tests/thp.rs: (vCPUs, policy, seed, TLB checking).
const SHAPES: &[Shape] = &[
    (1, SchedPolicy::RoundRobin, 0, false),
    (2, SchedPolicy::RoundRobin, 0, false),
    (2, SchedPolicy::Random, 7, false),
    (1, SchedPolicy::Random, 3, false),
    (2, SchedPolicy::Random, 11, true),
    (3, SchedPolicy::Random, 5, true),
];

/// Guest memory for htlb_1g under pagelab: its 1 GiB pool page and the rest.
const MEM_1G: u64 = 4 << 30;

#[test]
fn covered_programs_exist_and_have_transcripts() {
    for p in COVERED {
        let m = guest_progs::meta(p);
        assert_eq!(m.expect, guest_progs::Expect::Exit(0), "{p}");
        assert!(!expected_for(p, m.test_args).is_empty(), "{p}");
    }
}

/// The native run of `prog` (under the hugetlb lock) prints the committed transcript, exits
/// 0 and leaves the host's pool empty.
fn native_matches(prog: &str) {
    native_matches_args(prog, &[]);
}

/// [`native_matches`] for `prog args` (the transcript `<prog>.<args>.expected`).
fn native_matches_args(prog: &str, args: &[&str]) {
    let want = expected_for(prog, args);
    let (run, pool) = run_native_hugetlb(prog, args);
    assert!(hugetlb_pool_is_empty(&pool), "{prog} left the host's hugetlb pool at {pool:?} (reset to 0)\n{}", run.stdout_str());
    assert_eq!(run.outcome, Outcome::Exited(0), "{prog} natively:\n{}\n{}", run.stdout_str(), run.stderr_str());
    assert!(
        run.stdout_str() == want,
        "{prog}: the native run differs from guest-progs/c/{prog}.expected\n{}",
        first_difference(want.as_bytes(), &run.stdout)
    );
}

#[test]
fn htlb_basic_native() {
    native_matches("htlb_basic");
}

#[test]
fn htlb_uffd_native() {
    native_matches("htlb_uffd");
}

#[test]
fn htlb_1g_native() {
    native_matches("htlb_1g");
}

#[test]
fn htlb_basic_pagelab() {
    pagelab_matches_expected("htlb_basic", SHAPES);
}

#[test]
fn htlb_uffd_pagelab() {
    pagelab_matches_expected("htlb_uffd", SHAPES);
}

#[test]
fn htlb_1g_pagelab() {
    pagelab_matches_expected_from(|| pagelab_tests::Config { mem_bytes: MEM_1G, ..pagelab_tests::test_config() }, "htlb_1g", &[], SHAPES);
}

/// The benchmark kernels at small sizes, against their native transcripts
/// (`htlb_bench.<args>.expected`): what the README's hugetlb figures measure.
#[test]
fn htlb_bench_native() {
    for args in [&["wp", "8", "2"][..], &["fault", "8"][..]] {
        native_matches_args("htlb_bench", args);
    }
}

#[test]
fn htlb_bench_pagelab() {
    for args in [&["wp", "8", "2"][..], &["fault", "8"][..]] {
        pagelab_matches_expected_with("htlb_bench", args, &SHAPES[..2]);
    }
}
