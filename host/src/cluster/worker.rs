//! `kiln worker`: runs the tasks a coordinator orders, with no redb and no
//! HTTP API. It pulls as many orders as it has free slots (no prefetch), from the routes
//! whose buckets it reaches, acks progress while a task runs, publishes the
//! result, and only then acks the task, so a worker that dies mid-task
//! leaves it to be redelivered to another.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::sync::{OnceCell, Semaphore};

use super::{BEAT, Outcome, Parts, ResultMsg, Route, TaskOutcome, WorkerBeat};
use crate::jobs::Prepared;
use crate::jobs::order::{OrderIn, OrderStub, TaskIn};
use crate::jobs::worker::{Attempted, attempt};
use crate::model::JobId;
use crate::objects::Buckets;
use crate::runtime::{Plugin, Runtime, TaskErrorKind};
use crate::store::TaskResult;

/// A worker's settings.
pub struct WorkerOptions {
    pub name: String,
    pub slots: usize,
    /// How long a stopping worker lets its running tasks finish.
    pub grace: Duration,
    /// Buckets it has a definition of but cannot reach: not advertised.
    pub unreachable: Vec<String>,
}

struct Worker {
    js: jetstream::Context,
    parts: Parts,
    runtime: Arc<Runtime>,
    buckets: Buckets,
    name: String,
    /// The buckets this worker's configuration reaches.
    reachable: Vec<String>,
    /// The consumers of the routes it serves, by name (one per route and
    /// tenant, see [`Route`]), each with its ack wait as last listed.
    routes: std::sync::Mutex<std::collections::BTreeMap<String, (PullConsumer, Duration)>>,
    /// Plugins by sha256, each loaded once (tasks of other plugins do not wait for it).
    plugins: std::sync::Mutex<HashMap<String, Arc<OnceCell<Plugin>>>>,
    /// The jobs prepared here, by the digest of their orders' part.
    jobs: std::sync::Mutex<HashMap<String, Arc<Prepared>>>,
    busy: AtomicUsize,
    done: AtomicU64,
}

/// Jobs kept prepared, at most (then forgotten all at once: a few parse again).
const JOBS_KEPT: usize = 256;

/// Run until `stop` is set: then take no new task, and let those running
/// finish (for `grace`; what is left is redelivered to another worker).
pub async fn run(
    js: jetstream::Context,
    runtime: Arc<Runtime>,
    buckets: Buckets,
    options: WorkerOptions,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let parts = super::ensure(&js, None).await?;
    if let Ok(Some(entry)) = parts.workers.get(super::COORDINATOR_KEY).await
        && let Ok(c) = serde_json::from_slice::<serde_json::Value>(&entry)
        && let Some(theirs) = c["version"].as_str()
        && theirs != super::WIRE_VERSION
    {
        anyhow::bail!(
            "the coordinator is Kiln {theirs} and this worker is Kiln {}: run workers of the coordinator's version",
            super::WIRE_VERSION
        );
    }
    let reachable =
        buckets.list().into_iter().map(|b| b.name).filter(|name| !options.unreachable.contains(name)).collect();
    let worker = Arc::new(Worker {
        js,
        parts,
        runtime,
        buckets,
        name: options.name.clone(),
        reachable,
        routes: Default::default(),
        plugins: Default::default(),
        jobs: Default::default(),
        busy: AtomicUsize::new(0),
        done: AtomicU64::new(0),
    });
    let slots = Arc::new(Semaphore::new(options.slots.max(1)));
    tokio::spawn(beat(worker.clone(), options.slots, stop.clone()));
    let mut opened = worker.js.client().subscribe(super::ROUTES_SUBJECT).await?;
    let w = worker.clone();
    tokio::spawn(async move {
        while opened.next().await.is_some() {
            if let Err(e) = w.follow_routes().await {
                tracing::warn!(error = %e, "listing the task routes");
            }
        }
    });
    tracing::info!(name = %options.name, slots = options.slots, "worker ready");
    let mut turn = 0;
    while !stop.load(Ordering::SeqCst) {
        // As many tasks as slots are free, so no task waits here behind a slow one.
        let mut free = vec![slots.clone().acquire_owned().await.expect("never closed")];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            free.push(permit);
        }
        let routes: Vec<(PullConsumer, Duration)> = worker.routes.lock().unwrap().values().cloned().collect();
        if routes.is_empty() {
            // No job has needed buckets this worker reaches yet.
            tokio::time::sleep(BEAT / 4).await;
            continue;
        }
        next_tasks(&routes, &mut turn, free.len(), |message, ack_wait| {
            let permit = free.pop().expect("one task per free slot");
            let w = worker.clone();
            tokio::spawn(async move {
                w.busy.fetch_add(1, Ordering::SeqCst);
                w.take(message, ack_wait).await;
                w.busy.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            });
        })
        .await;
    }
    // Stopping: wait for the running tasks, within the grace.
    let all = options.slots.max(1) as u32;
    let _ = tokio::time::timeout(options.grace, slots.acquire_many(all)).await;
    let _ = worker.parts.workers.delete(&worker.name).await;
    tracing::info!(name = %worker.name, done = worker.done.load(Ordering::SeqCst), "worker stopped");
    Ok(())
}

