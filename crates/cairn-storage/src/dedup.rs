//! Files that share their unchanged blocks with an earlier copy.
//!
//! A runtime writes a memory checkpoint whole, though most of its pages are
//! often the same as in the checkpoint before it. [`share_blocks`] rewrites the
//! large files of a directory so that every 4 KiB block a reference directory
//! already holds — found by its BLAKE3 hash in the reference's [`BlockIndex`] —
//! shares the reference's extent (a reflink, through `copy_file_range`) instead
//! of being written again: only the blocks that differ reach the disk, and the
//! copy holds only those exclusively.
//!
//! Not for: choosing the reference (the caller's business), or files that change
//! after they are indexed — a reference must be immutable (a snapshot's files).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::StorageError;

/// The unit that is hashed and shared: a page, and btrfs's sector size.
pub const BLOCK: u64 = 4096;
/// Files smaller than this are left as they are and not indexed: sharing their
/// blocks would save less than rewriting them costs.
pub const MIN_FILE: u64 = 1 << 20;
/// A file is rewritten only when at least this many of its bytes can be shared.
const MIN_SHARED: u64 = 1 << 20;
const MAGIC: &[u8; 8] = b"CAIRNBLK";
const VERSION: u32 = 1;
/// Bytes kept of each block's BLAKE3 hash (128 bits: no accidental collision in
/// any number of blocks a host will ever hold).
const HASH_BYTES: usize = 16;
/// The largest index read back (an index of 64 GiB of files takes 256 MiB).
const MAX_INDEX_BYTES: u64 = 256 << 20;
/// Bytes read at a time.
const CHUNK: usize = 1 << 20;

type BlockHash = [u8; HASH_BYTES];

/// The hash of every whole block of the large files of one directory, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockIndex {
    files: Vec<IndexedFile>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct IndexedFile {
    name: String,
    len: u64,
    blocks: Vec<BlockHash>,
}

impl BlockIndex {
    /// How many files it covers.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }

    fn encode(&self) -> Vec<u8> {
        let blocks: usize = self.files.iter().map(|f| f.blocks.len()).sum();
        let mut out = Vec::with_capacity(64 + blocks * HASH_BYTES);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(BLOCK as u32).to_le_bytes());
        out.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        for f in &self.files {
            out.extend_from_slice(&(f.name.len() as u16).to_le_bytes());
            out.extend_from_slice(f.name.as_bytes());
            out.extend_from_slice(&f.len.to_le_bytes());
            out.extend_from_slice(&(f.blocks.len() as u64).to_le_bytes());
            for b in &f.blocks {
                out.extend_from_slice(b);
            }
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    fn decode(data: &[u8]) -> Result<Self, String> {
        let Some(body_len) = data.len().checked_sub(32) else {
            return Err("too short".into());
        };
        let (body, sum) = data.split_at(body_len);
        if blake3::hash(body).as_bytes() != sum {
            return Err("its checksum does not match (damaged)".into());
        }
        let mut r = Reader(body);
        if r.take(8)? != MAGIC {
            return Err("not a Cairn block index".into());
        }
        let version = u32::from_le_bytes(r.array()?);
        if version != VERSION {
            return Err(format!("version {version}, this cairnd reads {VERSION}"));
        }
        if u64::from(u32::from_le_bytes(r.array()?)) != BLOCK {
            return Err("another block size".into());
        }
        let count = u32::from_le_bytes(r.array()?);
        let mut files = Vec::new();
        for _ in 0..count {
            let name_len = u16::from_le_bytes(r.array()?) as usize;
            let name = std::str::from_utf8(r.take(name_len)?)
                .map_err(|_| "a file name is not UTF-8".to_string())?
                .to_string();
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(format!("bad file name {name:?}"));
            }
            let len = u64::from_le_bytes(r.array()?);
            let blocks = u64::from_le_bytes(r.array()?);
            if blocks != len / BLOCK {
                return Err(format!("{name}: {blocks} blocks for {len} bytes"));
            }
            let raw = r.take(
                usize::try_from(blocks)
                    .ok()
                    .and_then(|b| b.checked_mul(HASH_BYTES))
                    .ok_or("too many blocks")?,
            )?;
            let blocks = raw
                .chunks_exact(HASH_BYTES)
                .map(|c| {
                    let mut h = [0u8; HASH_BYTES];
                    h.copy_from_slice(c);
                    h
                })
                .collect();
            files.push(IndexedFile { name, len, blocks });
        }
        if !r.0.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(BlockIndex { files })
    }

