//! Plugins over HTTP: upload a component, list, get, delete, and (the admin)
//! make one public.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::openapi::Problems;
use super::problem::{Body, Json, Path, Problem, Query};
use crate::jobs::{Installed, Plugins, Upload};
use crate::model::{PluginRecord, PluginState};

pub fn router(max_plugin_size: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_plugins, upload).layer(DefaultBodyLimit::max(max_plugin_size + 1)))
        .routes(routes!(get_plugin, update_plugin, delete_plugin))
}

/// A plugin's name in the path.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct PluginPath {
    /// The plugin's name, as styles use it.
    #[param(example = "echo")]
    name: String,
}

/// A plugin component: the bytes of a `.wasm` file.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct WasmComponent(Vec<u8>);

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The name styles will use; default: the name the plugin gives in `info()`.
    #[param(example = "echo")]
    name: Option<String>,
    /// Default: the version the plugin gives in `info()`.
    #[param(example = "0.1.0")]
    version: Option<String>,
}

/// Upload a plugin: the component (`application/wasm`) as the body.
/// Size, component and imports are checked at once; then it compiles. A compile
/// done within `plugin_upload_wait` (default 2 s) answers `201` with the plugin
/// `ready`; a longer one goes on in the background and answers `202` with it
/// `compiling`: poll `GET /v1/plugins/{name}` until `ready` (or `failed`, with
/// `error`). Without `name` and `version` the upload waits for the compile,
/// since they come from the plugin's `info()`.
#[utoipa::path(
    post,
    path = "/v1/plugins",
    tag = "plugins",
    params(UploadQuery),
    request_body(description = "The component; its content type is not checked", content((WasmComponent = "application/wasm"), (WasmComponent = "application/octet-stream"))),
    responses(
        (status = 202, description = "Accepted: compiling in the background", body = PluginRecord),
        (status = 201, body = PluginRecord, links(
            ("get" = (operation_id = "get_plugin", parameters(("name" = "$response.body#/name")))),
            ("update" = (operation_id = "update_plugin", parameters(("name" = "$response.body#/name")))),
            ("delete" = (operation_id = "delete_plugin", parameters(("name" = "$response.body#/name")))),
        )),
        Problems<400, 401, 409, 413, 422, 429>,
    ),
)]
async fn upload(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<UploadQuery>,
    Body(body): Body,
) -> Result<(StatusCode, Json<PluginRecord>), Problem> {
    if body.is_empty() {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-plugin",
            "the body must be the plugin's `.wasm` component",
        )
        .field("body"));
    }
    let owner = caller.tenant().map(str::to_string);
    let quotas = owner.as_deref().map(|t| s.jobs.quotas(t));
    let upload = Upload {
        owner: owner.as_deref(),
        quotas: quotas.as_ref(),
        name: q.name,
        version: q.version,
        wasm: body.into(),
    };
    let record = s.jobs.plugins().upload(s.jobs.runtime(), s.jobs.store(), upload, s.plugin_upload_wait).await?;
    tracing::info!(plugin = %record.name, owner = ?record.owner, sha256 = %record.sha256, state = ?record.state, "plugin uploaded");
    let status = if record.state == PluginState::Ready { StatusCode::CREATED } else { StatusCode::ACCEPTED };
    Ok((status, Json(record)))
}

/// List the plugins the caller may use: its own, the public ones, the bundled ones (the admin: all).
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", responses((status = 200, body = Vec<PluginRecord>), Problems<401>))]
async fn list_plugins(State(s): State<AppState>, Caller(caller): Caller) -> Result<Json<Vec<PluginRecord>>, Problem> {
    Ok(Json(s.jobs.plugins().visible(caller.tenant())))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OwnerQuery {
    /// The admin's way to name another owner's plugin: a tenant name.
    owner: Option<String>,
}

/// The plugin `name` as the caller addresses it: a tenant reaches its own or a
/// public one (but changes only its own); the admin names the owner with `?owner=`.
fn find(
    plugins: &Plugins,
    caller: &Caller,
    owner: Option<String>,
    name: &str,
    to_change: bool,
) -> Result<Installed, Problem> {
    let not_found = || Problem::not_found(format!("plugin `{name}` not found"));
    match caller.0.tenant() {
        Some(t) => {
            if owner.as_deref().is_some_and(|o| o != t) {
                return Err(not_found());
            }
            if to_change { plugins.get(Some(t), name) } else { plugins.resolve(Some(t), name) }.ok_or_else(not_found)
        }
        None => plugins.get(owner.as_deref(), name).ok_or_else(not_found),
    }
}

/// A plugin, as the caller addresses it.
#[utoipa::path(
    get,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    params(PluginPath, OwnerQuery),
    responses((status = 200, body = PluginRecord), Problems<400, 401, 404>),
)]
async fn get_plugin(
    State(s): State<AppState>,
    caller: Caller,
    Path(PluginPath { name }): Path<PluginPath>,
    Query(q): Query<OwnerQuery>,
) -> Result<Json<PluginRecord>, Problem> {
    // An upload compiling (or failed) is the newest word on the name.
    if let Some(pending) = find_pending(s.jobs.plugins(), &caller, q.owner.clone(), &name, false) {
        return Ok(Json(pending));
    }
    Ok(Json(find(s.jobs.plugins(), &caller, q.owner, &name, false)?.record))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"public": true}))]
pub struct PluginPatch {
    /// Usable by every tenant. Only the admin may set it.
    pub public: bool,
}

