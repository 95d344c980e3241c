//! The pool's layout: where every tree and file of the pool lives, computed from keys
//! (an image, sandbox or snapshot id). Only this crate joins pool paths; callers name
//! what they mean with a [`Tree`] or a snapshot id.
//!
//! ```text
//! pool/images/<image>                 read-only image trees
//! pool/sandboxes/<sandbox>            writable sandbox roots
//! pool/sandboxes/<sandbox>.restore    a root staged by a restore in place
//! pool/sandboxes/<sandbox>.old        the root a restore replaced, until deleted
//! pool/snapshots/<snap>/rootfs        a snapshot's read-only tree
//! pool/snapshots/<snap>/checkpoint/   its memory checkpoint (stateful snapshots)
//! pool/snapshots/<snap>/checkpoint.blocks  the block index of that checkpoint
//! pool/snapshots/<snap>/manifest.json its manifest
//! pool/uploads/                       archives being uploaded (emptied at start-up)
//! pool/registry/blobs/sha256/<hex>    registry pulls' blob cache (layers, manifests, configs)
//! pool/registry/tmp/                  blobs being downloaded (emptied at start-up)
//! ```
//!
//! These names are the on-disk format: pools made by earlier versions use them too.
//! Not for: creating or deleting anything (the drivers do).

use std::path::{Path, PathBuf};

/// Suffix of a root staged by a restore in place, beside the sandbox's root.
const STAGED_SUFFIX: &str = ".restore";
/// Suffix of the root a restore in place replaced, until it is deleted.
const REPLACED_SUFFIX: &str = ".old";
/// A snapshot's tree inside its directory.
const SNAPSHOT_TREE: &str = "rootfs";
/// A snapshot's memory checkpoint inside its directory.
const CHECKPOINT_DIR: &str = "checkpoint";
/// The block index of a snapshot's memory checkpoint, beside it.
const CHECKPOINT_INDEX: &str = "checkpoint.blocks";

/// A tree of the pool, named by its key. Keys are ids Cairn made (never user input), one
/// path component each.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tree {
    /// The read-only tree of an image.
    Image(String),
    /// The writable root of a sandbox.
    Sandbox(String),
    /// A sandbox's next root, staged by a restore in place.
    Staged(String),
    /// The root a restore in place replaced, kept until it is deleted.
    Replaced(String),
    /// The read-only tree of a snapshot.
    Snapshot(String),
}

impl Tree {
    /// The tree of image `id`.
    pub fn image(id: impl AsRef<str>) -> Tree {
        Tree::Image(id.as_ref().to_string())
    }

    /// The root of sandbox `id`.
    pub fn sandbox(id: impl AsRef<str>) -> Tree {
        Tree::Sandbox(id.as_ref().to_string())
    }

    /// The root a restore stages for sandbox `id`.
    pub fn staged(id: impl AsRef<str>) -> Tree {
        Tree::Staged(id.as_ref().to_string())
    }

    /// The root of sandbox `id` that a restore replaced.
    pub fn replaced(id: impl AsRef<str>) -> Tree {
        Tree::Replaced(id.as_ref().to_string())
    }

    /// The tree of snapshot `id`.
    pub fn snapshot(id: impl AsRef<str>) -> Tree {
        Tree::Snapshot(id.as_ref().to_string())
    }

    /// The key (image, sandbox or snapshot id) the tree belongs to.
    pub fn key(&self) -> &str {
        match self {
            Tree::Image(k)
            | Tree::Sandbox(k)
            | Tree::Staged(k)
            | Tree::Replaced(k)
            | Tree::Snapshot(k) => k,
        }
    }
}

/// The paths of one pool. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the pool at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// The pool directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where image trees live.
    pub fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    /// Where sandbox roots (and restores' staged and replaced roots) live.
    pub fn sandboxes_dir(&self) -> PathBuf {
        self.root.join("sandboxes")
    }

    /// Where snapshot directories live.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// Where uploads are spooled.
    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// The registry pulls' blob cache: an OCI blob store (`blobs/<algorithm>/<hex>`) with
    /// its downloads in progress in `tmp/`.
    pub fn blob_cache_dir(&self) -> PathBuf {
        self.root.join("registry")
    }

    /// The directory of snapshot `id`: its tree, checkpoint, index and manifest.
    pub fn snapshot_dir(&self, id: &str) -> PathBuf {
        self.snapshots_dir().join(id)
    }

    /// The memory checkpoint directory of snapshot `id`.
    pub fn checkpoint_dir(&self, id: &str) -> PathBuf {
        self.snapshot_dir(id).join(CHECKPOINT_DIR)
    }

    /// The block index of snapshot `id`'s memory checkpoint.
    pub fn checkpoint_index(&self, id: &str) -> PathBuf {
        self.snapshot_dir(id).join(CHECKPOINT_INDEX)
    }

    /// Where `tree` lives.
    pub fn tree(&self, tree: &Tree) -> PathBuf {
        match tree {
            Tree::Image(id) => self.images_dir().join(id),
            Tree::Sandbox(id) => self.sandboxes_dir().join(id),
            Tree::Staged(id) => self.sandboxes_dir().join(format!("{id}{STAGED_SUFFIX}")),
            Tree::Replaced(id) => self.sandboxes_dir().join(format!("{id}{REPLACED_SUFFIX}")),
            Tree::Snapshot(id) => self.snapshot_dir(id).join(SNAPSHOT_TREE),
        }
    }

    /// The tree whose name in `sandboxes/` is `name`: a restore's staged or replaced root
    /// by its suffix, a sandbox root otherwise.
    pub fn sandbox_tree(name: &str) -> Tree {
        if let Some(id) = name.strip_suffix(STAGED_SUFFIX) {
            Tree::staged(id)
        } else if let Some(id) = name.strip_suffix(REPLACED_SUFFIX) {
            Tree::replaced(id)
        } else {
            Tree::sandbox(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_live_where_earlier_pools_have_them() {
        let l = Layout::new("/p");
        let at = |t: Tree| l.tree(&t).display().to_string();
        assert_eq!(at(Tree::image("img-1")), "/p/images/img-1");
        assert_eq!(at(Tree::sandbox("sbx-1")), "/p/sandboxes/sbx-1");
        assert_eq!(at(Tree::staged("sbx-1")), "/p/sandboxes/sbx-1.restore");
        assert_eq!(at(Tree::replaced("sbx-1")), "/p/sandboxes/sbx-1.old");
        assert_eq!(at(Tree::snapshot("snap-1")), "/p/snapshots/snap-1/rootfs");
        assert_eq!(
            l.checkpoint_dir("snap-1").display().to_string(),
            "/p/snapshots/snap-1/checkpoint"
        );
        assert_eq!(
            l.checkpoint_index("snap-1").display().to_string(),
            "/p/snapshots/snap-1/checkpoint.blocks"
        );
    }

    #[test]
    fn names_in_the_sandboxes_directory_decode_to_their_trees() {
        for tree in [
            Tree::sandbox("sbx-1"),
            Tree::staged("sbx-1"),
            Tree::replaced("sbx-1"),
        ] {
            let l = Layout::new("/p");
            let path = l.tree(&tree);
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            assert_eq!(Layout::sandbox_tree(name), tree);
        }
        assert_eq!(Layout::sandbox_tree("stray"), Tree::sandbox("stray"));
    }
}
