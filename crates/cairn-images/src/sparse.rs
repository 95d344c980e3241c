//! Writing regular files sparsely, so that what an image takes on disk is
//! its data, not its zeros.
//!
//! - [`write_sparse`] copies a stream into a new file, turning every
//!   all-zero block into a hole (a seek, never a write);
//! - [`copy_file_sparse`] copies a file of a directory source extent by
//!   extent (`SEEK_DATA`/`SEEK_HOLE`), so the source's holes stay holes;
//! - [`PaxSparse`] reads the sparse map of a PAX-format GNU sparse tar entry
//!   (formats 0.0, 0.1 and 1.0), whose data segments are then written at
//!   their offsets. (Old-GNU sparse entries, type `S`, are unpacked by the
//!   `tar` crate itself, which seeks over their holes.)
//!
//! Nothing here knows about tar headers beyond PAX records, nor about
//! budgets: callers charge what they read.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use rustix::fs::SeekFrom;
use rustix::io::Errno;

/// Granularity of hole detection: the usual file system block.
const BLOCK: u64 = 4096;
/// How much is read (and checked for zeros) at a time.
const CHUNK: usize = 1 << 20;
/// Most segments a PAX sparse map may list: 1 Mi segments is 16 MiB of map
/// in memory, far beyond what real sparse files need.
const MAX_SEGMENTS: usize = 1 << 20;
/// Longest line of a format 1.0 sparse map (a decimal u64 and a newline).
const MAX_MAP_LINE: usize = 24;
/// The tar block size, to which a format 1.0 map is padded.
const TAR_BLOCK: u64 = 512;

/// Writes what `reader` yields into `file` from offset `start`: exactly
/// `len` bytes when given (a shorter stream is an error), else everything.
/// All-zero blocks (aligned to file offsets) are skipped, so they read back
/// as holes: the region written must read as zeros before (a new file,
/// written front to back), and the caller sets the file's final length.
/// Returns the offset after the last byte.
pub(crate) fn write_sparse<R: Read + ?Sized>(
    file: &File,
    reader: &mut R,
    start: u64,
    len: Option<u64>,
) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut pos = start;
    let mut left = len;
    loop {
        let want = match left {
            Some(0) => break,
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX).min(CHUNK),
            None => CHUNK,
        };
        let got = read_full(reader, &mut buf[..want])?;
        write_nonzero(file, &buf[..got], pos)?;
        pos = pos
            .checked_add(got as u64)
            .ok_or_else(|| io::Error::other("file offset overflows"))?;
        if let Some(n) = &mut left {
            *n -= got as u64;
        }
        if got < want {
            if left.is_some_and(|n| n > 0) {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the data ends before the sparse map says it does",
                ));
            }
            break;
        }
    }
    Ok(pos)
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
fn read_full<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes the blocks of `data` (which belongs at offset `pos`) that are not
/// all zeros, each run of them in one write.
fn write_nonzero(file: &File, data: &[u8], pos: u64) -> io::Result<()> {
    let mut run: Option<usize> = None;
    let mut i = 0;
    while i < data.len() {
        let off = pos + i as u64;
        let to_boundary = usize::try_from(BLOCK - off % BLOCK).unwrap_or(usize::MAX);
        let end = data.len().min(i.saturating_add(to_boundary));
        if is_zero(&data[i..end]) {
            if let Some(s) = run.take() {
                file.write_all_at(&data[s..i], pos + s as u64)?;
            }
        } else if run.is_none() {
            run = Some(i);
        }
        i = end;
    }
    if let Some(s) = run {
        file.write_all_at(&data[s..], pos + s as u64)?;
    }
    Ok(())
}

/// True when every byte of `b` is zero (written to vectorise: OR-folds of
/// fixed 64-byte pieces).
fn is_zero(b: &[u8]) -> bool {
    b.chunks(64).all(|c| c.iter().fold(0u8, |a, x| a | x) == 0)
}

