//! Interval timers (Linux: kernel/time/itimer.c for ITIMER_REAL, and the process CPU
//! timers' check_cpu_itimer in kernel/time/posix-cpu-timers.c for ITIMER_VIRTUAL and
//! ITIMER_PROF): expiry sends the process SIGALRM, SIGVTALRM or SIGPROF and re-arms an
//! interval. The syscalls (setitimer, getitimer, alarm) are `syscall::signal`'s; the
//! scheduler calls `itimer_real_expired` when the armed timer fires and
//! `check_cpu_timers` as user time accrues.

use super::hw::Hw;
use super::sched::Timer;
use super::signal::{send_signal_process, SigInfo, SIGALRM, SIGPROF, SIGVTALRM};
use super::task::Tid;
use super::Kernel;

/// ITIMER_REAL expired for `tgid` (the timer armed for the deadline `gen`): SIGALRM to the
/// process, and the next expiry when it has an interval.
pub fn itimer_real_expired(k: &mut Kernel, hw: &mut Hw, tgid: Tid, gen: u64) {
    let now = k.now_ns();
    let Some(p) = k.procs.get_mut(&tgid) else { return };
    if p.zombie || p.itimers[0].value != gen || gen == 0 {
        return;
    }
    let it = &mut p.itimers[0];
    if it.interval != 0 {
        // Linux: hrtimer_forward_now — the next period after now.
        let mut next = it.value;
        while next <= now {
            next = next.saturating_add(it.interval);
        }
        it.value = next;
        k.add_timer(next, Timer::ITimerReal { tgid, gen: next });
    } else {
        it.value = 0;
    }
    send_signal_process(k, hw, tgid, SigInfo::kernel(SIGALRM));
}

/// Arms ITIMER_REAL of `tgid` to fire at `deadline` (0 disarms), dropping the timer armed
/// before.
pub fn arm_itimer_real(k: &mut Kernel, tgid: Tid, deadline: u64, interval: u64) {
    k.timers.retain(|_, t| !matches!(t, Timer::ITimerReal { tgid: x, .. } if *x == tgid));
    let Some(p) = k.procs.get_mut(&tgid) else { return };
    p.itimers[0] = super::task::ITimer { value: deadline, interval: if deadline == 0 { 0 } else { interval } };
    if deadline != 0 {
        k.add_timer(deadline, Timer::ITimerReal { tgid, gen: deadline });
    }
}

/// ITIMER_VIRTUAL / ITIMER_PROF of `tgid` against its user time (Linux: check_cpu_itimer).
pub fn check_cpu_timers(k: &mut Kernel, hw: &mut Hw, tgid: Tid) {
    for (i, sig) in [(1usize, SIGVTALRM), (2, SIGPROF)] {
        let Some(p) = k.procs.get_mut(&tgid) else { return };
        let now = p.utime;
        let it = &mut p.itimers[i];
        if it.value == 0 || now < it.value {
            continue;
        }
        it.value = if it.interval != 0 { it.value.saturating_add(it.interval) } else { 0 };
        send_signal_process(k, hw, tgid, SigInfo::kernel(sig));
    }
}
