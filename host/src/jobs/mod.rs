//! Jobs: the state machine, the planner, the scheduler and its workers, the
//! group commit, suspend/resume, and recovery at start-up.
//!
//! - The **planner** pages through the selection and writes tasks in batches,
//!   each with the listing cursor, so planning resumes after a crash.
//! - The **scheduler** claims pending tasks (in memory; see `claims`)
//!   while a job is Running, keeping at most its `concurrency` in flight, at
//!   most its tenant's `tasks_in_flight` quota, and at most `workers` across
//!   the daemon. Free workers are shared among tenants first, then among each
//!   tenant's jobs, so one tenant's huge job cannot starve another's small one.
//! - **Workers** stream each object through the plugin into uploads that are
//!   completed only if the task succeeds.
//! - The **committer** records results in groups: one transaction for up to
//!   `commit_batch` results or `commit_delay_ms`, whichever comes first.

mod claims;
mod dispatch;
pub mod dry_run;
pub mod limits;
mod plugin_compile;
mod plugins;
mod prepare;
pub mod report;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, mpsc};

pub use plugin_compile::Upload;
pub use plugins::{Installed, Plugins, UploadError};
pub use prepare::{JobError, Prepared, check_params, ready_plugin, resolve_role, resolve_style};

use crate::auth::{Principal, Quotas};
use crate::config::Config;
use crate::model::{JobId, JobRecord, JobSpec, JobState, now};
use crate::objects::Buckets;
use crate::runtime::Runtime;
use crate::select::Pager;
use crate::store::{PlannedObject, RetryRefused, Store, TaskResult};

