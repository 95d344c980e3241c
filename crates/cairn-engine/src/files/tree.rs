//! Safe access to a tree a tenant controls (a sandbox's root, a snapshot's), by
//! descriptor: every path is resolved from the tree's root with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`, so a symlink in the
//! tree (`/etc/passwd`, `../../..`) resolves inside it and never to the host; below a
//! resolved directory, names are opened one at a time without following any link.
//!
//! Nothing but regular files and directories is ever opened for reading or writing: a path
//! is opened `O_PATH` first and looked at (`fstat`), and a device node, FIFO or socket is
//! refused with an error that names its type. New files are written under a temporary
//! name in their directory, synced, then renamed over the old one, so a failed write
//! (a disk limit reached, a broken upload) leaves no partial file.
//!
//! Not here: which tree a request may touch and in which state (`files::mod`), archives
//! (`files::archive`).

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use cairn_types::api::FileEntry;

use super::path::TreePath;
use crate::EngineError;

/// How deep a listing may go.
pub const MAX_DEPTH: u32 = 64;
/// How many entries one listing may return.
pub const MAX_ENTRIES: usize = 100_000;
/// The buffer of one copy step.
pub(crate) const CHUNK: usize = 1 << 20;

/// Mode, owner and group of a file written.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// Permission bits (`0o644`); default: the replaced file's, else `0o644`.
    pub mode: Option<u32>,
    /// Numeric owner; default: the replaced file's, else 0.
    pub uid: Option<u32>,
    /// Numeric group; default: the replaced file's, else 0.
    pub gid: Option<u32>,
}

/// An open tree.
pub(crate) struct TreeFiles {
    root: OwnedFd,
}

/// The flags every resolution from the root uses.
fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV
}

/// The flags that open one name below a directory without following anything.
fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH
        | ResolveFlags::NO_SYMLINKS
        | ResolveFlags::NO_MAGICLINKS
        | ResolveFlags::NO_XDEV
}

/// A kernel error on `path` in the caller's words (never a host path).
pub(crate) fn fail(path: &str, e: Errno) -> EngineError {
    match e {
        Errno::NOENT => EngineError::NotFound(format!(
            "no such file or directory: {path}; list the directory with 'cairn files ls'"
        )),
        Errno::NOTDIR => EngineError::InvalidArgument(format!(
            "{path}: a component of the path is not a directory"
        )),
        Errno::ISDIR => EngineError::Conflict(format!(
            "{path} is a directory: copy it as a tar stream (?archive=tar) or name a file inside it"
        )),
        Errno::NOTEMPTY => EngineError::Conflict(format!(
            "directory {path} is not empty: remove it with recursive=true (cairn files rm -r)"
        )),
        Errno::EXIST => EngineError::Conflict(format!("{path} already exists")),
        Errno::LOOP => EngineError::InvalidArgument(format!(
            "{path}: too many levels of symbolic links"
        )),
        Errno::XDEV => EngineError::InvalidArgument(format!(
            "{path} crosses into another mounted filesystem, which the files API does not enter"
        )),
        Errno::ROFS => EngineError::Conflict(format!(
            "{path} is read-only: a snapshot's files cannot be changed; fork it to get a sandbox whose files can"
        )),
        Errno::DQUOT => EngineError::Limit(format!(
            "writing {path} would go over the sandbox's disk limit: remove files in it or give it a larger --disk; nothing was written"
        )),
        Errno::NOSPC => EngineError::PoolFull(format!(
            "the storage pool is full while writing {path}: nothing was written; free space or ask the operator to grow the pool"
        )),
        Errno::NAMETOOLONG => {
            EngineError::InvalidArgument(format!("{path}: a name in the path is too long"))
        }
        Errno::PERM | Errno::ACCESS => EngineError::Forbidden(format!(
            "{path}: operation not permitted ({e})"
        )),
        Errno::BUSY => EngineError::Conflict(format!("{path} is in use ({e})")),
        other => EngineError::Internal(format!("file operation on {path}: {other}")),
    }
}

/// The type of a file, as the API names it.
pub(crate) fn kind_of(st: &Stat) -> &'static str {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => "file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Fifo => "fifo",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "char_device",
        FileType::BlockDevice => "block_device",
        FileType::Unknown => "unknown",
    }
}

/// Refuses anything but a regular file or directory (devices, FIFOs, sockets are never
/// opened).
pub(crate) fn refuse_special(path: &str, st: &Stat) -> Result<(), EngineError> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile | FileType::Directory => Ok(()),
        _ => Err(EngineError::InvalidArgument(format!(
            "{path} is a {}: only regular files, directories and symbolic links can be copied",
            kind_of(st).replace('_', " ")
        ))),
    }
}

