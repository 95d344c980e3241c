//! [`FakeRuntime`]: a [`Runtime`] in memory, for tests of the engine without root.
//!
//! Each running container is one host process (`sleep`), so that the engine's watch on
//! it ([`ExitWatch`]) works as with a real runtime: [`FakeRuntime::kill_outside`] ends it
//! and the engine notices the death. Pause and resume only change the recorded state.
//! Memory checkpoints write a marker file when enabled ([`FakeRuntime::with_checkpoints`]);
//! `exec` is refused (the fake runs no commands). [`FakeRuntime::fail_next`] makes the
//! next call of one operation fail, to test how the engine maps runtime errors.
//!
//! Not for: anything about the container's contents (nothing runs in its root).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use async_trait::async_trait;
use cairn_runtime::{
    ContainerState, ContainerStatus, CriuVersion, ExecChild, ExecIo, ExecSpec, ExitWatch,
    LimitHits, Listed, Runtime, RuntimeError, Signal,
};
use cairn_types::RuntimeKind;

/// The file a fake memory checkpoint consists of.
pub const FAKE_CHECKPOINT: &str = "fake-checkpoint";

/// How [`FakeRuntime::fail_next`] makes an operation fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The container is busy ([`RuntimeError::Busy`]): a retry later may work.
    Busy,
    /// The runtime's program is not installed (a `NotFound` command error).
    Missing,
}

/// One container the fake knows.
#[derive(Debug)]
struct Container {
    status: ContainerStatus,
    /// The process standing for its init, while it has one.
    process: Option<Child>,
}

impl Container {
    /// Its state, noticing a process that ended meanwhile.
    fn state(&mut self) -> ContainerState {
        if let Some(p) = &mut self.process {
            if !matches!(p.try_wait(), Ok(None)) {
                self.process = None;
                self.status = ContainerStatus::Stopped;
            }
        }
        ContainerState {
            status: self.status,
            pid: self.process.as_ref().map_or(0, Child::id),
        }
    }

    /// Ends its process (and reaps it).
    fn end(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.kill();
            let _ = p.wait();
        }
        self.status = ContainerStatus::Stopped;
    }
}

/// A runtime whose containers live in memory (see the module documentation).
#[derive(Debug)]
pub struct FakeRuntime {
    kind: RuntimeKind,
    checkpoints: bool,
    containers: Mutex<HashMap<String, Container>>,
    failures: Mutex<HashMap<&'static str, Failure>>,
    /// `operation id` of every call that changes a container, in order.
    calls: Mutex<Vec<String>>,
}

impl FakeRuntime {
    /// A fake of runtime `kind` without memory checkpoints.
    pub fn new(kind: RuntimeKind) -> FakeRuntime {
        FakeRuntime {
            kind,
            checkpoints: false,
            containers: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            calls: Mutex::new(Vec::new()),
        }
    }

    /// The same, able to checkpoint and restore memory (a marker file).
    pub fn with_checkpoints(mut self) -> FakeRuntime {
        self.checkpoints = true;
        self
    }

    /// Makes the next call of `operation` (a [`Runtime`] method's name: `create_and_start`,
    /// `pause`, `resume`, `kill`, `delete`, `checkpoint`, `restore`, `state`) fail as `how`.
    pub fn fail_next(&self, operation: &'static str, how: Failure) {
        lock(&self.failures).insert(operation, how);
    }

    /// Ends container `id`'s process behind the engine's back, as a crash or an
    /// out-of-memory kill would; the runtime still knows the container (stopped).
    pub fn kill_outside(&self, id: &str) {
        if let Some(c) = lock(&self.containers).get_mut(id) {
            c.end();
        }
    }

    /// Forgets container `id` altogether (killing its process), as a host reboot would.
    pub fn forget(&self, id: &str) {
        if let Some(mut c) = lock(&self.containers).remove(id) {
            c.end();
        }
    }

    /// The status of container `id`, `None` when the fake does not know it.
    pub fn status(&self, id: &str) -> Option<ContainerStatus> {
        lock(&self.containers).get_mut(id).map(|c| c.state().status)
    }

