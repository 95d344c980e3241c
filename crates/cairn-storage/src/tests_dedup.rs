//! Tests of memory checkpoint storage against a real btrfs pool (see `tests`): blocks
//! shared with a reference, files streamed through pipes, compressed or plain.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::tests::{temp_pool, write_file};
use crate::Pool;

/// Pseudo-random bytes (xorshift), different for each seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[tokio::test]
async fn a_copy_shares_the_blocks_its_reference_holds_and_keeps_every_byte() {
    use crate::dedup::{share_blocks, Received, Reference};
    let t = temp_pool().await;
    let [a, b] = ["a", "b"].map(|n| t.pool.snapshots_dir().join(n));
    for d in [&a, &b] {
        fs::create_dir_all(d).unwrap();
    }
    assert!(crate::compress_new_files(&a).unwrap() && crate::compress_new_files(&b).unwrap());
    // The reference: 16 MiB of noise and 8 MiB of one repeated byte, and a small file.
    let mut old = noise(16 << 20, 1);
    old.extend(vec![b'a'; 8 << 20]);
    write_file(&a.join("pages-1.img"), &old).unwrap();
    write_file(&a.join("small.img"), b"tiny").unwrap();
    let first = share_blocks(&a, Received::default()).unwrap();
    assert_eq!(first.shared_bytes, 0);
    assert_eq!(first.index.file_count(), 1, "small files are not indexed");
    first
        .index
        .write(&t.pool.snapshots_dir().join("a.blocks"))
        .unwrap();
    // The copy, under another name: a page inserted at 1 MiB (everything after moves),
    // 3 MiB rewritten in the middle, 2 MiB of new noise at the end, a partial last block.
    let mut new = old[..1 << 20].to_vec();
    new.extend(noise(4096, 2));
    new.extend_from_slice(&old[1 << 20..]);
    new[8 << 20..11 << 20].copy_from_slice(&noise(3 << 20, 3));
    new.extend(noise((2 << 20) + 100, 4));
    write_file(&b.join("pages-7.img"), &new).unwrap();
    let r = Reference::open(&a, &t.pool.snapshots_dir().join("a.blocks")).unwrap();
    let shared = share_blocks(&b, Received::from_reference(Some(r))).unwrap();
    let unchanged = (24 << 20) - (3 << 20);
    assert_eq!(shared.shared_bytes, unchanged as u64);
    assert_eq!(
        fs::read(b.join("pages-7.img")).unwrap(),
        new,
        "the copy's bytes changed"
    );
    assert!(
        fs::read_dir(&b).unwrap().count() == 1,
        "a temporary file was left"
    );
    // What the copy holds on its own is what changed (measured once on disk).
    fs::File::open(&b).unwrap().sync_all().unwrap();
    rustix::fs::syncfs(fs::File::open(&b).unwrap()).unwrap();
    let (exclusive, total) = t.storage.exclusive_and_total_bytes(&b).await.unwrap();
    assert_eq!(
        total,
        (new.len() as u64).div_ceil(4096) * 4096,
        "whole blocks"
    );
    let changed = (new.len() - unchanged) as u64;
    assert!(
        exclusive <= changed + (64 << 10),
        "the copy holds {exclusive} bytes alone, {changed} changed"
    );
    // The reference may go: the copy keeps its data.
    fs::remove_dir_all(&a).unwrap();
    assert_eq!(fs::read(b.join("pages-7.img")).unwrap(), new);
    // A damaged index is refused, naming the file.
    let idx = t.pool.snapshots_dir().join("a.blocks");
    let mut data = fs::read(&idx).unwrap();
    data[30] ^= 0xff;
    fs::write(&idx, data).unwrap();
    let err = Reference::open(&b, &idx).err().unwrap().to_string();
    assert!(
        err.contains("a.blocks") && err.contains("checksum"),
        "{err}"
    );
}

/// Writes `data` into the existing file or pipe at `path` in writes of `piece` bytes, on
/// another thread, as a runtime writes its checkpoint.
fn write_in_pieces(path: &Path, data: &[u8], piece: usize) {
    let (path, data) = (path.to_path_buf(), data.to_vec());
    std::thread::spawn(move || {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path)
            .unwrap();
        for c in data.chunks(piece) {
            f.write_all(c).unwrap();
        }
    })
    .join()
    .unwrap();
}

