//! Keeping every write inside the destination tree.
//!
//! Archive entry names are checked lexically (no absolute paths, no `..`),
//! then resolved component by component *under* the destination root, the
//! way `openat2(RESOLVE_IN_ROOT)` would: a symlink met on the way is
//! followed with its target interpreted relative to the root (an absolute
//! target starts again at the root, `..` stops at the root), so a symlink
//! planted by an earlier entry or layer (`etc -> /`) can never lead a write
//! onto the host. The final component is never followed.
//!
//! This is race-free only because nothing else writes into the destination
//! while an import runs (it is a fresh subvolume owned by the importer).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution may follow (Linux's own limit).
const MAX_SYMLINK_HOPS: u32 = 40;

/// Splits an archive entry name into its normal components.
///
/// Empty and `.` components are dropped; an absolute name or any `..`
/// component is refused. An empty result means the root itself (`./`).
pub(crate) fn parse_entry_path(bytes: &[u8]) -> Result<Vec<OsString>, &'static str> {
    if bytes.first() == Some(&b'/') {
        return Err("absolute paths are not allowed in image archives");
    }
    let mut out = Vec::new();
    for comp in bytes.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("'..' path components are not allowed in image archives"),
            name => out.push(OsStr::from_bytes(name).to_os_string()),
        }
    }
    Ok(out)
}

/// A path resolved under the destination root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The absolute path to operate on; every directory above its final
    /// component is a real directory inside the root.
    pub(crate) abs: PathBuf,
    /// The same path relative to the root (empty for the root itself).
    pub(crate) rel: PathBuf,
}

/// Why a path could not be resolved.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// A component on the way is a file, device or similar.
    NotADirectory(PathBuf),
    /// Symlinks loop or chain too deeply.
    TooManySymlinks,
    /// A filesystem call failed.
    Io(PathBuf, io::Error),
}

impl ResolveError {
    /// A human description, for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            ResolveError::NotADirectory(p) => format!("'{}' is not a directory", p.display()),
            ResolveError::TooManySymlinks => "too many levels of symbolic links".to_string(),
            ResolveError::Io(p, e) => format!("'{}': {e}", p.display()),
        }
    }
}

/// What to do when a directory on the way does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Missing {
    /// Create it (mode 0755, owned by the importer), as tar does.
    Create,
    /// Report the path as absent (`Ok(None)`).
    Absent,
}

/// Resolves `comps` under `root`: the directories above the last component
/// are resolved (following symlinks clamped to `root`), the last component
/// is not. An empty `comps` resolves to the root itself.
pub(crate) fn resolve(
    root: &Path,
    comps: &[OsString],
    missing: Missing,
) -> Result<Option<Resolved>, ResolveError> {
    let Some((last, parents)) = comps.split_last() else {
        return Ok(Some(Resolved {
            abs: root.to_path_buf(),
            rel: PathBuf::new(),
        }));
    };
    let mut queue: VecDeque<Step> = parents.iter().map(|c| Step::Down(c.clone())).collect();
    let mut stack: Vec<OsString> = Vec::new();
    let mut cur = root.to_path_buf();
    let mut hops = 0;
    while let Some(step) = queue.pop_front() {
        let name = match step {
            Step::Up => {
                if stack.pop().is_some() {
                    cur.pop();
                }
                continue;
            }
            Step::Down(name) => name,
        };
        cur.push(&name);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.is_dir() => stack.push(name),
            Ok(md) if md.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(ResolveError::TooManySymlinks);
                }
                let target = fs::read_link(&cur).map_err(|e| ResolveError::Io(cur.clone(), e))?;
                cur.pop();
                if target.is_absolute() {
                    stack.clear();
                    cur = root.to_path_buf();
                }
                let expansion = target.components().filter_map(|c| match c {
                    Component::Normal(n) => Some(Step::Down(n.to_os_string())),
                    Component::ParentDir => Some(Step::Up),
                    Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
                });
                let expansion: Vec<Step> = expansion.collect();
                for step in expansion.into_iter().rev() {
                    queue.push_front(step);
                }
            }
            Ok(_) => return Err(ResolveError::NotADirectory(rel_of(&stack, &name))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match missing {
                Missing::Absent => return Ok(None),
                Missing::Create => {
                    fs::create_dir(&cur).map_err(|e| ResolveError::Io(cur.clone(), e))?;
                    stack.push(name);
                }
            },
            Err(e) => return Err(ResolveError::Io(cur, e)),
        }
    }
    Ok(Some(Resolved {
        abs: cur.join(last),
        rel: rel_of(&stack, last),
    }))
}

/// True when `rel` names a real directory under `root` reached through real
/// directories only (no symlink anywhere on the way).
pub(crate) fn is_plain_dir(root: &Path, rel: &Path) -> bool {
    let mut cur = root.to_path_buf();
    for comp in rel.components() {
        let Component::Normal(name) = comp else {
            return false;
        };
        cur.push(name);
        match fs::symlink_metadata(&cur) {
            Ok(md) if md.is_dir() => {}
            _ => return false,
        }
    }
    true
}

enum Step {
    Down(OsString),
    Up,
}

fn rel_of(stack: &[OsString], last: &OsStr) -> PathBuf {
    let mut rel: PathBuf = stack.iter().collect();
    rel.push(last);
    rel
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn comps(s: &str) -> Vec<OsString> {
        parse_entry_path(s.as_bytes()).expect("valid path")
    }

    #[test]
    fn entry_paths_with_dotdot_or_leading_slash_are_refused() {
        assert!(parse_entry_path(b"../escape").is_err());
        assert!(parse_entry_path(b"a/../../b").is_err());
        assert!(parse_entry_path(b"/etc/passwd").is_err());
        assert_eq!(
            comps("./a//b/./c"),
            vec![OsString::from("a"), "b".into(), "c".into()]
        );
        assert!(comps("./").is_empty());
    }

    #[test]
    fn absolute_symlink_resolves_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        symlink("/usr/lib", root.join("lib")).expect("symlink");
        let r = resolve(root, &comps("lib/x/file"), Missing::Create)
            .expect("resolve")
            .expect("present");
        assert_eq!(r.abs, root.join("usr/lib/x/file"));
        assert_eq!(r.rel, Path::new("usr/lib/x/file"));
        assert!(root.join("usr/lib/x").is_dir());
    }

    #[test]
    fn dotdot_in_symlink_targets_stops_at_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("a")).expect("mkdir");
        symlink("../../../../outside", root.join("a/up")).expect("symlink");
        let r = resolve(&root, &comps("a/up/f"), Missing::Absent).expect("resolve");
        assert_eq!(r, None);
        let r = resolve(&root, &comps("a/up/f"), Missing::Create)
            .expect("resolve")
            .expect("present");
        assert_eq!(r.abs, root.join("outside/f"));
        assert!(!dir.path().join("outside").exists());
    }

    #[test]
    fn symlink_loops_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        symlink("b", dir.path().join("a")).expect("symlink");
        symlink("a", dir.path().join("b")).expect("symlink");
        let r = resolve(dir.path(), &comps("a/x"), Missing::Create);
        assert!(matches!(r, Err(ResolveError::TooManySymlinks)));
    }
}
