//! Tasks: planning, claiming, group commit of results, listings and recovery.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::{JOBS, Result, Store, TASK_KEYS, TASK_STATE, TASKS, decode, encode};
use crate::model::{JobId, JobRecord, JobState, TaskErrorRecord, TaskRecord, TaskState, now};

/// An object found by the planner.
#[derive(Debug, Clone)]
pub struct PlannedObject {
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<i64>,
}

/// The end of one attempt at a task, as sent to the group commit.
#[derive(Debug, Clone)]
pub enum TaskResult {
    Succeeded { job: JobId, seq: u64, outputs: Vec<String>, bytes_in: u64, bytes_out: u64, duration_ms: u64 },
    Failed { job: JobId, seq: u64, error: TaskErrorRecord, duration_ms: u64, bytes_in: u64 },
    /// A transient failure: back to Pending for another attempt.
    Retry { job: JobId, seq: u64, error: TaskErrorRecord },
}

impl TaskResult {
    fn key(&self) -> (JobId, u64) {
        match self {
            TaskResult::Succeeded { job, seq, .. } | TaskResult::Failed { job, seq, .. } | TaskResult::Retry { job, seq, .. } => {
                (*job, *seq)
            }
        }
    }
}

/// Filters of a task listing.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub state: Option<TaskState>,
    /// Source keys starting with this (served from the key index, in key order).
    pub prefix: Option<String>,
    /// Source keys containing this (a scan).
    pub contains: Option<String>,
    /// Error kind or message containing this (a scan).
    pub error: Option<String>,
}

fn load_job(txn: &WriteTransaction, id: JobId) -> Result<Option<JobRecord>> {
    let jobs = txn.open_table(JOBS)?;
    jobs.get(id)?.map(|v| decode("jobs", v.value())).transpose()
}

fn save_job(txn: &WriteTransaction, job: &mut JobRecord) -> Result<()> {
    job.updated_at = now();
    txn.open_table(JOBS)?.insert(job.id, encode(job).as_slice())?;
    Ok(())
}

/// The state index, open in a write transaction.
type StateIndex<'t> = redb::Table<'t, (u64, u8, u64), ()>;

fn move_state(idx: &mut StateIndex<'_>, job: JobId, seq: u64, from: TaskState, to: TaskState) -> Result<()> {
    idx.remove((job, from.code(), seq))?;
    idx.insert((job, to.code(), seq), ())?;
    Ok(())
}

/// Move every task of `job` in state `from` back to Pending (clearing a
/// failure's error), keeping the job's counters in step. Returns how many.
fn back_to_pending(txn: &WriteTransaction, job: &mut JobRecord, from: TaskState) -> Result<u64> {
    let id = job.id;
    let mut idx = txn.open_table(TASK_STATE)?;
    let seqs: Vec<u64> = idx
        .range((id, from.code(), 0)..=(id, from.code(), u64::MAX))?
        .map(|e| e.map(|(k, _)| k.value().2))
        .collect::<std::result::Result<_, _>>()?;
    let mut tasks = txn.open_table(TASKS)?;
    for seq in &seqs {
        move_state(&mut idx, id, *seq, from, TaskState::Pending)?;
        let found = tasks.get((id, *seq))?.map(|v| decode::<TaskRecord>("tasks", v.value())).transpose()?;
        if let Some(mut task) = found {
            task.state = TaskState::Pending;
            if from == TaskState::Failed {
                task.error = None;
                task.finished_at = None;
            }
            tasks.insert((id, *seq), encode(&task).as_slice())?;
        }
        job.counters.moved(from, TaskState::Pending);
    }
    Ok(seqs.len() as u64)
}

/// End a running job whose work is done: Succeeded only if no task failed.
pub(super) fn settle(job: &mut JobRecord) {
    let c = &job.counters;
    if job.state == JobState::Running && job.planning.done && c.pending == 0 && c.running == 0 {
        job.state = if c.failed > 0 { JobState::Failed } else { JobState::Succeeded };
        job.finished_at = Some(now());
    }
}

