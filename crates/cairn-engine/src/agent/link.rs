//! cairnd's side of one sandbox's agent connection: the socket it listens on in the
//! sandbox's host directory, the one connection it keeps (the agent dials again after a
//! quiesce or a lost connection), and the sessions (channels) frames are routed to.
//!
//! The agent, and anything else in the sandbox, is untrusted: frames are bounded
//! (`cairn_agent::proto::MAX_PAYLOAD`), a connection that does not say a valid hello in time
//! is dropped, and cairnd only ever creates and removes its own socket in the directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};

use cairn_agent::proto::{self, Frame, Kind, Message};
use cairn_types::SandboxId;

/// How long a connection may take to say hello.
const HELLO_WAIT: Duration = Duration::from_secs(5);
/// How long a connection waits for cairnd to make its `init` before going on without.
const INIT_WAIT: Duration = Duration::from_secs(10);

/// The most bytes of data frames (a process's stdin) cairnd holds for the agent: a client
/// that sends faster than the agent takes them (or while it is quiesced for a checkpoint)
/// waits beyond this, instead of growing cairnd's memory.
const QUEUED_MAX: usize = 8 * 1024 * 1024;

/// Where the link stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Listening; the agent has not connected (yet, or again).
    Waiting,
    /// Connected to the agent, which said hello with this version.
    Connected(String),
    /// Not listening: a checkpoint is under way.
    Quiesced,
}

/// What a session hears.
#[derive(Debug)]
pub(crate) enum Event {
    /// A frame on its channel.
    Frame(Frame),
    /// The connection ended without a quiesce: the agent (or the sandbox) went away.
    Lost,
}

/// One sandbox's link to its agent.
pub(crate) struct Link {
    id: SandboxId,
    socket: PathBuf,
    out: mpsc::UnboundedSender<Frame>,
    outbox: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Frame>>>,
    /// Bytes of data frames sent to `out` and not taken from `outbox` yet, and the wake-up
    /// of those waiting for it to go down (see [`QUEUED_MAX`]).
    queued: Arc<(AtomicUsize, tokio::sync::Notify)>,
    sessions: Mutex<HashMap<u32, mpsc::UnboundedSender<Event>>>,
    state: watch::Sender<LinkState>,
    /// The task that accepts and serves connections, while listening.
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set from a quiesce until the next listen: every connection is asked to close (and is
    /// sent nothing else), and the accepting task ends once none is left.
    quiescing: watch::Sender<bool>,
    /// Set when the sandbox ends: the connection is dropped.
    ended: watch::Sender<bool>,
    /// Whether the socket file is this link's (bound and not removed since): only then does
    /// it remove it (a later link of the same sandbox binds the same path).
    bound: std::sync::atomic::AtomicBool,
    /// The `init` every connection starts with (it holds the secrets: never logged); a
    /// connection waits until it is set.
    init: watch::Sender<Option<Message>>,
    /// The agent's answer to the last `init`: `None` until it came; `Err((reason,
    /// message))` when part of it failed.
    init_answer: watch::Sender<Option<Result<(), (String, String)>>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

impl Link {
    /// A link for sandbox `id` whose socket is `dir`/[`proto::SOCKET_NAME`]; not listening yet.
    pub(crate) fn new(id: &SandboxId, dir: &Path) -> Arc<Link> {
        let (out, outbox) = mpsc::unbounded_channel();
        Arc::new(Link {
            id: id.clone(),
            socket: dir.join(proto::SOCKET_NAME),
            out,
            outbox: Arc::new(tokio::sync::Mutex::new(outbox)),
            queued: Arc::new((AtomicUsize::new(0), tokio::sync::Notify::new())),
            sessions: Mutex::new(HashMap::new()),
            state: watch::Sender::new(LinkState::Quiesced),
            accept: Mutex::new(None),
            quiescing: watch::Sender::new(false),
            ended: watch::Sender::new(false),
            bound: false.into(),
            init: watch::Sender::new(None),
            init_answer: watch::Sender::new(None),
        })
    }

    /// The sandbox ended (or is replaced): stops listening, drops the connection and tells
    /// every session it is lost.
    pub(crate) fn end(&self) {
        self.stop_listening();
        self.ended.send_replace(true);
        self.lose_sessions();
    }

    /// Tells every session its connection is lost, and forgets them.
    fn lose_sessions(&self) {
        let sessions: Vec<_> = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (_, tx) in sessions {
            let _ = tx.send(Event::Lost);
        }
    }

    /// Where it stands.
    pub(crate) fn state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    /// Listens (again) on the socket: removes whatever has its name, binds it, and accepts
    /// the agent's connections one at a time.
    pub(crate) fn listen(self: &Arc<Self>) -> std::io::Result<()> {
        self.stop_listening();
        self.quiescing.send_replace(false);
        // Unlinking never follows a symlink the sandbox may have put there.
        match std::fs::remove_file(&self.socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = tokio::net::UnixListener::bind(&self.socket)?;
        self.bound.store(true, Ordering::SeqCst);
        self.state.send_replace(LinkState::Waiting);
        let me = Arc::downgrade(self);
        let mut quiescing = self.quiescing.subscribe();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    biased;
                    () = async { let _ = quiescing.wait_for(|q| *q).await; } => {
                        // The socket is gone: serve (and quiesce) only the connections that
                        // reached it before, then stop.
                        match tokio::time::timeout(Duration::ZERO, listener.accept()).await {
                            Ok(Ok((stream, _))) => stream,
                            _ => return,
                        }
                    }
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let Some(link) = me.upgrade() else { return };
                link.serve(accepted).await;
            }
        });
        *self.accept.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        Ok(())
    }

