//! Cairn's snapshot storage: the pool that holds every tree, and the driver
//! that makes, snapshots, measures and deletes those trees.
//!
//! - [`Pool`] finds or creates the btrfs pool of a data directory (a
//!   directory on btrfs, or a loop-mounted sparse image) and reports its
//!   space.
//! - [`Storage`] is the driver interface the engine uses; [`BtrfsStorage`]
//!   is its first implementation (subvolumes and btrfs snapshots), with write limits
//!   by btrfs simple quotas (see `quota`).
//! - [`Layout`] says where everything lives: callers name trees by key ([`Tree`]),
//!   snapshots by id, and only this crate joins pool paths.
//! - [`Manifest`] is the typed, versioned manifest beside each snapshot;
//!   [`CheckpointStore`] receives, shares and indexes memory checkpoints.
//!
//! This crate knows nothing of containers, runtimes or the database: it keeps
//! trees and files by key. Which key belongs to what is the engine's business.

mod btrfs;
mod checkpoints;
pub mod compressed;
pub mod dedup;
mod driver;
mod error;
mod layout;
mod manifest;
mod mountinfo;
mod pool;
mod quota;
mod quota_ctl;
mod subvol_ctl;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dedup;
#[cfg(test)]
mod tests_quota;

use std::path::{Path, PathBuf};

pub use btrfs::BtrfsStorage;
pub use checkpoints::CheckpointStore;
pub use dedup::{Received, Receiving};
pub use error::{io_is_no_space, text_is_no_space, StorageError, BTRFS_PROGS_HINT};
pub use layout::{Layout, Tree};
pub use manifest::Manifest;
pub use mountinfo::{mount_at, MountEntry};
pub use pool::{
    Pool, PoolBacking, PoolConfig, BTRFS_SUPER_MAGIC, DEFAULT_POOL_SIZE_BYTES, MIN_POOL_SIZE_BYTES,
};
pub use quota::BUDGET_QGROUP;

/// A storage driver: makes, snapshots, measures and deletes the trees of its pool, and
/// keeps each snapshot's directory (tree, memory checkpoint, manifest).
///
/// Callers name trees by key ([`Tree`]) and snapshots by id; the driver owns the layout
/// (see [`Layout`]). The only paths it hands out are those other components must open
/// themselves: a tree for the runtime's bundle or an import ([`Storage::path`]) and a
/// checkpoint directory for the runtime ([`CheckpointStore::dir`]).
#[async_trait::async_trait]
pub trait Storage: Send + Sync {
    /// Where `tree` lives, for a component that works in it (the runtime's bundle, an
    /// image import, a comparison of two trees).
    fn path(&self, tree: &Tree) -> PathBuf;

    /// The pool directory: everything the driver holds is below it.
    fn root(&self) -> &Path;

    /// Where uploads are spooled (inside the pool, which bounds them); emptied at start-up.
    fn uploads_dir(&self) -> PathBuf;

    /// The registry pulls' blob cache (inside the pool): an OCI blob store,
    /// `blobs/<algorithm>/<hex>`, with downloads in progress in `tmp/`.
    fn blob_cache_dir(&self) -> PathBuf;

    /// Bytes still available for new data in the pool.
    fn free_bytes(&self) -> Result<u64, StorageError>;

    /// Size of the pool, in bytes.
    fn total_bytes(&self) -> Result<u64, StorageError>;

    /// Whether trees made by [`Storage::limited_snapshot`] have write limits.
    fn limits_writes(&self) -> bool;

    /// Creates an empty, writable tree. Fails with [`StorageError::AlreadyExists`] when it
    /// exists.
    async fn create_subvolume(&self, tree: &Tree) -> Result<(), StorageError>;

    /// Makes `dst` a snapshot of the tree `src`: read-only when `readonly` (a snapshot),
    /// writable otherwise. Shares all data with `src`; later writes to either do not show
    /// in the other. A snapshot's directory must exist
    /// ([`Storage::create_snapshot_dir`]).
    async fn snapshot(&self, src: &Tree, dst: &Tree, readonly: bool) -> Result<(), StorageError>;

    /// Makes `tree` read-only, or writable again.
    async fn set_readonly(&self, tree: &Tree, readonly: bool) -> Result<(), StorageError>;

    /// Deletes `tree`, read-only or not, with any trees nested in it. Succeeds when it is
    /// already gone.
    async fn delete_subvolume(&self, tree: &Tree) -> Result<(), StorageError>;

    /// Whether anything is at `tree`'s place (a tree, or something in its way).
    fn exists(&self, tree: &Tree) -> bool;

    /// Moves the tree `from` to `to`'s place (which must be free), durably: the move has
    /// reached the disk when this returns.
    async fn rename(&self, from: &Tree, to: &Tree) -> Result<(), StorageError>;

    /// The trees in the sandboxes' part of the pool: sandbox roots, and roots a restore in
    /// place staged or replaced. Used at start-up to find orphans and interrupted restores.
    async fn sandbox_trees(&self) -> Result<Vec<Tree>, StorageError>;

