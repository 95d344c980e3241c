//! E2B's API, so that the unmodified `e2b` SDKs drive Cairn (`docs/e2b.md`): with
//! `E2B_API_URL=http://HOST:PORT/e2b` and `E2B_SANDBOX_URL=http://HOST:PORT/e2b/envd`.
//!
//! The control plane (this module) maps E2B's model onto Cairn's: an API key
//! (`X-API-KEY`) is a Cairn token, so a key sees its account's sandboxes only; a template
//! is an image name or a snapshot id; the answer carries an `envdAccessToken` that the
//! in-sandbox API (`envd`) checks on every call. Errors are E2B's `{code, message}` with
//! the statuses its SDKs turn into their exceptions.
//!
//! Not for: the in-sandbox API (`envd`); what is not supported yet (docs/e2b.md).

mod envd;
mod listing;

use std::collections::{BTreeMap, HashMap};

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use cairn_types::api::SandboxInfo;
use cairn_types::SandboxState;

use crate::auth::{caller_for_token, AuthMode, LOCAL_ACCOUNT};
use crate::{ApiError, AppState};

/// The envd protocol version Cairn's in-sandbox API answers as: the SDK picks its calls by
/// it (0.5.7: octet-stream uploads; commands without a default user).
pub(crate) const ENVD_VERSION: &str = "0.5.7";

/// The routes, to be nested under `/e2b`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/sandboxes", post(create).get(listing::list_all))
        .route("/v2/sandboxes", post(create).get(listing::list))
        .route("/sandboxes/{id}", get(detail).delete(kill))
        .route("/sandboxes/{id}/timeout", post(set_timeout))
        .route("/sandboxes/{id}/pause", post(pause))
        .route("/sandboxes/{id}/resume", post(connect))
        .route("/sandboxes/{id}/connect", post(connect))
        .route("/v2/sandboxes/{id}/connect", post(connect))
        .route("/sandboxes/{id}/snapshots", post(snapshot))
        .route("/sandboxes/{id}/fork", post(fork))
        .route("/snapshots", get(list_snapshots))
        .route("/templates/{id}", axum::routing::delete(delete_snapshot))
        .nest("/envd", envd::router())
}

/// An error as E2B answers one: `{code, message}` with the HTTP status as `code`.
pub(crate) struct E2bError(pub(crate) ApiError);

impl From<ApiError> for E2bError {
    fn from(e: ApiError) -> Self {
        E2bError(e)
    }
}

impl From<cairn_engine::EngineError> for E2bError {
    fn from(e: cairn_engine::EngineError) -> Self {
        E2bError(ApiError::from(e))
    }
}

impl IntoResponse for E2bError {
    fn into_response(self) -> Response {
        let status = self.0.status;
        (
            status,
            Json(json!({"code": status.as_u16(), "message": self.0.message})),
        )
            .into_response()
    }
}

type E2bResult<T> = Result<T, E2bError>;

/// The account an E2B API key (`X-API-KEY`, a Cairn token) belongs to; on the unix socket
/// without a key, the local account.
pub(crate) struct ApiKey(pub(crate) String);

impl FromRequestParts<AppState> for ApiKey {
    type Rejection = E2bError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, E2bError> {
        let key = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty());
        match (key, &state.auth) {
            (Some(key), _) => Ok(ApiKey(caller_for_token(state, key).await?.account)),
            (None, AuthMode::LocalSocket) => Ok(ApiKey(LOCAL_ACCOUNT.to_string())),
            (None, AuthMode::Bearer) => Err(ApiError::unauthenticated(
                "missing X-API-KEY header: set E2B_API_KEY to a Cairn token ('cairnd token create --account NAME')",
            )
            .into()),
        }
    }
}

/// `POST /sandboxes` (and `/v2/sandboxes`): the fields Cairn reads; the others are accepted
/// and left alone.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSandbox {
    #[serde(rename = "templateID")]
    template_id: Option<String>,
    #[serde(default)]
    env_vars: HashMap<String, String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    timeout: Option<u64>,
    /// At the timeout, pause (with an automatic snapshot) instead of killing.
    #[serde(default)]
    auto_pause: bool,
    /// False: that pause releases the sandbox's memory (E2B keeps only its files then).
    auto_pause_memory: Option<bool>,
    /// An in-sandbox call to the paused sandbox resumes it.
    auto_resume: Option<AutoResume>,
}

/// E2B's `SandboxAutoResumeConfig`.
#[derive(Debug, Default, Deserialize)]
struct AutoResume {
    #[serde(default)]
    enabled: bool,
}

/// E2B's default time to live: 5 minutes.
pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// The default template when a request names none (the SDK sends `base`).
const DEFAULT_TEMPLATE: &str = "base";

