//! The engine: the state machines of images and sandboxes, and the
//! orchestration of storage, runtime and database behind every API call.
//! Recovery at start-up lives here too (finish or roll back whatever a crash
//! interrupted).
//!
//! It is not for HTTP (that is `cairn-api`), nor does it call any external
//! program itself: runtimes and storage do.

mod agent;
mod catalog;
mod deaths;
mod detach;
mod disk;
mod doctor;
mod error;
mod exec;
mod exec_start;
mod files;
mod forks;
mod identity;
mod images;
mod keyfile;
mod lifetimes;
mod limits;
mod network;
mod operations;
mod pause;
mod plan;
mod pull;
mod recovery;
mod remote;
mod repo;
mod restore;
mod rundir;
mod sandboxes;
mod secrets;
mod share;
mod snapshots;
mod templates;
mod tokens;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use cairn_db::{Db, DbError};
use cairn_runtime::Runtime;
use cairn_storage::{BtrfsStorage, Pool, PoolConfig, Storage, Tree};
use cairn_types::{RuntimeKind, SandboxId, SnapshotId};

pub use agent::is_static_executable;
pub use cairn_runtime::ExecIo;
pub use disk::{PoolReserve, MIN_DISK_BYTES};
pub use doctor::Check;
pub use error::{EngineError, IdentityAdvice, IdentityMismatch, Result};
pub use exec::{
    AttachedExec, ExecInput, ExecOutput, ExecStream, SANDBOX_DIED_EXIT_CODE, TIMEOUT_EXIT_CODE,
};
pub use exec_start::{CANNOT_RUN_EXIT_CODE, NOT_FOUND_EXIT_CODE};
pub use files::{Download, FilesOf, WriteOptions, MAX_DEPTH as MAX_LIST_DEPTH};
pub use forks::{Forked, MAX_FORKS};
pub use images::{Principal, ReceivedImage};
pub use limits::ResourceCaps;
pub use pause::AUTO_PAUSE_PREFIX;
pub use plan::CreateSandbox;
pub use pull::{looks_like_reference, RegistryAccess};
pub use remote::RemoteConfig;
pub use repo::RepoClone;
pub use share::{
    ArchiveFormat, ArchivePiece, ArchiveStream, SnapshotGone, SnapshotLink, DEFAULT_LINK_SECS,
};
pub use snapshots::SnapshotLimits;
pub use templates::NewTemplate;
pub use tokens::Token;

/// How the engine is set up.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// The data directory (`$CAIRN_HOME`).
    pub home: PathBuf,
    /// Size of the btrfs pool image when the data directory is not btrfs.
    pub pool_size_bytes: u64,
    /// Path or name of the `runsc` binary.
    pub runsc: PathBuf,
    /// Path or name of the `runc` binary.
    pub runc: PathBuf,
    /// Runtime used when a request names none.
    pub default_runtime: RuntimeKind,
    /// Snapshot limits.
    pub snapshot_limits: SnapshotLimits,
    /// Bridge of `nat` sandboxes (also the name of its nftables table).
    pub bridge: String,
    /// Subnet `nat` sandboxes get their addresses from; the bridge takes the first.
    pub subnet: cairn_net::Subnet,
    /// Automatic (pause) snapshots kept per sandbox; older ones are pruned. At least 1.
    pub auto_pause_keep: usize,
    /// How often idle timeouts are checked.
    pub idle_check_interval: std::time::Duration,
    /// An idle timeout's pause also releases the sandbox's memory to disk (where the runtime
    /// can checkpoint it); the next exec restores it.
    pub idle_release_memory: bool,
    /// The most one sandbox may ask for.
    pub caps: ResourceCaps,
    /// Most bytes an image import may decode (archive bombs stop there), and the largest
    /// upload it accepts.
    pub max_image_bytes: u64,
    /// Limit sandboxes' disk writes (btrfs simple quotas; Linux 6.7+). Off: no disk limits,
    /// and sandboxes' writes can take the pool's reserve.
    pub disk_quota: bool,
    /// Disk limit of a sandbox that asks for none (a fork takes its snapshot's); `None`:
    /// no limit of its own.
    pub default_disk_bytes: Option<u64>,
    /// The largest disk limit a request may ask for; `None`: any.
    pub max_disk_bytes: Option<u64>,
    /// Pool space that sandboxes' writes cannot take (for snapshots and metadata).
    pub pool_reserve: PoolReserve,
    /// The static `cairn-agent` binary run as every sandbox's init (see docs/agent.md);
    /// `None`, or a binary that is not static: sandboxes run the shell init and exec through
    /// the runtime.
    pub agent: Option<PathBuf>,
    /// Where signed download links point (cairnd's TCP listener, as clients reach it,
    /// e.g. `http://10.0.0.5:7421`); `None`: no TCP listener, no links.
    pub link_base: Option<String>,
    /// The longest life of a download link, in seconds (default 1 hour).
    pub max_link_secs: u64,
    /// The remote store snapshots are pushed to and pulled from; `None`: no remote tier.
    pub remote: Option<RemoteConfig>,
    /// Where image pulls may connect (`--insecure-registry`, `--registry-allow-private`).
    pub registry: RegistryAccess,
    /// Whether tenants' `--repo` clones may reach loopback, private and link-local
    /// addresses (`cairnd --repo-allow-private`).
    pub repo_allow_private: bool,
}

