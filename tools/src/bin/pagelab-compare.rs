//! `pagelab-compare`: runs the issue-4 userfaultfd benchmark (`guest-progs/c/uffd_bench.c`)
//! natively and under pagelab and prints, per operation, the host time per page (the
//! UFFDIO_WRITEPROTECT protect and un-protect of a populated range) or per round trip (a
//! uffd-wp fault resolved by a handler thread; a MISSING fault answered with UFFDIO_COPY).
//!
//! Under pagelab the guest's clock is virtual (one nanosecond per instruction), so the guest
//! cannot time itself. Instead every operation is isolated by running the program twice: once
//! with the operation (REPS = 1, or N faults) and once with everything but it (REPS = 0,
//! N = 0: the same population, registration, threads and teardown). The difference of the
//! two host times, divided by the pages or round trips, is the cost of the operation. Each
//! variant runs `--runs` times and the fastest run counts (other processes only ever add
//! time). pagelab runs in this process (`emu::machine::Machine`), so the figures are the
//! machine's own wall-clock time and this process's CPU time (user + system).
//!
//! Natively the same difference is taken from wall and CPU time of the child process. The
//! program also times the operation itself (`--time`): natively with clock_gettime, under
//! pagelab with the host clock read through pagelab's test-hook syscall (enabled for these
//! runs), so both "clock" columns are host time spent in the operation alone. For the
//! range operations (milliseconds within a run that spends a second populating 1 GiB) the
//! clock columns are the precise ones; the run differences are noisy under load.
//!
//! The machine is loaded while it runs if other builds share the cores: the load average is
//! printed before and after.

use clap::Parser;
use emu::machine::{Machine, Stats};
use emu::{Config, Io, Outcome};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "pagelab-compare", version, about = "Run the userfaultfd benchmark natively and under pagelab and compare host time per page / per round trip")]
struct Cli {
    /// Size of the range WRITEPROTECT protects and un-protects, in MiB (4 KiB pages).
    #[arg(long, default_value_t = 1024)]
    size_mb: u64,
    /// Fault round trips per fault benchmark.
    #[arg(long, default_value_t = 20000)]
    faults: u64,
    /// Runs of every variant; the fastest counts.
    #[arg(long, default_value_t = 3)]
    runs: u32,
    /// vCPUs of the pagelab machine (1: the handler and the worker share one CPU, as the
    /// native run does, which pins both threads to one host CPU).
    #[arg(long, default_value_t = 1)]
    vcpus: usize,
    /// The benchmark program (default: the `uffd_bench` built by guest-progs).
    #[arg(long)]
    prog: Option<PathBuf>,
    /// Only these operations (wp-protect, wp-unprotect, wp-fault, missing-copy); repeatable.
    #[arg(long = "op")]
    ops: Vec<String>,
    /// Skip the native runs.
    #[arg(long)]
    no_native: bool,
}

/// The figures of one set of runs: the fastest wall time, the smallest CPU time, and the
/// guest's own report (natively the `time:` line; under pagelab the machine's statistics).
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: Duration,
    cpu: Duration,
    /// Native: the program's clock_gettime total of the measured operations, ns.
    guest_ns: Option<f64>,
    /// The CPU time of the same (the `cpu` field of the `time:` line), ns.
    guest_cpu_ns: Option<f64>,
    /// pagelab: guest instructions retired.
    instructions: u64,
}

fn tv(t: libc::timeval) -> Duration {
    Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000)
}

fn rusage_cpu(who: libc::c_int) -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_else(|_| "?".into())
}

fn best(samples: Vec<Sample>) -> Sample {
    let mut b = samples[0];
    for s in &samples[1..] {
        b.wall = b.wall.min(s.wall);
        b.cpu = b.cpu.min(s.cpu);
        let min = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        b.guest_ns = min(b.guest_ns, s.guest_ns);
        b.guest_cpu_ns = min(b.guest_cpu_ns, s.guest_cpu_ns);
    }
    b
}

