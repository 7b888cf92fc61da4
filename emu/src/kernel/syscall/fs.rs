//! File syscalls for the standard streams and read-only host files: read, write, readv,
//! writev, pread64, pwrite64, lseek, close, dup*, fcntl, ioctl, fstat, newfstatat, open,
//! openat, access, readlink, getcwd.
//!
//! Host files: the guest may open, read-only, the program itself and the paths allowed with
//! `--allow-path`; every other path is ENOENT (EACCES when opened for writing). The guest
//! never writes a host file except its stdout and stderr.

use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::file::{Fd, File, FileKind};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub const O_ACCMODE: u32 = 3;
pub const O_CREAT: u32 = 0o100;
pub const O_TRUNC: u32 = 0o1000;
pub const O_APPEND: u32 = 0o2000;
pub const O_NONBLOCK: u32 = 0o4000;
pub const O_CLOEXEC: u32 = 0o2000000;
pub const O_LARGEFILE: u32 = 0o100000;
pub const AT_EMPTY_PATH: u32 = 0x1000;

const S_IFIFO: u32 = 0o010000;
const S_IFCHR: u32 = 0o020000;
const S_IFREG: u32 = 0o100000;

/// Maximum bytes one read/write moves (Linux: MAX_RW_COUNT).
const MAX_RW_COUNT: u64 = 0x7fff_f000;

fn file(s: &Sys, fd: i32) -> KResult<Rc<RefCell<File>>> {
    s.k.tasks[&s.tid].files.borrow().get(fd).map(|f| f.file.clone()).ok_or(Errno::EBADF)
}

/// Reads up to `len` bytes from a file into a host buffer.
fn file_read(s: &mut Sys, f: &Rc<RefCell<File>>, len: usize, at: Option<u64>) -> KResult<Vec<u8>> {
    let mut f = f.borrow_mut();
    if f.flags & O_ACCMODE == 1 {
        return Err(Errno::EBADF);
    }
    match &mut f.kind {
        FileKind::Stdin => {
            if at.is_some() {
                return Err(Errno::ESPIPE);
            }
            let mut buf = vec![0u8; len.min(1 << 20)];
            let n = s.k.streams.stdin.read(&mut buf).map_err(|_| Errno::EIO)?;
            buf.truncate(n);
            Ok(buf)
        }
        FileKind::Output(_) => Err(Errno::EBADF),
        FileKind::HostFile { data, pos, .. } => {
            let p = at.unwrap_or(*pos) as usize;
            let end = p.saturating_add(len).min(data.len());
            let out = if p < data.len() { data[p..end].to_vec() } else { Vec::new() };
            if at.is_none() {
                *pos += out.len() as u64;
            }
            Ok(out)
        }
    }
}

fn file_write(s: &mut Sys, f: &Rc<RefCell<File>>, buf: &[u8], at: Option<u64>) -> KResult<usize> {
    let f = f.borrow();
    if f.flags & O_ACCMODE == 0 && !matches!(f.kind, FileKind::Output(_)) {
        return Err(Errno::EBADF);
    }
    match &f.kind {
        FileKind::Output(n) => {
            if at.is_some() {
                return Err(Errno::ESPIPE);
            }
            let w: &mut dyn Write = if *n == 1 { &mut s.k.streams.stdout } else { &mut s.k.streams.stderr };
            w.write_all(buf).map_err(|_| Errno::EPIPE)?;
            Ok(buf.len())
        }
        _ => Err(Errno::EBADF),
    }
}

pub fn sys_read(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    let len = a.u(2).min(MAX_RW_COUNT) as usize;
    let data = file_read(s, &f, len, None)?;
    s.copy_to_user(a.u(1), &data)?;
    ok(data.len() as u64)
}

