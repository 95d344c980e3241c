//! Write limits in the pool, by btrfs **simple quotas** (Linux 6.7+).
//!
//! With simple quotas every extent is charged to the tree that wrote it, for as long as
//! the extent exists, and to nobody else: a writable snapshot of an image starts at zero
//! and counts only what is written into it afterwards (not the image's files it shares),
//! and what it wrote stays charged to it while a read-only snapshot of it keeps the data
//! alive. That is what a write limit should count. (Full qgroup accounting instead counts
//! the shared image data as "referenced" and moves data between "exclusive" counts when
//! snapshots come and go, so a limit on either would let a snapshot reset it.)
//!
//! - Each limited tree's quota group (`0/<tree id>`) carries its own limit
//!   (`max_referenced`), and is a member of one **budget group** ([`BUDGET_QGROUP`])
//!   whose limit bounds what all of them write together.
//! - The kernel refuses a write over either limit with `EDQUOT`; nothing is killed.
//! - The quota group of a deleted tree goes away by itself once the tree is dropped with
//!   no data of its own left; when a snapshot still kept some, the group stays ("stale",
//!   still counted against the budget) until that snapshot goes too. After deletions a
//!   background task waits for btrfs to drop the trees and clears the stale groups that
//!   are empty by then.
//! - Usage and limits are read from `/sys/fs/btrfs/<fsid>/qgroups`; limits are set with an
//!   ioctl ([`crate::subvol_ctl`], on every fork's path), the groups themselves made and
//!   joined through `btrfs qgroup` (via [`cairn_cmd::Cmd`]); turning quotas on is an ioctl
//!   ([`crate::quota_ctl`]).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_cmd::Cmd;

use crate::error::{first_line, from_btrfs_cmd, StorageError, BTRFS_PROGS_HINT};
use crate::quota_ctl;

/// The quota group all limited trees belong to (level 1, an arbitrary id).
pub const BUDGET_QGROUP: &str = "1/100";
/// `STATX_SUBVOL` (Linux 6.10): `stx_subvol` holds the id of the file's subvolume.
const STATX_SUBVOL: u32 = 0x8000;
/// How long the background clean-up waits for btrfs to drop deleted trees.
const DROP_WAIT: Duration = Duration::from_secs(1800);

/// Quotas of one pool: where the kernel shows them, and the clean-up after deletions.
#[derive(Debug)]
pub(crate) struct Quotas {
    /// The pool root (any path on the file system does for `btrfs qgroup`).
    root: PathBuf,
    /// `/sys/fs/btrfs/<fsid>/qgroups`.
    sysfs: PathBuf,
    /// Woken after every deletion of a tree.
    deleted: tokio::sync::Notify,
}

/// One row of `btrfs qgroup show -pr --raw`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QgroupRow {
    /// `max_referenced`, when limited.
    pub limit: Option<u64>,
    /// The groups it is a member of (`1/100`…).
    pub parents: Vec<String>,
}

/// Parses `btrfs qgroup show -p -r --raw` into qgroup id → row.
pub(crate) fn parse_show(text: &str) -> HashMap<String, QgroupRow> {
    let mut rows = HashMap::new();
    for line in text.lines().skip(2) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || !f[0].contains('/') {
            continue;
        }
        let limit = f[3].parse().ok();
        let parents = match f[4] {
            "-" => Vec::new(),
            p => p.split(',').map(str::to_string).collect(),
        };
        rows.insert(f[0].to_string(), QgroupRow { limit, parents });
    }
    rows
}