impl Store {
    /// Add a batch of planned objects and the listing cursor in one transaction.
    /// Keys already planned (a page listed again after a crash) are skipped.
    pub fn add_planned(&self, id: JobId, objects: &[PlannedObject], cursor: Option<&str>, done: bool) -> Result<u64> {
        let txn = self.db.begin_write()?;
        let added = {
            let Some(mut job) = load_job(&txn, id)? else { return Ok(0) };
            let mut tasks = txn.open_table(TASKS)?;
            let mut keys = txn.open_table(TASK_KEYS)?;
            let mut idx = txn.open_table(TASK_STATE)?;
            let mut added = 0;
            for o in objects {
                if keys.get((id, o.key.as_str()))?.is_some() {
                    continue;
                }
                let seq = job.counters.total + 1;
                let task = TaskRecord {
                    job: id,
                    seq,
                    source_key: o.key.clone(),
                    size: o.size,
                    etag: o.etag.clone(),
                    last_modified: o.last_modified,
                    state: TaskState::Pending,
                    attempts: 0,
                    outputs: vec![],
                    error: None,
                    duration_ms: None,
                    bytes_in: 0,
                    bytes_out: 0,
                    finished_at: None,
                };
                tasks.insert((id, seq), encode(&task).as_slice())?;
                keys.insert((id, o.key.as_str()), seq)?;
                idx.insert((id, TaskState::Pending.code(), seq), ())?;
                job.counters.total += 1;
                job.counters.pending += 1;
                added += 1;
            }
            drop((tasks, keys, idx));
            if let Some(c) = cursor {
                job.planning.cursor = Some(c.to_string());
            }
            job.planning.done |= done;
            settle(&mut job);
            save_job(&txn, &mut job)?;
            added
        };
        txn.commit()?;
        Ok(added)
    }

    /// Claim up to `n` pending tasks of a running job, in planning order, and
    /// mark them Running. Nothing is claimed unless the job is Running, so
    /// suspend and cancel take effect at once.
    pub fn claim(&self, id: JobId, n: usize) -> Result<Vec<TaskRecord>> {
        let mut txn = self.db.begin_write()?;
        // A claim need not survive a crash: lost, its tasks are simply Pending
        // again, which is what recovery does with Running tasks anyway. So no
        // fsync here; the next group commit makes it durable.
        txn.set_durability(redb::Durability::None).map_err(|e| super::StoreError::Db(e.to_string()))?;
        let claimed = {
            let Some(mut job) = load_job(&txn, id)? else { return Ok(vec![]) };
            if job.state != JobState::Running || n == 0 {
                return Ok(vec![]);
            }
            let pending = TaskState::Pending.code();
            let mut idx = txn.open_table(TASK_STATE)?;
            let mut tasks = txn.open_table(TASKS)?;
            let seqs: Vec<u64> = idx
                .range((id, pending, 0)..=(id, pending, u64::MAX))?
                .take(n)
                .map(|e| e.map(|(k, _)| k.value().2))
                .collect::<std::result::Result<_, _>>()?;
            let mut out = Vec::with_capacity(seqs.len());
            for seq in seqs {
                move_state(&mut idx, id, seq, TaskState::Pending, TaskState::Running)?;
                let mut task: TaskRecord = match tasks.get((id, seq))? {
                    Some(v) => decode("tasks", v.value())?,
                    None => continue,
                };
                task.state = TaskState::Running;
                task.attempts += 1;
                tasks.insert((id, seq), encode(&task).as_slice())?;
                job.counters.moved(TaskState::Pending, TaskState::Running);
                out.push(task);
            }
            drop((idx, tasks));
            if !out.is_empty() {
                save_job(&txn, &mut job)?;
            }
            out
        };
        txn.commit()?;
        Ok(claimed)
    }

