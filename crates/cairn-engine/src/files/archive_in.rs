//! Tar streams into a tree, with the same safety as single files (`files::fd`): each entry
//! is resolved below the target directory inside the tree's root. Names with `..` are
//! refused, absolute names are taken relative to the target; a symlink whose relative
//! target climbs above the tree's root, a hard link to anything but a regular file of the
//! tree, a device node or a FIFO is refused. Entries before a refused one stay written.
//! Files go through a temporary name, as single files do; the tree is synced once at the
//! end.
//!
//! Not here: tar streams out (`archive_out`).

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::fd::WriteOptions;
use super::fd::{fail, reopen, write_new};
use super::path::TreePath;
use super::tar_guard::TarGuard;
use super::tree::TreeFiles;
use crate::EngineError;

/// What one entry of a tar stream being extracted is, checked.
pub(super) enum What {
    /// A directory.
    Dir,
    /// A regular file: its bytes are read from the entry handed along.
    File,
    /// A symbolic link holding this target (checked not to climb above the tree's root).
    Symlink(Vec<u8>),
    /// A hard link to this earlier entry.
    HardLink(TreePath),
}

/// One entry of a tar stream being extracted, checked.
pub(super) struct Item {
    /// Its path as the caller sees it (the target directory's, then the entry's name).
    pub(super) shown: String,
    /// The same, parsed.
    pub(super) full: TreePath,
    /// Its directory, relative to the tree's root (`.` for the root).
    pub(super) parent: String,
    /// Permission bits.
    pub(super) mode: u32,
    /// Owner and group, when the header has them.
    pub(super) uid: Option<u32>,
    pub(super) gid: Option<u32>,
    /// What it is.
    pub(super) what: What,
}

/// Reads the tar stream `body` for extraction into directory `path`, whichever way the
/// entries are then written (the host's tree, or a running sandbox's agent): every entry is
/// checked (names, link targets, types; see the module's documentation) and handed to
/// `apply` with the entry to read a file's bytes from. Returns the entries applied.
pub(super) fn walk_tar(
    path: &TreePath,
    body: &mut dyn Read,
    mut apply: impl FnMut(Item, &mut dyn Read) -> Result<(), EngineError>,
) -> Result<u64, EngineError> {
    let depth = lexical_depth(path);
    let base = path.shown().trim_end_matches('/').to_string();
    let bad = |e: std::io::Error| {
        EngineError::InvalidArgument(format!(
            "the upload is not a valid tar stream ({e}); entries before the error were written"
        ))
    };
    // Headers that the tar crate would read whole into memory are bounded first.
    let mut archive = tar::Archive::new(TarGuard::new(body));
    let mut count = 0u64;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path_bytes().into_owned();
        let parts = entry_parts(&raw)?;
        if parts.is_empty() {
            continue;
        }
        let shown = format!("{base}/{}", parts.join("/"));
        let full = TreePath::parse(&shown)?;
        let header = entry.header();
        // A missing mode (some archivers leave it out of links) is the usual default.
        let mode = header.mode().unwrap_or(0o755) & 0o7777;
        let uid = header.uid().ok().and_then(|u| u32::try_from(u).ok());
        let gid = header.gid().ok().and_then(|g| u32::try_from(g).ok());
        let link = || {
            entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default()
        };
        let what = match header.entry_type() {
            tar::EntryType::Directory => What::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => What::File,
            tar::EntryType::Symlink => {
                let target = link();
                check_link_target(&shown, &target, depth + parts.len() - 1)?;
                What::Symlink(target)
            }
            tar::EntryType::Link => {
                let source = entry_parts(&link())?;
                What::HardLink(TreePath::parse(&format!("{base}/{}", source.join("/")))?)
            }
            other => {
                let what = match other {
                    tar::EntryType::Char | tar::EntryType::Block => "a device node",
                    tar::EntryType::Fifo => "a FIFO",
                    _ => "of a type Cairn does not write",
                };
                return Err(EngineError::InvalidArgument(format!(
                    "archive entry {shown} is {what}: only files, directories and links can be copied into a sandbox; entries before it were written"
                )));
            }
        };
        let (parent, _) = full.split()?;
        let item = Item {
            shown,
            parent,
            full,
            mode,
            uid,
            gid,
            what,
        };
        apply(item, &mut entry)?;
        count += 1;
    }
    Ok(count)
}

/// The refusal of a hard link to `source`, which is not a regular file written before it.
pub(super) fn not_a_file_link(shown: &str, source: &TreePath) -> EngineError {
    EngineError::InvalidArgument(format!(
        "archive entry {shown} is a hard link to {}, which is not a regular file: only links to files written before it are allowed",
        source.shown()
    ))
}

