//! Serving the [`app`](crate::app) on a listener, so that no client can take cairnd down by
//! holding connections: our own accept loop over hyper's HTTP/1.1 connections, with
//!
//! - a **header timeout**: a connection that sends no request for it (after opening, or after
//!   its previous answer: the keep-alive idle time) or takes longer to finish a request head
//!   is closed;
//! - a **body idle timeout**: a request body that sends nothing for it while it is read is
//!   answered 408 and its connection closed (silence, not duration: slow uploads are fine);
//! - **caps** on open TCP connections, per peer address and in total, and a separate cap on the
//!   unix socket; a connection over a cap gets a 503 naming the cap and is closed at once;
//! - an **open-file budget**: the caps are fitted into RLIMIT_NOFILE (raised to its hard limit
//!   first) so that TCP connections can never take the files the unix socket, the database,
//!   the runtimes and the streams need: the operator's socket always answers.
//!
//! Once a request is being answered nothing here limits how long it runs: an exec stream may
//! be silent for hours, and an attach WebSocket keeps its connection (and its slot under the
//! caps) until it closes. What this module is not for: routes and authentication (the app),
//! per-account quotas (the engine).

mod body;
mod limits;

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustix::net::RecvFlags;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use tower::ServiceExt;

use limits::{Kind, Limits, Slot, Throttle};

/// Default of `--header-timeout`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of `--body-idle-timeout`.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;
/// Default of `--max-connections-per-peer`.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 512;
/// Default of `--max-unix-connections`.
pub const DEFAULT_MAX_UNIX_CONNECTIONS: usize = 1024;

/// At most one log line per this period for refused connections, and one for accept errors.
const LOG_PERIOD: Duration = Duration::from_secs(10);
/// How long the accept loop waits after an error such as EMFILE before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The most a connection buffers: the largest request head (more is answered 431), and the
/// size of body reads. hyper's default (~400 KiB) would let 8192 slow connections hold 3 GiB.
const MAX_CONNECTION_BUFFER: usize = 64 * 1024;

/// How cairnd serves connections: its timeouts and caps. Handlers can read it from the
/// request's extensions (e.g. the attach WebSocket waits for its first message no longer
/// than the header timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServeConfig {
    /// A connection that sends no request for this long (after opening, or after its
    /// previous answer) is closed, and so is one whose request head, once started, is not
    /// complete within this long.
    pub header_timeout: Duration,
    /// A request body that sends nothing for this long while it is read is answered 408 and
    /// its connection closed.
    pub body_idle_timeout: Duration,
    /// TCP connections open at once, in total.
    pub max_connections: usize,
    /// TCP connections open at once from one peer: one IPv4 address, or one IPv6 /64.
    pub max_connections_per_peer: usize,
    /// Unix-socket connections open at once.
    pub max_unix_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_idle_timeout: DEFAULT_BODY_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            max_unix_connections: DEFAULT_MAX_UNIX_CONNECTIONS,
        }
    }
}

impl ServeConfig {
    /// Lowers the caps to fit `nofile` open files (see [`raise_fd_limit`]): TCP connections
    /// get at most half of them, the unix socket an eighth, and the rest stays for the
    /// database, sandboxes, runtimes and streams. Returns a sentence for each cap lowered.
    pub fn fit_fd_limit(&mut self, nofile: u64) -> Vec<String> {
        let ((tcp, per_peer, unix), notes) = limits::fit(
            nofile,
            self.max_connections,
            self.max_connections_per_peer,
            self.max_unix_connections,
        );
        self.max_connections = tcp;
        self.max_connections_per_peer = per_peer;
        self.max_unix_connections = unix;
        notes
    }
}

