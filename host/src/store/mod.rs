//! The only code that knows the redb tables. A typed API; each method is one
//! transaction. redb is synchronous: async callers go through [`Store::call`].
//!
//! Tables:
//! - `meta`: schema version and counters (`next_job_id`).
//! - `jobs`: job id → JSON [`JobRecord`].
//! - `tasks`: (job, seq) → [`TaskRecord`], compact ([`task_codec`]); seq is planning order.
//! - `task_keys`: (job, source key) → seq: dedupes re-planned keys after a crash,
//!   and serves source-key prefix search in key order.
//! - `task_state`: (job, state, seq) → (): the state index. Pending tasks are
//!   claimed from it in seq order; filtered listings read only their state.
//! - `tenant_jobs`: (owner, job) → (): a tenant's jobs, newest first, without a scan.
//! - `styles`: `owner/name` → JSON [`StyleRecord`](crate::model::StyleRecord); the admin's owner is empty.
//! - `etags`: (job definition, key) → etag of the last successful run, for `skip_unchanged`.
//! - `tenants`, `tokens` (by SHA-256), `roles`, `plugins` (`owner/name`): see [`tenancy`].
//!
//! Schema history: 1 had `styles` keyed by name alone; 2 added tenancy; 3
//! added `outbox_by_job`.
//!
//! Longer than most modules (about 700 lines) on purpose: the table
//! definitions, opening and migrating the file, and the small typed calls of
//! each table stay in one place, so no other code names a table; the larger
//! pieces (tasks, listings, tenancy, the outbox, checks) are its submodules.

mod check;
mod health;
mod outbox;
mod running;
mod styles;
mod task_codec;
mod task_list;
mod tasks;
mod tenancy;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition};

use crate::model::{JobId, JobRecord, JobState, TaskRecord, now};

pub use check::{CheckReport, check_file};
pub use outbox::{Deliveries, EventData, JobSnapshot, OutboxEntry, StoredEvent};
pub use running::RunningJobsFull;
pub use styles::StyleNameTaken;
pub use task_list::{MAX_EXAMINED, TaskFilter};
pub use tasks::{PlannedObject, RetryRefused, TaskResult};

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const TASKS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("tasks");
const TASK_KEYS: TableDefinition<(u64, &str), u64> = TableDefinition::new("task_keys");
const TASK_STATE: TableDefinition<(u64, u8, u64), ()> = TableDefinition::new("task_state");
/// (job, seq) of every task that holds an error: the `error` filter reads
/// these, not the whole job.
const TASK_ERRORS: TableDefinition<(u64, u64), ()> = TableDefinition::new("task_errors");
const TENANT_JOBS: TableDefinition<(&str, u64), ()> = TableDefinition::new("tenant_jobs");
/// Schema 1's styles, keyed by name: migrated into `styles_v2`.
const STYLES_V1: TableDefinition<&str, &[u8]> = TableDefinition::new("styles");
pub(super) const STYLES: TableDefinition<&str, &[u8]> = TableDefinition::new("styles_v2");
const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");
const ROLES: TableDefinition<&str, &[u8]> = TableDefinition::new("roles");
const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins");
/// Uploads still compiling: `owner/name` → JSON [`crate::model::PluginRecord`]. An upload
/// moves to `plugins` once compiled, so a crash while compiling loses neither it
/// nor the version it replaces.
const PLUGIN_UPLOADS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugin_uploads");
/// (job definition digest, source key) → the etag its last successful run processed: for `skip_unchanged`.
const ETAGS: TableDefinition<(&str, &str), &str> = TableDefinition::new("etags");

/// The schema this build writes. A store written by a newer Kiln is refused.
/// 4: compact task records; 5: their output keys as references into the
/// source key (`task_codec` version 2), which a Kiln of schema 4 cannot read;
/// 6: outbox entries hold what happened, not the CloudEvent (`outbox`), which
/// a Kiln of schema 5 would send as it is.
pub const SCHEMA_VERSION: u32 = 6;

