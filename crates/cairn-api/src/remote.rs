//! The remote tier (`cairnd --remote s3://…`): push a snapshot, list the pushed ones,
//! pull one, delete one. A cairnd without a remote answers 503 saying how to configure one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use cairn_types::api::{ErrorBody, PushInfo, RemoteSnapshotInfo, SnapshotInfo};
use cairn_types::remote::RemoteDeleteInfo;

use crate::{Account, ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

/// Push a ready snapshot to the remote store as content-defined chunks (only the chunks
/// the store lacks are uploaded; a snapshot pushed before uploads nothing). It keeps its
/// id; only its account can list or pull it.
#[utoipa::path(post, operation_id = "pushSnapshot", tag = "remote", path = "/v1/snapshots/{id}/push",
    params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME")),
    responses((status = 200, body = PushInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody, description = "no remote configured, or the store failed")))]
pub async fn push(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
) -> ApiResult<Json<PushInfo>> {
    Ok(Json(st.engine.push_snapshot(&account, &id).await?))
}

/// The snapshots the caller's account pushed to the remote store, oldest first.
#[utoipa::path(get, operation_id = "listRemoteSnapshots", tag = "remote", path = "/v1/remote/snapshots",
    responses((status = 200, body = Vec<RemoteSnapshotInfo>), (status = 503, body = ErrorBody, description = "no remote configured, or the store failed")))]
pub async fn list(
    State(st): State<AppState>,
    Account(account): Account,
) -> ApiResult<Json<Vec<RemoteSnapshotInfo>>> {
    Ok(Json(st.engine.list_remote_snapshots(&account).await?))
}

/// Pull a pushed snapshot (by id, or by name when one pushed snapshot has it) into this
/// host, as the same id: every chunk is checked against its hash and the snapshot passes
/// every check an import does; a refused pull leaves nothing. Forks of a snapshot this
/// host lacks pull it by themselves.
#[utoipa::path(post, operation_id = "pullRemoteSnapshot", tag = "remote", path = "/v1/remote/snapshots/{id}/pull",
    params(("id" = String, Path, description = "pushed snapshot id or name")),
    responses((status = 201, body = SnapshotInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "conflict: on this host already, or its remote copy is corrupt; limit_exceeded"), (status = 503, body = ErrorBody, description = "unavailable: no remote configured, or the store failed"), (status = 507, body = ErrorBody)))]
pub async fn pull(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<SnapshotInfo>)> {
    let info = st.engine.pull_snapshot(&account, &id).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Delete a pushed snapshot (by id, or by name when one pushed snapshot has it) from the
/// remote store, then the chunks no other pushed snapshot of the account names (those older
/// than cairnd's --remote-gc-grace). Hosts that pulled it keep their copy; this host's
/// snapshot of that id, if any, stays.
#[utoipa::path(delete, operation_id = "deleteRemoteSnapshot", tag = "remote", path = "/v1/remote/snapshots/{id}",
    params(("id" = String, Path, description = "pushed snapshot id or name")),
    responses((status = 200, body = RemoteDeleteInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "conflict: several pushed snapshots have that name"), (status = 503, body = ErrorBody, description = "unavailable: no remote configured, or the store failed")))]
pub async fn delete(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
) -> ApiResult<Json<RemoteDeleteInfo>> {
    Ok(Json(
        st.engine
            .run_to_end(move |e| async move { e.delete_remote_snapshot(&account, &id).await })
            .await?,
    ))
}
