//! Which claimed task gets the next worker: by what each tenant has
//! *running*, within a memory budget for the whole host.
//!
//! A claimed task waits here for a slot. Slots go first to the tenant with the
//! fewest tasks running, so a tenant whose tasks are slow (a plugin that
//! sleeps) holds its share of the workers and no more. A tenant under its fair
//! share (`workers` divided among the tenants that have work) may start a task
//! even while every worker is busy with another tenant's slow tasks: a running
//! task cannot be preempted, so waiting for one to end would let a slow tenant
//! decide how long everyone else waits. That oversubscription is bounded: at
//! most twice `workers` tasks run at once, and the busy tenant starts nothing
//! more until it is back under its share.
//!
//! A job runs at most its `concurrency` tasks at once. That is enforced
//! here, not by what the scheduler claims: fast tasks are claimed dozens
//! ahead per worker (see `executor::TaskPaces`), more than a job's concurrency,
//! and a task whose job is at its limit waits while later ones of other jobs
//! start.
//!
//! Every running task also holds its memory limit against
//! `runtime.memory_budget`: a task starts only while the limits of all the
//! running ones and its own fit, so tasks that each stay under their cap can
//! never, together, take more memory than the budget.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::model::JobId;

/// Hands out worker slots. See the module's comment.
pub(super) struct Dispatcher {
    workers: usize,
    memory_budget: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Per tenant (the admin's under `""`): tasks running and tasks waiting.
    tenants: BTreeMap<Arc<str>, TenantSlots>,
    /// Tasks running per job (jobs with none are not kept).
    jobs: HashMap<JobId, usize>,
    running: usize,
    /// Sum of the memory limits of the running tasks.
    reserved: u64,
}

#[derive(Default)]
struct TenantSlots {
    running: usize,
    waiting: VecDeque<Waiter>,
}

struct Waiter {
    job: JobId,
    /// The job's concurrency: its tasks running at most.
    limit: usize,
    memory: u64,
    wake: oneshot::Sender<()>,
}

/// What a task asks a slot for: its tenant (the admin's is `""`), its job and
/// that job's concurrency, and its memory limit.
pub(super) struct Ask<'a> {
    pub tenant: &'a str,
    pub job: JobId,
    pub concurrency: usize,
    pub memory: u64,
}

/// A worker slot: released (and the next task dispatched) when dropped.
pub(super) struct Slot {
    dispatcher: Arc<Dispatcher>,
    tenant: Arc<str>,
    job: JobId,
    memory: u64,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut st = self.dispatcher.state.lock().unwrap_or_else(|e| e.into_inner());
        st.running -= 1;
        st.reserved -= self.memory;
        if let Some(t) = st.tenants.get_mut(&self.tenant) {
            t.running -= 1;
        }
        if let std::collections::hash_map::Entry::Occupied(mut e) = st.jobs.entry(self.job) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
        self.dispatcher.dispatch(&mut st);
    }
}

impl Dispatcher {
    /// `memory_budget` must be at least the largest memory limit of a task.
    pub fn new(workers: usize, memory_budget: u64) -> Arc<Dispatcher> {
        Arc::new(Dispatcher { workers: workers.max(1), memory_budget, state: Mutex::default() })
    }

    /// Wait for a slot for a task; `None` if its job stopped meanwhile ([`Self::release_job`]).
    pub async fn acquire(self: &Arc<Self>, ask: Ask<'_>) -> Option<Slot> {
        let memory = ask.memory.min(self.memory_budget);
        let tenant: Arc<str> = Arc::from(ask.tenant);
        let (wake, woken) = oneshot::channel();
        {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let waiter = Waiter { job: ask.job, limit: ask.concurrency.max(1), memory, wake };
            st.tenants.entry(tenant.clone()).or_default().waiting.push_back(waiter);
            self.dispatch(&mut st);
        }
        // The dispatcher counted the slot as taken when it woke this waiter;
        // a waiter dropped unwoken was released.
        woken.await.ok()?;
        Some(Slot { dispatcher: self.clone(), tenant, job: ask.job, memory })
    }

    /// A job stopped: its tasks waiting for a slot are released at once
    /// (their `acquire` ends in `None`), and the others may start in their place.
    pub fn release_job(&self, job: JobId) {
        self.release(|w| w.job == job);
    }

    /// The daemon is stopping: every task waiting for a slot is released.
    pub fn release_all(&self) {
        self.release(|_| true);
    }

