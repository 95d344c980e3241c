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
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

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

/// Files a writer is streaming into named pipes (see [`receive`]).
pub struct Receiving {
    reference: Option<Arc<Reference>>,
    pipes: Vec<(
        PathBuf,
        std::thread::JoinHandle<std::io::Result<Option<Received1>>>,
    )>,
}

/// One file received through a pipe: its index entry and the bytes it shares.
type Received1 = (IndexedFile, u64);

/// What [`Receiving::finish`] hands to [`share_blocks`].
#[derive(Default)]
pub struct Received {
    reference: Option<Arc<Reference>>,
    files: Vec<Received1>,
}

impl Received {
    /// Whether the files were stored sharing a reference (and hashed as they came).
    pub fn has_reference(&self) -> bool {
        self.reference.is_some()
    }

    /// Nothing received: [`share_blocks`] shares the files of the directory with `reference`.
    pub fn from_reference(reference: Option<Reference>) -> Self {
        Received {
            reference: reference.map(Arc::new),
            files: Vec::new(),
        }
    }
}

/// Makes a named pipe at `dir/NAME` for each of `names`, for a writer (that opens a
/// file by name, writes it from start to end and closes it, as CRIU does its images)
/// to stream a file's content into; a thread per pipe stores what arrives at that name,
/// each block shared from `reference` when it holds it (same hash) and written otherwise,
/// hashing it for the new index as it goes. The file never passes through the page cache
/// whole: only the blocks that differ are written, on another CPU while the writer runs,
/// compressed ([`crate::compressed`]). With no reference, every block is written so, on
/// as many threads as there are CPUs, and none is hashed ([`share_blocks`] or
/// [`index_files`] hash such files later).
/// Call [`Receiving::finish`] once the writer is done (also when it failed).
pub fn receive(
    dir: &Path,
    names: &[String],
    reference: Option<Reference>,
) -> Result<Receiving, StorageError> {
    let reference = reference.map(Arc::new);
    let mut receiving = Receiving {
        reference: reference.clone(),
        pipes: Vec::new(),
    };
    for name in names {
        let path = dir.join(name);
        let made = rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        );
        if let Err(e) = made {
            // Let the threads started so far go, and remove their pipes.
            let _ = receiving.finish();
            return Err(StorageError::io("creating the pipe", &path)(e.into()));
        }
        let (p, r) = (path.clone(), reference.clone());
        let thread = std::thread::spawn(move || receive_one(&p, r.as_deref()));
        receiving.pipes.push((path, thread));
    }
    Ok(receiving)
}

impl Receiving {
    /// After the writer is done: lets go of the pipes it never opened (removing them),
    /// waits for the others, and returns what arrived.
    pub fn finish(self) -> Result<Received, StorageError> {
        let mut received = Received {
            reference: self.reference,
            files: Vec::new(),
        };
        let mut failed = None;
        for (path, thread) in self.pipes {
            if !thread.is_finished() {
                // Its reader still waits for a writer: be that writer, with nothing to say.
                let _ = rustix::fs::open(
                    &path,
                    rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK,
                    rustix::fs::Mode::empty(),
                );
            }
            match thread.join() {
                Ok(Ok(Some(file))) => received.files.push(file),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => failed = failed.or(Some(StorageError::io("receiving", &path)(e))),
                Err(_) => {
                    failed = failed.or(Some(StorageError::io("receiving", &path)(
                        std::io::Error::other("the receiving thread panicked"),
                    )))
                }
            }
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_fifo()) {
                let _ = std::fs::remove_file(&path);
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(received),
        }
    }
}

