//! /proc/PID (Linux: fs/proc/base.c, array.c, task_mmu.c), in the small: `/proc/self` and
//! `/proc/<pid>` for every thread group (zombies included, until reaped) and thread, with
//! the entries in [`PID_ENTRIES`].
//!
//! Files are generated whole when opened and read from that snapshot (an in-memory
//! `FileKind::HostFile`), which is what a reader that opens, reads and closes sees in
//! Linux too. The path syscalls in `syscall::fs` hand every path under `/proc/` here:
//! open ([`open`]), stat ([`stat`]), access ([`access`]) and readlink ([`readlink`]).
//!
//! Adding an entry: one line in [`PID_ENTRIES`] naming its generator.

use super::errno::{Errno, KResult};
use super::file::{Fd, File, FileKind};
use super::mm::pagewalk::{Action, Hole, MmWalkOps};
use super::mm::pgtable::Slot;
use super::mm::swapops::{softleaf_from_pte, SoftLeaf};
use super::syscall::{ok, Sys, SysResult};
use super::task::{TaskState, Tid};
use super::Kernel;
use std::cell::RefCell;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::rc::Rc;

/// What a /proc/PID entry is.
#[derive(Clone, Copy)]
pub enum EntryKind {
    /// A symbolic link, resolved by the function (None: a dangling link, ENOENT).
    Link(fn(&Sys, Target) -> Option<String>),
    /// A read-only file whose contents the function generates.
    File(fn(&mut Sys, Target) -> Vec<u8>),
    /// A read-only file read live: the function answers each read (position, byte count)
    /// from the state at that moment ([`LiveFile`]).
    Live(LiveRead),
}

/// Answers one read of a live /proc file: (target, position, count) → the bytes.
pub type LiveRead = fn(&mut Sys, Target, u64, usize) -> KResult<Vec<u8>>;

/// An open live /proc file (`FileKind::ProcLive`): /proc/PID/pagemap must show the page
/// tables as they are when read (a program reads it again after each change), so it is
/// not a snapshot taken at open like the other entries.
pub struct LiveFile {
    pub target: Target,
    pub read: LiveRead,
    pub pos: u64,
    /// Files that can be written (/proc/PID/mem): (target, position, bytes) → written.
    pub write: Option<LiveWrite>,
}

/// Answers one write of a live /proc file.
pub type LiveWrite = fn(&mut Sys, Target, u64, &[u8]) -> KResult<usize>;

/// The entries of /proc/PID.
pub const PID_ENTRIES: &[(&str, EntryKind)] = &[
    ("cmdline", EntryKind::File(proc_pid_cmdline)),
    ("exe", EntryKind::Link(proc_exe_link)),
    ("maps", EntryKind::File(proc_pid_maps)),
    ("mem", EntryKind::Live(proc_pid_mem_read)),
    ("pagemap", EntryKind::Live(proc_pid_pagemap)),
    ("smaps", EntryKind::File(proc_pid_smaps)),
    ("stat", EntryKind::File(proc_pid_stat)),
    ("status", EntryKind::File(proc_pid_status)),
];

/// The task a /proc/PID directory describes: the thread group and the thread (the leader
/// for /proc/TGID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub tgid: Tid,
    pub tid: Tid,
}

/// A resolved /proc path.
#[derive(Clone, Copy)]
enum Node {
    /// /proc/self: a link to the caller's /proc/TGID.
    SelfLink,
    /// /proc/PID.
    Dir(Target),
    /// /proc/PID/NAME.
    Entry(Target, &'static str, EntryKind),
    /// /proc/PID/fd/N (a link naming the open file) or, `info`, /proc/PID/fdinfo/N.
    Fd { t: Target, info: bool, fd: i32 },
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;

/// The task a pid component names: a thread group (live or zombie) or a thread.
fn lookup_pid(k: &Kernel, pid: Tid) -> Option<Target> {
    if k.procs.contains_key(&pid) {
        return Some(Target { tgid: pid, tid: pid });
    }
    k.tasks.get(&pid).map(|t| Target { tgid: t.tgid, tid: pid })
}

/// Resolves a path that starts with "/proc/". `follow`: a final /proc/self resolves to
/// the directory it names.
fn resolve(s: &Sys, path: &[u8], follow: bool) -> KResult<Node> {
    let rest = path.strip_prefix(b"/proc/").ok_or(Errno::ENOENT)?;
    let rest = std::str::from_utf8(rest).map_err(|_| Errno::ENOENT)?;
    let parts: Vec<&str> = rest.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let Some(first) = parts.first() else {
        // /proc itself: not modelled.
        return Err(Errno::ENOENT);
    };
    let me = s.tgid();
    let target = if *first == "self" {
        if parts.len() == 1 && !follow {
            return Ok(Node::SelfLink);
        }
        Target { tgid: me, tid: me }
    } else {
        // Linux's name_to_int: decimal without a sign or leading zeros.
        if first.starts_with('0') || !first.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Errno::ENOENT);
        }
        let pid: Tid = first.parse().map_err(|_| Errno::ENOENT)?;
        lookup_pid(s.k, pid).ok_or(Errno::ENOENT)?
    };
    match parts.len() {
        1 => Ok(Node::Dir(target)),
        3 if parts[1] == "fd" || parts[1] == "fdinfo" => {
            let fd: i32 = parts[2].parse().map_err(|_| Errno::ENOENT)?;
            if parts[2].starts_with('0') && parts[2] != "0" {
                return Err(Errno::ENOENT);
            }
            let files = s.k.tasks.get(&target.tid).ok_or(Errno::ENOENT)?.files.clone();
            files.borrow().get(fd).ok_or(Errno::ENOENT)?;
            Ok(Node::Fd { t: target, info: parts[1] == "fdinfo", fd })
        }
        2 => {
            let (name, kind) = PID_ENTRIES.iter().find(|(n, _)| *n == parts[1]).ok_or(Errno::ENOENT)?;
            Ok(Node::Entry(target, name, *kind))
        }
        _ => {
            // Below a file, or below a link to one.
            PID_ENTRIES.iter().find(|(n, _)| *n == parts[1]).ok_or(Errno::ENOENT)?;
            Err(Errno::ENOTDIR)
        }
    }
}

