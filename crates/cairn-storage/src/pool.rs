//! The pool: the one btrfs file system under `$CAIRN_HOME/pool` that holds
//! every image, sandbox root and snapshot.
//!
//! When the data directory is already on btrfs, the pool is a plain
//! directory on it. Otherwise `cairnd` creates a sparse image file
//! (`pool.img`) on first start, formats it with `mkfs.btrfs` and loop-mounts
//! it on `pool/`; later starts reuse the mount or mount the image again.
//!
//! Whatever holds it, the pool is always mounted `nodev` (not `nosuid`,
//! which would break `sudo` in images): no device node anywhere in it can be
//! opened, whoever made it — an image, `mknod` in a runc sandbox (which has
//! `CAP_MKNOD`), or gVisor's gofer opening host files on a sandbox's behalf.
//! A pool directory on the data directory's btrfs gets a bind mount of
//! itself to carry the flag; a mount without it (an administrator's, or an
//! older Cairn's) is remounted with it at every start.
//!
//! This module only finds, creates, mounts and measures the pool; making and
//! deleting subvolumes in it is [`crate::BtrfsStorage`]'s job.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_cmd::{Cmd, CmdError};

use crate::error::{first_line, from_btrfs_cmd, StorageError, BTRFS_PROGS_HINT};
use crate::mountinfo;

/// `f_type` of a btrfs file system in `statfs`.
pub const BTRFS_SUPER_MAGIC: u64 = 0x9123_683E;
/// Pool image size when none is configured: 20 GiB.
pub const DEFAULT_POOL_SIZE_BYTES: u64 = 20 << 30;
/// The smallest pool image Cairn creates: 256 MiB.
pub const MIN_POOL_SIZE_BYTES: u64 = 256 << 20;

/// The program that formats the pool image.
const MKFS_BTRFS: &str = "mkfs.btrfs";
/// The directories every pool has, one per kind of tree.
const POOL_DIRS: [&str; 3] = ["images", "sandboxes", "snapshots"];
const GIB: u64 = 1 << 30;

/// Where the pool lives and how large its image may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The data directory (`$CAIRN_HOME`); the pool is `home/pool`.
    pub home: PathBuf,
    /// Size of `home/pool.img` when Cairn has to create it (the data
    /// directory is not on btrfs). Ignored for an existing image.
    pub image_size_bytes: u64,
}

impl PoolConfig {
    /// A configuration for `home` with the default image size (20 GiB).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        PoolConfig {
            home: home.into(),
            image_size_bytes: DEFAULT_POOL_SIZE_BYTES,
        }
    }
}

/// What holds the pool's btrfs file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolBacking {
    /// A directory on a btrfs file system that Cairn did not mount: the data
    /// directory is on btrfs, or an administrator mounted one on `pool/`.
    Directory,
    /// Cairn's sparse image file, loop-mounted on `pool/`.
    LoopImage(PathBuf),
}

/// The btrfs pool of one data directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Pool {
    root: PathBuf,
    backing: PoolBacking,
}

/// Whether `path` is on a btrfs file system.
pub(crate) fn is_btrfs(path: &Path) -> Result<bool, StorageError> {
    let st = rustix::fs::statfs(path)
        .map_err(|e| StorageError::io("inspecting the file system of", path)(e.into()))?;
    // `f_type` is signed on some architectures; the magic is its low 32 bits.
    #[allow(clippy::unnecessary_cast, clippy::cast_sign_loss)]
    let magic = (st.f_type as u64) & 0xffff_ffff;
    Ok(magic == BTRFS_SUPER_MAGIC)
}

/// `statvfs` of `path`: (available to us, total) in bytes.
fn space(path: &Path) -> Result<(u64, u64), StorageError> {
    let st = rustix::fs::statvfs(path)
        .map_err(|e| StorageError::io("measuring the file system of", path)(e.into()))?;
    Ok((
        st.f_bavail.saturating_mul(st.f_frsize),
        st.f_blocks.saturating_mul(st.f_frsize),
    ))
}

/// Fsyncs a directory, so that a rename in it is durable.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("syncing", dir))
}

impl Pool {
    /// Finds the pool of `cfg.home`, creating and mounting it when needed,
    /// and makes sure `images/`, `sandboxes/` and `snapshots/` exist in it.
    ///
    /// In order: a btrfs file system already mounted on `home/pool` is
    /// reused; an existing `home/pool.img` is loop-mounted; a `home` on
    /// btrfs gets `home/pool` as a plain directory; otherwise a sparse image
    /// of `cfg.image_size_bytes` is created, formatted and loop-mounted.
    pub async fn open_or_create(cfg: PoolConfig) -> Result<Pool, StorageError> {
        Self::open_with(cfg, MKFS_BTRFS).await
    }

