//! A test plugin whose `info()` never returns: an upload must be refused
//! within the control deadline, not hold the request for a task's deadline.

use std::hint::black_box;

use kiln_plugin_sdk::{Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, StyleError};

struct StallInfo;

impl Processor for StallInfo {
    fn info() -> PluginInfo {
        loop {
            black_box(());
        }
    }

    fn validate(_params: &str) -> Result<(), StyleError> {
        Ok(())
    }

    fn process(
        _params: &str,
        _object: &ObjectInfo,
        _input: &mut Input<'_>,
        _outputs: &mut Outputs<'_>,
    ) -> Result<(), ProcessError> {
        Ok(())
    }
}

kiln_plugin_sdk::export!(StallInfo);