/// open/openat of a /proc path.
pub fn open(s: &mut Sys, path: &[u8], flags: u32) -> SysResult {
    const O_ACCMODE: u32 = 3;
    const O_CREAT: u32 = 0o100;
    const O_TRUNC: u32 = 0o1000;
    const O_NONBLOCK: u32 = 0o4000;
    const O_APPEND: u32 = 0o2000;
    const O_DIRECTORY: u32 = 0o200000;
    const O_CLOEXEC: u32 = 0o2000000;
    let node = resolve(s, path, true)?;
    // The caller is root: opening for writing passes the permission check (writes then
    // fail, these files have no write method); a directory cannot be written.
    if matches!(node, Node::Dir(_)) && (flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC) != 0) {
        return Err(Errno::EISDIR);
    }
    let (name, data) = match node {
        Node::SelfLink => unreachable!("followed"),
        // A directory opens (for fstat, fchdir ...); reading it is for getdents.
        Node::Dir(t) => (format!("/proc/{}", t.tgid), Vec::new()),
        Node::Entry(t, name, EntryKind::File(gen)) => {
            if flags & O_DIRECTORY != 0 {
                return Err(Errno::ENOTDIR);
            }
            (format!("/proc/{}/{name}", t.tgid), gen(s, t))
        }
        Node::Entry(t, name, EntryKind::Live(read)) => {
            if flags & O_DIRECTORY != 0 {
                return Err(Errno::ENOTDIR);
            }
            let f = File::new(FileKind::ProcLive(LiveFile { target: t, read, pos: 0, write: (name == "mem").then_some(proc_pid_mem_write as LiveWrite) }), flags & (O_ACCMODE | O_NONBLOCK | O_APPEND));
            let fd = Fd { file: Rc::new(RefCell::new(f)), cloexec: flags & O_CLOEXEC != 0 };
            return ok(s.files().borrow_mut().install(fd, 0).ok_or(Errno::EMFILE)? as u64);
        }
        Node::Fd { t, info: true, fd } => (format!("/proc/{}/fdinfo/{fd}", t.tgid), fdinfo(s, t, fd).into_bytes()),
        // Reopening an anonymous inode or a pipe through its link is not modelled.
        Node::Fd { .. } => return Err(Errno::ENXIO),
        Node::Entry(t, _, EntryKind::Link(link)) => {
            // The only link, exe, names the program: open it.
            let target = link(s, t).ok_or(Errno::ENOENT)?;
            let data = std::fs::read(&target).map_err(|_| Errno::ENOENT)?;
            (target, data)
        }
    };
    let f = File::new(FileKind::HostFile { path: name.into(), data: std::sync::Arc::new(data), pos: 0 }, flags & (O_ACCMODE | O_NONBLOCK | O_APPEND));
    let fd = Fd { file: Rc::new(RefCell::new(f)), cloexec: flags & O_CLOEXEC != 0 };
    ok(s.files().borrow_mut().install(fd, 0).ok_or(Errno::EMFILE)? as u64)
}

