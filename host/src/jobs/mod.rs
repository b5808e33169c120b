//! Jobs: the state machine, the planner, the scheduler and its workers, the
//! group commit, suspend/resume, and recovery at start-up.
//!
//! - The **planner** pages through the selection and writes tasks in batches,
//!   each with the listing cursor, so planning resumes after a crash.
//! - The **scheduler** claims pending tasks (in memory; see `claims`)
//!   while a job is Running, keeping at most its `concurrency` in flight, and
//!   at most `workers` across the daemon, taking jobs in turn.
//! - **Workers** stream each object through the plugin into uploads that are
//!   completed only if the task succeeds.
//! - The **committer** records results in groups: one transaction for up to
//!   `commit_batch` results or `commit_delay_ms`, whichever comes first.

mod claims;
mod plugins;
mod prepare;
mod worker;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc};

pub use plugins::Plugins;
pub use prepare::{JobError, Prepared, check_params, resolve_style};

use crate::config::Config;
use crate::model::{JobId, JobRecord, JobSpec, JobState, now};
use crate::objects::Buckets;
use crate::runtime::Runtime;
use crate::select::Pager;
use crate::store::{PlannedObject, Store, TaskResult};

/// Keys listed per planner batch (one transaction each).
const PLAN_PAGE: usize = 1000;
/// Tasks claimed per transaction, at most.
const CLAIM_BATCH: usize = 64;

#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Store,
    pub buckets: Arc<Buckets>,
    pub runtime: Arc<Runtime>,
    pub plugins: Plugins,
    pub max_attempts: u32,
    commit_batch: usize,
    commit_delay: Duration,
    workers: Arc<Semaphore>,
    results: mpsc::UnboundedSender<TaskResult>,
    wake: Notify,
    claims: claims::Claims,
    /// Jobs the scheduler serves: Running ones, plus any with tasks still in flight.
    active: Mutex<BTreeMap<JobId, Active>>,
}

struct Active {
    prepared: Arc<Prepared>,
    in_flight: usize,
    planner_running: bool,
}

