//! Import: an uploaded archive becomes a snapshot of the caller's account, read once as
//! it arrives (no spooled copy): the first document is checked against the limits before
//! any data lands, the tree and checkpoint are unpacked through cairn-images' safe
//! extractor, and the checksums at the end decide whether it becomes `ready`.
//!
//! States: a snapshot directory (swept as an orphan by recovery if cairnd dies before
//! the row exists), then the row `uploading` (recovery removes it and its files), then
//! `ready`. Any refusal removes everything it made: row, files, the image it brought.
//!
//! A remote pull (`remote::pull`) feeds the same path with the uncompressed stream it
//! rebuilds from verified chunks, so a pulled snapshot passes every check an upload does.

use std::io::{self, BufRead, BufReader, Read};
use std::sync::{Arc, PoisonError};

use chrono::Utc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use cairn_db::{ImageRecord, SnapshotRecord};
use cairn_images::ImageError;
use cairn_storage::{Manifest, Tree};
use cairn_types::api::SnapshotInfo;
use cairn_types::{
    format_bytes, validate_name, ImageId, ProcessDefaults, Resources, SandboxId, SnapshotId,
    SnapshotState,
};

use super::archive::{
    ArchiveDoc, Checksums, HashingReader, ReadState, CHECKPOINT, CHECKSUMS_ENTRY, DOC_ENTRY,
    MAX_DOC_BYTES, ROOTFS,
};
use crate::images::StoredImageConfig;
use crate::{Engine, EngineError, Result};

/// What an import is refused for: the archive (a 4xx naming the problem), or the engine.
enum Fail {
    Archive(ImageError),
    Engine(EngineError),
}

impl From<ImageError> for Fail {
    fn from(e: ImageError) -> Self {
        Fail::Archive(e)
    }
}

impl From<EngineError> for Fail {
    fn from(e: EngineError) -> Self {
        Fail::Engine(e)
    }
}

fn bad(reason: impl Into<String>) -> Fail {
    Fail::Engine(EngineError::InvalidArgument(format!(
        "the archive cannot be imported: {}",
        reason.into()
    )))
}

/// A `Read` over chunks an async task sends.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What the import has made so far, to undo on failure.
#[derive(Default)]
struct Made {
    row: Option<SnapshotRecord>,
    image: Option<String>,
}

