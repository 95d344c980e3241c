//! [`Runtime`] over an OCI runtime's command line: `runsc` (gVisor) and
//! `runc`. The two speak nearly the same language; where they differ
//! (global flags, pid files, killing an exec'd process) this file says so.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder, ProcessBuilder};

use cairn_cmd::{Cmd, CmdError};
use cairn_types::RuntimeKind;

use crate::bundle::{write_atomic, CGROUP_PARENT, DEFAULT_CAPABILITIES};
use crate::gvisor_control;
use crate::{
    ContainerState, ExecChild, ExecIo, ExecSpec, ExitWatch, LimitHits, Listed, Runtime,
    RuntimeError,
};

/// A runtime driven through its CLI.
#[derive(Clone, Debug)]
pub struct OciCli {
    kind: RuntimeKind,
    binary: PathBuf,
    state_root: PathBuf,
}

impl OciCli {
    /// gVisor's `runsc` (systrap platform, writes straight to the host
    /// filesystem, no gVisor network stack), keeping its state under `state_root`.
    pub fn runsc(binary: impl Into<PathBuf>, state_root: impl Into<PathBuf>) -> Self {
        OciCli {
            kind: RuntimeKind::Gvisor,
            binary: binary.into(),
            state_root: state_root.into(),
        }
    }

    /// `runc`, keeping its state under `state_root`.
    pub fn runc(binary: impl Into<PathBuf>, state_root: impl Into<PathBuf>) -> Self {
        OciCli {
            kind: RuntimeKind::Runc,
            binary: binary.into(),
            state_root: state_root.into(),
        }
    }

