//! The snapshot archive format (docs/formats.md): one tar stream, compressed with zstd or
//! gzip, read and written once from start to end.
//!
//! ```text
//! cairn-snapshot.json   ArchiveDoc: format, version, Cairn version, the snapshot's
//!                       manifest, its image's name, declared sizes
//! rootfs/…              the tree (cairn_images::write_tree)
//! checkpoint/…          the memory checkpoint, when stateful
//! checksums             Checksums: BLAKE3 of the manifest document and of every byte
//!                       of the (uncompressed) stream before this entry
//! ```
//!
//! Not for: which snapshot is exported or what an import becomes (`export`, `import`).

use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use cairn_storage::Manifest;

/// The archive's first entry.
pub(crate) const DOC_ENTRY: &str = "cairn-snapshot.json";
/// The archive's last entry.
pub(crate) const CHECKSUMS_ENTRY: &str = "checksums";
/// The tree's part.
pub(crate) const ROOTFS: &str = "rootfs";
/// The memory checkpoint's part.
pub(crate) const CHECKPOINT: &str = "checkpoint";
/// Largest first or last document read.
pub(crate) const MAX_DOC_BYTES: u64 = 16 << 20;
/// Tar overhead allowed per entry over its data: a header, a PAX header (long names,
/// attributes) and padding.
const ENTRY_OVERHEAD: u64 = 4096;

/// How an archive is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `.tar.zst` (zstd level 1).
    TarZst,
    /// `.tar.gz` (gzip level 1).
    TarGz,
}

impl ArchiveFormat {
    /// `tar.zst` or `tar.gz`; `None` otherwise.
    pub fn parse(s: &str) -> Option<ArchiveFormat> {
        match s {
            "tar.zst" | "zst" | "tar.zstd" => Some(ArchiveFormat::TarZst),
            "tar.gz" | "gz" | "tgz" => Some(ArchiveFormat::TarGz),
            _ => None,
        }
    }

    /// The file name extension (`tar.zst`).
    pub fn extension(self) -> &'static str {
        match self {
            ArchiveFormat::TarZst => "tar.zst",
            ArchiveFormat::TarGz => "tar.gz",
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            ArchiveFormat::TarZst => "application/zstd",
            ArchiveFormat::TarGz => "application/gzip",
        }
    }
}

/// The archive's first document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ArchiveDoc {
    /// Always [`ArchiveDoc::FORMAT`].
    pub format: String,
    /// [`ArchiveDoc::VERSION`] when written by this Cairn.
    pub version: u32,
    /// The Cairn that wrote it.
    pub cairn_version: String,
    /// The snapshot's manifest as its host keeps it (ids are that host's).
    pub manifest: Manifest,
    /// The name of the snapshot's image on its host.
    pub image_name: String,
    /// The disk limit of the snapshot's sandbox (what forks inherit), if any.
    #[serde(default)]
    pub disk_bytes: Option<u64>,
    /// What the parts hold.
    pub sizes: DeclaredSizes,
}

/// The sizes an archive declares: an import refuses one that holds more.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(crate) struct DeclaredSizes {
    /// Entries of the tree.
    pub rootfs_entries: u64,
    /// Bytes of file data of the tree.
    pub rootfs_bytes: u64,
    /// Entries of the memory checkpoint.
    pub checkpoint_entries: u64,
    /// Bytes of the memory checkpoint.
    pub checkpoint_bytes: u64,
}

impl DeclaredSizes {
    /// Bytes of data the snapshot holds.
    pub(crate) fn data_bytes(&self) -> u64 {
        self.rootfs_bytes.saturating_add(self.checkpoint_bytes)
    }

    /// About how many bytes the uncompressed stream has, when its first document is
    /// `doc_bytes` long (a tar header per entry and the data; padding, PAX records and
    /// the checksums are left out, so it is a little short).
    pub(crate) fn stream_estimate(&self, doc_bytes: u64) -> u64 {
        let entries = self.rootfs_entries.saturating_add(self.checkpoint_entries);
        self.data_bytes()
            .saturating_add(entries.saturating_mul(512))
            .saturating_add(doc_bytes)
    }

