//! What a tar entry's headers say beyond its type and path: ownership, mode,
//! times and xattrs (ustar, with PAX records winning), and a PAX sparse map.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;

use crate::meta::Meta;
use crate::sparse::PaxSparse;

/// The sparse map in the PAX records of `entry`, if they describe one.
pub(crate) fn pax_sparse<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Option<PaxSparse>> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(None);
    };
    let records: Vec<(&[u8], &[u8])> = extensions
        .map(|ext| ext.map(|e| (e.key_bytes(), e.value_bytes())))
        .collect::<io::Result<_>>()?;
    PaxSparse::from_records(records)
}

/// Ownership, mode, mtime and xattrs of an entry; PAX records (larger ids,
/// sub-second mtimes, `SCHILY.xattr.*`) win over the ustar header.
pub(crate) fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let header = entry.header();
    let id = |v: u64| {
        u32::try_from(v).map_err(|_| io::Error::other(format!("owner id {v} out of range")))
    };
    let mut meta = Meta {
        mode: header.mode()? & 0o7777,
        uid: id(header.uid()?)?,
        gid: id(header.gid()?)?,
        mtime_secs: i64::try_from(header.mtime()?).unwrap_or(i64::MAX),
        mtime_nsecs: 0,
        xattrs: Vec::new(),
    };
    if let Some(extensions) = entry.pax_extensions()? {
        for ext in extensions {
            let ext = ext?;
            let (key, value) = (ext.key_bytes(), ext.value_bytes());
            if let Some(xattr) = key.strip_prefix(b"SCHILY.xattr.") {
                meta.xattrs
                    .push((OsStr::from_bytes(xattr).to_os_string(), value.to_vec()));
                continue;
            }
            let text = std::str::from_utf8(value).unwrap_or("");
            match key {
                b"uid" => {
                    meta.uid = text
                        .parse()
                        .map_err(|_| io::Error::other(format!("bad PAX uid '{text}'")))?
                }
                b"gid" => {
                    meta.gid = text
                        .parse()
                        .map_err(|_| io::Error::other(format!("bad PAX gid '{text}'")))?
                }
                b"mtime" => {
                    if let Some((secs, nsecs)) = parse_pax_time(text) {
                        (meta.mtime_secs, meta.mtime_nsecs) = (secs, nsecs);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(meta)
}

/// Parses a PAX time, `secs[.fraction]` (possibly negative).
fn parse_pax_time(text: &str) -> Option<(i64, u32)> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nsecs = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some((secs, nsecs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_keep_their_fraction() {
        assert_eq!(
            parse_pax_time("1700000000.5"),
            Some((1_700_000_000, 500_000_000))
        );
        assert_eq!(parse_pax_time("12"), Some((12, 0)));
        assert_eq!(parse_pax_time("x"), None);
    }
}
