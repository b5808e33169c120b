//! Kiln: batch processing of objects in buckets, with sandboxed WebAssembly plugins.

pub mod api;
pub mod auth;
pub mod background;
pub mod bundled;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod objects;
pub mod select;
pub mod store;
pub mod template;
pub mod timefmt;
pub mod transition;

/// The plugin runtime, a crate of its own so that a worker can run plugins
/// without the daemon around it: see [`engine`] for how the daemon builds it.
pub use kiln_runtime as runtime;
