//! Importing root filesystem directories and OCI layout directories.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use super::fixtures::{oci_image, Codec, Scratch, Tar};
use crate::{dir_size, import, ImageError, SourceKind};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn directory_import_preserves_contents_modes_symlinks_and_hard_links() {
    let s = Scratch::new();
    let src = s.dir.path().join("rootfs");
    fs::create_dir_all(src.join("etc/private")).expect("mkdir");
    fs::create_dir_all(src.join("bin")).expect("mkdir");
    fs::write(src.join("etc/hostname"), "box\n").expect("write");
    fs::set_permissions(src.join("etc/hostname"), fs::Permissions::from_mode(0o640))
        .expect("chmod");
    fs::set_permissions(src.join("etc/private"), fs::Permissions::from_mode(0o700)).expect("chmod");
    fs::write(src.join("bin/tool"), "#!/bin/sh\n").expect("write");
    fs::set_permissions(src.join("bin/tool"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    fs::hard_link(src.join("bin/tool"), src.join("bin/tool-alias")).expect("link");
    symlink("/etc/hostname", src.join("hostname-abs")).expect("symlink");
    symlink("../etc/hostname", src.join("bin/hostname-rel")).expect("symlink");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("fifo"),
        rustix::fs::FileType::Fifo,
        0o600.into(),
        0,
    )
    .expect("mkfifo");
    if is_root() {
        std::os::unix::fs::lchown(src.join("etc/hostname"), Some(1234), Some(5678)).expect("chown");
    }
    crate::meta::set_mtime(&src.join("etc/hostname"), 1_500_000_000, 0).expect("mtime");
    crate::meta::set_mtime(&src.join("etc"), 1_500_000_100, 0).expect("mtime");

    let config = import(&src, &s.dest()).expect("import");

    assert_eq!(config.kind, SourceKind::Directory);
    assert!(config.env.is_empty() && config.cmd.is_empty() && config.workdir.is_none());
    let d = s.dest();
    assert_eq!(s.read("etc/hostname"), "box\n");
    let md = fs::symlink_metadata(d.join("etc/hostname")).expect("stat");
    assert_eq!(md.mode() & 0o7777, 0o640);
    assert_eq!(md.mtime(), 1_500_000_000);
    assert_eq!(
        fs::symlink_metadata(d.join("etc")).expect("stat").mtime(),
        1_500_000_100
    );
    if is_root() {
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
    }
    assert_eq!(
        fs::metadata(d.join("etc/private")).expect("stat").mode() & 0o7777,
        0o700
    );
    let tool = fs::metadata(d.join("bin/tool")).expect("stat");
    assert_eq!(tool.mode() & 0o7777, 0o4755);
    assert_eq!(
        tool.ino(),
        fs::metadata(d.join("bin/tool-alias")).expect("stat").ino()
    );
    assert_eq!(
        fs::read_link(d.join("hostname-abs"))
            .expect("readlink")
            .to_str(),
        Some("/etc/hostname")
    );
    assert_eq!(
        fs::read_link(d.join("bin/hostname-rel"))
            .expect("readlink")
            .to_str(),
        Some("../etc/hostname")
    );
    assert!(
        fs::symlink_metadata(d.join("fifo")).is_err(),
        "a FIFO must not be copied into an image"
    );
    assert_eq!(config.dropped.fifos, 1);
    assert_eq!(config.dropped.total(), 1);
}

#[test]
fn empty_directory_is_refused() {
    let s = Scratch::new();
    let src = s.dir.path().join("empty");
    fs::create_dir(&src).expect("mkdir");
    let err = import(&src, &s.dest()).expect_err("empty source");
    assert!(matches!(err, ImageError::EmptySource { .. }), "{err}");
}

#[test]
fn non_empty_destination_is_refused() {
    let s = Scratch::new();
    fs::write(s.dest().join("stale"), "x").expect("write");
    let src = s.dir.path().join("rootfs");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("f"), "x").expect("write");
    let err = import(&src, &s.dest()).expect_err("dest not empty");
    assert!(
        matches!(err, ImageError::DestinationNotEmpty { .. }),
        "{err}"
    );
}

#[test]
fn destination_inside_the_source_is_refused() {
    let s = Scratch::new();
    fs::write(s.outside().join("f"), "x").expect("write");
    fs::create_dir(s.outside().join("dest")).expect("mkdir");
    let err = import(&s.outside(), &s.outside().join("dest")).expect_err("overlap");
    assert!(matches!(err, ImageError::Overlap { .. }), "{err}");
    assert!(!s.outside().join("dest/f").exists());
}

#[test]
fn missing_source_is_reported_as_such() {
    let s = Scratch::new();
    let err = import(&s.dir.path().join("nope"), &s.dest()).expect_err("missing");
    assert!(matches!(err, ImageError::SourceNotFound { .. }), "{err}");
}

#[test]
fn oci_layout_directory_is_imported_as_an_image() {
    let s = Scratch::new();
    let layer = Tar::new()
        .dir("etc", 0o755)
        .file("etc/os-release", b"ID=test\n", 0o644)
        .finish();
    let image = oci_image(&[(layer, Codec::Gzip)]);
    let layout = s.dir.path().join("layout");
    image.write_dir(&layout);

    let config = import(&layout, &s.dest()).expect("import");

    assert_eq!(config.kind, SourceKind::OciLayout);
    assert_eq!(config.workdir.as_deref(), Some("/srv"));
    assert_eq!(s.read("etc/os-release"), "ID=test\n");
    assert!(!s.dest().join("index.json").exists());
}

#[test]
fn dir_size_counts_hard_linked_files_once_and_ignores_symlinks() {
    let s = Scratch::new();
    let d = s.dest();
    fs::create_dir(d.join("sub")).expect("mkdir");
    fs::write(d.join("a"), vec![0u8; 1000]).expect("write");
    fs::write(d.join("sub/b"), vec![0u8; 24]).expect("write");
    fs::hard_link(d.join("a"), d.join("a-again")).expect("link");
    symlink("/usr", d.join("usr")).expect("symlink");
    assert_eq!(dir_size(&d), 1024);
    assert_eq!(dir_size(&s.dir.path().join("missing")), 0);
}