/// Make a plugin public, or private again (the admin).
#[utoipa::path(
    patch,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    params(PluginPath, OwnerQuery),
    request_body = PluginPatch,
    responses((status = 200, body = PluginRecord), Problems<400, 401, 403, 404, 409, 413, 422>),
)]
async fn update_plugin(
    State(s): State<AppState>,
    caller: Caller,
    Path(PluginPath { name }): Path<PluginPath>,
    Query(q): Query<OwnerQuery>,
    Json(body): Json<PluginPatch>,
) -> Result<Json<PluginRecord>, Problem> {
    caller.admin_only("make plugins public")?;
    // No upload may finish between the read and the write below.
    let _change = s.jobs.plugins().changes.lock().await;
    let installed = find(s.jobs.plugins(), &caller, q.owner, &name, true)?;
    if installed.record.bundled {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "bundled",
            format!("plugin `{name}` is installed with the daemon and always public"),
        ));
    }
    if body.public && s.jobs.plugins().public_elsewhere(installed.record.owner.as_deref(), &name) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "name-taken",
            format!("another public plugin is named `{name}`: public names are unique"),
        )
        .field("public"));
    }
    let mut record = installed.record.clone();
    record.public = body.public;
    let stored = record.clone();
    s.jobs.store().call(move |st| st.put_plugin(&stored)).await?;
    s.jobs.plugins().insert(record.clone(), installed.plugin);
    Ok(Json(record))
}

/// Delete a plugin that no style and no running job uses.
#[utoipa::path(
    delete,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    params(PluginPath, OwnerQuery),
    responses((status = 204, description = "Deleted"), Problems<400, 401, 404, 409>),
)]
async fn delete_plugin(
    State(s): State<AppState>,
    caller: Caller,
    Path(PluginPath { name }): Path<PluginPath>,
    Query(q): Query<OwnerQuery>,
) -> Result<StatusCode, Problem> {
    // No upload may finish between the checks and the deletion.
    let _change = s.jobs.plugins().changes.lock().await;
    let installed = match find(s.jobs.plugins(), &caller, q.owner.clone(), &name, true) {
        Ok(installed) => installed,
        // Only an upload, compiling or failed: nothing uses it yet.
        Err(not_found) => {
            let pending = find_pending(s.jobs.plugins(), &caller, q.owner, &name, true).ok_or(not_found)?;
            let (n, owner) = (name.clone(), pending.owner.clone());
            let stored = s.jobs.store().call(move |st| st.get_plugin(owner.as_deref(), &n)).await?;
            if pending.bundled || stored.is_some() {
                // A stored plugin compiling again after a restart: its styles and jobs are checked once it is ready.
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "plugin-not-ready",
                    format!("plugin `{name}` is compiling after a restart: delete it once it is ready"),
                ));
            }
            let n = name.clone();
            let owner = pending.owner.clone();
            s.jobs.store().call(move |st| st.delete_plugin(owner.as_deref(), &n)).await?;
            s.jobs.plugins().remove_pending(pending.owner.as_deref(), &name);
            return Ok(StatusCode::NO_CONTENT);
        }
    };
    let record = &installed.record;
    if record.bundled {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "bundled",
            format!("plugin `{name}` is installed with the daemon: it cannot be deleted over the API"),
        ));
    }
    if let Some(job) = s.jobs.plugin_in_use(&installed.key()) {
        // Name the job only to someone who may see it.
        let visible = s.jobs.get(&caller.0, job).await.is_ok();
        let which = if visible { format!("running job {job}") } else { "a running job of another tenant".to_string() };
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "in-use",
            format!("plugin `{name}` is in use by {which}: wait for it to end, or cancel it"),
        ));
    }
    // A style uses the plugin when its owner would resolve the name to it.
    let (owner, public, n) = (record.owner.clone(), record.public, name.clone());
    let styles: Vec<String> = s
        .jobs
        .store()
        .call(move |st| st.list_styles(None))
        .await?
        .into_iter()
        .filter(|st| st.plugin == n && (st.owner == owner || public))
        .map(|st| match &st.owner {
            // Other tenants' styles are counted, not named.
            Some(o) if !caller.0.owns(Some(o)) => "(a style of another tenant)".to_string(),
            Some(o) => format!("{o}/{}", st.name),
            None => st.name.clone(),
        })
        .collect();
    if !styles.is_empty() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "in-use",
            format!("plugin `{name}` is used by style(s) {}: delete them first", styles.join(", ")),
        ));
    }
    let owner = record.owner.clone();
    let n = name.clone();
    s.jobs.store().call(move |st| st.delete_plugin(owner.as_deref(), &n)).await?;
    s.jobs.plugins().remove(record.owner.as_deref(), &name);
    s.jobs.plugins().remove_pending(record.owner.as_deref(), &name);
    Ok(StatusCode::NO_CONTENT)
}

/// An upload compiling or failed, as the caller addresses it (see [`find`]).
fn find_pending(
    plugins: &Plugins,
    caller: &Caller,
    owner: Option<String>,
    name: &str,
    to_change: bool,
) -> Option<PluginRecord> {
    match caller.0.tenant() {
        Some(t) if owner.as_deref().is_some_and(|o| o != t) => None,
        Some(t) if to_change => plugins.get_pending(Some(t), name),
        Some(t) => plugins.resolve_pending(Some(t), name),
        None => plugins.get_pending(owner.as_deref(), name),
    }
}
