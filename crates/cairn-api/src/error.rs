//! JSON errors: `{ "error": { "code", "message" } }`, a 4xx for the caller's
//! mistakes, and for our own failures a generic 500 whose detail goes to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use cairn_engine::EngineError;
use cairn_types::api::{ErrorBody, ErrorDetail};

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub code: &'static str,
    /// Sentence for people.
    pub message: String,
    /// Structured facts, for some codes.
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// 400 `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401 `unauthenticated`.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::PoolFull(m) => {
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "pool_full", m)
            }
            // Out of space at a layer that did not say so itself: still a full pool, not
            // our failure (the detail goes to the log).
            e if e.is_no_space() => {
                tracing::warn!(error = %e, "out of pool space");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "pool_full",
                    "the storage pool is full: free space by destroying sandboxes and deleting snapshots or images you no longer need, or ask the operator to grow the pool",
                )
            }
            EngineError::InvalidArgument(m) => ApiError::invalid(m),
            EngineError::NotFound(m) => ApiError::not_found(m),
            EngineError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            EngineError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            EngineError::TooLarge(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m)
            }
            EngineError::Limit(m) => ApiError::new(StatusCode::CONFLICT, "limit_exceeded", m),
            EngineError::Unavailable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
            }
            EngineError::Image(e) => ApiError::invalid(e.to_string()),
            EngineError::IdentityMismatch(m) => {
                let mut err = ApiError::new(
                    StatusCode::CONFLICT,
                    "runtime_identity_mismatch",
                    m.to_string(),
                );
                err.details = Some(serde_json::json!({
                    "snapshot": m.snapshot,
                    "recorded": m.recorded,
                    "host": m.host,
                    "differs": m.differs,
                }));
                err
            }
            EngineError::Runtime(e @ cairn_runtime::RuntimeError::Busy(_)) => {
                ApiError::new(StatusCode::CONFLICT, "busy", e.to_string())
            }
            EngineError::Runtime(cairn_runtime::RuntimeError::Cmd(
                c @ cairn_cmd::CmdError::NotFound { .. },
            )) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                c.to_string(),
            ),
            other => {
                let reference = format!("{:08x}", rand::random::<u32>());
                tracing::error!(%reference, error = %other, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("internal error (reference {reference}): the operator finds the details in the cairnd log under this reference"),
                )
            }
        }
    }
}

impl From<cairn_db::DbError> for ApiError {
    fn from(e: cairn_db::DbError) -> Self {
        ApiError::from(EngineError::Db(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
