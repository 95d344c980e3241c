//! The snapshot catalog: how a caller refers to a snapshot (its id, its `NAME`, or
//! `SANDBOX:NAME`), what a listing shows, and when failed snapshots go.
//!
//! - An id (`snap-…`) always means that snapshot; names never have an id's shape.
//! - `NAME` means the caller's one snapshot of that name, on whichever of their sandboxes
//!   (live or destroyed). A name is unique per sandbox only, so when several sandboxes have
//!   one the lookup is refused with a 409 listing the `SANDBOX:NAME` forms that say which.
//! - `SANDBOX:NAME` names the sandbox by id or name. A snapshot records its sandbox's name
//!   when it is taken, so the form keeps working after the sandbox is destroyed. Where
//!   several sandboxes carried that name (one destroyed, another made with the same name
//!   since), the live sandbox's snapshot wins; between destroyed ones only the id says which.
//! - A listing shows ready snapshots taken by the user, oldest first, so that the last one
//!   is the user's latest usable snapshot; `all` adds automatic, failed, in-progress and
//!   deleted (being removed) ones.
//! - A failed snapshot keeps its row (its `error`) but no files; it counts toward no limit,
//!   and it is pruned when the sandbox's next snapshot is taken (so a sandbox shows only its
//!   latest failure, and a retry may reuse the name) or when the sandbox is destroyed.
//!
//! Not here: taking, restoring and deleting snapshots (`snapshots.rs`).

use cairn_db::SnapshotRecord;
use cairn_types::api::SnapshotInfo;
use cairn_types::{looks_like_id, SandboxId, SnapshotId, SnapshotState};

use crate::{Engine, EngineError, Result};

/// How a caller refers to a snapshot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SnapshotRef<'a> {
    /// `snap-` and 8 hex digits.
    Id(SnapshotId),
    /// A snapshot name, on any of the caller's sandboxes.
    Name(&'a str),
    /// `SANDBOX:NAME`: the sandbox by id or name.
    InSandbox {
        /// The sandbox's id or name.
        sandbox: &'a str,
        /// The snapshot's name.
        name: &'a str,
    },
}

impl<'a> SnapshotRef<'a> {
    /// Parses what a caller typed; only a malformed `SANDBOX:NAME` is refused.
    pub(crate) fn parse(s: &'a str) -> Result<Self> {
        if let Ok(id) = s.parse::<SnapshotId>() {
            return Ok(SnapshotRef::Id(id));
        }
        match s.split_once(':') {
            None => Ok(SnapshotRef::Name(s)),
            Some((sandbox, name)) if !sandbox.is_empty() && !name.is_empty() && !name.contains(':') => {
                Ok(SnapshotRef::InSandbox { sandbox, name })
            }
            Some(_) => Err(EngineError::InvalidArgument(format!(
                "invalid snapshot '{s}': give its id (snap-…), its NAME, or SANDBOX:NAME (the sandbox's id or name)"
            ))),
        }
    }
}

/// A snapshot a name may mean, and whether its sandbox still exists.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    /// The snapshot.
    pub rec: SnapshotRecord,
    /// Its sandbox still exists.
    pub live: bool,
}

