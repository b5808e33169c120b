//! The webhook outbox: events written in the same transaction as the state
//! change they report, delivered at least once by [`crate::notify`], and kept
//! (visibly) when delivery gives up.
//!
//! - `outbox`: seq → JSON [`OutboxEntry`], in the order the events happened.
//! - `outbox_by_job`: (job, seq) → (): the same events by job, so each job's
//!   oldest event (the next to deliver) is found without reading the others'.
//! - `dead_events`: (job, seq) → JSON [`OutboxEntry`]: events given up on.
//! - `job_secrets`: job → webhook secret, kept out of the job record so the API never shows it.
//! - `webhook_deliveries`: job → JSON [`Deliveries`]: how many events were
//!   delivered and the last one (delivered events leave the outbox; a count
//!   per job, not a record per event, keeps a job with task events small).

use std::collections::BTreeMap;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{At, META, Result, Store, decode, encode};
use crate::model::{Counters, JobId, JobRecord, JobState, TaskRecord, now};

pub(super) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
pub(super) const OUTBOX_BY_JOB: TableDefinition<(u64, u64), ()> = TableDefinition::new("outbox_by_job");
pub(super) const DEAD_EVENTS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("dead_events");
pub(super) const JOB_SECRETS: TableDefinition<u64, &str> = TableDefinition::new("job_secrets");
pub(super) const WEBHOOK_DELIVERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("webhook_deliveries");

/// A job's delivered webhook events, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deliveries {
    /// Events the receiver accepted (a 2xx answer).
    pub delivered: u64,
    /// When the last one was.
    #[serde(with = "crate::timefmt::secs_opt", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_delivered_at: Option<i64>,
    /// The CloudEvent `type` of the last one.
    #[serde(default)]
    pub last_type: Option<String>,
}

/// One event waiting for delivery, or given up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub seq: u64,
    pub job: JobId,
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    /// What happened; [`crate::notify`] makes the CloudEvent of it.
    pub event: StoredEvent,
    pub attempts: u32,
    /// When the next attempt is due (held in Unix milliseconds).
    #[serde(with = "crate::timefmt::millis")]
    pub next_attempt_at: i64,
    #[serde(with = "crate::timefmt::secs")]
    pub created_at: i64,
    pub last_error: Option<String>,
}

/// An event as the outbox keeps it: the facts, taken in the transaction of
/// the change they report. Entries written before schema 6 hold the
/// CloudEvent itself, already built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredEvent {
    Data(Box<EventData>),
    Built(serde_json::Value),
}

/// What an event reports, as it was when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventData {
    /// A job was created in, or moved to, `job.state`.
    JobState { job: JobSnapshot },
    /// A task of the job finished.
    TaskFinished { job: JobSnapshot, task: Box<TaskRecord> },
}

/// The part of a job an event reports (not its spec: a task event per task
/// must not copy a manifest's keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSnapshot {
    pub id: JobId,
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub state: JobState,
    pub counters: Counters,
    pub error: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub input_bucket: String,
    pub output_bucket: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl JobSnapshot {
    pub fn of(job: &JobRecord) -> JobSnapshot {
        JobSnapshot {
            id: job.id,
            name: job.spec.name.clone(),
            tenant: job.tenant.clone(),
            state: job.state,
            counters: job.counters,
            error: job.error.clone(),
            tags: job.spec.tags.clone(),
            input_bucket: job.spec.input.bucket.clone(),
            output_bucket: job.spec.output.bucket.clone(),
            created_at: job.created_at,
            updated_at: job.updated_at,
            finished_at: job.finished_at,
        }
    }
}

fn next_event_seq(txn: &WriteTransaction) -> Result<u64> {
    let mut meta = txn.open_table(META)?;
    let seq = meta.get("next_event_seq")?.and_then(|v| v.value().parse::<u64>().ok()).unwrap_or(1);
    meta.insert("next_event_seq", (seq + 1).to_string().as_str())?;
    Ok(seq)
}

fn enqueue(txn: &WriteTransaction, job: &JobRecord, event: EventData) -> Result<()> {
    let Some(notify) = &job.spec.notify else { return Ok(()) };
    let secret = txn.open_table(JOB_SECRETS)?.get(job.id)?.map(|v| v.value().to_string()).unwrap_or_default();
    let seq = next_event_seq(txn)?;
    let entry = OutboxEntry {
        seq,
        job: job.id,
        url: notify.url.clone(),
        secret,
        event: StoredEvent::Data(Box::new(event)),
        attempts: 0,
        next_attempt_at: 0,
        created_at: now(),
        last_error: None,
    };
    txn.open_table(OUTBOX)?.insert(seq, encode(&entry).as_slice())?;
    txn.open_table(OUTBOX_BY_JOB)?.insert((job.id, seq), ())?;
    Ok(())
}

