//! Snapshots that leave the host: export as one self-describing archive, import on any
//! Cairn host (docs/sharing.md, the format in docs/formats.md).
//!
//! Modules: `archive` (the format: documents, checksums, hashing readers and writers),
//! `export` (a ready snapshot streamed out), `import` (an upload read once into a new
//! snapshot, every refusal leaving nothing behind), `links` (signed download URLs).
//!
//! The archive's parts (its manifest document, the `rootfs/` tree, the `checkpoint/`
//! files) are what a remote tier would store as content-defined chunks: they are written
//! and read by `cairn_images::{write_tree, unpack_parts}` from any `Write`/`Read`, so a
//! push or pull can reuse them without going through an archive file.

mod archive;
mod export;
mod import;
mod links;

pub(crate) use archive::ArchiveDoc;
pub use archive::ArchiveFormat;
pub(crate) use export::ArchiveSource;
pub use export::{ArchivePiece, ArchiveStream, SnapshotGone};
pub(crate) use links::ensure_key;
pub use links::{SnapshotLink, DEFAULT_LINK_SECS};
