//! Disk: each sandbox's disk limit, and the pool's reserve.
//!
//! - **Disk limit** (`cairn up --disk 10G`): what a sandbox may write into its root
//!   filesystem beyond the image or snapshot it started from. Storage enforces it
//!   ([`cairn_storage::Storage::limited_snapshot`], btrfs simple quotas): a write over it
//!   fails inside the sandbox with `EDQUOT`; the sandbox keeps running. Every root made
//!   for a sandbox (create, fork, restore in place) carries it; it is kept on disk across
//!   stop/start and restarts, and set again at start-up for roots made before.
//! - **Reserve**: sandboxes' writes all together can never bring the pool's free space
//!   below the reserve: the budget that all sandbox roots share is kept at what they hold
//!   plus the free space above the reserve, checked every [`RESERVE_CHECK`]. The reserve is for Cairn's
//!   own work (snapshots' memory checkpoints, images, metadata): creates, forks, imports
//!   and snapshots are refused with `pool_full` (507) once less than half of it is left,
//!   so that what is under way can finish. Whatever still runs out of space (`ENOSPC`,
//!   `EDQUOT`) is a `pool_full` too, never an internal error, and is rolled back.

use std::sync::Arc;
use std::time::Duration;

use cairn_db::SnapshotRecord;
use cairn_storage::Tree;
use cairn_types::{format_bytes, parse_size};

use crate::{Engine, EngineError, Result};

/// How often the sandboxes' shared budget is brought in line with the pool's free space.
pub const RESERVE_CHECK: Duration = Duration::from_secs(2);
/// The budget is set again only when it is off by more than this (each set is a command).
const BUDGET_SLACK: u64 = 4 << 20;
/// The smallest disk limit a sandbox may have.
pub const MIN_DISK_BYTES: u64 = 16 << 20;
/// The default reserve: this share of the pool…
const DEFAULT_RESERVE_PERCENT: f64 = 5.0;
/// …but at least this much…
const DEFAULT_RESERVE_MIN: u64 = 256 << 20;
/// …and at most this much.
const DEFAULT_RESERVE_MAX: u64 = 4 << 30;

/// How much of the pool cairnd keeps from sandboxes' writes (`--pool-reserve`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum PoolReserve {
    /// 5% of the pool, at least 256 MiB and at most 4 GiB.
    #[default]
    Default,
    /// This many bytes.
    Bytes(u64),
    /// This share of the pool, in percent.
    Percent(f64),
}

impl std::str::FromStr for PoolReserve {
    type Err = String;

    /// `512M`, `2G`, or a share of the pool such as `5%` (0–50%).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let bad = || {
            format!("invalid pool reserve '{s}': give a size such as 512M or 2G, or a share of the pool such as 5%")
        };
        match s.trim().strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if !(0.0..=50.0).contains(&p) {
                    return Err(format!(
                        "invalid pool reserve '{s}': a share of the pool must be between 0% and 50%"
                    ));
                }
                Ok(PoolReserve::Percent(p))
            }
            // No reserve at all is a choice too (sandboxes may then fill the pool).
            None if s.trim() == "0" => Ok(PoolReserve::Bytes(0)),
            None => parse_size(s).map(PoolReserve::Bytes).map_err(|_| bad()),
        }
    }
}

impl PoolReserve {
    /// The reserve in bytes for a pool of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        // A non-negative share of a u64, so the cast only drops the fraction.
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        let share = |p: f64| (total as f64 * p / 100.0) as u64;
        match self {
            PoolReserve::Default => {
                share(DEFAULT_RESERVE_PERCENT).clamp(DEFAULT_RESERVE_MIN, DEFAULT_RESERVE_MAX)
            }
            PoolReserve::Bytes(b) => b,
            PoolReserve::Percent(p) => share(p),
        }
    }
}

/// Whether an error (or any error below it) is a full pool or disk (`ENOSPC`) or a reached
/// write limit (`EDQUOT`).
fn chain_is_no_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if cairn_storage::io_is_no_space(io) {
                return true;
            }
        }
        if cairn_storage::text_is_no_space(&e.to_string()) {
            return true;
        }
        next = e.source();
    }
    false
}

