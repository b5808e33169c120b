//! A task order: one task as a worker on another machine runs it, with
//! everything [`super::worker::attempt`] needs and nothing of the daemon that
//! sent it. The plugin is named by its digest (the worker loads it from its
//! own cache, or fetches it); the buckets are named and resolved with the
//! worker's own configuration, so secrets never travel with a task.
//!
//! It is what a cluster's executor sends a worker (issue 18's coordinator);
//! the local pool runs [`Prepared`] directly. A message is one task, or a
//! bundle of a job's short tasks (see [`crate::jobs::remote`]), and their
//! job's [`JobPart`], the part written once per job and named by its digest.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Prepared;
use crate::auth::RoleRecord;
use crate::model::{JobSpec, TaskRecord};
use crate::objects::Buckets;
use crate::runtime::{Limits, Plugin};
use crate::template::Template;

/// What every task of one job shares. Sent with each order as JSON made
/// once per job ([`WirePart`]) with its digest beside it, so the coordinator
/// does not serialise the job's spec per task, nor a worker parse and
/// prepare it per task: it prepares a job's part once and keeps it by digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobPart {
    pub tenant: Option<String>,
    pub role: Option<RoleRecord>,
    pub limits: Limits,
    /// The job definition's digest (`skip_unchanged` remembers etags by it).
    pub definition: String,
    /// The plugin's sha256, and its name for messages.
    pub plugin_sha256: String,
    pub plugin: String,
    pub params: String,
    /// The job's spec without its explicit keys (a task needs only its own).
    pub spec: JobSpec,
    /// Whether the job writes into the bucket it lists (its selection then
    /// guards the outputs): decided with the keys the spec no longer holds.
    pub own_selection: bool,
}

/// A job's part as it goes out: serialised once, and its digest.
pub struct WirePart {
    pub digest: String,
    json: Box<RawValue>,
    max_deliveries: u32,
}

/// A task message as written: the part as JSON made beforehand.
#[derive(Serialize)]
struct OrderOut<'a> {
    kiln: &'a str,
    max_deliveries: u32,
    part_digest: &'a str,
    part: &'a RawValue,
    tasks: &'a [TaskOut<'a>],
}

/// One task of an order, as written.
#[derive(Serialize)]
pub struct TaskOut<'a> {
    pub task: &'a TaskRecord,
    /// Whether a failure may be retried (attempts are left).
    pub may_retry: bool,
    /// The etag of the source when the job's definition last ran it (`skip_unchanged`).
    pub last_etag: Option<&'a str>,
}

/// One task of an order, as read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskIn {
    pub task: TaskRecord,
    pub may_retry: bool,
    pub last_etag: Option<String>,
}

/// A task message as read: the part left unparsed until the version is
/// checked and the digest is not known here.
#[derive(Deserialize)]
pub struct OrderIn<'a> {
    pub kiln: String,
    /// How many times the order may be handed to a worker: the worker that
    /// receives it once more fails it with `worker-lost` instead of running
    /// it. Outside the part: it is tested before the job is prepared here
    /// (which may fetch and compile its plugin, what may have killed the others).
    pub max_deliveries: u32,
    pub part_digest: String,
    #[serde(borrow)]
    part: &'a RawValue,
    /// One task, or a bundle of short ones, all of the part's job: run one
    /// after another in one slot, and answered by one result.
    pub tasks: Vec<TaskIn>,
}

/// Why a worker cannot run an order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error(
        "the task was sent by Kiln {sent}, and this worker is Kiln {own}: run workers of the coordinator's version"
    )]
    Version { sent: String, own: String },
    #[error("the task's job description does not read: {0}")]
    Part(String),
    #[error("the plugin `{plugin}` loaded for this task has digest {loaded}, not the {wanted} the task names")]
    WrongPlugin { plugin: String, loaded: String, wanted: String },
    #[error("bucket `{bucket}` ({field}) is not one this worker can reach: {reason}")]
    Bucket { field: &'static str, bucket: String, reason: String },
    #[error("the task's output template does not parse here: {0}")]
    Template(String),
    #[error("the order holds no task")]
    Empty,
    #[error("the task order does not read: {0}")]
    Unreadable(String),
}

