//! Machine-level behaviour: the TLB checker (`--check-tlb`) and the test hook that injects a
//! missing flush, deadlock detection, deterministic scheduling (round-robin and seeded
//! random), and TLB shootdowns between vCPUs.
//!
//! Most of these are pagelab-only by nature and say why where they are: a deadlocked
//! program hangs natively, the hook is ENOSYS natively, and a racy program's output depends
//! on the host scheduler. Where a native run makes sense (the control cases) it is compared.

use emu::machine::Stats;
use emu::SchedPolicy;
use pagelab_tests::{argv, assert_same, envp, run_native, test_config, try_run_pagelab_with, Config, Error, Io, Outcome, Run, SharedBuf};

/// The programs this file tests (differential.rs: every_program_has_a_test reads this list
/// from the source text).
#[allow(dead_code)]
const COVERED: &[&str] = &["mach_deadlock", "mach_race", "mach_shootdown", "mach_stale_tlb"];

/// Runs `prog` under pagelab with `cfg` and returns its transcript and the machine's
/// statistics.
fn run_stats(cfg: Config, prog: &str, args: &[&str]) -> Result<(Run, Stats), Error> {
    let path = guest_progs::path(prog);
    let (stdout, stderr) = (SharedBuf::new(), SharedBuf::new());
    let io = Io { stdin: Box::new(std::io::empty()), stdout: Box::new(stdout.clone()), stderr: Box::new(stderr.clone()) };
    let (outcome, stats) = emu::machine::run(cfg, &path, &argv(prog, args), &envp(), io, [false; 3])?;
    Ok((Run { stdout: stdout.contents(), stderr: stderr.contents(), outcome }, stats))
}

fn cfg(vcpus: usize, sched: SchedPolicy, seed: u64) -> Config {
    Config { vcpus, sched, seed, ..test_config() }
}

fn hooks(check_tlb: bool) -> Config {
    Config { test_hooks: true, check_tlb, ..test_config() }
}

fn ok(r: Result<(Run, Stats), Error>, what: &str) -> (Run, Stats) {
    r.unwrap_or_else(|e| panic!("{what}: pagelab failed: {e}"))
}

// --- the TLB checker and the test hook -------------------------------------------------
//
// mach_stale_tlb is pagelab-only: natively the hook is ENOSYS (see `hook_is_enosys_natively`),
// and no real kernel offers "forget this flush".

/// The guest's page for the stale write (mach_stale_tlb maps it at this hint).
const STALE_PAGE: u64 = 0x100_0020_0000;

#[test]
fn hook_is_enosys_natively_and_without_test_hooks() {
    let (native, emu) = assert_same("mach_stale_tlb", &["write-noflush"]);
    assert_eq!(native.stdout_str(), "hook: ENOSYS\nafter: 1 2 3\n");
    assert_eq!(emu.outcome, Outcome::Exited(0));
}

#[test]
fn check_tlb_stops_on_a_write_through_a_stale_entry() {
    match run_stats(hooks(true), "mach_stale_tlb", &["write-noflush"]) {
        Err(Error::StaleTlb(r)) => {
            let addr = format!("write at {:#x} hit a stale TLB entry (write permission was revoked)", STALE_PAGE + 2);
            assert!(r.starts_with("vCPU 0, tid 1000: "), "{r}");
            assert!(r.contains(&addr), "{r}");
            assert!(r.contains("cached 4K translation to frame 0x") && r.contains("rights W,U,D"), "{r}");
            assert!(r.contains("the page tables now have PTE 0x") && r.contains("read-only, user, no-execute"), "{r}");
            assert!(r.contains("rip 0x"), "{r}");
        }
        other => panic!("expected a stale-TLB stop, got {:?}", other.map(|(r, _)| r)),
    }
}

