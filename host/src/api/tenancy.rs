//! Tenants, their tokens, and roles: the admin's part of the control plane,
//! plus `whoami` for everyone.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::openapi::Problems;
use super::problem::{Body, Json, Path, Problem};
use crate::auth::{
    IssuedToken, QuotasPatch, RoleRecord, TenantRecord, TokenRecord, check_tenant_name, generate_token, token_digest,
    token_id,
};
use crate::model::now;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
        .routes(routes!(list_tokens, issue_token))
        .routes(routes!(revoke_token))
        .routes(routes!(list_roles, put_role))
        .routes(routes!(get_role, delete_role))
}

/// A tenant's name in the path.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct TenantPath {
    /// The tenant's name.
    #[param(example = "acme")]
    name: String,
}

/// A token of a tenant in the path.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct TokenPath {
    /// The tenant's name.
    #[param(example = "acme")]
    name: String,
    /// The token's public id, from listing the tenant's tokens.
    id: String,
}

/// A role's name in the path.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct RolePath {
    /// The role's name.
    #[param(example = "thumbnailer")]
    name: String,
}

/// Who the token names.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub admin: bool,
    /// The caller's tenant, with its roles and quotas; absent for the admin.
    pub tenant: Option<TenantRecord>,
}

/// Who the token names: the admin, or a tenant with its roles and quotas.
#[utoipa::path(get, path = "/v1/whoami", tag = "tenants", responses((status = 200, body = WhoAmI), Problems<401>))]
async fn whoami(State(s): State<AppState>, Caller(caller): Caller) -> Result<Json<WhoAmI>, Problem> {
    let tenant = match caller.tenant().map(str::to_string) {
        None => None,
        Some(t) => s.jobs.store().call(move |st| st.get_tenant(&t)).await?,
    };
    Ok(Json(WhoAmI { admin: caller.is_admin(), tenant }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "acme", "roles": ["thumbnailer"], "quotas": {"running_jobs": 2, "task_deadline": "10s"}}))]
pub struct NewTenant {
    /// 1-64 of lowercase letters, digits, `-`, `_`, `.`.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub name: String,
    /// Roles granted to the tenant; each must exist.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Quotas that differ from the daemon's defaults.
    #[serde(default)]
    pub quotas: QuotasPatch,
}

/// A change to a tenant: absent fields are kept.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"roles": ["thumbnailer"], "quotas": {"tasks_in_flight": 16}}))]
pub struct TenantPatch {
    /// Replaces the tenant's roles.
    pub roles: Option<Vec<String>>,
    #[serde(default)]
    pub quotas: QuotasPatch,
}

async fn check_roles_exist(s: &AppState, roles: &[String]) -> Result<(), Problem> {
    for (i, r) in roles.iter().enumerate() {
        let name = r.clone();
        if s.jobs.store().call(move |st| st.get_role(&name)).await?.is_none() {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-tenant",
                format!("role `{r}` does not exist: create it first"),
            )
            .field(&format!("roles[{i}]")));
        }
    }
    Ok(())
}

fn check_quotas(q: &crate::auth::Quotas) -> Result<(), Problem> {
    q.check().map_err(|(field, msg)| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-tenant", format!("{field}: {msg}")).field(field)
    })
}

