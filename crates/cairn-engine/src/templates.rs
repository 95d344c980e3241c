//! Templates: a name of an account for one of its ready snapshots, with the process
//! defaults (environment, working directory, user) its sandboxes get. `up --template` is a
//! fork of that snapshot; a snapshot that backs a template cannot be deleted.
//!
//! Also the account's build-step cache (`cairn template build`, which the CLI drives over
//! the API): a step key (a hash of the step and everything before it) names the snapshot
//! that step left. Cached steps no template descends from are deleted when the template
//! that used them is removed or replaced, and by a prune.
//!
//! Not here: the Cairnfile (the CLI parses it and runs its steps).

use std::collections::HashSet;

use cairn_db::TemplateRecord;
use cairn_types::api::{SandboxInfo, TemplateInfo};
use cairn_types::{validate_name, SnapshotId, SnapshotState};

use crate::limits::{check_env_size, check_workdir, merge_env};
use crate::{CreateSandbox, Engine, EngineError, Result};

/// What a template is made of (`POST /v1/templates`).
#[derive(Clone, Debug, Default)]
pub struct NewTemplate {
    /// Its name.
    pub name: String,
    /// The snapshot reference (id, `NAME`, `SANDBOX:NAME`).
    pub from_snapshot: String,
    /// Environment over the snapshot's.
    pub env: Vec<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// User, `uid` or `uid:gid`.
    pub user: Option<String>,
    /// Replace a template of that name.
    pub replace: bool,
}

/// The longest a build-step key may be (a hex SHA-256 is 64).
const MAX_STEP_KEY: usize = 128;

fn not_found(name: &str) -> EngineError {
    EngineError::NotFound(format!(
        "no template '{name}': list yours with 'cairn template ls'"
    ))
}

/// Checks a user: a numeric `uid` or `uid:gid`.
pub(crate) fn check_user(user: &str) -> Result<()> {
    let ok = !user.is_empty()
        && user.len() <= 21
        && user
            .split(':')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && user.split(':').count() <= 2
        && user.split(':').all(|p| p.parse::<u32>().is_ok());
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "invalid user '{}': give a numeric uid or uid:gid, e.g. 1000 or 1000:1000",
            user.chars().take(40).collect::<String>()
        )))
    }
}

fn check_env_entries(env: &[String]) -> Result<()> {
    check_env_size(env, "the template")?;
    if let Some(bad) = env
        .iter()
        .find(|kv| kv.split('=').next().is_none_or(str::is_empty) || !kv.contains('='))
    {
        return Err(EngineError::InvalidArgument(format!(
            "invalid environment entry '{}': write KEY=VALUE",
            bad.chars().take(40).collect::<String>()
        )));
    }
    Ok(())
}

/// Checks a build-step key: 1 to [`MAX_STEP_KEY`] characters of `[0-9a-z-]`.
fn check_step_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.len() > MAX_STEP_KEY
        || !key
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-')
    {
        return Err(EngineError::InvalidArgument(format!(
            "invalid build-step key: give 1 to {MAX_STEP_KEY} characters of 0-9, a-z and -"
        )));
    }
    Ok(())
}

impl Engine {
    async fn template_info(&self, t: &TemplateRecord) -> Result<TemplateInfo> {
        let snap = self.snapshot_row(&t.snapshot_id).await?.ok_or_else(|| {
            EngineError::Internal(format!(
                "snapshot {} of template {} is gone",
                t.snapshot_id, t.name
            ))
        })?;
        Ok(TemplateInfo {
            name: t.name.clone(),
            snapshot: t.snapshot_id.to_string(),
            stateful: snap.stateful,
            image: self.image_name(&snap.image_id).await,
            runtime: snap.runtime,
            env: t.env.clone(),
            workdir: t.workdir.clone(),
            user: t.user.clone(),
            total_bytes: snap.total_bytes,
            created_at: t.created_at,
        })
    }

    async fn template_row(&self, account: &str, name: &str) -> Result<TemplateRecord> {
        let (who, what) = (account.to_string(), name.to_string());
        self.db(move |db| db.template(&who, &what))
            .await?
            .ok_or_else(|| not_found(name))
    }

    /// Names one of `account`'s ready snapshots as a template (or, with `replace`, points
    /// an existing template at it, deleting the build steps only the old one used).
    pub async fn create_template(&self, account: &str, t: &NewTemplate) -> Result<TemplateInfo> {
        validate_name(&t.name)?;
        check_env_entries(&t.env)?;
        if let Some(w) = &t.workdir {
            check_workdir(w)?;
        }
        if let Some(u) = &t.user {
            check_user(u)?;
        }
        let snap = self.ready_snapshot(account, &t.from_snapshot).await?;
        if snap.auto {
            return Err(EngineError::InvalidArgument(format!(
                "snapshot {} was taken automatically (by a pause) and is pruned by Cairn: take one with 'cairn snapshot create' and make the template from it",
                snap.id
            )));
        }
        let row = TemplateRecord {
            account: account.to_string(),
            name: t.name.clone(),
            snapshot_id: snap.id.clone(),
            env: t.env.clone(),
            workdir: t.workdir.clone(),
            user: t.user.clone(),
            created_at: chrono::Utc::now(),
        };
        let (rec, replace) = (row.clone(), t.replace);
        let old = self
            .db(move |db| db.put_template(&rec, replace))
            .await
            .map_err(EngineError::from_db)?;
        if let Some(old) = old.filter(|o| o.snapshot_id != row.snapshot_id) {
            self.prune_steps(account, Some(&old.snapshot_id)).await?;
        }
        tracing::info!(template = %row.name, snapshot = %row.snapshot_id, "template saved");
        self.template_info(&row).await
    }

