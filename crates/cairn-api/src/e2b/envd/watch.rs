//! envd's filesystem watchers: `CreateWatcher`, `GetWatcherEvents` and `RemoveWatcher` (what
//! the Python SDK's `files.watch_dir` uses) and the `WatchDir` server stream (the JS SDK's).
//!
//! A watcher polls the directory's listing through Cairn's files layer every [`POLL`] and
//! compares it with the last one: a new path is a `create`, a path gone a `remove`, a changed
//! size or modification time a `write`, changed permissions a `chmod`, and a path gone where
//! one of the same kind, size, time and mode appeared a `rename` (as inotify says a move: the
//! old name renamed, the new one created; a change within the same second that keeps the
//! size is not seen). Bounded: at most [`PER_SANDBOX`] watchers a sandbox, at most
//! [`ENTRIES_MAX`] entries watched, at most [`EVENTS_MAX`] events kept between two reads
//! (the oldest go). A watcher ends when it is removed, when its stream closes, when nobody
//! has read it for [`UNREAD_MAX`], or when its sandbox cannot be listed any more (destroyed).
//!
//! Not for: the other filesystem calls (see the module above).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

use cairn_engine::FilesOf;
use cairn_types::api::FileEntry;
use cairn_types::ErrorCode;

use super::{entry_info, envelope, message, Sandbox};
use crate::e2b::E2bResult;
use crate::{ApiError, AppState};

/// One message of the `WatchDir` stream.
fn event_of(e: Value) -> Vec<u8> {
    envelope(0, &e)
}

/// How often a watcher lists its directory.
const POLL: Duration = Duration::from_millis(300);

/// The most watchers a sandbox has at once.
pub(super) const PER_SANDBOX: usize = 8;

/// The most entries a watcher watches (a recursive watch of a large tree is refused).
pub(super) const ENTRIES_MAX: usize = 5_000;

/// The most events kept for a watcher between two reads.
pub(super) const EVENTS_MAX: usize = 1024;

/// How long a watcher nobody reads lives on.
const UNREAD_MAX: Duration = Duration::from_secs(600);

/// What a watcher has seen of a file: its kind, size, modification time and mode.
type Seen = HashMap<String, (String, u64, i64, u32)>;

struct Watcher {
    sandbox: String,
    events: VecDeque<Value>,
    /// Why it ended (it then only answers this).
    ended: Option<String>,
    read_at: Instant,
    wake: Arc<Notify>,
}

#[derive(Default)]
struct Watchers(HashMap<String, Watcher>);

fn watchers() -> MutexGuard<'static, Watchers> {
    static WATCHERS: OnceLock<Mutex<Watchers>> = OnceLock::new();
    WATCHERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct WatchRequest {
    path: String,
    recursive: bool,
    include_entry: bool,
    watcher_id: String,
}

/// The changes from `old` to `new`, as envd's `FilesystemEvent`s, named relative to `root`.
fn changes(
    root: &str,
    old: &Seen,
    new: &Seen,
    entries: &HashMap<String, FileEntry>,
    with_entry: bool,
) -> Vec<Value> {
    let name = |path: &str| {
        path.strip_prefix(root)
            .unwrap_or(path)
            .trim_start_matches('/')
            .to_string()
    };
    let mut out = Vec::new();
    let mut paths: Vec<&String> = new.keys().chain(old.keys()).collect();
    paths.sort();
    paths.dedup();
    // What appeared: a path gone with the same kind, size, time and mode moved there (as
    // inotify says it: a rename of the old name, a create of the new).
    let mut appeared: HashMap<&(String, u64, i64, u32), usize> = HashMap::new();
    for (path, seen) in new {
        if !old.contains_key(path) {
            *appeared.entry(seen).or_default() += 1;
        }
    }
    for path in paths {
        let kind = match (old.get(path), new.get(path)) {
            (None, Some(_)) => "EVENT_TYPE_CREATE",
            (Some(a), None) => match appeared.get_mut(a) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    "EVENT_TYPE_RENAME"
                }
                _ => "EVENT_TYPE_REMOVE",
            },
            (Some(a), Some(b)) if a.0 != b.0 || a.1 != b.1 || a.2 != b.2 => "EVENT_TYPE_WRITE",
            (Some(a), Some(b)) if a.3 != b.3 => "EVENT_TYPE_CHMOD",
            _ => continue,
        };
        let mut ev = json!({"name": name(path), "type": kind});
        if with_entry {
            if let Some(e) = entries.get(path.as_str()) {
                ev["entry"] = entry_info(e, &Default::default());
            }
        }
        out.push(ev);
    }
    out
}

