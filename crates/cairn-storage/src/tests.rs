//! Tests against a real btrfs pool: each makes a 1 GiB loop-mounted pool in
//! a temporary directory and unmounts it at the end, pass or fail. They need
//! root and btrfs-progs, and fail (never skip) without them.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::mountinfo;
use crate::{BtrfsStorage, Pool, PoolBacking, PoolConfig, StorageError};

const TEST_POOL_BYTES: u64 = 1 << 30;

/// Lazily unmounts `home/pool` when dropped, so that a failing test does not
/// leave a mount (and a loop device) behind.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Ok(Some(_)) = mountinfo::mount_at(&self.0) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

/// A pool in a temporary data directory. Field order matters: the guard
/// unmounts before the directory is removed.
pub(crate) struct TestPool {
    _guard: MountGuard,
    pub(crate) home: TempDir,
    pub(crate) pool: Pool,
    pub(crate) storage: BtrfsStorage,
}

fn require_root() {
    assert_eq!(
        rustix::process::getuid().as_raw(),
        0,
        "the storage tests mount btrfs pools and must run as root (sudo cargo test -p cairn-storage)"
    );
}

fn config(home: &Path) -> PoolConfig {
    PoolConfig {
        home: home.to_path_buf(),
        image_size_bytes: TEST_POOL_BYTES,
    }
}

/// Opens `config`, failing the test with the error's own message (which
/// names btrfs-progs when `mkfs.btrfs` is missing).
async fn open(cfg: PoolConfig) -> Pool {
    Pool::open_or_create(cfg)
        .await
        .unwrap_or_else(|e| panic!("could not open a test pool: {e}"))
}

pub(crate) async fn temp_pool() -> TestPool {
    require_root();
    let home = tempfile::Builder::new()
        .prefix("cairn-storage-test-")
        .tempdir()
        .expect("temporary data directory");
    let guard = MountGuard(
        home.path()
            .canonicalize()
            .expect("canonical home")
            .join("pool"),
    );
    let pool = open(config(home.path())).await;
    let storage = BtrfsStorage::new(pool.clone());
    TestPool {
        _guard: guard,
        home,
        pool,
        storage,
    }
}

