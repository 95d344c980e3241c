//! Shared vocabulary of Cairn: ids, states, resource sizes, names and the
//! JSON shapes the HTTP API speaks.
//!
//! This crate is for words every other crate uses; it does no I/O and knows
//! nothing of runtimes, storage or the database.

pub mod api;
mod error_code;
mod ids;
mod names;
mod progress;
pub mod remote;
mod sandbox;
mod secrets;
mod size;
mod state;
mod template;

pub use error_code::ErrorCode;
pub use ids::{IdError, ImageId, SandboxId, SnapshotId, TokenId};
pub use names::{looks_like_id, validate_name, NameError};
pub use progress::{Progress, ProgressSink, ProgressUnit};
pub use sandbox::{NetworkMode, NetworkModeError, ProcessDefaults, Resources};
pub use secrets::{validate_secret_name, Secrets, MAX_SECRETS};
pub use size::{format_bytes, parse_duration, parse_size, DurationError, SizeError};
pub use state::{transition, PauseReason, RuntimeKind, SandboxState, SnapshotState, StateError};
