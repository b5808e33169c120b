//! The cluster's executor: claimed tasks go to workers on other machines
//! through JetStream (see [`crate::cluster`]), and their results come back
//! to the same committer as the local pool's.
//!
//! The scheduler still decides what runs next (fair share, priority, pacing,
//! quotas): this executor only offers it a window of about twice the live
//! workers' slots, so JetStream never holds more than the workers can start
//! soon, and orders each tenant's claimed tasks within its share of the
//! workers ([`super::shares`]). Short tasks go out in bundles, several to an
//! order ([`bundles`]). `local_workers` lets the coordinator run tasks itself too.

mod beats;
mod bundles;
mod results;

pub(in crate::jobs) use beats::Workers;
pub(in crate::jobs) use results::Results;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv, message::PublishMessage, object_store};

use super::executor::{Executor, LocalPool};
use super::order::{JobPart, TaskOut, WirePart};
use super::scheduler::task_done;
use super::shares::Shares;
use super::{Inner, Prepared};
use crate::cluster::{Route, WorkerBeat};
use crate::config::ClusterConfig;
use crate::model::{JobId, TaskRecord};
use crate::store::TaskResult;

/// A task published and not yet answered.
struct Pending {
    prepared: Arc<Prepared>,
    attempt: u32,
    /// Tasks of its order not yet answered: the order's slot is free at 0.
    order_left: Arc<AtomicUsize>,
}

/// An order on its way out: its job, its tasks, and the count of them
/// unanswered that their [`Pending`] entries share.
struct Order {
    job: JobId,
    seqs: Vec<u64>,
    left: Arc<AtomicUsize>,
}

/// Claimed tasks of one job waiting for their tenant's share of the
/// workers, to go out in one order.
struct Held {
    job: JobId,
    stops: u64,
    prepared: Arc<Prepared>,
    tasks: Vec<TaskRecord>,
    /// Tasks the order may carry: the job's bundle when it was started.
    bundle: usize,
}

/// What every order of one job shares, made once for the [`Prepared`] it
/// came from (a job resumed is prepared anew).
struct JobOrders {
    made_for: Arc<Prepared>,
    part: WirePart,
    route: Route,
    subject: String,
}

/// The tenant a job's orders count against (`""`: the admin's).
fn tenant_of(prepared: &Prepared) -> &str {
    prepared.tenant.as_deref().unwrap_or_default()
}

/// What the executor and its two loops (`results`, `workers`) share.
pub(super) struct Remote {
    js: jetstream::Context,
    plugins: object_store::ObjectStore,
    workers: kv::Store,
    settings: ClusterConfig,
    /// Components known to be in the object store, by sha256.
    uploaded: tokio::sync::Mutex<HashSet<String>>,
    /// Route consumers set up, by name.
    routes: tokio::sync::Mutex<HashSet<String>>,
    /// Claimed tasks not yet ordered, and orders out, per tenant.
    shares: Mutex<Shares<Held>>,
    /// Tasks held in `shares`.
    held_tasks: AtomicUsize,
    /// How many of each job's tasks go in one order.
    paces: Mutex<crate::jobs::pace::Paces>,
    /// The largest bundle of any job, from `paces`: the window's tasks per order.
    largest_bundle: AtomicUsize,
    /// The live workers, from their last beats (this Kiln version's only),
    /// or why NATS could not tell.
    beats: Mutex<Result<Vec<WorkerBeat>, String>>,
    /// The live workers' slots, from their beats.
    live_slots: AtomicUsize,
    /// Jobs already warned about that no live worker reaches their buckets.
    unserved: Mutex<HashSet<JobId>>,
    pending: Mutex<HashMap<(JobId, u64), Pending>>,
    /// What each job's orders share, made once per job.
    parts: Mutex<HashMap<JobId, Arc<JobOrders>>>,
    /// Tasks of this coordinator's also run here.
    local: Option<LocalPool>,
    /// Numbers each publication: see [`crate::cluster::task_msg_id`].
    publications: std::sync::atomic::AtomicU64,
}

/// The executor of `kiln serve` with `[cluster] nats`.
pub(super) struct RemotePool(pub Arc<Remote>);

