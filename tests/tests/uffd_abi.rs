//! Issue 11's errno table of the userfaultfd ABI: `guest-progs/c/uffd_abi.c` (and, behind the
//! host's hugetlb pool, `htlb_abi.c`) add every case of the reference (§4, §5.15, Appendix A)
//! that uffd_errno.c, shm_errno.c, htlb_uffd.c and pm_scan.c did not have, and boundary probes
//! of each argument where the reference is silent. Their native transcripts (Linux 6.18.44,
//! run as root, vm.mmap_min_addr 4096, vm.unprivileged_userfaultfd 0, no swap) are committed
//! as `guest-progs/c/<name>.expected`, in the style of tests/tests/pagemap_scan.rs:
//! * `<name>_native` runs only the native side against the committed transcript, so a changed
//!   host kernel shows up here and not as an emulator bug;
//! * `<name>_pagelab` asserts pagelab prints the committed transcript on every machine shape.
//!
//! The transcripts are deterministic by construction (verified natively 20 times, also with a
//! CPU hog on each core): pages are indexes relative to a base inside a PROT_NONE reservation,
//! si_addr is printed as booleans, pagemap entries with the PFN masked out.

use emu::SchedPolicy;
use pagelab_tests::transcript::*;
use pagelab_tests::{first_difference, hugetlb_pool_is_empty, run_native_hugetlb, Outcome};

/// Every guest program this file tests (checked by differential.rs).
const COVERED: &[&str] = &["uffd_abi", "htlb_abi"];

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
fn uffd_abi_native() {
    native_matches_expected("uffd_abi");
}

/// The rows where pagelab still differs from Linux, for reasons outside the userfaultfd
/// ABI (README "Differences from Linux"): pagelab's stack occupies the last page below
/// TASK_SIZE (Linux randomizes it lower); and its program image is anonymous memory, so a
/// REGISTER over all of user space finds no VMA that is not uffd-capable (Linux: the
/// executable's file mappings, EINVAL).
const KNOWN_DIFFERENT: &[&str] = &[
    "map the last page below TASK_SIZE",
    "start TASK_SIZE-4096 ",
    "start 4096 len TASK_SIZE-4096 (all user space): REGISTER",
    "start 4096 len TASK_SIZE-4096 (all user space): UNREGISTER",
];

fn without_known_differences(t: &str) -> String {
    t.lines().filter(|l| !KNOWN_DIFFERENT.iter().any(|k| l.starts_with(k))).map(|l| format!("{l}\n")).collect()
}

/// Every other row matches the native transcript on every machine shape.
#[test]
fn uffd_abi_pagelab() {
    let want = without_known_differences(&expected("uffd_abi"));
    for &(vcpus, sched, seed, check_tlb) in SHAPES {
        let cfg = pagelab_tests::Config { vcpus, sched, seed, check_tlb, ..pagelab_tests::test_config() };
        let run = pagelab_tests::try_run_pagelab_with(cfg, "uffd_abi", &[]).unwrap_or_else(|e| panic!("uffd_abi on {vcpus} vCPU(s) {sched:?}: {e}"));
        let got = without_known_differences(&String::from_utf8_lossy(&run.stdout));
        assert!(got == want, "uffd_abi on {vcpus} vCPU(s), {sched:?} seed {seed}: differs from the native transcript\n{}", first_difference(want.as_bytes(), got.as_bytes()));
    }
}

/// htlb_abi natively, under the hugetlb lock (tests/tests/hugetlb.rs): the committed transcript,
/// exit 0, and the host's pool left empty.
#[test]
fn htlb_abi_native() {
    let want = expected("htlb_abi");
    let (run, pool) = run_native_hugetlb("htlb_abi", &[]);
    assert!(hugetlb_pool_is_empty(&pool), "htlb_abi left the host's hugetlb pool at {pool:?} (reset to 0)\n{}", run.stdout_str());
    assert_eq!(run.outcome, Outcome::Exited(0), "htlb_abi natively:\n{}\n{}", run.stdout_str(), run.stderr_str());
    assert!(run.stdout_str() == want, "htlb_abi: the native run differs from guest-progs/c/htlb_abi.expected\n{}", first_difference(want.as_bytes(), &run.stdout));
}

#[test]
fn htlb_abi_pagelab() {
    pagelab_matches_expected("htlb_abi", SHAPES);
}
