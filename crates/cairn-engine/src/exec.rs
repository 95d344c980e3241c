//! `exec`: run a command in a running sandbox and stream its output as it
//! comes, then its exit code. A timeout kills the command (exit code 124); a
//! sandbox that dies under the command, or is stopped, restored, paused with its
//! memory released or destroyed under it, makes it end with 137 and a message
//! saying so (see `deaths`); a command that cannot start ends with 126 or 127 and
//! a message saying why (see `exec_start`). A command whose output nobody reads any
//! more (its client went away) is killed as at a timeout. A command waits out a
//! snapshot's pause before it starts, and wakes a sandbox its idle timeout paused (see
//! `pause`). Detached commands: see `detach`.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

use cairn_db::SandboxRecord;
use cairn_runtime::{ExecIo, ExecSpec};
use cairn_types::api::ExecRequest;
use cairn_types::{PauseReason, SandboxState};

use crate::exec_start::{self, Gate, Held};
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
    /// The exit code (128+N for signal N, 124 on timeout, 126 or 127 when it could not
    /// start, 137 when the sandbox died or was ended under it), and in those last cases a
    /// message that says what happened and what to do.
    Exit {
        /// Exit code.
        code: i32,
        /// Set when Cairn knows more than the code: the command could not start, or the
        /// sandbox died, was stopped, restored, paused with its memory released or destroyed
        /// under it.
        message: Option<String>,
    },
    /// The command could not be followed to its end.
    Error(String),
    /// A detached command started, with this process id inside the sandbox: the one event
    /// of a detached exec that started.
    Started {
        /// Its pid in the sandbox's process namespace.
        pid: u32,
    },
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

/// Sends `ev` to `to`, unless the `exit` is due (then it is dropped). False when the client
/// went away.
async fn forward(to: &OutputTo, ev: ExecOutput) -> bool {
    // Sent under the lock: once the exit is due, nothing more goes out.
    let to = to.lock().await;
    match to.as_ref() {
        Some(tx) => tx.send(ev).await.is_ok(),
        None => true,
    }
}