/// Without the checker the stale writable entry keeps serving writes, exactly as a real
/// TLB would: the write succeeds without a page fault. With the flush (op 2) the same
/// write faults once, and the fault handler, seeing a writable VMA over a read-only PTE of
/// an exclusive anonymous page, makes it writable again (do_wp_page reuse).
#[test]
fn a_stale_entry_serves_the_write_silently_and_the_flushed_case_faults_once() {
    let (stale, s1) = ok(run_stats(hooks(false), "mach_stale_tlb", &["write-noflush"]), "write-noflush");
    let (flushed, s2) = ok(run_stats(hooks(true), "mach_stale_tlb", &["write-flush"]), "write-flush");
    for r in [&stale, &flushed] {
        assert_eq!(r.stdout_str(), "hook: 0\nafter: 1 2 3\n");
        assert_eq!(r.outcome, Outcome::Exited(0));
    }
    assert_eq!(s2.page_faults, s1.page_faults + 1, "the flushed write faults once; the stale one does not");
}

#[test]
fn check_tlb_catches_a_stale_code_translation() {
    // The fetch side goes through the decoded-code memo, not a TLB lookup per instruction.
    let (plain, _) = ok(run_stats(hooks(false), "mach_stale_tlb", &["exec-noflush"]), "exec-noflush");
    assert_eq!(plain.stdout_str(), "hook: 0\nexecuted on: x=1\n");
    match run_stats(hooks(true), "mach_stale_tlb", &["exec-noflush"]) {
        Err(Error::StaleTlb(r)) => {
            assert!(r.contains("instruction fetch at 0x") && r.contains("(execute permission was revoked)"), "{r}");
            assert!(r.contains("rights U,X") && r.contains("no-execute"), "{r}");
        }
        other => panic!("expected a stale-TLB stop, got {:?}", other.map(|(r, _)| r)),
    }
}

/// The checker finds nothing wrong in correct programs, and changes nothing they print.
#[test]
fn check_tlb_is_silent_on_correct_programs() {
    let progs: &[(&str, &[&str], usize)] = &[
        ("hello", &["a"], 1),
        ("mem", &[], 1),
        ("smc", &[], 1),
        ("touch", &["8"], 1),
        ("segv_ro", &[], 1),
        ("mach_shootdown", &[], 2),
        ("mach_race", &["3", "20000"], 2),
        ("mach_deadlock", &[], 2),
    ];
    for &(prog, args, vcpus) in progs {
        let plain = try_run_pagelab_with(Config { vcpus, ..test_config() }, prog, args).unwrap();
        let checked = try_run_pagelab_with(Config { vcpus, check_tlb: true, ..test_config() }, prog, args)
            .unwrap_or_else(|e| panic!("{prog} {args:?} under --check-tlb: {e}"));
        assert_eq!(plain.stdout_str(), checked.stdout_str(), "{prog}");
        assert_eq!(plain.outcome, checked.outcome, "{prog}");
    }
}

/// Every guest program, with its test arguments, on two vCPUs: the checker finds no missing
/// flush anywhere in the kernel paths they exercise (fork and copy-on-write, pipes, signals,
/// mmap/mprotect/munmap/mremap ...), and the run is otherwise unchanged.
#[test]
fn check_tlb_finds_no_missing_flush_in_any_guest_program() {
    for &prog in guest_progs::ALL {
        let args = guest_progs::test_args(prog);
        let plain = try_run_pagelab_with(Config { vcpus: 2, ..test_config() }, prog, args);
        let checked = try_run_pagelab_with(Config { vcpus: 2, check_tlb: true, ..test_config() }, prog, args);
        match (plain, checked) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.stdout_str(), b.stdout_str(), "{prog}");
                assert_eq!(a.outcome, b.outcome, "{prog}");
            }
            (_, Err(Error::StaleTlb(r))) => panic!("{prog} {args:?}: {r}"),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{prog}"),
            (a, b) => panic!("{prog}: without the checker {:?}, with it {:?}", a.map(|r| r.outcome), b.map(|r| r.outcome)),
        }
    }
}

/// The checker leaves the program's execution as it was: the same instructions, faults
/// and walks (its own walks are side-effect free and not counted).
#[test]
fn check_tlb_does_not_change_execution() {
    let (_, a) = ok(run_stats(test_config(), "qsort", &["20000"]), "qsort");
    let (_, b) = ok(run_stats(Config { check_tlb: true, ..test_config() }, "qsort", &["20000"]), "qsort --check-tlb");
    assert_eq!((a.instructions, a.page_faults, a.walks, a.syscalls), (b.instructions, b.page_faults, b.walks, b.syscalls));
}