impl EngineError {
    /// Whether the operation failed for want of space in the pool (`ENOSPC`, `EDQUOT`),
    /// whatever layer reported it.
    pub fn is_no_space(&self) -> bool {
        match self {
            EngineError::PoolFull(_) => true,
            EngineError::Storage(e) => e.is_no_space() || chain_is_no_space(e),
            EngineError::Runtime(e) => chain_is_no_space(e),
            EngineError::Image(e) => chain_is_no_space(e),
            EngineError::Db(e) => chain_is_no_space(e),
            EngineError::Internal(m) => cairn_storage::text_is_no_space(m),
            EngineError::Failed { source, .. } => chain_is_no_space(source.as_ref()),
            _ => false,
        }
    }
}

impl Engine {
    /// The disk limit a new sandbox gets: `requested` (validated), else a fork's snapshot's
    /// sandbox's (at most `--max-disk`), else `--default-disk`. `None` without disk limits.
    pub(crate) async fn requested_disk(
        &self,
        requested: Option<&str>,
        snapshot: Option<&SnapshotRecord>,
    ) -> Result<Option<u64>> {
        let max = self.cfg.max_disk_bytes;
        if let Some(text) = requested {
            let bytes = parse_size(text)
                .map_err(|e| EngineError::InvalidArgument(format!("invalid disk limit: {e}")))?;
            if !self.storage.limits_writes() {
                return Err(EngineError::InvalidArgument(
                    "this host does not limit sandboxes' disk (cairnd runs with --no-disk-quota): leave out the disk limit".into(),
                ));
            }
            if bytes < MIN_DISK_BYTES {
                return Err(EngineError::InvalidArgument(format!(
                    "disk limit '{text}' is too small: give at least 16M"
                )));
            }
            if let Some(max) = max.filter(|m| bytes > *m) {
                return Err(EngineError::InvalidArgument(format!(
                    "disk limit '{text}' is over this host's maximum of {}: ask for {} or less",
                    format_bytes(max),
                    format_bytes(max)
                )));
            }
            return Ok(Some(bytes));
        }
        if !self.storage.limits_writes() {
            return Ok(None);
        }
        let inherited = match snapshot {
            Some(s) => {
                let id = s.id.clone();
                self.db(move |db| db.snapshot_disk(&id)).await?
            }
            None => None,
        };
        let bytes = inherited.or(self.cfg.default_disk_bytes);
        Ok(match (bytes, max) {
            (Some(b), Some(m)) => Some(b.min(m)),
            (b, _) => b,
        })
    }

    /// The disk limit enforced on sandbox `r`'s root: its own, while cairnd limits writes
    /// (a sandbox made with a limit keeps it in its row when cairnd runs without).
    pub(crate) fn disk_limit(&self, r: &cairn_db::SandboxRecord) -> Option<u64> {
        r.disk_bytes.filter(|_| self.storage.limits_writes())
    }

    /// Refuses new work that takes pool space (`what`: "take a snapshot"…) once less than
    /// half of the reserve is free.
    pub(crate) fn require_pool_room(&self, what: &str) -> Result<()> {
        let free = self.storage.free_bytes()?;
        if free < self.reserve / 2 {
            tracing::warn!(
                free,
                reserve = self.reserve,
                what,
                "refused: the pool is full"
            );
            return Err(EngineError::PoolFull(format!(
                "cannot {what}: {}",
                self.pool_full_text(free)
            )));
        }
        Ok(())
    }

    /// `e` as a [`EngineError::PoolFull`] saying what is left, when it is a lack of space;
    /// unchanged otherwise. (`what`: what failed, "take the snapshot"…)
    pub(crate) fn pool_full_or(&self, what: &str, e: EngineError) -> EngineError {
        if matches!(e, EngineError::PoolFull(_)) || !e.is_no_space() {
            return e;
        }
        tracing::warn!(error = %e, what, "out of pool space");
        let free = self.storage.free_bytes().unwrap_or(0);
        EngineError::PoolFull(format!("could not {what}: {}", self.pool_full_text(free)))
    }

    pub(crate) fn pool_full_text(&self, free: u64) -> String {
        format!(
            "the storage pool is full ({} free; {} is kept in reserve for snapshots and metadata): free space by destroying sandboxes and deleting snapshots or images you no longer need, or ask the operator to grow the pool",
            format_bytes(free),
            format_bytes(self.reserve)
        )
    }