    /// [`Pool::open_or_create`] with the name of the formatting program, so
    /// tests can make it missing.
    pub(crate) async fn open_with(cfg: PoolConfig, mkfs: &str) -> Result<Pool, StorageError> {
        fs::create_dir_all(&cfg.home).map_err(StorageError::io("creating", &cfg.home))?;
        let home = fs::canonicalize(&cfg.home).map_err(StorageError::io("resolving", &cfg.home))?;
        let root = home.join("pool");
        fs::create_dir_all(&root).map_err(StorageError::io("creating", &root))?;
        let root = fs::canonicalize(&root).map_err(StorageError::io("resolving", &root))?;
        let image = home.join("pool.img");
        let image_exists = image.symlink_metadata().is_ok();

        let mounted = mountinfo::mount_at(&root)
            .map_err(StorageError::io("reading", "/proc/self/mountinfo"))?;
        let backing = match mounted {
            Some(m) if m.fstype == "btrfs" => {
                tracing::info!(pool = %root.display(), source = %m.source, "reusing the mounted pool");
                if image_exists {
                    PoolBacking::LoopImage(image)
                } else {
                    PoolBacking::Directory
                }
            }
            Some(m) => {
                return Err(StorageError::ForeignMount {
                    mountpoint: root,
                    fstype: m.fstype,
                })
            }
            None if image_exists => {
                mount_image(&image, &root).await?;
                PoolBacking::LoopImage(image)
            }
            None if is_btrfs(&home)? => {
                tracing::info!(pool = %root.display(), "the data directory is on btrfs; using it directly");
                PoolBacking::Directory
            }
            None => {
                create_image(&image, cfg.image_size_bytes, mkfs).await?;
                mount_image(&image, &root).await?;
                PoolBacking::LoopImage(image)
            }
        };
        ensure_nodev(&root)?;
        for dir in POOL_DIRS {
            let dir = root.join(dir);
            fs::create_dir_all(&dir).map_err(StorageError::io("creating", &dir))?;
        }
        Ok(Pool { root, backing })
    }

    /// The pool directory (`home/pool`, canonical). Every tree lives below it.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where read-only image subvolumes live (`pool/images`).
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    /// Where sandbox root subvolumes live (`pool/sandboxes`).
    pub fn sandboxes_dir(&self) -> PathBuf {
        self.root.join("sandboxes")
    }

    /// Where snapshot subvolumes and their manifests live (`pool/snapshots`).
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// What holds the pool.
    pub fn backing(&self) -> &PoolBacking {
        &self.backing
    }

    /// The pool image, when the pool is a loop-mounted image.
    pub fn image(&self) -> Option<&Path> {
        match &self.backing {
            PoolBacking::LoopImage(image) => Some(image),
            PoolBacking::Directory => None,
        }
    }

    /// Bytes still available for new data in the pool. Space of deleted
    /// subvolumes comes back shortly after the deletion, not at once.
    pub fn free_bytes(&self) -> Result<u64, StorageError> {
        Ok(space(&self.root)?.0)
    }

    /// Size of the file system holding the pool, in bytes.
    pub fn total_bytes(&self) -> Result<u64, StorageError> {
        Ok(space(&self.root)?.1)
    }

    /// Logs the processes that keep the pool busy (`fuser -vm`), for a failed unmount.
    async fn log_holders(&self) {
        let holders = match Cmd::new("fuser").arg("-vm").arg(&self.root).run().await {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            ),
            Err(e) => e.to_string(),
        };
        tracing::warn!(pool = %self.root.display(), %holders, "the pool is busy; unmounting again shortly");
    }

    /// Unmounts a loop-mounted pool image (a no-op for a pool that Cairn did
    /// not mount, or that is not mounted any more). Fails while something
    /// still uses the pool after a few tries over two seconds.
    pub async fn unmount(&self) -> Result<(), StorageError> {
        if self.image().is_none() {
            return Ok(());
        }
        let mounted = mountinfo::mount_at(&self.root)
            .map_err(StorageError::io("reading", "/proc/self/mountinfo"))?;
        if mounted.is_none() {
            return Ok(());
        }
        let mut tries = 1;
        let result = loop {
            let result = Cmd::new("umount")
                .arg(&self.root)
                .install_hint("apt-get install mount")
                .run()
                .await;
            match &result {
                Err(CmdError::Failed { stderr, .. })
                    if stderr.contains("busy") && tries < UNMOUNT_TRIES =>
                {
                    // Often a moment's holder: a child process that another thread
                    // forked while a file here was open keeps it until its exec.
                    if tries == 1 {
                        self.log_holders().await;
                    }
                    tries += 1;
                    tokio::time::sleep(UNMOUNT_RETRY_AFTER).await;
                }
                _ => break result,
            }
        };
        match result {
            Ok(_) => {
                tracing::info!(pool = %self.root.display(), "pool unmounted");
                Ok(())
            }
            Err(CmdError::Failed { stderr, .. }) => {
                let detail = if stderr.contains("busy") {
                    format!(
                        "it is busy: stop what uses it first ('fuser -vm {}' lists it)",
                        self.root.display()
                    )
                } else {
                    first_line(&stderr)
                };
                Err(StorageError::Mount {
                    action: "unmount",
                    mountpoint: self.root.clone(),
                    detail,
                })
            }
            Err(other) => Err(other.into()),
        }
    }
}

