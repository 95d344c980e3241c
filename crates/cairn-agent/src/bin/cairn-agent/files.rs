//! File operations cairnd asks for: the files API of a running sandbox whose kernel caches
//! its files (gVisor), where the host cannot change them underneath it. They run here, as
//! the sandbox's root, through the sandbox's own kernel.
//!
//! Like the host's files API they never enter another mounted filesystem (a path whose
//! directory is on another device than `/` fails with `EXDEV`), and never follow a final
//! symlink when they replace or remove it. Every answer is an `entry`, `done` or
//! `file-error` with the errno, which cairnd words as it words its own.
//!
//! A `put-file` is written under a temporary name beside its target and renamed over it at
//! the end; a connection that ends first (or a quiesce) removes the temporary file.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cairn_agent::proto::{FileStat, Frame, Message, WRITTEN_EVERY};

use crate::link::Link;

/// A `put-file` under way.
struct Put {
    tmp: PathBuf,
    path: PathBuf,
    file: Option<File>,
    mode: u32,
    uid: u32,
    gid: u32,
    sync: bool,
    written: u64,
    acked: u64,
    /// The first error; the rest of the bytes are then dropped.
    failed: Option<i32>,
}

/// The `put-file`s under way, by channel.
#[derive(Default)]
pub struct Files {
    puts: Mutex<HashMap<u32, Put>>,
}

type Answer = Result<Message, i32>;

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// An absolute path, or `EINVAL`.
fn absolute(path: &str) -> Result<PathBuf, i32> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(libc::EINVAL);
    }
    Ok(PathBuf::from(path))
}

/// `path`'s directory, which must be on the root's filesystem (`EXDEV` otherwise), and its
/// name.
fn parent_on_root(path: &Path) -> Result<(PathBuf, std::ffi::OsString), i32> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        // `/` itself.
        return Err(libc::EBUSY);
    };
    let root = std::fs::metadata("/").map_err(|e| errno(&e))?;
    let here = std::fs::metadata(dir).map_err(|e| errno(&e))?;
    if !here.is_dir() {
        return Err(libc::ENOTDIR);
    }
    if here.dev() != root.dev() {
        return Err(libc::EXDEV);
    }
    Ok((dir.to_path_buf(), name.to_os_string()))
}

/// What `path` is, not following a final symlink.
fn stat(path: &Path) -> Answer {
    let m = std::fs::symlink_metadata(path).map_err(|e| errno(&e))?;
    let t = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if t.is_file() {
        "file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "char_device"
    } else if t.is_block_device() {
        "block_device"
    } else {
        "unknown"
    };
    let target = t
        .is_symlink()
        .then(|| std::fs::read_link(path).ok())
        .flatten()
        .map(|t| t.to_string_lossy().into_owned());
    Ok(Message::Entry(FileStat {
        kind: kind.into(),
        size: m.size(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime: m.mtime(),
        target,
    }))
}

fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<(), i32> {
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, uid, gid).map_err(|e| errno(&e))
}

fn mkdir(path: &Path, parents: bool, mode: u32, uid: Option<u32>, gid: Option<u32>) -> Answer {
    if parents && path == Path::new("/") {
        return stat(path);
    }
    let (dir, name) = parent_on_root(path).or_else(|e| {
        // With parents, missing directories above are made first.
        if parents && e == libc::ENOENT {
            if let Some(up) = path.parent() {
                mkdir(up, true, 0o755, None, None)?;
                return parent_on_root(path);
            }
        }
        Err(e)
    })?;
    let at = dir.join(name);
    match std::fs::create_dir(&at) {
        Ok(()) => {
            chown(&at, uid, gid)?;
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(|e| errno(&e))?;
        }
        Err(e) if parents && e.kind() == std::io::ErrorKind::AlreadyExists => {
            if !std::fs::metadata(&at).map_err(|e| errno(&e))?.is_dir() {
                return Err(libc::EEXIST);
            }
        }
        Err(e) => return Err(errno(&e)),
    }
    stat(&at)
}

