//! Export: a ready snapshot streamed as one archive, written on a blocking thread into a
//! bounded channel the HTTP response reads (no copy of the snapshot, bounded memory).
//!
//! The snapshot is read from its read-only tree and checkpoint; a deletion while it
//! streams is noticed before the last entry, which is then never written: the stream
//! ends with an error instead (the client sees a cut-off response, never a complete
//! archive).

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use cairn_storage::{Manifest, Tree};
use cairn_types::{Progress, ProgressSink, SnapshotId, SnapshotState};

use super::archive::{
    ArchiveDoc, ArchiveFormat, Checksums, DeclaredSizes, HashingWriter, CHECKPOINT,
    CHECKSUMS_ENTRY, DOC_ENTRY, ROOTFS,
};
use crate::{Engine, EngineError, Result};

/// A piece of an archive being written.
#[derive(Debug)]
pub enum ArchivePiece {
    /// The archive's next bytes (never empty).
    Data(Vec<u8>),
    /// The archive is whole: nothing follows.
    Whole,
}

/// The pieces of an archive being written. The last item is [`ArchivePiece::Whole`], or an
/// error when the export failed: a stream that ends without either (the writer died) is
/// not an archive.
pub type ArchiveStream = mpsc::Receiver<io::Result<ArchivePiece>>;

/// The error an export's stream ends with when its snapshot was deleted meanwhile (inside
/// an `io::Error`; the stream never ends as a complete archive then).
#[derive(Debug, thiserror::Error)]
#[error("the snapshot was deleted while it was exported")]
pub struct SnapshotGone;

/// Bytes per chunk handed to the response.
const CHUNK: usize = 256 << 10;

/// A `Write` that hands chunks to an async receiver.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<ArchivePiece>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(ArchivePiece::Data(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// What an archive of one snapshot is made of, read before its stream starts (also what
/// a push chunks: the same stream, uncompressed).
pub(crate) struct ArchiveSource {
    /// The snapshot.
    pub(crate) id: SnapshotId,
    manifest: Manifest,
    image_name: String,
    disk_bytes: Option<u64>,
    rootfs: PathBuf,
    checkpoint: Option<PathBuf>,
}

impl ArchiveSource {
    /// The first document: the manifest, the image's name and the trees' sizes (it
    /// measures them: call it on a blocking thread).
    pub(crate) fn doc(&self) -> io::Result<(ArchiveDoc, Vec<u8>)> {
        let rs = cairn_images::measure_tree(&self.rootfs)?;
        let cs = match &self.checkpoint {
            Some(dir) => cairn_images::measure_tree(dir)?,
            None => Default::default(),
        };
        let doc = ArchiveDoc {
            format: ArchiveDoc::FORMAT.into(),
            version: ArchiveDoc::VERSION,
            cairn_version: env!("CARGO_PKG_VERSION").into(),
            manifest: self.manifest.clone(),
            image_name: self.image_name.clone(),
            disk_bytes: self.disk_bytes,
            sizes: DeclaredSizes {
                rootfs_entries: rs.entries,
                rootfs_bytes: rs.data_bytes,
                checkpoint_entries: cs.entries,
                checkpoint_bytes: cs.data_bytes,
            },
        };
        let bytes = serde_json::to_vec_pretty(&doc).map_err(io::Error::other)?;
        Ok((doc, bytes))
    }

    /// Writes the uncompressed archive stream (`doc` first, the tree, the checkpoint,
    /// the checksums last) into `out` and gives it back with the bytes checksummed.
    /// `still_there` is asked before the last entry: when it says no, the stream ends
    /// with an error instead, never as a complete archive.
    pub(crate) fn write_tar<W: Write>(
        &self,
        doc: &[u8],
        out: W,
        still_there: impl Fn() -> bool,
    ) -> io::Result<(W, u64)> {
        let mut tar = tar::Builder::new(HashingWriter::new(out));
        append_doc(&mut tar, DOC_ENTRY, doc)?;
        cairn_images::write_tree(&mut tar, &self.rootfs, ROOTFS)?;
        if let Some(dir) = &self.checkpoint {
            cairn_images::write_tree(&mut tar, dir, CHECKPOINT)?;
        }
        // Deleted while it streamed: no complete archive leaves.
        if !still_there() {
            return Err(io::Error::other(SnapshotGone));
        }
        let (archive, archive_bytes) = tar.get_ref().sum();
        let sums = Checksums {
            algorithm: "blake3".into(),
            manifest: blake3::hash(doc).to_hex().to_string(),
            archive,
            archive_bytes,
        };
        let sums = serde_json::to_vec_pretty(&sums).map_err(io::Error::other)?;
        append_doc(&mut tar, CHECKSUMS_ENTRY, &sums)?;
        Ok((tar.into_inner()?.into_inner(), archive_bytes))
    }
}

