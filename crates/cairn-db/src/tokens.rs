//! API tokens. Only a token's SHA-256 is stored; each has an id (`tok-…`) by which the
//! operator lists and revokes it, a role, and optionally an expiry.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use crate::{now, Db, DbError};

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRole {
    /// A tenant: only its account's objects.
    User,
    /// The operator: also host paths and publishing images (what the unix socket allows).
    Admin,
}

impl TokenRole {
    /// `user` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenRole::User => "user",
            TokenRole::Admin => "admin",
        }
    }
}

/// A token row (never the token itself).
#[derive(Clone, Debug)]
pub struct TokenRecord {
    /// `tok-` and 8 hex digits.
    pub id: String,
    /// The account it acts for.
    pub account: String,
    /// Its role.
    pub role: TokenRole,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenRecord {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        let role: String = r.get("role")?;
        Ok(TokenRecord {
            id: r.get("id")?,
            account: r.get("account")?,
            role: if role == "admin" {
                TokenRole::Admin
            } else {
                TokenRole::User
            },
            created_at: r.get("created_at")?,
            expires_at: r.get("expires_at")?,
            revoked_at: r.get("revoked_at")?,
        })
    }
}

impl Db {
    /// Stores the hash of a new token `id` for `account` (creating the account).
    pub fn add_token(
        &self,
        id: &str,
        account: &str,
        token_hash: &str,
        role: TokenRole,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<TokenRecord, DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO accounts(name, created_at) VALUES (?1, ?2)",
            params![account, now()],
        )?;
        tx.execute(
            "INSERT INTO tokens(id, hash, account, role, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, token_hash, account, role.as_str(), now(), expires_at],
        )?;
        let record = tx.query_row("SELECT * FROM tokens WHERE id = ?1", [id], |r| {
            TokenRecord::from_row(r)
        })?;
        tx.commit()?;
        Ok(record)
    }

    /// The token with this hash, if any (revoked and expired ones too: the caller decides).
    pub fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT * FROM tokens WHERE hash = ?1",
                [token_hash],
                TokenRecord::from_row,
            )
            .optional()?)
    }

    /// Every token, or an account's, oldest first.
    pub fn list_tokens(&self, account: Option<&str>) -> Result<Vec<TokenRecord>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT * FROM tokens WHERE ?1 IS NULL OR account = ?1 ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([account], TokenRecord::from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a token by id (at once: every request looks its token up). Revoking a revoked
    /// token keeps its first revocation time.
    pub fn revoke_token(&self, id: &str) -> Result<TokenRecord, DbError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
            params![id, now()],
        )?;
        conn.query_row(
            "SELECT * FROM tokens WHERE id = ?1",
            [id],
            TokenRecord::from_row,
        )
        .optional()?
        .ok_or_else(|| {
            DbError::NotFound(format!("no token {id}: list them with 'cairnd token ls'"))
        })
    }
}
