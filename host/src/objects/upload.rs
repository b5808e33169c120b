//! Uploads of a task's outputs to cloud buckets, completed only on commit, so
//! a failed task leaves no object.
//!
//! Host memory per task is bounded whatever the plugin does: the bytes of
//! all of a task's open outputs are kept in memory up to [`TASK_HELD`]; past
//! that, an output spools to an anonymous temp file (deleted by the OS when
//! closed). On commit a small output is one PUT; a spooled one streams from
//! its file through a multipart upload (`object_store::buffered::BufWriter`)
//! with at most [`PARTS_IN_FLIGHT`] parts in flight. So a plugin that opens
//! a thousand outputs of 1 MB holds 8 MiB of host memory, not a gigabyte.

use std::io::{Read, Seek, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::{ObjectStore, PutPayload};
use tokio::io::AsyncWriteExt;

use crate::runtime::{OutputSpec, OutputTarget, OutputWriter};

/// Output bytes one task keeps in memory across all its outputs.
const TASK_HELD: u64 = 8 << 20;
/// Multipart part size: S3 wants at least 5 MiB for every part but the last.
const PART: usize = 8 << 20;
/// Parts uploading at once per output, while one commits.
const PARTS_IN_FLIGHT: usize = 2;

/// Renders the output key of output `index` from its `{autoext}` and its
/// output variables, or refuses it (a path rule, a write grant) with a
/// message for the task error.
pub type RenderKey = Box<dyn FnMut(u32, Option<&str>, &[(String, String)]) -> Result<String, String> + Send>;

pub struct BucketTarget {
    bucket: String,
    store: Arc<dyn ObjectStore>,
    render: RenderKey,
    /// Bytes this task holds in memory across its open outputs.
    held: Arc<AtomicU64>,
}

impl BucketTarget {
    pub(super) fn new(bucket: String, store: Arc<dyn ObjectStore>, render: RenderKey) -> Self {
        BucketTarget { bucket, store, render, held: Arc::default() }
    }
}

#[async_trait::async_trait]
impl OutputTarget for BucketTarget {
    async fn open(&mut self, index: u32, extension: Option<&str>) -> Result<Box<dyn OutputWriter>, String> {
        self.open_with(index, OutputSpec { extension, ..OutputSpec::default() }).await
    }

    async fn open_with(&mut self, index: u32, spec: OutputSpec<'_>) -> Result<Box<dyn OutputWriter>, String> {
        let key = (self.render)(index, spec.extension, spec.variables)?;
        let path = super::store_path(&key).map_err(|e| e.to_string())?;
        Ok(Box::new(Upload {
            store: self.store.clone(),
            path,
            shown: format!("{}/{key}", self.bucket),
            key,
            held: self.held.clone(),
            memory: Vec::new(),
            in_memory: 0,
            spool: None,
            attributes: content_type(spec.content_type),
        }))
    }
}

struct Upload {
    store: Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    key: String,
    /// `bucket/key`, for messages.
    shown: String,
    held: Arc<AtomicU64>,
    memory: Vec<Bytes>,
    in_memory: u64,
    /// Once the task's memory is spent: the output so far, on disk.
    spool: Option<std::fs::File>,
    /// The content type the plugin gave, stored with the object.
    attributes: object_store::Attributes,
}

fn content_type(given: Option<&str>) -> object_store::Attributes {
    let mut attributes = object_store::Attributes::new();
    if let Some(ct) = given {
        attributes.insert(object_store::Attribute::ContentType, ct.to_string().into());
    }
    attributes
}

impl Upload {
    fn release(&mut self) {
        self.held.fetch_sub(self.in_memory, Ordering::Relaxed);
        self.in_memory = 0;
    }

    fn spool(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.spool.is_none() {
            let mut file = tempfile::tempfile()?;
            for chunk in self.memory.drain(..) {
                file.write_all(&chunk)?;
            }
            self.release();
            self.spool = Some(file);
        }
        self.spool.as_mut().expect("just created").write_all(bytes)
    }

    async fn upload_spooled(&mut self, mut file: std::fs::File) -> Result<(), String> {
        let fail = |e: &dyn std::fmt::Display| format!("uploading {}: {e}", self.shown);
        file.rewind().map_err(|e| fail(&e))?;
        let mut writer = BufWriter::with_capacity(self.store.clone(), self.path.clone(), PART)
            .with_max_concurrency(PARTS_IN_FLIGHT)
            .with_attributes(std::mem::take(&mut self.attributes));
        loop {
            let mut chunk = vec![0u8; 1 << 20];
            let n = match file.read(&mut chunk) {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(fail(&e));
                }
            };
            if n == 0 {
                break;
            }
            chunk.truncate(n);
            if let Err(e) = writer.put(Bytes::from(chunk)).await {
                let _ = writer.abort().await;
                return Err(fail(&e));
            }
        }
        writer.shutdown().await.map_err(|e| format!("completing {}: {e}", self.shown))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        self.release();
    }
}