    /// Reads an index written by [`BlockIndex::write`], checking its magic,
    /// version and checksum.
    pub fn load(path: &Path) -> Result<Self, StorageError> {
        let bad = |reason: String| StorageError::BadIndex {
            path: path.to_path_buf(),
            reason,
        };
        let f = File::open(path).map_err(StorageError::io("opening", path))?;
        let len = f
            .metadata()
            .map_err(StorageError::io("reading", path))?
            .len();
        if len > MAX_INDEX_BYTES {
            return Err(bad(format!("{len} bytes, over the {MAX_INDEX_BYTES} read")));
        }
        let mut data = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(&mut &f, &mut data)
            .map_err(StorageError::io("reading", path))?;
        Self::decode(&data).map_err(bad)
    }

    /// Writes the index durably: to a temporary name, synced, then renamed.
    pub fn write(&self, path: &Path) -> Result<(), StorageError> {
        let tmp = path.with_extension("tmp");
        let mut f = File::create(&tmp).map_err(StorageError::io("creating", &tmp))?;
        f.write_all(&self.encode())
            .and_then(|()| f.sync_all())
            .map_err(StorageError::io("writing", &tmp))?;
        std::fs::rename(&tmp, path).map_err(StorageError::io("renaming", path))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

/// An immutable directory whose blocks new files may share: its index, and its
/// files held open (so they stay readable even if the directory is removed meanwhile).
pub struct Reference {
    files: Vec<(IndexedFile, File)>,
    /// Where each block hash was first seen: (file, block).
    first: HashMap<BlockHash, (usize, u64)>,
}

impl Reference {
    /// Opens the directory `dir` described by the index at `index`. Files that are
    /// missing or whose size no longer matches the index are left out.
    pub fn open(dir: &Path, index: &Path) -> Result<Self, StorageError> {
        let index = BlockIndex::load(index)?;
        let mut files = Vec::new();
        for f in index.files {
            let Ok(file) = File::open(dir.join(&f.name)) else {
                continue;
            };
            if file.metadata().map(|m| m.len()).ok() == Some(f.len) {
                files.push((f, file));
            }
        }
        let mut first = HashMap::new();
        for (i, (f, _)) in files.iter().enumerate() {
            for (b, h) in f.blocks.iter().enumerate() {
                first.entry(*h).or_insert((i, b as u64));
            }
        }
        Ok(Reference { files, first })
    }

    /// Where the block after `(file, block)` of the reference holds `hash`, or
    /// else where `hash` was first seen (following on keeps shared runs long).
    fn find(&self, after: Option<(usize, u64)>, hash: &BlockHash) -> Option<(usize, u64)> {
        after
            .and_then(|(f, b)| {
                let next = b + 1;
                (self.files[f].0.blocks.get(next as usize) == Some(hash)).then_some((f, next))
            })
            .or_else(|| self.first.get(hash).copied())
    }
}

/// What [`share_blocks`] did.
#[derive(Debug, Default)]
pub struct Shared {
    /// The index of the directory as it now is (to be the reference of a later copy).
    pub index: BlockIndex,
    /// Bytes of the directory's files that share the reference's extents.
    pub shared_bytes: u64,
}

/// A stretch of a file: blocks `start..start + count`, shared from `from` (a
/// reference file and its first block) or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    start: u64,
    count: u64,
    from: Option<(usize, u64)>,
}

mod receive;
#[cfg(test)]
mod tests;

pub use receive::{receive, release_pipes, Received, Receiving};

/// Indexes the files of `dir` (those of [`MIN_FILE`] bytes or more) and rewrites each
/// of them whose blocks the reference holds so that those blocks share the reference's
/// extents; the files `received` through pipes were stored that way already and are
/// only added to the index. Each file is either left as it was or replaced whole (a
/// synced copy renamed over it), so an error leaves every file complete. Blocking;
/// hashes with as many threads as there are CPUs.
pub fn share_blocks(dir: &Path, received: Received) -> Result<Shared, StorageError> {
    share_blocks_with(dir, received, cpu_threads())
}

/// Threads for work that may use every CPU (at most 8).
fn cpu_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}

