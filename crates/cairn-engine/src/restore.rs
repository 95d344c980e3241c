//! The second half of a restore in place, shared by `restore_snapshot` (see `snapshots`) and
//! start-up recovery: swap the sandbox's root for the staged one and bring its processes back.
//!
//! A restore goes through these states, each one durable before the next begins:
//!
//! 1. the snapshot's tree is staged beside the sandbox's root as `<id>.restore` (no marker
//!    yet: a crash here leaves the sandbox as it was, and recovery discards the staged tree);
//! 2. the restore marker (the snapshot's id) is set in the sandbox's row: from here on the
//!    restore is finished, by the request or by recovery;
//! 3. the sandbox's container is removed;
//! 4. the roots are swapped by two renames, `<id>` → `<id>.old` and `<id>.restore` → `<id>`,
//!    so that the sandbox's root is never missing and never half-deleted;
//! 5. its origin is recorded, its container made again (its processes resumed from the
//!    snapshot's checkpoint, or booted afresh) and, in one transaction, its state set
//!    (`running`, or `stopped` with the reason when that failed) and the marker cleared;
//! 6. `<id>.old` is deleted (recovery deletes one found without a marker).
//!
//! Recovery finds a marked sandbox in state 2 to 5 and runs [`Engine::finish_restore`] again:
//! every step above is idempotent. So a sandbox whose restore was interrupted comes back
//! restored, or (interrupted before the marker) as it was, and never `running` over a dead
//! container.
//!
//! Not for the checks and the staging themselves (see `snapshots`).

use cairn_db::{Restoring, SandboxRecord, SnapshotRecord};
use cairn_storage::Tree;
use cairn_types::{SandboxId, SandboxState, SnapshotState};

use crate::{Engine, EngineError, Result};

impl Engine {
    /// Removes what an earlier restore of sandbox `id` may have left (a staged root, an old
    /// one), before a new one is staged.
    pub(crate) async fn clear_restore_leftovers(&self, id: &SandboxId) -> Result<()> {
        self.storage.delete_subvolume(&Tree::staged(id)).await?;
        self.storage.delete_subvolume(&Tree::replaced(id)).await?;
        Ok(())
    }

    /// Puts the staged root in the place of sandbox `id`'s root, keeping the old one as
    /// `<id>.old`. Idempotent: after a crash at any point, running it again finishes the swap.
    /// Each rename is durable before the next step.
    async fn swap_roots(&self, id: &SandboxId) -> Result<()> {
        let (root, staged, old) = (Tree::sandbox(id), Tree::staged(id), Tree::replaced(id));
        let storage = &self.storage;
        if storage.exists(&staged) {
            if storage.exists(&root) {
                if storage.exists(&old) {
                    // Leftovers are cleared before staging: this one is older than the restore.
                    storage.delete_subvolume(&old).await?;
                }
                storage.rename(&root, &old).await?;
                crate::crash_point("restore-mid-swap");
            }
            storage.rename(&staged, &root).await?;
        } else if !storage.exists(&root) {
            // Neither staged nor swapped (which the states above never leave): keep the files.
            if storage.exists(&old) {
                storage.rename(&old, &root).await?;
            }
            return Err(EngineError::Internal(format!(
                "the restored root of sandbox {id} is missing; its files are as they were"
            )));
        }
        Ok(())
    }

    /// Deletes the root a restore replaced; best effort (recovery deletes a leftover).
    async fn delete_old_root(&self, id: &SandboxId) {
        if let Err(e) = self.storage.delete_subvolume(&Tree::replaced(id)).await {
            tracing::warn!(sandbox = %id, error = %e, "could not delete the root a restore replaced");
        }
    }

