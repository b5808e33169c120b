//! Scale-out over NATS JetStream: what the coordinator (`kiln serve` with
//! `[cluster] nats`) and its workers (`kiln worker`) share. redb stays the
//! single source of truth on the coordinator; JetStream carries the work.
//!
//! - stream `KILN_TASKS` (work queue), subjects `kiln.tasks.{route}.{tenant}.{job}`:
//!   one order per task attempt, or per bundle of a job's short tasks
//!   ([`crate::jobs::order`], see [`task_msg_id`]).
//!   A [`Route`] is the set of buckets a task needs; each route and tenant
//!   has its own consumer (`kiln-route-{id}-{tenant}`, the buckets in its
//!   metadata), and a worker pulls only from the routes whose buckets its own
//!   configuration reaches, so a task never reaches a worker that cannot run
//!   it; it takes the consumers in turn, so tenants take turns at its slots;
//! - stream `KILN_RESULTS`, subjects `kiln.results.{job}`: one [`ResultMsg`]
//!   per order that ran;
//! - object store `kiln-plugins`: plugin components by sha256;
//! - KV bucket `kiln-workers`: each worker's [`WorkerBeat`], expiring when it
//!   stops beating, and the coordinator's version under [`COORDINATOR_KEY`];
//! - KV bucket `kiln-buckets`: the coordinator's cloud bucket definitions
//!   without their secrets ([`crate::config::BucketConfig::shareable`]), for
//!   workers whose own configuration does not name them.

pub mod worker;

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use serde::{Deserialize, Serialize};

use crate::model::{JobId, TaskErrorRecord};

pub const TASKS: &str = "KILN_TASKS";
pub const RESULTS: &str = "KILN_RESULTS";
pub const PLUGINS: &str = "kiln-plugins";
pub const WORKERS: &str = "kiln-workers";
pub const BUCKETS: &str = "kiln-buckets";
/// The coordinator's consumer of [`RESULTS`].
pub const COORDINATOR_CONSUMER: &str = "kiln-coordinator";
/// Route consumers' names start with it.
const ROUTE_CONSUMER: &str = "kiln-route-";
/// The metadata key of a route consumer that lists its buckets (a JSON array).
const ROUTE_BUCKETS: &str = "kiln-buckets";
/// Where the coordinator says it opened a route consumer (plain NATS, not
/// kept): workers look at once instead of at their next beat.
pub const ROUTES_SUBJECT: &str = "kiln.routes";
/// How often a worker says it is alive; it counts as gone after three missed beats.
pub const BEAT: Duration = Duration::from_secs(2);

/// The buckets a task reads and writes, and the short id its subject and
/// consumer carry (bucket names may hold characters a subject cannot).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    pub id: String,
    pub buckets: Vec<String>,
}

impl Route {
    /// The route of tasks that need `buckets` (sorted, without repeats).
    pub fn of(buckets: Vec<String>) -> Route {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(buckets.join("\n").as_bytes());
        Route { id: hex::encode(&digest[..8]), buckets }
    }

    /// The name of the consumer of its orders of `tenant` (`None`: the admin's).
    pub fn consumer(&self, tenant: Option<&str>) -> String {
        format!("{ROUTE_CONSUMER}{}-{}", self.id, tenant_token(tenant))
    }

    /// Whether a worker reaching `reachable` can run its tasks.
    pub fn served_by(&self, reachable: &[String]) -> bool {
        self.buckets.iter().all(|b| reachable.contains(b))
    }

    /// The route a consumer serves, from its name and metadata; `None` for another consumer.
    pub fn of_consumer(info: &consumer::Info) -> Option<Route> {
        let (id, _tenant) = info.name.strip_prefix(ROUTE_CONSUMER)?.split_once('-')?;
        let buckets = serde_json::from_str(info.config.metadata.get(ROUTE_BUCKETS)?).ok()?;
        Some(Route { id: id.to_string(), buckets })
    }

