//! Push: a ready snapshot's archive stream, cut into chunks on a blocking thread while
//! the async side uploads the ones the store lacks (a few at a time), then its recipe,
//! written last through a temporary key. A recipe already there means the snapshot was
//! pushed whole before (snapshots never change): nothing is read or uploaded again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload};
use tokio::sync::mpsc;

use cairn_types::api::PushInfo;

use super::chunker::{Chunk, Chunker};
use super::recipe::{ChunkRef, Chunking, Recipe};
use super::{store_failed, Remote};
use crate::{Engine, EngineError, Result};

/// Chunk uploads in flight at once.
const CONCURRENT_UPLOADS: usize = 4;

impl Engine {
    /// The remote store, or the error that says how to configure one.
    pub(crate) fn remote(&self) -> Result<Arc<Remote>> {
        self.remote.clone().ok_or_else(|| {
            EngineError::Unavailable(
                "this cairnd has no remote store: the operator starts it with --remote s3://BUCKET/PREFIX".into(),
            )
        })
    }

    /// Pushes ready snapshot `reference` of `account` to the remote store.
    pub async fn push_snapshot(
        self: &Arc<Self>,
        account: &str,
        reference: &str,
    ) -> Result<PushInfo> {
        let remote = self.remote()?;
        let started = Instant::now();
        let src = self.archive_source(account, reference, "pushed").await?;
        let id = src.id.clone();
        let final_key = remote.recipe_key(account, id.as_str());
        match remote.store.head(&final_key).await {
            Ok(_) => {
                tracing::info!(snapshot = %id, "snapshot already pushed");
                return Ok(PushInfo {
                    snapshot: id.to_string(),
                    already_pushed: true,
                    chunks: 0,
                    uploaded_chunks: 0,
                    bytes: 0,
                    uploaded_bytes: 0,
                    seconds: started.elapsed().as_secs_f64(),
                });
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_failed("looked for the snapshot's recipe", &e)),
        }

        let up = self.upload(&remote, account, src).await?;
        let (doc, bytes, hash, refs) = (up.doc, up.bytes, up.hash, up.refs);
        let (mut uploaded_chunks, mut uploaded_bytes) = (up.uploaded_chunks, up.uploaded_bytes);

        // The recipe, last: under a temporary key, then its final one.
        let recipe = Recipe {
            format: Recipe::FORMAT.into(),
            version: Recipe::VERSION,
            cairn_version: env!("CARGO_PKG_VERSION").into(),
            snapshot: id.to_string(),
            pushed_at: chrono::Utc::now(),
            chunking: Chunking::default(),
            archive: doc,
            stream_bytes: bytes,
            stream_blake3: hash,
            chunks: refs,
        };
        let json = serde_json::to_vec_pretty(&recipe)
            .map_err(|e| EngineError::failed("cannot encode the recipe", e))?;
        let temp = remote.temp_recipe_key(account, id.as_str());
        remote
            .store
            .put(&temp, PutPayload::from(json))
            .await
            .map_err(|e| store_failed("uploaded the recipe", &e))?;
        crate::crash_point("push-before-recipe");
        let moved = remote.store.copy(&temp, &final_key).await;
        let _ = remote.store.delete(&temp).await;
        moved.map_err(|e| store_failed("published the recipe", &e))?;
        // A chunk this push found in the store and did not upload may have been collected
        // since (the last snapshot using it deleted on another host): the recipe is
        // published now, so no later collection takes its chunks; any missing are uploaded
        // again from the snapshot (the same cuts give the same chunks).
        let mut reused = up.reused;
        for _ in 0..3 {
            let missing = remote.missing_chunks(account, &reused).await?;
            if missing.is_empty() {
                break;
            }
            tracing::warn!(snapshot = %id, missing = missing.len(), "chunks collected under a push: uploading them again");
            let src = self.archive_source(account, id.as_str(), "pushed").await?;
            let again = self.upload(&remote, account, src).await?;
            uploaded_chunks += again.uploaded_chunks;
            uploaded_bytes += again.uploaded_bytes;
            reused = again.reused;
        }
        let info = PushInfo {
            snapshot: id.to_string(),
            already_pushed: false,
            chunks: recipe.chunks.len() as u64,
            uploaded_chunks,
            bytes,
            uploaded_bytes,
            seconds: started.elapsed().as_secs_f64(),
        };
        tracing::info!(snapshot = %id, chunks = info.chunks, uploaded_chunks, uploaded_bytes, "snapshot pushed");
        Ok(info)
    }