fn remove(path: &Path, recursive: bool) -> Answer {
    let (dir, name) = parent_on_root(path)?;
    let at = dir.join(name);
    let m = std::fs::symlink_metadata(&at).map_err(|e| errno(&e))?;
    let done = if !m.is_dir() {
        std::fs::remove_file(&at)
    } else if recursive {
        std::fs::remove_dir_all(&at)
    } else {
        std::fs::remove_dir(&at)
    };
    done.map_err(|e| errno(&e))?;
    Ok(Message::Done)
}

fn rename(from: &Path, to: &Path) -> Answer {
    let (from_dir, from_name) = parent_on_root(from)?;
    let (to_dir, to_name) = parent_on_root(to)?;
    let to = to_dir.join(to_name);
    std::fs::rename(from_dir.join(from_name), &to).map_err(|e| errno(&e))?;
    stat(&to)
}

/// Removes what is at `at` unless it is a directory (`EISDIR` then), as a new entry replaces
/// a file, link or special file.
fn clear(at: &Path) -> Result<(), i32> {
    match std::fs::symlink_metadata(at) {
        Ok(m) if m.is_dir() => Err(libc::EISDIR),
        Ok(_) => std::fs::remove_file(at).map_err(|e| errno(&e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(errno(&e)),
    }
}

fn symlink(path: &Path, target: &str, uid: Option<u32>, gid: Option<u32>) -> Answer {
    let (dir, name) = parent_on_root(path)?;
    let at = dir.join(name);
    clear(&at)?;
    std::os::unix::fs::symlink(target, &at).map_err(|e| errno(&e))?;
    chown(&at, uid, gid)?;
    Ok(Message::Done)
}

fn hard_link(path: &Path, existing: &Path) -> Answer {
    let (src_dir, src_name) = parent_on_root(existing)?;
    let src = src_dir.join(src_name);
    if !std::fs::symlink_metadata(&src)
        .map_err(|e| errno(&e))?
        .is_file()
    {
        return Err(libc::EINVAL);
    }
    let (dir, name) = parent_on_root(path)?;
    let at = dir.join(name);
    clear(&at)?;
    std::fs::hard_link(&src, &at).map_err(|e| errno(&e))?;
    Ok(Message::Done)
}

impl Files {
    /// Runs the file operation `msg` asked on `channel` (anything else is ignored).
    pub fn handle(&self, link: &Link, channel: u32, msg: Message) {
        let answer = match msg {
            Message::Stat { path } => absolute(&path).and_then(|p| stat(&p)),
            Message::Mkdir {
                path,
                parents,
                mode,
                uid,
                gid,
            } => absolute(&path).and_then(|p| mkdir(&p, parents, mode, uid, gid)),
            Message::Remove { path, recursive } => {
                absolute(&path).and_then(|p| remove(&p, recursive))
            }
            Message::Rename { from, to } => {
                absolute(&from).and_then(|f| absolute(&to).and_then(|t| rename(&f, &t)))
            }
            Message::Symlink {
                path,
                target,
                uid,
                gid,
            } => absolute(&path).and_then(|p| symlink(&p, &target, uid, gid)),
            Message::HardLink { path, existing } => {
                absolute(&path).and_then(|p| absolute(&existing).and_then(|e| hard_link(&p, &e)))
            }
            Message::PutFile {
                path,
                mode,
                uid,
                gid,
                sync,
            } => {
                match absolute(&path).and_then(|p| self.begin(channel, &p, mode, uid, gid, sync)) {
                    Ok(()) => return,
                    Err(e) => Err(e),
                }
            }
            _ => return,
        };
        link.send(Frame::control(channel, &answer_message(answer)));
    }

    /// Gives up the `put-file` on `channel`, if any.
    pub fn cancel(&self, channel: u32) {
        if let Some(put) = self.lock().remove(&channel) {
            drop(put.file);
            let _ = std::fs::remove_file(&put.tmp);
        }
    }

    /// Starts a `put-file` on `channel`.
    fn begin(
        &self,
        channel: u32,
        path: &Path,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        sync: bool,
    ) -> Result<(), i32> {
        let (dir, name) = parent_on_root(path)?;
        let at = dir.join(&name);
        let old = match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => return Err(libc::EISDIR),
            Ok(m) if m.is_file() => Some(m),
            Ok(m) if m.file_type().is_symlink() => None,
            Ok(_) => return Err(libc::EINVAL),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(errno(&e)),
        };
        let tmp = dir.join(format!(
            ".cairn-upload-{:08x}-{channel:08x}",
            std::process::id()
        ));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| errno(&e))?;
        let put = Put {
            tmp,
            path: at,
            file: Some(file),
            mode: mode
                .or(old.as_ref().map(|m| m.mode() & 0o7777))
                .unwrap_or(0o644),
            uid: uid.or(old.as_ref().map(MetadataExt::uid)).unwrap_or(0),
            gid: gid.or(old.as_ref().map(MetadataExt::gid)).unwrap_or(0),
            sync,
            written: 0,
            acked: 0,
            failed: None,
        };
        self.lock().insert(channel, put);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Put>> {
        self.puts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes for the `put-file` on `channel`; false when there is none (the bytes are a
    /// process's stdin).
    pub fn data(&self, link: &Link, channel: u32, bytes: &[u8]) -> bool {
        let mut puts = self.lock();
        let Some(put) = puts.get_mut(&channel) else {
            return false;
        };
        if put.failed.is_some() {
            return true;
        }
        let wrote = put.file.as_mut().map(|f| f.write_all(bytes));
        match wrote {
            Some(Ok(())) => {
                put.written += bytes.len() as u64;
                if put.written - put.acked >= WRITTEN_EVERY {
                    put.acked = put.written;
                    link.send(Frame::control(
                        channel,
                        &Message::Written { bytes: put.written },
                    ));
                }
            }
            Some(Err(e)) => {
                let e = errno(&e);
                put.failed = Some(e);
                put.file = None;
                let _ = std::fs::remove_file(&put.tmp);
                // Said at once, so that cairnd stops sending.
                link.send(Frame::control(channel, &Message::FileError { errno: e }));
            }
            None => {}
        }
        true
    }

    /// The end of the bytes for the `put-file` on `channel`; false when there is none.
    pub fn close(&self, link: &Link, channel: u32) -> bool {
        let Some(mut put) = self.lock().remove(&channel) else {
            return false;
        };
        if put.failed.is_some() {
            return true;
        }
        let file = put.file.take();
        let done = finish(&put, file);
        if done.is_err() {
            let _ = std::fs::remove_file(&put.tmp);
        }
        let answer = done.and_then(|()| stat(&put.path));
        link.send(Frame::control(channel, &answer_message(answer)));
        true
    }

    /// The connection ended (or a checkpoint follows): the unfinished files are removed.
    pub fn abandon(&self) {
        for (_, put) in self.lock().drain() {
            drop(put.file);
            let _ = std::fs::remove_file(&put.tmp);
        }
    }
}

/// Owner, mode, sync, rename into place.
fn finish(put: &Put, file: Option<File>) -> Result<(), i32> {
    let file = file.ok_or(libc::EIO)?;
    std::os::unix::fs::fchown(&file, Some(put.uid), Some(put.gid)).map_err(|e| errno(&e))?;
    // After the owner: chown clears the set-id bits.
    file.set_permissions(std::fs::Permissions::from_mode(put.mode))
        .map_err(|e| errno(&e))?;
    if put.sync {
        file.sync_all().map_err(|e| errno(&e))?;
    }
    drop(file);
    std::fs::rename(&put.tmp, &put.path).map_err(|e| errno(&e))?;
    if put.sync {
        if let Some(dir) = put.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| errno(&e))?;
        }
    }
    Ok(())
}

fn answer_message(answer: Answer) -> Message {
    answer.unwrap_or_else(|errno| Message::FileError { errno })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_and_nul_bytes_are_refused() {
        assert_eq!(absolute("etc/passwd").err(), Some(libc::EINVAL));
        assert_eq!(absolute("/a\0b").err(), Some(libc::EINVAL));
        assert!(absolute("/etc/passwd").is_ok());
    }

    #[test]
    fn the_root_cannot_be_replaced_or_removed() {
        assert_eq!(parent_on_root(Path::new("/")).err(), Some(libc::EBUSY));
    }
}