    /// Create the consumer of its orders of `tenant`, or bring its settings up to date.
    pub async fn ensure(
        &self,
        js: &jetstream::Context,
        tenant: Option<&str>,
        ack_wait: Duration,
    ) -> anyhow::Result<()> {
        let stream = js.get_stream(TASKS).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let buckets = serde_json::to_string(&self.buckets).expect("names serialise");
        stream
            .create_consumer(consumer::pull::Config {
                durable_name: Some(self.consumer(tenant)),
                filter_subject: format!("kiln.tasks.{}.{}.>", self.id, tenant_token(tenant)),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait,
                max_ack_pending: -1,
                metadata: [(ROUTE_BUCKETS.to_string(), buckets)].into(),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow::anyhow!("setting up the consumer of buckets {:?}: {e}", self.buckets))?;
        Ok(())
    }
}

/// The subject of a task order.
pub fn task_subject(route: &Route, tenant: Option<&str>, job: JobId) -> String {
    format!("kiln.tasks.{}.{}.{job}", route.id, tenant_token(tenant))
}

/// A tenant in subjects and consumer names (tenant names are lower-case
/// letters, digits and `-`); the admin's jobs are `_admin`'s.
fn tenant_token(tenant: Option<&str>) -> &str {
    tenant.unwrap_or("_admin")
}

/// A subject filter for every task order of `job`.
pub fn job_subjects(job: JobId) -> String {
    format!("kiln.tasks.*.*.{job}")
}

/// The `Nats-Msg-Id` of one publication of a task attempt: JetStream stores
/// a publication once however often it is sent. A task released unstarted
/// (by a worker that could not take it) is published again as a new message.
pub fn task_msg_id(job: JobId, seq: u64, attempt: u32, publication: u64) -> String {
    format!("{job}-{seq}-{attempt}-{publication}")
}

/// What a coordinator and its workers must share to work together: the Kiln
/// version, and the number of the wire format (orders, results, beats),
/// raised whenever their shape changes. Development builds keep one Kiln
/// version across changes of the format (single tasks became bundles of
/// them under 0.1.0), so the version alone let a worker built before a
/// change take orders it would misread. Shown as the workers' `version`.
pub const WIRE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+wire.2");

/// The key of the coordinator's own entry in [`WORKERS`]: its [`WIRE_VERSION`].
pub const COORDINATOR_KEY: &str = "_coordinator";

/// What the tasks of one order ended in, as a worker sends them back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultMsg {
    pub job: JobId,
    /// The worker that ran them.
    pub worker: String,
    /// How long running them took there, in µs (prepared job and plugin
    /// aside): the coordinator sizes the job's bundles by it.
    pub took_us: u64,
    pub results: Vec<TaskOutcome>,
}

/// What one task attempt ended in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub seq: u64,
    /// The attempt (the task's `attempts` when it was ordered).
    pub attempt: u32,
    pub outcome: Outcome,
}

/// [`crate::store::TaskResult`] on the wire. Externally tagged: an
/// internally tagged enum is read through a buffer of the whole value, which
/// cost the coordinator's results loop more than the rest of its parsing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded {
        etag: Option<String>,
        outputs: Vec<String>,
        bytes_in: u64,
        bytes_out: u64,
        duration_ms: u64,
        result: Option<serde_json::Value>,
    },
    Failed {
        error: TaskErrorRecord,
        duration_ms: u64,
        bytes_in: u64,
    },
    Retry {
        error: TaskErrorRecord,
    },
    Skipped,
    /// Not started: the worker could not take it (another version, a bucket
    /// it cannot reach, a plugin it could not load); `why` says which.
    Released {
        why: Option<String>,
    },
    /// An output's disk (or quota) is full: the job is suspended.
    DiskFull {
        message: String,
    },
}

/// A worker, as it describes itself every [`BEAT`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerBeat {
    pub name: String,
    pub version: String,
    /// Tasks it runs at once, and how many it runs now.
    pub slots: usize,
    pub busy: usize,
    /// Tasks it has finished since it started.
    pub done: u64,
    /// The buckets it can reach (from its own configuration).
    pub buckets: Vec<String>,
}

/// Connect to the NATS server at `url`, or to one of a NATS cluster's
/// (`nats://a:4222,nats://b:4222`; the client learns the others from it,
/// and moves to another when its server goes away).
pub async fn connect(url: &str) -> anyhow::Result<jetstream::Context> {
    let servers: Vec<&str> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let client = async_nats::ConnectOptions::new()
        .name(format!("kiln {}", env!("CARGO_PKG_VERSION")))
        .connect(servers)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to NATS at {url}: {e}"))?;
    Ok(jetstream::new(client))
}

/// The streams and stores, created if missing (by whichever of the
/// coordinator and the workers comes first).
pub struct Parts {
    pub tasks: stream::Stream,
    pub results: consumer::PullConsumer,
    pub plugins: object_store::ObjectStore,
    pub workers: kv::Store,
    pub buckets: kv::Store,
}

