//! The userfaultfd UAPI (Linux: include/uapi/linux/userfaultfd.h): ioctl numbers, feature
//! bits, modes, events, and the structs the ioctls and read() exchange with the guest,
//! as `#[repr(C)]` Rust structs with their sizes checked at compile time.

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
pub const UFFD_FEATURE_MINOR_HUGETLBFS: u64 = 1 << 9;
pub const UFFD_FEATURE_MINOR_SHMEM: u64 = 1 << 10;
pub const UFFD_FEATURE_EXACT_ADDRESS: u64 = 1 << 11;
pub const UFFD_FEATURE_WP_HUGETLBFS_SHMEM: u64 = 1 << 12;
pub const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
pub const UFFD_FEATURE_POISON: u64 = 1 << 14;
pub const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
pub const UFFD_FEATURE_MOVE: u64 = 1 << 16;

/// The features UFFDIO_API reports: every one Linux 6.18 has, 0x1FFFF.
pub const UFFD_API_FEATURES: u64 = UFFD_FEATURE_PAGEFAULT_FLAG_WP
    | UFFD_FEATURE_WP_ASYNC
    | UFFD_FEATURE_MISSING_HUGETLBFS
    | UFFD_FEATURE_MINOR_HUGETLBFS
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
/// For ranges that contain hugetlb: no ZEROPAGE, no MOVE.
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
pub const UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: u64 = 2;

pub const UFFD_EVENT_PAGEFAULT: u8 = 0x12;
pub const UFFD_EVENT_FORK: u8 = 0x13;
pub const UFFD_EVENT_REMAP: u8 = 0x14;
pub const UFFD_EVENT_REMOVE: u8 = 0x15;
pub const UFFD_EVENT_UNMAP: u8 = 0x16;

pub const UFFD_PAGEFAULT_FLAG_WRITE: u64 = 1;
pub const UFFD_PAGEFAULT_FLAG_WP: u64 = 2;
pub const UFFD_PAGEFAULT_FLAG_MINOR: u64 = 4;

// ---- The structs ----

/// A UAPI value: a little-endian integer, or a `#[repr(C)]` struct of them laid out without
/// padding, so that its bytes are its fields end to end. Guest memory holds these bytes;
/// `read_from` and `write_to` convert field by field, which needs no unsafe code.
pub trait Uapi: Copy + Default {
    /// `size_of::<Self>()` (checked at compile time for every struct).
    const SIZE: usize;
    /// The value in the first `SIZE` bytes of `b`.
    fn read_from(b: &[u8]) -> Self;
    /// Stores the value in the first `SIZE` bytes of `b`.
    fn write_to(&self, b: &mut [u8]);
}

