//! Pause and resume: a pause freezes the sandbox and takes an automatic
//! (stateful where the runtime can) snapshot named `auto-pause-…`; with
//! `release_memory` the processes are then ended, their memory living on only
//! in that snapshot's checkpoint, and `resume` restores them from it. Old
//! automatic snapshots are pruned. An idle timeout pauses a sandbox that has
//! seen no exec or other use for a while; the next exec wakes it (resumes it),
//! while a sandbox its user paused stays paused until `resume`. Each pause
//! records when and why (`paused_at`, `pause_reason`).
//!
//! Also the gate between pauses and execs that are starting (see [`Engine::gate`]).
//!
//! Not for user snapshots (see `snapshots`), nor stop/start (see `sandboxes`).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedRwLockWriteGuard, RwLock};

use cairn_db::SandboxRecord;
use cairn_types::api::SandboxInfo;
use cairn_types::{PauseReason, SandboxId, SandboxState, SnapshotState};

use crate::{Engine, EngineError, Result};

/// Name prefix of the snapshots a pause takes.
pub const AUTO_PAUSE_PREFIX: &str = "auto-pause-";

/// The longest an exec waits for a snapshot's pause to end before it is refused.
pub(crate) const GATE_WAIT: Duration = Duration::from_secs(60);

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
    /// The gate of sandbox `id` between pauses and execs that are starting. A pause (a
    /// snapshot's, `cairn pause`, the idle timeout's) holds it exclusively from just before
    /// the freeze until the thaw, or until the pause is recorded when it stays; an exec
    /// holds it shared from its look at the sandbox's state until its process runs. So no
    /// exec reaches the runtime while a snapshot has the sandbox frozen (runc refuses one:
    /// "cannot exec in a paused container"): it waits for the thaw. No freeze catches an
    /// exec halfway through starting either; execs already running are frozen with the
    /// sandbox and go on after the thaw. The lock is fair: once a pause waits for it, new
    /// execs wait behind the pause.
    pub(crate) fn gate(&self, id: &SandboxId) -> Arc<RwLock<()>> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.entry(id.clone()).or_default().clone()
    }

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
        // Execs that are starting get going first (see `gate`).
        let gate = self.gate(&r.id).write_owned().await;
        self.pause_locked(r, release_memory, PauseReason::User, gate)
            .await?;
        Ok(self.info(&self.find(account, id_or_name).await?).await)
    }

    /// Pauses sandbox `r` (whose lock the caller holds) for `why`. `gate`: the sandbox's gate,
    /// held until the pause is recorded.
    async fn pause_locked(
        &self,
        r: SandboxRecord,
        release_memory: bool,
        why: PauseReason,
        gate: OwnedRwLockWriteGuard<()>,
    ) -> Result<()> {
        match r.state {
            SandboxState::Running => {}
            SandboxState::Paused if r.memory_snapshot.is_some() || !release_memory => {
                // A user's pause of a sandbox its idle timeout paused makes it the user's.
                if r.pause_reason != Some(why) {
                    let row = r.id.clone();
                    self.db(move |db| db.set_paused(&row, why)).await?;
                }
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
            // Its automatic snapshot checkpoints it paused: the agent must have closed its
            // connection first (it dials back on resume).
            self.quiesce_agent(&r.id).await;
            if let Err(e) = rt.pause(r.id.as_str()).await {
                self.relisten_agent(&r.id);
                return Err(e.into());
            }
        }
        let row = r.id.clone();
        self.db(move |db| db.set_paused(&row, why)).await?;
        // From here on an exec finds it paused (and wakes it, when it was idle, once this
        // pause is done with the sandbox's lock).
        drop(gate);
        let r = self.sandbox_row(&r.id).await?.ok_or_else(|| {
            EngineError::Internal(format!("sandbox {} vanished while pausing", r.id))
        })?;
        let name = self.default_name(&r.id, AUTO_PAUSE_PREFIX).await?;
        let snap = match self
            .take_snapshot(
                &r,
                name,
                stateful.is_ok(),
                true,
                &cairn_types::ProgressSink::none(),
            )
            .await
        {
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
            let (row, held) = (r.id.clone(), snap.id.clone());
            self.db(move |db| db.set_memory_snapshot(&row, Some(&held)))
                .await?;
            // Ended on purpose: not a death.
            self.note_end(
                &r.id,
                format!(
                    "sandbox {} was paused with its memory released to disk while the command ran, which ended it; resume the sandbox with 'cairn resume {}' and run the command again",
                    r.id, r.id
                ),
            );
            self.disarm(&r.id);
            // The execs through its agent end, saying so (their processes live on only in
            // the checkpoint).
            self.end_agent(&r.id);
            let _ = rt.kill(r.id.as_str(), cairn_runtime::Signal::Kill).await;
            rt.delete(r.id.as_str()).await?;
            tracing::info!(sandbox = %r.id, snapshot = %snap.id, "memory released to disk");
        }
        Ok(())
    }

    /// Deletes the oldest automatic snapshots of a sandbox beyond the configured count.
    async fn prune_auto_snapshots(&self, id: &SandboxId) {
        let row = id.clone();
        let Ok(all) = self.db(move |db| db.sandbox_snapshots(&row)).await else {
            return;
        };
        let autos: Vec<_> = all.into_iter().filter(|s| s.auto).collect();
        let keep = self.cfg.auto_pause_keep.max(1);
        if autos.len() <= keep {
            return;
        }
        let held = self
            .sandbox_row(id)
            .await
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
            SandboxState::Running => return Ok(self.info(&r).await),
            SandboxState::Paused => {}
            other => {
                return Err(EngineError::Conflict(format!(
                    "sandbox {} is {other}: only a paused sandbox can be resumed",
                    r.id
                )))
            }
        }
        self.resume_locked(&r).await?;
        Ok(self.info(&self.find(account, r.id.as_str()).await?).await)
    }

    /// Resumes sandbox `id` if its idle timeout paused it (and nobody paused it since): what
    /// an exec does before it runs. Anything else is left as it is, for the caller to look at.
    pub(crate) async fn wake(&self, id: &SandboxId) -> Result<()> {
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        let Some(r) = self.sandbox_row(id).await? else {
            return Ok(());
        };
        if r.state == SandboxState::Paused && r.pause_reason == Some(PauseReason::Idle) {
            let since = r.paused_at.map(|t| t.to_rfc3339()).unwrap_or_default();
            tracing::info!(sandbox = %r.id, paused_at = since, memory_released = r.memory_snapshot.is_some(), "waking an idle-paused sandbox for an exec");
            self.resume_locked(&r).await?;
        }
        Ok(())
    }

    /// Continues paused sandbox `r`, whose lock the caller holds.
    async fn resume_locked(&self, r: &SandboxRecord) -> Result<()> {
        let rt = self.runtime(r.runtime)?;
        match &r.memory_snapshot {
            Some(snap_id) => {
                let snap = self.snapshot_row(snap_id).await?.ok_or_else(|| {
                    EngineError::Internal(format!(
                        "the snapshot {snap_id} holding sandbox {}'s memory is gone: stop and start it",
                        r.id
                    ))
                })?;
                self.admit_resume(
                    &snap,
                    r.runtime,
                    crate::network::mode_of(r),
                    crate::IdentityAdvice::Resume,
                    r.id.as_str(),
                )
                .await?;
                let bundle = self.write_bundle_for(r).await?;
                // A crash during the release may have left the frozen container behind.
                self.disarm(&r.id);
                let _ = rt.kill(r.id.as_str(), cairn_runtime::Signal::Kill).await;
                rt.delete(r.id.as_str()).await?;
                rt.restore(r.id.as_str(), &bundle, &self.snapshot_checkpoint(&snap.id))
                    .await?;
                let row = r.id.clone();
                self.db(move |db| db.set_memory_snapshot(&row, None))
                    .await?;
            }
            None => {
                rt.resume(r.id.as_str()).await?;
                self.relisten_agent(&r.id);
            }
        }
        let row = r.id.clone();
        self.db(move |db| db.set_state(&row, SandboxState::Running, None))
            .await?;
        if r.memory_snapshot.is_some() {
            // Its processes run in a new runtime process.
            self.arm(r).await;
        }
        tracing::info!(sandbox = %r.id, restored = r.memory_snapshot.is_some(), "sandbox resumed");
        Ok(())
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
                engine.kill_due().await;
            }
        });
    }

    /// Whether sandbox `id` has run no exec and seen no use for `secs` seconds.
    fn still_idle(&self, id: &SandboxId, secs: u64) -> bool {
        let map = self.activity.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .is_none_or(|a| a.execs == 0 && a.last.elapsed() >= Duration::from_secs(secs))
    }

    /// Pauses every running sandbox with an idle timeout that has passed.
    async fn pause_idle(&self) {
        let Ok(all) = self.db(|db| db.all_sandboxes()).await else {
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
            let Ok(Some(r)) = self.sandbox_row(&r.id).await else {
                continue;
            };
            if r.state != SandboxState::Running {
                continue;
            }
            // An exec that is starting holds the gate; one that counted itself busy before
            // this look waits for it, and finds the sandbox paused for being idle: it wakes it.
            let Ok(gate) = self.gate(&r.id).try_write_owned() else {
                continue; // an exec is starting: not idle
            };
            if !self.still_idle(&r.id, secs) {
                continue;
            }
            // Where memory cannot be checkpointed (runc without CRIU), it stays in memory.
            let release = self.cfg.idle_release_memory
                && self.check_checkpoint_support(r.runtime).await.is_ok();
            tracing::info!(sandbox = %r.id, idle_secs = idle_for.as_secs(), release_memory = release, "idle timeout: pausing");
            let id = r.id.clone();
            if let Err(e) = self.pause_locked(r, release, PauseReason::Idle, gate).await {
                tracing::warn!(sandbox = %id, error = %e, "could not pause an idle sandbox");
            }
        }
    }
}
