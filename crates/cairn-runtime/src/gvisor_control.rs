//! Direct calls to a running gVisor sandbox's control server, for the pause window
//! of a snapshot.
//!
//! Each `runsc pause`, `runsc checkpoint` and `runsc resume` is a fresh Go process
//! that loads the container's state file and then makes one call on the sandbox's
//! control socket; the process costs ~25 ms here, three times per stateful
//! snapshot, while the sandbox is paused. Cairn makes the same calls itself:
//! runsc's uRPC protocol (gVisor `pkg/urpc`) is one JSON object each way over the
//! unix stream socket whose path the state file records (`controlSocketPath`),
//! with files passed as `SCM_RIGHTS` beside the request.
//!
//! The calls used are `containerManager.Pause`, `containerManager.Resume` and
//! `containerManager.Checkpoint` (runsc 20240729). When the socket cannot be
//! found or reached, the caller falls back to the `runsc` command.

use std::io::{IoSlice, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Pauses every task of the sandbox's kernel, blocking until they have stopped.
pub(crate) const PAUSE: &str = "containerManager.Pause";
/// Ends the effect of one earlier [`PAUSE`].
pub(crate) const RESUME: &str = "containerManager.Resume";
/// Saves the kernel (memory and processes) into the files passed with the call.
pub(crate) const CHECKPOINT: &str = "containerManager.Checkpoint";

/// The state file a checkpoint writes (runsc's `boot.CheckpointStateFileName`); with
/// compression (runsc's default, `flate-best-speed`) it is the only file, and holds
/// the memory too (checkpoints Cairn took before it wrote a pages file).
pub(crate) const STATE_FILE: &str = "checkpoint.img";
/// The memory of a checkpoint saved with a pages file, and its index (runsc's names).
pub(crate) const PAGES_FILE: &str = "pages.img";
pub(crate) const PAGES_META_FILE: &str = "pages_meta.img";

/// Why a call to the control server failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    /// The socket is not known or not reachable: the caller may use the `runsc` command instead.
    #[error("cannot reach the sandbox's control socket {path}: {source}")]
    Unreachable {
        /// The socket (or the state file naming it).
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Sending the call or reading the answer failed.
    #[error("the call {method} to the sandbox's control server failed: {source}")]
    Io {
        /// The method called.
        method: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// The sandbox answered with an error.
    #[error("the sandbox refused {method}: {message}")]
    Refused {
        /// The method called.
        method: &'static str,
        /// What it said.
        message: String,
    },
}

/// The control socket of container `id` (a Cairn sandbox is one container, whose id is
/// its sandbox's), as runsc recorded it in its state file under `state_root`.
pub(crate) fn socket_path(state_root: &Path, id: &str) -> Result<PathBuf, ControlError> {
    #[derive(Deserialize)]
    struct State {
        sandbox: Sandbox,
    }
    #[derive(Deserialize)]
    struct Sandbox {
        #[serde(rename = "controlSocketPath", default)]
        control_socket_path: String,
    }
    let file = state_root.join(format!("{id}_sandbox:{id}.state"));
    let unreachable = |source| ControlError::Unreachable {
        path: file.clone(),
        source,
    };
    let text = std::fs::read(&file).map_err(unreachable)?;
    let state: State = serde_json::from_slice(&text)
        .map_err(|e| unreachable(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    if state.sandbox.control_socket_path.is_empty() {
        return Err(unreachable(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the state file names no control socket",
        )));
    }
    Ok(PathBuf::from(state.sandbox.control_socket_path))
}

/// Calls `method` with `arg` on the control server at `socket`, passing `files`; waits up
/// to `timeout` for the answer. Blocking: run it on a blocking thread.
pub(crate) fn call(
    socket: &Path,
    method: &'static str,
    arg: serde_json::Value,
    files: &[BorrowedFd<'_>],
    timeout: Duration,
) -> Result<(), ControlError> {
    let stream = connect(socket).map_err(|source| ControlError::Unreachable {
        path: socket.to_path_buf(),
        source,
    })?;
    let io = |source| ControlError::Io { method, source };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = serde_json::json!({ "method": method, "arg": arg });
    let data = serde_json::to_vec(&request)
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
    send(&stream, &data, files).map_err(io)?;
    let reply = receive(&stream).map_err(io)?;
    if reply.success {
        Ok(())
    } else {
        Err(ControlError::Refused {
            method,
            message: reply.err,
        })
    }
}

/// Checkpoints the sandbox at `socket` into `image_dir` (created if needed, must not hold
/// a checkpoint yet), leaving it running — or paused, if it was. The state goes to
/// [`STATE_FILE`] and the memory, uncompressed and page-aligned, to [`PAGES_FILE`] with
/// its [`PAGES_META_FILE`], as `runsc checkpoint --compression=none` writes them: 2-3×
/// faster to write and to restore than one flate stream, and the pool compresses it.
pub(crate) fn checkpoint(socket: &Path, image_dir: &Path) -> Result<(), ControlError> {
    let io = |source| ControlError::Io {
        method: CHECKPOINT,
        source,
    };
    std::fs::create_dir_all(image_dir).map_err(io)?;
    let create = |name: &str| -> Result<OwnedFd, ControlError> {
        Ok(std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(image_dir.join(name))
            .map_err(io)?
            .into())
    };
    let state = create(STATE_FILE)?;
    let meta = create(PAGES_META_FILE)?;
    // A named pipe in the pages file's place (see `cairn_storage::CheckpointStore::receive`) gets the
    // pages streamed into it, from start to end.
    let pages_path = image_dir.join(PAGES_FILE);
    let pages = if std::fs::symlink_metadata(&pages_path).is_ok_and(|m| m.file_type().is_fifo()) {
        open_pipe(&pages_path).map_err(io)?
    } else {
        create(PAGES_FILE)?
    };
    // What `runsc checkpoint --compression=none --leave-running` sends (runsc's control.SaveOpts).
    let arg = serde_json::json!({
        "metadata": { "compression": "none" },
        "MemoryFileSaveOpts": { "ExcludeCommittedZeroPages": false },
        "have_pages_file": true,
        "Resume": true,
    });
    call(
        socket,
        CHECKPOINT,
        arg,
        &[state.as_fd(), meta.as_fd(), pages.as_fd()],
        Duration::from_secs(300),
    )
}

/// Opens the write end of the named pipe at `path` once its reader has opened it (within
/// 5 s: a reader that never comes fails the checkpoint rather than block it forever).
fn open_pipe(path: &Path) -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match rustix::fs::open(
            path,
            OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                // The writer (the sentry) waits for the reader from here on.
                rustix::fs::fcntl_setfl(&fd, OFlags::WRONLY)?;
                return Ok(fd);
            }
            Err(rustix::io::Errno::NXIO) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => {
                return Err(std::io::Error::other(format!(
                    "no reader for the pipe {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

/// Connects to a unix socket, also when its path is longer than `sun_path` holds.
fn connect(socket: &Path) -> std::io::Result<UnixStream> {
    if socket.as_os_str().len() < 100 {
        return UnixStream::connect(socket);
    }
    let fd = rustix::fs::open(socket, rustix::fs::OFlags::PATH, rustix::fs::Mode::empty())?;
    UnixStream::connect(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
}

/// Sends `data`, with `files` attached to its first byte.
fn send(stream: &UnixStream, data: &[u8], files: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
    if !files.is_empty() && !control.push(rustix::net::SendAncillaryMessage::ScmRights(files)) {
        return Err(std::io::Error::other("too many files for one call"));
    }
    let sent = rustix::net::sendmsg(
        stream,
        &[IoSlice::new(data)],
        &mut control,
        rustix::net::SendFlags::NOSIGNAL,
    )?;
    let mut rest = &data[sent..];
    let mut stream = stream;
    while !rest.is_empty() {
        let n = stream.write(rest)?;
        rest = &rest[n..];
    }
    Ok(())
}

/// The server's answer (urpc's `callResult`).
#[derive(Deserialize)]
struct Reply {
    success: bool,
    #[serde(default)]
    err: String,
}

/// Reads one JSON answer from the stream.
fn receive(stream: &UnixStream) -> std::io::Result<Reply> {
    let mut stream = stream;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the sandbox closed the connection without answering",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut values = serde_json::Deserializer::from_slice(&buf).into_iter::<Reply>();
        match values.next() {
            Some(Ok(reply)) => return Ok(reply),
            Some(Err(e)) if e.is_eof() => continue,
            Some(Err(e)) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
            }
            None => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_path_comes_from_runscs_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let state = r#"{"id":"sbx-1","sandbox":{"id":"sbx-1","pid":42,"controlSocketPath":"/run/x/runsc-sbx-1.sock"}}"#;
        std::fs::write(dir.path().join("sbx-1_sandbox:sbx-1.state"), state).unwrap();
        assert_eq!(
            socket_path(dir.path(), "sbx-1").unwrap(),
            PathBuf::from("/run/x/runsc-sbx-1.sock")
        );
        assert!(matches!(
            socket_path(dir.path(), "sbx-2"),
            Err(ControlError::Unreachable { .. })
        ));
    }

    /// A server speaking urpc's framing: one JSON object each way, files beside the request.
    #[test]
    fn a_call_sends_the_method_its_argument_and_files_and_reads_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let mut answers = Vec::new();
            for answer in [
                r#"{"success":true,"err":"","result":null}"#,
                r#"{"success":false,"err":"no such thing","result":null}"#,
            ] {
                let (conn, _) = listener.accept().unwrap();
                let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
                let mut control = rustix::net::RecvAncillaryBuffer::new(&mut space);
                let mut buf = [0u8; 4096];
                let got = rustix::net::recvmsg(
                    &conn,
                    &mut [std::io::IoSliceMut::new(&mut buf)],
                    &mut control,
                    rustix::net::RecvFlags::empty(),
                )
                .unwrap();
                let mut files = 0;
                for msg in control.drain() {
                    if let rustix::net::RecvAncillaryMessage::ScmRights(fds) = msg {
                        files += fds.count();
                    }
                }
                let request: serde_json::Value = serde_json::from_slice(&buf[..got.bytes]).unwrap();
                answers.push((request, files));
                // The answer in two pieces, as a stream may deliver it.
                let (a, b) = answer.split_at(10);
                (&conn).write_all(a.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                (&conn).write_all(b.as_bytes()).unwrap();
            }
            answers
        });
        let file = std::fs::File::open("/dev/null").unwrap();
        call(
            &path,
            PAUSE,
            serde_json::json!({"x": 1}),
            &[file.as_fd()],
            Duration::from_secs(5),
        )
        .unwrap();
        let refused = call(
            &path,
            RESUME,
            serde_json::Value::Null,
            &[],
            Duration::from_secs(5),
        );
        match refused {
            Err(ControlError::Refused { method, message }) => {
                assert_eq!(method, RESUME);
                assert_eq!(message, "no such thing");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let answers = server.join().unwrap();
        assert_eq!(answers[0].0["method"], PAUSE);
        assert_eq!(answers[0].0["arg"]["x"], 1);
        assert_eq!(answers[0].1, 1);
        assert_eq!(answers[1].0["method"], RESUME);
        assert_eq!(answers[1].1, 0);
    }

    #[test]
    fn an_absent_socket_is_unreachable_so_the_caller_can_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        let err = call(
            &dir.path().join("gone.sock"),
            PAUSE,
            serde_json::Value::Null,
            &[],
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(err, ControlError::Unreachable { .. }), "{err}");
    }
}
