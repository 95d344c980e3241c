//! The registry pulls' blob cache: layers, manifests and configurations kept in the pool by
//! digest (`registry/blobs/sha256/<hex>`, an OCI blob store that `cairn_images` reads), so
//! that images sharing base layers download them once.
//!
//! A blob is written to `registry/tmp/` while it downloads, hashed and counted as it
//! arrives, checked against its digest and size, synced, and only then renamed into
//! place: a blob in the store is always whole and verified. Start-up empties `tmp/`;
//! removing an image removes the blobs no other image names (`gc`). Not for: talking to
//! registries (`client`).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use cairn_types::{Progress, ProgressSink};

use super::client::Registry;
use crate::{EngineError, Result};

/// The cache at `root` (the storage's blob cache directory).
pub(crate) struct BlobCache {
    root: PathBuf,
}

impl BlobCache {
    pub(crate) fn new(root: PathBuf) -> BlobCache {
        BlobCache { root }
    }

    /// The cache's root: an OCI blob store.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where blob `digest` (`sha256:<hex>`, already checked) lives.
    fn path(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// Whether the cache holds `digest` whole (of `size` bytes).
    pub(crate) fn has(&self, digest: &str, size: u64) -> bool {
        std::fs::metadata(self.path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Stores the small document `bytes` as blob `digest`, after checking it hashes to it.
    pub(crate) async fn put_doc(&self, digest: &str, bytes: Vec<u8>, what: &str) -> Result<()> {
        check_digest(digest, &sha256(&bytes), what)?;
        if self.has(digest, bytes.len() as u64) {
            return Ok(());
        }
        let (tmp_dir, dest) = (self.root.join("tmp"), self.path(digest));
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir)?;
            tmp.write_all(&bytes)?;
            tmp.as_file().sync_all()?;
            tmp.persist(&dest).map_err(|e| e.error)?;
            sync_dir(dest.parent())
        })
        .await
        .map_err(|e| EngineError::failed("the blob cache's task ended abnormally", e))?
        .map_err(|e| EngineError::from_io("writing to the blob cache", e))
    }

    /// Downloads blob `digest` of `size` bytes from `registry` into the cache, reporting
    /// progress as `label`; returns the bytes downloaded. Nothing stays in the cache unless
    /// the whole blob arrived and matched its digest and size.
    pub(crate) async fn download(
        &self,
        registry: &Registry,
        digest: &str,
        size: u64,
        label: &str,
        progress: &ProgressSink,
    ) -> Result<u64> {
        let mut resp = registry.blob(digest).await?;
        let tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))
            .map_err(|e| EngineError::from_io("creating a file in the blob cache", e))?;
        let (file, tmp_path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut done: u64 = 0;
        progress.report(Progress::bytes(label, 0, Some(size)));
        let mut last_report = 0u64;
        loop {
            let chunk = resp
                .chunk()
                .await
                .map_err(|e| registry.cut_short(EngineError::failed("reading a layer", e)))?;
            let Some(chunk) = chunk else { break };
            done += chunk.len() as u64;
            if done > size {
                return Err(EngineError::InvalidArgument(format!(
                    "{label} is larger than its manifest says ({size} bytes): the registry serves a corrupt or tampered image"
                )));
            }
            hasher.update(&chunk);
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
                .await
                .map_err(|e| EngineError::from_io("writing to the blob cache", e))?;
            if done - last_report >= 1 << 20 {
                last_report = done;
                progress.report(Progress::bytes(label, done, Some(size)));
            }
        }
        if done != size {
            return Err(registry.cut_short(EngineError::failed(
                "reading a layer",
                format!("{label} ended after {done} of {size} bytes"),
            )));
        }
        check_digest(
            digest,
            &format!("sha256:{}", hex::encode(hasher.finalize())),
            label,
        )?;
        file.sync_all()
            .await
            .map_err(|e| EngineError::from_io("syncing the blob cache", e))?;
        drop(file);
        let dest = self.path(digest);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            tmp_path.persist(&dest).map_err(|e| e.error)?;
            sync_dir(dest.parent())
        })
        .await
        .map_err(|e| EngineError::failed("the blob cache's task ended abnormally", e))?
        .map_err(|e| EngineError::from_io("storing a blob in the cache", e))?;
        progress.report(Progress::bytes(label, done, Some(size)));
        Ok(done)
    }

    /// Removes every blob not in `keep` (digests); returns how many bytes were freed.
    pub(crate) fn gc(&self, keep: &HashSet<String>) -> u64 {
        let dir = self.root.join("blobs/sha256");
        let mut freed = 0;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if keep.contains(&format!("sha256:{name}")) {
                continue;
            }
            let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(entry.path()).is_ok() {
                freed += len;
            }
        }
        freed
    }
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn check_digest(expected: &str, actual: &str, what: &str) -> Result<()> {
    if expected == actual {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "{what} is corrupt or tampered with: expected digest {expected} but it hashes to {actual}; the registry serves a broken image"
        )))
    }
}

fn sync_dir(dir: Option<&Path>) -> std::io::Result<()> {
    match dir {
        Some(d) => std::fs::File::open(d)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::pull::access::RegistryAccess;
    use crate::pull::reference::Reference;

    /// Serves `body` to every request on a free port of 127.0.0.1.
    async fn serve(body: Vec<u8>) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                });
            }
        });
        port
    }

    fn setup(port: u16) -> (tempfile::TempDir, BlobCache, Registry) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        let cache = BlobCache::new(dir.path().to_path_buf());
        let host = format!("127.0.0.1:{port}");
        let access = RegistryAccess {
            insecure: vec![host.clone()],
            allow_private: false,
        };
        let reference = Reference::parse(&format!("{host}/test/app:v1")).unwrap();
        (
            dir,
            cache,
            Registry::new(&reference, &access, None).unwrap(),
        )
    }

    #[tokio::test]
    async fn downloads_are_verified_reported_and_kept_only_whole() {
        let body = vec![7u8; 3 << 20];
        let digest = sha256(&body);
        let port = serve(body.clone()).await;
        let (dir, cache, registry) = setup(port);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let sink = ProgressSink::new(move |p| s.lock().unwrap().push(p));
        let label = format!("layer {}", &digest[..19]);
        let n = cache
            .download(&registry, &digest, body.len() as u64, &label, &sink)
            .await
            .unwrap();
        assert_eq!(n, body.len() as u64);
        assert!(cache.has(&digest, n));
        let seen = seen.lock().unwrap().clone();
        let last = seen.last().unwrap();
        assert_eq!(
            (last.phase.as_str(), last.done, last.total),
            (label.as_str(), n, Some(n))
        );
        assert!(seen.len() >= 3, "one report per MiB or so: {seen:?}");

        // Content that does not hash to its digest is refused and leaves no file.
        let wrong = format!("sha256:{}", "0".repeat(64));
        let e = cache
            .download(
                &registry,
                &wrong,
                body.len() as u64,
                "layer x",
                &ProgressSink::none(),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("corrupt or tampered"), "{e}");
        // A blob longer than its descriptor says is cut off.
        let e = cache
            .download(&registry, &wrong, 10, "layer y", &ProgressSink::none())
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("larger than its manifest says"),
            "{e}"
        );
        assert!(!cache.has(&wrong, body.len() as u64));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            1
        );

        // The sweep keeps only the named blobs.
        assert_eq!(cache.gc(&HashSet::from([digest.clone()])), 0);
        assert_eq!(cache.gc(&HashSet::new()), n);
        assert!(!cache.has(&digest, n));
    }
}
