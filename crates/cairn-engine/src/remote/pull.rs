//! The catalog and pulls: an account's recipes listed; a pulled snapshot rebuilt from
//! its chunks (fetched a few at a time, in order, each checked against its hash) and
//! imported through `share`'s import as the same snapshot id, so it passes every check an
//! uploaded archive does and leaves nothing when refused (or when cairnd dies midway:
//! recovery removes `uploading` snapshots). Forks and `up --from-snapshot` pull a
//! snapshot this host lacks.

use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::mpsc;

use cairn_db::SnapshotRecord;
use cairn_types::api::{RemoteSnapshotInfo, SnapshotInfo};
use cairn_types::{looks_like_id, SnapshotId};

use super::recipe::{Recipe, MAX_RECIPE_BYTES};
use super::{store_failed, Remote};
use crate::{Engine, EngineError, Result};

/// Chunk downloads in flight at once.
const CONCURRENT_DOWNLOADS: usize = 4;

impl Engine {
    /// The snapshots `account` pushed, oldest first.
    pub async fn list_remote_snapshots(&self, account: &str) -> Result<Vec<RemoteSnapshotInfo>> {
        let remote = self.remote()?;
        let mut out = Vec::new();
        for recipe in self.recipes(&remote, account).await? {
            let Ok(id) = recipe.snapshot.parse::<SnapshotId>() else {
                continue;
            };
            let row = id.clone();
            let local = self
                .db(move |db| db.snapshot(&row))
                .await?
                .is_some_and(|s| {
                    s.account == account && s.state != cairn_types::SnapshotState::Deleted
                });
            let m = &recipe.archive.manifest;
            let Ok(runtime) = m.runtime.parse() else {
                continue;
            };
            out.push(RemoteSnapshotInfo {
                id: recipe.snapshot.clone(),
                name: m.name.clone(),
                runtime,
                stateful: m.stateful,
                size_bytes: recipe.archive.sizes.data_bytes(),
                chunks: recipe.chunks.len() as u64,
                created_at: chrono::DateTime::parse_from_rfc3339(&m.created_at)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .unwrap_or(recipe.pushed_at),
                pushed_at: recipe.pushed_at,
                local,
            });
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Every readable recipe of `account` (an unreadable one is logged and left out).
    pub(super) async fn recipes(&self, remote: &Remote, account: &str) -> Result<Vec<Recipe>> {
        let metas: Vec<_> = remote
            .store
            .list(Some(&remote.recipes_key(account)))
            .try_collect()
            .await
            .map_err(|e| store_failed("listed the snapshots", &e))?;
        let mut out = Vec::new();
        for meta in metas {
            let Some(id) = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|f| f.parse::<SnapshotId>().ok())
            else {
                continue;
            };
            match read_recipe(remote, account, &id).await {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::warn!(snapshot = %id, error = %e, "unreadable recipe left out of the catalog")
                }
            }
        }
        Ok(out)
    }

