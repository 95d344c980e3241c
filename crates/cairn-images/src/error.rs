//! The one error type of this crate: what went wrong while importing an
//! image, with messages that say what to do about it.

use std::io;
use std::path::{Path, PathBuf};

/// Why an image could not be imported.
///
/// On any error the destination directory may hold a partial tree; the
/// caller is expected to discard it (delete the subvolume).
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The source path does not exist.
    #[error(
        "image source '{path}' does not exist: give the path of a directory, an OCI image layout, \
         or a .tar, .tar.gz or .tar.zst archive on this host"
    )]
    SourceNotFound {
        /// The missing source.
        path: PathBuf,
    },
    /// The source is neither a directory nor a regular file.
    #[error("image source '{path}' is neither a directory nor a regular file: give a directory or an archive")]
    UnsupportedSource {
        /// The source.
        path: PathBuf,
    },
    /// The source holds nothing to import.
    #[error("image source '{path}' is empty: a root filesystem needs at least one file")]
    EmptySource {
        /// The empty directory or archive.
        path: PathBuf,
    },
    /// The destination is missing, not a directory, or already has content.
    #[error(
        "image destination '{path}' is not an empty directory: import only into a freshly created, \
         empty directory"
    )]
    DestinationNotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// The source directory contains the destination or the other way round.
    #[error(
        "image source '{source_dir}' and destination '{dest}' overlap: copy the root filesystem \
         from a directory outside the destination"
    )]
    Overlap {
        /// The source directory.
        source_dir: PathBuf,
        /// The destination directory.
        dest: PathBuf,
    },
    /// The source is compressed with a format this crate does not decode.
    #[error("'{path}' is compressed with {format}, which Cairn does not read: recompress it with gzip or zstd")]
    UnsupportedCompression {
        /// The archive or blob.
        path: String,
        /// The detected format.
        format: &'static str,
    },
    /// The source file is not a (readable) tar archive.
    #[error("'{path}' is not a tar archive ({reason}): give a .tar, .tar.gz or .tar.zst file, or a directory")]
    NotAnArchive {
        /// The source.
        path: PathBuf,
        /// What the tar reader reported.
        reason: String,
    },
    /// A manifest, index or configuration document is malformed.
    #[error("{what} of image '{path}' is invalid: {reason}; export the image again with docker save, skopeo or buildah")]
    InvalidManifest {
        /// The source.
        path: PathBuf,
        /// Which document (`index.json`, `manifest.json`, a blob name).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A blob or file the manifest names is not in the source.
    #[error("image '{path}' lacks '{name}', which its manifest references: the archive is incomplete; export it again")]
    MissingBlob {
        /// The source.
        path: PathBuf,
        /// The missing file inside the archive or layout.
        name: String,
    },
    /// A blob's content does not hash to the digest that names it.
    #[error(
        "{layer} is corrupt or tampered with: expected digest {expected} but its content hashes to \
         {actual}; download or export the image again"
    )]
    DigestMismatch {
        /// Which layer or document (e.g. `layer 2/3 (sha256:…)`).
        layer: String,
        /// The digest the manifest promised.
        expected: String,
        /// The digest of the content actually found.
        actual: String,
    },
    /// A blob's size does not match its descriptor.
    #[error("{layer} is {actual} bytes long but its descriptor says {expected}: the archive is damaged; export it again")]
    SizeMismatch {
        /// Which layer or document.
        layer: String,
        /// The size the descriptor promised.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A layer or manifest uses a media type this crate cannot unpack.
    #[error("{what} has media type '{media_type}', which Cairn cannot unpack (encrypted or non-tar layers are not supported)")]
    UnsupportedMediaType {
        /// Which descriptor.
        what: String,
        /// Its media type.
        media_type: String,
    },
    /// The image index offers no manifest for this host's platform.
    #[error(
        "image '{path}' has no manifest for {wanted} (it has: {available}): import an image built \
         for this host's platform"
    )]
    NoMatchingPlatform {
        /// The source.
        path: PathBuf,
        /// The platform of this host, `os/arch`.
        wanted: String,
        /// The platforms the index offers.
        available: String,
    },
    /// A tar entry tries to write outside the destination (absolute path,
    /// `..`, hard link leaving the tree).
    #[error(
        "{layer}: entry '{entry}' is refused: {reason}; the archive is malformed or malicious"
    )]
    UnsafeEntry {
        /// Which layer or archive.
        layer: String,
        /// The entry's path as stored in the archive.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// A tar entry is well-formed but cannot be applied to the tree.
    #[error("{layer}: entry '{entry}' cannot be unpacked: {reason}")]
    BadEntry {
        /// Which layer or archive.
        layer: String,
        /// The entry's path as stored in the archive.
        entry: String,
        /// What went wrong.
        reason: String,
    },
    /// A layer or archive stream cannot be read to the end.
    #[error(
        "{what} cannot be read: {reason}; the archive is truncated or corrupt, export it again"
    )]
    CorruptArchive {
        /// Which layer or archive.
        what: String,
        /// What the decoder or tar reader reported.
        reason: String,
    },
    /// The decoded data exceeds the configured maximum.
    #[error(
        "the image decodes to more than {}, the import size limit ({limit} bytes): it may be an \
         archive bomb; if it is genuine, make it smaller or have the operator raise the limit \
         (cairnd --max-image-size)",
        human_bytes(*limit)
    )]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// A filesystem operation failed.
    #[error("{action} '{path}' failed: {source}")]
    Io {
        /// What was being done (`reading`, `creating`, …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    /// An [`ImageError::Io`] for `action` on `path`.
    pub(crate) fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `n` bytes in the largest binary unit that keeps it whole or above 1
/// (`10 GiB`, `1.5 MiB`, `512 bytes`).
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let text = format!("{value:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text} {}", UNITS[unit])
}

/// Shorthand for `map_err(|e| ImageError::io(action, path, e))`.
pub(crate) fn io_ctx<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |e| ImageError::io(action, path, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_shown_in_binary_units() {
        assert_eq!(human_bytes(10 << 30), "10 GiB");
        assert_eq!(human_bytes(3 << 19), "1.5 MiB");
        assert_eq!(human_bytes(512), "512 bytes");
        let msg = ImageError::TooLarge { limit: 10 << 30 }.to_string();
        assert!(
            msg.contains("10 GiB") && msg.contains("--max-image-size"),
            "{msg}"
        );
    }
}