    /// The most bytes the uncompressed stream may have.
    pub(crate) fn stream_bound(&self) -> u64 {
        let entries = self
            .rootfs_entries
            .saturating_add(self.checkpoint_entries)
            .saturating_add(4);
        self.data_bytes()
            .saturating_add(entries.saturating_mul(ENTRY_OVERHEAD))
            .saturating_add(2 * MAX_DOC_BYTES)
    }
}

impl ArchiveDoc {
    /// The format marker.
    pub(crate) const FORMAT: &'static str = "cairn-snapshot-archive";
    /// The newest version this Cairn reads, and the one it writes.
    pub(crate) const VERSION: u32 = 1;

    /// Parses and checks the first document; the error says what is wrong.
    pub(crate) fn decode(data: &[u8]) -> Result<ArchiveDoc, String> {
        let value: serde_json::Value = serde_json::from_slice(data)
            .map_err(|e| format!("its {DOC_ENTRY} is not JSON ({e})"))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(Self::FORMAT) => {}
            _ => return Err(format!("its {DOC_ENTRY} is not a snapshot archive's")),
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v > u64::from(Self::VERSION) || v == 0 => {
                return Err(format!(
                    "it is format version {v}, which this Cairn does not read (it reads version {}): upgrade cairnd",
                    Self::VERSION
                ))
            }
            Some(_) => {}
            None => return Err(format!("its {DOC_ENTRY} has no version")),
        }
        let doc: ArchiveDoc = serde_json::from_value(value)
            .map_err(|e| format!("its {DOC_ENTRY} is incomplete ({e})"))?;
        if doc.manifest.format != Manifest::FORMAT || doc.manifest.version > Manifest::VERSION {
            return Err(format!(
                "its snapshot manifest is version {} of '{}', which this Cairn does not read",
                doc.manifest.version, doc.manifest.format
            ));
        }
        Ok(doc)
    }
}

/// The archive's last document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checksums {
    /// `blake3`.
    pub algorithm: String,
    /// Hex BLAKE3 of the `cairn-snapshot.json` document.
    pub manifest: String,
    /// Hex BLAKE3 of every byte of the uncompressed stream before this entry.
    pub archive: String,
    /// How many bytes that is.
    pub archive_bytes: u64,
}

/// A writer that hashes and counts what passes through it. Hashing is fast only on large
/// writes (BLAKE3 hashes many 1 KiB chunks at once only when given them together), which
/// `cairn_images::write_tree` makes for file data.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        }
    }

    /// (hex hash, bytes) of everything written so far.
    pub(crate) fn sum(&self) -> (String, u64) {
        (self.hasher.finalize().to_hex().to_string(), self.bytes)
    }

    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What a [`HashingReader`] has seen; shared with whoever reads the tar entries, which
/// learns where the checksummed range ends only once past it.
#[derive(Debug)]
pub(crate) struct ReadState {
    hasher: blake3::Hasher,
    /// Bytes read but not hashed yet (the last stretch, which may lie past the end of the
    /// checksummed range).
    pending: Vec<u8>,
    /// Bytes hashed.
    hashed: u64,
    /// Bytes read.
    total: u64,
    /// The most bytes the stream may have.
    pub(crate) limit: u64,
    /// Whether the stream went over `limit`.
    pub(crate) over: bool,
    /// Whether reading the stream failed (it is cut short or does not decompress).
    pub(crate) broken: bool,
}

/// Bytes kept unhashed behind the read position (tar reads at most a header and a PAX
/// header past the start of an entry before handing it out).
const HASH_LAG: usize = 1 << 20;

impl ReadState {
    pub(crate) fn new(limit: u64) -> Arc<Mutex<ReadState>> {
        Arc::new(Mutex::new(ReadState {
            hasher: blake3::Hasher::new(),
            pending: Vec::new(),
            hashed: 0,
            total: 0,
            limit,
            over: false,
            broken: false,
        }))
    }

