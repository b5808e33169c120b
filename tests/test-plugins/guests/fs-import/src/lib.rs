//! Imports `wasi:filesystem` and reads `/etc/passwd`: Kiln links a filesystem
//! with no directory in it, so the read fails and the task never sees the file.

use kiln_plugin_sdk::{Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, StyleError};

struct ReadsFiles;

impl Processor for ReadsFiles {
    fn info() -> PluginInfo {
        PluginInfo::new("fs-import", "0.1.0", "Tries to read the host's files")
    }
    fn validate(_: &str) -> Result<(), StyleError> {
        Ok(())
    }
    fn process(_: &str, _: &ObjectInfo, _: &mut Input<'_>, _: &mut Outputs<'_>) -> Result<(), ProcessError> {
        let secret = std::fs::read_to_string("/etc/passwd")?;
        Err(ProcessError::failed(secret))
    }
}

kiln_plugin_sdk::export!(ReadsFiles);
