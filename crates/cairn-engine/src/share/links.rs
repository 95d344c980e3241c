//! Signed download links: a URL on cairnd's TCP listener that downloads a snapshot's
//! archive with no token, until it expires.
//!
//! A link is `<base>/v1/links/<snapshot>.<expires>.<format>.<signature>`: the signature is
//! HMAC-SHA256, with a key only cairnd holds (`link.key` in the data directory, 0600, made
//! at the first start), over the snapshot id, the account that owns it, the expiry (Unix
//! seconds) and the format. Tampering with any part, or using it after it expired, is a
//! 403; once the snapshot is deleted it is a 403 (its row is gone) or, while it is being
//! deleted, a 404. No answer names the snapshot.
//!
//! Not for: who may ask for a link (the snapshot's account, through the API's auth).

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use cairn_types::{ProgressSink, SnapshotId, SnapshotState};

use super::archive::ArchiveFormat;
use super::export::ArchiveStream;
use crate::{Engine, EngineError, Result};

/// The key's file in the data directory.
const KEY_FILE: &str = "link.key";
/// Default and (unless cairnd says otherwise) longest life of a link: 1 hour.
pub const DEFAULT_LINK_SECS: u64 = 3600;

/// A link handed out.
#[derive(Clone, Debug)]
pub struct SnapshotLink {
    /// The URL.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// HMAC-SHA256 (RFC 2104) of `msg` under `key`.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Compares without leaking where two byte strings first differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Makes the data directory's link key if it has none: 32 random bytes, 0600, written to
/// a temporary name, synced, renamed.
pub(crate) fn ensure_key(home: &Path) -> std::io::Result<()> {
    crate::keyfile::ensure(home, KEY_FILE)
}

fn read_key(home: &Path) -> Result<Vec<u8>> {
    let key = std::fs::read(home.join(KEY_FILE))
        .map_err(|e| EngineError::failed("cannot read the link key", e))?;
    if key.len() < 32 {
        return Err(EngineError::Internal("the link key is too short".into()));
    }
    Ok(key)
}

fn format_code(f: ArchiveFormat) -> &'static str {
    match f {
        ArchiveFormat::TarZst => "zst",
        ArchiveFormat::TarGz => "gz",
    }
}

