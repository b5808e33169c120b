//! Used by build scripts (the host's bundled plugins, the test plugins) to build
//! a cargo workspace of guests for `wasm32-wasip2` from source, so that no
//! `.wasm` is ever committed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A guest built from source.
pub struct Guest {
    /// The crate name with `-` as `_`, as the artifact is named.
    pub name: String,
    pub wasm: PathBuf,
}

/// Build the `packages` of the workspace at `dir` (all `cdylib` members when
/// empty) in release mode into `target_dir`, and return the components, sorted
/// by name.
///
/// Panics with cargo's output on failure: this runs inside build scripts.
pub fn build_workspace(dir: &Path, target_dir: &Path, packages: &[&str]) -> Vec<Guest> {
    println!("cargo:rerun-if-env-changed=KILN_GUEST_PROFILE");
    for watched in [dir.to_path_buf(), dir.join("../plugin-sdk"), dir.join("../wit")] {
        if watched.exists() {
            rerun_if_changed(&watched);
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir).args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"]).arg(target_dir);
    let names: Vec<String> =
        if packages.is_empty() { members(dir) } else { packages.iter().map(|p| p.to_string()).collect() };
    for name in &names {
        // By path where the member's folder bears its name: a dependency may
        // share the name (`image` the plugin, `image` the crate Typst uses).
        let member = dir.join(name);
        match member.join("Cargo.toml").exists().then(|| member.canonicalize().ok()).flatten() {
            Some(path) => cmd.arg("-p").arg(format!("path+file://{}", path.display())),
            None => cmd.args(["-p", name]),
        };
    }
    without_outer_cargo(&mut cmd);
    let out = cmd.stdin(std::process::Stdio::null()).output().expect("running cargo to build the guest plugins");
    if !out.status.success() {
        panic!(
            "building guest plugins in {} failed (is the target installed? `rustup target add wasm32-wasip2`):\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let release = target_dir.join("wasm32-wasip2/release");
    let mut guests: Vec<Guest> = names
        .iter()
        .map(|name| {
            let file = name.replace('-', "_");
            let wasm = release.join(format!("{file}.wasm"));
            assert!(wasm.exists(), "cargo built no {}", wasm.display());
            Guest { name: file, wasm }
        })
        .collect();
    guests.sort_by(|a, b| a.name.cmp(&b.name));
    guests
}

/// Package names of the workspace members: each `*/Cargo.toml` below `dir`.
/// Remove the outer cargo's settings from `cmd`: they are for the host, not
/// for a nested build of guests. The jobserver is not shared either: its file
/// descriptors are not reliably inherited here, and a nested cargo that trusts
/// CARGO_MAKEFLAGS can end up reading an unrelated pipe (seen under `cargo
/// test --workspace`).
pub fn without_outer_cargo(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars() {
        let keep = key == "CARGO_HOME" || key == "CARGO";
        let make = key == "MAKEFLAGS" || key == "MFLAGS";
        if (key.starts_with("CARGO_") && !keep)
            || make
            || key == "RUSTFLAGS"
            || key == "RUSTC"
            || key == "RUSTC_WORKSPACE_WRAPPER"
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn members(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).expect("reading the guest workspace") {
        let manifest = entry.expect("reading the guest workspace").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        let name = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = \"").and_then(|rest| rest.strip_suffix('"')))
            .unwrap_or_else(|| panic!("no package name in {}", manifest.display()));
        if text.contains("cdylib") {
            names.push(name.to_string());
        }
    }
    names
}

fn rerun_if_changed(path: &Path) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else { return };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rerun_if_changed(&p);
        }
    } else {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
