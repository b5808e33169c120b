//! `kiln plugin new`: each language's project, as generated, builds into a
//! component that `kiln process` runs (upper-casing into a file, and a task
//! result on stdout), and passes its own test. `scripts/test` has what the
//! builds need: the wasm32-wasip2 target, npm, componentize-py.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::kiln;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Run a build step in `dir`, with none of the outer cargo's settings.
fn step(dir: &Path, program: &str, args: &[&str]) {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir).stdin(std::process::Stdio::null());
    kiln_guest_build::without_outer_cargo(&mut cmd);
    // One target folder for every run of the Rust project, so a rerun is incremental.
    cmd.env("CARGO_TARGET_DIR", root().join("target/plugin-new"));
    let out = cmd.output().unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Generate `lang`'s project, build it with `build`, and run the component.
fn generated_project_runs(lang: &str, build: &[(&str, &[&str])], wasm: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shout");
    let o = kiln(&["plugin", "new", "shout", "--lang", lang, "--dir", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("next: "), "{}", String::from_utf8_lossy(&o.stdout));
    // A second time into the same folder is refused: nothing is overwritten.
    let again = kiln(&["plugin", "new", "shout", "--lang", lang, "--dir", dir.to_str().unwrap()]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"));
    for (program, args) in build {
        step(&dir, program, args);
    }
    let wasm = if wasm.starts_with('/') { Path::new(wasm).to_path_buf() } else { dir.join(wasm) };
    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "hello kiln\nsecond line\n").unwrap();
    let (out, cache) = (tmp.path().join("out/"), tmp.path().join("cache"));
    let (w, t, c) = (wasm.to_str().unwrap(), text.to_str().unwrap(), cache.to_str().unwrap());
    let o = kiln(&["process", "--plugin", w, "--params", "upper", "--cache-dir", c, t, "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{lang}: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "HELLO KILN\nSECOND LINE\n", "{lang}");
    let o = kiln(&["process", "--plugin", w, "--params", "count", "--cache-dir", c, t]);
    assert!(o.status.success(), "{lang}: {}", String::from_utf8_lossy(&o.stderr));
    let result: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(result, serde_json::json!({"bytes": 23, "lines": 2}), "{lang}");
    let o = kiln(&["process", "--plugin", w, "--params", "shout", "--cache-dir", c, t]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unknown action `shout`"), "{lang}");
}

#[test]
fn a_new_rust_plugin_builds_and_runs() {
    let target = root().join("target/plugin-new/wasm32-wasip2/release/shout.wasm");
    generated_project_runs(
        "rust",
        &[("cargo", &["build", "--release", "--target", "wasm32-wasip2", "-q"]), ("cargo", &["test", "-q"])],
        target.to_str().unwrap(),
    );
}

#[test]
fn a_new_javascript_plugin_builds_and_runs() {
    generated_project_runs(
        "js",
        &[
            ("npm", &["install", "--no-audit", "--no-fund", "--no-update-notifier", "--loglevel=error"]),
            ("npm", &["run", "build", "--silent"]),
            ("npm", &["test", "--silent"]),
        ],
        "dist/shout.wasm",
    );
}

#[test]
fn a_new_python_plugin_builds_and_runs() {
    generated_project_runs(
        "python",
        &[(
            "componentize-py",
            &["-d", "wit", "-w", "kiln:plugin/processor", "componentize", "--stub-wasi", "app", "-o", "shout.wasm"],
        )],
        "shout.wasm",
    );
}
