//! Builders for test images: tar layers, OCI archives, docker-save archives.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

/// Modification time given to every fixture entry.
pub(super) const MTIME: u64 = 1_600_000_000;

/// A tar stream under construction.
pub(super) struct Tar {
    builder: tar::Builder<Vec<u8>>,
}

impl Tar {
    pub(super) fn new() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: EntryType, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h
    }

    pub(super) fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(EntryType::Directory, mode);
        self.builder
            .append_data(&mut h, path, &[][..])
            .expect("dir entry");
        self
    }

    pub(super) fn file(self, path: &str, content: &[u8], mode: u32) -> Self {
        self.owned_file(path, content, mode, 0, 0)
    }

    pub(super) fn owned_file(
        mut self,
        path: &str,
        content: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> Self {
        let mut h = Self::header(EntryType::Regular, mode);
        h.set_size(content.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.builder
            .append_data(&mut h, path, content)
            .expect("file entry");
        self
    }

    pub(super) fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(EntryType::Symlink, 0o777);
        self.builder
            .append_link(&mut h, path, target)
            .expect("symlink entry");
        self
    }

    pub(super) fn hard_link(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(EntryType::Link, 0o644);
        self.builder
            .append_link(&mut h, path, target)
            .expect("hard link entry");
        self
    }

    /// A device node or FIFO (`kind` is `Char`, `Block` or `Fifo`).
    pub(super) fn node(mut self, path: &str, kind: EntryType, major: u32, minor: u32) -> Self {
        let mut h = Self::header(kind, 0o666);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        self.builder
            .append_data(&mut h, path, &[][..])
            .expect("node entry");
        self
    }

    /// A regular file preceded by PAX extension records.
    pub(super) fn pax_file(
        mut self,
        records: &[(&str, &[u8])],
        path: &str,
        content: &[u8],
    ) -> Self {
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .expect("pax records");
        let mut h = Self::header(EntryType::Regular, 0o644);
        h.set_size(content.len() as u64);
        self.builder
            .append_data(&mut h, path, content)
            .expect("file entry");
        self
    }

    /// An old-GNU sparse file (type `S`) of `real_size` bytes holding
    /// `segments` (offset, data) — more than four need extension headers;
    /// all but the last segment must be whole tar blocks long.
    pub(super) fn gnu_sparse(
        mut self,
        path: &str,
        real_size: u64,
        segments: &[(u64, &[u8])],
    ) -> Self {
        // GNU tar ends every map with an empty segment at the file's end.
        let mut segments = segments.to_vec();
        segments.push((real_size, &[]));
        let segments = &segments[..];
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::GNUSparse);
        h.set_mode(0o640);
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h.set_path(path).expect("path");
        let stored: u64 = segments.iter().map(|(_, d)| d.len() as u64).sum();
        h.set_size(stored);
        let entry = |(offset, data): &(u64, &[u8])| {
            let mut e = tar::GnuSparseHeader {
                offset: [0; 12],
                numbytes: [0; 12],
            };
            e.set_offset(*offset);
            e.set_length(data.len() as u64);
            e
        };
        let gnu = h.as_gnu_mut().expect("gnu header");
        gnu.set_real_size(real_size);
        for (slot, seg) in gnu.sparse.iter_mut().zip(segments) {
            *slot = entry(seg);
        }
        let mut body = Vec::new();
        if segments.len() > 4 {
            gnu.isextended[0] = 1;
            let chunks: Vec<_> = segments[4..].chunks(21).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let mut ext = tar::GnuExtSparseHeader::new();
                for (slot, seg) in ext.sparse.iter_mut().zip(chunk.iter()) {
                    *slot = entry(seg);
                }
                ext.isextended[0] = u8::from(i + 1 < chunks.len());
                body.extend_from_slice(ext.as_bytes());
            }
        }
        for (i, (_, data)) in segments.iter().enumerate() {
            // The data of all but the last segment fills whole tar blocks.
            let more = segments[i + 1..].iter().any(|(_, d)| !d.is_empty());
            assert!(!more || data.len() % 512 == 0);
            body.extend_from_slice(data);
        }
        h.set_cksum();
        // The builder writes the body as is: extension headers, then data.
        self.builder.append(&h, &body[..]).expect("sparse entry");
        self
    }

    /// An entry whose name and link name are written byte for byte, with no
    /// validation (for malicious archives).
    pub(super) fn raw(mut self, name: &[u8], kind: EntryType, link: &[u8], content: &[u8]) -> Self {
        let mut h = Self::header(kind, 0o644);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_size(content.len() as u64);
        h.set_cksum();
        self.builder.append(&h, content).expect("raw entry");
        self
    }

    pub(super) fn finish(self) -> Vec<u8> {
        self.builder.into_inner().expect("finish tar")
    }
}

pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

pub(super) fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).expect("zstd")
}

pub(super) fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// How a layer blob is stored.
#[derive(Clone, Copy)]
pub(super) enum Codec {
    Plain,
    Gzip,
    Zstd,
}

