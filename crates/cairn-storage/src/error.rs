//! The errors of the storage crate: one variant per thing a caller (or the
//! person running `cairnd`) can act on. Messages are one line and say what
//! to do.

use std::path::PathBuf;

use cairn_cmd::CmdError;

/// What `apt-get` installs to get `mkfs.btrfs` and `btrfs`.
pub const BTRFS_PROGS_HINT: &str = "install btrfs-progs: apt-get install btrfs-progs";

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `mkfs.btrfs` or `btrfs` is not installed.
    #[error("'{program}' was not found: {BTRFS_PROGS_HINT}")]
    BtrfsProgsMissing {
        /// The missing program.
        program: String,
    },
    /// The pool image could not be attached to a loop device.
    #[error("no free loop device to mount the pool image {image}: load the loop module (modprobe loop) or free one with losetup -D ({detail})")]
    NoLoopDevice {
        /// The pool image.
        image: PathBuf,
        /// The first line of what `mount` said.
        detail: String,
    },
    /// The running kernel cannot mount btrfs.
    #[error("the kernel has no btrfs support, so the pool image {image} cannot be mounted: load it with 'modprobe btrfs' or boot a kernel with btrfs")]
    KernelWithoutBtrfs {
        /// The pool image.
        image: PathBuf,
    },
    /// The disk holding the data directory cannot hold the pool image.
    #[error("not enough free disk for the pool image at {path}: free {missing_gib} GiB or set a smaller pool size (the pool needs {needed_gib} GiB, {free_gib} GiB are free)")]
    DiskFull {
        /// Where the image was to be created.
        path: PathBuf,
        /// How much more space is needed, rounded up to whole GiB.
        missing_gib: u64,
        /// The configured pool size, in GiB (rounded up).
        needed_gib: u64,
        /// The free space on that disk, in GiB (rounded down).
        free_gib: u64,
    },
    /// The configured pool size is below what btrfs can work with.
    #[error("a pool of {size_bytes} bytes is too small: btrfs needs at least {min_mib} MiB; set a larger pool size")]
    PoolTooSmall {
        /// The configured size.
        size_bytes: u64,
        /// The smallest size accepted, in MiB.
        min_mib: u64,
    },
    /// Mounting (or unmounting) the pool failed for another reason.
    #[error("could not {action} the pool at {mountpoint}: {detail}")]
    Mount {
        /// `mount` or `unmount`.
        action: &'static str,
        /// The pool directory.
        mountpoint: PathBuf,
        /// What went wrong, and what to do when known.
        detail: String,
    },
    /// Something that is not btrfs is mounted where the pool belongs.
    #[error("{mountpoint} is a mount of '{fstype}', not btrfs: unmount it (umount {mountpoint}) so Cairn can mount its pool there")]
    ForeignMount {
        /// The pool directory.
        mountpoint: PathBuf,
        /// The file system type found there.
        fstype: String,
    },
    /// A path given to a subvolume operation is not inside the pool.
    #[error("{path} is not inside the storage pool {root}: refusing to touch it")]
    OutsidePool {
        /// The path given.
        path: PathBuf,
        /// The pool root.
        root: PathBuf,
    },
    /// The target of a create or snapshot already exists.
    #[error("{0} already exists")]
    AlreadyExists(PathBuf),
    /// The path exists but is not a btrfs subvolume.
    #[error("{0} is not a btrfs subvolume")]
    NotASubvolume(PathBuf),
    /// The path (or its parent directory) does not exist.
    #[error("{0} does not exist")]
    NotFound(PathBuf),
    /// A file system call failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing, e.g. "creating".
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A block index (what a later memory checkpoint may share) cannot be used.
    #[error("the block index {path} cannot be used: {reason}")]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A snapshot's manifest cannot be read (see [`crate::Manifest::load`]).
    #[error("the snapshot manifest {path} cannot be used: {reason}")]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A `btrfs` command printed something we could not read.
    #[error("could not read the output of '{argv}': {output}")]
    UnexpectedOutput {
        /// The command line.
        argv: String,
        /// What it printed.
        output: String,
    },
    /// Write limits (btrfs simple quotas) cannot be turned on in the pool.
    #[error("disk limits cannot be enforced in the pool: {detail}")]
    QuotasUnavailable {
        /// Why, and what to do.
        detail: String,
    },
    /// A write limit was asked of a driver whose quotas are off.
    #[error("write limits are off in this pool: no tree can have one")]
    QuotasOff,
    /// An external command failed.
    #[error(transparent)]
    Command(#[from] CmdError),
}

impl StorageError {
    /// Whether it failed for want of space: the pool (or the disk under it) is full
    /// (`ENOSPC`), or a write limit was reached (`EDQUOT`).
    pub fn is_no_space(&self) -> bool {
        match self {
            StorageError::DiskFull { .. } => true,
            StorageError::Io { source, .. } => io_is_no_space(source),
            StorageError::Command(e) => e.stderr().is_some_and(text_is_no_space),
            _ => false,
        }
    }

    /// An [`StorageError::Io`] for `action` on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io {
            action,
            path,
            source,
        }
    }
}

/// Turns a failed btrfs-progs command into a [`StorageError`], naming the
/// package to install when the program is missing.
pub(crate) fn from_btrfs_cmd(err: CmdError) -> StorageError {
    match err {
        CmdError::NotFound { program, .. } => StorageError::BtrfsProgsMissing { program },
        other => StorageError::Command(other),
    }
}

/// The first non-empty line of a command's stderr, for one-line messages.
pub(crate) fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// Whether an I/O error is `ENOSPC` or `EDQUOT`.
pub fn io_is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
}

/// Whether a message (a command's stderr, an error's text) reports `ENOSPC` or `EDQUOT`
/// the way `strerror` and Rust print them.
pub fn text_is_no_space(text: &str) -> bool {
    [
        "No space left on device",
        "Disk quota exceeded",
        "os error 28)",
        "os error 122)",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}
