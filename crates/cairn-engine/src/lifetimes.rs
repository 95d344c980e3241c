//! A sandbox's metadata and the time it is killed at, which the E2B API sets (its
//! `metadata` and `timeout`): the metadata is listed and filtered by; once the time has come
//! the sandbox is destroyed (checked with the idle timeouts, every
//! `EngineConfig::idle_check_interval`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::{Engine, EngineError, Result};

/// The most metadata entries a sandbox keeps, and the longest key and value.
const MAX_ENTRIES: usize = 64;
const MAX_TEXT: usize = 1024;

/// The longest time to live: 30 days.
pub const MAX_KILL_AFTER_SECS: u64 = 30 * 24 * 3600;

impl Engine {
    /// Sets `account`'s sandbox `id_or_name` to be killed `secs` from now (`None`: never);
    /// answers when.
    pub async fn set_kill_after(
        &self,
        account: &str,
        id_or_name: &str,
        secs: Option<u64>,
    ) -> Result<Option<DateTime<Utc>>> {
        if secs.is_some_and(|s| s > MAX_KILL_AFTER_SECS) {
            return Err(EngineError::InvalidArgument(format!(
                "a timeout of at most {MAX_KILL_AFTER_SECS} s (30 days)"
            )));
        }
        let r = self.find(account, id_or_name).await?;
        let at =
            secs.map(|s| Utc::now() + chrono::Duration::seconds(i64::try_from(s).unwrap_or(0)));
        let id = r.id.to_string();
        let when = at.map(|t| t.timestamp());
        self.db(move |db| db.set_sandbox_kill_at(&id, when)).await?;
        Ok(at)
    }

    /// Sets `account`'s sandbox `id_or_name`'s metadata.
    pub async fn set_metadata(
        &self,
        account: &str,
        id_or_name: &str,
        metadata: BTreeMap<String, String>,
    ) -> Result<()> {
        if metadata.len() > MAX_ENTRIES {
            return Err(EngineError::InvalidArgument(format!(
                "at most {MAX_ENTRIES} metadata entries"
            )));
        }
        if metadata
            .iter()
            .any(|(k, v)| k.is_empty() || k.len() > MAX_TEXT || v.len() > MAX_TEXT)
        {
            return Err(EngineError::InvalidArgument(format!(
                "metadata keys must not be empty, and keys and values at most {MAX_TEXT} bytes"
            )));
        }
        let r = self.find(account, id_or_name).await?;
        let id = r.id.to_string();
        self.db(move |db| db.set_sandbox_metadata(&id, &metadata))
            .await?;
        Ok(())
    }

    /// `account`'s sandbox `id_or_name`'s metadata and kill time.
    pub async fn sandbox_extras(
        &self,
        account: &str,
        id_or_name: &str,
    ) -> Result<(BTreeMap<String, String>, Option<DateTime<Utc>>)> {
        let r = self.find(account, id_or_name).await?;
        let id = r.id.to_string();
        let (metadata, at) = self.db(move |db| db.sandbox_extras(&id)).await?;
        Ok((metadata, at.and_then(|t| DateTime::from_timestamp(t, 0))))
    }

    /// Sets whether `account`'s sandbox `id_or_name` is paused (with its automatic snapshot)
    /// rather than destroyed when its timeout runs out, and whether that pause releases its
    /// memory (see `pause_sandbox`).
    pub async fn set_pause_at_timeout(
        &self,
        account: &str,
        id_or_name: &str,
        pause: bool,
        release_memory: bool,
    ) -> Result<()> {
        let r = self.find(account, id_or_name).await?;
        let id = r.id.to_string();
        self.db(move |db| db.set_sandbox_pause_at_timeout(&id, pause, release_memory))
            .await?;
        Ok(())
    }

    /// Sets whether an in-sandbox call (E2B's) resumes `account`'s sandbox `id_or_name` when
    /// it is paused (see `resume_for_call`).
    pub async fn set_auto_resume(&self, account: &str, id_or_name: &str, on: bool) -> Result<()> {
        let r = self.find(account, id_or_name).await?;
        let id = r.id.to_string();
        self.db(move |db| db.set_sandbox_auto_resume(&id, on))
            .await?;
        Ok(())
    }

    /// Whether an in-sandbox call resumes `account`'s sandbox `id_or_name` when it is paused
    /// (`set_auto_resume`).
    pub async fn auto_resumes(&self, account: &str, id_or_name: &str) -> Result<bool> {
        let r = self.find(account, id_or_name).await?;
        let id = r.id.to_string();
        Ok(self.db(move |db| db.sandbox_auto_resume(&id)).await?)
    }

    /// Before an in-sandbox call to `account`'s sandbox `id_or_name`: resumes it when it is
    /// paused and was made to resume so (`set_auto_resume`). True when it resumed it.
    pub async fn resume_for_call(
        self: &std::sync::Arc<Self>,
        account: &str,
        id_or_name: &str,
    ) -> Result<bool> {
        let r = self.find(account, id_or_name).await?;
        if r.state != cairn_types::SandboxState::Paused {
            return Ok(false);
        }
        let id = r.id.to_string();
        let sid = id.clone();
        if !self.db(move |db| db.sandbox_auto_resume(&sid)).await? {
            return Ok(false);
        }
        let who = account.to_string();
        self.run_to_end(move |e| async move { e.resume_sandbox(&who, &id).await })
            .await?;
        Ok(true)
    }

    /// Destroys, or pauses, the sandboxes whose timeout ran out. A paused one has no timeout
    /// until it is given one again (E2B's connect does).
    pub(crate) async fn kill_due(self: &std::sync::Arc<Self>) {
        let now = Utc::now().timestamp();
        let Ok(due) = self.db(move |db| db.sandboxes_due(now)).await else {
            return;
        };
        for (id, account, pause, release_memory) in due {
            if pause {
                let paused = match self.inspect_sandbox(&account, &id).await {
                    Ok(info) if info.state == cairn_types::SandboxState::Paused => Ok(()),
                    _ => self
                        .pause_sandbox(&account, &id, release_memory)
                        .await
                        .map(drop),
                };
                match paused {
                    Ok(()) => {
                        let sid = id.clone();
                        let _ = self.db(move |db| db.set_sandbox_kill_at(&sid, None)).await;
                        tracing::info!(sandbox = id, "sandbox paused: its timeout ran out");
                    }
                    Err(e) => {
                        tracing::warn!(sandbox = id, error = %e, "cannot pause a sandbox whose timeout ran out")
                    }
                }
                continue;
            }
            match self.destroy_sandbox(&account, &id, true, false).await {
                Ok(()) => tracing::info!(sandbox = id, "sandbox killed: its timeout ran out"),
                Err(e) => {
                    tracing::warn!(sandbox = id, error = %e, "cannot kill a sandbox whose timeout ran out")
                }
            }
        }
    }
}
