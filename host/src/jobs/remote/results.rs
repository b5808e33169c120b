//! The coordinator's `results` loop: the workers' results, back to the committer.

use std::sync::Arc;

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;

use super::Remote;
use crate::cluster::{Outcome, ResultMsg, TaskOutcome};
use crate::jobs::Inner;
use crate::jobs::scheduler::task_done;
use crate::model::JobId;
use crate::store::TaskResult;

/// Takes the workers' results (`results`), one per order: each task's goes
/// the way a local task's does. A result for no task waiting (a duplicate,
/// or an attempt this coordinator no longer waits for) is dropped: the
/// first result of an attempt wins.
pub(in crate::jobs) struct Results {
    pub inner: Arc<Inner>,
    pub remote: Arc<Remote>,
    pub consumer: jetstream::consumer::PullConsumer,
    /// The consumer's messages, pulled ahead (opened at the first wait).
    pub messages: Option<jetstream::consumer::pull::Stream>,
    pub batch: Vec<jetstream::Message>,
}

impl crate::background::Background for Results {
    fn name(&self) -> String {
        "results".into()
    }

    /// Wait for a result, then take those already here too (up to 256).
    async fn wait(&mut self) -> bool {
        use futures::FutureExt;
        loop {
            let messages = match &mut self.messages {
                Some(m) => m,
                None => match self.consumer.stream().max_messages_per_batch(256).messages().await {
                    Ok(m) => self.messages.insert(m),
                    Err(e) => {
                        tracing::warn!(error = %e, "pulling results");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        continue;
                    }
                },
            };
            match messages.next().await {
                Some(Ok(m)) => self.batch.push(m),
                // A missed heartbeat while NATS restarts: the stream goes on.
                Some(Err(e)) => tracing::debug!(error = %e, "pulling results"),
                None => self.messages = None,
            }
            if let Some(messages) = &mut self.messages {
                while self.batch.len() < 256
                    && let Some(Some(Ok(m))) = messages.next().now_or_never()
                {
                    self.batch.push(m);
                }
            }
            if !self.batch.is_empty() {
                return true;
            }
        }
    }

    async fn round(&mut self) -> Result<(), String> {
        let mut errors = 0;
        for message in std::mem::take(&mut self.batch) {
            match serde_json::from_slice::<ResultMsg>(&message.payload) {
                Ok(ResultMsg { job, worker, took_us, results }) => {
                    let n = results.len();
                    let mut waited = false;
                    for r in results {
                        waited |= self.apply(job, &worker, r).await;
                    }
                    // Only an order this coordinator waited for sizes the job's
                    // bundles (not one of a job stopped since, nor a duplicate).
                    if waited {
                        self.remote.measured(job, n, took_us);
                    }
                }
                Err(e) => {
                    errors += 1;
                    tracing::error!(error = %e, "a result that is not one: dropped");
                }
            }
            let _ = message.ack_with(AckKind::Ack).await;
        }
        if errors > 0 { Err(format!("{errors} unreadable results dropped")) } else { Ok(()) }
    }
}

impl Results {
    /// Whether the task's result was waited for.
    async fn apply(&self, job: JobId, worker: &str, r: TaskOutcome) -> bool {
        let seq = r.seq;
        let waiting = {
            let mut pending = self.remote.pending.lock().unwrap();
            match pending.get(&(job, seq)) {
                Some(p) if p.attempt == r.attempt => pending.remove(&(job, seq)),
                _ => None,
            }
        };
        let Some(p) = waiting else {
            tracing::debug!(job, seq, attempt = r.attempt, "a result no task waits for: ignored");
            return false;
        };
        self.remote.answered(&self.inner, &p);
        let result = match r.outcome {
            Outcome::Succeeded { etag, outputs, bytes_in, bytes_out, duration_ms, result } => TaskResult::Succeeded {
                job,
                seq,
                etag,
                outputs,
                bytes_in,
                bytes_out,
                duration_ms,
                result,
                worker: Some(worker.to_string()),
            },
            Outcome::Failed { error, duration_ms, bytes_in } => {
                TaskResult::Failed { job, seq, error, duration_ms, bytes_in, worker: Some(worker.to_string()) }
            }
            Outcome::Retry { error } => TaskResult::Retry { job, seq, error },
            Outcome::Skipped => TaskResult::Skipped { job, seq, worker: Some(worker.to_string()) },
            Outcome::Released { why: Some(why) } => {
                tracing::warn!(job, seq, %worker, %why, "a worker could not run a task; it is ordered again");
                // Not at once: a task no live worker can run would otherwise go round as fast as it can.
                let inner = self.inner.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    task_done(&inner, job, &p.prepared, TaskResult::Released { job, seq });
                });
                return true;
            }
            Outcome::Released { why: None } => TaskResult::Released { job, seq },
            Outcome::DiskFull { message } => {
                crate::jobs::suspend_for_full_disk(&self.inner, job, message).await;
                TaskResult::Released { job, seq }
            }
        };
        let took = match &result {
            TaskResult::Succeeded { duration_ms, .. } | TaskResult::Failed { duration_ms, .. } => *duration_ms,
            _ => 0,
        };
        crate::jobs::executor::record_metrics(&result, std::time::Duration::from_millis(took));
        task_done(&self.inner, job, &p.prepared, result);
        true
    }
}
