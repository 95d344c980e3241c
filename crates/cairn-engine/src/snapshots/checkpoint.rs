//! Memory checkpoints: page streams into the snapshot directory, blocks shared with
//! the parent snapshot's checkpoint, and the block index written in the background.

use std::path::PathBuf;

use cairn_db::SnapshotRecord;
use cairn_types::SnapshotId;

use crate::Engine;

/// Beside a runc snapshot's `checkpoint/`: the hash of each of its pages, which the next
/// snapshot's checkpoint looks its pages up in to share the unchanged ones.
pub(super) const CHECKPOINT_BLOCKS: &str = "checkpoint.blocks";

impl Engine {
    /// The parent's checkpoint directory and block index, when it has one.
    pub(super) fn parent_checkpoint(&self, snap: &SnapshotRecord) -> Option<(PathBuf, PathBuf)> {
        let p = snap.parent_id.as_ref()?;
        let index = self
            .snapshots_dir()
            .join(p.as_str())
            .join(CHECKPOINT_BLOCKS);
        index.exists().then(|| (self.snapshot_checkpoint(p), index))
    }

    /// Opens the parent's checkpoint for sharing; `None` (logged) when it cannot be.
    pub(super) fn open_reference(
        id: &SnapshotId,
        parent: Option<(PathBuf, PathBuf)>,
    ) -> Option<cairn_storage::Reference> {
        let (dir, index) = parent?;
        cairn_storage::Reference::open(&dir, &index)
            .inspect_err(|e| {
                tracing::warn!(snapshot = %id, error = %e, "the memory checkpoint is stored whole: its parent's cannot be shared");
            })
            .ok()
    }

    /// Before a memory checkpoint: pipes where the page data arrive (CRIU's page images, or
    /// runsc's pages file). What the parent's checkpoint holds is stored as a share of it;
    /// the rest is compressed and written straight to disk while the runtime still dumps
    /// (see `cairn_storage::compressed`). With nothing to share (no parent checkpoint, or
    /// one that cannot be read) the pages are not hashed either: they are indexed after
    /// `ready`. `None` (logged) when the pipes cannot be made: the runtime writes plain
    /// files, shared after the dump.
    pub(super) async fn receive_checkpoint(
        &self,
        dir: &std::path::Path,
        snap: &SnapshotRecord,
    ) -> Option<cairn_storage::Receiving> {
        let checkpoint = dir.join("checkpoint");
        let parent = self.parent_checkpoint(snap);
        let id = snap.id.clone();
        let names = self
            .runtime(snap.runtime)
            .map(|rt| rt.checkpoint_streams())
            .unwrap_or_default();
        let made = tokio::task::spawn_blocking(move || {
            let reference = Self::open_reference(&id, parent);
            cairn_storage::receive(&checkpoint, &names, reference).map(Some)
        })
        .await;
        let error = match made {
            Ok(Ok(r)) => return r,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(snapshot = %snap.id, error, "CRIU writes the memory checkpoint to plain files");
        None
    }

    /// After a memory checkpoint: makes the files the runtime wrote itself share the blocks the
    /// parent's checkpoint holds (by content: pages that moved are found too), and writes
    /// the index of the whole checkpoint for the next snapshot. Returns the bytes shared.
    /// A failure only costs the saving: every file stays complete.
    pub(super) async fn share_checkpoint(
        &self,
        dir: &std::path::Path,
        snap: &SnapshotRecord,
        received: Option<cairn_storage::Received>,
    ) -> u64 {
        let checkpoint = dir.join("checkpoint");
        let index = dir.join(CHECKPOINT_BLOCKS);
        let parent = self.parent_checkpoint(snap);
        let id = snap.id.clone();
        let started = std::time::Instant::now();
        let done = tokio::task::spawn_blocking(move || {
            let received = received.unwrap_or_else(|| {
                cairn_storage::Received::from_reference(Self::open_reference(&id, parent))
            });
            let shared = cairn_storage::share_blocks(&checkpoint, received)?;
            if let Err(e) = shared.index.write(&index) {
                tracing::warn!(snapshot = %id, error = %e, "the next snapshot's memory will be stored whole");
            }
            Ok::<_, cairn_storage::StorageError>(shared.shared_bytes)
        })
        .await;
        let error = match done {
            Ok(Ok(shared)) => {
                let share_us = started.elapsed().as_micros() as u64;
                tracing::info!(snapshot = %snap.id, shared, share_us, "memory checkpoint shares its parent's unchanged pages");
                return shared;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(snapshot = %snap.id, error, "the memory checkpoint is stored whole");
        0
    }

    /// Indexes a ready snapshot's memory checkpoint in the background, for the next snapshot
    /// to share its pages ([`Self::wait_for_index`] waits for it). Without an index (a
    /// failure, or a crash before it is written) the next checkpoint is stored whole.
    pub(super) fn index_later(&self, id: &SnapshotId) {
        let dir = self.snapshots_dir().join(id.as_str());
        let (done, waiting) = tokio::sync::watch::channel(());
        if let Ok(mut map) = self.indexing.lock() {
            map.insert(id.clone(), waiting);
        }
        let (indexing, id) = (self.indexing.clone(), id.clone());
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let written = cairn_storage::index_files(&dir.join("checkpoint"))
                .and_then(|index| index.write(&dir.join(CHECKPOINT_BLOCKS)));
            match written {
                Ok(()) => {
                    let index_us = started.elapsed().as_micros() as u64;
                    tracing::info!(snapshot = %id, index_us, "memory checkpoint indexed");
                }
                Err(e) => {
                    tracing::warn!(snapshot = %id, error = %e, "the next snapshot's memory will be stored whole");
                }
            }
            if let Ok(mut map) = indexing.lock() {
                map.remove(&id);
            }
            drop(done);
        });
    }

    /// Waits until snapshot `id`'s memory checkpoint is indexed, if that is under way.
    pub(super) async fn wait_for_index(&self, id: &SnapshotId) {
        let waiting = self.indexing.lock().ok().and_then(|m| m.get(id).cloned());
        if let Some(mut waiting) = waiting {
            // Returns once the sender is dropped, that is once the index is written (or failed).
            let _ = waiting.changed().await;
        }
    }

    pub(crate) fn snapshot_checkpoint(&self, id: &SnapshotId) -> PathBuf {
        self.snapshots_dir().join(id.as_str()).join("checkpoint")
    }
}
