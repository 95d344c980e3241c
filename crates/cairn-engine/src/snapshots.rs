//! Snapshots: capture a sandbox's root filesystem as a read-only btrfs
//! subvolume during a brief pause; restore one in place; list, inspect,
//! diff and delete. Forks (`create_sandbox` with `from_snapshot`) live with
//! sandbox creation.
//!
//! Layout: `pool/snapshots/<snap>/rootfs` (read-only subvolume) and
//! `pool/snapshots/<snap>/manifest.json` beside it. Every change follows
//! "state column first, side effect second, state update last", and
//! recovery knows each intermediate state.

use std::path::PathBuf;

use chrono::Utc;

use cairn_db::SnapshotRecord;
use cairn_runtime::bundle::write_atomic;
use cairn_storage::Storage;
use cairn_types::api::{DiffEntry, RuntimeIdentity, SandboxInfo, SnapshotInfo};
use cairn_types::{format_bytes, validate_name, SandboxState, SnapshotId, SnapshotState};

use crate::{Engine, EngineError, Result};

/// Beside a runc snapshot's `checkpoint/`: the hash of each of its pages, which the next
/// snapshot's checkpoint looks its pages up in to share the unchanged ones.
const CHECKPOINT_BLOCKS: &str = "checkpoint.blocks";

/// Pipes made for CRIU's page data: one per process (and shared memory segment) dumped,
/// counting from the first; those of further processes are shared after the dump.
const PAGE_PIPES: usize = 32;

/// Snapshot limits (defaults from the design: 20 per sandbox, 10 GiB per account, 2 GiB per snapshot).
#[derive(Clone, Copy, Debug)]
pub struct SnapshotLimits {
    /// Snapshots one sandbox may have.
    pub per_sandbox: usize,
    /// Bytes of snapshot data one account may hold (each snapshot's own delta, so shared data counts once).
    pub account_bytes: u64,
    /// Largest delta one snapshot may hold.
    pub snapshot_bytes: u64,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        SnapshotLimits {
            per_sandbox: 20,
            account_bytes: 10 << 30,
            snapshot_bytes: 2 << 30,
        }
    }
}

/// The manifest written beside a snapshot's tree.
#[derive(serde::Serialize)]
struct Manifest<'a> {
    format: &'static str,
    version: u32,
    id: &'a str,
    name: &'a str,
    sandbox: &'a str,
    parent: Option<&'a str>,
    image: &'a str,
    runtime: &'a str,
    cpus: f64,
    memory_bytes: u64,
    pids_limit: u32,
    env: &'a [String],
    workdir: &'a str,
    stateful: bool,
    kernel_release: String,
    /// The CRIU that wrote a runc sandbox's memory checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    criu_version: Option<String>,
    /// The runtime's version line.
    runtime_version: Option<String>,
    /// CPU architecture (and gVisor's platform).
    platform: String,
    created_at: String,
}

/// A new snapshot's sizes, as measured before it becomes ready.
struct Sizes {
    /// Bytes the snapshot holds over its parent (file data written since, plus memory).
    size: u64,
    /// The whole tree's bytes, estimated (the parent's plus `size`) until measured.
    total_estimate: u64,
    /// Bytes of its memory checkpoint (0 when not stateful).
    memory: u64,
}

/// What a capture produced.
struct Captured {
    /// Its sizes.
    sizes: Sizes,
    /// When the sandbox was paused.
    paused_at: std::time::Instant,
    /// Its memory checkpoint is still to be indexed (for the next snapshot to share).
    index_later: bool,
}

impl Engine {
    pub(crate) fn snapshots_dir(&self) -> PathBuf {
        self.pool.root().join("snapshots")
    }

    pub(crate) fn snapshot_rootfs(&self, id: &SnapshotId) -> PathBuf {
        self.snapshots_dir().join(id.as_str()).join("rootfs")
    }

    pub(crate) fn snapshot_info(&self, s: &SnapshotRecord) -> SnapshotInfo {
        let image = self
            .db
            .image(&s.image_id)
            .ok()
            .flatten()
            .map(|i| i.name)
            .unwrap_or_else(|| s.image_id.clone());
        SnapshotInfo {
            id: s.id.to_string(),
            name: s.name.clone(),
            sandbox: s.sandbox_id.to_string(),
            sandbox_name: s.sandbox_name.clone(),
            parent: s.parent_id.as_ref().map(|p| p.to_string()),
            image,
            runtime: s.runtime,
            stateful: s.stateful,
            auto: s.auto,
            state: s.state,
            error: s.error.clone(),
            size_bytes: s.size_bytes,
            total_bytes: s.total_bytes,
            created_at: s.created_at,
        }
    }

    /// Snapshots `sandbox` (running, paused or stopped) of `account`.
    pub async fn create_snapshot(
        &self,
        account: &str,
        sandbox: &str,
        name: Option<&str>,
        stateful: bool,
    ) -> Result<SnapshotInfo> {
        if let Some(n) = name {
            validate_name(n)?;
        }
        let (_guard, r) = self.find_locked(account, sandbox).await?;
        let name = match name {
            Some(n) => n.to_string(),
            None => self.default_name(&r.id, "")?,
        };
        let snap = self.take_snapshot(&r, name, stateful, false).await?;
        Ok(self.snapshot_info(&snap))
    }