/// Create a tenant (the admin).
#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "tenants",
    request_body = NewTenant,
    responses(
        (status = 201, body = TenantRecord, links(
            ("get" = (operation_id = "get_tenant", parameters(("name" = "$response.body#/name")))),
            ("update" = (operation_id = "update_tenant", parameters(("name" = "$response.body#/name")))),
            ("delete" = (operation_id = "delete_tenant", parameters(("name" = "$response.body#/name")))),
            ("tokens" = (operation_id = "list_tokens", parameters(("name" = "$response.body#/name")))),
            ("issue-token" = (operation_id = "issue_token", parameters(("name" = "$response.body#/name")))),
        )),
        Problems<400, 401, 403, 409, 413, 422>,
    ),
)]
async fn create_tenant(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<NewTenant>,
) -> Result<(StatusCode, Json<TenantRecord>), Problem> {
    caller.admin_only("create tenants")?;
    check_tenant_name(&body.name)
        .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-tenant", e).field("name"))?;
    check_roles_exist(&s, &body.roles).await?;
    let mut quotas = s.default_quotas;
    quotas.apply(&body.quotas);
    check_quotas(&quotas)?;
    let tenant = TenantRecord { name: body.name, roles: body.roles, quotas, created_at: now() };
    let stored = tenant.clone();
    if !s.jobs.store().call(move |st| st.create_tenant(&stored)).await? {
        return Err(Problem::new(StatusCode::CONFLICT, "exists", format!("tenant `{}` already exists", tenant.name))
            .field("name"));
    }
    s.jobs.set_quotas(&tenant.name, Some(tenant.quotas));
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// List tenants (the admin).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", responses((status = 200, body = Vec<TenantRecord>), Problems<401, 403>))]
async fn list_tenants(State(s): State<AppState>, caller: Caller) -> Result<Json<Vec<TenantRecord>>, Problem> {
    caller.admin_only("list tenants")?;
    Ok(Json(s.jobs.store().call(|st| st.list_tenants()).await?))
}

/// The admin may read any tenant; a tenant, only itself.
async fn find_tenant(s: &AppState, caller: &Caller, name: &str) -> Result<TenantRecord, Problem> {
    let not_found = || Problem::not_found(format!("tenant `{name}` not found"));
    if !caller.0.is_admin() && caller.0.tenant() != Some(name) {
        return Err(not_found());
    }
    let n = name.to_string();
    s.jobs.store().call(move |st| st.get_tenant(&n)).await?.ok_or_else(not_found)
}

/// A tenant: the admin may read any; a tenant, only itself.
#[utoipa::path(get, path = "/v1/tenants/{name}", tag = "tenants", params(TenantPath), responses((status = 200, body = TenantRecord), Problems<400, 401, 404>))]
async fn get_tenant(
    State(s): State<AppState>,
    caller: Caller,
    Path(TenantPath { name }): Path<TenantPath>,
) -> Result<Json<TenantRecord>, Problem> {
    Ok(Json(find_tenant(&s, &caller, &name).await?))
}

/// Change a tenant's roles or quotas (the admin); absent fields are kept.
#[utoipa::path(
    patch,
    path = "/v1/tenants/{name}",
    tag = "tenants",
    params(TenantPath),
    request_body = TenantPatch,
    responses((status = 200, body = TenantRecord), Problems<400, 401, 403, 404, 413, 422>),
)]
async fn update_tenant(
    State(s): State<AppState>,
    caller: Caller,
    Path(TenantPath { name }): Path<TenantPath>,
    Json(body): Json<TenantPatch>,
) -> Result<Json<TenantRecord>, Problem> {
    caller.admin_only("change tenants")?;
    let mut tenant = find_tenant(&s, &caller, &name).await?;
    if let Some(roles) = body.roles {
        check_roles_exist(&s, &roles).await?;
        tenant.roles = roles;
    }
    tenant.quotas.apply(&body.quotas);
    check_quotas(&tenant.quotas)?;
    let stored = tenant.clone();
    s.jobs.store().call(move |st| st.put_tenant(&stored)).await?;
    s.jobs.set_quotas(&tenant.name, Some(tenant.quotas));
    Ok(Json(tenant))
}

