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
            while std::fs::read_to_string(&state)?.trim() != want {
                if Instant::now() > deadline {
                    return Err(std::io::Error::other(format!(
                        "{} did not become {want}",
                        state.display()
                    )));
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
