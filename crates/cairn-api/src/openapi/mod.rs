//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! served at `/v1/openapi.json`; `docs/openapi.json` is the same document, committed (a
//! test fails when they differ), and the SDKs are generated from it.
//!
//! The annotations give each operation its id, tag, parameters, bodies and the errors
//! particular to it; `finish` adds what every operation shares (the bearer scheme, the
//! errors any request can get, the error body on every error response, binary bodies).
//! Not here: the `/e2b` face (E2B's API, not ours).

mod finish;

use axum::Json;
use utoipa::OpenApi;

pub use finish::{document, document_json};

use cairn_types::api::{
    AttachControl, AttachRequest, CreateSandboxRequest, ErrorBody, ErrorDetail, ExecEvent,
    ExecRequest, ForkBatch, ForkRequest, ImageInfo, ImportImageRequest, SandboxInfo,
};
use cairn_types::{RuntimeKind, SandboxState};

use crate::handlers;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cairn",
        description = "Self-hosted sandboxes for AI agents. Over TCP every request needs 'Authorization: Bearer <token>'; over the unix socket ($CAIRN_HOME/cairnd.sock, the operator's) none. Every error is {\"error\": {\"code\", \"message\", \"details\"?}}. Exec streams newline-delimited JSON (application/x-ndjson); archives and file contents are bytes."
    ),
    tags(
        (name = "sandboxes", description = "Create, inspect, stop, start, pause, resume and destroy sandboxes"),
        (name = "exec", description = "Run commands in a sandbox (streamed, or interactive over a WebSocket) and see its processes"),
        (name = "files", description = "Read and write a sandbox's files, and read a snapshot's"),
        (name = "snapshots", description = "Snapshot a sandbox, restore a snapshot in place, fork it into new sandboxes, diff"),
        (name = "sharing", description = "Snapshots as archives: export, import, signed download links"),
        (name = "remote", description = "The remote tier: push, list and pull snapshots"),
        (name = "templates", description = "Templates: named snapshots that sandboxes start from, and the build-step cache of 'cairn template build'"),
        (name = "images", description = "Base images: import, list, remove, publish"),
        (name = "account", description = "The caller's account settings"),
        (name = "system", description = "The daemon's host")
    ),
    paths(
        handlers::create_sandbox,
        handlers::list_sandboxes,
        handlers::inspect_sandbox,
        handlers::destroy_sandbox,
        handlers::stop_sandbox,
        handlers::start_sandbox,
        handlers::exec,
        crate::attach::attach,
        handlers::doctor,
        handlers::pause_sandbox,
        handlers::resume_sandbox,
        crate::snapshots::create,
        crate::snapshots::list,
        crate::snapshots::list_all,
        crate::snapshots::inspect,
        crate::snapshots::delete,
        crate::snapshots::restore,
        crate::snapshots::fork,
        crate::snapshots::diff,
        crate::templates::create,
        crate::templates::list,
        crate::templates::inspect,
        crate::templates::delete,
        crate::templates::get_step,
        crate::templates::put_step,
        crate::templates::prune,
        crate::share::export,
        crate::share::import,
        crate::share::link,
        crate::share::download,
        crate::remote::push,
        crate::remote::list,
        crate::remote::pull,
        crate::remote::delete,
        handlers::import_image,
        crate::pull::pull,
        crate::pull::login,
        crate::pull::logout,
        handlers::list_images,
        handlers::remove_image,
        handlers::publish_image,
        crate::network::get_network,
        crate::network::put_network,
        crate::files::read,
        crate::files::write,
        crate::files::remove,
        crate::files::stat,
        crate::files::list,
        crate::files::mkdir,
        crate::files::rename,
        crate::files::read_snapshot,
        crate::files::stat_snapshot,
        crate::files::list_snapshot,
        crate::processes::list,
        crate::processes::signal
    ),
    components(schemas(
        CreateSandboxRequest,
        ForkRequest,
        ForkBatch,
        AttachRequest,
        cairn_types::api::SnapshotInfo,
        cairn_types::api::SnapshotLinkInfo,
        cairn_types::api::PushInfo,
        cairn_types::api::RemoteSnapshotInfo,
        cairn_types::remote::RemoteDeleteInfo,
        cairn_types::api::CreateSnapshotRequest,
        cairn_types::api::RestoreRequest,
        cairn_types::api::DiffEntry,
        cairn_types::api::TemplateInfo,
        cairn_types::api::CreateTemplateRequest,
        cairn_types::api::TemplateStep,
        cairn_types::api::PrunedSteps,
        cairn_types::SnapshotState,
        AttachControl,
        SandboxInfo,
        cairn_types::api::PublishedPort,
        cairn_types::api::AccountNetwork,
        cairn_types::api::UpdateAccountNetwork,
        cairn_types::api::ProcessInfo,
        cairn_types::api::SignalRequest,
        ExecRequest,
        ExecEvent,
        cairn_types::api::ProgressEvent,
        cairn_types::ProgressUnit,
        ImageInfo,
        ImportImageRequest,
        cairn_types::api::PullImageRequest,
        cairn_types::api::PullReport,
        cairn_types::api::RegistryLoginRequest,
        cairn_types::api::PublishImageRequest,
        ErrorBody,
        ErrorDetail,
        RuntimeKind,
        SandboxState,
        cairn_types::PauseReason,
        cairn_types::api::FileEntry,
        cairn_types::api::MkdirRequest,
        cairn_types::api::MoveRequest
    ))
)]
pub struct ApiDoc;

/// `GET /v1/openapi.json`.
pub async fn serve() -> Result<Json<serde_json::Value>, crate::ApiError> {
    document()
        .map(Json)
        .map_err(|e| crate::ApiError::internal(&e))
}
