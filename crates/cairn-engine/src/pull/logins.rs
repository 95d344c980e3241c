//! An account's registry credentials (`cairn image login HOST`): sealed with the secrets
//! key (ChaCha20-Poly1305, bound to the account and host) in the database, opened only to
//! answer that registry's authentication challenge during that account's pulls. No API
//! returns them, no log or error message holds them, and snapshots never see them (they
//! live in no sandbox).

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::Nonce;

use super::client::Credentials;
use super::reference::check_host;
use crate::secrets::cipher;
use crate::{Engine, EngineError, Result};

/// The first bytes of a sealed login (version 1: nonce then ciphertext).
const MAGIC: &[u8; 4] = b"CRL1";
const NONCE_LEN: usize = 12;
/// Longest user name or password accepted.
const MAX_CREDENTIAL_LEN: usize = 4096;

fn aad(account: &str, host: &str) -> Vec<u8> {
    format!("cairn-registry-login-v1\n{account}\n{host}").into_bytes()
}

fn checked_host(host: &str) -> Result<()> {
    check_host(host).map_err(|why| {
        EngineError::InvalidArgument(format!(
            "'{}' is not a registry host ({why}): give HOST or HOST:PORT as references write it, e.g. registry.example.com or 10.0.0.7:5000",
            host.chars().take(100).collect::<String>()
        ))
    })
}

impl Engine {
    /// Stores `account`'s credentials for registry `host` (`host[:port]`), replacing any.
    pub async fn registry_login(
        &self,
        account: &str,
        host: &str,
        user: &str,
        password: &str,
    ) -> Result<()> {
        checked_host(host)?;
        if user.is_empty() || user.len() > MAX_CREDENTIAL_LEN || user.contains(':') {
            return Err(EngineError::InvalidArgument(
                "the user name must be 1 to 4096 characters without ':'".into(),
            ));
        }
        if password.is_empty() || password.len() > MAX_CREDENTIAL_LEN {
            return Err(EngineError::InvalidArgument(
                "the password must be 1 to 4096 characters (give it on stdin: --password-stdin)"
                    .into(),
            ));
        }
        let plain = serde_json::to_vec(&(user, password))
            .map_err(|e| EngineError::Internal(format!("cannot encode a login: {e}")))?;
        let c = cipher(&self.cfg.home)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let sealed = c
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad(account, host),
                },
            )
            .map_err(|_| EngineError::Internal("cannot seal a registry login".into()))?;
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        let (a, h) = (account.to_string(), host.to_string());
        self.db(move |db| db.set_registry_login(&a, &h, &blob))
            .await?;
        tracing::info!(account, host, "registry login stored");
        Ok(())
    }

    /// Forgets `account`'s credentials for `host`.
    pub async fn registry_logout(&self, account: &str, host: &str) -> Result<()> {
        checked_host(host)?;
        let (a, h) = (account.to_string(), host.to_string());
        if !self.db(move |db| db.remove_registry_login(&a, &h)).await? {
            return Err(EngineError::NotFound(format!(
                "you are not logged in to {host}: log in with 'cairn image login {host} -u USER --password-stdin'"
            )));
        }
        tracing::info!(account, host, "registry login removed");
        Ok(())
    }

    /// `account`'s credentials for `host`, if it logged in.
    pub(crate) async fn registry_credentials(
        &self,
        account: &str,
        host: &str,
    ) -> Result<Option<Credentials>> {
        let (a, h) = (account.to_string(), host.to_string());
        let Some(blob) = self.db(move |db| db.registry_login(&a, &h)).await? else {
            return Ok(None);
        };
        let broken = || {
            EngineError::Internal(
                "a sealed registry login that does not open (another secrets.key?)".into(),
            )
        };
        let rest = blob.strip_prefix(MAGIC.as_slice()).ok_or_else(broken)?;
        if rest.len() < NONCE_LEN {
            return Err(broken());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let plain = cipher(&self.cfg.home)?
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad(account, host),
                },
            )
            .map_err(|_| broken())?;
        let (user, password): (String, String) =
            serde_json::from_slice(&plain).map_err(|_| broken())?;
        Ok(Some(Credentials { user, password }))
    }
}
