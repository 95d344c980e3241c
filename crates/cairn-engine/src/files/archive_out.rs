//! Tar streams out of a tree: the named file or directory under its own name (`docker cp`
//! and Docker's archive API do the same), walked one name at a time without following
//! links. Symlinks are stored as symlinks; device nodes, FIFOs and sockets are left out
//! (they are never opened).
//!
//! Not here: tar streams in (`archive_in`).

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::fd::{fail, io_fail, link_target, open_child, read_names, refuse_special, reopen};
use super::path::TreePath;
use super::tree::{TreeFiles, MAX_DEPTH};
use crate::EngineError;

impl TreeFiles {
    /// Writes `path` (a directory with everything below it, or one file or link) as a tar
    /// stream into `out`, under the path's last name (`.` for the root).
    pub(crate) fn tar_out(&self, path: &TreePath, out: &mut dyn Write) -> Result<(), EngineError> {
        let mut tar = tar::Builder::new(out);
        tar.follow_symlinks(false);
        let (dir, name) = if path.is_root() {
            let dir = self
                .resolve(".", OFlags::PATH | OFlags::DIRECTORY)
                .map_err(|e| fail("/", e))?;
            (dir, ".".to_string())
        } else {
            let (dir, name) = self.parent(path)?;
            (dir, name.to_string())
        };
        if path.is_root() {
            let root =
                reopen(&dir, OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| fail("/", e))?;
            let st = rustix::fs::fstat(&root).map_err(|e| fail("/", e))?;
            append_header(&mut tar, ".", &st, tar::EntryType::Directory, 0, "/")?;
            walk(&mut tar, &root, ".", "", 0)?;
        } else {
            let st = rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| fail(path.shown(), e))?;
            if !matches!(
                FileType::from_raw_mode(st.st_mode),
                FileType::RegularFile | FileType::Directory | FileType::Symlink
            ) {
                refuse_special(path.shown(), &st)?;
            }
            let shown = path.shown().trim_end_matches('/').to_string();
            append_one(&mut tar, dir.as_fd(), OsStr::new(&name), &name, &shown, 0)?;
        }
        tar.into_inner()
            .and_then(|w| w.flush())
            .map_err(|e| io_fail(path.shown(), e))
    }
}

/// Appends a header with `st`'s mode, owner and time, and `size` bytes to follow (`data`).
fn append_header(
    tar: &mut tar::Builder<&mut dyn Write>,
    name: &str,
    st: &rustix::fs::Stat,
    kind: tar::EntryType,
    size: u64,
    shown: &str,
) -> Result<tar::Header, EngineError> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(size);
    if kind == tar::EntryType::Directory {
        let name = if name.ends_with('/') {
            name.to_string()
        } else {
            format!("{name}/")
        };
        tar.append_data(&mut h, name, std::io::empty())
            .map_err(|e| io_fail(shown, e))?;
    }
    Ok(h)
}

/// Appends `name` of `dir` (stored as `stored`, shown as `shown`) and, for a directory,
/// everything below it.
fn append_one(
    tar: &mut tar::Builder<&mut dyn Write>,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    stored: &str,
    shown: &str,
    level: u32,
) -> Result<(), EngineError> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) if level > 0 => return Ok(()), // gone while walked
        Err(e) => return Err(fail(shown, e)),
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            append_header(tar, stored, &st, tar::EntryType::Directory, 0, shown)?;
            let sub = match open_child(dir, name, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())
            {
                Ok(sub) => sub,
                Err(Errno::NOENT | Errno::XDEV) if level > 0 => return Ok(()),
                Err(e) => return Err(fail(shown, e)),
            };
            walk(tar, &sub, stored, shown, level + 1)
        }
        FileType::Symlink => {
            let target = link_target(dir, name).unwrap_or_default();
            let mut h = append_header(tar, stored, &st, tar::EntryType::Symlink, 0, shown)?;
            tar.append_link(&mut h, stored, target)
                .map_err(|e| io_fail(shown, e))
        }
        FileType::RegularFile => {
            let fd = match open_child(dir, name, OFlags::PATH, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if level > 0 => return Ok(()),
                Err(e) => return Err(fail(shown, e)),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| fail(shown, e))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                return Ok(()); // swapped for something else while walked
            }
            let file =
                std::fs::File::from(reopen(&fd, OFlags::RDONLY).map_err(|e| fail(shown, e))?);
            let size = u64::try_from(st.st_size).unwrap_or(0);
            let mut h = append_header(tar, stored, &st, tar::EntryType::Regular, size, shown)?;
            // Exactly `size` bytes, whatever the file does meanwhile (a running sandbox may
            // grow or shrink it): the tar header has promised them.
            let data = file.take(size).chain(std::io::repeat(0)).take(size);
            tar.append_data(&mut h, stored, data)
                .map_err(|e| io_fail(shown, e))
        }
        // Device nodes, FIFOs and sockets are never opened, nor copied.
        _ => Ok(()),
    }
}

/// Appends every entry of directory `dir` (stored under `stored/`).
fn walk(
    tar: &mut tar::Builder<&mut dyn Write>,
    dir: &OwnedFd,
    stored: &str,
    shown: &str,
    level: u32,
) -> Result<(), EngineError> {
    if level > 4 * MAX_DEPTH {
        return Err(EngineError::InvalidArgument(format!(
            "{shown} is nested too deeply to copy at once: copy its deeper directories one by one"
        )));
    }
    let mut names = read_names(dir, if shown.is_empty() { "/" } else { shown })?;
    names.sort();
    for name in names {
        let text = String::from_utf8_lossy(name.as_bytes()).into_owned();
        let os = OsStr::from_bytes(name.as_bytes());
        let below = if stored == "." {
            text.clone()
        } else {
            format!("{stored}/{text}")
        };
        append_one(
            tar,
            dir.as_fd(),
            os,
            &below,
            &format!("{shown}/{text}"),
            level,
        )?;
    }
    Ok(())
}
