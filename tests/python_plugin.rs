//! A plugin written in Python, built from `tests/python-plugin/app.py` with
//! componentize-py against `wit/`, and run through the same runtime: plugin
//! authors are not tied to Rust. `scripts/test` installs componentize-py.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::kiln;

/// `componentize-py` of `tests/<app_dir>/app.py` against the WIT in `wit_dir`,
/// into `<dir>/<name>.wasm`.
fn componentize(dir: &Path, wit_dir: &str, app_dir: &str, name: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let wasm = dir.join(format!("{name}.wasm"));
    // `--stub-wasi` replaces CPython's WASI imports (it links the filesystem
    // and sockets) with trapping stubs, so the component passes Kiln's
    // import check; the app itself only uses the contract.
    let built = Command::new("componentize-py")
        .args(["-d", root.join(wit_dir).to_str().unwrap(), "-w", "kiln:plugin/processor", "componentize"])
        .args(["--stub-wasi", "-p"])
        .arg(root.join("tests").join(app_dir))
        .args(["app", "-o"])
        .arg(&wasm)
        .current_dir(dir)
        .output()
        .expect("componentize-py is needed: `pip install componentize-py` (scripts/test installs it)");
    assert!(built.status.success(), "componentize-py failed: {}", String::from_utf8_lossy(&built.stderr));
    wasm
}

#[test]
fn python_component_runs_through_kiln_process() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = componentize(dir.path(), "wit", "python-plugin", "wordcount");

    let text = dir.path().join("poem.txt");
    std::fs::write(&text, "the quick brown fox\njumps over\nthe lazy dog\n").unwrap();
    let cache = dir.path().join("cache");
    let (wasm, text, cache) = (wasm.to_str().unwrap(), text.to_str().unwrap(), cache.to_str().unwrap());

    let o = kiln(&["process", "--plugin", wasm, "--cache-dir", cache, text]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let counts: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(counts, serde_json::json!({"lines": 3, "words": 9, "bytes": 44}));

    let o = kiln(&["process", "--plugin", wasm, "--params", "count,unit_words", "--cache-dir", cache, text]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap(), serde_json::json!({"words": 9}));

    let o = kiln(&["process", "--plugin", wasm, "--params", "count,unit_pages", "--cache-dir", cache, text]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("`unit`") && err.contains("`pages`"), "{err}");
}

/// The same in Python against contract 0.2.0 (`tests/python-plugin-v2/app.py`):
/// a task result instead of an output object, and `read-at`.
#[test]
fn python_component_of_contract_0_2_0() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = componentize(dir.path(), "wit/0.2.0", "python-plugin-v2", "wordcount2");

    let text = dir.path().join("poem.txt");
    std::fs::write(&text, "the quick brown fox\njumps over\nthe lazy dog\n").unwrap();
    let (out, cache) = (dir.path().join("out/"), dir.path().join("cache"));
    let (wasm, text, cache) = (wasm.to_str().unwrap(), text.to_str().unwrap(), cache.to_str().unwrap());

    // The result is printed on stdout: no output object was written.
    let o = kiln(&["process", "--plugin", wasm, "--params", "count", "--cache-dir", cache, text]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let counts: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(counts, serde_json::json!({"lines": 3, "words": 9, "bytes": 44}));

    // `read-at` over a local file: the last 9 bytes.
    let o = kiln(&[
        "process",
        "--plugin",
        wasm,
        "--params",
        "tail,n_9",
        "--cache-dir",
        cache,
        text,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(out.join("poem.txt")).unwrap(), "lazy dog\n");
}
