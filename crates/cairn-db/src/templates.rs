//! Template rows (a name of an account for one of its snapshots, with the process defaults
//! its sandboxes get) and the account's build-step cache (step key → snapshot).
//!
//! This module stores rows; which snapshots a removed template frees is the engine's call.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use cairn_types::SnapshotId;

use crate::{now, Db, DbError};

/// A template row.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateRecord {
    /// Owning account.
    pub account: String,
    /// Its name, unique per account.
    pub name: String,
    /// The snapshot its sandboxes are forked from.
    pub snapshot_id: SnapshotId,
    /// Environment (`KEY=VALUE`) its sandboxes get over the snapshot's.
    pub env: Vec<String>,
    /// Working directory its sandboxes' processes start in, when set.
    pub workdir: Option<String>,
    /// User (`uid` or `uid:gid`) its sandboxes' processes run as, when set.
    pub user: Option<String>,
    /// When it was made (or last rebuilt).
    pub created_at: DateTime<Utc>,
}

fn corrupt(e: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(e.to_string())
}

impl TemplateRecord {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Result<Self, DbError>> {
        let snapshot: String = r.get("snapshot_id")?;
        let env: String = r.get("env_json")?;
        let build = || -> Result<Self, DbError> {
            Ok(TemplateRecord {
                account: r.get("account")?,
                name: r.get("name")?,
                snapshot_id: snapshot.parse().map_err(corrupt)?,
                env: serde_json::from_str(&env).map_err(corrupt)?,
                workdir: r.get("workdir")?,
                user: r.get("user")?,
                created_at: r.get("created_at")?,
            })
        };
        Ok(build())
    }
}

impl Db {
    fn query_templates<P: rusqlite::Params>(
        &self,
        sql: &str,
        p: P,
    ) -> Result<Vec<TemplateRecord>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map(p, TemplateRecord::from_row)?;
        rows.map(|r| r.map_err(DbError::from).and_then(|r| r))
            .collect()
    }

    /// Records a template. A name the account already uses is a conflict, unless `replace`:
    /// then the row is replaced and the old one returned.
    pub fn put_template(
        &self,
        t: &TemplateRecord,
        replace: bool,
    ) -> Result<Option<TemplateRecord>, DbError> {
        let old = self.template(&t.account, &t.name)?;
        if old.is_some() && !replace {
            return Err(DbError::Conflict(format!(
                "a template named '{}' already exists: choose another name, or remove it first ('cairn template rm {}')",
                t.name, t.name
            )));
        }
        let env = serde_json::to_string(&t.env).map_err(corrupt)?;
        self.conn().execute(
            "INSERT OR REPLACE INTO templates(account, name, snapshot_id, env_json, workdir, user, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                t.account,
                t.name,
                t.snapshot_id.as_str(),
                env,
                t.workdir,
                t.user,
                t.created_at
            ],
        )?;
        Ok(old)
    }

    /// One template of an account.
    pub fn template(&self, account: &str, name: &str) -> Result<Option<TemplateRecord>, DbError> {
        Ok(self
            .query_templates(
                "SELECT * FROM templates WHERE account = ?1 AND name = ?2",
                params![account, name],
            )?
            .pop())
    }

    /// An account's templates, by name.
    pub fn templates(&self, account: &str) -> Result<Vec<TemplateRecord>, DbError> {
        self.query_templates(
            "SELECT * FROM templates WHERE account = ?1 ORDER BY name",
            [account],
        )
    }

    /// The templates (of any account: a snapshot has one) a snapshot backs.
    pub fn templates_of_snapshot(&self, id: &SnapshotId) -> Result<Vec<TemplateRecord>, DbError> {
        self.query_templates(
            "SELECT * FROM templates WHERE snapshot_id = ?1 ORDER BY name",
            [id.as_str()],
        )
    }

    /// Removes a template row; whether it was there.
    pub fn delete_template(&self, account: &str, name: &str) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "DELETE FROM templates WHERE account = ?1 AND name = ?2",
            params![account, name],
        )?;
        Ok(n > 0)
    }

    /// The snapshot an account's build step `key` left, when it is cached and still ready.
    pub fn template_step(&self, account: &str, key: &str) -> Result<Option<SnapshotId>, DbError> {
        let id: Option<String> = self
            .conn()
            .query_row(
                "SELECT t.snapshot_id FROM template_steps t
                 JOIN snapshots s ON s.id = t.snapshot_id AND s.account = t.account
                 WHERE t.account = ?1 AND t.key = ?2 AND s.state = 'ready'",
                params![account, key],
                |r| r.get(0),
            )
            .optional()?;
        id.map(|i| i.parse().map_err(corrupt)).transpose()
    }

    /// Caches an account's build step `key` as snapshot `id` (replacing what it held).
    pub fn put_template_step(
        &self,
        account: &str,
        key: &str,
        id: &SnapshotId,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO template_steps(account, key, snapshot_id, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![account, key, id.as_str(), now()],
        )?;
        Ok(())
    }

    /// An account's cached build steps: (key, snapshot), oldest first.
    pub fn template_steps(&self, account: &str) -> Result<Vec<(String, SnapshotId)>, DbError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT key, snapshot_id FROM template_steps WHERE account = ?1 ORDER BY created_at",
        )?;
        let rows = stmt.query_map([account], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (key, id) = row?;
            out.push((key, id.parse().map_err(corrupt)?));
        }
        Ok(out)
    }

    /// Sets the user (`uid` or `uid:gid`) a sandbox's commands run as by default.
    pub fn set_sandbox_user(
        &self,
        id: &cairn_types::SandboxId,
        user: Option<&str>,
    ) -> Result<(), DbError> {
        self.conn().execute(
            "UPDATE sandboxes SET user = ?2 WHERE id = ?1",
            params![id.as_str(), user],
        )?;
        Ok(())
    }

    /// The user a sandbox's commands run as by default, when set.
    pub fn sandbox_user(&self, id: &cairn_types::SandboxId) -> Result<Option<String>, DbError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT user FROM sandboxes WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Forgets an account's cached build step.
    pub fn delete_template_step(&self, account: &str, key: &str) -> Result<(), DbError> {
        self.conn().execute(
            "DELETE FROM template_steps WHERE account = ?1 AND key = ?2",
            params![account, key],
        )?;
        Ok(())
    }
}
