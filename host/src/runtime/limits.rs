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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(30),
            max_memory: 512 << 20,
            max_output: 1 << 30,
            max_console: 4096,
        }
    }
}

/// Which limit a task hit. Its `Display` names the limit and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    #[error("deadline of {0:?} exceeded (limits.deadline)")]
    Deadline(Duration),
    #[error("memory limit of {limit} bytes exceeded: the plugin asked for {requested} bytes (limits.max_memory)")]
    Memory { limit: u64, requested: u64 },
    #[error("output limit of {0} bytes exceeded (limits.max_output)")]
    Output(u64),
    #[error("stack limit of {0} bytes exhausted (limits.max_stack): unbounded recursion?")]
    Stack(usize),
}

/// The wasmtime resource limiter of one task's store.
pub(crate) struct TaskLimiter {
    pub max_memory: u64,
    /// Set when a grow was refused, so the trap can be reported as this limit.
    pub hit: Option<LimitHit>,
}

impl wasmtime::ResourceLimiter for TaskLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.max_memory {
            let hit = LimitHit::Memory { limit: self.max_memory, requested: desired as u64 };
            self.hit = Some(hit.clone());
            // Trap at once rather than let the guest's allocator abort with a
            // less helpful message.
            return Err(wasmtime::Error::msg(hit.to_string()));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
