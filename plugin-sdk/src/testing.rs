//! A local test harness: run a [`Processor`] natively, with in-memory input
//! and outputs, from a plugin's own `#[test]`s. No host and no wasm needed.

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

use crate::{Input, ObjectInfo, Outputs, ProcessError, Processor};

/// One output written by a plugin under the harness.
#[derive(Debug, Clone)]
pub struct MemoryOutput {
    /// The extension given to `open`, i.e. `{autoext}`.
    pub extension: Option<String>,
    /// The bytes written.
    pub bytes: Vec<u8>,
    pub(crate) shared: Rc<RefCell<Vec<u8>>>,
}

/// Validate `params`, then process `input` as an object named `input.bin`.
pub fn run<P: Processor>(params: &str, input: &[u8]) -> Result<Vec<MemoryOutput>, ProcessError> {
    let object = ObjectInfo {
        bucket: "test".into(),
        key: "input.bin".into(),
        size: Some(input.len() as u64),
        ..Default::default()
    };
    run_with::<P>(params, &object, input)
}

/// Validate `params`, then process `input` as `object`.
pub fn run_with<P: Processor>(
    params: &str,
    object: &ObjectInfo,
    input: impl Read,
) -> Result<Vec<MemoryOutput>, ProcessError> {
    P::validate(params)?;
    let list = RefCell::new(Vec::new());
    {
        let mut input = Input::from_reader(input);
        let mut outputs = Outputs::memory(&list);
        P::process(params, object, &mut input, &mut outputs)?;
        outputs.finish()?;
    }
    Ok(list
        .into_inner()
        .into_iter()
        .map(|mut o| {
            o.bytes = o.shared.borrow().clone();
            o
        })
        .collect())
}
