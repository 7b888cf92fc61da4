//! Shared helpers for the integration and differential tests.
//!
//! A guest program (see the `guest_progs` crate) is run twice, natively and under pagelab,
//! with the same argv (argv[0] is the program's bare name in both) and the same fixed
//! environment [`ENV`], stdin empty. Its stdout, stderr and [`Outcome`] are captured in a
//! [`Run`]; [`assert_same`] compares the two runs. Signal deaths are compared by signal
//! number only ([`normalize`]), never by fault address, rip or core dump.

pub mod golden;
pub mod insn;
pub mod transcript;

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

pub use emu::{Config, Error, Io, Outcome};
pub use guest_progs::{Expect, Meta};

/// The guest environment, in sorted order: `std::process::Command` sorts the native one.
pub const ENV: &[&str] = &["LANG=C", "PAGELAB_TEST=1"];

/// Guest physical memory for test runs.
pub const TEST_MEM_BYTES: u64 = 1 << 30;

/// A safety net against a guest that never ends under pagelab.
pub const TEST_INSTR_LIMIT: u64 = 5_000_000_000;

/// What one run of a guest program produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub outcome: Outcome,
}

impl Run {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A `Write` into a shared, growable buffer: give one clone to the machine, read the other.
#[derive(Clone, Default, Debug)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn new() -> Self {
        Self::default()
    }
    /// A copy of everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// argv for `prog`: its bare name, then `args`.
pub fn argv(prog: &str, args: &[&str]) -> Vec<String> {
    std::iter::once(prog).chain(args.iter().copied()).map(String::from).collect()
}

/// [`ENV`] as owned strings (the `envp` given to pagelab).
pub fn envp() -> Vec<String> {
    ENV.iter().map(|s| s.to_string()).collect()
}

/// The native `ExitStatus` as an [`Outcome`]: `Exited(code)` or `Signaled { sig, core, .. }`
/// with `fault_addr: None, rip: 0` (the host does not tell them).
pub fn outcome_of(status: ExitStatus) -> Outcome {
    if let Some(code) = status.code() {
        Outcome::Exited(code)
    } else if let Some(sig) = status.signal() {
        Outcome::Signaled { sig, core: status.core_dumped(), fault_addr: None, rip: 0 }
    } else {
        panic!("unexpected exit status {status:?}")
    }
}

/// The part of an outcome the native and pagelab runs must agree on: a signal death keeps
/// only its number (`core: false, fault_addr: None, rip: 0`).
pub fn normalize(o: &Outcome) -> Outcome {
    match o {
        Outcome::Signaled { sig, .. } => Outcome::Signaled { sig: *sig, core: false, fault_addr: None, rip: 0 },
        other => other.clone(),
    }
}

/// Whether `o` is what `e` expects.
pub fn matches_expect(o: &Outcome, e: Expect) -> bool {
    match (o, e) {
        (Outcome::Exited(c), Expect::Exit(x)) => *c == x,
        (Outcome::Signaled { sig, .. }, Expect::Signal(x)) => *sig == x,
        _ => false,
    }
}

/// Runs guest program `prog` natively with `args`, argv[0] = `prog`, environment [`ENV`]
/// only, stdin empty.
///
/// The hugetlb programs (`htlb_*`) set the host's hugetlb pool themselves and put it back to
/// 0 at exit: they run under [`run_native_hugetlb`], which holds an exclusive lock on
/// [`HUGETLB_LOCK`] for the run, so two of them (from parallel test threads or from other
/// test processes on the host) never share the pool, and which panics if the pool is not
/// empty after the run.
pub fn run_native(prog: &str, args: &[&str]) -> Run {
    if prog.starts_with("htlb_") {
        let (run, pool) = run_native_hugetlb(prog, args);
        assert!(
            hugetlb_pool_is_empty(&pool),
            "{prog} {args:?} natively left the host's hugetlb pool at {pool:?} (now reset to 0)\nstdout:\n{}",
            run.stdout_str()
        );
        return run;
    }
    run_native_unlocked(prog, args)
}

/// The host file a native run of an `htlb_*` program holds an exclusive lock (flock) on:
/// anyone else who uses the host's hugetlb pool by hand can take it too (`flock
/// /tmp/pagelab-hugetlb.lock PROG`).
pub const HUGETLB_LOCK: &str = "/tmp/pagelab-hugetlb.lock";

/// The host's hugetlb pool files (sysctl and sysfs, both sizes) with their values (None:
/// unreadable, e.g. no such huge page size).
pub fn host_hugetlb_pool() -> Vec<(String, Option<u64>)> {
    let mut files = vec!["/proc/sys/vm/nr_hugepages".to_string()];
    for size in ["2048kB", "1048576kB"] {
        for f in ["nr_hugepages", "free_hugepages", "resv_hugepages", "surplus_hugepages"] {
            files.push(format!("/sys/kernel/mm/hugepages/hugepages-{size}/{f}"));
        }
    }
    files
        .into_iter()
        .map(|f| {
            let v = std::fs::read_to_string(&f).ok().and_then(|s| s.trim().parse().ok());
            (f, v)
        })
        .collect()
}

/// Whether every readable file of a [`host_hugetlb_pool`] snapshot says 0.
pub fn hugetlb_pool_is_empty(pool: &[(String, Option<u64>)]) -> bool {
    pool.iter().all(|(_, v)| v.unwrap_or(0) == 0)
}

