//! JSON request bodies: the one rule every JSON endpoint follows.
//!
//! - No `Content-Type` is taken as JSON; `application/json` (with any parameters) and
//!   `application/<anything>+json` are JSON; any other type is refused with 415
//!   `unsupported_media_type`, before the body is read.
//! - A body that is not JSON, or has an unknown field, is 400 `invalid_argument`.
//! - A body over axum's limit (2 MiB) is 413 `too_large`.
//!
//! [`ApiJson`] needs a body; [`OptionalJson`] takes an empty one as every field's default.
//! Not for the image upload (`POST /v1/images` with an archive), which takes any type.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use cairn_types::ErrorCode;

use crate::ApiError;

/// A JSON request body (see the module's rule).
pub struct ApiJson<T>(pub T);

/// A JSON request body that may be left out: an empty body gives `T::default()`.
pub struct OptionalJson<T>(pub T);

/// Whether `headers` say the body is JSON: no content type, or a JSON one.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// The 415 for a body of another type.
fn unsupported(headers: &HeaderMap) -> ApiError {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(not text)");
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        format!(
            "this endpoint takes a JSON body, and the request says Content-Type: {given}: send it with Content-Type: application/json (curl: -H 'Content-Type: application/json'), or without a Content-Type"
        ),
    )
}

/// Reads the whole body of a JSON request: the content type checked first, then the body
/// within the size limit.
async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if !is_json(req.headers()) {
        return Err(unsupported(req.headers()));
    }
    Bytes::from_request(req, state)
        .await
        .map_err(|rej: BytesRejection| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::TooLarge,
                    "the request body is over 2 MiB, the most a JSON request may send: send less (large files go into a sandbox through exec or an image)",
                )
            } else {
                ApiError::invalid(format!(
                    "the request body could not be read: {}",
                    rej.body_text()
                ))
            }
        })
}

/// Decodes `bytes` as a `T`, or says what is wrong with it (naming the field at fault).
fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    axum::Json::<T>::from_bytes(bytes)
        .map(|axum::Json(v)| v)
        .map_err(|rej| ApiError::invalid(format!("invalid request body: {}", rej.body_text())))
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid(
                "the request body is empty: this endpoint needs a JSON object (see /v1/openapi.json)",
            ));
        }
        decode(&bytes).map(ApiJson)
    }
}

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        decode(&bytes).map(OptionalJson)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(ct: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(ct) = ct {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        h
    }

    #[test]
    fn a_missing_or_json_content_type_is_json_and_others_are_not() {
        assert!(is_json(&with(None)));
        assert!(is_json(&with(Some("application/json"))));
        assert!(is_json(&with(Some("Application/JSON; charset=utf-8"))));
        assert!(is_json(&with(Some("application/merge-patch+json"))));
        assert!(!is_json(&with(Some("text/plain"))));
        assert!(!is_json(&with(Some("application/x-www-form-urlencoded"))));
        assert!(!is_json(&with(Some("application/jsonx"))));
        assert!(!is_json(&with(Some("text/json+x"))));
    }
}
