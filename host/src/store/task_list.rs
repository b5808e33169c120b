//! Pages of a job's tasks, with filters.
//!
//! Each filter reads an index where one fits: `state` the state index,
//! `prefix` the key index (in key order), `error` the index of tasks that
//! hold an error. What no index answers (a substring of the key, of an
//! error's message) is checked row by row, and a page examines at most
//! [`MAX_EXAMINED`] rows: it may come back short, or empty, with a `next`
//! cursor to go on from. So a page costs at most its budget, however large
//! the job and however rare the match.

use redb::ReadOnlyTable;

use super::{Result, Store, TASK_ERRORS, TASK_KEYS, TASK_STATE, TASKS, decode_task, task_codec};
use crate::model::{JobId, TaskRecord, TaskState};

/// Rows one page may examine: about 10 ms of reading and decoding.
pub const MAX_EXAMINED: usize = 10_000;

/// Filters of a task listing.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub state: Option<TaskState>,
    /// Source keys starting with this (served from the key index, in key order).
    pub prefix: Option<String>,
    /// Source keys containing this (checked row by row, within the page's budget).
    pub contains: Option<String>,
    /// Error kind or message containing this (the error index, then row by row).
    pub error: Option<String>,
}

impl TaskFilter {
    /// Whether a task with this source key may pass (the key's filters only).
    fn keeps_key(&self, key: &str) -> bool {
        self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && self.contains.as_deref().is_none_or(|c| key.contains(c))
    }

    fn keeps(&self, t: &TaskRecord) -> bool {
        self.state.is_none_or(|s| t.state == s)
            && self.keeps_key(&t.source_key)
            && self.error.as_deref().is_none_or(|needle| {
                t.error.as_ref().is_some_and(|e| e.kind.as_str().contains(needle) || e.message.contains(needle))
            })
    }
}

/// A page being filled: rows are offered in order, each with the cursor that
/// resumes right after it.
struct Page<'f> {
    filter: &'f TaskFilter,
    limit: usize,
    items: Vec<TaskRecord>,
    examined: usize,
    /// The cursor after the last row examined.
    last: Option<String>,
    next: Option<String>,
}

impl Page<'_> {
    /// Offer a row of task `seq` as stored; false when the page is done
    /// (full, or its budget spent). A row whose key the filter rejects is
    /// not decoded.
    fn offer(&mut self, id: JobId, seq: u64, bytes: &[u8], after: impl FnOnce() -> String) -> Result<bool> {
        if self.items.len() == self.limit || self.examined == MAX_EXAMINED {
            // Full or out of budget: resume after the last row examined, which may be one skipped.
            self.next = self.last.take();
            return Ok(false);
        }
        self.examined += 1;
        if task_codec::source_key(bytes).is_none_or(|key| self.filter.keeps_key(key)) {
            let task = decode_task(id, seq, bytes)?;
            if self.filter.keeps(&task) {
                self.items.push(task);
            }
        }
        self.last = Some(after());
        Ok(true)
    }

    fn done(self) -> (Vec<TaskRecord>, Option<String>) {
        (self.items, self.next)
    }
}

/// Offer task `seq` of job `id` to `page`, if it exists.
fn offer_at(
    page: &mut Page,
    tasks: &ReadOnlyTable<(u64, u64), &[u8]>,
    id: JobId,
    seq: u64,
    after: impl FnOnce() -> String,
) -> Result<bool> {
    match tasks.get((id, seq))? {
        Some(v) => page.offer(id, seq, v.value(), after),
        None => Ok(true),
    }
}

impl Store {
    /// A page of a job's tasks. The cursor is opaque to clients: `s<seq>` for
    /// listings in planning order, `k<key>` for prefix listings in key order.
    /// A page examines at most [`MAX_EXAMINED`] rows; a short page with a
    /// `next` cursor means "no more matches among the rows examined so far".
    pub fn list_tasks(
        &self,
        id: JobId,
        filter: &TaskFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<TaskRecord>, Option<String>)> {
        let txn = self.begin_read()?;
        let tasks = txn.open_table(TASKS)?;
        let mut page = Page { filter, limit, items: Vec::new(), examined: 0, last: None, next: None };
        let after_seq = || cursor.and_then(|c| c.strip_prefix('s')).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);

        // Errors first: few tasks hold one, and those few are indexed.
        if filter.error.is_some() {
            let errors = txn.open_table(TASK_ERRORS)?;
            for e in errors.range((id, after_seq() + 1)..=(id, u64::MAX))? {
                let seq = e?.0.value().1;
                if !offer_at(&mut page, &tasks, id, seq, || format!("s{seq}"))? {
                    break;
                }
            }
            return Ok(page.done());
        }
        if let (Some(prefix), None) = (&filter.prefix, filter.state) {
            let keys = txn.open_table(TASK_KEYS)?;
            let start = cursor.and_then(|c| c.strip_prefix('k')).map_or(prefix.clone(), |k| format!("{k}\0"));
            for e in keys.range((id, start.as_str())..(id + 1, ""))? {
                let (k, seq) = e?;
                let key = k.value().1;
                if !key.starts_with(prefix.as_str()) {
                    break;
                }
                if !offer_at(&mut page, &tasks, id, seq.value(), || format!("k{key}"))? {
                    break;
                }
            }
            return Ok(page.done());
        }
        if let Some(state) = filter.state {
            let idx = txn.open_table(TASK_STATE)?;
            for e in idx.range((id, state.code(), after_seq() + 1)..=(id, state.code(), u64::MAX))? {
                let seq = e?.0.value().2;
                if !offer_at(&mut page, &tasks, id, seq, || format!("s{seq}"))? {
                    break;
                }
            }
            return Ok(page.done());
        }
        for e in tasks.range((id, after_seq() + 1)..=(id, u64::MAX))? {
            let (k, v) = e?;
            let seq = k.value().1;
            if !page.offer(id, seq, v.value(), || format!("s{seq}"))? {
                break;
            }
        }
        Ok(page.done())
    }
}

