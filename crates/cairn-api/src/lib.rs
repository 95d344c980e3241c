//! Cairn's HTTP/JSON API: routes, authentication, request validation, JSON
//! errors, the OpenAPI document and streaming exec output.
//!
//! No business logic lives here: every handler asks the engine. The app is a
//! function ([`app`]) so tests can drive it in-process; [`serve`] puts it on a
//! listener with the timeouts and connection caps that keep cairnd answering.

mod attach;
mod auth;
mod e2b;
mod error;
mod files;
mod handlers;
mod json;
mod network;
mod openapi;
mod processes;
mod progress;
mod pull;
mod remote;
pub mod serve;
mod share;
mod snapshots;
mod templates;
mod trace;
mod ui;
mod upload;

use std::sync::Arc;

use axum::routing::{delete, get, post};
use axum::Router;

use cairn_engine::Engine;

pub use auth::{hash_token, new_token, Account, AuthMode, Caller, LOCAL_ACCOUNT};
pub use error::ApiError;
pub use openapi::{document as openapi_document, document_json as openapi_json, ApiDoc};

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The engine.
    pub engine: Arc<Engine>,
    /// How callers prove who they are.
    pub auth: AuthMode,
}

/// The whole HTTP application for one listener.
pub fn app(engine: Arc<Engine>, auth: AuthMode) -> Router {
    let state = AppState { engine, auth };
    Router::new()
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/v1/doctor", get(handlers::doctor))
        .route(
            "/v1/account/network",
            get(network::get_network).put(network::put_network),
        )
        .route(
            "/v1/sandboxes",
            post(handlers::create_sandbox).get(handlers::list_sandboxes),
        )
        .route(
            "/v1/sandboxes/{id}",
            get(handlers::inspect_sandbox).delete(handlers::destroy_sandbox),
        )
        .route("/v1/sandboxes/{id}/stop", post(handlers::stop_sandbox))
        .route("/v1/sandboxes/{id}/start", post(handlers::start_sandbox))
        .route("/v1/sandboxes/{id}/pause", post(handlers::pause_sandbox))
        .route("/v1/sandboxes/{id}/resume", post(handlers::resume_sandbox))
        .route("/v1/sandboxes/{id}/exec", post(handlers::exec))
        .route("/v1/sandboxes/{id}/attach", get(attach::attach))
        .route("/v1/sandboxes/{id}/processes", get(processes::list))
        .route(
            "/v1/sandboxes/{id}/processes/{pid}/signal",
            post(processes::signal),
        )
        .route(
            "/v1/sandboxes/{id}/files",
            get(files::read).put(files::write).delete(files::remove),
        )
        .route("/v1/sandboxes/{id}/files/stat", get(files::stat))
        .route("/v1/sandboxes/{id}/files/list", get(files::list))
        .route("/v1/sandboxes/{id}/files/mkdir", post(files::mkdir))
        .route("/v1/sandboxes/{id}/files/move", post(files::rename))
        .route(
            "/v1/sandboxes/{id}/snapshots",
            post(snapshots::create).get(snapshots::list),
        )
        .route(
            "/v1/snapshots",
            get(snapshots::list_all).post(share::import),
        )
        .route("/v1/snapshots/{id}/archive", get(share::export))
        .route("/v1/snapshots/{id}/link", post(share::link))
        .route("/v1/links/{token}", get(share::download))
        .route("/v1/snapshots/{id}/push", post(remote::push))
        .route("/v1/remote/snapshots", get(remote::list))
        .route("/v1/remote/snapshots/{id}/pull", post(remote::pull))
        .route("/v1/remote/snapshots/{id}", delete(remote::delete))
        .route(
            "/v1/snapshots/{id}",
            get(snapshots::inspect).delete(snapshots::delete),
        )
        .route("/v1/snapshots/{id}/restore", post(snapshots::restore))
        .route("/v1/snapshots/{id}/fork", post(snapshots::fork))
        .route("/v1/snapshots/{id}/diff", get(snapshots::diff))
        .route("/v1/snapshots/{id}/files", get(files::read_snapshot))
        .route("/v1/snapshots/{id}/files/stat", get(files::stat_snapshot))
        .route("/v1/snapshots/{id}/files/list", get(files::list_snapshot))
        .route(
            "/v1/templates",
            post(templates::create).get(templates::list),
        )
        .route(
            "/v1/templates/{name}",
            get(templates::inspect).delete(templates::delete),
        )
        .route(
            "/v1/template-steps",
            axum::routing::delete(templates::prune),
        )
        .route(
            "/v1/template-steps/{key}",
            get(templates::get_step).put(templates::put_step),
        )
        .route(
            "/v1/images",
            post(handlers::import_image).get(handlers::list_images),
        )
        .route("/v1/registries/login", post(pull::login))
        .route("/v1/registries/{host}", axum::routing::delete(pull::logout))
        .route(
            "/v1/images/pull",
            post(pull::pull).delete(pull::remove_named_pull),
        )
        .route(
            "/v1/images/{name}",
            axum::routing::delete(handlers::remove_image),
        )
        .route("/v1/images/{name}/publish", post(handlers::publish_image))
        .nest("/e2b", e2b::router())
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::index))
        .nest("/ui", ui::router())
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(axum::middleware::from_fn(trace::span))
        .with_state(state)
}
