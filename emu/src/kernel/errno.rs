//! Linux errno values (include/uapi/asm-generic/errno-base.h, errno.h). The guest sees
//! exactly these; a syscall returns `-errno` in RAX.

/// An errno the guest kernel returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Errno(pub i32);

macro_rules! errnos {
    ($($name:ident = $v:expr),* $(,)?) => {
        impl Errno { $(pub const $name: Errno = Errno($v);)* }
        /// The symbolic name of an errno, for traces and reports.
        pub fn name(e: Errno) -> &'static str {
            match e.0 { $($v => stringify!($name),)* _ => "E?" }
        }
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, ENOEXEC = 8,
    EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16,
    EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENFILE = 23,
    EMFILE = 24, ENOTTY = 25, EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30, EPIPE = 32,
    EDOM = 33, ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36, ENOLCK = 37, ENOSYS = 38, ENOTEMPTY = 39,
    ELOOP = 40, ENODATA = 61, ETIME = 62, EOVERFLOW = 75, ENOTSOCK = 88, EOPNOTSUPP = 95,
    ETIMEDOUT = 110, ECANCELED = 125, EHWPOISON = 133, ERESTARTSYS = 512, ERESTARTNOINTR = 513,
    ERESTARTNOHAND = 514, ERESTART_RESTARTBLOCK = 516,
}

pub type KResult<T> = Result<T, Errno>;
