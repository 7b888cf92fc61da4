//! Random mm + userfaultfd programs (issue 11): `guest-progs/c/uffd_fuzz.c SEED [NOPS]`
//! draws its regions, uffd features and NOPS operations from SEED and prints one line per
//! operation; it runs natively and under pagelab and the two transcripts must be identical.
//!
//! * `fuzz_ci`: [`CI_SEEDS`] seeds (env `PAGELAB_FUZZ_SEEDS` overrides the count,
//!   `PAGELAB_FUZZ_FIRST` the first seed), each on a machine shape derived from the seed
//!   ([`shape`]: 1-3 vCPUs, round-robin or random scheduling, TLB checking on some).
//! * `fuzz_long` (`cargo test --release -- --ignored`): 10,000 seeds, same overrides.
//! * `fuzz_regressions`: every seed of [`REGRESSIONS`], always.
//!
//! A divergent seed is shrunk to the shortest failing prefix: the ops are drawn from the
//! PRNG alone, so `SEED K` runs exactly the first K ops of `SEED N`. Every divergence is
//! reported with its seed, the shrunk NOPS, the machine shape and the first differing line;
//! then the test fails. A seed whose native run is not reproducible (two native runs
//! differ) or ends badly natively is reported as such and never counted as a divergence.
//! Run one by hand: `uffd_fuzz SEED NOPS` natively and
//! `pagelab run --swap 0 [--vcpus N --sched random --seed S] uffd_fuzz SEED NOPS`.

use emu::SchedPolicy;
use pagelab_tests::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Every guest program this file tests (checked by differential.rs).
const COVERED: &[&str] = &["uffd_fuzz"];

const PROG: &str = "uffd_fuzz";

/// Ops per program (the program's default).
const NOPS: u32 = 60;

/// Seeds in the CI test.
const CI_SEEDS: u64 = 300;

/// Seeds in the long run.
const LONG_SEEDS: u64 = 10_000;

