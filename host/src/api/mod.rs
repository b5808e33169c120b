//! The HTTP control plane: axum on hyper, JSON, errors as problem+json.

mod problem;
mod routes;

use axum::Router;

pub use problem::Problem;

use crate::jobs::Jobs;

#[derive(Clone)]
pub struct AppState {
    pub jobs: Jobs,
}

pub fn router(state: AppState) -> Router {
    routes::router().with_state(state).layer(tower_http::trace::TraceLayer::new_for_http())
}
