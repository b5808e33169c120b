//! A task order: one task as a worker on another machine runs it, with
//! everything [`super::worker::attempt`] needs and nothing of the daemon that
//! sent it. The plugin is named by its digest (the worker loads it from its
//! own cache, or fetches it); the buckets are named and resolved with the
//! worker's own configuration, so secrets never travel with a task.
//!
//! It is what a cluster's executor sends a worker (issue 18's coordinator);
//! the local pool runs [`Prepared`] directly.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Prepared;
use crate::auth::RoleRecord;
use crate::model::{JobSpec, TaskRecord};
use crate::objects::Buckets;
use crate::runtime::{Limits, Plugin};
use crate::template::Template;

/// One task, self-contained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOrder {
    /// The Kiln version that sent it: a worker of another version refuses it.
    pub kiln: String,
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
    pub task: TaskRecord,
    /// Whether an I/O failure may be retried (attempts left).
    pub may_retry: bool,
    /// For `skip_unchanged`: the source's etag when the job's definition last processed it.
    pub last_etag: Option<String>,
    /// How many times the order may be handed to a worker: the worker that
    /// receives it once more fails it with `worker-lost` instead of running it.
    pub max_deliveries: u32,
}

/// Why a worker cannot run an order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error(
        "the task was sent by Kiln {sent}, and this worker is Kiln {own}: run workers of the coordinator's version"
    )]
    Version { sent: String, own: String },
    #[error("the plugin `{plugin}` loaded for this task has digest {loaded}, not the {wanted} the task names")]
    WrongPlugin { plugin: String, loaded: String, wanted: String },
    #[error("bucket `{bucket}` ({field}) is not one this worker can reach: {reason}")]
    Bucket { field: &'static str, bucket: String, reason: String },
    #[error("the task's output template does not parse here: {0}")]
    Template(String),
}

impl TaskOrder {
    /// The order for one claimed task of a prepared job.
    pub fn of(prepared: &Prepared, task: TaskRecord, may_retry: bool, last_etag: Option<String>) -> TaskOrder {
        let mut spec = prepared.spec.clone();
        spec.input.keys = Vec::new();
        TaskOrder {
            kiln: env!("CARGO_PKG_VERSION").to_string(),
            tenant: prepared.tenant.clone(),
            role: prepared.role.clone(),
            limits: prepared.limits,
            definition: prepared.definition.clone(),
            plugin_sha256: prepared.plugin.sha256.clone(),
            plugin: prepared.plugin.info.name.clone(),
            params: prepared.params.clone(),
            spec,
            own_selection: prepared.own_selection.is_some(),
            task,
            may_retry,
            last_etag,
            max_deliveries: crate::config::ClusterConfig::default().max_deliveries,
        }
    }

    /// The buckets the task reads and writes: a worker runs it only if it reaches all of them.
    pub fn buckets(spec: &JobSpec) -> Vec<String> {
        let mut buckets = vec![spec.input.bucket.clone(), spec.output.bucket.clone()];
        buckets.sort();
        buckets.dedup();
        buckets
    }

    /// The job as this worker runs it: `plugin` (loaded by the order's
    /// digest) and the buckets of the worker's own configuration.
    pub fn prepare(&self, buckets: &Buckets, plugin: Plugin) -> Result<Arc<Prepared>, OrderError> {
        let own = env!("CARGO_PKG_VERSION");
        if self.kiln != own {
            return Err(OrderError::Version { sent: self.kiln.clone(), own: own.to_string() });
        }
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
        let order = TaskOrder::of(&prepared, task, true, None);
        assert!(order.spec.input.keys.is_empty(), "the job's keys stay home");

        // On the worker: the order as it arrived, its own buckets and plugin.
        let arrived: TaskOrder = serde_json::from_slice(&serde_json::to_vec(&order).unwrap()).unwrap();
        assert_eq!(arrived, order);
        let here = arrived.prepare(&buckets, plugin.clone()).unwrap();
        let Attempted::Done(TaskResult::Succeeded { outputs, .. }) =
            attempt(&runtime, &here, arrived.task.clone(), arrived.may_retry, arrived.last_etag.clone()).await
        else {
            panic!("the copy did not succeed")
        };
        assert_eq!(outputs, ["copies/a.txt"]);
        assert_eq!(std::fs::read_to_string(config.local_buckets_dir().join("out/copies/a.txt")).unwrap(), "hello");

        let mut other = arrived.clone();
        other.kiln = "0.0.1".into();
        assert!(matches!(other.prepare(&buckets, plugin.clone()), Err(OrderError::Version { .. })));
        let mut other = arrived.clone();
        other.plugin_sha256 = "0".repeat(64);
        assert!(matches!(other.prepare(&buckets, plugin.clone()), Err(OrderError::WrongPlugin { .. })));
        let mut other = arrived;
        other.spec.output.bucket = "elsewhere".into();
        let Err(err) = other.prepare(&buckets, plugin) else { panic!("a bucket this worker lacks") };
        assert!(err.to_string().contains("`elsewhere` (output.bucket)"), "{err}");
    }
}