/// Delete a tenant and its tokens. Refused while it owns jobs or plugins, so nothing stored is orphaned.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{name}",
    tag = "tenants",
    params(TenantPath),
    responses((status = 204, description = "Deleted, with its tokens"), Problems<400, 401, 403, 404, 409>),
)]
async fn delete_tenant(
    State(s): State<AppState>,
    caller: Caller,
    Path(TenantPath { name }): Path<TenantPath>,
) -> Result<StatusCode, Problem> {
    caller.admin_only("delete tenants")?;
    find_tenant(&s, &caller, &name).await?;
    let n = name.clone();
    let (has_jobs, plugins) = s
        .jobs
        .store()
        .call(move |st| -> crate::store::Result<_> {
            Ok((st.tenant_has_jobs(&n)?, st.list_plugins(Some(Some(&n)))?.len()))
        })
        .await?;
    if has_jobs || plugins > 0 {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "in-use",
            format!("tenant `{name}` still owns jobs or {plugins} plugin(s): delete them first"),
        ));
    }
    let n = name.clone();
    s.jobs.store().call(move |st| st.delete_tenant(&n)).await?;
    s.jobs.set_quotas(&name, None);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"label": "ci"}))]
pub struct NewToken {
    /// A note for whoever lists the tokens later, e.g. `ci`.
    #[serde(default)]
    pub label: String,
}

/// Issue a token for a tenant (the admin). The body is optional: `{"label": "ci"}`.
/// The secret is in this response only.
#[utoipa::path(
    post,
    path = "/v1/tenants/{name}/tokens",
    tag = "tokens",
    params(TenantPath),
    request_body(content = Option<NewToken>, description = "Optional"),
    responses(
        (status = 201, body = IssuedToken, links(
            ("revoke" = (operation_id = "revoke_token", parameters(("name" = "$response.body#/tenant"), ("id" = "$response.body#/id")))),
        )),
        Problems<400, 401, 403, 404, 413, 422>,
    ),
)]
async fn issue_token(
    State(s): State<AppState>,
    caller: Caller,
    Path(TenantPath { name }): Path<TenantPath>,
    Body(body): Body,
) -> Result<(StatusCode, Json<IssuedToken>), Problem> {
    caller.admin_only("issue tokens")?;
    find_tenant(&s, &caller, &name).await?;
    let label = if body.is_empty() {
        String::new()
    } else {
        super::problem::parse_json::<Option<NewToken>>(&body)?.unwrap_or_default().label
    };
    if label.len() > 200 {
        return Err(
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-token", "label: at most 200 bytes").field("label")
        );
    }
    let token = generate_token();
    let digest = token_digest(&token);
    let record = TokenRecord { id: token_id(&digest), tenant: Some(name), label, created_at: now() };
    let stored = record.clone();
    s.jobs.store().call(move |st| st.put_token(&digest, &stored)).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            id: record.id,
            tenant: record.tenant,
            label: record.label,
            token,
            created_at: record.created_at,
        }),
    ))
}

/// A tenant's tokens, without their secrets (the admin).
#[utoipa::path(
    get,
    path = "/v1/tenants/{name}/tokens",
    tag = "tokens",
    params(TenantPath),
    responses((status = 200, body = Vec<TokenRecord>), Problems<400, 401, 403, 404>),
)]
async fn list_tokens(
    State(s): State<AppState>,
    caller: Caller,
    Path(TenantPath { name }): Path<TenantPath>,
) -> Result<Json<Vec<TokenRecord>>, Problem> {
    caller.admin_only("list tokens")?;
    find_tenant(&s, &caller, &name).await?;
    Ok(Json(s.jobs.store().call(move |st| st.list_tokens(&name)).await?))
}

/// Revoke a token (the admin): it stops working at once.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{name}/tokens/{id}",
    tag = "tokens",
    params(TokenPath),
    responses((status = 204, description = "Revoked"), Problems<400, 401, 403, 404>),
)]
async fn revoke_token(
    State(s): State<AppState>,
    caller: Caller,
    Path(TokenPath { name, id }): Path<TokenPath>,
) -> Result<StatusCode, Problem> {
    caller.admin_only("revoke tokens")?;
    let (n, i) = (name.clone(), id.clone());
    if s.jobs.store().call(move |st| st.revoke_token(&n, &i)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("tenant `{name}` has no token `{id}`")))
    }
}

