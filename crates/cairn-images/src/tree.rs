//! Trees as parts of a larger tar stream: a snapshot archive holds its root filesystem
//! under `rootfs/` and its memory checkpoint under `checkpoint/`, beside documents of its
//! own.
//!
//! [`write_tree`] appends a directory's tree under a prefix (files, directories, symlinks
//! as symlinks, hard links as links, modes, owners, times, extended attributes as
//! `SCHILY.xattr.*` PAX records); device nodes, FIFOs and sockets are left out and
//! counted. [`unpack_parts`] reads such a stream once: entries under each prefix go to
//! their destination through the same checks as every image archive (`safepath`,
//! sparse writing, no escaping links), and any other entry is handed to the caller.
//! A device node or FIFO is refused, not dropped: a snapshot archive Cairn wrote never
//! holds one.
//!
//! Not for: compression, checksums or what the documents mean (the caller's).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header, HeaderMode};

use crate::apply::{Applier, TarKind};
use crate::dropped::DroppedNodes;
use crate::meta::{self, Privilege};
use crate::ImageError;

/// What a tree holds, as [`measure_tree`] and [`write_tree`] count it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Entries written (the root directory included).
    pub entries: u64,
    /// Bytes of regular file data (a hard-linked file's once).
    pub data_bytes: u64,
    /// Device nodes, FIFOs and sockets left out.
    pub skipped: u64,
}

/// Counts what [`write_tree`] would write of the tree at `root`, from metadata alone.
pub fn measure_tree(root: &Path) -> io::Result<TreeStats> {
    let mut stats = TreeStats::default();
    let mut seen = HashMap::new();
    walk(root, &mut |_, md| {
        count(&mut stats, &mut seen, md);
        Ok(())
    })?;
    Ok(stats)
}

fn count(stats: &mut TreeStats, seen: &mut HashMap<(u64, u64), ()>, md: &fs::Metadata) {
    let ft = md.file_type();
    if ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket() {
        stats.skipped += 1;
        return;
    }
    stats.entries += 1;
    if ft.is_file() && (md.nlink() <= 1 || seen.insert((md.dev(), md.ino()), ()).is_none()) {
        stats.data_bytes += md.len();
    }
}

/// Visits `root` and everything below it (directories before their contents, names in
/// byte order), never following a symlink. `f` gets each path relative to `root` (empty
/// for the root) and its metadata.
fn walk(root: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata) -> io::Result<()>) -> io::Result<()> {
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let abs = root.join(&rel);
        let md = fs::symlink_metadata(&abs)?;
        f(&rel, &md)?;
        if md.is_dir() {
            let mut names: Vec<_> = fs::read_dir(&abs)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()?;
            names.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
            pending.extend(names.into_iter().map(|n| rel.join(n)));
        }
    }
    Ok(())
}

/// Bytes [`write_tree`] reads a file's data in at a time.
const READ_PIECE: usize = 1 << 20;

/// Appends the tree at `root` to `builder`, every entry named `prefix/…` (the root itself
/// `prefix`). The tree must not change while it is written (a read-only snapshot).
pub fn write_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    prefix: &str,
) -> io::Result<TreeStats> {
    let mut stats = TreeStats::default();
    let mut seen = HashMap::new();
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut buf = vec![0u8; READ_PIECE];
    walk(root, &mut |rel, md| {
        count(&mut stats, &mut seen, md);
        let ft = md.file_type();
        if ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket() {
            tracing::debug!(path = %rel.display(), "special file left out of the archive");
            return Ok(());
        }
        let abs = root.join(rel);
        let name = Path::new(prefix).join(rel);
        let xattrs = meta::read_xattrs(&abs).unwrap_or_default();
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .filter_map(|(k, v)| Some((format!("SCHILY.xattr.{}", k.to_str()?), v.as_slice())))
            .collect();
        if !records.is_empty() {
            builder.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))?;
        }
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(md, HeaderMode::Complete);
        if ft.is_symlink() {
            header.set_size(0);
            let target = fs::read_link(&abs)?;
            return builder.append_link(&mut header, &name, &target);
        }
        if ft.is_dir() {
            header.set_size(0);
            return builder.append_data(&mut header, &name, io::empty());
        }
        if md.nlink() > 1 {
            if let Some(first) = links.get(&(md.dev(), md.ino())) {
                header.set_entry_type(EntryType::Link);
                header.set_size(0);
                return builder.append_link(&mut header, &name, first);
            }
            links.insert((md.dev(), md.ino()), name.clone());
        }
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            &abs,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let file = File::from(fd);
        if header.set_path(&name).is_err() {
            // A name too long for the header: tar writes the GNU long-name entry first.
            return builder.append_data(&mut header, &name, ExactRead::new(file, md.len()));
        }
        header.set_cksum();
        append_file(
            builder.get_mut(),
            &header,
            ExactRead::new(file, md.len()),
            &mut buf,
        )
    })?;
    Ok(stats)
}

