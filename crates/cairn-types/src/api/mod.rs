//! The JSON bodies of the HTTP API, shared by the server (`cairn-api`) and
//! the CLI so both always agree. Request bodies reject unknown fields.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::remote::{PushInfo, RemoteSnapshotInfo};
pub use crate::template::{CreateTemplateRequest, PrunedSteps, TemplateInfo, TemplateStep};
use crate::{NetworkMode, PauseReason, RuntimeKind, SandboxState, SnapshotState};

pub mod frames;
mod images;
mod streams;
pub use images::{
    DroppedFiles, ImageInfo, ImportImageRequest, PublishImageRequest, PullImageRequest, PullReport,
    RegistryLoginRequest,
};
pub use streams::{ExecEvent, ProgressEvent};

/// Every error the API returns: `{ "error": { "code", "message" } }`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// A machine-readable code and a sentence for people.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_argument`, `conflict`.
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
    /// Structured facts for some codes (`runtime_identity_mismatch`: `snapshot`, `recorded`, `host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// What a stateful snapshot's processes need to resume: recorded in its manifest, compared
/// with the host's before a fork or restore writes anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RuntimeIdentity {
    /// `gvisor` or `runc`.
    pub runtime: String,
    /// The runtime's version line (`runsc --version`, `runc --version`).
    pub runtime_version: Option<String>,
    /// CRIU's version (runc only).
    pub criu_version: Option<String>,
    /// The host kernel (`uname -r`).
    pub kernel_release: String,
    /// CPU architecture, and gVisor's platform.
    pub platform: String,
}

impl std::fmt::Display for RuntimeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} on kernel {} ({})",
            self.runtime,
            self.runtime_version
                .as_deref()
                .unwrap_or("(version unknown)"),
            self.kernel_release,
            self.platform
        )?;
        if let Some(c) = &self.criu_version {
            write!(f, " with CRIU {c}")?;
        }
        Ok(())
    }
}

/// A sandbox as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SandboxInfo {
    /// `sbx-` and 8 hex digits.
    pub id: String,
    /// Optional user-chosen name, unique per account.
    pub name: Option<String>,
    /// Name of the image its root filesystem came from.
    pub image: String,
    /// The OCI runtime that runs it.
    pub runtime: RuntimeKind,
    /// Where it is in its life.
    pub state: SandboxState,
    /// Why it is `failed` or `stopped`, when known.
    pub state_reason: Option<String>,
    /// CPU limit in cores.
    pub cpus: f64,
    /// Memory limit in bytes.
    pub memory_bytes: u64,
    /// Maximum number of processes.
    pub pids_limit: u32,
    /// Environment given to every process, `KEY=VALUE`.
    pub env: Vec<String>,
    /// Default working directory of `exec`.
    pub workdir: String,
    /// When it was created (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// Paused automatically after this many seconds without exec or other use; the next
    /// exec resumes it.
    pub idle_timeout_secs: Option<u64>,
    /// Paused with its processes checkpointed to disk (no memory used); `resume` restores them.
    pub memory_released: bool,
    /// While paused: when it was paused (RFC 3339); `null` otherwise.
    #[serde(default)]
    pub paused_at: Option<DateTime<Utc>>,
    /// While paused: why. `idle`: its idle timeout paused it, and the next exec resumes it;
    /// `user`: a pause request did, and it stays paused until `resume` (exec is refused).
    /// `null` when not paused.
    #[serde(default)]
    pub pause_reason: Option<PauseReason>,
    /// `none` (loopback only) or `nat` (own address on the Cairn bridge, NAT to the outside).
    #[serde(default)]
    pub network: NetworkMode,
    /// Its IPv4 address on the bridge (`nat` only); kept across stop and start.
    #[serde(default)]
    pub address: Option<String>,
    /// Sandbox TCP ports reachable on the host's 127.0.0.1.
    #[serde(default)]
    pub published: Vec<PublishedPort>,
    /// Bytes it may write into its root filesystem beyond the image or snapshot it started
    /// from (see `disk` of the create request); `null`: no limit of its own (the pool's
    /// reserve still applies).
    #[serde(default)]
    pub disk_bytes: Option<u64>,
    /// Bytes counted against `disk_bytes` so far (as of the file system's last commit, a few
    /// seconds behind); `null` when cairnd does not count writes (started with
    /// `--no-disk-quota`).
    #[serde(default)]
    pub disk_used_bytes: Option<u64>,
    /// The agent inside it (its init, which runs its commands): `connected`, `waiting`
    /// (starting, or dialing back after a snapshot), `quiesced` (a checkpoint is under way),
    /// or `unavailable: <why>` (it runs the shell init and execs through the runtime).
    /// `null` when it is not running.
    #[serde(default)]
    pub agent: Option<String>,
    /// The names of its secrets (never their values).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The snapshot its files descend from: the last one taken of it, or the one it was
    /// forked or restored from since; `null` when it was made from an image and none was
    /// taken since. With each snapshot's `parent`, this draws the lineage
    /// (`cairn snapshot tree`).
    #[serde(default)]
    pub parent_snapshot: Option<String>,
}

