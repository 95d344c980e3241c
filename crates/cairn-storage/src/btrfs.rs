//! The btrfs driver of [`Storage`](crate::Storage): every tree is a subvolume of the pool,
//! every snapshot and clone a btrfs snapshot (constant time, no data copied).
//!
//! It runs `btrfs` from btrfs-progs through [`cairn_cmd::Cmd`] and refuses
//! any path that is not inside its pool. It knows nothing of containers.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_cmd::{Cmd, Output};

use crate::error::{from_btrfs_cmd, StorageError, BTRFS_PROGS_HINT};
use crate::pool::{is_btrfs, Pool};
use crate::quota::{subvolume_id, subvolume_id_now, Quotas, BUDGET_QGROUP};
use crate::{CheckpointStore, Layout, Written};

/// The inode number of the root directory of every btrfs subvolume
/// (`BTRFS_FIRST_FREE_OBJECTID`).
const SUBVOLUME_ROOT_INO: u64 = 256;

/// [`Storage`](crate::Storage) on the btrfs pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BtrfsStorage {
    pool: Pool,
    /// Where everything lives in the pool.
    pub(crate) layout: Layout,
    /// The snapshots' memory checkpoints.
    pub(crate) checkpoints: CheckpointStore,
    /// Write limits, once [`BtrfsStorage::enable_quotas`] turned them on.
    quotas: Option<Arc<Quotas>>,
}

/// Whether `meta` (from `symlink_metadata` of `path`) is a subvolume root.
fn is_subvolume_meta(path: &Path, meta: &fs::Metadata) -> Result<bool, StorageError> {
    Ok(meta.is_dir() && meta.ino() == SUBVOLUME_ROOT_INO && is_btrfs(path)?)
}

/// `symlink_metadata`, with "not there" as `None`.
fn lstat(path: &Path) -> Result<Option<fs::Metadata>, StorageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("inspecting", path)(e)),
    }
}

/// `top` and every subvolume nested anywhere below it, parents before
/// children. Other file systems mounted below `top` are not entered.
fn subvolumes_within(top: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let mut found = vec![top.to_path_buf()];
    let mut dirs = vec![top.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let dev = fs::symlink_metadata(&dir)
            .map_err(StorageError::io("inspecting", &dir))?
            .dev();
        for entry in fs::read_dir(&dir).map_err(StorageError::io("listing", &dir))? {
            let entry = entry.map_err(StorageError::io("listing", &dir))?;
            let path = entry.path();
            let Some(meta) = lstat(&path)? else { continue };
            if !meta.is_dir() {
                continue;
            }
            if meta.dev() != dev {
                if !is_subvolume_meta(&path, &meta)? {
                    continue; // a mount point: not ours to walk
                }
                found.push(path.clone());
            }
            dirs.push(path);
        }
    }
    Ok(found)
}

/// Parses `btrfs filesystem du -s --raw` output into (exclusive, total).
fn parse_du(stdout: &str) -> Option<(u64, u64)> {
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut fields = line.split_whitespace();
    let total = fields.next()?.parse().ok()?;
    let exclusive = fields.next()?.parse().ok()?;
    Some((exclusive, total))
}

/// Parses `btrfs subvolume find-new` output: the sum of the extents' lengths
/// and the "transid marker" (the tree's generation).
fn parse_find_new(stdout: &str) -> Option<Written> {
    let mut bytes = 0u64;
    let mut generation = None;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("transid marker was ") {
            generation = rest.trim().parse().ok();
        } else if line.starts_with("inode ") {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "len")?;
            bytes = bytes.saturating_add(words.next()?.parse().ok()?);
        }
    }
    Some(Written {
        bytes,
        generation: generation?,
    })
}

