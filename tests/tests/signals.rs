//! Signals: handlers and their frames, masks, queueing, waiting, syscall restart, interval
//! timers and fault signals. The guest programs run natively and under pagelab and must
//! print the same; the ones with threads or children also under two vCPUs and the random
//! scheduler.

use emu::SchedPolicy;
use pagelab_tests::*;

/// Guest programs this file tests (see differential.rs::every_program_has_a_test).
const COVERED: &[&str] = &["sig_eintr", "sig_handlers", "sig_segv", "sig_stack_segment"];

#[test]
fn covered_programs_exist() {
    for p in COVERED {
        guest_progs::meta(p);
    }
}

#[test]
fn sig_segv_matches_linux() {
    assert_same_default("sig_segv");
}

/// #SS for non-canonical stack-segment accesses is SIGBUS, #GP is SIGSEGV.
#[test]
fn sig_stack_segment_matches_linux() {
    assert_same_default("sig_stack_segment");
}

#[test]
fn sig_handlers_matches_linux() {
    assert_same_default("sig_handlers");
}

#[test]
fn sig_eintr_matches_linux() {
    assert_same_default("sig_eintr");
}

/// Other machines: 2 vCPUs round-robin, and the seeded random scheduler on 1 and 2 vCPUs.
/// Signals sent to a thread running on another vCPU, timers and stops must give the
/// native transcript under every interleaving.
#[test]
fn signal_programs_under_every_schedule() {
    for prog in COVERED {
        let args = guest_progs::meta(prog).test_args;
        let native = run_native(prog, args);
        for (vcpus, sched, seed) in [(2, SchedPolicy::RoundRobin, 0), (1, SchedPolicy::Random, 3), (2, SchedPolicy::Random, 29)] {
            let cfg = Config { vcpus, sched, seed, ..test_config() };
            let r = try_run_pagelab_with(cfg, prog, args).unwrap();
            assert_eq!(
                r.stdout_str(),
                native.stdout_str(),
                "{prog} on {vcpus} vCPUs, {sched:?} seed {seed}\n{}\nstderr:\n{}",
                first_difference(&native.stdout, &r.stdout),
                r.stderr_str()
            );
            assert_eq!(normalize(&r.outcome), normalize(&native.outcome), "{prog} on {vcpus} vCPUs, {sched:?} seed {seed}");
        }
    }
}

/// A fault nobody handles still ends the run with the fault's address and RIP (the CLI's
/// report), now through the signal-delivery path.
#[test]
fn unhandled_fault_reports_address_and_core() {
    let r = run_pagelab("segv_null", &[]);
    match r.outcome {
        Outcome::Signaled { sig: 11, core: true, fault_addr: Some(0), rip } => assert_ne!(rip, 0),
        o => panic!("segv_null ended {o:?}"),
    }
    let r = run_pagelab("ud", &[]);
    assert!(matches!(r.outcome, Outcome::Signaled { sig: 4, core: true, fault_addr: Some(a), rip } if a == rip), "{:?}", r.outcome);
}
