//! envd's `process.Process/StreamInput`: a client stream (Connect over HTTP/1.1, the request
//! body a sequence of JSON envelopes) that names a running process in its first message and
//! then carries its input, in order, until the body ends.
//!
//! Not for: the unary input calls (`SendInput`, `CloseStdin`, `Update`: see `process`).

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use cairn_engine::ExecInput;

use super::process::{pid_of, Selector};
use super::{envelope, procs, Sandbox};
use crate::AppState;

/// The largest message of the stream (a chunk of input, base64 in JSON).
const MESSAGE_MAX: usize = 4 * 1024 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StreamInputRequest {
    start: Option<StartEvent>,
    data: Option<DataEvent>,
    keepalive: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StartEvent {
    process: Selector,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DataEvent {
    input: std::collections::HashMap<String, String>,
}

/// A failure of the stream: its Connect code and message.
type Failure = (&'static str, String);

fn invalid(message: impl Into<String>) -> Failure {
    ("invalid_argument", message.into())
}

/// The next whole envelope at the front of `buf`: its message and length, if it is all
/// there.
fn next_message(buf: &[u8]) -> Result<Option<(StreamInputRequest, usize)>, Failure> {
    let Some(head) = buf.get(..5) else {
        return Ok(None);
    };
    if head[0] & 1 != 0 {
        return Err(invalid(
            "compressed messages are not supported: send them uncompressed",
        ));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MESSAGE_MAX {
        return Err(invalid(format!(
            "a message of {len} bytes is over the {} MiB a StreamInput message may hold: send the input in smaller chunks",
            MESSAGE_MAX >> 20
        )));
    }
    let Some(raw) = buf.get(5..5 + len) else {
        return Ok(None);
    };
    let msg = serde_json::from_slice(raw)
        .map_err(|e| invalid(format!("not a StreamInputRequest ({e})")))?;
    Ok(Some((msg, 5 + len)))
}

/// Reads the stream and passes the input on: the first message names the process.
async fn pass_on(sandbox: &Sandbox, body: Body) -> Result<(), Failure> {
    let mut chunks = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut to: Option<(u32, mpsc::Sender<ExecInput>)> = None;
    loop {
        while let Some((msg, used)) = next_message(&buf)? {
            buf.drain(..used);
            if let Some(start) = msg.start {
                let pid = pid_of(sandbox, &start.process).map_err(|e| match e.status.as_u16() {
                    400 => invalid(e.message),
                    _ => ("not_found", e.message),
                })?;
                let tx = procs::input(&sandbox.id, pid)
                    .ok_or_else(|| ("not_found", procs::not_running(&sandbox.id, pid).message))?;
                to = Some((pid, tx));
            } else if let Some(data) = msg.data {
                let Some((pid, tx)) = &to else {
                    return Err(invalid(
                        "the first message names the process ({\"start\": {\"process\": {\"pid\": PID}}})",
                    ));
                };
                let text = data
                    .input
                    .get("stdin")
                    .or_else(|| data.input.get("pty"))
                    .ok_or_else(|| {
                        invalid("the input is {\"stdin\": BASE64} or {\"pty\": BASE64}")
                    })?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| invalid(format!("the input is not base64 ({e})")))?;
                tx.send(ExecInput::Data(bytes))
                    .await
                    .map_err(|_| ("not_found", procs::not_running(&sandbox.id, *pid).message))?;
            } else if msg.keepalive.is_none() {
                return Err(invalid(
                    "a StreamInputRequest holds start, data or keepalive",
                ));
            }
        }
        match chunks.next().await {
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(("canceled", format!("the input stream broke off ({e})"))),
            None if buf.is_empty() => return Ok(()),
            None => return Err(invalid("the stream ends inside a message")),
        }
    }
}

/// `StreamInput`: the input of a running process, in order, as one request.
pub(super) async fn stream_input(
    State(_st): State<AppState>,
    sandbox: Sandbox,
    body: Body,
) -> Response {
    let end = match pass_on(&sandbox, body).await {
        Ok(()) => {
            let mut out = envelope(0, &json!({}));
            out.extend(envelope(2, &json!({})));
            out
        }
        Err((code, message)) => envelope(2, &json!({"error": {"code": code, "message": message}})),
    };
    ([(header::CONTENT_TYPE, "application/connect+json")], end).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_messages_are_read_whole_and_bounded() {
        let one = envelope(0, &json!({"data": {"input": {"stdin": "aGk="}}}));
        assert!(next_message(&one[..one.len() - 1]).unwrap().is_none());
        let (msg, used) = next_message(&one).unwrap().unwrap();
        assert_eq!(used, one.len());
        assert_eq!(msg.data.unwrap().input["stdin"], "aGk=");
        assert!(next_message(&[0, 0xff, 0, 0, 0]).is_err());
        assert!(next_message(&[1, 0, 0, 0, 0]).is_err());
        assert!(next_message(&envelope(0, &json!({"bogus": 1}))).is_err());
    }
}