/// stat/lstat/newfstatat of a /proc path (`follow` false for lstat / AT_SYMLINK_NOFOLLOW).
pub fn stat(s: &mut Sys, path: &[u8], buf: u64, follow: bool) -> SysResult {
    let node = resolve(s, path, follow)?;
    let (mode, nlink, size, ino) = match node {
        Node::SelfLink => (S_IFLNK | 0o777, 1, s.tgid().to_string().len() as u64, 0xffff_fffe),
        Node::Dir(t) => (S_IFDIR | 0o555, 9, 0, (t.tid as u64) << 8),
        Node::Fd { t, info: false, fd } if !follow => (S_IFLNK | 0o700, 1, 64, ((t.tid as u64) << 8) | 0x80 | fd as u64),
        Node::Fd { t, fd, .. } => (S_IFREG | 0o400, 1, 0, ((t.tid as u64) << 8) | 0x40 | fd as u64),
        Node::Entry(t, name, kind) => {
            let i = PID_ENTRIES.iter().position(|(n, _)| *n == name).unwrap_or(0) as u64;
            match kind {
                EntryKind::File(_) => (S_IFREG | 0o444, 1, 0, ((t.tid as u64) << 8) | (i + 1)),
                EntryKind::Live(_) => (S_IFREG | 0o400, 1, 0, ((t.tid as u64) << 8) | (i + 1)),
                EntryKind::Link(_) if !follow => (S_IFLNK | 0o777, 1, 0, ((t.tid as u64) << 8) | (i + 1)),
                EntryKind::Link(link) => {
                    let target = link(s, t).ok_or(Errno::ENOENT)?;
                    let len = std::fs::metadata(&target).map_err(|_| Errno::ENOENT)?.len();
                    (S_IFREG | 0o755, 1, len, 2)
                }
            }
        }
    };
    // struct stat (x86-64, 144 bytes): st_dev 0x17 (proc), uid/gid 0, blksize 1024.
    let mut b = [0u8; 144];
    let put = |b: &mut [u8; 144], off: usize, v: u64, n: usize| b[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
    put(&mut b, 0, 0x17, 8);
    put(&mut b, 8, ino, 8);
    put(&mut b, 16, nlink, 8);
    put(&mut b, 24, mode as u64, 4);
    put(&mut b, 48, size, 8);
    put(&mut b, 56, 1024, 8);
    put(&mut b, 64, size.div_ceil(512), 8);
    s.copy_to_user(buf, &b)?;
    ok(0)
}

/// access/faccessat of a /proc path: existence (the caller is root).
pub fn access(s: &mut Sys, path: &[u8]) -> SysResult {
    if let Node::Entry(t, _, EntryKind::Link(link)) = resolve(s, path, true)? {
        link(s, t).ok_or(Errno::ENOENT)?;
    }
    ok(0)
}

/// readlink/readlinkat of a /proc path.
pub fn readlink(s: &mut Sys, path: &[u8], buf: u64, size: u64) -> SysResult {
    if (size as i64) <= 0 {
        return Err(Errno::EINVAL);
    }
    let target = match resolve(s, path, false)? {
        Node::SelfLink => s.tgid().to_string(),
        Node::Entry(t, _, EntryKind::Link(link)) => link(s, t).ok_or(Errno::ENOENT)?,
        Node::Fd { t, info: false, fd } => fd_link(s, t, fd).ok_or(Errno::ENOENT)?,
        _ => return Err(Errno::EINVAL),
    };
    let bytes = target.as_bytes();
    let n = bytes.len().min(size as usize);
    s.copy_to_user(buf, &bytes[..n])?;
    ok(n as u64)
}

// ---- Generators ----

/// What /proc/PID/fd/N names (Linux: the d_path of the file, `anon_inode:[name]` for
/// anonymous inodes, `pipe:[ino]` for pipes).
fn fd_link(s: &Sys, t: Target, fd: i32) -> Option<String> {
    let files = s.k.tasks.get(&t.tid)?.files.clone();
    let f = files.borrow().get(fd)?.file.clone();
    let f = f.borrow();
    Some(match &f.kind {
        FileKind::Stdin | FileKind::Output(_) => "/dev/pts/0".to_string(),
        FileKind::HostFile { path, .. } => path.display().to_string(),
        FileKind::Pipe(end) => format!("pipe:[{}]", end.pipe.ino),
        FileKind::EventFd(_) => "anon_inode:[eventfd]".to_string(),
        FileKind::Epoll(_) => "anon_inode:[eventpoll]".to_string(),
        FileKind::ProcLive(lf) => format!("/proc/{}/{}", lf.target.tgid, if lf.write.is_some() { "mem" } else { "pagemap" }),
        FileKind::Userfaultfd(_) => "anon_inode:[userfaultfd]".to_string(),
        // A tmpfs file unlinked while open reads "PATH (deleted)"; a memfd's name says so.
        FileKind::Shmem(f) if f.inode.inode().nlink == 0 && !f.name.ends_with(b" (deleted)") => format!("{} (deleted)", String::from_utf8_lossy(&f.name)),
        FileKind::Shmem(f) => String::from_utf8_lossy(&f.name).into_owned(),
        FileKind::TmpfsDir(d) => String::from_utf8_lossy(&d.name).into_owned(),
        FileKind::DevUserfaultfd => "/dev/userfaultfd".to_string(),
    })
}

/// /proc/PID/fdinfo/N (Linux: seq_show): position, flags (with O_CLOEXEC), and the
/// file's own lines — for a userfaultfd its pending and total faults and API.
fn fdinfo(s: &Sys, t: Target, fd: i32) -> String {
    let Some(task) = s.k.tasks.get(&t.tid) else { return String::new() };
    let files = task.files.clone();
    let Some(slot) = files.borrow().get(fd).cloned() else { return String::new() };
    let f = slot.file.borrow();
    let flags = f.flags | if slot.cloexec { 0o2000000 } else { 0 };
    let mut out = format!("pos:\t0\nflags:\t{flags:07o}\nmnt_id:\t15\nino:\t{}\n", 1000 + fd);
    if let FileKind::Userfaultfd(u) = &f.kind {
        out.push_str(&super::uffd::show_fdinfo(&u.0));
    }
    out
}

/// The live address space of a target (None for a zombie).
fn mm_of(s: &Sys, t: Target) -> Option<usize> {
    let p = s.k.procs.get(&t.tgid)?;
    let tid = if s.k.tasks.contains_key(&t.tid) { t.tid } else { p.threads.iter().copied().find(|x| s.k.tasks.contains_key(x))? };
    let mm = s.k.tasks[&tid].mm;
    s.k.mms[mm].is_some().then_some(mm)
}

/// The command name (Linux: task->comm, the executable's basename, at most 15 bytes).
fn comm(s: &Sys, t: Target) -> String {
    let exe = mm_of(s, t).and_then(|m| s.k.mms[m].as_ref()).map(|m| m.exe.clone());
    // A zombie's mm is gone; without exec every process runs the one program, whose
    // name any live mm still has.
    let name = exe
        .as_ref()
        .and_then(|e| e.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .or_else(|| s.k.mms.iter().flatten().next().and_then(|m| m.exe.file_name()).map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    name.chars().take(15).collect()
}

/// Linux's task state letter and name for /proc (fs/proc/array.c task_state_array).
fn state(s: &Sys, t: Target) -> (char, &'static str) {
    let Some(task) = s.k.tasks.get(&t.tid) else {
        return ('Z', "zombie");
    };
    match task.state {
        TaskState::Runnable => ('R', "running"),
        TaskState::Blocked if task.blocked.as_ref().is_some_and(|b| !b.interruptible) => ('D', "disk sleep"),
        TaskState::Blocked => ('S', "sleeping"),
        TaskState::Stopped => ('T', "stopped"),
        TaskState::Zombie => ('Z', "zombie"),
    }
}

/// Linux's signal->nr_threads: a thread leaves it when released — other threads at once
/// when they exit, the leader only with the whole group — so a group whose leader has
/// exited still counts it.
fn live_threads(k: &Kernel, tgid: Tid) -> usize {
    k.procs.get(&tgid).map_or(0, |p| 1 + p.threads.iter().filter(|&&t| t != tgid && k.tasks.contains_key(&t)).count())
}

fn proc_exe_link(s: &Sys, t: Target) -> Option<String> {
    let mm = mm_of(s, t)?;
    Some(s.k.mms[mm].as_ref()?.exe.to_string_lossy().into_owned())
}

/// /proc/PID/cmdline: the argument strings, NUL-separated, as in the process's memory.
fn proc_pid_cmdline(s: &mut Sys, t: Target) -> Vec<u8> {
    let Some(id) = mm_of(s, t) else { return Vec::new() };
    let mm = s.k.mms[id].as_mut().unwrap();
    let len = mm.arg_end.saturating_sub(mm.arg_start).min(1 << 20) as usize;
    let mut b = vec![0u8; len];
    if super::uaccess::copy_from_user_mm(s.hw, mm, mm.arg_start, &mut b).is_err() {
        return Vec::new();
    }
    b
}

/// /proc/PID/status (fs/proc/array.c proc_pid_status), the lines pagelab can answer.
fn proc_pid_status(s: &mut Sys, t: Target) -> Vec<u8> {
    let p = &s.k.procs[&t.tgid];
    let (st, st_name) = state(s, t);
    let task = s.k.tasks.get(&t.tid);
    let (pending, blocked) = task.map_or((0, 0), |x| (x.pending.set, x.sigmask));
    let actions = task.map(|x| *x.sigactions.borrow());
    let (mut ign, mut cgt) = (0u64, 0u64);
    for (i, a) in actions.iter().flatten().enumerate() {
        match a.handler {
            0 => {}
            1 => ign |= 1 << i,
            _ => cgt |= 1 << i,
        }
    }
    let mut o = String::new();
    let _ = writeln!(o, "Name:\t{}", comm(s, t));
    let _ = writeln!(o, "Umask:\t0022");
    let _ = writeln!(o, "State:\t{st} ({st_name})");
    let _ = writeln!(o, "Tgid:\t{}", t.tgid);
    let _ = writeln!(o, "Ngid:\t0");
    let _ = writeln!(o, "Pid:\t{}", t.tid);
    let _ = writeln!(o, "PPid:\t{}", p.ppid);
    let _ = writeln!(o, "TracerPid:\t0");
    let _ = writeln!(o, "Uid:\t0\t0\t0\t0");
    let _ = writeln!(o, "Gid:\t0\t0\t0\t0");
    let _ = writeln!(o, "FDSize:\t{}", if st == 'Z' { 0 } else { 64 });
    let _ = writeln!(o, "Groups:\t ");
    let _ = writeln!(o, "NStgid:\t{}", t.tgid);
    let _ = writeln!(o, "NSpid:\t{}", t.tid);
    let _ = writeln!(o, "NSpgid:\t{}", p.pgid);
    let _ = writeln!(o, "NSsid:\t{}", p.sid);
    let _ = writeln!(o, "Kthread:\t0");
    if let Some(mm) = mm_of(s, t).and_then(|m| s.k.mms[m].as_ref()) {
        let kb = |f: &dyn Fn(&super::mm::Vma) -> bool| mm.vmas.values().filter(|v| f(v)).map(|v| v.len()).sum::<u64>() >> 10;
        let size = kb(&|_| true);
        let _ = writeln!(o, "VmPeak:\t{size:>8} kB");
        let _ = writeln!(o, "VmSize:\t{size:>8} kB");
        let _ = writeln!(o, "VmLck:\t{:>8} kB", 0);
        let _ = writeln!(o, "VmPin:\t{:>8} kB", 0);
        let _ = writeln!(o, "VmData:\t{:>8} kB", kb(&|v| v.writable() && !v.shared() && !v.flags.has(super::mm::VmFlags::GROWSDOWN)));
        let _ = writeln!(o, "VmStk:\t{:>8} kB", kb(&|v| v.flags.has(super::mm::VmFlags::GROWSDOWN)));
        let _ = writeln!(o, "VmExe:\t{:>8} kB", kb(&|v| v.executable()));
        let _ = writeln!(o, "VmSwap:\t{:>8} kB", swap_entries(s.hw, mm) * 4);
    }
    let _ = writeln!(o, "Threads:\t{}", live_threads(s.k, t.tgid));
    let _ = writeln!(o, "SigQ:\t0/63704");
    let _ = writeln!(o, "SigPnd:\t{pending:016x}");
    let _ = writeln!(o, "ShdPnd:\t{:016x}", p.shared_pending.set);
    let _ = writeln!(o, "SigBlk:\t{blocked:016x}");
    let _ = writeln!(o, "SigIgn:\t{ign:016x}");
    let _ = writeln!(o, "SigCgt:\t{cgt:016x}");
    let _ = writeln!(o, "CapInh:\t0000000000000000");
    let _ = writeln!(o, "CapPrm:\t000001ffffffffff");
    let _ = writeln!(o, "CapEff:\t000001ffffffffff");
    let _ = writeln!(o, "CapBnd:\t000001ffffffffff");
    let _ = writeln!(o, "CapAmb:\t0000000000000000");
    let _ = writeln!(o, "NoNewPrivs:\t0");
    let _ = writeln!(o, "Seccomp:\t0");
    let _ = writeln!(o, "Seccomp_filters:\t0");
    let n = s.hw.vcpus.len();
    let _ = writeln!(o, "Cpus_allowed:\t{:x}", if n >= 64 { u64::MAX } else { (1u64 << n) - 1 });
    let _ = writeln!(o, "Cpus_allowed_list:\t{}", if n == 1 { "0".to_string() } else { format!("0-{}", n - 1) });
    let _ = writeln!(o, "voluntary_ctxt_switches:\t0");
    let _ = writeln!(o, "nonvoluntary_ctxt_switches:\t0");
    o.into_bytes()
}

/// /proc/PID/stat (fs/proc/array.c do_task_stat): the 52 fields.
fn proc_pid_stat(s: &mut Sys, t: Target) -> Vec<u8> {
    let p = &s.k.procs[&t.tgid];
    let (st, _) = state(s, t);
    let ticks = |instr: u64| instr * super::NS_PER_INSTR / 10_000_000;
    let task = s.k.tasks.get(&t.tid);
    let (sigpnd, sigblk) = task.map_or((0, 0), |x| (x.pending.set | p.shared_pending.set, x.sigmask));
    let mm = mm_of(s, t).and_then(|m| s.k.mms[m].as_ref());
    let vsize: u64 = mm.map_or(0, |m| m.vmas.values().map(|v| v.len()).sum());
    let (start_brk, arg_start, arg_end) = mm.map_or((0, 0, 0), |m| (m.start_brk, m.arg_start, m.arg_end));
    let (code_lo, code_hi) = mm
        .and_then(|m| m.vmas.values().find(|v| v.executable()).map(|v| (v.start, v.end)))
        .unwrap_or((0, 0));
    let exit_code = if p.zombie { p.exit_status.unwrap_or(0) } else { 0 };
    let fields: Vec<String> = vec![
        p.ppid.to_string(),
        p.pgid.to_string(),
        p.sid.to_string(),
        "0".into(),  // tty_nr
        "-1".into(), // tpgid
        "4194304".into(),
        "0".into(),
        "0".into(),
        "0".into(),
        "0".into(),
        ticks(task.map_or(p.utime, |x| x.utime)).to_string(),
        "0".into(),
        ticks(p.cutime).to_string(),
        "0".into(),
        "20".into(), // priority
        "0".into(),  // nice
        live_threads(s.k, t.tgid).to_string(),
        "0".into(),
        "0".into(), // starttime
        vsize.to_string(),
        "0".into(),
        u64::MAX.to_string(),
        code_lo.to_string(),
        code_hi.to_string(),
        if mm.is_some() { super::mm::STACK_TOP.to_string() } else { "0".into() },
        "0".into(),
        "0".into(),
        sigpnd.to_string(),
        sigblk.to_string(),
        "0".into(),
        "0".into(),
        "0".into(), // wchan
        "0".into(),
        "0".into(),
        p.exit_signal.to_string(),
        "0".into(), // processor
        "0".into(),
        "0".into(),
        "0".into(),
        "0".into(),
        "0".into(),
        "0".into(),
        "0".into(),
        start_brk.to_string(),
        arg_start.to_string(),
        arg_end.to_string(),
        arg_end.to_string(),
        arg_end.to_string(),
        exit_code.to_string(),
    ];
    format!("{} ({}) {st} {}\n", t.tid, comm(s, t), fields.join(" ")).into_bytes()
}

/// /proc/PID/maps (fs/proc/task_mmu.c show_map_vma): one line per VMA.
fn proc_pid_maps(s: &mut Sys, t: Target) -> Vec<u8> {
    let Some(mm) = mm_of(s, t).and_then(|m| s.k.mms[m].as_ref()) else { return Vec::new() };
    let mut o = String::new();
    for v in mm.vmas.values() {
        o.push_str(&map_line(mm, v));
    }
    o.into_bytes()
}

/// One /proc/PID/maps line, newline included (show_map_vma).
fn map_line(mm: &super::mm::Mm, v: &super::mm::Vma) -> String {
    let mut o = String::new();
    {
        use super::mm::vma::Backing;
        let (pgoff, dev, ino, name) = match &v.backing {
            // shmem_zero_setup names the object "/dev/zero" and unlinks it; memfds,
            // tmpfs and host files show their names.
            Backing::Shmem { obj, offset } => (*offset, if obj.is_shmem() { "00:01" } else { "00:00" }.to_string(), obj.id(), String::from_utf8_lossy(&obj.inode().name).into_owned()),
            _ if v.start <= mm.brk && v.end >= mm.start_brk && matches!(v.backing, Backing::Heap) => (0, "00:00".into(), 0, "[heap]".into()),
            Backing::Stack => (0, "00:00".into(), 0, "[stack]".into()),
            _ => (0, "00:00".into(), 0, String::new()),
        };
        let mut line = format!(
            "{:08x}-{:08x} {}{}{}{} {:08x} {dev} {ino} ",
            v.start,
            v.end,
            if v.readable() { 'r' } else { '-' },
            if v.writable() { 'w' } else { '-' },
            if v.executable() { 'x' } else { '-' },
            if v.flags.has(super::mm::VmFlags::MAYSHARE) { 's' } else { 'p' },
            pgoff,
        );
        if !name.is_empty() {
            // seq_pad: the name starts in column 73.
            while line.len() < 72 {
                line.push(' ');
            }
            line.push(' ');
            line.push_str(&name);
        }
        o.push_str(&line);
        o.push('\n');
    }
    o
}

/// PSS in 1/4096 of a kB is exact for map counts that divide 4096; Linux keeps 12 more bits
/// (PSS_SHIFT) and truncates the same way when printing.
const PSS_SHIFT: u32 = 12;

/// One VMA's counts, in bytes (Linux: struct mem_size_stats); the PSS sums carry
/// PSS_SHIFT more bits.
#[derive(Default)]
struct MemSizeStats {
    rss: u64,
    pss: u64,
    pss_dirty: u64,
    sh_clean: u64,
    sh_dirty: u64,
    pr_clean: u64,
    pr_dirty: u64,
    refd: u64,
    anon: u64,
    swp: u64,
    swap_pss: u64,
}

/// The smaps walk of one VMA (Linux: smaps_walk_ops).
struct SmapsWalk<'a> {
    hw: &'a super::hw::Hw,
    shmem: bool,
    mss: MemSizeStats,
}

impl MmWalkOps for SmapsWalk<'_> {
    type Break = Infallible;

    fn mem(&self) -> &mmu::PhysMem {
        &self.hw.mem
    }

    /// Linux: smaps_pte_entry → smaps_account.
    fn pte_entry(&mut self, pte: mmu::Entry, _slot: Slot, _addr: u64) -> ControlFlow<Infallible> {
        use super::mm::pgtable::{self, linux::*};
        let (hw, mss) = (self.hw, &mut self.mss);
        match softleaf_from_pte(pte) {
            SoftLeaf::Present | SoftLeaf::ProtNone => {}
            SoftLeaf::Swap { entry, .. } => {
                mss.swp += 4096;
                mss.swap_pss += (4096u64 << PSS_SHIFT) / hw.swap.count(entry).max(1) as u64;
                return ControlFlow::Continue(());
            }
            SoftLeaf::None | SoftLeaf::Migration { .. } | SoftLeaf::Marker(_) => return ControlFlow::Continue(()),
        }
        let pa = pgtable::pte_pfn(pte);
        if pte.has(_PAGE_SPECIAL) || hw.pages.is_zero_page(pa) {
            return ControlFlow::Continue(());
        }
        let mapcount = hw.pages.meta(pa).mapcount.max(1) as u64;
        let dirty = pte.is_dirty();
        mss.rss += 4096;
        if pte.is_accessed() {
            mss.refd += 4096;
        }
        if !self.shmem {
            mss.anon += 4096;
        }
        let p = (4096u64 << PSS_SHIFT) / mapcount;
        mss.pss += p;
        if dirty {
            mss.pss_dirty += p;
        }
        match (mapcount >= 2, dirty) {
            (true, true) => mss.sh_dirty += 4096,
            (true, false) => mss.sh_clean += 4096,
            (false, true) => mss.pr_dirty += 4096,
            (false, false) => mss.pr_clean += 4096,
        }
        ControlFlow::Continue(())
    }
}

/// /proc/PID/smaps (fs/proc/task_mmu.c show_smap): each maps line followed by the VMA's
/// memory counts, from a walk of its page tables (smaps_pte_entry / smaps_account):
/// present pages with a struct page (not the zero page) count in Rss, shared when more
/// than one PTE maps them (Pss divides by the map count), dirty by the PTE's D bit,
/// referenced by its A bit, anonymous unless shmem; swap entries count in Swap (SwapPss
/// divides by the slot's use count). No THP, hugetlb, KSM, MADV_FREE or mlock: those
/// lines are 0. `VmFlags` uses Linux's two-letter names (show_smap_vma_flags) for the
/// flags pagelab models; `ac` (VM_ACCOUNT) is derived as Linux sets it at mmap: a private
/// writable mapping without MAP_NORESERVE.
fn proc_pid_smaps(s: &mut Sys, t: Target) -> Vec<u8> {
    use super::mm::pagewalk::walk_page_range;
    use super::mm::VmFlags;
    let Some(mm) = mm_of(s, t).and_then(|m| s.k.mms[m].as_ref()) else { return Vec::new() };
    let hw = &*s.hw;
    let mut o = String::new();
    for v in mm.vmas.values() {
        o.push_str(&map_line(mm, v));
        let shmem = v.is_shmem();
        let mut w = SmapsWalk { hw, shmem, mss: MemSizeStats::default() };
        let ControlFlow::Continue(()) = walk_page_range(mm.pml4, v.start, v.end, &mut w);
        let MemSizeStats { rss, pss, pss_dirty, sh_clean, sh_dirty, pr_clean, pr_dirty, refd, anon, swp, swap_pss } = w.mss;
        let kb = |b: u64| b >> 10;
        let pkb = |b: u64| b >> (10 + PSS_SHIFT);
        let lines: [(&str, u64); 23] = [
            ("Size", kb(v.len())),
            ("KernelPageSize", 4),
            ("MMUPageSize", 4),
            ("Rss", kb(rss)),
            ("Pss", pkb(pss)),
            ("Pss_Dirty", pkb(pss_dirty)),
            ("Shared_Clean", kb(sh_clean)),
            ("Shared_Dirty", kb(sh_dirty)),
            ("Private_Clean", kb(pr_clean)),
            ("Private_Dirty", kb(pr_dirty)),
            ("Referenced", kb(refd)),
            ("Anonymous", kb(anon)),
            ("KSM", 0),
            ("LazyFree", 0),
            ("AnonHugePages", 0),
            ("ShmemPmdMapped", 0),
            ("FilePmdMapped", 0),
            ("Shared_Hugetlb", 0),
            ("Private_Hugetlb", 0),
            ("Swap", kb(swp)),
            ("SwapPss", pkb(swap_pss)),
            ("Locked", 0),
            ("THPeligible", u64::MAX),
        ];
        for (name, val) in lines {
            if val == u64::MAX {
                let _ = writeln!(o, "THPeligible:           0");
            } else {
                let _ = writeln!(o, "{:<16}{val:>8} kB", format!("{name}:"));
            }
        }
        // show_smap_vma_flags: by bit number.
        let f = v.flags;
        let account = f.has(VmFlags::ACCOUNT) || (f & (VmFlags::NORESERVE | VmFlags::SHARED | VmFlags::WRITE) == VmFlags::WRITE);
        let names: [(bool, &str); 22] = [
            (f.has(VmFlags::READ), "rd"),
            (f.has(VmFlags::WRITE), "wr"),
            (f.has(VmFlags::EXEC), "ex"),
            (f.has(VmFlags::SHARED), "sh"),
            (f.has(VmFlags::MAYREAD), "mr"),
            (f.has(VmFlags::MAYWRITE), "mw"),
            (f.has(VmFlags::MAYEXEC), "me"),
            (f.has(VmFlags::MAYSHARE), "ms"),
            (f.has(VmFlags::GROWSDOWN), "gd"),
            (f.has(VmFlags::UFFD_MISSING), "um"),
            (f.has(VmFlags::UFFD_WP), "uw"),
            (f.has(VmFlags::LOCKED), "lo"),
            (f.has(VmFlags::DONTCOPY), "dc"),
            (f.has(VmFlags::DONTEXPAND), "de"),
            (account, "ac"),
            (f.has(VmFlags::NORESERVE), "nr"),
            (f.has(VmFlags::WIPEONFORK), "wf"),
            (false, "dd"),
            (false, "hg"),
            (false, "nh"),
            (false, "mg"),
            (f.has(VmFlags::UFFD_MINOR), "ui"),
        ];
        o.push_str("VmFlags:");
        for (on, n) in names {
            if on {
                o.push(' ');
                o.push_str(n);
            }
        }
        o.push_str(" \n");
    }
    o.into_bytes()
}

// ---- /proc/PID/pagemap (fs/proc/task_mmu.c pagemap_read, pte_to_pagemap_entry) ----

pub const PM_PFRAME_MASK: u64 = (1 << 55) - 1;
pub const PM_SOFT_DIRTY: u64 = 1 << 55;
pub const PM_MMAP_EXCLUSIVE: u64 = 1 << 56;
pub const PM_UFFD_WP: u64 = 1 << 57;
pub const PM_FILE: u64 = 1 << 61;
pub const PM_SWAP: u64 = 1 << 62;
pub const PM_PRESENT: u64 = 1 << 63;
/// Swap entries show as type | offset << MAX_SWAPFILES_SHIFT.
const MAX_SWAPFILES_SHIFT: u32 = 5;
/// Entries one read answers at most (host memory bound; Linux walks in chunks and would
/// answer the whole count): 2 Mi entries, 8 GiB of address space.
const PAGEMAP_MAX_ENTRIES: u64 = 2 << 20;

/// Linux: pagemap_read. 8 bytes per virtual page, at offset (va / 4096) * 8. A position or
/// count that is not a multiple of 8 is EINVAL; reads end at TASK_SIZE; a process whose mm
/// is gone reads as empty. The caller is root (CAP_SYS_ADMIN), so frames and swap
/// locations are shown: under pagelab the frame is the guest-physical one.
/// /proc/PID/mem reads (Linux: mem_rw with FOLL_FORCE through access_remote_vm): the
/// target's memory at the position, up to the first page that cannot be read; EIO when
/// not even the first byte can.
fn proc_pid_mem_read(s: &mut Sys, t: Target, pos: u64, len: usize) -> KResult<Vec<u8>> {
    let Some(id) = mm_of(s, t) else { return Ok(Vec::new()) };
    let mut out = Vec::with_capacity(len.min(1 << 20));
    while out.len() < len.min(1 << 20) {
        let a = pos.wrapping_add(out.len() as u64);
        let n = ((4096 - (a & 0xfff)) as usize).min(len - out.len());
        let mut chunk = vec![0u8; n];
        let mm = s.k.mms[id].as_mut().unwrap();
        if super::uaccess::copy_from_user_mm(s.hw, mm, a, &mut chunk).is_err() {
            break;
        }
        out.extend_from_slice(&chunk);
    }
    if out.is_empty() && len > 0 {
        return Err(Errno::EIO);
    }
    Ok(out)
}

/// /proc/PID/mem writes. A page write-protected with uffd-wp stops the write: the forced
/// GUP cannot wait for the monitor (no FAULT_FLAG_ALLOW_RETRY), handle_userfault answers
/// SIGBUS, and the write fails — EIO when nothing was written, and no message.
fn proc_pid_mem_write(s: &mut Sys, t: Target, pos: u64, data: &[u8]) -> KResult<usize> {
    use super::mm::pgtable::{self, linux::_PAGE_UFFD_WP};
    let Some(id) = mm_of(s, t) else { return Ok(0) };
    let mut done = 0usize;
    while done < data.len() {
        let a = pos.wrapping_add(done as u64);
        let n = ((4096 - (a & 0xfff)) as usize).min(data.len() - done);
        let mm = s.k.mms[id].as_mut().unwrap();
        let wp_vma = mm.find_vma(a).is_some_and(|v| v.flags.has(super::mm::VmFlags::UFFD_WP));
        let wp_pte = pgtable::walk_lookup(&s.hw.mem, mm.pml4, a).map(|sl| pgtable::get_entry(&s.hw.mem, sl)).is_some_and(|e| e.is_present() && e.has(_PAGE_UFFD_WP));
        if wp_vma && wp_pte {
            break;
        }
        if super::uaccess::copy_to_user_mm(s.hw, mm, a, &data[done..done + n]).is_err() {
            break;
        }
        done += n;
    }
    if done == 0 && !data.is_empty() {
        return Err(Errno::EIO);
    }
    Ok(done)
}

fn proc_pid_pagemap(s: &mut Sys, t: Target, pos: u64, len: usize) -> KResult<Vec<u8>> {
    let Some(id) = mm_of(s, t) else { return Ok(Vec::new()) };
    if !pos.is_multiple_of(8) || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let first = pos / 8;
    let end = super::mm::TASK_SIZE >> 12;
    if first >= end {
        return Ok(Vec::new());
    }
    let n = (len as u64 / 8).min(end - first).min(PAGEMAP_MAX_ENTRIES);
    let mm = s.k.mms[id].as_ref().unwrap();
    let mut w = PagemapWalk { hw: s.hw, mm, out: Vec::with_capacity(n as usize * 8) };
    let ControlFlow::Continue(()) = super::mm::pagewalk::walk_page_range(mm.pml4, first << 12, (first + n) << 12, &mut w);
    debug_assert_eq!(w.out.len() as u64, n * 8);
    Ok(w.out)
}

/// Swap entries in an address space (Linux: the MM_SWAPENTS counter behind VmSwap),
/// counted by walking its page tables.
fn swap_entries(hw: &super::hw::Hw, mm: &super::mm::Mm) -> u64 {
    use super::mm::pagewalk::walk_page_range;
    struct CountSwap<'a> {
        hw: &'a super::hw::Hw,
        n: u64,
    }
    impl MmWalkOps for CountSwap<'_> {
        type Break = Infallible;
        fn mem(&self) -> &mmu::PhysMem {
            &self.hw.mem
        }
        fn pte_entry(&mut self, pte: mmu::Entry, _slot: Slot, _addr: u64) -> ControlFlow<Infallible> {
            match softleaf_from_pte(pte) {
                SoftLeaf::Swap { .. } => self.n += 1,
                SoftLeaf::None | SoftLeaf::Present | SoftLeaf::ProtNone | SoftLeaf::Migration { .. } | SoftLeaf::Marker(_) => {}
            }
            ControlFlow::Continue(())
        }
    }
    let mut w = CountSwap { hw, n: 0 };
    for v in mm.vmas.values() {
        let ControlFlow::Continue(()) = walk_page_range(mm.pml4, v.start, v.end, &mut w);
    }
    w.n
}

