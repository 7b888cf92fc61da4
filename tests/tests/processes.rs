//! Processes: fork with copy-on-write, MAP_SHARED anonymous memory across fork, exit and
//! wait4/waitid, vfork, /proc/PID — differential against native runs, on one vCPU and on
//! several with seeded random scheduling and the TLB checker on; and every frame back when
//! all processes are gone.

use emu::machine::Machine;
use emu::{Config, Io, Outcome, SchedPolicy};
use pagelab_tests::{assert_same, assert_same_default, first_difference, run_native, test_config, try_run_pagelab_with};

/// The guest programs this file tests (see differential.rs::every_program_has_a_test).
const COVERED: &[&str] = &["fork_cow", "fork_wait", "rusage_faults"];

#[test]
fn covered_programs_exist() {
    for p in COVERED {
        assert!(guest_progs::ALL.contains(p), "{p} is not a guest program");
    }
}

/// `prog` under several machines: 2-4 vCPUs, random scheduling with a few seeds, TLB
/// checking. Output must match the native run every time.
fn same_on_many_machines(prog: &str, args: &[&str]) {
    let native = run_native(prog, args);
    for (vcpus, seed) in [(2, 1), (3, 7), (4, 42)] {
        let cfg = Config { vcpus, sched: SchedPolicy::Random, seed, check_tlb: true, ..test_config() };
        let emu = try_run_pagelab_with(cfg, prog, args).unwrap_or_else(|e| panic!("{prog} vcpus {vcpus} seed {seed}: {e}"));
        assert!(
            native.stdout == emu.stdout,
            "{prog} vcpus {vcpus} seed {seed}: {}\n--- pagelab stderr:\n{}",
            first_difference(&native.stdout, &emu.stdout),
            emu.stderr_str()
        );
        assert_eq!(emu.outcome, Outcome::Exited(0), "{prog} vcpus {vcpus} seed {seed}: {}", emu.stderr_str());
    }
}

#[test]
fn fork_cow() {
    assert_same_default("fork_cow");
}

#[test]
fn fork_cow_many_vcpus() {
    same_on_many_machines("fork_cow", &[]);
}

/// Exit statuses, wait4/waitid, vfork, /proc, a leader's pthread_exit, and deaths and stops
/// by signal: abort(), kill() with SIGKILL/SIGTERM/SIGSTOP/SIGCONT, WUNTRACED, WCONTINUED.
/// getrusage's and wait4's page-fault counts, against the transcript recorded natively
/// (guest-progs/c/rusage_faults.expected) and a live native run, on several machines.
#[test]
fn rusage_faults() {
    pagelab_tests::transcript::native_matches_expected("rusage_faults");
    pagelab_tests::transcript::pagelab_matches_expected("rusage_faults", &[(1, SchedPolicy::RoundRobin, 0, false), (2, SchedPolicy::Random, 9, true), (3, SchedPolicy::Random, 4, false)]);
}

#[test]
fn fork_wait() {
    assert_same_default("fork_wait");
}

#[test]
fn fork_wait_many_vcpus() {
    same_on_many_machines("fork_wait", &[]);
}

/// The same without the signal-sending parts (argv[1] = "nokill").
#[test]
fn fork_wait_without_kill() {
    assert_same("fork_wait", &["nokill"]);
}

fn run_machine(cfg: Config, name: &str, args: &[&str]) -> Machine {
    let io = Io { stdin: Box::new(std::io::empty()), stdout: Box::new(std::io::sink()), stderr: Box::new(std::io::sink()) };
    let mut m = Machine::new(&cfg, io, [false; 3]);
    let mut argv = vec![name.to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    m.load(&guest_progs::path(name), &argv, &["LANG=C".to_string()]).expect("load");
    m.run().expect("run");
    m
}

/// Copy-on-write sharing, shmem objects, zombies: when every process has exited and been
/// reaped, every frame (pages, page tables, shared-object pages) is free again.
#[test]
fn every_frame_is_freed_after_fork() {
    for (vcpus, sched) in [(1, SchedPolicy::RoundRobin), (2, SchedPolicy::Random)] {
        for (p, args) in [("fork_cow", &[][..]), ("fork_wait", &[][..])] {
            let cfg = Config { mem_bytes: 512 << 20, vcpus, sched, seed: 3, ..Config::default() };
            let m = run_machine(cfg, p, args);
            assert!(m.kernel.tasks.is_empty() && m.kernel.procs.is_empty(), "{p}: tasks or zombies left");
            assert_eq!(m.hw.pages.allocated, 0, "{p} on {vcpus} vCPUs leaked {} frames", m.hw.pages.allocated);
        }
    }
}

/// fork write-protects the parent's writable private pages: a parent thread running on
/// another vCPU must lose its writable TLB entries (a shootdown), which the TLB checker
/// would catch if missed; fork_cow's children run beside their parents.
#[test]
fn fork_write_protect_reaches_every_vcpu() {
    let cfg = Config { mem_bytes: 512 << 20, vcpus: 2, check_tlb: true, ..Config::default() };
    let m = run_machine(cfg, "fork_cow", &[]);
    assert_eq!(m.kernel.outcome, Some(Outcome::Exited(0)));
    assert!(m.hw.shootdowns > 0, "no shootdown counted");
}
