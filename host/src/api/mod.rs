//! The HTTP control plane: axum on hyper, JSON, errors as problem+json.
//! Every route but `/healthz`, `/readyz` and `/openapi.json` needs a bearer token.

mod auth;
mod observe;
mod plugins;
mod problem;
mod report;
mod routes;
mod tenancy;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

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
}

pub fn router(state: AppState) -> Router {
    let max_plugin_size = state.jobs.runtime().config().max_plugin_size;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(observe::readyz))
        .route("/metrics", get(observe::metrics))
        .merge(routes::router())
        .merge(tenancy::router())
        .merge(plugins::router(max_plugin_size))
        .with_state(state)
        .layer(axum::middleware::from_fn(observe::track_http))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}
