//! Kiln: batch processing of objects in buckets, with sandboxed WebAssembly plugins.

pub mod bundled;
pub mod cli;
pub mod runtime;
