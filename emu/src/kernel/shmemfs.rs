//! tmpfs and memfd: the file side of shmem (Linux: mm/shmem.c's filesystem half,
//! mm/memfd.c, fs/libfs.c's directory operations).
//!
//! Two tmpfs instances are mounted, at /tmp and /dev/shm, as on a usual Linux system. They
//! live in guest memory only: file data is kept in each file's page cache
//! (`mm::shmem::Shmem`, the same object MAP_SHARED anonymous memory uses), never on the
//! host. A memfd is a shmem file with no directory entry.
//!
//! Directory entries get increasing offsets as they are created (a rename target gets a
//! new one), and getdents64 reports them newest first after "." and "..", as Linux 6.18's
//! tmpfs does (measured: create x, y, z lists z y x; renaming x to w then lists w z y).
//!
//! File data goes through the page cache page by page: a read of a hole returns zeros
//! without allocating (Linux: shmem_file_read_iter maps holes to ZERO_PAGE), a write
//! allocates the pages it touches (shmem_write_begin with SGP_WRITE).

use super::errno::{Errno, KResult};
use super::mm::shmem::{Shmem, F_SEAL_EXEC, F_SEAL_FUTURE_WRITE, F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_WRITE};
use super::mm::Pages;
use mmu::{PhysAddr, PhysMem};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Largest file size (Linux: MAX_LFS_FILESIZE on 64-bit).
pub const MAX_LFS_FILESIZE: u64 = i64::MAX as u64;

/// A tmpfs directory (Linux: a dentry with its simple_offset context).
pub struct Dir {
    pub ino: u64,
    /// Entries by name, each with its readdir offset.
    entries: BTreeMap<Vec<u8>, (Node, u64)>,
    /// The next readdir offset (offsets 0 and 1 are "." and "..").
    next_off: u64,
    /// The parent (None for a mount root, whose ".." is outside the tmpfs).
    parent: Option<std::rc::Weak<RefCell<Dir>>>,
}

/// What a directory entry names.
#[derive(Clone)]
pub enum Node {
    File(Shmem),
    Dir(Rc<RefCell<Dir>>),
}

impl Node {
    pub fn ino(&self) -> u64 {
        match self {
            Node::File(f) => f.id(),
            Node::Dir(d) => d.borrow().ino,
        }
    }
}

impl Dir {
    fn new(ino: u64, parent: Option<std::rc::Weak<RefCell<Dir>>>) -> Rc<RefCell<Dir>> {
        Rc::new(RefCell::new(Dir { ino, entries: BTreeMap::new(), next_off: 2, parent }))
    }

    pub fn lookup(&self, name: &[u8]) -> Option<Node> {
        self.entries.get(name).map(|(n, _)| n.clone())
    }

    pub fn insert(&mut self, name: Vec<u8>, node: Node) {
        let off = self.next_off;
        self.next_off += 1;
        self.entries.insert(name, (node, off));
    }

    pub fn remove(&mut self, name: &[u8]) -> Option<Node> {
        self.entries.remove(name).map(|(n, _)| n)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in readdir order, newest first: (name, inode, is a directory).
    pub fn list(&self) -> Vec<(Vec<u8>, u64, bool)> {
        let mut v: Vec<_> = self.entries.iter().map(|(name, (n, off))| (*off, name.clone(), n.ino(), matches!(n, Node::Dir(_)))).collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.0));
        v.into_iter().map(|(_, name, ino, d)| (name, ino, d)).collect()
    }

    /// The parent's inode number ("..").
    pub fn parent_ino(&self) -> u64 {
        self.parent.as_ref().and_then(|p| p.upgrade()).map(|p| p.borrow().ino).unwrap_or(self.ino)
    }

    pub fn parent(&self) -> Option<Rc<RefCell<Dir>>> {
        self.parent.as_ref().and_then(|p| p.upgrade())
    }
}

