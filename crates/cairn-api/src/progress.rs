//! Progress streams: a long operation (a batch of forks, an image import or pull, a snapshot
//! import, a stateful snapshot) answers a client that sends `Accept: application/x-ndjson`
//! with `200` and a stream of [`ProgressEvent`] lines: `progress` as the work goes on, then
//! exactly one `result` (the status and body the ordinary answer would have had) or `error`
//! (its status and JSON error). Any other client gets the ordinary answer.
//!
//! The operation runs to its end whatever the client does; a client that reads slowly only
//! misses intermediate reports (the newest of each phase is kept), never the last line.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::{oneshot, Notify};

use cairn_types::api::{ErrorDetail, ProgressEvent};
use cairn_types::{Progress, ProgressSink};

/// The media type of a progress stream.
pub const NDJSON: &str = "application/x-ndjson";

/// Largest final answer a stream carries (a fork batch of 256 sandboxes is far smaller).
const MAX_RESULT_BYTES: usize = 16 << 20;

/// Whether the client asked for a progress stream.
pub fn wants_stream(headers: &HeaderMap) -> bool {
    accepts(headers, NDJSON)
}

/// Whether the request's `Accept` headers name media type `media` (parameters ignored).
pub fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(media))
        })
}

/// Runs `op` with a sink for its reports: streamed as NDJSON when `headers` ask for it, and
/// otherwise answered as `op`'s own response.
pub async fn respond<F, Fut, R>(headers: &HeaderMap, op: F) -> Response
where
    F: FnOnce(ProgressSink) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    if !wants_stream(headers) {
        return op(ProgressSink::none()).await.into_response();
    }
    let reports = Arc::new(Reports::default());
    let sink = {
        let reports = Arc::clone(&reports);
        ProgressSink::new(move |p| reports.push(p))
    };
    let (tx, rx) = oneshot::channel();
    let work = op(sink);
    // The operation is not tied to the stream: it ends even when the client goes away.
    tokio::spawn(async move {
        let _ = tx.send(work.await.into_response());
    });
    let lines = stream::unfold(Some((reports, rx)), |state| async move {
        let (reports, mut rx) = state?;
        loop {
            if let Some(p) = reports.pop() {
                return Some((Ok(line(&ProgressEvent::progress(p))), Some((reports, rx))));
            }
            tokio::select! {
                biased;
                () = reports.notify.notified() => {}
                answer = &mut rx => {
                    // Reports made before the answer still go first, in order.
                    let mut out = Vec::new();
                    while let Some(p) = reports.pop() {
                        out.extend(line(&ProgressEvent::progress(p)));
                    }
                    out.extend(line(&last_event(answer.ok()).await));
                    return Some((Ok::<_, std::io::Error>(out), None));
                }
            }
        }
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, NDJSON),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(lines),
    )
        .into_response()
}

/// One JSON line.
fn line(event: &ProgressEvent) -> Vec<u8> {
    let mut out = serde_json::to_vec(event).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The `result` or `error` event that says what the ordinary answer would have said.
async fn last_event(answer: Option<Response>) -> ProgressEvent {
    let Some(answer) = answer else {
        return internal("the operation's task ended abnormally");
    };
    let status = answer.status();
    let body = match axum::body::to_bytes(answer.into_body(), MAX_RESULT_BYTES).await {
        Ok(b) => b,
        Err(_) => return internal("the operation's answer could not be read"),
    };
    let value: serde_json::Value = if body.is_empty() {
        serde_json::Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return internal("the operation's answer was not JSON"),
        }
    };
    if status.is_success() {
        return ProgressEvent::Result {
            status: status.as_u16(),
            body: value,
        };
    }
    match serde_json::from_value::<cairn_types::api::ErrorBody>(value) {
        Ok(e) => ProgressEvent::Error {
            status: status.as_u16(),
            error: e.error,
        },
        Err(_) => internal("the operation's error was not a JSON error"),
    }
}

/// A 500 event whose detail goes to the log, like [`crate::error::ApiError::internal`].
fn internal(detail: &str) -> ProgressEvent {
    error_event(crate::error::ApiError::internal(&detail))
}

/// The `error` event of an API error: its status and JSON error.
pub(crate) fn error_event(e: crate::error::ApiError) -> ProgressEvent {
    ProgressEvent::Error {
        status: e.status.as_u16(),
        error: ErrorDetail {
            code: e.code.as_str().to_string(),
            message: e.message,
            details: None,
        },
    }
}

/// Reports not yet sent: at most one per phase (a newer one replaces an older one in place),
/// so a slow reader costs memory for the phases only.
#[derive(Default)]
struct Reports {
    pending: Mutex<VecDeque<Progress>>,
    notify: Notify,
}

impl Reports {
    fn push(&self, p: Progress) {
        if let Ok(mut pending) = self.pending.lock() {
            match pending.iter_mut().find(|q| q.phase == p.phase) {
                Some(q) => *q = p,
                None => pending.push_back(p),
            }
        }
        self.notify.notify_one();
    }

    fn pop(&self) -> Option<Progress> {
        self.pending.lock().ok()?.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use axum::Json;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    async fn lines(r: Response) -> Vec<serde_json::Value> {
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        body.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn only_an_ndjson_accept_asks_for_a_stream() {
        assert!(wants_stream(&accept("application/x-ndjson")));
        assert!(wants_stream(&accept(
            "application/json, Application/X-NDJSON; q=0.9"
        )));
        assert!(!wants_stream(&accept("application/json")));
        assert!(!wants_stream(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn a_stream_gives_the_reports_then_the_ordinary_answer() {
        let r = respond(&accept(NDJSON), |sink| async move {
            for i in 1..=3 {
                sink.report(Progress::items("forks", i, Some(3)));
                tokio::task::yield_now().await;
            }
            (StatusCode::CREATED, Json(serde_json::json!({"made": 3})))
        })
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], NDJSON);
        let l = lines(r).await;
        let last = l.last().unwrap();
        assert_eq!(last["type"], "result");
        assert_eq!(last["status"], 201);
        assert_eq!(last["body"]["made"], 3);
        let progress: Vec<_> = l[..l.len() - 1].iter().collect();
        assert!(!progress.is_empty());
        assert!(progress.iter().all(|p| p["type"] == "progress"));
        // Reports may be merged, never reordered, and the newest always arrives.
        let done: Vec<u64> = progress
            .iter()
            .map(|p| p["done"].as_u64().unwrap())
            .collect();
        assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
        assert_eq!(*done.last().unwrap(), 3);
    }

    #[tokio::test]
    async fn an_error_ends_the_stream_with_its_status_and_json_error() {
        let r = respond(&accept(NDJSON), |_| async move {
            crate::error::ApiError::not_found("no snapshot 'x' in your account")
        })
        .await;
        let l = lines(r).await;
        assert_eq!(l.len(), 1);
        assert_eq!(l[0]["type"], "error");
        assert_eq!(l[0]["status"], 404);
        assert_eq!(l[0]["error"]["code"], "not_found");
    }

    #[tokio::test]
    async fn without_the_accept_header_the_answer_is_the_ordinary_one() {
        let r = respond(&HeaderMap::new(), |sink| async move {
            sink.report(Progress::items("forks", 1, Some(1)));
            (StatusCode::CREATED, Json(serde_json::json!({"made": 1})))
        })
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