pub(crate) fn write_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// 1 MiB that no compression or deduplication could shrink.
pub(crate) fn megabyte(seed: u8) -> Vec<u8> {
    (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

#[tokio::test]
async fn a_new_pool_is_a_mounted_image_with_its_directories() {
    let t = temp_pool().await;
    let root = t.pool.root();
    assert_eq!(
        t.pool.backing(),
        &PoolBacking::LoopImage(t.home.path().canonicalize().unwrap().join("pool.img"))
    );
    let mount = mountinfo::mount_at(root)
        .unwrap()
        .expect("the pool is mounted");
    assert_eq!(mount.fstype, "btrfs");
    for dir in ["images", "sandboxes", "snapshots"] {
        assert!(root.join(dir).is_dir(), "{dir}/ is missing");
    }
    assert!(!t.home.path().join("pool.img.tmp").exists());
    let (total, free) = (t.pool.total_bytes().unwrap(), t.pool.free_bytes().unwrap());
    assert!(
        total > TEST_POOL_BYTES / 2 && total <= TEST_POOL_BYTES,
        "total {total}"
    );
    assert!(free > 0 && free < total, "free {free} of {total}");
    t.pool.unmount().await.unwrap();
}

#[tokio::test]
async fn snapshots_are_read_only_and_forks_keep_their_writes_private() {
    let t = temp_pool().await;
    let (s, root) = (&t.storage, t.pool.root());
    let image = root.join("images/base");
    s.create_subvolume(&image).await.unwrap();
    write_file(&image.join("hello"), b"from the image").unwrap();

    let snap = root.join("snapshots/snap-1");
    s.snapshot(&image, &snap, true).await.unwrap();
    assert!(s.is_subvolume(&snap).await.unwrap());
    assert!(s.is_readonly(&snap).await.unwrap());
    let refused = write_file(&snap.join("new"), b"x").unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ReadOnlyFilesystem);

    let fork = root.join("sandboxes/sbx-1");
    s.snapshot(&snap, &fork, false).await.unwrap();
    assert!(!s.is_readonly(&fork).await.unwrap());
    assert_eq!(fs::read(fork.join("hello")).unwrap(), b"from the image");
    write_file(&fork.join("hello"), b"changed in the fork").unwrap();
    write_file(&fork.join("new"), b"only in the fork").unwrap();
    assert_eq!(fs::read(snap.join("hello")).unwrap(), b"from the image");
    assert_eq!(fs::read(image.join("hello")).unwrap(), b"from the image");
    assert!(!snap.join("new").exists() && !image.join("new").exists());

    // A second snapshot onto an existing path is refused, not nested.
    let again = s.snapshot(&image, &fork, false).await.unwrap_err();
    assert!(matches!(again, StorageError::AlreadyExists(_)), "{again}");
    assert_eq!(
        s.list_subvolumes(&root.join("sandboxes")).await.unwrap(),
        vec!["sbx-1"]
    );
    assert_eq!(
        s.list_subvolumes(&root.join("images")).await.unwrap(),
        vec!["base"]
    );
    assert!(!s.is_subvolume(&root.join("images")).await.unwrap());
    assert!(!s.is_subvolume(&root.join("images/nothing")).await.unwrap());
    t.pool.unmount().await.unwrap();
}

#[tokio::test]
async fn a_snapshot_holds_exclusively_only_what_changed_since() {
    let t = temp_pool().await;
    let (s, root) = (&t.storage, t.pool.root());
    let sbx = root.join("sandboxes/sbx-1");
    s.create_subvolume(&sbx).await.unwrap();
    write_file(&sbx.join("big"), &megabyte(1)).unwrap();
    let snap = root.join("snapshots/snap-1");
    s.snapshot(&sbx, &snap, true).await.unwrap();
    let (exclusive, total) = s.exclusive_and_total_bytes(&snap).await.unwrap();
    assert_eq!((exclusive, total), (0, 1 << 20));

    write_file(&sbx.join("delta"), &megabyte(2)).unwrap();
    let (exclusive, total) = s.exclusive_and_total_bytes(&sbx).await.unwrap();
    assert_eq!((exclusive, total), (1 << 20, 2 << 20));
    t.pool.unmount().await.unwrap();
}

#[tokio::test]
async fn bytes_written_since_counts_only_data_newer_than_the_parent_snapshot() {
    let t = temp_pool().await;
    let (s, root) = (&t.storage, t.pool.root());
    let sbx = root.join("sandboxes/sbx-1");
    s.create_subvolume(&sbx).await.unwrap();
    for i in 0..20 {
        write_file(&sbx.join(format!("old{i}")), &megabyte(i)).unwrap();
    }
    let first = root.join("snapshots/snap-1");
    s.snapshot(&sbx, &first, true).await.unwrap();
    let since = s.generation(&first).await.unwrap();
    assert_eq!(
        s.generation(&first).await.unwrap(),
        since,
        "read-only: stable"
    );

    write_file(&sbx.join("new"), &[megabyte(2), megabyte(3)].concat()).unwrap();
    write_file(&sbx.join("old3"), &megabyte(99)).unwrap(); // rewritten
    std::fs::remove_file(sbx.join("old4")).unwrap(); // deleted: holds nothing new
    let second = root.join("snapshots/snap-2");
    s.snapshot(&sbx, &second, true).await.unwrap();
    let w = s.bytes_written_since(&second, since).await.unwrap();
    assert_eq!(w.bytes, 3 << 20);
    assert!(w.generation > since);
    assert_eq!(w.generation, s.generation(&second).await.unwrap());
    // Nothing changed between the two snapshots' generations in the first.
    assert_eq!(s.bytes_written_since(&first, since).await.unwrap().bytes, 0);
    // Everything, counted from the start.
    assert_eq!(
        s.bytes_written_since(&second, 0).await.unwrap().bytes,
        21 << 20
    );
    t.pool.unmount().await.unwrap();
}

#[tokio::test]
async fn read_only_and_nested_subvolumes_are_deleted() {
    let t = temp_pool().await;
    let (s, root) = (&t.storage, t.pool.root());

    let image = root.join("images/img");
    s.create_subvolume(&image).await.unwrap();
    write_file(&image.join("f"), b"data").unwrap();
    s.set_readonly(&image, true).await.unwrap();
    s.delete_subvolume(&image).await.unwrap();
    assert!(!image.exists());
    s.delete_subvolume(&image).await.unwrap(); // already gone: fine
    s.delete_subvolume(&root.join("images/no/such/dir"))
        .await
        .unwrap();

    // A read-only sandbox root holding a read-only nested subvolume, as a
    // tool running inside a sandbox could leave behind.
    let sbx = root.join("sandboxes/sbx-1");
    s.create_subvolume(&sbx).await.unwrap();
    fs::create_dir_all(sbx.join("var/lib")).unwrap();
    let nested = sbx.join("var/lib/inner");
    s.create_subvolume(&nested).await.unwrap();
    s.create_subvolume(&nested.join("deeper")).await.unwrap();
    write_file(&nested.join("f"), b"nested").unwrap();
    s.set_readonly(&nested, true).await.unwrap();
    s.set_readonly(&sbx, true).await.unwrap();
    s.delete_subvolume(&sbx).await.unwrap();
    assert!(!sbx.exists());
    assert!(s
        .list_subvolumes(&root.join("sandboxes"))
        .await
        .unwrap()
        .is_empty());

    let plain = root.join("snapshots/plain-dir");
    fs::create_dir(&plain).unwrap();
    let err = s.delete_subvolume(&plain).await.unwrap_err();
    assert!(matches!(err, StorageError::NotASubvolume(_)), "{err}");
    assert!(plain.exists());
    t.pool.unmount().await.unwrap();
}

#[tokio::test]
async fn reopening_after_unmount_mounts_the_image_again_with_its_files() {
    let t = temp_pool().await;
    let sbx = t.pool.root().join("sandboxes/sbx-1");
    t.storage.create_subvolume(&sbx).await.unwrap();
    write_file(&sbx.join("kept"), b"across mounts").unwrap();

    // Opening while mounted reuses the mount.
    let same = open(config(t.home.path())).await;
    assert_eq!(same.backing(), t.pool.backing());

    t.pool.unmount().await.unwrap();
    assert!(mountinfo::mount_at(t.pool.root()).unwrap().is_none());
    assert!(!sbx.exists());
    t.pool.unmount().await.unwrap(); // not mounted any more: a no-op

    let reopened = open(config(t.home.path())).await;
    assert!(mountinfo::mount_at(reopened.root()).unwrap().is_some());
    assert_eq!(fs::read(sbx.join("kept")).unwrap(), b"across mounts");
    let storage = BtrfsStorage::new(reopened.clone());
    assert_eq!(
        storage
            .list_subvolumes(&reopened.sandboxes_dir())
            .await
            .unwrap(),
        vec!["sbx-1"]
    );
    reopened.unmount().await.unwrap();
}

#[tokio::test]
async fn paths_outside_the_pool_are_refused() {
    let t = temp_pool().await;
    let (s, root) = (&t.storage, t.pool.root());
    let elsewhere = tempfile::tempdir().unwrap();
    fs::create_dir(elsewhere.path().join("victim")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), root.join("images/escape")).unwrap();

    let outside = [
        elsewhere.path().join("sub"),
        PathBuf::from("images/relative"),
        root.join("images/../../escaped"),
        root.to_path_buf(),
        root.join("images/escape/sub"),
    ];
    for path in &outside {
        let err = s.create_subvolume(path).await.unwrap_err();
        assert!(
            matches!(err, StorageError::OutsidePool { .. }),
            "{}: {err}",
            path.display()
        );
        let err = s.delete_subvolume(path).await.unwrap_err();
        assert!(
            matches!(err, StorageError::OutsidePool { .. }),
            "{}: {err}",
            path.display()
        );
    }
    let err = s
        .snapshot(
            &root.join("images/escape/victim"),
            &root.join("sandboxes/x"),
            false,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::OutsidePool { .. }), "{err}");
    assert!(s.list_subvolumes(elsewhere.path()).await.is_err());
    assert!(elsewhere.path().join("victim").is_dir());
    assert!(!elsewhere.path().join("sub").exists());
    t.pool.unmount().await.unwrap();
}

