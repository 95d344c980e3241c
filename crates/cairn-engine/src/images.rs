//! Images: import a root filesystem (directory, OCI archive or layout tarball) into a
//! read-only subvolume; list; publish; remove when unused.
//!
//! An image belongs to the account that imported it. Tenants bring images by uploading an
//! archive; importing a path on the daemon's host is the operator's alone (the unix
//! socket, or an admin token), and no import, by anyone, reads inside the data directory.
//! The operator may publish an image to every account. Messages never name another
//! account's objects nor a host path a tenant did not give.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use cairn_db::ImageRecord;
use cairn_images::ImageError;
use cairn_storage::Tree;
use cairn_types::api::{DroppedFiles, ImageInfo};
use cairn_types::{format_bytes, validate_name, ImageId, Progress, ProgressSink};

use crate::{Engine, EngineError, Result};

/// The parts of an image's config a sandbox inherits.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredImageConfig {
    pub env: Vec<String>,
    pub workdir: Option<String>,
    /// Special files the import left out (none for images imported before
    /// they were counted).
    #[serde(default)]
    pub dropped: DroppedFiles,
    /// The registry blob cache's blobs (`sha256:…`) this image was pulled from: the cache
    /// keeps them while an image names them (none for imports).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<String>,
}

/// Who asks: an account, and whether they are the operator.
#[derive(Clone, Copy, Debug)]
pub struct Principal<'a> {
    /// The account the request acts for.
    pub account: &'a str,
    /// The operator (unix socket, or an admin token): may import host paths, publish
    /// images, and remove any image by id.
    pub operator: bool,
}

/// Where an import reads from, and what messages call it.
pub(crate) struct Source {
    path: PathBuf,
    /// The operator's path as given, or `the uploaded archive`.
    label: String,
    /// What the image row records as its source.
    recorded: String,
    /// The spooled upload, removed when the import is over (it lives as long as the
    /// import's task, not the request's, which may go away first).
    _spool: Option<tempfile::NamedTempFile>,
    /// For a pull: the image manifest (digest, size) among the blobs of the store at
    /// `path` (the blob cache), and every blob the image is made of.
    pulled: Option<((String, u64), Vec<String>)>,
    /// Told how far the unpacking has come (phase `unpack`).
    progress: ProgressSink,
}

/// An upload read whole, waiting to be unpacked ([`Engine::import_received`]); its scratch
/// file goes when this drops.
pub struct ReceivedImage {
    src: Source,
    account: String,
    operator: bool,
    name: String,
    public: bool,
}

impl std::fmt::Debug for ReceivedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedImage")
            .field("name", &self.name)
            .finish()
    }
}

impl Source {
    /// A pulled image: the manifest `manifest` in the blob store `cache`, made of `blobs`.
    pub(crate) fn pulled(
        cache: PathBuf,
        reference: String,
        manifest: (String, u64),
        blobs: Vec<String>,
    ) -> Source {
        Source {
            progress: ProgressSink::none(),
            path: cache,
            label: reference.clone(),
            recorded: reference,
            _spool: None,
            pulled: Some((manifest, blobs)),
        }
    }
}