/// The tmpfs mounts.
pub struct Tmpfs {
    mounts: Vec<(&'static [u8], Rc<RefCell<Dir>>)>,
}

/// Where a path lands in a tmpfs: the directory holding the last component, and that
/// component (empty for the mount root itself).
pub struct Lookup {
    pub dir: Rc<RefCell<Dir>>,
    pub name: Vec<u8>,
    /// The path ended with '/' (the last component must be a directory).
    pub trailing_slash: bool,
}

impl Tmpfs {
    pub fn new(mut ino: impl FnMut() -> u64) -> Self {
        Self { mounts: vec![(b"/tmp", Dir::new(ino(), None)), (b"/dev/shm", Dir::new(ino(), None))] }
    }

    /// Splits an absolute, lexically normalised path into its tmpfs directory and last
    /// component, walking the intermediate directories: None when the path is not under a
    /// mount; ENOENT for a missing directory on the way, ENOTDIR for a file there.
    pub fn lookup(&self, path: &[u8]) -> Option<KResult<Lookup>> {
        let trailing_slash = path.len() > 1 && path.ends_with(b"/");
        let comps = normalize(path);
        let joined: Vec<u8> = comps.iter().flat_map(|c| [b"/".as_slice(), c.as_slice()].concat()).collect();
        let (mount, root) = self.mounts.iter().find(|(m, _)| joined == *m || joined.starts_with(&[*m, b"/".as_slice()].concat()))?;
        let mcomps = normalize(mount).len();
        let rest = &comps[mcomps..];
        let Some((last, dirs)) = rest.split_last() else {
            return Some(Ok(Lookup { dir: root.clone(), name: Vec::new(), trailing_slash }));
        };
        let mut dir = root.clone();
        for c in dirs {
            let next = match dir.borrow().lookup(c) {
                Some(Node::Dir(d)) => d,
                Some(Node::File(_)) => return Some(Err(Errno::ENOTDIR)),
                None => return Some(Err(Errno::ENOENT)),
            };
            dir = next;
        }
        Some(Ok(Lookup { dir, name: last.clone(), trailing_slash }))
    }

    /// A new directory under `parent`.
    pub fn new_dir(&self, ino: u64, parent: &Rc<RefCell<Dir>>) -> Rc<RefCell<Dir>> {
        Dir::new(ino, Some(Rc::downgrade(parent)))
    }
}

/// Path components after lexical normalisation ("." dropped, ".." pops).
fn normalize(path: &[u8]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c.to_vec()),
        }
    }
    out
}

/// An open shmem file: a memfd or a tmpfs file (Linux: a struct file on shmem_file_operations).
pub struct ShmemFile {
    pub inode: Shmem,
    pub pos: u64,
    /// What /proc/PID/fd shows: "/memfd:NAME (deleted)", or the tmpfs path.
    pub name: Vec<u8>,
}

/// An open tmpfs directory (for getdents64 and *at calls).
pub struct TmpfsDir {
    pub dir: Rc<RefCell<Dir>>,
    /// The readdir position: the next offset to report.
    pub pos: u64,
    pub name: Vec<u8>,
}

/// Reads up to `len` bytes at `pos` (Linux: shmem_file_read_iter): holes read as zeros,
/// nothing past the file size.
pub fn shmem_read(mem: &PhysMem, inode: &Shmem, pos: u64, len: usize) -> Vec<u8> {
    if inode.hugetlb_size().is_some() {
        return crate::kernel::mm::hugetlb::hugetlbfs_read(mem, inode, pos, len);
    }
    let size = inode.inode().size;
    if pos >= size {
        return Vec::new();
    }
    let end = pos.saturating_add(len as u64).min(size);
    let mut out = vec![0u8; (end - pos) as usize];
    let mut p = pos;
    while p < end {
        let in_page = (p & 0xfff) as usize;
        let n = ((4096 - in_page) as u64).min(end - p) as usize;
        if let Some(pa) = inode.find_page(p >> 12) {
            let o = (p - pos) as usize;
            mem.read(PhysAddr::new(pa.as_u64() + in_page as u64), &mut out[o..o + n]);
        }
        p += n as u64;
    }
    out
}