/// Makes sure the pool at `root` is mounted `nodev`: a mount without it is
/// remounted with it (keeping its other per-mount flags), and a pool that is
/// a plain directory first gets a bind mount of itself to carry the flag.
/// Checks the result in mountinfo, so a pool that cannot be made `nodev`
/// is refused rather than used.
fn ensure_nodev(root: &Path) -> Result<(), StorageError> {
    let read =
        || mountinfo::mount_at(root).map_err(StorageError::io("reading", "/proc/self/mountinfo"));
    let failed = |detail: String| StorageError::Mount {
        action: "mount nodev",
        mountpoint: root.to_path_buf(),
        detail,
    };
    let current = match read()? {
        Some(m) if m.has_option("nodev") => return Ok(()),
        Some(m) => {
            tracing::warn!(pool = %root.display(), options = %m.options, "the pool is mounted without nodev; remounting it nodev");
            m
        }
        None => {
            tracing::info!(pool = %root.display(), "bind-mounting the pool directory onto itself to mount it nodev");
            rustix::mount::mount_bind(root, root)
                .map_err(|e| failed(format!("bind mount: {e}")))?;
            read()?.ok_or_else(|| failed("the bind mount does not show in mountinfo".into()))?
        }
    };
    let flags = per_mount_flags(&current.options)
        | rustix::mount::MountFlags::BIND
        | rustix::mount::MountFlags::NODEV;
    rustix::mount::mount_remount(root, flags, "").map_err(|e| failed(format!("remount: {e}")))?;
    match read()? {
        Some(m) if m.has_option("nodev") => Ok(()),
        Some(m) => Err(failed(format!(
            "it is still mounted without nodev ({}); mount it with -o nodev yourself",
            m.options
        ))),
        None => Err(failed("the mount vanished".into())),
    }
}

/// The per-mount flags named in mountinfo's per-mount options, so that a
/// bind remount (which sets them all at once) keeps them.
fn per_mount_flags(options: &str) -> rustix::mount::MountFlags {
    use rustix::mount::MountFlags as F;
    options
        .split(',')
        .fold(F::empty(), |flags, option| match option {
            "ro" => flags | F::RDONLY,
            "nosuid" => flags | F::NOSUID,
            "nodev" => flags | F::NODEV,
            "noexec" => flags | F::NOEXEC,
            "noatime" => flags | F::NOATIME,
            "nodiratime" => flags | F::NODIRATIME,
            "relatime" => flags | F::RELATIME,
            "nosymfollow" => flags | F::NOSYMFOLLOW,
            _ => flags,
        })
}

/// How often `unmount` tries while the pool is busy, and how long it waits between tries.
const UNMOUNT_TRIES: u32 = 10;
const UNMOUNT_RETRY_AFTER: Duration = Duration::from_millis(200);

/// Creates a sparse btrfs image of `size` bytes at `image`, crash-safely:
/// temporary name, format, fsync, rename, fsync the directory.
async fn create_image(image: &Path, size: u64, mkfs: &str) -> Result<(), StorageError> {
    if size < MIN_POOL_SIZE_BYTES {
        return Err(StorageError::PoolTooSmall {
            size_bytes: size,
            min_mib: MIN_POOL_SIZE_BYTES >> 20,
        });
    }
    let dir = image.parent().unwrap_or(Path::new("/"));
    // A sparse image larger than the disk under it fails later with I/O
    // errors inside btrfs; refuse up front instead.
    let (free, _) = space(dir)?;
    let disk_full = || StorageError::DiskFull {
        path: image.to_path_buf(),
        missing_gib: size.saturating_sub(free).div_ceil(GIB).max(1),
        needed_gib: size.div_ceil(GIB),
        free_gib: free / GIB,
    };
    if free < size {
        return Err(disk_full());
    }
    let tmp = image.with_file_name("pool.img.tmp");
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            return Err(StorageError::io("removing the leftover", &tmp)(e));
        }
        _ => {}
    }
    tracing::info!(image = %image.display(), size, "creating the btrfs pool image");
    let file = fs::File::create(&tmp).map_err(StorageError::io("creating", &tmp))?;
    let formatted = async {
        file.set_len(size).map_err(|e| match e.kind() {
            ErrorKind::StorageFull | ErrorKind::FileTooLarge => disk_full(),
            _ => StorageError::io("sizing", &tmp)(e),
        })?;
        Cmd::new(mkfs)
            .args(["-q", "-f", "--nodiscard", "-L", "cairn-pool"])
            .arg(&tmp)
            .install_hint(BTRFS_PROGS_HINT)
            .timeout(Duration::from_secs(300))
            .run()
            .await
            .map_err(|e| match e {
                CmdError::Failed { ref stderr, .. } if stderr.contains("No space left") => {
                    disk_full()
                }
                other => from_btrfs_cmd(other),
            })?;
        file.sync_all().map_err(StorageError::io("syncing", &tmp))
    }
    .await;
    if let Err(e) = formatted {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, image).map_err(StorageError::io("renaming", &tmp))?;
    sync_dir(dir)
}

