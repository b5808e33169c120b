//! The only code that knows the redb tables. A typed API; each method is one
//! transaction. redb is synchronous: async callers go through [`Store::call`].
//!
//! Tables:
//! - `meta`: schema version and counters (`next_job_id`).
//! - `jobs`: job id → JSON [`JobRecord`].
//! - `tasks`: (job, seq) → JSON [`TaskRecord`]; seq is planning order.
//! - `task_keys`: (job, source key) → seq: dedupes re-planned keys after a crash,
//!   and serves source-key prefix search in key order.
//! - `task_state`: (job, state, seq) → (): the state index. Pending tasks are
//!   claimed from it in seq order; filtered listings read only their state.
//! - `styles`: name → JSON [`StyleRecord`].

mod tasks;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::model::{JobId, JobRecord, JobState, StyleRecord, now};

pub use tasks::{PlannedObject, TaskFilter, TaskResult};

const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const TASKS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("tasks");
const TASK_KEYS: TableDefinition<(u64, &str), u64> = TableDefinition::new("task_keys");
const TASK_STATE: TableDefinition<(u64, u8, u64), ()> = TableDefinition::new("task_state");
const STYLES: TableDefinition<&str, &[u8]> = TableDefinition::new("styles");

/// The schema this build writes. A store written by a newer Kiln is refused.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path} has schema version {found}, newer than this Kiln supports ({supported}): upgrade Kiln")]
    NewerSchema { path: String, found: u32, supported: u32 },
    #[error("opening the store at {path}: {message}")]
    Open { path: String, message: String },
    #[error("storage error: {0}")]
    Db(String),
    #[error("corrupt record in `{table}`: {message}")]
    Corrupt { table: &'static str, message: String },
}

macro_rules! db_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Db(e.to_string()) }
        }
    )*};
}
db_errors!(redb::Error, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
}

fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records always serialise")
}

fn decode<T: serde::de::DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { table, message: e.to_string() })
}

