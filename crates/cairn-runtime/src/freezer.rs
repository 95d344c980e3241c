//! Freezing a runc container through its cgroup directly (cgroup v1
//! `freezer.state`, or v2 `cgroup.freeze`), which takes well under a
//! millisecond where a `runc pause` process costs several. runc reads the
//! same files for its own state, so `runc state` and `runc resume` agree.
//! Not for gVisor: its sentry must be paused through `runsc`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bundle::CGROUP_PARENT;

/// The cgroup files that freeze container `id`, if this host has them.
enum Freezer {
    V1(PathBuf),
    V2(PathBuf),
}

impl Freezer {
    /// The file listing the cgroup's threads.
    fn threads(&self) -> PathBuf {
        match self {
            Freezer::V1(state) => state.with_file_name("tasks"),
            Freezer::V2(dir) => dir.join("cgroup.threads"),
        }
    }
}

fn locate(id: &str) -> Option<Freezer> {
    let rel = Path::new(CGROUP_PARENT.trim_start_matches('/')).join(id);
    let v1 = Path::new("/sys/fs/cgroup/freezer")
        .join(&rel)
        .join("freezer.state");
    if v1.exists() {
        return Some(Freezer::V1(v1));
    }
    let v2 = Path::new("/sys/fs/cgroup").join(&rel);
    if v2.join("cgroup.freeze").exists() {
        return Some(Freezer::V2(v2));
    }
    None
}

/// How long a cgroup v1 freeze may stay FREEZING before it is thawed for a moment and asked
/// again (see [`set_frozen`]); an ordinary freeze of a sandbox completes in well under 1 ms.
const V1_STUCK: Duration = Duration::from_millis(100);
/// How long such a container runs before the freeze is asked again.
const V1_RETHAW: Duration = Duration::from_millis(5);