/// Divergences found, kept as (seed, NOPS), shrunk: one per class, with what Linux does.
const REGRESSIONS: &[(u64, u32)] = &[
    // MADV_COLLAPSE of one page of a 16-page memfd MAP_PRIVATE VMA (no aligned 2 MiB fits
    // the VMA): Linux EINVAL, pagelab 0.
    (38, 1),
    // MADV_COLLAPSE of pages 143..150 of a 1024-page MADV_HUGEPAGE anon VMA (inside one
    // PMD, start unaligned: hstart > hend): Linux EINVAL, pagelab 0.
    (4, 4),
    // mremap(MAYMOVE|FIXED) of 16 pages (an 8-page VMA and 8 of the next) onto itself:
    // Linux EINVAL (overlap, checked before the VMAs), pagelab EFAULT.
    (181, 1),
    // mremap(addr, 64 pages, 64 pages, 0) over two VMAs: Linux returns addr, pagelab EFAULT.
    (9, 2),
    // mremap shrink of 512 pages over three VMAs, the tail registered with EVENT_UNMAP:
    // Linux unmaps the tail (UNMAP event) and returns addr, pagelab EFAULT.
    (236, 4),
    // mmap(MAP_FIXED) over a uffd-registered range with EVENT_UNMAP: Linux sends UNMAP
    // (start, len of the replaced range), pagelab nothing.
    (263, 1),
    // PAGEMAP_SCAN over untouched pages (no page table) of a memfd MAP_PRIVATE VMA
    // registered MISSING|WP|MINOR: Linux category 0x2 (WRITTEN), pagelab 0.
    (14, 1),
    // mprotect(RW) of one page of a RW huge-zero-PMD-mapped THP VMA (same protection):
    // Linux keeps the huge zero PMD (pagemap pf), pagelab splits it (4 KiB zero PTEs, p).
    (91, 10),
    // MADV_PAGEOUT of a mapped shmem page without swap: Linux unmaps it (pagemap none,
    // the page stays in the page cache), pagelab keeps it mapped.
    (57, 11),
    // Child of fork over MAP_SHARED|MAP_ANONYMOUS pages mapped in the parent: Linux no
    // exclusive bit in the child's pagemap, pagelab sets it.
    (82, 15),
    // MREMAP_DONTUNMAP: Linux keeps the source VMA (empty, readable: zero), pagelab leaves
    // a hole (SIGSEGV MAPERR in the child; mprotect/guard-install over it ENOMEM).
    (40, 4),
    (143, 32),
    // MREMAP_DONTUNMAP with EVENT_REMAP: Linux sends REMAP, pagelab nothing.
    (261, 2),
    // MADV_DONTNEED after a DONTUNMAP move of part of a MISSING-registered VMA: Linux no
    // REMOVE event for the rest of the VMA, pagelab sends one.
    (228, 13),
    // Fork after MADV_GUARD_INSTALL on a whole memfd MAP_PRIVATE VMA: Linux's child keeps
    // the guard markers (SIGSEGV), pagelab's child reads zeros.
    (291, 13),
    // MADV_DONTNEED of a range with a hole (ENOMEM) whose mapped part is registered with
    // EVENT_REMOVE: Linux still sends REMOVE for the mapped part, pagelab nothing.
    (3, 42),
    // UFFDIO_COPY into a page of a huge zero PMD made PROT_NONE: Linux EEXIST, pagelab
    // copies (0, 4096).
    (12, 40),
    // UFFDIO_ZEROPAGE of a 4-page block across a VMA boundary over a populated page:
    // Linux ENOENT, pagelab EEXIST: two separately faulted VMAs (two anon_vmas) that
    // Linux does not merge after an mprotect round trip, pagelab did.
    (174, 38),
    // A write after UFFDIO_REGISTER(WP) of a shmem region: Linux SIGSEGV ACCERR, pagelab
    // writes (not classified yet).
    (222, 43),
    // PAGEMAP_SCAN after a write fault on a memfd MAP_PRIVATE page past EOF (SIGBUS):
    // Linux has no page table there (category 0), pagelab kept the one it allocated
    // (WRITTEN).
    (2438, 2),
    // mremap(FIXED) of never-faulted pages of a WP-registered anon VMA onto a place next
    // to the rest of that VMA, with EVENT_UNMAP and no EVENT_REMAP: the new VMA merges
    // into the source's, whose registration goes before the source is unmapped, so Linux
    // sends no UNMAP for the source; pagelab did.
    (3977, 1),
    (8387, 1),
    // The same after MADV_GUARD_INSTALL on the VMA (which gives it an anon_vma, so the
    // moved pages keep their pgoff and do not merge): Linux sends the UNMAP.
    (9500, 21),
    // A pure mremap move over two VMAs, the second uffd-armed: Linux moves the first
    // (UNMAP of its destination) and then fails EFAULT; pagelab failed before moving.
    (1649, 4),
    // MADV_PAGEOUT of part of a huge zero PMD: Linux leaves it (pagemap pf in the
    // child), pagelab split it into zero PTEs (p).
    (1436, 7),
    // MADV_COLLAPSE in a MISSING-registered THP VMA whose 2 MiB holds zero-page PTEs:
    // Linux EBUSY (pte_none_or_zero in a uffd-armed VMA), pagelab collapsed.
    (5459, 5),
    // MADV_COLLAPSE over a registered THP VMA: EBUSY at the first 2 MiB ends the call
    // (Linux EBUSY); pagelab went on and reported the next one's EINVAL.
    (9991, 8),
    // MADV_PAGEOUT of shmem pages only read (clean) drops them from the page cache on
    // Linux without swap: the forked child's pagemap then has a hole there; pagelab kept
    // them, and fault-around mapped them in the child.
    (1758, 13),
    // The same in a MINOR-registered memfd: Linux allocates the dropped pages afresh on
    // the next read (no MINOR fault, the cache has no page); pagelab raised MINOR faults.
    (2377, 15),
    // MADV_PAGEOUT of a shared-anon range with a PROT_NONE page: Linux unmaps that PTE
    // too (pte_present), pagelab skipped it and the forked child saw it mapped.
    (4304, 28),
    // UFFDIO_COPY over a range whose VMA had a guard page installed: VM_MAYBE_GUARD is
    // sticky and does not prevent merging, so Linux has one VMA and copies; pagelab had
    // kept the VMAs apart and failed with ENOENT.
    (700, 36),
    // MADV_COLLAPSE of a 2 MiB of only none and zero-page PTEs (a split huge zero page):
    // Linux collapses, pagelab said EINVAL (SCAN_PAGE_RO is not what 6.18 does here).
    (9254, 22),
    // The same for the second 2 MiB of a THP region after DONTNEED of some of its pages.
    (3979, 33),
    // mremap of a never-faulted page of a registered anon VMA to a place inside the same
    // VMA, without EVENT_REMAP: the new VMA merges into the source VMA, which loses its
    // registration as a whole (Linux: no MISSING faults in the part that stayed; pagelab
    // kept it registered there).
    (5058, 9),
    // The same, seen by a later UFFDIO_CONTINUE: ENOENT (not registered) on Linux,
    // EINVAL (registered anon) in pagelab.
    (977, 26),
    // A write fault in a MISSING-registered private memfd VMA answered with SIGBUS: Linux
    // gave the VMA its anon_vma first (do_cow_fault's vmf_anon_prepare), so fork copies
    // its page tables and the page the parent maps is shared; pagelab gave none.
    (2438, 48),
    (6634, 25),
    // mremap of never-faulted pages of a registered anon VMA to right after themselves
    // (the destination first unmapped from that VMA), without EVENT_REMAP: copy_vma merges
    // the new VMA with the source VMA, which includes the moved range, so the part that
    // stays loses its registration (Linux: a write there is not a MISSING fault).
    (9679, 20),
    // MADV_COLLAPSE of a PROT_NONE huge-zero-PMD 2 MiB: Linux 0 (SCAN_PMD_MAPPED),
    // pagelab EINVAL (it saw no PMD).
    (2867, 54),
    // MADV_COLLAPSE of a MISSING-registered VMA: a PROT_NONE huge PMD, then PROT_NONE
    // zero-page PTEs: Linux EBUSY (pte_present holds PROT_NONE), pagelab EINVAL.
    (3956, 51),
    // MADV_COLLAPSE where the first 2 MiB has no page table: Linux EINVAL at once
    // (SCAN_PMD_NONE ends the call), pagelab went on and said EBUSY for the next.
    (5522, 37),
    // MADV_PAGEOUT over a PTE-mapped THP one of whose pages mremap moved below it: the
    // folio split maps its zero-filled pages to the zero page wherever they are mapped
    // (Linux: present, not exclusive; pagelab looked for them at the wrong addresses).
    (8854, 33),
    // The same seen in pagemap's exclusive bits after a fork, and after MADV_COLD.
    (895, 49),
    (2624, 44),
    // PAGEMAP_SCAN with WP_MATCHING stopping inside a THP it found already protected:
    // Linux reports it HUGE and leaves the PMD whole (only a written one is split).
    (1355, 18),
];

