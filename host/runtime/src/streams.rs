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

/// The source object as a stream of chunks, and, where the source allows it
/// (a file, an object in a bucket, bytes in memory), read at any offset.
pub struct InputSource {
    stream: BoxStream<'static, std::io::Result<Bytes>>,
    leftover: Bytes,
    /// Bytes handed to the plugin so far, by `read` and `read-at` alike.
    pub(crate) consumed: u64,
    random: Option<Box<dyn RandomAccess>>,
    size: Option<u64>,
}

/// Reads of a source at an offset: `pread` on a file, a ranged GET on a bucket.
#[async_trait::async_trait]
pub trait RandomAccess: Send {
    /// Exactly the bytes `offset..offset + len`, which the caller keeps within the object.
    async fn read_at(&mut self, offset: u64, len: usize) -> std::io::Result<Bytes>;
}

/// Random access to bytes in memory.
struct InMemory(Bytes);

#[async_trait::async_trait]
impl RandomAccess for InMemory {
    async fn read_at(&mut self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let start = (offset as usize).min(self.0.len());
        Ok(self.0.slice(start..(start + len).min(self.0.len())))
    }
}

/// `pread` on a local file, off the async executor.
struct FileAt(std::sync::Arc<std::fs::File>);

#[async_trait::async_trait]
impl RandomAccess for FileAt {
    async fn read_at(&mut self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        let file = self.0.clone();
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0; len];
            let mut filled = 0;
            // A file that shrank since it was opened gives fewer bytes, not an error.
            while filled < len {
                match file.read_at(&mut buf[filled..], offset + filled as u64)? {
                    0 => break,
                    n => filled += n,
                }
            }
            buf.truncate(filled);
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

impl InputSource {
    pub fn new(stream: BoxStream<'static, std::io::Result<Bytes>>) -> Self {
        InputSource { stream, leftover: Bytes::new(), consumed: 0, random: None, size: None }
    }

    /// A source over bytes already in memory.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        let bytes: Bytes = bytes.into();
        let size = bytes.len() as u64;
        let random = Box::new(InMemory(bytes.clone()));
        Self::new(futures::stream::once(async move { Ok(bytes) }).boxed()).with_random_access(size, random)
    }

    /// This source, also readable at any offset of its `size` bytes.
    pub fn with_random_access(mut self, size: u64, random: Box<dyn RandomAccess>) -> Self {
        self.size = Some(size);
        self.random = Some(random);
        self
    }

    /// The object's size, when known.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Up to `max` bytes from `offset`: fewer at the end, none past it.
    pub async fn read_at(&mut self, offset: u64, max: usize) -> std::io::Result<Bytes> {
        let (Some(random), Some(size)) = (self.random.as_mut(), self.size) else {
            return Err(std::io::Error::other("this source can only be read in order (it is a stream, such as stdin)"));
        };
        let len = size.saturating_sub(offset).min(max as u64) as usize;
        if len == 0 {
            return Ok(Bytes::new());
        }
        let bytes = random.read_at(offset, len).await?;
        self.consumed += bytes.len() as u64;
        Ok(bytes)
    }

    /// A source over a local file of `size` bytes: streamed, and read at an
    /// offset with `pread` (through a second handle, so the two never share a position).
    pub fn from_file(file: std::fs::File, size: u64) -> std::io::Result<Self> {
        let at = std::sync::Arc::new(file.try_clone()?);
        Ok(Self::from_reader(tokio::fs::File::from_std(file)).with_random_access(size, Box::new(FileAt(at))))
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

/// What a plugin asked of one output (0.1.0 gives only the extension).
#[derive(Debug, Clone, Copy, Default)]
pub struct OutputSpec<'a> {
    /// `{autoext}`.
    pub extension: Option<&'a str>,
    /// Stored on the object where the bucket keeps one.
    pub content_type: Option<&'a str>,
    /// Output variables for the key template, e.g. `{page}`.
    pub variables: &'a [(String, String)],
}

/// Where a task's outputs go.
#[async_trait::async_trait]
pub trait OutputTarget: Send {
    /// Start output number `index` (1-based) with `{autoext}` = `extension`.
    /// An error fails the task with the message given.
    async fn open(&mut self, index: u32, extension: Option<&str>) -> Result<Box<dyn OutputWriter>, String>;

    /// [`OutputTarget::open`] with everything the plugin asked: targets that
    /// render keys or store content types take it all; others, the extension.
    async fn open_with(&mut self, index: u32, spec: OutputSpec<'_>) -> Result<Box<dyn OutputWriter>, String> {
        self.open(index, spec.extension).await
    }
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
