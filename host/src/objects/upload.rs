//! Uploads of a task's outputs. Each output streams into a multipart upload
//! (`object_store::buffered::BufWriter`: a single PUT for small objects), which
//! is completed on commit and aborted otherwise, so a failed task leaves no object.

use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use crate::runtime::{OutputTarget, OutputWriter};

/// Renders the output key of output `index` with `{autoext}` = extension, or
/// refuses it (a path rule, a write grant) with a message for the task error.
pub type RenderKey = Box<dyn FnMut(u32, Option<&str>) -> Result<String, String> + Send>;

pub struct BucketTarget {
    bucket: String,
    store: Arc<dyn ObjectStore>,
    render: RenderKey,
}

impl BucketTarget {
    pub(super) fn new(bucket: String, store: Arc<dyn ObjectStore>, render: RenderKey) -> Self {
        BucketTarget { bucket, store, render }
    }
}

#[async_trait::async_trait]
impl OutputTarget for BucketTarget {
    async fn open(&mut self, index: u32, extension: Option<&str>) -> Result<Box<dyn OutputWriter>, String> {
        let key = (self.render)(index, extension)?;
        let path = super::store_path(&key).map_err(|e| e.to_string())?;
        let writer = BufWriter::with_capacity(self.store.clone(), path, 8 << 20);
        Ok(Box::new(Upload { writer, shown: format!("{}/{key}", self.bucket), key }))
    }
}

struct Upload {
    writer: BufWriter,
    key: String,
    /// `bucket/key`, for messages.
    shown: String,
}

#[async_trait::async_trait]
impl OutputWriter for Upload {
    async fn write(&mut self, bytes: Bytes) -> Result<(), String> {
        self.writer.put(bytes).await.map_err(|e| format!("uploading {}: {e}", self.shown))
    }

    async fn commit(mut self: Box<Self>) -> Result<String, String> {
        self.writer.shutdown().await.map_err(|e| format!("completing {}: {e}", self.shown))?;
        Ok(self.key)
    }

    async fn abort(mut self: Box<Self>) {
        if let Err(e) = self.writer.abort().await {
            tracing::warn!(location = %self.shown, error = %e, "aborting an upload failed");
        }
    }
}
