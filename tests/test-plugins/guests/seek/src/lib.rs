//! A test plugin of `kiln:plugin@0.2.0`: each action exercises one addition.
//!
//! - `tail,n_N`: the last N bytes, read with `size` and `read-at` (`txt`, `text/plain`)
//! - `stats`: no output; the result `{"bytes", "lines"}`, read with `read`
//! - `parts,n_N`: N outputs, each setting the output variable `part` = 1..N
//! - `greedy`: `read-at` the first MiB again and again (the read cap stops it)
//! - `past`: `read-at` beyond the end: must give nothing
//! - `badresult`, `bigresult`: a result that is not JSON, one over 64 KiB
//! - `undeclared`: opens an output with a variable `info` does not declare
//! - `copy`: the input, read and written in 64 KiB chunks, as `legacy`'s
//!   `copy` does under 0.1.0 (`kiln bench runtime --compare` sets them side by side)

wit_bindgen::generate!({ path: "../../../../wit/0.2.0", world: "kiln:plugin/processor" });

use kiln::plugin::types::OutputOptions;

struct Seek;

fn count(params: &str, default: u64) -> Result<u64, String> {
    match params.split(',').nth(1) {
        None => Ok(default),
        Some(p) => p.strip_prefix("n_").and_then(|n| n.parse().ok()).ok_or_else(|| format!("`{p}`: use n_NUMBER")),
    }
}

fn action(params: &str) -> &str {
    params.split(',').next().unwrap_or("")
}

fn open(
    outputs: &Outputs,
    ext: &str,
    variables: Vec<(String, String)>,
) -> Result<kiln::plugin::types::Output, ProcessError> {
    outputs
        .open(&OutputOptions {
            extension: Some(ext.into()),
            content_type: Some("text/plain; charset=utf-8".into()),
            variables,
        })
        .map_err(ProcessError::Failed)
}

impl Guest for Seek {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "seek".into(),
            version: "0.2.0".into(),
            description: "A test plugin of contract 0.2.0".into(),
            reads: vec![],
            writes: vec!["txt".into(), "bin".into()],
            variables: vec!["part".into()],
            actions: r#"[{"name":"tail","description":"The last bytes","params":[{"name":"n","kind":"int","description":"How many","default":"16","range":"1..=1048576"}]},{"name":"stats","description":"Counts, as the task's result","params":[]}]"#.into(),
        }
    }

    fn validate(params: String) -> Result<CheckedStyle, String> {
        match action(&params) {
            "tail" | "parts" | "greedy" | "past" | "undeclared" => {
                count(&params, 1)?;
                Ok(CheckedStyle { extension: Some("txt".into()) })
            }
            "stats" | "badresult" | "bigresult" | "copy" => Ok(CheckedStyle { extension: None }),
            other => Err(format!("unknown action `{other}`: use tail, stats, parts, greedy, past")),
        }
    }

    fn process(
        params: String,
        _object: ObjectInfo,
        input: &Input,
        outputs: &Outputs,
    ) -> Result<Option<String>, ProcessError> {
        let fail = ProcessError::Failed;
        match action(&params) {
            "tail" => {
                let n = count(&params, 16).map_err(ProcessError::InvalidParams)?;
                let size = input.size().ok_or_else(|| fail("the size is unknown".into()))?;
                let from = size.saturating_sub(n);
                let bytes = input.read_at(from, (size - from) as u32).map_err(fail)?;
                open(outputs, "txt", vec![])?.write(&bytes).map_err(fail)?;
                Ok(None)
            }
            "stats" => {
                let (mut bytes, mut lines) = (0u64, 0u64);
                loop {
                    let chunk = input.read(64 << 10).map_err(fail)?;
                    if chunk.is_empty() {
                        break;
                    }
                    bytes += chunk.len() as u64;
                    lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
                }
                Ok(Some(format!(r#"{{"bytes":{bytes},"lines":{lines}}}"#)))
            }
            "parts" => {
                let n = count(&params, 2).map_err(ProcessError::InvalidParams)?;
                for i in 1..=n {
                    let out = open(outputs, "txt", vec![("part".into(), i.to_string())])?;
                    out.write(format!("part {i}\n").as_bytes()).map_err(fail)?;
                }
                Ok(None)
            }
            "greedy" => loop {
                input.read_at(0, 1 << 20).map_err(fail)?;
            },
            "past" => {
                let size = input.size().unwrap_or(0);
                let got = input.read_at(size + 10, 100).map_err(fail)?;
                let at_end = input.read_at(size, 100).map_err(fail)?;
                Ok(Some(format!(r#"{{"past":{},"at_end":{}}}"#, got.len(), at_end.len())))
            }
            "copy" => {
                let out = outputs
                    .open(&OutputOptions { extension: None, content_type: None, variables: vec![] })
                    .map_err(fail)?;
                loop {
                    let chunk = input.read(64 << 10).map_err(fail)?;
                    if chunk.is_empty() {
                        return Ok(None);
                    }
                    out.write(&chunk).map_err(fail)?;
                }
            }
            "badresult" => Ok(Some("not json".into())),
            "bigresult" => Ok(Some(format!("\"{}\"", "x".repeat(70 << 10)))),
            "undeclared" => {
                open(outputs, "txt", vec![("nope".into(), "1".into())])?;
                Ok(None)
            }
            other => Err(ProcessError::InvalidParams(format!("unknown action `{other}`"))),
        }
    }
}

export!(Seek);
