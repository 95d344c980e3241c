//! Start-up recovery: finish or roll back whatever a crash interrupted, so that the database,
//! the pool and the runtimes agree again. Three sources are reconciled: the rows, the
//! subvolumes, and the runtimes' own container lists (with their processes).
//!
//! - `tmp/` is emptied;
//! - images whose import never finished are removed (row and subvolume);
//! - writers blocked on the pipes of a checkpoint the dead cairnd was receiving are let go,
//!   and runtime commands it left running (a `restore`, a `checkpoint`…) are waited for (or
//!   ended), so that no container changes behind recovery's back;
//! - sandboxes left `creating` or `destroyed` are torn down and their rows removed;
//! - sandboxes recorded `running`/`paused` whose container the runtime no
//!   longer knows are marked `stopped` with a reason, so are those whose runtime
//!   ended while cairnd was down (with the reason their cgroup shows); the others
//!   are watched again (see `deaths`), thawed if the row says `running` (a snapshot's pause
//!   window) and frozen again if it says `paused` (a resume cut short); `stopped` ones are
//!   left alone;
//! - an interrupted restore (its marker set) is finished (see `restore`);
//! - snapshots left `creating` become `failed`, `deleted` ones are finished, orphans removed,
//!   failed ones of destroyed sandboxes pruned;
//! - network namespaces and veths of sandboxes that no longer exist are removed, published
//!   ports of the others are listened on again, the bridge goes when no `nat` sandbox is left;
//! - containers that no running or paused row owns are deleted from their runtime, and
//!   gVisor processes of containers the runtime no longer knows are killed;
//! - subvolumes under `pool/sandboxes` that no row owns are deleted (and the staged or old
//!   roots of a restore), so are bundle directories under `run/`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use cairn_runtime::{ContainerStatus, Signal};
use cairn_storage::Tree;
use cairn_types::{SandboxId, SandboxState, SnapshotState};

use crate::{Engine, Result};

/// How long start-up waits for the runtime commands a dead cairnd left running before it
/// kills them: a restore or a checkpoint whose reader is gone ends within seconds.
const SETTLE_WAIT: Duration = Duration::from_secs(20);

