//! [`Runc`]: `runc` on the host kernel. What is runc's own lives here: pausing through the
//! cgroup freezer, memory checkpoints through CRIU (whose page images stream to cairnd
//! through pipes), the loopback a restored network namespace needs, hostnames set from the
//! host in the container's UTS namespace, and waiting for a started init to let go of the
//! runtime's log. The commands both runtimes share are in [`crate::cli`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use cairn_cmd::{Cmd, CmdError};
use cairn_types::RuntimeKind;

use crate::bundle::Flavor;
use crate::cli::{valid_hostname, Cli};
use crate::started::Started;
use crate::{
    ContainerState, ContainerStatus, ExecChild, ExecIo, ExecSpec, ExitWatch, LimitHits, Listed,
    Runtime, RuntimeError, SandboxSpec, Signal,
};

/// Pipes made for CRIU's page data (see [`crate::criu::page_images`]): one per process (and
/// shared memory segment) dumped, counting from the first; those of further processes are
/// shared after the dump.
const PAGE_PIPES: usize = 32;

/// `runc`: the host kernel, fastest; memory checkpoints through CRIU 4.1 or newer.
#[derive(Clone, Debug)]
pub struct Runc {
    cli: Cli,
    /// The init pid of each container this process started or restored.
    started: Started,
}

impl Runc {
    /// `binary` (runc), keeping its state under `state_root`.
    pub fn new(binary: impl Into<PathBuf>, state_root: impl Into<PathBuf>) -> Runc {
        Runc {
            cli: Cli::new(
                RuntimeKind::Runc,
                binary.into(),
                state_root.into(),
                "install runc: apt-get install runc",
                Vec::new(),
            ),
            started: Started::default(),
        }
    }

