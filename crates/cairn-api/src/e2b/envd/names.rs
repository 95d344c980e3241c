//! The names of a sandbox's users and groups, for the `owner` and `group` envd's `EntryInfo`
//! shows: read from its `/etc/passwd` and `/etc/group` through Cairn's files layer (at most
//! [`FILE_MAX`] of each), and kept [`KEEP`] so that a listing does not read them again.
//! An id without a name shows as its number (0 as `root` always).
//!
//! Not for: anything that decides who may do what (Cairn runs every command as root).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use cairn_engine::FilesOf;

use super::Sandbox;
use crate::AppState;

/// How long a sandbox's names are kept.
const KEEP: Duration = Duration::from_secs(5);

/// The most of each file read.
const FILE_MAX: usize = 1024 * 1024;

/// The longest reading both files may take (a tenant's FIFO or slow file in their place makes
/// ids show as numbers, not calls hang).
const READ_WAIT: Duration = Duration::from_secs(2);

/// The most sandboxes whose names are kept at once (past it, all are forgotten).
const SANDBOXES_MAX: usize = 1_000;

/// A sandbox's user and group names, by id.
#[derive(Debug, Default)]
pub(super) struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

fn named(map: &HashMap<u32, String>, id: u32) -> String {
    match map.get(&id) {
        Some(n) => n.clone(),
        None if id == 0 => "root".to_string(),
        None => id.to_string(),
    }
}

impl Names {
    /// User `id`'s name, or its number.
    pub(super) fn user(&self, id: u32) -> String {
        named(&self.users, id)
    }

    /// Group `id`'s name, or its number.
    pub(super) fn group(&self, id: u32) -> String {
        named(&self.groups, id)
    }
}

/// The ids and names of a `passwd` or `group` file (`name:x:id:…` lines).
fn parse(text: &str) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        if let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) {
            if let (false, Ok(id)) = (name.is_empty() || name.starts_with('#'), id.parse()) {
                out.entry(id).or_insert_with(|| name.to_string());
            }
        }
    }
    out
}

/// File `path` of `sandbox`, as text (empty when it cannot be read; cut at `FILE_MAX`).
async fn read(st: &AppState, sandbox: &Sandbox, path: &str) -> String {
    let Ok(mut dl) = st
        .engine
        .file_read(&sandbox.account, FilesOf::Sandbox(&sandbox.id), path, false)
        .await
    else {
        return String::new();
    };
    let mut bytes = Vec::new();
    while let Some(Ok(chunk)) = dl.chunks.recv().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= FILE_MAX {
            bytes.truncate(FILE_MAX);
            break;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `sandbox`'s names (read again when older than `KEEP`).
pub(super) async fn of(st: &AppState, sandbox: &Sandbox) -> Arc<Names> {
    type Kept = HashMap<String, (Instant, Arc<Names>)>;
    static KEPT: OnceLock<Mutex<Kept>> = OnceLock::new();
    let kept = || {
        KEPT.get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    };
    if let Some((at, names)) = kept().get(&sandbox.id) {
        if at.elapsed() < KEEP {
            return Arc::clone(names);
        }
    }
    let both = async {
        Names {
            users: parse(&read(st, sandbox, "/etc/passwd").await),
            groups: parse(&read(st, sandbox, "/etc/group").await),
        }
    };
    let names = Arc::new(
        tokio::time::timeout(READ_WAIT, both)
            .await
            .unwrap_or_default(),
    );
    let mut k = kept();
    if k.len() >= SANDBOXES_MAX {
        k.clear();
    }
    k.insert(sandbox.id.clone(), (Instant::now(), Arc::clone(&names)));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_name_their_ids() {
        let users = parse(
            "root:x:0:0:root:/root:/bin/sh\n# a comment\nbroken\nnobody:x:65534:65534::/:/bin/false\nalias:x:0:0::/:/bin/sh\n",
        );
        let names = Names {
            users,
            groups: HashMap::new(),
        };
        assert_eq!(names.user(0), "root");
        assert_eq!(names.user(65534), "nobody");
        assert_eq!(names.user(1000), "1000");
        assert_eq!(names.group(0), "root");
    }
}
