//! Turning an image source into a root filesystem tree.
//!
//! [`import`] unpacks one of
//! - a **directory** holding a root filesystem (copied faithfully),
//! - an **OCI image layout** directory (`oci-layout`, `index.json`, `blobs/`),
//! - a **tar archive**, uncompressed, gzip or zstd (told apart by magic
//!   bytes, not by name), holding an OCI image layout, a `docker save`
//!   image, or simply a root filesystem,
//!
//! into an existing, empty destination directory (for Cairn, a fresh btrfs
//! subvolume that the caller then makes read-only). Image layers are checked
//! against their digests and applied in order with OCI whiteout semantics.
//!
//! No entry of any archive can write outside the destination: absolute
//! names and `..` are refused, symlinks are resolved inside the destination
//! (see `safepath`), hard links must point inside it, and the decoded size
//! is capped ([`ImportOptions::max_decoded_bytes`]).
//!
//! No import creates a device node, FIFO or socket, whatever the source:
//! they are left out and counted in [`ImageConfig::dropped`]. Files are
//! written sparsely: zero blocks, holes of a source directory and holes of
//! sparse tar entries take no space, and the size cap counts what is decoded
//! (data), never the holes.
//!
//! [`write_tree`] and [`unpack_parts`] do the same for a tree that is one part of a larger
//! tar stream (a snapshot archive's `rootfs/` and `checkpoint/`).
//!
//! This crate is synchronous and does plain file I/O only: it does not pull
//! from registries, create subvolumes, or know about sandboxes. Run it on a
//! blocking thread. On error the destination holds a partial tree that the
//! caller should discard.

mod apply;
mod archive;
mod copy;
mod dropped;
mod error;
mod meta;
mod oci;
mod safepath;
mod sparse;
mod stream;
mod tar_entry;
mod tree;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use dropped::Dropped;
pub use error::ImageError;
pub use tree::{measure_tree, unpack_parts, write_tree, Part, TreeStats};

use crate::apply::{apply_tar, TarKind};
use crate::archive::{BlobStore, Layout, Opened};
use crate::dropped::DroppedNodes;
use crate::error::io_ctx;
use crate::meta::Privilege;
use crate::oci::Start;
use crate::stream::{Budget, Limited};

/// Default cap on decoded bytes: 10 GiB, more than any sandbox base image
/// needs, and a bound on what one import can make a multi-tenant host
/// decompress and write.
pub const DEFAULT_MAX_DECODED_BYTES: u64 = 10 << 30;

/// What kind of source an image came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A directory holding a root filesystem.
    Directory,
    /// A tar archive holding a root filesystem.
    RootfsTarball,
    /// A tar archive holding an OCI image layout (`skopeo copy … oci-archive:`,
    /// `docker save` since Docker 25).
    OciArchive,
    /// A directory holding an OCI image layout.
    OciLayout,
    /// A classic `docker save` archive (`manifest.json` with `Config` and
    /// `Layers`).
    DockerArchive,
    /// An image pulled from a registry into a blob store ([`import_manifest`]).
    Registry,
}

/// What an import found: the parts of the image's configuration a sandbox
/// inherits (empty for root filesystems, which carry none), what the source
/// was, and what was left out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageConfig {
    /// Environment, `NAME=value` (the config's `Env`).
    pub env: Vec<String>,
    /// Working directory (the config's `WorkingDir`), if set and non-empty.
    pub workdir: Option<String>,
    /// Default command: the config's `Entrypoint` followed by its `Cmd`.
    pub cmd: Vec<String>,
    /// What the source was.
    pub kind: SourceKind,
    /// Special files (devices, FIFOs, sockets) the import left out.
    #[serde(default)]
    pub dropped: Dropped,
}

impl ImageConfig {
    fn empty(kind: SourceKind) -> Self {
        Self {
            env: Vec::new(),
            workdir: None,
            cmd: Vec::new(),
            kind,
            dropped: Dropped::default(),
        }
    }
}

