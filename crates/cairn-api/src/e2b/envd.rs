//! E2B's in-sandbox API ("envd") over Cairn's agent: `process.Process/Start` (Connect over
//! HTTP/1.1, JSON envelopes, a server stream), `GET`/`POST /files` and `/health`.
//!
//! Every call names its sandbox (`E2b-Sandbox-Id`) and carries the sandbox's access token
//! (`X-Access-Token`, from create): the token names the account and is checked against
//! cairnd's key, so a call reaches only that account's sandbox, as the rest of the API.
//!
//! `commands.run` asks for `/bin/bash -l -c CMD`: an image without bash runs it with
//! `/bin/sh -l -c CMD` instead.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use futures_util::stream;
use serde::Deserialize;
use serde_json::{json, Value};

use cairn_engine::{ExecOutput, FilesOf, WriteOptions};
use cairn_types::api::ExecRequest;

use super::{E2bError, E2bResult};
use crate::{ApiError, AppState};

/// The most a multipart upload may hold (it is read whole); octet-stream uploads stream.
const MULTIPART_MAX: usize = 256 * 1024 * 1024;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/process.Process/Start", post(start))
        .route("/process.Process/SendSignal", post(send_signal))
        .route("/process.Process/List", post(list_processes))
        .route("/files", get(read).post(write))
        .route("/filesystem.Filesystem/Stat", post(fs_stat))
        .route("/filesystem.Filesystem/ListDir", post(fs_list))
        .route("/filesystem.Filesystem/MakeDir", post(fs_mkdir))
        .route("/filesystem.Filesystem/Move", post(fs_move))
        .route("/filesystem.Filesystem/Remove", post(fs_remove))
}

/// The sandbox an in-sandbox call is for, and its account (from the access token).
struct Sandbox {
    account: String,
    id: String,
}

impl FromRequestParts<AppState> for Sandbox {
    type Rejection = E2bError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, E2bError> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let Some(id) = header("e2b-sandbox-id") else {
            return Err(ApiError::invalid(
                "missing E2b-Sandbox-Id header: set E2B_SANDBOX_URL to cairnd's /e2b/envd",
            )
            .into());
        };
        let Some(token) = header("x-access-token") else {
            return Err(ApiError::unauthenticated(
                "missing X-Access-Token header: use the envdAccessToken the sandbox was created with",
            )
            .into());
        };
        match state.engine.sandbox_token_account(&id, &token) {
            Some(account) => Ok(Sandbox { account, id }),
            None => Err(ApiError::unauthenticated(
                "this access token is not the sandbox's: use the envdAccessToken it was created with",
            )
            .into()),
        }
    }
}

async fn health() -> StatusCode {
    StatusCode::NO_CONTENT
}

// ---- process.Process/Start ----

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
}

