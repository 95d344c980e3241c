//! [`DirStorage`]: a [`Storage`] on plain directories, for tests without root or btrfs.
//!
//! Trees are directories and a snapshot of one is a copy, so it is slow for large trees
//! and shares nothing; it has no write limits. It lays out its directory as the btrfs
//! driver lays out its pool ([`Layout`]) and keeps snapshot directories, manifests and
//! memory checkpoints the same way, so it proves the [`Storage`] trait can be implemented
//! without btrfs, and lets engine tests run as an ordinary user.
//!
//! Not for: measuring anything. Every tree counts all its bytes as written since any
//! generation (a copy shares no data).

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use cairn_storage::{CheckpointStore, Layout, Manifest, Storage, StorageError, Tree, Written};

/// A storage driver on plain directories under one root.
#[derive(Debug)]
pub struct DirStorage {
    layout: Layout,
    checkpoints: CheckpointStore,
    /// Trees made read-only (the driver refuses nothing: it only remembers).
    readonly: Mutex<HashSet<PathBuf>>,
    /// A counter that grows with every tree made: each tree's generation.
    generation: AtomicU64,
}

/// An I/O error of `action` on `path`.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io {
        action,
        path,
        source,
    }
}

/// Copies the tree `src` to `dst` (which must not exist): directories, files and symbolic
/// links, with their permissions.
fn copy_tree(src: &Path, dst: &Path) -> Result<(), StorageError> {
    fs::create_dir(dst).map_err(io("creating", dst))?;
    let meta = fs::metadata(src).map_err(io("inspecting", src))?;
    fs::set_permissions(dst, meta.permissions()).map_err(io("setting the mode of", dst))?;
    for entry in fs::read_dir(src).map_err(io("listing", src))? {
        let entry = entry.map_err(io("listing", src))?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type().map_err(io("inspecting", &from))?;
        if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&from).map_err(io("reading", &from))?;
            std::os::unix::fs::symlink(target, &to).map_err(io("creating", &to))?;
        } else if kind.is_file() {
            fs::copy(&from, &to).map_err(io("copying", &from))?;
        }
    }
    Ok(())
}

/// Bytes of the files under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

impl DirStorage {
    /// A driver keeping its trees under `root` (created, with its kinds of trees, when
    /// missing).
    pub fn new(root: impl Into<PathBuf>) -> Result<DirStorage, StorageError> {
        let layout = Layout::new(root);
        for dir in [
            layout.images_dir(),
            layout.sandboxes_dir(),
            layout.snapshots_dir(),
            layout.uploads_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        }
        Ok(DirStorage {
            checkpoints: CheckpointStore::new(layout.clone()),
            layout,
            readonly: Mutex::new(HashSet::new()),
            generation: AtomicU64::new(1),
        })
    }

    /// Whether `tree` was made read-only.
    pub fn is_readonly(&self, tree: &Tree) -> bool {
        let path = self.layout.tree(tree);
        self.readonly
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&path)
    }

    fn mark(&self, path: &Path, readonly: bool) {
        let mut set = self.readonly.lock().unwrap_or_else(|p| p.into_inner());
        if readonly {
            set.insert(path.to_path_buf());
        } else {
            set.remove(path);
        }
    }

    fn require_absent(path: &Path) -> Result<(), StorageError> {
        match fs::symlink_metadata(path) {
            Ok(_) => Err(StorageError::AlreadyExists(path.to_path_buf())),
            Err(_) => Ok(()),
        }
    }
}

#[async_trait]
impl Storage for DirStorage {
    fn path(&self, tree: &Tree) -> PathBuf {
        self.layout.tree(tree)
    }

    fn root(&self) -> &Path {
        self.layout.root()
    }

    fn uploads_dir(&self) -> PathBuf {
        self.layout.uploads_dir()
    }

    fn blob_cache_dir(&self) -> PathBuf {
        self.layout.blob_cache_dir()
    }

    fn free_bytes(&self) -> Result<u64, StorageError> {
        Ok(1 << 40)
    }

    fn total_bytes(&self) -> Result<u64, StorageError> {
        Ok(2 << 40)
    }

