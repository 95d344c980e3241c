//! [`Runsc`]: gVisor's `runsc` (systrap platform, writing straight to the host filesystem).
//! What is gVisor's own lives here: its network stack for `nat` sandboxes, pausing and
//! checkpointing through the sandbox's control socket (see [`crate::gvisor_control`]), its
//! checkpoint's pages file, hostnames set by the sentry, and the sandbox and gofer processes
//! a cut-short `create` leaves behind. The commands both runtimes share are in [`crate::cli`].

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder, ProcessBuilder};

use cairn_cmd::Cmd;
use cairn_types::RuntimeKind;

use crate::bundle::Flavor;
use crate::cli::{rand_u64, valid_hostname, write_process, Cli};
use crate::gvisor_control;
use crate::started::Started;
use crate::{
    ContainerState, ContainerStatus, ExecChild, ExecIo, ExecSpec, ExitWatch, LimitHits, Listed,
    Runtime, RuntimeError, SandboxSpec, Signal,
};

/// gVisor's `runsc`, the default runtime: a user-space kernel (the sentry) between the
/// sandbox and the host, with checkpoint and restore built in.
#[derive(Clone, Debug)]
pub struct Runsc {
    cli: Cli,
    /// Containers whose `/proc` this process bounded ([`Runsc::bound_proc_cache`]): their
    /// checkpoints say so ([`PROC_BOUNDED`]), so that restoring one needs no `runsc exec`.
    bounded: Arc<Mutex<HashSet<String>>>,
    /// The sandbox process of each container this process started or restored.
    started: Started,
}

/// Beside a gVisor checkpoint's files: its sandbox's `/proc` had the bounded dentry cache
/// when it was taken (mounts are part of the checkpoint, so a restore has it too).
const PROC_BOUNDED: &str = "cairn-proc-bounded";

/// The global flags of every runsc command but the network ones. `--host-uds=open` lets the
/// agent inside a sandbox connect to cairnd's socket in its bound host directory (it binds
/// none of its own: checkpoints refuse a sandbox with a bound host socket).
const FLAGS: [&str; 3] = ["--platform=systrap", "--overlay2=none", "--host-uds=open"];

impl Runsc {
    /// `binary` (runsc), keeping its state under `state_root`. No gVisor network stack unless
    /// a sandbox joins a Cairn-made network namespace.
    pub fn new(binary: impl Into<PathBuf>, state_root: impl Into<PathBuf>) -> Runsc {
        Runsc {
            cli: Cli::new(
                RuntimeKind::Gvisor,
                binary.into(),
                state_root.into(),
                "install gVisor: apt-get install -t bookworm-backports runsc (or run scripts/setup.sh)",
                global_flags(false),
            ),
            bounded: Arc::default(),
            started: Started::default(),
        }
    }

    /// Records whether container `id`'s `/proc` is bounded.
    fn set_bounded(&self, id: &str, bounded: bool) {
        if let Ok(mut set) = self.bounded.lock() {
            if bounded {
                set.insert(id.to_string());
            } else {
                set.remove(id);
            }
        }
    }

    /// Whether this process bounded container `id`'s `/proc`.
    fn is_bounded(&self, id: &str) -> bool {
        self.bounded.lock().is_ok_and(|set| set.contains(id))
    }

    /// Marks checkpoint `image_dir` of container `id` as taken with a bounded `/proc`, when it
    /// was (best effort: without the mark, a restore checks inside the sandbox).
    fn mark_bounded(&self, id: &str, image_dir: &Path) {
        if self.is_bounded(id) {
            if let Err(e) = std::fs::write(image_dir.join(PROC_BOUNDED), b"") {
                tracing::debug!(sandbox = id, error = %e, "cannot mark the checkpoint's /proc as bounded");
            }
        }
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
            .arg(self.cli.binary())
            .args(self.cli.root_flags())
            .args(global_flags(true))
    }