impl JobPart {
    /// The part of a prepared job's orders.
    pub fn of(prepared: &Prepared) -> JobPart {
        let mut spec = prepared.spec.clone();
        spec.input.keys = Vec::new();
        JobPart {
            tenant: prepared.tenant.clone(),
            role: prepared.role.clone(),
            limits: prepared.limits,
            definition: prepared.definition.clone(),
            plugin_sha256: prepared.plugin.sha256.clone(),
            plugin: prepared.plugin.info.name.clone(),
            params: prepared.params.clone(),
            spec,
            own_selection: prepared.own_selection.is_some(),
        }
    }

    /// The job as this worker runs it: `plugin` (loaded by the part's
    /// digest) and the buckets of the worker's own configuration.
    pub fn prepare(&self, buckets: &Buckets, plugin: Plugin) -> Result<Arc<Prepared>, OrderError> {
        if plugin.sha256 != self.plugin_sha256 {
            return Err(OrderError::WrongPlugin {
                plugin: self.plugin.clone(),
                loaded: plugin.sha256.clone(),
                wanted: self.plugin_sha256.clone(),
            });
        }
        let bucket = |field: &'static str, name: &str| {
            buckets.get(name).map_err(|e| OrderError::Bucket { field, bucket: name.to_string(), reason: e.to_string() })
        };
        let input = bucket("input.bucket", &self.spec.input.bucket)?;
        let output = bucket("output.bucket", &self.spec.output.bucket)?;
        let template = Template::parse(&self.spec.output.template).map_err(|e| OrderError::Template(e.to_string()))?;
        let own_selection = if self.own_selection { crate::select::Filter::for_job(&self.spec).ok() } else { None };
        Ok(Arc::new(Prepared {
            plugin_key: format!("{}/{}", self.tenant.as_deref().unwrap_or_default(), self.plugin),
            plugin,
            tenant: self.tenant.clone(),
            role: self.role.clone(),
            limits: self.limits,
            definition: self.definition.clone(),
            params: self.params.clone(),
            template,
            input,
            output,
            spec: self.spec.clone(),
            own_selection,
        }))
    }
}

impl WirePart {
    /// `max_deliveries`: the cluster's, sent with each order.
    pub fn of(part: &JobPart, max_deliveries: u32) -> WirePart {
        use sha2::Digest;
        let json = serde_json::to_string(part).expect("job parts serialise");
        let digest = hex::encode(sha2::Sha256::digest(json.as_bytes()));
        WirePart { digest, json: RawValue::from_string(json).expect("serde_json writes JSON"), max_deliveries }
    }

    /// The message of `tasks`, of this part's job.
    pub fn order(&self, tasks: &[TaskOut<'_>]) -> Vec<u8> {
        let kiln = crate::cluster::WIRE_VERSION;
        let order =
            OrderOut { kiln, max_deliveries: self.max_deliveries, part_digest: &self.digest, part: &self.json, tasks };
        serde_json::to_vec(&order).expect("orders serialise")
    }
}

/// What a task message of any version holds: enough to answer one this
/// worker cannot read with why. Its tasks are under `tasks` (a bundle), or
/// `task` (one, as the first cluster versions sent them).
#[derive(Deserialize)]
pub struct OrderStub {
    pub kiln: String,
    #[serde(default)]
    task: Option<TaskStub>,
    #[serde(default)]
    tasks: Vec<TaskStubIn>,
}

#[derive(Deserialize)]
struct TaskStubIn {
    task: TaskStub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TaskStub {
    pub job: crate::model::JobId,
    pub seq: u64,
    pub attempts: u32,
}

impl OrderStub {
    /// A message that is not an order of this version: of another version
    /// (then its stub, and the refusal to answer with), or `None`.
    pub fn of_another_version(payload: &[u8]) -> Option<(OrderStub, OrderError)> {
        let stub: OrderStub = serde_json::from_slice(payload).ok()?;
        if stub.tasks().is_empty() {
            return None;
        }
        same_version(&stub.kiln).err().map(|refused| (stub, refused))
    }

