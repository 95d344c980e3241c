//! The paths a caller names inside a sandbox or snapshot: checked here, as text, before
//! anything is opened. What they point to is found by descriptor (`tree`), never by
//! joining strings onto a host path.
//!
//! A path is absolute inside the tree (`/etc/hosts`), at most [`MAX_PATH`] bytes with
//! components of at most [`MAX_NAME`], and holds no NUL. `..` components are allowed: the
//! kernel resolves them inside the tree's root (`RESOLVE_IN_ROOT`), where `/..` is `/`.

use crate::EngineError;

/// The longest path accepted (Linux's `PATH_MAX`, less its NUL).
pub const MAX_PATH: usize = 4095;
/// The longest component accepted (Linux's `NAME_MAX`).
pub const MAX_NAME: usize = 255;

/// A checked path inside a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TreePath {
    /// As the caller gave it, for messages.
    shown: String,
    /// Its components (no empty ones, no `.`).
    parts: Vec<String>,
}

impl TreePath {
    /// Checks `path` (absolute, no NUL, not too long).
    pub(crate) fn parse(path: &str) -> Result<TreePath, EngineError> {
        if path.is_empty() {
            return Err(EngineError::InvalidArgument(
                "no path given: pass ?path=/absolute/path inside the sandbox (/ for its root)"
                    .into(),
            ));
        }
        if path.contains('\0') {
            return Err(EngineError::InvalidArgument(
                "the path holds a NUL byte: give a path without it".into(),
            ));
        }
        if !path.starts_with('/') {
            return Err(EngineError::InvalidArgument(format!(
                "path '{path}' is relative: give an absolute path inside the sandbox, such as /{path}"
            )));
        }
        if path.len() > MAX_PATH {
            return Err(EngineError::InvalidArgument(format!(
                "the path is {} bytes long, over the limit of {MAX_PATH}: give a shorter path",
                path.len()
            )));
        }
        let parts: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(str::to_string)
            .collect();
        if let Some(long) = parts.iter().find(|c| c.len() > MAX_NAME) {
            return Err(EngineError::InvalidArgument(format!(
                "a component of the path is {} bytes long, over the limit of {MAX_NAME}: give shorter names",
                long.len()
            )));
        }
        Ok(TreePath {
            shown: path.to_string(),
            parts,
        })
    }

    /// The path as the caller gave it.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// The path relative to the tree's root, for `openat2` from the root (`.` for the root).
    pub(crate) fn relative(&self) -> String {
        if self.parts.is_empty() {
            ".".into()
        } else {
            self.parts.join("/")
        }
    }

    /// The path inside the tree's root, absolute (`/` for the root), as the sandbox's own
    /// processes name it.
    pub(crate) fn absolute(&self) -> String {
        format!("/{}", self.parts.join("/"))
    }

    /// Whether it names the root itself.
    pub(crate) fn is_root(&self) -> bool {
        self.parts.is_empty()
    }

    /// Its directory (relative to the root) and its last name, for operations on the entry
    /// itself (write, remove, move): refused for the root and for a path ending in `..`,
    /// whose entry has no name of its own.
    /// The directory holding it (`None` for the root, or one whose last part is `..`).
    pub(crate) fn parent_path(&self) -> Option<TreePath> {
        match self.parts.split_last() {
            Some((last, dir)) if last != ".." => Some(TreePath {
                shown: format!("/{}", dir.join("/")),
                parts: dir.to_vec(),
            }),
            _ => None,
        }
    }

    pub(crate) fn split(&self) -> Result<(String, &str), EngineError> {
        match self.parts.split_last() {
            None => Err(EngineError::InvalidArgument(format!(
                "'{}' is the root: name a file or directory inside it",
                self.shown
            ))),
            Some((last, _)) if last == ".." => Err(EngineError::InvalidArgument(format!(
                "path '{}' ends in '..': name the file or directory itself",
                self.shown
            ))),
            Some((last, dir)) => Ok((
                if dir.is_empty() {
                    ".".into()
                } else {
                    dir.join("/")
                },
                last.as_str(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_split_into_directory_and_name() {
        let p = TreePath::parse("/etc//hosts").expect("valid");
        assert_eq!(p.relative(), "etc/hosts");
        assert_eq!(p.split().expect("has a name"), ("etc".to_string(), "hosts"));
        let p = TreePath::parse("/a/./b/").expect("valid");
        assert_eq!(p.relative(), "a/b");
        let p = TreePath::parse("/top").expect("valid");
        assert_eq!(p.split().expect("has a name"), (".".to_string(), "top"));
    }

    #[test]
    fn the_root_has_no_name() {
        let p = TreePath::parse("/").expect("valid");
        assert!(p.is_root());
        assert_eq!(p.relative(), ".");
        assert!(p.split().is_err());
    }

    #[test]
    fn dot_dot_is_kept_for_the_kernel_but_never_names_an_entry() {
        let p = TreePath::parse("/../../etc/passwd").expect("valid");
        assert_eq!(p.relative(), "../../etc/passwd");
        assert!(TreePath::parse("/a/..").expect("valid").split().is_err());
    }

    #[test]
    fn bad_paths_are_refused_with_the_fix() {
        for (bad, says) in [("", "no path"), ("etc/hosts", "relative"), ("/a\0b", "NUL")] {
            let e = TreePath::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
        let long = format!("/{}", "a".repeat(MAX_NAME + 1));
        assert!(TreePath::parse(&long).is_err());
        let deep = "/a".repeat(MAX_PATH);
        assert!(TreePath::parse(&deep).is_err());
    }
}