pub fn sys_pread(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    if (a.u(3) as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let data = file_read(s, &f, a.u(2).min(MAX_RW_COUNT) as usize, Some(a.u(3)))?;
    s.copy_to_user(a.u(1), &data)?;
    ok(data.len() as u64)
}

pub fn sys_write(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    let len = a.u(2).min(MAX_RW_COUNT) as usize;
    let mut buf = vec![0u8; len];
    s.copy_from_user(a.u(1), &mut buf)?;
    ok(file_write(s, &f, &buf, None)? as u64)
}

pub fn sys_pwrite(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    if (a.u(3) as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let mut buf = vec![0u8; a.u(2).min(MAX_RW_COUNT) as usize];
    s.copy_from_user(a.u(1), &mut buf)?;
    ok(file_write(s, &f, &buf, Some(a.u(3)))? as u64)
}

/// Reads an iovec array (Linux: import_iovec): EINVAL for more than UIO_MAXIOV entries.
fn iovecs(s: &mut Sys, va: u64, cnt: u64) -> KResult<Vec<(u64, u64)>> {
    if cnt > 1024 {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; cnt as usize * 16];
    s.copy_from_user(va, &mut raw)?;
    let v: Vec<(u64, u64)> = raw
        .chunks(16)
        .map(|c| (u64::from_le_bytes(c[..8].try_into().unwrap()), u64::from_le_bytes(c[8..].try_into().unwrap())))
        .collect();
    if v.iter().any(|&(_, l)| (l as i64) < 0) {
        return Err(Errno::EINVAL);
    }
    Ok(v)
}

pub fn sys_writev(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    let iov = iovecs(s, a.u(1), a.u(2))?;
    let mut buf = Vec::new();
    for (base, len) in iov {
        let start = buf.len();
        buf.resize(start + len as usize, 0);
        if let Err(e) = s.copy_from_user(base, &mut buf[start..]) {
            buf.truncate(start);
            if buf.is_empty() {
                return Err(e);
            }
            break;
        }
    }
    ok(file_write(s, &f, &buf, None)? as u64)
}

pub fn sys_readv(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    let iov = iovecs(s, a.u(1), a.u(2))?;
    let total: u64 = iov.iter().map(|v| v.1).sum();
    let data = file_read(s, &f, total.min(MAX_RW_COUNT) as usize, None)?;
    let mut off = 0usize;
    for (base, len) in iov {
        if off >= data.len() {
            break;
        }
        let n = (len as usize).min(data.len() - off);
        s.copy_to_user(base, &data[off..off + n])?;
        off += n;
    }
    ok(data.len() as u64)
}

pub fn sys_lseek(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    let mut f = f.borrow_mut();
    match &mut f.kind {
        FileKind::HostFile { data, pos, .. } => {
            let base = match a.u32(2) {
                0 => 0i64,
                1 => *pos as i64,
                2 => data.len() as i64,
                _ => return Err(Errno::EINVAL),
            };
            let n = base.checked_add(a.u(1) as i64).filter(|&n| n >= 0).ok_or(Errno::EINVAL)?;
            *pos = n as u64;
            ok(n as u64)
        }
        _ => Err(Errno::ESPIPE),
    }
}

pub fn sys_close(s: &mut Sys, a: Args) -> SysResult {
    s.k.tasks[&s.tid].files.borrow_mut().close(a.i32(0)).ok_or(Errno::EBADF)?;
    ok(0)
}

pub fn sys_dup(s: &mut Sys, a: Args) -> SysResult {
    let files = s.k.tasks[&s.tid].files.clone();
    let mut t = files.borrow_mut();
    let f = t.get(a.i32(0)).ok_or(Errno::EBADF)?.clone();
    ok(t.install(Fd { file: f.file, cloexec: false }, 0).ok_or(Errno::EMFILE)? as u64)
}

/// dup2 (`legacy`: same fd returns it) and dup3 (same fd is EINVAL; flags only O_CLOEXEC).
pub fn sys_dup3(s: &mut Sys, old: i32, new: i32, flags: u32, legacy: bool) -> SysResult {
    if !legacy && (flags & !O_CLOEXEC != 0 || old == new) {
        return Err(Errno::EINVAL);
    }
    let files = s.k.tasks[&s.tid].files.clone();
    let mut t = files.borrow_mut();
    let f = t.get(old).ok_or(Errno::EBADF)?.clone();
    if new < 0 || new as usize >= crate::kernel::file::RLIMIT_NOFILE {
        return Err(Errno::EBADF);
    }
    if old == new {
        return ok(new as u64);
    }
    t.install_at(Fd { file: f.file, cloexec: flags & O_CLOEXEC != 0 }, new as usize);
    ok(new as u64)
}

pub fn sys_fcntl(s: &mut Sys, a: Args) -> SysResult {
    let files = s.k.tasks[&s.tid].files.clone();
    let mut t = files.borrow_mut();
    let fd = a.i32(0);
    let slot = t.get(fd).ok_or(Errno::EBADF)?.clone();
    match a.u32(1) {
        // F_DUPFD, F_DUPFD_CLOEXEC
        0 | 1030 => {
            let min = a.u(2) as usize;
            if min >= crate::kernel::file::RLIMIT_NOFILE {
                return Err(Errno::EINVAL);
            }
            ok(t.install(Fd { file: slot.file, cloexec: a.u32(1) == 1030 }, min).ok_or(Errno::EMFILE)? as u64)
        }
        // F_GETFD / F_SETFD
        1 => ok(slot.cloexec as u64),
        2 => {
            t.fds[fd as usize].as_mut().unwrap().cloexec = a.u(2) & 1 != 0;
            ok(0)
        }
        // F_GETFL / F_SETFL (only O_APPEND and O_NONBLOCK change)
        3 => ok((slot.file.borrow().flags | O_LARGEFILE) as u64),
        4 => {
            let mut f = slot.file.borrow_mut();
            f.flags = (f.flags & !(O_APPEND | O_NONBLOCK)) | (a.u32(2) & (O_APPEND | O_NONBLOCK));
            ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

const TCGETS: u32 = 0x5401;
const TIOCGWINSZ: u32 = 0x5413;
const FIONBIO: u32 = 0x5421;

pub fn sys_ioctl(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    let tty = match &f.borrow().kind {
        FileKind::Stdin => s.k.streams.tty[0],
        FileKind::Output(n) => s.k.streams.tty[*n as usize],
        FileKind::HostFile { .. } => false,
    };
    match a.u32(1) {
        FIONBIO => {
            let mut v = [0u8; 4];
            s.copy_from_user(a.u(2), &mut v)?;
            let mut f = f.borrow_mut();
            if u32::from_le_bytes(v) != 0 {
                f.flags |= O_NONBLOCK;
            } else {
                f.flags &= !O_NONBLOCK;
            }
            ok(0)
        }
        TCGETS if tty => {
            // A cooked terminal: c_iflag ICRNL|IXON, c_oflag OPOST|ONLCR, c_cflag B38400|CS8|CREAD,
            // c_lflag ISIG|ICANON|ECHO|ECHOE|ECHOK|IEXTEN|ECHOCTL|ECHOKE, line 0, c_cc defaults.
            let mut t = [0u8; 36];
            t[0..4].copy_from_slice(&0x0500u32.to_le_bytes());
            t[4..8].copy_from_slice(&0x0005u32.to_le_bytes());
            t[8..12].copy_from_slice(&0x00bfu32.to_le_bytes());
            t[12..16].copy_from_slice(&0x8a3bu32.to_le_bytes());
            let cc = [3u8, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0];
            t[17..36].copy_from_slice(&cc);
            s.copy_to_user(a.u(2), &t)?;
            ok(0)
        }
        TIOCGWINSZ if tty => {
            let w: [u16; 4] = [24, 80, 0, 0];
            let b: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            s.copy_to_user(a.u(2), &b)?;
            ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
}

/// Linux's x86-64 `struct stat` (144 bytes).
fn stat_bytes(mode: u32, size: u64, blksize: u64, rdev: u64, ino: u64) -> [u8; 144] {
    let mut b = [0u8; 144];
    let put = |b: &mut [u8; 144], off: usize, v: u64, n: usize| b[off..off + n].copy_from_slice(&v.to_le_bytes()[..n]);
    put(&mut b, 0, 0x16, 8); // st_dev
    put(&mut b, 8, ino, 8);
    put(&mut b, 16, 1, 8); // st_nlink
    put(&mut b, 24, mode as u64, 4);
    put(&mut b, 40, rdev, 8);
    put(&mut b, 48, size, 8);
    put(&mut b, 56, blksize, 8);
    put(&mut b, 64, size.div_ceil(512), 8);
    b
}

fn stat_of(s: &Sys, f: &Rc<RefCell<File>>) -> [u8; 144] {
    match &f.borrow().kind {
        FileKind::Stdin => stdio_stat(s, 0),
        FileKind::Output(n) => stdio_stat(s, *n as usize),
        FileKind::HostFile { data, .. } => stat_bytes(S_IFREG | 0o755, data.len() as u64, 4096, 0, 2),
    }
}

/// A terminal (/dev/pts/0) or a pipe, as the stream is on the host side.
fn stdio_stat(s: &Sys, n: usize) -> [u8; 144] {
    if s.k.streams.tty[n] {
        stat_bytes(S_IFCHR | 0o620, 0, 1024, (136 << 8) | 0, 3)
    } else {
        stat_bytes(S_IFIFO | 0o600, 0, 4096, 0, 4 + n as u64)
    }
}

pub fn sys_fstat(s: &mut Sys, fd: i32, buf: u64) -> SysResult {
    let f = file(s, fd)?;
    let st = stat_of(s, &f);
    s.copy_to_user(buf, &st)?;
    ok(0)
}

pub fn sys_newfstatat(s: &mut Sys, a: Args) -> SysResult {
    let (dirfd, path, buf, flags) = (a.i32(0), a.u(1), a.u(2), a.u32(3));
    let p = s.strncpy_from_user(path, 4096)?;
    if p.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        return sys_fstat(s, dirfd, buf);
    }
    if p.starts_with(b"/proc/") {
        // AT_SYMLINK_NOFOLLOW (0x100): lstat semantics.
        return crate::kernel::procfs::stat(s, &p, buf, flags & 0x100 == 0);
    }
    sys_stat_bytes(s, &p, buf)
}

pub fn sys_stat_path(s: &mut Sys, path: u64, buf: u64) -> SysResult {
    let p = s.strncpy_from_user(path, 4096)?;
    if p.starts_with(b"/proc/") {
        return crate::kernel::procfs::stat(s, &p, buf, true);
    }
    sys_stat_bytes(s, &p, buf)
}

fn sys_stat_bytes(s: &mut Sys, p: &[u8], buf: u64) -> SysResult {
    let path = resolve_allowed(s, p)?;
    let len = std::fs::metadata(&path).map_err(|_| Errno::ENOENT)?.len();
    s.copy_to_user(buf, &stat_bytes(S_IFREG | 0o755, len, 4096, 0, 2))?;
    ok(0)
}

/// Maps a guest path to an allowed host path, or ENOENT.
fn resolve_allowed(s: &Sys, p: &[u8]) -> KResult<PathBuf> {
    if p.is_empty() {
        return Err(Errno::ENOENT);
    }
    let path = PathBuf::from(std::str::from_utf8(p).map_err(|_| Errno::ENOENT)?);
    let exe = s.k.mms[s.k.tasks[&s.tid].mm].as_ref().map(|m| m.exe.clone()).unwrap_or_default();
    let allowed = |q: &Path| q == exe || q == Path::new("/proc/self/exe") || s.k.allow_paths.iter().any(|a| q.starts_with(a));
    if allowed(&path) {
        if path == Path::new("/proc/self/exe") {
            return Ok(exe);
        }
        return Ok(path);
    }
    Err(Errno::ENOENT)
}

pub fn sys_open(s: &mut Sys, path: u64, flags: u32, dirfd: i32) -> SysResult {
    let _ = dirfd;
    let p = s.strncpy_from_user(path, 4096)?;
    if p.starts_with(b"/proc/") {
        return crate::kernel::procfs::open(s, &p, flags);
    }
    let host = resolve_allowed(s, &p)?;
    if flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC) != 0 {
        return Err(Errno::EACCES);
    }
    let data = std::fs::read(&host).map_err(|e| if e.kind() == std::io::ErrorKind::IsADirectory { Errno::EISDIR } else { Errno::ENOENT })?;
    let f = File { kind: FileKind::HostFile { path: host, data: std::sync::Arc::new(data), pos: 0 }, flags: flags & (O_ACCMODE | O_NONBLOCK | O_APPEND) };
    let fd = Fd { file: Rc::new(RefCell::new(f)), cloexec: flags & O_CLOEXEC != 0 };
    ok(s.k.tasks[&s.tid].files.borrow_mut().install(fd, 0).ok_or(Errno::EMFILE)? as u64)
}

pub fn sys_access(s: &mut Sys, path: u64) -> SysResult {
    let p = s.strncpy_from_user(path, 4096)?;
    if p.starts_with(b"/proc/") {
        return crate::kernel::procfs::access(s, &p);
    }
    resolve_allowed(s, &p)?;
    ok(0)
}

pub fn sys_readlink(s: &mut Sys, path: u64, buf: u64, size: u64) -> SysResult {
    if (size as i64) <= 0 {
        return Err(Errno::EINVAL);
    }
    let p = s.strncpy_from_user(path, 4096)?;
    if p.starts_with(b"/proc/") {
        return crate::kernel::procfs::readlink(s, &p, buf, size);
    }
    if p != b"/proc/self/exe" {
        return Err(if resolve_allowed(s, &p).is_ok() { Errno::EINVAL } else { Errno::ENOENT });
    }
    let exe = s.mm().exe.clone();
    let bytes = exe.as_os_str().as_encoded_bytes().to_vec();
    let n = bytes.len().min(size as usize);
    s.copy_to_user(buf, &bytes[..n])?;
    ok(n as u64)
}

pub fn sys_getcwd(s: &mut Sys, a: Args) -> SysResult {
    let cwd = b"/\0";
    if a.u(1) < cwd.len() as u64 {
        return Err(Errno::ERANGE);
    }
    s.copy_to_user(a.u(0), cwd)?;
    ok(cwd.len() as u64)
}
