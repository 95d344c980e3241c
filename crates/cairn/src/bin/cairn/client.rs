//! A small HTTP/1.1 client for cairnd over its unix socket or TCP.

use std::path::PathBuf;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use cairn_types::api::ErrorBody;

/// Where cairnd is.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` over TCP.
    Tcp(String),
}

impl Endpoint {
    /// Parses `unix:///path`, `/path`, `http://host:port` or `host:port`.
    pub fn parse(s: &str) -> Result<Endpoint> {
        if let Some(p) = s.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(p.into()));
        }
        if s.starts_with('/') {
            return Ok(Endpoint::Unix(s.into()));
        }
        let hostport = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
        if hostport.contains(':') && !hostport.contains('/') {
            return Ok(Endpoint::Tcp(hostport.to_string()));
        }
        Err(CliError::invalid(format!(
            "invalid --host '{s}': use unix:///var/lib/cairn/cairnd.sock or http://127.0.0.1:7421"
        ))
        .into())
    }

    fn describe(&self) -> String {
        match self {
            Endpoint::Unix(p) => format!("unix://{}", p.display()),
            Endpoint::Tcp(a) => format!("http://{a}"),
        }
    }
}

/// The API error a request got, with its HTTP status.
#[derive(Debug)]
pub struct ApiFailure {
    /// HTTP status of the answer.
    #[allow(dead_code)]
    pub status: StatusCode,
    /// Machine-readable error code.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// Structured facts, for some codes.
    pub details: Option<serde_json::Value>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiFailure {}

/// An error of the CLI itself, with its code (see docs/api.md, "The CLI's errors").
#[derive(Debug)]
pub struct CliError {
    /// Machine-readable code.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// Structured facts, for some errors.
    pub details: Option<serde_json::Value>,
}

impl CliError {
    /// An error with `code`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        CliError {
            code: code.to_string(),
            message: message.into(),
            details: None,
        }
    }

    /// `invalid_argument`: a bad flag, argument or local file.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(INVALID_ARGUMENT, message)
    }

    /// `connection_failed`: cairnd could not be reached, or the connection broke.
    pub fn connection(message: impl Into<String>) -> Self {
        Self::new(CONNECTION_FAILED, message)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// A bad flag, argument or local file.
pub const INVALID_ARGUMENT: &str = "invalid_argument";
/// cairnd could not be reached, or the connection broke.
pub const CONNECTION_FAILED: &str = "connection_failed";
/// cairnd answered something this CLI does not understand.
pub const UNEXPECTED_ANSWER: &str = "unexpected_answer";
/// Anything else the CLI could not do (write its output, say).
pub const FAILED: &str = "failed";

/// A request body: whole, or streamed.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A whole body.
pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// A connection factory to cairnd.
pub struct Client {
    endpoint: Endpoint,
    token: Option<String>,
}

impl Client {
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Self {
        Client { endpoint, token }
    }

    /// Whether cairnd is reached over TCP (where host paths cannot be imported: archives are uploaded).
    pub fn is_tcp(&self) -> bool {
        matches!(self.endpoint, Endpoint::Tcp(_))
    }

    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<Body>> {
        let hint = || {
            format!(
                "cannot reach cairnd at {}: is it running? Start it with 'cairnd' (as root), or point --host/CAIRN_HOST at it",
                self.endpoint.describe()
            )
        };
        macro_rules! handshake {
            ($stream:expr) => {{
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new($stream))
                    .await
                    .map_err(|e| CliError::connection(format!("{}: {e}", hint())))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }};
        }
        let unreachable = |e: std::io::Error| CliError::connection(format!("{} ({e})", hint()));
        Ok(match &self.endpoint {
            Endpoint::Unix(p) => handshake!(tokio::net::UnixStream::connect(p)
                .await
                .map_err(unreachable)?),
            Endpoint::Tcp(a) => {
                handshake!(tokio::net::TcpStream::connect(a)
                    .await
                    .map_err(unreachable)?)
            }
        })
    }

    /// Sends a request and returns the raw response (for streaming).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Response<Incoming>> {
        match body {
            Some(v) => {
                let bytes = Bytes::from(serde_json::to_vec(&v)?);
                self.send_body(method, path, Some("application/json"), full(bytes))
                    .await
            }
            None => self.send_body(method, path, None, full(Bytes::new())).await,
        }
    }

    /// Sends a request with any body (e.g. a streamed upload) and returns the raw response;
    /// an error status becomes the API's error.
    pub async fn send_body(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Body,
    ) -> Result<Response<Incoming>> {
        self.send_accepting(method, path, content_type, None, body)
            .await
    }

    /// [`Client::send_body`] asking for the answer's media type (`Accept`).
    pub async fn send_accepting(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: Body,
    ) -> Result<Response<Incoming>> {
        let mut sender = self.connect().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "cairnd");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let resp = sender
            .send_request(req.body(body)?)
            .await
            .map_err(|e| CliError::connection(format!("cairnd closed the connection: {e}")))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError::connection(format!("the connection to cairnd broke: {e}")))?
            .to_bytes();
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => Err(ApiFailure {
                status,
                code: e.error.code,
                message: e.error.message,
                details: e.error.details,
            }
            .into()),
            Err(_) => Err(CliError::new(
                UNEXPECTED_ANSWER,
                format!(
                    "cairnd answered {status}: {}",
                    String::from_utf8_lossy(&bytes).trim()
                ),
            )
            .into()),
        }
    }

    /// Sends a request and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        let resp = self.send(method, path, body).await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CliError::connection(format!("the connection to cairnd broke: {e}")))?
            .to_bytes();
        decode_answer(&bytes)
    }

    /// Sends a request whose answer has no body.
    pub async fn empty(&self, method: Method, path: &str) -> Result<()> {
        self.empty_with(method, path, None).await
    }

    /// A request with a JSON `body` whose answer has no body.
    pub async fn empty_with(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<()> {
        let resp = self.send(method, path, body).await?;
        let _ = resp.into_body().collect().await?;
        Ok(())
    }
}

