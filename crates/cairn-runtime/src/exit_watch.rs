//! Watching the one host process whose life is a container's, so that its end is noticed
//! when it happens: gVisor's sandbox process (the sentry: when it dies, every process of the
//! sandbox is gone) or runc's container init (when it dies, the kernel kills the rest of its
//! pid namespace). Both are the pid the runtime's `state` reports.
//!
//! A pidfd (`pidfd_open`, Linux ≥ 5.3) becomes readable when the process has exited, whoever
//! its parent is, and names that process only: a pid reused later is not confused with it.
//! Awaited through tokio's reactor, so nothing polls.
//!
//! Not for deciding why it ended (see [`crate::limit_hits`]) nor what to record (the engine).

use std::os::fd::OwnedFd;

use tokio::io::unix::AsyncFd;

use crate::RuntimeError;

/// `PF_EXITING` in `/proc/PID/stat`'s flags: the task is in `do_exit`.
const PF_EXITING: u64 = 0x4;

/// SIGKILL's bit in `/proc/PID/status`'s pending-signal masks.
const SIGKILL_BIT: u64 = 1 << (9 - 1);

/// An open watch on a container's process.
#[derive(Debug)]
pub struct ExitWatch {
    pid: u32,
    fd: AsyncFd<OwnedFd>,
}

impl ExitWatch {
    /// Opens a watch on process `pid`. `Ok(None)` when there is no such process (any more).
    /// Needs a tokio runtime with I/O enabled.
    pub fn open(pid: u32) -> Result<Option<ExitWatch>, RuntimeError> {
        let err = |source: std::io::Error| RuntimeError::Watch { pid, source };
        let Some(raw) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return Ok(None);
        };
        let fd = match rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::NONBLOCK) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::SRCH) => return Ok(None),
            Err(e) => return Err(err(e.into())),
        };
        // tokio#8587 deprecated the safe constructors because a type that merely implements
        // `AsRawFd` may not own its descriptor; an `OwnedFd` does, and the `AsyncFd` keeps it
        // until it is dropped (the replacement, `register_with_interest`, is `unsafe`, which
        // this crate forbids).
        #[allow(deprecated)]
        let fd = AsyncFd::with_interest(fd, tokio::io::Interest::READABLE).map_err(err)?;
        Ok(Some(ExitWatch { pid, fd }))
    }

    /// The watched process's host pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Returns once the process has exited.
    pub async fn exited(&self) {
        loop {
            match self.fd.readable().await {
                Ok(mut ready) => {
                    if self.has_exited() {
                        return;
                    }
                    ready.clear_ready();
                }
                Err(e) => {
                    // The reactor is going away (cairnd shuts down): look now and then.
                    tracing::debug!(pid = self.pid, error = %e, "pidfd not pollable; checking every second");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if self.has_exited() {
                        return;
                    }
                }
            }
        }
    }

    /// Whether the process has exited (it may not be reaped yet).
    pub fn has_exited(&self) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        for _ in 0..3 {
            let mut fds = [PollFd::new(self.fd.get_ref(), PollFlags::IN)];
            match poll(&mut fds, Some(&now)) {
                Ok(_) => return fds[0].revents().contains(PollFlags::IN),
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return false,
            }
        }
        false
    }

    /// Whether the process has exited or is on its way out: in the kernel's exit path, a
    /// zombie, or with a SIGKILL pending (the out-of-memory killer's, say). This is true as
    /// soon as anything that outlived it could notice (a closed socket, a killed child), a
    /// moment before [`ExitWatch::exited`] returns.
    pub fn is_exiting(&self) -> bool {
        if self.has_exited() {
            return true;
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid));
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid));
        match (stat, status) {
            (Ok(stat), Ok(status)) => stat_says_exiting(&stat) || status_says_killed(&status),
            // Gone from /proc: exited and reaped since the poll above.
            _ => true,
        }
    }

    /// Whether the process belongs to cgroup `path` (e.g. `/cairn/sbx-…`) in some hierarchy.
    pub(crate) fn in_cgroup(&self, path: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid))
            .is_ok_and(|text| cgroup_lists(&text, path))
    }
}