/// The index of the files of `dir` (those of [`MIN_FILE`] bytes or more), hashed on one
/// thread: for indexing in the background, beside the sandboxes' own work.
pub fn index_files(dir: &Path) -> Result<BlockIndex, StorageError> {
    share_blocks_with(dir, Received::default(), 1).map(|shared| shared.index)
}

fn share_blocks_with(
    dir: &Path,
    received: Received,
    threads: usize,
) -> Result<Shared, StorageError> {
    let reference = received.reference.as_deref();
    let mut shared = Shared::default();
    for (file, bytes) in received.files {
        shared.shared_bytes += bytes;
        // A file received with nothing to share was not hashed: it is hashed below.
        if file.blocks.len() as u64 == file.len / BLOCK {
            shared.index.files.push(file);
        }
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(StorageError::io("reading", dir))? {
        let entry = entry.map_err(StorageError::io("reading", dir))?;
        let meta = entry
            .metadata()
            .map_err(StorageError::io("reading", entry.path()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let known = shared.index.files.iter().any(|f| f.name == name);
        if meta.is_file() && meta.len() >= MIN_FILE && !name.starts_with('.') && !known {
            names.push((name, meta.len()));
        }
    }
    names.sort();
    for (name, len) in names {
        let path = dir.join(&name);
        let file = File::open(&path).map_err(StorageError::io("opening", &path))?;
        let blocks = hash_blocks(&file, 0, len / BLOCK, threads)
            .map_err(StorageError::io("reading", &path))?;
        if let Some(r) = reference {
            let runs = plan(&blocks, r);
            let bytes: u64 = runs
                .iter()
                .filter(|run| run.from.is_some())
                .map(|run| run.count * BLOCK)
                .sum();
            if bytes >= MIN_SHARED {
                rewrite(&path, &file, len, &runs, r)?;
                shared.shared_bytes += bytes;
            }
        }
        shared.index.files.push(IndexedFile { name, len, blocks });
    }
    shared.index.files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(shared)
}

/// The hashes of blocks `first..end` of `file`.
fn hash_blocks(
    file: &File,
    first: u64,
    end: u64,
    threads: usize,
) -> std::io::Result<Vec<BlockHash>> {
    let blocks = end.saturating_sub(first);
    let threads = threads.max(1) as u64;
    let per = blocks.div_ceil(threads).max(1);
    let parts: Vec<std::io::Result<Vec<BlockHash>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let from = first + (t * per).min(blocks);
                let to = first + ((t + 1) * per).min(blocks);
                s.spawn(move || hash_range(file, from, to))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("hashing thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(blocks as usize);
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

fn hash_range(file: &File, from: u64, to: u64) -> std::io::Result<Vec<BlockHash>> {
    let mut out = Vec::with_capacity((to - from) as usize);
    let mut buf = vec![0u8; CHUNK];
    let mut block = from;
    while block < to {
        let n = ((to - block) * BLOCK).min(CHUNK as u64) as usize;
        file.read_exact_at(&mut buf[..n], block * BLOCK)?;
        out.extend(buf[..n].chunks_exact(BLOCK as usize).map(block_hash));
        block += (n as u64) / BLOCK;
    }
    Ok(out)
}

fn block_hash(block: &[u8]) -> BlockHash {
    let mut h = [0u8; HASH_BYTES];
    h.copy_from_slice(&blake3::hash(block).as_bytes()[..HASH_BYTES]);
    h
}

/// Splits a file with these block hashes into runs shared from `r` and runs to write.
fn plan(blocks: &[BlockHash], r: &Reference) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut at = None;
    for (i, h) in blocks.iter().enumerate() {
        let found = r.find(at, h);
        match runs.last_mut() {
            Some(run)
                if match (run.from, found) {
                    (None, None) => true,
                    (Some((f, b)), Some((g, c))) => f == g && b + run.count == c,
                    _ => false,
                } =>
            {
                run.count += 1
            }
            _ => runs.push(Run {
                start: i as u64,
                count: 1,
                from: found,
            }),
        }
        at = found;
    }
    runs
}

/// Replaces the file at `path` (open as `src`, `len` bytes) with a copy made of the
/// shared runs of `r` and its own other bytes, synced before the rename.
fn rewrite(
    path: &Path,
    src: &File,
    len: u64,
    runs: &[Run],
    r: &Reference,
) -> Result<(), StorageError> {
    let mode = src
        .metadata()
        .map(|m| m.permissions().mode())
        .unwrap_or(0o600);
    let (tmp, out) = create_sibling(path, mode & 0o7777)
        .map_err(StorageError::io("creating a copy of", path))?;
    let written = (|| {
        for run in runs {
            let (at, bytes) = (run.start * BLOCK, run.count * BLOCK);
            match run.from {
                Some((f, b)) => share(&r.files[f].1, b * BLOCK, &out, at, bytes)?,
                None => copy(src, at, &out, at, bytes)?,
            }
        }
        let whole = (len / BLOCK) * BLOCK;
        copy(src, whole, &out, whole, len - whole)?;
        out.sync_all()
    })();
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(StorageError::Io {
            action: "rewriting",
            path: path.to_path_buf(),
            source: e,
        });
    }
    Ok(())
}

/// Creates `.NAME.sharing` beside `path` (replacing a leftover), where the file that will
/// take `path`'s place is made.
fn create_sibling(path: &Path, mode: u32) -> std::io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.sharing"));
    let _ = std::fs::remove_file(&tmp);
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    Ok((tmp, out))
}

/// Makes `bytes` at `at` of `out` share the extents of `from` at `offset` (btrfs
/// turns a block-aligned `copy_file_range` into a reflink); where the kernel cannot,
/// copies the bytes.
fn share(from: &File, offset: u64, out: &File, at: u64, bytes: u64) -> std::io::Result<()> {
    let mut done = 0u64;
    while done < bytes {
        let (mut off_in, mut off_out) = (offset + done, at + done);
        let left = usize::try_from(bytes - done)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        match rustix::fs::copy_file_range(from, Some(&mut off_in), out, Some(&mut off_out), left) {
            Ok(0) | Err(_) => return copy(from, offset + done, out, at + done, bytes - done),
            Ok(n) => done += n as u64,
        }
    }
    Ok(())
}

/// Copies `bytes` at `offset` of `src` to `at` in `out`.
fn copy(src: &File, offset: u64, out: &File, at: u64, bytes: u64) -> std::io::Result<()> {
    let mut buf = vec![0u8; (bytes as usize).min(CHUNK)];
    let mut done = 0u64;
    while done < bytes {
        let n = ((bytes - done) as usize).min(buf.len());
        src.read_exact_at(&mut buf[..n], offset + done)?;
        out.write_all_at(&buf[..n], at + done)?;
        done += n as u64;
    }
    Ok(())
}