/// Tunables of [`import_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// Most bytes an import may decode: separately, the decompressed outer
    /// archive, and the sum of all decompressed layers (or of the data of
    /// the files of a root filesystem directory). Holes of sparse files are
    /// not decoded, so they do not count; zeros stored as data do, even
    /// though they land on disk as holes. Stops archive bombs: past it the
    /// import fails with [`ImageError::TooLarge`].
    pub max_decoded_bytes: u64,
    /// Where a compressed image archive is decompressed while importing (an
    /// anonymous file, gone when the import ends). Defaults to the
    /// destination itself, which is on the same filesystem as the result.
    pub scratch_dir: Option<PathBuf>,
    /// Told how far the unpacking has come (see [`ImportProgress`]); `None`: nobody asks.
    pub progress: Option<ImportProgress>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            max_decoded_bytes: DEFAULT_MAX_DECODED_BYTES,
            scratch_dir: None,
            progress: None,
        }
    }
}

/// Called as an import unpacks, with (bytes read, of how many): the stored bytes of an
/// image's layers, or of a root filesystem archive, as they are applied (not the checks
/// before). A directory source reports nothing. Called at most about once per MiB.
#[derive(Clone)]
pub struct ImportProgress(pub std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>);

impl std::fmt::Debug for ImportProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImportProgress")
    }
}

impl PartialEq for ImportProgress {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ImportProgress {}

/// Unpacks the image at `source` into the existing, empty directory `dest`
/// with default [`ImportOptions`], and returns its configuration.
pub fn import(source: &Path, dest: &Path) -> Result<ImageConfig, ImageError> {
    import_with(source, dest, &ImportOptions::default())
}

/// Unpacks the image at `source` into the existing, empty directory `dest`,
/// and returns its configuration. See the crate documentation for the
/// sources understood.
pub fn import_with(
    source: &Path,
    dest: &Path,
    options: &ImportOptions,
) -> Result<ImageConfig, ImageError> {
    check_dest(dest)?;
    let md = match fs::metadata(source) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ImageError::SourceNotFound {
                path: source.to_path_buf(),
            })
        }
        Err(e) => return Err(ImageError::io("reading", source, e)),
    };
    let limit = options.max_decoded_bytes;
    let mut dropped = DroppedNodes::default();
    let mut config = if md.is_dir() {
        import_dir(source, dest, options, &mut dropped)?
    } else if md.is_file() {
        let scratch = options.scratch_dir.as_deref().unwrap_or(dest);
        match archive::open(source, scratch, limit)? {
            Opened::Rootfs(compression) => {
                let budget = Budget::new(limit);
                let file =
                    fs::File::open(source).map_err(|e| ImageError::io("opening", source, e))?;
                let counted = stream::Counting::new(file, 0, md.len(), options.progress.clone());
                let decoded = stream::decoder(io::BufReader::new(counted), compression)
                    .map_err(|e| ImageError::io("decompressing", source, e))?;
                let reader = Limited::new(decoded, &budget);
                let label = format!("archive '{}'", source.display());
                let (entries, _) = apply_tar(
                    dest,
                    reader,
                    &label,
                    TarKind::Rootfs,
                    Privilege::current(),
                    &mut dropped,
                )
                .map_err(|e| budget.explain(e))?;
                if entries == 0 {
                    return Err(ImageError::EmptySource {
                        path: source.to_path_buf(),
                    });
                }
                // Applied whole (what follows the end-of-archive marker is not read).
                if let Some(p) = &options.progress {
                    (p.0)(md.len(), md.len());
                }
                ImageConfig::empty(SourceKind::RootfsTarball)
            }
            Opened::Image(layout, store) => {
                let kind = if layout == Layout::Docker {
                    SourceKind::DockerArchive
                } else {
                    SourceKind::OciArchive
                };
                oci::import_image(
                    &store,
                    Start::Layout(layout),
                    kind,
                    source,
                    dest,
                    options,
                    &mut dropped,
                )?
            }
        }
    } else {
        return Err(ImageError::UnsupportedSource {
            path: source.to_path_buf(),
        });
    };
    config.dropped = dropped.counts();
    let d = config.dropped;
    if d.total() > 0 {
        tracing::warn!(
            source = %source.display(),
            char_devices = d.char_devices,
            block_devices = d.block_devices,
            fifos = d.fifos,
            sockets = d.sockets,
            "special files left out of the image"
        );
    }
    tracing::info!(source = %source.display(), dest = %dest.display(), kind = ?config.kind, "image unpacked");
    Ok(config)
}

