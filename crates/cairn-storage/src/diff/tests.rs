//! Unit tests of the tree comparison, on trees in temporary directories.

use super::*;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::time::{Duration, SystemTime};

/// A fixed mtime, so that files written separately on both sides look
/// the same.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn set_mtime(path: &Path, when: SystemTime) {
    fs::File::open(path).unwrap().set_modified(when).unwrap();
}

/// Writes `contents` to `rel` under both roots, with the same mtime.
fn write_both(a: &Path, b: &Path, rel: &str, contents: &str) {
    for root in [a, b] {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap();
        set_mtime(&p, t0());
    }
}

/// Two equal trees `a` and `b`: `/etc/hosts` and `/bin/sh`.
fn pair() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    write_both(&a, &b, "etc/hosts", "127.0.0.1 localhost\n");
    write_both(&a, &b, "bin/sh", "#!sh\n");
    (t, a, b)
}

fn kinds(changes: &[Change]) -> Vec<(ChangeKind, &str)> {
    changes.iter().map(|c| (c.kind, c.path.as_str())).collect()
}

use ChangeKind::{Added, Deleted, Modified};

#[test]
fn unchanged_tree_has_no_changes() {
    let (_t, a, b) = pair();
    assert_eq!(diff_trees(&a, &b).unwrap(), []);
}

#[test]
fn added_file_is_listed_with_its_size() {
    let (_t, a, b) = pair();
    fs::write(b.join("etc/new"), "12345").unwrap();
    assert_eq!(
        diff_trees(&a, &b).unwrap(),
        [Change {
            path: "/etc/new".into(),
            kind: Added,
            size: 5
        }]
    );
}

#[test]
fn deleted_file_is_listed_with_its_old_size() {
    let (_t, a, b) = pair();
    fs::remove_file(b.join("bin/sh")).unwrap();
    assert_eq!(
        diff_trees(&a, &b).unwrap(),
        [Change {
            path: "/bin/sh".into(),
            kind: Deleted,
            size: 5
        }]
    );
}

#[test]
fn deleted_directory_lists_itself_and_each_entry_under_it() {
    let (_t, a, b) = pair();
    fs::create_dir_all(a.join("var/cache/apt")).unwrap();
    fs::write(a.join("var/cache/apt/pkgcache.bin"), "abc").unwrap();
    fs::write(a.join("var/log"), "x").unwrap();
    let c = diff_trees(&a, &b).unwrap();
    assert_eq!(
        kinds(&c),
        [
            (Deleted, "/var"),
            (Deleted, "/var/cache"),
            (Deleted, "/var/cache/apt"),
            (Deleted, "/var/cache/apt/pkgcache.bin"),
            (Deleted, "/var/log"),
        ]
    );
    assert_eq!(c[0].size, 0, "directories count 0 bytes");
    assert_eq!(c[3].size, 3);
}

#[test]
fn added_directory_lists_itself_and_each_entry_under_it() {
    let (_t, a, b) = pair();
    fs::create_dir_all(b.join("home/user")).unwrap();
    fs::write(b.join("home/user/notes"), "hello").unwrap();
    assert_eq!(
        kinds(&diff_trees(&a, &b).unwrap()),
        [
            (Added, "/home"),
            (Added, "/home/user"),
            (Added, "/home/user/notes")
        ]
    );
}

#[test]
fn content_change_with_a_new_size_is_a_modification_sized_as_the_new_file() {
    let (_t, a, b) = pair();
    fs::write(b.join("etc/hosts"), "10.0.0.1 db\n127.0.0.1 localhost\n").unwrap();
    assert_eq!(
        diff_trees(&a, &b).unwrap(),
        [Change {
            path: "/etc/hosts".into(),
            kind: Modified,
            size: 32
        }]
    );
}

#[test]
fn chmod_alone_is_a_modification() {
    let (_t, a, b) = pair();
    fs::set_permissions(b.join("bin/sh"), fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(kinds(&diff_trees(&a, &b).unwrap()), [(Modified, "/bin/sh")]);
}

#[test]
fn chmod_of_a_directory_is_a_modification() {
    let (_t, a, b) = pair();
    fs::set_permissions(b.join("etc"), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        diff_trees(&a, &b).unwrap(),
        [Change {
            path: "/etc".into(),
            kind: Modified,
            size: 0
        }]
    );
}

#[test]
fn symlink_retarget_is_a_modification_even_with_equal_metadata() {
    let (_t, a, b) = pair();
    symlink("/usr/bin/python3.11", a.join("bin/python")).unwrap();
    symlink("/usr/bin/python3.12", b.join("bin/python")).unwrap();
    // Same length, and the same mtime: only the target tells them apart.
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_700_000_000,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_700_000_000,
            tv_nsec: 0,
        },
    };
    for root in [&a, &b] {
        let link = root.join("bin/python");
        rustix::fs::utimensat(rustix::fs::CWD, &link, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
    }
    assert_eq!(
        diff_trees(&a, &b).unwrap(),
        [Change {
            path: "/bin/python".into(),
            kind: Modified,
            size: 19
        }]
    );
}

