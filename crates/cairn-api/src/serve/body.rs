//! The request body idle timeout: a body that sends nothing for the timeout *while it is
//! being read* fails, and the request is answered 408 and its connection closed. It measures
//! silence, not duration: a multi-gigabyte upload at any steady speed is fine, and time the
//! handler spends on data it already has (writing it to disk) does not count.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::ApiError;

/// The error a stalled body ends with (handlers see it as a failed body read).
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {0:?}")]
pub(crate) struct BodyStalled(Duration);

/// A request body that fails after `idle` without a frame while it is polled.
pub(crate) struct IdleTimeoutBody {
    inner: Incoming,
    idle: Duration,
    /// Allocated at the first wait, reused after.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether `timer` runs for the current wait.
    waiting: bool,
    /// Set once the body stalled: the request is then answered 408, whatever the handler says.
    stalled: Arc<AtomicBool>,
}

impl IdleTimeoutBody {
    /// Wraps `inner`; `stalled` is set if it ever times out.
    pub(crate) fn new(inner: Incoming, idle: Duration, stalled: Arc<AtomicBool>) -> Self {
        IdleTimeoutBody {
            inner,
            idle,
            timer: None,
            waiting: false,
            stalled,
        }
    }
}

impl Body for IdleTimeoutBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        let this = self.get_mut();
        if this.stalled.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(BodyStalled(this.idle).into())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let deadline = || Instant::now() + idle;
                let timer = match &mut this.timer {
                    Some(t) => {
                        if !this.waiting {
                            t.as_mut().reset(deadline());
                        }
                        t
                    }
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline()))),
                };
                this.waiting = true;
                if timer.as_mut().poll(cx).is_ready() {
                    this.stalled.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(BodyStalled(this.idle).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The answer to a request whose body stalled: 408 `request_timeout`, and the connection
/// closes (the rest of the body will not be read).
pub(crate) fn stalled_response(idle: Duration) -> Response {
    let mut r = ApiError::new(
        cairn_types::ErrorCode::RequestTimeout,
        format!(
            "the request body stopped arriving: nothing came for {} s (--body-idle-timeout); \
             send the whole body, as fast or slow as you like but without long pauses, and a \
             Content-Length that matches it",
            idle.as_secs()
        ),
    )
    .into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}
