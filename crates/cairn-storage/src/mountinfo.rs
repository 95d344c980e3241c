//! Reads `/proc/self/mountinfo` to learn whether (and what) is mounted on a
//! directory: the pool's mount, and the engine's runtime state directory. Only what
//! they need: mount point, per-mount options, file system type and source; nothing
//! here changes mounts.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The per-mount options, e.g. `rw,nodev,relatime` (not the file
    /// system's own options).
    pub options: String,
    /// The file system type, e.g. `btrfs`.
    pub fstype: String,
    /// The mount source, e.g. `/dev/loop3`.
    pub source: String,
}

/// Undoes the octal escapes (`\040` for a space, …) of mountinfo fields.
fn unescape(field: &str) -> OsString {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let digits = bytes.get(i + 1..i + 4).unwrap_or_default();
            if digits.len() == 3 && digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(value) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    OsString::from_vec(out)
}

/// Parses the text of a mountinfo file; malformed lines are skipped.
pub(crate) fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            if dash < 6 {
                return None;
            }
            Some(MountEntry {
                mount_point: PathBuf::from(unescape(fields.get(4)?)),
                options: (*fields.get(5)?).to_string(),
                fstype: (*fields.get(dash + 1)?).to_string(),
                source: unescape(fields.get(dash + 2)?)
                    .to_string_lossy()
                    .into_owned(),
            })
        })
        .collect()
}

impl MountEntry {
    /// Whether the per-mount options include `option` (e.g. `nodev`).
    pub fn has_option(&self, option: &str) -> bool {
        self.options.split(',').any(|o| o == option)
    }
}

/// What is mounted on `dir` (the topmost mount when several are stacked),
/// or `None` when `dir` is not a mount point. `dir` should be canonical.
pub fn mount_at(dir: &Path) -> std::io::Result<Option<MountEntry>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse(&text)
        .into_iter()
        .rev()
        .find(|m| m.mount_point == dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
43 22 0:39 / /var/lib/cairn/pool rw,relatime shared:20 - btrfs /dev/loop0 rw,space_cache=v2
44 22 0:40 / /tmp/with\\040space rw - tmpfs tmpfs rw
45 43 0:41 / /var/lib/cairn/pool rw - tmpfs none rw
garbage line
";

    #[test]
    fn parses_mount_point_type_and_source_with_optional_fields() {
        let entries = parse(SAMPLE);
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[1].mount_point, PathBuf::from("/var/lib/cairn/pool"));
        assert_eq!(entries[1].fstype, "btrfs");
        assert_eq!(entries[1].source, "/dev/loop0");
        assert_eq!(entries[1].options, "rw,relatime");
        assert!(entries[1].has_option("relatime"));
        assert!(!entries[1].has_option("nodev"));
        assert!(!entries[1].has_option("rw,"));
    }

    #[test]
    fn unescapes_spaces_in_mount_points() {
        let entries = parse(SAMPLE);
        assert_eq!(entries[2].mount_point, PathBuf::from("/tmp/with space"));
        assert_eq!(unescape("a\\134b\\0"), OsString::from("a\\b\\0"));
    }

    #[test]
    fn the_topmost_of_stacked_mounts_wins() {
        let top = parse(SAMPLE)
            .into_iter()
            .rev()
            .find(|m| m.mount_point == Path::new("/var/lib/cairn/pool"));
        assert_eq!(top.map(|m| m.fstype), Some("tmpfs".to_string()));
    }
}
