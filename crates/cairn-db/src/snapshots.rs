//! Snapshot rows.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use cairn_types::{ProcessDefaults, Resources, RuntimeKind, SandboxId, SnapshotId, SnapshotState};

use crate::int::{from_sql, to_sql};
use crate::{Db, DbError};

/// A snapshot row.
#[derive(Clone, Debug)]
pub struct SnapshotRecord {
    /// Its id.
    pub id: SnapshotId,
    /// Owning account.
    pub account: String,
    /// Source sandbox (may be destroyed).
    pub sandbox_id: SandboxId,
    /// The source sandbox's name when the snapshot was taken (recorded by the database on
    /// insert; kept after the sandbox is destroyed, for `SANDBOX:NAME`). `None`: it had none.
    pub sandbox_name: Option<String>,
    /// Name, unique per sandbox.
    pub name: String,
    /// The snapshot it is incremental over.
    pub parent_id: Option<SnapshotId>,
    /// Image id of the source sandbox.
    pub image_id: String,
    /// Runtime of the source sandbox.
    pub runtime: RuntimeKind,
    /// The source's cgroup limits (what its forks inherit).
    pub resources: Resources,
    /// The source's environment and working directory.
    pub process: ProcessDefaults,
    /// Whether it holds a memory checkpoint.
    pub stateful: bool,
    /// Taken automatically (by a pause): pruned by Cairn, not counted against the per-sandbox limit.
    pub auto: bool,
    /// State.
    pub state: SnapshotState,
    /// Why it failed.
    pub error: Option<String>,
    /// Bytes over its parent.
    pub size_bytes: u64,
    /// Bytes of its whole tree.
    pub total_bytes: u64,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// The id it had on the host it was exported from, when it was imported from an
    /// archive (recorded by [`Db::finish_import`]; ignored on insert).
    pub imported_from: Option<String>,
}

fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(e.to_string())
}

impl SnapshotRecord {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<Self, DbError>> {
        let id: String = r.get("id")?;
        let sandbox: String = r.get("sandbox_id")?;
        let parent: Option<String> = r.get("parent_id")?;
        let runtime: String = r.get("runtime")?;
        let state: String = r.get("state")?;
        let env: String = r.get("env_json")?;
        let build = || -> Result<Self, DbError> {
            Ok(SnapshotRecord {
                id: id.parse().map_err(corrupt)?,
                account: r.get("account")?,
                sandbox_id: sandbox.parse().map_err(corrupt)?,
                sandbox_name: r.get("sandbox_name")?,
                name: r.get("name")?,
                parent_id: parent.map(|p| p.parse()).transpose().map_err(corrupt)?,
                image_id: r.get("image_id")?,
                runtime: runtime.parse().map_err(DbError::Corrupt)?,
                resources: Resources {
                    cpus: r.get("cpus")?,
                    memory_bytes: from_sql(r.get::<_, i64>("memory_bytes")?),
                    pids_limit: r.get("pids_limit")?,
                },
                process: ProcessDefaults {
                    env: serde_json::from_str(&env).map_err(corrupt)?,
                    workdir: r.get("workdir")?,
                },
                stateful: r.get("stateful")?,
                auto: r.get("auto")?,
                state: state.parse()?,
                error: r.get("error")?,
                size_bytes: from_sql(r.get::<_, i64>("size_bytes")?),
                total_bytes: from_sql(r.get::<_, i64>("total_bytes")?),
                created_at: r.get("created_at")?,
                imported_from: r.get("imported_from")?,
            })
        };
        Ok(build())
    }
}

