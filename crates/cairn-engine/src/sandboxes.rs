//! Sandbox life: create (writable snapshot of the image, OCI bundle, runtime
//! start), stop, start, destroy, list and inspect. Every change on one sandbox
//! holds that sandbox's lock; different sandboxes proceed in parallel.

use std::path::PathBuf;
use std::time::Duration;

use cairn_db::{NewSandbox, SandboxRecord};
use cairn_runtime::{bundle::default_env, SandboxSpec};
use cairn_storage::Tree;
use cairn_types::api::SandboxInfo;
use cairn_types::{validate_name, NetworkMode, ProcessDefaults, SandboxId, SandboxState};

use crate::images::StoredImageConfig;
use crate::limits::{check_env_size, check_workdir, merge_env};
use crate::plan::{plan_create, CreatePlan, CreateSandbox, Inherited};
use crate::{Engine, EngineError, Result};

impl Engine {
    /// The name of image `image_id`, for listings (its id when the row is gone or unreadable).
    pub(crate) async fn image_name(&self, image_id: &str) -> String {
        let id = image_id.to_string();
        self.db(move |db| db.image(&id))
            .await
            .ok()
            .flatten()
            .map_or_else(|| image_id.to_string(), |i| i.name)
    }

    pub(crate) async fn info(&self, r: &SandboxRecord) -> SandboxInfo {
        let (network, address, published) = self.network_info(r).await;
        let image = self.image_name(&r.image_id).await;
        SandboxInfo {
            id: r.id.to_string(),
            name: r.name.clone(),
            image,
            runtime: r.runtime,
            state: r.state,
            state_reason: r.state_reason.clone(),
            cpus: r.resources.cpus,
            memory_bytes: r.resources.memory_bytes,
            pids_limit: r.resources.pids_limit,
            env: r.process.env.clone(),
            workdir: r.process.workdir.clone(),
            created_at: r.created_at,
            network,
            address,
            published,
            idle_timeout_secs: r.idle_timeout_secs,
            memory_released: r.memory_snapshot.is_some(),
            paused_at: r.paused_at.filter(|_| r.state == SandboxState::Paused),
            pause_reason: r.pause_reason.filter(|_| r.state == SandboxState::Paused),
            disk_bytes: self.disk_limit(r),
            disk_used_bytes: self
                .storage
                .written_bytes(&Tree::sandbox(&r.id))
                .ok()
                .flatten(),
            agent: matches!(r.state, SandboxState::Running | SandboxState::Paused)
                .then(|| self.agent_status(&r.id))
                .flatten(),
            secrets: self.secret_names(r.id.as_str()).await,
            parent_snapshot: r.origin.as_ref().map(|s| s.to_string()),
        }
    }

    /// Where sandbox `id`'s root is (for its bundle and the files Cairn writes into it).
    pub(crate) fn rootfs(&self, id: &SandboxId) -> PathBuf {
        self.storage.path(&Tree::sandbox(id))
    }

    /// Finds a sandbox of `account` by id or name; another account's sandbox is "not found".
    pub(crate) async fn find(&self, account: &str, id_or_name: &str) -> Result<SandboxRecord> {
        let r = self.look_up(account, id_or_name).await?;
        // Every API call that uses a sandbox counts as activity (see the idle timeout).
        self.touch(&r.id);
        Ok(r)
    }

    /// [`Engine::find`] for a look that is no use of the sandbox (inspect, listing its
    /// snapshots): it does not count as activity, so it neither keeps a sandbox from its
    /// idle timeout nor wakes one.
    pub(crate) async fn look_up(&self, account: &str, id_or_name: &str) -> Result<SandboxRecord> {
        let (who, what) = (account.to_string(), id_or_name.to_string());
        let found = self.db(move |db| db.find_sandbox(&who, &what)).await?;
        found.ok_or_else(|| {
            EngineError::NotFound(format!(
                "no sandbox '{id_or_name}': list your sandboxes with 'cairn ls'"
            ))
        })
    }