/// Makes `dst` a snapshot of the tree `src` (read-only when `readonly`), a member of quota
/// groups `groups` from its creation: the ioctl `btrfs subvolume snapshot` makes, without the
/// process, off the async workers.
async fn snapshot_now(
    src: PathBuf,
    dst: PathBuf,
    readonly: bool,
    groups: Vec<u64>,
) -> Result<(), StorageError> {
    let failed = |e: std::io::Error| StorageError::io("snapshotting", &dst)(e);
    let (Some(parent), Some(name)) = (dst.parent(), dst.file_name()) else {
        return Err(failed(std::io::Error::from_raw_os_error(libc::EINVAL)));
    };
    let (parent, name) = (parent.to_path_buf(), name.to_os_string());
    let made = tokio::task::spawn_blocking(move || {
        let src = std::fs::File::open(&src)?;
        let parent = std::fs::File::open(&parent)?;
        crate::subvol_ctl::snapshot(&src, &parent, &name, readonly, &groups)
            .map_err(std::io::Error::from)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    made.map_err(failed)
}

/// `btrfs subvolume find-new` refuses generations above this.
const MAX_GENERATION: u64 = i64::MAX as u64;

impl BtrfsStorage {
    /// Runs `btrfs subvolume find-new PATH GEN` (lists file extents of
    /// generation `GEN` or newer; btrfs skips older parts of the tree).
    async fn find_new(&self, path: &Path, generation: u64) -> Result<Written, StorageError> {
        let path = self.resolve(path, false)?;
        Self::require_subvolume(&path)?;
        let generation = generation.min(MAX_GENERATION).to_string();
        let args = [
            "subvolume".as_ref(),
            "find-new".as_ref(),
            path.as_os_str(),
            generation.as_ref(),
        ];
        let out = self.btrfs(&args, Duration::from_secs(600)).await?;
        let text = out.stdout_str();
        parse_find_new(&text).ok_or_else(|| StorageError::UnexpectedOutput {
            argv: format!("btrfs subvolume find-new {} {generation}", path.display()),
            output: text.lines().last().unwrap_or_default().to_string(),
        })
    }

    /// The driver for `pool`, without write limits.
    pub fn new(pool: Pool) -> Self {
        let layout = Layout::new(pool.root());
        BtrfsStorage {
            checkpoints: CheckpointStore::new(layout.clone()),
            layout,
            pool,
            quotas: None,
        }
    }

    /// Turns write limits on (btrfs simple quotas, Linux 6.7+; a no-op for a pool that
    /// has them) and returns the driver with them: see [`Storage::limited_snapshot`](crate::Storage::limited_snapshot).
    /// Fails with [`StorageError::QuotasUnavailable`] when the kernel cannot, or the file
    /// system has full quota accounting on. Must run inside a tokio runtime (it starts the
    /// task that clears the quota groups of deleted trees).
    pub async fn enable_quotas(mut self) -> Result<Self, StorageError> {
        self.quotas = Some(Quotas::enable(self.pool.root()).await?);
        Ok(self)
    }

    /// Whether write limits are on.
    pub fn limits_writes(&self) -> bool {
        self.quotas.is_some()
    }

    /// The pool this driver works in.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Checks that `path` is inside the pool (the pool root itself only when
    /// `allow_root`) and returns it with its parent directory resolved, so
    /// that a symbolic link cannot lead an operation out of the pool.
    fn resolve(&self, path: &Path, allow_root: bool) -> Result<PathBuf, StorageError> {
        let root = self.pool.root();
        let outside = || StorageError::OutsidePool {
            path: path.to_path_buf(),
            root: root.to_path_buf(),
        };
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(outside());
        }
        let relative = path.strip_prefix(root).map_err(|_| outside())?;
        if relative.as_os_str().is_empty() {
            return if allow_root {
                Ok(root.to_path_buf())
            } else {
                Err(outside())
            };
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(outside());
        };
        let parent = match fs::canonicalize(parent) {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StorageError::NotFound(parent.to_path_buf()))
            }
            Err(e) => return Err(StorageError::io("resolving", parent)(e)),
        };
        if !parent.starts_with(root) {
            return Err(outside());
        }
        Ok(parent.join(name))
    }

    /// Runs `btrfs` with `args`.
    async fn btrfs(
        &self,
        args: &[&std::ffi::OsStr],
        timeout: Duration,
    ) -> Result<Output, StorageError> {
        Cmd::new("btrfs")
            .args(args)
            .install_hint(BTRFS_PROGS_HINT)
            .timeout(timeout)
            .run()
            .await
            .map_err(from_btrfs_cmd)
    }

    /// Fails unless the resolved `path` is a subvolume.
    fn require_subvolume(path: &Path) -> Result<(), StorageError> {
        match lstat(path)? {
            None => Err(StorageError::NotFound(path.to_path_buf())),
            Some(meta) if is_subvolume_meta(path, &meta)? => Ok(()),
            Some(_) => Err(StorageError::NotASubvolume(path.to_path_buf())),
        }
    }

    /// Fails when the resolved `path` exists (even as a dangling link).
    fn require_absent(path: &Path) -> Result<(), StorageError> {
        match lstat(path)? {
            Some(_) => Err(StorageError::AlreadyExists(path.to_path_buf())),
            None => Ok(()),
        }
    }

    async fn readonly_of(&self, path: &Path) -> Result<bool, StorageError> {
        let args = [
            "property".as_ref(),
            "get".as_ref(),
            "-ts".as_ref(),
            path.as_os_str(),
            "ro".as_ref(),
        ];
        let out = self.btrfs(&args, cairn_cmd::DEFAULT_TIMEOUT).await?;
        match out.stdout_str().as_str() {
            "ro=true" => Ok(true),
            "ro=false" => Ok(false),
            other => Err(StorageError::UnexpectedOutput {
                argv: format!("btrfs property get -ts {} ro", path.display()),
                output: other.to_string(),
            }),
        }
    }

    async fn set_readonly_of(&self, path: &Path, readonly: bool) -> Result<(), StorageError> {
        let value = if readonly { "true" } else { "false" };
        let args = [
            "property".as_ref(),
            "set".as_ref(),
            "-ts".as_ref(),
            path.as_os_str(),
            "ro".as_ref(),
            value.as_ref(),
        ];
        self.btrfs(&args, cairn_cmd::DEFAULT_TIMEOUT).await?;
        Ok(())
    }

    async fn delete_one(&self, path: &Path) -> Result<(), StorageError> {
        let args = ["subvolume".as_ref(), "delete".as_ref(), path.as_os_str()];
        self.btrfs(&args, cairn_cmd::DEFAULT_TIMEOUT).await?;
        if let Some(q) = &self.quotas {
            q.deleted();
        }
        Ok(())
    }

    /// Whether the subvolume at `path` is read-only.
    pub async fn is_readonly(&self, path: &Path) -> Result<bool, StorageError> {
        let path = self.resolve(path, false)?;
        Self::require_subvolume(&path)?;
        self.readonly_of(&path).await
    }
}

