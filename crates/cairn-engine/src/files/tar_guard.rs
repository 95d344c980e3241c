//! A guard in front of the tar reader of uploads: the `tar` crate reads a GNU long name or
//! link (`L`, `K`) and a PAX header (`x`, `g`) whole into memory, so a tenant's archive
//! could declare one of gigabytes and exhaust cairnd's memory. The guard follows the
//! stream's 512-byte blocks as they pass, reads each header's type and size, and stops the
//! stream at such a header over [`MAX_META`], or at a GNU sparse entry (whose extension
//! blocks it does not follow, and which the files API does not write anyway).

use std::io::Read;

/// The largest long name, long link or PAX header accepted.
pub const MAX_META: u64 = 1 << 20;

/// Wraps the reader of a tar stream.
pub(crate) struct TarGuard<R> {
    inner: R,
    /// The header being received.
    header: Vec<u8>,
    /// Bytes of data (with padding) before the next header.
    data_left: u64,
}

impl<R> TarGuard<R> {
    pub(crate) fn new(inner: R) -> Self {
        TarGuard {
            inner,
            header: Vec::with_capacity(512),
            data_left: 0,
        }
    }
}

/// The size field of a tar header: octal text, or base-256 when its first byte has the
/// high bit set.
fn size_of(field: &[u8]) -> u64 {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return field[1..].iter().fold(0u64, |n, b| {
            n.saturating_mul(256).saturating_add(u64::from(*b))
        });
    }
    field
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| (b'0'..=b'7').contains(*b))
        .fold(0u64, |n, b| {
            n.saturating_mul(8).saturating_add(u64::from(b - b'0'))
        })
}

/// Checks one whole header; answers the bytes of data that follow it (padded to blocks).
fn check(header: &[u8]) -> std::io::Result<u64> {
    let size = size_of(&header[124..136]);
    let refuse = |what: String| Err(std::io::Error::new(std::io::ErrorKind::InvalidData, what));
    match header[156] {
        b'L' | b'K' | b'x' | b'g' if size > MAX_META => refuse(format!(
            "a long name or extended header of {size} bytes (at most {MAX_META})"
        )),
        b'S' => refuse("a GNU sparse file, which cannot be copied into a sandbox".into()),
        _ => Ok(size.div_ceil(512).saturating_mul(512)),
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if self.data_left > 0 {
                let k = usize::try_from(self.data_left)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                self.data_left -= k as u64;
                rest = &rest[k..];
                continue;
            }
            let k = (512 - self.header.len()).min(rest.len());
            self.header.extend_from_slice(&rest[..k]);
            rest = &rest[k..];
            if self.header.len() == 512 {
                self.data_left = check(&self.header)?;
                self.header.clear();
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_path("x").expect("path");
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    #[test]
    fn ordinary_archives_pass_untouched() {
        let mut b = tar::Builder::new(Vec::new());
        let long = "d/".repeat(200) + "file";
        let mut h = tar::Header::new_gnu();
        h.set_size(700);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &[7u8; 700][..])
            .expect("append");
        let data = b.into_inner().expect("tar");
        let mut out = Vec::new();
        // Small reads, so headers arrive in pieces.
        let mut g = TarGuard::new(std::io::BufReader::with_capacity(7, &data[..]));
        let mut chunk = [0u8; 13];
        loop {
            let n = g.read(&mut chunk).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(out, data);
    }

    #[test]
    fn a_huge_long_name_is_stopped_before_it_is_read() {
        let mut data = header(tar::EntryType::GNULongName, 10 << 30);
        data.extend_from_slice(&[b'a'; 512]);
        let e = std::io::copy(&mut TarGuard::new(&data[..]), &mut std::io::sink())
            .expect_err("refused");
        assert!(e.to_string().contains("long name"), "{e}");
        let data = header(tar::EntryType::XHeader, MAX_META + 1);
        assert!(std::io::copy(&mut TarGuard::new(&data[..]), &mut std::io::sink()).is_err());
        let data = header(tar::EntryType::GNUSparse, 10);
        assert!(std::io::copy(&mut TarGuard::new(&data[..]), &mut std::io::sink()).is_err());
    }

    #[test]
    fn sizes_are_read_in_both_encodings() {
        assert_eq!(size_of(b"00000001750\0"), 1000);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 2;
        big[10] = 1;
        assert_eq!(size_of(&big), 258);
    }
}
