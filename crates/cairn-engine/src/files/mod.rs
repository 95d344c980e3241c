//! The files API: stat, list, read, write, mkdir, remove and move files of a sandbox or a
//! snapshot, single files or directories as tar streams.
//!
//! Where the files come from:
//! - a **snapshot** (ready, whatever became of its sandbox): its read-only tree, through
//!   storage;
//! - a **stopped** sandbox: its root, read and write;
//! - a **running** sandbox whose runtime shares its files with the host
//!   ([`cairn_runtime::Runtime::shares_live_files`]: runc) the same tree, read and write;
//!   under gVisor, whose kernel caches files, the runtime flushes them first for a read,
//!   and changes go through the sandbox's agent (`live`), which makes them inside the
//!   sandbox, with the host's checks made here first (a sandbox without the agent: 409);
//! - a **paused** sandbox: reads only.
//!
//! Tenancy is that of every other call: another account's sandbox or snapshot is the same
//! 404 as a missing one. Every path is resolved by descriptor inside the tree's root
//! (`tree`); errors name the caller's path, never a host path.
//!
//! Modules: `path` (checking a caller's path), `fd` (resolution flags, opening without
//! following, errors in the caller's words), `tree` (stat, list, read, write, mkdir, remove,
//! move), `archive_out` and `archive_in` (tar streams), `tar_guard` (bounds what the tar
//! reader would hold in memory), `live` (changes through the agent).

mod archive_in;
mod archive_out;
mod fd;
mod live;
mod path;
mod tar_guard;
#[cfg(test)]
mod tests;
mod tree;

use std::io::{Read, Write};
use std::sync::Arc;

use tokio::sync::mpsc;

use cairn_storage::Tree;
use cairn_types::api::FileEntry;
use cairn_types::{SandboxId, SandboxState, SnapshotState};

pub use fd::WriteOptions;
pub use tree::MAX_DEPTH;

use fd::CHUNK;
use live::LiveFiles;
pub(crate) use path::TreePath;
pub(crate) use tree::TreeFiles;

use crate::{Engine, EngineError, Result};

/// Whose files a request names.
#[derive(Clone, Copy, Debug)]
pub enum FilesOf<'a> {
    /// A sandbox, by id or name.
    Sandbox(&'a str),
    /// A snapshot, by id, `NAME` or `SANDBOX:NAME` (read-only).
    Snapshot(&'a str),
}

/// A change to a running sandbox's files through its agent, with the sandbox's gate held.
struct Live {
    files: Arc<LiveFiles>,
    _gate: tokio::sync::OwnedRwLockReadGuard<()>,
}

/// A file or tar stream on its way out: what it is, then its bytes in chunks. A chunk that
/// is an error means the stream broke off (the transfer must not look complete).
pub struct Download {
    /// The file or directory read.
    pub entry: FileEntry,
    /// The bytes.
    pub chunks: mpsc::Receiver<std::io::Result<Vec<u8>>>,
}

/// Writes into a channel of chunks (a tar stream made on a blocking thread).
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })
    }
}

/// Runs `f` on a blocking thread (file operations block on the disk).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::failed("a file operation stopped", e))?
}

impl Engine {
    /// The tree a request may read (`write` false) or change, after the checks of its
    /// state (see the module's documentation).
    async fn tree_for(
        &self,
        account: &str,
        of: FilesOf<'_>,
        write: bool,
    ) -> Result<Arc<TreeFiles>> {
        Ok(self.tree_of(account, of, write).await?.0)
    }

    /// [`Engine::tree_for`], and the sandbox's id when it is a sandbox's tree.
    async fn tree_of(
        &self,
        account: &str,
        of: FilesOf<'_>,
        write: bool,
    ) -> Result<(Arc<TreeFiles>, Option<SandboxId>)> {
        let (tree, sandbox, _) = self.target(account, of, write).await?;
        Ok((tree, sandbox))
    }