/// The parts of an OCI image before packing.
pub(super) struct OciImage {
    /// `(name, bytes)` of every file of the layout (`oci-layout`,
    /// `index.json`, `blobs/sha256/…`).
    pub(super) files: Vec<(String, Vec<u8>)>,
    /// Blob names of the layers, in order.
    pub(super) layer_blobs: Vec<String>,
}

pub(super) fn image_config(diff_ids: &[String]) -> Value {
    json!({
        "architecture": oci_spec::image::Arch::default().to_string(),
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/bin:/bin", "GREETING=hello"],
            "WorkingDir": "/srv",
            "Entrypoint": ["/bin/tool"],
            "Cmd": ["--serve"]
        },
        "rootfs": { "type": "layers", "diff_ids": diff_ids }
    })
}

fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": format!("sha256:{}", sha256(data)), "size": data.len() })
}

/// An OCI image layout holding `layers` (uncompressed tars, stored with
/// the given codec).
pub(super) fn oci_image(layers: &[(Vec<u8>, Codec)]) -> OciImage {
    let mut files = Vec::new();
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_blobs = Vec::new();
    for (tar, codec) in layers {
        let (blob, media_type) = match codec {
            Codec::Plain => (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
            Codec::Gzip => (gzip(tar), "application/vnd.oci.image.layer.v1.tar+gzip"),
            Codec::Zstd => (zstd(tar), "application/vnd.oci.image.layer.v1.tar+zstd"),
        };
        diff_ids.push(format!("sha256:{}", sha256(tar)));
        layer_descs.push(descriptor(media_type, &blob));
        let name = format!("blobs/sha256/{}", sha256(&blob));
        layer_blobs.push(name.clone());
        files.push((name, blob));
    }
    let config = serde_json::to_vec(&image_config(&diff_ids)).expect("json");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": layer_descs,
    }))
    .expect("json");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [descriptor("application/vnd.oci.image.manifest.v1+json", &manifest)],
    }))
    .expect("json");
    files.push((format!("blobs/sha256/{}", sha256(&config)), config));
    files.push((format!("blobs/sha256/{}", sha256(&manifest)), manifest));
    files.push(("index.json".into(), index));
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    OciImage { files, layer_blobs }
}

impl OciImage {
    /// The layout as a tar archive.
    pub(super) fn to_tar(&self) -> Vec<u8> {
        let mut t = Tar::new();
        for (name, data) in &self.files {
            t = t.file(name, data, 0o644);
        }
        t.finish()
    }

    /// Replaces the content of blob `name` (same length, wrong digest).
    pub(super) fn tamper(&mut self, name: &str) {
        let (_, data) = self
            .files
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("blob present");
        let last = data.len() - 1;
        data[last] ^= 0xff;
    }

    /// Writes the layout as a directory under `dir`.
    pub(super) fn write_dir(&self, dir: &Path) {
        for (name, data) in &self.files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, data).expect("write blob");
        }
    }
}

/// A classic `docker save` archive of `layers` (uncompressed tars), with
/// layer `tamper_layer` corrupted. With `link_last`, the last layer is
/// stored as a symlink to the first, as docker does for identical layers.
pub(super) fn docker_archive(
    layers: &[Vec<u8>],
    tamper_layer: Option<usize>,
    link_last: bool,
) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256(l)))
        .collect();
    let config = serde_json::to_vec(&image_config(&diff_ids)).expect("json");
    let config_name = format!("{}.json", sha256(&config));
    let mut t = Tar::new();
    let mut names = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let id = format!("{:064x}", i + 1);
        let name = format!("{id}/layer.tar");
        let mut data = layer.clone();
        if tamper_layer == Some(i) {
            data[0] ^= 0x01;
        }
        t = t.dir(&id, 0o755);
        t = if link_last && i > 0 && i == layers.len() - 1 {
            t.symlink(&name, &format!("../{:064x}/layer.tar", 1))
        } else {
            t.file(&name, &data, 0o644)
        };
        names.push(name);
    }
    let manifest = serde_json::to_vec(
        &json!([{ "Config": config_name, "RepoTags": ["demo:latest"], "Layers": names }]),
    )
    .expect("json");
    t.file(&config_name, &config, 0o644)
        .file("manifest.json", &manifest, 0o644)
        .finish()
}

/// Writes `data` to `dir/name`.
pub(super) fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write fixture");
    path
}

/// A scratch area with an empty `dest/` and an `outside/` directory that
/// no import may touch.
pub(super) struct Scratch {
    pub(super) dir: tempfile::TempDir,
}

impl Scratch {
    pub(super) fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("dest")).expect("mkdir dest");
        std::fs::create_dir(dir.path().join("outside")).expect("mkdir outside");
        Self { dir }
    }

    pub(super) fn dest(&self) -> PathBuf {
        self.dir.path().join("dest")
    }

    pub(super) fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    pub(super) fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        write(self.dir.path(), name, data)
    }

    pub(super) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dest().join(rel))
            .unwrap_or_else(|e| panic!("reading {rel}: {e}"))
    }
}
