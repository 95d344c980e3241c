//! Route handlers: decode, ask the engine, encode. Nothing else.
//!
//! Every handler that changes something runs the engine's operation through
//! [`cairn_engine::Engine::run_to_end`]: when the client goes away, its request is dropped,
//! and only the wait for the answer with it; the operation runs to its end.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use futures_util::stream;

use cairn_engine::{ExecOutput, Principal};
use cairn_types::api::{
    CreateSandboxRequest, ExecEvent, ExecRequest, ImageInfo, ImportImageRequest,
    PublishImageRequest, SandboxInfo,
};

use crate::json::ApiJson;
use crate::{Account, ApiError, AppState, Caller};

type ApiResult<T> = Result<T, ApiError>;

/// Create and start a sandbox.
#[utoipa::path(post, operation_id = "createSandbox", tag = "sandboxes", path = "/v1/sandboxes", request_body = CreateSandboxRequest,
    responses((status = 201, body = SandboxInfo), (status = 400, body = cairn_types::api::ErrorBody),
              (status = 404, body = cairn_types::api::ErrorBody, description = "not_found: no such image, snapshot or template"),
              (status = 409, body = cairn_types::api::ErrorBody, description = "conflict: the name is taken or a port too; limit_exceeded: no room in the subnet; runtime_identity_mismatch: from_snapshot's processes cannot resume here (use fresh)"),
              (status = 503, body = cairn_types::api::ErrorBody, description = "unavailable: the runtime is not installed; too_many_connections"),
              (status = 507, body = cairn_types::api::ErrorBody)))]
pub async fn create_sandbox(
    State(st): State<AppState>,
    caller: crate::auth::Caller,
    ApiJson(req): ApiJson<CreateSandboxRequest>,
) -> ApiResult<(StatusCode, Json<SandboxInfo>)> {
    let account = caller.account;
    let template = req.template.clone();
    let mut req = create_input(req)?;
    if let Some(repo) = &mut req.repo {
        repo.local_allowed = caller.admin;
    }
    let info = st
        .engine
        .run_to_end(move |e| async move {
            match template {
                Some(t) => e.create_from_template(&account, &t, req).await,
                None => e.create_sandbox(&account, &req).await,
            }
        })
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// The engine's words for a create request: the network mode parsed here, once.
fn create_input(req: CreateSandboxRequest) -> ApiResult<cairn_engine::CreateSandbox> {
    let network = req
        .network
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: cairn_types::NetworkModeError| ApiError::invalid(e.to_string()))?;
    Ok(cairn_engine::CreateSandbox {
        image: req.image,
        from_snapshot: req.from_snapshot,
        fresh: req.fresh,
        name: req.name,
        runtime: req.runtime,
        cpus: req.cpus,
        memory: req.memory,
        pids_limit: req.pids_limit,
        env: req.env,
        workdir: req.workdir,
        idle_timeout: req.idle_timeout,
        network,
        publish: req.publish,
        disk: req.disk,
        secrets: req.secrets,
        repo: req.repo.map(|r| cairn_engine::RepoClone {
            url: r.url,
            branch: r.branch,
            path: r.path,
            token: r.token,
            local_allowed: false,
        }),
    })
}

/// List the caller's sandboxes.
#[utoipa::path(get, operation_id = "listSandboxes", tag = "sandboxes", path = "/v1/sandboxes", responses((status = 200, body = Vec<SandboxInfo>)))]
pub async fn list_sandboxes(
    State(st): State<AppState>,
    Account(account): Account,
) -> ApiResult<Json<Vec<SandboxInfo>>> {
    Ok(Json(st.engine.list_sandboxes(&account).await?))
}

/// One sandbox, by id or name.
#[utoipa::path(get, operation_id = "getSandbox", tag = "sandboxes", path = "/v1/sandboxes/{id}", params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 200, body = SandboxInfo), (status = 404, body = cairn_types::api::ErrorBody)))]
pub async fn inspect_sandbox(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
) -> ApiResult<Json<SandboxInfo>> {
    Ok(Json(st.engine.inspect_sandbox(&account, &id).await?))
}

