//! One attempt at one task: open the source, run the plugin, upload the outputs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::model::{TaskErrorRecord, TaskRecord, now};
use crate::objects::ObjectsError;
use crate::runtime::{Task, TaskErrorKind};
use crate::store::TaskResult;
use crate::template::Vars;

use super::{Inner, Prepared};

/// How many tasks to claim for a job now (one store transaction), given its
/// concurrency, its tasks in flight (claimed and not yet done) and the idle
/// workers of the daemon.
///
/// Tasks are claimed ahead of the workers, up to the job's concurrency, and
/// wait for a worker in memory: so a claim (a read of the store on the
/// blocking pool) is off the critical path. While
/// a worker is idle any room is claimed at once; while all are busy the job
/// waits until a quarter of its concurrency (at most `batch`) is free, so that
/// one claim serves many tasks instead of one claim per finished task, and
/// three quarters stay queued to cover the claim's latency.
pub(super) fn claim_size(concurrency: usize, in_flight: usize, idle_workers: usize, batch: usize) -> usize {
    let room = concurrency.saturating_sub(in_flight);
    let low_water = (concurrency / 4).clamp(1, batch);
    if idle_workers > 0 || room >= low_water { room.min(batch) } else { 0 }
}

/// Gather results for one group commit, up to `max` or for `delay`. It sleeps
/// and drains in a few steps rather than waking once per result: at tens of
/// thousands of results a second, those wake-ups cost more than the commit.
pub(super) async fn gather(rx: &mut mpsc::UnboundedReceiver<TaskResult>, batch: &mut Vec<TaskResult>, max: usize, delay: Duration) {
    let deadline = tokio::time::Instant::now() + delay;
    let step = (delay / 4).max(Duration::from_millis(1));
    loop {
        while batch.len() < max {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let now = tokio::time::Instant::now();
        if batch.len() >= max || now >= deadline {
            return;
        }
        tokio::time::sleep_until((now + step).min(deadline)).await;
    }
}

fn error(kind: &str, message: impl std::fmt::Display) -> TaskErrorRecord {
    TaskErrorRecord { kind: kind.to_string(), message: message.to_string() }
}

#[cfg(test)]
mod tests {
    use super::claim_size;

    #[test]
    fn claims_ahead_in_batches() {
        assert_eq!(claim_size(64, 0, 16, 64), 64, "a new job fills its concurrency");
        assert_eq!(claim_size(64, 60, 0, 64), 0, "busy workers, 4 free slots: wait for more");
        assert_eq!(claim_size(64, 48, 0, 64), 16, "a quarter free: one claim for all of them");
        assert_eq!(claim_size(64, 63, 1, 64), 1, "an idle worker never waits");
        assert_eq!(claim_size(1, 0, 0, 64), 1);
        assert_eq!(claim_size(4, 4, 3, 64), 0, "never beyond the concurrency");
        assert_eq!(claim_size(1000, 0, 0, 64), 64, "one claim is at most a batch");
    }
}

pub(super) async fn run(inner: &Arc<Inner>, prepared: &Arc<Prepared>, task: TaskRecord) -> TaskResult {
    let attempts = task.attempts;
    let result = attempt(inner, prepared, task).await;
    if let TaskResult::Retry { .. } = result {
        // Exponential backoff before the task is Pending again: 100 ms, 200 ms, 400 ms, ...
        tokio::time::sleep(std::time::Duration::from_millis(100 << attempts.min(6))).await;
    }
    result
}

async fn attempt(inner: &Arc<Inner>, prepared: &Arc<Prepared>, task: TaskRecord) -> TaskResult {
    let started = Instant::now();
    let (job, seq) = (task.job, task.seq);
    let elapsed = || started.elapsed().as_millis() as u64;
    let may_retry = task.attempts < inner.max_attempts;

    let (meta, input) = match prepared.input.open(&task.source_key).await {
        Ok(opened) => opened,
        Err(e @ (ObjectsError::NotFound { .. } | ObjectsError::BadKey { .. })) => {
            return TaskResult::Failed { job, seq, error: error("not-found", e), duration_ms: elapsed(), bytes_in: 0 };
        }
        Err(e) if may_retry => return TaskResult::Retry { job, seq, error: error("io", e) },
        Err(e) => return TaskResult::Failed { job, seq, error: error("io", e), duration_ms: elapsed(), bytes_in: 0 },
    };

    // The output key of each output, rendered as the plugin opens it. A key
    // that breaks the path rules fails the task and nothing is written.
    let template_error: Arc<Mutex<Option<String>>> = Arc::default();
    let render = {
        let (prepared, meta, template_error) = (prepared.clone(), meta.clone(), template_error.clone());
        let task_time = now();
        let jobid = job.to_string();
        Box::new(move |index: u32, autoext: Option<&str>| {
            let vars = Vars {
                bucket: &meta.bucket,
                key: &meta.key,
                etag: meta.etag.as_deref(),
                last_modified: meta.last_modified,
                task_time,
                index,
                autoext,
                jobid: &jobid,
                tags: &prepared.spec.tags,
            };
            prepared.template.render(&vars).map_err(|e| {
                let msg = e.to_string();
                *template_error.lock().unwrap() = Some(msg.clone());
                msg
            })
        })
    };
    let run = Task {
        params: prepared.params.clone(),
        object: meta,
        input,
        target: prepared.output.target(render),
        limits: inner.runtime.config().limits,
    };
    match inner.runtime.run(&prepared.plugin, run).await {
        Ok(outcome) => TaskResult::Succeeded {
            job,
            seq,
            outputs: outcome.outputs.into_iter().map(|o| o.location).collect(),
            bytes_in: outcome.bytes_in,
            bytes_out: outcome.bytes_out,
            duration_ms: elapsed(),
        },
        Err(e) => {
            if let Some(msg) = template_error.lock().unwrap().take() {
                return TaskResult::Failed { job, seq, error: error("template", msg), duration_ms: elapsed(), bytes_in: 0 };
            }
            // Only I/O failures are transient; a plugin's verdict or a limit is not.
            if e.kind() == TaskErrorKind::Io && may_retry {
                return TaskResult::Retry { job, seq, error: error("io", &e) };
            }
            TaskResult::Failed { job, seq, error: error(e.kind().as_str(), &e), duration_ms: elapsed(), bytes_in: 0 }
        }
    }
}
