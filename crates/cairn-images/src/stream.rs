//! Byte-stream plumbing: compression detection by magic bytes, decoders,
//! content digests, and the decoded-size budget that stops archive bombs.
//!
//! Nothing here knows about tar entries or image manifests.

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead, Read};

use sha2::{Digest as _, Sha256, Sha512};

use crate::ImageError;

/// How a stream is compressed, as told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// Plain bytes (for us: an uncompressed tar).
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// Zstandard (`28 b5 2f fd`).
    Zstd,
}

/// Detects the compression of `reader` without consuming anything.
///
/// Formats we recognise but do not decode (xz, bzip2) are refused with an
/// actionable error naming `what`.
pub(crate) fn sniff<R: BufRead>(reader: &mut R, what: &str) -> Result<Compression, ImageError> {
    let head = reader.fill_buf().map_err(|e| ImageError::Io {
        action: "reading",
        path: what.into(),
        source: e,
    })?;
    let unsupported = |format| ImageError::UnsupportedCompression {
        path: what.to_string(),
        format,
    };
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Compression::Zstd)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Err(unsupported("xz"))
    } else if head.starts_with(b"BZh") {
        Err(unsupported("bzip2"))
    } else {
        Ok(Compression::None)
    }
}

/// Wraps `reader` in the decoder for `compression`.
pub(crate) fn decoder<'a, R: BufRead + 'a>(
    reader: R,
    compression: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        // Multi-member gzip (pigz, concatenated streams) is valid gzip.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(reader)?),
    })
}

/// An upper bound on decoded bytes, shared by the readers of one import
/// phase. Single-threaded by design (imports run on one blocking thread).
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: Cell<u64>,
    exceeded: Cell<bool>,
}

impl Budget {
    /// A fresh budget of `limit` bytes.
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit,
            used: Cell::new(0),
            exceeded: Cell::new(false),
        }
    }

    /// Charges `n` bytes; fails once the total passes the limit.
    pub(crate) fn charge(&self, n: u64) -> io::Result<()> {
        let used = self.used.get().saturating_add(n);
        self.used.set(used);
        if used > self.limit {
            self.exceeded.set(true);
            return Err(io::Error::other(format!(
                "decoded size limit of {} bytes exceeded",
                self.limit
            )));
        }
        Ok(())
    }

    /// Turns `err` into [`ImageError::TooLarge`] when the budget ran out,
    /// since whatever failed then failed because of it.
    pub(crate) fn explain(&self, err: ImageError) -> ImageError {
        if self.exceeded.get() {
            ImageError::TooLarge { limit: self.limit }
        } else {
            err
        }
    }
}

/// A reader that charges every byte it yields to a [`Budget`].
pub(crate) struct Limited<'b, R> {
    inner: R,
    budget: &'b Budget,
}

impl<'b, R: Read> Limited<'b, R> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: R, budget: &'b Budget) -> Self {
        Self { inner, budget }
    }

    /// The wrapped reader.
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Limited<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.budget.charge(n as u64)?;
        Ok(n)
    }
}

/// A content digest we can verify: `sha256:<hex>` or `sha512:<hex>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlobDigest {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Algorithm {
    Sha256,
    Sha512,
}

impl BlobDigest {
    /// Parses `algorithm:hex`; `None` for unknown algorithms or anything that
    /// is not lowercase hex of the right length (which also keeps digests
    /// safe to use as file names).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (algorithm, hex) = s.split_once(':')?;
        let (algorithm, len) = match algorithm {
            "sha256" => (Algorithm::Sha256, 64),
            "sha512" => (Algorithm::Sha512, 128),
            _ => return None,
        };
        let valid = hex.len() == len
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Self {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// A sha256 digest from its hex form, if it is one.
    pub(crate) fn sha256_hex(hex: &str) -> Option<Self> {
        Self::parse(&format!("sha256:{hex}"))
    }

    /// Where an OCI image layout keeps this blob.
    pub(crate) fn blob_path(&self) -> String {
        format!("blobs/{}/{}", self.algorithm.name(), self.hex)
    }

    /// A hasher of the same algorithm.
    pub(crate) fn hasher(&self) -> Hasher {
        match self.algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

impl fmt::Display for BlobDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// An incremental hash of one of the supported algorithms.
pub(crate) enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything hashed, as `algorithm:hex`.
    pub(crate) fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// A reader that hashes (and counts) everything read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Hashes with `hasher`, or only counts when it is `None`.
    pub(crate) fn new(inner: R, hasher: Option<Hasher>) -> Self {
        Self {
            inner,
            hasher,
            count: 0,
        }
    }

    /// Reads the rest of the stream, then returns the digest (when hashing)
    /// and the total number of bytes.
    pub(crate) fn finish(mut self) -> io::Result<(Option<String>, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.map(Hasher::finish), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// A reader that tells an [`ImportProgress`](crate::ImportProgress) how much of `total` has
/// been read, counting from `base`: about once per MiB, and at the end.
pub(crate) struct Counting<R> {
    inner: R,
    at: u64,
    total: u64,
    told: u64,
    progress: Option<crate::ImportProgress>,
}

impl<R> Counting<R> {
    pub(crate) fn new(
        inner: R,
        base: u64,
        total: u64,
        progress: Option<crate::ImportProgress>,
    ) -> Self {
        Self {
            inner,
            at: base,
            total,
            told: base,
            progress,
        }
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.at += n as u64;
        if let Some(p) = &self.progress {
            if n == 0 || self.at - self.told >= 1 << 20 {
                self.told = self.at;
                (p.0)(self.at.min(self.total), self.total);
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_parse_accepts_sha256_and_rejects_path_tricks() {
        let hex = "a".repeat(64);
        let d = BlobDigest::parse(&format!("sha256:{hex}")).expect("valid");
        assert_eq!(d.blob_path(), format!("blobs/sha256/{hex}"));
        assert!(BlobDigest::parse("sha256:../../etc/passwd").is_none());
        assert!(BlobDigest::parse(&format!("md5:{hex}")).is_none());
        assert!(BlobDigest::parse(&format!("sha256:{}", "A".repeat(64))).is_none());
    }

    #[test]
    fn budget_refuses_reads_past_the_limit() {
        let budget = Budget::new(10);
        let mut r = Limited::new(&[0u8; 11][..], &budget);
        let err = io::copy(&mut r, &mut io::sink()).expect_err("over budget");
        assert!(err.to_string().contains("limit"));
        let explained = budget.explain(ImageError::EmptySource { path: "x".into() });
        assert!(matches!(explained, ImageError::TooLarge { limit: 10 }));
    }

    #[test]
    fn sniff_detects_compression_by_magic() {
        let mut gz = &[0x1f, 0x8b, 8, 0][..];
        assert_eq!(sniff(&mut gz, "x").expect("gzip"), Compression::Gzip);
        let mut zst = &[0x28, 0xb5, 0x2f, 0xfd, 0][..];
        assert_eq!(sniff(&mut zst, "x").expect("zstd"), Compression::Zstd);
        let mut xz = &[0xfd, b'7', b'z', b'X', b'Z', 0][..];
        assert!(matches!(
            sniff(&mut xz, "x"),
            Err(ImageError::UnsupportedCompression { format: "xz", .. })
        ));
        let mut plain = &b"etc/\0\0\0"[..];
        assert_eq!(sniff(&mut plain, "x").expect("plain"), Compression::None);
    }
}
