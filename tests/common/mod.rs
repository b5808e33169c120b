//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kiln::runtime::{OutputTarget, OutputWriter};

/// The `kiln` binary built by this same `cargo test` run.
pub fn kiln_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let bin = dir.join("kiln");
    assert!(bin.exists(), "{} is missing: run the tests with `cargo test --workspace`", bin.display());
    bin
}

/// Run `kiln ARGS` to completion.
pub fn kiln(args: &[&str]) -> Output {
    Command::new(kiln_bin()).args(args).env("KILN_LOG", "warn").output().expect("running kiln")
}

/// What an in-memory output target saw, for asserting commit/abort semantics.
#[derive(Default, Debug)]
pub struct Recorded {
    /// (index, extension, bytes) of committed outputs.
    pub committed: Vec<(u32, Option<String>, Vec<u8>)>,
    pub aborted: u32,
    pub opened: u32,
}

/// An [`OutputTarget`] that keeps outputs in memory.
#[derive(Clone, Default)]
pub struct MemoryTarget(pub Arc<Mutex<Recorded>>);

struct MemoryWriter {
    index: u32,
    extension: Option<String>,
    bytes: Vec<u8>,
    record: Arc<Mutex<Recorded>>,
}

#[async_trait::async_trait]
impl OutputTarget for MemoryTarget {
    async fn open(&mut self, index: u32, extension: Option<&str>) -> Result<Box<dyn OutputWriter>, String> {
        self.0.lock().unwrap().opened += 1;
        Ok(Box::new(MemoryWriter { index, extension: extension.map(String::from), bytes: Vec::new(), record: self.0.clone() }))
    }
}

#[async_trait::async_trait]
impl OutputWriter for MemoryWriter {
    async fn write(&mut self, bytes: Bytes) -> Result<(), String> {
        self.bytes.extend_from_slice(&bytes);
        Ok(())
    }
    async fn commit(self: Box<Self>) -> Result<String, String> {
        let location = format!("memory/{}", self.index);
        self.record.lock().unwrap().committed.push((self.index, self.extension, self.bytes));
        Ok(location)
    }
    async fn abort(self: Box<Self>) {
        self.record.lock().unwrap().aborted += 1;
    }
}
