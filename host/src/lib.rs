//! Kiln: batch processing of objects in buckets, with sandboxed WebAssembly plugins.

pub mod api;
pub mod auth;
pub mod background;
pub mod bundled;
pub mod cli;
pub mod config;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod objects;
pub mod runtime;
pub mod select;
pub mod store;
pub mod template;
pub mod timefmt;
pub mod transition;
