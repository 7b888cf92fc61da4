//! The `pagelab` command line: exit statuses, the fatal-signal report, option handling,
//! malformed programs, and byte-identical traces.

use std::path::PathBuf;
use std::process::{Command, Output};

fn pagelab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pagelab")).args(args).env_clear().env("LANG", "C").output().expect("run pagelab")
}

fn prog(name: &str) -> String {
    guest_progs::path(name).to_string_lossy().into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pagelab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn runs_a_program_and_passes_its_arguments() {
    let o = pagelab(&["run", "--mem", "256M", &prog("hello"), "x", "-y"]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("hello, world\n"), "{out}");
    assert!(out.contains("argv[1]=x\nargv[2]=-y\n"), "{out}");
}

#[test]
fn exit_status_is_the_guests() {
    let o = pagelab(&["run", &prog("exit_code")]);
    assert_eq!(o.status.code(), Some(42));
}

#[test]
fn killed_by_a_signal_exits_128_plus_n_with_a_one_line_report() {
    let o = pagelab(&["run", &prog("segv_null")]);
    assert_eq!(o.status.code(), Some(128 + 11));
    let err = String::from_utf8_lossy(&o.stderr);
    let report: Vec<&str> = err.lines().filter(|l| l.starts_with("pagelab: guest killed")).collect();
    assert_eq!(report.len(), 1, "{err}");
    assert!(report[0].contains("SIGSEGV") && report[0].contains("address 0x0") && report[0].contains("rip 0x"), "{}", report[0]);

    let o = pagelab(&["run", &prog("ud")]);
    assert_eq!(o.status.code(), Some(128 + 4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SIGILL"));
}

#[test]
fn the_guests_output_before_a_crash_is_kept() {
    let o = pagelab(&["run", &prog("segv_ro")]);
    assert_eq!(o.status.code(), Some(139));
    assert!(String::from_utf8_lossy(&o.stdout).contains("writing to it..."));
}

#[test]
fn instruction_limit_stops_the_guest() {
    let o = pagelab(&["run", "--instr-limit", "5000", &prog("qsort")]);
    assert_eq!(o.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&o.stderr).contains("instruction limit"));
}

#[test]
fn help_documents_every_option() {
    let o = pagelab(&["run", "--help"]);
    let h = String::from_utf8_lossy(&o.stdout);
    for opt in ["--mem", "--instr-limit", "--trace", "--stats", "--allow-path"] {
        assert!(h.contains(opt), "--help lacks {opt}:\n{h}");
    }
    assert!(pagelab(&["--help"]).status.success());
}

#[test]
fn bad_memory_size_is_a_usage_error() {
    let o = pagelab(&["run", "--mem", "lots", &prog("hello")]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn malformed_elf_files_are_rejected_clearly() {
    let hello = std::fs::read(guest_progs::path("hello")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("text", b"#!/bin/sh\necho hi\n".to_vec()),
        ("truncated", hello[..200].to_vec()),
        ("header-only", hello[..64].to_vec()),
        ("wrong-machine", {
            let mut h = hello.clone();
            h[18] = 0x28; // EM_ARM
            h
        }),
        ("32-bit", {
            let mut h = hello.clone();
            h[4] = 1; // ELFCLASS32
            h
        }),
    ];
    for (name, bytes) in cases {
        let p = tmp(name);
        std::fs::write(&p, bytes).unwrap();
        let o = pagelab(&["run", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(125), "{name}: {err}");
        assert!(err.starts_with("pagelab: "), "{name}: {err}");
        assert!(err.contains("ELF") || err.contains("cannot read"), "{name}: {err}");
    }
    let o = pagelab(&["run", "/nonexistent/program"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn dynamically_linked_programs_are_refused_with_the_reason() {
    let o = pagelab(&["run", "/bin/true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("dynamically linked"));
}

#[test]
fn traces_are_byte_identical_across_runs() {
    let (a, b) = (tmp("a.jsonl"), tmp("b.jsonl"));
    for t in [&a, &b] {
        let o = pagelab(&["run", "--trace", t.to_str().unwrap(), &prog("hello")]);
        assert!(o.status.success());
    }
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(!ta.is_empty());
    assert_eq!(ta, tb, "two runs of the same program gave different traces");
    let text = String::from_utf8(ta).unwrap();
    for kind in ["\"kind\":\"fault\"", "\"kind\":\"walk\"", "\"kind\":\"tlb\"", "\"kind\":\"syscall\""] {
        assert!(text.contains(kind), "trace lacks {kind}");
    }
    for line in text.lines() {
        assert!(line.starts_with("{\"t\":") && line.ends_with('}'), "not a JSON object line: {line}");
    }
}

#[test]
fn stats_are_printed_on_request() {
    let o = pagelab(&["run", "--stats", &prog("hello")]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("instructions") && err.contains("TLB hits") && err.contains("walks"), "{err}");
}

#[test]
fn a_guest_that_outgrows_memory_is_oom_killed() {
    // As with the Linux OOM killer: SIGKILL, and the host process carries on.
    let o = pagelab(&["run", "--mem", "32M", &prog("touch"), "256"]);
    assert_eq!(o.status.code(), Some(128 + 9), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SIGKILL"));
}

// --- issue 3: vCPUs, scheduling, the TLB checker, deadlocks, statistics -----------------

fn stdout_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_documents_the_machine_options_and_hides_the_test_hook() {
    let o = pagelab(&["run", "--help"]);
    let h = stdout_of(&o);
    for opt in ["--vcpus", "--sched", "--seed", "--check-tlb", "rr", "random"] {
        assert!(h.contains(opt), "--help lacks {opt}:\n{h}");
    }
    assert!(!h.contains("--test-hooks"), "the test hook is hidden:\n{h}");
}

#[test]
fn bad_machine_options_are_usage_errors() {
    for args in [&["--vcpus", "0"][..], &["--vcpus", "65"], &["--sched", "fifo"], &["--seed", "-1"]] {
        let mut a = vec!["run"];
        a.extend_from_slice(args);
        let p = prog("hello");
        a.push(&p);
        assert_eq!(pagelab(&a).status.code(), Some(2), "{args:?}");
    }
}

/// `mach_race race` has unsynchronised increments: its output is a function of the
/// interleaving, which is a function of --sched and --seed only.
#[test]
fn seeded_random_scheduling_is_repeatable_and_seed_dependent() {
    let race = |seed: &str| {
        let o = pagelab(&["run", "--vcpus", "2", "--sched", "random", "--seed", seed, &prog("mach_race"), "race", "3", "100000"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr_of(&o));
        stdout_of(&o)
    };
    assert_eq!(race("7"), race("7"));
    let distinct: std::collections::BTreeSet<String> = ["1", "2", "3", "4", "5", "6"].iter().map(|s| race(s)).collect();
    assert!(distinct.len() >= 2, "six seeds, one interleaving: {distinct:?}");
    let rr = |v: &str| stdout_of(&pagelab(&["run", "--vcpus", v, "--sched", "rr", &prog("mach_race"), "race", "3", "100000"]));
    assert_eq!(rr("2"), rr("2"));
}

#[test]
fn traces_of_a_seeded_multithreaded_run_are_byte_identical() {
    let (a, b) = (tmp("race-a.jsonl"), tmp("race-b.jsonl"));
    for t in [&a, &b] {
        let o = pagelab(&[
            "run", "--vcpus", "2", "--sched", "random", "--seed", "7", "--trace", t.to_str().unwrap(), &prog("mach_race"), "race", "2", "20000",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr_of(&o));
    }
    let (ta, tb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(!ta.is_empty());
    assert!(ta == tb, "two runs with the same seed gave different traces");
    let text = String::from_utf8(ta).unwrap();
    assert!(text.contains("\"name\":\"clone") || text.contains("\"nr\":56") || text.contains("\"nr\":435"), "a threaded run clones");
}

#[test]
fn check_tlb_stops_on_a_stale_entry_with_status_125() {
    let p = prog("mach_stale_tlb");
    let o = pagelab(&["run", "--test-hooks", "--check-tlb", &p, "write-noflush"]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    let line = err.lines().find(|l| l.starts_with("pagelab: stale TLB entry: ")).unwrap_or_else(|| panic!("no report:\n{err}"));
    assert!(line.contains("vCPU 0, tid 1000: write at 0x10000200002 hit a stale TLB entry (write permission was revoked)"), "{line}");
    assert!(line.contains("cached 4K translation to frame 0x") && line.contains("PTE 0x") && line.contains("rip 0x"), "{line}");
    // The same missing flush without the checker: the stale entry serves the write.
    let o = pagelab(&["run", "--test-hooks", &p, "write-noflush"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr_of(&o));
    assert_eq!(stdout_of(&o), "hook: 0\nafter: 1 2 3\n");
    // A correct program runs unchanged under the checker.
    let o = pagelab(&["run", "--check-tlb", "--vcpus", "2", &prog("mach_shootdown")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr_of(&o));
    assert!(stdout_of(&o).contains("reader sees 0 after the remap"));
}

#[test]
fn a_deadlock_exits_123_with_a_report_naming_every_thread() {
    let o = pagelab(&["run", "--vcpus", "2", &prog("mach_deadlock"), "deadlock"]);
    let err = stderr_of(&o);
    assert_eq!(o.status.code(), Some(123), "{err}");
    assert_eq!(stdout_of(&o), "locking A,B and B,A\n");
    assert!(err.starts_with("pagelab: deadlock: every thread is blocked and no timer is pending\n"), "{err}");
    let threads: Vec<&str> = err.lines().filter(|l| l.trim_start().starts_with("tid ")).collect();
    assert_eq!(threads.len(), 3, "{err}");
    for l in threads {
        assert!(l.contains("blocked in futex wait on 0x") && l.contains("rip 0x"), "{l}");
    }
}

#[test]
fn stats_name_every_counter() {
    let o = pagelab(&["run", "--stats", "--vcpus", "2", &prog("mach_shootdown")]);
    assert_eq!(o.status.code(), Some(0));
    let err = stderr_of(&o);
    let line = err.lines().find(|l| l.starts_with("pagelab: vcpus ")).unwrap_or_else(|| panic!("no stats line:\n{err}"));
    let field = |name: &str| -> u64 {
        let rest = line.split(&format!("{name} ")).nth(1).unwrap_or_else(|| panic!("no {name}: {line}"));
        rest.split([' ', '|']).next().unwrap().parse().unwrap_or_else(|_| panic!("{name} not a number: {line}"))
    };
    assert_eq!(field("vcpus"), 2);
    assert!(field("instructions") > 0 && field("page faults") > 0 && field("syscalls") > 0, "{line}");
    assert!(field("TLB hits") > 0 && field("misses") > 0 && field("walks") > 0 && field("TLB flushes") > 0, "{line}");
    assert!(field("shootdowns") > 0, "two threads on two vCPUs remap shared memory: {line}");
    assert!(field("context switches") >= 2, "{line}");
    // Each vCPU's instructions, which add up to the total: both vCPUs ran.
    let per: Vec<u64> = line.split("(per vCPU ").nth(1).and_then(|r| r.split(')').next()).unwrap_or_else(|| panic!("no per-vCPU counts: {line}")).split(' ').map(|n| n.parse().unwrap()).collect();
    assert_eq!(per.len(), 2, "{line}");
    assert!(per.iter().all(|&n| n > 0) && per.iter().sum::<u64>() == field("instructions"), "{line}");
}

#[test]
fn slice_option_is_checked_and_changes_the_interleaving_only() {
    let race = |slice: &str| {
        let o = pagelab(&["run", "--vcpus", "2", "--slice", slice, &prog("mach_race"), "race", "3", "20000"]);
        assert_eq!(o.status.code(), Some(0), "--slice {slice}: {}", stderr_of(&o));
        stdout_of(&o)
    };
    let (a, b) = (race("7"), race("5000"));
    assert!(a.starts_with("threads 3 x 20000 increments: counter ") && b.starts_with("threads 3 x 20000 increments: counter "), "{a}{b}");
    assert_eq!(a, race("7"), "the same slice, the same interleaving");
    assert_ne!(a, b, "a 7-instruction and a 5000-instruction slice interleave alike");
    for bad in ["0", "100001", "x"] {
        let o = pagelab(&["run", "--slice", bad, &prog("hello")]);
        assert_eq!(o.status.code(), Some(2), "--slice {bad}");
    }
}

#[test]
fn swap_option_sizes_the_swap_device() {
    // --swap 0: no swap device, MADV_PAGEOUT leaves the pages resident (as Linux without swap).
    let o = pagelab(&["run", "--mem", "256M", "--swap", "0", &prog("swap_basic")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("after pageout                0:px 1:px 2:px"), "{out}");
    let o = pagelab(&["run", "--mem", "256M", "--swap", "64M", &prog("swap_basic")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("after pageout                0:s(t0) 1:s(t0)"), "{out}");
    let o = pagelab(&["run", "--swap", "12Q", &prog("hello")]);
    assert_eq!(o.status.code(), Some(2), "a bad size is a usage error");
}
