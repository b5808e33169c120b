//! A test plugin of `kiln:plugin@0.1.0`, the first contract, which the host
//! still runs beside 0.2.0. Written with wit-bindgen alone, no SDK.
//!
//! - `` (no params) or `copy`: the input unchanged, one output with the key's
//!   extension (none if the key has none)
//! - `upper`: the input with ASCII letters upper-cased, extension `txt`
//! - `fail`: fails (kind `failed`) on purpose, with no output

wit_bindgen::generate!({ path: "../../../../wit", world: "kiln:plugin/processor" });

struct Legacy;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Copy,
    Upper,
    Fail,
}

fn mode(params: &str) -> Result<Mode, String> {
    match params.trim() {
        "" | "copy" => Ok(Mode::Copy),
        "upper" => Ok(Mode::Upper),
        "fail" => Ok(Mode::Fail),
        other => Err(format!("unknown action `{other}`; expected one of: copy, upper, fail")),
    }
}

/// The key's extension, lower-cased, without the dot.
fn extension(key: &str) -> Option<String> {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.rsplit_once('.').filter(|(stem, _)| !stem.is_empty()).map(|(_, ext)| ext.to_ascii_lowercase())
}

impl Guest for Legacy {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "legacy".into(),
            version: "0.1.0".into(),
            description: "Copies or upper-cases its input; a test plugin of contract 0.1.0".into(),
            reads: vec![],
            writes: vec!["txt".into(), "bin".into()],
        }
    }

    fn validate(params: String) -> Result<(), String> {
        mode(&params).map(|_| ())
    }

    fn process(params: String, object: ObjectInfo, input: &Input, outputs: &Outputs) -> Result<(), ProcessError> {
        let mode = mode(&params).map_err(ProcessError::InvalidParams)?;
        if mode == Mode::Fail {
            return Err(ProcessError::Failed(format!("legacy fails on `{}` on purpose", object.key)));
        }
        let ext = match mode {
            Mode::Upper => Some("txt".to_string()),
            _ => extension(&object.key),
        };
        let out = outputs.open(ext.as_deref()).map_err(ProcessError::Failed)?;
        loop {
            let mut chunk = input.read(64 << 10).map_err(ProcessError::Failed)?;
            if chunk.is_empty() {
                return Ok(());
            }
            if mode == Mode::Upper {
                chunk.make_ascii_uppercase();
            }
            out.write(&chunk).map_err(ProcessError::Failed)?;
        }
    }
}

export!(Legacy);