    /// [`Engine::tree_of`], and for a change to a running sandbox whose kernel caches its
    /// files (gVisor) the way through its agent, which the change must take instead.
    async fn target(
        &self,
        account: &str,
        of: FilesOf<'_>,
        write: bool,
    ) -> Result<(Arc<TreeFiles>, Option<SandboxId>, Option<Live>)> {
        let mut sandbox = None;
        let mut live = None;
        let root = match of {
            FilesOf::Snapshot(reference) => {
                let s = self.find_snapshot(account, reference).await?;
                if write {
                    return Err(EngineError::Conflict(format!(
                        "snapshot {} is read-only: fork it ('cairn fork {}') to get a sandbox whose files can change",
                        s.id, s.id
                    )));
                }
                if s.state != SnapshotState::Ready {
                    return Err(EngineError::Conflict(format!(
                        "snapshot {} is {}: only a ready snapshot's files can be read",
                        s.id, s.state
                    )));
                }
                self.storage.path(&Tree::snapshot(&s.id))
            }
            FilesOf::Sandbox(reference) => {
                let r = self.find(account, reference).await?;
                let id = &r.id;
                match (r.state, write) {
                    (SandboxState::Stopped, _) => {}
                    (SandboxState::Running, _) => {
                        let rt = self.runtime(r.runtime)?;
                        if !rt.shares_live_files() {
                            if write {
                                live = Some(self.live_files(account, id).await?);
                            } else {
                                rt.flush(
                                    id.as_str(),
                                    &r.process.env,
                                    &self.run_dir(id).join("exec"),
                                )
                                .await;
                            }
                        }
                    }
                    (SandboxState::Paused, false) => {}
                    (SandboxState::Paused, true) => {
                        return Err(EngineError::Conflict(format!(
                            "sandbox {id} is paused: resume it ('cairn resume {id}') or stop it to write files into it"
                        )))
                    }
                    (state, _) => {
                        return Err(EngineError::Conflict(format!(
                            "sandbox {id} is {state}: its files can be read or written once it is running or stopped"
                        )))
                    }
                }
                sandbox = Some(id.clone());
                self.rootfs(id)
            }
        };
        let tree = blocking(move || TreeFiles::open(&root)).await?;
        Ok((Arc::new(tree), sandbox, live))
    }

    /// The way to change running sandbox `id`'s files through its agent: it holds the
    /// sandbox's gate shared, so that no snapshot or pause (which quiesce the agent) comes
    /// halfway through the change.
    async fn live_files(&self, account: &str, id: &SandboxId) -> Result<Live> {
        let Some(link) = self.agent(id) else {
            return Err(EngineError::Conflict(format!(
                "sandbox {id} runs under gVisor, whose kernel caches its files, and without the agent that writes them inside it: stop it ('cairn stop {id}') to write files into it, or write them through 'cairn exec'"
            )));
        };
        let gate = self.gate(id).read_owned().await;
        // A pause may have come first.
        let now = self.find(account, id.as_str()).await?;
        if now.state != SandboxState::Running {
            return Err(EngineError::Conflict(format!(
                "sandbox {id} is {} now: resume it ('cairn resume {id}') or stop it to write files into it",
                now.state
            )));
        }
        Ok(Live {
            files: Arc::new(LiveFiles {
                id: id.clone(),
                link,
                rt: tokio::runtime::Handle::current(),
            }),
            _gate: gate,
        })
    }

    /// What `path` is (a symlink itself, not its target).
    pub async fn file_stat(&self, account: &str, of: FilesOf<'_>, path: &str) -> Result<FileEntry> {
        let path = TreePath::parse(path)?;
        let tree = self.tree_for(account, of, false).await?;
        blocking(move || tree.stat(&path)).await
    }

    /// The entries below directory `path`, `depth` levels deep (1: its own).
    pub async fn file_list(
        &self,
        account: &str,
        of: FilesOf<'_>,
        path: &str,
        depth: u32,
    ) -> Result<Vec<FileEntry>> {
        let path = TreePath::parse(path)?;
        let tree = self.tree_for(account, of, false).await?;
        blocking(move || tree.list(&path, depth)).await
    }