async fn create(
    State(st): State<AppState>,
    ApiKey(account): ApiKey,
    body: axum::body::Bytes,
) -> E2bResult<Response> {
    let req: NewSandbox = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!(
            "the request is not a valid E2B sandbox request ({e})"
        ))
    })?;
    let timeout = req.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if timeout > cairn_engine::MAX_KILL_AFTER_SECS {
        return Err(ApiError::invalid("a timeout of at most 30 days (2592000 s)").into());
    }
    let template = req
        .template_id
        .unwrap_or_else(|| DEFAULT_TEMPLATE.to_string());
    let mut env: Vec<String> = req
        .env_vars
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.sort();
    let mut create = cairn_engine::CreateSandbox {
        env,
        ..Default::default()
    };
    if template.starts_with("snap-") {
        create.from_snapshot = Some(template.clone());
    } else {
        create.image = template.clone();
    }
    let (who, metadata, auto_pause) = (account.clone(), req.metadata, req.auto_pause);
    let release_memory = req.auto_pause_memory == Some(false);
    let auto_resume = req.auto_resume.is_some_and(|a| a.enabled);
    let info = st
        .engine
        .run_to_end(move |e| async move {
            let info = e.create_sandbox(&who, &create).await?;
            // Its time to live and metadata, or no sandbox: one that cannot have them goes.
            let set = async {
                e.set_kill_after(&who, &info.id, Some(timeout)).await?;
                e.set_pause_at_timeout(&who, &info.id, auto_pause, release_memory)
                    .await?;
                if auto_resume {
                    e.set_auto_resume(&who, &info.id, true).await?;
                }
                e.set_metadata(&who, &info.id, metadata).await
            };
            if let Err(err) = set.await {
                let _ = e.destroy_sandbox(&who, &info.id, true, false).await;
                return Err(err);
            }
            Ok(info)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(created(&st, &account, &info)?)).into_response())
}

/// A sandbox as E2B's `Sandbox` (the answer to create, connect and each fork).
fn created(st: &AppState, account: &str, info: &SandboxInfo) -> Result<Value, E2bError> {
    Ok(json!({
        "templateID": info.image,
        "sandboxID": info.id,
        "clientID": "cairn",
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": st.engine.sandbox_access_token(account, &info.id)?,
    }))
}

/// `pause`: frozen with an automatic snapshot (its processes too); 409 when it is paused
/// already.
async fn pause(
    State(st): State<AppState>,
    ApiKey(account): ApiKey,
    Path(id): Path<String>,
) -> E2bResult<StatusCode> {
    let info = st.engine.inspect_sandbox(&account, &id).await?;
    if info.state == SandboxState::Paused {
        return Err(ApiError::new(
            cairn_types::ErrorCode::Conflict,
            format!("sandbox {} is paused already", info.id),
        )
        .into());
    }
    st.engine
        .run_to_end(move |e| async move { e.pause_sandbox(&account, &id, false).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
struct ConnectRequest {
    timeout: Option<u64>,
}

/// `connect` (and the older `resume`): resumes a paused sandbox, and answers it as create
/// does (200; 201 when it was resumed). Its timeout becomes `timeout` (default 300 s) from
/// now, unless it already runs out later.
async fn connect(
    State(st): State<AppState>,
    ApiKey(account): ApiKey,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> E2bResult<Response> {
    let req: ConnectRequest = if body.is_empty() {
        ConnectRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("not a connect request ({e})")))?
    };
    let timeout = req.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
    if timeout > cairn_engine::MAX_KILL_AFTER_SECS {
        return Err(ApiError::invalid("a timeout of at most 30 days (2592000 s)").into());
    }
    let mut info = st.engine.inspect_sandbox(&account, &id).await?;
    let (_, runs_out) = st.engine.sandbox_extras(&account, &info.id).await?;
    let wanted =
        chrono::Utc::now() + chrono::Duration::seconds(i64::try_from(timeout).unwrap_or(0));
    if runs_out.is_none_or(|at| at < wanted) {
        st.engine
            .set_kill_after(&account, &info.id, Some(timeout))
            .await?;
    }
    let mut status = StatusCode::OK;
    if info.state == SandboxState::Paused {
        let (who, sid) = (account.clone(), info.id.clone());
        info = st
            .engine
            .run_to_end(move |e| async move { e.resume_sandbox(&who, &sid).await })
            .await?;
        status = StatusCode::CREATED;
    }
    Ok((status, Json(created(&st, &account, &info)?)).into_response())
}

#[derive(Debug, Default, Deserialize)]
struct SnapshotRequest {
    name: Option<String>,
}

/// `create_snapshot`: a stateful snapshot (files and processes), which `Sandbox.create` takes
/// as a template.
async fn snapshot(
    State(st): State<AppState>,
    ApiKey(account): ApiKey,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> E2bResult<Response> {
    let req: SnapshotRequest = if body.is_empty() {
        SnapshotRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("not a snapshot request ({e})")))?
    };
    let snap = st
        .engine
        .run_to_end(move |e| async move {
            e.create_snapshot(&account, &id, req.name.as_deref(), true)
                .await
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"snapshotID": snap.id, "names": [snap.name]})),
    )
        .into_response())
}