/// The machine shape of a seed: (vCPUs, policy, scheduler seed, TLB checking).
fn shape(seed: u64) -> (usize, SchedPolicy, u64, bool) {
    let vcpus = 1 + (seed % 3) as usize;
    let sched = if (seed / 3) % 2 == 0 { SchedPolicy::RoundRobin } else { SchedPolicy::Random };
    (vcpus, sched, seed, seed % 7 == 0)
}

fn config(seed: u64) -> Config {
    let (vcpus, sched, s, check_tlb) = shape(seed);
    // No swap: the host has none, so MADV_PAGEOUT leaves anonymous pages resident.
    Config { vcpus, sched, seed: s, check_tlb, swap_bytes: 0, ..test_config() }
}

/// The program's arguments: SEED NOPS, then `PAGELAB_FUZZ_EXTRA` (whitespace-separated;
/// `-N` disables op class N of the program's `enum op`, to get a very common divergence
/// out of the way while looking for others; it changes what the seeds draw).
fn args(seed: u64, nops: u32) -> Vec<String> {
    let mut a = vec![seed.to_string(), nops.to_string()];
    a.extend(std::env::var("PAGELAB_FUZZ_EXTRA").unwrap_or_default().split_whitespace().map(str::to_owned));
    a
}

/// What a pagelab run printed, or why it did not run.
fn pagelab(seed: u64, nops: u32) -> Result<Run, String> {
    let a = args(seed, nops);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    try_run_pagelab_with(config(seed), PROG, &a).map_err(|e| e.to_string())
}

fn native(seed: u64, nops: u32) -> Run {
    let a = args(seed, nops);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    run_native(PROG, &a)
}

/// The result of one seed.
enum Verdict {
    Same,
    /// The native run is not usable as the oracle (flaky, or did not exit 0).
    NativeUnusable(String),
    Diverges(Divergence),
}

