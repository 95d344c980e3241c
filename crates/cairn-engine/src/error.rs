//! The engine's error type: each variant is something a caller can act on,
//! and maps to one HTTP status in the API.

use cairn_db::DbError;
use cairn_runtime::RuntimeError;
use cairn_storage::StorageError;

/// What went wrong in an engine operation.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request was malformed (bad name, size, path…): a 400.
    #[error("{0}")]
    InvalidArgument(String),
    /// The sandbox or image does not exist for this account: a 404.
    #[error("{0}")]
    NotFound(String),
    /// It exists but clashes or is in the wrong state: a 409.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (a tenant asking for what only the operator may): a 403.
    #[error("{0}")]
    Forbidden(String),
    /// The request's body is larger than the configured cap: a 413 naming the cap.
    #[error("{0}")]
    TooLarge(String),
    /// A configured limit would be exceeded: a 4xx naming the limit, its value and the use.
    #[error("{0}")]
    Limit(String),
    /// A host prerequisite is missing or broken (runtime binary, btrfs): a 503 that says what to install.
    #[error("{0}")]
    Unavailable(String),
    /// The sandbox is in a state the runtime cannot act on right now (e.g. mid-checkpoint):
    /// a 409 `busy`; a retry later may work.
    #[error("{0}")]
    Busy(String),
    /// The storage pool has no room for it (below its reserve, or out of space on the way,
    /// rolled back): a 507 saying what is free and what to do.
    #[error("{0}")]
    PoolFull(String),
    /// The runtime could not checkpoint the sandbox's processes because of something they
    /// hold (CRIU cannot save it): a 409 saying what to do. The message names no host path
    /// nor command line; the runtime's own words are in the log.
    #[error("{0}")]
    CheckpointFailed(String),
    /// Metadata store failure.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Runtime failure (a busy container or a missing runtime binary are [`EngineError::Busy`]
    /// and [`EngineError::Unavailable`] instead).
    #[error(transparent)]
    Runtime(RuntimeError),
    /// Storage failure.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Image import failure (bad archive, unsafe paths…).
    #[error(transparent)]
    Image(#[from] cairn_images::ImageError),
    /// A stateful snapshot's processes cannot resume on this host (another kernel,
    /// runtime version or platform): a 409 naming both identities.
    #[error(transparent)]
    IdentityMismatch(Box<IdentityMismatch>),
    /// One of Cairn's own steps failed on an error of the host (a file, a task, an
    /// encoding): `what` says which step; the cause is the error's source, for the log.
    #[error("{what}: {source}")]
    Failed {
        /// The step, e.g. "cannot write the manifest".
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Anything else: a broken invariant with no underlying error.
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    /// Turns database conflicts and not-found into the engine's own kinds.
    pub(crate) fn from_db(e: DbError) -> Self {
        match e {
            DbError::Conflict(m) => EngineError::Conflict(m),
            DbError::NotFound(m) => EngineError::NotFound(m),
            DbError::State(s) => EngineError::Conflict(s.to_string()),
            other => EngineError::Db(other),
        }
    }
}

impl EngineError {
    /// The error of a failed memory checkpoint of `sandbox` for `snapshot`: a CRIU dump that
    /// failed on what the sandbox's processes hold is theirs to fix (409 `checkpoint_failed`,
    /// its cause in the user's words, CRIU's own lines in the log); anything else is ours.
    pub(crate) fn from_checkpoint(sandbox: &str, snapshot: &str, e: RuntimeError) -> Self {
        match e {
            RuntimeError::Criu {
                action: "checkpoint",
                detail,
            } => {
                tracing::warn!(sandbox, snapshot, criu = %detail, "CRIU could not checkpoint the sandbox's processes");
                let cause = cairn_runtime::criu::known_cause(&detail)
                    .unwrap_or("CRIU cannot save something they hold (such as a device, a file outside the sandbox, or an unusual kind of socket)");
                EngineError::CheckpointFailed(format!(
                    "the processes of sandbox {sandbox} could not be checkpointed: {cause}. End the processes that hold it and try again, or do without their memory (a snapshot without --stateful, a pause without --release-memory); the operator finds CRIU's own errors in the cairnd log under snapshot {snapshot}"
                ))
            }
            other => other.into(),
        }
    }

    /// A file operation of the engine's own failed while `what`.
    pub(crate) fn from_io(what: &str, e: std::io::Error) -> Self {
        Self::failed(what, e)
    }

    /// Step `what` failed because of `source`.
    pub(crate) fn failed(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        EngineError::Failed {
            what: what.into(),
            source: source.into(),
        }
    }
}

impl From<RuntimeError> for EngineError {
    /// What a caller can act on becomes its own variant: a busy container, a missing
    /// runtime binary (in their own words); anything else stays a runtime failure.
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::Busy(m) => EngineError::Busy(m),
            RuntimeError::Cmd(c @ cairn_cmd::CmdError::NotFound { .. }) => {
                EngineError::Unavailable(c.to_string())
            }
            other => EngineError::Runtime(other),
        }
    }
}

