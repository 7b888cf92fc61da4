//! Guest programs: small C programs in `guest-progs/c/*.c`, compiled by `build.rs` with the
//! system gcc into static x86-64 Linux executables (`-static -O2`; a first-line comment
//! `// pagelab: cflags=-static-pie` builds a static-pie instead, see `build.rs`).
//!
//! Every program prints a deterministic transcript (no addresses, PIDs or timings), so its
//! stdout and exit status can be compared between a native run and a pagelab run.
//!
//! ```no_run
//! let hello = guest_progs::path("hello");
//! let m = guest_progs::meta("qsort");
//! assert_eq!(m.test_args, &["200000"]);
//! # let _ = hello;
//! ```

use std::path::PathBuf;

include!(concat!(env!("OUT_DIR"), "/guest_progs.rs"));

/// Linux signal numbers the programs are expected to die of.
pub const SIGILL: i32 = 4;
pub const SIGSEGV: i32 = 11;

/// How a program is expected to end (natively, and so under pagelab).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exits with this status.
    Exit(i32),
    /// Is killed by this signal.
    Signal(i32),
}

/// What the tests need to know about a program.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    pub name: &'static str,
    /// One line on what it exercises.
    pub about: &'static str,
    /// Arguments (after argv[0]) the tests run it with: small enough for an interpreter.
    pub test_args: &'static [&'static str],
    /// Arguments for a bigger run (benchmarks); the program's own defaults when empty.
    pub bench_args: &'static [&'static str],
    pub expect: Expect,
}