    /// Cuts `src`'s archive stream into chunks and uploads those the store lacks.
    async fn upload(
        self: &Arc<Self>,
        remote: &Arc<Remote>,
        account: &str,
        src: crate::share::ArchiveSource,
    ) -> Result<Uploaded> {
        let id = src.id.clone();
        // The stream, cut on a blocking thread; chunks flow to the uploads below.
        let (tx, rx) = mpsc::channel::<Chunk>(CONCURRENT_UPLOADS * 2);
        let engine = Arc::clone(self);
        let handle = tokio::runtime::Handle::current();
        let cutter = tokio::task::spawn_blocking(move || {
            let (doc, doc_bytes) = src.doc()?;
            let mut refs = Vec::new();
            let chunker = Chunker::new(|c: Chunk| {
                refs.push(ChunkRef {
                    hash: c.hash.clone(),
                    bytes: c.data.len() as u64,
                });
                tx.blocking_send(c).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped")
                })
            });
            let still_there = || engine.still_ready(&handle, &src.id);
            let (chunker, _) = src.write_tar(&doc_bytes, chunker, still_there)?;
            let (bytes, hash) = chunker.finish()?;
            Ok::<_, std::io::Error>((doc, bytes, hash, refs))
        });

        // Uploads: each chunk once, and only when the store lacks it; within the account's
        // share of the store (what it holds there already, counted once at the start).
        let room = remote.room(account).await?;
        let spent = std::sync::atomic::AtomicU64::new(0);
        let fresh = std::sync::Mutex::new(Vec::new());
        let seen = std::sync::Mutex::new(HashSet::new());
        let reused = std::sync::Mutex::new(Vec::new());
        // Set by the first failure: no chunk is taken after it, and the uploads under way
        // end (so that what they put is known and taken back below).
        let stop = std::sync::atomic::AtomicBool::new(false);
        let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
        let chunks =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
            )
            .take_while(|_| std::future::ready(!stopped()));
        let uploaded = chunks
            .map(|c| {
                let first = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(c.hash.clone());
                let remote = Arc::clone(remote);
                let account = account.to_string();
                let (reused, spent, fresh, stop) = (&reused, &spent, &fresh, &stop);
                let fail = move |e: EngineError| {
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    Err(e)
                };
                async move {
                    if !first || stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return Ok::<u64, EngineError>(0);
                    }
                    let key = remote.chunk_key(&account, &c.hash);
                    match remote.store.head(&key).await {
                        Ok(_) => {
                            reused
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .push(c.hash.clone());
                            return Ok(0);
                        }
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return fail(store_failed("looked for a chunk", &e)),
                    }
                    let len = c.data.len() as u64;
                    let total = spent.fetch_add(len, std::sync::atomic::Ordering::Relaxed) + len;
                    if let Some(room) = room {
                        if total > room {
                            return fail(remote.over_quota());
                        }
                    }
                    if let Err(e) = remote.store.put(&key, PutPayload::from(c.data)).await {
                        return fail(store_failed("uploaded a chunk", &e));
                    }
                    fresh
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(key);
                    Ok(len)
                }
            })
            .buffer_unordered(CONCURRENT_UPLOADS)
            // Every upload under way ends (no short cut): the first error is kept.
            .fold(Ok((0u64, 0u64)), |acc, r| async move {
                match (acc, r) {
                    (Ok((n, b)), Ok(len)) if len > 0 => Ok((n + 1, b + len)),
                    (Ok(acc), Ok(_)) => Ok(acc),
                    (Ok(_), Err(e)) | (Err(e), _) => Err(e),
                }
            })
            .await;
        if uploaded.is_err() {
            // (The cutting stops: its channel is gone.) Take back what this push uploaded: a
            // refused push leaves no chunk behind (one another push skipped meanwhile is
            // uploaded again by that push once its recipe is out).
            let fresh = fresh
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for key in fresh {
                let _ = remote.store.delete(&key).await;
            }
        }
        let cut = cutter
            .await
            .map_err(|e| EngineError::failed("the push's reading task ended abnormally", e))?;
        let (uploaded_chunks, uploaded_bytes) = uploaded?;
        let (doc, bytes, hash, refs) = cut.map_err(|e| {
            tracing::warn!(snapshot = %id, error = %e, "push failed while reading the snapshot");
            EngineError::Conflict(format!(
                "snapshot {id} could not be read to the end for the push (was it deleted meanwhile?): nothing was published"
            ))
        })?;

        Ok(Uploaded {
            doc,
            bytes,
            hash,
            refs,
            uploaded_chunks,
            uploaded_bytes,
            reused: reused
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        })
    }
}

/// What [`Engine::upload`] did.
struct Uploaded {
    doc: crate::share::ArchiveDoc,
    bytes: u64,
    hash: String,
    refs: Vec<ChunkRef>,
    uploaded_chunks: u64,
    uploaded_bytes: u64,
    /// Chunks found in the store, not uploaded.
    reused: Vec<String>,
}

impl Remote {
    /// Which of `account`'s chunks `hashes` the store lacks.
    pub(super) async fn missing_chunks(
        &self,
        account: &str,
        hashes: &[String],
    ) -> Result<Vec<String>> {
        let found = futures_util::stream::iter(hashes.iter().cloned())
            .map(|h| async move {
                match self.store.head(&self.chunk_key(account, &h)).await {
                    Ok(_) => Ok(None),
                    Err(object_store::Error::NotFound { .. }) => Ok(Some(h)),
                    Err(e) => Err(store_failed("looked for a chunk", &e)),
                }
            })
            .buffer_unordered(CONCURRENT_UPLOADS)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(found.into_iter().flatten().collect())
    }
}

impl Remote {
    /// How many more bytes `account` may put in the store (`None`: no limit), from what it
    /// holds there now (chunks, recipes, link archives).
    pub(super) async fn room(&self, account: &str) -> Result<Option<u64>> {
        let Some(cap) = self.max_account_bytes else {
            return Ok(None);
        };
        let used: u64 = self
            .store
            .list(Some(&self.key(&[account])))
            .map_ok(|m| m.size)
            .try_fold(0u64, |sum, n| async move { Ok(sum + n) })
            .await
            .map_err(|e| store_failed("measured the account's share", &e))?;
        Ok(Some(cap.saturating_sub(used)))
    }

    /// The error of an upload past the account's share of the store.
    pub(super) fn over_quota(&self) -> EngineError {
        EngineError::Limit(format!(
            "your account's share of the remote store ({}) is full: delete pushed snapshots you no longer need ('cairn snapshot delete --remote SNAP'), or ask the operator to raise cairnd --max-account-remote-size",
            cairn_types::format_bytes(self.max_account_bytes.unwrap_or(0))
        ))
    }
}