/// Decodes a successful answer, or says it is not what this CLI expects.
pub fn decode_answer<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        CliError::new(
            UNEXPECTED_ANSWER,
            format!(
                "unexpected answer from cairnd ({e}): {}",
                String::from_utf8_lossy(bytes)
            ),
        )
        .into()
    })
}

impl Client {
    /// Opens a WebSocket to `path` and runs `f` on it.
    pub async fn websocket<F, Fut, T>(&self, path: &str, f: F) -> Result<T>
    where
        F: FnOnce(Box<dyn WsStream>) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://cairnd{path}").into_client_request()?;
        if let Some(t) = &self.token {
            req.headers_mut()
                .insert("authorization", format!("Bearer {t}").parse()?);
        }
        let unreachable = |e: std::io::Error| {
            CliError::connection(format!(
                "cannot reach cairnd at {}: is it running? ({e})",
                self.endpoint.describe()
            ))
        };
        let ws: Box<dyn WsStream> = match &self.endpoint {
            Endpoint::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p)
                    .await
                    .map_err(unreachable)?;
                Box::new(
                    tokio_tungstenite::client_async(req, s)
                        .await
                        .map_err(ws_error)?
                        .0,
                )
            }
            Endpoint::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a)
                    .await
                    .map_err(unreachable)?;
                Box::new(
                    tokio_tungstenite::client_async(req, s)
                        .await
                        .map_err(ws_error)?
                        .0,
                )
            }
        };
        f(ws).await
    }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> anyhow::Error {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(resp) => {
            let body = resp.body().as_deref().unwrap_or_default();
            match serde_json::from_slice::<ErrorBody>(body) {
                Ok(b) => ApiFailure {
                    status: resp.status(),
                    code: b.error.code,
                    message: b.error.message,
                    details: b.error.details,
                }
                .into(),
                Err(_) => CliError::new(
                    UNEXPECTED_ANSWER,
                    format!("cairnd refused the attach: {}", resp.status()),
                )
                .into(),
            }
        }
        other => CliError::connection(format!("attach failed: {other}")).into(),
    }
}

/// A WebSocket to cairnd, over whichever transport.
pub trait WsStream:
    futures_util::Stream<
        Item = Result<
            tokio_tungstenite::tungstenite::Message,
            tokio_tungstenite::tungstenite::Error,
        >,
    > + futures_util::Sink<
        tokio_tungstenite::tungstenite::Message,
        Error = tokio_tungstenite::tungstenite::Error,
    > + Unpin
    + Send
{
}

impl<T> WsStream for T where
    T: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + futures_util::Sink<
            tokio_tungstenite::tungstenite::Message,
            Error = tokio_tungstenite::tungstenite::Error,
        > + Unpin
        + Send
{
}