/// Runs an `htlb_*` program natively (as [`run_native`] runs any other) while holding an
/// exclusive lock on [`HUGETLB_LOCK`], and returns the run with the host's hugetlb pool as it
/// was right after the run, read under the lock. If the pool is not empty then (the program
/// died before it could restore it), it is put back to 0 before the lock is released, so the
/// next program does not stop on "HUGETLB POOL NOT EMPTY"; the snapshot still shows what
/// was left.
pub fn run_native_hugetlb(prog: &str, args: &[&str]) -> (Run, Vec<(String, Option<u64>)>) {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(HUGETLB_LOCK)
        .unwrap_or_else(|e| panic!("cannot open {HUGETLB_LOCK}: {e}"));
    lock.lock().unwrap_or_else(|e| panic!("cannot lock {HUGETLB_LOCK}: {e}"));
    let run = run_native_unlocked(prog, args);
    let pool = host_hugetlb_pool();
    if !hugetlb_pool_is_empty(&pool) {
        for f in ["/proc/sys/vm/nr_hugepages", "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"] {
            let _ = std::fs::write(f, "0\n");
        }
    }
    drop(lock);
    (run, pool)
}

/// [`run_native`] without the hugetlb lock.
fn run_native_unlocked(prog: &str, args: &[&str]) -> Run {
    let path = guest_progs::path(prog);
    let mut cmd = Command::new(&path);
    cmd.arg0(prog).args(args).env_clear().stdin(Stdio::null());
    // No core files from the programs that are meant to crash.
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::setrlimit(libc::RLIMIT_CORE, &zero);
            Ok(())
        });
    }
    for kv in ENV {
        let (k, v) = kv.split_once('=').unwrap();
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    Run { stdout: out.stdout, stderr: out.stderr, outcome: outcome_of(out.status) }
}

/// The [`Config`] test runs use: [`TEST_MEM_BYTES`] of guest memory and [`TEST_INSTR_LIMIT`].
pub fn test_config() -> Config {
    Config { mem_bytes: TEST_MEM_BYTES, instr_limit: Some(TEST_INSTR_LIMIT), ..Config::default() }
}

/// Runs guest program `prog` under pagelab with `cfg`, the same argv and environment as
/// [`run_native`], stdin empty, stdout and stderr captured.
pub fn try_run_pagelab_with(cfg: Config, prog: &str, args: &[&str]) -> Result<Run, Error> {
    let path = guest_progs::path(prog);
    let (stdout, stderr) = (SharedBuf::new(), SharedBuf::new());
    let io = Io { stdin: Box::new(std::io::empty()), stdout: Box::new(stdout.clone()), stderr: Box::new(stderr.clone()) };
    let outcome = emu::run_program(cfg, &path, &argv(prog, args), &envp(), io)?;
    Ok(Run { stdout: stdout.contents(), stderr: stderr.contents(), outcome })
}

/// [`try_run_pagelab_with`] with [`test_config`].
pub fn try_run_pagelab(prog: &str, args: &[&str]) -> Result<Run, Error> {
    try_run_pagelab_with(test_config(), prog, args)
}

/// [`try_run_pagelab`], panicking with the error (and program) on a host-side failure.
pub fn run_pagelab(prog: &str, args: &[&str]) -> Run {
    try_run_pagelab(prog, args).unwrap_or_else(|e| panic!("pagelab failed to run {prog} {args:?}: {e}"))
}

/// Runs `prog` natively and under pagelab and asserts identical stdout and outcome (signal
/// deaths by number only). Also asserts the native run ends as the program's metadata
/// expects, so a broken host build is not mistaken for an emulator bug. Returns
/// `(native, pagelab)`.
pub fn assert_same(prog: &str, args: &[&str]) -> (Run, Run) {
    let native = run_native(prog, args);
    let expect = guest_progs::meta(prog).expect;
    assert!(
        matches_expect(&native.outcome, expect),
        "{prog} {args:?} natively ended {:?}, expected {expect:?}\nstdout:\n{}\nstderr:\n{}",
        native.outcome,
        native.stdout_str(),
        native.stderr_str()
    );
    let emu = run_pagelab(prog, args);
    if native.stdout != emu.stdout {
        panic!(
            "{prog} {args:?}: stdout differs\n{}\n--- pagelab stderr:\n{}",
            first_difference(&native.stdout, &emu.stdout),
            emu.stderr_str()
        );
    }
    assert_eq!(
        normalize(&native.outcome),
        normalize(&emu.outcome),
        "{prog} {args:?}: outcome differs (native left, pagelab right); pagelab stderr:\n{}",
        emu.stderr_str()
    );
    (native, emu)
}

/// [`assert_same`] with the program's `test_args` from its metadata.
pub fn assert_same_default(prog: &str) -> (Run, Run) {
    assert_same(prog, guest_progs::meta(prog).test_args)
}

/// A readable description of where two transcripts first differ, line by line.
pub fn first_difference(native: &[u8], emu: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(native), String::from_utf8_lossy(emu));
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.split_inclusive('\n').collect(), b.split_inclusive('\n').collect());
    let i = la.iter().zip(&lb).take_while(|(x, y)| x == y).count();
    let show = |l: &[&str]| l.get(i).map_or("<end of output>".to_string(), |s| format!("{s:?}"));
    format!(
        "first difference at line {} (native {} lines / {} bytes, pagelab {} lines / {} bytes)\n  native : {}\n  pagelab: {}\n--- native stdout:\n{}\n--- pagelab stdout:\n{}",
        i + 1,
        la.len(),
        native.len(),
        lb.len(),
        emu.len(),
        show(&la),
        show(&lb),
        a,
        b
    )
}
