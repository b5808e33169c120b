//! `GET /v1/jobs/{id}/tasks/{seq}/outputs/{n}`: a task's output object, as
//! the bucket holds it now. The console's download links use it; whoever may
//! see the job may read what its tasks wrote.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::openapi::Problems;
use super::problem::{Path, Problem};
use crate::model::JobId;
use crate::objects::ObjectsError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_output))
}

/// One output of a task in the path.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct OutputPath {
    /// The job's id.
    #[param(value_type = u64, example = 1)]
    id: JobId,
    /// The task's number within the job, from 1.
    #[param(example = 1)]
    seq: u64,
    /// The output's index in the task's `outputs`, from 0.
    #[param(example = 0)]
    n: u32,
}

/// The bytes of one output of a task, from the job's output bucket, as an attachment.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/tasks/{seq}/outputs/{n}",
    tag = "tasks",
    params(OutputPath),
    responses(
        (status = 200, description = "The object's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        Problems<400, 401, 404, 502>,
    ),
)]
async fn get_output(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(OutputPath { id, seq, n }): Path<OutputPath>,
) -> Result<Response, Problem> {
    let job = s.jobs.get(&caller, id).await?;
    let task = s
        .jobs
        .store()
        .call(move |st| st.get_task(id, seq))
        .await?
        .ok_or_else(|| Problem::not_found(format!("task {seq} of job {id} not found")))?;
    let Some(key) = task.outputs.get(n as usize) else {
        return Err(Problem::not_found(format!(
            "task {seq} of job {id} has {} output(s); no output {n}",
            task.outputs.len()
        ))
        .field("n"));
    };
    let bucket_name = &job.spec.output.bucket;
    let unavailable = |e: ObjectsError| match e {
        ObjectsError::NotFound { .. } => {
            Problem::not_found(format!("output `{key}` is no longer in bucket `{bucket_name}`"))
        }
        e => Problem::new(StatusCode::BAD_GATEWAY, "bucket-unavailable", e),
    };
    let bucket = s.jobs.buckets().get(bucket_name).map_err(unavailable)?;
    let meta = bucket.head(key).await.map_err(unavailable)?;
    let bytes = bucket.read_from(key, 0).await.map_err(unavailable)?;
    let body = Body::from_stream(bytes.map_err(std::io::Error::other));
    let name = attachment_name(key);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    // Always an attachment of no particular type: a plugin's output is never rendered as a page.
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let disposition = format!("attachment; filename=\"{name}\"");
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("sanitised"));
    if let Some(size) = meta.size {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    Ok(response)
}

/// The key's last segment, with anything a header or a file system could
/// misread replaced by `_`.
fn attachment_name(key: &str) -> String {
    let last = key.rsplit('/').next().unwrap_or(key);
    let name: String = last
        .chars()
        .take(200)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+') { c } else { '_' })
        .collect();
    if name.is_empty() || name.starts_with('.') { format!("output{name}") } else { name }
}

#[cfg(test)]
mod tests {
    #[test]
    fn attachment_names_are_plain() {
        assert_eq!(super::attachment_name("thumbs/a b/cat.webp"), "cat.webp");
        assert_eq!(super::attachment_name("x/\"; evil=\r\n.jpg"), "___evil___.jpg");
        assert_eq!(super::attachment_name(".hidden"), "output.hidden");
    }
}
