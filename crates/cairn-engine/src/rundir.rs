//! The runtime state directory `run/` (bundles, the runtimes' state roots, agent sockets,
//! network namespaces) lives in memory: a tmpfs cairnd mounts on it at start, as `/run`
//! is on most hosts. Nothing in it outlives the processes it describes, and every fork
//! writes a dozen small files there: on a disk file system each costs an inode's
//! allocation and its metadata writes (on this project's test machine, an ext4 without a
//! journal, a quarter of a batch of forks' CPU). The mount is made only while `run/` holds
//! no live state, so a cairnd upgraded under running sandboxes keeps their state where it
//! is and moves to memory at a later start with none; a `run/` that is a mount already
//! (the operator's own, or this cairnd's before a restart) is kept as it is. Not here:
//! what goes into `run/` (sandboxes, runtimes, network).

use std::io;
use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags};

/// The tmpfs's size cap. `run/` holds a few dozen KiB per sandbox (bundle, runtime state,
/// CRIU's restore log until the restore ends); the cap only bounds a runaway writer.
pub const SIZE: &str = "256m";

/// The subdirectories whose entries are live state: a runtime's container or a network
/// namespace that the tmpfs would hide.
const LIVE: [&str; 3] = ["runc", "runsc", "netns"];

/// Where `run/` ended up.
#[derive(Debug, PartialEq, Eq)]
pub enum RunDir {
    /// A tmpfs mounted now.
    Mounted,
    /// A mount already (of this cairnd before a restart, or the operator's).
    AlreadyMounted,
    /// On the data directory's disk, and why.
    OnDisk(String),
}

/// Puts `run` (made if missing) in memory when it can: see the module's comment. A mount
/// that fails leaves `run/` on disk, which works as before; the caller logs why.
pub fn hold_in_memory(run: &Path) -> io::Result<RunDir> {
    std::fs::create_dir_all(run)?;
    if cairn_storage::mount_at(&std::fs::canonicalize(run)?)?.is_some() {
        return Ok(RunDir::AlreadyMounted);
    }
    if let Some(live) = live_state(run)? {
        return Ok(RunDir::OnDisk(format!(
            "it holds {live}, state of a sandbox started before: runtime state moves to memory at a start with no sandbox running"
        )));
    }
    // What is left (bundles of stopped sandboxes, scratch) is written again at each start;
    // left under the mount it would only take disk space nobody sees.
    for e in std::fs::read_dir(run)? {
        let path = e?.path();
        let removed = match std::fs::symlink_metadata(&path)?.is_dir() {
            true => std::fs::remove_dir_all(&path),
            false => std::fs::remove_file(&path),
        };
        if let Err(e) = removed {
            return Ok(RunDir::OnDisk(format!(
                "cannot clear {} before mounting: {e}",
                path.display()
            )));
        }
    }
    let options = std::ffi::CString::new(format!("size={SIZE},mode=0755"))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let flags = MountFlags::NOSUID | MountFlags::NODEV;
    if let Err(e) = rustix::mount::mount("cairn-run", run, "tmpfs", flags, options.as_c_str()) {
        return Ok(RunDir::OnDisk(format!("the tmpfs mount failed: {e}")));
    }
    // Private: the sandboxes' mounts made under it (network namespaces) stay out of the
    // host's other mount namespaces, as in a directory of the host's root.
    if let Err(e) = rustix::mount::mount_change(run, MountPropagationFlags::PRIVATE) {
        tracing::warn!(run = %run.display(), error = %e, "cannot make the runtime state mount private");
    }
    Ok(RunDir::Mounted)
}

/// Unmounts the tmpfs [`hold_in_memory`] mounted on `run`, when a start fails after it and
/// nothing live was put in it since: a cairnd that did not start leaves no mount behind.
pub fn release(run: &Path) {
    match live_state(run) {
        Ok(None) => {
            if let Err(e) = rustix::mount::unmount(run, rustix::mount::UnmountFlags::DETACH) {
                tracing::warn!(run = %run.display(), error = %e, "cannot unmount the runtime state");
            }
        }
        Ok(Some(live)) => {
            tracing::warn!(run = %run.display(), live, "the runtime state stays mounted: it holds live state")
        }
        Err(e) => tracing::warn!(run = %run.display(), error = %e, "cannot read the runtime state"),
    }
}

/// The first live entry under `run` (see [`LIVE`]), if any.
fn live_state(run: &Path) -> io::Result<Option<String>> {
    for sub in LIVE {
        let dir = run.join(sub);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if let Some(e) = entries.flatten().next() {
            return Ok(Some(format!("{sub}/{}", e.file_name().to_string_lossy())));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_container_or_namespace_is_live_state_and_bundles_are_not() {
        let home = tempfile::tempdir().unwrap();
        let run = home.path().join("run");
        std::fs::create_dir_all(run.join("sbx-12345678")).unwrap();
        std::fs::write(run.join("sbx-12345678/config.json"), "{}").unwrap();
        for sub in LIVE {
            std::fs::create_dir_all(run.join(sub)).unwrap();
        }
        assert_eq!(live_state(&run).unwrap(), None);
        std::fs::create_dir(run.join("runsc/sbx-12345678")).unwrap();
        assert_eq!(
            live_state(&run).unwrap().as_deref(),
            Some("runsc/sbx-12345678")
        );
        std::fs::remove_dir(run.join("runsc/sbx-12345678")).unwrap();
        std::fs::write(run.join("netns/sbx-12345678"), "").unwrap();
        assert_eq!(
            live_state(&run).unwrap().as_deref(),
            Some("netns/sbx-12345678")
        );
    }
}