/// A role to create: its name and grants (the daemon sets `created_at`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "thumbnailer",
    "grants": [{"bucket": "photos", "prefix": "in/", "access": "read"}, {"bucket": "thumbs", "prefix": "", "access": "write"}]
}))]
pub struct NewRole {
    /// 1-64 of lowercase letters, digits, `-`, `_`, `.`, starting with a letter or digit.
    #[schema(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$")]
    name: String,
    grants: Vec<crate::auth::Grant>,
}

/// Create a role, or replace its grants (the admin). Running jobs keep the grants they started with.
#[utoipa::path(
    post,
    path = "/v1/roles",
    tag = "roles",
    request_body = NewRole,
    responses(
        (status = 201, body = RoleRecord, links(
            ("get" = (operation_id = "get_role", parameters(("name" = "$response.body#/name")))),
            ("delete" = (operation_id = "delete_role", parameters(("name" = "$response.body#/name")))),
        )),
        Problems<400, 401, 403, 413, 422>,
    ),
)]
async fn put_role(
    State(s): State<AppState>,
    caller: Caller,
    Json(new): Json<NewRole>,
) -> Result<(StatusCode, Json<RoleRecord>), Problem> {
    caller.admin_only("manage roles")?;
    let mut role = RoleRecord { name: new.name, grants: new.grants, created_at: 0 };
    role.check().map_err(|e| {
        let field = e.split(':').next().filter(|f| f.starts_with("grants[")).unwrap_or("name").to_string();
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-role", e).field(&field)
    })?;
    role.created_at = now();
    let stored = role.clone();
    s.jobs.store().call(move |st| st.put_role(&stored)).await?;
    Ok((StatusCode::CREATED, Json(role)))
}

/// List roles: the admin sees every role; a tenant, those granted to it.
#[utoipa::path(get, path = "/v1/roles", tag = "roles", responses((status = 200, body = Vec<RoleRecord>), Problems<401>))]
async fn list_roles(State(s): State<AppState>, Caller(caller): Caller) -> Result<Json<Vec<RoleRecord>>, Problem> {
    let tenant = caller.tenant().map(str::to_string);
    let roles = s
        .jobs
        .store()
        .call(move |st| -> crate::store::Result<Vec<RoleRecord>> {
            let all = st.list_roles()?;
            Ok(match tenant {
                None => all,
                Some(t) => {
                    let granted = st.get_tenant(&t)?.map(|t| t.roles).unwrap_or_default();
                    all.into_iter().filter(|r| granted.contains(&r.name)).collect()
                }
            })
        })
        .await?;
    Ok(Json(roles))
}

/// A role, if the caller sees it.
#[utoipa::path(get, path = "/v1/roles/{name}", tag = "roles", params(RolePath), responses((status = 200, body = RoleRecord), Problems<400, 401, 404>))]
async fn get_role(
    State(s): State<AppState>,
    caller: Caller,
    Path(RolePath { name }): Path<RolePath>,
) -> Result<Json<RoleRecord>, Problem> {
    let Json(roles) = list_roles(State(s), caller).await?;
    roles
        .into_iter()
        .find(|r| r.name == name)
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("role `{name}` not found")))
}

/// Delete a role no tenant holds (the admin).
#[utoipa::path(
    delete,
    path = "/v1/roles/{name}",
    tag = "roles",
    params(RolePath),
    responses((status = 204, description = "Deleted"), Problems<400, 401, 403, 404, 409>),
)]
async fn delete_role(
    State(s): State<AppState>,
    caller: Caller,
    Path(RolePath { name }): Path<RolePath>,
) -> Result<StatusCode, Problem> {
    caller.admin_only("manage roles")?;
    let n = name.clone();
    let holders: Vec<String> = s
        .jobs
        .store()
        .call(move |st| st.list_tenants())
        .await?
        .into_iter()
        .filter(|t| t.roles.contains(&n))
        .map(|t| t.name)
        .collect();
    if !holders.is_empty() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "in-use",
            format!("role `{name}` is granted to {}: take it from them first", holders.join(", ")),
        ));
    }
    let n = name.clone();
    if s.jobs.store().call(move |st| st.delete_role(&n)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("role `{name}` not found")))
    }
}
