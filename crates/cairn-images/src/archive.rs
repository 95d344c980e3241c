//! The outer container of an image: a tar archive (maybe compressed) or an
//! OCI image layout directory, seen as a store of named files ("blobs").
//!
//! An uncompressed archive is indexed in place and read at offsets; a
//! compressed one is first decompressed into an anonymous scratch file so
//! that blobs can be read in manifest order, whatever order the archive
//! stores them in. Deciding what the archive *is* (OCI layout, docker-save,
//! plain root filesystem) also happens here; reading manifests does not.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::io_ctx;
use crate::safepath::parse_entry_path;
use crate::sparse;
use crate::stream::{decoder, sniff, Budget, Compression, Limited};
use crate::ImageError;

/// Documents read while indexing, since every later decision needs them.
const DOCS: [&str; 3] = ["oci-layout", "index.json", "manifest.json"];
/// Largest manifest-like document we read into memory.
pub(crate) const MAX_DOC_BYTES: u64 = 16 << 20;
/// How many links to follow to reach a blob inside an archive.
const MAX_LINK_HOPS: u32 = 8;

/// What an archive or directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/`).
    Oci,
    /// A `docker save` archive (`manifest.json` listing config and layers).
    Docker,
    /// Anything else: a root filesystem.
    Rootfs,
}

/// An opened image archive.
pub(crate) enum Opened {
    /// A plain root filesystem tarball: apply it as is.
    Rootfs(Compression),
    /// An image: read its manifests and layers from the store.
    Image(Layout, BlobStore),
}

/// Files addressed by their path inside an archive or layout directory.
pub(crate) enum BlobStore {
    /// An uncompressed tar file, indexed.
    Tar { file: File, index: TarIndex },
    /// An OCI image layout directory.
    Dir { root: PathBuf },
}

/// An opened blob: its content and its stored size.
pub(crate) type Blob<'a> = (Box<dyn Read + 'a>, u64);

/// Where each file of an uncompressed tar lives.
#[derive(Default)]
pub(crate) struct TarIndex {
    items: HashMap<String, Item>,
    docs: HashMap<String, Vec<u8>>,
    entries: u64,
}

enum Item {
    Data { offset: u64, size: u64 },
    Link(String),
}

/// Opens the archive at `source`, decides what it holds, and (for images)
/// makes its blobs readable, spooling a compressed archive into `scratch`.
pub(crate) fn open(source: &Path, scratch: &Path, limit: u64) -> Result<Opened, ImageError> {
    let file = File::open(source).map_err(io_ctx("opening", source))?;
    let mut head = [0u8; 8];
    let n = file
        .read_at(&mut head, 0)
        .map_err(io_ctx("reading", source))?;
    let compression = sniff(&mut &head[..n], &source.display().to_string())?;
    if compression == Compression::None {
        let index = index_tar(source, tar::Archive::new(&file).entries_with_seek())?;
        return Ok(match layout_of(&index.docs) {
            Layout::Rootfs => Opened::Rootfs(compression),
            layout => Opened::Image(layout, BlobStore::Tar { file, index }),
        });
    }
    // First pass: what is it? (Only decompression, nothing written.)
    let budget = Budget::new(limit);
    let stream = Limited::new(decode_file(source, compression)?, &budget);
    let index =
        index_tar(source, tar::Archive::new(stream).entries()).map_err(|e| budget.explain(e))?;
    let layout = layout_of(&index.docs);
    if layout == Layout::Rootfs {
        return Ok(Opened::Rootfs(compression));
    }
    // An image: decompress once into an anonymous file and index that.
    let budget = Budget::new(limit);
    let mut spool =
        tempfile::tempfile_in(scratch).map_err(io_ctx("creating a scratch file in", scratch))?;
    let mut stream = Limited::new(decode_file(source, compression)?, &budget);
    // Sparsely: a bomb of zeros then takes no space while it is refused.
    sparse::write_sparse(&spool, &mut stream, 0, None)
        .and_then(|end| spool.set_len(end))
        .map_err(|e| {
            budget.explain(ImageError::CorruptArchive {
                what: source.display().to_string(),
                reason: e.to_string(),
            })
        })?;
    spool
        .seek(SeekFrom::Start(0))
        .map_err(io_ctx("rewinding the scratch file in", scratch))?;
    let index = index_tar(source, tar::Archive::new(&spool).entries_with_seek())?;
    Ok(Opened::Image(layout, BlobStore::Tar { file: spool, index }))
}

/// `source` decompressed.
pub(crate) fn decode_file(
    source: &Path,
    compression: Compression,
) -> Result<Box<dyn Read>, ImageError> {
    let file = File::open(source).map_err(io_ctx("opening", source))?;
    decoder(BufReader::new(file), compression).map_err(io_ctx("decompressing", source))
}

/// True when `dir` looks like an OCI image layout rather than a root
/// filesystem.
pub(crate) fn is_oci_layout_dir(dir: &Path) -> bool {
    dir.join("oci-layout").is_file()
        && dir.join("index.json").is_file()
        && dir.join("blobs").is_dir()
}

fn layout_of(docs: &HashMap<String, Vec<u8>>) -> Layout {
    if docs.contains_key("oci-layout") && docs.contains_key("index.json") {
        return Layout::Oci;
    }
    let docker = docs
        .get("manifest.json")
        .and_then(|m| serde_json::from_slice::<serde_json::Value>(m).ok())
        .is_some_and(|v| v.is_array());
    if docker {
        Layout::Docker
    } else {
        Layout::Rootfs
    }
}