/// A sandbox TCP port published on the host's loopback.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct PublishedPort {
    /// Port on the host's 127.0.0.1.
    pub host_port: u16,
    /// Port inside the sandbox.
    pub port: u16,
}

/// `GET /v1/account/network` (and the answer to `PUT`): the caller's account's network settings.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AccountNetwork {
    /// The account.
    pub account: String,
    /// Whether the account's `nat` sandboxes reach each other (off by default). Other
    /// accounts' sandboxes, the gateway and the host's addresses stay out of reach either way.
    pub sandbox_to_sandbox: bool,
}

/// `PUT /v1/account/network`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccountNetwork {
    /// Let the account's `nat` sandboxes reach each other (`true`) or not (`false`); applies
    /// at once to the running ones.
    pub sandbox_to_sandbox: bool,
}

/// `POST /v1/sandboxes`: from an image, or (fork) from a snapshot.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSandboxRequest {
    /// Image name (see `GET /v1/images`); leave empty with `from_snapshot`.
    #[serde(default)]
    pub image: String,
    /// Fork: start from this snapshot's files (its id, `NAME` or `SANDBOX:NAME`), with its
    /// image, runtime and resources unless overridden here.
    #[serde(default)]
    pub from_snapshot: Option<String>,
    /// With a stateful `from_snapshot`: boot fresh on its files instead of resuming its processes.
    #[serde(default)]
    pub fresh: bool,
    /// Optional name, unique per account.
    #[serde(default)]
    pub name: Option<String>,
    /// `gvisor` (default) or `runc`.
    #[serde(default)]
    pub runtime: Option<RuntimeKind>,
    /// CPU limit in cores (default 1).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory limit such as `512M` or `2G` (default 512M).
    #[serde(default)]
    pub memory: Option<String>,
    /// Maximum number of processes (default 1024).
    #[serde(default)]
    pub pids_limit: Option<u32>,
    /// Environment, `KEY=VALUE`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Default working directory (absolute; default `/`).
    #[serde(default)]
    pub workdir: Option<String>,
    /// Pause the sandbox (with an automatic snapshot) after this long without exec or other
    /// use (inspecting or listing it does not count): `90s`, `30m`, `2h`. The next exec
    /// resumes it (its `pause_reason` is then `idle`).
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// `none` (loopback only) or `nat` (own address, NAT to the outside). Default: `none`,
    /// or `nat` when `publish` is given; a fork takes its snapshot's.
    #[serde(default)]
    pub network: Option<String>,
    /// Ports to publish on the host's 127.0.0.1, as `HOSTPORT:PORT` (e.g. `8080:80`); needs `nat`.
    #[serde(default)]
    pub publish: Vec<String>,
    /// Disk limit such as `512M` or `10G`: what the sandbox may write into its root
    /// filesystem beyond the image (or snapshot) it starts from, kept across stop, start,
    /// restore and cairnd restarts. A write over it fails inside with `EDQUOT` ("Disk quota
    /// exceeded"). Default: a fork takes its snapshot's sandbox's, otherwise cairnd's
    /// `--default-disk`; at most cairnd's `--max-disk`.
    #[serde(default)]
    pub disk: Option<String>,
    /// Secrets, `NAME` → value: files in the sandbox's `/run/secrets` (a tmpfs, mode 0400,
    /// owner root) and, with an exec's `secret_env`, variables. Stored sealed, never shown,
    /// removed before every snapshot and given back after it, a restore or a fork. Needs
    /// the agent. Names: a letter or `_`, then letters, digits or `_` (at most 64); at most
    /// 32 secrets of at most 64 KiB each.
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub secrets: crate::Secrets,
    /// A git repository cloned by cairnd into the sandbox before it starts (the sandbox
    /// needs no network or git of its own). Not with `from_snapshot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<RepoSource>,
    /// Start from one of your templates (a fork of its snapshot, with its environment and
    /// working directory under the request's). Not with `image` or `from_snapshot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

/// A git repository for a new sandbox (`cairn up --repo`).
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoSource {
    /// `https://…`, `http://…` or `git://…` (a host path or `file://…`: the operator only),
    /// without credentials in it.
    pub url: String,
    /// Branch or tag [default: the repository's default branch]. A shallow clone of it.
    #[serde(default)]
    pub branch: Option<String>,
    /// Where the checkout goes in the sandbox [default: `/workspace`].
    #[serde(default)]
    pub path: Option<String>,
    /// A token with read access, sent to the server as HTTP basic auth
    /// (`x-access-token:TOKEN`) for this clone only: never stored, in no snapshot.
    #[serde(default)]
    pub token: Option<String>,
}

