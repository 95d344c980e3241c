//! Pushing every ready snapshot (`cairnd --remote-push-ready`): a snapshot taken or imported
//! is queued as it becomes ready, and one task pushes the queue, one snapshot at a time, in
//! the order they came. At start-up every ready snapshot is queued again: one pushed before
//! costs a single look for its recipe, and one a crash or a store outage left behind is
//! pushed then. A push that fails is logged and left to the next start-up (or to `cairn
//! snapshot push`); a snapshot deleted before its turn is skipped. Automatic snapshots (a
//! pause's) are not pushed: they are pruned soon after.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use cairn_types::SnapshotId;

use crate::{Engine, EngineError};

/// The queue of snapshots to push: (account, snapshot), each at most once at a time.
#[derive(Default)]
pub(crate) struct Queue {
    tx: Mutex<Option<mpsc::UnboundedSender<(String, SnapshotId)>>>,
    queued: Mutex<HashSet<SnapshotId>>,
}

impl Queue {
    /// Queues `id` unless it waits already; false when the pusher is not running.
    fn push(&self, account: &str, id: &SnapshotId) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = tx.as_ref() else { return false };
        let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        if queued.insert(id.clone()) && tx.send((account.to_string(), id.clone())).is_err() {
            queued.remove(id);
            return false;
        }
        true
    }

    fn taken(&self, id: &SnapshotId) {
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

impl Engine {
    /// Queues snapshot `id` of `account` for a push in the background, when cairnd pushes
    /// every ready snapshot (a no-op otherwise).
    pub(crate) fn push_later(&self, account: &str, id: &SnapshotId) {
        if let Some(q) = self.remote.as_ref().and_then(|r| r.auto.as_ref()) {
            if q.push(account, id) {
                tracing::debug!(snapshot = %id, "snapshot queued for the remote store");
            }
        }
    }

    /// Starts the pusher (with `--remote-push-ready`) and queues every ready snapshot.
    pub(crate) async fn start_auto_push(self: &Arc<Self>) -> crate::Result<()> {
        let Some(queue) = self.remote.as_ref().and_then(|r| r.auto.as_ref()) else {
            return Ok(());
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<(String, SnapshotId)>();
        *queue.tx.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some((account, id)) = rx.recv().await {
                let Some(engine) = me.upgrade() else { return };
                if let Some(q) = engine.remote.as_ref().and_then(|r| r.auto.as_ref()) {
                    q.taken(&id);
                }
                match engine.push_snapshot(&account, id.as_str()).await {
                    Ok(p) if p.already_pushed => {
                        tracing::debug!(snapshot = %id, "snapshot in the remote store already")
                    }
                    Ok(p) => tracing::info!(
                        snapshot = %id,
                        uploaded_bytes = p.uploaded_bytes,
                        "snapshot pushed to the remote store"
                    ),
                    // Deleted (or no longer ready) before its turn: nothing to push.
                    Err(EngineError::NotFound(_)) | Err(EngineError::Conflict(_)) => {
                        tracing::debug!(snapshot = %id, "queued snapshot gone before its push")
                    }
                    Err(e) => tracing::warn!(
                        snapshot = %id,
                        error = %e,
                        "pushing the snapshot to the remote store failed: it is tried again at the next start, or push it with 'cairn snapshot push'"
                    ),
                }
            }
        });
        let all = self.db(|db| db.all_snapshots()).await?;
        for s in all
            .iter()
            .filter(|s| s.state == cairn_types::SnapshotState::Ready && !s.auto)
        {
            self.push_later(&s.account, &s.id);
        }
        Ok(())
    }
}