impl From<cairn_types::NameError> for EngineError {
    fn from(e: cairn_types::NameError) -> Self {
        EngineError::InvalidArgument(e.to_string())
    }
}

impl From<cairn_types::SizeError> for EngineError {
    fn from(e: cairn_types::SizeError) -> Self {
        EngineError::InvalidArgument(e.to_string())
    }
}

/// Why a stateful snapshot cannot resume here: both identities, and what differs.
#[derive(Debug, thiserror::Error)]
#[error("runtime identity mismatch: snapshot {snapshot} was taken with {recorded}; this host has {host}: its processes cannot resume here ({differs} differ): {advice}")]
pub struct IdentityMismatch {
    /// The snapshot.
    pub snapshot: String,
    /// What its manifest records.
    pub recorded: cairn_types::api::RuntimeIdentity,
    /// What this host has.
    pub host: cairn_types::api::RuntimeIdentity,
    /// Which fields differ, comma-separated.
    pub differs: String,
    /// What works instead, for the command that asked (see [`IdentityAdvice`]).
    pub advice: String,
}

/// Which command asked to resume a stateful snapshot's processes: what works instead
/// differs between them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityAdvice {
    /// A fork (`cairn up --from-snapshot`, `cairn fork`): `--fresh` boots on its files.
    Fork,
    /// A restore in place (`cairn snapshot restore`): `--fresh` puts back its files only.
    Restore,
    /// The resume of a sandbox paused with its memory released: stop and start it.
    Resume,
}

impl IdentityAdvice {
    /// What the caller can do, for snapshot `snap` (and sandbox `sandbox`, for a resume).
    pub fn says(self, snap: &str, sandbox: &str) -> String {
        match self {
            IdentityAdvice::Fork => format!(
                "fork it with --fresh to boot on its files without its processes ('cairn up --from-snapshot {snap} --fresh', 'cairn fork {snap} --fresh')"
            ),
            IdentityAdvice::Restore => format!(
                "restore it with --fresh to put back its files without its processes ('cairn snapshot restore {snap} --to {sandbox} --fresh')"
            ),
            IdentityAdvice::Resume => format!(
                "its processes are lost on this host: stop and start sandbox {sandbox} to boot it on its files ('cairn stop {sandbox} && cairn start {sandbox}'), or resume it on a host with the recorded identity"
            ),
        }
    }
}

/// Short for `Result<T, EngineError>`.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_container_and_a_missing_runtime_binary_become_errors_a_caller_can_act_on() {
        let busy = EngineError::from(RuntimeError::Busy("sandbox is being checkpointed".into()));
        assert!(matches!(&busy, EngineError::Busy(m) if m == "sandbox is being checkpointed"));
        let missing = cairn_cmd::CmdError::NotFound {
            program: "runsc".into(),
            hint: "install gVisor".into(),
        };
        let words = missing.to_string();
        let e = EngineError::from(RuntimeError::Cmd(missing));
        assert!(matches!(&e, EngineError::Unavailable(m) if *m == words));
        let other = EngineError::from(RuntimeError::Spec("bad".into()));
        assert!(matches!(other, EngineError::Runtime(RuntimeError::Spec(_))));
    }
}