#[tokio::test]
async fn a_data_directory_on_btrfs_holds_the_pool_directly() {
    let t = temp_pool().await;
    let home = t.pool.root().join("home-on-btrfs");
    let pool = open(config(&home)).await;
    let _bind = MountGuard(pool.root().to_path_buf());
    assert_eq!(pool.backing(), &PoolBacking::Directory);
    assert!(!home.join("pool.img").exists());
    // The pool directory is bind-mounted onto itself, to carry nodev.
    let mount = mountinfo::mount_at(pool.root())
        .unwrap()
        .expect("a bind mount");
    assert_eq!(mount.fstype, "btrfs");
    assert!(mount.has_option("nodev"), "{}", mount.options);
    // A later start reuses it.
    let again = open(config(&home)).await;
    assert_eq!(again.backing(), &PoolBacking::Directory);
    let stacked = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&*pool.root().to_string_lossy()))
        .count();
    assert_eq!(stacked, 1, "one bind mount, not one per start");
    let s = BtrfsStorage::new(pool.clone());
    let sbx = pool.sandboxes_dir().join("sbx-1");
    s.create_subvolume(&sbx).await.unwrap();
    s.snapshot(&sbx, &pool.snapshots_dir().join("snap-1"), true)
        .await
        .unwrap();
    assert_eq!(
        s.list_subvolumes(&pool.snapshots_dir()).await.unwrap(),
        vec!["snap-1"]
    );
    pool.unmount().await.unwrap(); // not Cairn's image: a no-op
    assert!(sbx.is_dir());
    let st = std::process::Command::new("umount")
        .arg(pool.root())
        .status()
        .unwrap();
    assert!(st.success());
    t.pool.unmount().await.unwrap();
}

