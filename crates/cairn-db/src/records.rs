//! Row types of the metadata database.

use chrono::{DateTime, Utc};
use rusqlite::Row;

use cairn_types::{
    NetworkMode, PauseReason, ProcessDefaults, Resources, RuntimeKind, SandboxId, SandboxState,
    SnapshotId,
};

use crate::int::from_sql;
use crate::DbError;

/// An image row.
#[derive(Clone, Debug)]
pub struct ImageRecord {
    /// `img-…`.
    pub id: String,
    /// The account that imported it (the operator's is `local`).
    pub account: String,
    /// Name, unique in its account (and among public images).
    pub name: String,
    /// Whether every account may use it (published by the operator).
    pub public: bool,
    /// Bytes of its files.
    pub size_bytes: u64,
    /// Where it came from.
    pub source: String,
    /// Its OCI config (env, workdir) as JSON.
    pub config_json: String,
    /// Whether the import finished.
    pub ready: bool,
    /// When the import started.
    pub created_at: DateTime<Utc>,
}

impl ImageRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(ImageRecord {
            id: r.get("id")?,
            account: r.get("account")?,
            name: r.get("name")?,
            public: r.get("public")?,
            size_bytes: from_sql(r.get::<_, i64>("size_bytes")?),
            source: r.get("source")?,
            config_json: r.get("config_json")?,
            ready: r.get("ready")?,
            created_at: r.get("created_at")?,
        })
    }
}

/// What is needed to insert a sandbox row.
#[derive(Clone, Debug)]
pub struct NewSandbox {
    /// Its id.
    pub id: SandboxId,
    /// The owning account.
    pub account: String,
    /// Optional name, unique per account.
    pub name: Option<String>,
    /// The image id.
    pub image_id: String,
    /// Runtime.
    pub runtime: RuntimeKind,
    /// Its cgroup limits.
    pub resources: Resources,
    /// Environment and working directory of its processes.
    pub process: ProcessDefaults,
    /// Network mode.
    pub network: NetworkMode,
    /// The snapshot its root is made from (a fork), if any.
    pub origin: Option<SnapshotId>,
    /// Pause it after this many seconds without activity.
    pub idle_timeout_secs: Option<u64>,
    /// Bytes it may write into its root filesystem (`None`: no limit of its own).
    pub disk_bytes: Option<u64>,
}

/// A sandbox row.
#[derive(Clone, Debug)]
pub struct SandboxRecord {
    /// Its id.
    pub id: SandboxId,
    /// The owning account.
    pub account: String,
    /// Optional name.
    pub name: Option<String>,
    /// Image id.
    pub image_id: String,
    /// Runtime.
    pub runtime: RuntimeKind,
    /// Current state.
    pub state: SandboxState,
    /// Why it is in that state, when it matters.
    pub state_reason: Option<String>,
    /// Its cgroup limits.
    pub resources: Resources,
    /// Environment and working directory of its processes.
    pub process: ProcessDefaults,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Network mode (an unknown stored mode reads as `none`).
    pub network: NetworkMode,
    /// Its IPv4 address on the bridge (`nat` only), kept until it is destroyed.
    pub address: Option<String>,
    /// While paused with its memory released: the snapshot whose checkpoint holds its processes.
    pub memory_snapshot: Option<SnapshotId>,
    /// The snapshot its root filesystem descends from: the last one taken of it, or the one
    /// it was forked or restored from since (`None`: made from an image, none taken since).
    pub origin: Option<SnapshotId>,
    /// Pause it after this many seconds without activity.
    pub idle_timeout_secs: Option<u64>,
    /// Bytes it may write into its root filesystem (`None`: no limit of its own).
    pub disk_bytes: Option<u64>,
    /// While paused: when it was paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// While paused: why (an old row paused before this was recorded has none).
    pub pause_reason: Option<PauseReason>,
}

impl SandboxRecord {
    pub(crate) fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<Self, DbError>> {
        let id: String = r.get("id")?;
        let runtime: String = r.get("runtime")?;
        let state: String = r.get("state")?;
        let env: String = r.get("env_json")?;
        let memory_snapshot: Option<String> = r.get("memory_snapshot")?;
        let origin: Option<String> = r.get("parent_snapshot")?;
        let idle: Option<i64> = r.get("idle_timeout_secs")?;
        let disk: Option<i64> = r.get("disk_bytes")?;
        let pause_reason: Option<String> = r.get("pause_reason")?;
        let network: String = r.get("network")?;
        let build = || -> Result<Self, DbError> {
            Ok(SandboxRecord {
                id: id
                    .parse()
                    .map_err(|e: cairn_types::IdError| DbError::Corrupt(e.to_string()))?,
                account: r.get("account")?,
                name: r.get("name")?,
                image_id: r.get("image_id")?,
                runtime: runtime.parse().map_err(DbError::Corrupt)?,
                state: state.parse()?,
                state_reason: r.get("state_reason")?,
                resources: Resources {
                    cpus: r.get("cpus")?,
                    memory_bytes: from_sql(r.get::<_, i64>("memory_bytes")?),
                    pids_limit: r.get("pids_limit")?,
                },
                process: ProcessDefaults {
                    env: serde_json::from_str(&env).map_err(|e| DbError::Corrupt(e.to_string()))?,
                    workdir: r.get("workdir")?,
                },
                created_at: r.get("created_at")?,
                network: network.parse().unwrap_or_default(),
                address: r.get("address")?,
                memory_snapshot: memory_snapshot
                    .map(|s| s.parse())
                    .transpose()
                    .map_err(|e: cairn_types::IdError| DbError::Corrupt(e.to_string()))?,
                origin: origin
                    .map(|s| s.parse())
                    .transpose()
                    .map_err(|e: cairn_types::IdError| DbError::Corrupt(e.to_string()))?,
                idle_timeout_secs: idle.map(from_sql),
                disk_bytes: disk.map(from_sql),
                paused_at: r.get("paused_at")?,
                pause_reason: pause_reason
                    .map(|p| p.parse())
                    .transpose()
                    .map_err(DbError::Corrupt)?,
            })
        };
        Ok(build())
    }
}