/// Writes `data` at `pos` (Linux: shmem_file_write_iter via generic_perform_write):
/// allocates the pages it touches and grows the file. Seals: F_SEAL_WRITE and
/// F_SEAL_FUTURE_WRITE refuse any write, F_SEAL_GROW one past the end (EPERM); EFBIG past
/// the largest size; ENOSPC when guest memory runs out before the first byte.
pub fn shmem_write(pages: &mut Pages, mem: &mut PhysMem, inode: &Shmem, pos: u64, data: &[u8]) -> KResult<usize> {
    let (size, seals) = {
        let i = inode.inode();
        (i.size, i.seals)
    };
    // hugetlbfs has no write_iter: EINVAL (vfs_write's check, before anything else).
    if inode.hugetlb_size().is_some() {
        return Err(Errno::EINVAL);
    }
    // A write of nothing succeeds before any check (generic_perform_write is not reached).
    if data.is_empty() {
        return Ok(0);
    }
    if seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0 {
        return Err(Errno::EPERM);
    }
    if pos >= MAX_LFS_FILESIZE {
        return Err(Errno::EFBIG);
    }
    let mut data = &data[..data.len().min((MAX_LFS_FILESIZE - pos) as usize)];
    if pos + data.len() as u64 > size && seals & F_SEAL_GROW != 0 {
        // shmem_write_begin: nothing past the end; a write crossing it is cut short there.
        if pos >= size {
            return Err(Errno::EPERM);
        }
        data = &data[..(size - pos) as usize];
    }
    let end = pos + data.len() as u64;
    let mut p = pos;
    while p < end {
        let in_page = p & 0xfff;
        let n = (4096 - in_page).min(end - p);
        let Some(pa) = inode.get_page(pages, mem, p >> 12) else {
            break;
        };
        let o = (p - pos) as usize;
        mem.write(PhysAddr::new(pa.as_u64() + in_page), &data[o..o + n as usize]);
        // Linux: shmem_write_end → folio_mark_dirty.
        pages.mark_dirty(pa);
        p += n;
    }
    if p == pos {
        return Err(Errno::ENOSPC);
    }
    let mut i = inode.inode_mut();
    i.size = i.size.max(p);
    Ok((p - pos) as usize)
}

/// The page-cache pages a size change or a hole punch drops, for the caller to zap from
/// every mapping and then put.
pub type Dropped = Vec<PhysAddr>;

/// Sets the file size (Linux: shmem_setattr → shmem_truncate_range): shrinking drops the
/// pages wholly past the new end and zeroes the tail of a partial last page. Seals:
/// F_SEAL_SHRINK / F_SEAL_GROW (EPERM).
pub fn shmem_truncate(mem: &mut PhysMem, inode: &Shmem, new: u64) -> KResult<Dropped> {
    if inode.hugetlb_size().is_some() {
        return crate::kernel::mm::hugetlb::hugetlbfs_truncate(inode, new);
    }
    let (size, seals) = {
        let i = inode.inode();
        (i.size, i.seals)
    };
    if (new < size && seals & F_SEAL_SHRINK != 0) || (new > size && seals & F_SEAL_GROW != 0) {
        return Err(Errno::EPERM);
    }
    inode.inode_mut().size = new;
    if new >= size {
        return Ok(Vec::new());
    }
    if new & 0xfff != 0 {
        if let Some(pa) = inode.find_page(new >> 12) {
            let off = new & 0xfff;
            mem.fill(PhysAddr::new(pa.as_u64() + off), 4096 - off, 0);
        }
    }
    Ok(inode.remove_pages(new.div_ceil(4096), u64::MAX))
}

/// FALLOC_FL_* (Linux: include/uapi/linux/falloc.h).
pub const FALLOC_FL_KEEP_SIZE: u32 = 0x01;
pub const FALLOC_FL_PUNCH_HOLE: u32 = 0x02;