/// The key of a thing owned by a tenant (or, with `None`, by the admin).
/// Names never hold a `/`, so the owner's things are one key range.
pub fn owned_key(owner: Option<&str>, name: &str) -> String {
    format!("{}/{name}", owner.unwrap_or(""))
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store at {path} has schema version {found}, newer than this Kiln supports ({supported}): upgrade Kiln"
    )]
    NewerSchema { path: String, found: u32, supported: u32 },
    #[error("opening the store at {path}: {message}")]
    Open { path: String, message: String },
    /// Another process (a daemon still stopping?) holds the store's lock.
    #[error("the store at {path} is open in another process (a kiln still running or stopping?)")]
    Locked { path: String },
    #[error("storage error: {0}")]
    Db(String),
    /// The disk failed a read or write: the store becomes [`StoreError::Unavailable`].
    #[error("the store's disk failed: {0}")]
    Io(String),
    /// A disk error took the store out until it can be reopened (see `health`).
    #[error("the store cannot be written ({0}); Kiln reopens it by itself once the disk accepts writes again")]
    Unavailable(String),
    #[error(
        "the store holds a record it cannot read ({at}, table `{table}`): {message}; run `kiln store check` with the daemon stopped"
    )]
    Corrupt { table: &'static str, at: String, message: String },
}

impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        match e {
            redb::StorageError::Io(_) | redb::StorageError::PreviousIo => StoreError::Io(e.to_string()),
            e => StoreError::Db(e.to_string()),
        }
    }
}

macro_rules! db_errors {
    ($($t:ident),*) => {$(
        impl From<redb::$t> for StoreError {
            fn from(e: redb::$t) -> Self {
                match e {
                    redb::$t::Storage(s) => s.into(),
                    e => StoreError::Db(e.to_string()),
                }
            }
        }
    )*};
}
db_errors!(TransactionError, TableError, CommitError);

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Io(_) | redb::Error::PreviousIo => StoreError::Io(e.to_string()),
            e => StoreError::Db(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    handle: Arc<health::Handle>,
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialise")
}

/// Which record: formatted only when one fails to decode.
#[derive(Clone, Copy)]
pub(crate) enum At<'a> {
    Job(JobId),
    Task(JobId, u64),
    Name(&'a str),
    Event(u64),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Job(id) => write!(f, "job {id}"),
            At::Task(id, seq) => write!(f, "job {id}, task {seq}"),
            At::Name(name) => write!(f, "`{name}`"),
            At::Event(seq) => write!(f, "event {seq}"),
        }
    }
}

fn decode<T: serde::de::DeserializeOwned>(table: &'static str, at: At<'_>, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(table, at, e))
}

/// The error of a record in `table`, at `at`, that does not decode.
fn corrupt(table: &'static str, at: impl std::fmt::Display, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt { table, at: at.to_string(), message: e.to_string() }
}

/// A task record of the `tasks` table ([`task_codec`]).
fn decode_task(job: JobId, seq: u64, bytes: &[u8]) -> Result<TaskRecord> {
    task_codec::decode(job, seq, bytes).map_err(|message| StoreError::Corrupt {
        table: "tasks",
        at: At::Task(job, seq).to_string(),
        message,
    })
}

fn encode_task(task: &TaskRecord) -> Vec<u8> {
    task_codec::encode(task)
}

fn load_job(txn: &redb::WriteTransaction, id: JobId) -> Result<Option<JobRecord>> {
    let jobs = txn.open_table(JOBS)?;
    jobs.get(id)?.map(|v| decode("jobs", At::Job(id), v.value())).transpose()
}

impl Store {
    /// Open (or create) the store, check its schema version, and create missing tables.
    pub fn open(path: &Path) -> Result<Store> {
        let db = open_database(path)?;
        Ok(Store { handle: Arc::new(health::Handle::new(path.to_path_buf(), db)) })
    }