/// Raises this process's soft open-file limit (RLIMIT_NOFILE) to its hard limit, and returns
/// the soft limit now in force (`u64::MAX` when unlimited).
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (now.current, now.maximum) {
        if soft < hard {
            let raised = Rlimit {
                current: Some(hard),
                maximum: Some(hard),
            };
            if let Err(e) = setrlimit(Resource::Nofile, raised) {
                tracing::warn!(soft, hard, "cannot raise the open-file limit: {e}");
            }
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Serves `app` on a TCP listener until `shutdown` completes, then lets the requests in
/// flight finish.
pub async fn serve_tcp(
    listener: TcpListener,
    app: Router,
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let limits = Limits::new(Kind::Tcp {
        total: cfg.max_connections,
        per_peer: cfg.max_connections_per_peer,
    });
    run(listener, limits, app, cfg, shutdown).await;
}

/// Serves `app` on the unix socket until `shutdown` completes, then lets the requests in
/// flight finish.
pub async fn serve_unix(
    listener: UnixListener,
    app: Router,
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let limits = Limits::new(Kind::Unix {
        total: cfg.max_unix_connections,
    });
    run(listener, limits, app, cfg, shutdown).await;
}

/// A listener the loop accepts from.
trait Listen {
    type Io: Stream;
    /// For log lines.
    const NAME: &'static str;
    fn next(&self) -> impl Future<Output = io::Result<(Self::Io, Option<SocketAddr>)>> + Send;
}

/// A connection's socket.
trait Stream: AsyncRead + AsyncWrite + AsFd + Unpin + Send + Sync + 'static {
    /// Waits for read readiness (which may be reported spuriously).
    fn wait_ready(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Runs `f` and clears the read readiness if it would block.
    fn try_read_io(&self, f: impl FnOnce() -> io::Result<()>) -> io::Result<()>;
    /// Writes what fits without waiting.
    fn write_now(&self, buf: &[u8]) -> io::Result<usize>;
}

/// Waits until the peer has sent a byte (left unread) or closed. A socket's first readiness
/// may be reported before anything arrived, so a byte is peeked at to be sure.
async fn first_byte<S: Stream>(s: &S) -> io::Result<()> {
    loop {
        s.wait_ready().await?;
        let peeked = s.try_read_io(|| {
            let mut byte = [0u8; 1];
            rustix::net::recv(s, &mut byte[..], RecvFlags::PEEK | RecvFlags::DONTWAIT)
                .map(|_| ())
                .map_err(io::Error::from)
        });
        match peeked {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            // Data, the end of the stream, or an error (a reset): hyper takes it from here.
            _ => return Ok(()),
        }
    }
}

impl Listen for TcpListener {
    type Io = TcpStream;
    const NAME: &'static str = "TCP listener";
    async fn next(&self) -> io::Result<(TcpStream, Option<SocketAddr>)> {
        let (s, peer) = TcpListener::accept(self).await?;
        // Small writes (exec output, terminal echo) go out at once.
        let _ = s.set_nodelay(true);
        Ok((s, Some(peer)))
    }
}

impl Listen for UnixListener {
    type Io = UnixStream;
    const NAME: &'static str = "unix socket";
    async fn next(&self) -> io::Result<(UnixStream, Option<SocketAddr>)> {
        let (s, _) = UnixListener::accept(self).await?;
        Ok((s, None))
    }
}

impl Stream for TcpStream {
    fn wait_ready(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.readable()
    }
    fn try_read_io(&self, f: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        self.try_io(Interest::READABLE, f)
    }
    fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_write(buf)
    }
}

impl Stream for UnixStream {
    fn wait_ready(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.readable()
    }
    fn try_read_io(&self, f: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        self.try_io(Interest::READABLE, f)
    }
    fn write_now(&self, buf: &[u8]) -> io::Result<usize> {
        self.try_write(buf)
    }
}

/// Errors of one connection that was already gone when accepted: not the listener's fault.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// The accept loop: admit or refuse each connection, back off on errors, and at shutdown
/// stop accepting, ask every connection to finish its request in flight, and wait for them.
async fn run<L: Listen>(
    listener: L,
    limits: Arc<Limits>,
    app: Router,
    cfg: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `done_rx`; `done_tx.closed()` waits for them all.
    let (done_tx, done_rx) = watch::channel(());
    let refusals = Throttle::new(LOG_PERIOD);
    let accept_errors = Throttle::new(LOG_PERIOD);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            r = listener.next() => r,
            () = &mut shutdown => break,
        };
        match accepted {
            Ok((io, peer)) => match limits.admit(peer.map(|a| a.ip())) {
                Ok(slot) => {
                    let io = Counted { io, _slot: slot };
                    tokio::spawn(connection(
                        io,
                        peer,
                        app.clone(),
                        cfg,
                        stop_rx.clone(),
                        done_rx.clone(),
                    ));
                }
                Err(refusal) => {
                    // A fresh socket's send buffer is empty: the answer fits without waiting.
                    let _ = io.write_now(&refusal.response());
                    drop(io);
                    if let Some(n) = refusals.hit(Instant::now()) {
                        let from =
                            peer.map_or("a local process".to_string(), |p| p.ip().to_string());
                        tracing::warn!(
                            listener = L::NAME,
                            refused = n,
                            "refused {n} connection(s) since the last such line, the latest from {from}: {}",
                            refusal.message()
                        );
                    }
                }
            },
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                if let Some(n) = accept_errors.hit(Instant::now()) {
                    tracing::error!(
                        listener = L::NAME,
                        errors = n,
                        "cannot accept connections ({n} error(s) since the last such line, the latest: {e}); retrying every {} ms",
                        ACCEPT_BACKOFF.as_millis()
                    );
                }
                // EMFILE and the like: the pending connection stays queued, so trying again
                // at once would spin. Wait for files to free up.
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    () = &mut shutdown => break,
                }
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_rx);
    done_tx.closed().await;
}

