//! The sandbox's secrets inside it: files in [`SECRETS_DIR`] (a tmpfs the runtime mounts),
//! one per secret, mode 0400, owner root; and the values `spawn`'s `secret_env` adds to a
//! process's environment. cairnd hands them over in every `init` and they are removed
//! (files and the agent's own copies) at every `quiesce`, before a checkpoint: a snapshot
//! never holds them. The agent's heap is wiped on every free ([`crate::wipe`]), so no
//! copy outlives its use either.
//!
//! Refuses to write anywhere but a tmpfs: should the mount be missing (an older bundle) or
//! the path lead elsewhere, the secrets would land in the sandbox's root, which snapshots
//! capture.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::{Mutex, MutexGuard};

use cairn_agent::proto::{Secret, SECRETS_DIR};
use rustix::fs::{AtFlags, Mode, OFlags};

/// `statfs`'s type of a tmpfs.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The temporary name a secret is written under before it is renamed into place.
const TMP_PREFIX: &str = ".cairn-tmp-";

/// What the agent holds: the values, and the directory its files went into (kept open so
/// that the scrub removes them from there, whatever happened to the path since).
struct Held {
    values: Vec<(String, Vec<u8>)>,
    dir: Option<OwnedFd>,
}

static HELD: Mutex<Held> = Mutex::new(Held {
    values: Vec::new(),
    dir: None,
});

fn held() -> MutexGuard<'static, Held> {
    HELD.lock().unwrap_or_else(|p| p.into_inner())
}

/// Replaces the secrets with `secrets` (from `init`): the old files go, the new ones are
/// written. A secret that cannot be written is not held either (its `secret_env` refuses).
pub fn apply(secrets: Vec<Secret>) -> Result<(), String> {
    let mut held = held();
    scrub_locked(&mut held);
    if secrets.is_empty() {
        return Ok(());
    }
    let mut values = Vec::with_capacity(secrets.len());
    for s in secrets {
        let Some(value) = unhex(&s.hex) else {
            return Err(format!("secret {} is not hexadecimal", s.name));
        };
        if !valid_name(&s.name) {
            return Err(format!("'{}' is not a secret name", s.name));
        }
        values.push((s.name, value));
    }
    let dir = open_dir()?;
    for (name, value) in &values {
        write_one(&dir, name, value).map_err(|e| format!("cannot write secret {name}: {e}"))?;
    }
    held.values = values;
    held.dir = Some(dir);
    Ok(())
}

/// Removes every secret: the files (whatever else is in the directory too) and the values.
pub fn scrub() {
    scrub_locked(&mut held());
}

fn scrub_locked(held: &mut Held) {
    // The values' memory is wiped as it is freed.
    held.values.clear();
    let dir = match held.dir.take() {
        Some(d) => Some(d),
        None => open_dir().ok(),
    };
    if let Some(dir) = dir {
        remove_all(&dir);
    }
}

/// `NAME=VALUE` of each of `names`, or the first name not held.
pub fn env(names: &[String]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let held = held();
    names
        .iter()
        .map(|n| {
            held.values
                .iter()
                .find(|(name, _)| name == n)
                .map(|(name, value)| (name.clone(), value.clone()))
                .ok_or_else(|| format!("the sandbox has no secret {n}"))
        })
        .collect()
}

/// The same rule as cairnd's: a letter or `_`, then letters, digits or `_`.
fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 64
}

fn unhex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    hex.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// Opens [`SECRETS_DIR`], a directory on a tmpfs (never through a final symlink).
fn open_dir() -> Result<OwnedFd, String> {
    let dir = rustix::fs::open(
        SECRETS_DIR,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open {SECRETS_DIR}: {e}"))?;
    let fs = rustix::fs::fstatfs(&dir).map_err(|e| format!("cannot statfs {SECRETS_DIR}: {e}"))?;
    #[allow(clippy::useless_conversion)]
    let kind = i64::from(fs.f_type);
    if kind != TMPFS_MAGIC {
        return Err(format!(
            "{SECRETS_DIR} is not a tmpfs: secrets are not written where snapshots would keep them"
        ));
    }
    Ok(dir)
}

/// Writes `value` as `name` in `dir`: a temporary name (0400), then renamed into place.
fn write_one(dir: &OwnedFd, name: &str, value: &[u8]) -> std::io::Result<()> {
    let tmp = format!("{TMP_PREFIX}{name}");
    let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
    let fd = rustix::fs::openat(
        dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o400),
    )?;
    rustix::fs::fchown(
        &fd,
        Some(rustix::process::Uid::ROOT),
        Some(rustix::process::Gid::ROOT),
    )?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o400))?;
    std::fs::File::from(fd).write_all(value)?;
    rustix::fs::renameat(dir, tmp.as_str(), dir, name)?;
    Ok(())
}

/// Removes every entry of `dir` but directories.
fn remove_all(dir: &OwnedFd) {
    let Ok(dup) = rustix::io::fcntl_dupfd_cloexec(dir, 0) else {
        return;
    };
    let Ok(mut list) = rustix::fs::Dir::new(dup) else {
        return;
    };
    list.rewind();
    let mut names = Vec::new();
    while let Some(Ok(entry)) = list.read() {
        let name = entry.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    for name in names {
        let _ = rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hex() {
        assert!(valid_name("API_KEY") && valid_name("_x1"));
        assert!(!valid_name("") && !valid_name("1A") && !valid_name("a-b") && !valid_name("../x"));
        assert_eq!(unhex("00ff41"), Some(vec![0, 255, 0x41]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
