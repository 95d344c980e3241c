//! Comparing two trees (e.g. two snapshots of a sandbox root): which paths
//! were added, modified or deleted. Metadata-based (type, mode, owner, size,
//! mtime, symlink target), optionally confirming equal-looking files by content.
//!
//! Not for measuring disk use of shared extents: it reads files as a user sees them.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What happened to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Only in the new tree.
    Added,
    /// In both, different.
    Modified,
    /// Only in the old tree.
    Deleted,
}

/// One difference between two trees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Path relative to the tree roots, starting with `/`.
    pub path: String,
    /// What happened.
    pub kind: ChangeKind,
    /// Bytes of the new file (added, modified) or the old one (deleted); 0 for directories.
    pub size: u64,
}

/// Why two trees could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A root does not exist.
    #[error("cannot compare: {path} does not exist")]
    Missing {
        /// The missing root.
        path: PathBuf,
    },
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// Options for [`diff_trees_with`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DiffOptions {
    /// Also compare the bytes of regular files whose metadata looks equal.
    pub compare_contents: bool,
}

/// Differences from `old` to `new`, sorted by path (metadata only).
pub fn diff_trees(old: &Path, new: &Path) -> Result<Vec<Change>, DiffError> {
    diff_trees_with(old, new, &DiffOptions::default())
}

/// Bytes of added and modified files: what a snapshot holds over its parent.
pub fn delta_bytes(changes: &[Change]) -> u64 {
    changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Deleted)
        .map(|c| c.size)
        .sum()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DiffError + '_ {
    move |source| DiffError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn entries(dir: &Path) -> Result<BTreeMap<String, Metadata>, DiffError> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let md = std::fs::symlink_metadata(e.path()).map_err(io(&e.path()))?;
        out.insert(e.file_name().to_string_lossy().into_owned(), md);
    }
    Ok(out)
}

fn size_of(md: &Metadata) -> u64 {
    if md.is_dir() {
        0
    } else {
        md.len()
    }
}

