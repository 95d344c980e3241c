//! Template routes: create (name a snapshot), list, inspect, remove; and the account's
//! build-step cache that `cairn template build` reads and fills.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use cairn_engine::NewTemplate;
use cairn_types::api::{CreateTemplateRequest, ErrorBody, PrunedSteps, TemplateInfo, TemplateStep};

use crate::json::ApiJson;
use crate::{Account, ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

/// Name one of your snapshots as a template (or, with `replace`, point a template at another).
#[utoipa::path(post, operation_id = "createTemplate", tag = "templates", path = "/v1/templates", request_body = CreateTemplateRequest,
    responses((status = 201, body = TemplateInfo), (status = 400, body = ErrorBody, description = "invalid_argument: a bad name, environment, working directory or user"),
              (status = 404, body = ErrorBody, description = "not_found: no such snapshot"),
              (status = 409, body = ErrorBody, description = "conflict: the name is taken (use replace) or the snapshot is not ready")))]
pub async fn create(
    State(st): State<AppState>,
    Account(account): Account,
    ApiJson(req): ApiJson<CreateTemplateRequest>,
) -> ApiResult<(StatusCode, Json<TemplateInfo>)> {
    let t = NewTemplate {
        name: req.name,
        from_snapshot: req.from_snapshot,
        env: req.env,
        workdir: req.workdir,
        user: req.user,
        replace: req.replace,
    };
    let info = st
        .engine
        .run_to_end(move |e| async move { e.create_template(&account, &t).await })
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Your templates, by name.
#[utoipa::path(get, operation_id = "listTemplates", tag = "templates", path = "/v1/templates",
    responses((status = 200, body = Vec<TemplateInfo>)))]
pub async fn list(
    State(st): State<AppState>,
    Account(account): Account,
) -> ApiResult<Json<Vec<TemplateInfo>>> {
    Ok(Json(st.engine.list_templates(&account).await?))
}

/// One of your templates.
#[utoipa::path(get, operation_id = "getTemplate", tag = "templates", path = "/v1/templates/{name}", params(("name" = String, Path, description = "template name")),
    responses((status = 200, body = TemplateInfo), (status = 404, body = ErrorBody)))]
pub async fn inspect(
    State(st): State<AppState>,
    Account(account): Account,
    Path(name): Path<String>,
) -> ApiResult<Json<TemplateInfo>> {
    Ok(Json(st.engine.inspect_template(&account, &name).await?))
}

/// Remove a template; the cached build steps no other template descends from are deleted
/// with it (a snapshot named with `from_snapshot` that is no build step stays).
#[utoipa::path(delete, operation_id = "deleteTemplate", tag = "templates", path = "/v1/templates/{name}", params(("name" = String, Path, description = "template name")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(st): State<AppState>,
    Account(account): Account,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    st.engine
        .run_to_end(move |e| async move { e.remove_template(&account, &name).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The snapshot a cached build step of yours left (404 when it is not cached).
#[utoipa::path(get, operation_id = "getTemplateStep", tag = "templates", path = "/v1/template-steps/{key}", params(("key" = String, Path, description = "the step's key (0-9, a-z, -; at most 128)")),
    responses((status = 200, body = TemplateStep), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_step(
    State(st): State<AppState>,
    Account(account): Account,
    Path(key): Path<String>,
) -> ApiResult<Json<TemplateStep>> {
    let id = st.engine.template_step(&account, &key).await?;
    Ok(Json(TemplateStep {
        snapshot: id.to_string(),
    }))
}

/// Cache a build step of yours as one of your ready snapshots.
#[utoipa::path(put, operation_id = "putTemplateStep", tag = "templates", path = "/v1/template-steps/{key}", params(("key" = String, Path, description = "the step's key (0-9, a-z, -; at most 128)")), request_body = TemplateStep,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody, description = "not_found: no such snapshot"), (status = 409, body = ErrorBody)))]
pub async fn put_step(
    State(st): State<AppState>,
    Account(account): Account,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<TemplateStep>,
) -> ApiResult<StatusCode> {
    st.engine
        .put_template_step(&account, &key, &req.snapshot)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete your cached build steps that no template descends from (left by failed or
/// interrupted builds).
#[utoipa::path(delete, operation_id = "pruneTemplateSteps", tag = "templates", path = "/v1/template-steps",
    responses((status = 200, body = PrunedSteps)))]
pub async fn prune(
    State(st): State<AppState>,
    Account(account): Account,
) -> ApiResult<Json<PrunedSteps>> {
    let removed = st
        .engine
        .run_to_end(move |e| async move { e.prune_steps(&account, None).await })
        .await?;
    Ok(Json(PrunedSteps {
        removed: removed.iter().map(ToString::to_string).collect(),
    }))
}
