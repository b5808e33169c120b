//! The webhook outbox: events written in the same transaction as the state
//! change they report, delivered at least once by [`crate::notify`], and kept
//! (visibly) when delivery gives up.
//!
//! - `outbox`: seq → JSON [`OutboxEntry`], in the order the events happened.
//! - `dead_events`: (job, seq) → JSON [`OutboxEntry`]: events given up on.
//! - `job_secrets`: job → webhook secret, kept out of the job record so the API never shows it.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{META, Result, Store, decode, encode};
use crate::model::{JobId, JobRecord, JobState, TaskRecord, now};

pub(super) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
pub(super) const DEAD_EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("dead_events");
pub(super) const JOB_SECRETS: TableDefinition<u64, &str> = TableDefinition::new("job_secrets");

/// One event waiting for delivery, or given up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboxEntry {
    pub seq: u64,
    pub job: JobId,
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(ignore)]
    pub secret: String,
    /// The CloudEvent, exactly as POSTed.
    pub event: serde_json::Value,
    pub attempts: u32,
    /// Unix milliseconds.
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub last_error: Option<String>,
}

impl OutboxEntry {
    /// As shown over the API: without the secret.
    pub fn public(mut self) -> OutboxEntry {
        self.secret.clear();
        self
    }
}

fn next_event_seq(txn: &WriteTransaction) -> Result<u64> {
    let mut meta = txn.open_table(META)?;
    let seq = meta.get("next_event_seq")?.and_then(|v| v.value().parse::<u64>().ok()).unwrap_or(1);
    meta.insert("next_event_seq", (seq + 1).to_string().as_str())?;
    Ok(seq)
}

fn enqueue(txn: &WriteTransaction, job: &JobRecord, event: impl FnOnce(u64) -> serde_json::Value) -> Result<()> {
    let Some(notify) = &job.spec.notify else { return Ok(()) };
    let secret = txn.open_table(JOB_SECRETS)?.get(job.id)?.map(|v| v.value().to_string()).unwrap_or_default();
    let seq = next_event_seq(txn)?;
    let entry = OutboxEntry {
        seq,
        job: job.id,
        url: notify.url.clone(),
        secret,
        event: event(seq),
        attempts: 0,
        next_attempt_at: 0,
        created_at: now(),
        last_error: None,
    };
    txn.open_table(OUTBOX)?.insert(seq, encode(&entry).as_slice())?;
    Ok(())
}

/// Record a job event if the job's state changed (or it is new: `before` is `None`).
pub(super) fn job_saved(txn: &WriteTransaction, before: Option<JobState>, job: &JobRecord) -> Result<()> {
    if before == Some(job.state) {
        return Ok(());
    }
    enqueue(txn, job, |seq| crate::notify::job_event(seq, job))
}

/// Record a task event if the job asked for them.
pub(super) fn task_finished(txn: &WriteTransaction, job: &JobRecord, task: &TaskRecord) -> Result<()> {
    if !job.spec.notify.as_ref().is_some_and(|n| n.task_events) {
        return Ok(());
    }
    enqueue(txn, job, |seq| crate::notify::task_event(seq, job, task))
}

pub(super) fn store_secret(txn: &WriteTransaction, job: JobId, secret: &str) -> Result<()> {
    txn.open_table(JOB_SECRETS)?.insert(job, secret)?;
    Ok(())
}

impl Store {
    /// Events due for delivery at `now_ms`, oldest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(OUTBOX)?;
        t.iter()?.take(limit).map(|e| decode("outbox", e?.1.value())).collect()
    }

    /// Delivered: gone from the outbox.
    pub fn event_delivered(&self, seq: u64) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(OUTBOX)?.remove(seq)?;
        txn.commit()?;
        Ok(())
    }

    /// A failed attempt: try again at `next_attempt_at` (unix ms).
    pub fn event_deferred(&self, seq: u64, next_attempt_at: i64, error: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(OUTBOX)?;
            let entry: Option<OutboxEntry> = t.get(seq)?.map(|v| decode("outbox", v.value())).transpose()?;
            if let Some(mut e) = entry {
                e.attempts += 1;
                e.next_attempt_at = next_attempt_at;
                e.last_error = Some(error.to_string());
                t.insert(seq, encode(&e).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Given up: moved from the outbox to the job's dead events.
    pub fn event_given_up(&self, seq: u64, error: &str) -> Result<()> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(OUTBOX)?;
            let entry: Option<OutboxEntry> = t.remove(seq)?.map(|v| decode("outbox", v.value())).transpose()?;
            if let Some(mut e) = entry {
                e.attempts += 1;
                e.last_error = Some(error.to_string());
                txn.open_table(DEAD_EVENTS)?.insert((e.job, seq), encode(&e).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// A job's events still waiting, and those given up on.
    pub fn job_events(&self, job: JobId) -> Result<(Vec<OutboxEntry>, Vec<OutboxEntry>)> {
        let txn = self.db.begin_read()?;
        let pending: Vec<OutboxEntry> = txn
            .open_table(OUTBOX)?
            .iter()?
            .map(|e| decode::<OutboxEntry>("outbox", e?.1.value()))
            .filter(|e| e.as_ref().map_or(true, |e| e.job == job))
            .collect::<Result<_>>()?;
        let dead: Vec<OutboxEntry> = txn
            .open_table(DEAD_EVENTS)?
            .range((job, 0)..=(job, u64::MAX))?
            .map(|e| decode("dead_events", e?.1.value()))
            .collect::<Result<_>>()?;
        Ok((pending, dead))
    }
}
