//! [`Storage`] for [`BtrfsStorage`]: keys are turned into pool paths by the driver's
//! [`Layout`] and handed to its operations by path (see `btrfs`).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use crate::{
    BtrfsStorage, CheckpointStore, Layout, Manifest, Storage, StorageError, Tree, Written,
};

impl BtrfsStorage {
    fn at(&self, tree: &Tree) -> PathBuf {
        self.layout.tree(tree)
    }
}

/// Fsyncs the directory holding `path`, so that a rename into it is durable.
fn sync_parent(path: &Path) -> Result<(), StorageError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("syncing", dir))
}

#[async_trait]
impl Storage for BtrfsStorage {
    fn path(&self, tree: &Tree) -> PathBuf {
        self.at(tree)
    }

    fn root(&self) -> &Path {
        self.pool().root()
    }

    fn uploads_dir(&self) -> PathBuf {
        self.layout.uploads_dir()
    }

    fn blob_cache_dir(&self) -> PathBuf {
        self.layout.blob_cache_dir()
    }

    fn free_bytes(&self) -> Result<u64, StorageError> {
        self.pool().free_bytes()
    }

    fn total_bytes(&self) -> Result<u64, StorageError> {
        self.pool().total_bytes()
    }

    fn limits_writes(&self) -> bool {
        BtrfsStorage::limits_writes(self)
    }

    async fn create_subvolume(&self, tree: &Tree) -> Result<(), StorageError> {
        BtrfsStorage::create_subvolume(self, &self.at(tree)).await
    }

    async fn snapshot(&self, src: &Tree, dst: &Tree, readonly: bool) -> Result<(), StorageError> {
        BtrfsStorage::snapshot(self, &self.at(src), &self.at(dst), readonly).await
    }

    async fn set_readonly(&self, tree: &Tree, readonly: bool) -> Result<(), StorageError> {
        BtrfsStorage::set_readonly(self, &self.at(tree), readonly).await
    }

    async fn delete_subvolume(&self, tree: &Tree) -> Result<(), StorageError> {
        BtrfsStorage::delete_subvolume(self, &self.at(tree)).await
    }

    fn exists(&self, tree: &Tree) -> bool {
        fs::symlink_metadata(self.at(tree)).is_ok()
    }

    async fn rename(&self, from: &Tree, to: &Tree) -> Result<(), StorageError> {
        let (from, to) = (self.at(from), self.at(to));
        fs::rename(&from, &to).map_err(StorageError::io("renaming", &from))?;
        sync_parent(&to)
    }

    async fn sandbox_trees(&self) -> Result<Vec<Tree>, StorageError> {
        let names = self.list_subvolumes(&self.layout.sandboxes_dir()).await?;
        Ok(names.iter().map(|n| Layout::sandbox_tree(n)).collect())
    }

    async fn generation(&self, tree: &Tree) -> Result<u64, StorageError> {
        BtrfsStorage::generation(self, &self.at(tree)).await
    }

    async fn bytes_written_since(&self, tree: &Tree, since: u64) -> Result<Written, StorageError> {
        BtrfsStorage::bytes_written_since(self, &self.at(tree), since).await
    }

    async fn limited_snapshot(
        &self,
        src: &Tree,
        dst: &Tree,
        limit: Option<u64>,
    ) -> Result<(), StorageError> {
        BtrfsStorage::limited_snapshot(self, &self.at(src), &self.at(dst), limit).await
    }

    async fn set_write_limits(&self, trees: &[(Tree, Option<u64>)]) -> Result<(), StorageError> {
        let trees: Vec<(PathBuf, Option<u64>)> =
            trees.iter().map(|(t, l)| (self.at(t), *l)).collect();
        BtrfsStorage::set_write_limits(self, &trees).await
    }

    fn written_bytes(&self, tree: &Tree) -> Result<Option<u64>, StorageError> {
        BtrfsStorage::written_bytes(self, &self.at(tree))
    }

    fn write_budget(&self) -> Result<Option<(u64, Option<u64>)>, StorageError> {
        BtrfsStorage::write_budget(self)
    }

    async fn set_write_budget(&self, bytes: u64) -> Result<(), StorageError> {
        BtrfsStorage::set_write_budget(self, bytes).await
    }

    async fn create_snapshot_dir(&self, id: &str, stateful: bool) -> Result<(), StorageError> {
        let dir = self.layout.snapshot_dir(id);
        fs::create_dir_all(&dir).map_err(StorageError::io("creating", &dir))?;
        if stateful {
            // CRIU and runsc (Cairn asks it for no compression) write memory as it is. The
            // pages that reach Cairn through pipes are compressed by Cairn; btrfs compresses
            // what the runtime writes itself (its state, pages written without a pipe) on its
            // way to disk, so the flush before `ready` writes less.
            if let Err(e) = self.checkpoints.prepare(id) {
                tracing::warn!(snapshot = %id, error = %e, "memory checkpoint stored uncompressed");
            }
        }
        Ok(())
    }

    async fn remove_snapshot(&self, id: &str) -> Result<(), StorageError> {
        // Its index is not written into a directory being removed.
        self.checkpoints.wait_for_index(id).await;
        // A CRIU still waiting on a pipe of an interrupted checkpoint is let go.
        self.checkpoints.release_pipes(id);
        let deleted = BtrfsStorage::delete_subvolume(self, &self.at(&Tree::snapshot(id))).await;
        let _ = fs::remove_dir_all(self.layout.snapshot_dir(id));
        deleted
    }

    fn snapshot_ids(&self) -> Vec<String> {
        let dir = self.layout.snapshots_dir();
        let mut ids: Vec<String> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot list the snapshot directories");
                Vec::new()
            }
        };
        ids.sort();
        ids
    }

    fn save_manifest(&self, id: &str, manifest: &Manifest) -> Result<(), StorageError> {
        manifest.save(&self.layout.snapshot_dir(id))
    }

    fn load_manifest(&self, id: &str) -> Result<Manifest, StorageError> {
        Manifest::load(&self.layout.snapshot_dir(id))
    }

    async fn sync_snapshot(&self, id: &str) -> Result<(), StorageError> {
        let dir = self.layout.snapshot_dir(id);
        tokio::task::spawn_blocking(move || {
            fs::File::open(&dir)
                .and_then(|f| Ok(rustix::fs::syncfs(&f)?))
                .map_err(StorageError::io("flushing", &dir))
        })
        .await
        .map_err(|e| StorageError::io("flushing", "the pool")(std::io::Error::other(e)))?
    }

    fn checkpoints(&self) -> &CheckpointStore {
        &self.checkpoints
    }
}