fn index_tar<R: Read>(
    source: &Path,
    entries: io::Result<tar::Entries<'_, R>>,
) -> Result<TarIndex, ImageError> {
    let mut index = TarIndex::default();
    let fail = |index: &TarIndex, e: io::Error| {
        if index.entries == 0 {
            ImageError::NotAnArchive {
                path: source.to_path_buf(),
                reason: e.to_string(),
            }
        } else {
            ImageError::CorruptArchive {
                what: source.display().to_string(),
                reason: e.to_string(),
            }
        }
    };
    let entries = entries.map_err(|e| fail(&index, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(&index, e))?;
        index.entries += 1;
        let Some(name) = normalize(&entry.path_bytes()) else {
            continue;
        };
        let kind = entry.header().entry_type();
        let item = if kind.is_file() || kind == tar::EntryType::Continuous {
            Item::Data {
                offset: entry.raw_file_position(),
                size: entry.size(),
            }
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let base = if kind.is_symlink() {
                parent_of(&name)
            } else {
                ""
            };
            match join_inside(base, &target) {
                Some(target) => Item::Link(target),
                None => continue,
            }
        } else {
            continue;
        };
        if kind.is_file() && DOCS.contains(&name.as_str()) && entry.size() <= MAX_DOC_BYTES {
            let mut doc = Vec::new();
            entry.read_to_end(&mut doc).map_err(|e| fail(&index, e))?;
            index.docs.insert(name.clone(), doc);
        }
        index.items.insert(name, item);
    }
    if index.entries == 0 {
        return Err(ImageError::EmptySource {
            path: source.to_path_buf(),
        });
    }
    Ok(index)
}

impl BlobStore {
    /// Opens the file `name` (a path inside the archive or layout); `None`
    /// when it is not there. Returns the reader and the file's size.
    pub(crate) fn open(&self, name: &str) -> Result<Option<Blob<'_>>, ImageError> {
        match self {
            BlobStore::Tar { file, index } => {
                let Some(mut name) = normalize(name.as_bytes()) else {
                    return Ok(None);
                };
                for _ in 0..=MAX_LINK_HOPS {
                    match index.items.get(&name) {
                        Some(Item::Data { offset, size }) => {
                            let section = Section {
                                file,
                                pos: *offset,
                                end: offset.saturating_add(*size),
                            };
                            return Ok(Some((Box::new(section), *size)));
                        }
                        Some(Item::Link(target)) => name = target.clone(),
                        None => return Ok(None),
                    }
                }
                Ok(None)
            }
            BlobStore::Dir { root } => {
                if normalize(name.as_bytes()).is_none() {
                    return Ok(None);
                }
                let path = root.join(name);
                // Symlinks inside the layout are fine; out of it, not.
                let (Ok(real), Ok(real_root)) = (fs::canonicalize(&path), fs::canonicalize(root))
                else {
                    return Ok(None);
                };
                if !real.starts_with(&real_root) || !real.is_file() {
                    return Ok(None);
                }
                let file = File::open(&real).map_err(io_ctx("opening", &real))?;
                let size = file.metadata().map_err(io_ctx("reading", &real))?.len();
                Ok(Some((Box::new(BufReader::new(file)), size)))
            }
        }
    }

    /// Reads the small document `name` whole; `None` when absent.
    pub(crate) fn read_doc(
        &self,
        name: &str,
        source: &Path,
    ) -> Result<Option<Vec<u8>>, ImageError> {
        if let BlobStore::Tar { index, .. } = self {
            if let Some(doc) = index.docs.get(name) {
                return Ok(Some(doc.clone()));
            }
        }
        let Some((reader, size)) = self.open(name)? else {
            return Ok(None);
        };
        if size > MAX_DOC_BYTES {
            return Err(ImageError::InvalidManifest {
                path: source.to_path_buf(),
                what: name.to_string(),
                reason: format!("it is {size} bytes long, more than the {MAX_DOC_BYTES} bytes a manifest may have"),
            });
        }
        let mut doc = Vec::new();
        reader
            .take(MAX_DOC_BYTES)
            .read_to_end(&mut doc)
            .map_err(io_ctx("reading", source))?;
        Ok(Some(doc))
    }
}

/// A byte range of a file, read with positioned reads.
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside a file",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The canonical name of an archive member (`./a//b` → `a/b`); `None` for
/// names that are absolute, climb with `..`, or are not UTF-8.
fn normalize(bytes: &[u8]) -> Option<String> {
    let comps = parse_entry_path(bytes).ok()?;
    let parts: Option<Vec<&str>> = comps.iter().map(|c| c.to_str()).collect();
    let joined = parts?.join("/");
    (!joined.is_empty()).then_some(joined)
}

fn parent_of(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// `target` (a link target) taken relative to `base`, staying inside the
/// archive; `None` when it climbs out or is absolute.
fn join_inside(base: &str, target: &[u8]) -> Option<String> {
    let target = std::str::from_utf8(target).ok()?;
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_save_layer_symlinks_resolve_inside_the_archive() {
        assert_eq!(
            join_inside("abc", b"../def/layer.tar").as_deref(),
            Some("def/layer.tar")
        );
        assert_eq!(join_inside("", b"../x"), None);
        assert_eq!(join_inside("a", b"/etc/passwd"), None);
        assert_eq!(
            normalize(b"./blobs//sha256/x").as_deref(),
            Some("blobs/sha256/x")
        );
        assert_eq!(normalize(b"../x"), None);
    }
}
