//! `exec`: run a command in a running sandbox and stream its output as it
//! comes, then its exit code. A timeout kills the command (exit code 124).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use cairn_runtime::ExecSpec;
use cairn_types::api::ExecRequest;
use cairn_types::{format_bytes, SandboxState};

use crate::sandboxes::{check_workdir, merge_env};
use crate::{Engine, EngineError, Result};

/// Exit code reported when `timeout_secs` ran out.
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// One piece of an exec's life, in order: output chunks, then `Exit` or `Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    /// Bytes written to stdout.
    Stdout(Vec<u8>),
    /// Bytes written to stderr.
    Stderr(Vec<u8>),
    /// The exit code (128+N for signal N, 124 on timeout).
    Exit(i32),
    /// The command could not be followed to its end.
    Error(String),
}

/// The stream of an exec's output; ends after `Exit` or `Error`.
pub type ExecStream = mpsc::Receiver<ExecOutput>;

async fn pump<R: AsyncRead + Unpin>(mut reader: R, tx: mpsc::Sender<ExecOutput>, stdout: bool) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let chunk = buf[..n].to_vec();
                let ev = if stdout {
                    ExecOutput::Stdout(chunk)
                } else {
                    ExecOutput::Stderr(chunk)
                };
                if tx.send(ev).await.is_err() {
                    break;
                }
            }
        }
    }
}

impl Engine {
    /// Starts `req` in a running sandbox of `account` and returns its output stream.
    pub async fn exec(
        self: &Arc<Self>,
        account: &str,
        id_or_name: &str,
        req: &ExecRequest,
    ) -> Result<ExecStream> {
        if req.cmd.is_empty() || req.cmd[0].is_empty() {
            return Err(EngineError::InvalidArgument(
                "no command given: pass the program and its arguments in 'cmd'".into(),
            ));
        }
        if let Some(w) = &req.workdir {
            check_workdir(w)?;
        }
        if req.timeout_secs == Some(0) {
            return Err(EngineError::InvalidArgument(
                "timeout must be at least 1 second".into(),
            ));
        }
        let r = self.find(account, id_or_name)?;
        if r.state != SandboxState::Running {
            return Err(EngineError::Conflict(format!(
                "sandbox {} is {}: only a running sandbox can exec; start it with 'cairn start {}'",
                r.id, r.state, r.id
            )));
        }
        for kv in &req.env {
            if !kv.contains('=') {
                return Err(EngineError::InvalidArgument(format!(
                    "invalid environment variable '{kv}': use KEY=VALUE"
                )));
            }
        }
        let spec = ExecSpec {
            args: req.cmd.clone(),
            env: merge_env(&r.env, &req.env),
            cwd: req.workdir.clone().unwrap_or_else(|| r.workdir.clone()),
        };
        let rt = self.runtime(r.runtime)?;
        let scratch = self.run_dir(&r.id).join("exec");
        let mut exec = rt
            .exec(r.id.as_str(), &spec, &scratch, Stdio::null())
            .await?;
        let (tx, rx) = mpsc::channel(64);
        let out = exec
            .child
            .stdout
            .take()
            .map(|s| tokio::spawn(pump(s, tx.clone(), true)));
        let err = exec
            .child
            .stderr
            .take()
            .map(|s| tokio::spawn(pump(s, tx.clone(), false)));
        let timeout = req.timeout_secs.map(Duration::from_secs);
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let waited = match timeout {
                Some(t) => tokio::time::timeout(t, exec.child.wait()).await.ok(),
                None => Some(exec.child.wait().await),
            };
            let code = match waited {
                Some(Ok(status)) => cairn_cmd::exit_code(status),
                Some(Err(e)) => {
                    let _ = tx
                        .send(ExecOutput::Error(format!("lost track of the command: {e}")))
                        .await;
                    return;
                }
                None => {
                    tracing::info!(sandbox = %r.id, "exec timed out; killing it");
                    if let Err(e) = rt.kill_exec(r.id.as_str(), &exec).await {
                        tracing::warn!(sandbox = %r.id, error = %e, "could not kill timed-out exec");
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(5), exec.child.wait()).await;
                    TIMEOUT_EXIT_CODE
                }
            };
            // Output written just before exit is still in the pipes: drain it, but do not
            // wait forever on a background process that inherited them.
            for task in [out, err].into_iter().flatten() {
                let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
            }
            let _ = std::fs::remove_file(&exec.pid_file);
            let _ = std::fs::remove_file(exec.pid_file.with_extension("json"));
            let code = if code != 0 && code != TIMEOUT_EXIT_CODE {
                engine.check_alive(&r).await.unwrap_or(code)
            } else {
                code
            };
            let _ = tx.send(ExecOutput::Exit(code)).await;
        });
        Ok(rx)
    }

    /// After a failed exec: if the whole sandbox died (its memory limit was hit and the
    /// kernel killed it, which is how gVisor enforces the limit), record that and
    /// report the command as killed (137).
    async fn check_alive(&self, r: &cairn_db::SandboxRecord) -> Option<i32> {
        let rt = self.runtime(r.runtime).ok()?;
        let state = rt.state(r.id.as_str()).await.ok()?;
        if state.as_ref().is_some_and(|s| s.status == "running") {
            return None;
        }
        let lock = self.lock_for(&r.id);
        let _guard = lock.lock().await;
        let reason = format!(
            "its processes were killed, most likely for exceeding the memory limit of {}; start it again with 'cairn start {}'",
            format_bytes(r.memory_bytes),
            r.id
        );
        tracing::warn!(sandbox = %r.id, "sandbox died during exec");
        let _ = rt.delete(r.id.as_str()).await;
        let _ = self
            .db
            .set_state(&r.id, SandboxState::Stopped, Some(&reason));
        Some(137)
    }
}
