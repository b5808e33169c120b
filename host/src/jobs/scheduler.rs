//! The scheduler: claims pending tasks of the active jobs (fair share among
//! tenants, then priority and turns among a tenant's jobs, pacing, quotas)
//! and starts a worker for each; a worker's result goes to the committer.

use super::*;

/// Tasks claimed per transaction, at most: twice the largest low water
/// (`worker::LOW_WATER_MOST`), so a claim at the low water always fits.
pub(super) const CLAIM_BATCH: usize = 128;

/// A job the scheduler may claim for now: its id, free slots, the tasks its
/// concurrency lets it hold claimed, and its priority.
struct Candidate {
    id: JobId,
    room: usize,
    /// Tasks it may still claim before it holds its concurrency (the rest of
    /// its room is claimed ahead).
    below_concurrency: usize,
    /// Its tasks claimed and not done.
    in_flight: usize,
    priority: i32,
    /// `Active::stops` before the claim: read first, so a stop that the
    /// claim's snapshot missed is seen by the task.
    stops: u64,
    halted: bool,
}

/// One tenant's claimable work: its jobs with room, the room its
/// `tasks_in_flight` quota leaves, and its tasks in flight (claimed, waiting
/// for a worker or running).
struct TenantWork {
    /// Whether the tenant has a `tasks_in_flight` quota (the admin has none).
    has_quota: bool,
    quota_room: usize,
    in_flight: usize,
    jobs: Vec<Candidate>,
}

/// Active jobs with room, grouped by tenant (the admin's under `""`); the
/// tasks in flight across the daemon; and how many tenants have work (jobs
/// with room or tasks in flight), among whom claims are shared.
fn candidates_by_tenant(inner: &Inner) -> (Vec<TenantWork>, usize, usize) {
    let mut active = inner.active.lock().unwrap();
    let quotas = inner.quotas.read().unwrap();
    let mut by_tenant: BTreeMap<String, TenantWork> = BTreeMap::new();
    let mut in_flight = 0;
    for (id, a) in active.iter_mut() {
        in_flight += a.in_flight;
        let tenant = a.prepared.tenant.clone().unwrap_or_default();
        let entry = by_tenant.entry(tenant).or_insert_with(|| {
            let quota = a
                .prepared
                .tenant
                .as_ref()
                .map_or(usize::MAX, |t| quotas.get(t).copied().unwrap_or_default().tasks_in_flight as usize);
            TenantWork { has_quota: a.prepared.tenant.is_some(), quota_room: quota, in_flight: 0, jobs: Vec::new() }
        });
        // The tenant's room is its quota less everything of it in flight.
        entry.quota_room = entry.quota_room.saturating_sub(a.in_flight);
        entry.in_flight += a.in_flight;
        // A cluster's window is in orders: a job's part of it, in tasks, is its bundle's.
        let per_slot = inner.executor.tasks_per_slot(*id);
        let concurrency = a.prepared.spec.concurrency as usize * per_slot;
        let ahead = inner.executor.claim_ahead_for(*id, concurrency);
        let room = a.room(per_slot, ahead).min(inner.executor.job_window(*id).saturating_sub(a.in_flight));
        if room > 0 {
            entry.jobs.push(Candidate {
                id: *id,
                room,
                below_concurrency: concurrency.saturating_sub(a.in_flight),
                in_flight: a.in_flight,
                priority: a.priority,
                stops: a.stops,
                halted: a.halted,
            });
        }
    }
    for t in by_tenant.values_mut() {
        reserve_quota_for_concurrency(t);
    }
    let with_work = by_tenant.values().filter(|t| t.in_flight > 0 || !t.jobs.is_empty()).count();
    let claimable = by_tenant.into_values().filter(|t| t.quota_room > 0 && !t.jobs.is_empty()).collect();
    (claimable, in_flight, with_work)
}

/// Tasks claimed ahead (beyond a job's concurrency, waiting for its running
/// ones) count against the tenant's `tasks_in_flight` quota, so a job may
/// claim ahead only from the quota its tenant's other jobs do not need to
/// run their concurrency: a job of concurrency 1 never holds the quota while
/// a job beside it runs less than it may.
fn reserve_quota_for_concurrency(t: &mut TenantWork) {
    if !t.has_quota {
        return;
    }
    let below: usize = t.jobs.iter().map(|c| c.below_concurrency).sum();
    for c in &mut t.jobs {
        let others = below - c.below_concurrency;
        let ahead = t.quota_room.saturating_sub(others).saturating_sub(c.below_concurrency);
        c.room = c.room.min(c.below_concurrency + ahead);
    }
    t.jobs.retain(|c| c.room > 0);
}

