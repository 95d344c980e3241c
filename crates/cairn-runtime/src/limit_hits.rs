//! What a container's cgroup counts when it enforces a limit by force: processes its
//! out-of-memory killer ended (cgroup v1 `memory.oom_control`'s `oom_kill`, v2
//! `memory.events`'s `oom_kill`) and forks refused at the process limit (`pids.events`'s
//! `max`, both versions). Compared before and after a container's process ended, they are
//! the evidence of why it did. The cgroup is `CGROUP_PARENT/<id>` in each hierarchy; the
//! runtime removes it when the container is deleted, so read it before.
//!
//! [`memory_in_use`] reads the same cgroup's memory that a checkpoint writes.
//!
//! Not for limits themselves (see [`crate::bundle`]).

use std::path::{Path, PathBuf};

use crate::bundle::CGROUP_PARENT;

/// How often a container's cgroup enforced its limits. A counter is `None` when this host
/// does not expose it (or the cgroup is gone).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitHits {
    /// Processes the kernel's out-of-memory killer ended in the cgroup.
    pub oom_kills: Option<u64>,
    /// Forks (host tasks) refused because the cgroup was at its process limit.
    pub pids_refused: Option<u64>,
}

impl LimitHits {
    /// The counters of container `id`'s cgroup; `None` when it has none (it was deleted).
    pub fn read(id: &str) -> Option<LimitHits> {
        Self::read_under(Path::new("/sys/fs/cgroup"), id)
    }

    fn read_under(root: &Path, id: &str) -> Option<LimitHits> {
        let rel: PathBuf = Path::new(CGROUP_PARENT.trim_start_matches('/')).join(id);
        let first = |candidates: [(PathBuf, &str); 2]| {
            candidates.into_iter().find_map(|(file, key)| {
                std::fs::read_to_string(file)
                    .ok()
                    .and_then(|text| counter(&text, key))
            })
        };
        // cgroup v1 controllers first (as on hybrid hosts), then the unified hierarchy.
        let hits = LimitHits {
            oom_kills: first([
                (
                    root.join("memory").join(&rel).join("memory.oom_control"),
                    "oom_kill",
                ),
                (root.join(&rel).join("memory.events"), "oom_kill"),
            ]),
            pids_refused: first([
                (root.join("pids").join(&rel).join("pids.events"), "max"),
                (root.join(&rel).join("pids.events"), "max"),
            ]),
        };
        (hits != LimitHits::default()).then_some(hits)
    }

    /// What grew from `before` to `self` (everything, when there is no `before`).
    pub fn since(&self, before: Option<&LimitHits>) -> LimitHits {
        let grew =
            |now: Option<u64>, then: Option<u64>| now.map(|n| n.saturating_sub(then.unwrap_or(0)));
        LimitHits {
            oom_kills: grew(self.oom_kills, before.and_then(|b| b.oom_kills)),
            pids_refused: grew(self.pids_refused, before.and_then(|b| b.pids_refused)),
        }
    }
}

/// The memory of container `id` that a memory checkpoint writes, give or take the runtime's
/// own: its cgroup's anonymous and shared memory (v1 `memory.stat`'s `total_rss` +
/// `total_shmem`, v2's `anon` + `shmem`); `None` when this host does not expose it.
pub fn memory_in_use(id: &str) -> Option<u64> {
    memory_in_use_under(Path::new("/sys/fs/cgroup"), id)
}

fn memory_in_use_under(root: &Path, id: &str) -> Option<u64> {
    let rel: PathBuf = Path::new(CGROUP_PARENT.trim_start_matches('/')).join(id);
    let sum = |file: PathBuf, keys: [&str; 2]| {
        let text = std::fs::read_to_string(file).ok()?;
        let found: Vec<u64> = keys.iter().filter_map(|k| counter(&text, k)).collect();
        (!found.is_empty()).then(|| found.iter().sum())
    };
    // cgroup v1 controllers first (as on hybrid hosts), then the unified hierarchy.
    sum(
        root.join("memory").join(&rel).join("memory.stat"),
        ["total_rss", "total_shmem"],
    )
    .or_else(|| sum(root.join(&rel).join("memory.stat"), ["anon", "shmem"]))
}

/// The value of `key` in a cgroup file of `key value` lines.
fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(key))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_v1_controllers_or_the_unified_hierarchy() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(LimitHits::read_under(root.path(), "sbx-00000001"), None);

        let v1 = root.path().join("memory/cairn/sbx-00000001");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(
            v1.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        let pids = root.path().join("pids/cairn/sbx-00000001");
        std::fs::create_dir_all(&pids).unwrap();
        std::fs::write(pids.join("pids.events"), "max 7\n").unwrap();
        assert_eq!(
            LimitHits::read_under(root.path(), "sbx-00000001"),
            Some(LimitHits {
                oom_kills: Some(2),
                pids_refused: Some(7)
            })
        );

        let v2 = root.path().join("cairn/sbx-00000002");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(
            v2.join("memory.events"),
            "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        assert_eq!(
            LimitHits::read_under(root.path(), "sbx-00000002"),
            Some(LimitHits {
                oom_kills: Some(1),
                pids_refused: None
            })
        );
    }

    #[test]
    fn growth_is_measured_from_a_baseline_or_from_zero() {
        let now = LimitHits {
            oom_kills: Some(3),
            pids_refused: Some(5),
        };
        let before = LimitHits {
            oom_kills: Some(3),
            pids_refused: Some(1),
        };
        assert_eq!(
            now.since(Some(&before)),
            LimitHits {
                oom_kills: Some(0),
                pids_refused: Some(4)
            }
        );
        assert_eq!(now.since(None), now);
        let unknown = LimitHits::default();
        assert_eq!(unknown.since(Some(&before)), LimitHits::default());
    }

    #[test]
    fn memory_in_use_adds_anonymous_and_shared_memory_of_either_version() {
        let root = tempfile::tempdir().unwrap();
        let v1 = root.path().join("memory/cairn/sbx-1");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(
            v1.join("memory.stat"),
            "cache 5\nrss 1\ntotal_cache 4096\ntotal_rss 8192\ntotal_shmem 1024\n",
        )
        .unwrap();
        assert_eq!(memory_in_use_under(root.path(), "sbx-1"), Some(9216));
        let v2 = root.path().join("cairn/sbx-2");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("memory.stat"), "anon 100\nfile 7\nshmem 20\n").unwrap();
        assert_eq!(memory_in_use_under(root.path(), "sbx-2"), Some(120));
        assert_eq!(memory_in_use_under(root.path(), "sbx-3"), None);
    }
}