    /// The tasks it orders, whatever its shape.
    pub fn tasks(&self) -> Vec<TaskStub> {
        self.task.iter().copied().chain(self.tasks.iter().map(|t| t.task)).collect()
    }
}

/// Refused unless `sent` is this worker's Kiln version and wire format.
fn same_version(sent: &str) -> Result<(), OrderError> {
    let own = crate::cluster::WIRE_VERSION;
    if sent == own { Ok(()) } else { Err(OrderError::Version { sent: sent.to_string(), own: own.to_string() }) }
}

impl<'a> OrderIn<'a> {
    /// Read a task message; the part stays unparsed.
    pub fn read(payload: &'a [u8]) -> Result<OrderIn<'a>, OrderError> {
        let order: OrderIn = serde_json::from_slice(payload).map_err(|e| OrderError::Unreadable(e.to_string()))?;
        if order.tasks.is_empty() {
            return Err(OrderError::Empty);
        }
        Ok(order)
    }

    /// Refused unless sent by this Kiln version (whose shape the part then has).
    pub fn check_version(&self) -> Result<(), OrderError> {
        same_version(&self.kiln)
    }

    /// The job's part, parsed: after [`Self::check_version`].
    pub fn part(&self) -> Result<JobPart, OrderError> {
        serde_json::from_str(self.part.get()).map_err(|e| OrderError::Part(e.to_string()))
    }
}

/// The buckets a job's tasks read and write: a worker runs them only if it reaches all of them.
pub fn buckets(spec: &JobSpec) -> Vec<String> {
    let mut buckets = vec![spec.input.bucket.clone(), spec.output.bucket.clone()];
    buckets.sort();
    buckets.dedup();
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::worker::{Attempted, attempt};
    use crate::store::TaskResult;

    #[tokio::test]
    async fn a_task_runs_from_its_order_alone_and_a_mismatched_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config { data_dir: dir.path().to_path_buf(), ..Default::default() };
        let buckets = Buckets::new(&config).unwrap();
        let input_dir = config.local_buckets_dir().join("in/photos");
        std::fs::create_dir_all(&input_dir).unwrap();
        std::fs::write(input_dir.join("a.txt"), "hello").unwrap();
        std::fs::create_dir_all(config.local_buckets_dir().join("out")).unwrap();
        let runtime = crate::engine::plugin_runtime(Default::default()).unwrap();
        let plugin = runtime.load(crate::bundled::get("copy").unwrap()).await.unwrap();

        // As the coordinator prepares the job, then orders one task of it.
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "input": {"bucket": "in", "prefix": "photos/", "keys": ["photos/a.txt"]},
            "style": "copy",
            "output": {"bucket": "out", "template": "copies/{basename}"},
        }))
        .unwrap();
        let prepared = Prepared {
            plugin: plugin.clone(),
            plugin_key: "/copy".into(),
            tenant: None,
            role: None,
            limits: Limits::default(),
            definition: spec.definition(),
            params: String::new(),
            template: Template::parse(&spec.output.template).unwrap(),
            input: buckets.get("in").unwrap(),
            output: buckets.get("out").unwrap(),
            spec: spec.clone(),
            own_selection: None,
        };
        let task = TaskRecord::new(7, 1, "photos/a.txt".into());
        let wire = WirePart::of(&JobPart::of(&prepared), 3);
        let message = wire.order(&[TaskOut { task: &task, may_retry: true, last_etag: None }]);

