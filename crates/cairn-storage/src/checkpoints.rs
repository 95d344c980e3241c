//! The checkpoint store: where snapshots' memory checkpoints are received, stored sharing
//! the blocks of their parent's checkpoint, and indexed for the next one to share.
//!
//! A runtime writes a checkpoint into [`CheckpointStore::dir`]; its page data may instead
//! stream through pipes made by [`CheckpointStore::receive`] (see [`crate::dedup`]), stored
//! compressed as it arrives, each page the parent's checkpoint holds as a share of it.
//! Afterwards [`CheckpointStore::share`] shares what the runtime wrote itself and writes
//! the block index; a checkpoint with nothing to share is indexed after its snapshot is
//! ready, in the background ([`CheckpointStore::index_later`]).
//!
//! Callers name checkpoints by snapshot id; the file names stay inside this crate. Not
//! for: deciding which pages a runtime streams (the runtime names them).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::dedup::{self, Received, Receiving, Reference};
use crate::{Layout, StorageError};

/// The memory checkpoints of one pool's snapshots. Cheap to clone.
#[derive(Clone, Debug)]
pub struct CheckpointStore {
    layout: Layout,
    /// Checkpoints whose block index is being built in the background: each sender is
    /// dropped when its index is written (or failed).
    indexing: Arc<Mutex<HashMap<String, tokio::sync::watch::Receiver<()>>>>,
}