/// Differences from `old` to `new`, sorted by path.
pub fn diff_trees_with(
    old: &Path,
    new: &Path,
    opts: &DiffOptions,
) -> Result<Vec<Change>, DiffError> {
    for root in [old, new] {
        if std::fs::symlink_metadata(root).is_err() {
            return Err(DiffError::Missing {
                path: root.to_path_buf(),
            });
        }
    }
    let mut out = Vec::new();
    walk(old, new, "", opts, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn walk(
    old: &Path,
    new: &Path,
    rel: &str,
    opts: &DiffOptions,
    out: &mut Vec<Change>,
) -> Result<(), DiffError> {
    let a = entries(old)?;
    let b = entries(new)?;
    for (name, md) in &a {
        let path = format!("{rel}/{name}");
        match b.get(name) {
            None => whole(&old.join(name), &path, md, ChangeKind::Deleted, out)?,
            Some(nmd) => {
                let (op, np) = (old.join(name), new.join(name));
                if md.is_dir() && nmd.is_dir() {
                    if md.mode() != nmd.mode() || md.uid() != nmd.uid() || md.gid() != nmd.gid() {
                        out.push(Change {
                            path: path.clone(),
                            kind: ChangeKind::Modified,
                            size: 0,
                        });
                    }
                    walk(&op, &np, &path, opts, out)?;
                } else if md.file_type() != nmd.file_type() {
                    whole(&op, &path, md, ChangeKind::Deleted, out)?;
                    whole(&np, &path, nmd, ChangeKind::Added, out)?;
                } else if differs(&op, md, &np, nmd, opts)? {
                    out.push(Change {
                        path,
                        kind: ChangeKind::Modified,
                        size: size_of(nmd),
                    });
                }
            }
        }
    }
    for (name, md) in &b {
        if !a.contains_key(name) {
            whole(
                &new.join(name),
                &format!("{rel}/{name}"),
                md,
                ChangeKind::Added,
                out,
            )?;
        }
    }
    Ok(())
}

/// Records `path` and, for a directory, everything under it.
fn whole(
    abs: &Path,
    path: &str,
    md: &Metadata,
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<(), DiffError> {
    out.push(Change {
        path: path.to_string(),
        kind,
        size: size_of(md),
    });
    if md.is_dir() {
        for (name, child) in entries(abs)? {
            whole(
                &abs.join(&name),
                &format!("{path}/{name}"),
                &child,
                kind,
                out,
            )?;
        }
    }
    Ok(())
}

fn differs(
    op: &Path,
    a: &Metadata,
    np: &Path,
    b: &Metadata,
    opts: &DiffOptions,
) -> Result<bool, DiffError> {
    if a.mode() != b.mode()
        || a.uid() != b.uid()
        || a.gid() != b.gid()
        || a.len() != b.len()
        || a.mtime() != b.mtime()
        || a.mtime_nsec() != b.mtime_nsec()
    {
        return Ok(true);
    }
    if a.file_type().is_symlink() {
        return Ok(
            std::fs::read_link(op).map_err(io(op))? != std::fs::read_link(np).map_err(io(np))?
        );
    }
    if opts.compare_contents && a.is_file() {
        return Ok(!same_contents(op, np)?);
    }
    Ok(false)
}

fn same_contents(a: &Path, b: &Path) -> Result<bool, DiffError> {
    let mut fa = std::fs::File::open(a).map_err(io(a))?;
    let mut fb = std::fs::File::open(b).map_err(io(b))?;
    let (mut ba, mut bb) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let na = fa.read(&mut ba).map_err(io(a))?;
        let mut filled = 0;
        while filled < na {
            let n = fb.read(&mut bb[filled..na]).map_err(io(b))?;
            if n == 0 {
                return Ok(false);
            }
            filled += n;
        }
        if ba[..na] != bb[..na] {
            return Ok(false);
        }
        if na == 0 {
            return Ok(fb.read(&mut bb).map_err(io(b))? == 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn pair() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        for d in [&a, &b] {
            fs::create_dir_all(d.join("etc")).unwrap();
            fs::write(d.join("etc/same"), "same").unwrap();
        }
        let mtime = fs::metadata(a.join("etc/same"))
            .unwrap()
            .modified()
            .unwrap();
        fs::File::options()
            .write(true)
            .open(b.join("etc/same"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        (t, a, b)
    }

    fn kinds(c: &[Change]) -> Vec<(ChangeKind, &str)> {
        c.iter().map(|c| (c.kind, c.path.as_str())).collect()
    }

    #[test]
    fn identical_trees_have_no_changes() {
        let (_t, a, b) = pair();
        assert!(diff_trees(&a, &b).unwrap().is_empty());
    }

    #[test]
    fn added_modified_deleted_and_whole_directories_are_listed() {
        let (_t, a, b) = pair();
        fs::write(b.join("new"), "12345").unwrap();
        fs::create_dir_all(a.join("gone/sub")).unwrap();
        fs::write(a.join("gone/sub/f"), "x").unwrap();
        fs::write(b.join("etc/same"), "longer now").unwrap();
        let c = diff_trees(&a, &b).unwrap();
        assert_eq!(
            kinds(&c),
            [
                (ChangeKind::Modified, "/etc/same"),
                (ChangeKind::Deleted, "/gone"),
                (ChangeKind::Deleted, "/gone/sub"),
                (ChangeKind::Deleted, "/gone/sub/f"),
                (ChangeKind::Added, "/new"),
            ]
        );
        assert_eq!(delta_bytes(&c), 5 + 10);
    }

    #[test]
    fn chmod_and_symlink_retarget_are_modifications() {
        let (_t, a, b) = pair();
        use std::os::unix::fs::{symlink, PermissionsExt};
        symlink("x", a.join("l")).unwrap();
        symlink("y", b.join("l")).unwrap();
        fs::set_permissions(b.join("etc/same"), fs::Permissions::from_mode(0o600)).unwrap();
        let c = diff_trees(&a, &b).unwrap();
        assert_eq!(
            kinds(&c),
            [
                (ChangeKind::Modified, "/etc/same"),
                (ChangeKind::Modified, "/l")
            ]
        );
    }

    #[test]
    fn directory_mtime_alone_is_not_a_change() {
        let (_t, a, b) = pair();
        fs::write(b.join("etc/tmp"), "").unwrap();
        fs::remove_file(b.join("etc/tmp")).unwrap();
        assert!(diff_trees(&a, &b).unwrap().is_empty());
    }

    #[test]
    fn content_comparison_catches_same_size_same_mtime_rewrites() {
        let (_t, a, b) = pair();
        let mtime = fs::metadata(b.join("etc/same"))
            .unwrap()
            .modified()
            .unwrap();
        fs::write(b.join("etc/same"), "SAME").unwrap();
        fs::File::options()
            .write(true)
            .open(b.join("etc/same"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert!(diff_trees(&a, &b).unwrap().is_empty());
        let c = diff_trees_with(
            &a,
            &b,
            &DiffOptions {
                compare_contents: true,
            },
        )
        .unwrap();
        assert_eq!(kinds(&c), [(ChangeKind::Modified, "/etc/same")]);
    }

    #[test]
    fn a_missing_root_is_an_error() {
        let (_t, a, b) = pair();
        assert!(matches!(
            diff_trees(&a, &b.join("nope")),
            Err(DiffError::Missing { .. })
        ));
    }
}
