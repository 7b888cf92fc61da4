//! Signal delivery, the x86-64 side (Linux: arch/x86/kernel/signal.c and signal_64.c): the
//! loop that runs before a task returns to user mode, the rt_sigframe a handler starts
//! with, and rt_sigreturn.
//!
//! - `exit_to_user` (Linux: arch_do_signal_or_restart) is run by the run loop after every
//!   exit of a task still on its vCPU, and when a task is put on a vCPU. It takes signals
//!   from the generic `signal::get_signal` one at a time and runs a handler for each that
//!   has one (`handle_signal` → `setup_rt_frame`); the default actions are get_signal's.
//! - Syscall restart: a syscall interrupted by a signal returns one of the internal
//!   -ERESTART* codes; with a handler, `handle_signal` turns it into -EINTR or rewinds RIP
//!   onto the SYSCALL instruction (SA_RESTART); without one, `restart_without_handler`
//!   re-executes the call. `Task::orig_rax` is the syscall number while the task is
//!   returning from a syscall and `u64::MAX` otherwise (Linux: regs->orig_ax == -1).
//! - The frame (`setup_rt_frame`, `restore_rt_frame`): struct rt_sigframe as x86-64 lays
//!   it out — pretcode, ucontext (sigcontext, the FXSAVE image, the mask), siginfo — below
//!   the red zone or on the alternate stack.

use crate::cpu::reg::*;
use crate::kernel::hw::Hw;
use crate::kernel::signal::{
    do_sigaltstack, do_signal_stop, force_sig_info, force_sigsegv, get_signal, on_sig_stack, on_sig_stack_raw, sas_ss_flags, set_current_blocked, signal_delivered, siginfo_bytes, stop_current, Delivery, SigInfo, NSIG, SA_ONSTACK, SA_RESTART, SA_RESTORER, SA_SIGINFO, SIGSEGV,
};
use crate::kernel::task::{SigAction, Task, Tid};
use crate::kernel::Kernel;

/// Before the current vCPU's task returns to user mode: deliver pending signals (run a
/// handler, apply the default action), apply the syscall restart rules, and put back a
/// mask saved by sigsuspend (Linux: arch_do_signal_or_restart).
pub fn exit_to_user(k: &mut Kernel, hw: &mut Hw) {
    let Some(tid) = k.running[hw.cur] else { return };
    // A signal per iteration; each handler frame stacks on the previous one.
    for _ in 0..=NSIG {
        if k.running[hw.cur] != Some(tid) {
            return;
        }
        match get_signal(k, hw, tid) {
            Delivery::None => break,
            Delivery::Ignored => {}
            Delivery::Handler(info, act) => handle_signal(k, hw, tid, &info, &act),
            Delivery::Stop(sig) => {
                restart_without_handler(k, hw, tid);
                match sig {
                    Some(sig) => do_signal_stop(k, hw, sig),
                    None => stop_current(k, hw),
                }
                return;
            }
            Delivery::Exited => return,
        }
    }
    restart_without_handler(k, hw, tid);
    let t = k.tasks.get_mut(&tid).unwrap();
    if let Some(m) = t.saved_sigmask.take() {
        set_current_blocked(k, tid, m);
    }
}

fn syscall_error(rax: u64) -> Option<crate::kernel::errno::Errno> {
    let v = rax as i64;
    (-4095..0).contains(&v).then(|| crate::kernel::errno::Errno(-v as i32))
}

/// Restart rules when no handler runs: every -ERESTART* code re-executes the syscall
/// (RIP back onto SYSCALL, RAX = the number again). ERESTART_RESTARTBLOCK re-executes the
/// call itself rather than restart_syscall.
fn restart_without_handler(k: &mut Kernel, hw: &mut Hw, tid: Tid) {
    use crate::kernel::errno::Errno;
    let t = k.tasks.get_mut(&tid).unwrap();
    let nr = std::mem::replace(&mut t.orig_rax, u64::MAX);
    if nr == u64::MAX {
        return;
    }
    let r = &mut hw.vcpus[hw.cur].state;
    if let Some(e) = syscall_error(r.gpr[RAX]) {
        if matches!(e, Errno::ERESTARTSYS | Errno::ERESTARTNOHAND | Errno::ERESTARTNOINTR | Errno::ERESTART_RESTARTBLOCK) {
            r.gpr[RAX] = nr;
            r.rip = r.rip.wrapping_sub(2);
        }
    }
}