    /// `account`'s templates, by name.
    pub async fn list_templates(&self, account: &str) -> Result<Vec<TemplateInfo>> {
        let who = account.to_string();
        let rows = self.db(move |db| db.templates(&who)).await?;
        let mut out = Vec::with_capacity(rows.len());
        for t in &rows {
            out.push(self.template_info(t).await?);
        }
        Ok(out)
    }

    /// One of `account`'s templates.
    pub async fn inspect_template(&self, account: &str, name: &str) -> Result<TemplateInfo> {
        let t = self.template_row(account, name).await?;
        self.template_info(&t).await
    }

    /// Removes a template, and the cached build steps no other template descends from.
    /// Its snapshot stays when it is not a build step (one made with `--from-snapshot`).
    pub async fn remove_template(&self, account: &str, name: &str) -> Result<()> {
        let t = self.template_row(account, name).await?;
        let (who, what) = (account.to_string(), name.to_string());
        if !self.db(move |db| db.delete_template(&who, &what)).await? {
            return Err(not_found(name));
        }
        self.prune_steps(account, Some(&t.snapshot_id)).await?;
        tracing::info!(template = %name, "template removed");
        Ok(())
    }

    /// Creates a sandbox from `account`'s template: a fork of its snapshot, with its
    /// environment and working directory under the request's.
    pub async fn create_from_template(
        &self,
        account: &str,
        template: &str,
        mut req: CreateSandbox,
    ) -> Result<SandboxInfo> {
        if !req.image.is_empty() || req.from_snapshot.is_some() || req.repo.is_some() {
            return Err(EngineError::InvalidArgument(
                "give a template, an image or from_snapshot, not several: a template has its own files".into(),
            ));
        }
        let t = self.template_row(account, template).await?;
        req.from_snapshot = Some(t.snapshot_id.to_string());
        let snap = self.snapshot_row(&t.snapshot_id).await?;
        let base = snap.map(|s| s.process.env).unwrap_or_default();
        req.env = merge_env(&merge_env(&base, &t.env), &req.env);
        if req.workdir.is_none() {
            req.workdir = t.workdir.clone();
        }
        let info = self.create_sandbox(account, &req).await?;
        if let Some(user) = t.user {
            let id: cairn_types::SandboxId = info
                .id
                .parse()
                .map_err(|e: cairn_types::IdError| EngineError::Internal(e.to_string()))?;
            self.db(move |db| db.set_sandbox_user(&id, Some(&user)))
                .await?;
        }
        Ok(info)
    }

    /// The user an exec in sandbox `r` runs as: the request's, else the sandbox's default
    /// (its template's `USER`); `None`: root. Another user needs the agent.
    pub(crate) async fn exec_user(
        &self,
        r: &cairn_db::SandboxRecord,
        asked: Option<&str>,
        agent: bool,
    ) -> Result<Option<String>> {
        if let Some(u) = asked {
            check_user(u)?;
        }
        let user = match asked {
            Some(u) => Some(u.to_string()),
            None => {
                let id = r.id.clone();
                self.db(move |db| db.sandbox_user(&id)).await?
            }
        };
        if user.is_some() && !agent {
            return Err(EngineError::Conflict(format!(
                "sandbox {} runs without its agent, which alone runs commands as another user: run it as root (no user) or start the sandbox with the agent",
                r.id
            )));
        }
        Ok(user)
    }

    /// The snapshot `account`'s build step `key` left, when cached.
    pub async fn template_step(&self, account: &str, key: &str) -> Result<SnapshotId> {
        check_step_key(key)?;
        let (who, k) = (account.to_string(), key.to_string());
        self.db(move |db| db.template_step(&who, &k))
            .await?
            .ok_or_else(|| EngineError::NotFound(format!("build step {key} is not cached")))
    }

    /// Caches `account`'s build step `key` as one of its ready snapshots.
    pub async fn put_template_step(&self, account: &str, key: &str, snapshot: &str) -> Result<()> {
        check_step_key(key)?;
        let snap = self.ready_snapshot(account, snapshot).await?;
        let (who, k) = (account.to_string(), key.to_string());
        self.db(move |db| db.put_template_step(&who, &k, &snap.id))
            .await?;
        Ok(())
    }