/// The directory's entries now, or why it cannot be watched.
async fn list(
    st: &AppState,
    sandbox: &Sandbox,
    path: &str,
    recursive: bool,
) -> Result<Vec<FileEntry>, ApiError> {
    let depth = if recursive {
        cairn_engine::MAX_LIST_DEPTH
    } else {
        1
    };
    let entries = st
        .engine
        .file_list(&sandbox.account, FilesOf::Sandbox(&sandbox.id), path, depth)
        .await?;
    if entries.len() > ENTRIES_MAX {
        return Err(ApiError::new(
            ErrorCode::LimitExceeded,
            format!("{path} holds over {ENTRIES_MAX} entries, the most a watcher watches: watch a smaller directory, or without recursive"),
        ));
    }
    Ok(entries)
}

fn seen(entries: Vec<FileEntry>) -> (Seen, HashMap<String, FileEntry>) {
    let seen = entries
        .iter()
        .map(|e| (e.path.clone(), (e.kind.clone(), e.size, e.mtime, e.mode)))
        .collect();
    (
        seen,
        entries.into_iter().map(|e| (e.path.clone(), e)).collect(),
    )
}

/// Starts a watcher of `req.path` in `sandbox` (its first listing checks that it can be
/// watched): its id.
async fn start(st: &AppState, sandbox: &Sandbox, req: &WatchRequest) -> Result<String, ApiError> {
    let root = req.path.trim_end_matches('/').to_string();
    let root = if root.is_empty() {
        "/".to_string()
    } else {
        root
    };
    let stat = st
        .engine
        .file_stat(&sandbox.account, FilesOf::Sandbox(&sandbox.id), &root)
        .await?;
    if stat.kind != "directory" {
        return Err(ApiError::invalid(format!(
            "{root} is not a directory: watch a directory"
        )));
    }
    let (mut last, _) = seen(list(st, sandbox, &root, req.recursive).await?);
    let id = format!("w-{:016x}", rand::random::<u64>());
    let wake = Arc::new(Notify::new());
    {
        let mut w = watchers();
        if w.0.values().filter(|x| x.sandbox == sandbox.id).count() >= PER_SANDBOX {
            let mut e = ApiError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "sandbox {} has {PER_SANDBOX} watchers already (the most it may): stop one",
                    sandbox.id
                ),
            );
            e.status = StatusCode::TOO_MANY_REQUESTS;
            return Err(e);
        }
        w.0.insert(
            id.clone(),
            Watcher {
                sandbox: sandbox.id.clone(),
                events: VecDeque::new(),
                ended: None,
                read_at: Instant::now(),
                wake: Arc::clone(&wake),
            },
        );
    }
    let (st, who, recursive, with_entry) = (
        st.clone(),
        Sandbox {
            account: sandbox.account.clone(),
            id: sandbox.id.clone(),
        },
        req.recursive,
        req.include_entry,
    );
    let wid = id.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(POLL).await;
            {
                let mut w = watchers();
                let Some(me) = w.0.get(&wid) else { return };
                // Unread for long, or ended and its end unread as long: gone.
                if me.read_at.elapsed() > UNREAD_MAX {
                    w.0.remove(&wid);
                    return;
                }
                if me.ended.is_some() {
                    continue;
                }
            }
            let now = list(&st, &who, &root, recursive).await;
            let mut w = watchers();
            let Some(me) = w.0.get_mut(&wid) else { return };
            match now {
                Ok(entries) => {
                    let (next, by_path) = seen(entries);
                    let evs = changes(&root, &last, &next, &by_path, with_entry);
                    if !evs.is_empty() {
                        me.events.extend(evs);
                        while me.events.len() > EVENTS_MAX {
                            me.events.pop_front();
                        }
                        me.wake.notify_waiters();
                    }
                    last = next;
                }
                // Its sandbox is gone (or its directory cannot be listed any more): the
                // next read says why, and it goes then, or once unread for `UNREAD_MAX`.
                Err(e) => {
                    me.ended = Some(e.message);
                    me.wake.notify_waiters();
                }
            }
        }
    });
    Ok(id)
}

/// The watcher `id` of `sandbox`: its new events (emptied), or why it ended.
fn take(sandbox: &Sandbox, id: &str) -> Result<Vec<Value>, ApiError> {
    let mut w = watchers();
    let gone = || {
        ApiError::not_found(format!(
            "no watcher {id} in sandbox {}: it was stopped, or never made",
            sandbox.id
        ))
    };
    let me =
        w.0.get_mut(id)
            .filter(|x| x.sandbox == sandbox.id)
            .ok_or_else(gone)?;
    me.read_at = Instant::now();
    if me.events.is_empty() {
        if let Some(why) = me.ended.clone() {
            w.0.remove(id);
            return Err(ApiError::not_found(format!("the watcher stopped: {why}")));
        }
    }
    Ok(me.events.drain(..).collect())
}

fn remove(sandbox: &Sandbox, id: &str) -> bool {
    let mut w = watchers();
    if w.0.get(id).is_some_and(|x| x.sandbox == sandbox.id) {
        w.0.remove(id);
        return true;
    }
    false
}