/// Copies the regular file `src` (`len` bytes long) into the new, empty
/// file `dst`, data extent by data extent, so `src`'s holes stay holes.
/// Extents are copied with `copy_file_range` (btrfs shares them when both
/// files are on it); where the kernel cannot (another file system), they are
/// read and written with [`write_sparse`], so zero blocks become holes too.
/// `charge` is told each extent's length before it is copied, and may
/// refuse it.
pub(crate) fn copy_file_sparse(
    src: &File,
    dst: &File,
    len: u64,
    mut charge: impl FnMut(u64) -> io::Result<()>,
) -> io::Result<()> {
    let mut pos = 0;
    let mut kernel_copy = true;
    while pos < len {
        let data = match rustix::fs::seek(src.as_fd(), SeekFrom::Data(pos)) {
            Ok(data) => data,
            // No data after `pos`: the rest is a hole.
            Err(Errno::NXIO) => break,
            // No SEEK_DATA here: all of it is data.
            Err(Errno::INVAL | Errno::OPNOTSUPP) => pos,
            Err(e) => return Err(e.into()),
        };
        let hole = match rustix::fs::seek(src.as_fd(), SeekFrom::Hole(data)) {
            Ok(hole) => hole.min(len),
            Err(Errno::NXIO) => break,
            Err(Errno::INVAL | Errno::OPNOTSUPP) => len,
            Err(e) => return Err(e.into()),
        };
        if hole <= data {
            break;
        }
        charge(hole - data)?;
        let mut at = data;
        if kernel_copy {
            at = match copy_range(src, dst, data, hole) {
                Ok(at) => at,
                Err(e) if at == data && falls_back(&e) => {
                    kernel_copy = false;
                    data
                }
                Err(e) => return Err(e),
            };
        }
        if at < hole {
            let mut reader = ReadAt { file: src, pos: at };
            write_sparse(dst, &mut reader, at, Some(hole - at))?;
        }
        pos = hole;
    }
    dst.set_len(len)
}

/// `copy_file_range` of `[from, to)`, at the same offsets in both files.
/// Returns where it stopped: `to`, or earlier if the source shrank.
fn copy_range(src: &File, dst: &File, from: u64, to: u64) -> io::Result<u64> {
    let (mut off_in, mut off_out) = (from, from);
    while off_in < to {
        let want = usize::try_from(to - off_in)
            .unwrap_or(usize::MAX)
            .min(1 << 30);
        let n = rustix::fs::copy_file_range(
            src.as_fd(),
            Some(&mut off_in),
            dst.as_fd(),
            Some(&mut off_out),
            want,
        )
        .map_err(io::Error::from)?;
        if n == 0 {
            break;
        }
    }
    Ok(off_in)
}

/// Whether a failed `copy_file_range` means "not here", so reading and
/// writing will do.
fn falls_back(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(
            Errno::XDEV
                | Errno::INVAL
                | Errno::NOSYS
                | Errno::OPNOTSUPP
                | Errno::PERM
                | Errno::BADF
        )
    )
}

/// A reader of a file from an offset on, with positioned reads.
struct ReadAt<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The sparse map of a PAX-format GNU sparse entry (GNU tar
/// `--format=posix --sparse`): the file's real name and size, and where
/// its data segments go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PaxSparse {
    /// The file's real name (`GNU.sparse.name`); the header's name is a
    /// placeholder (`GNUSparseFile.123/name`).
    pub(crate) name: Option<Vec<u8>>,
    /// The file's length (`GNU.sparse.realsize` or `GNU.sparse.size`).
    pub(crate) real_size: u64,
    /// `(offset, length)` of each data segment, in order. Empty until read
    /// for format 1.0, which keeps its map at the start of the data.
    pub(crate) segments: Vec<(u64, u64)>,
    /// Format 1.0: the map is in the data.
    pub(crate) map_in_data: bool,
}