    /// Hex BLAKE3 of the first `end` bytes; `None` when they are no longer (or not yet)
    /// all known.
    pub(crate) fn sum_to(&self, end: u64) -> Option<String> {
        let cut = usize::try_from(end.checked_sub(self.hashed)?).ok()?;
        let tail = self.pending.get(..cut)?;
        let mut hasher = self.hasher.clone();
        hasher.update(tail);
        Some(hasher.finalize().to_hex().to_string())
    }
}

/// A reader that hashes what it reads (lagging behind, see [`ReadState`]) and refuses to
/// read past a limit.
pub(crate) struct HashingReader<R> {
    inner: R,
    state: Arc<Mutex<ReadState>>,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R, state: Arc<Mutex<ReadState>>) -> Self {
        HashingReader { inner, state }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf);
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                st.broken = true;
                return Err(e);
            }
        };
        st.total += n as u64;
        if st.total > st.limit {
            st.over = true;
            return Err(io::Error::other("the archive holds more than it declares"));
        }
        st.pending.extend_from_slice(&buf[..n]);
        if st.pending.len() > 2 * HASH_LAG {
            let cut = st.pending.len() - HASH_LAG;
            let ReadState {
                hasher, pending, ..
            } = &mut *st;
            hasher.update(&pending[..cut]);
            pending.drain(..cut);
            st.hashed += cut as u64;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writer_hashes_everything_written_whatever_the_write_sizes() {
        let data: Vec<u8> = (0u32..(5 << 20) + 777).map(|i| (i % 251) as u8).collect();
        let mut w = HashingWriter::new(Vec::new());
        let mut at = 0;
        for (i, size) in [512usize, 8192, 3, 1 << 20, 65_536]
            .iter()
            .cycle()
            .enumerate()
        {
            if at == data.len() {
                break;
            }
            let end = (at + size).min(data.len());
            w.write_all(&data[at..end]).expect("write");
            at = end;
            if i == 3 || i == 7 {
                // A sum part way (past a batch, and within one), then more writes: the
                // sum covers what was written so far.
                assert_eq!(w.sum().0, blake3::hash(&data[..at]).to_hex().to_string());
            }
        }
        let (sum, bytes) = w.sum();
        assert_eq!(bytes, data.len() as u64);
        assert_eq!(sum, blake3::hash(&data).to_hex().to_string());
        assert_eq!(w.into_inner(), data);
    }

    #[test]
    fn a_reader_hashes_any_prefix_it_still_holds() {
        let data: Vec<u8> = (0u32..5 << 20).map(|i| (i % 251) as u8).collect();
        let state = ReadState::new(u64::MAX);
        let mut r = HashingReader::new(&data[..], state.clone());
        io::copy(&mut r, &mut io::sink()).expect("read");
        let end = data.len() as u64 - 1000;
        let want = blake3::hash(&data[..data.len() - 1000])
            .to_hex()
            .to_string();
        let st = state.lock().expect("lock");
        assert_eq!(st.sum_to(end), Some(want));
        assert_eq!(st.sum_to(10), None);
    }

    #[test]
    fn a_reader_stops_at_its_limit() {
        let data = vec![0u8; 10_000];
        let state = ReadState::new(5000);
        let mut r = HashingReader::new(&data[..], state.clone());
        assert!(io::copy(&mut r, &mut io::sink()).is_err());
        assert!(state.lock().expect("lock").over);
    }

    #[test]
    fn unknown_versions_and_formats_are_refused() {
        let err = ArchiveDoc::decode(br#"{"format":"cairn-snapshot-archive","version":9}"#)
            .expect_err("newer");
        assert!(err.contains("version 9"), "{err}");
        let err = ArchiveDoc::decode(br#"{"format":"x","version":1}"#).expect_err("format");
        assert!(err.contains("not a snapshot archive"), "{err}");
    }
}
