//! Errors as RFC 9457 problem+json, naming the field at fault where there is one.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
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
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            serde_json::to_string(&self).unwrap_or_default(),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE || self.kind.ends_with("/plugin-not-ready") {
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"kiln\""));
        }
        response
    }
}

impl From<JobError> for Problem {
    fn from(e: JobError) -> Problem {
        let e = match e {
            JobError::Store(store) => return store.into(),
            e => e,
        };
        match &e {
            JobError::Invalid { field, .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-job", &e).field(field)
            }
            JobError::UnknownStyle(_) | JobError::RefusedParams { .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-style", &e).field("style")
            }
            JobError::PluginNotReady { .. } => {
                Problem::new(StatusCode::CONFLICT, "plugin-not-ready", &e).field("style")
            }
            JobError::NotFound(_) => Problem::not_found(&e),
            JobError::Forbidden { field, .. } => Problem::new(StatusCode::FORBIDDEN, "forbidden", &e).field(field),
            JobError::Quota(_) => Problem::new(StatusCode::TOO_MANY_REQUESTS, "quota-exceeded", &e),
            JobError::WrongState { .. } => Problem::new(StatusCode::CONFLICT, "wrong-state", &e),
            JobError::Internal(_) => Problem::internal(&e),
            // The bucket, not Kiln, failed: a gateway's error, naming the bucket.
            JobError::Upstream(_) => Problem::new(StatusCode::BAD_GATEWAY, "bucket-unavailable", &e),
            JobError::Store(_) => unreachable!("handled above"),
        }
    }
}

impl From<crate::jobs::UploadError> for Problem {
    fn from(e: crate::jobs::UploadError) -> Problem {
        use crate::jobs::UploadError;
        match &e {
            UploadError::Invalid { field, .. } => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-plugin", &e).field(field)
            }
            UploadError::Load(_) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-plugin", &e).field("body"),
            UploadError::Quota(_) => Problem::new(StatusCode::TOO_MANY_REQUESTS, "quota-exceeded", &e),
            UploadError::Superseded => Problem::new(StatusCode::CONFLICT, "superseded", &e).field("name"),
            UploadError::Internal(_) => Problem::internal(&e),
        }
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Problem {
        use crate::store::StoreError;
        match &e {
            // A full or failing disk is a pause: clients retry.
            StoreError::Unavailable(_) | StoreError::Io(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store-unavailable", &e)
            }
            StoreError::Corrupt { .. } => Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt-record", &e),
            _ => Problem::internal(&e),
        }
    }
}

/// JSON bodies whose errors are problems naming the field, not axum's plain text.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Body(bytes) = Body::from_request(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// The raw body; a body too large (413) or cut short (400) is a problem.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(req, state).await.map(Body).map_err(|e| {
            let kind = if e.status() == StatusCode::PAYLOAD_TOO_LARGE { "too-large" } else { "bad-body" };
            Problem::new(e.status(), kind, e.body_text()).field("body")
        })
    }
}

/// Path parameters whose parse errors are 400 problems naming the parameter.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::path::{ErrorKind, RawPathParams};
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) if e.status().is_client_error() => {
                let raw = RawPathParams::from_request_parts(parts, state).await.ok();
                let keys: Vec<(String, String)> =
                    raw.iter().flat_map(|r| r.iter().map(|(k, v)| (k.to_string(), v.to_string()))).collect();
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. } | ErrorKind::InvalidUtf8InPathParam { key } => {
                        Some(key.clone())
                    }
                    ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
                    ErrorKind::ParseErrorAtIndex { index, .. } => keys.get(*index).map(|(k, _)| k.clone()),
                    ErrorKind::ParseError { value, .. } => {
                        keys.iter().find(|(_, v)| v == value).map(|(k, _)| k.clone())
                    }
                    _ => None,
                };
                let p = Problem::new(StatusCode::BAD_REQUEST, "bad-path", e.body_text());
                Err(match field {
                    Some(f) => p.field(&f),
                    None => p,
                })
            }
            Err(e) => Err(Problem::new(e.status(), "bad-path", e.body_text())),
        }
    }
}

/// A query string whose parse errors are 400 problems, not axum's plain text.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e| Problem::new(e.status(), "bad-query", e.body_text()))
    }
}

/// No route has this path: a 404 problem rather than an empty body.
pub async fn no_route(uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no-route",
        format!("no route `{}`; the routes are listed at /openapi.json", uri.path()),
    )
}

/// The path exists, the method does not: a 405 problem (axum keeps the `Allow` header).
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("`{}` does not take {method}", uri.path()),
    )
}

/// Parse a JSON body; the error names the field at fault.
///
/// Every body the API takes is an object (or, where a body is optional,
/// `null`): serde would also build a struct from an array, which the
/// description does not allow. Whole numbers written with a fraction
/// (`3.0`) are integers for JSON Schema, so they are taken as integers here.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let invalid = |path: String, message: String| {
        let p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-body", format!("{path}: {message}"));
        if path == "." { p } else { p.field(&path) }
    };
    let mut value: serde_json::Value = {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de).map_err(|e| invalid(e.path().to_string(), e.inner().to_string()))?
    };
    if !(value.is_object() || value.is_null()) {
        return Err(invalid(".".into(), "the body must be a JSON object".into()));
    }
    integral_numbers_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| invalid(e.path().to_string(), e.inner().to_string()))
}

/// `3.0` becomes `3`, and `-2.0` becomes `-2`, wherever they are in `value`.
fn integral_numbers_as_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // Within ±2^53 every whole f64 is exact; beyond, leave it for serde to refuse.
                if f.abs() <= 9_007_199_254_740_992.0 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[cfg(test)]
mod body_tests {
    use super::parse_json;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Body {
        n: i32,
        list: Vec<u8>,
    }

    #[test]
    fn whole_numbers_with_a_fraction_are_integers() {
        let b: Body = parse_json(br#"{"n": -106537.0, "list": [1.0, 2]}"#).unwrap();
        assert_eq!(b, Body { n: -106537, list: vec![1, 2] });
        let err = parse_json::<Body>(br#"{"n": 1.5, "list": []}"#).unwrap_err();
        assert_eq!(err.status, 422);
    }

    #[test]
    fn a_body_must_be_an_object() {
        let err = parse_json::<Option<Body>>(b"[]").unwrap_err();
        assert!(format!("{err:?}").contains("must be a JSON object"), "{err:?}");
        assert_eq!(parse_json::<Option<Body>>(b"null").unwrap(), None);
    }
}
