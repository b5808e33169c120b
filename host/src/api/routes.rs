//! Routes of the control plane. A list page costs time in proportion to the page.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Caller;
use super::problem::{Json, Problem};
use crate::model::{JobId, JobRecord, JobSpec, JobState, StyleRecord, TaskRecord, TaskState, now};
use crate::objects::BucketInfo;
use crate::store::TaskFilter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/buckets", get(list_buckets))
        .route("/v1/styles", get(list_styles).post(create_style))
        .route("/v1/styles/{name}", get(get_style).delete(delete_style))
        .route("/v1/jobs", get(list_jobs).post(create_job))
        .route("/v1/jobs/{id}", get(get_job).delete(delete_job))
        .route("/v1/jobs/{id}/suspend", post(suspend))
        .route("/v1/jobs/{id}/resume", post(resume))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/jobs/{id}/retry-failed", post(retry_failed))
        .route("/v1/jobs/{id}/tasks", get(list_tasks))
        .route("/v1/jobs/{id}/tasks/{seq}", get(get_task))
        .route("/v1/jobs/{id}/report", get(super::report::get_report))
}

type ApiResult<T> = Result<Json<T>, Problem>;

/// A page of a listing; `next` is the cursor of the following page, if any.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

fn page_limit(limit: Option<usize>) -> Result<usize, Problem> {
    match limit.unwrap_or(100) {
        0 | 1001.. => Err(Problem::bad_request("limit must be between 1 and 1000").field("limit")),
        n => Ok(n),
    }
}

/// The admin sees every bucket; a tenant, those its roles grant.
async fn list_buckets(State(s): State<AppState>, Caller(caller): Caller) -> ApiResult<Vec<BucketInfo>> {
    let all = s.jobs.buckets().list();
    let Some(t) = caller.tenant().map(str::to_string) else { return Ok(Json(all)) };
    let granted: std::collections::BTreeSet<String> = s
        .jobs
        .store()
        .call(move |st| -> crate::store::Result<_> {
            let roles = st.get_tenant(&t)?.map(|t| t.roles).unwrap_or_default();
            let mut buckets = std::collections::BTreeSet::new();
            for r in roles {
                buckets.extend(st.get_role(&r)?.into_iter().flat_map(|r| r.grants).map(|g| g.bucket));
            }
            Ok(buckets)
        })
        .await?;
    Ok(Json(all.into_iter().filter(|b| granted.contains(&b.name)).collect()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStyle {
    /// Letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// The style string `PLUGIN/params`, e.g. `image/resize,w_256/format,webp`.
    pub style: String,
}

async fn create_style(State(s): State<AppState>, Caller(caller): Caller, Json(body): Json<NewStyle>) -> Result<(StatusCode, Json<StyleRecord>), Problem> {
    crate::auth::check_name("style", &body.name).map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-style", e).field("name"))?;
    let owner = caller.tenant().map(str::to_string);
    let (plugin_name, params) = crate::bundled::split_style(&body.style);
    let Some(installed) = s.jobs.plugins().resolve(owner.as_deref(), plugin_name) else {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-style",
            format!("unknown plugin `{plugin_name}`; available: {}", s.jobs.plugins().names(owner.as_deref()).join(", ")),
        )
        .field("style"));
    };
    crate::jobs::check_params(s.jobs.runtime(), &installed.plugin, params).await?;
    let record = StyleRecord { name: body.name, owner, plugin: plugin_name.to_string(), params: params.to_string(), created_at: now() };
    let stored = record.clone();
    s.jobs.store().call(move |st| st.put_style(&stored)).await?;
    Ok((StatusCode::CREATED, Json(record)))
}

/// The admin's styles serve every tenant; a tenant's own are private to it.
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

async fn get_style(State(s): State<AppState>, Caller(caller): Caller, Path(name): Path<String>) -> ApiResult<StyleRecord> {
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
async fn delete_style(State(s): State<AppState>, Caller(caller): Caller, Path(name): Path<String>) -> Result<StatusCode, Problem> {
    let (n, owner) = (name.clone(), caller.tenant().map(str::to_string));
    if s.jobs.store().call(move |st| st.delete_style(owner.as_deref(), &n)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("style `{name}` not found among your styles")))
    }
}

