//! The tmpfs and memfd syscalls: memfd_create, open/openat under /tmp and /dev/shm,
//! mkdir(at), rmdir, unlink(at), rename(at)(2), getdents64, ftruncate, truncate,
//! fallocate, F_ADD_SEALS/F_GET_SEALS, and stat of tmpfs paths (Linux: mm/memfd.c,
//! fs/namei.c, fs/readdir.c, fs/open.c, mm/shmem.c). The objects are `kernel::shmemfs`'s.

use super::fs::{file, stat_bytes, O_ACCMODE, O_APPEND, O_CLOEXEC, O_CREAT, O_EXCL, O_NONBLOCK, O_TRUNC};
use super::{ok, Args, Sys, SysResult};
use crate::kernel::errno::{Errno, KResult};
use crate::kernel::file::{Fd, File, FileKind};
use crate::kernel::mm::mmap::ZapDetails;
use crate::kernel::mm::shmem::Shmem;
use crate::kernel::shmemfs::{self, Lookup, Node, ShmemFile, TmpfsDir, MFD_ALLOW_SEALING, MFD_CLOEXEC, MFD_EXEC, MFD_HUGETLB, MFD_NAME_MAX_LEN, MFD_NOEXEC_SEAL};
use std::cell::RefCell;
use std::rc::Rc;

pub const F_ADD_SEALS: u32 = 1033;
pub const F_GET_SEALS: u32 = 1034;
const O_DIRECTORY: u32 = 0o200000;
const AT_REMOVEDIR: u32 = 0x200;
const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
const RENAME_WHITEOUT: u32 = 4;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
/// What a tmpfs file's fd keeps of the open flags.
const KEEP_FLAGS: u32 = O_ACCMODE | O_NONBLOCK | O_APPEND | 0o40000 | 0o1000000;

/// The absolute path of `p` relative to `dirfd` (Linux: path_init): absolute paths as they
/// are; relative ones against the working directory "/" for AT_FDCWD, or against an open
/// tmpfs directory. Any other descriptor: EBADF when closed, ENOTDIR otherwise.
pub fn at_path(s: &Sys, dirfd: i32, p: &[u8]) -> KResult<Vec<u8>> {
    if p.starts_with(b"/") || p.is_empty() {
        return Ok(p.to_vec());
    }
    if dirfd == super::fs::AT_FDCWD {
        return Ok([b"/".as_slice(), p].concat());
    }
    let f = file(s, dirfd)?;
    let f = f.borrow();
    match &f.kind {
        FileKind::TmpfsDir(d) => Ok([d.name.as_slice(), b"/", p].concat()),
        FileKind::ProcDir(d) => Ok([d.path.trim_end_matches('/').as_bytes(), b"/", p].concat()),
        _ => Err(Errno::ENOTDIR),
    }
}

fn install(s: &mut Sys, kind: FileKind, flags: u32, cloexec: bool) -> SysResult {
    let fd = Fd { file: Rc::new(RefCell::new(File::new(kind, flags))), cloexec };
    ok(s.files().borrow_mut().install(fd, 0).ok_or(Errno::EMFILE)? as u64)
}

/// memfd_create(2) (Linux: mm/memfd.c): EINVAL for unknown flags, MFD_EXEC with
/// MFD_NOEXEC_SEAL, or a name longer than 249 bytes; EFAULT for a bad name pointer.
pub fn sys_memfd_create(s: &mut Sys, a: Args) -> SysResult {
    let flags = a.u32(1);
    if flags & !(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC | (0x3f << 26)) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MFD_HUGETLB == 0 && flags & (0x3f << 26) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MFD_EXEC != 0 && flags & MFD_NOEXEC_SEAL != 0 {
        return Err(Errno::EINVAL);
    }
    // strnlen_user of at most MFD_NAME_MAX_LEN + 1: a longer name is EINVAL.
    let name = match s.strncpy_from_user(a.u(0), MFD_NAME_MAX_LEN + 1) {
        Err(Errno::ENAMETOOLONG) => return Err(Errno::EINVAL),
        r => r?,
    };
    if name.len() > MFD_NAME_MAX_LEN {
        return Err(Errno::EINVAL);
    }
    if flags & MFD_HUGETLB != 0 && crate::kernel::mm::hugetlb::HugeSize::from_flags(flags).is_none() {
        // A huge page size x86-64 has not (Linux: hugetlb_file_setup's hstate_sizelog).
        return Err(Errno::ENODEV);
    }
    let id = s.k.new_obj_id();
    let inode = shmemfs::memfd_inode(id, &s.hw.pages, &name, flags);
    let link = [b"/memfd:".as_slice(), &name, b" (deleted)"].concat();
    install(s, FileKind::Shmem(ShmemFile { inode, pos: 0, name: link }), 2, flags & MFD_CLOEXEC != 0)
}

