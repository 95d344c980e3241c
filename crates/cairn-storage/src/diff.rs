//! Comparing two directory trees — two snapshots of a sandbox root, or a
//! snapshot and the live root — to say which paths were added, modified or
//! deleted between them.
//!
//! The walk never follows symbolic links. Each directory is opened relative to
//! its parent's descriptor with `O_NOFOLLOW`, so a tree that changes while it
//! is read (a running sandbox swapping a directory for a link to `/`) cannot
//! lead the walk outside it. Entries that vanish while the walk reads them
//! are treated as absent.
//!
//! A path is modified when its type, permissions, owner, size, mtime, device
//! number or symlink target differ. With [`DiffOptions::compare_contents`],
//! a regular file whose metadata is equal on both sides has its bytes
//! compared too. A directory is reported as modified only when its
//! permissions or owner changed: its mtime moves whenever an entry is added
//! or removed, and those entries are reported themselves.
//!
//! This module is not for measuring disk use: it reads trees as a user sees
//! them and knows nothing of shared extents (see
//! [`BtrfsStorage::exclusive_and_total_bytes`](crate::BtrfsStorage::exclusive_and_total_bytes)).
//! It does not detect renames either: a rename shows as a deletion and an
//! addition.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Statx, StatxFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

/// How deep the walk goes below a root before it gives up with
/// [`DiffError::TooDeep`]. Real root filesystems are a few dozen levels deep;
/// the bound keeps a hostile tree from exhausting file descriptors or stack
/// (the walk holds two descriptors per level).
pub const MAX_DEPTH: usize = 256;

/// What happened to a path between the old tree and the new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The path is only in the new tree.
    Added,
    /// The path is in both trees, with different metadata or contents.
    Modified,
    /// The path is only in the old tree.
    Deleted,
}

/// One difference between two trees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The path relative to the tree roots, starting with `/` (`/` itself
    /// is the root). Names that are not UTF-8 are shown with U+FFFD in
    /// place of the invalid bytes.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
    /// Bytes of the new file for an addition or modification, of the old one
    /// for a deletion; the target's length for a symlink; 0 for a directory.
    pub size: u64,
}

/// Why two trees could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A root does not exist.
    #[error("cannot compare trees: {path} does not exist; check that the snapshot or sandbox was not deleted")]
    Missing {
        /// The missing root.
        path: PathBuf,
    },
    /// A root exists but is not a directory.
    #[error("cannot compare trees: {path} is not a directory; pass the root directory of a snapshot or sandbox")]
    NotADirectory {
        /// The root that is not a directory.
        path: PathBuf,
    },
    /// A directory is nested deeper than [`MAX_DEPTH`] below its root.
    #[error("cannot compare trees: {path} is nested more than {limit} directories deep; remove or flatten that directory and compare again")]
    TooDeep {
        /// The first directory past the limit.
        path: PathBuf,
        /// The limit, [`MAX_DEPTH`].
        limit: usize,
    },
    /// Reading a directory, an entry or a file failed.
    #[error("cannot read {path} while comparing trees: {source}; check its permissions and the filesystem's health")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

/// How [`diff_trees_with`] compares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Also compare the bytes of regular files whose metadata is equal on
    /// both sides, to catch rewrites that kept size and mtime. Reads every
    /// such file on both sides: slow on large trees.
    pub compare_contents: bool,
}

/// Changes from the tree `old` to the tree `new`, sorted by path (a
/// directory's entries right after it), judged on metadata only.
///
/// Same as [`diff_trees_with`] with default [`DiffOptions`].
pub fn diff_trees(old: &Path, new: &Path) -> Result<Vec<Change>, DiffError> {
    diff_trees_with(old, new, &DiffOptions::default())
}

/// Changes from the tree `old` to the tree `new`, sorted by path (a
/// directory's entries right after it).
///
/// Symlinks are never followed inside the trees; the roots themselves are
/// resolved like any path. An added or deleted directory is listed together
/// with every entry under it. Blocking: call it from `spawn_blocking`.
pub fn diff_trees_with(
    old: &Path,
    new: &Path,
    opts: &DiffOptions,
) -> Result<Vec<Change>, DiffError> {
    let old = Node::root(old)?;
    let new = Node::root(new)?;
    let mut walk = Walk {
        opts,
        out: Vec::new(),
    };
    let (om, nm) = (old.meta()?, new.meta()?);
    if om.owner_or_mode_differs(&nm) {
        walk.push("/".to_string(), ChangeKind::Modified, 0);
    }
    walk.dirs(Some(&old), Some(&new), "", 0)?;
    let mut out = walk.out;
    out.sort_by(|a, b| Path::new(&a.path).cmp(Path::new(&b.path)));
    Ok(out)
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);
const CHUNK: usize = 64 * 1024;

/// The metadata that decides whether an entry changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Meta {
    /// Type and permission bits.
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, u32),
    rdev: (u32, u32),
}

