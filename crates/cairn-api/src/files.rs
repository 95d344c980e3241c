//! File routes: read, write, list, stat, mkdir, remove and move files of a sandbox, and
//! read those of a snapshot. Bodies stream both ways; a directory travels as a tar stream
//! (`?archive=tar`).
//!
//! A file read answers its bytes as `application/octet-stream` with its kind, size, mode,
//! owner and time in `x-cairn-*` headers; a tar stream is `application/x-tar`. A stream
//! that breaks off after its first byte ends the response without its last chunk, so a
//! client never takes it for complete.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;

use cairn_engine::{Download, FilesOf, WriteOptions};
use cairn_types::api::{ErrorBody, FileEntry, MkdirRequest, MoveRequest};

use crate::handlers::flag;
use crate::json::ApiJson;
use crate::{Account, ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

/// The `path` parameter.
fn path_of(q: &HashMap<String, String>) -> ApiResult<String> {
    q.get("path").cloned().ok_or_else(|| {
        ApiError::invalid(
            "no path given: pass ?path=/absolute/path inside the sandbox (/ for its root)",
        )
    })
}

/// Whether `archive=tar` was asked for.
fn archive_of(q: &HashMap<String, String>) -> ApiResult<bool> {
    match q.get("archive").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("tar") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!(
            "invalid archive '{other}': the only archive format is tar (archive=tar)"
        ))),
    }
}

/// A numeric parameter (`radix` 8 for modes).
fn number(q: &HashMap<String, String>, name: &str, radix: u32, max: u32) -> ApiResult<Option<u32>> {
    let Some(text) = q.get(name) else {
        return Ok(None);
    };
    match u32::from_str_radix(text, radix) {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(ApiError::invalid(if radix == 8 {
            format!("invalid {name} '{text}': give octal permission bits such as 644 or 0755")
        } else {
            format!("invalid {name} '{text}': give a number from 0 to {max}")
        })),
    }
}

/// The answer to a read: the bytes, with what they are in headers.
fn stream(download: Download, archive: bool) -> Response {
    let Download { entry, chunks } = download;
    let body = futures_util::stream::unfold(chunks, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    })
    .map(|chunk| chunk.map(bytes::Bytes::from));
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    let kind = if archive {
        "application/x-tar"
    } else {
        "application/octet-stream"
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        "x-cairn-kind",
        HeaderValue::from_str(&entry.kind).unwrap_or(HeaderValue::from_static("file")),
    );
    for (name, value) in [
        ("x-cairn-size", entry.size.to_string()),
        ("x-cairn-mode", format!("{:04o}", entry.mode)),
        ("x-cairn-uid", entry.uid.to_string()),
        ("x-cairn-gid", entry.gid.to_string()),
        ("x-cairn-mtime", entry.mtime.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

/// Read a sandbox's file (its bytes), or with `archive=tar` a file or directory as a tar stream.
#[utoipa::path(get, operation_id = "readFile", tag = "files", path = "/v1/sandboxes/{id}/files",
    params(("id" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "absolute path inside the sandbox"),
           ("archive" = Option<String>, Query, description = "tar: the file or directory (under its own name) as a tar stream")),
    responses((status = 200, description = "the file's bytes (application/octet-stream; x-cairn-kind, -size, -mode, -uid, -gid, -mtime headers) or a tar stream (application/x-tar)", content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "application/x-tar"))),
              (status = 400, body = ErrorBody, description = "a bad path, or a device node, FIFO or socket"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "a directory without archive=tar, or the sandbox's state")))]
pub async fn read(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let archive = archive_of(&q)?;
    let d = st
        .engine
        .file_read(&account, FilesOf::Sandbox(&id), &path_of(&q)?, archive)
        .await?;
    Ok(stream(d, archive))
}

/// Read a snapshot's file, or with `archive=tar` a file or directory as a tar stream.
#[utoipa::path(get, operation_id = "readSnapshotFile", tag = "files", path = "/v1/snapshots/{id}/files",
    params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME"), ("path" = String, Query, description = "absolute path inside the snapshot"),
           ("archive" = Option<String>, Query, description = "tar: the file or directory as a tar stream")),
    responses((status = 200, description = "the file's bytes or a tar stream", content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "application/x-tar"))), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn read_snapshot(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let archive = archive_of(&q)?;
    let d = st
        .engine
        .file_read(&account, FilesOf::Snapshot(&id), &path_of(&q)?, archive)
        .await?;
    Ok(stream(d, archive))
}

/// What a sandbox's path is (a symlink itself, not its target).
#[utoipa::path(get, operation_id = "statFile", tag = "files", path = "/v1/sandboxes/{id}/files/stat",
    params(("id" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "absolute path")),
    responses((status = 200, body = FileEntry), (status = 404, body = ErrorBody)))]
pub async fn stat(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<FileEntry>> {
    let of = FilesOf::Sandbox(&id);
    Ok(Json(
        st.engine.file_stat(&account, of, &path_of(&q)?).await?,
    ))
}

/// What a snapshot's path is.
#[utoipa::path(get, operation_id = "statSnapshotFile", tag = "files", path = "/v1/snapshots/{id}/files/stat",
    params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME"), ("path" = String, Query, description = "absolute path")),
    responses((status = 200, body = FileEntry), (status = 404, body = ErrorBody)))]
