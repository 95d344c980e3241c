//! The processes started through envd's `Start`, held by cairnd so that they outlive the
//! stream that started them: in E2B a client that goes away never ends a process, and
//! `Connect` attaches to it again.
//!
//! Each entry owns its exec's output stream and input. A task reads the output as it comes
//! and hands every piece to each attached stream (`Start`'s, and any `Connect`'s); while none
//! is attached it keeps what comes (at most its last [`UNSEEN_MAX`] bytes) for the next one
//! that connects. The `end` goes to every attached stream, and the entry goes with it. A
//! sandbox holds at most [`PER_SANDBOX`] processes, each at most [`ATTACHED_MAX`] attached
//! streams: past either, a 429. Entries live in this cairnd's memory only: a process ends
//! when its sandbox is destroyed, stopped or restored, and its entry goes then.
//!
//! Not for: the wire format of the streams, or starting a process (see `process`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use axum::http::StatusCode;
use tokio::sync::mpsc;

use cairn_engine::{AttachedExec, ExecInput, ExecOutput, ExecStream};
use cairn_types::ErrorCode;

use crate::ApiError;

/// The most processes started through envd that a sandbox holds at once.
pub(super) const PER_SANDBOX: usize = 32;

/// The most streams attached to one process at once (its `Start` and `Connect`s).
pub(super) const ATTACHED_MAX: usize = 8;

/// The most output kept for a process while no stream is attached (the oldest goes first).
pub(super) const UNSEEN_MAX: usize = 1024 * 1024;

/// Pieces of output an attached stream may be behind before the process waits for it.
const BACKLOG: usize = 64;

/// How long the process waits for an attached stream that is behind before letting it go
/// (a client that stopped reading holds up neither the others nor the process for longer).
const SLOW_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// What a process was started as, for `List` and for the frames of its streams.
#[derive(Debug, Clone, Default)]
pub(super) struct Spec {
    /// The program.
    pub(super) cmd: String,
    /// Its arguments.
    pub(super) args: Vec<String>,
    /// The environment the request added.
    pub(super) envs: HashMap<String, String>,
    /// Its working directory, when the request gave one.
    pub(super) cwd: Option<String>,
    /// The tag the request gave it.
    pub(super) tag: Option<String>,
    /// Whether it runs on a terminal (its output is `pty` data).
    pub(super) tty: bool,
}

struct Entry {
    /// Tells this entry from a later process with the same pid.
    serial: u64,
    spec: Arc<Spec>,
    input: mpsc::Sender<ExecInput>,
    attached: Vec<mpsc::Sender<ExecOutput>>,
    unseen: VecDeque<ExecOutput>,
    unseen_bytes: usize,
}

impl Entry {
    /// Keeps `out` for the next stream that attaches, dropping the oldest past `UNSEEN_MAX`.
    fn keep(&mut self, out: ExecOutput) {
        self.unseen_bytes += size(&out);
        self.unseen.push_back(out);
        while self.unseen_bytes > UNSEEN_MAX {
            match self.unseen.pop_front() {
                Some(old) => self.unseen_bytes -= size(&old),
                None => break,
            }
        }
    }
}

fn size(out: &ExecOutput) -> usize {
    match out {
        ExecOutput::Stdout(d) | ExecOutput::Stderr(d) => d.len(),
        _ => 0,
    }
}

#[derive(Default)]
struct Processes {
    by_pid: HashMap<u32, Entry>,
    /// Slots reserved by starts under way.
    starting: usize,
}

#[derive(Default)]
struct Registry(HashMap<String, Processes>);

impl Registry {
    fn entry(&mut self, sandbox: &str, pid: u32, serial: u64) -> Option<&mut Entry> {
        self.0
            .get_mut(sandbox)?
            .by_pid
            .get_mut(&pid)
            .filter(|e| e.serial == serial)
    }

    fn remove(&mut self, sandbox: &str, pid: u32, serial: u64) -> Option<Entry> {
        let procs = self.0.get_mut(sandbox)?;
        let gone = match procs.by_pid.get(&pid) {
            Some(e) if e.serial == serial => procs.by_pid.remove(&pid),
            _ => None,
        };
        self.tidy(sandbox);
        gone
    }

