//! `kiln worker`: runs the tasks a coordinator orders, with no redb and no
//! HTTP API. It pulls one task per free slot (no prefetch), acks progress
//! while a task runs, publishes the result, and only then acks the task, so
//! a worker that dies mid-task leaves it to be redelivered to another.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::sync::{Mutex, Semaphore};

use super::{ACK_WAIT, BEAT, Outcome, Parts, ResultMsg, WorkerBeat};
use crate::jobs::order::TaskOrder;
use crate::jobs::worker::{Attempted, attempt};
use crate::objects::Buckets;
use crate::runtime::{Plugin, Runtime};
use crate::store::TaskResult;

/// A worker's settings.
pub struct WorkerOptions {
    pub name: String,
    pub slots: usize,
    /// How long a stopping worker lets its running tasks finish.
    pub grace: Duration,
}

struct Worker {
    js: jetstream::Context,
    parts: Parts,
    runtime: Arc<Runtime>,
    buckets: Buckets,
    name: String,
    /// Plugins loaded so far, by sha256.
    plugins: Mutex<HashMap<String, Plugin>>,
    busy: AtomicUsize,
    done: AtomicU64,
}

/// Run until `stop` is set: then take no new task, and let those running
/// finish (for `grace`; what is left is redelivered to another worker).
pub async fn run(
    js: jetstream::Context,
    runtime: Arc<Runtime>,
    buckets: Buckets,
    options: WorkerOptions,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let parts = super::ensure(&js).await?;
    if let Ok(Some(entry)) = parts.workers.get(super::COORDINATOR_KEY).await
        && let Ok(c) = serde_json::from_slice::<serde_json::Value>(&entry)
        && let Some(theirs) = c["version"].as_str()
        && theirs != env!("CARGO_PKG_VERSION")
    {
        anyhow::bail!(
            "the coordinator is Kiln {theirs} and this worker is Kiln {}: run workers of the coordinator's version",
            env!("CARGO_PKG_VERSION")
        );
    }
    let worker = Arc::new(Worker {
        js,
        parts,
        runtime,
        buckets,
        name: options.name.clone(),
        plugins: Mutex::default(),
        busy: AtomicUsize::new(0),
        done: AtomicU64::new(0),
    });
    let slots = Arc::new(Semaphore::new(options.slots.max(1)));
    tokio::spawn(beat(worker.clone(), options.slots, stop.clone()));
    tracing::info!(name = %options.name, slots = options.slots, "worker ready");
    while !stop.load(Ordering::SeqCst) {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        // One message per free slot, so no task waits here behind a slow one.
        let batch = worker.parts.tasks.fetch().max_messages(1).expires(Duration::from_secs(1)).messages().await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "pulling a task");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match batch.next().await {
            Some(Ok(message)) => {
                let w = worker.clone();
                tokio::spawn(async move {
                    w.busy.fetch_add(1, Ordering::SeqCst);
                    w.take(message).await;
                    w.busy.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                });
            }
            Some(Err(e)) => tracing::warn!(error = %e, "pulling a task"),
            None => {}
        }
    }
    // Stopping: wait for the running tasks, within the grace.
    let all = options.slots.max(1) as u32;
    let _ = tokio::time::timeout(options.grace, slots.acquire_many(all)).await;
    let _ = worker.parts.workers.delete(&worker.name).await;
    tracing::info!(name = %worker.name, done = worker.done.load(Ordering::SeqCst), "worker stopped");
    Ok(())
}

/// Say every [`BEAT`] that this worker is alive, and how busy.
async fn beat(worker: Arc<Worker>, slots: usize, stop: Arc<AtomicBool>) {
    let buckets: Vec<String> = worker.buckets.list().into_iter().map(|b| b.name).collect();
    while !stop.load(Ordering::SeqCst) {
        let beat = WorkerBeat {
            name: worker.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
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
    /// Run one task message: the result is published before the task is acked.
    async fn take(&self, message: jetstream::Message) {
        let order: TaskOrder = match serde_json::from_slice(&message.payload) {
            Ok(o) => o,
            Err(e) => {
                // Not a task order: no worker could run it.
                tracing::error!(error = %e, "a task message that is not a task order: dropped");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        let (job, seq, attempt_no) = (order.task.job, order.task.seq, order.task.attempts);
        // Progress acks while it runs, so a long task is not handed to another worker.
        let acker = async {
            loop {
                tokio::time::sleep(ACK_WAIT / 3).await;
                let _ = message.ack_with(AckKind::Progress).await;
            }
        };
        let outcome = tokio::select! {
            outcome = self.run(&order) => outcome,
            _ = acker => unreachable!("the acker never ends"),
        };
        let result = ResultMsg { job, seq, attempt: attempt_no, worker: self.name.clone(), outcome };
        let payload = serde_json::to_vec(&result).expect("results serialise");
        let published = match self.js.publish(format!("kiln.results.{job}"), payload.into()).await {
            Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match published {
            Ok(()) => {
                self.done.fetch_add(1, Ordering::SeqCst);
                let _ = message.double_ack().await;
            }
            // Not acked: JetStream hands the task to a worker again after the ack wait.
            Err(e) => tracing::warn!(job, seq, error = %e, "publishing a result failed; the task will be redelivered"),
        }
    }

    async fn run(&self, order: &TaskOrder) -> Outcome {
        let released = |why: String| {
            tracing::warn!(job = order.task.job, seq = order.task.seq, %why, "task not run here");
            Outcome::Released { why: Some(why) }
        };
        let plugin = match self.plugin(&order.plugin_sha256).await {
            Ok(p) => p,
            Err(e) => return released(format!("plugin `{}` ({}): {e}", order.plugin, order.plugin_sha256)),
        };
        let prepared = match order.prepare(&self.buckets, plugin) {
            Ok(p) => p,
            Err(e) => return released(e.to_string()),
        };
        let attempted =
            attempt(&self.runtime, &prepared, order.task.clone(), order.may_retry, order.last_etag.clone()).await;
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
        let mut plugins = self.plugins.lock().await;
        if let Some(p) = plugins.get(sha256) {
            return Ok(p.clone());
        }
        let mut object = self.parts.plugins.get(sha256).await.map_err(|e| anyhow::anyhow!("fetching: {e}"))?;
        let mut wasm = Vec::new();
        object.read_to_end(&mut wasm).await?;
        use sha2::Digest;
        let got = hex::encode(sha2::Sha256::digest(&wasm));
        anyhow::ensure!(got == sha256, "the object store holds a component of digest {got} under its name");
        let plugin = self.runtime.load(&wasm).await.map_err(|e| anyhow::anyhow!("loading: {e}"))?;
        plugins.insert(sha256.to_string(), plugin.clone());
        Ok(plugin)
    }
}
