//! Content-defined chunking of a push's stream: FastCDC (the 2020 algorithm of `fastcdc`
//! 3.2.1, pinned exactly: other versions cut elsewhere, and every cut that moves is a
//! chunk uploaded again), 256 KiB minimum, 1 MiB average, 4 MiB maximum; each chunk
//! named by its BLAKE3 hash. An edit in the middle of a tree moves the cuts near it only,
//! so two snapshots that differ by a few files share all their other chunks.
//!
//! The stream is a tar stream, and a file of at least the smallest chunk also starts a
//! chunk of its own (the cut is made before its header): a rewritten large file then
//! changes its own chunks only, never the last one of the file before it. Small files
//! flow through FastCDC together.
//!
//! Not for: where chunks go (`push`).

use std::io::{self, Write};

/// Smallest chunk (but the stream's last).
pub(crate) const MIN_CHUNK: u32 = 256 << 10;
/// Average chunk.
pub(crate) const AVG_CHUNK: u32 = 1 << 20;
/// Largest chunk: a recipe listing a larger one is refused.
pub(crate) const MAX_CHUNK: u32 = 4 << 20;

/// A chunk and its name.
pub(crate) struct Chunk {
    /// Hex BLAKE3 of `data`.
    pub(crate) hash: String,
    pub(crate) data: Vec<u8>,
}

/// A `Write` that cuts what it is given into chunks and hands each to `emit`, in order.
/// The cuts depend only on the bytes, never on how they were written.
pub(crate) struct Chunker<F> {
    buf: Vec<u8>,
    emit: F,
    bytes: u64,
    hasher: blake3::Hasher,
}

impl<F: FnMut(Chunk) -> io::Result<()>> Chunker<F> {
    pub(crate) fn new(emit: F) -> Self {
        Chunker {
            buf: Vec::with_capacity(3 * MAX_CHUNK as usize),
            emit,
            bytes: 0,
            hasher: blake3::Hasher::new(),
        }
    }

    /// Cuts what is buffered: every chunk but the last (which more data may lengthen),
    /// or with `end` every chunk.
    fn cut(&mut self, end: bool) -> io::Result<()> {
        let cuts: Vec<(usize, usize)> =
            fastcdc::v2020::FastCDC::new(&self.buf, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
                .map(|c| (c.offset, c.length))
                .collect();
        let keep = if end {
            cuts.len()
        } else {
            cuts.len().saturating_sub(1)
        };
        let mut done = 0;
        for &(offset, length) in &cuts[..keep] {
            let data = self.buf[offset..offset + length].to_vec();
            let hash = blake3::hash(&data).to_hex().to_string();
            (self.emit)(Chunk { hash, data })?;
            done = offset + length;
        }
        self.buf.drain(..done);
        Ok(())
    }

    /// Cuts the rest; returns (bytes, hex BLAKE3 of the whole stream).
    pub(crate) fn finish(mut self) -> io::Result<(u64, String)> {
        self.cut(true)?;
        Ok((self.bytes, self.hasher.finalize().to_hex().to_string()))
    }
}

/// Whether `data` is one whole tar header (its checksum right) of an entry of at least
/// [`MIN_CHUNK`] bytes: `tar::Builder` writes each header in one call.
fn starts_large_entry(data: &[u8]) -> bool {
    if data.len() != 512 {
        return false;
    }
    let header = tar::Header::from_byte_slice(data);
    let sum: u32 = data
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    header.cksum().is_ok_and(|c| c == sum)
        && header.entry_size().is_ok_and(|n| n >= u64::from(MIN_CHUNK))
}

impl<F: FnMut(Chunk) -> io::Result<()>> Write for Chunker<F> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.buf.is_empty() && starts_large_entry(data) {
            self.cut(true)?;
        }
        self.buf.extend_from_slice(data);
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        // With two largest chunks buffered, every cut but the last is final.
        if self.buf.len() >= 2 * MAX_CHUNK as usize {
            self.cut(false)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks_of(data: &[u8], write_size: usize) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut c = Chunker::new(|ch: Chunk| {
            assert_eq!(blake3::hash(&ch.data).to_hex().to_string(), ch.hash);
            out.push((ch.hash, ch.data.len()));
            Ok(())
        });
        for piece in data.chunks(write_size) {
            c.write_all(piece).expect("write");
        }
        let (bytes, _) = c.finish().expect("finish");
        assert_eq!(bytes, data.len() as u64);
        out
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn cuts_do_not_depend_on_how_the_stream_was_written() {
        let data = noise(20 << 20, 7);
        let a = chunks_of(&data, 4096);
        let b = chunks_of(&data, 3 << 20);
        assert_eq!(a, b);
        assert_eq!(a.iter().map(|c| c.1).sum::<usize>(), data.len());
        assert!(a.iter().all(|c| c.1 <= MAX_CHUNK as usize));
        assert!(a.len() > 8, "{} chunks", a.len());
    }

    #[test]
    fn a_rewritten_large_file_changes_only_its_own_chunks() {
        // Chunks of a tar stream of `files`, written as the push writes it.
        let tree_chunks = |files: &[Vec<u8>]| {
            let mut out = Vec::new();
            let chunker = Chunker::new(|ch: Chunk| {
                out.push((ch.hash, ch.data.len()));
                Ok(())
            });
            let mut b = tar::Builder::new(chunker);
            for (i, data) in files.iter().enumerate() {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                b.append_data(&mut h, format!("f{i}"), &data[..])
                    .expect("append");
            }
            b.into_inner().expect("tar").finish().expect("finish");
            out
        };
        let mut files: Vec<Vec<u8>> = (0..40).map(|i| noise(1 << 20, i + 1)).collect();
        let before: std::collections::HashSet<_> = tree_chunks(&files).into_iter().collect();
        files[17] = noise(1 << 20, 99);
        let after = tree_chunks(&files);
        let new: usize = after
            .iter()
            .filter(|c| !before.contains(*c))
            .map(|c| c.1)
            .sum();
        assert!(new < (1 << 20) + 4096, "{new} bytes of new chunks");
    }

    #[test]
    fn an_insertion_changes_only_the_chunks_near_it() {
        let data = noise(24 << 20, 11);
        let mut edited = data.clone();
        edited.splice(10 << 20..10 << 20, noise(1000, 3));
        let a: std::collections::HashSet<_> = chunks_of(&data, 1 << 16).into_iter().collect();
        let b = chunks_of(&edited, 1 << 16);
        let new = b.iter().filter(|c| !a.contains(*c)).count();
        assert!(new <= 2, "{new} of {} chunks changed", b.len());
    }
}
