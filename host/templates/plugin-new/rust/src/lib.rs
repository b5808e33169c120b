//! `{{name}}`: a Kiln processing plugin (contract kiln:plugin@0.2.0).
//!
//! - `{{name}}/upper`: the text, upper-cased (the default)
//! - `{{name}}/copy`: the object unchanged
//! - `{{name}}/count`: no output; the task's result is `{"bytes": N, "lines": N}`

use std::io::{Read, Write};

use kiln_plugin_sdk::{
    ActionInfo, Input, Json, ObjectInfo, OutputOptions, Outputs, PluginInfo, ProcessError, Processor, Style,
    StyleError, serde_json::json,
};

pub struct Plugin;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Action {
    Upper,
    Copy,
    Count,
}

fn action(params: &str) -> Result<Action, StyleError> {
    let style = Style::parse(params)?;
    let mut chosen = Action::Upper;
    for action in &style.actions {
        action.expect_keys(&[], false)?;
        chosen = match action.name.as_str() {
            "upper" => Action::Upper,
            "copy" => Action::Copy,
            "count" => Action::Count,
            other => return Err(kiln_plugin_sdk::style::unknown_action(other, &["upper", "copy", "count"])),
        };
    }
    Ok(chosen)
}

impl Processor for Plugin {
    fn info() -> PluginInfo {
        PluginInfo::new("{{name}}", env!("CARGO_PKG_VERSION"), "Upper-cases or copies an object, or counts its lines")
            .writes(&["txt"])
            .actions(vec![
                ActionInfo::new("upper", "The text, upper-cased"),
                ActionInfo::new("copy", "The object unchanged"),
                ActionInfo::new("count", "No output; the task's result is {\"bytes\", \"lines\"}"),
            ])
    }

    fn validate(params: &str) -> Result<(), StyleError> {
        action(params).map(|_| ())
    }

    fn extension(params: &str) -> Option<String> {
        match action(params) {
            Ok(Action::Upper) => Some("txt".into()),
            _ => None,
        }
    }

    fn process_with_result(
        params: &str,
        object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<Option<Json>, ProcessError> {
        let mut buf = vec![0; 64 << 10];
        match action(params)? {
            Action::Upper => {
                let mut out = outputs.open_with(OutputOptions::extension("txt").content_type("text/plain; charset=utf-8"))?;
                loop {
                    let n = input.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    buf[..n].make_ascii_uppercase();
                    out.write_all(&buf[..n])?;
                }
                Ok(None)
            }
            Action::Copy => {
                // The source's own extension: `{autoext}` falls back to it.
                let ext = object.key.rsplit_once('.').map(|(_, e)| e.to_string());
                let options = match ext {
                    Some(e) if !e.is_empty() && e.len() <= 16 && e.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                        OutputOptions::extension(&e)
                    }
                    _ => OutputOptions::default(),
                };
                std::io::copy(input, &mut outputs.open_with(options)?)?;
                Ok(None)
            }
            Action::Count => {
                let (mut bytes, mut lines) = (0u64, 0u64);
                loop {
                    let n = input.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    bytes += n as u64;
                    lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
                }
                Ok(Some(json!({ "bytes": bytes, "lines": lines })))
            }
        }
    }
}

kiln_plugin_sdk::export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_plugin_sdk::testing;

    #[test]
    fn upper_cases_and_counts() {
        let outputs = testing::run::<Plugin>("upper", b"hello kiln\n").unwrap();
        assert_eq!(outputs[0].bytes, b"HELLO KILN\n");
        let ran = testing::run_full::<Plugin>("count", b"a\nb\n").unwrap();
        assert_eq!(ran.result, Some(json!({ "bytes": 4, "lines": 2 })));
        assert!(Plugin::validate("shout").unwrap_err().to_string().contains("unknown action `shout`"));
    }
}
