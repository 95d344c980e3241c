//! The JSON bodies of the templates API (`/v1/templates`, `/v1/template-steps`), re-exported
//! from [`crate::api`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::RuntimeKind;

/// A template: a name of your account for one of your snapshots, which `up --template`
/// forks, with the process defaults its sandboxes get.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TemplateInfo {
    /// Its name, unique in your account.
    pub name: String,
    /// The snapshot it holds (which cannot be deleted while it does).
    pub snapshot: String,
    /// Whether the snapshot holds memory: its sandboxes start with its processes running.
    pub stateful: bool,
    /// The image under its files.
    pub image: String,
    /// The runtime its sandboxes run under (unless the request says otherwise; a stateful
    /// template's must).
    pub runtime: RuntimeKind,
    /// Environment (`KEY=VALUE`) its sandboxes' processes get over the snapshot's.
    pub env: Vec<String>,
    /// Working directory its sandboxes' processes start in, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// User (`uid` or `uid:gid`) recorded from the Cairnfile's `USER`, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Bytes of the snapshot's whole tree.
    pub total_bytes: u64,
    /// When it was made (or last rebuilt).
    pub created_at: DateTime<Utc>,
}

/// `POST /v1/templates`: name one of your snapshots as a template.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplateRequest {
    /// The template's name (letters, digits, `.`, `_`, `-`; unique in your account).
    pub name: String,
    /// The snapshot: its id, `NAME` or `SANDBOX:NAME` (a ready one you took).
    pub from_snapshot: String,
    /// Environment (`KEY=VALUE`) its sandboxes get over the snapshot's.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory (absolute) its sandboxes' processes start in.
    #[serde(default)]
    pub workdir: Option<String>,
    /// User (`uid` or `uid:gid`, numeric) to record.
    #[serde(default)]
    pub user: Option<String>,
    /// Replace a template of that name (a rebuild) instead of refusing; the build steps only
    /// the old one used are deleted.
    #[serde(default)]
    pub replace: bool,
}

/// `GET|PUT /v1/template-steps/{key}`: one cached build step of your account.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateStep {
    /// The snapshot the step left (one of yours, ready).
    pub snapshot: String,
}

/// `DELETE /v1/template-steps`: what a prune removed.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PrunedSteps {
    /// The snapshots deleted (cached steps no template uses).
    pub removed: Vec<String>,
}