// --- deadlocks -------------------------------------------------------------------------
//
// Pagelab-only: natively a deadlocked program simply hangs. The control case (same order)
// is differential.

#[test]
fn mutexes_in_the_same_order_finish() {
    let (native, _) = assert_same("mach_deadlock", &[]);
    assert_eq!(native.stdout_str(), "locking A,B and A,B\nboth done: 11\n");
    for (vcpus, sched, seed) in [(2, SchedPolicy::RoundRobin, 0), (2, SchedPolicy::Random, 3), (1, SchedPolicy::Random, 11)] {
        let r = try_run_pagelab_with(cfg(vcpus, sched, seed), "mach_deadlock", &[]).unwrap();
        assert_eq!(r.stdout, native.stdout, "{vcpus} vCPUs {sched:?} seed {seed}");
    }
}

/// The report's line for each blocked thread: (tid, what it waits on, rip).
fn report_lines(report: &str) -> Vec<&str> {
    report.lines().filter(|l| l.trim_start().starts_with("tid ")).collect()
}

#[test]
fn opposite_lock_order_is_a_deadlock_with_a_report() {
    for (vcpus, sched, seed) in [(1, SchedPolicy::RoundRobin, 0), (2, SchedPolicy::RoundRobin, 0), (2, SchedPolicy::Random, 7), (3, SchedPolicy::Random, 99)] {
        let what = format!("{vcpus} vCPUs {sched:?} seed {seed}");
        let r = try_run_pagelab_with(cfg(vcpus, sched, seed), "mach_deadlock", &["deadlock"]).unwrap();
        assert_eq!(r.stdout_str(), "locking A,B and B,A\n", "{what}");
        let Outcome::Deadlock { report } = &r.outcome else { panic!("{what}: expected a deadlock, got {:?}", r.outcome) };
        assert_eq!(r.outcome.host_status(), emu::DEADLOCK_STATUS);
        let lines = report_lines(report);
        assert_eq!(lines.len(), 3, "{what}: main thread and two workers:\n{report}");
        let mut futexes = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            assert!(l.contains(&format!("tid {}", 1000 + i)) && l.contains("(pid 1000)"), "{what}: {l}");
            assert!(l.contains("blocked in futex wait on 0x") && l.contains(", rip 0x"), "{what}: {l}");
            futexes.push(l.split("futex wait on ").nth(1).unwrap().split(',').next().unwrap().to_string());
        }
        // The two workers wait on the two mutexes, each held by the other; the main thread
        // waits for the first worker to exit (its CLONE_CHILD_CLEARTID word).
        assert_ne!(futexes[1], futexes[2], "{what}: {report}");
        assert!(!futexes[1..].contains(&futexes[0]), "{what}: {report}");
    }
}

/// A single thread reading a pipe whose write end it holds itself: blocked for ever.
#[test]
fn reading_a_pipe_nobody_will_write_is_a_deadlock() {
    let r = try_run_pagelab_with(test_config(), "mach_deadlock", &["pipe"]).unwrap();
    assert_eq!(r.stdout_str(), "reading an empty pipe whose write end we hold\n");
    let Outcome::Deadlock { report } = &r.outcome else { panic!("expected a deadlock, got {:?}\n{}", r.outcome, r.stderr_str()) };
    let lines = report_lines(report);
    assert_eq!(lines.len(), 1, "{report}");
    assert!(lines[0].contains("tid 1000") && lines[0].contains("blocked in read on fd 3"), "{report}");
}

