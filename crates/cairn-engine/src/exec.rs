//! `exec`: run a command in a running sandbox and stream its output as it
//! comes, then its exit code. A timeout kills the command (exit code 124); a
//! sandbox that dies under the command makes it end with 137 and a message
//! saying why (see `deaths`). A command waits out a snapshot's pause before it
//! starts, and wakes a sandbox its idle timeout paused (see `pause`).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use cairn_db::SandboxRecord;
use cairn_runtime::{ExecIo, ExecSpec};
use cairn_types::api::ExecRequest;
use cairn_types::{PauseReason, SandboxState};

use crate::limits::{
    check_cmd, check_env, check_env_size, check_timeout, check_workdir, merge_env,
};
use crate::{Engine, EngineError, Result};

/// Exit code reported when `timeout_secs` ran out.
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// Exit code reported when the sandbox died under the command (as if killed by SIGKILL).
pub const SANDBOX_DIED_EXIT_CODE: i32 = 137;

/// The longest a starting command holds off a pause (see `Engine::gate`) while the runtime
/// gets its process going.
const START_WAIT: Duration = Duration::from_secs(10);

/// One piece of an exec's life, in order: output chunks, then `Exit` or `Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    /// Bytes written to stdout.
    Stdout(Vec<u8>),
    /// Bytes written to stderr.
    Stderr(Vec<u8>),
    /// The exit code (128+N for signal N, 124 on timeout, 137 when the sandbox died), and
    /// when the sandbox died under the command, a message that says so and why.
    Exit {
        /// Exit code.
        code: i32,
        /// Set when the sandbox stopped under the command: what happened and what to do.
        message: Option<String>,
    },
    /// The command could not be followed to its end.
    Error(String),
}

/// The stream of an exec's output; ends after `Exit` or `Error`.
pub type ExecStream = mpsc::Receiver<ExecOutput>;

/// What an attached client sends to a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    /// Bytes for the command's stdin (or terminal).
    Data(Vec<u8>),
    /// The terminal's new size.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// No more input: stdin is closed (on a terminal, ^D is sent).
    Eof,
}

/// An exec with input: its output stream and where to send input.
pub struct AttachedExec {
    /// Output, then the exit code.
    pub output: ExecStream,
    /// Input for the command.
    pub input: mpsc::Sender<ExecInput>,
}

/// Where a command's output goes until its `exit` is due; then nowhere (`None`).
type OutputTo = Arc<tokio::sync::Mutex<Option<mpsc::Sender<ExecOutput>>>>;

/// Forwards what `reader` gives to `to` until its end. Once the command has exited and its
/// `exit` is due, `to` is emptied: it forwards no more but goes on reading, so a background
/// process that inherited the pipe writes on without a broken pipe, and the stream ends
/// with the `exit`.
async fn pump<R: AsyncRead + Unpin>(mut reader: R, to: OutputTo, stdout: bool) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                // Sent under the lock: once the exit is due, nothing more goes out.
                let to = to.lock().await;
                let Some(tx) = to.as_ref() else { continue };
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

async fn feed_pipe(mut stdin: tokio::process::ChildStdin, mut input: mpsc::Receiver<ExecInput>) {
    use tokio::io::AsyncWriteExt;
    while let Some(msg) = input.recv().await {
        match msg {
            ExecInput::Data(d) => {
                if stdin.write_all(&d).await.is_err() {
                    break;
                }
            }
            ExecInput::Resize { .. } => {}
            ExecInput::Eof => break,
        }
    }
}

/// Writes input to the terminal; a resize sets the terminal's size and tells the
/// runtime client (SIGWINCH), which passes it on to the process's own terminal.
async fn feed_terminal(
    master: std::os::fd::OwnedFd,
    client_pid: Option<u32>,
    mut input: mpsc::Receiver<ExecInput>,
) {
    use tokio::io::AsyncWriteExt;
    let Ok(dup) = master.try_clone() else { return };
    let mut writer = tokio::fs::File::from_std(std::fs::File::from(dup));
    while let Some(msg) = input.recv().await {
        let ok = match msg {
            ExecInput::Data(d) => writer.write_all(&d).await.and(writer.flush().await).is_ok(),
            ExecInput::Resize { cols, rows } => {
                let size = rustix::termios::Winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                let ok = rustix::termios::tcsetwinsize(&master, size).is_ok();
                let pid = client_pid.and_then(|p| rustix::process::Pid::from_raw(p as i32));
                if let Some(pid) = pid {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::WINCH);
                }
                ok
            }
            // ^D: end of input for a program reading the terminal in canonical mode.
            ExecInput::Eof => writer
                .write_all(&[4])
                .await
                .and(writer.flush().await)
                .is_ok(),
        };
        if !ok {
            break;
        }
    }
}