    /// Finds a sandbox, takes its lifecycle lock, and reads it again under the lock (its
    /// state may have changed while waiting).
    pub(crate) async fn find_locked(
        &self,
        account: &str,
        id_or_name: &str,
    ) -> Result<(tokio::sync::OwnedMutexGuard<()>, SandboxRecord)> {
        let r = self.find(account, id_or_name).await?;
        let guard = self.lock_for(&r.id).lock_owned().await;
        let r = self.find(account, r.id.as_str()).await?;
        Ok((guard, r))
    }

    /// Creates and starts a sandbox for `account`.
    pub async fn create_sandbox(&self, account: &str, req: &CreateSandbox) -> Result<SandboxInfo> {
        if let Some(name) = &req.name {
            validate_name(name)?;
        }
        self.check_secrets(&req.secrets)?;
        if req.repo.is_some() && req.from_snapshot.is_some() {
            return Err(EngineError::InvalidArgument(
                "give a repository or from_snapshot, not both: a fork has its snapshot's files"
                    .into(),
            ));
        }
        let mut repo = req.repo.as_ref().map(crate::repo::check).transpose()?;
        if let Some(r) = &mut repo {
            crate::repo::admit(r, self.cfg.repo_allow_private).await?;
        }
        // Where the root filesystem comes from, and the defaults it brings.
        let (image, snapshot) = match &req.from_snapshot {
            Some(snap) => {
                if !req.image.is_empty() {
                    return Err(EngineError::InvalidArgument(
                        "give either an image or from_snapshot, not both: a fork uses its snapshot's image".into(),
                    ));
                }
                let snap = self.ready_or_pulled(account, snap).await?;
                let image_id = snap.image_id.clone();
                let image = self.db(move |db| db.image(&image_id)).await?;
                let image = image.ok_or_else(|| {
                    EngineError::Internal(format!(
                        "image {} of snapshot {} is gone",
                        snap.image_id, snap.id
                    ))
                })?;
                (image, Some(snap))
            }
            None => {
                if req.image.is_empty() {
                    return Err(EngineError::InvalidArgument(
                        "no image given: pass --image NAME (see 'cairn image ls') or --from-snapshot SNAP".into(),
                    ));
                }
                (self.image_or_pull(account, &req.image).await?, None)
            }
        };
        // A fork's secrets: its snapshot's sandbox's, and the request's over them.
        let mut secrets = match &snapshot {
            Some(s) => self.secrets_of(account, s.id.as_str()).await?,
            None => cairn_types::Secrets::default(),
        };
        secrets.0.extend(req.secrets.0.clone());
        self.check_secrets(&secrets)?;
        let inherited = snapshot.as_ref().map(|s| Inherited {
            resources: s.resources,
            runtime: s.runtime,
        });
        let CreatePlan {
            resources,
            idle_timeout_secs,
            runtime: runtime_kind,
        } = plan_create(req, inherited, self.cfg.default_runtime, &self.cfg.caps)?;
        self.runtime(runtime_kind)?;
        let (network, publish) = self.requested_network(req, snapshot.as_ref()).await?;
        if let Some(s) = snapshot.as_ref().filter(|s| s.stateful && !req.fresh) {
            self.admit_resume(s, runtime_kind, network, crate::IdentityAdvice::Fork, "")
                .await?;
        }
        let disk_bytes = self
            .requested_disk(req.disk.as_deref(), snapshot.as_ref())
            .await?;
        self.require_pool_room(if snapshot.is_some() {
            "fork the snapshot"
        } else {
            "create the sandbox"
        })?;
        let (env, workdir, source) = match &snapshot {
            Some(s) => (
                merge_env(&s.process.env, &req.env),
                req.workdir
                    .clone()
                    .unwrap_or_else(|| s.process.workdir.clone()),
                Tree::snapshot(&s.id),
            ),
            None => {
                let image_cfg: StoredImageConfig =
                    serde_json::from_str(&image.config_json).unwrap_or_default();
                let workdir = req
                    .workdir
                    .clone()
                    .or(image_cfg.workdir)
                    .filter(|w| !w.is_empty())
                    .unwrap_or_else(|| "/".into());
                (
                    merge_env(&merge_env(&default_env(), &image_cfg.env), &req.env),
                    workdir,
                    Tree::image(&image.id),
                )
            }
        };
        // An image's configuration is its uploader's input too.
        check_env_size(&env, "the sandbox (the image's and the request's together)")?;
        if let Err(e) = check_workdir(&workdir) {
            return Err(EngineError::InvalidArgument(format!("the image's {e}")));
        }

        let id = SandboxId::generate();
        let lock = self.lock_for(&id);
        let _guard = lock.lock().await;
        // State column first: a crash from here on leaves a `creating` row that recovery cleans up.
        let new = NewSandbox {
            id: id.clone(),
            account: account.to_string(),
            name: req.name.clone(),
            image_id: image.id.clone(),
            runtime: runtime_kind,
            resources,
            process: ProcessDefaults { env, workdir },
            network,
            origin: snapshot.as_ref().map(|s| s.id.clone()),
            idle_timeout_secs,
            disk_bytes,
        };
        let record = self
            .db(move |db| db.insert_sandbox(&new))
            .await
            .map_err(EngineError::from_db)?;
        let created = async {
            // Sealed, before its agent asks for them.
            self.store_secrets(account, id.as_str(), &secrets).await?;
            let record = if network == NetworkMode::Nat {
                self.attach_network(&id, &publish).await?;
                let row = id.clone();
                self.db(move |db| db.sandbox(&row))
                    .await?
                    .ok_or_else(|| EngineError::Internal("sandbox vanished".into()))?
            } else {
                record.clone()
            };
            // The root carries the disk limit from the start (and counts against the
            // sandboxes' shared budget, which keeps the pool's reserve).
            self.storage
                .limited_snapshot(&source, &Tree::sandbox(&id), disk_bytes)
                .await?;
            crate::crash_point("fork-after-subvolume");
            // Its own machine id, before any process reads it (a fork's files hold its
            // source's).
            self.give_machine_id(self.rootfs(&id), None).await?;
            if let Some(repo) = &repo {
                let token = req.repo.as_ref().and_then(|r| r.token.as_deref());
                crate::repo::clone_into(&self.rootfs(&id), repo, token).await?;
            }
            match &snapshot {
                Some(s) if s.stateful && !req.fresh => {
                    let bundle = self.write_bundle_for(&record).await?;
                    let rt = self.runtime(record.runtime)?;
                    rt.restore(id.as_str(), &bundle, &self.snapshot_checkpoint(&s.id))
                        .await?;
                    // Its processes resumed with their source's hostname.
                    self.rename_restored(&record).await;
                    Ok(())
                }
                _ => self.boot(&record).await,
            }
        };
        match created.await {
            Ok(()) => {
                crate::crash_point("create-after-start");
                let row = id.clone();
                let record = self
                    .db(move |db| {
                        db.set_state(&row, SandboxState::Running, None)?;
                        db.sandbox(&row)
                    })
                    .await?
                    .ok_or_else(|| EngineError::Internal("sandbox vanished".into()))?;
                self.arm(&record).await;
                tracing::info!(sandbox = %id, runtime = %runtime_kind, image = %image.name,
                    from_snapshot = ?snapshot.as_ref().map(|s| s.id.to_string()),
                    network = %network, address = ?record.address, "sandbox running");
                Ok(self.info(&record).await)
            }
            Err(e) => {
                tracing::warn!(sandbox = %id, error = %e, "sandbox creation failed; rolling back");
                self.teardown(&record).await;
                let row = id.clone();
                self.db(move |db| db.delete_sandbox(&row)).await?;
                self.forget_lock(&id);
                if network == NetworkMode::Nat {
                    self.remove_unused_bridge().await;
                }
                Err(self.pool_full_or("create the sandbox", e))
            }
        }
    }