struct Divergence {
    seed: u64,
    nops: u32,
    line: usize,
    native: String,
    pagelab: String,
    context: String,
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (v, p, s, t) = shape(self.seed);
        writeln!(f, "seed {} NOPS {} ({v} vCPUs, {p:?}, check_tlb {t}; sched seed {s}), line {}:", self.seed, self.nops, self.line)?;
        writeln!(f, "{}", self.context)?;
        writeln!(f, "  native : {}", self.native)?;
        write!(f, "  pagelab: {}", self.pagelab)
    }
}

/// Where two transcripts first differ: (1-based line, native line, pagelab line, the lines
/// before it back to the previous op line).
fn first_diff(a: &str, b: &str) -> Option<(usize, String, String, String)> {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let i = la.iter().zip(&lb).take_while(|(x, y)| x == y).count();
    if i == la.len() && i == lb.len() {
        return None;
    }
    let show = |l: &[&str]| l.get(i).map_or("<end of output>".to_string(), |s| s.to_string());
    // Context: the region table and the last few op lines before the difference.
    let head: Vec<&str> = la.iter().take_while(|l| !l.starts_with(|c: char| c.is_ascii_digit())).copied().collect();
    let from = i.saturating_sub(6).max(head.len().min(i));
    let mut ctx: Vec<String> = head.iter().map(|l| format!("  | {l}")).collect();
    ctx.extend(la[from..i].iter().map(|l| format!("  | {l}")));
    Some((i + 1, show(&la), show(&lb), ctx.join("\n")))
}

fn outcome_str(r: &Run) -> String {
    format!("{}\n<outcome {:?}>\n", r.stdout_str(), normalize(&r.outcome))
}

/// Native vs pagelab for `seed nops`: None if the same, else (line, native, pagelab, context).
fn compare(seed: u64, nops: u32, nat: &Run) -> Option<(usize, String, String, String)> {
    let emu = match pagelab(seed, nops) {
        Ok(r) => outcome_str(&r),
        Err(e) => format!("<pagelab error: {e}>\n"),
    };
    first_diff(&outcome_str(nat), &emu)
}

fn check_seed(seed: u64, nops: u32) -> Verdict {
    let nat = native(seed, nops);
    if nat.outcome != Outcome::Exited(0) || nat.stdout_str().contains("ALARM") || nat.stdout_str().contains("WARNING") {
        return Verdict::NativeUnusable(format!("seed {seed} {nops}: native run ended {:?}:\n{}", nat.outcome, nat.stdout_str()));
    }
    let Some((line, n, p, ctx)) = compare(seed, nops, &nat) else { return Verdict::Same };
    // A native run that does not reproduce itself is no oracle.
    let again = native(seed, nops);
    if again.stdout != nat.stdout {
        let d = first_diff(&nat.stdout_str(), &again.stdout_str()).unwrap();
        return Verdict::NativeUnusable(format!("seed {seed} {nops}: two native runs differ at line {}:\n  {}\n  {}", d.0, d.1, d.2));
    }
    // Shrink: the op of the first differing line (or the last op line before it) is the
    // first candidate; go up from there until the prefix diverges.
    let op_at = |s: &str| s.get(..2).and_then(|x| x.parse::<u32>().ok());
    let lines: Vec<String> = nat.stdout_str().lines().map(str::to_owned).collect();
    let start = lines[..(line - 1).min(lines.len())].iter().rev().find_map(|l| op_at(l)).map_or(0, |k| k + 1);
    let start = op_at(&n).map_or(start, |k| k + 1).max(1);
    let mut best = Divergence { seed, nops, line, native: n, pagelab: p, context: ctx };
    for k in start..nops {
        let nat_k = native(seed, k);
        if nat_k.outcome != Outcome::Exited(0) {
            break;
        }
        if let Some((line, n, p, ctx)) = compare(seed, k, &nat_k) {
            best = Divergence { seed, nops: k, line, native: n, pagelab: p, context: ctx };
            break;
        }
    }
    Verdict::Diverges(best)
}

/// Seeds that still diverge, each with its class: reported by every run but not failures
/// (a fix makes one match, and the run then fails until it leaves this list). Open
/// work of issue 11.
/// Entries are (seed, NOPS as run, class).
/// (Empty: 205, 87 and 167, the last three, were the clean shmem pages MADV_PAGEOUT keeps.)
const KNOWN_DIVERGENT: &[(u64, u32, &str)] = &[];

