//! Open files and file-descriptor tables (Linux: struct file, struct files_struct).

use std::io::{Read, Write};

/// What a descriptor refers to.
pub enum FileKind {
    /// The guest's standard input (the host's, or a test's).
    Stdin,
    /// Standard output or error (1 or 2 on the host side).
    Output(u8),
    /// A host file opened read-only, held in memory (read at open).
    HostFile { path: std::path::PathBuf, data: std::sync::Arc<Vec<u8>>, pos: u64 },
}

pub struct File {
    pub kind: FileKind,
    /// O_* status flags (O_NONBLOCK, O_APPEND ...), as F_GETFL reports them.
    pub flags: u32,
}

impl File {
    pub fn new(kind: FileKind, flags: u32) -> Self {
        Self { kind, flags }
    }
}

/// A descriptor slot: the open file (shared between dup'ed descriptors) and FD_CLOEXEC.
#[derive(Clone)]
pub struct Fd {
    pub file: std::rc::Rc<std::cell::RefCell<File>>,
    pub cloexec: bool,
}

#[derive(Clone, Default)]
pub struct FdTable {
    pub fds: Vec<Option<Fd>>,
}

pub const RLIMIT_NOFILE: usize = 1024;

impl FdTable {
    pub fn get(&self, fd: i32) -> Option<&Fd> {
        usize::try_from(fd).ok().and_then(|i| self.fds.get(i)).and_then(|f| f.as_ref())
    }
    /// Installs at the lowest free descriptor >= `min`.
    pub fn install(&mut self, fd: Fd, min: usize) -> Option<i32> {
        let i = (min..RLIMIT_NOFILE).find(|&i| self.fds.get(i).is_none_or(|s| s.is_none()))?;
        if self.fds.len() <= i {
            self.fds.resize(i + 1, None);
        }
        self.fds[i] = Some(fd);
        Some(i as i32)
    }
    pub fn install_at(&mut self, fd: Fd, i: usize) {
        if self.fds.len() <= i {
            self.fds.resize(i + 1, None);
        }
        self.fds[i] = Some(fd);
    }
    pub fn close(&mut self, fd: i32) -> Option<Fd> {
        usize::try_from(fd).ok().and_then(|i| self.fds.get_mut(i)).and_then(|s| s.take())
    }
}

/// The host side of the guest's standard streams.
pub struct Streams {
    pub stdin: Box<dyn Read + Send>,
    pub stdout: Box<dyn Write + Send>,
    pub stderr: Box<dyn Write + Send>,
    /// Whether each of 0, 1, 2 should look like a terminal to the guest.
    pub tty: [bool; 3],
}