impl EngineConfig {
    /// Defaults for a data directory: 20 GiB pool, `runsc` and `runc` from PATH, gVisor by
    /// default, disk limits on (10 GiB per sandbox, at most 100 GiB), the default reserve.
    pub fn new(home: impl Into<PathBuf>) -> Self {
        EngineConfig {
            home: home.into(),
            pool_size_bytes: 20 << 30,
            runsc: "runsc".into(),
            runc: "runc".into(),
            default_runtime: Default::default(),
            snapshot_limits: SnapshotLimits::default(),
            bridge: "cairn0".into(),
            subnet: cairn_net::Subnet::default(),
            auto_pause_keep: 3,
            idle_check_interval: std::time::Duration::from_secs(1),
            idle_release_memory: false,
            caps: ResourceCaps::of_host(),
            max_image_bytes: cairn_images::DEFAULT_MAX_DECODED_BYTES,
            disk_quota: true,
            default_disk_bytes: Some(10 << 30),
            max_disk_bytes: Some(100 << 30),
            pool_reserve: PoolReserve::Default,
            agent: None,
            link_base: None,
            max_link_secs: share::DEFAULT_LINK_SECS,
            remote: None,
            registry: RegistryAccess::default(),
            repo_allow_private: false,
        }
    }
}

pub use lifetimes::MAX_KILL_AFTER_SECS;

/// Defaults for new sandboxes.
pub mod defaults {
    /// CPU cores.
    pub const CPUS: f64 = 1.0;
    /// Memory limit.
    pub const MEMORY_BYTES: u64 = 512 << 20;
    /// Process limit.
    pub const PIDS_LIMIT: u32 = 1024;
}