/// Whether `/proc/PID/stat` text says the task is exiting or a zombie.
fn stat_says_exiting(stat: &str) -> bool {
    // The command name, in parentheses, may hold spaces: fields count from the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first().copied().unwrap_or_default();
    let flags: u64 = fields.get(6).and_then(|f| f.parse().ok()).unwrap_or(0);
    matches!(state, "Z" | "X" | "x") || flags & PF_EXITING != 0
}

/// Whether `/proc/PID/status` text shows a SIGKILL pending for the process or its thread.
fn status_says_killed(status: &str) -> bool {
    status.lines().any(|line| {
        let Some((key, value)) = line.split_once(':') else {
            return false;
        };
        matches!(key, "ShdPnd" | "SigPnd")
            && u64::from_str_radix(value.trim(), 16).is_ok_and(|mask| mask & SIGKILL_BIT != 0)
    })
}

/// Whether `/proc/PID/cgroup` text puts the process in `path` (or below it) in some hierarchy.
fn cgroup_lists(text: &str, path: &str) -> bool {
    text.lines().any(|line| {
        line.splitn(3, ':').nth(2).is_some_and(|p| {
            p == path
                || p.strip_prefix(path)
                    .is_some_and(|below| below.starts_with('/'))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exiting_and_zombie_tasks_are_told_from_running_ones() {
        let running = "8427 (exe) S 1 8420 8420 0 -1 4194560 2069 0 0 0 3 1 0 0 20 0 13 0 71843";
        assert!(!stat_says_exiting(running));
        let exiting = "8427 (exe) R 1 8420 8420 0 -1 4194564 2069 0 0 0 3 1 0 0 20 0 13 0 71843";
        assert!(stat_says_exiting(exiting));
        let zombie = "8427 (a (b) c) Z 1 8420 8420 0 -1 4194560 2069 0 0 0 3 1 0 0 20 0";
        assert!(stat_says_exiting(zombie));
        assert!(!stat_says_exiting("garbage"));
    }

    #[test]
    fn a_pending_sigkill_is_seen() {
        let quiet = "Name:\texe\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n";
        assert!(!status_says_killed(quiet));
        let killed = "Name:\texe\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000100\n";
        assert!(status_says_killed(killed));
        let term = "SigPnd:\t0000000000004000\nShdPnd:\t0000000000000000\n";
        assert!(!status_says_killed(term));
    }

    #[test]
    fn cgroup_membership_is_matched_by_whole_path() {
        let v1 = "8:pids:/cairn/sbx-2367e687\n4:memory:/cairn/sbx-2367e687\n0::/\n";
        assert!(cgroup_lists(v1, "/cairn/sbx-2367e687"));
        assert!(!cgroup_lists(v1, "/cairn/sbx-2367e68"));
        let v2 = "0::/cairn/sbx-6a138773/sub\n";
        assert!(cgroup_lists(v2, "/cairn/sbx-6a138773"));
        assert!(!cgroup_lists("0::/\n", "/cairn/sbx-6a138773"));
    }

    #[tokio::test]
    async fn a_watch_fires_when_its_process_exits_and_not_before() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let watch = ExitWatch::open(child.id()).unwrap().unwrap();
        assert!(!watch.has_exited() && !watch.is_exiting());
        let early = tokio::time::timeout(std::time::Duration::from_millis(100), watch.exited());
        assert!(early.await.is_err(), "fired while the process runs");
        child.kill().unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), watch.exited())
            .await
            .expect("the watch did not fire when the process exited");
        assert!(watch.has_exited() && watch.is_exiting());
        child.wait().unwrap();
        assert!(ExitWatch::open(child.id()).unwrap().is_none());
    }
}
