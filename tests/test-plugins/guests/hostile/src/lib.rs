//! A hostile test plugin: each action misbehaves in one way the host must contain.

use std::hint::black_box;
use std::io::Write;

use kiln_plugin_sdk::{Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, Style, StyleError};

struct Hostile;

const ACTIONS: &[&str] = &["loop", "alloc", "recurse", "panic", "flood", "noise"];

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
            _ => Err(ProcessError::InvalidParams(format!("unknown action `{params}`"))),
        }
    }
}

kiln_plugin_sdk::export!(Hostile);
