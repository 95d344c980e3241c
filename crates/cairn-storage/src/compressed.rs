//! Data written straight to disk as btrfs compressed extents.
//!
//! A memory checkpoint arrives through a pipe while the sandbox is paused, and a
//! snapshot is `ready` only once it is on disk. Written the usual way, every page
//! goes into the page cache first (on btrfs about as slow as compressing it), and
//! the flush then compresses it again in the kernel. [`ChunkWriter`] instead
//! compresses each piece of up to 128 KiB with zstd in the calling thread and
//! hands the compressed bytes to btrfs as one extent (`BTRFS_IOC_ENCODED_WRITE`,
//! the call `btrfs receive --compressed-data` uses): no page cache, and nothing
//! left for the flush but metadata. A piece of zeros is not written at all (a
//! hole reads as zeros). A piece that does not compress is written plainly.
//! Where the kernel cannot take encoded writes (before Linux 5.18, or without
//! CAP_SYS_ADMIN), every piece is written plainly, and after a few pieces
//! [`store_stream`] splices the rest (zeros spliced then take space: only a
//! probed piece of zeros is left a hole).
//!
//! [`store_stream`] stores what a pipe delivers this way on several threads. Data that
//! compresses too slowly to keep up with the runtime while the sandbox is paused (text
//! and pointers, at 260–330 MB/s a thread on a 2-CPU machine, see [`PAUSED_RATE`]) is
//! treated like data that does not compress: spliced into the page cache, for the
//! directory's own btrfs compression (LZO, [`crate::compress_new_files`]) to compress
//! when it is flushed, after the sandbox resumes.
//!
//! The only `unsafe` of the crate is the ioctl call below.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// The largest extent btrfs compresses (`BTRFS_MAX_UNCOMPRESSED`).
pub const EXTENT: usize = 128 << 10;
/// btrfs's sector: an encoded extent starts on one and must save at least one.
const SECTOR: usize = 4096;
/// zstd's fastest regular level trades a little ratio for speed: the compression runs
/// while the sandbox is paused (on this project's 2-CPU machine, about 420 MB/s of
/// program binaries per thread, against 330 MB/s at level 1).
const ZSTD_LEVEL: i32 = -1;
/// btrfs decompresses zstd frames with a window of at most 128 KiB.
const ZSTD_WINDOW_LOG: u32 = 17;
static ZEROS: [u8; EXTENT] = [0; EXTENT];

/// `struct btrfs_ioctl_encoded_io_args` (include/uapi/linux/btrfs.h).
#[repr(C)]
struct EncodedIoArgs {
    iov: *const libc::iovec,
    iovcnt: libc::c_ulong,
    offset: i64,
    flags: u64,
    len: u64,
    unencoded_len: u64,
    unencoded_offset: u64,
    compression: u32,
    encryption: u32,
    reserved: [u8; 64],
}

/// `BTRFS_ENCODED_IO_COMPRESSION_ZSTD`.
const COMPRESSION_ZSTD: u32 = 2;
/// `BTRFS_IOC_ENCODED_WRITE = _IOW(BTRFS_IOCTL_MAGIC, 64, struct btrfs_ioctl_encoded_io_args)`.
const ENCODED_WRITE: rustix::ioctl::Opcode =
    rustix::ioctl::opcode::write::<EncodedIoArgs>(0x94, 64);

