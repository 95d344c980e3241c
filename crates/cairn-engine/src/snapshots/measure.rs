//! Sizes: what a snapshot holds over its parent, and its whole tree.

use cairn_db::SnapshotRecord;
use cairn_storage::Tree;

use crate::{Engine, EngineError, Result};

use super::Sizes;

impl Engine {
    /// (bytes written since the parent snapshot — or the image — plus the memory
    /// checkpoint, an estimate of the whole tree's bytes). Asks btrfs for the file
    /// data newer than the parent's generation, so it costs time in proportion to
    /// what changed, not to the size of the tree.
    /// `shared`: bytes of the memory checkpoint that its parent's holds (not counted).
    pub(super) async fn measure(&self, snap: &SnapshotRecord, shared: u64) -> Result<Sizes> {
        let (base, base_total) = match &snap.parent_id {
            Some(p) => {
                let parent = p.clone();
                (
                    Tree::snapshot(p),
                    self.db(move |db| db.snapshot(&parent))
                        .await?
                        .map(|s| s.total_bytes)
                        .unwrap_or(0),
                )
            }
            None => {
                let image = snap.image_id.clone();
                (
                    Tree::image(&snap.image_id),
                    self.db(move |db| db.image(&image))
                        .await?
                        .map(|i| i.size_bytes)
                        .unwrap_or(0),
                )
            }
        };
        // A parent that cannot be read (gone) counts everything as new.
        let since = self.generation_of(&base).await.unwrap_or(0);
        let tree = Tree::snapshot(&snap.id);
        let written = self.storage.bytes_written_since(&tree, since).await?;
        self.remember_generation(&tree, written.generation);
        let memory = if snap.stateful {
            let (store, id) = (self.storage.checkpoints().clone(), snap.id.clone());
            tokio::task::spawn_blocking(move || store.bytes(id.as_str()))
                .await
                .map_err(|e| {
                    EngineError::failed("the checkpoint's measuring task ended abnormally", e)
                })?
        } else {
            0
        };
        let size = written.bytes + memory.saturating_sub(shared);
        Ok(Sizes {
            size,
            total_estimate: base_total + size,
            memory,
        })
    }

    /// The generation of a read-only tree (image or snapshot), cached: it never changes.
    pub(super) async fn generation_of(&self, tree: &Tree) -> Result<u64> {
        let known = self
            .generations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tree)
            .copied();
        if let Some(g) = known {
            return Ok(g);
        }
        let g = self.storage.generation(tree).await?;
        self.remember_generation(tree, g);
        Ok(g)
    }

    pub(super) fn remember_generation(&self, tree: &Tree, generation: u64) {
        self.generations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tree.clone(), generation);
    }

    /// Measures the whole tree of a ready snapshot in the background (every file
    /// extent it references, which grows with the tree, so it does not hold up
    /// `ready`) and replaces the estimate. `memory`: the checkpoint's bytes, already measured.
    pub(super) fn measure_total_later(&self, snap: &SnapshotRecord, memory: u64) {
        let (db, storage) = (self.db.clone(), self.storage.clone());
        let id = snap.id.clone();
        let tree = Tree::snapshot(&snap.id);
        tokio::spawn(async move {
            let files = match storage.bytes_written_since(&tree, 0).await {
                Ok(w) => w.bytes,
                Err(e) => {
                    tracing::debug!(snapshot = %id, error = %e, "could not measure the snapshot's tree");
                    return;
                }
            };
            let row = id.clone();
            let recorded =
                tokio::task::spawn_blocking(move || db.set_snapshot_total(&row, files + memory))
                    .await;
            if let Ok(Err(e)) = recorded {
                tracing::warn!(snapshot = %id, error = %e, "could not record the snapshot's total size");
            }
        });
    }
}
