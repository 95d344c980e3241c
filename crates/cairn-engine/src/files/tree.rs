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
//! (`archive_out`, `archive_in`), the descriptor helpers (`fd`).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use cairn_types::api::FileEntry;

use super::fd::{
    entry, fail, in_root, link_target, open_child, read_names, refuse_special, reopen, write_new,
    WriteOptions,
};
use super::path::TreePath;
use crate::EngineError;

/// How deep a listing may go.
pub const MAX_DEPTH: u32 = 64;
/// How many entries one listing may return.
pub const MAX_ENTRIES: usize = 100_000;

/// An open tree.
pub(crate) struct TreeFiles {
    root: OwnedFd,
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
            other => EngineError::failed("cannot open the tree", other),
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
