//! Thread and process exit (Linux: kernel/exit.c): do_exit for one thread, do_group_exit
//! for a thread group, exit_notify (zombie, SIGCHLD to the parent, reparenting), and the
//! reaping that wait4/waitid (in `syscall::wait`) and auto-reap perform.
//!
//! Exited threads leave `Kernel::tasks` at once; the thread group lives on in
//! `Kernel::procs` as a zombie, holding its wait status, until it is reaped.

use super::hw::Hw;
use super::signal::{self, SigInfo};
use super::task::{TaskState, Tid, WaitKey};
use super::Kernel;
use crate::Outcome;

/// Linux's wait status word for an outcome: code << 8, or the signal, with 0x80 only when
/// a core file was written. pagelab's RLIMIT_CORE is 0 (what getrlimit reports, and what
/// the test harness gives native runs), so do_coredump never writes one and the bit stays
/// clear even for SIGSEGV or SIGABRT; `Outcome::Signaled::core` only says the default
/// action was to dump.
pub fn status_word(o: &Outcome) -> i32 {
    match o {
        Outcome::Exited(c) => (c & 0xff) << 8,
        Outcome::Signaled { sig, .. } => *sig,
        Outcome::InstrLimit | Outcome::Deadlock { .. } => signal::SIGKILL,
    }
}

pub const CLD_EXITED: i32 = 1;
pub const CLD_KILLED: i32 = 2;
pub const CLD_DUMPED: i32 = 3;
pub const CLD_TRAPPED: i32 = 4;
pub const CLD_STOPPED: i32 = 5;
pub const CLD_CONTINUED: i32 = 6;

/// exit(2): this thread only. The group ends with the last thread, with this status.
pub fn do_exit(k: &mut Kernel, hw: &mut Hw, tid: Tid, code: i32) {
    let tgid = k.tasks[&tid].tgid;
    let last = k.procs[&tgid].threads.iter().filter(|t| k.tasks.contains_key(t)).count() == 1;
    if last && k.procs[&tgid].exit_status.is_none() {
        let o = Outcome::Exited(code & 0xff);
        k.procs.get_mut(&tgid).unwrap().exit_status = Some(status_word(&o));
        if tgid == k.init_tgid && k.outcome.is_none() {
            k.outcome = Some(o);
        }
    }
    exit_thread(k, hw, tid, true);
    if last {
        exit_notify(k, hw, tgid);
    }
}

/// exit_group(2) or a fatal signal: every thread of the group goes.
pub fn do_group_exit(k: &mut Kernel, hw: &mut Hw, tid: Tid, outcome: Outcome) {
    let Some(t) = k.tasks.get(&tid) else { return };
    let tgid = t.tgid;
    let p = k.procs.get_mut(&tgid).unwrap();
    if p.exit_status.is_none() {
        p.exit_status = Some(status_word(&outcome));
        if tgid == k.init_tgid && k.outcome.is_none() {
            k.outcome = Some(outcome);
        }
    }
    let members: Vec<Tid> = k.procs[&tgid].threads.iter().copied().filter(|t| k.tasks.contains_key(t)).collect();
    for t in members {
        exit_thread(k, hw, t, false);
    }
    exit_notify(k, hw, tgid);
    let _ = k.flush_streams();
}

