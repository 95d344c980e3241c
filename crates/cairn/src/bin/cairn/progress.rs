//! Progress bars fed by cairnd's progress streams: a long operation asked for with
//! `Accept: application/x-ndjson` answers `progress` lines, one bar per phase (determinate
//! when the phase's total is known), then one `result` or `error` line.

use std::collections::HashMap;

use anyhow::Result;
use http_body_util::BodyExt;
use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::de::DeserializeOwned;

use cairn_types::api::ProgressEvent;
use cairn_types::ProgressUnit;

use crate::client::{ApiFailure, CliError, Client, UNEXPECTED_ANSWER};

/// Longest line a progress stream may send (a fork batch's result is the largest).
const MAX_LINE: usize = 16 << 20;

/// Sends a request with the JSON `body` for a progress stream and returns the operation's
/// answer, decoded as `T`; an `error` line becomes the API's error. With `shown` false the
/// bars are not drawn.
pub async fn request<T: DeserializeOwned>(
    client: &Client,
    method: Method,
    path: &str,
    body: &serde_json::Value,
    shown: bool,
) -> Result<T> {
    let body = crate::client::full(bytes::Bytes::from(serde_json::to_vec(body)?));
    let resp = client
        .send_accepting(
            method,
            path,
            Some("application/json"),
            Some("application/x-ndjson"),
            body,
        )
        .await?;
    answer(resp, shown).await
}

/// The operation's answer in `resp` (a progress stream, or a whole answer from a cairnd that
/// does not stream this operation), drawing its bars unless `shown` is false.
pub async fn answer<T: DeserializeOwned>(
    resp: hyper::Response<hyper::body::Incoming>,
    shown: bool,
) -> Result<T> {
    let streamed = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-ndjson"));
    let mut body = resp.into_body();
    if !streamed {
        // A cairnd that does not stream this operation answers it whole.
        let bytes = body
            .collect()
            .await
            .map_err(|e| CliError::connection(format!("the connection to cairnd broke: {e}")))?
            .to_bytes();
        return crate::client::decode_answer(&bytes);
    }
    let mut bars = Bars::new(shown);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            match serde_json::from_slice::<ProgressEvent>(&line[..end]) {
                Ok(ProgressEvent::Progress {
                    phase,
                    done,
                    total,
                    unit,
                }) => bars.show(&phase, done, total, unit),
                Ok(ProgressEvent::Result { body, .. }) => {
                    bars.clear();
                    return serde_json::from_value(body).map_err(|e| {
                        CliError::new(
                            UNEXPECTED_ANSWER,
                            format!("unexpected answer from cairnd: {e}"),
                        )
                        .into()
                    });
                }
                Ok(ProgressEvent::Error { status, error }) => {
                    bars.clear();
                    return Err(failure(status, error).into());
                }
                Err(e) => {
                    bars.clear();
                    return Err(CliError::new(
                        UNEXPECTED_ANSWER,
                        format!(
                            "unexpected line from cairnd ({e}): {}",
                            String::from_utf8_lossy(&line).trim()
                        ),
                    )
                    .into());
                }
            }
        }
        if buf.len() > MAX_LINE {
            bars.clear();
            return Err(CliError::new(UNEXPECTED_ANSWER, "cairnd sent an over-long line").into());
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => {
                bars.clear();
                return Err(CliError::connection(format!(
                    "the connection to cairnd broke: {e} (the operation goes on in cairnd: look for its result with 'cairn ls')"
                ))
                .into());
            }
            None => {
                bars.clear();
                return Err(CliError::connection(
                    "cairnd ended the progress stream without a result (the operation may go on in cairnd: look for it with 'cairn ls')",
                )
                .into());
            }
        }
    }
}

/// The API's error an `error` event carries.
pub fn failure(status: u16, error: cairn_types::api::ErrorDetail) -> ApiFailure {
    ApiFailure {
        status: hyper::StatusCode::from_u16(status)
            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR),
        code: error.code,
        message: error.message,
        details: error.details,
    }
}

/// One bar per phase, drawn on stderr.
struct Bars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl Bars {
    fn new(shown: bool) -> Self {
        let multi = MultiProgress::new();
        if !shown {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        Bars {
            multi,
            bars: HashMap::new(),
        }
    }

    fn show(&mut self, phase: &str, done: u64, total: Option<u64>, unit: ProgressUnit) {
        let bar = self.bars.entry(phase.to_string()).or_insert_with(|| {
            let pb = self.multi.add(ProgressBar::no_length());
            let template = match (unit, total.is_some()) {
                (ProgressUnit::Bytes, true) => {
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}"
                }
                (ProgressUnit::Bytes, false) => "{spinner} {msg} {bytes} {bytes_per_sec} {elapsed}",
                (ProgressUnit::Items, true) => "{msg} [{bar:30}] {pos}/{len} {elapsed}",
                (ProgressUnit::Items, false) => "{spinner} {msg} {pos} {elapsed}",
            };
            pb.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            pb.set_message(phase.to_string());
            pb
        });
        if let Some(t) = total {
            bar.set_length(t);
        }
        bar.set_position(done);
    }

    fn clear(&mut self) {
        for (_, b) in self.bars.drain() {
            b.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}