impl Db {
    fn query_snapshots<P: rusqlite::Params>(
        &self,
        sql: &str,
        p: P,
    ) -> Result<Vec<SnapshotRecord>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map(p, SnapshotRecord::from_row)?;
        let rows: Vec<Result<SnapshotRecord, DbError>> = rows
            .map(|r| r.map_err(DbError::from).and_then(|r| r))
            .collect();
        rows.into_iter().collect()
    }

    /// Inserts a snapshot in state `creating` (`uploading` when it says so: an import); a name already used on the sandbox is a conflict naming the holder.
    pub fn insert_snapshot(&self, s: &SnapshotRecord) -> Result<(), DbError> {
        let conn = self.conn();
        let taken: Option<String> = conn
            .query_row(
                "SELECT id FROM snapshots WHERE sandbox_id = ?1 AND name = ?2",
                params![s.sandbox_id.as_str(), s.name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = taken {
            return Err(DbError::Conflict(format!(
                "sandbox {} already has a snapshot named '{}' ({id}): choose another name or delete it with 'cairn snapshot delete {id}'",
                s.sandbox_id, s.name
            )));
        }
        let env = serde_json::to_string(&s.process.env).map_err(corrupt)?;
        // An import starts `uploading`; everything else `creating`.
        let state = match s.state {
            SnapshotState::Uploading => SnapshotState::Uploading,
            _ => SnapshotState::Creating,
        };
        conn.execute(
            "INSERT INTO snapshots(id, account, sandbox_id, name, parent_id, image_id, runtime, cpus, memory_bytes, pids_limit,
                                   env_json, workdir, state, error, size_bytes, total_bytes, created_at, stateful, auto)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?16, NULL, 0, 0, ?13, ?14, ?15)",
            params![
                s.id.as_str(),
                s.account,
                s.sandbox_id.as_str(),
                s.name,
                s.parent_id.as_ref().map(|p| p.as_str()),
                s.image_id,
                s.runtime.as_str(),
                s.resources.cpus,
                to_sql(s.resources.memory_bytes),
                s.resources.pids_limit,
                env,
                s.process.workdir,
                s.created_at,
                s.stateful,
                s.auto,
                state.as_str(),
            ],
        )?;
        // The sandbox's secrets, still sealed: its forks get them again (never the files).
        conn.execute(
            "INSERT OR REPLACE INTO secrets(owner, names, sealed)
             SELECT ?1, names, sealed FROM secrets WHERE owner = ?2",
            params![s.id.as_str(), s.sandbox_id.as_str()],
        )?;
        Ok(())
    }

    /// The disk limit of the sandbox a snapshot was taken from, at that time (what its forks
    /// inherit); `None` when it had none of its own.
    pub fn snapshot_disk(&self, id: &SnapshotId) -> Result<Option<u64>, DbError> {
        let v: Option<Option<i64>> = self
            .conn()
            .query_row(
                "SELECT disk_bytes FROM snapshots WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.flatten().map(from_sql))
    }

    /// Marks a snapshot ready with its sizes.
    pub fn finish_snapshot(
        &self,
        id: &SnapshotId,
        sandbox: &SandboxId,
        size_bytes: u64,
        total_bytes: u64,
    ) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "UPDATE snapshots SET state = 'ready', size_bytes = ?2, total_bytes = ?3 WHERE id = ?1",
            params![id.as_str(), to_sql(size_bytes), to_sql(total_bytes)],
        )?;
        tx.execute(
            "UPDATE sandboxes SET parent_snapshot = ?2 WHERE id = ?1",
            params![sandbox.as_str(), id.as_str()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Marks an imported snapshot ready: its sizes, the id it had on its source host and
    /// the disk limit its forks inherit.
    pub fn finish_import(
        &self,
        id: &SnapshotId,
        size_bytes: u64,
        imported_from: &str,
        disk_bytes: Option<u64>,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE snapshots SET state = 'ready', size_bytes = ?2, total_bytes = ?2,
                imported_from = ?3, disk_bytes = ?4 WHERE id = ?1",
            params![
                id.as_str(),
                to_sql(size_bytes),
                imported_from,
                disk_bytes.map(to_sql)
            ],
        )?;
        Ok(())
    }

    /// Records a snapshot's measured total size (measured after it became ready).
    pub fn set_snapshot_total(&self, id: &SnapshotId, total_bytes: u64) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE snapshots SET total_bytes = ?2 WHERE id = ?1",
            params![id.as_str(), to_sql(total_bytes)],
        )?;
        Ok(())
    }

    /// Sets a snapshot's state (and error).
    pub fn set_snapshot_state(
        &self,
        id: &SnapshotId,
        state: SnapshotState,
        error: Option<&str>,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE snapshots SET state = ?2, error = ?3 WHERE id = ?1",
            params![id.as_str(), state.as_str(), error],
        )?;
        Ok(())
    }

    /// A snapshot by id (any account).
    pub fn snapshot(&self, id: &SnapshotId) -> Result<Option<SnapshotRecord>, DbError> {
        Ok(self
            .query_snapshots("SELECT * FROM snapshots WHERE id = ?1", [id.as_str()])?
            .pop())
    }

    /// A snapshot of `account` by id.
    pub fn find_snapshot(
        &self,
        account: &str,
        id: &str,
    ) -> Result<Option<SnapshotRecord>, DbError> {
        Ok(self
            .query_snapshots(
                "SELECT * FROM snapshots WHERE account = ?1 AND id = ?2",
                params![account, id],
            )?
            .pop())
    }

    /// The snapshots of `account` named `name` (on any of its sandboxes, live or destroyed),
    /// oldest first (deleted ones excluded).
    pub fn snapshots_named(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Vec<SnapshotRecord>, DbError> {
        self.query_snapshots(
            "SELECT * FROM snapshots WHERE account = ?1 AND name = ?2 AND state != 'deleted' ORDER BY created_at, rowid",
            params![account, name],
        )
    }

    /// Every snapshot row of `account` in every state (`deleted` ones being removed included),
    /// oldest first; only those of sandbox `sandbox_id`, and only those whose sandbox was named
    /// `sandbox_name`, when given (for listings).
    pub fn listed_snapshots(
        &self,
        account: &str,
        sandbox_id: Option<&SandboxId>,
        sandbox_name: Option<&str>,
    ) -> Result<Vec<SnapshotRecord>, DbError> {
        self.query_snapshots(
            "SELECT * FROM snapshots WHERE account = ?1 AND (?2 IS NULL OR sandbox_id = ?2)
               AND (?3 IS NULL OR sandbox_name = ?3) ORDER BY created_at, rowid",
            params![account, sandbox_id.map(|s| s.as_str()), sandbox_name],
        )
    }

    /// Snapshots of a sandbox, oldest first (deleted ones excluded).
    pub fn sandbox_snapshots(&self, sandbox: &SandboxId) -> Result<Vec<SnapshotRecord>, DbError> {
        self.query_snapshots(
            "SELECT * FROM snapshots WHERE sandbox_id = ?1 AND state != 'deleted' ORDER BY created_at, rowid",
            [sandbox.as_str()],
        )
    }

    /// Snapshots of an account, oldest first (deleted ones excluded).
    pub fn account_snapshots(&self, account: &str) -> Result<Vec<SnapshotRecord>, DbError> {
        self.query_snapshots(
            "SELECT * FROM snapshots WHERE account = ?1 AND state != 'deleted' ORDER BY created_at, rowid",
            [account],
        )
    }

    /// Every snapshot row (start-up recovery).
    pub fn all_snapshots(&self) -> Result<Vec<SnapshotRecord>, DbError> {
        self.query_snapshots("SELECT * FROM snapshots ORDER BY created_at, rowid", [])
    }

    /// Removes a snapshot row, re-parenting its children onto its parent.
    pub fn delete_snapshot(&self, id: &SnapshotId) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let parent: Option<String> = tx
            .query_row(
                "SELECT parent_id FROM snapshots WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        tx.execute(
            "UPDATE snapshots SET parent_id = ?2 WHERE parent_id = ?1",
            params![id.as_str(), parent],
        )?;
        tx.execute(
            "UPDATE sandboxes SET parent_snapshot = ?2 WHERE parent_snapshot = ?1",
            params![id.as_str(), parent],
        )?;
        tx.execute("DELETE FROM secrets WHERE owner = ?1", [id.as_str()])?;
        // A build step it held is no longer cached (templates).
        tx.execute(
            "DELETE FROM template_steps WHERE snapshot_id = ?1",
            [id.as_str()],
        )?;
        tx.execute("DELETE FROM snapshots WHERE id = ?1", [id.as_str()])?;
        tx.commit()?;
        Ok(())
    }

    /// Records which snapshot a sandbox's root now descends from, and its image.
    pub fn set_sandbox_origin(
        &self,
        sandbox: &SandboxId,
        snapshot: Option<&SnapshotId>,
        image_id: &str,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE sandboxes SET parent_snapshot = ?2, image_id = ?3 WHERE id = ?1",
            params![sandbox.as_str(), snapshot.map(|s| s.as_str()), image_id],
        )?;
        Ok(())
    }

    /// Records (or clears) the snapshot whose memory checkpoint holds a paused sandbox's
    /// processes while their memory is released.
    pub fn set_memory_snapshot(
        &self,
        sandbox: &SandboxId,
        snapshot: Option<&SnapshotId>,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE sandboxes SET memory_snapshot = ?2 WHERE id = ?1",
            params![sandbox.as_str(), snapshot.map(|s| s.as_str())],
        )?;
        Ok(())
    }

    /// The snapshot a sandbox's root descends from.
    pub fn sandbox_origin(&self, sandbox: &SandboxId) -> Result<Option<SnapshotId>, DbError> {
        let v: Option<String> = self
            .conn()
            .query_row(
                "SELECT parent_snapshot FROM sandboxes WHERE id = ?1",
                [sandbox.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .flatten();
        v.map(|s| s.parse().map_err(corrupt)).transpose()
    }
}
