//! Where the agent's frames go: the connection to cairnd, or a bounded buffer while there is
//! none (after a quiesce or a lost connection); and the dialing that makes the connection.

use std::collections::VecDeque;
use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use cairn_agent::proto::{self, Frame, Kind, Message, CONTROL_CHANNEL};

/// Bytes of output held while there is no connection; a process writing more waits (as on a
/// full pipe) until cairnd is back.
const BUFFER_MAX: usize = 8 * 1024 * 1024;

/// The first pause between dials, doubled up to [`DIAL_MAX`].
const DIAL_FIRST: Duration = Duration::from_millis(5);
/// The longest pause between dials.
const DIAL_MAX: Duration = Duration::from_millis(50);

/// Where frames go: the connection, or the buffer until there is one.
pub struct Link {
    inner: Mutex<Inner>,
    room: Condvar,
}

struct Inner {
    stream: Option<UnixStream>,
    queue: VecDeque<Frame>,
    queued: usize,
}

impl Link {
    pub(crate) fn new() -> Link {
        Link {
            inner: Mutex::new(Inner {
                stream: None,
                queue: VecDeque::new(),
                queued: 0,
            }),
            room: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `f` now, or holds it until the next connection. Output frames wait while the
    /// buffer is full and there is no connection.
    pub fn send(&self, f: Frame) {
        let mut inner = self.lock();
        if f.kind != Kind::Control {
            while inner.stream.is_none() && inner.queued >= BUFFER_MAX {
                inner = self.room.wait(inner).unwrap_or_else(|p| p.into_inner());
            }
        }
        if inner.stream.is_some() && inner.queue.is_empty() {
            let bytes = f.encode();
            let written = inner.stream.as_mut().map(|s| s.write_all(&bytes));
            if let Some(Ok(())) = written {
                return;
            }
            drop_stream(&mut inner);
        }
        inner.queued += f.payload.len();
        inner.queue.push_back(f);
    }

    /// Takes `stream` as the connection: says hello, sends what was held.
    pub(crate) fn connected(&self, mut stream: UnixStream) -> std::io::Result<()> {
        let mut inner = self.lock();
        let hello = Message::Hello {
            version: proto::VERSION.to_string(),
            protocol: proto::PROTOCOL,
            pid: std::process::id(),
        };
        proto::write_frame(&mut stream, &Frame::control(CONTROL_CHANNEL, &hello))?;
        while let Some(f) = inner.queue.pop_front() {
            inner.queued -= f.payload.len();
            if let Err(e) = proto::write_frame(&mut stream, &f) {
                inner.queued += f.payload.len();
                inner.queue.push_front(f);
                return Err(e);
            }
        }
        inner.stream = Some(stream);
        self.room.notify_all();
        Ok(())
    }

    /// Forgets the connection (it was shut down): frames are held from now on.
    /// Closes its end without a shutdown first: cairnd sees the end only once the last
    /// descriptor is closed, so that nothing of the connection is left when it checkpoints.
    pub(crate) fn disconnected(&self) {
        drop(self.lock().stream.take());
    }
}

fn drop_stream(inner: &mut Inner) {
    if let Some(s) = inner.stream.take() {
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// The path to dial.
pub(crate) fn socket_path() -> String {
    std::env::var("CAIRN_AGENT_SOCKET").unwrap_or_else(|_| proto::SOCKET_PATH.to_string())
}

/// Dials until connected: every 5 ms at first, backing off to every 50 ms.
pub(crate) fn dial(path: &str) -> UnixStream {
    let mut pause = DIAL_FIRST;
    loop {
        if let Ok(s) = UnixStream::connect(path) {
            return s;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(DIAL_MAX);
    }
}
