//! What a task result does to its task and its job, as a pure function over
//! the records: the state a result applies to, the task's new state and
//! fields, the job's counters, and fast-fail. The store reads the records,
//! calls [`apply`] and writes them back in one transaction; nothing here
//! touches redb, so the rules are tested on their own (below), and the
//! coordinator of a cluster applies the same ones.
//!
//! Exactly-once counting rests on one rule: a result applies only to a task
//! in the state it expects (a claim to a Pending task, the end of an attempt
//! to a Running one), so a result replayed, or one that arrives after a
//! restart re-queued its task, changes nothing.

use crate::model::{JobId, JobRecord, JobState, TaskErrorRecord, TaskRecord, TaskState};

/// What the group commit records: a claim, or the end of one attempt at a task.
#[derive(Debug, Clone)]
pub enum TaskResult {
    /// The scheduler claimed the task (in memory, see [`Store::pending`]):
    /// it becomes Running and its attempts count one more.
    Claimed {
        job: JobId,
        seq: u64,
    },
    /// A claimed task given back unstarted (its job stopped while it waited
    /// for a worker): Pending again, and the attempt is not counted.
    Released {
        job: JobId,
        seq: u64,
    },
    /// `etag`: of the source as read, remembered for `skip_unchanged`.
    Succeeded {
        job: JobId,
        seq: u64,
        outputs: Vec<String>,
        bytes_in: u64,
        bytes_out: u64,
        duration_ms: u64,
        etag: Option<String>,
        /// What a 0.2.0 plugin returned from `process`.
        result: Option<serde_json::Value>,
        /// The cluster worker that ran it (`None`: this daemon).
        worker: Option<String>,
    },
    /// The source is unchanged since the last successful run of the same job definition.
    Skipped {
        job: JobId,
        seq: u64,
        worker: Option<String>,
    },
    Failed {
        job: JobId,
        seq: u64,
        error: TaskErrorRecord,
        duration_ms: u64,
        bytes_in: u64,
        worker: Option<String>,
    },
    /// A transient failure: back to Pending for another attempt.
    Retry {
        job: JobId,
        seq: u64,
        error: TaskErrorRecord,
    },
}

impl TaskResult {
    /// The task it is about: (job, seq).
    pub fn key(&self) -> (JobId, u64) {
        match self {
            TaskResult::Claimed { job, seq }
            | TaskResult::Released { job, seq }
            | TaskResult::Succeeded { job, seq, .. }
            | TaskResult::Failed { job, seq, .. }
            | TaskResult::Retry { job, seq, .. }
            | TaskResult::Skipped { job, seq, .. } => (*job, *seq),
        }
    }
}

/// What [`apply`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The task was not in the state the result applies to: nothing changed.
    Ignored,
    /// The task moved to `to` (possibly the state it was in: a retry, Pending
    /// again). `remember_etag`: the source's etag, for a `skip_unchanged` job.
    Moved { to: TaskState, remember_etag: Option<String> },
}

