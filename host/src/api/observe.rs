//! Observability routes and the HTTP metrics layer: `/metrics` (Prometheus
//! text format, admin token), `/v1/status` (admin token) and `/readyz`.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::auth::Caller;
use super::problem::Problem;
use crate::metrics::{HttpLabels, StateLabel, WorkerLabel, global};
use crate::model::{JobState, TaskState};

/// Count every request by method, route pattern and status, and time it.
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let m = global();
    m.http_requests.get_or_create(&HttpLabels { method, route, status: response.status().as_u16() }).inc();
    m.http_duration.observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: the admin's; Prometheus sends the token with `authorization: {credentials: …}`.
pub async fn metrics(State(s): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.admin_only("read metrics")?;
    let jobs = s
        .jobs
        .store()
        .call(|st| {
            st.jobs_in(&[
                JobState::Ready,
                JobState::Running,
                JobState::Suspended,
                JobState::Succeeded,
                JobState::Failed,
                JobState::Cancelled,
            ])
        })
        .await?;
    let m = global();
    let mut by_state = [0i64; 5];
    let (mut queue, mut running) = (0i64, 0i64);
    for job in &jobs {
        let c = job.counters;
        for (slot, n) in by_state.iter_mut().zip([c.pending, c.running, c.succeeded, c.failed, c.skipped]) {
            *slot += n as i64;
        }
        if job.state == JobState::Running {
            running += 1;
            queue += c.pending as i64;
        }
    }
    for (state, n) in TaskState::ALL.iter().zip(by_state) {
        m.tasks.get_or_create(&StateLabel { state: state.as_str().into() }).set(n);
    }
    m.queue_depth.set(queue);
    m.jobs_running.set(running);
    if let Some((workers, queued)) = s.jobs.cluster_state().await {
        // Only the live workers: one gone since the last scrape leaves no series behind.
        for family in [&m.worker_done, &m.worker_busy, &m.worker_slots] {
            family.clear();
        }
        for w in workers {
            let label = WorkerLabel { worker: w.name };
            m.worker_done.get_or_create(&label).set(w.done as i64);
            m.worker_busy.get_or_create(&label).set(w.busy as i64);
            m.worker_slots.get_or_create(&label).set(w.slots as i64);
        }
        m.cluster_queued.set(queued as i64);
    }
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.render())
        .into_response())
}

/// `GET /readyz`: ready once the store answers (the router only exists after
/// start-up); 503 with the reason while a disk error keeps the store unavailable.
pub async fn readyz(State(s): State<AppState>) -> Response {
    if let Some(reason) = s.jobs.store().unavailable() {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {reason}")).into_response();
    }
    if let Some(why) = s.jobs.plugins().installed_failed() {
        return (StatusCode::SERVICE_UNAVAILABLE, why).into_response();
    }
    // Jobs cannot use a bundled plugin before it is compiled (a first start).
    let compiling = s.jobs.plugins().installed_compiling();
    if compiling > 0 {
        let msg =
            format!("compiling {compiling} bundled plugin(s) for this machine (a first start on this compile cache)");
        return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    }
    match s.jobs.store().call(|st| st.get_job(0)).await {
        Ok(_) => "ready".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("store unavailable: {e}")).into_response(),
    }
}

/// What `GET /v1/status` shows the admin: this build, what each background
/// loop is doing, and the task results waiting for the group commit.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DaemonStatus {
    /// Kiln's version.
    pub version: String,
    pub loops: Vec<crate::background::LoopStatus>,
    /// Task results handed to the committer and not yet recorded.
    pub uncommitted: usize,
}

pub async fn status(State(s): State<AppState>, caller: Caller) -> Result<axum::Json<DaemonStatus>, Problem> {
    caller.admin_only("read the daemon's status")?;
    Ok(axum::Json(DaemonStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        loops: s.jobs.loops(),
        uncommitted: s.jobs.uncommitted(),
    }))
}

/// What `GET /v1/workers` shows the admin.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ClusterWorkers {
    /// Whether this daemon coordinates workers (`[cluster] nats`).
    pub cluster: bool,
    pub workers: Vec<crate::cluster::WorkerBeat>,
}

pub async fn workers(State(s): State<AppState>, caller: Caller) -> Result<axum::Json<ClusterWorkers>, Problem> {
    caller.admin_only("list the workers")?;
    match s.jobs.cluster_workers() {
        None => Ok(axum::Json(ClusterWorkers { cluster: false, workers: Vec::new() })),
        Some(Ok(workers)) => Ok(axum::Json(ClusterWorkers { cluster: true, workers })),
        Some(Err(e)) => Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "nats-unavailable", e)),
    }
}

/// `GET /v1/store/backup`: a consistent copy of the store, taken while the
/// daemon runs (see `store::check`); the admin's. The copy is built beside the
/// store, unlinked at once, and streamed from the open file.
pub async fn backup(State(s): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    caller.admin_only("back up the store")?;
    let store = s.jobs.store().clone();
    let dir = store.path().parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let unique = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let path = dir.join(format!(".backup-{}-{unique}.redb", std::process::id()));
    let file = store
        .call(move |st| {
            let copied = st.backup_to(&path);
            let opened = copied
                .and_then(|_| std::fs::File::open(&path).map_err(|e| crate::store::StoreError::Io(e.to_string())));
            let _ = std::fs::remove_file(&path);
            opened
        })
        .await?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file)));
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"kiln-{stamp}.redb\"")),
        ],
        body,
    )
        .into_response())
}
