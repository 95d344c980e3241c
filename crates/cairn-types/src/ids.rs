//! Typed identifiers: `sbx-xxxxxxxx` for sandboxes, `img-xxxxxxxx` for images,
//! `snap-xxxxxxxx` for snapshots, `tok-xxxxxxxx` for API tokens.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Why a string is not a valid id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'{value}' is not a valid {kind} id: expected '{prefix}' followed by 8 lowercase hex digits, e.g. {prefix}7f3a9c2e")]
pub struct IdError {
    /// What kind of id was expected ("sandbox", "image").
    pub kind: &'static str,
    /// The prefix an id of that kind has.
    pub prefix: &'static str,
    /// The rejected input.
    pub value: String,
}

fn random_suffix() -> String {
    let n: u32 = rand::rng().random();
    format!("{n:08x}")
}

fn check(value: &str, prefix: &'static str, kind: &'static str) -> Result<(), IdError> {
    let ok = value.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 8
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if ok {
        Ok(())
    } else {
        Err(IdError {
            kind,
            prefix,
            value: value.to_string(),
        })
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_suffix()))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                check(s, $prefix, $kind)?;
                Ok(Self(s.to_string()))
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                check(&s, $prefix, $kind)?;
                Ok(Self(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// Identifies a sandbox: `sbx-` and 8 hex digits.
    SandboxId, "sbx-", "sandbox"
);
id_type!(
    /// Identifies an image: `img-` and 8 hex digits.
    ImageId, "img-", "image"
);
id_type!(
    /// Identifies a snapshot: `snap-` and 8 hex digits.
    SnapshotId, "snap-", "snapshot"
);
id_type!(
    /// Identifies an API token (not the token itself): `tok-` and 8 hex digits.
    TokenId, "tok-", "token"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_parse_back() {
        let id = SandboxId::generate();
        assert_eq!(id.as_str().parse::<SandboxId>().unwrap(), id);
        assert!(id.as_str().starts_with("sbx-"));
        assert_eq!(id.as_str().len(), 12);
    }

    #[test]
    fn malformed_ids_are_rejected_with_an_example() {
        for bad in [
            "",
            "sbx-",
            "sbx-1234567",
            "sbx-123456789",
            "sbx-ABCDEF12",
            "img-12345678",
            "../etc/passwd",
        ] {
            let err = bad.parse::<SandboxId>().unwrap_err();
            assert!(err.to_string().contains("sbx-7f3a9c2e"), "{err}");
        }
        assert!("img-0a1b2c3d".parse::<ImageId>().is_ok());
    }
}
