//! Applying one tar stream (an image layer or a plain root filesystem
//! tarball) onto the destination tree.
//!
//! Layers get OCI whiteout semantics: `.wh.NAME` removes `NAME` left by
//! lower layers, `.wh..wh..opq` hides everything lower layers put in its
//! directory, and an overlayfs-style whiteout (a 0:0 character device)
//! removes its own path. Every path goes through [`crate::safepath`], so no
//! entry can write, link or delete outside the destination.
//!
//! Device nodes and FIFOs are never created: they are dropped and counted
//! (see [`crate::dropped`]), and so are hard links to them. Regular files are
//! written sparsely ([`crate::sparse`]); sparse entries, old-GNU (type `S`)
//! and PAX (GNU formats 0.0, 0.1, 1.0), keep their holes without ever
//! producing the zeros.
//!
//! This module knows nothing of manifests, digests or compression.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt::Display;
use std::fs;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tar::EntryType;

use crate::dropped::{DroppedNodes, SpecialKind};
use crate::error::io_ctx;
use crate::meta::{self, Meta, Privilege};
use crate::safepath::{self, Missing, Resolved};
use crate::sparse::{self, PaxSparse};
use crate::tar_entry::{pax_sparse, read_meta};
use crate::ImageError;

/// Whiteout prefix of the OCI layer format.
const WHITEOUT: &[u8] = b".wh.";
/// The opaque-directory marker, after [`WHITEOUT`].
const OPAQUE: &[u8] = b".wh..opq";

/// What the tar stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TarKind {
    /// An image layer: whiteouts apply.
    Layer,
    /// A plain root filesystem: `.wh.` files are ordinary files.
    Rootfs,
}

/// Applies the tar stream `reader` onto `root`. `label` names the stream in
/// errors (`layer 2/3 (sha256:…)`); special files left out are recorded in
/// `dropped` (shared by the layers of an image). Returns the number of
/// entries and the reader (positioned after the end-of-archive marker), so
/// callers can drain it to finish a digest.
pub(crate) fn apply_tar<R: Read>(
    root: &Path,
    reader: R,
    label: &str,
    kind: TarKind,
    privilege: Privilege,
    dropped: &mut DroppedNodes,
) -> Result<(u64, R), ImageError> {
    let mut applier = Applier::new(root, label, kind, privilege, dropped);
    let mut archive = tar::Archive::new(reader);
    let corrupt = |e: io::Error| ImageError::CorruptArchive {
        what: label.to_string(),
        reason: e.to_string(),
    };
    let mut count = 0;
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        applier.entry(&mut entry)?;
        count += 1;
    }
    applier.finish_dirs()?;
    Ok((count, archive.into_inner()))
}

