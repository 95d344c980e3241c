//! Changes to the files of a running sandbox whose kernel caches them (gVisor): the host
//! cannot write underneath the sandbox's kernel, which would not see the change, so they go
//! through the sandbox's agent (`cairn_agent::proto`'s file operations), which makes them
//! inside the sandbox.
//!
//! The same rules as on the host hold: paths are checked here (`path`), tar streams are read
//! and checked here (names, link targets, entry types; `archive_in`'s helpers) and only the
//! resulting operations are sent; the agent does not enter another mounted filesystem and
//! answers with errno values that `fd::fail` words as the host's own. A file's bytes go in
//! data frames, at most `PUT_WINDOW` bytes ahead of what the agent says it wrote.
//!
//! Everything here blocks (it runs beside the tar reader on a blocking thread): each wait
//! for the agent is a `block_on` of the engine's runtime, bounded by [`ANSWER_WAIT`].

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use rustix::io::Errno;
use tokio::sync::mpsc;

use cairn_agent::proto::{FileStat, Kind, Message, PUT_WINDOW};
use cairn_types::api::FileEntry;
use cairn_types::SandboxId;

use super::archive_in::{not_a_file_link, walk_tar, Item, What};
use super::fd::{fail, WriteOptions, CHUNK};
use super::path::TreePath;
use crate::agent::link::{Event, Link};
use crate::EngineError;

/// How long the agent may take to answer one step (a file operation, a window of bytes).
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// A running sandbox's files, changed through its agent.
pub(crate) struct LiveFiles {
    pub(crate) id: SandboxId,
    pub(crate) link: Arc<Link>,
    pub(crate) rt: tokio::runtime::Handle,
}

/// One operation's channel to the agent (closed when dropped).
struct Session<'a> {
    files: &'a LiveFiles,
    channel: u32,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.files.link.close(self.channel);
    }
}

impl Session<'_> {
    fn gone(&self) -> EngineError {
        EngineError::Unavailable(format!(
            "the agent of sandbox {} went away during the file operation: try again",
            self.files.id
        ))
    }

    /// The agent's next answer on this channel.
    fn next(&mut self) -> Result<Message, EngineError> {
        let events = &mut self.events;
        let got = self.files.rt.block_on(async {
            tokio::time::timeout(ANSWER_WAIT, async {
                loop {
                    match events.recv().await {
                        Some(Event::Frame(f)) => {
                            if let Ok(m) = f.message() {
                                return Some(m);
                            }
                        }
                        Some(Event::Lost) | None => return None,
                    }
                }
            })
            .await
        });
        match got {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(self.gone()),
            Err(_) => Err(EngineError::Unavailable(format!(
                "the agent of sandbox {} did not answer within {} s: try again",
                self.files.id,
                ANSWER_WAIT.as_secs()
            ))),
        }
    }

    /// An answer already there, without waiting.
    fn ready(&mut self) -> Option<Message> {
        while let Ok(event) = self.events.try_recv() {
            match event {
                Event::Frame(f) => {
                    if let Ok(m) = f.message() {
                        return Some(m);
                    }
                }
                Event::Lost => return None,
            }
        }
        None
    }
}

/// The answer `m` to an operation on `shown`: its entry, done, or its error in the host's
/// words.
fn answer(shown: &str, m: Message, id: &SandboxId) -> Result<Option<FileEntry>, EngineError> {
    match m {
        Message::Entry(st) => Ok(Some(entry(shown, st))),
        Message::Done => Ok(None),
        Message::FileError { errno } => Err(fail(shown, Errno::from_raw_os_error(errno))),
        _ => Err(EngineError::Unavailable(format!(
            "the agent of sandbox {id} answered a file operation with something else: try again"
        ))),
    }
}

fn entry(shown: &str, st: FileStat) -> FileEntry {
    FileEntry {
        path: shown.to_string(),
        kind: st.kind,
        size: st.size,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        mtime: st.mtime,
        target: st.target,
    }
}