impl Quotas {
    /// Turns simple quotas on for the pool at `root` (a no-op when they are on), makes the
    /// budget group, and starts the clean-up task.
    pub(crate) async fn enable(root: &Path) -> Result<Arc<Quotas>, StorageError> {
        let dir = fs::File::open(root).map_err(StorageError::io("opening", root))?;
        let fsid = quota_ctl::fsid(&dir)
            .map_err(|e| StorageError::io("identifying the file system of", root)(e.into()))?;
        let sysfs = Path::new("/sys/fs/btrfs").join(&fsid).join("qgroups");
        let mode = || fs::read_to_string(sysfs.join("mode")).map(|m| m.trim().to_string());
        match mode() {
            Ok(m) if m == "squota" => {}
            Ok(m) => {
                return Err(StorageError::QuotasUnavailable {
                    detail: format!(
                        "the pool's file system has quotas in mode '{m}' (full accounting), and Cairn needs simple quotas: turn them off with 'btrfs quota disable {}' first",
                        root.display()
                    ),
                })
            }
            Err(_) => {
                quota_ctl::enable_simple_quotas(&dir).map_err(|e| {
                    StorageError::QuotasUnavailable {
                        detail: format!(
                            "the kernel refused to turn btrfs simple quotas on ({e}); they need Linux 6.7 or newer"
                        ),
                    }
                })?;
                tracing::info!(pool = %root.display(), "btrfs simple quotas turned on");
                match mode() {
                    Ok(m) if m == "squota" => {}
                    other => {
                        return Err(StorageError::QuotasUnavailable {
                            detail: format!("after turning simple quotas on, the kernel reports mode {other:?}"),
                        })
                    }
                }
            }
        }
        let quotas = Arc::new(Quotas {
            root: root.to_path_buf(),
            sysfs,
            deleted: tokio::sync::Notify::new(),
        });
        if !quotas.qgroup_dir(BUDGET_QGROUP).exists() {
            quotas.btrfs(&["qgroup", "create", BUDGET_QGROUP]).await?;
        }
        // Groups left stale by deletions before a restart.
        quotas.deleted.notify_one();
        tokio::spawn(clean_up_after_deletions(quotas.clone()));
        Ok(quotas)
    }

    /// Runs `btrfs ARGS POOL_ROOT`.
    async fn btrfs(&self, args: &[&str]) -> Result<cairn_cmd::Output, StorageError> {
        Cmd::new("btrfs")
            .args(args)
            .arg(&self.root)
            .install_hint(BTRFS_PROGS_HINT)
            .run()
            .await
            .map_err(from_btrfs_cmd)
    }

    fn qgroup_dir(&self, qgroup: &str) -> PathBuf {
        self.sysfs.join(qgroup.replace('/', "_"))
    }

