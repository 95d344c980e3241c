//! Who is calling. Over TCP every request needs `Authorization: Bearer ck_…`;
//! the token's SHA-256 is looked up in the database and names the account.
//! On the unix socket (root-only by file permissions) a request without a
//! token acts as the operator, in the `local` account; with a token, as the
//! token. A revoked or expired token gets a 401 at once: every request looks
//! its token up.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// The account used on the unix socket when no token is given.
pub const LOCAL_ACCOUNT: &str = "local";

/// How a listener authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMode {
    /// Unix socket: a token is optional.
    LocalSocket,
    /// TCP: a token is required.
    Bearer,
}

/// The account a request acts for.
#[derive(Clone, Debug)]
pub struct Account(pub String);

/// Who is calling: the account, and whether they are the operator (the unix socket without
/// a token, or an `admin` token), who alone may import host paths and publish images.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The account the request acts for.
    pub account: String,
    /// Whether the caller is the operator.
    pub admin: bool,
}

/// A new token (`ck_` and 40 hex digits) and the hash to store.
pub fn new_token() -> (String, String) {
    let bytes: [u8; 20] = rand::random();
    let token = format!("ck_{}", hex::encode(bytes));
    let hash = hash_token(&token);
    (token, hash)
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION);
        let Some(header) = header else {
            return match state.auth {
                AuthMode::LocalSocket => Ok(Caller {
                    account: LOCAL_ACCOUNT.to_string(),
                    admin: true,
                }),
                AuthMode::Bearer => Err(ApiError::unauthenticated(
                    "missing 'Authorization: Bearer <token>' header: create a token with 'cairnd token create --account NAME' and pass it with --token or CAIRN_TOKEN",
                )),
            };
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthenticated(
                    "malformed Authorization header: use 'Authorization: Bearer <token>'",
                )
            })?;
        caller_for_token(state, token).await
    }
}

/// Who holds `token`: its account, or why it is refused (unknown, revoked, expired).
pub(crate) async fn caller_for_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let record = state.engine.token_by_hash(&hash_token(token)).await?;
    let Some(record) = record else {
        return Err(ApiError::unauthenticated(
            "unknown token: create one with 'cairnd token create --account NAME'",
        ));
    };
    if let Some(when) = record.revoked_at {
        return Err(ApiError::unauthenticated(format!(
            "token {} was revoked at {}: ask the operator for a new one ('cairnd token create')",
            record.id,
            when.format("%Y-%m-%d %H:%M:%S UTC")
        )));
    }
    if let Some(when) = record.expires_at.filter(|e| *e <= chrono::Utc::now()) {
        return Err(ApiError::unauthenticated(format!(
                "token {} expired at {}: ask the operator for a new one ('cairnd token create --expires …')",
                record.id,
                when.format("%Y-%m-%d %H:%M:%S UTC")
            )));
    }
    Ok(Caller {
        account: record.account,
        admin: record.admin,
    })
}

impl FromRequestParts<AppState> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Account(
            Caller::from_request_parts(parts, state).await?.account,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_and_hash_stably() {
        let (token, hash) = new_token();
        assert!(token.starts_with("ck_"));
        assert_eq!(token.len(), 43);
        assert_eq!(hash, hash_token(&token));
        assert_ne!(hash, hash_token("ck_other"));
    }
}
