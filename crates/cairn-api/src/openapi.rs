//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! served at `/v1/openapi.json`.

use axum::Json;
use utoipa::OpenApi;

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
        description = "Self-hosted sandboxes for AI agents. Over TCP every request needs 'Authorization: Bearer <token>'."
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
        crate::share::export,
        crate::share::import,
        crate::share::link,
        crate::share::download,
        crate::remote::push,
        crate::remote::list,
        crate::remote::pull,
        handlers::import_image,
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
        cairn_types::api::CreateSnapshotRequest,
        cairn_types::api::RestoreRequest,
        cairn_types::api::DiffEntry,
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
        ImageInfo,
        ImportImageRequest,
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
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