impl Engine {
    pub(crate) fn image_info(&self, r: &ImageRecord, who: Principal<'_>) -> ImageInfo {
        let owned = r.account == who.account;
        ImageInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            size_bytes: r.size_bytes,
            // Where a public image came from is the operator's business.
            source: if owned || who.operator {
                r.source.clone()
            } else {
                String::new()
            },
            created_at: r.created_at,
            public: r.public,
            owned,
            dropped: serde_json::from_str::<StoredImageConfig>(&r.config_json)
                .map(|c| c.dropped)
                .unwrap_or_default(),
            pull: None,
        }
    }

    /// Imports `path`, a directory or archive on this host, as image `name`: the operator's
    /// alone, and never from inside the data directory.
    pub async fn import_image_path(
        self: &Arc<Self>,
        who: Principal<'_>,
        name: &str,
        path: &str,
        public: bool,
        progress: ProgressSink,
    ) -> Result<ImageInfo> {
        if !who.operator {
            return Err(EngineError::Forbidden(
                "importing a path on the daemon's host is for the operator (the unix socket, or an admin token): upload the archive instead ('cairn image import ./image.tar' uploads it over TCP)".into(),
            ));
        }
        self.check_new_image(who, name, public).await?;
        let source = Path::new(path);
        if !source.is_absolute() {
            return Err(EngineError::InvalidArgument(format!(
                "image path '{path}' is not absolute: give the full path of a directory or .tar file on the daemon's host"
            )));
        }
        let real = std::fs::canonicalize(source).map_err(|_| {
            EngineError::InvalidArgument(format!(
                "image path '{path}' does not exist on the daemon's host (or cannot be read)"
            ))
        })?;
        for inner in [self.cfg.home.as_path(), self.storage.root()] {
            let inner = std::fs::canonicalize(inner).unwrap_or_else(|_| inner.to_path_buf());
            if real.starts_with(&inner) || inner.starts_with(&real) {
                return Err(EngineError::Forbidden(format!(
                    "image path '{path}' is inside (or holds) Cairn's data directory, whose files belong to its tenants: import from elsewhere"
                )));
            }
        }
        let src = Source {
            progress: progress.clone(),
            label: path.to_string(),
            recorded: path.to_string(),
            path: real,
            _spool: None,
            pulled: None,
        };
        self.spawn_import(who, name, public, src).await
    }

    /// Receives an archive the caller uploads (a root filesystem tarball, an OCI image
    /// archive or a `docker save` archive; plain, gzip or zstd) for [`Engine::import_received`]:
    /// checks the request, then reads `body` whole into a scratch file of at most the image
    /// size cap (so the HTTP layer answers, streamed or not, once nothing more is to be read).
    pub async fn receive_image_upload<R: AsyncRead + Unpin>(
        self: &Arc<Self>,
        who: Principal<'_>,
        name: &str,
        public: bool,
        mut body: R,
    ) -> Result<ReceivedImage> {
        if public && !who.operator {
            return Err(self.publish_forbidden());
        }
        self.check_new_image(who, name, public).await?;
        let dir = self.uploads_dir();
        let scratch = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&dir)
            .map_err(|e| {
                EngineError::failed(
                    format!("cannot create an upload file in {}", dir.display()),
                    e,
                )
            })?;
        let file = scratch
            .reopen()
            .map_err(|e| EngineError::failed("cannot open the upload file", e))?;
        let mut file = tokio::fs::File::from_std(file);
        let limit = self.cfg.max_image_bytes;
        let mut buf = vec![0u8; 1 << 20];
        let mut total: u64 = 0;
        loop {
            let n = body.read(&mut buf).await.map_err(|e| {
                EngineError::InvalidArgument(format!(
                    "the upload was cut short after {} ({e}): send the whole archive again",
                    format_bytes(total)
                ))
            })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > limit {
                return Err(EngineError::TooLarge(format!(
                    "the uploaded archive is larger than this host's image size cap of {}: make the image smaller (the operator sets the cap with 'cairnd --max-image-size')",
                    format_bytes(limit)
                )));
            }
            file.write_all(&buf[..n])
                .await
                .map_err(|e| EngineError::from_io("writing the uploaded archive", e))?;
        }
        file.flush()
            .await
            .map_err(|e| EngineError::from_io("writing the uploaded archive", e))?;
        drop(file);
        if total == 0 {
            return Err(EngineError::InvalidArgument(
                "the upload is empty: send the archive as the request body (Content-Type: application/x-tar, application/gzip or application/zstd)".into(),
            ));
        }
        // The scratch file goes when the import is over (or when a crash is recovered from).
        let src = Source {
            progress: ProgressSink::none(),
            path: scratch.path().to_path_buf(),
            label: "the uploaded archive".into(),
            recorded: format!("upload ({})", format_bytes(total)),
            _spool: Some(scratch),
            pulled: None,
        };
        Ok(ReceivedImage {
            src,
            account: who.account.to_string(),
            operator: who.operator,
            name: name.to_string(),
            public,
        })
    }

    /// Unpacks an upload [`Engine::receive_image_upload`] received as the image, reporting
    /// the unpacking to `progress` (phase `unpack`).
    pub async fn import_received(
        self: &Arc<Self>,
        received: ReceivedImage,
        progress: ProgressSink,
    ) -> Result<ImageInfo> {
        let ReceivedImage {
            mut src,
            account,
            operator,
            name,
            public,
        } = received;
        src.progress = progress;
        let who = Principal {
            account: &account,
            operator,
        };
        self.spawn_import(who, &name, public, src).await
    }

    /// Refuses a bad name, a name the account already uses, and `public` from a tenant, before
    /// anything is read or written.
    pub(crate) async fn check_new_image(
        &self,
        who: Principal<'_>,
        name: &str,
        public: bool,
    ) -> Result<()> {
        validate_name(name)?;
        if public && !who.operator {
            return Err(self.publish_forbidden());
        }
        let account = who.account.to_string();
        if self
            .db(move |db| db.list_images(&account))
            .await?
            .iter()
            .any(|i| i.account == who.account && i.name == name)
        {
            return Err(EngineError::Conflict(format!(
                "you already have an image named '{name}': remove it with 'cairn image rm {name}' or choose another name"
            )));
        }
        self.require_pool_room("import the image")?;
        Ok(())
    }

    fn publish_forbidden(&self) -> EngineError {
        EngineError::Forbidden(
            "only the operator (the unix socket, or an admin token) publishes images to every account: import it for your own account, without public".into(),
        )
    }

    /// Runs the import to its end in a task of its own, so that a client that goes away
    /// cannot leave it half-done.
    async fn spawn_import(
        self: &Arc<Self>,
        who: Principal<'_>,
        name: &str,
        public: bool,
        src: Source,
    ) -> Result<ImageInfo> {
        let engine = Arc::clone(self);
        let (account, name) = (who.account.to_string(), name.to_string());
        let operator = who.operator;
        engine
            .run_to_end(move |engine| async move {
                let record = engine.import(&account, &name, public, &src).await?;
                let who = Principal {
                    account: &account,
                    operator,
                };
                Ok(engine.image_info(&record, who))
            })
            .await
    }

    pub(crate) async fn import(
        &self,
        account: &str,
        name: &str,
        public: bool,
        src: &Source,
    ) -> Result<ImageRecord> {
        let id = ImageId::generate();
        let record = ImageRecord {
            id: id.to_string(),
            account: account.to_string(),
            name: name.to_string(),
            public,
            size_bytes: 0,
            source: src.recorded.clone(),
            config_json: "{}".to_string(),
            ready: false,
            created_at: Utc::now(),
        };
        // State first (ready = 0), side effect second, state update last.
        let row = record.clone();
        self.db(move |db| db.insert_image(&row))
            .await
            .map_err(EngineError::from_db)?;
        let dest = Tree::image(&id);
        match self.import_into(src, &dest).await {
            Ok((size, config)) => {
                let row = id.to_string();
                self.db(move |db| db.finish_image(&row, size, &config))
                    .await
                    .map_err(EngineError::from_db)?;
                tracing::info!(image = %id, account, name, size, "image imported");
                let row = id.to_string();
                self.db(move |db| db.image(&row))
                    .await?
                    .ok_or_else(|| EngineError::Internal("image vanished".into()))
            }
            Err(e) => {
                let _ = self.storage.delete_subvolume(&dest).await;
                let row = id.to_string();
                let _ = self.db(move |db| db.delete_image(&row)).await;
                Err(self.pool_full_or("import the image", e))
            }
        }
    }

    async fn import_into(&self, src: &Source, tree: &Tree) -> Result<(u64, String)> {
        self.storage.create_subvolume(tree).await?;
        let dest = &self.storage.path(tree);
        let (from, dst) = (src.path.clone(), dest.to_path_buf());
        let sink = src.progress.clone();
        let options = cairn_images::ImportOptions {
            max_decoded_bytes: self.cfg.max_image_bytes,
            progress: sink.is_watched().then(|| {
                cairn_images::ImportProgress(Arc::new(move |done, total| {
                    sink.report(Progress::bytes("unpack", done, Some(total)));
                }))
            }),
            ..Default::default()
        };
        let pulled = src.pulled.clone();
        let manifest = pulled.as_ref().map(|(m, _)| m.clone());
        let config = tokio::task::spawn_blocking(move || match manifest {
            Some((digest, size)) => {
                cairn_images::import_manifest(&from, &digest, size, &dst, &options)
            }
            None => cairn_images::import_with(&from, &dst, &options),
        })
        .await
        .map_err(|e| EngineError::failed("the image import's task ended abnormally", e))?
        .map_err(|e| import_error(e, src, dest))?;
        if src.pulled.is_some() {
            crate::crash_point("pull-before-ready");
        }
        let size = {
            let dst = dest.to_path_buf();
            tokio::task::spawn_blocking(move || cairn_images::dir_size(&dst))
                .await
                .unwrap_or(0)
        };
        self.storage.set_readonly(tree, true).await?;
        let d = config.dropped;
        let stored = StoredImageConfig {
            env: config.env.clone(),
            workdir: config.workdir.clone(),
            dropped: DroppedFiles {
                char_devices: d.char_devices,
                block_devices: d.block_devices,
                fifos: d.fifos,
                sockets: d.sockets,
            },
            blobs: pulled.map(|(_, blobs)| blobs).unwrap_or_default(),
        };
        let json = serde_json::to_string(&stored)
            .map_err(|e| EngineError::failed("cannot encode the image's config", e))?;
        Ok((size, json))
    }

    /// Where uploads are spooled: inside the pool, which bounds them; emptied at start-up.
    pub(crate) fn uploads_dir(&self) -> PathBuf {
        self.storage.uploads_dir()
    }

    /// The images `account` can use: its own and the public ones.
    pub async fn list_images(&self, who: Principal<'_>) -> Result<Vec<ImageInfo>> {
        let account = who.account.to_string();
        Ok(self
            .db(move |db| db.list_images(&account))
            .await?
            .iter()
            .map(|r| self.image_info(r, who))
            .collect())
    }

    /// An image `account` can use, by name or id.
    pub(crate) async fn find_image(&self, account: &str, name: &str) -> Result<ImageRecord> {
        let (who, what) = (account.to_string(), name.to_string());
        let found = self.db(move |db| db.find_image(&who, &what)).await?;
        found.ok_or_else(|| {
            EngineError::NotFound(format!("no image named '{name}': list images with 'cairn image ls' or import one with 'cairn image import'"))
        })
    }

    /// An image the caller may change: their own, or (for the operator) any, by id.
    async fn own_image(&self, who: Principal<'_>, name: &str) -> Result<ImageRecord> {
        let (account, operator, what) = (who.account.to_string(), who.operator, name.to_string());
        let found = self
            .db(move |db| {
                Ok(match db.find_image(&account, &what)? {
                    Some(i) if i.account == account || operator => Some(i),
                    Some(_) => None,
                    None if operator => db.image(&what)?,
                    None => None,
                })
            })
            .await?;
        found.ok_or_else(|| {
            EngineError::NotFound(format!(
                "you have no image named '{name}': list yours with 'cairn image ls' (public images are the operator's)"
            ))
        })
    }

    /// Makes an image public (usable by every account) or private again: the operator's alone.
    pub async fn publish_image(
        &self,
        who: Principal<'_>,
        name: &str,
        public: bool,
    ) -> Result<ImageInfo> {
        if !who.operator {
            return Err(self.publish_forbidden());
        }
        let image = self.own_image(who, name).await?;
        let row = image.id.clone();
        self.db(move |db| db.set_image_public(&row, public))
            .await
            .map_err(EngineError::from_db)?;
        tracing::info!(image = %image.id, public, "image visibility changed");
        let row = image.id.clone();
        let image = self
            .db(move |db| db.image(&row))
            .await?
            .ok_or_else(|| EngineError::Internal("image vanished".into()))?;
        Ok(self.image_info(&image, who))
    }

    /// Removes an image of the caller (the operator: any) that nothing uses.
    pub async fn remove_image(&self, who: Principal<'_>, name: &str) -> Result<()> {
        let image = self.own_image(who, name).await?;
        let row = image.id.clone();
        let users = self.db(move |db| db.image_users(&row)).await?;
        if !users.is_empty() {
            // Name only the caller's own sandboxes and snapshots; count the others.
            let mine: Vec<&str> = users
                .iter()
                .filter(|u| u.account == who.account)
                .map(|u| u.id.as_str())
                .collect();
            let others = users.len() - mine.len();
            let mut what = Vec::new();
            if !mine.is_empty() {
                what.push(format!("your {}", mine.join(", ")));
            }
            if others > 0 {
                what.push(format!(
                    "{others} sandbox(es) or snapshot(s) of other accounts"
                ));
            }
            return Err(EngineError::Conflict(format!(
                "image '{}' is still used by {}: destroy or delete them first",
                image.name,
                what.join(" and ")
            )));
        }
        self.storage
            .delete_subvolume(&Tree::image(&image.id))
            .await?;
        let row = image.id.clone();
        self.db(move |db| db.delete_image(&row)).await?;
        tracing::info!(image = %image.id, name = %image.name, "image removed");
        let pulled = serde_json::from_str::<StoredImageConfig>(&image.config_json)
            .is_ok_and(|c| !c.blobs.is_empty());
        if pulled {
            // Its blobs go from the registry cache unless another image names them.
            self.sweep_blob_cache().await;
        }
        Ok(())
    }
}

