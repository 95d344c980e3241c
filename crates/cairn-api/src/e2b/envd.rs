//! E2B's in-sandbox API ("envd") over Cairn's agent: `process.Process` (Connect over
//! HTTP/1.1, JSON envelopes; `Start` and `Connect` are server streams, `StreamInput` a client
//! stream), `filesystem.Filesystem`, `GET`/`POST /files` and `/health`.
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
use futures_util::stream;
use serde::Deserialize;
use serde_json::{json, Value};

use cairn_engine::{FilesOf, WriteOptions};

mod input;
mod names;
mod process;
mod procs;
mod watch;

use super::{E2bError, E2bResult};
use crate::{ApiError, AppState};

/// The most a multipart upload may hold: it is read whole into memory (a tenant could make
/// many at once), while octet-stream uploads stream.
const MULTIPART_MAX: usize = 32 * 1024 * 1024;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/process.Process/Start", post(process::start))
        .route("/process.Process/Connect", post(process::connect))
        .route("/process.Process/StreamInput", post(input::stream_input))
        .route("/process.Process/SendSignal", post(process::send_signal))
        .route("/process.Process/List", post(process::list))
        .route("/process.Process/SendInput", post(process::send_input))
        .route("/process.Process/CloseStdin", post(process::close_stdin))
        .route("/process.Process/Update", post(process::update))
        .route("/files", get(read).post(write))
        .route("/filesystem.Filesystem/Stat", post(fs_stat))
        .route("/filesystem.Filesystem/ListDir", post(fs_list))
        .route("/filesystem.Filesystem/MakeDir", post(fs_mkdir))
        .route("/filesystem.Filesystem/Move", post(fs_move))
        .route("/filesystem.Filesystem/Remove", post(fs_remove))
        .route("/filesystem.Filesystem/WatchDir", post(watch::watch_dir))
        .route("/filesystem.Filesystem/CreateWatcher", post(watch::create))
        .route(
            "/filesystem.Filesystem/GetWatcherEvents",
            post(watch::events),
        )
        .route("/filesystem.Filesystem/RemoveWatcher", post(watch::stop))
}

/// The sandbox an in-sandbox call is for, and its account (from the access token).
pub(super) struct Sandbox {
    pub(super) account: String,
    pub(super) id: String,
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
        let Some(account) = state.engine.sandbox_token_account(&id, &token) else {
            return Err(ApiError::unauthenticated(
                "this access token is not the sandbox's: use the envdAccessToken it was created with",
            )
            .into());
        };
        // A paused sandbox made with autoResume wakes for the call (one that is gone is the
        // call's own 404).
        if !auto_resumes(state, &account, &id).await {
            return Ok(Sandbox { account, id });
        }
        match state.engine.resume_for_call(&account, &id).await {
            Ok(true) => {
                tracing::info!(sandbox = %id, "an E2B call resumed a paused sandbox (autoResume)");
                // Its timeout starts again, as connect's does (the pause had cleared it).
                state
                    .engine
                    .set_kill_after(&account, &id, Some(super::DEFAULT_TIMEOUT_SECS))
                    .await?;
            }
            Ok(false) | Err(cairn_engine::EngineError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(Sandbox { account, id })
    }
}

/// Whether sandbox `id` was made with autoResume: asked once, then remembered (it is set at
/// create only), so that the calls to the others cost no lookup. A bounded memory: past
/// 10,000 sandboxes it starts again.
async fn auto_resumes(state: &AppState, account: &str, id: &str) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static KNOWN: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    let known = || {
        KNOWN
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    };
    if let Some(on) = known().get(id) {
        return *on;
    }
    let Ok(on) = state.engine.auto_resumes(account, id).await else {
        return false;
    };
    let mut k = known();
    if k.len() >= 10_000 {
        k.clear();
    }
    k.insert(id.to_string(), on);
    on
}

async fn health() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// A Connect envelope: flags, length, the message.
pub(super) fn envelope(flags: u8, msg: &Value) -> Vec<u8> {
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

/// The request message of a Connect call, as `T` (`what`, with its article, names it in
/// the error).
pub(super) fn message<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    serde_json::from_value(first_message(headers, body)?)
        .map_err(|e| ApiError::invalid(format!("not {what} ({e})")))
}

pub(super) fn event(e: Value) -> Vec<u8> {
    envelope(0, &json!({ "event": e }))
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
    message(headers, body, "a filesystem request")
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

/// A file as envd's `EntryInfo` (proto3 JSON), its owner and group named by `names`.
fn entry_info(e: &cairn_types::api::FileEntry, names: &names::Names) -> Value {
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
    let mut v = json!({
        "name": name,
        "type": file_type,
        "path": e.path,
        "size": e.size.to_string(),
        "mode": e.mode | type_bit,
        "permissions": permissions(&e.kind, e.mode),
        "owner": names.user(e.uid),
        "group": names.group(e.gid),
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
    let names = names::of(&st, &sandbox).await;
    Ok(Json(json!({ "entry": entry_info(&e, &names) })).into_response())
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
    let names = names::of(&st, &sandbox).await;
    let out: Vec<Value> = entries.iter().map(|e| entry_info(e, &names)).collect();
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
    let names = names::of(&st, &sandbox).await;
    Ok(Json(json!({ "entry": entry_info(&e, &names) })).into_response())
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
    let names = names::of(&st, &sandbox).await;
    Ok(Json(json!({ "entry": entry_info(&e, &names) })).into_response())
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
