//! Sandboxes' secrets on cairnd's side: sealed at rest and handed to the agent only.
//!
//! A sandbox's secrets are stored in the database sealed with ChaCha20-Poly1305 under a key
//! only cairnd holds (`secrets.key` in the data directory, 0600, made at the first start),
//! with the owning account as associated data; the database also keeps their names, which
//! `inspect` shows. A snapshot gets a sealed copy of its sandbox's (so that its forks get
//! them again, over which a fork's request may give others); the snapshot's files and
//! memory never hold them: the agent writes them into a tmpfs and removes them (and its
//! own copies) before every checkpoint, and cairnd gives them back in `init` after it
//! (docs/agent.md). Values are never logged, nor part of an error message.
//!
//! Not for: what the agent does with them (crates/cairn-agent).

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use cairn_types::Secrets;

use crate::{Engine, EngineError, Result};

/// The key's file in the data directory.
const KEY_FILE: &str = "secrets.key";
/// The first bytes of a sealed blob: its format (version 1: nonce then ciphertext).
const MAGIC: &[u8; 4] = b"CSS1";
/// Bytes of a ChaCha20-Poly1305 nonce.
const NONCE_LEN: usize = 12;

/// Makes the data directory's secrets key if it has none: 32 random bytes, 0600, written
/// to a temporary name, synced, renamed.
pub(crate) fn ensure_key(home: &Path) -> std::io::Result<()> {
    crate::keyfile::ensure(home, KEY_FILE)
}

pub(crate) fn cipher(home: &Path) -> Result<ChaCha20Poly1305> {
    let key = std::fs::read(home.join(KEY_FILE))
        .map_err(|e| EngineError::failed("cannot read the secrets key", e))?;
    if key.len() != 32 {
        return Err(EngineError::Internal(
            "the secrets key is not 32 bytes".into(),
        ));
    }
    Ok(ChaCha20Poly1305::new(Key::from_slice(&key)))
}

/// What the seal binds a blob to: it opens only for the same account.
fn aad(account: &str) -> Vec<u8> {
    format!("cairn-secrets-v1\n{account}").into_bytes()
}

/// `secrets` sealed for `account`.
fn seal(c: &ChaCha20Poly1305, account: &str, secrets: &Secrets) -> Result<Vec<u8>> {
    let plain = serde_json::to_vec(&secrets.0)
        .map_err(|e| EngineError::Internal(format!("cannot encode secrets: {e}")))?;
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce);
    let sealed = c
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad(account),
            },
        )
        .map_err(|_| EngineError::Internal("cannot seal secrets".into()))?;
    let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The secrets in `blob`, sealed for `account`.
fn open(c: &ChaCha20Poly1305, account: &str, blob: &[u8]) -> Result<Secrets> {
    let broken =
        || EngineError::Internal("sealed secrets that do not open (another secrets.key?)".into());
    let rest = blob.strip_prefix(MAGIC.as_slice()).ok_or_else(broken)?;
    if rest.len() < NONCE_LEN {
        return Err(broken());
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let plain = c
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: sealed,
                aad: &aad(account),
            },
        )
        .map_err(|_| broken())?;
    serde_json::from_slice(&plain)
        .map(Secrets)
        .map_err(|_| broken())
}

impl Engine {
    /// Checks secrets a request gives (names, limits), and that this cairnd can deliver
    /// them (only the agent does).
    pub(crate) fn check_secrets(&self, secrets: &Secrets) -> Result<()> {
        secrets.validate().map_err(EngineError::InvalidArgument)?;
        if !secrets.is_empty() {
            if let Err(why) = &self.agent_binary {
                return Err(EngineError::Unavailable(format!(
                    "secrets are delivered by the agent inside the sandbox, which this cairnd cannot run ({why}): ask the operator to install it, or create the sandbox without secrets"
                )));
            }
        }
        Ok(())
    }