/// Schema 2 → 3: index the events waiting by job.
pub(super) fn index_by_job(txn: &WriteTransaction) -> Result<()> {
    let waiting: Vec<(u64, u64)> = txn
        .open_table(OUTBOX)?
        .iter()?
        .map(|e| {
            let (k, v) = e?;
            Ok((decode::<OutboxEntry>("outbox", At::Event(k.value()), v.value())?.job, k.value()))
        })
        .collect::<Result<_>>()?;
    let mut index = txn.open_table(OUTBOX_BY_JOB)?;
    for key in waiting {
        index.insert(key, ())?;
    }
    Ok(())
}

/// Record a job event if the job's state changed (or it is new: `before` is `None`).
pub(super) fn job_saved(txn: &WriteTransaction, before: Option<JobState>, job: &JobRecord) -> Result<()> {
    if before == Some(job.state) {
        return Ok(());
    }
    enqueue(txn, job, EventData::JobState { job: JobSnapshot::of(job) })
}

/// Record a task event if the job asked for them.
pub(super) fn task_finished(txn: &WriteTransaction, job: &JobRecord, task: &TaskRecord) -> Result<()> {
    if !job.spec.notify.as_ref().is_some_and(|n| n.task_events) {
        return Ok(());
    }
    enqueue(txn, job, EventData::TaskFinished { job: JobSnapshot::of(job), task: Box::new(task.clone()) })
}

pub(super) fn store_secret(txn: &WriteTransaction, job: JobId, secret: &str) -> Result<()> {
    txn.open_table(JOB_SECRETS)?.insert(job, secret)?;
    Ok(())
}

impl Store {
    /// The oldest waiting event of each job (the next to deliver: a job's
    /// events go in order), for jobs from `from_job` on, at most `limit`.
    pub fn outbox_heads(&self, from_job: JobId, limit: usize) -> Result<Vec<OutboxEntry>> {
        let txn = self.begin_read()?;
        let index = txn.open_table(OUTBOX_BY_JOB)?;
        let outbox = txn.open_table(OUTBOX)?;
        let mut heads = Vec::new();
        let mut from = from_job;
        while heads.len() < limit {
            let Some(first) = index.range((from, 0)..)?.next() else { break };
            let (job, seq) = first?.0.value();
            if let Some(v) = outbox.get(seq)? {
                heads.push(decode("outbox", At::Event(seq), v.value())?);
            }
            let Some(next) = job.checked_add(1) else { break };
            from = next;
        }
        Ok(heads)
    }

    /// One waiting event, as it is now.
    pub fn outbox_entry(&self, seq: u64) -> Result<Option<OutboxEntry>> {
        let txn = self.begin_read()?;
        let t = txn.open_table(OUTBOX)?;
        t.get(seq)?.map(|v| decode("outbox", At::Event(seq), v.value())).transpose()
    }