/// Writes `compressed` (a zstd frame of `len` bytes of file data) at `offset` of `file`
/// as one compressed extent.
fn encoded_write(
    file: &File,
    offset: u64,
    len: usize,
    compressed: &[u8],
) -> rustix::io::Result<()> {
    // A file offset from 8 EiB up is no offset btrfs has: refused, not wrapped negative.
    let offset = i64::try_from(offset).map_err(|_| rustix::io::Errno::FBIG)?;
    let iov = libc::iovec {
        iov_base: compressed.as_ptr() as *mut libc::c_void,
        iov_len: compressed.len(),
    };
    let args = EncodedIoArgs {
        iov: &iov,
        iovcnt: 1,
        offset,
        flags: 0,
        len: len as u64,
        unencoded_len: len as u64,
        unencoded_offset: 0,
        compression: COMPRESSION_ZSTD,
        encryption: 0,
        reserved: [0; 64],
    };
    // SAFETY: ENCODED_WRITE is btrfs's write-direction ioctl taking a pointer to
    // `struct btrfs_ioctl_encoded_io_args`, which `EncodedIoArgs` lays out exactly
    // (`repr(C)`, 128 bytes on 64-bit Linux). The kernel only reads it and the one
    // iovec it points to, whose buffer `compressed` outlives the call.
    unsafe {
        rustix::ioctl::ioctl(
            file,
            rustix::ioctl::Setter::<ENCODED_WRITE, EncodedIoArgs>::new(args),
        )
    }
}

/// Writes pieces of a file, each compressed into its own extent when it can be (see the
/// module). One per thread.
pub struct ChunkWriter {
    zstd: Option<zstd::bulk::Compressor<'static>>,
    out: Vec<u8>,
    /// Shared by the writers of one file: cleared when the kernel refuses encoded writes.
    encoded: Arc<AtomicBool>,
}

impl ChunkWriter {
    /// A writer that tries encoded writes while `encoded` holds.
    pub fn new(encoded: Arc<AtomicBool>) -> Self {
        let zstd = zstd::bulk::Compressor::new(ZSTD_LEVEL)
            .ok()
            .and_then(|mut c| {
                c.set_parameter(zstd::zstd_safe::CParameter::WindowLog(ZSTD_WINDOW_LOG))
                    .ok()
                    .map(|()| c)
            });
        ChunkWriter {
            zstd,
            out: vec![0; EXTENT],
            encoded,
        }
    }

    /// Writes `data` at `offset` (a multiple of 4 KiB) of `file`: each piece of 128 KiB
    /// as a compressed extent, a hole (zeros, skipped: the caller sets the file's length)
    /// or plain bytes.
    /// Returns how many bytes were written plainly (that did not compress).
    pub fn write(&mut self, file: &File, offset: u64, data: &[u8]) -> std::io::Result<u64> {
        let mut at = offset;
        let mut plain = 0;
        for piece in data.chunks(EXTENT) {
            if !self.write_piece(file, at, piece)? {
                plain += piece.len() as u64;
            }
            at += piece.len() as u64;
        }
        Ok(plain)
    }