/// One native run of `prog --time args`: its stdout without the `time:` lines, and the sample.
fn native(prog: &Path, args: &[String]) -> Result<(String, Sample), String> {
    let cpu0 = rusage_cpu(libc::RUSAGE_CHILDREN);
    let t = Instant::now();
    let out = Command::new(prog).arg("--time").args(args).stdin(Stdio::null()).stderr(Stdio::inherit()).output().map_err(|e| format!("cannot run {}: {e}", prog.display()))?;
    let wall = t.elapsed();
    let cpu = rusage_cpu(libc::RUSAGE_CHILDREN) - cpu0;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("{} {args:?} failed natively ({}):\n{text}", prog.display(), out.status));
    }
    let (transcript, guest_ns, guest_cpu_ns) = split_time(&text);
    Ok((transcript, Sample { wall, cpu, guest_ns, guest_cpu_ns, instructions: 0 }))
}

/// The transcript without its `time:` line, and the wall and CPU times that line gives
/// (ns): "time: W ns total, cpu C ns, ...".
fn split_time(text: &str) -> (String, Option<f64>, Option<f64>) {
    let mut transcript = String::new();
    let (mut ns, mut cpu) = (None, None);
    for l in text.lines() {
        match l.strip_prefix("time: ") {
            Some(rest) => {
                ns = rest.split_whitespace().next().and_then(|n| n.parse::<f64>().ok());
                cpu = rest.split_once("cpu ").and_then(|(_, c)| c.split_whitespace().next()).and_then(|n| n.parse::<f64>().ok());
            }
            None => {
                transcript.push_str(l);
                transcript.push('\n');
            }
        }
    }
    (transcript, ns, cpu)
}

/// A writer that appends to a shared buffer (the guest's stdout under pagelab).
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

/// One pagelab run in this process: the guest's stdout and the sample (machine setup and
/// program loading included in both variants alike).
fn emulate(prog: &Path, args: &[String], vcpus: usize, mem: u64) -> Result<(String, Sample), String> {
    let out = Buf::default();
    let io = Io { stdin: Box::new(std::io::empty()), stdout: Box::new(out.clone()), stderr: Box::new(std::io::stderr()) };
    // The test hooks give the guest the host's clock (uffd_bench --time).
    let cfg = Config { vcpus, mem_bytes: mem, test_hooks: true, ..Config::default() };
    let mut argv = vec!["uffd_bench".to_string(), "--time".to_string()];
    argv.extend(args.iter().cloned());
    let cpu0 = rusage_cpu(libc::RUSAGE_SELF);
    let t = Instant::now();
    let mut m = Machine::new(&cfg, io, [false; 3]);
    m.load(prog, &argv, &[]).map_err(|e| format!("pagelab cannot load {}: {e}", prog.display()))?;
    let outcome = m.run().map_err(|e| format!("pagelab {args:?}: {e}"))?;
    let st: Stats = m.stats();
    drop(m);
    let wall = t.elapsed();
    let cpu = rusage_cpu(libc::RUSAGE_SELF) - cpu0;
    let text = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
    if outcome != Outcome::Exited(0) {
        return Err(format!("uffd_bench {args:?} under pagelab ended {outcome:?}:\n{text}"));
    }
    let (transcript, guest_ns, guest_cpu_ns) = split_time(&text);
    Ok((transcript, Sample { wall, cpu, guest_ns, guest_cpu_ns, instructions: st.instructions }))
}

struct Op {
    name: &'static str,
    /// The arguments with and without the measured operation.
    with: Vec<String>,
    without: Vec<String>,
    /// Pages or round trips the operation covers.
    count: u64,
    unit: &'static str,
    host: &'static str,
    target: &'static str,
}