impl PaxSparse {
    /// The sparse map described by an entry's PAX records (`key`, `value`),
    /// or `None` when they describe no sparse file.
    pub(crate) fn from_records<'r>(
        records: impl IntoIterator<Item = (&'r [u8], &'r [u8])>,
    ) -> io::Result<Option<PaxSparse>> {
        let mut s = PaxSparse::default();
        let (mut major, mut minor) = (None, None);
        let (mut size, mut realsize) = (None, None);
        let mut map = None;
        let mut pending_offset = None;
        let mut any = false;
        for (key, value) in records {
            let Some(field) = key.strip_prefix(b"GNU.sparse.") else {
                continue;
            };
            any = true;
            let text = std::str::from_utf8(value).unwrap_or("");
            match field {
                b"major" => major = Some(number(text)?),
                b"minor" => minor = Some(number(text)?),
                b"name" => s.name = Some(value.to_vec()),
                b"realsize" => realsize = Some(number(text)?),
                b"size" => size = Some(number(text)?),
                b"map" => map = Some(text.to_string()),
                // Format 0.0: offset and numbytes records alternate.
                b"offset" => pending_offset = Some(number(text)?),
                b"numbytes" => {
                    let offset = pending_offset
                        .take()
                        .ok_or_else(|| bad("GNU.sparse.numbytes without an offset"))?;
                    push_segment(&mut s.segments, offset, number(text)?)?;
                }
                _ => {}
            }
        }
        if !any {
            return Ok(None);
        }
        match (major, minor) {
            (Some(1), Some(0)) => {
                s.map_in_data = true;
                s.real_size = realsize.ok_or_else(|| bad("no GNU.sparse.realsize"))?;
            }
            (Some(major), minor) => {
                return Err(bad(format!(
                    "GNU sparse format {major}.{} is not supported",
                    minor.unwrap_or(0)
                )))
            }
            (None, _) => {
                s.real_size = size.or(realsize).ok_or_else(|| bad("no GNU.sparse.size"))?;
                if let Some(map) = map {
                    let numbers: Vec<u64> = map
                        .split(',')
                        .filter(|n| !n.is_empty())
                        .map(number)
                        .collect::<io::Result<_>>()?;
                    if !numbers.len().is_multiple_of(2) {
                        return Err(bad("GNU.sparse.map has an odd number of values"));
                    }
                    for pair in numbers.chunks(2) {
                        push_segment(&mut s.segments, pair[0], pair[1])?;
                    }
                }
            }
        }
        s.check()?;
        Ok(Some(s))
    }

    /// Reads a format 1.0 map from the start of the entry's data (decimal
    /// lines: the count, then offset and length of each segment; padded to
    /// a tar block), leaving `reader` at the first data segment.
    pub(crate) fn read_map<R: BufRead>(&mut self, reader: &mut R) -> io::Result<()> {
        let mut consumed = 0u64;
        let mut line = || -> io::Result<u64> {
            let mut text = Vec::new();
            let n = reader
                .by_ref()
                .take(MAX_MAP_LINE as u64)
                .read_until(b'\n', &mut text)?;
            consumed += n as u64;
            if text.pop() != Some(b'\n') {
                return Err(bad("the sparse map in the data is truncated or malformed"));
            }
            number(std::str::from_utf8(&text).unwrap_or(""))
        };
        let count = line()?;
        if count > MAX_SEGMENTS as u64 {
            return Err(bad(format!(
                "the sparse map lists {count} segments, more than {MAX_SEGMENTS}"
            )));
        }
        self.segments.clear();
        for _ in 0..count {
            let (offset, length) = (line()?, line()?);
            push_segment(&mut self.segments, offset, length)?;
        }
        let pad = (TAR_BLOCK - consumed % TAR_BLOCK) % TAR_BLOCK;
        io::copy(&mut reader.by_ref().take(pad), &mut io::sink())?;
        self.check()
    }

    /// Segments must be in order, not overlap, and end within the file.
    fn check(&self) -> io::Result<()> {
        let mut end = 0u64;
        for &(offset, length) in &self.segments {
            if offset < end {
                return Err(bad("sparse segments overlap or are out of order"));
            }
            end = offset
                .checked_add(length)
                .ok_or_else(|| bad("a sparse segment ends past the largest offset"))?;
        }
        if end > self.real_size {
            return Err(bad(format!(
                "a sparse segment ends at {end}, past the file's size {}",
                self.real_size
            )));
        }
        Ok(())
    }

    /// Writes the segments, read one after the other from `reader`, at
    /// their offsets in the new file `file`, and gives it its real size.
    pub(crate) fn write<R: Read + ?Sized>(&self, file: &File, reader: &mut R) -> io::Result<()> {
        for &(offset, length) in &self.segments {
            write_sparse(file, reader, offset, Some(length))?;
        }
        file.set_len(self.real_size)
    }
}

