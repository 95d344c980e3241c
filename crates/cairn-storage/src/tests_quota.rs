//! Write limits against a real btrfs pool (root, btrfs-progs, Linux 6.7+ for simple
//! quotas): a limited tree is refused writes over its limit with `EDQUOT` and is charged
//! only what it writes; the shared budget bounds all limited trees; the quota groups of
//! deleted trees do not pile up.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::quota::subvolume_id;
use crate::tests::{megabyte, temp_pool, write_file};
use crate::StorageError;

const MIB: u64 = 1 << 20;

/// Appends 1 MiB pieces to `path` (flushing each) until a write fails or `max` MiB are
/// written; returns the bytes written and the error.
fn fill(path: &Path, max: u64) -> (u64, Option<std::io::Error>) {
    let mut f = fs::File::create(path).unwrap();
    let piece = megabyte(7);
    let mut written = 0;
    for _ in 0..max {
        if let Err(e) = f.write_all(&piece).and_then(|()| f.sync_data()) {
            return (written, Some(e));
        }
        written += MIB;
    }
    (written, None)
}

/// Commits the pool, so that the kernel's quota counts are up to date.
fn commit(root: &Path) {
    let st = std::process::Command::new("btrfs")
        .args(["filesystem", "sync"])
        .arg(root)
        .status()
        .unwrap();
    assert!(st.success());
}

#[tokio::test]
async fn a_limited_tree_is_refused_writes_over_its_limit_and_charged_only_its_own() {
    let t = temp_pool().await;
    let storage = t
        .storage
        .clone()
        .enable_quotas()
        .await
        .unwrap_or_else(|e| panic!("simple quotas need Linux 6.7 or newer: {e}"));
    assert!(storage.limits_writes());
    let image = t.pool.images_dir().join("img");
    storage.create_subvolume(&image).await.unwrap();
    for i in 0..16 {
        write_file(&image.join(format!("f{i}")), &megabyte(i)).unwrap();
    }
    storage.set_readonly(&image, true).await.unwrap();

    let tree = t.pool.sandboxes_dir().join("a");
    storage
        .limited_snapshot(&image, &tree, Some(8 * MIB))
        .await
        .unwrap();
    let (written, err) = fill(&tree.join("big"), 32);
    let err = err.expect("the limit should have stopped the writes");
    assert_eq!(err.raw_os_error(), Some(libc::EDQUOT), "{err}");
    assert!(
        (6 * MIB..=8 * MIB).contains(&written),
        "refused after {written} bytes"
    );
    // The image's 16 MiB are in the tree but not charged to it.
    assert!(tree.join("f15").exists());
    commit(t.pool.root());
    let charged = storage.written_bytes(&tree).unwrap().unwrap();
    assert!(
        (written..=written + MIB).contains(&charged),
        "charged {charged} for {written} written"
    );
    let (budget_used, budget_limit) = storage.write_budget().unwrap().unwrap();
    assert!(budget_used >= charged, "{budget_used} < {charged}");
    assert_eq!(budget_limit, None);

    // The shared budget bounds a tree without a limit of its own.
    storage
        .set_write_budget(budget_used + 4 * MIB)
        .await
        .unwrap();
    let other = t.pool.sandboxes_dir().join("b");
    storage
        .limited_snapshot(&image, &other, None)
        .await
        .unwrap();
    let (written, err) = fill(&other.join("big"), 32);
    assert_eq!(err.map(|e| e.raw_os_error()), Some(Some(libc::EDQUOT)));
    assert!(written <= 4 * MIB, "wrote {written} over a 4 MiB budget");
    // Lifting the budget lets it write again.
    storage.set_write_budget(1 << 40).await.unwrap();
    write_file(&other.join("more"), &megabyte(1)).unwrap();

    // Limits are set again (only where they differ) for existing trees.
    storage
        .set_write_limits(&[(tree.clone(), Some(64 * MIB)), (other.clone(), None)])
        .await
        .unwrap();
    write_file(&tree.join("after-raise"), &megabyte(2)).unwrap();
    t.pool.unmount().await.unwrap();
}

#[tokio::test]
async fn limits_are_refused_without_quotas() {
    let t = temp_pool().await;
    let image = t.pool.images_dir().join("img");
    t.storage.create_subvolume(&image).await.unwrap();
    let tree = t.pool.sandboxes_dir().join("a");
    assert!(matches!(
        t.storage.limited_snapshot(&image, &tree, Some(MIB)).await,
        Err(StorageError::QuotasOff)
    ));
    assert!(!tree.exists());
    t.storage
        .limited_snapshot(&image, &tree, None)
        .await
        .unwrap();
    assert_eq!(t.storage.written_bytes(&tree).unwrap(), None);
    assert_eq!(t.storage.write_budget().unwrap(), None);
    t.pool.unmount().await.unwrap();
}

#[tokio::test]
async fn quota_groups_of_deleted_trees_are_cleared_once_no_snapshot_holds_their_data() {
    let t = temp_pool().await;
    let storage = t.storage.clone().enable_quotas().await.unwrap();
    let image = t.pool.images_dir().join("img");
    storage.create_subvolume(&image).await.unwrap();
    let tree = t.pool.sandboxes_dir().join("a");
    storage
        .limited_snapshot(&image, &tree, Some(64 * MIB))
        .await
        .unwrap();
    write_file(&tree.join("data"), &megabyte(3)).unwrap();
    let snap = t.pool.snapshots_dir().join("s");
    storage.snapshot(&tree, &snap, true).await.unwrap();
    let id = subvolume_id(&tree).await.unwrap();
    let group = format!("0/{id}");
    let listed = |text: &str| {
        text.lines()
            .any(|l| l.split_whitespace().next() == Some(&group))
    };
    let show = || {
        let out = std::process::Command::new("btrfs")
            .args(["qgroup", "show", "--raw"])
            .arg(t.pool.root())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    storage.delete_subvolume(&tree).await.unwrap();
    // The snapshot keeps the tree's data, charged to the tree's group: it stays.
    tokio::time::sleep(Duration::from_secs(3)).await;
    commit(t.pool.root());
    assert!(
        listed(&show()),
        "{group} went while a snapshot holds its data"
    );
    storage.delete_subvolume(&snap).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while listed(&show()) {
        assert!(
            Instant::now() < deadline,
            "{group} was not cleared within 2 minutes:\n{}",
            show()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the clean-up's `btrfs` commands finish before the pool is unmounted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    t.pool.unmount().await.unwrap();
}
