//! One attempt at one task: open the source, run the plugin, upload the outputs.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::model::{TaskErrorRecord, TaskRecord, now};
use crate::objects::ObjectsError;
use crate::runtime::{Task, TaskErrorKind};
use crate::store::TaskResult;
use crate::template::Vars;

use super::{Inner, Prepared};

fn error(kind: &str, message: impl std::fmt::Display) -> TaskErrorRecord {
    TaskErrorRecord { kind: kind.to_string(), message: message.to_string() }
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
