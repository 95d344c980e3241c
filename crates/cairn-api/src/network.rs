//! The caller's account network settings: whether its `nat` sandboxes reach each other.

use axum::extract::State;
use axum::Json;

use cairn_types::api::{AccountNetwork, UpdateAccountNetwork};

use crate::json::ApiJson;
use crate::{Account, ApiError, AppState};

/// The caller's account network settings.
#[utoipa::path(get, operation_id = "getAccountNetwork", tag = "account", path = "/v1/account/network",
    responses((status = 200, body = AccountNetwork), (status = 401, body = cairn_types::api::ErrorBody)))]
pub async fn get_network(
    State(st): State<AppState>,
    Account(account): Account,
) -> Result<Json<AccountNetwork>, ApiError> {
    let sandbox_to_sandbox = st.engine.sandbox_to_sandbox(&account).await?;
    Ok(Json(AccountNetwork {
        account,
        sandbox_to_sandbox,
    }))
}

/// Let the caller's `nat` sandboxes reach each other, or stop them; applies at once to the
/// running ones.
#[utoipa::path(put, operation_id = "updateAccountNetwork", tag = "account", path = "/v1/account/network", request_body = UpdateAccountNetwork,
    responses((status = 200, body = AccountNetwork), (status = 400, body = cairn_types::api::ErrorBody),
              (status = 401, body = cairn_types::api::ErrorBody)))]
pub async fn put_network(
    State(st): State<AppState>,
    Account(account): Account,
    ApiJson(req): ApiJson<UpdateAccountNetwork>,
) -> Result<Json<AccountNetwork>, ApiError> {
    let who = account.clone();
    let sandbox_to_sandbox = st
        .engine
        .run_to_end(
            move |e| async move { e.set_sandbox_to_sandbox(&who, req.sandbox_to_sandbox).await },
        )
        .await?;
    Ok(Json(AccountNetwork {
        account,
        sandbox_to_sandbox,
    }))
}