    /// Delivered: gone from the outbox, counted in the job's deliveries
    /// (`event_type`, the CloudEvent's `type`, as the last one's).
    pub fn event_delivered(&self, job: JobId, seq: u64, event_type: &str) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let removed = txn.open_table(OUTBOX)?.remove(seq)?.is_some();
            txn.open_table(OUTBOX_BY_JOB)?.remove((job, seq))?;
            if removed {
                let mut table = txn.open_table(WEBHOOK_DELIVERIES)?;
                let mut counted: Deliveries = table
                    .get(job)?
                    .map(|v| decode("webhook_deliveries", At::Job(job), v.value()))
                    .transpose()?
                    .unwrap_or_default();
                counted.delivered += 1;
                counted.last_delivered_at = Some(now());
                counted.last_type = Some(crate::runtime::bounded(event_type, 128));
                table.insert(job, encode(&counted).as_slice())?;
            }
        }
        self.commit(txn)?;
        Ok(())
    }

    /// How many of a job's events were delivered.
    pub fn job_deliveries(&self, job: JobId) -> Result<Deliveries> {
        let txn = self.begin_read()?;
        let table = txn.open_table(WEBHOOK_DELIVERIES)?;
        Ok(table
            .get(job)?
            .map(|v| decode("webhook_deliveries", At::Job(job), v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// A failed attempt: try again at `next_attempt_at` (unix ms).
    pub fn event_deferred(&self, seq: u64, next_attempt_at: i64, error: &str) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(OUTBOX)?;
            let entry: Option<OutboxEntry> =
                t.get(seq)?.map(|v| decode("outbox", At::Event(seq), v.value())).transpose()?;
            if let Some(mut e) = entry {
                e.attempts += 1;
                e.next_attempt_at = next_attempt_at;
                e.last_error = Some(error.to_string());
                t.insert(seq, encode(&e).as_slice())?;
            }
        }
        self.commit(txn)?;
        Ok(())
    }

    /// Given up: moved from the outbox to the job's dead events.
    pub fn event_given_up(&self, seq: u64, error: &str) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(OUTBOX)?;
            let entry: Option<OutboxEntry> =
                t.remove(seq)?.map(|v| decode("outbox", At::Event(seq), v.value())).transpose()?;
            if let Some(mut e) = entry {
                e.attempts += 1;
                e.last_error = Some(error.to_string());
                txn.open_table(OUTBOX_BY_JOB)?.remove((e.job, seq))?;
                txn.open_table(DEAD_EVENTS)?.insert((e.job, seq), encode(&e).as_slice())?;
            }
        }
        self.commit(txn)?;
        Ok(())
    }

    /// A job's events still waiting, and those given up on.
    pub fn job_events(&self, job: JobId) -> Result<(Vec<OutboxEntry>, Vec<OutboxEntry>)> {
        let txn = self.begin_read()?;
        let outbox = txn.open_table(OUTBOX)?;
        let mut pending = Vec::new();
        for e in txn.open_table(OUTBOX_BY_JOB)?.range((job, 0)..=(job, u64::MAX))? {
            let seq = e?.0.value().1;
            if let Some(v) = outbox.get(seq)? {
                pending.push(decode("outbox", At::Event(seq), v.value())?);
            }
        }
        let dead: Vec<OutboxEntry> = txn
            .open_table(DEAD_EVENTS)?
            .range((job, 0)..=(job, u64::MAX))?
            .map(|e| {
                let (k, v) = e?;
                decode("dead_events", At::Event(k.value().1), v.value())
            })
            .collect::<Result<_>>()?;
        Ok((pending, dead))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NotifySpec;
    use crate::store::tests::spec;

    fn seqs(entries: &[OutboxEntry]) -> Vec<u64> {
        entries.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn an_entry_holds_what_happened_and_one_written_before_schema_6_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let mut notified = spec();
        notified.notify =
            Some(NotifySpec { url: "https://hooks.example.com/k".into(), secret: "s".repeat(16), task_events: false });
        let job = store.create_job(notified, None, JobState::Running).unwrap().unwrap();
        let entry = store.outbox_entry(1).unwrap().unwrap();
        let StoredEvent::Data(data) = &entry.event else { panic!("{entry:?}") };
        let EventData::JobState { job: snapshot } = data.as_ref() else { panic!("{data:?}") };
        assert_eq!((snapshot.id, snapshot.state), (job.id, JobState::Running));
        assert_eq!(decode::<OutboxEntry>("outbox", At::Event(1), &encode(&entry)).unwrap(), entry);

        let legacy = r#"{"seq":7,"job":1,"url":"https://h.example/","event":{"specversion":"1.0","type":"dev.kiln.job.state_changed","id":"1-7"},"attempts":0,"next_attempt_at":"2026-01-01T00:00:00.000Z","created_at":"2026-01-01T00:00:00Z","last_error":null}"#;
        let old: OutboxEntry = serde_json::from_str(legacy).unwrap();
        let StoredEvent::Built(event) = &old.event else { panic!("{old:?}") };
        assert_eq!(event["id"], "1-7");
    }

    #[test]
    fn heads_are_each_jobs_oldest_event_and_are_indexed_by_the_v3_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.redb");
        let store = Store::open(&path).unwrap();
        let mut notified = spec();
        notified.notify = Some(NotifySpec {
            url: "https://hooks.example.com/k".into(),
            secret: "0123456789abcdef".into(),
            task_events: false,
        });
        // Events 1 (a created Running), 2 (b created), 3 (a suspended).
        let a = store.create_job(notified.clone(), None, JobState::Running).unwrap().unwrap();
        let b = store.create_job(notified, None, JobState::Running).unwrap().unwrap();
        store
            .update_job::<crate::store::RunningJobsFull>(a.id, |j| {
                j.state = JobState::Suspended;
                Ok(())
            })
            .unwrap();
        assert_eq!(seqs(&store.outbox_heads(0, 10).unwrap()), vec![1, 2]);
        assert_eq!(seqs(&store.outbox_heads(0, 1).unwrap()), vec![1], "at most `limit`");
        assert_eq!(seqs(&store.outbox_heads(b.id, 10).unwrap()), vec![2], "from a job on");
        store.event_delivered(a.id, 1, "dev.kiln.job.state_changed").unwrap();
        assert_eq!(seqs(&store.outbox_heads(0, 10).unwrap()), vec![3, 2], "a's next event is its head");
        store.event_given_up(2, "gone").unwrap();
        assert_eq!(seqs(&store.outbox_heads(0, 10).unwrap()), vec![3]);
        let (pending, dead) = store.job_events(b.id).unwrap();
        assert_eq!((seqs(&pending), seqs(&dead)), (vec![], vec![2]));
        assert_eq!(store.outbox_entry(3).unwrap().map(|e| e.job), Some(a.id));

        // A store of schema 2 had no index: opening it builds one.
        let txn = store.begin_write().unwrap();
        txn.delete_table(OUTBOX_BY_JOB).unwrap();
        txn.open_table(META).unwrap().insert("schema_version", "2").unwrap();
        txn.commit().unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(seqs(&store.outbox_heads(0, 10).unwrap()), vec![3]);
        assert_eq!(seqs(&store.job_events(a.id).unwrap().0), vec![3]);
        assert!(
            store
                .begin_read()
                .unwrap()
                .open_table(META)
                .unwrap()
                .get("schema_version")
                .unwrap()
                .is_some_and(|v| v.value() == crate::store::SCHEMA_VERSION.to_string())
        );
    }
}