    /// The command for `start` or `restore` of a container from `bundle`: with gVisor's
    /// network stack when the bundle joins a Cairn-made network namespace.
    fn starting_cmd(&self, bundle: &Path) -> Cmd {
        if netstack(bundle) {
            self.netstack_cmd()
        } else {
            self.cli.cmd()
        }
    }

    /// The file that says Cairn paused this gVisor sandbox through its control socket (runsc's
    /// own state then still says `running`): [`Runtime::state`] reports `paused` while it
    /// exists, so a cairnd that stopped inside a snapshot's pause window thaws the sandbox
    /// when it starts again. Removed on resume and delete.
    fn pause_marker(&self, id: &str) -> PathBuf {
        self.cli.state_root().join(format!("cairn-paused.{id}"))
    }

    /// `status` as Cairn sees it: `running` is `paused` while the pause marker exists.
    fn marked(&self, id: &str, status: ContainerStatus) -> ContainerStatus {
        if status == ContainerStatus::Running && self.pause_marker(id).exists() {
            ContainerStatus::Paused
        } else {
            status
        }
    }

    /// Runs `call` against gVisor sandbox `id`'s control socket (see [`crate::gvisor_control`]).
    /// `Ok(false)`: the socket is not known or not reachable, use the `runsc` command instead.
    async fn control<F>(&self, id: &str, call: F) -> Result<bool, RuntimeError>
    where
        F: FnOnce(&Path) -> Result<(), gvisor_control::ControlError> + Send + 'static,
    {
        let root = self.cli.state_root().to_path_buf();
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

    /// Mounts a procfs with a dentry cache of [`PROC_DENTRY_CACHE`] over runsc's `/proc` in
    /// running gVisor sandbox `id`, unless its `/proc` already has one (a restored
    /// checkpoint keeps its mounts), so that exited processes do not pile up in the sandbox's
    /// state. It runs the image's `sh` and `mount` with `CAP_SYS_ADMIN`, inside the sandbox's
    /// own kernel (as [`Runtime::set_hostname`]), and exits at once: `runsc exec` processes
    /// cannot be checkpointed, this one is gone before any checkpoint. The process file goes
    /// in `scratch`. Best effort: a failure (an image without `mount`) is logged, the sandbox
    /// is fine, only its checkpoints keep growing.
    async fn bound_proc_cache(&self, id: &str, scratch: &Path) {
        let started = std::time::Instant::now();
        let mounted = self.mount_bounded_proc(id, scratch).await;
        self.set_bounded(id, mounted.is_ok());
        match mounted {
            Ok(()) => tracing::debug!(
                sandbox = id,
                elapsed_us = started.elapsed().as_micros() as u64,
                "/proc has a bounded dentry cache"
            ),
            Err(e) => tracing::warn!(
                sandbox = id,
                error = %e,
                "could not mount a /proc with a bounded dentry cache: each process the sandbox starts adds ~115 KB to its checkpoints, up to ~115 MB"
            ),
        }
    }

    async fn mount_bounded_proc(&self, id: &str, scratch: &Path) -> Result<(), RuntimeError> {
        let option = format!("dentry_cache_limit={PROC_DENTRY_CACHE}");
        // The last `/proc` line of /proc/mounts is the mount on top.
        let script = format!(
            "o=; while read -r s m t opts rest; do [ \"$m $t\" = '/proc proc' ] && o=$opts; done </proc/mounts; \
             case \",$o,\" in *,{option},*) exit 0;; esac; \
             exec mount -t proc -o {option} proc /proc"
        );
        let args = vec!["/bin/sh".to_string(), "-c".to_string(), script];
        self.exec_as_admin(id, args, scratch, "proc-mount").await?;
        Ok(())
    }

    /// Runs `args` (a program of the image) in gVisor sandbox `id` with `CAP_SYS_ADMIN`, which
    /// reaches only the sandbox's own kernel, and waits for it (at most 10 s). The process
    /// file, named after `label`, goes in `scratch` and is removed afterwards.
    async fn exec_as_admin(
        &self,
        id: &str,
        args: Vec<String>,
        scratch: &Path,
        label: &str,
    ) -> Result<(), RuntimeError> {
        let spec_err = |e: oci_spec::OciSpecError| RuntimeError::Spec(e.to_string());
        let caps: HashSet<Capability> = [Capability::SysAdmin].into_iter().collect();
        let process = ProcessBuilder::default()
            .terminal(false)
            .args(args)
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
        let file = write_process(
            scratch,
            &format!("{label}-{:016x}.json", rand_u64()),
            &process,
        )?;
        let ran = self
            .cli
            .cmd()
            .arg("exec")
            .arg("--process")
            .arg(&file)
            .arg(id)
            .timeout(Duration::from_secs(10))
            .run()
            .await;
        let _ = std::fs::remove_file(&file);
        ran?;
        Ok(())
    }
}

/// The size of the dentry cache of the `/proc` Cairn mounts over runsc's own in each gVisor
/// sandbox ([`Runsc::bound_proc_cache`]).
///
/// runsc 20240729 mounts the sandbox's `/proc` with procfs's default cache of 1000 unused
/// dentries, and an exited process's `/proc/<pid>` dentry in that cache keeps the whole dead
/// task in the sentry's state: static busybox and glibc programs `readlink("/proc/self/exe")`
/// at every start, so each process a sandbox starts added ~115 KB to its checkpoints, up to
/// ~115 MB (and snapshot and fork times with it). runsc passes no mount option of the spec's
/// `/proc` to procfs (`dentry_cache_limit` there is ignored) and `--dcache` sizes only the
/// gofer's cache; a procfs mounted from inside the sandbox does take the option. Measured
/// with this runsc, busybox root, `while :; do /bin/busybox true; done`, `runsc checkpoint
/// --leave-running --compression=none` every 10 s (checkpoint.img): runsc's `/proc` alone
/// 49.6 MB at 430 processes, 93.7 MB at 801; `--dcache=0` 117 MB at 30 s; spec option
/// `dentry_cache_limit=10` 109 MB at 20 s; `/proc` remounted with `dentry_cache_limit=100`
/// 12.3 MB flat, `=10` 1.7 MB flat, `=1` 0.86–0.93 MB flat over 1,128 processes; an idle
/// sandbox 0.55 MB. Procfs's dentries are built from memory, so a small cache costs nothing
/// worth measuring.
const PROC_DENTRY_CACHE: u32 = 1;

/// The global flags; `netstack` selects gVisor's own network stack over the
/// interfaces of the namespace it starts in (a Cairn `nat` namespace) instead of
/// `--network=none`. Only `create`, `start` and `restore` read `--network`
/// (runsc 20240729: exec, kill, pause, checkpoint and delete behave the same either
/// way), so the other commands always pass `--network=none`.
fn global_flags(netstack: bool) -> Vec<OsString> {
    let mut flags: Vec<OsString> = FLAGS.iter().map(OsString::from).collect();
    if netstack {
        // Open TCP connections are reset at checkpoint instead of refusing it.
        flags.extend(["--network=sandbox".into(), "--net-disconnect-ok".into()]);
    } else {
        flags.push("--network=none".into());
    }
    flags
}

/// Whether the bundle joins a Cairn-made network namespace (gVisor then runs its netstack).
fn netstack(bundle: &Path) -> bool {
    crate::bundle::bundle_netns(bundle).is_some()
}

#[async_trait]
impl Runtime for Runsc {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Gvisor
    }

