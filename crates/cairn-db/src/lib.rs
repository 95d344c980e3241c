//! Cairn's metadata store: SQLite in WAL mode behind a small repository API,
//! with versioned migrations (`PRAGMA user_version`).
//!
//! This crate stores rows; it decides nothing about containers or files.
//! State changes are checked with [`cairn_types::transition`].

mod extras;
mod images;
mod int;
mod migrations;
mod network;
mod records;
mod registry_logins;
mod restores;
mod secrets;
mod snapshots;
mod store_archives;
mod templates;
mod tokens;

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use cairn_types::{transition, PauseReason, SandboxId, SandboxState, StateError};

use crate::int::to_sql;

pub use images::ImageUser;
pub use network::PublishedPortRecord;
pub use records::{ImageRecord, NewSandbox, SandboxRecord};
pub use restores::Restoring;
pub use snapshots::SnapshotRecord;
pub use templates::TemplateRecord;
pub use tokens::{TokenRecord, TokenRole};

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite itself failed (disk, corruption, lock).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A row's name clashes with an existing one.
    #[error("{0}")]
    Conflict(String),
    /// A row that should be there is not.
    #[error("{0}")]
    NotFound(String),
    /// A state change that is not allowed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A stored value could not be read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// A database call was cut short before it ran (the daemon is shutting down).
    #[error("database call interrupted: {0}")]
    Interrupted(String),
    /// The database was written by a newer Cairn.
    #[error("the database schema version {found} is newer than this cairnd understands ({known}); upgrade cairnd")]
    TooNew {
        /// Version on disk.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
}

