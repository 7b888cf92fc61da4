//! userfaultfd, the file side (Linux: fs/userfaultfd.c). The memory side — filling pages
//! and write-protecting ranges — is `mm::userfaultfd` (Linux: mm/userfaultfd.c).
//!
//! A context ([`UffdCtx`], Linux's `struct userfaultfd_ctx`) belongs to one address space
//! (`mm`, held by id: the context outlives it, and its ioctls then answer ESRCH/ENOMEM).
//! VMAs registered with it hold a `mm::VmUserfaultfdCtx` (Linux: `vm_userfaultfd_ctx`),
//! a reference mm compares but does not look into (`vma_ctx` gets the context back); the
//! file holds another. Faults in a registered VMA that need the monitor (`handle_userfault`)
//! queue a [`Waiter`] carrying the 32-byte `uffd_msg` on `fault_pending` and park the
//! faulting thread on the waiter's own wait key; `read()` moves waiters to `fault_read`
//! (Linux refiles them from fault_pending_wqh to fault_wqh); a wake whose range covers the
//! waiter's address removes it and wakes the thread, which re-executes the faulting
//! instruction (Linux retries the whole fault after VM_FAULT_RETRY) — and faults again if
//! nothing was resolved.
//!
//! Release: dropping the last description (close, exit) queues the context on
//! `Kernel::uffd.released`; `process_released`, run after the exit that dropped it and so
//! before the closing thread returns to user mode (Linux's fput runs as task work on the
//! way out), clears every registration of the context, un-protecting uffd-wp ranges, and
//! wakes every waiter (userfaultfd_release).
//!
//! The modules follow the parts of fs/userfaultfd.c:
//!
//! | here     | Linux                                                                    |
//! |----------|--------------------------------------------------------------------------|
//! | `uapi`   | include/uapi/linux/userfaultfd.h: ioctl numbers, features, modes, events |
//! | `ctx`    | struct userfaultfd_ctx, new_userfaultfd, /dev/userfaultfd, poll, fdinfo, release |
//! | `ioctl`  | userfaultfd_ioctl: API, REGISTER, UNREGISTER, WAKE, COPY, ZEROPAGE, CONTINUE, POISON, MOVE, WRITEPROTECT |
//! | `read`   | userfaultfd_read_iter / userfaultfd_ctx_read                             |
//! | `fault`  | handle_userfault, wake_userfault                                         |
//! | `events` | the non-cooperative events: fork, mremap, remove, unmap                  |
//!
//! What the rest of the kernel calls is re-exported here; the UAPI constants are
//! `uffd::uapi`.

mod ctx;
mod events;
mod fault;
mod ioctl;
mod read;
pub mod uapi;

pub use ctx::{dev_ioctl, open_dev, process_released, show_fdinfo, sys_userfaultfd, vma_ctx, UffdCtx, UffdFile, UffdKernel};
pub use events::{dup_userfaultfd, dup_userfaultfd_complete, dup_userfaultfd_set_mm, events_complete, mremap_events, unmap_prep, userfaultfd_remove, PendingEvents};
pub use fault::{kernel_fault, prune_dead_waiters, user_fault, waiter_woken};
pub use ioctl::userfaultfd_ioctl;
pub use read::userfaultfd_read;
