//! # Kiln plugin SDK
//!
//! Write a Kiln processing plugin in plain, synchronous Rust. The SDK hides the
//! WebAssembly component glue: your plugin reads the source object through
//! [`std::io::Read`], writes each output through [`std::io::Write`], parses its
//! parameters with the [style grammar](style), and is exported with one macro.
//!
//! ## A whole plugin
//!
//! This plugin upper-cases text. `upper` copies the text; `upper/lines,n_2`
//! writes one output per `n` lines (`{index}` = 1, 2, … in the output template).
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use kiln_plugin_sdk::{Processor, PluginInfo, ObjectInfo, Input, Outputs, ProcessError, Style, StyleError};
//!
//! pub struct Upper;
//!
//! /// Parameters, parsed once by both `validate` and `process`.
//! fn lines_per_output(params: &str) -> Result<Option<usize>, StyleError> {
//!     let style = Style::parse(params)?;
//!     let mut n = None;
//!     for action in &style.actions {
//!         match action.name.as_str() {
//!             "lines" => {
//!                 action.expect_keys(&["n"], false)?;
//!                 n = Some(action.require::<usize>("n")?);
//!             }
//!             other => return Err(kiln_plugin_sdk::style::unknown_action(other, &["lines"])),
//!         }
//!     }
//!     Ok(n)
//! }
//!
//! impl Processor for Upper {
//!     fn info() -> PluginInfo {
//!         PluginInfo::new("upper", env!("CARGO_PKG_VERSION"), "Upper-cases text")
//!             .reads(&["txt"])
//!             .writes(&["txt"])
//!     }
//!
//!     fn validate(params: &str) -> Result<(), StyleError> {
//!         lines_per_output(params).map(|_| ())
//!     }
//!
//!     fn process(params: &str, _object: &ObjectInfo, input: &mut Input<'_>, outputs: &mut Outputs<'_>) -> Result<(), ProcessError> {
//!         let per_output = lines_per_output(params)?;
//!         let mut out = outputs.open(Some("txt"))?;
//!         for (i, line) in BufReader::new(input).lines().enumerate() {
//!             if let Some(n) = per_output {
//!                 if i > 0 && i % n == 0 {
//!                     out = outputs.open(Some("txt"))?; // the previous output is finished when dropped
//!                 }
//!             }
//!             writeln!(out, "{}", line?.to_uppercase())?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! kiln_plugin_sdk::export!(Upper);
//!
//! // The local test harness runs the plugin natively, with no host:
//! let outputs = kiln_plugin_sdk::testing::run::<Upper>("lines,n_1", b"a\nb\n").unwrap();
//! assert_eq!(outputs.len(), 2);
//! assert_eq!(outputs[0].extension.as_deref(), Some("txt"));
//! assert_eq!(outputs[1].bytes, b"B\n");
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`) and try it with `kiln process --plugin target/wasm32-wasip2/release/upper.wasm --params 'lines,n_1' in.txt -o out/`.
//!
//! ## The sandbox
//!
//! A plugin has no filesystem, network or environment. Its CPU time, memory and
//! output size are capped per task by the host; a plugin that hits a cap fails
//! its task with an error that names the cap. Panics are caught by the host and
//! their message becomes part of the task error. Anything written to stderr is
//! kept (bounded) for the same purpose; use [`log`] for diagnostics.

// The generated bindings name the SDK by its crate name, as plugins see it.
extern crate self as kiln_plugin_sdk;

#[doc(hidden)]
pub mod bindings;
mod io;
pub mod log;
pub mod memory;
pub mod style;
pub mod testing;

pub use io::{Input, Output, Outputs};
pub use style::{Action, Arg, Style, StyleError};

use bindings::kiln::plugin::types as wit;

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

/// A plugin's self-description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub reads: Vec<String>,
    pub writes: Vec<String>,
}

impl PluginInfo {
    pub fn new(name: &str, version: &str, description: &str) -> Self {
        PluginInfo { name: name.into(), version: version.into(), description: description.into(), ..Default::default() }
    }
    /// Formats read (extensions or media types); none means any.
    pub fn reads(mut self, formats: &[&str]) -> Self {
        self.reads = formats.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Formats written.
    pub fn writes(mut self, formats: &[&str]) -> Self {
        self.writes = formats.iter().map(|s| s.to_string()).collect();
        self
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
pub trait Processor {
    /// Name, version, description and formats.
    fn info() -> PluginInfo;

    /// Check the parameters (the style after the plugin name) without
    /// processing. The host calls this when a style or job is created, so
    /// mistakes surface before any object is read.
    fn validate(params: &str) -> Result<(), StyleError>;

    /// Process one object: read `input`, write zero or more outputs.
    fn process(
        params: &str,
        object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<(), ProcessError>;
}

/// Export a [`Processor`] as this component's implementation of the
/// `kiln:plugin/processor` world. Use it once, in the plugin's crate root.
#[macro_export]
macro_rules! export {
    ($processor:ty) => {
        const _: () = {
            struct KilnGuest;
            impl $crate::bindings::Guest for KilnGuest {
                fn info() -> $crate::bindings::PluginInfo {
                    $crate::__private::info::<$processor>()
                }
                fn validate(params: String) -> Result<(), String> {
                    $crate::__private::validate::<$processor>(&params)
                }
                fn process(
                    params: String,
                    object: $crate::bindings::ObjectInfo,
                    input: &$crate::bindings::Input,
                    outputs: &$crate::bindings::Outputs,
                ) -> Result<(), $crate::bindings::ProcessError> {
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
        wit::PluginInfo {
            name: i.name,
            version: i.version,
            description: i.description,
            reads: i.reads,
            writes: i.writes,
        }
    }

    pub fn validate<P: Processor>(params: &str) -> Result<(), String> {
        P::validate(params).map_err(|e| e.to_string())
    }

    pub fn process<P: Processor>(
        params: String,
        object: wit::ObjectInfo,
        input: &wit::Input,
        outputs: &wit::Outputs,
    ) -> Result<(), wit::ProcessError> {
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
        let result = P::process(&params, &object, &mut input, &mut outputs);
        // Flush buffered bytes before reporting success, so a write error
        // (e.g. the host's output cap) fails the task instead of vanishing in Drop.
        let result = result.and_then(|()| outputs.finish().map_err(ProcessError::from));
        result.map_err(|e| match e {
            ProcessError::InvalidParams(m) => wit::ProcessError::InvalidParams(m),
            ProcessError::UnsupportedInput(m) => wit::ProcessError::UnsupportedInput(m),
            ProcessError::Failed(m) => wit::ProcessError::Failed(m),
        })
    }
}
