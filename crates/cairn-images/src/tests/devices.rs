//! Device nodes, FIFOs and sockets never reach an image, whatever the
//! source kind (finding 2 of the security review): they are left out,
//! counted per kind, and hard links to them are left out too; whiteouts
//! keep working.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tar::EntryType;

use super::fixtures::{docker_archive, gzip, oci_image, Codec, Scratch, Tar};
use crate::{import, Dropped, SourceKind};

/// A layer holding every kind of special file the review used, a hard link
/// to one of them, and ordinary files.
fn hostile_layer() -> Vec<u8> {
    Tar::new()
        .dir("dev", 0o755)
        .dir("srv", 0o755)
        .node("dev/loop7", EntryType::Block, 7, 0)
        .node("dev/loop0", EntryType::Block, 7, 0)
        .node("srv/nullish", EntryType::Char, 1, 3)
        .node("srv/mem", EntryType::Char, 1, 1)
        .node("srv/pipe", EntryType::Fifo, 0, 0)
        .hard_link("srv/loop-alias", "dev/loop7")
        .file("etc/hostname", b"box\n", 0o644)
        .file("srv/after", b"still here\n", 0o644)
        .finish()
}

const EXPECTED: Dropped = Dropped {
    char_devices: 2,
    block_devices: 3,
    fifos: 1,
    sockets: 0,
};

/// Asserts that no special file and no trace of the hostile layer's nodes
/// is in `dest`, and that its ordinary files are.
fn assert_clean(dest: &Path) {
    for node in [
        "dev/loop7",
        "dev/loop0",
        "srv/nullish",
        "srv/mem",
        "srv/pipe",
        "srv/loop-alias",
    ] {
        assert!(
            fs::symlink_metadata(dest.join(node)).is_err(),
            "{node} must not be in the image"
        );
    }
    assert_eq!(
        fs::read_to_string(dest.join("etc/hostname")).expect("file"),
        "box\n"
    );
    assert_eq!(
        fs::read_to_string(dest.join("srv/after")).expect("file"),
        "still here\n"
    );
    assert_no_special_files(dest);
}

fn assert_no_special_files(dir: &Path) {
    for entry in fs::read_dir(dir).expect("list") {
        let entry = entry.expect("entry");
        let ft = entry.file_type().expect("type");
        assert!(
            ft.is_dir() || ft.is_file() || ft.is_symlink(),
            "{} is a special file",
            entry.path().display()
        );
        if ft.is_dir() {
            assert_no_special_files(&entry.path());
        }
    }
}

