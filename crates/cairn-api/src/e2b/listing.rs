//! E2B's sandbox listing: `GET /v2/sandboxes` (`Sandbox.list`), a page at a time, and the
//! older `GET /sandboxes`, all at once. Filters: `metadata`, `state`, `template`,
//! `startedAfter`; `order` (by start time, `asc` by default).
//!
//! A page holds at most `limit` sandboxes (1 to 100; 100 when not given); when more follow,
//! the `x-next-token` header carries where the next page starts: an opaque token that names
//! a position (a start time and a sandbox id) in the caller's own ordered listing, and
//! nothing else. It is read again only against the same account's sandboxes, so a token
//! made up or taken from another account cannot show anything but the caller's own.
//!
//! Not for: a sandbox's own details (`GET /sandboxes/{id}`, in the module above).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::Value;

use cairn_types::api::SandboxInfo;
use cairn_types::SandboxState;

use super::{listed, ApiKey, E2bResult};
use crate::{ApiError, AppState};

/// A page's size when the request gives none, and the most it may ask for (E2B's).
const PAGE_MAX: usize = 100;

/// Undoes `%XX` escapes (and `+` for a space) until nothing changes (the SDK escapes a
/// metadata filter's keys and values twice).
fn unescape(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut cur = text.to_string();
    for _ in 0..3 {
        let bytes = cur.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let escaped = (bytes[i] == b'%')
                .then(|| Some(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?))
                .flatten();
            match (escaped, bytes[i]) {
                (Some(b), _) => {
                    out.push(u8::try_from(b).unwrap_or(b'?'));
                    i += 3;
                }
                (None, b'+') => {
                    out.push(b' ');
                    i += 1;
                }
                (None, b) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        let next = String::from_utf8_lossy(&out).into_owned();
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// The pairs of a `metadata` filter: `k1=v1&k2=v2`.
fn metadata_filter(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

/// Where a page starts: after this sandbox, in the listing's order.
#[derive(Debug, PartialEq, Eq)]
struct Position {
    started_micros: i64,
    id: String,
}

impl Position {
    fn of(info: &SandboxInfo) -> Position {
        Position {
            started_micros: info.created_at.timestamp_micros(),
            id: info.id.clone(),
        }
    }

    fn token(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("v1.{}.{}", self.started_micros, self.id))
    }

    fn parse(token: &str) -> Result<Position, ApiError> {
        let bad = || {
            ApiError::invalid(
                "nextToken is not one this listing gave: list again without it, then pass each page's x-next-token",
            )
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = text.splitn(3, '.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("v1"), Some(t), Some(id)) if !id.is_empty() && id.len() <= 128 => Ok(Position {
                started_micros: t.parse().map_err(|_| bad())?,
                id: id.to_string(),
            }),
            _ => Err(bad()),
        }
    }

    /// The listing's order: by start time, then id.
    fn key(&self) -> (i64, &str) {
        (self.started_micros, &self.id)
    }
}

/// What a listing asks for.
struct Listing {
    metadata: Vec<(String, String)>,
    states: Vec<String>,
    template: Option<String>,
    started_after: Option<DateTime<Utc>>,
    descending: bool,
    limit: usize,
    after: Option<Position>,
}

impl Listing {
    fn parse(q: &HashMap<String, String>, paged: bool) -> Result<Listing, ApiError> {
        let descending = match q.get("order").map(String::as_str) {
            None | Some("" | "asc") => false,
            Some("desc") => true,
            Some(o) => {
                return Err(ApiError::invalid(format!(
                    "order {o:?} is neither asc nor desc"
                )))
            }
        };
        let limit = match q.get("limit") {
            Some(l) if paged => match l.parse::<usize>() {
                Ok(n) if (1..=PAGE_MAX).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid(format!(
                        "limit {l:?} is not a number from 1 to {PAGE_MAX}"
                    )))
                }
            },
            _ if paged => PAGE_MAX,
            _ => usize::MAX,
        };
        let started_after = match q.get("startedAfter") {
            None => None,
            Some(t) => Some(
                DateTime::parse_from_rfc3339(&t.replace(' ', "+"))
                    .map_err(|_| {
                        ApiError::invalid(format!(
                            "startedAfter {t:?} is not an RFC 3339 time (2026-01-31T12:00:00Z)"
                        ))
                    })?
                    .with_timezone(&Utc),
            ),
        };
        Ok(Listing {
            metadata: q
                .get("metadata")
                .map(|m| metadata_filter(m))
                .unwrap_or_default(),
            states: q
                .get("state")
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_else(|| vec!["running".into(), "paused".into()]),
            template: q.get("template").filter(|t| !t.is_empty()).cloned(),
            started_after,
            descending,
            limit,
            after: match q.get("nextToken").filter(|t| !t.is_empty()) {
                Some(t) if paged => Some(Position::parse(t)?),
                _ => None,
            },
        })
    }

    /// Whether `info` is past the page's start and matches the filters that need no lookup.
    fn wants(&self, info: &SandboxInfo) -> bool {
        let me = Position::of(info);
        let past = self.after.as_ref().is_none_or(|a| {
            if self.descending {
                me.key() < a.key()
            } else {
                me.key() > a.key()
            }
        });
        past && matches!(info.state, SandboxState::Running | SandboxState::Paused)
            && self.template.as_ref().is_none_or(|t| *t == info.image)
            && self.started_after.is_none_or(|t| info.created_at > t)
    }
}

