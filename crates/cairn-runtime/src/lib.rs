//! The one place Cairn talks to OCI runtimes.
//!
//! [`Runtime`] is the trait the engine drives, with one type per runtime: [`Runsc`]
//! (gVisor) and [`Runc`], both through their command-line interface (the stable
//! contract containerd and podman use; the plumbing they share is in `cli`).
//! Everything that differs between them is a trait method, so the engine never asks
//! which runtime it holds; [`runtimes`] makes every runtime Cairn knows. [`bundle`] writes the OCI
//! bundle (`config.json`) a sandbox runs from; [`criu`] knows the CRIU that
//! runc's checkpoints need; [`ExitWatch`] notices a container's process ending and
//! [`LimitHits`] says whether its limits were enforced by force. This crate knows
//! nothing of the database, storage or accounts.

pub mod bundle;
mod cli;
pub mod criu;
mod exit_watch;
mod freezer;
mod gvisor_control;
pub mod limit_hits;
mod runc;
mod runsc;
mod started;
mod status;
mod strays;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::process::Child;

use cairn_cmd::CmdError;
use cairn_types::RuntimeKind;

pub use bundle::{AgentMounts, SandboxSpec};
pub use criu::{criu_version, CriuVersion};
pub use exit_watch::ExitWatch;
pub use limit_hits::LimitHits;
pub use runc::Runc;
pub use runsc::Runsc;
pub use status::{ContainerStatus, Signal};

/// Every runtime Cairn knows, the default first: gVisor's `runsc` at `runsc` and `runc` at
/// `runc`, each keeping its state under `run_dir/<program>`.
pub fn runtimes(runsc: &Path, runc: &Path, run_dir: &Path) -> Vec<Arc<dyn Runtime>> {
    vec![
        Arc::new(Runsc::new(runsc, run_dir.join("runsc"))),
        Arc::new(Runc::new(runc, run_dir.join("runc"))),
    ]
}

/// Errors from driving a runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime binary failed or is missing.
    #[error(transparent)]
    Cmd(#[from] CmdError),
    /// The bundle could not be written.
    #[error("could not write the OCI bundle at {path}: {source}")]
    Bundle {
        /// Bundle directory.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The OCI spec could not be built.
    #[error("invalid OCI spec: {0}")]
    Spec(String),
    /// A terminal could not be set up.
    #[error("could not set up a terminal: {0}")]
    Terminal(String),
    /// The runtime cannot do this here.
    #[error("{0}")]
    Unsupported(String),
    /// CRIU, which memory checkpoints of runc sandboxes need, is missing or older than 4.1.
    #[error(
        "memory checkpoints of runc sandboxes need CRIU 4.1 or newer, and this host has {}: {}; or use a gvisor sandbox, or do without process memory (leave out --stateful, or fork with --fresh)",
        criu::describe(found), criu::INSTALL_HINT
    )]
    CriuMissing {
        /// The version on `PATH`, if any.
        found: Option<CriuVersion>,
    },
    /// CRIU could not checkpoint or restore a runc container.
    #[error("runc {action} failed in CRIU: {detail}")]
    Criu {
        /// `checkpoint` or `restore`.
        action: &'static str,
        /// The errors from CRIU's log, and what to do.
        detail: String,
    },
    /// The container is in a state it cannot be checkpointed in right now: a retry later may work.
    #[error("{0}")]
    Busy(String),
    /// A gVisor sandbox's control server could not be reached or refused a call.
    #[error("gvisor: {0}")]
    Control(String),
    /// The container's process could not be watched (`pidfd_open` needs Linux 5.3 or newer).
    #[error("cannot watch process {pid} of the container: {source}")]
    Watch {
        /// Its host pid.
        pid: u32,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime said something we could not parse.
    #[error("unexpected output from {runtime}: {detail}")]
    Protocol {
        /// Which runtime.
        runtime: RuntimeKind,
        /// What was wrong.
        detail: String,
    },
}

/// What the runtime says about a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerState {
    /// Its status.
    pub status: ContainerStatus,
    /// Host pid of its init (0 when stopped).
    pub pid: u32,
}

/// A container the runtime knows, as [`Runtime::list`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The container's id (a sandbox id, for Cairn's).
    pub id: String,
    /// Its state.
    pub state: ContainerState,
}

/// One process to run inside a running container.
#[derive(Clone, Debug)]
pub struct ExecSpec {
    /// Program and arguments.
    pub args: Vec<String>,
    /// Full environment, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
}

/// How an exec'd process is wired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecIo {
    /// stdout and stderr piped; stdin piped when `stdin` (else /dev/null).
    Pipes {
        /// Whether the caller will write to stdin.
        stdin: bool,
    },
    /// A pseudo-terminal of `cols`×`rows`; output and input go through its master end.
    Tty {
        /// Width.
        cols: u16,
        /// Height.
        rows: u16,
    },
}