/// Metadata for every program in [`ALL`] (a unit test checks that the two agree).
pub const META: &[Meta] = &[
    Meta { name: "args_env", about: "argv, auxv (AT_PAGESZ, AT_CLKTCK, ...) and environment", test_args: &["one", "two words", ""], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "capability", about: "capget/capset as root: versions (_1 one struct, _2/_3 two, unknown: _3 written back, EINVAL or 0 with data NULL), pids (own, a live, zombie or reaped child, another thread; EINVAL, ESRCH, EPERM), EFAULTs, cap_capset's subset rules with and without CAP_SETPCAP, bits past CAP_LAST_CAP dropped, per-thread sets inherited by threads and fork, /proc/PID/status Cap lines, and CAP_SYS_PTRACE for userfaultfd(2) without UFFD_USER_MODE_ONLY and UFFDIO_API EVENT_FORK (not for /dev/userfaultfd)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "cpu_model", about: "CPUID (vendor, features, brand) and the results the SDM leaves open (RCR by 9, SHL OF, BSF of 0, REP MOVSB a32 with ECX = 0, MXCSR_MASK): the model under pagelab, the host natively (cpu_model.pagelab.expected)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "enosys", about: "an unknown syscall returns ENOSYS", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "exit_code", about: "exit(42) after atexit and buffered stdout", test_args: &[], bench_args: &[], expect: Expect::Exit(42) },
    Meta { name: "fork_cow", about: "copy-on-write after fork, MAP_SHARED anonymous memory and a process-shared mutex across fork, MADV_WIPEONFORK/DONTFORK", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "files_misc", about: "errno table: pipe2, dup/dup2/dup3, fcntl, nonblocking pipes and packet mode, EPIPE, eventfd, epoll_ctl/epoll_wait, poll/select edge cases, paths", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "fork_wait", about: "exit statuses and wait4/waitid (WNOHANG, WNOWAIT, pids, groups, __WCLONE), vfork, getppid, /proc/PID, leader pthread_exit, kill/stop/continue", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "hello", about: "printf of ints and doubles, string.h, argv", test_args: &["a", "bc"], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "hello_pie", about: "hello built -static-pie (ET_DYN, self-relocating)", test_args: &["a", "bc"], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "mach_deadlock", about: "two threads, two mutexes; `deadlock`: opposite order, a certain deadlock (pagelab: exit 123)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "mach_race", about: "threads increment a counter and append to a log; `race`: without a lock (scheduler-dependent)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "mach_shootdown", about: "a thread remaps memory another thread has in its TLB: shootdowns", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "mach_stale_tlb", about: "a missing TLB flush injected with the pagelab test hook (ENOSYS natively)", test_args: &["write-noflush"], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "mlock_basic", about: "mlock/munlock/mlock2(MLOCK_ONFAULT)/MAP_LOCKED/mlockall/munlockall: results and errnos (mlock2 flags EINVAL, a hole ENOMEM, mlockall flags), smaps VmFlags lo/lf/dd/dp and Locked, the VMA split at the locked range and merged back, fork dropping the lock and def_flags, MCL_FUTURE locking new mappings, MADV_GUARD_INSTALL EINVAL on a locked VMA and the sticky gu flag, MAP_DROPPABLE (anonymous only, never locked, wiped at fork, KEEPONFORK/DODUMP EINVAL), MADV_DONTDUMP/DODUMP", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "vma_merge", about: "when 6.18 merges anonymous VMAs, from /proc/self/maps after mprotect and mmap round trips (anon_vma identity: separately faulted VMAs stay apart, a never-faulted one joins a faulted neighbour; VM_ACCOUNT dropped by mprotect of a read-only VMA without pages), and mremap's UNMAP events that follow from it (a never-faulted range moved next to the rest of its WP-registered VMA: no source UNMAP without EVENT_REMAP)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "mincore_basic", about: "mincore(2) on anonymous memory, a memfd shared and private, guard and uffd-wp markers and a THP, and its errnos; MADV_PAGEOUT without swap drops a clean shmem page from the page cache and keeps a dirty one", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "mem", about: "brk, malloc/realloc/free, mmap/munmap/mprotect/mremap/madvise", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "pipe_epoll", about: "three producer threads into pipes + an eventfd, one epoll set (LT, ET, ET|ONESHOT); per-pipe checksums (argv[1] messages each)", test_args: &["12"], bench_args: &["60"], expect: Expect::Exit(0) },
    Meta { name: "pipe_poll", about: "producer thread and poll()ing consumer over a pipe, messages up to 200000 bytes; stream checksum (argv[1] messages)", test_args: &["30"], bench_args: &["200"], expect: Expect::Exit(0) },
    Meta { name: "pipe_signals", about: "blocking pipe/eventfd waits vs signals (EINTR, SA_RESTART, partial writes, ppoll/epoll_pwait masks), fork over a pipe; `sigpipe`: killed by SIGPIPE", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "qsort", about: "recursive quicksort of N xorshift ints (argv[1], default 5000000)", test_args: &["200000"], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "qsort4", about: "qsort's quicksort of N ints shared by 4 threads through a mutex/condvar work stack (argv[1] N, default 5000000; argv[2] threads)", test_args: &["300000"], bench_args: &["5000000"], expect: Expect::Exit(0) },
    Meta { name: "futex_stress", about: "mutex/condvar/barrier/rwlock/semaphore traffic; raw futex REQUEUE, CMP_REQUEUE, WAKE_OP, BITSET, keys, timeouts and errnos", test_args: &["5000"], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "thr_pingpong", about: "benchmark kernels: futex hand-off and sched_yield between two threads, FUTEX_WAKE without waiters, getppid (argv: MODE N)", test_args: &["futex", "2000"], bench_args: &["futex", "200000"], expect: Expect::Exit(0) },
    Meta { name: "sched_overlap", about: "threads that run at the same time on different vCPUs: a uffd MISSING ping-pong between a handler and a faulter, a CPU-bound thread beside its creator, and clock readings passed through a pipe and a futex word that must never come from the reader's future (argv: MODE N)", test_args: &["uffd", "32"], bench_args: &["uffd", "2000"], expect: Expect::Exit(0) },
    Meta { name: "cxx_except", about: "C++ exceptions through libgcc's unwinder (RDSSPQ, a NOP without CET): a throw through 30 frames with destructors in order, a rethrow, nested exceptions, an exception_ptr carried between threads, four threads throwing at once (argv[1] throws each)", test_args: &["300"], bench_args: &["20000"], expect: Expect::Exit(0) },
    Meta { name: "thr_misc", about: "thread exit (join values, detached, robust owner death; `mainexit`, `exitgroup` modes), sleeps, clocks, affinity, getcpu, scheduler queries", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "segv_null", about: "NULL store: killed by SIGSEGV", test_args: &[], bench_args: &[], expect: Expect::Signal(SIGSEGV) },
    Meta { name: "segv_ro", about: "store to a PROT_READ page: killed by SIGSEGV", test_args: &[], bench_args: &[], expect: Expect::Signal(SIGSEGV) },
    Meta { name: "sig_eintr", about: "EINTR vs SA_RESTART: futex, pipe read, nanosleep, clock_nanosleep, pause, sigsuspend, sigtimedwait, ignored signal, signal from a thread, stop/continue restart", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "sig_handlers", about: "SA_NODEFER/RESETHAND/ONSTACK, sigaltstack, masks and nesting order, RT queueing, sigsuspend, sigtimedwait, kill/raise/tgkill siginfo, alarm/setitimer, int3/div0/ud2 handlers", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "sig_segv", about: "SIGSEGV/SIGBUS handlers: si_code, si_addr, trapno/err/cr2, RIP skip, FPU state in handlers, deaths by faults in handlers, SIG_IGN, blocked, bad frame", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "sig_stack_segment", about: "non-canonical stack-segment accesses (#SS → SIGBUS) against DS ones (#GP → SIGSEGV)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "smc", about: "self-modifying code in an RWX mapping, incl. the executing block", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "swap_basic", about: "MADV_PAGEOUT of private anonymous pages and /proc/self/pagemap: swap-out/in, fork and mremap of swap entries, COW-shared pages stay, DONTNEED/munmap, errnos (needs swap natively)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "swap_stress", about: "seeded random writes, reads, MADV_PAGEOUT/DONTNEED, fork, mremap moves and mprotect on a region checked against a shadow model (argv: OPS SEED)", test_args: &["3000", "7"], bench_args: &["100000", "7"], expect: Expect::Exit(0) },
    Meta { name: "swap_uffd", about: "uffd-wp on swapped-out pages: protect, MADV_PAGEOUT, toggling while swapped, read then write swap-in (one WP message), fork without EVENT_FORK, close (needs swap natively)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "touch", about: "mmap N MiB (argv[1], default 256), one write per page, read back", test_args: &["256"], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "unimpl_avx", about: "an AVX2 instruction: pagelab stops with an unimplemented-instruction error", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffdcore_api", about: "userfaultfd file: creation flags, UFFDIO_API handshake (zeroing, second call), ioctls before it, REGISTER/UNREGISTER errnos, holes, mode replacement, ioctl masks (anon, shmem), WAKE, idle read/poll/write, /dev/userfaultfd", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffdcore_missing", about: "MISSING faults: handler thread with COPY/ZEROPAGE, THREAD_ID/EXACT_ADDRESS, several messages per read, COPY/ZEROPAGE errno and partial semantics, SIGBUS feature, kernel-mode fault (read into a missing page) with and without USER_MODE_ONLY, close waking", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffdcore_wp", about: "uffd-wp scenarios with a handler thread: the four-step COW sequence after fork (child keeps old data), exclusive page resolve, zero page protect/resolve/COW, MISSING|WP with COPY_MODE_WP (argv[1]: cow, excl, zero, copywp, all)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "ud", about: "ud2: killed by SIGILL", test_args: &[], bench_args: &[], expect: Expect::Signal(SIGILL) },
    Meta { name: "uffd_workflow", about: "uffd-wp worker + handler thread: one WP message per page, un-protect per page, unpopulated and zero-page cases, checksum (argv[1] pages)", test_args: &[], bench_args: &["4096"], expect: Expect::Exit(0) },
    Meta { name: "uffd_cow", about: "the four-step COW + uffd-wp sequence after fork: WP message, resolve leaves the shared page read-only, retried write COWs; the child keeps the old data", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_missing_wp", about: "MISSING|WP registration: MISSING then WP message with COPY_MODE_WP, ZEROPAGE (DONTWAKE, never wp), EEXIST/EINVAL/ENOENT fills", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_fork", about: "fork with and without EVENT_FORK: pagemap bit 57 in the child, child writes, FORK message and the child's uffd, ESRCH/ENOMEM after the child exits", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_mprotect", about: "uffd-wp survives mprotect NONE/READ -> RW (pagemap bit 57, WP message), SEGV_ACCERR first, split VMAs stay registered", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_swap", about: "MADV_PAGEOUT of wp'd pages: swap entries keep uffd-wp, read swap-in without message, write with one, toggling while swapped, fork, close (native transcript needs host swap: uffd_swap.expected)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_wake", about: "wake rules: DONTWAKE then WAKE, WAKE without resolve re-raises, UNREGISTER wakes MISSING but not WP waiters, close wakes all", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_signal", about: "a signal to a thread blocked on a WP fault: handler, then a duplicate message; blocked signals; EXACT_ADDRESS, THREAD_ID; UFFD_FEATURE_SIGBUS", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_kernel", about: "kernel-mode writes: read() from a pipe into wp'd and missing pages blocks until resolved; EFAULT with UFFD_USER_MODE_ONLY", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_events", about: "REMOVE (DONTNEED, FREE), UNMAP, REMAP events in order; mmap_changing EAGAIN while an event is unread; mremap without EVENT_REMAP", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_bench", about: "issue-4 benchmark kernels: WRITEPROTECT protect/un-protect of SIZE_MB populated pages, uffd-wp fault and MISSING+COPY round trips with a handler thread (argv: [--time] MODE SIZE [REPS|N]; counts and checksums)", test_args: &["wp-fault", "64"], bench_args: &["wp-protect", "1024"], expect: Expect::Exit(0) },
    Meta { name: "uffd_errno", about: "errno table: userfaultfd(2), /dev/userfaultfd, API, REGISTER, UNREGISTER, WAKE, COPY, ZEROPAGE, WRITEPROTECT, CONTINUE/POISON/MOVE on anon, output-field semantics", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_tlb", about: "UFFDIO_WRITEPROTECT flushes every TLB before it returns: a writer thread spinning on the page never writes after protect returned (argv[1] rounds)", test_args: &[], bench_args: &["2000"], expect: Expect::Exit(0) },
    Meta { name: "shm_memfd", about: "memfd_create (flags, name, fd link, fstat), write/pread/pwrite/lseek SEEK_DATA/SEEK_HOLE, ftruncate, fallocate and PUNCH_HOLE|KEEP_SIZE with st_blocks, seals SHRINK/GROW/WRITE/SEAL and their errnos, MAP_SHARED/MAP_PRIVATE of a memfd (COW), MAP_SHARED|MAP_ANONYMOUS, SIGBUS BUS_ADRERR past EOF and after truncation, a tmpfs directory under /dev/shm (rename, mkdir, unlink, sorted getdents64)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "shm_faultaround", about: "fault-around: a read fault maps the cached, uptodate neighbours in the 16-page window (aligned by address, shifted to start at the VMA start, clipped at the VMA end), not fallocated pages, not on write faults; memfd shared/private, shared anonymous, /proc/self/exe; kept under MISSING (before the message), off under WP and MINOR", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "shm_markers", about: "uffd-wp on shmem: WRITEPROTECT installs markers on none PTEs (cached or hole), a write to a marker gives one WRITE|WP message and lands after un-protect, a read maps the page wp'd silently, un-protect clears markers, DONTNEED/REMOVE/PUNCH_HOLE keep markers for protected pages only, UNREGISTER/close clear them; anon DONTNEED drops wp", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "shm_minor", about: "MINOR faults on shmem: read (flags 4) and write (5) of a cached page with a none PTE, holes fault silently, UFFDIO_CONTINUE (mapped field: EEXIST, EFAULT, partial EAGAIN, EINVAL, ENOENT), CONTINUE_MODE_WP gives MINOR then WP messages, CONTINUE over a marker, COPY/ZEROPAGE in a MINOR VMA, MAP_PRIVATE COW after CONTINUE", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "shm_missing", about: "MISSING faults on shmem: only page-cache holes fault, COPY/ZEROPAGE fill the page cache (alias mapping, pread, st_blocks), EEXIST over cached pages, EFAULT/SIGBUS past EOF, MADV_REMOVE re-arms, COPY_MODE_WP (MISSING then WP), ZEROPAGE over a marker succeeds, MAP_PRIVATE fills are anonymous, MAP_SHARED|MAP_ANONYMOUS", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_unpopulated", about: "UFFD_FEATURE_WP_UNPOPULATED on private anon: markers on none PTEs (also without page tables), write to a marker gives one WP message, read maps the zero page wp'd, un-protect/DONTNEED/close drop markers; MISSING|WP: MISSING first, COPY mode 0 unprotects, COPY|WP then WP, ZEROPAGE/POISON EEXIST over a marker", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "shm_fork", about: "fork over uffd-wp shmem and anon: without EVENT_FORK the child has no shmem PTEs, no wp bits, no markers and its writes do not fault; with EVENT_FORK it keeps PTEs, wp bits and markers (shmem included) and faults on the child's uffd; the parent's PTEs stay protected", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "shm_mremap", about: "mremap of uffd-wp shmem: without EVENT_REMAP the move unregisters and drops wp bits and markers; with it they move, one REMAP message, writes fault WP at the new address; partial move, in-place growth; mprotect READ/NONE then RW keeps wp bits and markers", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "shm_errno", about: "errno table of issue 9: UFFDIO_API shmem features, REGISTER masks for every mode on memfd shared/private, shared anon, tmpfs files (EPERM without VM_MAYWRITE), the executable (WP_ASYNC only), WRITEPROTECT/CONTINUE/COPY on wrong registrations, UFFDIO_POISON on shmem and anon (raw marker entries, SIGBUS, DONTNEED/REMOVE/fork)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "proc_meminfo", about: "/proc/meminfo (line names, order, layout, relations; Shmem/Cached/Mapped deltas for memfd, MAP_SHARED|MAP_ANONYMOUS, /dev/shm, fallocate and MAP_PRIVATE pages), the THP files under /sys/kernel/mm/transparent_hugepage (format, stat, open, getdents), smaps of memfd mappings (page-cache dirtiness, sharing, COW) and smaps_rollup; `values`: pagelab's own figures (proc_meminfo.values.pagelab.expected); `folio-dirty`: a PTE's dirty bit reaching the page at munmap", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "rusage_faults", about: "getrusage and wait4 rusage: page-fault counts (anonymous first writes, zero page then write, MAP_POPULATE, shmem fault-around, a shared VMA registered WP, a userfault's retry counted once as minor on 6.18, children after reaping, RUSAGE_THREAD vs SELF) and the EINVAL/EFAULT cases", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "shm_bench", about: "issue-9 benchmark kernels: UFFDIO_WRITEPROTECT protect/un-protect of SIZE_MB of unpopulated shmem (markers and page tables), MINOR fault + UFFDIO_CONTINUE round trips with a handler thread (argv: [--time] MODE SIZE [REPS|N]; counts, pagemap states and checksums)", test_args: &["minor-continue", "64"], bench_args: &["marker-protect", "1024"], expect: Expect::Exit(0) },
    Meta { name: "thp_fault", about: "anonymous THP faults (issue 10): the policy files, a first-touch write maps one huge PMD per aligned 2 MiB of a MADV_HUGEPAGE VMA (smaps AnonHugePages/THPeligible, pagemap, one 2 MiB frame), MADV_NOHUGEPAGE and no advice fault 4 KiB pages, a first read maps the huge zero page (pagemap present|file, not in Rss) and a write replaces it by a THP, fallbacks (VMA too small, misaligned, a range with a page table, advice on half a VMA), MADV_NOHUGEPAGE keeps a mapped THP, prctl(PR_SET_THP_DISABLE) with and without PR_THP_DISABLE_EXCEPT_ADVISED", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "thp_split", about: "what splits an anonymous THP's huge PMD (issue 10): partial munmap, mprotect, MADV_DONTNEED and mremap split it (AnonHugePages drops, the other pages keep their frames and data), whole-PMD munmap/mprotect/mremap to an aligned address keep it, whole-PMD DONTNEED drops it (then the huge zero page, a new THP); argument `pageout`: MADV_PAGEOUT without swap and partial MADV_COLD split, whole-PMD COLD keeps it", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "thp_wp", about: "userfaultfd on anonymous THPs (issue 10): protecting a whole THP keeps the PMD (wp on all 512 pages), a write gives one WP message at the 4 KiB-aligned address (exact with EXACT_ADDRESS), un-protecting the whole 2 MiB keeps the PMD and a 4 KiB page splits it, partial protect/un-protect split, the huge zero PMD protected whole or in part, UNREGISTER of part and close, MISSING before anything is mapped with COPY/ZEROPAGE filling 4 KiB PTEs, WP on untouched ranges with and without WP_UNPOPULATED; argument `async`: WP_ASYNC splits and clears only the written page", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "thp_fork", about: "fork of anonymous THPs (issue 10): the PMD is shared (AnonHugePages 2048 in both, no page exclusive), the first writer splits its own PMD and copies one 4 KiB page while the other keeps its PMD, then the second splits too (both orders); after the child exits a write reuses the PMD or the split pages; the huge zero PMD is shared and each writer maps its own THP; uffd-wp without EVENT_FORK (the child's PMD loses wp) and with it (wp kept, the child's write faults on its uffd, un-protect keeps the PMD, COW splits)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "thp_collapse", about: "MADV_COLLAPSE of anonymous memory (issue 10): 4 KiB pages (with or without advice, with none PTEs) collapse into one new 2 MiB frame, an empty range or zero pages only are EINVAL, a PMD-mapped THP is left as it is, ranges without an aligned 2 MiB do nothing, refusals (MADV_NOHUGEPAGE, PR_SET_THP_DISABLE), COW-shared pages after fork collapse in the parent only, a uffd-wp'd PTE gives EINVAL and none PTEs in a uffd-armed VMA EBUSY until un-protect or close", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "thp_bench", about: "issue-10 benchmark kernels: UFFDIO_WRITEPROTECT protect+un-protect pairs over SIZE_MB of THPs (change_huge_pmd), first-touch huge-PMD faults (argv: [--time] wp|fault SIZE_MB [REPS]; counts and AnonHugePages)", test_args: &["wp", "8", "2"], bench_args: &["wp", "1024", "20"], expect: Expect::Exit(0) },
    Meta { name: "thp_move", about: "UFFDIO_MOVE with anonymous THPs (issue 10, move-pmd): a whole PMD into an empty aligned destination moves the PMD itself (same 2 MiB frame), one 4 KiB page splits the source, a destination with a page table gets 512 PTEs of the same frames, the huge zero PMD moves as one, a uffd-wp'd source gives a non-wp destination, a COW-shared THP is EBUSY (still after the child exits: not AnonExclusive), a hole after the THP gives EAGAIN with the bytes moved, ALLOW_SRC_HOLES", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "thp_shmem", about: "MADV_COLLAPSE of shmem (issue 10, file THP; recorded with shmem_enabled never): memfd and shared anonymous 4 KiB pages collapse into one new 2 MiB page-cache folio mapped by a PMD in the caller (ShmemPmdMapped, meminfo ShmemHugePages/ShmemPmdMapped, THPeligible stays 0) whatever the policy, holes are filled, an empty file, MADV_NOHUGEPAGE or a misaligned offset are EINVAL; other mappings lose their PTEs and refault with a PMD (also after fork, MAP_PRIVATE read); minor-collapse; uffd-wp of the PMD zaps it and leaves markers; what ends the PMD mapping (mprotect/DONTNEED/munmap of a page, ftruncate, PUNCH_HOLE, MADV_REMOVE) and what keeps it (whole mprotect, pwrite, write); WP-registered VMAs get EINVAL after the page cache was collapsed, MISSING with holes EBUSY", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "htlb_basic", about: "the hugetlb pool and 2 MiB hugetlb mappings (issue 10): the program sets the pool itself from empty (exit 4 with HUGETLB POOL NOT EMPTY / NOT AVAILABLE otherwise; at most 5 pages, 10 MiB) and prints HugePages_*/Hugetlb, vm.nr_hugepages, the sysfs files and HugetlbPages after each step: pool files (modes, EINVAL/EACCES writes), MAP_HUGETLB private and shared (and MAP_HUGE_2MB) reserve at mmap and a first touch (read or write) consumes the reservation, smaps (KernelPageSize/MMUPageSize 2048, Private/Shared_Hugetlb, Rss 0), pagemap (512 subpages of one frame, excl/file bits), ENOMEM when free - reserved cannot cover a mapping, shrinking the pool under used/reserved pages leaves surplus, MAP_NORESERVE faults SIGBUS (BUS_ADRERR) with no free page, lengths round up, unaligned MAP_FIXED/offset/MAP_HUGE size EINVAL, partial munmap/mprotect EINVAL, MADV_DONTNEED (aligned start, end rounded down; private freed and zero, reservation back; shared kept), MADV_REMOVE and other advice, memfd MFD_HUGETLB (fstat, ftruncate, pread/pwrite, private COW of the page cache, fallocate, PUNCH_HOLE zeroing or freeing, seals, SIGBUS past EOF), fork of private (COW: first writer copies) and shared (not copied) mappings, and with an exhausted pool (the child's COW is SIGBUS, the parent takes the page away, a child dies of SIGBUS)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "htlb_uffd", about: "userfaultfd on 2 MiB hugetlb memory, private, shared and memfd (issue 10; sets a pool of 8 pages itself, see htlb_basic): the API feature bits, REGISTER ioctls per mode (0x10c/0x14c/0x18c/0x1cc), EINVAL for ranges not huge-page aligned (REGISTER, UNREGISTER, WRITEPROTECT, COPY, CONTINUE) and for every ZEROPAGE, ENOENT across a VMA end; MISSING messages at the huge page's start (exact with EXACT_ADDRESS) resolved by a 2 MiB COPY, COPY_MODE_WP then a WP message; WRITEPROTECT of populated pages (wp on all 512 subpages, one WP message per write, un-protect leaves the huge PTE read-only: one minor fault on the next write, no message), of unpopulated ones (a marker 0x0200000000000000, a read maps the page wp'd silently, a write faults WP), MADV_DONTNEED of protected pages (marker; private data gone, shared kept); MINOR with an alias mapping (CONTINUE, EEXIST, holes fault silently, CONTINUE_MODE_WP); fork without EVENT_FORK (no wp, shared not copied) and with it (wp and markers kept; the parent's write faults WP, then COWs); UNREGISTER and close clear wp and markers", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "uffd_abi", about: "issue 11's remaining errno cases, probed natively where the reference is silent: UFFDIO_API (every feature bit, the struct read-only or straddling an unmapped page, EPERM after capset drops CAP_SYS_PTRACE, /dev/userfaultfd), ioctl numbers (every direction and size, unused numbers, FIONBIO/FIOCLEX/FIONREAD, uffd ioctls on other fds), a range table of every range ioctl against boundary ranges (len 0/1/4095/4097, unaligned, wrapping, TASK_SIZE 0x7ffffffff000, mmap_min_addr, non-canonical, all user space, holes, PROT_NONE neighbours), unknown mode bits, output fields in unwritable pages, a dead mm, UFFDIO_POISON on private anon, memfd shared/private and shared anon (SIGBUS si_code/si_addr/lsb, pagemap, PAGEMAP_SCAN, kernel accesses, mprotect, fork, mremap, madvise, punch hole, munmap), the UFFDIO_MOVE VMA matrix, MAP_DROPPABLE (never uffd-capable), PAGEMAP_SCAN argument boundaries", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "htlb_abi", about: "uffd_abi's hugetlb rows (issue 11; sets a pool of 6 pages itself, see htlb_basic): UFFDIO_POISON on 2 MiB MAP_HUGETLB private/shared and MFD_HUGETLB shared/private (4 KiB and unaligned ranges EINVAL, partial EAGAIN, EEXIST, the pagemap entry, SIGBUS si_code/si_addr/lsb, kernel accesses, mprotect, fork, close, DONTNEED, PUNCH_HOLE, munmap+mmap, the pool), ranges across anonymous and hugetlb VMAs (REGISTER, WRITEPROTECT, UNREGISTER, WAKE, MOVE, POISON)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "pm_scan", about: "PAGEMAP_SCAN on /proc/PID/pagemap with UFFD_FEATURE_WP_ASYNC (issue 11): errnos and their order (size, flags, category bits >= 0x200, unaligned start EINVAL, end rounded up, end < start or past 0x7ffffffff000 EFAULT, vec NULL with vec_len EINVAL, unwritable vec EFAULT after the walk, CHECK_WPASYNC EPERM, WP_MATCHING skips non-async VMAs, another process's pagemap), the categories of every page kind (async-WP anon: markers 0x11, none PTEs and holes 0x3, present 0x9/0xb, zero page 0x29/0x2b, THP 0x49/0x4b, huge zero PMD 0x69/0x6b; unregistered anon, where holes without a page table are 0; shmem and private memfd; guard markers 0x112/0x113), category_mask/inverted/anyof and return_mask (raw AND return_mask, merging), truncation by vec_len and max_pages (walk_end), WP_MATCHING (re-protects what it reports, markers on holes, the vec NULL fast path protects every PTE, a whole THP stays huge, a part splits it, a guard marker gets the uffd-wp bit)", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "htlb_1g", about: "1 GiB hugetlb pages (issue 10): the program sets the 1 GiB pool to one page itself (sysfs hugepages-1048576kB; HUGETLB POOL NOT AVAILABLE, exit 4, if the host cannot allocate it) and needs that 1 GiB plus a few MiB: under pagelab a guest of 4 GiB (tests/tests/hugetlb.rs); MAP_HUGE_1GB private: reservation, ENOMEM for a second mapping, a 2 MiB length rounds up, EINVAL for MAP_FIXED at a 2 MiB- but not 1 GiB-aligned address and for a 2 MiB offset, smaps KernelPageSize 1048576, pagemap (262144 subpages' frames consecutive, sampled), partial munmap/mprotect EINVAL, partial DONTNEED a no-op; uffd-wp: a marker on the unpopulated page, a read maps it wp'd, one WP message per write at the page's start (exact with EXACT_ADDRESS), 2 MiB ranges EINVAL, un-protect of the whole 1 GiB", test_args: &[], bench_args: &[], expect: Expect::Exit(0) },
    Meta { name: "htlb_bench", about: "issue-10 benchmark kernels on 2 MiB hugetlb pages (the program sets the pool to SIZE_MB/2 pages and back to 0): UFFDIO_WRITEPROTECT protect+un-protect pairs over SIZE_MB (hugetlb_change_protection), first-touch hugetlb faults (argv: [--time] wp|fault SIZE_MB [REPS]; counts and the pool)", test_args: &["wp", "8", "2"], bench_args: &["wp", "1024", "20"], expect: Expect::Exit(0) },
    Meta { name: "uffd_fuzz", about: "issue 11's random mm + userfaultfd programs: `uffd_fuzz SEED [NOPS]` draws regions (anon, MADV_HUGEPAGE anon, memfd shared and private, shared anon), uffd features and NOPS ops (reads, writes, mmap/munmap/mremap/mprotect, madvise DONTNEED/REMOVE/PAGEOUT/HUGEPAGE/COLLAPSE/GUARD_*, fork with the child's view, REGISTER/UNREGISTER/WRITEPROTECT/COPY/ZEROPAGE/CONTINUE, pagemap, PAGEMAP_SCAN) from SEED, a handler thread resolving faults by a per-page policy; one line per op (tests/tests/fuzz.rs)", test_args: &["1"], bench_args: &["1", "200"], expect: Expect::Exit(0) },
];

/// The compiled executable of program `name` (a stem of `guest-progs/c/*.c`).
///
/// Panics, listing the known programs, if there is no such program.
pub fn path(name: &str) -> PathBuf {
    try_path(name).unwrap_or_else(|| panic!("no guest program {name:?}; known: {ALL:?}"))
}

/// Like [`path`], but `None` for an unknown program.
pub fn try_path(name: &str) -> Option<PathBuf> {
    ALL.contains(&name).then(|| PathBuf::from(BIN_DIR).join(name))
}

/// Metadata of program `name`. Panics if unknown.
pub fn meta(name: &str) -> &'static Meta {
    META.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no metadata for guest program {name:?}"))
}

/// Whether `name` was built with `-static-pie`.
pub fn is_static_pie(name: &str) -> bool {
    STATIC_PIE.contains(&name)
}

/// The arguments the tests use for `name` (empty for an unknown program).
pub fn test_args(name: &str) -> &'static [&'static str] {
    META.iter().find(|m| m.name == name).map_or(&[], |m| m.test_args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_is_built_and_described() {
        for name in ALL {
            assert!(path(name).is_file(), "{name}: {} missing", path(name).display());
            assert!(META.iter().any(|m| m.name == *name), "{name}: add a Meta entry in guest-progs/src/lib.rs");
        }
        for m in META {
            assert!(ALL.contains(&m.name), "Meta for {} but there is no c/{}.c", m.name, m.name);
        }
    }

    #[test]
    fn binaries_are_static_x86_64_elf() {
        for name in ALL {
            let bytes = std::fs::read(path(name)).unwrap();
            assert_eq!(&bytes[..4], b"\x7fELF", "{name}");
            assert_eq!(bytes[4], 2, "{name}: ELFCLASS64");
            assert_eq!(u16::from_le_bytes([bytes[18], bytes[19]]), 62, "{name}: EM_X86_64");
            let e_type = u16::from_le_bytes([bytes[16], bytes[17]]);
            assert_eq!(e_type, if is_static_pie(name) { 3 } else { 2 }, "{name}: ET_DYN iff static-pie");
        }
        assert!(is_static_pie("hello_pie") && !is_static_pie("hello"));
    }
}
