//! Special files an import leaves out, and the count it reports.
//!
//! An image never carries character or block devices, FIFOs or sockets: a
//! device node in an image is a door to the host's devices (a node for the
//! host's loop devices let a gVisor sandbox read the pool itself, since
//! gVisor's gofer opens host files on the sandbox's behalf), and FIFOs and
//! sockets belong to running programs, not to images. The runtime gives each
//! sandbox its own `/dev`. Every source kind drops them here, counted per
//! kind, so the caller can tell the user what was left out.
//!
//! The one character device a layer may legitimately hold is the overlayfs
//! whiteout (0:0), which [`crate::apply`] turns into a deletion instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How many special files of each kind an import left out. All zero for
/// most images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dropped {
    /// Character devices (`/dev/null`-like nodes, `/dev/mem`…), not counting
    /// overlayfs whiteouts.
    pub char_devices: u64,
    /// Block devices (disks, loop devices…).
    pub block_devices: u64,
    /// Named pipes.
    pub fifos: u64,
    /// Unix domain sockets (only directories hold them; tar cannot).
    pub sockets: u64,
}

impl Dropped {
    /// All dropped files together.
    pub fn total(&self) -> u64 {
        self.char_devices
            .saturating_add(self.block_devices)
            .saturating_add(self.fifos)
            .saturating_add(self.sockets)
    }

    /// Counts one more file of `kind`.
    pub(crate) fn add(&mut self, kind: SpecialKind) {
        let n = match kind {
            SpecialKind::Char => &mut self.char_devices,
            SpecialKind::Block => &mut self.block_devices,
            SpecialKind::Fifo => &mut self.fifos,
            SpecialKind::Socket => &mut self.sockets,
        };
        *n = n.saturating_add(1);
    }
}

/// The kinds of special files imports drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SpecialKind {
    /// Character device.
    Char,
    /// Block device.
    Block,
    /// Named pipe.
    Fifo,
    /// Unix domain socket.
    Socket,
}

impl SpecialKind {
    fn noun(self) -> &'static str {
        match self {
            SpecialKind::Char => "character device",
            SpecialKind::Block => "block device",
            SpecialKind::Fifo => "named pipe",
            SpecialKind::Socket => "socket",
        }
    }
}

/// The dropped files of one import: their counts, and where they would
/// have been, so that a hard link to one of them is dropped too instead of
/// failing for a missing target.
#[derive(Debug, Default)]
pub(crate) struct DroppedNodes {
    counts: Dropped,
    /// Destination-relative paths of dropped nodes not since replaced.
    paths: HashMap<PathBuf, SpecialKind>,
}

impl DroppedNodes {
    /// Records that the node `rel` of `kind` was left out.
    pub(crate) fn drop_node(&mut self, rel: &Path, kind: SpecialKind, entry: &str) {
        tracing::debug!(
            entry,
            kind = kind.noun(),
            "special file left out of the image"
        );
        self.counts.add(kind);
        self.paths.insert(rel.to_path_buf(), kind);
    }

    /// The kind of the dropped node that would be at `rel`, if one was
    /// dropped there (a hard link to it is dropped as the same kind).
    pub(crate) fn kind_at(&self, rel: &Path) -> Option<SpecialKind> {
        self.paths.get(rel).copied()
    }

    /// Forgets a dropped node at `rel`: something else now lives there.
    pub(crate) fn replaced(&mut self, rel: &Path) {
        if !self.paths.is_empty() {
            self.paths.remove(rel);
        }
    }

    /// The counts.
    pub(crate) fn counts(&self) -> Dropped {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_nodes_are_known_by_path_until_replaced() {
        let mut d = DroppedNodes::default();
        d.drop_node(Path::new("dev/loop7"), SpecialKind::Block, "dev/loop7");
        d.drop_node(Path::new("run/pipe"), SpecialKind::Fifo, "run/pipe");
        assert_eq!(d.kind_at(Path::new("dev/loop7")), Some(SpecialKind::Block));
        assert_eq!(d.kind_at(Path::new("dev/other")), None);
        d.replaced(Path::new("dev/loop7"));
        assert_eq!(d.kind_at(Path::new("dev/loop7")), None);
        let counts = d.counts();
        assert_eq!((counts.block_devices, counts.fifos), (1, 1));
        assert_eq!(counts.total(), 2);
    }
}
