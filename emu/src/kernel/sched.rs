//! Blocking, waking and timers (Linux: kernel/sched/ wait queues and hrtimers, in the
//! small). The run loop in `machine` decides which runnable task goes on which vCPU; this
//! module keeps the states consistent.
//!
//! - `block_current` parks the task on the current vCPU (its registers are saved; a
//!   retried wait has RIP rewound onto its SYSCALL).
//! - `wake` / `wake_task` make parked tasks runnable; `complete` also sets their RAX.
//! - Timers fire at the run loop's round boundaries, in deadline order; when every thread
//!   sleeps the loop jumps virtual time to the next one.

use super::errno::Errno;
use super::hw::Hw;
use super::task::{Blocked, TaskState, Tid, WaitKey, WakeReason};
use super::Kernel;
use crate::cpu::CpuState;

/// What an expiring timer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Wake a blocked task whose wait has a deadline (if it is still that wait).
    Wake { tid: Tid, seq: u64 },
    /// ITIMER_REAL of a thread group (SIGALRM); `gen` drops stale timers after re-arming.
    ITimerReal { tgid: Tid, gen: u64 },
}

impl Kernel {
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A task's registers, wherever they are: on its vCPU while it runs, else saved.
    pub fn regs_mut<'a>(&'a mut self, hw: &'a mut Hw, tid: Tid) -> &'a mut CpuState {
        match self.running.iter().position(|r| *r == Some(tid)) {
            Some(i) => &mut hw.vcpus[i].state,
            None => &mut self.tasks.get_mut(&tid).expect("regs of a live task").regs,
        }
    }

    /// The vCPU a task runs on, if any.
    pub fn vcpu_of(&self, tid: Tid) -> Option<usize> {
        self.running.iter().position(|r| *r == Some(tid))
    }

    /// Puts a runnable task at the back of the run queue (unless it is on a vCPU already),
    /// ready from the current kernel time on.
    pub fn enqueue(&mut self, tid: Tid) {
        if self.vcpu_of(tid).is_none() && !self.runq.contains(&tid) {
            if let Some(t) = self.tasks.get_mut(&tid) {
                t.ready_at = self.now;
            }
            self.runq.push_back(tid);
        }
    }

    /// Parks the task running on the current vCPU. A retried wait rewinds RIP onto the
    /// SYSCALL instruction and puts the syscall number back in RAX.
    pub fn block_current(&mut self, hw: &mut Hw, mut b: Blocked, restart: Option<super::task::Restart>) {
        let tid = self.current(hw);
        let cur = hw.cur;
        let mut regs = hw.vcpus[cur].state.clone();
        if b.retry {
            regs.rip = regs.rip.wrapping_sub(2);
            regs.gpr[crate::cpu::reg::RAX] = self.tasks[&tid].orig_rax;
        }
        b.seq = self.next_seq();
        if let Some(d) = b.deadline {
            self.timers.insert((d, b.seq), Timer::Wake { tid, seq: b.seq });
        }
        tracing::debug!(target: "pagelab::sched", tid, what = %b.what, deadline = ?b.deadline, "block");
        let t = self.tasks.get_mut(&tid).unwrap();
        t.regs = regs;
        t.state = TaskState::Blocked;
        t.blocked = Some(b);
        t.restart = restart;
        self.running[cur] = None;
    }

    /// Wakes one parked task. A retried wait re-executes its syscall with `reason` in its
    /// `Restart`; a completed wait gets -ETIMEDOUT or its `on_signal` errno in RAX when
    /// woken by a timeout or a signal (an `Event` wake of a completed wait is `complete`).
    pub fn wake_task(&mut self, tid: Tid, reason: WakeReason) -> bool {
        let Some(t) = self.tasks.get_mut(&tid) else { return false };
        if t.state != TaskState::Blocked {
            return false;
        }
        let b = t.blocked.take().unwrap();
        if reason == WakeReason::Signal && !b.interruptible {
            t.blocked = Some(b);
            return false;
        }
        t.state = TaskState::Runnable;
        if b.retry {
            if let Some(r) = t.restart.as_mut() {
                r.reason = Some(reason);
            }
        } else if matches!(b.what, super::task::WaitWhat::Userfault { .. }) {
            // A user-mode userfault: the faulting instruction re-executes; nothing to
            // complete. Resolved (not interrupted), the retried access completes the fault
            // (counted by mm_account_fault).
            t.fault_retried = reason == WakeReason::Event;
        } else {
            let rax = match reason {
                WakeReason::Event => None,
                WakeReason::Timeout => Some(Errno::ETIMEDOUT),
                WakeReason::Signal => Some(b.on_signal),
            };
            if let Some(e) = rax {
                t.regs.gpr[crate::cpu::reg::RAX] = (-(e.0 as i64)) as u64;
            }
        }
        if let Some(d) = b.deadline {
            self.timers.remove(&(d, b.seq));
        }
        for k in &b.on {
            if let WaitKey::Futex(fk) = k {
                if let Some(q) = self.futexes.get_mut(fk) {
                    q.retain(|(w, _)| *w != tid);
                    if q.is_empty() {
                        self.futexes.remove(fk);
                    }
                }
            }
        }
        if reason != WakeReason::Event && matches!(b.what, super::task::WaitWhat::Userfault { .. }) {
            // Woken by a signal: the waiter leaves its userfaultfd's queues.
            super::uffd::waiter_woken(self, &b.on);
        }
        tracing::debug!(target: "pagelab::sched", tid, ?reason, "wake");
        self.enqueue(tid);
        true
    }

