//! What makes each sandbox itself rather than a copy of the sandbox it came from: its
//! hostname (the sandbox id) and its machine id (`/etc/machine-id`). A fork shares its
//! snapshot's files and, when stateful, its processes' memory; these two it gets anew
//! (docs/snapshots.md, "What a fork shares, and what it does not").
//!
//! Not for network identity: every sandbox has a namespace and address of its own
//! (`network`). Files are written by descriptor inside the sandbox's root, never through a
//! path a tenant's symlinks could lead out of it.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use cairn_db::SandboxRecord;

use crate::{Engine, EngineError, Result};

/// The file name of the machine id, in `/etc` (and in `/var/lib/dbus`, where older images
/// keep a copy of their own).
const MACHINE_ID: &str = "machine-id";

/// The temporary name a new machine id is written under before it is renamed into place.
const MACHINE_ID_TMP: &str = ".machine-id.cairn-tmp";

/// A new machine id: 128 random bits as 32 lowercase hexadecimal digits (systemd's format,
/// machine-id(5)).
pub(crate) fn new_machine_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Whether `text` is a machine id: 32 lowercase hexadecimal digits, maybe with a newline.
pub(crate) fn is_machine_id(text: &str) -> bool {
    let id = text.strip_suffix('\n').unwrap_or(text);
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Opens the directory `root` itself.
fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens `path` (relative) under `root` as the sandbox would see it: symlinks are followed
/// with `root` as `/`, and `..` stops there (`RESOLVE_IN_ROOT`). `None` when it is missing
/// or not a directory.
fn dir_in_root(root: &OwnedFd, path: &str) -> io::Result<Option<OwnedFd>> {
    match rustix::fs::openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What `name` in `dir` is, without following it: `None` when it does not exist.
fn kind_of(dir: &OwnedFd, name: &str) -> io::Result<Option<rustix::fs::FileType>> {
    match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(rustix::fs::FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Replaces `name` in `dir` with a file holding `data` (mode 0444): temporary name, fsync,
/// rename. A symlink there is replaced, never followed. `false` (nothing written) when
/// `name` is a directory.
fn replace_file(dir: &OwnedFd, name: &str, data: &[u8]) -> io::Result<bool> {
    if kind_of(dir, name)? == Some(rustix::fs::FileType::Directory) {
        return Ok(false);
    }
    match rustix::fs::unlinkat(dir, MACHINE_ID_TMP, rustix::fs::AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = rustix::fs::openat(
        dir,
        MACHINE_ID_TMP,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )?;
    let written = (|| {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o444))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(data)?;
        file.sync_all()?;
        rustix::fs::renameat(dir, MACHINE_ID_TMP, dir, name)?;
        rustix::fs::fsync(dir)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(dir, MACHINE_ID_TMP, rustix::fs::AtFlags::empty());
        return Err(e);
    }
    Ok(true)
}

/// Writes `id` as the machine id of the tree at `root`: `/etc/machine-id`, and
/// `/var/lib/dbus/machine-id` when that is a file of its own (rather than a link to the
/// first). Paths are resolved inside `root`. `false` when the tree has no `/etc` directory
/// or its `machine-id` is a directory: nothing is written then.
pub(crate) fn write_machine_id(root: &Path, id: &str) -> io::Result<bool> {
    let root = open_root(root)?;
    let Some(etc) = dir_in_root(&root, "etc")? else {
        return Ok(false);
    };
    let line = format!("{id}\n");
    if !replace_file(&etc, MACHINE_ID, line.as_bytes())? {
        return Ok(false);
    }
    if let Some(dbus) = dir_in_root(&root, "var/lib/dbus")? {
        if kind_of(&dbus, MACHINE_ID)? == Some(rustix::fs::FileType::RegularFile) {
            replace_file(&dbus, MACHINE_ID, line.as_bytes())?;
        }
    }
    Ok(true)
}

/// The machine id in the tree at `root` (`/etc/machine-id`, resolved inside it), when that is
/// a regular file holding a valid one.
pub(crate) fn read_machine_id(root: &Path) -> Option<String> {
    let root = open_root(root).ok()?;
    let fd = rustix::fs::openat2(
        &root,
        "etc/machine-id",
        // Non-blocking: a FIFO planted there must not hold the caller up.
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let st = rustix::fs::fstat(fd.as_fd()).ok()?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
        return None;
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(64)
        .read_to_string(&mut text)
        .ok()?;
    is_machine_id(&text).then(|| text.trim_end().to_string())
}

impl Engine {
    /// Gives the tree at `root` (a new sandbox's root, or a restore's staged one, before any
    /// process runs on it) the machine id `id`, or a new one.
    pub(crate) async fn give_machine_id(&self, root: PathBuf, id: Option<String>) -> Result<()> {
        let id = id.unwrap_or_else(new_machine_id);
        let written = tokio::task::spawn_blocking(move || write_machine_id(&root, &id))
            .await
            .map_err(|e| EngineError::failed("the machine id's writing task ended abnormally", e))?
            .map_err(|e| EngineError::from_io("could not write the sandbox's machine id", e))?;
        if !written {
            tracing::debug!(
                "no /etc directory (or /etc/machine-id is a directory): no machine id written"
            );
        }
        Ok(())
    }

    /// Gives sandbox `r`, whose processes were just restored from another sandbox's
    /// checkpoint (a stateful fork, a restore `--to` it), its own hostname: the checkpoint
    /// carries the hostname of the sandbox it was taken from. Called before the sandbox is
    /// reported running. Its agent's `init` sets it where the runtime lets it (gVisor);
    /// otherwise, or when the agent could not, the runtime does. A failure (under gVisor
    /// without the agent: an image without a `hostname` program) is logged and leaves the
    /// old hostname: the sandbox itself is fine.
    pub(crate) async fn rename_restored(&self, r: &SandboxRecord) {
        let Ok(rt) = self.runtime(r.runtime) else {
            return;
        };
        let started = std::time::Instant::now();
        // Through the agent's init where it can (no process started in the sandbox).
        if self.agent_renamed(r).await {
            tracing::info!(
                sandbox = %r.id,
                elapsed_us = started.elapsed().as_micros() as u64,
                "restored processes given the sandbox's hostname by its agent"
            );
            return;
        }
        let scratch = self.run_dir(&r.id).join("exec");
        match rt
            .set_hostname(r.id.as_str(), r.id.as_str(), &scratch)
            .await
        {
            Ok(()) => tracing::info!(
                sandbox = %r.id,
                elapsed_us = started.elapsed().as_micros() as u64,
                "restored processes given the sandbox's hostname"
            ),
            Err(e) => tracing::warn!(
                sandbox = %r.id,
                error = %e,
                "the restored processes keep the hostname of the sandbox their checkpoint was taken from"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn machine_ids_are_32_lowercase_hex_digits_and_differ() {
        let a = new_machine_id();
        let b = new_machine_id();
        assert!(is_machine_id(&a) && is_machine_id(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(is_machine_id(&format!("{a}\n")));
        for bad in [
            "",
            "uninitialized\n",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcdef\n\n",
        ] {
            assert!(!is_machine_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_machine_id_replaces_the_old_one_with_a_read_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/machine-id"), "old\n").unwrap();
        let id = new_machine_id();
        assert!(write_machine_id(root, &id).unwrap());
        assert_eq!(
            std::fs::read_to_string(root.join("etc/machine-id")).unwrap(),
            format!("{id}\n")
        );
        let mode = std::fs::metadata(root.join("etc/machine-id"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        assert!(!root.join("etc").join(MACHINE_ID_TMP).exists());
        assert_eq!(read_machine_id(root), Some(id));
    }

    #[test]
    fn a_tree_without_etc_gets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!write_machine_id(dir.path(), &new_machine_id()).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert_eq!(read_machine_id(dir.path()), None);
    }

    #[test]
    fn symlinks_never_lead_the_write_out_of_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("machine-id");
        std::fs::write(&victim, "host\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();

        // /etc/machine-id pointing at a host file: the link is replaced, the file untouched.
        std::fs::create_dir(root.join("etc")).unwrap();
        symlink(&victim, root.join("etc/machine-id")).unwrap();
        let id = new_machine_id();
        assert!(write_machine_id(root, &id).unwrap());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host\n");
        assert!(!std::fs::symlink_metadata(root.join("etc/machine-id"))
            .unwrap()
            .file_type()
            .is_symlink());

        // /etc itself an absolute link to a host directory: resolved inside the root, where
        // it does not exist, so nothing is written anywhere.
        std::fs::remove_dir_all(root.join("etc")).unwrap();
        symlink(outside.path(), root.join("etc")).unwrap();
        assert!(!write_machine_id(root, &new_machine_id()).unwrap());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host\n");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
        // … and `..` stops at the root.
        std::fs::remove_file(root.join("etc")).unwrap();
        symlink("../../../../../../..", root.join("etc")).unwrap();
        assert!(write_machine_id(root, &new_machine_id()).unwrap());
        assert!(
            root.join(MACHINE_ID).is_file(),
            "written at the root's own /"
        );
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_relative_etc_link_inside_the_root_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("real-etc")).unwrap();
        symlink("/real-etc", root.join("etc")).unwrap();
        let id = new_machine_id();
        assert!(write_machine_id(root, &id).unwrap());
        assert_eq!(
            std::fs::read_to_string(root.join("real-etc/machine-id")).unwrap(),
            format!("{id}\n")
        );
        assert_eq!(read_machine_id(root), Some(id));
    }

    #[test]
    fn dbus_gets_the_same_id_only_when_it_keeps_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("var/lib/dbus")).unwrap();
        std::fs::write(root.join("var/lib/dbus/machine-id"), "old\n").unwrap();
        let id = new_machine_id();
        assert!(write_machine_id(root, &id).unwrap());
        assert_eq!(
            std::fs::read_to_string(root.join("var/lib/dbus/machine-id")).unwrap(),
            format!("{id}\n")
        );
        // A link (to /etc/machine-id, as Debian's dbus makes it) is left as it is.
        std::fs::remove_file(root.join("var/lib/dbus/machine-id")).unwrap();
        symlink("/etc/machine-id", root.join("var/lib/dbus/machine-id")).unwrap();
        let id = new_machine_id();
        assert!(write_machine_id(root, &id).unwrap());
        assert!(
            std::fs::symlink_metadata(root.join("var/lib/dbus/machine-id"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn odd_machine_id_files_are_not_read_or_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc/machine-id")).unwrap();
        assert!(!write_machine_id(root, &new_machine_id()).unwrap());
        assert!(root.join("etc/machine-id").is_dir());
        assert_eq!(read_machine_id(root), None);
        std::fs::remove_dir(root.join("etc/machine-id")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("etc/machine-id"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        // A FIFO neither blocks the read nor counts as an id.
        assert_eq!(read_machine_id(root), None);
        std::fs::remove_file(root.join("etc/machine-id")).unwrap();
        std::fs::write(root.join("etc/machine-id"), "uninitialized\n").unwrap();
        assert_eq!(read_machine_id(root), None);
    }
}
