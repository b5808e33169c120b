//! Prometheus metrics: one registry for the process, rendered at `/metrics`.
//!
//! Counters and histograms are updated where things happen (workers, the
//! runtime, the HTTP layer); gauges of tasks by state and queue depth are
//! read from the store at scrape time, so they are never out of step with it.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route's pattern (`/v1/jobs/{id}`), never the raw path: bounded cardinality.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkerLabel {
    /// A cluster worker's name.
    pub worker: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabel {
    /// `hit` or `compiled`.
    pub cache: String,
}

pub struct Metrics {
    registry: Registry,
    /// Tasks finished, by end state (succeeded, failed, skipped) and retries.
    pub tasks_finished: Family<StateLabel, Counter>,
    pub task_duration: Histogram,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub plugin_load: Family<CacheLabel, Histogram>,
    pub instantiate: Histogram,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Histogram,
    /// Set at scrape time from the store.
    pub tasks: Family<StateLabel, Gauge>,
    pub queue_depth: Gauge,
    pub jobs_running: Gauge,
    /// Webhook delivery attempts, by result (delivered, failed, given_up).
    pub webhooks: Family<StateLabel, Counter>,
    /// A cluster's workers, set at scrape time from their beats.
    pub worker_done: Family<WorkerLabel, Gauge>,
    pub worker_busy: Family<WorkerLabel, Gauge>,
    pub worker_slots: Family<WorkerLabel, Gauge>,
    /// Task orders waiting in JetStream for a worker.
    pub cluster_queued: Gauge,
    /// Orders sent to the workers, and the tasks they carried (a bundle carries several).
    pub cluster_orders: Counter,
    pub cluster_tasks_ordered: Counter,
}

fn seconds_buckets() -> impl Iterator<Item = f64> {
    // 100 us to ~105 s.
    exponential_buckets(0.0001, 4.0, 11)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("kiln");
        let m = Metrics {
            tasks_finished: Family::default(),
            task_duration: Histogram::new(seconds_buckets()),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            plugin_load: Family::new_with_constructor(|| Histogram::new(seconds_buckets())),
            instantiate: Histogram::new(exponential_buckets(0.000_005, 4.0, 10)),
            http_requests: Family::default(),
            http_duration: Histogram::new(seconds_buckets()),
            tasks: Family::default(),
            queue_depth: Gauge::default(),
            jobs_running: Gauge::default(),
            webhooks: Family::default(),
            worker_done: Family::default(),
            worker_busy: Family::default(),
            worker_slots: Family::default(),
            cluster_queued: Gauge::default(),
            cluster_orders: Counter::default(),
            cluster_tasks_ordered: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "tasks_finished",
            "Task attempts that ended, by state (retry: a transient failure, tried again)",
            m.tasks_finished.clone(),
        );
        registry.register_with_unit(
            "task_duration",
            "Time of one task attempt, from claim to result",
            prometheus_client::registry::Unit::Seconds,
            m.task_duration.clone(),
        );
        registry.register_with_unit(
            "task_input",
            "Bytes read from sources by tasks",
            prometheus_client::registry::Unit::Bytes,
            m.bytes_in.clone(),
        );
        registry.register_with_unit(
            "task_output",
            "Bytes written to outputs by successful tasks",
            prometheus_client::registry::Unit::Bytes,
            m.bytes_out.clone(),
        );
        registry.register_with_unit(
            "plugin_load",
            "Time to load a plugin: compile, or read from the compile cache",
            prometheus_client::registry::Unit::Seconds,
            m.plugin_load.clone(),
        );
        registry.register_with_unit(
            "plugin_instantiate",
            "Time to instantiate a plugin for one task",
            prometheus_client::registry::Unit::Seconds,
            m.instantiate.clone(),
        );
        registry.register("http_requests", "HTTP requests, by route and status", m.http_requests.clone());
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request",
            prometheus_client::registry::Unit::Seconds,
            m.http_duration.clone(),
        );
        registry.register("tasks", "Tasks of all stored jobs, by state", m.tasks.clone());
        registry.register("queue_depth", "Pending tasks of Running jobs", m.queue_depth.clone());
        registry.register("jobs_running", "Jobs in the Running state", m.jobs_running.clone());
        registry.register("webhook_attempts", "Webhook delivery attempts, by result", m.webhooks.clone());
        registry.register(
            "worker_tasks_done",
            "Tasks a cluster worker finished since it started",
            m.worker_done.clone(),
        );
        registry.register("worker_busy", "Tasks a cluster worker runs now", m.worker_busy.clone());
        registry.register("worker_slots", "Tasks a cluster worker runs at once, at most", m.worker_slots.clone());
        registry.register("cluster_queued", "Task orders waiting in JetStream for a worker", m.cluster_queued.clone());
        registry.register(
            "cluster_orders",
            "Orders sent to the cluster's workers (each one task, or a bundle of short ones)",
            m.cluster_orders.clone(),
        );
        registry.register(
            "cluster_tasks_ordered",
            "Tasks sent to the cluster's workers, in orders",
            m.cluster_tasks_ordered.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    pub fn webhook(&self, result: &str) {
        self.webhooks.get_or_create(&StateLabel { state: result.to_string() }).inc();
    }

    pub fn task_finished(&self, state: &str, duration: Duration, bytes_in: u64, bytes_out: u64) {
        self.tasks_finished.get_or_create(&StateLabel { state: state.to_string() }).inc();
        self.task_duration.observe(duration.as_secs_f64());
        self.bytes_in.inc_by(bytes_in);
        self.bytes_out.inc_by(bytes_out);
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The plugin runtime's measurements, into this process's registry.
pub struct RuntimeMetrics;

impl crate::runtime::Observer for RuntimeMetrics {
    fn plugin_loaded(&self, cache: crate::runtime::CacheOutcome, took: Duration) {
        let cache = if cache == crate::runtime::CacheOutcome::Hit { "hit" } else { "compiled" };
        global().plugin_load.get_or_create(&CacheLabel { cache: cache.into() }).observe(took.as_secs_f64());
    }
    fn instantiated(&self, took: Duration) {
        global().instantiate.observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format_with_help_and_labels() {
        let m = Metrics::new();
        m.task_finished("succeeded", Duration::from_millis(3), 10, 20);
        m.http_requests
            .get_or_create(&HttpLabels { method: "GET".into(), route: "/v1/jobs/{id}".into(), status: 200 })
            .inc();
        let text = m.render();
        assert!(text.contains("# HELP kiln_tasks_finished"), "{text}");
        assert!(text.contains("kiln_tasks_finished_total{state=\"succeeded\"} 1"), "{text}");
        assert!(text.contains("kiln_task_input_bytes_total 10"), "{text}");
        assert!(
            text.contains("kiln_http_requests_total{method=\"GET\",route=\"/v1/jobs/{id}\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(text.contains("kiln_task_duration_seconds_bucket"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
