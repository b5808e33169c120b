//! A local test harness: run a [`Processor`] natively, with in-memory input
//! and outputs, from a plugin's own `#[test]`s. No host and no wasm needed.
//!
//! [`run`] gives the outputs; [`run_full`] the outputs and the task's result;
//! [`Harness`] sets the object, hides the size (as a host reading a stream
//! does) or streams from a reader. Bytes given as a slice are read with
//! random access, as the host reads a file or a bucket object; a reader is
//! read in order only. The harness checks what the host checks: the
//! parameters with `validate`, output variables against `info().variables`,
//! and the result's size ([`MAX_RESULT`](crate::MAX_RESULT)).

use std::cell::{Cell, RefCell};
use std::io::Read;
use std::rc::Rc;

use crate::{Input, Json, ObjectInfo, Outputs, ProcessError, Processor};

/// One output written by a plugin under the harness.
#[derive(Debug, Clone)]
pub struct MemoryOutput {
    /// The extension given to `open`, i.e. `{autoext}`.
    pub extension: Option<String>,
    /// The content type given to [`Outputs::open_with`].
    pub content_type: Option<String>,
    /// The output variables given to [`Outputs::open_with`].
    pub variables: Vec<(String, String)>,
    /// The bytes written.
    pub bytes: Vec<u8>,
    pub(crate) shared: Rc<RefCell<Vec<u8>>>,
}

/// What a task did under the harness.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The outputs, in the order opened.
    pub outputs: Vec<MemoryOutput>,
    /// The task's result, if the plugin returned one.
    pub result: Option<Json>,
    /// The extension [`Processor::extension`] gave for the parameters.
    pub extension: Option<String>,
    /// How many times the plugin read at an offset (`read-at` calls): a
    /// test can check that random access is buffered.
    pub read_at_calls: u64,
}

/// Validate `params`, then process `input` as an object named `input.bin`;
/// the outputs. The input is read with random access, like a file.
pub fn run<P: Processor>(params: &str, input: &[u8]) -> Result<Vec<MemoryOutput>, ProcessError> {
    Harness::new(params, input).run::<P>().map(|r| r.outputs)
}

/// Like [`run`], with the task's result too.
pub fn run_full<P: Processor>(params: &str, input: &[u8]) -> Result<Ran, ProcessError> {
    Harness::new(params, input).run::<P>()
}

/// Validate `params`, then process `input` as `object`; the outputs. A reader
/// is read in order only: for random access, use [`Harness`] with bytes.
pub fn run_with<P: Processor>(
    params: &str,
    object: &ObjectInfo,
    input: impl Read,
) -> Result<Vec<MemoryOutput>, ProcessError> {
    Harness::streamed(params, input).object(object.clone()).run::<P>().map(|r| r.outputs)
}

/// The output variables `P` declares, asked only when an output sets one.
fn declared<P: Processor>() -> Vec<String> {
    P::info().variables
}

enum Source<'a> {
    Bytes(&'a [u8]),
    Reader(Box<dyn Read + 'a>),
}

/// One task, set up to run under the harness.
///
/// ```
/// # use kiln_plugin_sdk::{testing::Harness, ObjectInfo};
/// # struct P;
/// # impl kiln_plugin_sdk::Processor for P {
/// #     fn info() -> kiln_plugin_sdk::PluginInfo { kiln_plugin_sdk::PluginInfo::new("p", "1", "") }
/// #     fn validate(_: &str) -> Result<(), kiln_plugin_sdk::StyleError> { Ok(()) }
/// # }
/// let object = ObjectInfo { key: "photos/cat.jpg".into(), ..Default::default() };
/// let ran = Harness::new("", b"...").object(object).without_size().run::<P>();
/// ```
pub struct Harness<'a> {
    params: String,
    object: ObjectInfo,
    source: Source<'a>,
    sized: bool,
}

impl<'a> Harness<'a> {
    /// `input` in memory, of known size, named `input.bin`.
    pub fn new(params: &str, input: &'a [u8]) -> Self {
        let object = ObjectInfo {
            bucket: "test".into(),
            key: "input.bin".into(),
            size: Some(input.len() as u64),
            ..Default::default()
        };
        Harness { params: params.into(), object, source: Source::Bytes(input), sized: true }
    }

    /// A reader, read in order only (no size, no seeking), named `input.bin`.
    pub fn streamed(params: &str, input: impl Read + 'a) -> Self {
        let object = ObjectInfo { bucket: "test".into(), key: "input.bin".into(), ..Default::default() };
        Harness { params: params.into(), object, source: Source::Reader(Box::new(input)), sized: false }
    }

    /// What the plugin is told of the object.
    pub fn object(mut self, object: ObjectInfo) -> Self {
        self.object = object;
        self
    }

