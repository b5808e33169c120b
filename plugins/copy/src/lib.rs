//! `copy`: writes the object unchanged, keeping its extension for `{autoext}`.
//! The smallest useful plugin, and the baseline for throughput benchmarks.

use kiln_plugin_sdk::{Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, Style, StyleError};

pub struct Copy;

impl Processor for Copy {
    fn info() -> PluginInfo {
        PluginInfo::new("copy", env!("CARGO_PKG_VERSION"), "Copies the object unchanged")
    }

    fn validate(params: &str) -> Result<(), StyleError> {
        match Style::parse(params)?.actions.first() {
            None => Ok(()),
            Some(a) => Err(kiln_plugin_sdk::style::unknown_action(&a.name, &[])),
        }
    }

    fn process(
        _params: &str,
        object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<(), ProcessError> {
        let ext = object.extension();
        let mut out = outputs.open(ext.as_deref())?;
        std::io::copy(input, &mut out)?;
        Ok(())
    }
}

kiln_plugin_sdk::export!(Copy);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_bytes_and_keeps_the_extension() {
        let object = ObjectInfo { key: "a/b.txt".into(), ..Default::default() };
        let out = kiln_plugin_sdk::testing::run_with::<Copy>("", &object, &b"hello"[..]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bytes, b"hello");
        assert_eq!(out[0].extension.as_deref(), Some("txt"));
        assert!(Copy::validate("resize").is_err());
    }
}
