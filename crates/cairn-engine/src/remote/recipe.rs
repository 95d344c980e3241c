//! The recipe: how a pushed snapshot is rebuilt from chunks (docs/formats.md). One JSON
//! object per snapshot at `<prefix>/<account>/snapshots/<id>.json`, written last.
//!
//! A recipe comes from the bucket, which anyone with its credentials can write: it is
//! decoded with limits and checked (format, version, hashes, sizes) before a chunk is
//! fetched, and the stream it rebuilds is checked again by the import.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use cairn_types::SnapshotId;

use super::chunker::{AVG_CHUNK, MAX_CHUNK, MIN_CHUNK};
use crate::share::ArchiveDoc;

/// Largest recipe read (a 10 GiB snapshot in 1 MiB chunks lists about 10,000).
pub(crate) const MAX_RECIPE_BYTES: usize = 16 << 20;

/// A pushed snapshot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Recipe {
    /// Always [`Recipe::FORMAT`].
    pub format: String,
    /// [`Recipe::VERSION`] when written by this Cairn.
    pub version: u32,
    /// The Cairn that pushed it.
    pub cairn_version: String,
    /// The snapshot's id (also in its key).
    pub snapshot: String,
    /// When it was pushed.
    pub pushed_at: DateTime<Utc>,
    /// How the stream was cut.
    pub chunking: Chunking,
    /// The archive's first document (the snapshot's manifest, its image's name, sizes),
    /// for the catalog; the stream holds it too, checksummed.
    pub archive: ArchiveDoc,
    /// Bytes of the uncompressed archive stream.
    pub stream_bytes: u64,
    /// Hex BLAKE3 of the whole stream.
    pub stream_blake3: String,
    /// The stream's chunks, in order.
    pub chunks: Vec<ChunkRef>,
}

/// The cutting parameters (a reader needs none of them: chunks are listed whole).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Chunking {
    /// `fastcdc-2020` (fastcdc 3.2.1, normalization level 1).
    pub algorithm: String,
    /// Bytes.
    pub min: u32,
    /// Bytes.
    pub avg: u32,
    /// Bytes.
    pub max: u32,
    /// `blake3`: chunks are named by the hex hash of their bytes.
    pub hash: String,
}

impl Default for Chunking {
    fn default() -> Self {
        Chunking {
            algorithm: "fastcdc-2020".into(),
            min: MIN_CHUNK,
            avg: AVG_CHUNK,
            max: MAX_CHUNK,
            hash: "blake3".into(),
        }
    }
}

/// One chunk of the stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkRef {
    /// Hex BLAKE3 of its bytes: its name in the bucket.
    pub hash: String,
    /// Its length.
    pub bytes: u64,
}

impl Recipe {
    /// The format marker.
    pub(crate) const FORMAT: &'static str = "cairn-remote-recipe";
    /// The newest version this Cairn reads, and the one it writes.
    pub(crate) const VERSION: u32 = 1;

    /// Decodes and checks a recipe read from the key of snapshot `id`; the error says
    /// what is wrong.
    pub(crate) fn decode(data: &[u8], id: &SnapshotId) -> Result<Recipe, String> {
        if data.len() > MAX_RECIPE_BYTES {
            return Err("its recipe is too large".into());
        }
        let value: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| format!("its recipe is not JSON ({e})"))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(Self::FORMAT) => {}
            _ => return Err("its recipe is not a Cairn recipe".into()),
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == 0 || v > u64::from(Self::VERSION) => {
                return Err(format!(
                    "its recipe is version {v}, which this Cairn does not read (it reads version {}): upgrade cairnd",
                    Self::VERSION
                ))
            }
            Some(_) => {}
            None => return Err("its recipe has no version".into()),
        }
        let archive = value
            .get("archive")
            .ok_or("its recipe has no archive document")?;
        let archive = serde_json::to_vec(archive).map_err(|e| e.to_string())?;
        ArchiveDoc::decode(&archive)?;
        let recipe: Recipe =
            serde_json::from_value(value).map_err(|e| format!("its recipe is incomplete ({e})"))?;
        if recipe.snapshot != id.as_str() {
            return Err("its recipe names another snapshot".into());
        }
        let mut total = 0u64;
        for c in &recipe.chunks {
            if c.hash.len() != 64
                || !c
                    .hash
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err("its recipe lists a chunk that is not a BLAKE3 hash".into());
            }
            if c.bytes == 0 || c.bytes > u64::from(MAX_CHUNK) {
                return Err("its recipe lists a chunk of an impossible size".into());
            }
            total = total.saturating_add(c.bytes);
        }
        if total != recipe.stream_bytes {
            return Err("its recipe's chunks do not add up to its stream".into());
        }
        if recipe.stream_bytes > recipe.archive.sizes.stream_bound() {
            return Err("its recipe's stream is larger than its snapshot declares".into());
        }
        Ok(recipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_of_unknown_formats_or_versions_are_refused() {
        let id: SnapshotId = "snap-0123abcd".parse().expect("id");
        let err = Recipe::decode(br#"{"format":"cairn-remote-recipe","version":7}"#, &id)
            .expect_err("newer");
        assert!(err.contains("version 7"), "{err}");
        let err = Recipe::decode(br#"{"format":"x","version":1}"#, &id).expect_err("format");
        assert!(err.contains("not a Cairn recipe"), "{err}");
        assert!(Recipe::decode(b"[", &id).is_err());
    }
}
