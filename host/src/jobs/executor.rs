//! Where claimed tasks run. The scheduler decides *which* tasks run next
//! (fair share, priority, pacing, quotas) and claims them; an [`Executor`]
//! runs them and hands each result to the committer. Today's executor is
//! the local worker pool; a cluster's reaches workers on other machines.

use std::sync::Arc;
use std::time::Duration;

use super::dispatch::{Ask, Dispatcher};
use super::pace::{Paces, Sizing};
use super::scheduler::task_done;
use super::{Inner, Prepared, worker};
use crate::model::{JobId, TaskRecord};
use crate::store::TaskResult;

/// Runs claimed tasks.
pub(super) trait Executor: Send + Sync + 'static {
    /// Tasks it can run at once: what the scheduler claims for (plus a few ahead).
    fn slots(&self) -> usize;
    /// Slots free now (0 while every one is busy).
    fn idle(&self) -> usize;
    /// Claimed tasks that may wait for a slot, across the daemon: enough to
    /// cover a claim's latency, few enough that a task claimed ahead (past
    /// priority and fair share) does not wait long.
    fn claim_ahead(&self) -> usize;
    /// Tasks of `job` it may hold at once (claimed and not done), when that is
    /// less than [`Self::slots`]: a job whose tasks go out one per order holds
    /// no more than the orders the workers may hold.
    fn job_window(&self, _job: JobId) -> usize {
        usize::MAX
    }
    /// How many of `job`'s tasks share one slot, one after another (a job's
    /// `concurrency` counts slots): 1 but for a cluster's bundles of short tasks.
    fn tasks_per_slot(&self, _job: JobId) -> usize {
        1
    }
    /// Tasks of `job` (whose concurrency allows `concurrency` claimed) it
    /// may hold claimed beyond that, to wait for a slot: the local pool's, by
    /// how long the job's tasks take (its dispatcher bounds the job's running
    /// tasks). A tenant's quota counts them (see the scheduler).
    fn claim_ahead_for(&self, _job: JobId, _concurrency: usize) -> usize {
        0
    }
    /// Run a job's claimed `tasks`: each ends in [`task_done`] with its result,
    /// or with [`TaskResult::Released`] if the job stopped (`stops` moved on)
    /// before the task started.
    fn execute(&self, inner: &Arc<Inner>, job: JobId, stops: u64, prepared: Arc<Prepared>, tasks: Vec<TaskRecord>);
    /// The job left Running (suspended, cancelled, ended): its tasks that
    /// have not started should not. The local pool's check at start does it.
    fn job_stopped(&self, _inner: &Inner, _job: JobId) {}
    /// The daemon is stopping: tasks waiting for a local slot go back to
    /// Pending now, not as slots free.
    fn stopping(&self) {}
}

/// The local worker pool: each task waits for a slot of the [`Dispatcher`]
/// (fair among tenants, within the memory budget), then runs here.
pub(super) struct LocalPool {
    workers: usize,
    dispatcher: Arc<Dispatcher>,
    /// How long each job's tasks hold a slot: sizes what is claimed ahead.
    paces: Arc<TaskPaces>,
    /// The daemon's own pool: tasks are claimed ahead by their pace, and the
    /// dispatcher bounds each job's running tasks by its concurrency. Beside
    /// a cluster's workers, the coordinator's window bounds a job instead,
    /// and two tasks per worker are claimed ahead.
    alone: bool,
}

impl LocalPool {
    pub fn new(workers: usize, memory_budget: u64) -> LocalPool {
        let dispatcher = Dispatcher::new(workers, memory_budget);
        LocalPool { workers, dispatcher, paces: Arc::default(), alone: true }
    }

    /// The `local_workers` of a cluster's coordinator.
    pub fn beside_workers(workers: usize, memory_budget: u64) -> LocalPool {
        LocalPool { alone: false, ..LocalPool::new(workers, memory_budget) }
    }
}

impl Executor for LocalPool {
    fn slots(&self) -> usize {
        self.workers
    }

    fn idle(&self) -> usize {
        self.dispatcher.idle()
    }

    fn claim_ahead(&self) -> usize {
        match self.alone {
            true => self.workers * self.paces.most_ahead_per_worker(),
            false => self.workers * AHEAD_PER_WORKER.least,
        }
    }

    /// Per worker it may use: a job of concurrency 1 claims one worker's
    /// part, and no job more than every worker's.
    fn claim_ahead_for(&self, job: JobId, concurrency: usize) -> usize {
        match self.alone {
            true => concurrency.min(self.workers) * self.paces.ahead_per_worker(job),
            false => 0,
        }
    }