impl Meta {
    fn from_statx(s: &Statx) -> Self {
        Self {
            mode: u32::from(s.stx_mode),
            uid: s.stx_uid,
            gid: s.stx_gid,
            size: s.stx_size,
            mtime: (s.stx_mtime.tv_sec, s.stx_mtime.tv_nsec),
            rdev: (s.stx_rdev_major, s.stx_rdev_minor),
        }
    }

    fn file_type(&self) -> FileType {
        FileType::from_raw_mode(self.mode)
    }

    fn is_dir(&self) -> bool {
        self.file_type() == FileType::Directory
    }

    /// The size a [`Change`] reports for this entry.
    fn change_size(&self) -> u64 {
        if self.is_dir() {
            0
        } else {
            self.size
        }
    }

    fn owner_or_mode_differs(&self, other: &Self) -> bool {
        self.mode != other.mode || self.uid != other.uid || self.gid != other.gid
    }
}

/// An open directory of one tree, and its path for error messages.
struct Node {
    fd: OwnedFd,
    abs: PathBuf,
}

impl Node {
    fn root(path: &Path) -> Result<Self, DiffError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => Ok(Self {
                fd,
                abs: path.to_path_buf(),
            }),
            Err(Errno::NOENT) => Err(DiffError::Missing {
                path: path.to_path_buf(),
            }),
            Err(Errno::NOTDIR) => Err(DiffError::NotADirectory {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(io_error(path, e)),
        }
    }

    fn meta(&self) -> Result<Meta, DiffError> {
        rustix::fs::statx(&self.fd, c"", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
            .map(|s| Meta::from_statx(&s))
            .map_err(|e| io_error(&self.abs, e))
    }

    fn path_of(&self, name: &CStr) -> PathBuf {
        self.abs.join(OsStr::from_bytes(name.to_bytes()))
    }

    /// Entries of this directory with their metadata, by name; entries that
    /// vanish while being read are left out.
    fn list(&self) -> Result<BTreeMap<CString, Meta>, DiffError> {
        let dir = rustix::fs::Dir::read_from(&self.fd).map_err(|e| io_error(&self.abs, e))?;
        let mut out = BTreeMap::new();
        for entry in dir {
            let entry = entry.map_err(|e| io_error(&self.abs, e))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            match rustix::fs::statx(
                &self.fd,
                name,
                AtFlags::SYMLINK_NOFOLLOW,
                StatxFlags::BASIC_STATS,
            ) {
                Ok(s) => {
                    out.insert(name.to_owned(), Meta::from_statx(&s));
                }
                Err(e) if gone(e) => {}
                Err(e) => return Err(io_error(&self.path_of(name), e)),
            }
        }
        Ok(out)
    }

    /// Opens the subdirectory `name`, `depth` levels below the root, without
    /// following a symlink; `None` when it is gone or no longer a directory.
    fn child(&self, name: &CStr, depth: usize) -> Result<Option<Node>, DiffError> {
        let abs = self.path_of(name);
        if depth > MAX_DEPTH {
            return Err(DiffError::TooDeep {
                path: abs,
                limit: MAX_DEPTH,
            });
        }
        match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Node { fd, abs })),
            Err(e) if gone(e) => Ok(None),
            Err(e) => Err(io_error(&abs, e)),
        }
    }

    /// The target of the symlink `name`; `None` when it is gone or no longer
    /// a symlink.
    fn link_target(&self, name: &CStr) -> Result<Option<CString>, DiffError> {
        match rustix::fs::readlinkat(&self.fd, name, Vec::new()) {
            Ok(target) => Ok(Some(target)),
            Err(e) if gone(e) || e == Errno::INVAL => Ok(None),
            Err(e) => Err(io_error(&self.path_of(name), e)),
        }
    }

    /// Opens the regular file `name` for reading, without following a
    /// symlink; `None` when it is gone or no longer a regular file.
    fn open_file(&self, name: &CStr) -> Result<Option<File>, DiffError> {
        let file = match rustix::fs::openat(&self.fd, name, FILE_FLAGS, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(e) if gone(e) || e == Errno::NXIO => return Ok(None),
            Err(e) => return Err(io_error(&self.path_of(name), e)),
        };
        let md = file.metadata().map_err(|source| DiffError::Io {
            path: self.path_of(name),
            source,
        })?;
        Ok(md.is_file().then_some(file))
    }
}

/// The walk's state: the options and the changes found so far.
struct Walk<'a> {
    opts: &'a DiffOptions,
    out: Vec<Change>,
}

