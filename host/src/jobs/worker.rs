//! One attempt at one task: open the source, run the plugin, upload the outputs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::auth::Access;
use crate::model::{TaskErrorRecord, TaskRecord, now};
use crate::objects::ObjectsError;
use crate::runtime::{ObjectMeta, Runtime, Task, TaskErrorKind};
use crate::store::TaskResult;
use crate::template::Vars;

use super::{Inner, Prepared};

/// While every worker is busy, the fewest tasks worth one claim for a job
/// that could hold `reachable` (those it holds and those it may claim now,
/// within every cap): half of that, or of the tasks the daemon may hold
/// waiting for a worker, whichever is less. One claim then serves many
/// tasks, and the half still held covers the claim's latency (claims ahead
/// are sized to about 2 ms of each worker's work, so 1 ms of it). Half of
/// what is reachable is always met as the job's tasks end: a low water from
/// a cap the job cannot reach (its window, its tenant's quota, its pace)
/// would keep it from claiming while another job keeps the workers busy.
/// Each claim is a hand-off to the blocking pool (a thread woken, then
/// parked again): at 30,000 tasks/s, claims of 16 cost a copy about as
/// much CPU as its `process` call.
pub(super) fn low_water(reachable: usize, claim_ahead: usize) -> usize {
    (reachable / 2).min(claim_ahead / 2).clamp(1, LOW_WATER_MOST)
}

/// At most this many: a claim takes at most `scheduler::CLAIM_BATCH` (128)
/// tasks, so a larger low water would never be met and claims would stop
/// while every worker is busy (16 workers, a default job and fast tasks
/// could ask for 264).
const LOW_WATER_MOST: usize = 64;
const _: () = assert!(LOW_WATER_MOST <= super::scheduler::CLAIM_BATCH / 2);