/// Issue 14, finding 2: device nodes in the pool must not open, whoever made them.
#[tokio::test]
async fn the_pool_is_mounted_nodev_so_no_device_node_in_it_opens_but_not_nosuid() {
    let t = temp_pool().await;
    let mount = mountinfo::mount_at(t.pool.root()).unwrap().unwrap();
    assert!(mount.has_option("nodev"), "{}", mount.options);
    assert!(!mount.has_option("nosuid"), "{}", mount.options);
    assert!(!mount.has_option("noexec"), "{}", mount.options);
    // Even root on the host cannot open a node there: /dev/zero's numbers.
    let node = t.pool.sandboxes_dir().join("zero");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &node,
        rustix::fs::FileType::CharacterDevice,
        0o666.into(),
        rustix::fs::makedev(1, 5),
    )
    .unwrap();
    let err = fs::File::open(&node).expect_err("a device node in the pool must not open");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    t.pool.unmount().await.unwrap();
}

#[tokio::test]
async fn a_pool_mounted_without_nodev_is_remounted_nodev_at_start_keeping_its_flags() {
    let t = temp_pool().await;
    let root = t.pool.root();
    // As an older Cairn (or an administrator) left it: no nodev, and noatime.
    use rustix::mount::MountFlags as F;
    rustix::mount::mount_remount(root, F::BIND | F::NOATIME, "").unwrap();
    let before = mountinfo::mount_at(root).unwrap().unwrap();
    assert!(!before.has_option("nodev"), "{}", before.options);

    let reopened = open(config(t.home.path())).await;

    let after = mountinfo::mount_at(reopened.root()).unwrap().unwrap();
    assert!(after.has_option("nodev"), "{}", after.options);
    assert!(after.has_option("noatime"), "{}", after.options);
    assert!(after.has_option("rw"), "{}", after.options);
    t.pool.unmount().await.unwrap();
}

