//! The few calls of the agent that need `unsafe`: blocking and waiting for signals (the init),
//! sending signals by number, and making a terminal the controlling one of a child.
#![allow(unsafe_code)]

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Blocks `signals` in the calling thread (and the threads it starts), so that
/// [`wait_signal`] receives them.
pub fn block_signals(signals: &[i32]) -> std::io::Result<()> {
    // SAFETY: a zeroed sigset_t is a valid value to pass to sigemptyset, which initializes it;
    // sigaddset and pthread_sigmask only read and write the set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

/// Waits for one of `signals` (which must be blocked) and returns its number.
pub fn wait_signal(signals: &[i32]) -> std::io::Result<i32> {
    // SAFETY: as in block_signals; sigwait writes the received number into `sig`.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        let mut sig: libc::c_int = 0;
        let rc = libc::sigwait(&set, &mut sig);
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        Ok(sig)
    }
}

/// Sends signal `signal` to process `pid` (a negative pid: a process group; -1: every process
/// the agent may signal).
pub fn kill(pid: i32, signal: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reaps one ended child, if any: its pid (`None` when none has ended or there are none).
pub fn reap_any() -> Option<i32> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes the status into our local integer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    (pid > 0).then_some(pid)
}

/// Makes `cmd`'s process the leader of a new session whose controlling terminal is its
/// stdin (which must be a terminal's slave end).
pub fn controlling_terminal(cmd: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and makes only two system
    // calls (setsid, ioctl), which are async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
}

/// Runs `f` in `cmd`'s process between fork and exec; `f` must be async-signal-safe (system
/// calls only, no allocation).
pub fn before_exec(cmd: &mut Command, f: fn() -> std::io::Result<()>) {
    // SAFETY: the caller promises `f` only makes async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(f);
    }
}