    fn program(&self) -> &'static str {
        "runsc"
    }

    fn write_bundle(&self, dir: &Path, spec: &SandboxSpec) -> Result<(), RuntimeError> {
        // The sentry enforces RLIMIT_NPROC per sandbox and passes no btrfs ioctl to the host.
        let flavor = Flavor {
            nproc_in_sandbox: true,
            agent_admin: true,
            ..Flavor::default()
        };
        crate::bundle::write_bundle(dir, spec, flavor)
    }

    fn enables(&self) -> &'static str {
        "gvisor sandboxes (the default) and stateful snapshots; install: apt-get install -t bookworm-backports runsc"
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        self.cli.version().await
    }

    fn platform(&self) -> String {
        // gVisor's checkpoints hold the state of its platform.
        format!("{}/systrap", std::env::consts::ARCH)
    }

    fn checkpoints_need_same_version(&self) -> bool {
        // runsc's checkpoint format belongs to its version.
        true
    }

    fn checkpoint_streams(&self) -> Vec<String> {
        vec![gvisor_control::PAGES_FILE.to_string()]
    }

    fn files_before_memory(&self) -> bool {
        // A checkpoint writes back the files the sentry holds: the files go after it.
        false
    }

    async fn flush(&self, id: &str, env: &[String], scratch: &Path) {
        // The sentry may hold written file data in its own cache: `sync` inside the sandbox
        // writes it to the host.
        let spec = ExecSpec {
            args: vec!["sync".into()],
            env: env.to_vec(),
            cwd: "/".into(),
        };
        if let Ok(mut child) = self
            .exec(id, &spec, scratch, ExecIo::Pipes { stdin: false })
            .await
        {
            let _ = tokio::time::timeout(Duration::from_secs(30), child.child.wait()).await;
            child.remove_files();
        }
    }

    fn shares_live_files(&self) -> bool {
        // The sentry caches file data and metadata of the root (see `flush`).
        false
    }

    fn exec_terminal(&self) -> bool {
        // This runsc cannot hand a terminal over for exec.
        false
    }

    fn agent_sets_hostname(&self) -> bool {
        // CAP_SYS_ADMIN inside gVisor is the sentry's: the agent's bundle has it (Flavor).
        true
    }

    async fn create_and_start(&self, id: &str, bundle: &Path) -> Result<(), RuntimeError> {
        let create = self.cli.cmd_with(&global_flags(netstack(bundle)));
        self.cli
            .create_and_start(id, bundle, create, self.starting_cmd(bundle))
            .await?;
        self.started.remember_file(id, &bundle.join("init.pid"));
        self.bound_proc_cache(id, bundle).await;
        Ok(())
    }

    async fn state(&self, id: &str) -> Result<Option<ContainerState>, RuntimeError> {
        Ok(self.cli.state(id).await?.map(|s| ContainerState {
            status: self.marked(id, s.status),
            pid: s.pid,
        }))
    }

    async fn exec(
        &self,
        id: &str,
        spec: &ExecSpec,
        scratch: &Path,
        io: ExecIo,
    ) -> Result<ExecChild, RuntimeError> {
        // runsc's kill --pid wants the pid inside the sandbox.
        self.cli
            .exec(id, spec, scratch, io, "--internal-pid-file")
            .await
    }

    async fn kill_exec(&self, id: &str, exec: &ExecChild) -> Result<(), RuntimeError> {
        let Some(pid) = self.cli.exec_pid(exec)? else {
            return Ok(()); // never started
        };
        self.cli
            .cmd()
            .arg("kill")
            .arg("--pid")
            .arg(pid.to_string())
            .arg(id)
            .arg(Signal::Kill.name())
            .run()
            .await?;
        Ok(())
    }

    async fn checkpoint(&self, id: &str, image_dir: &Path) -> Result<(), RuntimeError> {
        let dir = image_dir.to_path_buf();
        if self
            .control(id, move |socket| gvisor_control::checkpoint(socket, &dir))
            .await?
        {
            self.mark_bounded(id, image_dir);
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
        self.cli
            .cmd()
            .arg("checkpoint")
            .arg("--compression=none")
            .arg("--image-path")
            .arg(image_dir)
            .arg("--leave-running")
            .arg(id)
            .timeout(Duration::from_secs(300))
            .run()
            .await?;
        self.mark_bounded(id, image_dir);
        Ok(())
    }

    async fn restore(&self, id: &str, bundle: &Path, image_dir: &Path) -> Result<(), RuntimeError> {
        self.starting_cmd(bundle)
            .arg("restore")
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
        // A checkpoint taken while paused (as Cairn takes them) may come back paused. The
        // answer also names the sandbox process, which the exit watch then takes as it is.
        if let Some(s) = self.state(id).await? {
            self.started.remember(id, s.pid);
            if s.status == ContainerStatus::Paused {
                self.resume(id).await?;
            }
        }
        if image_dir.join(PROC_BOUNDED).exists() {
            self.set_bounded(id, true);
        } else {
            // A checkpoint from before Cairn bounded the cache, or from a sandbox another
            // cairnd started, may come back with runsc's `/proc`: checked inside.
            self.bound_proc_cache(id, bundle).await;
        }
        Ok(())
    }

    /// gVisor's kernel is the sentry: the image's `hostname` runs inside the sandbox with
    /// `CAP_SYS_ADMIN` (the one capability `sethostname` needs, which sandboxes otherwise
    /// lack; inside gVisor it reaches only the sandbox's own kernel).
    async fn set_hostname(&self, id: &str, name: &str, scratch: &Path) -> Result<(), RuntimeError> {
        if !valid_hostname(name) {
            return Err(RuntimeError::Spec(format!(
                "'{name}' is not a valid hostname"
            )));
        }
        let args = vec!["hostname".to_string(), name.to_string()];
        // Only the command's failure is the image's; anything before it is ours.
        match self.exec_as_admin(id, args, scratch, "hostname").await {
            Ok(()) => Ok(()),
            Err(RuntimeError::Cmd(e)) => Err(RuntimeError::Unsupported(format!(
                "could not run the image's 'hostname' program in gVisor sandbox {id} (an image needs one, as busybox, Debian and Alpine have, for its stateful forks to get their own hostname): {e}"
            ))),
            Err(e) => Err(e),
        }
    }

    async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        // Through the control socket; the marker goes first: a crash in between leaves it to
        // be thawed at start.
        let marker = self.pause_marker(id);
        std::fs::write(&marker, b"").map_err(|e| {
            RuntimeError::Control(format!("cannot write {}: {e}", marker.display()))
        })?;
        let paused = self.control_call(id, gvisor_control::PAUSE).await;
        if !matches!(paused, Ok(true)) {
            let _ = std::fs::remove_file(&marker);
        }
        if paused? {
            return Ok(());
        }
        self.cli.cmd().arg("pause").arg(id).run().await?;
        Ok(())
    }

    async fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        let marker = self.pause_marker(id);
        if marker.exists() {
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
        self.cli.cmd().arg("resume").arg(id).run().await?;
        Ok(())
    }

    async fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        self.cli.kill(id, signal).await
    }

    async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        let _ = std::fs::remove_file(self.pause_marker(id));
        self.set_bounded(id, false);
        self.started.forget(id);
        self.cli.delete(id).await
    }

    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        let mut listed = self.cli.list().await?;
        for c in &mut listed {
            c.state.status = self.marked(&c.id, c.state.status);
        }
        Ok(listed)
    }

    async fn settle(&self, wait: Duration) -> usize {
        crate::strays::settle(self.cli.state_root(), wait).await
    }

    async fn end_strays(&self) -> Result<Vec<u32>, RuntimeError> {
        let known = self
            .list()
            .await?
            .into_iter()
            .filter(|c| c.state.status != ContainerStatus::Stopped)
            .map(|c| c.id)
            .collect();
        Ok(crate::strays::end_gvisor_strays(
            self.cli.state_root(),
            &known,
        ))
    }

    async fn watch(&self, id: &str) -> Result<Option<ExitWatch>, RuntimeError> {
        self.started.watch(&self.cli, id).await
    }

    fn limit_hits(&self, id: &str) -> Option<LimitHits> {
        LimitHits::read(id)
    }
}
