//! Progress of a long operation (an image pull or import, an export or import, a stateful
//! snapshot, a batch of forks), as the engine reports it and the API streams it.
//!
//! The engine takes a [`ProgressSink`]; the API turns each report into one line of an
//! `application/x-ndjson` response when the client asks for one, and drops them otherwise.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What [`Progress::done`] and [`Progress::total`] count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProgressUnit {
    /// Bytes moved, written or checked.
    Bytes,
    /// Whole items (sandboxes of a batch, layers of an image, steps of a build).
    Items,
}

/// One report: how far one phase of an operation has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// The phase, short and stable for scripts, for example `layer sha256:ab12…`,
    /// `memory`, `forks`, `upload`.
    pub phase: String,
    /// How much of the phase is done.
    pub done: u64,
    /// How much there is in all, when known (a bar is determinate only then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// What `done` and `total` count.
    pub unit: ProgressUnit,
}

impl Progress {
    /// A report of `done` out of `total` bytes.
    pub fn bytes(phase: impl Into<String>, done: u64, total: Option<u64>) -> Self {
        Self {
            phase: phase.into(),
            done,
            total,
            unit: ProgressUnit::Bytes,
        }
    }

    /// A report of `done` out of `total` items.
    pub fn items(phase: impl Into<String>, done: u64, total: Option<u64>) -> Self {
        Self {
            phase: phase.into(),
            done,
            total,
            unit: ProgressUnit::Items,
        }
    }
}

/// Where an operation sends its reports. Cheap to clone; calling it never blocks (the API's
/// sink drops reports a slow client has not read yet, keeping the newest of each phase).
#[derive(Clone)]
pub struct ProgressSink(Option<Arc<dyn Fn(Progress) + Send + Sync>>);

impl ProgressSink {
    /// A sink that drops every report (no client is watching).
    pub fn none() -> Self {
        Self(None)
    }

    /// A sink that hands every report to `f`.
    pub fn new(f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    /// Reports `p`.
    pub fn report(&self, p: Progress) {
        if let Some(f) = &self.0 {
            f(p);
        }
    }

    /// Whether anyone is listening (an operation may skip measuring totals when not).
    pub fn is_watched(&self) -> bool {
        self.0.is_some()
    }
}

impl Default for ProgressSink {
    fn default() -> Self {
        Self::none()
    }
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProgressSink(watched)"
        } else {
            "ProgressSink(none)"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn a_report_serializes_to_one_flat_object_without_an_unknown_total() {
        let line = serde_json::to_string(&Progress::items("forks", 3, None)).unwrap();
        assert_eq!(line, r#"{"phase":"forks","done":3,"unit":"items"}"#);
        let line = serde_json::to_string(&Progress::bytes("memory", 1, Some(8))).unwrap();
        assert_eq!(
            line,
            r#"{"phase":"memory","done":1,"total":8,"unit":"bytes"}"#
        );
    }

    #[test]
    fn a_sink_hands_reports_on_and_a_none_sink_drops_them() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let sink = ProgressSink::new(move |p| s.lock().unwrap().push(p.done));
        assert!(sink.is_watched());
        sink.report(Progress::items("x", 1, Some(2)));
        sink.clone().report(Progress::items("x", 2, Some(2)));
        assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
        assert!(!ProgressSink::none().is_watched());
        ProgressSink::none().report(Progress::items("x", 1, None));
    }
}