impl LiveFiles {
    fn session(&self) -> Session<'_> {
        let (channel, events) = self.link.open();
        Session {
            files: self,
            channel,
            events,
        }
    }

    /// Sends `msg` and waits for its answer.
    fn ask(&self, shown: &str, msg: &Message) -> Result<Option<FileEntry>, EngineError> {
        let mut s = self.session();
        self.link.control(s.channel, msg);
        let m = s.next()?;
        answer(shown, m, &self.id)
    }

    /// Sends `msg`, whose answer is an entry.
    fn ask_entry(&self, shown: &str, msg: &Message) -> Result<FileEntry, EngineError> {
        self.ask(shown, msg)?.ok_or_else(|| {
            EngineError::Unavailable(format!(
                "the agent of sandbox {} did not say what {shown} is: try again",
                self.id
            ))
        })
    }

    /// What `path` is.
    pub(crate) fn stat(&self, path: &TreePath) -> Result<FileEntry, EngineError> {
        self.ask_entry(
            path.shown(),
            &Message::Stat {
                path: path.absolute(),
            },
        )
    }

    /// `mkdir` (with `parents`, `mkdir -p`).
    pub(crate) fn mkdir(
        &self,
        path: &TreePath,
        parents: bool,
        mode: u32,
    ) -> Result<FileEntry, EngineError> {
        if !(parents && path.is_root()) {
            path.split()?;
        }
        self.ask_entry(
            path.shown(),
            &Message::Mkdir {
                path: path.absolute(),
                parents,
                mode: mode & 0o7777,
                uid: None,
                gid: None,
            },
        )
    }

    /// Removes `path` (a directory's contents too with `recursive`).
    pub(crate) fn remove(&self, path: &TreePath, recursive: bool) -> Result<(), EngineError> {
        path.split()?;
        self.ask(
            path.shown(),
            &Message::Remove {
                path: path.absolute(),
                recursive,
            },
        )
        .map(drop)
    }

    /// Moves `from` to `to`.
    pub(crate) fn rename(&self, from: &TreePath, to: &TreePath) -> Result<FileEntry, EngineError> {
        from.split()?;
        to.split()?;
        let msg = Message::Rename {
            from: from.absolute(),
            to: to.absolute(),
        };
        match self.ask_entry(to.shown(), &msg) {
            // A missing source is named as such, as on the host.
            Err(EngineError::NotFound(_)) => Err(fail(from.shown(), Errno::NOENT)),
            other => other,
        }
    }

    /// Writes `body` to file `path`.
    pub(crate) fn write(
        &self,
        path: &TreePath,
        opts: WriteOptions,
        body: &mut dyn Read,
        sync: bool,
    ) -> Result<FileEntry, EngineError> {
        let shown = path.shown();
        path.split()?;
        let mut s = self.session();
        self.link.control(
            s.channel,
            &Message::PutFile {
                path: path.absolute(),
                mode: opts.mode.map(|m| m & 0o7777),
                uid: opts.uid,
                gid: opts.gid,
                sync,
            },
        );
        let (mut sent, mut acked) = (0u64, 0u64);
        let mut buf = vec![0u8; CHUNK];
        loop {
            // The agent may have refused already (no such directory, a full disk).
            if let Some(m) = s.ready() {
                match m {
                    Message::Written { bytes } => acked = acked.max(bytes),
                    other => return self.settle(shown, other),
                }
            }
            while sent.saturating_sub(acked) >= PUT_WINDOW {
                match s.next()? {
                    Message::Written { bytes } => acked = acked.max(bytes),
                    other => return self.settle(shown, other),
                }
            }
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Closing the session without `close-stdin` leaves the agent's temporary
                    // file until its connection ends; removing it now is kinder.
                    self.link.control(s.channel, &Message::Cancel);
                    return Err(EngineError::InvalidArgument(format!(
                        "the upload of {shown} broke off ({e}): nothing was written"
                    )));
                }
            };
            self.link.data(Kind::Stdin, s.channel, &buf[..n]);
            sent += n as u64;
        }
        self.link.control(s.channel, &Message::CloseStdin);
        loop {
            match s.next()? {
                Message::Written { .. } => {}
                other => return self.settle(shown, other),
            }
        }
    }

    /// The final answer of a `put-file`.
    fn settle(&self, shown: &str, m: Message) -> Result<FileEntry, EngineError> {
        answer(shown, m, &self.id)?.ok_or_else(|| {
            EngineError::Unavailable(format!(
                "the agent of sandbox {} did not say what {shown} is: try again",
                self.id
            ))
        })
    }

    /// Extracts the tar stream `body` into directory `path`, with the host's checks
    /// (`archive_in`). Returns the entries written.
    pub(crate) fn tar_in(&self, path: &TreePath, body: &mut dyn Read) -> Result<u64, EngineError> {
        let target = self.stat(path)?;
        if target.kind != "directory" {
            return Err(EngineError::InvalidArgument(format!(
                "{} is not a directory: a tar stream is extracted into a directory (make it with mkdir)",
                path.shown()
            )));
        }
        // The directories known to be there: one `mkdir -p` each, not one per entry.
        let mut made = std::collections::HashSet::new();
        walk_tar(path, body, |item, data| {
            let Item {
                shown,
                full,
                parent,
                mode,
                uid,
                gid,
                what,
            } = item;
            if !made.contains(&parent) {
                self.mkdir(&TreePath::parse(&format!("/{parent}"))?, true, 0o755)?;
                made.insert(parent);
            }
            match what {
                What::Dir => {
                    made.insert(full.relative());
                    self.ask(
                        &shown,
                        &Message::Mkdir {
                            path: full.absolute(),
                            parents: true,
                            mode,
                            uid,
                            gid,
                        },
                    )
                    .map(drop)
                }
                What::File => {
                    let opts = WriteOptions {
                        mode: Some(mode),
                        uid: Some(uid.unwrap_or(0)),
                        gid: Some(gid.unwrap_or(0)),
                    };
                    self.write(&full, opts, data, false).map(drop)
                }
                What::Symlink(target) => {
                    let target = String::from_utf8(target).map_err(|_| {
                        EngineError::InvalidArgument(format!(
                            "archive entry {shown} is a link whose target is not UTF-8: a running gVisor sandbox takes UTF-8 link targets only"
                        ))
                    })?;
                    self.ask(
                        &shown,
                        &Message::Symlink {
                            path: full.absolute(),
                            target,
                            uid,
                            gid,
                        },
                    )
                    .map(drop)
                }
                What::HardLink(source) => {
                    let linked = self.ask(
                        &shown,
                        &Message::HardLink {
                            path: full.absolute(),
                            existing: source.absolute(),
                        },
                    );
                    match linked {
                        Err(EngineError::InvalidArgument(_)) => {
                            Err(not_a_file_link(&shown, &source))
                        }
                        other => other.map(drop),
                    }
                }
            }
        })
    }
}