/// Keys listed per planner batch (one transaction each).
const PLAN_PAGE: usize = 1000;
/// Tasks claimed per transaction, at most.
const CLAIM_BATCH: usize = 64;
/// Claimed tasks that may wait for a worker, per worker. Enough to cover a
/// claim's latency; few, because a waiting task is past priority and fair share.
const CLAIM_AHEAD_PER_WORKER: usize = 2;

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
    /// Which claimed task gets the next worker: fair by tasks running, within the memory budget.
    dispatcher: Arc<dispatch::Dispatcher>,
    worker_count: usize,
    /// Tasks that may wait for a worker in memory, across the daemon.
    claim_ahead: usize,
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
    fn room(&mut self) -> usize {
        let room = (self.prepared.spec.concurrency as usize).saturating_sub(self.in_flight);
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
        let inner = Arc::new(Inner {
            store,
            buckets,
            runtime,
            plugins,
            max_attempts: config.max_attempts.max(1),
            commit_batch: config.commit_batch,
            commit_delay: Duration::from_millis(config.commit_delay_ms),
            dispatcher: dispatch::Dispatcher::new(config.workers, config.runtime.memory_budget()),
            worker_count: config.workers,
            claim_ahead: config.workers * CLAIM_AHEAD_PER_WORKER,
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
        });
        crate::notify::Deliverer::start(inner.store.clone(), config.webhooks, inner.outbox_wake.clone());
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
        report::catch_up(jobs.inner.clone());
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
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.inner.runtime
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

    /// Validate and store a job for `caller`; start it unless `start` is false (then it is Ready).
    pub async fn create(&self, caller: &Principal, spec: JobSpec, start: bool) -> Result<JobRecord, JobError> {
        let tenant = caller.tenant().map(str::to_string);
        let prepared = prepare::prepare(&spec, tenant.as_deref(), &self.prepare_context()).await?;
        self.check_at_creation(&spec).await?;
        let state = if start { JobState::Running } else { JobState::Ready };
        // The store refuses a job created Running at its tenant's `running_jobs` quota.
        let job = self.inner.store.call(move |s| s.create_job(spec, tenant, state)).await.map_err(internal)??;
        publish(&self.inner, &job);
        if start {
            self.insert_active(&job, prepared);
        }
        Ok(job)
    }

    /// The checks made when a job is created (and by a dry run), not each time
    /// it is prepared again (resume, restart): the manifest exists, and the
    /// webhook goes where the daemon's policy allows.
    async fn check_at_creation(&self, spec: &JobSpec) -> Result<(), JobError> {
        prepare::check_manifest(spec, &self.inner.buckets).await?;
        if let Some(n) = &spec.notify {
            crate::notify::check_destination(&n.url, self.inner.webhooks_allow_private)
                .await
                .map_err(|e| JobError::Invalid { field: "notify.url", message: e.to_string() })?;
        }
        Ok(())
    }

    /// A tenant's quotas (the defaults if the tenant is unknown).
    pub fn quotas(&self, tenant: &str) -> Quotas {
        self.inner.quotas.read().unwrap().get(tenant).copied().unwrap_or_default()
    }

    /// Record a tenant's new quotas (or, with `None`, its deletion).
    pub fn set_quotas(&self, tenant: &str, quotas: Option<Quotas>) {
        let mut all = self.inner.quotas.write().unwrap();
        match quotas {
            Some(q) => all.insert(tenant.to_string(), q),
            None => all.remove(tenant),
        };
        drop(all);
        self.inner.wake.notify_one();
    }

    /// Serve a job that was Running when the daemon stopped, without calling
    /// its plugin (see [`prepare::PrepareContext::validate_params`]).
    async fn resume_at_start(&self, job: &JobRecord) -> Result<(), JobError> {
        let cx = prepare::PrepareContext { validate_params: false, ..self.prepare_context() };
        let prepared = prepare::prepare(&job.spec, job.tenant.as_deref(), &cx).await?;
        self.insert_active(job, prepared);
        Ok(())
    }

    /// [`Jobs::resume_at_start`] once the job's plugin has compiled; if it
    /// fails to, the job fails, naming why.
    async fn resume_when_plugin_ready(&self, job: JobRecord) {
        loop {
            // A compile may end between the check and the wait: look again now and then.
            let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.plugins.compile_ended()).await;
            // Cancelled, suspended or deleted meanwhile: nothing to resume.
            let id = job.id;
            let job = match self.inner.store.call(move |s| s.get_job(id)).await {
                Ok(Some(job)) if job.state == JobState::Running => job,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(job = id, error = %e, "reading a job waiting for its plugin");
                    continue;
                }
            };
            match self.resume_at_start(&job).await {
                Ok(()) => {
                    tracing::info!(job = job.id, "job resumed: its plugin is ready");
                    self.inner.wake.notify_one();
                    return;
                }
                Err(JobError::PluginNotReady { failure: None, .. }) => continue,
                Err(e) => return self.fail_job(job.id, format!("cannot resume after restart: {e}")).await,
            }
        }
    }

    /// The daemon is stopping: claim no task from now on. Tasks claimed but
    /// not started go back to Pending, their attempt uncounted.
    pub fn stop_claiming(&self) {
        self.inner.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// After [`Jobs::stop_claiming`]: wait up to `grace` for the tasks in
    /// flight to finish, then for their results to be committed. Returns how
    /// many tasks were still running at the end of the grace period (they run
    /// again at the next start).
    pub async fn drain(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        let running = loop {
            let running: usize = self.inner.active.lock().unwrap().values().map(|a| a.in_flight).sum();
            if running == 0 || tokio::time::Instant::now() >= deadline {
                break running;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The group commit takes milliseconds, or retries while the store is unavailable.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.inner.uncommitted.load(std::sync::atomic::Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        running
    }

    /// Whether a Running job uses the plugin stored under `key` (`owner/name`).
    pub fn plugin_in_use(&self, key: &str) -> Option<JobId> {
        self.inner.active.lock().unwrap().iter().find(|(_, a)| a.prepared.plugin_key == key).map(|(id, _)| *id)
    }

    fn insert_active(&self, job: &JobRecord, prepared: Arc<Prepared>) {
        let start_planner = {
            let mut active = self.inner.active.lock().unwrap();
            let entry = active.entry(job.id).or_insert_with(|| Active::new(prepared));
            // Resumed or retried: a fast-fail halt belongs to the run before.
            entry.halted = false;
            entry.activations += 1;
            let start = !job.planning.done && !entry.planner_running;
            entry.planner_running |= start;
            start
        };
        if start_planner {
            tokio::spawn(planner(self.inner.clone(), job.id, job.spec.clone(), job.planning.cursor.clone()));
        }
        self.inner.wake.notify_one();
    }

    /// A job that `caller` may see. Another tenant's job is "not found": its existence does not leak.
    pub async fn get(&self, caller: &Principal, id: JobId) -> Result<JobRecord, JobError> {
        let job = self.inner.store.call(move |s| s.get_job(id)).await.map_err(internal)?;
        job.filter(|j| caller.owns(j.tenant.as_deref())).ok_or(JobError::NotFound(id))
    }

    /// Change a job of `caller` in one store transaction, and tell listeners.
    /// `f` refuses the change with an error; another tenant's job is not found.
    async fn update_owned(
        &self,
        caller: &Principal,
        id: JobId,
        f: impl FnOnce(&mut JobRecord) -> Result<(), JobError> + Send + 'static,
    ) -> Result<JobRecord, JobError> {
        let caller = caller.clone();
        let result = self
            .inner
            .store
            .call(move |s| {
                s.update_job(id, |job| {
                    if !caller.owns(job.tenant.as_deref()) {
                        return Err(JobError::NotFound(id));
                    }
                    f(job)
                })
            })
            .await
            .map_err(internal)?;
        let job = result.ok_or(JobError::NotFound(id))??;
        publish(&self.inner, &job);
        Ok(job)
    }

    /// Move a job between states, refusing moves the state machine does not allow.
    async fn transition(
        &self,
        caller: &Principal,
        id: JobId,
        action: &'static str,
        allowed: &'static [JobState],
        to: JobState,
    ) -> Result<JobRecord, JobError> {
        self.update_owned(caller, id, move |job| {
            if !allowed.contains(&job.state) {
                return Err(JobError::WrongState { id, state: job.state.as_str(), action });
            }
            if to == JobState::Running && job.state == JobState::Suspended {
                // The reason it was suspended for (a full disk) is over.
                job.error = None;
            }
            job.state = to;
            if to.is_terminal() {
                job.finished_at = Some(now());
            }
            Ok(())
        })
        .await
    }

    /// Change a job's priority, also while it runs.
    pub async fn set_priority(&self, caller: &Principal, id: JobId, priority: i32) -> Result<JobRecord, JobError> {
        let job = self
            .update_owned(caller, id, move |job| {
                job.spec.priority = priority;
                Ok(())
            })
            .await?;
        if let Some(a) = self.inner.active.lock().unwrap().get_mut(&id) {
            a.priority = priority;
        }
        self.inner.wake.notify_one();
        Ok(job)
    }

    /// Live updates of every job (each as it is after a change), and deletions.
    pub fn subscribe(&self) -> broadcast::Receiver<JobUpdate> {
        self.inner.updates.subscribe()
    }

    /// Stop claiming new tasks at once; tasks already running finish.
    pub async fn suspend(&self, caller: &Principal, id: JobId) -> Result<JobRecord, JobError> {
        self.transition(caller, id, "suspend", &[JobState::Running, JobState::Ready], JobState::Suspended).await
    }

    /// Go on from the planner's cursor and the pending tasks.
    pub async fn resume(&self, caller: &Principal, id: JobId) -> Result<JobRecord, JobError> {
        let current = self.get(caller, id).await?;
        // Prepared first: a job whose plugin, style or role is gone is refused
        // here, rather than left Running with nothing to schedule it.
        let prepared = prepare::prepare(&current.spec, current.tenant.as_deref(), &self.prepare_context()).await?;
        // Refused by the store at the tenant's `running_jobs` quota.
        let job =
            self.transition(caller, id, "resume", &[JobState::Suspended, JobState::Ready], JobState::Running).await?;
        self.insert_active(&job, prepared);
        // A job whose work was all done while suspended ends now.
        let job = self
            .inner
            .store
            .call(move |s| s.add_planned(id, &[], None, false).and_then(|_| s.get_job(id)))
            .await
            .map_err(internal)?;
        if let Some(j) = job.as_ref().filter(|j| j.state.is_terminal()) {
            publish(&self.inner, j);
        }
        report::jobs_changed(&self.inner, job.as_slice());
        job.ok_or(JobError::NotFound(id))
    }

    pub async fn cancel(&self, caller: &Principal, id: JobId) -> Result<JobRecord, JobError> {
        let job = self
            .transition(
                caller,
                id,
                "cancel",
                &[JobState::Ready, JobState::Running, JobState::Suspended],
                JobState::Cancelled,
            )
            .await?;
        report::jobs_changed(&self.inner, std::slice::from_ref(&job));
        Ok(job)
    }

    /// Re-drive only the failed tasks.
    pub async fn retry_failed(&self, caller: &Principal, id: JobId) -> Result<JobRecord, JobError> {
        let job = self.get(caller, id).await?;
        if !matches!(job.state, JobState::Failed | JobState::Succeeded | JobState::Running) || job.counters.failed == 0
        {
            return Err(JobError::WrongState {
                id,
                state: job.state.as_str(),
                action: "retry failed tasks: none failed, or the job is not running or ended",
            });
        }
        let prepared = prepare::prepare(&job.spec, job.tenant.as_deref(), &self.prepare_context()).await?;
        match self.inner.store.call(move |s| s.retry_failed(id)).await.map_err(internal)? {
            Ok(_) => {}
            Err(RetryRefused::State(state)) => {
                return Err(JobError::WrongState {
                    id,
                    state: state.as_str(),
                    action: "retry failed tasks: the job changed state meanwhile",
                });
            }
            // Refused by the store at the tenant's `running_jobs` quota, unless the job is Running already.
            Err(RetryRefused::Quota(full)) => return Err(full.into()),
        }
        let job = self.get(caller, id).await?;
        self.insert_active(&job, prepared);
        publish(&self.inner, &job);
        Ok(job)
    }

    /// Delete a job in a terminal state, with its tasks.
    pub async fn delete(&self, caller: &Principal, id: JobId) -> Result<(), JobError> {
        let job = self.get(caller, id).await?;
        if !job.state.is_terminal() {
            return Err(JobError::WrongState { id, state: job.state.as_str(), action: "delete (cancel it first)" });
        }
        self.inner.store.call(move |s| s.delete_job(id)).await.map_err(internal)?;
        // Live listeners end their streams with a `deleted` event.
        let _ = self.inner.updates.send(JobUpdate::Deleted(id));
        Ok(())
    }

    async fn fail_job(&self, id: JobId, error: String) {
        fail_job(&self.inner, id, error).await
    }
}

async fn jobs_store_tenants(store: &Store) -> anyhow::Result<Vec<crate::auth::TenantRecord>> {
    Ok(store.call(|s| s.list_tenants()).await?)
}

/// Tell live listeners and the webhook deliverer that a job changed.
fn publish(inner: &Inner, job: &JobRecord) {
    if job.state != JobState::Running
        && let Some(a) = inner.active.lock().unwrap().get_mut(&job.id)
    {
        a.stops += 1;
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

/// Page through the selection, writing tasks and the cursor batch by batch.
async fn planner(inner: Arc<Inner>, id: JobId, spec: JobSpec, cursor: Option<String>) {
    let mut result = plan(&inner, id, &spec, cursor).await;
    if result.is_ok() && spec.follow {
        result = follow(&inner, id, &spec).await;
    }
    if let Some(a) = inner.active.lock().unwrap().get_mut(&id) {
        a.planner_running = false;
    }
    match result {
        Err(e) => fail_job(&inner, id, e).await,
        // The listing may have ended the job (an empty selection): tell listeners.
        Ok(()) => {
            if let Ok(Some(job)) = inner.store.call(move |s| s.get_job(id)).await {
                publish(&inner, &job);
            }
        }
    }
    report::job_changed(&inner, id).await;
    inner.wake.notify_one();
}

/// The role a running job was prepared with.
fn job_role(inner: &Inner, id: JobId) -> Option<crate::auth::RoleRecord> {
    inner.active.lock().unwrap().get(&id).and_then(|a| a.prepared.role.clone())
}

/// A listing sees only what the job's role may read, as a listing made with
/// the role's own permissions would: keys outside are neither planned nor
/// shown. (A manifest names its keys itself: one outside the grants becomes a
/// task that fails with kind `grant`.)
pub(crate) fn listed_under_role(spec: &JobSpec, role: Option<&crate::auth::RoleRecord>, key: &str) -> bool {
    spec.input.manifest.is_some()
        || role.is_none_or(|r| r.allows(&spec.input.bucket, key, crate::auth::Access::Read).is_ok())
}

/// A page of the selection as tasks to plan: what the role lets the listing see.
fn to_plan(
    spec: &JobSpec,
    role: Option<&crate::auth::RoleRecord>,
    objects: Vec<crate::runtime::ObjectMeta>,
) -> Vec<PlannedObject> {
    objects
        .into_iter()
        .filter(|o| listed_under_role(spec, role, &o.key))
        .map(|o| PlannedObject { key: o.key, size: o.size, etag: o.etag, last_modified: o.last_modified })
        .collect()
}

/// Trigger mode by polling: after the backfill, list the selection again
/// every `follow_interval`, queueing new and changed objects, until the job
/// is no longer Running.
async fn follow(inner: &Arc<Inner>, id: JobId, spec: &JobSpec) -> Result<(), String> {
    loop {
        let state = inner.store.call(move |s| s.get_job(id)).await.map_err(|e| e.to_string())?.map(|j| j.state);
        if state != Some(JobState::Running) {
            return Ok(());
        }
        tokio::time::sleep(spec.follow_interval).await;
        let mut pager = Pager::open(&inner.buckets, spec, None, PLAN_PAGE).await.map_err(|e| e.to_string())?;
        let role = job_role(inner, id);
        loop {
            let page = pager.next_page().await.map_err(|e| e.to_string())?;
            let objects = to_plan(spec, role.as_ref(), page.objects);
            let queued = inner.store.call(move |s| s.follow_planned(id, &objects)).await.map_err(|e| e.to_string())?;
            if queued > 0 {
                tracing::info!(job = id, queued, "follow: new or changed objects");
                inner.wake.notify_one();
            }
            if page.done {
                break;
            }
        }
    }
}

impl Jobs {
    /// An object-store event (an S3 notification) for a bucket: queue the
    /// object in every following Running job of `caller` whose selection
    /// holds it. Returns how many tasks were queued.
    pub async fn object_event(&self, caller: &Principal, bucket: &str, object: PlannedObject) -> Result<u64, JobError> {
        let candidates: Vec<JobId> = {
            let active = self.inner.active.lock().unwrap();
            active
                .iter()
                .filter(|(_, a)| {
                    let spec = &a.prepared.spec;
                    // Size and time filters apply when the event carries them; a
                    // missing value passes (the etag check still guards re-runs).
                    let meta = crate::runtime::ObjectMeta {
                        key: object.key.clone(),
                        size: object.size,
                        last_modified: object.last_modified,
                        ..Default::default()
                    };
                    spec.follow
                        && caller.owns(a.prepared.tenant.as_deref())
                        && spec.input.bucket == bucket
                        && object.key.starts_with(&spec.input.prefix)
                        && listed_under_role(spec, a.prepared.role.as_ref(), &object.key)
                        && crate::select::Filter::for_job(spec).is_ok_and(|f| f.matches_known(&meta))
                })
                .map(|(id, _)| *id)
                .collect()
        };
        let mut queued = 0;
        for id in candidates {
            let running = self
                .inner
                .store
                .call(move |s| s.get_job(id))
                .await
                .map_err(internal)?
                .is_some_and(|j| j.state == JobState::Running);
            if !running {
                continue;
            }
            let o = vec![object.clone()];
            queued += self.inner.store.call(move |s| s.follow_planned(id, &o)).await.map_err(internal)?;
        }
        if queued > 0 {
            self.inner.wake.notify_one();
        }
        Ok(queued)
    }
}

async fn plan(inner: &Arc<Inner>, id: JobId, spec: &JobSpec, cursor: Option<String>) -> Result<(), String> {
    let still_running = |job: Option<JobRecord>| job.is_some_and(|j| j.state == JobState::Running);
    if !spec.input.keys.is_empty() {
        // Explicit keys: metadata comes from the GET at run time.
        let chunks: Vec<Vec<PlannedObject>> = spec
            .input
            .keys
            .chunks(PLAN_PAGE)
            .map(|c| {
                c.iter()
                    .map(|k| PlannedObject { key: k.clone(), size: None, etag: None, last_modified: None })
                    .collect()
            })
            .collect();
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let done = i + 1 == n;
            patiently(inner, move |s| s.add_planned(id, &chunk, None, done)).await?;
            inner.wake.notify_one();
        }
        if n == 0 {
            patiently(inner, move |s| s.add_planned(id, &[], None, true)).await?;
        }
        return Ok(());
    }
    let mut pager = Pager::open(&inner.buckets, spec, cursor.as_deref(), PLAN_PAGE).await.map_err(|e| e.to_string())?;
    let role = job_role(inner, id);
    loop {
        let page = pager.next_page().await.map_err(|e| e.to_string())?;
        let objects = to_plan(spec, role.as_ref(), page.objects);
        let (cursor, done) = (page.cursor, page.done);
        patiently(inner, move |s| s.add_planned(id, &objects, cursor.as_deref(), done)).await?;
        inner.wake.notify_one();
        if done {
            return Ok(());
        }
        // Stop when the job is suspended or cancelled; resume re-plans from the cursor.
        if !still_running(patiently(inner, move |s| s.get_job(id)).await?) {
            return Ok(());
        }
    }
}

/// A store call that waits out an unavailable store (a full disk: see
/// `store::health`) instead of failing the job; other errors are returned.
async fn patiently<T: Send + 'static>(
    inner: &Inner,
    f: impl Fn(&Store) -> crate::store::Result<T> + Send + Sync + 'static,
) -> Result<T, String> {
    let f = Arc::new(f);
    let mut warned = false;
    loop {
        let call = f.clone();
        match inner.store.call(move |s| call(s)).await {
            Err(crate::store::StoreError::Unavailable(reason)) => {
                if !warned {
                    tracing::warn!(%reason, "the store is unavailable; planning waits for it");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            result => return result.map_err(|e| e.to_string()),
        }
    }
}

/// A job the scheduler may claim for now: its id, free slots, concurrency and priority.
struct Candidate {
    id: JobId,
    room: usize,
    concurrency: usize,
    priority: i32,
    /// `Active::stops` before the claim: read first, so a stop that the
    /// claim's snapshot missed is seen by the task.
    stops: u64,
    halted: bool,
}

/// One tenant's claimable work: its jobs with room, the room its
/// `tasks_in_flight` quota leaves, and its tasks in flight (claimed, waiting
/// for a worker or running).
struct TenantWork {
    quota_room: usize,
    in_flight: usize,
    jobs: Vec<Candidate>,
}

/// Active jobs with room, grouped by tenant (the admin's under `""`); the
/// tasks in flight across the daemon; and how many tenants have work (jobs
/// with room or tasks in flight), among whom claims are shared.
fn candidates_by_tenant(inner: &Inner) -> (Vec<TenantWork>, usize, usize) {
    let mut active = inner.active.lock().unwrap();
    let quotas = inner.quotas.read().unwrap();
    let mut by_tenant: BTreeMap<String, TenantWork> = BTreeMap::new();
    let mut in_flight = 0;
    for (id, a) in active.iter_mut() {
        in_flight += a.in_flight;
        let tenant = a.prepared.tenant.clone().unwrap_or_default();
        let entry = by_tenant.entry(tenant).or_insert_with(|| {
            let quota = a
                .prepared
                .tenant
                .as_ref()
                .map_or(usize::MAX, |t| quotas.get(t).copied().unwrap_or_default().tasks_in_flight as usize);
            TenantWork { quota_room: quota, in_flight: 0, jobs: Vec::new() }
        });
        // The tenant's room is its quota less everything of it in flight.
        entry.quota_room = entry.quota_room.saturating_sub(a.in_flight);
        entry.in_flight += a.in_flight;
        let room = a.room();
        if room > 0 {
            entry.jobs.push(Candidate {
                id: *id,
                room,
                concurrency: a.prepared.spec.concurrency as usize,
                priority: a.priority,
                stops: a.stops,
                halted: a.halted,
            });
        }
    }
    let with_work = by_tenant.values().filter(|t| t.in_flight > 0 || !t.jobs.is_empty()).count();
    let claimable = by_tenant.into_values().filter(|t| t.quota_room > 0 && !t.jobs.is_empty()).collect();
    (claimable, in_flight, with_work)
}

/// Claim tasks for active jobs and hand them to workers: tenants in turn,
/// then each tenant's jobs in turn.
///
/// Claims are shared among tenants by what each holds in flight: a tenant
/// may always claim up to its fair part of `workers + claim_ahead` (divided
/// among the tenants with work), even while another tenant's slow tasks hold
/// every slot; the dispatcher then starts the newcomer's tasks first (see
/// `dispatch`). Beyond its fair part, a tenant claims only from what is free.
async fn scheduler(inner: Arc<Inner>) {
    let mut turn = 0usize;
    let slots = inner.worker_count + inner.claim_ahead;
    loop {
        let _ = tokio::time::timeout(Duration::from_millis(50), inner.wake.notified()).await;
        loop {
            // Stopping, or the store cannot record claims (a full disk): claim nothing.
            if inner.stopping.load(std::sync::atomic::Ordering::SeqCst) || inner.store.unavailable().is_some() {
                break;
            }
            let (mut tenants, in_flight, with_work) = candidates_by_tenant(&inner);
            if tenants.is_empty() {
                break;
            }
            // Tasks are claimed ahead of the workers and wait for one in
            // memory, so a claim is off the critical path; but only a few
            // ahead, so a newcomer's tasks do not queue behind a big job's.
            let mut capacity = slots.saturating_sub(in_flight);
            // A hard ceiling on claims held: fair parts claimed past a busy
            // tenant's slots may at most double them.
            let mut ceiling = (2 * slots).saturating_sub(in_flight);
            let fair = slots.div_ceil(with_work.max(1));
            let idle = inner.dispatcher.idle();
            // Rotate who goes first, so each tenant and each job gets its turn.
            let k = turn % tenants.len();
            tenants.rotate_left(k);
            turn = turn.wrapping_add(1);
            let share = (capacity / tenants.len()).max(1);
            let mut claimed_any = false;
            for TenantWork { quota_room, in_flight: tenant_in_flight, mut jobs } in tenants {
                // Jobs of equal priority take turns; a higher priority goes first.
                let k = turn % jobs.len();
                jobs.rotate_left(k);
                jobs.sort_by_key(|c| std::cmp::Reverse(c.priority));
                // Only when tenants compete: alone, a tenant's fair part is everything.
                let under_fair = if with_work > 1 { fair.saturating_sub(tenant_in_flight) } else { 0 };
                let mut budget = share.min(capacity).max(under_fair).min(quota_room).min(ceiling);
                for Candidate { id, room, concurrency, stops, halted, .. } in jobs {
                    if halted {
                        // Gone from the scheduler once its failure is recorded and nothing is in flight.
                        retire_if_idle(&inner, id).await;
                        continue;
                    }
                    let n = room.min(budget).min(CLAIM_BATCH);
                    if n == 0 {
                        break;
                    }
                    if idle == 0 && under_fair == 0 && n < worker::low_water(concurrency, inner.claim_ahead) {
                        // Every worker is busy: wait until one claim can serve several tasks.
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
                    budget -= tasks.len();
                    capacity = capacity.saturating_sub(tasks.len());
                    ceiling -= tasks.len();
                    spawn_workers(&inner, id, stops, tasks);
                }
            }
            if !claimed_any {
                break;
            }
        }
    }
}

/// Start one worker per claimed task; each waits for a worker permit.
/// `stops`: the job's `Active::stops` when the tasks were claimed.
fn spawn_workers(inner: &Arc<Inner>, id: JobId, stops: u64, tasks: Vec<crate::model::TaskRecord>) {
    let prepared = {
        let mut active = inner.active.lock().unwrap();
        let Some(a) = active.get_mut(&id) else { return };
        a.in_flight += tasks.len();
        a.started(tasks.len());
        a.prepared.clone()
    };
    for task in tasks {
        let (inner, prepared) = (inner.clone(), prepared.clone());
        tokio::spawn(async move {
            // Claimed ahead: wait for a worker here, not in the scheduler.
            let tenant = prepared.tenant.as_deref().unwrap_or_default();
            let permit = inner.dispatcher.acquire(tenant, prepared.limits.max_memory).await;
            let stopped = inner.stopping.load(std::sync::atomic::Ordering::SeqCst)
                || inner.active.lock().unwrap().get(&id).is_none_or(|a| a.stops != stops);
            let result = if stopped {
                drop(permit);
                TaskResult::Released { job: id, seq: task.seq }
            } else {
                let started = std::time::Instant::now();
                let result = worker::run(&inner, &prepared, task).await;
                drop(permit);
                record_metrics(&result, started.elapsed());
                result
            };
            // The slot is free as soon as the work is done: waiting
            // for the group commit here would cap throughput at
            // `concurrency` tasks per commit interval. The result is
            // counted as uncommitted before the task stops counting as in
            // flight, so a drain never misses it.
            let failed = matches!(result, TaskResult::Failed { .. });
            send_result(&inner, result);
            if let Some(a) = inner.active.lock().unwrap().get_mut(&id) {
                a.in_flight = a.in_flight.saturating_sub(1);
                if prepared.spec.fast_fail && failed {
                    // Fast-fail acts on the first failure, not on its commit
                    // a few milliseconds later: no new task, and none of
                    // those waiting for a worker, starts after it.
                    a.halted = true;
                    a.stops += 1;
                }
            }
            inner.wake.notify_one();
        });
    }
}

fn record_metrics(result: &TaskResult, took: Duration) {
    let m = crate::metrics::global();
    match result {
        TaskResult::Succeeded { bytes_in, bytes_out, .. } => m.task_finished("succeeded", took, *bytes_in, *bytes_out),
        TaskResult::Failed { bytes_in, .. } => m.task_finished("failed", took, *bytes_in, 0),
        TaskResult::Retry { .. } => m.task_finished("retry", took, 0, 0),
        TaskResult::Skipped { .. } => m.task_finished("skipped", took, 0, 0),
        TaskResult::Claimed { .. } | TaskResult::Released { .. } => {}
    }
}

/// Drop a job from the scheduler once it is no longer Running and nothing of it is in flight.
async fn retire_if_idle(inner: &Arc<Inner>, id: JobId) {
    let idle = |a: &Active| a.in_flight == 0 && !a.planner_running;
    let Some(activations) = inner.active.lock().unwrap().get(&id).filter(|a| idle(a)).map(|a| a.activations) else {
        return;
    };
    let state = inner.store.call(move |s| s.get_job(id)).await.ok().flatten().map(|j| j.state);
    if state != Some(JobState::Running) {
        let mut active = inner.active.lock().unwrap();
        // Not if it was resumed or retried while the state was read.
        if active.get(&id).is_some_and(|a| idle(a) && a.activations == activations) {
            active.remove(&id);
            inner.claims.forget(id);
        }
    }
}

/// Hand a result to the committer, counted until it is committed.
fn send_result(inner: &Inner, result: TaskResult) {
    inner.uncommitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if inner.results.send(result).is_err() {
        inner.uncommitted.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Group commit: gather results for up to `commit_delay`, then one transaction.
async fn committer(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<TaskResult>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        worker::gather(&mut rx, &mut batch, inner.commit_batch, inner.commit_delay).await;
        let batch = Arc::new(batch);
        // Until it commits: the batch's claims are held in memory until they
        // are recorded, so dropping a batch would strand its tasks until a
        // restart. A replay is harmless: each result applies only to a task
        // in the state it expects. (A crash meanwhile re-runs them, as ever.)
        let mut backoff = Duration::from_millis(50);
        let touched = loop {
            let committed = {
                let batch = batch.clone();
                inner.store.call(move |s| s.commit_results(&batch)).await
            };
            match committed {
                Ok(touched) => break touched,
                Err(e) => {
                    tracing::error!(error = %e, results = batch.len(), retry_in = ?backoff, "group commit failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        inner.claims.committed(&batch);
        inner.uncommitted.fetch_sub(batch.len(), std::sync::atomic::Ordering::SeqCst);
        for job in &touched {
            publish(&inner, job);
        }
        report::jobs_changed(&inner, &touched);
        inner.wake.notify_one();
    }
}