/// The pagemap walk (Linux: pagemap_ops): one entry per page of the range, in order.
/// Bits: 63 present (PROT_NONE entries too), 62 swapped (swap entries and PTE markers),
/// 61 file page or shared anonymous (shmem), 57 uffd-wp (`_PAGE_UFFD_WP`, the swap bit 2,
/// or a uffd-wp marker), 56 the page is mapped by exactly one PTE (present pages only),
/// 55 soft-dirty (never: CONFIG_MEM_SOFT_DIRTY=n, as on the reference host), 0-54 the frame
/// or the swap type and offset. The zero page (and any `_PAGE_SPECIAL` entry) has no
/// struct page: neither exclusive nor file. A page outside every VMA reads as 0.
struct PagemapWalk<'a> {
    hw: &'a super::hw::Hw,
    mm: &'a super::mm::Mm,
    out: Vec<u8>,
}

impl PagemapWalk<'_> {
    fn push(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    /// A huge leaf `e` at `level` over [addr, next) (none in user space today): the 4 KiB
    /// frame within it, for each page in a VMA.
    fn huge_leaf(&mut self, e: mmu::Entry, level: mmu::Level, addr: u64, next: u64) {
        let base = e.addr(level, 52).as_u64() >> 12;
        let size = level.leaf_size().map_or(4096, |z| z.bytes());
        for va in (addr..next).step_by(4096) {
            let v = if self.mm.find_vma(va).is_some() { PM_PRESENT | (base + ((va & (size - 1)) >> 12)) } else { 0 };
            self.push(v);
        }
    }
}

