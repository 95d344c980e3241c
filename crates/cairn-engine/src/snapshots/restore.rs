//! Restore in place: put a snapshot back into its sandbox.

use cairn_storage::Tree;
use cairn_types::api::SandboxInfo;
use cairn_types::SandboxState;

use crate::{Engine, EngineError, Result};

impl Engine {
    /// Restores a snapshot into its source sandbox, or into `to`: the sandbox's files become
    /// exactly the snapshot's; what was written since is discarded; a running sandbox restarts.
    /// A stateful snapshot brings its processes back too, unless `fresh`: then only its files
    /// are put back (and a running sandbox boots on them).
    pub async fn restore_snapshot(
        &self,
        account: &str,
        id: &str,
        to: Option<&str>,
        fresh: bool,
    ) -> Result<SandboxInfo> {
        let snap = self.ready_snapshot(account, id).await?;
        let stateful = snap.stateful && !fresh;
        let target = match to {
            Some(t) => self.find(account, t).await?,
            None => self.find(account, snap.sandbox_id.as_str()).await.map_err(|_| {
                EngineError::NotFound(format!(
                    "the source sandbox {} of snapshot {} is gone: restore into another with --to SANDBOX, or fork it with 'cairn up --from-snapshot {}'",
                    snap.sandbox_id, snap.id, snap.id
                ))
            })?,
        };
        let lock = self.lock_for(&target.id);
        let _guard = lock.lock().await;
        let target = self.find(account, target.id.as_str()).await?;
        if !matches!(
            target.state,
            SandboxState::Running | SandboxState::Paused | SandboxState::Stopped
        ) {
            return Err(EngineError::Conflict(format!(
                "sandbox {} is {} and cannot be restored",
                target.id, target.state
            )));
        }
        if stateful {
            self.admit_resume(
                &snap,
                target.runtime,
                crate::network::mode_of(&target),
                crate::IdentityAdvice::Restore,
                target.id.as_str(),
            )
            .await?;
        }
        // The steps below and what recovery makes of a crash between any two: see `restore`.
        // 1. Stage the new root beside the old one (a crash leaves the sandbox as it was).
        self.clear_restore_leftovers(&target.id).await?;
        let staged = Tree::staged(&target.id);
        // The new root carries the sandbox's disk limit (counted from zero again).
        self.storage
            .limited_snapshot(&Tree::snapshot(&snap.id), &staged, self.disk_limit(&target))
            .await
            .map_err(|e| self.pool_full_or("restore the snapshot", e.into()))?;
        // Another sandbox's snapshot brings that sandbox's machine id: the target keeps its own.
        if snap.sandbox_id != target.id {
            let own = {
                let root = self.rootfs(&target.id);
                tokio::task::spawn_blocking(move || crate::identity::read_machine_id(&root))
                    .await
                    .ok()
                    .flatten()
            };
            if let Err(e) = self.give_machine_id(self.storage.path(&staged), own).await {
                let _ = self.storage.delete_subvolume(&staged).await;
                return Err(self.pool_full_or("restore the snapshot", e));
            }
        }
        crate::crash_point("restore-after-stage");
        // 2. State first: from here on the restore is finished, by this request or by recovery.
        let restoring = cairn_db::Restoring {
            snapshot: snap.id.clone(),
            fresh: snap.stateful && !stateful,
        };
        let (row, record) = (target.id.clone(), restoring.clone());
        self.db(move |db| db.set_restoring(&row, &record)).await?;
        // 3. Stop the processes.
        if matches!(target.state, SandboxState::Running | SandboxState::Paused) {
            self.note_end(
                &target.id,
                format!(
                    "sandbox {} was restored from snapshot {} while the command ran, which ended it: its {} are the snapshot's now; run the command again if it is still needed",
                    target.id,
                    snap.id,
                    if stateful { "files and processes" } else { "files" }
                ),
            );
            if let Err(e) = self.halt(&target).await {
                // Nothing has changed yet: the sandbox stays as it was.
                let _ = self.storage.delete_subvolume(&staged).await;
                let (row, state, reason) =
                    (target.id.clone(), target.state, target.state_reason.clone());
                self.db(move |db| db.end_restore(&row, state, reason.as_deref()))
                    .await?;
                self.arm(&target).await;
                return Err(e);
            }
        }
        crate::crash_point("restore-after-halt");
        // 4-6. Swap the roots, bring the processes back, record the state.
        self.finish_restore(&target, Some(&snap), restoring.fresh)
            .await?;
        tracing::info!(sandbox = %target.id, snapshot = %snap.id, "snapshot restored");
        Ok(self
            .info(&self.find(account, target.id.as_str()).await?)
            .await)
    }
}