/// Up to `max` tasks, each handed to `each` with its consumer's ack wait as
/// it arrives: those ready now on the routes, taken in turn; when none is
/// ready, whatever comes on one of them within a moment.
async fn next_tasks(
    routes: &[(PullConsumer, Duration)],
    turn: &mut usize,
    max: usize,
    mut each: impl FnMut(jetstream::Message, Duration),
) {
    let n = routes.len();
    let mut got = 0;
    if n > 1 {
        // Each route its part of the free slots first, then what is left in turn.
        let part = max.div_ceil(n);
        for limit in [part, max] {
            for i in 0..n {
                let route = &routes[(*turn + i) % n];
                got += pull(route, None, limit.min(max - got), &mut each).await;
                if got == max {
                    *turn = (*turn + i + 1) % n;
                    return;
                }
            }
        }
        if got > 0 {
            *turn = (*turn + 1) % n;
            return;
        }
    }
    let route = &routes[*turn % n];
    *turn = (*turn + 1) % n;
    let wait = if n == 1 { Duration::from_secs(1) } else { Duration::from_millis(250) };
    pull(route, Some(wait), max, &mut each).await;
}

/// Up to `max` messages of `route`: those ready now (`wait` `None`), or
/// those that come within `wait`, each handed to `each` as it arrives.
async fn pull(
    (route, ack_wait): &(PullConsumer, Duration),
    wait: Option<Duration>,
    max: usize,
    each: &mut impl FnMut(jetstream::Message, Duration),
) -> usize {
    let batch = match wait {
        None => route.fetch().max_messages(max).messages().await,
        Some(wait) => route.batch().max_messages(max).expires(wait).messages().await,
    };
    let ack_wait = *ack_wait;
    let mut got = 0;
    let failed = |e: &dyn std::fmt::Display| tracing::warn!(error = %e, "pulling a task");
    // A pull whose request or answer was lost (NATS restarting) must not
    // hold the loop for ever: a no-wait fetch has no timer of its own.
    let patience = wait.unwrap_or_default() + Duration::from_secs(5);
    match batch {
        Ok(mut batch) => {
            while let Ok(Some(message)) = tokio::time::timeout(patience, batch.next()).await {
                match message {
                    Ok(message) => {
                        each(message, ack_wait);
                        got += 1;
                    }
                    Err(e) => {
                        failed(&e);
                        break;
                    }
                }
            }
            if got > 0 || wait.is_none() {
                return got;
            }
        }
        Err(e) => failed(&e),
    }
    // Nothing came: with a pull that waited, NATS may be away; do not spin.
    if wait.is_some() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    got
}

/// The same `outcome` for each task of an order, by (seq, attempt): an order
/// not run (another version, a job that cannot be prepared here, worker-lost).
fn all_ending(tasks: impl Iterator<Item = (u64, u32)>, outcome: Outcome) -> Vec<TaskOutcome> {
    tasks.map(|(seq, attempt)| TaskOutcome { seq, attempt, outcome: outcome.clone() }).collect()
}

/// Say every [`BEAT`] that this worker is alive, and how busy; and follow
/// the routes, serving those whose buckets it reaches.
async fn beat(worker: Arc<Worker>, slots: usize, stop: Arc<AtomicBool>) {
    let buckets = worker.reachable.clone();
    while !stop.load(Ordering::SeqCst) {
        if let Err(e) = worker.follow_routes().await {
            tracing::warn!(error = %e, "listing the task routes");
        }
        let beat = WorkerBeat {
            name: worker.name.clone(),
            version: super::WIRE_VERSION.to_string(),
            slots,
            busy: worker.busy.load(Ordering::SeqCst),
            done: worker.done.load(Ordering::SeqCst),
            buckets: buckets.clone(),
        };
        let bytes = serde_json::to_vec(&beat).expect("beats serialise");
        if let Err(e) = worker.parts.workers.put(&worker.name, bytes.into()).await {
            tracing::warn!(error = %e, "announcing the worker");
        }
        tokio::time::sleep(BEAT).await;
    }
}

