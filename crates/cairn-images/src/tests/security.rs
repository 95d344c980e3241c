//! Archives that try to write, link or delete outside the destination.

use std::fs;
use std::os::unix::fs::MetadataExt;

use tar::EntryType;

use super::fixtures::{oci_image, Codec, Scratch, Tar};
use crate::{import, ImageError};

/// Everything under `dir`, for "nothing changed" assertions.
fn listing(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn dotdot_entry_is_refused_and_nothing_is_written_outside() {
    let s = Scratch::new();
    let tar = Tar::new()
        .file("ok", b"fine", 0o644)
        .raw(b"../escape", EntryType::Regular, b"", b"pwned")
        .finish();
    let src = s.write("evil.tar", &tar);
    let before = listing(s.dir.path());

    let err = import(&src, &s.dest()).expect_err("must refuse");

    assert!(
        matches!(&err, ImageError::UnsafeEntry { entry, .. } if entry == "../escape"),
        "{err}"
    );
    assert_eq!(listing(s.dir.path()), before);
    assert!(!s.dir.path().join("escape").exists());
}

#[test]
fn absolute_entry_is_refused_in_a_layer() {
    let s = Scratch::new();
    let target = s.outside().join("abs");
    let name = target.to_str().expect("utf-8").as_bytes().to_vec();
    let layer = Tar::new()
        .raw(&name, EntryType::Regular, b"", b"pwned")
        .finish();
    let image = oci_image(&[(layer, Codec::Gzip)]);
    let src = s.write("evil.tar", &image.to_tar());

    let err = import(&src, &s.dest()).expect_err("must refuse");

    assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
    assert!(!target.exists());
}

#[test]
fn symlink_planted_by_a_lower_layer_cannot_redirect_writes_outside() {
    let s = Scratch::new();
    let outside = s.outside();
    let lower = Tar::new()
        .symlink("etc", outside.to_str().expect("utf-8"))
        .finish();
    let upper = Tar::new()
        .file("etc/passwd", b"root::0:0::/:/bin/sh\n", 0o644)
        .finish();
    let image = oci_image(&[(lower, Codec::Gzip), (upper, Codec::Gzip)]);
    let src = s.write("evil.tar", &image.to_tar());

    import(&src, &s.dest()).expect("import");

    assert!(
        !outside.join("passwd").exists(),
        "a write escaped through the planted symlink"
    );
    // The symlink is followed as if the destination were `/`.
    let inside = s
        .dest()
        .join(outside.strip_prefix("/").expect("absolute"))
        .join("passwd");
    assert!(inside.is_file());
    assert!(fs::symlink_metadata(s.dest().join("etc"))
        .expect("stat")
        .file_type()
        .is_symlink());
}

#[test]
fn relative_symlink_climbing_out_stays_clamped_to_the_destination() {
    let s = Scratch::new();
    let tar = Tar::new()
        .symlink("up", "../../../../../..")
        .file("up/outside/x", b"pwned", 0o644)
        .finish();
    let src = s.write("evil.tar", &tar);

    import(&src, &s.dest()).expect("import");

    assert!(!s.outside().join("x").exists());
    assert!(s.dest().join("outside/x").is_file());
}

#[test]
fn hard_link_targets_outside_the_destination_are_refused() {
    let s = Scratch::new();
    let secret = s.outside().join("secret");
    fs::write(&secret, "s3cr3t").expect("write");
    let tar = Tar::new()
        .raw(b"stolen", EntryType::Link, b"../outside/secret", b"")
        .finish();
    let src = s.write("evil.tar", &tar);

    let err = import(&src, &s.dest()).expect_err("must refuse");

    assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
    assert_eq!(fs::metadata(&secret).expect("stat").nlink(), 1);
}

#[test]
fn hard_link_through_a_planted_symlink_cannot_reach_host_files() {
    let s = Scratch::new();
    let secret = s.outside().join("secret");
    fs::write(&secret, "s3cr3t").expect("write");
    let tar = Tar::new()
        .symlink("host", s.outside().to_str().expect("utf-8"))
        .hard_link("stolen", "host/secret")
        .finish();
    let src = s.write("evil.tar", &tar);

    let err = import(&src, &s.dest()).expect_err("target is not inside the image");

    assert!(matches!(err, ImageError::BadEntry { .. }), "{err}");
    assert_eq!(fs::metadata(&secret).expect("stat").nlink(), 1);
    assert!(!s.dest().join("stolen").exists());
}

#[test]
fn whiteouts_through_a_planted_symlink_cannot_delete_host_files() {
    let s = Scratch::new();
    fs::write(s.outside().join("victim"), "keep").expect("write");
    fs::create_dir(s.outside().join("dir")).expect("mkdir");
    fs::write(s.outside().join("dir/inner"), "keep").expect("write");
    let outside = s.outside();
    let lower = Tar::new()
        .symlink("d", outside.to_str().expect("utf-8"))
        .finish();
    let upper = Tar::new()
        .file("d/.wh.victim", b"", 0o644)
        .file("d/dir/.wh..wh..opq", b"", 0o644)
        .finish();
    let image = oci_image(&[(lower, Codec::Plain), (upper, Codec::Plain)]);
    let src = s.write("evil.tar", &image.to_tar());

    import(&src, &s.dest()).expect("import");

    assert_eq!(
        fs::read_to_string(outside.join("victim")).expect("victim kept"),
        "keep"
    );
    assert_eq!(
        fs::read_to_string(outside.join("dir/inner")).expect("inner kept"),
        "keep"
    );
}

#[test]
fn replacing_a_directory_with_a_symlink_does_not_redirect_deferred_metadata() {
    let s = Scratch::new();
    fs::create_dir(s.outside().join("sub")).expect("mkdir");
    fs::set_permissions(
        s.outside().join("sub"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let tar = Tar::new()
        .dir("a", 0o755)
        .dir("a/sub", 0o700)
        .symlink("a", s.outside().to_str().expect("utf-8"))
        .finish();
    let src = s.write("evil.tar", &tar);

    import(&src, &s.dest()).expect("import");

    let mode = fs::metadata(s.outside().join("sub")).expect("stat").mode() & 0o7777;
    assert_eq!(mode, 0o755, "the host directory's mode must not change");
}
