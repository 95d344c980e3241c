//! Image pulls from OCI distribution registries (`cairn image pull REF`, and `up --image
//! REF` when the account has no image pulled from REF).
//!
//! A pull resolves the reference to one image manifest (an index or manifest list picks
//! linux/amd64), downloads into the pool's blob cache (`cache`) only the blobs it lacks,
//! then unpacks through the same code as an archive import (`cairn_images`: whiteouts,
//! in-tree paths only, no device nodes, the decoded size cap) into a fresh image subvolume,
//! registered like an import: row first (not ready), tree, row ready last. Any failure
//! removes the row and the tree, and the blob cache keeps only blobs some image names.
//!
//! Where a pull may connect is the operator's (`access`); the protocol is `client`.

mod access;
mod cache;
mod client;
mod logins;
mod reference;

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;

use cairn_types::api::{ImageInfo, PullReport};
use cairn_types::ProgressSink;

pub(crate) use access::is_public;
pub use access::RegistryAccess;
pub use reference::looks_like_reference;

use self::cache::{sha256, BlobCache};
use self::client::{Registry, MAX_DOC_BYTES};
use self::reference::Reference;
use crate::images::{Principal, StoredImageConfig};
use crate::{Engine, EngineError, Result};

/// Most layers an image may have (Docker's own limit is 127 for overlay's sake).
const MAX_LAYERS: usize = 128;
/// How deep indexes may nest.
const MAX_INDEX_DEPTH: usize = 4;
/// Layers downloaded at once.
const PARALLEL_DOWNLOADS: usize = 3;

/// A descriptor, as manifests and indexes write them.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Desc {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Clone, Debug, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

/// A manifest or an index: whichever fields it has.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    #[serde(default)]
    media_type: String,
    #[serde(default)]
    manifests: Option<Vec<Desc>>,
    #[serde(default)]
    config: Option<Desc>,
    #[serde(default)]
    layers: Option<Vec<Desc>>,
}

/// The image a reference resolved to.
struct Resolved {
    manifest_digest: String,
    manifest_size: u64,
    config: Desc,
    layers: Vec<Desc>,
}

impl Engine {
    /// Pulls `reference` from its registry as image `name` (default: the repository's last
    /// component and the tag) of the caller's account, reporting each layer's download to
    /// `progress`.
    pub async fn pull_image(
        self: &Arc<Self>,
        who: Principal<'_>,
        reference: &str,
        name: Option<&str>,
        progress: ProgressSink,
    ) -> Result<ImageInfo> {
        let reference = Reference::parse(reference)?;
        let name = name
            .map(str::to_string)
            .unwrap_or_else(|| reference.default_name());
        self.check_new_image(who, &name, false).await?;
        let (account, operator) = (who.account.to_string(), who.operator);
        self.run_to_end(move |engine| async move {
            let result = engine.pull(&account, &name, &reference, &progress).await;
            if result.is_err() {
                // Blobs this pull stored that no image names go (a retry downloads them again).
                engine.sweep_blob_cache().await;
            }
            let (record, report) = result?;
            let who = Principal {
                account: &account,
                operator,
            };
            let mut info = engine.image_info(&record, who);
            info.pull = Some(report);
            Ok(info)
        })
        .await
    }

