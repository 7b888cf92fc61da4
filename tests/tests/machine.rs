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
const COVERED: &[&str] = &["mach_deadlock", "mach_race", "mach_shootdown", "mach_stale_tlb", "sched_overlap"];

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
        assert!(s2.vcpu_instructions.iter().all(|&n| n > 0), "{sched:?}: a vCPU never ran: {s2:?}");
        assert!(s2.context_switches >= 2, "{s2:?}");
    }
}

// --- vCPUs that overlap ----------------------------------------------------------------
//
// The sched_overlap transcripts are compared with Linux; where the threads ran, and when in
// virtual time, is read from the trace (pagelab-only by nature).

/// One trace line's fields that the scheduling checks read.
#[derive(Debug)]
struct Ev {
    t: u64,
    kind: String,
    message: String,
    tid: Option<u64>,
    vcpu: Option<u64>,
    child: Option<u64>,
    reason: Option<String>,
}

fn field_is(e: &Ev, reason: &str) -> bool {
    e.reason.as_deref() == Some(reason)
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":");
    let rest = &line[line.find(&key)? + key.len()..];
    Some(match rest.strip_prefix('"') {
        Some(r) => &r[..r.find('"')?],
        None => &rest[..rest.find([',', '}'])?],
    })
}

fn parse_trace(bytes: &[u8]) -> Vec<Ev> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| Ev {
            t: field(l, "t").and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no t: {l}")),
            kind: field(l, "kind").unwrap_or("").to_string(),
            message: field(l, "message").unwrap_or("").to_string(),
            tid: field(l, "tid").and_then(|v| v.parse().ok()),
            vcpu: field(l, "vcpu").and_then(|v| v.parse().ok()),
            child: field(l, "child").and_then(|v| v.parse().ok()),
            reason: field(l, "reason").map(str::to_string),
        })
        .collect()
}

/// Runs `prog args` under pagelab with a trace; returns the transcript, the statistics and
/// the trace's raw bytes.
fn run_traced(cfg: Config, prog: &str, args: &[&str]) -> (Run, Stats, Vec<u8>) {
    let trace = SharedBuf::new();
    let cfg = Config { trace: Some(Box::new(trace.clone())), ..cfg };
    let (run, stats) = ok(run_stats(cfg, prog, args), prog);
    (run, stats, trace.contents())
}

/// Virtual time stays causal (docs/machine.md): a woken or created thread is switched in
/// no earlier than its wake, and each
/// thread's own events never go back in time.
fn check_causal(evs: &[Ev], what: &str) {
    let mut last_t: std::collections::HashMap<u64, u64> = Default::default();
    let mut woken: std::collections::HashMap<u64, u64> = Default::default();
    for e in evs {
        if e.kind == "sched" && (e.message == "wake" || e.message == "clone") {
            let tid = if e.message == "clone" { e.child } else { e.tid };
            woken.insert(tid.unwrap(), e.t);
            continue;
        }
        if e.kind == "sched" && e.message == "switch in" {
            if let Some(w) = woken.remove(&e.tid.unwrap()) {
                assert!(e.t >= w, "{what}: tid {:?} switched in at {} before its wake at {w}", e.tid, e.t);
            }
        }
        if e.kind == "syscall" {
            let tid = e.tid.unwrap();
            let prev = last_t.insert(tid, e.t).unwrap_or(0);
            assert!(e.t >= prev, "{what}: tid {tid}'s syscall at {} after one at {prev}", e.t);
        }
    }
}

/// The wake-to-run latencies of `tid`: each wake's time to the next switch-in.
fn wake_latencies(evs: &[Ev], tid: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut woken = None;
    for e in evs.iter().filter(|e| e.kind == "sched" && e.tid == Some(tid)) {
        match e.message.as_str() {
            "wake" => woken = Some(e.t),
            "switch in" => {
                if let Some(w) = woken.take() {
                    out.push(e.t - w);
                }
            }
            _ => {}
        }
    }
    out
}

