//! The API's streamed lines: exec's output and the progress of long operations.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::ErrorDetail;

/// One line of a progress stream (`application/x-ndjson`, asked for with `Accept`): reports
/// as a long operation goes on, then exactly one `result` or `error`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ProgressEvent {
    /// How far one phase has come (intermediate reports of a phase may be skipped).
    #[schema(title = "ProgressReport")]
    Progress {
        /// The phase: `forks`, `import`, `memory`, `layer sha256:…`.
        phase: String,
        /// How much of the phase is done.
        done: u64,
        /// How much there is in all, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total: Option<u64>,
        /// What `done` and `total` count.
        unit: crate::ProgressUnit,
    },
    /// The operation succeeded: the status and JSON body of the ordinary answer.
    #[schema(title = "ProgressResult")]
    Result {
        /// The ordinary answer's HTTP status (200 or 201).
        status: u16,
        /// The ordinary answer's body.
        body: serde_json::Value,
    },
    /// The operation failed: the status and error of the ordinary answer.
    #[schema(title = "ProgressError")]
    Error {
        /// The ordinary answer's HTTP status.
        status: u16,
        /// The error.
        error: ErrorDetail,
    },
}

impl ProgressEvent {
    /// The `progress` line of a report.
    pub fn progress(p: crate::Progress) -> Self {
        ProgressEvent::Progress {
            phase: p.phase,
            done: p.done,
            total: p.total,
            unit: p.unit,
        }
    }
}

/// One line of the exec stream (`application/x-ndjson`): output chunks in
/// the order the process wrote them, then exactly one `exit` (or `error`); a detached
/// exec's stream is one `started` (or an `exit` when it could not start).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ExecEvent {
    /// Bytes the command wrote to stdout, base64-encoded.
    #[schema(title = "ExecStdout")]
    Stdout {
        /// Base64 of the bytes.
        data: String,
    },
    /// Bytes the command wrote to stderr, base64-encoded.
    #[schema(title = "ExecStderr")]
    Stderr {
        /// Base64 of the bytes.
        data: String,
    },
    /// The command ended with this code (128+N when killed by signal N; 124 on timeout; 126
    /// or 127 when it could not start; 137 when the sandbox died or was ended under it).
    #[schema(title = "ExecExit")]
    Exit {
        /// Exit code.
        code: i32,
        /// Why, when Cairn knows more than the code: the command could not start (a missing
        /// program or working directory), or its sandbox died (it is then `stopped` with the
        /// same reason), was stopped, restored, paused with its memory released or destroyed
        /// under it. Says what to do.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The command could not be run or followed.
    #[schema(title = "ExecError")]
    Error {
        /// What went wrong.
        message: String,
        /// The error code, when the request was refused before anything ran (the same
        /// codes as the API's JSON errors).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<String>,
    },
    /// A detached command started (the only event of a detached exec that started).
    #[schema(title = "ExecStarted")]
    Started {
        /// Its process id inside the sandbox.
        pid: u32,
    },
}