impl TreeFiles {
    /// Extracts the tar stream `body` into directory `path`.
    pub(crate) fn tar_in(&self, path: &TreePath, body: &mut dyn Read) -> Result<u64, EngineError> {
        let target = self
            .resolve(&path.relative(), OFlags::PATH)
            .map_err(|e| fail(path.shown(), e))?;
        let st = rustix::fs::fstat(&target).map_err(|e| fail(path.shown(), e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(EngineError::InvalidArgument(format!(
                "{} is not a directory: a tar stream is extracted into a directory (make it with mkdir)",
                path.shown()
            )));
        }
        let count = walk_tar(path, body, |item, data| {
            let Item {
                shown,
                full,
                parent,
                mode,
                uid,
                gid,
                what,
            } = item;
            // Missing parents are made (an archive may leave its directories out).
            self.mkdir(&TreePath::parse(&format!("/{parent}"))?, true, 0o755)?;
            match what {
                What::Dir => {
                    self.mkdir(&full, true, mode)?;
                    let (dir, name) = self.parent(&full)?;
                    set_owner(dir.as_fd(), name, &shown, uid, gid)?;
                    rustix::fs::chmodat(&dir, name, Mode::from_raw_mode(mode), AtFlags::empty())
                        .map_err(|e| fail(&shown, e))
                }
                What::File => {
                    let (dir, name) = self.writable_parent(&full)?;
                    let opts = WriteOptions {
                        mode: Some(mode),
                        uid,
                        gid,
                    };
                    write_new(dir.as_fd(), OsStr::new(name), &shown, opts, data, false)
                }
                What::Symlink(target) => {
                    let (dir, name) = self.writable_parent(&full)?;
                    rustix::fs::symlinkat(OsStr::from_bytes(&target), &dir, name)
                        .map_err(|e| fail(&shown, e))?;
                    set_owner(dir.as_fd(), name, &shown, uid, gid)
                }
                What::HardLink(source) => {
                    let (src_dir, src_name) = self.parent(&source)?;
                    let st = rustix::fs::statat(&src_dir, src_name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| fail(source.shown(), e))?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                        return Err(not_a_file_link(&shown, &source));
                    }
                    let (dir, name) = self.writable_parent(&full)?;
                    rustix::fs::linkat(&src_dir, src_name, &dir, name, AtFlags::empty())
                        .map_err(|e| fail(&shown, e))
                }
            }
        })?;
        let root = self
            .resolve(".", OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| fail("/", e))?;
        rustix::fs::syncfs(&root).map_err(|e| fail(path.shown(), e))?;
        Ok(count)
    }

    /// The directory of `path` (read-write) and its name, after removing what is there
    /// unless it is a directory: a new entry replaces a file, link or special file.
    fn writable_parent<'p>(&self, path: &'p TreePath) -> Result<(OwnedFd, &'p str), EngineError> {
        let (dir, name) = self.parent(path)?;
        let dir =
            reopen(&dir, OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| fail(path.shown(), e))?;
        match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                return Err(fail(path.shown(), Errno::ISDIR))
            }
            Ok(_) => rustix::fs::unlinkat(&dir, name, AtFlags::empty())
                .map_err(|e| fail(path.shown(), e))?,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(fail(path.shown(), e)),
        }
        Ok((dir, name))
    }
}

/// The components of an archive entry name: leading `/` and `.` dropped, `..` refused.
fn entry_parts(raw: &[u8]) -> Result<Vec<String>, EngineError> {
    let mut parts = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(EngineError::InvalidArgument(format!(
                    "archive entry '{}' has a '..' component: entries must stay inside the target directory; nothing after it was written",
                    String::from_utf8_lossy(raw)
                )))
            }
            name => parts.push(String::from_utf8_lossy(name).into_owned()),
        }
    }
    Ok(parts)
}

/// How many directories below the tree's root `path` is, read as text (`..` climbs).
fn lexical_depth(path: &TreePath) -> usize {
    let mut depth = 0usize;
    for c in path.relative().split('/') {
        match c {
            "." | "" => {}
            ".." => depth = depth.saturating_sub(1),
            _ => depth += 1,
        }
    }
    depth
}

/// Refuses a relative symlink target that climbs above the tree's root from a link `depth`
/// directories below it. (Every resolution stays in the root anyway; such a link is
/// refused so that it cannot mislead anything that reads the tree without Cairn's care.)
fn check_link_target(shown: &str, target: &[u8], depth: usize) -> Result<(), EngineError> {
    if target.is_empty() || target.contains(&0) {
        return Err(EngineError::InvalidArgument(format!(
            "archive entry {shown} is a symlink with an empty or invalid target"
        )));
    }
    if target.first() == Some(&b'/') {
        return Ok(());
    }
    let mut level = i64::try_from(depth).unwrap_or(i64::MAX);
    for c in target.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                level -= 1;
                if level < 0 {
                    return Err(EngineError::InvalidArgument(format!(
                        "archive entry {shown} is a symlink to '{}', which climbs out of the sandbox's root: give a target inside it",
                        String::from_utf8_lossy(target)
                    )));
                }
            }
            _ => level += 1,
        }
    }
    Ok(())
}

/// Sets the owner of `name` in `dir` (a link itself), when the archive gave one.
fn set_owner(
    dir: BorrowedFd<'_>,
    name: &str,
    shown: &str,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), EngineError> {
    rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(uid.unwrap_or(0))),
        Some(rustix::fs::Gid::from_raw(gid.unwrap_or(0))),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| fail(shown, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_stay_below_the_target() {
        assert_eq!(entry_parts(b"./a//b/").expect("ok"), vec!["a", "b"]);
        assert_eq!(
            entry_parts(b"/etc/passwd").expect("ok"),
            vec!["etc", "passwd"]
        );
        assert!(entry_parts(b"a/../../b").is_err());
        assert!(entry_parts(b"./").expect("ok").is_empty());
    }

    #[test]
    fn relative_link_targets_may_not_climb_above_the_root() {
        assert!(check_link_target("/x", b"/etc/shadow", 0).is_ok());
        assert!(check_link_target("/a/b/l", b"../c", 2).is_ok());
        assert!(check_link_target("/a/b/l", b"../../c", 2).is_ok());
        assert!(check_link_target("/a/b/l", b"../../../etc", 2).is_err());
        assert!(check_link_target("/l", b"a/../../x", 0).is_err());
        assert!(check_link_target("/l", b"", 0).is_err());
    }

    #[test]
    fn depth_is_counted_as_text() {
        let p = TreePath::parse("/a/b/../c").expect("valid");
        assert_eq!(lexical_depth(&p), 2);
        assert_eq!(lexical_depth(&TreePath::parse("/").expect("valid")), 0);
    }
}
