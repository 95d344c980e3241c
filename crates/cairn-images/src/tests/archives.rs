//! Importing image archives (OCI, docker save) and root filesystem tarballs.

use std::fs;
use std::os::unix::fs::MetadataExt;

use serde_json::json;

use super::fixtures::{docker_archive, gzip, oci_image, sha256, zstd, Codec, Scratch, Tar, MTIME};
use crate::{import, import_with, ImageError, ImportOptions, SourceKind};

/// Layer 1 of the whiteout scenario: a base system.
fn base_layer() -> Vec<u8> {
    Tar::new()
        .dir("etc", 0o755)
        .file("etc/hostname", b"one\n", 0o644)
        .file("etc/remove-me", b"old\n", 0o644)
        .dir("opt", 0o755)
        .dir("opt/app", 0o750)
        .file("opt/app/old", b"old\n", 0o644)
        .dir("opt/app/sub", 0o755)
        .file("opt/app/sub/deep", b"old\n", 0o644)
        .dir("bin", 0o755)
        .owned_file("bin/tool", b"#!/bin/sh\n", 0o755, 0, 0)
        .hard_link("bin/tool-alias", "bin/tool")
        .symlink("bin/sh", "tool")
        .finish()
}

/// Layer 2: deletes a file, makes `opt/app` opaque, overwrites a file.
fn whiteout_layer() -> Vec<u8> {
    Tar::new()
        .file("etc/.wh.remove-me", b"", 0o644)
        .dir("opt/app", 0o750)
        .file("opt/app/.wh..wh..opq", b"", 0o644)
        .file("opt/app/new", b"new\n", 0o644)
        .file("etc/hostname", b"two\n", 0o600)
        .finish()
}

fn assert_whiteouts_applied(s: &Scratch) {
    let d = s.dest();
    assert_eq!(s.read("etc/hostname"), "two\n");
    assert_eq!(
        fs::metadata(d.join("etc/hostname")).expect("stat").mode() & 0o7777,
        0o600
    );
    assert!(
        !d.join("etc/remove-me").exists(),
        "whiteout must delete the lower file"
    );
    assert!(
        !d.join("etc/.wh.remove-me").exists(),
        "whiteout markers are not content"
    );
    assert!(
        !d.join("opt/app/old").exists(),
        "opaque dir hides lower files"
    );
    assert!(
        !d.join("opt/app/sub").exists(),
        "opaque dir hides lower directories"
    );
    assert!(!d.join("opt/app/.wh..wh..opq").exists());
    assert_eq!(s.read("opt/app/new"), "new\n");
    assert_eq!(
        fs::metadata(d.join("opt/app")).expect("stat").mode() & 0o7777,
        0o750
    );
    let tool = fs::metadata(d.join("bin/tool")).expect("stat");
    assert_eq!(tool.mode() & 0o7777, 0o755);
    assert_eq!(tool.mtime(), MTIME.cast_signed());
    assert_eq!(
        tool.ino(),
        fs::metadata(d.join("bin/tool-alias")).expect("stat").ino()
    );
    assert_eq!(
        fs::read_link(d.join("bin/sh")).expect("readlink").to_str(),
        Some("tool")
    );
}

#[test]
fn oci_archive_with_two_gzip_layers_applies_whiteouts_and_opaque_dirs() {
    let s = Scratch::new();
    let image = oci_image(&[(base_layer(), Codec::Gzip), (whiteout_layer(), Codec::Gzip)]);
    let src = s.write("image.tar", &image.to_tar());

    let config = import(&src, &s.dest()).expect("import");

    assert_eq!(config.kind, SourceKind::OciArchive);
    assert_whiteouts_applied(&s);
}

#[test]
fn image_config_env_workdir_and_command_are_returned() {
    let s = Scratch::new();
    let image = oci_image(&[(base_layer(), Codec::Gzip)]);
    let src = s.write("image.tar", &image.to_tar());

    let config = import(&src, &s.dest()).expect("import");

    assert_eq!(
        config.env,
        vec![
            "PATH=/usr/bin:/bin".to_string(),
            "GREETING=hello".to_string()
        ]
    );
    assert_eq!(config.workdir.as_deref(), Some("/srv"));
    assert_eq!(
        config.cmd,
        vec!["/bin/tool".to_string(), "--serve".to_string()]
    );
}

