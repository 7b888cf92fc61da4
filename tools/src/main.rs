//! `pagelab`: run static x86-64 Linux programs on a software MMU with real page tables.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "pagelab", version, about = "An instruction-level x86-64 paging emulator with a Linux-compatible guest kernel")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a static x86-64 Linux program. Exits with the guest's status, or 128+N when the
    /// guest is killed by signal N (123 on a guest deadlock, 124 when the instruction limit
    /// is reached, 125 when pagelab itself cannot continue).
    Run {
        /// Guest physical memory, e.g. 4G, 512M, 65536K (default 4G; backed lazily).
        #[arg(long, default_value = "4G", value_parser = parse_size)]
        mem: u64,
        /// Stop after this many guest instructions (exit status 124).
        #[arg(long)]
        instr_limit: Option<u64>,
        /// Write trace events (faults, walks, TLB fills/flushes, fault decisions, syscalls) as JSON Lines.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Print statistics (instructions, faults, TLB hits/misses, walks, flushes) on stderr at exit.
        #[arg(long)]
        stats: bool,
        /// A host path (file or directory) the guest may open read-only; repeatable.
        /// The program itself is always allowed.
        #[arg(long = "allow-path", value_name = "PATH")]
        allow_paths: Vec<PathBuf>,
        /// Virtual CPUs, each with its own registers, CR3 and TLB.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        vcpus: u16,
        /// Scheduling policy: rr (round-robin, fixed slices and quanta) or random (seeded
        /// choice of the next thread, of the vCPU order and of slice and quantum lengths).
        #[arg(long, value_enum, default_value = "rr")]
        sched: Sched,
        /// Instructions a vCPU runs before the next busy vCPU's turn, while two or more
        /// have work (random: the mean slice). Smaller interleaves vCPUs more finely.
        #[arg(long, default_value_t = emu::machine::DEFAULT_SLICE, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        slice: u64,
        /// Seed of the random policy: the same seed gives the same interleaving.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Check every TLB hit against the page tables; stop on a stale entry (a missing
        /// flush in the kernel).
        #[arg(long)]
        check_tlb: bool,
        /// Enable the pagelab test-hook syscall (for pagelab's own tests).
        #[arg(long, hide = true)]
        test_hooks: bool,
        /// Size of the emulated swap device that MADV_PAGEOUT writes anonymous pages to,
        /// e.g. 256M, 1G; 0 for none (pages then stay resident, as on Linux without swap).
        #[arg(long, default_value = "256M", value_parser = parse_swap_size)]
        swap: u64,
        /// Transparent huge pages for anonymous memory: always, madvise (only
        /// MADV_HUGEPAGE regions; the default, as on Linux's usual setting) or never.
        /// /sys/kernel/mm/transparent_hugepage/enabled shows it.
        #[arg(long, value_enum, default_value = "madvise")]
        thp: Thp,
        /// Initial number of 2 MiB hugetlb pages (/proc/sys/vm/nr_hugepages; the guest
        /// may change it), taken from guest memory at boot.
        #[arg(long, default_value_t = 0)]
        hugepages: u64,
        /// Initial number of 1 GiB hugetlb pages
        /// (/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages).
        #[arg(long = "hugepages-1g", default_value_t = 0)]
        hugepages_1g: u64,
        /// The program.
        prog: PathBuf,
        /// Its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Thp {
    Always,
    Madvise,
    Never,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Sched {
    Rr,
    Random,
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s}"))?;
    let v = n.checked_mul(mul).ok_or("size overflows")?;
    if !(16 << 20..=1 << 40).contains(&v) {
        return Err("memory size must be between 16M and 1T".into());
    }
    Ok(v)
}

/// A swap size: 0, or a size like `--mem` takes, up to 1T.
fn parse_swap_size(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        return Ok(0);
    }
    parse_size(s).map_err(|e| e.replace("memory size", "swap size"))
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "signal",
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { mem, instr_limit, trace, stats, allow_paths, vcpus, sched, slice, seed, check_tlb, test_hooks, swap, thp, hugepages, hugepages_1g, prog, args } => {
            let trace_out: Option<Box<dyn std::io::Write + Send>> = match &trace {
                Some(p) => match std::fs::File::create(p) {
                    Ok(f) => Some(Box::new(std::io::BufWriter::new(f))),
                    Err(e) => {
                        eprintln!("pagelab: cannot create trace file {}: {e}", p.display());
                        return ExitCode::from(125);
                    }
                },
                None => None,
            };
            let sched = match sched {
                Sched::Rr => emu::SchedPolicy::RoundRobin,
                Sched::Random => emu::SchedPolicy::Random,
            };
            let cfg = emu::Config { mem_bytes: mem, instr_limit, trace: trace_out, allow_paths, vcpus: vcpus as usize, sched, seed, slice, check_tlb, test_hooks, swap_bytes: swap, thp: match thp { Thp::Always => emu::ThpMode::Always, Thp::Madvise => emu::ThpMode::Madvise, Thp::Never => emu::ThpMode::Never }, hugepages, hugepages_1g };
            let mut argv = vec![prog.to_string_lossy().into_owned()];
            argv.extend(args);
            let envp: Vec<String> = std::env::vars_os().map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())).collect();
            let tty = [std::io::stdin().is_terminal(), std::io::stdout().is_terminal(), std::io::stderr().is_terminal()];
            let io = emu::Io::inherit();
            match emu::machine::run(cfg, &prog, &argv, &envp, io, tty) {
                Ok((outcome, st)) => {
                    if stats {
                        let per_vcpu: Vec<String> = st.vcpu_instructions.iter().map(|n| n.to_string()).collect();
                        eprintln!(
                            "pagelab: vcpus {} | instructions {} (per vCPU {}) | page faults {} | syscalls {} | TLB hits {} misses {} | walks {} | TLB flushes {} | shootdowns {} | context switches {} | decoded {}",
                            st.vcpus, st.instructions, per_vcpu.join(" "), st.page_faults, st.syscalls, st.tlb_hits, st.tlb_misses, st.walks, st.tlb_flushes, st.shootdowns, st.context_switches, st.decoded
                        );
                    }
                    match &outcome {
                        emu::Outcome::Signaled { sig, fault_addr, rip, .. } => {
                            let addr = fault_addr.map(|a| format!("{a:#x}")).unwrap_or_else(|| "-".into());
                            eprintln!("pagelab: guest killed by {} (signal {sig}) at address {addr}, rip {rip:#x}", signal_name(*sig));
                        }
                        emu::Outcome::InstrLimit => eprintln!("pagelab: instruction limit reached"),
                        emu::Outcome::Deadlock { report } => eprint!("pagelab: deadlock: {report}"),
                        emu::Outcome::Exited(_) => {}
                    }
                    ExitCode::from(outcome.host_status() as u8)
                }
                Err(e) => {
                    eprintln!("pagelab: {e}");
                    ExitCode::from(125)
                }
            }
        }
    }
}
