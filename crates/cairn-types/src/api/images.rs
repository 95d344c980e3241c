//! Images as the API shows them, and the bodies that import, pull, publish them and log in
//! to registries.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An image as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ImageInfo {
    /// `img-` and 8 hex digits.
    pub id: String,
    /// Name, unique in its account (and among public images).
    pub name: String,
    /// Bytes its files take.
    pub size_bytes: u64,
    /// Where it was imported from (empty for a public image of another account).
    pub source: String,
    /// When it was imported.
    pub created_at: DateTime<Utc>,
    /// Published by the operator: every account may use it.
    #[serde(default)]
    pub public: bool,
    /// Imported by the caller's account (only the owner, or the operator, removes it).
    #[serde(default)]
    pub owned: bool,
    /// Special files the import left out of the image: images never carry
    /// device nodes, FIFOs or sockets (the runtime gives every sandbox its
    /// own `/dev`).
    #[serde(default)]
    pub dropped: DroppedFiles,
    /// What a pull fetched (only in the answer to `POST /v1/images/pull`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<PullReport>,
}

/// What an image pull fetched from its registry.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PullReport {
    /// The reference pulled, in full (`registry.example.com/team/app:1.2`).
    pub reference: String,
    /// The digest of the image manifest pulled (`sha256:…`).
    pub digest: String,
    /// Layers the image has.
    pub layers: u64,
    /// Layers downloaded (the others were already in the host's blob cache).
    pub layers_downloaded: u64,
    /// Bytes downloaded for them.
    pub downloaded_bytes: u64,
}

/// How many special files of each kind an image import left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DroppedFiles {
    /// Character devices (`/dev/mem`-like nodes, wherever they were).
    pub char_devices: u64,
    /// Block devices (disks, loop devices).
    pub block_devices: u64,
    /// Named pipes.
    pub fifos: u64,
    /// Unix domain sockets.
    pub sockets: u64,
}

impl DroppedFiles {
    /// All of them together.
    pub fn total(&self) -> u64 {
        self.char_devices
            .saturating_add(self.block_devices)
            .saturating_add(self.fifos)
            .saturating_add(self.sockets)
    }
}

/// `POST /v1/images` with a JSON body (the operator only): import a root filesystem
/// directory, an OCI image archive (`docker save`/`skopeo copy oci-archive:` style tar) or an
/// OCI layout tarball that lies on the daemon's host. Tenants upload the archive as the
/// request body instead (`POST /v1/images?name=NAME`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportImageRequest {
    /// Name for the new image.
    pub name: String,
    /// Absolute path on the daemon's host: a directory or a `.tar`/`.tar.gz` file.
    pub path: String,
    /// Publish it to every account at once (the operator only).
    #[serde(default)]
    pub public: bool,
}

/// `POST /v1/images/pull`: pull an image from an OCI distribution registry.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullImageRequest {
    /// `host[:port]/repository[:tag|@sha256:digest]` (Docker Hub's short forms, such as
    /// `python:3.12`, too).
    pub reference: String,
    /// Name for the new image (default: the repository's last component and the tag,
    /// `app-1.2`).
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /v1/registries/login`: credentials for a registry, kept (sealed) for the caller's
/// account and used by its pulls from that registry. Never returned by any request.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryLoginRequest {
    /// The registry, `host[:port]` as references write it (`registry.example.com`).
    pub host: String,
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl std::fmt::Debug for RegistryLoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLoginRequest")
            .field("host", &self.host)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `POST /v1/images/{name}/publish`: make an image usable by every account, or private again.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishImageRequest {
    /// `true` to publish, `false` to make it private again.
    pub public: bool,
}
