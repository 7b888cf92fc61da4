//! The userfaultfd UAPI (Linux: include/uapi/linux/userfaultfd.h): ioctl numbers, feature
//! bits, modes, events and the message.

pub const UFFD_API: u64 = 0xAA;
pub const UFFD_USER_MODE_ONLY: u32 = 1;

pub const UFFDIO_API: u32 = 0xC018_AA3F;
pub const UFFDIO_REGISTER: u32 = 0xC020_AA00;
pub const UFFDIO_UNREGISTER: u32 = 0x8010_AA01;
pub const UFFDIO_WAKE: u32 = 0x8010_AA02;
pub const UFFDIO_COPY: u32 = 0xC028_AA03;
pub const UFFDIO_ZEROPAGE: u32 = 0xC020_AA04;
pub const UFFDIO_MOVE: u32 = 0xC028_AA05;
pub const UFFDIO_WRITEPROTECT: u32 = 0xC018_AA06;
pub const UFFDIO_CONTINUE: u32 = 0xC020_AA07;
pub const UFFDIO_POISON: u32 = 0xC020_AA08;
/// On /dev/userfaultfd: `_IO(0xAA, 0x00)`.
pub const USERFAULTFD_IOC_NEW: u32 = 0xAA00;

pub const UFFD_FEATURE_PAGEFAULT_FLAG_WP: u64 = 1 << 0;
pub const UFFD_FEATURE_EVENT_FORK: u64 = 1 << 1;
pub const UFFD_FEATURE_EVENT_REMAP: u64 = 1 << 2;
pub const UFFD_FEATURE_EVENT_REMOVE: u64 = 1 << 3;
pub const UFFD_FEATURE_MISSING_HUGETLBFS: u64 = 1 << 4;
pub const UFFD_FEATURE_MISSING_SHMEM: u64 = 1 << 5;
pub const UFFD_FEATURE_EVENT_UNMAP: u64 = 1 << 6;
pub const UFFD_FEATURE_SIGBUS: u64 = 1 << 7;
pub const UFFD_FEATURE_THREAD_ID: u64 = 1 << 8;
pub const UFFD_FEATURE_MINOR_SHMEM: u64 = 1 << 10;
pub const UFFD_FEATURE_EXACT_ADDRESS: u64 = 1 << 11;
pub const UFFD_FEATURE_WP_HUGETLBFS_SHMEM: u64 = 1 << 12;
pub const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
pub const UFFD_FEATURE_POISON: u64 = 1 << 14;
pub const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
pub const UFFD_FEATURE_MOVE: u64 = 1 << 16;

/// The features pagelab implements, which UFFDIO_API reports (Linux reports 0x1FFFF on
/// 6.18; MISSING_HUGETLBFS, MINOR_HUGETLBFS and WP_ASYNC are not here yet, and asking for
/// one is EINVAL as for any unsupported feature). WP_HUGETLBFS_SHMEM stands for the shmem
/// half only until hugetlbfs exists.
pub const UFFD_API_FEATURES: u64 = UFFD_FEATURE_PAGEFAULT_FLAG_WP
    | UFFD_FEATURE_MISSING_SHMEM
    | UFFD_FEATURE_MINOR_SHMEM
    | UFFD_FEATURE_WP_HUGETLBFS_SHMEM
    | UFFD_FEATURE_WP_UNPOPULATED
    | UFFD_FEATURE_EVENT_FORK
    | UFFD_FEATURE_EVENT_REMAP
    | UFFD_FEATURE_EVENT_REMOVE
    | UFFD_FEATURE_EVENT_UNMAP
    | UFFD_FEATURE_SIGBUS | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EXACT_ADDRESS | UFFD_FEATURE_POISON | UFFD_FEATURE_MOVE;

pub const _UFFDIO_REGISTER: u64 = 0;
pub const _UFFDIO_UNREGISTER: u64 = 1;
pub const _UFFDIO_WAKE: u64 = 2;
pub const _UFFDIO_COPY: u64 = 3;
pub const _UFFDIO_ZEROPAGE: u64 = 4;
pub const _UFFDIO_MOVE: u64 = 5;
pub const _UFFDIO_WRITEPROTECT: u64 = 6;
pub const _UFFDIO_CONTINUE: u64 = 7;
pub const _UFFDIO_POISON: u64 = 8;
pub const _UFFDIO_API: u64 = 63;
/// What UFFDIO_API returns in `ioctls`: 0x8000000000000003.
pub const UFFD_API_IOCTLS: u64 = 1 << _UFFDIO_REGISTER | 1 << _UFFDIO_UNREGISTER | 1 << _UFFDIO_API;
pub const UFFD_API_RANGE_IOCTLS: u64 =
    1 << _UFFDIO_WAKE | 1 << _UFFDIO_COPY | 1 << _UFFDIO_ZEROPAGE | 1 << _UFFDIO_MOVE | 1 << _UFFDIO_WRITEPROTECT | 1 << _UFFDIO_CONTINUE | 1 << _UFFDIO_POISON;
/// For ranges that contain hugetlb (not modelled yet, kept for the mask's definition).
pub const UFFD_API_RANGE_IOCTLS_BASIC: u64 = 1 << _UFFDIO_WAKE | 1 << _UFFDIO_COPY | 1 << _UFFDIO_WRITEPROTECT | 1 << _UFFDIO_CONTINUE | 1 << _UFFDIO_POISON;

pub const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
pub const UFFDIO_REGISTER_MODE_WP: u64 = 2;
pub const UFFDIO_REGISTER_MODE_MINOR: u64 = 4;
pub const UFFDIO_COPY_MODE_DONTWAKE: u64 = 1;
pub const UFFDIO_COPY_MODE_WP: u64 = 2;
pub const UFFDIO_ZEROPAGE_MODE_DONTWAKE: u64 = 1;
pub const UFFDIO_WRITEPROTECT_MODE_WP: u64 = 1;
pub const UFFDIO_WRITEPROTECT_MODE_DONTWAKE: u64 = 2;
pub const UFFDIO_CONTINUE_MODE_DONTWAKE: u64 = 1;
pub const UFFDIO_CONTINUE_MODE_WP: u64 = 2;
pub const UFFDIO_POISON_MODE_DONTWAKE: u64 = 1;
pub const UFFDIO_MOVE_MODE_DONTWAKE: u64 = 1;

pub const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
pub const UFFD_EVENT_FORK: u8 = 0x13;
pub const UFFD_EVENT_REMAP: u8 = 0x14;
pub const UFFD_EVENT_REMOVE: u8 = 0x15;
pub const UFFD_EVENT_UNMAP: u8 = 0x16;

pub const UFFD_PAGEFAULT_FLAG_WRITE: u64 = 1;
pub const UFFD_PAGEFAULT_FLAG_WP: u64 = 2;
pub const UFFD_PAGEFAULT_FLAG_MINOR: u64 = 4;

/// A `struct uffd_msg`: 32 bytes, zero-filled before use (msg_init).
pub type Msg = [u8; 32];

pub(super) fn put_u64(m: &mut [u8], off: usize, v: u64) {
    m[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

pub(super) fn get_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}