#[async_trait::async_trait]
impl OutputWriter for Upload {
    async fn write(&mut self, bytes: Bytes) -> Result<(), String> {
        let n = bytes.len() as u64;
        if self.spool.is_none() && self.held.load(Ordering::Relaxed) + n <= TASK_HELD {
            self.held.fetch_add(n, Ordering::Relaxed);
            self.in_memory += n;
            self.memory.push(bytes);
            return Ok(());
        }
        self.spool(&bytes).map_err(|e| format!("spooling {} to a temp file: {e}", self.shown))
    }

    async fn commit(mut self: Box<Self>) -> Result<String, String> {
        match self.spool.take() {
            Some(file) => self.upload_spooled(file).await?,
            None => {
                let payload: PutPayload = std::mem::take(&mut self.memory).into_iter().collect();
                let options =
                    object_store::PutOptions { attributes: std::mem::take(&mut self.attributes), ..Default::default() };
                self.store
                    .put_opts(&self.path, payload, options)
                    .await
                    .map_err(|e| format!("uploading {}: {e}", self.shown))?;
            }
        }
        Ok(std::mem::take(&mut self.key))
    }

    async fn abort(self: Box<Self>) {
        // Nothing was sent: uploads start on commit.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn a_thousand_open_outputs_hold_the_task_budget_and_upload_whole() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut target = BucketTarget::new(
            "b".into(),
            store.clone(),
            Box::new(|i: u32, _: Option<&str>, _: &[(String, String)]| Ok(format!("o/{i}"))) as RenderKey,
        );
        let mut open = Vec::new();
        for i in 0..1000u32 {
            let mut w = target.open(i, None).await.unwrap();
            w.write(Bytes::from(vec![(i % 251) as u8; 100_000])).await.unwrap();
            assert!(target.held.load(Ordering::Relaxed) <= TASK_HELD);
            open.push(w);
        }
        for w in open.drain(..500) {
            w.commit().await.unwrap();
        }
        for w in open {
            w.abort().await;
        }
        assert_eq!(target.held.load(Ordering::Relaxed), 0, "every byte held is given back");
        for i in [0u32, 79, 80, 499] {
            let got = store.get(&format!("o/{i}").into()).await.unwrap().bytes().await.unwrap();
            assert_eq!(got.len(), 100_000);
            assert!(got.iter().all(|b| *b == (i % 251) as u8), "output {i}");
        }
        assert!(store.get(&"o/500".into()).await.is_err(), "an aborted output leaves nothing");
    }

    #[tokio::test]
    async fn a_large_output_streams_through_a_multipart_upload() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let mut target = BucketTarget::new(
            "b".into(),
            store.clone(),
            Box::new(|_: u32, _: Option<&str>, _: &[(String, String)]| Ok("big".into())) as RenderKey,
        );
        let mut w = target.open(1, None).await.unwrap();
        let mut expected = Vec::new();
        for i in 0..40u32 {
            let chunk: Vec<u8> = (0..1_000_000u32).map(|j| ((i + j) % 253) as u8).collect();
            expected.extend_from_slice(&chunk);
            w.write(Bytes::from(chunk)).await.unwrap();
        }
        w.commit().await.unwrap();
        let got = store.get(&"big".into()).await.unwrap().bytes().await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected);
    }
}
