//! How the CLI reports a failure on stderr: `cairn: MESSAGE` for people, and under `--json`
//! one JSON object, `{"error": {"code", "message"[, "details"]}}`, with the API's code when
//! cairnd refused, or the CLI's own (see docs/api.md, "The CLI's errors"). The exit code
//! stays non-zero either way.

use serde_json::json;

use crate::client::{ApiFailure, CliError, CONNECTION_FAILED, FAILED, INVALID_ARGUMENT};

// Exec failures (codes of the one vocabulary, see docs/api.md).
/// The command could not start (exit 126 or 127).
pub const CANNOT_START: &str = "cannot_start";
/// The command was ended by what happened to its sandbox (exit 137).
pub const INTERRUPTED: &str = "interrupted";
/// cairnd lost track of the command.
pub const EXEC_FAILED: &str = "exec_failed";

/// A failure's code, message and details.
pub struct Described {
    /// Machine-readable code.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
    /// Structured facts, for some codes.
    pub details: Option<serde_json::Value>,
}

/// What `e` is, in the one vocabulary.
pub fn describe(e: &anyhow::Error) -> Described {
    if let Some(api) = e.downcast_ref::<ApiFailure>() {
        return Described {
            code: api.code.clone(),
            message: api.message.clone(),
            details: api.details.clone(),
        };
    }
    if let Some(cli) = e.downcast_ref::<CliError>() {
        return Described {
            code: cli.code.clone(),
            message: cli.message.clone(),
            details: cli.details.clone(),
        };
    }
    // A connection that broke under a request or a stream.
    let broken = e.chain().any(|c| {
        c.downcast_ref::<hyper::Error>().is_some()
            || c.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::UnexpectedEof
                )
            })
    });
    Described {
        code: if broken { CONNECTION_FAILED } else { FAILED }.to_string(),
        message: format!("{e:#}"),
        details: None,
    }
}

/// Prints a failure on stderr: one line, or one JSON object under `--json`.
pub fn report(d: &Described, json: bool) {
    if json {
        let mut error = json!({ "code": d.code, "message": d.message });
        if let Some(details) = &d.details {
            error["details"] = details.clone();
        }
        eprintln!("{}", json!({ "error": error }));
    } else {
        eprintln!("cairn: {}", d.message);
    }
}

/// Whether the command line asks for JSON (read before it is parsed, for usage errors).
pub fn wants_json() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// A usage error from the argument parser under `--json`: the same text as one JSON object.
pub fn usage(e: &clap::Error) -> Described {
    let text = e.render().to_string();
    let message = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join(" ");
    Described {
        code: INVALID_ARGUMENT.to_string(),
        message,
        details: None,
    }
}

/// Says why an exec ended as it did (`message` of its `exit`): a line for people, or under
/// `--json` one JSON error, `cannot_start` (126, 127, or any code of a `detached` command that
/// ended at once) or `interrupted` (the sandbox died or was stopped, restored, paused with its
/// memory released or destroyed under it).
pub fn report_exit(code: i32, message: String, json: bool, detached: bool) {
    let code = if detached || code == 126 || code == 127 {
        CANNOT_START
    } else {
        INTERRUPTED
    };
    report(
        &Described {
            code: code.to_string(),
            message,
            details: None,
        },
        json,
    );
}

/// The error an exec stream ended with: a refusal carries the API's code.
pub fn stream_error(message: String, code: Option<String>) -> anyhow::Error {
    match code {
        Some(code) => crate::client::ApiFailure {
            status: hyper::StatusCode::OK,
            code,
            message,
            details: None,
        }
        .into(),
        None => CliError::new(EXEC_FAILED, message).into(),
    }
}
