//! Snapshots that leave the host: the archive download and the import upload.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use futures_util::StreamExt;

use cairn_engine::{ArchiveFormat, ArchivePiece, ArchiveStream, SnapshotGone};
use cairn_types::api::{frames, ErrorBody, ProgressEvent, SnapshotInfo, SnapshotLinkInfo};
use cairn_types::{ErrorCode, Progress, ProgressSink};

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

/// The response that streams an archive; a failure midway, or a writer that ended without
/// saying the archive is whole, cuts the response off (the client sees an incomplete body,
/// never a complete archive).
pub(crate) fn archive_response(
    stream: ArchiveStream,
    format: ArchiveFormat,
    filename: &str,
) -> ApiResult<Response> {
    let body = futures_util::stream::unfold(Some(stream), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Ok(ArchivePiece::Data(chunk))) => Some((Ok(bytes::Bytes::from(chunk)), Some(rx))),
            // Whole: the body ends here.
            Some(Ok(ArchivePiece::Whole)) => None,
            Some(Err(e)) => Some((Err(e), None)),
            None => Some((
                Err(std::io::Error::other(
                    "the archive's writer ended before the archive was whole",
                )),
                None,
            )),
        }
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
/// A client that sends `Accept: application/vnd.cairn.archive-frames` gets the archive
/// in frames between progress reports (docs/api.md, "Archive frames").
#[utoipa::path(get, operation_id = "exportSnapshot", tag = "sharing", path = "/v1/snapshots/{id}/archive",
    params(("id" = String, Path, description = "snapshot id, NAME or SANDBOX:NAME"),
           ("format" = Option<String>, Query, description = "tar.zst (default) or tar.gz")),
    responses((status = 200, description = "the archive, streamed (tar.zst or tar.gz, as asked); a failure midway cuts the body short. Asked for with Accept: application/vnd.cairn.archive-frames, the archive comes in frames (a kind byte 'd' or 'p', a big-endian u32 length, the bytes): 'd' frames hold the archive, 'p' frames a ProgressEvent (progress of phase 'archive', then one result or error)", content((Vec<u8> = "application/zstd"), (Vec<u8> = "application/gzip"), (Vec<u8> = "application/vnd.cairn.archive-frames"))),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "conflict: the snapshot is not ready")))]
pub async fn export(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let format = format_of(&q)?;
    let info = st.engine.inspect_snapshot(&account, &id).await?;
    if !crate::progress::accepts(&headers, frames::ARCHIVE_FRAMES) {
        let stream = st
            .engine
            .export_snapshot(&account, &info.id, format, ProgressSink::none())
            .await?;
        return archive_response(stream, format, &info.id);
    }
    let (report, newest) = tokio::sync::watch::channel(None::<Progress>);
    let sink = ProgressSink::new(move |p| {
        report.send_replace(Some(p));
    });
    let stream = st
        .engine
        .export_snapshot(&account, &info.id, format, sink)
        .await?;
    framed_response(stream, newest, format, &info.id)
}

/// Where a framed export is: sending the archive, or done.
enum Framing {
    Sending {
        rx: ArchiveStream,
        newest: tokio::sync::watch::Receiver<Option<Progress>>,
        sent: u64,
        /// Whether the engine said the archive is whole ([`ArchivePiece::Whole`]).
        whole: bool,
    },
    Done,
}

/// The archive in `d` frames and the newest progress report whenever there is one not
/// sent yet (also while the compressed stream has nothing to send: a tree of zeros); then
/// the last report and a `result` (or, when the export failed midway, an `error`).
fn framed_response(
    stream: ArchiveStream,
    newest: tokio::sync::watch::Receiver<Option<Progress>>,
    format: ArchiveFormat,
    filename: &str,
) -> ApiResult<Response> {
    let start = Framing::Sending {
        rx: stream,
        newest,
        sent: 0,
        whole: false,
    };
    // A report as a frame (none: nothing).
    let frame_of = |p: Option<&Progress>| {
        p.map(|p| frames::event_frame(&ProgressEvent::progress(p.clone())))
            .unwrap_or_default()
    };
    // The newest report as a frame, when not sent yet (also once the export has ended and
    // dropped its sink).
    let report_of = move |newest: &mut tokio::sync::watch::Receiver<Option<Progress>>| {
        let seen = newest.borrow_and_update();
        frame_of(seen.as_ref().filter(|_| seen.has_changed()))
    };
    let body = futures_util::stream::unfold(start, move |state| async move {
        let Framing::Sending {
            mut rx,
            mut newest,
            sent,
            whole,
        } = state
        else {
            return None;
        };
        let item = tokio::select! {
            biased;
            item = rx.recv() => item,
            Ok(()) = newest.changed() => {
                // `changed` marked it seen: it is new.
                let out = frame_of(newest.borrow().as_ref());
                let next = Framing::Sending { rx, newest, sent, whole };
                return Some((vec![Ok(bytes::Bytes::from(out))], next));
            }
        };
        let mut out = report_of(&mut newest);
        let next = match item {
            Some(Ok(ArchivePiece::Whole)) => {
                let next = Framing::Sending {
                    rx,
                    newest,
                    sent,
                    whole: true,
                };
                return Some((vec![Ok(bytes::Bytes::from(out))], next));
            }
            Some(Ok(ArchivePiece::Data(chunk))) => {
                out.extend_from_slice(&frames::frame_header(frames::DATA, chunk.len() as u32));
                let len = chunk.len() as u64;
                // The archive's bytes go out as they are, not copied behind the header.
                let pieces = vec![Ok(bytes::Bytes::from(out)), Ok(bytes::Bytes::from(chunk))];
                let next = Framing::Sending {
                    rx,
                    newest,
                    sent: sent + len,
                    whole,
                };
                return Some((pieces, next));
            }
            Some(Err(e)) => {
                out.extend_from_slice(&frames::event_frame(&failed_midway(&e)));
                Framing::Done
            }
            None if whole => {
                out.extend_from_slice(&frames::event_frame(&ProgressEvent::Result {
                    status: 200,
                    body: serde_json::json!({ "bytes": sent }),
                }));
                Framing::Done
            }
            // The writer ended without saying the archive is whole.
            None => {
                let e = std::io::Error::other(
                    "the archive's writer ended before the archive was whole",
                );
                out.extend_from_slice(&frames::event_frame(&failed_midway(&e)));
                Framing::Done
            }
        };
        Some((vec![Ok(bytes::Bytes::from(out))], next))
    })
    .flat_map(futures_util::stream::iter::<Vec<std::io::Result<bytes::Bytes>>>);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, frames::ARCHIVE_FRAMES)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}.{}\"", format.extension()),
        )
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::internal(&e))
}

