//! The host side of the contract's stream resources: `input`, `outputs`, `output`.
//!
//! The runtime does not know where bytes come from or go to. A caller gives a
//! task an [`InputSource`] (a local file, stdin, an object-store GET) and an
//! [`OutputTarget`] (local files, stdout, object-store uploads). Outputs are
//! written as the plugin produces them, and committed only when the task
//! succeeds; otherwise they are aborted and nothing is left behind.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;

/// The source object as a stream of chunks.
pub struct InputSource {
    stream: BoxStream<'static, std::io::Result<Bytes>>,
    leftover: Bytes,
    /// Bytes handed to the plugin so far.
    pub(crate) consumed: u64,
}

impl InputSource {
    pub fn new(stream: BoxStream<'static, std::io::Result<Bytes>>) -> Self {
        InputSource { stream, leftover: Bytes::new(), consumed: 0 }
    }

    /// A source over bytes already in memory.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes: Bytes = bytes.into();
        Self::new(futures::stream::once(async move { Ok(bytes) }).boxed())
    }

    /// A source over any async reader (a file, stdin), read in 64 KiB chunks.
    pub fn from_reader(reader: impl tokio::io::AsyncRead + Send + 'static) -> Self {
        Self::new(tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024).boxed())
    }

    /// Up to `max` bytes; empty at the end.
    pub async fn read(&mut self, max: usize) -> std::io::Result<Bytes> {
        while self.leftover.is_empty() {
            match self.stream.next().await {
                Some(chunk) => self.leftover = chunk?,
                None => return Ok(Bytes::new()),
            }
        }
        let n = max.min(self.leftover.len());
        let chunk = self.leftover.split_to(n);
        self.consumed += n as u64;
        Ok(chunk)
    }
}

/// Where a task's outputs go.
#[async_trait::async_trait]
pub trait OutputTarget: Send {
    /// Start output number `index` (1-based) with `{autoext}` = `extension`.
    /// An error fails the task with the message given.
    async fn open(&mut self, index: u32, extension: Option<&str>) -> Result<Box<dyn OutputWriter>, String>;
}

/// One output being written.
#[async_trait::async_trait]
pub trait OutputWriter: Send {
    async fn write(&mut self, bytes: Bytes) -> Result<(), String>;
    /// Make the output visible; returns where it went (a key or a path).
    async fn commit(self: Box<Self>) -> Result<String, String>;
    /// Discard everything written.
    async fn abort(self: Box<Self>);
}

/// Table entry for the `input` resource: the task has one, owned by the task state.
pub struct InputHandle;
/// Table entry for the `outputs` resource.
pub struct OutputsHandle;
/// Table entry for an `output` resource: its index among the task's outputs.
pub struct OutputHandle {
    pub(crate) slot: usize,
}