    async fn pull(
        &self,
        account: &str,
        name: &str,
        reference: &Reference,
        progress: &ProgressSink,
    ) -> Result<(cairn_db::ImageRecord, PullReport)> {
        let creds = self
            .registry_credentials(account, &reference.registry)
            .await?;
        let registry = Registry::new(reference, &self.cfg.registry, creds)?;
        let cache = BlobCache::new(self.storage.blob_cache_dir());
        let _shared = self.blob_cache.read().await;
        let resolved = self.resolve(&registry, reference, &cache).await?;
        if !cache.has(&resolved.config.digest, resolved.config.size) {
            let bytes = registry.small_blob(&resolved.config.digest).await?;
            cache
                .put_doc(&resolved.config.digest, bytes, "the image configuration")
                .await?;
        }
        let total = resolved.layers.len();
        let missing: Vec<Desc> = resolved
            .layers
            .iter()
            .filter(|l| !cache.has(&l.digest, l.size))
            .cloned()
            .collect();
        let downloaded: u64 = stream::iter(missing.clone().into_iter().map(|layer| {
            // The phase scripts see: `layer sha256:` and the digest's first 12 digits.
            let label = format!(
                "layer {}",
                layer.digest.chars().take(19).collect::<String>()
            );
            let (cache, registry) = (&cache, &registry);
            async move {
                cache
                    .download(registry, &layer.digest, layer.size, &label, progress)
                    .await
            }
        }))
        .buffer_unordered(PARALLEL_DOWNLOADS)
        .try_fold(0u64, |sum, n| async move { Ok(sum + n) })
        .await?;
        tracing::info!(reference = %reference, layers = total, fetched = missing.len(), downloaded, "image blobs in the cache");
        let mut blobs = vec![
            resolved.manifest_digest.clone(),
            resolved.config.digest.clone(),
        ];
        blobs.extend(resolved.layers.iter().map(|l| l.digest.clone()));
        let src = crate::images::Source::pulled(
            cache.root().to_path_buf(),
            reference.to_string(),
            (resolved.manifest_digest.clone(), resolved.manifest_size),
            blobs,
        );
        let record = self.import(account, name, false, &src).await?;
        let report = PullReport {
            reference: reference.to_string(),
            digest: resolved.manifest_digest,
            layers: total as u64,
            layers_downloaded: missing.len() as u64,
            downloaded_bytes: downloaded,
        };
        Ok((record, report))
    }

    /// Follows indexes down to the linux/amd64 image manifest and stores it in the cache.
    async fn resolve(
        &self,
        registry: &Registry,
        reference: &Reference,
        cache: &BlobCache,
    ) -> Result<Resolved> {
        let invalid = |why: String| {
            EngineError::InvalidArgument(format!(
                "the registry's answer for {reference} is not a valid image: {why}"
            ))
        };
        let (mut bytes, mut media_type) = registry.manifest(reference.manifest_ref()).await?;
        if let Some(pinned) = &reference.digest {
            if &sha256(&bytes) != pinned {
                return Err(invalid(format!("its manifest does not hash to {pinned}")));
            }
        }
        for _ in 0..=MAX_INDEX_DEPTH {
            let doc: Doc = serde_json::from_slice(&bytes)
                .map_err(|e| invalid(format!("its manifest is not JSON ({e})")))?;
            if !doc.media_type.is_empty() {
                media_type = doc.media_type.clone();
            }
            if let Some(manifests) = doc.manifests {
                let chosen = choose_platform(&manifests).ok_or_else(|| {
                    let have: Vec<String> = manifests
                        .iter()
                        .filter_map(|m| m.platform.as_ref())
                        .map(|p| format!("{}/{}", p.os, p.architecture))
                        .collect();
                    EngineError::InvalidArgument(format!(
                        "{reference} has no image for linux/amd64 (it has: {}): pull an image built for this host",
                        have.join(", ")
                    ))
                })?;
                check_desc(&chosen, reference)?;
                if chosen.size > MAX_DOC_BYTES as u64 {
                    return Err(invalid("an index entry claims a huge manifest".into()));
                }
                let (next, next_type) = registry.manifest(&chosen.digest).await?;
                if sha256(&next) != chosen.digest || next.len() as u64 != chosen.size {
                    return Err(invalid(format!(
                        "the manifest {} does not match its digest or size",
                        chosen.digest
                    )));
                }
                bytes = next;
                media_type = if chosen.media_type.is_empty() {
                    next_type
                } else {
                    chosen.media_type
                };
                continue;
            }
            let (Some(config), Some(layers)) = (doc.config, doc.layers) else {
                return Err(invalid(format!(
                    "its manifest (media type '{media_type}') has neither layers nor manifests (Docker schema 1 images are not supported: push the image again with a current tool)"
                )));
            };
            if layers.is_empty() || layers.len() > MAX_LAYERS {
                return Err(invalid(format!(
                    "it has {} layers (1 to {MAX_LAYERS} are accepted)",
                    layers.len()
                )));
            }
            check_desc(&config, reference)?;
            let image_config = [
                "",
                "application/vnd.oci.image.config.v1+json",
                "application/vnd.docker.container.image.v1+json",
            ];
            if !image_config.contains(&config.media_type.as_str()) {
                return Err(EngineError::InvalidArgument(format!(
                    "{reference} is not a container image (its configuration is '{}'; an artifact such as a Helm chart or a signature?): pull a container image",
                    config.media_type.chars().take(100).collect::<String>()
                )));
            }
            if config.size > MAX_DOC_BYTES as u64 {
                return Err(invalid("its configuration is larger than 4 MiB".into()));
            }
            let mut sum: u64 = 0;
            for (i, l) in layers.iter().enumerate() {
                check_desc(l, reference)?;
                let mt = &l.media_type;
                if !mt.contains("tar") || mt.contains("encrypted") {
                    return Err(invalid(format!(
                        "layer {} has media type '{mt}', which Cairn cannot unpack",
                        i + 1
                    )));
                }
                sum = sum.saturating_add(l.size);
            }
            if sum > self.cfg.max_image_bytes {
                return Err(EngineError::TooLarge(format!(
                    "{reference} has {} of compressed layers, more than this host's image size cap of {}: pull a smaller image (the operator sets the cap with 'cairnd --max-image-size')",
                    cairn_types::format_bytes(sum),
                    cairn_types::format_bytes(self.cfg.max_image_bytes)
                )));
            }
            let manifest_digest = sha256(&bytes);
            let manifest_size = bytes.len() as u64;
            cache
                .put_doc(&manifest_digest, bytes, "the image manifest")
                .await?;
            return Ok(Resolved {
                manifest_digest,
                manifest_size,
                config,
                layers,
            });
        }
        Err(invalid("its indexes nest too deeply".into()))
    }