impl Engine {
    /// Imports the archive read from `body` as a snapshot of `account` named `name` (by
    /// default the name it had).
    pub async fn import_snapshot<R: AsyncRead + Unpin + Send + 'static>(
        self: &Arc<Self>,
        account: &str,
        name: Option<&str>,
        mut body: R,
    ) -> Result<SnapshotInfo> {
        if let Some(n) = name {
            validate_name(n)?;
        }
        self.require_pool_room("import the snapshot")?;
        let (tx, rx) = mpsc::channel::<io::Result<Vec<u8>>>(16);
        tokio::spawn(async move {
            loop {
                let mut buf = vec![0u8; 256 << 10];
                match body.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(buf)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("the upload was cut short ({e})"),
                            )))
                            .await;
                        break;
                    }
                }
            }
        });
        let (account, name) = (account.to_string(), name.map(str::to_string));
        self.import_stream(account, name, rx, SnapshotId::generate())
            .await
    }

    /// Imports the uncompressed or compressed archive stream whose chunks arrive on `rx`
    /// as snapshot `id` of `account` (an error item cuts the stream short: the import is
    /// refused and leaves nothing). Shared by uploads and remote pulls.
    pub(crate) async fn import_stream(
        self: &Arc<Self>,
        account: String,
        name: Option<String>,
        rx: mpsc::Receiver<io::Result<Vec<u8>>>,
        id: SnapshotId,
    ) -> Result<SnapshotInfo> {
        self.run_to_end(move |engine| async move {
            let handle = tokio::runtime::Handle::current();
            let reader = ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
            };
            let worker = Arc::clone(&engine);
            let (acc, sid) = (account.clone(), id.clone());
            let (made, result) = tokio::task::spawn_blocking(move || {
                let mut made = Made::default();
                let r = worker.import_blocking(&handle, reader, &sid, &acc, name, &mut made);
                (made, r)
            })
            .await
            .map_err(|e| EngineError::failed("the import's task ended abnormally", e))?;
            match result {
                Ok(()) => {
                    let row = id.clone();
                    let snap = engine
                        .db(move |db| db.snapshot(&row))
                        .await?
                        .ok_or_else(|| EngineError::Internal("snapshot vanished".into()))?;
                    tracing::info!(snapshot = %id, from = ?snap.imported_from, "snapshot imported");
                    engine.push_later(&account, &id);
                    Ok(engine.snapshot_info(&snap).await)
                }
                Err(fail) => {
                    engine.undo_import(&id, made).await;
                    Err(match fail {
                        Fail::Engine(e) => engine.pool_full_or("import the snapshot", e),
                        Fail::Archive(e) => archive_error(e, engine.storage.root()),
                    })
                }
            }
        })
        .await
    }

    /// Removes what a failed import made: its files, its row, the image it brought.
    async fn undo_import(&self, id: &SnapshotId, made: Made) {
        self.remove_snapshot_files(id).await;
        if made.row.is_some() {
            let row = id.clone();
            let _ = self.db(move |db| db.delete_snapshot(&row)).await;
        }
        if let Some(image) = made.image {
            self.drop_import_image(&image).await;
        }
    }

    /// Removes the image an import brought, if nothing else uses it.
    async fn drop_import_image(&self, image: &str) {
        let row = image.to_string();
        if let Ok(users) = self.db(move |db| db.image_users(&row)).await {
            if !users.is_empty() {
                return;
            }
        }
        let _ = self.storage.delete_subvolume(&Tree::image(image)).await;
        let row = image.to_string();
        let _ = self.db(move |db| db.delete_image(&row)).await;
    }

    /// Recovery: an import that a crash interrupted goes, with the image it brought
    /// (one not ready yet).
    pub(crate) async fn abandon_import(&self, s: &SnapshotRecord) {
        self.remove_snapshot_files(&s.id).await;
        let row = s.id.clone();
        let _ = self.db(move |db| db.delete_snapshot(&row)).await;
        let image = s.image_id.clone();
        if let Ok(Some(img)) = self.db(move |db| db.image(&image)).await {
            if !img.ready {
                self.drop_import_image(&img.id).await;
            }
        }
    }

    /// The import itself, on a blocking thread (`handle` runs the engine's async calls).
    fn import_blocking(
        &self,
        handle: &tokio::runtime::Handle,
        reader: ChannelReader,
        id: &SnapshotId,
        account: &str,
        name: Option<String>,
        made: &mut Made,
    ) -> std::result::Result<(), Fail> {
        let mut input = BufReader::with_capacity(256 << 10, reader);
        let head = input
            .fill_buf()
            .map_err(|e| bad(format!("the upload could not be read ({e})")))?;
        let decoder: Box<dyn Read> = match head {
            [] => return Err(bad("the upload is empty: send the archive as the request body")),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(
                zstd::Decoder::with_buffer(input)
                    .map_err(|e| bad(format!("it is not zstd ({e})")))?,
            ),
            [0x1f, 0x8b, ..] => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            // Uncompressed: a tar stream starting with its first document (a remote pull).
            h if h.starts_with(DOC_ENTRY.as_bytes()) && h.get(DOC_ENTRY.len()) == Some(&0) => {
                Box::new(input)
            }
            _ => {
                return Err(bad(
                    "it is not a snapshot archive (.tar.zst or .tar.gz, as 'cairn snapshot export' writes)",
                ))
            }
        };
        let state = ReadState::new(MAX_DOC_BYTES + 8192);
        let mut archive = tar::Archive::new(HashingReader::new(decoder, Arc::clone(&state)));

        // Its place: made before the row (recovery sweeps a directory no row owns).
        handle
            .block_on(async {
                self.storage.create_snapshot_dir(id.as_str(), true).await?;
                self.storage.create_subvolume(&Tree::snapshot(id)).await
            })
            .map_err(|e| Fail::Engine(e.into()))?;
        let rootfs = self.storage.path(&Tree::snapshot(id));
        let checkpoint = self.snapshot_checkpoint(id);

        let mut doc: Option<(ArchiveDoc, String)> = None;
        let mut sums_at: Option<u64> = None;
        let mut entries_seen = 0u64;
        let parts = [
            cairn_images::Part {
                prefix: ROOTFS,
                dest: &rootfs,
            },
            cairn_images::Part {
                prefix: CHECKPOINT,
                dest: &checkpoint,
            },
        ];
        cairn_images::unpack_parts(
            &mut archive,
            &parts,
            "the archive",
            |entry_name, entry| -> std::result::Result<(), Fail> {
                entries_seen += 1;
                if sums_at.is_some() {
                    return Err(bad(format!(
                        "'{}' comes after its checksums, which must be its last entry",
                        excerpt(entry_name)
                    )));
                }
                match entry_name {
                    DOC_ENTRY if doc.is_none() => {
                        let data = read_small(entry)?;
                        let d = ArchiveDoc::decode(&data).map_err(bad)?;
                        state.lock().unwrap_or_else(PoisonError::into_inner).limit =
                            d.sizes.stream_bound();
                        let hash = blake3::hash(&data).to_hex().to_string();
                        self.admit_import(handle, id, account, name.as_deref(), &d, made)?;
                        doc = Some((d, hash));
                        Ok(())
                    }
                    CHECKSUMS_ENTRY if doc.is_some() => {
                        let at = entry.raw_header_position();
                        let data = read_small(entry)?;
                        let sums: Checksums = serde_json::from_slice(&data)
                            .map_err(|e| bad(format!("its checksums are unreadable ({e})")))?;
                        let actual = state
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .sum_to(at);
                        let manifest_ok =
                            doc.as_ref().is_some_and(|(_, h)| *h == sums.manifest);
                        if sums.algorithm != "blake3"
                            || !manifest_ok
                            || sums.archive_bytes != at
                            || actual.as_deref() != Some(sums.archive.as_str())
                        {
                            return Err(bad(
                                "its checksums do not match its content: it is corrupt (export it again)",
                            ));
                        }
                        sums_at = Some(entries_seen);
                        Ok(())
                    }
                    _ if doc.is_none() => Err(bad(format!(
                        "it must start with {DOC_ENTRY}, not '{}'",
                        excerpt(entry_name)
                    ))),
                    other => Err(bad(format!(
                        "it holds an unexpected entry '{}'",
                        excerpt(other)
                    ))),
                }
            },
        )
        .map_err(|e| {
            let st = state.lock().unwrap_or_else(PoisonError::into_inner);
            match e {
                Fail::Archive(e) if st.over => {
                    tracing::warn!(error = %e, "import over its declared size");
                    Fail::Engine(EngineError::TooLarge(
                        "the archive cannot be imported: it holds more than its cairn-snapshot.json declares (it is corrupt or malicious)".into(),
                    ))
                }
                // Reading the stream failed inside an entry: it is cut short or corrupt,
                // whatever the step that noticed.
                Fail::Archive(e) if st.broken => {
                    Fail::Archive(ImageError::CorruptArchive {
                        what: "the archive".into(),
                        reason: e.to_string(),
                    })
                }
                other => other,
            }
        })?;
        let Some((doc, _)) = doc else {
            return Err(bad(format!("it has no {DOC_ENTRY}")));
        };
        if sums_at.is_none() {
            return Err(bad(
                "it has no checksums at its end: it is truncated (export it again)",
            ));
        }
        self.finish_import(handle, id, &doc, &rootfs, &checkpoint, made)
    }

    /// Checks the first document against the limits and makes the rows: the image (when
    /// this host has none of that name) and the snapshot, `uploading`.
    fn admit_import(
        &self,
        handle: &tokio::runtime::Handle,
        id: &SnapshotId,
        account: &str,
        name: Option<&str>,
        doc: &ArchiveDoc,
        made: &mut Made,
    ) -> std::result::Result<(), Fail> {
        let m = &doc.manifest;
        let name = name.unwrap_or(&m.name).to_string();
        validate_name(&name).map_err(|e| bad(format!("its snapshot name: {e}")))?;
        validate_name(&doc.image_name).map_err(|e| bad(format!("its image name: {e}")))?;
        let runtime = m
            .runtime
            .parse()
            .map_err(|_| bad(format!("its runtime '{}' is unknown", excerpt(&m.runtime))))?;
        if m.stateful != (doc.sizes.checkpoint_entries > 0) {
            return Err(bad("its manifest and its memory checkpoint disagree"));
        }
        let size = doc.sizes.data_bytes();
        let limits = self.cfg.snapshot_limits;
        if size > limits.snapshot_bytes {
            return Err(Fail::Engine(EngineError::Limit(format!(
                "the archive's snapshot holds {}, over the limit of {} per snapshot",
                format_bytes(size),
                format_bytes(limits.snapshot_bytes)
            ))));
        }
        handle
            .block_on(async {
                self.check_account_room(account, size).await?;
                let free = self.storage.free_bytes()?;
                if free < size.saturating_add(self.reserve / 2) {
                    return Err(EngineError::PoolFull(format!(
                        "cannot import the snapshot: it holds {}, {}",
                        format_bytes(size),
                        self.pool_full_text(free)
                    )));
                }
                let image_id = match self.find_image(account, &doc.image_name).await {
                    Ok(image) => image.id,
                    Err(EngineError::NotFound(_)) => {
                        let record = ImageRecord {
                            id: ImageId::generate().to_string(),
                            account: account.to_string(),
                            name: doc.image_name.clone(),
                            public: false,
                            size_bytes: 0,
                            source: format!("snapshot archive ({})", excerpt(&m.id)),
                            config_json: "{}".into(),
                            ready: false,
                            created_at: Utc::now(),
                        };
                        let row = record.clone();
                        self.db(move |db| db.insert_image(&row))
                            .await
                            .map_err(EngineError::from_db)?;
                        made.image = Some(record.id.clone());
                        record.id
                    }
                    Err(e) => return Err(e),
                };
                let snap = SnapshotRecord {
                    id: id.clone(),
                    account: account.to_string(),
                    sandbox_id: SandboxId::generate(),
                    sandbox_name: None,
                    name,
                    parent_id: None,
                    image_id,
                    runtime,
                    resources: Resources {
                        cpus: m.cpus,
                        memory_bytes: m.memory_bytes,
                        pids_limit: m.pids_limit,
                    },
                    process: ProcessDefaults {
                        env: m.env.clone(),
                        workdir: m.workdir.clone(),
                    },
                    stateful: m.stateful,
                    auto: false,
                    state: SnapshotState::Uploading,
                    error: None,
                    size_bytes: 0,
                    total_bytes: 0,
                    created_at: Utc::now(),
                    imported_from: None,
                };
                let row = snap.clone();
                self.db(move |db| db.insert_snapshot(&row))
                    .await
                    .map_err(EngineError::from_db)?;
                made.row = Some(snap);
                Ok(())
            })
            .map_err(Fail::Engine)
    }

    /// Everything arrived and checked out: the tree read-only, the manifest rewritten for
    /// this host, all durable, the image (if brought) made, then `ready`.
    fn finish_import(
        &self,
        handle: &tokio::runtime::Handle,
        id: &SnapshotId,
        doc: &ArchiveDoc,
        rootfs: &std::path::Path,
        checkpoint: &std::path::Path,
        made: &mut Made,
    ) -> std::result::Result<(), Fail> {
        let snap = made
            .row
            .clone()
            .ok_or_else(|| Fail::Engine(EngineError::Internal("import without a row".into())))?;
        if !snap.stateful {
            // Its directory was made in case; it stays empty unless the archive lies.
            std::fs::remove_dir(checkpoint).map_err(|_| {
                bad("it holds a memory checkpoint that its manifest does not declare")
            })?;
        }
        let size = cairn_images::dir_size(rootfs).saturating_add(if snap.stateful {
            cairn_images::dir_size(checkpoint)
        } else {
            0
        });
        let source = &doc.manifest;
        let manifest = Manifest {
            id: id.to_string(),
            name: snap.name.clone(),
            sandbox: snap.sandbox_id.to_string(),
            parent: None,
            image: snap.image_id.clone(),
            ..source.clone()
        };
        handle
            .block_on(async {
                let tree = Tree::snapshot(id);
                self.storage.set_readonly(&tree, true).await?;
                self.storage
                    .save_manifest(id.as_str(), &manifest)
                    .map_err(|e| EngineError::failed("cannot write the manifest", e))?;
                self.storage
                    .sync_snapshot(id.as_str())
                    .await
                    .map_err(|e| EngineError::failed("cannot flush the snapshot to disk", e))?;
                crate::crash_point("import-before-ready");
                if let Some(image) = &made.image {
                    self.storage
                        .snapshot(&tree, &Tree::image(image), true)
                        .await?;
                    let config = StoredImageConfig {
                        env: source.env.clone(),
                        workdir: Some(source.workdir.clone()),
                        dropped: Default::default(),
                        blobs: Vec::new(),
                    };
                    let json = serde_json::to_string(&config)
                        .map_err(|e| EngineError::failed("cannot encode the image's config", e))?;
                    let row = image.clone();
                    self.db(move |db| db.finish_image(&row, size, &json))
                        .await
                        .map_err(EngineError::from_db)?;
                }
                let (row, from, disk) = (id.clone(), source.id.clone(), doc.disk_bytes);
                self.db(move |db| db.finish_import(&row, size, &from, disk))
                    .await
                    .map_err(EngineError::from_db)?;
                Ok(())
            })
            .map_err(Fail::Engine)
    }
}