impl Remote {
    /// Connect and set up the streams; `local_workers` run tasks here too.
    pub async fn connect(
        config: &crate::config::Config,
        url: &str,
        memory_budget: u64,
    ) -> anyhow::Result<(Arc<Remote>, jetstream::consumer::PullConsumer)> {
        let settings = &config.cluster;
        let js = crate::cluster::connect(url).await?;
        let parts = crate::cluster::ensure(&js, Some(settings.replicas)).await?;
        crate::cluster::share_buckets(&parts.buckets, &config.buckets).await?;
        let local_workers = settings.local_workers;
        let remote = Remote {
            js,
            plugins: parts.plugins,
            workers: parts.workers,
            settings: settings.clone(),
            uploaded: Default::default(),
            routes: Default::default(),
            shares: Mutex::default(),
            held_tasks: AtomicUsize::new(0),
            paces: Mutex::new(bundles::paces()),
            largest_bundle: AtomicUsize::new(1),
            beats: Mutex::new(Ok(Vec::new())),
            live_slots: AtomicUsize::new(0),
            unserved: Mutex::default(),
            pending: Mutex::default(),
            parts: Mutex::default(),
            local: (local_workers > 0).then(|| LocalPool::beside_workers(local_workers, memory_budget)),
            // Unique across restarts: a task released and ordered again is a new message.
            publications: std::sync::atomic::AtomicU64::new(crate::model::now() as u64 * 1000),
        };
        Ok((Arc::new(remote), parts.results))
    }

    /// Tasks claimed for the workers and not answered: ordered, or held for their share.
    fn published(&self) -> usize {
        self.pending.lock().unwrap().len() + self.held_tasks.load(Ordering::SeqCst)
    }

    /// Orders the workers may hold at once (ordered and not answered): twice their slots.
    fn window(&self) -> usize {
        2 * self.live_slots.load(Ordering::SeqCst)
    }

    /// Order the held tasks their tenants' shares now allow.
    fn pump(self: &Arc<Self>, inner: &Arc<Inner>) {
        let released = self.shares.lock().unwrap().release(self.live_slots.load(Ordering::SeqCst), self.window());
        if released.is_empty() {
            return;
        }
        let tasks: usize = released.iter().map(|(_, h)| h.tasks.len()).sum();
        self.held_tasks.fetch_sub(tasks, Ordering::SeqCst);
        let (remote, inner) = (self.clone(), inner.clone());
        tokio::spawn(async move {
            // Sent one after another, their acks awaited together: one round trip for the lot.
            let mut acks = Vec::new();
            let mut freed = false;
            for (tenant, Held { job, stops, prepared, tasks, .. }) in released {
                // As the local pool: a job stopped since the claim publishes nothing more.
                if inner.stopped_since(job, stops) {
                    remote.shares.lock().unwrap().answered(&tenant);
                    freed = true;
                    for task in tasks {
                        task_done(&inner, job, &prepared, TaskResult::Released { job, seq: task.seq });
                    }
                    continue;
                }
                let seqs: Vec<u64> = tasks.iter().map(|t| t.seq).collect();
                let order = Order { job, left: Arc::new(AtomicUsize::new(seqs.len())), seqs };
                match remote.send(&inner, &order, stops, &prepared, tasks).await {
                    Ok(ack) => acks.push((order, ack)),
                    Err(e) => remote.not_ordered(&inner, &order, e),
                }
            }
            if freed {
                // Their slots went unused: others' held orders may take them.
                remote.pump(&inner);
            }
            for (order, ack) in acks {
                if let Err(e) = ack.await {
                    remote.not_ordered(&inner, &order, anyhow::anyhow!("{e}"));
                }
            }
        });
    }

    /// A task taken out of `pending` (answered, or given up): when it was
    /// the last of its order, the order's slot in its tenant's share is free.
    /// Whether it was (then [`Self::pump`] may order more).
    fn settle(&self, p: &Pending) -> bool {
        let last = p.order_left.fetch_sub(1, Ordering::SeqCst) == 1;
        if last {
            self.shares.lock().unwrap().answered(tenant_of(&p.prepared));
        }
        last
    }

    /// As [`Self::settle`], then order what the share now allows.
    fn answered(self: &Arc<Self>, inner: &Arc<Inner>, p: &Pending) {
        if self.settle(p) {
            self.pump(inner);
        }
    }

    /// A result of `job`'s: `tasks` ran at a worker for `took_us`.
    fn measured(&self, job: JobId, tasks: usize, took_us: u64) {
        let mut paces = self.paces.lock().unwrap();
        paces.record(job, tasks, Duration::from_micros(took_us));
        self.largest_bundle.store(paces.most_tasks(bundles::BUNDLE), Ordering::SeqCst);
    }

