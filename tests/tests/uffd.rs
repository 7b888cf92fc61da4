//! The userfaultfd suite (issue 4): guest programs `guest-progs/c/uffd_*.c` that pin Linux's
//! userfaultfd and uffd-wp behaviour on private anonymous memory, run natively and under
//! pagelab.
//!
//! Every program's native transcript (Linux 6.18.44, run as root) is committed next to it as
//! `guest-progs/c/<name>.expected`. Two kinds of tests use it:
//! * `<name>_native` runs only the native side and checks it against the committed transcript,
//!   so the suite pins Linux's behaviour even where pagelab is not there yet (a changed host
//!   kernel shows up here, not as an emulator bug);
//! * `<name>_pagelab` runs pagelab and asserts its transcript equals the native one (and the
//!   committed one); the multi-threaded programs also run on 2 vCPUs, round-robin and with
//!   the seeded random scheduler. A test that fails because a feature is missing carries
//!   `#[ignore = "issue 4: needs <feature>"]`.
//!
//! The transcripts are deterministic by construction (verified natively 25 times under a
//! CPU-hog load): page indexes relative to a region, never addresses; a handler prints a
//! message before it resolves the fault, a faulting thread prints only after its access
//! completed; "still asleep" is a completion flag still clear after 100 ms while the thread
//! is blocked in the kernel.
//!
//! `uffd_swap` needs a swap device: natively, without one, it prints a single "no swap
//! device" line and stops, so its native test compares with `uffd_swap.expected` only when
//! /proc/swaps lists a device; the transcript was recorded with a 64 MiB swap file. pagelab
//! always has its emulated swap device and is compared with the committed transcript.

use emu::SchedPolicy;
use pagelab_tests::transcript::*;
use pagelab_tests::*;

/// Every guest program this file tests (checked by differential.rs).
const COVERED: &[&str] = &[
    "uffd_workflow",
    "uffd_cow",
    "uffd_missing_wp",
    "uffd_fork",
    "uffd_mprotect",
    "uffd_swap",
    "uffd_wake",
    "uffd_signal",
    "uffd_kernel",
    "uffd_events",
    "uffd_errno",
    "uffd_tlb",
];

/// Machine shapes every program runs on: (vCPUs, policy, seed, TLB checking). The last one
/// checks on two vCPUs that no stale TLB entry survives an ioctl or fault (e.g. that
/// UFFDIO_WRITEPROTECT flushes before it returns).
const SHAPES: &[(usize, SchedPolicy, u64, bool)] = &[
    (1, SchedPolicy::RoundRobin, 0, false),
    (2, SchedPolicy::RoundRobin, 0, false),
    (2, SchedPolicy::Random, 7, false),
    (1, SchedPolicy::Random, 3, false),
    (2, SchedPolicy::Random, 11, true),
];