impl std::fmt::Debug for RepoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoSource")
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish()
    }
}

/// `POST /v1/snapshots/{id}/fork`: `count` sandboxes from one snapshot, made concurrently.
/// The options are a single fork's (`POST /v1/sandboxes` with `from_snapshot`), but for
/// `publish` (a host port belongs to one sandbox: fork those one by one).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForkRequest {
    /// How many forks: 1 to 256 (default 1).
    #[serde(default)]
    pub count: Option<u32>,
    /// Name prefix: the forks are named `NAME-1`, `NAME-2`… (unique per account).
    #[serde(default)]
    pub name: Option<String>,
    /// With a stateful snapshot: boot fresh on its files instead of resuming its processes.
    #[serde(default)]
    pub fresh: bool,
    /// `gvisor` or `runc` (default: the snapshot's).
    #[serde(default)]
    pub runtime: Option<RuntimeKind>,
    /// CPU limit in cores (default: the snapshot's).
    #[serde(default)]
    pub cpus: Option<f64>,
    /// Memory limit such as `512M` or `2G` (default: the snapshot's).
    #[serde(default)]
    pub memory: Option<String>,
    /// Maximum number of processes (default: the snapshot's).
    #[serde(default)]
    pub pids_limit: Option<u32>,
    /// Environment, `KEY=VALUE`, over the snapshot's.
    #[serde(default)]
    pub env: Vec<String>,
    /// Default working directory (absolute; default: the snapshot's).
    #[serde(default)]
    pub workdir: Option<String>,
    /// Idle timeout of each fork (`90s`, `30m`, `2h`).
    #[serde(default)]
    pub idle_timeout: Option<String>,
    /// `none` or `nat` (default: the snapshot's).
    #[serde(default)]
    pub network: Option<String>,
    /// Disk limit of each fork such as `512M` (default: the snapshot's sandbox's).
    #[serde(default)]
    pub disk: Option<String>,
    /// Secrets of each fork, over those its snapshot's sandbox had (which every fork gets
    /// again): `NAME` → value, as in `POST /v1/sandboxes`.
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub secrets: crate::Secrets,
}

/// The answer to `POST /v1/snapshots/{id}/fork`: the forks made, in order, and why the
/// others (if any) were not. A fork that failed left nothing behind.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ForkBatch {
    /// The forks made.
    pub sandboxes: Vec<SandboxInfo>,
    /// One error for each fork that was not made (empty when all were).
    #[serde(default)]
    pub failed: Vec<ErrorDetail>,
}

/// `POST /v1/sandboxes/{id}/exec`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// Program and arguments. A single string is run by `/bin/sh -c` when the CLI is given one.
    pub cmd: Vec<String>,
    /// Extra environment, `KEY=VALUE`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory (absolute); defaults to the sandbox's.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Kill the command after this many seconds; the exit code is then 124.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Start it detached, as a child of the sandbox's init, and answer at once: the stream
    /// is one `started` event with its process id, or an `exit` (126, 127) with a message
    /// when it cannot start. Its output goes to /dev/null unless the command redirects it.
    /// Detached processes are the ones a stateful snapshot carries into forks and restores.
    #[serde(default)]
    pub detach: bool,
    /// Attached: begin the stream with a `started` event that gives the process's id (in the
    /// sandbox), which `POST /v1/sandboxes/{id}/processes/{pid}/signal` takes. Only through
    /// the agent (an exec through the runtime has no such event).
    #[serde(default)]
    pub started_event: bool,
    /// Names of the sandbox's secrets to add to the command's environment as `NAME=VALUE`
    /// (needs the agent).
    #[serde(default)]
    pub secret_env: Vec<String>,
    /// Run it as this user: a numeric `uid` or `uid:gid` (needs the agent). Default: the
    /// sandbox's (its template's `USER`), else root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The first message a client sends on the `attach` WebSocket: the command
/// and how to wire it. Then binary messages carry stdin bytes and text
/// messages carry [`AttachControl`]; the server answers with one text
/// [`ExecEvent`] per message, ending with `exit` or `error`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// Program and arguments.
    pub cmd: Vec<String>,
    /// Extra environment, `KEY=VALUE`.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory (absolute).
    #[serde(default)]
    pub workdir: Option<String>,
    /// Kill the command after this many seconds (exit code 124).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Give the command a terminal (stdout and stderr then arrive merged as `stdout`).
    #[serde(default)]
    pub tty: bool,
    /// Terminal width.
    #[serde(default)]
    pub cols: Option<u16>,
    /// Terminal height.
    #[serde(default)]
    pub rows: Option<u16>,
    /// Names of the sandbox's secrets to add to the command's environment (as exec's).
    #[serde(default)]
    pub secret_env: Vec<String>,
}