/// Claim tasks for active jobs and hand them to workers: tenants in turn,
/// then each tenant's jobs in turn.
///
/// Claims are shared among tenants by what each holds in flight: a tenant
/// may always claim up to its fair part of `workers + claim_ahead` (divided
/// among the tenants with work), even while another tenant's slow tasks hold
/// every slot; the dispatcher then starts the newcomer's tasks first (see
/// `dispatch`). Beyond its fair part, a tenant claims only from what is free.
pub(super) struct Scheduler {
    pub(super) inner: Arc<Inner>,
    /// Whose turn it is to claim first, among tenants and among a tenant's jobs.
    pub(super) turn: usize,
}

impl crate::background::Background for Scheduler {
    fn name(&self) -> String {
        "scheduler".into()
    }

    /// Woken by every change that may free or need a worker, and every 50 ms (pacing).
    async fn wait(&mut self) -> bool {
        crate::background::woken_or_every(&self.inner.wake, Duration::from_millis(50)).await;
        true
    }

    /// Claim until nothing more may be claimed now.
    async fn round(&mut self) -> Result<(), String> {
        claim_round(&self.inner, &mut self.turn).await;
        Ok(())
    }
}

async fn claim_round(inner: &Arc<Inner>, turn: &mut usize) {
    let claim_ahead = inner.executor.claim_ahead();
    let slots = inner.executor.slots() + claim_ahead;
    loop {
        // Stopping, or the store cannot record claims (a full disk): claim nothing.
        if inner.stopping.load(std::sync::atomic::Ordering::SeqCst) || inner.store.unavailable().is_some() {
            break;
        }
        let (mut tenants, in_flight, with_work) = candidates_by_tenant(inner);
        if tenants.is_empty() {
            break;
        }
        // Tasks are claimed ahead of the workers and wait for one in
        // memory, so a claim is off the critical path; but only a few
        // ahead, so a newcomer's tasks do not queue behind a big job's.
        let mut capacity = slots.saturating_sub(in_flight);
        // A hard ceiling on claims held: fair parts claimed past a busy
        // tenant's slots may at most double them.
        let mut ceiling = (2 * slots).saturating_sub(in_flight);
        let fair = slots.div_ceil(with_work.max(1));
        let idle = inner.executor.idle();
        // Rotate who goes first, so each tenant and each job gets its turn.
        let k = *turn % tenants.len();
        tenants.rotate_left(k);
        *turn = turn.wrapping_add(1);
        let share = (capacity / tenants.len()).max(1);
        let mut claimed_any = false;
        for TenantWork { quota_room, in_flight: tenant_in_flight, mut jobs, .. } in tenants {
            // Jobs of equal priority take turns; a higher priority goes first.
            let k = *turn % jobs.len();
            jobs.rotate_left(k);
            jobs.sort_by_key(|c| std::cmp::Reverse(c.priority));
            // Only when tenants compete: alone, a tenant's fair part is everything.
            let under_fair = if with_work > 1 { fair.saturating_sub(tenant_in_flight) } else { 0 };
            let mut budget = share.min(capacity).max(under_fair).min(quota_room).min(ceiling);
            for Candidate { id, room, in_flight: held, stops, halted, .. } in jobs {
                if halted {
                    // Gone from the scheduler once its failure is recorded and nothing is in flight.
                    retire_if_idle(inner, id).await;
                    continue;
                }
                let n = room.min(budget).min(CLAIM_BATCH);
                if n == 0 {
                    break;
                }
                // What it could hold now: every cap (its concurrency and
                // claim-ahead, the window, the tenant's quota, its pace, the
                // daemon's room) is in `n`.
                if idle == 0 && under_fair == 0 && n < worker::low_water(held + n, claim_ahead) {
                    // Every worker is busy: wait until one claim can serve several tasks.
                    continue;
                }
                let tasks = match claims::claim(inner, id, n).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::error!(job = id, error = %e, "claiming tasks failed");
                        continue;
                    }
                };
                if tasks.is_empty() {
                    retire_if_idle(inner, id).await;
                    continue;
                }
                claimed_any = true;
                budget -= tasks.len();
                capacity = capacity.saturating_sub(tasks.len());
                ceiling -= tasks.len();
                execute(inner, id, stops, tasks);
            }
        }
        if !claimed_any {
            break;
        }
    }
}