    /// Writes the bundle for the sandbox's root filesystem and starts the runtime.
    pub(crate) async fn boot(&self, r: &SandboxRecord) -> Result<()> {
        let bundle = self.write_bundle_for(r).await?;
        let runtime = self.runtime(r.runtime)?;
        if r.state != SandboxState::Creating {
            // A stale container of the same id would block create (a new id has none).
            runtime.delete(r.id.as_str()).await?;
        }
        runtime.create_and_start(r.id.as_str(), &bundle).await?;
        Ok(())
    }

    /// Sets up the sandbox's network namespace (`nat`: again before every start and
    /// restore), writes its OCI bundle and returns the bundle's directory.
    pub(crate) async fn write_bundle_for(&self, r: &SandboxRecord) -> Result<PathBuf> {
        let rootfs = self.rootfs(&r.id);
        if !rootfs.join("bin/sh").exists()
            && std::fs::symlink_metadata(rootfs.join("bin/sh")).is_err()
        {
            return Err(EngineError::InvalidArgument(
                "the image has no /bin/sh, which Cairn needs as the sandbox's init: import an image that contains a shell (e.g. busybox or Debian)".into(),
            ));
        }
        let bundle = self.run_dir(&r.id);
        let (netns, resolv_conf) = self.prepare_network(r).await?;
        let spec = SandboxSpec {
            hostname: r.id.to_string(),
            rootfs,
            cpus: r.resources.cpus,
            memory_bytes: r.resources.memory_bytes,
            pids_limit: r.resources.pids_limit,
            env: r.process.env.clone(),
            workdir: r.process.workdir.clone(),
            cgroups_path: PathBuf::from(cairn_runtime::bundle::CGROUP_PARENT).join(r.id.as_str()),
            netns,
            resolv_conf,
            agent: self.prepare_agent(&r.id),
        };
        let bundle2 = bundle.clone();
        let rt = self.runtime(r.runtime)?;
        tokio::task::spawn_blocking(move || rt.write_bundle(&bundle2, &spec))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
        self.arm_agent_init(r).await;
        Ok(bundle)
    }