/// The lookup of a tmpfs path, or None when the path is not under a tmpfs mount. The host
/// paths the guest may read (the program, `--allow-path`) come first: an allowed host
/// directory under /tmp stays visible rather than hidden by the guest's tmpfs.
fn lookup(s: &Sys, p: &[u8]) -> Option<KResult<Lookup>> {
    if super::fs::resolve_allowed(s, p).is_ok() {
        return None;
    }
    s.k.tmpfs.lookup(p)
}

/// open/openat of a tmpfs path (Linux: path_openat → shmem's inode operations), or None
/// for a path elsewhere.
pub fn open(s: &mut Sys, p: &[u8], flags: u32) -> Option<SysResult> {
    let l = match lookup(s, p)? {
        Ok(l) => l,
        Err(e) => return Some(Err(e)),
    };
    Some(open_in(s, p, l, flags))
}

fn open_in(s: &mut Sys, p: &[u8], l: Lookup, flags: u32) -> SysResult {
    let node = if l.name.is_empty() { Some(Node::Dir(l.dir.clone())) } else { l.dir.borrow().lookup(&l.name) };
    let cloexec = flags & O_CLOEXEC != 0;
    let acc = flags & O_ACCMODE;
    let node = match node {
        Some(_) if flags & O_CREAT != 0 && flags & O_EXCL != 0 => return Err(Errno::EEXIST),
        Some(n) => n,
        None if flags & O_CREAT == 0 => return Err(Errno::ENOENT),
        // O_CREAT of "dir/" names a directory: EISDIR.
        None if l.trailing_slash => return Err(Errno::EISDIR),
        None => {
            let id = s.k.new_obj_id();
            let f = Shmem::with_size(id, &s.hw.pages, 0);
            {
                let mut i = f.inode_mut();
                i.mode = a_mode(s.args.u32(if s.nr == 2 { 2 } else { 3 }));
                i.nlink = 1;
                i.name = canonical(p);
            }
            l.dir.borrow_mut().insert(l.name.clone(), Node::File(f.clone()));
            Node::File(f)
        }
    };
    match node {
        Node::Dir(d) => {
            if acc != 0 || flags & O_CREAT != 0 {
                return Err(Errno::EISDIR);
            }
            install(s, FileKind::TmpfsDir(TmpfsDir { dir: d, pos: 0, name: canonical(p) }), flags & KEEP_FLAGS, cloexec)
        }
        Node::File(f) => {
            if flags & O_DIRECTORY != 0 || l.trailing_slash {
                return Err(Errno::ENOTDIR);
            }
            if flags & O_TRUNC != 0 && acc != 0 {
                let dropped = shmemfs::shmem_truncate(&mut s.hw.mem, &f, 0)?;
                put_dropped(s, &f, dropped, 0);
            }
            install(s, FileKind::Shmem(ShmemFile { inode: f, pos: 0, name: canonical(p) }), flags & KEEP_FLAGS, cloexec)
        }
    }
}

/// The mode bits of a new file: the argument less the umask (022, as a login shell has).
fn a_mode(mode: u32) -> u32 {
    mode & 0o7777 & !0o022
}

/// "/tmp/./a//b" → "/tmp/a/b", for /proc/PID/fd links.
fn canonical(p: &[u8]) -> Vec<u8> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.iter().flat_map(|c| [b"/".as_slice(), c].concat()).collect()
}

/// Zaps the pages a truncate took out of the page cache from every mapping of `inode`,
/// then puts the cache's references (Linux: unmap_mapping_range with even_cows, then
/// truncate_inode_pages_range). `from_pgoff`: the first page offset past the new end.
fn put_dropped(s: &mut Sys, inode: &Shmem, dropped: shmemfs::Dropped, from_pgoff: u64) {
    put_punched(s, inode, dropped, from_pgoff, u64::MAX, ZapDetails::KEEP_MARKERS);
}

