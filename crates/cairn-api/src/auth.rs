//! Who is calling. Over TCP every request needs `Authorization: Bearer ck_…`;
//! the token's SHA-256 is looked up in the database and names the account.
//! On the unix socket (root-only by file permissions) a request without a
//! token acts as the `local` account; with a token, as the token's account.

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

impl FromRequestParts<AppState> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION);
        let Some(header) = header else {
            return match state.auth {
                AuthMode::LocalSocket => Ok(Account(LOCAL_ACCOUNT.to_string())),
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
        let engine = state.engine.clone();
        let hash = hash_token(token);
        match engine.db().account_for_token(&hash)? {
            Some(account) => Ok(Account(account)),
            None => Err(ApiError::unauthenticated(
                "unknown token: create one with 'cairnd token create --account NAME'",
            )),
        }
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