    /// Reads file `path` (a symlink is followed inside the tree), or with `archive` the file
    /// or directory as a tar stream, streamed.
    pub async fn file_read(
        &self,
        account: &str,
        of: FilesOf<'_>,
        path: &str,
        archive: bool,
    ) -> Result<Download> {
        let path = TreePath::parse(path)?;
        let tree = self.tree_for(account, of, false).await?;
        let (tx, chunks) = mpsc::channel(4);
        if archive {
            let entry = {
                let (tree, path) = (Arc::clone(&tree), path.clone());
                blocking(move || tree.stat(&path)).await?
            };
            if !matches!(entry.kind.as_str(), "file" | "directory" | "symlink") {
                return Err(EngineError::InvalidArgument(format!(
                    "{} is a {}: only regular files, directories and symbolic links can be copied",
                    entry.path,
                    entry.kind.replace('_', " ")
                )));
            }
            tokio::task::spawn_blocking(move || {
                let mut out = ChannelWriter {
                    tx: tx.clone(),
                    buf: Vec::with_capacity(CHUNK),
                };
                let done = tree.tar_out(&path, &mut out);
                if let Err(e) = done {
                    tracing::warn!(error = %e, "a tar stream broke off");
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                }
            });
            return Ok(Download { entry, chunks });
        }
        let (entry, mut file) = blocking(move || tree.open_read(&path)).await?;
        tokio::task::spawn_blocking(move || loop {
            let mut buf = vec![0u8; CHUNK];
            match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        });
        Ok(Download { entry, chunks })
    }

    /// Writes `body` to file `path` of a sandbox (a temporary file renamed into place: a
    /// failed write leaves nothing), or with `archive` extracts the tar stream `body` into
    /// directory `path`. Answers what `path` is afterwards. The sandbox counts as busy
    /// meanwhile (no idle timeout pauses it halfway).
    pub async fn file_write(
        self: &Arc<Self>,
        account: &str,
        sandbox: &str,
        path: &str,
        opts: WriteOptions,
        archive: bool,
        body: impl tokio::io::AsyncRead + Send + Unpin + 'static,
    ) -> Result<FileEntry> {
        let path = TreePath::parse(path)?;
        let (tree, id, live) = self
            .target(account, FilesOf::Sandbox(sandbox), true)
            .await?;
        let _busy = id.map(|id| self.busy(&id));
        // The bridge reads the async body from the blocking thread.
        let mut body = tokio_util::io::SyncIoBridge::new(body);
        if let Some(live) = live {
            return blocking(move || {
                let files = &live.files;
                if archive {
                    files.tar_in(&path, &mut body)?;
                    files.stat(&path)
                } else {
                    files.write(&path, opts, &mut body, true)
                }
            })
            .await;
        }
        blocking(move || {
            if archive {
                tree.tar_in(&path, &mut body)?;
                tree.stat(&path)
            } else {
                tree.write(&path, opts, &mut body)
            }
        })
        .await
    }

    /// Makes directory `path` of a sandbox (`parents`: `mkdir -p`).
    pub async fn file_mkdir(
        &self,
        account: &str,
        sandbox: &str,
        path: &str,
        parents: bool,
        mode: Option<u32>,
    ) -> Result<FileEntry> {
        let path = TreePath::parse(path)?;
        let (tree, _, live) = self
            .target(account, FilesOf::Sandbox(sandbox), true)
            .await?;
        if let Some(live) = live {
            return blocking(move || live.files.mkdir(&path, parents, mode.unwrap_or(0o755))).await;
        }
        blocking(move || {
            tree.mkdir(&path, parents, mode.unwrap_or(0o755))?;
            tree.stat(&path)
        })
        .await
    }

    /// Removes `path` of a sandbox (a link itself; a non-empty directory needs `recursive`).
    pub async fn file_remove(
        &self,
        account: &str,
        sandbox: &str,
        path: &str,
        recursive: bool,
    ) -> Result<()> {
        let path = TreePath::parse(path)?;
        let (tree, _, live) = self
            .target(account, FilesOf::Sandbox(sandbox), true)
            .await?;
        if let Some(live) = live {
            return blocking(move || live.files.remove(&path, recursive)).await;
        }
        blocking(move || tree.remove(&path, recursive)).await
    }

    /// Moves `from` to `to` inside a sandbox.
    pub async fn file_move(
        &self,
        account: &str,
        sandbox: &str,
        from: &str,
        to: &str,
    ) -> Result<FileEntry> {
        let from = TreePath::parse(from)?;
        let to = TreePath::parse(to)?;
        let (tree, _, live) = self
            .target(account, FilesOf::Sandbox(sandbox), true)
            .await?;
        if let Some(live) = live {
            return blocking(move || live.files.rename(&from, &to)).await;
        }
        blocking(move || {
            tree.rename(&from, &to)?;
            tree.stat(&to)
        })
        .await
    }
}