    /// The image `up --image IMAGE` means: an image name is looked up as ever; a registry
    /// reference (it holds `/`, `:` or `@`, which no image name does) is the account's
    /// newest image pulled from it, pulled now when there is none.
    pub(crate) async fn image_or_pull(
        &self,
        account: &str,
        image: &str,
    ) -> Result<cairn_db::ImageRecord> {
        if !looks_like_reference(image) {
            return self.find_image(account, image).await;
        }
        let reference = Reference::parse(image)?.to_string();
        let who = account.to_string();
        let mine = self.db(move |db| db.list_images(&who)).await?;
        if let Some(found) = mine
            .into_iter()
            .filter(|i| i.account == account && i.source == reference)
            .max_by_key(|i| i.created_at)
        {
            return Ok(found);
        }
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| EngineError::Unavailable("cairnd is shutting down".into()))?;
        let who = Principal {
            account,
            operator: false,
        };
        let info = me
            .pull_image(who, image, None, ProgressSink::none())
            .await
            .map_err(|e| match e {
                EngineError::Conflict(m) => EngineError::Conflict(format!(
                    "{m} (pulling {reference} for this sandbox: pull it under another name with 'cairn image pull {reference} --name NAME', then 'cairn up --image NAME')"
                )),
                other => other,
            })?;
        let id = info.id;
        self.db(move |db| db.image(&id))
            .await?
            .ok_or_else(|| EngineError::Internal("pulled image vanished".into()))
    }

    /// Removes the cache's blobs that no image row names, waiting for pulls in progress.
    pub(crate) async fn sweep_blob_cache(&self) {
        let _alone = self.blob_cache.write().await;
        let rows = match self.db(|db| db.all_images()).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "blob cache not swept");
                return;
            }
        };
        let keep: HashSet<String> = rows
            .iter()
            .filter_map(|r| serde_json::from_str::<StoredImageConfig>(&r.config_json).ok())
            .flat_map(|c| c.blobs)
            .collect();
        let cache = BlobCache::new(self.storage.blob_cache_dir());
        let freed = tokio::task::spawn_blocking(move || cache.gc(&keep))
            .await
            .unwrap_or(0);
        if freed > 0 {
            tracing::info!(freed, "blob cache swept");
        }
    }
}

/// The index entry for linux/amd64, or the only entry without a platform.
fn choose_platform(manifests: &[Desc]) -> Option<Desc> {
    manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .or_else(|| match manifests {
            [only] if only.platform.is_none() => Some(only),
            _ => None,
        })
        .cloned()
}

/// Refuses a descriptor whose digest is not `sha256:` and 64 lowercase hex digits (which
/// also keeps it safe as a file name).
fn check_desc(d: &Desc, reference: &Reference) -> Result<()> {
    let ok = d.digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "{reference} names a blob by '{}': only sha256 digests are pulled",
            d.digest.chars().take(80).collect::<String>()
        )))
    }
}