fn switch_in_vcpus(evs: &[Ev], tid: u64) -> std::collections::BTreeSet<u64> {
    evs.iter().filter(|e| e.kind == "sched" && e.message == "switch in" && e.tid == Some(tid)).map(|e| e.vcpu.unwrap()).collect()
}

/// A uffd MISSING ping-pong on two vCPUs: the handler and the faulter run on different
/// vCPUs, each wake of the faulter starts it within a slice (here: at once, on its idle
/// vCPU), and both vCPUs retire instructions.
#[test]
fn uffd_handler_and_faulter_run_on_different_vcpus() {
    let args = ["uffd", "32"];
    let native = run_native("sched_overlap", &args);
    assert_eq!(native.stdout_str(), "uffd ping-pong 32 pages: 32 messages, sum 496\n");
    let (run, stats, trace) = run_traced(cfg(2, SchedPolicy::RoundRobin, 0), "sched_overlap", &args);
    assert_eq!(run.stdout, native.stdout);
    let evs = parse_trace(&trace);
    let (faulter, handler) = (1000, 1001);
    let (f, h) = (switch_in_vcpus(&evs, faulter), switch_in_vcpus(&evs, handler));
    assert!(f.is_disjoint(&h), "faulter on vCPUs {f:?}, handler on {h:?}");
    let lat = wake_latencies(&evs, faulter);
    assert!(lat.len() >= 32, "{} wakes of the faulter", lat.len());
    let slice = emu::machine::DEFAULT_SLICE;
    assert!(lat.iter().all(|&l| l <= slice), "wake-to-run latencies over a slice: {lat:?}");
    assert!(stats.vcpu_instructions.iter().all(|&n| n > 0), "{stats:?}");
    check_causal(&evs, "uffd ping-pong");
    // The same on every shape, and with a finer slice.
    for (vcpus, sched, seed) in [(1, SchedPolicy::RoundRobin, 0), (2, SchedPolicy::Random, 3), (3, SchedPolicy::Random, 8), (4, SchedPolicy::RoundRobin, 0)] {
        let (r, _, t) = run_traced(cfg(vcpus, sched, seed), "sched_overlap", &args);
        assert_eq!(r.stdout, native.stdout, "{vcpus} vCPUs {sched:?} seed {seed}");
        check_causal(&parse_trace(&t), &format!("{vcpus} vCPUs {sched:?} seed {seed}"));
    }
    let (r, _, t) = run_traced(Config { slice: 50, ..cfg(2, SchedPolicy::RoundRobin, 0) }, "sched_overlap", &args);
    assert_eq!(r.stdout, native.stdout, "--slice 50");
    assert!(wake_latencies(&parse_trace(&t), faulter).iter().all(|&l| l <= 50));
}

/// A CPU-bound thread created while vCPU 1 is idle starts there within a slice of its
/// clone, and the two threads then share the work between the vCPUs.
#[test]
fn a_new_thread_starts_on_the_idle_vcpu_at_once() {
    let args = ["spawn", "200000"];
    let native = run_native("sched_overlap", &args);
    for (sched, seed) in [(SchedPolicy::RoundRobin, 0), (SchedPolicy::Random, 5)] {
        let what = format!("{sched:?} seed {seed}");
        let (run, stats, trace) = run_traced(cfg(2, sched, seed), "sched_overlap", &args);
        assert_eq!(run.stdout, native.stdout, "{what}");
        let evs = parse_trace(&trace);
        let clone = evs.iter().find(|e| e.kind == "sched" && e.message == "clone").expect("a clone event");
        let child = clone.child.unwrap();
        let start = evs.iter().find(|e| e.kind == "sched" && e.message == "switch in" && e.tid == Some(child)).expect("the child runs");
        assert_eq!(start.vcpu, Some(1), "{what}: the child starts on the idle vCPU");
        assert!(start.t >= clone.t && start.t - clone.t <= emu::machine::DEFAULT_SLICE, "{what}: clone at {}, child starts at {}", clone.t, start.t);
        // Both spin 200,000 iterations side by side: each vCPU retires over a third.
        let total: u64 = stats.vcpu_instructions.iter().sum();
        assert!(stats.vcpu_instructions.iter().all(|&n| n * 3 > total), "{what}: {stats:?}");
        check_causal(&evs, &what);
    }
}