/// The entry the API shows for `st` at `path`.
pub(crate) fn entry(path: String, st: &Stat, target: Option<String>) -> FileEntry {
    FileEntry {
        path,
        kind: kind_of(st).to_string(),
        size: u64::try_from(st.st_size).unwrap_or(0),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: st.st_mtime,
        target,
    }
}

/// Opens `name` (one component, never `..`) below `dir` without following a link.
pub(crate) fn open_child(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    flags: OFlags,
    mode: Mode,
) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(dir, name, flags | OFlags::CLOEXEC, mode, beneath())
}

/// Opens the file that an `O_PATH` descriptor refers to for reading: the same inode, with
/// no second resolution.
pub(crate) fn reopen(fd: &OwnedFd, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        flags | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
}

/// The target of symlink `name` in `dir`, as text.
pub(crate) fn link_target(dir: BorrowedFd<'_>, name: &OsStr) -> Option<String> {
    rustix::fs::readlinkat(dir, name, Vec::new())
        .ok()
        .map(|t: CString| String::from_utf8_lossy(t.as_bytes()).into_owned())
}

impl TreeFiles {
    /// Opens the tree at `root` (a host path storage gave for a key).
    pub(crate) fn open(root: &std::path::Path) -> Result<TreeFiles, EngineError> {
        let root = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT => EngineError::Conflict(
                "its files are not there (it failed or is being removed)".into(),
            ),
            other => EngineError::Internal(format!("opening a tree: {other}")),
        })?;
        Ok(TreeFiles { root })
    }

    /// Resolves `rel` (relative to the root) inside the tree.
    pub(crate) fn resolve(&self, rel: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        rustix::fs::openat2(
            &self.root,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            in_root(),
        )
    }

    /// The directory holding `path`'s entry, and the entry's name.
    pub(crate) fn parent<'p>(&self, path: &'p TreePath) -> Result<(OwnedFd, &'p str), EngineError> {
        let (dir, name) = path.split()?;
        let fd = self
            .resolve(&dir, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(|e| fail(path.shown(), e))?;
        Ok((fd, name))
    }

    /// What `path` is (a symlink itself, not what it points to).
    pub(crate) fn stat(&self, path: &TreePath) -> Result<FileEntry, EngineError> {
        if path.is_root() {
            let st = rustix::fs::fstat(&self.root).map_err(|e| fail("/", e))?;
            return Ok(entry("/".into(), &st, None));
        }
        let (dir, name) = self.parent(path)?;
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fail(path.shown(), e))?;
        let target = (FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
            .then(|| link_target(dir.as_fd(), OsStr::new(name)))
            .flatten();
        Ok(entry(path.shown().to_string(), &st, target))
    }

    /// The entries below directory `path`, `depth` levels deep (1: its own entries), sorted
    /// by path within each directory; symlinks are listed, never followed.
    pub(crate) fn list(&self, path: &TreePath, depth: u32) -> Result<Vec<FileEntry>, EngineError> {
        if depth == 0 || depth > MAX_DEPTH {
            return Err(EngineError::InvalidArgument(format!(
                "invalid depth {depth}: give 1 (the directory's own entries) to {MAX_DEPTH}"
            )));
        }
        let dir = self
            .resolve(&path.relative(), OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| fail(path.shown(), e))?;
        let mut out = Vec::new();
        let base = path.shown().trim_end_matches('/').to_string();
        list_into(&dir, &base, depth, &mut out)?;
        Ok(out)
    }

    /// Opens regular file `path` for reading (a symlink is followed, inside the tree).
    pub(crate) fn open_read(&self, path: &TreePath) -> Result<(FileEntry, File), EngineError> {
        let fd = self
            .resolve(&path.relative(), OFlags::PATH)
            .map_err(|e| fail(path.shown(), e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| fail(path.shown(), e))?;
        refuse_special(path.shown(), &st)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            return Err(fail(path.shown(), Errno::ISDIR));
        }
        let file = reopen(&fd, OFlags::RDONLY).map_err(|e| fail(path.shown(), e))?;
        Ok((entry(path.shown().to_string(), &st, None), File::from(file)))
    }

    /// Writes `body` to `path` (a new file, or over a file or symlink there), with `opts`.
    pub(crate) fn write(
        &self,
        path: &TreePath,
        opts: WriteOptions,
        body: &mut dyn Read,
    ) -> Result<FileEntry, EngineError> {
        let (dir, name) = self.parent(path)?;
        let dir =
            reopen(&dir, OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| fail(path.shown(), e))?;
        let old = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::RegularFile => Some(st),
                FileType::Symlink => None,
                FileType::Directory => return Err(fail(path.shown(), Errno::ISDIR)),
                _ => {
                    refuse_special(path.shown(), &st)?;
                    None
                }
            },
            Err(Errno::NOENT) => None,
            Err(e) => return Err(fail(path.shown(), e)),
        };
        let opts = WriteOptions {
            mode: opts.mode.or(old.as_ref().map(|s| s.st_mode & 0o7777)),
            uid: opts.uid.or(old.as_ref().map(|s| s.st_uid)),
            gid: opts.gid.or(old.as_ref().map(|s| s.st_gid)),
        };
        write_new(
            dir.as_fd(),
            OsStr::new(name),
            path.shown(),
            opts,
            body,
            true,
        )?;
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fail(path.shown(), e))?;
        Ok(entry(path.shown().to_string(), &st, None))
    }

    /// Makes directory `path` (with `parents`, its missing parents too, and no error when
    /// it exists).
    pub(crate) fn mkdir(
        &self,
        path: &TreePath,
        parents: bool,
        mode: u32,
    ) -> Result<(), EngineError> {
        let mode = Mode::from_raw_mode(mode & 0o7777);
        if !parents {
            let (dir, name) = self.parent(path)?;
            return rustix::fs::mkdirat(&dir, name, mode).map_err(|e| fail(path.shown(), e));
        }
        if path.is_root() {
            return Ok(());
        }
        let mut so_far: Vec<&str> = Vec::new();
        let rel = path.relative();
        for part in rel.split('/') {
            let here = if so_far.is_empty() {
                ".".to_string()
            } else {
                so_far.join("/")
            };
            so_far.push(part);
            if part == ".." {
                continue;
            }
            let dir = self
                .resolve(&here, OFlags::PATH | OFlags::DIRECTORY)
                .map_err(|e| fail(path.shown(), e))?;
            match rustix::fs::mkdirat(&dir, part, mode) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(fail(path.shown(), e)),
            }
        }
        // What is there now must be a directory (an existing file or link to one is not).
        let st = rustix::fs::fstat(
            self.resolve(&rel, OFlags::PATH)
                .map_err(|e| fail(path.shown(), e))?,
        )
        .map_err(|e| fail(path.shown(), e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(fail(path.shown(), Errno::EXIST));
        }
        Ok(())
    }

    /// Removes `path` (a link itself, never what it points to); a directory needs
    /// `recursive` unless it is empty.
    pub(crate) fn remove(&self, path: &TreePath, recursive: bool) -> Result<(), EngineError> {
        let (dir, name) = self.parent(path)?;
        let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fail(path.shown(), e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return rustix::fs::unlinkat(&dir, name, AtFlags::empty())
                .map_err(|e| fail(path.shown(), e));
        }
        if recursive {
            let sub = open_child(
                dir.as_fd(),
                OsStr::new(name),
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .map_err(|e| fail(path.shown(), e))?;
            empty_dir(&sub, path.shown(), 0)?;
        }
        rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR).map_err(|e| fail(path.shown(), e))
    }

    /// Renames `from` to `to` (both inside the tree; `to` is replaced when it is a file, or
    /// an empty directory and `from` is one).
    pub(crate) fn rename(&self, from: &TreePath, to: &TreePath) -> Result<(), EngineError> {
        let (from_dir, from_name) = self.parent(from)?;
        let (to_dir, to_name) = self.parent(to)?;
        rustix::fs::renameat(&from_dir, from_name, &to_dir, to_name).map_err(|e| match e {
            Errno::NOENT => fail(from.shown(), e),
            other => fail(to.shown(), other),
        })
    }
}

