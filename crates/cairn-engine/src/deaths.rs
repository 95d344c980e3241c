//! Sandboxes whose runtime ends on its own: gVisor's sandbox process killed for exceeding the
//! memory limit, a runc init killed on the host, a runtime that crashed. Every running or
//! paused sandbox has a watch on its runtime's process (see [`cairn_runtime::ExitWatch`]),
//! armed whenever a process starts (create, fork, start, restore, resume from a released
//! memory, start-up recovery). When it fires, the sandbox is recorded `stopped` with the
//! reason its cgroup's counters show, and its dead container is removed so `start` works.
//!
//! Each armed watch is an incarnation with a generation. Whatever ends or replaces the
//! process on purpose (stop, restore in place, pause with its memory released, destroy)
//! disarms it first, with the sandbox's lock held; the watch takes that lock before it
//! records anything and then finds itself no longer current, so a deliberate end is never
//! recorded as a death. Before that, it notes on the incarnation what is ending it
//! ([`Engine::note_end`]), which the execs running in it then say as they end.
//!
//! Not for the limits themselves (see `cairn_runtime::bundle`) nor for exec (see `exec`),
//! which asks here whether the sandbox died under a command.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument;

use cairn_db::SandboxRecord;
use cairn_runtime::{ExitWatch, LimitHits};
use cairn_types::{format_bytes, SandboxId, SandboxState};

use crate::Engine;

/// How long an exec whose sandbox is dying waits for the death to be recorded (the watch
/// waits for the sandbox's lock, which a long operation may hold).
const VERDICT_WAIT: Duration = Duration::from_secs(30);

/// Generations of incarnations, unique in this cairnd.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// One run of a sandbox's runtime process, from the moment it was armed to its end.
pub(crate) struct Incarnation {
    /// Tells runs apart: arming again (a restart, a restore) makes a new one.
    generation: u64,
    /// Its process; `None` when it had already ended when the watch was armed.
    exit: Option<Arc<ExitWatch>>,
    /// The cgroup's limit counters when the sandbox was last seen alive: what grows beyond
    /// them until the process ends is the evidence of why it ended.
    baseline: Mutex<Option<LimitHits>>,
    /// The reason recorded when it ended on its own.
    verdict: watch::Receiver<Option<String>>,
    /// The task awaiting the process's end.
    task: tokio::task::AbortHandle,
    /// Set when it is ended on purpose (stop, restore, pause with memory released,
    /// destroy): what ended it, told to the execs it ends.
    ended: Mutex<Option<String>>,
}