    fn limits_writes(&self) -> bool {
        false
    }

    async fn create_subvolume(&self, tree: &Tree) -> Result<(), StorageError> {
        let path = self.path(tree);
        Self::require_absent(&path)?;
        fs::create_dir(&path).map_err(io("creating", &path))
    }

    async fn snapshot(&self, src: &Tree, dst: &Tree, readonly: bool) -> Result<(), StorageError> {
        let (src, dst) = (self.path(src), self.path(dst));
        if !src.is_dir() {
            return Err(StorageError::NotFound(src));
        }
        Self::require_absent(&dst)?;
        if let Err(e) = copy_tree(&src, &dst) {
            let _ = fs::remove_dir_all(&dst);
            return Err(e);
        }
        self.generation.fetch_add(1, Ordering::Relaxed);
        self.mark(&dst, readonly);
        Ok(())
    }

    async fn set_readonly(&self, tree: &Tree, readonly: bool) -> Result<(), StorageError> {
        let path = self.path(tree);
        if !path.is_dir() {
            return Err(StorageError::NotFound(path));
        }
        self.mark(&path, readonly);
        Ok(())
    }

    async fn delete_subvolume(&self, tree: &Tree) -> Result<(), StorageError> {
        let path = self.path(tree);
        self.mark(&path, false);
        match fs::remove_dir_all(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io("deleting", &path)(e)),
            _ => Ok(()),
        }
    }

    fn exists(&self, tree: &Tree) -> bool {
        fs::symlink_metadata(self.path(tree)).is_ok()
    }

    async fn rename(&self, from: &Tree, to: &Tree) -> Result<(), StorageError> {
        let (from, to) = (self.path(from), self.path(to));
        fs::rename(&from, &to).map_err(io("renaming", &from))?;
        let readonly = self
            .readonly
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&from);
        self.mark(&to, readonly);
        Ok(())
    }

    async fn sandbox_trees(&self) -> Result<Vec<Tree>, StorageError> {
        let dir = self.layout.sandboxes_dir();
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map_err(io("listing", &dir))?
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names.iter().map(|n| Layout::sandbox_tree(n)).collect())
    }

    async fn generation(&self, _tree: &Tree) -> Result<u64, StorageError> {
        Ok(self.generation.load(Ordering::Relaxed))
    }

    async fn bytes_written_since(&self, tree: &Tree, _since: u64) -> Result<Written, StorageError> {
        let path = self.path(tree);
        if !path.is_dir() {
            return Err(StorageError::NotFound(path));
        }
        Ok(Written {
            bytes: tree_bytes(&path),
            generation: self.generation.load(Ordering::Relaxed),
        })
    }

    async fn limited_snapshot(
        &self,
        src: &Tree,
        dst: &Tree,
        limit: Option<u64>,
    ) -> Result<(), StorageError> {
        if limit.is_some() {
            return Err(StorageError::QuotasOff);
        }
        self.snapshot(src, dst, false).await
    }

    async fn set_write_limits(&self, _trees: &[(Tree, Option<u64>)]) -> Result<(), StorageError> {
        Ok(())
    }

    fn written_bytes(&self, _tree: &Tree) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }

    fn write_budget(&self) -> Result<Option<(u64, Option<u64>)>, StorageError> {
        Ok(None)
    }

    async fn set_write_budget(&self, _bytes: u64) -> Result<(), StorageError> {
        Ok(())
    }

    async fn create_snapshot_dir(&self, id: &str, stateful: bool) -> Result<(), StorageError> {
        let dir = self.layout.snapshot_dir(id);
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        if stateful {
            // Not btrfs: the checkpoint is simply not compressed.
            let _ = self.checkpoints.prepare(id);
        }
        Ok(())
    }

    async fn remove_snapshot(&self, id: &str) -> Result<(), StorageError> {
        self.checkpoints.wait_for_index(id).await;
        self.checkpoints.release_pipes(id);
        self.mark(&self.path(&Tree::snapshot(id)), false);
        let dir = self.layout.snapshot_dir(id);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io("deleting", &dir)(e)),
            _ => Ok(()),
        }
    }

    fn snapshot_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(self.layout.snapshots_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    fn save_manifest(&self, id: &str, manifest: &Manifest) -> Result<(), StorageError> {
        manifest.save(&self.layout.snapshot_dir(id))
    }

    fn load_manifest(&self, id: &str) -> Result<Manifest, StorageError> {
        Manifest::load(&self.layout.snapshot_dir(id))
    }

    async fn sync_snapshot(&self, _id: &str) -> Result<(), StorageError> {
        Ok(())
    }

    fn checkpoints(&self) -> &CheckpointStore {
        &self.checkpoints
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str) -> Manifest {
        Manifest {
            format: Manifest::FORMAT.into(),
            version: Manifest::VERSION,
            id: id.into(),
            name: "first".into(),
            sandbox: "sbx-00000001".into(),
            parent: None,
            image: "img-00000001".into(),
            runtime: "runc".into(),
            cpus: 1.0,
            memory_bytes: 1 << 20,
            pids_limit: 64,
            env: Vec::new(),
            workdir: "/".into(),
            stateful: false,
            kernel_release: String::new(),
            criu_version: None,
            runtime_version: None,
            platform: None,
            created_at: "2026-11-30T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn trees_snapshots_and_restores_work_on_plain_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = DirStorage::new(dir.path().join("pool")).expect("storage");
        let storage: &dyn Storage = &s;
        // An image, and a sandbox root made from it.
        let image = Tree::image("img-00000001");
        storage.create_subvolume(&image).await.expect("image");
        fs::write(storage.path(&image).join("hello"), "hi").expect("write");
        storage.set_readonly(&image, true).await.expect("read-only");
        let root = Tree::sandbox("sbx-00000001");
        storage
            .limited_snapshot(&image, &root, None)
            .await
            .expect("root");
        assert!(storage
            .limited_snapshot(&image, &Tree::sandbox("sbx-2"), Some(1))
            .await
            .is_err());
        // A snapshot of the root, with its manifest, is independent of later writes.
        storage
            .create_snapshot_dir("snap-00000001", true)
            .await
            .expect("snapshot dir");
        let snap = Tree::snapshot("snap-00000001");
        storage
            .snapshot(&root, &snap, true)
            .await
            .expect("snapshot");
        assert!(s.is_readonly(&snap));
        storage
            .save_manifest("snap-00000001", &manifest("snap-00000001"))
            .expect("manifest");
        fs::write(storage.path(&root).join("hello"), "changed").expect("write");
        assert_eq!(
            fs::read_to_string(storage.path(&snap).join("hello")).expect("read"),
            "hi"
        );
        assert_eq!(
            storage.load_manifest("snap-00000001").expect("load"),
            manifest("snap-00000001")
        );
        assert_eq!(storage.snapshot_ids(), ["snap-00000001"]);
        assert!(storage.checkpoints().dir("snap-00000001").is_dir());
        // A restore in place: stage, swap, and what recovery sees in between.
        let (staged, old) = (Tree::staged("sbx-00000001"), Tree::replaced("sbx-00000001"));
        storage
            .limited_snapshot(&snap, &staged, None)
            .await
            .expect("stage");
        assert_eq!(
            storage.sandbox_trees().await.expect("list"),
            [root.clone(), staged.clone()]
        );
        storage.rename(&root, &old).await.expect("retire");
        storage.rename(&staged, &root).await.expect("promote");
        storage.delete_subvolume(&old).await.expect("delete old");
        assert!(!storage.exists(&old) && !storage.exists(&staged));
        assert_eq!(
            fs::read_to_string(storage.path(&root).join("hello")).expect("read"),
            "hi"
        );
        // Deleting the snapshot leaves the sandbox working.
        storage
            .remove_snapshot("snap-00000001")
            .await
            .expect("remove");
        assert!(storage.snapshot_ids().is_empty());
        assert!(storage.path(&root).join("hello").exists());
        storage.delete_subvolume(&root).await.expect("delete");
        storage.delete_subvolume(&root).await.expect("already gone");
    }
}
