//! Image archives: reading the manifest of an OCI image layout or a
//! `docker save` archive, verifying every blob against its digest, and
//! applying the layers in order.
//!
//! Where the blobs come from (tar, directory, compression of the outer
//! archive) is [`crate::archive`]'s business; how a layer's entries land on
//! disk is [`crate::apply`]'s.

use std::io::{self, BufReader, Read};
use std::path::Path;

use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType, Os,
};
use serde::Deserialize;

use crate::apply::{apply_tar, TarKind};
use crate::archive::{Blob, BlobStore, Layout, MAX_DOC_BYTES};
use crate::dropped::DroppedNodes;
use crate::meta::Privilege;
use crate::stream::{
    decoder, sniff, BlobDigest, Budget, Compression, Counting, HashingReader, Limited,
};
use crate::{ImageConfig, ImageError, SourceKind};

/// How deep image indexes may nest (index → index → manifest).
const MAX_INDEX_DEPTH: usize = 4;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// One layer to apply.
struct LayerRef {
    /// Path of the blob inside the archive or layout.
    name: String,
    /// Digest of the blob as stored, when the manifest gives one.
    digest: Option<BlobDigest>,
    /// Size of the blob as stored, when the manifest gives one.
    size: Option<u64>,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids`).
    diff_id: Option<BlobDigest>,
}

/// One entry of a docker-save `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    layers: Vec<String>,
}

/// Where reading an image starts.
pub(crate) enum Start {
    /// The layout's own entry point: `index.json` (OCI) or `manifest.json`
    /// (docker save).
    Layout(Layout),
    /// One image manifest among the store's blobs (a registry pull's blob
    /// cache, whose blobs were verified as they were stored).
    Manifest(Box<Descriptor>),
}

/// Reads the image in `store`, applies its layers onto `dest`, and returns
/// its configuration.
pub(crate) fn import_image(
    store: &BlobStore,
    start: Start,
    kind: SourceKind,
    source: &Path,
    dest: &Path,
    options: &crate::ImportOptions,
    dropped: &mut DroppedNodes,
) -> Result<ImageConfig, ImageError> {
    let verified_blobs = matches!(start, Start::Manifest(_));
    let progress = options.progress.as_ref();
    let reader = Reader {
        store,
        source,
        verified_blobs,
        progress,
        span: std::cell::Cell::new((0, 0)),
    };
    let (config_bytes, mut layers) = match start {
        Start::Layout(Layout::Oci) => reader.oci_plan()?,
        Start::Layout(Layout::Docker) => reader.docker_plan()?,
        Start::Layout(Layout::Rootfs) => {
            return Err(reader.invalid("image", "it has neither index.json nor manifest.json"))
        }
        Start::Manifest(desc) => reader.manifest_plan(&desc)?,
    };
    let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|e| reader.invalid("image configuration", e))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != layers.len() {
        let reason = format!(
            "the manifest lists {} layers but the configuration {}",
            layers.len(),
            diff_ids.len()
        );
        return Err(reader.invalid("image configuration", reason));
    }
    for (layer, diff_id) in layers.iter_mut().zip(diff_ids) {
        let parsed = BlobDigest::parse(diff_id).ok_or_else(|| {
            reader.invalid(
                "image configuration",
                format!("unsupported layer diff id '{diff_id}'"),
            )
        })?;
        layer.diff_id = Some(parsed);
    }
    let budget = Budget::new(options.max_decoded_bytes);
    let privilege = Privilege::current();
    let total = layers.len();
    // What the layers weigh as stored (the manifest's sizes, else the blobs'), for progress.
    let mut weights = Vec::with_capacity(total);
    for layer in &layers {
        weights.push(match (progress, layer.size) {
            (None, _) => 0,
            (Some(_), Some(size)) => size,
            (Some(_), None) => reader.blob(&layer.name)?.1,
        });
    }
    let all: u64 = weights.iter().sum();
    let mut done = 0;
    for (i, layer) in layers.iter().enumerate() {
        let label = format!(
            "layer {}/{total} ({})",
            i + 1,
            layer
                .digest
                .as_ref()
                .map_or(layer.name.clone(), |d| d.to_string())
        );
        reader.span.set((done, all));
        reader
            .apply_layer(layer, &label, dest, &budget, privilege, dropped)
            .map_err(|e| budget.explain(e))?;
        done += weights[i];
        if let Some(p) = progress {
            (p.0)(done, all);
        }
        tracing::debug!(layer = %label, "layer applied");
    }
    Ok(image_config(&config, kind))
}

