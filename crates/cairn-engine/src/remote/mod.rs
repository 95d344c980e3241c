//! The remote tier: snapshots pushed to an S3-compatible object store as content-defined
//! chunks, listed and pulled by any host that shares the bucket (docs/sharing.md; the
//! recipe format in docs/formats.md).
//!
//! What is stored is a snapshot's archive stream, uncompressed (the same stream an export
//! compresses: its first document, the tree, the memory checkpoint, the checksums), cut
//! by `chunker` into content-defined chunks named by their BLAKE3 hash, and a recipe
//! that lists them, written last. Each account has a prefix of its own in the bucket:
//!
//! ```text
//! <prefix>/<account>/chunks/<blake3>         a chunk (uploaded once, shared by pushes)
//! <prefix>/<account>/snapshots/<id>.json     a recipe (written last: a half push is invisible)
//! <prefix>/<account>/tmp/<id>.<nonce>.json   a recipe on its way to its final key
//! ```
//!
//! Modules: `recipe` (the format), `chunker` (the cuts), `push`, `pull` (which rebuilds
//! the stream from verified chunks and imports it through `share`'s import, with every
//! check an upload gets). Not for: the HTTP routes (cairn-api).

mod auto;
mod chunker;
mod gc;
mod links;
mod pull;
mod push;
mod recipe;

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use crate::{EngineError, Result};

/// Where the remote tier is (`cairnd --remote`).
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// The S3-compatible endpoint (`http://127.0.0.1:9000`); `None`: `AWS_ENDPOINT_URL`,
    /// or AWS itself.
    pub endpoint: Option<String>,
    /// Push every snapshot that becomes ready (taken or imported; not a pause's automatic
    /// ones) in the background (see `auto`).
    pub push_ready: bool,
    /// How old a chunk no pushed snapshot names must be before a deletion collects it
    /// (see `gc`; cairnd's default is an hour).
    pub gc_grace: Duration,
    /// Most bytes one account may keep in the store (chunks, recipes, link archives);
    /// `None`: no limit.
    pub max_account_bytes: Option<u64>,
}

