//! Routes of the control plane: buckets, jobs and tasks (styles are in `styles`).
//! A list page costs time in proportion to the page.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::openapi::Problems;
use super::problem::{Json, Path, Problem, Query};
use crate::model::{JobId, JobRecord, JobSpec, JobState, TaskRecord, TaskState};
use crate::objects::BucketInfo;
use crate::store::TaskFilter;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_buckets))
        .routes(routes!(list_jobs, create_job))
        .routes(routes!(get_job, delete_job, update_job))
        .routes(routes!(suspend))
        .routes(routes!(resume))
        .routes(routes!(cancel))
        .routes(routes!(retry_failed))
        .routes(routes!(list_tasks))
        .routes(routes!(get_task))
}

pub(super) type ApiResult<T> = Result<Json<T>, Problem>;

/// A page of a listing; `next` is the cursor of the following page, if any.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A job's id in the path (also of the event and report routes).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct JobPath {
    /// The job's id.
    #[param(value_type = u64, example = 1)]
    pub(super) id: JobId,
}

/// A task in the path.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct TaskPath {
    /// The job's id.
    #[param(value_type = u64, example = 1)]
    id: JobId,
    /// The task's number within the job, from 1.
    #[param(example = 1)]
    seq: u64,
}

/// The body of `POST /v1/jobs`: a [`JobSpec`] and `start`. Its schema is
/// `JobSpec`'s with one more property, as the handler parses it.
pub struct NewJob;

impl utoipa::PartialSchema for NewJob {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
        let RefOr::T(Schema::Object(mut spec)) = <JobSpec as utoipa::PartialSchema>::schema() else {
            unreachable!("JobSpec derives an object schema")
        };
        let start = ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .default(Some(serde_json::Value::Bool(true)))
            .description(Some("Start at once; false stores the job as Ready, for `resume` to start."));
        spec.properties.insert("start".into(), start.into());
        let dry_run = ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .default(Some(serde_json::Value::Bool(false)))
            .description(Some("List and render without processing or storing anything: counts, bytes, a sample of output keys, collisions, keys outside the grants."));
        spec.properties.insert("dry_run".into(), dry_run.into());
        spec.description = Some("A job to create: what a JobSpec holds, and whether to start it.".into());
        spec.example = Some(serde_json::json!({
            "input": {"bucket": "photos", "prefix": "in/", "suffixes": ".jpg,.png"},
            "style": "thumb",
            "output": {"bucket": "thumbs", "template": "{dirname}/{barename}.{autoext}"},
            "tags": {"batch": "2024"},
        }));
        RefOr::T(Schema::Object(spec))
    }
}

impl utoipa::ToSchema for NewJob {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        <JobSpec as utoipa::ToSchema>::schemas(schemas);
    }
}

fn page_limit(limit: Option<usize>) -> Result<usize, Problem> {
    match limit.unwrap_or(100) {
        0 | 1001.. => Err(Problem::bad_request("limit must be between 1 and 1000").field("limit")),
        n => Ok(n),
    }
}

/// List buckets: the admin sees every bucket; a tenant, those its roles grant.
#[utoipa::path(get, path = "/v1/buckets", tag = "buckets", responses((status = 200, body = Vec<BucketInfo>), Problems<401>))]
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

/// Create a job: a [`JobSpec`] plus `start` (default true; false stores the job as Ready)
/// and `dry_run` (default false; true lists and renders without storing anything, and answers 200).
/// Every check (selection, buckets, template, role and grants, style, the plugin's
/// parameters) runs first; nothing is stored if one fails.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    request_body = NewJob,
    responses(
        (status = 201, body = JobRecord, links(
            ("get" = (operation_id = "get_job", parameters(("id" = "$response.body#/id")))),
            ("delete" = (operation_id = "delete_job", parameters(("id" = "$response.body#/id")))),
            ("suspend" = (operation_id = "suspend", parameters(("id" = "$response.body#/id")))),
            ("resume" = (operation_id = "resume", parameters(("id" = "$response.body#/id")))),
            ("cancel" = (operation_id = "cancel", parameters(("id" = "$response.body#/id")))),
            ("retry-failed" = (operation_id = "retry_failed", parameters(("id" = "$response.body#/id")))),
            ("tasks" = (operation_id = "list_tasks", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 200, description = "A dry run: what the job would do", body = crate::jobs::dry_run::DryRun),
        Problems<400, 401, 403, 413, 422, 429, 502>,
    ),
)]
async fn create_job(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<serde_json::Value>,
) -> Result<axum::response::Response, Problem> {
    use axum::response::IntoResponse;
    // Parsed in two steps: `flatten` and `deny_unknown_fields` do not mix in serde.
    let mut body = body;
    let start = match body.as_object_mut().and_then(|o| o.remove("start")) {
        None => true,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => {
            return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-job", "start: must be true or false")
                .field("start"));
        }
    };
    let dry_run = match body.as_object_mut().and_then(|o| o.remove("dry_run")) {
        None => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-job",
                "dry_run: must be true or false",
            )
            .field("dry_run"));
        }
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
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    state: Option<JobState>,
    /// `NAME=VALUE`: jobs with this tag.
    #[param(pattern = "^[^=]+=.*$")]
    tag: Option<String>,
    /// `next` of the previous page.
    #[param(pattern = "^[0-9]+$")]
    cursor: Option<String>,
    /// Jobs per page, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// List jobs, newest first: the admin sees every job; a tenant, its own.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobQuery), responses((status = 200, body = Page<JobRecord>), Problems<400, 401>))]