/// Switches the loop device under `root` to direct I/O, so the pool's writes go to the
/// image file without passing through the host's page cache as well: every byte
/// written to the pool would otherwise be cached twice (once per file system) and
/// copied once more on its way to disk. Best effort: a backing file system without
/// O_DIRECT (tmpfs) keeps buffered I/O.
async fn direct_io(root: &Path) {
    let device = match Cmd::new("findmnt")
        .args(["-n", "-o", "SOURCE", "--mountpoint"])
        .arg(root)
        .run()
        .await
    {
        Ok(out) => out.stdout_str(),
        Err(e) => {
            tracing::warn!(pool = %root.display(), error = %e, "cannot find the pool's loop device");
            return;
        }
    };
    match Cmd::new("losetup")
        .arg("--direct-io=on")
        .arg(&device)
        .run()
        .await
    {
        Ok(_) => tracing::info!(device = %device, "pool loop device uses direct I/O"),
        Err(e) => {
            tracing::warn!(device = %device, error = %e, "pool loop device keeps buffered I/O")
        }
    }
}

/// Loop-mounts the btrfs image `image` on `root`, turning the usual failures
/// into errors that say what to do.
async fn mount_image(image: &Path, root: &Path) -> Result<(), StorageError> {
    tracing::info!(image = %image.display(), pool = %root.display(), "mounting the pool image");
    let result = Cmd::new("mount")
        .args(["-t", "btrfs", "-o", "loop,nodev"])
        .arg(image)
        .arg(root)
        .install_hint("apt-get install mount")
        .run()
        .await;
    let stderr = match result {
        Ok(_) => {
            direct_io(root).await;
            return Ok(());
        }
        Err(CmdError::Failed { stderr, .. }) => stderr,
        Err(other) => return Err(other.into()),
    };
    // The mount has tried to load the module by now: if btrfs is still not
    // known, the kernel cannot do it.
    let kernel_has_btrfs = fs::read_to_string("/proc/filesystems")
        .map(|t| {
            t.lines()
                .any(|l| l.split_whitespace().last() == Some("btrfs"))
        })
        .unwrap_or(true);
    let lower = stderr.to_lowercase();
    if !kernel_has_btrfs || lower.contains("unknown filesystem type") {
        return Err(StorageError::KernelWithoutBtrfs {
            image: image.to_path_buf(),
        });
    }
    if lower.contains("loop device") {
        return Err(StorageError::NoLoopDevice {
            image: image.to_path_buf(),
            detail: first_line(&stderr),
        });
    }
    let detail = if lower.contains("permission denied") || lower.contains("superuser") {
        format!(
            "cairnd must run as root to mount its pool image ({})",
            first_line(&stderr)
        )
    } else if lower.contains("wrong fs type") || lower.contains("bad superblock") {
        format!(
            "{} is not a usable btrfs image ({}); move it away to have a new pool created",
            image.display(),
            first_line(&stderr)
        )
    } else {
        first_line(&stderr)
    };
    Err(StorageError::Mount {
        action: "mount",
        mountpoint: root.to_path_buf(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::mount::MountFlags as F;

    #[test]
    fn a_bind_remount_keeps_the_per_mount_flags_mountinfo_shows() {
        assert_eq!(
            per_mount_flags("ro,nosuid,noexec,noatime"),
            F::RDONLY | F::NOSUID | F::NOEXEC | F::NOATIME
        );
        assert_eq!(per_mount_flags("rw,relatime"), F::RELATIME);
        assert_eq!(per_mount_flags("rw,nodev,relatime"), F::NODEV | F::RELATIME);
    }
}
