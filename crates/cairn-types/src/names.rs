//! Names users give to sandboxes, snapshots and images.

use crate::{ImageId, SandboxId, SnapshotId};

/// Why a name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid name '{name}': {reason}; use 1-63 characters from a-z, A-Z, 0-9, '.', '_' and '-', starting with a letter or digit")]
pub struct NameError {
    /// The refused name.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks a user-chosen name (sandbox, snapshot, image). Names become parts of paths
/// nowhere: they are only looked up in the database, but we keep them tame
/// so they are safe in tables, URLs and shells. A name shaped like an id
/// (`sbx-7f3a9c2e`, `img-…`, `snap-…`) is refused, so that an id always means
/// that object and never a name another object was given.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let err = |reason| {
        Err(NameError {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return err("it is empty");
    }
    if name.len() > 63 {
        return err("it is longer than 63 characters");
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return err("it must start with a letter or digit");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return err("it contains a character outside a-z A-Z 0-9 . _ -");
    }
    if looks_like_id(name) {
        return err("it has the shape of an id (sbx-, img- or snap- and 8 hex digits), which would make lookups ambiguous");
    }
    Ok(())
}

/// Whether `s` has the shape of a sandbox, image or snapshot id: lookups treat such a
/// string as an id only, never as a name.
pub fn looks_like_id(s: &str) -> bool {
    s.parse::<SandboxId>().is_ok()
        || s.parse::<ImageId>().is_ok()
        || s.parse::<SnapshotId>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in [
            "base",
            "my-box_1",
            "v1.2",
            "A",
            "sbx-box",
            "snap-before-upgrade",
            "sbx-7f3a9c2e-old",
        ] {
            validate_name(ok).unwrap();
        }
    }

    #[test]
    fn refuses_names_that_could_surprise() {
        for bad in [
            "",
            "-x",
            ".hidden",
            "a/b",
            "a b",
            "x;rm",
            &"a".repeat(64),
            "sbx-7f3a9c2e",
            "img-00000000",
            "snap-deadbeef",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