    /// Group commit: record many results, their jobs' counters and end states
    /// in one transaction. A result for a task that is no longer Running (a
    /// duplicate after a restart) is ignored, so each result counts once.
    /// Returns the jobs touched, as they are now.
    pub fn commit_results(&self, results: &[TaskResult]) -> Result<Vec<JobRecord>> {
        let txn = self.db.begin_write()?;
        let touched = {
            let mut jobs: std::collections::BTreeMap<JobId, JobRecord> = Default::default();
            let mut tasks = txn.open_table(TASKS)?;
            let mut idx = txn.open_table(TASK_STATE)?;
            for r in results {
                let (id, seq) = r.key();
                if !jobs.contains_key(&id) {
                    match load_job(&txn, id)? {
                        Some(j) => {
                            jobs.insert(id, j);
                        }
                        None => continue,
                    }
                }
                let job = jobs.get_mut(&id).expect("inserted above");
                let Some(mut task) = tasks.get((id, seq))?.map(|v| decode::<TaskRecord>("tasks", v.value())).transpose()? else {
                    continue;
                };
                if task.state != TaskState::Running {
                    continue;
                }
                let to = match r {
                    TaskResult::Succeeded { outputs, bytes_in, bytes_out, duration_ms, .. } => {
                        task.outputs = outputs.clone();
                        task.bytes_in = *bytes_in;
                        task.bytes_out = *bytes_out;
                        task.duration_ms = Some(*duration_ms);
                        task.error = None;
                        job.counters.bytes_in += bytes_in;
                        job.counters.bytes_out += bytes_out;
                        TaskState::Succeeded
                    }
                    TaskResult::Failed { error, duration_ms, bytes_in, .. } => {
                        task.error = Some(error.clone());
                        task.duration_ms = Some(*duration_ms);
                        task.bytes_in = *bytes_in;
                        job.counters.bytes_in += bytes_in;
                        if job.spec.fast_fail && job.state == JobState::Running {
                            job.state = JobState::Failed;
                            job.error = Some(format!("fast-fail: task {seq} (`{}`) failed: {}", task.source_key, error.message));
                            job.finished_at = Some(now());
                        }
                        TaskState::Failed
                    }
                    TaskResult::Retry { error, .. } => {
                        task.error = Some(error.clone());
                        TaskState::Pending
                    }
                };
                if to != TaskState::Pending {
                    task.finished_at = Some(now());
                }
                task.state = to;
                tasks.insert((id, seq), encode(&task).as_slice())?;
                move_state(&mut idx, id, seq, TaskState::Running, to)?;
                job.counters.moved(TaskState::Running, to);
            }
            drop((tasks, idx));
            let mut touched = Vec::with_capacity(jobs.len());
            for (_, mut job) in jobs {
                settle(&mut job);
                save_job(&txn, &mut job)?;
                touched.push(job);
            }
            touched
        };
        txn.commit()?;
        Ok(touched)
    }

    /// At start-up: every task left Running by a crash is Pending again.
    pub fn requeue_running(&self) -> Result<u64> {
        let txn = self.db.begin_write()?;
        let mut moved = 0;
        {
            let ids: Vec<JobId> = {
                let jobs = txn.open_table(JOBS)?;
                jobs.iter()?.map(|e| e.map(|(k, _)| k.value())).collect::<std::result::Result<_, _>>()?
            };
            for id in ids {
                let Some(mut job) = load_job(&txn, id)? else { continue };
                let n = back_to_pending(&txn, &mut job, TaskState::Running)?;
                if n > 0 {
                    save_job(&txn, &mut job)?;
                    moved += n;
                }
            }
        }
        txn.commit()?;
        Ok(moved)
    }

