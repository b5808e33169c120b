//! Per-task limits, and the record of which one a plugin hit.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits applied to every task. Each has a default and can be configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time for one call into the plugin.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Linear memory of one plugin instance, in bytes.
    pub max_memory: u64,
    /// Total bytes of all outputs of one task.
    pub max_output: u64,
    /// Bytes of stdout/stderr kept for the task error.
    pub max_console: usize,
    /// Bytes a task may read from its source in all (`read` and `read-at`):
    /// this many times the object's size, plus 1 MiB, so a plugin reading
    /// at random cannot turn one object into unbounded egress.
    pub read_factor: u64,
}

/// What a task may read besides `read_factor` times its object's size.
pub const READ_SLACK: u64 = 1 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(30),
            max_memory: 512 << 20,
            max_output: 1 << 30,
            max_console: 4096,
            read_factor: 4,
        }
    }
}

/// The most a job may raise its tasks' limits to (`runtime.max_limits`): a
/// remux of a 4 GiB film or a 600-page render needs more than the defaults,
/// which bound every other job. Memory has no ceiling of its own: the pool's
/// slot size is `limits.max_memory`, so a job may only lower it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitCeilings {
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    pub max_output: u64,
}

impl Default for LimitCeilings {
    fn default() -> Self {
        LimitCeilings { deadline: Duration::from_secs(3600), max_output: 64 << 30 }
    }
}

/// Which limit a task hit. Its `Display` names the limit and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    #[error("deadline of {0:?} exceeded (limits.deadline)")]
    Deadline(Duration),
    #[error("the plugin did not answer within {0:?} (runtime.control_deadline, for `info` and `validate`)")]
    ControlDeadline(Duration),
    #[error("memory limit of {limit} bytes exceeded: the plugin asked for {requested} bytes (limits.max_memory)")]
    Memory { limit: u64, requested: u64 },
    #[error("output limit of {0} bytes exceeded (limits.max_output)")]
    Output(u64),
    #[error("stack limit of {0} bytes exhausted (limits.max_stack): unbounded recursion?")]
    Stack(usize),
    #[error(
        "read limit of {cap} bytes of the source exceeded (limits.read_factor × the object's {size} bytes + 1 MiB): the plugin asked for {asked} bytes in all"
    )]
    Reads { cap: u64, size: u64, asked: u64 },
    #[error("the task's result is {len} bytes: a result holds at most {cap} bytes of JSON")]
    Result { len: usize, cap: usize },
}

/// The wasmtime resource limiter of one task's store.
pub(crate) struct TaskLimiter {
    pub max_memory: u64,
    /// Set when a grow was refused, so that a trap that follows (the guest's
    /// allocator aborting) is reported as this limit.
    pub hit: Option<LimitHit>,
}

impl wasmtime::ResourceLimiter for TaskLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_memory {
            // Refuse the grow without trapping: `memory.grow` returns -1, so a
            // plugin that allocates fallibly can refuse its input with a
            // message of its own. One that aborts instead traps, and the trap
            // is reported as this limit from the record kept here.
            self.hit = Some(LimitHit::Memory { limit: self.max_memory, requested: desired as u64 });
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    #[test]
    fn a_grow_past_the_limit_is_refused_and_recorded_not_trapped() {
        let mut limiter = TaskLimiter { max_memory: 64 << 20, hit: None };
        assert!(limiter.memory_growing(0, 64 << 20, None).unwrap());
        assert_eq!(limiter.hit, None);
        assert!(!limiter.memory_growing(64 << 20, (64 << 20) + 65536, None).unwrap());
        assert_eq!(limiter.hit, Some(LimitHit::Memory { limit: 64 << 20, requested: (64 << 20) + 65536 }));
    }
}
