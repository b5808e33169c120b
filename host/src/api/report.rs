//! `GET /v1/jobs/{id}/report?format=csv|jsonl&scope=all|failed`: the job's
//! completion report, streamed a page of tasks at a time.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::openapi::Problems;
use super::problem::{Path, Problem, Query};
use super::routes::JobPath;
use crate::jobs::report;
use crate::model::{ReportFormat, ReportScope};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_report))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `csv` (default) or `jsonl`.
    #[param(pattern = "^(csv|jsonl|ndjson)$")]
    format: Option<String>,
    /// `all` (default) or `failed`.
    #[param(pattern = "^(all|failed)$")]
    scope: Option<String>,
}

/// One row per task: source key, outputs, state, error kind and message,
/// attempts, bytes in and out, duration. The same caller checks as `GET /v1/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/report",
    tag = "jobs",
    params(JobPath, ReportQuery),
    responses(
        (status = 200, description = "One row per task (CSV with a header, or JSON Lines), streamed", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
        )),
        Problems<400, 401, 404>,
    ),
)]
async fn get_report(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(JobPath { id }): Path<JobPath>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, Problem> {
    let format = match q.format.as_deref() {
        None | Some("csv") => ReportFormat::Csv,
        Some("jsonl" | "ndjson") => ReportFormat::Jsonl,
        Some(other) => return Err(Problem::bad_request(format!("format `{other}`: use csv or jsonl")).field("format")),
    };
    let scope = match q.scope.as_deref() {
        None | Some("all") => ReportScope::All,
        Some("failed") => ReportScope::Failed,
        Some(other) => return Err(Problem::bad_request(format!("scope `{other}`: use all or failed")).field("scope")),
    };
    s.jobs.get(&caller, id).await?;
    let name =
        format!("job-{id}-report{}.{}", if scope == ReportScope::Failed { "-failed" } else { "" }, format.extension());
    let body = Body::from_stream(report::stream(s.jobs.store().clone(), id, format, scope));
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}
