//! The engine-wide settings ([`RuntimeConfig`]) and the pooling allocator
//! sized from them.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::PoolingAllocationConfig;

use crate::{LimitCeilings, Limits, TextLimits};

/// Engine-wide settings. Per-task [`Limits`] are defaults: a tenant's quotas
/// lower them, and a job may ask for others up to [`LimitCeilings`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Default per-task limits; `limits.max_memory` is also the pool's slot size.
    pub limits: Limits,
    /// The most a job may raise `limits.deadline` and `limits.max_output` to.
    pub max_limits: LimitCeilings,
    /// WebAssembly call-stack size, in bytes.
    pub max_stack: usize,
    /// Plugin instances alive at once (the pool's size): the ceiling on tasks in flight.
    pub max_instances: u32,
    /// Largest plugin accepted, in bytes.
    pub max_plugin_size: usize,
    /// Where compiled artifacts are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Wall-clock time for `info()` and `validate()`: they answer API requests
    /// (job and style creation, uploads), so a plugin that hangs in them must
    /// not hold a request for the whole task deadline.
    #[serde(with = "humantime_serde")]
    pub control_deadline: Duration,
    /// Caps on the text a plugin returns or logs.
    pub text: TextLimits,
    /// Bytes that the memory limits of all running tasks may add up to: a
    /// task starts only while its limit fits beside the running ones'.
    /// Unset: half the machine's memory. Never below `limits.max_memory`.
    pub memory_budget: Option<u64>,
}

impl RuntimeConfig {
    /// The memory budget in effect (see [`RuntimeConfig::memory_budget`]).
    pub fn memory_budget(&self) -> u64 {
        self.memory_budget.unwrap_or_else(|| machine_memory().map_or(4 << 30, |m| m / 2)).max(self.limits.max_memory)
    }
}

/// The machine's memory in bytes (`MemTotal` of `/proc/meminfo`).
fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 =
        info.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            limits: Limits::default(),
            max_limits: LimitCeilings::default(),
            max_stack: 512 << 10,
            max_instances: 64,
            max_plugin_size: 64 << 20,
            cache_dir: None,
            control_deadline: Duration::from_secs(1),
            text: TextLimits::default(),
            memory_budget: None,
        }
    }
}

pub(crate) fn pooling(config: &RuntimeConfig) -> PoolingAllocationConfig {
    let n = config.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(n);
    // A Rust component holds a handful of core instances (its module and the
    // shims wasm-component-ld adds), one memory and a few tables; a Python
    // component from componentize-py holds ~40 core instances and several
    // memories (libc, the interpreter, extension modules).
    pool.total_core_instances((n * 16).max(128));
    pool.max_core_instances_per_component(64);
    pool.total_memories((n * 4).max(32));
    pool.max_memories_per_component(16);
    pool.total_tables((n * 16).max(128));
    pool.max_tables_per_component(32);
    pool.max_memory_size(config.limits.max_memory as usize);
    // Keep a few MiB of each slot resident: without it every task pays
    // madvise and page faults for the guest's first megabyte (its shadow stack).
    pool.linear_memory_keep_resident(4 << 20);
    pool.table_keep_resident(64 << 10);
    // Likewise for the fiber stacks of async calls: two calls per task.
    pool.async_stack_keep_resident(128 << 10);
    // No batching of decommits: a batch keeps up to (cores × (batch - 1))
    // released slots resident, each as large as its task let it grow (822 MB
    // stayed resident after a job with a batch of 16), which no memory
    // budget could account for.
    pool.decommit_batch_size(1);
    // With PAGEMAP_SCAN (Linux 6.7+) a slot's reset zeroes only the pages the
    // task touched; without it, the whole kept-resident part of the memory
    // (all of a small plugin's 2 MiB) is zeroed after every task.
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    pool
}