    /// Deletes `account`'s cached build steps that no template descends from (only those in
    /// `under`'s lineage, when given); returns the snapshots deleted.
    pub async fn prune_steps(
        &self,
        account: &str,
        under: Option<&SnapshotId>,
    ) -> Result<Vec<SnapshotId>> {
        let who = account.to_string();
        let (templates, steps) = self
            .db(move |db| Ok((db.templates(&who)?, db.template_steps(&who)?)))
            .await?;
        let mut kept = HashSet::new();
        for t in &templates {
            kept.extend(self.lineage(&t.snapshot_id).await?);
        }
        let candidates: Option<HashSet<SnapshotId>> = match under {
            Some(id) => Some(self.lineage(id).await?.into_iter().collect()),
            None => None,
        };
        let mut removed = Vec::new();
        for (key, id) in steps {
            if kept.contains(&id) || candidates.as_ref().is_some_and(|c| !c.contains(&id)) {
                continue;
            }
            let (who, k) = (account.to_string(), key.clone());
            self.db(move |db| db.delete_template_step(&who, &k)).await?;
            if removed.contains(&id) {
                continue;
            }
            self.purge_unused(&id).await?;
            tracing::info!(snapshot = %id, step = %key, "unused build step deleted");
            removed.push(id);
        }
        if under.is_none() {
            // Step snapshots an interrupted build took but never cached: of a destroyed
            // `build-…` sandbox, named `step-…`, in no template's lineage.
            let who = account.to_string();
            for s in self.db(move |db| db.account_snapshots(&who)).await? {
                let of_build = s.name.starts_with("step-")
                    && s.sandbox_name
                        .as_deref()
                        .is_some_and(|n| n.starts_with("build-"));
                if !of_build || kept.contains(&s.id) || removed.contains(&s.id) {
                    continue;
                }
                let (row, id, who, sid) = (
                    s.sandbox_id.clone(),
                    s.id.clone(),
                    account.to_string(),
                    s.id.to_string(),
                );
                let (live, cached) = self
                    .db(move |db| {
                        let cached = db.template_steps(&who)?.iter().any(|(_, i)| *i == id);
                        Ok((db.sandbox(&row)?.is_some(), cached))
                    })
                    .await?;
                if live || cached {
                    continue;
                }
                self.purge_unused(&s.id).await?;
                tracing::info!(snapshot = %sid, "uncached build step deleted");
                removed.push(s.id);
            }
        }
        Ok(removed)
    }

    /// Deletes a snapshot no template uses, as `delete_snapshot` does: serialized with its
    /// sandbox's snapshots, and never the one a paused sandbox's processes wait in.
    async fn purge_unused(&self, id: &SnapshotId) -> Result<()> {
        let Some(s) = self.snapshot_row(id).await? else {
            return Ok(());
        };
        let lock = self.lock_for(&s.sandbox_id);
        let _guard = lock.lock().await;
        let row = s.sandbox_id.clone();
        let held = self
            .db(move |db| db.sandbox(&row))
            .await?
            .is_some_and(|h| h.memory_snapshot.as_ref() == Some(&s.id));
        if !held && s.state != SnapshotState::Deleted {
            self.purge_snapshot(id).await?;
        }
        Ok(())
    }

    /// A snapshot and its ancestors, nearest first.
    async fn lineage(&self, id: &SnapshotId) -> Result<Vec<SnapshotId>> {
        let mut out = Vec::new();
        let mut next = Some(id.clone());
        while let Some(id) = next {
            if out.contains(&id) {
                break;
            }
            next = self.snapshot_row(&id).await?.and_then(|s| s.parent_id);
            out.push(id);
        }
        Ok(out)
    }

    /// Refuses to delete snapshot `id` while a template holds it (409 naming the template
    /// and the fix; the template is the caller's own, as the snapshot is).
    pub(crate) async fn refuse_if_template(&self, id: &SnapshotId) -> Result<()> {
        let row = id.clone();
        let held = self.db(move |db| db.templates_of_snapshot(&row)).await?;
        if let Some(t) = held.first() {
            return Err(EngineError::Conflict(format!(
                "snapshot {id} holds template '{}': remove the template first ('cairn template rm {}'), which deletes the snapshot too when a build made it",
                t.name, t.name
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_numeric_uid_or_uid_gid() {
        assert!(check_user("0").is_ok());
        assert!(check_user("1000:1000").is_ok());
        assert!(check_user("root").is_err());
        assert!(check_user("1:2:3").is_err());
        assert!(check_user(":1").is_err());
        assert!(check_user("99999999999").is_err());
    }

    #[test]
    fn step_keys_are_short_lowercase_hex_like() {
        assert!(check_step_key("ab12-cd").is_ok());
        assert!(check_step_key("").is_err());
        assert!(check_step_key("../x").is_err());
        assert!(check_step_key(&"a".repeat(129)).is_err());
    }

    #[test]
    fn env_entries_need_a_key_and_an_equals_sign() {
        assert!(check_env_entries(&["A=1".into(), "B=".into()]).is_ok());
        assert!(check_env_entries(&["=1".into()]).is_err());
        assert!(check_env_entries(&["A".into()]).is_err());
    }
}