impl Walk<'_> {
    fn push(&mut self, path: String, kind: ChangeKind, size: u64) {
        self.out.push(Change { path, kind, size });
    }

    /// Compares the directory `rel`, `depth` levels below the roots, as it is
    /// in the old tree and in the new one (`None`: absent on that side).
    fn dirs(
        &mut self,
        old: Option<&Node>,
        new: Option<&Node>,
        rel: &str,
        depth: usize,
    ) -> Result<(), DiffError> {
        let a = match old {
            Some(d) => d.list()?,
            None => BTreeMap::new(),
        };
        let b = match new {
            Some(d) => d.list()?,
            None => BTreeMap::new(),
        };
        for (name, om) in &a {
            let path = child_path(rel, name);
            match (old, new, b.get(name)) {
                (Some(od), Some(nd), Some(nm)) => {
                    self.entry(od, nd, name, (om, nm), path, depth)?
                }
                (Some(od), _, _) => self.whole(od, name, om, path, depth, ChangeKind::Deleted)?,
                (None, _, _) => {}
            }
        }
        if let Some(nd) = new {
            for (name, nm) in &b {
                if !a.contains_key(name) {
                    let path = child_path(rel, name);
                    self.whole(nd, name, nm, path, depth, ChangeKind::Added)?;
                }
            }
        }
        Ok(())
    }

    /// Compares the entry `name`, present in both `old` and `new` with the
    /// metadata `om` and `nm`.
    fn entry(
        &mut self,
        old: &Node,
        new: &Node,
        name: &CStr,
        (om, nm): (&Meta, &Meta),
        path: String,
        depth: usize,
    ) -> Result<(), DiffError> {
        if om.is_dir() && nm.is_dir() {
            if om.owner_or_mode_differs(nm) {
                self.push(path.clone(), ChangeKind::Modified, 0);
            }
            let od = old.child(name, depth + 1)?;
            let nd = new.child(name, depth + 1)?;
            return self.dirs(od.as_ref(), nd.as_ref(), &path, depth + 1);
        }
        if om.file_type() != nm.file_type() {
            // One path, a new type: one modification, plus whatever a
            // directory on either side held.
            self.push(path.clone(), ChangeKind::Modified, nm.change_size());
            if om.is_dir() {
                let od = old.child(name, depth + 1)?;
                self.dirs(od.as_ref(), None, &path, depth + 1)?;
            }
            if nm.is_dir() {
                let nd = new.child(name, depth + 1)?;
                self.dirs(None, nd.as_ref(), &path, depth + 1)?;
            }
            return Ok(());
        }
        if self.differs(old, new, name, om, nm)? {
            self.push(path, ChangeKind::Modified, nm.change_size());
        }
        Ok(())
    }

    /// Records `name` of `parent` as added or deleted and, for a directory,
    /// everything under it.
    fn whole(
        &mut self,
        parent: &Node,
        name: &CStr,
        meta: &Meta,
        path: String,
        depth: usize,
        kind: ChangeKind,
    ) -> Result<(), DiffError> {
        self.push(path.clone(), kind, meta.change_size());
        if !meta.is_dir() {
            return Ok(());
        }
        let Some(dir) = parent.child(name, depth + 1)? else {
            return Ok(());
        };
        for (child, cm) in dir.list()? {
            let child_path = child_path(&path, &child);
            self.whole(&dir, &child, &cm, child_path, depth + 1, kind)?;
        }
        Ok(())
    }

    /// Whether two non-directory entries of the same type differ.
    fn differs(
        &self,
        old: &Node,
        new: &Node,
        name: &CStr,
        om: &Meta,
        nm: &Meta,
    ) -> Result<bool, DiffError> {
        if om != nm {
            return Ok(true);
        }
        match om.file_type() {
            FileType::Symlink => {
                let (a, b) = (old.link_target(name)?, new.link_target(name)?);
                Ok(a.is_none() || a != b)
            }
            FileType::RegularFile if self.opts.compare_contents => {
                Ok(!same_contents(old, new, name, om.size)?)
            }
            _ => Ok(false),
        }
    }
}

/// Whether the regular file `name` has the same bytes in both trees (false
/// when it vanished or stopped being a regular file on either side). Reads at
/// most `size + 1` bytes of each, so a file growing meanwhile ends the read.
fn same_contents(old: &Node, new: &Node, name: &CStr, size: u64) -> Result<bool, DiffError> {
    let (Some(a), Some(b)) = (old.open_file(name)?, new.open_file(name)?) else {
        return Ok(false);
    };
    let limit = size.saturating_add(1);
    let (mut a, mut b) = (a.take(limit), b.take(limit));
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    loop {
        let na = read_full(&mut a, &mut ba).map_err(|source| DiffError::Io {
            path: old.path_of(name),
            source,
        })?;
        let nb = read_full(&mut b, &mut bb).map_err(|source| DiffError::Io {
            path: new.path_of(name),
            source,
        })?;
        if ba[..na] != bb[..nb] {
            return Ok(false);
        }
        if na < CHUNK {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the end of `r`; returns how much was read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The path of entry `name` inside the directory whose path is `rel` (`""`
/// for the root).
fn child_path(rel: &str, name: &CStr) -> String {
    format!("{rel}/{}", String::from_utf8_lossy(name.to_bytes()))
}

/// Whether `e` means the entry vanished or changed type since it was listed
/// (a live tree being written to).
fn gone(e: Errno) -> bool {
    e == Errno::NOENT || e == Errno::NOTDIR || e == Errno::LOOP
}

fn io_error(path: &Path, e: Errno) -> DiffError {
    DiffError::Io {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests;