    /// Stops listening at once, dropping the connection, and removes the socket.
    fn stop_listening(&self) {
        if let Some(task) = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        self.unlink();
    }

    /// Removes the socket file, if it is this link's.
    fn unlink(&self) {
        if self.bound.swap(false, Ordering::SeqCst) {
            let _ = std::fs::remove_file(&self.socket);
        }
    }

    /// Serves one connection until it ends.
    async fn serve(&self, mut stream: UnixStream) {
        let version = match tokio::time::timeout(HELLO_WAIT, read_frame(&mut stream)).await {
            Ok(Ok(Some(f))) => match f.message() {
                Ok(Message::Hello {
                    version, protocol, ..
                }) if protocol == proto::PROTOCOL => version,
                other => {
                    tracing::warn!(sandbox = %self.id, answer = ?other.map(|_| ()), "the agent's connection did not say a valid hello: dropped");
                    return;
                }
            },
            _ => {
                tracing::warn!(sandbox = %self.id, "the agent's connection said no hello in time: dropped");
                return;
            }
        };
        // First of all, what the sandbox should be: its init (once cairnd has made it).
        let mut init = self.init.subscribe();
        let init = match tokio::time::timeout(INIT_WAIT, init.wait_for(Option::is_some)).await {
            Ok(Ok(m)) => m.clone(),
            _ => None,
        };
        if let Some(init) = init {
            self.init_answer.send_replace(None);
            if stream
                .write_all(&Frame::control(proto::CONTROL_CHANNEL, &init).encode())
                .await
                .is_err()
            {
                return;
            }
        }
        tracing::debug!(sandbox = %self.id, version, "agent connected");
        self.state.send_replace(LinkState::Connected(version));
        let (mut reader, mut writer) = stream.into_split();
        let outbox = Arc::clone(&self.outbox);
        let queued = Arc::clone(&self.queued);
        let mut quiescing = self.quiescing.subscribe();
        let write = async move {
            let mut outbox = outbox.lock().await;
            loop {
                let f = tokio::select! {
                    biased;
                    () = async { let _ = quiescing.wait_for(|q| *q).await; } => {
                        // Nothing after the quiesce: what is queued waits for the next connection.
                        let q = Frame::control(proto::CONTROL_CHANNEL, &Message::Quiesce);
                        let _ = writer.write_all(&q.encode()).await;
                        return std::future::pending().await;
                    }
                    f = outbox.recv() => f,
                };
                let Some(f) = f else { return };
                if f.kind != Kind::Control {
                    queued.0.fetch_sub(f.payload.len(), Ordering::SeqCst);
                    queued.1.notify_waiters();
                }
                if writer.write_all(&f.encode()).await.is_err() {
                    return;
                }
            }
        };
        let read = async {
            loop {
                match read_frame(&mut reader).await {
                    Ok(Some(f)) => self.route(f),
                    Ok(None) | Err(_) => return,
                }
            }
        };
        let mut ended = self.ended.subscribe();
        tokio::select! {
            () = write => {}
            () = read => {}
            () = async { let _ = ended.wait_for(|e| *e).await; } => {}
        }
        let quiesced = *self.quiescing.borrow();
        self.state.send_replace(if quiesced {
            LinkState::Quiesced
        } else {
            LinkState::Waiting
        });
        if !quiesced {
            tracing::warn!(sandbox = %self.id, "the agent's connection ended");
            self.lose_sessions();
        }
    }