/// Runs a handler (Linux: handle_signal): the restart rules for a handler, the frame, the
/// handler's mask; a frame that cannot be written gets SIGSEGV instead (force_sigsegv).
fn handle_signal(k: &mut Kernel, hw: &mut Hw, tid: Tid, info: &SigInfo, act: &SigAction) {
    use crate::kernel::errno::Errno;
    let sig = info.signo;
    let nr = std::mem::replace(&mut k.tasks.get_mut(&tid).unwrap().orig_rax, u64::MAX);
    if nr != u64::MAX {
        let r = &mut hw.vcpus[hw.cur].state;
        match syscall_error(r.gpr[RAX]) {
            Some(Errno::ERESTART_RESTARTBLOCK) | Some(Errno::ERESTARTNOHAND) => r.gpr[RAX] = (-(Errno::EINTR.0 as i64)) as u64,
            Some(Errno::ERESTARTSYS) if act.flags & SA_RESTART == 0 => r.gpr[RAX] = (-(Errno::EINTR.0 as i64)) as u64,
            Some(Errno::ERESTARTSYS) | Some(Errno::ERESTARTNOINTR) => {
                r.gpr[RAX] = nr;
                r.rip = r.rip.wrapping_sub(2);
            }
            _ => {}
        }
    }
    // Linux: signal_setup_done.
    if setup_rt_frame(k, hw, tid, info, act).is_err() {
        tracing::debug!(target: "pagelab::signal", tid, sig, "cannot write the signal frame: SIGSEGV");
        force_sigsegv(k, hw, tid, sig);
        return;
    }
    signal_delivered(k, tid, sig, act);
}

/// sizeof(struct rt_sigframe) on x86-64: pretcode, ucontext (304), siginfo (128).
const RT_SIGFRAME_SIZE: u64 = 440;
const UC_OFF: u64 = 8;
const MCONTEXT_OFF: u64 = UC_OFF + 40;
const SIGMASK_OFF: u64 = UC_OFF + 296;
const SIGINFO_OFF: u64 = UC_OFF + 304;
/// FXSAVE image size (no XSAVE in our CPUID, so no extended state after it).
const FPSTATE_SIZE: u64 = 512;
/// uc_flags: UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS (no UC_FP_XSTATE without XSAVE).
const UC_FLAGS: u64 = 2 | 4;
const USER_CS: u16 = 0x33;
const USER_DS: u16 = 0x2b;
/// The RFLAGS bits rt_sigreturn takes from the frame (Linux: FIX_EFLAGS).
const FIX_EFLAGS: u64 = 0x4_0000 | 0x800 | 0x400 | 0x100 | 0x80 | 0x40 | 0x10 | 0x4 | 0x1 | 0x1_0000;

/// Where the frame and the fpstate go (Linux: get_sigframe): below the red zone, or at the
/// top of the alternate stack for SA_ONSTACK; the fpstate 64-byte aligned, the frame so
/// that the handler starts as if called (RSP + 8 16-byte aligned). None when it would
/// overflow the alternate stack.
fn get_sigframe(t: &Task, rsp: u64, act: &SigAction) -> Option<(u64, u64)> {
    let nested = on_sig_stack(t, rsp);
    let mut sp = rsp.wrapping_sub(128);
    let mut entering = false;
    if act.flags & SA_ONSTACK != 0 && sas_ss_flags(t, sp) == 0 {
        sp = t.altstack.sp.wrapping_add(t.altstack.size);
        entering = true;
    }
    sp = sp.wrapping_sub(FPSTATE_SIZE) & !63;
    let fp = sp;
    sp = (sp.wrapping_sub(RT_SIGFRAME_SIZE) & !15).wrapping_sub(8);
    if (nested || entering) && !on_sig_stack_raw(t, sp) {
        return None;
    }
    Some((sp, fp))
}