    /// Failed tasks back to Pending, and the job back to Running. Returns how many.
    pub fn retry_failed(&self, id: JobId) -> Result<u64> {
        let txn = self.db.begin_write()?;
        let moved = {
            let Some(mut job) = load_job(&txn, id)? else { return Ok(0) };
            let n = back_to_pending(&txn, &mut job, TaskState::Failed)?;
            if n > 0 {
                job.state = JobState::Running;
                job.error = None;
                job.finished_at = None;
                save_job(&txn, &mut job)?;
            }
            n
        };
        txn.commit()?;
        Ok(moved)
    }

    pub fn get_task(&self, id: JobId, seq: u64) -> Result<Option<TaskRecord>> {
        let txn = self.db.begin_read()?;
        let tasks = txn.open_table(TASKS)?;
        tasks.get((id, seq))?.map(|v| decode("tasks", v.value())).transpose()
    }

    /// A page of a job's tasks. The cursor is opaque to clients: `s<seq>` for
    /// listings in planning order, `k<key>` for prefix listings in key order.
    /// A page reads rows in proportion to its size, except for `contains` and
    /// `error`, which scan until the page is full.
    pub fn list_tasks(&self, id: JobId, filter: &TaskFilter, cursor: Option<&str>, limit: usize) -> Result<(Vec<TaskRecord>, Option<String>)> {
        let txn = self.db.begin_read()?;
        let tasks = txn.open_table(TASKS)?;
        let keep = |t: &TaskRecord| {
            filter.state.is_none_or(|s| t.state == s)
                && filter.prefix.as_deref().is_none_or(|p| t.source_key.starts_with(p))
                && filter.contains.as_deref().is_none_or(|c| t.source_key.contains(c))
                && filter.error.as_deref().is_none_or(|needle| {
                    t.error.as_ref().is_some_and(|e| e.kind.contains(needle) || e.message.contains(needle))
                })
        };
        let mut out = Vec::new();
        let mut next = None;
        let mut push = |t: TaskRecord, cursor: String| -> bool {
            if out.len() == limit {
                next = Some(cursor);
                return false;
            }
            out.push(t);
            true
        };
        if let (Some(prefix), None) = (&filter.prefix, filter.state) {
            let keys = txn.open_table(TASK_KEYS)?;
            let start = cursor.and_then(|c| c.strip_prefix('k')).map_or(prefix.clone(), |k| format!("{k}\0"));
            let mut last_key = None;
            for e in keys.range((id, start.as_str())..(id + 1, ""))? {
                let (k, seq) = e?;
                let key = k.value().1.to_string();
                if !key.starts_with(prefix.as_str()) {
                    break;
                }
                let Some(t) = tasks.get((id, seq.value()))?.map(|v| decode::<TaskRecord>("tasks", v.value())).transpose()? else {
                    continue;
                };
                if !keep(&t) {
                    continue;
                }
                if !push(t, format!("k{}", last_key.clone().unwrap_or_default())) {
                    break;
                }
                last_key = Some(key);
            }
            return Ok((out, next));
        }
        let after = cursor.and_then(|c| c.strip_prefix('s')).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let mut last_seq = after;
        if let Some(state) = filter.state {
            let idx = txn.open_table(TASK_STATE)?;
            for e in idx.range((id, state.code(), after + 1)..=(id, state.code(), u64::MAX))? {
                let seq = e?.0.value().2;
                let Some(t) = tasks.get((id, seq))?.map(|v| decode::<TaskRecord>("tasks", v.value())).transpose()? else {
                    continue;
                };
                if !keep(&t) {
                    continue;
                }
                if !push(t, format!("s{last_seq}")) {
                    break;
                }
                last_seq = seq;
            }
        } else {
            for e in tasks.range((id, after + 1)..=(id, u64::MAX))? {
                let (k, v) = e?;
                let t: TaskRecord = decode("tasks", v.value())?;
                if !keep(&t) {
                    continue;
                }
                let seq = k.value().1;
                if !push(t, format!("s{last_seq}")) {
                    break;
                }
                last_seq = seq;
            }
        }
        Ok((out, next))
    }
}