    fn route(&self, f: Frame) {
        if f.channel == proto::CONTROL_CHANNEL {
            // On the connection's own channel, the agent answers only `init`.
            let answer = match f.message() {
                Ok(Message::Done) => Ok(()),
                Ok(Message::Error { reason, message }) => Err((reason, message)),
                _ => return,
            };
            if let Err((reason, message)) = &answer {
                tracing::warn!(sandbox = %self.id, reason, message, "the agent could not apply all of its init");
            }
            self.init_answer.send_replace(Some(answer));
            return;
        }
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = sessions.get(&f.channel) {
            let _ = tx.send(Event::Frame(f));
        }
    }

    /// A new session: its channel and what it hears.
    pub(crate) fn open(&self) -> (u32, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let mut channel = next_channel();
        while channel == proto::CONTROL_CHANNEL || sessions.contains_key(&channel) {
            channel = next_channel();
        }
        sessions.insert(channel, tx);
        (channel, rx)
    }

    /// Ends session `channel` (what still comes on it is dropped).
    pub(crate) fn close(&self, channel: u32) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&channel);
    }

    /// Sets the `init` every connection starts with from now on (the next one: a connected
    /// agent gets it when it dials again).
    pub(crate) fn set_init(&self, msg: Message) {
        self.init.send_replace(Some(msg));
    }

    /// Waits (at most `limit`) for the agent's answer to an `init` sent since the last
    /// connection; `None` when none came in time.
    pub(crate) async fn init_answered(
        &self,
        limit: Duration,
    ) -> Option<Result<(), (String, String)>> {
        let mut answer = self.init_answer.subscribe();
        let got = tokio::time::timeout(limit, answer.wait_for(Option::is_some)).await;
        got.ok().and_then(|r| r.ok()).and_then(|a| a.clone())
    }

    /// Sends `f` now, or once the agent is connected again.
    pub(crate) fn send(&self, f: Frame) {
        // Counted before it is queued: the writer may take it (and count it off) at once.
        let len = if f.kind == Kind::Control {
            0
        } else {
            f.payload.len()
        };
        self.queued.0.fetch_add(len, Ordering::SeqCst);
        if self.out.send(f).is_err() {
            self.queued.0.fetch_sub(len, Ordering::SeqCst);
        }
    }

    /// Waits until the data frames held for the agent are under [`QUEUED_MAX`] bytes.
    pub(crate) async fn room(&self) {
        loop {
            let notified = self.queued.1.notified();
            if self.queued.0.load(Ordering::SeqCst) < QUEUED_MAX {
                return;
            }
            notified.await;
        }
    }

    /// Sends a control message on `channel`.
    pub(crate) fn control(&self, channel: u32, msg: &Message) {
        self.send(Frame::control(channel, msg));
    }

    /// Sends data on `channel`, in frames of at most [`proto::CHUNK`].
    pub(crate) fn data(&self, kind: Kind, channel: u32, data: &[u8]) {
        for chunk in data.chunks(proto::CHUNK) {
            self.send(Frame::data(kind, channel, chunk.to_vec()));
        }
    }

    /// Before a checkpoint: removes the socket (the agent cannot dial back), asks every
    /// connection to close, and waits (at most `limit`) until the agent closed them all and
    /// no connection is left. False when it did not in time (the connection is then
    /// dropped from this side: the checkpoint may fail).
    pub(crate) async fn quiesce(&self, limit: Duration) -> bool {
        self.quiescing.send_replace(true);
        self.unlink();
        let task = self.accept.lock().unwrap_or_else(|p| p.into_inner()).take();
        let closed = match task {
            Some(mut task) => match tokio::time::timeout(limit, &mut task).await {
                Ok(_) => true,
                Err(_) => {
                    task.abort();
                    false
                }
            },
            None => true,
        };
        self.state.send_replace(LinkState::Quiesced);
        closed
    }
}

/// A channel number no other session of this cairnd used, and unlikely to be one an earlier
/// cairnd used (an agent restored from a checkpoint, or found again after a restart, may
/// still run processes on those): a counter from a random start.
fn next_channel() -> u32 {
    static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
    NEXT.get_or_init(|| AtomicU32::new(rand::random::<u32>() | 1))
        .fetch_add(1, Ordering::Relaxed)
}

/// Reads one frame (bounded) from `r`; `None` at a clean end.
async fn read_frame<R: AsyncReadExt + Unpin>(
    r: &mut R,
) -> Result<Option<Frame>, proto::ProtoError> {
    let mut head = [0u8; proto::HEADER_LEN];
    let mut got = 0;
    while got < head.len() {
        let n = r.read(&mut head[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        got += n;
    }
    let h = proto::Header::parse(&head)?;
    // At most MAX_PAYLOAD (checked by `parse`).
    let mut payload = vec![0u8; h.len as usize];
    r.read_exact(&mut payload).await?;
    Ok(Some(Frame {
        kind: h.kind,
        channel: h.channel,
        payload,
    }))
}