/// Writes the rt_sigframe and points the registers at the handler (Linux:
/// x64_setup_rt_frame). Without SA_SIGINFO the siginfo area is left unwritten, as Linux
/// does.
fn setup_rt_frame(k: &mut Kernel, hw: &mut Hw, tid: Tid, info: &SigInfo, act: &SigAction) -> Result<(), ()> {
    if act.flags & SA_RESTORER == 0 {
        return Err(());
    }
    let t = &k.tasks[&tid];
    let regs = hw.vcpus[hw.cur].state.clone();
    let (frame, fp) = get_sigframe(t, regs.gpr[RSP], act).ok_or(())?;
    let set = t.saved_sigmask.unwrap_or(t.sigmask);
    let mut b = vec![0u8; SIGINFO_OFF as usize];
    let put = |b: &mut Vec<u8>, o: u64, v: u64| b[o as usize..o as usize + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut b, 0, act.restorer);
    put(&mut b, UC_OFF, UC_FLAGS);
    put(&mut b, UC_OFF + 8, 0);
    // uc_stack (Linux: unsafe_save_altstack): the flags as seen from the interrupted RSP,
    // so SS_AUTODISARM is not carried into the frame and rt_sigreturn does not re-arm it.
    put(&mut b, UC_OFF + 16, t.altstack.sp);
    put(&mut b, UC_OFF + 24, sas_ss_flags(t, regs.gpr[RSP]) as u64);
    put(&mut b, UC_OFF + 32, t.altstack.size);
    let m = MCONTEXT_OFF;
    let g = &regs.gpr;
    for (i, r) in [R8, R9, R10, R11, R12, R13, R14, R15, RDI, RSI, RBP, RBX, RDX, RAX, RCX, RSP].iter().enumerate() {
        put(&mut b, m + 8 * i as u64, g[*r]);
    }
    put(&mut b, m + 128, regs.rip);
    put(&mut b, m + 136, regs.rflags);
    // cs, gs, fs, ss.
    let segs = (USER_CS as u64) | ((USER_DS as u64) << 48);
    put(&mut b, m + 144, segs);
    put(&mut b, m + 152, t.trap.error_code);
    put(&mut b, m + 160, t.trap.trap_nr);
    put(&mut b, m + 168, set);
    put(&mut b, m + 176, t.trap.cr2);
    put(&mut b, m + 184, fp);
    put(&mut b, SIGMASK_OFF, set);
    let mut fx = crate::cpu::sse::fxsave_image(&regs);
    fx[416..].fill(0);
    let mm_id = t.mm;
    let mm = k.mms[mm_id].as_mut().ok_or(())?;
    crate::kernel::uaccess::copy_to_user(hw, mm, fp, &fx).map_err(|_| ())?;
    crate::kernel::uaccess::copy_to_user(hw, mm, frame, &b).map_err(|_| ())?;
    if act.flags & SA_SIGINFO != 0 {
        crate::kernel::uaccess::copy_to_user(hw, mm, frame + SIGINFO_OFF, &siginfo_bytes(info)).map_err(|_| ())?;
    }
    let r = &mut hw.vcpus[hw.cur].state;
    r.gpr[RDI] = info.signo as u64;
    r.gpr[RAX] = 0;
    r.gpr[RSI] = frame + SIGINFO_OFF;
    r.gpr[RDX] = frame + UC_OFF;
    r.rip = act.handler;
    r.gpr[RSP] = frame;
    r.rflags &= !(crate::cpu::flags::DF | crate::cpu::flags::TF | 0x1_0000);
    // The handler starts with a fresh FPU (Linux: fpu__clear_user_states).
    r.x87 = crate::cpu::X87::default();
    r.mxcsr = 0x1f80;
    r.xmm = [0; 16];
    Ok(())
}

/// rt_sigreturn: restores the registers, FPU state, mask and alternate stack saved in the
/// frame at RSP - 8 (Linux: SYSCALL_DEFINE0(rt_sigreturn)). A bad frame gets SIGSEGV.
pub fn sys_rt_sigreturn(k: &mut Kernel, hw: &mut Hw, tid: Tid) {
    if restore_rt_frame(k, hw, tid).is_err() {
        tracing::debug!(target: "pagelab::signal", tid, "bad rt_sigreturn frame: SIGSEGV");
        force_sig_info(k, hw, tid, SigInfo::kernel(SIGSEGV), false);
    }
}

fn restore_rt_frame(k: &mut Kernel, hw: &mut Hw, tid: Tid) -> Result<(), ()> {
    let frame = hw.vcpus[hw.cur].state.gpr[RSP].wrapping_sub(8);
    let mm_id = k.tasks[&tid].mm;
    let mut b = vec![0u8; SIGINFO_OFF as usize];
    {
        let mm = k.mms[mm_id].as_mut().ok_or(())?;
        crate::kernel::uaccess::copy_from_user(hw, mm, frame, &mut b).map_err(|_| ())?;
    }
    let get = |o: u64| u64::from_le_bytes(b[o as usize..o as usize + 8].try_into().unwrap());
    set_current_blocked(k, tid, get(SIGMASK_OFF));
    // "Disable syscall checks": the restored RAX is a value, not a restart code.
    k.tasks.get_mut(&tid).unwrap().orig_rax = u64::MAX;
    let m = MCONTEXT_OFF;
    let fp = get(m + 184);
    let mut fx = None;
    if fp != 0 {
        let mut img = [0u8; 512];
        let mm = k.mms[mm_id].as_mut().ok_or(())?;
        crate::kernel::uaccess::copy_from_user(hw, mm, fp, &mut img).map_err(|_| ())?;
        fx = Some(img);
    }
    let r = &mut hw.vcpus[hw.cur].state;
    for (i, reg) in [R8, R9, R10, R11, R12, R13, R14, R15, RDI, RSI, RBP, RBX, RDX, RAX, RCX, RSP].iter().enumerate() {
        r.gpr[*reg] = get(m + 8 * i as u64);
    }
    r.rip = get(m + 128);
    r.rflags = (r.rflags & !FIX_EFLAGS) | (get(m + 136) & FIX_EFLAGS);
    match fx {
        Some(img) => crate::cpu::sse::fxrstor_image(r, &img).map_err(|_| ())?,
        None => {
            r.x87 = crate::cpu::X87::default();
            r.mxcsr = 0x1f80;
            r.xmm = [0; 16];
        }
    }
    // uc_stack: Linux's restore_altstack, whose errors other than EFAULT are ignored.
    let (ss_sp, ss_flags, ss_size) = (get(UC_OFF + 16), get(UC_OFF + 24) as u32, get(UC_OFF + 32));
    let sp = r.gpr[RSP];
    let _ = do_sigaltstack(k.tasks.get_mut(&tid).unwrap(), Some((ss_sp, ss_flags, ss_size)), sp);
    Ok(())
}