/// Quotes `s` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The shell line the sandbox's init runs for a detached command: its working
/// directory, extra environment, then the command.
fn detached_line(cmd: &[String], workdir: Option<&str>, env: &[String]) -> Result<String> {
    let mut line = String::new();
    if let Some(w) = workdir {
        line.push_str(&format!("cd {} && ", shell_quote(w)));
    }
    for kv in env {
        if let Some((k, v)) = kv.split_once('=') {
            line.push_str(&format!("export {k}={} && ", shell_quote(v)));
        }
    }
    line.push_str("exec ");
    line.push_str(
        &cmd.iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
    );
    if line.contains('\n') {
        return Err(EngineError::InvalidArgument(
            "a detached command cannot contain a newline: put it in a script file and run that"
                .into(),
        ));
    }
    Ok(line)
}

/// Why sandbox `r` cannot run a command, and what to do.
fn not_running(r: &SandboxRecord) -> EngineError {
    if r.state == SandboxState::Paused {
        let by = match r.pause_reason {
            Some(PauseReason::Idle) => "by its idle timeout".to_string(),
            _ => "by request ('cairn pause')".to_string(),
        };
        let at = r
            .paused_at
            .map(|t| {
                format!(
                    " at {}",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
            .unwrap_or_default();
        return EngineError::Conflict(format!(
            "sandbox {id} is paused ({by}{at}): resume it with 'cairn resume {id}' (an exec wakes only a sandbox its idle timeout paused)",
            id = r.id
        ));
    }
    EngineError::Conflict(format!(
        "sandbox {} is {}: only a running sandbox can exec; start it with 'cairn start {}'",
        r.id, r.state, r.id
    ))
}

impl Engine {
    /// Sandbox `r` (of `account`) ready for a command, with its gate held shared until the
    /// command's process runs (see `Engine::gate`): a snapshot's pause is waited out (at most
    /// `GATE_WAIT`), a sandbox its idle timeout paused is resumed; one paused by request, or
    /// not running, is refused.
    async fn ready_for_exec(
        &self,
        account: &str,
        r: SandboxRecord,
    ) -> Result<(tokio::sync::OwnedRwLockReadGuard<()>, SandboxRecord)> {
        let gate = self.gate(&r.id);
        // A wake races only with another pause, by request (refused next time round) or by the
        // idle timeout (which this exec, busy, holds off): twice round is enough; a third
        // is a safety net.
        for _ in 0..3 {
            let held = match gate.clone().try_read_owned() {
                Ok(held) => held,
                Err(_) => {
                    let waiting = std::time::Instant::now();
                    let held =
                        tokio::time::timeout(crate::pause::GATE_WAIT, gate.clone().read_owned())
                            .await
                            .map_err(|_| {
                                EngineError::Conflict(format!(
                                    "sandbox {} has been paused for a snapshot for over {} s: try the command again once 'cairn snapshot list {}' shows the snapshot ready",
                                    r.id,
                                    crate::pause::GATE_WAIT.as_secs(),
                                    r.id
                                ))
                            })?;
                    let waited_us = waiting.elapsed().as_micros() as u64;
                    tracing::info!(sandbox = %r.id, waited_us, "exec waited for a pause to end");
                    held
                }
            };
            let r = self.find(account, r.id.as_str())?;
            match r.state {
                SandboxState::Running => return Ok((held, r)),
                SandboxState::Paused if r.pause_reason == Some(PauseReason::Idle) => {
                    drop(held);
                    self.wake(&r.id).await?;
                }
                _ => return Err(not_running(&r)),
            }
        }
        Err(EngineError::Conflict(format!(
            "sandbox {} was paused again while waking it: try the command again",
            r.id
        )))
    }

    /// Starts `req` in a running sandbox of `account` and returns its output stream.
    pub async fn exec(
        self: &Arc<Self>,
        account: &str,
        id_or_name: &str,
        req: &ExecRequest,
    ) -> Result<ExecStream> {
        let attached = self
            .exec_with(account, id_or_name, req, ExecIo::Pipes { stdin: false })
            .await?;
        Ok(attached.output)
    }

    /// Starts `req` with its stdin (`ExecIo::Pipes { stdin: true }`) or a terminal
    /// (`ExecIo::Tty`) open to the caller.
    pub async fn exec_with(
        self: &Arc<Self>,
        account: &str,
        id_or_name: &str,
        req: &ExecRequest,
        io: ExecIo,
    ) -> Result<AttachedExec> {
        check_cmd(&req.cmd)?;
        check_env(&req.env)?;
        if let Some(w) = &req.workdir {
            check_workdir(w)?;
        }
        if let Some(secs) = req.timeout_secs {
            check_timeout("the timeout", secs)?;
        }
        let r = self.find(account, id_or_name)?;
        // Busy from here on: the idle timeout does not pause a sandbox a command is about to
        // start in (and one paused meanwhile is woken below).
        let busy = self.busy(&r.id);
        let (gate, r) = self.ready_for_exec(account, r).await?;
        let args = if req.detach {
            if io != (ExecIo::Pipes { stdin: false }) {
                return Err(EngineError::InvalidArgument(
                    "--detach cannot be combined with -i or -t".into(),
                ));
            }
            let line = detached_line(&req.cmd, req.workdir.as_deref(), &req.env)?;
            vec![
                "/bin/sh".to_string(),
                "-c".to_string(),
                format!(
                    "i=0; while [ ! -p {fifo} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; [ -p {fifo} ] || {{ echo 'this sandbox was started by an older cairnd and cannot detach processes: restart it (cairn stop, cairn start)' >&2; exit 125; }}; printf '%s\\n' \"$1\" > {fifo}",
                    fifo = cairn_runtime::bundle::SPAWN_FIFO
                ),
                "cairn-detach".to_string(),
                line,
            ]
        } else {
            req.cmd.clone()
        };
        let env = merge_env(&r.env, &req.env);
        check_env_size(
            &env,
            "the command (the sandbox's and the request's together)",
        )?;
        let spec = ExecSpec {
            args,
            env,
            cwd: req.workdir.clone().unwrap_or_else(|| r.workdir.clone()),
        };
        if matches!(io, ExecIo::Tty { .. }) && r.runtime == cairn_types::RuntimeKind::Gvisor {
            return Err(EngineError::InvalidArgument(format!(
                "a terminal (-t) is not available in gvisor sandboxes yet (this runsc cannot hand one over for exec): use -i without -t, or a runc sandbox ({} runs gvisor)",
                r.id
            )));
        }
        let rt = self.runtime(r.runtime)?;
        let scratch = self.run_dir(&r.id).join("exec");
        let mut exec = rt.exec(r.id.as_str(), &spec, &scratch, io).await?;
        let (tx, rx) = mpsc::channel(64);
        let (in_tx, in_rx) = mpsc::channel::<ExecInput>(64);
        let output: OutputTo = Arc::new(tokio::sync::Mutex::new(Some(tx.clone())));
        let (out, err) = match exec.console.take() {
            Some(master) => {
                let reader = std::fs::File::from(
                    master
                        .try_clone()
                        .map_err(|e| EngineError::Internal(e.to_string()))?,
                );
                let out = tokio::spawn(pump(
                    tokio::fs::File::from_std(reader),
                    Arc::clone(&output),
                    true,
                ));
                tokio::spawn(feed_terminal(master, exec.child.id(), in_rx));
                // The runtime client's own stderr still carries its errors.
                let err = exec
                    .child
                    .stderr
                    .take()
                    .map(|s| tokio::spawn(pump(s, Arc::clone(&output), false)));
                (Some(out), err)
            }
            None => {
                if let Some(stdin) = exec.child.stdin.take() {
                    tokio::spawn(feed_pipe(stdin, in_rx));
                }
                let out = exec
                    .child
                    .stdout
                    .take()
                    .map(|s| tokio::spawn(pump(s, Arc::clone(&output), true)));
                let err = exec
                    .child
                    .stderr
                    .take()
                    .map(|s| tokio::spawn(pump(s, Arc::clone(&output), false)));
                (out, err)
            }
        };
        let timeout = req.timeout_secs.map(Duration::from_secs);
        let engine = Arc::clone(self);
        // The run of the sandbox this command starts in: if it ends under the command, the
        // command's answer says so.
        let incarnation = self.incarnation(&r.id);
        tokio::spawn(async move {
            let _busy = busy;
            // Once its process runs, a pause may freeze it with the sandbox.
            if !exec.wait_started(START_WAIT).await {
                tracing::warn!(sandbox = %r.id, "the command's process did not start within {} s; letting pauses in", START_WAIT.as_secs());
            }
            drop(gate);
            let waited = match timeout {
                Some(t) => tokio::time::timeout(t, exec.child.wait()).await.ok(),
                None => Some(exec.child.wait().await),
            };
            let code = match waited {
                Some(Ok(status)) => cairn_cmd::exit_code(status),
                Some(Err(e)) => {
                    output.lock().await.take();
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
            // wait forever on a background process that inherited them. What it writes
            // later is read but not sent: the `exit` event is the stream's last.
            let drain = async {
                for task in [out, err].into_iter().flatten() {
                    let _ = task.await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
            output.lock().await.take();
            exec.remove_files();
            let failed = code != 0 && code != TIMEOUT_EXIT_CODE;
            let died = engine
                .death_under_exec(&r, incarnation.as_ref(), failed)
                .await;
            let exit = match died {
                // Its processes were killed with the sandbox (runsc itself answers 128).
                Some(reason) => ExecOutput::Exit {
                    code: SANDBOX_DIED_EXIT_CODE,
                    message: Some(format!("sandbox {} stopped: {reason}", r.id)),
                },
                None => ExecOutput::Exit {
                    code,
                    message: None,
                },
            };
            let _ = tx.send(exit).await;
        });
        Ok(AttachedExec {
            output: rx,
            input: in_tx,
        })
    }
}