/// Operations by path (inside the pool): what [`Storage`](crate::Storage) does by key, and what the
/// driver's own tests exercise.
impl BtrfsStorage {
    /// Creates an empty, writable tree at `path`, whose parent must exist.
    pub async fn create_subvolume(&self, path: &Path) -> Result<(), StorageError> {
        let path = self.resolve(path, false)?;
        Self::require_absent(&path)?;
        let args = ["subvolume".as_ref(), "create".as_ref(), path.as_os_str()];
        self.btrfs(&args, cairn_cmd::DEFAULT_TIMEOUT).await?;
        tracing::debug!(path = %path.display(), "subvolume created");
        Ok(())
    }

    /// Makes `dst` a snapshot of the tree `src` (read-only when `readonly`).
    pub async fn snapshot(
        &self,
        src: &Path,
        dst: &Path,
        readonly: bool,
    ) -> Result<(), StorageError> {
        let src = self.resolve(src, false)?;
        let dst = self.resolve(dst, false)?;
        Self::require_subvolume(&src)?;
        // `btrfs subvolume snapshot` puts the snapshot *inside* an existing
        // directory; never let that happen.
        Self::require_absent(&dst)?;
        snapshot_now(src.clone(), dst.clone(), readonly, Vec::new()).await?;
        tracing::debug!(src = %src.display(), dst = %dst.display(), readonly, "snapshot taken");
        Ok(())
    }

    /// Makes the tree at `path` read-only, or writable again.
    pub async fn set_readonly(&self, path: &Path, readonly: bool) -> Result<(), StorageError> {
        let path = self.resolve(path, false)?;
        Self::require_subvolume(&path)?;
        self.set_readonly_of(&path, readonly).await
    }

