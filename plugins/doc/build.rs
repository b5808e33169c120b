//! The workspace links every plugin with 2 MiB of initial memory (see
//! `plugins/.cargo/config.toml`); `doc` holds its fonts and Typst's data
//! tables in static memory (about 14 MiB), so it starts with 24 MiB. lld takes
//! the last `--initial-memory`, and this one comes after the workspace's.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg=--initial-memory=25165824");
    }
}