/// Appends a file's header and data as `tar::Builder::append` does, but reads the data in
/// pieces of `buf`'s size rather than through `io::copy`'s 8 KiB buffer: a tree of large
/// files is then read with 128 times fewer system calls, and its pieces are large
/// enough for whoever hashes the stream to hash them in one go.
fn append_file<W: Write>(
    out: &mut W,
    header: &Header,
    mut data: ExactRead,
    buf: &mut [u8],
) -> io::Result<()> {
    out.write_all(header.as_bytes())?;
    let mut len = 0u64;
    loop {
        let n = match data.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        len += n as u64;
    }
    let pad = (512 - len % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize])
}

/// A file read as exactly `len` bytes: one that shrank fails instead of shifting every
/// later entry of the archive.
struct ExactRead {
    file: io::Take<File>,
    left: u64,
}

impl ExactRead {
    fn new(file: File, len: u64) -> Self {
        ExactRead {
            file: file.take(len),
            left: len,
        }
    }
}

impl Read for ExactRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a file shrank while it was archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Where the entries under one prefix of a stream go.
pub struct Part<'a> {
    /// The leading path component of the part's entries (`rootfs`).
    pub prefix: &'a str,
    /// The existing, empty directory they are unpacked into.
    pub dest: &'a Path,
}

