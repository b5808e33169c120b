//! The end-to-end tests, one binary: each module is one area (its own
//! file in `tests/`), and `common` is the harness they share: the real
//! daemon on an ephemeral port, the CLI, emulators and helpers. One binary
//! instead of one per file: a debug test binary is ~140 MB and its link the
//! slowest step of a build, and there were 23 of them.

mod common;

mod azure;
mod cluster;
mod contract;
mod crash_recovery;
mod daemon;
mod documents;
mod events;
mod gcs;
mod hostile;
mod js_plugin;
mod media;
mod openapi;
mod plugin_new;
mod process_cli;
mod python_plugin;
mod readme;
mod report;
mod runtime;
mod s3;
mod selection;
mod shutdown;
mod store;
mod styles;
mod tenants;
mod triggers;