/// The `error` event of an export that failed midway: 404 when the snapshot was deleted
/// meanwhile, otherwise a 500 whose detail goes to the log.
fn failed_midway(e: &std::io::Error) -> ProgressEvent {
    crate::progress::error_event(if e.get_ref().is_some_and(|r| r.is::<SnapshotGone>()) {
        ApiError::new(ErrorCode::NotFound, e.to_string())
    } else {
        ApiError::internal(e)
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(bytes: &[u8]) -> std::io::Result<ArchivePiece> {
        Ok(ArchivePiece::Data(bytes.to_vec()))
    }

    /// The frames of an export whose engine stream carried `items`.
    async fn frames_of(items: Vec<std::io::Result<ArchivePiece>>) -> (Vec<u8>, Vec<ProgressEvent>) {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        for item in items {
            tx.send(item).await.expect("send");
        }
        drop(tx);
        let (report, newest) = tokio::sync::watch::channel(None::<Progress>);
        report.send_replace(Some(Progress::bytes("archive", 3, Some(3))));
        drop(report);
        let resp = framed_response(rx, newest, ArchiveFormat::TarZst, "snap-1").expect("response");
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let (mut data, mut events) = (Vec::new(), Vec::new());
        frames::FrameReader::default()
            .read(&body, &mut |piece| {
                match piece {
                    frames::Piece::Data(d) => data.extend_from_slice(d),
                    frames::Piece::Event(e) => events.push(e),
                }
                Ok(())
            })
            .expect("frames");
        (data, events)
    }

    /// The plain body of an export whose engine stream carried `items`, or the error that
    /// cut it off.
    async fn plain_of(items: Vec<std::io::Result<ArchivePiece>>) -> Result<Vec<u8>, String> {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        for item in items {
            tx.send(item).await.expect("send");
        }
        drop(tx);
        let resp = archive_response(rx, ArchiveFormat::TarZst, "snap-1").expect("response");
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn a_plain_body_ends_cleanly_only_for_a_whole_archive() {
        let whole = plain_of(vec![piece(b"ab"), piece(b"c"), Ok(ArchivePiece::Whole)]).await;
        assert_eq!(whole.as_deref(), Ok(&b"abc"[..]));
        // The writer died without a word, or failed: the body is cut off.
        assert!(plain_of(vec![piece(b"abc")]).await.is_err());
        let gone = std::io::Error::other(SnapshotGone);
        assert!(plain_of(vec![piece(b"abc"), Err(gone)]).await.is_err());
    }

    #[tokio::test]
    async fn only_an_archive_the_engine_marked_whole_ends_in_a_result() {
        let (data, events) = frames_of(vec![piece(b"abc"), Ok(ArchivePiece::Whole)]).await;
        assert_eq!(data, b"abc");
        assert!(matches!(
            events.first(),
            Some(ProgressEvent::Progress { done: 3, .. })
        ));
        match events.last() {
            Some(ProgressEvent::Result { status: 200, body }) => assert_eq!(body["bytes"], 3),
            other => panic!("{other:?}"),
        }
        // The writer died without a word: not a result.
        let (_, events) = frames_of(vec![piece(b"abc")]).await;
        assert!(
            matches!(
                events.last(),
                Some(ProgressEvent::Error { status: 500, .. })
            ),
            "{events:?}"
        );
        // The snapshot went: a 404 that says so.
        let gone = std::io::Error::other(SnapshotGone);
        let (_, events) = frames_of(vec![piece(b"abc"), Err(gone)]).await;
        match events.last() {
            Some(ProgressEvent::Error { status: 404, error }) => {
                assert!(error.message.contains("deleted"), "{}", error.message)
            }
            other => panic!("{other:?}"),
        }
    }
}