impl Engine {
    /// The parts of ready snapshot `reference` of `account`; 409 when it is not ready
    /// (`verb` says what was refused: "exported").
    pub(crate) async fn archive_source(
        &self,
        account: &str,
        reference: &str,
        verb: &str,
    ) -> Result<ArchiveSource> {
        let snap = self.find_snapshot(account, reference).await?;
        if snap.state != SnapshotState::Ready {
            return Err(EngineError::Conflict(format!(
                "snapshot {} is {}: only a ready snapshot can be {verb}",
                snap.id, snap.state
            )));
        }
        let image_name = self.image_name(&snap.image_id).await;
        let row = snap.id.clone();
        let disk_bytes = self.db(move |db| db.snapshot_disk(&row)).await?;
        let (storage, sid) = (self.storage.clone(), snap.id.clone());
        let manifest = tokio::task::spawn_blocking(move || storage.load_manifest(sid.as_str()))
            .await
            .map_err(|e| EngineError::failed("the manifest's reading task ended abnormally", e))?
            .map_err(|e| EngineError::failed("cannot read the manifest", e))?;
        Ok(ArchiveSource {
            rootfs: self.storage.path(&Tree::snapshot(&snap.id)),
            checkpoint: snap.stateful.then(|| self.snapshot_checkpoint(&snap.id)),
            id: snap.id,
            manifest,
            image_name,
            disk_bytes,
        })
    }

    /// Whether snapshot `id` is still there and ready (asked from a blocking thread
    /// before an archive's last entry).
    pub(crate) fn still_ready(&self, handle: &tokio::runtime::Handle, id: &SnapshotId) -> bool {
        let row = id.clone();
        handle
            .block_on(self.db(move |db| db.snapshot(&row)))
            .ok()
            .flatten()
            .is_some_and(|s| s.state == SnapshotState::Ready)
    }

    /// Streams snapshot `reference` of `account` as an archive; refuses one that is not
    /// ready (409).
    /// `progress` gets `archive` reports: bytes of the uncompressed stream written, out of
    /// an estimate made from the snapshot's measured sizes (the last report is exact).
    pub async fn export_snapshot(
        self: &Arc<Self>,
        account: &str,
        reference: &str,
        format: ArchiveFormat,
        progress: ProgressSink,
    ) -> Result<ArchiveStream> {
        let src = self.archive_source(account, reference, "exported").await?;
        let (tx, rx) = mpsc::channel(8);
        let engine = Arc::clone(self);
        let handle = tokio::runtime::Handle::current();
        let id = src.id.clone();
        tokio::task::spawn_blocking(move || {
            let err_tx = tx.clone();
            let still_there = || engine.still_ready(&handle, &id);
            let write = || -> io::Result<u64> {
                let (parsed, doc) = src.doc()?;
                let estimate = parsed.sizes.stream_estimate(doc.len() as u64);
                let out = ChannelWriter {
                    tx,
                    buf: Vec::with_capacity(CHUNK),
                };
                match format {
                    // zstd's own workers compress while this thread reads the tree and
                    // hands them its pieces (as `tar | zstd -T2` does): on level 1 one
                    // core cannot keep up with reading the tree.
                    ArchiveFormat::TarZst => {
                        let mut encoder = zstd::Encoder::new(out, 1)?;
                        encoder.multithread(zstd_workers())?;
                        let reporting = Reporting::new(encoder, estimate, &progress);
                        let (reporting, archive_bytes) =
                            src.write_tar(&doc, reporting, still_there)?;
                        reporting.finish().finish()?.flush()?;
                        Ok(archive_bytes)
                    }
                    // gzip compresses on one thread: reading the tree and compressing it
                    // run side by side, on two threads (as `tar | gzip` does in two
                    // processes).
                    ArchiveFormat::TarGz => {
                        let encoder =
                            flate2::write::GzEncoder::new(out, flate2::Compression::fast());
                        let (ptx, prx) = std::sync::mpsc::sync_channel::<Option<Vec<u8>>>(8);
                        std::thread::scope(|scope| {
                            let worker = scope.spawn(move || compress(encoder, &prx));
                            let written = (|| {
                                let pipe = PipeWriter {
                                    tx: ptx,
                                    buf: Vec::with_capacity(CHUNK),
                                };
                                let reporting = Reporting::new(pipe, estimate, &progress);
                                let (reporting, archive_bytes) =
                                    src.write_tar(&doc, reporting, still_there)?;
                                reporting.finish().finish()?;
                                Ok::<u64, io::Error>(archive_bytes)
                            })();
                            let compressed = worker
                                .join()
                                .unwrap_or_else(|_| Err(io::Error::other("the compressor failed")));
                            let archive_bytes = written?;
                            compressed?;
                            Ok(archive_bytes)
                        })
                    }
                }
            };
            match write() {
                Ok(bytes) => {
                    tracing::info!(snapshot = %id, bytes, "snapshot exported");
                    let _ = err_tx.blocking_send(Ok(ArchivePiece::Whole));
                }
                Err(e) => {
                    tracing::warn!(snapshot = %id, error = %e, "snapshot export failed");
                    // Reading a tree deleted under it fails in many ways: all are this.
                    let e = match e.get_ref().is_some_and(|r| r.is::<SnapshotGone>()) {
                        false if !engine.still_ready(&handle, &id) => {
                            io::Error::other(SnapshotGone)
                        }
                        _ => e,
                    };
                    let _ = err_tx.blocking_send(Err(e));
                }
            }
        });
        Ok(rx)
    }
}

