//! The build context of `cairn template build`: what a COPY may take (only what is inside
//! the context directory, links not followed out of it), the hash of what it takes (for
//! the step's key), and the tar stream that carries it into the build sandbox.

use std::io::Write as _;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::client::CliError;

/// The context path a COPY source means: inside the context, whatever links it passes.
fn source_in(context: &Path, src: &str) -> Result<PathBuf> {
    let rel = Path::new(src.trim_start_matches('/'));
    if rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(CliError::invalid(format!(
            "COPY source '{src}' leaves the context directory ('..'): copy only what is inside it"
        ))
        .into());
    }
    let root = context
        .canonicalize()
        .with_context(|| format!("cannot read the context directory '{}'", context.display()))?;
    let path = root.join(rel);
    let real = path.canonicalize().map_err(|e| {
        CliError::invalid(format!(
            "COPY source '{src}' is not in the context directory: {e}"
        ))
    })?;
    if !real.starts_with(&root) {
        return Err(CliError::invalid(format!(
            "COPY source '{src}' is a link that leads out of the context directory: links are not followed out of it"
        ))
        .into());
    }
    Ok(path)
}

/// Hashes a file tree (names, kinds, modes, contents, link targets), links not followed.
fn hash_tree(h: &mut Sha256, path: &Path, name: &str) -> Result<()> {
    let md = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot read '{}'", path.display()))?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&md.permissions());
    h.update(format!("{name}\0{mode:o}\0").as_bytes());
    if md.file_type().is_symlink() {
        h.update(b"l");
        h.update(std::fs::read_link(path)?.as_os_str().as_encoded_bytes());
    } else if md.is_dir() {
        h.update(b"d");
        let mut children: Vec<_> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()?;
        children.sort();
        for c in children {
            let child = format!("{name}/{}", c.to_string_lossy());
            hash_tree(h, &path.join(&c), &child)?;
        }
    } else if md.is_file() {
        h.update(b"f");
        let mut f = std::fs::File::open(path)?;
        std::io::copy(&mut f, h)?;
    } else {
        return Err(CliError::invalid(format!(
            "COPY source '{}' is neither a file, a directory nor a link",
            path.display()
        ))
        .into());
    }
    h.update(b"\0");
    Ok(())
}

/// One COPY planned: the sources in the context, where they go.
pub struct CopyPlan {
    /// (context path, the name it gets in `dir`, or `None`: a directory's contents go into `dir`).
    pub items: Vec<(PathBuf, Option<String>)>,
    /// The directory in the sandbox everything is extracted into.
    pub dir: String,
    /// The hash of the sources' contents.
    pub hash: String,
}

/// Plans a COPY of `srcs` (paths in the context) to `dst` (resolved against WORKDIR):
/// refuses sources outside the context, and hashes their contents for the step's key.
pub fn plan_copy(context: &Path, srcs: &[String], dst: &str) -> Result<CopyPlan> {
    let dst = dst.to_string();
    if !dst.starts_with('/') {
        return Err(CliError::invalid(format!(
            "COPY destination '{dst}' is relative and no WORKDIR is set: give an absolute path"
        ))
        .into());
    }
    let mut h = Sha256::new();
    let mut items = Vec::new();
    let into_dir = dst.ends_with('/') || srcs.len() > 1;
    let single_file_dir = |dst: &str| {
        let p = Path::new(dst);
        let dir = p.parent().map_or("/".into(), |d| d.display().to_string());
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        (dir, name)
    };
    let mut dir = dst.trim_end_matches('/').to_string();
    if dir.is_empty() {
        dir = "/".into();
    }
    for src in srcs {
        let path = source_in(context, src)?;
        hash_tree(&mut h, &path, src)?;
        let is_dir = std::fs::symlink_metadata(&path)?.is_dir();
        if is_dir {
            items.push((path, None));
        } else if into_dir {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            items.push((path, name));
        } else {
            let (d, name) = single_file_dir(&dst);
            dir = d;
            items.push((path, name));
        }
    }
    Ok(CopyPlan {
        items,
        dir,
        hash: hex::encode(h.finalize()),
    })
}

/// Writes a COPY's sources as a tar stream (owner root, links as links).
pub fn pack(items: Vec<(PathBuf, Option<String>)>, writer: tokio::io::DuplexStream) -> Result<()> {
    let bridge = tokio_util::io::SyncIoBridge::new(writer);
    let mut tar = tar::Builder::new(bridge);
    tar.follow_symlinks(false);
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, name) in items {
        match name {
            Some(name) => tar.append_path_with_name(&path, name)?,
            None => {
                let mut children: Vec<_> = std::fs::read_dir(&path)?
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<std::io::Result<_>>()?;
                children.sort();
                for c in children {
                    let p = path.join(&c);
                    if std::fs::symlink_metadata(&p)?.is_dir() {
                        tar.append_dir_all(&c, &p)?;
                    } else {
                        tar.append_path_with_name(&p, &c)?;
                    }
                }
            }
        }
    }
    let mut bridge = tar.into_inner()?;
    bridge.flush()?;
    Ok(())
}