/// Appends the entries of `dir` (shown as `base/name`) to `out`, `depth` levels deep.
fn list_into(
    dir: &OwnedFd,
    base: &str,
    depth: u32,
    out: &mut Vec<FileEntry>,
) -> Result<(), EngineError> {
    let shown = if base.is_empty() { "/" } else { base };
    let mut names = read_names(dir, shown)?;
    names.sort();
    for name in names {
        if out.len() >= MAX_ENTRIES {
            return Err(EngineError::Limit(format!(
                "more than {MAX_ENTRIES} entries: list a smaller directory or a lower depth"
            )));
        }
        let os = OsStr::from_bytes(name.as_bytes());
        let path = format!("{base}/{}", String::from_utf8_lossy(name.as_bytes()));
        let st = match rustix::fs::statat(dir, os, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue, // gone while listed
            Err(e) => return Err(fail(&path, e)),
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        let target = (ft == FileType::Symlink)
            .then(|| link_target(dir.as_fd(), os))
            .flatten();
        out.push(entry(path.clone(), &st, target));
        if ft == FileType::Directory && depth > 1 {
            match open_child(
                dir.as_fd(),
                os,
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            ) {
                Ok(sub) => list_into(&sub, &path, depth - 1, out)?,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::XDEV) => {}
                Err(e) => return Err(fail(&path, e)),
            }
        }
    }
    Ok(())
}

