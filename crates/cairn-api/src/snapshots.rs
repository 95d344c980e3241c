//! Snapshot routes: create, list, inspect, restore, fork, diff, delete.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;

use cairn_types::api::{
    CreateSnapshotRequest, DiffEntry, ErrorBody, ErrorDetail, ForkBatch, ForkRequest,
    RestoreRequest, SandboxInfo, SnapshotInfo,
};

use crate::json::OptionalJson;
use crate::{progress, Account, ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

/// Snapshot a sandbox (running, paused or stopped): a brief pause, then a read-only copy-on-write capture.
///
/// With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
/// `ProgressEvent` per line: for a stateful snapshot `progress` lines of phase `memory`
/// (bytes received of an estimate of the sandbox's memory; the last one the whole), then one
/// `result` (status 201 and the snapshot) or `error` (the status and error listed here).
#[utoipa::path(post, operation_id = "createSnapshot", tag = "snapshots", path = "/v1/sandboxes/{id}/snapshots", params(("id" = String, Path, description = "sandbox id or name")), request_body = Option<CreateSnapshotRequest>,
    responses((status = 201, body = SnapshotInfo), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "conflict: the name is taken or the sandbox's state; limit_exceeded: a snapshot limit reached; busy, checkpoint_failed: a stateful snapshot's processes cannot be checkpointed now"),
              (status = 507, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(req): OptionalJson<CreateSnapshotRequest>,
) -> Response {
    progress::respond(&headers, move |sink| async move {
        let info = st
            .engine
            .run_to_end(move |e| async move {
                e.create_snapshot_watched(&account, &id, req.name.as_deref(), req.stateful, &sink)
                    .await
            })
            .await?;
        Ok::<_, ApiError>((StatusCode::CREATED, Json(info)))
    })
    .await
}

/// A sandbox's snapshots (by its id or name; a destroyed one's by its id or the name it had),
/// oldest first: the ready ones the user took, or with `all` every one.
#[utoipa::path(get, operation_id = "listSandboxSnapshots", tag = "snapshots", path = "/v1/sandboxes/{id}/snapshots",
    params(("id" = String, Path, description = "sandbox id or name"), ("all" = Option<bool>, Query, description = "also automatic, failed, in-progress and deleted ones")),
    responses((status = 200, body = Vec<SnapshotInfo>), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<SnapshotInfo>>> {
    let all = crate::handlers::flag(&q, "all")?;
    Ok(Json(st.engine.list_snapshots(&account, &id, all).await?))
}

/// All the caller's snapshots, oldest first: the ready ones the user took, or with `all` every one.
#[utoipa::path(get, operation_id = "listSnapshots", tag = "snapshots", path = "/v1/snapshots",
    params(("all" = Option<bool>, Query, description = "also automatic, failed, in-progress and deleted ones")),
    responses((status = 200, body = Vec<SnapshotInfo>)))]
pub async fn list_all(
    State(st): State<AppState>,
    Account(account): Account,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<SnapshotInfo>>> {
    let all = crate::handlers::flag(&q, "all")?;
    Ok(Json(st.engine.list_all_snapshots(&account, all).await?))
}

/// One snapshot.
#[utoipa::path(get, operation_id = "getSnapshot", tag = "snapshots", path = "/v1/snapshots/{id}", params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME")),
    responses((status = 200, body = SnapshotInfo), (status = 404, body = ErrorBody)))]
pub async fn inspect(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
) -> ApiResult<Json<SnapshotInfo>> {
    Ok(Json(st.engine.inspect_snapshot(&account, &id).await?))
}

/// Delete a snapshot; sandboxes forked or restored from it keep working.
#[utoipa::path(delete, operation_id = "deleteSnapshot", tag = "snapshots", path = "/v1/snapshots/{id}", params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "conflict: the snapshot is being made or used")))]
pub async fn delete(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.engine
        .run_to_end(move |e| async move { e.delete_snapshot(&account, &id).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Restore a snapshot in place into its source sandbox (or `to`): everything written since is discarded.
#[utoipa::path(post, operation_id = "restoreSnapshot", tag = "snapshots", path = "/v1/snapshots/{id}/restore", params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME")), request_body = Option<RestoreRequest>,
    responses((status = 200, body = SandboxInfo), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "conflict: the sandbox's or the snapshot's state; runtime_identity_mismatch: its processes cannot resume here (use fresh)"),
              (status = 507, body = ErrorBody)))]
pub async fn restore(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<RestoreRequest>,
) -> ApiResult<Json<SandboxInfo>> {
    Ok(Json(
        st.engine
            .run_to_end(move |e| async move {
                e.restore_snapshot(&account, &id, req.to.as_deref(), req.fresh)
                    .await
            })
            .await?,
    ))
}

/// Fork a snapshot `count` times (1 to 256): the sandboxes are made concurrently. Answers
/// 201 with the forks made and, when some were not, why (each failed fork left nothing
/// behind); when none could be made, the error that refused the first.
///
/// With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
/// `ProgressEvent` per line: `progress` lines of phase `forks` (forks done of the count),
/// then one `result` (status 201 and the batch) or `error` (the status and error listed here).
#[utoipa::path(post, operation_id = "forkSnapshot", tag = "snapshots", path = "/v1/snapshots/{id}/fork", params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME")), request_body = Option<ForkRequest>,
    responses((status = 201, body = ForkBatch), (status = 400, body = ErrorBody, description = "invalid_argument: a count out of 1..256 or a bad option"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "conflict: a name taken; limit_exceeded: no room in the subnet; runtime_identity_mismatch: the snapshot's processes cannot resume here (use fresh)"),
              (status = 507, body = ErrorBody)))]
pub async fn fork(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    headers: HeaderMap,
    OptionalJson(req): OptionalJson<ForkRequest>,
) -> Response {
    progress::respond(&headers, move |sink| async move {
        let forked = st
            .engine
            .run_to_end(move |e| async move { e.fork_snapshot(&account, &id, &req, &sink).await })
            .await?;
        let failed = forked
            .failed
            .into_iter()
            .map(|e| {
                let e = ApiError::from(e);
                ErrorDetail {
                    code: e.code.as_str().to_string(),
                    message: e.message,
                    details: e.details,
                }
            })
            .collect();
        Ok::<_, ApiError>((
            StatusCode::CREATED,
            Json(ForkBatch {
                sandboxes: forked.made,
                failed,
            }),
        ))
    })
    .await
}

/// Paths added, modified and deleted since the snapshot: against `against` (another snapshot) or the live sandbox.
#[utoipa::path(get, operation_id = "diffSnapshot", tag = "snapshots", path = "/v1/snapshots/{id}/diff",
    params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME"), ("against" = Option<String>, Query, description = "a later snapshot (id, NAME or SANDBOX:NAME); default: the live sandbox")),
    responses((status = 200, body = Vec<DiffEntry>), (status = 404, body = ErrorBody)))]
pub async fn diff(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<DiffEntry>>> {
    Ok(Json(
        st.engine
            .diff_snapshot(&account, &id, q.get("against").map(String::as_str))
            .await?,
    ))
}
