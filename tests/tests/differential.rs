//! Differential tests: every guest program, run natively and under pagelab with the same
//! argv and environment, must print the same stdout and end the same way (exit status, or
//! the same fatal signal).

use pagelab_tests::{assert_same, assert_same_default};

/// The programs with a test below; `every_program_has_a_differential_test` keeps it honest.
const COVERED: &[&str] =
    &["args_env", "enosys", "exit_code", "hello", "hello_pie", "mem", "qsort", "segv_null", "segv_ro", "smc", "touch", "ud", "unimpl_avx"];

#[test]
fn enosys() {
    let (_, emu) = assert_same_default("enosys");
    // Reported once, with number and name, however often it is called.
    assert_eq!(emu.stderr_str().matches("unimplemented syscall 499").count(), 1, "{}", emu.stderr_str());
}

/// Not differential: the host runs AVX2, pagelab's CPU does not (CPUID says so), and must
/// say which instruction stopped it rather than mis-execute it.
#[test]
fn unimpl_avx() {
    match pagelab_tests::try_run_pagelab("unimpl_avx", &[]) {
        Err(emu::Error::Unimplemented { mnemonic, rip }) => {
            assert!(mnemonic.to_lowercase().contains("vpcmpeqd"), "{mnemonic}");
            assert!(rip > 0x400000, "{rip:#x}");
        }
        other => panic!("expected an unimplemented-instruction error, got {other:?}"),
    }
}

#[test]
fn every_program_has_a_differential_test() {
    for p in guest_progs::ALL {
        assert!(COVERED.contains(p), "guest program {p} has no test in tests/tests/differential.rs");
    }
}

#[test]
fn hello() {
    assert_same_default("hello");
}

#[test]
fn hello_no_args() {
    assert_same("hello", &[]);
}

#[test]
fn hello_pie() {
    assert_same_default("hello_pie");
}

#[test]
fn args_env() {
    assert_same_default("args_env");
}

#[test]
fn exit_code() {
    assert_same_default("exit_code");
}

#[test]
fn qsort() {
    assert_same_default("qsort");
}

#[test]
fn qsort_edge_sizes() {
    for n in ["0", "1", "2", "17", "1000"] {
        assert_same("qsort", &[n]);
    }
}

#[test]
fn touch() {
    assert_same_default("touch");
}

#[test]
fn touch_one_mib() {
    assert_same("touch", &["1"]);
}

#[test]
fn smc() {
    assert_same_default("smc");
}

#[test]
fn mem() {
    assert_same_default("mem");
}

#[test]
fn segv_ro() {
    assert_same_default("segv_ro");
}

#[test]
fn segv_null() {
    assert_same_default("segv_null");
}

#[test]
fn ud() {
    assert_same_default("ud");
}