/// Takes one thread off the machine: CLEARTID (when the mm lives on), vfork release,
/// run-queue and vCPU slots, timers, its share of the mm and of the descriptor table.
fn exit_thread(k: &mut Kernel, hw: &mut Hw, tid: Tid, clear_tid: bool) {
    let Some(t) = k.tasks.get(&tid) else { return };
    let (mm_id, ctid, vfork_parent) = (t.mm, t.clear_child_tid, t.vfork_parent);
    if t.tid == t.tgid {
        let caps = t.caps;
        if let Some(p) = k.procs.get_mut(&tid) {
            p.leader_caps = caps;
        }
    }
    tracing::debug!(target: "pagelab::sched", tid, "exit");
    super::syscall::futex::exit_robust_list(k, hw, tid);
    // Linux's mm_release: only when another user of the mm can see the word.
    if clear_tid && ctid != 0 && k.mms[mm_id].as_ref().is_some_and(|m| m.users > 1) && k.vcpu_of(tid) == Some(hw.cur) {
        let mm = k.mms[mm_id].as_mut().unwrap();
        if super::uaccess::write_u32(hw, mm, ctid, 0).is_ok() {
            let key = super::syscall::futex::futex_key(k, mm_id, ctid, false);
            super::syscall::futex::futex_wake(k, key, 1, u32::MAX);
        }
    }
    if vfork_parent.is_some() {
        k.wake(WaitKey::VforkDone(tid));
    }
    // Drop any wait it was in (futex queues, timers).
    if k.tasks[&tid].state == TaskState::Blocked {
        k.wake_task(tid, super::task::WakeReason::Event);
    }
    k.runq.retain(|&x| x != tid);
    for r in k.running.iter_mut() {
        if *r == Some(tid) {
            *r = None;
        }
    }
    k.tasks.remove(&tid);
    let mm = k.mms[mm_id].as_mut().expect("mm of an exiting task");
    mm.users -= 1;
    if mm.users == 0 {
        let mut mm = k.mms[mm_id].take().unwrap();
        super::mm::mmap::exit_mmap(&mut mm, hw);
        // No vCPU may keep translations of the freed tables.
        let cr3 = mm.pml4.as_u64();
        for v in hw.vcpus.iter_mut() {
            if v.state.ctl.cr3 == cr3 {
                v.tlb.flush_all();
            }
        }
        hw.vcpu_mm.iter_mut().for_each(|m| {
            if *m == Some(mm_id) {
                *m = None
            }
        });
    }
    k.drain_deferred_wakes();
}

/// The last thread of `tgid` is gone: become a zombie, tell the parent, hand the children
/// to init (which reaps them), and reap at once when nobody will wait.
fn exit_notify(k: &mut Kernel, hw: &mut Hw, tgid: Tid) {
    let (ppid, status, exit_signal) = {
        let p = k.procs.get_mut(&tgid).unwrap();
        p.zombie = true;
        (p.ppid, p.exit_status.unwrap_or(0), p.exit_signal)
    };
    // Reparent children to init (pid 1, outside the machine): zombies are reaped now, the
    // living when they exit.
    let children: Vec<Tid> = k.procs.values().filter(|c| c.ppid == tgid).map(|c| c.tgid).collect();
    for c in children {
        k.procs.get_mut(&c).unwrap().ppid = 1;
        if k.procs[&c].zombie {
            release_task(k, c);
        }
    }
    let parent_alive = k.procs.get(&ppid).is_some_and(|p| !p.zombie);
    if !parent_alive {
        release_task(k, tgid);
        return;
    }
    let (code, st) = if status & 0x7f == 0 {
        (CLD_EXITED, (status >> 8) & 0xff)
    } else if status & 0x80 != 0 {
        (CLD_DUMPED, status & 0x7f)
    } else {
        (CLD_KILLED, status & 0x7f)
    };
    let utime = k.procs[&tgid].utime;
    let info = SigInfo { signo: exit_signal, code, pid: tgid, status: st, utime: utime / 10_000_000, ..Default::default() };
    k.procs.get_mut(&tgid).unwrap().last_siginfo = Some(info);
    // A parent that ignores SIGCHLD (SIG_IGN or SA_NOCLDWAIT) never sees zombies.
    let autoreap = signal::ignores_children(k, ppid);
    if exit_signal != 0 {
        signal::send_signal_process(k, hw, ppid, info);
    }
    if autoreap {
        release_task(k, tgid);
    }
    k.wake(WaitKey::Child(ppid));
}

/// Removes a zombie for good (its user time goes to the parent's children time).
pub fn release_task(k: &mut Kernel, tgid: Tid) {
    if let Some(p) = k.procs.remove(&tgid) {
        if let Some(pp) = k.procs.get_mut(&p.ppid) {
            pp.cutime += p.utime + p.cutime;
            pp.cmin_flt += p.min_flt + p.cmin_flt;
            pp.cmaj_flt += p.maj_flt + p.cmaj_flt;
        }
    }
}

/// At the end of a run: every zombie goes.
pub fn reap_all(k: &mut Kernel, _hw: &mut Hw) {
    let z: Vec<Tid> = k.procs.values().filter(|p| p.zombie).map(|p| p.tgid).collect();
    for t in z {
        release_task(k, t);
    }
}