/// Passes what `reader` yields on to `to` as stdout or stderr chunks, holding it back
/// until `gate` says the process started (and dropping it if it never did: it is then the
/// runtime's own refusal). Once the command has exited and its `exit` is due, `to` is
/// emptied: it forwards no more but goes on reading to the end, so a background process
/// that inherited the pipe writes on without a broken pipe, and the stream ends with the
/// `exit`.
async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    to: OutputTo,
    stdout: bool,
    mut gate: watch::Receiver<Gate>,
) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut held = Held::new();
    let mut eof = false;
    loop {
        let state = *gate.borrow_and_update();
        match state {
            Gate::Shut => return,
            Gate::Open => {
                for ev in held.take() {
                    if !forward(&to, ev).await {
                        return;
                    }
                }
                if eof {
                    return;
                }
            }
            Gate::Pending if eof => {
                if gate.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Gate::Pending => {}
        }
        let read = if state == Gate::Pending {
            tokio::select! {
                n = reader.read(&mut buf) => n,
                _ = gate.changed() => continue,
            }
        } else {
            reader.read(&mut buf).await
        };
        match read {
            Ok(0) | Err(_) => eof = true,
            Ok(n) => {
                let chunk = buf[..n].to_vec();
                let ev = if stdout {
                    ExecOutput::Stdout(chunk)
                } else {
                    ExecOutput::Stderr(chunk)
                };
                if state == Gate::Pending {
                    held.push(ev);
                } else if !forward(&to, ev).await {
                    return;
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

/// Writes input to the terminal; a resize goes to the runtime (see `Runtime::resize`).
async fn feed_terminal(
    rt: Arc<dyn cairn_runtime::Runtime>,
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
                use std::os::fd::AsFd;
                rt.resize(master.as_fd(), client_pid, cols, rows)
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
            let r = self.find(account, r.id.as_str()).await?;
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
        let r = self.find(account, id_or_name).await?;
        // Busy from here on: the idle timeout does not pause a sandbox a command is about to
        // start in (and one paused meanwhile is woken below).
        let busy = self.busy(&r.id);
        let (pause_gate, r) = self.ready_for_exec(account, r).await?;
        if req.detach && io != (ExecIo::Pipes { stdin: false }) {
            return Err(EngineError::InvalidArgument(
                "--detach cannot be combined with -i or -t".into(),
            ));
        }
        let env = merge_env(&r.process.env, &req.env);
        check_env_size(
            &env,
            "the command (the sandbox's and the request's together)",
        )?;
        let spec = ExecSpec {
            args: req.cmd.clone(),
            env,
            cwd: req
                .workdir
                .clone()
                .unwrap_or_else(|| r.process.workdir.clone()),
        };
        let link = self.agent(&r.id);
        let user = self
            .exec_user(&r, req.user.as_deref(), link.is_some())
            .await?;
        if !req.secret_env.is_empty() {
            self.check_secret_env(&r, link.is_some(), &req.secret_env)
                .await?;
        }
        if let Some(link) = link {
            let x = crate::agent::AgentExec {
                secret_env: req.secret_env.clone(),
                r,
                spec,
                io,
                detach: req.detach,
                started_event: req.started_event,
                timeout: req.timeout_secs.map(Duration::from_secs),
                busy,
                pause_gate,
                user,
            };
            return self.exec_through_agent(link, x).await;
        }
        let rt = self.runtime(r.runtime)?;
        if matches!(io, ExecIo::Tty { .. }) && !rt.exec_terminal() {
            return Err(EngineError::InvalidArgument(format!(
                "a terminal (-t) is not available in {} sandboxes yet (this {} cannot hand one over for exec): use -i without -t, or a runc sandbox ({} runs {})",
                r.runtime,
                rt.program(),
                r.id,
                r.runtime
            )));
        }
        let scratch = self.run_dir(&r.id).join("exec");
        let (tx, rx) = mpsc::channel(64);
        let (in_tx, in_rx) = mpsc::channel::<ExecInput>(64);
        let output: OutputTo = Arc::new(tokio::sync::Mutex::new(Some(tx.clone())));
        if req.detach {
            let outcome = crate::detach::detach(
                rt.as_ref(),
                &r.id,
                &scratch,
                &req.cmd,
                &spec.cwd,
                spec.env.clone(),
                &req.env,
            )
            .await?;
            if let ExecOutput::Started { pid } = &outcome {
                tracing::info!(sandbox = %r.id, pid, "detached command started");
            }
            let _ = tx.send(outcome).await;
            return Ok(AttachedExec {
                output: rx,
                input: in_tx,
            });
        }
        let mut exec = rt.exec(r.id.as_str(), &spec, &scratch, io).await?;
        // Output waits until the process is known to have started (see `exec_start`).
        let (gate_tx, gate) = watch::channel(Gate::Pending);
        let gate_tx = Arc::new(gate_tx);
        tokio::spawn({
            let (pid_file, gate_tx) = (exec.pid_file.clone(), Arc::clone(&gate_tx));
            async move { exec_start::watch_start(pid_file, &gate_tx).await }
        });
        let (out, err) =
            match exec.console.take() {
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
                        gate.clone(),
                    ));
                    tokio::spawn(feed_terminal(
                        Arc::clone(&rt),
                        master,
                        exec.child.id(),
                        in_rx,
                    ));
                    // The runtime client's own stderr still carries its errors.
                    let err =
                        exec.child.stderr.take().map(|s| {
                            tokio::spawn(pump(s, Arc::clone(&output), false, gate.clone()))
                        });
                    (Some(out), err)
                }
                None => {
                    if let Some(stdin) = exec.child.stdin.take() {
                        tokio::spawn(feed_pipe(stdin, in_rx));
                    }
                    let out =
                        exec.child.stdout.take().map(|s| {
                            tokio::spawn(pump(s, Arc::clone(&output), true, gate.clone()))
                        });
                    let err =
                        exec.child.stderr.take().map(|s| {
                            tokio::spawn(pump(s, Arc::clone(&output), false, gate.clone()))
                        });
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
            drop(pause_gate);
            let waited = tokio::select! {
                waited = async {
                    match timeout {
                        Some(t) => tokio::time::timeout(t, exec.child.wait()).await.ok(),
                        None => Some(exec.child.wait().await),
                    }
                } => waited,
                // Nobody reads the output any more: the client went away (a killed CLI, an
                // SDK's timeout). The command is killed as at a timeout, not left running
                // unseen with its output pipes filling up.
                () = tx.closed() => {
                    tracing::info!(sandbox = %r.id, "the exec's client went away; killing its command");
                    if let Err(e) = rt.kill_exec(r.id.as_str(), &exec).await {
                        tracing::warn!(sandbox = %r.id, error = %e, "could not kill an abandoned exec");
                    }
                    if tokio::time::timeout(Duration::from_secs(5), exec.child.wait()).await.is_err() {
                        let _ = exec.child.start_kill();
                        let _ = exec.child.wait().await;
                    }
                    exec.remove_files();
                    return;
                }
            };
            let code = match waited {
                Some(Ok(status)) => cairn_cmd::exit_code(status),
                Some(Err(e)) => {
                    gate_tx.send_if_modified(|g| exec_start::open_if_pending(g, Gate::Open));
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
            // A runtime that ended before writing the pid file never started the process:
            // what it printed is its refusal, not the command's output.
            let started = exec_start::started(&exec.pid_file);
            let never_started = gate_tx.send_if_modified(|g| {
                exec_start::open_if_pending(g, if started { Gate::Open } else { Gate::Shut })
            }) && !started;
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
            let ended = incarnation.as_ref().and_then(|i| i.ended_on_purpose());
            let exit = if never_started && ended.is_none() {
                tracing::info!(sandbox = %r.id, code, "the runtime could not start the command");
                match exec_start::diagnose(rt.as_ref(), &r.id, &scratch, &spec).await {
                    Some(why) => why.exit(&r.id, &spec.cwd, &spec.args, &spec.env),
                    None => ExecOutput::Exit {
                        code: exec_start::CANNOT_RUN_EXIT_CODE,
                        message: Some(format!(
                            "the command could not be started in sandbox {}: check its program and working directory",
                            r.id
                        )),
                    },
                }
            } else {
                let failed = code != 0 && code != TIMEOUT_EXIT_CODE;
                match ended {
                    // Ended on purpose (stop, restore, release, destroy) under the command.
                    Some(why) if failed => ExecOutput::Exit {
                        code: SANDBOX_DIED_EXIT_CODE,
                        message: Some(why),
                    },
                    _ => {
                        let died = engine
                            .death_under_exec(&r, incarnation.as_ref(), failed)
                            .await;
                        match died {
                            // Its processes were killed with the sandbox (runsc itself answers 128).
                            Some(reason) => ExecOutput::Exit {
                                code: SANDBOX_DIED_EXIT_CODE,
                                message: Some(format!("sandbox {} stopped: {reason}", r.id)),
                            },
                            None => ExecOutput::Exit {
                                code,
                                message: None,
                            },
                        }
                    }
                }
            };
            let _ = tx.send(exit).await;
        });
        Ok(AttachedExec {
            output: rx,
            input: in_tx,
        })
    }
}
