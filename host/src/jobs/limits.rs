//! The limits a job's tasks run under: the daemon's defaults, lowered by the
//! tenant's quotas, and changed by the job itself within the daemon's
//! ceilings (`runtime.max_limits`) and the tenant's quotas.

use std::time::Duration;

use crate::auth::Quotas;
use crate::model::JobLimits;
use crate::runtime::{Limits, RuntimeConfig};

use super::prepare::JobError;

/// The shortest deadline a job may ask for: one epoch tick is 5 ms.
const MIN_DEADLINE: Duration = Duration::from_millis(10);

/// When the job is created (`strict`), asking above a ceiling is an error
/// naming the field and the ceiling. When a stored job is prepared again at a
/// restart, the ceilings may have been lowered since: the job runs under the
/// new ones rather than failing to resume.
pub fn job_limits(
    runtime: &RuntimeConfig,
    quotas: Option<&Quotas>,
    asked: &JobLimits,
    strict: bool,
) -> Result<Limits, JobError> {
    let mut limits = runtime.limits;
    // What the job may ask for at most, and who set that bound.
    let mut most_deadline = (runtime.max_limits.deadline, "the daemon's `runtime.max_limits.deadline`");
    let mut most_output = (runtime.max_limits.max_output, "the daemon's `runtime.max_limits.max_output`");
    let mut most_memory = (runtime.limits.max_memory, "the daemon's `runtime.limits.max_memory`");
    if let Some(q) = quotas {
        limits.max_memory = limits.max_memory.min(q.task_memory);
        limits.deadline = limits.deadline.min(q.task_deadline);
        limits.max_output = limits.max_output.min(q.task_output);
        if q.task_deadline < most_deadline.0 {
            most_deadline = (q.task_deadline, "your quota `task_deadline`");
        }
        if q.task_output < most_output.0 {
            most_output = (q.task_output, "your quota `task_output`");
        }
        if q.task_memory < most_memory.0 {
            most_memory = (q.task_memory, "your quota `task_memory`");
        }
    }
    if let Some(d) = asked.deadline {
        if d < MIN_DEADLINE {
            return Err(invalid("limits.deadline", format!("must be at least {MIN_DEADLINE:?}")));
        }
        limits.deadline = bounded("limits.deadline", d, most_deadline, strict, |d| format!("{d:?}"))?;
    }
    if let Some(n) = asked.max_output {
        if n == 0 {
            return Err(invalid("limits.max_output", "must be at least 1 byte"));
        }
        limits.max_output = bounded("limits.max_output", n, most_output, strict, bytes)?;
    }
    if let Some(n) = asked.max_memory {
        if n < 1 << 20 {
            return Err(invalid("limits.max_memory", "must be at least 1 MiB"));
        }
        limits.max_memory = bounded("limits.max_memory", n, most_memory, strict, bytes)?;
    }
    Ok(limits)
}

fn bounded<T: Ord + Copy>(
    field: &'static str,
    asked: T,
    (most, whose): (T, &str),
    strict: bool,
    show: impl Fn(T) -> String,
) -> Result<T, JobError> {
    if asked <= most {
        return Ok(asked);
    }
    if strict {
        return Err(invalid(field, format!("{} is above {whose}, {}", show(asked), show(most))));
    }
    Ok(most)
}

fn bytes(n: u64) -> String {
    format!("{n} bytes ({})", bytesize::ByteSize(n).display().iec())
}

fn invalid(field: &'static str, message: impl Into<String>) -> JobError {
    JobError::Invalid { field, message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> RuntimeConfig {
        RuntimeConfig::default()
    }

    #[test]
    fn defaults_without_a_request() {
        let l = job_limits(&runtime(), None, &JobLimits::default(), true).unwrap();
        assert_eq!(l, Limits::default());
    }

    #[test]
    fn a_job_raises_up_to_the_daemon_ceiling() {
        let asked =
            JobLimits { deadline: Some(Duration::from_secs(600)), max_output: Some(8 << 30), ..Default::default() };
        let l = job_limits(&runtime(), None, &asked, true).unwrap();
        assert_eq!((l.deadline, l.max_output), (Duration::from_secs(600), 8 << 30));
        let too_long = JobLimits { deadline: Some(Duration::from_secs(7200)), ..Default::default() };
        let e = job_limits(&runtime(), None, &too_long, true).unwrap_err().to_string();
        assert!(
            e.starts_with("limits.deadline: 7200s is above the daemon's `runtime.max_limits.deadline`, 3600s"),
            "{e}"
        );
        // A stored job resumes under a ceiling lowered since.
        let l = job_limits(&runtime(), None, &too_long, false).unwrap();
        assert_eq!(l.deadline, Duration::from_secs(3600));
    }

    #[test]
    fn memory_may_only_be_lowered() {
        let lower = JobLimits { max_memory: Some(64 << 20), ..Default::default() };
        assert_eq!(job_limits(&runtime(), None, &lower, true).unwrap().max_memory, 64 << 20);
        let higher = JobLimits { max_memory: Some(1 << 30), ..Default::default() };
        let e = job_limits(&runtime(), None, &higher, true).unwrap_err().to_string();
        assert!(
            e.contains(
                "limits.max_memory: 1073741824 bytes (1.0 GiB) is above the daemon's `runtime.limits.max_memory`"
            ),
            "{e}"
        );
        let tiny = JobLimits { max_memory: Some(1000), ..Default::default() };
        assert!(job_limits(&runtime(), None, &tiny, true).unwrap_err().to_string().contains("at least 1 MiB"));
    }

    #[test]
    fn a_tenant_is_bounded_by_its_quotas() {
        let q = Quotas { task_deadline: Duration::from_secs(120), task_output: 2 << 30, ..Default::default() };
        // Defaults: the daemon's, or the quota where lower.
        let l = job_limits(&runtime(), Some(&q), &JobLimits::default(), true).unwrap();
        assert_eq!((l.deadline, l.max_output), (Duration::from_secs(30), 1 << 30));
        let asked = JobLimits { deadline: Some(Duration::from_secs(120)), ..Default::default() };
        assert_eq!(job_limits(&runtime(), Some(&q), &asked, true).unwrap().deadline, Duration::from_secs(120));
        let asked = JobLimits { max_output: Some(4 << 30), ..Default::default() };
        let e = job_limits(&runtime(), Some(&q), &asked, true).unwrap_err().to_string();
        assert!(e.contains("limits.max_output: 4294967296 bytes (4.0 GiB) is above your quota `task_output`, 2147483648 bytes (2.0 GiB)"), "{e}");
        let small = Quotas { task_deadline: Duration::from_secs(5), ..Default::default() };
        let l = job_limits(&runtime(), Some(&small), &JobLimits::default(), true).unwrap();
        assert_eq!(l.deadline, Duration::from_secs(5));
    }

    #[test]
    fn nonsense_is_refused_by_field() {
        let zero = JobLimits { max_output: Some(0), ..Default::default() };
        assert!(job_limits(&runtime(), None, &zero, true).unwrap_err().to_string().starts_with("limits.max_output"));
        let instant = JobLimits { deadline: Some(Duration::from_millis(1)), ..Default::default() };
        assert!(job_limits(&runtime(), None, &instant, true).unwrap_err().to_string().starts_with("limits.deadline"));
    }
}
