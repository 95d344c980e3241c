//! Wire types of the remote tier (`cairnd --remote s3://…`): what a push did and what
//! the remote catalog lists. Re-exported from [`crate::api`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::RuntimeKind;

/// What `POST /v1/snapshots/{id}/push` did.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PushInfo {
    /// The snapshot pushed (it keeps its id on the remote and on every host that pulls it).
    pub snapshot: String,
    /// The remote held it already: nothing was read or uploaded.
    pub already_pushed: bool,
    /// Chunks its archive stream was cut into (0 when already pushed).
    pub chunks: u64,
    /// Chunks uploaded (the others were in the store already).
    pub uploaded_chunks: u64,
    /// Bytes of its archive stream.
    pub bytes: u64,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// How long it took.
    pub seconds: f64,
}

/// What `DELETE /v1/remote/snapshots/{id}` did.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RemoteDeleteInfo {
    /// The pushed snapshot deleted from the store (hosts that pulled it keep their copy).
    pub snapshot: String,
    /// Chunks no pushed snapshot of the account names any more, deleted.
    pub collected_chunks: u64,
    /// Their bytes.
    pub collected_bytes: u64,
}

/// A snapshot in the remote catalog (`GET /v1/remote/snapshots`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RemoteSnapshotInfo {
    /// Its id (the same on every host).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The runtime it was made with.
    pub runtime: RuntimeKind,
    /// Whether it holds memory (a fork resumes its processes).
    pub stateful: bool,
    /// Bytes of data it holds (files and memory).
    pub size_bytes: u64,
    /// Chunks its archive stream was cut into.
    pub chunks: u64,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// When it was pushed.
    pub pushed_at: DateTime<Utc>,
    /// Whether this host has it (forks need no pull).
    pub local: bool,
}