/// Hand a job's claimed tasks to the executor.
/// `stops`: the job's `Active::stops` when the tasks were claimed.
fn execute(inner: &Arc<Inner>, id: JobId, stops: u64, tasks: Vec<crate::model::TaskRecord>) {
    let prepared = {
        let mut active = inner.active.lock().unwrap();
        let Some(a) = active.get_mut(&id) else { return };
        a.in_flight += tasks.len();
        a.started(tasks.len());
        a.prepared.clone()
    };
    inner.executor.execute(inner, id, stops, prepared, tasks);
}

/// A task the executor ran (or released unstarted) is done: its result goes
/// to the committer, and it no longer counts as in flight.
pub(super) fn task_done(inner: &Inner, id: JobId, prepared: &Prepared, result: TaskResult) {
    // The result is counted as uncommitted before the task stops counting as
    // in flight, so a drain never misses it.
    let failed = matches!(result, TaskResult::Failed { .. });
    send_result(inner, result);
    if let Some(a) = inner.active.lock().unwrap().get_mut(&id) {
        a.in_flight = a.in_flight.saturating_sub(1);
        if prepared.spec.fast_fail && failed {
            // Fast-fail acts on the first failure, not on its commit
            // a few milliseconds later: no new task, and none of
            // those waiting for a worker, starts after it.
            a.halted = true;
            a.stops += 1;
        }
    }
    inner.wake.notify_one();
}

/// Drop a job from the scheduler once it is no longer Running and nothing of it is in flight.
async fn retire_if_idle(inner: &Arc<Inner>, id: JobId) {
    let idle = |a: &Active| a.in_flight == 0 && !a.planner_running;
    let Some(activations) = inner.active.lock().unwrap().get(&id).filter(|a| idle(a)).map(|a| a.activations) else {
        return;
    };
    let state = inner.store.call(move |s| s.get_job(id)).await.ok().flatten().map(|j| j.state);
    if state != Some(JobState::Running) {
        let mut active = inner.active.lock().unwrap();
        // Not if it was resumed or retried while the state was read.
        if active.get(&id).is_some_and(|a| idle(a) && a.activations == activations) {
            active.remove(&id);
            inner.claims.forget(id);
        }
    }
}

/// Hand a result to the committer, counted until it is committed.
pub(super) fn send_result(inner: &Inner, result: TaskResult) {
    inner.uncommitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if inner.results.send(result).is_err() {
        inner.uncommitted.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: JobId, room: usize, below_concurrency: usize) -> Candidate {
        Candidate { id, room, below_concurrency, in_flight: 0, priority: 0, stops: 0, halted: false }
    }

    #[test]
    fn claims_ahead_never_take_the_quota_another_job_needs_to_run() {
        // Quota room 16: job 1 (concurrency 1, holding none) may claim 33; job 2 (concurrency 15) 15.
        let mut t =
            TenantWork { has_quota: true, quota_room: 16, in_flight: 0, jobs: vec![job(1, 33, 1), job(2, 15, 15)] };
        reserve_quota_for_concurrency(&mut t);
        let rooms: Vec<_> = t.jobs.iter().map(|c| (c.id, c.room)).collect();
        assert_eq!(rooms, vec![(1, 1), (2, 15)], "job 1 claims nothing ahead while job 2 needs the quota");
        // Alone, a job claims ahead up to the quota.
        let mut t = TenantWork { has_quota: true, quota_room: 16, in_flight: 0, jobs: vec![job(1, 33, 1)] };
        reserve_quota_for_concurrency(&mut t);
        assert_eq!(t.jobs[0].room, 16);
        // The admin has no quota.
        let mut t = TenantWork { has_quota: false, quota_room: 16, in_flight: 0, jobs: vec![job(1, 33, 1)] };
        reserve_quota_for_concurrency(&mut t);
        assert_eq!(t.jobs[0].room, 33);
    }
}