    /// Removes everything a sandbox has on the host, best effort: container, network,
    /// root, bundle.
    pub(crate) async fn teardown(&self, r: &SandboxRecord) {
        self.disarm(&r.id);
        self.end_agent(&r.id);
        if let Ok(rt) = self.runtime(r.runtime) {
            if let Err(e) = rt.delete(r.id.as_str()).await {
                tracing::warn!(sandbox = %r.id, error = %e, "runtime delete failed");
            }
        }
        self.release_network(r).await;
        if let Err(e) = self.storage.delete_subvolume(&Tree::sandbox(&r.id)).await {
            tracing::warn!(sandbox = %r.id, error = %e, "root filesystem delete failed");
        }
        let _ = std::fs::remove_dir_all(self.run_dir(&r.id));
    }

    /// The sandboxes of an account.
    pub async fn list_sandboxes(&self, account: &str) -> Result<Vec<SandboxInfo>> {
        let who = account.to_string();
        let rows = self.db(move |db| db.list_sandboxes(&who)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.info(r).await);
        }
        Ok(out)
    }

    /// One sandbox of an account. Looking is not using: it neither wakes a paused sandbox
    /// nor holds off its idle timeout.
    pub async fn inspect_sandbox(&self, account: &str, id_or_name: &str) -> Result<SandboxInfo> {
        Ok(self.info(&self.look_up(account, id_or_name).await?).await)
    }

    /// Stops a sandbox's processes (TERM, then KILL after 10 s); its files stay.
    pub async fn stop_sandbox(&self, account: &str, id_or_name: &str) -> Result<SandboxInfo> {
        let (_guard, r) = self.find_locked(account, id_or_name).await?;
        match r.state {
            SandboxState::Stopped => return Ok(self.info(&r).await),
            SandboxState::Running | SandboxState::Paused => {}
            other => {
                return Err(EngineError::Conflict(format!(
                    "sandbox {} is {other} and cannot be stopped",
                    r.id
                )))
            }
        }
        self.note_end(
            &r.id,
            format!(
                "sandbox {} was stopped while the command ran, which ended it; start the sandbox again with 'cairn start {}'",
                r.id, r.id
            ),
        );
        self.halt(&r).await?;
        let (row, released) = (r.id.clone(), r.memory_snapshot.is_some());
        self.db(move |db| {
            if released {
                // Its processes were on disk only: stopping discards them.
                db.set_memory_snapshot(&row, None)?;
            }
            db.set_state(&row, SandboxState::Stopped, Some("stopped by request"))
        })
        .await?;
        tracing::info!(sandbox = %r.id, "sandbox stopped");
        Ok(self.info(&self.find(account, r.id.as_str()).await?).await)
    }

    /// Ends the container on purpose: TERM, wait up to 10 s, KILL, delete. Its runtime's end
    /// is not a death: the watch on it is disarmed first.
    pub(crate) async fn halt(&self, r: &SandboxRecord) -> Result<()> {
        self.disarm(&r.id);
        self.end_agent(&r.id);
        let rt = self.runtime(r.runtime)?;
        let id = r.id.as_str();
        if r.state == SandboxState::Paused {
            let _ = rt.kill(id, cairn_runtime::Signal::Kill).await;
        } else {
            rt.kill(id, cairn_runtime::Signal::Term).await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                match rt.state(id).await? {
                    Some(s)
                        if s.status == cairn_runtime::ContainerStatus::Running
                            && tokio::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    _ => break,
                }
            }
        }
        rt.delete(id).await?;
        Ok(())
    }

    /// Starts a stopped sandbox again on its files.
    pub async fn start_sandbox(&self, account: &str, id_or_name: &str) -> Result<SandboxInfo> {
        let (_guard, r) = self.find_locked(account, id_or_name).await?;
        match r.state {
            SandboxState::Running => return Ok(self.info(&r).await),
            SandboxState::Stopped => {}
            other => {
                return Err(EngineError::Conflict(format!(
                    "sandbox {} is {other} and cannot be started",
                    r.id
                )))
            }
        }
        self.boot(&r).await?;
        let row = r.id.clone();
        self.db(move |db| db.set_state(&row, SandboxState::Running, None))
            .await?;
        self.arm(&r).await;
        tracing::info!(sandbox = %r.id, "sandbox started");
        Ok(self.info(&self.find(account, r.id.as_str()).await?).await)
    }

    /// Destroys a sandbox: container, root filesystem, bundle, cgroup, row.
    /// A running sandbox is refused unless `force`.
    pub async fn destroy_sandbox(
        &self,
        account: &str,
        id_or_name: &str,
        force: bool,
        with_snapshots: bool,
    ) -> Result<()> {
        let (_guard, r) = self.find_locked(account, id_or_name).await?;
        if matches!(r.state, SandboxState::Running | SandboxState::Paused) && !force {
            return Err(EngineError::Conflict(format!(
                "sandbox {} is {}: stop it first ('cairn stop {}') or destroy it with --force",
                r.id, r.state, r.id
            )));
        }
        // State first: a crash from here on leaves a `destroyed` row that recovery finishes.
        let row = r.id.clone();
        self.db(move |db| db.set_state(&row, SandboxState::Destroyed, Some("being destroyed")))
            .await?;
        let rt = self.runtime(r.runtime)?;
        self.note_end(
            &r.id,
            format!(
                "sandbox {} was destroyed while the command ran, which ended it",
                r.id
            ),
        );
        self.disarm(&r.id);
        if matches!(r.state, SandboxState::Running | SandboxState::Paused) {
            let _ = rt.kill(r.id.as_str(), cairn_runtime::Signal::Kill).await;
        }
        rt.delete(r.id.as_str()).await?;
        self.release_network(&r).await;
        self.storage.delete_subvolume(&Tree::sandbox(&r.id)).await?;
        let run = self.run_dir(&r.id);
        if run.exists() {
            std::fs::remove_dir_all(&run).map_err(|e| {
                EngineError::Internal(format!("cannot remove {}: {e}", run.display()))
            })?;
        }
        let row = r.id.clone();
        self.db(move |db| db.delete_sandbox(&row)).await?;
        crate::crash_point("destroy-after-row");
        // Its failed snapshots hold no files and say nothing more once it is gone (a crash
        // before this: recovery prunes them).
        self.prune_failed_snapshots(&r.id).await;
        if with_snapshots {
            self.delete_sandbox_snapshots(&r.id).await?;
        }
        self.forget_lock(&r.id);
        if r.network == NetworkMode::Nat {
            self.remove_unused_bridge().await;
        }
        tracing::info!(sandbox = %r.id, with_snapshots, "sandbox destroyed");
        Ok(())
    }
}