fn signature(key: &[u8], snapshot: &str, account: &str, expires: i64, format: &str) -> String {
    let msg = format!("cairn-link-v1\n{snapshot}\n{account}\n{expires}\n{format}");
    hex_of(&hmac_sha256(key, msg.as_bytes()))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn invalid() -> EngineError {
    EngineError::Forbidden(
        "this download link is not valid (it was altered or not made by this cairnd): ask for a new one with 'cairn snapshot url'".into(),
    )
}

/// The access token of sandbox `sandbox` of `account` for the E2B-compatible in-sandbox API
/// (`envdAccessToken`): the account in hex, a dot, and the HMAC of both under the link key.
fn envd_token(key: &[u8], account: &str, sandbox: &str) -> String {
    let msg = format!("cairn-envd-v1\n{sandbox}\n{account}");
    format!(
        "{}.{}",
        hex_of(account.as_bytes()),
        hex_of(&hmac_sha256(key, msg.as_bytes()))
    )
}

impl Engine {
    /// The access token of `account`'s sandbox `sandbox` for the E2B-compatible in-sandbox
    /// API: whoever holds it may run commands and read and write files in that sandbox.
    pub fn sandbox_access_token(&self, account: &str, sandbox: &str) -> Result<String> {
        let key = read_key(&self.cfg.home)?;
        Ok(envd_token(&key, account, sandbox))
    }

    /// The account whose access token for sandbox `sandbox` `token` is; `None` when it is
    /// not one this cairnd made.
    pub fn sandbox_token_account(&self, sandbox: &str, token: &str) -> Option<String> {
        let key = read_key(&self.cfg.home).ok()?;
        let (hex, _) = token.split_once('.')?;
        if hex.len() > 256 || hex.len() % 2 != 0 {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
            .collect();
        let account = String::from_utf8(bytes?).ok()?;
        same(
            envd_token(&key, &account, sandbox).as_bytes(),
            token.as_bytes(),
        )
        .then_some(account)
    }

    /// How long a link asked for lives: `secs`, or the default; 1 second to cairnd's
    /// maximum.
    pub(crate) fn link_secs(&self, secs: Option<u64>) -> Result<u64> {
        let max = self.cfg.max_link_secs;
        let secs = secs.unwrap_or(max.min(DEFAULT_LINK_SECS));
        if secs == 0 || secs > max {
            return Err(EngineError::InvalidArgument(format!(
                "a link lives from 1 second to {max} seconds on this host (cairnd --max-link-expiry)"
            )));
        }
        Ok(secs)
    }

    /// Snapshot `reference` of `account`, when it is ready to be downloaded.
    pub(crate) async fn linkable_snapshot(
        &self,
        account: &str,
        reference: &str,
    ) -> Result<cairn_db::SnapshotRecord> {
        let snap = self.find_snapshot(account, reference).await?;
        if snap.state != SnapshotState::Ready {
            return Err(EngineError::Conflict(format!(
                "snapshot {} is {}: only a ready snapshot can be downloaded",
                snap.id, snap.state
            )));
        }
        Ok(snap)
    }

    /// A link that downloads snapshot `reference` of `account` for `secs` seconds (default
    /// and most: cairnd's maximum, 1 hour unless configured).
    pub async fn snapshot_link(
        &self,
        account: &str,
        reference: &str,
        secs: Option<u64>,
        format: ArchiveFormat,
    ) -> Result<SnapshotLink> {
        let secs = self.link_secs(secs)?;
        let snap = self.linkable_snapshot(account, reference).await?;
        let Some(base) = self.cfg.link_base.as_deref() else {
            return Err(EngineError::Unavailable(
                "download links are served on cairnd's TCP listener, and this cairnd has none: start it with --listen ADDR (and --public-url if clients reach it by another address)".into(),
            ));
        };
        let key = read_key(&self.cfg.home)?;
        let expires_at = Utc::now() + chrono::Duration::seconds(i64::try_from(secs).unwrap_or(0));
        let expires = expires_at.timestamp();
        let code = format_code(format);
        let sig = signature(&key, snap.id.as_str(), account, expires, code);
        Ok(SnapshotLink {
            url: format!(
                "{}/v1/links/{}.{expires}.{code}.{sig}",
                base.trim_end_matches('/'),
                snap.id
            ),
            expires_at,
        })
    }

    /// The archive a link downloads, once its signature, expiry and snapshot check out;
    /// with the snapshot's id (for the file name).
    pub async fn open_link(
        self: &Arc<Self>,
        token: &str,
    ) -> Result<(ArchiveStream, ArchiveFormat, String)> {
        let parts: Vec<&str> = token.split('.').collect();
        let [id, expires, code, sig] = parts[..] else {
            return Err(invalid());
        };
        let (Ok(id), Ok(expires)) = (id.parse::<SnapshotId>(), expires.parse::<i64>()) else {
            return Err(invalid());
        };
        let format = match code {
            "zst" => ArchiveFormat::TarZst,
            "gz" => ArchiveFormat::TarGz,
            _ => return Err(invalid()),
        };
        let key = read_key(&self.cfg.home)?;
        let row = id.clone();
        let snap = self.db(move |db| db.snapshot(&row)).await?;
        // Checked against the account of the snapshot the id names; an id no row has (a
        // deleted snapshot's, or a guess) gets the answer a forged link gets.
        let account = snap.as_ref().map(|s| s.account.clone()).unwrap_or_default();
        let want = signature(&key, id.as_str(), &account, expires, code);
        let gone = || {
            EngineError::NotFound(
                "this download link leads nowhere: the snapshot it was made for was deleted".into(),
            )
        };
        let Some(snap) = snap else {
            return Err(invalid());
        };
        if !same(want.as_bytes(), sig.as_bytes()) {
            return Err(invalid());
        }
        if Utc::now().timestamp() > expires {
            return Err(EngineError::Forbidden(
                "this download link has expired: ask for a new one with 'cairn snapshot url'"
                    .into(),
            ));
        }
        if snap.state != SnapshotState::Ready {
            return Err(gone());
        }
        let stream = self
            .export_snapshot(
                &snap.account,
                snap.id.as_str(),
                format,
                ProgressSink::none(),
            )
            .await
            .map_err(|e| match e {
                EngineError::NotFound(_) | EngineError::Conflict(_) => gone(),
                other => other,
            })?;
        Ok((stream, format, snap.id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex_of(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hex_of(&hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_signature_covers_every_part() {
        let key = [7u8; 32];
        let s = signature(&key, "snap-00000001", "alice", 100, "zst");
        assert_ne!(s, signature(&key, "snap-00000002", "alice", 100, "zst"));
        assert_ne!(s, signature(&key, "snap-00000001", "bob", 100, "zst"));
        assert_ne!(s, signature(&key, "snap-00000001", "alice", 101, "zst"));
        assert_ne!(s, signature(&key, "snap-00000001", "alice", 100, "gz"));
        assert!(same(s.as_bytes(), s.as_bytes()));
        assert!(!same(b"ab", b"ac"));
    }

    #[test]
    fn the_key_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        ensure_key(dir.path()).expect("key");
        let key = std::fs::read(dir.path().join(KEY_FILE)).expect("read");
        ensure_key(dir.path()).expect("again");
        assert_eq!(std::fs::read(dir.path().join(KEY_FILE)).expect("read"), key);
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("md")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