impl Worker {
    /// Add the consumers of routes this worker can serve and has not joined
    /// yet, and take up the ack wait of those it has (the coordinator may change it).
    async fn follow_routes(&self) -> anyhow::Result<()> {
        let mut consumers = self.parts.tasks.consumers();
        let mut serve = Vec::new();
        while let Some(info) = consumers.next().await {
            let info = info.map_err(|e| anyhow::anyhow!("{e}"))?;
            let Some(route) = Route::of_consumer(&info).filter(|r| r.served_by(&self.reachable)) else { continue };
            let ack_wait = info.config.ack_wait;
            match self.routes.lock().unwrap().get_mut(&info.name) {
                Some(known) => known.1 = ack_wait,
                None => serve.push((info.name.clone(), route, ack_wait)),
            }
        }
        for (name, route, ack_wait) in serve {
            let consumer: PullConsumer =
                self.parts.tasks.get_consumer(&name).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::info!(buckets = ?route.buckets, consumer = %name, "serving these tasks");
            self.routes.lock().unwrap().insert(name, (consumer, ack_wait));
        }
        Ok(())
    }

    /// Run one order (a task, or a bundle of short ones, one after another
    /// in this slot): its result is published before the order is acked.
    async fn take(&self, message: jetstream::Message, ack_wait: Duration) {
        let order = match OrderIn::read(&message.payload) {
            Ok(o) => o,
            Err(e) => {
                if let Some((stub, refused)) = OrderStub::of_another_version(&message.payload) {
                    // Of another version (a worker left running through an
                    // upgrade): answered, so the coordinator orders it again.
                    let why = refused.to_string();
                    let tasks = stub.tasks();
                    tracing::warn!(job = tasks[0].job, tasks = tasks.len(), %why, "tasks not run here");
                    let results =
                        all_ending(tasks.iter().map(|t| (t.seq, t.attempts)), Outcome::Released { why: Some(why) });
                    self.answer(&message, tasks[0].job, results, 0).await;
                    return;
                }
                // Not a task order: no worker could run it.
                tracing::error!(error = %e, "a task message that is not a task order: dropped");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        let job = order.tasks[0].task.job;
        let delivered = message.info().map_or(1, |i| i.delivered.max(1) as u64);
        let outcome_of_all = |outcome| all_ending(order.tasks.iter().map(|t| (t.task.seq, t.task.attempts)), outcome);
        // What running the tasks took (the job's preparing aside), 0 when none ran:
        // the coordinator sizes the job's bundles by it.
        let mut took_us = 0;
        let results = if delivered > u64::from(order.max_deliveries) {
            // Every worker it was handed to before went silent: do not risk
            // this one too (not even fetching and compiling its plugin).
            let error = crate::model::TaskErrorRecord::new(
                TaskErrorKind::WorkerLost,
                format!(
                    "the task was handed to a worker {} times and each stopped answering for the ack wait of {}s \
                     (it died, hung or lost its connection): it is not handed out again",
                    delivered - 1,
                    ack_wait.as_secs()
                ),
            );
            outcome_of_all(Outcome::Failed { error, duration_ms: 0, bytes_in: 0 })
        } else {
            // Progress acks while the job is prepared (a first compile of its
            // plugin may take longer than the ack wait) and the tasks run, so
            // the order is not handed to another worker meanwhile.
            let acker = async {
                loop {
                    tokio::time::sleep(ack_wait / 3).await;
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            };
            let prepare_and_run = async {
                match self.job(&order).await {
                    Ok(prepared) => {
                        let started = std::time::Instant::now();
                        let mut results = Vec::with_capacity(order.tasks.len());
                        for t in &order.tasks {
                            let outcome = self.run(&prepared, t).await;
                            results.push(TaskOutcome { seq: t.task.seq, attempt: t.task.attempts, outcome });
                        }
                        took_us = started.elapsed().as_micros() as u64;
                        results
                    }
                    Err(why) => {
                        tracing::warn!(job, tasks = order.tasks.len(), %why, "tasks not run here");
                        outcome_of_all(Outcome::Released { why: Some(why) })
                    }
                }
            };
            tokio::select! {
                results = prepare_and_run => results,
                _ = acker => unreachable!("the acker never ends"),
            }
        };
        self.answer(&message, job, results, took_us).await;
    }

    /// Publish an order's result, then ack its message.
    async fn answer(&self, message: &jetstream::Message, job: JobId, results: Vec<TaskOutcome>, took_us: u64) {
        let tasks = results.len() as u64;
        let result = ResultMsg { job, worker: self.name.clone(), took_us, results };
        let payload = serde_json::to_vec(&result).expect("results serialise");
        let published = match self.js.publish(format!("kiln.results.{job}"), payload.into()).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match published {
            Ok(()) => {
                self.done.fetch_add(tasks, Ordering::SeqCst);
                // Not waited for: an ack lost on the way only makes the order
                // run again after the ack wait, and its second result is dropped.
                let _ = message.ack().await;
            }
            // Not acked: JetStream hands the order to a worker again after the ack wait.
            Err(e) => {
                tracing::warn!(job, tasks, error = %e, "publishing a result failed; the order will be redelivered")
            }
        }
    }

    /// The order's job, prepared here: once per job (by its part's digest),
    /// after the order's version is checked. Why not, when it cannot run here.
    async fn job(&self, order: &OrderIn<'_>) -> Result<Arc<Prepared>, String> {
        // The version is the order's, not the part's: checked for every order.
        order.check_version().map_err(|e| e.to_string())?;
        if let Some(prepared) = self.jobs.lock().unwrap().get(&order.part_digest).cloned() {
            return Ok(prepared);
        }
        let part = order.part().map_err(|e| e.to_string())?;
        let plugin = self
            .plugin(&part.plugin_sha256)
            .await
            .map_err(|e| format!("plugin `{}` ({}): {e}", part.plugin, part.plugin_sha256))?;
        let prepared = part.prepare(&self.buckets, plugin).map_err(|e| e.to_string())?;
        let mut jobs = self.jobs.lock().unwrap();
        if jobs.len() >= JOBS_KEPT {
            jobs.clear();
        }
        jobs.insert(order.part_digest.clone(), prepared.clone());
        Ok(prepared)
    }

    async fn run(&self, prepared: &Arc<Prepared>, t: &TaskIn) -> Outcome {
        let attempted = attempt(&self.runtime, prepared, t.task.clone(), t.may_retry, t.last_etag.clone()).await;
        match attempted {
            Attempted::DiskFull(message) => Outcome::DiskFull { message },
            Attempted::Done(result) => match result {
                TaskResult::Succeeded { etag, outputs, bytes_in, bytes_out, duration_ms, result, .. } => {
                    Outcome::Succeeded { etag, outputs, bytes_in, bytes_out, duration_ms, result }
                }
                TaskResult::Failed { error, duration_ms, bytes_in, .. } => {
                    Outcome::Failed { error, duration_ms, bytes_in }
                }
                TaskResult::Retry { error, .. } => Outcome::Retry { error },
                TaskResult::Skipped { .. } => Outcome::Skipped,
                TaskResult::Released { .. } | TaskResult::Claimed { .. } => Outcome::Released { why: None },
            },
        }
    }

    /// The plugin of digest `sha256`: loaded before, or fetched from the
    /// object store, checked against its digest, and loaded (from this
    /// worker's compile cache when it was compiled here before).
    async fn plugin(&self, sha256: &str) -> anyhow::Result<Plugin> {
        let cell = self.plugins.lock().unwrap().entry(sha256.to_string()).or_default().clone();
        let plugin = cell
            .get_or_try_init(|| async {
                let mut object = self.parts.plugins.get(sha256).await.map_err(|e| anyhow::anyhow!("fetching: {e}"))?;
                let mut wasm = Vec::new();
                object.read_to_end(&mut wasm).await?;
                use sha2::Digest;
                let got = hex::encode(sha2::Sha256::digest(&wasm));
                anyhow::ensure!(got == sha256, "the object store holds a component of digest {got} under its name");
                self.runtime.load(&wasm).await.map_err(|e| anyhow::anyhow!("loading: {e}"))
            })
            .await?;
        Ok(plugin.clone())
    }
}