#[test]
fn opaque_marker_after_same_layer_files_keeps_those_files() {
    let s = Scratch::new();
    let upper = Tar::new()
        .dir("opt/app", 0o755)
        .file("opt/app/new", b"new\n", 0o644)
        .dir("opt/app/sub", 0o755)
        .file("opt/app/sub/fresh", b"fresh\n", 0o644)
        .file("opt/app/.wh..wh..opq", b"", 0o644)
        .finish();
    let image = oci_image(&[(base_layer(), Codec::Plain), (upper, Codec::Plain)]);
    let src = s.write("image.tar", &image.to_tar());

    import(&src, &s.dest()).expect("import");

    assert_eq!(s.read("opt/app/new"), "new\n");
    assert_eq!(s.read("opt/app/sub/fresh"), "fresh\n");
    assert!(!s.dest().join("opt/app/old").exists());
    assert!(
        !s.dest().join("opt/app/sub/deep").exists(),
        "lower content of a re-declared dir stays hidden"
    );
}

#[test]
fn zstd_layers_and_zstd_compressed_archives_import() {
    let s = Scratch::new();
    let image = oci_image(&[(base_layer(), Codec::Zstd), (whiteout_layer(), Codec::Gzip)]);
    let src = s.write("image.tar.zst", &zstd(&image.to_tar()));

    let config = import(&src, &s.dest()).expect("import");

    assert_eq!(config.kind, SourceKind::OciArchive);
    assert_whiteouts_applied(&s);
}

#[test]
fn gzip_compressed_archive_is_detected_by_magic_not_name() {
    let s = Scratch::new();
    let image = oci_image(&[
        (base_layer(), Codec::Plain),
        (whiteout_layer(), Codec::Zstd),
    ]);
    let src = s.write("image.bin", &gzip(&image.to_tar()));

    import(&src, &s.dest()).expect("import");

    assert_whiteouts_applied(&s);
}

#[test]
fn docker_save_archive_imports_with_linked_duplicate_layers() {
    let s = Scratch::new();
    let layers = vec![base_layer(), whiteout_layer(), base_layer()];
    let src = s.write("docker.tar", &docker_archive(&layers, None, true));

    let config = import(&src, &s.dest()).expect("import");

    assert_eq!(config.kind, SourceKind::DockerArchive);
    assert_eq!(config.workdir.as_deref(), Some("/srv"));
    // The third layer re-adds what the second removed.
    assert_eq!(s.read("etc/remove-me"), "old\n");
    assert_eq!(s.read("opt/app/new"), "new\n");
    assert_eq!(s.read("etc/hostname"), "one\n");
}

#[test]
fn layer_digest_mismatch_is_refused_naming_the_layer() {
    let s = Scratch::new();
    let mut image = oci_image(&[(base_layer(), Codec::Gzip), (whiteout_layer(), Codec::Gzip)]);
    let bad = image.layer_blobs[1].clone();
    image.tamper(&bad);
    let src = s.write("image.tar", &image.to_tar());

    let err = import(&src, &s.dest()).expect_err("tampered layer");

    match &err {
        ImageError::DigestMismatch {
            layer,
            expected,
            actual,
        } => {
            assert!(layer.starts_with("layer 2/2"), "{layer}");
            assert!(
                bad.ends_with(expected.trim_start_matches("sha256:")),
                "{expected}"
            );
            assert_ne!(expected, actual);
        }
        other => panic!("expected a digest mismatch, got {other}"),
    }
    assert!(err.to_string().contains("layer 2/2"));
}

#[test]
fn docker_layer_not_matching_its_diff_id_is_refused() {
    let s = Scratch::new();
    let layers = vec![base_layer(), whiteout_layer()];
    let src = s.write("docker.tar", &docker_archive(&layers, Some(1), false));

    let err = import(&src, &s.dest()).expect_err("tampered layer");

    assert!(
        matches!(&err, ImageError::DigestMismatch { layer, .. } if layer.starts_with("layer 2/2")),
        "{err}"
    );
}

#[test]
fn plain_rootfs_tarball_is_unpacked_as_a_root_filesystem() {
    let s = Scratch::new();
    let tar = Tar::new()
        .dir("./", 0o755)
        .dir("./etc", 0o755)
        .file("./etc/hostname", b"plain\n", 0o644)
        .file("./etc/.wh.keep", b"literal\n", 0o644)
        .symlink("./bin", "usr/bin")
        .finish();
    let src = s.write("rootfs.tgz", &gzip(&tar));

    let config = import(&src, &s.dest()).expect("import");

    assert_eq!(config.kind, SourceKind::RootfsTarball);
    assert!(config.env.is_empty());
    assert_eq!(s.read("etc/hostname"), "plain\n");
    assert_eq!(
        s.read("etc/.wh.keep"),
        "literal\n",
        "a rootfs tarball has no whiteouts"
    );
    assert_eq!(
        fs::read_link(s.dest().join("bin"))
            .expect("readlink")
            .to_str(),
        Some("usr/bin")
    );
}

