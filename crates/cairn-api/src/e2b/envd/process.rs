//! envd's `process.Process`: `Start` and `Connect` (server streams of a process's events),
//! `List`, `SendSignal`, and the input of a running process (`SendInput`, `StreamInput`,
//! `CloseStdin`, `Update` for a terminal's size). A process outlives its streams: cairnd
//! holds it (see `procs`) until it ends.

use std::collections::HashMap;
use std::time::Duration;

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

use super::{envelope, event, message, procs, Sandbox};
use crate::e2b::E2bResult;
use crate::{ApiError, AppState};

/// Sends `what` to process `pid` of `sandbox`: 404 when it is not running (or was not
/// started through `Start`).
pub(super) async fn send_to(sandbox: &Sandbox, pid: u32, what: ExecInput) -> E2bResult<Response> {
    let tx = procs::input(&sandbox.id, pid).ok_or_else(|| procs::not_running(&sandbox.id, pid))?;
    tx.send(what)
        .await
        .map_err(|_| procs::not_running(&sandbox.id, pid))?;
    Ok(Json(json!({})).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InputRequest {
    process: Selector,
    input: HashMap<String, String>,
    pty: Option<Pty>,
}

/// The pid a selector names: its pid, or the running process started with its tag.
pub(super) fn pid_of(sandbox: &Sandbox, s: &Selector) -> Result<u32, ApiError> {
    match (s.pid, &s.tag) {
        (Some(pid), _) => Ok(pid),
        (None, Some(tag)) => procs::by_tag(&sandbox.id, tag).ok_or_else(|| {
            ApiError::not_found(format!(
                "no process tagged {tag:?} runs in sandbox {}",
                sandbox.id
            ))
        }),
        (None, None) => Err(ApiError::invalid(
            "name the process by its pid (or the tag it was started with)",
        )),
    }
}

/// `SendInput`: bytes for a process's stdin or terminal.
pub(super) async fn send_input(
    State(_st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: InputRequest = message(&headers, &body, "a SendInputRequest")?;
    let pid = pid_of(&sandbox, &req.process)?;
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
    send_to(&sandbox, pid_of(&sandbox, &req.process)?, ExecInput::Eof).await
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
    send_to(&sandbox, pid_of(&sandbox, &req.process)?, resize).await
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
    tag: Option<String>,
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

/// The longest a command may run (the engine's cap on an exec's timeout: 30 days).
const TIMEOUT_MAX_SECS: u64 = 30 * 24 * 3600;

/// The command's time limit, as envd reads it: the request's `Connect-Timeout-Ms` (the SDK's
/// `timeout`, 60 s unless told), after which the command is killed (exit code 124) whether or
/// not a stream is attached; none when absent or 0.
fn deadline(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get("connect-timeout-ms") else {
        return Ok(None);
    };
    let ms: u64 = v
        .to_str()
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| ApiError::invalid("Connect-Timeout-Ms is a number of milliseconds"))?;
    Ok((ms > 0).then(|| ms.div_ceil(1000).min(TIMEOUT_MAX_SECS)))
}

/// `Start`: runs a command and streams its events; cairnd holds it (see `procs`) until it
/// ends or its timeout runs out, whether or not this stream stays open.
pub(super) async fn start(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: StartRequest = message(&headers, &body, "a process.StartRequest")?;
    let p = req.process;
    // A slot among the sandbox's held processes (429 past the cap), before it starts.
    let slot = procs::reserve(&sandbox.id)?;
    let mut env: Vec<String> = p.envs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.sort();
    let mut cmd = vec![p.cmd.clone()];
    cmd.extend(p.args.iter().cloned());
    let mut exec = ExecRequest {
        cmd,
        env,
        workdir: p.cwd.filter(|c| !c.is_empty()),
        timeout_secs: deadline(&headers)?,
        detach: false,
        started_event: true,
        secret_env: Vec::new(),
        user: None,
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
    // The process's id, once it started through the agent: then cairnd holds it, and this
    // stream is only the first attached to it. Otherwise (it could not start, or runs through
    // the runtime without the agent) the stream is its only reader, as an exec's.
    let Some(ExecOutput::Started { pid }) = first else {
        return Ok(events(
            0,
            tty,
            first.into_iter().collect(),
            rx,
            keepalive(&headers),
        ));
    };
    let spec = procs::Spec {
        cmd: p.cmd,
        args: p.args,
        envs: p.envs,
        cwd: exec.workdir,
        tag: req.tag,
        tty,
    };
    let exec = cairn_engine::AttachedExec { output: rx, input };
    let (_, rx) = slot.hold(pid, spec, exec);
    Ok(events(pid, tty, Vec::new(), rx, keepalive(&headers)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConnectRequest {
    process: Selector,
}

/// `Connect`: attaches to a running process started through `Start` and streams its events
/// as `Start` does: first what it wrote while no stream was attached (at most its last MiB),
/// then what comes, then its end.
pub(super) async fn connect(
    State(_st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: ConnectRequest = message(&headers, &body, "a process.ConnectRequest")?;
    let pid = pid_of(&sandbox, &req.process)?;
    let a = procs::attach(&sandbox.id, pid)?;
    Ok(events(pid, a.spec.tty, a.unseen, a.rx, keepalive(&headers)))
}

/// The longest a process's stream stays silent: then a `keepalive` event goes out (sooner when
/// the request's `Keepalive-Ping-Interval` asks), which also tells a client that went away
/// (its stream is let go, and what the process writes next is kept for a `Connect`).
const KEEPALIVE_MAX: Duration = Duration::from_secs(15);

/// The keepalive interval a stream's request asks for, at most `KEEPALIVE_MAX`.
fn keepalive(headers: &HeaderMap) -> Duration {
    headers
        .get("keepalive-ping-interval")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(KEEPALIVE_MAX, |s| {
            Duration::from_secs(s.max(1)).min(KEEPALIVE_MAX)
        })
}

/// A process's events as a Connect server stream: `start` with its pid, `data` for
/// `first` then each piece `rx` brings, and its `end` (or an error when `rx` ends without);
/// a `keepalive` after each `ping` of silence.
fn events(
    pid: u32,
    tty: bool,
    first: Vec<ExecOutput>,
    rx: mpsc::Receiver<ExecOutput>,
    ping: Duration,
) -> Response {
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
    let head = event(json!({"start": {"pid": pid}}));
    let first: std::collections::VecDeque<ExecOutput> = first.into();
    let frames = stream::unfold(
        (Some(head), first, rx, false),
        move |(head, mut first, mut rx, done)| async move {
            if let Some(h) = head {
                return Some((Ok::<_, std::io::Error>(h), (None, first, rx, done)));
            }
            if done {
                return None;
            }
            let next = match first.pop_front() {
                Some(f) => Some(f),
                None => match tokio::time::timeout(ping, rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        let alive = event(json!({"keepalive": {}}));
                        return Some((Ok(alive), (None, first, rx, false)));
                    }
                },
            };
            match next {
                Some(out) => {
                    let (mut bytes, last) = to_frame(out);
                    if last && !bytes.starts_with(&[2]) {
                        bytes.extend(envelope(2, &json!({})));
                    }
                    Some((Ok(bytes), (None, first, rx, last)))
                }
                None => Some((
                    Ok(envelope(
                        2,
                        &json!({"error": {"code": "unavailable", "message": "the command's stream ended without its exit"}}),
                    )),
                    (None, first, rx, true),
                )),
            }
        },
    );
    (
        [(header::CONTENT_TYPE, "application/connect+json")],
        Body::from_stream(frames),
    )
        .into_response()
}

/// envd's `ProcessSelector`: a pid or a tag.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Selector {
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
    let pid = pid_of(&sandbox, &req.process)?;
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

/// `List`: the sandbox's processes but its init and agent, each as `ProcessInfo`: as it was
/// started when it was started through `Start`, else its command line split at spaces.
pub(super) async fn list(State(st): State<AppState>, sandbox: Sandbox) -> E2bResult<Response> {
    let all = st.engine.processes(&sandbox.account, &sandbox.id).await?;
    let held = procs::specs(&sandbox.id);
    let out: Vec<Value> = all
        .iter()
        .filter(|p| p.pid != 1 && !p.cmd.ends_with("agent serve"))
        .map(|p| match held.get(&p.pid) {
            Some(spec) => {
                let mut config = json!({"cmd": spec.cmd, "args": spec.args, "envs": spec.envs});
                if let Some(cwd) = &spec.cwd {
                    config["cwd"] = json!(cwd);
                }
                let mut info = json!({"config": config, "pid": p.pid});
                if let Some(tag) = &spec.tag {
                    info["tag"] = json!(tag);
                }
                info
            }
            None => {
                let mut words = p.cmd.split(' ');
                let cmd = words.next().unwrap_or_default();
                let args: Vec<&str> = words.collect();
                json!({"config": {"cmd": cmd, "args": args, "envs": {}}, "pid": p.pid})
            }
        })
        .collect();
    Ok(Json(json!({ "processes": out })).into_response())
}
