//! Per-tenant quotas: a default for every tenant from the config, and any
//! field settable by the admin per tenant.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Jobs Running at once; more are refused at create and resume.
    #[schema(maximum = 1000000)]
    pub running_jobs: u32,
    /// Tasks in flight at once across all the tenant's jobs.
    #[schema(minimum = 1, maximum = 1000000)]
    pub tasks_in_flight: u32,
    /// Plugins the tenant may upload.
    #[schema(maximum = 1000000)]
    pub plugins: u32,
    /// Largest plugin the tenant may upload, in bytes.
    #[schema(maximum = 1099511627776.0)]
    pub plugin_size: u64,
    /// Linear memory of one task's plugin instance, in bytes: the most a job
    /// may ask for, and its default when below the daemon's `limits.max_memory`.
    #[schema(minimum = 1048576, maximum = 1099511627776.0)]
    pub task_memory: u64,
    /// Wall-clock deadline of one task: the most a job may ask for (never above
    /// the daemon's `max_limits.deadline`), and its default when below the
    /// daemon's `limits.deadline`; as `humantime` reads and writes it: `30s`, `1m 30s`, `2h`.
    #[serde(with = "humantime_serde")]
    #[schema(value_type = String, example = "30s", default = "30s", pattern = r"^[0-9]{1,10} ?(nsec|ns|usec|us|µs|msec|ms|seconds|second|sec|s|minutes|minute|min|m|hours|hour|hr|h|days|day|d|weeks|week|w|months|month|M|years|year|y)( ?[0-9]{1,10} ?(nsec|ns|usec|us|µs|msec|ms|seconds|second|sec|s|minutes|minute|min|m|hours|hour|hr|h|days|day|d|weeks|week|w|months|month|M|years|year|y))*$")]
    pub task_deadline: Duration,
    /// Bytes of all outputs of one task: the most a job may ask for (never
    /// above the daemon's `max_limits.max_output`), and its default when below
    /// the daemon's `limits.max_output`.
    #[schema(minimum = 1, maximum = 1099511627776.0)]
    pub task_output: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas {
            running_jobs: 10,
            tasks_in_flight: 64,
            plugins: 20,
            plugin_size: 32 << 20,
            task_memory: 512 << 20,
            task_deadline: Duration::from_secs(30),
            task_output: 1 << 30,
        }
    }
}

/// The largest count quota (the same bound is in the OpenAPI schema).
const MAX_COUNT: u32 = 1_000_000;
/// The largest size quota, in bytes (the same bound is in the OpenAPI schema).
const MAX_BYTES: u64 = 1 << 40;

/// A change to some quotas; absent fields are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotasPatch {
    #[schema(maximum = 1000000)]
    pub running_jobs: Option<u32>,
    #[schema(minimum = 1, maximum = 1000000)]
    pub tasks_in_flight: Option<u32>,
    #[schema(maximum = 1000000)]
    pub plugins: Option<u32>,
    #[schema(maximum = 1099511627776.0)]
    pub plugin_size: Option<u64>,
    #[schema(minimum = 1048576, maximum = 1099511627776.0)]
    pub task_memory: Option<u64>,
    #[serde(default, with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "10s", pattern = r"^[0-9]{1,10} ?(nsec|ns|usec|us|µs|msec|ms|seconds|second|sec|s|minutes|minute|min|m|hours|hour|hr|h|days|day|d|weeks|week|w|months|month|M|years|year|y)( ?[0-9]{1,10} ?(nsec|ns|usec|us|µs|msec|ms|seconds|second|sec|s|minutes|minute|min|m|hours|hour|hr|h|days|day|d|weeks|week|w|months|month|M|years|year|y))*$")]
    pub task_deadline: Option<Duration>,
    #[schema(minimum = 1, maximum = 1099511627776.0)]
    pub task_output: Option<u64>,
}

impl Quotas {
    pub fn apply(&mut self, p: &QuotasPatch) {
        macro_rules! set {
            ($($f:ident),*) => {$( if let Some(v) = p.$f { self.$f = v; } )*};
        }
        set!(running_jobs, tasks_in_flight, plugins, plugin_size, task_memory, task_deadline, task_output);
    }

    /// Checks that every quota allows some work; returns the field at fault.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.tasks_in_flight == 0 {
            return Err(("quotas.tasks_in_flight", "must be at least 1".into()));
        }
        for (field, value) in [
            ("quotas.running_jobs", self.running_jobs),
            ("quotas.tasks_in_flight", self.tasks_in_flight),
            ("quotas.plugins", self.plugins),
        ] {
            if value > MAX_COUNT {
                return Err((field, format!("must be at most {MAX_COUNT}")));
            }
        }
        if self.task_memory < (1 << 20) {
            return Err(("quotas.task_memory", "must be at least 1 MiB".into()));
        }
        if self.task_output == 0 {
            return Err(("quotas.task_output", "must be at least 1 byte".into()));
        }
        for (field, value) in [
            ("quotas.task_memory", self.task_memory),
            ("quotas.plugin_size", self.plugin_size),
            ("quotas.task_output", self.task_output),
        ] {
            if value > MAX_BYTES {
                return Err((field, format!("must be at most {MAX_BYTES} (1 TiB)")));
            }
        }
        if self.task_deadline < Duration::from_millis(10) {
            return Err(("quotas.task_deadline", "must be at least 10ms".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_changes_only_its_fields() {
        let mut q = Quotas::default();
        let p: QuotasPatch = serde_json::from_str(r#"{"running_jobs": 1, "task_deadline": "2s"}"#).unwrap();
        q.apply(&p);
        assert_eq!(q.running_jobs, 1);
        assert_eq!(q.task_deadline, Duration::from_secs(2));
        assert_eq!(q.tasks_in_flight, Quotas::default().tasks_in_flight);
        assert!(serde_json::from_str::<QuotasPatch>(r#"{"running": 1}"#).is_err());
        q.tasks_in_flight = 0;
        assert_eq!(q.check().unwrap_err().0, "quotas.tasks_in_flight");
        q.tasks_in_flight = 1;
        q.plugins = MAX_COUNT + 1;
        assert_eq!(q.check().unwrap_err(), ("quotas.plugins", "must be at most 1000000".to_string()));
    }
}
