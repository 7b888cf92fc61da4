//! userfaultfd core (issue 4): the file (creation, UFFDIO_API, REGISTER/UNREGISTER, WAKE,
//! read/poll), MISSING faults with UFFDIO_COPY/ZEROPAGE, uffd-wp, kernel-mode accesses and
//! the non-cooperative events — each guest program verified natively first, then compared
//! with pagelab, also under two vCPUs and the seeded random scheduler (every interleaving
//! must print what Linux prints). The bigger suite is tests/tests/uffd.rs.

use emu::SchedPolicy;
use pagelab_tests::*;

/// Guest programs this file tests (see differential.rs::every_program_has_a_test).
const COVERED: &[&str] = &["uffdcore_api", "uffdcore_missing", "uffdcore_wp"];

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

#[test]
fn uffdcore_wp_matches_linux() {
    assert_same_default("uffdcore_wp");
}

/// The threaded programs under other machine shapes and schedules.
#[test]
fn uffdcore_under_every_schedule() {
    for prog in ["uffdcore_missing", "uffdcore_wp"] {
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

/// The events of a pagelab run of `prog args` around its first userfault message.
fn golden_tokens(prog: &str, args: &[&str]) -> Vec<String> {
    pagelab_tests::golden::tokens(prog, args, 0)
}

/// The four steps of a write to a uffd-wp'd page that is COW-shared with a child (the
/// sequence uffd-wp was designed around), pinned from the trace: (1) the write faults
/// and do_wp_page sends a WP message instead of copying; the thread blocks; (2) the
/// handler reads it and un-protects: the bit goes but R/W stays clear (the page is
/// shared), the TLB is flushed, the thread woken; (3) the retried write faults again;
/// (4) do_wp_page now copies.
#[test]
fn golden_trace_cow_uffd_wp_four_steps() {
    let t = golden_tokens("uffdcore_wp", &["cow"]);
    let from = t.iter().position(|x| x == "decision=uffd_wp").expect("uffd_wp decision") - 1;
    let expect = [
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
        "decision=wp_copy",
    ];
    assert_eq!(&t[from..from + expect.len()], &expect, "tokens: {t:#?}");
}

/// The same for an exclusive page: the resolve makes the PTE writable
/// (can_change_pte_writable), so the retried write does not fault.
#[test]
fn golden_trace_exclusive_resolve_is_writable() {
    let t = golden_tokens("uffdcore_wp", &["excl"]);
    let from = t.iter().position(|x| x == "decision=uffd_wp").expect("uffd_wp decision") - 1;
    let expect = ["fault code=0x7", "decision=uffd_wp", "queued flags=3", "block userfault", "read flags=3", "pte uffd_wp=false writable=true", "change_protection wp=false changed=1 flush=true", "uffd wake", "woken Event"];
    assert_eq!(&t[from..from + expect.len()], &expect, "tokens: {t:#?}");
    assert!(!t[from + expect.len()..].iter().any(|x| x.starts_with("fault code")), "no fault after the resolve: {t:#?}");
}
