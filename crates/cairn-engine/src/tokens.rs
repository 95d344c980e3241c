//! Bearer tokens as the API sees them: the lookup by hash that authenticates a request, and
//! the short-lived tokens the console's login mints. Making long-lived tokens, listing and
//! revoking them is the operator's (`cairnd token`), not the engine's.

use chrono::{DateTime, Utc};

use cairn_db::TokenRole;
use cairn_types::TokenId;

use crate::{Engine, Result};

/// A stored token (never the token itself): whom it acts for and whether it still works.
#[derive(Clone, Debug)]
pub struct Token {
    /// `tok-` and 8 hex digits.
    pub id: String,
    /// The account it acts for.
    pub account: String,
    /// Whether it is the operator's (`admin` role): host paths and publishing images.
    pub admin: bool,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Engine {
    /// The token whose SHA-256 (hex) is `hash`, if any: revoked and expired ones too (the
    /// caller decides what to answer).
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<Token>> {
        let hash = hash.to_string();
        let record = self.db(move |db| db.token_by_hash(&hash)).await?;
        Ok(record.map(|r| Token {
            id: r.id,
            account: r.account,
            admin: r.role == TokenRole::Admin,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }))
    }

    /// Stores a new token, whose SHA-256 (hex) is `hash`, for `account` (an operator's with
    /// `admin`) that stops working at `expires_at`: the console's login (`cairn ui`).
    pub async fn add_token(
        &self,
        account: &str,
        hash: &str,
        admin: bool,
        expires_at: DateTime<Utc>,
    ) -> Result<Token> {
        let (account, hash) = (account.to_string(), hash.to_string());
        let role = if admin {
            TokenRole::Admin
        } else {
            TokenRole::User
        };
        let id = TokenId::generate();
        let r = self
            .db(move |db| db.add_token(id.as_str(), &account, &hash, role, Some(expires_at)))
            .await?;
        Ok(Token {
            id: r.id,
            account: r.account,
            admin: r.role == TokenRole::Admin,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        })
    }
}
