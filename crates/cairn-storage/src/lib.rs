//! Cairn's snapshot storage: the pool that holds every tree, and the driver
//! that makes, snapshots, measures and deletes those trees.
//!
//! - [`Pool`] finds or creates the btrfs pool of a data directory (a
//!   directory on btrfs, or a loop-mounted sparse image) and reports its
//!   space.
//! - [`Storage`] is the driver interface the engine uses; [`BtrfsStorage`]
//!   is its first implementation (subvolumes and btrfs snapshots), with write limits
//!   by btrfs simple quotas (see `quota`).
//!
//! This crate knows nothing of containers, sandboxes or the database: it
//! deals in directories inside the pool. Which tree belongs to what is the
//! engine's business.

mod btrfs;
pub mod compressed;
pub mod dedup;
mod error;
mod mountinfo;
mod pool;
mod quota;
mod quota_ctl;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_quota;

use std::path::{Path, PathBuf};

pub use btrfs::BtrfsStorage;
pub use dedup::{
    index_files, receive, release_pipes, share_blocks, BlockIndex, Received, Receiving, Reference,
    Shared,
};
pub use error::{io_is_no_space, text_is_no_space, StorageError, BTRFS_PROGS_HINT};
pub use pool::{
    Pool, PoolBacking, PoolConfig, BTRFS_SUPER_MAGIC, DEFAULT_POOL_SIZE_BYTES, MIN_POOL_SIZE_BYTES,
};
pub use quota::BUDGET_QGROUP;

/// A storage driver: makes, snapshots, measures and deletes trees inside its
/// pool.
///
/// Every path is absolute and must lie inside the pool (below
/// [`Pool::root`]); anything else is refused with
/// [`StorageError::OutsidePool`].
#[async_trait::async_trait]
pub trait Storage: Send + Sync {
    /// Creates an empty, writable tree at `path`, whose parent must exist.
    /// Fails with [`StorageError::AlreadyExists`] when `path` exists.
    async fn create_subvolume(&self, path: &Path) -> Result<(), StorageError>;

    /// Makes `dst` a snapshot of the tree `src`: read-only when `readonly`
    /// (a snapshot), writable otherwise (a sandbox root or a fork). Shares
    /// all data with `src`; later writes to either do not show in the other.
    async fn snapshot(&self, src: &Path, dst: &Path, readonly: bool) -> Result<(), StorageError>;

    /// Makes the tree at `path` read-only, or writable again.
    async fn set_readonly(&self, path: &Path, readonly: bool) -> Result<(), StorageError>;

    /// Deletes the tree at `path`, read-only or not, with any trees nested
    /// in it. Succeeds when `path` is already gone; refuses a `path` that is
    /// not a tree ([`StorageError::NotASubvolume`]).
    async fn delete_subvolume(&self, path: &Path) -> Result<(), StorageError>;

    /// Whether `path` is a tree made by this driver (false when missing).
    async fn is_subvolume(&self, path: &Path) -> Result<bool, StorageError>;

    /// `(exclusive, total)` bytes of the data under `path`: what only it
    /// holds (its delta against everything it shares extents with) and
    /// everything it references.
    async fn exclusive_and_total_bytes(&self, path: &Path) -> Result<(u64, u64), StorageError>;

    /// Names of the trees directly inside the directory `dir`, sorted (empty
    /// when `dir` does not exist). Used at start-up to find orphans.
    async fn list_subvolumes(&self, dir: &Path) -> Result<Vec<String>, StorageError>;

    /// The generation of the tree at `path`: a counter that grows with
    /// every change to it. A read-only tree keeps its generation forever.
    async fn generation(&self, path: &Path) -> Result<u64, StorageError>;

    /// Bytes of file data written into the tree at `path` after generation
    /// `since` (data it shares with a tree of generation `since` or older is
    /// not counted), and the tree's own generation. Costs time in proportion
    /// to what changed, not to the size of the tree.
    async fn bytes_written_since(&self, path: &Path, since: u64) -> Result<Written, StorageError>;

    /// Makes `dst` a writable snapshot of `src`, like [`Storage::snapshot`], whose own
    /// writes are limited: everything written into it from now on (data and metadata,
    /// for as long as it exists, also when only a snapshot of it still holds it) counts
    /// against `limit` (`None`: no limit of its own) and against the budget that all
    /// such trees share ([`Storage::set_write_budget`]). A write over either fails with
    /// `EDQUOT`. Without write limits ([`Storage::write_budget`] is `None`) this is a
    /// plain writable snapshot, and a `limit` is refused ([`StorageError::QuotasOff`]).
    async fn limited_snapshot(
        &self,
        src: &Path,
        dst: &Path,
        limit: Option<u64>,
    ) -> Result<(), StorageError>;

    /// Gives existing trees the write limits listed (each also joins the shared budget):
    /// for trees made before limits were on, or whose limit changed. Runs a command only
    /// for trees whose limit or membership differs. A no-op without write limits.
    async fn set_write_limits(&self, trees: &[(PathBuf, Option<u64>)]) -> Result<(), StorageError>;

    /// Bytes charged to the limited tree at `path` (what its limit counts, as of btrfs's
    /// last commit); `None` without write limits (or on kernels before 6.10, which cannot
    /// say cheaply which quota group a tree has).
    fn written_bytes(&self, path: &Path) -> Result<Option<u64>, StorageError>;

    /// (bytes charged to all limited trees together, the shared budget's limit); `None`
    /// without write limits.
    fn write_budget(&self) -> Result<Option<(u64, Option<u64>)>, StorageError>;

    /// Limits what all limited trees may hold together to `bytes` (it may be below what
    /// they hold: then they cannot write until they free some). A no-op without write limits.
    async fn set_write_budget(&self, bytes: u64) -> Result<(), StorageError>;
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
