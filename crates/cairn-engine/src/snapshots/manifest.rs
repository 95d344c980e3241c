//! The manifest beside each snapshot, and the runtime identity a stateful snapshot
//! needs to resume.

use cairn_db::SnapshotRecord;
use cairn_storage::Manifest;
use cairn_types::api::RuntimeIdentity;

use crate::{Engine, EngineError, Result};

impl Engine {
    pub(super) async fn write_manifest(&self, snap: &SnapshotRecord) -> Result<()> {
        // Only a memory checkpoint written by CRIU depends on CRIU's version.
        let identity = self.host_identity(snap.runtime, snap.stateful).await;
        let manifest = Manifest {
            format: Manifest::FORMAT.into(),
            version: Manifest::VERSION,
            id: snap.id.to_string(),
            name: snap.name.clone(),
            sandbox: snap.sandbox_id.to_string(),
            parent: snap.parent_id.as_ref().map(|p| p.to_string()),
            image: snap.image_id.clone(),
            runtime: snap.runtime.as_str().to_string(),
            cpus: snap.resources.cpus,
            memory_bytes: snap.resources.memory_bytes,
            pids_limit: snap.resources.pids_limit,
            env: snap.process.env.clone(),
            workdir: snap.process.workdir.clone(),
            stateful: snap.stateful,
            kernel_release: identity.kernel_release,
            criu_version: identity.criu_version,
            runtime_version: identity.runtime_version,
            platform: Some(identity.platform),
            created_at: snap.created_at.to_rfc3339(),
        };
        let (storage, id) = (self.storage.clone(), snap.id.clone());
        tokio::task::spawn_blocking(move || storage.save_manifest(id.as_str(), &manifest))
            .await
            .map_err(|e| EngineError::failed("the manifest's writing task ended abnormally", e))?
            .map_err(|e| EngineError::failed("cannot write the manifest", e))
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
        let manifest = self
            .storage
            .load_manifest(snap.id.as_str())
            .map_err(|e| match e {
                // Its reason names no path: what the caller can act on (a newer Cairn's
                // snapshot wants an upgraded cairnd; a damaged one, a filesystem-only fork).
                cairn_storage::StorageError::BadManifest { reason, .. } => {
                    EngineError::Conflict(format!(
                        "the processes of snapshot {} cannot be resumed: its manifest cannot be used ({reason}); add --fresh to the fork or restore to boot its files without them",
                        snap.id
                    ))
                }
                e => EngineError::failed("cannot read the manifest", e),
            })?;
        let host = self.host_identity(runtime, true).await;
        let recorded = RuntimeIdentity {
            runtime: manifest.runtime,
            runtime_version: manifest.runtime_version,
            criu_version: manifest.criu_version,
            kernel_release: manifest.kernel_release,
            // Manifests from before the platform was recorded were taken on this architecture.
            platform: manifest.platform.unwrap_or_else(|| host.platform.clone()),
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
