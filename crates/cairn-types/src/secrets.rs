//! Secrets given to a sandbox (`cairn up --secret NAME=VALUE`): names and values, and the
//! rules they must follow. A [`Secrets`] never shows its values in a debug print, so a
//! logged request does not leak them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The most secrets one sandbox holds.
pub const MAX_SECRETS: usize = 32;
/// The longest secret name.
pub const MAX_SECRET_NAME: usize = 64;
/// The largest secret value, in bytes.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// The most bytes of all a sandbox's secret values together.
pub const MAX_SECRETS_BYTES: usize = 256 * 1024;

/// Secrets by name: `NAME` → value.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secrets(pub BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Their names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    /// Checks every name and the limits; the error says which rule was broken and how to
    /// fix it (it never quotes a value).
    pub fn validate(&self) -> Result<(), String> {
        if self.0.len() > MAX_SECRETS {
            return Err(format!(
                "{} secrets is over the limit of {MAX_SECRETS}: give fewer",
                self.0.len()
            ));
        }
        let mut total = 0;
        for (name, value) in &self.0 {
            validate_secret_name(name)?;
            if value.len() > MAX_SECRET_BYTES {
                return Err(format!(
                    "secret {name} has {} bytes, over the limit of {MAX_SECRET_BYTES}",
                    value.len()
                ));
            }
            total += value.len();
        }
        if total > MAX_SECRETS_BYTES {
            return Err(format!(
                "the secrets hold {total} bytes together, over the limit of {MAX_SECRETS_BYTES}"
            ));
        }
        Ok(())
    }
}

/// A secret's name: a letter or `_`, then letters, digits or `_`, at most
/// 64 characters (`MAX_SECRET_NAME`; it names a file in `/run/secrets` and an environment
/// variable).
pub fn validate_secret_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= MAX_SECRET_NAME;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid secret name {:?}: use a letter or '_' then letters, digits or '_' (at most {MAX_SECRET_NAME}), e.g. API_KEY",
            name.chars().take(MAX_SECRET_NAME + 1).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_environment_variable_rule() {
        for ok in ["API_KEY", "_x", "a1", &"A".repeat(MAX_SECRET_NAME)] {
            assert!(validate_secret_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1A",
            "a-b",
            "../etc",
            "a b",
            "é",
            "A=B",
            &"A".repeat(MAX_SECRET_NAME + 1),
        ] {
            assert!(validate_secret_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_are_enforced_and_values_never_printed() {
        let mut s = Secrets::default();
        s.0.insert("A".into(), "hunter2".into());
        assert!(s.validate().is_ok());
        assert!(!format!("{s:?}").contains("hunter2"));
        s.0.insert("B".into(), "x".repeat(MAX_SECRET_BYTES + 1));
        let e = s.validate().unwrap_err();
        assert!(e.contains("secret B") && !e.contains("xxx"), "{e}");
        let many = Secrets(
            (0..=MAX_SECRETS)
                .map(|i| (format!("S{i}"), String::new()))
                .collect(),
        );
        assert!(many.validate().unwrap_err().contains("limit"));
        let big = Secrets(
            (0..5)
                .map(|i| (format!("S{i}"), "x".repeat(MAX_SECRET_BYTES)))
                .collect(),
        );
        assert!(big.validate().unwrap_err().contains("together"));
    }
}
