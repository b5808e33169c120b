//! The records Kiln keeps: jobs, tasks and styles, as stored and as the API shows them.
//!
//! Over 500 lines on purpose: these are plain records (fields, their
//! defaults and their docs, which are also the OpenAPI schema), kept in one
//! file so the API's shapes are read in one place.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

pub type JobId = u64;

/// Job states. Terminal: Succeeded, Failed, Cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Ready,
    Running,
    Suspended,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Ready => "ready",
            JobState::Running => "running",
            JobState::Suspended => "suspended",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// Task states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl TaskState {
    pub const ALL: [TaskState; 5] =
        [TaskState::Pending, TaskState::Running, TaskState::Succeeded, TaskState::Failed, TaskState::Skipped];
    /// Succeeded, Failed or Skipped: the task is done (until a retry-failed).
    pub fn is_finished(self) -> bool {
        !matches!(self, TaskState::Pending | TaskState::Running)
    }
    /// Stable byte for the state index in the store.
    pub fn code(self) -> u8 {
        self as u8
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Skipped => "skipped",
        }
    }
}

/// Which objects a job reads: a list of keys, or a prefix with an optional
/// filter on file names (comma-separated lists, as in the cloud consoles).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub bucket: String,
    /// Explicit keys. Exclusive with `prefix` and the filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Keys starting with this; empty means the whole bucket.
    #[serde(default)]
    pub prefix: String,
    /// Keep file names ending with one of these, e.g. `.jpg,.png`.
    #[serde(default, deserialize_with = "comma_list", skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub suffixes: Vec<String>,
    /// Keep file names starting with one of these, e.g. `IMG_,DSC`.
    #[serde(default, deserialize_with = "comma_list", skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<String>)]
    pub file_prefixes: Vec<String>,
    /// A glob over the whole key, e.g. `photos/**/IMG_*.{jpg,png}`: `*` and `?`
    /// stay within one segment, `**` crosses `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    /// Keep objects of at least this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u64>,
    /// Keep objects of at most this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
    /// Keep objects last modified at or after this time: RFC 3339 or unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub modified_after: Option<Timestamp>,
    /// Keep objects last modified before this time: RFC 3339 or unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub modified_before: Option<Timestamp>,
    /// An object listing the keys to process, instead of a listing. Exclusive
    /// with `keys`, `prefix` and every filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestSpec>,
}

/// A manifest: an object in a bucket that lists the keys to process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestSpec {
    /// The manifest's key, e.g. `lists/batch1.csv`.
    pub key: String,
    /// The manifest's bucket; default: `input.bucket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Default: from the key's extension (`.csv`; `.jsonl`, `.ndjson`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ManifestFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ManifestFormat {
    /// One key per line, or `bucket,key`; an optional header `key` or `bucket,key`; RFC 4180 quoting.
    Csv,
    /// `{"key": "…"}` per line.
    Jsonl,
}

/// A point in time in whole unix seconds. Read from an RFC 3339 string
/// (`2024-06-01T00:00:00Z`, any offset) or a number of unix seconds; shown as RFC 3339 in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match chrono::DateTime::from_timestamp(self.0, 0) {
            Some(t) => s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            None => s.serialize_i64(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Secs(i64),
            Text(String),
        }
        match Either::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected an RFC 3339 time (`2024-06-01T00:00:00Z`) or unix seconds")
        })? {
            Either::Secs(n) => Ok(Timestamp(n)),
            Either::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl std::str::FromStr for Timestamp {
    type Err = String;
    fn from_str(t: &str) -> Result<Self, String> {
        if let Ok(n) = t.trim().parse::<i64>() {
            return Ok(Timestamp(n));
        }
        chrono::DateTime::parse_from_rfc3339(t.trim())
            .map(|d| Timestamp(d.timestamp()))
            .map_err(|e| format!("`{t}` is not an RFC 3339 time like `2024-06-01T00:00:00Z` nor unix seconds: {e}"))
    }
}

/// Where outputs go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub bucket: String,
    /// e.g. `thumbs/{dirname}/{barename}.{autoext}`; see the README for variables and path rules.
    pub template: String,
}

