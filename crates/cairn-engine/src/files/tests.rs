//! The files API's tree operations on plain directories (no root needed): links that point
//! out of the tree resolve inside it, special files are refused, writes replace links and
//! leave nothing when they fail, tar streams round-trip and refuse `..`.

use std::io::Read;
use std::path::Path;

use super::fd::WriteOptions;
use super::path::TreePath;
use super::tree::TreeFiles;
use crate::EngineError;

fn p(s: &str) -> TreePath {
    TreePath::parse(s).expect("valid path")
}

/// A tree with its own `/etc/passwd` and links to it that would leave a naive walk.
fn tree() -> (tempfile::TempDir, TreeFiles) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
    std::fs::write(root.join("etc/passwd"), "own\n").expect("write");
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).expect("link");
    std::os::unix::fs::symlink("../../../../../etc/passwd", root.join("a/b/rel")).expect("link");
    std::os::unix::fs::symlink("/etc/shadow", root.join("shadow")).expect("link");
    std::os::unix::fs::symlink("../../../..", root.join("up")).expect("link");
    let t = TreeFiles::open(root).expect("open");
    (dir, t)
}

/// Options that a user without root may apply (their own uid and gid).
fn mine() -> WriteOptions {
    WriteOptions {
        mode: Some(0o640),
        uid: Some(rustix::process::geteuid().as_raw()),
        gid: Some(rustix::process::getegid().as_raw()),
    }
}

fn read(t: &TreeFiles, path: &str) -> Result<String, EngineError> {
    let (_, mut f) = t.open_read(&p(path))?;
    let mut s = String::new();
    f.read_to_string(&mut s).expect("read");
    Ok(s)
}

#[test]
fn links_out_of_the_tree_resolve_inside_it() {
    let (_dir, t) = tree();
    assert_eq!(read(&t, "/abs").expect("abs"), "own\n");
    assert_eq!(read(&t, "/a/b/rel").expect("rel"), "own\n");
    assert_eq!(read(&t, "/up/etc/passwd").expect("up"), "own\n");
    assert_eq!(read(&t, "/../../etc/passwd").expect("dotdot"), "own\n");
    assert!(matches!(read(&t, "/shadow"), Err(EngineError::NotFound(_))));
    let st = t.stat(&p("/shadow")).expect("stat");
    assert_eq!(
        (st.kind.as_str(), st.target.as_deref()),
        ("symlink", Some("/etc/shadow"))
    );
    let names: Vec<String> = t
        .list(&p("/up"), 1)
        .expect("list")
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert!(names.contains(&"/up/etc".to_string()), "{names:?}");
}

#[test]
fn fifos_are_refused_not_opened() {
    let (dir, t) = tree();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.path().join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    let e = read(&t, "/fifo").expect_err("a FIFO");
    assert!(e.to_string().contains("fifo"), "{e}");
    let mut out = Vec::new();
    t.tar_out(&p("/"), &mut out).expect("tar of the root");
    let names: Vec<String> = tar::Archive::new(&out[..])
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    assert!(!names.iter().any(|n| n.contains("fifo")), "{names:?}");
}

#[test]
fn writes_replace_links_and_leave_nothing_when_they_fail() {
    let (dir, t) = tree();
    let outside = tempfile::NamedTempFile::new().expect("outside");
    std::fs::write(outside.path(), "host\n").expect("write");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).expect("link");
    t.write(&p("/out"), mine(), &mut &b"mine\n"[..])
        .expect("write");
    assert_eq!(
        std::fs::read_to_string(outside.path()).expect("read"),
        "host\n"
    );
    assert_eq!(t.stat(&p("/out")).expect("stat").kind, "file");
    assert_eq!(t.stat(&p("/out")).expect("stat").mode, 0o640);
    // Through a link to a directory: inside the tree.
    t.write(&p("/up/etc/new"), mine(), &mut &b"x"[..])
        .expect("write");
    assert!(Path::new(&dir.path().join("etc/new")).is_file());

    struct Broken(usize);
    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("connection reset"));
            }
            self.0 -= 1;
            buf[0] = b'x';
            Ok(1)
        }
    }
    let e = t
        .write(&p("/etc/half"), mine(), &mut Broken(3))
        .expect_err("broken");
    assert!(e.to_string().contains("broke off"), "{e}");
    let left: Vec<String> = t
        .list(&p("/etc"), 1)
        .expect("list")
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(
        left,
        vec!["/etc/new".to_string(), "/etc/passwd".to_string()]
    );
}

#[test]
fn tar_streams_round_trip_and_refuse_dot_dot() {
    let (dir, t) = tree();
    let (_dir2, t2) = tree();
    t2.mkdir(&p("/copy"), false, 0o755).expect("mkdir");
    // A link that climbs above the root (harmless inside its own tree) is not written.
    let mut out = Vec::new();
    t.tar_out(&p("/a"), &mut out).expect("tar out");
    let e = t2.tar_in(&p("/copy"), &mut &out[..]).expect_err("climbs");
    assert!(e.to_string().contains("climbs out"), "{e}");
    std::fs::remove_file(dir.path().join("a/b/rel")).expect("rm");
    std::os::unix::fs::symlink("../../etc/passwd", dir.path().join("a/b/rel")).expect("link");
    std::fs::write(dir.path().join("a/f"), "data").expect("write");
    let mut out = Vec::new();
    t.tar_out(&p("/a"), &mut out).expect("tar out");
    t2.tar_in(&p("/copy"), &mut &out[..]).expect("tar in");
    let st = t2.stat(&p("/copy/a/b/rel")).expect("stat");
    assert_eq!(st.target.as_deref(), Some("../../etc/passwd"));
    assert_eq!(read(&t2, "/copy/a/f").expect("copied"), "data");

    let mut bad = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.as_old_mut().name[..7].copy_from_slice(b"../evil");
    h.set_cksum();
    bad.append(&h, &b"x"[..]).expect("append");
    let bad = bad.into_inner().expect("tar");
    let e = t2.tar_in(&p("/copy"), &mut &bad[..]).expect_err("..");
    assert!(e.to_string().contains("'..'"), "{e}");
}

#[test]
fn mkdir_remove_and_move() {
    let (_dir, t) = tree();
    t.mkdir(&p("/x/y/z"), true, 0o755).expect("mkdir -p");
    t.mkdir(&p("/x/y/z"), true, 0o755).expect("mkdir -p again");
    assert!(
        t.mkdir(&p("/etc/passwd"), true, 0o755).is_err(),
        "a file is in the way"
    );
    t.rename(&p("/x"), &p("/w")).expect("move");
    assert!(matches!(
        t.remove(&p("/w"), false),
        Err(EngineError::Conflict(_))
    ));
    t.remove(&p("/w"), true).expect("rm -r");
    assert!(matches!(t.stat(&p("/w")), Err(EngineError::NotFound(_))));
    // A link is removed, not what it points to.
    t.remove(&p("/abs"), false).expect("rm link");
    assert_eq!(read(&t, "/etc/passwd").expect("still there"), "own\n");
    assert!(t.remove(&p("/"), true).is_err(), "the root stays");
}
