//! The guest programs themselves, run natively: their transcripts are what the differential
//! tests hold pagelab to, so check they say what they should (these do not involve pagelab).

use pagelab_tests::{matches_expect, run_native, Outcome};

fn native_ok(prog: &str, args: &[&str]) -> String {
    let r = run_native(prog, args);
    let m = guest_progs::meta(prog);
    assert!(matches_expect(&r.outcome, m.expect), "{prog}: {:?}, expected {:?}\n{}", r.outcome, m.expect, r.stdout_str());
    r.stdout_str()
}

#[test]
fn every_program_ends_as_expected_natively() {
    for m in guest_progs::META {
        native_ok(m.name, m.test_args);
    }
}

#[test]
fn transcripts_are_deterministic() {
    for m in guest_progs::META {
        let a = run_native(m.name, m.test_args);
        let b = run_native(m.name, m.test_args);
        assert_eq!(a.stdout_str(), b.stdout_str(), "{}: two native runs differ", m.name);
    }
}

#[test]
fn hello_transcript() {
    let out = native_ok("hello", &["a", "bc"]);
    assert!(out.starts_with("hello, world\nvariant: static\n"), "{out}");
    assert!(out.contains("g: 3.14159 1e-05 6.02214e+23 33.3333 0\n"), "{out}");
    assert!(out.ends_with("argc=3\nargv[0]=hello\nargv[1]=a\nargv[2]=bc\n"), "{out}");
    let pie = native_ok("hello_pie", &["a", "bc"]);
    assert_eq!(pie.replacen("static-pie", "static", 1).replace("argv[0]=hello_pie", "argv[0]=hello"), out);
}

#[test]
fn qsort_transcript() {
    let out = native_ok("qsort", &["200000"]);
    assert!(out.starts_with("count: 200000\nsorted: yes\nsum preserved: yes\n"), "{out}");
}

#[test]
fn touch_transcript() {
    let out = native_ok("touch", &["64"]);
    assert!(out.starts_with("mapped 64 MiB = 16384 pages\nfresh pages zero: yes\nwritten pages: 16384 mismatches: 0\n"), "{out}");
}

#[test]
fn smc_transcript() {
    let out = native_ok("smc", &[]);
    assert!(out.contains("self-incrementing: 101 102 103 104 105\n"), "{out}");
    assert!(out.ends_with("all as expected: yes\n"), "{out}");
}

#[test]
fn mem_transcript() {
    let out = native_ok("mem", &[]);
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.ends_with("failures: 0\n"), "{out}");
}

#[test]
fn args_env_transcript() {
    let out = native_ok("args_env", &["one", "two words", ""]);
    for line in [
        "argc=4\n",
        "argv[0]=\"args_env\" (len 8)\n",
        "argv[2]=\"two words\" (len 9)\n",
        "argv[3]=\"\" (len 0)\n",
        "AT_PAGESZ=4096\n",
        "AT_CLKTCK=100\n",
        "AT_RANDOM present: yes\n",
        "envc=2 environ==envp: yes\n",
        "getenv(PAGELAB_TEST)=1\n",
        "getenv(HOME)=(unset)\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn crashing_programs_flush_first() {
    assert_eq!(native_ok("segv_ro", &[]), "read-only page reads 0\nwriting to it...\n");
    assert_eq!(native_ok("segv_null", &[]), "dereferencing NULL...\n");
    assert_eq!(native_ok("ud", &[]), "executing ud2...\n");
    assert!(matches!(run_native("segv_null", &[]).outcome, Outcome::Signaled { sig: 11, .. }));
    assert_eq!(native_ok("exit_code", &[]), "exiting with 42\natexit handler ran\n");
}
