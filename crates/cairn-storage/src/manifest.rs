//! The manifest beside each snapshot: a small, typed, versioned JSON document that says
//! what the snapshot is (its source sandbox, image, resources) and what its memory
//! checkpoint needs to resume (the runtime identity it was taken under).
//!
//! On disk it is `manifest.json` in the snapshot's directory, with the field names Cairn
//! has always written, so every pool made so far still loads. Fields added after the
//! first version are optional when read. It is written crash-safely (temporary name,
//! fsync, rename, fsync of the directory) and read back with checks: its size, that it is
//! JSON, its format marker and its version (a manifest written by a newer Cairn is refused
//! rather than misread).
//!
//! Not for: deciding whether a snapshot may resume on this host (the engine compares the
//! identity it records with the host's).

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::StorageError;

/// The file name of a manifest inside its snapshot's directory.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";
/// The largest manifest read back (environment variables are its only large part).
const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// What a snapshot's manifest records. Field names are the on-disk JSON names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`Manifest::FORMAT`]: tells a manifest from any other JSON file.
    pub format: String,
    /// The manifest's version ([`Manifest::VERSION`] when written by this Cairn).
    pub version: u32,
    /// The snapshot's id.
    pub id: String,
    /// The snapshot's name.
    pub name: String,
    /// The id of the sandbox it was taken from.
    pub sandbox: String,
    /// The snapshot the sandbox's files came from, if any.
    pub parent: Option<String>,
    /// The id of the image under the sandbox's files.
    pub image: String,
    /// The runtime the sandbox ran under (`gvisor`, `runc`).
    pub runtime: String,
    /// CPU cores of the sandbox.
    pub cpus: f64,
    /// Memory limit of the sandbox.
    pub memory_bytes: u64,
    /// Process limit of the sandbox.
    pub pids_limit: u32,
    /// Environment of the sandbox (`KEY=value`).
    pub env: Vec<String>,
    /// Working directory of the sandbox's processes.
    pub workdir: String,
    /// Whether the snapshot holds process memory (a checkpoint) besides files.
    #[serde(default)]
    pub stateful: bool,
    /// The kernel release of the host it was taken on.
    #[serde(default)]
    pub kernel_release: String,
    /// The CRIU that wrote a runc sandbox's memory checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criu_version: Option<String>,
    /// The runtime's version line.
    #[serde(default)]
    pub runtime_version: Option<String>,
    /// CPU architecture (and gVisor's platform); missing in manifests written before it
    /// was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// When the snapshot was taken (RFC 3339).
    pub created_at: String,
}

impl Manifest {
    /// The format marker every manifest carries.
    pub const FORMAT: &'static str = "cairn-snapshot";
    /// The newest manifest version this Cairn reads, and the one it writes.
    pub const VERSION: u32 = 1;

