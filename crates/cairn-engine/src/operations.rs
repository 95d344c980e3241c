//! Operations that finish what they start. A request handler is a future that the HTTP server
//! drops when its client goes away (a killed CLI, an SDK's timeout, a half-closed socket);
//! dropped inside the engine, an operation would stop at whatever await point it had reached:
//! a fork's container made but its row still `creating`, a restore's old root deleted and
//! the new one not yet in place. [`Engine::run_to_end`] runs each operation in a task of its
//! own instead, so that a dropped request only drops the wait for its answer: the operation
//! runs to its end (or its rollback) and a client that comes back sees the result.
//!
//! cairnd's shutdown waits for the operations still running ([`Engine::finish_operations`]),
//! so a stop (SIGTERM) does not cut them short either; a crash (kill -9) is start-up
//! recovery's to finish.
//!
//! Not for streams (exec, attach): a command whose client goes away is killed (see `exec`).

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::Instrument;

use crate::{Engine, EngineError, Result};

/// Counts one operation as running until dropped.
pub(crate) struct Running(Arc<watch::Sender<usize>>);

impl Running {
    pub(crate) fn start(count: &Arc<watch::Sender<usize>>) -> Running {
        count.send_modify(|n| *n += 1);
        Running(Arc::clone(count))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Engine {
    /// Runs `op` in a task of its own and waits for its result. If the caller stops waiting
    /// (its future is dropped), the operation still runs to its end.
    pub async fn run_to_end<T, F, Fut>(self: &Arc<Self>, op: F) -> Result<T>
    where
        F: FnOnce(Arc<Engine>) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let running = Running::start(&self.operations);
        let operation = op(Arc::clone(self));
        // The task keeps the caller's span (the api's request span): what the operation
        // logs after its client went away still says which request it belongs to.
        let task = tokio::spawn(
            async move {
                let _running = running;
                operation.await
            }
            .in_current_span(),
        );
        task.await
            .map_err(|e| EngineError::failed("an operation's task ended abnormally", e))?
    }

    /// Operations started by [`Engine::run_to_end`] that have not ended yet.
    pub fn operations_running(&self) -> usize {
        *self.operations.borrow()
    }

    /// Waits until every operation started by [`Engine::run_to_end`] has ended (cairnd's
    /// shutdown, once it accepts no more requests).
    pub async fn finish_operations(&self) {
        let mut count = self.operations.subscribe();
        let _ = count.wait_for(|n| *n == 0).await;
    }
}