    /// Forgets a sandbox with nothing left in it.
    fn tidy(&mut self, sandbox: &str) {
        if self
            .0
            .get(sandbox)
            .is_some_and(|p| p.by_pid.is_empty() && p.starting == 0)
        {
            self.0.remove(sandbox);
        }
    }
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A 429 (E2B's SDKs raise their rate-limit exception), saying which limit.
fn too_many(message: String) -> ApiError {
    let mut e = ApiError::new(ErrorCode::LimitExceeded, message);
    e.status = StatusCode::TOO_MANY_REQUESTS;
    e
}

/// One of a sandbox's process slots, taken while a process starts; given back unless the
/// process is held ([`Slot::hold`]).
pub(super) struct Slot {
    sandbox: String,
    held: bool,
}

/// A slot for a new process of `sandbox`: 429 when it holds `PER_SANDBOX` already.
pub(super) fn reserve(sandbox: &str) -> Result<Slot, ApiError> {
    let mut reg = registry();
    let procs = reg.0.entry(sandbox.to_string()).or_default();
    if procs.by_pid.len() + procs.starting >= PER_SANDBOX {
        return Err(too_many(format!(
            "sandbox {sandbox} runs {PER_SANDBOX} commands started through the E2B API already (the most it may): wait for one to end, or kill one"
        )));
    }
    procs.starting += 1;
    Ok(Slot {
        sandbox: sandbox.to_string(),
        held: false,
    })
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut reg = registry();
        if let Some(procs) = reg.0.get_mut(&self.sandbox) {
            procs.starting = procs.starting.saturating_sub(1);
        }
        if !self.held {
            reg.tidy(&self.sandbox);
        }
    }
}

impl Slot {
    /// Holds started process `pid` (its output and input in `exec`) and attaches the
    /// stream that started it: the receiver of its output, up to its `end`.
    pub(super) fn hold(
        mut self,
        pid: u32,
        spec: Spec,
        exec: AttachedExec,
    ) -> (Arc<Spec>, mpsc::Receiver<ExecOutput>) {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(BACKLOG);
        let spec = Arc::new(spec);
        {
            let mut reg = registry();
            let procs = reg.0.entry(self.sandbox.clone()).or_default();
            procs.by_pid.insert(
                pid,
                Entry {
                    serial,
                    spec: Arc::clone(&spec),
                    input: exec.input,
                    attached: vec![tx],
                    unseen: VecDeque::new(),
                    unseen_bytes: 0,
                },
            );
            self.held = true;
        }
        tokio::spawn(fan_out(self.sandbox.clone(), pid, serial, exec.output));
        (spec, rx)
    }
}

/// What to do with one piece of output.
enum Route {
    Kept,
    To(Vec<mpsc::Sender<ExecOutput>>),
    Gone,
}

/// Hands the process's output to its attached streams (or keeps it), then its end to all.
async fn fan_out(sandbox: String, pid: u32, serial: u64, mut output: ExecStream) {
    while let Some(out) = output.recv().await {
        let last = matches!(out, ExecOutput::Exit { .. } | ExecOutput::Error(_));
        let route = {
            let mut reg = registry();
            if last {
                match reg.remove(&sandbox, pid, serial) {
                    Some(e) => Route::To(e.attached),
                    None => Route::Gone,
                }
            } else {
                match reg.entry(&sandbox, pid, serial) {
                    None => Route::Gone,
                    Some(e) => {
                        // A client that went away leaves its stream closed.
                        e.attached.retain(|s| !s.is_closed());
                        if e.attached.is_empty() {
                            e.keep(out.clone());
                            Route::Kept
                        } else {
                            Route::To(e.attached.clone())
                        }
                    }
                }
            }
        };
        match route {
            Route::Kept => {}
            Route::Gone => return,
            Route::To(streams) => {
                for s in streams {
                    // A stream that went away meanwhile is dropped at the next piece.
                    if tokio::time::timeout(SLOW_MAX, s.send(out.clone()))
                        .await
                        .is_err()
                    {
                        tracing::info!(
                            sandbox,
                            pid,
                            "a stream of an E2B command fell behind; letting it go"
                        );
                        if let Some(e) = registry().entry(&sandbox, pid, serial) {
                            e.attached.retain(|x| !x.same_channel(&s));
                        }
                    }
                }
            }
        }
        if last {
            return;
        }
    }
    // The exec's stream ended without its exit: the attached streams end with an error.
    registry().remove(&sandbox, pid, serial);
}

/// A stream attached to a held process.
pub(super) struct Attached {
    /// What the process was started as.
    pub(super) spec: Arc<Spec>,
    /// What it wrote while no stream was attached.
    pub(super) unseen: Vec<ExecOutput>,
    /// What it writes next, then its end.
    pub(super) rx: mpsc::Receiver<ExecOutput>,
}

/// Attaches a stream to process `pid` of `sandbox` (envd's `Connect`).
pub(super) fn attach(sandbox: &str, pid: u32) -> Result<Attached, ApiError> {
    let mut reg = registry();
    let Some(e) = reg.0.get_mut(sandbox).and_then(|p| p.by_pid.get_mut(&pid)) else {
        return Err(not_running(sandbox, pid));
    };
    e.attached.retain(|s| !s.is_closed());
    if e.attached.len() >= ATTACHED_MAX {
        return Err(too_many(format!(
            "process {pid} of sandbox {sandbox} has {ATTACHED_MAX} streams attached already (the most it may): close one"
        )));
    }
    let (tx, rx) = mpsc::channel(BACKLOG);
    e.attached.push(tx);
    e.unseen_bytes = 0;
    Ok(Attached {
        spec: Arc::clone(&e.spec),
        unseen: e.unseen.drain(..).collect(),
        rx,
    })
}

/// The 404 for a process that is not (or no longer) held.
pub(super) fn not_running(sandbox: &str, pid: u32) -> ApiError {
    ApiError::not_found(format!(
        "no process {pid} started through the E2B API runs in sandbox {sandbox} (it ended, or was started otherwise)"
    ))
}

/// Where the input of process `pid` of `sandbox` goes, while it runs.
pub(super) fn input(sandbox: &str, pid: u32) -> Option<mpsc::Sender<ExecInput>> {
    let reg = registry();
    reg.0
        .get(sandbox)?
        .by_pid
        .get(&pid)
        .map(|e| e.input.clone())
}

/// The pid of the running process of `sandbox` started with `tag`.
pub(super) fn by_tag(sandbox: &str, tag: &str) -> Option<u32> {
    let reg = registry();
    reg.0
        .get(sandbox)?
        .by_pid
        .iter()
        .find(|(_, e)| e.spec.tag.as_deref() == Some(tag))
        .map(|(pid, _)| *pid)
}

/// What the held processes of `sandbox` were started as, by pid.
pub(super) fn specs(sandbox: &str) -> HashMap<u32, Arc<Spec>> {
    let reg = registry();
    reg.0
        .get(sandbox)
        .map(|p| {
            p.by_pid
                .iter()
                .map(|(pid, e)| (*pid, Arc::clone(&e.spec)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_output_is_bounded_oldest_first() {
        let (input, _) = mpsc::channel(1);
        let mut e = Entry {
            serial: 0,
            spec: Arc::default(),
            input,
            attached: Vec::new(),
            unseen: VecDeque::new(),
            unseen_bytes: 0,
        };
        for i in 0..3u8 {
            e.keep(ExecOutput::Stdout(vec![i; UNSEEN_MAX / 2]));
        }
        assert_eq!(e.unseen.len(), 2);
        assert_eq!(e.unseen_bytes, UNSEEN_MAX);
        assert_eq!(e.unseen[0], ExecOutput::Stdout(vec![1; UNSEEN_MAX / 2]));
    }

    #[tokio::test]
    async fn a_process_outlives_its_streams_and_ends_for_all() {
        let sandbox = "sbx-test-outlives";
        let (out_tx, out_rx) = mpsc::channel(8);
        let (in_tx, _in_rx) = mpsc::channel(8);
        let exec = AttachedExec {
            output: out_rx,
            input: in_tx,
        };
        let (_, first) = reserve(sandbox).unwrap().hold(7, Spec::default(), exec);
        drop(first);
        out_tx
            .send(ExecOutput::Stdout(b"a".to_vec()))
            .await
            .unwrap();
        // Kept for the next stream while none is attached.
        for _ in 0..1000 {
            let kept = registry().0[sandbox].by_pid[&7].unseen.len();
            if kept > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let Attached { unseen, mut rx, .. } = attach(sandbox, 7).unwrap();
        assert_eq!(unseen, vec![ExecOutput::Stdout(b"a".to_vec())]);
        assert!(input(sandbox, 7).is_some());
        out_tx
            .send(ExecOutput::Exit {
                code: 137,
                message: None,
            })
            .await
            .unwrap();
        assert!(matches!(
            rx.recv().await,
            Some(ExecOutput::Exit { code: 137, .. })
        ));
        assert!(attach(sandbox, 7).is_err());
        assert!(input(sandbox, 7).is_none());
    }
}
