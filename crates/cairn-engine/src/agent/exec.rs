//! `exec` through the agent: the process is a child of the sandbox's init (so stateful
//! snapshots, forks and restores carry it on both runtimes), a terminal works on gVisor too,
//! and the exit codes and messages are those of `exec` (124 timeout, 137 when the sandbox
//! ended under it, 126/127 when it cannot start, killed when its client goes away). Its
//! output keeps streaming across a snapshot: the agent holds it while it is quiesced.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use cairn_agent::proto::{Kind, Message, TtySize};
use cairn_db::SandboxRecord;
use cairn_runtime::{ExecIo, ExecSpec};

use super::link::{Event, Link};
use crate::exec::{AttachedExec, ExecInput, ExecOutput, SANDBOX_DIED_EXIT_CODE, TIMEOUT_EXIT_CODE};
use crate::exec_start::{Unstartable, CANNOT_RUN_EXIT_CODE};
use crate::{Engine, EngineError, Result};

/// How long the agent may take to start a process (it may be dialing back after a snapshot).
const START_WAIT: Duration = Duration::from_secs(30);

/// How long a detached command is watched for failing at once.
const DETACH_GRACE: Duration = Duration::from_millis(100);

/// SIGKILL.
const SIGKILL: i32 = 9;

/// What a process's start came to.
enum Start {
    Started(u32),
    Refused(ExecOutput),
}

/// What an exec through the agent needs from `exec_with`.
pub(crate) struct AgentExec {
    pub(crate) r: SandboxRecord,
    pub(crate) spec: ExecSpec,
    pub(crate) io: ExecIo,
    pub(crate) detach: bool,
    /// Attached: a `Started` event first.
    pub(crate) started_event: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) busy: crate::pause::Busy,
    pub(crate) pause_gate: tokio::sync::OwnedRwLockReadGuard<()>,
    /// Secrets (by name) for its environment.
    pub(crate) secret_env: Vec<String>,
    /// `uid` or `uid:gid` to run it as; the agent's own (root) when `None`.
    pub(crate) user: Option<String>,
}

/// The exit code of an `exit` message.
fn code_of(code: Option<i32>, signal: Option<i32>) -> i32 {
    match (code, signal) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => -1,
    }
}

