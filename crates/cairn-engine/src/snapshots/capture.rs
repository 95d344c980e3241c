//! Capture: pause the sandbox, snapshot its files, checkpoint its memory, resume.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::Utc;

use cairn_db::SnapshotRecord;
use cairn_storage::Tree;
use cairn_types::{format_bytes, Progress, ProgressSink, SandboxState, SnapshotId, SnapshotState};

use crate::{Engine, EngineError, Result};

use super::{Captured, Sizes};

impl Engine {
    /// Whether this host can checkpoint and restore process memory of a sandbox of `runtime`
    /// (runc's need CRIU 4.1 or newer); the error (503) says what to install or use instead.
    pub(crate) async fn check_checkpoint_support(
        &self,
        runtime: cairn_types::RuntimeKind,
    ) -> Result<()> {
        match self.runtime(runtime)?.checkpoint_support().await {
            Ok(_) => Ok(()),
            Err(e @ cairn_runtime::RuntimeError::CriuMissing { .. }) => {
                Err(EngineError::Unavailable(e.to_string()))
            }
            Err(other) => Err(other.into()),
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
        progress: &ProgressSink,
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
        let row = r.id.clone();
        let existing = self.db(move |db| db.sandbox_snapshots(&row)).await?;
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
        let row = r.id.clone();
        let parent_id = self.db(move |db| db.sandbox_origin(&row)).await?;
        let snap = SnapshotRecord {
            id: SnapshotId::generate(),
            account: account.to_string(),
            sandbox_id: r.id.clone(),
            sandbox_name: r.name.clone(),
            name,
            parent_id,
            image_id: r.image_id.clone(),
            runtime: r.runtime,
            resources: r.resources,
            process: r.process.clone(),
            stateful,
            auto,
            state: SnapshotState::Creating,
            error: None,
            size_bytes: 0,
            total_bytes: 0,
            created_at: Utc::now(),
            imported_from: None,
        };
        // State first: a crash from here on leaves a `creating` row that recovery turns into `failed`.
        let row = snap.clone();
        self.db(move |db| db.insert_snapshot(&row))
            .await
            .map_err(EngineError::from_db)?;
        let started = std::time::Instant::now();
        match self.capture(r, &snap, progress).await {
            Ok(c) => {
                let (id, sandbox) = (snap.id.clone(), r.id.clone());
                let (size, total) = (c.sizes.size, c.sizes.total_estimate);
                self.db(move |db| db.finish_snapshot(&id, &sandbox, size, total))
                    .await?;
                // From the pause to `ready` (what the benchmark compares with a raw btrfs snapshot),
                // and the whole capture including the flush before the pause.
                let ready_us = c.paused_at.elapsed().as_micros() as u64;
                let capture_us = started.elapsed().as_micros() as u64;
                tracing::info!(sandbox = %r.id, snapshot = %snap.id, ready_us, capture_us, size = c.sizes.size, "snapshot ready");
                self.measure_total_later(&snap, c.sizes.memory);
                if !snap.auto {
                    self.push_later(account, &snap.id);
                }
                if c.index_later {
                    self.index_later(&snap.id);
                }
            }
            Err(e) => {
                tracing::warn!(sandbox = %r.id, snapshot = %snap.id, error = %e, "snapshot failed");
                self.remove_snapshot_files(&snap.id).await;
                if e.is_no_space() {
                    // Refused for want of space: nothing of it stays, not even a failed row.
                    let id = snap.id.clone();
                    let _ = self.db(move |db| db.delete_snapshot(&id)).await;
                    return Err(self.pool_full_or("take the snapshot", e));
                }
                let (id, error) = (snap.id.clone(), e.to_string());
                let _ = self
                    .db(move |db| db.set_snapshot_state(&id, SnapshotState::Failed, Some(&error)))
                    .await;
                return Err(e);
            }
        }
        let id = snap.id.clone();
        self.db(move |db| db.snapshot(&id))
            .await?
            .ok_or_else(|| EngineError::Internal("snapshot vanished".into()))
    }

    /// Manifest, then pause, read-only subvolume snapshot, resume; then sizes and limits.
    pub(super) async fn capture(
        &self,
        r: &cairn_db::SandboxRecord,
        snap: &SnapshotRecord,
        progress: &ProgressSink,
    ) -> Result<Captured> {
        // Its directory, and (stateful) the memory checkpoint's, compressed on its way to disk.
        self.storage
            .create_snapshot_dir(snap.id.as_str(), snap.stateful)
            .await?;
        // The manifest says nothing about the capture itself: write it before the pause.
        // The row stays `creating` until everything is in place, so a crash leaves nothing ready.
        self.write_manifest(snap).await?;
        let rt = self.runtime(r.runtime)?;
        let running = r.state == SandboxState::Running;
        if running && !snap.stateful {
            // gVisor's sentry may hold written file data in its own cache: flush it to the host
            // first. A checkpoint flushes it itself (runsc writes open files back before saving).
            rt.flush(
                r.id.as_str(),
                &r.process.env,
                &self.run_dir(&r.id).join("exec"),
            )
            .await;
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
            self.receive_checkpoint(snap).await
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
        // A client watching sees the memory arrive (ended when the capture is, on any path).
        let reporting = match &receiving {
            Some(rc) if progress.is_watched() => {
                Some(report_memory(&r.id, rc.received(), progress.clone()))
            }
            _ => None,
        };
        // No host-connected socket may be open at a checkpoint (gVisor crashes, CRIU refuses):
        // the agent closes its connection first, and dials back after the resume.
        let quiesced = running && snap.stateful && self.agent(&r.id).is_some();
        if quiesced {
            self.quiesce_agent(&r.id).await;
        }
        let paused_at = std::time::Instant::now();
        if running {
            if let Err(e) = rt.pause(r.id.as_str()).await {
                if quiesced {
                    self.relisten_agent(&r.id);
                }
                Self::let_go(receiving).await;
                return Err(e.into());
            }
        }
        // Memory and files are captured in the same pause, so they agree. A runc sandbox's
        // files go first, while the pool holds no dirty checkpoint for btrfs to wait on; a
        // gVisor checkpoint writes back the files its sentry holds, so its files go after.
        let files_first = rt.files_before_memory();
        let files = if files_first {
            self.snapshot_files(r, &snap.id).await
        } else {
            Ok(())
        };
        let checkpointed = match files {
            Err(e) => {
                Self::let_go(receiving).await;
                Err(e)
            }
            Ok(()) if snap.stateful => self.checkpoint(rt.as_ref(), r, &snap.id, receiving).await,
            Ok(()) => Ok(None),
        };
        // The whole memory has arrived: its size is the phase's total.
        if let Some(reporting) = reporting {
            reporting.finish();
        }
        let taken = match checkpointed {
            Ok(received) if !files_first => {
                self.snapshot_files(r, &snap.id).await.map(|()| received)
            }
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
                if quiesced {
                    self.relisten_agent(&r.id);
                }
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
            self.finish_capture(snap, received).await
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
    pub(super) async fn snapshot_files(
        &self,
        r: &cairn_db::SandboxRecord,
        snapshot: &SnapshotId,
    ) -> Result<()> {
        self.storage
            .snapshot(&Tree::sandbox(&r.id), &Tree::snapshot(snapshot), true)
            .await
            .map_err(EngineError::from)
    }

    /// Lets go of pipes no checkpoint will write into (removing them).
    pub(super) async fn let_go(receiving: Option<cairn_storage::Receiving>) {
        if let Some(receiving) = receiving {
            let _ = tokio::task::spawn_blocking(move || receiving.finish()).await;
        }
    }

    /// The memory checkpoint of a paused sandbox into snapshot `snapshot`'s checkpoint, its
    /// pages received by `receiving` when the runtime streams them to Cairn.
    pub(super) async fn checkpoint(
        &self,
        rt: &dyn cairn_runtime::Runtime,
        r: &cairn_db::SandboxRecord,
        snapshot: &SnapshotId,
        receiving: Option<cairn_storage::Receiving>,
    ) -> Result<Option<cairn_storage::Received>> {
        let done = rt
            .checkpoint(r.id.as_str(), &self.snapshot_checkpoint(snapshot))
            .await
            .map_err(|e| EngineError::from_checkpoint(r.id.as_str(), snapshot.as_str(), e));
        let Some(receiving) = receiving else {
            return done.map(|()| None);
        };
        let finished = tokio::task::spawn_blocking(move || receiving.finish())
            .await
            .map_err(|e| {
                EngineError::failed("the checkpoint's receiving task ended abnormally", e)
            });
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
    pub(super) async fn finish_capture(
        &self,
        snap: &SnapshotRecord,
        received: Option<cairn_storage::Received>,
    ) -> Result<(Sizes, bool)> {
        // With nothing to share, the checkpoint is only indexed for the next snapshot: after
        // `ready` (see `index_later`), as hashing it beside the flush delayed `ready` by a
        // quarter of a second for 512 MB, competing with btrfs's compression for the CPUs.
        let index_later = snap.stateful
            && match &received {
                Some(received) => !received.has_reference(),
                None => !self.parent_has_index(snap),
            };
        // The runtime wrote every page; what the parent's checkpoint holds already is shared
        // with it before the flush, so only the pages that changed are written to disk.
        let shared = if snap.stateful && !index_later {
            self.share_checkpoint(snap, received).await
        } else {
            0
        };
        // Durable before `ready`: the memory checkpoint and the manifest are plain files in the
        // pool (the subvolume's data was flushed by the snapshot itself).
        self.storage
            .sync_snapshot(snap.id.as_str())
            .await
            .map_err(|e| EngineError::failed("cannot flush the snapshot to disk", e))?;
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
        self.check_account_room(&snap.account, size).await?;
        Ok((sizes, index_later))
    }

    /// Refuses a snapshot of `size` bytes that would take `account`'s ready snapshots over
    /// the per-account limit.
    pub(crate) async fn check_account_room(&self, account: &str, size: u64) -> Result<()> {
        let limit = self.cfg.snapshot_limits.account_bytes;
        let who = account.to_string();
        let used: u64 = self
            .db(move |db| db.account_snapshots(&who))
            .await?
            .iter()
            .filter(|s| s.state == SnapshotState::Ready)
            .map(|s| s.size_bytes)
            .sum();
        if used + size > limit {
            return Err(EngineError::Limit(format!(
                "the account's snapshots would hold {} (now {}, this one {}), over the limit of {}: delete old snapshots",
                format_bytes(used + size),
                format_bytes(used),
                format_bytes(size),
                format_bytes(limit)
            )));
        }
        Ok(())
    }
}

/// Reports the bytes of memory a checkpoint has delivered so far, five times a second, out
/// of an estimate of the sandbox's memory ([`cairn_runtime::limit_hits::memory_in_use`]),
/// until [`MemoryReport::finish`] or a drop.
fn report_memory(
    sandbox: &cairn_types::SandboxId,
    received: Arc<AtomicU64>,
    progress: ProgressSink,
) -> MemoryReport {
    let id = sandbox.to_string();
    let (count, sink) = (Arc::clone(&received), progress.clone());
    let task = tokio::spawn(async move {
        let estimate =
            tokio::task::spawn_blocking(move || cairn_runtime::limit_hits::memory_in_use(&id))
                .await
                .ok()
                .flatten()
                .filter(|n| *n > 0);
        loop {
            let done = count.load(Ordering::Relaxed);
            // Never a bar past its end: an estimate short of what arrived grows with it.
            let total = estimate.map(|t| t.max(done));
            sink.report(Progress::bytes("memory", done, total));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    MemoryReport {
        task,
        received,
        progress,
    }
}

/// The reports of a checkpoint's memory: they stop when this drops.
struct MemoryReport {
    task: tokio::task::JoinHandle<()>,
    received: Arc<AtomicU64>,
    progress: ProgressSink,
}

impl MemoryReport {
    /// The checkpoint is written: reports what arrived as the whole.
    fn finish(self) {
        self.task.abort();
        let done = self.received.load(Ordering::Relaxed);
        self.progress
            .report(Progress::bytes("memory", done, Some(done)));
    }
}

impl Drop for MemoryReport {
    fn drop(&mut self) {
        self.task.abort();
    }
}