#[test]
fn symlinked_directory_is_not_followed() {
    let (_t, a, b) = pair();
    symlink("/etc", b.join("hostetc")).unwrap();
    symlink(b.join("etc"), b.join("etc2")).unwrap();
    assert_eq!(
        kinds(&diff_trees(&a, &b).unwrap()),
        [(Added, "/etc2"), (Added, "/hostetc")]
    );
}

#[test]
fn directory_mtime_change_alone_is_not_reported() {
    let (_t, a, b) = pair();
    set_mtime(&a.join("etc"), t0());
    set_mtime(&b.join("etc"), t0() + Duration::from_secs(3600));
    set_mtime(&b, t0() + Duration::from_secs(7200));
    assert_eq!(diff_trees(&a, &b).unwrap(), []);
}

#[test]
fn same_size_same_mtime_rewrite_is_found_only_when_comparing_contents() {
    let (_t, a, b) = pair();
    let hosts = b.join("etc/hosts");
    fs::write(&hosts, "127.0.0.1 localhosT\n").unwrap();
    fs::File::options()
        .write(true)
        .open(&hosts)
        .unwrap()
        .set_modified(t0())
        .unwrap();
    assert_eq!(diff_trees(&a, &b).unwrap(), []);
    let with_contents = DiffOptions {
        compare_contents: true,
    };
    assert_eq!(
        kinds(&diff_trees_with(&a, &b, &with_contents).unwrap()),
        [(Modified, "/etc/hosts")]
    );
}

#[test]
fn comparing_contents_of_equal_files_finds_nothing() {
    let (_t, a, b) = pair();
    write_both(&a, &b, "big", &"0123456789abcdef".repeat(10_000));
    let with_contents = DiffOptions {
        compare_contents: true,
    };
    assert_eq!(diff_trees_with(&a, &b, &with_contents).unwrap(), []);
}

#[test]
fn file_replaced_by_directory_is_one_modification_plus_the_new_entries() {
    let (_t, a, b) = pair();
    fs::remove_file(b.join("etc/hosts")).unwrap();
    fs::create_dir(b.join("etc/hosts")).unwrap();
    fs::write(b.join("etc/hosts/main"), "x").unwrap();
    assert_eq!(
        kinds(&diff_trees(&a, &b).unwrap()),
        [(Modified, "/etc/hosts"), (Added, "/etc/hosts/main")]
    );
}

#[test]
fn entries_follow_their_directory_in_the_order() {
    let (_t, a, b) = pair();
    fs::create_dir(b.join("a")).unwrap();
    fs::write(b.join("a/z"), "").unwrap();
    fs::write(b.join("a-b"), "").unwrap();
    assert_eq!(
        kinds(&diff_trees(&a, &b).unwrap()),
        [(Added, "/a"), (Added, "/a/z"), (Added, "/a-b")]
    );
}

#[test]
fn names_that_are_not_utf8_are_compared_and_shown_lossily() {
    let (_t, a, b) = pair();
    let name = OsStr::from_bytes(b"caf\xe9");
    for root in [&a, &b] {
        fs::create_dir(root.join(name)).unwrap();
        fs::write(root.join(name).join("menu"), "soup").unwrap();
        set_mtime(&root.join(name).join("menu"), t0());
    }
    assert_eq!(diff_trees(&a, &b).unwrap(), []);
    fs::remove_file(b.join(name).join("menu")).unwrap();
    assert_eq!(
        kinds(&diff_trees(&a, &b).unwrap()),
        [(Deleted, "/caf\u{fffd}/menu")]
    );
}

#[test]
fn root_permission_change_is_reported_as_slash() {
    let (_t, a, b) = pair();
    fs::set_permissions(&b, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(kinds(&diff_trees(&a, &b).unwrap()), [(Modified, "/")]);
}

#[test]
fn missing_root_is_a_missing_error() {
    let (_t, a, b) = pair();
    let gone = b.join("nope");
    match diff_trees(&a, &gone) {
        Err(DiffError::Missing { path }) => assert_eq!(path, gone),
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(matches!(
        diff_trees(&gone, &b),
        Err(DiffError::Missing { .. })
    ));
}

#[test]
fn file_as_root_is_a_not_a_directory_error() {
    let (_t, a, b) = pair();
    assert!(matches!(
        diff_trees(&a, &b.join("bin/sh")),
        Err(DiffError::NotADirectory { .. })
    ));
}

#[test]
fn tree_deeper_than_the_limit_is_refused() {
    let (_t, a, b) = pair();
    let mut deep = b.clone();
    for _ in 0..=MAX_DEPTH {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    assert!(matches!(
        diff_trees(&a, &b),
        Err(DiffError::TooDeep {
            limit: MAX_DEPTH,
            ..
        })
    ));
}
