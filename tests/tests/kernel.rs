//! Guest-kernel properties that transcripts cannot show: frames are all returned when a
//! process exits, the virtual clock and RNG make runs repeatable, and statistics add up.

use emu::machine::Machine;
use emu::{Config, Io, Outcome};

fn machine() -> Machine {
    let io = Io { stdin: Box::new(std::io::empty()), stdout: Box::new(std::io::sink()), stderr: Box::new(std::io::sink()) };
    Machine::new(&Config { mem_bytes: 512 << 20, ..Config::default() }, io, [false; 3])
}

fn run(name: &str, args: &[&str]) -> Machine {
    let mut m = machine();
    let path = guest_progs::path(name);
    let mut argv = vec![name.to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    m.load(&path, &argv, &["LANG=C".to_string()]).expect("load");
    m.run().expect("run");
    m
}

#[test]
fn every_frame_is_freed_when_the_process_exits() {
    for (p, args) in [("hello", &[][..]), ("mem", &[][..]), ("touch", &["16"][..]), ("segv_ro", &[][..]), ("smc", &[][..])] {
        let m = run(p, args);
        assert_eq!(m.hw.pages.allocated, 0, "{p} leaked {} frames", m.hw.pages.allocated);
    }
}

#[test]
fn same_program_same_execution() {
    let a = run("qsort", &["20000"]).stats();
    let b = run("qsort", &["20000"]).stats();
    assert_eq!((a.instructions, a.page_faults, a.syscalls, a.walks), (b.instructions, b.page_faults, b.syscalls, b.walks));
}

#[test]
fn demand_paging_counts_one_fault_per_touched_page() {
    // touch maps 16 MiB and writes one byte per page: at least 4096 write faults.
    let m = run("touch", &["16"]);
    let s = m.stats();
    assert!(s.page_faults >= 4096, "{s:?}");
    assert_eq!(m.kernel.outcome, Some(Outcome::Exited(0)));
}