#[tokio::test]
async fn a_file_streamed_through_a_pipe_is_stored_sharing_what_the_reference_holds() {
    use crate::dedup::{receive, share_blocks, Received, Reference};
    let t = temp_pool().await;
    let [a, b] = ["a", "b"].map(|n| t.pool.snapshots_dir().join(n));
    for d in [&a, &b] {
        fs::create_dir_all(d).unwrap();
    }
    let old = noise(12 << 20, 5);
    write_file(&a.join("pages-1.img"), &old).unwrap();
    let index = t.pool.snapshots_dir().join("a.blocks");
    share_blocks(&a, Received::default())
        .unwrap()
        .index
        .write(&index)
        .unwrap();
    let reference = Reference::open(&a, &index).unwrap();
    let names: Vec<String> = (1..=4).map(|n| format!("pages-{n}.img")).collect();
    let receiving = receive(&b, &names, Some(reference)).unwrap();
    // The writer: pages-2 gets the old content with 1 MiB changed and an odd tail; pages-1
    // something small and new; pages-3 and pages-4 are never opened.
    let mut new = old.clone();
    new[4 << 20..5 << 20].copy_from_slice(&noise(1 << 20, 6));
    new.extend(noise(1000, 7));
    fs::write(b.join("pages-1.img"), b"small").unwrap();
    write_in_pieces(&b.join("pages-2.img"), &new, 300_000);
    let received = receiving.finish().unwrap();
    let mut names: Vec<String> = fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["pages-1.img", "pages-2.img"],
        "pipes nobody wrote stay behind"
    );
    assert!(fs::metadata(b.join("pages-2.img")).unwrap().is_file());
    assert_eq!(fs::read(b.join("pages-1.img")).unwrap(), b"small");
    assert_eq!(
        fs::read(b.join("pages-2.img")).unwrap(),
        new,
        "the received bytes differ"
    );
    let shared = share_blocks(&b, received).unwrap();
    assert_eq!(shared.shared_bytes, 11 << 20);
    assert_eq!(shared.index.file_count(), 2);
    // The next copy can share with this one: its index describes its files.
    let index_b = t.pool.snapshots_dir().join("b.blocks");
    shared.index.write(&index_b).unwrap();
    let again = Reference::open(&b, &index_b).unwrap();
    let c = t.pool.snapshots_dir().join("c");
    fs::create_dir_all(&c).unwrap();
    write_file(&c.join("pages-9.img"), &new).unwrap();
    let shared = share_blocks(&c, Received::from_reference(Some(again))).unwrap();
    assert_eq!(shared.shared_bytes, (new.len() as u64 / 4096) * 4096);
    assert_eq!(fs::read(c.join("pages-9.img")).unwrap(), new);
}

#[tokio::test]
async fn a_file_streamed_with_nothing_to_share_is_stored_compressed_and_zeros_take_no_space() {
    use crate::dedup::{receive, share_blocks};
    let t = temp_pool().await;
    let b = t.pool.snapshots_dir().join("b");
    fs::create_dir_all(&b).unwrap();
    // No compression property on the directory: whatever is compressed, Cairn compressed.
    let names = ["pages-1.img".to_string(), "pages-2.img".to_string()];
    let receiving = receive(&b, &names, None).unwrap();
    // 8 MiB of one byte, 4 MiB of zeros, 3 MiB of noise (long enough to be spliced rather
    // than compressed), 8 MiB of another byte (compressed again once a probe finds it
    // compresses), an odd tail, 512 KiB of zeros.
    let mut data = vec![b'a'; 8 << 20];
    data.extend(vec![0u8; 4 << 20]);
    data.extend(noise(3 << 20, 8));
    data.extend(vec![b'c'; 8 << 20]);
    data.extend(vec![b'b'; 1000]);
    data.extend(vec![0u8; 512 << 10]);
    let used = |p: &Pool| p.total_bytes().unwrap() - p.free_bytes().unwrap();
    rustix::fs::syncfs(fs::File::open(&b).unwrap()).unwrap();
    let before = used(&t.pool);
    write_in_pieces(&b.join("pages-1.img"), &data, 100_000);
    let received = receiving.finish().unwrap();
    assert!(!received.has_reference());
    let mut names: Vec<String> = fs::read_dir(&b)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["pages-1.img"], "the unused pipe stays behind");
    let path = b.join("pages-1.img");
    assert_eq!(fs::metadata(&path).unwrap().len(), data.len() as u64);
    assert!(
        fs::read(&path).unwrap() == data,
        "the bytes read back differ"
    );
    rustix::fs::syncfs(fs::File::open(&b).unwrap()).unwrap();
    let stored = used(&t.pool) - before;
    // The noise, and at most what follows it until a probe (16 pieces of 128 KiB).
    assert!(
        stored < 6 << 20,
        "{} bytes of file took {stored} bytes on disk (3 MiB of it cannot be compressed)",
        data.len()
    );
    // The zeros are holes.
    let f = fs::File::open(&path).unwrap();
    assert_eq!(
        rustix::fs::seek(&f, rustix::fs::SeekFrom::Hole(0)).unwrap(),
        8 << 20
    );
    assert_eq!(
        rustix::fs::seek(&f, rustix::fs::SeekFrom::Data(8 << 20)).unwrap(),
        12 << 20
    );
    // Received unhashed, the file is hashed when indexed.
    let shared = share_blocks(&b, received).unwrap();
    assert_eq!(shared.index.file_count(), 1);
    assert_eq!(shared.index, crate::dedup::index_files(&b).unwrap());
}

