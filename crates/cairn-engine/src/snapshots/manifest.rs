//! The manifest beside each snapshot, and the runtime identity a stateful snapshot
//! needs to resume.

use cairn_db::SnapshotRecord;
use cairn_runtime::bundle::write_atomic;
use cairn_types::api::RuntimeIdentity;

use crate::{Engine, EngineError, Result};

/// The manifest written beside a snapshot's tree.
#[derive(serde::Serialize)]
pub(super) struct Manifest<'a> {
    format: &'static str,
    version: u32,
    id: &'a str,
    name: &'a str,
    sandbox: &'a str,
    parent: Option<&'a str>,
    image: &'a str,
    runtime: &'a str,
    cpus: f64,
    memory_bytes: u64,
    pids_limit: u32,
    env: &'a [String],
    workdir: &'a str,
    stateful: bool,
    kernel_release: String,
    /// The CRIU that wrote a runc sandbox's memory checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    criu_version: Option<String>,
    /// The runtime's version line.
    runtime_version: Option<String>,
    /// CPU architecture (and gVisor's platform).
    platform: String,
    created_at: String,
}

impl Engine {
    pub(super) async fn write_manifest(
        &self,
        dir: &std::path::Path,
        snap: &SnapshotRecord,
    ) -> Result<()> {
        // Only a memory checkpoint written by CRIU depends on CRIU's version.
        let identity = self.host_identity(snap.runtime, snap.stateful).await;
        let manifest = Manifest {
            format: "cairn-snapshot",
            version: 1,
            id: snap.id.as_str(),
            name: &snap.name,
            sandbox: snap.sandbox_id.as_str(),
            parent: snap.parent_id.as_ref().map(|p| p.as_str()),
            image: &snap.image_id,
            runtime: snap.runtime.as_str(),
            cpus: snap.resources.cpus,
            memory_bytes: snap.resources.memory_bytes,
            pids_limit: snap.resources.pids_limit,
            env: &snap.process.env,
            workdir: &snap.process.workdir,
            stateful: snap.stateful,
            kernel_release: identity.kernel_release,
            criu_version: identity.criu_version,
            runtime_version: identity.runtime_version,
            platform: identity.platform,
            created_at: snap.created_at.to_rfc3339(),
        };
        let json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        write_atomic(&dir.join("manifest.json"), &json)
            .map_err(|e| EngineError::Internal(format!("cannot write the manifest: {e}")))
    }

    /// Refuses, before anything is written, to resume a stateful snapshot where its
    /// processes cannot run: another runtime, kernel release, platform or (gVisor) runtime
    /// version than its manifest records. The error (409 `runtime_identity_mismatch`) names
    /// both identities and what works instead for the command that asked (`advice`; `sandbox`
    /// is the one it would resume into).
    pub(crate) async fn check_identity(
        &self,
        snap: &SnapshotRecord,
        runtime: cairn_types::RuntimeKind,
        advice: crate::IdentityAdvice,
        sandbox: &str,
    ) -> Result<()> {
        let path = self
            .snapshots_dir()
            .join(snap.id.as_str())
            .join("manifest.json");
        let manifest: serde_json::Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| EngineError::Internal(format!("cannot read {}", path.display())))?;
        let text = |k: &str| manifest[k].as_str().map(str::to_string);
        let host = self.host_identity(runtime, true).await;
        let recorded = RuntimeIdentity {
            runtime: text("runtime").unwrap_or_else(|| snap.runtime.to_string()),
            runtime_version: text("runtime_version"),
            criu_version: text("criu_version"),
            kernel_release: text("kernel_release").unwrap_or_default(),
            // Manifests from before the platform was recorded were taken on this architecture.
            platform: text("platform").unwrap_or_else(|| host.platform.clone()),
        };
        let mut differs = Vec::new();
        if runtime != snap.runtime {
            // Another runtime never resumes them, whatever else matches.
            differs.push("runtime");
        }
        if recorded.kernel_release != host.kernel_release {
            differs.push("kernel release");
        }
        // Each runtime names its platform its own way: compared under the same runtime only.
        if runtime == snap.runtime && recorded.platform != host.platform {
            differs.push("platform");
        }
        // runsc's checkpoint format belongs to its version; CRIU images restore with any
        // CRIU >= 4.1 (checked separately), and runc itself keeps no state in them.
        let same_version = self
            .runtime(runtime)
            .is_ok_and(|rt| rt.checkpoints_need_same_version());
        if same_version
            && snap.runtime == runtime
            && recorded.runtime_version.is_some()
            && recorded.runtime_version != host.runtime_version
        {
            differs.push("runtime version");
        }
        if differs.is_empty() {
            return Ok(());
        }
        Err(EngineError::IdentityMismatch(Box::new(
            crate::IdentityMismatch {
                snapshot: snap.id.to_string(),
                recorded,
                host,
                differs: differs.join(", "),
                advice: if runtime != snap.runtime {
                    format!(
                        "they resume only in a {} sandbox; or {}",
                        snap.runtime,
                        advice.says(snap.id.as_str(), sandbox)
                    )
                } else {
                    advice.says(snap.id.as_str(), sandbox)
                },
            },
        )))
    }

    /// What this host offers a snapshot of `runtime`; with `criu`, also the CRIU version
    /// (runc only: it writes and reads runc memory checkpoints).
    pub(crate) async fn host_identity(
        &self,
        runtime: cairn_types::RuntimeKind,
        criu: bool,
    ) -> RuntimeIdentity {
        let rt = self.runtime(runtime).ok();
        let criu_version = match &rt {
            Some(rt) if criu => rt
                .checkpoint_support()
                .await
                .ok()
                .flatten()
                .map(|v| v.to_string()),
            _ => None,
        };
        RuntimeIdentity {
            runtime: runtime.to_string(),
            runtime_version: self.runtime_version(runtime).await,
            criu_version,
            kernel_release: kernel_release(),
            platform: rt
                .map(|rt| rt.platform())
                .unwrap_or_else(|| std::env::consts::ARCH.to_string()),
        }
    }

    /// The runtime's version line, asked once per cairnd.
    pub(super) async fn runtime_version(
        &self,
        runtime: cairn_types::RuntimeKind,
    ) -> Option<String> {
        if let Some(v) = self
            .runtime_versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&runtime)
        {
            return Some(v.clone());
        }
        let v = self.runtime(runtime).ok()?.version().await.ok()?;
        self.runtime_versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(runtime, v.clone());
        Some(v)
    }
}

/// This host's kernel release (recorded in manifests).
pub fn kernel_release() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}