    fn install_hint(&self) -> &'static str {
        match self.kind {
            RuntimeKind::Gvisor => "install gVisor: apt-get install -t bookworm-backports runsc (or run scripts/setup.sh)",
            RuntimeKind::Runc => "install runc: apt-get install runc",
        }
    }

    /// The runtime command with its global flags.
    fn cmd(&self) -> Cmd {
        self.cmd_net(false)
    }

    /// The global flags; `netstack` selects gVisor's own network stack over the
    /// interfaces of the namespace it starts in (a Cairn `nat` namespace) instead of
    /// `--network=none`. Only `create`, `start` and `restore` read `--network`
    /// (runsc 20240729: exec, kill, pause, checkpoint and delete behave the same either
    /// way), so the other commands always pass `--network=none`.
    fn global_flags(&self, netstack: bool) -> Vec<std::ffi::OsString> {
        let mut flags: Vec<std::ffi::OsString> =
            vec!["--root".into(), self.state_root.clone().into()];
        if self.kind == RuntimeKind::Gvisor {
            flags.extend(["--platform=systrap".into(), "--overlay2=none".into()]);
            if netstack {
                // Open TCP connections are reset at checkpoint instead of refusing it.
                flags.extend(["--network=sandbox".into(), "--net-disconnect-ok".into()]);
            } else {
                flags.push("--network=none".into());
            }
        }
        flags
    }

    fn cmd_net(&self, netstack: bool) -> Cmd {
        Cmd::new(&self.binary)
            .install_hint(self.install_hint())
            .args(self.global_flags(netstack))
    }

    /// A runsc command that sets up gVisor's network stack (`start`, `restore`).
    ///
    /// runsc 20240729 decides that it runs in the host's root network namespace
    /// when `/proc/sys/net/core/rmem_default` exists, and refuses `--network=sandbox`
    /// there; since Linux 6.11 that file exists in every namespace
    /// (google/gvisor#10704, fixed in later releases). The command therefore runs in a
    /// private mount namespace with an empty tmpfs over `/proc/sys/net`; Cairn always
    /// hands runsc its own namespace, so the check has nothing to protect here.
    fn netstack_cmd(&self) -> Cmd {
        Cmd::new("unshare")
            .install_hint("install util-linux")
            .args([
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                "mount -t tmpfs -o ro,size=4k cairn-netns-mask /proc/sys/net && exec \"$0\" \"$@\"",
            ])
            .arg(&self.binary)
            .args(self.global_flags(true))
    }

    /// Whether the bundle joins a Cairn-made network namespace (gVisor then runs its netstack).
    fn netstack(&self, bundle: &Path) -> bool {
        self.kind == RuntimeKind::Gvisor && crate::bundle::bundle_netns(bundle).is_some()
    }

    /// Freezes or thaws a runc container through its cgroup; false when that is not possible
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

    /// The file that says Cairn paused this gVisor sandbox through its control socket (runsc's
    /// own state then still says `running`): [`Runtime::state`] reports `paused` while it
    /// exists, so a cairnd that stopped inside a snapshot's pause window thaws the sandbox
    /// when it starts again. Removed on resume and delete.
    fn pause_marker(&self, id: &str) -> PathBuf {
        self.state_root.join(format!("cairn-paused.{id}"))
    }

    /// Runs `call` against gVisor sandbox `id`'s control socket (see [`crate::gvisor_control`]).
    /// `Ok(false)`: the socket is not known or not reachable, use the `runsc` command instead.
    async fn control<F>(&self, id: &str, call: F) -> Result<bool, RuntimeError>
    where
        F: FnOnce(&Path) -> Result<(), gvisor_control::ControlError> + Send + 'static,
    {
        let root = self.state_root.clone();
        let id = id.to_string();
        let done =
            tokio::task::spawn_blocking(move || call(&gvisor_control::socket_path(&root, &id)?))
                .await
                .map_err(|e| RuntimeError::Control(e.to_string()))?;
        match done {
            Ok(()) => Ok(true),
            Err(e @ gvisor_control::ControlError::Unreachable { .. }) => {
                tracing::debug!(error = %e, "using the runsc command instead");
                Ok(false)
            }
            Err(e) => Err(RuntimeError::Control(e.to_string())),
        }
    }

    /// Calls `method`, which takes no argument, on gVisor sandbox `id`'s control server.
    async fn control_call(&self, id: &str, method: &'static str) -> Result<bool, RuntimeError> {
        self.control(id, move |socket| {
            gvisor_control::call(
                socket,
                method,
                serde_json::Value::Null,
                &[],
                Duration::from_secs(60),
            )
        })
        .await
    }

    /// Pauses gVisor sandbox `id` through its control socket; `false` when the socket is not
    /// reachable. The marker goes first: a crash in between leaves it to be thawed at start.
    async fn gvisor_pause(&self, id: &str) -> Result<bool, RuntimeError> {
        let marker = self.pause_marker(id);
        std::fs::write(&marker, b"").map_err(|e| {
            RuntimeError::Control(format!("cannot write {}: {e}", marker.display()))
        })?;
        let paused = self.control_call(id, gvisor_control::PAUSE).await;
        if !matches!(paused, Ok(true)) {
            let _ = std::fs::remove_file(&marker);
        }
        paused
    }

    /// `runc checkpoint --leave-running` into `image_dir`, with the bundle's CRIU
    /// configuration (see [`crate::criu::CONFIG`]). A container frozen through its
    /// cgroup stays frozen: CRIU puts the freezer back as it found it.
    /// The caller checks CRIU's version beforehand ([`crate::criu::require_installed`]),
    /// outside the pause.
    async fn runc_checkpoint(&self, id: &str, image_dir: &Path) -> Result<(), RuntimeError> {
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
    async fn runc_restore(
        &self,
        id: &str,
        bundle: &Path,
        image_dir: &Path,
    ) -> Result<(), RuntimeError> {
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
        self.criu_result("restore", restored, &work.join("restore.log"))
    }

    /// A failed runc checkpoint or restore as the errors CRIU logged, which say why
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

    /// Brings `lo` up in a restored runc container: CRIU gives it a new network
    /// namespace whose loopback is down. Runs the host's `ip` in that namespace, so
    /// images without networking tools work too.
    async fn loopback_up(&self, id: &str, bundle: &Path) -> Result<(), RuntimeError> {
        // The pid file the restore just wrote spares a `runc state` process.
        let written = std::fs::read_to_string(bundle.join("init.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i64>().ok())
            .filter(|p| *p > 0);
        let pid = match written {
            Some(p) => p,
            None => match self.state(id).await? {
                Some(s) if s.pid > 0 => s.pid.into(),
                _ => {
                    return Err(RuntimeError::Protocol {
                        runtime: self.kind,
                        detail: format!("restored container {id} has no running init"),
                    })
                }
            },
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

    /// Sets a restored container's hostname: for runc, the host's `hostname` run in the
    /// container's UTS namespace only (nothing of the image runs; its processes may be
    /// frozen); for gVisor, whose kernel is the sentry, the image's `hostname` run inside
    /// the sandbox with `CAP_SYS_ADMIN` (the one capability `sethostname` needs, which
    /// sandboxes otherwise lack; inside gVisor it reaches only the sandbox's own kernel).
    async fn hostname_in(&self, id: &str, name: &str, scratch: &Path) -> Result<(), RuntimeError> {
        if !valid_hostname(name) {
            return Err(RuntimeError::Spec(format!(
                "'{name}' is not a valid hostname"
            )));
        }
        match self.kind {
            RuntimeKind::Runc => {
                let pid = match self.state(id).await? {
                    Some(s) if s.pid > 0 => s.pid,
                    _ => {
                        return Err(RuntimeError::Protocol {
                            runtime: self.kind,
                            detail: format!("container {id} has no running init"),
                        })
                    }
                };
                Cmd::new("nsenter")
                    .install_hint(
                        "install util-linux and hostname: apt-get install util-linux hostname",
                    )
                    .arg("--target")
                    .arg(pid.to_string())
                    .arg("--uts")
                    .args(["hostname", name])
                    .timeout(Duration::from_secs(10))
                    .run()
                    .await?;
                Ok(())
            }
            RuntimeKind::Gvisor => {
                let spec_err = |e: oci_spec::OciSpecError| RuntimeError::Spec(e.to_string());
                let caps: HashSet<Capability> = [Capability::SysAdmin].into_iter().collect();
                let process = ProcessBuilder::default()
                    .terminal(false)
                    .args(vec!["hostname".to_string(), name.to_string()])
                    .env(crate::bundle::default_env())
                    .cwd("/")
                    .no_new_privileges(true)
                    .capabilities(
                        LinuxCapabilitiesBuilder::default()
                            .bounding(caps.clone())
                            .effective(caps.clone())
                            .permitted(caps)
                            .build()
                            .map_err(spec_err)?,
                    )
                    .build()
                    .map_err(spec_err)?;
                let io = |source| RuntimeError::Bundle {
                    path: scratch.to_path_buf(),
                    source,
                };
                std::fs::create_dir_all(scratch).map_err(io)?;
                let file = scratch.join(format!("hostname-{:016x}.json", rand_u64()));
                let json =
                    serde_json::to_vec(&process).map_err(|e| RuntimeError::Spec(e.to_string()))?;
                write_atomic(&file, &json).map_err(io)?;
                let ran = self
                    .cmd()
                    .arg("exec")
                    .arg("--process")
                    .arg(&file)
                    .arg(id)
                    .timeout(Duration::from_secs(10))
                    .run()
                    .await;
                let _ = std::fs::remove_file(&file);
                match ran {
                    Ok(_) => Ok(()),
                    Err(e) => Err(RuntimeError::Unsupported(format!(
                        "could not run the image's 'hostname' program in gVisor sandbox {id} (an image needs one, as busybox, Debian and Alpine have, for its stateful forks to get their own hostname): {e}"
                    ))),
                }
            }
        }
    }

    fn is_missing(err: &CmdError) -> bool {
        err.stderr().is_some_and(|e| {
            let e = e.to_ascii_lowercase();
            e.contains("does not exist")
                || e.contains("no such file")
                || e.contains("not found")
                || e.contains("cannot load container")
        })
    }
}

#[async_trait]
impl Runtime for OciCli {
    fn kind(&self) -> RuntimeKind {
        self.kind
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        let out = Cmd::new(&self.binary)
            .install_hint(self.install_hint())
            .arg("--version")
            .run()
            .await?;
        Ok(out
            .stdout_str()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string())
    }

    async fn create_and_start(&self, id: &str, bundle: &Path) -> Result<(), RuntimeError> {
        let log = bundle.join("init.log");
        let netstack = self.netstack(bundle);
        self.cmd_net(netstack)
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(bundle.join("init.pid"))
            .arg(id)
            .output_file(&log)
            .timeout(Duration::from_secs(60))
            .run()
            .await?;
        let start = if netstack {
            self.netstack_cmd()
        } else {
            self.cmd()
        };
        if let Err(e) = start
            .arg("start")
            .arg(id)
            .timeout(Duration::from_secs(60))
            .run()
            .await
        {
            let _ = self.delete(id).await;
            return Err(e.into());
        }
        if self.kind == RuntimeKind::Runc {
            init_settled(&bundle.join("init.pid"), &log).await;
        }
        Ok(())
    }

    async fn state(&self, id: &str) -> Result<Option<ContainerState>, RuntimeError> {
        let out = match self.cmd().arg("state").arg(id).run().await {
            Ok(out) => out,
            Err(e) if Self::is_missing(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| RuntimeError::Protocol {
                runtime: self.kind,
                detail: format!("state is not JSON: {e}"),
            })?;
        let mut status = v["status"].as_str().unwrap_or("unknown").to_string();
        if status == "running" && self.pause_marker(id).exists() {
            status = "paused".to_string();
        }
        let pid = v["pid"].as_u64().unwrap_or(0) as u32;
        Ok(Some(ContainerState { status, pid }))
    }

    async fn exec(
        &self,
        id: &str,
        spec: &ExecSpec,
        scratch: &Path,
        io_mode: ExecIo,
    ) -> Result<ExecChild, RuntimeError> {
        let tty = matches!(io_mode, ExecIo::Tty { .. });
        let caps: HashSet<Capability> = DEFAULT_CAPABILITIES.into_iter().collect();
        let spec_err = |e: oci_spec::OciSpecError| RuntimeError::Spec(e.to_string());
        let mut process = ProcessBuilder::default();
        if let ExecIo::Tty { cols, rows } = io_mode {
            process = process.console_size(
                oci_spec::runtime::BoxBuilder::default()
                    .width(u64::from(cols))
                    .height(u64::from(rows))
                    .build()
                    .map_err(spec_err)?,
            );
        }
        let process = process
            .terminal(tty)
            .args(spec.args.clone())
            .env(spec.env.clone())
            .cwd(spec.cwd.clone())
            .no_new_privileges(true)
            .capabilities(
                LinuxCapabilitiesBuilder::default()
                    .bounding(caps.clone())
                    .effective(caps.clone())
                    .permitted(caps)
                    .build()
                    .map_err(spec_err)?,
            )
            .build()
            .map_err(spec_err)?;
        let token = format!("exec-{:016x}", rand_u64());
        let io = |source| RuntimeError::Bundle {
            path: scratch.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(scratch).map_err(io)?;
        let process_file = scratch.join(format!("{token}.json"));
        let json = serde_json::to_vec(&process).map_err(|e| RuntimeError::Spec(e.to_string()))?;
        write_atomic(&process_file, &json).map_err(io)?;
        let pid_file = scratch.join(format!("{token}.pid"));
        let pid_flag = match self.kind {
            // runsc's kill --pid wants the pid inside the sandbox.
            RuntimeKind::Gvisor => "--internal-pid-file",
            RuntimeKind::Runc => "--pid-file",
        };
        let mut cmd = self
            .cmd()
            .arg("exec")
            .arg("--process")
            .arg(&process_file)
            .arg(pid_flag)
            .arg(&pid_file);
        if tty {
            cmd = cmd.arg("--tty");
        }
        let (stdin, stdout, stderr, console) = match io_mode {
            ExecIo::Pipes { stdin } => (
                if stdin { Stdio::piped() } else { Stdio::null() },
                Stdio::piped(),
                Stdio::piped(),
                None,
            ),
            ExecIo::Tty { cols, rows } => {
                // The runtime, in the foreground, copies between the process's terminal and its
                // own stdio; giving it a pseudo-terminal of ours as stdio passes raw mode and
                // window size through.
                let (master, slave) = open_pty(cols, rows)?;
                let dup = |f: &std::fs::File| {
                    f.try_clone()
                        .map_err(|e| RuntimeError::Terminal(e.to_string()))
                };
                (
                    Stdio::from(dup(&slave)?),
                    Stdio::from(dup(&slave)?),
                    Stdio::from(slave),
                    Some(master),
                )
            }
        };
        let cmd = cmd.arg(id);
        let child = cmd.spawn(stdin, stdout, stderr)?;
        Ok(ExecChild {
            child,
            pid_file,
            console,
        })
    }

    async fn kill_exec(&self, id: &str, exec: &ExecChild) -> Result<(), RuntimeError> {
        let Ok(text) = std::fs::read_to_string(&exec.pid_file) else {
            return Ok(()); // never started
        };
        let pid: i32 = text.trim().parse().map_err(|_| RuntimeError::Protocol {
            runtime: self.kind,
            detail: format!("bad pid file '{}'", text.trim()),
        })?;
        match self.kind {
            RuntimeKind::Gvisor => {
                self.cmd()
                    .arg("kill")
                    .arg("--pid")
                    .arg(pid.to_string())
                    .arg(id)
                    .arg("KILL")
                    .run()
                    .await?;
            }
            RuntimeKind::Runc => {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        Ok(())
    }

    async fn checkpoint(&self, id: &str, image_dir: &Path) -> Result<(), RuntimeError> {
        match self.kind {
            RuntimeKind::Gvisor => {
                let dir = image_dir.to_path_buf();
                if self
                    .control(id, move |socket| gvisor_control::checkpoint(socket, &dir))
                    .await?
                {
                    return Ok(());
                }
                // Nothing was written but maybe the empty files.
                for name in [
                    gvisor_control::STATE_FILE,
                    gvisor_control::PAGES_META_FILE,
                    gvisor_control::PAGES_FILE,
                ] {
                    let _ = std::fs::remove_file(image_dir.join(name));
                }
                self.cmd()
                    .arg("checkpoint")
                    .arg("--compression=none")
                    .arg("--image-path")
                    .arg(image_dir)
                    .arg("--leave-running")
                    .arg(id)
                    .timeout(Duration::from_secs(300))
                    .run()
                    .await?;
                Ok(())
            }
            RuntimeKind::Runc => self.runc_checkpoint(id, image_dir).await,
        }
    }

    async fn restore(&self, id: &str, bundle: &Path, image_dir: &Path) -> Result<(), RuntimeError> {
        match self.kind {
            RuntimeKind::Gvisor => {
                let cmd = if self.netstack(bundle) {
                    self.netstack_cmd()
                } else {
                    self.cmd()
                };
                cmd.arg("restore")
                    .arg("--image-path")
                    .arg(image_dir)
                    .arg("--bundle")
                    .arg(bundle)
                    .arg("--pid-file")
                    .arg(bundle.join("init.pid"))
                    .arg("-detach")
                    .arg(id)
                    .output_file(bundle.join("init.log"))
                    .timeout(Duration::from_secs(300))
                    .run()
                    .await?;
            }
            RuntimeKind::Runc => self.runc_restore(id, bundle, image_dir).await?,
        }
        // A checkpoint taken while paused (as Cairn takes them) may come back paused. Under
        // runc a thaw through the cgroup freezer costs no process and is harmless if thawed.
        let thawed = self.kind == RuntimeKind::Runc && self.freeze_directly(id, false).await;
        if !thawed && self.state(id).await?.is_some_and(|s| s.status == "paused") {
            self.resume(id).await?;
        }
        if self.kind == RuntimeKind::Runc {
            self.loopback_up(id, bundle).await?;
        }
        Ok(())
    }

    async fn set_hostname(&self, id: &str, name: &str, scratch: &Path) -> Result<(), RuntimeError> {
        self.hostname_in(id, name, scratch).await
    }

    async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        if self.kind == RuntimeKind::Runc && self.freeze_directly(id, true).await {
            return Ok(());
        }
        if self.kind == RuntimeKind::Gvisor && self.gvisor_pause(id).await? {
            return Ok(());
        }
        self.cmd().arg("pause").arg(id).run().await?;
        Ok(())
    }

    async fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        if self.kind == RuntimeKind::Runc && self.freeze_directly(id, false).await {
            return Ok(());
        }
        let marker = self.pause_marker(id);
        if self.kind == RuntimeKind::Gvisor && marker.exists() {
            // Paused through the control socket: resume the same way (runsc's state says
            // `running`, so `runsc resume` would refuse).
            let resumed = self.control_call(id, gvisor_control::RESUME).await?;
            let _ = std::fs::remove_file(&marker);
            if resumed {
                return Ok(());
            }
            return Err(RuntimeError::Control(format!(
                "sandbox {id} was paused through its control socket, which is gone: the sandbox has stopped"
            )));
        }
        self.cmd().arg("resume").arg(id).run().await?;
        Ok(())
    }

    async fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError> {
        match self.cmd().arg("kill").arg(id).arg(signal).run().await {
            Ok(_) => Ok(()),
            Err(e) if Self::is_missing(&e) => Ok(()),
            Err(e) => {
                // A container whose processes already ended has nothing left to signal (runsc
                // refuses with "sandbox is not running").
                match self.state(id).await {
                    Ok(None) => Ok(()),
                    Ok(Some(s)) if s.status == "stopped" => Ok(()),
                    _ => Err(e.into()),
                }
            }
        }
    }

    async fn watch(&self, id: &str) -> Result<Option<ExitWatch>, RuntimeError> {
        let Some(state) = self.state(id).await? else {
            return Ok(None);
        };
        let alive = matches!(state.status.as_str(), "running" | "paused" | "created");
        if !alive || state.pid == 0 {
            return Ok(None);
        }
        let Some(watch) = ExitWatch::open(state.pid)? else {
            return Ok(None);
        };
        // The pid could name another process if the container ended (and the pid was used
        // again) between `state` and the open. The container's process is in its cgroup;
        // where the cgroup cannot tell, the runtime is asked again.
        let cgroup = format!("{CGROUP_PARENT}/{id}");
        if watch.in_cgroup(&cgroup) {
            return Ok(Some(watch));
        }
        match self.state(id).await? {
            Some(again) if again.pid == state.pid && again.status != "stopped" => Ok(Some(watch)),
            _ => Ok(None),
        }
    }

    fn limit_hits(&self, id: &str) -> Option<LimitHits> {
        LimitHits::read(id)
    }

    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        let format = match self.kind {
            RuntimeKind::Gvisor => "-format=json",
            RuntimeKind::Runc => "--format=json",
        };
        let out = self.cmd().arg("list").arg(format).run().await?;
        let mut listed = parse_list(&out.stdout).map_err(|detail| RuntimeError::Protocol {
            runtime: self.kind,
            detail,
        })?;
        for c in &mut listed {
            if c.state.status == "running" && self.pause_marker(&c.id).exists() {
                c.state.status = "paused".to_string();
            }
        }
        Ok(listed)
    }

    async fn settle(&self, wait: Duration) -> usize {
        crate::strays::settle(&self.state_root, wait).await
    }

    async fn end_strays(&self) -> Result<Vec<u32>, RuntimeError> {
        match self.kind {
            RuntimeKind::Gvisor => {
                let known = self
                    .list()
                    .await?
                    .into_iter()
                    .filter(|c| c.state.status != "stopped")
                    .map(|c| c.id)
                    .collect();
                Ok(crate::strays::end_gvisor_strays(&self.state_root, &known))
            }
            // A runc container's processes are its init and what it started, which `delete`
            // reaches through the container's cgroup; runc leaves none of its own.
            RuntimeKind::Runc => Ok(Vec::new()),
        }
    }

    async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        let _ = std::fs::remove_file(self.pause_marker(id));
        let force = match self.kind {
            RuntimeKind::Gvisor => "-force",
            RuntimeKind::Runc => "--force",
        };
        match self
            .cmd()
            .arg("delete")
            .arg(force)
            .arg(id)
            .timeout(Duration::from_secs(60))
            .run()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if Self::is_missing(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
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

/// A hostname Cairn may set: letters, digits, `-` and `.`, 1 to 64 bytes, not starting with
/// `-` (so that no program takes it for an option).
fn valid_hostname(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The containers in `list --format json` output (`null` when there are none).
fn parse_list(stdout: &[u8]) -> Result<Vec<Listed>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(stdout).map_err(|e| format!("list is not JSON: {e}"))?;
    let items = match v {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::Array(items) => items,
        other => return Err(format!("list is not an array: {other}")),
    };
    items
        .iter()
        .map(|c| {
            let id = c["id"]
                .as_str()
                .ok_or_else(|| format!("a listed container has no id: {c}"))?;
            Ok(Listed {
                id: id.to_string(),
                state: ContainerState {
                    status: c["status"].as_str().unwrap_or("unknown").to_string(),
                    pid: c["pid"].as_u64().unwrap_or(0) as u32,
                },
            })
        })
        .collect()
}

fn rand_u64() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (n << 48) ^ u64::from(std::process::id())
}

/// A new pseudo-terminal pair of the given size: (master, slave).
fn open_pty(cols: u16, rows: u16) -> Result<(std::os::fd::OwnedFd, std::fs::File), RuntimeError> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: rustix::io::Errno| RuntimeError::Terminal(e.to_string());
    let master =
        openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).map_err(err)?;
    grantpt(&master).map_err(err)?;
    unlockpt(&master).map_err(err)?;
    let name = ptsname(&master, Vec::new()).map_err(err)?;
    let size = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&master, size).map_err(err)?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .map_err(|e| RuntimeError::Terminal(e.to_string()))?;
    // Raw from the start, so nothing typed before the runtime sets it raw is echoed twice.
    let mut attrs = rustix::termios::tcgetattr(&slave).map_err(err)?;
    attrs.make_raw();
    rustix::termios::tcsetattr(&slave, rustix::termios::OptionalActions::Now, &attrs)
        .map_err(err)?;
    Ok((master, slave))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_hostnames_are_set() {
        assert!(valid_hostname("sbx-0a1b2c3d"));
        assert!(valid_hostname("web.local"));
        for bad in ["", "-n", "a b", "a;b", "x\n", &"a".repeat(65)] {
            assert!(!valid_hostname(bad), "{bad:?}");
        }
    }

    #[test]
    fn lists_are_read_from_both_runtimes_output() {
        assert_eq!(parse_list(b"null\n").unwrap(), Vec::new());
        let runsc = br#"[{"ociVersion":"1.0.2-dev","id":"sbx-7d42fe1d","status":"created","pid":22888,"bundle":"/b"}]"#;
        assert_eq!(
            parse_list(runsc).unwrap(),
            vec![Listed {
                id: "sbx-7d42fe1d".into(),
                state: ContainerState {
                    status: "created".into(),
                    pid: 22888
                }
            }]
        );
        let runc = br#"[{"ociVersion":"1.0.2-dev","id":"sbx-b8aa2bb0","pid":0,"status":"stopped","rootfs":"/r","owner":"root"}]"#;
        assert_eq!(parse_list(runc).unwrap()[0].state.status, "stopped");
        assert!(parse_list(b"{}").is_err());
        assert!(parse_list(b"[{}]").is_err());
    }
}