    /// The workers that beat lately, as the `workers` loop last saw them.
    pub fn workers(&self) -> Result<Vec<WorkerBeat>, String> {
        self.beats.lock().unwrap().clone()
    }

    /// Whether a live worker reaches every bucket of `route`.
    fn served(&self, route: &Route) -> bool {
        self.beats.lock().unwrap().as_ref().is_ok_and(|beats| beats.iter().any(|b| route.served_by(&b.buckets)))
    }

    /// Set up the consumer of `route`'s orders of `tenant`, once.
    async fn open_route(&self, route: &Route, tenant: Option<&str>) -> anyhow::Result<()> {
        let mut routes = self.routes.lock().await;
        let name = route.consumer(tenant);
        if !routes.contains(&name) {
            route.ensure(&self.js, tenant, self.settings.ack_wait).await?;
            // Workers look for new routes at every beat; this tells them now.
            let _ = self.js.client().publish(crate::cluster::ROUTES_SUBJECT, name.clone().into()).await;
            routes.insert(name);
        }
        Ok(())
    }

    /// Task orders waiting in JetStream.
    pub async fn queued(&self) -> anyhow::Result<u64> {
        let mut stream = self.js.get_stream(crate::cluster::TASKS).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(stream.info().await.map_err(|e| anyhow::anyhow!("{e}"))?.state.messages)
    }

    /// Put the job's plugin into the object store, once.
    async fn upload(&self, inner: &Inner, prepared: &Prepared) -> anyhow::Result<()> {
        let sha = &prepared.plugin.sha256;
        let mut uploaded = self.uploaded.lock().await;
        if uploaded.contains(sha) {
            return Ok(());
        }
        if self.plugins.info(sha).await.is_err() {
            let wasm = component_bytes(inner, prepared).ok_or_else(|| {
                anyhow::anyhow!("the component of plugin `{}` is not kept here", prepared.plugin.info.name)
            })?;
            self.plugins
                .put(sha.as_str(), &mut wasm.as_slice())
                .await
                .map_err(|e| anyhow::anyhow!("uploading plugin `{}` to JetStream: {e}", prepared.plugin.info.name))?;
        }
        uploaded.insert(sha.clone());
        Ok(())
    }