impl Engine {
    /// Starts `x` through `link` and returns its streams.
    pub(crate) async fn exec_through_agent(
        self: &Arc<Self>,
        link: Arc<Link>,
        x: AgentExec,
    ) -> Result<AttachedExec> {
        let AgentExec {
            secret_env,
            r,
            spec,
            io,
            detach,
            started_event,
            timeout,
            busy,
            pause_gate,
            user,
        } = x;
        let (tx, rx) = mpsc::channel(64);
        let (in_tx, mut in_rx) = mpsc::channel::<ExecInput>(64);
        let (channel, mut events) = link.open();
        let (tty, stdin) = match io {
            ExecIo::Tty { cols, rows } => (Some(TtySize { rows, cols }), true),
            ExecIo::Pipes { stdin } => (None, stdin),
        };
        link.control(
            channel,
            &Message::Spawn {
                cmd: spec.args.clone(),
                env: spec.env.clone(),
                cwd: spec.cwd.clone(),
                user,
                tty,
                stdin,
                detach,
                secret_env,
            },
        );
        let incarnation = self.incarnation(&r.id);
        let mut early = Vec::new();
        let start = tokio::time::timeout(START_WAIT, async {
            while let Some(ev) = events.recv().await {
                let Event::Frame(f) = ev else { break };
                match f.message() {
                    Ok(Message::Started { pid }) => return Some(Start::Started(pid)),
                    Ok(Message::Error { reason, message }) => {
                        let out = match Unstartable::from_word(&reason) {
                            Some(why) => why.exit(&r.id, &spec.cwd, &spec.args, &spec.env),
                            None => ExecOutput::Exit {
                                code: CANNOT_RUN_EXIT_CODE,
                                message: Some(format!(
                                    "the command could not be started in sandbox {}: {message}",
                                    r.id
                                )),
                            },
                        };
                        return Some(Start::Refused(out));
                    }
                    // Output before `started` (an agent that sent them out of order): kept.
                    _ if f.kind == Kind::Stdout => early.push(ExecOutput::Stdout(f.payload)),
                    _ if f.kind == Kind::Stderr => early.push(ExecOutput::Stderr(f.payload)),
                    _ => {}
                }
            }
            None
        })
        .await;
        drop(pause_gate);
        let pid = match start {
            Ok(Some(Start::Started(pid))) => pid,
            Ok(Some(Start::Refused(out))) => {
                link.close(channel);
                let _ = tx.send(out).await;
                return Ok(AttachedExec {
                    output: rx,
                    input: in_tx,
                });
            }
            Ok(None) | Err(_) => {
                link.close(channel);
                if let Some(why) = incarnation.as_ref().and_then(|i| i.ended_on_purpose()) {
                    let _ = tx
                        .send(ExecOutput::Exit {
                            code: SANDBOX_DIED_EXIT_CODE,
                            message: Some(why),
                        })
                        .await;
                    return Ok(AttachedExec {
                        output: rx,
                        input: in_tx,
                    });
                }
                return Err(EngineError::Unavailable(format!(
                    "the agent of sandbox {} did not start the command: try again; 'cairn inspect {}' says whether its agent is connected",
                    r.id, r.id
                )));
            }
        };
        if detach {
            tracing::info!(sandbox = %r.id, pid, "detached command started");
            // A command that fails at once says so (as a shell's `exec -d` did).
            let early = tokio::time::timeout(DETACH_GRACE, async {
                while let Some(Event::Frame(f)) = events.recv().await {
                    if let Ok(Message::Exit { code, signal }) = f.message() {
                        return Some(code_of(code, signal));
                    }
                }
                None
            })
            .await;
            link.close(channel);
            let out = match early {
                Ok(Some(code)) if code != 0 => crate::detach::exited_at_once(&r.id, code),
                _ => ExecOutput::Started { pid },
            };
            let _ = tx.send(out).await;
            return Ok(AttachedExec {
                output: rx,
                input: in_tx,
            });
        }
        if started_event {
            let _ = tx.send(ExecOutput::Started { pid }).await;
        }
        for ev in early {
            let _ = tx.send(ev).await;
        }
        // Input: to the agent, as it comes.
        let input_link = Arc::clone(&link);
        let is_tty = tty.is_some();
        tokio::spawn(async move {
            while let Some(msg) = in_rx.recv().await {
                match msg {
                    ExecInput::Data(d) => {
                        // The client's input waits while the agent is behind (or quiesced).
                        input_link.room().await;
                        input_link.data(Kind::Stdin, channel, &d);
                    }
                    ExecInput::Resize { cols, rows } => {
                        input_link.control(channel, &Message::Resize { rows, cols })
                    }
                    // ^D on a terminal: end of input for a program reading it line by line.
                    ExecInput::Eof if is_tty => input_link.data(Kind::Stdin, channel, &[4]),
                    ExecInput::Eof => {
                        input_link.control(channel, &Message::CloseStdin);
                        return;
                    }
                }
            }
        });
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let _busy = busy;
            let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
            let mut timed_out = false;
            let ended = loop {
                let ev = tokio::select! {
                    ev = events.recv() => ev,
                    () = async {
                        match deadline {
                            Some(d) if !timed_out => tokio::time::sleep_until(d).await,
                            _ => std::future::pending().await,
                        }
                    } => {
                        tracing::info!(sandbox = %r.id, "exec timed out; killing it");
                        timed_out = true;
                        link.control(channel, &Message::Signal { signal: SIGKILL });
                        continue;
                    }
                    () = tx.closed() => {
                        tracing::info!(sandbox = %r.id, "the exec's client went away; killing its command");
                        link.control(channel, &Message::Signal { signal: SIGKILL });
                        link.close(channel);
                        return;
                    }
                };
                match ev {
                    Some(Event::Frame(f)) => match f.kind {
                        Kind::Stdout => {
                            let _ = tx.send(ExecOutput::Stdout(f.payload)).await;
                        }
                        Kind::Stderr => {
                            let _ = tx.send(ExecOutput::Stderr(f.payload)).await;
                        }
                        Kind::Stdin => {}
                        Kind::Control => {
                            if let Ok(Message::Exit { code, signal }) = f.message() {
                                break Some(code_of(code, signal));
                            }
                        }
                    },
                    Some(Event::Lost) | None => break None,
                }
            };
            link.close(channel);
            let exit = match ended {
                Some(_) if timed_out => ExecOutput::Exit {
                    code: TIMEOUT_EXIT_CODE,
                    message: None,
                },
                Some(code) => {
                    let failed = code != 0;
                    let purpose = incarnation.as_ref().and_then(|i| i.ended_on_purpose());
                    match purpose {
                        Some(why) if failed => ExecOutput::Exit {
                            code: SANDBOX_DIED_EXIT_CODE,
                            message: Some(why),
                        },
                        _ => match engine
                            .death_under_exec(&r, incarnation.as_ref(), failed)
                            .await
                        {
                            Some(reason) => ExecOutput::Exit {
                                code: SANDBOX_DIED_EXIT_CODE,
                                message: Some(format!("sandbox {} stopped: {reason}", r.id)),
                            },
                            None => ExecOutput::Exit {
                                code,
                                message: None,
                            },
                        },
                    }
                }
                None => {
                    let purpose = incarnation.as_ref().and_then(|i| i.ended_on_purpose());
                    match purpose {
                        Some(why) => ExecOutput::Exit {
                            code: SANDBOX_DIED_EXIT_CODE,
                            message: Some(why),
                        },
                        None => match engine
                            .death_under_exec(&r, incarnation.as_ref(), true)
                            .await
                        {
                            Some(reason) => ExecOutput::Exit {
                                code: SANDBOX_DIED_EXIT_CODE,
                                message: Some(format!("sandbox {} stopped: {reason}", r.id)),
                            },
                            None => ExecOutput::Error(format!(
                                "lost track of the command: the agent of sandbox {} went away (its process may still run)",
                                r.id
                            )),
                        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_read_as_shells_say_them() {
        assert_eq!(code_of(Some(3), None), 3);
        assert_eq!(code_of(None, Some(9)), 137);
    }
}