    /// Brings the budget all sandbox roots share in line with the pool: what they hold
    /// now plus the free space above the reserve. A no-op without disk limits.
    pub(crate) async fn keep_reserve(&self) -> Result<()> {
        let Some((used, limit)) = self.storage.write_budget()? else {
            return Ok(());
        };
        let free = self.storage.free_bytes()?;
        let target = used.saturating_add(free.saturating_sub(self.reserve));
        if limit.is_some_and(|l| l.abs_diff(target) <= BUDGET_SLACK) {
            return Ok(());
        }
        self.storage.set_write_budget(target).await?;
        tracing::debug!(
            used,
            free,
            reserve = self.reserve,
            budget = target,
            "sandboxes' shared disk budget set"
        );
        Ok(())
    }

    /// Starts the task that keeps the reserve (see [`Engine::keep_reserve`]). It ends with
    /// the engine.
    pub(crate) fn start_reserve_watch(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RESERVE_CHECK).await;
                let Some(engine) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = engine.keep_reserve().await {
                    tracing::warn!(error = %e, "could not adjust the sandboxes' disk budget");
                }
            }
        });
    }

    /// At start-up: every sandbox root carries its sandbox's limit and counts against the
    /// shared budget (roots made before limits were on, or by an older cairnd, included).
    pub(crate) async fn apply_disk_limits(&self) -> Result<()> {
        if !self.storage.limits_writes() {
            return Ok(());
        }
        let trees: Vec<_> = self
            .db(|db| db.all_sandboxes())
            .await?
            .into_iter()
            .map(|r| (Tree::sandbox(&r.id), r.disk_bytes))
            .filter(|(root, _)| self.storage.exists(root))
            .collect();
        self.storage.set_write_limits(&trees).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_parse_as_sizes_or_shares() {
        assert_eq!("512M".parse(), Ok(PoolReserve::Bytes(512 << 20)));
        assert_eq!("5%".parse(), Ok(PoolReserve::Percent(5.0)));
        assert_eq!("0%".parse(), Ok(PoolReserve::Percent(0.0)));
        assert_eq!("0".parse(), Ok(PoolReserve::Bytes(0)));
        assert!("60%".parse::<PoolReserve>().is_err());
        assert!("lots".parse::<PoolReserve>().is_err());
        assert!("-1%".parse::<PoolReserve>().is_err());
    }

    #[test]
    fn the_default_reserve_is_five_percent_within_bounds() {
        assert_eq!(PoolReserve::Default.bytes(3 << 30), 256 << 20);
        assert_eq!(PoolReserve::Default.bytes(20 << 30), 1 << 30);
        assert_eq!(PoolReserve::Default.bytes(1 << 40), 4 << 30);
        assert_eq!(PoolReserve::Percent(10.0).bytes(10 << 30), 1 << 30);
        assert_eq!(PoolReserve::Bytes(7).bytes(1 << 30), 7);
    }

    #[test]
    fn no_space_is_recognised_at_any_layer() {
        let io = std::io::Error::from(rustix::io::Errno::DQUOT);
        assert!(EngineError::Storage(cairn_storage::StorageError::Io {
            action: "writing",
            path: "/x".into(),
            source: io,
        })
        .is_no_space());
        assert!(EngineError::Internal(
            "cannot write the manifest: No space left on device (os error 28)".into()
        )
        .is_no_space());
        assert!(!EngineError::Internal("cannot write the manifest: busy".into()).is_no_space());
        assert!(!EngineError::InvalidArgument("No space left on device".into()).is_no_space());
        let full = EngineError::from_io(
            "cannot write the manifest",
            std::io::Error::from(rustix::io::Errno::NOSPC),
        );
        assert!(full.is_no_space());
        // The step stays in the message and the cause is its source, for the log.
        assert!(full.to_string().starts_with("cannot write the manifest: "));
        assert!(std::error::Error::source(&full).is_some());
        let other = EngineError::failed(
            "cannot write the manifest",
            std::io::Error::from(rustix::io::Errno::ACCESS),
        );
        assert!(!other.is_no_space());
    }
}