impl Jobs {
    /// Recover from the store and start the scheduler and the committer.
    pub async fn start(config: &Config, store: Store, buckets: Arc<Buckets>, runtime: Arc<Runtime>, plugins: Plugins) -> anyhow::Result<Jobs> {
        let requeued = store.call(|s| s.requeue_running()).await?;
        if requeued > 0 {
            tracing::info!(requeued, "tasks left running by the last process are pending again");
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            store,
            buckets,
            runtime,
            plugins,
            max_attempts: config.max_attempts.max(1),
            commit_batch: config.commit_batch,
            commit_delay: Duration::from_millis(config.commit_delay_ms),
            workers: Arc::new(Semaphore::new(config.workers)),
            results: tx,
            wake: Notify::new(),
            claims: Default::default(),
            active: Mutex::new(BTreeMap::new()),
        });
        let jobs = Jobs { inner };
        let running = jobs.inner.store.call(|s| s.jobs_in(&[JobState::Running])).await?;
        for job in running {
            if let Err(e) = jobs.activate(&job).await {
                jobs.fail_job(job.id, format!("cannot resume after restart: {e}")).await;
            }
        }
        tokio::spawn(committer(jobs.inner.clone(), rx));
        tokio::spawn(scheduler(jobs.inner.clone()));
        Ok(jobs)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }
    pub fn buckets(&self) -> &Buckets {
        &self.inner.buckets
    }
    pub fn plugins(&self) -> &Plugins {
        &self.inner.plugins
    }
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    /// Validate and store a job; start it unless `start` is false (then it is Ready).
    pub async fn create(&self, spec: JobSpec, start: bool) -> Result<JobRecord, JobError> {
        let prepared = prepare::prepare(&spec, &self.inner.store, &self.inner.buckets, &self.inner.plugins, &self.inner.runtime).await?;
        let state = if start { JobState::Running } else { JobState::Ready };
        let job = self.inner.store.call(move |s| s.create_job(spec, state)).await.map_err(internal)?;
        if start {
            self.insert_active(&job, prepared);
        }
        Ok(job)
    }

    async fn activate(&self, job: &JobRecord) -> Result<(), JobError> {
        let i = &self.inner;
        let prepared = prepare::prepare(&job.spec, &i.store, &i.buckets, &i.plugins, &i.runtime).await?;
        self.insert_active(job, prepared);
        Ok(())
    }

    fn insert_active(&self, job: &JobRecord, prepared: Arc<Prepared>) {
        let start_planner = {
            let mut active = self.inner.active.lock().unwrap();
            let entry = active.entry(job.id).or_insert(Active { prepared, in_flight: 0, planner_running: false });
            let start = !job.planning.done && !entry.planner_running;
            entry.planner_running |= start;
            start
        };
        if start_planner {
            tokio::spawn(planner(self.inner.clone(), job.id, job.spec.clone(), job.planning.cursor.clone()));
        }
        self.inner.wake.notify_one();
    }

    pub async fn get(&self, id: JobId) -> Result<JobRecord, JobError> {
        self.inner.store.call(move |s| s.get_job(id)).await.map_err(internal)?.ok_or(JobError::NotFound(id))
    }

    /// Move a job between states, refusing moves the state machine does not allow.
    async fn transition(&self, id: JobId, action: &'static str, allowed: &'static [JobState], to: JobState) -> Result<JobRecord, JobError> {
        let result = self
            .inner
            .store
            .call(move |s| {
                s.update_job(id, |job| {
                    if !allowed.contains(&job.state) {
                        return Err(JobError::WrongState { id, state: job.state.as_str(), action });
                    }
                    job.state = to;
                    if to.is_terminal() {
                        job.finished_at = Some(now());
                    }
                    Ok(())
                })
            })
            .await
            .map_err(internal)?;
        match result {
            None => Err(JobError::NotFound(id)),
            Some(r) => r,
        }
    }

    /// Stop claiming new tasks at once; tasks already running finish.
    pub async fn suspend(&self, id: JobId) -> Result<JobRecord, JobError> {
        self.transition(id, "suspend", &[JobState::Running, JobState::Ready], JobState::Suspended).await
    }

    /// Go on from the planner's cursor and the pending tasks.
    pub async fn resume(&self, id: JobId) -> Result<JobRecord, JobError> {
        let job = self.transition(id, "resume", &[JobState::Suspended, JobState::Ready], JobState::Running).await?;
        self.activate(&job).await?;
        // A job whose work was all done while suspended ends now.
        let job = self.inner.store.call(move |s| s.add_planned(id, &[], None, false).and_then(|_| s.get_job(id))).await.map_err(internal)?;
        job.ok_or(JobError::NotFound(id))
    }

    pub async fn cancel(&self, id: JobId) -> Result<JobRecord, JobError> {
        self.transition(id, "cancel", &[JobState::Ready, JobState::Running, JobState::Suspended], JobState::Cancelled).await
    }

    /// Re-drive only the failed tasks.
    pub async fn retry_failed(&self, id: JobId) -> Result<JobRecord, JobError> {
        let job = self.get(id).await?;
        if !matches!(job.state, JobState::Failed | JobState::Succeeded | JobState::Running) || job.counters.failed == 0 {
            return Err(JobError::WrongState { id, state: job.state.as_str(), action: "retry failed tasks: none failed, or the job is not running or ended" });
        }
        self.inner.store.call(move |s| s.retry_failed(id)).await.map_err(internal)?;
        let job = self.get(id).await?;
        self.activate(&job).await?;
        Ok(job)
    }

    /// Delete a job in a terminal state, with its tasks.
    pub async fn delete(&self, id: JobId) -> Result<(), JobError> {
        let job = self.get(id).await?;
        if !job.state.is_terminal() {
            return Err(JobError::WrongState { id, state: job.state.as_str(), action: "delete (cancel it first)" });
        }
        self.inner.store.call(move |s| s.delete_job(id)).await.map_err(internal)?;
        Ok(())
    }

    async fn fail_job(&self, id: JobId, error: String) {
        fail_job(&self.inner, id, error).await
    }
}

fn internal(e: impl std::fmt::Display) -> JobError {
    JobError::Internal(e.to_string())
}

async fn fail_job(inner: &Inner, id: JobId, error: String) {
    tracing::warn!(job = id, %error, "job failed");
    let _ = inner
        .store
        .call(move |s| {
            s.update_job::<()>(id, |job| {
                if !job.state.is_terminal() {
                    job.state = JobState::Failed;
                    job.error = Some(error);
                    job.finished_at = Some(now());
                }
                Ok(())
            })
        })
        .await;
}

/// Page through the selection, writing tasks and the cursor batch by batch.
async fn planner(inner: Arc<Inner>, id: JobId, spec: JobSpec, cursor: Option<String>) {
    let result = plan(&inner, id, &spec, cursor).await;
    if let Some(a) = inner.active.lock().unwrap().get_mut(&id) {
        a.planner_running = false;
    }
    if let Err(e) = result {
        fail_job(&inner, id, e).await;
    }
    inner.wake.notify_one();
}