    /// Deletes the tree at `path` with any trees nested in it; succeeds when it is gone, refuses a `path` that is not a tree.
    pub async fn delete_subvolume(&self, path: &Path) -> Result<(), StorageError> {
        let path = match self.resolve(path, false) {
            Ok(p) => p,
            Err(StorageError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        match lstat(&path)? {
            None => return Ok(()),
            Some(meta) if !is_subvolume_meta(&path, &meta)? => {
                return Err(StorageError::NotASubvolume(path));
            }
            Some(_) => {}
        }
        // The common case: no nested subvolumes (read-only is fine here).
        let first = match self.delete_one(&path).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // Nested subvolumes must go first, and removing one needs its parent
        // writable: clear `ro` top-down, then delete bottom-up.
        let top = path.clone();
        let all = tokio::task::spawn_blocking(move || subvolumes_within(&top))
            .await
            .map_err(|e| StorageError::io("walking", &path)(std::io::Error::other(e)))??;
        if all.len() == 1 && !self.readonly_of(&path).await? {
            return Err(first);
        }
        tracing::debug!(path = %path.display(), nested = all.len() - 1, "deleting nested subvolumes");
        for sub in &all {
            if self.readonly_of(sub).await? {
                self.set_readonly_of(sub, false).await?;
            }
        }
        for sub in all.iter().rev() {
            self.delete_one(sub).await?;
        }
        Ok(())
    }

    /// Whether `path` is a tree made by this driver (false when missing).
    pub async fn is_subvolume(&self, path: &Path) -> Result<bool, StorageError> {
        let path = match self.resolve(path, false) {
            Ok(p) => p,
            Err(StorageError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        match lstat(&path)? {
            None => Ok(false),
            Some(meta) => is_subvolume_meta(&path, &meta),
        }
    }

    /// `(exclusive, total)` bytes of the data under `path`.
    pub async fn exclusive_and_total_bytes(&self, path: &Path) -> Result<(u64, u64), StorageError> {
        let path = self.resolve(path, false)?;
        if lstat(&path)?.is_none() {
            return Err(StorageError::NotFound(path));
        }
        let args = [
            "filesystem".as_ref(),
            "du".as_ref(),
            "-s".as_ref(),
            "--raw".as_ref(),
            path.as_os_str(),
        ];
        let out = self.btrfs(&args, Duration::from_secs(600)).await?;
        let text = out.stdout_str();
        parse_du(&text).ok_or_else(|| StorageError::UnexpectedOutput {
            argv: format!("btrfs filesystem du -s --raw {}", path.display()),
            output: text,
        })
    }

    /// The generation of the tree at `path`.
    pub async fn generation(&self, path: &Path) -> Result<u64, StorageError> {
        Ok(self.find_new(path, MAX_GENERATION).await?.generation)
    }

    /// Bytes of file data written into the tree at `path` after generation `since`.
    pub async fn bytes_written_since(
        &self,
        path: &Path,
        since: u64,
    ) -> Result<Written, StorageError> {
        self.find_new(path, since.saturating_add(1)).await
    }

    /// A writable snapshot with write limits: see [`Storage::limited_snapshot`](crate::Storage::limited_snapshot).
    pub async fn limited_snapshot(
        &self,
        src: &Path,
        dst: &Path,
        limit: Option<u64>,
    ) -> Result<(), StorageError> {
        let Some(quotas) = &self.quotas else {
            if limit.is_some() {
                return Err(StorageError::QuotasOff);
            }
            return self.snapshot(src, dst, false).await;
        };
        let src = self.resolve(src, false)?;
        let dst = self.resolve(dst, false)?;
        Self::require_subvolume(&src)?;
        Self::require_absent(&dst)?;
        // Made a member of the budget group in the same step: no moment outside it.
        let budget = crate::subvol_ctl::qgroup_id(BUDGET_QGROUP).ok_or_else(|| {
            StorageError::io("snapshotting", &dst)(std::io::Error::other(
                "the budget quota group's id does not parse",
            ))
        })?;
        snapshot_now(src.clone(), dst.clone(), false, vec![budget]).await?;
        if limit.is_some() {
            let limited = async {
                let id = subvolume_id(&dst).await?;
                quotas.set_limit(id, limit).await
            };
            if let Err(e) = limited.await {
                let _ = self.delete_one(&dst).await;
                return Err(e);
            }
        }
        tracing::debug!(src = %src.display(), dst = %dst.display(), limit, "limited snapshot taken");
        Ok(())
    }

    /// Gives existing trees write limits: see [`Storage::set_write_limits`](crate::Storage::set_write_limits).
    pub async fn set_write_limits(
        &self,
        trees: &[(PathBuf, Option<u64>)],
    ) -> Result<(), StorageError> {
        let Some(quotas) = &self.quotas else {
            return Ok(());
        };
        if trees.is_empty() {
            return Ok(());
        }
        let rows = quotas.show().await?;
        for (path, limit) in trees {
            let path = self.resolve(path, false)?;
            Self::require_subvolume(&path)?;
            let id = subvolume_id(&path).await?;
            let row = rows.get(&format!("0/{id}"));
            if !row.is_some_and(|r| r.parents.iter().any(|p| p == BUDGET_QGROUP)) {
                quotas.join_budget(id).await?;
                tracing::info!(tree = %path.display(), "tree joined the shared write budget");
            }
            // `max(4096)` as `set_limit` rounds tiny limits up to one block.
            if row.and_then(|r| r.limit) != limit.map(|l| l.max(4096)) {
                quotas.set_limit(id, *limit).await?;
                tracing::info!(tree = %path.display(), limit, "write limit set");
            }
        }
        Ok(())
    }

    /// Bytes charged to the limited tree at `path`: see [`Storage::written_bytes`](crate::Storage::written_bytes).
    pub fn written_bytes(&self, path: &Path) -> Result<Option<u64>, StorageError> {
        let Some(quotas) = &self.quotas else {
            return Ok(None);
        };
        let path = self.resolve(path, false)?;
        match subvolume_id_now(&path)? {
            Some(id) => quotas.written(id),
            None => Ok(None),
        }
    }

    /// The shared write budget: see [`Storage::write_budget`](crate::Storage::write_budget).
    pub fn write_budget(&self) -> Result<Option<(u64, Option<u64>)>, StorageError> {
        match &self.quotas {
            Some(q) => q.budget().map(Some),
            None => Ok(None),
        }
    }

    /// Limits what all limited trees may hold together: see [`Storage::set_write_budget`](crate::Storage::set_write_budget).
    pub async fn set_write_budget(&self, bytes: u64) -> Result<(), StorageError> {
        match &self.quotas {
            Some(q) => q.set_budget(bytes).await,
            None => Ok(()),
        }
    }

    /// Names of the trees directly inside the directory `dir`, sorted (empty when `dir` does not exist).
    pub async fn list_subvolumes(&self, dir: &Path) -> Result<Vec<String>, StorageError> {
        let dir = match self.resolve(dir, true) {
            Ok(p) => p,
            Err(StorageError::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::io("listing", &dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(StorageError::io("listing", &dir))?;
            let path = entry.path();
            let Some(meta) = lstat(&path)? else { continue };
            if !is_subvolume_meta(&path, &meta)? {
                continue;
            }
            match entry.file_name().into_string() {
                Ok(name) => names.push(name),
                Err(name) => {
                    tracing::warn!(dir = %dir.display(), name = ?name, "skipping a subvolume whose name is not UTF-8")
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn find_new_output_sums_extent_lengths() {
        let out = "inode 260 file offset 0 len 303104 disk start 137756672 offset 0 gen 8 flags NONE d/f3\n\
                   inode 261 file offset 98304 len 4096 disk start 18751488 offset 0 gen 8 flags NONE d/f 4\n\
                   inode 309 file offset 0 len 5 disk start 0 offset 0 gen 8 flags INLINE new\n\
                   transid marker was 8\n";
        assert_eq!(
            parse_find_new(out),
            Some(Written {
                bytes: 303104 + 4096 + 5,
                generation: 8
            })
        );
        assert_eq!(
            parse_find_new("transid marker was 7\n"),
            Some(Written {
                bytes: 0,
                generation: 7
            })
        );
        assert_eq!(parse_find_new("garbage\n"), None);
    }

    #[test]
    fn du_output_gives_exclusive_then_total() {
        let out = "     Total   Exclusive  Set shared  Filename\n   1048576       4096     1044480  /p/a\n";
        assert_eq!(parse_du(out), Some((4096, 1_048_576)));
        assert_eq!(
            parse_du("     Total   Exclusive  Set shared  Filename"),
            None
        );
        assert_eq!(parse_du(""), None);
    }
}
