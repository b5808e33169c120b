//! Claims in memory, recorded by the group commit.
//!
//! A claim used to be a redb write transaction of its own. redb has one
//! writer, and the group commit holds it through its fsync (milliseconds on
//! a disk, and more while the page cache flushes the outputs just written),
//! so claims waited behind it and the workers ran dry. Now the scheduler reads
//! pending tasks in a read transaction, which never waits, marks them held
//! here, and sends a [`TaskResult::Claimed`] to the group commit, which makes
//! them Running in the store (and counts the attempt) with the next batch of
//! results. Crash semantics are as before: a claim not yet recorded leaves its
//! task Pending, a recorded one is Running and requeued at start-up.
//!
//! A held task is skipped by later reads until a snapshot is known to show
//! its claim: every commit has a generation number, each claim remembers the
//! generation that recorded it, and a read that starts after generation `g`
//! no longer needs the claims recorded in `g` or before.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{JobId, TaskRecord, TaskState};
use crate::store::{StoreError, TaskResult};

use super::Inner;

#[derive(Default)]
pub(crate) struct Claims {
    /// Commits done so far.
    generation: AtomicU64,
    /// Per job: held task seq → the generation that recorded its claim, once known.
    held: Mutex<HashMap<JobId, HashMap<u64, Option<u64>>>>,
}

impl Claims {
    /// After a successful group commit of `batch`: the claims in it are recorded.
    pub(crate) fn committed(&self, batch: &[TaskResult]) {
        let generation = self.generation.load(Ordering::Acquire) + 1;
        {
            let mut held = self.held.lock().unwrap();
            for r in batch {
                if let TaskResult::Claimed { job, seq } = r
                    && let Some(entry) = held.get_mut(job).and_then(|h| h.get_mut(seq))
                {
                    *entry = Some(generation);
                }
            }
        }
        self.generation.store(generation, Ordering::Release);
    }

    /// A job left the scheduler with nothing in flight: drop its recorded
    /// claims, which only a later claim of the same job would otherwise prune.
    /// A claim not yet recorded stays held: its task may still read as Pending.
    pub(crate) fn forget(&self, job: JobId) {
        let mut held = self.held.lock().unwrap();
        if let Some(h) = held.get_mut(&job) {
            h.retain(|_, recorded| recorded.is_none());
            if h.is_empty() {
                held.remove(&job);
            }
        }
    }
}

/// Claim up to `n` pending tasks of job `id`: Running, with one more attempt,
/// as the store will record them.
pub(super) async fn claim(inner: &Inner, id: JobId, n: usize) -> Result<Vec<TaskRecord>, StoreError> {
    let claims = &inner.claims;
    // Read the generation before the snapshot is taken: the snapshot shows at
    // least every claim recorded up to it, so those need not be held any more.
    let seen = claims.generation.load(Ordering::Acquire);
    let mut skip: Vec<u64> = {
        let mut held = claims.held.lock().unwrap();
        let job = held.entry(id).or_default();
        job.retain(|_, recorded| recorded.is_none_or(|g| g > seen));
        job.keys().copied().collect()
    };
    // Sorted, searched in halves: the held tasks lead the pending index, so
    // each claim tests every one of them (hashing each with SipHash cost more).
    skip.sort_unstable();
    let mut tasks = inner.store.call(move |s| s.pending(id, n, |seq| skip.binary_search(&seq).is_ok())).await?;
    {
        let mut held = claims.held.lock().unwrap();
        let job = held.entry(id).or_default();
        for t in &mut tasks {
            job.insert(t.seq, None);
            t.state = TaskState::Running;
            t.attempts += 1;
        }
        if job.is_empty() {
            held.remove(&id);
        }
    }
    for t in &tasks {
        super::send_result(inner, TaskResult::Claimed { job: id, seq: t.seq });
    }
    Ok(tasks)
}