/// The engine's error for a failed import: what is wrong with the source, in words that name
/// only what the caller gave (never the pool, never a reason quoting the file's bytes);
/// the whole error goes to the log.
fn import_error(e: ImageError, src: &Source, dest: &Path) -> EngineError {
    tracing::warn!(error = %e, source = %src.path.display(), "image import failed");
    let what = &src.label;
    let message = match &e {
        ImageError::Io { .. }
        | ImageError::DestinationNotEmpty { .. }
        | ImageError::Overlap { .. } => {
            return EngineError::failed("image import failed", e);
        }
        ImageError::NotAnArchive { .. } => format!(
            "{what} is not a tar archive: give a root filesystem tarball, an OCI image archive or a docker save archive (.tar, .tar.gz or .tar.zst)"
        ),
        ImageError::EmptySource { .. } => {
            format!("{what} is empty: a root filesystem needs at least one file")
        }
        ImageError::CorruptArchive { .. } => format!(
            "{what} cannot be read to the end: it is truncated or corrupt; export it again"
        ),
        ImageError::UnsafeEntry { entry, .. } => format!(
            "{what} holds an entry that would land outside the image ('{}'): the archive is malformed or malicious",
            entry.chars().take(100).collect::<String>()
        ),
        other => other.to_string(),
    };
    // Paths in the remaining messages are the source's and the destination's: show neither.
    let message = message
        .replace(&src.path.display().to_string(), what)
        .replace(&dest.display().to_string(), "the image");
    EngineError::InvalidArgument(message)
}