/// One connection, from its first byte to its close.
async fn connection<S: Stream>(
    io: Counted<S>,
    peer: Option<SocketAddr>,
    app: Router,
    cfg: ServeConfig,
    mut stop: watch::Receiver<bool>,
    _done: watch::Receiver<()>,
) {
    // Wait for the first byte before hyper allocates its buffers and state (boxed, so this
    // task stays small until then): until it speaks, a connection costs its socket and little
    // more.
    let spoke = tokio::select! {
        r = tokio::time::timeout(cfg.header_timeout, first_byte(&io.io)) => matches!(r, Ok(Ok(()))),
        _ = stop.wait_for(|stop| *stop) => false,
    };
    if spoke {
        Box::pin(http(io, peer, app, cfg, stop)).await;
    }
}

/// Serves HTTP/1.1 (and upgrades) on a connection that has spoken.
async fn http<S: Stream>(
    io: Counted<S>,
    peer: Option<SocketAddr>,
    app: Router,
    cfg: ServeConfig,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |req| handle(req, app.clone(), cfg, peer));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .max_buf_size(MAX_CONNECTION_BUFFER);
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!("connection ended: {e}");
            }
            return;
        }
        _ = stop.wait_for(|stop| *stop) => {}
    }
    // Shutting down: finish the request in flight, then close.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// One request: its body gets the idle timeout, and the serving config and the peer's
/// address go into its extensions.
async fn handle(
    req: hyper::Request<Incoming>,
    app: Router,
    cfg: ServeConfig,
    peer: Option<SocketAddr>,
) -> Result<Response, Infallible> {
    let stalled = Arc::new(AtomicBool::new(false));
    let (mut parts, incoming) = req.into_parts();
    parts.extensions.insert(cfg);
    if let Some(addr) = peer {
        parts.extensions.insert(ConnectInfo(addr));
    }
    let body = body::IdleTimeoutBody::new(incoming, cfg.body_idle_timeout, stalled.clone());
    let req = Request::from_parts(parts, Body::new(body));
    let response = match app.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if stalled.load(Ordering::Relaxed) {
        // Whatever the handler made of the failed read, the client learns what happened.
        return Ok(body::stalled_response(cfg.body_idle_timeout));
    }
    Ok(response)
}

/// A connection's socket with its slot under the caps: the slot is given back when the
/// socket closes, also when a WebSocket upgrade carries the socket out of hyper.
struct Counted<S> {
    io: S,
    _slot: Slot,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A silent connection does not wake its task (nor get hyper's buffers); a byte or a close does.
    #[tokio::test]
    async fn first_byte_waits_for_data_or_a_close() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = TcpListener::accept(&l).await.unwrap();
        let wait = Duration::from_millis(300);
        assert!(
            tokio::time::timeout(wait, first_byte(&server))
                .await
                .is_err(),
            "a silent connection must not look readable"
        );
        std::io::Write::write_all(&mut client, b"G").unwrap();
        assert!(tokio::time::timeout(wait, first_byte(&server))
            .await
            .is_ok());
        let mut byte = [0u8; 1];
        assert_eq!(
            server.try_read(&mut byte).unwrap(),
            1,
            "the byte is left for hyper"
        );

        let (a, b) = UnixStream::pair().unwrap();
        assert!(tokio::time::timeout(wait, first_byte(&a)).await.is_err());
        drop(b);
        assert!(tokio::time::timeout(wait, first_byte(&a)).await.is_ok());
    }
}