/// Freezes (`true`) or thaws (`false`) the container and waits until the kernel
/// reports it done. `Ok(false)` when this host has no usable freezer files.
pub(crate) fn set_frozen(id: &str, frozen: bool) -> std::io::Result<bool> {
    let Some(freezer) = locate(id) else {
        return Ok(false);
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    match freezer {
        Freezer::V1(state) => {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            std::fs::write(&state, want)?;
            let mut asked = Instant::now();
            while std::fs::read_to_string(&state)?.trim() != want {
                if Instant::now() > deadline {
                    if frozen {
                        // Never leave it stuck half-frozen: `runc` itself (state, list,
                        // pause) waits for ever on a FREEZING cgroup.
                        let _ = std::fs::write(&state, "THAWED");
                    }
                    return Err(std::io::Error::other(format!(
                        "{} did not become {want}",
                        state.display()
                    )));
                }
                if frozen && asked.elapsed() > V1_STUCK {
                    // A thread caught inside execve waits for its process's other threads,
                    // which the freezer holds (runc's init exec'ing the container's init or
                    // an exec's command, just after `runc start` or `runc exec` returned):
                    // the cgroup never becomes FROZEN. Let it finish its exec, then freeze.
                    std::fs::write(&state, "THAWED")?;
                    std::thread::sleep(V1_RETHAW);
                    std::fs::write(&state, want)?;
                    asked = Instant::now();
                    continue;
                }
                std::fs::write(&state, want)?;
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Freezer::V2(dir) => {
            std::fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
            let want = if frozen { "frozen 1" } else { "frozen 0" };
            while !std::fs::read_to_string(dir.join("cgroup.events"))?
                .lines()
                .any(|l| l.trim() == want)
            {
                if Instant::now() > deadline {
                    return Err(std::io::Error::other(format!(
                        "{} did not report {want}",
                        dir.display()
                    )));
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    Ok(true)
}

/// How many times [`freeze_settled`] thaws and freezes again a container caught with a
/// thread waiting on a vfork child, and how long it lets it run: 2 ms at first, twice as
/// long each time up to 50 ms (on a loaded host the child may need more than 2 ms to be
/// scheduled and exec: 20 tries of 2 ms once failed a snapshot in CI), about 1.3 s at most.
const SETTLE_ATTEMPTS: u32 = 30;
const SETTLE_RUN: Duration = Duration::from_millis(2);
const SETTLE_RUN_MAX: Duration = Duration::from_millis(50);

/// Freezes the container so that CRIU can checkpoint it: a freeze that catches a thread
/// waiting for a child it started with vfork (`posix_spawn`, `system()`) to exec leaves
/// it in a state CRIU cannot seize (it waits 10 s, then fails with "Unseizable
/// non-zombie"), so the container is thawed for a moment and frozen again until none
/// is, up to [`SETTLE_ATTEMPTS`] times. `Ok(false)` when this host has no usable freezer
/// files; frozen either way when it has (a thread still waiting is reported by
/// [`vfork_waiters`] when it matters).
pub(crate) fn freeze_settled(id: &str) -> std::io::Result<bool> {
    if !set_frozen(id, true)? {
        return Ok(false);
    }
    for attempt in 0..SETTLE_ATTEMPTS {
        let waiting = vfork_waiters(id)?;
        if waiting.is_empty() {
            break;
        }
        tracing::debug!(
            container = id,
            attempt,
            ?waiting,
            "frozen while waiting on a vfork child: thawed for a moment"
        );
        set_frozen(id, false)?;
        std::thread::sleep(
            SETTLE_RUN
                .saturating_mul(1 << attempt.min(5))
                .min(SETTLE_RUN_MAX),
        );
        set_frozen(id, true)?;
    }
    Ok(true)
}

/// A thread of a frozen container that waits for its vfork child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VforkWaiter {
    /// Its thread id on the host.
    pub tid: u32,
    /// Its command name.
    pub comm: String,
}

impl std::fmt::Display for VforkWaiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (host thread {})", self.comm, self.tid)
    }
}

/// The threads of frozen container `id` that wait for a child they started with vfork
/// to exec or exit; empty when there are none, when the container is not frozen (a
/// running thread's wait is a passing moment: CRIU freezes it itself) or when this host
/// has no freezer files.
pub(crate) fn vfork_waiters(id: &str) -> std::io::Result<Vec<VforkWaiter>> {
    let Some(freezer) = locate(id) else {
        return Ok(Vec::new());
    };
    let frozen = match &freezer {
        Freezer::V1(state) => std::fs::read_to_string(state)?.trim() == "FROZEN",
        Freezer::V2(dir) => std::fs::read_to_string(dir.join("cgroup.events"))?
            .lines()
            .any(|l| l.trim() == "frozen 1"),
    };
    if !frozen {
        return Ok(Vec::new());
    }
    let tids = std::fs::read_to_string(freezer.threads())?;
    Ok(tids
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .filter(|tid| waits_for_vfork(*tid))
        .map(|tid| VforkWaiter {
            tid,
            comm: std::fs::read_to_string(format!("/proc/{tid}/comm"))
                .map(|c| c.trim().to_string())
                .unwrap_or_default(),
        })
        .collect())
}

/// Whether thread `tid` sleeps in the kernel until its vfork child execs or exits: in
/// `kernel_clone` (older kernels: `_do_fork`, or the wait itself) by its wait channel, or,
/// where the kernel hides symbol names, blocked in a clone or vfork system call.
fn waits_for_vfork(tid: u32) -> bool {
    let wchan = std::fs::read_to_string(format!("/proc/{tid}/wchan")).unwrap_or_default();
    match wchan.trim() {
        "kernel_clone" | "_do_fork" | "do_fork" | "wait_for_vfork_done" => true,
        "" | "0" => std::fs::read_to_string(format!("/proc/{tid}/syscall"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<i64>().ok())
            .is_some_and(|nr| CLONE_SYSCALLS.contains(&nr)),
        _ => false,
    }
}

/// clone, vfork and clone3 on this architecture.
#[cfg(target_arch = "x86_64")]
const CLONE_SYSCALLS: &[i64] = &[56, 58, 435];
#[cfg(target_arch = "aarch64")]
const CLONE_SYSCALLS: &[i64] = &[220, 435];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const CLONE_SYSCALLS: &[i64] = &[];
