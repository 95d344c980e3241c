//! Importing a plain root filesystem directory: a faithful copy of its tree
//! (contents, hard links, symlinks, ownership, permission bits, mtimes,
//! extended attributes) into the destination, holes included.
//!
//! Symlinks are copied as symlinks and never followed; mount points inside
//! the source are copied through like any directory. Device nodes, FIFOs
//! and sockets are left out and counted (see [`crate::dropped`]).

use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::dropped::{DroppedNodes, SpecialKind};
use crate::error::io_ctx;
use crate::meta::{self, Meta, Privilege};
use crate::sparse;
use crate::stream::Budget;
use crate::ImageError;

/// Copies the content of directory `src` into the empty directory `dest`
/// and gives `dest` the owner, mode and mtime of `src`. Special files left
/// out are recorded in `dropped`.
pub(crate) fn copy_tree(
    src: &Path,
    dest: &Path,
    budget: &Budget,
    privilege: Privilege,
    dropped: &mut DroppedNodes,
) -> Result<(), ImageError> {
    let mut copier = Copier {
        budget,
        privilege,
        dropped,
        links: HashMap::new(),
        dirs: Vec::new(),
    };
    let root_md = fs::metadata(src).map_err(io_ctx("reading", src))?;
    copier
        .dirs
        .push((dest.to_path_buf(), meta_of(src, &root_md)?));
    copier.copy_children(src, dest)?;
    // Deepest first, so setting a parent's mtime comes after its children.
    copier.dirs.reverse();
    for (path, meta) in &copier.dirs {
        meta::apply(path, meta, false, privilege).map_err(io_ctx("setting metadata of", path))?;
    }
    Ok(())
}

struct Copier<'b> {
    budget: &'b Budget,
    privilege: Privilege,
    dropped: &'b mut DroppedNodes,
    /// Source (device, inode) of multiply-linked files → their first copy.
    links: HashMap<(u64, u64), PathBuf>,
    /// Directories to finish (mode, mtime) once everything is in; parents
    /// before children.
    dirs: Vec<(PathBuf, Meta)>,
}

impl Copier<'_> {
    fn copy_children(&mut self, src: &Path, dest: &Path) -> Result<(), ImageError> {
        let mut children: Vec<_> = fs::read_dir(src)
            .map_err(io_ctx("listing", src))?
            .collect::<Result<_, _>>()
            .map_err(io_ctx("listing", src))?;
        // A stable order makes imports (and hard link choices) reproducible.
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let from = child.path();
            let to = dest.join(child.file_name());
            let md = fs::symlink_metadata(&from).map_err(io_ctx("reading", &from))?;
            self.copy_one(&from, &to, &md)?;
        }
        Ok(())
    }

    fn copy_one(&mut self, from: &Path, to: &Path, md: &Metadata) -> Result<(), ImageError> {
        let ft = md.file_type();
        if ft.is_dir() {
            fs::create_dir(to).map_err(io_ctx("creating directory", to))?;
            let meta = meta_of(from, md)?;
            meta::set_owner(to, meta.uid, meta.gid, self.privilege)
                .map_err(io_ctx("setting owner of", to))?;
            self.dirs.push((to.to_path_buf(), meta));
            return self.copy_children(from, to);
        }
        let special = if ft.is_char_device() {
            Some(SpecialKind::Char)
        } else if ft.is_block_device() {
            Some(SpecialKind::Block)
        } else if ft.is_fifo() {
            Some(SpecialKind::Fifo)
        } else if ft.is_socket() {
            Some(SpecialKind::Socket)
        } else {
            None
        };
        if let Some(kind) = special {
            // Every name of a multiply-linked node is left out, each counted.
            self.dropped.drop_node(to, kind, &from.to_string_lossy());
            return Ok(());
        }
        if !ft.is_symlink() && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(first) = self.links.get(&key) {
                return fs::hard_link(first, to).map_err(io_ctx("creating hard link", to));
            }
            self.links.insert(key, to.to_path_buf());
        }
        let meta = meta_of(from, md)?;
        if ft.is_file() {
            self.copy_file(from, to)?;
            meta::apply(to, &meta, false, self.privilege).map_err(io_ctx("setting metadata of", to))
        } else if ft.is_symlink() {
            let target = fs::read_link(from).map_err(io_ctx("reading symbolic link", from))?;
            std::os::unix::fs::symlink(&target, to)
                .map_err(io_ctx("creating symbolic link", to))?;
            meta::apply(to, &meta, true, self.privilege).map_err(io_ctx("setting metadata of", to))
        } else {
            // Nothing else is left: directories and special files were handled above.
            tracing::debug!(path = %from.display(), "file of unknown type not copied");
            Ok(())
        }
    }

    /// Copies a regular file's data extents (holes stay holes; only data
    /// is charged to the budget). The kernel copies where it can, and btrfs
    /// then shares extents instead of duplicating them.
    fn copy_file(&mut self, from: &Path, to: &Path) -> Result<(), ImageError> {
        let input = File::open(from).map_err(io_ctx("opening", from))?;
        let output = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(io_ctx("creating", to))?;
        let len = input.metadata().map_err(io_ctx("reading", from))?.len();
        let budget = self.budget;
        sparse::copy_file_sparse(&input, &output, len, |n| budget.charge(n))
            .map_err(|e| budget.explain(ImageError::io("copying", from, e)))
    }
}

/// The metadata of `path` as [`Meta`], with its extended attributes.
fn meta_of(path: &Path, md: &Metadata) -> Result<Meta, ImageError> {
    Ok(Meta {
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime_secs: md.mtime(),
        mtime_nsecs: u32::try_from(md.mtime_nsec()).unwrap_or(0),
        xattrs: meta::read_xattrs(path).map_err(io_ctx("reading extended attributes of", path))?,
    })
}

/// True when the directory `path` has no entries.
pub(crate) fn is_empty_dir(path: &Path) -> io::Result<bool> {
    Ok(fs::read_dir(path)?.next().is_none())
}