/// Apply `result` to `task` of `job` at time `at` (Unix seconds).
pub fn apply(job: &mut JobRecord, task: &mut TaskRecord, result: &TaskResult, at: i64) -> Applied {
    let from = task.state;
    let expects = if matches!(result, TaskResult::Claimed { .. }) { TaskState::Pending } else { TaskState::Running };
    if from != expects {
        return Applied::Ignored;
    }
    let mut remember_etag = None;
    let to = match result {
        TaskResult::Claimed { .. } => {
            task.attempts += 1;
            TaskState::Running
        }
        TaskResult::Released { .. } => {
            task.attempts = task.attempts.saturating_sub(1);
            TaskState::Pending
        }
        TaskResult::Succeeded { outputs, bytes_in, bytes_out, duration_ms, etag, result, worker, .. } => {
            task.worker = worker.clone();
            if let Some(etag) = etag {
                if job.spec.skip_unchanged {
                    remember_etag = Some(etag.clone());
                }
                task.etag = Some(etag.clone());
            }
            task.outputs = outputs.clone();
            task.result = result.clone();
            task.bytes_in = *bytes_in;
            task.bytes_out = *bytes_out;
            task.duration_ms = Some(*duration_ms);
            task.error = None;
            job.counters.bytes_in += bytes_in;
            job.counters.bytes_out += bytes_out;
            TaskState::Succeeded
        }
        TaskResult::Failed { error, duration_ms, bytes_in, worker, .. } => {
            task.worker = worker.clone();
            task.error = Some(error.clone());
            task.duration_ms = Some(*duration_ms);
            task.bytes_in = *bytes_in;
            job.counters.bytes_in += bytes_in;
            if job.spec.fast_fail && job.state == JobState::Running {
                job.state = JobState::Failed;
                job.error =
                    Some(format!("fast-fail: task {} (`{}`) failed: {}", task.seq, task.source_key, error.message));
                job.finished_at = Some(at);
            }
            TaskState::Failed
        }
        TaskResult::Retry { error, .. } => {
            task.error = Some(error.clone());
            TaskState::Pending
        }
        TaskResult::Skipped { worker, .. } => {
            task.worker = worker.clone();
            TaskState::Skipped
        }
    };
    if to.is_finished() {
        task.finished_at = Some(at);
    }
    task.state = to;
    job.counters.moved(from, to);
    Applied::Moved { to, remember_etag }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Counters, JobSpec, Planning};
    use crate::runtime::TaskErrorKind;

    fn job(fast_fail: bool, skip_unchanged: bool, tasks: u64) -> JobRecord {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "input": {"bucket": "in"},
            "style": "copy",
            "output": {"bucket": "out", "template": "o/{key}"},
            "fast_fail": fast_fail,
            "skip_unchanged": skip_unchanged,
        }))
        .unwrap();
        JobRecord {
            id: 1,
            definition: "d".into(),
            tenant: None,
            spec,
            state: JobState::Running,
            counters: Counters { total: tasks, pending: tasks, ..Counters::default() },
            planning: Planning::default(),
            error: None,
            created_at: 0,
            updated_at: 0,
            finished_at: None,
        }
    }

    fn task(seq: u64) -> TaskRecord {
        TaskRecord { size: Some(10), ..TaskRecord::new(1, seq, format!("k{seq}")) }
    }

    fn succeeded(seq: u64) -> TaskResult {
        TaskResult::Succeeded {
            job: 1,
            seq,
            outputs: vec![format!("o/k{seq}")],
            bytes_in: 10,
            bytes_out: 7,
            duration_ms: 3,
            etag: Some("e".into()),
            result: None,
            worker: None,
        }
    }

    fn error() -> TaskErrorRecord {
        TaskErrorRecord::new(TaskErrorKind::Io, "connection reset")
    }

    #[test]
    fn a_claim_then_a_success_count_once_however_often_they_arrive() {
        let (mut j, mut t) = (job(false, false, 1), task(1));
        let claim = TaskResult::Claimed { job: 1, seq: 1 };
        assert_eq!(apply(&mut j, &mut t, &claim, 100), Applied::Moved { to: TaskState::Running, remember_etag: None });
        assert_eq!(apply(&mut j, &mut t, &claim, 100), Applied::Ignored, "a second claim of a running task");
        assert_eq!((t.attempts, j.counters.pending, j.counters.running), (1, 0, 1));
        let done = succeeded(1);
        assert!(matches!(apply(&mut j, &mut t, &done, 101), Applied::Moved { to: TaskState::Succeeded, .. }));
        assert_eq!(apply(&mut j, &mut t, &done, 102), Applied::Ignored, "a replayed result");
        assert_eq!(apply(&mut j, &mut t, &claim, 103), Applied::Ignored, "a stale claim of a finished task");
        assert_eq!((j.counters.running, j.counters.succeeded), (0, 1));
        assert_eq!((j.counters.bytes_in, j.counters.bytes_out), (10, 7), "bytes counted once");
        assert_eq!(
            (t.outputs.as_slice(), t.finished_at, t.etag.as_deref()),
            (&["o/k1".to_string()][..], Some(101), Some("e"))
        );
    }

    #[test]
    fn the_worker_that_ran_the_last_attempt_is_recorded() {
        let (mut j, mut t) = (job(false, false, 1), task(1));
        let claim = TaskResult::Claimed { job: 1, seq: 1 };
        apply(&mut j, &mut t, &claim, 100);
        let failed = TaskResult::Failed {
            job: 1,
            seq: 1,
            error: error(),
            duration_ms: 1,
            bytes_in: 0,
            worker: Some("w1".into()),
        };
        apply(&mut j, &mut t, &failed, 101);
        assert_eq!(t.worker.as_deref(), Some("w1"));
        // retry-failed, and the next attempt runs on the coordinator itself.
        t.state = TaskState::Running;
        j.counters.moved(TaskState::Failed, TaskState::Running);
        apply(&mut j, &mut t, &succeeded(1), 102);
        assert_eq!(t.worker, None);
    }

    #[test]
    fn a_result_for_a_task_not_running_changes_nothing() {
        // A restart re-queued the task (Pending) before the old attempt's result arrived.
        let (mut j, mut t) = (job(false, false, 1), task(1));
        let before = (j.clone(), t.clone());
        for r in [
            succeeded(1),
            TaskResult::Failed { job: 1, seq: 1, error: error(), duration_ms: 1, bytes_in: 5, worker: None },
        ] {
            assert_eq!(apply(&mut j, &mut t, &r, 100), Applied::Ignored);
        }
        assert_eq!((j, t), before);
    }

    #[test]
    fn retry_and_release_go_back_to_pending_and_only_a_release_uncounts_the_attempt() {
        let (mut j, mut t) = (job(false, false, 2), task(1));
        apply(&mut j, &mut t, &TaskResult::Claimed { job: 1, seq: 1 }, 0);
        let retry = TaskResult::Retry { job: 1, seq: 1, error: error() };
        assert_eq!(apply(&mut j, &mut t, &retry, 1), Applied::Moved { to: TaskState::Pending, remember_etag: None });
        assert_eq!((t.attempts, t.error.as_ref().map(|e| e.kind), t.finished_at), (1, Some(TaskErrorKind::Io), None));
        apply(&mut j, &mut t, &TaskResult::Claimed { job: 1, seq: 1 }, 2);
        apply(&mut j, &mut t, &TaskResult::Released { job: 1, seq: 1 }, 3);
        assert_eq!((t.state, t.attempts), (TaskState::Pending, 1), "the unstarted attempt is not counted");
        assert_eq!((j.counters.pending, j.counters.running), (2, 0));
        // A success clears the error of an earlier attempt.
        apply(&mut j, &mut t, &TaskResult::Claimed { job: 1, seq: 1 }, 4);
        apply(&mut j, &mut t, &succeeded(1), 5);
        assert!(t.error.is_none());
    }

    #[test]
    fn fast_fail_fails_the_job_on_the_first_failure_naming_the_task() {
        let mut j = job(true, false, 2);
        let (mut a, mut b) = (task(1), task(2));
        for t in [&mut a, &mut b] {
            apply(&mut j, t, &TaskResult::Claimed { job: 1, seq: t.seq }, 0);
        }
        let failed = TaskResult::Failed { job: 1, seq: 2, error: error(), duration_ms: 1, bytes_in: 4, worker: None };
        apply(&mut j, &mut b, &failed, 9);
        assert_eq!((j.state, j.finished_at), (JobState::Failed, Some(9)));
        assert!(
            j.error.as_deref().is_some_and(|e| e.contains("task 2 (`k2`)") && e.contains("connection reset")),
            "{j:?}"
        );
        // The other task's result still counts, and does not rewrite the job's error.
        apply(&mut j, &mut a, &succeeded(1), 10);
        assert_eq!((j.counters.failed, j.counters.succeeded, j.counters.bytes_in), (1, 1, 14));
        assert!(j.error.as_deref().unwrap().contains("task 2"));
    }

    #[test]
    fn the_etag_is_remembered_only_for_skip_unchanged_jobs() {
        for skip in [false, true] {
            let (mut j, mut t) = (job(false, skip, 1), task(1));
            apply(&mut j, &mut t, &TaskResult::Claimed { job: 1, seq: 1 }, 0);
            let applied = apply(&mut j, &mut t, &succeeded(1), 1);
            let remembered = if skip { Some("e".to_string()) } else { None };
            assert_eq!(applied, Applied::Moved { to: TaskState::Succeeded, remember_etag: remembered });
        }
        let (mut j, mut t) = (job(false, true, 1), task(1));
        apply(&mut j, &mut t, &TaskResult::Claimed { job: 1, seq: 1 }, 0);
        assert_eq!(
            apply(&mut j, &mut t, &TaskResult::Skipped { job: 1, seq: 1, worker: None }, 1),
            Applied::Moved { to: TaskState::Skipped, remember_etag: None }
        );
        assert_eq!((j.counters.skipped, t.finished_at), (1, Some(1)));
    }
}