/// The query's parameters, a repeated `state` (as the JS SDK sends it: `state=a&state=b`)
/// joined with commas (as the Python SDK sends it: `state=a,b`); otherwise the last wins.
fn query_of(pairs: Vec<(String, String)>) -> HashMap<String, String> {
    let mut q: HashMap<String, String> = HashMap::new();
    for (k, v) in pairs {
        match q.get_mut(&k) {
            Some(have) if k == "state" => {
                have.push(',');
                have.push_str(&v);
            }
            _ => {
                q.insert(k, v);
            }
        }
    }
    q
}

/// `GET /v2/sandboxes`: a page of the caller's sandboxes, and `x-next-token` when more follow.
pub(super) async fn list(
    st: State<AppState>,
    key: ApiKey,
    q: Query<Vec<(String, String)>>,
) -> E2bResult<Response> {
    answer(st, key, q, true).await
}

/// `GET /sandboxes` (the older listing): all of the caller's sandboxes at once.
pub(super) async fn list_all(
    st: State<AppState>,
    key: ApiKey,
    q: Query<Vec<(String, String)>>,
) -> E2bResult<Response> {
    answer(st, key, q, false).await
}

async fn answer(
    State(st): State<AppState>,
    ApiKey(account): ApiKey,
    Query(pairs): Query<Vec<(String, String)>>,
    paged: bool,
) -> E2bResult<Response> {
    let want = Listing::parse(&query_of(pairs), paged)?;
    let mut all = st.engine.list_sandboxes(&account).await?;
    all.retain(|s| want.wants(s));
    all.sort_by(|a, b| Position::of(a).key().cmp(&Position::of(b).key()));
    if want.descending {
        all.reverse();
    }
    let mut out: Vec<Value> = Vec::new();
    let (mut last, mut more) = (None, false);
    for s in &all {
        let v = listed(&st, &account, s).await?;
        let state_ok = v["state"]
            .as_str()
            .is_some_and(|st| want.states.iter().any(|w| w == st));
        let meta_ok = want
            .metadata
            .iter()
            .all(|(k, val)| v["metadata"][k].as_str() == Some(val.as_str()));
        if !(state_ok && meta_ok) {
            continue;
        }
        if out.len() == want.limit {
            more = true;
            break;
        }
        out.push(v);
        last = Some(Position::of(s));
    }
    let mut resp = Json(out).into_response();
    // More match: the next page starts after the last sandbox of this one.
    if let Some(last) = last.filter(|_| more) {
        if let Ok(v) = HeaderValue::from_str(&last.token()) {
            resp.headers_mut().insert("x-next-token", v);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_filters_are_unescaped_pairs() {
        assert_eq!(
            metadata_filter("team=a%2520b&run=7"),
            vec![("team".into(), "a b".into()), ("run".into(), "7".into())]
        );
        assert_eq!(unescape("%zz%4"), "%zz%4");
        assert_eq!(unescape("%C3%A9"), "é");
    }

    #[test]
    fn a_repeated_state_is_every_state_it_names() {
        let pairs = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let q = query_of(pairs(&[
            ("state", "running"),
            ("state", "paused"),
            ("limit", "2"),
        ]));
        assert_eq!(q["state"], "running,paused");
        assert_eq!(q["limit"], "2");
    }

    #[test]
    fn page_tokens_name_a_position_and_nothing_else() {
        let p = Position {
            started_micros: 1_700_000_000_123_456,
            id: "sbx-7f3a9c2e".into(),
        };
        assert_eq!(Position::parse(&p.token()).unwrap(), p);
        for bad in ["", "!!", "djEuMS4", "eDEuMS5zYngtMQ", &"A".repeat(400)] {
            assert!(Position::parse(bad).is_err(), "{bad}");
        }
    }
}