/// The engine. Share it behind an `Arc`.
pub struct Engine {
    cfg: EngineConfig,
    db: Arc<Db>,
    /// The pool's trees, snapshot directories and memory checkpoints, by key.
    storage: Arc<dyn Storage>,
    /// Bytes of the pool kept from sandboxes' writes (see `disk`).
    reserve: u64,
    runtimes: Vec<Arc<dyn Runtime>>,
    net: cairn_net::Network,
    ports: cairn_net::PortProxy,
    /// Serializes reading an account's peer policy and applying it to bridge ports, so a
    /// port never keeps a policy its account has just changed.
    peers: tokio::sync::Mutex<()>,
    locks: Mutex<HashMap<SandboxId, Arc<tokio::sync::Mutex<()>>>>,
    /// Per sandbox, the gate between a pause and execs starting (see `pause::Engine::gate`).
    gates: Mutex<HashMap<SandboxId, Arc<tokio::sync::RwLock<()>>>>,
    /// Generations of read-only trees (images, snapshots), which never change.
    generations: Mutex<HashMap<Tree, u64>>,
    /// Runtime version lines, asked once.
    runtime_versions: Mutex<HashMap<RuntimeKind, String>>,
    /// Last activity and running execs per sandbox (for idle timeouts).
    activity: Mutex<HashMap<SandboxId, pause::Activity>>,
    /// The watch on each running or paused sandbox's runtime process (see `deaths`).
    incarnations: Mutex<HashMap<SandboxId, Arc<deaths::Incarnation>>>,
    /// How many operations run in tasks of their own (see `operations`).
    operations: Arc<tokio::sync::watch::Sender<usize>>,
    /// The engine itself, for the tasks it starts (watches) to reach it while it lives.
    me: Weak<Engine>,
    /// The agent binary sandboxes get, or why they go without (see `agent`).
    agent_binary: std::result::Result<PathBuf, String>,
    /// The link to each sandbox's agent.
    agents: Mutex<HashMap<SandboxId, Arc<agent::Link>>>,
    /// The remote store (`cairnd --remote`), checked at start.
    remote: Option<Arc<remote::Remote>>,
    /// Pulls hold it shared while their blobs are not yet named by an image row; removing
    /// an image holds it alone to sweep the blob cache (see `pull`).
    blob_cache: tokio::sync::RwLock<()>,
}

impl Engine {
    /// Opens the data directory: database, pool (created on first start), runtimes,
    /// then recovers from whatever a crash left behind.
    ///
    /// The btrfs pool (with its disk limits) and the runtimes' programs are made here; the
    /// rest is [`Engine::open_with`]'s.
    pub async fn open(cfg: EngineConfig, db: Arc<Db>) -> Result<Arc<Engine>> {
        // A bad bridge or subnet, or a remote that does not answer, is refused before the
        // pool is made.
        net_config(&cfg).validate()?;
        let remote = connect_remote(&cfg).await?;
        let pool = Pool::open_or_create(PoolConfig {
            home: cfg.home.clone(),
            image_size_bytes: cfg.pool_size_bytes,
        })
        .await?;
        let mut storage = BtrfsStorage::new(pool);
        if cfg.disk_quota {
            storage = storage.enable_quotas().await.map_err(|e| {
                EngineError::Unavailable(format!(
                    "{e}; or start cairnd with --no-disk-quota (then sandboxes have no disk limits, and their writes can fill the pool)"
                ))
            })?;
        } else {
            tracing::warn!("disk limits are off (--no-disk-quota): any sandbox can fill the pool");
        }
        let run = cfg.home.join("run");
        let mounted = match rundir::hold_in_memory(&run) {
            Ok(rundir::RunDir::Mounted) => {
                tracing::info!(run = %run.display(), size = rundir::SIZE, "runtime state in memory (tmpfs)");
                true
            }
            Ok(rundir::RunDir::AlreadyMounted) => false,
            Ok(rundir::RunDir::OnDisk(why)) => {
                tracing::warn!(run = %run.display(), "runtime state stays on disk: {why}");
                false
            }
            Err(e) => {
                return Err(EngineError::Internal(format!(
                    "cannot prepare {}: {e}",
                    run.display()
                )))
            }
        };
        let runtimes = cairn_runtime::runtimes(&cfg.runsc, &cfg.runc, &run);
        let opened = Self::open_inner(cfg, db, Arc::new(storage), runtimes, remote).await;
        if opened.is_err() && mounted {
            rundir::release(&run);
        }
        opened
    }

