//! Jobs: the state machine, the planner, the scheduler and its workers, the
//! group commit, suspend/resume, and recovery at start-up. One module each:
//!
//! - `lifecycle`: what the API asks (create, suspend, resume, cancel, retry,
//!   priority, delete), and resuming Running jobs at start-up;
//! - `planner`: pages through the selection and writes tasks in batches,
//!   each with the listing cursor, so planning resumes after a crash;
//! - `scheduler`: claims pending tasks (in memory; see `claims`) while a job
//!   is Running: its `concurrency` and, for short tasks, some claimed ahead
//!   to wait for a worker (see `executor::TaskPaces`), at most its tenant's
//!   `tasks_in_flight` quota, and at most `workers` and their claim-ahead
//!   across the daemon. Free workers are shared among tenants first, then
//!   among each tenant's jobs, so one tenant's huge job cannot starve
//!   another's small one; `dispatch` runs at most a job's `concurrency`;
//! - `executor`: runs the claimed tasks: the local worker pool (`dispatch`
//!   hands out its worker slots), or a cluster's workers;
//! - `worker`: streams each object through the plugin into uploads that are
//!   completed only if the task succeeds;
//! - `committer`: records results in groups, one transaction for up to
//!   `commit_batch` results or `commit_delay_ms`, whichever comes first.
//!
//! This module holds what they share: the daemon's job state (`Inner`), the
//! jobs the scheduler serves (`Active`), and telling listeners of a change.

mod claims;
mod committer;
mod dispatch;
pub mod dry_run;
mod executor;
mod lifecycle;
pub mod limits;
pub mod order;
mod pace;
mod planner;
mod plugin_compile;
mod plugins;
mod prepare;
mod remote;
pub mod report;
mod scheduler;
mod shares;
pub(crate) mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc};

use committer::Committer;
pub(crate) use planner::listed_under_role;
use planner::{Planner, patiently};
pub use plugin_compile::Upload;
pub use plugins::{Installed, Plugins, UploadError};
pub use prepare::{JobError, Prepared, check_params, ready_plugin, resolve_role, resolve_style};
use scheduler::{Scheduler, send_result};

use crate::auth::{Principal, Quotas};
use crate::config::Config;
use crate::model::{JobId, JobRecord, JobSpec, JobState, now};
use crate::objects::Buckets;
use crate::runtime::Runtime;
use crate::select::Pager;
use crate::store::{PlannedObject, RetryRefused, Store, TaskResult};

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
    /// Where claimed tasks run: the local worker pool (whose dispatcher gives
    /// the next free worker fairly by tasks running, within the memory budget).
    executor: Arc<dyn executor::Executor>,
    results: mpsc::UnboundedSender<TaskResult>,
    /// Results sent to the committer and not yet committed.
    uncommitted: std::sync::atomic::AtomicUsize,
    /// The daemon is stopping: claim nothing more.
    stopping: std::sync::atomic::AtomicBool,
    wake: Notify,
    claims: claims::Claims,
    /// Jobs the scheduler serves: Running ones, plus any with tasks still in flight.
    active: Mutex<BTreeMap<JobId, Active>>,
    /// Each tenant's quotas, kept current by the API, read by the scheduler.
    quotas: RwLock<HashMap<String, Quotas>>,
    /// Every job as it is after each change, and each deletion: the source of live events (SSE).
    updates: broadcast::Sender<JobUpdate>,
    /// Woken when a change may have queued webhook events.
    outbox_wake: Arc<Notify>,
    /// `webhooks.allow_private_networks`: checked at creation, and again at delivery.
    webhooks_allow_private: bool,
    /// The background loops (scheduler, committer, webhooks, reports, planners), as `/v1/status` shows them.
    loops: crate::background::Loops,
    /// Jobs whose report is due, for the report writer.
    reports: mpsc::UnboundedSender<JobId>,
    /// In a cluster: the workers' side of the executor.
    remote: Mutex<Option<Arc<remote::Remote>>>,
}

impl Inner {
    /// Whether the daemon is stopping, or job `job` stopped (suspended,
    /// cancelled, fast-failed, ended) since a claim made at its `stops`: its
    /// claimed tasks that have not started then do not.
    fn stopped_since(&self, job: JobId, stops: u64) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
            || self.active.lock().unwrap().get(&job).is_none_or(|a| a.stops != stops)
    }
}

/// A change to a job, as live listeners (SSE) hear of it.
#[derive(Debug, Clone)]
pub enum JobUpdate {
    /// The job as it is after the change.
    Changed(Box<JobRecord>),
    Deleted(JobId),
}