/// Gather results for one group commit, up to `max` or for `delay`. It sleeps
/// and drains in a few steps rather than waking once per result: at tens of
/// thousands of results a second, those wake-ups cost more than the commit.
pub(super) async fn gather(
    rx: &mut mpsc::UnboundedReceiver<TaskResult>,
    batch: &mut Vec<TaskResult>,
    max: usize,
    delay: Duration,
) {
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

fn error(kind: TaskErrorKind, message: impl std::fmt::Display) -> TaskErrorRecord {
    TaskErrorRecord::new(kind, message)
}

/// Whether a listing job that writes to the bucket it reads would select
/// `key`: the path rules prove this cannot happen for the outputs a plugin
/// declares (see `template`, rule 6); this catches the rest (an output opened
/// without an extension takes the source's).
fn selection_keeps(prepared: &Prepared, key: &str) -> bool {
    let Some(selection) = &prepared.own_selection else { return false };
    let input = &prepared.spec.input;
    let prefix = crate::select::listing_prefix(input).unwrap_or(&input.prefix);
    key.starts_with(prefix) && selection.matches_known(&ObjectMeta { key: key.to_string(), ..Default::default() })
}

/// Whether an I/O error's message is the OS saying the disk (or the quota)
/// is full: ENOSPC or EDQUOT, which `std::io::Error` shows as `(os error N)`.
/// Errors reach here as text through the runtime, so the code is matched.
fn disk_full(message: &str) -> bool {
    [libc::ENOSPC, libc::EDQUOT].iter().any(|code| message.contains(&format!("(os error {code})")))
}

pub(super) async fn run(inner: &Arc<Inner>, prepared: &Arc<Prepared>, task: TaskRecord) -> TaskResult {
    let attempts = task.attempts;
    let result = attempt_here(inner, prepared, task).await;
    if let TaskResult::Retry { .. } = result {
        // Exponential backoff before the task is Pending again: 100 ms, 200 ms, 400 ms, ...
        tokio::time::sleep(std::time::Duration::from_millis(100 << attempts.min(6))).await;
    }
    result
}

/// One attempt, run here: what [`attempt`] needs from the daemon (the
/// source's etag at the last successful run, for `skip_unchanged`) is read
/// first, and a full disk suspends the job.
async fn attempt_here(inner: &Arc<Inner>, prepared: &Arc<Prepared>, task: TaskRecord) -> TaskResult {
    let (job, seq) = (task.job, task.seq);
    // Which run of the job this task belongs to: a full disk met by a task of
    // an earlier run (before a resume) must not suspend the run after it.
    let activation = super::activation(inner, job);
    let last_etag = if prepared.spec.skip_unchanged {
        let (definition, key) = (prepared.definition.clone(), task.source_key.clone());
        inner.store.call(move |s| s.last_etag(&definition, &key)).await.ok().flatten()
    } else {
        None
    };
    let may_retry = task.attempts < inner.max_attempts;
    match attempt(&inner.runtime, prepared, task, may_retry, last_etag).await {
        Attempted::Done(result) => result,
        Attempted::DiskFull(message) => {
            if super::activation(inner, job) == activation {
                super::suspend_for_full_disk(inner, job, message).await;
            }
            TaskResult::Released { job, seq }
        }
    }
}

/// How an attempt ended.
pub(crate) enum Attempted {
    Done(TaskResult),
    /// The disk (or quota) of an output is full: a pause for the job, not a
    /// verdict on this object; the task is released unstarted.
    DiskFull(String),
}

/// One attempt at one task, needing nothing of the daemon but the plugin
/// runtime: whoever runs it (this daemon's pool, or a cluster's worker)
/// passes whether a failure may be retried and, for `skip_unchanged`, the
/// source's etag when the job's definition last processed it.
pub(crate) async fn attempt(
    runtime: &Runtime,
    prepared: &Arc<Prepared>,
    task: TaskRecord,
    may_retry: bool,
    last_etag: Option<String>,
) -> Attempted {
    let started = Instant::now();
    let (job, seq) = (task.job, task.seq);
    let elapsed = || started.elapsed().as_millis() as u64;
    use Attempted::Done;

    if let Some(role) = &prepared.role
        && let Err(e) = role.allows(&prepared.spec.input.bucket, &task.source_key, Access::Read)
    {
        return Done(TaskResult::Failed {
            job,
            seq,
            error: error(TaskErrorKind::Grant, e),
            duration_ms: elapsed(),
            bytes_in: 0,
            worker: None,
        });
    }
    let (meta, input) = match prepared.input.open(&task.source_key).await {
        Ok(opened) => opened,
        Err(e @ (ObjectsError::NotFound { .. } | ObjectsError::BadKey { .. })) => {
            return Done(TaskResult::Failed {
                job,
                seq,
                error: error(TaskErrorKind::NotFound, e),
                duration_ms: elapsed(),
                bytes_in: 0,
                worker: None,
            });
        }
        Err(e) if may_retry => return Done(TaskResult::Retry { job, seq, error: error(TaskErrorKind::Io, e) }),
        Err(e) => {
            return Done(TaskResult::Failed {
                job,
                seq,
                error: error(TaskErrorKind::Io, e),
                duration_ms: elapsed(),
                bytes_in: 0,
                worker: None,
            });
        }
    };

    if prepared.spec.skip_unchanged && meta.etag.is_some() && meta.etag == last_etag {
        return Done(TaskResult::Skipped { job, seq, worker: None });
    }
    let source_etag = meta.etag.clone();

    // The output key of each output, rendered as the plugin opens it. A key
    // that breaks the path rules, or that the role may not write, fails the
    // task and nothing is written. The slot keeps the error's kind and message.
    let template_error: Arc<Mutex<Option<(TaskErrorKind, String)>>> = Arc::default();
    let render = {
        let (prepared, meta, template_error) = (prepared.clone(), meta.clone(), template_error.clone());
        let task_time = now();
        let jobid = job.to_string();
        Box::new(move |index: u32, autoext: Option<&str>, outputs: &[(String, String)]| {
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
                outputs,
            };
            let refuse = |kind: TaskErrorKind, msg: String| {
                *template_error.lock().unwrap() = Some((kind, msg.clone()));
                msg
            };
            let key = prepared.template.render(&vars).map_err(|e| refuse(TaskErrorKind::Template, e.to_string()))?;
            if let Some(role) = &prepared.role {
                role.allows(&prepared.spec.output.bucket, &key, Access::Write)
                    .map_err(|e| refuse(TaskErrorKind::Grant, e.to_string()))?;
            }
            if selection_keeps(&prepared, &key) {
                return Err(refuse(
                    TaskErrorKind::Template,
                    format!(
                        "output key `{key}` is one this job's own selection (prefix and filters) would take: \
                         it is not written, so the job can never process its own outputs"
                    ),
                ));
            }
            Ok(key)
        })
    };
    let run = Task {
        params: prepared.params.clone(),
        object: meta,
        input,
        target: prepared.output.target(render),
        limits: prepared.limits,
    };
    Done(match runtime.run(&prepared.plugin, run).await {
        Ok(outcome) => TaskResult::Succeeded {
            job,
            seq,
            etag: source_etag,
            outputs: outcome.outputs.into_iter().map(|o| o.location).collect(),
            bytes_in: outcome.bytes_in,
            bytes_out: outcome.bytes_out,
            duration_ms: elapsed(),
            result: outcome.result,
            worker: None,
        },
        Err(e) => {
            if let Some((kind, msg)) = template_error.lock().unwrap().take() {
                return Done(TaskResult::Failed {
                    job,
                    seq,
                    error: error(kind, msg),
                    duration_ms: elapsed(),
                    bytes_in: 0,
                    worker: None,
                });
            }
            // A full disk is a pause, not a verdict on this object.
            if e.kind() == TaskErrorKind::Io && disk_full(&e.to_string()) {
                return Attempted::DiskFull(e.to_string());
            }
            // Only I/O failures are transient; a plugin's verdict or a limit is not.
            if e.kind() == TaskErrorKind::Io && may_retry {
                return Done(TaskResult::Retry { job, seq, error: error(TaskErrorKind::Io, &e) });
            }
            TaskResult::Failed {
                job,
                seq,
                error: error(e.kind(), &e),
                duration_ms: elapsed(),
                bytes_in: 0,
                worker: None,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{disk_full, low_water};

    #[test]
    fn a_full_disk_is_told_from_other_io_errors() {
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC).to_string();
        assert!(disk_full(&format!("committing output 1: {full}")), "{full}");
        assert!(disk_full(&std::io::Error::from_raw_os_error(libc::EDQUOT).to_string()));
        assert!(!disk_full(&std::io::Error::from_raw_os_error(libc::EIO).to_string()));
        assert!(!disk_full("connection reset"));
    }

    #[test]
    fn claims_in_batches_while_workers_are_busy() {
        assert_eq!(low_water(64, 32), 16, "half of what may wait");
        assert_eq!(low_water(8, 32), 4, "half of what a small job can hold");
        assert_eq!(low_water(12, 128), 6, "a slow job within its window, beside a fast one");
        assert_eq!(low_water(1, 32), 1, "a job of one task at a time still claims");
        assert_eq!(low_water(2, 2), 1);
        assert_eq!(low_water(8 * 33, 16 * 32), 64, "never above what one claim takes");
    }

    /// A job holding nothing claims whatever it may: the low water of what
    /// it can reach is never above it, whatever caps made it small.
    #[test]
    fn the_low_water_is_always_reachable() {
        for reachable in 1..300 {
            for claim_ahead in [0, 1, 2, 8, 64, 128, 1024] {
                assert!(low_water(reachable, claim_ahead) <= reachable, "{reachable} {claim_ahead}");
            }
        }
    }
}