#[test]
fn device_nodes_and_fifos_are_dropped_and_counted_in_every_archive_kind() {
    let layer = hostile_layer();
    let oci = oci_image(&[(layer.clone(), Codec::Gzip)]);
    let sources: Vec<(&str, Vec<u8>, SourceKind)> = vec![
        ("rootfs.tar", layer.clone(), SourceKind::RootfsTarball),
        ("rootfs.tar.gz", gzip(&layer), SourceKind::RootfsTarball),
        ("oci.tar", oci.to_tar(), SourceKind::OciArchive),
        (
            "docker.tar",
            docker_archive(std::slice::from_ref(&layer), None, false),
            SourceKind::DockerArchive,
        ),
    ];
    for (name, bytes, kind) in sources {
        let s = Scratch::new();
        let src = s.write(name, &bytes);
        let config = import(&src, &s.dest()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(config.kind, kind, "{name}");
        assert_eq!(config.dropped, EXPECTED, "{name}");
        assert_clean(&s.dest());
    }
    // And an OCI image layout directory.
    let s = Scratch::new();
    let layout = s.dir.path().join("layout");
    oci.write_dir(&layout);
    let config = import(&layout, &s.dest()).expect("layout");
    assert_eq!(config.kind, SourceKind::OciLayout);
    assert_eq!(config.dropped, EXPECTED);
    assert_clean(&s.dest());
}

#[test]
fn a_dropped_node_replaces_a_lower_file_and_whiteouts_keep_working() {
    let lower = Tar::new()
        .file("etc/shadow", b"lower\n", 0o600)
        .file("etc/gone", b"lower\n", 0o644)
        .file("etc/overlay-gone", b"lower\n", 0o644)
        .file("opaque/old", b"lower\n", 0o644)
        .file("etc/kept", b"lower\n", 0o644)
        .finish();
    let upper = Tar::new()
        .node("etc/shadow", EntryType::Block, 8, 0)
        .file("etc/.wh.gone", b"", 0o644)
        .node("etc/overlay-gone", EntryType::Char, 0, 0)
        .file("opaque/.wh..wh..opq", b"", 0o644)
        .file("opaque/new", b"upper\n", 0o644)
        .finish();
    let s = Scratch::new();
    let image = oci_image(&[(lower, Codec::Gzip), (upper, Codec::Zstd)]);
    let src = s.write("oci.tar", &image.to_tar());

    let config = import(&src, &s.dest()).expect("import");

    let d = s.dest();
    assert!(fs::symlink_metadata(d.join("etc/shadow")).is_err());
    assert!(fs::symlink_metadata(d.join("etc/gone")).is_err());
    assert!(
        fs::symlink_metadata(d.join("etc/overlay-gone")).is_err(),
        "a 0:0 character device in a layer is an overlayfs whiteout"
    );
    assert!(fs::symlink_metadata(d.join("opaque/old")).is_err());
    assert_eq!(s.read("opaque/new"), "upper\n");
    assert_eq!(s.read("etc/kept"), "lower\n");
    // The whiteout is not a dropped device; the block node is.
    assert_eq!(
        config.dropped,
        Dropped {
            block_devices: 1,
            ..Dropped::default()
        }
    );
}

#[test]
fn a_null_device_in_a_plain_rootfs_is_dropped_not_a_whiteout() {
    let s = Scratch::new();
    let tar = Tar::new()
        .file("keep", b"x", 0o644)
        .node("dev/null", EntryType::Char, 0, 0)
        .finish();
    let src = s.write("rootfs.tar", &tar);
    let config = import(&src, &s.dest()).expect("import");
    assert_eq!(config.dropped.char_devices, 1);
    assert!(fs::symlink_metadata(s.dest().join("dev/null")).is_err());
    assert_eq!(s.read("keep"), "x");
}

#[test]
fn a_file_written_over_a_dropped_node_can_be_hard_linked() {
    let s = Scratch::new();
    let tar = Tar::new()
        .node("x", EntryType::Block, 7, 1)
        .file("x", b"now a file", 0o644)
        .hard_link("y", "x")
        .finish();
    let src = s.write("rootfs.tar", &tar);
    let config = import(&src, &s.dest()).expect("import");
    assert_eq!(config.dropped.block_devices, 1);
    assert_eq!(s.read("y"), "now a file");
    let (x, y) = (
        fs::metadata(s.dest().join("x")).expect("x"),
        fs::metadata(s.dest().join("y")).expect("y"),
    );
    assert_eq!(x.ino(), y.ino());
}

#[test]
fn directory_sources_drop_device_nodes_fifos_sockets_and_their_links() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test makes device nodes: run it as root (sudo, or .ci/run)"
    );
    let s = Scratch::new();
    let src = s.dir.path().join("rootfs");
    fs::create_dir_all(src.join("dev")).expect("mkdir");
    fs::write(src.join("hello"), "hi\n").expect("write");
    let mk = |name: &str, ft: rustix::fs::FileType, dev: rustix::fs::Dev| {
        rustix::fs::mknodat(rustix::fs::CWD, src.join(name), ft, 0o600.into(), dev)
            .unwrap_or_else(|e| panic!("mknod {name}: {e}"));
    };
    mk(
        "dev/loop7",
        rustix::fs::FileType::BlockDevice,
        rustix::fs::makedev(7, 0),
    );
    mk(
        "dev/mem",
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::makedev(1, 1),
    );
    mk("dev/pipe", rustix::fs::FileType::Fifo, 0);
    fs::hard_link(src.join("dev/loop7"), src.join("loop-alias")).expect("link");
    let _listener =
        std::os::unix::net::UnixListener::bind(src.join("dev/sock")).expect("bind socket");

    let config = import(&src, &s.dest()).expect("import");

    assert_eq!(
        config.dropped,
        Dropped {
            char_devices: 1,
            block_devices: 2,
            fifos: 1,
            sockets: 1,
        }
    );
    assert_eq!(s.read("hello"), "hi\n");
    assert!(s.dest().join("dev").is_dir());
    assert_no_special_files(&s.dest());
}
