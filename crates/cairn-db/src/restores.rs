//! The restore marker of a sandbox: the snapshot being restored into it, set (state first)
//! before its processes are stopped and its root swapped, and cleared together with its
//! final state. A marker found at start-up is a restore that a crash interrupted, which
//! recovery finishes.

use rusqlite::{params, OptionalExtension};

use cairn_types::{SandboxId, SandboxState, SnapshotId};

use crate::{Db, DbError};

/// A restore under way: its snapshot, and whether only its files are put back (`fresh`: a
/// stateful snapshot's processes are not resumed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restoring {
    /// The snapshot being restored.
    pub snapshot: SnapshotId,
    /// Files only: boot on them rather than resume the snapshot's processes.
    pub fresh: bool,
}

/// How the marker column spells a fresh restore: `<snapshot id> fresh`.
const FRESH: &str = " fresh";

impl Db {
    /// Records that `restore` is under way into `sandbox`.
    pub fn set_restoring(&self, sandbox: &SandboxId, restore: &Restoring) -> Result<(), DbError> {
        let marker = format!(
            "{}{}",
            restore.snapshot,
            if restore.fresh { FRESH } else { "" }
        );
        let n = self.conn().execute(
            "UPDATE sandboxes SET restoring = ?2 WHERE id = ?1",
            params![sandbox.as_str(), marker],
        )?;
        if n == 0 {
            return Err(DbError::NotFound(format!("no sandbox {sandbox}")));
        }
        Ok(())
    }

    /// The restore under way into `sandbox`, if there is one (or one was interrupted).
    pub fn restoring(&self, sandbox: &SandboxId) -> Result<Option<Restoring>, DbError> {
        let v: Option<String> = self
            .conn()
            .query_row(
                "SELECT restoring FROM sandboxes WHERE id = ?1",
                [sandbox.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        v.map(|s| {
            let (id, fresh) = match s.strip_suffix(FRESH) {
                Some(id) => (id, true),
                None => (s.as_str(), false),
            };
            Ok(Restoring {
                snapshot: id.parse().map_err(|e| DbError::Corrupt(format!("{e}")))?,
                fresh,
            })
        })
        .transpose()
    }

    /// Ends the restore of `sandbox` in one transaction: clears its marker and moves it to
    /// `to` as [`Db::set_state`] does (checked against the allowed transitions, with `reason`;
    /// a sandbox that leaves `paused` loses when and why it was paused).
    pub fn end_restore(
        &self,
        sandbox: &SandboxId,
        to: SandboxState,
        reason: Option<&str>,
    ) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        crate::set_state_in(&tx, sandbox, to, reason)?;
        tx.execute(
            "UPDATE sandboxes SET restoring = NULL WHERE id = ?1",
            [sandbox.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }
}
