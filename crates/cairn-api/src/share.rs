//! Snapshots that leave the host: the archive download and the import upload.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Json;

use cairn_engine::{ArchiveFormat, ArchiveStream};
use cairn_types::api::{ErrorBody, SnapshotInfo, SnapshotLinkInfo};

use crate::{Account, ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

/// The archive format a query asks for (`format=tar.zst|tar.gz`, default `tar.zst`).
pub(crate) fn format_of(q: &HashMap<String, String>) -> ApiResult<ArchiveFormat> {
    match q.get("format") {
        None => Ok(ArchiveFormat::TarZst),
        Some(f) => ArchiveFormat::parse(f).ok_or_else(|| {
            ApiError::invalid(format!(
                "unknown archive format '{}': use tar.zst or tar.gz",
                f.chars().take(40).collect::<String>()
            ))
        }),
    }
}

/// The response that streams an archive; a failure midway cuts the response off (the
/// client sees an incomplete body, never a complete archive).
pub(crate) fn archive_response(
    stream: ArchiveStream,
    format: ArchiveFormat,
    filename: &str,
) -> ApiResult<Response> {
    let body = futures_util::stream::unfold(stream, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map(bytes::Bytes::from), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, format.content_type())
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}.{}\"", format.extension()),
        )
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::internal(&e))
}

/// Download a ready snapshot as one archive (tar compressed with zstd or gzip: manifest,
/// root filesystem, memory checkpoint, checksums). Streamed; 409 when it is not ready.
#[utoipa::path(get, operation_id = "exportSnapshot", tag = "sharing", path = "/v1/snapshots/{id}/archive",
    params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME"),
           ("format" = Option<String>, Query, description = "tar.zst (default) or tar.gz")),
    responses((status = 200, description = "the archive, streamed (tar.zst or tar.gz, as asked); a failure midway cuts the body short", content((Vec<u8> = "application/zstd"), (Vec<u8> = "application/gzip"))),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "conflict: the snapshot is not ready")))]
pub async fn export(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let format = format_of(&q)?;
    let info = st.engine.inspect_snapshot(&account, &id).await?;
    let stream = st
        .engine
        .export_snapshot(&account, &info.id, format)
        .await?;
    archive_response(stream, format, &info.id)
}

/// Import a snapshot archive (as `GET /v1/snapshots/{id}/archive` writes it) sent as the
/// request body; `?name=` names it (default: the name it had). Refused with a 4xx naming
/// the problem, leaving nothing behind, when the archive is truncated, corrupt, over a
/// limit, or holds unsafe entries.
#[utoipa::path(post, operation_id = "importSnapshot", tag = "sharing", path = "/v1/snapshots",
    params(("name" = Option<String>, Query, description = "name of the imported snapshot")),
    request_body(content((Vec<u8> = "application/zstd"), (Vec<u8> = "application/gzip"), (Vec<u8> = "application/octet-stream"))),
    responses((status = 201, body = SnapshotInfo), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "conflict: the name or id is taken; limit_exceeded: a limit reached"), (status = 413, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn import(
    State(st): State<AppState>,
    Account(account): Account,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> ApiResult<(StatusCode, Json<SnapshotInfo>)> {
    let (reader, drain) = crate::upload::reader(req.into_body());
    let imported = st
        .engine
        .import_snapshot(&account, q.get("name").map(String::as_str), reader)
        .await;
    let info = drain.settle(imported).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// A signed link that downloads the snapshot's archive with no token (`curl -fO URL`),
/// served on cairnd's TCP listener until it expires (default and most: 1 hour, see
/// `cairnd --max-link-expiry`). With `store=true` and a remote store, the link is instead
/// the store's pre-signed URL of the archive (uploaded there once per snapshot and format),
/// so the download does not pass through cairnd; deleting the snapshot deletes it.
#[utoipa::path(post, operation_id = "createSnapshotLink", tag = "sharing", path = "/v1/snapshots/{id}/link",
    params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME"),
           ("expires" = Option<String>, Query, description = "how long it works (90s, 30m, 1h; default and most: cairnd's maximum, 1h)"),
           ("format" = Option<String>, Query, description = "tar.zst (default) or tar.gz"),
           ("store" = Option<bool>, Query, description = "a pre-signed URL of the remote store instead (cairnd --remote): the archive is uploaded there once, and curl fetches it from the store")),
    responses((status = 201, body = SnapshotLinkInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody, description = "cairnd has no TCP listener (or, with store, no remote), or the store failed")))]
pub async fn link(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<(StatusCode, Json<SnapshotLinkInfo>)> {
    let format = format_of(&q)?;
    let secs = q
        .get("expires")
        .map(|e| cairn_types::parse_duration(e))
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let link = if crate::handlers::flag(&q, "store")? {
        st.engine
            .run_to_end(move |e| async move { e.store_link(&account, &id, secs, format).await })
            .await?
    } else {
        st.engine.snapshot_link(&account, &id, secs, format).await?
    };
    Ok((
        StatusCode::CREATED,
        Json(SnapshotLinkInfo {
            url: link.url,
            expires_at: link.expires_at,
        }),
    ))
}

/// Download a snapshot's archive through a signed link: no token. 403 when the link is
/// altered or expired, 403 or 404 once its snapshot is deleted; no answer names it.
#[utoipa::path(get, operation_id = "downloadSnapshotLink", tag = "sharing", path = "/v1/links/{token}", params(("token" = String, Path, description = "the signed part of the link")),
    responses((status = 200, description = "the archive, streamed (tar.zst or tar.gz, as the link says)", content((Vec<u8> = "application/zstd"), (Vec<u8> = "application/gzip"))),
              (status = 403, body = ErrorBody, description = "forbidden: the link is altered or expired"), (status = 404, body = ErrorBody)))]
pub async fn download(
    State(st): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let (stream, format, id) = st.engine.open_link(&token).await?;
    archive_response(stream, format, &id)
}
