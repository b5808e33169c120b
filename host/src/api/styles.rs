//! Saved styles: `/v1/styles`. A tenant's own are private to it; the admin's
//! are shared with every tenant, and a name is one or the other, never both.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::openapi::Problems;
use super::problem::{Json, Path, Problem};
use super::routes::ApiResult;
use crate::model::{StyleRecord, now};
use crate::store::StyleNameTaken;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_styles, create_style)).routes(routes!(get_style, delete_style))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "thumb", "style": "image/resize,w_256/format,webp"}))]
pub struct NewStyle {
    /// 1-64 of lowercase letters, digits, `-`, `_`, `.`, starting with a letter or digit.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub name: String,
    /// The style string `PLUGIN/params`, e.g. `image/resize,w_256/format,webp`.
    pub style: String,
}

/// Save a style under a name: the caller's own (the admin's: shared with every tenant).
#[utoipa::path(
    post,
    path = "/v1/styles",
    tag = "styles",
    request_body = NewStyle,
    responses(
        (status = 201, body = StyleRecord, links(
            ("get" = (operation_id = "get_style", parameters(("name" = "$response.body#/name")))),
            ("delete" = (operation_id = "delete_style", parameters(("name" = "$response.body#/name")))),
        )),
        Problems<400, 401, 409, 413, 422>,
    ),
)]
async fn create_style(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<NewStyle>,
) -> Result<(StatusCode, Json<StyleRecord>), Problem> {
    crate::auth::check_name("style", &body.name)
        .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-style", e).field("name"))?;
    let owner = caller.tenant().map(str::to_string);
    let (plugin_name, params) = crate::bundled::split_style(&body.style);
    let installed = match crate::jobs::ready_plugin(s.jobs.plugins(), owner.as_deref(), plugin_name, &body.style) {
        Ok(installed) => installed,
        Err(e @ crate::jobs::JobError::PluginNotReady { .. }) => return Err(e.into()),
        Err(_) => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-style",
                format!(
                    "unknown plugin `{plugin_name}`; available: {}",
                    s.jobs.plugins().names(owner.as_deref()).join(", ")
                ),
            )
            .field("style"));
        }
    };
    crate::jobs::check_params(s.jobs.runtime(), &installed.plugin, params).await?;
    let record = StyleRecord {
        name: body.name,
        owner,
        plugin: plugin_name.to_string(),
        params: params.to_string(),
        created_at: now(),
    };
    let stored = record.clone();
    let saved = s.jobs.store().call(move |st| st.save_style(&stored)).await?;
    if let Err(taken) = saved {
        let name = &record.name;
        let detail = match taken {
            StyleNameTaken::Shared => {
                format!(
                    "`{name}` is the name of a shared style, which a style of your own would hide; choose another name"
                )
            }
            StyleNameTaken::Tenants(tenants) => format!(
                "tenants ({}) have styles named `{name}`, which a shared style of the name would not reach; choose another name",
                tenants.join(", ")
            ),
        };
        return Err(Problem::new(StatusCode::CONFLICT, "style-name-taken", detail).field("name"));
    }
    Ok((StatusCode::CREATED, Json(record)))
}

/// List styles: the admin's serve every tenant; a tenant's own are private to it.
#[utoipa::path(get, path = "/v1/styles", tag = "styles", responses((status = 200, body = Vec<StyleRecord>), Problems<401>))]
async fn list_styles(State(s): State<AppState>, Caller(caller): Caller) -> ApiResult<Vec<StyleRecord>> {
    let owner = caller.tenant().map(str::to_string);
    Ok(Json(
        s.jobs
            .store()
            .call(move |st| -> crate::store::Result<_> {
                match owner {
                    None => st.list_styles(None),
                    Some(t) => {
                        let mut v = st.list_styles(Some(Some(&t)))?;
                        v.extend(st.list_styles(Some(None))?);
                        Ok(v)
                    }
                }
            })
            .await?,
    ))
}

/// A style by name: the caller's own, else a shared one.
#[utoipa::path(
    get,
    path = "/v1/styles/{name}",
    tag = "styles",
    params(("name" = String, Path, description = "The style's name")),
    responses((status = 200, body = StyleRecord), Problems<400, 401, 404>),
)]
async fn get_style(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> ApiResult<StyleRecord> {
    let (n, owner) = (name.clone(), caller.tenant().map(str::to_string));
    let found = s
        .jobs
        .store()
        .call(move |st| -> crate::store::Result<_> {
            Ok(match st.get_style(owner.as_deref(), &n)? {
                Some(own) => Some(own),
                None => st.get_style(None, &n)?,
            })
        })
        .await?;
    found.map(Json).ok_or_else(|| Problem::not_found(format!("style `{name}` not found")))
}

/// Delete one of the caller's own styles (the admin: a shared one).
#[utoipa::path(
    delete,
    path = "/v1/styles/{name}",
    tag = "styles",
    params(("name" = String, Path, description = "The style's name")),
    responses((status = 204, description = "Deleted"), Problems<400, 401, 404>),
)]
async fn delete_style(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, Problem> {
    let (n, owner) = (name.clone(), caller.tenant().map(str::to_string));
    if s.jobs.store().call(move |st| st.delete_style(owner.as_deref(), &n)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("style `{name}` not found among your styles")))
    }
}