    /// Run a store call on the blocking pool: commits fsync.
    pub async fn call<T: Send + 'static>(&self, f: impl FnOnce(&Store) -> T + Send + 'static) -> T {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.expect("store call panicked")
    }

    /// Mark the store as written by a future version (tests of the version check).
    #[doc(hidden)]
    pub fn set_schema_version_for_tests(&self, version: u32) -> Result<()> {
        let txn = self.begin_write()?;
        txn.open_table(META)?.insert("schema_version", version.to_string().as_str())?;
        self.commit(txn)?;
        Ok(())
    }

    // ---- jobs ----

    /// Store a new job in `state`, with the next id. A tenant's job created
    /// Running is refused at its `running_jobs` quota.
    pub fn create_job(
        &self,
        spec: crate::model::JobSpec,
        tenant: Option<String>,
        state: JobState,
    ) -> Result<std::result::Result<JobRecord, RunningJobsFull>> {
        let txn = self.begin_write()?;
        let job = {
            let mut meta = txn.open_table(META)?;
            let id = meta.get("next_job_id")?.and_then(|v| v.value().parse::<u64>().ok()).unwrap_or(1);
            let t = now();
            let job = JobRecord {
                id,
                definition: spec.definition(),
                tenant,
                spec,
                state,
                counters: Default::default(),
                planning: Default::default(),
                error: None,
                created_at: t,
                updated_at: t,
                finished_at: None,
            };
            if let Err(full) = running::may_start(&txn, None, &job)? {
                return Ok(Err(full));
            }
            meta.insert("next_job_id", (id + 1).to_string().as_str())?;
            drop(meta);
            txn.open_table(JOBS)?.insert(id, encode(&job).as_slice())?;
            txn.open_table(TENANT_JOBS)?.insert((job.tenant.as_deref().unwrap_or(""), id), ())?;
            if let Some(n) = &job.spec.notify {
                outbox::store_secret(&txn, id, &n.secret)?;
            }
            outbox::job_saved(&txn, None, &job)?;
            job
        };
        self.commit(txn)?;
        Ok(Ok(job))
    }

    pub fn get_job(&self, id: JobId) -> Result<Option<JobRecord>> {
        let txn = self.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        jobs.get(id)?.map(|v| decode("jobs", At::Job(id), v.value())).transpose()
    }

    /// Jobs, newest first, after `before` (a job id cursor), filtered. With
    /// `owner`, only that owner's jobs (`Some(None)`: the admin's), read from
    /// the owner index so a page costs the page, not every job.
    pub fn list_jobs(
        &self,
        owner: Option<Option<&str>>,
        state: Option<JobState>,
        tag: Option<(&str, &str)>,
        before: Option<JobId>,
        limit: usize,
    ) -> Result<(Vec<JobRecord>, Option<JobId>)> {
        let txn = self.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        let before = before.unwrap_or(u64::MAX);
        let ids: Box<dyn Iterator<Item = Result<JobId>>> = match owner {
            None => Box::new(jobs.range(..before)?.rev().map(|e| Ok(e?.0.value()))),
            Some(owner) => {
                let o = owner.unwrap_or("");
                let index = txn.open_table(TENANT_JOBS)?;
                Box::new(index.range((o, 0)..(o, before))?.rev().map(|e| Ok(e?.0.value().1)))
            }
        };
        let mut out = Vec::new();
        for id in ids {
            let id = id?;
            let Some(v) = jobs.get(id)? else { continue };
            let job: JobRecord = decode("jobs", At::Job(id), v.value())?;
            if state.is_some_and(|s| s != job.state) {
                continue;
            }
            if let Some((k, val)) = tag
                && job.spec.tags.get(k).map(String::as_str) != Some(val)
            {
                continue;
            }
            if out.len() == limit {
                let next = out.last().map(|j: &JobRecord| j.id);
                return Ok((out, next));
            }
            out.push(job);
        }
        Ok((out, None))
    }

    /// All jobs in one of `states` (for start-up recovery and the scheduler).
    pub fn jobs_in(&self, states: &[JobState]) -> Result<Vec<JobRecord>> {
        let txn = self.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        let mut out = Vec::new();
        for entry in jobs.iter()? {
            let (k, v) = entry?;
            let job: JobRecord = decode("jobs", At::Job(k.value()), v.value())?;
            if states.contains(&job.state) {
                out.push(job);
            }
        }
        Ok(out)
    }

    /// Change a job in one transaction; `f` returns an error to refuse the
    /// change. A change that makes a tenant's job Running is refused at the
    /// tenant's `running_jobs` quota.
    pub fn update_job<E: From<RunningJobsFull>>(
        &self,
        id: JobId,
        f: impl FnOnce(&mut JobRecord) -> std::result::Result<(), E>,
    ) -> Result<Option<std::result::Result<JobRecord, E>>> {
        let txn = self.begin_write()?;
        let Some(mut job) = load_job(&txn, id)? else { return Ok(None) };
        let before = job.state;
        if let Err(e) = f(&mut job) {
            return Ok(Some(Err(e)));
        }
        if let Err(full) = running::may_start(&txn, Some(before), &job)? {
            return Ok(Some(Err(full.into())));
        }
        job.updated_at = now();
        txn.open_table(JOBS)?.insert(id, encode(&job).as_slice())?;
        outbox::job_saved(&txn, Some(before), &job)?;
        self.commit(txn)?;
        Ok(Some(Ok(job)))
    }

    /// Delete a job and all its tasks.
    pub fn delete_job(&self, id: JobId) -> Result<bool> {
        let txn = self.begin_write()?;
        let existed = {
            let removed: Option<JobRecord> =
                txn.open_table(JOBS)?.remove(id)?.map(|v| decode("jobs", At::Job(id), v.value())).transpose()?;
            let existed = removed.is_some();
            txn.open_table(outbox::JOB_SECRETS)?.remove(id)?;
            txn.open_table(outbox::WEBHOOK_DELIVERIES)?.remove(id)?;
            txn.open_table(outbox::DEAD_EVENTS)?.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            if let Some(job) = removed {
                txn.open_table(TENANT_JOBS)?.remove((job.tenant.as_deref().unwrap_or(""), id))?;
            }
            txn.open_table(TASKS)?.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            txn.open_table(TASK_STATE)?.retain_in((id, 0, 0)..=(id, u8::MAX, u64::MAX), |_, _| false)?;
            txn.open_table(TASK_ERRORS)?.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            let mut keys = txn.open_table(TASK_KEYS)?;
            let doomed: Vec<String> = keys
                .range((id, "")..(id + 1, ""))?
                .map(|e| e.map(|(k, _)| k.value().1.to_string()))
                .collect::<std::result::Result<_, _>>()?;
            for key in doomed {
                keys.remove((id, key.as_str()))?;
            }
            existed
        };
        self.commit(txn)?;
        Ok(existed)
    }

    /// The etag the last successful run of a job definition processed for `key`.
    pub fn last_etag(&self, definition: &str, key: &str) -> Result<Option<String>> {
        let txn = self.begin_read()?;
        let t = txn.open_table(ETAGS)?;
        Ok(t.get((definition, key))?.map(|v| v.value().to_string()))
    }
}