    /// Completes a parked wait from the outside: RAX = `rax`, and the task runs on.
    pub fn complete(&mut self, tid: Tid, rax: u64) {
        if let Some(t) = self.tasks.get_mut(&tid) {
            if t.state == TaskState::Blocked {
                t.regs.gpr[crate::cpu::reg::RAX] = rax;
                let retry = t.blocked.as_ref().is_some_and(|b| b.retry);
                debug_assert!(!retry, "complete() on a retried wait");
                self.wake_task(tid, WakeReason::Event);
            }
        }
    }

    /// Wakes every task parked on `key`, in tid order.
    pub fn wake(&mut self, key: WaitKey) {
        let tids: Vec<Tid> = self
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Blocked && t.blocked.as_ref().is_some_and(|b| b.on.contains(&key)))
            .map(|t| t.tid)
            .collect();
        for t in tids {
            self.wake_task(t, WakeReason::Event);
        }
    }

    /// Wake keys raised by dropped objects.
    pub fn drain_deferred_wakes(&mut self) {
        loop {
            let keys: Vec<WaitKey> = std::mem::take(&mut *self.deferred_wakes.borrow_mut());
            if keys.is_empty() {
                return;
            }
            for k in keys {
                self.wake(k);
            }
        }
    }

    pub fn add_timer(&mut self, deadline: u64, t: Timer) -> u64 {
        let seq = self.next_seq();
        self.timers.insert((deadline, seq), t);
        seq
    }

    /// The earliest armed deadline.
    pub fn next_timer(&self) -> Option<u64> {
        self.timers.keys().next().map(|(d, _)| *d)
    }

    /// Fires every timer due at `now`.
    pub fn fire_timers(&mut self, hw: &mut Hw) {
        while let Some((&(d, seq), &t)) = self.timers.iter().next() {
            if d > self.now {
                break;
            }
            self.timers.remove(&(d, seq));
            match t {
                Timer::Wake { tid, seq } => {
                    if self.tasks.get(&tid).and_then(|t| t.blocked.as_ref()).is_some_and(|b| b.seq == seq) {
                        self.wake_task(tid, WakeReason::Timeout);
                    }
                }
                Timer::ITimerReal { tgid, gen } => super::itimer::itimer_real_expired(self, hw, tgid, gen),
            }
        }
    }

    /// Whether any task can run (queued or on a vCPU).
    pub fn anything_runnable(&self) -> bool {
        !self.runq.is_empty() || self.running.iter().any(|r| r.is_some())
    }

    /// Accounts `n` instructions of user time to a thread and its group, and runs the
    /// group's CPU-time timers (ITIMER_VIRTUAL, ITIMER_PROF).
    pub fn account(&mut self, hw: &mut Hw, tid: Tid, n: u64) {
        let Some(t) = self.tasks.get_mut(&tid) else { return };
        t.utime += n;
        let tgid = t.tgid;
        if let Some(p) = self.procs.get_mut(&tgid) {
            p.utime += n;
            if p.itimers[1].value != 0 || p.itimers[2].value != 0 {
                super::itimer::check_cpu_timers(self, hw, tgid);
            }
        }
    }

    /// The deadlock report: one line per thread.
    pub fn deadlock_report(&self) -> String {
        let mut s = String::from("every thread is blocked and no timer is pending\n");
        for t in self.tasks.values() {
            if t.state == TaskState::Zombie {
                continue;
            }
            let what = match (&t.state, &t.blocked) {
                (TaskState::Blocked, Some(b)) => format!("blocked in {}", b.what),
                (TaskState::Stopped, _) => "stopped".to_string(),
                (st, _) => format!("{st:?}"),
            };
            s.push_str(&format!("  tid {} (pid {}): {what}, rip {:#x}\n", t.tid, t.tgid, t.regs.rip));
        }
        s
    }
}