/// The one snapshot among `candidates` (the caller's snapshots named `name`; for
/// `SANDBOX:NAME`, only those of that sandbox) that `reference` means. `by_sandbox_name`:
/// the reference named its sandbox by name, so a live sandbox's snapshot wins over those
/// of destroyed sandboxes that had the same name.
pub(crate) fn choose(
    reference: &str,
    name: &str,
    by_sandbox_name: bool,
    candidates: Vec<Candidate>,
) -> Result<SnapshotRecord> {
    let mut pool = candidates.clone();
    if by_sandbox_name && pool.len() > 1 && pool.iter().filter(|c| c.live).count() == 1 {
        pool.retain(|c| c.live);
    }
    match pool.len() {
        0 => Err(EngineError::NotFound(match SnapshotRef::parse(reference) {
            Ok(SnapshotRef::InSandbox { sandbox, .. }) => format!(
                "no snapshot '{reference}': list the snapshots of {sandbox} with 'cairn snapshot list {sandbox} --all'"
            ),
            _ => format!("no snapshot '{reference}': list them with 'cairn snapshot list --all'"),
        })),
        1 => Ok(pool.remove(0).rec),
        n => {
            let forms = pool
                .iter()
                .map(|c| {
                    let form = unambiguous_form(c, name, &candidates);
                    match c.rec.state {
                        SnapshotState::Ready => form,
                        other => format!("{form} ({other})"),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            Err(EngineError::Conflict(if by_sandbox_name {
                format!(
                    "snapshot '{reference}' is ambiguous: {n} destroyed sandboxes of that name have a snapshot named '{name}'; say which with the sandbox's id: {forms}"
                )
            } else {
                format!(
                    "snapshot name '{name}' is ambiguous: {n} of your sandboxes have a snapshot of that name; say which with SANDBOX:NAME: {forms}"
                )
            }))
        }
    }
}

/// `SANDBOX:NAME` for a candidate: the sandbox's name when that form means this snapshot
/// (its sandbox is the only one of that name with such a snapshot, or the only live one),
/// its id otherwise.
fn unambiguous_form(c: &Candidate, name: &str, all: &[Candidate]) -> String {
    if let Some(sandbox_name) = &c.rec.sandbox_name {
        let same: Vec<&Candidate> = all
            .iter()
            .filter(|o| o.rec.sandbox_name.as_ref() == Some(sandbox_name))
            .collect();
        let live = same.iter().filter(|o| o.live).count();
        if same.len() == 1 || (c.live && live == 1) {
            return format!("{sandbox_name}:{name}");
        }
    }
    format!("{}:{name}", c.rec.sandbox_id)
}

/// What a listing shows without `all`: ready snapshots the user took.
pub(crate) fn shown_by_default(s: &SnapshotRecord) -> bool {
    s.state == SnapshotState::Ready && !s.auto
}

impl Engine {
    /// The caller's snapshot that `reference` (id, `NAME` or `SANDBOX:NAME`) means; a
    /// snapshot being deleted is not found.
    pub(crate) async fn find_snapshot(
        &self,
        account: &str,
        reference: &str,
    ) -> Result<SnapshotRecord> {
        let (name, by_sandbox_name, rows) = match SnapshotRef::parse(reference)? {
            SnapshotRef::Id(id) => {
                let (who, id) = (account.to_string(), id.to_string());
                return self
                    .db(move |db| db.find_snapshot(&who, &id))
                    .await?
                    .filter(|s| s.state != SnapshotState::Deleted)
                    .ok_or_else(|| {
                        EngineError::NotFound(format!(
                            "no snapshot '{reference}': list them with 'cairn snapshot list --all'"
                        ))
                    });
            }
            SnapshotRef::Name(name) => (name, false, self.snapshots_named(account, name).await?),
            SnapshotRef::InSandbox { sandbox, name } => {
                let rows = self.snapshots_named(account, name).await?;
                if looks_like_id(sandbox) {
                    let rows = rows
                        .into_iter()
                        .filter(|s| s.sandbox_id.as_str() == sandbox)
                        .collect();
                    (name, false, rows)
                } else {
                    let (who, what) = (account.to_string(), sandbox.to_string());
                    let live = self
                        .db(move |db| db.find_sandbox(&who, &what))
                        .await?
                        .map(|r| r.id);
                    let rows = rows
                        .into_iter()
                        .filter(|s| {
                            s.sandbox_name.as_deref() == Some(sandbox)
                                || live.as_ref() == Some(&s.sandbox_id)
                        })
                        .collect();
                    (name, true, rows)
                }
            }
        };
        let candidates = self
            .db(move |db| {
                let mut candidates = Vec::with_capacity(rows.len());
                for rec in rows {
                    let live = db.sandbox(&rec.sandbox_id)?.is_some();
                    candidates.push(Candidate { rec, live });
                }
                Ok(candidates)
            })
            .await?;
        choose(reference, name, by_sandbox_name, candidates)
    }

    async fn snapshots_named(&self, account: &str, name: &str) -> Result<Vec<SnapshotRecord>> {
        let (who, name) = (account.to_string(), name.to_string());
        Ok(self.db(move |db| db.snapshots_named(&who, &name)).await?)
    }

    async fn listed_snapshots(
        &self,
        account: &str,
        sandbox: Option<&SandboxId>,
        sandbox_name: Option<&str>,
    ) -> Result<Vec<SnapshotRecord>> {
        let (who, id, name) = (
            account.to_string(),
            sandbox.cloned(),
            sandbox_name.map(str::to_string),
        );
        Ok(self
            .db(move |db| db.listed_snapshots(&who, id.as_ref(), name.as_deref()))
            .await?)
    }

    /// A snapshot of `account` that can be restored or forked.
    pub(crate) async fn ready_snapshot(
        &self,
        account: &str,
        reference: &str,
    ) -> Result<SnapshotRecord> {
        let s = self.find_snapshot(account, reference).await?;
        if s.state != SnapshotState::Ready {
            return Err(EngineError::Conflict(format!(
                "snapshot {} is {}{}: only a ready snapshot can be restored or forked",
                s.id,
                s.state,
                s.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )));
        }
        Ok(s)
    }

    /// Snapshots of one sandbox (by id or name; a destroyed sandbox's by its id or the name
    /// it had), oldest first: the ready ones the user took, or with `all` every one.
    pub async fn list_snapshots(
        &self,
        account: &str,
        sandbox: &str,
        all: bool,
    ) -> Result<Vec<SnapshotInfo>> {
        // Listing is no use of the sandbox (see the idle timeout).
        let rows = match self.look_up(account, sandbox).await {
            Ok(r) => self.listed_snapshots(account, Some(&r.id), None).await?,
            Err(e) => match sandbox.parse::<SandboxId>() {
                // A destroyed sandbox's snapshots are still listed by its id…
                Ok(id) => self.listed_snapshots(account, Some(&id), None).await?,
                Err(_) if looks_like_id(sandbox) => return Err(e),
                // … and by the name it had.
                Err(_) => {
                    let named = self.listed_snapshots(account, None, Some(sandbox)).await?;
                    let rows = self
                        .db(move |db| {
                            let mut rows = Vec::new();
                            for s in named {
                                if db.sandbox(&s.sandbox_id)?.is_none() {
                                    rows.push(s);
                                }
                            }
                            Ok(rows)
                        })
                        .await?;
                    if rows.is_empty() {
                        return Err(e);
                    }
                    rows
                }
            },
        };
        Ok(self.listing(&rows, all).await)
    }

    /// All snapshots of an account, oldest first: the ready ones the user took, or with
    /// `all` every one.
    pub async fn list_all_snapshots(&self, account: &str, all: bool) -> Result<Vec<SnapshotInfo>> {
        let rows = self.listed_snapshots(account, None, None).await?;
        Ok(self.listing(&rows, all).await)
    }

    async fn listing(&self, rows: &[SnapshotRecord], all: bool) -> Vec<SnapshotInfo> {
        let mut out = Vec::new();
        for s in rows.iter().filter(|s| all || shown_by_default(s)) {
            out.push(self.snapshot_info(s).await);
        }
        out
    }

    /// One snapshot.
    pub async fn inspect_snapshot(&self, account: &str, reference: &str) -> Result<SnapshotInfo> {
        let s = self.find_snapshot(account, reference).await?;
        Ok(self.snapshot_info(&s).await)
    }

    /// Deletes the failed snapshots of a sandbox (rows only: their files went when they
    /// failed). Called with the sandbox's lock held, as its next snapshot starts and when it
    /// is destroyed; best effort (logged).
    pub(crate) async fn prune_failed_snapshots(&self, sandbox: &SandboxId) {
        let row = sandbox.clone();
        let failed = match self.db(move |db| db.sandbox_snapshots(&row)).await {
            Ok(list) => list
                .into_iter()
                .filter(|s| s.state == SnapshotState::Failed),
            Err(e) => {
                tracing::warn!(sandbox = %sandbox, error = %e, "could not list failed snapshots to prune");
                return;
            }
        };
        for s in failed {
            match self.purge_snapshot(&s.id).await {
                Ok(()) => {
                    tracing::info!(sandbox = %sandbox, snapshot = %s.id, "pruned a failed snapshot")
                }
                Err(e) => {
                    tracing::warn!(snapshot = %s.id, error = %e, "could not prune a failed snapshot")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn snap(sandbox: &str, sandbox_name: Option<&str>, state: SnapshotState) -> SnapshotRecord {
        SnapshotRecord {
            id: SnapshotId::generate(),
            account: "alice".into(),
            sandbox_id: sandbox.parse().unwrap(),
            sandbox_name: sandbox_name.map(Into::into),
            name: "baseline".into(),
            parent_id: None,
            image_id: "img-00000001".into(),
            runtime: Default::default(),
            resources: cairn_types::Resources {
                cpus: 1.0,
                memory_bytes: 1,
                pids_limit: 1,
            },
            process: cairn_types::ProcessDefaults {
                env: vec![],
                workdir: "/".into(),
            },
            stateful: false,
            auto: false,
            state,
            error: None,
            size_bytes: 0,
            total_bytes: 0,
            created_at: Utc::now(),
            imported_from: None,
        }
    }

    fn cand(rec: &SnapshotRecord, live: bool) -> Candidate {
        Candidate {
            rec: rec.clone(),
            live,
        }
    }

    #[test]
    fn references_parse_as_ids_names_or_sandbox_and_name() {
        assert!(matches!(
            SnapshotRef::parse("snap-1b2c3d4e").unwrap(),
            SnapshotRef::Id(_)
        ));
        assert_eq!(
            SnapshotRef::parse("baseline").unwrap(),
            SnapshotRef::Name("baseline")
        );
        // A name that only looks like an id prefix is a name.
        assert_eq!(
            SnapshotRef::parse("snap-before-refactor").unwrap(),
            SnapshotRef::Name("snap-before-refactor")
        );
        assert_eq!(
            SnapshotRef::parse("builder:baseline").unwrap(),
            SnapshotRef::InSandbox {
                sandbox: "builder",
                name: "baseline"
            }
        );
        assert_eq!(
            SnapshotRef::parse("sbx-7f3a9c2e:baseline").unwrap(),
            SnapshotRef::InSandbox {
                sandbox: "sbx-7f3a9c2e",
                name: "baseline"
            }
        );
        for bad in [":baseline", "builder:", "a:b:c", ":"] {
            assert!(
                matches!(
                    SnapshotRef::parse(bad),
                    Err(EngineError::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn one_candidate_is_the_snapshot_none_is_not_found() {
        let a = snap("sbx-00000001", Some("builder"), SnapshotState::Ready);
        let got = choose("baseline", "baseline", false, vec![cand(&a, false)]).unwrap();
        assert_eq!(got.id, a.id);
        let e = choose("builder:x", "x", true, vec![]).unwrap_err();
        assert!(
            matches!(&e, EngineError::NotFound(m) if m.contains("cairn snapshot list builder --all")),
            "{e}"
        );
    }

    #[test]
    fn a_name_on_two_sandboxes_is_ambiguous_and_the_error_says_which_forms_to_use() {
        let a = snap("sbx-00000001", Some("builder"), SnapshotState::Ready);
        let b = snap("sbx-00000002", None, SnapshotState::Failed);
        // Two destroyed sandboxes named `old`: only their ids tell them apart.
        let c = snap("sbx-00000003", Some("old"), SnapshotState::Ready);
        let d = snap("sbx-00000004", Some("old"), SnapshotState::Ready);
        let all = vec![
            cand(&a, true),
            cand(&b, true),
            cand(&c, false),
            cand(&d, false),
        ];
        let e = choose("baseline", "baseline", false, all).unwrap_err();
        let EngineError::Conflict(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.contains("'baseline' is ambiguous"), "{m}");
        assert!(
            m.contains("builder:baseline, sbx-00000002:baseline (failed), sbx-00000003:baseline, sbx-00000004:baseline"),
            "{m}"
        );
    }

    #[test]
    fn by_sandbox_name_the_live_sandbox_wins_over_destroyed_ones_of_that_name() {
        let old = snap("sbx-00000001", Some("builder"), SnapshotState::Ready);
        let new = snap("sbx-00000002", Some("builder"), SnapshotState::Ready);
        let got = choose(
            "builder:baseline",
            "baseline",
            true,
            vec![cand(&old, false), cand(&new, true)],
        )
        .unwrap();
        assert_eq!(got.id, new.id);
        // Both destroyed: refused, naming each by id.
        let e = choose(
            "builder:baseline",
            "baseline",
            true,
            vec![cand(&old, false), cand(&new, false)],
        )
        .unwrap_err();
        assert!(
            matches!(&e, EngineError::Conflict(m) if m.contains("sbx-00000001:baseline, sbx-00000002:baseline")),
            "{e}"
        );
        // A plain name never prefers: the live one is offered by its sandbox's name.
        let e = choose(
            "baseline",
            "baseline",
            false,
            vec![cand(&old, false), cand(&new, true)],
        )
        .unwrap_err();
        assert!(
            matches!(&e, EngineError::Conflict(m) if m.contains("sbx-00000001:baseline, builder:baseline")),
            "{e}"
        );
    }

    #[test]
    fn listings_show_ready_snapshots_the_user_took() {
        let ready = snap("sbx-00000001", None, SnapshotState::Ready);
        assert!(shown_by_default(&ready));
        let auto = SnapshotRecord {
            auto: true,
            ..ready.clone()
        };
        assert!(!shown_by_default(&auto));
        for state in [
            SnapshotState::Failed,
            SnapshotState::Creating,
            SnapshotState::Uploading,
            SnapshotState::Deleted,
        ] {
            assert!(!shown_by_default(&snap("sbx-00000001", None, state)));
        }
    }
}
