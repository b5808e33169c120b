//! The daemon's background loops behind one small trait, run by one runner,
//! so that what each is doing shows in one place (`GET /v1/status`, the
//! admin's): waiting or working, rounds done, time spent working, its last
//! error. A loop says how it waits for work and what one round of work is;
//! the runner does the bookkeeping around both.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// A loop that runs for the daemon's lifetime.
pub trait Background: Send + 'static {
    /// Its name in the status.
    fn name(&self) -> String;
    /// Wait until there may be work; `false` ends the loop (its input is gone).
    fn wait(&mut self) -> impl Future<Output = bool> + Send;
    /// One round of work. An error is shown in the status; the loop goes on.
    fn round(&mut self) -> impl Future<Output = Result<(), String>> + Send;
    /// Whether the loop lasts as long as the daemon (the default), or is one
    /// of many short ones (a job's planner) whose status goes when it stops.
    fn lasting(&self) -> bool {
        true
    }
}

/// What a loop is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LoopState {
    Waiting,
    Working,
    Stopped,
}

/// A loop as `GET /v1/status` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoopStatus {
    pub name: String,
    pub state: LoopState,
    /// Rounds of work done.
    pub rounds: u64,
    /// Rounds that ended in an error.
    pub errors: u64,
    /// Time spent working, in milliseconds, all rounds together.
    pub busy_ms: u64,
    /// How long the round now under way has run, in milliseconds (0 while waiting).
    pub working_for_ms: u64,
    /// The last error, if any round failed.
    pub last_error: Option<String>,
    #[serde(skip)]
    since: Option<Instant>,
}

/// The loops of one daemon.
#[derive(Clone, Default)]
pub struct Loops {
    all: Arc<Mutex<Vec<Arc<Mutex<LoopStatus>>>>>,
}

impl Loops {
    /// Run `work` on the executor, its status kept here.
    pub fn spawn<B: Background>(&self, mut work: B) -> tokio::task::JoinHandle<()> {
        let status = Arc::new(Mutex::new(LoopStatus {
            name: work.name(),
            state: LoopState::Waiting,
            rounds: 0,
            errors: 0,
            busy_ms: 0,
            working_for_ms: 0,
            last_error: None,
            since: None,
        }));
        self.all.lock().unwrap_or_else(|e| e.into_inner()).push(status.clone());
        let (all, lasting, kept) = (self.all.clone(), work.lasting(), status.clone());
        let set = move |f: &dyn Fn(&mut LoopStatus)| f(&mut status.lock().unwrap_or_else(|e| e.into_inner()));
        tokio::spawn(async move {
            while work.wait().await {
                let started = Instant::now();
                set(&|s| {
                    s.state = LoopState::Working;
                    s.since = Some(started);
                });
                let result = work.round().await;
                let took = started.elapsed();
                set(&|s| {
                    s.state = LoopState::Waiting;
                    s.since = None;
                    s.rounds += 1;
                    s.busy_ms += took.as_millis() as u64;
                    if let Err(e) = &result {
                        s.errors += 1;
                        s.last_error = Some(crate::runtime::bounded(e, 1024));
                    }
                });
            }
            set(&|s| s.state = LoopState::Stopped);
            if !lasting {
                all.lock().unwrap_or_else(|e| e.into_inner()).retain(|s| !Arc::ptr_eq(s, &kept));
            }
        })
    }

    /// Every loop's status, in the order they started.
    pub fn status(&self) -> Vec<LoopStatus> {
        let all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .map(|s| {
                let mut s = s.lock().unwrap_or_else(|e| e.into_inner()).clone();
                s.working_for_ms = s.since.map_or(0, |t| t.elapsed().as_millis() as u64);
                s
            })
            .collect()
    }
}

/// Wait for `notify`, or at most `period`: loops that also poll.
pub async fn woken_or_every(notify: &tokio::sync::Notify, period: Duration) {
    let _ = tokio::time::timeout(period, notify.notified()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Works on each number sent; fails on odd ones; ends when the channel closes.
    struct Numbers(tokio::sync::mpsc::UnboundedReceiver<u32>, Option<u32>);

    impl Background for Numbers {
        fn name(&self) -> String {
            "numbers".into()
        }
        async fn wait(&mut self) -> bool {
            self.1 = self.0.recv().await;
            self.1.is_some()
        }
        async fn round(&mut self) -> Result<(), String> {
            match self.1 {
                Some(n) if n % 2 == 1 => Err(format!("{n} is odd")),
                _ => Ok(()),
            }
        }
    }

    #[tokio::test]
    async fn the_runner_counts_rounds_and_errors_and_sees_a_loop_stop() {
        let loops = Loops::default();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let handle = loops.spawn(Numbers(rx, None));
        for n in [2, 3, 4, 5] {
            tx.send(n).unwrap();
        }
        drop(tx);
        handle.await.unwrap();
        let [s] = loops.status().try_into().unwrap();
        assert_eq!((s.name.as_str(), s.state, s.rounds, s.errors), ("numbers", LoopState::Stopped, 4, 2));
        assert_eq!(s.last_error.as_deref(), Some("5 is odd"));
    }

    /// One round, then gone.
    struct Once(bool);

    impl Background for Once {
        fn name(&self) -> String {
            "once".into()
        }
        async fn wait(&mut self) -> bool {
            !std::mem::replace(&mut self.0, true)
        }
        async fn round(&mut self) -> Result<(), String> {
            Ok(())
        }
        fn lasting(&self) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn a_short_loop_leaves_the_status_when_it_stops() {
        let loops = Loops::default();
        let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
        loops.spawn(Numbers(rx, None));
        loops.spawn(Once(false)).await.unwrap();
        let names: Vec<String> = loops.status().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["numbers"]);
    }
}