    /// A ready snapshot of `account` to fork: this host's, or else (with a remote) the
    /// one pulled from the remote.
    pub(crate) async fn ready_or_pulled(
        &self,
        account: &str,
        reference: &str,
    ) -> Result<SnapshotRecord> {
        match self.ready_snapshot(account, reference).await {
            Err(EngineError::NotFound(m)) if self.remote.is_some() => {
                let engine = self
                    .me
                    .upgrade()
                    .ok_or_else(|| EngineError::Unavailable("cairnd is stopping".into()))?;
                let remote = self.remote()?;
                let _one_pull = remote.pulls.lock().await;
                // Another fork may have pulled it meanwhile.
                if let Ok(s) = self.ready_snapshot(account, reference).await {
                    return Ok(s);
                }
                match engine.pull_locked(&remote, account, reference).await {
                    Ok(info) => self.ready_snapshot(account, &info.id).await,
                    Err(EngineError::NotFound(_)) => Err(EngineError::NotFound(format!(
                        "{m} (the remote has none of that name either: 'cairn snapshot list --remote')"
                    ))),
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Pulls `account`'s pushed snapshot `reference` (its id, or its name when one pushed
    /// snapshot has it) into this host, as the same id.
    pub async fn pull_snapshot(
        self: &Arc<Self>,
        account: &str,
        reference: &str,
    ) -> Result<SnapshotInfo> {
        let remote = self.remote()?;
        let _one_pull = remote.pulls.lock().await;
        self.pull_locked(&remote, account, reference).await
    }

    /// `account`'s recipe of pushed snapshot `reference` (its id, or its name when one
    /// pushed snapshot has it).
    pub(super) async fn find_recipe(
        &self,
        remote: &Remote,
        account: &str,
        reference: &str,
    ) -> Result<Recipe> {
        let not_found = || {
            EngineError::NotFound(format!(
                "no pushed snapshot '{}': list them with 'cairn snapshot list --remote'",
                reference.chars().take(100).collect::<String>()
            ))
        };
        let recipe = match reference.parse::<SnapshotId>() {
            Ok(id) => read_recipe(remote, account, &id)
                .await
                .map_err(|e| match e {
                    ReadError::Missing => not_found(),
                    ReadError::Store(e) => e,
                    ReadError::Bad(why) => corrupt(&id, &why),
                })?,
            Err(_) if looks_like_id(reference) => return Err(not_found()),
            Err(_) => {
                let mut named: Vec<Recipe> = self
                    .recipes(remote, account)
                    .await?
                    .into_iter()
                    .filter(|r| r.archive.manifest.name == reference)
                    .collect();
                match named.len() {
                    0 => return Err(not_found()),
                    1 => named.remove(0),
                    n => {
                        return Err(EngineError::Conflict(format!(
                            "{n} pushed snapshots are named '{reference}': give the id ('cairn snapshot list --remote')"
                        )))
                    }
                }
            }
        };
        Ok(recipe)
    }

    /// [`Engine::pull_snapshot`], with the pull lock held.
    async fn pull_locked(
        self: &Arc<Self>,
        remote: &Arc<Remote>,
        account: &str,
        reference: &str,
    ) -> Result<SnapshotInfo> {
        let recipe = self.find_recipe(remote, account, reference).await?;
        let id: SnapshotId = recipe
            .snapshot
            .parse()
            .map_err(|_| EngineError::Internal("a checked recipe has a bad id".into()))?;
        let row = id.clone();
        if let Some(s) = self.db(move |db| db.snapshot(&row)).await? {
            return Err(EngineError::Conflict(if s.account == account {
                format!("snapshot {id} is on this host already ({}): fork it, or delete it first to pull it again", s.state)
            } else {
                format!("snapshot {id} cannot be pulled into this host (its id is taken)")
            }));
        }

        // The chunks, in order, each checked; a bad one cuts the stream (the import then
        // refuses it and removes what it made) and says why here.
        let (tx, rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(CONCURRENT_DOWNLOADS);
        let failure: Arc<Mutex<Option<EngineError>>> = Arc::default();
        let fetch = {
            let (remote, failure, account) = (
                Arc::clone(remote),
                Arc::clone(&failure),
                account.to_string(),
            );
            let (chunks, sid) = (recipe.chunks.clone(), id.clone());
            async move {
                let mut stream = futures_util::stream::iter(chunks)
                    .map(|c| {
                        let (remote, account, sid) =
                            (Arc::clone(&remote), account.clone(), sid.clone());
                        async move {
                            let key = remote.chunk_key(&account, &c.hash);
                            let data = match remote.store.get(&key).await {
                                Ok(got) => got.bytes().await,
                                Err(e) => Err(e),
                            };
                            let data = data.map_err(|e| match e {
                                object_store::Error::NotFound { .. } => {
                                    corrupt(&sid, "a chunk it lists is missing from the store")
                                }
                                e => store_failed("downloaded a chunk", &e),
                            })?;
                            if data.len() as u64 != c.bytes
                                || blake3::hash(&data).to_hex().as_str() != c.hash
                            {
                                tracing::warn!(chunk = %c.hash, "a pulled chunk does not match its hash");
                                return Err(corrupt(&sid, "a chunk does not match its hash"));
                            }
                            Ok(data.to_vec())
                        }
                    })
                    .buffered(CONCURRENT_DOWNLOADS);
                while let Some(item) = stream.next().await {
                    match item {
                        Ok(data) => {
                            if tx.send(Ok(data)).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            *failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                            let _ = tx
                                .send(Err(std::io::Error::other("the pull was cut short")))
                                .await;
                            return;
                        }
                    }
                }
            }
        };
        tokio::spawn(fetch);
        let imported = self
            .import_stream(account.to_string(), None, rx, id.clone())
            .await;
        if let Some(e) = failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Err(e);
        }
        let info = imported?;
        tracing::info!(snapshot = %id, chunks = recipe.chunks.len(), "snapshot pulled");
        Ok(info)
    }
}

/// Why a recipe could not be read.
enum ReadError {
    Missing,
    Store(EngineError),
    Bad(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Missing => f.write_str("missing"),
            ReadError::Store(e) => write!(f, "{e}"),
            ReadError::Bad(why) => f.write_str(why),
        }
    }
}

/// Reads and checks `account`'s recipe of `id`.
async fn read_recipe(
    remote: &Remote,
    account: &str,
    id: &SnapshotId,
) -> std::result::Result<Recipe, ReadError> {
    let key = remote.recipe_key(account, id.as_str());
    let got = match remote.store.get(&key).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Err(ReadError::Missing),
        Err(e) => return Err(ReadError::Store(store_failed("read a recipe", &e))),
    };
    if got.meta.size > MAX_RECIPE_BYTES as u64 {
        return Err(ReadError::Bad("its recipe is too large".into()));
    }
    let data = got
        .bytes()
        .await
        .map_err(|e| ReadError::Store(store_failed("read a recipe", &e)))?;
    Recipe::decode(&data, id).map_err(ReadError::Bad)
}

/// The error of a remote copy that cannot be trusted.
fn corrupt(id: &SnapshotId, why: &str) -> EngineError {
    EngineError::Conflict(format!(
        "the remote copy of {id} is corrupt ({why}): nothing was pulled; push it again from a host that has it"
    ))
}
