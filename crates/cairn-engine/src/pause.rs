//! Pause and resume: a pause freezes the sandbox and takes an automatic
//! (stateful where the runtime can) snapshot named `auto-pause-…`; with
//! `release_memory` the processes are then ended, their memory living on only
//! in that snapshot's checkpoint, and `resume` restores them from it. Old
//! automatic snapshots are pruned. An idle timeout pauses a sandbox that has
//! seen no exec or API activity for a while.
//!
//! Not for user snapshots (see `snapshots`), nor stop/start (see `sandboxes`).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use cairn_db::SandboxRecord;
use cairn_types::api::SandboxInfo;
use cairn_types::{SandboxId, SandboxState, SnapshotState};

use crate::{Engine, EngineError, Result};

/// Name prefix of the snapshots a pause takes.
pub const AUTO_PAUSE_PREFIX: &str = "auto-pause-";

/// What the idle timeout looks at, per sandbox.
#[derive(Debug)]
pub(crate) struct Activity {
    last: Instant,
    execs: u32,
}

impl Activity {
    /// Active now, with no exec running.
    fn now() -> Self {
        Activity {
            last: Instant::now(),
            execs: 0,
        }
    }
}

/// Keeps a sandbox counted as busy while an exec runs in it.
pub(crate) struct Busy {
    engine: Weak<Engine>,
    id: SandboxId,
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.upgrade() {
            let mut map = engine.activity.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(a) = map.get_mut(&self.id) {
                a.execs = a.execs.saturating_sub(1);
                a.last = Instant::now();
            }
        }
    }
}

impl Engine {
    /// Records activity on a sandbox (any API call naming it, an exec).
    pub(crate) fn touch(&self, id: &SandboxId) {
        let mut map = self.activity.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(id.clone())
            .and_modify(|a| a.last = Instant::now())
            .or_insert_with(Activity::now);
    }

    /// Marks a sandbox busy until the returned guard drops (an exec in progress).
    pub(crate) fn busy(self: &Arc<Self>, id: &SandboxId) -> Busy {
        let mut map = self.activity.lock().unwrap_or_else(|p| p.into_inner());
        let a = map.entry(id.clone()).or_insert_with(Activity::now);
        a.execs += 1;
        a.last = Instant::now();
        Busy {
            engine: Arc::downgrade(self),
            id: id.clone(),
        }
    }

    /// Pauses a running sandbox: freeze, then an automatic snapshot (with process memory
    /// where the runtime can checkpoint it). With `release_memory` the processes are then
    /// ended so the sandbox holds no memory; `resume` restores them from the checkpoint.
    pub async fn pause_sandbox(
        &self,
        account: &str,
        id_or_name: &str,
        release_memory: bool,
    ) -> Result<SandboxInfo> {
        let (_guard, r) = self.find_locked(account, id_or_name).await?;
        self.pause_locked(r, release_memory).await?;
        Ok(self.info(&self.find(account, id_or_name)?))
    }

    async fn pause_locked(&self, r: SandboxRecord, release_memory: bool) -> Result<()> {
        match r.state {
            SandboxState::Running => {}
            SandboxState::Paused if r.memory_snapshot.is_some() || !release_memory => {
                return Ok(());
            }
            SandboxState::Paused => {}
            other => {
                return Err(EngineError::Conflict(format!(
                    "sandbox {} is {other}: only a running sandbox can be paused",
                    r.id
                )))
            }
        }
        let stateful = self.check_checkpoint_support(r.runtime).await;
        if release_memory {
            if let Err(e) = stateful {
                return Err(EngineError::InvalidArgument(format!(
                    "--release-memory checkpoints the processes to disk: {e}"
                )));
            }
        }
        let rt = self.runtime(r.runtime)?;
        if r.state == SandboxState::Running {
            rt.pause(r.id.as_str()).await?;
            self.db.set_state(&r.id, SandboxState::Paused, None)?;
        }
        let r = self.db.sandbox(&r.id)?.ok_or_else(|| {
            EngineError::Internal(format!("sandbox {} vanished while pausing", r.id))
        })?;
        let name = self.default_name(&r.id, AUTO_PAUSE_PREFIX)?;
        let snap = match self.take_snapshot(&r, name, stateful.is_ok(), true).await {
            Ok(s) => s,
            Err(e) if release_memory => {
                // Still frozen, with its memory: nothing was released.
                return Err(e);
            }
            Err(e) => {
                tracing::warn!(sandbox = %r.id, error = %e, "paused, but the automatic snapshot failed");
                return Ok(());
            }
        };
        tracing::info!(sandbox = %r.id, snapshot = %snap.id, stateful = snap.stateful, "sandbox paused");
        self.prune_auto_snapshots(&r.id).await;
        if release_memory {
            // The row first: a crash after it leaves a frozen container that resume replaces.
            self.db.set_memory_snapshot(&r.id, Some(&snap.id))?;
            // Ended on purpose: not a death.
            self.note_end(
                &r.id,
                format!(
                    "sandbox {} was paused with its memory released to disk while the command ran, which ended it; resume the sandbox with 'cairn resume {}' and run the command again",
                    r.id, r.id
                ),
            );
            self.disarm(&r.id);
            let _ = rt.kill(r.id.as_str(), "KILL").await;
            rt.delete(r.id.as_str()).await?;
            tracing::info!(sandbox = %r.id, snapshot = %snap.id, "memory released to disk");
        }
        Ok(())
    }