/// The metadata database. Cheap to share behind an `Arc`.
pub struct Db {
    conn: Mutex<Connection>,
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

impl Db {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::migrate(&conn)?;
        Ok(Db {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (every change is a
        // transaction), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- sandboxes ----

    /// Inserts a new sandbox in state `creating`; a name clash within the account is a conflict.
    pub fn insert_sandbox(&self, s: &NewSandbox) -> Result<SandboxRecord, DbError> {
        let conn = self.conn();
        if let Some(name) = &s.name {
            let taken: Option<String> = conn
                .query_row(
                    "SELECT id FROM sandboxes WHERE account = ?1 AND name = ?2",
                    params![s.account, name],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = taken {
                return Err(DbError::Conflict(format!(
                    "a sandbox named '{name}' already exists ({id}); choose another name or destroy it first"
                )));
            }
        }
        let env =
            serde_json::to_string(&s.process.env).map_err(|e| DbError::Corrupt(e.to_string()))?;
        conn.execute(
            "INSERT INTO sandboxes(id, account, name, image_id, runtime, state, state_reason, cpus, memory_bytes, pids_limit, env_json, workdir, created_at, parent_snapshot, idle_timeout_secs, network, disk_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, 'creating', NULL, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                s.id.as_str(), s.account, s.name, s.image_id, s.runtime.as_str(), s.resources.cpus,
                to_sql(s.resources.memory_bytes), s.resources.pids_limit, env, s.process.workdir, now(),
                s.origin.as_ref().map(|o| o.as_str()), s.idle_timeout_secs.map(to_sql),
                s.network.as_str(), s.disk_bytes.map(to_sql)
            ],
        )?;
        drop(conn);
        self.sandbox(&s.id)?
            .ok_or_else(|| DbError::NotFound(format!("sandbox {} vanished", s.id)))
    }

    /// A sandbox by id, whatever its account.
    pub fn sandbox(&self, id: &SandboxId) -> Result<Option<SandboxRecord>, DbError> {
        Ok(self
            .query_sandboxes("SELECT * FROM sandboxes WHERE id = ?1", [id.as_str()])?
            .pop())
    }

    /// A sandbox of `account` by id or name.
    pub fn find_sandbox(
        &self,
        account: &str,
        id_or_name: &str,
    ) -> Result<Option<SandboxRecord>, DbError> {
        // An id-shaped string is an id, never a name (names of that shape are refused).
        let sql = if cairn_types::looks_like_id(id_or_name) {
            "SELECT * FROM sandboxes WHERE account = ?1 AND id = ?2"
        } else {
            "SELECT * FROM sandboxes WHERE account = ?1 AND name = ?2"
        };
        Ok(self
            .query_sandboxes(sql, params![account, id_or_name])?
            .pop())
    }

    /// The sandboxes of an account, oldest first.
    pub fn list_sandboxes(&self, account: &str) -> Result<Vec<SandboxRecord>, DbError> {
        self.query_sandboxes(
            "SELECT * FROM sandboxes WHERE account = ?1 ORDER BY created_at, id",
            [account],
        )
    }

    /// Every sandbox of every account (start-up recovery).
    pub fn all_sandboxes(&self) -> Result<Vec<SandboxRecord>, DbError> {
        self.query_sandboxes("SELECT * FROM sandboxes ORDER BY created_at, id", [])
    }

    fn query_sandboxes<P: rusqlite::Params>(
        &self,
        sql: &str,
        p: P,
    ) -> Result<Vec<SandboxRecord>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map(p, SandboxRecord::from_row)?;
        let rows: Vec<Result<SandboxRecord, DbError>> = rows
            .map(|r| r.map_err(DbError::from).and_then(|r| r))
            .collect();
        rows.into_iter().collect()
    }

    /// Moves a sandbox to `to` (checked against the allowed transitions), recording `reason`.
    pub fn set_state(
        &self,
        id: &SandboxId,
        to: SandboxState,
        reason: Option<&str>,
    ) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        set_state_in(&tx, id, to, reason)?;
        tx.commit()?;
        Ok(())
    }

    /// Records a sandbox paused now, for `why`: from `running`, or again while paused (a
    /// user's pause of a sandbox its idle timeout paused makes the pause the user's).
    pub fn set_paused(&self, id: &SandboxId, why: PauseReason) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        check_move(&tx, id, SandboxState::Paused)?;
        tx.execute(
            "UPDATE sandboxes SET state = 'paused', state_reason = NULL, paused_at = ?2, pause_reason = ?3
             WHERE id = ?1",
            params![id.as_str(), now(), why.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a sandbox row and its published ports (the last step of destroy);
    /// its address is free again.
    pub fn delete_sandbox(&self, id: &SandboxId) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "DELETE FROM published_ports WHERE sandbox_id = ?1",
            [id.as_str()],
        )?;
        tx.execute("DELETE FROM secrets WHERE owner = ?1", [id.as_str()])?;
        tx.execute("DELETE FROM sandboxes WHERE id = ?1", [id.as_str()])?;
        tx.commit()?;
        Ok(())
    }
}

/// Checks, inside `tx`, that sandbox `id` may move to `to` from the state it is in (staying
/// in it is allowed).
fn check_move(
    tx: &rusqlite::Transaction<'_>,
    id: &SandboxId,
    to: SandboxState,
) -> Result<(), DbError> {
    let from: String = tx
        .query_row(
            "SELECT state FROM sandboxes WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("no sandbox {id}")))?;
    let from: SandboxState = from.parse()?;
    if from != to {
        transition(from, to)?;
    }
    Ok(())
}

/// [`Db::set_state`] inside `tx`: when and why it was paused hold only while it is paused
/// (see [`Db::set_paused`]).
pub(crate) fn set_state_in(
    tx: &rusqlite::Transaction<'_>,
    id: &SandboxId,
    to: SandboxState,
    reason: Option<&str>,
) -> Result<(), DbError> {
    check_move(tx, id, to)?;
    tx.execute(
        "UPDATE sandboxes SET state = ?2, state_reason = ?3,
            paused_at = CASE WHEN ?2 = 'paused' THEN paused_at END,
            pause_reason = CASE WHEN ?2 = 'paused' THEN pause_reason END
         WHERE id = ?1",
        params![id.as_str(), to.as_str(), reason],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