    /// Send `order`, of `tasks`, to the workers; its ack is to be awaited.
    /// `stops`: the job's when the tasks were claimed; a job stopped since is
    /// an error (its tasks are then released by whoever takes them out of `pending`).
    async fn send(
        self: &Arc<Self>,
        inner: &Arc<Inner>,
        order: &Order,
        stops: u64,
        prepared: &Arc<Prepared>,
        tasks: Vec<TaskRecord>,
    ) -> anyhow::Result<jetstream::context::PublishAckFuture> {
        let last_etags: Vec<Option<String>> = if prepared.spec.skip_unchanged {
            let definition = prepared.definition.clone();
            let keys: Vec<String> = tasks.iter().map(|t| t.source_key.clone()).collect();
            let read = inner
                .store
                .call(move |s| keys.iter().map(|k| s.last_etag(&definition, k)).collect::<Result<Vec<_>, _>>())
                .await;
            read.unwrap_or_else(|_| vec![None; tasks.len()])
        } else {
            vec![None; tasks.len()]
        };
        let job = order.job;
        {
            let mut pending = self.pending.lock().unwrap();
            for task in &tasks {
                let p = Pending { prepared: prepared.clone(), attempt: task.attempts, order_left: order.left.clone() };
                pending.insert((job, task.seq), p);
            }
        }
        // The job may have stopped while the etags were read: `job_stopped`
        // found nothing of these tasks to take back, so they are not ordered
        // (nor the job's part kept again, which `job_stopped` dropped).
        anyhow::ensure!(!inner.stopped_since(job, stops), "the job stopped before its tasks were ordered");
        let orders = self.orders(job, prepared);
        let out: Vec<TaskOut> = tasks
            .iter()
            .zip(&last_etags)
            .map(|(task, etag)| TaskOut {
                task,
                may_retry: task.attempts < inner.max_attempts,
                last_etag: etag.as_deref(),
            })
            .collect();
        let payload = orders.part.order(&out);
        self.upload(inner, prepared).await?;
        self.open_route(&orders.route, prepared.tenant.as_deref()).await?;
        let first = &tasks[0];
        let message = PublishMessage::build().payload(payload.into()).message_id(crate::cluster::task_msg_id(
            job,
            first.seq,
            first.attempts,
            self.publications.fetch_add(1, Ordering::SeqCst),
        ));
        let m = crate::metrics::global();
        m.cluster_orders.inc();
        m.cluster_tasks_ordered.inc_by(tasks.len() as u64);
        let subject = orders.subject.clone();
        self.js.send_publish(subject, message).await.map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// What `job`'s orders share: made at its first order.
    fn orders(&self, job: JobId, prepared: &Arc<Prepared>) -> Arc<JobOrders> {
        let mut parts = self.parts.lock().unwrap();
        if let Some(orders) = parts.get(&job)
            && Arc::ptr_eq(&orders.made_for, prepared)
        {
            return orders.clone();
        }
        // Bounded: the jobs that ended are forgotten with the rest now and then.
        if parts.len() >= 1024 {
            parts.clear();
        }
        let route = Route::of(super::order::buckets(&prepared.spec));
        let orders = Arc::new(JobOrders {
            made_for: prepared.clone(),
            part: WirePart::of(&JobPart::of(prepared), self.settings.max_deliveries),
            subject: crate::cluster::task_subject(&route, prepared.tenant.as_deref(), job),
            route,
        });
        parts.insert(job, orders.clone());
        orders
    }

    /// An order could not be sent: its tasks are released, to be claimed
    /// again. Only its own: a task of it already answered may have been
    /// ordered again since, in another order.
    fn not_ordered(self: &Arc<Self>, inner: &Arc<Inner>, order: &Order, e: anyhow::Error) {
        let job = order.job;
        tracing::warn!(job, seq = order.seqs[0], tasks = order.seqs.len(), error = %e, "ordering tasks from the workers failed; they are released");
        for &seq in &order.seqs {
            let removed = {
                let mut pending = self.pending.lock().unwrap();
                match pending.get(&(job, seq)) {
                    Some(p) if Arc::ptr_eq(&p.order_left, &order.left) => pending.remove(&(job, seq)),
                    _ => None,
                }
            };
            if let Some(p) = removed {
                self.answered(inner, &p);
                task_done(inner, job, &p.prepared, TaskResult::Released { job, seq });
            }
        }
    }
}

impl Executor for RemotePool {
    /// The window, in tasks: its orders at the largest bundle (each job's
    /// orders are sized by its own, and [`Shares`] keeps the orders out within the window).
    fn slots(&self) -> usize {
        self.0.window() * self.0.largest_bundle.load(Ordering::SeqCst) + self.0.local.as_ref().map_or(0, |l| l.slots())
    }

    fn tasks_per_slot(&self, job: JobId) -> usize {
        self.0.paces.lock().unwrap().tasks(job, bundles::BUNDLE)
    }

    fn job_window(&self, job: JobId) -> usize {
        let bundle = self.0.paces.lock().unwrap().tasks(job, bundles::BUNDLE);
        self.0.window() * bundle + self.0.local.as_ref().map_or(0, |l| l.slots())
    }

    fn stopping(&self) {
        if let Some(local) = &self.0.local {
            local.stopping();
        }
    }

    /// Orders wait in JetStream, not here: only the local workers' claim ahead.
    fn claim_ahead(&self) -> usize {
        self.0.local.as_ref().map_or(0, |l| l.claim_ahead())
    }

    fn idle(&self) -> usize {
        let remote =
            (self.0.window() * self.0.largest_bundle.load(Ordering::SeqCst)).saturating_sub(self.0.published());
        remote + self.0.local.as_ref().map_or(0, |l| l.idle())
    }

