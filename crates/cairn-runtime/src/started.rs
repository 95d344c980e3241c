//! The init pids of the containers this process started or restored, kept until their exit
//! is watched: [`crate::Runtime::watch`] then needs no `runc state`/`runsc state` process
//! (~30 ms each under gVisor, one less per fork).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::cli::Cli;
use crate::exit_watch::ExitWatch;
use crate::RuntimeError;

/// Container id → the host pid of its init (runc) or its sandbox process (runsc).
#[derive(Clone, Debug, Default)]
pub(crate) struct Started(Arc<Mutex<HashMap<String, u32>>>);

impl Started {
    /// Remembers the pid the runtime wrote to `pid_file` for container `id`.
    pub(crate) fn remember_file(&self, id: &str, pid_file: &Path) {
        let pid = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok());
        if let Some(pid) = pid {
            self.remember(id, pid);
        }
    }

    /// Remembers `pid` for container `id`.
    pub(crate) fn remember(&self, id: &str, pid: u32) {
        if pid == 0 {
            return;
        }
        if let Ok(mut started) = self.0.lock() {
            started.insert(id.to_string(), pid);
        }
    }

    /// Forgets container `id` (deleted).
    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut started) = self.0.lock() {
            started.remove(id);
        }
    }

    /// Watches container `id`'s process: the remembered pid when it is still inside the
    /// container's cgroup (the pid could name another process if the container ended and
    /// the pid was used again), otherwise whatever the runtime's `state` says, as for a
    /// container another cairnd started.
    pub(crate) async fn watch(
        &self,
        cli: &Cli,
        id: &str,
    ) -> Result<Option<ExitWatch>, RuntimeError> {
        let known = self.0.lock().ok().and_then(|mut s| s.remove(id));
        if let Some(pid) = known {
            if let Some(watch) = ExitWatch::open(pid)? {
                if watch.in_cgroup(&format!("{}/{id}", crate::bundle::CGROUP_PARENT)) {
                    return Ok(Some(watch));
                }
            }
        }
        cli.watch(id).await
    }
}