    /// The generation of `tree`: a counter that grows with every change to it. A
    /// read-only tree keeps its generation forever.
    async fn generation(&self, tree: &Tree) -> Result<u64, StorageError>;

    /// Bytes of file data written into `tree` after generation `since` (data it shares
    /// with a tree of generation `since` or older is not counted), and the tree's own
    /// generation. Costs time in proportion to what changed, not to the size of the tree.
    async fn bytes_written_since(&self, tree: &Tree, since: u64) -> Result<Written, StorageError>;

    /// Makes `dst` a writable snapshot of `src`, like [`Storage::snapshot`], whose own
    /// writes are limited: everything written into it from now on (data and metadata,
    /// for as long as it exists, also when only a snapshot of it still holds it) counts
    /// against `limit` (`None`: no limit of its own) and against the budget that all
    /// such trees share ([`Storage::set_write_budget`]). A write over either fails with
    /// `EDQUOT`. Without write limits ([`Storage::write_budget`] is `None`) this is a
    /// plain writable snapshot, and a `limit` is refused ([`StorageError::QuotasOff`]).
    async fn limited_snapshot(
        &self,
        src: &Tree,
        dst: &Tree,
        limit: Option<u64>,
    ) -> Result<(), StorageError>;

    /// Gives existing trees the write limits listed (each also joins the shared budget):
    /// for trees made before limits were on, or whose limit changed. A no-op without
    /// write limits.
    async fn set_write_limits(&self, trees: &[(Tree, Option<u64>)]) -> Result<(), StorageError>;

    /// Bytes charged to the limited `tree` (what its limit counts, as of the last commit);
    /// `None` without write limits (or when the kernel cannot say cheaply).
    fn written_bytes(&self, tree: &Tree) -> Result<Option<u64>, StorageError>;

    /// (bytes charged to all limited trees together, the shared budget's limit); `None`
    /// without write limits.
    fn write_budget(&self) -> Result<Option<(u64, Option<u64>)>, StorageError>;

    /// Limits what all limited trees may hold together to `bytes`. A no-op without write
    /// limits.
    async fn set_write_budget(&self, bytes: u64) -> Result<(), StorageError>;

    /// Makes the directory of snapshot `id`; with `stateful`, also its (empty) memory
    /// checkpoint directory (see [`CheckpointStore::prepare`]; a failure there is logged).
    async fn create_snapshot_dir(&self, id: &str, stateful: bool) -> Result<(), StorageError>;

    /// Removes everything of snapshot `id` (tree, checkpoint, manifest, directory), letting
    /// go of a writer blocked on its checkpoint's pipes first. Succeeds when it is gone.
    async fn remove_snapshot(&self, id: &str) -> Result<(), StorageError>;

    /// The ids of the snapshot directories in the pool (every name, sorted). Used at
    /// start-up to find orphans.
    fn snapshot_ids(&self) -> Vec<String>;

    /// Writes snapshot `id`'s manifest durably. Blocking.
    fn save_manifest(&self, id: &str, manifest: &Manifest) -> Result<(), StorageError>;

    /// Reads snapshot `id`'s manifest. Blocking.
    fn load_manifest(&self, id: &str) -> Result<Manifest, StorageError>;

    /// Flushes everything written into snapshot `id`'s directory (its checkpoint and
    /// manifest) to disk.
    async fn sync_snapshot(&self, id: &str) -> Result<(), StorageError>;

    /// The memory checkpoints of the pool's snapshots.
    fn checkpoints(&self) -> &CheckpointStore;
}

/// What [`Storage::bytes_written_since`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Bytes of file data newer than the generation asked about.
    pub bytes: u64,
    /// The tree's own generation.
    pub generation: u64,
}

/// Makes btrfs compress the data of files created in the directory `dir` from now on,
/// with LZO: the cheapest of btrfs's compressors, so the flush before a snapshot is
/// `ready` took no longer than writing the data as it is (measured on data that
/// compresses well, partly and hardly), while a memory checkpoint of mostly repeated or
/// zero pages shrinks to a fraction. (zstd level 1 took 2–4 times the
/// CPU of LZO on typical data, and on a 2-vCPU machine flushed 512 MB of binaries in
/// 1.6–1.8 s where LZO and no compression took 1.0–1.1 s.) File sizes, and what Cairn
/// reports, stay the uncompressed bytes. `Ok(false)` when the file system at `dir`
/// cannot compress (not btrfs).
pub fn compress_new_files(dir: &std::path::Path) -> std::io::Result<bool> {
    use rustix::fs::{setxattr, XattrFlags};
    match setxattr(dir, "btrfs.compression", b"lzo", XattrFlags::empty()) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::NOTSUP | rustix::io::Errno::INVAL) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub mod diff;
pub use diff::{diff_trees, Change, ChangeKind, DiffError};