/// Reads a small document entry whole.
fn read_small<R: Read>(entry: &mut tar::Entry<'_, R>) -> std::result::Result<Vec<u8>, Fail> {
    if entry.size() > MAX_DOC_BYTES {
        return Err(bad("one of its documents is too large"));
    }
    let mut data = Vec::new();
    entry
        .take(MAX_DOC_BYTES)
        .read_to_end(&mut data)
        .map_err(|e| {
            Fail::Archive(ImageError::CorruptArchive {
                what: "the archive".into(),
                reason: e.to_string(),
            })
        })?;
    Ok(data)
}

/// At most 100 characters of something the archive named.
fn excerpt(s: &str) -> String {
    s.chars().take(100).collect()
}

/// The 4xx for what is wrong with the archive, naming only its entries.
fn archive_error(e: ImageError, pool: &std::path::Path) -> EngineError {
    tracing::warn!(error = %e, "snapshot import refused");
    // Reasons may name where the tree is unpacked: never show the pool.
    let pool = pool.display().to_string();
    let hide = |s: &str| excerpt(&s.replace(&pool, ""));
    match &e {
        ImageError::Io { .. } => EngineError::failed("snapshot import failed", e),
        ImageError::CorruptArchive { .. } | ImageError::NotAnArchive { .. } => {
            EngineError::InvalidArgument(
                "the archive cannot be imported: it cannot be read to the end (it is truncated or corrupt): export it again".into(),
            )
        }
        ImageError::UnsafeEntry { entry, reason, .. } => EngineError::InvalidArgument(format!(
            "the archive cannot be imported: entry '{}' is refused ({}): the archive is malformed or malicious",
            excerpt(entry),
            hide(reason)
        )),
        ImageError::BadEntry { entry, reason, .. } => EngineError::InvalidArgument(format!(
            "the archive cannot be imported: entry '{}' is invalid ({})",
            excerpt(entry),
            hide(reason)
        )),
        _ => EngineError::InvalidArgument(format!(
            "the archive cannot be imported: {}",
            hide(&e.to_string())
        )),
    }
}