    /// Take the job's orders back from JetStream (purge its subject), and
    /// release the tasks this coordinator waits for: a worker running one
    /// finishes it, but its result is no longer waited for, and the task
    /// runs again if the job is resumed (outputs are deterministic).
    fn job_stopped(&self, inner: &Inner, job: JobId) {
        if let Some(local) = &self.0.local {
            local.job_stopped(inner, job);
        }
        let released: Vec<(u64, Pending)> = {
            let mut pending = self.0.pending.lock().unwrap();
            let seqs: Vec<u64> = pending.keys().filter(|(j, _)| *j == job).map(|(_, s)| *s).collect();
            seqs.into_iter().filter_map(|s| pending.remove(&(job, s)).map(|p| (s, p))).collect()
        };
        self.0.parts.lock().unwrap().remove(&job);
        {
            let mut paces = self.0.paces.lock().unwrap();
            paces.forget(job);
            self.0.largest_bundle.store(paces.most_tasks(bundles::BUNDLE), Ordering::SeqCst);
        }
        let held = self.0.shares.lock().unwrap().take_back(|h| h.job == job);
        for h in held {
            self.0.held_tasks.fetch_sub(h.tasks.len(), Ordering::SeqCst);
            for task in h.tasks {
                task_done(inner, job, &h.prepared, TaskResult::Released { job, seq: task.seq });
            }
        }
        let js = self.0.js.clone();
        tokio::spawn(async move {
            let purged = match js.get_stream(crate::cluster::TASKS).await {
                Ok(stream) => stream
                    .purge()
                    .filter(crate::cluster::job_subjects(job))
                    .await
                    .map(|r| r.purged)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match purged {
                Ok(n) => tracing::debug!(job, purged = n, "the job's queued orders taken back"),
                Err(e) => {
                    tracing::warn!(job, error = %e, "taking the job's queued orders back failed; they run and are ignored")
                }
            }
        });
        for (seq, p) in released {
            self.0.settle(&p);
            task_done(inner, job, &p.prepared, TaskResult::Released { job, seq });
        }
    }

    fn execute(&self, inner: &Arc<Inner>, job: JobId, stops: u64, prepared: Arc<Prepared>, mut tasks: Vec<TaskRecord>) {
        if let Some(local) = &self.0.local {
            let here = local.idle().min(tasks.len());
            let rest = tasks.split_off(here);
            local.execute(inner, job, stops, prepared.clone(), tasks);
            tasks = rest;
        }
        let (remote, inner) = (self.0.clone(), inner.clone());
        let orders = remote.orders(job, &prepared);
        if !remote.served(&orders.route) {
            // Ordered, they would wait in a queue no worker pulls, holding
            // the window other jobs need: give them back, to be claimed a
            // moment later (a worker that reaches the buckets may start).
            if remote.unserved.lock().unwrap().insert(job) {
                tracing::warn!(job, buckets = ?orders.route.buckets, "no live worker reaches the job's buckets; its tasks wait");
            }
            tokio::spawn(async move {
                tokio::time::sleep(crate::cluster::BEAT).await;
                for task in tasks {
                    task_done(&inner, job, &prepared, TaskResult::Released { job, seq: task.seq });
                }
            });
            return;
        }
        remote.unserved.lock().unwrap().remove(&job);
        let bundle = remote.paces.lock().unwrap().tasks(job, bundles::BUNDLE);
        remote.held_tasks.fetch_add(tasks.len(), Ordering::SeqCst);
        {
            // Into the job's last order held, while it has room; then new ones.
            let mut shares = remote.shares.lock().unwrap();
            let tenant = tenant_of(&prepared);
            let mut tasks = tasks.into_iter().peekable();
            if let Some(last) = shares.last_held(tenant)
                && last.job == job
                && last.stops == stops
                && Arc::ptr_eq(&last.prepared, &prepared)
            {
                while last.tasks.len() < last.bundle
                    && let Some(task) = tasks.next()
                {
                    last.tasks.push(task);
                }
            }
            while tasks.peek().is_some() {
                let order: Vec<TaskRecord> = tasks.by_ref().take(bundle).collect();
                shares.hold(tenant, Held { job, stops, prepared: prepared.clone(), tasks: order, bundle });
            }
        }
        remote.pump(&inner);
    }
}

/// The component of a prepared job's plugin: an upload's blob, or a bundled plugin.
fn component_bytes(inner: &Inner, prepared: &Prepared) -> Option<Vec<u8>> {
    use sha2::Digest;
    let sha = &prepared.plugin.sha256;
    if let Ok(wasm) = std::fs::read(inner.plugins.blob_path(sha)) {
        return Some(wasm);
    }
    crate::bundled::BUNDLED
        .iter()
        .map(|(_, wasm)| *wasm)
        .find(|wasm| hex::encode(sha2::Sha256::digest(wasm)) == *sha)
        .map(<[u8]>::to_vec)
}
