//! What a sandbox carries beside its row for the E2B API: its metadata (pairs of strings a
//! client lists and filters by), the time after which it is killed or paused (E2B's timeout)
//! and whether an in-sandbox call resumes it (E2B's autoResume).
//! Rows of sandboxes that are gone are dropped by [`Db::sandboxes_due`].

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension};

use crate::{Db, DbError};

impl Db {
    /// Sets sandbox `id`'s metadata.
    pub fn set_sandbox_metadata(
        &self,
        id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), DbError> {
        let json = serde_json::to_string(metadata).unwrap_or_else(|_| "{}".into());
        self.conn().execute(
            "INSERT INTO sandbox_extras(sandbox_id, metadata_json) VALUES (?1, ?2)
             ON CONFLICT(sandbox_id) DO UPDATE SET metadata_json = excluded.metadata_json",
            params![id, json],
        )?;
        Ok(())
    }

    /// Sets when sandbox `id`'s timeout runs out (Unix seconds; `None`: never).
    pub fn set_sandbox_kill_at(&self, id: &str, at: Option<i64>) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO sandbox_extras(sandbox_id, kill_at) VALUES (?1, ?2)
             ON CONFLICT(sandbox_id) DO UPDATE SET kill_at = excluded.kill_at",
            params![id, at],
        )?;
        Ok(())
    }

    /// Sets whether sandbox `id` is paused (rather than killed) when its timeout runs out,
    /// and whether that pause releases its memory.
    pub fn set_sandbox_pause_at_timeout(
        &self,
        id: &str,
        pause: bool,
        release_memory: bool,
    ) -> Result<(), DbError> {
        let mode = match (pause, release_memory) {
            (false, _) => 0,
            (true, false) => 1,
            (true, true) => 2,
        };
        self.conn().execute(
            "INSERT INTO sandbox_extras(sandbox_id, pause_at_timeout) VALUES (?1, ?2)
             ON CONFLICT(sandbox_id) DO UPDATE SET pause_at_timeout = excluded.pause_at_timeout",
            params![id, mode],
        )?;
        Ok(())
    }

    /// Sets whether an in-sandbox call to sandbox `id` resumes it when it is paused.
    pub fn set_sandbox_auto_resume(&self, id: &str, on: bool) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT INTO sandbox_extras(sandbox_id, auto_resume) VALUES (?1, ?2)
             ON CONFLICT(sandbox_id) DO UPDATE SET auto_resume = excluded.auto_resume",
            params![id, i64::from(on)],
        )?;
        Ok(())
    }

    /// Whether an in-sandbox call to sandbox `id` resumes it when it is paused.
    pub fn sandbox_auto_resume(&self, id: &str) -> Result<bool, DbError> {
        let on: Option<i64> = self
            .conn()
            .query_row(
                "SELECT auto_resume FROM sandbox_extras WHERE sandbox_id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(on.unwrap_or(0) != 0)
    }

    /// Sandbox `id`'s metadata and kill time (empty and `None` when it has none).
    pub fn sandbox_extras(
        &self,
        id: &str,
    ) -> Result<(BTreeMap<String, String>, Option<i64>), DbError> {
        let row: Option<(String, Option<i64>)> = self
            .conn()
            .query_row(
                "SELECT metadata_json, kill_at FROM sandbox_extras WHERE sandbox_id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((json, at)) => (serde_json::from_str(&json).unwrap_or_default(), at),
            None => (BTreeMap::new(), None),
        })
    }

    /// The sandboxes (id, account, whether to pause rather than kill, whether that pause
    /// releases the memory) whose timeout ran out at `now` or earlier, running or paused;
    /// first drops the rows of sandboxes that are gone.
    pub fn sandboxes_due(&self, now: i64) -> Result<Vec<(String, String, bool, bool)>, DbError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM sandbox_extras WHERE sandbox_id NOT IN (SELECT id FROM sandboxes)",
            [],
        )?;
        let mut stmt = conn.prepare(
            "SELECT s.id, s.account, e.pause_at_timeout FROM sandbox_extras e
             JOIN sandboxes s ON s.id = e.sandbox_id
             WHERE e.kill_at IS NOT NULL AND e.kill_at <= ?1 AND s.state != 'destroyed'",
        )?;
        let rows = stmt.query_map(params![now], |r| {
            let mode = r.get::<_, i64>(2)?;
            Ok((r.get(0)?, r.get(1)?, mode != 0, mode == 2))
        })?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r?);
        }
        Ok(out)
    }
}