/// Removes the pipes [`receive`] left in `dir` when the process that read them is gone (a
/// crash), first opening and closing each so that a writer blocked on one is let go (its
/// writes then fail) instead of waiting forever.
pub fn release_pipes(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_fifo()) {
            let _ = rustix::fs::open(
                entry.path(),
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
                rustix::fs::Mode::empty(),
            );
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Receives one file through the pipe at `fifo` and puts it in the pipe's place.
/// `None` when nothing was written into it (no writer came).
fn receive_one(fifo: &Path, reference: Option<&Reference>) -> std::io::Result<Option<Received1>> {
    let pipe = File::open(fifo)?;
    // Fewer, larger reads (1 MiB is the default most an unprivileged pipe may hold).
    let _ = rustix::pipe::fcntl_setpipe_size(&pipe, CHUNK);
    let name = fifo
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (tmp, out) = create_sibling(fifo, 0o600)?;
    let stored = match reference {
        // Nothing to share: every page is new. Stored compressed on as many threads as
        // there are CPUs where that keeps up with the runtime, and not hashed (the caller
        // indexes the file later, off the paused sandbox's time).
        None => crate::compressed::store_stream(
            pipe,
            &out,
            cpu_threads(),
            crate::compressed::PAUSED_RATE,
        )
        .map(|len| (len, Vec::new(), 0)),
        Some(reference) => sink_stream(&pipe, &out, reference),
    };
    let (len, blocks, shared) = match stored {
        Ok(stored) if stored.0 > 0 => stored,
        other => {
            let _ = std::fs::remove_file(&tmp);
            return other.map(|_| None);
        }
    };
    std::fs::rename(&tmp, fifo)?;
    Ok(Some((IndexedFile { name, len, blocks }, shared)))
}

/// Stores what `pipe` delivers into `out`, sharing each block `reference` holds and
/// writing the others; returns the bytes received, their block hashes and the bytes shared.
fn sink_stream(
    pipe: &File,
    out: &File,
    reference: &Reference,
) -> std::io::Result<(u64, Vec<BlockHash>, u64)> {
    let mut sink = Sink {
        out,
        writer: crate::compressed::ChunkWriter::new(Arc::new(AtomicBool::new(true))),
        reference,
        at: 0,
        blocks: Vec::new(),
        shared: 0,
        run: None,
        data: Vec::with_capacity(CHUNK),
    };
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0;
    loop {
        let n = std::io::Read::read(&mut &*pipe, &mut buf[filled..])?;
        filled += n;
        let whole = if n == 0 {
            filled
        } else {
            filled - filled % BLOCK as usize
        };
        for block in buf[..whole].chunks(BLOCK as usize) {
            sink.push(block)?;
        }
        buf.copy_within(whole..filled, 0);
        filled -= whole;
        if n == 0 {
            break;
        }
    }
    sink.flush()?;
    // The file may end in a hole (zeros are not written).
    out.set_len(sink.at)?;
    Ok((sink.at, sink.blocks, sink.shared))
}

/// Where a received file's blocks go: shared from the reference in runs, or written.
struct Sink<'a> {
    out: &'a File,
    /// Writes the blocks the reference lacks, compressed.
    writer: crate::compressed::ChunkWriter,
    reference: &'a Reference,
    /// Bytes received so far.
    at: u64,
    blocks: Vec<BlockHash>,
    shared: u64,
    /// The pending run shared from the reference: (file, its first block, blocks).
    run: Option<(usize, u64, u64)>,
    /// Pending bytes to write, ending at `at`.
    data: Vec<u8>,
}

impl Sink<'_> {
    fn push(&mut self, block: &[u8]) -> std::io::Result<()> {
        let found = if block.len() as u64 == BLOCK {
            let h = block_hash(block);
            self.blocks.push(h);
            let after = self.run.map(|(f, b, n)| (f, b + n - 1));
            self.reference.find(after, &h)
        } else {
            None
        };
        match (found, self.run) {
            (Some((f, b)), Some((rf, rb, n))) if rf == f && rb + n == b => {
                self.run = Some((rf, rb, n + 1));
            }
            (Some((f, b)), _) => {
                self.flush()?;
                self.run = Some((f, b, 1));
            }
            (None, _) => {
                self.flush_run()?;
                self.data.extend_from_slice(block);
            }
        }
        self.at += block.len() as u64;
        if self.data.len() >= CHUNK {
            self.flush_data()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_run()?;
        self.flush_data()
    }

    /// Writes the pending bytes, which end at `at`.
    fn flush_data(&mut self) -> std::io::Result<()> {
        if !self.data.is_empty() {
            self.writer
                .write(self.out, self.at - self.data.len() as u64, &self.data)?;
            self.data.clear();
        }
        Ok(())
    }

    /// Shares the pending run, which ends at `at`.
    fn flush_run(&mut self) -> std::io::Result<()> {
        let Some((f, b, n)) = self.run.take() else {
            return Ok(());
        };
        let bytes = n * BLOCK;
        share(
            &self.reference.files[f].1,
            b * BLOCK,
            self.out,
            self.at - bytes,
            bytes,
        )?;
        self.shared += bytes;
        Ok(())
    }
}

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

#[cfg(test)]
mod unit {
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
}