/// A parent in wait4 for a child that reads such a pipe.
#[test]
fn waiting_for_a_blocked_child_is_a_deadlock() {
    let r = try_run_pagelab_with(test_config(), "mach_deadlock", &["wait"]).unwrap();
    assert_eq!(r.stdout_str(), "waiting for a child that reads an empty pipe\n");
    let Outcome::Deadlock { report } = &r.outcome else { panic!("expected a deadlock, got {:?}\n{}", r.outcome, r.stderr_str()) };
    let lines = report_lines(report);
    assert_eq!(lines.len(), 2, "{report}");
    assert!(lines[0].contains("tid 1000") && lines[0].contains("blocked in wait for child"), "{report}");
    assert!(lines[1].contains("(pid 1001)") && lines[1].contains("blocked in read on fd 3"), "{report}");
}

// --- determinism -------------------------------------------------------------------------
//
// mach_race without `race` is deterministic everywhere (a mutex); with `race` its output
// depends on the interleaving, so it is compared only between pagelab runs.

#[test]
fn locked_counter_is_exact_under_every_policy() {
    let (native, _) = assert_same("mach_race", &[]);
    assert_eq!(native.stdout_str(), "threads 3 x 100000 increments: counter 300000\n");
    for seed in [1, 2] {
        let r = try_run_pagelab_with(cfg(2, SchedPolicy::Random, seed), "mach_race", &["3", "20000"]).unwrap();
        assert_eq!(r.stdout_str(), "threads 3 x 20000 increments: counter 60000\n", "seed {seed}");
    }
}

fn race(vcpus: usize, sched: SchedPolicy, seed: u64) -> String {
    let r = try_run_pagelab_with(cfg(vcpus, sched, seed), "mach_race", &["race", "3", "100000"]).unwrap();
    assert_eq!(r.outcome, Outcome::Exited(0));
    r.stdout_str()
}

#[test]
fn the_same_seed_gives_the_same_interleaving() {
    assert_eq!(race(2, SchedPolicy::Random, 7), race(2, SchedPolicy::Random, 7));
    assert_eq!(race(1, SchedPolicy::Random, 5), race(1, SchedPolicy::Random, 5));
    assert_eq!(race(2, SchedPolicy::RoundRobin, 0), race(2, SchedPolicy::RoundRobin, 0));
    // The seed is the random policy's only input: round-robin ignores it.
    assert_eq!(race(2, SchedPolicy::RoundRobin, 1), race(2, SchedPolicy::RoundRobin, 2));
}

#[test]
fn different_seeds_give_different_interleavings() {
    let outs: std::collections::BTreeSet<String> = (1..=8).map(|seed| race(2, SchedPolicy::Random, seed)).collect();
    assert!(outs.len() >= 2, "8 seeds, one outcome:\n{outs:?}");
    // The race is real: some seed loses increments.
    assert!(outs.iter().any(|o| !o.contains("counter 300000")), "{outs:?}");
}

// --- shootdowns ------------------------------------------------------------------------

/// Two threads on two vCPUs: the writer's mprotect/mmap(MAP_FIXED)/munmap must invalidate
/// the reader's TLB (shootdowns), and the reader then sees the new zero page.
#[test]
fn changing_a_mapping_another_vcpu_uses_shoots_down_its_tlb() {
    let native = run_native("mach_shootdown", &[]);
    let expect = "mprotect read-only: 0\nmprotect read-write: 0\nremapped in place: yes\nmunmap second page: 0\nreader sees 0 after the remap\nwriter sees 0\n";
    assert_eq!(native.stdout_str(), expect);
    let (one, s1) = ok(run_stats(cfg(1, SchedPolicy::RoundRobin, 0), "mach_shootdown", &[]), "1 vCPU");
    assert_eq!(one.stdout_str(), expect);
    assert_eq!(s1.shootdowns, 0, "one vCPU: nobody to shoot down");
    for (sched, seed) in [(SchedPolicy::RoundRobin, 0), (SchedPolicy::Random, 4)] {
        let (two, s2) = ok(run_stats(cfg(2, sched, seed), "mach_shootdown", &[]), "2 vCPUs");
        assert_eq!(two.stdout_str(), expect, "{sched:?}");
        assert!(s2.shootdowns > 0, "{sched:?}: {s2:?}");
        assert_eq!(s2.vcpus, 2);
        assert!(s2.context_switches >= 2, "{s2:?}");
    }
}
