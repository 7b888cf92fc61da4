//! Differential tests: every guest program, run natively and under pagelab with the same
//! argv and environment, must print the same stdout and end the same way (exit status, or
//! the same fatal signal).

use pagelab_tests::{assert_same, assert_same_default};

/// The programs with a test below. Other test files (threads, processes, signals, files,
/// machine) name theirs in a `COVERED` list of their own; `every_program_has_a_test`
/// checks that every guest program appears in one of them.
const COVERED: &[&str] =
    &["args_env", "capability", "cpu_model", "enosys", "exit_code", "hello", "hello_pie", "mem", "qsort", "segv_null", "segv_ro", "smc", "touch", "ud", "unimpl_avx", "mlock_basic", "vma_merge", "mincore_basic"];

/// mincore(2), and MADV_PAGEOUT's effect on the page cache that it shows.
#[test]
fn mincore_basic() {
    assert_same_default("mincore_basic");
}

#[test]
fn enosys() {
    let (_, emu) = assert_same_default("enosys");
    // Reported once, with number and name, however often it is called.
    assert_eq!(emu.stderr_str().matches("unimplemented syscall 499").count(), 1, "{}", emu.stderr_str());
}

/// Capabilities, with threads: also on 2 vCPUs and under the random scheduler.
#[test]
fn capability() {
    use emu::SchedPolicy;
    let (native, _) = assert_same_default("capability");
    for (vcpus, sched, seed) in [(2, SchedPolicy::RoundRobin, 0), (1, SchedPolicy::Random, 5), (2, SchedPolicy::Random, 17)] {
        let cfg = pagelab_tests::Config { vcpus, sched, seed, ..pagelab_tests::test_config() };
        let r = pagelab_tests::try_run_pagelab_with(cfg, "capability", &[]).unwrap();
        assert!(r.stdout == native.stdout, "capability on {vcpus} vCPU(s), {sched:?} seed {seed}\n{}", pagelab_tests::first_difference(&native.stdout, &r.stdout));
        assert_eq!(r.outcome, pagelab_tests::Outcome::Exited(0));
    }
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

/// Not differential: natively the program shows the host's CPU, which changes from machine
/// to machine; under pagelab it must show the model (docs/cpu-model.md), whatever the host.
#[test]
fn cpu_model_is_the_same_on_every_host() {
    let native = pagelab_tests::run_native("cpu_model", &[]);
    assert!(pagelab_tests::matches_expect(&native.outcome, guest_progs::Expect::Exit(0)), "{:?}", native.outcome);
    let emu = pagelab_tests::run_pagelab("cpu_model", &[]);
    let want = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-progs/c/cpu_model.pagelab.expected")).unwrap();
    assert_eq!(emu.stdout_str(), want, "pagelab's CPU differs from the model's transcript");
    // On a host of the model's vendor, the vendor-specific results agree with the host too.
    if pagelab_tests::insn::host_is_model() {
        let pick = |s: &str| s.lines().filter(|l| !l.starts_with("vendor") && !l.starts_with("leaf") && !l.starts_with("brand")).map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(pick(&native.stdout_str()), pick(&want), "the model's choices differ from this Intel host's");
    }
}

#[test]
fn every_program_has_a_test() {
    // Every `const COVERED` list in tests/tests/*.rs.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut covered: Vec<String> = COVERED.iter().map(|s| s.to_string()).collect();
    for e in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        if let Some(i) = text.find("const COVERED: &[&str] =") {
            let rest = &text[i..];
            let list = &rest[..rest.find("];").unwrap()];
            covered.extend(list.split('"').skip(1).step_by(2).map(str::to_owned));
        }
    }
    for p in guest_progs::ALL {
        assert!(covered.iter().any(|c| c == p), "guest program {p} is in no COVERED list under tests/tests/");
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

/// mlock, munlock, mlock2 and MAP_LOCKED: results, VmFlags (lo, lf, and gu after a guard),
/// Locked in smaps, the split and merge of the VMA, fork dropping the lock.
#[test]
fn mlock_basic() {
    assert_same_default("mlock_basic");
}

/// Anonymous VMA merging (anon_vma identity, VM_ACCOUNT) and the mremap UNMAP events it
/// decides.
#[test]
fn vma_merge() {
    assert_same_default("vma_merge");
}
