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

/// The kind of a task error, as recorded with the task and shown in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskErrorKind {
    InvalidParams,
    UnsupportedInput,
    Failed,
    Limit,
    Crashed,
    Io,
}

impl TaskErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskErrorKind::InvalidParams => "invalid-params",
            TaskErrorKind::UnsupportedInput => "unsupported-input",
            TaskErrorKind::Failed => "failed",
            TaskErrorKind::Limit => "limit",
            TaskErrorKind::Crashed => "crashed",
            TaskErrorKind::Io => "io",
        }
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
            TaskError::Crashed { .. } => TaskErrorKind::Crashed,
            TaskError::Io(_) => TaskErrorKind::Io,
        }
    }
}