impl Engine {
    /// Snapshots left `creating` become `failed` (their files removed), `uploading` ones
    /// (imports) are removed with the image they brought; `deleted` ones are
    /// finished, and so is the pruning of destroyed sandboxes' failed ones; snapshot
    /// directories no row owns are removed. Ready snapshots are never touched.
    async fn recover_snapshots(&self) -> Result<()> {
        let mut known = HashSet::new();
        for s in self.db(|db| db.all_snapshots()).await? {
            match s.state {
                SnapshotState::Creating => {
                    tracing::warn!(snapshot = %s.id, "a snapshot was interrupted; marking it failed");
                    self.remove_snapshot_files(&s.id).await;
                    let row = s.id.clone();
                    self.db(move |db| {
                        db.set_snapshot_state(
                        &row,
                        SnapshotState::Failed,
                        Some("interrupted: cairnd stopped while it was being taken; take it again"),
                    )
                    })
                    .await?;
                }
                SnapshotState::Uploading => {
                    // An import cut short (removed above, before the images).
                    self.abandon_import(&s).await;
                    continue;
                }
                SnapshotState::Deleted => {
                    self.purge_snapshot(&s.id).await?;
                    continue;
                }
                SnapshotState::Failed if self.sandbox_row(&s.sandbox_id).await?.is_none() => {
                    // A destroyed sandbox's failed snapshots go with it (see `catalog`); these
                    // outlived it (cairnd stopped in between, or they predate pruning).
                    tracing::info!(snapshot = %s.id, sandbox = %s.sandbox_id, "pruning a failed snapshot of a destroyed sandbox");
                    self.purge_snapshot(&s.id).await?;
                    continue;
                }
                SnapshotState::Ready | SnapshotState::Failed => {}
            }
            known.insert(s.id.to_string());
        }
        for name in self.storage.snapshot_ids() {
            if !known.contains(&name) {
                if let Ok(id) = name.parse::<cairn_types::SnapshotId>() {
                    tracing::warn!(snapshot = %id, "removing an orphan snapshot directory");
                    self.remove_snapshot_files(&id).await;
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn recover(&self) -> Result<()> {
        // Work in progress: scratch files and uploads an interrupted import left, blobs a
        // registry pull was downloading (its image row and tree go with the unfinished
        // images below).
        let blob_tmp = self.storage.blob_cache_dir().join("tmp");
        for tmp in [self.cfg.home.join("tmp"), self.uploads_dir(), blob_tmp] {
            if let Ok(entries) = std::fs::read_dir(&tmp) {
                for e in entries.flatten() {
                    let p = e.path();
                    let _ = if p.is_dir() {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    };
                }
            }
        }
        // Snapshot imports cut short (see `share`) go before the images they brought.
        for s in self.db(|db| db.all_snapshots()).await? {
            if s.state == SnapshotState::Uploading {
                tracing::warn!(snapshot = %s.id, "a snapshot import was interrupted; removing it");
                self.abandon_import(&s).await;
            }
        }
        for image in self.db(|db| db.unfinished_images()).await? {
            tracing::warn!(image = %image.id, "removing an image whose import was interrupted");
            self.storage
                .delete_subvolume(&Tree::image(&image.id))
                .await?;
            let row = image.id.clone();
            self.db(move |db| db.delete_image(&row)).await?;
        }
        // Blobs a pull cut short by the crash had stored, which no image names.
        self.sweep_blob_cache().await;
        // A checkpoint the dead cairnd was receiving: its writer (CRIU, a gVisor sentry) may
        // wait on a pipe nobody will open. Let it go, so its command can end.
        for id in self.storage.snapshot_ids() {
            self.storage.checkpoints().release_pipes(&id);
        }
        for rt in &self.runtimes {
            let n = rt.settle(SETTLE_WAIT).await;
            if n > 0 {
                tracing::warn!(runtime = %rt.kind(), commands = n, "runtime commands of the previous cairnd have ended");
            }
        }
        let mut known = HashSet::new();
        let mut restores = Vec::new();
        for r in self.db(|db| db.all_sandboxes()).await? {
            let row = r.id.clone();
            if let Some(snap) = self.db(move |db| db.restoring(&row)).await? {
                if matches!(
                    r.state,
                    SandboxState::Running | SandboxState::Paused | SandboxState::Stopped
                ) {
                    // Finished once the snapshots and the network are recovered.
                    known.insert(r.id.to_string());
                    restores.push((r, snap));
                    continue;
                }
            }
            match r.state {
                SandboxState::Creating | SandboxState::Destroyed => {
                    tracing::warn!(sandbox = %r.id, state = %r.state, "finishing an interrupted create/destroy");
                    self.teardown(&r).await;
                    let row = r.id.clone();
                    self.db(move |db| db.delete_sandbox(&row)).await?;
                    continue;
                }
                SandboxState::Paused if r.memory_snapshot.is_some() => {
                    // Its processes live in a checkpoint; a container left by a crash during
                    // the release is frozen and would block the restore: remove it.
                    let rt = self.runtime(r.runtime)?;
                    let _ = rt.kill(r.id.as_str(), Signal::Kill).await;
                    let _ = rt.delete(r.id.as_str()).await;
                    tracing::info!(sandbox = %r.id, "sandbox paused with its memory on disk");
                }
                SandboxState::Running | SandboxState::Paused => {
                    let rt = self.runtime(r.runtime)?;
                    let state = rt.state(r.id.as_str()).await;
                    if let Ok(Some(s)) = &state {
                        if s.status == ContainerStatus::Stopped {
                            // Its runtime ended while cairnd was down: the container and its
                            // cgroup are still there to say why.
                            self.record_death(&r, None, true).await;
                            self.remove_dead(&r).await;
                            known.insert(r.id.to_string());
                            continue;
                        }
                    }
                    let alive = match state {
                        Ok(Some(s))
                            if s.status == ContainerStatus::Paused
                                && r.state == SandboxState::Running =>
                        {
                            // cairnd stopped inside a snapshot's pause window: thaw it.
                            tracing::warn!(sandbox = %r.id, "thawing a sandbox left frozen by an interrupted snapshot");
                            if let Err(e) = rt.resume(r.id.as_str()).await {
                                tracing::warn!(sandbox = %r.id, error = %e, "could not thaw it");
                            }
                            true
                        }
                        Ok(Some(s))
                            if s.status == ContainerStatus::Running
                                && r.state == SandboxState::Paused =>
                        {
                            // A resume cut short before its row was written: the row says paused.
                            tracing::warn!(sandbox = %r.id, "freezing a paused sandbox that an interrupted resume thawed");
                            if let Err(e) = rt.pause(r.id.as_str()).await {
                                tracing::warn!(sandbox = %r.id, error = %e, "could not freeze it");
                            }
                            true
                        }
                        Ok(Some(s)) => s.status.is_up(),
                        Ok(None) => false,
                        Err(e) => {
                            tracing::warn!(sandbox = %r.id, error = %e, "cannot ask the runtime about a sandbox");
                            false
                        }
                    };
                    if alive {
                        tracing::info!(sandbox = %r.id, "sandbox found running again");
                        self.arm(&r).await;
                        self.adopt_agent(&r.id);
                        self.arm_agent_init(&r).await;
                    } else {
                        let _ = rt.delete(r.id.as_str()).await;
                        let row = r.id.clone();
                        self.db(move |db| db.set_state(
                            &row,
                            SandboxState::Stopped,
                            Some("its processes were gone when cairnd restarted (host reboot or runtime state lost); start it again with 'cairn start'"),
                        ))
                        .await?;
                        tracing::warn!(sandbox = %r.id, "sandbox was not running any more; marked stopped");
                    }
                }
                SandboxState::Stopped | SandboxState::Failed => {}
            }
            known.insert(r.id.to_string());
        }
        self.recover_snapshots().await?;
        self.recover_network().await?;
        for (r, snap) in restores {
            self.recover_restore(&r, &snap).await?;
        }
        self.remove_unowned_containers().await?;
        self.remove_unowned_bundles(&known);
        for tree in self.storage.sandbox_trees().await? {
            match &tree {
                // An interrupted restore staged `<id>.restore`: discard it while the old root
                // is there, otherwise the old root was already deleted: move the staged one
                // into place.
                Tree::Staged(id) => {
                    let root = Tree::sandbox(id);
                    if known.contains(id) && !self.storage.exists(&root) {
                        tracing::warn!(sandbox = %id, "finishing an interrupted restore");
                        let _ = self.storage.rename(&tree, &root).await;
                    } else {
                        tracing::warn!(sandbox = %id, "discarding an interrupted restore");
                        self.storage.delete_subvolume(&tree).await?;
                    }
                }
                Tree::Replaced(id) => {
                    // A restore ended (its marker cleared) before the root it replaced was
                    // deleted.
                    tracing::warn!(sandbox = %id, "deleting the root an interrupted restore replaced");
                    self.storage.delete_subvolume(&tree).await?;
                }
                Tree::Sandbox(id) if !known.contains(id) => {
                    tracing::warn!(subvolume = %id, "deleting an orphan sandbox root");
                    self.storage.delete_subvolume(&tree).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Deletes every container that no running or paused row (with its processes in memory)
    /// of the same runtime owns: one a crash left behind a `creating`, `destroyed` or
    /// `stopped` row, or for no row at all. Then kills the runtimes' processes of containers
    /// they no longer know.
    async fn remove_unowned_containers(&self) -> Result<()> {
        let rows: HashMap<SandboxId, cairn_db::SandboxRecord> = self
            .db(|db| db.all_sandboxes())
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect();
        for rt in &self.runtimes {
            let kind = rt.kind();
            let listed = match rt.list().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(runtime = %kind, error = %e, "cannot list the runtime's containers");
                    continue;
                }
            };
            for c in listed {
                let owner = c.id.parse::<SandboxId>().ok().and_then(|id| rows.get(&id));
                let owned = owner.is_some_and(|r| {
                    r.runtime == kind
                        && matches!(r.state, SandboxState::Running | SandboxState::Paused)
                        && r.memory_snapshot.is_none()
                });
                if owned {
                    continue;
                }
                tracing::warn!(runtime = %kind, container = %c.id, status = %c.state.status, row = ?owner.map(|r| r.state), "deleting a container that no sandbox owns");
                if let Err(e) = rt.delete(&c.id).await {
                    tracing::warn!(runtime = %kind, container = %c.id, error = %e, "could not delete it");
                }
            }
            match rt.end_strays().await {
                Ok(pids) if !pids.is_empty() => {
                    tracing::warn!(runtime = %kind, ?pids, "killed processes of containers the runtime no longer knows");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(runtime = %kind, error = %e, "cannot look for stray processes")
                }
            }
        }
        Ok(())
    }

    /// Removes the bundle directories under `run/` of sandboxes that have no row.
    fn remove_unowned_bundles(&self, known: &HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(self.cfg.home.join("run")) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<SandboxId>().is_ok() && !known.contains(&name) {
                tracing::warn!(sandbox = %name, "removing the bundle of a sandbox that no longer exists");
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}
