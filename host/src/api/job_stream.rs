//! One job's live changes, for `GET /v1/jobs/{id}/events`: the job as it is,
//! then each change (a burst coalesced into its latest), ending after a
//! terminal state, or with [`Change::Deleted`] when the job is deleted.
//!
//! Changes come from the daemon's broadcast of every job update. A stream
//! that falls behind it, or hears nothing for [`RECHECK`], reads its job
//! afresh, so a change it was not told of (or a deletion) cannot leave it
//! open for ever.

use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::jobs::JobUpdate;
use crate::model::{JobId, JobRecord};
use crate::store::Store;

/// How long a quiet stream waits before it reads its job afresh.
pub const RECHECK: Duration = Duration::from_secs(5);

/// What the stream sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The job as it is now; `new_state` when its state differs from the last one sent.
    Job { job: Box<JobRecord>, new_state: bool },
    /// The job was deleted: always the last item.
    Deleted(JobId),
}

/// What the broadcast said next.
enum Heard {
    Update(JobUpdate),
    /// Too far behind the broadcast, or nothing heard for a while: read the job.
    Reread,
    Closed,
}

/// Where a stream is.
struct Follow {
    id: JobId,
    rx: Receiver<JobUpdate>,
    store: Store,
    recheck: Duration,
    first: Option<JobRecord>,
    /// The last job sent.
    sent: Option<JobRecord>,
    ended: bool,
}

/// `first` (the job as read after subscribing to `rx`), then its changes.
pub fn follow(
    first: JobRecord,
    rx: Receiver<JobUpdate>,
    store: Store,
    recheck: Duration,
) -> impl Stream<Item = Change> {
    let f = Follow { id: first.id, rx, store, recheck, first: Some(first), sent: None, ended: false };
    futures::stream::unfold(f, |mut f| async move {
        if f.ended {
            return None;
        }
        let job = match f.first.take() {
            Some(job) => job,
            None => match f.next().await? {
                Some(job) => job,
                None => {
                    f.ended = true;
                    return Some((Change::Deleted(f.id), f));
                }
            },
        };
        let new_state = f.sent.as_ref().is_none_or(|s| s.state != job.state);
        f.ended = job.state.is_terminal();
        f.sent = Some(job.clone());
        Some((Change::Job { job: Box::new(job), new_state }, f))
    })
}

impl Follow {
    /// The job's next version (`Some(None)`: it was deleted; `None`: the broadcast closed).
    async fn next(&mut self) -> Option<Option<JobRecord>> {
        let mut latest: Option<JobRecord> = None;
        loop {
            let heard = if latest.is_some() {
                match self.rx.try_recv() {
                    Ok(u) => Heard::Update(u),
                    Err(TryRecvError::Lagged(_)) => Heard::Reread,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => return Some(latest),
                }
            } else {
                match tokio::time::timeout(self.recheck, self.rx.recv()).await {
                    Ok(Ok(u)) => Heard::Update(u),
                    Ok(Err(RecvError::Lagged(_))) | Err(_) => Heard::Reread,
                    Ok(Err(RecvError::Closed)) => Heard::Closed,
                }
            };
            match heard {
                Heard::Update(JobUpdate::Changed(j)) if j.id == self.id => latest = Some(*j),
                Heard::Update(JobUpdate::Deleted(id)) if id == self.id => return Some(None),
                Heard::Update(_) => {}
                Heard::Reread => {
                    let id = self.id;
                    match self.store.call(move |s| s.get_job(id)).await {
                        Ok(None) => return Some(None),
                        Ok(Some(j)) if Some(&j) != self.sent.as_ref() => latest = Some(j),
                        Ok(Some(_)) => {}
                        Err(e) => tracing::warn!(job = id, error = %e, "event stream: reading the job"),
                    }
                }
                Heard::Closed => return latest.map(Some),
            }
            if latest.as_ref().is_some_and(|j| j.state.is_terminal()) {
                return Some(latest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use tokio::sync::broadcast;

    use super::*;
    use crate::model::JobState;

    /// A Running job in a fresh store, and its stream, past its first event.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        job: JobRecord,
        tx: broadcast::Sender<JobUpdate>,
        stream: std::pin::Pin<Box<dyn Stream<Item = Change> + Send>>,
    }

    async fn fixture(capacity: usize, recheck: Duration) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("k.redb")).unwrap();
        let spec = serde_json::from_value(serde_json::json!({"input": {"bucket": "in"}, "style": "copy", "output": {"bucket": "out", "template": "o/{key}"}})).unwrap();
        let job = store.create_job(spec, None, JobState::Running).unwrap().unwrap();
        let (tx, rx) = broadcast::channel(capacity);
        let mut stream = Box::pin(follow(job.clone(), rx, store.clone(), recheck));
        let first = stream.next().await.unwrap();
        assert!(matches!(&first, Change::Job { job, new_state: true } if job.state == JobState::Running), "{first:?}");
        Fixture { _dir: dir, store, job, tx, stream }
    }

    fn cancel(store: &Store, id: JobId) {
        store
            .update_job::<crate::store::RunningJobsFull>(id, |j| {
                j.state = JobState::Cancelled;
                Ok(())
            })
            .unwrap()
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_deleted_job_ends_its_stream_with_a_deleted_event() {
        let mut f = fixture(16, Duration::from_secs(3600)).await;
        // Another job's deletion is not this one's.
        f.tx.send(JobUpdate::Deleted(f.job.id + 1)).unwrap();
        f.tx.send(JobUpdate::Deleted(f.job.id)).unwrap();
        assert_eq!(f.stream.next().await, Some(Change::Deleted(f.job.id)));
        assert_eq!(f.stream.next().await, None);
    }

    #[tokio::test]
    async fn a_stream_behind_the_broadcast_finds_its_job_gone() {
        let mut f = fixture(2, Duration::from_secs(3600)).await;
        for i in 0..5 {
            f.tx.send(JobUpdate::Deleted(f.job.id + 10 + i)).unwrap();
        }
        cancel(&f.store, f.job.id);
        f.store.delete_job(f.job.id).unwrap();
        assert_eq!(f.stream.next().await, Some(Change::Deleted(f.job.id)), "lagged: the job is read afresh");
        assert_eq!(f.stream.next().await, None);
    }

    #[tokio::test]
    async fn a_quiet_stream_sees_a_change_it_was_not_told_of() {
        let mut f = fixture(16, Duration::from_millis(50)).await;
        cancel(&f.store, f.job.id);
        let last = f.stream.next().await.unwrap();
        assert!(matches!(&last, Change::Job { job, new_state: true } if job.state == JobState::Cancelled), "{last:?}");
        assert_eq!(f.stream.next().await, None, "a terminal state ends the stream");
    }
}
