//! JSON errors: `{ "error": { "code", "message" } }`, a 4xx for the caller's
//! mistakes, and for our own failures a generic 500 whose detail goes to the log.
//! Every code is an [`ErrorCode`]: the one vocabulary docs/api.md lists.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use cairn_engine::EngineError;
use cairn_types::api::{ErrorBody, ErrorDetail};
use cairn_types::ErrorCode;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status (the code's).
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Sentence for people.
    pub message: String,
    /// Structured facts, for some codes.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// A new error, answered with its code's status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(code.status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 400 `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, message)
    }

    /// 500 `internal`: `detail` goes to the log under a reference, which is all the answer says.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        let reference = format!("{:08x}", rand::random::<u32>());
        tracing::error!(%reference, error = %detail, "internal error");
        Self::new(
            ErrorCode::Internal,
            format!("internal error (reference {reference}): the operator finds the details in the cairnd log under this reference"),
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::PoolFull(m) => ApiError::new(ErrorCode::PoolFull, m),
            // Out of space at a layer that did not say so itself: still a full pool, not
            // our failure (the detail goes to the log).
            e if e.is_no_space() => {
                tracing::warn!(error = %e, "out of pool space");
                ApiError::new(
                    ErrorCode::PoolFull,
                    "the storage pool is full: free space by destroying sandboxes and deleting snapshots or images you no longer need, or ask the operator to grow the pool",
                )
            }
            EngineError::InvalidArgument(m) => ApiError::invalid(m),
            EngineError::NotFound(m) => ApiError::not_found(m),
            EngineError::Conflict(m) => ApiError::new(ErrorCode::Conflict, m),
            EngineError::Forbidden(m) => ApiError::new(ErrorCode::Forbidden, m),
            EngineError::TooLarge(m) => ApiError::new(ErrorCode::TooLarge, m),
            EngineError::Limit(m) => ApiError::new(ErrorCode::LimitExceeded, m),
            EngineError::Unavailable(m) => ApiError::new(ErrorCode::Unavailable, m),
            EngineError::Busy(m) => ApiError::new(ErrorCode::Busy, m),
            EngineError::CheckpointFailed(m) => ApiError::new(ErrorCode::CheckpointFailed, m),
            EngineError::Image(e) => ApiError::invalid(e.to_string()),
            EngineError::IdentityMismatch(m) => {
                let mut err = ApiError::new(ErrorCode::RuntimeIdentityMismatch, m.to_string());
                err.details = Some(serde_json::json!({
                    "snapshot": m.snapshot,
                    "recorded": m.recorded,
                    "host": m.host,
                    "differs": m.differs,
                }));
                err
            }
            // Our own failures: no variant is left to a wildcard, so that a new kind of
            // error is mapped here on purpose.
            e @ (EngineError::Db(_)
            | EngineError::Runtime(_)
            | EngineError::Storage(_)
            | EngineError::Failed { .. }
            | EngineError::Internal(_)) => ApiError::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_string(),
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
