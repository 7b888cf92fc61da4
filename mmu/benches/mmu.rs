//! MMU micro-benchmarks: TLB hits (the interpreter's hot path, 64 per iteration) and full walks of 4 KiB,
//! 2 MiB and 1 GiB mappings with A/D updates. Targets: hit <= 2 ns, 4-level walk <= 20 ns.
//!
//! The walks are writes that cycle through 256 pages, each with its own leaf entry; A and D
//! are cleared in every entry (untimed) before each batch of 256, so every walk sets A and D
//! in its leaf (and the first of a batch sets A in the shared upper entries), as a first
//! touch after a TLB miss does.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mmu::{walk, Access, AccessKind, ControlRegs, Entry, PageSize, PhysAddr, PhysMem, Tlb, VirtAddr};
use std::hint::black_box;
use std::time::{Duration, Instant};

const PWU: u64 = Entry::PRESENT | Entry::WRITABLE | Entry::USER;
const BASE: u64 = 0x0000_7f00_0000_0000;
const PAGES: u64 = 256;

/// `PAGES` mappings of `size` starting at BASE, each with its own leaf entry. Returns memory,
/// control state and the slots of every entry written (leaves and tables).
fn setup(size: PageSize) -> (PhysMem, ControlRegs, Vec<PhysAddr>) {
    let mut mem = PhysMem::new(64 << 20);
    let mut next = 0x1000u64;
    let mut alloc = || {
        let a = next;
        next += 0x1000;
        a
    };
    let pml4 = alloc();
    let mut leaves = Vec::new();
    for i in 0..PAGES {
        let va = BASE + i * size.bytes();
        let v = VirtAddr::new(va).unwrap();
        let depth = match size {
            PageSize::Size4K => 4,
            PageSize::Size2M => 3,
            PageSize::Size1G => 2,
        };
        let mut table = pml4;
        for level in (5 - depth..=4).rev() {
            let slot = table + 8 * v.table_index(level) as u64;
            if level == 5 - depth {
                let ps = if depth < 4 { Entry::HUGE } else { 0 };
                mem.write_u64(PhysAddr::new(slot), (i << 30) | PWU | ps);
                leaves.push(PhysAddr::new(slot));
            } else {
                let e = mem.read_u64(PhysAddr::new(slot));
                table = if e & 1 != 0 {
                    e & Entry::ADDR_MASK_52
                } else {
                    let t = alloc();
                    mem.write_u64(PhysAddr::new(slot), t | PWU);
                    leaves.push(PhysAddr::new(slot));
                    t
                };
            }
        }
    }
    (mem, ControlRegs::linux_user(pml4, 39), leaves)
}

fn bench(c: &mut Criterion) {
    let (mut mem, ctl, _) = setup(PageSize::Size4K);
    let mut tlb = Tlb::new();
    let read = Access::user(AccessKind::Read);
    let write = Access::user(AccessKind::Write);
    for i in 0..64 {
        tlb.translate(&mut mem, &ctl, BASE + i * 4096, write).unwrap();
    }
    // Each iteration does 64 lookups over 64 distinct cached pages (criterion's per-iteration
    // overhead would otherwise dominate); divide the reported time by 64.
    let mut g = c.benchmark_group("tlb_hit_x64");
    g.throughput(Throughput::Elements(64));
    for (name, acc) in [("read", read), ("write", write)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut sum = 0u64;
                for i in 0..64 {
                    sum = sum.wrapping_add(tlb.lookup(black_box(&ctl), black_box(BASE + i * 4096 + 8), acc).unwrap());
                }
                sum
            })
        });
    }
    g.bench_function("loop_overhead", |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for i in 0..64 {
                sum = sum.wrapping_add(black_box(BASE + i * 4096 + 8));
            }
            sum
        })
    });
    g.finish();

    for (name, size) in [("walk_4k_write", PageSize::Size4K), ("walk_2m_write", PageSize::Size2M), ("walk_1g_write", PageSize::Size1G)] {
        let (mut mem, ctl, slots) = setup(size);
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    // Untimed: clear A/D in every entry, as before a first touch.
                    for &s in &slots {
                        let e = mem.read_u64(s);
                        mem.write_u64(s, e & !(Entry::ACCESSED | Entry::DIRTY));
                    }
                    let n = (iters - done).min(PAGES);
                    let start = Instant::now();
                    for p in 0..n {
                        black_box(walk(&mut mem, &ctl, black_box(BASE + p * size.bytes() + 0x10), write).unwrap());
                    }
                    total += start.elapsed();
                    done += n;
                }
                total
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
