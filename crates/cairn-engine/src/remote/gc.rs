//! Deleting from the store: a pushed snapshot's recipe removed (it leaves the catalog and
//! can no longer be pulled; hosts that pulled it keep their copy), then the account's
//! chunks no recipe names collected.
//!
//! Collection races with pushes on other hosts, which skip chunks the store already has:
//! a chunk is collected only when it is older than the grace period (`cairnd --remote-gc-grace`, 1 h by default: a push in flight uploads its
//! new chunks before its recipe), and a push checks after publishing its recipe that every
//! chunk it found is still there, uploading any collected meanwhile again (see `push`).

use std::collections::HashSet;

use futures_util::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};

use cairn_types::remote::RemoteDeleteInfo;

use super::{store_failed, Remote};
use crate::{Engine, Result};

/// Chunk deletions in flight at once.
const CONCURRENT_DELETES: usize = 8;

impl Engine {
    /// Deletes `account`'s pushed snapshot `reference` (id, or name when one pushed
    /// snapshot has it) from the store, then the chunks no other recipe of the account
    /// names.
    pub async fn delete_remote_snapshot(
        &self,
        account: &str,
        reference: &str,
    ) -> Result<RemoteDeleteInfo> {
        let remote = self.remote()?;
        let recipe = self.find_recipe(&remote, account, reference).await?;
        let key = remote.recipe_key(account, &recipe.snapshot);
        match remote.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_failed("deleted the recipe", &e)),
        }
        tracing::info!(snapshot = %recipe.snapshot, "pushed snapshot deleted from the store");
        let (chunks, bytes) = self.collect_chunks(&remote, account).await?;
        Ok(RemoteDeleteInfo {
            snapshot: recipe.snapshot,
            collected_chunks: chunks,
            collected_bytes: bytes,
        })
    }

    /// Deletes `account`'s chunks that no recipe names and that are older than the grace
    /// period; returns how many and their bytes.
    async fn collect_chunks(&self, remote: &Remote, account: &str) -> Result<(u64, u64)> {
        let named: HashSet<String> = self
            .recipes(remote, account)
            .await?
            .into_iter()
            .flat_map(|r| r.chunks.into_iter().map(|c| c.hash))
            .collect();
        let grace = chrono::Duration::from_std(remote.gc_grace).unwrap_or(chrono::Duration::MAX);
        let cutoff = chrono::Utc::now() - grace;
        let chunks: Vec<_> = remote
            .store
            .list(Some(&remote.key(&[account, "chunks"])))
            .try_collect()
            .await
            .map_err(|e| store_failed("listed the chunks", &e))?;
        let unnamed: Vec<_> = chunks
            .into_iter()
            .filter(|m| {
                m.location.filename().is_some_and(|h| !named.contains(h))
                    && m.last_modified <= cutoff
            })
            .collect();
        let bytes = unnamed.iter().map(|m| m.size).sum();
        let count = unnamed.len() as u64;
        futures_util::stream::iter(unnamed)
            .map(|m| async move {
                match remote.store.delete(&m.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                    Err(e) => Err(store_failed("deleted a chunk", &e)),
                }
            })
            .buffer_unordered(CONCURRENT_DELETES)
            .try_collect::<Vec<()>>()
            .await?;
        tracing::info!(account, chunks = count, bytes, "unnamed chunks collected");
        Ok((count, bytes))
    }
}