/// `CreateWatcher`: a watcher of a directory, read with `GetWatcherEvents`.
pub(super) async fn create(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: WatchRequest = message(&headers, &body, "a CreateWatcherRequest")?;
    let id = start(&st, &sandbox, &req).await?;
    Ok(Json(json!({ "watcherId": id })).into_response())
}

/// `GetWatcherEvents`: what happened since the last call.
pub(super) async fn events(
    State(_st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: WatchRequest = message(&headers, &body, "a GetWatcherEventsRequest")?;
    let evs = take(&sandbox, &req.watcher_id)?;
    Ok(Json(json!({ "events": evs })).into_response())
}

/// `RemoveWatcher`.
pub(super) async fn stop(
    State(_st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: WatchRequest = message(&headers, &body, "a RemoveWatcherRequest")?;
    if !remove(&sandbox, &req.watcher_id) {
        return Err(ApiError::not_found(format!(
            "no watcher {} in sandbox {}",
            req.watcher_id, sandbox.id
        ))
        .into());
    }
    Ok(Json(json!({})).into_response())
}

/// Removes the watcher when its stream is dropped.
struct Unwatch(Sandbox, String);

impl Drop for Unwatch {
    fn drop(&mut self) {
        remove(&self.0, &self.1);
    }
}

/// `WatchDir`: a server stream of the directory's events, until the client closes it.
pub(super) async fn watch_dir(
    State(st): State<AppState>,
    sandbox: Sandbox,
    headers: HeaderMap,
    body: Bytes,
) -> E2bResult<Response> {
    let req: WatchRequest = message(&headers, &body, "a WatchDirRequest")?;
    let id = start(&st, &sandbox, &req).await?;
    let wake = watchers().0.get(&id).map(|w| Arc::clone(&w.wake));
    let Some(wake) = wake else {
        return Err(ApiError::not_found("the watcher stopped at once").into());
    };
    let guard = Unwatch(sandbox, id);
    let head = event_of(json!({"start": {}}));
    let frames = stream::unfold(
        (Some(head), guard, wake, false),
        |(head, guard, wake, done)| async move {
            if let Some(h) = head {
                return Some((Ok::<_, std::io::Error>(h), (None, guard, wake, done)));
            }
            if done {
                return None;
            }
            loop {
                let w = Arc::clone(&wake);
                let notified = w.notified();
                match take(&guard.0, &guard.1) {
                    Ok(evs) if evs.is_empty() => {}
                    Ok(evs) => {
                        let mut out = Vec::new();
                        for ev in evs {
                            out.extend(event_of(json!({ "filesystem": ev })));
                        }
                        return Some((Ok(out), (None, guard, wake, false)));
                    }
                    Err(e) => {
                        let end = envelope(
                            2,
                            &json!({"error": {"code": "not_found", "message": e.message}}),
                        );
                        return Some((Ok(end), (None, guard, wake, true)));
                    }
                }
                // A keepalive now and then: a closed client is noticed when it fails.
                if tokio::time::timeout(Duration::from_secs(30), notified)
                    .await
                    .is_err()
                {
                    return Some((
                        Ok(event_of(json!({"keepalive": {}}))),
                        (None, guard, wake, false),
                    ));
                }
            }
        },
    );
    Ok((
        [(header::CONTENT_TYPE, "application/connect+json")],
        Body::from_stream(frames),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen_of(items: &[(&str, u64, i64, u32)]) -> Seen {
        items
            .iter()
            .map(|(p, s, t, m)| (p.to_string(), ("file".to_string(), *s, *t, *m)))
            .collect()
    }

    #[test]
    fn a_file_gone_where_its_twin_appeared_was_renamed() {
        let old = seen_of(&[("/w/a", 5, 10, 0o644), ("/w/b", 1, 10, 0o644)]);
        let new = seen_of(&[("/w/c", 5, 10, 0o644)]);
        let evs = changes("/w", &old, &new, &HashMap::new(), false);
        let got: Vec<String> = evs
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["name"].as_str().unwrap(),
                    e["type"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                "a:EVENT_TYPE_RENAME",
                "b:EVENT_TYPE_REMOVE",
                "c:EVENT_TYPE_CREATE"
            ]
        );
    }

    #[test]
    fn listings_compare_into_events() {
        let old = seen_of(&[
            ("/w/a", 1, 10, 0o644),
            ("/w/b", 1, 10, 0o644),
            ("/w/c", 1, 10, 0o644),
        ]);
        let new = seen_of(&[
            ("/w/a", 2, 11, 0o644),
            ("/w/c", 1, 10, 0o600),
            ("/w/d/e", 0, 12, 0o644),
        ]);
        let evs = changes("/w", &old, &new, &HashMap::new(), false);
        let got: Vec<(String, String)> = evs
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["type"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want = [
            ("a", "EVENT_TYPE_WRITE"),
            ("b", "EVENT_TYPE_REMOVE"),
            ("c", "EVENT_TYPE_CHMOD"),
            ("d/e", "EVENT_TYPE_CREATE"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }
}
