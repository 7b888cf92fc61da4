//! userfaultfd core (issue 4): the file (creation, UFFDIO_API, REGISTER/UNREGISTER, WAKE,
//! read/poll), MISSING faults with UFFDIO_COPY/ZEROPAGE, uffd-wp, kernel-mode accesses and
//! the non-cooperative events — each guest program verified natively first, then compared
//! with pagelab, also under two vCPUs and the seeded random scheduler (every interleaving
//! must print what Linux prints). The bigger suite is tests/tests/uffd.rs.

use emu::SchedPolicy;
use pagelab_tests::*;

/// Guest programs this file tests (see differential.rs::every_program_has_a_test).
const COVERED: &[&str] = &["uffdcore_api", "uffdcore_missing"];

#[test]
fn covered_programs_exist() {
    for p in COVERED {
        guest_progs::meta(p);
    }
}

#[test]
fn uffdcore_api_matches_linux() {
    assert_same_default("uffdcore_api");
}

#[test]
fn uffdcore_missing_matches_linux() {
    assert_same_default("uffdcore_missing");
}

/// The threaded programs under other machine shapes and schedules.
#[test]
fn uffdcore_under_every_schedule() {
    for prog in ["uffdcore_missing"] {
        let args = guest_progs::meta(prog).test_args;
        let native = run_native(prog, args);
        for (vcpus, sched, seed) in [(2, SchedPolicy::RoundRobin, 0), (1, SchedPolicy::Random, 5), (2, SchedPolicy::Random, 17), (3, SchedPolicy::Random, 99)] {
            let cfg = Config { vcpus, sched, seed, check_tlb: true, ..test_config() };
            let r = try_run_pagelab_with(cfg, prog, args).unwrap();
            assert_eq!(r.stdout_str(), native.stdout_str(), "{prog} on {vcpus} vCPUs {sched:?} seed {seed}: {}", first_difference(&native.stdout, &r.stdout));
            assert_eq!(normalize(&r.outcome), normalize(&native.outcome));
        }
    }
}