/// Open (or create) the database file, check its schema version, migrate,
/// and create missing tables.
fn open_database(path: &Path) -> Result<Database> {
    let shown = path.display().to_string();
    // redb caches up to 1 GiB by default, so the daemon's memory grew with
    // the store (10k vs 100k tasks: 139 vs 195 MB). Recent pages are what
    // the writers touch; older ones come back from the OS page cache.
    let db = Database::builder().set_cache_size(16 << 20).create(path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: shown.clone() },
        e => StoreError::Open { path: shown.clone(), message: e.to_string() },
    })?;
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let found = meta.get("schema_version")?.map(|v| v.value().parse::<u32>().unwrap_or(u32::MAX));
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema { path: shown, found: v, supported: SCHEMA_VERSION });
            }
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => {
                if v < 2 {
                    migrate_v1(&txn)?;
                }
                if v < 4 {
                    tasks::index_errors(&txn)?;
                }
                outbox::index_by_job(&txn)?;
                meta.insert("schema_version", SCHEMA_VERSION.to_string().as_str())?;
            }
            None => {
                meta.insert("schema_version", SCHEMA_VERSION.to_string().as_str())?;
            }
        }
        txn.open_table(JOBS)?;
        txn.open_table(TASKS)?;
        txn.open_table(TASK_KEYS)?;
        txn.open_table(TASK_STATE)?;
        txn.open_table(TASK_ERRORS)?;
        txn.open_table(TENANT_JOBS)?;
        txn.open_table(STYLES)?;
        txn.open_table(TENANTS)?;
        txn.open_table(TOKENS)?;
        txn.open_table(ROLES)?;
        txn.open_table(PLUGINS)?;
        txn.open_table(PLUGIN_UPLOADS)?;
        txn.open_table(ETAGS)?;
        txn.open_table(outbox::OUTBOX)?;
        txn.open_table(outbox::OUTBOX_BY_JOB)?;
        txn.open_table(outbox::DEAD_EVENTS)?;
        txn.open_table(outbox::JOB_SECRETS)?;
        txn.open_table(outbox::WEBHOOK_DELIVERIES)?;
    }
    txn.commit()?;
    Ok(db)
}

/// Schema 1 → 2: styles move to `owner/name` keys (all of them the admin's),
/// and jobs (all the admin's) join the owner index.
fn migrate_v1(txn: &redb::WriteTransaction) -> Result<()> {
    let old: Vec<(String, Vec<u8>)> = {
        let styles = txn.open_table(STYLES_V1)?;
        styles
            .iter()?
            .map(|e| e.map(|(k, v)| (k.value().to_string(), v.value().to_vec())))
            .collect::<std::result::Result<_, _>>()?
    };
    {
        let mut styles = txn.open_table(STYLES)?;
        for (name, bytes) in &old {
            styles.insert(owned_key(None, name).as_str(), bytes.as_slice())?;
        }
    }
    txn.delete_table(STYLES_V1)?;
    let ids: Vec<u64> =
        txn.open_table(JOBS)?.iter()?.map(|e| e.map(|(k, _)| k.value())).collect::<std::result::Result<_, _>>()?;
    let mut index = txn.open_table(TENANT_JOBS)?;
    for id in ids {
        index.insert(("", id), ())?;
    }
    Ok(())
}

