//! A test plugin whose `info()` is enormous: a 64 MiB description and 100,000
//! formats. The host must cut it before storing it or sending it in plugin lists.

use std::io::Write;

use kiln_plugin_sdk::{Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, StyleError};

struct Bigmouth;

impl Processor for Bigmouth {
    fn info() -> PluginInfo {
        let formats: Vec<String> = (0..100_000).map(|i| format!("format-{i}")).collect();
        let formats: Vec<&str> = formats.iter().map(String::as_str).collect();
        PluginInfo::new("bigmouth", "0.1.0", &"blah ".repeat(64 << 20 >> 2 >> 1)).reads(&formats).writes(&formats)
    }

    fn validate(_params: &str) -> Result<(), StyleError> {
        Ok(())
    }

    fn process(
        _params: &str,
        _object: &ObjectInfo,
        _input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<(), ProcessError> {
        outputs.open(Some("txt"))?.write_all(b"said too much\n")?;
        Ok(())
    }
}

kiln_plugin_sdk::export!(Bigmouth);