fn ops(cli: &Cli) -> Vec<Op> {
    let mb = cli.size_mb.to_string();
    let n = cli.faults.to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let pages = cli.size_mb * (1 << 20) / 4096;
    let all = vec![
        Op { name: "wp-protect", with: s(&["wp-protect", &mb, "1"]), without: s(&["wp-protect", &mb, "0"]), count: pages, unit: "ns/page", host: "~60", target: "<= 20" },
        Op { name: "wp-unprotect", with: s(&["wp-unprotect", &mb, "1"]), without: s(&["wp-unprotect", &mb, "0"]), count: pages, unit: "ns/page", host: "~70", target: "<= 20" },
        Op { name: "wp-fault", with: s(&["wp-fault", &n, &n]), without: s(&["wp-fault", &n, "0"]), count: cli.faults, unit: "us/round trip", host: "~6.5", target: "<= 5" },
        Op { name: "missing-copy", with: s(&["missing-copy", &n, &n]), without: s(&["missing-copy", &n, "0"]), count: cli.faults, unit: "us/round trip", host: "~9", target: "<= 6" },
    ];
    all.into_iter().filter(|o| cli.ops.is_empty() || cli.ops.iter().any(|x| x == o.name)).collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let prog = cli.prog.clone().unwrap_or_else(|| guest_progs::path("uffd_bench"));
    for o in &cli.ops {
        if !["wp-protect", "wp-unprotect", "wp-fault", "missing-copy"].contains(&o.as_str()) {
            eprintln!("pagelab-compare: unknown operation {o:?} (wp-protect, wp-unprotect, wp-fault, missing-copy)");
            return ExitCode::from(2);
        }
    }
    let runs = cli.runs.max(1);
    // Guest memory: the range plus room for the program, page tables and the fault regions.
    let mem = ((cli.size_mb + 256) << 20).max(1 << 30);
    println!("pagelab-compare: {} ({} runs per variant, fastest counts; pagelab on {} vCPU(s))", prog.display(), runs, cli.vcpus);
    println!("load average at start: {}", load_average());
    let mut failed = false;
    for op in ops(&cli) {
        let per = |d: f64| {
            let ns = d / op.count.max(1) as f64;
            if op.unit.starts_with("us") { ns / 1000.0 } else { ns }
        };
        let diff = |a: Duration, b: Duration| a.as_secs_f64() * 1e9 - b.as_secs_f64() * 1e9;
        let row = |label: String| -> Result<String, String> {
            let fmt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{:.2}", per(x)));
            let mut native_line = String::from("  native : skipped");
            let mut native_transcript = None;
            if !cli.no_native {
                let mut w = Vec::new();
                let mut wo = Vec::new();
                let mut tr = String::new();
                for _ in 0..runs {
                    let (t, s) = native(&prog, &op.with)?;
                    tr = t;
                    w.push(s);
                    wo.push(native(&prog, &op.without)?.1);
                }
                let (w, wo) = (best(w), best(wo));
                native_line = format!(
                    "  native : clock {} (CPU {}) | run difference: wall {} CPU {}",
                    fmt(w.guest_ns),
                    fmt(w.guest_cpu_ns),
                    fmt(Some(diff(w.wall, wo.wall))),
                    fmt(Some(diff(w.cpu, wo.cpu)))
                );
                native_transcript = Some(tr);
            }
            let mut w = Vec::new();
            let mut wo = Vec::new();
            let mut tr = String::new();
            for _ in 0..runs {
                let (t, s) = emulate(&prog, &op.with, cli.vcpus, mem)?;
                tr = t;
                w.push(s);
                wo.push(emulate(&prog, &op.without, cli.vcpus, mem)?.1);
            }
            if let Some(nt) = native_transcript {
                if nt != tr {
                    return Err(format!("{}: transcripts differ\nnative:\n{nt}pagelab:\n{tr}", op.name));
                }
            }
            let insns = w[0].instructions.saturating_sub(wo[0].instructions) as f64 / op.count.max(1) as f64;
            let (w, wo) = (best(w), best(wo));
            Ok(format!(
                "{label} ({}; host reference {}, target {})\n{native_line}\n  pagelab: clock {} (CPU {}) | run difference: wall {} CPU {} | {insns:.0} guest instructions per {}",
                op.unit,
                op.host,
                op.target,
                fmt(w.guest_ns),
                fmt(w.guest_cpu_ns),
                fmt(Some(diff(w.wall, wo.wall))),
                fmt(Some(diff(w.cpu, wo.cpu))),
                if op.unit.ends_with("page") { "page" } else { "round trip" },
            ))
        };
        let label = match op.name {
            "wp-protect" => format!("WRITEPROTECT protect, {} MiB", cli.size_mb),
            "wp-unprotect" => format!("WRITEPROTECT un-protect, {} MiB", cli.size_mb),
            "wp-fault" => format!("uffd-wp fault round trip, {}", cli.faults),
            _ => format!("MISSING + UFFDIO_COPY, {}", cli.faults),
        };
        match row(label) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("pagelab-compare: {e}");
                failed = true;
            }
        }
    }
    println!("load average at end: {}", load_average());
    println!("clock: the program's own timing of the operation in host time: natively clock_gettime, under pagelab the host clock through the test-hook syscall; wall/CPU: the difference between whole runs with and without the operation");
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}