/// `list_snapshots`: the account's ready snapshots, optionally of one sandbox (`sandboxID`).
async fn list_snapshots(
    State(st): State<AppState>,
    ApiKey(account): ApiKey,
    Query(q): Query<HashMap<String, String>>,
) -> E2bResult<Response> {
    let all = st.engine.list_all_snapshots(&account, false).await?;
    let out: Vec<Value> = all
        .iter()
        .filter(|s| q.get("sandboxID").is_none_or(|id| *id == s.sandbox))
        .map(|s| json!({"snapshotID": s.id, "names": [s.name]}))
        .collect();
    Ok(Json(out).into_response())
}

/// `delete_snapshot` (E2B deletes a snapshot as a template).
async fn delete_snapshot(
    State(st): State<AppState>,
    ApiKey(account): ApiKey,
    Path(id): Path<String>,
) -> E2bResult<StatusCode> {
    st.engine
        .run_to_end(move |e| async move { e.delete_snapshot(&account, &id).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
struct ForkRequest {
    count: Option<u32>,
}

/// `fork`: a stateful snapshot of the sandbox in place, then `count` sandboxes from it (1 to
/// 20), each answered as created or with why it was not.
async fn fork(
    State(st): State<AppState>,
    ApiKey(account): ApiKey,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> E2bResult<Response> {
    let req: ForkRequest = if body.is_empty() {
        ForkRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("not a fork request ({e})")))?
    };
    let count = req.count.unwrap_or(1);
    if !(1..=20).contains(&count) {
        return Err(ApiError::invalid(format!("count {count} is not between 1 and 20")).into());
    }
    let who = account.clone();
    let forked = st
        .engine
        .run_to_end(move |e| async move {
            let snap = e.create_snapshot(&who, &id, None, true).await?;
            let req = cairn_types::api::ForkRequest {
                count: Some(count),
                ..Default::default()
            };
            e.fork_snapshot(&who, &snap.id, &req, &cairn_types::ProgressSink::none())
                .await
        })
        .await?;
    let mut out = Vec::new();
    for info in &forked.made {
        out.push(json!({ "sandbox": created(&st, &account, info)? }));
    }
    for e in forked.failed {
        let e = ApiError::from(e);
        out.push(json!({"error": {"code": e.status.as_u16(), "message": e.message}}));
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// A sandbox as E2B's `ListedSandbox` / `SandboxDetail` show it, with its metadata and
/// kill time.
async fn listed(st: &AppState, account: &str, info: &SandboxInfo) -> Result<Value, E2bError> {
    let (metadata, kill_at) = st.engine.sandbox_extras(account, &info.id).await?;
    let mut v = listed_row(info);
    v["metadata"] = json!(metadata);
    if let Some(at) = kill_at {
        v["endAt"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
    Ok(v)
}

fn listed_row(info: &SandboxInfo) -> Value {
    let state = match info.state {
        SandboxState::Paused => "paused",
        _ => "running",
    };
    json!({
        "templateID": info.image,
        "sandboxID": info.id,
        "clientID": "cairn",
        "startedAt": info.created_at.to_rfc3339(),
        // Without a time to live: the far future.
        "endAt": "9999-12-31T23:59:59Z",
        "envdVersion": ENVD_VERSION,
        // Whole CPUs, at least 1 (a fraction is rounded up).
        "cpuCount": format!("{:.0}", info.cpus.ceil().max(1.0)).parse::<u64>().unwrap_or(1),
        "memoryMB": info.memory_bytes / (1024 * 1024),
        "diskSizeMB": info.disk_bytes.unwrap_or(0) / (1024 * 1024),
        "state": state,
        "metadata": {},
    })
}

#[derive(Debug, Deserialize)]
struct TimeoutRequest {
    timeout: u64,
}

/// `set_timeout`: the sandbox is killed `timeout` seconds from now.
async fn set_timeout(
    State(st): State<AppState>,
    ApiKey(account): ApiKey,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> E2bResult<StatusCode> {
    let req: TimeoutRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid(format!(
            "not a timeout request ({e}): send {{\"timeout\": SECONDS}}"
        ))
    })?;
    st.engine
        .set_kill_after(&account, &id, Some(req.timeout))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn detail(
    State(st): State<AppState>,
    ApiKey(account): ApiKey,
    Path(id): Path<String>,
) -> E2bResult<Response> {
    let info = st.engine.inspect_sandbox(&account, &id).await?;
    let mut v = listed(&st, &account, &info).await?;
    v["envdAccessToken"] = json!(st.engine.sandbox_access_token(&account, &info.id)?);
    Ok(Json(v).into_response())
}

async fn kill(
    State(st): State<AppState>,
    ApiKey(account): ApiKey,
    Path(id): Path<String>,
) -> E2bResult<StatusCode> {
    st.engine
        .run_to_end(move |e| async move { e.destroy_sandbox(&account, &id, true, false).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