/// A process started by [`Runtime::exec`].
pub struct ExecChild {
    /// The runtime client process; its exit status is the command's.
    pub child: Child,
    /// File the runtime writes the process pid into once it runs.
    pub pid_file: PathBuf,
    /// The terminal's master end, for [`ExecIo::Tty`].
    pub console: Option<std::os::fd::OwnedFd>,
}

impl ExecChild {
    /// Removes the process description and pid file the runtime was given, once it has ended.
    pub fn remove_files(&self) {
        let _ = std::fs::remove_file(&self.pid_file);
        let _ = std::fs::remove_file(self.pid_file.with_extension("json"));
    }

    /// Waits, at most `limit`, until the process runs in the sandbox (the runtime wrote its
    /// pid file and the process is the command, no longer runc's init on its way to it) or
    /// the runtime client has ended (the command could not start, or ran and ended already).
    /// False when neither happened in time.
    ///
    /// runc writes the pid file before its init (`runc:[2:INIT]`, a multi-threaded Go
    /// program) has exec'd the command; a cgroup v1 freeze that catches it inside `execve`
    /// never completes (the exec waits for a thread the freezer holds), so a pause must
    /// not begin until that exec is over.
    pub async fn wait_started(&mut self, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return true;
            }
            if let Ok(text) = std::fs::read_to_string(&self.pid_file) {
                if let Ok(pid) = text.trim().parse::<u32>() {
                    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"));
                    if !comm.is_ok_and(|c| c.starts_with("runc:")) {
                        return true;
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// An OCI runtime that can run Cairn sandboxes.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// Which runtime this is.
    fn kind(&self) -> RuntimeKind;

    /// Writes the OCI bundle of a sandbox this runtime will run into `dir` (see
    /// [`bundle::write_bundle`]), with what the runtime's bundles need ([`bundle::Flavor`]).
    fn write_bundle(&self, dir: &Path, spec: &SandboxSpec) -> Result<(), RuntimeError> {
        bundle::write_bundle(dir, spec, bundle::Flavor::default())
    }

    /// The name of the runtime's program (for `doctor`).
    fn program(&self) -> &'static str {
        self.kind().as_str()
    }

    /// What the runtime's program enables and how to install it (for `doctor`).
    fn enables(&self) -> &'static str {
        ""
    }

    /// Version string of the runtime binary (for `doctor` and manifests).
    async fn version(&self) -> Result<String, RuntimeError>;

    /// The platform a memory checkpoint of this runtime belongs to (recorded in manifests;
    /// a checkpoint resumes only on the same one): the CPU architecture, and whatever else
    /// of the runtime's its checkpoints hold.
    fn platform(&self) -> String {
        std::env::consts::ARCH.to_string()
    }

    /// Whether a memory checkpoint resumes only under the runtime version that wrote it
    /// (else any version of this runtime resumes it, given [`Runtime::checkpoint_support`]).
    fn checkpoints_need_same_version(&self) -> bool {
        false
    }

    /// Whether this host can checkpoint and restore process memory under this runtime;
    /// the error says what to install or use instead. `Some`: the version of CRIU that does
    /// it (recorded in manifests).
    async fn checkpoint_support(&self) -> Result<Option<CriuVersion>, RuntimeError> {
        Ok(None)
    }

    /// The files of a memory checkpoint (relative to its directory) whose page data the
    /// runtime writes from start to end, so that they may be pipes into cairnd when the
    /// checkpoint starts (see `cairn_storage::CheckpointStore::receive`); empty when there are none.
    fn checkpoint_streams(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether a stateful snapshot captures the (paused) container's files before its
    /// memory: true when a checkpoint leaves the files as they were, false when it writes
    /// files back (the files then go after it, in the same pause).
    fn files_before_memory(&self) -> bool {
        true
    }

    /// Before a filesystem-only snapshot of the running container `id`: makes the data its
    /// processes wrote reach the host's filesystem (a runtime with its own kernel may cache
    /// it). `env` is the environment and `scratch` a directory for a command it runs; does
    /// nothing when the host kernel holds the data already. Failures are ignored.
    async fn flush(&self, _id: &str, _env: &[String], _scratch: &Path) {}

    /// Whether the host and a running container's processes see its root filesystem the
    /// same at every moment (the host kernel serves both), so that the host may write
    /// files into it while it runs. False when the runtime's own kernel caches the files
    /// (a write from the host could go unseen, or be overwritten by the cache).
    fn shares_live_files(&self) -> bool {
        true
    }

    /// Whether [`Runtime::exec`] can give a process a terminal ([`ExecIo::Tty`]).
    fn exec_terminal(&self) -> bool {
        true
    }

    /// Sets the size of the terminal of a process started with [`ExecIo::Tty`]: `console` is
    /// its master end ([`ExecChild::console`]), `client` the pid of the runtime client
    /// ([`ExecChild::child`]), which passes the size on. False when it could not be set.
    fn resize(
        &self,
        console: std::os::fd::BorrowedFd<'_>,
        client: Option<u32>,
        cols: u16,
        rows: u16,
    ) -> bool {
        cli::resize_terminal(console, client, cols, rows)
    }

    /// Creates and starts the container `id` from the bundle at `bundle`; the
    /// runtime's messages go to `bundle/init.log` (the init discards its own output:
    /// see [`bundle::INIT_STDIO_PREFIX`]).
    async fn create_and_start(&self, id: &str, bundle: &Path) -> Result<(), RuntimeError>;

    /// The container's state, or `None` when the runtime does not know it.
    async fn state(&self, id: &str) -> Result<Option<ContainerState>, RuntimeError>;

    /// Starts `spec` inside the running container `id`. `scratch` is a
    /// directory the runtime may write the process description and pid file to.
    async fn exec(
        &self,
        id: &str,
        spec: &ExecSpec,
        scratch: &Path,
        io: ExecIo,
    ) -> Result<ExecChild, RuntimeError>;

    /// Kills the process of an earlier `exec` (after a timeout).
    async fn kill_exec(&self, id: &str, exec: &ExecChild) -> Result<(), RuntimeError>;

    /// Writes a checkpoint of the (paused or running) container's processes and memory into
    /// `image_dir`, leaving the container as it was.
    async fn checkpoint(&self, id: &str, image_dir: &Path) -> Result<(), RuntimeError>;

    /// Creates container `id` from `bundle` and resumes the processes checkpointed in `image_dir`.
    async fn restore(&self, id: &str, bundle: &Path, image_dir: &Path) -> Result<(), RuntimeError>;

    /// Sets the hostname of the running container `id` to `name` (letters, digits, `-` and
    /// `.`, at most 64). A container restored from a checkpoint comes back with the hostname
    /// its checkpoint holds (kernel state: the bundle's is not applied), so a restore into
    /// another container calls this. `scratch` is a directory the runtime may write to.
    async fn set_hostname(&self, id: &str, name: &str, scratch: &Path) -> Result<(), RuntimeError>;

    /// Whether the agent (as init) may set the hostname itself, from cairnd's `init`: its
    /// bundle gives it `CAP_SYS_ADMIN`, which reaches only the sandbox's own kernel
    /// (gVisor). Otherwise cairnd calls [`Runtime::set_hostname`].
    fn agent_sets_hostname(&self) -> bool {
        false
    }

    /// Freezes every process of the container.
    async fn pause(&self, id: &str) -> Result<(), RuntimeError>;

    /// Thaws a paused container.
    async fn resume(&self, id: &str) -> Result<(), RuntimeError>;

    /// Sends `signal` to the container's init; succeeds when it has ended already.
    async fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError>;

    /// Removes the container, killing it first if needed; succeeds when it is already gone.
    async fn delete(&self, id: &str) -> Result<(), RuntimeError>;

    /// Every container the runtime knows under its state root, whatever its state.
    async fn list(&self) -> Result<Vec<Listed>, RuntimeError>;

    /// At start-up, before anything else drives this runtime: waits for the runtime commands
    /// a previous cairnd started and left running when it died (a `restore`, a `checkpoint`…)
    /// to end, killing those that take longer than `wait` with their children, so that no
    /// container changes behind recovery's back. Returns how many there were.
    async fn settle(&self, wait: std::time::Duration) -> usize;

    /// At start-up, after recovery removed the containers nothing owns: kills the host
    /// processes the runtime left for containers it no longer knows (gVisor's sandbox and
    /// gofer processes of a `create` or `restore` cut short), and returns their pids.
    async fn end_strays(&self) -> Result<Vec<u32>, RuntimeError>;

    /// Watches the host process whose exit ends container `id`: the pid [`Runtime::state`]
    /// reports (gVisor's sandbox process, runc's container init). `None` when the container
    /// is not running or paused (it has ended, or the runtime does not know it).
    async fn watch(&self, id: &str) -> Result<Option<ExitWatch>, RuntimeError>;

    /// How often container `id`'s cgroup enforced its memory and process limits by force so
    /// far; `None` once the cgroup is gone (the container was deleted).
    fn limit_hits(&self, id: &str) -> Option<LimitHits>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runtime_says_how_its_checkpoints_differ() {
        let all = runtimes(
            Path::new("runsc"),
            Path::new("runc"),
            Path::new("/nonexistent"),
        );
        let kinds: Vec<RuntimeKind> = all.iter().map(|rt| rt.kind()).collect();
        assert_eq!(kinds, [RuntimeKind::default(), RuntimeKind::Runc]);
        for rt in &all {
            assert!(rt.platform().starts_with(std::env::consts::ARCH));
            assert!(!rt.checkpoint_streams().is_empty(), "{}", rt.kind());
            assert!(!rt.enables().is_empty());
        }
        let (runsc, runc) = (&all[0], &all[1]);
        // gVisor writes files back at checkpoint and binds its checkpoints to its version.
        assert!(!runsc.files_before_memory() && runc.files_before_memory());
        assert!(runsc.checkpoints_need_same_version() && !runc.checkpoints_need_same_version());
        assert!(!runsc.exec_terminal() && runc.exec_terminal());
        assert_eq!((runsc.program(), runc.program()), ("runsc", "runc"));
    }
}