/// A thread that sleeps beside a busy one wakes at its deadline on its idle vCPU: its
/// timer ends the busy vCPU's slice there, so each wake starts it at once.
#[test]
fn a_timer_wakes_a_sleeper_on_its_idle_vcpu_at_once() {
    let args = ["timer", "5"];
    let native = run_native("sched_overlap", &args);
    assert_eq!(native.stdout_str(), "timer 5: sleeps done\n");
    let (run, stats, trace) = run_traced(cfg(2, SchedPolicy::RoundRobin, 0), "sched_overlap", &args);
    assert_eq!(run.stdout, native.stdout);
    let evs = parse_trace(&trace);
    let sleeper = evs.iter().find(|e| e.kind == "sched" && e.message == "clone").and_then(|e| e.child).unwrap();
    let timeouts = evs.iter().filter(|e| e.kind == "sched" && e.message == "wake" && e.tid == Some(sleeper) && field_is(e, "Timeout")).count();
    assert_eq!(timeouts, 5, "five timer wakes of the sleeper");
    let lat = wake_latencies(&evs, sleeper);
    assert!(lat.iter().all(|&l| l == 0), "wake-to-run latencies {lat:?}");
    assert_eq!(switch_in_vcpus(&evs, sleeper), [1].into(), "the sleeper stays on vCPU 1");
    assert!(stats.vcpu_instructions.iter().all(|&n| n > 0), "{stats:?}");
    check_causal(&evs, "timer");
}

/// Clock readings handed from one thread to another through a pipe and through a futex
/// word never come from the reader's future, on any shape.
#[test]
fn time_passed_between_threads_never_runs_backwards() {
    let args = ["causal", "300"];
    let native = run_native("sched_overlap", &args);
    assert_eq!(native.stdout_str(), "causal 300: pipe readings from the future 0, futex readings from the future 0\n");
    for (vcpus, sched, seed) in [(1, SchedPolicy::RoundRobin, 0), (2, SchedPolicy::RoundRobin, 0), (2, SchedPolicy::Random, 1), (3, SchedPolicy::Random, 2), (4, SchedPolicy::Random, 9)] {
        let what = format!("{vcpus} vCPUs {sched:?} seed {seed}");
        let (run, _, trace) = run_traced(cfg(vcpus, sched, seed), "sched_overlap", &args);
        assert_eq!(run.stdout, native.stdout, "{what}");
        check_causal(&parse_trace(&trace), &what);
    }
}

/// The random policy's slices and orders come from the seed alone: the same seed gives a
/// byte-identical trace, another seed another one.
#[test]
fn overlapping_vcpus_trace_identically_for_the_same_seed() {
    let args = ["uffd", "16"];
    let (_, _, a) = run_traced(cfg(3, SchedPolicy::Random, 11), "sched_overlap", &args);
    let (_, _, b) = run_traced(cfg(3, SchedPolicy::Random, 11), "sched_overlap", &args);
    assert!(a == b, "two runs with seed 11 traced differently");
    let (_, _, c) = run_traced(cfg(3, SchedPolicy::Random, 12), "sched_overlap", &args);
    assert!(a != c, "seeds 11 and 12 traced the same");
}

/// The multi-vCPU programs of the other suites (shootdowns, uffd_tlb's writer, swap_basic's
/// concurrent reader) run on every vCPU they have.
#[test]
fn every_vcpu_runs_in_the_multi_thread_programs() {
    for (prog, args) in [("mach_shootdown", &[][..]), ("uffd_tlb", &[]), ("swap_basic", &[]), ("qsort4", &["100000", "4"])] {
        for vcpus in [2, 4] {
            let vcpus = if prog == "qsort4" { vcpus } else { 2 };
            let (_, s) = ok(run_stats(Config { check_tlb: true, ..cfg(vcpus, SchedPolicy::RoundRobin, 0) }, prog, args), prog);
            assert!(s.vcpu_instructions.iter().all(|&n| n > 0), "{prog} on {vcpus} vCPUs: {:?}", s.vcpu_instructions);
        }
    }
}