impl MmWalkOps for PagemapWalk<'_> {
    type Break = Infallible;

    fn mem(&self) -> &mmu::PhysMem {
        &self.hw.mem
    }

    fn pud_entry(&mut self, pud: mmu::Entry, _slot: Slot, addr: u64, next: u64) -> ControlFlow<Infallible, Action> {
        if !pud.is_leaf(mmu::Level::Pdpt) {
            return ControlFlow::Continue(Action::Subtree);
        }
        self.huge_leaf(pud, mmu::Level::Pdpt, addr, next);
        ControlFlow::Continue(Action::Continue)
    }

    /// Linux: pagemap_pmd_range (its huge-PMD part; the PTEs come to pte_entry).
    fn pmd_entry(&mut self, pmd: mmu::Entry, _slot: Slot, addr: u64, next: u64) -> ControlFlow<Infallible, Action> {
        if !pmd.is_leaf(mmu::Level::Pd) {
            return ControlFlow::Continue(Action::Subtree);
        }
        self.huge_leaf(pmd, mmu::Level::Pd, addr, next);
        ControlFlow::Continue(Action::Continue)
    }

    fn pte_entry(&mut self, pte: mmu::Entry, _slot: Slot, addr: u64) -> ControlFlow<Infallible> {
        let v = match self.mm.find_vma(addr) {
            Some(_) => pte_to_pagemap_entry(self.hw, pte),
            None => 0,
        };
        self.push(v);
        ControlFlow::Continue(())
    }

    /// Linux: pagemap_pte_hole. No table: nothing present, nothing swapped.
    fn pte_hole(&mut self, addr: u64, next: u64, _level: mmu::Level, _slot: Slot) -> ControlFlow<Infallible, Hole> {
        self.out.resize(self.out.len() + ((next - addr) / 4096 * 8) as usize, 0);
        ControlFlow::Continue(Hole::Skip)
    }
}

