//! Tasks: planning, claiming, group commit of results, listings and recovery.

use redb::{ReadableTable, WriteTransaction};

use super::{
    At, ETAGS, JOBS, Result, RunningJobsFull, Store, TASK_ERRORS, TASK_KEYS, TASK_STATE, TASKS, decode, decode_task,
    encode, encode_task, load_job,
};
use crate::model::{JobId, JobRecord, JobState, TaskRecord, TaskState, now};
pub use crate::transition::TaskResult;
use crate::transition::{Applied, apply};

/// An object found by the planner.
#[derive(Debug, Clone)]
pub struct PlannedObject {
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<i64>,
}

/// Why retry-failed changed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryRefused {
    /// The job is no longer in a state retry works on (a cancel came in between).
    State(JobState),
    /// The tenant runs as many jobs as its quota allows.
    Quota(RunningJobsFull),
}

impl From<RunningJobsFull> for RetryRefused {
    fn from(full: RunningJobsFull) -> Self {
        RetryRefused::Quota(full)
    }
}

/// Write a job back; a change of state from `before` also queues its webhook event.
fn save_job(txn: &WriteTransaction, before: JobState, job: &mut JobRecord) -> Result<()> {
    job.updated_at = now();
    txn.open_table(JOBS)?.insert(job.id, encode(job).as_slice())?;
    super::outbox::job_saved(txn, Some(before), job)
}

/// The state index, open in a write transaction.
type StateIndex<'t> = redb::Table<'t, (u64, u8, u64), ()>;

fn move_state(idx: &mut StateIndex<'_>, job: JobId, seq: u64, from: TaskState, to: TaskState) -> Result<()> {
    idx.remove((job, from.code(), seq))?;
    idx.insert((job, to.code(), seq), ())?;
    Ok(())
}

/// The error index, open in a write transaction.
type ErrorIndex<'t> = redb::Table<'t, (u64, u64), ()>;

/// Keep the error index in step with a task written back: `had` and `has`
/// say whether its record held an error before and holds one now.
fn index_error(errors: &mut ErrorIndex<'_>, job: JobId, seq: u64, had: bool, has: bool) -> Result<()> {
    match (had, has) {
        (false, true) => {
            errors.insert((job, seq), ())?;
        }
        (true, false) => {
            errors.remove((job, seq))?;
        }
        _ => {}
    }
    Ok(())
}