    /// Steps 4 to 6 of a restore of `snap` into `target` (whose lock the caller holds; its
    /// marker is set and its container gone): swap the roots, bring the processes back,
    /// record the final state and clear the marker. `snap` is `None` when the snapshot is gone
    /// (recovery only): the files are swapped and the sandbox left stopped. `fresh`: a
    /// stateful snapshot's files only, booted on rather than its processes resumed. On error
    /// the sandbox is recorded `stopped` with the reason, its marker cleared.
    pub(crate) async fn finish_restore(
        &self,
        target: &SandboxRecord,
        snap: Option<&SnapshotRecord>,
        fresh: bool,
    ) -> Result<()> {
        let id = &target.id;
        let was_running = matches!(target.state, SandboxState::Running | SandboxState::Paused);
        let restart = format!("start it again with 'cairn start {id}'");
        if let Err(e) = self.swap_roots(id).await {
            // The error names host paths: it goes to the log, not to the sandbox's reason.
            tracing::error!(sandbox = %id, error = %e, "a restore could not swap its roots");
            self.end_restore(
                id,
                SandboxState::Stopped,
                Some(format!(
                    "the restore could not put the snapshot's files in place (the cairnd log says why); {restart}"
                )),
            )
            .await?;
            return Err(e);
        }
        crate::crash_point("restore-after-swap");
        let (row, origin) = (id.clone(), snap.map(|s| (s.id.clone(), s.image_id.clone())));
        let released = target.memory_snapshot.is_some();
        self.db(move |db| {
            if let Some((snap, image)) = origin {
                db.set_sandbox_origin(&row, Some(&snap), &image)?;
            }
            if released {
                // The released processes belonged to the discarded files.
                db.set_memory_snapshot(&row, None)?;
            }
            Ok(())
        })
        .await?;
        let up = match snap {
            // Resume the checkpointed processes on the restored files.
            Some(s) if s.stateful && !fresh => Some(
                self.resume_checkpoint(target, s)
                    .await
                    .map_err(|e| ("resuming the snapshot's processes failed", e)),
            ),
            Some(_) if was_running => Some(
                self.boot(target)
                    .await
                    .map_err(|e| ("restart after restore failed", e)),
            ),
            _ => None,
        };
        crate::crash_point("restore-after-start");
        let outcome = match up {
            Some(Ok(())) => {
                self.end_restore(id, SandboxState::Running, None).await?;
                self.arm(target).await;
                Ok(())
            }
            Some(Err((what, e))) => {
                self.end_restore(id, SandboxState::Stopped, Some(format!("{what}: {e}")))
                    .await?;
                Err(e)
            }
            None if snap.is_none() => {
                self.end_restore(
                    id,
                    SandboxState::Stopped,
                    Some(format!("a restore was interrupted and its snapshot is gone, so its processes could not be brought back: its files are the snapshot's; {restart}")),
                )
                .await?;
                Ok(())
            }
            // A stopped sandbox stays stopped, on its new files.
            None => {
                self.end_restore(id, target.state, target.state_reason.clone())
                    .await?;
                Ok(())
            }
        };
        self.delete_old_root(id).await;
        outcome
    }

    /// Records the end of a restore: the sandbox's state and reason, its marker cleared.
    async fn end_restore(
        &self,
        id: &SandboxId,
        state: SandboxState,
        reason: Option<String>,
    ) -> Result<()> {
        let row = id.clone();
        self.db(move |db| db.end_restore(&row, state, reason.as_deref()))
            .await?;
        Ok(())
    }

    /// Makes sandbox `r`'s container again from `snap`'s memory checkpoint.
    async fn resume_checkpoint(&self, r: &SandboxRecord, snap: &SnapshotRecord) -> Result<()> {
        let bundle = self.write_bundle_for(r).await?;
        let rt = self.runtime(r.runtime)?;
        rt.delete(r.id.as_str()).await?;
        rt.restore(r.id.as_str(), &bundle, &self.snapshot_checkpoint(&snap.id))
            .await?;
        if snap.sandbox_id != r.id {
            // Its processes resumed with the hostname of the snapshot's sandbox.
            self.rename_restored(r).await;
        }
        Ok(())
    }

    /// At start-up: finishes the restore of `snap` into `r` that a crash interrupted (its
    /// marker is set). Whatever container is there, the old one or one the interrupted restore
    /// was making, is removed first.
    pub(crate) async fn recover_restore(
        &self,
        r: &SandboxRecord,
        restore: &Restoring,
    ) -> Result<()> {
        let snap = &restore.snapshot;
        tracing::warn!(sandbox = %r.id, snapshot = %snap, fresh = restore.fresh, "finishing a restore that a crash interrupted");
        let rt = self.runtime(r.runtime)?;
        let _ = rt.kill(r.id.as_str(), cairn_runtime::Signal::Kill).await;
        rt.delete(r.id.as_str()).await?;
        let row = snap.clone();
        let snap = self
            .db(move |db| db.snapshot(&row))
            .await?
            .filter(|s| s.state == SnapshotState::Ready);
        if let Err(e) = self.finish_restore(r, snap.as_ref(), restore.fresh).await {
            tracing::warn!(sandbox = %r.id, error = %e, "the interrupted restore could not bring the sandbox back: marked stopped");
        }
        Ok(())
    }
}
