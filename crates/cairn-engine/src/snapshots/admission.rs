//! Resume admission: whether a stateful snapshot's processes can resume in a sandbox of a
//! given runtime and network mode on this host. One check, shared by fork, restore in place
//! and the resume of a sandbox whose memory was released, so that each refuses the same way,
//! before anything is written.

use cairn_db::SnapshotRecord;
use cairn_net::NetworkMode;
use cairn_types::RuntimeKind;

use crate::{Engine, EngineError, IdentityAdvice, Result};

impl Engine {
    /// Refuses to resume the processes of stateful snapshot `snap` in a sandbox of `runtime`
    /// with network `network` (`sandbox`: the one they would resume into, for a restore):
    /// the runtime identity must match what its manifest records (409
    /// `runtime_identity_mismatch`), the network mode must be the one its processes were
    /// taken with (409 `conflict`), and the host must be able to restore process memory
    /// under its runtime (503, saying what to install). Each error says what works instead
    /// for the command that asked (`advice`).
    pub(crate) async fn admit_resume(
        &self,
        snap: &SnapshotRecord,
        runtime: RuntimeKind,
        network: NetworkMode,
        advice: IdentityAdvice,
        sandbox: &str,
    ) -> Result<()> {
        self.check_identity(snap, runtime, advice, sandbox).await?;
        // Its processes hold the network of the sandbox they were taken from.
        let from = self.snapshot_mode(&snap.id).await?;
        if from != network {
            let into = match advice {
                IdentityAdvice::Fork => format!("the fork would have network '{network}'"),
                _ => format!("sandbox {sandbox} has network '{network}'"),
            };
            let instead = match advice {
                IdentityAdvice::Fork => format!(
                    "leave out --network, or add --fresh --network {network} to boot its files without its processes"
                ),
                IdentityAdvice::Restore => format!(
                    "restore it into a '{from}' sandbox, put back its files only with 'cairn snapshot restore {} --fresh', or fork it with 'cairn up --from-snapshot {}' (add --fresh --network {network} to boot its files without its processes)",
                    snap.id, snap.id
                ),
                IdentityAdvice::Resume => advice.says(snap.id.as_str(), sandbox),
            };
            return Err(EngineError::Conflict(format!(
                "snapshot {} holds processes of a '{from}' sandbox, which resume only with network '{from}', and {into}: {instead}",
                snap.id
            )));
        }
        self.check_checkpoint_support(snap.runtime).await
    }
}