/// `POST /v1/jobs`: a [`JobSpec`] plus `start` (default true; false stores the job as Ready)
/// and `dry_run` (default false; true answers 200 with a [`crate::jobs::dry_run::DryRun`] and stores nothing).
async fn create_job(State(s): State<AppState>, Caller(caller): Caller, Json(body): Json<serde_json::Value>) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    // Parsed in two steps: `flatten` and `deny_unknown_fields` do not mix in serde.
    let mut body = body;
    let start = match body.as_object_mut().and_then(|o| o.remove("start")) {
        None => true,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => return Err(Problem::bad_request("start must be true or false").field("start")),
    };
    let dry_run = match body.as_object_mut().and_then(|o| o.remove("dry_run")) {
        None => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => return Err(Problem::bad_request("dry_run must be true or false").field("dry_run")),
    };
    let spec: JobSpec = serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-job", format!("{path}: {}", e.inner())).field(&path)
    })?;
    if dry_run {
        return Ok(Json(s.jobs.dry_run(&caller, spec).await?).into_response());
    }
    let job = s.jobs.create(&caller, spec, start).await?;
    Ok((StatusCode::CREATED, Json(job)).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct JobQuery {
    state: Option<JobState>,
    /// `NAME=VALUE`
    tag: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// The admin lists every job; a tenant, its own.
async fn list_jobs(State(s): State<AppState>, Caller(caller): Caller, Query(q): Query<JobQuery>) -> ApiResult<Page<JobRecord>> {
    let limit = page_limit(q.limit)?;
    let before = match &q.cursor {
        None => None,
        Some(c) => Some(c.parse::<JobId>().map_err(|_| Problem::bad_request(format!("invalid cursor `{c}`")).field("cursor"))?),
    };
    let tag = match &q.tag {
        None => None,
        Some(t) => Some(t.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| Problem::bad_request("tag must be NAME=VALUE").field("tag"))?),
    };
    let state = q.state;
    let owner = caller.tenant().map(str::to_string);
    let (items, next) = s
        .jobs
        .store()
        .call(move |st| st.list_jobs(owner.as_deref().map(Some), state, tag.as_ref().map(|(k, v)| (k.as_str(), v.as_str())), before, limit))
        .await?;
    Ok(Json(Page { items, next: next.map(|n| n.to_string()) }))
}

async fn get_job(State(s): State<AppState>, Caller(caller): Caller, Path(id): Path<JobId>) -> ApiResult<JobRecord> {
    Ok(Json(s.jobs.get(&caller, id).await?))
}

async fn delete_job(State(s): State<AppState>, Caller(caller): Caller, Path(id): Path<JobId>) -> Result<StatusCode, Problem> {
    s.jobs.delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn suspend(State(s): State<AppState>, Caller(caller): Caller, Path(id): Path<JobId>) -> ApiResult<JobRecord> {
    Ok(Json(s.jobs.suspend(&caller, id).await?))
}
async fn resume(State(s): State<AppState>, Caller(caller): Caller, Path(id): Path<JobId>) -> ApiResult<JobRecord> {
    Ok(Json(s.jobs.resume(&caller, id).await?))
}
async fn cancel(State(s): State<AppState>, Caller(caller): Caller, Path(id): Path<JobId>) -> ApiResult<JobRecord> {
    Ok(Json(s.jobs.cancel(&caller, id).await?))
}
async fn retry_failed(State(s): State<AppState>, Caller(caller): Caller, Path(id): Path<JobId>) -> ApiResult<JobRecord> {
    Ok(Json(s.jobs.retry_failed(&caller, id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct TaskQuery {
    state: Option<TaskState>,
    /// Source keys starting with this.
    prefix: Option<String>,
    /// Source keys containing this.
    search: Option<String>,
    /// Error kind or message containing this.
    error: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

async fn list_tasks(State(s): State<AppState>, Caller(caller): Caller, Path(id): Path<JobId>, Query(q): Query<TaskQuery>) -> ApiResult<Page<TaskRecord>> {
    let limit = page_limit(q.limit)?;
    s.jobs.get(&caller, id).await?;
    let filter = TaskFilter { state: q.state, prefix: q.prefix, contains: q.search, error: q.error };
    let cursor = q.cursor;
    let (items, next) = s.jobs.store().call(move |st| st.list_tasks(id, &filter, cursor.as_deref(), limit)).await?;
    Ok(Json(Page { items, next }))
}

async fn get_task(State(s): State<AppState>, Caller(caller): Caller, Path((id, seq)): Path<(JobId, u64)>) -> ApiResult<TaskRecord> {
    s.jobs.get(&caller, id).await?;
    s.jobs
        .store()
        .call(move |st| st.get_task(id, seq))
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("task {seq} of job {id} not found")))
}
