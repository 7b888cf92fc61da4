//! File syscalls for the standard streams, read-only host files and tmpfs/memfd files
//! (whose namespace calls are in `tmpfs`): read, write, readv, writev, pread64, pwrite64,
//! lseek, close, dup*, fcntl, ioctl, fstat, newfstatat, open, openat, access, readlink,
//! getcwd.
//!
//! Host files: the guest may open, read-only, the program itself and the paths allowed with
//! `--allow-path`; every other path is ENOENT (EACCES when opened for writing). The guest
//! never writes a host file except its stdout and stderr.

use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::file::{access_ok, Fd, File, FileKind, UserIter};
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
pub const O_DIRECT: u32 = 0o40000;
pub const FASYNC: u32 = 0o20000;
pub const O_NOATIME: u32 = 0o1000000;
pub const O_EXCL: u32 = 0o200;
pub const AT_EMPTY_PATH: u32 = 0x1000;
pub const AT_FDCWD: i32 = -100;

const S_IFIFO: u32 = 0o010000;
const S_IFCHR: u32 = 0o020000;
const S_IFREG: u32 = 0o100000;

/// Maximum bytes one read/write moves (Linux: MAX_RW_COUNT).
const MAX_RW_COUNT: u64 = 0x7fff_f000;

pub fn file(s: &Sys, fd: i32) -> KResult<Rc<RefCell<File>>> {
    s.k.tasks[&s.tid].files.borrow().get(fd).map(|f| f.file.clone()).ok_or(Errno::EBADF)
}

/// Reads up to `len` bytes from a standard stream or host file into a host buffer.
fn file_read(s: &mut Sys, f: &Rc<RefCell<File>>, len: usize, at: Option<u64>) -> KResult<Vec<u8>> {
    let mut f = f.borrow_mut();
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
        FileKind::ProcLive(lf) => {
            let p = at.unwrap_or(lf.pos);
            let out = (lf.read)(s, lf.target, p, len)?;
            if at.is_none() {
                lf.pos += out.len() as u64;
            }
            Ok(out)
        }
        FileKind::HostFile { data, pos, .. } => {
            let p = at.unwrap_or(*pos) as usize;
            let end = p.saturating_add(len).min(data.len());
            let out = if p < data.len() { data[p..end].to_vec() } else { Vec::new() };
            if at.is_none() {
                *pos += out.len() as u64;
            }
            Ok(out)
        }
        FileKind::Shmem(sf) => {
            let p = at.unwrap_or(sf.pos);
            let out = crate::kernel::shmemfs::shmem_read(&s.hw.mem, &sf.inode, p, len);
            if at.is_none() {
                sf.pos += out.len() as u64;
            }
            Ok(out)
        }
        FileKind::TmpfsDir(_) | FileKind::ProcDir(_) => Err(Errno::EISDIR),
        // Linux: read_iter_null, end of file at once.
        FileKind::DevNull => Ok(Vec::new()),
        _ => Err(Errno::EINVAL),
    }
}

