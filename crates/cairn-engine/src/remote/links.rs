//! Store links: with a remote store, a download link can be the store's own pre-signed URL
//! of the snapshot's archive, so `curl` fetches it from the store and not through cairnd.
//!
//! The archive (exactly what an export writes) is uploaded once per snapshot and format to
//! `<prefix>/<account>/archives/<id>.<tar.zst|tar.gz>` (a multipart upload: the object
//! appears whole or not at all) and signed for GET for the link's life. The store enforces
//! the expiry; deleting the snapshot deletes the archives its host uploaded (recorded in the
//! database before each upload), after which every link to them answers 404. Archives are
//! plain objects, not chunks: they are not shared with pushes and count in the bucket beside
//! them.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use object_store::signer::Signer;
use object_store::{ObjectStoreExt, WriteMultipart};

use super::{store_failed, Remote};
use crate::share::{ArchiveFormat, ArchivePiece, SnapshotLink};
use crate::{Engine, EngineError, Result};

/// Bytes per part of an archive's upload.
const PART: usize = 8 << 20;
/// Parts uploading at once.
const CONCURRENT_PARTS: usize = 4;

impl Remote {
    /// Where `account`'s archive of snapshot `id` in `format` is kept for store links.
    fn archive_key(
        &self,
        account: &str,
        id: &str,
        format: ArchiveFormat,
    ) -> object_store::path::Path {
        self.key(&[account, "archives", &format!("{id}.{}", format.extension())])
    }
}

impl Engine {
    /// A pre-signed URL of the remote store that downloads snapshot `reference` of
    /// `account` as an archive for `secs` seconds (the same bounds as cairnd's own links),
    /// uploading the archive first when the store lacks it.
    pub async fn store_link(
        self: &Arc<Self>,
        account: &str,
        reference: &str,
        secs: Option<u64>,
        format: ArchiveFormat,
    ) -> Result<SnapshotLink> {
        let remote = self.remote()?;
        let secs = self.link_secs(secs)?;
        let snap = self.linkable_snapshot(account, reference).await?;
        let key = remote.archive_key(account, snap.id.as_str(), format);
        // Recorded before the upload starts: deleting the snapshot deletes what it records.
        let (row, recorded) = (snap.id.to_string(), key.to_string());
        self.db(move |db| db.add_store_archive(&row, &recorded))
            .await?;
        match remote.store.head(&key).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => {
                self.upload_archive(&remote, account, snap.id.as_str(), format, &key)
                    .await?;
            }
            Err(e) => return Err(store_failed("looked for the snapshot's archive", &e)),
        }
        let expires_at = Utc::now() + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(0));
        let url = remote
            .signer
            .signed_url(
                object_store::signer::Method::GET,
                &key,
                Duration::from_secs(secs),
            )
            .await
            .map_err(|e| store_failed("signed a download link", &e))?;
        Ok(SnapshotLink {
            url: url.to_string(),
            expires_at,
        })
    }

    /// Uploads the archive of snapshot `id` to `key`, as one multipart upload.
    async fn upload_archive(
        self: &Arc<Self>,
        remote: &Remote,
        account: &str,
        id: &str,
        format: ArchiveFormat,
        key: &object_store::path::Path,
    ) -> Result<()> {
        let room = remote.room(account).await?;
        let mut archive = self
            .export_snapshot(account, id, format, cairn_types::ProgressSink::none())
            .await?;
        let upload = remote
            .store
            .put_multipart(key)
            .await
            .map_err(|e| store_failed("started the archive's upload", &e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut sent = 0u64;
        let mut whole = false;
        while let Some(piece) = archive.recv().await {
            let written = match piece {
                Ok(ArchivePiece::Whole) => {
                    whole = true;
                    Ok(())
                }
                Ok(ArchivePiece::Data(bytes)) if room.is_some_and(|r| sent + bytes.len() as u64 > r) => {
                    Err(remote.over_quota())
                }
                Ok(ArchivePiece::Data(bytes)) => writer
                    .wait_for_capacity(CONCURRENT_PARTS)
                    .await
                    .map(|()| {
                        sent += bytes.len() as u64;
                        writer.write(&bytes)
                    })
                    .map_err(|e| store_failed("uploaded the archive", &e)),
                Err(e) => Err(EngineError::Conflict(format!(
                    "snapshot {id} could not be read to the end for its link ({e}): was it deleted meanwhile?"
                ))),
            };
            if let Err(e) = written {
                let _ = writer.abort().await;
                return Err(e);
            }
        }
        // A writer that died without an error never leaves a partial archive as a whole one.
        if !whole {
            let _ = writer.abort().await;
            return Err(EngineError::failed(
                "exported the snapshot for its link",
                "the archive's writer ended before the archive was whole",
            ));
        }
        writer
            .finish()
            .await
            .map_err(|e| store_failed("finished the archive's upload", &e))?;
        tracing::info!(
            snapshot = id,
            format = format.extension(),
            "archive uploaded for store links"
        );
        Ok(())
    }

    /// Deletes the archives store links uploaded for snapshot `id` (none: no request to the
    /// store). One the store refuses is logged and kept on record, and retried at the next
    /// start ([`Engine::retry_store_archive_deletions`]); its links work until they expire.
    pub(crate) async fn delete_link_archives(&self, id: &str) {
        let row = id.to_string();
        let keys = match self.db(move |db| db.store_archives(&row)).await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(snapshot = id, error = %e, "could not read the snapshot's store archives");
                return;
            }
        };
        for key in keys {
            self.delete_store_archive(id, &key).await;
        }
    }

    /// Deletes one archive from the store and its record; whether it is gone.
    async fn delete_store_archive(&self, id: &str, key: &str) -> bool {
        let Some(remote) = self.remote.clone() else {
            return false;
        };
        match remote
            .store
            .delete(&object_store::path::Path::from(key))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(snapshot = id, error = %e, "could not delete the snapshot's archive from the store: its links work until they expire, and cairnd tries again at its next start");
                return false;
            }
        }
        let (row, key) = (id.to_string(), key.to_string());
        self.db(move |db| db.remove_store_archive(&row, &key))
            .await
            .is_ok()
    }

    /// The archives of snapshots deleted while the store refused (or a crash came between
    /// the snapshot's deletion and its archives'): deleted now. Run in the background at
    /// start, so a store that is down does not hold cairnd up.
    pub(crate) async fn retry_store_archive_deletions(&self) {
        if self.remote.is_none() {
            return;
        }
        let Ok(orphans) = self.db(|db| db.orphan_store_archives()).await else {
            return;
        };
        let mut deleted = 0usize;
        for (id, key) in &orphans {
            deleted += usize::from(self.delete_store_archive(id, key).await);
        }
        if !orphans.is_empty() {
            tracing::info!(
                deleted,
                left = orphans.len() - deleted,
                "archives of deleted snapshots removed from the store"
            );
        }
    }
}