/// Destroy a sandbox; a running one needs `?force=true`.
#[utoipa::path(delete, operation_id = "destroySandbox", tag = "sandboxes", path = "/v1/sandboxes/{id}",
    params(("id" = String, Path, description = "sandbox id or name"), ("force" = Option<bool>, Query, description = "destroy even if running"),
            ("with_snapshots" = Option<bool>, Query, description = "also delete its snapshots (kept by default)")),
    responses((status = 204), (status = 404, body = cairn_types::api::ErrorBody), (status = 409, body = cairn_types::api::ErrorBody)))]
pub async fn destroy_sandbox(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let force = flag(&q, "force")?;
    let with_snapshots = flag(&q, "with_snapshots")?;
    st.engine
        .run_to_end(move |e| async move {
            e.destroy_sandbox(&account, &id, force, with_snapshots)
                .await
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A boolean query parameter: absent or false/0 is false, true/1/empty is true.
pub(crate) fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "invalid {name} '{other}': use true or false"
        ))),
    }
}

/// Stop a sandbox's processes; its files stay.
#[utoipa::path(post, operation_id = "stopSandbox", tag = "sandboxes", path = "/v1/sandboxes/{id}/stop", params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 200, body = SandboxInfo), (status = 404, body = cairn_types::api::ErrorBody), (status = 409, body = cairn_types::api::ErrorBody, description = "conflict: the sandbox's state")))]
pub async fn stop_sandbox(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
) -> ApiResult<Json<SandboxInfo>> {
    Ok(Json(
        st.engine
            .run_to_end(move |e| async move { e.stop_sandbox(&account, &id).await })
            .await?,
    ))
}

/// Freeze a running sandbox and take an automatic snapshot (`auto-pause-…`, with process
/// memory where the runtime can); `release_memory` also ends the processes after checkpointing
/// them, so the sandbox holds no memory until resumed.
#[utoipa::path(post, operation_id = "pauseSandbox", tag = "sandboxes", path = "/v1/sandboxes/{id}/pause",
    params(("id" = String, Path, description = "sandbox id or name"), ("release_memory" = Option<bool>, Query, description = "checkpoint the processes to disk and end them")),
    responses((status = 200, body = SandboxInfo), (status = 400, body = cairn_types::api::ErrorBody), (status = 404, body = cairn_types::api::ErrorBody),
              (status = 409, body = cairn_types::api::ErrorBody, description = "conflict: not running; limit_exceeded: the automatic snapshot would pass a snapshot limit; busy, checkpoint_failed: its processes cannot be checkpointed now"),
              (status = 507, body = cairn_types::api::ErrorBody)))]
pub async fn pause_sandbox(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<SandboxInfo>> {
    let release = flag(&q, "release_memory")?;
    Ok(Json(
        st.engine
            .run_to_end(move |e| async move { e.pause_sandbox(&account, &id, release).await })
            .await?,
    ))
}

/// Continue a paused sandbox (restoring its processes when their memory was released).
#[utoipa::path(post, operation_id = "resumeSandbox", tag = "sandboxes", path = "/v1/sandboxes/{id}/resume", params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 200, body = SandboxInfo), (status = 404, body = cairn_types::api::ErrorBody),
              (status = 409, body = cairn_types::api::ErrorBody, description = "conflict: not paused; runtime_identity_mismatch: its released memory cannot resume on this host (stop and start it)")))]
pub async fn resume_sandbox(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
) -> ApiResult<Json<SandboxInfo>> {
    Ok(Json(
        st.engine
            .run_to_end(move |e| async move { e.resume_sandbox(&account, &id).await })
            .await?,
    ))
}

/// Start a stopped sandbox.
#[utoipa::path(post, operation_id = "startSandbox", tag = "sandboxes", path = "/v1/sandboxes/{id}/start", params(("id" = String, Path, description = "sandbox id or name")),
    responses((status = 200, body = SandboxInfo), (status = 404, body = cairn_types::api::ErrorBody), (status = 409, body = cairn_types::api::ErrorBody, description = "conflict: the sandbox's state")))]
