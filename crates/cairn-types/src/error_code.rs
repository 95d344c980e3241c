//! The API's error vocabulary: every `error.code` cairnd can answer, with its HTTP status.
//! docs/api.md lists the same codes (a test holds them together); the CLI prints them
//! under `--json`.

use std::fmt;

/// A machine-readable error code of the API (`{ "error": { "code", "message" } }`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: the request is malformed (bad JSON, unknown field, bad name, size, env, workdir…).
    InvalidArgument,
    /// 401: no, unknown, revoked or expired token.
    Unauthenticated,
    /// 403: the caller may not do this (a tenant asking for what only the operator may).
    Forbidden,
    /// 404: no such object for this account, or no such path.
    NotFound,
    /// 405: a known path with another method.
    MethodNotAllowed,
    /// 408: a request body stopped arriving.
    RequestTimeout,
    /// 409: it clashes with what exists, or is in the wrong state.
    Conflict,
    /// 409: a configured limit would be exceeded.
    LimitExceeded,
    /// 409: a stateful snapshot's processes cannot resume here (another runtime, kernel,
    /// platform or runsc).
    RuntimeIdentityMismatch,
    /// 409: a runc sandbox cannot be checkpointed at this moment: retry.
    Busy,
    /// 409: the runtime could not checkpoint the sandbox's processes (something they hold
    /// cannot be saved): snapshot without process memory, or end what holds it.
    CheckpointFailed,
    /// 413: a body over a configured cap.
    TooLarge,
    /// 415: a JSON endpoint sent a body with another content type.
    UnsupportedMediaType,
    /// 500: our failure; the message only carries a reference into the daemon log.
    Internal,
    /// 503: a host prerequisite is missing (a runtime binary, CRIU).
    Unavailable,
    /// 503: a connection over a cap.
    TooManyConnections,
    /// 507: the storage pool has no room for it.
    PoolFull,
}

impl ErrorCode {
    /// Every code, in the order docs/api.md lists them.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::InvalidArgument,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::Conflict,
        ErrorCode::LimitExceeded,
        ErrorCode::RuntimeIdentityMismatch,
        ErrorCode::Busy,
        ErrorCode::CheckpointFailed,
        ErrorCode::TooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
        ErrorCode::TooManyConnections,
        ErrorCode::PoolFull,
    ];

    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Conflict => "conflict",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::RuntimeIdentityMismatch => "runtime_identity_mismatch",
            ErrorCode::Busy => "busy",
            ErrorCode::CheckpointFailed => "checkpoint_failed",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::PoolFull => "pool_full",
        }
    }

    /// The HTTP status the code is answered with.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidArgument => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::Conflict
            | ErrorCode::LimitExceeded
            | ErrorCode::RuntimeIdentityMismatch
            | ErrorCode::Busy
            | ErrorCode::CheckpointFailed => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable | ErrorCode::TooManyConnections => 503,
            ErrorCode::PoolFull => 507,
        }
    }

    /// The code named `s` on the wire, if it is one of ours.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_and_has_an_error_status() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert!((400..600).contains(&c.status()), "{c}");
        }
        assert_eq!(ErrorCode::parse("nonsense"), None);
    }
}