/// Build the error index of a store written before it existed (schema < 4).
pub(super) fn index_errors(txn: &WriteTransaction) -> Result<()> {
    let tasks = txn.open_table(TASKS)?;
    let mut errors = txn.open_table(TASK_ERRORS)?;
    for e in tasks.iter()? {
        let (k, v) = e?;
        let (job, seq) = k.value();
        // A record that does not decode is left for `kiln store check` to name.
        if decode_task(job, seq, v.value()).is_ok_and(|t| t.error.is_some()) {
            errors.insert((job, seq), ())?;
        }
    }
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
    let mut errors = txn.open_table(TASK_ERRORS)?;
    for seq in &seqs {
        move_state(&mut idx, id, *seq, from, TaskState::Pending)?;
        let found = tasks.get((id, *seq))?.map(|v| decode_task(id, *seq, v.value())).transpose()?;
        if let Some(mut task) = found {
            let had = task.error.is_some();
            task.state = TaskState::Pending;
            if from == TaskState::Failed {
                task.error = None;
                task.finished_at = None;
            }
            tasks.insert((id, *seq), encode_task(&task).as_slice())?;
            index_error(&mut errors, id, *seq, had, task.error.is_some())?;
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

/// Add tasks for objects not planned before (a page listed again after a
/// crash adds nothing). With `skip_unchanged`, an object whose etag the job
/// definition's last successful run recorded is Skipped at once.
fn insert_planned(txn: &WriteTransaction, job: &mut JobRecord, objects: &[PlannedObject]) -> Result<u64> {
    let id = job.id;
    let mut tasks = txn.open_table(TASKS)?;
    let mut keys = txn.open_table(TASK_KEYS)?;
    let mut idx = txn.open_table(TASK_STATE)?;
    let etags = txn.open_table(ETAGS)?;
    let mut added = 0;
    for o in objects {
        if keys.get((id, o.key.as_str()))?.is_some() {
            continue;
        }
        let unchanged = job.spec.skip_unchanged
            && o.etag.as_deref().is_some_and(|e| {
                etags.get((job.definition.as_str(), o.key.as_str())).ok().flatten().is_some_and(|v| v.value() == e)
            });
        let state = if unchanged { TaskState::Skipped } else { TaskState::Pending };
        let seq = job.counters.total + 1;
        let task = TaskRecord {
            size: o.size,
            etag: o.etag.clone(),
            last_modified: o.last_modified,
            state,
            finished_at: unchanged.then(now),
            ..TaskRecord::new(id, seq, o.key.clone())
        };
        tasks.insert((id, seq), encode_task(&task).as_slice())?;
        keys.insert((id, o.key.as_str()), seq)?;
        idx.insert((id, state.code(), seq), ())?;
        job.counters.total += 1;
        *job.counters.slot(state) += 1;
        added += 1;
    }
    Ok(added)
}

impl Store {
    /// Add a batch of planned objects and the listing cursor in one transaction.
    /// Keys already planned (a page listed again after a crash) are skipped.
    pub fn add_planned(&self, id: JobId, objects: &[PlannedObject], cursor: Option<&str>, done: bool) -> Result<u64> {
        let txn = self.begin_write()?;
        let added = {
            let Some(mut job) = load_job(&txn, id)? else { return Ok(0) };
            let before = job.state;
            let added = insert_planned(&txn, &mut job, objects)?;
            if let Some(c) = cursor {
                job.planning.cursor = Some(c.to_string());
            }
            // A following job's listing never ends: it keeps watching.
            job.planning.done |= done && !job.spec.follow;
            settle(&mut job);
            save_job(&txn, before, &mut job)?;
            added
        };
        self.commit(txn)?;
        Ok(added)
    }

    /// What a following job saw in a new listing (or an event): keys not seen
    /// before become Pending tasks, and a key whose etag changed since its task
    /// ended is Pending again. Returns how many tasks were queued.
    pub fn follow_planned(&self, id: JobId, objects: &[PlannedObject]) -> Result<u64> {
        let txn = self.begin_write()?;
        let queued = {
            let Some(mut job) = load_job(&txn, id)? else { return Ok(0) };
            if job.state.is_terminal() {
                return Ok(0);
            }
            let before = job.state;
            let mut new = Vec::new();
            let mut changed = 0;
            for o in objects {
                let seq = txn.open_table(TASK_KEYS)?.get((id, o.key.as_str()))?.map(|v| v.value());
                let Some(seq) = seq else {
                    new.push(o.clone());
                    continue;
                };
                let mut tasks = txn.open_table(TASKS)?;
                let Some(mut task) = tasks.get((id, seq))?.map(|v| decode_task(id, seq, v.value())).transpose()? else {
                    continue;
                };
                let ended = matches!(task.state, TaskState::Succeeded | TaskState::Failed | TaskState::Skipped);
                if !ended || o.etag.is_none() || task.etag == o.etag {
                    continue;
                }
                let from = task.state;
                let had = task.error.is_some();
                task.state = TaskState::Pending;
                task.etag = o.etag.clone();
                task.size = o.size;
                task.last_modified = o.last_modified;
                task.error = None;
                task.finished_at = None;
                tasks.insert((id, seq), encode_task(&task).as_slice())?;
                drop(tasks);
                index_error(&mut txn.open_table(TASK_ERRORS)?, id, seq, had, false)?;
                move_state(&mut txn.open_table(TASK_STATE)?, id, seq, from, TaskState::Pending)?;
                job.counters.moved(from, TaskState::Pending);
                changed += 1;
            }
            let queued = changed + insert_planned(&txn, &mut job, &new)?;
            if queued > 0 {
                save_job(&txn, before, &mut job)?;
            }
            queued
        };
        self.commit(txn)?;
        Ok(queued)
    }

    /// Claim up to `n` pending tasks as the scheduler does (`jobs::claims`):
    /// read them, then record the claims as a group commit would. For tests.
    #[cfg(test)]
    pub fn claim(&self, id: JobId, n: usize) -> Result<Vec<TaskRecord>> {
        let mut tasks = self.pending(id, n, |_| false)?;
        let claims: Vec<TaskResult> = tasks.iter().map(|t| TaskResult::Claimed { job: id, seq: t.seq }).collect();
        self.commit_results(&claims)?;
        for t in &mut tasks {
            t.state = TaskState::Running;
            t.attempts += 1;
        }
        Ok(tasks)
    }

    /// Up to `n` pending tasks of a running job, in planning order, except
    /// those `held` (claimed in memory, their claim not yet recorded). A read
    /// transaction: unlike [`Store::claim`], it never waits for the writer,
    /// whose group commit may be in an fsync. The caller records the claims
    /// through the group commit ([`TaskResult::Claimed`]).
    pub fn pending(&self, id: JobId, n: usize, held: impl Fn(u64) -> bool) -> Result<Vec<TaskRecord>> {
        let txn = self.begin_read()?;
        let jobs = txn.open_table(JOBS)?;
        // Only the state: the whole record (its spec, counters, times) cost
        // a quarter of a claim, and claims come a few tasks at a time.
        #[derive(serde::Deserialize)]
        struct StateOnly {
            state: JobState,
        }
        let job: Option<StateOnly> = jobs.get(id)?.map(|v| decode("jobs", At::Job(id), v.value())).transpose()?;
        if job.is_none_or(|j| j.state != JobState::Running) || n == 0 {
            return Ok(vec![]);
        }
        let idx = txn.open_table(TASK_STATE)?;
        let tasks = txn.open_table(TASKS)?;
        let pending = TaskState::Pending.code();
        let mut out = Vec::with_capacity(n);
        for e in idx.range((id, pending, 0)..=(id, pending, u64::MAX))? {
            let seq = e?.0.value().2;
            if held(seq) {
                continue;
            }
            if let Some(v) = tasks.get((id, seq))? {
                out.push(decode_task(id, seq, v.value())?);
                if out.len() == n {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Group commit: record many claims and results, their jobs' counters
    /// and end states in one transaction. A claim counts only for a Pending
    /// task, a result only for a Running one (not a duplicate after a
    /// restart), so each counts once. Each task touched is read and written
    /// once, however many entries it has in the batch.
    /// Returns the jobs touched, as they are now.
    pub fn commit_results(&self, results: &[TaskResult]) -> Result<Vec<JobRecord>> {
        let txn = self.begin_write()?;
        let touched = {
            // Each job as loaded, with its state before this commit.
            let mut jobs: std::collections::BTreeMap<JobId, (JobState, JobRecord)> = Default::default();
            // Each task touched: its state when read, whether it held an error then, the
            // record as it becomes, and whether it changed.
            let mut records: std::collections::HashMap<(JobId, u64), (TaskState, bool, TaskRecord, bool)> =
                std::collections::HashMap::with_capacity(results.len());
            let mut tasks = txn.open_table(TASKS)?;
            let mut idx = txn.open_table(TASK_STATE)?;
            let mut errors = txn.open_table(TASK_ERRORS)?;
            for r in results {
                let (id, seq) = r.key();
                let (_, job) = match jobs.entry(id) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => match load_job(&txn, id)? {
                        Some(j) => e.insert((j.state, j)),
                        None => continue,
                    },
                };
                let (_, _, task, changed) = match records.entry((id, seq)) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let Some(task) = tasks.get((id, seq))?.map(|v| decode_task(id, seq, v.value())).transpose()?
                        else {
                            continue;
                        };
                        e.insert((task.state, task.error.is_some(), task, false))
                    }
                };
                match apply(job, task, r, now()) {
                    Applied::Ignored => {}
                    Applied::Moved { to, remember_etag } => {
                        if let Some(etag) = remember_etag {
                            txn.open_table(ETAGS)?
                                .insert((job.definition.as_str(), task.source_key.as_str()), etag.as_str())?;
                        }
                        *changed = true;
                        if to.is_finished() {
                            super::outbox::task_finished(&txn, job, task)?;
                        }
                    }
                }
            }
            for ((id, seq), (was, had_error, task, changed)) in &records {
                if task.state != *was {
                    move_state(&mut idx, *id, *seq, *was, task.state)?;
                }
                if *changed {
                    tasks.insert((*id, *seq), encode_task(task).as_slice())?;
                    index_error(&mut errors, *id, *seq, *had_error, task.error.is_some())?;
                }
            }
            drop((tasks, idx, errors));
            let mut touched = Vec::with_capacity(jobs.len());
            for (_, (before, mut job)) in jobs {
                settle(&mut job);
                save_job(&txn, before, &mut job)?;
                touched.push(job);
            }
            touched
        };
        self.commit(txn)?;
        Ok(touched)
    }

    /// At start-up: every task left Running by a crash is Pending again.
    pub fn requeue_running(&self) -> Result<u64> {
        let txn = self.begin_write()?;
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
                    let unchanged = job.state;
                    save_job(&txn, unchanged, &mut job)?;
                    moved += n;
                }
            }
        }
        self.commit(txn)?;
        Ok(moved)
    }

    /// Failed tasks back to Pending, and the job back to Running. Returns how
    /// many, or why nothing changed.
    pub fn retry_failed(&self, id: JobId) -> Result<std::result::Result<u64, RetryRefused>> {
        let txn = self.begin_write()?;
        let moved = {
            let Some(mut job) = load_job(&txn, id)? else { return Ok(Ok(0)) };
            let before = job.state;
            // Checked again here, in the same transaction as the change: a
            // cancel between the caller's check and now must not be undone.
            if !matches!(before, JobState::Failed | JobState::Succeeded | JobState::Running) {
                return Ok(Err(RetryRefused::State(before)));
            }
            let n = back_to_pending(&txn, &mut job, TaskState::Failed)?;
            if n > 0 {
                job.state = JobState::Running;
                job.error = None;
                job.finished_at = None;
                if let Err(full) = super::running::may_start(&txn, Some(before), &job)? {
                    return Ok(Err(RetryRefused::Quota(full)));
                }
                save_job(&txn, before, &mut job)?;
            }
            n
        };
        self.commit(txn)?;
        Ok(Ok(moved))
    }

    pub fn get_task(&self, id: JobId, seq: u64) -> Result<Option<TaskRecord>> {
        let txn = self.begin_read()?;
        let tasks = txn.open_table(TASKS)?;
        tasks.get((id, seq))?.map(|v| decode_task(id, seq, v.value())).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{planned, spec};

    #[test]
    fn claims_in_memory_are_recorded_by_the_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let job = store.create_job(spec(), None, JobState::Running).unwrap().unwrap().id;
        store.add_planned(job, &planned(&["a", "b", "c", "d"]), None, true).unwrap();

        // Reading pending tasks claims nothing in the store; `held` skips those claimed in memory.
        let got: Vec<u64> = store.pending(job, 2, |seq| seq == 1).unwrap().iter().map(|t| t.seq).collect();
        assert_eq!(got, vec![2, 3]);
        let c = store.get_job(job).unwrap().unwrap().counters;
        assert_eq!((c.pending, c.running), (4, 0));

        let ok = |seq| TaskResult::Succeeded {
            job,
            seq,
            outputs: vec![],
            bytes_in: 1,
            bytes_out: 1,
            duration_ms: 0,
            etag: None,
            result: None,
            worker: None,
        };
        let err = crate::model::TaskErrorRecord { kind: crate::runtime::TaskErrorKind::Io, message: "again".into() };
        store
            .commit_results(&[
                TaskResult::Claimed { job, seq: 1 },
                TaskResult::Claimed { job, seq: 2 },
                ok(1),
                TaskResult::Claimed { job, seq: 3 },
                TaskResult::Retry { job, seq: 3, error: err },
                // A result for a task never claimed, and a second claim, count for nothing.
                ok(4),
                TaskResult::Claimed { job, seq: 2 },
            ])
            .unwrap();
        let j = store.get_job(job).unwrap().unwrap();
        let c = j.counters;
        assert_eq!((c.pending, c.running, c.succeeded), (2, 1, 1), "{c:?}");
        assert_eq!(j.state, JobState::Running);
        let task = |seq| store.get_task(job, seq).unwrap().unwrap();
        assert_eq!((task(1).state, task(1).attempts), (TaskState::Succeeded, 1));
        assert_eq!((task(2).state, task(2).attempts), (TaskState::Running, 1));
        assert_eq!(
            (task(3).state, task(3).attempts),
            (TaskState::Pending, 1),
            "retried: pending again, one attempt made"
        );
        assert_eq!(store.pending(job, 10, |_| false).unwrap().iter().map(|t| t.seq).collect::<Vec<_>>(), vec![3, 4]);

        // After a crash the recorded claim is pending again.
        assert_eq!(store.requeue_running().unwrap(), 1);
        store.commit_results(&[2, 3, 4].map(|seq| TaskResult::Claimed { job, seq })).unwrap();
        let touched = store.commit_results(&[ok(2), ok(3), ok(4)]).unwrap();
        assert_eq!(touched[0].state, JobState::Succeeded);
        assert_eq!(touched[0].counters.succeeded, 4);
        assert_eq!(task(2).attempts, 2);
    }
}
