//! Unit tests of block indexes, references and receiving (no pool needed).

use super::*;

fn h(n: u8) -> BlockHash {
    [n; HASH_BYTES]
}

#[test]
fn a_writer_left_waiting_on_a_pipe_is_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["pages-1.img".to_string()];
    // A receiver whose reader is gone (as after a crash): only the pipe is left.
    let fifo = dir.path().join(&names[0]);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo)?;
        f.write_all(&vec![1u8; 4 << 20])
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    release_pipes(dir.path());
    assert!(
        writer.join().unwrap().is_err(),
        "the writer wrote into nothing"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn an_index_reads_back_and_refuses_damage() {
    let idx = BlockIndex {
        files: vec![IndexedFile {
            name: "pages-1.img".into(),
            len: 3 * BLOCK + 100,
            blocks: vec![h(1), h(2), h(3)],
        }],
    };
    let data = idx.encode();
    assert_eq!(BlockIndex::decode(&data).unwrap(), idx);
    let mut bad = data.clone();
    bad[20] ^= 1;
    assert!(BlockIndex::decode(&bad).unwrap_err().contains("checksum"));
    assert!(BlockIndex::decode(&data[..10]).is_err());
    let mut other = b"NOTCAIRN".to_vec();
    other.extend_from_slice(&data[8..data.len() - 32]);
    let sum = blake3::hash(&other);
    other.extend_from_slice(sum.as_bytes());
    assert!(BlockIndex::decode(&other)
        .unwrap_err()
        .contains("not a Cairn"));
}

#[test]
fn runs_follow_the_reference_and_write_what_it_lacks() {
    let (_dir, r) = reference(vec![h(1), h(2), h(3), h(4), h(1)]);
    // 1 2 3 continue one run; 9 is new; 4 1 continue from block 3; 2 starts over at 1.
    let runs = plan(&[h(1), h(2), h(3), h(9), h(9), h(4), h(1), h(2)], &r);
    let expect = [
        Run {
            start: 0,
            count: 3,
            from: Some((0, 0)),
        },
        Run {
            start: 3,
            count: 2,
            from: None,
        },
        Run {
            start: 5,
            count: 2,
            from: Some((0, 3)),
        },
        Run {
            start: 7,
            count: 1,
            from: Some((0, 1)),
        },
    ];
    assert_eq!(runs, expect);
}

fn reference(blocks: Vec<BlockHash>) -> (tempfile::TempDir, Reference) {
    let dir = tempfile::tempdir().unwrap();
    let len = blocks.len() as u64 * BLOCK;
    std::fs::write(dir.path().join("f"), vec![0u8; len as usize]).unwrap();
    let idx = BlockIndex {
        files: vec![IndexedFile {
            name: "f".into(),
            len,
            blocks,
        }],
    };
    idx.write(&dir.path().join("idx")).unwrap();
    let r = Reference::open(dir.path(), &dir.path().join("idx")).unwrap();
    (dir, r)
}