impl Store {
    /// Open (or create) the store, check its schema version, and create missing tables.
    pub fn open(path: &Path) -> Result<Store> {
        let shown = path.display().to_string();
        // redb caches up to 1 GiB by default, so the daemon's memory grew with
        // the store (10k vs 100k tasks: 139 vs 195 MB). Recent pages are what
        // the writers touch; older ones come back from the OS page cache.
        let db = Database::builder().set_cache_size(16 << 20).create(path).map_err(|e| StoreError::Open { path: shown.clone(), message: e.to_string() })?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema_version")?.map(|v| v.value().parse::<u32>().unwrap_or(u32::MAX));
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::NewerSchema { path: shown, found: v, supported: SCHEMA_VERSION });
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION.to_string().as_str())?;
                }
            }
            txn.open_table(JOBS)?;
            txn.open_table(TASKS)?;
            txn.open_table(TASK_KEYS)?;
            txn.open_table(TASK_STATE)?;
            txn.open_table(STYLES)?;
        }
        txn.commit()?;
        Ok(Store { db: Arc::new(db) })
    }

    /// Run a store call on the blocking pool: commits fsync.
    pub async fn call<T: Send + 'static>(&self, f: impl FnOnce(&Store) -> T + Send + 'static) -> T {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.expect("store call panicked")
    }

    /// Mark the store as written by a future version (tests of the version check).
    #[doc(hidden)]
    pub fn set_schema_version_for_tests(&self, version: u32) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(META)?.insert("schema_version", version.to_string().as_str())?;
        txn.commit()?;
        Ok(())
    }

    // ---- jobs ----

    /// Store a new job in `state`, with the next id.
    pub fn create_job(&self, spec: crate::model::JobSpec, state: JobState) -> Result<JobRecord> {
        let txn = self.db.begin_write()?;
        let job = {
            let mut meta = txn.open_table(META)?;
            let id = meta.get("next_job_id")?.and_then(|v| v.value().parse::<u64>().ok()).unwrap_or(1);
            meta.insert("next_job_id", (id + 1).to_string().as_str())?;
            let t = now();
            let job = JobRecord {
                id,
                spec,
                state,
                counters: Default::default(),
                planning: Default::default(),
                error: None,
                created_at: t,
                updated_at: t,
                finished_at: None,
            };
            txn.open_table(JOBS)?.insert(id, encode(&job).as_slice())?;
            job
        };
        txn.commit()?;
        Ok(job)
    }

    pub fn get_job(&self, id: JobId) -> Result<Option<JobRecord>> {
        let txn = self.db.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        jobs.get(id)?.map(|v| decode("jobs", v.value())).transpose()
    }

    /// Jobs, newest first, after `before` (a job id cursor), filtered.
    pub fn list_jobs(
        &self,
        state: Option<JobState>,
        tag: Option<(&str, &str)>,
        before: Option<JobId>,
        limit: usize,
    ) -> Result<(Vec<JobRecord>, Option<JobId>)> {
        let txn = self.db.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        let mut out = Vec::new();
        let range = jobs.range(..before.unwrap_or(u64::MAX))?;
        for entry in range.rev() {
            let (_, v) = entry?;
            let job: JobRecord = decode("jobs", v.value())?;
            if state.is_some_and(|s| s != job.state) {
                continue;
            }
            if let Some((k, val)) = tag {
                if job.spec.tags.get(k).map(String::as_str) != Some(val) {
                    continue;
                }
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
        let txn = self.db.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        let mut out = Vec::new();
        for entry in jobs.iter()? {
            let (_, v) = entry?;
            let job: JobRecord = decode("jobs", v.value())?;
            if states.contains(&job.state) {
                out.push(job);
            }
        }
        Ok(out)
    }

    /// Change a job in one transaction; `f` returns an error to refuse the change.
    pub fn update_job<E>(
        &self,
        id: JobId,
        f: impl FnOnce(&mut JobRecord) -> std::result::Result<(), E>,
    ) -> Result<Option<std::result::Result<JobRecord, E>>> {
        let txn = self.db.begin_write()?;
        let result = {
            let mut jobs = txn.open_table(JOBS)?;
            let Some(mut job) = jobs.get(id)?.map(|v| decode::<JobRecord>("jobs", v.value())).transpose()? else {
                return Ok(None);
            };
            match f(&mut job) {
                Err(e) => return Ok(Some(Err(e))),
                Ok(()) => {
                    job.updated_at = now();
                    jobs.insert(id, encode(&job).as_slice())?;
                    job
                }
            }
        };
        txn.commit()?;
        Ok(Some(Ok(result)))
    }

    /// Delete a job and all its tasks.
    pub fn delete_job(&self, id: JobId) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let existed = {
            let existed = txn.open_table(JOBS)?.remove(id)?.is_some();
            txn.open_table(TASKS)?.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
            txn.open_table(TASK_STATE)?.retain_in((id, 0, 0)..=(id, u8::MAX, u64::MAX), |_, _| false)?;
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
        txn.commit()?;
        Ok(existed)
    }

    // ---- styles ----

    pub fn put_style(&self, style: &StyleRecord) -> Result<()> {
        let txn = self.db.begin_write()?;
        txn.open_table(STYLES)?.insert(style.name.as_str(), encode(style).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub fn get_style(&self, name: &str) -> Result<Option<StyleRecord>> {
        let txn = self.db.begin_read()?;
        let styles = txn.open_table(STYLES)?;
        styles.get(name)?.map(|v| decode("styles", v.value())).transpose()
    }

    pub fn list_styles(&self) -> Result<Vec<StyleRecord>> {
        let txn = self.db.begin_read()?;
        let styles = txn.open_table(STYLES)?;
        styles.iter()?.map(|e| decode("styles", e?.1.value())).collect()
    }

    pub fn delete_style(&self, name: &str) -> Result<bool> {
        let txn = self.db.begin_write()?;
        let existed = txn.open_table(STYLES)?.remove(name)?.is_some();
        txn.commit()?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InputSpec, JobSpec, OutputSpec, TaskErrorRecord, TaskState};

    pub(super) fn spec() -> JobSpec {
        JobSpec {
            name: None,
            input: InputSpec { bucket: "in".into(), ..Default::default() },
            style: "copy".into(),
            output: OutputSpec { bucket: "out".into(), template: "o/{key}".into() },
            concurrency: 2,
            fast_fail: false,
            tags: Default::default(),
        }
    }

    pub(super) fn planned(keys: &[&str]) -> Vec<PlannedObject> {
        keys.iter().map(|k| PlannedObject { key: k.to_string(), size: Some(1), etag: None, last_modified: None }).collect()
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
        let job = store.create_job(spec(), JobState::Running).unwrap();
        assert_eq!(store.add_planned(job.id, &planned(&["a", "b", "c"]), Some("c"), false).unwrap(), 3);
        // A page listed again after a crash adds nothing.
        assert_eq!(store.add_planned(job.id, &planned(&["b", "c", "d"]), Some("d"), true).unwrap(), 1);
        let claimed = store.claim(job.id, 3).unwrap();
        assert_eq!(claimed.iter().map(|t| t.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        let err = TaskErrorRecord { kind: "failed".into(), message: "no".into() };
        let results = vec![
            TaskResult::Succeeded { job: job.id, seq: 1, outputs: vec!["o/a".into()], bytes_in: 1, bytes_out: 1, duration_ms: 1 },
            TaskResult::Failed { job: job.id, seq: 2, error: err.clone(), duration_ms: 1, bytes_in: 0 },
            TaskResult::Retry { job: job.id, seq: 3, error: err.clone() },
            // A duplicate result counts once.
            TaskResult::Succeeded { job: job.id, seq: 1, outputs: vec![], bytes_in: 9, bytes_out: 9, duration_ms: 1 },
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
            .map(|t| TaskResult::Succeeded { job: job.id, seq: t.seq, outputs: vec![], bytes_in: 0, bytes_out: 0, duration_ms: 0 })
            .collect();
        let touched = store.commit_results(&done).unwrap();
        assert_eq!(touched[0].state, JobState::Failed, "one task failed: the job cannot succeed");
        assert_eq!(store.retry_failed(job.id).unwrap(), 1);
        let t = store.claim(job.id, 10).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].attempts, 2);
        let touched = store
            .commit_results(&[TaskResult::Succeeded { job: job.id, seq: t[0].seq, outputs: vec![], bytes_in: 0, bytes_out: 0, duration_ms: 0 }])
            .unwrap();
        assert_eq!(touched[0].state, JobState::Succeeded);
    }

    #[test]
    fn suspended_jobs_give_no_tasks_and_listings_page_by_state_and_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let job = store.create_job(spec(), JobState::Suspended).unwrap();
        let keys: Vec<String> = (0..25).map(|i| format!("{}/k{i:02}", if i % 2 == 0 { "even" } else { "odd" })).collect();
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
        assert_eq!(page.iter().map(|t| t.source_key.as_str()).collect::<Vec<_>>(), vec!["odd/k01", "odd/k03", "odd/k05", "odd/k07", "odd/k09"]);
        let (page2, _) = store.list_tasks(job.id, &filter, next.as_deref(), 100).unwrap();
        assert_eq!(page2.len(), 7);
        assert_eq!(page2[0].source_key, "odd/k11");
        assert!(store.delete_job(job.id).unwrap());
        assert!(store.get_task(job.id, 1).unwrap().is_none());
    }
}
