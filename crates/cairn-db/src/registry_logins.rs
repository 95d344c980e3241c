//! An account's registry credentials (`cairn image login`), as the engine sealed them: an
//! opaque blob per (account, registry host). Nothing here ever holds a password in plain
//! text.

use rusqlite::{params, OptionalExtension};

use crate::{Db, DbError};

impl Db {
    /// Stores (or replaces) `account`'s sealed credentials for registry `host`.
    pub fn set_registry_login(
        &self,
        account: &str,
        host: &str,
        sealed: &[u8],
    ) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO registry_logins(account, host, sealed, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![account, host, sealed, chrono::Utc::now()],
        )?;
        Ok(())
    }

    /// `account`'s sealed credentials for `host`, if it logged in.
    pub fn registry_login(&self, account: &str, host: &str) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT sealed FROM registry_logins WHERE account = ?1 AND host = ?2",
                params![account, host],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Forgets `account`'s credentials for `host`; whether there were any.
    pub fn remove_registry_login(&self, account: &str, host: &str) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "DELETE FROM registry_logins WHERE account = ?1 AND host = ?2",
            params![account, host],
        )?;
        Ok(n > 0)
    }
}