/// A Connect envelope: flags, length, the message.
fn envelope(flags: u8, msg: &Value) -> Vec<u8> {
    let body = serde_json::to_vec(msg).unwrap_or_default();
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(flags);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The first message of a Connect stream request (or a plain JSON body).
fn first_message(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let enveloped = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/connect+"));
    let raw = if enveloped {
        let len = body
            .get(1..5)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| ApiError::invalid("a Connect envelope is shorter than its header"))?;
        body.get(5..5 + len)
            .ok_or_else(|| ApiError::invalid("a Connect envelope is shorter than it says"))?
    } else {
        body
    };
    serde_json::from_slice(raw)
        .map_err(|e| ApiError::invalid(format!("the request is not valid JSON ({e})")))
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

fn event(e: Value) -> Vec<u8> {
    envelope(0, &json!({ "event": e }))
}

async fn start(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: StartRequest = serde_json::from_value(first_message(&headers, &body)?)
        .map_err(|e| ApiError::invalid(format!("not a process.StartRequest ({e})")))?;
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
    let mut rx = st.engine.exec(&sandbox.account, &sandbox.id, &exec).await?;
    let mut first = rx.recv().await;
    // No bash in the image: the same command through /bin/sh (and from now on at once).
    if bash && exec.cmd[0] == "/bin/bash" {
        if let Some(ExecOutput::Exit { code: 127, .. }) = first {
            without_bash(&sandbox.id, Some(true));
            exec.cmd[0] = "/bin/sh".into();
            rx = st.engine.exec(&sandbox.account, &sandbox.id, &exec).await?;
            first = rx.recv().await;
        }
    }
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let to_frame = move |out: ExecOutput| -> (Vec<u8>, bool) {
        match out {
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
    let frames = stream::unfold(
        (Some(head), first, rx, false),
        move |(head, first, mut rx, done)| async move {
            if let Some(h) = head {
                return Some((Ok::<_, std::io::Error>(h), (None, first, rx, done)));
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
                    Some((Ok(bytes), (None, None, rx, last)))
                }
                None => Some((
                    Ok(envelope(
                        2,
                        &json!({"error": {"code": "unavailable", "message": "the command's stream ended without its exit"}}),
                    )),
                    (None, None, rx, true),
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
async fn send_signal(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: SignalRequest = serde_json::from_value(first_message(&headers, &body)?)
        .map_err(|e| ApiError::invalid(format!("not a SendSignalRequest ({e})")))?;
    let Some(pid) = req.process.pid else {
        return Err(ApiError::invalid(match req.process.tag {
            Some(_) => "processes are chosen by pid: tags are not supported yet",
            None => "name the process by its pid",
        })
        .into());
    };
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
async fn list_processes(State(st): State<AppState>, sandbox: Sandbox) -> E2bResult<Response> {
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

// ---- filesystem.Filesystem (unary Connect calls, JSON) ----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct FsRequest {
    path: String,
    depth: u32,
    source: String,
    destination: String,
}

fn fs_request(headers: &HeaderMap, body: &[u8]) -> Result<FsRequest, ApiError> {
    serde_json::from_value(first_message(headers, body)?)
        .map_err(|e| ApiError::invalid(format!("not a filesystem request ({e})")))
}

/// `rwxr-xr-x` and the like, with the type's letter first.
fn permissions(kind: &str, mode: u32) -> String {
    let mut out = String::with_capacity(10);
    out.push(match kind {
        "directory" => 'd',
        "symlink" => 'l',
        _ => '-',
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    out
}

/// A file as envd's `EntryInfo` (proto3 JSON).
fn entry_info(e: &cairn_types::api::FileEntry) -> Value {
    let (file_type, type_bit) = match e.kind.as_str() {
        "directory" => ("FILE_TYPE_DIRECTORY", 1u32 << 31),
        "symlink" => ("FILE_TYPE_SYMLINK", 1u32 << 27),
        _ => ("FILE_TYPE_FILE", 0),
    };
    let name = e
        .path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    let who = |id: u32| {
        if id == 0 {
            "root".to_string()
        } else {
            id.to_string()
        }
    };
    let mut v = json!({
        "name": name,
        "type": file_type,
        "path": e.path,
        "size": e.size.to_string(),
        "mode": e.mode | type_bit,
        "permissions": permissions(&e.kind, e.mode),
        "owner": who(e.uid),
        "group": who(e.gid),
        "modifiedTime": chrono::DateTime::from_timestamp(e.mtime, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let Some(t) = &e.target {
        v["symlinkTarget"] = json!(t);
    }
    v
}

async fn fs_stat(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req = fs_request(&headers, &body)?;
    let e = st
        .engine
        .file_stat(&sandbox.account, FilesOf::Sandbox(&sandbox.id), &req.path)
        .await?;
    Ok(Json(json!({ "entry": entry_info(&e) })).into_response())
}

async fn fs_list(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req = fs_request(&headers, &body)?;
    let entries = st
        .engine
        .file_list(
            &sandbox.account,
            FilesOf::Sandbox(&sandbox.id),
            &req.path,
            req.depth.max(1),
        )
        .await?;
    let out: Vec<Value> = entries.iter().map(entry_info).collect();
    Ok(Json(json!({ "entries": out })).into_response())
}

async fn fs_mkdir(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req = fs_request(&headers, &body)?;
    // envd makes the parents too, and says when the directory was there already.
    let there = st
        .engine
        .file_stat(&sandbox.account, FilesOf::Sandbox(&sandbox.id), &req.path)
        .await;
    if there.is_ok() {
        return Err(ApiError::new(
            cairn_types::ErrorCode::Conflict,
            format!("{} already exists", req.path),
        )
        .into());
    }
    let e = st
        .engine
        .file_mkdir(&sandbox.account, &sandbox.id, &req.path, true, None)
        .await?;
    Ok(Json(json!({ "entry": entry_info(&e) })).into_response())
}

async fn fs_move(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req = fs_request(&headers, &body)?;
    let e = st
        .engine
        .file_move(&sandbox.account, &sandbox.id, &req.source, &req.destination)
        .await?;
    Ok(Json(json!({ "entry": entry_info(&e) })).into_response())
}

async fn fs_remove(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req = fs_request(&headers, &body)?;
    st.engine
        .file_remove(&sandbox.account, &sandbox.id, &req.path, true)
        .await?;
    Ok(Json(json!({})).into_response())
}

// ---- files ----

async fn read(
    State(st): State<AppState>,
    sandbox: Sandbox,
    Query(q): Query<HashMap<String, String>>,
) -> E2bResult<Response> {
    let path = q
        .get("path")
        .ok_or_else(|| ApiError::invalid("give the file with ?path=/absolute/path"))?;
    let dl = st
        .engine
        .file_read(&sandbox.account, FilesOf::Sandbox(&sandbox.id), path, false)
        .await?;
    let chunks = stream::unfold(dl.chunks, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// One written file, as E2B's `EntryInfo`.
fn written(path: &str) -> Value {
    let name = path.rsplit('/').next().unwrap_or(path);
    json!({"name": name, "type": "file", "path": path})
}

async fn write(
    State(st): State<AppState>,
    sandbox: Sandbox,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> E2bResult<Response> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut out = Vec::new();
    if let Some(boundary) = kind
        .strip_prefix("multipart/form-data")
        .and_then(|rest| rest.split("boundary=").nth(1))
        .map(|b| b.trim_matches('"').to_string())
    {
        let all = axum::body::to_bytes(body, MULTIPART_MAX).await.map_err(|_| {
            ApiError::invalid(format!(
                "a multipart upload may hold at most {} MiB: send larger files as application/octet-stream",
                MULTIPART_MAX >> 20
            ))
        })?;
        for (filename, data) in multipart_parts(&all, &boundary)? {
            let path = match (q.get("path"), filename) {
                (Some(p), _) => p.clone(),
                (None, Some(f)) => f,
                (None, None) => {
                    return Err(ApiError::invalid(
                        "name the file with ?path= or the part's filename",
                    )
                    .into())
                }
            };
            st.engine
                .file_write(
                    &sandbox.account,
                    &sandbox.id,
                    &path,
                    WriteOptions::default(),
                    false,
                    std::io::Cursor::new(data.to_vec()),
                )
                .await?;
            out.push(written(&path));
        }
    } else {
        let path = q
            .get("path")
            .ok_or_else(|| ApiError::invalid("give the file with ?path=/absolute/path"))?
            .clone();
        let stream =
            futures_util::TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other);
        let reader = tokio_util::io::StreamReader::new(stream);
        st.engine
            .file_write(
                &sandbox.account,
                &sandbox.id,
                &path,
                WriteOptions::default(),
                false,
                reader,
            )
            .await?;
        out.push(written(&path));
    }
    Ok(Json(out).into_response())
}

/// One part of a `multipart/form-data` body: its filename (if any) and bytes.
type Part<'a> = (Option<String>, &'a [u8]);

/// The parts of a `multipart/form-data` body.
fn multipart_parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, ApiError> {
    let bad = || ApiError::invalid("the multipart body is malformed");
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut parts = Vec::new();
    let mut at = find(body, d, 0).ok_or_else(bad)? + d.len();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Ok(parts);
        }
        // Past the CRLF after the delimiter; headers end at an empty line.
        let head_start = at + 2;
        let head_end = find(body, b"\r\n\r\n", head_start).ok_or_else(bad)?;
        let head = String::from_utf8_lossy(&body[head_start..head_end]);
        let filename = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .flat_map(|l| l.split(';'))
            .filter_map(|kv| kv.trim().strip_prefix("filename="))
            .map(|f| f.trim_matches('"').to_string())
            .next();
        let data_start = head_end + 4;
        let next = find(body, format!("\r\n{delimiter}").as_bytes(), data_start).ok_or_else(bad)?;
        parts.push((filename, &body[data_start..next]));
        at = next + 2 + d.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_split_into_their_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/root/a.txt\"\r\nContent-Type: application/octet-stream\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\n\r\n\r\n--XyZ--\r\n";
        let parts = multipart_parts(body, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0.as_deref(), Some("/root/a.txt"));
        assert_eq!(parts[0].1, b"hello");
        assert_eq!(parts[1].1, b"");
        assert!(multipart_parts(b"garbage", "XyZ").is_err());
    }

    #[test]
    fn connect_envelopes_carry_their_length() {
        let e = envelope(2, &json!({}));
        assert_eq!(e, vec![2, 0, 0, 0, 2, b'{', b'}']);
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/connect+json".parse().unwrap(),
        );
        let v = first_message(&h, &envelope(0, &json!({"a": 1}))).unwrap();
        assert_eq!(v["a"], 1);
        assert!(first_message(&h, &[0, 0, 0, 9, 1]).is_err());
    }
}