/// Runs `seeds` on a few worker threads; reports and fails on any divergence not in
/// KNOWN_DIVERGENT, and on a KNOWN_DIVERGENT seed of the run that now matches.
fn run_seeds(what: &str, seeds: Vec<(u64, u32)>) {
    let jobs = std::env::var("PAGELAB_FUZZ_JOBS").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    });
    let next = AtomicU64::new(0);
    let found: Mutex<Vec<Divergence>> = Mutex::new(Vec::new());
    let unusable: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let t0 = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&(seed, nops)) = seeds.get(i) else { break };
                match check_seed(seed, nops) {
                    Verdict::Same => {}
                    Verdict::NativeUnusable(m) => unusable.lock().unwrap().push(m),
                    Verdict::Diverges(d) => found.lock().unwrap().push(d),
                }
            });
        }
    });
    let mut found = found.into_inner().unwrap();
    found.sort_by_key(|d| d.seed);
    // The NOPS each seed was run with (a divergence reports its shrunk NOPS).
    let ran = |seed: u64| seeds.iter().find(|s| s.0 == seed).map_or(NOPS, |s| s.1);
    let known = |seed: u64| KNOWN_DIVERGENT.iter().find(|(s, n, _)| *s == seed && *n == ran(seed)).map(|(_, _, c)| *c);
    for d in found.iter().filter(|d| known(d.seed).is_some()) {
        eprintln!("{what}: known divergence, seed {} NOPS {}: {}", d.seed, d.nops, known(d.seed).unwrap());
    }
    let fixed: Vec<u64> = seeds.iter().map(|s| s.0).filter(|&s| known(s).is_some() && !found.iter().any(|d| d.seed == s)).collect();
    assert!(fixed.is_empty(), "{what}: KNOWN_DIVERGENT seeds {fixed:?} now match Linux: take them off the list");
    let found: Vec<Divergence> = found.into_iter().filter(|d| known(d.seed).is_none()).collect();
    let unusable = unusable.into_inner().unwrap();
    eprintln!("{what}: {} seeds in {:.1?}, {} divergent, {} with an unusable native run", seeds.len(), t0.elapsed(), found.len(), unusable.len());
    for m in &unusable {
        eprintln!("native unusable: {m}");
    }
    if !found.is_empty() {
        let mut msg = format!("{what}: {} of {} seeds diverge (seed NOPS):", found.len(), seeds.len());
        for d in &found {
            msg += &format!(" ({}, {})", d.seed, d.nops);
        }
        msg += "\n";
        for d in &found {
            msg += &format!("\n{d}\n");
        }
        panic!("{msg}");
    }
}

fn seed_range(default_count: u64) -> Vec<(u64, u32)> {
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<u64>().ok());
    let count = env("PAGELAB_FUZZ_SEEDS").unwrap_or(default_count);
    let first = env("PAGELAB_FUZZ_FIRST").unwrap_or(1);
    (first..first + count).map(|s| (s, NOPS)).collect()
}

#[test]
fn covered_program_exists() {
    for p in COVERED {
        assert_eq!(guest_progs::meta(p).expect, guest_progs::Expect::Exit(0), "{p}");
    }
}

/// The native transcript is a function of the seed: the same seed twice gives the same
/// bytes (the full proof is 1000 seeds twice, see the commit that added the program).
#[test]
fn fuzz_native_is_deterministic() {
    for seed in [1, 2, 3, 17, 42] {
        let (a, b) = (native(seed, NOPS), native(seed, NOPS));
        assert_eq!(a.outcome, Outcome::Exited(0), "seed {seed}:\n{}", a.stdout_str());
        assert!(a.stdout == b.stdout, "seed {seed}: two native runs differ\n{}", first_difference(&a.stdout, &b.stdout));
    }
}

#[test]
fn fuzz_regressions() {
    run_seeds("regressions", REGRESSIONS.to_vec());
}

#[test]
fn fuzz_ci() {
    run_seeds("fuzz_ci", seed_range(CI_SEEDS));
}

#[test]
#[ignore = "long: 10,000 seeds (PAGELAB_FUZZ_SEEDS overrides)"]
fn fuzz_long() {
    run_seeds("fuzz_long", seed_range(LONG_SEEDS));
}