/// Linux: pte_to_pagemap_entry, for the PTE of a page in `vma`.
fn pte_to_pagemap_entry(hw: &super::hw::Hw, pte: mmu::Entry) -> u64 {
    use super::mm::pgtable::{self, linux::*};
    use super::mm::swapops::{make_pte_marker_entry, PteMarker, SoftLeaf};
    let (e, uffd_wp) = match super::mm::swapops::softleaf_from_pte(pte) {
        SoftLeaf::None => return 0,
        SoftLeaf::Present | SoftLeaf::ProtNone => {
            let pa = pgtable::pte_pfn(pte);
            let mut v = PM_PRESENT | ((pa.as_u64() >> 12) & PM_PFRAME_MASK);
            if pte.has(_PAGE_UFFD_WP) {
                v |= PM_UFFD_WP;
            }
            if !pte.has(_PAGE_SPECIAL) && !hw.pages.is_zero_page(pa) {
                // !PageAnon: the page-cache page itself, not a private copy of it.
                if hw.pages.meta(pa).file {
                    v |= PM_FILE;
                }
                if hw.pages.meta(pa).mapcount == 1 {
                    v |= PM_MMAP_EXCLUSIVE;
                }
            }
            return v;
        }
        SoftLeaf::Swap { entry, uffd_wp, .. } | SoftLeaf::Migration { entry, uffd_wp } => (entry, uffd_wp),
        // Type 31 with the marker bits as the offset.
        SoftLeaf::Marker(m) => (make_pte_marker_entry(m), m.contains(PteMarker::UFFD_WP)),
    };
    let mut v = PM_SWAP | ((e.swp_type() | (e.swp_offset() << MAX_SWAPFILES_SHIFT)) & PM_PFRAME_MASK);
    if uffd_wp {
        v |= PM_UFFD_WP;
    }
    v
}
