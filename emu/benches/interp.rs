//! Interpreter throughput: the `qsort` guest program (hand-written quicksort of N ints) run
//! in-process under the emulator, against the same binary run natively.
//!
//! Reports guest instructions per second (criterion throughput, from the machine's retired
//! instruction count) and, before the criterion runs, a summary line with the best-of-5
//! native and emulated times, their ratio and the nanoseconds per guest instruction. The
//! product target is a ratio of at most 20 for the default N of 5,000,000; this bench uses
//! a smaller N (override with `PAGELAB_BENCH_N`) to stay quick.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use emu::machine::Machine;
use emu::{Config, Io, Outcome};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn n() -> String {
    std::env::var("PAGELAB_BENCH_N").unwrap_or_else(|_| "500000".into())
}

/// Runs `prog` under pagelab with stdout and stderr discarded; returns the guest
/// instructions retired.
fn emulate(prog: &Path, n: &str) -> u64 {
    let io = Io { stdin: Box::new(std::io::empty()), stdout: Box::new(std::io::sink()), stderr: Box::new(std::io::sink()) };
    let mut m = Machine::new(&Config::default(), io, [false; 3]);
    let argv = ["qsort".to_string(), n.to_string()];
    m.load(prog, &argv, &[]).expect("load qsort");
    let outcome = m.run().expect("run qsort");
    assert_eq!(outcome, Outcome::Exited(0), "qsort failed under pagelab");
    m.stats().instructions
}

fn native(prog: &Path, n: &str) {
    let status = Command::new(prog).arg(n).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("spawn qsort");
    assert!(status.success(), "qsort failed natively");
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn interp(c: &mut Criterion) {
    let prog = guest_progs::path("qsort");
    let n = n();
    let instrs = emulate(&prog, &n);

    let t_native = best_of(5, || native(&prog, &n));
    let t_emu = best_of(5, || {
        emulate(&prog, &n);
    });
    let ratio = t_emu.as_secs_f64() / t_native.as_secs_f64();
    println!(
        "qsort N={n}: native {:.1} ms, pagelab {:.1} ms, ratio {ratio:.1}x, {instrs} guest instructions, {:.2} ns/instruction, {:.0} M instructions/s",
        t_native.as_secs_f64() * 1e3,
        t_emu.as_secs_f64() * 1e3,
        t_emu.as_secs_f64() * 1e9 / instrs as f64,
        instrs as f64 / t_emu.as_secs_f64() / 1e6,
    );

    let mut g = c.benchmark_group("qsort");
    g.sample_size(10);
    g.throughput(Throughput::Elements(instrs));
    g.bench_function("pagelab", |b| b.iter(|| emulate(&prog, &n)));
    g.bench_function("native", |b| b.iter(|| native(&prog, &n)));
    g.finish();
}

criterion_group!(benches, interp);
criterion_main!(benches);
