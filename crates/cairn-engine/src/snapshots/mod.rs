//! Snapshots: capture a sandbox's root filesystem as a read-only btrfs
//! subvolume during a brief pause; restore one in place; list, inspect,
//! diff and delete. Forks (`create_sandbox` with `from_snapshot`) live with
//! sandbox creation.
//!
//! Storage keeps each snapshot's directory (its read-only tree, memory checkpoint and
//! manifest: see `cairn_storage::Layout`); the engine names them by id. Every change follows
//! "state column first, side effect second, state update last", and
//! recovery knows each intermediate state.
//!
//! Modules: `admission` (whether a stateful snapshot can resume here), `capture` (pause, files, memory), `checkpoint` (page streams and block
//! sharing with the parent), `manifest` (manifest and runtime identity), `measure` (sizes),
//! `restore` (restore in place).

mod admission;
mod capture;
mod checkpoint;
mod manifest;
mod measure;
mod restore;

pub use manifest::kernel_release;

use chrono::Utc;

use cairn_db::SnapshotRecord;
use cairn_storage::Tree;
use cairn_types::api::{DiffEntry, SnapshotInfo};
use cairn_types::{validate_name, SnapshotId, SnapshotState};

use crate::{Engine, EngineError, Result};

/// Snapshot limits (defaults from the design: 20 per sandbox, 10 GiB per account, 2 GiB per snapshot).
#[derive(Clone, Copy, Debug)]
pub struct SnapshotLimits {
    /// Snapshots one sandbox may have.
    pub per_sandbox: usize,
    /// Bytes of snapshot data one account may hold (each snapshot's own delta, so shared data counts once).
    pub account_bytes: u64,
    /// Largest delta one snapshot may hold.
    pub snapshot_bytes: u64,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        SnapshotLimits {
            per_sandbox: 20,
            account_bytes: 10 << 30,
            snapshot_bytes: 2 << 30,
        }
    }
}

/// A new snapshot's sizes, as measured before it becomes ready.
pub(super) struct Sizes {
    /// Bytes the snapshot holds over its parent (file data written since, plus memory).
    pub(super) size: u64,
    /// The whole tree's bytes, estimated (the parent's plus `size`) until measured.
    pub(super) total_estimate: u64,
    /// Bytes of its memory checkpoint (0 when not stateful).
    pub(super) memory: u64,
}

/// What a capture produced.
pub(super) struct Captured {
    /// Its sizes.
    pub(super) sizes: Sizes,
    /// When the sandbox was paused.
    pub(super) paused_at: std::time::Instant,
    /// Its memory checkpoint is still to be indexed (for the next snapshot to share).
    pub(super) index_later: bool,
}

impl Engine {
    pub(crate) async fn snapshot_info(&self, s: &SnapshotRecord) -> SnapshotInfo {
        let image = self.image_name(&s.image_id).await;
        SnapshotInfo {
            id: s.id.to_string(),
            name: s.name.clone(),
            sandbox: s.sandbox_id.to_string(),
            sandbox_name: s.sandbox_name.clone(),
            parent: s.parent_id.as_ref().map(|p| p.to_string()),
            image,
            runtime: s.runtime,
            stateful: s.stateful,
            auto: s.auto,
            state: s.state,
            error: s.error.clone(),
            size_bytes: s.size_bytes,
            total_bytes: s.total_bytes,
            created_at: s.created_at,
            imported_from: s.imported_from.clone(),
        }
    }

    /// Snapshots `sandbox` (running, paused or stopped) of `account`.
    pub async fn create_snapshot(
        &self,
        account: &str,
        sandbox: &str,
        name: Option<&str>,
        stateful: bool,
    ) -> Result<SnapshotInfo> {
        let none = cairn_types::ProgressSink::none();
        self.create_snapshot_watched(account, sandbox, name, stateful, &none)
            .await
    }

    /// [`Engine::create_snapshot`], reporting a stateful snapshot's memory as it arrives
    /// to `progress` (phase `memory`, bytes).
    pub async fn create_snapshot_watched(
        &self,
        account: &str,
        sandbox: &str,
        name: Option<&str>,
        stateful: bool,
        progress: &cairn_types::ProgressSink,
    ) -> Result<SnapshotInfo> {
        if let Some(n) = name {
            validate_name(n)?;
        }
        let (_guard, r) = self.find_locked(account, sandbox).await?;
        let name = match name {
            Some(n) => n.to_string(),
            None => self.default_name(&r.id, "").await?,
        };
        let snap = self
            .take_snapshot(&r, name, stateful, false, progress)
            .await?;
        Ok(self.snapshot_info(&snap).await)
    }

