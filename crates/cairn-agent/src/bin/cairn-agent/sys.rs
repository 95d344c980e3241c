//! The few calls of the agent that need `unsafe`: blocking and waiting for signals (the init),
//! sending signals by number, starting processes (`spawn`, a vfork-style clone) and waiting
//! for them.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

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

/// What [`spawn`] starts: every string already NUL-terminated and checked, so that the child
/// allocates nothing.
pub struct Spawn<'a> {
    /// The program's path (not searched for: the caller resolved it).
    pub program: &'a CStr,
    pub argv: &'a [CString],
    /// `NAME=value` strings.
    pub envp: &'a [CString],
    pub cwd: &'a CStr,
    /// What becomes its stdin, stdout and stderr.
    pub stdio: [BorrowedFd<'a>; 3],
    /// `(uid, gid)` to switch to.
    pub user: Option<(u32, Option<u32>)>,
    /// Whether its stdin is a terminal's slave end to make the controlling terminal of a new
    /// session.
    pub terminal: bool,
    /// Runs in the child just before `exec` (system calls only, no allocation).
    pub before_exec: fn() -> std::io::Result<()>,
}

/// The child's half of [`spawn`]: plain pointers into memory the parent keeps alive and does
/// not touch until the child has called `exec` or ended (`CLONE_VFORK`).
struct ChildArgs {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdio: [libc::c_int; 3],
    user: Option<(u32, Option<u32>)>,
    terminal: bool,
    before_exec: fn() -> std::io::Result<()>,
    /// Written by the child when it cannot `exec`: the reason's errno.
    errno: libc::c_int,
}

/// The child's stack: it makes a few system calls, then `exec`.
const CHILD_STACK: usize = 64 * 1024;

/// Starts a process the way `posix_spawn` does, with `clone(CLONE_VM | CLONE_VFORK)`: the child
/// borrows the agent's memory until it calls `exec` instead of copying its address space (a
/// `fork` of the many-threaded agent costs gVisor several milliseconds per command). Returns
/// its pid once it runs its program, or why it could not.
pub fn spawn(s: &Spawn<'_>) -> std::io::Result<i32> {
    let argv: Vec<*const libc::c_char> = s
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = s
        .envp
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let mut args = ChildArgs {
        program: s.program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: s.cwd.as_ptr(),
        stdio: s.stdio.map(|fd| fd.as_raw_fd()),
        user: s.user,
        terminal: s.terminal,
        before_exec: s.before_exec,
        errno: 0,
    };
    let mut stack = vec![0u8; CHILD_STACK];
    // SAFETY: the stack grows down from its (16-byte aligned) top, inside `stack`, which
    // outlives the child's use of it: with CLONE_VFORK, clone returns only once the child
    // has called exec or ended. Every signal is blocked around the clone, so no handler of
    // the agent's runs on the child's stack over shared memory; the child resets the
    // dispositions the agent changed before unblocking them. `args` and what it points to
    // live until clone returns.
    unsafe {
        let top = stack.as_mut_ptr().add(CHILD_STACK);
        let top = top.sub(top as usize % 16);
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(
            child,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut args as *mut ChildArgs).cast(),
        );
        let clone_errno = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(clone_errno);
        }
        let errno = std::ptr::read_volatile(&args.errno);
        if errno != 0 {
            // It ended without running its program: reaped here, its error reported.
            let _ = wait_pid(pid);
            return Err(std::io::Error::from_raw_os_error(errno));
        }
        Ok(pid)
    }
}

/// The child of [`spawn`], on its own stack in the agent's memory: sets itself up and calls
/// exec; on failure it leaves the errno in its arguments and ends.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` spawn passed, alive until the child execs or ends.
    unsafe {
        let a = &mut *arg.cast::<ChildArgs>();
        let errno = prepare_and_exec(a);
        std::ptr::write_volatile(&mut a.errno, if errno == 0 { libc::EINVAL } else { errno });
        libc::_exit(127)
    }
}

/// The errno of the last failed call (in the child: its parent thread's, which is stopped).
fn errno() -> libc::c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// In the child: signals as a fresh process has them, its stdio, session, user and
/// directory, then exec. Returns only on failure, with the errno.
///
/// # Safety
/// Only from [`child`]: async-signal-safe calls, no allocation.
unsafe fn prepare_and_exec(a: &ChildArgs) -> libc::c_int {
    // SAFETY: system calls on integers and on the NUL-terminated strings and arrays spawn
    // prepared.
    unsafe {
        // The agent ignores SIGPIPE (as every Rust program does) and handles SIGSEGV and
        // SIGBUS; its programs start with the defaults, and with no signal blocked.
        for sig in [libc::SIGPIPE, libc::SIGSEGV, libc::SIGBUS] {
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
            return errno();
        }
        for (target, &fd) in (0..).zip(a.stdio.iter()) {
            let rc = if fd == target {
                libc::fcntl(fd, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, target)
            };
            if rc < 0 {
                return errno();
            }
        }
        if a.terminal && (libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0) {
            return errno();
        }
        // Raw system calls, not glibc's wrappers: those would apply the change to every
        // thread of the process they believe they are in (the agent's, whose memory the
        // child shares), and wait for threads that are not the child's.
        if let Some((uid, gid)) = a.user {
            if libc::getuid() == 0
                && libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) < 0
            {
                return errno();
            }
            if let Some(gid) = gid {
                if libc::syscall(libc::SYS_setgid, gid) < 0 {
                    return errno();
                }
            }
            if libc::syscall(libc::SYS_setuid, uid) < 0 {
                return errno();
            }
        }
        if libc::chdir(a.cwd) < 0 {
            return errno();
        }
        if let Err(e) = (a.before_exec)() {
            return e.raw_os_error().unwrap_or(libc::EPERM);
        }
        libc::execve(a.program, a.argv, a.envp);
        errno()
    }
}

/// How a process ended: its exit code, or the signal that ended it.
pub fn wait_pid(pid: i32) -> std::io::Result<(Option<i32>, Option<i32>)> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes the status into our local integer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Ok(if libc::WIFEXITED(status) {
                (Some(libc::WEXITSTATUS(status)), None)
            } else if libc::WIFSIGNALED(status) {
                (None, Some(libc::WTERMSIG(status)))
            } else {
                (None, None)
            });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// A pipe, both ends closed on exec: (read end, write end).
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, which we then own.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}