#[test]
fn index_with_several_platforms_picks_this_hosts_manifest() {
    let s = Scratch::new();
    let mut image = oci_image(&[(base_layer(), Codec::Gzip)]);
    let (_, index) = image
        .files
        .iter()
        .find(|(n, _)| n == "index.json")
        .expect("index")
        .clone();
    let mut index: serde_json::Value = serde_json::from_slice(&index).expect("json");
    let mut native_with_platform = index["manifests"][0].clone();
    native_with_platform["platform"] =
        json!({ "os": "linux", "architecture": oci_spec::image::Arch::default().to_string() });
    let foreign = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", sha256(b"not here")),
        "size": 8,
        "platform": { "os": "linux", "architecture": "s390x" }
    });
    index["manifests"] = json!([foreign, native_with_platform]);
    let entry = image
        .files
        .iter_mut()
        .find(|(n, _)| n == "index.json")
        .expect("index");
    entry.1 = serde_json::to_vec(&index).expect("json");
    let src = s.write("multi.tar", &image.to_tar());

    import(&src, &s.dest()).expect("import picks the native manifest");

    assert_eq!(s.read("etc/hostname"), "one\n");
}

#[test]
fn files_that_are_not_tar_archives_are_refused() {
    let s = Scratch::new();
    let src = s.write(
        "notes.txt",
        &b"just some text, not an archive at all\n".repeat(20),
    );
    let err = import(&src, &s.dest()).expect_err("not a tar");
    assert!(matches!(err, ImageError::NotAnArchive { .. }), "{err}");

    let xz = s.write(
        "rootfs.tar.xz",
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00, 1, 2, 3],
    );
    let err = import(&xz, &s.dest()).expect_err("xz");
    assert!(
        matches!(err, ImageError::UnsupportedCompression { format: "xz", .. }),
        "{err}"
    );
}

#[test]
fn layers_decoding_past_the_size_limit_are_refused() {
    let s = Scratch::new();
    let big = Tar::new()
        .file("zeros", &vec![0u8; 1 << 20], 0o644)
        .finish();
    let image = oci_image(&[(big, Codec::Gzip)]);
    let src = s.write("bomb.tar", &image.to_tar());
    let options = ImportOptions {
        max_decoded_bytes: 64 << 10,
        ..ImportOptions::default()
    };

    let err = import_with(&src, &s.dest(), &options).expect_err("too large");

    assert!(
        matches!(err, ImageError::TooLarge { limit } if limit == 64 << 10),
        "{err}"
    );
}

#[test]
fn compressed_rootfs_bomb_is_refused() {
    let s = Scratch::new();
    let big = Tar::new()
        .file("zeros", &vec![0u8; 1 << 20], 0o644)
        .finish();
    let src = s.write("bomb.tar.gz", &gzip(&big));
    let options = ImportOptions {
        max_decoded_bytes: 64 << 10,
        ..ImportOptions::default()
    };

    let err = import_with(&src, &s.dest(), &options).expect_err("too large");

    assert!(matches!(err, ImageError::TooLarge { .. }), "{err}");
}

/// The (done, total) reports of an import with progress asked for.
fn reports_of(src: &std::path::Path, dest: &std::path::Path) -> Vec<(u64, u64)> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = std::sync::Arc::clone(&seen);
    let options = ImportOptions {
        progress: Some(crate::ImportProgress(std::sync::Arc::new(move |d, t| {
            s2.lock().unwrap().push((d, t))
        }))),
        ..ImportOptions::default()
    };
    import_with(src, dest, &options).expect("imports");
    let v = seen.lock().unwrap().clone();
    v
}

#[test]
fn an_import_reports_its_layers_then_the_whole() {
    let s = Scratch::new();
    let noise = |n: usize| (0..n).map(|i| (i * 7919 % 251) as u8).collect::<Vec<u8>>();
    let one = Tar::new().file("a", &noise(3 << 20), 0o644).finish();
    let two = Tar::new().file("b", &noise(2 << 20), 0o644).finish();
    let image = oci_image(&[(one, Codec::Gzip), (two, Codec::Zstd)]);
    let src = s.write("img.tar", &image.to_tar());
    let reports = reports_of(&src, &s.dest());
    assert!(reports.len() >= 2, "{reports:?}");
    let total = reports[0].1;
    assert!(
        reports.iter().all(|(d, t)| *t == total && d <= t),
        "{reports:?}"
    );
    assert!(reports.windows(2).all(|w| w[0].0 <= w[1].0), "{reports:?}");
    assert_eq!(reports.last().unwrap().0, total, "{reports:?}");

    // A root filesystem archive: of the archive's size.
    let s = Scratch::new();
    let rootfs = gzip(&Tar::new().file("f", &noise(3 << 20), 0o644).finish());
    let src = s.write("rootfs.tar.gz", &rootfs);
    let reports = reports_of(&src, &s.dest());
    assert_eq!(
        reports.last().copied(),
        Some((rootfs.len() as u64, rootfs.len() as u64)),
        "{reports:?}"
    );
}
