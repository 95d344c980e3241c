//! Secrets of sandboxes and snapshots, as the engine sealed them: an opaque blob (never a
//! value in plain text) and the names, which `inspect` shows. A snapshot gets a copy of its
//! sandbox's when it is made (`insert_snapshot`); a row goes with its owner's.

use rusqlite::{params, OptionalExtension};

use crate::{Db, DbError};

impl Db {
    /// Stores `owner`'s (a sandbox's or snapshot's id) sealed secrets and their names;
    /// `None` removes them.
    pub fn set_secrets(
        &self,
        owner: &str,
        sealed: Option<(&[String], &[u8])>,
    ) -> Result<(), DbError> {
        let conn = self.conn();
        match sealed {
            Some((names, blob)) => {
                let names =
                    serde_json::to_string(names).map_err(|e| DbError::Corrupt(e.to_string()))?;
                conn.execute(
                    "INSERT OR REPLACE INTO secrets(owner, names, sealed) VALUES (?1, ?2, ?3)",
                    params![owner, names, blob],
                )?;
            }
            None => {
                conn.execute("DELETE FROM secrets WHERE owner = ?1", [owner])?;
            }
        }
        Ok(())
    }

    /// `owner`'s sealed secrets, if it has any.
    pub fn sealed_secrets(&self, owner: &str) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT sealed FROM secrets WHERE owner = ?1",
                [owner],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The names of `owner`'s secrets (none when it has none).
    pub fn secret_names(&self, owner: &str) -> Result<Vec<String>, DbError> {
        let names: Option<String> = self
            .conn()
            .query_row("SELECT names FROM secrets WHERE owner = ?1", [owner], |r| {
                r.get(0)
            })
            .optional()?;
        match names {
            Some(n) => serde_json::from_str(&n).map_err(|e| DbError::Corrupt(e.to_string())),
            None => Ok(Vec::new()),
        }
    }
}