/// How long one request to the store may take before it is retried or fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the check at start-up may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A connected store.
pub(crate) struct Remote {
    store: Arc<dyn ObjectStore>,
    /// The same store, for pre-signed URLs (store links).
    signer: Arc<object_store::aws::AmazonS3>,
    /// The key prefix (may be empty).
    prefix: Vec<String>,
    /// `s3://bucket/prefix`, for messages to the operator.
    url: String,
    /// Held by each pull: two forks of a snapshot this host lacks pull it once.
    pulls: tokio::sync::Mutex<()>,
    /// How old an unnamed chunk must be to be collected.
    gc_grace: Duration,
    /// Most bytes one account may keep in the store.
    max_account_bytes: Option<u64>,
    /// With `push_ready`: the background pushes' queue (see `auto`).
    pub(crate) auto: Option<auto::Queue>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

impl Remote {
    /// Connects and checks that the bucket answers (a listing of the prefix); the error
    /// says what to check.
    pub(crate) async fn connect(cfg: &RemoteConfig) -> Result<Remote> {
        let (bucket, prefix) = parse_url(&cfg.url)?;
        let endpoint = cfg
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|e| !e.is_empty());
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_connect_timeout(Duration::from_secs(5)),
            )
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..Default::default()
            });
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        if let Some(e) = &endpoint {
            builder = builder
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"));
        }
        let store = builder.build().map_err(|e| {
            EngineError::InvalidArgument(format!(
                "invalid remote {}: {e}: give --remote s3://BUCKET/PREFIX, and AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment",
                cfg.url
            ))
        })?;
        let store = Arc::new(store);
        let remote = Remote {
            store: Arc::clone(&store) as Arc<dyn ObjectStore>,
            signer: store,
            prefix,
            url: cfg.url.clone(),
            pulls: tokio::sync::Mutex::new(()),
            gc_grace: cfg.gc_grace,
            max_account_bytes: cfg.max_account_bytes,
            auto: cfg.push_ready.then(auto::Queue::default),
        };
        let probe = remote.key(&[]);
        let listed = tokio::time::timeout(
            CONNECT_TIMEOUT,
            remote.store.list_with_delimiter(Some(&probe)),
        )
        .await;
        let where_ = endpoint
            .as_deref()
            .map(|e| format!(" at {e}"))
            .unwrap_or_default();
        match listed {
            Ok(Ok(_)) => {
                tracing::info!(remote = %remote.url, endpoint = ?endpoint, "remote store reachable");
                Ok(remote)
            }
            Ok(Err(e)) => Err(EngineError::Unavailable(format!(
                "the remote {}{where_} cannot be used ({e}): check that the bucket exists, the endpoint (--remote-endpoint or AWS_ENDPOINT_URL) and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
                cfg.url
            ))),
            Err(_) => Err(EngineError::Unavailable(format!(
                "the remote {}{where_} did not answer within {}s: check the endpoint (--remote-endpoint or AWS_ENDPOINT_URL) and the network",
                cfg.url,
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The key of `parts` under the prefix.
    fn key(&self, parts: &[&str]) -> Key {
        Key::from_iter(
            self.prefix
                .iter()
                .map(String::as_str)
                .chain(parts.iter().copied()),
        )
    }

    /// Where `account`'s chunk `hash` is.
    fn chunk_key(&self, account: &str, hash: &str) -> Key {
        self.key(&[account, "chunks", hash])
    }

    /// The folder of `account`'s recipes.
    fn recipes_key(&self, account: &str) -> Key {
        self.key(&[account, "snapshots"])
    }

    /// Where `account`'s recipe of snapshot `id` is.
    fn recipe_key(&self, account: &str, id: &str) -> Key {
        self.key(&[account, "snapshots", &format!("{id}.json")])
    }

    /// Where a recipe is written before it moves to its final key.
    fn temp_recipe_key(&self, account: &str, id: &str) -> Key {
        let nonce: u64 = rand::random();
        self.key(&[account, "tmp", &format!("{id}.{nonce:016x}.json")])
    }
}

/// `s3://bucket/a/b` → (`bucket`, [`a`, `b`]).
fn parse_url(url: &str) -> Result<(String, Vec<String>)> {
    let bad = |why: &str| {
        EngineError::InvalidArgument(format!(
            "invalid remote '{}': {why}: give it as s3://BUCKET or s3://BUCKET/PREFIX",
            url.chars().take(200).collect::<String>()
        ))
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("only s3:// remotes are supported"))?;
    let mut parts = rest.split('/').filter(|p| !p.is_empty());
    let bucket = parts.next().ok_or_else(|| bad("it names no bucket"))?;
    let prefix: Vec<String> = parts.map(str::to_string).collect();
    if prefix.iter().any(|p| p == "." || p == "..") {
        return Err(bad("its prefix may not hold . or .."));
    }
    Ok((bucket.to_string(), prefix))
}

/// The error a tenant sees when the store fails (the detail, which names keys and the
/// endpoint, goes to the log).
fn store_failed(what: &str, e: &object_store::Error) -> EngineError {
    tracing::warn!(error = %e, "remote store: {what} failed");
    EngineError::Unavailable(format!(
        "the remote store failed while it {what}: try again; if it persists, the operator finds the cause in cairnd's log"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_urls_name_a_bucket_and_a_prefix() {
        let (b, p) = parse_url("s3://bkt/team/a/").expect("url");
        assert_eq!(b, "bkt");
        assert_eq!(p, vec!["team".to_string(), "a".to_string()]);
        assert_eq!(parse_url("s3://bkt").expect("url").1, Vec::<String>::new());
        assert!(parse_url("gs://bkt").is_err());
        assert!(parse_url("s3://").is_err());
        assert!(parse_url("s3://b/../x").is_err());
    }
}
