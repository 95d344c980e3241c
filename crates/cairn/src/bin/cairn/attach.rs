//! `cairn exec -i` / `-it`: an interactive exec over the attach WebSocket.
//! With `-t` and a terminal on stdin, the local terminal goes raw for the
//! duration and its size follows resizes.

use std::io::Write;
use std::os::fd::AsFd;

use anyhow::{bail, Result};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

use cairn_types::api::{AttachControl, AttachRequest, ExecEvent};

use crate::client::{Client, WsStream};

/// Puts the terminal in raw mode and restores it when dropped.
struct RawMode {
    saved: Option<rustix::termios::Termios>,
}

impl RawMode {
    fn enter(enable: bool) -> RawMode {
        let stdin = std::io::stdin();
        if !enable || !rustix::termios::isatty(stdin.as_fd()) {
            return RawMode { saved: None };
        }
        let Ok(saved) = rustix::termios::tcgetattr(stdin.as_fd()) else {
            return RawMode { saved: None };
        };
        let mut raw = saved.clone();
        raw.make_raw();
        let _ =
            rustix::termios::tcsetattr(stdin.as_fd(), rustix::termios::OptionalActions::Now, &raw);
        RawMode { saved: Some(saved) }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin().as_fd(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

fn terminal_size() -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout().as_fd()).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Runs `req` attached; returns the command's exit code.
pub async fn run(
    client: &Client,
    sandbox: &str,
    mut req: AttachRequest,
    json: bool,
) -> Result<i32> {
    if req.tty {
        let (cols, rows) = terminal_size().unwrap_or((80, 24));
        req.cols = Some(cols);
        req.rows = Some(rows);
    }
    let path = format!("/v1/sandboxes/{}/attach", crate::enc(sandbox));
    let tty = req.tty;
    client
        .websocket(&path, move |ws| async move {
            let _raw = RawMode::enter(tty);
            session(ws, req, json).await
        })
        .await
}

async fn session(mut ws: Box<dyn WsStream>, req: AttachRequest, json: bool) -> Result<i32> {
    ws.send(Message::Text(serde_json::to_string(&req)?.into()))
        .await?;
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 8192];
    let mut stdin_open = true;
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let b64 = base64::engine::general_purpose::STANDARD;
    loop {
        // A send can fail because cairnd already answered and closed (e.g. it refused the
        // request): then what it said is waiting to be read, and is the better message.
        let sent = tokio::select! {
            n = stdin.read(&mut buf), if stdin_open => {
                match n {
                    Ok(0) | Err(_) => {
                        stdin_open = false;
                        ws.send(Message::Text(serde_json::to_string(&AttachControl::Eof)?.into())).await
                    }
                    Ok(n) => ws.send(Message::Binary(buf[..n].to_vec().into())).await,
                }
            }
            _ = winch.recv(), if req.tty => {
                match terminal_size() {
                    Some((cols, rows)) => ws.send(Message::Text(serde_json::to_string(&AttachControl::Resize { cols, rows })?.into())).await,
                    None => Ok(()),
                }
            }
            msg = ws.next() => {
                let Some(msg) = msg else { bail!("cairnd closed the attach without an exit code") };
                let Message::Text(text) = msg? else { continue };
                match serde_json::from_str::<ExecEvent>(&text)? {
                    ExecEvent::Stdout { data } => {
                        let data = b64.decode(data)?;
                        crate::output::or_gone(out.write_all(&data).and_then(|()| out.flush()))?;
                    }
                    ExecEvent::Stderr { data } => { err.write_all(&b64.decode(data)?)?; err.flush()?; }
                    ExecEvent::Exit { code, message } => {
                        if let Some(m) = message {
                            if req.tty && !json {
                                // The terminal may still be raw: end lines with CR LF.
                                write!(err, "\r\ncairn: {m}\r\n")?;
                                err.flush()?;
                            } else {
                                crate::failure::report_exit(code, m, json, false);
                            }
                        }
                        return Ok(code);
                    }
                    ExecEvent::Error { message, code } => return Err(crate::failure::stream_error(message, code)),
                    ExecEvent::Started { .. } => bail!("cairnd answered an attach as a detached exec"),
                }
                Ok(())
            }
        };
        if let Err(e) = sent {
            return last_word(&mut ws, json)
                .await
                .unwrap_or_else(|| Err(e.into()));
        }
    }
}

/// After a failed send: the exit code or error cairnd sent before closing, if any.
async fn last_word(ws: &mut Box<dyn WsStream>, json: bool) -> Option<Result<i32>> {
    let read = async {
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else { continue };
            let b64 = base64::engine::general_purpose::STANDARD;
            match serde_json::from_str::<ExecEvent>(&text) {
                Ok(ExecEvent::Stdout { data }) => {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(&b64.decode(data).unwrap_or_default());
                    let _ = out.flush();
                }
                Ok(ExecEvent::Stderr { data }) => {
                    let mut err = std::io::stderr();
                    let _ = err.write_all(&b64.decode(data).unwrap_or_default());
                    let _ = err.flush();
                }
                Ok(ExecEvent::Exit { code, message }) => {
                    if let Some(m) = message {
                        crate::failure::report_exit(code, m, json, false);
                    }
                    return Some(Ok(code));
                }
                Ok(ExecEvent::Error { message, code }) => {
                    return Some(Err(crate::failure::stream_error(message, code)))
                }
                Ok(ExecEvent::Started { .. }) => return None,
                Err(_) => {}
            }
        }
        None
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), read)
        .await
        .ok()
        .flatten()
}