    /// Whether the piece was compressed (or was zeros).
    fn write_piece(&mut self, file: &File, at: u64, piece: &[u8]) -> std::io::Result<bool> {
        if piece == &ZEROS[..piece.len()] {
            return Ok(true);
        }
        let whole = piece.len().is_multiple_of(SECTOR)
            && piece.len() > SECTOR
            && at.is_multiple_of(SECTOR as u64);
        if whole && self.encoded.load(Ordering::Relaxed) {
            if let Some(zstd) = self.zstd.as_mut() {
                // Worth it only when it saves a sector: the output buffer ends there.
                let room = piece.len() - SECTOR;
                if let Ok(n) = zstd.compress_to_buffer(piece, &mut self.out[..room]) {
                    match encoded_write(file, at, piece.len(), &self.out[..n]) {
                        Ok(()) => return Ok(true),
                        // Not this kernel, or not this caller: write plainly from now on.
                        Err(e)
                            if [
                                rustix::io::Errno::NOTTY,
                                rustix::io::Errno::OPNOTSUPP,
                                rustix::io::Errno::PERM,
                                rustix::io::Errno::ACCESS,
                                rustix::io::Errno::INVAL,
                            ]
                            .contains(&e) =>
                        {
                            if self.encoded.swap(false, Ordering::Relaxed) {
                                tracing::info!(error = %e, "btrfs encoded writes unavailable: checkpoint pages are compressed by the kernel instead");
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        // Data that does not compress is written back by the flush after the sandbox
        // resumes: starting its writeback here (sync_file_range) made the pause as long
        // as the disk write (bench/stateful.sh, 512 MB random: frozen 1.59 s, not 0.88 s).
        file.write_all_at(piece, at).map(|()| false)
    }
}

/// What the compressing threads of [`store_stream`] must achieve together, in bytes of
/// data per second of their own CPU time, for a memory checkpoint to be compressed while
/// the sandbox is paused: about the rate a runtime writes its checkpoint at (CRIU, 512 MB
/// in 0.7 s on this project's 2-CPU machine). Data that compresses more slowly holds the
/// pause up: on that machine, 512 MB of text compressed with zstd kept the sandbox paused
/// 1.9 s, against 0.75 s written plainly (`MEMORY=text bench/stateful.sh`). A rate for
/// all threads together, so more CPUs compress more kinds of data.
pub const PAUSED_RATE: u64 = 1 << 30;

/// After this many pieces in a row that did not compress (or compressed too slowly),
/// [`store_stream`] moves the data from the pipe into the file inside the kernel
/// (`splice`) instead of reading it: random bytes then cost one copy, as when the runtime
/// writes its file itself, not three.
const SPLICE_AFTER: usize = 8;
/// While splicing, one piece in this many is read and compressed again, to find out
/// whether the data became compressible.
const PROBE_EVERY: usize = 16;

/// Stores what `pipe` delivers until it closes into `out` from its start, reading on
/// this thread and writing with [`ChunkWriter`]s on `threads` others (encoded extents
/// can be written in any order); a run of data that does not compress, or compresses
/// slower than `min_rate` bytes per second of CPU time on all threads together
/// ([`PAUSED_RATE`]; 0: however slowly), is spliced into the file instead. Returns the
/// bytes received. The file's length is set to that (its end may be a hole). On an
/// error the pipe is closed, so the writer's next write fails too.
pub fn store_stream(
    pipe: File,
    out: &File,
    threads: usize,
    min_rate: u64,
    received: &AtomicU64,
) -> std::io::Result<u64> {
    let threads = threads.max(1);
    let encoded = Arc::new(AtomicBool::new(true));
    // Buffers go round: reader → workers → back to the reader, with the piece's offset and
    // whether it is better written plainly (it did not compress, or too slowly).
    let (work_tx, work_rx) = mpsc::sync_channel::<(u64, Vec<u8>, usize)>(threads * 2);
    let (free_tx, free_rx) = mpsc::channel::<(Vec<u8>, u64, bool)>();
    let work_rx = Arc::new(Mutex::new(work_rx));
    let failed: Mutex<Option<std::io::Error>> = Mutex::new(None);
    let received = std::thread::scope(|s| {
        for _ in 0..threads {
            let (work_rx, free_tx, encoded, failed) =
                (work_rx.clone(), free_tx.clone(), encoded.clone(), &failed);
            s.spawn(move || {
                let mut writer = ChunkWriter::new(encoded);
                loop {
                    let next = match work_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((offset, buf, len)) = next else { return };
                    let started = thread_cpu_ns();
                    let plain = match writer.write(out, offset, &buf[..len]) {
                        Ok(plain) => {
                            plain == len as u64
                                || too_slow(len, threads, thread_cpu_ns() - started, min_rate)
                        }
                        Err(e) => {
                            if let Ok(mut f) = failed.lock() {
                                f.get_or_insert(e);
                            }
                            false
                        }
                    };
                    let _ = free_tx.send((buf, offset, plain));
                }
            });
        }
        drop(free_tx);
        let mut pipe = pipe;
        let mut at = 0u64;
        let mut made = 0;
        let mut plainly = Plainly::default();
        // Pieces spliced since the last probe.
        let mut spliced = 0;
        let mut can_splice = true;
        let mut free: Vec<Vec<u8>> = Vec::new();
        let result = loop {
            if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                break Ok(at);
            }
            while let Ok((buf, offset, plain)) = free_rx.try_recv() {
                plainly.report(offset, plain);
                free.push(buf);
            }
            let splicing = can_splice && plainly.splice();
            if splicing && spliced < PROBE_EVERY {
                match splice_piece(&pipe, out, at) {
                    Ok(0) => break Ok(at),
                    Ok(n) => {
                        at += n as u64;
                        received.fetch_add(n as u64, Ordering::Relaxed);
                        spliced += 1;
                        continue;
                    }
                    // This file cannot take a splice: read from now on.
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => can_splice = false,
                    Err(e) => return Err(e),
                }
            }
            if splicing {
                plainly.probe = Some(at);
            }
            spliced = 0;
            let mut buf = match free.pop() {
                Some(b) => b,
                None if made < threads * 3 => {
                    made += 1;
                    vec![0u8; EXTENT]
                }
                None => match free_rx.recv() {
                    Ok((b, offset, plain)) => {
                        plainly.report(offset, plain);
                        b
                    }
                    Err(_) => break Err(std::io::Error::other("the storing threads stopped")),
                },
            };
            let mut filled = 0;
            while filled < EXTENT {
                match pipe.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                break Ok(at);
            }
            if work_tx.send((at, buf, filled)).is_err() {
                break Err(std::io::Error::other("the storing threads stopped"));
            }
            at += filled as u64;
            received.fetch_add(filled as u64, Ordering::Relaxed);
        };
        // Close the pipe before waiting for the workers: a writer blocked on it is let go.
        drop(pipe);
        drop(work_tx);
        result
    })?;
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    out.set_len(received)?;
    Ok(received)
}

/// CPU time this thread has used, in nanoseconds.
fn thread_cpu_ns() -> u128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    // A thread's CPU clock is never negative.
    u128::from(t.tv_sec.unsigned_abs()) * 1_000_000_000 + u128::from(t.tv_nsec.unsigned_abs())
}

/// Whether `len` bytes written in `cpu_ns` of one of `threads` threads' CPU time fall
/// short of `min_rate` bytes per second for all of them.
fn too_slow(len: usize, threads: usize, cpu_ns: u128, min_rate: u64) -> bool {
    (len as u128) * (threads as u128) * 1_000_000_000 < (min_rate as u128) * cpu_ns
}

/// What the workers reported of the pieces they wrote plainly (see [`SPLICE_AFTER`]).
#[derive(Default)]
struct Plainly {
    /// Pieces in a row reported written plainly.
    streak: usize,
    /// The piece read to probe the data while splicing: nothing is spliced until its
    /// report comes back.
    probe: Option<u64>,
}

impl Plainly {
    fn report(&mut self, offset: u64, plain: bool) {
        self.streak = if plain { self.streak + 1 } else { 0 };
        if self.probe == Some(offset) {
            self.probe = None;
        }
    }

    /// Whether the next pieces are to be spliced.
    fn splice(&self) -> bool {
        self.probe.is_none() && self.streak >= SPLICE_AFTER
    }
}

/// Moves up to one piece from `pipe` to `at` in `out` inside the kernel; the bytes moved
/// (0 at the end of the stream; an EINVAL error, before any byte moved, where splicing
/// into `out` is not supported).
fn splice_piece(pipe: &File, out: &File, at: u64) -> std::io::Result<usize> {
    let mut moved = 0;
    while moved < EXTENT {
        let mut offset = at + moved as u64;
        match rustix::pipe::splice(
            pipe,
            None,
            out,
            Some(&mut offset),
            EXTENT - moved,
            rustix::pipe::SpliceFlags::MOVE,
        ) {
            Ok(0) => break,
            Ok(n) => moved += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) if moved > 0 && e == rustix::io::Errno::INVAL => {
                return Err(std::io::Error::other(format!("splice: {e}")))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(moved)
}