pub async fn start_sandbox(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
) -> ApiResult<Json<SandboxInfo>> {
    Ok(Json(
        st.engine
            .run_to_end(move |e| async move { e.start_sandbox(&account, &id).await })
            .await?,
    ))
}

/// Run a command and stream its output: the response is chunked
/// `application/x-ndjson`, one [`ExecEvent`] per line, output as it is
/// written, ending with an `exit` event.
#[utoipa::path(post, operation_id = "execCommand", tag = "exec", path = "/v1/sandboxes/{id}/exec", params(("id" = String, Path, description = "sandbox id or name")), request_body = ExecRequest,
    responses((status = 200, description = "A stream of newline-delimited JSON: one ExecEvent per line (stdout and stderr with base64 data, started with a pid), sent as the command writes, ending with exactly one exit (code, message) or error event.", body = ExecEvent, content_type = "application/x-ndjson"),
              (status = 400, body = cairn_types::api::ErrorBody),
              (status = 409, body = cairn_types::api::ErrorBody, description = "conflict: not running, paused by request, or a snapshot kept it frozen over 60 s")))]
pub async fn exec(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ExecRequest>,
) -> ApiResult<Response> {
    let rx = st.engine.exec(&account, &id, &req).await?;
    let lines = stream::unfold(rx, |mut rx| async move {
        let event = exec_event(rx.recv().await?);
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::io::Error>(line), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// The wire form of one piece of exec output (shared by the streaming and
/// the WebSocket exec).
pub(crate) fn exec_event(ev: ExecOutput) -> ExecEvent {
    let b64 = |d: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(d);
    match ev {
        ExecOutput::Stdout(d) => ExecEvent::Stdout { data: b64(d) },
        ExecOutput::Stderr(d) => ExecEvent::Stderr { data: b64(d) },
        ExecOutput::Exit { code, message } => ExecEvent::Exit { code, message },
        ExecOutput::Error(message) => ExecEvent::Error {
            message,
            code: None,
        },
        ExecOutput::Started { pid } => ExecEvent::Started { pid },
    }
}

/// Import an image. Two forms:
/// - the request body is the archive (a root filesystem tarball, an OCI image archive or a
///   `docker save` archive; plain, gzip or zstd) and `?name=NAME` names the image: any account;
/// - `Content-Type: application/json` with an [`ImportImageRequest`]: a path on the daemon's
///   host, for the operator only (403 otherwise); never a path inside the data directory.
///
/// With `Accept: application/x-ndjson` the answer is a 200 progress stream instead (once an
/// upload has been read whole), one `ProgressEvent` per line: `progress` lines of phase
/// `unpack` (stored bytes of the layers, or of the archive, applied of their total), then
/// one `result` (status 201 and the image) or `error` (the status and error listed here).
#[utoipa::path(post, operation_id = "importImage", tag = "images", path = "/v1/images",
    params(("name" = Option<String>, Query, description = "name of the uploaded image"),
           ("public" = Option<bool>, Query, description = "publish it to every account (operator only)")),
    request_body(content(
        (ImportImageRequest = "application/json"),
        (Vec<u8> = "application/x-tar"), (Vec<u8> = "application/gzip"), (Vec<u8> = "application/zstd"),
        (Vec<u8> = "application/octet-stream"))),
    responses((status = 201, body = ImageInfo), (status = 400, body = cairn_types::api::ErrorBody),
              (status = 403, body = cairn_types::api::ErrorBody, description = "forbidden: a host path or public image, which only the operator may import"),
              (status = 409, body = cairn_types::api::ErrorBody, description = "conflict: the name is taken"),
              (status = 413, body = cairn_types::api::ErrorBody), (status = 507, body = cairn_types::api::ErrorBody)))]
pub async fn import_image(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> ApiResult<Response> {
    let headers = req.headers().clone();
    // An upload is any archive; a host path import says it is JSON.
    let json =
        req.headers().contains_key(header::CONTENT_TYPE) && crate::json::is_json(req.headers());
    if json {
        if !q.is_empty() {
            return Err(ApiError::invalid(
                "a JSON import takes its name and path in the body, not in the query",
            ));
        }
        let ApiJson(body) = ApiJson::<ImportImageRequest>::from_request(req, &st).await?;
        return Ok(crate::progress::respond(&headers, move |sink| async move {
            let info = st
                .engine
                .import_image_path(
                    principal(&caller),
                    &body.name,
                    &body.path,
                    body.public,
                    sink,
                )
                .await?;
            Ok::<_, ApiError>((StatusCode::CREATED, Json(info)))
        })
        .await);
    }
    let name = q.get("name").ok_or_else(|| {
        ApiError::invalid(
            "name the uploaded image with ?name=NAME (or send JSON {\"name\", \"path\"} with Content-Type: application/json to import a host path, operator only)",
        )
    })?;
    let public = flag(&q, "public")?;
    let (reader, drain) = crate::upload::reader(req.into_body());
    // The whole upload is read before any answer starts, streamed or not.
    let received = st
        .engine
        .receive_image_upload(principal(&caller), name, public, reader)
        .await;
    let received = drain.settle(received).await?;
    Ok(crate::progress::respond(&headers, move |sink| async move {
        let info = st.engine.import_received(received, sink).await?;
        Ok::<_, ApiError>((StatusCode::CREATED, Json(info)))
    })
    .await)
}

/// The engine's view of a caller.
pub(crate) fn principal(caller: &Caller) -> Principal<'_> {
    Principal {
        account: &caller.account,
        operator: caller.admin,
    }
}

/// List the images the caller can use: their account's and the public ones.
#[utoipa::path(get, operation_id = "listImages", tag = "images", path = "/v1/images", responses((status = 200, body = Vec<ImageInfo>)))]
pub async fn list_images(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ImageInfo>>> {
    Ok(Json(st.engine.list_images(principal(&caller)).await?))
}

/// Remove an image of the caller's account (the operator: any, by id) that nothing uses.
#[utoipa::path(delete, operation_id = "removeImage", tag = "images", path = "/v1/images/{name}", params(("name" = String, Path, description = "image name (the operator: or id)")),
    responses((status = 204), (status = 404, body = cairn_types::api::ErrorBody), (status = 409, body = cairn_types::api::ErrorBody, description = "conflict: a sandbox uses it")))]