/// The same for pages offsets [first, last), with `details` (`ZapDetails::PUNCH` for a
/// hole punch, which leaves private COW copies and markers in place).
fn put_punched(s: &mut Sys, inode: &Shmem, dropped: shmemfs::Dropped, first: u64, last: u64, details: ZapDetails) {
    crate::kernel::mm::mmap::unmap_mapping_range(&mut s.k.mms, s.hw, inode, first, last, details);
    for pa in dropped {
        s.hw.pages.put(pa);
    }
}

pub fn shmem_stat(inode: &Shmem) -> [u8; 144] {
    let page = inode.hugetlb_size().map_or(4096, |h| h.bytes());
    let i = inode.inode();
    // st_blksize: the page size (a hugetlbfs file's is its huge page size); st_blocks in
    // 512-byte units.
    let mut st = stat_bytes(S_IFREG | i.mode, i.size, page, 0, i.id);
    st[16..24].copy_from_slice(&(i.nlink as u64).to_le_bytes());
    st[64..72].copy_from_slice(&(i.mapping.nr_pages() as u64 * (page / 512)).to_le_bytes());
    st
}

pub fn dir_stat(d: &Rc<RefCell<shmemfs::Dir>>) -> [u8; 144] {
    let d = d.borrow();
    // A directory's nlink is 2 plus its subdirectories.
    let subdirs = d.list().iter().filter(|e| e.2).count() as u64;
    let mut st = stat_bytes(S_IFDIR | 0o1777, 40 + 20 * d.list().len() as u64, 4096, 0, d.ino);
    st[16..24].copy_from_slice(&(2 + subdirs).to_le_bytes());
    st[64..72].copy_from_slice(&0u64.to_le_bytes());
    st
}

/// stat of a tmpfs path, or None for a path elsewhere.
pub fn stat_path(s: &Sys, p: &[u8]) -> Option<KResult<[u8; 144]>> {
    let l = match lookup(s, p)? {
        Ok(l) => l,
        Err(e) => return Some(Err(e)),
    };
    let node = if l.name.is_empty() { Some(Node::Dir(l.dir.clone())) } else { l.dir.borrow().lookup(&l.name) };
    Some(match node {
        None => Err(Errno::ENOENT),
        Some(Node::File(_)) if l.trailing_slash => Err(Errno::ENOTDIR),
        Some(Node::File(f)) => Ok(shmem_stat(&f)),
        Some(Node::Dir(d)) => Ok(dir_stat(&d)),
    })
}

/// The tmpfs lookup of a user path relative to `dirfd`; ENOENT for a path outside every
/// tmpfs (pagelab hides the host's namespace).
fn lookup_at(s: &mut Sys, dirfd: i32, path: u64) -> KResult<(Vec<u8>, Lookup)> {
    let p = s.strncpy_from_user(path, 4096)?;
    if p.is_empty() {
        return Err(Errno::ENOENT);
    }
    let p = at_path(s, dirfd, &p)?;
    match lookup(s, &p) {
        Some(l) => Ok((p, l?)),
        None => Err(Errno::ENOENT),
    }
}

/// mkdir / mkdirat (Linux: do_mkdirat).
pub fn sys_mkdirat(s: &mut Sys, dirfd: i32, path: u64) -> SysResult {
    let (_, l) = lookup_at(s, dirfd, path)?;
    if l.name.is_empty() || l.dir.borrow().lookup(&l.name).is_some() {
        return Err(Errno::EEXIST);
    }
    let ino = s.k.new_obj_id();
    let d = s.k.tmpfs.new_dir(ino, &l.dir);
    l.dir.borrow_mut().insert(l.name, Node::Dir(d));
    ok(0)
}

