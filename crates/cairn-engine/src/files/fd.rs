//! Descriptor helpers of the files API: the resolution flags, opening one name without
//! following anything, reopening an `O_PATH` descriptor, writing a new file through a
//! temporary name, and kernel errors in the caller's words (never a host path).
//!
//! Not here: the operations themselves (`tree`, `archive_out`, `archive_in`).

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use cairn_types::api::FileEntry;

use crate::EngineError;

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

/// The flags every resolution from the root uses.
pub(crate) fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV
}

/// The flags that open one name below a directory without following anything.
pub(crate) fn beneath() -> ResolveFlags {
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
        Errno::INVAL => EngineError::InvalidArgument(format!(
            "{path}: invalid operation (such as moving a directory into itself)"
        )),
        other => EngineError::failed(format!("file operation on {path}"), other),
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

/// Writes `body` as `name` in `dir`: a file with no name at first (`O_TMPFILE`), so that a
/// cairnd killed during the upload leaves nothing behind; once complete (mode, owner, with
/// `sync` fsync) it is linked under a temporary name and renamed over `name` (with `sync`,
/// fsync of the directory). Where the filesystem has no `O_TMPFILE` the file is written
/// under the temporary name from the start. On any failure the temporary file is removed.
pub(crate) fn write_new(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    shown: &str,
    opts: WriteOptions,
    body: &mut dyn Read,
    sync: bool,
) -> Result<(), EngineError> {
    let tmp = format!(".cairn-upload-{:016x}", rand::random::<u64>());
    let unnamed = rustix::fs::openat(
        dir,
        ".",
        OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    );
    let done = match unnamed {
        Ok(fd) => {
            let mut file = File::from(fd);
            fill(&mut file, shown, opts, body, sync)?;
            // Through /proc: linkat(AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH.
            rustix::fs::linkat(
                rustix::fs::CWD,
                format!("/proc/self/fd/{}", file.as_raw_fd()),
                dir,
                tmp.as_str(),
                AtFlags::SYMLINK_FOLLOW,
            )
            .map_err(|e| fail(shown, e))?;
            rustix::fs::renameat(dir, tmp.as_str(), dir, name).map_err(|e| fail(shown, e))
        }
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
            let fd = open_child(
                dir,
                OsStr::new(&tmp),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| fail(shown, e))?;
            let mut file = File::from(fd);
            fill(&mut file, shown, opts, body, sync).and_then(|()| {
                rustix::fs::renameat(dir, tmp.as_str(), dir, name).map_err(|e| fail(shown, e))
            })
        }
        Err(e) => return Err(fail(shown, e)),
    };
    if done.is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
        return done;
    }
    if !sync {
        return Ok(());
    }
    rustix::fs::fsync(dir).map_err(|e| fail(shown, e))
}

/// Copies `body` into the new `file`, then sets its owner and mode and syncs it.
fn fill(
    file: &mut File,
    shown: &str,
    opts: WriteOptions,
    body: &mut dyn Read,
    sync: bool,
) -> Result<(), EngineError> {
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
        None => EngineError::failed(format!("file operation on {shown}"), e),
    }
}