/// The names in directory `dir` (without `.` and `..`).
pub(crate) fn read_names(dir: &OwnedFd, shown: &str) -> Result<Vec<CString>, EngineError> {
    let mut names = Vec::new();
    let entries = rustix::fs::Dir::read_from(dir).map_err(|e| fail(shown, e))?;
    for e in entries {
        let e = e.map_err(|e| fail(shown, e))?;
        let name: &CStr = e.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Removes everything inside directory `dir`, never following a link.
fn empty_dir(dir: &OwnedFd, shown: &str, level: u32) -> Result<(), EngineError> {
    if level > 4 * MAX_DEPTH {
        return Err(EngineError::InvalidArgument(format!(
            "{shown} is nested too deeply to remove at once: remove its deepest directories first"
        )));
    }
    for name in read_names(dir, shown)? {
        let os = OsStr::from_bytes(name.as_bytes());
        let here = format!("{shown}/{}", String::from_utf8_lossy(name.as_bytes()));
        match rustix::fs::unlinkat(dir, os, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => continue,
            Err(Errno::ISDIR) => {}
            Err(e) => return Err(fail(&here, e)),
        }
        let sub = open_child(
            dir.as_fd(),
            os,
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .map_err(|e| fail(&here, e))?;
        empty_dir(&sub, &here, level + 1)?;
        match rustix::fs::unlinkat(dir, os, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(fail(&here, e)),
        }
    }
    Ok(())
}

/// Writes `body` as `name` in `dir`: a temporary file there, mode and owner, (with `sync`)
/// fsync, rename over `name`, (with `sync`) fsync of the directory. On any failure the
/// temporary file is removed.
pub(crate) fn write_new(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    shown: &str,
    opts: WriteOptions,
    body: &mut dyn Read,
    sync: bool,
) -> Result<(), EngineError> {
    let tmp = format!(".cairn-upload-{:016x}", rand::random::<u64>());
    let fd = open_child(
        dir,
        OsStr::new(&tmp),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| fail(shown, e))?;
    let done = fill(fd, shown, opts, body, sync).and_then(|()| {
        rustix::fs::renameat(dir, tmp.as_str(), dir, name).map_err(|e| fail(shown, e))
    });
    if done.is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
        return done;
    }
    if !sync {
        return Ok(());
    }
    rustix::fs::fsync(dir).map_err(|e| fail(shown, e))
}

/// Copies `body` into the new file `fd`, then sets its owner and mode and syncs it.
fn fill(
    fd: OwnedFd,
    shown: &str,
    opts: WriteOptions,
    body: &mut dyn Read,
    sync: bool,
) -> Result<(), EngineError> {
    let mut file = File::from(fd);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(EngineError::InvalidArgument(format!(
                    "the upload of {shown} broke off ({e}): nothing was written"
                )))
            }
        };
        file.write_all(&buf[..n]).map_err(|e| io_fail(shown, e))?;
    }
    let owner = rustix::fs::Uid::from_raw(opts.uid.unwrap_or(0));
    let group = rustix::fs::Gid::from_raw(opts.gid.unwrap_or(0));
    rustix::fs::fchown(&file, Some(owner), Some(group)).map_err(|e| fail(shown, e))?;
    // After the owner: chown clears the set-id bits.
    rustix::fs::fchmod(
        &file,
        Mode::from_raw_mode(opts.mode.unwrap_or(0o644) & 0o7777),
    )
    .map_err(|e| fail(shown, e))?;
    if sync {
        file.sync_all().map_err(|e| io_fail(shown, e))?;
    }
    Ok(())
}

/// [`fail`] for a `std::io::Error`.
pub(crate) fn io_fail(shown: &str, e: std::io::Error) -> EngineError {
    match e.raw_os_error() {
        Some(n) => fail(shown, Errno::from_raw_os_error(n)),
        None => EngineError::Internal(format!("file operation on {shown}: {e}")),
    }
}