async fn list_jobs(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<JobQuery>,
) -> ApiResult<Page<JobRecord>> {
    let limit = page_limit(q.limit)?;
    let before = match &q.cursor {
        None => None,
        // Jobs older than this id; a number past the largest id lists from the newest job.
        Some(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) => {
            Some(c.parse::<JobId>().unwrap_or(JobId::MAX))
        }
        Some(c) => Some(
            c.parse::<JobId>().map_err(|_| Problem::bad_request(format!("invalid cursor `{c}`")).field("cursor"))?,
        ),
    };
    let tag = match &q.tag {
        None => None,
        Some(t) => Some(
            t.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| Problem::bad_request("tag must be NAME=VALUE").field("tag"))?,
        ),
    };
    let state = q.state;
    let owner = caller.tenant().map(str::to_string);
    let (items, next) = s
        .jobs
        .store()
        .call(move |st| {
            st.list_jobs(
                owner.as_deref().map(Some),
                state,
                tag.as_ref().map(|(k, v)| (k.as_str(), v.as_str())),
                before,
                limit,
            )
        })
        .await?;
    Ok(Json(Page { items, next: next.map(|n| n.to_string()) }))
}

/// A job, with its counters.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", params(JobPath), responses((status = 200, body = JobRecord), Problems<400, 401, 404>))]
async fn get_job(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(JobPath { id }): Path<JobPath>,
) -> ApiResult<JobRecord> {
    Ok(Json(s.jobs.get(&caller, id).await?))
}

/// What may change in a job after it is created.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobPatch {
    /// Higher runs first among the tenant's jobs; takes effect at once, also while running.
    pub priority: i32,
}

/// Change a job's priority.
#[utoipa::path(
    patch,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(JobPath),
    request_body = JobPatch,
    responses((status = 200, body = JobRecord), Problems<400, 401, 404, 413, 422>),
)]
async fn update_job(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(JobPath { id }): Path<JobPath>,
    Json(body): Json<JobPatch>,
) -> ApiResult<JobRecord> {
    Ok(Json(s.jobs.set_priority(&caller, id, body.priority).await?))
}

/// Delete an ended (or never started) job and its tasks.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(JobPath),
    responses((status = 204, description = "Deleted"), Problems<400, 401, 404, 409>),
)]
async fn delete_job(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(JobPath { id }): Path<JobPath>,
) -> Result<StatusCode, Problem> {
    s.jobs.delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Suspend a running job: tasks in flight finish, no more start.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/suspend",
    tag = "jobs",
    params(JobPath),
    responses((status = 200, body = JobRecord), Problems<400, 401, 404, 409>),
)]
async fn suspend(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(JobPath { id }): Path<JobPath>,
) -> ApiResult<JobRecord> {
    Ok(Json(s.jobs.suspend(&caller, id).await?))
}
/// Start a Ready job, or resume a Suspended one.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/resume",
    tag = "jobs",
    params(JobPath),
    responses((status = 200, body = JobRecord), Problems<400, 401, 403, 404, 409, 422, 429>),
)]
async fn resume(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(JobPath { id }): Path<JobPath>,
) -> ApiResult<JobRecord> {
    Ok(Json(s.jobs.resume(&caller, id).await?))
}
/// Cancel a job that has not ended: its pending tasks are skipped.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    params(JobPath),
    responses((status = 200, body = JobRecord), Problems<400, 401, 404, 409>),
)]
async fn cancel(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(JobPath { id }): Path<JobPath>,
) -> ApiResult<JobRecord> {
    Ok(Json(s.jobs.cancel(&caller, id).await?))
}
/// Run a job's failed tasks again.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/retry-failed",
    tag = "jobs",
    params(JobPath),
    responses((status = 200, body = JobRecord), Problems<400, 401, 403, 404, 409, 422, 429>),
)]
async fn retry_failed(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(JobPath { id }): Path<JobPath>,
) -> ApiResult<JobRecord> {
    Ok(Json(s.jobs.retry_failed(&caller, id).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    state: Option<TaskState>,
    /// Source keys starting with this.
    prefix: Option<String>,
    /// Source keys containing this.
    search: Option<String>,
    /// Error kind or message containing this.
    error: Option<String>,
    /// `next` of the previous page.
    cursor: Option<String>,
    /// Tasks per page, in planning order (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// List a job's tasks, in planning order, with filters.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/tasks",
    tag = "tasks",
    params(JobPath, TaskQuery),
    responses((status = 200, body = Page<TaskRecord>), Problems<400, 401, 404>),
)]
async fn list_tasks(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(JobPath { id }): Path<JobPath>,
    Query(q): Query<TaskQuery>,
) -> ApiResult<Page<TaskRecord>> {
    let limit = page_limit(q.limit)?;
    s.jobs.get(&caller, id).await?;
    let filter = TaskFilter { state: q.state, prefix: q.prefix, contains: q.search, error: q.error };
    let cursor = q.cursor;
    let (items, next) = s.jobs.store().call(move |st| st.list_tasks(id, &filter, cursor.as_deref(), limit)).await?;
    Ok(Json(Page { items, next }))
}

/// One task of a job.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/tasks/{seq}",
    tag = "tasks",
    params(TaskPath),
    responses((status = 200, body = TaskRecord), Problems<400, 401, 404>),
)]
async fn get_task(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(TaskPath { id, seq }): Path<TaskPath>,
) -> ApiResult<TaskRecord> {
    s.jobs.get(&caller, id).await?;
    s.jobs
        .store()
        .call(move |st| st.get_task(id, seq))
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found(format!("task {seq} of job {id} not found")))
}
