//! One `tracing` span per request: every event logged while a request is handled (the
//! engine's included) carries its number, method and path, instead of each event
//! repeating them. The end of each request is logged at debug level with its status and
//! duration.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// Numbers requests in the order they arrive (per process).
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Runs the rest of the stack inside a `request` span.
pub(crate) async fn span(request: Request, next: Next) -> Response {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // The path only, never the query: a query may carry an image name or a snapshot
    // reference, which the handler logs itself where it matters.
    let span = tracing::info_span!(
        "request",
        n,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = Instant::now();
    async move {
        let response = next.run(request).await;
        tracing::debug!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_millis(),
            "answered"
        );
        response
    }
    .instrument(span)
    .await
}