    /// A number the kernel shows for `qgroup` (`referenced`, `max_referenced`…); `None`
    /// when the group does not exist.
    fn read(&self, qgroup: &str, attr: &str) -> Result<Option<u64>, StorageError> {
        let path = self.qgroup_dir(qgroup).join(attr);
        match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| StorageError::UnexpectedOutput {
                    argv: format!("cat {}", path.display()),
                    output: text,
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io("reading", path)(e)),
        }
    }

    /// Bytes the tree `id` holds charged to it (what its limit counts).
    pub(crate) fn written(&self, id: u64) -> Result<Option<u64>, StorageError> {
        self.read(&format!("0/{id}"), "referenced")
    }

    /// (bytes charged to the budget group, its limit).
    pub(crate) fn budget(&self) -> Result<(u64, Option<u64>), StorageError> {
        let used = self.read(BUDGET_QGROUP, "referenced")?.unwrap_or(0);
        // `limit_flags` bit 0 (BTRFS_QGROUP_LIMIT_MAX_RFER) says `max_referenced` is set.
        let flags = self.read(BUDGET_QGROUP, "limit_flags")?.unwrap_or(0);
        let limit = if flags & 1 != 0 {
            self.read(BUDGET_QGROUP, "max_referenced")?
        } else {
            None
        };
        Ok((used, limit))
    }

    /// Sets the budget group's limit.
    pub(crate) async fn set_budget(&self, bytes: u64) -> Result<(), StorageError> {
        // A limit of 0 would read as "no limit" to some tools: one block is as good as none.
        self.limit(BUDGET_QGROUP, Some(bytes.max(4096))).await
    }

    /// Sets (`None`: lifts) the limit of quota group `qgroup` (`LEVEL/ID`): the ioctl
    /// `btrfs qgroup limit` makes, without the process, off the async workers.
    async fn limit(&self, qgroup: &str, bytes: Option<u64>) -> Result<(), StorageError> {
        let root = self.root.clone();
        let failed = StorageError::io("limiting the quota group of", root.clone());
        let Some(id) = crate::subvol_ctl::qgroup_id(qgroup) else {
            return Err(failed(std::io::Error::other(format!(
                "{qgroup} is not a quota group id"
            ))));
        };
        tokio::task::spawn_blocking(move || {
            let dir = std::fs::File::open(&root)?;
            crate::subvol_ctl::set_limit(&dir, id, bytes).map_err(std::io::Error::from)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(failed)
    }

    /// Sets the limit of tree `id` (`None`: lifts it).
    pub(crate) async fn set_limit(&self, id: u64, limit: Option<u64>) -> Result<(), StorageError> {
        self.limit(&format!("0/{id}"), limit.map(|l| l.max(4096)))
            .await
    }

    /// Makes tree `id`'s group a member of the budget group.
    pub(crate) async fn join_budget(&self, id: u64) -> Result<(), StorageError> {
        let qgroup = format!("0/{id}");
        match self
            .btrfs(&["qgroup", "assign", &qgroup, BUDGET_QGROUP])
            .await
        {
            Err(StorageError::Command(e)) if e.stderr().is_some_and(|s| s.contains("exists")) => {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Every quota group with its limit and parents.
    pub(crate) async fn show(&self) -> Result<HashMap<String, QgroupRow>, StorageError> {
        let out = self.btrfs(&["qgroup", "show", "-p", "-r", "--raw"]).await?;
        Ok(parse_show(&out.stdout_str()))
    }

    /// Notes that a tree was deleted: its group (and others it kept alive) is cleaned up
    /// once btrfs has dropped it.
    pub(crate) fn deleted(&self) {
        self.deleted.notify_one();
    }
}

/// The subvolume id of the tree at `path` by `statx` (Linux 6.10+); `None` on older kernels.
pub(crate) fn subvolume_id_now(path: &Path) -> Result<Option<u64>, StorageError> {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    let st = statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::from_bits_retain(STATX_SUBVOL),
    )
    .map_err(|e| StorageError::io("inspecting", path)(e.into()))?;
    Ok((st.stx_mask & STATX_SUBVOL != 0).then_some(st.stx_subvol))
}

/// The subvolume id of the tree at `path` (`statx`, or `btrfs inspect-internal rootid`
/// on kernels before 6.10).
pub(crate) async fn subvolume_id(path: &Path) -> Result<u64, StorageError> {
    if let Some(id) = subvolume_id_now(path)? {
        return Ok(id);
    }
    let out = Cmd::new("btrfs")
        .args(["inspect-internal", "rootid"])
        .arg(path)
        .install_hint(BTRFS_PROGS_HINT)
        .run()
        .await
        .map_err(from_btrfs_cmd)?;
    let text = out.stdout_str();
    text.trim()
        .parse()
        .map_err(|_| StorageError::UnexpectedOutput {
            argv: format!("btrfs inspect-internal rootid {}", path.display()),
            output: text,
        })
}

/// After deletions: waits until btrfs has dropped the deleted trees (their data is only
/// freed then), then removes the quota groups left without a tree and without data.
/// Groups still charged with data a snapshot keeps stay (the kernel refuses them).
async fn clean_up_after_deletions(quotas: Arc<Quotas>) {
    loop {
        quotas.deleted.notified().await;
        // Let a burst of deletions (a destroy with its snapshots) finish first.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let synced = Cmd::new("btrfs")
            .args(["subvolume", "sync"])
            .arg(&quotas.root)
            .timeout(DROP_WAIT)
            .run()
            .await;
        if let Err(e) = synced {
            tracing::warn!(error = %e, "could not wait for deleted trees to be dropped");
            continue;
        }
        match Cmd::new("btrfs")
            .args(["qgroup", "clear-stale"])
            .arg(&quotas.root)
            .run()
            .await
        {
            Ok(out) => {
                let cleared = out.stdout_str().lines().count();
                tracing::debug!(cleared, "stale quota groups cleared");
            }
            // Groups still charged with data that snapshots keep are refused (busy): expected.
            Err(e) => tracing::debug!(
                error = %first_line(e.stderr().unwrap_or_default()),
                "some stale quota groups stay while snapshots keep their data"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qgroup_show_rows_give_limits_and_parents() {
        let out = "Qgroupid    Referenced    Exclusive  Max referenced Parent     Path \n\
                   --------    ----------    ---------  -------------- ------     ---- \n\
                   0/5              16384        16384            none -          <toplevel>\n\
                   0/257            16384        16384       104857600 1/100      sandboxes/sbx-1\n\
                   0/258            16384        16384            none 1/100,1/7  <stale>\n\
                   1/100            32768        32768        99999999 -          <0 member qgroups>\n";
        let rows = parse_show(out);
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows["0/257"],
            QgroupRow {
                limit: Some(104_857_600),
                parents: vec!["1/100".into()]
            }
        );
        assert_eq!(rows["0/258"].limit, None);
        assert_eq!(rows["0/258"].parents, vec!["1/100", "1/7"]);
        assert!(rows["0/5"].parents.is_empty());
        assert_eq!(rows["1/100"].limit, Some(99_999_999));
    }
}