    /// The secrets of `owner` (a sandbox or snapshot of `account`): none when it has none.
    pub(crate) async fn secrets_of(&self, account: &str, owner: &str) -> Result<Secrets> {
        let who = owner.to_string();
        let Some(blob) = self.db(move |db| db.sealed_secrets(&who)).await? else {
            return Ok(Secrets::default());
        };
        let home = self.cfg.home.clone();
        let account = account.to_string();
        tokio::task::spawn_blocking(move || open(&cipher(&home)?, &account, &blob))
            .await
            .map_err(|e| EngineError::failed("the secrets' task ended abnormally", e))?
    }

    /// Stores `secrets` as `owner`'s (sealed), or removes its secrets when there are none.
    pub(crate) async fn store_secrets(
        &self,
        account: &str,
        owner: &str,
        secrets: &Secrets,
    ) -> Result<()> {
        let owner = owner.to_string();
        if secrets.is_empty() {
            return Ok(self.db(move |db| db.set_secrets(&owner, None)).await?);
        }
        let names = secrets.names();
        let sealed = seal(&cipher(&self.cfg.home)?, account, secrets)?;
        Ok(self
            .db(move |db| db.set_secrets(&owner, Some((&names, &sealed))))
            .await?)
    }

    /// Checks an exec's `secret_env` against sandbox `r`'s secrets (`agent`: whether it runs
    /// the agent, which alone can add them).
    pub(crate) async fn check_secret_env(
        &self,
        r: &cairn_db::SandboxRecord,
        agent: bool,
        names: &[String],
    ) -> Result<()> {
        if names.len() > cairn_types::MAX_SECRETS {
            return Err(EngineError::InvalidArgument(format!(
                "{} secret names is over the limit of {}",
                names.len(),
                cairn_types::MAX_SECRETS
            )));
        }
        for name in names {
            cairn_types::validate_secret_name(name).map_err(EngineError::InvalidArgument)?;
        }
        if !agent {
            return Err(EngineError::Conflict(format!(
                "--secret-env needs the agent, which sandbox {} does not run (see 'cairn inspect {}'): start it again ('cairn stop' then 'cairn start') on a cairnd that has the agent",
                r.id, r.id
            )));
        }
        let held = self.secret_names(r.id.as_str()).await;
        if let Some(missing) = names.iter().find(|n| !held.contains(n)) {
            return Err(EngineError::InvalidArgument(format!(
                "sandbox {} has no secret {missing}: its secrets are [{}] (give secrets with 'cairn up --secret NAME=VALUE')",
                r.id,
                held.join(", ")
            )));
        }
        Ok(())
    }

    /// The names of `owner`'s secrets (none when they cannot be read: this is for display).
    pub(crate) async fn secret_names(&self, owner: &str) -> Vec<String> {
        let who = owner.to_string();
        self.db(move |db| db.secret_names(&who))
            .await
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets(
            [("API_KEY".to_string(), "s3cr3t-value".to_string())]
                .into_iter()
                .collect(),
        )
    }

    #[test]
    fn sealed_secrets_open_only_for_their_account_and_never_show_the_value() {
        let dir = tempfile::tempdir().unwrap();
        ensure_key(dir.path()).unwrap();
        let mode = std::os::unix::fs::MetadataExt::mode(
            &std::fs::metadata(dir.path().join(KEY_FILE)).unwrap(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let c = cipher(dir.path()).unwrap();
        let blob = seal(&c, "alice", &secrets()).unwrap();
        assert!(!blob.windows(12).any(|w| w == b"s3cr3t-value"));
        assert_eq!(open(&c, "alice", &blob).unwrap(), secrets());
        assert!(open(&c, "bob", &blob).is_err());
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(open(&c, "alice", &tampered).is_err());
        // Another key (another data directory) does not open it either.
        let other = tempfile::tempdir().unwrap();
        ensure_key(other.path()).unwrap();
        assert!(open(&cipher(other.path()).unwrap(), "alice", &blob).is_err());
        // The same secrets sealed twice differ (a fresh nonce each time).
        assert_ne!(seal(&c, "alice", &secrets()).unwrap(), blob);
    }
}