/// Reads the tar stream `archive` once: entries under each part's prefix are unpacked into
/// its destination with every check of an image import, and each other entry is handed
/// to `other` (with its name), which must read or refuse it. Returns the number of
/// entries. A device node or FIFO anywhere is refused ([`ImageError::UnsafeEntry`]).
pub fn unpack_parts<R, E, F>(
    archive: &mut tar::Archive<R>,
    parts: &[Part<'_>],
    label: &str,
    mut other: F,
) -> Result<u64, E>
where
    R: Read,
    E: From<ImageError>,
    F: FnMut(&str, &mut tar::Entry<'_, R>) -> Result<(), E>,
{
    let mut dropped: Vec<DroppedNodes> = parts.iter().map(|_| DroppedNodes::default()).collect();
    let mut appliers: Vec<Applier<'_>> = parts
        .iter()
        .zip(dropped.iter_mut())
        .map(|(p, d)| {
            Applier::new(p.dest, label, TarKind::Rootfs, Privilege::current(), d)
                .strip_prefix(p.prefix)
        })
        .collect();
    let corrupt = |e: io::Error| ImageError::CorruptArchive {
        what: label.to_string(),
        reason: e.to_string(),
    };
    let mut count = 0;
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        count += 1;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::Char | EntryType::Block | EntryType::Fifo) {
            return Err(ImageError::UnsafeEntry {
                layer: label.to_string(),
                entry: name,
                reason: "device nodes and FIFOs are not allowed in a snapshot archive".into(),
            }
            .into());
        }
        let first = raw
            .split(|b| *b == b'/')
            .find(|c| !c.is_empty() && *c != b".");
        let part = parts
            .iter()
            .position(|p| first == Some(p.prefix.as_bytes()));
        match part.and_then(|i| appliers.get_mut(i)) {
            Some(applier) => applier.entry(&mut entry)?,
            None => other(&name, &mut entry)?,
        }
    }
    for applier in &mut appliers {
        applier.finish_dirs()?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive_of(root: &Path) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        write_tree(&mut b, root, "rootfs").expect("write");
        b.into_inner().expect("finish")
    }

    #[test]
    fn a_tree_written_under_a_prefix_unpacks_the_same() {
        let src = tempfile::tempdir().expect("tempdir");
        fs::create_dir_all(src.path().join("a/b")).expect("mkdir");
        fs::write(src.path().join("a/b/f"), b"hello").expect("write");
        fs::hard_link(src.path().join("a/b/f"), src.path().join("a/h")).expect("link");
        std::os::unix::fs::symlink("/etc/passwd", src.path().join("a/s")).expect("symlink");
        let data = archive_of(src.path());
        let stats = measure_tree(src.path()).expect("measure");
        assert_eq!(stats.data_bytes, 5);
        let dst = tempfile::tempdir().expect("tempdir");
        let mut others = Vec::new();
        let n = unpack_parts::<_, ImageError, _>(
            &mut tar::Archive::new(&data[..]),
            &[Part {
                prefix: "rootfs",
                dest: dst.path(),
            }],
            "test",
            |name, _| {
                others.push(name.to_string());
                Ok(())
            },
        )
        .expect("unpack");
        assert_eq!(n, stats.entries);
        assert!(others.is_empty());
        assert_eq!(fs::read(dst.path().join("a/h")).expect("read"), b"hello");
        assert_eq!(
            fs::read_link(dst.path().join("a/s")).expect("link"),
            Path::new("/etc/passwd")
        );
        let md = fs::metadata(dst.path().join("a/h")).expect("md");
        assert_eq!(md.nlink(), 2);
    }

    #[test]
    fn large_files_and_long_names_unpack_the_same() {
        let src = tempfile::tempdir().expect("tempdir");
        // Over three read pieces and not a whole number of tar blocks; a name past the
        // header's 100 bytes; an empty file.
        let big: Vec<u8> = (0u32..(3 << 20) + 777).map(|i| (i % 253) as u8).collect();
        fs::write(src.path().join("big"), &big).expect("write");
        let long = "n".repeat(150);
        fs::write(src.path().join(&long), b"long").expect("write");
        fs::write(src.path().join("empty"), b"").expect("write");
        let data = archive_of(src.path());
        assert_eq!(data.len() % 512, 0);
        // A plain tar reader sees every entry with its size.
        let mut sizes = HashMap::new();
        for e in tar::Archive::new(&data[..]).entries().expect("entries") {
            let e = e.expect("entry");
            let name = e.path().expect("path").to_string_lossy().into_owned();
            sizes.insert(name, e.header().size().expect("size"));
        }
        assert_eq!(sizes.get("rootfs/big"), Some(&(big.len() as u64)));
        assert_eq!(sizes.get(&format!("rootfs/{long}")), Some(&4));
        assert_eq!(sizes.get("rootfs/empty"), Some(&0));
        let dst = tempfile::tempdir().expect("tempdir");
        unpack_parts::<_, ImageError, _>(
            &mut tar::Archive::new(&data[..]),
            &[Part {
                prefix: "rootfs",
                dest: dst.path(),
            }],
            "test",
            |name, _| panic!("unexpected entry {name}"),
        )
        .expect("unpack");
        assert_eq!(fs::read(dst.path().join("big")).expect("read"), big);
        assert_eq!(fs::read(dst.path().join(&long)).expect("read"), b"long");
        assert_eq!(fs::read(dst.path().join("empty")).expect("read"), b"");
    }

    #[test]
    fn entries_that_escape_or_are_devices_are_refused() {
        let dst = tempfile::tempdir().expect("tempdir");
        let part = [Part {
            prefix: "rootfs",
            dest: dst.path(),
        }];
        let header = |kind, size| {
            let mut h = Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(size);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h
        };
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(EntryType::Symlink, 0);
        b.append_link(&mut h, "rootfs/up", "/").expect("link");
        let mut h = header(EntryType::Regular, 1);
        b.append_data(&mut h, "rootfs/up/etc/x", &b"x"[..])
            .expect("file");
        let data = b.into_inner().expect("finish");
        unpack_parts::<_, ImageError, _>(&mut tar::Archive::new(&data[..]), &part, "t", |_, _| {
            Ok(())
        })
        .expect("a symlink is followed inside the tree only");
        assert!(dst.path().join("etc/x").exists());

        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(EntryType::Char, 0);
        b.append_data(&mut h, "rootfs/null", io::empty())
            .expect("dev");
        let data = b.into_inner().expect("finish");
        let err = unpack_parts::<_, ImageError, _>(
            &mut tar::Archive::new(&data[..]),
            &part,
            "t",
            |_, _| Ok(()),
        )
        .expect_err("device");
        assert!(err.to_string().contains("device"), "{err}");
    }
}