    /// At most its running tasks and their claim-ahead: a job of slow tasks
    /// and a high concurrency holds no more waiting than before claims
    /// were sized (two per worker).
    fn job_window(&self, job: JobId) -> usize {
        match self.alone {
            true => self.workers * (1 + self.paces.ahead_per_worker(job)),
            false => usize::MAX,
        }
    }

    /// Its tasks waiting for a slot go back to Pending at once (not once a
    /// slot frees: a job at its concurrency would keep them until one of its
    /// own running tasks ends), and its pace is forgotten.
    fn job_stopped(&self, _inner: &Inner, job: JobId) {
        self.dispatcher.release_job(job);
        self.paces.forget(job);
    }

    fn stopping(&self) {
        self.dispatcher.release_all();
    }

    fn execute(&self, inner: &Arc<Inner>, job: JobId, stops: u64, prepared: Arc<Prepared>, tasks: Vec<TaskRecord>) {
        for task in tasks {
            let (inner, prepared, dispatcher) = (inner.clone(), prepared.clone(), self.dispatcher.clone());
            let (paces, alone) = (self.paces.clone(), self.alone);
            tokio::spawn(async move {
                // Claimed ahead: wait for a worker here, not in the scheduler.
                let tenant = prepared.tenant.as_deref().unwrap_or_default();
                // Beside a cluster's workers, the coordinator bounds the job.
                let concurrency = if alone { prepared.spec.concurrency as usize } else { usize::MAX };
                let permit =
                    dispatcher.acquire(Ask { tenant, job, concurrency, memory: prepared.limits.max_memory }).await;
                // None: the job stopped while the task waited (`job_stopped`).
                let result = if permit.is_none() || inner.stopped_since(job, stops) {
                    drop(permit);
                    TaskResult::Released { job, seq: task.seq }
                } else {
                    let started = std::time::Instant::now();
                    let result = worker::run(&inner, &prepared, task).await;
                    // The slot is free as soon as the work is done: waiting
                    // for the group commit here would cap throughput at
                    // `concurrency` tasks per commit interval.
                    drop(permit);
                    let took = started.elapsed();
                    // Not for a job stopped meanwhile: its pace was forgotten.
                    if !inner.stopped_since(job, stops) {
                        paces.record(job, took);
                    }
                    record_metrics(&result, took);
                    result
                };
                task_done(&inner, job, &prepared, result);
            });
        }
    }
}

/// Count a finished attempt in `/metrics`, wherever it ran.
pub(super) fn record_metrics(result: &TaskResult, took: Duration) {
    let m = crate::metrics::global();
    match result {
        TaskResult::Succeeded { bytes_in, bytes_out, .. } => m.task_finished("succeeded", took, *bytes_in, *bytes_out),
        TaskResult::Failed { bytes_in, .. } => m.task_finished("failed", took, *bytes_in, 0),
        TaskResult::Retry { .. } => m.task_finished("retry", took, 0, 0),
        TaskResult::Skipped { .. } => m.task_finished("skipped", took, 0, 0),
        TaskResult::Claimed { .. } | TaskResult::Released { .. } => {}
    }
}

/// Tasks claimed ahead per worker: about 2 ms of the job's work together
/// (about the longest a task of another job of the same tenant waits behind
/// them); at least two, to cover a claim's latency (one store call); at most
/// 32. A 1 KiB copy (about 60 us) gets 32, so one claim serves dozens of
/// tasks instead of two; a 5 ms thumbnail gets 2.
const AHEAD_PER_WORKER: Sizing = Sizing { work: Duration::from_millis(2), least: 2, most: 32 };

/// Per job, how long its tasks hold a slot: a moving average measured per
/// task (each weighs 1/16). A job without one (new, or resumed) claims the
/// least ahead until its first task ends.
pub(super) struct TaskPaces(std::sync::Mutex<Paces>);

impl Default for TaskPaces {
    fn default() -> Self {
        TaskPaces(std::sync::Mutex::new(Paces::new(1.0 / 16.0)))
    }
}

impl TaskPaces {
    fn lock(&self) -> std::sync::MutexGuard<'_, Paces> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn record(&self, job: JobId, took: Duration) {
        self.lock().record(job, 1, took);
    }

    pub(super) fn forget(&self, job: JobId) {
        self.lock().forget(job);
    }

    /// Tasks to claim ahead per worker for `job`.
    pub(super) fn ahead_per_worker(&self, job: JobId) -> usize {
        self.lock().tasks(job, AHEAD_PER_WORKER)
    }

    /// The most any job claims ahead per worker: the daemon's claim-ahead.
    pub(super) fn most_ahead_per_worker(&self) -> usize {
        self.lock().most_tasks(AHEAD_PER_WORKER)
    }
}