// JSON records in `&str`-keyed tables: styles, tenants, tokens, roles, plugins.

type JsonTable = TableDefinition<'static, &'static str, &'static [u8]>;

fn put_json<T: serde::Serialize>(store: &Store, table: JsonTable, key: &str, value: &T) -> Result<()> {
    let txn = store.begin_write()?;
    txn.open_table(table)?.insert(key, encode(value).as_slice())?;
    store.commit(txn)?;
    Ok(())
}

fn get_json<T: serde::de::DeserializeOwned>(
    store: &Store,
    table: JsonTable,
    name: &'static str,
    key: &str,
) -> Result<Option<T>> {
    let txn = store.begin_read()?;
    let t = txn.open_table(table)?;
    t.get(key)?.map(|v| decode(name, At::Name(key), v.value())).transpose()
}

/// Every record, or (with `owner`) those keyed `owner/…`.
fn list_json<T: serde::de::DeserializeOwned>(
    store: &Store,
    table: JsonTable,
    name: &'static str,
    owner: Option<Option<&str>>,
) -> Result<Vec<T>> {
    let txn = store.begin_read()?;
    let t = txn.open_table(table)?;
    let range = match owner {
        None => t.iter()?,
        Some(o) => {
            let start = format!("{}/", o.unwrap_or(""));
            // `0` is the byte after `/`: the end of this owner's range.
            let end = format!("{}0", o.unwrap_or(""));
            t.range(start.as_str()..end.as_str())?
        }
    };
    range
        .map(|e| {
            let (k, v) = e?;
            decode(name, At::Name(k.value()), v.value())
        })
        .collect()
}