/// unlink / unlinkat / rmdir (Linux: do_unlinkat, do_rmdir).
pub fn sys_unlinkat(s: &mut Sys, dirfd: i32, path: u64, flags: u32) -> SysResult {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let (_, l) = lookup_at(s, dirfd, path)?;
    if l.name.is_empty() {
        // The mount root: busy (rmdir) or a directory (unlink).
        return Err(if flags & AT_REMOVEDIR != 0 { Errno::EBUSY } else { Errno::EISDIR });
    }
    if l.name == b"." {
        return Err(Errno::EINVAL);
    }
    let node = l.dir.borrow().lookup(&l.name).ok_or(Errno::ENOENT)?;
    match (&node, flags & AT_REMOVEDIR != 0) {
        (Node::Dir(_), false) => return Err(Errno::EISDIR),
        (Node::File(_), true) => return Err(Errno::ENOTDIR),
        (Node::File(_), false) if l.trailing_slash => return Err(Errno::ENOTDIR),
        (Node::Dir(d), true) if !d.borrow().is_empty() => return Err(Errno::ENOTEMPTY),
        _ => {}
    }
    l.dir.borrow_mut().remove(&l.name);
    if let Node::File(f) = node {
        let mut i = f.inode_mut();
        i.nlink = i.nlink.saturating_sub(1);
    }
    ok(0)
}