/// Writes a host buffer to standard output or error.
fn file_write(s: &mut Sys, f: &Rc<RefCell<File>>, buf: &[u8], at: Option<u64>) -> KResult<usize> {
    let mut f = f.borrow_mut();
    match &mut f.kind {
        FileKind::ProcLive(lf) if lf.write.is_some() => {
            let p = at.unwrap_or(lf.pos);
            let n = (lf.write.unwrap())(s, lf.target, p, buf)?;
            if at.is_none() {
                lf.pos += n as u64;
            }
            Ok(n)
        }
        FileKind::Output(n) => {
            if at.is_some() {
                return Err(Errno::ESPIPE);
            }
            let w: &mut dyn Write = if *n == 1 { &mut s.k.streams.stdout } else { &mut s.k.streams.stderr };
            w.write_all(buf).map_err(|_| Errno::EPIPE)?;
            Ok(buf.len())
        }
        FileKind::Shmem(_) => {
            // O_APPEND writes at the end whatever the position (pwrite included, as Linux).
            let append = f.flags & O_APPEND != 0;
            let FileKind::Shmem(sf) = &mut f.kind else { unreachable!() };
            let p = if append { sf.inode.inode().size } else { at.unwrap_or(sf.pos) };
            let n = crate::kernel::shmemfs::shmem_write(&mut s.hw.pages, &mut s.hw.mem, &sf.inode, p, buf)?;
            if at.is_none() || append {
                sf.pos = p + n as u64;
            }
            Ok(n)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// The object behind a descriptor, cloned out so that no `File` borrow is held while a
/// read or write runs (it may block, wake others, or drop descriptions).
enum Target {
    /// Standard streams and host files (no blocking).
    Plain,
    Pipe(Rc<crate::kernel::pipe::Pipe>),
    EventFd(Rc<crate::kernel::eventfd::EventFd>),
    Uffd(Rc<crate::kernel::uffd::UffdCtx>),
    /// Files without read/write (epoll): EINVAL (Linux: no FMODE_CAN_READ/WRITE).
    NoRw,
}

fn target(f: &File) -> Target {
    match &f.kind {
        FileKind::Pipe(end) => Target::Pipe(end.pipe.clone()),
        FileKind::EventFd(e) => Target::EventFd(e.clone()),
        FileKind::Epoll(_) => Target::NoRw,
        FileKind::Userfaultfd(u) => Target::Uffd(u.0.clone()),
        _ => Target::Plain,
    }
}

/// Moves the position of a seekable file back by `n` bytes that `file_read` read but
/// the copy to the user did not deliver (stdin's bytes are gone).
fn unread(f: &Rc<RefCell<File>>, n: u64) {
    match &mut f.borrow_mut().kind {
        FileKind::ProcLive(lf) => lf.pos -= n,
        FileKind::HostFile { pos, .. } => *pos -= n,
        FileKind::Shmem(sf) => sf.pos -= n,
        _ => {}
    }
}

/// Files that refuse positioned I/O (Linux: no FMODE_PREAD, stream_open; anonymous
/// inodes never get it: measured for a userfaultfd).
fn is_stream(f: &File) -> bool {
    matches!(f.kind, FileKind::Pipe(_) | FileKind::Stdin | FileKind::Output(_) | FileKind::Userfaultfd(_) | FileKind::EventFd(_) | FileKind::Epoll(_))
}

/// Files with an ->fasync (pipes, terminals): the only ones whose O_ASYNC can be set.
fn has_fasync(f: &File) -> bool {
    matches!(f.kind, FileKind::Pipe(_) | FileKind::Stdin | FileKind::Output(_))
}

/// fsync(2) and fdatasync(2) (Linux: vfs_fsync_range): EBADF for a bad descriptor, EINVAL
/// for a file without ->fsync (pipes, anonymous inodes, procfs; a terminal or pipe as
/// stdout), 0 for tmpfs and host files (nothing to write back).
pub fn sys_fsync(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    let f = f.borrow();
    match f.kind {
        FileKind::Shmem(_) | FileKind::TmpfsDir(_) | FileKind::HostFile { .. } => ok(0),
        // The root directory is the host's (a disk filesystem's directory syncs).
        FileKind::ProcDir(ref d) if d.path == "/" => ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// Linux: vfs_read / do_iter_read, after the buffer checks. `at`: pread's offset.
fn do_read(s: &mut Sys, fd: i32, f: &Rc<RefCell<File>>, mut to: UserIter, at: Option<u64>) -> SysResult {
    let (t, flags) = {
        let fb = f.borrow();
        if !fb.readable() {
            return Err(Errno::EBADF);
        }
        (target(&fb), fb.flags)
    };
    let nonblock = flags & O_NONBLOCK != 0;
    match t {
        Target::Pipe(p) => crate::kernel::pipe::pipe_read(s, &p, nonblock, fd, to),
        Target::EventFd(e) => crate::kernel::eventfd::eventfd_read(s, &e, nonblock, fd, to),
        Target::NoRw => Err(Errno::EINVAL),
        Target::Uffd(c) => {
            let (va, len) = to.first_segment();
            crate::kernel::uffd::userfaultfd_read(s, &c, nonblock, fd, va, len)
        }
        Target::Plain => {
            let data = file_read(s, f, to.count.min(MAX_RW_COUNT) as usize, at)?;
            let n = to.copy_to(s, &data);
            if n < data.len() && at.is_none() {
                // A short copy: the file position counts only what reached the user.
                unread(f, (data.len() - n) as u64);
            }
            if n < data.len() && n == 0 {
                return Err(Errno::EFAULT);
            }
            ok(n as u64)
        }
    }
}

/// Linux: vfs_write / do_iter_write. `segs` are the user segments (one for write);
/// eventfd, having only a ->write, takes them one at a time (do_loop_readv_writev).
fn do_write(s: &mut Sys, fd: i32, f: &Rc<RefCell<File>>, segs: Vec<(u64, u64)>, at: Option<u64>) -> SysResult {
    let (t, flags, plain_ok) = {
        let fb = f.borrow();
        let plain_ok = matches!(fb.kind, FileKind::Output(_))
            || matches!(&fb.kind, FileKind::ProcLive(lf) if lf.write.is_some() && fb.writable())
            || matches!(fb.kind, FileKind::Shmem(_)) && fb.writable();
        if !fb.writable() && !plain_ok {
            return Err(Errno::EBADF);
        }
        (target(&fb), fb.flags, plain_ok)
    };
    let nonblock = flags & O_NONBLOCK != 0;
    match t {
        Target::Pipe(p) => {
            let packet = flags & O_DIRECT != 0;
            crate::kernel::pipe::pipe_write(s, &p, nonblock, packet, fd, UserIter::new(segs))
        }
        Target::EventFd(e) => {
            let mut total = 0u64;
            for (base, len) in segs {
                match crate::kernel::eventfd::eventfd_write(s, &e, nonblock, fd, base, len) {
                    Ok(super::Ret::Val(n)) => {
                        total += n;
                        if n != len {
                            break;
                        }
                    }
                    Err(err) if total == 0 => return Err(err),
                    r if total == 0 => return r,
                    _ => break,
                }
            }
            ok(total)
        }
        Target::NoRw | Target::Uffd(_) => Err(Errno::EINVAL),
        Target::Plain if matches!(f.borrow().kind, FileKind::DevNull) => {
            // Linux: write_iter_null, the whole count, the buffer never read.
            ok(segs.iter().map(|s| s.1).sum::<u64>().min(MAX_RW_COUNT))
        }
        Target::Plain => {
            if !plain_ok {
                // A /proc file opened for writing (root may; host files never open so)
                // has no write method (Linux: proc_reg_write without ->proc_write).
                if matches!(f.borrow().kind, FileKind::HostFile { .. }) {
                    return Err(Errno::EIO);
                }
                return Err(Errno::EBADF);
            }
            let mut it = UserIter::new(segs);
            let buf = it.copy_from(s, it.count.min(MAX_RW_COUNT) as usize);
            if buf.is_empty() && it.count > 0 {
                return Err(Errno::EFAULT);
            }
            ok(file_write(s, f, &buf, at)? as u64)
        }
    }
}

pub fn sys_read(s: &mut Sys, a: Args) -> SysResult {
    let (fd, buf, len) = (a.i32(0), a.u(1), a.u(2));
    let f = file(s, fd)?;
    if !f.borrow().readable() {
        return Err(Errno::EBADF);
    }
    if !access_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    do_read(s, fd, &f, UserIter::single(buf, len.min(MAX_RW_COUNT)), None)
}

pub fn sys_pread(s: &mut Sys, a: Args) -> SysResult {
    let (fd, buf, len, pos) = (a.i32(0), a.u(1), a.u(2), a.u(3));
    if (pos as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let f = file(s, fd)?;
    if is_stream(&f.borrow()) {
        return Err(Errno::ESPIPE);
    }
    if !f.borrow().readable() {
        return Err(Errno::EBADF);
    }
    if !access_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    do_read(s, fd, &f, UserIter::single(buf, len.min(MAX_RW_COUNT)), Some(pos))
}

pub fn sys_write(s: &mut Sys, a: Args) -> SysResult {
    let (fd, buf, len) = (a.i32(0), a.u(1), a.u(2));
    let f = file(s, fd)?;
    {
        let fb = f.borrow();
        if !fb.writable() && !matches!(fb.kind, FileKind::Output(_)) {
            return Err(Errno::EBADF);
        }
    }
    if !access_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    do_write(s, fd, &f, vec![(buf, len.min(MAX_RW_COUNT))], None)
}

pub fn sys_pwrite(s: &mut Sys, a: Args) -> SysResult {
    let (fd, buf, len, pos) = (a.i32(0), a.u(1), a.u(2), a.u(3));
    if (pos as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let f = file(s, fd)?;
    if is_stream(&f.borrow()) {
        return Err(Errno::ESPIPE);
    }
    if !access_ok(buf, len) {
        return Err(Errno::EFAULT);
    }
    do_write(s, fd, &f, vec![(buf, len.min(MAX_RW_COUNT))], Some(pos))
}

/// lseek of a directory listing (Linux: dcache_dir_lseek / offset_dir_llseek): SEEK_SET
/// and SEEK_CUR of the entry position; EINVAL for another whence or a negative result.
fn dir_lseek(pos: &mut u64, a: Args) -> SysResult {
    let n = match a.u32(2) {
        0 => a.u(1) as i64,
        1 => *pos as i64 + a.u(1) as i64,
        _ => return Err(Errno::EINVAL),
    };
    if n < 0 {
        return Err(Errno::EINVAL);
    }
    *pos = n as u64;
    ok(n as u64)
}

/// Reads an iovec array (Linux: import_iovec): EINVAL for more than UIO_MAXIOV entries or
/// a negative length, EFAULT for a segment outside user space; the total is capped at
/// MAX_RW_COUNT by shortening the segment that crosses it.
fn iovecs(s: &mut Sys, va: u64, cnt: u64) -> KResult<Vec<(u64, u64)>> {
    if cnt > 1024 {
        return Err(Errno::EINVAL);
    }
    let mut raw = vec![0u8; cnt as usize * 16];
    s.copy_from_user(va, &mut raw)?;
    let mut v = Vec::with_capacity(cnt as usize);
    let mut total = 0u64;
    for c in raw.chunks(16) {
        let base = u64::from_le_bytes(c[..8].try_into().unwrap());
        let mut len = u64::from_le_bytes(c[8..].try_into().unwrap());
        if (len as i64) < 0 {
            return Err(Errno::EINVAL);
        }
        if !access_ok(base, len) {
            return Err(Errno::EFAULT);
        }
        len = len.min(MAX_RW_COUNT - total);
        total += len;
        v.push((base, len));
    }
    Ok(v)
}

pub fn sys_writev(s: &mut Sys, a: Args) -> SysResult {
    let fd = a.i32(0);
    let f = file(s, fd)?;
    let iov = iovecs(s, a.u(1), a.u(2))?;
    if iov.iter().all(|v| v.1 == 0) {
        let fb = f.borrow();
        if !fb.writable() && !matches!(fb.kind, FileKind::Output(_)) {
            return Err(Errno::EBADF);
        }
        return ok(0);
    }
    do_write(s, fd, &f, iov, None)
}

pub fn sys_readv(s: &mut Sys, a: Args) -> SysResult {
    let fd = a.i32(0);
    let f = file(s, fd)?;
    let iov = iovecs(s, a.u(1), a.u(2))?;
    if iov.iter().all(|v| v.1 == 0) {
        if !f.borrow().readable() {
            return Err(Errno::EBADF);
        }
        return ok(0);
    }
    do_read(s, fd, &f, UserIter::new(iov), None)
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
        // Linux: mem_lseek (pagemap): SEEK_SET and SEEK_CUR, any offset.
        FileKind::ProcLive(lf) => {
            let n = match a.u32(2) {
                0 => a.u(1),
                1 => lf.pos.wrapping_add(a.u(1)),
                _ => return Err(Errno::EINVAL),
            };
            lf.pos = n;
            ok(n)
        }
        // Linux: shmem_file_llseek (generic_file_llseek_size with SEEK_DATA/SEEK_HOLE).
        FileKind::Shmem(sf) => {
            let size = sf.inode.inode().size as i64;
            let off = a.u(1) as i64;
            let n = match a.u32(2) {
                0 => off,
                1 => (sf.pos as i64).checked_add(off).ok_or(Errno::EINVAL)?,
                2 => size.checked_add(off).ok_or(Errno::EINVAL)?,
                // SEEK_DATA / SEEK_HOLE: ENXIO at or past the end.
                3 | 4 if off < 0 || off >= size => return Err(Errno::ENXIO),
                3 => {
                    let pg = sf.inode.inode().mapping.next_data(off as u64 >> 12).ok_or(Errno::ENXIO)?;
                    let at = (pg << 12).max(off as u64) as i64;
                    if at >= size {
                        return Err(Errno::ENXIO);
                    }
                    at
                }
                4 => {
                    let mut pg = off as u64 >> 12;
                    while sf.inode.inode().mapping.get_uptodate(pg).is_some() {
                        pg += 1;
                    }
                    ((pg << 12).max(off as u64) as i64).min(size)
                }
                _ => return Err(Errno::EINVAL),
            };
            if n < 0 {
                return Err(Errno::EINVAL);
            }
            sf.pos = n as u64;
            ok(n as u64)
        }
        FileKind::TmpfsDir(d) => dir_lseek(&mut d.pos, a),
        FileKind::ProcDir(d) => dir_lseek(&mut d.pos, a),
        // Linux: null_lseek, any whence up to SEEK_HOLE puts the position at 0.
        FileKind::DevNull if a.u32(2) <= 4 => ok(0),
        FileKind::DevNull => Err(Errno::EINVAL),
        // Linux: noop_llseek, the position stays 0.
        FileKind::EventFd(_) | FileKind::Epoll(_) | FileKind::Userfaultfd(_) | FileKind::DevUserfaultfd => ok(0),
        _ => Err(Errno::ESPIPE),
    }
}

pub fn sys_close(s: &mut Sys, a: Args) -> SysResult {
    // Dropped after the table borrow ends: the last reference releases the description
    // (a pipe end wakes the other side).
    let slot = s.files().borrow_mut().close(a.i32(0));
    slot.ok_or(Errno::EBADF)?;
    ok(0)
}

pub fn sys_dup(s: &mut Sys, a: Args) -> SysResult {
    let files = s.files();
    let mut t = files.borrow_mut();
    let f = t.get(a.i32(0)).ok_or(Errno::EBADF)?.clone();
    ok(t.install(Fd { file: f.file, cloexec: false }, 0).ok_or(Errno::EMFILE)? as u64)
}

/// dup2 (`legacy`: the same fd returns it if open) and dup3 (Linux: ksys_dup3: flags other
/// than O_CLOEXEC or the same fd are EINVAL; a new fd beyond RLIMIT_NOFILE is EBADF).
pub fn sys_dup3(s: &mut Sys, old: i32, new: i32, flags: u32, legacy: bool) -> SysResult {
    if legacy && old == new {
        return if s.files().borrow().get(old).is_some() { ok(old as u64) } else { Err(Errno::EBADF) };
    }
    if flags & !O_CLOEXEC != 0 || old == new {
        return Err(Errno::EINVAL);
    }
    if new as u32 as usize >= crate::kernel::file::RLIMIT_NOFILE {
        return Err(Errno::EBADF);
    }
    let files = s.files();
    let replaced = {
        let mut t = files.borrow_mut();
        let f = t.get(old).ok_or(Errno::EBADF)?.clone();
        let replaced = t.close(new);
        t.install_at(Fd { file: f.file, cloexec: flags & O_CLOEXEC != 0 }, new as usize);
        replaced
    };
    drop(replaced);
    ok(new as u64)
}

const F_DUPFD: u32 = 0;
const F_GETFD: u32 = 1;
const F_SETFD: u32 = 2;
const F_GETFL: u32 = 3;
const F_SETFL: u32 = 4;
const F_GETOWN: u32 = 9;
const F_DUPFD_CLOEXEC: u32 = 1030;

/// Status flags F_SETFL may change (Linux: SETFL_MASK).
const SETFL_MASK: u32 = O_APPEND | O_NONBLOCK | FASYNC | O_DIRECT | O_NOATIME;

pub fn sys_fcntl(s: &mut Sys, a: Args) -> SysResult {
    let files = s.files();
    let fd = a.i32(0);
    let slot = files.borrow().get(fd).ok_or(Errno::EBADF)?.clone();
    let cmd = a.u32(1);
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min = a.u(2);
            if min >= crate::kernel::file::RLIMIT_NOFILE as u64 {
                return Err(Errno::EINVAL);
            }
            let fd = Fd { file: slot.file, cloexec: cmd == F_DUPFD_CLOEXEC };
            ok(files.borrow_mut().install(fd, min as usize).ok_or(Errno::EMFILE)? as u64)
        }
        F_GETFD => ok(slot.cloexec as u64),
        F_SETFD => {
            files.borrow_mut().fds[fd as usize].as_mut().unwrap().cloexec = a.u(2) & 1 != 0;
            ok(0)
        }
        F_GETFL => {
            let f = slot.file.borrow();
            // Files opened by path carry O_LARGEFILE (forced on 64-bit); pipes, eventfds and
            // epoll instances are made without it.
            let large = matches!(f.kind, FileKind::Stdin | FileKind::Output(_) | FileKind::HostFile { .. } | FileKind::ProcLive(_) | FileKind::Shmem(_) | FileKind::TmpfsDir(_) | FileKind::ProcDir(_) | FileKind::DevNull);
            ok((f.flags | if large { O_LARGEFILE } else { 0 }) as u64)
        }
        F_SETFL => {
            let arg = a.u32(2);
            let mut f = slot.file.borrow_mut();
            // O_DIRECT: packet mode on pipes; host files take it; terminals and anonymous
            // inodes cannot (Linux: FMODE_CAN_ODIRECT).
            if arg & O_DIRECT != 0 {
                let can = match &f.kind {
                    FileKind::Pipe(_) | FileKind::HostFile { .. } | FileKind::Shmem(_) | FileKind::TmpfsDir(_) => true,
                    FileKind::Stdin => !s.k.streams.tty[0],
                    FileKind::Output(n) => !s.k.streams.tty[*n as usize],
                    FileKind::EventFd(_) | FileKind::Epoll(_) | FileKind::ProcLive(_) | FileKind::ProcDir(_) | FileKind::Userfaultfd(_) | FileKind::DevUserfaultfd | FileKind::DevNull => false,
                };
                if !can {
                    return Err(Errno::EINVAL);
                }
            }
            // ->fasync sets FASYNC; a file without one keeps it clear (measured: a
            // userfaultfd's O_ASYNC stays 0).
            let mask = if has_fasync(&f) { SETFL_MASK } else { SETFL_MASK & !FASYNC };
            f.flags = (arg & mask) | (f.flags & !mask);
            ok(0)
        }
        F_GETOWN => ok(0),
        super::tmpfs::F_ADD_SEALS | super::tmpfs::F_GET_SEALS => super::tmpfs::memfd_fcntl(s, &slot.file, cmd, a.u32(2)),
        crate::kernel::pipe::F_GETPIPE_SZ | crate::kernel::pipe::F_SETPIPE_SZ => {
            let f = slot.file.borrow();
            match &f.kind {
                FileKind::Pipe(end) => crate::kernel::pipe::pipe_fcntl(&end.pipe, cmd, a.u(2)),
                _ => Err(Errno::EBADF),
            }
        }
        _ => Err(Errno::EINVAL),
    }
}

/// pipe and pipe2 (Linux: do_pipe2): both descriptors are reserved, the pair is copied
/// out, and only then installed, so EFAULT leaves no descriptor behind.
pub fn sys_pipe2(s: &mut Sys, fildes: u64, flags: u32) -> SysResult {
    // O_NOTIFICATION_PIPE shares O_EXCL's value.
    if flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT | O_EXCL) != 0 {
        return Err(Errno::EINVAL);
    }
    // O_NOTIFICATION_PIPE: a kernel without CONFIG_WATCH_QUEUE, like the usual host,
    // answers ENOPKG (Linux: watch_queue_init).
    if flags & O_EXCL != 0 {
        return Err(Errno(65));
    }
    let (r, w) = crate::kernel::pipe::create_pipe(s.k);
    let keep = flags & (O_NONBLOCK | O_DIRECT);
    let rf = Rc::new(RefCell::new(File::new(FileKind::Pipe(r), keep)));
    let wf = Rc::new(RefCell::new(File::new(FileKind::Pipe(w), 1 | keep)));
    let files = s.files();
    let (fdr, fdw) = {
        let t = files.borrow();
        let fdr = t.lowest_free(0).ok_or(Errno::EMFILE)?;
        let fdw = (fdr + 1..crate::kernel::file::RLIMIT_NOFILE).find(|&i| t.get(i as i32).is_none()).ok_or(Errno::EMFILE)?;
        (fdr, fdw)
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&(fdr as i32).to_le_bytes());
    out[4..].copy_from_slice(&(fdw as i32).to_le_bytes());
    s.copy_to_user(fildes, &out)?;
    let cloexec = flags & O_CLOEXEC != 0;
    let mut t = files.borrow_mut();
    t.install_at(Fd { file: rf, cloexec }, fdr);
    t.install_at(Fd { file: wf, cloexec }, fdw);
    ok(0)
}

/// eventfd and eventfd2 (Linux: do_eventfd).
pub fn sys_eventfd2(s: &mut Sys, initval: u32, flags: u32) -> SysResult {
    use crate::kernel::eventfd::{EventFd, EFD_SEMAPHORE};
    if flags & !(EFD_SEMAPHORE | O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    let e = EventFd::new(s.k, initval as u64, flags & EFD_SEMAPHORE != 0);
    let f = File::new(FileKind::EventFd(Rc::new(e)), 2 | (flags & O_NONBLOCK));
    let fd = Fd { file: Rc::new(RefCell::new(f)), cloexec: flags & O_CLOEXEC != 0 };
    ok(s.files().borrow_mut().install(fd, 0).ok_or(Errno::EMFILE)? as u64)
}

const TCGETS: u32 = 0x5401;
const TIOCGWINSZ: u32 = 0x5413;
const FIONBIO: u32 = 0x5421;
const FIONREAD: u32 = 0x541b;
const FIONCLEX: u32 = 0x5450;
const FIOCLEX: u32 = 0x5451;
const FIOASYNC: u32 = 0x5452;

pub fn sys_ioctl(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    let tty = match &f.borrow().kind {
        FileKind::Stdin => s.k.streams.tty[0],
        FileKind::Output(n) => s.k.streams.tty[*n as usize],
        _ => false,
    };
    match a.u32(1) {
        FIOCLEX | FIONCLEX => {
            let files = s.files();
            files.borrow_mut().fds[a.i32(0) as usize].as_mut().unwrap().cloexec = a.u32(1) == FIOCLEX;
            ok(0)
        }
        FIONREAD if matches!(f.borrow().kind, FileKind::Pipe(_)) => {
            let n = match &f.borrow().kind {
                FileKind::Pipe(end) => end.pipe.inner.borrow().bytes() as u32,
                _ => 0,
            };
            s.copy_to_user(a.u(2), &n.to_le_bytes())?;
            ok(0)
        }
        FIOASYNC => {
            // ioctl_fioasync: a change of state needs an ->fasync (else ENOTTY).
            let mut v = [0u8; 4];
            s.copy_from_user(a.u(2), &mut v)?;
            let on = u32::from_le_bytes(v) != 0;
            let mut f = f.borrow_mut();
            if on != (f.flags & FASYNC != 0) {
                if !has_fasync(&f) {
                    return Err(Errno::ENOTTY);
                }
                f.flags ^= FASYNC;
            }
            ok(0)
        }
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
        cmd => match &f.borrow().kind {
            FileKind::Userfaultfd(u) => {
                let ctx = u.0.clone();
                crate::kernel::uffd::userfaultfd_ioctl(s, ctx, cmd, a.u(2))
            }
            FileKind::DevUserfaultfd => crate::kernel::uffd::dev_ioctl(s, cmd, a.u(2)),
            FileKind::ProcLive(lf) => {
                let (t, path) = (lf.target, lf.path.clone());
                crate::kernel::pagemap_scan::proc_ioctl(s, t, &path, cmd, a.u(2))
            }
            _ => Err(Errno::ENOTTY),
        },
    }
}

/// Linux's x86-64 `struct stat` (144 bytes).
pub fn stat_bytes(mode: u32, size: u64, blksize: u64, rdev: u64, ino: u64) -> [u8; 144] {
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
        FileKind::Pipe(end) => stat_bytes(S_IFIFO | 0o600, 0, 4096, 0, end.pipe.ino),
        // Anonymous inodes have no file type bits (Linux: alloc_anon_inode).
        FileKind::EventFd(e) => stat_bytes(0o600, 0, 4096, 0, e.wq.id),
        FileKind::Epoll(ep) => stat_bytes(0o600, 0, 4096, 0, ep.wq.id),
        FileKind::Userfaultfd(u) => stat_bytes(0o600, 0, 4096, 0, u.0.wq.id),
        // crw------- 10,124 (misc minor of /dev/userfaultfd).
        FileKind::DevUserfaultfd => stat_bytes(S_IFCHR | 0o600, 0, 4096, (10 << 8) | 124, 3),
        // /proc/PID/pagemap, mem, /proc/sys/vm/stat_refresh: size 0, blksize 1024 (procfs).
        FileKind::ProcLive(lf) => stat_bytes(S_IFREG | lf.mode, 0, 1024, 0, (lf.target.tid as u64) << 8),
        FileKind::ProcDir(d) => d.stat,
        FileKind::Shmem(sf) => super::tmpfs::shmem_stat(&sf.inode),
        FileKind::TmpfsDir(d) => super::tmpfs::dir_stat(&d.dir),
        FileKind::DevNull => dev_null_stat(),
    }
}

/// A terminal (/dev/pts/0) or a pipe, as the stream is on the host side.
fn stdio_stat(s: &Sys, n: usize) -> [u8; 144] {
    if s.k.streams.tty[n] {
        stat_bytes(S_IFCHR | 0o620, 0, 1024, 136 << 8, 3)
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
    let p = super::tmpfs::at_path(s, dirfd, &p)?;
    if crate::kernel::procfs::handles(&p) {
        // AT_SYMLINK_NOFOLLOW (0x100): lstat semantics.
        return crate::kernel::procfs::stat(s, &p, buf, flags & 0x100 == 0);
    }
    sys_stat_bytes(s, &p, buf)
}

pub fn sys_stat_path(s: &mut Sys, path: u64, buf: u64) -> SysResult {
    let p = s.strncpy_from_user(path, 4096)?;
    if crate::kernel::procfs::handles(&p) {
        return crate::kernel::procfs::stat(s, &p, buf, true);
    }
    sys_stat_bytes(s, &p, buf)
}

fn sys_stat_bytes(s: &mut Sys, p: &[u8], buf: u64) -> SysResult {
    if let Some(sp) = special(p) {
        let st = match sp? {
            Special::Root => root_stat(),
            Special::DevNull => dev_null_stat(),
        };
        s.copy_to_user(buf, &st)?;
        return ok(0);
    }
    if let Some(st) = super::tmpfs::stat_path(s, p) {
        s.copy_to_user(buf, &st?)?;
        return ok(0);
    }
    let path = resolve_allowed(s, p)?;
    let len = std::fs::metadata(&path).map_err(|_| Errno::ENOENT)?.len();
    s.copy_to_user(buf, &stat_bytes(S_IFREG | 0o755, len, 4096, 0, 2))?;
    ok(0)
}

/// Lexical normalisation against the guest's working directory "/": "." goes, ".." drops
/// the previous component (never above the root), so "/allowed/../etc/passwd" cannot pass
/// a prefix check as a path under "/allowed".
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Maps a guest path to an allowed host path, or ENOENT. Allowed: the program itself
/// (also as /proc/self/exe) and what lies under an `--allow-path`, both lexically and
/// after resolving symlinks (a link inside an allowed directory cannot lead out of it).
pub fn resolve_allowed(s: &Sys, p: &[u8]) -> KResult<PathBuf> {
    if p.is_empty() {
        return Err(Errno::ENOENT);
    }
    let path = normalize(Path::new(std::str::from_utf8(p).map_err(|_| Errno::ENOENT)?));
    let exe = s.k.mms[s.k.tasks[&s.tid].mm].as_ref().map(|m| m.exe.clone()).unwrap_or_default();
    if path == Path::new("/proc/self/exe") {
        return Ok(exe);
    }
    let abs = |q: &Path| std::path::absolute(q).map(|q| normalize(&q)).unwrap_or_default();
    if path == abs(&exe) {
        return Ok(exe);
    }
    for a in &s.k.allow_paths {
        let a = abs(a);
        if path.starts_with(&a) {
            // Symlinks: the real path must stay under the real allowed path.
            return match (std::fs::canonicalize(&path), std::fs::canonicalize(&a)) {
                (Ok(real), Ok(real_a)) if !real.starts_with(&real_a) => Err(Errno::ENOENT),
                _ => Ok(path),
            };
        }
    }
    Err(Errno::ENOENT)
}

/// The paths pagelab serves besides /proc, /sys, tmpfs, /dev/userfaultfd and the allowed
/// host files: the root directory, listing pagelab's own top directories, and /dev/null.
enum Special {
    Root,
    DevNull,
}

/// The special file an absolute path names, lexically ("//", ".", ".."), or None; a path
/// through /dev/null ("/dev/null/", "/dev/null/.") is ENOTDIR.
fn special(p: &[u8]) -> Option<KResult<Special>> {
    let s = std::str::from_utf8(p).ok().filter(|s| s.starts_with('/'))?;
    match normalize(Path::new(s)).to_str()? {
        "/" => Some(Ok(Special::Root)),
        "/dev/null" if p.ends_with(b"/null") => Some(Ok(Special::DevNull)),
        "/dev/null" => Some(Err(Errno::ENOTDIR)),
        _ => None,
    }
}

/// crw-rw-rw- 1:3 (Linux: the mem driver's minor 3), size 0.
fn dev_null_stat() -> [u8; 144] {
    stat_bytes(S_IFCHR | 0o666, 0, 4096, (1 << 8) | 3, 4)
}

const S_IFDIR: u32 = 0o040000;
const DT_DIR: u8 = 4;
/// The root directory's entries: pagelab's top directories.
const ROOT_DIRS: &[&str] = &["dev", "proc", "sys", "tmp"];

/// drwxr-xr-x, inode 2 (a disk filesystem's root), one block, 2 + subdirectory links.
fn root_stat() -> [u8; 144] {
    let mut st = stat_bytes(S_IFDIR | 0o755, 4096, 4096, 0, 2);
    st[16..24].copy_from_slice(&(2 + ROOT_DIRS.len() as u64).to_le_bytes());
    st
}

/// Linux's do_open and may_open for the special files: O_CREAT|O_EXCL of an existing
/// file is EEXIST; a directory opened for writing, creating or truncating is EISDIR; a
/// device with O_DIRECTORY ENOTDIR; O_DIRECT (no FMODE_CAN_ODIRECT) EINVAL. The file
/// keeps the open flags but the creation ones and O_CLOEXEC.
fn open_special(s: &mut Sys, sp: Special, flags: u32) -> SysResult {
    const O_DIRECTORY: u32 = 0o200000;
    if flags & O_CREAT != 0 && flags & O_EXCL != 0 {
        return Err(Errno::EEXIST);
    }
    let kind = match sp {
        Special::Root => {
            if flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC) != 0 {
                return Err(Errno::EISDIR);
            }
            let mut entries = vec![(b".".to_vec(), 2, DT_DIR), (b"..".to_vec(), 2, DT_DIR)];
            entries.extend(ROOT_DIRS.iter().enumerate().map(|(i, d)| (d.as_bytes().to_vec(), 3 + i as u64, DT_DIR)));
            FileKind::ProcDir(crate::kernel::procfs::ProcDir { path: "/".into(), entries, pos: 0, stat: root_stat() })
        }
        Special::DevNull if flags & O_DIRECTORY != 0 => return Err(Errno::ENOTDIR),
        Special::DevNull => FileKind::DevNull,
    };
    if flags & O_DIRECT != 0 {
        return Err(Errno::EINVAL);
    }
    let f = File::new(kind, flags & !(O_CREAT | O_EXCL | 0o400 | O_TRUNC | O_CLOEXEC | O_LARGEFILE));
    let fd = Fd { file: Rc::new(RefCell::new(f)), cloexec: flags & O_CLOEXEC != 0 };
    ok(s.files().borrow_mut().install(fd, 0).ok_or(Errno::EMFILE)? as u64)
}

/// open/openat. A relative path with a directory descriptor other than AT_FDCWD needs a
/// directory, which no guest descriptor is: EBADF for a closed fd, else ENOTDIR. Host
/// files open read-only; asking to write, create or truncate an allowed file is EACCES.
pub fn sys_open(s: &mut Sys, path: u64, flags: u32, dirfd: i32) -> SysResult {
    // Linux: build_open_flags, before any lookup.
    if flags & (O_CREAT | 0o200000) == O_CREAT | 0o200000 {
        return Err(Errno::EINVAL);
    }
    let p = s.strncpy_from_user(path, 4096)?;
    let p = super::tmpfs::at_path(s, dirfd, &p)?;
    if crate::kernel::procfs::handles(&p) {
        return crate::kernel::procfs::open(s, &p, flags);
    }
    if p == b"/dev/userfaultfd" {
        return crate::kernel::uffd::open_dev(s, flags);
    }
    if let Some(sp) = special(&p) {
        return open_special(s, sp?, flags);
    }
    if let Some(r) = super::tmpfs::open(s, &p, flags) {
        return r;
    }
    let host = resolve_allowed(s, &p)?;
    if flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC) != 0 {
        return Err(Errno::EACCES);
    }
    let data = std::fs::read(&host).map_err(|e| if e.kind() == std::io::ErrorKind::IsADirectory { Errno::EISDIR } else { Errno::ENOENT })?;
    let f = File { kind: FileKind::HostFile { path: host, data: std::sync::Arc::new(data), pos: 0 }, flags: flags & (O_ACCMODE | O_NONBLOCK | O_APPEND | O_DIRECT | O_NOATIME) };
    let fd = Fd { file: Rc::new(RefCell::new(f)), cloexec: flags & O_CLOEXEC != 0 };
    ok(s.k.tasks[&s.tid].files.borrow_mut().install(fd, 0).ok_or(Errno::EMFILE)? as u64)
}

pub fn sys_access(s: &mut Sys, path: u64) -> SysResult {
    let p = s.strncpy_from_user(path, 4096)?;
    if crate::kernel::procfs::handles(&p) {
        return crate::kernel::procfs::access(s, &p);
    }
    if let Some(sp) = special(&p) {
        return sp.map(|_| super::Ret::Val(0));
    }
    if let Some(st) = super::tmpfs::stat_path(s, &p) {
        return st.map(|_| super::Ret::Val(0));
    }
    resolve_allowed(s, &p)?;
    ok(0)
}

pub fn sys_readlink(s: &mut Sys, path: u64, buf: u64, size: u64) -> SysResult {
    if (size as i64) <= 0 {
        return Err(Errno::EINVAL);
    }
    let p = s.strncpy_from_user(path, 4096)?;
    if crate::kernel::procfs::handles(&p) {
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