/// Control messages from an attached client.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum AttachControl {
    /// The terminal was resized.
    #[schema(title = "AttachResize")]
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// No more input.
    #[schema(title = "AttachEof")]
    Eof,
}

/// A signed download link of a snapshot's archive (`POST /v1/snapshots/{id}/link`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotLinkInfo {
    /// The URL, on cairnd's TCP listener: it downloads the archive with no token.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A snapshot as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotInfo {
    /// `snap-` and 8 hex digits.
    pub id: String,
    /// Name, unique per sandbox.
    pub name: String,
    /// The sandbox it was taken from (it may have been destroyed since).
    pub sandbox: String,
    /// That sandbox's name when the snapshot was taken (`null`: it had none), kept after the
    /// sandbox is destroyed: `SANDBOX:NAME` refers to a snapshot by either.
    pub sandbox_name: Option<String>,
    /// The snapshot this one is incremental over, if any.
    pub parent: Option<String>,
    /// Image the sandbox came from.
    pub image: String,
    /// Runtime of the source sandbox.
    pub runtime: RuntimeKind,
    /// Whether it holds process memory (a fork resumes the running processes).
    pub stateful: bool,
    /// Taken automatically by a pause (`auto-pause-…`): Cairn prunes old ones, and they do
    /// not count against the per-sandbox limit.
    pub auto: bool,
    /// Where it is in its life.
    pub state: SnapshotState,
    /// Why it failed.
    pub error: Option<String>,
    /// Bytes it holds over its parent (added and modified files).
    pub size_bytes: u64,
    /// Bytes of its whole tree.
    pub total_bytes: u64,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
    /// The id it had on the host it was exported from, when it was imported from an
    /// archive (`cairn snapshot import`); its source sandbox is then on that host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<String>,
}

/// `POST /v1/sandboxes/{id}/snapshots`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSnapshotRequest {
    /// Name (default: the UTC time); unique per sandbox.
    #[serde(default)]
    pub name: Option<String>,
    /// Also capture process memory (gvisor sandboxes): forks and restores resume the processes.
    #[serde(default)]
    pub stateful: bool,
}

/// `POST /v1/snapshots/{id}/restore`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Restore into this sandbox (id or name) instead of the source sandbox.
    #[serde(default)]
    pub to: Option<String>,
    /// With a stateful snapshot: put back its files only, and boot a running sandbox on them
    /// instead of resuming the snapshot's processes (for a host or runtime they cannot resume on).
    #[serde(default)]
    pub fresh: bool,
}

/// One difference between two trees.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DiffEntry {
    /// Path inside the sandbox.
    pub path: String,
    /// `added`, `modified` or `deleted`.
    pub kind: String,
    /// Bytes of the file.
    pub size: u64,
}

/// A file, directory or link inside a sandbox or snapshot (the files API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileEntry {
    /// Absolute path inside the sandbox.
    pub path: String,
    /// `file`, `directory`, `symlink`, `fifo`, `socket`, `char_device` or `block_device`.
    pub kind: String,
    /// Bytes (a symlink: its target's length; a directory: what the filesystem says).
    pub size: u64,
    /// Permission bits, set-id and sticky bits (e.g. 420 for 0o644).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u32,
    /// Numeric group.
    pub gid: u32,
    /// Last modification, in seconds since the Unix epoch.
    pub mtime: i64,
    /// A symlink's target, as stored (never followed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `POST /v1/sandboxes/{id}/files/mkdir`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirRequest {
    /// Absolute path of the new directory.
    pub path: String,
    /// Make missing parents too, and succeed when it exists (`mkdir -p`).
    #[serde(default)]
    pub parents: bool,
    /// Permission bits (default 0o755 = 493).
    #[serde(default)]
    pub mode: Option<u32>,
}

/// `POST /v1/sandboxes/{id}/files/move`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// Absolute path of what to move.
    pub from: String,
    /// Its new absolute path (a file there is replaced).
    pub to: String,
}

/// `GET /v1/sandboxes/{id}/processes`: one process of a running sandbox.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its pid in the sandbox.
    pub pid: u32,
    /// Its parent's pid.
    pub ppid: u32,
    /// Its command line (arguments joined by spaces), or its name in brackets.
    pub cmd: String,
}

/// `POST /v1/sandboxes/{id}/processes/{pid}/signal`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// The signal: a name (`TERM`, `SIGKILL`…) or a number; `TERM` when absent.
    #[serde(default)]
    pub signal: Option<String>,
}
