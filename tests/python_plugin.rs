//! A plugin written in Python, built from `tests/python-plugin/app.py` with
//! componentize-py against `wit/`, and run through the same runtime: plugin
//! authors are not tied to Rust. `scripts/test` installs componentize-py.

mod common;

use std::path::Path;
use std::process::Command;

use common::kiln;

#[test]
fn python_component_runs_through_kiln_process() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("wordcount.wasm");
    // `--stub-wasi` replaces CPython's WASI imports (it links the filesystem
    // and sockets) with trapping stubs, so the component passes Kiln's
    // import check; the app itself only uses the contract.
    let built = Command::new("componentize-py")
        .args([
            "-d",
            root.join("wit").to_str().unwrap(),
            "-w",
            "kiln:plugin/processor",
            "componentize",
            "--stub-wasi",
            "-p",
        ])
        .arg(root.join("tests/python-plugin"))
        .args(["app", "-o"])
        .arg(&wasm)
        .current_dir(dir.path())
        .output()
        .expect("componentize-py is needed: `pip install componentize-py` (scripts/test installs it)");
    assert!(built.status.success(), "componentize-py failed: {}", String::from_utf8_lossy(&built.stderr));

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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("wordcount2.wasm");
    let built = Command::new("componentize-py")
        .args(["-d", root.join("wit/0.2.0").to_str().unwrap(), "-w", "kiln:plugin/processor", "componentize"])
        .args(["--stub-wasi", "-p"])
        .arg(root.join("tests/python-plugin-v2"))
        .args(["app", "-o"])
        .arg(&wasm)
        .current_dir(dir.path())
        .output()
        .expect("componentize-py is needed: `pip install componentize-py` (scripts/test installs it)");
    assert!(built.status.success(), "componentize-py failed: {}", String::from_utf8_lossy(&built.stderr));

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
