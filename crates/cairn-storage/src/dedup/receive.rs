//! Receiving files through named pipes: a writer (CRIU, runsc) streams each file's
//! content into a pipe, and a thread per pipe stores it as it arrives, sharing the
//! blocks a reference holds (see the parent module) and compressing the others.
//!
//! Not for: files written whole before they are shared (`share_blocks` does those).

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::{
    block_hash, cpu_threads, create_sibling, share, BlockHash, IndexedFile, Reference, BLOCK, CHUNK,
};
use crate::StorageError;

/// Files a writer is streaming into named pipes (see [`receive`]).
pub struct Receiving {
    reference: Option<Arc<Reference>>,
    /// Bytes received through every pipe so far.
    received: Arc<AtomicU64>,
    pipes: Vec<(
        PathBuf,
        std::thread::JoinHandle<std::io::Result<Option<Received1>>>,
    )>,
}

/// One file received through a pipe: its index entry and the bytes it shares.
pub(super) type Received1 = (IndexedFile, u64);

/// What [`Receiving::finish`] hands to [`share_blocks`](super::share_blocks).
#[derive(Default)]
pub struct Received {
    pub(super) reference: Option<Arc<Reference>>,
    pub(super) files: Vec<Received1>,
}

impl Received {
    /// Whether the files were stored sharing a reference (and hashed as they came).
    pub fn has_reference(&self) -> bool {
        self.reference.is_some()
    }

    /// Nothing received: [`share_blocks`](super::share_blocks) shares the files of the directory with `reference`.
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
/// as many threads as there are CPUs, and none is hashed ([`share_blocks`](super::share_blocks) or
/// [`index_files`](super::index_files) hash such files later).
/// Call [`Receiving::finish`] once the writer is done (also when it failed).
pub fn receive(
    dir: &Path,
    names: &[String],
    reference: Option<Reference>,
) -> Result<Receiving, StorageError> {
    let reference = reference.map(Arc::new);
    let mut receiving = Receiving {
        reference: reference.clone(),
        received: Arc::new(AtomicU64::new(0)),
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
        let (p, r, n) = (
            path.clone(),
            reference.clone(),
            Arc::clone(&receiving.received),
        );
        let thread = std::thread::spawn(move || receive_one(&p, r.as_deref(), &n));
        receiving.pipes.push((path, thread));
    }
    Ok(receiving)
}

impl Receiving {
    /// The bytes received through every pipe so far, counted as they arrive (for progress).
    pub fn received(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.received)
    }

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
fn receive_one(
    fifo: &Path,
    reference: Option<&Reference>,
    received: &AtomicU64,
) -> std::io::Result<Option<Received1>> {
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
            received,
        )
        .map(|len| (len, Vec::new(), 0)),
        Some(reference) => sink_stream(&pipe, &out, reference, received),
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
    received: &AtomicU64,
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
        received.fetch_add(n as u64, Ordering::Relaxed);
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
