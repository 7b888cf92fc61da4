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
//! The guest clock is virtual, so each iteration runs the program twice, with the operation
//! and without it (REPS = 0 / N = 0: the same population, registration, threads and exit),
//! and counts only the difference of the two host times (criterion's `iter_custom`). Per
//! element, criterion's time is then ns per page or per round trip. `pagelab-compare` prints
//! the same figures next to native ones.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use emu::machine::Machine;
use emu::{Config, Io, Outcome};
use std::path::Path;
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Host wall time of one pagelab run of `uffd_bench args` on one vCPU (output discarded).
fn emulate(prog: &Path, args: &[String], mem: u64) -> Duration {
    let io = Io { stdin: Box::new(std::io::empty()), stdout: Box::new(std::io::sink()), stderr: Box::new(std::io::sink()) };
    let cfg = Config { mem_bytes: mem, ..Config::default() };
    let mut argv = vec!["uffd_bench".to_string()];
    argv.extend(args.iter().cloned());
    let t = Instant::now();
    let mut m = Machine::new(&cfg, io, [false; 3]);
    m.load(prog, &argv, &[]).expect("load uffd_bench");
    let outcome = m.run().expect("run uffd_bench");
    drop(m);
    let d = t.elapsed();
    assert_eq!(outcome, Outcome::Exited(0), "uffd_bench {args:?} failed under pagelab");
    d
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
    println!("uffd bench: {mb} MiB ranges, {faults} round trips per iteration; host load average at start: {}", load_average());

    let cases: [(&str, Vec<String>, Vec<String>, u64); 4] = [
        ("wp_protect", strings(&["wp-protect", &mb_s, "1"]), strings(&["wp-protect", &mb_s, "0"]), mb * 256),
        ("wp_unprotect", strings(&["wp-unprotect", &mb_s, "1"]), strings(&["wp-unprotect", &mb_s, "0"]), mb * 256),
        ("wp_fault_round_trip", strings(&["wp-fault", &n_s, &n_s]), strings(&["wp-fault", &n_s, "0"]), faults),
        ("missing_copy_round_trip", strings(&["missing-copy", &n_s, &n_s]), strings(&["missing-copy", &n_s, "0"]), faults),
    ];
    let mut g = c.benchmark_group("uffd");
    g.sample_size(10);
    // Criterion sees only the differences; the real time is several times longer.
    g.warm_up_time(Duration::from_millis(200));
    g.measurement_time(Duration::from_millis(500));
    for (name, with, without, elements) in cases {
        g.throughput(Throughput::Elements(elements));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let w = emulate(&prog, &with, mem);
                    let wo = emulate(&prog, &without, mem);
                    total += w.saturating_sub(wo);
                }
                total
            })
        });
    }
    g.finish();
    println!("host load average at end: {}", load_average());
}

criterion_group!(benches, uffd);
criterion_main!(benches);
