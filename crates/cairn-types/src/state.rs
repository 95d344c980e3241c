//! Sandbox states, the transitions allowed between them, and runtime kinds.
//!
//! The engine and the database both call [`transition`], so there is one
//! place that says which moves are legal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a sandbox is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SandboxState {
    /// Its root filesystem and bundle are being made; the runtime has not started it yet.
    Creating,
    /// Its init process runs; `exec` works.
    Running,
    /// Its processes are frozen.
    Paused,
    /// No process runs; its files are kept. `start` runs it again.
    Stopped,
    /// Reserved for a sandbox that can only be destroyed; nothing sets it today (a sandbox
    /// whose processes die becomes `Stopped` with a reason).
    Failed,
    /// Gone: nothing is left of it.
    Destroyed,
}

impl SandboxState {
    /// All states, in life order.
    pub const ALL: [SandboxState; 6] = [
        SandboxState::Creating,
        SandboxState::Running,
        SandboxState::Paused,
        SandboxState::Stopped,
        SandboxState::Failed,
        SandboxState::Destroyed,
    ];

    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxState::Creating => "creating",
            SandboxState::Running => "running",
            SandboxState::Paused => "paused",
            SandboxState::Stopped => "stopped",
            SandboxState::Failed => "failed",
            SandboxState::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for SandboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SandboxState {
    type Err = StateError;
    fn from_str(s: &str) -> Result<Self, StateError> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StateError::Unknown(s.to_string()))
    }
}

/// A refused state change or an unknown state name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    /// The move is not one of the allowed transitions.
    #[error("a {from} sandbox cannot become {to}")]
    Illegal {
        /// Current state.
        from: SandboxState,
        /// Requested state.
        to: SandboxState,
    },
    /// A string that names no state.
    #[error("unknown sandbox state '{0}'")]
    Unknown(String),
}

/// Checks that a sandbox may move from `from` to `to`.
///
/// `creating → running ⇄ paused → stopped → destroyed`, `stopped → running`,
/// and any live state may fail or be destroyed.
pub fn transition(from: SandboxState, to: SandboxState) -> Result<SandboxState, StateError> {
    use SandboxState::*;
    let ok = matches!(
        (from, to),
        (Creating, Running)
            | (Creating, Stopped)
            | (Running, Paused)
            | (Paused, Running)
            | (Running, Stopped)
            | (Paused, Stopped)
            | (Stopped, Running)
            | (Creating | Running | Paused | Stopped, Failed)
            | (Creating | Running | Paused | Stopped | Failed, Destroyed)
    );
    if ok {
        Ok(to)
    } else {
        Err(StateError::Illegal { from, to })
    }
}

/// Why a sandbox is paused: its idle timeout paused it (the next exec wakes it), or its
/// user did (`cairn pause`: it stays paused until `cairn resume`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PauseReason {
    /// Paused by its idle timeout; any exec resumes it.
    Idle,
    /// Paused by a request (`cairn pause`); only `resume` continues it.
    User,
}

impl PauseReason {
    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::Idle => "idle",
            PauseReason::User => "user",
        }
    }
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PauseReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "idle" => Ok(PauseReason::Idle),
            "user" => Ok(PauseReason::User),
            other => Err(format!("unknown pause reason '{other}'")),
        }
    }
}

/// Where a snapshot is in its life: `creating → ready`, `failed` (with an
/// error), `deleted` (being removed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotState {
    /// Being captured; not usable yet.
    Creating,
    /// Being imported from an archive that is still arriving; not usable yet. A crash
    /// leaves nothing of it (recovery removes it).
    Uploading,
    /// Complete and durable: restore and fork work.
    Ready,
    /// Capture failed; the error is kept. Only delete works.
    Failed,
    /// Being deleted.
    Deleted,
}

impl SnapshotState {
    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotState::Creating => "creating",
            SnapshotState::Uploading => "uploading",
            SnapshotState::Ready => "ready",
            SnapshotState::Failed => "failed",
            SnapshotState::Deleted => "deleted",
        }
    }
}

impl fmt::Display for SnapshotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SnapshotState {
    type Err = StateError;
    fn from_str(s: &str) -> Result<Self, StateError> {
        [
            SnapshotState::Creating,
            SnapshotState::Uploading,
            SnapshotState::Ready,
            SnapshotState::Failed,
            SnapshotState::Deleted,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| StateError::Unknown(s.to_string()))
    }
}

/// Which OCI runtime drives a sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// gVisor's `runsc`: a user-space kernel between the sandbox and the host (the default).
    #[default]
    Gvisor,
    /// `runc`: the host kernel, fastest.
    Runc,
}

impl RuntimeKind {
    /// The name used in the API, CLI and database.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Gvisor => "gvisor",
            RuntimeKind::Runc => "runc",
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RuntimeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gvisor" | "runsc" => Ok(RuntimeKind::Gvisor),
            "runc" => Ok(RuntimeKind::Runc),
            other => Err(format!("unknown runtime '{other}': use 'gvisor' or 'runc'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SandboxState::*;

    #[test]
    fn lifecycle_moves_are_allowed() {
        for (a, b) in [
            (Creating, Running),
            (Running, Paused),
            (Paused, Running),
            (Running, Stopped),
            (Stopped, Running),
            (Stopped, Destroyed),
            (Running, Failed),
        ] {
            assert_eq!(transition(a, b), Ok(b));
        }
    }

    #[test]
    fn destroyed_is_final_and_failed_only_destroys() {
        for to in SandboxState::ALL {
            assert!(transition(Destroyed, to).is_err());
            if to != Destroyed {
                assert!(transition(Failed, to).is_err());
            }
        }
    }

    #[test]
    fn states_round_trip_through_strings() {
        for st in SandboxState::ALL {
            assert_eq!(st.as_str().parse::<SandboxState>().unwrap(), st);
        }
    }

    #[test]
    fn pause_reasons_round_trip_through_strings_and_json() {
        for r in [PauseReason::Idle, PauseReason::User] {
            assert_eq!(r.as_str().parse::<PauseReason>().unwrap(), r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert!("asleep".parse::<PauseReason>().is_err());
    }
}