/// Unpacks the image whose manifest is the blob `manifest` (`sha256:…`, `size`
/// bytes, an OCI or Docker image manifest, not an index) of the blob store at
/// `root` (blobs at `root/blobs/<algorithm>/<hex>`, as in an OCI image
/// layout, e.g. a registry pull's cache) into the existing, empty directory
/// `dest`, and returns its configuration.
///
/// The store's blobs are trusted to match their names (the puller verified
/// them as it stored them): documents are still checked against their
/// digests, layers only against their diff ids as they are applied. The same
/// limits and safety as [`import_with`] apply.
pub fn import_manifest(
    root: &Path,
    manifest: &str,
    size: u64,
    dest: &Path,
    options: &ImportOptions,
) -> Result<ImageConfig, ImageError> {
    check_dest(dest)?;
    let digest =
        manifest
            .parse::<oci_spec::image::Digest>()
            .map_err(|e| ImageError::InvalidManifest {
                path: root.to_path_buf(),
                what: "image manifest".into(),
                reason: format!("bad digest '{manifest}': {e}"),
            })?;
    let desc =
        oci_spec::image::Descriptor::new(oci_spec::image::MediaType::ImageManifest, size, digest);
    let store = BlobStore::Dir {
        root: root.to_path_buf(),
    };
    let mut dropped = DroppedNodes::default();
    let mut config = oci::import_image(
        &store,
        Start::Manifest(Box::new(desc)),
        SourceKind::Registry,
        root,
        dest,
        options,
        &mut dropped,
    )?;
    config.dropped = dropped.counts();
    tracing::info!(manifest, dest = %dest.display(), "image unpacked");
    Ok(config)
}

fn import_dir(
    source: &Path,
    dest: &Path,
    options: &ImportOptions,
    dropped: &mut DroppedNodes,
) -> Result<ImageConfig, ImageError> {
    let limit = options.max_decoded_bytes;
    if archive::is_oci_layout_dir(source) {
        let store = BlobStore::Dir {
            root: source.to_path_buf(),
        };
        return oci::import_image(
            &store,
            Start::Layout(Layout::Oci),
            SourceKind::OciLayout,
            source,
            dest,
            options,
            dropped,
        );
    }
    let real_source = fs::canonicalize(source).map_err(io_ctx("resolving", source))?;
    let real_dest = fs::canonicalize(dest).map_err(io_ctx("resolving", dest))?;
    if real_dest.starts_with(&real_source) || real_source.starts_with(&real_dest) {
        return Err(ImageError::Overlap {
            source_dir: source.to_path_buf(),
            dest: dest.to_path_buf(),
        });
    }
    if copy::is_empty_dir(source).map_err(io_ctx("listing", source))? {
        return Err(ImageError::EmptySource {
            path: source.to_path_buf(),
        });
    }
    copy::copy_tree(
        source,
        dest,
        &Budget::new(limit),
        Privilege::current(),
        dropped,
    )?;
    Ok(ImageConfig::empty(SourceKind::Directory))
}

fn check_dest(dest: &Path) -> Result<(), ImageError> {
    let not_empty = || ImageError::DestinationNotEmpty {
        path: dest.to_path_buf(),
    };
    match fs::symlink_metadata(dest) {
        Ok(md) if md.is_dir() => {}
        _ => return Err(not_empty()),
    }
    if copy::is_empty_dir(dest).map_err(io_ctx("listing", dest))? {
        Ok(())
    } else {
        Err(not_empty())
    }
}

/// Total size in bytes of the regular files under `path`, each hard-linked
/// file counted once, symlinks not followed. Unreadable parts are skipped
/// (and logged), so the result is a lower bound when something could not be
/// read; a missing `path` gives 0.
pub fn dir_size(path: &Path) -> u64 {
    let mut total = 0u64;
    let mut seen = HashSet::new();
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::debug!(path = %dir.display(), error = %e, "not measured");
                continue;
            }
        };
        for entry in entries.flatten() {
            let Ok(md) = entry.metadata() else { continue };
            if md.is_dir() {
                pending.push(entry.path());
            } else if md.is_file() && (md.nlink() <= 1 || seen.insert((md.dev(), md.ino()))) {
                total = total.saturating_add(md.len());
            }
        }
    }
    total
}