        // On the worker: the order as it arrived, its own buckets and plugin.
        let arrived = OrderIn::read(&message).unwrap();
        let one = TaskIn { task: task.clone(), may_retry: true, last_etag: None };
        assert_eq!(arrived.tasks, std::slice::from_ref(&one));
        assert_eq!(arrived.part_digest, wire.digest);
        arrived.check_version().unwrap();
        let part = arrived.part().unwrap();
        assert!(part.spec.input.keys.is_empty(), "the job's keys stay home");
        assert_eq!(arrived.max_deliveries, 3);
        // A bundle of two tasks of the job: the same part and digest, parsed once per worker.
        let b = TaskRecord::new(7, 2, "photos/b.txt".into());
        let bundle = wire.order(&[
            TaskOut { task: &task, may_retry: true, last_etag: None },
            TaskOut { task: &b, may_retry: false, last_etag: Some("\"e1\"") },
        ]);
        let two = OrderIn::read(&bundle).unwrap();
        assert_eq!(two.part_digest, wire.digest);
        assert_eq!(two.tasks, [one, TaskIn { task: b, may_retry: false, last_etag: Some("\"e1\"".into()) }]);
        let empty = wire.order(&[]);
        assert!(matches!(OrderIn::read(&empty), Err(OrderError::Empty)));
        let here = part.prepare(&buckets, plugin.clone()).unwrap();
        let Attempted::Done(TaskResult::Succeeded { outputs, .. }) =
            attempt(&runtime, &here, arrived.tasks[0].task.clone(), true, None).await
        else {
            panic!("the copy did not succeed")
        };
        assert_eq!(outputs, ["copies/a.txt"]);
        assert_eq!(std::fs::read_to_string(config.local_buckets_dir().join("out/copies/a.txt")).unwrap(), "hello");

        // Another version's order is refused before its part is read (its shape may differ).
        let mut other: serde_json::Value = serde_json::from_slice(&message).unwrap();
        other["kiln"] = "0.0.1".into();
        other["part"] = serde_json::json!({"shape": "of another version"});
        let other = serde_json::to_vec(&other).unwrap();
        let err = OrderIn::read(&other).unwrap().check_version().unwrap_err();
        assert!(matches!(err, OrderError::Version { .. }), "{err}");
        // So is one of this Kiln version from a build of an older wire format,
        // which sent the bare version: its part's shape may differ as well.
        let mut older: serde_json::Value = serde_json::from_slice(&message).unwrap();
        older["kiln"] = env!("CARGO_PKG_VERSION").into();
        let err = OrderIn::read(&serde_json::to_vec(&older).unwrap()).unwrap().check_version().unwrap_err();
        assert!(err.to_string().contains(crate::cluster::WIRE_VERSION), "{err}");
        // One whose whole shape differs is still answered: its task, and why.
        let other = serde_json::to_vec(&serde_json::json!({
            "kiln": "0.0.1", "order": "of another shape", "task": {"job": 7, "seq": 1, "attempts": 1, "more": true},
        }))
        .unwrap();
        assert!(OrderIn::read(&other).is_err());
        let (stub, err) = OrderStub::of_another_version(&other).unwrap();
        assert_eq!(stub.tasks(), [TaskStub { job: 7, seq: 1, attempts: 1 }]);
        assert!(err.to_string().contains("Kiln 0.0.1"), "{err}");
        assert!(OrderStub::of_another_version(&message).is_none(), "this version's order is no stub");
        // A bundle of another version: every task of it is answered.
        let mut other: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
        other["kiln"] = "0.0.1".into();
        let (stub, _) = OrderStub::of_another_version(&serde_json::to_vec(&other).unwrap()).unwrap();
        assert_eq!(stub.tasks().iter().map(|t| t.seq).collect::<Vec<_>>(), [1, 2]);
        let mut other = part.clone();
        other.plugin_sha256 = "0".repeat(64);
        assert!(matches!(other.prepare(&buckets, plugin.clone()), Err(OrderError::WrongPlugin { .. })));
        let mut other = part.clone();
        other.spec.output.bucket = "elsewhere".into();
        let Err(err) = other.prepare(&buckets, plugin) else { panic!("a bucket this worker lacks") };
        assert!(err.to_string().contains("`elsewhere` (output.bucket)"), "{err}");
    }
}
