//! What a call's end means: a task's result checked, and a trap turned into
//! the error a user can act on.

use std::time::Duration;

use wasmtime::{Store, Trap};

use crate::{LimitHit, RuntimeConfig, TaskError, TaskState, lifted};

/// Largest task result, in bytes of JSON.
pub const MAX_RESULT: usize = 64 << 10;

/// A 0.2.0 task's result: JSON of at most [`MAX_RESULT`] bytes, or the task fails.
pub(crate) fn task_result_of(returned: &lifted::LiftedStr) -> Result<serde_json::Value, TaskError> {
    if returned.len > MAX_RESULT {
        return Err(TaskError::limit(LimitHit::Result { len: returned.len, cap: MAX_RESULT }, String::new()));
    }
    serde_json::from_str(&returned.head).map_err(|e| TaskError::Failed {
        message: format!("the plugin's result is not JSON ({e}): a result is one JSON value"),
        console: String::new(),
    })
}

/// The state of an `info()` or `validate()` call, whose deadline is the control deadline.
pub(crate) fn control_call(store: &mut Store<TaskState>) -> &TaskState {
    if let Some(LimitHit::Deadline(d)) = store.data().hit {
        store.data_mut().hit = Some(LimitHit::ControlDeadline(d));
    }
    store.data()
}

/// The message of an `info()` that outlived the control deadline.
pub(crate) fn control_deadline_hit(deadline: Duration) -> String {
    LimitHit::ControlDeadline(deadline).to_string()
}

/// Turn a trap into the task error a user can act on: the limit that was hit,
/// or the trap with the tail of the plugin's stderr (where a panic's message is).
pub(crate) fn classify_trap(err: wasmtime::Error, state: &TaskState, config: &RuntimeConfig) -> TaskError {
    let console = state.console.text();
    if let Some(hit) = state.hit.clone().or_else(|| state.limiter.hit.clone()) {
        return TaskError::limit(hit, console);
    }
    if let Some(Trap::StackOverflow) = err.downcast_ref::<Trap>() {
        return TaskError::limit(LimitHit::Stack(config.max_stack), console);
    }
    if let Some(io) = &state.host_error {
        return TaskError::Io(io.clone());
    }
    if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return TaskError::Exited { status: exit.0, console };
    }
    let trap = match err.downcast_ref::<Trap>() {
        // Rust's panic handler prints its message, then aborts via `unreachable`.
        Some(Trap::UnreachableCodeReached) if console.contains("panicked at") => "panic".to_string(),
        Some(trap) => trap.to_string(),
        None => format!("{err:#}"),
    };
    TaskError::Crashed { trap, console }
}
