//! Threads: the 4-thread quicksort (`qsort4`) under the emulator against the same binary
//! run natively, and the cost of the scheduler paths (`thr_pingpong`): a context switch
//! between two threads on one vCPU (futex hand-off and sched_yield) and a FUTEX_WAKE
//! with and without a waiter.
//!
//! Before the criterion runs it prints a summary: for qsort4, the best native wall time
//! and the native CPU time (user + system of the child: natively the threads run in
//! parallel on the host's cores, while pagelab interprets every vCPU on one host thread)
//! and the pagelab times on 1 and 4 vCPUs with their ratios; for the scheduler paths,
//! host nanoseconds per event. N defaults to 5,000,000 (`PAGELAB_BENCH_N` overrides it).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use emu::machine::{Machine, Stats};
use emu::{Config, Io, Outcome};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn n() -> String {
    std::env::var("PAGELAB_BENCH_N").unwrap_or_else(|_| "5000000".into())
}

/// Runs `prog args` under pagelab on `vcpus` vCPUs, output discarded; returns the
/// machine's statistics.
fn emulate(prog: &Path, args: &[&str], vcpus: usize) -> Stats {
    let io = Io { stdin: Box::new(std::io::empty()), stdout: Box::new(std::io::sink()), stderr: Box::new(std::io::sink()) };
    let cfg = Config { vcpus, mem_bytes: 1 << 30, ..Config::default() };
    let mut m = Machine::new(&cfg, io, [false; 3]);
    let mut argv = vec![prog.file_name().unwrap().to_string_lossy().into_owned()];
    argv.extend(args.iter().map(|s| s.to_string()));
    m.load(prog, &argv, &[]).expect("load");
    let outcome = m.run().expect("run");
    assert_eq!(outcome, Outcome::Exited(0), "{} {args:?} failed under pagelab", prog.display());
    m.stats()
}

/// Children's user + system time so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage writes only into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One native run: (wall, CPU) time.
fn native(prog: &Path, args: &[&str]) -> (Duration, Duration) {
    let cpu0 = children_cpu();
    let t = Instant::now();
    let status = Command::new(prog).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("spawn");
    let wall = t.elapsed();
    assert!(status.success(), "{} failed natively", prog.display());
    (wall, children_cpu() - cpu0)
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best: Option<(Duration, T)> = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        let d = t.elapsed();
        if best.as_ref().is_none_or(|(b, _)| d < *b) {
            best = Some((d, r));
        }
    }
    best.unwrap()
}

fn load_note() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

fn summary() {
    let q = guest_progs::path("qsort4");
    let n = n();
    println!("host load average at start: {}", load_note());
    let natives: Vec<(Duration, Duration)> = (0..3).map(|_| native(&q, &[&n])).collect();
    let wall = natives.iter().map(|r| r.0).min().unwrap();
    let cpu = natives.iter().map(|r| r.1).min().unwrap();
    let (t1, s1) = best_of(1, || emulate(&q, &[&n], 1));
    let (t4, s4) = best_of(2, || emulate(&q, &[&n], 4));
    println!(
        "qsort4 N={n}: native wall {:.3} s, native CPU {:.3} s; pagelab 1 vCPU {:.2} s ({:.1}x wall, {:.1}x CPU), 4 vCPUs {:.2} s ({:.1}x wall, {:.1}x CPU); {} guest instructions, {:.2} ns/instruction on 4 vCPUs, {} context switches",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        t1.as_secs_f64(),
        t1.as_secs_f64() / wall.as_secs_f64(),
        t1.as_secs_f64() / cpu.as_secs_f64(),
        t4.as_secs_f64(),
        t4.as_secs_f64() / wall.as_secs_f64(),
        t4.as_secs_f64() / cpu.as_secs_f64(),
        s4.instructions,
        t4.as_secs_f64() * 1e9 / s4.instructions as f64,
        s4.context_switches,
    );
    let _ = s1;

    let pp = guest_progs::path("thr_pingpong");
    const R: u64 = 200_000;
    let r = R.to_string();
    let per = |mode: &str, vcpus: usize| {
        let (t0, _) = best_of(3, || emulate(&pp, &[mode, "0"], vcpus));
        let (t, s) = best_of(3, || emulate(&pp, &[mode, &r], vcpus));
        (t.saturating_sub(t0).as_secs_f64() * 1e9, s)
    };
    let (t, s) = per("futex", 1);
    println!(
        "futex ping-pong, 1 vCPU: {:.0} ns per hand-off (FUTEX_WAKE with a waiter + FUTEX_WAIT + context switch), {} switches, {} guest instructions per hand-off",
        t / (2 * R) as f64,
        s.context_switches,
        s.instructions / (2 * R)
    );
    let (t, s) = per("yield", 1);
    println!("sched_yield ping-pong, 1 vCPU: {:.0} ns per context switch ({} switches)", t / s.context_switches as f64, s.context_switches);
    let (tw, _) = per("wake", 1);
    let (tg, _) = per("getppid", 1);
    println!(
        "FUTEX_WAKE without a waiter: {:.0} ns per call; getppid: {:.0} ns per call (the bare syscall round trip)",
        tw / R as f64,
        tg / R as f64
    );
    let (t, s) = per("futex", 2);
    println!("futex ping-pong, 2 vCPUs: {:.0} ns per hand-off ({} switches)", t / (2 * R) as f64, s.context_switches);
    println!("host load average at end: {}", load_note());
}

fn threads(c: &mut Criterion) {
    summary();
    let q = guest_progs::path("qsort4");
    let pp = guest_progs::path("thr_pingpong");
    let mut g = c.benchmark_group("threads");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("qsort4_500k_pagelab_4vcpu", |b| b.iter(|| emulate(&q, &["500000"], 4)));
    g.bench_function("qsort4_500k_native", |b| b.iter(|| native(&q, &["500000"])));
    g.throughput(Throughput::Elements(2 * 20_000));
    g.bench_function("futex_pingpong_1vcpu_handoffs", |b| b.iter(|| emulate(&pp, &["futex", "20000"], 1)));
    g.throughput(Throughput::Elements(20_000));
    g.bench_function("futex_wake_no_waiter", |b| b.iter(|| emulate(&pp, &["wake", "20000"], 1)));
    g.finish();
}

criterion_group!(benches, threads);
criterion_main!(benches);
