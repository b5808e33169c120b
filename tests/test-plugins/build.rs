//! Builds the guests in `guests/` and writes their paths as constants, so the
//! tests load real components built from this repo's source.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().parent().unwrap();
    let guests =
        kiln_guest_build::build_workspace(&manifest.join("guests"), &root.join("target/wasm-test-plugins"), &[]);
    let mut code = String::new();
    for g in guests {
        code.push_str(&format!(
            "/// `{}` built from `tests/test-plugins/guests`.\npub const {}: &str = {:?};\n",
            g.name,
            g.name.to_uppercase(),
            g.wasm.display().to_string()
        ));
    }
    std::fs::write(PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("paths.rs"), code).unwrap();
}
