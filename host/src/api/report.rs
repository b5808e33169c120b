//! `GET /v1/jobs/{id}/report?format=csv|jsonl&scope=all|failed`: the job's
//! completion report, streamed a page of tasks at a time.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;
use crate::jobs::report;
use crate::model::{JobId, ReportFormat, ReportScope};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ReportQuery {
    /// `csv` (default) or `jsonl`.
    format: Option<String>,
    /// `all` (default) or `failed`.
    scope: Option<String>,
}

/// One row per task: source key, outputs, state, error kind and message,
/// attempts, bytes in and out, duration. The same caller checks as `GET /v1/jobs/{id}`.
pub async fn get_report(State(s): State<AppState>, Caller(caller): Caller, Path(id): Path<JobId>, Query(q): Query<ReportQuery>) -> Result<Response, Problem> {
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
    let name = format!("job-{id}-report{}.{}", if scope == ReportScope::Failed { "-failed" } else { "" }, format.extension());
    let body = Body::from_stream(report::stream(s.jobs.store().clone(), id, format, scope));
    Ok((
        [(header::CONTENT_TYPE, format.content_type().to_string()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))],
        body,
    )
        .into_response())
}
