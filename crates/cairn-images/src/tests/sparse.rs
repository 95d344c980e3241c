//! Sparse files stay sparse and archive bombs stop at the size cap
//! (finding 5 of the security review: a 2 MB tar holding a 100 GiB sparse
//! file, and an 11 MB gzip bomb, were written out densely until the pool
//! was full).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::fixtures::{oci_image, Codec, Scratch, Tar};
use crate::{import, import_with, ImageError, ImportOptions};

const GIB: u64 = 1 << 30;

/// Bytes `path` takes on disk.
fn allocated(path: &Path) -> u64 {
    fs::metadata(path).expect("stat").blocks() * 512
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    fs::File::open(path)
        .expect("open")
        .read_exact_at(&mut buf, offset)
        .expect("read");
    buf
}

/// Asserts the 100 GiB file has its data where it belongs and takes about
/// the size of its data on disk.
fn assert_sparse_100g(path: &Path, segments: &[(u64, &[u8])]) {
    let md = fs::metadata(path).expect("stat");
    assert_eq!(md.len(), 100 * GIB);
    for (offset, data) in segments {
        assert_eq!(&read_at(path, *offset, data.len()), data, "at {offset}");
    }
    assert_eq!(
        read_at(path, 3 * GIB, 4),
        vec![0; 4],
        "a hole reads as zeros"
    );
    assert!(
        allocated(path) < 4 << 20,
        "a 100 GiB sparse file took {} bytes on disk",
        allocated(path)
    );
}

/// Six segments: more than the four an old-GNU header holds, so the map
/// continues in an extension header.
fn segments() -> Vec<(u64, Vec<u8>)> {
    (0..6u8)
        .map(|i| {
            let offset = u64::from(i) * 16 * GIB + 4096;
            let mut data = vec![b'a' + i; 1024];
            if i == 5 {
                data.truncate(100);
            }
            (offset, data)
        })
        .collect()
}

#[test]
fn old_gnu_sparse_entry_of_100_gib_imports_in_moments_and_stays_sparse() {
    let s = Scratch::new();
    let segs = segments();
    let borrowed: Vec<(u64, &[u8])> = segs.iter().map(|(o, d)| (*o, &d[..])).collect();
    let tar = Tar::new()
        .file("before", b"1", 0o644)
        .gnu_sparse("big", 100 * GIB, &borrowed)
        .file("after", b"2", 0o644)
        .finish();
    assert!(tar.len() < 64 << 10);
    let src = s.write("sparse.tar.gz", &super::fixtures::gzip(&tar));

    let started = Instant::now();
    import(&src, &s.dest()).expect("import");

    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_sparse_100g(&s.dest().join("big"), &borrowed);
    assert_eq!(
        fs::metadata(s.dest().join("big")).expect("stat").mode() & 0o7777,
        0o640
    );
    assert_eq!(s.read("before"), "1");
    assert_eq!(s.read("after"), "2");
}

#[test]
fn pax_sparse_entries_of_100_gib_keep_their_real_name_and_holes() {
    let size = (100 * GIB).to_string();
    let segs = segments();
    let borrowed: Vec<(u64, &[u8])> = segs.iter().map(|(o, d)| (*o, &d[..])).collect();
    let data: Vec<u8> = segs.iter().flat_map(|(_, d)| d.clone()).collect();
    // Format 1.0 (GNU tar's default for --format=posix): the map leads the data.
    let mut map = format!("{}\n", segs.len());
    for (offset, d) in &segs {
        map.push_str(&format!("{offset}\n{}\n", d.len()));
    }
    let mut v10 = map.into_bytes();
    v10.resize(v10.len().next_multiple_of(512), 0);
    v10.extend_from_slice(&data);
    // Format 0.1: the map is a record.
    let map01: Vec<String> = segs
        .iter()
        .map(|(o, d)| format!("{o},{}", d.len()))
        .collect();
    let map01 = map01.join(",");
    let tar = Tar::new()
        .pax_file(
            &[
                ("GNU.sparse.major", b"1"),
                ("GNU.sparse.minor", b"0"),
                ("GNU.sparse.name", b"srv/big10"),
                ("GNU.sparse.realsize", size.as_bytes()),
            ],
            "GNUSparseFile.1/big10",
            &v10,
        )
        .pax_file(
            &[
                ("GNU.sparse.size", size.as_bytes()),
                ("GNU.sparse.numblocks", b"6"),
                ("GNU.sparse.name", b"srv/big01"),
                ("GNU.sparse.map", map01.as_bytes()),
            ],
            "GNUSparseFile.2/big01",
            &data,
        )
        .finish();
    let s = Scratch::new();
    let image = oci_image(&[(tar, Codec::Zstd)]);
    let src = s.write("oci.tar", &image.to_tar());

    import(&src, &s.dest()).expect("import");

    assert_sparse_100g(&s.dest().join("srv/big10"), &borrowed);
    assert_sparse_100g(&s.dest().join("srv/big01"), &borrowed);
    assert!(
        !s.dest().join("GNUSparseFile.1").exists() && !s.dest().join("GNUSparseFile.2").exists()
    );
}