pub async fn remove_image(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    st.engine
        .run_to_end(move |e| async move { e.remove_image(principal(&caller), &name).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Publish an image to every account, or make it private again (the operator only).
#[utoipa::path(post, operation_id = "publishImage", tag = "images", path = "/v1/images/{name}/publish", params(("name" = String, Path, description = "image name or id")),
    request_body = PublishImageRequest,
    responses((status = 200, body = ImageInfo), (status = 403, body = cairn_types::api::ErrorBody),
              (status = 404, body = cairn_types::api::ErrorBody), (status = 409, body = cairn_types::api::ErrorBody)))]
pub async fn publish_image(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<PublishImageRequest>,
) -> ApiResult<Json<ImageInfo>> {
    Ok(Json(
        st.engine
            .publish_image(principal(&caller), &name, req.public)
            .await?,
    ))
}

/// What the daemon's host has and which features it allows (`cairn doctor`).
#[utoipa::path(get, operation_id = "getDoctor", tag = "system", path = "/v1/doctor", responses((status = 200, description = "a JSON list of {name, version, ok, note}: the host's runtimes, CRIU, tools and kernel, and what each enables")))]
pub async fn doctor(
    State(st): State<AppState>,
    _account: Account,
) -> Json<Vec<cairn_engine::Check>> {
    Json(st.engine.doctor().await)
}

/// Any unknown path.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such API path: see /v1/openapi.json for the paths this server has")
}

/// A known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        cairn_types::ErrorCode::MethodNotAllowed,
        "this path does not take that method: see /v1/openapi.json",
    )
}
