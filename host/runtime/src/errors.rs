//! Errors of loading a plugin and of running a task. Callers tell them apart:
//! the API maps load errors to 422, and a task records its error's kind.

use serde::{Deserialize, Serialize};

use super::bindings::ProcessError;
use super::limits::LimitHit;

/// Why a plugin could not be loaded. Each message names the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("plugin is {size} bytes, over the limit of {limit} bytes (max_plugin_size)")]
    TooLarge { size: usize, limit: usize },
    #[error("not a WebAssembly binary (it does not start with `\\0asm`)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build with `--target wasm32-wasip2`, or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    #[error("invalid WebAssembly component: {0}")]
    Invalid(String),
    #[error("forbidden imports: {0}")]
    ForbiddenImports(String),
    #[error("plugin imports something Kiln cannot provide: {0}")]
    Link(String),
    #[error("plugin does not implement the `kiln:plugin/processor` world: {0}")]
    WrongWorld(String),
    #[error("plugin's `info()` failed: {0}")]
    Info(String),
}

/// The kind of a task error, as recorded with the task, shown in reports and
/// filtered on. One vocabulary for every place a task can fail: the plugin's
/// own verdicts, the sandbox's limits, and the host's checks around a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TaskErrorKind {
    /// The plugin refused the style's parameters.
    InvalidParams,
    /// The plugin cannot process this object (format, damage, size).
    UnsupportedInput,
    /// The plugin failed for another reason.
    Failed,
    /// A sandbox limit: deadline, memory, output, stack.
    Limit,
    /// The plugin trapped, panicked or exited instead of returning.
    Crashed,
    /// Reading the source or writing an output failed (retried while attempts remain).
    Io,
    /// The source object is gone, or its key is not one a bucket can hold.
    NotFound,
    /// The output template rendered a key that breaks the path rules.
    Template,
    /// The job's role does not grant the source or the output key.
    Grant,
    /// In a cluster: every worker the task was handed to stopped answering
    /// (died, hung or lost its connection) before it finished.
    WorkerLost,
    /// A kind this build does not know (a record written by another version).
    #[serde(other)]
    Unknown,
}

impl TaskErrorKind {
    pub const ALL: [TaskErrorKind; 11] = [
        TaskErrorKind::InvalidParams,
        TaskErrorKind::UnsupportedInput,
        TaskErrorKind::Failed,
        TaskErrorKind::Limit,
        TaskErrorKind::Crashed,
        TaskErrorKind::Io,
        TaskErrorKind::NotFound,
        TaskErrorKind::Template,
        TaskErrorKind::Grant,
        TaskErrorKind::WorkerLost,
        TaskErrorKind::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskErrorKind::InvalidParams => "invalid-params",
            TaskErrorKind::UnsupportedInput => "unsupported-input",
            TaskErrorKind::Failed => "failed",
            TaskErrorKind::Limit => "limit",
            TaskErrorKind::Crashed => "crashed",
            TaskErrorKind::Io => "io",
            TaskErrorKind::NotFound => "not-found",
            TaskErrorKind::Template => "template",
            TaskErrorKind::Grant => "grant",
            TaskErrorKind::WorkerLost => "worker-lost",
            TaskErrorKind::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for TaskErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("invalid parameters: {message}{}", console_suffix(console))]
    InvalidParams { message: String, console: String },
    #[error("unsupported input: {message}{}", console_suffix(console))]
    UnsupportedInput { message: String, console: String },
    #[error("plugin failed: {message}{}", console_suffix(console))]
    Failed { message: String, console: String },
    #[error("{hit}{}", console_suffix(console))]
    Limit { hit: LimitHit, console: String },
    #[error("plugin crashed ({trap}){}", console_suffix(console))]
    Crashed { trap: String, console: String },
    /// The plugin called WASI's `exit` instead of returning its result.
    #[error("the plugin exited (status {status}) before returning{}", console_suffix(console))]
    Exited { status: i32, console: String },
    #[error("I/O error: {0}")]
    Io(String),
}

fn console_suffix(console: &str) -> String {
    if console.is_empty() { String::new() } else { format!("; plugin stderr: {console}") }
}

impl TaskError {
    pub(crate) fn limit(hit: LimitHit, console: String) -> Self {
        TaskError::Limit { hit, console }
    }

    pub(crate) fn from_plugin(e: ProcessError, console: String) -> Self {
        match e {
            ProcessError::InvalidParams(message) => TaskError::InvalidParams { message, console },
            ProcessError::UnsupportedInput(message) => TaskError::UnsupportedInput { message, console },
            ProcessError::Failed(message) => TaskError::Failed { message, console },
        }
    }

    pub fn kind(&self) -> TaskErrorKind {
        match self {
            TaskError::InvalidParams { .. } => TaskErrorKind::InvalidParams,
            TaskError::UnsupportedInput { .. } => TaskErrorKind::UnsupportedInput,
            TaskError::Failed { .. } => TaskErrorKind::Failed,
            TaskError::Limit { .. } => TaskErrorKind::Limit,
            TaskError::Crashed { .. } | TaskError::Exited { .. } => TaskErrorKind::Crashed,
            TaskError::Io(_) => TaskErrorKind::Io,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TaskErrorKind;

    #[test]
    fn kinds_serialise_as_their_names_and_unknown_ones_still_decode() {
        for kind in TaskErrorKind::ALL {
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{}\"", kind.as_str()));
        }
        let old: TaskErrorKind = serde_json::from_str("\"plugin\"").unwrap();
        assert_eq!(old, TaskErrorKind::Unknown);
    }
}
