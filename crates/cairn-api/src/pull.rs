//! Image pulls from OCI registries: `POST /v1/images/pull`, for any account (the image is
//! the caller's). Where cairnd may connect is the operator's (`cairnd --insecure-registry`,
//! `--registry-allow-private`), whoever asks.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;

use cairn_types::api::{ErrorBody, ImageInfo, PullImageRequest, RegistryLoginRequest};

use crate::auth::Caller;
use crate::handlers::principal;
use crate::json::ApiJson;
use crate::{progress, Account, ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

/// Pull an image from an OCI distribution registry (`host[:port]/repository[:tag|@digest]`;
/// Docker Hub's short forms too) as an image of the caller's account. Only the layers this
/// host's blob cache lacks are downloaded; every blob is checked against its digest, and
/// the layers are unpacked with the same safety as an archive import. A failed pull leaves
/// no image behind. The answer's `pull` says what was downloaded.
///
/// With `Accept: application/x-ndjson` the answer is a 200 progress stream instead, one
/// `ProgressEvent` per line: `progress` lines of phase `layer sha256:<12 hex>` (bytes
/// downloaded of the layer's size) for each layer downloaded, then one `result` (status 201
/// and the image) or `error` (the status and error listed here).
#[utoipa::path(post, operation_id = "pullImage", tag = "images", path = "/v1/images/pull",
    request_body = PullImageRequest,
    responses((status = 201, body = ImageInfo),
              (status = 400, body = ErrorBody, description = "not a reference, or the registry serves an invalid image"),
              (status = 403, body = ErrorBody, description = "forbidden: the registry wants credentials or refused them, or the operator does not allow reaching it"),
              (status = 404, body = ErrorBody, description = "no such tag or repository in the registry"),
              (status = 409, body = ErrorBody, description = "conflict: the name is taken"),
              (status = 413, body = ErrorBody), (status = 503, body = ErrorBody, description = "the registry cannot be reached, or stopped answering"),
              (status = 507, body = ErrorBody)))]
pub async fn pull(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PullImageRequest>,
) -> Response {
    progress::respond(&headers, move |sink| async move {
        let info = st
            .engine
            .pull_image(
                principal(&caller),
                &body.reference,
                body.name.as_deref(),
                sink,
            )
            .await?;
        Ok::<_, ApiError>((StatusCode::CREATED, Json(info)))
    })
    .await
}

/// `DELETE /v1/images/pull`: the image named `pull` (the pull route's path hides it from
/// `DELETE /v1/images/{name}`).
pub async fn remove_named_pull(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<StatusCode> {
    st.engine
        .run_to_end(move |e| async move { e.remove_image(principal(&caller), "pull").await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Keep credentials for a registry (`host[:port]`) for the caller's account: its pulls from
/// that registry use them (HTTP basic, or to get a bearer token). They are sealed at rest
/// and never returned; logging in again replaces them.
#[utoipa::path(post, operation_id = "registryLogin", tag = "images", path = "/v1/registries/login",
    request_body = RegistryLoginRequest,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn login(
    State(st): State<AppState>,
    Account(account): Account,
    ApiJson(body): ApiJson<RegistryLoginRequest>,
) -> ApiResult<StatusCode> {
    st.engine
        .registry_login(&account, &body.host, &body.username, &body.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forget the caller's credentials for a registry.
#[utoipa::path(delete, operation_id = "registryLogout", tag = "images", path = "/v1/registries/{host}",
    params(("host" = String, Path, description = "the registry, host[:port]")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "not logged in to it")))]
pub async fn logout(
    State(st): State<AppState>,
    Account(account): Account,
    Path(host): Path<String>,
) -> ApiResult<StatusCode> {
    st.engine.registry_logout(&account, &host).await?;
    Ok(StatusCode::NO_CONTENT)
}
