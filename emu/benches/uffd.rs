//! userfaultfd (issue 4): the four operations of the benchmark table under pagelab,
//! by running the guest program `uffd_bench` (guest-progs/c/uffd_bench.c) in-process:
//! * `wp_protect`: UFFDIO_WRITEPROTECT protect of a populated range of 4 KiB pages
//!   (`PAGELAB_BENCH_UFFD_MB` MiB, default 64; throughput in pages);
//! * `wp_unprotect`: un-protect of the same range;
//! * `wp_fault_round_trip`: a uffd-wp fault resolved by a handler thread (poll, read,
//!   UFFDIO_WRITEPROTECT un-protect of the page, which wakes the worker), guest handler
//!   instructions included (`PAGELAB_BENCH_UFFD_FAULTS` round trips per iteration, default
//!   2000; throughput in round trips);
//! * `missing_copy_round_trip`: a MISSING fault answered with UFFDIO_COPY.
//!
//! The guest clock is virtual, so the program times the operation with the host's clocks,
//! which pagelab's test-hook syscall gives it (`uffd_bench --time` with `Config::test_hooks`;
//! ops 4 and 5, `HOOK_HOST_CLOCK` and `HOOK_HOST_CPU_CLOCK`): each criterion iteration is
//! one run of the program, and the time it reports for the operation alone (not the
//! population, registration, threads or exit around it) is what criterion sees
//! (`iter_custom`). That time is the CPU time of the host thread running the machine, which
//! other processes on a loaded machine inflate much less than wall time;
//! `PAGELAB_BENCH_UFFD_WALL=1` measures wall time instead. Per element, criterion's time is
//! then ns per page or per round trip. `pagelab-compare` prints the same figures next to
//! native ones, and also the difference of whole runs with and without the operation.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use emu::machine::Machine;
use emu::{Config, Io, Outcome};
use std::path::Path;
use std::time::Duration;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One pagelab run of `uffd_bench --time args` on one vCPU: the host time of the measured
/// operation from the program's `time:` line ("time: WALL ns total, cpu CPU ns, ..."), CPU
/// time unless `wall`.
fn emulate(prog: &Path, args: &[String], mem: u64, wall: bool) -> Duration {
    let out = Buf::default();
    let io = Io { stdin: Box::new(std::io::empty()), stdout: Box::new(out.clone()), stderr: Box::new(std::io::sink()) };
    let cfg = Config { mem_bytes: mem, test_hooks: true, ..Config::default() };
    let mut argv = vec!["uffd_bench".to_string(), "--time".to_string()];
    argv.extend(args.iter().cloned());
    let mut m = Machine::new(&cfg, io, [false; 3]);
    m.load(prog, &argv, &[]).expect("load uffd_bench");
    let outcome = m.run().expect("run uffd_bench");
    drop(m);
    let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
    assert_eq!(outcome, Outcome::Exited(0), "uffd_bench {args:?} failed under pagelab:\n{text}");
    let line = text.lines().find_map(|l| l.strip_prefix("time: ")).unwrap_or_else(|| panic!("uffd_bench {args:?}: no time line:\n{text}"));
    let field = if wall { Some(line) } else { line.split_once("cpu ").map(|(_, c)| c) };
    let ns: u64 = field
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("uffd_bench {args:?}: bad time line: {line}"));
    Duration::from_nanos(ns)
}

/// The guest's stdout.
#[derive(Clone, Default)]
struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn uffd(c: &mut Criterion) {
    let prog = guest_progs::path("uffd_bench");
    let mb = env_u64("PAGELAB_BENCH_UFFD_MB", 64);
    let faults = env_u64("PAGELAB_BENCH_UFFD_FAULTS", 2000);
    let mem = ((mb + 256) << 20).max(1 << 30);
    let (mb_s, n_s) = (mb.to_string(), faults.to_string());
    let wall = std::env::var_os("PAGELAB_BENCH_UFFD_WALL").is_some_and(|v| v == "1");
    println!(
        "uffd bench: {mb} MiB ranges, {faults} round trips per iteration, host {} time; host load average at start: {}",
        if wall { "wall" } else { "CPU" },
        load_average()
    );

    // (name, arguments, elements, criterion's measurement time in ms: about 10 whole runs,
    // population and teardown included; criterion plans by real time).
    let cases: [(&str, Vec<String>, u64, u64); 4] = [
        ("wp_protect", strings(&["wp-protect", &mb_s, "1"]), mb * 256, mb * 12 + 100),
        ("wp_unprotect", strings(&["wp-unprotect", &mb_s, "1"]), mb * 256, mb * 12 + 100),
        ("wp_fault_round_trip", strings(&["wp-fault", &n_s, &n_s]), faults, faults / 5 + 100),
        ("missing_copy_round_trip", strings(&["missing-copy", &n_s, &n_s]), faults, faults / 5 + 100),
    ];
    let mut g = c.benchmark_group("uffd");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.warm_up_time(Duration::from_millis(5));
    for (name, args, elements, ms) in cases {
        g.throughput(Throughput::Elements(elements));
        g.measurement_time(Duration::from_millis(ms));
        g.bench_function(name, |b| b.iter_custom(|iters| (0..iters).map(|_| emulate(&prog, &args, mem, wall)).sum()));
    }
    g.finish();
    println!("host load average at end: {}", load_average());
}

criterion_group!(benches, uffd);
criterion_main!(benches);