    /// Every call so far that changes a container, as `operation id` (`restore sbx-…`), in
    /// order: what the engine asked of its runtime.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.calls).clone()
    }

    /// Records the call of `operation` on `id`, then fails it if [`FakeRuntime::fail_next`]
    /// said so (the failure set for `operation` is taken: it happens once).
    fn call(&self, operation: &'static str, id: &str) -> Result<(), RuntimeError> {
        if operation != "state" {
            lock(&self.calls).push(format!("{operation} {id}"));
        }
        match lock(&self.failures).remove(operation) {
            None => Ok(()),
            Some(Failure::Busy) => Err(RuntimeError::Busy(format!(
                "the container is busy: {operation} cannot run now; try again"
            ))),
            Some(Failure::Missing) => Err(RuntimeError::Cmd(cairn_cmd::CmdError::NotFound {
                program: "fake".into(),
                hint: "install the fake runtime".into(),
            })),
        }
    }

    /// Starts container `id`'s process, running.
    fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let mut all = lock(&self.containers);
        if all.get_mut(id).is_some_and(|c| c.state().status.is_up()) {
            return Err(RuntimeError::Unsupported(format!(
                "container {id} exists already"
            )));
        }
        let process = Command::new("sleep")
            .arg("86400")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| RuntimeError::Unsupported(format!("cannot start sleep: {e}")))?;
        all.insert(
            id.to_string(),
            Container {
                status: ContainerStatus::Running,
                process: Some(process),
            },
        );
        Ok(())
    }

    /// Sets the status of running or paused container `id` to `to`.
    fn set_status(&self, id: &str, to: ContainerStatus) -> Result<(), RuntimeError> {
        let mut all = lock(&self.containers);
        let Some(c) = all
            .get_mut(id)
            .filter(|c| c.status.is_up() && c.process.is_some())
        else {
            return Err(RuntimeError::Unsupported(format!(
                "container {id} is not running"
            )));
        };
        c.status = to;
        Ok(())
    }
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        for c in lock(&self.containers).values_mut() {
            c.end();
        }
    }
}

/// Fails unless the engine wrote the OCI bundle at `bundle`.
fn require_bundle(bundle: &Path) -> Result<(), RuntimeError> {
    if bundle.join("config.json").is_file() {
        Ok(())
    } else {
        Err(RuntimeError::Spec(format!(
            "no config.json in {}",
            bundle.display()
        )))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl Runtime for FakeRuntime {
    fn kind(&self) -> RuntimeKind {
        self.kind
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        Ok("fake version 1".into())
    }

    async fn checkpoint_support(&self) -> Result<Option<CriuVersion>, RuntimeError> {
        if self.checkpoints {
            Ok(None)
        } else {
            Err(RuntimeError::Unsupported(
                "this fake runtime cannot checkpoint memory".into(),
            ))
        }
    }

    async fn create_and_start(&self, id: &str, bundle: &Path) -> Result<(), RuntimeError> {
        self.call("create_and_start", id)?;
        require_bundle(bundle)?;
        self.start(id)
    }

    async fn state(&self, id: &str) -> Result<Option<ContainerState>, RuntimeError> {
        self.call("state", id)?;
        Ok(lock(&self.containers).get_mut(id).map(Container::state))
    }

    async fn exec(
        &self,
        _id: &str,
        _spec: &ExecSpec,
        _scratch: &Path,
        _io: ExecIo,
    ) -> Result<ExecChild, RuntimeError> {
        Err(RuntimeError::Unsupported(
            "the fake runtime runs no commands".into(),
        ))
    }

    async fn kill_exec(&self, _id: &str, _exec: &ExecChild) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn checkpoint(&self, id: &str, image_dir: &Path) -> Result<(), RuntimeError> {
        self.call("checkpoint", id)?;
        self.checkpoint_support().await?;
        if !self.status(id).is_some_and(ContainerStatus::is_up) {
            return Err(RuntimeError::Unsupported(format!(
                "container {id} is not running"
            )));
        }
        std::fs::create_dir_all(image_dir)
            .and_then(|()| std::fs::write(image_dir.join(FAKE_CHECKPOINT), id))
            .map_err(|source| RuntimeError::Bundle {
                path: image_dir.to_path_buf(),
                source,
            })
    }

    async fn restore(&self, id: &str, bundle: &Path, image_dir: &Path) -> Result<(), RuntimeError> {
        self.call("restore", id)?;
        if !image_dir.join(FAKE_CHECKPOINT).is_file() {
            return Err(RuntimeError::Unsupported(format!(
                "no checkpoint in {}",
                image_dir.display()
            )));
        }
        require_bundle(bundle)?;
        self.start(id)
    }

    async fn set_hostname(
        &self,
        _id: &str,
        _name: &str,
        _scratch: &Path,
    ) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        self.call("pause", id)?;
        self.set_status(id, ContainerStatus::Paused)
    }

    async fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        self.call("resume", id)?;
        self.set_status(id, ContainerStatus::Running)
    }

    async fn kill(&self, id: &str, _signal: Signal) -> Result<(), RuntimeError> {
        self.call("kill", id)?;
        self.kill_outside(id);
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        self.call("delete", id)?;
        self.forget(id);
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        let mut all: Vec<Listed> = lock(&self.containers)
            .iter_mut()
            .map(|(id, c)| Listed {
                id: id.clone(),
                state: c.state(),
            })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    async fn settle(&self, _wait: std::time::Duration) -> usize {
        0
    }

    async fn end_strays(&self) -> Result<Vec<u32>, RuntimeError> {
        Ok(Vec::new())
    }

    async fn watch(&self, id: &str) -> Result<Option<ExitWatch>, RuntimeError> {
        let pid = match self.state(id).await? {
            Some(s) if s.status.is_up() && s.pid != 0 => s.pid,
            _ => return Ok(None),
        };
        ExitWatch::open(pid)
    }

    fn limit_hits(&self, _id: &str) -> Option<LimitHits> {
        None
    }
}