    /// `<prefix><UTC time to the millisecond>`, with `-2`, `-3`… when a snapshot of the sandbox
    /// already has that name (two snapshots in one millisecond). Call with the sandbox's lock held.
    pub(crate) async fn default_name(
        &self,
        sandbox: &cairn_types::SandboxId,
        prefix: &str,
    ) -> Result<String> {
        let base = format!("{prefix}{}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
        let row = sandbox.clone();
        let taken: std::collections::HashSet<String> = self
            .db(move |db| db.sandbox_snapshots(&row))
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect();
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        Ok(name)
    }

    /// Removes a snapshot's files (subvolume, manifest, directory); best effort.
    pub(crate) async fn remove_snapshot_files(&self, id: &SnapshotId) {
        // Storage waits for its checkpoint's index and lets go of a writer blocked on its pipes.
        if let Err(e) = self.storage.remove_snapshot(id.as_str()).await {
            tracing::warn!(snapshot = %id, error = %e, "could not delete the snapshot subvolume");
        }
    }

    /// Deletes a snapshot. Forks and restored sandboxes are independent subvolumes, so they keep working.
    pub async fn delete_snapshot(&self, account: &str, id: &str) -> Result<()> {
        let s = self.find_snapshot(account, id).await?;
        self.refuse_if_template(&s.id).await?;
        let lock = self.lock_for(&s.sandbox_id);
        let _guard = lock.lock().await;
        let row = s.sandbox_id.clone();
        if let Some(holder) = self.db(move |db| db.sandbox(&row)).await? {
            if holder.memory_snapshot.as_ref() == Some(&s.id) {
                return Err(EngineError::Conflict(format!(
                    "sandbox {} is paused with its processes in snapshot {}: resume (or stop) it first",
                    holder.id, s.id
                )));
            }
        }
        self.purge_snapshot(&s.id).await?;
        tracing::info!(snapshot = %s.id, "snapshot deleted");
        Ok(())
    }

    /// Paths added, modified and deleted from snapshot `a` to snapshot `b`, or to `a`'s live sandbox.
    pub async fn diff_snapshot(
        &self,
        account: &str,
        a: &str,
        b: Option<&str>,
    ) -> Result<Vec<DiffEntry>> {
        let a = self.find_snapshot(account, a).await?;
        let new = match b {
            Some(b) => self
                .storage
                .path(&Tree::snapshot(&self.find_snapshot(account, b).await?.id)),
            None => {
                let live = self.find(account, a.sandbox_id.as_str()).await.map_err(|_| {
                    EngineError::NotFound(format!(
                        "the source sandbox {} of snapshot {} is gone: compare with another snapshot instead",
                        a.sandbox_id, a.id
                    ))
                })?;
                self.rootfs(&live.id)
            }
        };
        let old = self.storage.path(&Tree::snapshot(&a.id));
        let changes = tokio::task::spawn_blocking(move || cairn_storage::diff_trees(&old, &new))
            .await
            .map_err(|e| EngineError::failed("the diff's task ended abnormally", e))?
            .map_err(|e| EngineError::failed("cannot compare the snapshots' trees", e))?;
        Ok(changes
            .into_iter()
            .map(|c| DiffEntry {
                path: c.path,
                kind: serde_json::to_value(c.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                size: c.size,
            })
            .collect())
    }

    /// Deletes every snapshot taken from a sandbox (for `destroy --with-snapshots`), except
    /// those templates hold.
    pub(crate) async fn delete_sandbox_snapshots(
        &self,
        sandbox: &cairn_types::SandboxId,
    ) -> Result<()> {
        let row = sandbox.clone();
        for s in self.db(move |db| db.sandbox_snapshots(&row)).await? {
            // A template holds it: it stays with the template (`template rm` deletes it).
            if self.refuse_if_template(&s.id).await.is_err() {
                tracing::info!(snapshot = %s.id, "kept: a template holds it");
                continue;
            }
            self.purge_snapshot(&s.id).await?;
        }
        Ok(())
    }

    /// Deletes a snapshot crash-safely: the row is marked `deleted` first (recovery finishes
    /// the job from there), then its files go, then the row.
    pub(crate) async fn purge_snapshot(&self, id: &SnapshotId) -> Result<()> {
        let row = id.clone();
        self.db(move |db| db.set_snapshot_state(&row, SnapshotState::Deleted, None))
            .await?;
        self.remove_snapshot_files(id).await;
        let row = id.clone();
        self.db(move |db| db.delete_snapshot(&row)).await?;
        // Its store links (with a remote) stop working with it: the archives they point at
        // are recorded, and go in the background (a slow or unreachable store does not hold
        // up the deletion; what it refuses, or a crash interrupts, is retried at start).
        if let Some(engine) = self.me.upgrade().filter(|e| e.remote.is_some()) {
            let id = id.to_string();
            tokio::spawn(async move { engine.delete_link_archives(&id).await });
        }
        Ok(())
    }
}