    /// Freezes or thaws the container through its cgroup; false when that is not possible
    /// here (the caller then runs `runc pause`/`resume`).
    /// A freeze waits for threads caught waiting on a vfork child (see
    /// [`crate::freezer::freeze_settled`]), so that the container can be checkpointed.
    async fn freeze_directly(&self, id: &str, frozen: bool) -> bool {
        let id = id.to_string();
        let set = move || {
            if frozen {
                crate::freezer::freeze_settled(&id)
            } else {
                crate::freezer::set_frozen(&id, false)
            }
        };
        match tokio::task::spawn_blocking(set).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cgroup freezer failed; falling back to the runtime");
                false
            }
            Err(_) => false,
        }
    }

    /// A failed checkpoint or restore as the errors CRIU logged, which say why
    /// (runc itself only says "criu failed").
    fn criu_result(
        &self,
        action: &'static str,
        ran: Result<cairn_cmd::Output, CmdError>,
        log: &Path,
    ) -> Result<(), RuntimeError> {
        match ran {
            Ok(_) => Ok(()),
            Err(e @ CmdError::Failed { .. }) => match crate::criu::log_errors(log) {
                Some(errors) => Err(RuntimeError::Criu {
                    action,
                    detail: format!(
                        "{errors}{} (CRIU log: {})",
                        crate::criu::advice(&errors),
                        log.display()
                    ),
                }),
                None => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// The host pid of container `id`'s init, asked of runc.
    async fn init_pid(&self, id: &str, what: &str) -> Result<u32, RuntimeError> {
        match self.cli.state(id).await? {
            Some(s) if s.pid > 0 => Ok(s.pid),
            _ => Err(self
                .cli
                .protocol(format!("{what}container {id} has no running init"))),
        }
    }

    /// Brings `lo` up in a restored container: CRIU gives it a new network
    /// namespace whose loopback is down. Runs the host's `ip` in that namespace, so
    /// images without networking tools work too.
    async fn loopback_up(&self, id: &str, bundle: &Path) -> Result<(), RuntimeError> {
        // The pid file the restore just wrote spares a `runc state` process.
        let written = std::fs::read_to_string(bundle.join("init.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .filter(|p| *p > 0);
        let pid = match written {
            Some(p) => p,
            None => self.init_pid(id, "restored ").await?,
        };
        Cmd::new("nsenter")
            .install_hint("install util-linux and iproute2: apt-get install util-linux iproute2")
            .arg("--target")
            .arg(pid.to_string())
            .arg("--net")
            .args(["ip", "link", "set", "lo", "up"])
            .run()
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Runtime for Runc {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Runc
    }

    fn program(&self) -> &'static str {
        "runc"
    }

    fn write_bundle(&self, dir: &Path, spec: &SandboxSpec) -> Result<(), RuntimeError> {
        // Cairn's seccomp filter, and CRIU's configuration for memory checkpoints.
        let flavor = Flavor {
            seccomp: true,
            criu_config: true,
            ..Flavor::default()
        };
        crate::bundle::write_bundle(dir, spec, flavor)
    }

    fn enables(&self) -> &'static str {
        "runc sandboxes; install: apt-get install runc"
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        self.cli.version().await
    }

    async fn checkpoint_support(&self) -> Result<Option<crate::CriuVersion>, RuntimeError> {
        crate::criu::require_installed().await.map(Some)
    }

    fn checkpoint_streams(&self) -> Vec<String> {
        crate::criu::page_images(PAGE_PIPES)
    }

    async fn create_and_start(&self, id: &str, bundle: &Path) -> Result<(), RuntimeError> {
        // One `runc run --detach` rather than `create` then `start`: a Go process less per
        // sandbox, which is most of what a batch of forks costs on a small host.
        self.cli.run_detached(id, bundle, self.cli.cmd()).await?;
        init_settled(&bundle.join("init.pid"), &bundle.join("init.log")).await;
        self.started.remember_file(id, &bundle.join("init.pid"));
        Ok(())
    }

    async fn state(&self, id: &str) -> Result<Option<ContainerState>, RuntimeError> {
        self.cli.state(id).await
    }

    async fn exec(
        &self,
        id: &str,
        spec: &ExecSpec,
        scratch: &Path,
        io: ExecIo,
    ) -> Result<ExecChild, RuntimeError> {
        self.cli.exec(id, spec, scratch, io, "--pid-file").await
    }

    async fn kill_exec(&self, _id: &str, exec: &ExecChild) -> Result<(), RuntimeError> {
        // The pid file holds the host pid of the process.
        let pid = self.cli.exec_pid(exec)?;
        if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        Ok(())
    }

    /// `runc checkpoint --leave-running` into `image_dir`, with the bundle's CRIU
    /// configuration (see [`crate::criu::CONFIG`]). A container frozen through its
    /// cgroup stays frozen: CRIU puts the freezer back as it found it.
    /// The caller checks CRIU's version beforehand ([`Runtime::checkpoint_support`]),
    /// outside the pause.
    async fn checkpoint(&self, id: &str, image_dir: &Path) -> Result<(), RuntimeError> {
        let io = |source| RuntimeError::Bundle {
            path: image_dir.to_path_buf(),
            source,
        };
        let image_dir = std::path::absolute(image_dir).map_err(io)?;
        // CRIU cannot seize a thread waiting for its vfork child: it would freeze the
        // container for 10 s and then fail. Say so at once instead.
        let container = id.to_string();
        let waiting =
            tokio::task::spawn_blocking(move || crate::freezer::vfork_waiters(&container))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
        if !waiting.is_empty() {
            let list: Vec<String> = waiting.iter().map(ToString::to_string).collect();
            return Err(RuntimeError::Busy(format!(
                "the processes of container {id} cannot be checkpointed now: {} waits for a child it started with vfork (posix_spawn, system()) to run its program; try again in a moment",
                list.join(", ")
            )));
        }
        // CRIU's log goes beside the images, not among them, and only stays on failure.
        let work = image_dir.with_extension("work");
        std::fs::create_dir_all(&work).map_err(io)?;
        let dumped = self
            .cli
            .cmd()
            .arg("checkpoint")
            .arg("--image-path")
            .arg(&image_dir)
            .arg("--work-path")
            .arg(&work)
            .arg("--leave-running")
            .arg(id)
            .timeout(Duration::from_secs(300))
            .run()
            .await;
        let result = self.criu_result("checkpoint", dumped, &work.join("dump.log"));
        if result.is_ok() {
            let _ = std::fs::remove_dir_all(&work);
        }
        result
    }

    /// `runc restore --detach` of `image_dir` as container `id` from `bundle` (whose root
    /// may be anywhere: runc gives CRIU the new root and mounts), CRIU's log in `bundle/criu`.
    async fn restore(&self, id: &str, bundle: &Path, image_dir: &Path) -> Result<(), RuntimeError> {
        crate::criu::require_installed().await?;
        let io = |source| RuntimeError::Bundle {
            path: bundle.to_path_buf(),
            source,
        };
        // runc resolves relative paths from the bundle: give it absolute ones.
        let bundle = std::path::absolute(bundle).map_err(io)?;
        let image_dir = std::path::absolute(image_dir).map_err(io)?;
        let work = bundle.join("criu");
        std::fs::create_dir_all(&work).map_err(io)?;
        let restored = self
            .cli
            .cmd()
            .arg("restore")
            .arg("--detach")
            .arg("--image-path")
            .arg(&image_dir)
            .arg("--work-path")
            .arg(&work)
            .arg("--bundle")
            .arg(&bundle)
            .arg("--pid-file")
            .arg(bundle.join("init.pid"))
            .arg(id)
            .output_file(bundle.join("init.log"))
            .timeout(Duration::from_secs(300))
            .run()
            .await;
        self.criu_result("restore", restored, &work.join("restore.log"))?;
        // Its log is only read on failure (as the checkpoint's).
        let _ = std::fs::remove_dir_all(&work);
        self.started.remember_file(id, &bundle.join("init.pid"));
        // A checkpoint taken while paused (as Cairn takes them) may come back paused. A thaw
        // through the cgroup freezer costs no process and is harmless if thawed.
        if !self.freeze_directly(id, false).await
            && self
                .state(id)
                .await?
                .is_some_and(|s| s.status == ContainerStatus::Paused)
        {
            self.resume(id).await?;
        }
        self.loopback_up(id, &bundle).await
    }

    /// The host's `hostname`, run in the container's UTS namespace only (nothing of the image
    /// runs; its processes may be frozen).
    async fn set_hostname(
        &self,
        id: &str,
        name: &str,
        _scratch: &Path,
    ) -> Result<(), RuntimeError> {
        if !valid_hostname(name) {
            return Err(RuntimeError::Spec(format!(
                "'{name}' is not a valid hostname"
            )));
        }
        let pid = self.init_pid(id, "").await?;
        Cmd::new("nsenter")
            .install_hint("install util-linux and hostname: apt-get install util-linux hostname")
            .arg("--target")
            .arg(pid.to_string())
            .arg("--uts")
            .args(["hostname", name])
            .timeout(Duration::from_secs(10))
            .run()
            .await?;
        Ok(())
    }

    async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        if self.freeze_directly(id, true).await {
            return Ok(());
        }
        self.cli.cmd().arg("pause").arg(id).run().await?;
        Ok(())
    }

    async fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        if self.freeze_directly(id, false).await {
            return Ok(());
        }
        self.cli.cmd().arg("resume").arg(id).run().await?;
        Ok(())
    }

    async fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        self.cli.kill(id, signal).await
    }

    async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        self.started.forget(id);
        self.cli.delete(id).await
    }

    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        self.cli.list().await
    }

    async fn settle(&self, wait: Duration) -> usize {
        crate::strays::settle(self.cli.state_root(), wait).await
    }

    async fn end_strays(&self) -> Result<Vec<u32>, RuntimeError> {
        // A runc container's processes are its init and what it started, which `delete`
        // reaches through the container's cgroup; runc leaves none of its own.
        Ok(Vec::new())
    }

    async fn watch(&self, id: &str) -> Result<Option<ExitWatch>, RuntimeError> {
        self.started.watch(&self.cli, id).await
    }

    fn limit_hits(&self, id: &str) -> Option<LimitHits> {
        LimitHits::read(id)
    }
}

/// Waits (at most 5 s) until a runc container's init, whose pid is in `pid_file`, runs its own
/// program and has let go of the runtime's `log` (the init's first step sends its output
/// elsewhere: see [`crate::bundle::INIT_STDIO_PREFIX`]). `runc start` returns before that:
/// its own init may still be inside `execve`, where a cgroup v1 freeze cannot complete, and
/// a checkpoint then finds a descriptor on a host file it cannot dump.
async fn init_settled(pid_file: &Path, log: &Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let settled = || {
        let Some(pid) = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        else {
            return true;
        };
        match std::fs::read_link(format!("/proc/{pid}/fd/1")) {
            Ok(out) => out != log,
            // Gone already: nothing to wait for.
            Err(_) => true,
        }
    };
    while !settled() {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(pid_file = %pid_file.display(), "the container's init still writes to the runtime's log after 5 s");
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
