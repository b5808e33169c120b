//! # Kiln plugin SDK
//!
//! Write a Kiln processing plugin in plain, synchronous Rust. The SDK hides the
//! WebAssembly component glue: your plugin reads the source object through
//! [`std::io::Read`] and [`std::io::Seek`], writes each output through
//! [`std::io::Write`], may answer with a small JSON result, parses its
//! parameters with the [style grammar](style), and is exported with one macro.
//! Components built with this SDK implement contract `kiln:plugin@0.2.0`
//! (`wit/0.2.0/kiln-plugin.wit`).
//!
//! ## A whole plugin
//!
//! This plugin works on text. `upper` upper-cases it; `upper/lines,n_2`
//! writes one output per `n` lines, each setting the output variable `part`
//! (`{part}` in the output template, beside `{index}` = 1, 2, …); `tail,n_10`
//! writes the last 10 bytes, reached by seeking from the end; `count` writes
//! nothing and answers with the task's result, `{"lines": N, "bytes": N}`.
//!
//! ```
//! use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
//! use kiln_plugin_sdk::{
//!     ActionInfo, Input, Json, ObjectInfo, OutputOptions, Outputs, ParamInfo, PluginInfo, ProcessError, Processor,
//!     Style, StyleError, serde_json::json,
//! };
//!
//! pub struct Upper;
//!
//! enum Plan {
//!     Upper { per_output: Option<usize> },
//!     Tail(u64),
//!     Count,
//! }
//!
//! /// Parameters, parsed by `validate`, `extension` and `process`.
//! fn plan(params: &str) -> Result<Plan, StyleError> {
//!     let style = Style::parse(params)?;
//!     let mut plan = Plan::Upper { per_output: None };
//!     for action in &style.actions {
//!         plan = match action.name.as_str() {
//!             "lines" => {
//!                 action.expect_keys(&["n"], false)?;
//!                 Plan::Upper { per_output: Some(action.require::<usize>("n")?) }
//!             }
//!             "tail" => {
//!                 action.expect_keys(&["n"], false)?;
//!                 Plan::Tail(action.get_in::<u64>("n", 1..=1 << 20)?.unwrap_or(16))
//!             }
//!             "count" => Plan::Count,
//!             other => return Err(kiln_plugin_sdk::style::unknown_action(other, &["lines", "tail", "count"])),
//!         }
//!     }
//!     Ok(plan)
//! }
//!
//! impl Processor for Upper {
//!     fn info() -> PluginInfo {
//!         PluginInfo::new("upper", env!("CARGO_PKG_VERSION"), "Upper-cases text")
//!             .reads(&["txt"])
//!             .writes(&["txt"])
//!             .variables(&["part"])
//!             .actions(vec![
//!                 ActionInfo::new("lines", "One output per n lines")
//!                     .param(ParamInfo::int("n", "Lines per output").range(1..=usize::MAX)),
//!                 ActionInfo::new("tail", "The last bytes, as they are")
//!                     .param(ParamInfo::int("n", "How many").range(1..=1 << 20).default(16)),
//!                 ActionInfo::new("count", "Lines and bytes, as the task's result"),
//!             ])
//!     }
//!
//!     fn validate(params: &str) -> Result<(), StyleError> {
//!         plan(params).map(|_| ())
//!     }
//!
//!     /// What a dry run shows for `{autoext}`.
//!     fn extension(params: &str) -> Option<String> {
//!         match plan(params) {
//!             Ok(Plan::Count) | Err(_) => None,
//!             Ok(_) => Some("txt".into()),
//!         }
//!     }
//!
//!     fn process_with_result(
//!         params: &str,
//!         _object: &ObjectInfo,
//!         input: &mut Input<'_>,
//!         outputs: &mut Outputs<'_>,
//!     ) -> Result<Option<Json>, ProcessError> {
//!         let text = OutputOptions::extension("txt").content_type("text/plain; charset=utf-8");
//!         match plan(params)? {
//!             Plan::Upper { per_output } => {
//!                 let mut part = 1;
//!                 let mut out = outputs.open_with(text.clone().variable("part", part))?;
//!                 for (i, line) in BufReader::new(input).lines().enumerate() {
//!                     if per_output.is_some_and(|n| i > 0 && i % n == 0) {
//!                         part += 1;
//!                         // The previous output is finished when dropped.
//!                         out = outputs.open_with(text.clone().variable("part", part))?;
//!                     }
//!                     writeln!(out, "{}", line?.to_uppercase())?;
//!                 }
//!                 Ok(None)
//!             }
//!             Plan::Tail(n) => {
//!                 // Random access: `SeekFrom::End` needs the size, which a
//!                 // stream such as stdin does not have (the seek says so).
//!                 let size = input.seek(SeekFrom::End(0))?;
//!                 input.seek(SeekFrom::Start(size.saturating_sub(n)))?;
//!                 std::io::copy(input, &mut outputs.open_with(text)?)?;
//!                 Ok(None)
//!             }
//!             Plan::Count => {
//!                 let (mut lines, mut bytes, mut buf) = (0u64, 0u64, vec![0; 64 << 10]);
//!                 loop {
//!                     let n = input.read(&mut buf)?;
//!                     if n == 0 {
//!                         break;
//!                     }
//!                     bytes += n as u64;
//!                     lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
//!                 }
//!                 // One JSON value of at most 64 KiB; no output is written.
//!                 Ok(Some(json!({ "lines": lines, "bytes": bytes })))
//!             }
//!         }
//!     }
//! }
//!
//! kiln_plugin_sdk::export!(Upper);
//!
//! // The local test harness runs the plugin natively, with no host:
//! use kiln_plugin_sdk::testing;
//! let outputs = testing::run::<Upper>("lines,n_1", b"a\nb\n").unwrap();
//! assert_eq!(outputs.len(), 2);
//! assert_eq!(outputs[0].extension.as_deref(), Some("txt"));
//! assert_eq!(outputs[1].variables, [("part".to_string(), "2".to_string())]);
//! assert_eq!(outputs[1].bytes, b"B\n");
//!
//! let tail = testing::run::<Upper>("tail,n_4", b"hello world").unwrap();
//! assert_eq!(tail[0].bytes, b"orld");
//! // Without a size (a stream), seeking from the end is refused, with the reason.
//! let err = testing::Harness::new("tail", b"hello").without_size().run::<Upper>().unwrap_err();
//! assert!(err.to_string().contains("size"), "{err}");
//!
//! let ran = testing::run_full::<Upper>("count", b"a\nb\n").unwrap();
//! assert!(ran.outputs.is_empty());
//! assert_eq!(ran.result, Some(json!({ "lines": 2, "bytes": 4 })));
//! ```
//!
//! A plugin with no result implements [`Processor::process`] instead, which
//! returns `Result<(), ProcessError>`; it is called by the default
//! [`Processor::process_with_result`].
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`) and try it with `kiln process --plugin target/wasm32-wasip2/release/upper.wasm --params 'lines,n_1' in.txt -o out/`.
//!
//! ## Reading the input
//!
//! [`Input`] streams the object front to back with one host call per 64 KiB
//! chunk. Seeking switches to reads at an offset (`read-at`), still a chunk
//! per call; seeking within the chunk in hand is free, so wrapping the input
//! in a `BufReader` is unnecessary. The host caps the bytes a task reads in
//! all at a multiple of the object's size, so reading every byte a few times
//! is fine, but re-reading the whole object in a loop is not.
//! [`Input::size`] says the size when the host knows it; [`Input::read_at`]
//! reads once at an offset without moving the position.
//!
//! ## The sandbox
//!
//! A plugin has no files (its filesystem holds no directory), network or environment. Its CPU time, memory and
//! output size are capped per task by the host; a plugin that hits a cap fails
//! its task with an error that names the cap. Panics are caught by the host and
//! their message becomes part of the task error. Anything written to stderr is
//! kept (bounded) for the same purpose; use [`log`] for diagnostics.

// The generated bindings name the SDK by its crate name, as plugins see it.
extern crate self as kiln_plugin_sdk;

#[doc(hidden)]
pub mod bindings;
mod info;
mod io;
pub mod log;
pub mod memory;
pub mod style;
pub mod testing;

pub use info::{ActionInfo, ParamInfo, PluginInfo};
pub use io::{Input, Output, OutputOptions, Outputs};
/// The SDK's `serde_json`, so that a plugin can build its result (`json!`)
/// without depending on it itself.
pub use serde_json;
/// One JSON value: what [`Processor::process_with_result`] returns.
pub use serde_json::Value as Json;
pub use style::{Action, Arg, Style, StyleError};

use bindings::kiln::plugin::types as wit;

/// Largest task result, in bytes of JSON (the contract's 64 KiB).
pub const MAX_RESULT: usize = 64 << 10;

/// What the host knows about the source object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
    pub content_type: Option<String>,
    pub etag: Option<String>,
    /// Seconds since the Unix epoch.
    pub last_modified: Option<i64>,
}

impl ObjectInfo {
    /// The file extension of the key, lower-cased, without the dot.
    pub fn extension(&self) -> Option<String> {
        let name = self.key.rsplit('/').next().unwrap_or(&self.key);
        name.rsplit_once('.').filter(|(stem, _)| !stem.is_empty()).map(|(_, ext)| ext.to_ascii_lowercase())
    }
}

/// Why `process` failed. The host reports the kind with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    #[error("unsupported input: {0}")]
    UnsupportedInput(String),
    #[error("{0}")]
    Failed(String),
}

impl ProcessError {
    pub fn unsupported(msg: impl std::fmt::Display) -> Self {
        ProcessError::UnsupportedInput(msg.to_string())
    }
    pub fn failed(msg: impl std::fmt::Display) -> Self {
        ProcessError::Failed(msg.to_string())
    }
}

impl From<StyleError> for ProcessError {
    fn from(e: StyleError) -> Self {
        ProcessError::InvalidParams(e.to_string())
    }
}

impl From<std::io::Error> for ProcessError {
    fn from(e: std::io::Error) -> Self {
        ProcessError::Failed(e.to_string())
    }
}

/// Implement this for your plugin type and export it with [`export!`].
///
/// A plugin implements `info`, `validate`, and one of `process` (outputs
/// only) or [`process_with_result`](Processor::process_with_result) (outputs
/// and a result); the host calls `process_with_result`, which calls `process`
/// unless it is overridden.
pub trait Processor {
    /// Name, version, description, formats, output variables and actions.
    fn info() -> PluginInfo;

    /// Check the parameters (the style after the plugin name) without
    /// processing. The host calls this when a style or job is created, so
    /// mistakes surface before any object is read.
    fn validate(params: &str) -> Result<(), StyleError>;

    /// The extension the outputs of a valid style have, when it does not
    /// depend on the object: what a dry run shows for `{autoext}`. Asked only
    /// after [`validate`](Processor::validate) accepted `params`. `None`
    /// (the default) leaves the host to guess from `info().writes`.
    fn extension(params: &str) -> Option<String> {
        let _ = params;
        None
    }

    /// Process one object: read `input`, write zero or more outputs.
    ///
    /// Implement this, or [`process_with_result`](Processor::process_with_result)
    /// instead; the default refuses to run.
    fn process(
        params: &str,
        object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<(), ProcessError> {
        let _ = (params, object, input, outputs);
        Err(ProcessError::failed("the plugin implements neither `Processor::process` nor `process_with_result`"))
    }

    /// Process one object and answer with a small result: one JSON value of
    /// at most [`MAX_RESULT`] bytes (64 KiB), stored with the task and shown
    /// in its report and events, e.g. a digest or an image's dimensions.
    /// Outputs may be written too. A result over the cap fails the task, here
    /// and in the [test harness](testing), with a message that says so.
    ///
    /// The default calls [`process`](Processor::process) and returns no result.
    fn process_with_result(
        params: &str,
        object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<Option<Json>, ProcessError> {
        Self::process(params, object, input, outputs).map(|()| None)
    }
}

/// A result as the contract carries it: JSON text of at most [`MAX_RESULT`] bytes.
pub(crate) fn result_text(result: Option<&Json>) -> Result<Option<String>, ProcessError> {
    let Some(value) = result else { return Ok(None) };
    let text = value.to_string();
    if text.len() > MAX_RESULT {
        return Err(ProcessError::failed(format!(
            "the task result is {} of JSON, over the {} a result may hold: return less, or write it as an output",
            memory::human_bytes(text.len() as u64),
            memory::human_bytes(MAX_RESULT as u64),
        )));
    }
    Ok(Some(text))
}

/// Export a [`Processor`] as this component's implementation of the
/// `kiln:plugin/processor` world (contract 0.2.0). Use it once, in the plugin's crate root.
#[macro_export]
macro_rules! export {
    ($processor:ty) => {
        const _: () = {
            struct KilnGuest;
            impl $crate::bindings::Guest for KilnGuest {
                fn info() -> $crate::bindings::PluginInfo {
                    $crate::__private::info::<$processor>()
                }
                fn validate(params: String) -> Result<$crate::bindings::CheckedStyle, String> {
                    $crate::__private::validate::<$processor>(&params)
                }
                fn process(
                    params: String,
                    object: $crate::bindings::ObjectInfo,
                    input: &$crate::bindings::Input,
                    outputs: &$crate::bindings::Outputs,
                ) -> Result<Option<String>, $crate::bindings::ProcessError> {
                    $crate::__private::process::<$processor>(params, object, input, outputs)
                }
            }
    $crate::bindings::__export_processor!(KilnGuest with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use super::*;

    pub fn info<P: Processor>() -> wit::PluginInfo {
        let i = P::info();
        let actions = i.actions_json();
        wit::PluginInfo {
            name: i.name,
            version: i.version,
            description: i.description,
            reads: i.reads,
            writes: i.writes,
            variables: i.variables,
            actions,
        }
    }

    pub fn validate<P: Processor>(params: &str) -> Result<wit::CheckedStyle, String> {
        P::validate(params).map_err(|e| e.to_string())?;
        Ok(wit::CheckedStyle { extension: P::extension(params) })
    }

    pub fn process<P: Processor>(
        params: String,
        object: wit::ObjectInfo,
        input: &wit::Input,
        outputs: &wit::Outputs,
    ) -> Result<Option<String>, wit::ProcessError> {
        let object = ObjectInfo {
            bucket: object.bucket,
            key: object.key,
            size: object.size,
            content_type: object.content_type,
            etag: object.etag,
            last_modified: object.last_modified,
        };
        let mut input = Input::host(input);
        let mut outputs = Outputs::host(outputs);
        let result = P::process_with_result(&params, &object, &mut input, &mut outputs);
        // Flush buffered bytes before reporting success, so a write error
        // (e.g. the host's output cap) fails the task instead of vanishing in Drop.
        let result = result.and_then(|r| outputs.finish().map_err(ProcessError::from).map(|()| r));
        result.and_then(|r| result_text(r.as_ref())).map_err(|e| match e {
            ProcessError::InvalidParams(m) => wit::ProcessError::InvalidParams(m),
            ProcessError::UnsupportedInput(m) => wit::ProcessError::UnsupportedInput(m),
            ProcessError::Failed(m) => wit::ProcessError::Failed(m),
        })
    }
}