fn push_segment(segments: &mut Vec<(u64, u64)>, offset: u64, length: u64) -> io::Result<()> {
    if segments.len() >= MAX_SEGMENTS {
        return Err(bad(format!(
            "the sparse map lists more than {MAX_SEGMENTS} segments"
        )));
    }
    segments.push((offset, length));
    Ok(())
}

fn number(text: &str) -> io::Result<u64> {
    text.trim()
        .parse()
        .map_err(|_| bad(format!("'{text}' is not a number in a sparse map")))
}

fn bad(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn rw(path: &std::path::Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .expect("create")
    }

    fn allocated(file: &File) -> u64 {
        file.metadata().expect("stat").blocks() * 512
    }

    #[test]
    fn zero_blocks_become_holes_and_data_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let file = rw(&path);
        let mut data = vec![0u8; 8 << 20];
        data[5 << 20] = 7;
        data[(8 << 20) - 1] = 9;
        let end = write_sparse(&file, &mut &data[..], 0, None).expect("write");
        file.set_len(end).expect("len");
        assert_eq!(std::fs::read(&path).expect("read"), data);
        assert!(
            allocated(&file) <= 64 << 10,
            "8 MiB of mostly zeros took {} bytes",
            allocated(&file)
        );
    }

    #[test]
    fn unaligned_starts_and_short_streams() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = rw(&dir.path().join("f"));
        let end = write_sparse(&file, &mut &b"abc"[..], 4095, Some(3)).expect("write");
        assert_eq!(end, 4098);
        let mut back = [0u8; 3];
        file.read_exact_at(&mut back, 4095).expect("read");
        assert_eq!(&back, b"abc");
        let err = write_sparse(&file, &mut &b"ab"[..], 0, Some(3)).expect_err("short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn pax_sparse_formats_parse_and_bad_maps_are_refused() {
        let rec = |pairs: &[(&'static str, &'static str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
                .collect::<Vec<_>>()
        };
        let v01 = PaxSparse::from_records(rec(&[
            ("GNU.sparse.size", "100"),
            ("GNU.sparse.name", "big"),
            ("GNU.sparse.map", "10,5,90,10,100,0"),
        ]))
        .expect("parse")
        .expect("sparse");
        assert_eq!(v01.segments, vec![(10, 5), (90, 10), (100, 0)]);
        assert_eq!(v01.name.as_deref(), Some(&b"big"[..]));
        let v00 = PaxSparse::from_records(rec(&[
            ("GNU.sparse.size", "100"),
            ("GNU.sparse.offset", "10"),
            ("GNU.sparse.numbytes", "5"),
        ]))
        .expect("parse")
        .expect("sparse");
        assert_eq!(v00.segments, vec![(10, 5)]);
        assert!(PaxSparse::from_records(rec(&[("path", "x")]))
            .expect("parse")
            .is_none());
        for bad in [
            vec![("GNU.sparse.size", "10"), ("GNU.sparse.map", "5,10")],
            vec![("GNU.sparse.size", "100"), ("GNU.sparse.map", "50,5,10,5")],
            vec![("GNU.sparse.size", "100"), ("GNU.sparse.map", "1")],
            vec![("GNU.sparse.major", "2"), ("GNU.sparse.minor", "0")],
        ] {
            assert!(
                PaxSparse::from_records(rec(&bad)).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn format_1_0_map_is_read_from_the_data() {
        let mut s = PaxSparse::from_records(vec![
            (&b"GNU.sparse.major"[..], &b"1"[..]),
            (b"GNU.sparse.minor", b"0"),
            (b"GNU.sparse.realsize", b"1000000"),
        ])
        .expect("parse")
        .expect("sparse");
        let mut data = b"2\n10\n3\n999990\n2\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"abcXY");
        let mut reader = io::BufReader::new(&data[..]);
        s.read_map(&mut reader).expect("map");
        assert_eq!(s.segments, vec![(10, 3), (999_990, 2)]);
        let dir = tempfile::tempdir().expect("tempdir");
        let file = rw(&dir.path().join("f"));
        s.write(&file, &mut reader).expect("write");
        assert_eq!(file.metadata().expect("stat").len(), 1_000_000);
        let mut back = [0u8; 2];
        file.read_exact_at(&mut back, 999_990).expect("read");
        assert_eq!(&back, b"XY");
    }
}
