//! A hostile test plugin: each action misbehaves in one way the host must contain.

use std::hint::black_box;
use std::io::Write;

use kiln_plugin_sdk::{Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, Style, StyleError};

struct Hostile;

const ACTIONS: &[&str] = &[
    "loop",
    "alloc",
    "recurse",
    "panic",
    "flood",
    "noise",
    "bigerror",
    "biglog",
    "ignore-refused",
    "exit",
    "outputs",
    "hang",
    "bigrefusal",
];

/// 100 MB of text: more than any cap, far less than the task's memory limit.
fn huge_text() -> String {
    "too long ".repeat(100 << 20 >> 3)
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // Not a tail call, and opaque to the optimiser: each level keeps a frame.
    black_box(recurse(black_box(depth + 1))) ^ depth
}

impl Processor for Hostile {
    fn info() -> PluginInfo {
        PluginInfo::new("hostile", "0.1.0", "Misbehaves on purpose")
    }

    fn validate(params: &str) -> Result<(), StyleError> {
        match params {
            // `validate` answers API requests: the host must not wait on it for long.
            "hang" => loop {
                black_box(());
            },
            // A refusal far larger than any 422 body should be.
            "bigrefusal" => {
                return Err(StyleError::UnexpectedValue { action: "bigrefusal".into(), value: huge_text() });
            }
            _ => {}
        }
        for a in Style::parse(params)?.actions {
            if !ACTIONS.contains(&a.name.as_str()) {
                return Err(kiln_plugin_sdk::style::unknown_action(&a.name, ACTIONS));
            }
        }
        Ok(())
    }

    fn process(
        params: &str,
        _object: &ObjectInfo,
        _input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<(), ProcessError> {
        match params {
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    black_box(&hoard);
                }
            }
            "recurse" => {
                black_box(recurse(0));
                Ok(())
            }
            "panic" => panic!("hostile plugin panicked on purpose"),
            "flood" => {
                let mut out = outputs.open(Some("bin"))?;
                let chunk = vec![0x5a; 64 * 1024];
                loop {
                    out.write_all(&chunk)?;
                }
            }
            "noise" => {
                for i in 0..20_000 {
                    eprintln!("noise line {i} that nobody should keep in full");
                }
                panic!("panicked after the noise");
            }
            "bigerror" => Err(ProcessError::Failed(huge_text())),
            "biglog" => {
                kiln_plugin_sdk::log::info(&huge_text());
                Ok(())
            }
            "ignore-refused" => {
                // An extension the host refuses; the plugin swallows the error and claims success.
                let _ = outputs.open(Some("not/an/extension"));
                Ok(())
            }
            "exit" => std::process::exit(0),
            "outputs" => {
                // 1,000 outputs of 256 KiB each: the host must not hold them all in memory.
                let chunk = vec![0x42; 256 << 10];
                for _ in 0..1000 {
                    outputs.open(Some("bin"))?.write_all(&chunk)?;
                }
                Ok(())
            }
            _ => Err(ProcessError::InvalidParams(format!("unknown action `{params}`"))),
        }
    }
}

kiln_plugin_sdk::export!(Hostile);