impl Incarnation {
    /// What ended this run on purpose, if something did: the message for an exec it ended.
    pub(crate) fn ended_on_purpose(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Why a sandbox's runtime ended, from what its cgroup counted since it was last seen alive
/// (`grew`; `None` when its cgroup was gone): the reason recorded in its state and told to
/// an exec that died with it. Says only what the evidence shows.
pub(crate) fn death_reason(
    id: &SandboxId,
    memory_bytes: u64,
    pids_limit: u32,
    grew: Option<LimitHits>,
    while_down: bool,
) -> String {
    let hit = |n: Option<u64>| n.is_some_and(|n| n > 0);
    let memory = hit(grew.and_then(|g| g.oom_kills));
    let pids = hit(grew.and_then(|g| g.pids_refused));
    let memory_limit = format_bytes(memory_bytes);
    let what = match (memory, pids) {
        (true, false) => format!(
            "its processes were killed for exceeding the memory limit of {memory_limit}"
        ),
        (true, true) => format!(
            "its processes were killed for exceeding the memory limit of {memory_limit} (they had also reached the process limit of {pids_limit})"
        ),
        (false, true) => format!(
            "the runtime running it exited after its processes reached the process limit of {pids_limit}"
        ),
        (false, false) if grew.is_some() => "the runtime running it exited without hitting the memory or process limit: it crashed or was killed on the host".to_string(),
        (false, false) => "the runtime running it exited, and its limits' counters were gone, so whether it hit one is unknown".to_string(),
    };
    let when = if while_down {
        "while cairnd was not running, "
    } else {
        ""
    };
    format!("{when}{what}; start it again with 'cairn start {id}'")
}

impl Engine {
    /// Watches sandbox `r`'s runtime process, replacing any earlier watch. Call with the
    /// sandbox's lock held, once the runtime runs it. A process that already ended is
    /// recorded as soon as the lock is free.
    pub(crate) async fn arm(&self, r: &SandboxRecord) {
        let Ok(rt) = self.runtime(r.runtime) else {
            return;
        };
        let exit = match rt.watch(r.id.as_str()).await {
            Ok(watched) => watched.map(Arc::new),
            Err(e) => {
                tracing::warn!(sandbox = %r.id, error = %e, "cannot watch the sandbox's runtime: a death is noticed at the next exec only");
                self.disarm(&r.id);
                return;
            }
        };
        let baseline = rt.limit_hits(r.id.as_str());
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
        let (tx, verdict) = watch::channel(None);
        let (engine, id, watched) = (self.me.clone(), r.id.clone(), exit.clone());
        let span = tracing::info_span!("watch", sandbox = %id);
        let task = tokio::spawn(
            async move {
                if let Some(w) = &watched {
                    w.exited().await;
                }
                if let Some(engine) = engine.upgrade() {
                    engine.runtime_ended(&id, generation, tx).await;
                }
            }
            .instrument(span),
        )
        .abort_handle();
        tracing::debug!(sandbox = %r.id, pid = ?exit.as_ref().map(|e| e.pid()), generation, "watching the sandbox's runtime");
        let incarnation = Arc::new(Incarnation {
            generation,
            exit,
            baseline: Mutex::new(baseline),
            verdict,
            task,
            ended: Mutex::new(None),
        });
        let old = self
            .incarnations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(r.id.clone(), incarnation);
        if let Some(old) = old {
            old.task.abort();
        }
    }

    /// Records why sandbox `id`'s current run is about to be ended on purpose (`why`: what
    /// happened and what to do), so that the execs running in it end with that message and not
    /// a bare 137. Call with the sandbox's lock held, before the processes are ended.
    pub(crate) fn note_end(&self, id: &SandboxId, why: String) {
        if let Some(inc) = self.incarnation(id) {
            *inc.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        }
    }

    /// Stops watching sandbox `id`: its process is about to be ended on purpose (or is
    /// gone). Call with the sandbox's lock held.
    pub(crate) fn disarm(&self, id: &SandboxId) {
        let old = self
            .incarnations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if let Some(old) = old {
            old.task.abort();
        }
    }

    /// The sandbox's current incarnation, if it is watched.
    pub(crate) fn incarnation(&self, id: &SandboxId) -> Option<Arc<Incarnation>> {
        self.incarnations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The watched process of incarnation `generation` of sandbox `id` ended: unless that
    /// was on purpose (the incarnation is no longer current), record the sandbox stopped.
    async fn runtime_ended(
        self: Arc<Self>,
        id: &SandboxId,
        generation: u64,
        verdict: watch::Sender<Option<String>>,
    ) {
        let lock = self.lock_for(id);
        let _guard = lock.lock().await;
        let current = self.incarnation(id).filter(|i| i.generation == generation);
        let Some(incarnation) = current else {
            // Stopped, restored, released or destroyed on purpose, or started again.
            if matches!(self.sandbox_row(id).await, Ok(None)) {
                self.forget_lock(id);
            }
            return;
        };
        let r = match self.sandbox_row(id).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(sandbox = %id, error = %e, "cannot read the sandbox whose runtime ended");
                return;
            }
        };
        if !matches!(r.state, SandboxState::Running | SandboxState::Paused)
            || r.memory_snapshot.is_some()
        {
            return;
        }
        if let Some(exit) = incarnation.exit.as_ref().filter(|e| !e.has_exited()) {
            tracing::warn!(sandbox = %id, pid = exit.pid(), "the runtime's process was reported ended but runs: not recorded");
            return;
        }
        let baseline = *incarnation
            .baseline
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let reason = self.record_death(&r, baseline.as_ref(), false).await;
        // The exec that died with it answers now; the removal takes a moment.
        verdict.send_replace(Some(reason));
        self.remove_dead(&r).await;
    }

    /// Records sandbox `r` (whose lock the caller holds) stopped because its runtime ended on
    /// its own, with the reason its cgroup shows since `baseline`; `while_down`: cairnd found
    /// it ended at start-up. Returns the reason. The caller then removes the dead container
    /// ([`Engine::remove_dead`]): a crash in between leaves a stopped sandbox, whose start
    /// removes it.
    pub(crate) async fn record_death(
        &self,
        r: &SandboxRecord,
        baseline: Option<&LimitHits>,
        while_down: bool,
    ) -> String {
        let rt = self.runtime(r.runtime).ok();
        let hits = rt.as_ref().and_then(|rt| rt.limit_hits(r.id.as_str()));
        let grew = hits.map(|h| h.since(baseline));
        let reason = death_reason(
            &r.id,
            r.resources.memory_bytes,
            r.resources.pids_limit,
            grew,
            while_down,
        );
        tracing::warn!(sandbox = %r.id, ?baseline, ?hits, reason, "the sandbox's runtime ended on its own: marked stopped");
        let (row, why) = (r.id.clone(), reason.clone());
        if let Err(e) = self
            .db(move |db| db.set_state(&row, SandboxState::Stopped, Some(&why)))
            .await
        {
            tracing::error!(sandbox = %r.id, error = %e, "cannot record the sandbox stopped");
        }
        reason
    }

    /// Removes the dead container of sandbox `r` (and its cgroup), so that `start` can create
    /// it again; its files and network stay, as after a stop.
    pub(crate) async fn remove_dead(&self, r: &SandboxRecord) {
        let Ok(rt) = self.runtime(r.runtime) else {
            return;
        };
        if let Err(e) = rt.delete(r.id.as_str()).await {
            tracing::warn!(sandbox = %r.id, error = %e, "cannot remove the dead container; 'cairn start' will");
        }
    }

    /// After an exec in sandbox `r` ended (`failed`: with a code other than 0 or the timeout's),
    /// with `incarnation` the one it started in: the reason, if the sandbox died under it.
    /// A sandbox found alive only has its limit counters noted: whatever they counted so far
    /// (a command killed for its memory) did not end it.
    pub(crate) async fn death_under_exec(
        &self,
        r: &SandboxRecord,
        incarnation: Option<&Arc<Incarnation>>,
        failed: bool,
    ) -> Option<String> {
        let Some(inc) = incarnation else {
            return if failed {
                self.check_alive(r).await
            } else {
                None
            };
        };
        if let Some(reason) = inc.verdict.borrow().clone() {
            return failed.then_some(reason);
        }
        // The counters are read before the process is looked at: a kill counted after this
        // look is still evidence when the process ends.
        let hits = self
            .runtime(r.runtime)
            .ok()
            .and_then(|rt| rt.limit_hits(r.id.as_str()));
        let dying = inc.exit.as_ref().is_none_or(|e| e.is_exiting());
        if !dying {
            if hits.is_some() {
                *inc.baseline.lock().unwrap_or_else(|p| p.into_inner()) = hits;
            }
            return None;
        }
        if !failed {
            return None;
        }
        let mut verdict = inc.verdict.clone();
        let recorded = tokio::time::timeout(VERDICT_WAIT, verdict.wait_for(Option::is_some))
            .await
            // Not recorded: ended on purpose (the watch was disarmed), or it takes too long.
            .ok()?
            .ok()?
            .clone();
        recorded
    }

    /// For a sandbox without a watch (it could not be armed): after a failed exec, asks the
    /// runtime whether the sandbox still runs, and records it stopped if it does not. Frozen
    /// (`paused`: by a snapshot, say) is alive.
    async fn check_alive(&self, r: &SandboxRecord) -> Option<String> {
        let rt = self.runtime(r.runtime).ok()?;
        if self.runtime_says_alive(rt.as_ref(), &r.id).await? {
            return None;
        }
        let lock = self.lock_for(&r.id);
        let _guard = lock.lock().await;
        let r = self.sandbox_row(&r.id).await.ok()??;
        let live = matches!(r.state, SandboxState::Running | SandboxState::Paused)
            && r.memory_snapshot.is_none();
        if !live || self.incarnation(&r.id).is_some() {
            return None; // stopped or started again meanwhile
        }
        // Asked again under the lock: the first answer may have come in the middle of an
        // operation that replaces the container (a restore), which has finished since.
        if self.runtime_says_alive(rt.as_ref(), &r.id).await? {
            return None;
        }
        let reason = self.record_death(&r, None, false).await;
        self.remove_dead(&r).await;
        Some(reason)
    }

    /// Whether the runtime runs sandbox `id` (running or frozen); `None` when it cannot say.
    async fn runtime_says_alive(
        &self,
        rt: &dyn cairn_runtime::Runtime,
        id: &SandboxId,
    ) -> Option<bool> {
        let state = rt.state(id.as_str()).await.ok()?;
        Some(state.as_ref().is_some_and(|s| s.status.is_up()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SandboxId {
        "sbx-0000abcd".parse().unwrap()
    }

    fn hits(oom: u64, pids: u64) -> Option<LimitHits> {
        Some(LimitHits {
            oom_kills: Some(oom),
            pids_refused: Some(pids),
        })
    }

    #[test]
    fn the_reason_names_the_limit_the_evidence_shows() {
        let memory = death_reason(&id(), 64 << 20, 20, hits(1, 0), false);
        assert!(
            memory.starts_with(
                "its processes were killed for exceeding the memory limit of 64.0 MiB"
            ),
            "{memory}"
        );
        assert!(memory.ends_with("start it again with 'cairn start sbx-0000abcd'"));
        let pids = death_reason(&id(), 64 << 20, 20, hits(0, 3), false);
        assert!(pids.contains("process limit of 20"), "{pids}");
        assert!(!pids.contains("memory"), "{pids}");
        let both = death_reason(&id(), 64 << 20, 20, hits(2, 3), false);
        assert!(both.contains("memory limit") && both.contains("process limit"));
    }

    #[test]
    fn without_evidence_the_reason_does_not_guess() {
        let none = death_reason(&id(), 64 << 20, 20, hits(0, 0), false);
        assert!(
            none.starts_with("the runtime running it exited without hitting"),
            "{none}"
        );
        let gone = death_reason(&id(), 64 << 20, 20, None, false);
        assert!(
            gone.contains("unknown") && !gone.contains("killed for"),
            "{gone}"
        );
        let down = death_reason(&id(), 64 << 20, 20, hits(0, 0), true);
        assert!(
            down.starts_with("while cairnd was not running, the runtime"),
            "{down}"
        );
    }

    #[test]
    fn only_counts_that_grew_since_the_sandbox_was_seen_alive_are_evidence() {
        let before = LimitHits {
            oom_kills: Some(1),
            pids_refused: Some(0),
        };
        let now = LimitHits {
            oom_kills: Some(1),
            pids_refused: Some(0),
        };
        let reason = death_reason(&id(), 64 << 20, 20, Some(now.since(Some(&before))), false);
        assert!(!reason.contains("memory limit"), "{reason}");
    }
}