impl CheckpointStore {
    /// The checkpoints of the pool laid out as `layout`.
    pub fn new(layout: Layout) -> CheckpointStore {
        CheckpointStore {
            layout,
            indexing: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The directory that holds snapshot `id`'s checkpoint: where the runtime writes it,
    /// and restores from.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.layout.checkpoint_dir(id)
    }

    /// Makes snapshot `id`'s (empty) checkpoint directory, in a snapshot directory that
    /// exists, with btrfs compressing the files written into it (see
    /// [`crate::compress_new_files`]). An error costs only the compression: the runtime
    /// makes the directory itself.
    pub fn prepare(&self, id: &str) -> std::io::Result<()> {
        let dir = self.dir(id);
        std::fs::create_dir(&dir).and_then(|()| crate::compress_new_files(&dir).map(|_| ()))
    }

    /// Whether snapshot `id`'s checkpoint has its block index (so a later one can share it).
    pub fn has_index(&self, id: &str) -> bool {
        self.layout.checkpoint_index(id).exists()
    }

    /// Opens `parent`'s checkpoint for snapshot `id` to share; `None` (logged) when it has
    /// no index or cannot be read.
    fn reference(&self, id: &str, parent: Option<&str>) -> Option<Reference> {
        let parent = parent.filter(|p| self.has_index(p))?;
        Reference::open(&self.dir(parent), &self.layout.checkpoint_index(parent))
            .inspect_err(|e| {
                tracing::warn!(snapshot = %id, error = %e, "the memory checkpoint is stored whole: its parent's cannot be shared");
            })
            .ok()
    }

    /// Before snapshot `id`'s memory checkpoint: a pipe for each file of `names` (in its
    /// checkpoint directory) where the runtime streams that file's page data, stored as it
    /// arrives, each block `parent`'s checkpoint holds as a share of it and the others
    /// compressed. With nothing to share (no parent, or no readable index) the pages are not
    /// hashed either: they are indexed after `ready` ([`Self::index_later`]). Blocking.
    pub fn receive(
        &self,
        id: &str,
        parent: Option<&str>,
        names: &[String],
    ) -> Result<Receiving, StorageError> {
        let reference = self.reference(id, parent);
        dedup::receive(&self.dir(id), names, reference)
    }

    /// After snapshot `id`'s memory checkpoint: makes the files the runtime wrote itself share
    /// the blocks `parent`'s checkpoint holds (by content: pages that moved are found too),
    /// and writes the index of the whole checkpoint for the next snapshot (a failure to
    /// write it is logged). `received`: what [`Self::receive`] stored. Returns the bytes
    /// shared; on error every file stays complete. Blocking.
    pub fn share(
        &self,
        id: &str,
        parent: Option<&str>,
        received: Option<Received>,
    ) -> Result<u64, StorageError> {
        let received =
            received.unwrap_or_else(|| Received::from_reference(self.reference(id, parent)));
        let shared = dedup::share_blocks(&self.dir(id), received)?;
        if let Err(e) = shared.index.write(&self.layout.checkpoint_index(id)) {
            tracing::warn!(snapshot = %id, error = %e, "the next snapshot's memory will be stored whole");
        }
        Ok(shared.shared_bytes)
    }

    /// Indexes ready snapshot `id`'s checkpoint in the background, for the next snapshot to
    /// share its pages ([`Self::wait_for_index`] waits for it). Without an index (a failure,
    /// or a crash before it is written) the next checkpoint is stored whole.
    pub fn index_later(&self, id: &str) {
        let (done, waiting) = tokio::sync::watch::channel(());
        if let Ok(mut map) = self.indexing.lock() {
            map.insert(id.to_string(), waiting);
        }
        let (store, id) = (self.clone(), id.to_string());
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let written = dedup::index_files(&store.dir(&id))
                .and_then(|index| index.write(&store.layout.checkpoint_index(&id)));
            match written {
                Ok(()) => {
                    let index_us = started.elapsed().as_micros() as u64;
                    tracing::info!(snapshot = %id, index_us, "memory checkpoint indexed");
                }
                Err(e) => {
                    tracing::warn!(snapshot = %id, error = %e, "the next snapshot's memory will be stored whole");
                }
            }
            if let Ok(mut map) = store.indexing.lock() {
                map.remove(&id);
            }
            drop(done);
        });
    }

    /// Waits until snapshot `id`'s checkpoint is indexed, if that is under way.
    pub async fn wait_for_index(&self, id: &str) {
        let waiting = self.indexing.lock().ok().and_then(|m| m.get(id).cloned());
        if let Some(mut waiting) = waiting {
            // Returns once the sender is dropped, that is once the index is written (or failed).
            let _ = waiting.changed().await;
        }
    }

    /// Bytes of snapshot `id`'s checkpoint: its files' sizes (a file with several links
    /// counted once; 0 when it has none). Blocking.
    pub fn bytes(&self, id: &str) -> u64 {
        let mut total = 0u64;
        let mut seen = HashSet::new();
        let mut pending = vec![self.dir(id)];
        while let Some(dir) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(md) = entry.metadata() else { continue };
                if md.is_dir() {
                    pending.push(entry.path());
                } else if md.is_file() && (md.nlink() <= 1 || seen.insert((md.dev(), md.ino()))) {
                    total = total.saturating_add(md.len());
                }
            }
        }
        total
    }

    /// Lets go of a writer (CRIU, a gVisor sentry) blocked on a pipe of snapshot `id`'s
    /// checkpoint whose reader is gone (a crash, an interrupted capture), removing the pipes.
    pub fn release_pipes(&self, id: &str) {
        dedup::release_pipes(&self.dir(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_measures_its_files_once_each() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::new(Layout::new(root.path()));
        assert_eq!(store.bytes("snap-1"), 0, "no checkpoint");
        std::fs::create_dir_all(store.dir("snap-1").join("sub")).expect("mkdir");
        std::fs::write(store.dir("snap-1").join("pages.img"), vec![1u8; 5000]).expect("write");
        std::fs::write(store.dir("snap-1").join("sub/core.img"), vec![2u8; 300]).expect("write");
        std::fs::hard_link(
            store.dir("snap-1").join("pages.img"),
            store.dir("snap-1").join("pages-again.img"),
        )
        .expect("link");
        assert_eq!(store.bytes("snap-1"), 5300);
    }
}
