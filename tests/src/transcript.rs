//! Committed native transcripts (`guest-progs/c/<name>.expected`) and the two checks the
//! userfaultfd suites make with them: the native run prints the committed transcript
//! (so the suite pins Linux's behaviour even where pagelab is not there yet), and pagelab
//! prints it on every machine shape. Used by tests/tests/uffd.rs and uffd_shmem.rs.

use crate::{first_difference, run_native, test_config, try_run_pagelab_with, Config, Outcome};
use emu::SchedPolicy;

/// A machine shape: (vCPUs, scheduling policy, seed, TLB checking).
pub type Shape = (usize, SchedPolicy, u64, bool);

/// The committed transcript of `prog args`: `<prog>.expected`, or `<prog>.<args joined by
/// '_'>.expected` with arguments.
pub fn expected_for(prog: &str, args: &[&str]) -> String {
    let name = if args.is_empty() { prog.to_string() } else { format!("{prog}.{}", args.join("_")) };
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../guest-progs/c/{name}.expected"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `expected_for(prog, &[])`.
pub fn expected(prog: &str) -> String {
    expected_for(prog, &[])
}

/// Whether the host has swap configured (a line after the header of /proc/swaps).
pub fn host_has_swap() -> bool {
    std::fs::read_to_string("/proc/swaps").is_ok_and(|s| s.lines().count() > 1)
}

/// The native run of `prog` must print the committed transcript and exit 0.
pub fn native_matches_expected(prog: &str) {
    native_matches_expected_with(prog, &[]);
}

/// The native run of `prog args` must print `expected_for(prog, args)` and exit 0.
pub fn native_matches_expected_with(prog: &str, args: &[&str]) {
    let want = expected_for(prog, args);
    let native = run_native(prog, args);
    assert_eq!(native.outcome, Outcome::Exited(0), "{prog} natively:\n{}\n{}", native.stdout_str(), native.stderr_str());
    assert!(
        native.stdout_str() == want,
        "{prog}: the native run differs from guest-progs/c/{prog}.expected\n{}",
        first_difference(want.as_bytes(), &native.stdout)
    );
}

/// pagelab must print the committed (native) transcript and exit 0 on every shape.
pub fn pagelab_matches_expected(prog: &str, shapes: &[Shape]) {
    pagelab_matches_expected_with(prog, &[], shapes);
}

/// [`pagelab_matches_expected`] for `prog args`.
pub fn pagelab_matches_expected_with(prog: &str, args: &[&str], shapes: &[Shape]) {
    pagelab_matches_expected_from(test_config, prog, args, shapes);
}

/// [`pagelab_matches_expected_with`] on machines built from `base()` instead of
/// [`test_config`] (each shape sets the vCPUs, policy, seed and TLB checking): for a program
/// that needs more guest memory, say.
pub fn pagelab_matches_expected_from(base: impl Fn() -> Config, prog: &str, args: &[&str], shapes: &[Shape]) {
    let want = expected_for(prog, args);
    for &(vcpus, sched, seed, check_tlb) in shapes {
        let what = format!("{prog} {args:?} on {vcpus} vCPU(s), {sched:?} seed {seed}, check_tlb {check_tlb}");
        let cfg = Config { vcpus, sched, seed, check_tlb, ..base() };
        let emu = try_run_pagelab_with(cfg, prog, args).unwrap_or_else(|e| panic!("{what}: {e}"));
        if emu.stdout_str() != want {
            panic!("{what}: stdout differs from Linux's\n{}\n--- pagelab stderr:\n{}", first_difference(want.as_bytes(), &emu.stdout), emu.stderr_str());
        }
        assert_eq!(emu.outcome, Outcome::Exited(0), "{what}: outcome; stderr:\n{}", emu.stderr_str());
    }
}