/// rename / renameat / renameat2 (Linux: do_renameat2): NOREPLACE (EEXIST), EXCHANGE
/// (ENOENT without a target); a directory over a file is ENOTDIR, a file over a
/// directory EISDIR, a directory over a non-empty one ENOTEMPTY, a directory into itself
/// EINVAL.
pub fn sys_renameat2(s: &mut Sys, olddir: i32, old: u64, newdir: i32, new: u64, flags: u32) -> SysResult {
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0 || (flags & RENAME_NOREPLACE != 0 && flags & RENAME_EXCHANGE != 0) {
        return Err(Errno::EINVAL);
    }
    if flags & RENAME_WHITEOUT != 0 {
        return Err(Errno::EINVAL);
    }
    let (op, ol) = lookup_at(s, olddir, old)?;
    let (np, nl) = lookup_at(s, newdir, new)?;
    if ol.name.is_empty() || nl.name.is_empty() {
        return Err(Errno::EBUSY);
    }
    let src = ol.dir.borrow().lookup(&ol.name).ok_or(Errno::ENOENT)?;
    let dst = nl.dir.borrow().lookup(&nl.name);
    if Rc::ptr_eq(&ol.dir, &nl.dir) && ol.name == nl.name {
        return ok(0);
    }
    if let Node::Dir(_) = src {
        // Into its own subtree.
        let (op, np) = (canonical(&op), canonical(&np));
        if np.starts_with(&op) && np.get(op.len()) == Some(&b'/') {
            return Err(Errno::EINVAL);
        }
    }
    if flags & RENAME_EXCHANGE != 0 {
        let dst = dst.ok_or(Errno::ENOENT)?;
        ol.dir.borrow_mut().remove(&ol.name);
        nl.dir.borrow_mut().remove(&nl.name);
        ol.dir.borrow_mut().insert(ol.name, dst);
        nl.dir.borrow_mut().insert(nl.name, src);
        return ok(0);
    }
    if let Some(d) = &dst {
        if flags & RENAME_NOREPLACE != 0 {
            return Err(Errno::EEXIST);
        }
        match (&src, d) {
            (Node::Dir(_), Node::File(_)) => return Err(Errno::ENOTDIR),
            (Node::File(_), Node::Dir(_)) => return Err(Errno::EISDIR),
            (Node::Dir(_), Node::Dir(t)) if !t.borrow().is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
    }
    ol.dir.borrow_mut().remove(&ol.name);
    if let Some(Node::File(f)) = nl.dir.borrow_mut().remove(&nl.name) {
        let mut i = f.inode_mut();
        i.nlink = i.nlink.saturating_sub(1);
    }
    nl.dir.borrow_mut().insert(nl.name, src);
    ok(0)
}

/// getdents64 (Linux: fs/readdir.c with offset_readdir): "." and ".." first, then the
/// entries newest first; EINVAL when the buffer holds no entry, ENOTDIR on a file. The
/// position is the index of the next entry in that order. A /proc or /sys directory
/// lists the entries it had when opened (`procfs::ProcDir`), in the same way.
pub fn sys_getdents64(s: &mut Sys, a: Args) -> SysResult {
    let (fd, buf, count) = (a.i32(0), a.u(1), a.u(2) as usize);
    let f = file(s, fd)?;
    let (entries, pos) = {
        let fb = f.borrow();
        match &fb.kind {
            FileKind::TmpfsDir(td) => {
                let d = td.dir.borrow();
                let mut entries: Vec<(u64, Vec<u8>, u64, u8)> = vec![(0, b".".to_vec(), d.ino, 4), (1, b"..".to_vec(), d.parent_ino(), 4)];
                entries.extend(d.list().into_iter().enumerate().map(|(i, (name, ino, is_dir))| (2 + i as u64, name, ino, if is_dir { 4 } else { 8 })));
                (entries, td.pos)
            }
            FileKind::ProcDir(pd) => (pd.entries.iter().enumerate().map(|(i, (name, ino, ty))| (i as u64, name.clone(), *ino, *ty)).collect(), pd.pos),
            _ => return Err(Errno::ENOTDIR),
        }
    };
    let mut out = Vec::new();
    let mut next_pos = pos;
    for (i, (off, name, ino, ty)) in entries.iter().enumerate() {
        if *off < pos {
            continue;
        }
        let reclen = (19 + name.len() + 1).next_multiple_of(8);
        if out.len() + reclen > count {
            break;
        }
        // d_off: the position after this entry.
        let d_off = entries.get(i + 1).map(|e| e.0).unwrap_or(off + 1);
        let mut rec = vec![0u8; reclen];
        rec[0..8].copy_from_slice(&ino.to_le_bytes());
        rec[8..16].copy_from_slice(&d_off.to_le_bytes());
        rec[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
        rec[18] = *ty;
        rec[19..19 + name.len()].copy_from_slice(name);
        out.extend_from_slice(&rec);
        next_pos = d_off;
    }
    if out.is_empty() && entries.iter().any(|e| e.0 >= pos) {
        return Err(Errno::EINVAL);
    }
    s.copy_to_user(buf, &out)?;
    match &mut f.borrow_mut().kind {
        FileKind::TmpfsDir(d) => d.pos = next_pos,
        FileKind::ProcDir(d) => d.pos = next_pos,
        _ => {}
    }
    ok(out.len() as u64)
}

fn shmem_of(f: &Rc<RefCell<File>>) -> Option<Shmem> {
    match &f.borrow().kind {
        FileKind::Shmem(sf) => Some(sf.inode.clone()),
        _ => None,
    }
}

/// ftruncate (Linux: do_ftruncate): EINVAL for a negative length, a non-regular file or
/// one not open for writing; the seals' EPERM.
pub fn sys_ftruncate(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    let len = a.u(1) as i64;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let writable = f.borrow().writable();
    let inode = shmem_of(&f).filter(|_| writable).ok_or(Errno::EINVAL)?;
    truncate_to(s, &inode, len as u64)
}

/// Splits each 2 MiB shmem folio of `inode` that the page range [first, last) covers in
/// part (Linux: truncate_inode_partial_folio → split_folio): its mappings go first, in
/// every address space (the PMD and the PTEs: the pages refault as 4 KiB pages), then it
/// becomes 512 pages, so that the range's pages can leave the page cache alone.
fn split_partial_thps(s: &mut Sys, inode: &Shmem, first: u64, last: u64) {
    if first >= last {
        return;
    }
    for base in [first & !511, (last - 1) & !511] {
        if base >= first && base.saturating_add(512) <= last {
            continue;
        }
        let Some(p) = inode.find_page(base) else { continue };
        if s.hw.pages.folio(p) != p || !s.hw.pages.is_huge(p) {
            continue;
        }
        crate::kernel::mm::mmap::unmap_mapping_range(&mut s.k.mms, s.hw, inode, base, base.saturating_add(512), ZapDetails::PUNCH);
        s.hw.pages.drain_deferred();
        if s.hw.pages.is_huge(p) {
            s.hw.pages.split_shmem_thp(p, |i| inode.find_page(base.saturating_add(i)).is_some());
        }
    }
}

fn truncate_to(s: &mut Sys, inode: &Shmem, len: u64) -> SysResult {
    if inode.hugetlb_size().is_none() {
        split_partial_thps(s, inode, len.div_ceil(4096), u64::MAX);
    }
    let dropped = shmemfs::shmem_truncate(&mut s.hw.mem, inode, len)?;
    put_dropped(s, inode, dropped, len >> 12);
    ok(0)
}

/// truncate(2) of a tmpfs path.
pub fn sys_truncate(s: &mut Sys, a: Args) -> SysResult {
    let len = a.u(1) as i64;
    let (_, l) = lookup_at(s, super::fs::AT_FDCWD, a.u(0))?;
    let node = if l.name.is_empty() { Some(Node::Dir(l.dir.clone())) } else { l.dir.borrow().lookup(&l.name) };
    match node.ok_or(Errno::ENOENT)? {
        Node::Dir(_) => Err(Errno::EISDIR),
        Node::File(_) if len < 0 => Err(Errno::EINVAL),
        Node::File(f) => truncate_to(s, &f, len as u64),
    }
}

/// fallocate (Linux: vfs_fallocate → shmem_fallocate): EINVAL for a negative offset or a
/// length ≤ 0, EBADF without write access, ENODEV on non-files, ESPIPE on pipes.
pub fn sys_fallocate(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    let (mode, off, len) = (a.u32(1), a.u(2) as i64, a.u(3) as i64);
    if off < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    if !f.borrow().writable() {
        return Err(Errno::EBADF);
    }
    let inode = match &f.borrow().kind {
        FileKind::Shmem(sf) => sf.inode.clone(),
        FileKind::Pipe(_) => return Err(Errno::ESPIPE),
        FileKind::TmpfsDir(_) => return Err(Errno::EISDIR),
        _ => return Err(Errno::ENODEV),
    };
    if inode.hugetlb_size().is_some() {
        let (dropped, hs, he) = crate::kernel::mm::hugetlb::hugetlbfs_fallocate(&mut s.hw.pages, &mut s.hw.mem, &inode, mode, off as u64, len as u64)?;
        if hs < he {
            put_punched(s, &inode, dropped, hs >> 12, he >> 12, ZapDetails::PUNCH);
        }
        return ok(0);
    }
    if mode & shmemfs::FALLOC_FL_PUNCH_HOLE != 0 && mode & shmemfs::FALLOC_FL_KEEP_SIZE != 0 {
        split_partial_thps(s, &inode, (off as u64).div_ceil(4096), (off as u64 + len as u64) >> 12);
    }
    let dropped = shmemfs::shmem_fallocate(&mut s.hw.pages, &mut s.hw.mem, &inode, mode, off as u64, len as u64)?;
    if mode & shmemfs::FALLOC_FL_PUNCH_HOLE != 0 {
        // The whole pages of the hole (partial ones were zeroed in place).
        let (first, last) = ((off as u64).div_ceil(4096), (off as u64 + len as u64) >> 12);
        put_punched(s, &inode, dropped, first, last, ZapDetails::PUNCH);
    }
    ok(0)
}

pub const MADV_REMOVE: u32 = 9;

/// MADV_REMOVE (Linux: madvise_remove): punches the range's pages out of the file behind
/// each VMA (fallocate PUNCH_HOLE|KEEP_SIZE), after the REMOVE events of registered VMAs.
/// EINVAL for an unaligned start or a VMA without a file; EACCES for one that is not a
/// shared, may-write mapping; ENOMEM where nothing is mapped.
pub fn madvise_remove(s: &mut Sys, start: u64, len: u64) -> SysResult {
    use crate::kernel::mm::vma::{Backing, VmFlags};
    if start & 0xfff != 0 {
        return Err(Errno::EINVAL);
    }
    let len = crate::kernel::mm::mmap::page_align(len).ok_or(Errno::EINVAL)?;
    let end = start.checked_add(len).ok_or(Errno::EINVAL)?;
    if len == 0 {
        return ok(0);
    }
    // madvise_remove, VMA by VMA: never locked, a shared writable file mapping (else
    // EACCES), the REMOVE event first, then the punch of the file range.
    let check = |v: &crate::kernel::mm::Vma, _from: u64| {
        if v.flags.contains(VmFlags::LOCKED) || !matches!(v.backing, Backing::Shmem { .. }) {
            return Err(Errno::EINVAL);
        }
        if !v.flags.contains(VmFlags::SHARED | VmFlags::MAYWRITE) {
            return Err(Errno::EACCES);
        }
        Ok(())
    };
    super::mm::madvise_walk_remove(s, start, end, &check, &mut |s, v, from, to| {
        let Backing::Shmem { obj, .. } = &v.backing else { unreachable!("checked") };
        let (a, b) = (v.object_offset(from), v.object_offset(to));
        if obj.hugetlb_size().is_some() {
            let (dropped, hs, he) = crate::kernel::mm::hugetlb::hugetlbfs_fallocate(&mut s.hw.pages, &mut s.hw.mem, obj, shmemfs::FALLOC_FL_PUNCH_HOLE | shmemfs::FALLOC_FL_KEEP_SIZE, a, b - a)?;
            if hs < he {
                put_punched(s, obj, dropped, hs >> 12, he >> 12, ZapDetails::PUNCH);
            }
            return Ok(());
        }
        split_partial_thps(s, obj, a.div_ceil(4096), b >> 12);
        let dropped = shmemfs::shmem_fallocate(&mut s.hw.pages, &mut s.hw.mem, obj, shmemfs::FALLOC_FL_PUNCH_HOLE | shmemfs::FALLOC_FL_KEEP_SIZE, a, b - a)?;
        put_punched(s, obj, dropped, a >> 12, b >> 12, ZapDetails::PUNCH);
        Ok(())
    })
}

/// statfs / fstatfs of a tmpfs (Linux: shmem_statfs): TMPFS_MAGIC, 4 KiB blocks; the
/// block counts are the guest memory's. None for a path elsewhere.
pub fn statfs_path(s: &Sys, p: &[u8]) -> Option<KResult<[u8; 120]>> {
    let l = match lookup(s, p)? {
        Ok(l) => l,
        Err(e) => return Some(Err(e)),
    };
    if !l.name.is_empty() && l.dir.borrow().lookup(&l.name).is_none() {
        return Some(Err(Errno::ENOENT));
    }
    Some(Ok(tmpfs_statfs(s)))
}

pub fn tmpfs_statfs(s: &Sys) -> [u8; 120] {
    let mut b = [0u8; 120];
    let put = |b: &mut [u8; 120], off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    let blocks = s.hw.mem.size() >> 12;
    let used = s.hw.pages.allocated;
    put(&mut b, 0, 0x0102_1994); // f_type = TMPFS_MAGIC
    put(&mut b, 8, 4096); // f_bsize
    put(&mut b, 16, blocks);
    put(&mut b, 24, blocks.saturating_sub(used));
    put(&mut b, 32, blocks.saturating_sub(used));
    put(&mut b, 40, blocks / 2); // f_files
    put(&mut b, 48, blocks / 2 - 1); // f_ffree
    put(&mut b, 64, 255); // f_namelen
    put(&mut b, 72, 4096); // f_frsize
    put(&mut b, 80, 0x20); // f_flags: ST_RELATIME
    b
}

/// statfs(2).
pub fn sys_statfs(s: &mut Sys, a: Args) -> SysResult {
    let p = s.strncpy_from_user(a.u(0), 4096)?;
    let p = at_path(s, super::fs::AT_FDCWD, &p)?;
    let st = statfs_path(s, &p).ok_or(Errno::ENOSYS)??;
    s.copy_to_user(a.u(1), &st)?;
    ok(0)
}

/// fstatfs(2) of a tmpfs or memfd descriptor.
pub fn sys_fstatfs(s: &mut Sys, a: Args) -> SysResult {
    let f = file(s, a.i32(0))?;
    if !matches!(f.borrow().kind, FileKind::Shmem(_) | FileKind::TmpfsDir(_)) {
        return Err(Errno::ENOSYS);
    }
    let st = tmpfs_statfs(s);
    s.copy_to_user(a.u(1), &st)?;
    ok(0)
}

/// F_ADD_SEALS / F_GET_SEALS (Linux: memfd_fcntl): EINVAL on a file that is not shmem,
/// EPERM adding seals without write access.
pub fn memfd_fcntl(s: &mut Sys, f: &Rc<RefCell<File>>, cmd: u32, arg: u32) -> SysResult {
    // memfd_add_seals checks write access before it looks at the file's kind.
    if cmd == F_ADD_SEALS && !f.borrow().writable() {
        return Err(Errno::EPERM);
    }
    let inode = shmem_of(f).ok_or(Errno::EINVAL)?;
    if cmd == F_GET_SEALS {
        return ok(inode.inode().seals as u64);
    }
    let writable_maps = crate::kernel::mm::mmap::mapping_writably_mapped(&s.k.mms, &inode);
    shmemfs::memfd_add_seals(&inode, arg, writable_maps)?;
    ok(0)
}
