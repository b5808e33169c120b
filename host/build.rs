//! Builds the first-party plugins in `plugins/` for wasm32-wasip2 and embeds
//! them into the binary (see `bundled.rs`).

use std::path::PathBuf;

/// The plugins embedded in `kiln`, by package name in `plugins/`.
const BUNDLED: &[&str] = &["checksum", "compress", "copy", "doc", "image", "markdown", "media"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap();
    let target = root.join("target/wasm-plugins");
    let guests = kiln_guest_build::build_workspace(&root.join("plugins"), &target, BUNDLED);
    let mut code =
        String::from("/// First-party plugins: (name, component bytes).\npub static BUNDLED: &[(&str, &[u8])] = &[\n");
    for g in &guests {
        code.push_str(&format!("    ({:?}, include_bytes!({:?})),\n", g.name, g.wasm.display().to_string()));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("bundled.rs");
    std::fs::write(out, code).unwrap();
}