#[test]
fn covered_programs_exist_and_have_transcripts() {
    for p in COVERED {
        assert_eq!(guest_progs::meta(p).expect, Expect::Exit(0), "{p}");
        assert!(!expected(p).is_empty(), "{p}");
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

native_test!(uffd_workflow_native, "uffd_workflow");
native_test!(uffd_cow_native, "uffd_cow");
native_test!(uffd_missing_wp_native, "uffd_missing_wp");
native_test!(uffd_fork_native, "uffd_fork");
native_test!(uffd_mprotect_native, "uffd_mprotect");
native_test!(uffd_wake_native, "uffd_wake");
native_test!(uffd_signal_native, "uffd_signal");
native_test!(uffd_kernel_native, "uffd_kernel");
native_test!(uffd_events_native, "uffd_events");
native_test!(uffd_errno_native, "uffd_errno");
native_test!(uffd_tlb_native, "uffd_tlb");

#[test]
fn uffd_swap_native() {
    if host_has_swap() {
        native_matches_expected("uffd_swap");
    } else {
        let native = run_native("uffd_swap", &[]);
        assert_eq!(native.stdout_str(), "no swap device: MADV_PAGEOUT cannot swap here\n");
        eprintln!("uffd_swap: no swap on this host; pagelab is compared with the committed transcript only");
    }
}

#[test]
fn uffd_workflow_pagelab() {
    pagelab_matches_expected("uffd_workflow", SHAPES);
}

#[test]
fn uffd_cow_pagelab() {
    pagelab_matches_expected("uffd_cow", SHAPES);
}

#[test]
fn uffd_missing_wp_pagelab() {
    pagelab_matches_expected("uffd_missing_wp", SHAPES);
}

#[test]
fn uffd_fork_pagelab() {
    pagelab_matches_expected("uffd_fork", SHAPES);
}

#[test]
fn uffd_mprotect_pagelab() {
    pagelab_matches_expected("uffd_mprotect", SHAPES);
}

#[test]
fn uffd_swap_pagelab() {
    pagelab_matches_expected("uffd_swap", SHAPES);
}

#[test]
fn uffd_wake_pagelab() {
    pagelab_matches_expected("uffd_wake", SHAPES);
}

#[test]
fn uffd_wake_fdinfo_native() {
    native_matches_expected_with("uffd_wake", &["fdinfo"]);
}

#[test]
fn uffd_wake_fdinfo_pagelab() {
    pagelab_matches_expected_with("uffd_wake", &["fdinfo"], SHAPES);
}

#[test]
fn uffd_kernel_process_vm_writev_native() {
    native_matches_expected_with("uffd_kernel", &["vmwritev"]);
}

#[test]
fn uffd_kernel_process_vm_writev_pagelab() {
    pagelab_matches_expected_with("uffd_kernel", &["vmwritev"], SHAPES);
}

/// Copies that stop at a userfault part-way (a pipe read and a memfd read crossing into a
/// protected page) wait there and return the full count; an eventfd read into a protected
/// page returns the counter after the un-protect (issue 11: pagelab used to return the
/// short count, and the eventfd read lost its counter).
#[test]
fn uffd_kernel_span_native() {
    native_matches_expected_with("uffd_kernel", &["span"]);
}

#[test]
fn uffd_kernel_span_pagelab() {
    pagelab_matches_expected_with("uffd_kernel", &["span"], SHAPES);
}

#[test]
fn uffd_kernel_proc_self_mem_native() {
    native_matches_expected_with("uffd_kernel", &["procmem"]);
}

#[test]
fn uffd_kernel_proc_self_mem_pagelab() {
    pagelab_matches_expected_with("uffd_kernel", &["procmem"], SHAPES);
}

/// REMOVE events are sent VMA by VMA, each before its VMA is zapped (issue 11: pagelab
/// zapped the whole range first and queued every event after).
#[test]
fn uffd_events_remove_order_native() {
    native_matches_expected_with("uffd_events", &["remove-order"]);
}

#[test]
fn uffd_events_remove_order_pagelab() {
    pagelab_matches_expected_with("uffd_events", &["remove-order"], SHAPES);
}

#[test]
fn uffd_events_none_native() {
    native_matches_expected_with("uffd_events", &["none"]);
}

#[test]
fn uffd_events_none_pagelab() {
    pagelab_matches_expected_with("uffd_events", &["none"], SHAPES);
}

#[test]
fn uffd_errno_fdlink_native() {
    native_matches_expected_with("uffd_errno", &["fdlink"]);
}

#[test]
fn uffd_errno_fdlink_pagelab() {
    pagelab_matches_expected_with("uffd_errno", &["fdlink"], SHAPES);
}

#[test]
fn uffd_errno_vmas_native() {
    native_matches_expected_with("uffd_errno", &["vmas"]);
}

#[test]
fn uffd_errno_vmas_pagelab() {
    pagelab_matches_expected_with("uffd_errno", &["vmas"], SHAPES);
}

#[test]
fn uffd_tlb_pagelab() {
    pagelab_matches_expected("uffd_tlb", SHAPES);
}

#[test]
fn uffd_signal_kernel_native() {
    native_matches_expected_with("uffd_signal", &["kernel"]);
}

/// Linux keeps retrying a kernel-mode uffd fault while a non-fatal signal is pending (the
/// signal waits for the syscall's end), so read() completes once the page is un-protected.
#[test]
fn uffd_signal_kernel_pagelab() {
    pagelab_matches_expected_with("uffd_signal", &["kernel"], SHAPES);
}

#[test]
fn uffd_wake_exit_native() {
    native_matches_expected_with("uffd_wake", &["exit"]);
}

#[test]
fn uffd_wake_exit_pagelab() {
    pagelab_matches_expected_with("uffd_wake", &["exit"], SHAPES);
}

#[test]
fn uffd_wake_foreign_native() {
    native_matches_expected_with("uffd_wake", &["foreign"]);
}

#[test]
fn uffd_wake_foreign_pagelab() {
    pagelab_matches_expected_with("uffd_wake", &["foreign"], SHAPES);
}

#[test]
fn uffd_signal_pagelab() {
    pagelab_matches_expected("uffd_signal", SHAPES);
}

#[test]
fn uffd_kernel_pagelab() {
    pagelab_matches_expected("uffd_kernel", SHAPES);
}

#[test]
fn uffd_events_pagelab() {
    pagelab_matches_expected("uffd_events", SHAPES);
}

#[test]
fn uffd_errno_pagelab() {
    pagelab_matches_expected("uffd_errno", SHAPES);
}

/// A bigger workflow run (256 pages): one message per page on every shape.
#[test]
fn uffd_workflow_256_pages_pagelab() {
    let native = run_native("uffd_workflow", &["256"]);
    assert_eq!(native.outcome, Outcome::Exited(0));
    for &(vcpus, sched, seed, check_tlb) in &SHAPES[1..3] {
        let cfg = Config { vcpus, sched, seed, check_tlb, ..test_config() };
        let emu = try_run_pagelab_with(cfg, "uffd_workflow", &["256"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(native.stdout == emu.stdout, "uffd_workflow 256 on {vcpus} vCPUs {sched:?}\n{}", first_difference(&native.stdout, &emu.stdout));
    }
}