pub(crate) struct Applier<'a> {
    root: &'a Path,
    /// Leading components every entry name (and hard link target) must have and that
    /// are dropped (a snapshot archive's `rootfs/`); empty for image archives.
    strip: Vec<OsString>,
    label: &'a str,
    kind: TarKind,
    privilege: Privilege,
    /// Special files left out so far.
    dropped: &'a mut DroppedNodes,
    /// Paths (relative, resolved) this stream created.
    written: HashSet<PathBuf>,
    /// Directories above something this stream created.
    ancestors: HashSet<PathBuf>,
    /// Directories whose mode and mtime are set once all entries are in.
    dirs: Vec<(PathBuf, Meta)>,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(
        root: &'a Path,
        label: &'a str,
        kind: TarKind,
        privilege: Privilege,
        dropped: &'a mut DroppedNodes,
    ) -> Self {
        Applier {
            root,
            strip: Vec::new(),
            label,
            kind,
            privilege,
            dropped,
            written: HashSet::new(),
            ancestors: HashSet::new(),
            dirs: Vec::new(),
        }
    }

    /// Entry names (and hard link targets) must start with `prefix`, which is dropped.
    pub(crate) fn strip_prefix(mut self, prefix: &str) -> Self {
        self.strip = safepath::parse_entry_path(prefix.as_bytes()).unwrap_or_default();
        self
    }

    /// `comps` without the prefix every name must have.
    fn stripped(&self, comps: Vec<OsString>, name: &str) -> Result<Vec<OsString>, ImageError> {
        if comps.starts_with(&self.strip) {
            Ok(comps[self.strip.len()..].to_vec())
        } else {
            Err(self.refuse(name, "the entry is outside the archive's tree"))
        }
    }

    pub(crate) fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), ImageError> {
        let mut kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let mut raw = entry.path_bytes().into_owned();
        // Pre-POSIX archives mark directories as regular files named `dir/`.
        if kind == EntryType::Regular && raw.ends_with(b"/") {
            kind = EntryType::Directory;
        }
        let sparse = if matches!(kind, EntryType::Regular | EntryType::Continuous) {
            pax_sparse(entry).map_err(|e| {
                self.bad(
                    &String::from_utf8_lossy(&raw),
                    format!("invalid sparse file map: {e}"),
                )
            })?
        } else {
            None
        };
        // A PAX sparse file's header names a placeholder; its real name is a record.
        if let Some(real) = sparse.as_ref().and_then(|s| s.name.clone()) {
            raw = real;
        }
        let name = String::from_utf8_lossy(&raw).into_owned();
        let comps = safepath::parse_entry_path(&raw).map_err(|r| self.refuse(&name, r))?;
        let comps = self.stripped(comps, &name)?;
        if self.kind == TarKind::Layer {
            if let Some(target) = comps
                .last()
                .and_then(|c| c.as_bytes().strip_prefix(WHITEOUT))
            {
                let target = target.to_vec();
                return self.whiteout(&comps, &target, &name);
            }
        }
        let meta =
            read_meta(entry).map_err(|e| self.bad(&name, format!("unreadable header: {e}")))?;
        match kind {
            EntryType::Directory => self.directory(&comps, meta, &name),
            EntryType::Regular | EntryType::Continuous => match sparse {
                Some(map) => self.pax_sparse_file(&comps, &meta, map, entry, &name),
                None => self.file(&comps, &meta, entry, &name),
            },
            EntryType::GNUSparse => self.gnu_sparse_file(&comps, &meta, entry, &name),
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.symlink(&comps, &meta, &target, &name)
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                self.hard_link(&comps, &target, &name)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let special = match kind {
                    EntryType::Char => SpecialKind::Char,
                    EntryType::Block => SpecialKind::Block,
                    _ => SpecialKind::Fifo,
                };
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                self.special(&comps, special, (major, minor), &name)
            }
            other => {
                tracing::warn!(layer = self.label, entry = %name, kind = ?other, "unsupported tar entry type skipped");
                Ok(())
            }
        }
    }

    fn directory(&mut self, comps: &[OsString], meta: Meta, name: &str) -> Result<(), ImageError> {
        let target = self.resolve(comps, name)?;
        if !target.rel.as_os_str().is_empty() {
            match fs::symlink_metadata(&target.abs) {
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    remove_existing(&target.abs)?;
                    fs::create_dir(&target.abs)
                        .map_err(io_ctx("creating directory", &target.abs))?;
                }
                Err(_) => fs::create_dir(&target.abs)
                    .map_err(io_ctx("creating directory", &target.abs))?,
            }
        }
        meta::set_owner(&target.abs, meta.uid, meta.gid, self.privilege)
            .map_err(io_ctx("setting owner of", &target.abs))?;
        meta::set_xattrs(&target.abs, &meta.xattrs);
        self.mark(&target.rel);
        self.dirs.push((target.rel, meta));
        Ok(())
    }

    /// A regular file, written sparsely: its zero blocks become holes.
    fn file<R: Read>(
        &mut self,
        comps: &[OsString],
        meta: &Meta,
        data: &mut R,
        name: &str,
    ) -> Result<(), ImageError> {
        let target = self.resolve_non_root(comps, name)?;
        let file = new_file(&target.abs)?;
        sparse::write_sparse(&file, data, 0, None)
            .and_then(|end| file.set_len(end))
            .map_err(io_ctx("writing", &target.abs))?;
        drop(file);
        self.finish_file(&target, meta)
    }

    /// A PAX-format GNU sparse file: its data segments land at their
    /// offsets; the holes between them are never written.
    fn pax_sparse_file<R: Read>(
        &mut self,
        comps: &[OsString],
        meta: &Meta,
        mut map: PaxSparse,
        data: &mut R,
        name: &str,
    ) -> Result<(), ImageError> {
        let target = self.resolve_non_root(comps, name)?;
        let file = new_file(&target.abs)?;
        let mut reader = BufReader::with_capacity(64 << 10, data);
        if map.map_in_data {
            map.read_map(&mut reader)
                .map_err(|e| self.bad(name, format!("invalid sparse file map: {e}")))?;
        }
        map.write(&file, &mut reader)
            .map_err(io_ctx("writing", &target.abs))?;
        drop(file);
        self.finish_file(&target, meta)
    }

    /// An old-GNU sparse file (type `S`), unpacked by the tar crate, which
    /// seeks over its holes (the sparse map's extension headers are only
    /// visible to it).
    fn gnu_sparse_file<R: Read>(
        &mut self,
        comps: &[OsString],
        meta: &Meta,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(), ImageError> {
        let target = self.resolve_non_root(comps, name)?;
        remove_existing(&target.abs)?;
        // It creates the file with O_EXCL, so nothing in the tree is followed.
        entry
            .unpack(&target.abs)
            .map_err(io_ctx("writing", &target.abs))?;
        self.finish_file(&target, meta)
    }

    fn finish_file(&mut self, target: &Resolved, meta: &Meta) -> Result<(), ImageError> {
        meta::apply(&target.abs, meta, false, self.privilege)
            .map_err(io_ctx("setting metadata of", &target.abs))?;
        self.mark(&target.rel);
        Ok(())
    }

    fn symlink(
        &mut self,
        comps: &[OsString],
        meta: &Meta,
        target: &[u8],
        name: &str,
    ) -> Result<(), ImageError> {
        if target.is_empty() {
            return Err(self.bad(name, "symbolic link without a target"));
        }
        let path = self.resolve_non_root(comps, name)?;
        remove_existing(&path.abs)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &path.abs)
            .map_err(io_ctx("creating symbolic link", &path.abs))?;
        meta::apply(&path.abs, meta, true, self.privilege)
            .map_err(io_ctx("setting metadata of", &path.abs))?;
        self.mark(&path.rel);
        Ok(())
    }

    fn hard_link(
        &mut self,
        comps: &[OsString],
        target: &[u8],
        name: &str,
    ) -> Result<(), ImageError> {
        let shown = String::from_utf8_lossy(target);
        let tcomps = safepath::parse_entry_path(target)
            .map_err(|r| self.refuse(name, format!("hard link target '{shown}': {r}")))?;
        let tcomps = self.stripped(tcomps, name)?;
        if tcomps.is_empty() {
            return Err(self.refuse(name, "hard link to the root directory"));
        }
        let missing = || {
            self.bad(name, format!("hard link target '{shown}' does not exist (it must come earlier in the archive)"))
        };
        let source = safepath::resolve(self.root, &tcomps, Missing::Absent)
            .map_err(|e| {
                self.bad(
                    name,
                    format!("hard link target '{shown}': {}", e.describe()),
                )
            })?
            .ok_or_else(missing)?;
        if let Some(kind) = self.dropped.kind_at(&source.rel) {
            // A link to a node that was left out is left out as well.
            return self.drop_entry(comps, kind, name);
        }
        match fs::symlink_metadata(&source.abs) {
            Ok(md) if md.is_dir() => {
                return Err(self.bad(name, format!("hard link target '{shown}' is a directory")))
            }
            Ok(_) => {}
            Err(_) => return Err(missing()),
        }
        let path = self.resolve_non_root(comps, name)?;
        if path.abs == source.abs {
            return Ok(());
        }
        remove_existing(&path.abs)?;
        fs::hard_link(&source.abs, &path.abs).map_err(io_ctx("creating hard link", &path.abs))?;
        self.mark(&path.rel);
        Ok(())
    }

    /// A device node or FIFO: never created. Like any entry it replaces
    /// what was at its path; then it is counted as dropped. In a layer, a
    /// 0:0 character device is an overlayfs whiteout of its path.
    fn special(
        &mut self,
        comps: &[OsString],
        kind: SpecialKind,
        (major, minor): (u32, u32),
        name: &str,
    ) -> Result<(), ImageError> {
        if self.kind == TarKind::Layer && kind == SpecialKind::Char && (major, minor) == (0, 0) {
            if comps.is_empty() {
                return Err(self.refuse(name, "whiteout of the root directory"));
            }
            return self.remove_lower(comps, name);
        }
        self.drop_entry(comps, kind, name)
    }

    /// Applies an entry that is left out: it still replaces what was at its
    /// path, then counts as dropped.
    fn drop_entry(
        &mut self,
        comps: &[OsString],
        kind: SpecialKind,
        name: &str,
    ) -> Result<(), ImageError> {
        let path = self.resolve_non_root(comps, name)?;
        remove_existing(&path.abs)?;
        self.dropped.drop_node(&path.rel, kind, name);
        Ok(())
    }

    /// `.wh.NAME` removes NAME from lower layers; `.wh..wh..opq` empties
    /// its directory of everything lower layers put there.
    fn whiteout(
        &mut self,
        comps: &[OsString],
        target: &[u8],
        name: &str,
    ) -> Result<(), ImageError> {
        if target == OPAQUE {
            // Resolving the marker itself resolves (and follows) its directory.
            let Some(marker) = self.resolve_opt(comps, Missing::Absent, name)? else {
                return Ok(());
            };
            let (Some(dir_abs), Some(dir_rel)) = (marker.abs.parent(), marker.rel.parent()) else {
                return Ok(());
            };
            return self.clear_lower(dir_abs, dir_rel);
        }
        if target.starts_with(WHITEOUT) {
            // Other AUFS metadata (`.wh..wh.plnk`, …): not content.
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(self.refuse(name, "whiteout of an invalid name"));
        }
        let mut victim = comps[..comps.len() - 1].to_vec();
        victim.push(OsStr::from_bytes(target).to_os_string());
        self.remove_lower(&victim, name)
    }

    /// Removes `comps` if lower layers put it there: a whiteout hides lower
    /// layers only, never its own layer's files.
    fn remove_lower(&mut self, comps: &[OsString], name: &str) -> Result<(), ImageError> {
        let Some(victim) = self.resolve_opt(comps, Missing::Absent, name)? else {
            return Ok(());
        };
        if !self.written.contains(&victim.rel) {
            remove_existing(&victim.abs)?;
            self.dropped.replaced(&victim.rel);
        }
        Ok(())
    }

    /// Removes from `abs` everything this stream did not create, descending
    /// into directories that hold something it did.
    fn clear_lower(&self, abs: &Path, rel: &Path) -> Result<(), ImageError> {
        let entries = match fs::read_dir(abs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ImageError::io("listing", abs, e)),
        };
        for child in entries {
            let child = child.map_err(io_ctx("listing", abs))?;
            let (child_abs, child_rel) = (child.path(), rel.join(child.file_name()));
            if self.written.contains(&child_rel) || self.ancestors.contains(&child_rel) {
                let is_dir = fs::symlink_metadata(&child_abs)
                    .map(|m| m.is_dir())
                    .unwrap_or(false);
                if is_dir {
                    self.clear_lower(&child_abs, &child_rel)?;
                }
            } else {
                remove_existing(&child_abs)?;
            }
        }
        Ok(())
    }

    /// Sets mode and mtime of the directories this stream declared, deepest
    /// first, now that nothing more is written into them. Directories that
    /// were since replaced (or moved behind a symlink) are left alone.
    pub(crate) fn finish_dirs(&mut self) -> Result<(), ImageError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
        for (rel, meta) in dirs {
            if !safepath::is_plain_dir(self.root, &rel) {
                continue;
            }
            let abs = self.root.join(&rel);
            meta::set_mode(&abs, meta.mode).map_err(io_ctx("setting mode of", &abs))?;
            meta::set_mtime(&abs, meta.mtime_secs, meta.mtime_nsecs)
                .map_err(io_ctx("setting mtime of", &abs))?;
        }
        Ok(())
    }

    fn mark(&mut self, rel: &Path) {
        self.dropped.replaced(rel);
        self.written.insert(rel.to_path_buf());
        let mut up = rel.parent();
        while let Some(dir) = up {
            if dir.as_os_str().is_empty() || !self.ancestors.insert(dir.to_path_buf()) {
                break;
            }
            up = dir.parent();
        }
    }

    fn resolve(&self, comps: &[OsString], name: &str) -> Result<Resolved, ImageError> {
        self.resolve_opt(comps, Missing::Create, name)?
            .ok_or_else(|| self.bad(name, "parent directory vanished"))
    }

    fn resolve_non_root(&self, comps: &[OsString], name: &str) -> Result<Resolved, ImageError> {
        if comps.is_empty() {
            return Err(self.bad(
                name,
                "the root directory can only be replaced by a directory",
            ));
        }
        self.resolve(comps, name)
    }

    fn resolve_opt(
        &self,
        comps: &[OsString],
        missing: Missing,
        name: &str,
    ) -> Result<Option<Resolved>, ImageError> {
        safepath::resolve(self.root, comps, missing).map_err(|e| self.bad(name, e.describe()))
    }

    fn refuse(&self, entry: &str, reason: impl Display) -> ImageError {
        ImageError::UnsafeEntry {
            layer: self.label.to_string(),
            entry: entry.to_string(),
            reason: reason.to_string(),
        }
    }

    fn bad(&self, entry: &str, reason: impl Display) -> ImageError {
        ImageError::BadEntry {
            layer: self.label.to_string(),
            entry: entry.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Creates the regular file `path` (replacing whatever is there) for
/// writing, never following a symlink: only the importer can read it until
/// its metadata is applied.
fn new_file(path: &Path) -> Result<fs::File, ImageError> {
    remove_existing(path)?;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_ctx("creating", path))
}

/// Removes whatever is at `path` (a directory with all its content, not
/// following symlinks); absence is fine.
pub(crate) fn remove_existing(path: &Path) -> Result<(), ImageError> {
    let result = match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(io_ctx("removing", path))
}