async fn plan(inner: &Arc<Inner>, id: JobId, spec: &JobSpec, cursor: Option<String>) -> Result<(), String> {
    let still_running = |job: Option<JobRecord>| job.is_some_and(|j| j.state == JobState::Running);
    if !spec.input.keys.is_empty() {
        // Explicit keys: metadata comes from the GET at run time.
        let chunks: Vec<Vec<PlannedObject>> = spec
            .input
            .keys
            .chunks(PLAN_PAGE)
            .map(|c| c.iter().map(|k| PlannedObject { key: k.clone(), size: None, etag: None, last_modified: None }).collect())
            .collect();
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let done = i + 1 == n;
            inner.store.call(move |s| s.add_planned(id, &chunk, None, done)).await.map_err(|e| e.to_string())?;
            inner.wake.notify_one();
        }
        if n == 0 {
            inner.store.call(move |s| s.add_planned(id, &[], None, true)).await.map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let bucket = inner.buckets.get(&spec.input.bucket).map_err(|e| e.to_string())?;
    let mut pager = Pager::new(&bucket, &spec.input, cursor.as_deref(), PLAN_PAGE);
    loop {
        let page = pager.next_page().await.map_err(|e| format!("listing bucket `{}`: {e}", spec.input.bucket))?;
        let objects: Vec<PlannedObject> = page
            .objects
            .into_iter()
            .map(|o| PlannedObject { key: o.key, size: o.size, etag: o.etag, last_modified: o.last_modified })
            .collect();
        let (cursor, done) = (page.cursor, page.done);
        inner
            .store
            .call(move |s| s.add_planned(id, &objects, cursor.as_deref(), done))
            .await
            .map_err(|e| e.to_string())?;
        inner.wake.notify_one();
        if done {
            return Ok(());
        }
        // Stop when the job is suspended or cancelled; resume re-plans from the cursor.
        if !still_running(inner.store.call(move |s| s.get_job(id)).await.map_err(|e| e.to_string())?) {
            return Ok(());
        }
    }
}

/// Claim tasks for active jobs in turn and hand them to workers.
async fn scheduler(inner: Arc<Inner>) {
    let mut turn = 0usize;
    loop {
        let _ = tokio::time::timeout(Duration::from_millis(50), inner.wake.notified()).await;
        loop {
            // Rotate the starting job so each gets its turn.
            let candidates: Vec<(JobId, usize, usize)> = {
                let active = inner.active.lock().unwrap();
                let mut v: Vec<(JobId, usize, usize)> = active
                    .iter()
                    .map(|(id, a)| (*id, a.prepared.spec.concurrency as usize, a.in_flight))
                    .filter(|(_, conc, inflight)| inflight < conc)
                    .collect();
                if !v.is_empty() {
                    let k = turn % v.len();
                    v.rotate_left(k);
                }
                v
            };
            turn = turn.wrapping_add(1);
            if candidates.is_empty() {
                break;
            }
            let mut claimed_any = false;
            for (id, conc, in_flight) in candidates {
                let n = worker::claim_size(conc, in_flight, inner.workers.available_permits(), CLAIM_BATCH);
                if n == 0 {
                    continue;
                }
                let tasks = match claims::claim(&inner, id, n).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::error!(job = id, error = %e, "claiming tasks failed");
                        continue;
                    }
                };
                if tasks.is_empty() {
                    retire_if_idle(&inner, id).await;
                    continue;
                }
                claimed_any = true;
                let prepared = {
                    let mut active = inner.active.lock().unwrap();
                    let Some(a) = active.get_mut(&id) else { continue };
                    a.in_flight += tasks.len();
                    a.prepared.clone()
                };
                for task in tasks {
                    let (inner, prepared) = (inner.clone(), prepared.clone());
                    tokio::spawn(async move {
                        // Claimed ahead: wait for a worker here, not in the scheduler.
                        let permit = inner.workers.clone().acquire_owned().await.expect("semaphore never closed");
                        let result = worker::run(&inner, &prepared, task).await;
                        drop(permit);
                        // The slot is free as soon as the work is done: waiting
                        // for the group commit here would cap throughput at
                        // `concurrency` tasks per commit interval.
                        if let Some(a) = inner.active.lock().unwrap().get_mut(&id) {
                            a.in_flight = a.in_flight.saturating_sub(1);
                        }
                        let _ = inner.results.send(result);
                        inner.wake.notify_one();
                    });
                }
            }
            if !claimed_any {
                break;
            }
        }
    }
}

/// Drop a job from the scheduler once it is no longer Running and nothing of it is in flight.
async fn retire_if_idle(inner: &Arc<Inner>, id: JobId) {
    let idle = inner.active.lock().unwrap().get(&id).is_some_and(|a| a.in_flight == 0 && !a.planner_running);
    if !idle {
        return;
    }
    let state = inner.store.call(move |s| s.get_job(id)).await.ok().flatten().map(|j| j.state);
    if state != Some(JobState::Running) {
        let mut active = inner.active.lock().unwrap();
        if active.get(&id).is_some_and(|a| a.in_flight == 0 && !a.planner_running) {
            active.remove(&id);
        }
    }
}

/// Group commit: gather results for up to `commit_delay`, then one transaction.
async fn committer(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<TaskResult>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        worker::gather(&mut rx, &mut batch, inner.commit_batch, inner.commit_delay).await;
        let batch = Arc::new(batch);
        let committed = {
            let batch = batch.clone();
            inner.store.call(move |s| s.commit_results(&batch)).await
        };
        match committed {
            Ok(_) => inner.claims.committed(&batch),
            // The tasks stay Running (or Pending) in the store and are re-run after a restart.
            Err(e) => tracing::error!(error = %e, results = batch.len(), "group commit failed"),
        }
        inner.wake.notify_one();
    }
}
