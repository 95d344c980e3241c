//! Registry references: `host[:port]/repository[:tag|@digest]`, checked as text before
//! anything connects anywhere, and the rule that tells one from an image name.
//!
//! Docker Hub's short forms are understood (`python:3.12` is
//! `docker.io/library/python:3.12`, served by `registry-1.docker.io`). Not for: talking
//! to the registry (`client`).

use std::fmt;

use crate::{EngineError, Result};

/// Docker Hub, as references name it.
const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API is served.
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// Longest reference accepted (the distribution spec bounds names at 255).
const MAX_REFERENCE_LEN: usize = 512;

/// A parsed registry reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as written (`docker.io` for Docker Hub).
    pub registry: String,
    /// The repository path (`library/python`).
    pub repository: String,
    /// The tag, when the reference names one (`latest` when it names neither).
    pub tag: Option<String>,
    /// The manifest digest, when the reference pins one (`sha256:…`).
    pub digest: Option<String>,
}

/// Whether `s` is a registry reference rather than an image name: image names never hold
/// `/`, `:` or `@` (see `validate_name`), references of a registry always hold one of them
/// (`busybox` alone is an image name; `busybox:latest` or `docker.io/busybox` pull).
pub fn looks_like_reference(s: &str) -> bool {
    s.contains(['/', ':', '@'])
}

impl Reference {
    /// Parses `reference`, refusing anything that is not one, with what to write instead.
    pub fn parse(reference: &str) -> Result<Reference> {
        let bad = |why: &str| {
            EngineError::InvalidArgument(format!(
                "'{}' is not a registry reference ({why}): write HOST[:PORT]/REPOSITORY[:TAG] or …@sha256:DIGEST, e.g. registry.example.com/team/app:1.2 or python:3.12 (Docker Hub)",
                reference.chars().take(100).collect::<String>()
            ))
        };
        if reference.is_empty() || reference.len() > MAX_REFERENCE_LEN {
            return Err(bad("empty or too long"));
        }
        if !reference.is_ascii() || reference.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(bad("it holds spaces or characters outside ASCII"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => {
                let (alg, hex) = digest.split_once(':').ok_or_else(|| bad("bad digest"))?;
                if alg != "sha256"
                    || hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(bad(
                        "the digest must be sha256: and 64 lowercase hex digits",
                    ));
                }
                (rest, Some(digest.to_string()))
            }
            None => (reference, None),
        };
        // A tag follows the last ':' after the last '/' (a port's ':' comes before a '/').
        let slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if slash.is_none_or(|s| colon > s) => {
                (&rest[..colon], Some(rest[colon + 1..].to_string()))
            }
            _ => (rest, None),
        };
        if let Some(tag) = &tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag.as_bytes()[0] != b'.'
                && tag.as_bytes()[0] != b'-'
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(bad("a tag is 1 to 128 of a-z A-Z 0-9 . _ -"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        check_host(&registry).map_err(|why| bad(&why))?;
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if repository.len() > 255 || !repository.split('/').all(component_ok) {
            return Err(bad(
                "a repository is lowercase a-z 0-9 . _ - components separated by /",
            ));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Where the registry's API is served (`host[:port]`).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// What the manifest request names: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The image name a pull gives when the caller names none: the repository's last
    /// component and the tag (or the digest's first 12 digits), `app-1.2`.
    pub fn default_name(&self) -> String {
        let last = self.repository.rsplit('/').next().unwrap_or("image");
        let suffix = match (&self.tag, &self.digest) {
            (_, Some(d)) => d.trim_start_matches("sha256:").chars().take(12).collect(),
            (Some(t), None) => t.clone(),
            (None, None) => "latest".into(),
        };
        let mut name = format!("{last}-{suffix}");
        name.truncate(63);
        name
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Checks `host[:port]`: a DNS name or an IPv4 address (IPv6 literals are not supported),
/// and a port in range.
pub(crate) fn check_host(host: &str) -> std::result::Result<(), String> {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if let Some(port) = port {
        if port.parse::<u16>().ok().is_none_or(|p| p == 0) {
            return Err(format!("'{port}' is not a port"));
        }
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!("'{name}' is not a host name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn references_name_registry_repository_and_tag_or_digest() {
        let r = parse("127.0.0.1:5000/team/app:v1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "team/app", Some("v1"))
        );
        assert_eq!(r.to_string(), "127.0.0.1:5000/team/app:v1");
        assert_eq!(r.default_name(), "app-v1");
        let r = parse("localhost:5000/app");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("reg.example.com/app@{d}"));
        assert_eq!(
            (r.tag.as_deref(), r.digest.as_deref()),
            (None, Some(d.as_str()))
        );
        assert_eq!(r.manifest_ref(), d);
    }

    #[test]
    fn docker_hub_short_forms_expand() {
        let r = parse("python:3.12");
        assert_eq!(r.to_string(), "docker.io/library/python:3.12");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(parse("org/tool").to_string(), "docker.io/org/tool:latest");
    }

    #[test]
    fn malformed_references_are_refused() {
        for bad in [
            "",
            "reg.example.com/App:v1",
            "reg.example.com/app:",
            "reg.example.com/app@sha256:1234",
            "reg.example.com:99999/app",
            "reg.example.com/app:v 1",
            "reg.example.com/../app",
            "bad_host.example/app",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_references_never_overlap() {
        assert!(!looks_like_reference("busybox"));
        assert!(looks_like_reference("busybox:latest"));
        assert!(looks_like_reference("127.0.0.1:5000/app"));
    }
}