#[test]
fn pax_sparse_maps_that_lie_are_refused() {
    for (records, what) in [
        (
            vec![
                ("GNU.sparse.size", &b"100"[..]),
                ("GNU.sparse.name", b"f"),
                ("GNU.sparse.map", b"90,20"),
            ],
            "past the file's size",
        ),
        (
            vec![
                ("GNU.sparse.size", &b"100"[..]),
                ("GNU.sparse.name", b"f"),
                ("GNU.sparse.map", b"0,50"),
            ],
            "more data than stored",
        ),
        (
            vec![
                ("GNU.sparse.size", &b"100"[..]),
                ("GNU.sparse.name", b"../escape"),
                ("GNU.sparse.map", b"0,5"),
            ],
            "a name that climbs out",
        ),
    ] {
        let s = Scratch::new();
        let tar = Tar::new()
            .pax_file(&records, "GNUSparseFile.1/f", b"12345")
            .finish();
        let src = s.write("bad.tar", &tar);
        let err = import(&src, &s.dest()).expect_err(what);
        assert!(
            matches!(
                err,
                ImageError::BadEntry { .. }
                    | ImageError::UnsafeEntry { .. }
                    | ImageError::Io { .. }
            ),
            "{what}: {err}"
        );
        assert!(!s.dir.path().join("escape").exists());
    }
}

#[test]
fn zero_blocks_of_ordinary_files_become_holes() {
    let s = Scratch::new();
    let mut content = vec![0u8; 32 << 20];
    content[20 << 20] = 1;
    let tar = Tar::new().file("zeros", &content, 0o644).finish();
    let src = s.write("rootfs.tar", &tar);

    import(&src, &s.dest()).expect("import");

    let path = s.dest().join("zeros");
    assert_eq!(fs::read(&path).expect("read"), content);
    assert!(
        allocated(&path) <= 64 << 10,
        "32 MiB of zeros took {} bytes",
        allocated(&path)
    );
}

#[test]
fn directory_sources_keep_holes_and_only_data_counts_against_the_cap() {
    let s = Scratch::new();
    let src = s.dir.path().join("rootfs");
    fs::create_dir(&src).expect("mkdir");
    let big = fs::File::create(src.join("big")).expect("create");
    big.set_len(100 * GIB).expect("truncate");
    big.write_all_at(b"needle", 50 * GIB).expect("write");
    drop(big);
    let options = ImportOptions {
        max_decoded_bytes: 1 << 20,
        ..ImportOptions::default()
    };

    import_with(&src, &s.dest(), &options).expect("holes are not data");

    let path = s.dest().join("big");
    assert_eq!(fs::metadata(&path).expect("stat").len(), 100 * GIB);
    assert_eq!(read_at(&path, 50 * GIB, 6), b"needle");
    assert!(allocated(&path) < 1 << 20, "{} bytes", allocated(&path));
}

/// A gzip stream of the tar entries `prefix` (no end-of-archive marker)
/// followed by one regular file of `len` zeros, made of repeated gzip
/// members so that it is quick to build.
fn gzip_bomb(prefix: &[u8], len: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_path("zeros").expect("path");
    header.set_size(len);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut head = prefix.to_vec();
    head.extend_from_slice(header.as_bytes());
    let mut out = super::fixtures::gzip(&head);
    let piece = super::fixtures::gzip(&vec![0u8; 64 << 20]);
    assert_eq!(len % (64 << 20), 0);
    for _ in 0..len / (64 << 20) {
        out.write_all(&piece).expect("append");
    }
    out.extend_from_slice(&super::fixtures::gzip(&[0u8; 1024]));
    out
}

#[test]
fn gzip_bomb_stops_at_the_cap_with_an_error_naming_it() {
    let s = Scratch::new();
    // 256 MiB of zeros in about 1 MiB; the cap is 64 MiB.
    let bomb = gzip_bomb(&[], 256 << 20);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let src = s.write("bomb.tar.gz", &bomb);
    let options = ImportOptions {
        max_decoded_bytes: 64 << 20,
        ..ImportOptions::default()
    };

    let err = import_with(&src, &s.dest(), &options).expect_err("over the cap");

    assert!(
        matches!(err, ImageError::TooLarge { limit } if limit == 64 << 20),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("64 MiB") && msg.contains("--max-image-size"),
        "{msg}"
    );
}

#[test]
fn gzip_bomb_around_an_oci_archive_stops_at_the_cap_while_spooled() {
    let image = oci_image(&[(Tar::new().file("x", b"x", 0o644).finish(), Codec::Plain)]);
    let mut prefix = image.to_tar();
    prefix.truncate(prefix.len() - 1024);
    let bomb = gzip_bomb(&prefix, 128 << 20);
    let options = ImportOptions {
        max_decoded_bytes: 32 << 20,
        ..ImportOptions::default()
    };
    let s = Scratch::new();
    let src = s.write("bomb-oci.tar.gz", &bomb);

    let err = import_with(&src, &s.dest(), &options).expect_err("over the cap");

    assert!(matches!(err, ImageError::TooLarge { .. }), "{err}");
    // Under the cap the same archive imports, its zeros spooled as holes.
    let roomy = ImportOptions {
        max_decoded_bytes: 1 << 30,
        ..ImportOptions::default()
    };
    let s = Scratch::new();
    let src = s.write("bomb-oci.tar.gz", &bomb);
    import_with(&src, &s.dest(), &roomy).expect("under the cap");
    assert_eq!(s.read("x"), "x");
}

#[test]
fn the_default_cap_is_10_gib() {
    assert_eq!(ImportOptions::default().max_decoded_bytes, 10 * GIB);
}