struct Active {
    prepared: Arc<Prepared>,
    in_flight: usize,
    planner_running: bool,
    /// Higher first among the tenant's jobs; changed while running by `set_priority`.
    priority: i32,
    /// Pacing: tasks this job may start now (a token bucket holding one second's worth).
    tokens: f64,
    refilled: std::time::Instant,
    /// Times the job left Running. A task claimed ahead that finds this
    /// changed when its worker frees up goes back to Pending unstarted: a
    /// suspend, cancel or fast-fail stops new tasks at once.
    stops: u64,
    /// A task failed in a `fast_fail` job: claim nothing more, even before
    /// the group commit records the failure and fails the job.
    halted: bool,
    /// Times the job was (re)activated: resume and retry-failed reuse an
    /// entry, and a retirement decided before one must not remove it.
    activations: u64,
}

impl Active {
    fn new(prepared: Arc<Prepared>) -> Active {
        let priority = prepared.spec.priority;
        let tokens = prepared.spec.max_tasks_per_second.map_or(f64::MAX, f64::from);
        Active {
            prepared,
            in_flight: 0,
            planner_running: false,
            priority,
            tokens,
            refilled: std::time::Instant::now(),
            stops: 0,
            halted: false,
            activations: 0,
        }
    }

    /// Tasks the job may start now: its concurrency left, capped by its pace.
    /// `per_slot`: tasks that share one slot, one after another (a cluster's
    /// bundle): concurrency counts slots, so it allows that many more tasks.
    /// `ahead`: tasks it may hold claimed beyond that, to wait for a worker.
    fn room(&mut self, per_slot: usize, ahead: usize) -> usize {
        let room = (self.prepared.spec.concurrency as usize * per_slot + ahead).saturating_sub(self.in_flight);
        let Some(rate) = self.prepared.spec.max_tasks_per_second else { return room };
        let rate = f64::from(rate);
        let now = std::time::Instant::now();
        self.tokens = (self.tokens + rate * now.duration_since(self.refilled).as_secs_f64()).min(rate);
        self.refilled = now;
        room.min(self.tokens.floor() as usize)
    }

    fn started(&mut self, n: usize) {
        if self.prepared.spec.max_tasks_per_second.is_some() {
            self.tokens -= n as f64;
        }
    }
}

