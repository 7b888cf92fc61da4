//! Threads, futexes and time: guest programs run natively and under pagelab with 1, 2 and
//! 4 vCPUs, round-robin and seeded random scheduling. Every interleaving must print the
//! native transcript and end the same way.

use pagelab_tests::{normalize, run_native, try_run_pagelab_with, test_config, Config};
use emu::SchedPolicy;
use std::time::{Duration, Instant};

/// The programs with a test below (see differential.rs::every_program_has_a_test).
const COVERED: &[&str] = &["qsort4", "futex_stress", "thr_misc", "thr_pingpong", "cxx_except"];

/// The machine shapes every program runs on: (vCPUs, policy, seed).
const SHAPES: &[(usize, SchedPolicy, u64)] = &[
    (1, SchedPolicy::RoundRobin, 0),
    (2, SchedPolicy::RoundRobin, 0),
    (4, SchedPolicy::RoundRobin, 0),
    (1, SchedPolicy::Random, 1),
    (2, SchedPolicy::Random, 2),
    (4, SchedPolicy::Random, 3),
    (3, SchedPolicy::Random, 44),
];

fn cfg(vcpus: usize, sched: SchedPolicy, seed: u64) -> Config {
    Config { vcpus, sched, seed, ..test_config() }
}

/// Runs `prog args` natively once, then under pagelab on every shape of `shapes`.
fn same_everywhere(prog: &str, args: &[&str], shapes: &[(usize, SchedPolicy, u64)]) {
    let native = run_native(prog, args);
    for &(vcpus, sched, seed) in shapes {
        let what = format!("{prog} {args:?} on {vcpus} vCPUs, {sched:?} seed {seed}");
        let emu = try_run_pagelab_with(cfg(vcpus, sched, seed), prog, args).unwrap_or_else(|e| panic!("{what}: {e}"));
        if native.stdout != emu.stdout {
            panic!("{what}: stdout differs\n{}\n--- pagelab stderr:\n{}", pagelab_tests::first_difference(&native.stdout, &emu.stdout), emu.stderr_str());
        }
        assert_eq!(normalize(&native.outcome), normalize(&emu.outcome), "{what}: outcome differs; stderr:\n{}", emu.stderr_str());
    }
}

#[test]
fn qsort4_sorts_the_same_on_every_interleaving() {
    same_everywhere("qsort4", guest_progs::meta("qsort4").test_args, SHAPES);
}

#[test]
fn qsort4_with_one_and_eight_threads() {
    same_everywhere("qsort4", &["100000", "1"], &SHAPES[..2]);
    same_everywhere("qsort4", &["100000", "8"], &[(2, SchedPolicy::RoundRobin, 0), (4, SchedPolicy::Random, 5)]);
}

/// C++ exceptions (libgcc's unwinder runs RDSSPQ, a NOP on our CPU without CET), thrown
/// and caught on several threads at once.
#[test]
fn cxx_exceptions_unwind_as_natively() {
    same_everywhere("cxx_except", guest_progs::meta("cxx_except").test_args, SHAPES);
}

#[test]
fn futex_stress() {
    same_everywhere("futex_stress", guest_progs::meta("futex_stress").test_args, SHAPES);
}

#[test]
fn thr_pingpong_modes() {
    for mode in ["futex", "yield", "wake", "getppid"] {
        same_everywhere("thr_pingpong", &[mode, "2000"], SHAPES);
    }
}

#[test]
fn thr_misc() {
    same_everywhere("thr_misc", &[], SHAPES);
}

#[test]
fn main_thread_pthread_exit_leaves_the_process_running() {
    same_everywhere("thr_misc", &["mainexit"], SHAPES);
}

#[test]
fn exit_group_from_a_thread_kills_the_others() {
    same_everywhere("thr_misc", &["exitgroup"], SHAPES);
}

#[test]
fn signals_interrupt_sleeps_with_the_remaining_time() {
    same_everywhere("thr_misc", &["eintr"], &SHAPES[..3]);
}

/// Not differential (natively it takes 10 s): when every thread sleeps, virtual time
/// jumps to the next deadline, so sleeping costs no host time.
#[test]
fn sleeping_costs_no_host_time() {
    for &(vcpus, sched, seed) in &SHAPES[..4] {
        let t = Instant::now();
        let r = try_run_pagelab_with(cfg(vcpus, sched, seed), "thr_misc", &["sleep"]).unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
        assert_eq!(r.stdout_str(), "thread: slept 5 s\nmain: slept 10 s: yes\n");
        assert_eq!(r.outcome, emu::Outcome::Exited(0));
    }
}

/// The same seed gives the same execution, instruction for instruction.
#[test]
fn threaded_runs_repeat_exactly() {
    let run = |seed| {
        let io = emu::Io { stdin: Box::new(std::io::empty()), stdout: Box::new(std::io::sink()), stderr: Box::new(std::io::sink()) };
        let mut m = emu::machine::Machine::new(&cfg(3, SchedPolicy::Random, seed), io, [false; 3]);
        m.load(&guest_progs::path("futex_stress"), &["futex_stress".into(), "2000".into()], &[]).unwrap();
        m.run().unwrap();
        let s = m.stats();
        (s.instructions, s.syscalls, s.context_switches)
    };
    assert_eq!(run(9), run(9));
}

#[test]
fn covered_programs_exist() {
    for p in COVERED {
        assert!(guest_progs::try_path(p).is_some(), "{p}");
    }
}

/// Not differential (natively it is the host's count): the affinity mask has one bit per
/// vCPU.
#[test]
fn affinity_mask_is_one_bit_per_vcpu() {
    for vcpus in [1, 2, 3, 4, 8] {
        let r = try_run_pagelab_with(cfg(vcpus, SchedPolicy::RoundRobin, 0), "thr_misc", &["ncpus"]).unwrap();
        assert_eq!(r.stdout_str(), format!("cpus: {vcpus}\n"));
    }
}
