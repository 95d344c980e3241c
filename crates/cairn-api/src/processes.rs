//! A running sandbox's processes: list them, signal one (through its agent).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use cairn_types::api::{ProcessInfo, SignalRequest};

use crate::json::ApiJson;
use crate::{Account, ApiError, AppState};

/// The processes of a running sandbox.
#[utoipa::path(get, operation_id = "listProcesses", tag = "exec", path = "/v1/sandboxes/{id}/processes", params(("id" = String, Path)),
    responses((status = 200, body = Vec<ProcessInfo>), (status = 404, body = cairn_types::api::ErrorBody),
              (status = 409, body = cairn_types::api::ErrorBody), (status = 503, body = cairn_types::api::ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
) -> Result<Json<Vec<ProcessInfo>>, ApiError> {
    Ok(Json(st.engine.processes(&account, &id).await?))
}

/// Send a signal to a process of a running sandbox (TERM unless the body names another).
#[utoipa::path(post, operation_id = "signalProcess", tag = "exec", path = "/v1/sandboxes/{id}/processes/{pid}/signal", request_body = SignalRequest,
    params(("id" = String, Path), ("pid" = u32, Path)),
    responses((status = 204), (status = 400, body = cairn_types::api::ErrorBody),
              (status = 404, body = cairn_types::api::ErrorBody), (status = 409, body = cairn_types::api::ErrorBody)))]
pub async fn signal(
    State(st): State<AppState>,
    Account(account): Account,
    Path((id, pid)): Path<(String, u32)>,
    ApiJson(req): ApiJson<SignalRequest>,
) -> Result<StatusCode, ApiError> {
    st.engine
        .signal_process(&account, &id, pid, req.signal.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
