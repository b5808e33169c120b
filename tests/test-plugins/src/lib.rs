//! Paths of the test plugins, built from source by `build.rs`.
//!
//! - `ECHO`: well-behaved; copies its input to one output, or several with `repeat,n_N`;
//!   fails on purpose for keys containing `fail-on,k_TEXT`.
//! - `HOSTILE`: `loop`, `alloc`, `recurse`, `panic`, `flood` (huge output), `noise` (floods stderr then panics),
//!   `bigerror` (a 100 MB error), `biglog` (a 100 MB log line), `ignore-refused` (returns `ok` after a refused
//!   `outputs.open`), `exit` (calls `exit(0)`), `outputs` (1,000 outputs of 256 KiB); its `validate` loops forever
//!   for `hang` and refuses `bigrefusal` with 100 MB of text.
//! - `BIGMOUTH`: an `info()` of 64 MiB and 100,000 formats.
//! - `STALL_INFO`: an `info()` that never returns.
//! - `FS_IMPORT`, `NET_IMPORT`: import `wasi:filesystem` / `wasi:sockets`, which Kiln refuses.
//! - `SEEK`: contract 0.2.0 with wit-bindgen alone: `read-at`, output options, results, described actions.
//! - `LEGACY`: contract 0.1.0 with wit-bindgen alone (`wit/kiln-plugin.wit`): `copy` (the default) copies
//!   the input with the key's extension, `upper` upper-cases ASCII (`txt`), `fail` fails on purpose.
//!
//! The others use the SDK, so they are components of contract 0.2.0.

include!(concat!(env!("OUT_DIR"), "/paths.rs"));

/// Bytes that are not WebAssembly at all.
pub const RANDOM_BYTES: &[u8] = b"\x13\x37not wasm at all \xff\xfe\x00\x01 just noise";

/// A valid, empty core WebAssembly module: WebAssembly, but not a component.
pub const CORE_MODULE: &[u8] = b"\0asm\x01\0\0\0";
