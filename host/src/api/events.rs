//! Live job events over SSE, and the state of a job's webhook deliveries.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Caller;
use super::job_stream::{Change, RECHECK, follow};
use super::openapi::Problems;
use super::problem::{Json, Path, Problem};
use super::routes::JobPath;
use crate::model::JobId;
use crate::store::OutboxEntry;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(job_events)).routes(routes!(job_webhooks)).routes(routes!(s3_events))
}

fn event_of(change: Change) -> Event {
    let (name, id, data) = match change {
        Change::Job { job, new_state } => {
            let data = serde_json::to_value(&job).unwrap_or_default();
            (if new_state { "state" } else { "progress" }, format!("{}-{}", job.id, job.updated_at), data)
        }
        Change::Deleted(id) => ("deleted", format!("{id}-deleted"), serde_json::json!({"id": id, "deleted": true})),
    };
    Event::default().event(name).id(id).json_data(data).unwrap_or_else(|_| Event::default().comment("unencodable"))
}

/// One event of the stream, as its fields (OpenAPI describes a `text/event-stream` event by event).
struct JobEvent;

impl utoipa::PartialSchema for JobEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let string = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .property(
                "event",
                string()
                    .enum_values(Some(["state", "progress", "deleted"]))
                    .description(Some("`state` when the job's state changed, `progress` when only its counters did, `deleted` (the last event) when the job was deleted")),
            )
            .required("event")
            .property("id", string().description(Some("`JOB-UPDATED_AT`, or `JOB-deleted`")))
            .property(
                "data",
                string()
                    .content_media_type("application/json")
                    .description(Some("The job, as `GET /v1/jobs/{id}` gives it; for `deleted`, `{\"id\": JOB, \"deleted\": true}`")),
            )
            .required("data")
            .into()
    }
}

impl utoipa::ToSchema for JobEvent {}

/// `GET /v1/jobs/{id}/events`: Server-Sent Events. The first event is the
/// job as it is now; then a `progress` event each time its counters change,
/// and a `state` event each time its state does. The stream ends after a
/// terminal state, or with a `deleted` event if the job is deleted, or with a
/// `shutdown` event when the daemon stops. Each `state` and `progress`
/// event's data is the job (as `GET /v1/jobs/{id}`).
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    tag = "jobs",
    params(JobPath),
    responses(
        (status = 200, description = "`text/event-stream` of `state` and `progress` events, each with the job as data, `deleted` if the job is deleted, and `shutdown` when the daemon stops", content_type = "text/event-stream", body = JobEvent),
        Problems<400, 401, 404>,
    ),
)]
async fn job_events(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(JobPath { id }): Path<JobPath>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    // Subscribe before reading the job, so no change falls in between.
    let rx = s.jobs.subscribe();
    let job = s.jobs.get(&caller, id).await?;
    let stop = s.shutdown.clone();
    let changes = follow(job, rx, s.jobs.store().clone(), RECHECK).map(|change| Ok(event_of(change)));
    // A stopping daemon ends the stream with a `shutdown` event, so clients
    // reconnect (to the next daemon) rather than hold the old one open.
    let last = futures::stream::once(async move { stop.is_cancelled().then(|| Ok(shutdown_event())) })
        .filter_map(std::future::ready);
    let stream = changes.take_until(s.shutdown.clone().cancelled_owned()).chain(last);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The last event of a stream cut short because the daemon is stopping.
fn shutdown_event() -> Event {
    Event::default().event("shutdown").data("the daemon is stopping: reconnect to go on following the job")
}

/// A job's webhook deliveries: those done, counted; those not done, each.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct Webhooks {
    /// Events delivered so far (they leave the outbox, so they are counted, not listed).
    pub delivered: crate::store::Deliveries,
    /// Events waiting (or being retried), oldest first, with the last error.
    pub pending: Vec<WebhookEvent>,
    /// Events given up on after `webhooks.give_up_after`.
    pub given_up: Vec<WebhookEvent>,
}

/// One event waiting for delivery, or given up on.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookEvent {
    pub seq: u64,
    pub job: JobId,
    pub url: String,
    /// The CloudEvent, exactly as POSTed.
    pub event: serde_json::Value,
    pub attempts: u32,
    /// When the next attempt is due.
    #[serde(with = "crate::timefmt::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: i64,
    #[serde(with = "crate::timefmt::secs")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    pub last_error: Option<String>,
}

