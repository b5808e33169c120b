//! The HTTP control plane: axum on hyper, JSON, errors as problem+json.
//! Every route but `/healthz`, `/readyz` and `/openapi.json` needs a bearer token;
//! the web console's files (`/`, `/console/…`) are public, and call the API with one.

mod auth;
mod console;
mod events;
mod job_stream;
mod observe;
mod openapi;
mod outputs;
mod plugins;
mod problem;
mod report;
mod routes;
mod styles;
mod tenancy;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use openapi::Problems;

pub use problem::Problem;

use crate::auth::Quotas;
use crate::jobs::Jobs;

#[derive(Clone)]
pub struct AppState {
    pub jobs: Jobs,
    /// SHA-256 of the admin token.
    pub admin_digest: Arc<String>,
    /// Quotas of a new tenant, before the admin's changes.
    pub default_quotas: Quotas,
    /// Cancelled when the daemon begins to stop: live streams end with a last event.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// How long an upload waits for its compile before answering `202` (see `jobs::plugin_compile`).
    pub plugin_upload_wait: std::time::Duration,
}

pub fn router(state: AppState) -> Router {
    let max_plugin_size = state.jobs.runtime().config().max_plugin_size;
    all_routes(max_plugin_size).with_state(state).layer(axum::middleware::from_fn(observe::track_http)).layer(
        tower_http::trace::TraceLayer::new(
            // A 503 (`/readyz` while the bundled plugins compile, a full disk)
            // is a state logged where it arises, not an error per request: a
            // balancer polling `/readyz` would fill the log.
            tower_http::classify::StatusInRangeAsFailures::new(500..=502).into_make_classifier(),
        ),
    )
}

/// Every route, as served: the documented ones, and problems for any other
/// path or method. A unit test checks that `/openapi.json` lists each route.
fn all_routes(max_plugin_size: usize) -> Router<AppState> {
    let (router, _) = api(max_plugin_size).split_for_parts();
    router.merge(console::router()).fallback(problem::no_route).method_not_allowed_fallback(problem::method_not_allowed)
}

/// Each route with its description: add routes here (or in the modules'
/// routers) with `routes!` and a `#[utoipa::path]` on the handler.
fn api(max_plugin_size: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(store_backup))
        .routes(routes!(status))
        .routes(routes!(workers))
        .routes(routes!(openapi::openapi_json))
        .merge(routes::router())
        .merge(styles::router())
        .merge(events::router())
        .merge(report::router())
        .merge(tenancy::router())
        .merge(plugins::router(max_plugin_size))
        .merge(outputs::router())
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()), responses((status = 200, description = "`ok`", content_type = "text/plain", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers, and the bundled plugins are compiled.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "`ready`", content_type = "text/plain", body = String),
        (status = 503, description = "The store does not answer, or the bundled plugins still compile (a first start): the reason", content_type = "text/plain", body = String),
    ),
)]
async fn readyz(state: State<AppState>) -> axum::response::Response {
    observe::readyz(state).await
}

/// A consistent copy of the store (a redb file), taken while the daemon runs; the admin's.
/// `kiln store backup PATH` saves it; `kiln store check --file PATH` checks it.
#[utoipa::path(
    get,
    path = "/v1/store/backup",
    tag = "health",
    responses(
        (status = 200, description = "The copy", content_type = "application/octet-stream", body = Vec<u8>),
        Problems<401, 403, 503>,
    ),
)]
async fn store_backup(state: State<AppState>, caller: auth::Caller) -> Result<axum::response::Response, Problem> {
    observe::backup(state, caller).await
}

/// The workers of a cluster (`[cluster] nats`), the admin's: each live
/// worker's name, version, slots, load, tasks done and reachable buckets.
#[utoipa::path(
    get,
    path = "/v1/workers",
    tag = "health",
    responses((status = 200, description = "The workers", body = observe::ClusterWorkers), Problems<401, 403, 503>),
)]
async fn workers(state: State<AppState>, caller: auth::Caller) -> Result<axum::Json<observe::ClusterWorkers>, Problem> {
    observe::workers(state, caller).await
}

/// The daemon's status, the admin's: its version, what each background loop
/// (the scheduler, the committer) is doing, and the results waiting for the group commit.
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "health",
    responses((status = 200, description = "The status", body = observe::DaemonStatus), Problems<401, 403>),
)]
async fn status(state: State<AppState>, caller: auth::Caller) -> Result<axum::Json<observe::DaemonStatus>, Problem> {
    observe::status(state, caller).await
}

/// Prometheus metrics in the OpenMetrics text format; the admin's.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Metrics", content_type = "application/openmetrics-text", body = String), Problems<401, 403>),
)]
async fn metrics(state: State<AppState>, caller: auth::Caller) -> Result<axum::response::Response, Problem> {
    observe::metrics(state, caller).await
}