fn remove_key(store: &Store, table: JsonTable, key: &str) -> Result<bool> {
    let txn = store.begin_write()?;
    let existed = txn.open_table(table)?.remove(key)?.is_some();
    store.commit(txn)?;
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{JobSpec, TaskErrorRecord, TaskState};

    pub(super) fn spec() -> JobSpec {
        serde_json::from_value(serde_json::json!({
            "input": {"bucket": "in"},
            "style": "copy",
            "output": {"bucket": "out", "template": "o/{key}"},
            "concurrency": 2
        }))
        .unwrap()
    }

    pub(super) fn planned(keys: &[&str]) -> Vec<PlannedObject> {
        keys.iter()
            .map(|k| PlannedObject { key: k.to_string(), size: Some(1), etag: None, last_modified: None })
            .collect()
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.redb");
        Store::open(&path).unwrap().set_schema_version_for_tests(SCHEMA_VERSION + 1).unwrap();
        let err = Store::open(&path).err().unwrap().to_string();
        assert!(err.contains("newer than this Kiln supports"), "{err}");
    }

    #[test]
    fn plans_claims_commits_and_settles_with_counters_that_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let job = store.create_job(spec(), None, JobState::Running).unwrap().unwrap();
        assert_eq!(store.add_planned(job.id, &planned(&["a", "b", "c"]), Some("c"), false).unwrap(), 3);
        // A page listed again after a crash adds nothing.
        assert_eq!(store.add_planned(job.id, &planned(&["b", "c", "d"]), Some("d"), true).unwrap(), 1);
        let claimed = store.claim(job.id, 3).unwrap();
        assert_eq!(claimed.iter().map(|t| t.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        let err = TaskErrorRecord { kind: crate::runtime::TaskErrorKind::Failed, message: "no".into() };
        let results = vec![
            TaskResult::Succeeded {
                job: job.id,
                seq: 1,
                outputs: vec!["o/a".into()],
                bytes_in: 1,
                bytes_out: 1,
                duration_ms: 1,
                etag: None,
                result: None,
                worker: None,
            },
            TaskResult::Failed { job: job.id, seq: 2, error: err.clone(), duration_ms: 1, bytes_in: 0, worker: None },
            TaskResult::Retry { job: job.id, seq: 3, error: err.clone() },
            // A duplicate result counts once.
            TaskResult::Succeeded {
                job: job.id,
                seq: 1,
                outputs: vec![],
                bytes_in: 9,
                bytes_out: 9,
                duration_ms: 1,
                etag: None,
                result: None,
                worker: None,
            },
        ];
        store.commit_results(&results).unwrap();
        let j = store.get_job(job.id).unwrap().unwrap();
        let c = j.counters;
        assert_eq!((c.total, c.pending, c.running, c.succeeded, c.failed), (4, 2, 0, 1, 1));
        assert_eq!(c.bytes_in, 1);
        // Crash: claimed tasks come back as pending.
        assert_eq!(store.claim(job.id, 10).unwrap().len(), 2);
        assert_eq!(store.requeue_running().unwrap(), 2);
        let rest = store.claim(job.id, 10).unwrap();
        let done: Vec<TaskResult> = rest
            .iter()
            .map(|t| TaskResult::Succeeded {
                job: job.id,
                seq: t.seq,
                outputs: vec![],
                bytes_in: 0,
                bytes_out: 0,
                duration_ms: 0,
                etag: None,
                result: None,
                worker: None,
            })
            .collect();
        let touched = store.commit_results(&done).unwrap();
        assert_eq!(touched[0].state, JobState::Failed, "one task failed: the job cannot succeed");
        assert_eq!(store.retry_failed(job.id).unwrap(), Ok(1));
        let t = store.claim(job.id, 10).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].attempts, 2);
        let touched = store
            .commit_results(&[TaskResult::Succeeded {
                job: job.id,
                seq: t[0].seq,
                outputs: vec![],
                bytes_in: 0,
                bytes_out: 0,
                duration_ms: 0,
                etag: None,
                result: None,
                worker: None,
            }])
            .unwrap();
        assert_eq!(touched[0].state, JobState::Succeeded);
    }

    #[test]
    fn retry_failed_never_revives_a_job_cancelled_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let job = store.create_job(spec(), None, JobState::Running).unwrap().unwrap();
        store.add_planned(job.id, &planned(&["a"]), None, true).unwrap();
        let t = store.claim(job.id, 1).unwrap();
        let failed = TaskErrorRecord { kind: crate::runtime::TaskErrorKind::Failed, message: "no".into() };
        store
            .commit_results(&[TaskResult::Failed {
                job: job.id,
                seq: t[0].seq,
                error: failed,
                duration_ms: 0,
                bytes_in: 0,
                worker: None,
            }])
            .unwrap();
        // The caller saw a Failed job; a cancel lands before its retry does.
        store
            .update_job::<RetryRefused>(job.id, |j| {
                j.state = JobState::Cancelled;
                Ok(())
            })
            .unwrap();
        assert_eq!(store.retry_failed(job.id).unwrap(), Err(RetryRefused::State(JobState::Cancelled)));
        let job = store.get_job(job.id).unwrap().unwrap();
        assert_eq!((job.state, job.counters.failed, job.counters.pending), (JobState::Cancelled, 1, 0));
    }

    #[test]
    fn suspended_jobs_give_no_tasks_and_listings_page_by_state_and_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let job = store.create_job(spec(), None, JobState::Suspended).unwrap().unwrap();
        let keys: Vec<String> =
            (0..25).map(|i| format!("{}/k{i:02}", if i % 2 == 0 { "even" } else { "odd" })).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        store.add_planned(job.id, &planned(&refs), None, true).unwrap();
        assert!(store.claim(job.id, 5).unwrap().is_empty());

        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let filter = TaskFilter { state: Some(TaskState::Pending), ..Default::default() };
            let (page, next) = store.list_tasks(job.id, &filter, cursor.as_deref(), 7).unwrap();
            seen.extend(page.iter().map(|t| t.seq));
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, (1..=25).collect::<Vec<_>>());

        let filter = TaskFilter { prefix: Some("odd/".into()), ..Default::default() };
        let (page, next) = store.list_tasks(job.id, &filter, None, 5).unwrap();
        assert_eq!(
            page.iter().map(|t| t.source_key.as_str()).collect::<Vec<_>>(),
            vec!["odd/k01", "odd/k03", "odd/k05", "odd/k07", "odd/k09"]
        );
        let (page2, _) = store.list_tasks(job.id, &filter, next.as_deref(), 100).unwrap();
        assert_eq!(page2.len(), 7);
        assert_eq!(page2[0].source_key, "odd/k11");
        assert!(store.delete_job(job.id).unwrap());
        assert!(store.get_task(job.id, 1).unwrap().is_none());
    }
}