/// What a client asks for when creating a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    #[serde(default)]
    pub name: Option<String>,
    pub input: InputSpec,
    /// A saved style's name, or an inline style `PLUGIN/params`.
    pub style: String,
    pub output: OutputSpec,
    /// Tasks of this job running at once (short tasks are claimed ahead of
    /// the workers, so more may be claimed).
    #[serde(default = "default_concurrency")]
    #[schema(minimum = 1, maximum = 10000)]
    pub concurrency: u32,
    /// Stop the job at its first failed task.
    #[serde(default)]
    pub fast_fail: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The role whose grants bound what the job reads and writes. Required
    /// for a tenant's job when the tenant has more than one role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Write the completion report to a bucket when the job ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportSpec>,
    /// Webhook notifications of state changes (and, if asked, of each finished task).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<NotifySpec>,
    /// Higher runs first among the tenant's jobs; can be changed while the job runs.
    #[serde(default)]
    pub priority: i32,
    /// At most this many tasks started per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_tasks_per_second: Option<u32>,
    /// Skip a source whose etag equals the one recorded by the last successful
    /// run of the same job definition (input, style, output and role).
    #[serde(default)]
    pub skip_unchanged: bool,
    /// After the backfill, keep watching the selection and process new or
    /// changed objects until the job is suspended or cancelled.
    #[serde(default)]
    pub follow: bool,
    /// How often a following job lists its selection again.
    #[serde(default = "default_follow_interval", with = "humantime_serde")]
    #[schema(value_type = String, example = "30s")]
    pub follow_interval: std::time::Duration,
    /// Other limits for each of this job's tasks than the daemon's defaults:
    /// lower ones, or higher up to the daemon's `runtime.max_limits` and the
    /// tenant's quotas (e.g. a remux of multi-GiB films).
    #[serde(default, skip_serializing_if = "JobLimits::is_empty")]
    pub limits: JobLimits,
}

/// Per-task limits a job asks for; an absent field keeps the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobLimits {
    /// Wall-clock time of one task, e.g. `10m`.
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "10m", pattern = r"^[0-9]{1,10} ?(nsec|ns|usec|us|µs|msec|ms|seconds|second|sec|s|minutes|minute|min|m|hours|hour|hr|h|days|day|d|weeks|week|w|months|month|M|years|year|y)( ?[0-9]{1,10} ?(nsec|ns|usec|us|µs|msec|ms|seconds|second|sec|s|minutes|minute|min|m|hours|hour|hr|h|days|day|d|weeks|week|w|months|month|M|years|year|y))*$")]
    pub deadline: Option<std::time::Duration>,
    /// Bytes of all outputs of one task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_output: Option<u64>,
    /// Linear memory of one task's plugin instance, in bytes; at most the
    /// daemon's `runtime.limits.max_memory` (a job may only lower it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1048576)]
    pub max_memory: Option<u64>,
}

impl JobLimits {
    pub fn is_empty(&self) -> bool {
        *self == JobLimits::default()
    }
}

impl JobSpec {
    /// The digest of the job's definition: its input, style, output and role.
    pub fn definition(&self) -> String {
        use sha2::Digest;
        let what =
            serde_json::json!({"input": self.input, "style": self.style, "output": self.output, "role": self.role});
        hex::encode(sha2::Sha256::digest(what.to_string().as_bytes()))
    }
}

fn default_follow_interval() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

/// Where a job's webhook events go. The secret signs each request and is
/// never shown again: it is kept apart from the job record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// `http://` or `https://` URL that receives CloudEvents 1.0 JSON POSTs. Its host
    /// must be a public address (not loopback, private, link-local, …), unless the
    /// daemon's admin sets `webhooks.allow_private_networks`.
    #[schema(pattern = r"^https?://[^\s/?#]+([/?#]\S*)?$")]
    pub url: String,
    /// HMAC-SHA256 key for the `Kiln-Signature` header (at least 16 characters). Write-only.
    #[serde(default, skip_serializing)]
    pub secret: String,
    /// Also send one event per finished task.
    #[serde(default)]
    pub task_events: bool,
}

/// Where and how the completion report is written when a job ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    pub bucket: String,
    /// The report's key; `{jobid}` is the only variable, e.g. `reports/{jobid}.csv`.
    pub key: String,
    /// Default: from the key's extension (`.jsonl`, `.ndjson`: jsonl), else csv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ReportFormat>,
    #[serde(default)]
    pub scope: ReportScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    Csv,
    Jsonl,
}

/// Which tasks a report lists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportScope {
    #[default]
    All,
    Failed,
}

fn default_concurrency() -> u32 {
    8
}

/// Accept `".jpg,.png"` or `[".jpg", ".png"]`.
fn comma_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    // serde's own message names the private enum ("untagged enum Either"): say what is accepted.
    let either = Either::deserialize(d).map_err(|_| {
        serde::de::Error::custom(
            "expected file-name parts as a comma-separated string (`.jpg,.png`) or a list of strings",
        )
    })?;
    let items = match either {
        Either::One(s) => s.split(',').map(str::to_string).collect(),
        Either::Many(v) => v,
    };
    Ok(items.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
}

/// Task counts and bytes of a job. Always adds up: total = pending + running +
/// succeeded + failed + skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counters {
    pub total: u64,
    pub pending: u64,
    /// Claimed and not yet recorded: running, or claimed ahead and waiting
    /// in memory for a worker (short tasks are claimed dozens per worker
    /// ahead; the job's `concurrency` bounds those that run at once).
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Counters {
    pub fn slot(&mut self, state: TaskState) -> &mut u64 {
        match state {
            TaskState::Pending => &mut self.pending,
            TaskState::Running => &mut self.running,
            TaskState::Succeeded => &mut self.succeeded,
            TaskState::Failed => &mut self.failed,
            TaskState::Skipped => &mut self.skipped,
        }
    }
    pub fn moved(&mut self, from: TaskState, to: TaskState) {
        *self.slot(from) -= 1;
        *self.slot(to) += 1;
    }
}