/// How many threads zstd compresses an export with: one per core, at most four (an
/// export must not take a large host's every core).
fn zstd_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
}

/// A `Write` that reports the bytes passing through it as the `archive` phase, every
/// [`REPORT_EVERY`] bytes, out of an estimate it raises when passed.
struct Reporting<'a, W> {
    inner: W,
    done: u64,
    reported: u64,
    estimate: u64,
    sink: &'a ProgressSink,
}

/// Bytes between two reports of an export.
const REPORT_EVERY: u64 = 4 << 20;

impl<'a, W: Write> Reporting<'a, W> {
    fn new(inner: W, estimate: u64, sink: &'a ProgressSink) -> Self {
        sink.report(Progress::bytes("archive", 0, Some(estimate)));
        Reporting {
            inner,
            done: 0,
            reported: 0,
            estimate,
            sink,
        }
    }

    /// Reports the exact total and gives the writer back.
    fn finish(self) -> W {
        self.sink
            .report(Progress::bytes("archive", self.done, Some(self.done)));
        self.inner
    }
}

impl<W: Write> Write for Reporting<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.done += n as u64;
        if self.done - self.reported >= REPORT_EVERY {
            self.reported = self.done;
            // An estimate passed is raised (by a fiftieth): the bar nears its end, never
            // overruns it.
            self.estimate = self.estimate.max(self.done + self.done / 50);
            self.sink
                .report(Progress::bytes("archive", self.done, Some(self.estimate)));
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `Write` that hands chunks to the gzip thread; `finish` marks the end (a
/// stream dropped without it is never finished into a complete archive).
struct PipeWriter {
    tx: std::sync::mpsc::SyncSender<Option<Vec<u8>>>,
    buf: Vec<u8>,
}

impl PipeWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(Some(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the compressor stopped"))
    }

    fn finish(mut self) -> io::Result<()> {
        self.send()?;
        self.tx
            .send(None)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the compressor stopped"))
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The gzip thread: compresses chunks until the end mark, then finishes the stream;
/// without the mark (the writer failed) the stream is left unfinished.
fn compress(
    mut encoder: flate2::write::GzEncoder<ChannelWriter>,
    rx: &std::sync::mpsc::Receiver<Option<Vec<u8>>>,
) -> io::Result<()> {
    loop {
        match rx.recv() {
            Ok(Some(chunk)) => encoder.write_all(&chunk)?,
            Ok(None) => return encoder.finish()?.flush(),
            Err(_) => return Err(io::Error::other("the archive was not finished")),
        }
    }
}

/// Appends a small document as a regular file.
fn append_doc<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)
}