/// `replicas`: the coordinator's `[cluster] replicas`, to which it brings
/// the streams it finds; a worker passes `None` and takes them as they are
/// (creating them with one replica only if it comes first).
pub async fn ensure(js: &jetstream::Context, replicas: Option<usize>) -> anyhow::Result<Parts> {
    let err = |what: &str, e: &dyn std::fmt::Display| anyhow::anyhow!("setting up JetStream {what}: {e}");
    let num_replicas = replicas.unwrap_or(1);
    let work_queue = |name: &str, subjects: &str, duplicate_window: Duration| stream::Config {
        name: name.into(),
        subjects: vec![subjects.into()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        duplicate_window,
        num_replicas,
        ..Default::default()
    };
    let open = |config: stream::Config| async move {
        let name = config.name.clone();
        if replicas.is_some() {
            js.create_or_update_stream(config).await.map_err(|e| err(&name, &e))?;
            js.get_stream(&name).await.map_err(|e| err(&name, &e))
        } else {
            js.get_or_create_stream(config).await.map_err(|e| err(&name, &e))
        }
    };
    let tasks = open(work_queue(TASKS, "kiln.tasks.>", Duration::from_secs(120))).await?;
    if replicas.is_some() {
        // The one consumer of every order of the first cluster version: it
        // would overlap the routes' consumers, which the work queue refuses.
        let _ = tasks.delete_consumer("kiln-workers").await;
    }
    let results = open(work_queue(RESULTS, "kiln.results.>", Duration::from_secs(120))).await?;
    let results = results
        .get_or_create_consumer(
            COORDINATOR_CONSUMER,
            consumer::pull::Config {
                durable_name: Some(COORDINATOR_CONSUMER.into()),
                ack_policy: consumer::AckPolicy::Explicit,
                max_ack_pending: -1,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| err(COORDINATOR_CONSUMER, &e))?;
    if replicas.is_some() {
        bring_stores_to(js, num_replicas).await?;
    }
    let plugins = match js.get_object_store(PLUGINS).await {
        Ok(store) => store,
        Err(_) => js
            .create_object_store(object_store::Config { bucket: PLUGINS.into(), num_replicas, ..Default::default() })
            .await
            .map_err(|e| err(PLUGINS, &e))?,
    };
    let workers = match js.get_key_value(WORKERS).await {
        Ok(store) => store,
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: WORKERS.into(),
                max_age: BEAT * 3,
                num_replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| err(WORKERS, &e))?,
    };
    let buckets = match js.get_key_value(BUCKETS).await {
        Ok(store) => store,
        Err(_) => js
            .create_key_value(kv::Config { bucket: BUCKETS.into(), num_replicas, ..Default::default() })
            .await
            .map_err(|e| err(BUCKETS, &e))?,
    };
    Ok(Parts { tasks, results, plugins, workers, buckets })
}

/// Keep the KV buckets' and the object store's streams on `replicas`
/// servers too (they may have been created with one, by a worker that came
/// first, or before `replicas` was raised).
async fn bring_stores_to(js: &jetstream::Context, replicas: usize) -> anyhow::Result<()> {
    for name in [format!("KV_{WORKERS}"), format!("KV_{BUCKETS}"), format!("OBJ_{PLUGINS}")] {
        let Ok(mut stream) = js.get_stream(&name).await else { continue };
        let mut config = stream.info().await.map_err(|e| anyhow::anyhow!("reading {name}: {e}"))?.config.clone();
        if config.num_replicas != replicas {
            config.num_replicas = replicas;
            js.update_stream(config).await.map_err(|e| anyhow::anyhow!("keeping {name} on {replicas} servers: {e}"))?;
        }
    }
    Ok(())
}

/// Share the coordinator's cloud bucket definitions (without secrets) in
/// [`BUCKETS`], and take out those it no longer has.
pub async fn share_buckets(
    store: &kv::Store,
    buckets: &std::collections::BTreeMap<String, crate::config::BucketConfig>,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let shared: std::collections::BTreeMap<&String, crate::config::BucketConfig> =
        buckets.iter().filter_map(|(name, b)| b.shareable().map(|s| (name, s))).collect();
    let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("sharing the bucket definitions: {e}");
    for (name, definition) in &shared {
        let bytes = serde_json::to_vec(definition).expect("definitions serialise");
        store.put(name.as_str(), bytes.into()).await.map_err(|e| failed(&e))?;
    }
    let mut keys = store.keys().await.map_err(|e| failed(&e))?;
    let mut gone = Vec::new();
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| failed(&e))?;
        if !shared.contains_key(&key) {
            gone.push(key);
        }
    }
    for key in gone {
        store.delete(&key).await.map_err(|e| failed(&e))?;
    }
    Ok(())
}

/// The bucket definitions the coordinator shares (none before it first started).
pub async fn shared_buckets(
    js: &jetstream::Context,
) -> anyhow::Result<std::collections::BTreeMap<String, crate::config::BucketConfig>> {
    use futures::StreamExt;
    let mut shared = std::collections::BTreeMap::new();
    let Ok(store) = js.get_key_value(BUCKETS).await else { return Ok(shared) };
    let mut keys = store.keys().await.map_err(|e| anyhow::anyhow!("reading the shared buckets: {e}"))?;
    while let Some(key) = keys.next().await {
        let Ok(key) = key else { continue };
        if let Ok(Some(bytes)) = store.get(&key).await {
            match serde_json::from_slice(&bytes) {
                Ok(definition) => {
                    shared.insert(key, definition);
                }
                Err(e) => {
                    tracing::warn!(bucket = %key, error = %e, "a shared bucket definition this worker cannot read")
                }
            }
        }
    }
    Ok(shared)
}

/// The workers that beat lately.
pub async fn live_workers(workers: &kv::Store) -> anyhow::Result<Vec<WorkerBeat>> {
    use futures::StreamExt;
    let mut keys = workers.keys().await.map_err(|e| anyhow::anyhow!("listing workers: {e}"))?;
    let mut beats = Vec::new();
    while let Some(key) = keys.next().await {
        let Ok(key) = key else { continue };
        if key == COORDINATOR_KEY {
            continue;
        }
        if let Ok(Some(bytes)) = workers.get(&key).await
            && let Ok(beat) = serde_json::from_slice::<WorkerBeat>(&bytes)
        {
            beats.push(beat);
        }
    }
    beats.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(beats)
}