impl Jobs {
    /// Recover from the store and start the scheduler and the committer.
    pub async fn start(
        config: &Config,
        store: Store,
        buckets: Arc<Buckets>,
        runtime: Arc<Runtime>,
        plugins: Plugins,
    ) -> anyhow::Result<Jobs> {
        let requeued = store.call(|s| s.requeue_running()).await?;
        if requeued > 0 {
            tracing::info!(requeued, "tasks left running by the last process are pending again");
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let memory_budget = config.runtime.memory_budget();
        // In a cluster the workers run the tasks (and `local_workers` here).
        let (executor, remote): (Arc<dyn executor::Executor>, _) = match &config.cluster.nats {
            None => (Arc::new(executor::LocalPool::new(config.workers, memory_budget)), None),
            Some(url) => {
                let (remote, results) = remote::Remote::connect(config, url, memory_budget).await?;
                let pool = Arc::new(remote::RemotePool(remote.clone()));
                (pool, Some((remote, results)))
            }
        };
        let inner = Arc::new(Inner {
            store,
            buckets,
            runtime,
            plugins,
            max_attempts: config.max_attempts.max(1),
            commit_batch: config.commit_batch,
            commit_delay: Duration::from_millis(config.commit_delay_ms),
            executor,
            results: tx,
            uncommitted: Default::default(),
            stopping: Default::default(),
            wake: Notify::new(),
            claims: Default::default(),
            active: Mutex::new(BTreeMap::new()),
            quotas: RwLock::new(HashMap::new()),
            updates: broadcast::channel(1024).0,
            outbox_wake: Arc::new(Notify::new()),
            webhooks_allow_private: config.webhooks.allow_private_networks,
            loops: Default::default(),
            reports: reports_tx,
            remote: Mutex::new(None),
        });
        for tenant in jobs_store_tenants(&inner.store).await? {
            inner.quotas.write().unwrap().insert(tenant.name.clone(), tenant.quotas);
        }
        let jobs = Jobs { inner };
        let running = jobs.inner.store.call(|s| s.jobs_in(&[JobState::Running])).await?;
        for job in running {
            match jobs.resume_at_start(&job).await {
                Ok(()) => {}
                // Its plugin compiles in the background (a cold compile cache): resume once it is ready.
                Err(JobError::PluginNotReady { .. }) => {
                    let jobs = jobs.clone();
                    tokio::spawn(async move { jobs.resume_when_plugin_ready(job).await });
                }
                Err(e) => jobs.fail_job(job.id, format!("cannot resume after restart: {e}")).await,
            }
        }
        let inner = jobs.inner.clone();
        jobs.inner.loops.spawn(report::ReportWriter { inner, rx: reports_rx, due: Default::default() });
        report::catch_up(jobs.inner.clone());
        jobs.inner.loops.spawn(Committer { inner: jobs.inner.clone(), rx, batch: Vec::new() });
        jobs.inner.loops.spawn(Scheduler { inner: jobs.inner.clone(), turn: 0 });
        if let Some((remote, consumer)) = remote {
            let inner = jobs.inner.clone();
            jobs.inner.loops.spawn(remote::Results {
                inner: inner.clone(),
                remote: remote.clone(),
                consumer,
                messages: None,
                batch: Vec::new(),
            });
            jobs.inner.loops.spawn(remote::Workers { inner, remote: remote.clone(), first: true });
            *jobs.inner.remote.lock().unwrap() = Some(remote);
        }
        let (store, wake) = (jobs.inner.store.clone(), jobs.inner.outbox_wake.clone());
        jobs.inner.loops.spawn(crate::notify::Deliverer::start(store, config.webhooks, wake));
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
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.inner.runtime
    }
    /// The live workers of a cluster; `None` for a daemon that runs its tasks itself.
    pub fn cluster_workers(&self) -> Option<Result<Vec<crate::cluster::WorkerBeat>, String>> {
        let remote = self.inner.remote.lock().unwrap().clone()?;
        Some(remote.workers())
    }

    /// For `/metrics`: a cluster's live workers and the orders queued for
    /// them (what NATS cannot answer now is left out); `None` outside a cluster.
    pub async fn cluster_state(&self) -> Option<(Vec<crate::cluster::WorkerBeat>, u64)> {
        let remote = self.inner.remote.lock().unwrap().clone()?;
        Some((remote.workers().unwrap_or_default(), remote.queued().await.unwrap_or_default()))
    }

    /// What the daemon's background loops are doing.
    pub fn loops(&self) -> Vec<crate::background::LoopStatus> {
        self.inner.loops.status()
    }
    /// Results handed to the committer and not yet recorded.
    pub fn uncommitted(&self) -> usize {
        self.inner.uncommitted.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn prepare_context(&self) -> prepare::PrepareContext<'_> {
        let i = &self.inner;
        prepare::PrepareContext {
            store: &i.store,
            buckets: &i.buckets,
            plugins: &i.plugins,
            runtime: &i.runtime,
            validate_params: true,
        }
    }
}

async fn jobs_store_tenants(store: &Store) -> anyhow::Result<Vec<crate::auth::TenantRecord>> {
    Ok(store.call(|s| s.list_tenants()).await?)
}

/// Tell live listeners and the webhook deliverer that a job changed.
fn publish(inner: &Inner, job: &JobRecord) {
    let stopped =
        job.state != JobState::Running && inner.active.lock().unwrap().get_mut(&job.id).map(|a| a.stops += 1).is_some();
    if stopped {
        inner.executor.job_stopped(inner, job.id);
    }
    let _ = inner.updates.send(JobUpdate::Changed(Box::new(job.clone())));
    inner.outbox_wake.notify_one();
}

fn internal(e: crate::store::StoreError) -> JobError {
    JobError::Store(e)
}

/// How many times the job was (re)activated, while it is in the scheduler.
fn activation(inner: &Inner, id: JobId) -> Option<u64> {
    inner.active.lock().unwrap().get(&id).map(|a| a.activations)
}

/// A task could not write because the disk is full: the job is suspended
/// with the reason (the task goes back to Pending, its attempt uncounted),
/// and `kiln job resume` goes on once space is freed.
async fn suspend_for_full_disk(inner: &Arc<Inner>, id: JobId, reason: String) {
    let reason = format!("suspended: a disk is full ({reason}); free space, then resume the job");
    let updated = patiently(inner, move |s| {
        let reason = reason.clone();
        s.update_job::<JobError>(id, move |job| {
            if job.state == JobState::Running {
                tracing::warn!(job = id, %reason, "job suspended");
                job.state = JobState::Suspended;
                job.error = Some(reason);
            }
            Ok(())
        })
    })
    .await;
    if let Ok(Some(Ok(job))) = updated {
        publish(inner, &job);
    }
}

async fn fail_job(inner: &Inner, id: JobId, error: String) {
    tracing::warn!(job = id, %error, "job failed");
    let updated = inner
        .store
        .call(move |s| {
            s.update_job::<JobError>(id, |job| {
                if !job.state.is_terminal() {
                    job.state = JobState::Failed;
                    job.error = Some(error);
                    job.finished_at = Some(now());
                }
                Ok(())
            })
        })
        .await;
    if let Ok(Some(Ok(job))) = updated {
        publish(inner, &job);
    }
}