/// fallocate on a shmem file (Linux: shmem_fallocate): mode 0 allocates the pages of
/// [off, off+len) and grows the file (unless KEEP_SIZE); PUNCH_HOLE|KEEP_SIZE zeroes the
/// partial pages at the edges and drops the whole ones. Other modes: EOPNOTSUPP.
pub fn shmem_fallocate(pages: &mut Pages, mem: &mut PhysMem, inode: &Shmem, mode: u32, off: u64, len: u64) -> KResult<Dropped> {
    let end = off.checked_add(len).filter(|&e| e <= MAX_LFS_FILESIZE).ok_or(Errno::EFBIG)?;
    let (size, seals) = {
        let i = inode.inode();
        (i.size, i.seals)
    };
    if mode & FALLOC_FL_PUNCH_HOLE != 0 {
        if mode & FALLOC_FL_KEEP_SIZE == 0 || mode & !(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        if seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) != 0 {
            return Err(Errno::EPERM);
        }
        // Partial pages at the edges are zeroed in place, whole pages dropped.
        let first_whole = off.div_ceil(4096);
        let last_whole = end / 4096;
        for (a, b) in [(off, end.min(first_whole * 4096)), ((last_whole * 4096).max(off), end)] {
            if a < b {
                if let Some(pa) = inode.find_page(a >> 12) {
                    mem.fill(PhysAddr::new(pa.as_u64() + (a & 0xfff)), b - a, 0);
                }
            }
        }
        return Ok(inode.remove_pages(first_whole, last_whole.max(first_whole)));
    }
    if mode & !FALLOC_FL_KEEP_SIZE != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    // F_SEAL_GROW refuses any range past the end, KEEP_SIZE or not (shmem_fallocate).
    if seals & F_SEAL_GROW != 0 && end > size {
        return Err(Errno::EPERM);
    }
    for pg in off / 4096..end.div_ceil(4096) {
        if inode.falloc_page(pages, mem, pg).is_none() {
            return Err(Errno::ENOSPC);
        }
    }
    if mode & FALLOC_FL_KEEP_SIZE == 0 && end > size {
        inode.inode_mut().size = end;
    }
    Ok(Vec::new())
}

/// F_ADD_SEALS (Linux: memfd_add_seals): EPERM once F_SEAL_SEAL is set; EINVAL for
/// unknown bits. `writable_mappings`: F_SEAL_WRITE needs none (EBUSY otherwise).
pub fn memfd_add_seals(inode: &Shmem, seals: u32, writable_mappings: bool) -> KResult<()> {
    const ALL: u32 = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC;
    if seals & !ALL != 0 {
        return Err(Errno::EINVAL);
    }
    let mut i = inode.inode_mut();
    if i.seals & F_SEAL_SEAL != 0 {
        return Err(Errno::EPERM);
    }
    if seals & F_SEAL_WRITE != 0 && i.seals & F_SEAL_WRITE == 0 && writable_mappings {
        return Err(Errno::EBUSY);
    }
    i.seals |= seals;
    Ok(())
}

/// MFD_* (Linux: include/uapi/linux/memfd.h).
pub const MFD_CLOEXEC: u32 = 0x1;
pub const MFD_ALLOW_SEALING: u32 = 0x2;
pub const MFD_HUGETLB: u32 = 0x4;
pub const MFD_NOEXEC_SEAL: u32 = 0x8;
pub const MFD_EXEC: u32 = 0x10;
/// The longest memfd name (Linux: MFD_NAME_MAX_LEN = NAME_MAX - strlen("memfd:")).
pub const MFD_NAME_MAX_LEN: usize = 255 - 6;

/// A new memfd inode (Linux: memfd_create after its flag checks): the initial seals
/// (F_SEAL_SEAL without MFD_ALLOW_SEALING; MFD_NOEXEC_SEAL adds F_SEAL_EXEC and clears the
/// exec bits) and mode 0777 (0666 with NOEXEC_SEAL).
pub fn memfd_inode(id: u64, pages: &Pages, name: &[u8], flags: u32) -> Shmem {
    let f = match crate::kernel::mm::hugetlb::HugeSize::from_flags(flags).filter(|_| flags & MFD_HUGETLB != 0) {
        // hugetlbfs_file_setup: a hugetlbfs file (the size bits were checked).
        Some(size) => Shmem::hugetlb(id, pages, 0, size, Vec::new()),
        None => Shmem::with_size(id, pages, 0),
    };
    {
        let mut i = f.inode_mut();
        i.name = [b"/memfd:".as_slice(), name, b" (deleted)"].concat();
        i.mode = 0o777;
        i.seals = if flags & (MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL) != 0 { 0 } else { F_SEAL_SEAL };
        if flags & MFD_NOEXEC_SEAL != 0 {
            i.mode = 0o666;
            i.seals |= F_SEAL_EXEC;
        }
    }
    f
}
