//! A well-behaved test plugin.
//!
//! - `` (no params): copies the input to one output with extension `txt`.
//! - `repeat,n_N`: writes N outputs, each a copy of the input (`{index}` = 1..N).
//! - `fail-on,k_TEXT`: fails (kind `failed`) when the key contains TEXT, else copies.
//! - `reject`: refuses every input as unsupported.
//! - `log`: logs a line, then copies.
//! - `sleep,ms_N`: waits N milliseconds (through the WASI clock), then copies: a slow task.

use std::io::{Read, Write};

use kiln_plugin_sdk::{Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, Style, StyleError, log};

struct Echo;

struct Params {
    repeat: u32,
    fail_on: Option<String>,
    reject: bool,
    log: bool,
    sleep_ms: u64,
}

fn parse(params: &str) -> Result<Params, StyleError> {
    let mut p = Params { repeat: 1, fail_on: None, reject: false, log: false, sleep_ms: 0 };
    for a in Style::parse(params)?.actions {
        match a.name.as_str() {
            "repeat" => {
                a.expect_keys(&["n"], false)?;
                p.repeat = a.get_in::<u32>("n", 1..=1000)?.unwrap_or(1);
            }
            "fail-on" => {
                a.expect_keys(&["k"], false)?;
                p.fail_on = Some(a.require::<String>("k")?);
            }
            "sleep" => {
                a.expect_keys(&["ms"], false)?;
                p.sleep_ms = a.get_in::<u64>("ms", 0..=60_000)?.unwrap_or(0);
            }
            "reject" => p.reject = true,
            "log" => p.log = true,
            other => {
                return Err(kiln_plugin_sdk::style::unknown_action(
                    other,
                    &["repeat", "fail-on", "reject", "log", "sleep"],
                ));
            }
        }
    }
    Ok(p)
}

impl Processor for Echo {
    fn info() -> PluginInfo {
        PluginInfo::new("echo", "0.1.0", "Copies its input; a test plugin").writes(&["txt"])
    }

    fn validate(params: &str) -> Result<(), StyleError> {
        parse(params).map(|_| ())
    }

    fn extension(params: &str) -> Option<String> {
        parse(params).ok().map(|_| "txt".into())
    }

    fn process(
        params: &str,
        object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<(), ProcessError> {
        let p = parse(params)?;
        if p.reject {
            return Err(ProcessError::unsupported(format!("echo refuses `{}` on purpose", object.key)));
        }
        if p.fail_on.as_deref().is_some_and(|k| object.key.contains(k)) {
            return Err(ProcessError::failed(format!("echo fails on `{}` on purpose", object.key)));
        }
        if p.sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(p.sleep_ms));
        }
        if p.log {
            log::info(&format!("echo processing {}", object.key));
        }
        if p.repeat == 1 {
            let mut out = outputs.open(Some("txt"))?;
            std::io::copy(input, &mut out)?;
            return Ok(());
        }
        let mut all = Vec::new();
        input.read_to_end(&mut all)?;
        for _ in 0..p.repeat {
            outputs.open(Some("txt"))?.write_all(&all)?;
        }
        Ok(())
    }
}

kiln_plugin_sdk::export!(Echo);