    /// Deletes the oldest automatic snapshots of a sandbox beyond the configured count.
    async fn prune_auto_snapshots(&self, id: &SandboxId) {
        let Ok(all) = self.db.sandbox_snapshots(id) else {
            return;
        };
        let autos: Vec<_> = all.into_iter().filter(|s| s.auto).collect();
        let keep = self.cfg.auto_pause_keep.max(1);
        if autos.len() <= keep {
            return;
        }
        let held = self
            .db
            .sandbox(id)
            .ok()
            .flatten()
            .and_then(|r| r.memory_snapshot);
        for s in &autos[..autos.len() - keep] {
            if held.as_ref() == Some(&s.id) || s.state == SnapshotState::Creating {
                continue;
            }
            if let Err(e) = self.purge_snapshot(&s.id).await {
                tracing::warn!(snapshot = %s.id, error = %e, "could not prune an automatic snapshot");
            } else {
                tracing::info!(sandbox = %id, snapshot = %s.id, "pruned an old automatic snapshot");
            }
        }
    }

    /// Continues a paused sandbox: thaws it, or restores its processes from the checkpoint
    /// when its memory was released.
    pub async fn resume_sandbox(&self, account: &str, id_or_name: &str) -> Result<SandboxInfo> {
        let (_guard, r) = self.find_locked(account, id_or_name).await?;
        match r.state {
            SandboxState::Running => return Ok(self.info(&r)),
            SandboxState::Paused => {}
            other => {
                return Err(EngineError::Conflict(format!(
                    "sandbox {} is {other}: only a paused sandbox can be resumed",
                    r.id
                )))
            }
        }
        let rt = self.runtime(r.runtime)?;
        match &r.memory_snapshot {
            Some(snap_id) => {
                let snap = self.db.snapshot(snap_id)?.ok_or_else(|| {
                    EngineError::Internal(format!(
                        "the snapshot {snap_id} holding sandbox {}'s memory is gone: stop and start it",
                        r.id
                    ))
                })?;
                self.check_identity(
                    &snap,
                    r.runtime,
                    crate::IdentityAdvice::Resume,
                    r.id.as_str(),
                )
                .await?;
                let bundle = self.write_bundle_for(&r).await?;
                // A crash during the release may have left the frozen container behind.
                self.disarm(&r.id);
                let _ = rt.kill(r.id.as_str(), "KILL").await;
                rt.delete(r.id.as_str()).await?;
                rt.restore(r.id.as_str(), &bundle, &self.snapshot_checkpoint(&snap.id))
                    .await?;
                self.db.set_memory_snapshot(&r.id, None)?;
            }
            None => rt.resume(r.id.as_str()).await?,
        }
        self.db.set_state(&r.id, SandboxState::Running, None)?;
        if r.memory_snapshot.is_some() {
            // Its processes run in a new runtime process.
            self.arm(&r).await;
        }
        tracing::info!(sandbox = %r.id, restored = r.memory_snapshot.is_some(), "sandbox resumed");
        Ok(self.info(&self.find(account, r.id.as_str())?))
    }

    /// Starts the task that pauses sandboxes idle past their timeout. It ends with the engine.
    pub(crate) fn start_idle_watch(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let every = self.cfg.idle_check_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(engine) = weak.upgrade() else {
                    return;
                };
                engine.pause_idle().await;
            }
        });
    }

    /// Pauses every running sandbox with an idle timeout that has passed.
    async fn pause_idle(&self) {
        let Ok(all) = self.db.all_sandboxes() else {
            return;
        };
        for r in all {
            let Some(secs) = r.idle_timeout_secs else {
                continue;
            };
            if r.state != SandboxState::Running {
                continue;
            }
            let idle_for = {
                let mut map = self.activity.lock().unwrap_or_else(|p| p.into_inner());
                let a = map.entry(r.id.clone()).or_insert_with(Activity::now);
                if a.execs > 0 {
                    continue;
                }
                a.last.elapsed()
            };
            if idle_for < Duration::from_secs(secs) {
                continue;
            }
            let lock = self.lock_for(&r.id);
            let Ok(_guard) = lock.try_lock() else {
                continue; // busy with a lifecycle change: not idle
            };
            let Ok(Some(r)) = self.db.sandbox(&r.id) else {
                continue;
            };
            if r.state != SandboxState::Running {
                continue;
            }
            tracing::info!(sandbox = %r.id, idle_secs = idle_for.as_secs(), "idle timeout: pausing");
            let id = r.id.clone();
            if let Err(e) = self.pause_locked(r, false).await {
                tracing::warn!(sandbox = %id, error = %e, "could not pause an idle sandbox");
            }
        }
    }
}