impl WebhookEvent {
    /// As the API shows an outbox entry: the CloudEvent, without the secret.
    fn of(entry: OutboxEntry) -> WebhookEvent {
        WebhookEvent {
            event: crate::notify::cloud_event(&entry),
            seq: entry.seq,
            job: entry.job,
            url: entry.url,
            attempts: entry.attempts,
            next_attempt_at: entry.next_attempt_at,
            created_at: entry.created_at,
            last_error: entry.last_error,
        }
    }
}

/// The job's webhook deliveries: how many were delivered, and the events still pending or given up on.
#[utoipa::path(get, path = "/v1/jobs/{id}/webhooks", tag = "jobs", params(JobPath), responses((status = 200, body = Webhooks), Problems<400, 401, 404>))]
async fn job_webhooks(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Path(JobPath { id }): Path<JobPath>,
) -> Result<Json<Webhooks>, Problem> {
    s.jobs.get(&caller, id).await?;
    let (delivered, (pending, given_up)) = s
        .jobs
        .store()
        .call(move |st| Ok::<_, crate::store::StoreError>((st.job_deliveries(id)?, st.job_events(id)?)))
        .await?;
    Ok(Json(Webhooks {
        delivered,
        pending: pending.into_iter().map(WebhookEvent::of).collect(),
        given_up: given_up.into_iter().map(WebhookEvent::of).collect(),
    }))
}

/// An S3 event notification (`{"Records": [...]}`), as S3, MinIO and others push.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct S3Notification {
    #[serde(rename = "Records", default)]
    pub records: Vec<S3Record>,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct S3Record {
    /// e.g. `ObjectCreated:Put`; only `ObjectCreated:*` events queue work.
    #[serde(rename = "eventName")]
    pub event_name: String,
    pub s3: S3Entity,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct S3Entity {
    pub bucket: S3Bucket,
    pub object: S3Object,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct S3Bucket {
    pub name: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct S3Object {
    /// URL-encoded, as S3 sends it (`+` for a space).
    pub key: String,
    /// Bytes: 0 to 2^63-1, as S3 sends a size (a signed 64-bit integer).
    #[serde(default, deserialize_with = "object_size")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub size: Option<u64>,
    #[serde(rename = "eTag", default)]
    pub etag: Option<String>,
}

/// A size as the schema gives it: a signed 64-bit integer, not negative.
fn object_size<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<i64>::deserialize(d)? {
        Some(n) if n < 0 => Err(serde::de::Error::custom(format!("size {n} is negative"))),
        n => Ok(n.map(|n| n as u64)),
    }
}

/// What an event notification did.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct S3EventResult {
    pub records: usize,
    /// Tasks queued across the caller's following jobs.
    pub queued: u64,
    /// Records that were not `ObjectCreated:*`, or named an unknown bucket.
    pub ignored: usize,
}

/// `POST /v1/events/s3`: trigger mode for stores that push. Each created
/// object is queued in every following, running job of the caller whose
/// selection holds it (new keys, or keys whose etag changed).
#[utoipa::path(post, path = "/v1/events/s3", tag = "jobs", request_body = S3Notification, responses((status = 200, body = S3EventResult), Problems<400, 401, 413, 422>))]
async fn s3_events(
    State(s): State<AppState>,
    Caller(caller): Caller,
    Json(body): Json<S3Notification>,
) -> Result<Json<S3EventResult>, Problem> {
    let mut result = S3EventResult { records: body.records.len(), queued: 0, ignored: 0 };
    for r in body.records {
        let bucket = s.jobs.buckets().from_event_name(&r.s3.bucket.name);
        let Some(bucket) = bucket.filter(|_| r.event_name.starts_with("ObjectCreated:")) else {
            result.ignored += 1;
            continue;
        };
        let plus_decoded = r.s3.object.key.replace('+', " ");
        let key = percent_encoding::percent_decode_str(&plus_decoded).decode_utf8_lossy().into_owned();
        let object = crate::store::PlannedObject {
            key,
            size: r.s3.object.size,
            etag: r.s3.object.etag.map(|e| e.trim_matches('"').to_string()),
            last_modified: None,
        };
        result.queued += s.jobs.object_event(&caller, &bucket, object).await?;
    }
    Ok(Json(result))
}
