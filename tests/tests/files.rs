//! Files and waiting on them: pipes, eventfd, epoll, poll/select, dup/fcntl, and the
//! host-file rules. The guest programs run natively and under pagelab and must print the
//! same; the threaded ones also under two vCPUs and the random scheduler, whose every
//! interleaving must give the native transcript.

use emu::SchedPolicy;
use pagelab_tests::*;

/// Guest programs this file tests (see differential.rs::every_program_has_a_test).
const COVERED: &[&str] = &["files_misc", "pipe_epoll", "pipe_poll", "pipe_signals"];

#[test]
fn covered_programs_exist() {
    for p in COVERED {
        guest_progs::meta(p);
    }
}

#[test]
fn files_misc_matches_linux() {
    assert_same_default("files_misc");
}

#[test]
fn pipe_poll_matches_linux() {
    assert_same_default("pipe_poll");
}

#[test]
fn pipe_epoll_matches_linux() {
    assert_same_default("pipe_epoll");
}

#[test]
fn pipe_signals_matches_linux() {
    assert_same_default("pipe_signals");
}

/// SIGPIPE at its default action kills the writer.
#[test]
fn sigpipe_kills_by_default() {
    let native = run_native("pipe_signals", &["sigpipe"]);
    let emu = run_pagelab("pipe_signals", &["sigpipe"]);
    assert_eq!(native.outcome, Outcome::Signaled { sig: 13, core: false, fault_addr: None, rip: 0 });
    assert_eq!(normalize(&emu.outcome), normalize(&native.outcome), "stderr:\n{}", emu.stderr_str());
    assert_eq!(emu.stdout_str(), native.stdout_str());
}

/// The threaded programs under other machines: 2 vCPUs round-robin, and the seeded random
/// scheduler on 1 and 2 vCPUs. Any interleaving must print what Linux prints.
#[test]
fn pipe_programs_under_every_schedule() {
    for prog in ["pipe_poll", "pipe_epoll", "pipe_signals"] {
        let args = guest_progs::meta(prog).test_args;
        let native = run_native(prog, args);
        for (vcpus, sched, seed) in [(2, SchedPolicy::RoundRobin, 0), (1, SchedPolicy::Random, 5), (2, SchedPolicy::Random, 17), (2, SchedPolicy::Random, 123)] {
            let cfg = Config { vcpus, sched, seed, ..test_config() };
            let r = try_run_pagelab_with(cfg, prog, args).unwrap();
            assert_eq!(
                r.stdout_str(),
                native.stdout_str(),
                "{prog}: {vcpus} vCPUs {sched:?} seed {seed}\npagelab stderr:\n{}",
                r.stderr_str()
            );
            assert_eq!(r.outcome, Outcome::Exited(0), "{prog}: {vcpus} vCPUs {sched:?} seed {seed}");
        }
    }
}

/// The host-file rules (not Linux's: the guest is sandboxed): an allowed file opens
/// read-only; writing, creating or truncating it is EACCES; every other path, including
/// `..` and symlink escapes from an allowed directory, is ENOENT — but the root directory
/// (pagelab's own, listing its top directories) and /dev/null.
#[test]
fn host_files_are_read_only_and_sandboxed() {
    let dir = std::env::temp_dir().join(format!("pagelab-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data.txt"), "hello\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("escape")).unwrap();
    let cfg = Config { allow_paths: vec![dir.clone()], ..test_config() };
    let r = try_run_pagelab_with(cfg, "files_misc", &["paths", dir.to_str().unwrap()]).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let want = "\
open allowed O_RDONLY                    1
read allowed                             6
write allowed read-only fd               EBADF
open allowed O_WRONLY                    EACCES
open allowed O_RDWR                      EACCES
open allowed O_CREAT                     EACCES
open allowed O_TRUNC                     EACCES
create in allowed dir                    EACCES
open missing in allowed dir              ENOENT
open dir/../etc/passwd                   ENOENT
open symlink out of dir                  ENOENT
open /etc/passwd                         ENOENT
open /etc/passwd O_WRONLY                ENOENT
open /                                   1
access /etc/passwd                       ENOENT
stat /etc/passwd                         ENOENT
";
    assert_eq!(r.stdout_str(), want, "stderr:\n{}", r.stderr_str());
    assert!(!dir.join("new.txt").exists());
}
