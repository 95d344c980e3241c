//! The console's login for a local operator, who has the unix socket but no browser path to
//! it: `POST /ui/login` on the unix socket mints a login code (random, 128 bits) that works
//! once, for 10 minutes; the page at `URL/ui#code=…` on the TCP listener exchanges it
//! (`POST /ui/session`, no token) for a bearer token of the caller's account that stops working
//! after 8 hours. That token is never an operator's (`admin`) one, even for the unix socket's
//! operator: the console needs no host paths, and a browser's storage is no place for them. Codes live in memory only, as their SHA-256: a restart of
//! cairnd forgets them, and nothing on disk could be replayed.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::json::ApiJson;
use crate::{hash_token, new_token, ApiError, AppState, AuthMode, Caller};

/// How long a login code works, in seconds.
const CODE_LIFE_SECS: u16 = 10 * 60;
/// How long the token a code is exchanged for works.
const TOKEN_LIFE_SECS: i64 = 8 * 3600;
/// Most codes waiting at once (the oldest go first).
const MAX_CODES: usize = 1000;

/// A code waiting to be exchanged: for whom, until when.
struct Pending {
    account: String,
    expires: Instant,
}

/// The waiting codes, by hash; shared by the unix socket's app and the TCP listener's.
fn codes() -> &'static Mutex<HashMap<String, Pending>> {
    static CODES: OnceLock<Mutex<HashMap<String, Pending>>> = OnceLock::new();
    CODES.get_or_init(Default::default)
}

/// The answer to `POST /ui/login`.
#[derive(Serialize)]
pub(crate) struct LoginCode {
    /// The code (`cl_` and 32 hex digits).
    code: String,
    /// The console's URL on the TCP listener, with the code in its fragment.
    url: String,
    /// When the code stops working.
    expires_at: DateTime<Utc>,
}

/// `POST /ui/session`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionRequest {
    /// A code from `POST /ui/login`.
    code: String,
}

/// The answer to `POST /ui/session`.
#[derive(Serialize)]
pub(crate) struct Session {
    /// A bearer token (`ck_…`).
    token: String,
    /// The account it acts for.
    account: String,
    /// When it stops working.
    expires_at: DateTime<Utc>,
}

/// `POST /ui/login`: a login code for the caller, on the unix socket only.
pub(crate) async fn create(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<LoginCode>), ApiError> {
    if st.auth != AuthMode::LocalSocket {
        return Err(ApiError::new(
            cairn_types::ErrorCode::Forbidden,
            "login codes are made on cairnd's unix socket ('cairn ui' on its host); over TCP, paste your token into the console's token field",
        ));
    }
    let Some(base) = st.engine.link_base() else {
        return Err(ApiError::new(
            cairn_types::ErrorCode::Unavailable,
            "cairnd has no TCP listener, so a browser cannot reach the console: restart it with '--listen 127.0.0.1:7421' (and '--public-url URL' if browsers reach it by another address)",
        ));
    };
    let bytes: [u8; 16] = rand::random();
    let code = format!("cl_{}", hex::encode(bytes));
    let now = Instant::now();
    {
        let mut codes = codes().lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|_, p| p.expires > now);
        while codes.len() >= MAX_CODES {
            let oldest = codes
                .iter()
                .min_by_key(|(_, p)| p.expires)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => codes.remove(&k),
                None => break,
            };
        }
        codes.insert(
            hash_token(&code),
            Pending {
                account: caller.account,
                expires: now + Duration::from_secs(CODE_LIFE_SECS.into()),
            },
        );
    }
    let expires_at = Utc::now() + chrono::Duration::seconds(CODE_LIFE_SECS.into());
    Ok((
        StatusCode::CREATED,
        Json(LoginCode {
            url: format!("{}/ui#code={code}", base.trim_end_matches('/')),
            code,
            expires_at,
        }),
    ))
}

/// `POST /ui/session`: exchange a login code, once, for a short-lived token. No token needed.
pub(crate) async fn exchange(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let pending = codes()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&hash_token(req.code.trim()))
        .filter(|p| p.expires > Instant::now());
    let Some(p) = pending else {
        return Err(ApiError::unauthenticated(
            "this login code is unknown, used or expired (a code works once, for 10 minutes): run 'cairn ui' on cairnd's host for a new one, or paste a token",
        ));
    };
    let (token, hash) = new_token();
    let expires_at = Utc::now() + chrono::Duration::seconds(TOKEN_LIFE_SECS);
    let record = st
        .engine
        .add_token(&p.account, &hash, false, expires_at)
        .await?;
    tracing::info!(token = %record.id, account = %record.account, "console login");
    Ok((
        StatusCode::CREATED,
        Json(Session {
            token,
            account: record.account,
            expires_at,
        }),
    ))
}
