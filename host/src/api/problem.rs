//! Errors as RFC 9457 problem+json, naming the field at fault where there is one.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::jobs::JobError;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field at fault, e.g. `output.template`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl std::fmt::Display) -> Problem {
        Problem {
            kind: format!("https://kiln.dev/problems/{kind}"),
            title: status.canonical_reason().unwrap_or("error").to_string(),
            status: status.as_u16(),
            detail: detail.to_string(),
            field: None,
        }
    }
    pub fn field(mut self, field: &str) -> Problem {
        self.field = Some(field.to_string());
        self
    }
    pub fn not_found(what: impl std::fmt::Display) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", what)
    }
    pub fn bad_request(detail: impl std::fmt::Display) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }
    pub fn internal(detail: impl std::fmt::Display) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/problem+json")], serde_json::to_string(&self).unwrap_or_default())
                .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"kiln\""));
        }
        response
    }
}

impl From<JobError> for Problem {
    fn from(e: JobError) -> Problem {
        match &e {
            JobError::Invalid { field, .. } => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-job", &e).field(field),
            JobError::UnknownStyle(_) | JobError::RefusedParams { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-style", &e).field("style")
            }
            JobError::NotFound(_) => Problem::not_found(&e),
            JobError::Forbidden { field, .. } => Problem::new(StatusCode::FORBIDDEN, "forbidden", &e).field(field),
            JobError::Quota(_) => Problem::new(StatusCode::TOO_MANY_REQUESTS, "quota-exceeded", &e),
            JobError::WrongState { .. } => Problem::new(StatusCode::CONFLICT, "wrong-state", &e),
            JobError::Internal(_) => Problem::internal(&e),
        }
    }
}

impl From<crate::jobs::UploadError> for Problem {
    fn from(e: crate::jobs::UploadError) -> Problem {
        use crate::jobs::UploadError;
        match &e {
            UploadError::Invalid { field, .. } => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-plugin", &e).field(field),
            UploadError::Load(_) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-plugin", &e).field("body"),
            UploadError::Quota(_) => Problem::new(StatusCode::TOO_MANY_REQUESTS, "quota-exceeded", &e),
            UploadError::Internal(_) => Problem::internal(&e),
        }
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Problem {
        Problem::internal(e)
    }
}

/// JSON bodies whose errors are problems naming the field, not axum's plain text.
pub struct Json<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| Problem::bad_request(e.body_text()))?;
        parse_json(&bytes).map(Json)
    }
}

/// Parse a JSON body; the error names the field at fault.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", format!("{path}: {}", e.inner()));
        if path == "." { p } else { p.field(&path) }
    })
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}
