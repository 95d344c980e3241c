//! envd's `process.Process`: `Start` (a server stream of the process's events), `List`,
//! `SendSignal`, and the input of a running process (`SendInput`, `CloseStdin`, `Update` for
//! a terminal's size), which reaches it while its `Start` stream is open.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use futures_util::stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use cairn_engine::{ExecInput, ExecIo, ExecOutput};
use cairn_types::api::ExecRequest;

use super::{envelope, event, message, Sandbox};
use crate::e2b::E2bResult;
use crate::{ApiError, AppState};

/// The input of the running processes started through `Start`, by (sandbox, pid).
#[derive(Default)]
struct Table(HashMap<(String, u32), mpsc::Sender<ExecInput>>);

fn table() -> std::sync::MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A process's entry in the table, removed when its `Start` stream ends.
struct Inputs(String, u32);

impl Inputs {
    fn register(sandbox: &str, pid: u32, input: mpsc::Sender<ExecInput>) -> Inputs {
        table().0.insert((sandbox.to_string(), pid), input);
        Inputs(sandbox.to_string(), pid)
    }
}

impl Drop for Inputs {
    fn drop(&mut self) {
        table().0.remove(&(std::mem::take(&mut self.0), self.1));
    }
}

/// Sends `what` to process `pid` of `sandbox`: 404 when no `Start` stream of this cairnd has
/// it open.
async fn send_to(sandbox: &Sandbox, pid: u32, what: ExecInput) -> E2bResult<Response> {
    let tx = table().0.get(&(sandbox.id.clone(), pid)).cloned();
    let Some(tx) = tx else {
        return Err(ApiError::not_found(format!(
            "no process {pid} started with its input open in sandbox {}",
            sandbox.id
        ))
        .into());
    };
    tx.send(what).await.map_err(|_| {
        ApiError::not_found(format!("process {pid} in sandbox {} has ended", sandbox.id))
    })?;
    Ok(Json(json!({})).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InputRequest {
    process: Selector,
    input: HashMap<String, String>,
    pty: Option<Pty>,
}

fn pid_of(s: &Selector) -> Result<u32, ApiError> {
    s.pid.ok_or_else(|| {
        ApiError::invalid(match s.tag {
            Some(_) => "processes are chosen by pid: tags are not supported yet",
            None => "name the process by its pid",
        })
    })
}

/// `SendInput`: bytes for a process's stdin or terminal.
pub(super) async fn send_input(
    State(_st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: InputRequest = message(&headers, &body, "a SendInputRequest")?;
    let pid = pid_of(&req.process)?;
    let data = req
        .input
        .get("stdin")
        .or_else(|| req.input.get("pty"))
        .ok_or_else(|| {
            ApiError::invalid("the input is {\"stdin\": BASE64} or {\"pty\": BASE64}")
        })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| ApiError::invalid(format!("the input is not base64 ({e})")))?;
    send_to(&sandbox, pid, ExecInput::Data(bytes)).await
}

/// `CloseStdin`: the end of a process's input (on a terminal, ^D).
pub(super) async fn close_stdin(
    State(_st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: InputRequest = message(&headers, &body, "a CloseStdinRequest")?;
    send_to(&sandbox, pid_of(&req.process)?, ExecInput::Eof).await
}

/// `Update`: a terminal's new size.
pub(super) async fn update(
    State(_st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: InputRequest = message(&headers, &body, "an UpdateRequest")?;
    let Some(pty) = req.pty else {
        return Ok(Json(json!({})).into_response());
    };
    let resize = ExecInput::Resize {
        cols: pty.size.cols.max(1),
        rows: pty.size.rows.max(1),
    };
    send_to(&sandbox, pid_of(&req.process)?, resize).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcessConfig {
    cmd: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    envs: HashMap<String, String>,
    #[serde(default)]
    cwd: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartRequest {
    process: ProcessConfig,
    pty: Option<Pty>,
    stdin: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Pty {
    size: PtySize,
}

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(default)]
struct PtySize {
    cols: u16,
    rows: u16,
}

/// Whether sandbox `id` was found to have no `/bin/bash` (with `Some(true)`: it was just
/// found so). A bounded memory: past 10,000 sandboxes it starts again.
fn without_bash(id: &str, found: Option<bool>) -> bool {
    static SEEN: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if found == Some(true) {
        if seen.len() >= 10_000 {
            seen.clear();
        }
        seen.insert(id.to_string());
    }
    seen.contains(id)
}

pub(super) async fn start(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: StartRequest = message(&headers, &body, "a process.StartRequest")?;
    let p = req.process;
    let mut env: Vec<String> = p.envs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.sort();
    let mut cmd = vec![p.cmd.clone()];
    cmd.extend(p.args.iter().cloned());
    let mut exec = ExecRequest {
        cmd,
        env,
        workdir: p.cwd.filter(|c| !c.is_empty()),
        timeout_secs: None,
        detach: false,
        started_event: true,
        secret_env: Vec::new(),
    };
    let bash = p.cmd == "/bin/bash";
    if bash && without_bash(&sandbox.id, None) {
        exec.cmd[0] = "/bin/sh".into();
    }
    let io = match (&req.pty, req.stdin) {
        (Some(pty), _) => ExecIo::Tty {
            cols: pty.size.cols.max(1),
            rows: pty.size.rows.max(1),
        },
        (None, Some(true)) => ExecIo::Pipes { stdin: true },
        (None, _) => ExecIo::Pipes { stdin: false },
    };
    let tty = req.pty.is_some();
    let attached = st
        .engine
        .exec_with(&sandbox.account, &sandbox.id, &exec, io)
        .await?;
    let (mut rx, mut input) = (attached.output, attached.input);
    let mut first = rx.recv().await;
    // No bash in the image: the same command through /bin/sh (and from now on at once).
    if bash && exec.cmd[0] == "/bin/bash" {
        if let Some(ExecOutput::Exit { code: 127, .. }) = first {
            without_bash(&sandbox.id, Some(true));
            exec.cmd[0] = "/bin/sh".into();
            let attached = st
                .engine
                .exec_with(&sandbox.account, &sandbox.id, &exec, io)
                .await?;
            (rx, input) = (attached.output, attached.input);
            first = rx.recv().await;
        }
    }
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let to_frame = move |out: ExecOutput| -> (Vec<u8>, bool) {
        match out {
            ExecOutput::Stdout(d) if tty => (event(json!({"data": {"pty": b64(&d)}})), false),
            ExecOutput::Stdout(d) => (event(json!({"data": {"stdout": b64(&d)}})), false),
            ExecOutput::Stderr(d) => (event(json!({"data": {"stderr": b64(&d)}})), false),
            ExecOutput::Exit { code, message } => {
                let mut end = json!({"exitCode": code, "exited": true, "status": format!("exit status {code}")});
                if let Some(m) = message {
                    end["error"] = json!(m);
                }
                (event(json!({ "end": end })), true)
            }
            ExecOutput::Error(m) => (
                envelope(2, &json!({"error": {"code": "internal", "message": m}})),
                true,
            ),
            ExecOutput::Started { .. } => (Vec::new(), false),
        }
    };
    // The process's id (0 when it runs through the runtime, without the agent).
    let pid = match first {
        Some(ExecOutput::Started { pid }) => {
            first = None;
            pid
        }
        _ => 0,
    };
    let head = event(json!({"start": {"pid": pid}}));
    // Its input, for SendInput, CloseStdin and Update, while its stream is open.
    let inputs = (pid != 0).then(|| Inputs::register(&sandbox.id, pid, input));
    let frames = stream::unfold(
        (Some(head), first, rx, false, inputs),
        move |(head, first, mut rx, done, inputs)| async move {
            if let Some(h) = head {
                return Some((Ok::<_, std::io::Error>(h), (None, first, rx, done, inputs)));
            }
            if done {
                return None;
            }
            let next = match first {
                Some(f) => Some(f),
                None => rx.recv().await,
            };
            match next {
                Some(out) => {
                    let (mut bytes, last) = to_frame(out);
                    if last {
                        bytes.extend(envelope(2, &json!({})));
                    }
                    Some((Ok(bytes), (None, None, rx, last, inputs)))
                }
                None => Some((
                    Ok(envelope(
                        2,
                        &json!({"error": {"code": "unavailable", "message": "the command's stream ended without its exit"}}),
                    )),
                    (None, None, rx, true, inputs),
                )),
            }
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/connect+json")],
        Body::from_stream(frames),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Selector {
    pid: Option<u32>,
    tag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SignalRequest {
    process: Selector,
    signal: Value,
}

/// `SendSignal`: SIGKILL or SIGTERM to a process of the sandbox, by pid.
pub(super) async fn send_signal(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: SignalRequest = message(&headers, &body, "a SendSignalRequest")?;
    let pid = pid_of(&req.process)?;
    let signal = match &req.signal {
        Value::String(s) if s == "SIGNAL_SIGKILL" => "KILL",
        Value::Number(n) if n.as_u64() == Some(9) => "KILL",
        Value::String(s) if s == "SIGNAL_SIGTERM" => "TERM",
        Value::Number(n) if n.as_u64() == Some(15) => "TERM",
        _ => {
            return Err(ApiError::invalid("the signal is SIGNAL_SIGKILL or SIGNAL_SIGTERM").into())
        }
    };
    st.engine
        .signal_process(&sandbox.account, &sandbox.id, pid, Some(signal))
        .await?;
    Ok(Json(json!({})).into_response())
}

/// `List`: the sandbox's processes but its init and agent, each as `ProcessInfo` (its
/// command line split at spaces).
pub(super) async fn list(State(st): State<AppState>, sandbox: Sandbox) -> E2bResult<Response> {
    let all = st.engine.processes(&sandbox.account, &sandbox.id).await?;
    let out: Vec<Value> = all
        .iter()
        .filter(|p| p.pid != 1 && !p.cmd.ends_with("agent serve"))
        .map(|p| {
            let mut words = p.cmd.split(' ');
            let cmd = words.next().unwrap_or_default();
            let args: Vec<&str> = words.collect();
            json!({"config": {"cmd": cmd, "args": args, "envs": {}}, "pid": p.pid})
        })
        .collect();
    Ok(Json(json!({ "processes": out })).into_response())
}