    /// `<prefix><UTC time to the millisecond>`, with `-2`, `-3`… when a snapshot of the sandbox
    /// already has that name (two snapshots in one millisecond). Call with the sandbox's lock held.
    pub(crate) fn default_name(
        &self,
        sandbox: &cairn_types::SandboxId,
        prefix: &str,
    ) -> Result<String> {
        let base = format!("{prefix}{}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
        let taken: std::collections::HashSet<String> = self
            .db
            .sandbox_snapshots(sandbox)?
            .into_iter()
            .map(|s| s.name)
            .collect();
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        Ok(name)
    }

    /// Whether this host can checkpoint process memory of a sandbox of `runtime`; the error says
    /// what to install or use instead.
    pub(crate) async fn check_checkpoint_support(
        &self,
        runtime: cairn_types::RuntimeKind,
    ) -> Result<()> {
        match runtime {
            cairn_types::RuntimeKind::Gvisor => Ok(()),
            cairn_types::RuntimeKind::Runc => self.require_criu().await.map(|_| ()),
        }
    }

    /// Snapshots the sandbox `r` (whose lock the caller holds). `auto` snapshots (taken by a
    /// pause) and failed ones are not counted against the per-sandbox limit; the sandbox's
    /// failed snapshots are pruned as this one starts (see `catalog`).
    pub(crate) async fn take_snapshot(
        &self,
        r: &cairn_db::SandboxRecord,
        name: String,
        stateful: bool,
        auto: bool,
    ) -> Result<SnapshotRecord> {
        let account = r.account.as_str();
        if !matches!(
            r.state,
            SandboxState::Running | SandboxState::Paused | SandboxState::Stopped
        ) {
            return Err(EngineError::Conflict(format!(
                "sandbox {} is {} and cannot be snapshotted",
                r.id, r.state
            )));
        }
        if stateful && (r.state == SandboxState::Stopped || r.memory_snapshot.is_some()) {
            return Err(EngineError::Conflict(format!(
                "sandbox {} is {}{}: a stateful snapshot captures running processes; {}, or leave out --stateful",
                r.id,
                r.state,
                if r.memory_snapshot.is_some() { " with its memory released" } else { "" },
                if r.state == SandboxState::Stopped { "start it first" } else { "resume it first" }
            )));
        }
        if stateful {
            self.check_checkpoint_support(r.runtime).await?;
        }
        let existing = self.db.sandbox_snapshots(&r.id)?;
        let counted = existing
            .iter()
            .filter(|s| !s.auto && s.state != SnapshotState::Failed)
            .count();
        let limits = self.cfg.snapshot_limits;
        if !auto && counted >= limits.per_sandbox {
            return Err(EngineError::Limit(format!(
                "sandbox {} already has {} snapshots, the limit is {} per sandbox: delete one with 'cairn snapshot delete SNAP'",
                r.id, counted, limits.per_sandbox
            )));
        }
        self.require_pool_room("take a snapshot")?;
        // Earlier failures make way: for this one's name, should it be a retry.
        self.prune_failed_snapshots(&r.id).await;
        let snap = SnapshotRecord {
            id: SnapshotId::generate(),
            account: account.to_string(),
            sandbox_id: r.id.clone(),
            sandbox_name: r.name.clone(),
            name,
            parent_id: self.db.sandbox_origin(&r.id)?,
            image_id: r.image_id.clone(),
            runtime: r.runtime,
            cpus: r.cpus,
            memory_bytes: r.memory_bytes,
            pids_limit: r.pids_limit,
            env: r.env.clone(),
            workdir: r.workdir.clone(),
            stateful,
            auto,
            state: SnapshotState::Creating,
            error: None,
            size_bytes: 0,
            total_bytes: 0,
            created_at: Utc::now(),
        };
        // State first: a crash from here on leaves a `creating` row that recovery turns into `failed`.
        self.db
            .insert_snapshot(&snap)
            .map_err(EngineError::from_db)?;
        let started = std::time::Instant::now();
        match self.capture(r, &snap).await {
            Ok(c) => {
                self.db
                    .finish_snapshot(&snap.id, &r.id, c.sizes.size, c.sizes.total_estimate)?;
                // From the pause to `ready` (what the benchmark compares with a raw btrfs snapshot),
                // and the whole capture including the flush before the pause.
                let ready_us = c.paused_at.elapsed().as_micros() as u64;
                let capture_us = started.elapsed().as_micros() as u64;
                tracing::info!(sandbox = %r.id, snapshot = %snap.id, ready_us, capture_us, size = c.sizes.size, "snapshot ready");
                self.measure_total_later(&snap, c.sizes.memory);
                if c.index_later {
                    self.index_later(&snap.id);
                }
            }
            Err(e) => {
                tracing::warn!(sandbox = %r.id, snapshot = %snap.id, error = %e, "snapshot failed");
                self.remove_snapshot_files(&snap.id).await;
                if e.is_no_space() {
                    // Refused for want of space: nothing of it stays, not even a failed row.
                    let _ = self.db.delete_snapshot(&snap.id);
                    return Err(self.pool_full_or("take the snapshot", e));
                }
                let _ = self.db.set_snapshot_state(
                    &snap.id,
                    SnapshotState::Failed,
                    Some(&e.to_string()),
                );
                return Err(e);
            }
        }
        self.db
            .snapshot(&snap.id)?
            .ok_or_else(|| EngineError::Internal("snapshot vanished".into()))
    }

    /// Manifest, then pause, read-only subvolume snapshot, resume; then sizes and limits.
    async fn capture(
        &self,
        r: &cairn_db::SandboxRecord,
        snap: &SnapshotRecord,
    ) -> Result<Captured> {
        let dir = self.snapshots_dir().join(snap.id.as_str());
        std::fs::create_dir_all(&dir)
            .map_err(|e| EngineError::Internal(format!("cannot create {}: {e}", dir.display())))?;
        if snap.stateful {
            // CRIU and runsc (Cairn asks it for no compression) write memory as it is. The
            // pages that reach Cairn through pipes are compressed by Cairn; btrfs compresses
            // what the runtime writes itself (its state, pages written without a pipe) on its
            // way to disk, so the flush before `ready` writes less.
            let checkpoint = dir.join("checkpoint");
            let compressed = std::fs::create_dir(&checkpoint)
                .and_then(|()| cairn_storage::compress_new_files(&checkpoint));
            if let Err(e) = compressed {
                tracing::warn!(snapshot = %snap.id, error = %e, "memory checkpoint stored uncompressed");
            }
        }
        // The manifest says nothing about the capture itself: write it before the pause.
        // The row stays `creating` until everything is in place, so a crash leaves nothing ready.
        self.write_manifest(&dir, snap).await?;
        let rt = self.runtime(r.runtime)?;
        let running = r.state == SandboxState::Running;
        if running && r.runtime == cairn_types::RuntimeKind::Gvisor && !snap.stateful {
            // gVisor's sentry may hold written file data in its own cache: flush it to the host
            // first. A checkpoint flushes it itself (runsc writes open files back before saving).
            self.flush_gvisor(r).await;
        }
        // Flush dirty data while the sandbox still runs, so the pause only covers what is
        // written in between (btrfs flushes the subvolume's dirty data inside the snapshot).
        let root = self.rootfs(&r.id);
        let _ = tokio::task::spawn_blocking(move || {
            std::fs::File::open(&root).map(|f| rustix::fs::syncfs(&f))
        })
        .await;
        // CRIU and runsc write every page: the checkpoint streams its page data to Cairn,
        // which stores each page the parent's checkpoint holds as a share of it and writes
        // the others compressed, straight to disk, while the runtime still dumps. The pipes
        // and the parent's index are ready before the pause.
        let receiving = if snap.stateful {
            if let Some(parent) = &snap.parent_id {
                self.wait_for_index(parent).await;
            }
            self.receive_checkpoint(&dir, snap).await
        } else {
            None
        };
        // No command starts while the sandbox is frozen, nor is one caught halfway through
        // starting: execs that are starting get going first, those that arrive wait for the
        // thaw (see `Engine::gate`).
        let mut gate = if running {
            Some(self.gate(&r.id).write_owned().await)
        } else {
            None
        };
        let paused_at = std::time::Instant::now();
        if running {
            if let Err(e) = rt.pause(r.id.as_str()).await {
                Self::let_go(receiving).await;
                return Err(e.into());
            }
        }
        // Memory and files are captured in the same pause, so they agree. A runc sandbox's
        // files go first, while the pool holds no dirty checkpoint for btrfs to wait on; a
        // gVisor checkpoint writes back the files its sentry holds, so its files go after.
        let files_first = r.runtime == cairn_types::RuntimeKind::Runc;
        let files = if files_first {
            self.snapshot_files(r, &dir).await
        } else {
            Ok(())
        };
        let checkpointed = match files {
            Err(e) => {
                Self::let_go(receiving).await;
                Err(e)
            }
            Ok(()) if snap.stateful => self.checkpoint(rt.as_ref(), r, &dir, receiving).await,
            Ok(()) => Ok(None),
        };
        let taken = match checkpointed {
            Ok(received) if !files_first => self.snapshot_files(r, &dir).await.map(|()| received),
            taken => taken,
        };
        crate::crash_point("snapshot-while-paused");
        // Resuming (a runsc process under gVisor) overlaps with making the capture durable and
        // measuring it: the sandbox runs again as early as it can, and `ready` does not wait twice.
        let resumed = async {
            if running {
                if let Err(e) = rt.resume(r.id.as_str()).await {
                    tracing::error!(sandbox = %r.id, error = %e, "could not resume after a snapshot");
                }
                drop(gate.take());
                let paused_us = paused_at.elapsed().as_micros() as u64;
                tracing::info!(sandbox = %r.id, snapshot = %snap.id, paused_us, "sandbox resumed after the capture");
            }
        };
        // What is left in the page cache (pages that do not compress, the runtime's other
        // files) is written back after the resume, not during the dump: on two cores a
        // writeback beside CRIU made the pause about as long as the disk write
        // (bench/stateful.sh, 512 MB: frozen 1.40 s instead of 0.94–1.03 s with LZO; 1.59 s
        // instead of 0.88 s for random bytes), `ready` at the same time either way.
        let finished = async {
            let received = taken?;
            self.finish_capture(&dir, snap, received).await
        };
        let ((), finished) = tokio::join!(resumed, finished);
        let (sizes, index_later) = finished?;
        Ok(Captured {
            sizes,
            paused_at,
            index_later,
        })
    }

    /// The read-only subvolume snapshot of a (paused) sandbox's files.
    async fn snapshot_files(
        &self,
        r: &cairn_db::SandboxRecord,
        dir: &std::path::Path,
    ) -> Result<()> {
        self.storage
            .snapshot(&self.rootfs(&r.id), &dir.join("rootfs"), true)
            .await
            .map_err(EngineError::from)
    }

    /// Lets go of pipes no checkpoint will write into (removing them).
    async fn let_go(receiving: Option<cairn_storage::Receiving>) {
        if let Some(receiving) = receiving {
            let _ = tokio::task::spawn_blocking(move || receiving.finish()).await;
        }
    }

    /// The memory checkpoint of a paused sandbox into `dir/checkpoint`, its pages received
    /// by `receiving` when the runtime streams them to Cairn.
    async fn checkpoint(
        &self,
        rt: &dyn cairn_runtime::Runtime,
        r: &cairn_db::SandboxRecord,
        dir: &std::path::Path,
        receiving: Option<cairn_storage::Receiving>,
    ) -> Result<Option<cairn_storage::Received>> {
        let snapshot = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let done = rt
            .checkpoint(r.id.as_str(), &dir.join("checkpoint"))
            .await
            .map_err(|e| EngineError::from_checkpoint(r.id.as_str(), &snapshot, e));
        let Some(receiving) = receiving else {
            return done.map(|()| None);
        };
        let finished = tokio::task::spawn_blocking(move || receiving.finish())
            .await
            .map_err(|e| EngineError::Internal(e.to_string()));
        match (done, finished) {
            (Ok(()), Ok(Ok(received))) => Ok(Some(received)),
            // Storing the pages failed (the runtime then failed to write them): that error
            // says why (a full disk, say).
            (_, Ok(Err(e))) => Err(EngineError::from(e)),
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        }
    }

    /// After the capture: flush it to disk, measure it, check the limits. Also says whether
    /// its memory checkpoint is still to be indexed.
    async fn finish_capture(
        &self,
        dir: &std::path::Path,
        snap: &SnapshotRecord,
        received: Option<cairn_storage::Received>,
    ) -> Result<(Sizes, bool)> {
        // With nothing to share, the checkpoint is only indexed for the next snapshot: after
        // `ready` (see `index_later`), as hashing it beside the flush delayed `ready` by a
        // quarter of a second for 512 MB, competing with btrfs's compression for the CPUs.
        let index_later = snap.stateful
            && match &received {
                Some(received) => !received.has_reference(),
                None => self.parent_checkpoint(snap).is_none(),
            };
        // The runtime wrote every page; what the parent's checkpoint holds already is shared
        // with it before the flush, so only the pages that changed are written to disk.
        let shared = if snap.stateful && !index_later {
            self.share_checkpoint(dir, snap, received).await
        } else {
            0
        };
        // Durable before `ready`: the memory checkpoint and the manifest are plain files in the
        // pool (the subvolume's data was flushed by the snapshot itself).
        let pool_dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&pool_dir).and_then(|f| Ok(rustix::fs::syncfs(&f)?))
        })
        .await
        .map_err(|e| EngineError::Internal(e.to_string()))?
        .map_err(|e| EngineError::Internal(format!("cannot flush the snapshot to disk: {e}")))?;
        crate::crash_point("snapshot-after-subvolume");
        let sizes = self.measure(snap, shared).await?;
        let size = sizes.size;
        let limits = self.cfg.snapshot_limits;
        if size > limits.snapshot_bytes {
            return Err(EngineError::Limit(format!(
                "this snapshot holds {} of changes, over the limit of {} per snapshot: remove large files first or raise --max-snapshot-size",
                format_bytes(size),
                format_bytes(limits.snapshot_bytes)
            )));
        }
        let used: u64 = self
            .db
            .account_snapshots(&snap.account)?
            .iter()
            .filter(|s| s.state == SnapshotState::Ready)
            .map(|s| s.size_bytes)
            .sum();
        if used + size > limits.account_bytes {
            return Err(EngineError::Limit(format!(
                "the account's snapshots would hold {} (now {}, this one {}), over the limit of {}: delete old snapshots",
                format_bytes(used + size),
                format_bytes(used),
                format_bytes(size),
                format_bytes(limits.account_bytes)
            )));
        }
        Ok((sizes, index_later))
    }

    /// The parent's checkpoint directory and block index, when it has one.
    fn parent_checkpoint(&self, snap: &SnapshotRecord) -> Option<(PathBuf, PathBuf)> {
        let p = snap.parent_id.as_ref()?;
        let index = self
            .snapshots_dir()
            .join(p.as_str())
            .join(CHECKPOINT_BLOCKS);
        index.exists().then(|| (self.snapshot_checkpoint(p), index))
    }

    /// Opens the parent's checkpoint for sharing; `None` (logged) when it cannot be.
    fn open_reference(
        id: &SnapshotId,
        parent: Option<(PathBuf, PathBuf)>,
    ) -> Option<cairn_storage::Reference> {
        let (dir, index) = parent?;
        cairn_storage::Reference::open(&dir, &index)
            .inspect_err(|e| {
                tracing::warn!(snapshot = %id, error = %e, "the memory checkpoint is stored whole: its parent's cannot be shared");
            })
            .ok()
    }

    /// Before a memory checkpoint: pipes where the page data arrive (CRIU's page images, or
    /// runsc's pages file). What the parent's checkpoint holds is stored as a share of it;
    /// the rest is compressed and written straight to disk while the runtime still dumps
    /// (see `cairn_storage::compressed`). With nothing to share (no parent checkpoint, or
    /// one that cannot be read) the pages are not hashed either: they are indexed after
    /// `ready`. `None` (logged) when the pipes cannot be made: the runtime writes plain
    /// files, shared after the dump.
    async fn receive_checkpoint(
        &self,
        dir: &std::path::Path,
        snap: &SnapshotRecord,
    ) -> Option<cairn_storage::Receiving> {
        let checkpoint = dir.join("checkpoint");
        let parent = self.parent_checkpoint(snap);
        let (id, runtime) = (snap.id.clone(), snap.runtime);
        let made = tokio::task::spawn_blocking(move || {
            let reference = Self::open_reference(&id, parent);
            let names = match runtime {
                cairn_types::RuntimeKind::Runc => cairn_runtime::criu::page_images(PAGE_PIPES),
                cairn_types::RuntimeKind::Gvisor => {
                    vec![cairn_runtime::GVISOR_PAGES_FILE.to_string()]
                }
            };
            cairn_storage::receive(&checkpoint, &names, reference).map(Some)
        })
        .await;
        let error = match made {
            Ok(Ok(r)) => return r,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(snapshot = %snap.id, error, "CRIU writes the memory checkpoint to plain files");
        None
    }

    /// After a memory checkpoint: makes the files the runtime wrote itself share the blocks the
    /// parent's checkpoint holds (by content: pages that moved are found too), and writes
    /// the index of the whole checkpoint for the next snapshot. Returns the bytes shared.
    /// A failure only costs the saving: every file stays complete.
    async fn share_checkpoint(
        &self,
        dir: &std::path::Path,
        snap: &SnapshotRecord,
        received: Option<cairn_storage::Received>,
    ) -> u64 {
        let checkpoint = dir.join("checkpoint");
        let index = dir.join(CHECKPOINT_BLOCKS);
        let parent = self.parent_checkpoint(snap);
        let id = snap.id.clone();
        let started = std::time::Instant::now();
        let done = tokio::task::spawn_blocking(move || {
            let received = received.unwrap_or_else(|| {
                cairn_storage::Received::from_reference(Self::open_reference(&id, parent))
            });
            let shared = cairn_storage::share_blocks(&checkpoint, received)?;
            if let Err(e) = shared.index.write(&index) {
                tracing::warn!(snapshot = %id, error = %e, "the next snapshot's memory will be stored whole");
            }
            Ok::<_, cairn_storage::StorageError>(shared.shared_bytes)
        })
        .await;
        let error = match done {
            Ok(Ok(shared)) => {
                let share_us = started.elapsed().as_micros() as u64;
                tracing::info!(snapshot = %snap.id, shared, share_us, "memory checkpoint shares its parent's unchanged pages");
                return shared;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(snapshot = %snap.id, error, "the memory checkpoint is stored whole");
        0
    }

    async fn write_manifest(&self, dir: &std::path::Path, snap: &SnapshotRecord) -> Result<()> {
        // Only a memory checkpoint written by CRIU depends on CRIU's version.
        let identity = self.host_identity(snap.runtime, snap.stateful).await;
        let manifest = Manifest {
            format: "cairn-snapshot",
            version: 1,
            id: snap.id.as_str(),
            name: &snap.name,
            sandbox: snap.sandbox_id.as_str(),
            parent: snap.parent_id.as_ref().map(|p| p.as_str()),
            image: &snap.image_id,
            runtime: snap.runtime.as_str(),
            cpus: snap.cpus,
            memory_bytes: snap.memory_bytes,
            pids_limit: snap.pids_limit,
            env: &snap.env,
            workdir: &snap.workdir,
            stateful: snap.stateful,
            kernel_release: identity.kernel_release,
            criu_version: identity.criu_version,
            runtime_version: identity.runtime_version,
            platform: identity.platform,
            created_at: snap.created_at.to_rfc3339(),
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        write_atomic(&dir.join("manifest.json"), &json)
            .map_err(|e| EngineError::Internal(format!("cannot write the manifest: {e}")))
    }

    async fn flush_gvisor(&self, r: &cairn_db::SandboxRecord) {
        let Ok(rt) = self.runtime(r.runtime) else {
            return;
        };
        let spec = cairn_runtime::ExecSpec {
            args: vec!["sync".into()],
            env: r.env.clone(),
            cwd: "/".into(),
        };
        let scratch = self.run_dir(&r.id).join("exec");
        if let Ok(mut child) = rt
            .exec(
                r.id.as_str(),
                &spec,
                &scratch,
                cairn_runtime::ExecIo::Pipes { stdin: false },
            )
            .await
        {
            let _ =
                tokio::time::timeout(std::time::Duration::from_secs(30), child.child.wait()).await;
            child.remove_files();
        }
    }

    /// (bytes written since the parent snapshot — or the image — plus the memory
    /// checkpoint, an estimate of the whole tree's bytes). Asks btrfs for the file
    /// data newer than the parent's generation, so it costs time in proportion to
    /// what changed, not to the size of the tree.
    /// `shared`: bytes of the memory checkpoint that its parent's holds (not counted).
    async fn measure(&self, snap: &SnapshotRecord, shared: u64) -> Result<Sizes> {
        let (base, base_total) = match &snap.parent_id {
            Some(p) => (
                self.snapshot_rootfs(p),
                self.db.snapshot(p)?.map(|s| s.total_bytes).unwrap_or(0),
            ),
            None => (
                self.images_dir().join(&snap.image_id),
                self.db
                    .image(&snap.image_id)?
                    .map(|i| i.size_bytes)
                    .unwrap_or(0),
            ),
        };
        // A parent that cannot be read (gone) counts everything as new.
        let since = self.generation_of(&base).await.unwrap_or(0);
        let tree = self.snapshot_rootfs(&snap.id);
        let written = self.storage.bytes_written_since(&tree, since).await?;
        self.remember_generation(&tree, written.generation);
        let memory = if snap.stateful {
            let checkpoint = self.snapshot_checkpoint(&snap.id);
            tokio::task::spawn_blocking(move || cairn_images::dir_size(&checkpoint))
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))?
        } else {
            0
        };
        let size = written.bytes + memory.saturating_sub(shared);
        Ok(Sizes {
            size,
            total_estimate: base_total + size,
            memory,
        })
    }

    /// The generation of a read-only tree (image or snapshot), cached: it never changes.
    async fn generation_of(&self, tree: &std::path::Path) -> Result<u64> {
        let known = self
            .generations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tree)
            .copied();
        if let Some(g) = known {
            return Ok(g);
        }
        let g = self.storage.generation(tree).await?;
        self.remember_generation(tree, g);
        Ok(g)
    }

    fn remember_generation(&self, tree: &std::path::Path, generation: u64) {
        self.generations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tree.to_path_buf(), generation);
    }

    /// Measures the whole tree of a ready snapshot in the background (every file
    /// extent it references, which grows with the tree, so it does not hold up
    /// `ready`) and replaces the estimate. `memory`: the checkpoint's bytes, already measured.
    fn measure_total_later(&self, snap: &SnapshotRecord, memory: u64) {
        let (db, storage) = (self.db.clone(), self.storage.clone());
        let id = snap.id.clone();
        let tree = self.snapshot_rootfs(&snap.id);
        tokio::spawn(async move {
            let files = match storage.bytes_written_since(&tree, 0).await {
                Ok(w) => w.bytes,
                Err(e) => {
                    tracing::debug!(snapshot = %id, error = %e, "could not measure the snapshot's tree");
                    return;
                }
            };
            if let Err(e) = db.set_snapshot_total(&id, files + memory) {
                tracing::warn!(snapshot = %id, error = %e, "could not record the snapshot's total size");
            }
        });
    }

    /// Indexes a ready snapshot's memory checkpoint in the background, for the next snapshot
    /// to share its pages ([`Self::wait_for_index`] waits for it). Without an index (a
    /// failure, or a crash before it is written) the next checkpoint is stored whole.
    fn index_later(&self, id: &SnapshotId) {
        let dir = self.snapshots_dir().join(id.as_str());
        let (done, waiting) = tokio::sync::watch::channel(());
        if let Ok(mut map) = self.indexing.lock() {
            map.insert(id.clone(), waiting);
        }
        let (indexing, id) = (self.indexing.clone(), id.clone());
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let written = cairn_storage::index_files(&dir.join("checkpoint"))
                .and_then(|index| index.write(&dir.join(CHECKPOINT_BLOCKS)));
            match written {
                Ok(()) => {
                    let index_us = started.elapsed().as_micros() as u64;
                    tracing::info!(snapshot = %id, index_us, "memory checkpoint indexed");
                }
                Err(e) => {
                    tracing::warn!(snapshot = %id, error = %e, "the next snapshot's memory will be stored whole");
                }
            }
            if let Ok(mut map) = indexing.lock() {
                map.remove(&id);
            }
            drop(done);
        });
    }

    /// Waits until snapshot `id`'s memory checkpoint is indexed, if that is under way.
    async fn wait_for_index(&self, id: &SnapshotId) {
        let waiting = self.indexing.lock().ok().and_then(|m| m.get(id).cloned());
        if let Some(mut waiting) = waiting {
            // Returns once the sender is dropped, that is once the index is written (or failed).
            let _ = waiting.changed().await;
        }
    }

    /// Removes a snapshot's files (subvolume, manifest, directory); best effort.
    pub(crate) async fn remove_snapshot_files(&self, id: &SnapshotId) {
        let dir = self.snapshots_dir().join(id.as_str());
        // Its index is not written into a directory being removed.
        self.wait_for_index(id).await;
        // A CRIU still waiting on a pipe of an interrupted checkpoint is let go.
        cairn_storage::release_pipes(&dir.join("checkpoint"));
        if let Err(e) = self.storage.delete_subvolume(&dir.join("rootfs")).await {
            tracing::warn!(snapshot = %id, error = %e, "could not delete the snapshot subvolume");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Deletes a snapshot. Forks and restored sandboxes are independent subvolumes, so they keep working.
    pub async fn delete_snapshot(&self, account: &str, id: &str) -> Result<()> {
        let s = self.find_snapshot(account, id)?;
        let lock = self.lock_for(&s.sandbox_id);
        let _guard = lock.lock().await;
        if let Some(holder) = self.db.sandbox(&s.sandbox_id)? {
            if holder.memory_snapshot.as_ref() == Some(&s.id) {
                return Err(EngineError::Conflict(format!(
                    "sandbox {} is paused with its processes in snapshot {}: resume (or stop) it first",
                    holder.id, s.id
                )));
            }
        }
        self.purge_snapshot(&s.id).await?;
        tracing::info!(snapshot = %s.id, "snapshot deleted");
        Ok(())
    }

    /// Restores a snapshot into its source sandbox, or into `to`: the sandbox's files become
    /// exactly the snapshot's; what was written since is discarded; a running sandbox restarts.
    /// A stateful snapshot brings its processes back too, unless `fresh`: then only its files
    /// are put back (and a running sandbox boots on them).
    pub async fn restore_snapshot(
        &self,
        account: &str,
        id: &str,
        to: Option<&str>,
        fresh: bool,
    ) -> Result<SandboxInfo> {
        let snap = self.ready_snapshot(account, id)?;
        let stateful = snap.stateful && !fresh;
        let target = match to {
            Some(t) => self.find(account, t)?,
            None => self.find(account, snap.sandbox_id.as_str()).map_err(|_| {
                EngineError::NotFound(format!(
                    "the source sandbox {} of snapshot {} is gone: restore into another with --to SANDBOX, or fork it with 'cairn up --from-snapshot {}'",
                    snap.sandbox_id, snap.id, snap.id
                ))
            })?,
        };
        let lock = self.lock_for(&target.id);
        let _guard = lock.lock().await;
        let target = self.find(account, target.id.as_str())?;
        if !matches!(
            target.state,
            SandboxState::Running | SandboxState::Paused | SandboxState::Stopped
        ) {
            return Err(EngineError::Conflict(format!(
                "sandbox {} is {} and cannot be restored",
                target.id, target.state
            )));
        }
        if stateful {
            self.check_identity(
                &snap,
                target.runtime,
                crate::IdentityAdvice::Restore,
                target.id.as_str(),
            )
            .await?;
            // Its processes hold the network of the sandbox they were taken from.
            let from = self.snapshot_mode(&snap.id)?;
            let into = crate::network::mode_of(&target);
            if from != into {
                return Err(EngineError::Conflict(format!(
                    "snapshot {} holds processes of a '{from}' sandbox, which resume only with network '{from}', and sandbox {} has network '{into}': restore it into a '{from}' sandbox, put back its files only with 'cairn snapshot restore {} --fresh', or fork it with 'cairn up --from-snapshot {}' (add --fresh --network {into} to boot its files without its processes)",
                    snap.id, target.id, snap.id, snap.id
                )));
            }
            if snap.runtime == cairn_types::RuntimeKind::Runc {
                self.require_criu().await?;
            }
        }
        // The steps below and what recovery makes of a crash between any two: see `restore`.
        // 1. Stage the new root beside the old one (a crash leaves the sandbox as it was).
        self.clear_restore_leftovers(&target.id).await?;
        let staged = self.restore_paths(&target.id).staged;
        // The new root carries the sandbox's disk limit (counted from zero again).
        self.storage
            .limited_snapshot(
                &self.snapshot_rootfs(&snap.id),
                &staged,
                self.disk_limit(&target),
            )
            .await
            .map_err(|e| self.pool_full_or("restore the snapshot", e.into()))?;
        // Another sandbox's snapshot brings that sandbox's machine id: the target keeps its own.
        if snap.sandbox_id != target.id {
            let own = {
                let root = self.rootfs(&target.id);
                tokio::task::spawn_blocking(move || crate::identity::read_machine_id(&root))
                    .await
                    .ok()
                    .flatten()
            };
            if let Err(e) = self.give_machine_id(staged.clone(), own).await {
                let _ = self.storage.delete_subvolume(&staged).await;
                return Err(self.pool_full_or("restore the snapshot", e));
            }
        }
        crate::crash_point("restore-after-stage");
        // 2. State first: from here on the restore is finished, by this request or by recovery.
        let restoring = cairn_db::Restoring {
            snapshot: snap.id.clone(),
            fresh: snap.stateful && !stateful,
        };
        self.db.set_restoring(&target.id, &restoring)?;
        // 3. Stop the processes.
        if matches!(target.state, SandboxState::Running | SandboxState::Paused) {
            self.note_end(
                &target.id,
                format!(
                    "sandbox {} was restored from snapshot {} while the command ran, which ended it: its {} are the snapshot's now; run the command again if it is still needed",
                    target.id,
                    snap.id,
                    if stateful { "files and processes" } else { "files" }
                ),
            );
            if let Err(e) = self.halt(&target).await {
                // Nothing has changed yet: the sandbox stays as it was.
                let _ = self.storage.delete_subvolume(&staged).await;
                self.db
                    .end_restore(&target.id, target.state, target.state_reason.as_deref())?;
                self.arm(&target).await;
                return Err(e);
            }
        }
        crate::crash_point("restore-after-halt");
        // 4-6. Swap the roots, bring the processes back, record the state.
        self.finish_restore(&target, Some(&snap), restoring.fresh)
            .await?;
        tracing::info!(sandbox = %target.id, snapshot = %snap.id, "snapshot restored");
        Ok(self.info(&self.find(account, target.id.as_str())?))
    }

    pub(crate) fn snapshot_checkpoint(&self, id: &SnapshotId) -> PathBuf {
        self.snapshots_dir().join(id.as_str()).join("checkpoint")
    }

    /// Refuses, before anything is written, to resume a stateful snapshot where its
    /// processes cannot run: another runtime, kernel release, platform or (gVisor) runtime
    /// version than its manifest records. The error (409 `runtime_identity_mismatch`) names
    /// both identities and what works instead for the command that asked (`advice`; `sandbox`
    /// is the one it would resume into).
    pub(crate) async fn check_identity(
        &self,
        snap: &SnapshotRecord,
        runtime: cairn_types::RuntimeKind,
        advice: crate::IdentityAdvice,
        sandbox: &str,
    ) -> Result<()> {
        let path = self
            .snapshots_dir()
            .join(snap.id.as_str())
            .join("manifest.json");
        let manifest: serde_json::Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| EngineError::Internal(format!("cannot read {}", path.display())))?;
        let text = |k: &str| manifest[k].as_str().map(str::to_string);
        let host = self.host_identity(runtime, true).await;
        let recorded = RuntimeIdentity {
            runtime: text("runtime").unwrap_or_else(|| snap.runtime.to_string()),
            runtime_version: text("runtime_version"),
            criu_version: text("criu_version"),
            kernel_release: text("kernel_release").unwrap_or_default(),
            // Manifests from before the platform was recorded were taken on this architecture.
            platform: text("platform").unwrap_or_else(|| host.platform.clone()),
        };
        let mut differs = Vec::new();
        if runtime != snap.runtime {
            // Another runtime never resumes them, whatever else matches.
            differs.push("runtime");
        }
        if recorded.kernel_release != host.kernel_release {
            differs.push("kernel release");
        }
        // Each runtime names its platform its own way: compared under the same runtime only.
        if runtime == snap.runtime && recorded.platform != host.platform {
            differs.push("platform");
        }
        // runsc's checkpoint format belongs to its version; CRIU images restore with any
        // CRIU >= 4.1 (checked separately), and runc itself keeps no state in them.
        if runtime == cairn_types::RuntimeKind::Gvisor
            && snap.runtime == runtime
            && recorded.runtime_version.is_some()
            && recorded.runtime_version != host.runtime_version
        {
            differs.push("runtime version");
        }
        if differs.is_empty() {
            return Ok(());
        }
        Err(EngineError::IdentityMismatch(Box::new(
            crate::IdentityMismatch {
                snapshot: snap.id.to_string(),
                recorded,
                host,
                differs: differs.join(", "),
                advice: if runtime != snap.runtime {
                    format!(
                        "they resume only in a {} sandbox; or {}",
                        snap.runtime,
                        advice.says(snap.id.as_str(), sandbox)
                    )
                } else {
                    advice.says(snap.id.as_str(), sandbox)
                },
            },
        )))
    }

    /// What this host offers a snapshot of `runtime`; with `criu`, also the CRIU version
    /// (runc only: it writes and reads runc memory checkpoints).
    pub(crate) async fn host_identity(
        &self,
        runtime: cairn_types::RuntimeKind,
        criu: bool,
    ) -> RuntimeIdentity {
        let criu_version = match runtime {
            cairn_types::RuntimeKind::Runc if criu => cairn_runtime::criu::require_installed()
                .await
                .ok()
                .map(|v| v.to_string()),
            _ => None,
        };
        RuntimeIdentity {
            runtime: runtime.to_string(),
            runtime_version: self.runtime_version(runtime).await,
            criu_version,
            kernel_release: kernel_release(),
            platform: platform(runtime),
        }
    }

    /// The runtime's version line, asked once per cairnd.
    async fn runtime_version(&self, runtime: cairn_types::RuntimeKind) -> Option<String> {
        if let Some(v) = self
            .runtime_versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&runtime)
        {
            return Some(v.clone());
        }
        let v = self.runtime(runtime).ok()?.version().await.ok()?;
        self.runtime_versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(runtime, v.clone());
        Some(v)
    }

    /// Refuses, before anything is written, to checkpoint or resume a runc sandbox's
    /// processes on a host without CRIU 4.1 or newer, saying how to install it.
    pub(crate) async fn require_criu(&self) -> Result<cairn_runtime::CriuVersion> {
        cairn_runtime::criu::require_installed()
            .await
            .map_err(|e| match e {
                e @ cairn_runtime::RuntimeError::CriuMissing { .. } => {
                    EngineError::Unavailable(e.to_string())
                }
                other => other.into(),
            })
    }

    /// Paths added, modified and deleted from snapshot `a` to snapshot `b`, or to `a`'s live sandbox.
    pub async fn diff_snapshot(
        &self,
        account: &str,
        a: &str,
        b: Option<&str>,
    ) -> Result<Vec<DiffEntry>> {
        let a = self.find_snapshot(account, a)?;
        let new = match b {
            Some(b) => self.snapshot_rootfs(&self.find_snapshot(account, b)?.id),
            None => {
                let live = self.find(account, a.sandbox_id.as_str()).map_err(|_| {
                    EngineError::NotFound(format!(
                        "the source sandbox {} of snapshot {} is gone: compare with another snapshot instead",
                        a.sandbox_id, a.id
                    ))
                })?;
                self.rootfs(&live.id)
            }
        };
        let old = self.snapshot_rootfs(&a.id);
        let changes = tokio::task::spawn_blocking(move || cairn_storage::diff_trees(&old, &new))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(changes
            .into_iter()
            .map(|c| DiffEntry {
                path: c.path,
                kind: serde_json::to_value(c.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                size: c.size,
            })
            .collect())
    }

    /// Deletes every snapshot taken from a sandbox (for `destroy --with-snapshots`).
    pub(crate) async fn delete_sandbox_snapshots(
        &self,
        sandbox: &cairn_types::SandboxId,
    ) -> Result<()> {
        for s in self.db.sandbox_snapshots(sandbox)? {
            self.purge_snapshot(&s.id).await?;
        }
        Ok(())
    }

    /// Deletes a snapshot crash-safely: the row is marked `deleted` first (recovery finishes
    /// the job from there), then its files go, then the row.
    pub(crate) async fn purge_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.db
            .set_snapshot_state(id, SnapshotState::Deleted, None)?;
        self.remove_snapshot_files(id).await;
        self.db.delete_snapshot(id)?;
        Ok(())
    }
}

/// CPU architecture, and gVisor's platform (its checkpoints hold platform state).
fn platform(runtime: cairn_types::RuntimeKind) -> String {
    match runtime {
        cairn_types::RuntimeKind::Gvisor => format!("{}/systrap", std::env::consts::ARCH),
        cairn_types::RuntimeKind::Runc => std::env::consts::ARCH.to_string(),
    }
}

/// This host's kernel release (recorded in manifests).
pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}