macro_rules! uapi_int {
    ($($t:ty),*) => {$(
        impl Uapi for $t {
            const SIZE: usize = size_of::<$t>();
            fn read_from(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b[..Self::SIZE].try_into().unwrap())
            }
            fn write_to(&self, b: &mut [u8]) {
                b[..Self::SIZE].copy_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
uapi_int!(u8, u16, u32, u64, i64);

impl<const N: usize> Uapi for [u8; N]
where
    [u8; N]: Default,
{
    const SIZE: usize = N;
    fn read_from(b: &[u8]) -> Self {
        b[..N].try_into().unwrap()
    }
    fn write_to(&self, b: &mut [u8]) {
        b[..N].copy_from_slice(self);
    }
}

/// A `#[repr(C)]` UAPI struct and its `Uapi` conversion, fields in declaration order. The
/// compile-time check that the fields' sizes add up to the struct's size proves that
/// there is no padding, so the field-by-field offsets are the C layout's.
macro_rules! uapi_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident: $t:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
        }
        impl Uapi for $name {
            const SIZE: usize = 0 $(+ <$t as Uapi>::SIZE)*;
            fn read_from(b: &[u8]) -> Self {
                let mut _off = 0;
                $(let $f = <$t as Uapi>::read_from(&b[_off..]); _off += <$t as Uapi>::SIZE;)*
                Self { $($f,)* }
            }
            fn write_to(&self, b: &mut [u8]) {
                let mut _off = 0;
                $(self.$f.write_to(&mut b[_off..]); _off += <$t as Uapi>::SIZE;)*
            }
        }
        const _: () = assert!(<$name as Uapi>::SIZE == size_of::<$name>(), "padding in a UAPI struct");
    };
}

uapi_struct! {
    /// Linux: struct uffdio_api.
    pub struct UffdioApi {
        pub api: u64,
        pub features: u64,
        pub ioctls: u64,
    }
}

uapi_struct! {
    /// Linux: struct uffdio_range.
    pub struct UffdioRange {
        pub start: u64,
        pub len: u64,
    }
}

uapi_struct! {
    /// Linux: struct uffdio_register. `ioctls` is output only: the kernel never reads it.
    pub struct UffdioRegister {
        pub range: UffdioRange,
        pub mode: u64,
        pub ioctls: u64,
    }
}

uapi_struct! {
    /// Linux: struct uffdio_copy. `copy` is the output field (bytes copied, or -errno).
    pub struct UffdioCopy {
        pub dst: u64,
        pub src: u64,
        pub len: u64,
        pub mode: u64,
        pub copy: i64,
    }
}

uapi_struct! {
    /// Linux: struct uffdio_zeropage. `zeropage` is the output field.
    pub struct UffdioZeropage {
        pub range: UffdioRange,
        pub mode: u64,
        pub zeropage: i64,
    }
}

uapi_struct! {
    /// Linux: struct uffdio_writeprotect (no output field).
    pub struct UffdioWriteprotect {
        pub range: UffdioRange,
        pub mode: u64,
    }
}

uapi_struct! {
    /// Linux: struct uffdio_continue. `mapped` is the output field.
    pub struct UffdioContinue {
        pub range: UffdioRange,
        pub mode: u64,
        pub mapped: i64,
    }
}

uapi_struct! {
    /// Linux: struct uffdio_poison. `updated` is the output field.
    pub struct UffdioPoison {
        pub range: UffdioRange,
        pub mode: u64,
        pub updated: i64,
    }
}

uapi_struct! {
    /// Linux: struct uffdio_move. `move` is the output field.
    pub struct UffdioMove {
        pub dst: u64,
        pub src: u64,
        pub len: u64,
        pub mode: u64,
        pub r#move: i64,
    }
}

uapi_struct! {
    /// Linux: struct uffd_msg (declared __packed; its fields are naturally aligned, so
    /// the layout is the same). The kernel zeroes a message before filling it (msg_init):
    /// `UffdMsg { event, ..Default::default() }`.
    pub struct UffdMsg {
        pub event: u8,
        pub reserved1: u8,
        pub reserved2: u16,
        pub reserved3: u32,
        pub arg: UffdMsgArg,
    }
}

/// The union `arg` of struct uffd_msg: 24 bytes, written and read through one of its
/// arms (`UffdMsgPagefault`, `UffdMsgFork`, `UffdMsgRemap`, `UffdMsgRemove`). As in C, an
/// arm shorter than the union leaves the bytes after it as they were.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UffdMsgArg([u8; 24]);

impl UffdMsgArg {
    /// Stores `arm` at the start of the union.
    pub fn set<A: Uapi>(&mut self, arm: A) {
        const { assert!(A::SIZE <= 24) };
        arm.write_to(&mut self.0);
    }
    /// The union read as `A`.
    pub fn get<A: Uapi>(&self) -> A {
        const { assert!(A::SIZE <= 24) };
        A::read_from(&self.0)
    }
}

impl Uapi for UffdMsgArg {
    const SIZE: usize = 24;
    fn read_from(b: &[u8]) -> Self {
        UffdMsgArg(<[u8; 24]>::read_from(b))
    }
    fn write_to(&self, b: &mut [u8]) {
        self.0.write_to(b);
    }
}

uapi_struct! {
    /// uffd_msg.arg.pagefault: `ptid` is the union `feat` (UFFD_FEATURE_THREAD_ID).
    pub struct UffdMsgPagefault {
        pub flags: u64,
        pub address: u64,
        pub ptid: u32,
        /// The C struct's tail padding, up to the union's 24 bytes.
        pub _pad: u32,
    }
}

uapi_struct! {
    /// uffd_msg.arg.fork: the child's userfaultfd descriptor.
    pub struct UffdMsgFork {
        pub ufd: u32,
    }
}

uapi_struct! {
    /// uffd_msg.arg.remap.
    pub struct UffdMsgRemap {
        pub from: u64,
        pub to: u64,
        pub len: u64,
    }
}

uapi_struct! {
    /// uffd_msg.arg.remove, for UFFD_EVENT_REMOVE and UFFD_EVENT_UNMAP alike.
    pub struct UffdMsgRemove {
        pub start: u64,
        pub end: u64,
    }
}

// The sizes of include/uapi/linux/userfaultfd.h on x86-64.
const _: () = assert!(size_of::<UffdMsg>() == 32);
const _: () = assert!(size_of::<UffdMsgArg>() == 24);
const _: () = assert!(size_of::<UffdMsgPagefault>() == 24);
const _: () = assert!(size_of::<UffdMsgRemap>() == 24);
const _: () = assert!(size_of::<UffdioApi>() == 24);
const _: () = assert!(size_of::<UffdioRange>() == 16);
const _: () = assert!(size_of::<UffdioRegister>() == 32);
const _: () = assert!(size_of::<UffdioCopy>() == 40);
const _: () = assert!(size_of::<UffdioZeropage>() == 32);
const _: () = assert!(size_of::<UffdioWriteprotect>() == 24);
const _: () = assert!(size_of::<UffdioContinue>() == 32);
const _: () = assert!(size_of::<UffdioPoison>() == 32);
const _: () = assert!(size_of::<UffdioMove>() == 40);

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    #[test]
    fn field_offsets_are_the_c_layout() {
        assert_eq!(offset_of!(UffdMsg, arg), 8);
        assert_eq!(offset_of!(UffdioRegister, ioctls), 24);
        assert_eq!(offset_of!(UffdioCopy, copy), 32);
        assert_eq!(offset_of!(UffdioZeropage, zeropage), 24);
        assert_eq!(offset_of!(UffdioContinue, mapped), 24);
        assert_eq!(offset_of!(UffdioPoison, updated), 24);
        assert_eq!(offset_of!(UffdioMove, r#move), 32);
    }

    #[test]
    fn bytes_round_trip_little_endian() {
        let c = UffdioCopy { dst: 0x1122, src: 3, len: 4096, mode: 2, copy: -14 };
        let mut b = [0u8; 40];
        c.write_to(&mut b);
        assert_eq!(&b[..8], &0x1122u64.to_le_bytes());
        assert_eq!(&b[32..], &(-14i64).to_le_bytes());
        assert_eq!(UffdioCopy::read_from(&b), c);

        let mut m = UffdMsg { event: UFFD_EVENT_FORK, ..Default::default() };
        m.arg.set(UffdMsgFork { ufd: 7 });
        let mut b = [0xffu8; 32];
        m.write_to(&mut b);
        assert_eq!(b[0], UFFD_EVENT_FORK);
        assert_eq!(&b[1..8], &[0; 7]);
        assert_eq!(&b[8..12], &7u32.to_le_bytes());
        assert_eq!(&b[12..], &[0; 20]);
        assert_eq!(m.arg.get::<UffdMsgPagefault>().flags, 7);
    }
}

const _: () = assert!(UFFD_API_FEATURES == 0x1ffff, "UFFDIO_API reports Linux 6.18's features exactly");