/// The planner's progress through the listing, committed with each batch of tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Planning {
    /// The last key listed; planning resumes after it. For a manifest:
    /// `LINES:BYTES`, the lines read and the byte offset after them.
    pub cursor: Option<String>,
    pub done: bool,
}

/// A job as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobRecord {
    pub id: JobId,
    /// Digest of what the job does (input, style, output, role): jobs with the
    /// same definition share what `skip_unchanged` remembers.
    #[serde(default)]
    pub definition: String,
    /// The owner; `None` for the admin's jobs.
    #[serde(default)]
    pub tenant: Option<String>,
    pub spec: JobSpec,
    pub state: JobState,
    pub counters: Counters,
    pub planning: Planning,
    /// Why the job failed, when it did for a reason other than its tasks.
    pub error: Option<String>,
    /// RFC 3339, UTC (as every time in the API).
    #[serde(with = "crate::timefmt::secs")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    #[serde(with = "crate::timefmt::secs")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: i64,
    #[serde(with = "crate::timefmt::secs_opt", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<i64>,
}

/// A task's error: its kind and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskErrorRecord {
    pub kind: crate::runtime::TaskErrorKind,
    pub message: String,
}

impl TaskErrorRecord {
    /// Longest message stored with a task. Its parts are capped where they are
    /// made (plugin text, captured stderr); this bounds what they add up to.
    pub const MAX_MESSAGE: usize = 16 << 10;

    pub fn new(kind: crate::runtime::TaskErrorKind, message: impl std::fmt::Display) -> Self {
        TaskErrorRecord { kind, message: crate::runtime::bounded(&message.to_string(), Self::MAX_MESSAGE) }
    }
}

/// One source object within one job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaskRecord {
    pub job: JobId,
    /// Planning order, 1-based; the task's id within the job.
    pub seq: u64,
    pub source_key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    #[serde(with = "crate::timefmt::secs_opt", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_modified: Option<i64>,
    pub state: TaskState,
    pub attempts: u32,
    pub outputs: Vec<String>,
    pub error: Option<TaskErrorRecord>,
    pub duration_ms: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    #[serde(with = "crate::timefmt::secs_opt", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<i64>,
    /// What the plugin returned (contract 0.2.0): one JSON value of at most 64 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub result: Option<serde_json::Value>,
    /// In a cluster, the worker that ran the task's last attempt (its
    /// `--name`); absent when the daemon ran it itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

impl TaskRecord {
    /// A task as planned: Pending, never attempted, nothing known but its key.
    pub fn new(job: JobId, seq: u64, source_key: String) -> TaskRecord {
        TaskRecord {
            job,
            seq,
            source_key,
            size: None,
            etag: None,
            last_modified: None,
            state: TaskState::Pending,
            attempts: 0,
            outputs: vec![],
            error: None,
            duration_ms: None,
            bytes_in: 0,
            bytes_out: 0,
            finished_at: None,
            result: None,
            worker: None,
        }
    }
}

/// A saved, named processing setting: a plugin and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StyleRecord {
    pub name: String,
    /// The owner; `None` for the admin's styles, which every tenant may use.
    #[serde(default)]
    pub owner: Option<String>,
    /// The plugin's name.
    pub plugin: String,
    pub params: String,
    #[serde(with = "crate::timefmt::secs")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

/// An installed plugin: uploaded, dropped into the plugins folder, or bundled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginRecord {
    /// The name styles use, e.g. `image` in `image/resize,w_256`.
    pub name: String,
    /// The version given at upload.
    pub version: String,
    /// The owner; `None` for the admin's plugins and the bundled ones.
    pub owner: Option<String>,
    /// Usable by every tenant. Only the admin sets it.
    pub public: bool,
    /// Built into the binary; cannot be deleted.
    #[serde(default)]
    pub bundled: bool,
    /// Hex SHA-256 of the component: where it is stored, and its compile-cache key.
    pub sha256: String,
    pub size: u64,
    /// What the plugin says of itself through `info()` (empty while it compiles).
    pub info: crate::runtime::PluginInfo,
    #[serde(with = "crate::timefmt::secs")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// `compiling` (jobs cannot use it yet), `ready`, or `failed` (see `error`).
    #[serde(default)]
    pub state: PluginState,
    /// Why the compile failed (state `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a plugin is between upload and use. An upload compiles in the
/// background (see `jobs::plugins`); the version it replaces serves until then.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginState {
    Compiling,
    #[default]
    Ready,
    Failed,
}

pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_filter_list_says_what_is_accepted_not_serdes_internals() {
        let err = serde_json::from_value::<InputSpec>(serde_json::json!({"bucket": "b", "suffixes": 7})).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("comma-separated string (`.jpg,.png`) or a list of strings"), "{msg}");
        assert!(!msg.contains("untagged"), "{msg}");
        let ok: InputSpec =
            serde_json::from_value(serde_json::json!({"bucket": "b", "suffixes": ".jpg, .png"})).unwrap();
        assert_eq!(ok.suffixes, vec![".jpg", ".png"]);
    }
}