struct Reader<'a> {
    store: &'a BlobStore,
    source: &'a Path,
    /// The store's blobs were checked against their digests and sizes when
    /// they were stored: layers skip the hashing pass before they are
    /// applied (their diff ids are still checked as they are applied).
    verified_blobs: bool,
    /// Told how far the layers' application has come.
    progress: Option<&'a crate::ImportProgress>,
    /// (stored bytes of the layers before this one, of all of them), for `progress`.
    span: std::cell::Cell<(u64, u64)>,
}

impl Reader<'_> {
    /// OCI layout: `index.json` → (nested indexes →) manifest → config and layers.
    fn oci_plan(&self) -> Result<(Vec<u8>, Vec<LayerRef>), ImageError> {
        let layout = self.doc("oci-layout")?;
        let version: serde_json::Value =
            serde_json::from_slice(&layout).map_err(|e| self.invalid("oci-layout", e))?;
        if version
            .get("imageLayoutVersion")
            .and_then(|v| v.as_str())
            .is_none_or(|v| !v.starts_with("1."))
        {
            tracing::warn!(source = %self.source.display(), "unexpected OCI image layout version; reading it anyway");
        }
        let index: ImageIndex = serde_json::from_slice(&self.doc("index.json")?)
            .map_err(|e| self.invalid("index.json", e))?;
        let mut chosen = self.choose(index.manifests())?;
        for _ in 0..MAX_INDEX_DEPTH {
            if !is_index(chosen.media_type()) {
                break;
            }
            let what = format!("image index {}", chosen.digest());
            let bytes = self.verified_doc(&chosen, &what)?;
            let nested: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| self.invalid(&what, e))?;
            chosen = self.choose(nested.manifests())?;
        }
        if is_index(chosen.media_type()) {
            return Err(self.invalid("index.json", "image indexes nest too deeply"));
        }
        self.manifest_plan(&chosen)
    }

    /// An image manifest → its config and layers.
    fn manifest_plan(&self, chosen: &Descriptor) -> Result<(Vec<u8>, Vec<LayerRef>), ImageError> {
        let what = format!("image manifest {}", chosen.digest());
        let manifest: ImageManifest = serde_json::from_slice(&self.verified_doc(chosen, &what)?)
            .map_err(|e| self.invalid(&what, e))?;
        let config = self.verified_doc(manifest.config(), "image configuration")?;
        let layers = manifest
            .layers()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let media_type = d.media_type().to_string();
                if !media_type.contains("tar") || media_type.contains("encrypted") {
                    return Err(ImageError::UnsupportedMediaType {
                        what: format!("layer {}", i + 1),
                        media_type,
                    });
                }
                let digest = self.digest_of(d)?;
                Ok(LayerRef {
                    name: digest.blob_path(),
                    digest: Some(digest),
                    size: Some(d.size()),
                    diff_id: None,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((config, layers))
    }

    /// docker save: `manifest.json` names the config and layer files.
    fn docker_plan(&self) -> Result<(Vec<u8>, Vec<LayerRef>), ImageError> {
        let manifests: Vec<DockerManifest> = serde_json::from_slice(&self.doc("manifest.json")?)
            .map_err(|e| self.invalid("manifest.json", e))?;
        let Some(manifest) = manifests.into_iter().next() else {
            return Err(self.invalid("manifest.json", "it lists no image"));
        };
        let config = self.doc(&manifest.config)?;
        if let Some(expected) = digest_in_name(&manifest.config) {
            let hasher = HashingReader::new(&config[..], Some(expected.hasher()));
            let (actual, _) = hasher
                .finish()
                .map_err(|e| self.invalid("image configuration", e))?;
            check_digest("image configuration", &expected, actual)?;
        }
        let layers = manifest
            .layers
            .into_iter()
            .map(|name| LayerRef {
                digest: digest_in_name(&name),
                name,
                size: None,
                diff_id: None,
            })
            .collect();
        Ok((config, layers))
    }

    /// Verifies the blob (when its digest is known), then streams it through
    /// its decoder into the tar applier while hashing the uncompressed tar
    /// to check it against the configuration's diff id.
    fn apply_layer(
        &self,
        layer: &LayerRef,
        label: &str,
        dest: &Path,
        budget: &Budget,
        privilege: Privilege,
        dropped: &mut DroppedNodes,
    ) -> Result<(), ImageError> {
        // Verify before writing anything: by the blob digest when the
        // manifest names one, else (docker save) by the diff id when the
        // blob is an uncompressed tar.
        let (reader, _) = self.blob(&layer.name)?;
        let mut reader = BufReader::new(reader);
        let compression = sniff(&mut reader, label)?;
        let check = match (&layer.digest, compression, &layer.diff_id) {
            _ if self.verified_blobs => None,
            (Some(digest), _, _) => Some((digest, label.to_string())),
            (None, Compression::None, Some(diff_id)) => {
                Some((diff_id, format!("{label}, uncompressed")))
            }
            _ => None,
        };
        if let Some((digest, what)) = check {
            let hashing = HashingReader::new(reader, Some(digest.hasher()));
            let (actual, size) = hashing.finish().map_err(|e| self.corrupt(label, e))?;
            if let Some(expected) = layer.size.filter(|s| *s != size) {
                return Err(ImageError::SizeMismatch {
                    layer: label.to_string(),
                    expected,
                    actual: size,
                });
            }
            check_digest(&what, digest, actual)?;
        }
        let (reader, _) = self.blob(&layer.name)?;
        let reader = match self.progress {
            Some(p) => {
                let (base, all) = self.span.get();
                Box::new(Counting::new(reader, base, all, Some(p.clone())))
            }
            None => reader,
        };
        let mut reader = BufReader::new(reader);
        let compression = sniff(&mut reader, label)?;
        let decoded = decoder(reader, compression).map_err(|e| self.corrupt(label, e))?;
        let hashing = HashingReader::new(decoded, layer.diff_id.as_ref().map(BlobDigest::hasher));
        let limited = Limited::new(hashing, budget);
        let (_, mut rest) = apply_tar(dest, limited, label, TarKind::Layer, privilege, dropped)?;
        // Hash what follows the end-of-archive marker too: the diff id covers it.
        io::copy(&mut rest, &mut io::sink()).map_err(|e| self.corrupt(label, e))?;
        let (actual, _) = rest
            .into_inner()
            .finish()
            .map_err(|e| self.corrupt(label, e))?;
        if let Some(expected) = &layer.diff_id {
            check_digest(&format!("{label}, uncompressed"), expected, actual)?;
        }
        Ok(())
    }

    /// Picks the manifest for this host from an index's descriptors.
    fn choose(&self, manifests: &[Descriptor]) -> Result<Descriptor, ImageError> {
        let candidates: Vec<&Descriptor> = manifests
            .iter()
            .filter(|d| is_index(d.media_type()) || is_manifest(d.media_type()))
            .collect();
        let (os, arch) = (Os::default(), Arch::default());
        let native = candidates.iter().find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| p.os() == &os && p.architecture() == &arch)
        });
        if let Some(d) = native.or_else(|| candidates.iter().find(|d| d.platform().is_none())) {
            return Ok((*d).clone());
        }
        match candidates.as_slice() {
            [] => Err(self.invalid("image index", "it lists no image manifest")),
            [only] => {
                tracing::warn!(source = %self.source.display(), "the image's only manifest is for another platform; importing it anyway");
                Ok((*only).clone())
            }
            many => Err(ImageError::NoMatchingPlatform {
                path: self.source.to_path_buf(),
                wanted: format!("{os}/{arch}"),
                available: many
                    .iter()
                    .filter_map(|d| {
                        d.platform()
                            .as_ref()
                            .map(|p| format!("{}/{}", p.os(), p.architecture()))
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The small blob `desc` points to, checked against its size and digest.
    fn verified_doc(&self, desc: &Descriptor, what: &str) -> Result<Vec<u8>, ImageError> {
        let digest = self.digest_of(desc)?;
        if desc.size() > MAX_DOC_BYTES {
            return Err(self.invalid(what, format!("its descriptor claims {} bytes", desc.size())));
        }
        let (reader, _) = self.blob(&digest.blob_path())?;
        let mut bytes = Vec::new();
        let mut hashing = HashingReader::new(reader.take(MAX_DOC_BYTES + 1), Some(digest.hasher()));
        hashing
            .read_to_end(&mut bytes)
            .map_err(|e| self.corrupt(what, e))?;
        let (actual, _) = hashing.finish().map_err(|e| self.corrupt(what, e))?;
        if bytes.len() as u64 != desc.size() {
            return Err(ImageError::SizeMismatch {
                layer: what.to_string(),
                expected: desc.size(),
                actual: bytes.len() as u64,
            });
        }
        check_digest(what, &digest, actual)?;
        Ok(bytes)
    }

    fn digest_of(&self, desc: &Descriptor) -> Result<BlobDigest, ImageError> {
        BlobDigest::parse(desc.digest().as_ref()).ok_or_else(|| {
            self.invalid(
                "manifest",
                format!(
                    "unsupported digest '{}' (sha256 or sha512 expected)",
                    desc.digest()
                ),
            )
        })
    }

    fn blob(&self, name: &str) -> Result<Blob<'_>, ImageError> {
        self.store
            .open(name)?
            .ok_or_else(|| ImageError::MissingBlob {
                path: self.source.to_path_buf(),
                name: name.to_string(),
            })
    }

    fn doc(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        self.store
            .read_doc(name, self.source)?
            .ok_or_else(|| ImageError::MissingBlob {
                path: self.source.to_path_buf(),
                name: name.to_string(),
            })
    }

    fn invalid(&self, what: &str, reason: impl ToString) -> ImageError {
        ImageError::InvalidManifest {
            path: self.source.to_path_buf(),
            what: what.to_string(),
            reason: reason.to_string(),
        }
    }

    fn corrupt(&self, what: &str, e: io::Error) -> ImageError {
        ImageError::CorruptArchive {
            what: what.to_string(),
            reason: e.to_string(),
        }
    }
}

/// The parts of the image configuration a sandbox inherits.
fn image_config(config: &ImageConfiguration, kind: SourceKind) -> ImageConfig {
    let c = config.config().as_ref();
    let list = |v: Option<&Vec<String>>| v.cloned().unwrap_or_default();
    let mut cmd = list(c.and_then(|c| c.entrypoint().as_ref()));
    cmd.extend(list(c.and_then(|c| c.cmd().as_ref())));
    ImageConfig {
        env: list(c.and_then(|c| c.env().as_ref())),
        workdir: c
            .and_then(|c| c.working_dir().clone())
            .filter(|w| !w.is_empty()),
        cmd,
        kind,
        dropped: Default::default(),
    }
}

fn check_digest(
    what: &str,
    expected: &BlobDigest,
    actual: Option<String>,
) -> Result<(), ImageError> {
    let actual = actual.unwrap_or_default();
    if actual == expected.to_string() {
        Ok(())
    } else {
        Err(ImageError::DigestMismatch {
            layer: what.to_string(),
            expected: expected.to_string(),
            actual,
        })
    }
}

/// The digest a docker-save file name carries: `blobs/sha256/<hex>` or
/// `<hex>.json`.
fn digest_in_name(name: &str) -> Option<BlobDigest> {
    let name = name.strip_prefix("./").unwrap_or(name);
    if let Some(hex) = name.strip_prefix("blobs/sha256/") {
        return BlobDigest::sha256_hex(hex);
    }
    name.strip_suffix(".json").and_then(BlobDigest::sha256_hex)
}

fn is_index(mt: &MediaType) -> bool {
    matches!(mt, MediaType::ImageIndex) || mt.to_string() == DOCKER_MANIFEST_LIST
}

fn is_manifest(mt: &MediaType) -> bool {
    matches!(mt, MediaType::ImageManifest) || mt.to_string() == DOCKER_MANIFEST
}
