//! `GET /v1/sandboxes/{id}/attach` (WebSocket): interactive exec with stdin
//! and, optionally, a terminal. The protocol is in
//! [`cairn_types::api::AttachRequest`].

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use cairn_engine::{ExecInput, ExecIo, ExecOutput};
use cairn_types::api::{AttachControl, AttachRequest, ExecEvent, ExecRequest};

use crate::serve::ServeConfig;
use crate::{Account, ApiError, AppState};

fn event_message(ev: ExecOutput) -> Message {
    text(&crate::handlers::exec_event(ev))
}

fn text(event: &ExecEvent) -> Message {
    Message::Text(serde_json::to_string(event).unwrap_or_default().into())
}

/// Upgrades to a WebSocket and runs one interactive exec over it.
#[utoipa::path(get, operation_id = "attachSandbox", tag = "exec", path = "/v1/sandboxes/{id}/attach", params(("id" = String, Path)),
    responses((status = 101, description = "WebSocket: first message an AttachRequest; then binary stdin and AttachControl text messages; the server sends ExecEvent text messages"),
              (status = 400, description = "invalid_argument: not a WebSocket upgrade request")))]
pub async fn attach(
    State(st): State<AppState>,
    Account(account): Account,
    Path(id): Path<String>,
    serve: Option<Extension<ServeConfig>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Anything but an upgrade gets the API's JSON error, not axum's plain-text one.
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return ApiError::invalid(format!(
                "this path upgrades to a WebSocket ({e}): connect with a WebSocket client"
            ))
            .into_response()
        }
    };
    // The upgraded connection keeps its slot under the connection caps; a client that never
    // sends its attach request must not keep it forever.
    let wait = serve
        .map_or(ServeConfig::default(), |Extension(c)| c)
        .header_timeout;
    ws.on_upgrade(move |socket| run(st, account, id, socket, wait))
}

async fn run(st: AppState, account: String, id: String, mut socket: WebSocket, wait: Duration) {
    let fail = |message: String| event_message(ExecOutput::Error(message));
    let Ok(first) = tokio::time::timeout(wait, socket.recv()).await else {
        let _ = socket
            .send(fail(format!(
                "no attach request within {} s (--header-timeout): send it as the first message",
                wait.as_secs()
            )))
            .await;
        let _ = socket.send(Message::Close(None)).await;
        return;
    };
    let req: AttachRequest = match first {
        Some(Ok(Message::Text(t))) => match serde_json::from_str(&t) {
            Ok(r) => r,
            Err(e) => {
                let _ = socket
                    .send(fail(format!("invalid attach request: {e}")))
                    .await;
                return;
            }
        },
        _ => {
            let _ = socket
                .send(fail(
                    "the first message must be a JSON attach request".into(),
                ))
                .await;
            return;
        }
    };
    let exec_req = ExecRequest {
        cmd: req.cmd,
        env: req.env,
        workdir: req.workdir,
        timeout_secs: req.timeout_secs,
        detach: false,
        started_event: false,
        secret_env: req.secret_env,
        user: None,
    };
    let io = if req.tty {
        ExecIo::Tty {
            cols: req.cols.unwrap_or(80),
            rows: req.rows.unwrap_or(24),
        }
    } else {
        ExecIo::Pipes { stdin: true }
    };
    let mut exec = match st.engine.exec_with(&account, &id, &exec_req, io).await {
        Ok(e) => e,
        Err(e) => {
            // A refusal carries its code, as the API's JSON errors do.
            let e = crate::ApiError::from(e);
            let refused = ExecEvent::Error {
                message: e.message,
                code: Some(e.code.as_str().to_string()),
            };
            let _ = socket.send(text(&refused)).await;
            return;
        }
    };
    loop {
        tokio::select! {
            ev = exec.output.recv() => {
                let Some(ev) = ev else { break };
                let last = matches!(ev, ExecOutput::Exit { .. } | ExecOutput::Error(_));
                if socket.send(event_message(ev)).await.is_err() || last {
                    break;
                }
            }
            msg = socket.recv() => {
                let input = match msg {
                    Some(Ok(Message::Binary(d))) => ExecInput::Data(d.to_vec()),
                    Some(Ok(Message::Text(t))) => match serde_json::from_str::<AttachControl>(&t) {
                        Ok(AttachControl::Resize { cols, rows }) => ExecInput::Resize { cols, rows },
                        Ok(AttachControl::Eof) => ExecInput::Eof,
                        Err(e) => {
                            let _ = socket.send(fail(format!("invalid control message: {e}"))).await;
                            continue;
                        }
                    },
                    Some(Ok(_)) => continue,
                    // The client went away: the command is killed (the engine does that when
                    // its output is dropped), as a streaming exec's is.
                    Some(Err(_)) | None => break,
                };
                // After an `eof`, output keeps streaming until the exit; input is dropped.
                let _ = exec.input.send(input).await;
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