    fn release(&self, released: impl Fn(&Waiter) -> bool) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for t in st.tenants.values_mut() {
            t.waiting.retain(|w| !released(w));
        }
        self.dispatch(&mut st);
    }

    /// Workers not running a task (0 while oversubscribed).
    pub fn idle(&self) -> usize {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.workers.saturating_sub(st.running)
    }

    /// Tasks running now, per tenant: for tests and status.
    #[cfg(test)]
    fn running(&self, tenant: &str) -> usize {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.tenants.get(tenant).map_or(0, |t| t.running)
    }

    /// Start every waiting task that may start now, the tenant with the
    /// fewest running first; within a tenant, the first waiting task whose
    /// job is under its concurrency.
    fn dispatch(&self, st: &mut State) {
        st.tenants.retain(|_, t| t.running > 0 || !t.waiting.is_empty());
        let share = self.workers.div_ceil(st.tenants.len().max(1));
        loop {
            let State { tenants, jobs, .. } = &*st;
            // (tenant, its tasks running, the waiter's place in its queue)
            let mut next: Option<(&Arc<str>, usize, usize)> = None;
            for (name, t) in tenants {
                if next.is_some_and(|(_, running, _)| running <= t.running) {
                    continue;
                }
                let startable = t.waiting.iter().position(|w| jobs.get(&w.job).copied().unwrap_or(0) < w.limit);
                if let Some(at) = startable {
                    next = Some((name, t.running, at));
                }
            }
            let Some((name, running, at)) = next else { return };
            let name = name.clone();
            let memory = tenants[&name].waiting[at].memory;
            let worker_free = st.running < self.workers || (running < share && st.running < 2 * self.workers);
            if !worker_free || st.reserved + memory > self.memory_budget {
                return;
            }
            let t = st.tenants.get_mut(&name).expect("picked from the map");
            let waiter = t.waiting.remove(at).expect("picked from the queue");
            if waiter.wake.send(()).is_ok() {
                t.running += 1;
                st.running += 1;
                st.reserved += memory;
                *st.jobs.entry(waiter.job).or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn started(d: &Arc<Dispatcher>, tenant: &'static str, memory: u64) -> tokio::task::JoinHandle<Slot> {
        started_in(d, tenant, 1, 64, memory).await
    }

    async fn started_in(
        d: &Arc<Dispatcher>,
        tenant: &'static str,
        job: JobId,
        concurrency: usize,
        memory: u64,
    ) -> tokio::task::JoinHandle<Slot> {
        let d = d.clone();
        let h = tokio::spawn(async move { d.acquire(Ask { tenant, job, concurrency, memory }).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(5)).await;
        h
    }

    #[tokio::test]
    async fn a_tenant_under_its_share_starts_even_when_another_holds_every_worker() {
        let d = Dispatcher::new(4, u64::MAX);
        let mut slow = Vec::new();
        for _ in 0..4 {
            slow.push(started(&d, "slow", 1).await);
        }
        let queued = started(&d, "slow", 1).await;
        assert_eq!(d.running("slow"), 4);
        // Two tenants: a share of 2 workers each. The newcomer starts at once, twice.
        let fast1 = started(&d, "fast", 1).await;
        let fast2 = started(&d, "fast", 1).await;
        let fast3 = started(&d, "fast", 1).await;
        assert_eq!(d.running("fast"), 2);
        assert!(fast1.is_finished() && fast2.is_finished() && !fast3.is_finished());
        // A slow task ends: 5 still run, above the 4 workers, so nothing starts.
        drop(slow.remove(0).await.unwrap());
        assert_eq!((d.running("slow"), d.running("fast")), (3, 2));
        // Another: 4 run; the next worker goes to the tenant with fewer running.
        drop(slow.remove(0).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!((d.running("slow"), d.running("fast")), (2, 2), "the slow tenant is back to its share");
        drop(fast1.await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(fast3.is_finished(), "the fast tenant (1 running) goes before the slow one (2)");
        assert!(!queued.is_finished());
    }

    #[tokio::test]
    async fn a_task_starts_only_while_the_memory_limits_fit_the_budget() {
        let d = Dispatcher::new(8, 1000);
        let a = started(&d, "t", 600).await;
        let b = started(&d, "t", 600).await;
        assert!(a.is_finished() && !b.is_finished(), "600 + 600 is over the budget of 1000");
        assert_eq!(d.idle(), 7);
        drop(a.await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(b.is_finished());
        // A limit above the whole budget is clamped to it, so it can still run alone.
        drop(b.await.unwrap());
        let huge = started(&d, "t", 5000).await;
        assert!(huge.is_finished());
    }

    #[tokio::test]
    async fn a_job_runs_at_most_its_concurrency_and_others_pass_it() {
        let d = Dispatcher::new(4, u64::MAX);
        let a1 = started_in(&d, "t", 1, 2, 1).await;
        let a2 = started_in(&d, "t", 1, 2, 1).await;
        let a3 = started_in(&d, "t", 1, 2, 1).await;
        assert!(a1.is_finished() && a2.is_finished() && !a3.is_finished(), "job 1 runs 2, its concurrency");
        // A later task of another job of the same tenant passes the waiting one.
        let b1 = started_in(&d, "t", 2, 8, 1).await;
        assert!(b1.is_finished());
        assert_eq!(d.idle(), 1);
        drop(a1.await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(a3.is_finished(), "job 1 is under its concurrency again");
        drop((a2.await.unwrap(), a3.await.unwrap(), b1.await.unwrap()));
        assert_eq!(d.idle(), 4);
    }

    #[tokio::test]
    async fn a_stopped_jobs_waiting_tasks_are_released_at_once() {
        let d = Dispatcher::new(2, u64::MAX);
        let running = started_in(&d, "t", 1, 1, 1).await;
        let waiting = {
            let d = d.clone();
            tokio::spawn(async move { d.acquire(Ask { tenant: "t", job: 1, concurrency: 1, memory: 1 }).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!waiting.is_finished(), "job 1 is at its concurrency");
        d.release_job(1);
        assert!(waiting.await.unwrap().is_none(), "released without a slot");
        assert_eq!(d.idle(), 1, "only the running task holds a slot");
        drop(running.await.unwrap());
        assert_eq!(d.idle(), 2);
    }
}