/// Feeds `data` through a pipe in pieces of 100 000 bytes to `store_stream` on two
/// threads, into a new file at `path`; the bytes it received.
fn store_piped(data: &[u8], path: &Path, min_rate: u64) -> u64 {
    let (reader, mut writer) = std::io::pipe().unwrap();
    let feed = {
        let data = data.to_vec();
        std::thread::spawn(move || {
            for c in data.chunks(100_000) {
                writer.write_all(c).unwrap();
            }
        })
    };
    let out = fs::File::create(path).unwrap();
    let received = crate::compressed::store_stream(
        fs::File::from(std::os::fd::OwnedFd::from(reader)),
        &out,
        2,
        min_rate,
        &std::sync::atomic::AtomicU64::new(0),
    )
    .unwrap();
    feed.join().unwrap();
    received
}

#[tokio::test]
async fn a_stream_that_compresses_too_slowly_is_stored_plainly_and_whole() {
    let t = temp_pool().await;
    let dir = t.pool.snapshots_dir().join("slow");
    fs::create_dir_all(&dir).unwrap();
    let used = |p: &Pool| p.total_bytes().unwrap() - p.free_bytes().unwrap();
    let mut data = vec![b'a'; 16 << 20];
    data.extend(vec![b'b'; 777]);
    // The same data at two required rates: none, and one no compressor reaches.
    let mut stored = Vec::new();
    for (name, min_rate) in [("any", 0), ("fast", u64::MAX)] {
        rustix::fs::syncfs(fs::File::open(&dir).unwrap()).unwrap();
        let before = used(&t.pool);
        let path = dir.join(name);
        assert_eq!(store_piped(&data, &path, min_rate), data.len() as u64);
        assert!(
            fs::read(&path).unwrap() == data,
            "{name}: the bytes read back differ"
        );
        rustix::fs::syncfs(fs::File::open(&dir).unwrap()).unwrap();
        stored.push(used(&t.pool) - before);
    }
    // Compressed, 16 MiB of one byte take a few KiB; too slow to compress, it goes down
    // plainly but the first pieces (8 timed, and those sent on before their reports came
    // back) and, after every 16 spliced, a probe and the pieces read while its report
    // is awaited (at most 6 in all, one per buffer): at least 16 in 22 of the rest.
    assert!(
        stored[0] < 1 << 20,
        "compressed: {} bytes on disk",
        stored[0]
    );
    assert!(
        stored[1] > 8 << 20,
        "too slow to compress: {} bytes on disk",
        stored[1]
    );
}

#[test]
fn a_stream_onto_a_file_system_without_encoded_writes_is_stored_plainly_and_whole() {
    // /tmp and /dev/shm are not btrfs here: the kernel refuses the encoded write (ENOTTY),
    // and every piece goes down plainly instead (spliced after a few), including the
    // ones that compress.
    for dir in [std::env::temp_dir(), PathBuf::from("/dev/shm")] {
        let dir = tempfile::tempdir_in(&dir).unwrap();
        let kind = rustix::fs::statfs(dir.path())
            .unwrap()
            .f_type
            .cast_unsigned();
        assert_ne!(
            kind,
            crate::pool::BTRFS_SUPER_MAGIC,
            "{dir:?} must not be btrfs"
        );
        let mut data = vec![b'a'; 4 << 20];
        data.extend(vec![0u8; 1 << 20]);
        data.extend(noise(2 << 20, 3));
        data.extend(vec![b'c'; 3 << 20]);
        data.extend(vec![b'b'; 777]);
        data.extend(vec![0u8; 256 << 10]);
        let path = dir.path().join("pages-1.img");
        assert_eq!(store_piped(&data, &path, 0), data.len() as u64);
        assert_eq!(fs::metadata(&path).unwrap().len(), data.len() as u64);
        assert!(
            fs::read(&path).unwrap() == data,
            "the bytes read back differ in {dir:?}"
        );
    }
}
