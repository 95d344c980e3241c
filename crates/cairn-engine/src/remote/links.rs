//! Store links: with a remote store, a download link can be the store's own pre-signed URL
//! of the snapshot's archive, so `curl` fetches it from the store and not through cairnd.
//!
//! The archive (exactly what an export writes) is uploaded once per snapshot and format to
//! `<prefix>/<account>/archives/<id>.<tar.zst|tar.gz>` (a multipart upload: the object
//! appears whole or not at all) and signed for GET for the link's life. The store enforces
//! the expiry; deleting the snapshot (on any host of the account) deletes the archive, after
//! which every link to it answers 404. Archives are plain objects, not chunks: they are not
//! shared with pushes and count in the bucket beside them.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use object_store::signer::Signer;
use object_store::{ObjectStoreExt, WriteMultipart};

use super::{store_failed, Remote};
use crate::share::{ArchiveFormat, SnapshotLink};
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
        while let Some(piece) = archive.recv().await {
            let written = match piece {
                Ok(bytes) if room.is_some_and(|r| sent + bytes.len() as u64 > r) => {
                    Err(remote.over_quota())
                }
                Ok(bytes) => writer
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

    /// Deletes the archives store links of snapshot `id` of `account` use (best effort: a
    /// failure is logged, and the link lives on until it expires).
    pub(crate) async fn delete_link_archives(&self, account: &str, id: &str) {
        let Some(remote) = self.remote.clone() else {
            return;
        };
        for format in [ArchiveFormat::TarZst, ArchiveFormat::TarGz] {
            let key = remote.archive_key(account, id, format);
            match remote.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(snapshot = id, error = %e, "could not delete the snapshot's archive from the store: its links work until they expire")
                }
            }
        }
    }
}