pub async fn stat_snapshot(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<FileEntry>> {
    let of = FilesOf::Snapshot(&id);
    Ok(Json(
        st.engine.file_stat(&account, of, &path_of(&q)?).await?,
    ))
}

/// The `depth` parameter (1 when absent).
fn depth_of(q: &HashMap<String, String>) -> ApiResult<u32> {
    Ok(number(q, "depth", 10, cairn_engine::MAX_LIST_DEPTH)?.unwrap_or(1))
}

/// The entries of a sandbox's directory, `depth` levels deep (default 1); links are not followed.
#[utoipa::path(get, operation_id = "listFiles", tag = "files", path = "/v1/sandboxes/{id}/files/list",
    params(("id" = String, Path, description = "sandbox id or name"), ("path" = Option<String>, Query, description = "absolute path of a directory (default /)"),
           ("depth" = Option<u32>, Query, description = "levels to list, 1 to 64 (default 1)")),
    responses((status = 200, body = Vec<FileEntry>), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<FileEntry>>> {
    let path = q.get("path").map_or("/", String::as_str);
    let depth = depth_of(&q)?;
    let of = FilesOf::Sandbox(&id);
    Ok(Json(st.engine.file_list(&account, of, path, depth).await?))
}

/// The entries of a snapshot's directory.
#[utoipa::path(get, operation_id = "listSnapshotFiles", tag = "files", path = "/v1/snapshots/{id}/files/list",
    params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME"), ("path" = Option<String>, Query, description = "absolute path of a directory (default /)"),
           ("depth" = Option<u32>, Query, description = "levels to list, 1 to 64 (default 1)")),
    responses((status = 200, body = Vec<FileEntry>), (status = 404, body = ErrorBody)))]
pub async fn list_snapshot(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<Vec<FileEntry>>> {
    let path = q.get("path").map_or("/", String::as_str);
    let depth = depth_of(&q)?;
    let of = FilesOf::Snapshot(&id);
    Ok(Json(st.engine.file_list(&account, of, path, depth).await?))
}

/// Write a sandbox's file from the body (streamed; a failed write leaves no partial file),
/// or with `archive=tar` extract a tar stream into a directory. The sandbox must be stopped,
/// or running under runc.
#[utoipa::path(put, operation_id = "writeFile", tag = "files", path = "/v1/sandboxes/{id}/files",
    params(("id" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "absolute path of the file (with archive=tar: of an existing directory)"),
           ("mode" = Option<String>, Query, description = "octal permission bits (default: the replaced file's, else 0644)"),
           ("uid" = Option<u32>, Query, description = "numeric owner (default: the replaced file's, else 0)"),
           ("gid" = Option<u32>, Query, description = "numeric group (default: the replaced file's, else 0)"),
           ("archive" = Option<String>, Query, description = "tar: the body is a tar stream to extract into the directory")),
    request_body(description = "the file's bytes, or with archive=tar a tar stream", content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "application/x-tar"))),
    responses((status = 200, body = FileEntry), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "over the disk limit (limit_exceeded), a directory in the way, or the sandbox's state (paused; running under gVisor)"), (status = 507, body = ErrorBody)))]
pub async fn write(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> ApiResult<Json<FileEntry>> {
    let path = path_of(&q)?;
    let archive = archive_of(&q)?;
    let opts = WriteOptions {
        mode: number(&q, "mode", 8, 0o7777)?,
        uid: number(&q, "uid", 10, u32::MAX)?,
        gid: number(&q, "gid", 10, u32::MAX)?,
    };
    let (reader, drain) = crate::upload::reader(req.into_body());
    let written = st
        .engine
        .file_write(&account, &id, &path, opts, archive, reader)
        .await;
    Ok(Json(drain.settle(written).await?))
}

/// Make a directory in a sandbox (`parents`: missing parents too, and no error when it exists).
#[utoipa::path(post, operation_id = "makeDirectory", tag = "files", path = "/v1/sandboxes/{id}/files/mkdir", params(("id" = String, Path, description = "sandbox id or name")),
    request_body = MkdirRequest,
    responses((status = 201, body = FileEntry), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn mkdir(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MkdirRequest>,
) -> ApiResult<(StatusCode, Json<FileEntry>)> {
    let made = st
        .engine
        .run_to_end(move |e| async move {
            e.file_mkdir(&account, &id, &req.path, req.parents, req.mode)
                .await
        })
        .await?;
    Ok((StatusCode::CREATED, Json(made)))
}

/// Move (rename) a file or directory inside a sandbox.
#[utoipa::path(post, operation_id = "moveFile", tag = "files", path = "/v1/sandboxes/{id}/files/move", params(("id" = String, Path, description = "sandbox id or name")),
    request_body = MoveRequest,
    responses((status = 200, body = FileEntry), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn rename(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<MoveRequest>,
) -> ApiResult<Json<FileEntry>> {
    let moved = st
        .engine
        .run_to_end(move |e| async move { e.file_move(&account, &id, &req.from, &req.to).await })
        .await?;
    Ok(Json(moved))
}

/// Remove a file, link or directory of a sandbox (a non-empty directory needs `recursive`).
#[utoipa::path(delete, operation_id = "removeFile", tag = "files", path = "/v1/sandboxes/{id}/files",
    params(("id" = String, Path, description = "sandbox id or name"), ("path" = String, Query, description = "absolute path"),
           ("recursive" = Option<bool>, Query, description = "remove a directory and everything below it")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let path = path_of(&q)?;
    let recursive = flag(&q, "recursive")?;
    st.engine
        .run_to_end(move |e| async move { e.file_remove(&account, &id, &path, recursive).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