    /// Play a host that does not know the size (`input.size()` is `None`, so
    /// the input reads in order only), as for stdin.
    pub fn without_size(mut self) -> Self {
        self.sized = false;
        self.object.size = None;
        self
    }

    /// Validate the parameters, then process the object.
    pub fn run<P: Processor>(self) -> Result<Ran, ProcessError> {
        P::validate(&self.params)?;
        let extension = P::extension(&self.params);
        let list = RefCell::new(Vec::new());
        let read_at_calls = Rc::new(Cell::new(0));
        let result = {
            let mut input = match self.source {
                Source::Bytes(bytes) => Input::from_bytes_counted(bytes, self.sized, read_at_calls.clone()),
                Source::Reader(reader) => Input::from_reader(reader),
            };
            let mut outputs = Outputs::memory(&list, declared::<P>);
            let result = P::process_with_result(&self.params, &self.object, &mut input, &mut outputs)?;
            outputs.finish()?;
            crate::result_text(result.as_ref())?;
            result
        };
        let outputs = list
            .into_inner()
            .into_iter()
            .map(|mut o| {
                o.bytes = o.shared.borrow().clone();
                o
            })
            .collect();
        Ok(Ran { outputs, result, extension, read_at_calls: read_at_calls.get() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{OutputOptions, PluginInfo, StyleError};
    use serde_json::json;

    /// `big`: a result over the cap; `var_V`: an output setting variable V; else a small result.
    struct Answers;

    impl Processor for Answers {
        fn info() -> PluginInfo {
            PluginInfo::new("answers", "1", "").variables(&["page"])
        }
        fn validate(_: &str) -> Result<(), StyleError> {
            Ok(())
        }
        fn extension(params: &str) -> Option<String> {
            params.starts_with("var").then(|| "txt".into())
        }
        fn process_with_result(
            params: &str,
            object: &ObjectInfo,
            input: &mut Input<'_>,
            outputs: &mut Outputs<'_>,
        ) -> Result<Option<Json>, ProcessError> {
            if params == "big" {
                return Ok(Some(json!("x".repeat(crate::MAX_RESULT))));
            }
            if let Some(var) = params.strip_prefix("var_") {
                outputs.open_with(OutputOptions::extension("txt").content_type("text/plain").variable(var, 1))?;
                return Ok(None);
            }
            Ok(Some(json!({ "key": object.key, "size": input.size() })))
        }
    }

    #[test]
    fn results_options_and_the_checks_the_host_makes() {
        let ran = run_full::<Answers>("", b"abc").unwrap();
        assert_eq!(ran.result, Some(json!({ "key": "input.bin", "size": 3 })));
        let ran = Harness::new("", b"abc").without_size().run::<Answers>().unwrap();
        assert_eq!(ran.result, Some(json!({ "key": "input.bin", "size": null })));

        let err = run_full::<Answers>("big", b"").unwrap_err().to_string();
        assert!(err.contains("task result is 64.0 KiB") && err.contains("64.0 KiB a result may hold"), "{err}");

        let ran = run_full::<Answers>("var_page", b"").unwrap();
        assert_eq!(ran.extension.as_deref(), Some("txt"));
        let out = &ran.outputs[0];
        assert_eq!(out.content_type.as_deref(), Some("text/plain"));
        assert_eq!(out.variables, [("page".to_string(), "1".to_string())]);
        let err = run::<Answers>("var_sheet", b"").unwrap_err().to_string();
        assert!(err.contains("`sheet` is not one the plugin declares") && err.contains("declared: page"), "{err}");
    }

    /// A plugin of the 0.1.0 SDK's shape: `process` only.
    struct Plain;

    impl Processor for Plain {
        fn info() -> PluginInfo {
            PluginInfo::new("plain", "1", "")
        }
        fn validate(_: &str) -> Result<(), StyleError> {
            Ok(())
        }
        fn process(
            _: &str,
            _: &ObjectInfo,
            input: &mut Input<'_>,
            outputs: &mut Outputs<'_>,
        ) -> Result<(), ProcessError> {
            std::io::copy(input, &mut outputs.open(Some("bin"))?)?;
            Ok(())
        }
    }

    #[test]
    fn a_plugin_with_process_only_runs_as_before() {
        let ran = run_full::<Plain>("", b"abc").unwrap();
        assert_eq!((ran.result, ran.extension, ran.outputs[0].bytes.as_slice()), (None, None, &b"abc"[..]));
        let object = ObjectInfo { key: "k".into(), ..Default::default() };
        assert_eq!(run_with::<Plain>("", &object, &b"xyz"[..]).unwrap()[0].bytes, b"xyz");
    }
}