    /// Opens an engine on the storage and runtimes given, then recovers from whatever a
    /// crash left behind (as [`Engine::open`], which calls it with the btrfs pool and the
    /// runtimes' programs).
    ///
    /// The seam for tests and other drivers: an engine on `cairn_test_support::DirStorage`
    /// and a fake runtime runs without root. `runtimes` lists the default first; `home`
    /// still holds `run/` and `tmp/`. With no `nat` sandbox, nothing here touches the
    /// host's network.
    pub async fn open_with(
        cfg: EngineConfig,
        db: Arc<Db>,
        storage: Arc<dyn Storage>,
        runtimes: Vec<Arc<dyn Runtime>>,
    ) -> Result<Arc<Engine>> {
        let remote = connect_remote(&cfg).await?;
        Self::open_inner(cfg, db, storage, runtimes, remote).await
    }

    async fn open_inner(
        cfg: EngineConfig,
        db: Arc<Db>,
        storage: Arc<dyn Storage>,
        runtimes: Vec<Arc<dyn Runtime>>,
        remote: Option<Arc<remote::Remote>>,
    ) -> Result<Arc<Engine>> {
        let home = &cfg.home;
        let net = cairn_net::Network::new(net_config(&cfg))?;
        for dir in ["run", "tmp"] {
            std::fs::create_dir_all(home.join(dir)).map_err(|e| {
                EngineError::Internal(format!("cannot create {}: {e}", home.join(dir).display()))
            })?;
        }
        // The key of download links: only this cairnd holds it.
        share::ensure_key(home).map_err(|e| {
            EngineError::Internal(format!(
                "cannot create the link key in {}: {e}",
                home.display()
            ))
        })?;
        // The key secrets are sealed with: only this cairnd holds it.
        secrets::ensure_key(home).map_err(|e| {
            EngineError::Internal(format!(
                "cannot create the secrets key in {}: {e}",
                home.display()
            ))
        })?;
        let cache = storage.blob_cache_dir();
        for dir in [
            storage.uploads_dir(),
            cache.join("tmp"),
            cache.join("blobs/sha256"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| {
                EngineError::Internal(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let total = storage.total_bytes()?;
        let reserve = cfg.pool_reserve.bytes(total);
        if reserve >= total / 2 {
            return Err(EngineError::InvalidArgument(format!(
                "a pool reserve of {} is half the pool ({}) or more: give a smaller --pool-reserve",
                cairn_types::format_bytes(reserve),
                cairn_types::format_bytes(total)
            )));
        }
        let agent_binary = agent::check_binary(cfg.agent.as_deref());
        if let Err(why) = &agent_binary {
            tracing::warn!(
                why,
                "sandboxes run without the agent (the shell init, exec through the runtime)"
            );
        }
        let engine = Arc::new_cyclic(|me| Engine {
            remote,
            agent_binary,
            agents: Mutex::new(HashMap::new()),
            blob_cache: tokio::sync::RwLock::new(()),
            cfg,
            db,
            storage,
            reserve,
            runtimes,
            net,
            ports: cairn_net::PortProxy::new(),
            peers: tokio::sync::Mutex::new(()),
            locks: Mutex::new(HashMap::new()),
            gates: Mutex::new(HashMap::new()),
            generations: Mutex::new(HashMap::new()),
            activity: Mutex::new(HashMap::new()),
            runtime_versions: Mutex::new(HashMap::new()),
            incarnations: Mutex::new(HashMap::new()),
            operations: Arc::new(tokio::sync::watch::Sender::new(0)),
            me: me.clone(),
        });
        engine.recover().await?;
        engine.apply_disk_limits().await?;
        engine.keep_reserve().await?;
        engine.start_reserve_watch();
        engine.start_idle_watch();
        engine.start_auto_push().await?;
        // Archives of snapshots deleted while the store refused: in the background, so a
        // store that is down does not hold up the start.
        let retry = Arc::clone(&engine);
        tokio::spawn(async move { retry.retry_store_archive_deletions().await });
        // Ask the runtimes (and CRIU) for their versions now, in the background, rather
        // than inside the first snapshot's time: every manifest records them.
        let warm = Arc::downgrade(&engine);
        tokio::spawn(async move {
            let Some(kinds) = warm.upgrade().map(|e| e.runtime_kinds()) else {
                return;
            };
            for kind in kinds {
                let Some(engine) = warm.upgrade() else { return };
                engine.host_identity(kind, true).await;
            }
        });
        Ok(engine)
    }

    /// The data directory.
    pub fn home(&self) -> &Path {
        &self.cfg.home
    }

    /// Where cairnd's TCP listener is reached (`http://HOST:PORT`), if it has one: the base of
    /// download links and of the console's login URL.
    pub fn link_base(&self) -> Option<&str> {
        self.cfg.link_base.as_deref()
    }

    /// Runs `f` on the metadata database on a blocking thread, off the async workers:
    /// SQLite calls block (on the disk, on fsync, on another writer's lock). A panic in `f`
    /// is the caller's panic, as if `f` had run here.
    pub(crate) async fn db<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> Result<T, DbError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        match tokio::task::spawn_blocking(move || f(&db)).await {
            Ok(done) => done,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => Err(DbError::Interrupted(e.to_string())),
            },
        }
    }

    /// The kinds of every runtime this engine drives, the default first.
    pub fn runtime_kinds(&self) -> Vec<RuntimeKind> {
        self.runtimes.iter().map(|rt| rt.kind()).collect()
    }

    /// The row of sandbox `id`, if it exists (read off the async workers).
    pub(crate) async fn sandbox_row(
        &self,
        id: &SandboxId,
    ) -> Result<Option<cairn_db::SandboxRecord>, DbError> {
        let id = id.clone();
        self.db(move |db| db.sandbox(&id)).await
    }

    /// The row of snapshot `id`, if it exists (read off the async workers).
    pub(crate) async fn snapshot_row(
        &self,
        id: &SnapshotId,
    ) -> Result<Option<cairn_db::SnapshotRecord>, DbError> {
        let id = id.clone();
        self.db(move |db| db.snapshot(&id)).await
    }

    /// The runtime of a kind.
    pub fn runtime(&self, kind: RuntimeKind) -> Result<Arc<dyn Runtime>> {
        self.runtimes
            .iter()
            .find(|rt| rt.kind() == kind)
            .cloned()
            .ok_or_else(|| EngineError::Unavailable(format!("runtime {kind} is not configured")))
    }

    fn run_dir(&self, id: &SandboxId) -> PathBuf {
        self.cfg.home.join("run").join(id.as_str())
    }

    /// The per-sandbox lock that serializes lifecycle changes on one sandbox.
    fn lock_for(&self, id: &SandboxId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.clone()).or_default().clone()
    }

    fn forget_lock(&self, id: &SandboxId) {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.remove(id);
        drop(locks);
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        gates.remove(id);
    }
}

/// The host network of `nat` sandboxes that `cfg` describes.
fn net_config(cfg: &EngineConfig) -> cairn_net::NetConfig {
    cairn_net::NetConfig {
        bridge: cfg.bridge.clone(),
        subnet: cfg.subnet,
        netns_dir: cfg.home.join("run/netns"),
    }
}

/// Test hook for crash-safety tests: when `CAIRN_CRASH_AT` names this
/// point, the daemon dies on the spot (as with `kill -9`).
/// The remote store of `cfg`, connected and checked; `None` without one.
async fn connect_remote(cfg: &EngineConfig) -> Result<Option<Arc<remote::Remote>>> {
    match &cfg.remote {
        Some(rc) => Ok(Some(Arc::new(remote::Remote::connect(rc).await?))),
        None => Ok(None),
    }
}

pub(crate) fn crash_point(name: &str) {
    if std::env::var("CAIRN_CRASH_AT").is_ok_and(|v| v == name) {
        tracing::error!(point = name, "CAIRN_CRASH_AT reached: aborting");
        std::process::abort();
    }
}