    /// Writes the manifest into the directory `dir` durably: to a temporary name, synced,
    /// renamed over `manifest.json`, and the directory synced.
    pub fn save(&self, dir: &Path) -> Result<(), StorageError> {
        let path = dir.join(MANIFEST_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| StorageError::BadManifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(StorageError::io("creating", &tmp))?;
        f.write_all(&json)
            .and_then(|()| f.sync_all())
            .map_err(StorageError::io("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(StorageError::io("renaming", &tmp))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(StorageError::io("syncing", dir))
    }

    /// Reads the manifest in the directory `dir`, refusing one that is too large, not
    /// JSON, not a snapshot manifest, of a newer version, or missing a field.
    pub fn load(dir: &Path) -> Result<Manifest, StorageError> {
        let path = dir.join(MANIFEST_FILE);
        let f = std::fs::File::open(&path).map_err(StorageError::io("opening", &path))?;
        let mut data = Vec::new();
        f.take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(StorageError::io("reading", &path))?;
        Self::decode(&data).map_err(|reason| StorageError::BadManifest { path, reason })
    }

    /// Parses a manifest's bytes; the error says what is wrong with them.
    fn decode(data: &[u8]) -> Result<Manifest, String> {
        if data.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(format!("it is over {MAX_MANIFEST_BYTES} bytes"));
        }
        let value: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| format!("it is not JSON ({e})"))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(Self::FORMAT) => {}
            Some(other) => return Err(format!("its format is '{other}', not '{}'", Self::FORMAT)),
            None => return Err("it is not a snapshot manifest (no format)".into()),
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v > u64::from(Self::VERSION) => {
                return Err(format!(
                    "it is version {v}, written by a newer Cairn (this one reads up to {}): upgrade cairnd",
                    Self::VERSION
                ))
            }
            Some(_) => {}
            None => return Err("it has no version".into()),
        }
        serde_json::from_value(value).map_err(|e| format!("it is incomplete ({e})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: Manifest::FORMAT.into(),
            version: Manifest::VERSION,
            id: "snap-1b2c3d4e".into(),
            name: "before-upgrade".into(),
            sandbox: "sbx-7f3a9c2e".into(),
            parent: None,
            image: "img-00000001".into(),
            runtime: "runc".into(),
            cpus: 1.0,
            memory_bytes: 512 << 20,
            pids_limit: 1024,
            env: vec!["PATH=/bin".into()],
            workdir: "/".into(),
            stateful: true,
            kernel_release: "6.12.0".into(),
            criu_version: Some("4.2".into()),
            runtime_version: Some("runc version 1.1.5".into()),
            platform: Some("x86_64".into()),
            created_at: "2026-11-30T00:00:00+00:00".into(),
        }
    }

    #[test]
    fn a_saved_manifest_loads_back_the_same() {
        let dir = tempfile::tempdir().expect("tempdir");
        sample().save(dir.path()).expect("save");
        assert_eq!(Manifest::load(dir.path()).expect("load"), sample());
        assert!(!dir.path().join("manifest.tmp").exists());
    }

    #[test]
    fn a_manifest_keeps_the_field_names_older_cairns_wrote() {
        let json: serde_json::Value = serde_json::to_value(sample()).expect("serialize");
        let mut keys: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "cpus",
                "created_at",
                "criu_version",
                "env",
                "format",
                "id",
                "image",
                "kernel_release",
                "memory_bytes",
                "name",
                "parent",
                "pids_limit",
                "platform",
                "runtime",
                "runtime_version",
                "sandbox",
                "stateful",
                "version",
                "workdir"
            ]
        );
    }

    #[test]
    fn a_manifest_from_before_the_runtime_identity_was_recorded_loads() {
        // What the first Cairn with snapshots wrote.
        let old = br#"{"format":"cairn-snapshot","version":1,"id":"snap-1","name":"n",
            "sandbox":"sbx-1","parent":null,"image":"img-1","runtime":"gvisor","cpus":1.0,
            "memory_bytes":1,"pids_limit":2,"env":[],"workdir":"/",
            "created_at":"2026-11-20T00:00:00Z"}"#;
        let m = Manifest::decode(old).expect("an old manifest loads");
        assert!(!m.stateful);
        assert_eq!(m.platform, None);
        assert_eq!(m.runtime_version, None);
        assert_eq!(m.kernel_release, "");
    }

    #[test]
    fn bad_manifests_are_refused_saying_why() {
        let err = Manifest::decode(b"{not json").expect_err("not JSON");
        assert!(err.contains("not JSON"), "{err}");
        let err = Manifest::decode(br#"{"format":"oci-image","version":1}"#).expect_err("format");
        assert!(err.contains("'oci-image'"), "{err}");
        let err = Manifest::decode(br#"{"version":1}"#).expect_err("no format");
        assert!(err.contains("no format"), "{err}");
        let mut newer = serde_json::to_value(sample()).expect("serialize");
        newer["version"] = 2.into();
        let err = Manifest::decode(&serde_json::to_vec(&newer).expect("bytes"))
            .expect_err("newer version");
        assert!(err.contains("version 2") && err.contains("newer"), "{err}");
        let mut missing = serde_json::to_value(sample()).expect("serialize");
        missing.as_object_mut().expect("object").remove("sandbox");
        let err = Manifest::decode(&serde_json::to_vec(&missing).expect("bytes"))
            .expect_err("missing field");
        assert!(err.contains("sandbox"), "{err}");
    }

    #[test]
    fn a_missing_or_oversized_manifest_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Manifest::load(dir.path()).is_err());
        let big = vec![b' '; (MAX_MANIFEST_BYTES + 10) as usize];
        std::fs::write(dir.path().join(MANIFEST_FILE), big).expect("write");
        let err = Manifest::load(dir.path()).expect_err("too large");
        assert!(err.to_string().contains("over"), "{err}");
    }
}