#[cfg(test)]
mod tests {
    use redb::ReadableTableMetadata;

    use super::*;
    use crate::model::{JobState, TaskErrorRecord};
    use crate::runtime::TaskErrorKind;
    use crate::store::TaskResult;
    use crate::store::tests::{planned, spec};

    /// Every page of a listing, following `next`.
    fn all(store: &Store, job: JobId, filter: &TaskFilter, limit: usize) -> (Vec<String>, usize) {
        let (mut keys, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
        loop {
            let (items, next) = store.list_tasks(job, filter, cursor.as_deref(), limit).unwrap();
            pages += 1;
            keys.extend(items.into_iter().map(|t| t.source_key));
            match next {
                Some(n) => cursor = Some(n),
                None => return (keys, pages),
            }
        }
    }

    #[test]
    fn a_rare_substring_costs_a_budget_per_page_and_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let job = store.create_job(spec(), None, JobState::Running).unwrap().unwrap().id;
        let names: Vec<String> = (0..MAX_EXAMINED + 500).map(|i| format!("d/{i:06}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        store.add_planned(job, &planned(&refs), None, true).unwrap();
        let rare = format!("{:06}", MAX_EXAMINED + 400);
        let filter = TaskFilter { contains: Some(rare.clone()), ..Default::default() };
        // The first page spends its budget without a match, and says where to go on.
        let (items, next) = store.list_tasks(job, &filter, None, 50).unwrap();
        assert!(items.is_empty());
        assert_eq!(next.as_deref(), Some(format!("s{MAX_EXAMINED}").as_str()));
        assert_eq!(all(&store, job, &filter, 50), (vec![format!("d/{rare}")], 2));
        // The same through the key index, in key order.
        let filter = TaskFilter { prefix: Some("d/".into()), contains: Some(rare.clone()), ..Default::default() };
        assert_eq!(all(&store, job, &filter, 50), (vec![format!("d/{rare}")], 2));
        // Pages without a scan filter are exact: full pages, every task once.
        let (keys, pages) = all(&store, job, &TaskFilter::default(), 1000);
        assert_eq!((keys.len(), pages), (MAX_EXAMINED + 500, 11));
    }

    #[test]
    fn the_error_filter_reads_only_tasks_with_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let job = store.create_job(spec(), None, JobState::Running).unwrap().unwrap().id;
        store.add_planned(job, &planned(&["a", "b", "c", "d"]), None, true).unwrap();
        let claim = |seq| TaskResult::Claimed { job, seq };
        let error = |m: &str| TaskErrorRecord { kind: TaskErrorKind::Io, message: m.into() };
        store.commit_results(&[claim(1), claim(2), claim(3), claim(4)]).unwrap();
        store
            .commit_results(&[
                TaskResult::Failed {
                    job,
                    seq: 2,
                    error: error("disk on fire"),
                    duration_ms: 1,
                    bytes_in: 0,
                    worker: None,
                },
                TaskResult::Retry { job, seq: 3, error: error("timed out") },
                TaskResult::Failed {
                    job,
                    seq: 4,
                    error: error("timed out again"),
                    duration_ms: 1,
                    bytes_in: 0,
                    worker: None,
                },
            ])
            .unwrap();
        let errors =
            |needle: &str| all(&store, job, &TaskFilter { error: Some(needle.into()), ..Default::default() }, 10).0;
        assert_eq!(errors("timed out"), vec!["c", "d"]);
        assert_eq!(errors("io"), vec!["b", "c", "d"]);
        let failed_io = TaskFilter { error: Some("io".into()), state: Some(TaskState::Failed), ..Default::default() };
        assert_eq!(all(&store, job, &failed_io, 10).0, vec!["b", "d"]);
        // The retried task succeeds: its error is gone from the index; retry-failed clears the rest.
        store.commit_results(&[claim(3)]).unwrap();
        store
            .commit_results(&[TaskResult::Succeeded {
                job,
                seq: 3,
                outputs: vec![],
                bytes_in: 1,
                bytes_out: 1,
                duration_ms: 1,
                etag: None,
                result: None,
                worker: None,
            }])
            .unwrap();
        assert_eq!(errors("timed out"), vec!["d"]);
        store.commit_results(&[claim(1)]).unwrap();
        let fail_1 =
            || TaskResult::Failed { job, seq: 1, error: error("x"), duration_ms: 1, bytes_in: 0, worker: None };
        store.commit_results(&[fail_1()]).unwrap();
        store.retry_failed(job).unwrap().unwrap();
        assert!(errors("").is_empty());
        store.commit_results(&[claim(1)]).unwrap();
        store.commit_results(&[fail_1()]).unwrap();
        let indexed = |store: &Store| store.begin_read().unwrap().open_table(TASK_ERRORS).unwrap().len().unwrap();
        assert_eq!(indexed(&store), 1);

        // A store of schema 3 had no error index: opening it builds one.
        let txn = store.begin_write().unwrap();
        txn.delete_table(TASK_ERRORS).unwrap();
        txn.commit().unwrap();
        store.set_schema_version_for_tests(3).unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        assert_eq!(indexed(&store), 1);
        assert_eq!(all(&store, job, &TaskFilter { error: Some("x".into()), ..Default::default() }, 10).0, vec!["a"]);

        // Deleting the job takes its index rows with it.
        assert!(store.delete_job(job).unwrap());
        assert_eq!(indexed(&store), 0);
    }
}
