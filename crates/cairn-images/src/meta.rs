//! File metadata: ownership, permission bits, timestamps and extended
//! attributes. (Special files are never created: see `crate::dropped`.)
//!
//! Every call here acts on the path itself and never follows a symlink in
//! the final component, except [`set_mode`], which callers use only on
//! things they just created and know are not symlinks.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{AtFlags, Timespec, Timestamps, XattrFlags, CWD};

/// Extended attributes we do not carry over: host security labels mean
/// nothing (or harm) inside a sandbox image.
const SKIPPED_XATTRS: &[&str] = &["security.selinux"];

/// Ownership, permissions and modification time of one filesystem object.
#[derive(Clone, Debug, Default)]
pub(crate) struct Meta {
    /// Permission bits including setuid/setgid/sticky (`0o7777`).
    pub(crate) mode: u32,
    /// Owner.
    pub(crate) uid: u32,
    /// Group.
    pub(crate) gid: u32,
    /// Modification time: seconds since the epoch.
    pub(crate) mtime_secs: i64,
    /// Modification time: nanoseconds.
    pub(crate) mtime_nsecs: u32,
    /// Extended attributes to set.
    pub(crate) xattrs: Vec<(OsString, Vec<u8>)>,
}

/// Whether we may give files away (chown).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Privilege {
    root: bool,
}

impl Privilege {
    /// The privilege of this process.
    pub(crate) fn current() -> Self {
        Self {
            root: rustix::process::geteuid().is_root(),
        }
    }
}

/// Sets the owner without following a final symlink. Unprivileged imports
/// (tests, rootless use) keep their own ownership instead of failing.
pub(crate) fn set_owner(path: &Path, uid: u32, gid: u32, privilege: Privilege) -> io::Result<()> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Err(e) if !privilege.root && e.kind() == io::ErrorKind::PermissionDenied => {
            tracing::debug!(path = %path.display(), uid, gid, "not root: ownership not preserved");
            Ok(())
        }
        other => other,
    }
}

/// Sets the permission bits. Follows symlinks: call it only on paths known
/// to be something else.
pub(crate) fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
}

/// Sets access and modification time (both to the given time) without
/// following a final symlink.
pub(crate) fn set_mtime(path: &Path, secs: i64, nsecs: u32) -> io::Result<()> {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: nsecs.min(999_999_999).into(),
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

/// Applies owner, then permission bits (a chown clears setuid bits, so the
/// order matters), extended attributes and the modification time.
/// Symlinks get owner, attributes and time only.
pub(crate) fn apply(
    path: &Path,
    meta: &Meta,
    is_symlink: bool,
    privilege: Privilege,
) -> io::Result<()> {
    set_owner(path, meta.uid, meta.gid, privilege)?;
    if !is_symlink {
        set_mode(path, meta.mode)?;
    }
    set_xattrs(path, &meta.xattrs);
    set_mtime(path, meta.mtime_secs, meta.mtime_nsecs)
}

/// Sets extended attributes, logging (not failing on) those the
/// destination filesystem or our privilege refuses.
pub(crate) fn set_xattrs(path: &Path, xattrs: &[(OsString, Vec<u8>)]) {
    for (name, value) in xattrs {
        if SKIPPED_XATTRS.iter().any(|s| OsStr::new(s) == name) {
            continue;
        }
        if let Err(e) = rustix::fs::lsetxattr(path, name.as_os_str(), value, XattrFlags::empty()) {
            tracing::warn!(path = %path.display(), xattr = %name.to_string_lossy(), error = %e, "extended attribute not preserved");
        }
    }
}

/// Reads the extended attributes of `path` (not following a final
/// symlink). Filesystems without xattr support yield none.
pub(crate) fn read_xattrs(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let len = match rustix::fs::llistxattr_query(path) {
        Ok(len) => len,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; len];
    let len = rustix::fs::llistxattr(path, &mut names[..])?;
    names.truncate(len);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        if SKIPPED_XATTRS.iter().any(|s| OsStr::new(s) == name) {
            continue;
        }
        let size = match rustix::fs::lgetxattr_query(path, name) {
            Ok(size) => size,
            // Removed between list and get: nothing to copy.
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; size];
        let size = rustix::fs::lgetxattr(path, name, &mut value[..])?;
        value.truncate(size);
        out.push((name.to_os_string(), value));
    }
    Ok(out)
}