#[tokio::test]
async fn a_missing_mkfs_says_to_install_btrfs_progs() {
    require_root();
    let home = tempfile::tempdir().unwrap();
    let _guard = MountGuard(home.path().canonicalize().unwrap().join("pool"));
    let err = Pool::open_with(config(home.path()), "mkfs.btrfs-cairn-test-missing")
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::BtrfsProgsMissing { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("apt-get install btrfs-progs"),
        "{err}"
    );
    assert!(!home.path().join("pool.img").exists());
    assert!(!home.path().join("pool.img.tmp").exists());
}

#[tokio::test]
async fn an_image_larger_than_the_disk_is_refused_up_front() {
    let home = tempfile::tempdir().unwrap();
    let _guard = MountGuard(home.path().canonicalize().unwrap().join("pool"));
    let cfg = PoolConfig {
        home: home.path().to_path_buf(),
        image_size_bytes: 1 << 60,
    };
    let err = Pool::open_or_create(cfg).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StorageError::DiskFull { .. }), "{text}");
    assert!(
        text.contains("not enough free disk for the pool image at"),
        "{text}"
    );
    assert!(text.contains("or set a smaller pool size"), "{text}");
    assert!(!home.path().join("pool.img").exists());

    let cfg = PoolConfig {
        home: home.path().to_path_buf(),
        image_size_bytes: 1 << 20,
    };
    let err = Pool::open_or_create(cfg).await.unwrap_err();
    assert!(matches!(err, StorageError::PoolTooSmall { .. }), "{err}");
}

#[tokio::test]
async fn files_in_a_compressed_directory_take_a_fraction_of_their_size_on_disk() {
    let t = temp_pool().await;
    let write_64_mib = |dir: &Path| {
        fs::create_dir_all(dir).unwrap();
        let mut f = fs::File::create(dir.join("pages.img")).unwrap();
        let page = vec![b'a'; 1 << 20];
        for _ in 0..64 {
            f.write_all(&page).unwrap();
        }
        f.sync_all().unwrap();
    };
    let used = |p: &Pool| p.total_bytes().unwrap() - p.free_bytes().unwrap();
    let plain = t.pool.snapshots_dir().join("plain");
    let before = used(&t.pool);
    write_64_mib(&plain);
    let plain_used = used(&t.pool) - before;
    let packed = t.pool.snapshots_dir().join("packed");
    fs::create_dir_all(&packed).unwrap();
    assert!(crate::compress_new_files(&packed).unwrap());
    let before = used(&t.pool);
    write_64_mib(&packed);
    let packed_used = used(&t.pool).saturating_sub(before);
    assert!(plain_used >= 60 << 20, "plain file used {plain_used} bytes");
    assert!(
        packed_used < 16 << 20,
        "compressed file used {packed_used} bytes (plain: {plain_used})"
    );
    // Its size is still the uncompressed size.
    assert_eq!(
        fs::metadata(packed.join("pages.img")).unwrap().len(),
        64 << 20
    );
    // Not btrfs: nothing to do, and no error.
    let tmp = tempfile::tempdir_in("/dev/shm").unwrap();
    assert!(!crate::compress_new_files(tmp.path()).unwrap());
}

#[tokio::test]
async fn a_pool_image_is_mounted_with_direct_io_so_its_writes_are_not_cached_twice() {
    let t = temp_pool().await;
    let out = std::process::Command::new("findmnt")
        .args(["-n", "-o", "SOURCE", "--mountpoint"])
        .arg(t.pool.root())
        .output()
        .unwrap();
    let device = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let name = device.strip_prefix("/dev/").unwrap_or(&device);
    assert!(name.starts_with("loop"), "the pool is on {device}");
    let dio = fs::read_to_string(format!("/sys/block/{name}/loop/dio")).unwrap();
    assert_eq!(dio.trim(), "1", "{device} does not use direct I/O");
    // And the pool works as before.
    let dir = t.pool.snapshots_dir().join("dio");
    fs::create_dir_all(&dir).unwrap();
    write_file(&dir.join("f"), &vec![3u8; 4 << 20]).unwrap();
    assert_eq!(fs::read(dir.join("f")).unwrap().len(), 4 << 20);
}
