//! Where claimed tasks run. The scheduler decides *which* tasks run next
//! (fair share, priority, pacing, quotas) and claims them; an [`Executor`]
//! runs them and hands each result to the committer. Today's executor is
//! the local worker pool; a cluster's reaches workers on other machines.

use std::sync::Arc;
use std::time::Duration;

use super::dispatch::{Ask, Dispatcher};
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
    /// How many of `job`'s tasks one slot may hold claimed (a job's
    /// `concurrency` counts slots): a cluster's bundle of short tasks, run one
    /// after another; the local pool's task running and those claimed ahead
    /// to follow it (its dispatcher bounds the job's running tasks).
    fn tasks_per_slot(&self, _job: JobId) -> usize {
        1
    }
    /// Run a job's claimed `tasks`: each ends in [`task_done`] with its result,
    /// or with [`TaskResult::Released`] if the job stopped (`stops` moved on)
    /// before the task started.
    fn execute(&self, inner: &Arc<Inner>, job: JobId, stops: u64, prepared: Arc<Prepared>, tasks: Vec<TaskRecord>);
    /// The job left Running (suspended, cancelled, ended): its tasks that
    /// have not started should not. The local pool's check at start does it.
    fn job_stopped(&self, _inner: &Inner, _job: JobId) {}
}

/// The local worker pool: each task waits for a slot of the [`Dispatcher`]
/// (fair among tenants, within the memory budget), then runs here.
pub(super) struct LocalPool {
    workers: usize,
    dispatcher: Arc<Dispatcher>,
    /// How long a task holds a slot, as a moving average: sizes the claim-ahead.
    pace: Arc<TaskPace>,
}

impl LocalPool {
    pub fn new(workers: usize, memory_budget: u64) -> LocalPool {
        LocalPool { workers, dispatcher: Dispatcher::new(workers, memory_budget), pace: Arc::default() }
    }
}

/// How long the claimed-ahead tasks of one worker may take, together: the
/// longest a newcomer of higher priority waits behind them.
const AHEAD_WORK: Duration = Duration::from_millis(2);
/// Tasks claimed ahead per worker: at least two, to cover a claim's latency
/// (one store call); at most 32. A 1 KiB copy (about 60 us) gets 32, so one
/// claim serves dozens of tasks instead of two; a 5 ms thumbnail gets 2.
const AHEAD_PER_WORKER: (usize, usize) = (2, 32);

/// A moving average of how long tasks hold a slot (weight 1/16 per task), in
/// nanoseconds; 0 until the first task ends. Racy updates lose a sample now
/// and then, which an average does not mind.
#[derive(Default)]
pub(super) struct TaskPace(std::sync::atomic::AtomicU64);

impl TaskPace {
    pub(super) fn record(&self, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let took = took.as_nanos().min(u64::MAX as u128 / 2) as u64;
        let old = self.0.load(Relaxed);
        let average = if old == 0 { took } else { old - old / 16 + took / 16 };
        self.0.store(average.max(1), Relaxed);
    }

    /// Tasks to claim ahead per worker, by [`AHEAD_WORK`].
    pub(super) fn ahead_per_worker(&self) -> usize {
        let (least, most) = AHEAD_PER_WORKER;
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            0 => least,
            average => ((AHEAD_WORK.as_nanos() as u64 / average) as usize).clamp(least, most),
        }
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
        self.workers * self.pace.ahead_per_worker()
    }

    fn tasks_per_slot(&self, _job: JobId) -> usize {
        1 + self.pace.ahead_per_worker()
    }

    fn execute(&self, inner: &Arc<Inner>, job: JobId, stops: u64, prepared: Arc<Prepared>, tasks: Vec<TaskRecord>) {
        for task in tasks {
            let (inner, prepared, dispatcher) = (inner.clone(), prepared.clone(), self.dispatcher.clone());
            let pace = self.pace.clone();
            tokio::spawn(async move {
                // Claimed ahead: wait for a worker here, not in the scheduler.
                let tenant = prepared.tenant.as_deref().unwrap_or_default();
                let permit = dispatcher
                    .acquire(Ask {
                        tenant,
                        job,
                        concurrency: prepared.spec.concurrency as usize,
                        memory: prepared.limits.max_memory,
                    })
                    .await;
                let stopped = inner.stopped_since(job, stops);
                let result = if stopped {
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
                    pace.record(took);
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
