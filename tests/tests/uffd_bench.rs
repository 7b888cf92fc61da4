//! The issue-4 benchmark program `uffd_bench` (WRITEPROTECT protect/un-protect of a
//! populated range, uffd-wp fault and MISSING + UFFDIO_COPY round trips with a handler
//! thread): its transcript (counts and checksums) is the same natively and under pagelab
//! with small sizes, including the REPS = 0 / N = 0 baselines `pagelab-compare` subtracts.
//! The timings themselves are measured by `pagelab-compare` and `emu/benches/uffd.rs`.

use emu::SchedPolicy;
use pagelab_tests::*;

/// Every guest program this file tests (checked by differential.rs).
const COVERED: &[&str] = &["uffd_bench"];

const CASES: &[&[&str]] = &[
    &["wp-protect", "2"],
    &["wp-protect", "1", "3"],
    &["wp-protect", "1", "0"],
    &["wp-unprotect", "2"],
    &["wp-unprotect", "1", "2"],
    &["wp-unprotect", "1", "0"],
    &["wp-fault", "64"],
    &["wp-fault", "64", "10"],
    &["wp-fault", "16", "0"],
    &["missing-copy", "64"],
    &["missing-copy", "64", "10"],
    &["missing-copy", "16", "0"],
];

#[test]
fn covered_programs_exist() {
    for p in COVERED {
        assert!(guest_progs::try_path(p).is_some(), "{p}");
    }
}

#[test]
fn uffd_bench_same_as_native() {
    for args in CASES {
        let (native, _) = assert_same("uffd_bench", args);
        assert!(!native.stdout.is_empty(), "{args:?}");
    }
}

/// The fault modes on two vCPUs (the handler and the worker then run in parallel) and with
/// the random scheduler and TLB checking.
#[test]
fn uffd_bench_faults_on_two_vcpus() {
    for args in [&["wp-fault", "64"][..], &["missing-copy", "64"][..], &["wp-protect", "1", "2"][..]] {
        let native = run_native("uffd_bench", args);
        for (vcpus, sched, seed, check_tlb) in [(2, SchedPolicy::RoundRobin, 0, false), (2, SchedPolicy::Random, 5, true)] {
            let cfg = Config { vcpus, sched, seed, check_tlb, ..test_config() };
            let emu = try_run_pagelab_with(cfg, "uffd_bench", args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(native.stdout_str(), emu.stdout_str(), "{args:?} on {vcpus} vCPUs {sched:?}; stderr {}", emu.stderr_str());
            assert_eq!(normalize(&native.outcome), normalize(&emu.outcome), "{args:?}");
        }
    }
}
