//! Memory checkpoints: the engine's side of storage's checkpoint store
//! (`cairn_storage::CheckpointStore`): which pages a runtime streams, and when the store
//! receives, shares and indexes them (off the async workers).

use std::path::PathBuf;

use cairn_db::SnapshotRecord;
use cairn_storage::{Received, Receiving};
use cairn_types::SnapshotId;

use crate::Engine;

impl Engine {
    /// Whether `snap`'s parent has a memory checkpoint with a block index to share.
    pub(super) fn parent_has_index(&self, snap: &SnapshotRecord) -> bool {
        snap.parent_id
            .as_ref()
            .is_some_and(|p| self.storage.checkpoints().has_index(p.as_str()))
    }

    /// Before a memory checkpoint: pipes where the page data arrive (CRIU's page images, or
    /// runsc's pages file). What the parent's checkpoint holds is stored as a share of it;
    /// the rest is compressed and written straight to disk while the runtime still dumps
    /// (see `cairn_storage::compressed`). With nothing to share (no parent checkpoint, or
    /// one that cannot be read) the pages are not hashed either: they are indexed after
    /// `ready`. `None` (logged) when the pipes cannot be made: the runtime writes plain
    /// files, shared after the dump.
    pub(super) async fn receive_checkpoint(&self, snap: &SnapshotRecord) -> Option<Receiving> {
        let store = self.storage.checkpoints().clone();
        let (id, parent) = (snap.id.clone(), snap.parent_id.clone());
        let names = self
            .runtime(snap.runtime)
            .map(|rt| rt.checkpoint_streams())
            .unwrap_or_default();
        let made = tokio::task::spawn_blocking(move || {
            store.receive(id.as_str(), parent.as_ref().map(|p| p.as_str()), &names)
        })
        .await;
        let error = match made {
            Ok(Ok(r)) => return Some(r),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(snapshot = %snap.id, error, "CRIU writes the memory checkpoint to plain files");
        None
    }

    /// After a memory checkpoint: makes the files the runtime wrote itself share the blocks the
    /// parent's checkpoint holds, and writes the index of the whole checkpoint for the next
    /// snapshot. Returns the bytes shared. A failure only costs the saving: every file stays
    /// complete.
    pub(super) async fn share_checkpoint(
        &self,
        snap: &SnapshotRecord,
        received: Option<Received>,
    ) -> u64 {
        let store = self.storage.checkpoints().clone();
        let (id, parent) = (snap.id.clone(), snap.parent_id.clone());
        let started = std::time::Instant::now();
        let done = tokio::task::spawn_blocking(move || {
            store.share(id.as_str(), parent.as_ref().map(|p| p.as_str()), received)
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
    /// to share its pages ([`Self::wait_for_index`] waits for it).
    pub(super) fn index_later(&self, id: &SnapshotId) {
        self.storage.checkpoints().index_later(id.as_str());
    }

    /// Waits until snapshot `id`'s memory checkpoint is indexed, if that is under way.
    pub(super) async fn wait_for_index(&self, id: &SnapshotId) {
        self.storage.checkpoints().wait_for_index(id.as_str()).await;
    }

    /// The directory of snapshot `id`'s memory checkpoint, which the runtime writes and
    /// restores from.
    pub(crate) fn snapshot_checkpoint(&self, id: &SnapshotId) -> PathBuf {
        self.storage.checkpoints().dir(id.as_str())
    }
}
