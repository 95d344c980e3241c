//! The restore marker of a sandbox: the snapshot being restored into it, set (state first)
//! before its processes are stopped and its root swapped, and cleared together with its
//! final state. A marker found at start-up is a restore that a crash interrupted, which
//! recovery finishes.

use rusqlite::{params, OptionalExtension};

use cairn_types::{transition, SandboxId, SandboxState, SnapshotId};

use crate::{Db, DbError};

impl Db {
    /// Records that snapshot `snapshot` is being restored into `sandbox`.
    pub fn set_restoring(&self, sandbox: &SandboxId, snapshot: &SnapshotId) -> Result<(), DbError> {
        let n = self.conn().execute(
            "UPDATE sandboxes SET restoring = ?2 WHERE id = ?1",
            params![sandbox.as_str(), snapshot.as_str()],
        )?;
        if n == 0 {
            return Err(DbError::NotFound(format!("no sandbox {sandbox}")));
        }
        Ok(())
    }

    /// The snapshot being restored into `sandbox`, if a restore is under way (or was
    /// interrupted).
    pub fn restoring(&self, sandbox: &SandboxId) -> Result<Option<SnapshotId>, DbError> {
        let v: Option<String> = self
            .conn()
            .query_row(
                "SELECT restoring FROM sandboxes WHERE id = ?1",
                [sandbox.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        v.map(|s| s.parse().map_err(|e| DbError::Corrupt(format!("{e}"))))
            .transpose()
    }

    /// Ends the restore of `sandbox` in one transaction: clears its marker and moves it to
    /// `to` (checked against the allowed transitions) with `reason`.
    pub fn end_restore(
        &self,
        sandbox: &SandboxId,
        to: SandboxState,
        reason: Option<&str>,
    ) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let from: String = tx
            .query_row(
                "SELECT state FROM sandboxes WHERE id = ?1",
                [sandbox.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| DbError::NotFound(format!("no sandbox {sandbox}")))?;
        let from: SandboxState = from.parse()?;
        if from != to {
            transition(from, to)?;
        }
        tx.execute(
            "UPDATE sandboxes SET state = ?2, state_reason = ?3, restoring = NULL WHERE id = ?1",
            params![sandbox.as_str(), to.as_str(), reason],
        )?;
        tx.commit()?;
        Ok(())
    }
}
